# -*- coding: utf-8 -*-
"""hostnet.provision.bridge network policy (masquerade, icc, isolated,
host_access) against the real kernel, proven with packets.

Topology as in test_portmap: the sandbox is the host, "outside" hangs off
it on a veth, ep-a and ep-b sit on hn-br0 (198.51.100.0/24), ep-c on hn-br1
(203.0.113.0/24). Tests where layer 2 matters run twice: with
br_netfilter's call-ip(6)tables on (as on Docker hosts; the test kernel has
it built in) and off. The module never touches those sysctls; the tests set
them in their own sandbox only.
"""

from __future__ import annotations

import pytest

from helpers import link, quartet, run_module, sh
from traffic import (
    BR0,
    BR1,
    HOST_V4,
    HOST_V6,
    OUTSIDE_V4,
    OUTSIDE_V6,
    Servers,
    build,
    peer_seen,
    reaches,
    ruleset,
    settle,
    sysctl,
)

BRNF = ('net', 'bridge', 'bridge-nf-call-iptables'), ('net', 'bridge', 'bridge-nf-call-ip6tables')


def ping(netns, address, deadline=1):
    flag = '-6' if ':' in address else '-4'
    return sh('ping', flag, '-n', '-q', '-c', '1', '-W', str(deadline), address, netns=netns,
              check=False).returncode == 0


@pytest.fixture
def servers():
    srv = Servers()
    yield srv
    srv.stop()


@pytest.fixture(params=['br_netfilter-on', 'br_netfilter-off'])
def brnf(request):
    """Set br_netfilter's switches in the sandbox namespace for one test."""
    value = '1' if request.param.endswith('on') else '0'
    old = [sysctl(None, *parts) for parts in BRNF]
    for parts in BRNF:
        sh('sh', '-c', 'echo %s > /proc/sys/%s' % (value, '/'.join(parts)))
    yield value
    for parts, previous in zip(BRNF, old):
        sh('sh', '-c', 'echo %s > /proc/sys/%s' % (previous, '/'.join(parts)))


@pytest.fixture
def net(servers):
    build()
    servers.tcp('ep-a', 80, 'hello-a')
    servers.tcp('ep-a', 80, 'hello-a6', family=6)
    servers.tcp('ep-c', 80, 'hello-c')
    servers.tcp('outside', 9000, 'outside')
    servers.tcp('outside', 9000, 'outside6', family=6)
    return servers


def policy(name, **fields):
    base = dict(BR0 if name == 'hn-br0' else BR1)
    base.update(fields)
    return base


def test_masquerade_applies_leaving_the_host_not_within_the_subnet(net, brnf):
    # Leaving by the uplink: the outside sees the host's address.
    assert peer_seen('ep-a', OUTSIDE_V4, 9000) == HOST_V4
    assert peer_seen('ep-a', OUTSIDE_V6, 9000) == HOST_V6
    # Within the subnet: the endpoint's own address (with br_netfilter on the
    # bridged packet crosses the postrouting hook, so this is a real check).
    assert peer_seen('ep-b', '198.51.100.10', 80) == '198.51.100.11'
    assert peer_seen('ep-b', '2001:db8:100::10', 80) == '2001:db8:100::11'
    # A bridge without masquerade is routed: its address goes out unchanged.
    run_module('bridge', config=[policy('hn-br1', masquerade=False)])
    assert peer_seen('ep-c', OUTSIDE_V4, 9000) == '203.0.113.10'


