# -*- coding: utf-8 -*-
"""The roles on the local lab, through ansible-playbook, proven with packets.

One lab (three namespace hosts on an underlay switch) serves the module; each
test applies a role to some of its hosts and removes what it made at the end.
Checks go through the hosts' own tools (`ip -j`, `bridge -j fdb`), not the
roles' results, and through real TCP/ICMP traffic.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
import tempfile

import pytest

from conftest import COLLECTIONS, REPO
from helpers import environ_for_lab

pytestmark = pytest.mark.lab

LAB_SH = os.path.join(REPO, 'scripts', 'lab.sh')
PLAYBOOKS = os.path.join(os.path.dirname(__file__), 'playbooks')
UNDERLAY = {'lab1': '198.18.0.11', 'lab2': '198.18.0.12', 'lab3': '198.18.0.13'}


@contextlib.contextmanager
def lab(prefix, hosts):
    """A lab of HOSTS namespace hosts in a throwaway directory, taken down
    at the end whatever happened (the lab fixtures of several test files)."""
    with tempfile.TemporaryDirectory(prefix=prefix) as path:
        env = environ_for_lab(HOSTNET_LAB_DIR=path, HOSTNET_LAB_PYTHON=sys.executable)
        subprocess.run(['bash', LAB_SH, 'up', str(hosts)], env=env, check=True, capture_output=True, timeout=120)
        try:
            yield path
        finally:
            subprocess.run(['bash', LAB_SH, 'down'], env=env, check=False, capture_output=True, timeout=120)


@pytest.fixture(scope='module')
def lab_dir():
    with lab('hn-roles-', 3) as path:
        yield path


@pytest.fixture(autouse=True)
def clean_sandbox():
    """The lab lives outside the test's own links: nothing to wipe per test."""
    yield


def on(lab, host, *cmd, check=True, timeout=30):
    env = environ_for_lab(HOSTNET_LAB_DIR=lab)
    proc = subprocess.run(['bash', LAB_SH, 'exec', host] + list(cmd), env=env, capture_output=True, text=True,
                          timeout=timeout, check=False)
    if check:
        assert proc.returncode == 0, '%s: %s %s' % (' '.join(cmd), proc.stdout, proc.stderr)
    return proc


def ip_json(lab, host, *args):
    return json.loads(on(lab, host, 'ip', '-j', *args).stdout or '[]')


def links(lab, host, netns=None):
    args = ['-n', netns] if netns else []
    return sorted(entry['ifname'] for entry in ip_json(lab, host, *(args + ['link', 'show'])))


def play(lab, role, hosts, variables, check=False, extra_groups=None):
    """ansible-playbook of one role on HOSTS; returns (rc, {host: recap}, output)."""
    with tempfile.TemporaryDirectory() as tmp:
        inventory = os.path.join(tmp, 'hosts.yml')
        groups = {'role_hosts': {'hosts': dict((h, None) for h in hosts)}}
        groups.update(extra_groups or {})
        with open(inventory, 'w') as fh:
            json.dump({'all': {'children': groups}}, fh)
        varfile = os.path.join(tmp, 'vars.json')
        with open(varfile, 'w') as fh:
            json.dump(variables, fh)
        command = [os.path.join(os.path.dirname(sys.executable), 'ansible-playbook'),
                   '-i', os.path.join(lab, 'inventory.yml'), '-i', inventory, '-e', '@' + varfile,
                   os.path.join(PLAYBOOKS, 'role_%s.yml' % role)]
        if check:
            command.append('--check')
        env = environ_for_lab(ANSIBLE_COLLECTIONS_PATH=COLLECTIONS, ANSIBLE_NOCOLOR='1', ANSIBLE_FORCE_COLOR='0')
        proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600, check=False)
    recap = {}
    for host, counts in re.findall(r'^(\S+)\s+:\s+(ok=.*)$', proc.stdout, re.M):
        recap[host] = dict((k, int(v)) for k, v in re.findall(r'(\w+)=(\d+)', counts))
    return proc.returncode, recap, proc.stdout + proc.stderr


