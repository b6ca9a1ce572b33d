# -*- coding: utf-8 -*-
# Copyright: contributors to hostnet.provision
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Operations on one link that several kinds share (attributes, addresses,
routes), each with its undo.

Private to the hostnet.provision collection. Operations look the link up by
name when they run, so they work for links that an earlier operation of the
same plan creates.
"""

from __future__ import annotations

import ipaddress

from ansible_collections.hostnet.provision.plugins.module_utils import _intent
from ansible_collections.hostnet.provision.plugins.module_utils._errors import (
    ConflictError,
    LinkNotFound,
    NotManagedError,
)
from ansible_collections.hostnet.provision.plugins.module_utils._engine import Op
from ansible_collections.hostnet.provision.plugins.module_utils._netlink import OWNER_TAG, is_managed, parse_alias

__all__ = ['LinkRef', 'managed_link_keys', 'one_prefix_per_ipv6', 'attribute_ops', 'address_ops', 'route_ops', 'repair_op', 'claim', 'read_routes']


class LinkRef:
    """A link named in a namespace, resolved to its index when needed."""

    def __init__(self, kernel, netns, name, resource, field='name'):
        self.kernel = kernel
        self.netns = netns
        self.name = name
        self.resource = resource
        self.field = field
        # Index of the link this ref's create op made (see mark_created).
        self.created = None

    def mark_created(self):
        """Right after a create op made the link: remember which link it is."""
        link = self.get()
        self.created = link['index'] if link is not None else None

    def remove_created(self):
        """Undo of a create: delete the link the op made, and only that one.

        A create that failed because the name was taken meanwhile (EEXIST
        between plan and run, another tool or a concurrent run) made nothing,
        so nothing is deleted; a link that holds the name by the time the undo
        runs but is not the one made here (another index) is left alone.
        """
        created, self.created = self.created, None
        link = self.get() if created is not None else None
        if link is not None and link['index'] == created:
            self.kernel.link_del(self.netns, self.resource, created)
            _intent.forget(self.netns, self.name, created)

    def get(self):
        return self.kernel.link(self.netns, self.name, self.resource)

    def index(self):
        index = self.kernel.link_index(self.netns, self.name, self.resource)
        if index is None:
            raise LinkNotFound('%s: link %s vanished while being configured' % (self.resource, self.name),
                               self.resource, self.field, self.name)
        return index

    def set(self, field=None, value=None, **kwargs):
        index = self.index()
        self.kernel.link_set(self.netns, self.resource, index, field=field, value=value, **kwargs)
        parsed = parse_alias(kwargs.get('ifalias'))
        if parsed is not None and parsed[0] != 'veth-peer':
            # Marked as ours: the record of the name holds this link's index
            # (a veth's peer end is checked through its host end).
            _intent.record(self.netns, self.name, index)


def managed_link_keys(kernel, scope, kind, owned=is_managed):
    """(netns, name) of every link of a kind that the collection owns in the scope."""
    return [(netns, link['name']) for netns in scope if kernel.exists(netns)
            for link in kernel.links(netns).values() if link['kind'] == kind and owned(link)]


def claim(link, kind, resource, name, netns):
    """Refuse a link that holds our name but is not ours or not this kind.

    A link half made by an interrupted run of the collection (see _intent)
    counts as absent: the run deletes it first and makes it again."""
    if link is None:
        return None
    where = (' in netns %s' % netns) if netns else ''
    if not is_managed(link) and _intent.is_half_made(netns, link):
        return None
    if not is_managed(link):
        raise NotManagedError(
            '%s: a %s named %r already exists%s and was not created by %s; it is left alone '
            '(choose another name or remove it yourself)' % (resource, link['kind'] or 'link', name, where, OWNER_TAG),
            resource, 'name', name)
    if link['kind'] != kind:
        raise ConflictError('%s: %r%s is a %s managed by %s, not a %s; delete it with the matching '
                            'module first' % (resource, name, where, link['kind'], OWNER_TAG, kind),
                            resource, 'name', name)
    return link


def one_prefix_per_ipv6(addresses, desired):
    """Merged address lists: an IPv6 address given with a new prefix length
    replaces the old one (the kernel refuses the same IPv6 address twice)."""
    if not addresses or not desired:
        return addresses
    wanted = dict((ipaddress.ip_interface(a).ip, a) for a in desired if ':' in a)
    return [a for a in addresses if ':' not in a or wanted.get(ipaddress.ip_interface(a).ip, a) == a]


def attribute_ops(ref, before, after, prefix=''):
    """mtu and mac changes (with their old values as undo)."""
    ops = []
    for field, nl_name in (('mtu', 'mtu'), ('mac', 'address')):
        old, new = (before or {}).get(field), after.get(field)
        if new is None or old == new:
            continue
        ops.append(Op(ref.resource, 'set %s%s of %s to %s (was %s)' % (prefix, field, ref.name, new, old),
                      _setter(ref, field, nl_name, new),
                      _setter(ref, field, nl_name, old) if old is not None else None))
    return ops


def _setter(ref, field, nl_name, value):
    return lambda: ref.set(field=field, value=value, **{nl_name: value})


def address_ops(ref, before_addrs, after_addrs, field='addresses'):
    ops = []
    before_addrs = before_addrs or []
    after_addrs = after_addrs or []
    kernel, netns, resource = ref.kernel, ref.netns, ref.resource
    for cidr in before_addrs:
        if cidr not in after_addrs:
            ops.append(Op(resource, 'remove address %s from %s' % (cidr, ref.name),
                          _addr(kernel.addr_del, ref, cidr), _addr(kernel.addr_add, ref, cidr)))
    for cidr in after_addrs:
        if cidr not in before_addrs:
            ops.append(Op(resource, 'add address %s to %s' % (cidr, ref.name),
                          _addr(kernel.addr_add, ref, cidr), _addr(kernel.addr_del, ref, cidr)))
    return ops


def _addr(fn, ref, cidr):
    return lambda: fn(ref.netns, ref.resource, ref.index(), cidr)


def read_routes(kernel, netns, index):
    """Our routes on a link: (gateways, routes) in config shape."""
    gateways, routes = [], []
    for r in kernel.managed_routes(netns, index):
        # The kernel's default metrics (0 for IPv4, 1024 for IPv6) mean "none given".
        metric = None if r['metric'] in (None, 0) or (r['metric'] == 1024 and ':' in r['dest'] + (r['via'] or '')) \
            else r['metric']
        if r['dest'] == 'default' and r['via'] and metric is None:
            gateways.append(r['via'])
        else:
            routes.append({'dest': r['dest'], 'via': r['via'], 'metric': metric})
    return sorted(gateways, key=lambda a: (':' in a, a)), sorted(routes, key=_route_sort)


def _route_sort(r):
    return (r['dest'], r['via'] or '', r['metric'] or 0)


def route_ops(ref, before_routes, after_routes, field='routes'):
    """Routes are dicts {dest, via, metric}; gateways are default routes."""
    ops = []
    kernel = ref.kernel
    before_routes = before_routes or []
    after_routes = after_routes or []
    for r in before_routes:
        if r not in after_routes:
            ops.append(Op(ref.resource, 'remove route %s%s from %s' % (r['dest'], _via(r), ref.name),
                          _route(kernel.route_del, ref, r, field), _route(kernel.route_add, ref, r, field)))
    for r in after_routes:
        if r not in before_routes:
            ops.append(Op(ref.resource, 'add route %s%s on %s' % (r['dest'], _via(r), ref.name),
                          _route(kernel.route_add, ref, r, field), _route(kernel.route_del, ref, r, field)))
    return ops


def _via(r):
    return ' via %s' % r['via'] if r.get('via') else ''


def _route(fn, ref, r, field):
    return lambda: fn(ref.netns, ref.resource, ref.index(), r['dest'], r.get('via'), r.get('metric'), field=field)


def repair_op(ref, addresses, routes):
    """Re-add desired addresses and routes that the kernel dropped.

    Removing an IPv4 primary address also removes its secondaries and the
    routes through that subnet; this op, placed after a link's address and
    route ops, puts back whatever of the desired state went with them.
    """
    def run():
        kernel = ref.kernel
        index = ref.index()
        have = kernel.addresses(ref.netns, index)
        for cidr in addresses or []:
            if cidr not in have:
                kernel.addr_add(ref.netns, ref.resource, index, cidr)
        _gateways, _routes = read_routes(kernel, ref.netns, index)
        have_routes = _routes + [{'dest': 'default', 'via': gw, 'metric': None} for gw in _gateways]
        for r in routes or []:
            if r not in have_routes:
                kernel.route_add(ref.netns, ref.resource, index, r['dest'], r.get('via'), r.get('metric'))
    return Op(ref.resource, None, run)