def test_icc_false_drops_ip_between_ports_but_not_arp_nd_or_the_gateway(net, brnf):
    assert ping('ep-a', '198.51.100.11') and ping('ep-a', '2001:db8:100::11')
    result = run_module('bridge', config=[policy('hn-br0', icc=False, reach=['hn-br1'])])
    assert result['diff']['before']['hn-br0']['icc'] is True and result['diff']['after']['hn-br0']['icc'] is False
    sh('ip', 'neigh', 'flush', 'all', netns='ep-a')
    assert not ping('ep-a', '198.51.100.11') and not ping('ep-a', '2001:db8:100::11')
    assert not ping('ep-b', '198.51.100.10')
    assert not reaches('ep-b', '198.51.100.10', 80, 'hello-a', timeout=1)
    # ARP and neighbour discovery still resolved the peer.
    neigh = sh('ip', '-j', 'neigh', 'show', netns='ep-a').stdout
    assert '"198.51.100.11"' in neigh and '"2001:db8:100::11"' in neigh and 'lladdr' in neigh
    # The gateway, other networks it may reach and the outside are still reachable.
    assert ping('ep-a', '198.51.100.1') and ping('ep-a', '2001:db8:100::1')
    assert reaches('ep-a', '203.0.113.10', 80, 'hello-c')
    assert reaches('ep-a', OUTSIDE_V4, 9000, 'outside')
    # ... and ep-a's published port from outside and from another bridge.
    run_module('portmap', config=[{'host_port': 8080, 'destination': '198.51.100.10', 'port': 80}])
    assert reaches('outside', HOST_V4, 8080, 'hello-a')
    assert reaches('ep-c', HOST_V4, 8080, 'hello-a')
    # Back on.
    run_module('bridge', config=[policy('hn-br0', icc=True)])
    assert ping('ep-a', '198.51.100.11') and reaches('ep-b', '198.51.100.10', 80, 'hello-a')


def test_icc_false_covers_ports_added_later_at_the_next_run(net):
    run_module('bridge', config=[policy('hn-br0', icc=False)])
    run_module('netns', config=[{'name': 'ep-d'}])
    added = run_module('veth', config=[{'name': 'v-ep-d', 'bridge': 'hn-br0',
                                        'peer': {'name': 'eth0', 'netns': 'ep-d', 'addresses': ['198.51.100.12/24'],
                                                 'gateway': ['198.51.100.1']}}])
    assert settle('ep-d', '198.51.100.1')
    again = run_module('bridge', config=[policy('hn-br0', icc=False)])
    from ansible_collections.hostnet.provision.plugins.module_utils import _nft
    # meta ibrname: the bridge name is enough; without it the veth module
    # listed its port itself.
    assert again['changed'] is False
    if not _nft.bridge_meta_supported():
        assert added['commands'][-1] == 'nftables: icc: false of bridge hn-br0: add no_icc_ports v-ep-d'
        assert 'nft_meta_bridge' in str(again['warnings'])
    assert not ping('ep-d', '198.51.100.10')


def test_isolated_bridges_cannot_reach_each_other_but_published_ports_work(net, brnf):
    net.tcp('ep-a', 81, 'unpublished-a')
    run_module('bridge', config=[policy('hn-br0', reach=['hn-br1']), policy('hn-br1', reach=['hn-br0'])])
    assert ping('ep-a', '203.0.113.10') and ping('ep-c', '198.51.100.10')
    # isolated: true on both overrides their reach.
    run_module('bridge', config=[policy('hn-br0', isolated=True), policy('hn-br1', isolated=True)])
    for src, dst in (('ep-a', '203.0.113.10'), ('ep-c', '198.51.100.10'),
                     ('ep-a', '2001:db8:200::10'), ('ep-c', '2001:db8:100::10')):
        assert not ping(src, dst), (src, dst)
    assert not reaches('ep-a', '203.0.113.10', 80, 'hello-c', timeout=1)
    assert not reaches('ep-c', '198.51.100.10', 81, 'unpublished-a', timeout=1)
    # Through the gateway addresses (the host) to each other's bridge: same thing.
    assert not reaches('ep-c', '198.51.100.10', 80, 'hello-a', timeout=1)
    # Published ports still work both ways, and the outside stays reachable.
    run_module('portmap', config=[{'host_port': 8080, 'destination': '198.51.100.10', 'port': 80},
                                  {'host_port': 8081, 'destination': '203.0.113.10', 'port': 80}])
    assert reaches('ep-c', HOST_V4, 8080, 'hello-a') and reaches('ep-c', '203.0.113.1', 8080, 'hello-a')
    assert reaches('ep-a', HOST_V4, 8081, 'hello-c') and reaches('ep-a', '198.51.100.1', 8081, 'hello-c')
    assert reaches('ep-a', OUTSIDE_V4, 9000, 'outside') and reaches('ep-c', OUTSIDE_V4, 9000, 'outside')
    # Endpoints of one isolated bridge still talk to each other.
    assert ping('ep-b', '198.51.100.10')
    # One bridge no longer isolated: they meet again (their reach allows it).
    run_module('bridge', config=[policy('hn-br1', isolated=False)])
    assert ping('ep-a', '203.0.113.10') and ping('ep-c', '198.51.100.10')


