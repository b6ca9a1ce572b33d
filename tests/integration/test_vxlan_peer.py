# -*- coding: utf-8 -*-
"""hostnet.provision.vxlan_peer against the real kernel (inside the sandbox).

Verification reads the kernel through ``bridge -j fdb`` and ``ip -j neigh``
and through real packets between two namespace "hosts".
"""

from __future__ import annotations

import ipaddress
import time

import pytest

from helpers import fdb, link, neighbours, ping, quartet, run_module, sh, wait_for

ZERO = '00:00:00:00:00:00'
MAC_B = '02:00:cb:00:71:02'
UNDERLAY = {'name': 'und-a', 'netns': 'host-a', 'addresses': ['198.18.0.1/24'],
            'peer': {'name': 'und-b', 'netns': 'host-b', 'addresses': ['198.18.0.2/24']}}


def tunnel(host, last, **extra):
    return dict({'name': 'vx0', 'netns': 'host-%s' % host, 'vni': 100, 'local': '198.18.0.%d' % last,
                 'dev': 'und-%s' % host, 'addresses': ['203.0.113.%d/24' % last]}, **extra)


@pytest.fixture
def hosts():
    run_module('netns', config=[{'name': 'host-a'}, {'name': 'host-b'}])
    run_module('veth', config=[UNDERLAY])
    run_module('vxlan', config=[tunnel('a', 1), tunnel('b', 2)])


def flood(dev='vx0', netns='host-a'):
    return sorted(e['dst'] for e in fdb(dev, netns) if e['mac'] == ZERO)


def static(dev='vx0', netns='host-a'):
    return sorted((e['mac'], e['dst']) for e in fdb(dev, netns)
                  if e['mac'] != ZERO and e.get('state') == 'permanent')


def permanent_neighbours(dev='vx0', netns='host-a'):
    return sorted((n['dst'], n['lladdr']) for n in neighbours(dev, netns) if 'PERMANENT' in n.get('state', []))


def peers_of(n, start=10):
    """n distinct VTEP addresses in 198.18.0.0/15."""
    base = int(ipaddress.ip_address('198.18.1.0'))
    return [str(ipaddress.ip_address(base + start + i)) for i in range(n)]


def test_quartet_flood_list_entries_and_neighbours(hosts):
    config = [{'device': 'vx0', 'netns': 'host-a', 'peers': ['198.18.0.2', '198.18.0.3'],
               'entries': [{'mac': MAC_B, 'vtep': '198.18.0.2', 'ip': '203.0.113.2'},
                           {'mac': MAC_B, 'vtep': '198.18.0.2', 'ip': '2001:db8:71::2'}]}]
    check, applied, _again, _check2 = quartet('vxlan_peer', config=config)
    assert applied['commands'] == [
        'add peer 198.18.0.2 to vx0', 'add peer 198.18.0.3 to vx0',
        'add fdb entry %s dst 198.18.0.2 to vx0' % MAC_B,
        'add neighbour 203.0.113.2 lladdr %s to vx0' % MAC_B,
        'add neighbour 2001:db8:71::2 lladdr %s to vx0' % MAC_B]
    assert check['after'] == applied['after']
    assert flood() == ['198.18.0.2', '198.18.0.3']
    assert static() == [(MAC_B, '198.18.0.2')]
    assert permanent_neighbours() == [('2001:db8:71::2', MAC_B), ('203.0.113.2', MAC_B)]
    # The other device was not touched.
    assert fdb('vx0', 'host-b') == []


