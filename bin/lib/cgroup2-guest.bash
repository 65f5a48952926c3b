#!/usr/bin/env bash
# Runs inside the cgroup v2 guest that bin/test-cgroup2 boots, as root, from its 9p share:
#   guest cgroupfs|systemd
# (cgroupfs: PID 1 is a shell script and this script starts dockerd itself, which then uses
# its cgroupfs driver, and Podman's service with its cgroupfs manager; systemd: systemd
# started docker.service, which uses its systemd driver, and this script starts Podman's
# service as a unit of its own, with Podman's default systemd manager.)
# Installs qdock from the share as bin/install does, builds the test image as
# bin/setup-cluster does, then runs real jobs through qdock-starter as an ordinary user
# holding a faked Grid Engine job's group, with the job's spool entry written as the execd
# writes it (as tests/common/mod.rs does on the real cell): first against dockerd, then
# against rootful Podman's Docker-compatible API (qdock's `[engine] socket` pointed at it, the
# image loaded from dockerd as bin/lib/podman.bash does), and in the systemd boot last
# against dockerd with its cgroupfs driver. Prints one line per check, `ENGINE: ok NAME: what
# was seen` or `ENGINE: FAIL NAME: what was seen` (ENGINE dockerd, podman or
# dockerd-cgroupfs), and `guest: done` at the end.
set -uo pipefail

run=${1:?usage: guest cgroupfs|systemd}
share=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
image=qdock/busybox:1
user=alice
uid=1001
# Stands for the job's group from Grid Engine's gid_range, as the test harness's JOB_GROUP.
job_group=65390
record=/var/lib/qdock/usage.jsonl
scripts=/var/lib/qdock-cg2/job_scripts
active=/var/spool/gridengine/execd/$(hostname)/active_jobs
# TCG runs everything some 15 times slower than the host: generous, never reached when well.
timeout=300
failed=0
jobs_run=0
# The engine under test and its socket: every `docker` command and API call below goes there.
engine=dockerd
sock=/var/run/docker.sock
podman_sock=/run/podman/podman.sock

ok() { echo "$engine: ok $1: $2"; }
fail() { echo "$engine: FAIL $1: $2"; failed=1; }
note() { echo "$engine: note $1: not exact: $2"; }
docker() { command docker -H "unix://$sock" "$@"; }
check() { # check NAME DETAIL CONDITION...: ok when the command CONDITION succeeds
    local name=$1 detail=$2
    shift 2
    if "$@"; then ok "$name" "$detail"; else fail "$name" "$detail"; fi
}
# awk as a calculator: `holds 'a <= b' a=1 b=2`.
holds() { local expr=$1; shift; awk "$@" "BEGIN { exit !($expr) }"; }
secs_since_boot() { cut -d' ' -f1 /proc/uptime; }

# Waits until the command succeeds, at most $timeout seconds (of the guest's clock).
wait_for() {
    local what=$1 start
    shift
    start=$(secs_since_boot)
    until "$@"; do
        if holds 'now - start > t' -v now="$(secs_since_boot)" -v start="$start" -v t="$timeout"; then
            echo "timed out waiting for $what" >&2
            return 1
        fi
        sleep 0.1
    done
}

# --- the engine, qdock, the user, the image --------------------------------------------

start_engine() {
    if [[ $run == cgroupfs ]]; then
        # In a cgroup of its own, as an init system starts it: in the root cgroup, which has
        # no memory.swap.max, dockerd 20.10 finds "No swap limit support" and drops every
        # container's swap limit (seen in this guest).
        echo "+cpuset +cpu +io +memory +pids" >/sys/fs/cgroup/cgroup.subtree_control
        mkdir -p /sys/fs/cgroup/dockerd
        (echo "$BASHPID" >/sys/fs/cgroup/dockerd/cgroup.procs && exec dockerd "$@") >/tmp/dockerd.log 2>&1 &
        echo $! >/tmp/dockerd.pid
    fi
    wait_for "docker info" docker info >/dev/null 2>&1 || { cat /tmp/dockerd.log; return 1; }
}

