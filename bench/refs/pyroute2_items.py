# -*- coding: utf-8 -*-
# Copyright: contributors to hostnet.provision
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Reference: pyroute2 driven item by item from one Python process.

What a person writes with pyroute2's public API and no engine: for every
item, look it up and create it (pyroute2.netns.create, IPRoute in the root
namespace, a NetNS socket per endpoint namespace). Published ports and
isolation go through one ``nft -f`` transaction, the same file as the ip
floor uses (pyroute2 has no practical nftables API).

Usage: python pyroute2_items.py SPEC.json PHASE [NFT_FILE]
PHASE: converge (create what is missing; also used for the one-item change),
check (look every item up, change nothing), teardown.
Prints a JSON line: {"requests": N, "created": N}.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

from pyroute2 import IPRoute, NetNS, netns
from pyroute2.netlink.exceptions import NetlinkError

_ZERO_MAC = '00:00:00:00:00:00'


class Counter:
    requests = 0
    created = 0


def _lookup(ipr, name):
    Counter.requests += 1
    found = ipr.link_lookup(ifname=name)
    return found[0] if found else None


def _call(fn, *args, **kwargs):
    Counter.requests += 1
    return fn(*args, **kwargs)


def bridges(spec, ipr, create):
    indexes = {}
    for net in spec['networks']:
        index = _lookup(ipr, net['bridge'])
        if index is None and create:
            _call(ipr.link, 'add', ifname=net['bridge'], kind='bridge')
            index = _lookup(ipr, net['bridge'])
            _call(ipr.addr, 'add', index=index, address=net['gateway'], prefixlen=net['prefix'])
            _call(ipr.link, 'set', index=index, state='up')
            Counter.created += 1
        indexes[net['name']] = index
    return indexes


def endpoint(ipr, ep, bridge_index, prefix, create):
    named = set(netns.listnetns())
    Counter.requests += 1
    if ep['name'] not in named:
        if not create:
            return
        netns.create(ep['name'])
        Counter.created += 1
    host = _lookup(ipr, ep['host_if'])
    if host is None and create:
        _call(ipr.link, 'add', ifname=ep['host_if'], kind='veth', peer={'ifname': 'eth0', 'net_ns_fd': ep['name']})
        host = _lookup(ipr, ep['host_if'])
        _call(ipr.link, 'set', index=host, master=bridge_index, state='up')
        Counter.created += 1
    with NetNS(ep['name']) as ns:
        peer = _lookup(ns, 'eth0')
        if peer is None:
            return
        addrs = [a.get_attr('IFA_ADDRESS') for a in _call(ns.get_addr, index=peer, family=socket.AF_INET)]
        if ep['ip'] not in addrs and create:
            _call(ns.link, 'set', index=1, state='up')
            _call(ns.addr, 'add', index=peer, address=ep['ip'], prefixlen=prefix)
            _call(ns.link, 'set', index=peer, state='up')
            Counter.created += 1
        routes = _call(ns.get_default_routes, family=socket.AF_INET)
        if not routes and create:
            _call(ns.route, 'add', dst='0.0.0.0/0', gateway=ep['gateway'])
            Counter.created += 1


def teardown(spec, ipr):
    named = set(netns.listnetns())
    for net in spec['networks']:
        for ep in net['endpoints']:
            host = _lookup(ipr, ep['host_if'])
            if host is not None:
                _call(ipr.link, 'del', index=host)
            if ep['name'] in named:
                netns.remove(ep['name'])
                Counter.requests += 1
        index = _lookup(ipr, net['bridge'])
        if index is not None:
            _call(ipr.link, 'del', index=index)


def vxlan(spec, ipr, phase):
    index = _lookup(ipr, spec['device'])
    if phase == 'teardown':
        if index is not None:
            _call(ipr.link, 'del', index=index)
        return
    if index is None:
        _call(ipr.link, 'add', ifname=spec['device'], kind='vxlan', vxlan_id=spec['vni'], vxlan_local=spec['local'],
              vxlan_link=_lookup(ipr, spec['underlay']), vxlan_port=4789, vxlan_learning=0)
        index = _lookup(ipr, spec['device'])
        _call(ipr.link, 'set', index=index, state='up')
        Counter.created += 1
    # Item by item: append every peer (the kernel takes an existing one as a no-op).
    for peer in spec['peers']:
        _call(ipr.fdb, 'append', ifindex=index, lladdr=_ZERO_MAC, dst=peer)
    for peer in spec.get('remove', []):
        try:
            _call(ipr.fdb, 'del', ifindex=index, lladdr=_ZERO_MAC, dst=peer)
        except NetlinkError:
            pass


def main():
    spec = json.load(open(sys.argv[1]))
    phase = sys.argv[2]
    nft = sys.argv[3] if len(sys.argv) > 3 else None
    with IPRoute() as ipr:
        if spec['workload'] == 'vxlan':
            vxlan(spec, ipr, phase)
        elif phase == 'teardown':
            teardown(spec, ipr)
            if nft:
                subprocess.run(['nft', 'delete', 'table', 'inet', 'bench'], check=False)
        else:
            create = phase == 'converge'
            if create:
                with open('/proc/sys/net/ipv4/ip_forward', 'w') as fh:
                    fh.write('1\n')
            indexes = bridges(spec, ipr, create)
            for net in spec['networks']:
                for ep in net['endpoints']:
                    endpoint(ipr, ep, indexes[net['name']], net['prefix'], create)
            if nft and create:
                subprocess.run(['nft', '-f', nft], check=True)
    print(json.dumps({'requests': Counter.requests, 'created': Counter.created}))
    return 0


if __name__ == '__main__':
    os.environ.setdefault('PYTHONUNBUFFERED', '1')
    sys.exit(main())
