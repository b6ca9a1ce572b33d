# -*- coding: utf-8 -*-
# Copyright: contributors to hostnet.provision
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The ``config`` argument specs of the resource modules, in one place.

Private to the hostnet.provision collection. Each module builds its
AnsibleModule from these, and the ``network`` module runs the configs it
derives through the very same specs (defaults, types, choices) before it
hands them to the engine, so a resource made by ``network`` is exactly the
one the single-purpose module would make from the same entry.
"""

from __future__ import annotations

__all__ = ['NETNS', 'BRIDGE', 'VETH', 'PORTMAP', 'DNS', 'DNS_HOSTS']

NETNS = dict(
    name=dict(type='str', required=True),
    pid=dict(type='int'),
    sysctls=dict(type='dict'),
)

BRIDGE = dict(
    name=dict(type='str', required=True),
    allow_route_overlap=dict(type='bool', default=False),
    netns=dict(type='str'),
    addresses=dict(type='list', elements='str'),
    mtu=dict(type='int'),
    mac=dict(type='str'),
    stp=dict(type='bool'),
    forward_delay=dict(type='int'),
    vlan_filtering=dict(type='bool'),
    masquerade=dict(type='bool'),
    icc=dict(type='bool'),
    isolated=dict(type='bool'),
    host_access=dict(type='bool'),
    dns_access=dict(type='bool'),
    reach=dict(type='list', elements='str'),
    allow=dict(type='list', elements='dict', options=dict(
        name=dict(type='str', required=True),
        to=dict(type='str', required=True),
        protocol=dict(type='str', choices=['tcp', 'udp', 'sctp', 'icmp']),
        ports=dict(type='list', elements='raw'),
    )),
)

VETH = dict(
    name=dict(type='str', required=True),
    allow_route_overlap=dict(type='bool', default=False),
    netns=dict(type='str'),
    mtu=dict(type='int'),
    mac=dict(type='str'),
    addresses=dict(type='list', elements='str'),
    bridge=dict(type='str'),
    bridge_icc=dict(type='bool'),
    peer=dict(type='dict', options=dict(
        name=dict(type='str', required=True),
        netns=dict(type='str'),
        mtu=dict(type='int'),
        mac=dict(type='str'),
        addresses=dict(type='list', elements='str'),
        gateway=dict(type='list', elements='str'),
        bridge=dict(type='str'),
        routes=dict(type='list', elements='dict', options=dict(
            dest=dict(type='str', required=True),
            via=dict(type='str'),
            metric=dict(type='int'),
        )),
    )),
)

PORTMAP = dict(
    protocol=dict(type='str', default='tcp', choices=['tcp', 'udp', 'sctp']),
    host_port=dict(type='raw', required=True),
    host_ip=dict(type='str'),
    destination=dict(type='str'),
    destination6=dict(type='str'),
    port=dict(type='int'),
    netns=dict(type='str'),
    bridge=dict(type='dict', options=dict(
        name=dict(type='str', required=True),
        ports=dict(type='list', elements='str', default=[]),
    )),
    assigned_port=dict(type='int'),
    allow_listening=dict(type='bool', default=False),
    allow_foreign_dnat=dict(type='bool', default=False),
)

DNS_HOSTS = dict(type='list', elements='dict', default=[], options=dict(
    address=dict(type='str', required=True), names=dict(type='list', elements='str', required=True)))

DNS = dict(
    name=dict(type='str', required=True),
    state=dict(type='str', choices=['present', 'absent'], default='present'),
    resolver=dict(type='bool', default=True),
    listen=dict(type='list', elements='str', default=[]),
    domain=dict(type='str'),
    upstreams=dict(type='list', elements='str', default=[]),
    resolv_file=dict(type='path', default='/etc/resolv.conf'),
    hosts=DNS_HOSTS,
    endpoints=dict(type='list', elements='dict', default=[], options=dict(
        netns=dict(type='str', required=True),
        nameservers=dict(type='list', elements='str', default=[]),
        search=dict(type='list', elements='str', default=[]),
        options=dict(type='list', elements='str', default=[]),
        hosts=DNS_HOSTS,
        keep=dict(type='bool', default=False),
    )),
)
