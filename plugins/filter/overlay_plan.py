# -*- coding: utf-8 -*-
# Copyright: contributors to hostnet.provision
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The overlay filters: each host's underlay, its share of an overlay
network, and its forwarding entries for the other hosts' MACs."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError

from ansible_collections.hostnet.provision.plugins.module_utils._topology import (
    PlanError,
    overlay_forwarding as _overlay_forwarding,
    overlay_underlay as _overlay_underlay,
    plan_overlay,
)


def _failed(err, errors):
    if errors == 'return':
        return {'failed': True, 'msg': str(err), 'problems': list(err.problems)}
    raise AnsibleFilterError(str(err)) from None


def overlay_plan(settings, host, members, net_info=None, errors='raise'):
    try:
        return plan_overlay(settings, host, members, net_info)
    except PlanError as err:
        return _failed(err, errors)


def overlay_underlay(net_info, local_ip=None, dev=None, state='present'):
    return _overlay_underlay(net_info, local_ip or None, dev or None, state)


def overlay_forwarding(plan, hosts, hostvars, errors='raise'):
    reports = []
    for name in hosts:
        other = hostvars[name].get('overlay_network_plan')
        if isinstance(other, dict) and not other.get('failed'):
            reports.append(other.get('report'))
    try:
        return _overlay_forwarding(plan, reports)
    except PlanError as err:
        return _failed(err, errors)


def overlay_members(hosts, hostvars):
    """The overlay's hosts as plan_overlay wants them, from their variables
    and the underlay each one read of itself (overlay_network_underlay)."""
    members = []
    for name in hosts:
        hv = hostvars[name]
        underlay = hv.get('overlay_network_underlay') or {}
        members.append({
            'name': name,
            'local_ip': underlay.get('local_ip') or hv.get('overlay_network_local_ip') or None,
            'underlay_mtu': underlay.get('mtu'),
            'underlay_dev': underlay.get('dev'),
            'state': underlay.get('state') or hv.get('overlay_network_state') or 'present',
            'index': hv.get('overlay_network_host_index'),
            'endpoints': list(hv.get('overlay_network_endpoints') or []),
        })
    return members


class FilterModule(object):
    def filters(self):
        return {'overlay_plan': overlay_plan, 'overlay_members': overlay_members,
                'overlay_underlay': overlay_underlay, 'overlay_forwarding': overlay_forwarding}
