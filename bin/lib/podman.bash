# shellcheck shell=bash disable=SC2154 # sourced: the scripts that source it set $repo
# Podman beside dockerd: rootful Podman serving its Docker-compatible API on a socket of its
# own, for the tests that run qdock against Podman (QDOCK_TEST_ENGINE=podman). It touches
# neither dockerd nor any qdock config: a site that runs Podman names this socket in
# `[engine] socket`. Sourced by bin/setup-cluster, which runs setup_podman for --engine
# podman and defines log, die, wait_for, is_installed and clean_env.

podman_socket=/run/podman/podman.sock
podman_packages=(podman catatonit)

podman_answers() { timeout 10 env DOCKER_HOST="unix://$podman_socket" docker version >/dev/null 2>&1; }

install_podman() {
    local missing=() p
    for p in "${podman_packages[@]}"; do is_installed "$p" || missing+=("$p"); done
    ((${#missing[@]})) || { log "podman present"; return; }
    log "installing ${missing[*]}"
    # With its recommends, as measured (README, "Podman"). Its systemd units (podman.socket)
    # never start without systemd; the service below is started by hand.
    local apt=(env DEBIAN_FRONTEND=noninteractive apt-get install -y -q -o DPkg::Lock::Timeout=600)
    "${apt[@]}" "${missing[@]}" >/dev/null \
        || { apt-get update -q >/dev/null && "${apt[@]}" "${missing[@]}" >/dev/null; }
}

# The socket belongs to group docker, mode 0660, like dockerd's: the installed qdock
# binaries are setgid docker (bin/install), and that one group stays the single key to
# whichever engine a host runs. A group of Podman's own would need binaries of another
# group, and gives no less than root either way (rootful Podman, like dockerd, is root).
start_podman() {
    if ! podman_answers; then
        log "starting podman system service on $podman_socket (log /var/log/qdock-podman.log)"
        install -d -m 0755 "$(dirname "$podman_socket")"
        rm -f "$podman_socket"
        setsid nohup "${clean_env[@]}" podman system service --time=0 "unix://$podman_socket" \
            </dev/null >>/var/log/qdock-podman.log 2>&1 &
        wait_for 30 podman_answers || die "podman did not answer in 30 s; see /var/log/qdock-podman.log"
    else
        log "podman system service running"
    fi
    chgrp docker "$podman_socket"
    chmod 0660 "$podman_socket"
}

# The test images in Podman as in dockerd: the images dockerd built from examples/images
# (examples/images/build), saved and loaded, so both engines run the same image ID. Podman
# names a loaded image `localhost/<name>`; qdock finds it under the name a user types
# (src/engine/mod.rs).
load_podman_images() {
    local recipe name id
    for recipe in "$repo"/examples/images/*/Dockerfile; do
        name=$(sed -n 's/^# qdock-image: *//p' "$recipe" | head -n1)
        id=$(docker image inspect -f '{{.Id}}' "$name")
        if [[ $(podman image inspect -f '{{.Id}}' "localhost/$name" 2>/dev/null) == "${id#sha256:}" ]]; then
            log "podman: $name up to date"
            continue
        fi
        docker save "$name" | podman load -q >/dev/null
        log "podman: loaded $name"
    done
}

setup_podman() {
    install_podman
    start_podman
    load_podman_images
}