stop_engine() {
    local pid
    pid=$(cat /tmp/dockerd.pid)
    kill "$pid"
    wait_for "dockerd to exit" sh -c "! kill -0 $pid 2>/dev/null"
}

# Rootful Podman's Docker-compatible API on its socket, `root:docker` 0660 as on the cell
# (bin/lib/podman.bash); without systemd with its cgroupfs manager, in a cgroup of its own as
# dockerd; with systemd as a unit of its own, with its default systemd manager.
start_podman() {
    install -d -m 0755 "$(dirname "$podman_sock")"
    if [[ $run == cgroupfs ]]; then
        printf '[engine]\ncgroup_manager = "cgroupfs"\n' >/etc/containers/containers.conf
        mkdir -p /sys/fs/cgroup/podman-service
        (echo "$BASHPID" >/sys/fs/cgroup/podman-service/cgroup.procs \
            && exec podman system service --time=0 "unix://$podman_sock") >/tmp/podman.log 2>&1 &
    else
        systemd-run --quiet --unit=podman-api podman system service --time=0 "unix://$podman_sock"
    fi
    wait_for "podman's API" curl -sf --unix-socket "$podman_sock" http://x/_ping >/dev/null || {
        cat /tmp/podman.log 2>/dev/null
        [[ $run == systemd ]] && journalctl -q -u podman-api --no-pager
        return 1
    }
    chgrp docker "$podman_sock"
    chmod 0660 "$podman_sock"
}

# The next checks against Podman: qdock's config names its socket, nothing else changed; the
# test image is dockerd's, loaded (`localhost/qdock/busybox:1`, found by qdock under the name
# the job gives).
switch_to_podman() {
    start_podman || return
    command docker save "$image" | podman load -q >/tmp/podman-load.log 2>&1 || { cat /tmp/podman-load.log; return 1; }
    sed -i "s|^socket = .*|socket = \"$podman_sock\"|" /etc/qdock/qdock.toml
    engine=podman
    sock=$podman_sock
}

# The systemd boot's last checks: dockerd told to use its cgroupfs driver on a systemd host,
# the README's advice where systemd would remove an emptied scope before the final read.
# Then dockerd, not systemd, removes a container's cgroup, after it heard of the exit: every
# figure must be exact, as in the cgroupfs boot.
switch_to_cgroupfs_driver() {
    echo '{"exec-opts": ["native.cgroupdriver=cgroupfs"]}' >/etc/docker/daemon.json
    # Without its dependencies: this script's unit requires docker.service, and would be
    # stopped with it (seen: the guest powered off).
    systemctl --job-mode=ignore-dependencies restart docker || return
    sed -i "s|^socket = .*|socket = \"/var/run/docker.sock\"|" /etc/qdock/qdock.toml
    engine=dockerd-cgroupfs
    sock=/var/run/docker.sock
    wait_for "docker info" docker info >/dev/null 2>&1
}

install_qdock() {
    getent group docker >/dev/null || groupadd --system docker
    local b
    for b in qdock qdock-starter qdock-suspend qdock-resume; do
        install -o root -g docker -m 2755 "$share/bin/$b" /usr/local/bin/
    done
    install -o root -g root -m 0755 "$share/bin/qdock-stdio" /usr/local/bin/
    install -d -m 0755 /etc/qdock
    install -m 0644 "$share/qdock.example.toml" /etc/qdock/qdock.toml
    # What sge-conf/setup-host makes.
    install -d -o root -g root -m 0755 /var/lib/qdock
    install -d -o root -g docker -m 1770 /var/lib/qdock/stdio /var/lib/qdock/runs
    install -o root -g docker -m 0660 /dev/null "$record"
    getent passwd sgeadmin >/dev/null || useradd --system --user-group sgeadmin
    getent passwd "$user" >/dev/null || useradd --create-home --uid "$uid" --user-group "$user"
    install -d -o sgeadmin -g sgeadmin -m 0755 "$active"
    install -d -m 0755 "$scripts"
}

build_image() {
    "$share/images/build" busybox >/tmp/images.log 2>&1 || { cat /tmp/images.log; return 1; }
}

