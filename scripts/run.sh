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

# The picture of the lab next to the report: each host's net_info result
# (scripts/netinfo.yml) drawn by scripts/netpic.py; an SVG when Graphviz's
# `dot` is installed (scripts/setup.sh installs it), else the DOT source only.
PICTURES=$LAB_DIR/pictures
rm -rf "$PICTURES"
mkdir -p "$PICTURES"
if "$VENV/bin/ansible-playbook" -i "$LAB_DIR/inventory.yml" -i "$REPO/playbooks/inventory/lab" \
        -e "netinfo_dir=$PICTURES" "$REPO/scripts/netinfo.yml" >"$PICTURES/netinfo.log" 2>&1; then
    "$VENV/bin/python" "$REPO/scripts/netpic.py" --title "the lab after playbooks/site.yml" \
        --out "$PICTURES/lab.dot" "$PICTURES"/lab*.json
    if command -v dot >/dev/null; then
        dot -Tsvg -o "$PICTURES/lab.svg" "$PICTURES/lab.dot"
        echo "Picture of the lab: $PICTURES/lab.svg (net_info results: $PICTURES/*.json)"
    else
        echo "Picture of the lab: Graphviz's dot is not installed, so no SVG; the DOT source is $PICTURES/lab.dot"
    fi
else
    echo "run.sh: gathering net_info for the picture of the lab failed (see $PICTURES/netinfo.log); no picture" >&2
fi

echo
echo "The lab is still up: 'sudo bash scripts/lab.sh exec lab1 ip -br addr' to look around,"
echo "'sudo bash scripts/lab.sh down' to remove it."
