# -*- coding: utf-8 -*-
"""hostnet.provision.macvlan against the real kernel (inside the sandbox).

A veth end (``nic0``, made with ``ip link add``) stands in for the parent
NIC; its other end stays up so that the parent has a carrier.
"""

from __future__ import annotations

import pytest

from ansible_collections.hostnet.provision.plugins.module_utils._kind_macvlan import vlan_link_name

from helpers import (addresses, default_gateways, kernel_snapshot, link, ping, quartet, run_module, sh, snapshot_diff,
                     sys_class_net, wait_for)

TAG = 'hostnet.provision macvlan parent=nic0'


def endpoint(netns, last, **extra):
    return dict({'name': 'eth0', 'netns': netns, 'parent': 'nic0',
                 'addresses': ['203.0.113.%d/24' % last, '2001:db8:113::%d/64' % last],
                 'gateway': ['203.0.113.1']}, **extra)


@pytest.fixture
def lan():
    """Two endpoint namespaces and a stand-in parent NIC."""
    run_module('netns', config=[{'name': 'ns-a'}, {'name': 'ns-b'}])
    sh('ip', 'link', 'add', 'nic0', 'type', 'veth', 'peer', 'name', 'nic0-far')
    sh('ip', 'link', 'set', 'nic0', 'up')
    sh('ip', 'link', 'set', 'nic0-far', 'up')
    return [endpoint('ns-a', 10), endpoint('ns-b', 11)]


def kernel_has_vlan():
    probe = sh('ip', 'link', 'add', 'link', 'nic0', 'name', 'hn-vprobe', 'type', 'vlan', 'id', '4094', check=False)
    sh('ip', 'link', 'del', 'hn-vprobe', check=False)
    return probe.returncode == 0


def mode_of(netns, name='eth0'):
    return link(name, netns=netns, details=True)['linkinfo']['info_data']['mode']


def test_two_endpoints_on_one_parent_reach_each_other(lan):
    check, applied, _again, _check2 = quartet('macvlan', config=lan)
    assert applied['commands'][:4] == [
        'create macvlan eth0@ns-a on nic0 (mode bridge)',
        'add address 203.0.113.10/24 to eth0', 'add address 2001:db8:113::10/64 to eth0',
        'add route default via 203.0.113.1 on eth0']
    # Created inside its namespace under its final name, on the parent.
    assert 'eth0' in sys_class_net('ns-a') and 'eth0' not in sys_class_net()
    entry = link('eth0', netns='ns-a', details=True)
    assert entry['linkinfo']['info_kind'] == 'macvlan' and entry['linkinfo']['info_data']['mode'] == 'bridge'
    assert entry['ifalias'] == TAG and 'UP' in entry['flags']
    assert addresses('eth0', netns='ns-b') == ['2001:db8:113::11/64', '203.0.113.11/24']
    assert default_gateways('ns-a') == ['203.0.113.1']
    # Real packets between the two endpoints, both families.
    assert ping('ns-a', '203.0.113.11')
    assert ping('ns-b', '2001:db8:113::10')
    # Check mode predicted the same after-state, except what the kernel chose.
    for predicted, real in zip(check['after'], applied['after']):
        assert predicted['mac'] is None and predicted['mtu'] is None
        assert predicted == dict(real, mac=None, mtu=None)
    assert applied['after'][0]['mtu'] == 1500  # the parent's


def test_name_taken_in_the_host_namespace_leaves_that_link_alone(lan):
    # The host has its own eth0 (as every VM does); the endpoint's eth0 is
    # made inside its namespace all the same (kernels before 6.12 refuse the
    # name there unless it is made under another one and renamed), and the
    # host's eth0 is not touched.
    sh('ip', 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'eth0-far')
    host_before = link('eth0')
    check, applied, _again, _check2 = quartet('macvlan', config=lan[:1])
    assert applied['commands'][0] == 'create macvlan eth0@ns-a on nic0 (mode bridge)'
    assert link('eth0') == host_before
    assert link('eth0', netns='ns-a', details=True)['linkinfo']['info_kind'] == 'macvlan'
    assert sorted(sys_class_net('ns-a')) == ['eth0', 'lo']


