#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to hostnet.provision
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: netns
short_description: Named network namespaces, created or adopted from a running process
version_added: 1.0.0
description:
  - Creates and deletes named network namespaces the way C(ip netns add) does (a bind mount under
    C(/run/netns/NAME)), so C(ip netns exec) and every other tool see them.
  - A namespace the module creates gets its loopback interface brought up.
  - With O(config[].pid) it names the namespace of a running process instead, as is done to reach the
    hidden namespace of a Docker container (C(/proc/PID/ns/net)); nothing inside that namespace is changed.
    When the process has been restarted, the next run points the name at its new namespace.
  - Namespaces are recorded under C(/run/hostnet/netns); names the collection did not make are never
    changed or removed.
  - Many namespaces per call, with the states of Ansible's resource modules.
author:
  - hostnet.provision contributors (@hostnet-provision)
extends_documentation_fragment:
  - hostnet.provision.resource
options:
  config:
    description:
      - The namespaces.
      - A namespace has no O(config[].name) of its own besides its name; other modules put links into it
        with their C(netns) option.
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description:
          - Name of the namespace (C(/run/netns/NAME)); no C(/), not starting with C(.).
        type: str
        required: true
      pid:
        description:
          - Name the network namespace of this running process instead of creating a new one.
          - Leave unset to create a new, empty namespace.
        type: int
      sysctls:
        description:
          - Network sysctls to set inside the namespace, as a mapping of key to value, for example
            C(net.ipv4.ip_forward=1) to make the namespace a router, or C(net.ipv4.conf.all.rp_filter=0).
          - Keys are dotted (or C(/)-separated when an interface name contains a dot) and must start with
            C(net.); only network sysctls belong to a namespace. Booleans are written as V(1)/V(0).
          - With O(state=merged) the given keys are set and others the collection set before are kept in
            the result; with O(state=replaced) or O(state=overridden) only the given keys are reported.
            Values are never reset to kernel defaults; removing a key only stops managing it.
          - Only for namespaces the collection creates (not with O(config[].pid)).
        type: dict
'''

EXAMPLES = r'''
- name: Two endpoint namespaces
  hostnet.provision.netns:
    config:
      - name: web
      - name: db

- name: A router namespace between two bridges
  hostnet.provision.netns:
    config:
      - name: router
        sysctls:
          net.ipv4.ip_forward: 1
          net.ipv6.conf.all.forwarding: 1

- name: Name the namespace of a running container process
  hostnet.provision.netns:
    config:
      - name: app1
        pid: "{{ container_pid }}"

- name: Keep exactly these namespaces (removes other namespaces this collection made)
  hostnet.provision.netns:
    config:
      - name: web
    state: overridden

- name: Read what the collection manages
  hostnet.provision.netns:
    state: gathered
  register: namespaces
'''

RETURN = r'''
commands:
  description: The operations made (in check mode, those that would be made), in order.
  returned: always
  type: list
  elements: str
  sample: ['create netns web', 'bring up lo in netns web']
before:
  description: The changed namespaces as they were.
  returned: when O(state) is not V(gathered)
  type: list
  elements: dict
  sample: []
after:
  description: The changed namespaces as they are now (in check mode, as predicted).
  returned: when O(state) is not V(gathered)
  type: list
  elements: dict
  sample: [{'name': 'web', 'pid': null, 'sysctls': {}}]
gathered:
  description: The namespaces the collection manages, in the shape of O(config).
  returned: when O(state=gathered)
  type: list
  elements: dict
  sample: [{'name': 'web', 'pid': null, 'sysctls': {}},
           {'name': 'router', 'pid': null, 'sysctls': {'net.ipv4.ip_forward': '1'}}]
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.hostnet.provision.plugins.module_utils import _specs
from ansible_collections.hostnet.provision.plugins.module_utils._adapter import RUN_ARGS, STATE_ARG, run_resource_module
from ansible_collections.hostnet.provision.plugins.module_utils._kind_netns import NetnsKind


def main():
    module = AnsibleModule(
        argument_spec=dict(
            config=dict(type='list', elements='dict', default=[], options=_specs.NETNS),
            state=STATE_ARG,
            **RUN_ARGS,
        ),
        supports_check_mode=True,
    )
    run_resource_module(module, NetnsKind)


if __name__ == '__main__':
    main()
