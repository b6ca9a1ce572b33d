# -*- coding: utf-8 -*-
# Copyright: contributors to hostnet.provision
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The workloads as plain data, the same for every implementation.

Addresses stay inside the documentation and benchmarking ranges:
198.18.0.0/20 (workload 1), 198.19.0.0/16 in /28 slices (workload 2),
198.51.100.0/24 (the VXLAN underlay) and 198.18.128.0/17 (VXLAN peers).
"""

from __future__ import annotations

import ipaddress

W1_SUBNET = ipaddress.ip_network('198.18.0.0/20')
W1_NETWORK = 'bench'
W1_BRIDGE = 'br-bench'
PORT_BASE = 20000
W2_BASE = ipaddress.ip_network('198.19.0.0/16')
W2_ENDPOINTS = 5
W3_DEVICE = 'vx-bench'
W3_VNI = 4242
W3_UNDERLAY = ('ul0', 'ul1', '198.51.100.1/24')
W3_PEER_BASE = int(ipaddress.ip_address('198.18.128.1'))


def _ep(name, host_if, address, gateway, prefix, ports=()):
    return {'name': name, 'host_if': host_if, 'address': '%s/%d' % (address, prefix), 'ip': str(address),
            'gateway': str(gateway), 'ports': list(ports)}


def bridge_network(n, extra=0):
    """Workload 1: one bridge, n (+extra) endpoints, every 10th publishes a port."""
    hosts = W1_SUBNET.hosts()
    gateway = next(hosts)
    endpoints = []
    for i in range(n + extra):
        ports = [{'host_port': PORT_BASE + i, 'port': 80}] if i % 10 == 0 and i < n else []
        endpoints.append(_ep('b1e%d' % i, 'vebench-b1e%d' % i, next(hosts), gateway, W1_SUBNET.prefixlen, ports))
    return {'workload': 'bridge_network', 'networks': [{
        'name': W1_NETWORK, 'bridge': W1_BRIDGE, 'subnet': str(W1_SUBNET), 'gateway': str(gateway),
        'prefix': W1_SUBNET.prefixlen, 'endpoints': endpoints}]}


def report(n):
    """Workload 4: one bridge network of n endpoints with icc off (no
    published ports), and every ordered pair of endpoints probed: n*(n-1)
    ICMP checks that must all be blocked."""
    spec = bridge_network(n)
    spec['workload'] = 'report'
    for net in spec['networks']:
        net['icc'] = False
        for ep in net['endpoints']:
            ep['ports'] = []
    eps = spec['networks'][0]['endpoints']
    spec['checks'] = [{'from': a['name'], 'to': b['ip'], 'expect': False} for a in eps for b in eps if a is not b]
    return spec


def tenant_subnet(t):
    """The t-th /28 of 198.19.0.0/16 (5 endpoints and a gateway fit)."""
    return ipaddress.ip_network('%s/28' % (W2_BASE.network_address + 16 * t))


def tenants(t_count, extra=0):
    """Workload 2: t_count tenants of 5 endpoints (+extra on tenant 0), isolated."""
    networks = []
    for t in range(t_count):
        subnet = tenant_subnet(t)
        hosts = subnet.hosts()
        gateway = next(hosts)
        count = W2_ENDPOINTS + (extra if t == 0 else 0)
        endpoints = [_ep('t%de%d' % (t, i), 'vtt%d-t%de%d' % (t, t, i), next(hosts), gateway, subnet.prefixlen)
                     for i in range(count)]
        networks.append({'name': 't%d' % t, 'bridge': 'tn-t%d' % t, 'subnet': str(subnet), 'gateway': str(gateway),
                         'prefix': subnet.prefixlen, 'endpoints': endpoints})
    return {'workload': 'tenant_networks', 'networks': networks}


def vxlan(p_count, extra=0):
    """Workload 3: one VXLAN device with p_count (+extra) flood-list peers."""
    peers = [str(ipaddress.ip_address(W3_PEER_BASE + i)) for i in range(p_count + extra)]
    return {'workload': 'vxlan', 'device': W3_DEVICE, 'vni': W3_VNI, 'underlay': W3_UNDERLAY[0],
            'local': W3_UNDERLAY[2].split('/', maxsplit=1)[0], 'peers': peers}


def role_vars(spec, state='present'):
    """Extra vars of bench/playbooks for this spec (ours)."""
    if spec['workload'] == 'vxlan':
        return {'bench_vxlan': {'name': spec['device'], 'vni': spec['vni'], 'dev': spec['underlay'],
                                'local': spec['local']},
                'bench_peers': spec['peers'], 'bench_state': state}
    networks = []
    for net in spec['networks']:
        eps = []
        for ep in net['endpoints']:
            entry = {'name': ep['name']}
            if ep['ports']:
                entry['ports'] = ep['ports']
            eps.append(entry)
        entry = {'name': net['name'], 'subnet': net['subnet'], 'state': state, 'endpoints': eps}
        if net.get('icc') is False:
            entry['icc'] = False
        networks.append(entry)
    out = {'bench_networks': networks}
    if spec.get('checks'):
        out['bench_checks'] = spec['checks']
    return out