# --- jobs ----------------------------------------------------------------------------------

# new_job NAME SCRIPT: a job's spool entry, script, working directory and TMPDIR; sets
# $job (its id) and $cwd.
new_job() {
    local name=$1 script=$2 entry tmpdir
    jobs_run=$((jobs_run + 1))
    job=$((1000 + jobs_run))
    # One directory per engine: a job's files (`ready`, `go`, `.code`) must not be the last
    # engine's.
    cwd=/home/$user/$engine/$name
    tmpdir=/tmp/$job.1.all.q
    entry=$active/$job.1
    install -d -o "$user" -g "$user" -m 0755 "$(dirname "$cwd")" "$cwd"
    install -d -o "$user" -g "$user" -m 0700 "$tmpdir"
    install -d -o sgeadmin -g sgeadmin -m 0755 "$entry"
    echo "$job_group" >"$entry/addgrpid"
    printf 'job_owner=%s\ntmpdir=%s\nqueue=all.q\nscript_file=%s\n' "$user" "$tmpdir" "$scripts/$job" \
        >"$entry/config"
    chown sgeadmin:sgeadmin "$entry/addgrpid" "$entry/config"
    printf '%s\n' "$script" >"$scripts/$job"
    chmod 0755 "$scripts/$job"
}

# as_job PREFIX... -- PROGRAM ARGS...: runs PROGRAM as the job's owner holding the job's
# group, in its working directory and the environment the execd gives a job; PREFIX (a
# taskset or prlimit) runs before the change of user, as the shepherd's binding and limits do.
as_job() {
    local prefix=()
    while [[ $1 != -- ]]; do prefix+=("$1"); shift; done
    shift
    cd "$cwd" || return
    env -i JOB_ID="$job" SGE_TASK_ID=undefined SGE_CELL=default SGE_ROOT=/var/lib/gridengine \
        QUEUE=all.q JOB_NAME="$(basename "$cwd")" NSLOTS=1 HOME="/home/$user" USER="$user" \
        LOGNAME="$user" PATH=/usr/local/bin:/usr/bin:/bin TMPDIR="/tmp/$job.1.all.q" \
        SGE_STARTER_SHELL_PATH=/bin/sh SGE_STARTER_SHELL_START_MODE=posix_compliant \
        SGE_STARTER_USE_LOGIN_SHELL=false IMAGE="$image" \
        "${prefix[@]}" setpriv --reuid="$uid" --regid="$uid" --groups="$uid,$job_group" \
        --inh-caps=-all -- "$@"
}

# start_job PREFIX...: starts the job's starter in the background; sets $starter (its pid).
start_job() {
    (as_job "$@" -- /usr/local/bin/qdock-starter "$scripts/$job" >"$cwd/.stdout" 2>"$cwd/.stderr"
     echo $? >"$cwd/.code") &
    starter=$!
}

finish_job() {
    wait_for "job $job to end" test -e "$cwd/.code" || return 1
    wait "$starter" 2>/dev/null
    code=$(cat "$cwd/.code")
    usage_line=$(grep '^qdock: usage: ' "$cwd/.stderr" | tail -n1)
    usage_record=$(grep "\"job\":$job," "$record" | tail -n1)
    # Ended, with or without a usage line and record: check_exact tells.
    return 0
}

# The figure of the usage record at jq PATH (`.cpu_ns`).
recorded() { jq -r ".container.usage$1" <<<"$usage_record"; }

# The engine's own stats of the job's running container.
engine_stats() {
    curl -sf --unix-socket "$sock" \
        "http://x/containers/qdock-default-$job-0/stats?stream=false&one-shot=true"
}

# The container's cgroup on the host, from its first process.
container_cgroup() {
    local pid
    pid=$(docker inspect -f '{{.State.Pid}}' "qdock-default-$job-0") || return 1
    sed -n 's/^0:://p' "/proc/$pid/cgroup"
}

