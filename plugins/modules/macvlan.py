#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to hostnet.provision
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: macvlan
short_description: macvlan endpoints that put a namespace directly on the LAN, like Docker's macvlan driver
version_added: 1.0.0
description:
  - Creates, changes and deletes macvlan links on a parent NIC. Each macvlan has its own MAC address, so
    the namespace it lives in appears as one more device on the parent's LAN. It is created directly
    inside its namespace under its final name (no name clash next to the parent), gets its addresses,
    a default route via O(config[].gateway) and more routes, and is brought up.
  - The parent is a link of the namespace the module runs in. With O(config[].vlan) the macvlan sits on the
    parent's 802.1Q sub-interface instead (Docker's C(parent=eth0.100)); the module creates that
    sub-interface when it is missing and deletes it again together with the last macvlan on it. A
    sub-interface the collection did not create is used as it is and never removed.
  - The mode changes in place, except to or from V(passthru), which the kernel refuses; a new parent, VLAN
    or mode V(passthru) needs a new link, and the plan and the diff show it as a delete and a create.
  - Links the collection creates carry an interface alias that starts with C(hostnet.provision); any other
    link with a requested name is refused and left alone.
  - Many macvlans per call, with the states of Ansible's resource modules.
author:
  - hostnet.provision contributors (@hostnet-provision)
extends_documentation_fragment:
  - hostnet.provision.resource
options:
  config:
    description: The macvlan links.
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description:
          - Interface name of the macvlan inside its namespace (for example V(eth0); at most 15 bytes, no C(/),
            C(:) or whitespace).
        type: str
        required: true
      allow_route_overlap:
        description:
          - Before any change, a new address's subnet or a new route is refused when it overlaps a route of the
            host that the collection did not make (in any routing table, VPN and policy tables included), the
            C(from)/C(to) selector of a policy routing rule, the address the controller connects from
            (C(SSH_CONNECTION)) or the gateway of the host's default route; the message names both.
          - Routes without a gateway on the link itself and of its parent (or 802.1Q link) are no clash.
            Addresses that go into another namespace are also checked against the routing of the namespace the
            module runs in. Addresses and routes already in place are not checked again.
          - V(true) skips this check for this resource, for the rare intended overlap.
        type: bool
        default: false
      netns:
        description:
          - Namespace the macvlan ends up in; a name under C(/run/netns), an absolute path of a namespace
            file, or C(pid:PID); it must exist. Default is the namespace the module runs in.
        type: str
      parent:
        description:
          - The link the macvlan is made on (usually a physical NIC), in the namespace the module runs in.
            It must exist; V(lo), a port of a bridge or bond, and another macvlan are refused.
          - Required to create a macvlan; may be left out to change or delete an existing one.
        type: str
      mode:
        description:
          - How macvlans of one parent reach each other. V(bridge) switches between them inside the host;
            V(vepa) sends everything to the external switch (which must hairpin); V(private) isolates them
            from each other; V(passthru) gives the parent to one single macvlan; V(source) accepts only
            frames from a list of source MAC addresses, which this module does not manage.
          - A V(passthru) macvlan must be the only macvlan on its parent (or on its 802.1Q sub-interface);
            one beside any other, in the call or already there, is refused before any change.
          - V(bridge) when a macvlan is created; an existing macvlan keeps its mode when this is not given.
        type: str
        choices: [bridge, vepa, private, passthru, source]
      vlan:
        description:
          - 802.1Q VLAN id (1 to 4094). The macvlan is made on the sub-interface C(<parent>.<vlan>) of
            O(config[].parent), created when missing. When C(<parent>.<vlan>) is longer than 15 bytes, the
            sub-interface is named with the first bytes of the parent's name, 4 hex digits of a hash of the
            whole parent name and C(.<vlan>).
          - Needs a kernel with 802.1Q support (the C(8021q) module); without it the module fails naming this
            option, before any change.
          - With O(state=merged) an existing macvlan keeps its VLAN when this is not given; with
            O(state=replaced) or O(state=overridden) leaving it unset moves the macvlan onto the parent itself.
        type: int
      mtu:
        description: MTU of the macvlan; at most the parent's MTU. Default is the parent's MTU.
        type: int
      mac:
        description: MAC address of the macvlan (otherwise the kernel chooses a random one).
        type: str
      addresses:
        description: Addresses with prefix length, IPv4 and/or IPv6.
        type: list
        elements: str
      gateway:
        description:
          - Default gateway(s) of the namespace through this link, at most one IPv4 and one IPv6.
          - Each must lie inside one of O(config[].addresses) (IPv6 link-local gateways excepted), and be
            another host there, not the link's own address nor an IPv4 subnet's network or broadcast address.
        type: list
        elements: str
      routes:
        description: More routes through the macvlan.
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
notes:
  - The host cannot reach its own macvlans through the parent (the kernel's macvlan design); give the host a
    macvlan of its own in V(bridge) mode (no O(config[].netns)), with a C(/32) address and a route per endpoint,
    to talk to them. The NIC's own address and the management path stay as they are (the collection's guide
    C(docs/host-shim.md)).
  - Before it deletes an 802.1Q sub-interface it made, the module looks for other macvlans on it in the
    namespace it runs in, in every named namespace (C(/run/netns)) and in the namespaces of the call.
