# shellcheck shell=bash disable=SC2154 # sourced: the scripts that source it set $repo
# Which qdock this machine has: the Debian package's (bin/package) or bin/install's. They
# install the same files, the package under /usr and bin/install under /usr/local, and each
# one's sge-conf names its own paths (the package's copy is rewritten). Sourced by
# bin/install, bin/setup-cluster, bin/test and bin/check-package, which define $repo.

qdock_package_installed() { dpkg-query -W -f='${Status}' qdock 2>/dev/null | grep -q ' installed$'; }

# /usr or /usr/local: the prefix of the installed binaries (bin/, libexec/qdock/).
installed_prefix() { if qdock_package_installed; then echo /usr; else echo /usr/local; fi; }

# The sge-conf whose scripts and method lines name the installed binaries.
installed_sge_conf() {
    if qdock_package_installed; then echo /usr/share/qdock/sge-conf; else echo "$repo/sge-conf"; fi
}
