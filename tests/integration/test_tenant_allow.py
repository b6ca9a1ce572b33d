# -*- coding: utf-8 -*-
"""tenant_networks_allow through ansible-playbook, proven with packets.

Three tenants on the sandbox (connection local): web, db and ops. The
exceptions web-to-db (TCP 5432) and ops-all (everything from ops to db)
open exactly those flows, one way: the reverse direction, every other port
and ICMP where only TCP is allowed stay blocked. The quartet (check mode
with diff, apply, apply, check mode) proves the prediction and
idempotence; taking an exception out of the list closes its flow again.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest

from conftest import COLLECTIONS
from helpers import sh
from traffic import Servers, elements, foreign, reaches, ruleset

pytestmark = pytest.mark.playbook

TENANTS = [
    {'name': 'web', 'subnet': '203.0.113.0/26', 'endpoints': [{'name': 'w1'}]},
    {'name': 'db', 'subnet': '203.0.113.64/26', 'endpoints': [{'name': 'd1'}]},
    {'name': 'ops', 'subnet': '198.51.100.0/26', 'endpoints': [{'name': 'o1'}]},
]
ADDR = {'w1': '203.0.113.2', 'd1': '203.0.113.66', 'o1': '198.51.100.2'}
WEB_TO_DB = {'name': 'web-to-db', 'from': 'web', 'to': 'db', 'protocol': 'tcp', 'ports': [5432]}
OPS_ALL = {'name': 'ops-all', 'from': 'ops', 'to': 'db'}
FOREIGN_TABLE = 'table inet foreign_fw {\n chain c { type filter hook forward priority 10; policy accept; }\n}\n'


def play(tmp_path, allow, check=False, tenants=None):
    """The role on the sandbox; returns (changed count, output)."""
    tenants = TENANTS if tenants is None else tenants
    variables = {'tenant_networks_tenants': tenants, 'tenant_networks_allow': allow,
                 'tenant_networks_sysctl_file': str(tmp_path / 'sysctl.conf')}
    varfile = tmp_path / 'vars.json'
    varfile.write_text(json.dumps(variables))
    book = tmp_path / 'play.yml'
    book.write_text(json.dumps([{'name': 'Tenants', 'hosts': 'localhost', 'connection': 'local',
                                 'gather_facts': False, 'vars': {'ansible_python_interpreter': sys.executable},
                                 'roles': ['hostnet.provision.tenant_networks']}]))
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=COLLECTIONS, ANSIBLE_LOCALHOST_WARNING='false',
               ANSIBLE_INVENTORY_UNPARSED_WARNING='false', ANSIBLE_NOCOLOR='1', ANSIBLE_FORCE_COLOR='0')
    command = [os.path.join(os.path.dirname(sys.executable), 'ansible-playbook'), '-i', 'localhost,',
               '-e', '@%s' % varfile, str(book)] + (['--check', '--diff'] if check else [])
    proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600, check=False)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-4000:]
    recap = re.search(r'^localhost\s+:.*changed=(\d+)', proc.stdout, re.M)
    return int(recap.group(1)), output


def quartet(tmp_path, allow, tenants=None):
    """check mode (with diff) → apply → apply (changed=0) → check mode (changed=0)."""
    tables = ruleset()
    changed, predicted = play(tmp_path, allow, check=True, tenants=tenants)
    assert changed > 0 and ruleset() == tables, 'check mode changed the tables'
    assert play(tmp_path, allow, tenants=tenants)[0] > 0
    again, output = play(tmp_path, allow, tenants=tenants)
    assert again == 0, output[-4000:]
    assert play(tmp_path, allow, check=True, tenants=tenants)[0] == 0
    return predicted


def tcp(src, dst, port):
    return reaches(src, ADDR[dst], port, 'from-%s-%d' % (dst, port), timeout=1)


def ping(src, dst):
    return sh('ping', '-n', '-q', '-c', '1', '-W', '1', ADDR[dst], netns=src, check=False).returncode == 0


def flows():
    """What passes between the tenants, by flow."""
    out = {}
    for src, dst in (('w1', 'd1'), ('d1', 'w1'), ('o1', 'd1'), ('d1', 'o1'), ('w1', 'o1'), ('o1', 'w1')):
        for port in (5432, 5433):
            out['%s>%s:%d' % (src, dst, port)] = tcp(src, dst, port)
        out['%s>%s:icmp' % (src, dst)] = ping(src, dst)
    return out


def test_exceptions_open_exactly_their_flows_one_way_and_go_with_the_list(tmp_path):
    servers = Servers()
    subprocess.run(['nft', '-f', '-'], input=FOREIGN_TABLE, text=True, check=True)
    foreign_rules = foreign(ruleset())
    try:
        predicted = quartet(tmp_path, [WEB_TO_DB, OPS_ALL])
        # The check-mode diff shows the exceptions on their source bridges.
        assert "'name': 'web-to-db'" in predicted or '"name": "web-to-db"' in predicted, predicted[-4000:]
        serve(servers)
        opened = {'w1>d1:5432', 'o1>d1:5432', 'o1>d1:5433', 'o1>d1:icmp'}
        assert flows() == dict((flow, flow in opened) for flow in flows_keys())
        assert elements('inet', 'allow_ports') == [
            {'elem': {'val': {'concat': ['tn-web', 'tn-db', 'tcp', 5432]}, 'comment': 'web-to-db'}}]
        assert elements('inet', 'allow') == [{'elem': {'val': {'concat': ['tn-ops', 'tn-db']}, 'comment': 'ops-all'}}]
        # web-to-db taken out of the list: closed again, its element gone.
        quartet(tmp_path, [OPS_ALL])
        serve(servers)
        opened = {'o1>d1:5432', 'o1>d1:5433', 'o1>d1:icmp'}
        assert flows() == dict((flow, flow in opened) for flow in flows_keys())
        assert elements('inet', 'allow_ports') == []
        # No exceptions: the tenants are fully isolated.
        assert play(tmp_path, [])[0] > 0
        serve(servers)
        assert not any(flows().values())
        assert foreign(ruleset()) == foreign_rules
    finally:
        servers.stop()
    play(tmp_path, [], tenants=[dict(t, state='absent') for t in TENANTS])
    assert sorted(os.listdir('/sys/class/net')) == ['lo']


def serve(servers):
    """TCP servers on 5432 and 5433 in every endpoint, (re)started: they
    live two minutes, less than a quartet of playbook runs."""
    servers.stop()
    for name in ADDR:
        for port in (5432, 5433):
            servers.tcp(name, port, 'from-%s-%d' % (name, port))
            # Control: the server answers inside its own namespace.
            assert tcp(name, name, port)


def flows_keys():
    keys = []
    for src, dst in (('w1', 'd1'), ('d1', 'w1'), ('o1', 'd1'), ('d1', 'o1'), ('w1', 'o1'), ('o1', 'w1')):
        keys += ['%s>%s:5432' % (src, dst), '%s>%s:5433' % (src, dst), '%s>%s:icmp' % (src, dst)]
    return keys
