# -*- coding: utf-8 -*-
"""hostnet.provision.veth against the real kernel (inside the sandbox)."""

from __future__ import annotations

import os
import subprocess

import pytest

from helpers import (addresses, default_gateways, ip_json, kernel_snapshot, link, ping, quartet, run_module, sh, snapshot_diff,
                     sys_class_net, wait_for)

BRIDGE = {'name': 'hn-br0', 'addresses': ['198.51.100.1/24', '2001:db8:100::1/64']}


def endpoint(host, netns, last, **extra):
    peer = {'name': 'eth0', 'netns': netns,
            'addresses': ['198.51.100.%d/24' % last, '2001:db8:100::%d/64' % last],
            'gateway': ['198.51.100.1', '2001:db8:100::1']}
    peer.update(extra.pop('peer', {}))
    return dict({'name': host, 'bridge': 'hn-br0', 'peer': peer}, **extra)


@pytest.fixture
def segment():
    """Two endpoint namespaces and a bridge with a gateway."""
    run_module('netns', config=[{'name': 'ns-a'}, {'name': 'ns-b'}])
    run_module('bridge', config=[BRIDGE])
    return [endpoint('veth-a', 'ns-a', 10), endpoint('veth-b', 'ns-b', 11)]


def test_quartet_builds_a_segment_that_carries_traffic(segment):
    check, applied, _again, _check2 = quartet('veth', config=segment)
    assert applied['commands'][:5] == [
        'create veth veth-a with peer eth0 in netns ns-a',
        'add address 198.51.100.10/24 to eth0', 'add address 2001:db8:100::10/64 to eth0',
        'add route default via 198.51.100.1 on eth0', 'add route default via 2001:db8:100::1 on eth0']
    # The peer was created inside its namespace under its final name.
    assert 'eth0' in sys_class_net('ns-a') and 'eth0' not in sys_class_net()
    assert link('veth-a')['master'] == 'hn-br0'
    assert 'UP' in link('veth-a')['flags'] and 'UP' in link('eth0', netns='ns-a')['flags']
    assert addresses('eth0', netns='ns-b') == ['198.51.100.11/24', '2001:db8:100::11/64']
    assert default_gateways('ns-a') == ['198.51.100.1', '2001:db8:100::1']
    # Real packets: endpoint to endpoint and to the gateway, both families.
    assert ping('ns-a', '198.51.100.11')
    assert ping('ns-a', '2001:db8:100::11')
    assert ping('ns-b', '198.51.100.1')
    # Check mode predicted the same after-state, except kernel-chosen MACs.
    for predicted, real in zip(check['after'], applied['after']):
        assert predicted['mac'] is None and predicted['peer']['mac'] is None
        real = dict(real, mac=None, mtu=None, peer=dict(real['peer'], mac=None, mtu=None))
        assert predicted == real


def test_mtu_mac_on_both_ends_and_changes_in_place(segment):
    item = endpoint('veth-a', 'ns-a', 10, mtu=1400, mac='02:00:5e:00:00:0a',
                    peer={'mtu': 1400, 'mac': '02:00:5e:00:00:0b'})
    quartet('veth', config=[item])
    assert link('veth-a')['mtu'] == 1400 and link('veth-a')['address'] == '02:00:5e:00:00:0a'
    peer = link('eth0', netns='ns-a')
    assert peer['mtu'] == 1400 and peer['address'] == '02:00:5e:00:00:0b'
    index_before = peer['ifindex']
    changed = run_module('veth', config=[{'name': 'veth-a', 'mtu': 1300, 'peer': {'name': 'eth0', 'netns': 'ns-a',
                                                                                  'mtu': 1300}}])
    assert changed['commands'] == ['set mtu of veth-a to 1300 (was 1400)', 'set peer mtu of eth0 to 1300 (was 1400)']
    assert link('eth0', netns='ns-a')['ifindex'] == index_before  # changed in place, not recreated


