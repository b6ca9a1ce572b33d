#!/usr/bin/env bash
# Benchmarks of hostnet.provision at scale (bench/README.md):
#   scripts/bench.sh [--quick] [bench/run.py options...]
#
# Runs bench/run.py inside a throwaway network sandbox (scripts/sandbox.sh),
# so nothing touches the machine's network, and prints the results table.
# --quick runs the small scales only (a smoke test). Results are written to
# bench/results/<date>/ (bench/results/latest is the last run). Needs root;
# run scripts/setup.sh first (it installs bench/requirements.txt for the plot).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=$REPO/.venv

if [[ ! -x $VENV/bin/python ]]; then
    echo "bench.sh: $VENV missing: run scripts/setup.sh" >&2
    exit 1
fi

# Make `hostnet.provision.*` resolvable from this checkout (as test.sh does).
COLLECTIONS=$REPO/.cache/collections
mkdir -p "$COLLECTIONS/ansible_collections/hostnet"
ln -sfn "$REPO" "$COLLECTIONS/ansible_collections/hostnet/provision"
export ANSIBLE_COLLECTIONS_PATH=$COLLECTIONS

exec bash "$REPO/scripts/sandbox.sh" "$VENV/bin/python" "$REPO/bench/run.py" "$@"
