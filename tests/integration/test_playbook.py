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


def report_segment(tmp_path):
    """Two endpoints on a bridge, made by the modules, and an inventory that
    makes this host a bridge host for playbooks/report.yml."""
    run_module('netns', config=[{'name': 'pr-a'}, {'name': 'pr-b'}])
    run_module('bridge', config=[{'name': 'pr-br0', 'addresses': ['198.51.100.1/24']}])
    run_module('veth', config=[{'name': 'pr-%s-h' % n, 'bridge': 'pr-br0',
                                'peer': {'name': 'eth0', 'netns': 'pr-%s' % n, 'addresses': ['198.51.100.%d/24' % i]}}
                               for n, i in (('a', 10), ('b', 11))])
    inventory = tmp_path / 'inventory.yml'
    inventory.write_text('all:\n  children:\n    bridge_hosts:\n      hosts:\n        localhost:\n'
                         '          ansible_connection: local\n'
                         '          ansible_python_interpreter: %s\n' % sys.executable)
    return inventory


def test_site_report_shows_another_firewalls_forward_drop_policy(tmp_path):
    """playbooks/report.yml (the lab's report, scripts/run.sh) prints the
    chain of another table whose forward policy drops published traffic."""
    import json
    inventory = report_segment(tmp_path)
    facts = tmp_path / 'facts.json'
    facts.write_text(json.dumps({'bridge_network_result': [{
        'name': 'web', 'bridge': 'pr-br0', 'subnets': ['198.51.100.0/24'], 'gateways': ['198.51.100.1'],
        'endpoints': [{'name': 'pr-a', 'interface': 'eth0', 'addresses': ['198.51.100.10/24']},
                      {'name': 'pr-b', 'interface': 'eth0', 'addresses': ['198.51.100.11/24']}]}]}))
    report = os.path.join(REPO, 'playbooks', 'report.yml')
    rc, _stats, output = run_playbook(report, '-i', str(inventory), '-e', '@%s' % facts)
    assert rc == 0, output[-3000:]
    assert 'reachability (real packets): 4 of 4 as expected' in output, output[-3000:]
    assert 'firewall' not in output.split('Show the report', 1)[1], output[-3000:]
    subprocess.run(['nft', 'add table ip filter; add chain ip filter FORWARD '
                    '{ type filter hook forward priority filter; policy drop; }'], check=True)
    try:
        rc, _stats, output = run_playbook(report, '-i', str(inventory), '-e', '@%s' % facts)
    finally:
        subprocess.run(['nft', 'delete table ip filter'], check=False)
    # With br_netfilter loaded (Docker hosts) even bridged traffic passes
    # that chain: the probes between the endpoints then fail, and the
    # report says why; without it they pass and the report still warns.
    if rc != 0:
        assert 'UNEXPECTED network web: pr-a -> pr-b' in output, output[-3000:]
        assert 'chain ip filter FORWARD drops forwarded IPv4 traffic by policy' in output.split('did not match', 1)[1]
    assert 'WARNING: firewall: chain ip filter FORWARD drops forwarded IPv4 traffic by policy' in output, output[-3000:]


def test_site_report_fails_when_a_name_does_not_resolve(tmp_path):
    """playbooks/report.yml looks names up inside the endpoints: a network
    whose facts say it has a resolver, while none answers, fails the report,
    which still shows every line (the probes by address pass)."""
    import json
    inventory = report_segment(tmp_path)
    facts = tmp_path / 'facts.json'
    facts.write_text(json.dumps({'bridge_network_result': [{
        'name': 'web', 'bridge': 'pr-br0', 'subnets': ['198.51.100.0/24'], 'gateways': ['198.51.100.1'],
        'dns': ['198.51.100.1'],
        'endpoints': [{'name': 'pr-a', 'interface': 'eth0', 'addresses': ['198.51.100.10/24']},
                      {'name': 'pr-b', 'interface': 'eth0', 'addresses': ['198.51.100.11/24'],
                       'aliases': ['api']}]}]}))
    report = os.path.join(REPO, 'playbooks', 'report.yml')
    rc, _stats, output = run_playbook(report, '-i', str(inventory), '-e', '@%s' % facts)
    assert rc != 0, output[-3000:]
    shown = output.split('Show the report', 1)[1]
    assert 'reachability (real packets): 4 of 4 as expected' in shown, shown
    assert 'names (lookups inside the endpoints): 0 of 2 as expected' in shown, shown
    # No resolver answers (pr-a has no resolv.conf of its own, and the
    # host's nameserver is not reachable from it): unknown, not "not found".
    assert re.search(r'UNEXPECTED +network web: pr-a resolves pr-b \(IPv4\) +UNKNOWN \(no answer for ', shown), \
        shown
    assert re.search(r'UNEXPECTED +network web: pr-a resolves api \(IPv4\) +UNKNOWN \(no answer for ', shown), shown
    assert re.search(r'2 of 2 lookups did not match expect: network web: pr-a resolves pr-b \(IPv4\): unknown '
                     r'\(no answer for [^)]*\); network web: pr-a resolves api \(IPv4\): unknown', output), \
        output[-3000:]
