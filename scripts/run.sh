#!/usr/bin/env bash
# Run the main job of hostnet.provision:
#   sudo bash scripts/run.sh [ansible-playbook options...]
#
# For now that is playbooks/demo_segment.yml: it builds a small bridge
# segment (a bridge with a gateway, two namespaces joined to it by veth
# pairs), pings across it, shows it and tears it down -- all inside a
# throwaway network namespace sandbox (scripts/sandbox.sh), so the
# machine's own network is never touched. Run scripts/setup.sh first.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=$REPO/.venv
cd "$REPO"

if [[ ! -x $VENV/bin/ansible-playbook ]]; then
    echo "run.sh: $VENV missing: run scripts/setup.sh first" >&2
    exit 1
fi

# Make `hostnet.provision.*` resolvable from this checkout.
COLLECTIONS=$REPO/.cache/collections
mkdir -p "$COLLECTIONS/ansible_collections/hostnet"
ln -sfn "$REPO" "$COLLECTIONS/ansible_collections/hostnet/provision"
export ANSIBLE_COLLECTIONS_PATH=$COLLECTIONS

exec bash "$REPO/scripts/sandbox.sh" \
    "$VENV/bin/ansible-playbook" -i localhost, -c local \
    -e "ansible_python_interpreter=$VENV/bin/python" \
    "$@" "$REPO/playbooks/demo_segment.yml"