def test_peers_carry_traffic_and_static_entries_skip_arp(hosts):
    # "name" is an alias of "device".
    run_module('vxlan_peer', config=[{'name': 'vx0', 'netns': 'host-a', 'peers': ['198.18.0.2']},
                                     {'device': 'vx0', 'netns': 'host-b', 'peers': ['198.18.0.1']}])
    assert ping('host-a', '203.0.113.2')
    # Flannel style: no flood list, only MAC -> VTEP and IP -> MAC entries.
    mac_a = link('vx0', netns='host-a')['address']
    mac_b = link('vx0', netns='host-b')['address']
    result = run_module('vxlan_peer', state='overridden', config=[
        {'device': 'vx0', 'netns': 'host-a', 'entries': [{'mac': mac_b, 'vtep': '198.18.0.2', 'ip': '203.0.113.2'}]},
        {'device': 'vx0', 'netns': 'host-b', 'entries': [{'mac': mac_a, 'vtep': '198.18.0.1', 'ip': '203.0.113.1'}]}])
    assert 'remove peer 198.18.0.2 from vx0' in result['commands']
    assert flood() == [] and flood(netns='host-b') == []
    sh('ip', '-n', 'host-a', 'neigh', 'flush', 'dev', 'vx0', 'nud', 'reachable', check=False)
    assert ping('host-a', '203.0.113.2') and ping('host-b', '203.0.113.1')


def test_adding_one_peer_to_a_thousand_makes_exactly_one_change(hosts):
    thousand = peers_of(1000)
    started = time.monotonic()
    result = run_module('vxlan_peer', config=[{'device': 'vx0', 'netns': 'host-a', 'peers': thousand}])
    elapsed = time.monotonic() - started
    assert len(result['commands']) == 1000 and len(flood()) == 1000
    assert elapsed < 60, 'a thousand peers took %.1f s' % elapsed
    one_more = thousand + ['198.18.4.250']
    for state in ('merged', 'replaced'):
        predicted = run_module('vxlan_peer', check=True, state=state,
                               config=[{'device': 'vx0', 'netns': 'host-a', 'peers': one_more}])
        assert predicted['commands'] == ['add peer 198.18.4.250 to vx0']
    result = run_module('vxlan_peer', state='replaced', config=[{'device': 'vx0', 'netns': 'host-a', 'peers': one_more}])
    assert result['commands'] == ['add peer 198.18.4.250 to vx0']
    assert len(flood()) == 1001
    again = run_module('vxlan_peer', state='replaced', config=[{'device': 'vx0', 'netns': 'host-a', 'peers': one_more}])
    assert again['changed'] is False


def test_stale_peers_and_entries_are_purged(hosts):
    run_module('vxlan', config=[tunnel('a', 1, name='vx1', vni=101, addresses=[])])
    run_module('vxlan_peer', config=[{'device': 'vx0', 'netns': 'host-a', 'peers': ['198.18.0.2', '198.18.0.9'],
                                      'entries': [{'mac': MAC_B, 'vtep': '198.18.0.9', 'ip': '203.0.113.9'}]},
                                     {'device': 'vx1', 'netns': 'host-a', 'peers': ['198.18.0.2']},
                                     {'device': 'vx0', 'netns': 'host-b', 'peers': ['198.18.0.1']}])
    result = run_module('vxlan_peer', state='overridden', config=[
        {'device': 'vx0', 'netns': 'host-a', 'peers': ['198.18.0.2'],
         'entries': [{'mac': MAC_B, 'vtep': '198.18.0.2', 'ip': '203.0.113.2'}]}])
    assert result['commands'] == [
        # vx1 is another managed device in the namespaces looked at: purged.
        'remove peer 198.18.0.2 from vx1',
        'remove peer 198.18.0.9 from vx0',
        'change fdb entry %s on vx0 to dst 198.18.0.2 (was 198.18.0.9)' % MAC_B,
        'remove neighbour 203.0.113.9 from vx0',
        'add neighbour 203.0.113.2 lladdr %s to vx0' % MAC_B]
    assert flood() == ['198.18.0.2'] and flood('vx1') == []
    assert static() == [(MAC_B, '198.18.0.2')]
    assert permanent_neighbours() == [('203.0.113.2', MAC_B)]
    # host-b was not looked at (not named in config): untouched.
    assert flood(netns='host-b') == ['198.18.0.1']
    gathered = run_module('vxlan_peer', state='gathered',
                          config=[{'device': 'vx0', 'netns': 'host-a'}, {'device': 'vx1', 'netns': 'host-a'}])['gathered']
    assert gathered == [
        {'device': 'vx0', 'netns': 'host-a', 'peers': ['198.18.0.2'],
         'entries': [{'mac': MAC_B, 'vtep': '198.18.0.2', 'ip': '203.0.113.2'}]},
        {'device': 'vx1', 'netns': 'host-a', 'peers': [], 'entries': []}]
    assert run_module('vxlan_peer', state='overridden', config=gathered)['changed'] is False
    # replaced: exactly the given ones for the given device only.
    result = run_module('vxlan_peer', state='replaced', config=[{'device': 'vx0', 'netns': 'host-a',
                                                                 'peers': ['198.18.0.3']}])
    assert result['commands'] == ['remove peer 198.18.0.2 from vx0', 'add peer 198.18.0.3 to vx0',
                                  'remove fdb entry %s dst 198.18.0.2 from vx0' % MAC_B,
                                  'remove neighbour 203.0.113.2 from vx0']
    assert flood() == ['198.18.0.3'] and static() == [] and permanent_neighbours() == []


