# -*- coding: utf-8 -*-
"""Drift made by hand (inside the sandbox): for every attribute the
collection sets, a change made behind its back is reported by check mode
and repaired by the next run, which leaves the kernel exactly as the first
converge did; a third run changes nothing."""

from __future__ import annotations

import json
import time

import pytest

from helpers import kernel_snapshot, run_module, sh

NS = 'drift-a'
BRIDGE = dict(name='hn-drift', mtu=1500, addresses=['198.18.40.1/24', '2001:db8:40::1/64'], masquerade=True, icc=False)
VETH = dict(name='drift-a-h', bridge='hn-drift', mtu=1500,
            peer=dict(name='eth0', netns=NS, mtu=1500, addresses=['198.18.40.10/24', '2001:db8:40::10/64'],
                      gateway=['198.18.40.1', '2001:db8:40::1'],
                      routes=[dict(dest='203.0.113.0/24', via='198.18.40.254')]))
PORT = dict(host_port=8080, destination='198.18.40.10', port=80)
# A stand-in NIC made by hand (not the collection's): the VXLAN underlay
# and the macvlan parent.
NIC = 'drift-up'
VXLAN = dict(name='hn-vx', vni=42, local='198.18.41.1', dev=NIC, bridge='hn-ovl')
PEERS = dict(device='hn-vx', peers=['198.18.41.2'],
             entries=[dict(mac='02:42:c6:12:29:02', vtep='198.18.41.2')])
MACVLAN = dict(name='eth1', netns='drift-b', parent='drift-up-p', addresses=['198.18.42.10/24'],
               gateway=['198.18.42.1'])


def _normal(snap):
    """A snapshot with the order of every list ignored (a link brought down
    and up again gets its kernel routes and multicast FDB entries back in
    another order) and without the kernel's own multicast FDB entries."""
    out = {}
    for key, value in snap.items():
        if isinstance(value, dict) and 'links' in value:
            view = dict(value)
            view['fdb'] = [e for e in view['fdb'] if not int(e['mac'].split(':')[0], 16) & 1]
            # IPv6 link-local addresses and their routes come and go with
            # the link and DAD, on the kernel's own timing.
            view['routes6'] = [r for r in view['routes6'] if not r['dst'].startswith(('fe80', 'ff00'))
                               and r.get('type') != 'anycast']
            view['addresses'] = [dict(a, addr_info=[i for i in a['addr_info'] if i.get('scope') != 'link'])
                                 for a in view['addresses']]
            value = dict((k, sorted(json.dumps(e, sort_keys=True) for e in v)) for k, v in view.items())
        if key == 'nftables':
            # Handles are numbered anew when a table is made again.
            value = sorted(json.dumps(_no_handles(e), sort_keys=True) for e in value)
        out[key] = value
    return out


def _no_handles(entry):
    if isinstance(entry, dict):
        return dict((k, _no_handles(v)) for k, v in entry.items() if k != 'handle')
    if isinstance(entry, list):
        return [_no_handles(v) for v in entry]
    return entry


def delta(before, after):
    """What differs between two _normal() snapshots, item by item."""
    out = []
    for key in sorted(set(before) | set(after)):
        a, b = before.get(key), after.get(key)
        if a == b:
            continue
        if isinstance(a, dict) and isinstance(b, dict):
            for sub in sorted(set(a) | set(b)):
                x, y = a.get(sub) or [], b.get(sub) or []
                if x != y:
                    out += ['%s/%s gone: %s' % (key, sub, e) for e in x if e not in y]
                    out += ['%s/%s new: %s' % (key, sub, e) for e in y if e not in x]
        elif isinstance(a, list) and isinstance(b, list):
            out += ['%s gone: %s' % (key, e) for e in a if e not in b]
            out += ['%s new: %s' % (key, e) for e in b if e not in a]
        else:
            out.append('%s: %r -> %r' % (key, a, b))
    return out


def settled():
    """kernel_snapshot() once the kernel is done reacting (a link set down
    loses its IPv6 addresses and routes a moment later; DAD ends on its own):
    two equal reads in a row, tried for at most 3 s."""
    last = _normal(kernel_snapshot())
    for _attempt in range(30):
        time.sleep(0.1)
        now = _normal(kernel_snapshot())
        if now == last:
            return now
        last = now
    raise AssertionError('the kernel did not settle: %s' % delta(last, _normal(kernel_snapshot())))


def converge(check=False):
    """The whole topology; True when any module reported a change."""
    changed = False
    for name, params in (('netns', dict(config=[dict(name=NS), dict(name='drift-b')])),
                         ('bridge', dict(config=[BRIDGE, dict(name='hn-ovl', mtu=1450)], enable_forwarding=True)),
                         ('veth', dict(config=[VETH])),
                         ('portmap', dict(config=[PORT], enable_forwarding=True)),
                         ('vxlan', dict(config=[VXLAN])),
                         ('vxlan_peer', dict(config=[PEERS])),
                         ('macvlan', dict(config=[MACVLAN]))):
        changed |= run_module(name, check=check, **params)['changed']
    return changed


