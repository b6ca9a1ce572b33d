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
            'mac': '02:42:c6:33:64:01', 'stp': false, 'forward_delay': 1500, 'vlan_filtering': false}]
gathered:
  description: The bridges the collection manages, in the shape of O(config).
  returned: when O(state=gathered)
  type: list
  elements: dict
  sample: [{'name': 'hn-br0', 'netns': null, 'addresses': ['198.51.100.1/24'], 'mtu': 1500,
            'mac': '02:42:c6:33:64:01', 'stp': false, 'forward_delay': 1500, 'vlan_filtering': false}]
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.hostnet.provision.plugins.module_utils._adapter import STATE_ARG, run_resource_module
from ansible_collections.hostnet.provision.plugins.module_utils._kind_bridge import BridgeKind


def main():
    module = AnsibleModule(
        argument_spec=dict(
            config=dict(type='list', elements='dict', default=[], options=dict(
                name=dict(type='str', required=True),
                netns=dict(type='str'),
                addresses=dict(type='list', elements='str'),
                mtu=dict(type='int'),
                mac=dict(type='str'),
                stp=dict(type='bool'),
                forward_delay=dict(type='int'),
                vlan_filtering=dict(type='bool'),
            )),
            state=STATE_ARG,
        ),
        supports_check_mode=True,
    )
    run_resource_module(module, BridgeKind)


if __name__ == '__main__':
    main()
