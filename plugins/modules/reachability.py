#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to hostnet.provision
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: reachability
short_description: Prove who can reach whom, with real packets sent from inside namespaces
version_added: 1.0.0
description:
  - Sends one ICMP echo request, or makes one TCP connection, from inside a network namespace to an address,
    for each check, and reports whether it got through. Used by the roles' reports and by verify steps to show
    that networks work and that isolation holds.
  - Opens each socket inside the source namespace (no C(ping) or C(ip netns exec) process); every check is
    bounded by O(timeout).
  - The checks run concurrently (thousands at once, as the open-file limit allows; echo requests share one raw
    socket per source namespace and family), so a report of many checks takes about O(timeout), not the sum of
    the checks. A check the network answers (echo reply, ICMP unreachable or prohibited, TCP reset or handshake)
    is decided as soon as the answer arrives; only unanswered ones wait for O(timeout). The kernel rate-limits
    the ICMP errors it sends, so of many rejected checks only the first few end early.
  - Changes nothing; O(checks[].expect) turns a result into an assertion.
  - Each check ends in one C(result). V(reachable) means an echo reply came back, or the TCP handshake completed.
  - V(blocked) means the network said no. No answer within O(timeout), an ICMP error (host unreachable,
    administratively prohibited), no route from the source, or a local firewall refusing the send; for TCP
    also a reset (C(reason=refused), the destination answered but nothing accepts connections on that port),
    so to prove that a path is cut, prefer ICMP or a port that has a listener.
  - V(unknown) means the probe could not run and proves nothing. The source namespace does not exist, the
    socket could not be opened, or an unexpected socket error. C(reason) says which.
  - An V(unknown) result never counts as blocked. A check with O(checks[].expect) fails against it, whichever
    way it points, and a check without one adds a warning.
  - Every check, every lookup and O(timeout) are validated before the first packet is sent.
  - O(lookups) resolves names inside the source namespaces as their programs would, without C(getent) or
    C(ip netns exec). The nameservers, C(search) domains and C(ndots) come from the namespace's resolv.conf,
    C(/etc/netns/NAME/resolv.conf) when there is one (the file C(ip netns exec) bind-mounts), else
    C(/etc/resolv.conf). An A or AAAA query goes over UDP from a socket opened inside the namespace, to each
    nameserver in turn, each waiting at most O(timeout). The lookups run concurrently, like the checks, and
    before them.
  - A lookup that resolves to addresses other than its O(lookups[].expect) fails the module, like a check that
    misses its O(checks[].expect). The checks still run and every result is returned.
  - Also reads (never changes) the nftables ruleset of the namespace the module runs in. A base chain of another
    table on the forward hook with policy drop and no rule accepting DNATed connections (C(ct status dnat
    accept)), for example C(ip filter FORWARD) of a firewall or of Docker, drops published ports and forwarded
    traffic through this host; it is listed in RV(firewall) and warned about on every run (a warning starting
    with C(WARNING:)), and a failure message names it, so a blocked flow shows why. The same finding as
    M(hostnet.provision.portmap)'s RV(hostnet.provision.portmap#module:firewall). Without libnftables the
    module warns that it could not read it.
author:
  - hostnet.provision contributors (@hostnet-provision)
attributes:
  check_mode:
    support: full
    description: Probes are read-only and also run in check mode.
  diff_mode:
    support: none
    description: Nothing changes, so there is no diff.
  platform:
    support: full
    platforms: [linux]
    description: Linux only.
