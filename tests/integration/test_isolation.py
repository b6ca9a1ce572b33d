# -*- coding: utf-8 -*-
"""Isolation without holes, proven with real packets (ICMP, TCP, UDP over
IPv4 and IPv6) between namespaces made by the tests.

Topology from traffic.build(): the sandbox is the host, "outside" hangs off
it on a veth uplink, ep-a and ep-b sit on hn-br0 (198.51.100.0/24,
2001:db8:100::/64), ep-c on hn-br1 (203.0.113.0/24, 2001:db8:200::/64).
Every test also proves that nothing foreign changed: an nftables table the
test made stays byte for byte, and sysctls the collection does not own keep
their values.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from helpers import run_module, sh
from traffic import (
    BR0,
    BR1,
    HOST_V4,
    OUTSIDE_V4,
    OUTSIDE_V6,
    Servers,
    build,
    elements,
    foreign,
    reaches,
    ruleset,
    settle,
    sysctl,
    wait_listening,
)

FOREIGN_TABLE = '''
table inet foreign_fw {
    set trusted { type ipv4_addr; elements = { 198.18.0.200 } }
    chain fwd_chain { type filter hook forward priority 10; policy accept; ip saddr @trusted accept; }
    chain in_chain { type filter hook input priority 10; policy accept; }
}
'''
# Sysctls the collection never writes (the uplink and loopback, the
# namespace-wide defaults, br_netfilter's switches).
FOREIGN_SYSCTLS = [
    ('net', 'ipv4', 'conf', 'all', 'route_localnet'),
    ('net', 'ipv4', 'conf', 'default', 'route_localnet'),
    ('net', 'ipv4', 'conf', 'lo', 'route_localnet'),
    ('net', 'ipv4', 'conf', 'hn-up', 'route_localnet'),
    ('net', 'ipv4', 'conf', 'all', 'rp_filter'),
    ('net', 'ipv4', 'conf', 'hn-up', 'forwarding'),
    ('net', 'bridge', 'bridge-nf-call-iptables'),
]


def ping(netns, address, deadline=1):
    flag = '-6' if ':' in address else '-4'
    return sh('ping', flag, '-n', '-q', '-c', '1', '-W', str(deadline), address, netns=netns,
              check=False).returncode == 0


def udp_reaches(netns, address, port, text, timeout=2):
    """A datagram to ``address:port`` is answered with ``text`` (UDP echo server)."""
    target = '[%s]' % address if ':' in address else address
    family = 'UDP6' if ':' in address else 'UDP4'
    proc = subprocess.run((['ip', 'netns', 'exec', netns] if netns else []) +
                          ['timeout', str(timeout + 2), 'socat', '-T%d' % timeout, '-t%d' % timeout, '-',
                           '%s:%s:%d' % (family, target, port)],
                          input='probe\n', capture_output=True, text=True, check=False)
    return text in proc.stdout


class Udp(Servers):
    def udp(self, netns, port, text, family=4):
        """A UDP server answering every datagram with ``text`` (one process, one
        socket: socat's forking UDP server lets a lingering child eat datagrams)."""
        code = ('import socket\n'
                's = socket.socket(socket.AF_INET%s, socket.SOCK_DGRAM)\n'
                '%s'
                's.bind(("%s", %d))\n'
                'while True:\n'
                '    data, peer = s.recvfrom(2048)\n'
                '    s.sendto(b"%s\\n", peer)\n'
                % ('' if family == 4 else '6',
                   '' if family == 4 else 's.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)\n',
                   '0.0.0.0' if family == 4 else '::', port, text))
        self._start(netns, [sys.executable, '-c', code])
        wait_listening(netns, 'udp' if family == 4 else 'udp6', port)

    def all(self, name):
        """TCP and UDP servers over both families, answering with their names."""
        self.tcp(name, 80, 'tcp-%s' % name)
        self.tcp(name, 80, 'tcp6-%s' % name, family=6)
        self.udp(name, 53, 'udp-%s' % name)
        self.udp(name, 53, 'udp6-%s' % name, family=6)


@pytest.fixture
def net():
    servers = Udp()
    build()
    for name in ('ep-a', 'ep-b', 'ep-c'):
        servers.all(name)
    yield servers
    servers.stop()


@pytest.fixture
def untouched():
    """A foreign nftables table and foreign sysctls, checked after the test."""
    subprocess.run(['nft', '-f', '-'], input=FOREIGN_TABLE, text=True, check=True)
    before_rules = foreign(ruleset())
    before_sysctls = foreign_sysctls()
    yield
    assert foreign(ruleset()) == before_rules
    assert foreign_sysctls() == before_sysctls


def foreign_sysctls():
    out = {}
    for parts in FOREIGN_SYSCTLS:
        try:
            with open('/proc/sys/' + '/'.join(parts)) as handle:
                out[parts] = handle.read().strip()
        except FileNotFoundError:
            out[parts] = None
    return out


ADDR = {'ep-a': ('198.51.100.10', '2001:db8:100::10'), 'ep-b': ('198.51.100.11', '2001:db8:100::11'),
        'ep-c': ('203.0.113.10', '2001:db8:200::10')}


def talks(src, dst):
    """Which of ICMP, TCP and UDP over IPv4 and IPv6 get through from src to dst."""
    v4, v6 = ADDR[dst]
    return {
        'icmp4': ping(src, v4), 'icmp6': ping(src, v6),
        'tcp4': reaches(src, v4, 80, 'tcp-%s' % dst, timeout=1),
        'tcp6': reaches(src, v6, 80, 'tcp6-%s' % dst, timeout=1),
        'udp4': udp_reaches(src, v4, 53, 'udp-%s' % dst, timeout=1),
        'udp6': udp_reaches(src, v6, 53, 'udp6-%s' % dst, timeout=1),
    }


ALL = dict.fromkeys(('icmp4', 'icmp6', 'tcp4', 'tcp6', 'udp4', 'udp6'), True)
NONE = dict.fromkeys(ALL, False)


def route_via_gateway(netns, peer):
    """Make ``netns`` send to ``peer`` through the gateway (the host routes it
    back into the same bridge) instead of directly on the link."""
    v4, v6 = ADDR[peer]
    gw4, gw6 = ('198.51.100.1', '2001:db8:100::1')
    # ... and keep doing so (the host's IPv6 redirects are ignored).
    for key in ('net.ipv4.conf.all.accept_redirects=0', 'net.ipv4.conf.eth0.accept_redirects=0',
                'net.ipv6.conf.all.accept_redirects=0', 'net.ipv6.conf.eth0.accept_redirects=0'):
        sh('sysctl', '-qw', key, netns=netns)
    sh('ip', 'route', 'replace', v4 + '/32', 'via', gw4, netns=netns)
    sh('ip', '-6', 'route', 'replace', v6 + '/128', 'via', gw6, netns=netns)
    sh('ip', 'neigh', 'flush', 'all', netns=netns)
    assert sh('ip', 'route', 'get', v4, netns=netns).stdout.startswith('%s via %s' % (v4, gw4))


# -- 1. icc: false, also routed through the gateway, also for late ports -------

def test_icc_false_blocks_routed_traffic_between_endpoints_of_one_bridge(net, untouched):
    # No redirects: the endpoints keep sending through the gateway.
    for parts in (('net', 'ipv4', 'conf', 'all', 'send_redirects'), ('net', 'ipv4', 'conf', 'hn-br0', 'send_redirects')):
        sh('sh', '-c', 'echo 0 > /proc/sys/%s' % '/'.join(parts))
    for name, peer in (('ep-a', 'ep-b'), ('ep-b', 'ep-a')):
        route_via_gateway(name, peer)
    # Control: routed through the host they talk, both families, all protocols.
    assert talks('ep-a', 'ep-b') == ALL
    run_module('bridge', config=[dict(BR0, icc=False)])
    assert talks('ep-a', 'ep-b') == NONE
    assert talks('ep-b', 'ep-a') == NONE
    # The L3 rule is what stops it (the traffic really is routed, not
    # bridged): without its element the hole is back, for everything.
    assert elements('inet', 'no_icc_routed') == [{'concat': ['hn-br0', 'hn-br0']}]
    sh('nft', 'delete', 'element', 'inet', 'hostnet', 'no_icc_routed', '{ "hn-br0" . "hn-br0" }')
    assert talks('ep-a', 'ep-b') == ALL
    run_module('bridge', config=[dict(BR0, icc=False)])
    assert talks('ep-a', 'ep-b') == NONE
    # The gateway still answers, and ep-b's published port works (from the
    # outside and another bridge; from ep-a's own bridge only without
    # br_netfilter, see docs/nftables.md).
    assert ping('ep-a', '198.51.100.1') and ping('ep-a', '2001:db8:100::1')
    run_module('portmap', config=[{'host_port': 8080, 'destination': '198.51.100.11', 'port': 80}])
    assert reaches('outside', HOST_V4, 8080, 'tcp-ep-b')
    assert reaches('ep-c', HOST_V4, 8080, 'tcp-ep-b')


def test_icc_false_covers_a_port_the_veth_module_attaches_later(net, untouched):
    from ansible_collections.hostnet.provision.plugins.module_utils import _nft
    run_module('bridge', config=[dict(BR0, icc=False)])
    assert talks('ep-a', 'ep-b') == NONE
    run_module('netns', config=[{'name': 'ep-d'}])
    added = run_module('veth', config=[{'name': 'v-ep-d', 'bridge': 'hn-br0',
                                        'peer': {'name': 'eth0', 'netns': 'ep-d',
                                                 'addresses': ['198.51.100.12/24', '2001:db8:100::12/64'],
                                                 'gateway': ['198.51.100.1', '2001:db8:100::1']}}])
    if not _nft.bridge_meta_supported():
        # This kernel: the port is listed by the veth module itself.
        assert 'nftables: icc: false of bridge hn-br0: add no_icc_ports v-ep-d' in added['commands']
        assert {'elem': {'val': 'v-ep-d', 'comment': 'hn-br0'}} in elements('bridge', 'no_icc_ports')
    assert settle('ep-d', '198.51.100.1') and settle('ep-d', '2001:db8:100::1')
    # Without running the bridge module again, ep-d is cut off from ep-a and ep-b.
    ADDR['ep-d'] = ('198.51.100.12', '2001:db8:100::12')
    try:
        net.all('ep-d')
        assert talks('ep-a', 'ep-d') == NONE
        assert talks('ep-d', 'ep-b') == NONE
        assert ping('ep-d', '198.51.100.1')
        # The bridge module agrees: nothing left to do (it would list the port itself).
        assert run_module('bridge', config=[dict(BR0, icc=False)])['changed'] is False
        # Detached, the port leaves the set; deleted, too.
        gone = run_module('veth', state='deleted', config=[{'name': 'v-ep-d'}])
        if not _nft.bridge_meta_supported():
            assert gone['commands'][0] == 'nftables: icc: false of bridge hn-br0: delete no_icc_ports v-ep-d'
        assert all('v-ep-d' not in json.dumps(e) for e in elements('bridge', 'no_icc_ports'))
    finally:
        ADDR.pop('ep-d', None)


# -- 2. bridges isolated from each other unless reach allows -------------------

def test_bridges_are_isolated_from_each_other_by_default(net, untouched):
    assert talks('ep-a', 'ep-c') == NONE
    assert talks('ep-c', 'ep-a') == NONE
    # Also through the other bridge's gateway address as next hop.
    assert not reaches('ep-c', '198.51.100.10', 80, 'tcp-ep-a', timeout=1)
    # Within a bridge, to the outside and to published ports: unchanged.
    assert talks('ep-a', 'ep-b') == ALL
    net.tcp('outside', 9000, 'outside')
    net.tcp('outside', 9000, 'outside6', family=6)
    assert reaches('ep-a', OUTSIDE_V4, 9000, 'outside') and reaches('ep-c', OUTSIDE_V6, 9000, 'outside6')
    run_module('portmap', config=[{'host_port': 8080, 'destination': '198.51.100.10', 'port': 80}])
    assert reaches('ep-c', HOST_V4, 8080, 'tcp-ep-a') and reaches('ep-c', '203.0.113.1', 8080, 'tcp-ep-a')


def test_reach_opens_one_direction_and_replies(net, untouched):
    result = run_module('bridge', config=[dict(BR0, reach=['hn-br1'])])
    assert result['commands'] == ['nftables: bridge hn-br0: add reach hn-br0 . hn-br1']
    assert result['diff']['after']['hn-br0']['reach'] == ['hn-br1']
    assert talks('ep-a', 'ep-c') == ALL
    assert talks('ep-c', 'ep-a') == NONE
    # Both ways once hn-br1 says so too.
    run_module('bridge', config=[dict(BR1, reach=['hn-br0'])])
    assert talks('ep-c', 'ep-a') == ALL
    # Gathered, read back from the tables.
    gathered = dict((b['name'], b['reach']) for b in run_module('bridge', state='gathered')['gathered'])
    assert gathered == {'hn-br0': ['hn-br1'], 'hn-br1': ['hn-br0']}
    # replaced without reach: isolated again; idempotent.
    run_module('bridge', state='replaced', config=[BR0, BR1])
    assert talks('ep-a', 'ep-c') == NONE and talks('ep-c', 'ep-a') == NONE
    assert run_module('bridge', state='replaced', config=[BR0, BR1])['changed'] is False


@pytest.mark.parametrize('item, fragment', [
    ({'name': 'hn-br0', 'reach': ['hn-br0']}, 'names the bridge itself'),
    ({'name': 'hn-br0', 'reach': ['bad name']}, 'reach'),
    ({'name': 'hn-br2', 'reach': ['hn-br0']}, 'needs the bridge to route'),
])
def test_reach_refused_before_any_change(item, fragment, untouched):
    run_module('bridge', enable_forwarding=True, config=[BR0])
    state = ruleset()
    result = run_module('bridge', fail=True, config=[item])
    assert fragment in result['msg'], result['msg']
    assert result['field'] == 'reach'
    assert ruleset() == state


def apply_bridge_network_role(networks, tmp_path):
    """ansible-playbook of the bridge_network role on the sandbox itself
    (connection local); the sysctl file goes to tmp_path, never to /etc."""
    from conftest import COLLECTIONS, REPO
    playbook = tmp_path / 'role.yml'
    playbook.write_text(json.dumps([{
        'name': 'bridge_network', 'hosts': 'localhost', 'connection': 'local', 'gather_facts': False,
        'vars': {'ansible_python_interpreter': sys.executable},
        'roles': [{'role': 'hostnet.provision.bridge_network'}]}]))
    variables = tmp_path / 'vars.json'
    variables.write_text(json.dumps({'bridge_network_networks': networks,
                                     'bridge_network_sysctl_file': str(tmp_path / 'sysctl.conf')}))
    binary = os.path.join(os.path.dirname(sys.executable), 'ansible-playbook')
    if not os.path.exists(binary):
        binary = os.path.join(REPO, '.venv', 'bin', 'ansible-playbook')
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=COLLECTIONS, ANSIBLE_LOCALHOST_WARNING='false',
               ANSIBLE_INVENTORY_UNPARSED_WARNING='false', ANSIBLE_NOCOLOR='1', ANSIBLE_FORCE_COLOR='0')
    proc = subprocess.run([binary, '-i', 'localhost,', '-e', '@%s' % variables, str(playbook)], env=env,
                          capture_output=True, text=True, timeout=300, check=False)
    return proc.returncode, proc.stdout + proc.stderr