# The job's exit code, its usage line and record, read after the end: the common part of
# each job's checks. Sets $exact. Under the systemd driver a job's figures may be the last
# sample, which the line must then name: systemd removes the emptied scope at once, and the
# starter's thread, woken by the job's end at the same moment, often reads too late under
# TCG. Such a job is reported (`note`), not failed.
check_exact() {
    local name=$1
    exact=false
    if [[ -z $usage_line || -z $usage_record || $code != "${2:-0}" ]]; then
        fail "$name" "exit $code, usage line: ${usage_line:-none}: $(tail -n3 "$cwd/.stderr" | tr '\n' '|')"
        return 1
    fi
    if [[ $(recorded .exact) == true && $usage_line != *missing* ]]; then
        exact=true
        ok "$name" "exit $code; $usage_line"
    elif [[ $run == systemd && $engine != dockerd-cgroupfs \
        && $usage_line == *"(last sample before the end: the rest is missing)" ]]; then
        note "$name" "exit $code; $usage_line"
    else
        fail "$name" "exit $code; $usage_line"
        return 1
    fi
}

hold='touch ready; until [ -e go ]; do sleep 0.1; done'

# --- checks --------------------------------------------------------------------------------

# Podman's OCI runtime (crun or runc), which places the container's processes.
runtime() {
    [[ $engine == podman ]] || return 0
    printf ' (%s)' "$(podman info -f '{{.Host.OCIRuntime.Name}} {{.Host.OCIRuntime.Version}}' | head -n1)"
}

check_hierarchy() {
    local fs driver version want=$run
    [[ $engine == dockerd-cgroupfs ]] && want=cgroupfs
    fs=$(stat -fc %T /sys/fs/cgroup)
    driver=$(docker info -f '{{.CgroupDriver}}')
    version=$(docker info -f '{{.CgroupVersion}}')
    check "unified hierarchy" "/sys/fs/cgroup is $fs; $engine $(docker version -f '{{.Server.Version}}')$(runtime), cgroup v$version, $driver driver; kernel $(uname -r)" \
        test "$fs" = cgroup2fs -a "$version" = 2 -a "$driver" = "$want"
}

check_trivial() {
    new_job trivial 'true'
    start_job
    finish_job || { fail "trivial job" "did not end"; return; }
    check_exact "trivial job"
}

# CPU: the usage line against the engine's stats and the kernel's cpu.stat while the job
# held after its burn, and against busybox time inside.
check_cpu() {
    local name=${1:-cpu burn} iterations=${2:-300000} stats engine_cpu own cpu cpu_user cpu_system wall tuser tsys
    new_job "cpu$jobs_run" "busybox time -v -o time.txt sh -c 'i=0; while [ \$i -lt $iterations ]; do i=\$((i + 1)); done'
cat /sys/fs/cgroup/cpu.stat > cpu.stat.job
$hold"
    start_job
    wait_for "the burn" test -e "$cwd/ready" || { fail "$name" "never ready: $(cat "$cwd/.stderr")"; return; }
    "${3:-where_default}"
    stats=$(engine_stats)
    touch "$cwd/go"
    finish_job || { fail "$name" "did not end"; return; }
    check_exact "$name" || return
    engine_cpu=$(jq -r .cpu_stats.cpu_usage.total_usage <<<"$stats")
    own=$(awk '$1 == "usage_usec" { print $2 * 1000 }' "$cwd/cpu.stat.job")
    cpu=$(recorded .cpu_ns)
    cpu_user=$(recorded .cpu_user_ns)
    cpu_system=$(recorded .cpu_system_ns)
    wall=$(jq -r .container.wall_ns <<<"$usage_record")
    tuser=$(awk -F': ' '/User time/ { print $2 }' "$cwd/time.txt")
    tsys=$(awk -F': ' '/System time/ { print $2 }' "$cwd/time.txt")
    # What the job used after the engine's sample is its polling for `go`: well under 0.5 s.
    if [[ $exact == true ]]; then
        check "$name: cpu vs engine" "usage $cpu ns, engine's stats $engine_cpu ns while the job held, the job's own cpu.stat $own ns before" \
            holds 'cpu >= engine && engine >= own && cpu - engine < 0.5e9' -v cpu="$cpu" -v engine="$engine_cpu" -v own="$own"
    else
        # A last sample is at most one sampling interval (1 s) older than the end, and the
        # burn is one process: it lacks at most a second of CPU that the job's own reading
        # before it held may already count (seen: a sample 16 ms below it, after a short hold).
        check "$name: last sample vs the job's own" "usage $cpu ns (a sample), the job's own cpu.stat $own ns before it held, engine's stats $engine_cpu ns" \
            holds 'cpu >= own - 1e9 && cpu - own < 0.5e9' -v cpu="$cpu" -v own="$own"
    fi
    # time counts the burning shell only; the container also ran docker-init, qdock's
    # output helper and the job's shell: a few tenths of a second under TCG. A last sample
    # may lack up to a second of the burn (seen: 0.1 s below time's count).
    local lag=0.02
    [[ $exact == true ]] || lag=1.0
    check "$name: cpu vs busybox time" "usage $cpu ns$([[ $exact == true ]] || echo " (a sample)"), time inside: user ${tuser} s + system ${tsys} s" \
        holds 'cpu / 1e9 >= u + s - lag && cpu / 1e9 - (u + s) < 1.0' -v cpu="$cpu" -v u="$tuser" -v s="$tsys" -v lag="$lag"
    # The burn is one process, within the wall time; the container's whole CPU need not be:
    # runc's or crun's init is charged to it before the engine stamps the start, and the job's
    # helpers run on the other CPU.
    check "$name: split and wall" "user $cpu_user + system $cpu_system ns of $cpu ns; wall $wall ns, the burn's time inside $tuser s + $tsys s" \
        holds 'cpu >= 1e9 && (u + s - cpu) ^ 2 < 1e12 && (tu + ts) * 1e9 <= wall' \
        -v cpu="$cpu" -v u="$cpu_user" -v s="$cpu_system" -v wall="$wall" -v tu="$tuser" -v ts="$tsys"
}

