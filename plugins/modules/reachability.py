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
  - Every check and O(timeout) are validated before the first packet is sent.
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
    description: The probes.
    type: list
    elements: dict
    required: true
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
      label:
        description: Free text copied to the result, to tell checks apart in a report.
        type: str
  timeout:
    description:
      - Seconds to wait for each answer, above 0 and at most 60; anything else is refused before probing
        (a probe with no time to wait would report everything blocked).
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


def main():
    module = AnsibleModule(
        argument_spec=dict(
            checks=dict(type='list', elements='dict', required=True, options={
                'from': dict(type='str'),
                'to': dict(type='str', required=True),
                'protocol': dict(type='str', choices=['icmp', 'tcp'], default='icmp'),
                'port': dict(type='int'),
                'expect': dict(type='bool'),
                'label': dict(type='str'),
            }),
            timeout=dict(type='float', default=1.0),
        ),
        supports_check_mode=True,
    )
    run_probe_module(module)


if __name__ == '__main__':
    main()