options:
  checks:
    description:
      - The probes.
      - At least one check or one lookup is needed.
    type: list
    elements: dict
    default: []
    suboptions:
      from:
        description: Source namespace (name, path or C(pid:PID)); empty for the namespace the module runs in.
        type: str
      to:
        description: Destination IPv4 or IPv6 address.
        type: str
        required: true
      protocol:
        description: V(icmp) sends an echo request; V(tcp) connects to O(checks[].port).
        type: str
        choices: [icmp, tcp]
        default: icmp
      port:
        description: TCP port, required for V(tcp) and refused for V(icmp).
        type: int
      expect:
        description:
          - If set, the module fails unless the result equals it (V(true) reachable, V(false) blocked).
          - A result of V(unknown) fails either expectation.
        type: bool
      reset_reaches:
        description:
          - For V(tcp) only. A reset (or ICMP port unreachable) counts as V(reachable), with
            C(reason=refused (reached, nothing listens)).
          - Meant for published ports probed through the host's address. The DNAT sent the connection to the
            endpoint and its kernel answered, so the published path works even when nothing listens in the
            endpoint. A drop (timeout), ICMP host unreachable or prohibited still count as V(blocked).
          - A reset sent by the host itself or by a firewall rule rejecting with a reset reads the same, so
            this proves the port answers, not which namespace answered.
        type: bool
      label:
        description: Free text copied to the result, to tell checks apart in a report.
        type: str
  lookups:
    description:
      - Names to resolve inside namespaces before the checks run.
      - C(result) is V(resolved) with C(addresses), V(not found) when every name asked for is unknown
        (NXDOMAIN) or has no record of the family, or V(unknown) when no nameserver answered for some name
        (timeout, ICMP port unreachable, SERVFAIL, REFUSED, no nameserver in the file); C(reason) says which.
    type: list
    elements: dict
    default: []
    suboptions:
      from:
        description: Source namespace (name, path or C(pid:PID)); empty for the namespace the module runs in.
        type: str
      name:
        description:
          - The name to look up. A name with fewer dots than C(ndots) is asked for with each search domain first,
            then as it is; a name ending in a dot only as it is.
        type: str
        required: true
      family:
        description: V(ipv4) asks for A records, V(ipv6) for AAAA records.
        type: str
        choices: [ipv4, ipv6]
        default: ipv4
      expect:
        description:
          - If set, the module fails unless the lookup resolves to exactly these addresses (in any order).
          - An empty list means the name must not resolve (C(result=not found)).
          - A result of V(unknown) fails any expectation.
        type: list
        elements: str
      reach:
        description:
          - If set, each address the name resolved to is also probed with an ICMP check from the same namespace,
            expecting this (V(true) reachable, V(false) blocked). A name is as reachable as its address.
          - Not done for a lookup that missed its O(lookups[].expect).
          - The check is labelled C(SOURCE -> NAME by name (ADDRESS)), SOURCE being O(lookups[].reach_label).
        type: bool
      reach_label:
        description: How the checks of O(lookups[].reach) name their source; default O(lookups[].from) (or C(host)).
        type: str
      label:
        description: Free text copied to the result.
        type: str
  timeout:
    description:
      - Seconds to wait for each answer, above 0 and at most 60; anything else is refused before probing
        (a probe with no time to wait would report everything blocked).
      - Also bounds each DNS query of O(lookups), per nameserver and name asked for.
    type: float
    default: 1.0
'''

EXAMPLES = r'''
- name: Endpoints of one network reach each other; tenants do not
  hostnet.provision.reachability:
    checks:
      - {from: web1, to: 198.51.100.3, expect: true}
      - {from: acme1, to: 203.0.113.66, expect: false, label: acme to globex}
      - {from: '', to: 127.0.0.1, protocol: tcp, port: 8080, expect: true, label: published port from the host}

- name: A published port answers through the host, even with nothing listening in the endpoint
  hostnet.provision.reachability:
    checks:
      - {from: '', to: 198.18.0.11, protocol: tcp, port: 8080, reset_reaches: true, expect: true}
    timeout: 0.5

