# -*- coding: utf-8 -*-
"""overlay_network on three lab hosts: one MTU for the whole overlay (proven
with don't-fragment pings between every pair while one host's underlay is
smaller), dual stack (ping and TCP over both families), unicast sent to
one VTEP (counted on the uninvolved third host's underlay).

Each lab host is its own network stack (scripts/lab.sh); the checks read
the kernel back with ip/bridge/nft and send real packets.
"""

from __future__ import annotations

import ipaddress
import json
import os
import subprocess
import sys

import pytest

from conftest import REPO
from helpers import environ_for_lab
from test_roles import converge, ip_json, lab, links, on, play

from ansible_collections.hostnet.provision.plugins.module_utils._topology import overlay_mac

pytestmark = pytest.mark.lab

LAB_SH = os.path.join(REPO, 'scripts', 'lab.sh')
HOSTS = ('lab1', 'lab2', 'lab3')
UNDERLAY = {'lab1': '198.18.0.11', 'lab2': '198.18.0.12', 'lab3': '198.18.0.13'}
INDEX = {'lab1': 11, 'lab2': 12, 'lab3': 13}  # the underlay address modulo 16 host blocks
SUBNET, SUBNET6 = ipaddress.ip_network('198.19.4.0/24'), ipaddress.ip_network('2001:db8:19::/64')
VNI, PORT = 4250, 4789
VARS = {'overlay_network_name': 'ds', 'overlay_network_vni': VNI, 'overlay_network_subnet': str(SUBNET),
        'overlay_network_subnet6': str(SUBNET6), 'overlay_network_peers_group': 'role_hosts',
        'overlay_network_underlay_interface': 'eth0', 'overlay_network_endpoints': ['ep-{{ inventory_hostname }}']}


def endpoint(host, net):
    """The address of HOST's endpoint: the second of its block (the bridge has the first)."""
    block_size = net.num_addresses >> 4
    return str(net.network_address + INDEX[host] * block_size + 1)


@pytest.fixture(scope='module')
def lab_dir():
    with lab('hn-overlay-', 3) as path:
        yield path


@pytest.fixture(autouse=True)
def clean_sandbox():
    """The lab lives outside the test's own links: nothing to wipe per test."""
    yield


def in_ep(host, *cmd):
    return ['ip', 'netns', 'exec', 'ep-' + host] + list(cmd)


def df_ping(lab, src, address, size):
    """One don't-fragment ping of SIZE bytes of payload; True when answered."""
    family = '-6' if ':' in address else '-4'
    proc = on(lab, src, *in_ep(src, 'ping', family, '-M', 'do', '-s', str(size), '-c', '1', '-W', '2', address),
              check=False)
    return proc.returncode == 0


def reachable(lab, src, address, attempts=10):
    """Bounded wait (IPv6 DAD, first ARP/ND) until one ping is answered."""
    for _attempt in range(attempts):
        if df_ping(lab, src, address, 56):
            return True
    return False


def tcp_ok(lab, src, address, port):
    code = 'import socket; socket.create_connection((%r, %d), timeout=2).close()' % (address, port)
    return on(lab, src, *in_ep(src, sys.executable, '-c', code), check=False).returncode == 0


