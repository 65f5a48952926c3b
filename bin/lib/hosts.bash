# shellcheck shell=bash disable=SC2034 # sourced: the scripts that source it use these
# The execution hosts node1…nodeN that `bin/setup-cluster --hosts N` adds beside this one
# (README, "Several execution hosts on one machine"): where each one's state lives and how
# to enter it. Sourced by bin/setup-cluster, bin/on-host, bin/install and bin/bench-cluster.

# Per host: daemon.json (its engine), docker/ (data root), qdock/ (its /etc/qdock),
# log/ (its /var/log), spool/ (its execd spool directory); plus hosts (every host's /etc/hosts).
# A host whose engine is Podman (--podman-host) has podman/ (its /var/lib/containers) in
# place of daemon.json and docker/.
hosts_state=/var/lib/qdock-hosts
# Per host: uts and mnt, the files that keep its namespaces (its network one is
# /run/netns/<host>, made by `ip netns`). A private mount, as unshare(1) asks for.
hosts_run=/run/qdock-hosts
hosts_bridge=qdock0
hosts_prefix=10.231.0
# This machine's address on the bridge: the qmaster's host as the hosts see it.
hosts_gateway=$hosts_prefix.1

# The address of host nodeN: .N+1 on the bridge.
host_addr() { echo "$hosts_prefix.$((${1#node} + 1))"; }

# The hosts set up so far, in order (node1 node2 …).
host_names() {
    local d
    for d in "$hosts_state"/node*/; do
        [[ -f $d/daemon.json || -d $d/podman ]] && basename "$d"
    done | sort -V
}

# Host $1's engine as made: podman or docker.
host_engine() {
    if [[ -d $hosts_state/$1/podman ]]; then echo podman; else echo docker; fi
}

# Is $1 a name bin/setup-cluster gives a host?
is_host_name() { [[ $1 =~ ^node[1-9][0-9]{0,2}$ ]] && (($(host_addr "$1" | cut -d. -f4) < 255)); }

# Are host $1's namespaces there (kept by their files)?
host_namespaces_exist() {
    mountpoint -q "/run/netns/$1" 2>/dev/null && mountpoint -q "$hosts_run/$1/uts" \
        && mountpoint -q "$hosts_run/$1/mnt"
}

# A host is up once its namespaces hold all its own mounts ("ready", written last): one
# whose making stopped half-way has namespaces that see this machine's spool and config.
host_is_up() { host_namespaces_exist "$1" && [[ -e $hosts_run/$1/ready ]]; }

# nsenter's options that enter host $1.
host_nsenter() {
    echo nsenter "--net=/run/netns/$1" "--uts=$hosts_run/$1/uts" "--mount=$hosts_run/$1/mnt"
}

# The pids of the processes inside host $1 (its mount namespace), or with $2 those named $2.
host_pids() {
    local ns pid pids
    ns=mnt:[$(stat -L -c %i "$hosts_run/$1/mnt" 2>/dev/null)] || return 0
    if [[ -n ${2:-} ]]; then pids=$(pgrep -x "$2"); else pids=$(find /proc -mindepth 1 -maxdepth 1 -name '[0-9]*' -printf '%f\n'); fi
    for pid in $pids; do
        [[ "$(readlink "/proc/$pid/ns/mnt" 2>/dev/null)" == "$ns" ]] && echo "$pid"
    done
    return 0
}

# After an install, the hosts' watchers must run the binary just installed: restart each
# with qdock-gc-watch from sge-conf directory $1 (it names the binary).
restart_host_watchers() {
    local n on_host
    on_host=$(dirname "${BASH_SOURCE[0]}")/../on-host
    for n in $(host_names); do
        host_is_up "$n" || continue
        "$on_host" "$n" "$1/qdock-gc-watch" start | sed "s/^/$n: /"
    done
}