def test_private_mode_isolates_and_mode_changes_in_place(lan):
    run_module('macvlan', config=lan)
    index = link('eth0', netns='ns-a')['ifindex']
    private = [{'name': 'eth0', 'netns': ns, 'mode': 'private'} for ns in ('ns-a', 'ns-b')]
    result = run_module('macvlan', config=private)
    assert result['commands'] == ['set mode of eth0 to private (was bridge)'] * 2
    assert mode_of('ns-a') == 'private' and link('eth0', netns='ns-a')['ifindex'] == index
    assert not ping('ns-a', '203.0.113.11')
    run_module('macvlan', config=[dict(p, mode='bridge') for p in private])
    # The failed neighbour entry from the blocked ping may need a retry.
    assert wait_for(lambda: ping('ns-a', '203.0.113.11', timeout=1), timeout=6)


def test_passthru_is_a_recreate(lan):
    run_module('macvlan', config=[lan[0]])
    result = run_module('macvlan', config=[dict(lan[0], mode='passthru')])
    assert result['commands'][:2] == [
        'delete macvlan eth0@ns-a to recreate it (mode bridge becomes passthru, which the kernel cannot change '
        'in place)', 'create macvlan eth0@ns-a on nic0 (mode passthru)']
    assert mode_of('ns-a') == 'passthru'
    assert addresses('eth0', netns='ns-a') == ['2001:db8:113::10/64', '203.0.113.10/24']
    assert run_module('macvlan', config=[dict(lan[0], mode='passthru')])['changed'] is False


def test_passthru_beside_another_macvlan_refused_before_any_change(lan):
    run_module('macvlan', config=lan)
    mac = link('eth0', netns='ns-a')['address']
    # passthru needs the parent alone: ns-b's macvlan is on it (the kernel would say EINVAL).
    result = run_module('macvlan', fail=True, config=[dict(lan[0], mode='passthru')])
    assert 'mode passthru cannot share parent nic0 with macvlan eth0 (mode bridge)' in result['msg']
    assert result['field'] == 'mode' and result['value'] == 'passthru' and result['changed'] is False
    entry = link('eth0', netns='ns-a', details=True)
    assert entry['address'] == mac and entry['linkinfo']['info_data']['mode'] == 'bridge'
    assert addresses('eth0', netns='ns-a') == ['2001:db8:113::10/64', '203.0.113.10/24']
    assert default_gateways('ns-a') == ['203.0.113.1']
    assert run_module('macvlan', config=lan)['changed'] is False


def test_new_parent_is_a_recreate(lan):
    run_module('macvlan', config=[lan[0]])
    sh('ip', 'link', 'add', 'nic1', 'type', 'veth', 'peer', 'name', 'nic1-far')
    result = run_module('macvlan', config=[dict(lan[0], parent='nic1')])
    assert result['commands'][0] == 'delete macvlan eth0@ns-a to recreate it (parent nic0 becomes nic1)'
    assert link('eth0', netns='ns-a', details=True)['ifalias'] == 'hostnet.provision macvlan parent=nic1'


def test_replaced_sets_lists_exactly(lan):
    run_module('macvlan', config=lan)
    new = endpoint('ns-a', 20, addresses=['203.0.113.20/24'],
                   routes=[{'dest': '198.51.100.0/24', 'via': '203.0.113.1'}])
    result = run_module('macvlan', state='replaced', config=[new])
    assert 'remove address 203.0.113.10/24 from eth0' in result['commands']
    assert addresses('eth0', netns='ns-a') == ['203.0.113.20/24']
    assert default_gateways('ns-a') == ['203.0.113.1']  # put back after its subnet's address went
    assert run_module('macvlan', state='replaced', config=[new])['changed'] is False


def test_gathered_round_trip_overridden_and_deleted(lan):
    sh('ip', 'link', 'add', 'mv-foreign', 'link', 'nic0', 'type', 'macvlan', 'mode', 'bridge')
    sh('ip', 'link', 'set', 'mv-foreign', 'netns', 'ns-a')
    run_module('macvlan', config=lan + [endpoint('ns-a', 12, name='eth1', gateway=None)])
    gathered = run_module('macvlan', state='gathered', config=[{'name': 'eth0', 'netns': 'ns-a'},
                                                               {'name': 'eth1', 'netns': 'ns-a'}])['gathered']
    assert [g['name'] for g in gathered] == ['eth0', 'eth1'] and gathered[0]['parent'] == 'nic0'
    assert run_module('macvlan', state='overridden', config=gathered)['changed'] is False
    result = run_module('macvlan', state='overridden', config=[gathered[0]])
    assert result['commands'] == ['delete macvlan eth1@ns-a']
    assert run_module('macvlan', state='deleted', config=[{'name': 'eth0', 'netns': 'ns-a'}])['changed'] is True
    assert sys_class_net('ns-a') == ['lo', 'mv-foreign']
    assert link('nic0') is not None  # the parent is never touched