def converge(lab, role, hosts, variables, extra_groups=None):
    """check mode (changes predicted, nothing made) → apply → apply again (changed=0)."""
    before = dict((h, links(lab, h)) for h in hosts)
    rc, recap, out = play(lab, role, hosts, variables, check=True, extra_groups=extra_groups)
    assert rc == 0, out[-4000:]
    assert any(r['changed'] for r in recap.values()), out[-2000:]
    assert dict((h, links(lab, h)) for h in hosts) == before, 'check mode changed links'
    rc, recap, out = play(lab, role, hosts, variables, extra_groups=extra_groups)
    assert rc == 0, out[-4000:]
    rc, recap, out = play(lab, role, hosts, variables, extra_groups=extra_groups)
    assert rc == 0, out[-4000:]
    assert all(r['changed'] == 0 for r in recap.values()), out[-4000:]


def tcp_ok(lab, host, netns, address, port):
    """One bounded TCP connect from inside NETNS on HOST."""
    cmd = ['ip', 'netns', 'exec', netns] if netns else []
    code = 'import socket; socket.create_connection((%r, %d), timeout=2).close()' % (address, port)
    return on(lab, host, *(cmd + [sys.executable, '-c', code]), check=False).returncode == 0


def ping_ok(lab, host, netns, address):
    cmd = ['ip', 'netns', 'exec', netns] if netns else []
    return on(lab, host, *(cmd + ['ping', '-c', '1', '-W', '2', address]), check=False).returncode == 0