def test_replaced_sets_lists_exactly_and_routes(segment):
    run_module('veth', config=segment)
    new = endpoint('veth-a', 'ns-a', 20, peer={'addresses': ['198.51.100.20/24'], 'gateway': ['198.51.100.1'],
                                               'routes': [{'dest': '203.0.113.0/24', 'via': '198.51.100.1'}]})
    result = run_module('veth', state='replaced', config=[new])
    assert addresses('eth0', netns='ns-a') == ['198.51.100.20/24']
    assert default_gateways('ns-a') == ['198.51.100.1']
    routes = ip_json('route', 'show', '203.0.113.0/24', netns='ns-a')
    assert routes and routes[0]['gateway'] == '198.51.100.1'
    assert run_module('veth', state='replaced', config=[new])['changed'] is False
    assert result['diff']['before']['veth-a']['peer']['gateway'] == ['198.51.100.1', '2001:db8:100::1']
    # replaced without a bridge detaches the host end
    run_module('veth', state='replaced', config=[dict(new, bridge=None)])
    assert 'master' not in link('veth-a')


def test_peer_move_is_a_recreate(segment):
    run_module('veth', config=segment)
    run_module('netns', config=[{'name': 'ns-c'}])
    moved = endpoint('veth-a', 'ns-c', 10, allow_route_overlap=True)  # past the clash check
    result = run_module('veth', config=[moved])
    assert result['commands'][0] == 'delete veth veth-a to recreate it (peer eth0@ns-a becomes eth0@ns-c)'
    assert result['commands'][1] == 'create veth veth-a with peer eth0 in netns ns-c'
    assert 'eth0' not in sys_class_net('ns-a') and 'eth0' in sys_class_net('ns-c')
    assert ping('ns-c', '198.51.100.11')


def test_gathered_round_trip_overridden_and_deleted(segment):
    sh('ip', 'link', 'add', 'foreign0', 'type', 'veth', 'peer', 'name', 'foreign1')
    run_module('veth', config=segment)
    gathered = run_module('veth', state='gathered')['gathered']
    assert [g['name'] for g in gathered] == ['veth-a', 'veth-b']
    assert gathered[0]['peer']['netns'] == 'ns-a'
    assert run_module('veth', state='overridden', config=gathered)['changed'] is False
    result = run_module('veth', state='overridden', config=[gathered[1]])
    assert result['commands'] == ['delete veth veth-a (and its peer)']
    assert 'eth0' not in sys_class_net('ns-a')
    assert run_module('veth', state='deleted', config=[{'name': 'veth-b'}])['changed'] is True
    assert 'eth0' not in sys_class_net('ns-b')
    assert link('foreign0') is not None and link('foreign1') is not None


def test_route_off_the_link_refused_before_any_change(segment):
    unreachable = [{'dest': '203.0.113.0/24', 'via': '198.18.0.1'}]
    bad = endpoint('veth-x', 'ns-b', 12, peer={'name': 'eth1', 'gateway': None, 'routes': unreachable})
    result = run_module('veth', fail=True, config=[segment[0], bad])
    assert result['field'] == 'peer.routes' and result['value'] == '198.18.0.1'
    assert 'via 198.18.0.1 (for 203.0.113.0/24) is not on the link' in result['msg']
    assert result['changed'] is False
    assert link('veth-a') is None and link('veth-x') is None


def test_failure_midway_leaves_nothing_of_the_call(segment):
    # A default route the collection did not make: only the kernel finds
    # out (EEXIST) when veth-x's gateway is added, after veth-a is complete.
    sh('ip', 'link', 'add', 'fgn0', 'netns', 'ns-b', 'type', 'veth', 'peer', 'name', 'fgn1', 'netns', 'ns-b')
    sh('ip', '-n', 'ns-b', 'addr', 'add', '203.0.113.2/24', 'dev', 'fgn0')
    sh('ip', '-n', 'ns-b', 'link', 'set', 'fgn0', 'up')
    sh('ip', '-n', 'ns-b', 'route', 'add', 'default', 'via', '203.0.113.1')
    # The clash check refuses a second default route up front; the override
    # lets the call reach the kernel, which refuses it midway.
    bad = dict(endpoint('veth-x', 'ns-b', 12, peer={'name': 'eth1'}), allow_route_overlap=True)
    third = endpoint('veth-c', 'ns-b', 13, peer={'name': 'eth2', 'gateway': None})
    result = run_module('veth', fail=True, config=[segment[0], bad, third])
    assert 'veth veth-x' in result['msg'] and 'File exists' in result['msg']
    assert 'nothing of this call was kept' in result['msg']
    assert 'create veth veth-a with peer eth0 in netns ns-a' in result['rolled_back']
    assert result['changed'] is False and result['commands'] == []
    assert link('veth-a') is None and link('veth-x') is None and link('veth-c') is None
    assert sys_class_net('ns-a') == ['lo']
    assert sorted(sys_class_net('ns-b')) == ['fgn0', 'fgn1', 'lo']
    # Without the foreign route the same call converges.
    sh('ip', '-n', 'ns-b', 'route', 'del', 'default')
    assert run_module('veth', config=[segment[0], bad, third])['changed'] is True
    assert run_module('veth', config=[segment[0], bad, third])['changed'] is False


