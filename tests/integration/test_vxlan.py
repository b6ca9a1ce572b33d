# -*- coding: utf-8 -*-
"""hostnet.provision.vxlan against the real kernel (inside the sandbox).

Two namespaces play two hosts joined by a veth underlay (198.18.0.0/15);
the overlay (203.0.113.0/24) runs over VXLAN between them.
"""

from __future__ import annotations

import pytest

from helpers import addresses, link, ping, quartet, run_module, sh

UNDERLAY4 = {'name': 'und-a', 'netns': 'host-a', 'addresses': ['198.18.0.1/24'],
             'peer': {'name': 'und-b', 'netns': 'host-b', 'addresses': ['198.18.0.2/24']}}
UNDERLAY6 = {'name': 'und-a', 'netns': 'host-a', 'addresses': ['2001:db8:ff::1/64'],
             'peer': {'name': 'und-b', 'netns': 'host-b', 'addresses': ['2001:db8:ff::2/64']}}


def tunnel(host, local, last, **extra):
    return dict({'name': 'vx0', 'netns': 'host-%s' % host, 'vni': 100, 'local': local,
                 'dev': 'und-%s' % host, 'addresses': ['203.0.113.%d/24' % last]}, **extra)


A = tunnel('a', '198.18.0.1', 1)
B = tunnel('b', '198.18.0.2', 2)


@pytest.fixture
def hosts():
    """Two "hosts" (namespaces) on an IPv4 underlay."""
    run_module('netns', config=[{'name': 'host-a'}, {'name': 'host-b'}])
    run_module('veth', config=[UNDERLAY4])


def vxlan_data(name, netns):
    return link(name, netns=netns, details=True)['linkinfo']['info_data']


def big_ping(netns, address, size):
    """One ping of SIZE payload bytes that may not be fragmented (bounded: 2 s)."""
    return sh('ping', '-4', '-n', '-c', '1', '-W', '2', '-s', str(size), '-M', 'do', address, netns=netns,
              check=False).returncode == 0


def peer_up(a_peers, b_peers):
    run_module('vxlan_peer', config=[{'name': 'vx0', 'netns': 'host-a', 'peers': a_peers},
                                     {'name': 'vx0', 'netns': 'host-b', 'peers': b_peers}])


def test_two_hosts_reach_each_other_over_vxlan(hosts):
    check, applied, _again, _check2 = quartet('vxlan', config=[A, B])
    assert applied['commands'] == [
        'create vxlan vx0@host-a (vni 100, port 4789, local 198.18.0.1, dev und-a, mtu 1450)',
        'add address 203.0.113.1/24 to vx0',
        'create vxlan vx0@host-b (vni 100, port 4789, local 198.18.0.2, dev und-b, mtu 1450)',
        'add address 203.0.113.2/24 to vx0']
    # Check mode predicted the whole after-state, derived MTU included,
    # except the MAC the kernel chooses.
    for predicted, real in zip(check['after'], applied['after']):
        assert predicted['mac'] is None and real['mac'] == link('vx0', netns=real['netns'])['address']
        assert predicted == dict(real, mac=None)
    data = vxlan_data('vx0', 'host-a')
    assert data['id'] == 100 and data['port'] == 4789 and data['local'] == '198.18.0.1'
    assert data['link'] == 'und-a' and data['learning'] is False
    entry = link('vx0', netns='host-a')
    assert entry['mtu'] == 1450 and entry['ifalias'] == 'hostnet.provision' and 'UP' in entry['flags']
    assert addresses('vx0', netns='host-b') == ['203.0.113.2/24']
    peer_up(['198.18.0.2'], ['198.18.0.1'])
    # Real packets across the overlay, in both directions.
    assert ping('host-a', '203.0.113.2')
    assert ping('host-b', '203.0.113.1')
    # The derived MTU carries the largest packet that fits: 1400 + 28 fits
    # 1450; 1423 + 28 = 1451 does not (refused, not silently dropped).
    assert big_ping('host-a', '203.0.113.2', 1400)
    assert big_ping('host-a', '203.0.113.2', 1422)
    assert not big_ping('host-a', '203.0.113.2', 1423)