def role_networks(ra_reach=(), rc_reach=()):
    return [
        {'name': 'ra', 'subnet': '198.51.100.0/24', 'subnet6': '2001:db8:100::/64', 'reach': list(ra_reach),
         'endpoints': [{'name': 'ep-a', 'address': '198.51.100.10', 'address6': '2001:db8:100::10'}]},
        {'name': 'rc', 'subnet': '203.0.113.0/24', 'subnet6': '2001:db8:200::/64', 'reach': list(rc_reach),
         'endpoints': [{'name': 'ep-c', 'address': '203.0.113.10', 'address6': '2001:db8:200::10'}]},
    ]


def test_bridge_network_role_reach_opens_what_each_network_declares(untouched, tmp_path):
    """Two networks of the role: isolated from each other by default; `reach`
    on a network opens new connections from it to the one it names (one way,
    replies pass), on both for both ways; dropping it isolates them again."""
    rc, out = apply_bridge_network_role(role_networks(), tmp_path)
    assert rc == 0, out[-4000:]
    servers = Udp()
    try:
        servers.all('ep-a')
        servers.all('ep-c')
        for name, gateways in (('ep-a', ('198.51.100.1', '2001:db8:100::1')),
                               ('ep-c', ('203.0.113.1', '2001:db8:200::1'))):
            for gateway in gateways:
                assert settle(name, gateway), (name, gateway)
        assert talks('ep-a', 'ep-c') == NONE and talks('ep-c', 'ep-a') == NONE

        rc, out = apply_bridge_network_role(role_networks(ra_reach=['rc']), tmp_path)
        assert rc == 0, out[-4000:]
        assert talks('ep-a', 'ep-c') == ALL
        assert talks('ep-c', 'ep-a') == NONE

        rc, out = apply_bridge_network_role(role_networks(ra_reach=['rc'], rc_reach=['ra']), tmp_path)
        assert rc == 0, out[-4000:]
        assert talks('ep-a', 'ep-c') == ALL and talks('ep-c', 'ep-a') == ALL

        rc, out = apply_bridge_network_role(role_networks(), tmp_path)
        assert rc == 0, out[-4000:]
        assert talks('ep-a', 'ep-c') == NONE and talks('ep-c', 'ep-a') == NONE

        # An unknown name is a plan error: nothing changes (still isolated).
        state = ruleset()
        rc, out = apply_bridge_network_role(role_networks(ra_reach=['rcc']), tmp_path)
        assert rc != 0 and 'network ra: reach rcc: no network of that name in this list' in out, out[-4000:]
        assert ruleset() == state
        assert talks('ep-a', 'ep-c') == NONE
    finally:
        servers.stop()