def serve(lab, host, netns, port, dual=False):
    """A TCP listener inside NETNS on HOST (it dies with the lab host);
    ``dual``: on IPv6 and IPv4 both."""
    cmd = ['ip', 'netns', 'exec', netns] if netns else []
    env = environ_for_lab(HOSTNET_LAB_DIR=lab)
    listen = ('TCP6-LISTEN:%d,fork,reuseaddr,ipv6only=0' if dual else 'TCP-LISTEN:%d,fork,reuseaddr') % port
    subprocess.Popen(['bash', LAB_SH, 'exec', host] + cmd + ['socat', listen, 'SYSTEM:echo hostnet'],
                     env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _attempt in range(50):  # bounded wait for the listener
        if on(lab, host, *(cmd + ['ss', '-Hltn', 'sport = :%d' % port])).stdout.strip():
            return
        subprocess.run(['sleep', '0.1'], check=True)
    pytest.fail('listener on %s %s:%d did not start' % (host, netns, port))


WEB = {'name': 'web', 'subnet': '198.51.100.0/25', 'endpoints': [
    {'name': 'web1', 'ports': [{'host_port': 8080, 'port': 80}]}, {'name': 'web2'}]}


def test_bridge_network_publishes_masquerades_and_removes_exactly(lab_dir):
    lab = lab_dir
    converge(lab, 'bridge_network', ['lab1'], {'bridge_network_networks': [WEB]})
    assert 'br-web' in links(lab, 'lab1') and links(lab, 'lab1', 'web1') == ['eth0', 'lo']
    assert ping_ok(lab, 'lab1', 'web1', '198.51.100.3')
    serve(lab, 'lab1', 'web1', 80)
    assert tcp_ok(lab, 'lab2', None, UNDERLAY['lab1'], 8080)      # from another host
    assert tcp_ok(lab, 'lab1', None, '127.0.0.1', 8080)           # from the host itself
    assert tcp_ok(lab, 'lab1', 'web2', UNDERLAY['lab1'], 8080)    # from the same bridge
    assert not tcp_ok(lab, 'lab2', None, '198.51.100.2', 80)      # direct access: not published
    # Egress: lab2 has no route back to 198.51.100.0/25, so an answer proves masquerade.
    assert ping_ok(lab, 'lab1', 'web1', UNDERLAY['lab2'])
    # Persistent forwarding for the families in use only: this network is IPv4 only.
    sysctl = on(lab, 'lab1', 'cat', '/etc/sysctl.d/60-hostnet-provision.conf').stdout
    assert 'net.ipv4.ip_forward = 1' in sysctl and 'ipv6' not in sysctl, sysctl

    # A port dropped from the list is unpublished; an endpoint marked absent goes.
    smaller = dict(WEB, endpoints=[{'name': 'web1'}, {'name': 'web2', 'state': 'absent'}])
    rc, _recap, out = play(lab, 'bridge_network', ['lab1'], {'bridge_network_networks': [smaller]})
    assert rc == 0, out[-3000:]
    assert not tcp_ok(lab, 'lab2', None, UNDERLAY['lab1'], 8080)
    assert 'web2' not in [n['name'] for n in ip_json(lab, 'lab1', 'netns', 'list')]
    assert ip_json(lab, 'lab1', '-n', 'web1', 'addr', 'show', 'eth0')[0]['addr_info'][0]['local'] == '198.51.100.2'

    rc, _recap, out = play(lab, 'bridge_network', ['lab1'], {'bridge_network_networks': [dict(WEB, state='absent')]})
    assert rc == 0, out[-3000:]
    assert links(lab, 'lab1') == ['eth0', 'lo']
    assert ip_json(lab, 'lab1', 'netns', 'list') == []


def tcp_answer(lab, host, address, port):
    """What a bounded socat TCP client on HOST reads from ADDRESS:PORT (either family)."""
    target = 'TCP6:[%s]:%d' % (address, port) if ':' in address else 'TCP4:%s:%d' % (address, port)
    return on(lab, host, 'timeout', '6', 'socat', '-t', '3', '-T', '3', '-', target + ',connect-timeout=2',
              check=False).stdout.strip()


def test_a_dual_stack_endpoint_is_published_over_both_families(lab_dir):
    lab = lab_dir
    v6 = {'lab1': '2001:db8:ff::11', 'lab2': '2001:db8:ff::12'}
    for host, address in v6.items():
        on(lab, host, 'ip', '-6', 'addr', 'add', address + '/64', 'dev', 'eth0', 'nodad')
    net = {'name': 'dual', 'subnet': '198.51.100.128/26', 'subnet6': '2001:db8:dd::/64', 'endpoints': [
        {'name': 'd1', 'ports': [{'host_port': 8090, 'port': 80}]}]}
    try:
        converge(lab, 'bridge_network', ['lab1'], {'bridge_network_networks': [net]})
        serve(lab, 'lab1', 'd1', 80, dual=True)
        # From another host (namespace), to the host's own addresses: TCP over IPv6 and over IPv4.
        assert tcp_answer(lab, 'lab2', v6['lab1'], 8090) == 'hostnet'
        assert tcp_answer(lab, 'lab2', UNDERLAY['lab1'], 8090) == 'hostnet'
        # Not an open door: a port not published is not answered over IPv6.
        assert tcp_answer(lab, 'lab2', v6['lab1'], 8091) == ''
        # Dual stack: both families are kept forwarding after a reboot.
        sysctl = on(lab, 'lab1', 'cat', '/etc/sysctl.d/60-hostnet-provision.conf').stdout
        assert 'net.ipv4.ip_forward = 1' in sysctl and 'net.ipv6.conf.all.forwarding = 1' in sysctl, sysctl
    finally:
        rc, _recap, out = play(lab, 'bridge_network', ['lab1'], {'bridge_network_networks': [dict(net, state='absent')]})
        for host, address in v6.items():
            on(lab, host, 'ip', '-6', 'addr', 'del', address + '/64', 'dev', 'eth0', check=False)
    assert rc == 0, out[-3000:]
    assert links(lab, 'lab1') == ['eth0', 'lo']


def eth0_address(lab, host, netns):
    return [a['local'] for a in ip_json(lab, host, '-n', netns, 'addr', 'show', 'eth0')[0]['addr_info']
            if a['family'] == 'inet']


def test_an_endpoint_no_longer_listed_keeps_its_address_until_purged(lab_dir):
    lab = lab_dir
    net = {'name': 'ipam', 'subnet': '203.0.113.128/26', 'endpoints': [{'name': 'ia'}, {'name': 'ib'}]}
    rc, _recap, out = play(lab, 'bridge_network', ['lab3'], {'bridge_network_networks': [net]})
    assert rc == 0, out[-3000:]
    b_address = eth0_address(lab, 'lab3', 'ib')
    assert b_address == ['203.0.113.131']

    # b is dropped from the list, n is added: b keeps running and its address,
    # n gets another one, and the run says that b was kept.
    net['endpoints'] = [{'name': 'ia'}, {'name': 'in'}]
    rc, _recap, out = play(lab, 'bridge_network', ['lab3'], {'bridge_network_networks': [net]})
    assert rc == 0, out[-3000:]
    assert 'endpoint ib' in out and 'kept (not listed)' in out, out[-3000:]
    assert eth0_address(lab, 'lab3', 'ib') == b_address
    assert eth0_address(lab, 'lab3', 'in') == ['203.0.113.132']
    held = [a for ns in ('ia', 'ib', 'in') for a in eth0_address(lab, 'lab3', ns)]
    assert len(held) == len(set(held)) == 3
    # A packet to b's address reaches b, not n: the answer comes from b's MAC.
    assert ping_ok(lab, 'lab3', 'in', b_address[0])
    b_mac = ip_json(lab, 'lab3', '-n', 'ib', 'link', 'show', 'eth0')[0]['address']
    assert [n['lladdr'] for n in ip_json(lab, 'lab3', '-n', 'in', 'neigh', 'show', b_address[0])] == [b_mac]
    # Run again: nothing changes, b is still reported.
    rc, recap, out = play(lab, 'bridge_network', ['lab3'], {'bridge_network_networks': [net]})
    assert rc == 0 and recap['lab3']['changed'] == 0 and 'kept (not listed)' in out, out[-3000:]

    # purge: b goes (veth and namespace), the others stay as they are.
    rc, _recap, out = play(lab, 'bridge_network', ['lab3'], {'bridge_network_networks': [dict(net, purge=True)]})
    assert rc == 0, out[-3000:]
    assert 'ib' not in [n['name'] for n in ip_json(lab, 'lab3', 'netns', 'list')]
    assert 'veipam-ib' not in links(lab, 'lab3')
    assert eth0_address(lab, 'lab3', 'in') == ['203.0.113.132'] and eth0_address(lab, 'lab3', 'ia') == ['203.0.113.130']

    rc, _recap, out = play(lab, 'bridge_network', ['lab3'], {'bridge_network_networks': [dict(net, state='absent')]})
    assert rc == 0, out[-3000:]
    assert links(lab, 'lab3') == ['eth0', 'lo'] and ip_json(lab, 'lab3', 'netns', 'list') == []


TENANTS = [
    {'name': 'acme', 'subnet': '203.0.113.0/26', 'endpoints': [{'name': 'acme1'}, {'name': 'acme2'}]},
    {'name': 'globex', 'subnet': '203.0.113.64/26', 'endpoints': [{'name': 'globex1'}, {'name': 'globex2'}]},
]


def test_tenants_never_reach_each_other(lab_dir):
    lab = lab_dir
    converge(lab, 'tenant_networks', ['lab2'], {'tenant_networks_tenants': TENANTS})
    serve(lab, 'lab2', 'globex1', 80)
    serve(lab, 'lab2', 'acme1', 80)
    serve(lab, 'lab2', None, 2222)                                # a service of the host itself
    assert tcp_ok(lab, 'lab2', 'globex2', '203.0.113.66', 80)     # within a tenant
    assert ping_ok(lab, 'lab2', 'acme2', '203.0.113.2')
    for src, dst in (('acme2', '203.0.113.66'), ('globex2', '203.0.113.2')):
        assert not tcp_ok(lab, 'lab2', src, dst, 80), (src, dst)
        assert not ping_ok(lab, 'lab2', src, dst), (src, dst)
    assert not tcp_ok(lab, 'lab2', 'acme1', UNDERLAY['lab2'], 2222)   # host_access: false
    assert ping_ok(lab, 'lab2', 'acme1', UNDERLAY['lab3'])            # egress still works
    rc, _recap, out = play(lab, 'tenant_networks', ['lab2'], {
        'tenant_networks_tenants': [dict(t, state='absent') for t in TENANTS]})
    assert rc == 0, out[-3000:]
    assert links(lab, 'lab2') == ['eth0', 'lo']


def overlay_vars(endpoints=True):
    return {'overlay_network_name': 'ov1', 'overlay_network_vni': 4242, 'overlay_network_subnet': '198.19.0.0/24',
            'overlay_network_peers_group': 'role_hosts', 'overlay_network_underlay_interface': 'eth0',
            'overlay_network_endpoints': ['ep-{{ inventory_hostname }}'] if endpoints else []}


def flood_peers(lab, host):
    return sorted(e['dst'] for e in ip_json(lab, host, '-d', 'link', 'show', 'vx-ov1') and
                  json.loads(on(lab, host, 'bridge', '-j', 'fdb', 'show', 'dev', 'vx-ov1').stdout)
                  if e.get('mac') == '00:00:00:00:00:00')


def test_overlay_hosts_join_and_leave(lab_dir):
    lab = lab_dir
    converge(lab, 'overlay_network', ['lab1', 'lab2'], overlay_vars())
    assert flood_peers(lab, 'lab1') == [UNDERLAY['lab2']]
    assert ping_ok(lab, 'lab1', 'ep-lab1', '198.19.0.193')        # lab2's endpoint (block 12)
    # lab3 joins: everyone learns it at the next run.
    rc, _recap, out = play(lab, 'overlay_network', ['lab1', 'lab2', 'lab3'], overlay_vars())
    assert rc == 0, out[-3000:]
    assert flood_peers(lab, 'lab1') == [UNDERLAY['lab2'], UNDERLAY['lab3']]
    for src, dst in (('lab1', '198.19.0.209'), ('lab3', '198.19.0.177'), ('lab2', '198.19.0.209')):
        assert ping_ok(lab, src, 'ep-' + src, dst), (src, dst)
    # lab2 leaves the group (marked absent, and removes its part): the others
    # forget it in the same run.
    leaving = {'leaving': {'hosts': {'lab2': {'overlay_network_state': 'absent'}}}}
    rc, _recap, out = play(lab, 'overlay_network', ['lab1', 'lab2', 'lab3'], overlay_vars(), extra_groups=leaving)
    assert rc == 0, out[-3000:]
    assert flood_peers(lab, 'lab1') == [UNDERLAY['lab3']] and flood_peers(lab, 'lab3') == [UNDERLAY['lab1']]
    for host in ('lab1', 'lab3'):
        vteps = set(e.get('dst') for e in json.loads(on(lab, host, 'bridge', '-j', 'fdb', 'show', 'dev', 'vx-ov1').stdout))
        assert UNDERLAY['lab2'] not in vteps and UNDERLAY['lab1' if host == 'lab3' else 'lab3'] in vteps, vteps
    assert 'vx-ov1' not in links(lab, 'lab2')
    for host in ('lab1', 'lab3'):
        rc, _recap, out = play(lab, 'overlay_network', [host], dict(overlay_vars(), overlay_network_state='absent'))
        assert rc == 0, out[-3000:]
        assert links(lab, host) == ['eth0', 'lo']


def test_overlay_with_local_ip_alone_and_numbers_as_strings(lab_dir):
    """The shipped example inventory sets only overlay_network_local_ip; -e
    gives numbers as strings. Both work: the underlay device is found from
    the host's addresses."""
    lab = lab_dir
    hosts = ['lab1', 'lab2']
    underlay = {'underlay': {'hosts': dict((h, {'overlay_network_local_ip': UNDERLAY[h]}) for h in hosts)}}
    variables = {'overlay_network_name': 'ov2', 'overlay_network_vni': '4243', 'overlay_network_port': '4790',
                 'overlay_network_subnet': '198.19.1.0/24', 'overlay_network_peers_group': 'role_hosts',
                 'overlay_network_endpoints': ['ep2-{{ inventory_hostname }}']}
    rc, _recap, out = play(lab, 'overlay_network', hosts, variables, extra_groups=underlay)
    assert rc == 0, out[-3000:]
    info = ip_json(lab, 'lab1', '-d', 'link', 'show', 'vx-ov2')[0]['linkinfo']['info_data']
    assert (info['id'], info['port'], info['link'], info['local']) == (4243, 4790, 'eth0', UNDERLAY['lab1'])
    assert ping_ok(lab, 'lab1', 'ep2-lab1', '198.19.1.193')        # lab2's endpoint (block 12)
    for host in hosts:
        rc, _recap, out = play(lab, 'overlay_network', [host], dict(variables, overlay_network_state='absent'),
                               extra_groups=underlay)
        assert rc == 0, out[-3000:]
        assert links(lab, host) == ['eth0', 'lo']


def test_overlay_refused_on_one_host_changes_no_host(lab_dir):
    """An MTU that lab2's underlay cannot carry stops the play on every host
    before the first change (not only on lab2)."""
    lab = lab_dir
    on(lab, 'lab2', 'ip', 'link', 'set', 'eth0', 'mtu', '1400')
    try:
        rc, _recap, out = play(lab, 'overlay_network', ['lab1', 'lab2'], dict(overlay_vars(), overlay_network_mtu=1400))
    finally:
        on(lab, 'lab2', 'ip', 'link', 'set', 'eth0', 'mtu', '1500')
    assert rc != 0 and 'mtu 1400 is larger than the underlay allows: on host lab2 dev eth0 has MTU 1400' in out, out[-3000:]
    assert 'Finalization of task args' not in out
    for host in ('lab1', 'lab2'):
        assert links(lab, host) == ['eth0', 'lo'] and ip_json(lab, host, 'netns', 'list') == []


@pytest.mark.parametrize('networks, fragment', [
    ([dict(WEB, subnet='198.18.0.0/25')], 'overlaps the route 198.18.0.0/24 dev eth0 (table main)'),
    ([WEB, dict(WEB, name='web-b', subnet='198.51.100.64/26', endpoints=[])], 'overlaps subnet 198.51.100.0/25'),
    ([WEB, {'name': 'db', 'subnet': '203.0.113.0/24',
            'endpoints': [{'name': 'db1', 'ports': [{'host_port': 8080, 'port': 5432}]}]}],
     'host port 8080/tcp is also published by endpoint web1'),
    ([dict(WEB, bridge='br-sixteen-bytes')], "is 16 bytes long"),
    ([dict(WEB, endpoints=[{'name': 'web1', 'address': '203.0.113.9'}])], 'outside subnet 198.51.100.0/25'),
])
def test_bad_input_refused_before_any_change(lab_dir, networks, fragment):
    rc, _recap, out = play(lab_dir, 'bridge_network', ['lab3'], {'bridge_network_networks': networks})
    assert rc != 0 and fragment in out, out[-3000:]
    assert 'nothing was changed' in out
    assert links(lab_dir, 'lab3') == ['eth0', 'lo'] and ip_json(lab_dir, 'lab3', 'netns', 'list') == []