def test_ipv6_underlay_takes_70_bytes():
    run_module('netns', config=[{'name': 'host-a'}, {'name': 'host-b'}])
    run_module('veth', config=[UNDERLAY6])
    config = [tunnel('a', '2001:db8:ff::1', 1), tunnel('b', '2001:db8:ff::2', 2)]
    applied = run_module('vxlan', config=config)
    assert 'create vxlan vx0@host-a (vni 100, port 4789, local 2001:db8:ff::1, dev und-a, mtu 1430)' \
        in applied['commands']
    assert link('vx0', netns='host-a')['mtu'] == 1430
    assert vxlan_data('vx0', 'host-b')['local6'] == '2001:db8:ff::2'
    run_module('vxlan_peer', config=[{'name': 'vx0', 'netns': 'host-a', 'peers': ['2001:db8:ff::2']},
                                     {'name': 'vx0', 'netns': 'host-b', 'peers': ['2001:db8:ff::1']}])
    assert ping('host-a', '203.0.113.2')
    assert big_ping('host-a', '203.0.113.2', 1402)
    assert not big_ping('host-a', '203.0.113.2', 1403)
    assert run_module('vxlan', config=config)['changed'] is False


@pytest.mark.parametrize('change, text, field, value', [
    ({'vni': 200}, 'vni 100 becomes 200', 'id', 200),
    ({'port': 8472}, 'port 4789 becomes 8472', 'port', 8472),
    ({'local': '198.18.0.11'}, 'local 198.18.0.1 becomes 198.18.0.11', 'local', '198.18.0.11'),
    ({'group': '239.1.1.1'}, 'group none becomes 239.1.1.1', 'group', '239.1.1.1'),
])
def test_identity_change_is_a_recreate_shown_in_commands(hosts, change, text, field, value):
    run_module('vxlan', config=[A])
    if 'local' in change:  # a local address must be one the host has
        run_module('veth', config=[dict(UNDERLAY4, addresses=['198.18.0.1/24', '198.18.0.11/24'])])
    index = link('vx0', netns='host-a')['ifindex']
    changed = dict(A, **change)
    predicted = run_module('vxlan', check=True, config=[changed])
    assert predicted['commands'][0] == 'delete vxlan vx0@host-a to recreate it (%s)' % text
    assert predicted['commands'][1].startswith('create vxlan vx0@host-a (')
    assert predicted['diff']['before']['vx0@host-a'] != predicted['diff']['after']['vx0@host-a']
    assert vxlan_data('vx0', 'host-a')['id'] == 100      # check mode changed nothing
    applied = run_module('vxlan', config=[changed])
    assert applied['commands'] == predicted['commands']
    assert vxlan_data('vx0', 'host-a')[field] == value  # read back through ip -d
    assert link('vx0', netns='host-a')['ifindex'] != index
    assert addresses('vx0', netns='host-a') == ['203.0.113.1/24']
    assert run_module('vxlan', config=[changed])['changed'] is False


def test_in_place_changes_keep_the_device(hosts):
    run_module('vxlan', config=[A])
    index = link('vx0', netns='host-a')['ifindex']
    result = run_module('vxlan', config=[{'name': 'vx0', 'netns': 'host-a', 'mtu': 1400, 'learning': True}])
    assert result['commands'] == ['set mtu of vx0 to 1400 (was 1450)', 'set learning of vx0 to on (was off)']
    assert link('vx0', netns='host-a')['ifindex'] == index
    assert link('vx0', netns='host-a')['mtu'] == 1400 and vxlan_data('vx0', 'host-a')['learning'] is True
    # Not given: kept (no recreate, no MTU change back to the derived one).
    assert run_module('vxlan', config=[A])['changed'] is False


