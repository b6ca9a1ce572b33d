#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to hostnet.provision
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: portmap
short_description: Publish host ports to namespace endpoints (DNAT), like docker run -p
version_added: 1.0.0
description:
  - Publishes TCP, UDP or SCTP ports of the host (one port, a range, or a free port chosen by the module)
    to an endpoint address behind a bridge, as Docker's C(-p [ip:]hostPort:containerPort) and C(-P) do.
  - Mappings are elements of named maps in the nftables table C(inet hostnet), which the collection owns
    entirely; all mappings of a namespace cost one map lookup per new connection. Each change is one atomic
    nftables transaction. No other table is read for writing or changed.
  - A published port is reachable from outside the host, from other namespaces, from endpoints of the same
    bridge and from the destination itself (hairpin NAT), and from the host itself, through its own addresses
    and through V(127.0.0.1) when the destination is behind a bridge managed by M(hostnet.provision.bridge).
  - When a mapping is changed or removed, and when a UDP mapping is added, the conntrack entries to its host
    ports are flushed, so existing flows (UDP in particular) do not keep going to the old destination, or
    nowhere.
  - Many mappings per call, with the states of Ansible's resource modules.
author:
  - hostnet.provision contributors (@hostnet-provision)
extends_documentation_fragment:
  - hostnet.provision.resource
options:
  config:
    description:
      - The mappings. A mapping is identified by O(config[].netns), O(config[].protocol),
        O(config[].host_ip) and O(config[].host_port); with O(config[].host_port=auto) by its
        O(config[].destination) and O(config[].port) instead of the port that was chosen.
      - Two mappings may not share a host port of one protocol and address family, unless both have
        different explicit O(config[].host_ip) values. A clash is refused before anything changes, naming
        both mappings.
    type: list
    elements: dict
    default: []
    suboptions:
      protocol:
        description: Transport protocol.
        type: str
        choices: [tcp, udp, sctp]
        default: tcp
      host_port:
        description:
          - The published port of the host. An integer; a range V(8000-8010) (each port goes to the same
            offset of a range of the same size starting at O(config[].port)); or V(auto).
          - V(auto) chooses a free port in 49152-65535 (not used by another mapping of the protocol nor by a
            bound socket in the namespace) the first time, and keeps it on every later run; the map element
            records the choice. The chosen port is returned as RV(after[].assigned_port).
        type: raw
        required: true
      host_ip:
        description:
          - Publish only on this host address (IPv4 or IPv6), like C(-p 127.0.0.1:8080:80).
          - Omitted (or V(0.0.0.0) / V(::)), the port is published on every address of the destination's
            address family.
          - V(::1) is refused, because the Linux kernel does not DNAT IPv6 loopback traffic to another host.
          - An address the namespace does not have is refused before any change (the mapping would never match);
            in check mode it is a warning, as an earlier task of the play may add it.
        type: str
      destination:
        description:
          - Address of the endpoint the traffic goes to (IPv4 or IPv6, the same family as
            O(config[].host_ip)). Required to publish; with O(state=deleted) it may be omitted unless
            O(config[].host_port=auto).
        type: str
      destination6:
        description:
          - The IPv6 address of a dual-stack endpoint. Without O(config[].host_ip), the entry then publishes
            the port over both families, IPv4 to O(config[].destination) and IPv6 to this address (two
            mappings, listed separately in RV(after) and RV(gathered)).
          - Not with O(config[].host_ip) nor O(config[].host_port=auto).
        type: str
      port:
        description:
          - The endpoint's port; for a range, the first port of a range of the same size. Required to publish.
        type: int
      allow_listening:
        description:
          - A host port on which a process of the namespace listens (TCP) or has a bound socket (UDP, SCTP), on
            an address the mapping covers, is refused before any change, naming the process and its pid
            (for example C(host port 8080/tcp is held by nginx (pid 123\))), because the mapping would take
            that process's connections.
          - V(true) publishes it anyway (with a warning).
        type: bool
        default: false
      allow_foreign_dnat:
        description:
          - A host port that a rule of another nftables table (not the collection's, for example Docker's
            C(ip nat DOCKER) chain) already DNATs or redirects is refused before any change, naming the
            table and chain; a rule is counted when it matches that destination port and the mapping's
            address family and O(config[].host_ip). A rule limited to other destination addresses (C(ip daddr
            198.51.100.7)) does not take a mapping on another O(config[].host_ip); one without a destination
            address match, or whose address match cannot be read, takes every address. A mapping without
            O(config[].host_ip) covers every address, so any such rule of its family counts.
          - V(true) publishes it anyway (with a warning); whichever rule runs first takes the connections.
        type: bool
        default: false
      bridge:
        description:
          - For check mode on a host where an earlier task of the same play makes the destination's bridge
            and its ports (a role does this) - the bridge the destination will be behind and the names of
            its managed ports, so that check mode predicts the hairpin mode those ports get.
          - While that bridge does not exist yet, check mode also takes it that the task making it turns
            forwarding on for its address families (M(hostnet.provision.bridge) with O(enable_forwarding)),
            and predicts no forwarding change of its own.
          - Used in check mode only, and only for what the kernel does not show yet; a real run always reads
            the bridge and its ports from the kernel. Not part of the mapping (not returned, not compared).
        type: dict
        suboptions:
          name:
            description: The bridge's name.
            type: str
            required: true
          ports:
            description: Its managed ports (veth host ends) once the earlier tasks have made them.
            type: list
            elements: str
            default: []
      netns:
        description:
          - Namespace whose nftables table holds the mapping (the namespace that plays the host, where the
            bridge of the destination lives). A name under C(/run/netns), a namespace file path, or
            C(pid:PID). Default is the namespace the module runs in.
        type: str
      assigned_port:
        description:
          - Read-only; returned in RV(after) and RV(gathered) (the chosen port of an V(auto) mapping, the first
            host port otherwise). Ignored in input, so a gathered list can be fed back unchanged.
        type: int
  enable_forwarding:
    description:
      - Published ports are forwarded to the endpoint, so IP forwarding must be on in the namespace
        (C(net.ipv4.ip_forward) for IPv4 mappings, C(net.ipv6.conf.all.forwarding) for IPv6).
      - V(false) (the default) refuses, before any change, to publish while it is off, naming the sysctl;
        forwarding is a namespace-wide setting that this module does not change silently.
      - V(true) turns it on when needed (shown as an operation, also in check mode). It is never turned
        off by this module. Turning on IPv6 forwarding makes interfaces with C(accept_ra=1) ignore
        router advertisements (use C(accept_ra=2) on an uplink that needs them). To keep forwarding across
        reboots use a sysctl file (for example with M(ansible.posix.sysctl)).
    type: bool
    default: false
