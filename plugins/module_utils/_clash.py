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
endpoint's subnet is reached from. It adds no route there, so it is not
held against the management address or the default gateway (a macvlan
endpoint on the controller's own LAN is fine). Each refusal names the new address or
route and what it clashes with. ``allow_route_overlap: true`` on a resource
skips the check for that resource (the rare intended overlap).
"""

from __future__ import annotations

import functools
import ipaddress
import os

from ansible_collections.hostnet.provision.plugins.module_utils import _nsfs
from ansible_collections.hostnet.provision.plugins.module_utils._errors import ConflictError, ValidationError
from ansible_collections.hostnet.provision.plugins.module_utils._netlink import RTPROT_HOSTNET, is_managed

__all__ = ['OVERRIDE', 'override', 'check', 'check_entry', 'routing_facts', 'View', 'added', 'management_address']

# The per-resource option that skips the check.
OVERRIDE = 'allow_route_overlap'

# Route types that steer traffic: unicast, blackhole, unreachable, prohibit
# (local, broadcast, anycast and multicast entries describe addresses).
_ROUTING_TYPES = frozenset((1, 6, 7, 8))
_RT_TABLE_LOCAL = 255
_TABLE_NAMES = {253: 'default', 254: 'main', 255: 'local'}
_TYPE_NAMES = {1: 'unicast', 6: 'blackhole', 7: 'unreachable', 8: 'prohibit'}


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
    facts = {}
    for netns, field, value in entries:
        spaces = [netns]
        if not isinstance(value, dict) and not _nsfs.same_namespace(netns, None):
            spaces.append(None)
        for space in spaces:
            key = _nsfs.namespace_id(space)
            if key is None:
                continue  # check mode: made earlier in the play, still empty
            if key not in facts:
                facts[key] = routing_facts(kernel, space)
            near = [name for other, name in exclude if _nsfs.same_namespace(other, space)]
            # The address goes into `space` itself (its prefix route with it),
            # or is only looked at from there: an endpoint's address in its own
            # namespace adds nothing to this one's routing, so it cannot take
            # the management connection or the default gateway away (a macvlan
            # endpoint on the controller's own LAN is the usual case).
            routed_here = space is netns or _nsfs.same_namespace(space, netns)
            check_entry(View(facts[key], near, _nsfs.spec_label(space), host_guards=routed_here),
                        res, field, value)


def routing_facts(kernel, netns):
    """What the decision needs of one namespace, as plain data (the
    ``clash`` section of net_info): routes of every table but ``local``,
    policy rules with a selector, and in the namespace the module runs in
    the address the controller connects from."""
    links = kernel.links(netns)
    by_index = dict((link['index'], link) for link in links.values())
    routes = []
    for route in kernel.all_routes(netns):
        if route['type'] not in _ROUTING_TYPES or route['table'] == _RT_TABLE_LOCAL:
            continue
        link = by_index.get(route['oif'])
        routes.append({
            'dest': route['dest'] if route['dest'] != 'default' else ('::/0' if route['family'] == 10 else '0.0.0.0/0'),
            'via': route['via'],
            'dev': link['name'] if link else None,
            'table': route['table'],
            'type': _TYPE_NAMES[route['type']],
            # Made by the collection: by its protocol number, or on a link it manages.
            'managed': route['proto'] == RTPROT_HOSTNET or bool(link and is_managed(link)),
        })
    rules = [{'from': r['from'], 'to': r['to'], 'priority': r['priority'], 'table': r['table']}
             for r in kernel.rules(netns) if r['from'] or r['to']]
    mgmt = management_address() if _nsfs.same_namespace(netns, None) else None
    return {'routes': routes, 'rules': rules, 'management_address': None if mgmt is None else str(mgmt)}


def check_entry(view, res, field, value, text=None):
    """The decision for one new address (a str with prefix length, or a
    network) or route (a dict) against one namespace's View; raises
    ConflictError naming ``res``, ``field``, the value and what it clashes
    with. ``text``: how the message names the value (default "address X"
    or "route X via Y")."""
    net, default_text = _network(value)
    _check_one(view, res, field, text or default_text, net, isinstance(value, dict))


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


def _check_one(view, res, field, text, net, is_route):
    where = view.label
    mgmt = view.management_address
    value = text.split(' ', 1)[1] if text.startswith(('address ', 'route ')) else text
    hint = '; set %s: true on this %s if the overlap is intended' % (OVERRIDE, view.owner)

    def refuse(message):
        raise ConflictError('%s: %s %s %s%s' % (res, field, text, message, hint), res, field, value)

    if mgmt is not None and mgmt.version == net.version and mgmt in net and view.reroutes(net, mgmt):
        refuse('would cover %s, the address the controller connects from (SSH_CONNECTION), and take the '
               'management connection\'s replies' % mgmt)
    if net.prefixlen:
        for gw, route in view.default_gateways():
            if gw.version == net.version and gw in net and view.reroutes(net, gw):
                refuse('would cover %s, the gateway of %s\'s default route (%s)' % (gw, where, _describe(route)))
    for route in view.foreign_routes():
        rnet = route['_net']
        if rnet.version != net.version:
            continue
        if rnet.prefixlen == 0:
            clash = is_route and net.prefixlen == 0
        else:
            clash = net.overlaps(rnet)
        if clash:
            refuse('overlaps the route %s in %s, which hostnet.provision did not make' % (_describe(route), where))
    for rule in view.rules():
        for selector in ('from', 'to'):
            sel = rule[selector]
            if sel is None:
                continue
            snet = ipaddress.ip_network(sel)
            if snet.version == net.version and snet.overlaps(net):
                refuse('overlaps the policy routing rule "%s%s %s lookup %s" in %s'
                       % ('%s: ' % rule['priority'] if rule['priority'] is not None else '', selector, sel,
                          _table(rule['table']), where))


def _table(table):
    return _TABLE_NAMES.get(table, str(table))


def _describe(route):
    text = 'default' if route['_net'].prefixlen == 0 else route['dest']
    if route.get('via'):
        text += ' via %s' % route['via']
    if route.get('dev'):
        text += ' dev %s' % route['dev']
    if route['type'] != 'unicast':
        text = '%s %s' % (route['type'], text)
    return '%s (table %s)' % (text, _table(route['table']))


class View:
    """The routing of one namespace as far as the decision needs it, built
    from plain data (``routing_facts``: read from the kernel by a module, or
    the ``clash`` section of net_info on the controller for the roles).

    ``near``: names of the links whose routes without a gateway are no
    clash (the link itself and the one it is attached to: the subnets on the
    wire); routes through a gateway there lead elsewhere and are.
    """

    def __init__(self, facts, near=(), label='the current namespace', owner='resource', host_guards=True):
        self.label = label
        self.owner = owner
        # host_guards: the management address and the default gateway are
        # guarded only where the new address or route lands.
        self.host_guards = host_guards
        mgmt = facts.get('management_address')
        self.management_address = _mgmt(mgmt) if host_guards else None
        near = set(near)
        self._routes = []
        for route in facts.get('routes') or []:
            net = _route_net(route['dest'])
            if net is None:
                continue
            route = dict(route)
            route['_net'] = net
            route['_ours'] = bool(route.get('managed')) or (route.get('dev') in near and not route.get('via'))
            self._routes.append(route)
        self._rules = list(facts.get('rules') or [])

    def foreign_routes(self):
        return [r for r in self._routes if not r['_ours']]

    def default_gateways(self):
        if not self.host_guards:
            return []
        return [(ipaddress.ip_address(r['via']), r) for r in self._routes
                if r['_net'].prefixlen == 0 and r['via'] and not r['_ours']]

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
        return self._rules


@functools.lru_cache(maxsize=4096)
def _route_net(dest):
    """A route's destination as a network, None for link-local and
    multicast ones (no clash). Parsed once per run: a role checks each of
    its networks against the same few thousand routes."""
    net = ipaddress.ip_network(dest, strict=False)
    return None if net.is_link_local or net.is_multicast else net


def _mgmt(value):
    if value in (None, ''):
        return None
    address = ipaddress.ip_address(value)
    if address.version == 6 and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def added(netns, field, before, after):
    """(netns, field, value) for what ``after`` adds to ``before``: the
    entries a plan's clash check looks at."""
    before = before or []
    return [(netns, field, value) for value in after or [] if value not in before]