# -- 3. the host's 127.0.0.1: published ports without route_localnet ----------

def attack_loopback(netns, gateway):
    """Teach an endpoint to send 127/8 out of eth0 to its gateway, as an
    attacker would (the recipe of test_portmap)."""
    for cmd in (('ip', 'addr', 'del', '127.0.0.1/8', 'dev', 'lo'),
                ('ip', 'route', 'del', 'local', '127.0.0.0/8', 'dev', 'lo', 'table', 'local'),
                ('ip', 'route', 'del', 'local', '127.0.0.1', 'dev', 'lo', 'table', 'local'),
                ('sysctl', '-qw', 'net.ipv4.conf.eth0.route_localnet=1'),
                ('sysctl', '-qw', 'net.ipv4.conf.all.route_localnet=1'),
                ('ip', 'route', 'add', '127.0.0.0/8', 'via', gateway, 'dev', 'eth0')):
        sh(*cmd, netns=netns, check=False)
    assert sh('ip', 'route', 'get', '127.0.0.1', netns=netns).stdout.startswith('127.0.0.1 via %s' % gateway)


def udp_lands(netns, address, port, path, count=5):
    """Datagrams sent to ``address:port`` reach the sink writing ``path``."""
    size = os.path.getsize(path)
    for _attempt in range(count):
        subprocess.run(['ip', 'netns', 'exec', netns, 'timeout', '3', 'socat', '-u', '-',
                        'UDP4-SENDTO:%s:%d' % (address, port)], input='probe\n', text=True,
                       capture_output=True, check=False)
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline:
        if os.path.getsize(path) > size:
            return True
        time.sleep(0.05)
    return False


