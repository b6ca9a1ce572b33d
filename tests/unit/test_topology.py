# -*- coding: utf-8 -*-
"""The roles' planning step: every problem before any change, stable addresses."""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import signal
import tracemalloc

import pytest

from ansible_collections.hostnet.provision.plugins.module_utils._topology import PlanError, bridge_mac, derived_name, plan_networks

WEB = {'name': 'web', 'subnet': '198.51.100.0/24', 'endpoints': [{'name': 'w1'}, {'name': 'w2'}]}


def facts(routes=(), veths=(), bridges=()):
    return {'routes': {'': list(routes)}, 'managed': {'veth': list(veths), 'bridge': list(bridges)}}


def test_addresses_are_lowest_free_and_gateway_is_first_host():
    plan = plan_networks([WEB])
    assert plan['bridges'] == [{'name': 'br-web', 'addresses': ['198.51.100.1/24'], 'mac': bridge_mac('br-web')}]
    # Its own MAC, stable and locally administered: the gateway's MAC does
    # not follow the ports that join and leave.
    assert bridge_mac('br-web') == bridge_mac('br-web') != bridge_mac('br-db')
    assert int(bridge_mac('br-web')[:2], 16) & 3 == 2
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
    # The VXLAN device's MAC: 02 and the first five bytes of sha256("VNI/INDEX//vxlan").
    digest = hashlib.sha256(b'4242/11//vxlan').hexdigest()
    device_mac = ':'.join(['02'] + [digest[i:i + 2] for i in range(0, 10, 2)])
    assert plans[0]['vxlan'] == {'name': 'vx-ov1', 'vni': 4242, 'local': '198.18.0.11', 'bridge': 'ov-ov1',
                                 'port': 4789, 'mac': device_mac}
    assert plans[0]['report']['device_mac'] == device_mac


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


# -- one set of rules: every derived config goes through the kinds' own checks --

LINKS = [{'name': 'eth0', 'kind': 'veth', 'mtu': 1500, 'managed': False},
         {'name': 'br-other', 'kind': 'bridge', 'mtu': 1500, 'managed': False},
         {'name': 'br-web', 'kind': 'veth', 'mtu': 1500, 'managed': True}]


def host_facts(veths=(), links=None, namespaces=()):
    info = facts(veths=veths)
    info['links'] = {'': list(LINKS if links is None else links)}
    info['namespaces'] = [{'name': None, 'managed': False}] + [{'name': n, 'managed': False} for n in namespaces]
    return info


def one_port(**port):
    return [dict(WEB, endpoints=[{'name': 'w1', 'ports': [dict({'host_port': 8080, 'port': 80}, **port)]}])]


