# -*- coding: utf-8 -*-
"""The roles' planning step: every problem before any change, stable addresses."""

from __future__ import annotations

import pytest

from ansible_collections.hostnet.provision.plugins.module_utils._topology import PlanError, derived_name, plan_networks

WEB = {'name': 'web', 'subnet': '198.51.100.0/24', 'endpoints': [{'name': 'w1'}, {'name': 'w2'}]}


def facts(routes=(), veths=(), bridges=()):
    return {'routes': {'': list(routes)}, 'managed': {'veth': list(veths), 'bridge': list(bridges)}}


def test_addresses_are_lowest_free_and_gateway_is_first_host():
    plan = plan_networks([WEB])
    assert plan['bridges'] == [{'name': 'br-web', 'addresses': ['198.51.100.1/24']}]
    assert [v['peer']['addresses'] for v in plan['veths']] == [['198.51.100.2/24'], ['198.51.100.3/24']]
    assert plan['veths'][0] == {'name': 'veweb-w1', 'bridge': 'br-web', 'peer': {
        'name': 'eth0', 'netns': 'w1', 'addresses': ['198.51.100.2/24'], 'gateway': ['198.51.100.1']}}


def test_existing_addresses_are_kept_so_nothing_renumbers():
    # w1 was removed earlier; w2 keeps .3 and the new w3 takes the free .2.
    existing = [{'name': 'veweb-w2', 'bridge': 'br-web', 'peer': {'name': 'eth0', 'netns': 'w2',
                                                                  'addresses': ['198.51.100.3/24']}}]
    net = dict(WEB, endpoints=[{'name': 'w2'}, {'name': 'w3'}])
    plan = plan_networks([net], facts(veths=existing))
    assert [(v['peer']['netns'], v['peer']['addresses']) for v in plan['veths']] == [
        ('w2', ['198.51.100.3/24']), ('w3', ['198.51.100.2/24'])]


@pytest.mark.parametrize('networks, routes, fragment', [
    ([WEB, dict(WEB, name='web2', subnet='198.51.100.128/25')], [], 'overlaps subnet 198.51.100.0/24 of network web'),
    ([WEB], [{'dest': '198.51.100.0/25', 'via': '198.18.2.1', 'dev': 'eth0'}],
     'collides with the host route 198.51.100.0/25 via 198.18.2.1 dev eth0'),
    ([dict(WEB, bridge='a-very-long-bridge')], [], "is 18 bytes long"),
    ([dict(WEB, endpoints=[{'name': 'w1', 'address': '203.0.113.5'}])], [], 'outside subnet 198.51.100.0/24'),
    ([dict(WEB, endpoints=[{'name': 'w1', 'address': '198.51.100.9'}, {'name': 'w2', 'address': '198.51.100.9'}])],
     [], 'already taken by endpoint w1'),
    ([dict(WEB, endpoints=[{'name': 'w1', 'address': '198.51.100.1'}])], [], 'already taken by the gateway'),
    ([dict(WEB, endpoints=[{'name': 'w1', 'ports': [{'host_port': 8080, 'port': 80}]},
                           {'name': 'w2', 'ports': [{'host_port': '8000-8090', 'port': 80}]}])],
     [], 'host port 8000-8090/tcp is also published by endpoint w1 of network web'),
    ([dict(WEB, subnet='198.51.100.0/30', endpoints=['a', 'b', 'c'])], [], 'has no free address left'),
    ([dict(WEB, gateway='203.0.113.1')], [], 'is not a host address of subnet'),
    ([{'name': 'x'}], [], 'needs a subnet'),
])
def test_problems_are_refused_before_any_change(networks, routes, fragment):
    with pytest.raises(PlanError) as info:
        plan_networks(networks, facts(routes=routes))
    assert fragment in str(info.value)
    assert 'nothing was changed' in str(info.value)


def test_all_problems_reported_at_once():
    bad = [dict(WEB, bridge='a-very-long-bridge'), dict(WEB, name='web2', endpoints=[])]
    with pytest.raises(PlanError) as info:
        plan_networks(bad)
    assert len(info.value.problems) == 2


def test_own_routes_and_default_route_do_not_collide():
    routes = [{'dest': 'default', 'via': '198.18.2.1', 'dev': 'eth0'},
              {'dest': '198.51.100.0/24', 'dev': 'br-web', 'via': None},   # our bridge's connected route
              {'dest': '198.51.100.0/24', 'dev': 'x', 'managed': True}]
    assert plan_networks([WEB], facts(routes=routes))['bridges']


def test_absent_removes_exactly_what_was_made():
    net = dict(WEB, endpoints=[{'name': 'w1'}, {'name': 'w2', 'state': 'absent'}])
    plan = plan_networks([net])
    assert plan['veths_absent'] == [{'name': 'veweb-w2'}] and plan['netns_absent'] == [{'name': 'w2'}]
    plan = plan_networks([dict(WEB, state='absent')])
    assert plan['bridges_absent'] == [{'name': 'br-web'}] and plan['bridges'] == []
    assert plan['netns_absent'] == [{'name': 'w1'}, {'name': 'w2'}]


