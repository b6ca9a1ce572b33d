#!/usr/bin/env bash
# Run the test suite of hostnet.provision:
#   scripts/test.sh [lint|sanity|units|integration|pytest|newest|all]...   (default: all)
#
#   lint         ansible-lint, production profile, on the whole repository;
#                antsibull-changelog lint on the changelog fragments;
#                scripts/docs.sh lint (docs site: generated guides up to date,
#                links resolve, antsibull-docs lint-collection-docs --plugin-docs)
#   sanity       ansible-test sanity on a copy of the collection tree
#   units        ansible-test units (tests/unit, in a venv of its own with
#                tests/unit/requirements.txt) on a copy of the collection tree
#   integration  ansible-test integration (tests/integration/targets: one
#                target per module) inside the network sandbox
#   pytest       unit + integration tests with pyroute2 0.9 (.venv) and
#                integration tests with pyroute2 0.7.2 (.venv-pyroute2-0.7),
#                both on ansible-core 2.19, and the newest section; the
#                integration runs go as four shards at once, each in a
#                sandbox of its own, their logs shown in order at the end
#                (HOSTNET_TEST_JOBS=1: one after another, output as it comes)
#   newest       on the newest ansible-core (.venv-ansible-core-newest: 2.21
#                on Python 3.12+, newest pyroute2): the unit tests, the
#                module tests (every resource module's file), whole playbooks
#                with a role by FQCN and module_defaults (NEWEST_FILES)
#
# `all` runs lint, sanity, units, integration and pytest (pytest includes
# newest, its integration part as a fourth shard).
#
# Needs root for the integration tests. Run scripts/setup.sh first.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=$REPO/.venv
VENV07=$REPO/.venv-pyroute2-0.7
cd "$REPO"

banner() { printf '\n========== %s ==========\n' "$*"; }
die() { printf 'test.sh: %s\n' "$*" >&2; exit 1; }

[[ -x $VENV/bin/python ]] || die "$VENV missing: run scripts/setup.sh"

# Tools started by the tools (ansible-lint -> ansible-playbook, ansible-test
# -> ansible-doc ...) are looked up on PATH: put the venv's first.
export PATH=$VENV/bin:$PATH
export ANSIBLE_NOCOLOR=1 PY_COLORS=0

# Make `hostnet.provision.*` resolvable from this checkout.
COLLECTIONS=$REPO/.cache/collections
mkdir -p "$COLLECTIONS/ansible_collections/hostnet"
# Replaced only when it points elsewhere: `ln -sfn` removes the link before
# making it anew, and a test.sh, molecule.sh or test shard running at the
# same time must never miss it.
[[ $(readlink "$COLLECTIONS/ansible_collections/hostnet/provision") == "$REPO" ]] \
    || ln -sfn "$REPO" "$COLLECTIONS/ansible_collections/hostnet/provision"
export ANSIBLE_COLLECTIONS_PATH=$COLLECTIONS

run_lint() {
    banner "ansible-lint (production profile)"
    "$VENV/bin/ansible-lint" --profile production
    banner "antsibull-changelog lint"
    "$VENV/bin/antsibull-changelog" lint
    banner "docs: generated guides, links, antsibull-docs lint-collection-docs"
    bash "$REPO/scripts/docs.sh" lint
}

COPIES=()
remove_copies() {
    local dir
    for dir in "${COPIES[@]}"; do rm -rf "$dir"; done
}
trap 'stop_shards; remove_copies' EXIT

# collection_copy: set COPY to the path of a fresh copy of the collection tree at
# .../ansible_collections/hostnet/provision (where ansible-test wants it):
# tracked files plus untracked files that are not ignored -- what a commit
# would contain, without .venv, caches or test output.
collection_copy() {
    local tmp dest
    tmp=$(mktemp -d)
    COPIES+=("$tmp")
    dest=$tmp/ansible_collections/hostnet/provision
    mkdir -p "$dest"
    git ls-files -z -co --exclude-standard \
        | rsync -a --from0 --files-from=- ./ "$dest/"
    COPY=$dest
}