def test_direct_access_from_outside_is_dropped_only_published_ports_pass(net):
    net.tcp('ep-a', 81, 'unpublished-a')
    run_module('portmap', config=[{'host_port': 8080, 'destination': '198.51.100.10', 'port': 80}])
    assert reaches('outside', HOST_V4, 8080, 'hello-a')
    # The outside has a route to the endpoints (its default route is the host).
    assert not reaches('outside', '198.51.100.10', 81, 'unpublished-a', timeout=1)
    assert not reaches('outside', '198.51.100.10', 80, 'hello-a', timeout=1)
    assert not reaches('outside', '2001:db8:100::10', 80, 'hello-a6', timeout=1)
    assert not ping('outside', '198.51.100.10')
    # Control: a routed bridge (no masquerade) is reachable directly.
    run_module('bridge', config=[policy('hn-br1', masquerade=False)])
    assert reaches('outside', '203.0.113.10', 80, 'hello-c')


def test_host_access_false_keeps_the_bridge_away_from_the_host(net):
    net.tcp(None, 7000, 'host-svc')
    net.tcp(None, 7000, 'host-svc6', family=6)
    run_module('bridge', config=[policy('hn-br0', host_access=False)])
    for address in ('198.51.100.1', HOST_V4, '127.0.0.1'):
        assert not reaches('ep-a', address, 7000, 'host-svc', timeout=1), address
    assert not reaches('ep-a', HOST_V6, 7000, 'host-svc6', timeout=1)
    assert not ping('ep-a', '198.51.100.1')
    # Another bridge is not affected; the host still reaches the endpoints.
    assert reaches('ep-c', '203.0.113.1', 7000, 'host-svc')
    assert reaches(None, '198.51.100.10', 80, 'hello-a')
    # Forwarded traffic is not host access: with neighbours forgotten, ARP and
    # IPv6 neighbour discovery with the gateway still work.
    sh('ip', 'neigh', 'flush', 'all', netns='ep-a')
    assert reaches('ep-a', OUTSIDE_V4, 9000, 'outside')
    assert reaches('ep-a', OUTSIDE_V6, 9000, 'outside6')
    # Published ports of the host are reachable (they are forwarded).
    run_module('portmap', config=[{'host_port': 8081, 'destination': '203.0.113.10', 'port': 80}])
    assert reaches('ep-a', '198.51.100.1', 8081, 'hello-c')


def test_policy_quartet_diff_and_check_mode_change_nothing():
    config = [policy('hn-br0', icc=False, isolated=True, host_access=False),
              policy('hn-br1', masquerade=False, isolated=True)]
    assert 'hostnet' not in ruleset()
    check, applied, _again, _check2 = quartet('bridge', enable_forwarding=True, config=config)
    # Check mode predicted the policy exactly (link defaults are the kernel's choice).
    fields = ('name', 'addresses', 'masquerade', 'icc', 'isolated', 'host_access')
    assert [[a[f] for f in fields] for a in check['after']] == [[a[f] for f in fields] for a in applied['after']]
    after = applied['diff']['after']['hn-br0']
    assert (after['masquerade'], after['icc'], after['isolated'], after['host_access']) == (True, False, True, False)
    assert applied['diff']['after']['hn-br1']['masquerade'] is False
    # A change is predicted exactly, and check mode leaves the ruleset alone.
    state = ruleset()
    change = [policy('hn-br0', isolated=False)]
    predicted = run_module('bridge', check=True, config=change)
    assert ruleset() == state
    assert predicted['commands'] == ['nftables: bridge hn-br0: delete isolated hn-br0, '
                                     'delete isolated_self hn-br0 . hn-br0']
    assert predicted['diff']['before']['hn-br0']['isolated'] is True
    assert predicted['diff']['after']['hn-br0']['isolated'] is False
    done = run_module('bridge', config=change)
    assert done['commands'] == predicted['commands']
    assert done['after'] == [dict(predicted['after'][0], mac=done['after'][0]['mac'])]


