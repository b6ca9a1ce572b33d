#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to hostnet.provision
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: vxlan_peer
short_description: Remote VTEPs, FDB and neighbour entries of VXLAN devices (flood lists, purge of stale peers)
version_added: 1.0.0
description:
  - Sets the forwarding entries of VXLAN devices made by M(hostnet.provision.vxlan), so that an overlay
    works without multicast and without learning, as flannel and Docker's overlay driver do it.
  - O(config[].peers) is the flood list, one all-zero MAC entry per remote VTEP, as C(bridge fdb append
    00:00:00:00:00:00 dev vx0 dst PEER) makes it; broadcast, multicast and unknown unicast go to every peer.
  - O(config[].entries) are static MAC to VTEP entries, each optionally with a permanent neighbour entry
    IP to MAC on the device, so that ARP/ND for that IP is answered without flooding.
  - V(merged) adds the given peers and entries; V(replaced) makes a device's peers and entries exactly the
    given ones and removes stale ones; V(overridden) does that and also removes every managed entry of the
    other devices the collection made in the namespaces looked at; V(deleted) removes the listed peers and
    entries, or all of a device's when none are listed, or all of every device's with an empty O(config).
  - Only static entries of the named device itself are changed. Learned entries are left alone, except that a
    static entry for a MAC replaces a learned one instead of failing; the entry the kernel keeps for the
    device's multicast group is not a peer. Devices the collection did not create are refused.
  - Thousands of peers converge in one call. The kernel's tables are read once per namespace (one FDB dump,
    one neighbour dump); then only the differences are sent, one netlink request each, so adding one peer to
    a thousand makes exactly one change.
author:
  - hostnet.provision contributors (@hostnet-provision)
extends_documentation_fragment:
  - hostnet.provision.resource
options:
  config:
    description: The VXLAN devices and their forwarding entries.
    type: list
    elements: dict
    default: []
    suboptions:
      device:
        description:
          - Name of the VXLAN device; it must exist and have been made by M(hostnet.provision.vxlan).
        type: str
        required: true
        aliases: [name]
      netns:
        description:
          - Namespace of the device; a name under C(/run/netns), an absolute path of a namespace file, or
            C(pid:PID). Default is the namespace the module runs in.
        type: str
      peers:
        description:
          - Remote VTEP addresses to flood to (the underlay addresses of the other hosts), of the device's IP
            version.
        type: list
        elements: str
      entries:
        description: Static forwarding entries, one VTEP per MAC address. Each needs a VTEP, an IP or both.
        type: list
        elements: dict
        suboptions:
          mac:
            description: MAC address of a remote endpoint (unicast).
            type: str
            required: true
          vtep:
            description:
              - Address of the VTEP that endpoint is behind, of the device's IP version; sets a static FDB entry
                MAC to VTEP.
              - Not given, only the neighbour entry of O(config[].entries[].ip) is set.
            type: str
          ip:
            description:
              - Overlay IP address of that endpoint; sets a permanent neighbour entry IP to MAC on the device.
              - The same MAC may be listed again (with the same VTEP) for another IP, for example its IPv6
                address.
            type: str
notes:
  - Recreating a VXLAN device (a VNI change, for example) drops its entries; run this module after
    M(hostnet.provision.vxlan) in the same play and they come back.
'''

EXAMPLES = r'''
- name: Flood to the other two hosts of the overlay
  hostnet.provision.vxlan_peer:
    config:
      - device: vx100
        peers: [198.18.0.2, 198.18.0.3]

- name: Exactly these peers and entries, flannel style (stale ones are removed)
  hostnet.provision.vxlan_peer:
    config:
      - device: vx100
        netns: tenant-a
        peers: [198.18.0.2]
        entries:
          - mac: '02:42:cb:00:71:02'
            vtep: 198.18.0.2
            ip: 203.0.113.2
    state: replaced

- name: Forget one peer
  hostnet.provision.vxlan_peer:
    config:
      - device: vx100
        peers: [198.18.0.3]
    state: deleted

- name: What is set now
  hostnet.provision.vxlan_peer:
    state: gathered
  register: overlay_peers
'''

RETURN = r'''
commands:
  description: The kernel operations made (in check mode, those that would be made), in order.
  returned: always
  type: list
  elements: str
  sample: ['add peer 198.18.0.3 to vx100', 'add fdb entry 02:42:cb:00:71:02 dst 198.18.0.2 to vx100',
           'add neighbour 203.0.113.2 lladdr 02:42:cb:00:71:02 to vx100']
before:
  description: The changed devices' entries as they were, in the shape of O(config).
  returned: when O(state) is not V(gathered)
  type: list
  elements: dict
  sample: []
after:
  description:
    - The changed devices' entries as they are now (read back from the kernel), in the shape of O(config).
    - In check mode, the prediction.
  returned: when O(state) is not V(gathered)
  type: list
  elements: dict
  sample: [{'device': 'vx100', 'netns': null, 'peers': ['198.18.0.2', '198.18.0.3'],
            'entries': [{'mac': '02:42:cb:00:71:02', 'vtep': '198.18.0.2', 'ip': '203.0.113.2'}]}]
gathered:
  description:
    - Every VXLAN device the collection manages in the namespaces looked at, with its peers and entries, in
      the shape of O(config).
    - An entry whose O(config[].entries[].vtep) is V(null) is a neighbour entry without a static FDB entry for
      its MAC.
  returned: when O(state=gathered)
  type: list
  elements: dict
  sample: [{'device': 'vx100', 'netns': null, 'peers': ['198.18.0.2'], 'entries': []}]
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.hostnet.provision.plugins.module_utils._adapter import RUN_ARGS, STATE_ARG, run_resource_module
from ansible_collections.hostnet.provision.plugins.module_utils._kind_vxlan_peer import VxlanPeerKind


def main():
    module = AnsibleModule(
        argument_spec=dict(
            config=dict(type='list', elements='dict', default=[], options=dict(
                device=dict(type='str', required=True, aliases=['name']),
                netns=dict(type='str'),
                peers=dict(type='list', elements='str'),
                entries=dict(type='list', elements='dict', options=dict(
                    mac=dict(type='str', required=True),
                    vtep=dict(type='str'),
                    ip=dict(type='str'),
                )),
            )),
            state=STATE_ARG,
            **RUN_ARGS,
        ),
        supports_check_mode=True,
    )
    run_resource_module(module, VxlanPeerKind)


if __name__ == '__main__':
    main()
