# -*- coding: utf-8 -*-
# Copyright: contributors to hostnet.provision
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The IP configuration of an endpoint link (gateways and routes): input
checks and the shape the route operations take.

Private to the hostnet.provision collection. Used by the kinds whose link
is an endpoint inside a namespace (macvlan); the field names are passed in
so that every message names the option the user wrote.
"""

from __future__ import annotations

import ipaddress

from ansible_collections.hostnet.provision.plugins.module_utils import _nsfs
from ansible_collections.hostnet.provision.plugins.module_utils import _validate as v
from ansible_collections.hostnet.provision.plugins.module_utils._errors import ValidationError

__all__ = ['gateways', 'routes', 'gateway_routes', 'check_default_routes']


def gateways(value, addresses, res, field='gateway'):
    """At most one gateway per family, each inside one of the addresses' subnets."""
    if value is None:
        return None
    given = [value] if isinstance(value, str) else list(value)
    out, families = [], set()
    nets = [ipaddress.ip_interface(a).network for a in (addresses or []) if isinstance(a, str) and '/' in a]
    for gw in given:
        addr = v.ip_address(gw, res, field)
        ip = ipaddress.ip_address(addr)
        if ip.version in families:
            raise ValidationError('%s: %s %r: only one gateway per address family' % (res, field, gw),
                                  res, field, gw)
        families.add(ip.version)
        if addresses is not None and not ip.is_link_local and not any(ip in n for n in nets):
            raise ValidationError('%s: %s %s is outside the link\'s subnets (%s)'
                                  % (res, field, addr, ', '.join(str(n) for n in nets) or 'none of its family'),
                                  res, field, gw)
        out.append(addr)
    return sorted(out, key=lambda a: (':' in a, a))


def routes(value, res, field='routes'):
    """Route dicts {dest, via, metric}, normalised and sorted."""
    if value is None:
        return None
    out = []
    for route in value:
        if not isinstance(route, dict) or not route.get('dest'):
            raise ValidationError('%s: %s entry %r needs a dest' % (res, field, route), res, field, route)
        entry = {
            'dest': v.route_dest(route['dest'], res, field),
            'via': v.ip_address(route['via'], res, field) if route.get('via') else None,
            'metric': route.get('metric') or None,
        }
        if entry in out:
            raise ValidationError('%s: %s lists %s twice' % (res, field, entry['dest']), res, field, route)
        out.append(entry)
    return sorted(out, key=lambda r: (r['dest'], r['via'] or '', r['metric'] or 0))


def gateway_routes(gws):
    """Gateways as the default routes that route_ops manages."""
    return [{'dest': 'default', 'via': gw, 'metric': None} for gw in gws or []]


def check_default_routes(items, label, netns_of, name_of, gateways_of, field='gateway'):
    """One default route per family and namespace among the items of a call."""
    slots = {}
    for item in items:
        for gw in gateways_of(item) or []:
            slot = (netns_of(item), ':' in gw)
            other = slots.get(slot)
            if other is not None and other != name_of(item):
                raise ValidationError('%s %s: %s %s: %s %s already sets the default %s route of %s'
                                      % (label, name_of(item), field, gw, label, other,
                                         'IPv6' if slot[1] else 'IPv4', _nsfs.spec_label(slot[0])),
                                      name_of(item), field, gw)
            slots[slot] = name_of(item)
