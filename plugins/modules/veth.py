#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to hostnet.provision
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: veth
short_description: veth pairs that connect a namespace to a bridge, like a container endpoint
version_added: 1.0.0
description:
  - Creates, changes and deletes veth pairs. The host end stays in O(config[].netns) and can be
    enslaved to a bridge; the peer end is created directly inside its namespace under its final name
    (for example V(eth0)), gets its addresses, a default route via O(config[].peer.gateway) and more
    routes, and both ends are brought up. This is what Docker does for every container on a bridge.
  - Either end can instead be a port of a bridge - O(config[].bridge) for the host end,
    O(config[].peer.bridge) for the peer end - so that one pair joins two bridges directly, in the same
    namespace or in two.
  - Changing the peer's name or namespace needs a new pair; the plan and the diff show it as a
    delete and a create.
  - Pairs the collection creates carry an interface alias that starts with C(hostnet.provision);
    any other link with a requested name is refused and left alone.
  - Many pairs per call, with the states of Ansible's resource modules.
author:
  - hostnet.provision contributors (@hostnet-provision)
extends_documentation_fragment:
  - hostnet.provision.resource
options:
  config:
    description: The veth pairs, each named by its host end.
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: Interface name of the host end (at most 15 bytes; no C(/), C(:) or whitespace).
        type: str
        required: true
      allow_route_overlap:
        description:
          - Before any change, a new address's subnet or a new route is refused when it overlaps a route of the
            host that the collection did not make (in any routing table, VPN and policy tables included), the
            C(from)/C(to) selector of a policy routing rule, the address the controller connects from
            (C(SSH_CONNECTION)) or the gateway of the host's default route; the message names both.
          - Routes without a gateway on the link itself (either end) and of the bridge the host end is attached to are no clash.
            Addresses that go into another namespace are also checked against the routing of the namespace the
            module runs in. Addresses and routes already in place are not checked again.
          - V(true) skips this check for this resource, for the rare intended overlap.
        type: bool
        default: false
      netns:
        description:
          - Namespace of the host end; a name under C(/run/netns), an absolute path of a namespace
            file, or C(pid:PID). Default is the namespace the module runs in.
        type: str
      mtu:
        description: MTU of the host end.
        type: int
      mac:
        description: MAC address of the host end.
        type: str
      addresses:
        description: Addresses with prefix length on the host end (usually none).
        type: list
        elements: str
      bridge:
        description:
          - Bridge in the host end's namespace to enslave the host end to. It must exist.
          - With O(state=replaced) or O(state=overridden), leaving it unset detaches the host end.
        type: str
      bridge_icc:
        description:
          - For check mode on a host where an earlier task of the same play makes O(config[].bridge) or
            changes its C(icc) (a role does this) - the C(icc) that bridge will have, so that check mode
            predicts the bridge's icc entry for this port (kernels without nftables bridge meta support list
            the ports of a bridge with C(icc=false)).
          - Used in check mode only; a real run reads the bridge's policy from the nftables tables. Not part of
            the pair (not returned, not compared).
        type: bool
      peer:
        description:
          - The other end, usually inside an endpoint namespace.
          - Required to create a pair; may be left out to change or delete an existing one by its host end.
        type: dict
        suboptions:
          name:
            description: Interface name of the peer end inside its namespace (for example V(eth0)).
            type: str
            required: true
          netns:
            description:
              - Namespace of the peer end (name, absolute path, or C(pid:PID)); it must exist.
                Default is the namespace the module runs in.
            type: str
          mtu:
            description: MTU of the peer end.
            type: int
          mac:
            description: MAC address of the peer end.
            type: str
          addresses:
            description: Addresses with prefix length, IPv4 and/or IPv6.
            type: list
            elements: str
          gateway:
            description:
              - Default gateway(s) of the namespace through this end, at most one IPv4 and one IPv6.
              - Each must lie inside one of O(config[].peer.addresses) (IPv6 link-local gateways excepted), and
                be another host there, not the end's own address nor an IPv4 subnet's network or broadcast
                address.
            type: list
            elements: str
          bridge:
            description:
              - Bridge in the peer end's namespace to enslave the peer end to, so that the pair joins it to the
                host end's bridge (or namespace). It must exist, and may not be the host end's bridge in the same
                namespace (a loop). The peer end then takes no addresses, gateway or routes.
              - With O(state=replaced) or O(state=overridden), leaving it unset detaches the peer end.
            type: str
          routes:
            description: More routes through the peer end.
            type: list
            elements: dict
            suboptions:
              dest:
                description: Destination network (V(203.0.113.0/24)) or V(default).
                type: str
                required: true
              via:
                description: Next hop.
                type: str
              metric:
                description: Route metric.
                type: int
