# -*- coding: utf-8 -*-
"""Integration tests: the modules against the real kernel.

They must run inside a throwaway sandbox (scripts/sandbox.sh: a fresh
network namespace, private /run and /sys), never on the machine's own
network. This file refuses to run them anywhere else.
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import subprocess
import sys
import tempfile

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
COLLECTIONS = os.path.join(REPO, '.cache', 'collections')


def _ensure_collection_path():
    link = os.path.join(COLLECTIONS, 'ansible_collections', 'hostnet', 'provision')
    if not os.path.islink(link):
        os.makedirs(os.path.dirname(link), exist_ok=True)
        os.symlink(REPO, link)
    if COLLECTIONS not in sys.path:
        sys.path.insert(0, COLLECTIONS)


_ensure_collection_path()

# The sandbox has the machine's own /etc: records of the desired state
# (hostnet-restore) go to a throwaway directory, never to /etc/hostnet.
if not os.environ.get('HOSTNET_STATE_DIR', '').startswith(tempfile.gettempdir()):
    os.environ['HOSTNET_STATE_DIR'] = tempfile.mkdtemp(prefix='hostnet-state-')
    atexit.register(shutil.rmtree, os.environ['HOSTNET_STATE_DIR'], True)


def _in_sandbox():
    """True inside scripts/sandbox.sh: a network namespace other than the
    one the sandbox was started from, and a private /run."""
    outer = os.environ.get('HOSTNET_OUTER_NETNS')
    return bool(outer) and str(os.stat('/proc/self/ns/net').st_ino) != outer and os.path.ismount('/run')


def pytest_collection_modifyitems(config, items):
    # Refuse loudly (never skip quietly): these tests create and delete
    # links and namespaces, which must only happen inside the sandbox.
    if items and not _in_sandbox():
        raise pytest.UsageError('integration tests change network state: run them inside the sandbox, '
                                'e.g. bash scripts/sandbox.sh .venv/bin/python -m pytest tests/integration')


@pytest.fixture(autouse=True)
def clean_sandbox():
    """Every test starts and ends with an empty sandbox (only lo)."""
    _wipe()
    yield
    _wipe()


def _wipe():
    if not _in_sandbox():
        return
    subprocess.run(['ip', '-all', 'netns', 'delete'], check=False, capture_output=True)
    for name in os.listdir('/sys/class/net'):
        if name != 'lo':
            subprocess.run(['ip', 'link', 'del', name], check=False, capture_output=True)
    # Policy rules (tests add them; links going does not remove them): back
    # to the kernel's own local, main and default rules.
    for family in ('-4', '-6'):
        out = subprocess.run(['ip', '-j', family, 'rule', 'show'], check=False, capture_output=True, text=True).stdout
        for rule in json.loads(out) if out.strip() else []:
            if rule.get('priority') not in (0, 32766, 32767):
                subprocess.run(['ip', family, 'rule', 'del', 'priority', str(rule['priority'])],
                               check=False, capture_output=True)
    subprocess.run(['rm', '-rf', '/run/hostnet'], check=False)
    shutil.rmtree(os.environ['HOSTNET_STATE_DIR'], ignore_errors=True)
    # nftables tables (ours and the ones tests make) live in the sandbox
    # namespace itself, which outlives each test.
    subprocess.run(['nft', 'flush', 'ruleset'], check=False, capture_output=True)
    # ... and so do its forwarding switches (modules may turn them on).
    for path in ('/proc/sys/net/ipv4/ip_forward', '/proc/sys/net/ipv6/conf/all/forwarding'):
        with open(path, 'w') as fh:
            fh.write('0\n')