def test_localhost_ports_need_no_route_localnet_and_a_flush_opens_nothing(net, tmp_path):
    sysctls = foreign_sysctls()
    subprocess.run(['nft', '-f', '-'], input=FOREIGN_TABLE, text=True, check=True)
    foreign_rules = foreign(ruleset())
    # Host services on 127.0.0.1 only: TCP (answers) and UDP (a sink).
    sink = str(tmp_path / 'udp-sink')
    open(sink, 'w').close()
    net._start(None, ['socat', '-T3', 'TCP4-LISTEN:7001,bind=127.0.0.1,fork,reuseaddr', 'SYSTEM:echo host-local'])
    net._start(None, ['socat', '-u', 'UDP4-RECV:7002,bind=127.0.0.1,reuseaddr', 'OPEN:%s,creat,append' % sink])
    wait_listening(None, 'tcp', 7001)
    wait_listening(None, 'udp', 7002)
    # An earlier version left route_localnet on: the bridge module turns it off.
    sh('sysctl', '-qw', 'net.ipv4.conf.hn-br0.route_localnet=1')
    fixed = run_module('bridge', config=[BR0, BR1])
    assert fixed['commands'] == ['set net.ipv4.conf.hn-br0.route_localnet=0 (published ports on 127.0.0.1 no longer '
                                 'need it; on, it would expose the host\'s 127.0.0.1 to the bridge after a ruleset '
                                 'flush)']
    assert run_module('bridge', config=[BR0, BR1])['changed'] is False
    ports = [{'host_port': 8080, 'destination': '198.51.100.10', 'port': 80},
             {'host_port': 5353, 'destination': '198.51.100.10', 'port': 53, 'protocol': 'udp'},
             {'host_ip': '127.0.0.1', 'host_port': 8443, 'destination': '203.0.113.10', 'port': 80}]
    run_module('portmap', config=ports)
    assert [sysctl(None, 'net', 'ipv4', 'conf', b, 'route_localnet') for b in ('hn-br0', 'hn-br1')] == ['0', '0']

    def localhost_works():
        return {'tcp': reaches(None, '127.0.0.1', 8080, 'tcp-ep-a'),
                'udp': udp_reaches(None, '127.0.0.1', 5353, 'udp-ep-a'),
                'localhost-only': reaches(None, '127.0.0.1', 8443, 'tcp-ep-c')}
    works = {'tcp': True, 'udp': True, 'localhost-only': True}
    # The host reaches its published ports through 127.0.0.1 (TCP, UDP, a
    # localhost-only mapping), and the endpoint saw the bridge's address.
    assert localhost_works() == works
    assert 'peer=198.51.100.1\n' in __import__('traffic').tcp_get(None, '127.0.0.1', 8080)
    # Local 127.0.0.1 traffic that is not published is not touched.
    assert reaches(None, '127.0.0.1', 7001, 'host-local')
    assert foreign(ruleset()) == foreign_rules

    attack_loopback('ep-b', '198.51.100.1')

    def attacked():
        return {'tcp': reaches('ep-b', '127.0.0.1', 7001, 'host-local', timeout=1),
                'udp': udp_lands('ep-b', '127.0.0.1', 7002, sink),
                'published-localhost': reaches('ep-b', '127.0.0.1', 8443, 'tcp-ep-c', timeout=1)}
    closed = {'tcp': False, 'udp': False, 'published-localhost': False}
    assert attacked() == closed
    # What `systemctl reload nftables` does on Debian.
    sh('nft', 'flush', 'ruleset')
    assert [sysctl(None, 'net', 'ipv4', 'conf', b, 'route_localnet') for b in ('hn-br0', 'hn-br1')] == ['0', '0']
    assert attacked() == closed
    # Control: the probes would see the hole route_localnet makes.
    sh('sysctl', '-qw', 'net.ipv4.conf.hn-br0.route_localnet=1')
    assert attacked()['tcp'] and udp_lands('ep-b', '127.0.0.1', 7002, sink)
    # The next run puts everything back (and route_localnet off again).
    run_module('bridge', config=[BR0, BR1])
    run_module('portmap', config=ports)
    assert [sysctl(None, 'net', 'ipv4', 'conf', b, 'route_localnet') for b in ('hn-br0', 'hn-br1')] == ['0', '0']
    assert attacked() == closed
    assert localhost_works() == works
    assert foreign_sysctls() == sysctls
