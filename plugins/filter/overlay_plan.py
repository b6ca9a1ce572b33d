# -*- coding: utf-8 -*-
# Copyright: contributors to hostnet.provision
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The overlay_plan filter: one host's share of an overlay network."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError

from ansible_collections.hostnet.provision.plugins.module_utils._topology import PlanError, plan_overlay


def overlay_plan(settings, host, members, net_info=None, errors='raise'):
    try:
        return plan_overlay(settings, host, members, net_info)
    except PlanError as err:
        if errors == 'return':
            return {'failed': True, 'msg': str(err), 'problems': list(err.problems)}
        raise AnsibleFilterError(str(err)) from None


def overlay_members(hosts, hostvars):
    """The overlay's hosts as plan_overlay wants them, from their variables."""
    members = []
    for name in hosts:
        hv = hostvars[name]
        members.append({
            'name': name,
            'local_ip': hv.get('overlay_network_underlay_ip') or hv.get('overlay_network_local_ip') or None,
            'index': hv.get('overlay_network_host_index'),
            'endpoints': list(hv.get('overlay_network_endpoints') or []),
        })
    return members


class FilterModule(object):
    def filters(self):
        return {'overlay_plan': overlay_plan, 'overlay_members': overlay_members}