def test_failed_overridden_call_puts_deleted_pairs_back(segment):
    run_module('veth', config=[segment[0]])
    mac, peer_mac = link('veth-a')['address'], link('eth0', netns='ns-a')['address']
    sh('ip', 'link', 'add', 'fgn0', 'netns', 'ns-b', 'type', 'veth', 'peer', 'name', 'fgn1', 'netns', 'ns-b')
    sh('ip', '-n', 'ns-b', 'addr', 'add', '203.0.113.2/24', 'dev', 'fgn0')
    sh('ip', '-n', 'ns-b', 'link', 'set', 'fgn0', 'up')
    sh('ip', '-n', 'ns-b', 'route', 'add', 'default', 'via', '203.0.113.1')
    # overridden deletes veth-a first, then veth-b fails in the kernel (EEXIST;
    # the override lets it past the clash check's up-front refusal).
    result = run_module('veth', fail=True, state='overridden', config=[dict(segment[1], allow_route_overlap=True)])
    assert 'nothing of this call was kept' in result['msg'] and result['changed'] is False
    assert result['rolled_back'][-1] == 'delete veth veth-a (and its peer)'
    # veth-a is back as it was: both ends, MACs, addresses, gateways, bridge.
    assert link('veth-a')['address'] == mac and link('eth0', netns='ns-a')['address'] == peer_mac
    assert link('veth-a')['master'] == 'hn-br0'
    assert addresses('eth0', netns='ns-a') == ['198.51.100.10/24', '2001:db8:100::10/64']
    assert default_gateways('ns-a') == ['198.51.100.1', '2001:db8:100::1']
    assert link('veth-b') is None
    assert run_module('veth', config=[segment[0]])['changed'] is False


@pytest.mark.parametrize('change, field, fragment', [
    ({'name': 'veth-a-is-too-long'}, 'name', 'at most 15 bytes'),
    ({'peer': {'gateway': ['203.0.113.1']}}, 'peer.gateway', 'outside the link\'s subnets'),
    ({'peer': {'gateway': ['198.51.100.1', '198.51.100.2']}}, 'peer.gateway', 'one gateway per address family'),
    ({'peer': {'addresses': ['198.51.100.10/33']}}, 'peer.addresses', 'not a valid address'),
    ({'peer': {'mac': '02:00:5e:00:00'}}, 'peer.mac', 'not a MAC'),
    ({'peer': {'netns': 'missing'}}, 'peer.netns', 'does not exist'),
    ({'peer': {'name': 'eth 0'}}, 'peer.name', 'may not contain'),
    ({'bridge': 'no-such-br'}, 'bridge', 'does not exist'),
])
def test_bad_input_refused_before_any_change(segment, change, field, fragment):
    bad = endpoint('veth-b', 'ns-b', 11)
    bad['peer'].update(change.pop('peer', {}))
    bad.update(change)
    result = run_module('veth', fail=True, config=[segment[0], bad])
    assert fragment in result['msg'], result['msg']
    assert result['field'] == field
    assert link('veth-a') is None and sys_class_net('ns-a') == ['lo']


def test_peer_name_taken_in_target_namespace(segment):
    sh('ip', '-n', 'ns-b', 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'other')
    result = run_module('veth', fail=True, config=segment)
    assert result['field'] == 'peer.name' and 'already taken in netns ns-b' in result['msg']
    assert link('veth-a') is None
    assert link('eth0', netns='ns-b', details=True)['linkinfo']['info_kind'] == 'veth'


