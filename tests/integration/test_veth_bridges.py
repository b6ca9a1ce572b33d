# -*- coding: utf-8 -*-
"""Two bridges joined directly by one veth pair (both ends bridge ports), in
one namespace and across two, proven with packets between two endpoint
namespaces on the same subnet, one on each bridge."""

from __future__ import annotations

import pytest

from helpers import ip_json, link, ping, quartet, run_module, sh


def endpoint(host, netns, bridge, last, host_netns=None):
    item = {'name': host, 'bridge': bridge,
            'peer': {'name': 'eth0', 'netns': netns,
                     'addresses': ['198.51.100.%d/24' % last, '2001:db8:100::%d/64' % last]}}
    if host_netns:
        item['netns'] = host_netns
    return item


def master(name, netns=None):
    return link(name, netns=netns).get('master')


def reachable(src, dst_v4, dst_v6, attempts=3):
    """Ping within a bounded number of tries (neighbour discovery on fresh ports)."""
    return any(ping(src, dst_v4) and ping(src, dst_v6) for _attempt in range(attempts))


@pytest.mark.parametrize('remote', [None, 'router'], ids=['one-namespace', 'two-namespaces'])
def test_one_pair_joins_two_bridges_and_carries_traffic(remote):
    run_module('netns', config=[{'name': 'n1'}, {'name': 'n2'}] + ([{'name': remote}] if remote else []))
    run_module('bridge', config=[{'name': 'br-left'}, dict({'name': 'br-right'}, **({'netns': remote} if remote else {}))])
    run_module('veth', config=[endpoint('v-n1', 'n1', 'br-left', 10),
                               endpoint('v-n2', 'n2', 'br-right', 11, host_netns=remote)])
    # Two separate segments: nothing passes yet.
    assert not ping('n1', '198.51.100.11')
    join = {'name': 'j-left', 'bridge': 'br-left',
            'peer': dict({'name': 'j-right', 'bridge': 'br-right'}, **({'netns': remote} if remote else {}))}
    check, applied, _again, _check2 = quartet('veth', config=[join])
    assert applied['commands'] == ['create veth j-left with peer j-right in %s'
                                   % ('netns %s' % remote if remote else 'the current namespace')]
    assert check['diff']['after']['j-left']['peer']['bridge'] == 'br-right'
    # Read back through ip -j: each end is a port of its bridge, both up.
    assert master('j-left') == 'br-left' and master('j-right', netns=remote) == 'br-right'
    assert 'UP' in link('j-right', netns=remote)['flags']
    assert reachable('n1', '198.51.100.11', '2001:db8:100::11')
    assert reachable('n2', '198.51.100.10', '2001:db8:100::10')
    # Gathered as configured.
    gathered = [p for p in run_module('veth', state='gathered')['gathered'] if p['name'] == 'j-left']
    assert gathered[0]['bridge'] == 'br-left' and gathered[0]['peer']['bridge'] == 'br-right'
    # replaced without peer.bridge: the peer end is detached (one operation), traffic stops.
    detached = dict(join, peer=dict(join['peer']))
    del detached['peer']['bridge']
    result = run_module('veth', state='replaced', config=[detached])
    assert result['commands'] == ['detach j-right in %s from bridge br-right'
                                  % ('netns %s' % remote if remote else 'the current namespace')]
    assert master('j-right', netns=remote) is None
    assert not ping('n1', '198.51.100.11')
    # merged with it again: attached, traffic passes; deleted: both ends go.
    again = run_module('veth', config=[join])
    assert again['commands'] == ['attach j-right in %s to bridge br-right'
                                 % ('netns %s' % remote if remote else 'the current namespace')]
    assert reachable('n1', '198.51.100.11', '2001:db8:100::11')
    run_module('veth', state='deleted', config=[{'name': 'j-left'}])
    assert not any(l['ifname'] in ('j-left', 'j-right') for l in ip_json('link', 'show', netns=remote) + ip_json('link', 'show'))


@pytest.mark.parametrize('peer, field, fragment', [
    ({'bridge': 'br-left'}, 'peer.bridge', 'also the bridge of the other end'),
    ({'bridge': 'br-right', 'addresses': ['198.51.100.9/24']}, 'peer.addresses', 'takes no IP configuration'),
    ({'bridge': 'br-nope'}, 'peer.bridge', "peer.bridge 'br-nope' does not exist"),
    ({'bridge': 'v-n1'}, 'peer.bridge', "peer.bridge 'v-n1' is a veth, not a bridge"),
    ({'bridge': 'bad name'}, 'peer.bridge', 'may not contain'),
])
def test_a_bad_peer_bridge_is_refused_before_any_change(peer, field, fragment):
    run_module('netns', config=[{'name': 'n1'}])
    run_module('bridge', config=[{'name': 'br-left'}, {'name': 'br-right'}])
    run_module('veth', config=[endpoint('v-n1', 'n1', 'br-left', 10)])
    before = sh('ip', '-j', 'link', 'show').stdout
    result = run_module('veth', fail=True, config=[{'name': 'j-left', 'bridge': 'br-left',
                                                    'peer': dict({'name': 'j-right'}, **peer)}])
    assert fragment in result['msg'], result['msg']
    assert result['field'] == field
    assert sh('ip', '-j', 'link', 'show').stdout == before