def test_mac_at_create_corrected_in_place_and_kept_by_a_recreate(hosts):
    config = [dict(A, mac='02:00:5e:00:01:01'), dict(B, mac='02:00:5e:00:01:02')]
    check, applied, _again, _check2 = quartet('vxlan', config=config)
    assert applied['commands'][0] == ('create vxlan vx0@host-a (vni 100, port 4789, local 198.18.0.1, dev und-a, '
                                      'mtu 1450, mac 02:00:5e:00:01:01)')
    assert check['after'] == applied['after']
    # Read back by ip -j -d: the given MACs, on VXLAN devices.
    for netns, mac in (('host-a', '02:00:5e:00:01:01'), ('host-b', '02:00:5e:00:01:02')):
        entry = link('vx0', netns=netns, details=True)
        assert entry['address'] == mac and entry['linkinfo']['info_kind'] == 'vxlan'
    assert [a['mac'] for a in applied['after']] == ['02:00:5e:00:01:01', '02:00:5e:00:01:02']
    # Drift: another MAC set behind the module's back is put back in place.
    index = link('vx0', netns='host-a')['ifindex']
    sh('ip', '-n', 'host-a', 'link', 'set', 'vx0', 'address', '02:00:5e:00:01:99')
    drift = [{'name': 'vx0', 'netns': 'host-a', 'mac': '02:00:5e:00:01:01'}]
    predicted = run_module('vxlan', check=True, config=drift)
    assert predicted['commands'] == ['set mac of vx0 to 02:00:5e:00:01:01 (was 02:00:5e:00:01:99)']
    assert link('vx0', netns='host-a')['address'] == '02:00:5e:00:01:99'  # check mode changed nothing
    fixed = run_module('vxlan', config=drift)
    assert fixed['commands'] == predicted['commands']
    assert link('vx0', netns='host-a')['address'] == '02:00:5e:00:01:01'
    assert link('vx0', netns='host-a')['ifindex'] == index
    # The tunnel works with the static MACs (the peers' FDB entries follow).
    peer_up(['198.18.0.2'], ['198.18.0.1'])
    assert ping('host-a', '203.0.113.2')
    # A recreate (VNI change) without a MAC keeps the device's MAC.
    run_module('vxlan', config=[dict(A, vni=200)])
    assert vxlan_data('vx0', 'host-a')['id'] == 200
    assert link('vx0', netns='host-a')['address'] == '02:00:5e:00:01:01'
    assert run_module('vxlan', config=[dict(A, vni=200, mac='02:00:5e:00:01:01')])['changed'] is False


def test_bridge_membership_and_replaced_detaches(hosts):
    run_module('bridge', config=[{'name': 'hn-ovl', 'netns': 'host-a'}])
    config = [dict(A, bridge='hn-ovl', addresses=[])]
    _check, applied, _again, _check2 = quartet('vxlan', config=config)
    assert link('vx0', netns='host-a')['master'] == 'hn-ovl'
    result = run_module('vxlan', state='replaced', config=[dict(A, addresses=[])])
    assert result['commands'] == ['detach vx0 from bridge hn-ovl']
    assert 'master' not in link('vx0', netns='host-a')


def test_gathered_round_trip_overridden_and_deleted(hosts):
    sh('ip', '-n', 'host-a', 'link', 'add', 'vx-foreign', 'type', 'vxlan', 'id', '300', 'dstport', '4789',
       'dev', 'und-a')
    second = tunnel('a', '198.18.0.1', 1, name='vx1', vni=101, addresses=[])
    run_module('vxlan', config=[A, second])
    gathered = run_module('vxlan', state='gathered', config=[{'name': 'vx0', 'netns': 'host-a'},
                                                             {'name': 'vx1', 'netns': 'host-a'}])['gathered']
    assert [g['name'] for g in gathered] == ['vx0', 'vx1']
    assert gathered[0] == dict(A, port=4789, group=None, learning=False, mtu=1450, bridge=None,
                               mac=link('vx0', netns='host-a')['address'])
    assert run_module('vxlan', state='overridden', config=gathered)['changed'] is False
    result = run_module('vxlan', state='overridden', config=[gathered[0]])
    assert result['commands'] == ['delete vxlan vx1@host-a']
    assert run_module('vxlan', state='deleted', config=[{'name': 'vx0', 'netns': 'host-a'}])['changed'] is True
    assert link('vx0', netns='host-a') is None and link('vx1', netns='host-a') is None
    assert link('vx-foreign', netns='host-a') is not None


def test_foreign_device_with_the_right_name_is_refused(hosts):
    sh('ip', '-n', 'host-a', 'link', 'add', 'vx0', 'type', 'vxlan', 'id', '100', 'dstport', '4789',
       'local', '198.18.0.1', 'dev', 'und-a')
    for state in ('merged', 'replaced', 'deleted'):
        result = run_module('vxlan', fail=True, state=state, config=[A])
        assert 'not created by hostnet.provision' in result['msg']
    assert vxlan_data('vx0', 'host-a')['id'] == 100


