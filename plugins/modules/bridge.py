#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to hostnet.provision
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: bridge
short_description: Linux bridges with gateway addresses, like docker0 and user-defined networks
version_added: 1.0.0
description:
  - Creates, changes and deletes Linux bridges in any network namespace, with their gateway
    addresses (IPv4 and IPv6), MTU, MAC and STP/VLAN options, as Docker's bridge driver does for
    C(docker0) (C(--bip), C(--mtu)) and for C(docker network create).
  - Bridges the collection creates carry the interface alias C(hostnet.provision); any other link
    with a requested name is refused and left alone.
  - Each bridge can carry a network policy, kept in the nftables tables C(inet hostnet) and C(bridge hostnet)
    that the collection owns entirely (see the collection's docs/nftables.md) - masquerade for egress,
    inter-endpoint communication (ICC), isolation from other bridges and access to the host - enforced
    without C(br_netfilter).
  - A bridge with addresses is also registered in those tables, which makes ports published with
    M(hostnet.provision.portmap) reachable from the bridge's own endpoints (hairpin NAT). Without nftables
    installed this registration is skipped with a warning.
  - C(route_localnet) is never turned on (the host's V(127.0.0.1) reaches published ports without it, see
    M(hostnet.provision.portmap)); where an earlier version of the collection turned it on for one of its
    bridges, the module turns it off again.
  - Bridges with addresses are isolated from each other (forwarded new connections between two of them are
    dropped) unless O(config[].reach) allows it.
  - Deleting a bridge (also through O(state=overridden)) removes its elements from the tables, and nothing else.
  - Many bridges per call, with the states of Ansible's resource modules.
author:
  - hostnet.provision contributors (@hostnet-provision)
extends_documentation_fragment:
  - hostnet.provision.resource
options:
  config:
    description: The bridges.
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: Interface name of the bridge (at most 15 bytes; no C(/), C(:) or whitespace).
        type: str
        required: true
      allow_route_overlap:
        description:
          - Before any change, a new address's subnet or a new route is refused when it overlaps a route of the
            host that the collection did not make (in any routing table, VPN and policy tables included), the
            C(from)/C(to) selector of a policy routing rule, the address the controller connects from
            (C(SSH_CONNECTION)) or the gateway of the host's default route; the message names both.
          - Routes without a gateway on the bridge itself are no clash. Addresses already in place are not checked
            again.
          - V(true) skips this check for this resource, for the rare intended overlap.
        type: bool
        default: false
      netns:
        description:
          - Namespace the bridge lives in; a name under C(/run/netns), an absolute path of a namespace
            file, or C(pid:PID). Default is the namespace the module runs in.
        type: str
      addresses:
        description:
          - Gateway addresses with prefix length, IPv4 or IPv6 (V(198.51.100.1/24), V(2001:db8:1::1/64)).
          - IPv6 link-local addresses chosen by the kernel are not listed and not managed.
        type: list
        elements: str
      mtu:
        description: MTU of the bridge.
        type: int
      mac:
        description: MAC address of the bridge (otherwise the kernel chooses one).
        type: str
      stp:
        description: Run the Spanning Tree Protocol.
        type: bool
      forward_delay:
        description:
          - Forwarding delay in hundredths of a second, as C(ip link) takes it (V(1500) is 15 s, the
            kernel's default). With STP on the kernel accepts 200 to 3000.
        type: int
      vlan_filtering:
        description: Filter frames by 802.1Q VLAN on the bridge ports.
        type: bool
      masquerade:
        description:
          - Source NAT (masquerade) of the bridge's subnets for traffic leaving by any other interface,
            like Docker's default bridge networks. Traffic to the bridge's own subnets and to multicast or
            broadcast addresses is not masqueraded. Needs at least one address (IPv4 subnets are masqueraded
            by IPv4, IPv6 subnets by IPv6).
          - Makes the bridge a NAT network - its endpoints are reachable from other interfaces only through
            ports published with M(hostnet.provision.portmap); new connections to their addresses from outside
            ("direct access") are dropped. Replies to connections the endpoints opened pass.
          - Needs IP forwarding in the namespace, see O(enable_forwarding).
          - When not given, a new bridge gets V(false) and an existing one keeps its setting.
        type: bool
      icc:
        description:
          - Inter-container communication. V(false) drops IPv4 and IPv6 traffic between the ports of this bridge
            (in the C(bridge) family table, so it holds without C(br_netfilter)), while ARP, IPv6 neighbour
            discovery and MLD keep working and endpoints still reach the gateway (the bridge itself) and,
            through it, published ports (also their own bridge's, as with Docker's C(--icc=false)) and the
            networks O(config[].reach) allows.
          - Traffic an endpoint routes to another endpoint of the bridge through the gateway (a route or a
            neighbour entry pointing at the gateway's MAC) is dropped too, in the forward hook of the C(inet)
            table, by bridge name.
          - On kernels without C(nft_meta_bridge) (C(CONFIG_NFT_BRIDGE_META); Debian, Ubuntu and RHEL kernels have
            it) the bridged path is enforced on the bridge's ports, those it has when this module runs and
            those that M(hostnet.provision.veth) attaches to it later. Ports attached by other tools are covered
            at the next run of this module (a warning says so).
          - When not given, a new bridge gets V(true) and an existing one keeps its setting.
        type: bool
      isolated:
        description:
          - No forwarding between this bridge and any other bridge with O(config[].isolated=true), in either
            direction and for any protocol, even where O(config[].reach) allows it; only O(config[].allow) makes
            exceptions. Traffic to published ports (DNAT) still passes, and so does traffic to other interfaces.
          - Bridges with addresses are isolated from each other by default (see O(config[].reach)); this option
            additionally overrides O(config[].reach) between two isolated bridges.
          - When not given, a new bridge gets V(false) and an existing one keeps its setting.
        type: bool
      reach:
        description:
          - The other bridges (by name, in the same namespace) that this bridge's endpoints may open connections
            to through the host. Replies to those connections pass; the other direction needs this bridge in the
            other bridge's O(config[].reach).
          - As Docker does for every pair of bridge networks, new connections forwarded from one bridge with
            addresses to another one are dropped unless the destination is listed here. Published ports (DNAT)
            pass regardless, and traffic to and from interfaces that are not such bridges (the uplink, other
            tools' bridges) is not affected.
          - Needs at least one address on the bridge. A name may refer to a bridge that does not exist yet.
          - The list is merged with the current one (O(state=merged)) or replaces it (O(state=replaced),
            O(state=overridden)). When not given, a new bridge gets V([]).
        type: list
        elements: str
      allow:
        description:
          - Named exceptions to isolation - new connections this bridge's endpoints may open to another bridge,
            even where O(config[].isolated) or the default isolation between bridges drops them. One direction
            each; replies of an allowed connection pass (conntrack), new connections the other way stay blocked
            unless the other bridge allows them itself.
          - Without O(config[].allow[].protocol) and O(config[].allow[].ports), all traffic to the bridge
            O(config[].allow[].to) is allowed; with a protocol alone, all of that protocol; with ports, those
            ports only (protocol V(tcp) unless given). Everything else stays blocked.
          - Kept as elements of the sets C(allow), C(allow_proto) and C(allow_ports) of C(table inet hostnet),
            each with the exception's name as its comment; a port range is one element per port.
          - Needs at least one address on the bridge. The list is merged with the current one by name
            (O(state=merged)) or replaces it (O(state=replaced), O(state=overridden)). When not given, a new
            bridge gets V([]).
        type: list
        elements: dict
        suboptions:
          name:
            description:
              - Name of the exception (1 to 64 letters, digits, C(.), C(_), C(:) or C(-)), unique on the bridge;
                shown in the plan and kept in the tables.
            type: str
            required: true
          to:
            description: The destination bridge (by name, in the same namespace); may not exist yet.
            type: str
            required: true
          protocol:
            description:
              - Transport protocol; V(icmp) is ICMP and ICMPv6 (takes no ports).
              - Default V(tcp) when O(config[].allow[].ports) is given, else all traffic.
            type: str
            choices: [tcp, udp, sctp, icmp]
          ports:
            description:
              - Destination ports - numbers and ranges V(8000-8010), at most 4096 ports in all.
              - Omitted, every port of O(config[].allow[].protocol) (or all traffic without a protocol).
            type: list
            elements: raw
      host_access:
        description:
          - V(false) drops new connections from the bridge to the host's own addresses (any address of the
            namespace, including the gateway), the way a tenant network is kept away from the host. Replies to
            connections the host opened, DHCP (IPv4 and IPv6) requests, IPv6 router/neighbour solicitations and
            advertisements, MLD and IGMP still pass. ICMP echo (ping) to the gateway is dropped too.
          - When not given, a new bridge gets V(true) and an existing one keeps its setting.
        type: bool
      dns_access:
        description:
          - V(true) lets DNS queries (UDP and TCP port 53) from the bridge to its own addresses (the gateways)
            through although O(config[].host_access=false), for a resolver of the network listening there (the
            role C(bridge_network) sets it for networks with C(dns)). Nothing else to the host passes.
          - When not given, a new bridge gets V(false) and an existing one keeps its setting.
        type: bool
  enable_forwarding:
    description:
      - A bridge with O(config[].masquerade=true) needs IP forwarding in its namespace (C(net.ipv4.ip_forward)
        for IPv4 subnets, C(net.ipv6.conf.all.forwarding) for IPv6 ones).
      - V(false) (the default) refuses, before any change, to configure masquerade while forwarding is off,
        naming the sysctl. V(true) turns it on (shown as an operation, also in check mode); it is never turned
        off by this module. Turning on IPv6 forwarding makes interfaces with C(accept_ra=1) ignore router
        advertisements.
    type: bool
    default: false
notes:
  - The network policy needs nftables (libnftables) on the target; Debian/Ubuntu package C(nftables) (library
    C(libnftables1)), RHEL package C(nftables). It is used through its JSON interface; C(nft) is never run.
  - The module never changes the global FORWARD policy, C(br_netfilter) or its sysctls, nor any table but its
    own. If another firewall drops forwarded traffic (Docker's or firewalld's policies), traffic of these
    bridges needs an accept rule there; see docs/nftables.md.
'''

EXAMPLES = r'''
- name: A docker0-style bridge, dual stack
  hostnet.provision.bridge:
    config:
      - name: hn-br0
        addresses:
          - 198.51.100.1/24
          - 2001:db8:100::1/64
        mtu: 1450

- name: Predict an MTU change without making it (check mode shows the operation)
  hostnet.provision.bridge:
    config:
      - name: hn-br0
        mtu: 1400
  check_mode: true
  diff: true

- name: A bridge inside a router namespace
  hostnet.provision.bridge:
    config:
      - name: br-inner
        netns: router
        addresses: [203.0.113.1/24]
        stp: true
        forward_delay: 400

- name: Tenant networks - NAT to the outside, isolated from each other, no access to the host, no ICC
  hostnet.provision.bridge:
    enable_forwarding: true
    config:
      - name: br-tenant-a
        addresses: [198.51.100.1/24]
        masquerade: true
        isolated: true
        host_access: false
        icc: false
      - name: br-tenant-b
        addresses: [203.0.113.1/24]
        masquerade: true
        isolated: true
        host_access: false

- name: A front end that may open connections to its back end (not the other way round)
  hostnet.provision.bridge:
    enable_forwarding: true
    config:
      - name: br-front
        addresses: [198.51.100.1/25]
        masquerade: true
        reach: [br-back]
      - name: br-back
        addresses: [198.51.100.129/25]
        masquerade: true

- name: Two isolated tenants, web may open TCP 5432 to db (replies pass, nothing else)
  hostnet.provision.bridge:
    enable_forwarding: true
    config:
      - name: br-web
        addresses: [198.51.100.1/25]
        isolated: true
        allow:
          - name: web-to-db
            to: br-db
            protocol: tcp
            ports: [5432]
      - name: br-db
        addresses: [198.51.100.129/25]
        isolated: true

- name: Remove every bridge this collection made in this namespace
  hostnet.provision.bridge:
    state: deleted
'''

RETURN = r'''
commands:
  description: The kernel operations made (in check mode, those that would be made), in order.
  returned: always
  type: list
  elements: str
  sample: ['create bridge hn-br0', 'add address 198.51.100.1/24 to hn-br0']
before:
  description: The changed bridges as they were, in the shape of O(config).
  returned: when O(state) is not V(gathered)
  type: list
  elements: dict
  sample: []
after:
  description:
    - The changed bridges as they are now (read back from the kernel), in the shape of O(config).
    - In check mode, the prediction; values the kernel would choose are V(null) there.
  returned: when O(state) is not V(gathered)
  type: list
  elements: dict
  sample: [{'name': 'hn-br0', 'netns': null, 'addresses': ['198.51.100.1/24'], 'mtu': 1450,
            'mac': '02:42:c6:33:64:01', 'stp': false, 'forward_delay': 1500, 'vlan_filtering': false,
            'masquerade': true, 'icc': true, 'isolated': false, 'host_access': true, 'dns_access': false, 'reach': [], 'allow': []}]
gathered:
  description: The bridges the collection manages, in the shape of O(config).
  returned: when O(state=gathered)
  type: list
  elements: dict
  sample: [{'name': 'hn-br0', 'netns': null, 'addresses': ['198.51.100.1/24'], 'mtu': 1500,
            'mac': '02:42:c6:33:64:01', 'stp': false, 'forward_delay': 1500, 'vlan_filtering': false,
            'masquerade': false, 'icc': true, 'isolated': false, 'host_access': true, 'dns_access': false, 'reach': [], 'allow': []}]
'''

import functools

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.hostnet.provision.plugins.module_utils import _specs
from ansible_collections.hostnet.provision.plugins.module_utils._adapter import RUN_ARGS, STATE_ARG, run_resource_module
from ansible_collections.hostnet.provision.plugins.module_utils._kind_bridge import BridgeKind


def main():
    module = AnsibleModule(
        argument_spec=dict(
            config=dict(type='list', elements='dict', default=[], options=_specs.BRIDGE),
            state=STATE_ARG,
            **RUN_ARGS,
            enable_forwarding=dict(type='bool', default=False),
        ),
        supports_check_mode=True,
    )
    run_resource_module(module, functools.partial(BridgeKind, enable_forwarding=module.params['enable_forwarding']))


if __name__ == '__main__':
    main()