@pytest.mark.parametrize('networks, info, fragments', [
    (one_port(host_port=0), None, ['endpoint w1', 'host_port 0']),
    (one_port(host_port=65536), None, ['endpoint w1', 'host_port 65536']),
    (one_port(host_port='9000-8000'), None, ['endpoint w1', "host_port range '9000-8000'"]),
    (one_port(host_port='8000-8010', port=65530), None, ['endpoint w1', 'port 65530 + 11 ports']),
    (one_port(port=0), None, ['endpoint w1', 'port 0']),
    (one_port(host_ip='ff02::1'), None, ['endpoint w1', 'host_ip ff02::1']),
    ([dict(WEB, subnet6='2001:db8:7::/64',
           endpoints=[{'name': 'w1', 'ports': [{'host_port': 80, 'port': 80, 'host_ip': 'ff02::1'}]}])],
     None, ['endpoint w1', 'host_ip ff02::1 is a multicast']),
    ([dict(WEB, mtu=0)], None, ['network web', 'mtu 0 is out of range']),
    ([dict(WEB, mtu=65536)], None, ['network web', 'mtu 65536 is out of range']),
    ([dict(WEB, subnet6='2001:db8:7::/64', mtu=1279)], None, ['network web', 'mtu 1279', '2001:db8:7::/64']),
    ([dict(WEB, endpoints=[{'name': 'w1', 'interface': 'lo'}])], None, ['endpoint w1', "interface 'lo'"]),
    ([dict(WEB, endpoints=[{'name': 'w1', 'interface': 'all'}])], None, ['endpoint w1', "interface 'all'"]),
    ([dict(WEB, gateway6='2001:db8::1')], None, ['network web', "gateway6 '2001:db8::1' needs subnet6"]),
    ([dict(WEB, subnet6='198.51.100.0/24', subnet='203.0.113.0/24')], None, ['subnet6 198.51.100.0/24']),
    ([dict(WEB, bridge='br-other')], host_facts(), ['network web', 'bridge br-other already exists']),
    ([dict(WEB, bridge='eth0')], host_facts(), ['network web', 'bridge eth0 already exists']),
    ([WEB], host_facts(), ['network web', 'bridge br-web is already a veth made by hostnet.provision']),
    ([dict(WEB, endpoints=[{'name': 'w1', 'host_interface': 'eth0'}])], host_facts(),
     ['endpoint w1', 'host_interface eth0 already exists']),
    ([WEB], host_facts(links=[], namespaces=['w2']), ['endpoint w2', 'name w2: a network namespace']),
    ([dict(WEB, purge='sometimes')], None, ['network web', "purge 'sometimes' must be true or false"]),
    ([dict(WEB, bridge='default')], None, ['network web', "bridge 'default'"]),
])
def test_every_value_a_module_would_refuse_is_refused_by_the_plan(networks, info, fragments):
    with pytest.raises(PlanError) as err:
        plan_networks(networks, info)
    for fragment in fragments:
        assert fragment in str(err.value), str(err.value)


def test_strings_of_digits_are_numbers_like_the_modules_take_them():
    plan = plan_networks([dict(WEB, mtu='1400', endpoints=[{'name': 'w1', 'ports': [{'host_port': '8080',
                                                                                     'port': '80'}]}])])
    assert plan['bridges'][0]['mtu'] == 1400
    assert plan['ports'] == [{'protocol': 'tcp', 'host_port': 8080, 'destination': '198.51.100.2', 'port': 80,
                              'bridge': {'name': 'br-web', 'ports': ['veweb-w1']}}]


# -- addresses are never given twice --

B_HELD = {'name': 'veweb-b', 'bridge': 'br-web', 'peer': {'name': 'eth0', 'netns': 'b',
                                                          'addresses': ['198.51.100.3/24']}}
A_HELD = {'name': 'veweb-a', 'bridge': 'br-web', 'peer': {'name': 'eth0', 'netns': 'a',
                                                          'addresses': ['198.51.100.2/24']}}


def test_an_endpoint_no_longer_listed_keeps_its_address_reserved_and_is_reported():
    # b was dropped from the list, n is new: n must not get b's .3.
    net = dict(WEB, endpoints=[{'name': 'a'}, {'name': 'n'}])
    plan = plan_networks([net], facts(veths=[A_HELD, B_HELD]))
    assert [(v['peer']['netns'], v['peer']['addresses']) for v in plan['veths']] == [
        ('a', ['198.51.100.2/24']), ('n', ['198.51.100.4/24'])]
    assert plan['veths_absent'] == [] and plan['netns_absent'] == []
    assert plan['report'][0]['kept'] == [{'name': 'b', 'host_interface': 'veweb-b', 'addresses': ['198.51.100.3/24']}]
    assert len(plan['warnings']) == 1 and 'endpoint b' in plan['warnings'][0] and 'kept (not listed)' in \
        plan['warnings'][0]


def test_an_explicit_address_held_by_an_unlisted_endpoint_is_refused():
    net = dict(WEB, endpoints=[{'name': 'n', 'address': '198.51.100.3'}])
    with pytest.raises(PlanError) as err:
        plan_networks([net], facts(veths=[B_HELD]))
    assert 'address 198.51.100.3 is already taken by endpoint b (kept, not listed)' in str(err.value)


