#!/usr/bin/env bash
# The main job of hostnet.provision: playbooks/site.yml on the local lab.
#   sudo bash scripts/run.sh [ansible-playbook options...]
#
# Brings the lab up if it is not running (scripts/lab.sh up: three namespace
# "hosts" joined by an underlay switch; the machine's own network is never
# touched), then runs site.yml against it: bridge networks on lab1, isolated
# tenants on lab2, an overlay across lab1..lab3, and a report proven with
# real packets. The lab stays up for a look around; `scripts/lab.sh down`
# removes it. Run scripts/setup.sh first.
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
export PATH=$VENV/bin:$PATH

LAB_DIR=${HOSTNET_LAB_DIR:-$REPO/.cache/lab}
bash "$REPO/scripts/lab.sh" up 3

"$VENV/bin/ansible-playbook" -i "$LAB_DIR/inventory.yml" -i "$REPO/playbooks/inventory/lab" \
    "$@" "$REPO/playbooks/site.yml"

echo
echo "The lab is still up: 'sudo bash scripts/lab.sh exec lab1 ip -br addr' to look around,"
echo "'sudo bash scripts/lab.sh down' to remove it."
