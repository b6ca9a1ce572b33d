#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to hostnet.provision
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: network
short_description: Bridge networks with their endpoints, published ports and names, in one call
version_added: 1.1.0
description:
  - Builds a host's Docker-style bridge networks - what C(docker network create) and C(docker run --net -p)
    make - from one list of networks, in one module call on the target - the namespaces of the endpoints, a
    bridge per network with its gateways and policy (masquerade, icc, isolation, reach, exceptions), a veth
    pair per endpoint with its addresses and default routes, the published ports, and a name resolver per
    network with C(dns). Networks and endpoints marked absent, and endpoints no longer listed when purged, are
    removed (namespaces first; the kernel takes their veth pairs along).
  - It reads the host once, plans every network, and refuses the whole input, listing every problem, before
    the first change. Then it runs what the single-purpose modules M(hostnet.provision.netns),
    M(hostnet.provision.bridge), M(hostnet.provision.veth), M(hostnet.provision.portmap) and
    M(hostnet.provision.dns) would run with the same entries - through their own argument specs - in one
    process and one kernel session, and returns what changed.
  - This is the module behind the roles P(hostnet.provision.bridge_network#role) and
    P(hostnet.provision.tenant_networks#role); O(networks) takes the role's C(bridge_network_networks) as they are
    (see the role's documentation for every key). Use the role for the systemd units of the resolvers; the module
    alone runs them as processes it supervises, or under systemd units you provide.
  - The address plan is deterministic (endpoints keep their addresses across runs; an endpoint no longer listed
    keeps its address reserved unless purged), and bridge and host-side veth names are derived from the network
    and endpoint names.
author:
  - hostnet.provision contributors (@hostnet-provision)
options:
  networks:
    description:
      - The networks of this host, each a dict in the shape of the role option
        O(hostnet.provision.bridge_network#role:main:bridge_network_networks) - C(name), C(subnet), C(subnet6),
        C(gateway), C(gateway6), C(bridge), C(mtu), C(masquerade) (or C(egress)), C(icc), C(reach),
        C(isolated), C(host_access), C(allow), C(state), C(allow_route_overlap), C(dns), C(dns_upstreams),
        C(dns_domain), C(purge) and C(endpoints) (each with C(name), C(address), C(address6), C(mac),
        C(ports), C(aliases), C(dns), C(bridges), C(state) and more).
      - Checked as a whole before any change; every problem is listed in the error.
      - An empty list changes nothing.
    type: list
    elements: dict
    required: true
  bridge_prefix:
    description: Prefix of derived bridge names (the name is hashed when it would exceed 15 bytes).
    type: str
    default: br-
  veth_prefix:
    description: Prefix of derived host-side veth names.
    type: str
    default: ve
  policy:
    description:
      - Defaults for every network (a network's own keys win), for example C(isolated=true) and C(host_access=false)
        for tenant networks. Without it networks masquerade and allow icc.
    type: dict
    default: {}
  purge:
    description: Endpoints no longer listed in a network are removed (V(true)) or kept with their addresses reserved.
    type: bool
    default: false
  forwarding:
    description:
      - Turn on IPv4/IPv6 forwarding where masquerade and published ports need it (shown as an operation).
      - V(false) refuses, before any change, networks that need it while it is off.
    type: bool
    default: true
  sysctl_file:
    description:
      - With O(forwarding), a sysctl file written (atomically, mode 0644) to keep forwarding on after a reboot,
        for the address families the networks use. Not written when omitted.
    type: path
  dns_supervisor:
    description: Who runs the resolvers of networks with C(dns), as O(hostnet.provision.dns#module:supervisor).
    type: str
    choices: [auto, systemd, process]
    default: auto
  dns_config_dir:
    description: Where the resolvers' configuration goes, as O(hostnet.provision.dns#module:config_dir).
    type: path
    default: /etc/hostnet/dns
  dns_netns_dir:
    description: Where the endpoints' C(resolv.conf) and C(hosts) files go, as O(hostnet.provision.dns#module:netns_dir).
    type: path
    default: /etc/netns
  dns_run_dir:
    description: Pid files of resolvers the module supervises, as O(hostnet.provision.dns#module:run_dir).
    type: path
    default: /run/hostnet/dns
  dnsmasq:
    description: The resolver program, as O(hostnet.provision.dns#module:dnsmasq).
    type: path
    default: /usr/sbin/dnsmasq
  record:
    description:
      - After a successful run (not in check mode), record the managed namespaces, bridges, pairs and published
        ports for C(hostnet-restore), as O(hostnet.provision.veth#module:record) does for each kind.
      - When not given, V(true) unless the environment variable C(HOSTNET_RECORD) is V(0).
    type: bool
  lock_timeout:
    description:
      - Seconds to wait for the host's lock (C(/run/hostnet/lock)) that every call holds while it reads and
        changes the state, then fail naming the holder.
      - When not given, the environment variable C(HOSTNET_LOCK_TIMEOUT), else V(300).
    type: int
requirements:
  - pyroute2 >= 0.7.2 on the managed host (Debian/Ubuntu package C(python3-pyroute2))
  - nftables (libnftables) for the networks' policy and published ports (Debian/Ubuntu package C(nftables))
  - dnsmasq for networks with C(dns) (Debian/Ubuntu package C(dnsmasq-base))
notes:
  - The steps share one undo list. If applying fails midway, every kernel change of the call is undone, newest
    first, and the error says so or names what stands (deleting a bridge or a namespace cannot be undone as it
    was, and runs last).
  - In check mode the steps see the host as it is; a namespace or bridge that an earlier step would make is
    assumed, with one warning for the call, as with the single-purpose modules run one after another.
  - The result holds what changed (RV(commands), RV(steps)), not every resource; with C(--diff), each changed
    resource before and after.
attributes:
  check_mode:
    support: full
    description: Predicts exactly the operations a real run would make; changes nothing.
  diff_mode:
    support: full
    description: Shows each changed resource before and after, per step, and the sysctl file.
  platform:
    support: full
    platforms: [linux]
    description: Linux only (netlink).
seealso:
  - module: hostnet.provision.bridge
  - module: hostnet.provision.veth
  - module: hostnet.provision.portmap
  - module: hostnet.provision.dns
'''

EXAMPLES = r'''
- name: A web network with two endpoints, one port published, names resolved
  hostnet.provision.network:
    networks:
      - name: web
        subnet: 198.51.100.0/24
        subnet6: 2001:db8:100::/64
        dns: true
        endpoints:
          - name: web1
            ports: [{host_port: 8080, port: 80}]
          - name: db
            aliases: [database]
    sysctl_file: /etc/sysctl.d/60-hostnet-provision.conf
  register: web

- name: Every endpoint's addresses
  ansible.builtin.debug:
    msg: "{{ web.report | map(attribute='endpoints') | flatten | map(attribute='addresses') }}"

- name: Tenants, isolated from each other and from the host
  hostnet.provision.network:
    policy: {isolated: true, host_access: false}
    networks:
      - name: acme
        subnet: 203.0.113.0/28
        endpoints: [{name: acme-app}]
      - name: globex
        subnet: 203.0.113.16/28
        endpoints: [{name: globex-app}]

- name: Remove a network with its endpoints
  hostnet.provision.network:
    networks:
      - name: web
        subnet: 198.51.100.0/24
        state: absent
'''

RETURN = r'''
commands:
  description: The operations made (in check mode, those that would be made), in order.
  returned: always
  type: list
  elements: str
  sample: ['create netns web1', 'create bridge br-web', 'create veth vef1e2a3b with peer eth0 in netns web1']
steps:
  description: What each step had to do - the resources it was given, how many changed, how many operations.
  returned: always
  type: list
  elements: dict
  sample: [{'step': 'namespaces', 'resources': 2, 'changed': 0, 'commands': 0}]
report:
  description:
    - Per network its bridge, gateways, policy and endpoints (namespace, addresses, MAC, published ports,
      names), as the role exports it in C(bridge_network_result).
  returned: always
  type: list
  elements: dict
  sample: []
families:
  description: The address families the present networks use (V(4), V(6)).
  returned: always
  type: list
  elements: int
  sample: [4, 6]
dns:
  description:
    - The resolvers' step, for who supervises them - C(supervisor) (V(systemd) or V(process)), C(restart) (networks
      whose resolver must be (re)started), C(stopped) (networks whose resolver was stopped) and C(commands).
  returned: when a network has or had C(dns)
  type: dict
  sample: {'supervisor': 'systemd', 'restart': ['web'], 'stopped': [], 'commands': ['write /etc/hostnet/dns/web.conf']}
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.hostnet.provision.plugins.module_utils._adapter import RUN_ARGS, run_network_module


def main():
    module = AnsibleModule(
        argument_spec=dict(
            networks=dict(type='list', elements='dict', required=True),
            bridge_prefix=dict(type='str', default='br-'),
            veth_prefix=dict(type='str', default='ve'),
            policy=dict(type='dict', default={}),
            purge=dict(type='bool', default=False),
            forwarding=dict(type='bool', default=True),
            sysctl_file=dict(type='path'),
            dns_supervisor=dict(type='str', choices=['auto', 'systemd', 'process'], default='auto'),
            dns_config_dir=dict(type='path', default='/etc/hostnet/dns'),
            dns_netns_dir=dict(type='path', default='/etc/netns'),
            dns_run_dir=dict(type='path', default='/run/hostnet/dns'),
            dnsmasq=dict(type='path', default='/usr/sbin/dnsmasq'),
            **RUN_ARGS,
        ),
        supports_check_mode=True,
    )
    run_network_module(module)


if __name__ == '__main__':
    main()