# Memory and I/O: 64 MiB allocated and touched at once (dd's buffer), 4 MiB written past the
# page cache.
check_memory() {
    local stats peak own rss current written own_written engine_written
    new_job memory "busybox time -v -o time.txt dd if=/dev/zero of=/dev/null bs=64M count=1 2>/dev/null
dd if=/dev/zero of=written bs=1M count=4 oflag=direct 2>/dev/null
cat /sys/fs/cgroup/memory.peak > memory.peak.job
cat /sys/fs/cgroup/io.stat > io.stat.job
$hold"
    start_job
    wait_for "the allocation" test -e "$cwd/ready" || { fail memory "never ready: $(cat "$cwd/.stderr")"; return; }
    stats=$(engine_stats)
    touch "$cwd/go"
    finish_job || { fail memory "did not end"; return; }
    check_exact "memory job" || return
    # A last sample predates the work: nothing to compare.
    [[ $exact == true ]] || return
    peak=$(recorded .peak_memory_bytes)
    own=$(cat "$cwd/memory.peak.job")
    # busybox 1.35's time prints ru_maxrss times 4 (it takes the kilobytes for pages):
    # 267200 kB where GNU time says 66800 for the same dd on the host.
    rss=$(awk -F': ' '/Maximum resident/ { print $2 * 1024 / 4 }' "$cwd/time.txt")
    current=$(jq -r .memory_stats.usage <<<"$stats")
    check "peak memory" "usage $peak B (memory.peak; sampled: $(recorded .peak_memory_sampled)), the job's own memory.peak $own B, dd's maximum RSS $rss B by busybox time, engine's current usage $current B (its stats have no peak on cgroup v2)" \
        holds 'peak >= 64 * 2^20 && peak >= own && peak - own < 4 * 2^20 && peak >= rss - 4 * 2^20 && peak >= current' \
        -v peak="$peak" -v own="$own" -v rss="$rss" -v current="$current"
    written=$(recorded .io_write_bytes)
    own_written=$(awk '{ for (i = 2; i <= NF; i++) if ($i ~ /^wbytes=/) { sub(/^wbytes=/, "", $i); w += $i } } END { print w + 0 }' "$cwd/io.stat.job")
    # null when the engine's stats have no block I/O: then against the job's own io.stat alone.
    engine_written=$(jq '[.blkio_stats.io_service_bytes_recursive[]? | select(.op | ascii_downcase == "write") | .value] | add' <<<"$stats")
    check "block I/O" "usage written $written B, read $(recorded .io_read_bytes) B; the job's own io.stat written $own_written B; engine's stats written $engine_written B" \
        holds 'w >= 4 * 2^20 && w >= o && w - o < 2^20 && (e == "null" || (w >= e && w - e < 2^20))' \
        -v w="$written" -v o="$own_written" -v e="$engine_written"
}