def test_deleting_a_bridge_removes_its_nft_state_and_nothing_else():
    run_module('bridge', enable_forwarding=True,
               config=[policy('hn-br0', icc=False, isolated=True, host_access=False), policy('hn-br1', isolated=True)])
    text = ruleset()
    assert 'hn-br0' in text and 'hn-br1' in text
    result = run_module('bridge', state='overridden', config=[policy('hn-br1', isolated=True)])
    assert result['commands'][-1] == 'delete bridge hn-br0'
    assert result['commands'][0].startswith('nftables: bridge hn-br0: delete ')
    text = ruleset()
    assert 'hn-br0' not in text and '198.51.100' not in text
    assert '"hn-br1"' in text and '203.0.113.0' in text
    gathered = run_module('bridge', state='gathered')['gathered']
    assert [(b['name'], b['isolated'], b['masquerade']) for b in gathered] == [('hn-br1', True, True)]
    run_module('bridge', state='deleted')
    assert 'hostnet' not in ruleset()


def test_masquerade_needs_forwarding_and_does_not_change_it_silently():
    sh('sysctl', '-qw', 'net.ipv4.ip_forward=0', 'net.ipv6.conf.all.forwarding=0')
    result = run_module('bridge', fail=True, config=[BR0])
    assert 'net.ipv4.ip_forward=0' in result['msg'] and 'enable_forwarding: true' in result['msg']
    assert link('hn-br0') is None and 'hostnet' not in ruleset()
    done = run_module('bridge', enable_forwarding=True, config=[BR0])
    assert 'enable IPv4 forwarding in the current namespace (net.ipv4.ip_forward=1)' in done['commands']
    assert 'IPv6 forwarding turned on' in str(done['warnings'])
    assert sysctl(None, 'net', 'ipv4', 'ip_forward') == '1'
    assert sysctl(None, 'net', 'ipv6', 'conf', 'all', 'forwarding') == '1'


@pytest.mark.parametrize('item, field, fragment', [
    ({'name': 'hn-br2', 'addresses': ['198.51.100.129/25'], 'masquerade': True}, 'addresses',
     'overlaps 198.51.100.0/24, masqueraded for bridge hn-br0'),
    ({'name': 'hn-br2', 'masquerade': True}, 'masquerade', 'give it at least one address'),
])
def test_policy_conflicts_refused_before_any_change(item, field, fragment):
    run_module('bridge', enable_forwarding=True, config=[BR0])
    state = ruleset()
    result = run_module('bridge', fail=True, enable_forwarding=True, config=[item])
    assert fragment in result['msg'], result['msg']
    assert result['field'] == field
    assert ruleset() == state and link('hn-br2') is None


def test_policy_in_a_router_namespace():
    run_module('netns', config=[{'name': 'router'}])
    config = [dict(BR0, netns='router', isolated=True)]
    quartet('bridge', enable_forwarding=True, config=config)
    assert 'hostnet' not in ruleset()
    inside = sh('nft', '-j', 'list', 'set', 'inet', 'hostnet', 'isolated', netns='router').stdout
    assert '"hn-br0"' in inside
    assert sysctl('router', 'net', 'ipv4', 'ip_forward') == '1'
    assert sysctl('router', 'net', 'ipv4', 'conf', 'hn-br0', 'route_localnet') == '0'
    assert sysctl(None, 'net', 'ipv4', 'conf', 'all', 'route_localnet') == '0'
    run_module('bridge', state='deleted', config=[{'name': 'hn-br0', 'netns': 'router'}])
    assert sh('nft', 'list', 'ruleset', netns='router').stdout == ''


def test_leftovers_of_a_bridge_deleted_behind_our_back_are_cleaned_up():
    run_module('bridge', enable_forwarding=True, config=[policy('hn-br0', isolated=True)])
    sh('ip', 'link', 'del', 'hn-br0')
    assert '198.51.100.0' in ruleset()
    result = run_module('bridge', config=[{'name': 'hn-br0', 'addresses': ['203.0.113.1/24']}])
    assert result['commands'][-1] == 'nftables: bridge hn-br0: add bridge_nets4 hn-br0 . 203.0.113.0/24, ' \
                                     'add bridges hn-br0, add reach hn-br0 . hn-br0'
    text = ruleset()
    assert '198.51.100.0' not in text and '2001:db8:100' not in text and '203.0.113.0' in text
    isolated = sh('nft', '-j', 'list', 'set', 'inet', 'hostnet', 'isolated').stdout
    assert 'hn-br0' not in isolated
    assert run_module('bridge', config=[{'name': 'hn-br0', 'addresses': ['203.0.113.1/24']}])['changed'] is False
