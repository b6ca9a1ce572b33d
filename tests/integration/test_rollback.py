# -*- coding: utf-8 -*-
"""A call that fails midway keeps nothing, also of what it deletes or
recreates.

Each test makes a call whose later resource the kernel refuses at apply
time (past every check the modules make up front), after an earlier
resource of the same call was planned to be deleted or recreated: a bridge
(with a port and its icc policy), a namespace (with a link in it), a VXLAN
device with the flood entries, static FDB entries and neighbours that
vxlan_peer gave it. The kernel state read back (helpers.kernel_snapshot:
links with their ifindex and MAC, addresses, routes, permanent neighbours,
static FDB entries, nftables, /run/hostnet) must be what it was before the
call, and the error must say that nothing of the call was kept.
"""

from __future__ import annotations

from helpers import kernel_snapshot, run_module, sh, snapshot_diff


def _steady(snapshot):
    """Without the timers that tick on their own (bridge port timers)."""
    if isinstance(snapshot, dict):
        return dict((k, _steady(v)) for k, v in snapshot.items() if not str(k).endswith('_timer'))
    if isinstance(snapshot, list):
        return [_steady(v) for v in snapshot]
    return snapshot


def refused_without_a_trace(module, expect, **params):
    before = _steady(kernel_snapshot())
    result = run_module(module, fail=True, **params)
    after = _steady(kernel_snapshot())
    msg = result.get('msg') or ''
    assert 'nothing of this call was kept' in msg, msg
    for part in expect:
        assert part in msg, (part, msg)
    assert not result.get('changed'), result
    assert before == after, 'the failed call left changes:\n%s' % '\n'.join(snapshot_diff(before, after))
    return msg


def _ipv6_off(netns):
    """IPv6 disabled on the links made in ``netns`` from now on: an IPv6
    address given to one is refused by the kernel when it is added, which
    no check up front foresees."""
    sh('ip', 'netns', 'exec', netns, 'sysctl', '-qw', 'net.ipv6.conf.default.disable_ipv6=1')


def test_bridge_deleted_by_overridden_stays_when_a_later_bridge_fails():
    run_module('netns', config=[{'name': 'rb-ep'}, {'name': 'rb-x'}])
    run_module('bridge', enable_forwarding=True, config=[
        {'name': 'rb-old', 'mtu': 1400, 'mac': '02:00:5e:10:00:01', 'icc': False, 'isolated': True,
         'addresses': ['198.51.100.1/24', '2001:db8:10::1/64']}])
    run_module('veth', config=[{'name': 'rb-old-p1', 'bridge': 'rb-old', 'mtu': 1400, 'peer': {
        'name': 'eth0', 'netns': 'rb-ep', 'mtu': 1400, 'addresses': ['198.51.100.10/24'],
        'gateway': ['198.51.100.1']}}])
    sh('ip', 'link', 'set', 'rb-old-p1', 'type', 'bridge_slave', 'hairpin', 'on')
    _ipv6_off('rb-x')
    # overridden: rb-old (not listed) is deleted, rb-new made in rb-x, whose
    # IPv6 address the kernel refuses.
    msg = refused_without_a_trace('bridge', ['rb-new', '2001:db8:20::1/64'], state='overridden', config=[
        {'name': 'rb-new', 'netns': 'rb-x', 'addresses': ['203.0.113.1/24', '2001:db8:20::1/64']}])
    assert 'delete bridge rb-old' not in msg, msg


def test_bridge_deleted_stays_when_a_change_to_a_listed_bridge_fails():
    run_module('netns', config=[{'name': 'rb-x'}])
    run_module('bridge', config=[{'name': 'rb-old', 'addresses': ['198.51.100.1/24']}])
    _ipv6_off('rb-x')
    run_module('bridge', config=[{'name': 'rb-keep', 'netns': 'rb-x', 'addresses': ['203.0.113.1/24']}])
    # overridden: rb-old (not listed) is deleted; rb-keep gains an IPv6
    # address, which the kernel refuses.
    refused_without_a_trace('bridge', ['rb-keep', '2001:db8:20::1/64'], state='overridden', config=[
        {'name': 'rb-keep', 'netns': 'rb-x', 'addresses': ['203.0.113.1/24', '2001:db8:20::1/64']}])


