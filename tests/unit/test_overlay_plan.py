# -*- coding: utf-8 -*-
"""The overlay planner: one MTU for the overlay, MACs every host computes,
MAC -> VTEP entries, dual-stack blocks, a host leaving in one run."""

from __future__ import annotations

import ipaddress

import pytest

from ansible_collections.hostnet.provision.plugins.module_utils import _topology
from ansible_collections.hostnet.provision.plugins.module_utils._topology import (
    OVERLAY_DEVICE,
    PlanError,
    overlay_forwarding,
    overlay_mac,
    overlay_underlay,
    plan_overlay,
)

OVERLAY = {'name': 'ov1', 'vni': 4242, 'subnet': '198.19.0.0/24'}
HOSTS = ('lab1', 'lab2', 'lab3')


def members(mtus=(1500, 1500, 1500), states=('present',) * 3, six=False):
    return [{'name': h, 'local_ip': ('2001:db8:18::1%d' if six else '198.18.0.1%d') % (i + 1), 'endpoints': ['e-' + h],
             'underlay_mtu': mtus[i], 'underlay_dev': 'eth0', 'state': states[i]} for i, h in enumerate(HOSTS)]


def own_facts(host='lab1', mtu=1500):
    i = HOSTS.index(host) + 1
    return {'links': {'': [{'name': 'eth0', 'kind': 'veth', 'mtu': mtu, 'managed': False}]},
            'addresses': {'': {'eth0': ['198.18.0.1%d/24' % i, '2001:db8:18::1%d/64' % i]}}, 'namespaces': []}


def plans(settings=None, group=None, **kw):
    group = members(**kw) if group is None else group
    return dict((m['name'], plan_overlay(settings or OVERLAY, m['name'], group)) for m in group)


def test_the_underlay_of_each_host_is_read_from_its_facts():
    assert overlay_underlay(own_facts('lab2', 1400), '198.18.0.12') == {
        'local_ip': '198.18.0.12', 'dev': 'eth0', 'mtu': 1400, 'state': 'present'}
    assert overlay_underlay(own_facts('lab2', 1400), None, 'eth0', 'absent') == {
        'local_ip': '198.18.0.12', 'dev': 'eth0', 'mtu': 1400, 'state': 'absent'}


def test_one_mtu_for_the_overlay_the_smallest_underlay_wins():
    # lab2's underlay is 1400: every host, lab1 and lab3 too, gets 1350.
    for plan in plans(mtus=(1500, 1400, 1500)).values():
        assert plan['vxlan']['mtu'] == plan['bridge']['mtu'] == plan['veths'][0]['peer']['mtu'] == 1350
    # this host's own reading is used for itself, the others' from the members
    plan = plan_overlay(OVERLAY, 'lab1', members(mtus=(None, 1500, 1500)), own_facts('lab1', 1300))
    assert plan['vxlan']['mtu'] == 1250
    # over an IPv6 underlay the overhead is 70
    assert plans(six=True, mtus=(1500, 1500, 1400))['lab1']['vxlan']['mtu'] == 1330


def test_an_explicit_mtu_is_checked_against_every_host():
    assert plans(dict(OVERLAY, mtu=1350), mtus=(1500, 1400, 1500))['lab3']['vxlan']['mtu'] == 1350
    for host in HOSTS:  # refused on every host alike, naming lab2
        with pytest.raises(PlanError) as err:
            plan_overlay(dict(OVERLAY, mtu='1351'), host, members(mtus=(1500, 1400, 1500)))
        assert 'mtu 1351 is larger than the underlay allows: on host lab2 dev eth0 has MTU 1400' in str(err.value)
        assert 'leaves 1350' in str(err.value)


def test_a_leaving_host_counts_for_neither_mtu_nor_peers():
    group = members(mtus=(1500, 1400, 1500), states=('present', 'absent', 'present'))
    result = plans(group=group)
    assert result['lab1']['vxlan']['mtu'] == 1450
    assert result['lab1']['peers'] == {'device': 'vx-ov1', 'peers': ['198.18.0.13']}
    forwarding = overlay_forwarding(result['lab1'], [p['report'] for p in result.values()])
    assert set(e['vtep'] for e in forwarding['entries']) == {'198.18.0.13'}


