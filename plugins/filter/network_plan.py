# -*- coding: utf-8 -*-
# Copyright: contributors to hostnet.provision
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The network_plan filter: a role's networks → each module's config."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError

from ansible_collections.hostnet.provision.plugins.module_utils._topology import PlanError, plan_networks


def refused(err, errors):
    """A plan error as the caller asked for it: raised, or returned as
    ``{'failed': true, 'msg': ..., 'problems': [...]}`` so that a role can fail
    with exactly that message (one clean line per problem)."""
    if errors == 'return':
        return {'failed': True, 'msg': str(err), 'problems': list(err.problems)}
    raise AnsibleFilterError(str(err)) from None


def network_plan(networks, net_info=None, prefix='br-', veth_prefix='ve', defaults=None, errors='raise'):
    try:
        return plan_networks(networks, net_info, prefix=prefix, veth_prefix=veth_prefix, defaults=defaults)
    except PlanError as err:
        return refused(err, errors)


class FilterModule(object):
    def filters(self):
        return {'network_plan': network_plan}