# The binding cpuset, the pids limit and the memory+swap limit, as the kernel holds them in
# the job's own cgroup (a private cgroup namespace: /sys/fs/cgroup inside is its cgroup).
check_limits() {
    local out
    new_job limits 'grep Cpus_allowed_list /proc/self/status
cat /sys/fs/cgroup/cpuset.cpus.effective /sys/fs/cgroup/pids.max /sys/fs/cgroup/memory.max /sys/fs/cgroup/memory.swap.max'
    # The shepherd's `-binding` arrives as the starter's CPU affinity; h_vmem as RLIMIT_AS.
    start_job taskset -c 1 prlimit --as=$((256 << 20)):$((256 << 20))
    finish_job || { fail limits "did not end"; return; }
    check_exact "limits job"
    out=$(tr '\n\t' '| ' <"$cwd/.stdout")
    check "binding cpuset" "taskset -c 1 gave: $out" \
        test "$(sed -n 1p "$cwd/.stdout")" = "$(printf 'Cpus_allowed_list:\t1')" -a "$(sed -n 2p "$cwd/.stdout")" = 1
    check "pids limit" "pids.max $(sed -n 3p "$cwd/.stdout") (config pids_limit 4096)" \
        test "$(sed -n 3p "$cwd/.stdout")" = 4096
    check "memory+swap limit" "memory.max $(sed -n 4p "$cwd/.stdout"), memory.swap.max $(sed -n 5p "$cwd/.stdout") for h_vmem 256 MiB" \
        test "$(sed -n 4p "$cwd/.stdout")" = $((256 << 20)) -a "$(sed -n 5p "$cwd/.stdout")" = 0
}

check_oom() {
    new_job oom 'head -c 600m /dev/zero | tail > /dev/null'
    start_job prlimit --as=$((256 << 20)):$((256 << 20))
    finish_job || { fail "out of memory" "did not end"; return; }
    check "out of memory" "exit $code: $(grep -m1 'out of memory' "$cwd/.stderr"); $usage_line" \
        test "$code" = 137 -a -n "$(grep 'out of memory.*256 MiB' "$cwd/.stderr")" \
        -a "$(recorded .peak_memory_bytes)" -le $((256 << 20))
}

# Suspend and resume through the methods, as Grid Engine runs them: the engine's state and
# the kernel's freezer (cgroup.events) of the container's cgroup.
check_pause() {
    local cg state frozen before after code
    # shellcheck disable=SC2016 # the job's shell expands it
    new_job pause 'i=0; while [ ! -e stop ]; do i=$((i + 1)); echo $i > tick; sleep 0.1; done'
    start_job
    wait_for "the ticks" test -s "$cwd/tick" || { fail pause "never ticked"; return; }
    cg=/sys/fs/cgroup$(container_cgroup)
    as_job -- /usr/local/bin/qdock-suspend "$job" 0 "$starter" >/dev/null 2>&1
    code=$?
    state=$(docker inspect -f '{{.State.Status}}' "qdock-default-$job-0")
    frozen=$(sed -n 's/^frozen //p' "$cg/cgroup.events")
    before=$(cat "$cwd/tick")
    # Nothing moves while frozen: the guest's clock advances a second, the ticks do not.
    local start
    start=$(secs_since_boot)
    until holds 'now - start >= 1' -v now="$(secs_since_boot)" -v start="$start"; do sleep 0.1; done
    after=$(cat "$cwd/tick")
    check "suspend" "qdock-suspend exit $code; engine state $state; $cg/cgroup.events frozen $frozen; ticks $before then $after" \
        test "$code" = 0 -a "$state" = paused -a "$frozen" = 1 -a "$before" = "$after"
    as_job -- /usr/local/bin/qdock-resume "$job" 0 "$starter" >/dev/null 2>&1
    code=$?
    state=$(docker inspect -f '{{.State.Status}}' "qdock-default-$job-0")
    frozen=$(sed -n 's/^frozen //p' "$cg/cgroup.events")
    wait_for "a tick after the resume" sh -c "[ \"\$(cat '$cwd/tick')\" != '$after' ]"
    check "resume" "qdock-resume exit $code; engine state $state; frozen $frozen; ticks $after then $(cat "$cwd/tick")" \
        test "$code" = 0 -a "$state" = running -a "$frozen" = 0 -a "$(cat "$cwd/tick")" != "$after"
    touch "$cwd/stop"
    finish_job || { fail "pause job" "did not end"; return; }
    check_exact "pause job"
}