def _nft_delete_first_element():
    """Delete one element the collection put in its own table."""
    import subprocess
    out = json.loads(subprocess.run(['nft', '-j', 'list', 'ruleset'], check=True, capture_output=True,
                                    text=True).stdout)
    for entry in out['nftables']:
        elem = entry.get('set') or entry.get('map')
        if elem and elem.get('elem') and elem['table'] == 'hostnet':
            kind = 'set' if 'set' in entry else 'map'
            first = elem['elem'][0]
            if isinstance(first, dict) and 'elem' in first:
                first = first['elem']['val']
            elif isinstance(first, list):
                first = first[0]
            if isinstance(first, dict) and 'concat' in first:
                first = ' . '.join(str(v) for v in first['concat'])
            sh('nft', 'delete', 'element', elem['family'], elem['table'], elem['name'], '{ %s }' % first)
            return '%s %s' % (kind, elem['name'])
    raise AssertionError('no element in the collection\'s table')


DRIFTS = {
    'bridge set down': lambda: sh('ip', 'link', 'set', 'hn-drift', 'down'),
    'bridge address removed': lambda: sh('ip', 'addr', 'del', '198.18.40.1/24', 'dev', 'hn-drift'),
    'bridge mtu changed': lambda: sh('ip', 'link', 'set', 'hn-drift', 'mtu', '1400'),
    'host end set down': lambda: sh('ip', 'link', 'set', 'drift-a-h', 'down'),
    'host end detached': lambda: sh('ip', 'link', 'set', 'drift-a-h', 'nomaster'),
    'peer set down': lambda: sh('ip', 'link', 'set', 'eth0', 'down', netns=NS),
    'peer address removed': lambda: sh('ip', 'addr', 'del', '198.18.40.10/24', 'dev', 'eth0', netns=NS),
    'peer IPv6 address removed': lambda: sh('ip', 'addr', 'del', '2001:db8:40::10/64', 'dev', 'eth0', netns=NS),
    'peer default route removed': lambda: sh('ip', 'route', 'del', 'default', netns=NS),
    'peer route removed': lambda: sh('ip', 'route', 'del', '203.0.113.0/24', netns=NS),
    'peer IPv6 default route removed': lambda: sh('ip', '-6', 'route', 'del', 'default', netns=NS),
    'veth mtu changed': lambda: sh('ip', 'link', 'set', 'drift-a-h', 'mtu', '1400'),
    'peer mtu changed': lambda: sh('ip', 'link', 'set', 'eth0', 'mtu', '1400', netns=NS),
    'vxlan set down': lambda: sh('ip', 'link', 'set', 'hn-vx', 'down'),
    'vxlan detached': lambda: sh('ip', 'link', 'set', 'hn-vx', 'nomaster'),
    'vxlan flood entry removed': lambda: sh('bridge', 'fdb', 'del', '00:00:00:00:00:00', 'dev', 'hn-vx',
                                            'dst', '198.18.41.2'),
    'vxlan static entry removed': lambda: sh('bridge', 'fdb', 'del', '02:42:c6:12:29:02', 'dev', 'hn-vx',
                                             'dst', '198.18.41.2'),
    'macvlan set down': lambda: sh('ip', 'link', 'set', 'eth1', 'down', netns='drift-b'),
    'macvlan address removed': lambda: sh('ip', 'addr', 'del', '198.18.42.10/24', 'dev', 'eth1', netns='drift-b'),
    'macvlan default route removed': lambda: sh('ip', 'route', 'del', 'default', netns='drift-b'),
    'namespace loopback down': lambda: sh('ip', 'link', 'set', 'lo', 'down', netns=NS),
    'IPv4 forwarding off': lambda: sh('sysctl', '-qw', 'net.ipv4.ip_forward=0'),
    'nftables element deleted': _nft_delete_first_element,
    'nftables table deleted': lambda: sh('nft', 'delete', 'table', 'inet', 'hostnet'),
}


@pytest.mark.parametrize('drift', sorted(DRIFTS))
def test_hand_drift_is_found_and_repaired(drift):
    sh('ip', 'link', 'add', NIC, 'type', 'veth', 'peer', 'name', 'drift-up-p')
    sh('ip', 'addr', 'add', '198.18.41.1/24', 'dev', NIC)
    for end in (NIC, 'drift-up-p'):
        sh('ip', 'link', 'set', end, 'up')
    assert converge() is True
    converged = settled()
    assert converge() is False
    DRIFTS[drift]()
    drifted = settled()
    assert delta(converged, drifted), 'the drift changed nothing: the test proves nothing'
    assert converge(check=True) is True, 'check mode did not see: %s' % drift
    assert delta(drifted, _normal(kernel_snapshot())) == [], 'check mode changed the kernel'
    assert converge() is True, 'the run did not repair: %s' % drift
    assert delta(converged, settled()) == []
    assert converge() is False
