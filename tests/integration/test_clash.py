# -*- coding: utf-8 -*-
"""The engine's clash check against the host's routing (inside the sandbox).

A veth end (``nic0``) stands in for the host's NIC. Foreign routing is made
with ``ip``: a route of the main table, a route in table 100 (a VPN's), a
policy rule ``from 198.18.40.0/24 lookup 100``. Every refusal must leave the
kernel exactly as it was (kernel_snapshot), and name both sides.
"""

from __future__ import annotations

import pytest

from helpers import addresses, kernel_snapshot, run_module, sh, snapshot_diff

MGMT = '198.51.100.7 50000 198.51.100.1 22'


@pytest.fixture
def host():
    """A stand-in NIC with foreign routes in two tables and a policy rule."""
    sh('ip', 'link', 'add', 'nic0', 'type', 'veth', 'peer', 'name', 'nic0-far')
    sh('ip', 'link', 'set', 'nic0', 'up')
    sh('ip', 'link', 'set', 'nic0-far', 'up')
    sh('ip', 'addr', 'add', '203.0.113.254/24', 'dev', 'nic0')
    sh('ip', 'route', 'add', '198.18.30.0/24', 'via', '203.0.113.1', 'dev', 'nic0')
    sh('ip', 'route', 'add', '198.18.50.0/24', 'via', '203.0.113.1', 'dev', 'nic0', 'table', '100')
    sh('ip', 'rule', 'add', 'from', '198.18.40.0/24', 'lookup', '100')
    sh('ip', '-6', 'addr', 'add', '2001:db8:ff::fe/64', 'dev', 'nic0', 'nodad')
    sh('ip', '-6', 'route', 'add', '2001:db8:30::/48', 'via', '2001:db8:ff::1', 'dev', 'nic0')
    run_module('netns', config=[{'name': 'ns-a'}])


def refused(module, **params):
    """Run a call that must fail; assert it changed nothing; return its result."""
    before = kernel_snapshot()
    result = run_module(module, fail=True, **params)
    assert snapshot_diff(before, kernel_snapshot()) == []
    return result


def test_bridge_address_overlapping_a_host_route_is_refused(host):
    result = refused('bridge', config=[{'name': 'hn-br0', 'addresses': ['198.18.30.1/25']}])
    msg = result['msg']
    assert 'address 198.18.30.1/25' in msg and '198.18.30.0/24 via 203.0.113.1 dev nic0 (table main)' in msg
    assert 'allow_route_overlap' in msg
    assert result['field'] == 'addresses' and result['value'] == '198.18.30.1/25'


def test_routes_of_other_tables_and_rules_are_read(host):
    msg = refused('bridge', config=[{'name': 'hn-br0', 'addresses': ['198.18.50.1/24']}])['msg']
    assert '198.18.50.0/24 via 203.0.113.1 dev nic0 (table 100)' in msg
    msg = refused('bridge', config=[{'name': 'hn-br0', 'addresses': ['198.18.40.1/24']}])['msg']
    assert 'policy routing rule' in msg and 'from 198.18.40.0/24 lookup 100' in msg
    msg = refused('bridge', config=[{'name': 'hn-br0', 'addresses': ['2001:db8:30:1::1/64']}])['msg']
    assert 'address 2001:db8:30:1::1/64' in msg and '2001:db8:30::/48 via 2001:db8:ff::1' in msg


def test_veth_peer_address_is_checked_against_the_host_too(host):
    run_module('bridge', config=[{'name': 'hn-br0', 'addresses': ['198.18.20.1/24']}])
    result = refused('veth', config=[{'name': 'veth-a', 'bridge': 'hn-br0',
                                      'peer': {'name': 'eth0', 'netns': 'ns-a', 'addresses': ['198.18.30.10/25']}}])
    assert result['field'] == 'peer.addresses' and '198.18.30.0/24 via 203.0.113.1' in result['msg']
    assert 'the current namespace' in result['msg']
    # The endpoint's own subnet on our bridge is no clash.
    run_module('veth', config=[{'name': 'veth-a', 'bridge': 'hn-br0',
                                'peer': {'name': 'eth0', 'netns': 'ns-a', 'addresses': ['198.18.20.10/24'],
                                         'gateway': ['198.18.20.1']}}])
    assert addresses('eth0', netns='ns-a') == ['198.18.20.10/24']


def test_override_accepts_the_intended_overlap(host):
    config = [{'name': 'hn-br0', 'addresses': ['198.18.30.1/25'], 'allow_route_overlap': True}]
    result = run_module('bridge', config=config)
    assert result['changed'] and addresses('hn-br0') == ['198.18.30.1/25']
    assert 'allow_route_overlap' not in result['diff']['after']['hn-br0']
    assert run_module('bridge', config=config)['changed'] is False
    # What exists stays acceptable without the override: only additions are checked.
    assert run_module('bridge', config=[{'name': 'hn-br0', 'addresses': ['198.18.30.1/25']}])['changed'] is False
    result = run_module('veth', config=[{'name': 'veth-a', 'allow_route_overlap': True,
                                         'peer': {'name': 'eth0', 'netns': 'ns-a',
                                                  'addresses': ['198.18.30.10/25']}}])
    assert result['changed'] and addresses('eth0', netns='ns-a') == ['198.18.30.10/25']


def test_management_address_is_never_covered(host, monkeypatch):
    monkeypatch.setenv('SSH_CONNECTION', MGMT)
    msg = refused('bridge', config=[{'name': 'hn-br0', 'addresses': ['198.51.100.1/24']}])['msg']
    assert '198.51.100.7' in msg and 'SSH_CONNECTION' in msg and 'address 198.51.100.1/24' in msg
    # A route in the module's namespace that covers the controller.
    result = refused('veth', config=[{'name': 'veth-a', 'peer': {
        'name': 'veth-a-p', 'addresses': ['198.18.70.2/24'],
        'routes': [{'dest': '198.51.100.0/25', 'via': '198.18.70.1'}]}}])
    assert result['field'] == 'peer.routes' and 'route 198.51.100.0/25 via 198.18.70.1' in result['msg']
    assert '198.51.100.7' in result['msg']
    # Other subnets are fine with the same environment.
    run_module('bridge', config=[{'name': 'hn-br0', 'addresses': ['198.18.60.1/24']}])
    assert addresses('hn-br0') == ['198.18.60.1/24']


def test_default_route_gateway_is_never_covered(host):
    sh('ip', 'route', 'add', 'default', 'via', '203.0.113.1', 'dev', 'nic0')
    msg = refused('bridge', config=[{'name': 'hn-br0', 'addresses': ['203.0.113.5/25']}])['msg']
    assert '203.0.113.1' in msg and 'default route' in msg


def test_macvlan_on_the_parents_segment_is_no_clash(host):
    run_module('macvlan', config=[{'name': 'eth0', 'netns': 'ns-a', 'parent': 'nic0',
                                   'addresses': ['203.0.113.10/24'], 'gateway': ['203.0.113.1']}])
    assert addresses('eth0', netns='ns-a') == ['203.0.113.10/24']
    result = refused('macvlan', config=[{'name': 'eth1', 'netns': 'ns-a', 'parent': 'nic0',
                                         'addresses': ['198.18.50.10/24']}])
    assert '(table 100)' in result['msg']