@pytest.mark.parametrize('change, field, fragment', [
    ({'parent': 'no-such-nic'}, 'parent', "parent 'no-such-nic' does not exist"),
    ({'parent': None}, 'parent', 'parent is required'),
    ({'netns': 'no-such-ns'}, 'netns', 'does not exist'),
    ({'name': 'eth-sixteen-byte'}, 'name', 'at most 15 bytes'),
    ({'mac': '02:00:5e:00:00'}, 'mac', 'not a MAC'),
    ({'mac': '01:00:5e:00:00:01'}, 'mac', 'multicast'),
    ({'mtu': 9000}, 'mtu', 'larger than the MTU of its parent nic0 (1500)'),
    ({'vlan': 0}, 'vlan', 'not an 802.1Q VLAN id'),
    ({'vlan': 4095}, 'vlan', 'not an 802.1Q VLAN id'),
    ({'addresses': ['203.0.113.11/33']}, 'addresses', 'not a valid address'),
    ({'gateway': ['198.51.100.1']}, 'gateway', 'outside'),
    ({'routes': [{'dest': '198.51.100.1/24'}]}, 'routes', 'not a network'),
])
def test_bad_input_refused_before_any_change(lan, change, field, fragment):
    bad = dict(lan[1], **change)
    if bad['parent'] is None:
        del bad['parent']
    result = run_module('macvlan', fail=True, config=[lan[0], bad])
    assert fragment in result['msg'], result['msg']
    assert result['field'] == field and result['changed'] is False
    assert sys_class_net('ns-a') == ['lo'] and sys_class_net('ns-b') == ['lo']


def test_bad_mode_refused_by_the_argument_spec(lan):
    result = run_module('macvlan', fail=True, config=[dict(lan[0], mode='switch')])
    assert 'mode' in result['msg'] and 'switch' in result['msg']
    assert sys_class_net('ns-a') == ['lo']


def test_foreign_link_under_the_name_is_refused(lan):
    sh('ip', '-n', 'ns-a', 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'other')
    result = run_module('macvlan', fail=True, config=lan)
    assert 'not created by hostnet.provision' in result['msg']
    assert link('eth0', netns='ns-b') is None


def test_vlan_names_fit_fifteen_bytes():
    assert vlan_link_name('eth0', 100) == 'eth0.100'
    assert vlan_link_name('enp0s31f6', 4094) == 'enp0s31f6.4094'
    long_a, long_b = vlan_link_name('enp0s20f0u1u2c2', 4094), vlan_link_name('enp0s20f0u1u2c3', 4094)
    assert len(long_a) == 15 and long_a.startswith('enp0s2') and long_a.endswith('.4094')
    assert long_a != long_b  # same beginning, different parents: different names
    assert vlan_link_name('enp0s20f0u1u2c2', 4094) == long_a  # stable


def test_vlan_without_kernel_support_is_refused_naming_vlan(lan):
    if kernel_has_vlan():
        pytest.skip('this kernel has 802.1q support: see test_vlan_parent_lifecycle')
    result = run_module('macvlan', fail=True, config=[lan[0], dict(lan[1], vlan=100)])
    assert result['field'] == 'vlan' and result['value'] == 100
    assert 'this kernel has no 802.1q support (vlan link kind)' in result['msg']
    assert sys_class_net('ns-a') == ['lo'] and 'nic0.100' not in sys_class_net()
    # Check mode says the same (the probe changes nothing).
    result = run_module('macvlan', fail=True, check=True, config=[dict(lan[1], vlan=100)])
    assert 'no 802.1q support' in result['msg']
    assert sorted(sys_class_net()) == ['lo', 'nic0', 'nic0-far']