def serve6(lab, host, port):
    """A TCP listener on both families in HOST's endpoint (it dies with the lab)."""
    env = environ_for_lab(HOSTNET_LAB_DIR=lab)
    listener = in_ep(host, 'socat', 'TCP6-LISTEN:%d,fork,reuseaddr' % port, 'SYSTEM:echo hostnet')
    subprocess.Popen(['bash', LAB_SH, 'exec', host] + listener, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _attempt in range(50):  # bounded wait for the listener
        if on(lab, host, *in_ep(host, 'ss', '-Hltn', 'sport = :%d' % port)).stdout.strip():
            return
        subprocess.run(['sleep', '0.1'], check=True)
    pytest.fail('listener in %s ep-%s:%d did not start' % (host, host, port))


def tunnel_packets(lab, host, which='all'):
    """VXLAN packets HOST's underlay received (the test's own nftables
    counters): ``all`` of them, or only those carrying an ICMP or ICMPv6
    echo request/reply (``echo``)."""
    table = json.loads(on(lab, host, 'nft', '-j', 'list', 'table', 'inet', 'hn_test_count').stdout)
    return sum(item['rule']['expr'][-1]['counter']['packets'] for item in table['nftables']
               if 'rule' in item and item['rule'].get('comment') == which)


def fdb(lab, host):
    return json.loads(on(lab, host, 'bridge', '-j', 'fdb', 'show', 'dev', 'vx-ds').stdout)


def test_one_mtu_dual_stack_and_unicast_to_one_vtep(lab_dir):
    lab = lab_dir
    on(lab, 'lab2', 'ip', 'link', 'set', 'eth0', 'mtu', '1400')
    try:
        converge(lab, 'overlay_network', list(HOSTS), VARS)

        # -- one MTU: lab2's underlay (1400 - 50) for every host and endpoint
        for host in HOSTS:
            assert ip_json(lab, host, 'link', 'show', 'vx-ds')[0]['mtu'] == 1350
            assert ip_json(lab, host, 'link', 'show', 'ov-ds')[0]['mtu'] == 1350
            assert ip_json(lab, host, '-n', 'ep-' + host, 'link', 'show', 'eth0')[0]['mtu'] == 1350
        for src in HOSTS:
            for dst in HOSTS:
                if src == dst:
                    continue
                for net, header in ((SUBNET, 28), (SUBNET6, 48)):
                    address = endpoint(dst, net)
                    assert reachable(lab, src, address), (src, address)
                    largest = 1350 - header
                    assert df_ping(lab, src, address, largest), (src, address, largest)
                    assert not df_ping(lab, src, address, largest + 1), (src, address, largest + 1)

        # -- dual stack: TCP over both families between every pair
        for host in HOSTS:
            serve6(lab, host, 8080)
        for src in HOSTS:
            for dst in HOSTS:
                if src != dst:
                    for net in (SUBNET, SUBNET6):
                        assert tcp_ok(lab, src, endpoint(dst, net), 8080), (src, dst, str(net))

        # -- MACs every host computes, and MAC -> VTEP entries for them
        for host in HOSTS:
            mac = ip_json(lab, host, '-n', 'ep-' + host, 'link', 'show', 'eth0')[0]['address']
            assert mac == overlay_mac(VNI, INDEX[host], 'ep-' + host)
            assert ip_json(lab, host, 'link', 'show', 'ov-ds')[0]['address'] == overlay_mac(VNI, INDEX[host])
        entries = dict((e['mac'], e['dst']) for e in fdb(lab, 'lab1') if e['mac'] != '00:00:00:00:00:00'
                       and e.get('dst'))
        assert entries == dict((overlay_mac(VNI, INDEX[h], name), UNDERLAY[h])
                               for h in ('lab2', 'lab3') for name in ('', 'ep-' + h))
        assert sorted(e['dst'] for e in fdb(lab, 'lab1') if e['mac'] == '00:00:00:00:00:00') == \
            [UNDERLAY['lab2'], UNDERLAY['lab3']]

        # -- unicast between lab1 and lab2 never reaches lab3's underlay
        # Offsets from the outer UDP header: 8 (UDP) + 8 (VXLAN) + 14 (inner
        # Ethernet); the inner ethertype is at byte 28, the inner IPv4
        # protocol at byte 39, the inner IPv6 next header at byte 36 and the
        # ICMPv6 type at byte 70.
        rules = ('add table inet hn_test_count\n'
                 'add chain inet hn_test_count input { type filter hook input priority 0; }\n'
                 'add rule inet hn_test_count input udp dport %(port)d counter comment "all"\n'
                 'add rule inet hn_test_count input udp dport %(port)d @th,224,16 0x0800 @th,312,8 1 '
                 'counter comment "echo"\n'
                 'add rule inet hn_test_count input udp dport %(port)d @th,224,16 0x86dd @th,288,8 58 '
                 '@th,560,8 { 128, 129 } counter comment "echo"\n' % {'port': PORT})
        proc = subprocess.run(['bash', LAB_SH, 'exec', 'lab3', 'nft', '-f', '-'], input=rules, text=True,
                              env=environ_for_lab(HOSTNET_LAB_DIR=lab), capture_output=True, timeout=30, check=False)
        assert proc.returncode == 0, proc.stderr
        for net in (SUBNET, SUBNET6):  # neighbours resolved (ARP/ND is flooded, by design)
            assert reachable(lab, 'lab1', endpoint('lab2', net))
        before = tunnel_packets(lab, 'lab3', 'echo')
        before_all = tunnel_packets(lab, 'lab3')
        for net in (SUBNET, SUBNET6):
            address = endpoint('lab2', net)
            proc = on(lab, 'lab1', *in_ep('lab1', 'ping', '-c', '10', '-i', '0.2', '-W', '2', address), check=False)
            assert ' 10 received' in proc.stdout, proc.stdout
        # None of the 40 echo packets reaches the third host; what may (ARP
        # and neighbour discovery, broadcast and multicast) is flooded by design.
        during = tunnel_packets(lab, 'lab3', 'echo') - before
        assert during == 0, '%d tunnel packets carrying the pings reached lab3 (%d tunnel packets in all)' \
            % (during, tunnel_packets(lab, 'lab3') - before_all)
        # control: the counter does see the pings lab3 is part of
        for net in (SUBNET, SUBNET6):
            assert reachable(lab, 'lab1', endpoint('lab3', net))
        assert tunnel_packets(lab, 'lab3', 'echo') - before >= 2
    finally:
        on(lab, 'lab3', 'nft', 'delete', 'table', 'inet', 'hn_test_count', check=False)
        on(lab, 'lab2', 'ip', 'link', 'set', 'eth0', 'mtu', '1500')
    for host in HOSTS:
        rc, _recap, out = play(lab, 'overlay_network', [host], dict(VARS, overlay_network_state='absent'))
        assert rc == 0, out[-3000:]
        assert links(lab, host) == ['eth0', 'lo']