run_sanity() {
    banner "ansible-test sanity"
    collection_copy
    (
        cd "$COPY"
        unset ANSIBLE_COLLECTIONS_PATH
        exec "$VENV/bin/ansible-test" sanity --python 3.11 --requirements --color no
    )
}

# The unit tests as ansible-test runs them: a venv of its own with
# ansible-core, pytest and tests/unit/requirements.txt.
run_units() {
    banner "ansible-test units"
    collection_copy
    (
        cd "$COPY"
        unset ANSIBLE_COLLECTIONS_PATH
        exec "$VENV/bin/ansible-test" units --venv --python 3.11 --requirements --color no
    )
}

# The integration targets change kernel state (inside namespaces they make
# and delete): run them inside the network sandbox, with .venv's Python
# (which has pyroute2; the sandbox has no network to install anything).
run_integration() {
    banner "ansible-test integration in a sandbox"
    collection_copy
    (
        cd "$COPY"
        unset ANSIBLE_COLLECTIONS_PATH
        exec bash "$REPO/scripts/sandbox.sh" "$VENV/bin/ansible-test" integration --local --python 3.11 \
            --allow-destructive --allow-root --color no
    )
}

# pytest_run COMMAND...: run a pytest command line; exit 5 (no tests
# collected) counts as failure, like every other non-zero exit.
pytest_run() {
    local rc=0
    "$@" || rc=$?
    if [[ $rc -eq 5 ]]; then
        echo "test.sh: pytest collected no tests ($*)" >&2
    fi
    return "$rc"
}

# Shards: commands that run at the same time, each in a sandbox of its own
# (scripts/sandbox.sh: a network namespace and /run of its own, so they never
# see each other's links, namespaces or nftables tables). Most of a pytest
# run waits (probes, playbooks, timeouts), so on 2 cores the shards together
# take about the time of the longest. Each one's output goes to a log,
# printed whole and in order once all have ended; every shard's exit status
# counts. HOSTNET_TEST_JOBS=1 runs them one after another instead, output
# as it comes.
SHARD_NAMES=()
SHARD_PIDS=()
SHARD_LOGS=()
SHARD_RCS=()
SHARD_DIR=