def test_vlan_parent_lifecycle(lan):
    """The 802.1Q path (runs where the kernel has the vlan link kind, e.g. the VMs)."""
    if not kernel_has_vlan():
        pytest.skip('this kernel has no 802.1q support (vlan link kind)')
    a, b = dict(lan[0], vlan=100), dict(lan[1], vlan=100)
    _check, applied, _again, _check2 = quartet('macvlan', config=[a, b])
    assert applied['commands'][0] == 'create vlan nic0.100 (802.1Q id 100 on nic0)'
    assert sum(c.startswith('create vlan') for c in applied['commands']) == 1
    vlan = link('nic0.100', details=True)
    assert vlan['linkinfo']['info_kind'] == 'vlan' and vlan['ifalias'] == 'hostnet.provision macvlan-parent'
    assert link('eth0', netns='ns-a', details=True)['ifalias'] == TAG + ' vlan=100'
    assert ping('ns-a', '203.0.113.11')
    # One user goes: the sub-interface stays; the last goes: it goes too.
    assert run_module('macvlan', state='deleted', config=[{'name': 'eth0', 'netns': 'ns-a'}])['commands'] == [
        'delete macvlan eth0@ns-a']
    assert link('nic0.100') is not None
    assert run_module('macvlan', state='deleted', config=[{'name': 'eth0', 'netns': 'ns-b'}])['commands'] == [
        'delete macvlan eth0@ns-b', 'delete vlan nic0.100 (its last macvlan is gone)']
    assert link('nic0.100') is None
    # A sub-interface the collection did not make is used, never removed.
    sh('ip', 'link', 'add', 'link', 'nic0', 'name', 'nic0.200', 'type', 'vlan', 'id', '200')
    run_module('macvlan', config=[dict(lan[0], vlan=200)])
    assert run_module('macvlan', state='deleted', config=[{'name': 'eth0', 'netns': 'ns-a'}])['commands'] == [
        'delete macvlan eth0@ns-a']
    assert link('nic0.200') is not None


def test_failed_overridden_call_puts_deleted_endpoints_back(lan):
    old = dict(endpoint(None, 12, gateway=None), name='mv-old', mode='private')
    run_module('macvlan', config=[old])
    mac = link('mv-old')['address']
    sh('ip', 'link', 'add', 'fgn0', 'netns', 'ns-b', 'type', 'veth', 'peer', 'name', 'fgn1', 'netns', 'ns-b')
    sh('ip', '-n', 'ns-b', 'addr', 'add', '198.51.100.2/24', 'dev', 'fgn0')
    sh('ip', '-n', 'ns-b', 'link', 'set', 'fgn0', 'up')
    sh('ip', '-n', 'ns-b', 'route', 'add', 'default', 'via', '198.51.100.1')
    # overridden deletes mv-old first; eth0@ns-b's gateway then fails in the
    # kernel (EEXIST; the override lets it past the clash check's refusal).
    result = run_module('macvlan', fail=True, state='overridden', config=[dict(lan[1], allow_route_overlap=True)])
    assert 'nothing of this call was kept' in result['msg'] and result['changed'] is False
    assert result['rolled_back'][-1] == 'delete macvlan mv-old'
    entry = link('mv-old', details=True)
    assert entry['address'] == mac and entry['linkinfo']['info_data']['mode'] == 'private'
    assert sorted(addresses('mv-old')) == ['2001:db8:113::12/64', '203.0.113.12/24']
    assert sorted(sys_class_net('ns-b')) == ['fgn0', 'fgn1', 'lo']
    assert run_module('macvlan', config=[old])['changed'] is False


def test_an_address_held_on_the_segment_is_refused_before_any_change(lan):
    """One address, one holder on a parent's segment: another managed
    macvlan, the parent itself, or another macvlan of the same call."""
    sh('ip', 'addr', 'add', '203.0.113.254/24', 'dev', 'nic0')
    run_module('macvlan', config=[lan[0]])
    run_module('netns', config=[{'name': 'ns-c'}])
    before = kernel_snapshot()
    result = run_module('macvlan', fail=True, config=[endpoint('ns-c', 12, addresses=['203.0.113.10/25'])])
    assert snapshot_diff(before, kernel_snapshot()) == []
    assert result['field'] == 'addresses' and result['value'] == '203.0.113.10/25'
    assert 'already held on the segment of nic0 by macvlan eth0@ns-a' in result['msg'], result['msg']
    result = run_module('macvlan', fail=True, config=[endpoint('ns-c', 12, addresses=['203.0.113.254/24'])])
    assert 'by its parent nic0' in result['msg']
    # Within one call.
    before = kernel_snapshot()
    result = run_module('macvlan', fail=True, config=[lan[1], endpoint('ns-c', 12, addresses=[
        '203.0.113.12/24', '2001:db8:113::11/64'])])
    assert snapshot_diff(before, kernel_snapshot()) == []
    assert 'macvlan eth0@ns-c' in result['msg'] and 'by macvlan eth0@ns-b' in result['msg'], result['msg']
    # The endpoints' own addresses again: no clash.
    assert run_module('macvlan', config=lan)['changed'] is True
    assert run_module('macvlan', config=lan)['changed'] is False
