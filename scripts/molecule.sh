#!/usr/bin/env bash
# Run the Molecule scenarios of hostnet.provision (root):
#   scripts/molecule.sh [SCENARIO...]        `molecule test` of each (default: all, VM scenario last)
#   scripts/molecule.sh --ns                 only the namespace-host scenarios (fast)
#   MOLECULE_COMMAND=converge scripts/molecule.sh overlay_network   another molecule command
#
# Namespace-host scenarios run on the local lab (scripts/lab.sh), the `vm`
# scenario on Debian 12 VMs under qemu (scripts/vm.sh); molecule/shared holds
# their create/destroy/prepare playbooks. After each scenario the script
# checks that nothing of it is left running (lab processes, qemu), whatever
# molecule said. Timings are printed at the end.
# Nothing is ever installed from Ansible Galaxy. See docs/molecule.md.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=$REPO/.venv
cd "$REPO"

die() { printf 'molecule.sh: %s\n' "$*" >&2; exit 1; }
[[ -x $VENV/bin/molecule ]] || die "$VENV/bin/molecule missing: run scripts/setup.sh"
[[ $(id -u) -eq 0 ]] || die "needs root (namespaces, qemu)"

# molecule runs ansible-playbook, ansible-config ... from PATH.
export PATH=$VENV/bin:$PATH
export ANSIBLE_NOCOLOR=1 ANSIBLE_FORCE_COLOR=0 PY_COLORS=0 NO_COLOR=1
# Make `hostnet.provision.*` resolvable from this checkout; nothing from Galaxy.
COLLECTIONS=$REPO/.cache/collections
mkdir -p "$COLLECTIONS/ansible_collections/hostnet"
# Replaced only when it points elsewhere: `ln -sfn` removes the link before
# making it anew, and a test.sh, molecule.sh or test shard running at the
# same time must never miss it.
[[ $(readlink "$COLLECTIONS/ansible_collections/hostnet/provision") == "$REPO" ]] \
    || ln -sfn "$REPO" "$COLLECTIONS/ansible_collections/hostnet/provision"
export ANSIBLE_COLLECTIONS_PATH=$COLLECTIONS ANSIBLE_GALAXY_DISABLE_GPG_VERIFY=1

NS_SCENARIOS=(overlay_network bridge_network tenant_networks)
VM_SCENARIOS=(vm)
COMMAND=${MOLECULE_COMMAND:-test}

scenarios=()
if [[ $# -eq 0 ]]; then
    scenarios=("${NS_SCENARIOS[@]}" "${VM_SCENARIOS[@]}")
elif [[ $1 == --ns ]]; then
    scenarios=("${NS_SCENARIOS[@]}")
else
    scenarios=("$@")
fi
for scenario in "${scenarios[@]}"; do
    [[ -f molecule/$scenario/molecule.yml ]] || die "no scenario molecule/$scenario"
done

# Each scenario keeps its ephemeral directory (and so its lab or VM
# directory) at a known place, so that leftovers can be looked for.
ephemeral() { echo "$REPO/.cache/molecule/$1"; }

# leftovers SCENARIO: the processes still running whose command line names
# the scenario's ephemeral directory: lab hosts and the switch (their init
# carries the lab directory), qemu (its disks and sockets are there).
leftovers() {
    python3 - "$(ephemeral "$1")/" <<'PY'
import os, sys
needle = sys.argv[1].encode()
found = []
for pid in filter(str.isdigit, os.listdir('/proc')):
    try:
        with open('/proc/%s/cmdline' % pid, 'rb') as handle:
            argv = handle.read().split(b'\0')
        with open('/proc/%s/stat' % pid, 'rb') as handle:
            zombie = handle.read().rsplit(b')', 1)[-1].split()[0] == b'Z'
    except OSError:
        continue
    if int(pid) != os.getpid() and not zombie and any(needle in arg for arg in argv):
        found.append('%s %s' % (pid, os.path.basename(argv[0].decode(errors='replace'))))
if found:
    print(', '.join(found))
PY
}

results=()
failed=0
for scenario in "${scenarios[@]}"; do
    printf '\n=== molecule %s -s %s\n' "$COMMAND" "$scenario"
    start=$SECONDS
    rc=0
    MOLECULE_EPHEMERAL_DIRECTORY=$(ephemeral "$scenario") molecule "$COMMAND" -s "$scenario" || rc=$?
    took=$((SECONDS - start))
    left=$(leftovers "$scenario")
    if [[ -n $left && $COMMAND == test ]]; then
        printf 'molecule.sh: %s left things running: %s\n' "$scenario" "$left" >&2
        [[ $rc -ne 0 ]] || rc=99
    fi
    if [[ $rc -eq 0 ]]; then
        results+=("$(printf '%-16s passed   %4ds' "$scenario" "$took")")
    else
        results+=("$(printf '%-16s FAILED   %4ds (exit %d)' "$scenario" "$took" "$rc")")
        failed=$((failed + 1))
    fi
done

printf '\n=== molecule %s summary\n' "$COMMAND"
printf '%s\n' "${results[@]}"
passed=$(printf '%s\n' "${results[@]}" | grep -c ' passed ' || true)
printf 'molecule: %d passed, %d failed\n' "$passed" "$failed"
[[ $failed -eq 0 ]]