def test_purge_removes_endpoints_no_longer_listed_and_their_address_is_not_reused_in_that_run():
    net = dict(WEB, purge=True, endpoints=[{'name': 'a'}, {'name': 'n'}])
    plan = plan_networks([net], facts(veths=[A_HELD, B_HELD]))
    assert plan['veths_absent'] == [{'name': 'veweb-b'}] and plan['netns_absent'] == [{'name': 'b'}]
    assert plan['veths'][1]['peer']['addresses'] == ['198.51.100.4/24'] and plan['warnings'] == []
    # b's namespace also holds an endpoint of another network: it stays.
    other = {'name': 'vedb-b', 'bridge': 'br-db', 'peer': {'name': 'eth1', 'netns': 'b', 'addresses': []}}
    plan = plan_networks([net], facts(veths=[A_HELD, B_HELD, other]))
    assert plan['veths_absent'] == [{'name': 'veweb-b'}] and plan['netns_absent'] == []


def test_an_explicit_address_a_listed_endpoint_holds_is_refused_whatever_the_order():
    net = dict(WEB, endpoints=[{'name': 'n', 'address': '198.51.100.3'}, {'name': 'b'}])
    with pytest.raises(PlanError) as err:
        plan_networks([net], facts(veths=[B_HELD]))
    assert 'network web endpoint n: address 198.51.100.3 is already taken by endpoint b' in str(err.value)


def test_a_listed_absent_endpoint_keeps_its_address_until_it_is_gone():
    net = dict(WEB, endpoints=[{'name': 'b', 'state': 'absent'}, {'name': 'n'}])
    plan = plan_networks([net], facts(veths=[B_HELD]))
    assert plan['veths'][0]['peer']['addresses'] == ['198.51.100.2/24']
    assert plan['veths_absent'] == [{'name': 'veweb-b'}]


# -- the overlay --

UNDERLAY = {'links': {'': [{'name': 'eth0', 'kind': 'veth', 'mtu': 1500, 'managed': False},
                           {'name': 'ov-ov1', 'kind': 'bridge', 'mtu': 1500, 'managed': False}]},
            'addresses': {'': {'eth0': ['198.18.0.11/24'], 'lo': ['127.0.0.1/8']}}, 'namespaces': []}


def overlay_plan(settings, info=None, members=None):
    from ansible_collections.hostnet.provision.plugins.module_utils._topology import plan_overlay
    return plan_overlay(settings, 'lab1', MEMBERS if members is None else members,
                        {'links': {'': UNDERLAY['links'][''][:1]}, 'addresses': UNDERLAY['addresses']}
                        if info is None else info)


@pytest.mark.parametrize('settings, info, fragments', [
    (dict(OVERLAY, port=0), None, ['vxlan vx-ov1', 'port 0']),
    (dict(OVERLAY, port=65536), None, ['vxlan vx-ov1', 'port 65536']),
    (dict(OVERLAY, port='http'), None, ['port']),
    (dict(OVERLAY, vni='forty'), None, ["vni 'forty'"]),
    (dict(OVERLAY, mtu=1451), None, ['mtu 1451 is larger than the underlay allows', 'dev eth0 has MTU 1500']),
    (dict(OVERLAY, mtu=65536), {}, ['mtu 65536']),
    (dict(OVERLAY, subnet='2001:db8:19::/64', mtu=1200), None, ['mtu 1200', '2001:db8:19::/64']),
    (dict(OVERLAY, endpoints=['a/b']), None, ['endpoint a/b', "name 'a/b'"]),
    (dict(OVERLAY, endpoints=['a', 'a']), None, ['endpoint a', 'listed twice']),
    (dict(OVERLAY, dev='eth9'), None, ['dev eth9', 'not an interface of this host']),
    (OVERLAY, {'links': UNDERLAY['links'], 'addresses': {'': {'eth0': ['198.18.0.99/24']}}},
     ['local_ip 198.18.0.11 is not an address of this host']),
    (OVERLAY, UNDERLAY, ['bridge ov-ov1 already exists']),
    (dict(OVERLAY, index_bits='x'), None, ["index_bits 'x'"]),
])
def test_overlay_refuses_before_any_change(settings, info, fragments):
    with pytest.raises(PlanError) as err:
        overlay_plan(settings, info)
    for fragment in fragments:
        assert fragment in str(err.value), str(err.value)


