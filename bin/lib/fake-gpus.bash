# shellcheck shell=bash disable=SC2154 # sourced: bin/setup-cluster sets $repo and $host
# Fake GPUs for trying GPU jobs without a GPU (README, "GPUs"): N character devices
# /dev/qdock-gpu0…, copies of /dev/null (1:3, so a job can write to its own), registered as a
# site registers real GPUs: the consumable `gpu`, `complex_values gpu=N` on this machine's
# execution host, the devices in [gpus] of /etc/qdock/qdock.toml (made from the example when
# missing: bin/install keeps an existing config), and a CDI spec of kind qdock.test/gpu
# describing them, for the `cdi` mode. A mixed cell's Podman host gets two of its own
# (setup_host_fake_gpus). Sourced by bin/setup-cluster (--fake-gpus N), which defines log,
# die and qc, and bin/lib/hosts.bash's hosts_state.

fake_gpu_conf=/etc/qdock/qdock.toml
fake_gpu_cdi=/etc/cdi/qdock-test-gpu.json

setup_fake_gpus() {
    local n=$1 i nodes=() cdi_devices=() list
    for ((i = 0; i < n; i++)); do
        nodes+=("/dev/qdock-gpu$i")
        [[ -c /dev/qdock-gpu$i ]] || mknod -m 0666 "/dev/qdock-gpu$i" c 1 3
        cdi_devices+=("{\"name\":\"$i\",\"containerEdits\":{\"deviceNodes\":[{\"path\":\"/dev/qdock-gpu$i\"}]}}")
    done
    # Those above N go, as --hosts removes hosts above N.
    for node in /dev/qdock-gpu*; do
        [[ -e $node ]] || continue
        i=${node#/dev/qdock-gpu}
        ((i < n)) || rm -f "$node"
    done
    install -d -m 0755 "$(dirname "$fake_gpu_cdi")"
    local IFS=,
    printf '{"cdiVersion":"0.5.0","kind":"qdock.test/gpu","devices":[%s]}\n' "${cdi_devices[*]}" \
        >"$fake_gpu_cdi"
    unset IFS
    if ! qconf -sc | awk '$1 == "gpu" { found = 1 } END { exit !found }'; then
        qconf -sc >"$tmp/complexes"
        echo "gpu gpu INT <= YES YES 0 0" >>"$tmp/complexes"
        qc -Mc "$tmp/complexes"
        log "complex gpu (a consumable per slot)"
    fi
    qc -mattr exechost complex_values "gpu=$n" "$host"
    if [[ ! -e $fake_gpu_conf ]]; then
        install -d -m 0755 "$(dirname "$fake_gpu_conf")"
        install -m 0644 "$repo/sge-conf/qdock.example.toml" "$fake_gpu_conf"
    fi
    list_fake_gpus "$fake_gpu_conf" "/var/lib/qdock/gpus" "${nodes[@]}"
    log "fake GPUs: ${nodes[*]} (gpu=$n on $host, [gpus] devices in $fake_gpu_conf, CDI spec $fake_gpu_cdi)"
}

# Two fake GPUs of host $1's own, /dev/qdock-$1-gpu0 and 1, in its config, with a ledger of its
# own in the host's state directory (which goes with the host): the namespace hosts share
# this machine's /var/lib/qdock, where a real host has its own.
setup_host_fake_gpus() {
    local h=$1 n=2 i nodes=() ledger=$hosts_state/$1/gpus
    for ((i = 0; i < n; i++)); do
        nodes+=("/dev/qdock-$h-gpu$i")
        [[ -c /dev/qdock-$h-gpu$i ]] || mknod -m 0666 "/dev/qdock-$h-gpu$i" c 1 3
    done
    # As sge-conf/setup-host makes /var/lib/qdock/gpus.
    install -d -o root -g docker -m 2770 "$ledger"
    qc -mattr exechost complex_values "gpu=$n" "$h"
    list_fake_gpus "$hosts_state/$h/qdock/qdock.toml" "$ledger" "${nodes[@]}"
    log "fake GPUs on $h: ${nodes[*]} (gpu=$n, its ledger $ledger)"
}

# list_fake_gpus CONF LEDGER NODE...: CONF's [gpus] lists the NODEs, its ledger LEDGER.
list_fake_gpus() {
    local conf=$1 ledger=$2 list
    shift 2
    # A config from before GPUs: the example's section (its last) is added.
    if ! grep -q '^\[gpus\]' "$conf"; then
        { echo; sed -n '/^\[gpus\]/,$p' "$repo/sge-conf/qdock.example.toml"; } >>"$conf"
    fi
    list=$(printf '"%s", ' "$@")
    sed -i "/^\[gpus\]/,/^\[/ { s|^devices = .*|devices = [${list%, }]|; s|^lock_dir = .*|lock_dir = \"$ledger\"| }" "$conf"
    grep -qF "devices = [${list%, }]" "$conf" \
        || die "$conf has no [gpus] section with a devices line to list the fake GPUs in"
}