def test_duplicate_and_clashing_names_refused(segment):
    result = run_module('veth', fail=True, config=[segment[0], segment[0]])
    assert 'listed twice' in result['msg']
    clash = endpoint('veth-b', 'ns-a', 11)   # second eth0 in ns-a
    result = run_module('veth', fail=True, config=[segment[0], clash])
    assert result['field'] == 'peer.name' and 'also used by veth' in result['msg']
    two_gateways = endpoint('veth-b', 'ns-a', 11, peer={'name': 'eth1'})
    result = run_module('veth', fail=True, config=[segment[0], two_gateways])
    assert result['field'] == 'peer.gateway' and 'already sets the default IPv4 route' in result['msg']
    assert link('veth-a') is None


def test_existing_foreign_link_under_the_name_is_refused(segment):
    sh('ip', 'link', 'add', 'veth-a', 'type', 'veth', 'peer', 'name', 'foreign1')
    result = run_module('veth', fail=True, config=segment)
    assert 'not created by hostnet.provision' in result['msg']
    assert link('foreign1') is not None and link('veth-b') is None


def test_check_mode_tolerates_namespaces_made_earlier_in_the_play():
    result = run_module('veth', check=True, config=[endpoint('veth-a', 'ns-new', 10)])
    assert result['changed'] is True
    assert 'assuming it will exist' in str(result.get('warnings'))
    assert link('veth-a') is None


def test_failed_recreate_puts_the_old_pair_back(segment):
    run_module('veth', config=segment)
    run_module('netns', config=[{'name': 'ns-c'}])
    # An MTU below IPv6's minimum beside an IPv6 address: refused up front.
    result = run_module('veth', fail=True, config=[endpoint('veth-a', 'ns-c', 10, peer={'mtu': 1000})])
    assert result['field'] == 'peer.mtu' and result['value'] == 1000 and result['changed'] is False
    assert 'eth0' in sys_class_net('ns-a')
    # Moving the peer is a delete and a create. Make the create fail in the
    # kernel: ns-c has a default route the collection did not make (EEXIST).
    sh('ip', 'link', 'add', 'fgn0', 'netns', 'ns-c', 'type', 'veth', 'peer', 'name', 'fgn1', 'netns', 'ns-c')
    sh('ip', '-n', 'ns-c', 'addr', 'add', '203.0.113.2/24', 'dev', 'fgn0')
    sh('ip', '-n', 'ns-c', 'link', 'set', 'fgn0', 'up')
    sh('ip', '-n', 'ns-c', 'route', 'add', 'default', 'via', '203.0.113.1')
    moved = dict(endpoint('veth-a', 'ns-c', 10), allow_route_overlap=True)
    result = run_module('veth', fail=True, config=[moved])
    assert 'nothing of this call was kept' in result['msg'] and result['changed'] is False
    assert result['rolled_back'][-1] == 'delete veth veth-a to recreate it (peer eth0@ns-a becomes eth0@ns-c)'
    assert sys_class_net('ns-c') == ['fgn0', 'fgn1', 'lo']
    # The old pair is back as it was: peer, addresses, gateways, bridge.
    assert 'eth0' in sys_class_net('ns-a')
    assert addresses('eth0', netns='ns-a') == ['198.51.100.10/24', '2001:db8:100::10/64']
    assert default_gateways('ns-a') == ['198.51.100.1', '2001:db8:100::1']
    assert link('veth-a')['master'] == 'hn-br0'
    assert ping('ns-a', '198.51.100.11')
    assert run_module('veth', config=segment)['changed'] is False