def test_macs_are_deterministic_locally_administered_and_unique():
    first, again = plans(), plans()
    assert first == again
    macs = [p['bridge']['mac'] for p in first.values()] + [v['peer']['mac'] for p in first.values() for v in p['veths']]
    assert len(set(macs)) == len(macs) == 6
    for mac in macs:
        octet = int(mac[:2], 16)
        assert octet & 2 and not octet & 1, mac  # locally administered, unicast
    assert first['lab1']['bridge']['mac'] == overlay_mac(4242, 11)
    assert first['lab1']['veths'][0]['peer']['mac'] == overlay_mac(4242, 11, 'e-lab1')
    # another VNI, another host index or another name: another MAC
    assert len({overlay_mac(4242, 11, 'a'), overlay_mac(4243, 11, 'a'), overlay_mac(4242, 12, 'a'),
                overlay_mac(4242, 11, 'b')}) == 4


def test_the_vxlan_device_has_a_computed_mac_of_its_own():
    first, again = plans(), plans()
    for host, plan in first.items():
        mac = plan['vxlan']['mac']
        assert mac == again[host]['vxlan']['mac'] == plan['report']['device_mac']
        assert mac == overlay_mac(4242, plan['report']['index'], OVERLAY_DEVICE)
        assert int(mac[:2], 16) & 2 and not int(mac[:2], 16) & 1, mac
    macs = [p['vxlan']['mac'] for p in first.values()] + [p['bridge']['mac'] for p in first.values()] \
        + [v['peer']['mac'] for p in first.values() for v in p['veths']]
    assert len(set(macs)) == len(macs) == 9
    # An endpoint cannot take the device's name in the hash: a namespace name has no "/".
    assert overlay_mac(4242, 11, OVERLAY_DEVICE) not in (overlay_mac(4242, 11), overlay_mac(4242, 11, 'vxlan'))


def test_the_vxlan_devices_mac_gets_no_forwarding_entry():
    result = plans()
    forwarding = overlay_forwarding(result['lab1'], [p['report'] for p in result.values()])
    device_macs = {p['vxlan']['mac'] for p in result.values()}
    assert not device_macs & {e['mac'] for e in forwarding['entries']}
    assert len(forwarding['entries']) == 4  # two bridges and two endpoints of the other hosts


def test_a_vxlan_device_mac_equal_to_another_hosts_endpoint_mac_is_refused_on_every_host():
    result = plans()
    clash = dict(result['lab3']['report'], device_mac=result['lab2']['report']['endpoints'][0]['mac'])
    for host in HOSTS:
        with pytest.raises(PlanError) as err:
            overlay_forwarding(result[host], [result['lab1']['report'], result['lab2']['report'], clash])
        assert 'MAC %s of the VXLAN device of host lab3 is also the MAC of endpoint e-lab2 of host lab2' \
            % clash['device_mac'] in str(err.value)


def test_a_vxlan_device_mac_equal_to_a_local_mac_is_refused(monkeypatch):
    real = _topology.overlay_mac

    def fake(vni, index, name=''):
        return real(vni, index, '' if name == OVERLAY_DEVICE else name)
    monkeypatch.setattr(_topology, 'overlay_mac', fake)
    with pytest.raises(PlanError) as err:
        plans()
    assert 'device vx-ov1' in str(err.value) and 'is also the MAC of the bridge' in str(err.value)


def test_forwarding_has_one_entry_per_remote_mac_and_keeps_the_flood_list():
    result = plans()
    reports = [p['report'] for p in result.values()] + [None, {'failed': True}]
    forwarding = overlay_forwarding(result['lab1'], reports)
    assert forwarding['peers'] == ['198.18.0.12', '198.18.0.13']
    expected = sorted([{'mac': result[h]['bridge']['mac'], 'vtep': result[h]['vxlan']['local']} for h in ('lab2', 'lab3')]
                      + [{'mac': result[h]['veths'][0]['peer']['mac'], 'vtep': result[h]['vxlan']['local']}
                         for h in ('lab2', 'lab3')], key=lambda e: e['mac'])
    assert forwarding['entries'] == expected


def test_a_mac_given_twice_in_the_overlay_is_refused_on_every_host():
    result = plans()
    clash = dict(result['lab3']['report'], endpoints=[dict(result['lab3']['report']['endpoints'][0],
                                                           mac=result['lab2']['report']['bridge_mac'])])
    for host in HOSTS:
        with pytest.raises(PlanError) as err:
            overlay_forwarding(result[host], [result['lab1']['report'], result['lab2']['report'], clash])
        assert 'MAC %s of endpoint e-lab3 of host lab3 is also the MAC of the bridge of host lab2' \
            % result['lab2']['report']['bridge_mac'] in str(err.value)