notes:
  - Requires nftables (libnftables) on the target; Debian/Ubuntu package C(nftables) (library C(libnftables1)),
    RHEL package C(nftables). The module calls the library through its JSON interface; it never runs C(nft),
    C(iptables) or C(conntrack).
  - Localhost access (the host connecting to V(127.0.0.1:host_port), IPv4) is DNAT in the output hook. It
    does not need C(route_localnet) - the flow's addresses are swapped around the kernel's routing decisions by
    rules in the same table (see the collection's docs/nftables.md), so a flushed ruleset removes the feature
    and never opens the host's 127.0.0.1 to the endpoints. Packets to 127.0.0.0/8 arriving on any interface but
    C(lo) are dropped as well.
  - V([::1]:host_port) cannot reach an IPv6 mapping (the kernel never routes ::1 elsewhere); use the host's
    own IPv6 address.
  - Endpoints of a bridge managed with O(hostnet.provision.bridge#module:config[].masquerade=true) are
    reachable from outside only through published ports; direct connections to their addresses are dropped.
  - A base chain of another nftables table on the forward hook with policy drop (for example
    C(ip filter FORWARD) of a firewall or of Docker) drops published traffic unless one of its rules accepts
    DNATed connections (C(ct status dnat accept)). The module then warns on every run (a warning starting
    with C(WARNING:)) and lists the chain in RV(firewall); it does not change other tables.
  - With C(br_netfilter) loaded (Docker hosts), an endpoint reaching its own published port goes back out of
    its own bridge port; the module therefore turns on hairpin mode on the ports of the destination's
    bridge that the collection created (shown as an operation). It is not turned off again.
  - If another firewall (Docker, firewalld, an C(iptables) FORWARD policy of DROP) drops forwarded traffic,
    published ports need an accept rule there; see the collection's docs/nftables.md.
seealso:
  - module: hostnet.provision.bridge
  - module: hostnet.provision.veth
'''

EXAMPLES = r'''
- name: Publish a web server, like docker run -p 8080:80
  hostnet.provision.portmap:
    enable_forwarding: true
    config:
      - host_port: 8080
        destination: 198.51.100.10
        port: 80

- name: Only on localhost, a UDP range, and a port chosen by the module
  hostnet.provision.portmap:
    config:
      - host_ip: 127.0.0.1
        host_port: 5432
        destination: 198.51.100.11
        port: 5432
      - protocol: udp
        host_port: 10000-10010
        destination: 198.51.100.12
        port: 20000
      - host_port: auto
        destination: 198.51.100.13
        port: 443
  register: published

- name: Show the port chosen for the last mapping
  ansible.builtin.debug:
    msg: "{{ published.after | selectattr('host_port', 'equalto', 'auto') | map(attribute='assigned_port') }}"

- name: IPv6
  hostnet.provision.portmap:
    config:
      - host_port: 8443
        destination: 2001:db8:100::10
        port: 443

- name: Exactly these mappings in this namespace, every other one removed
  hostnet.provision.portmap:
    state: overridden
    config:
      - host_port: 8080
        destination: 198.51.100.10
        port: 80

- name: Unpublish (conntrack entries of the port are flushed)
  hostnet.provision.portmap:
    state: deleted
    config:
      - host_port: 8080
        destination: 198.51.100.10
'''

RETURN = r'''
commands:
  description: The operations made (in check mode, those that would be made), in order.
  returned: always
  type: list
  elements: str
  sample: ['nftables: publish udp *:5353 -> 198.51.100.10:53', 'flush conntrack entries to udp *:5353']
before:
  description: The changed mappings as they were, in the shape of O(config).
  returned: when O(state) is not V(gathered)
  type: list
  elements: dict
  sample: []
after:
  description:
    - The changed mappings as they are now (read back from the nftables maps), in the shape of O(config),
      with RV(after[].assigned_port).
  returned: when O(state) is not V(gathered)
  type: list
  elements: dict
  contains:
    assigned_port:
      description: The host port (the first of a range; the chosen one for V(auto)).
      type: int
      returned: always
      sample: 49152
  sample: [{'netns': null, 'protocol': 'tcp', 'host_ip': null, 'host_port': 'auto', 'destination': '198.51.100.13',
            'port': 443, 'assigned_port': 49152}]
firewall:
  description:
    - Base chains of other nftables tables on the forward hook whose policy drop would drop the published
      traffic (no rule of theirs accepts DNATed connections), per namespace and address family. Reported on
      every run, also when nothing changed.
  returned: when O(state) is not V(gathered)
  type: list
  elements: dict
  sample: [{'netns': null, 'family': 'ipv4', 'chain': 'ip filter FORWARD', 'policy': 'drop'}]
gathered:
  description: The published ports of the namespaces in scope, in the shape of O(config).
  returned: when O(state=gathered)
  type: list
  elements: dict
  sample: [{'netns': null, 'protocol': 'tcp', 'host_ip': null, 'host_port': 8080, 'destination': '198.51.100.10',
            'port': 80, 'assigned_port': 8080}]
'''

import functools

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.hostnet.provision.plugins.module_utils import _specs
from ansible_collections.hostnet.provision.plugins.module_utils._adapter import RUN_ARGS, STATE_ARG, run_resource_module
from ansible_collections.hostnet.provision.plugins.module_utils._kind_portmap import PortmapKind


def main():
    module = AnsibleModule(
        argument_spec=dict(
            config=dict(type='list', elements='dict', default=[], options=_specs.PORTMAP),
            state=STATE_ARG,
            **RUN_ARGS,
            enable_forwarding=dict(type='bool', default=False),
        ),
        supports_check_mode=True,
    )
    run_resource_module(module, functools.partial(PortmapKind, enable_forwarding=module.params['enable_forwarding']))


if __name__ == '__main__':
    main()