'''

EXAMPLES = r'''
- name: Two endpoints on a bridge, dual stack
  hostnet.provision.veth:
    config:
      - name: web-h
        bridge: hn-br0
        peer:
          name: eth0
          netns: web
          addresses: [198.51.100.10/24, 2001:db8:100::10/64]
          gateway: [198.51.100.1, 2001:db8:100::1]
      - name: db-h
        bridge: hn-br0
        mtu: 1450
        peer:
          name: eth0
          netns: db
          mtu: 1450
          addresses: [198.51.100.11/24]
          gateway: [198.51.100.1]
          routes:
            - dest: 203.0.113.0/24
              via: 198.51.100.254

- name: Keep exactly these pairs in this namespace (others the collection made are deleted)
  hostnet.provision.veth:
    config:
      - name: web-h
        bridge: hn-br0
        peer: {name: eth0, netns: web, addresses: [198.51.100.10/24], gateway: [198.51.100.1]}
    state: overridden

- name: Join two bridges directly with one pair (br-left here, br-right in namespace router)
  hostnet.provision.veth:
    config:
      - name: join-l
        bridge: br-left
        peer: {name: join-r, netns: router, bridge: br-right}

- name: Delete one pair (its peer goes with it)
  hostnet.provision.veth:
    config:
      - name: db-h
    state: deleted
'''

RETURN = r'''
commands:
  description: The kernel operations made (in check mode, those that would be made), in order.
  returned: always
  type: list
  elements: str
  sample: ['create veth web-h with peer eth0 in netns web', 'add address 198.51.100.10/24 to eth0',
           'add route default via 198.51.100.1 on eth0']
before:
  description: The changed pairs as they were, in the shape of O(config).
  returned: when O(state) is not V(gathered)
  type: list
  elements: dict
  sample: []
after:
  description:
    - The changed pairs as they are now (read back from the kernel), in the shape of O(config).
    - In check mode, the prediction; values the kernel would choose (random MACs) are V(null) there.
  returned: when O(state) is not V(gathered)
  type: list
  elements: dict
  sample: [{'name': 'web-h', 'netns': null, 'mtu': 1500, 'mac': '52:e1:3a:10:00:01', 'addresses': [],
            'bridge': 'hn-br0', 'peer': {'name': 'eth0', 'netns': 'web', 'mtu': 1500,
            'mac': '52:e1:3a:10:00:02', 'addresses': ['198.51.100.10/24'], 'gateway': ['198.51.100.1'],
            'routes': [], 'bridge': null}}]
gathered:
  description: The pairs the collection manages (host ends in the namespaces looked at), in the shape of O(config).
  returned: when O(state=gathered)
  type: list
  elements: dict
  sample: []
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.hostnet.provision.plugins.module_utils import _specs
from ansible_collections.hostnet.provision.plugins.module_utils._adapter import RUN_ARGS, STATE_ARG, run_resource_module
from ansible_collections.hostnet.provision.plugins.module_utils._kind_veth import VethKind


def main():
    module = AnsibleModule(
        argument_spec=dict(
            config=dict(type='list', elements='dict', default=[], options=_specs.VETH),
            state=STATE_ARG,
            **RUN_ARGS,
        ),
        supports_check_mode=True,
    )
    run_resource_module(module, VethKind)


if __name__ == '__main__':
    main()
