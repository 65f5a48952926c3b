# shellcheck shell=bash disable=SC2154 # sourced: bin/setup-cluster sets $repo and $host
# Fake GPUs for trying GPU jobs without a GPU (README, "GPUs"): N character devices
# /dev/qdock-gpu0…, copies of /dev/null (1:3, so a job can write to its own), registered as a
# site registers real GPUs: the consumable `gpu`, `complex_values gpu=N` on this machine's
# execution host, the devices in [gpus] of /etc/qdock/qdock.toml (made from the example when
# missing: bin/install keeps an existing config), and a CDI spec of kind qdock.test/gpu
# describing them, for the `cdi` mode. Sourced by bin/setup-cluster (--fake-gpus N), which
# defines log, die and qc.

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
    # A config from before GPUs: the example's section (its last) is added.
    if ! grep -q '^\[gpus\]' "$fake_gpu_conf"; then
        { echo; sed -n '/^\[gpus\]/,$p' "$repo/sge-conf/qdock.example.toml"; } >>"$fake_gpu_conf"
    fi
    list=$(printf '"%s", ' "${nodes[@]}")
    sed -i "/^\[gpus\]/,/^\[/ s|^devices = .*|devices = [${list%, }]|" "$fake_gpu_conf"
    grep -q "^devices = \[\"/dev/qdock-gpu" "$fake_gpu_conf" \
        || die "$fake_gpu_conf has no [gpus] section with a devices line to list the fake GPUs in"
    log "fake GPUs: ${nodes[*]} (gpu=$n on $host, [gpus] devices in $fake_gpu_conf, CDI spec $fake_gpu_cdi)"
}