'''

EXAMPLES = r'''
- name: Two endpoints on the LAN of eth0, in bridge mode
  hostnet.provision.macvlan:
    config:
      - name: eth0
        netns: web
        parent: eth0
        addresses: [198.51.100.20/24]
        gateway: [198.51.100.1]
      - name: eth0
        netns: db
        parent: eth0
        mac: '02:42:c6:33:64:15'
        addresses: [198.51.100.21/24]
        gateway: [198.51.100.1]

- name: An endpoint on VLAN 100 of eth0 (eth0.100 is created when missing)
  hostnet.provision.macvlan:
    config:
      - name: eth0
        netns: tenant-a
        parent: eth0
        vlan: 100
        mode: private
        addresses: [203.0.113.10/24]
        routes:
          - dest: 198.51.100.0/24
            via: 203.0.113.1

- name: Delete one endpoint (eth0.100 goes with its last macvlan)
  hostnet.provision.macvlan:
    config:
      - name: eth0
        netns: tenant-a
    state: deleted
'''

RETURN = r'''
commands:
  description: The kernel operations made (in check mode, those that would be made), in order.
  returned: always
  type: list
  elements: str
  sample: ['create macvlan eth0@web on eth0 (mode bridge)', 'add address 198.51.100.20/24 to eth0',
           'add route default via 198.51.100.1 on eth0']
before:
  description: The changed macvlans as they were, in the shape of O(config).
  returned: when O(state) is not V(gathered)
  type: list
  elements: dict
  sample: []
after:
  description:
    - The changed macvlans as they are now (read back from the kernel), in the shape of O(config).
    - In check mode, the prediction; values the kernel would choose (random MACs, the MTU taken from the
      parent) are V(null) there.
  returned: when O(state) is not V(gathered)
  type: list
  elements: dict
  sample: [{'name': 'eth0', 'netns': 'web', 'parent': 'eth0', 'mode': 'bridge', 'vlan': null, 'mtu': 1500,
            'mac': '02:42:c6:33:64:14', 'addresses': ['198.51.100.20/24'], 'gateway': ['198.51.100.1'],
            'routes': []}]
gathered:
  description: The macvlans the collection manages in the namespaces looked at, in the shape of O(config).
  returned: when O(state=gathered)
  type: list
  elements: dict
  sample: []
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.hostnet.provision.plugins.module_utils._adapter import RUN_ARGS, STATE_ARG, run_resource_module
from ansible_collections.hostnet.provision.plugins.module_utils._kind_macvlan import MODES, MacvlanKind


def main():
    module = AnsibleModule(
        argument_spec=dict(
            config=dict(type='list', elements='dict', default=[], options=dict(
                name=dict(type='str', required=True),
                allow_route_overlap=dict(type='bool', default=False),
                netns=dict(type='str'),
                parent=dict(type='str'),
                mode=dict(type='str', choices=list(MODES)),
                vlan=dict(type='int'),
                mtu=dict(type='int'),
                mac=dict(type='str'),
                addresses=dict(type='list', elements='str'),
                gateway=dict(type='list', elements='str'),
                routes=dict(type='list', elements='dict', options=dict(
                    dest=dict(type='str', required=True),
                    via=dict(type='str'),
                    metric=dict(type='int'),
                )),
            )),
            state=STATE_ARG,
            **RUN_ARGS,
        ),
        supports_check_mode=True,
    )
    run_resource_module(module, MacvlanKind)


if __name__ == '__main__':
    main()
