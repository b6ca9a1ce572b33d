#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to hostnet.provision
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: vxlan
short_description: VXLAN tunnel devices for overlay networks across hosts, with an MTU that fits the underlay
version_added: 1.0.0
description:
  - Creates, changes and deletes VXLAN devices, the tunnel ends of an overlay network as Docker's overlay
    driver and flannel build them; each carries one VNI over UDP on an underlay link.
  - The MTU defaults to what fits the underlay, the underlay's MTU minus 50 bytes for an IPv4 underlay or
    minus 70 bytes for IPv6 (decided by O(config[].local) or O(config[].group)); an explicit MTU that cannot
    fit is refused before any change, because a too large one silently drops big packets.
  - The VNI, port, local address, group and underlay link are the tunnel's identity; the kernel cannot
    change VNI or port in place, so a change of any of them is planned, and shown, as a delete and a
    create (C(delete vxlan vx0 to recreate it (vni 100 becomes 200))). A device with the right name but
    the wrong identity is never reported as unchanged. Recreating drops the device's forwarding entries;
    M(hostnet.provision.vxlan_peer) puts them back.
  - Devices the collection creates carry the interface alias C(hostnet.provision); any other link with a
    requested name is refused and left alone.
  - Many devices per call, with the states of Ansible's resource modules.
author:
  - hostnet.provision contributors (@hostnet-provision)
extends_documentation_fragment:
  - hostnet.provision.resource
options:
  config:
    description: The VXLAN devices.
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: Interface name of the device (at most 15 bytes; no C(/), C(:) or whitespace).
        type: str
        required: true
      netns:
        description:
          - Namespace the device lives in, together with its underlay link; a name under C(/run/netns), an
            absolute path of a namespace file, or C(pid:PID). Default is the namespace the module runs in.
        type: str
      vni:
        description:
          - VXLAN network identifier, 1 to 16777215. Required to create a device.
          - Not given, an existing device keeps its VNI.
        type: int
      local:
        description:
          - Local VTEP address (IPv4 or IPv6) the tunnel's packets are sent from; usually an address of
            O(config[].dev). Its IP version decides the MTU overhead.
          - It must be an address of the device's namespace (IPv6 link-local addresses are not checked);
            other addresses are refused before any change.
          - Not given, an existing device keeps its local address; a new one has none (the kernel picks the
            source address by route, over IPv4 unless O(config[].group) is IPv6).
        type: str
      dev:
        description:
          - Underlay link in the device's namespace; it must exist, and may not be V(lo). Required to create a
            device.
          - Not given, an existing device keeps its underlay.
        type: str
      port:
        description:
          - UDP destination port of the tunnel.
          - V(4789) (the IANA port) when a device is created; an existing device keeps its port when this is
            not given.
        type: int
      group:
        description:
          - Multicast group (IPv4 C(224.0.0.0/4) or IPv6 C(ff00::/8)) that floods broadcast and unknown traffic
            to the other VTEPs instead of, or besides, the peers of M(hostnet.provision.vxlan_peer). Of the same
            IP version as O(config[].local).
          - Not given, an existing device keeps its group; a new one has none.
        type: str
      learning:
        description:
          - Learn remote MAC addresses from received packets. Off suits overlays whose forwarding entries are
            set by M(hostnet.provision.vxlan_peer).
          - V(false) when a device is created; changes in place.
        type: bool
      mtu:
        description:
          - MTU of the device. At most the underlay's MTU minus 50 (IPv4 underlay) or 70 (IPv6 underlay).
          - Default when a device is created (or recreated) is exactly that maximum.
        type: int
      mac:
        description:
          - MAC address of the device, set when it is created and corrected in place when it differs.
          - Not given, a new device has the MAC the kernel chooses (random); an existing device keeps its MAC, also
            when a change of its identity recreates it.
          - Overlays give every device a MAC all hosts can compute, like those of their bridges and endpoints.
        type: str
      bridge:
        description:
          - Bridge in the device's namespace to enslave the device to (the overlay's local segment). It must
            exist.
          - With O(state=replaced) or O(state=overridden), leaving it unset detaches the device.
        type: str
      addresses:
        description: Addresses with prefix length on the device (an overlay address of this host).
        type: list
        elements: str
'''

EXAMPLES = r'''
- name: The overlay's tunnel end on this host, bridged to the local segment
  hostnet.provision.vxlan:
    config:
      - name: vx100
        vni: 100
        local: 198.18.0.1
        dev: eth1
        bridge: hn-ovl
  # MTU: eth1's MTU minus 50 (1450 on a 1500 underlay)

- name: A routed overlay endpoint inside a namespace, IPv6 underlay, with an address
  hostnet.provision.vxlan:
    config:
      - name: vx200
        netns: tenant-a
        vni: 200
        local: '2001:db8:ff::1'
        dev: uplink
        port: 8472
        addresses: [203.0.113.1/24]
  # MTU: uplink's MTU minus 70

- name: Predict a VNI change (shown as a delete and a create)
  hostnet.provision.vxlan:
    config:
      - name: vx100
        vni: 101
  check_mode: true
  diff: true

- name: Delete every VXLAN device this collection made in this namespace
  hostnet.provision.vxlan:
    state: deleted
'''

RETURN = r'''
commands:
  description: The kernel operations made (in check mode, those that would be made), in order.
  returned: always
  type: list
  elements: str
  sample: ['create vxlan vx100 (vni 100, port 4789, local 198.18.0.1, dev eth1, mtu 1450)',
           'attach vx100 to bridge hn-ovl']
before:
  description: The changed devices as they were, in the shape of O(config).
  returned: when O(state) is not V(gathered)
  type: list
  elements: dict
  sample: []
after:
  description:
    - The changed devices as they are now (read back from the kernel), in the shape of O(config).
    - In check mode, the prediction.
  returned: when O(state) is not V(gathered)
  type: list
  elements: dict
  sample: [{'name': 'vx100', 'netns': null, 'vni': 100, 'local': '198.18.0.1', 'dev': 'eth1', 'port': 4789,
            'group': null, 'learning': false, 'mtu': 1450, 'mac': '02:42:00:00:64:01', 'bridge': 'hn-ovl',
            'addresses': []}]
gathered:
  description: The VXLAN devices the collection manages in the namespaces looked at, in the shape of O(config).
  returned: when O(state=gathered)
  type: list
  elements: dict
  sample: []
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.hostnet.provision.plugins.module_utils._adapter import RUN_ARGS, STATE_ARG, run_resource_module
from ansible_collections.hostnet.provision.plugins.module_utils._kind_vxlan import VxlanKind


def main():
    module = AnsibleModule(
        argument_spec=dict(
            config=dict(type='list', elements='dict', default=[], options=dict(
                name=dict(type='str', required=True),
                netns=dict(type='str'),
                vni=dict(type='int'),
                local=dict(type='str'),
                dev=dict(type='str'),
                port=dict(type='int'),
                group=dict(type='str'),
                learning=dict(type='bool'),
                mtu=dict(type='int'),
                mac=dict(type='str'),
                bridge=dict(type='str'),
                addresses=dict(type='list', elements='str'),
            )),
            state=STATE_ARG,
            **RUN_ARGS,
        ),
        supports_check_mode=True,
    )
    run_resource_module(module, VxlanKind)


if __name__ == '__main__':
    main()
