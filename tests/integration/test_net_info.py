# -*- coding: utf-8 -*-
"""hostnet.provision.net_info: a read-only report that round-trips."""

from __future__ import annotations

import os
import subprocess

from helpers import run_module, sh


def build():
    run_module('netns', config=[{'name': 'ni-a'}, {'name': 'ni-b', 'sysctls': {'net.ipv4.ip_forward': 1}}])
    run_module('bridge', config=[{'name': 'ni-br0', 'addresses': ['198.51.100.1/24']}])
    run_module('veth', config=[
        {'name': 'ni-a-h', 'bridge': 'ni-br0',
         'peer': {'name': 'eth0', 'netns': 'ni-a', 'addresses': ['198.51.100.10/24'], 'gateway': ['198.51.100.1']}},
        {'name': 'ni-b-h', 'bridge': 'ni-br0',
         'peer': {'name': 'eth0', 'netns': 'ni-b', 'addresses': ['198.51.100.11/24']}},
    ])
    sh('ip', 'link', 'add', 'foreign0', 'type', 'bridge')


def test_report_shows_kernel_state_and_managed_flags():
    build()
    info = run_module('net_info')['net_info']
    assert [n['name'] for n in info['namespaces']] == [None, 'ni-a', 'ni-b']
    assert all(n['managed'] for n in info['namespaces'][1:])
    links = dict((l['name'], l) for l in info['links'][''])
    assert links['ni-br0']['managed'] and not links['foreign0']['managed']
    assert links['ni-a-h']['master'] == 'ni-br0' and links['ni-a-h']['kind'] == 'veth'
    assert info['addresses']['ni-a']['eth0'] == ['198.51.100.10/24']
    default = [r for r in info['routes']['ni-a'] if r['dest'] == 'default']
    assert default == [{'dest': 'default', 'via': '198.51.100.1', 'dev': 'eth0', 'metric': None,
                        'proto': 104, 'managed': True}]
    assert run_module('net_info', check=True)['net_info'] == info


def test_managed_part_feeds_back_as_input_unchanged():
    build()
    managed = run_module('net_info', gather=['managed'])['net_info']['managed']
    assert list(managed) == ['netns', 'bridge', 'veth', 'macvlan', 'vxlan', 'vxlan_peer', 'portmap']
    assert [n['name'] for n in managed['netns']] == ['ni-a', 'ni-b']
    assert [b['name'] for b in managed['bridge']] == ['ni-br0']
    assert [v['name'] for v in managed['veth']] == ['ni-a-h', 'ni-b-h']
    for module in ('netns', 'bridge', 'veth'):
        assert run_module(module, state='overridden', config=managed[module])['changed'] is False, module


def test_filters_and_process_namespaces():
    build()
    proc = subprocess.Popen(['unshare', '--net', 'sleep', '30'])
    try:
        for _attempt in range(50):  # bounded wait for the process to enter its namespace
            if open('/proc/%d/comm' % proc.pid).read().strip() == 'sleep':
                break
            subprocess.run(['sleep', '0.05'], check=True)
        info = run_module('net_info', netns=['ni-a'], gather=['links'])['net_info']
        assert list(info) == ['links'] and list(info['links']) == ['ni-a']
        namespaces = run_module('net_info', gather=['namespaces'], process_namespaces=True)['net_info']['namespaces']
        assert any(n.get('pid') == proc.pid and n['name'] is None for n in namespaces)
    finally:
        proc.kill()
        proc.wait(timeout=10)


def test_namespace_that_does_not_exist_fails_naming_it():
    build()
    for spec in ('ni-gone', 'pid:999999999', '/run/netns/ni-gone'):
        failed = run_module('net_info', fail=True, netns=[spec])
        assert failed['field'] == 'netns' and failed['value'] == spec and spec in failed['msg'], failed
        assert 'net_info' not in failed
    failed = run_module('net_info', fail=True, netns=['pid:abc'])
    assert failed['field'] == 'netns' and failed['value'] == 'pid:abc'
    # A stale file where a namespace was is not a namespace either.
    open('/run/netns/ni-stale', 'w').close()
    failed = run_module('net_info', fail=True, netns=['ni-stale'])
    assert failed['value'] == 'ni-stale' and 'not a mounted network namespace' in failed['msg']
    # What exists still reads.
    info = run_module('net_info', netns=['ni-a', 'pid:%d' % os.getpid(), ''], gather=['links'])['net_info']
    assert [l['name'] for l in info['links']['ni-a']] == ['lo', 'eth0']


def test_clash_section_is_what_the_clash_check_decides_on(monkeypatch):
    """gather: [clash]: routes of every table, policy rules, the controller's
    address from SSH_CONNECTION as the module sees it (host namespace only)."""
    build()
    sh('ip', 'link', 'set', 'foreign0', 'up')
    sh('ip', 'route', 'add', '198.18.50.0/24', 'dev', 'foreign0', 'table', '100')
    sh('ip', 'route', 'add', 'blackhole', '198.18.51.0/24', 'table', '100')
    sh('ip', 'rule', 'add', 'priority', '1000', 'from', '198.18.40.0/24', 'lookup', '100')
    monkeypatch.setenv('SSH_CONNECTION', '203.0.113.7 50022 203.0.113.1 22')
    info = run_module('net_info', netns=['', 'ni-a'], gather=['clash'])['net_info']
    assert set(info) == {'clash'}
    host, endpoint = info['clash'][''], info['clash']['ni-a']
    assert host['management_address'] == '203.0.113.7' and endpoint['management_address'] is None
    routes = dict(((r['dest'], r['table']), r) for r in host['routes'])
    assert routes[('198.18.50.0/24', 100)] == {'dest': '198.18.50.0/24', 'via': None, 'dev': 'foreign0', 'table': 100,
                                               'type': 'unicast', 'managed': False}
    assert routes[('198.18.51.0/24', 100)]['type'] == 'blackhole'
    assert routes[('198.51.100.0/24', 254)]['dev'] == 'ni-br0' and routes[('198.51.100.0/24', 254)]['managed']
    assert {'from': '198.18.40.0/24', 'to': None, 'priority': 1000, 'table': 100} in host['rules']
    assert ('0.0.0.0/0', 254) in dict(((r['dest'], r['table']), r) for r in endpoint['routes'])
    # Not read unless asked for.
    assert 'clash' not in run_module('net_info', netns=[''])['net_info']
