# -*- coding: utf-8 -*-
# Copyright: contributors to hostnet.provision
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one clash check of addresses and routes against the host's routing.

Private to the hostnet.provision collection.

Every kind that adds addresses or routes (bridge, veth and its peer,
macvlan) calls ``check`` from its plan, before anything changes. A new
address's subnet, or a new route's destination, is refused when it

* overlaps a route the collection did not make, in any routing table of the
  namespace it goes into (VPN and policy tables included), other than the
  routes of the link itself and of the link it is attached to (the bridge of
  a veth, the parent of a macvlan);
* overlaps the ``from``/``to`` selector of a policy routing rule there;
* would cover or re-route, in the namespace the module runs in, the address
  the controller connects from (the first field of ``SSH_CONNECTION``) or the
  gateway of the host's default route.

An address that goes into another namespace (an endpoint's) is also checked
against the routes and rules of the module's namespace: that is where the
endpoint's subnet is reached from. Each refusal names the new address or
route and what it clashes with. ``allow_route_overlap: true`` on a resource
skips the check for that resource (the rare intended overlap).
"""

from __future__ import annotations

import ipaddress
import os

from ansible_collections.hostnet.provision.plugins.module_utils import _nsfs
from ansible_collections.hostnet.provision.plugins.module_utils._errors import ConflictError, ValidationError
from ansible_collections.hostnet.provision.plugins.module_utils._netlink import RTPROT_HOSTNET, is_managed

__all__ = ['OVERRIDE', 'override', 'check', 'added', 'management_address']

# The per-resource option that skips the check.
OVERRIDE = 'allow_route_overlap'

# Route types that steer traffic: unicast, blackhole, unreachable, prohibit
# (local, broadcast, anycast and multicast entries describe addresses).
_ROUTING_TYPES = frozenset((1, 6, 7, 8))
_RT_TABLE_LOCAL = 255
_TABLE_NAMES = {253: 'default', 254: 'main', 255: 'local'}


def override(item, res):
    """The resource's ``allow_route_overlap``, as the private field its
    normalised form carries when it is true ({} otherwise): kinds merge it
    with ``out.update(override(item, res))`` and pass
    ``after.get('_allow_route_overlap')`` to ``check``."""
    value = item.get(OVERRIDE)
    if value is None or value is False:
        return {}
    if value is not True:
        raise ValidationError('%s: %s %r must be true or false' % (res, OVERRIDE, value), res, OVERRIDE, value)
    return {'_' + OVERRIDE: True}


def management_address(environ=None):
    """The address the controller connects from (``SSH_CONNECTION``), or None."""
    conn = (os.environ if environ is None else environ).get('SSH_CONNECTION') or ''
    first = conn.split(' ', 1)[0].split('%', 1)[0]
    try:
        address = ipaddress.ip_address(first)
    except ValueError:
        return None
    if address.version == 6 and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def check(kernel, res, entries, exclude=(), allow=False):
    """Refuse new addresses and routes that clash with the host's routing.

    ``entries``: (netns, field, value) of what the plan adds; value is an
    address with prefix length (a str) or a route dict {dest, via, metric}.
    ``exclude``: (netns, link name) of the links whose own routes are no
    clash (the link the address goes on, its bridge or parent).
    """
    if allow or not entries:
        return
    views = {}
    mgmt = management_address()
    for netns, field, value in entries:
        is_route = isinstance(value, dict)
        net, text = _network(value)
        spaces = [netns]
        if not is_route and not _nsfs.same_namespace(netns, None):
            spaces.append(None)
        for space in spaces:
            key = _nsfs.namespace_id(space)
            if key is None:
                continue  # check mode: made earlier in the play, still empty
            if key not in views:
                views[key] = _View(kernel, space, exclude)
            view = views[key]
            _check_one(view, res, field, text, net, is_route, mgmt if space is None or
                       _nsfs.same_namespace(space, None) else None)


def _network(value):
    if isinstance(value, dict):
        dest = value['dest']
        family = 6 if ':' in dest + (value.get('via') or '') else 4
        if dest == 'default':
            net = ipaddress.ip_network('::/0' if family == 6 else '0.0.0.0/0')
        else:
            net = ipaddress.ip_network(dest, strict=False)
        return net, 'route %s%s' % (dest, ' via %s' % value['via'] if value.get('via') else '')
    return ipaddress.ip_interface(value).network, 'address %s' % value


def _check_one(view, res, field, text, net, is_route, mgmt):
    where = _nsfs.spec_label(view.netns)
    hint = '; set %s: true on this resource if the overlap is intended' % OVERRIDE
    if mgmt is not None and mgmt.version == net.version and mgmt in net and view.reroutes(net, mgmt):
        raise ConflictError('%s: %s %s would cover %s, the address the controller connects from '
                            '(SSH_CONNECTION), and take the management connection\'s replies%s'
                            % (res, field, text, mgmt, hint), res, field, text.split(' ', 1)[1])
    if net.prefixlen:
        for gw, route in view.default_gateways():
            if gw.version == net.version and gw in net and view.reroutes(net, gw):
                raise ConflictError('%s: %s %s would cover %s, the gateway of %s\'s default route (%s)%s'
                                    % (res, field, text, gw, where, _describe(route), hint),
                                    res, field, text.split(' ', 1)[1])
    for route in view.foreign_routes():
        rnet = route['_net']
        if rnet.version != net.version:
            continue
        if route['dest'] == 'default':
            clash = is_route and net.prefixlen == 0
        else:
            clash = net.overlaps(rnet)
        if clash:
            raise ConflictError('%s: %s %s overlaps the route %s in %s, which hostnet.provision did not make%s'
                                % (res, field, text, _describe(route), where, hint),
                                res, field, text.split(' ', 1)[1])
    for rule in view.rules():
        for selector in ('from', 'to'):
            sel = rule[selector]
            if sel is None:
                continue
            snet = ipaddress.ip_network(sel)
            if snet.version == net.version and snet.overlaps(net):
                raise ConflictError('%s: %s %s overlaps the policy routing rule "%s%s %s lookup %s" in %s%s'
                                    % (res, field, text, '%s: ' % rule['priority'] if rule['priority'] is not None
                                       else '', selector, sel, _table(rule['table']), where, hint),
                                    res, field, text.split(' ', 1)[1])


def _table(table):
    return _TABLE_NAMES.get(table, str(table))


def _describe(route):
    text = route['dest']
    if route.get('via'):
        text += ' via %s' % route['via']
    if route.get('_dev'):
        text += ' dev %s' % route['_dev']
    if route['type'] == 6:
        text = 'blackhole ' + text
    elif route['type'] in (7, 8):
        text = ('unreachable ' if route['type'] == 7 else 'prohibit ') + text
    return '%s (table %s)' % (text, _table(route['table']))


class _View:
    """The routing of one namespace as far as the check needs it."""

    def __init__(self, kernel, netns, exclude):
        self.kernel = kernel
        self.netns = netns
        links = kernel.links(netns)
        by_index = dict((link['index'], link) for link in links.values())
        same = [name for space, name in exclude if _nsfs.same_namespace(space, netns)]
        # On the link itself and the one it is attached to, the subnets on
        # the wire (routes without a gateway) are no clash; routes through a
        # gateway there lead elsewhere and are.
        self._near = set(links[name]['index'] for name in same if name in links)
        self._ours = set(index for index, link in by_index.items() if is_managed(link))
        self._routes = []
        for route in kernel.all_routes(netns):
            if route['type'] not in _ROUTING_TYPES or route['table'] == _RT_TABLE_LOCAL:
                continue
            route = dict(route)
            family_any = '::/0' if route['family'] == 10 else '0.0.0.0/0'
            route['_net'] = ipaddress.ip_network(family_any if route['dest'] == 'default' else route['dest'])
            link = by_index.get(route['oif'])
            route['_dev'] = link['name'] if link else None
            route['_ours'] = route['proto'] == RTPROT_HOSTNET or route['oif'] in self._ours or \
                (route['oif'] in self._near and not route['via'])
            if route['_net'].is_link_local or route['_net'].is_multicast:
                continue
            self._routes.append(route)

    def foreign_routes(self):
        return [r for r in self._routes if not r['_ours']]

    def default_gateways(self):
        return [(ipaddress.ip_address(r['via']), r) for r in self._routes
                if r['dest'] == 'default' and r['via'] and not r['_ours']]

    def reroutes(self, net, address):
        """Whether a route to ``net`` would win over the host's current route
        to ``address`` (longest prefix match in the main table)."""
        best = None
        for route in self._routes:
            if route['table'] == 254 and route['_net'].version == address.version and address in route['_net']:
                if best is None or route['_net'].prefixlen > best['_net'].prefixlen:
                    best = route
        return best is None or best['_net'].prefixlen <= net.prefixlen

    def rules(self):
        return [r for r in self.kernel.rules(self.netns) if r['from'] or r['to']]


def added(netns, field, before, after):
    """(netns, field, value) for what ``after`` adds to ``before``: the
    entries a plan's clash check looks at."""
    before = before or []
    return [(netns, field, value) for value in after or [] if value not in before]
