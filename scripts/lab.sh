#!/usr/bin/env bash
# The local lab of hostnet.provision (root):
#   scripts/lab.sh up [N]              N hosts lab1..labN (default 3) on an underlay switch
#   scripts/lab.sh down                end the lab; nothing is left behind
#   scripts/lab.sh status [--json]     the hosts and whether they run
#   scripts/lab.sh exec HOST [CMD...]  run CMD (default: a shell) inside HOST
#
# Each host is a long-lived process in its own network, mount, UTS, IPC and
# PID namespaces, reached by Ansible through the connection plugin
# hostnet.provision.nsenter; `up` writes $HOSTNET_LAB_DIR/inventory.yml
# (default lab directory: <repo>/.cache/lab). The machine's own network is
# never changed. See docs/lab.md; the work is done by scripts/lab.py.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
exec python3 "$REPO/scripts/lab.py" "$@"