def test_overlay_local_ip_alone_finds_its_device_and_numbers_from_strings():
    plan = overlay_plan(dict(OVERLAY, vni='4243', port='4790', mtu='1400'))
    assert plan['vxlan'] == {'name': 'vx-ov1', 'vni': 4243, 'local': '198.18.0.11', 'bridge': 'ov-ov1',
                             'port': 4790, 'dev': 'eth0', 'mtu': 1400, 'mac': plan['report']['device_mac']}


def test_overlay_endpoints_from_the_settings_win_over_host_vars():
    plan = overlay_plan(dict(OVERLAY, endpoints=['x1', 'x2']))
    assert [n['name'] for n in plan['netns']] == ['x1', 'x2']


# -- the planners never enumerate address space --

@contextlib.contextmanager
def bounded(seconds=5, megabytes=4):
    """Fail (never hang) when the block takes longer or allocates more."""
    def expired(_signum, _frame):
        raise AssertionError('took more than %d s: something enumerates an address range' % seconds)
    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(seconds)
    tracemalloc.start()
    try:
        yield
        _size, peak = tracemalloc.get_traced_memory()
        assert peak < megabytes * 2 ** 20, 'peak %d MiB: something enumerates an address range' % (peak >> 20)
    finally:
        tracemalloc.stop()
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


BIG = [('198.18.0.0/15', None), ('198.18.0.0/15', '2001:db8::/48'), ('198.51.100.0/24', '2001:db8:4::/64')]


@pytest.mark.parametrize('subnet, subnet6', BIG)
@pytest.mark.parametrize('prefix, policy', [('br-', {}), ('tn-', {'isolated': True, 'host_access': False})])
def test_bridge_and_tenant_networks_plan_huge_subnets_without_enumerating(subnet, subnet6, prefix, policy):
    # The last address of the range is taken, a neighbour holds the first:
    # the new endpoints still get the next free addresses, computed.
    net = {'name': 'big', 'subnet': subnet, 'endpoints': [{'name': 'e%d' % i} for i in range(50)]}
    if subnet6:
        net['subnet6'] = subnet6
    held = {'name': 'vebig-old', 'bridge': prefix + 'big', 'peer': {'name': 'eth0', 'netns': 'old', 'addresses': [
        str(ipaddress.ip_interface(subnet).network.network_address + 2) + '/' + subnet.split('/')[1]]}}
    with bounded():
        plan = plan_networks([net], facts(veths=[held]), prefix=prefix, defaults=policy)
    first = plan['veths'][0]['peer']['addresses']
    assert first[0] == str(ipaddress.ip_network(subnet).network_address + 3) + '/' + subnet.split('/')[1]
    if subnet6:
        assert first[1] == str(ipaddress.ip_network(subnet6).network_address + 2) + '/' + subnet6.split('/')[1]
    assert len(plan['veths']) == 50


@pytest.mark.parametrize('subnet, bits, local', [
    ('198.18.0.0/15', 8, '198.18.0.11'), ('2001:db8::/48', 16, '198.18.0.11'),
    ('2001:db8:19::/64', 4, '198.18.0.11'), ('2001:db8:19::/100', 4, '198.18.0.11')])