def test_the_nftables_changes_of_later_bridges_go_too_when_one_of_them_fails():
    """The nftables changes a call plans in one namespace go in one
    transaction, made by the first of their operations: the changes of
    bridges whose own operations never ran are undone as well."""
    run_module('netns', config=[{'name': 'rb-x'}])
    _ipv6_off('rb-x')
    run_module('bridge', enable_forwarding=True, config=[
        {'name': 'rb-keep', 'netns': 'rb-x', 'masquerade': True, 'addresses': ['198.51.100.129/26']}])
    refused_without_a_trace('bridge', ['rb-c', '2001:db8:20::1/64'], enable_forwarding=True, config=[
        {'name': 'rb-a', 'netns': 'rb-x', 'masquerade': True, 'icc': False, 'addresses': ['198.51.100.1/26']},
        {'name': 'rb-b', 'netns': 'rb-x', 'masquerade': True, 'icc': False, 'addresses': ['198.51.100.65/26']},
        {'name': 'rb-c', 'netns': 'rb-x', 'masquerade': True, 'icc': False,
         'addresses': ['203.0.113.1/24', '2001:db8:20::1/64']}])


def test_namespace_deleted_by_overridden_stays_when_a_later_namespace_fails():
    run_module('netns', config=[{'name': 'rb-old', 'sysctls': {'net.ipv4.ip_forward': 1}}])
    run_module('veth', config=[{'name': 'rb-v', 'netns': 'rb-old', 'addresses': ['198.51.100.1/24'],
                                'peer': {'name': 'eth0', 'netns': 'rb-old', 'addresses': ['198.51.100.2/24']}}])
    msg = refused_without_a_trace('netns', ['net.ipv4.no_such_sysctl'], state='overridden', config=[
        {'name': 'rb-web'}, {'name': 'rb-db', 'sysctls': {'net.ipv4.no_such_sysctl': 1}}])
    assert 'rb-old' not in msg, msg


# -- VXLAN: a delete or a recreate undone gives back the device as it was -------

def _vxlan_hosts():
    run_module('netns', config=[{'name': 'rb-ha'}, {'name': 'rb-hb'}])
    run_module('veth', config=[{'name': 'rb-und-a', 'netns': 'rb-ha', 'addresses': ['198.18.0.1/24'],
                                'peer': {'name': 'rb-und-b', 'netns': 'rb-hb', 'addresses': ['198.18.0.2/24']}}])


def _tunnel_with_entries(name, vni):
    run_module('vxlan', config=[{'name': name, 'netns': 'rb-ha', 'vni': vni, 'local': '198.18.0.1',
                                 'dev': 'rb-und-a', 'addresses': ['203.0.113.1/24', '2001:db8:30::1/64']}])
    run_module('vxlan_peer', config=[{
        'device': name, 'netns': 'rb-ha', 'peers': ['198.18.0.2', '198.18.0.3'],
        'entries': [{'mac': '02:00:cb:00:71:02', 'vtep': '198.18.0.2', 'ip': '203.0.113.2'},
                    {'mac': '02:00:cb:00:71:03', 'vtep': '198.18.0.3', 'ip': '2001:db8:30::3'}]}])


def test_vxlan_recreated_comes_back_with_its_entries_when_a_later_device_fails():
    _vxlan_hosts()
    _tunnel_with_entries('vx0', 100)
    # A device the collection did not make holds VNI 200 in rb-hb: only the
    # kernel finds that (EEXIST), after vx0@rb-ha was deleted to be made
    # again with VNI 101.
    sh('ip', '-n', 'rb-hb', 'link', 'add', 'vx-f', 'type', 'vxlan', 'id', '200', 'dstport', '4789',
       'local', '198.18.0.2', 'dev', 'rb-und-b')
    refused_without_a_trace('vxlan', ['vni 200', 'vx-f'], config=[
        {'name': 'vx0', 'netns': 'rb-ha', 'vni': 101, 'local': '198.18.0.1', 'dev': 'rb-und-a',
         'addresses': ['203.0.113.1/24', '2001:db8:30::1/64']},
        {'name': 'vx0', 'netns': 'rb-hb', 'vni': 200, 'local': '198.18.0.2', 'dev': 'rb-und-b'}])


def test_vxlan_deleted_by_overridden_comes_back_with_its_entries_when_a_later_device_fails():
    _vxlan_hosts()
    _tunnel_with_entries('vx-old', 100)
    sh('ip', '-n', 'rb-ha', 'link', 'add', 'vx-f', 'type', 'vxlan', 'id', '200', 'dstport', '4789',
       'local', '198.18.0.1', 'dev', 'rb-und-a')
    # overridden in rb-ha: vx-old is deleted first (its VNI may be the one a
    # listed device takes), then vx-new clashes with vx-f.
    refused_without_a_trace('vxlan', ['vni 200', 'vx-f'], state='overridden', config=[
        {'name': 'vx-new', 'netns': 'rb-ha', 'vni': 200, 'local': '198.18.0.1', 'dev': 'rb-und-a'}])