- name: Names resolve inside the endpoints, and what they resolve to answers
  hostnet.provision.reachability:
    lookups:
      - {from: web1, name: web2, family: ipv4, expect: [198.51.100.3], reach: true}
      - {from: web1, name: web2, family: ipv6, expect: ['2001:db8:100::3']}
      - {from: acme1, name: globex1, expect: [], label: another tenant's name}
    timeout: 0.5
  register: names

- name: The addresses a name resolved to
  ansible.builtin.debug:
    msg: "{{ names.names | map(attribute='addresses') | list }}"
'''

RETURN = r'''
results:
  description:
    - Each check with C(result) (V(reachable), V(blocked) or V(unknown)), C(reason) (for example V(echo reply),
      V(connected), V(timeout), V(refused), V(unreachable), V(prohibited), or why the probe could not run)
      and C(reachable) (true, false, or null when unknown) added.
  returned: always
  type: list
  elements: dict
  sample: [{'from': 'web1', 'to': '198.51.100.3', 'protocol': 'icmp', 'result': 'reachable',
            'reason': 'echo reply', 'reachable': true}]
names:
  description:
    - Each lookup with C(result) (V(resolved), V(not found) or V(unknown)), C(reason), C(addresses) (sorted; empty
      unless resolved), C(ok) (whether the addresses equal C(expect); null without one), C(resolv_conf) (the file
      read) and C(server) (the nameserver that answered last, or null) added.
  returned: when O(lookups) is given
  type: list
  elements: dict
  sample: [{'from': 'web1', 'name': 'web2', 'family': 'ipv4', 'expect': ['198.51.100.3'], 'result': 'resolved',
            'reason': 'answered by 198.51.100.1 for web2.web', 'addresses': ['198.51.100.3'], 'ok': true,
            'resolv_conf': '/etc/netns/web1/resolv.conf', 'server': '198.51.100.1'}]
unexpected:
  description: The checks whose result differs from their C(expect), including every V(unknown) one with an expect.
  returned: always
  type: list
  elements: dict
  sample: []
firewall:
  description:
    - Base chains of other nftables tables on the forward hook of the namespace the module runs in whose policy
      drop would drop published or forwarded traffic (no rule of theirs accepts DNATed connections), for the
      address families of the checks. Reported on every run; empty when there is none.
  returned: always
  type: list
  elements: dict
  sample: [{'netns': null, 'family': 'ipv4', 'chain': 'ip filter FORWARD', 'policy': 'drop'}]
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.hostnet.provision.plugins.module_utils._adapter import run_probe_module
from ansible_collections.hostnet.provision.plugins.module_utils._errors import HostnetError


class _WithNames(object):
    """The module as run_probe_module sees it when lookups ran first: the
    checks include those to the resolved addresses, and every result
    carries the lookups (``names``); lookups that missed their expect fail
    the run like checks that do."""

    def __init__(self, module, checks, names):
        self._module = module
        self.params = dict(module.params, checks=checks)
        self._names = names
        self._wrong = [n for n in names if n.get('ok') is False]

    def __getattr__(self, attr):
        return getattr(self._module, attr)

    def _names_msg(self):
        return '%d of %d lookups did not match expect: %s' % (len(self._wrong), len(self._names), '; '.join(
            '%s: %s (%s)' % (n.get('label') or '%s %s from %s' % (n['name'], n['family'], n.get('from') or 'host'),
                             ' '.join(n['addresses']) if n['result'] == 'resolved' else n['result'], n['reason'])
            for n in self._wrong))

    def exit_json(self, **result):
        if self._wrong:
            self._module.fail_json(msg=self._names_msg(), names=self._names, **result)
        self._module.exit_json(names=self._names, **result)

    def fail_json(self, msg, **result):
        if self._wrong:
            msg = '%s; %s' % (msg, self._names_msg())
        self._module.fail_json(msg=msg, names=self._names, **result)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            checks=dict(type='list', elements='dict', default=[], options={
                'from': dict(type='str'),
                'to': dict(type='str', required=True),
                'protocol': dict(type='str', choices=['icmp', 'tcp'], default='icmp'),
                'port': dict(type='int'),
                'expect': dict(type='bool'),
                'reset_reaches': dict(type='bool'),
                'label': dict(type='str'),
            }),
            lookups=dict(type='list', elements='dict', default=[], options={
                'from': dict(type='str'),
                'name': dict(type='str', required=True),
                'family': dict(type='str', choices=['ipv4', 'ipv6'], default='ipv4'),
                'expect': dict(type='list', elements='str'),
                'reach': dict(type='bool'),
                'reach_label': dict(type='str'),
                'label': dict(type='str'),
            }),
            timeout=dict(type='float', default=1.0),
        ),
        supports_check_mode=True,
    )
    if not module.params['lookups']:
        run_probe_module(module)
        return
    from ansible_collections.hostnet.provision.plugins.module_utils._probe import lookup, name_checks, validate

    try:
        # Everything is validated before the first query or probe.
        checks = validate(module.params['checks'], module.params['timeout'], allow_empty=True)
        names = lookup(module.params['lookups'], module.params['timeout'])
    except HostnetError as err:
        module.fail_json(msg=str(err), resource=err.resource, field=err.field, value=err.value)
    checks = checks + name_checks(names)
    wrapped = _WithNames(module, checks, names)
    if not checks:
        wrapped.exit_json(changed=False, results=[], unexpected=[], firewall=[])
    run_probe_module(wrapped)


if __name__ == '__main__':
    main()