def test_overlay_plans_huge_subnets_without_enumerating(subnet, bits, local):
    settings = dict(OVERLAY, subnet=subnet, index_bits=bits, endpoints=['e%d' % i for i in range(50)])
    with bounded():
        plan = overlay_plan(settings)
    net = ipaddress.ip_network(subnet)
    index = int(ipaddress.ip_address(local)) % 2 ** bits
    block = ipaddress.ip_network((int(net.network_address) + index * (net.num_addresses >> bits),
                                  net.prefixlen + bits))
    assert plan['report']['block'] == str(block)
    assert plan['bridge']['addresses'] == ['%s/%d' % (block.network_address, net.prefixlen)]
    assert plan['veths'][-1]['peer']['addresses'] == ['%s/%d' % (block.network_address + 50, net.prefixlen)]


def test_the_report_shows_kept_endpoints():
    from ansible_collections.hostnet.provision.plugins.filter.report import report_lines
    plan = plan_networks([dict(WEB, endpoints=[{'name': 'a'}])], facts(veths=[A_HELD, B_HELD]))
    lines = report_lines('h1', bridge_networks=plan['report'])
    assert any(line.split()[:2] == ['b', '198.51.100.3/24'] and 'kept (not listed' in line for line in lines), lines


# -- the modules' clash check, made by the plan on net_info's `clash` data ------------------


def clash_facts(routes=(), rules=(), mgmt=None, bridges=(), veths=()):
    return {'clash': {'': {'routes': list(routes), 'rules': list(rules), 'management_address': mgmt}},
            'managed': {'bridge': list(bridges), 'veth': list(veths)}}


def _route(dest, table=254, via='203.0.113.1', dev='eth0', managed=False, kind='unicast'):
    return {'dest': dest, 'via': via, 'dev': dev, 'table': table, 'type': kind, 'managed': managed}


@pytest.mark.parametrize('info, fragments', [
    (clash_facts(mgmt='198.51.100.7'),
     ['network web: subnet 198.51.100.0/24 would cover 198.51.100.7', 'SSH_CONNECTION']),
    (clash_facts(routes=[_route('198.51.100.0/25', table=100)]),
     ['network web: subnet 198.51.100.0/24 overlaps the route 198.51.100.0/25 via 203.0.113.1 dev eth0 (table 100)']),
    (clash_facts(rules=[{'from': '198.51.100.128/25', 'to': None, 'priority': 100, 'table': 100}]),
     ['network web: subnet 198.51.100.0/24 overlaps the policy routing rule "100: from 198.51.100.128/25 lookup 100"']),
    (clash_facts(routes=[_route('0.0.0.0/0', via='198.51.100.254')]),
     ['subnet 198.51.100.0/24 would cover 198.51.100.254, the gateway of the host\'s default route']),
    (clash_facts(routes=[_route('198.51.100.0/24', table=100, kind='blackhole', via=None, dev=None)]),
     ['blackhole 198.51.100.0/24 (table 100)']),
])
def test_the_plan_makes_the_modules_clash_check(info, fragments):
    with pytest.raises(PlanError) as err:
        plan_networks([WEB], info)
    for fragment in fragments:
        assert fragment in str(err.value)
    assert 'allow_route_overlap: true on this network' in str(err.value)
    # The override accepts it, and the modules are told the same.
    plan = plan_networks([dict(WEB, allow_route_overlap=True)], info)
    assert plan['bridges'][0]['allow_route_overlap'] is True
    assert all(v['allow_route_overlap'] is True for v in plan['veths'])


def test_the_clash_check_passes_what_is_ours_and_what_is_in_place():
    ours = [_route('198.51.100.0/24', via=None, dev='br-web', managed=True),
            _route('0.0.0.0/0', via='203.0.113.1'), _route('198.18.0.0/24', table=100)]
    plan = plan_networks([WEB], clash_facts(routes=ours, mgmt='203.0.113.9'))
    assert 'allow_route_overlap' not in plan['bridges'][0]
    # An address in place is not checked again (only additions are, as in the modules).
    bridge = {'name': 'br-web', 'addresses': ['198.51.100.1/24']}
    veth = {'name': 'veweb-w1', 'bridge': 'br-web', 'peer': {'netns': 'w1', 'addresses': ['198.51.100.2/24']}}
    info = clash_facts(routes=ours, mgmt='198.51.100.7', bridges=[bridge], veths=[veth])
    with pytest.raises(PlanError) as err:
        plan_networks([WEB], info)
    # w1's address is in place; w2's is new and named.
    assert 'network web endpoint w2: address 198.51.100.3/24 would cover 198.51.100.7' in str(err.value)
    assert 'endpoint w1' not in str(err.value) and 'subnet 198.51.100.0/24' not in str(err.value)