def test_learned_entry_is_replaced_by_a_static_one(hosts):
    run_module('vxlan', config=[tunnel('a', 1, learning=True), tunnel('b', 2, learning=True)])
    run_module('vxlan_peer', config=[{'device': 'vx0', 'netns': 'host-a', 'peers': ['198.18.0.2']},
                                     {'device': 'vx0', 'netns': 'host-b', 'peers': ['198.18.0.1']}])
    mac_b = link('vx0', netns='host-b')['address']
    assert ping('host-a', '203.0.113.2')

    def learned():
        return [e for e in fdb('vx0', 'host-a') if e['mac'] == mac_b and e.get('state') != 'permanent']
    assert wait_for(lambda: learned() != [], timeout=5)
    assert learned()[0]['dst'] == '198.18.0.2'
    # The learned entry is not a managed entry...
    assert run_module('vxlan_peer', state='gathered', config=[{'device': 'vx0', 'netns': 'host-a'}])['gathered'][0][
        'entries'] == []
    # ...and a static one for the same MAC replaces it instead of failing.
    result = run_module('vxlan_peer', config=[{'device': 'vx0', 'netns': 'host-a',
                                               'entries': [{'mac': mac_b, 'vtep': '198.18.0.2'}]}])
    assert result['commands'] == ['add fdb entry %s dst 198.18.0.2 to vx0 (replacing a learned one to 198.18.0.2)'
                                  % mac_b]
    assert static() == [(mac_b, '198.18.0.2')] and learned() == []
    assert run_module('vxlan_peer', config=[{'device': 'vx0', 'netns': 'host-a',
                                             'entries': [{'mac': mac_b, 'vtep': '198.18.0.2'}]}])['changed'] is False
    assert ping('host-a', '203.0.113.2')


def test_foreign_entries_and_devices_untouched(hosts):
    sh('ip', '-n', 'host-a', 'link', 'add', 'vx-foreign', 'type', 'vxlan', 'id', '300', 'dstport', '4789',
       'dev', 'und-a')
    sh('bridge', '-n', 'host-a', 'fdb', 'append', ZERO, 'dev', 'vx-foreign', 'dst', '198.18.0.7')
    sh('bridge', '-n', 'host-a', 'fdb', 'add', MAC_B, 'dev', 'vx-foreign', 'dst', '198.18.0.7')
    foreign = fdb('vx-foreign', 'host-a')
    run_module('vxlan_peer', config=[{'device': 'vx0', 'netns': 'host-a', 'peers': ['198.18.0.2'],
                                      'entries': [{'mac': MAC_B, 'vtep': '198.18.0.2'}]}])
    run_module('vxlan_peer', state='overridden', config=[{'device': 'vx0', 'netns': 'host-a', 'peers': ['198.18.0.3']}])
    assert run_module('vxlan_peer', state='deleted', config=[{'device': 'vx0', 'netns': 'host-a'}])['changed'] is True
    assert fdb('vx0', 'host-a') == []
    assert fdb('vx-foreign', 'host-a') == foreign
    result = run_module('vxlan_peer', fail=True, config=[{'device': 'vx-foreign', 'netns': 'host-a',
                                                          'peers': ['198.18.0.8']}])
    assert 'not created by hostnet.provision' in result['msg'] and result['field'] == 'device'
    assert fdb('vx-foreign', 'host-a') == foreign