def test_vni_already_used_on_the_port_names_the_other_device(hosts):
    sh('ip', '-n', 'host-a', 'link', 'add', 'vx-foreign', 'type', 'vxlan', 'id', '100', 'dstport', '4789',
       'local', '198.18.0.1', 'dev', 'und-a')
    result = run_module('vxlan', fail=True, config=[A])
    assert result['changed'] is False and 'vx-foreign' in result['msg'] and 'vni 100' in result['msg']
    assert link('vx0', netns='host-a') is None


@pytest.mark.parametrize('change, field, fragments', [
    ({'vni': 0}, 'vni', ['vni 0', '1 to 16777215']),
    ({'vni': 16777216}, 'vni', ['vni 16777216', '1 to 16777215']),
    ({'port': 0}, 'port', ['port 0', 'UDP port']),
    ({'port': 65536}, 'port', ['port 65536', 'UDP port']),
    ({'mtu': 1500}, 'mtu', ['mtu 1500 cannot fit', 'MTU 1500', 'largest MTU is 1450']),
    ({'mtu': 1451}, 'mtu', ['mtu 1451', 'largest MTU is 1450']),
    ({'dev': 'no-such-dev'}, 'dev', ['does not exist']),
    ({'netns': 'no-such-ns'}, 'netns', ['does not exist']),
    ({'name': 'vx-sixteen-bytes'}, 'name', ['16 bytes long', 'at most 15 bytes']),
    ({'group': '198.18.0.9'}, 'group', ['not a multicast address']),
    ({'local': '239.1.1.1'}, 'local', ['not a unicast address']),
    ({'local': '198.18.0.300'}, 'local', ['not a valid IPv4 or IPv6 address']),
    ({'group': 'ff05::100'}, 'group', ['different IP versions']),
    ({'addresses': ['203.0.113.1']}, 'addresses', ['prefix length']),
    ({'mac': '01:00:5e:00:00:01'}, 'mac', ['multicast MAC']),
    ({'mac': '02:00:5e:00:00'}, 'mac', ['not a MAC address']),
    ({'mac': '00:00:00:00:00:00'}, 'mac', ['all-zero']),
    ({'bridge': 'no-such-br'}, 'bridge', ['does not exist']),
    ({'vni': None}, 'vni', ['vni is required']),
])
def test_bad_input_refused_before_any_change(hosts, change, field, fragments):
    good = tunnel('a', '198.18.0.1', 1, name='vx-good', vni=50)
    bad = dict(B, **change)
    if bad['vni'] is None:
        del bad['vni']
    result = run_module('vxlan', fail=True, config=[good, bad])
    for fragment in fragments:
        assert fragment in result['msg'], result['msg']
    assert result['field'] == field
    assert result['changed'] is False
    assert link('vx-good', netns='host-a') is None and link('vx0', netns='host-b') is None


def test_same_vni_twice_in_one_call_refused(hosts):
    result = run_module('vxlan', fail=True, config=[A, dict(A, name='vx1')])
    assert result['field'] == 'vni' and 'also used by vxlan vx0' in result['msg']
    assert link('vx0', netns='host-a') is None


def test_check_mode_tolerates_what_earlier_tasks_make():
    result = run_module('vxlan', check=True, config=[A])
    assert result['changed'] is True
    assert 'assuming it will exist' in str(result.get('warnings'))
    assert result['commands'][0].startswith('create vxlan vx0@host-a (vni 100')


def test_failed_recreate_puts_the_old_device_back(hosts):
    run_module('vxlan', config=[A])
    sh('ip', '-n', 'host-a', 'link', 'add', 'vx-foreign', 'type', 'vxlan', 'id', '200', 'dstport', '4789',
       'local', '198.18.0.1', 'dev', 'und-a')
    result = run_module('vxlan', fail=True, config=[dict(A, vni=200)])
    assert 'vni 200 on port 4789 is already used by vxlan vx-foreign' in result['msg']
    assert 'rolled back' in result['msg'] and result['field'] == 'vni'
    assert vxlan_data('vx0', 'host-a')['id'] == 100
    assert addresses('vx0', netns='host-a') == ['203.0.113.1/24']
    assert run_module('vxlan', config=[A])['changed'] is False
