# -*- coding: utf-8 -*-
"""Named exceptions to isolation (bridge option ``allow``), proven with real
packets between namespaces made by the tests.

Topology from traffic.build(): ep-a and ep-b on hn-br0 (198.51.100.0/24,
2001:db8:100::/64), ep-c on hn-br1 (203.0.113.0/24, 2001:db8:200::/64),
both bridges isolated. Every endpoint runs TCP servers on ports 80 and 81
and a UDP server on port 53, over IPv4 and IPv6. An exception opens one
direction: the allowed flow passes with its replies, the reverse direction
and everything not listed stay blocked; removing the exception closes it.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from helpers import quartet, run_module, sh
from test_isolation import ADDR, ALL, NONE, Udp, talks
from traffic import BR0, BR1, build, elements, foreign, peer_seen, reaches, ruleset

ISO0, ISO1 = dict(BR0, isolated=True), dict(BR1, isolated=True)
WEB = {'name': 'a-to-c-web', 'to': 'hn-br1', 'protocol': 'tcp', 'ports': [80]}


@pytest.fixture
def net():
    servers = Udp()
    build()
    run_module('bridge', config=[ISO0, ISO1])
    for name in ('ep-a', 'ep-b', 'ep-c'):
        servers.all(name)
        servers.tcp(name, 81, 'tcp81-%s' % name)
        servers.tcp(name, 81, 'tcp81-6-%s' % name, family=6)
    yield servers
    servers.stop()


def only(*kinds):
    return dict((k, k in kinds) for k in ALL)


def port81(src, dst):
    v4, v6 = ADDR[dst]
    return (reaches(src, v4, 81, 'tcp81-%s' % dst, timeout=1), reaches(src, v6, 81, 'tcp81-6-%s' % dst, timeout=1))


def from_port(netns, source_port, address, port):
    """A TCP connection opened from ``source_port`` (the allowed port, as a
    reply would carry it) to ``address:port``: True if it is established."""
    code = ('import socket, sys\n'
            's = socket.socket(socket.AF_INET)\n'
            's.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n'
            's.bind(("0.0.0.0", %d))\n'
            's.settimeout(1)\n'
            'try:\n'
            '    s.connect(("%s", %d))\n'
            'except OSError:\n'
            '    sys.exit(1)\n' % (source_port, address, port))
    return subprocess.run(['ip', 'netns', 'exec', netns, 'timeout', '5', sys.executable, '-c', code],
                          capture_output=True, check=False).returncode == 0


def test_a_port_exception_opens_one_flow_one_way(net):
    foreign_rules = foreign(ruleset())
    assert talks('ep-a', 'ep-c') == NONE and talks('ep-c', 'ep-a') == NONE
    first, applied, _again, _check = quartet('bridge', config=[dict(ISO0, allow=[WEB]), ISO1])
    assert applied['commands'] == ['nftables: bridge hn-br0: add allow_ports hn-br0 . hn-br1 . tcp . 80']
    assert first['diff']['after']['hn-br0']['allow'] == [dict(WEB, ports=[80])]
    assert applied['diff']['before']['hn-br0']['allow'] == []
    assert applied['diff']['after']['hn-br0']['allow'] == [dict(WEB, ports=[80])]
    assert elements('inet', 'allow_ports') == [
        {'elem': {'val': {'concat': ['hn-br0', 'hn-br1', 'tcp', 80]}, 'comment': 'a-to-c-web'}}]
    # TCP 80 from hn-br0 to hn-br1, both families, replies included.
    assert talks('ep-a', 'ep-c') == only('tcp4', 'tcp6')
    assert talks('ep-b', 'ep-c') == only('tcp4', 'tcp6')
    # Every other port, ICMP and UDP stay blocked; the reverse direction too.
    assert port81('ep-a', 'ep-c') == (False, False)
    assert talks('ep-c', 'ep-a') == NONE
    assert port81('ep-c', 'ep-a') == (False, False)
    # hn-br0 masquerades what leaves it (as Docker does): hn-br1's endpoint
    # sees its own gateway; without masquerade, the endpoint's address.
    assert peer_seen('ep-a', ADDR['ep-c'][0], 80) == '203.0.113.1'
    run_module('bridge', config=[dict(ISO0, allow=[WEB], masquerade=False)])
    assert peer_seen('ep-a', ADDR['ep-c'][0], 80) == ADDR['ep-a'][0]
    assert peer_seen('ep-a', ADDR['ep-c'][1], 80) == ADDR['ep-a'][1]
    # Within a bridge nothing changed; nothing foreign was touched.
    assert talks('ep-a', 'ep-b') == ALL
    assert foreign(ruleset()) == foreign_rules
    # Gathered from the tables.
    gathered = dict((b['name'], b['allow']) for b in run_module('bridge', state='gathered')['gathered'])
    assert gathered == {'hn-br0': [dict(WEB, ports=[80])], 'hn-br1': []}


def test_protocol_range_and_whole_bridge_exceptions_then_removal(net):
    # One protocol (UDP, every port) and a range of TCP ports, merged by name.
    udp = {'name': 'a-udp', 'to': 'hn-br1', 'protocol': 'udp'}
    tcp = {'name': 'a-range', 'to': 'hn-br1', 'ports': ['79-81']}
    quartet('bridge', state='merged', config=[dict(ISO0, allow=[udp, tcp])])
    assert talks('ep-a', 'ep-c') == only('udp4', 'udp6', 'tcp4', 'tcp6')
    assert port81('ep-a', 'ep-c') == (True, True)
    assert talks('ep-c', 'ep-a') == NONE
    # A new connection from an allowed port (79: nothing listens there), the
    # way a reply would look, is no reply: blocked.
    assert from_port('ep-a', 79, ADDR['ep-c'][0], 80)
    assert not from_port('ep-c', 79, ADDR['ep-a'][0], 80)
    after = dict((b['name'], b['allow']) for b in run_module('bridge', state='gathered')['gathered'])
    assert after['hn-br0'] == [{'name': 'a-range', 'to': 'hn-br1', 'protocol': 'tcp', 'ports': ['79-81']},
                               {'name': 'a-udp', 'to': 'hn-br1', 'protocol': 'udp', 'ports': []}]
    # merged by name: a-udp becomes ICMP (ICMP and ICMPv6), a-range stays.
    icmp = {'name': 'a-udp', 'to': 'hn-br1', 'protocol': 'icmp'}
    run_module('bridge', state='merged', config=[dict(ISO0, allow=[icmp])])
    assert talks('ep-a', 'ep-c') == only('icmp4', 'icmp6', 'tcp4', 'tcp6')
    # The whole bridge: everything from hn-br1 to hn-br0, nothing new back
    # beyond what hn-br0 allows itself.
    everything = {'name': 'c-all', 'to': 'hn-br0'}
    applied = run_module('bridge', config=[dict(ISO1, allow=[everything])])
    assert applied['commands'] == ['nftables: bridge hn-br1: add allow hn-br1 . hn-br0']
    assert talks('ep-c', 'ep-a') == ALL and port81('ep-c', 'ep-b') == (True, True)
    # Removed from the list: blocked again, the elements are gone; idempotent.
    removed = run_module('bridge', state='replaced', config=[ISO0, ISO1])
    assert sorted(removed['commands']) == [
        'nftables: bridge hn-br0: delete allow_ports hn-br0 . hn-br1 . tcp . 79, '
        'delete allow_ports hn-br0 . hn-br1 . tcp . 80, delete allow_ports hn-br0 . hn-br1 . tcp . 81, '
        'delete allow_proto hn-br0 . hn-br1 . icmp, delete allow_proto hn-br0 . hn-br1 . ipv6-icmp',
        'nftables: bridge hn-br1: delete allow hn-br1 . hn-br0']
    assert talks('ep-a', 'ep-c') == NONE and talks('ep-c', 'ep-a') == NONE
    for name in ('allow', 'allow_proto', 'allow_ports'):
        assert elements('inet', name) == []
    assert run_module('bridge', state='replaced', config=[ISO0, ISO1])['changed'] is False


def test_an_exception_removed_by_hand_is_put_back(net):
    run_module('bridge', config=[dict(ISO0, allow=[WEB]), ISO1])
    sh('nft', 'delete', 'element', 'inet', 'hostnet', 'allow_ports', '{ "hn-br0" . "hn-br1" . tcp . 80 }')
    assert talks('ep-a', 'ep-c') == NONE
    repaired = run_module('bridge', config=[dict(ISO0, allow=[WEB]), ISO1])
    assert repaired['commands'] == ['nftables: bridge hn-br0: add allow_ports hn-br0 . hn-br1 . tcp . 80']
    assert talks('ep-a', 'ep-c') == only('tcp4', 'tcp6')


@pytest.mark.parametrize('allow, field, fragment', [
    ([dict(WEB, to='hn-br0')], 'allow', "to 'hn-br0' is the bridge itself"),
    ([WEB, WEB], 'allow', "allow 'a-to-c-web' is listed twice"),
    ([WEB, dict(WEB, name='again', ports=['79-80'])], 'allow', 'tcp port 80 to hn-br1 is already allowed by a-to-c-web'),
    ([dict(WEB, ports=[0])], 'ports', 'port 0 is out of range'),
    ([dict(WEB, ports=[65536])], 'ports', 'port 65536 is out of range'),
    ([dict(WEB, ports=['90-80'])], 'ports', "port range '90-80'"),
    ([dict(WEB, ports=['http'])], 'ports', "port 'http' must be a port number"),
    ([dict(WEB, ports=['1-5000'])], 'ports', 'more than 4096'),
    ([dict(WEB, protocol='icmp')], 'ports', 'icmp has no ports'),
    ([dict(WEB, name='bad name')], 'name', "allow name 'bad name'"),
    ([dict(WEB, to='bad name')], 'to', "to 'bad name'"),
])
def test_bad_exceptions_are_refused_before_any_change(allow, field, fragment):
    run_module('bridge', enable_forwarding=True, config=[ISO0, ISO1])
    state = ruleset()
    result = run_module('bridge', fail=True, config=[dict(ISO0, allow=allow)])
    assert fragment in result['msg'], result['msg']
    assert result['field'] == field
    assert ruleset() == state


def test_an_exception_needs_the_bridge_to_route():
    result = run_module('bridge', fail=True, config=[{'name': 'hn-br2', 'allow': [WEB]}])
    assert 'allow a-to-c-web needs the bridge to route' in result['msg'] and result['field'] == 'allow'
    assert subprocess.run(['ip', 'link', 'show', 'hn-br2'], capture_output=True, check=False).returncode != 0