# shard NAME COMMAND...: start COMMAND (through pytest_run) as shard NAME.
shard() {
    local name=$1
    shift
    SHARD_NAMES+=("$name")
    if [[ ${HOSTNET_TEST_JOBS:-} == 1 ]]; then
        banner "$name"
        local rc=0 start=$SECONDS
        pytest_run "$@" || rc=$?
        printf -- '---------- %s: %s in %ds\n' "$name" "$([[ $rc -eq 0 ]] && echo ok || echo "FAILED (exit $rc)")" \
            "$((SECONDS - start))"
        SHARD_PIDS+=(-)
        SHARD_LOGS+=(-)
        SHARD_RCS+=("$rc")
        return 0
    fi
    [[ -n $SHARD_DIR ]] || SHARD_DIR=$(mktemp -d /tmp/hostnet-test-XXXXXX)
    local log=$SHARD_DIR/${#SHARD_NAMES[@]}.log
    set -m
    (
        start=$SECONDS
        rc=0
        pytest_run "$@" || rc=$?
        printf -- '---------- %s: %s in %ds\n' "$name" "$([[ $rc -eq 0 ]] && echo ok || echo "FAILED (exit $rc)")" \
            "$((SECONDS - start))"
        exit "$rc"
    ) </dev/null >"$log" 2>&1 &
    set +m
    SHARD_PIDS+=($!)
    SHARD_LOGS+=("$log")
    SHARD_RCS+=(running)
    printf 'started: %s (pid %d)\n' "$name" "$!"
}

# wait_shards: wait for every shard; print the logs in order; fail if any failed.
wait_shards() {
    local i pid rc failed=0 start=$SECONDS
    local -a running
    while :; do
        running=()
        for i in "${!SHARD_NAMES[@]}"; do
            [[ ${SHARD_RCS[i]} != running ]] || running+=("${SHARD_PIDS[i]}")
        done
        [[ ${#running[@]} -gt 0 ]] || break
        rc=0
        pid=
        wait -n -p pid "${running[@]}" || rc=$?
        [[ -n $pid ]] || die "lost track of the shards (wait: exit $rc)"
        for i in "${!SHARD_NAMES[@]}"; do
            if [[ ${SHARD_PIDS[i]} == "$pid" ]]; then
                SHARD_RCS[i]=$rc
                printf 'ended after %ds: %s (exit %d)\n' "$((SECONDS - start))" "${SHARD_NAMES[i]}" "$rc"
            fi
        done
    done
    for i in "${!SHARD_NAMES[@]}"; do
        if [[ ${SHARD_LOGS[i]} != - ]]; then
            banner "${SHARD_NAMES[i]}"
            cat "${SHARD_LOGS[i]}"
        fi
    done
    for i in "${!SHARD_NAMES[@]}"; do
        if [[ ${SHARD_RCS[i]} -ne 0 ]]; then
            printf 'test.sh: FAILED: %s (exit %s)\n' "${SHARD_NAMES[i]}" "${SHARD_RCS[i]}" >&2
            failed=1
        fi
    done
    SHARD_NAMES=() SHARD_PIDS=() SHARD_LOGS=() SHARD_RCS=()
    [[ -z $SHARD_DIR ]] || rm -rf "$SHARD_DIR"
    SHARD_DIR=
    return "$failed"
}

# Shards still running when test.sh ends early (Ctrl-C, a failed step): end
# them. Each runs in a process group of its own (set -m), so the group's
# kill reaches the pytest in its sandbox.
stop_shards() {
    local i
    for i in "${!SHARD_NAMES[@]}"; do
        [[ ${SHARD_RCS[i]} != running ]] || kill -- "-${SHARD_PIDS[i]}" 2>/dev/null || true
    done
    [[ -z $SHARD_DIR ]] || rm -rf "$SHARD_DIR"
}

# Unit tests run as they are; integration tests (which create links and
# namespaces) run inside throwaway network sandboxes, once per supported
# pyroute2: the newest (.venv) and Debian 12's 0.7.2 (.venv-pyroute2-0.7).
# With 0.7.2 the whole-playbook tests (markers playbook, lab) are left out:
# they drive the same modules the module tests prove on 0.7.2, and the VM
# scenario runs every role on Debian's own pyroute2 0.7.2.
# Four shards at once: with the newest pyroute2, the files that drive the
# roles on the lab and a few other whole playbooks (about half of its time)
# and every other file (whatever is added to tests/integration lands
# there); with 0.7.2, the whole selection; and the newest ansible-core's
# selection (newest_shard).
LAB_FILES=(tests/integration/test_roles.py tests/integration/test_lab.py tests/integration/test_lab_restore.py
    tests/integration/test_check_mode_fresh.py tests/integration/test_tarball.py
    tests/integration/test_module_defaults.py)
run_pytest() {
    local venv version file
    local -a select ignore=()
    [[ -x $VENV07/bin/python ]] || die "$VENV07 missing: run scripts/setup.sh"
    for file in "${LAB_FILES[@]}"; do
        [[ -f $file ]] || die "$file missing: update LAB_FILES in $0"
        ignore+=(--ignore "$file")
    done
    for venv in "$VENV" "$VENV07"; do
        version=$("$venv/bin/python" -c 'import pyroute2; print(pyroute2.__version__)')
        banner "pytest: unit, pyroute2 $version"
        pytest_run "$venv/bin/python" -m pytest tests/unit -q
    done
    newest_units
    for venv in "$VENV" "$VENV07"; do
        version=$("$venv/bin/python" -c 'import pyroute2; print(pyroute2.__version__)')
        if [[ $venv == "$VENV" ]]; then
            shard "pytest: integration in a sandbox, pyroute2 $version: roles, lab, whole playbooks" \
                bash "$REPO/scripts/sandbox.sh" "$venv/bin/python" -m pytest "${LAB_FILES[@]}" -q
            shard "pytest: integration in a sandbox, pyroute2 $version: the other files" \
                bash "$REPO/scripts/sandbox.sh" "$venv/bin/python" -m pytest tests/integration -q "${ignore[@]}"
        else
            select=(-m 'not playbook and not lab')
            shard "pytest: integration in a sandbox, pyroute2 $version ${select[*]}" \
                bash "$REPO/scripts/sandbox.sh" "$venv/bin/python" -m pytest tests/integration -q "${select[@]}"
        fi
    done
    newest_shard
    wait_shards
}

# The newest ansible-core: AnsibleModule, templating and ansible-playbook as
# the newest release has them. The module files (each resource module's
# quartet: check, apply, again, check again), net_info, and the playbooks
# that apply a role by FQCN, with module_defaults of the play (test_playbook,
# test_tarball, the bridge_network case of test_module_defaults). The role
# tests on the lab (test_roles, test_lab) stay on ansible-core 2.19 only:
# they drive the same modules through the same roles.
VENV_NEWEST=$REPO/.venv-ansible-core-newest
NEWEST_FILES=(tests/integration/test_netns.py tests/integration/test_veth.py tests/integration/test_bridge.py
    tests/integration/test_portmap.py tests/integration/test_macvlan.py tests/integration/test_vxlan.py
    tests/integration/test_vxlan_peer.py tests/integration/test_net_info.py tests/integration/test_playbook.py
    tests/integration/test_tarball.py
    'tests/integration/test_module_defaults.py::test_role_builds_the_same_under_hostile_module_defaults[bridge_network]')

# newest_units: the unit tests on the newest ansible-core (a few seconds).
# Without the venv (a machine without any Python 3.12+, where setup.sh
# warned already) `pytest` and `all` say so loudly and go on; `newest` fails.
NEWEST_REQUIRED=0
newest_missing() {
    [[ ! -x $VENV_NEWEST/bin/python ]] || return 1
    [[ $NEWEST_REQUIRED -eq 0 ]] || die "$VENV_NEWEST missing: run scripts/setup.sh (needs a Python 3.12+)"
    printf 'test.sh: WARNING: %s missing (no Python 3.12+ here): the tests on the newest ansible-core are SKIPPED\n' \
        "$VENV_NEWEST" >&2
}

newest_units() {
    local core
    newest_missing && return 0
    core=$("$VENV_NEWEST/bin/python" -c 'from ansible.release import __version__; print(__version__)')
    banner "pytest: unit, ansible-core $core"
    pytest_run "$VENV_NEWEST/bin/python" -m pytest tests/unit -q
}

# newest_shard: the integration selection on the newest ansible-core, as a shard.
newest_shard() {
    local core file
    newest_missing && return 0
    for file in "${NEWEST_FILES[@]}"; do
        [[ -f ${file%%::*} ]] || die "${file%%::*} missing: update NEWEST_FILES in $0"
    done
    core=$("$VENV_NEWEST/bin/python" -c 'from ansible.release import __version__; print(__version__)')
    shard "pytest: integration in a sandbox, ansible-core $core: modules, playbooks with roles" \
        bash "$REPO/scripts/sandbox.sh" "$VENV_NEWEST/bin/python" -m pytest "${NEWEST_FILES[@]}" -q
}

run_newest() {
    NEWEST_REQUIRED=1
    newest_units
    newest_shard
    wait_shards
}

# timed NAME: run section NAME and report how long it took.
timed() {
    local start=$SECONDS
    "run_$1"
    printf -- '---------- %s passed in %ds\n' "$1" "$((SECONDS - start))"
}

sections=("$@")
[[ ${#sections[@]} -gt 0 ]] || sections=(all)
for section in "${sections[@]}"; do
    case $section in
        lint | sanity | units | integration | pytest | newest | all) ;;
        *) die "unknown section '$section' (lint|sanity|units|integration|pytest|newest|all)" ;;
    esac
done
for section in "${sections[@]}"; do
    case $section in
        all) timed lint; timed sanity; timed units; timed integration; timed pytest ;;
        *) timed "$section" ;;
    esac
done
banner "OK: ${sections[*]}"