def test_an_address_held_on_the_bridge_is_refused_before_any_change(segment):
    """One address, one holder on a bridge: another managed pair's peer,
    the bridge's own address, or another pair of the same call."""
    run_module('veth', config=[segment[0]])
    run_module('netns', config=[{'name': 'ns-c'}])
    taken = endpoint('veth-c', 'ns-c', 12, peer={'addresses': ['198.51.100.10/24'], 'gateway': ['198.51.100.1']})
    before = kernel_snapshot()
    result = run_module('veth', fail=True, config=[taken])
    assert snapshot_diff(before, kernel_snapshot()) == []
    assert result['field'] == 'peer.addresses' and result['value'] == '198.51.100.10/24'
    assert 'already held on bridge hn-br0 by veth veth-a (peer eth0 in netns ns-a)' in result['msg']
    # The bridge's own address (the gateway), with another prefix length too.
    gateway = endpoint('veth-c', 'ns-c', 12, peer={'addresses': ['198.51.100.1/25'], 'gateway': []})
    result = run_module('veth', fail=True, config=[gateway])
    assert 'already held on bridge hn-br0 by the bridge itself' in result['msg']
    # Within one call: the second pair that takes the first one's new address.
    twice = [endpoint('veth-b', 'ns-b', 11), endpoint('veth-c', 'ns-c', 12, peer={
        'addresses': ['2001:db8:100::11/64'], 'gateway': []})]
    before = kernel_snapshot()
    result = run_module('veth', fail=True, config=twice)
    assert snapshot_diff(before, kernel_snapshot()) == []
    assert 'veth veth-c' in result['msg'] and 'by veth veth-b (peer eth0 in netns ns-b)' in result['msg']
    # Another bridge is another segment; the pair's own address is no clash on a re-run.
    run_module('bridge', config=[{'name': 'hn-br1', 'addresses': ['198.18.9.1/24']}])
    other = endpoint('veth-c', 'ns-c', 12, bridge='hn-br1', peer={'addresses': ['198.51.100.10/24'], 'gateway': []})
    assert run_module('veth', config=[other, segment[0]], state='merged')['changed'] is True
    assert addresses('eth0', netns='ns-c') == ['198.51.100.10/24']


def _link_records():
    try:
        return sorted(name for name in os.listdir('/run/hostnet/links') if not name.startswith('.'))
    except FileNotFoundError:
        return []


def test_teardown_namespaces_first_takes_the_pairs_along(segment):
    """The roles' teardown order: namespaces first (the kernel destroys
    their links in one batch), then the pairs, whichever of them are left.
    Pairs already gone, or going while the call runs, are no error, and
    their records go too."""
    run_module('veth', config=segment)
    assert [r for r in _link_records() if r.endswith(('-veth-a', '-veth-b'))]
    # A process holds ns-b: deleting its name leaves the namespace, and the
    # pair in it, alive; the veth call deletes that one.
    holder = subprocess.Popen(['ip', 'netns', 'exec', 'ns-b', 'sleep', '60'])
    try:
        assert wait_for(lambda: sh('ip', 'netns', 'pids', 'ns-b', check=False).stdout.strip() != '')
        netns = run_module('netns', state='deleted', config=[{'name': 'ns-a'}, {'name': 'ns-b'}])
        assert netns['commands'] == ['delete netns ns-a', 'delete netns ns-b']
        assert wait_for(lambda: 'veth-a' not in sys_class_net())
        assert 'veth-b' in sys_class_net()
        gone = run_module('veth', state='deleted', config=[{'name': 'veth-a'}, {'name': 'veth-b'}])
        assert gone['commands'] == ['delete veth veth-b (and its peer)']
    finally:
        holder.kill()
        holder.wait(timeout=10)
    assert [name for name in sys_class_net() if name.startswith('veth-')] == []
    assert not [r for r in _link_records() if r.endswith(('-veth-a', '-veth-b'))]
    assert run_module('veth', state='deleted', config=[{'name': 'veth-a'}, {'name': 'veth-b'}])['changed'] is False


def test_a_pair_that_vanishes_between_plan_and_delete_is_deleted(segment):
    """The kernel destroys a pair with its peer's namespace a moment after
    the name is gone: a veth call that still saw it deletes nothing more,
    without an error."""
    run_module('veth', config=segment)
    # The veth host end disappears behind the run's back: as if its peer's
    # namespace had been destroyed after the plan read the pair.
    from ansible_collections.hostnet.provision.plugins.module_utils import _kind_veth
    from ansible_collections.hostnet.provision.plugins.module_utils._netlink import Kernel

    with Kernel() as kernel:
        index = kernel.link_index(None, 'veth-a')
        sh('ip', 'link', 'del', 'veth-a')
        _kind_veth._delete_pair(kernel, None, 'veth-a', 'veth veth-a')  # pylint: disable=protected-access
        assert index is not None and 'veth-a' not in sys_class_net()
