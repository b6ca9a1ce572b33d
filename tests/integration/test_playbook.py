# -*- coding: utf-8 -*-
"""End to end through ansible-playbook (the path users take)."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from conftest import COLLECTIONS, REPO
from helpers import addresses, link, ping, run_module

pytestmark = pytest.mark.playbook

PLAYBOOK = os.path.join(os.path.dirname(__file__), 'playbooks', 'segment.yml')
MODULE_DEFAULTS = os.path.join(os.path.dirname(__file__), 'playbooks', 'module_defaults.yml')


def run_playbook(path, *extra, env=None):
    """Run ansible-playbook of this Python's venv; return (rc, recap counts, output)."""
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=COLLECTIONS, ANSIBLE_LOCALHOST_WARNING='false',
               ANSIBLE_INVENTORY_UNPARSED_WARNING='false', ANSIBLE_NOCOLOR='1', ANSIBLE_FORCE_COLOR='0',
               **(env or {}))
    playbook_bin = os.path.join(os.path.dirname(sys.executable), 'ansible-playbook')
    if not os.path.exists(playbook_bin):
        playbook_bin = os.path.join(REPO, '.venv', 'bin', 'ansible-playbook')
    proc = subprocess.run([playbook_bin, '-i', 'localhost,', path] + list(extra), env=env,
                          capture_output=True, text=True, timeout=300, check=False)
    recap = re.search(r'^localhost\s+:\s+(.*)$', proc.stdout, re.M)
    counts = dict((k, int(v)) for k, v in re.findall(r'(\w+)=(\d+)', recap.group(1))) if recap else {}
    return proc.returncode, counts, proc.stdout + proc.stderr


def test_segment_playbook_converges_then_reports_no_change():
    rc, stats, output = run_playbook(PLAYBOOK)
    assert rc == 0, output[-3000:]
    assert stats['changed'] == 3 and stats['failed'] == 0 and stats['rescued'] == 1
    assert link('pb-br0')['mtu'] == 1500
    assert ping('pb-b', '198.51.100.10')

    rc, stats, output = run_playbook(PLAYBOOK)
    assert rc == 0, output[-3000:]
    assert stats['changed'] == 0 and stats['failed'] == 0


def test_group_default_state_reaches_resource_modules_only():
    """The README's example: `state: replaced` for group/hostnet.provision.hostnet."""
    # The collection's own bridge with two addresses (the module's default, merged).
    run_module('bridge', config=[{'name': 'md-br0', 'addresses': ['198.51.100.1/24', '198.51.100.2/24']}])
    assert sorted(addresses('md-br0')) == ['198.51.100.1/24', '198.51.100.2/24']

    rc, stats, output = run_playbook(MODULE_DEFAULTS)
    assert rc == 0, output[-3000:]
    assert stats['failed'] == 0 and stats['changed'] == 2, output[-3000:]
    # replaced (the group default), not merged (the module default): the
    # second address is gone.
    assert addresses('md-br0') == ['198.51.100.1/24']
    assert addresses('md-br1') == ['203.0.113.1/24']
    assert link('md-br1', details=True)['linkinfo']['info_kind'] == 'bridge'
