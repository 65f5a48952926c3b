# shellcheck shell=bash disable=SC2154 # sourced: bin/setup-cluster sets what it uses
# bin/setup-cluster's part for the execution hosts node1…nodeN (README, "Several execution
# hosts on one machine"). Sourced by bin/setup-cluster after bin/lib/hosts.bash; uses its
# log, die, wait_for, alive, qc, apply_conf, clean_env, $repo, $host, $queue and $tmp.

# --- the network ----------------------------------------------------------------------

ensure_bridge() {
    if ! ip link show "$hosts_bridge" >/dev/null 2>&1; then
        ip link add "$hosts_bridge" type bridge
    fi
    # Not `ip … | grep -q`: grep leaving early fails the pipe under pipefail.
    [[ "$(ip addr show dev "$hosts_bridge")" == *"inet $hosts_gateway/24 "* ]] \
        || ip addr add "$hosts_gateway/24" dev "$hosts_bridge"
    ip link set "$hosts_bridge" up
}

remove_bridge() {
    ip link del "$hosts_bridge" 2>/dev/null || true
}

# Names resolve both ways: this machine's /etc/hosts names every host (the qmaster looks
# up who connects), and every host's /etc/hosts names the qmaster's host at the bridge
# address. Both files are rewritten in place: the hosts see theirs through a bind mount,
# which a renamed file would leave behind. $@: the hosts.
write_hosts_files() {
    local begin='# qdock hosts (bin/setup-cluster) begin' end='# qdock hosts end' n lines=""
    for n in "$@"; do lines+="$(host_addr "$n") $n"$'\n'; done
    local kept
    kept=$(awk -v b="$begin" -v e="$end" '$0 == b { skip = 1 } !skip { print } $0 == e { skip = 0 }' /etc/hosts)
    if (($#)); then
        printf '%s\n%s\n%s%s\n' "$kept" "$begin" "$lines" "$end" >"$tmp/etc-hosts"
    else
        printf '%s\n' "$kept" >"$tmp/etc-hosts"
    fi
    cmp -s "$tmp/etc-hosts" /etc/hosts || cat "$tmp/etc-hosts" >/etc/hosts
    if (($#)); then
        printf '127.0.0.1 localhost\n%s %s\n%s' "$hosts_gateway" "$host" "$lines" >"$tmp/hosts"
        cmp -s "$tmp/hosts" "$hosts_state/hosts" 2>/dev/null || cat "$tmp/hosts" >"$hosts_state/hosts"
    fi
}

# --- namespaces -----------------------------------------------------------------------

# Network, UTS and mount namespaces for host $1, kept alive by their files (no holder
# process): `ip netns` keeps the network one, unshare --uts=FILE --mount=FILE the others.
# Inside: its own hostname, a veth on the bridge as eth0 (no route beyond the bridge),
# and its own /run, /etc/hosts, /etc/qdock, /var/log and execd spool directory.
create_namespaces() {
    local n=$1 s=$hosts_state/$1 r=$hosts_run/$1
    if host_is_up "$n"; then bind_own_dirs "$n"; return; fi
    stop_host_processes "$n"
    remove_namespaces "$n"
    mkdir -p "$hosts_run"
    # unshare(1): a persistent mount namespace's file must sit on a private mount.
    mountpoint -q "$hosts_run" || mount --bind "$hosts_run" "$hosts_run"
    mount --make-private "$hosts_run"
    mkdir -p "$r"
    touch "$r/uts" "$r/mnt"
    # The host's own directories are mounted over these: they must exist here too.
    install -d -m 0755 /etc/qdock
    ip netns add "$n"
    ip link add "qh-$n" type veth peer name eth0 netns "$n"
    ip link set "qh-$n" master "$hosts_bridge" up
    ip -n "$n" addr add "$(host_addr "$n")/24" dev eth0
    ip -n "$n" link set eth0 up
    ip -n "$n" link set lo up
    # The copy of this machine's mounts drops what lives under /run (other namespaces'
    # files, the system engine's state) and everything below the system engines' data
    # roots (dockerd's, Podman's): a copy would keep them busy. Then the host's own directories go on top.
    # shellcheck disable=SC2016 # the inner shell expands them
    nsenter "--net=/run/netns/$n" unshare "--uts=$r/uts" "--mount=$r/mnt" --propagation private \
        sh -euc '
            n=$1
            hostname "$n"
            findmnt -rn -o TARGET | grep -E "^/run/|^/var/lib/docker/|^/var/lib/containers/" \
                | sort -r | xargs -r umount -l
            mount -t tmpfs -o mode=755,nosuid,nodev tmpfs /run
            mkdir -p /run/lock
        ' create-host "$n" || { remove_namespaces "$n"; die "$n: could not set up its namespaces (see above)"; }
    bind_own_dirs "$n" || { remove_namespaces "$n"; die "$n: could not mount its own directories (see above)"; }
    touch "$r/ready"
}

# Mounts host $1's own /etc/hosts, /etc/qdock, /var/log and execd spool over this machine's,
# and a Podman host's own /var/lib/containers (Podman's storage and state), each one not
# mounted yet: at its making, and again after a removal here detached one from
# every namespace (Linux >= 3.18: apt-get purge qdock, or bin/install --uninstall --purge,
# takes /etc/qdock away, and the host would read this machine's config from then on).
bind_own_dirs() {
    local n=$1 s=$hosts_state/$1
    install -d -m 0755 /etc/qdock /var/lib/containers
    # shellcheck disable=SC2016 # the inner shell expands them
    nsenter "--mount=$hosts_run/$n/mnt" sh -euc '
        s=$1
        bind() { findmnt -rn --mountpoint "$2" >/dev/null || mount --bind "$1" "$2"; }
        bind "$s/../hosts" /etc/hosts
        bind "$s/qdock" /etc/qdock
        bind "$s/log" /var/log
        bind "$s/spool" /var/spool/gridengine/execd
        if [ -d "$s/podman" ]; then bind "$s/podman" /var/lib/containers; fi
    ' bind-own-dirs "$s"
}

# Undoes create_namespaces for host $1 (its processes must be gone).
remove_namespaces() {
    local n=$1
    umount "$hosts_run/$n/uts" "$hosts_run/$n/mnt" 2>/dev/null || true
    rm -rf "${hosts_run:?}/$n"
    ip netns del "$n" 2>/dev/null || true
    ip link del "qh-$n" 2>/dev/null || true
}

in_host() { "$repo/bin/on-host" "$@"; }

# --- the host's files -----------------------------------------------------------------

# Host $1's state directory: its engine's daemon.json (or, with $2 podman, Podman's
# storage), its config (a copy of this machine's, made once: the admin, or a test, changes
# it there), its log and spool dirs.
write_host_files() {
    local n=$1 s=$hosts_state/$1
    install -d -m 0755 "$hosts_state" "$s" "$s/qdock" "$s/log"
    install -d -o sgeadmin -g sgeadmin -m 0755 "$s/spool" "$s/spool/$n"
    # On a fresh machine bin/install has not made this machine's config yet: the example.
    local conf=/etc/qdock/qdock.toml
    [[ -f $conf ]] || conf=$repo/sge-conf/qdock.example.toml
    [[ -e $s/qdock/qdock.toml ]] || install -o root -g root -m 0644 "$conf" "$s/qdock/qdock.toml"
    if [[ $2 == podman ]]; then
        write_podman_host_files "$n"
        return
    fi
    install -d -m 0755 "$s/docker"
    # /run is the host's own, so the engine's defaults there are its own; named anyway.
    # live-restore: containers keep running while the engine restarts. The registry on
    # the bridge speaks plain HTTP.
    cat >"$tmp/daemon.json" <<EOF
{
    "data-root": "$s/docker",
    "exec-root": "/run/docker",
    "pidfile": "/run/docker.pid",
    "hosts": ["unix:///var/run/docker.sock"],
    "cgroup-parent": "/qdock-$n",
    "live-restore": true,
    "insecure-registries": ["$hosts_prefix.0/24"]
}
EOF
    cmp -s "$tmp/daemon.json" "$s/daemon.json" || cp "$tmp/daemon.json" "$s/daemon.json"
}

# A Podman host: Podman's storage of its own (its /var/lib/containers), and its config's
# `[engine] socket` naming the Podman socket in its own /run: nothing else in the config
# changes, as for a site that runs Podman.
write_podman_host_files() {
    local s=$hosts_state/$1
    install -d -m 0700 "$s/podman"
    local socket="socket = \"$podman_socket\""
    awk -v line="$socket" '
        /^\[/ { in_engine = ($0 == "[engine]") }
        in_engine && /^socket *=/ { $0 = line; done = 1 }
        { print }
        END { if (!done) exit 1 }' "$s/qdock/qdock.toml" >"$tmp/qdock.toml" \
        || die "$1: $s/qdock/qdock.toml has no [engine] socket line to point at Podman"
    cmp -s "$tmp/qdock.toml" "$s/qdock/qdock.toml" || cat "$tmp/qdock.toml" >"$s/qdock/qdock.toml"
}

# --- the host's daemons ---------------------------------------------------------------

host_docker_answers() { in_host "$1" timeout 10 docker info >/dev/null 2>&1; }

start_host_docker() {
    local n=$1
    # One that runs may still be starting (or restoring its containers).
    if [[ -n $(host_pids "$n" dockerd) ]] && wait_for 20 host_docker_answers "$n"; then return; fi
    log "$n: starting dockerd (log $hosts_state/$n/log/dockerd.log)"
    in_host "$n" rm -f /run/docker.pid
    in_host "$n" setsid "${clean_env[@]}" dockerd --config-file "$hosts_state/$n/daemon.json" \
        </dev/null >>"$hosts_state/$n/log/dockerd.log" 2>&1 &
    wait_for 30 host_docker_answers "$n" || die "$n: dockerd did not answer in 30 s; see $hosts_state/$n/log/dockerd.log"
}

# Podman's API service in host $1, on the socket its config names, in its own /run, with
# the storage of its own: as bin/lib/podman.bash serves it on this machine (group docker,
# 0660). The containers run under Podman's conmon, not under the service: they outlive it.
host_podman_answers() {
    in_host "$1" timeout 10 env DOCKER_HOST="unix://$podman_socket" docker version >/dev/null 2>&1
}

start_host_podman() {
    local n=$1
    if [[ -n $(host_pids "$n" podman) ]] && wait_for 20 host_podman_answers "$n"; then return; fi
    log "$n: starting podman system service (log $hosts_state/$n/log/podman.log)"
    in_host "$n" install -d -m 0755 "$(dirname "$podman_socket")"
    in_host "$n" rm -f "$podman_socket"
    in_host "$n" setsid "${clean_env[@]}" podman system service --time=0 "unix://$podman_socket" \
        </dev/null >>"$hosts_state/$n/log/podman.log" 2>&1 &
    wait_for 30 host_podman_answers "$n" || die "$n: podman did not answer in 30 s; see $hosts_state/$n/log/podman.log"
    in_host "$n" chgrp docker "$podman_socket"
    in_host "$n" chmod 0660 "$podman_socket"
}

start_host_engine() {
    case $(host_engine "$1") in
        podman) start_host_podman "$1" ;;
        *) start_host_docker "$1" ;;
    esac
}

# The host's engine gets this machine's test image (no registry needed). Podman names a
# loaded image localhost/<name>; qdock finds it under <name> (src/engine/mod.rs).
load_test_image() {
    local n=$1 image=qdock/busybox:1 want
    want=$(docker image inspect -f '{{.Id}}' "$image")
    if [[ $(host_engine "$n") == podman ]]; then
        [[ "sha256:$(in_host "$n" podman image inspect -f '{{.Id}}' "localhost/$image" 2>/dev/null)" == "$want" ]] \
            && return
        docker save "$image" | in_host "$n" podman load -q >/dev/null
    else
        [[ "$(in_host "$n" docker image inspect -f '{{.Id}}' "$image" 2>/dev/null)" == "$want" ]] && return
        docker save "$image" | in_host "$n" docker load -q >/dev/null
    fi
    log "$n: loaded $image"
}

host_execd_runs() {
    local pid
    for pid in $(host_pids "$1" sge_execd); do alive "$pid" && return 0; done
    return 1
}

# Starts host $1's sge_execd (it puts itself in the background) and says whether it runs.
# What it says before it can write to its spool goes to the host's /var/log/sge_execd.log.
try_host_execd() {
    in_host "$1" "${clean_env[@]}" SGE_ROOT="$SGE_ROOT" SGE_CELL="$SGE_CELL" \
        /usr/lib/gridengine/sge_execd </dev/null >>"$hosts_state/$1/log/sge_execd.log" 2>&1 \
        && wait_for 5 host_execd_runs "$1"
}

start_host_execd() {
    local n=$1
    ! host_execd_runs "$n" || return 0
    log "$n: starting sge_execd"
    # Right after an execd was killed, the qmaster may still hold its connection and turn
    # the new one away for a while: try again.
    wait_for 60 try_host_execd "$n" \
        || die "$n: sge_execd does not start; see $hosts_state/$n/log/sge_execd.log and $hosts_state/$n/spool/$n/messages"
}

start_host_gc_watcher() {
    local n=$1
    [[ -x $(installed_prefix)/bin/qdock ]] || return 0
    in_host "$n" "$(installed_sge_conf)/qdock-gc-watch" start "$SGE_CELL" >/dev/null \
        || log "warning: $n: qdock gc --watch did not start; see $hosts_state/$n/log/qdock-gc-watch.log"
}

host_is_empty() { [[ -z $(host_pids "$1") ]]; }

# Stops everything running inside host $1: its containers go (no job survives its host),
# then its daemons, then whatever is left.
stop_host_processes() {
    local n=$1 pid
    host_namespaces_exist "$n" || return 0
    # A Podman host's CLI reaches its own storage only once its directories are mounted.
    if [[ $(host_engine "$n") == podman ]]; then
        host_is_up "$n" && { in_host "$n" podman rm -af -t 0 >/dev/null 2>&1 || true; }
    else
        in_host "$n" sh -c 'docker ps -aq | xargs -r docker rm -f' >/dev/null 2>&1 || true
    fi
    for pid in $(host_pids "$n"); do kill "$pid" 2>/dev/null || true; done
    wait_for 20 host_is_empty "$n" \
        || for pid in $(host_pids "$n"); do kill -KILL "$pid" 2>/dev/null || true; done
}

# --- grid engine ----------------------------------------------------------------------

# Host nodeN's gid_range: 100 groups of its own from 60000 on. Every execd hands out its
# range's groups on its own, and a shepherd ending a job kills every process holding the
# job's group (ENABLE_ADDGRP_KILL); the hosts share this machine's processes, so with one
# range a job's end on one host killed another host's job that had drawn the same group.
host_gid_range() {
    local first=$((60000 + (${1#node} - 1) * 100))
    echo "$first-$((first + 99))"
}

# qc, retried for up to 60 s while the qmaster says it cannot resolve a host name: it keeps a
# failed look-up for a while (seen: 20 s to a minute), so a host made again soon after its
# removal took its name out of /etc/hosts is refused at first.
qc_resolving() {
    local out end=$((SECONDS + 60))
    until out=$(qconf "$@" 2>&1); do
        if [[ $out != *"can't resolve"* ]] || ((SECONDS >= end)); then
            echo "setup-cluster: qconf $*: $out" >&2
            return 1
        fi
        sleep 2
    done
}

register_host() {
    local n=$1
    # A host's local configuration: its own gid_range (qconf -Aconf names it by its file).
    local range
    range=$(host_gid_range "$n")
    install -d "$tmp/conf"
    printf 'gid_range %s\n' "$range" >"$tmp/conf/$n"
    if ! qconf -sconf "$n" >/dev/null 2>&1; then
        qc_resolving -Aconf "$tmp/conf/$n"
    elif ! grep -Eq "^gid_range +$range\$" <<<"$(qconf -sconf "$n")"; then
        qc -Mconf "$tmp/conf/$n"
    fi
    qconf -sh 2>/dev/null | grep -qx "$n" || qc -ah "$n"
    qconf -sel 2>/dev/null | grep -qx "$n" && return
    printf 'hostname %s\nload_scaling NONE\ncomplex_values NONE\nuser_lists NONE\nxuser_lists NONE\nprojects NONE\nxprojects NONE\nusage_scaling NONE\nreport_variables NONE\n' "$n" >"$tmp/exechost"
    qc -Ae "$tmp/exechost"
}

unregister_host() {
    local n=$1
    qconf -sconf "$n" >/dev/null 2>&1 && qc -dconf "$n"
    qconf -sel 2>/dev/null | grep -qx "$n" && qc -de "$n"
    qconf -sh 2>/dev/null | grep -qx "$n" && qc -dh "$n"
    return 0
}

# --- adding and removing hosts --------------------------------------------------------

# Makes or repairs host $1 with engine $2 (docker or podman); a host made with the other
# engine is made anew (its containers and jobs end).
add_host() {
    local n=$1 engine=$2
    if [[ -d $hosts_state/$n && $(host_engine "$n") != "$engine" ]]; then
        # It stays an exec host of the cell (and in @allhosts) meanwhile.
        log "$n: its engine becomes $engine (its containers and jobs end)"
        stop_host_processes "$n"
        remove_namespaces "$n"
        rm -rf "${hosts_state:?}/$n"
    fi
    write_host_files "$n" "$engine"
    create_namespaces "$n"
    start_host_engine "$n"
    load_test_image "$n"
    register_host "$n"
    start_host_execd "$n"
    start_host_gc_watcher "$n"
}

remove_host() {
    local n=$1
    log "$n: removing (its containers and jobs end)"
    qmod -d "$queue@$n" >/dev/null 2>&1 || true
    stop_host_processes "$n"
    unregister_host "$n"
    remove_namespaces "$n"
    rm -rf "${hosts_state:?}/$n"
}

# The hosts wanted: node1…node$1, or (with $1 empty) those that exist.
wanted_hosts() {
    if [[ -z $1 ]]; then host_names; return; fi
    local i
    for ((i = 1; i <= $1; i++)); do echo "node$i"; done
}

# The engine host $1 is to run: Podman for the --podman-host ($2), dockerd for the others;
# without --hosts ($3 empty) each host keeps the engine it was made with.
wanted_engine() {
    if [[ -z $3 ]]; then host_engine "$1"
    elif [[ $1 == "$2" ]]; then echo podman
    else echo docker
    fi
}

# Adds, repairs or removes hosts so that exactly the wanted ones run; $1 as for
# wanted_hosts, $2 the host whose engine is Podman (none when empty). @allhosts (all.q's hostlist) then names this machine and them. A new
# host's queue instance starts enabled; one an admin disabled stays so.
setup_hosts() {
    local want n
    mapfile -t want < <(wanted_hosts "$1")
    local gone=()
    for n in $(host_names); do
        [[ " ${want[*]} " == *" $n "* ]] || gone+=("$n")
    done
    if ((${#gone[@]})); then
        # Out of the queue first: a host group may only name exec hosts.
        set_allhosts "$host" "${want[@]}"
        for n in "${gone[@]}"; do remove_host "$n"; done
    fi
    if ((${#want[@]} == 0)); then
        write_hosts_files
        rm -f "$hosts_state/hosts"
        rmdir "$hosts_state" 2>/dev/null || true
        remove_bridge
        umount "$hosts_run" 2>/dev/null || true
        rmdir "$hosts_run" 2>/dev/null || true
        return
    fi
    ensure_bridge
    install -d -m 0755 "$hosts_state"
    write_hosts_files "${want[@]}"
    for n in "${want[@]}"; do add_host "$n" "$(wanted_engine "$n" "${2:-}" "$1")"; done
    set_allhosts "$host" "${want[@]}"
    for n in "${want[@]}"; do make_queue_healthy "$n" keep-disabled; done
    log "hosts: ${want[*]} on $hosts_bridge ($hosts_prefix.0/24); enter one with bin/on-host HOST CMD"
}