def test_dual_stack_every_endpoint_gets_one_address_of_each_and_the_bridge_the_first_of_each_block():
    settings = dict(OVERLAY, subnet6='2001:db8:19::/64', endpoints=['a', 'b'])
    plan = plan_overlay(settings, 'lab1', members())
    # index 11 of 16: 198.19.0.176/28 and 2001:db8:19:0:b000::/68
    assert plan['report']['blocks'] == ['198.19.0.176/28', '2001:db8:19:0:b000::/68']
    assert plan['bridge']['addresses'] == ['198.19.0.176/24', '2001:db8:19:0:b000::/64']
    assert [v['peer']['addresses'] for v in plan['veths']] == [
        ['198.19.0.177/24', '2001:db8:19:0:b000::1/64'], ['198.19.0.178/24', '2001:db8:19:0:b000::2/64']]
    # IPv6 alone, given as subnet6
    plan = plan_overlay({'name': 'ov1', 'vni': 4242, 'subnet6': '2001:db8:19::/64', 'endpoints': ['a']}, 'lab1', members())
    assert plan['veths'][0]['peer']['addresses'] == ['2001:db8:19:0:b000::1/64']
    # blocks are computed, whatever the size
    big = dict(settings, subnet='198.18.0.0/15', subnet6='2001:db8::/32', index_bits=8)
    plan = plan_overlay(big, 'lab1', members())
    start = ipaddress.ip_network('2001:db8::/32').network_address
    assert plan['report']['blocks'][1] == '%s/40' % (start + (int(ipaddress.ip_address('198.18.0.11')) % 2 ** 8) * 2 ** 88)


def test_dual_stack_keeps_the_addresses_endpoints_have():
    held = {'name': 'vov1-a', 'bridge': 'ov-ov1', 'peer': {'name': 'eth0', 'netns': 'a', 'addresses': [
        '198.19.0.180/24', '2001:db8:19:0:b000::9/64']}}
    info = {'managed': {'veth': [held]}}
    plan = plan_overlay(dict(OVERLAY, subnet6='2001:db8:19::/64', endpoints=['b', 'a']), 'lab1', members(), info)
    assert [v['peer']['addresses'] for v in plan['veths']] == [
        ['198.19.0.177/24', '2001:db8:19:0:b000::1/64'], ['198.19.0.180/24', '2001:db8:19:0:b000::9/64']]


@pytest.mark.parametrize('settings, fragment', [
    (dict(OVERLAY, subnet6='198.19.1.0/24'), 'subnet6 198.19.1.0/24 is not an IPv6 network'),
    (dict(OVERLAY, subnet='2001:db8:18::/64', subnet6='2001:db8:19::/64'), 'are both IPv6'),
    (dict(OVERLAY, subnet6='2001:db8:19::/126'), 'subnet6 2001:db8:19::/126 is too small'),
    (dict(OVERLAY, subnet6='2001:db8:19::/64', mtu=1200), 'mtu 1200 is below 1280'),
    ({'name': 'ov1', 'vni': 4242}, 'needs a subnet'),
    (dict(OVERLAY, subnet6='2001:db8:18::/64'), 'subnet6 2001:db8:18::/64 collides with the host route 2001:db8:18::/64 dev eth0'),
])
def test_dual_stack_problems(settings, fragment):
    info = {'routes': {'': [{'dest': '2001:db8:18::/64', 'dev': 'eth0'}]}}
    with pytest.raises(PlanError) as err:
        plan_overlay(settings, 'lab1', members(), info)
    assert fragment in str(err.value)


def test_the_role_filters_pass_each_hosts_own_underlay_and_state_to_every_host():
    from ansible_collections.hostnet.provision.plugins.filter.overlay_plan import overlay_forwarding as forwarding
    from ansible_collections.hostnet.provision.plugins.filter.overlay_plan import overlay_members
    hostvars = dict((h, {'overlay_network_underlay': overlay_underlay(own_facts(h, 1400 if h == 'lab2' else 1500),
                                                                      None, 'eth0', 'absent' if h == 'lab3' else 'present'),
                         'overlay_network_endpoints': ['e-' + h]}) for h in HOSTS)
    group = overlay_members(HOSTS, hostvars)
    assert [(m['local_ip'], m['underlay_mtu'], m['state']) for m in group] == [
        ('198.18.0.11', 1500, 'present'), ('198.18.0.12', 1400, 'present'), ('198.18.0.13', 1500, 'absent')]
    for host in HOSTS:
        hostvars[host]['overlay_network_plan'] = plan_overlay(OVERLAY, host, group)
    assert hostvars['lab1']['overlay_network_plan']['vxlan']['mtu'] == 1350
    result = forwarding(hostvars['lab1']['overlay_network_plan'], HOSTS, hostvars)
    assert result['peers'] == ['198.18.0.12'] and set(e['vtep'] for e in result['entries']) == {'198.18.0.12'}
