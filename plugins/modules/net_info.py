#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to hostnet.provision
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: net_info
short_description: Report network namespaces, links, addresses, routes and what hostnet.provision manages
version_added: 1.0.0
description:
  - Reads, and never changes, the network state of a host across its network namespaces over netlink.
  - The C(managed) part lists every resource the collection manages, per module, in the exact shape of
    that module's O(hostnet.provision.bridge#module:config), so the output can be fed back as input
    (for example to restore a host, or to compare two hosts).
  - The other parts show what the kernel has, whoever made it, with a C(managed) flag on each link and route.
author:
  - hostnet.provision contributors (@hostnet-provision)
requirements:
  - pyroute2 >= 0.7.2 on the managed host (Debian/Ubuntu package C(python3-pyroute2))
attributes:
  check_mode:
    support: full
    description: Read-only; it runs the same in check mode.
  diff_mode:
    support: none
    description: Nothing changes, so there is no diff.
  platform:
    support: full
    platforms: [linux]
    description: Linux only (netlink).
options:
  netns:
    description:
      - Namespaces to read (names under C(/run/netns), absolute paths, or C(pid:PID)); the empty string
        is the namespace the module runs in.
      - Default is the module's own namespace and every named namespace.
      - A namespace given here that does not exist (no such name, path or running process) fails the module,
        naming it, rather than giving an empty report.
    type: list
    elements: str
  gather:
    description:
      - What to read; leave out what you do not need, it is faster on hosts with many endpoints.
      - V(clash) (not read by default) is what the clash check of the modules that add addresses and routes
        decides on, as plain data; the roles read it to make the same check before their first change.
    type: list
    elements: str
    choices: [namespaces, links, addresses, routes, managed, clash]
    default: [namespaces, links, addresses, routes, managed]
  process_namespaces:
    description:
      - Also list the network namespaces of running processes that have no name (for example a container's),
        with the lowest process id in each; use that as C(pid:PID) or give it a name with M(hostnet.provision.netns).
    type: bool
    default: false
'''

EXAMPLES = r'''
- name: Everything
  hostnet.provision.net_info:
  register: hn

- name: Show the endpoints of one bridge
  ansible.builtin.debug:
    msg: "{{ hn.net_info.managed.veth | selectattr('bridge', 'equalto', 'hn-br0') | map(attribute='peer') }}"

- name: Only the routes of the host namespace, to check a planned subnet against them
  hostnet.provision.net_info:
    netns: ['']
    gather: [routes]
  register: host_routes

- name: Find containers' hidden namespaces
  hostnet.provision.net_info:
    gather: [namespaces]
    process_namespaces: true
  register: namespaces
'''

RETURN = r'''
net_info:
  description: The report; only the parts asked for in O(gather) are present.
  returned: always
  type: dict
  contains:
    namespaces:
      description:
        - One entry per namespace. C(name) is null for the module's own (C(current)) and for process namespaces.
        - C(managed) is true for namespaces the collection created or attached; C(pid) is the adopted process.
      type: list
      elements: dict
      sample: [{'name': null, 'id': 4026531840, 'current': true, 'managed': false, 'pid': null},
               {'name': 'web', 'id': 4026532301, 'current': false, 'managed': true, 'pid': null}]
    links:
      description:
        - Per namespace (key V('') is the module's own), its links with kind, MTU, MAC, state, master
          and alias; bridges, VXLAN, macvlan and VLAN links carry their attributes in a sub-dict.
      type: dict
      sample: {'': [{'name': 'hn-br0', 'kind': 'bridge', 'mtu': 1500, 'mac': '02:42:c6:33:64:01', 'up': true,
               'master': null, 'alias': 'hostnet.provision', 'managed': true,
               'bridge': {'stp': false, 'forward_delay': 1500, 'vlan_filtering': false}}]}
    addresses:
      description: Per namespace, per link, the addresses with prefix length (IPv6 link-local left out).
      type: dict
      sample: {'': {'hn-br0': ['198.51.100.1/24']}, 'web': {'eth0': ['198.51.100.10/24']}}
    routes:
      description: Per namespace, the unicast routes of the main table; C(managed) marks the collection's.
      type: dict
      sample: {'web': [{'dest': 'default', 'via': '198.51.100.1', 'dev': 'eth0', 'metric': null,
               'proto': 104, 'managed': true}]}
    clash:
      description:
        - Per namespace, what the clash check decides on; only when asked for in O(gather).
        - C(routes) are the routes of every table but C(local) (unicast, blackhole, unreachable, prohibit), with
          C(managed) true for the collection's own (its protocol, or on a link it manages); C(rules) are the
          policy routing rules with a C(from) or C(to) selector; C(management_address) is the address the
          controller connects from (the first field of C(SSH_CONNECTION) as the module sees it), in the
          module's own namespace only, else null.
      type: dict
      sample: {'': {'routes': [{'dest': '0.0.0.0/0', 'via': '203.0.113.1', 'dev': 'eth0', 'table': 254,
               'type': 'unicast', 'managed': false}],
               'rules': [{'from': '198.18.40.0/24', 'to': null, 'priority': 32765, 'table': 100}],
               'management_address': '203.0.113.7'}}
    managed:
      description: Per module name, the resources the collection manages, in that module's C(config) shape.
      type: dict
      sample: {'netns': [{'name': 'web', 'pid': null, 'sysctls': {}}], 'bridge': [], 'veth': []}
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.hostnet.provision.plugins.module_utils._adapter import run_info_module


def main():
    module = AnsibleModule(
        argument_spec=dict(
            netns=dict(type='list', elements='str'),
            gather=dict(type='list', elements='str', default=['namespaces', 'links', 'addresses', 'routes', 'managed'],
                        choices=['namespaces', 'links', 'addresses', 'routes', 'managed', 'clash']),
            process_namespaces=dict(type='bool', default=False),
        ),
        supports_check_mode=True,
    )
    run_info_module(module)


if __name__ == '__main__':
    main()
