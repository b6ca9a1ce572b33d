#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to hostnet.provision
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: dns
short_description: A name resolver per network (dnsmasq) and the resolver files of its endpoints
version_added: 1.1.0
description:
  - Per network, a dnsmasq that listens on the network's gateway addresses only, answers the names (and
    aliases) of the network's endpoints, bare and under the network's domain, and forwards other names with
    dots to its upstreams (the host's C(/etc/resolv.conf) by default). Bare names and names of the network's
    domain are never forwarded, so the names of another network's endpoints do not resolve.
  - Writes C(CONFIG_DIR/NET.conf) and C(CONFIG_DIR/NET.hosts); a changed hosts file is loaded with SIGHUP,
    so adding or removing an endpoint changes the names without restarting the resolver.
  - Writes each endpoint's C(NETNS_DIR/NS/resolv.conf) and C(NETNS_DIR/NS/hosts), which C(ip netns exec NS)
    mounts over C(/etc/resolv.conf) and C(/etc/hosts).
  - Every file starts with a line naming the network; a file without it is never overwritten or removed.
    Endpoint files of a network whose namespace is no longer listed are removed.
  - With O(supervisor=process) the module starts the resolver (pidfile in O(run_dir)) and starts it again
    when it is not running, restarts it when its configuration changed and stops it for a network that is
    absent. With O(supervisor=systemd) starting and stopping is left to the unit C(hostnet-dns@NET.service)
    and the result lists the networks to restart.
author:
  - hostnet.provision contributors (@hostnet-provision)
attributes:
  check_mode:
    support: full
    description: Predicts every file and process change without making it.
  diff_mode:
    support: full
    description: Before and after content of each file the call writes or removes.
  platform:
    support: full
    platforms: [linux]
    description: Linux with dnsmasq (package C(dnsmasq-base) on Debian/Ubuntu, C(dnsmasq) on RHEL).
options:
  config:
    description: The networks. Networks not listed are left alone.
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description: Network name; names the files (letters, digits, C(_), C(-), C(.)).
        type: str
        required: true
      state:
        description: V(absent) stops the network's resolver and removes every file written for it.
        type: str
        choices: [present, absent]
        default: present
      resolver:
        description:
          - Run a resolver for this network. V(false) writes only the endpoints' files (their own
            O(config[].endpoints[].nameservers), search domains, options and hosts).
        type: bool
        default: true
      listen:
        description: Addresses the resolver listens on (the network's gateways); endpoints use them as nameservers.
        type: list
        elements: str
        default: []
      domain:
        description: Domain of the network's names (C(NAME.DOMAIN)); default the network name. Never forwarded.
        type: str
      upstreams:
        description:
          - Resolvers that other names are forwarded to (C(ADDRESS) or C(ADDRESS#PORT)).
          - Default the nameservers of O(config[].resolv_file).
        type: list
        elements: str
        default: []
      resolv_file:
        description: The file whose nameservers other names are forwarded to when O(config[].upstreams) is empty.
        type: path
        default: /etc/resolv.conf
      hosts:
        description: The names the resolver answers.
        type: list
        elements: dict
        default: []
        suboptions:
          address:
            description: IPv4 or IPv6 address.
            type: str
            required: true
          names:
            description: Names of the address (an endpoint's name and its aliases).
            type: list
            elements: str
            required: true
      endpoints:
        description: Namespaces that get C(resolv.conf) and C(hosts) under O(netns_dir).
        type: list
        elements: dict
        default: []
        suboptions:
          netns:
            description: Namespace name.
            type: str
            required: true
          nameservers:
            description: Nameservers of the endpoint instead of the network's resolver (C(docker run --dns)).
            type: list
            elements: str
            default: []
          search:
            description: Search domains after the network's domain (C(docker run --dns-search)).
            type: list
            elements: str
            default: []
          options:
            description: Resolver options (C(docker run --dns-option)), for example V(ndots:2).
            type: list
            elements: str
            default: []
          hosts:
            description: Extra entries of the endpoint's C(hosts) file (C(docker run --add-host)).
            type: list
            elements: dict
            default: []
            suboptions:
              address:
                description: IPv4 or IPv6 address.
                type: str
                required: true
              names:
                description: Names of the address.
                type: list
                elements: str
                required: true
          keep:
            description: Leave this endpoint's files as they are (neither written nor removed).
            type: bool
            default: false
  supervisor:
    description:
      - Who keeps the resolvers running - the module itself (V(process)) or systemd (V(systemd)).
      - V(auto) is V(systemd) on a host booted with systemd (C(/run/systemd/system) exists), else V(process)
        (containers, namespace hosts of a lab).
    type: str
    choices: [auto, process, systemd]
    default: auto
  config_dir:
    description:
      - Directory of the resolvers' configuration and hosts files.
      - dnsmasq reads the hosts files after dropping its privileges (as C(nobody)), so the directory must be
        readable by others (mode 0755, as the default is made), or the resolver answers no name.
    type: path
    default: /etc/hostnet/dns
  netns_dir:
    description: Directory of the per-namespace files that C(ip netns exec) uses.
    type: path
    default: /etc/netns
  run_dir:
    description: Directory of the resolvers' pidfiles.
    type: path
    default: /run/hostnet/dns
  dnsmasq:
    description: Path of the dnsmasq binary.
    type: path
    default: /usr/sbin/dnsmasq
'''

EXAMPLES = r'''
- name: A resolver for network web, answering web1 and web2 (alias www)
  hostnet.provision.dns:
    config:
      - name: web
        listen: [198.51.100.1]
        hosts:
          - {address: 198.51.100.2, names: [web1]}
          - {address: 198.51.100.3, names: [web2, www]}
        endpoints:
          - {netns: web1}
          - {netns: web2, search: [example.com], options: ['ndots:2']}
'''

RETURN = r'''
commands:
  description: What the call did (or would do in check mode), in order.
  returned: always
  type: list
  elements: str
  sample: ['write /etc/hostnet/dns/web.hosts', 'reload web']
restart:
  description: Networks whose resolver configuration changed (a systemd unit to restart).
  returned: always
  type: list
  elements: str
  sample: [web]
stopped:
  description: Networks whose resolver was stopped or removed (a systemd unit to stop and disable).
  returned: always
  type: list
  elements: str
  sample: []
supervisor:
  description: The supervisor used (V(auto) resolved).
  returned: always
  type: str
  sample: process
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.hostnet.provision.plugins.module_utils import _dns, _specs
from ansible_collections.hostnet.provision.plugins.module_utils._errors import HostnetError


def main():
    module = AnsibleModule(
        argument_spec=dict(
            config=dict(type='list', elements='dict', required=True, options=_specs.DNS),
            supervisor=dict(type='str', choices=list(_dns.SUPERVISORS), default=_dns.DEFAULTS['supervisor']),
            config_dir=dict(type='path', default=_dns.DEFAULTS['config_dir']),
            netns_dir=dict(type='path', default=_dns.DEFAULTS['netns_dir']),
            run_dir=dict(type='path', default=_dns.DEFAULTS['run_dir']),
            dnsmasq=dict(type='path', default=_dns.DEFAULTS['dnsmasq']),
        ),
        supports_check_mode=True,
    )
    paths = dict((key, module.params[key]) for key in _dns.DEFAULTS)
    paths['supervisor'] = _dns.supervisor(paths['supervisor'])
    changes, applying = [], False
    try:
        networks = _dns.normalize(module.params['config'])
        changes, restarts, stopped, diff = _dns.plan(networks, paths)
        if not module.check_mode:
            applying = True
            _dns.apply(changes, paths)
    except HostnetError as err:
        module.fail_json(msg=str(err), changed=applying and bool(changes), resource=err.resource, field=err.field,
                         value=err.value, commands=_dns.summary(changes))
    result = dict(changed=bool(changes), commands=_dns.summary(changes), restart=restarts, stopped=stopped,
                  supervisor=paths['supervisor'])
    if module._diff:
        result['diff'] = diff
    module.exit_json(**result)


if __name__ == '__main__':
    main()