def test_the_plan_and_the_modules_decide_with_the_same_function(monkeypatch):
    from ansible_collections.hostnet.provision.plugins.module_utils import _clash
    calls = []
    real = _clash.check_entry
    monkeypatch.setattr(_clash, 'check_entry', lambda *a, **k: calls.append(a[1:3]) or real(*a, **k))
    plan_networks([WEB], clash_facts())
    assert calls == [('network web', 'subnet'), ('network web endpoint w1', 'address'),
                     ('network web endpoint w2', 'address')]


def test_a_dual_stack_endpoint_publishes_over_both_families_and_the_sysctl_families_follow():
    net = {'name': 'dual', 'subnet': '198.51.100.0/24', 'subnet6': '2001:db8:5::/64', 'endpoints': [
        {'name': 'd1', 'ports': [{'host_port': 8080, 'port': 80}, {'host_port': 8443, 'port': 443,
                                                                   'host_ip': '198.18.0.1'},
                                 {'host_port': 'auto', 'port': 22}]}]}
    plan = plan_networks([net])
    hint = {'name': 'br-dual', 'ports': ['vedual-d1']}
    assert plan['ports'] == [
        {'protocol': 'tcp', 'host_port': 8080, 'destination': '198.51.100.2', 'port': 80,
         'destination6': '2001:db8:5::2', 'bridge': hint},
        {'protocol': 'tcp', 'host_port': 8443, 'destination': '198.51.100.2', 'port': 443, 'host_ip': '198.18.0.1',
         'bridge': hint},
        {'protocol': 'tcp', 'host_port': 'auto', 'destination': '198.51.100.2', 'port': 22, 'bridge': hint}]
    assert plan['families'] == [4, 6]
    assert plan_networks([WEB])['families'] == [4]
    assert plan_networks([dict(WEB, subnet='2001:db8:6::/64')])['families'] == [6]


APP = {'name': 'app', 'subnet': '203.0.113.0/26', 'endpoints': [{'name': 'a1'}]}


def test_reach_names_networks_and_becomes_the_bridges_reach():
    plan = plan_networks([dict(APP, reach=['web']), WEB])
    bridges = dict((b['name'], b) for b in plan['bridges'])
    assert bridges['br-app']['reach'] == ['br-web']
    assert 'reach' not in bridges['br-web']  # isolated from app by default (replaced resets it)
    assert [r.get('reach') for r in plan['report']] == [['web'], None]
    # The bridge's own name wins over the derived one.
    plan = plan_networks([dict(APP, reach=['web']), dict(WEB, bridge='hn-web')])
    assert plan['bridges'][0]['reach'] == ['hn-web']


@pytest.mark.parametrize('networks, defaults, fragment', [
    ([dict(APP, reach=['wbe']), WEB], None, 'network app: reach wbe: no network of that name in this list '
                                            '(known: app, web)'),
    ([dict(APP, reach=['app'])], None, 'network app: reach app names the network itself'),
    ([dict(APP, reach=['web']), dict(WEB, state='absent')], None, 'reach web: network web is marked absent'),
    ([dict(APP, reach='web'), WEB], None, "network app: reach 'web' must be a list of network names"),
    ([dict(APP, reach=['web']), WEB], {'isolated': True}, 'reach web: both networks are isolated'),
])
def test_reach_problems_are_refused_before_any_change(networks, defaults, fragment):
    with pytest.raises(PlanError) as info:
        plan_networks(networks, facts(), defaults=defaults)
    assert fragment in str(info.value)


