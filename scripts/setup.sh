#!/usr/bin/env bash
# Install everything needed to develop, test and run hostnet.provision.
#
# Idempotent; meant to run as root on a fresh Debian 12 machine:
#   sudo bash scripts/setup.sh
#
# Environment:
#   HOSTNET_SKIP_APT=1   skip the apt-get part (packages already installed)
#   PIP_CACHE_DIR        pip cache (default: <repo>/.cache/pip)
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PYTHON=/usr/bin/python3
export PIP_CACHE_DIR=${PIP_CACHE_DIR:-$REPO/.cache/pip}
export PIP_DISABLE_PIP_VERSION_CHECK=1
export DEBIAN_FRONTEND=noninteractive

log() { printf '==> %s\n' "$*"; }

# System packages:
#   python3-venv python3-pip  virtual environments for the controller tooling
#   nftables conntrack        NAT / published ports and conntrack flushing
#   iproute2                  `ip` / `bridge` used by tests to verify independently
#   rsync git                 test.sh copies the collection tree for ansible-test
#   procps iputils-ping       sysctl, ping for traffic tests
#   socat                     TCP/UDP listeners and clients in port-mapping tests
#   dnsmasq-base              the per-network name resolver (dns: true) and the test
#                             upstream resolver of the dns tests (the binary only, no service)
#   ShellCheck                the shellcheck test of ansible-test sanity (skipped without it)
#   qemu-system-x86 qemu-utils  the Debian 12 VMs of the Molecule scenario `vm` (scripts/vm.sh)
#   mmdebstrap e2fsprogs        build the VM image (the guest kernel is installed inside the
#                               image, never on this machine)
#   openssh-client              ssh to the VMs
#   iptables containernetworking-plugins  references of the benchmark (bench/): the naive
#                               loop's ansible.builtin.iptables and the CNI bridge plugin,
#                               used only inside the benchmark's sandbox
#   graphviz                    `dot`: draws the pictures of the topologies from net_info
#                               results (scripts/netpic.py; scripts/run.sh's picture of the
#                               lab, scripts/docs.sh pictures); run.sh skips the picture without it
APT_PACKAGES=(python3-venv python3-pip nftables conntrack iproute2 rsync git
              procps iputils-ping socat dnsmasq-base shellcheck
              qemu-system-x86 qemu-utils mmdebstrap e2fsprogs openssh-client
              iptables containernetworking-plugins graphviz)

if [[ ${HOSTNET_SKIP_APT:-0} != 1 ]]; then
    if [[ $(id -u) -ne 0 ]]; then
        echo "setup.sh: run as root (or set HOSTNET_SKIP_APT=1)" >&2
        exit 1
    fi
    log "apt-get install ${APT_PACKAGES[*]}"
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${APT_PACKAGES[@]}" >/dev/null
else
    log "skipping apt (HOSTNET_SKIP_APT=1)"
fi

# make_venv DIR REQUIREMENT...: create DIR from /usr/bin/python3 if missing,
# then install/upgrade the requirements into it (a no-op when satisfied).
make_venv() {
    local dir=$1
    shift
    if [[ ! -x $dir/bin/python ]]; then
        log "creating $dir"
        "$PYTHON" -m venv "$dir"
    fi
    log "installing into $dir: $*"
    "$dir/bin/python" -m pip install -q "$@"
}

# Controller / development tooling (ansible-core, ansible-lint, molecule,
# pyroute2 current, pytest, antsibull-changelog, antsibull-docs), and matplotlib for the
# benchmark's plot (bench/requirements.txt, the bench's only dependency).
make_venv "$REPO/.venv" -r "$REPO/requirements-dev.txt" -r "$REPO/bench/requirements.txt"

# The pyroute2 release Debian 12 ships (python3-pyroute2 0.7.2), to prove the
# engine against the oldest supported version.
make_venv "$REPO/.venv-pyroute2-0.7" \
    'pyroute2==0.7.2' 'ansible-core>=2.19,<2.20' 'pytest>=8,<10'

# The newest ansible-core (2.21, which needs Python 3.12 or later) with the
# newest pyroute2, so that the modules and roles are proven on the oldest
# and the newest supported ansible-core. Debian 12's Python is 3.11: the
# first python3.13/python3.12 on PATH is used, else one from pyenv
# (~/.pyenv/versions/3.1[2-9]*), else HOSTNET_PYTHON_NEWEST.
find_python_newest() {
    local candidate
    for candidate in "${HOSTNET_PYTHON_NEWEST:-}" "$(command -v python3.13 || true)" \
        "$(command -v python3.12 || true)" "$HOME"/.pyenv/versions/3.1[2-9]*/bin/python3; do
        [[ -n $candidate && -x $candidate ]] || continue
        if "$candidate" -c 'import sys, venv; sys.exit(sys.version_info < (3, 12))' 2>/dev/null; then
            echo "$candidate"
            return 0
        fi
    done
    return 1
}
if PYTHON_NEWEST=$(find_python_newest); then
    PYTHON=$PYTHON_NEWEST make_venv "$REPO/.venv-ansible-core-newest" \
        'ansible-core>=2.21,<2.22' 'pyroute2>=0.7.2,<0.10' 'pytest>=8,<10'
else
    # Optional: only `scripts/test.sh newest` needs it, and says so.
    echo "setup.sh: WARNING: no Python 3.12+ found, so no .venv-ansible-core-newest for" \
         "'scripts/test.sh newest': install one (python3.12, pyenv) or set HOSTNET_PYTHON_NEWEST" >&2
fi

# ansible-test creates its sanity-test virtualenvs without pip and bootstraps
# pip with a get-pip script from ci-files.testing.ansible.com, which is not
# reachable from every network (only PyPI is assumed here). Its own error
# message suggests saving the script in its cache; we save an equivalent one
# instead: it runs pip from the matching wheel (from PyPI) to install the
# requested packages, exactly what get-pip does with its embedded copy. An
# existing genuine script is left alone.
PIP_BOOT_VERSION=$("$REPO/.venv/bin/python" -c '
import types
from ansible_test._internal.python_requirements import get_venv_packages
print(get_venv_packages(types.SimpleNamespace(version="3.11"))["pip"])')
AT_CACHE=$HOME/.ansible/test/cache
GET_PIP=$AT_CACHE/get_pip_${PIP_BOOT_VERSION//./_}.py
PIP_WHEEL=$AT_CACHE/pip-$PIP_BOOT_VERSION-py3-none-any.whl
if [[ ! -f $GET_PIP ]] || grep -q 'hostnet.provision' "$GET_PIP"; then
    log "ansible-test pip $PIP_BOOT_VERSION bootstrap: $GET_PIP"
    mkdir -p "$AT_CACHE"
    if [[ ! -f $PIP_WHEEL ]]; then
        "$REPO/.venv/bin/python" -m pip download -q --no-deps --only-binary=:all: \
            --dest "$AT_CACHE" "pip==$PIP_BOOT_VERSION"
    fi
    cat > "$GET_PIP.tmp" <<PY
# Stand-in for get-pip-$PIP_BOOT_VERSION.py, written by hostnet.provision scripts/setup.sh:
# run pip from its wheel and install the requested packages into this Python.
import sys

sys.path.insert(0, "$PIP_WHEEL")
args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
from pip._internal.cli.main import main  # noqa: E402

sys.exit(main(["install", "--quiet", "--upgrade", "--force-reinstall"] + args))
PY
    mv "$GET_PIP.tmp" "$GET_PIP"
fi

log "done: $("$REPO/.venv/bin/ansible" --version | sed -n 1p)"