def test_multi_homed_endpoint_needs_distinct_interface_and_one_default_route():
    db = {'name': 'db', 'subnet': '203.0.113.0/24', 'endpoints': [{'name': 'w1'}]}
    with pytest.raises(PlanError) as info:
        plan_networks([WEB, db])
    assert 'interface eth0 is also used on network web' in str(info.value)
    db['endpoints'] = [{'name': 'w1', 'interface': 'eth1', 'default_route': False}]
    plan = plan_networks([WEB, db])
    assert [v['peer'].get('gateway') for v in plan['veths'] if v['peer']['netns'] == 'w1'] == [['198.51.100.1'], None]


def test_derived_names_fit_and_are_stable():
    assert derived_name('br-', 'web') == 'br-web'
    long = derived_name('br-', 'a-network-with-a-long-name')
    assert len(long) == 15 and long == derived_name('br-', 'a-network-with-a-long-name')
    assert derived_name('ve', 'net', 'endpoint-long-name') != derived_name('ve', 'net', 'endpoint-long-nam2')


def test_ports_no_longer_listed_are_unpublished_and_others_left_alone():
    existing = [{'name': 'veweb-w1', 'bridge': 'br-web', 'peer': {'name': 'eth0', 'netns': 'w1',
                                                                  'addresses': ['198.51.100.2/24']}}]
    published = [
        {'protocol': 'tcp', 'host_port': 8080, 'destination': '198.51.100.2', 'port': 80, 'netns': None},
        {'protocol': 'tcp', 'host_port': 8443, 'destination': '198.51.100.2', 'port': 443, 'netns': None},
        {'protocol': 'tcp', 'host_port': 9000, 'destination': '203.0.113.9', 'port': 80, 'netns': None},
    ]
    info = facts(veths=existing)
    info['managed']['portmap'] = published
    net = dict(WEB, endpoints=[{'name': 'w1', 'ports': [{'host_port': 8080, 'port': 80}]}])
    plan = plan_networks([net], info)
    assert plan['ports_absent'] == [published[1]]


OVERLAY = {'name': 'ov1', 'vni': 4242, 'subnet': '198.19.0.0/24'}
MEMBERS = [{'name': 'lab%d' % i, 'local_ip': '198.18.0.1%d' % i, 'endpoints': ['e%d' % i]} for i in (1, 2, 3)]


def test_overlay_blocks_are_per_host_and_unique():
    from ansible_collections.hostnet.provision.plugins.module_utils._topology import plan_overlay
    plans = [plan_overlay(OVERLAY, m['name'], MEMBERS) for m in MEMBERS]
    # 198.18.0.11 → index 11 → block 198.19.0.176/28
    assert plans[0]['report']['block'] == '198.19.0.176/28'
    assert plans[0]['bridge']['addresses'] == ['198.19.0.176/24']
    assert plans[0]['veths'][0]['peer']['addresses'] == ['198.19.0.177/24']
    addresses = [p['report']['host_address'] for p in plans]
    addresses += [e['address'] for p in plans for e in p['report']['endpoints']]
    assert len(set(addresses)) == len(addresses) == 6
    assert plans[1]['peers'] == {'device': 'vx-ov1', 'peers': ['198.18.0.11', '198.18.0.13']}
    assert plans[0]['vxlan'] == {'name': 'vx-ov1', 'vni': 4242, 'local': '198.18.0.11', 'bridge': 'ov-ov1',
                                 'port': 4789}


@pytest.mark.parametrize('settings, members, fragment', [
    (dict(OVERLAY, vni=0), MEMBERS, 'vni 0 must be a number'),
    (OVERLAY, MEMBERS + [{'name': 'lab9', 'local_ip': '198.18.0.27'}], 'host index 11 is also used by lab1'),
    (OVERLAY, [dict(MEMBERS[0], local_ip=None)] + MEMBERS[1:], 'has no usable underlay address'),
    (dict(OVERLAY, subnet='198.19.0.0/29'), MEMBERS, 'too small'),
])
def test_overlay_problems(settings, members, fragment):
    from ansible_collections.hostnet.provision.plugins.module_utils._topology import plan_overlay
    with pytest.raises(PlanError) as info:
        plan_overlay(settings, 'lab1', members)
    assert fragment in str(info.value)


def test_overlay_mtu_derived_from_the_underlay_for_every_endpoint():
    from ansible_collections.hostnet.provision.plugins.module_utils._topology import plan_overlay
    info = {'links': {'': [{'name': 'eth0', 'mtu': 1500}]}, 'addresses': {'': {'eth0': ['198.18.0.11/24']}}}
    plan = plan_overlay(OVERLAY, 'lab1', MEMBERS, info)
    assert plan['vxlan']['mtu'] == 1450
    assert plan['veths'][0]['mtu'] == 1450 and plan['veths'][0]['peer']['mtu'] == 1450
    assert plan['bridge']['mtu'] == 1450
    assert plan_overlay(dict(OVERLAY, mtu=1400), 'lab1', MEMBERS, info)['veths'][0]['mtu'] == 1400