def test_the_report_looks_up_names_of_its_own_network_only_and_fails_on_a_mismatch():
    from ansible_collections.hostnet.provision.plugins.filter.report import (
        report_checks, report_lines, report_lookups, report_names)
    nets = [{'name': 'web', 'subnet': '198.51.100.0/25', 'subnet6': '2001:db8:100::/64', 'dns': True,
             'endpoints': [{'name': 'a'}, {'name': 'b', 'aliases': ['www']}]},
            {'name': 'back', 'subnet': '198.51.100.128/25', 'dns': True, 'icc': False,
             'endpoints': [{'name': 'c'}, {'name': 'd'}]},
            {'name': 'plain', 'subnet': '203.0.113.0/24', 'endpoints': [{'name': 'e'}, {'name': 'f'}]}]
    report = plan_networks(nets, facts())['report']
    assert report[0]['endpoints'][1]['aliases'] == ['www'] and 'aliases' not in report[0]['endpoints'][0]
    lookups = report_lookups(report)
    assert [(x['from'], x['name'], x['family'], x['expect']) for x in lookups] == [
        ('a', 'b', 'ipv4', ['198.51.100.3']), ('a', 'b', 'ipv6', ['2001:db8:100::3']),
        ('a', 'www', 'ipv4', ['198.51.100.3']), ('a', 'www', 'ipv6', ['2001:db8:100::3']),
        ('a', 'c', 'ipv4', []),
        ('c', 'd', 'ipv4', ['198.51.100.131']), ('c', 'a', 'ipv4', [])]
    # Names to resolved addresses are probed by the module (reach): as the endpoints' icc says.
    assert [x.get('reach') for x in lookups] == [True, True, True, True, None, False, None]
    # What the reachability module returns (names): one answer wrong, one lookup no server answered.
    results = [dict(x, result='resolved' if x['expect'] else 'not found', addresses=list(x['expect']), ok=True,
                    reason='') for x in lookups]
    results[4] = dict(lookups[4], result='resolved', addresses=['198.51.100.130'], ok=False, reason='')
    results[6] = dict(lookups[6], result='unknown', addresses=[], ok=False,
                      reason='no answer for a.back, a: 198.51.100.129: timeout')
    names = report_names(results)
    assert [n['ok'] for n in names] == [True, True, True, True, False, True, False]
    from ansible_collections.hostnet.provision.plugins.module_utils._probe import name_checks
    checks = [(c['from'], c['to'], c['expect']) for c in name_checks(results)]
    assert checks == [('a', '198.51.100.3', True), ('a', '2001:db8:100::3', True), ('a', '198.51.100.3', True),
                      ('a', '2001:db8:100::3', True), ('c', '198.51.100.131', False)]
    assert name_checks(results)[1]['label'] == 'network web: a -> b by name (2001:db8:100::3)'
    # The module probed them: the report adds no probes of its own for such names.
    assert not [c for c in report_checks(report, names=names) if 'by name' in c['label']]
    lines = report_lines('h1', bridge_networks=report, names=names)
    assert 'names (lookups inside the endpoints): 5 of 7 as expected' in lines
    marks = [line.split()[0] for line in lines if ' resolves ' in line]
    assert marks == ['ok'] * 4 + ['UNEXPECTED', 'ok', 'UNEXPECTED']
    assert [line for line in lines if 'resolves c of network back' in line][0].endswith('198.51.100.130')
    assert [line for line in lines if 'resolves a of network web' in line][0].endswith(
        'UNKNOWN (no answer for a.back, a: 198.51.100.129: timeout)')
    assert [line for line in lines if line.split()[:1] == ['b']][0].endswith('aliases www')
    assert [line for line in lines if line.startswith('network web ')][0].endswith(
        '(names on 198.51.100.1 2001:db8:100::1)')