def test_deleted_removes_only_the_listed_ones(hosts):
    run_module('vxlan_peer', config=[{'device': 'vx0', 'netns': 'host-a', 'peers': ['198.18.0.2', '198.18.0.3'],
                                      'entries': [{'mac': MAC_B, 'vtep': '198.18.0.2', 'ip': '203.0.113.2'},
                                                  {'mac': '02:00:cb:00:71:03', 'vtep': '198.18.0.3'}]}])
    result = run_module('vxlan_peer', state='deleted', config=[
        {'device': 'vx0', 'netns': 'host-a', 'peers': ['198.18.0.3'],
         'entries': [{'mac': MAC_B, 'vtep': '198.18.0.2'}]}])
    assert result['commands'] == ['remove peer 198.18.0.3 from vx0',
                                  'remove fdb entry %s dst 198.18.0.2 from vx0' % MAC_B,
                                  'remove neighbour 203.0.113.2 from vx0']
    assert flood() == ['198.18.0.2'] and static() == [('02:00:cb:00:71:03', '198.18.0.3')]
    assert permanent_neighbours() == []
    # Deleting what is not there changes nothing.
    assert run_module('vxlan_peer', state='deleted', config=[
        {'device': 'vx0', 'netns': 'host-a', 'peers': ['198.18.0.3']}])['changed'] is False


@pytest.mark.parametrize('item, field, fragment', [
    ({'peers': ['198.18.0.300']}, 'peers', 'not a valid IPv4 or IPv6 address'),
    ({'peers': ['239.1.1.1']}, 'peers', 'not a unicast address'),
    ({'peers': ['198.18.0.2', '198.18.0.2']}, 'peers', 'twice'),
    ({'peers': ['2001:db8:ff::2']}, 'peers', 'tunnels over IPv4'),
    ({'entries': [{'mac': '02:00:cb:00:71'}]}, 'entries', 'needs a mac and a vtep'),
    ({'entries': [{'mac': '02:00:cb:00:71', 'vtep': '198.18.0.2'}]}, 'entries', 'not a MAC'),
    ({'entries': [{'mac': '01:00:5e:00:00:01', 'vtep': '198.18.0.2'}]}, 'entries', 'multicast MAC'),
    ({'entries': [{'mac': MAC_B, 'vtep': '198.18.0.2'}, {'mac': MAC_B, 'vtep': '198.18.0.3'}]}, 'entries',
     'two VTEPs'),
    ({'device': 'vx-sixteen-bytes'}, 'device', 'at most 15 bytes'),
    ({'device': 'vx9'}, 'device', 'does not exist'),
    ({'netns': 'no-such-ns'}, 'netns', 'does not exist'),
])
def test_bad_input_refused_before_any_change(hosts, item, field, fragment):
    good = {'device': 'vx0', 'netns': 'host-b', 'peers': ['198.18.0.1']}
    bad = dict({'device': 'vx0', 'netns': 'host-a', 'peers': ['198.18.0.2']}, **item)
    result = run_module('vxlan_peer', fail=True, config=[good, bad])
    assert fragment in result['msg'], result['msg']
    assert result['field'] == field and result['changed'] is False
    assert fdb('vx0', 'host-b') == [] and fdb('vx0', 'host-a') == []


def test_check_mode_tolerates_a_device_made_earlier_in_the_play(hosts):
    result = run_module('vxlan_peer', check=True, config=[{'device': 'vx7', 'netns': 'host-a',
                                                           'peers': ['198.18.0.2']}])
    assert result['commands'] == ['add peer 198.18.0.2 to vx7']
    assert 'assuming it will exist' in str(result.get('warnings'))
