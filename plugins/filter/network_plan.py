# -*- coding: utf-8 -*-
# Copyright: contributors to hostnet.provision
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The network_plan filter: a role's networks → each module's config."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError

from ansible_collections.hostnet.provision.plugins.module_utils._topology import PlanError, plan_networks


def network_plan(networks, net_info=None, prefix='br-', veth_prefix='ve', defaults=None):
    try:
        return plan_networks(networks, net_info, prefix=prefix, veth_prefix=veth_prefix, defaults=defaults)
    except PlanError as err:
        raise AnsibleFilterError(str(err)) from None


class FilterModule(object):
    def filters(self):
        return {'network_plan': network_plan}
