#!/usr/bin/env bash
# Run a command inside a throwaway network sandbox:
#   scripts/sandbox.sh CMD [ARGS...]
#
# CMD runs in a fresh network namespace and a private mount namespace with
# its own tmpfs on /run (so /run/netns and /run/hostnet start empty) and
# /sys remounted (so /sys/class/net shows the sandbox's links). Only `lo`
# exists, and it is up. Everything CMD creates -- links, namespaces,
# nftables tables -- disappears when it exits; the host's network and
# /run are never touched. Needs root (CAP_SYS_ADMIN).
set -euo pipefail

if [[ $# -eq 0 ]]; then
    echo "usage: $0 CMD [ARGS...]" >&2
    exit 2
fi

# Tests compare this with their own namespace to prove they are sandboxed.
HOSTNET_OUTER_NETNS=$(stat -L -c %i /proc/self/ns/net)
export HOSTNET_OUTER_NETNS

# shellcheck disable=SC2016  # expanded by the inner shell
exec unshare --net --mount --propagation private -- bash -c '
    set -euo pipefail
    mount -t tmpfs -o mode=0755 tmpfs /run
    mkdir -p /run/netns
    mount -t sysfs sysfs /sys
    ip link set lo up
    exec "$@"
' sandbox "$@"