# The container's cgroup where the engine puts it by default, the place qdock looks first
# (src/usage/probe.rs): its processes there or in a cgroup below it.
# shellcheck disable=SC2317 # called by check_cpu, as its third argument's default
where_default() {
    local cg id place
    cg=$(container_cgroup)
    id=$(docker inspect -f '{{.Id}}' "qdock-default-$job-0")
    case $engine/$run in
        dockerd/cgroupfs) place=/docker/$id ;;
        dockerd/systemd) place=/system.slice/docker-$id.scope ;;
        dockerd-cgroupfs/systemd) place=/docker/$id ;;
        podman/cgroupfs) place=/libpod_parent/libpod-$id ;;
        podman/systemd) place=/machine.slice/libpod-$id.scope ;;
    esac
    check "cgroup place" "the container's processes are in $cg" test "$cg" = "$place" -o "${cg#"$place"/}" != "$cg"
}

# dockerd's --cgroup-parent, as an admin sets it: no default place, found through the
# engine's pid. The burn's checks hold there too.
# shellcheck disable=SC2317 # called by check_cpu, as its third argument
where_parent() {
    local cg
    cg=$(container_cgroup)
    check "cgroup parent" "the container's cgroup is $cg" test "${cg#/site-jobs/}" != "$cg"
}
check_parent() {
    if ! stop_engine || ! start_engine --cgroup-parent=/site-jobs; then
        fail "cgroup parent" "dockerd did not restart"
        return
    fi
    check_cpu "cpu burn under a cgroup parent" 100000 where_parent
}

# --- the run -------------------------------------------------------------------------------

echo "guest: $run run, kernel $(uname -r), uptime $(secs_since_boot) s"
if ! start_engine || ! install_qdock || ! build_image; then
    fail "setup" "the engine, qdock or the test image could not be set up"
    echo "guest: done"
    exit 1
fi
# Every check against the engine under test.
checks() {
    check_hierarchy
    check_trivial
    check_cpu
    check_memory
    check_limits
    if [[ $run == cgroupfs ]]; then
        check_oom
        check_pause
        # Podman has no engine-wide cgroup parent (containers.conf has no such key; only
        # `podman run --cgroup-parent`, which qdock does not pass).
        [[ $engine == dockerd ]] && check_parent
    fi
    echo "guest: $engine: $jobs_run jobs, done at uptime $(secs_since_boot) s"
}

echo "guest: set up at uptime $(secs_since_boot) s"
checks
if switch_to_podman; then
    echo "guest: podman set up at uptime $(secs_since_boot) s"
    checks
else
    engine=podman fail "setup" "Podman's service could not be started or the test image not loaded"
fi
if [[ $run == systemd ]]; then
    if switch_to_cgroupfs_driver; then
        echo "guest: dockerd with its cgroupfs driver at uptime $(secs_since_boot) s"
        checks
    else
        engine=dockerd-cgroupfs fail "setup" "dockerd did not restart with its cgroupfs driver"
    fi
fi
echo "guest: done"
exit "$failed"
