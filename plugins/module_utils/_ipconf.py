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

__all__ = ['gateways', 'routes', 'check_nexthop', 'check_on_link', 'gateway_routes', 'check_default_routes']


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
        check_nexthop(ip, addresses, res, field, gw)
        out.append(addr)
    return sorted(out, key=lambda a: (':' in a, a))


def check_nexthop(ip, addresses, res, field, value, label=''):
    """A next hop must be another host of the link's subnet: not the link's
    own address (the kernel refuses it for IPv6, and an IPv4 one is a dead
    route), nor an IPv4 subnet's network or broadcast address (the kernel
    refuses the broadcast one with a bare EINVAL)."""
    for address in addresses or []:
        if not isinstance(address, str) or '/' not in address:
            continue
        iface = ipaddress.ip_interface(address)
        if iface.ip.version != ip.version:
            continue
        if ip == iface.ip:
            raise ValidationError('%s: %s %s%s is the link\'s own address (%s); a next hop is another host'
                                  % (res, field, label, ip, address), res, field, value)
        net = iface.network
        if ip.version == 4 and net.prefixlen <= 30:
            for what, special in (('network', net.network_address), ('broadcast', net.broadcast_address)):
                if ip == special:
                    raise ValidationError('%s: %s %s%s is the %s address of the subnet %s (address %s), not a host'
                                          % (res, field, label, ip, what, net, address), res, field, value)


_METRIC_MAX = 2 ** 32 - 1


def routes(value, res, field='routes', addresses=None):
    """Route dicts {dest, via, metric}, normalised and sorted; a via is
    checked against the link's addresses when they are given."""
    if value is None:
        return None
    out = []
    for route in value:
        if not isinstance(route, dict) or not route.get('dest'):
            raise ValidationError('%s: %s entry %r needs a dest' % (res, field, route), res, field, route)
        metric = route.get('metric')
        if metric is not None and (not isinstance(metric, int) or isinstance(metric, bool)
                                   or not 0 <= metric <= _METRIC_MAX):
            raise ValidationError('%s: %s metric %r of %s is out of range (0 to %d)'
                                  % (res, field, metric, route['dest'], _METRIC_MAX), res, field, metric)
        entry = {
            'dest': v.route_dest(route['dest'], res, field),
            'via': v.ip_address(route['via'], res, field) if route.get('via') else None,
            'metric': metric or None,
        }
        if entry['via']:
            via = ipaddress.ip_address(entry['via'])
            if entry['dest'] != 'default' and ipaddress.ip_network(entry['dest']).version == 6 and via.version == 4:
                raise ValidationError('%s: %s via %s is an IPv4 address; the kernel cannot route IPv6 (%s) through it'
                                      % (res, field, via, entry['dest']), res, field, route['via'])
            if via.is_multicast or via.is_unspecified or via.is_loopback:
                raise ValidationError('%s: %s via %s is not a unicast address' % (res, field, via),
                                      res, field, route['via'])
            check_nexthop(via, addresses, res, field, route['via'], 'via ')
        if entry in out:
            raise ValidationError('%s: %s lists %s twice' % (res, field, entry['dest']), res, field, route)
        out.append(entry)
    return sorted(out, key=lambda r: (r['dest'], r['via'] or '', r['metric'] or 0))


def check_on_link(addresses, gws, routes_, res, gw_field='gateway', routes_field='routes'):
    """Every next hop of a link's desired state (after the change) must be
    on the link: inside one of its subnets or of one of its routes without
    via (IPv6 link-local next hops always are), and not the link's own,
    network or broadcast address. The kernel refuses the others with a bare
    EINVAL ("Nexthop has invalid gateway")."""
    nets = [ipaddress.ip_interface(a).network for a in addresses or []]
    everywhere = False
    for route in routes_ or []:
        if not route.get('via'):
            if route['dest'] == 'default':
                everywhere = True
            else:
                nets.append(ipaddress.ip_network(route['dest']))
    hops = [(gw_field, gw, 'default') for gw in gws or []]
    hops += [(routes_field, r['via'], r['dest']) for r in routes_ or [] if r.get('via')]
    for field, via, dest in hops:
        ip = ipaddress.ip_address(via)
        label = '' if field == gw_field else 'via '
        check_nexthop(ip, addresses, res, field, via, label)
        if everywhere or (ip.version == 6 and ip.is_link_local):
            continue
        if dest != 'default' and ipaddress.ip_network(dest).version != ip.version:
            continue  # an IPv4 route through an IPv6 next hop: resolved by IPv6
        if not any(ip in n for n in nets if n.version == ip.version):
            raise ValidationError('%s: %s %s%s%s is not on the link: it is in none of its subnets (%s) and no '
                                  'route of the link without via covers it'
                                  % (res, field, label, ip, '' if dest == 'default' else ' (for %s)' % dest,
                                     ', '.join(str(n) for n in nets if n.version == ip.version) or 'none'),
                                  res, field, via)


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
