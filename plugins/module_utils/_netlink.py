# -*- coding: utf-8 -*-
# Copyright: contributors to hostnet.provision
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one door to netlink: sockets per namespace, dumps as plain dicts.

Private to the hostnet.provision collection.

``Kernel`` opens one rtnetlink socket per namespace (entering it once) and
keeps one dump of links, addresses and routes per namespace, refreshed only
after a change there. Dumps, lookups and the small writes every endpoint
needs go over that socket in the wire format of ``_rtnl``; link creation and
the rarer requests go through pyroute2, whose socket in a namespace is
opened only when first needed. Everything it returns is plain JSON-safe
data; every netlink error passes through ``Kernel.call`` or ``Kernel._rt``
and leaves as one of our typed errors.
"""

from __future__ import annotations

import copy
import errno
import functools
import ipaddress
import os
import socket
import time

from ansible_collections.hostnet.provision.plugins.module_utils import _deps
from ansible_collections.hostnet.provision.plugins.module_utils import _intent
from ansible_collections.hostnet.provision.plugins.module_utils import _nsfs
from ansible_collections.hostnet.provision.plugins.module_utils import _rtnl
from ansible_collections.hostnet.provision.plugins.module_utils._errors import (
    HostnetError,
    KernelError,
    LinkNotFound,
    translate_os_error,
)

__all__ = ['Kernel', 'OWNER_TAG', 'RTPROT_HOSTNET', 'is_managed', 'parse_alias', 'make_alias']

# Interface alias carried by every link the collection creates.
OWNER_TAG = 'hostnet.provision'
# Route protocol number marking routes the collection added (iproute2
# shows it as a number; 4 = "static" would be shared with other tools).
RTPROT_HOSTNET = 0x68

_IFA_F_NODAD = 0x02
_RT_TABLE_MAIN = 254
_RT_SCOPE_LINK = 253
_NUD_NOARP = 0x40
_NUD_PERMANENT = 0x80
_NTF_SELF = 0x02
# Requests that only read: they leave a namespace's cached dumps valid.
_READS = ('get_links', 'get_addr', 'get_routes', 'get_neighbours', 'get_rules')
_DUMP_ATTEMPTS = 5
# Link attributes the rtnetlink socket sets itself; others go through pyroute2.
_RT_LINK_SET = frozenset(('state', 'ifalias', 'master', 'mtu', 'address'))
# Where links_del_together gathers the links it deletes together (the first group
# no other link of the namespace is in, from here on).
_BATCH_GROUP = 0x686e0000
_RT_VETH = frozenset(('ifname', 'kind', 'peer', 'mtu', 'address'))
_RT_VETH_PEER = frozenset(('ifname', 'net_ns_fd', 'mtu', 'address'))
# IFLA_MACVLAN_MODE bits.
_MACVLAN_MODES = {1: 'private', 2: 'vepa', 4: 'bridge', 8: 'passthru', 16: 'source'}


# The alias grammar of the links the collection makes, the one place it is
# written down (see parse_alias):
#   hostnet.provision                               bridge, vxlan
#   hostnet.provision veth peer=NAME@NETNS          host end of a veth pair ("." = module's namespace)
#   hostnet.provision veth-peer                     peer end of a veth pair
#   hostnet.provision macvlan parent=NAME[ vlan=N]  macvlan endpoint
#   hostnet.provision macvlan-parent                802.1Q link made for macvlan endpoints
_ALIAS_ROLES = {
    '': (),
    'veth': ('peer',),
    'veth-peer': (),
    'macvlan': ('parent', 'vlan'),
    'macvlan-parent': (),
}
_ALIAS_REQUIRED = {'veth': ('peer',), 'macvlan': ('parent',)}


def parse_alias(alias):
    """A link alias in the collection's grammar → (role, fields), else None.

    ``role`` is '' for the plain tag, or one of the suffixes above; fields is
    a dict of its ``key=value`` tokens. Anything else — another tool's alias,
    or one that merely starts with the tag (``hostnet.provisionXYZ``,
    ``hostnet.provision-fake``, an unknown suffix or key) — is not ours.
    """
    if not isinstance(alias, str) or not alias.startswith(OWNER_TAG):
        return None
    rest = alias[len(OWNER_TAG):]
    if rest == '':
        return '', {}
    if not rest.startswith(' '):
        return None
    role, _sep, tail = rest[1:].partition(' ')
    if role not in _ALIAS_ROLES or not role:
        return None
    if role == 'veth':
        # The peer's namespace name may hold spaces: the field runs to the end.
        tokens = [tail] if tail.startswith('peer=') else ['']
    else:
        tokens = tail.split(' ') if tail else []
    fields = {}
    for token in tokens:
        key, sep, value = token.partition('=')
        if not sep or not value or key not in _ALIAS_ROLES[role] or key in fields:
            return None
        fields[key] = value
    if any(key not in fields for key in _ALIAS_REQUIRED.get(role, ())):
        return None
    if role == 'veth' and '@' not in fields['peer']:
        return None
    if 'vlan' in fields and not fields['vlan'].isdigit():
        return None
    return role, fields


def make_alias(role='', **fields):
    """The alias for a link of a role (the inverse of parse_alias)."""
    parts = [OWNER_TAG] + ([role] if role else [])
    parts.extend('%s=%s' % (k, fields[k]) for k in _ALIAS_ROLES[role] if fields.get(k) is not None)
    return ' '.join(parts)


def is_managed(link):
    """True when the link carries an alias of the collection's grammar and
    the collection's record of the name in that namespace holds this link's
    index (see _intent: a copied alias is not enough)."""
    parsed = parse_alias(link.get('alias'))
    if parsed is None:
        return False
    # A veth's peer end is checked through its host end (whose record
    # holds its index, and which names the peer and its index).
    return parsed[0] == 'veth-peer' or _intent.owned(link)


def _link_to_dict(msg):
    """A link (RTM_NEWLINK payload) as a plain dict."""
    link = _rtnl.parse_link(msg)
    macvlan = link.get('macvlan')
    if macvlan is not None:
        macvlan['mode'] = _MACVLAN_MODES.get(macvlan['mode'], macvlan['mode'])
    return link


def _neigh_to_dict(msg):
    """A neighbour or FDB entry (RTM_NEWNEIGH payload) as a plain dict."""
    entry = _rtnl.parse_neigh(msg)
    return {
        'index': entry['ifindex'],
        'family': entry['family'],
        'state': entry['state'],
        'flags': entry['flags'],
        'mac': (entry['lladdr'] or '').lower() or None,
        'dst': entry['dst'],
        'master': entry['master'],
        'permanent': bool(entry['state'] & _NUD_PERMANENT),
        'self': bool(entry['flags'] & _NTF_SELF),
    }


@functools.lru_cache(maxsize=4096)
def _cidr(value, prefixlen):
    return str(ipaddress.ip_interface('%s/%d' % (value, prefixlen)))


@functools.lru_cache(maxsize=4096)
def _prefix(dst, dst_len):
    return str(ipaddress.ip_network('%s/%d' % (dst, dst_len), strict=False))


def _addr_to_dict(msg):
    family, prefixlen, scope, index, value = _rtnl.parse_addr(msg)
    return {
        'index': index,
        'address': _cidr(value, prefixlen),
        'scope': scope,
        'family': family,
    }


def _route_to_dict(msg):
    route = _rtnl.parse_route(msg)
    dst = route['dst']
    dest = 'default' if dst is None and route['dst_len'] == 0 else _prefix(dst, route['dst_len'])
    return {
        'family': route['family'],
        'dest': dest,
        'via': route['gateway'],
        'oif': route['oif'],
        'metric': route['priority'],
        'table': route['table'],
        'proto': route['proto'],
        'type': route['type'],
        'scope': route['scope'],
    }


class _Namespace:
    """One namespace: its sockets, its fd and its cached dumps.

    ``rt`` (opened inside the namespace when the session starts) carries the
    dumps, lookups and small writes; the pyroute2 socket ``ipr`` is opened
    inside the namespace only when something needs pyroute2 there (link
    creation and the less common requests).
    """

    def __init__(self, spec, fd, rt):
        self.spec = spec
        self.fd = fd
        self.rt = rt
        self._ipr = None
        # The kernel's write generation these caches were read at.
        self.generation = 0
        self._links = None
        self._addrs = None
        self._routes = None
        self._all_routes = None
        self._rules = None
        self._fdb = None
        self._neigh = None
        # After a write the link dump is stale; single links are then looked
        # up by name (one small request each) instead of dumping every link
        # again, which would make a plan of N creates cost N dumps of N links.
        self.stale = False
        self._fresh = {}
        # name → index, kept across writes that cannot remove or renumber a
        # link (see Kernel.link_index).
        self._index = {}
        self.index_generation = 0

    @property
    def ipr(self):
        if self._ipr is None:
            with _nsfs.entered(self.fd):
                self._ipr = _deps.IPRoute()
        return self._ipr

    def invalidate(self):
        self.stale = True
        self._fresh = {}
        self._addrs = self._routes = self._all_routes = self._rules = None
        self._fdb = self._neigh = None

    def close(self):
        ipr, self._ipr = self._ipr, None
        fd, self.fd = self.fd, None
        try:
            if ipr is not None:
                ipr.close()
        finally:
            try:
                self.rt.close()
            finally:
                if fd is not None:
                    os.close(fd)


# Namespace sessions a run keeps open at once (see Kernel._evict).
MAX_SESSIONS = 192


class Kernel:
    """Netlink sessions for every namespace a run touches.

    Use as a context manager; all sockets and namespace fds close on exit.
    """

    def __init__(self):
        _deps.require_pyroute2()
        _intent.forget_cache()
        self._ns = {}
        self._kinds = {}
        # Writes are stamped with a clock, by how far they reach. A write
        # whose reach is not known exactly (a deleted or moved link, whose
        # peer or ports elsewhere change too; a pyroute2 request; touch())
        # stamps everything; a write to one link stamps that link and its
        # namespace's dumps. Cached views and memos compare stamps with the
        # time they were read, so one endpoint more does not make a run read
        # again the thousand that did not change.
        self._clock = 0
        self._stamp_all = 0     # last write of unknown reach
        self._stamp_ns = {}     # namespace key -> last namespace-wide change (touch(spec))
        self._stamp_any = {}    # namespace key -> last write of any kind there (its dumps)
        self._stamp_link = {}   # (namespace key, ('n', name) or ('i', index)) -> last write to it
        self._stamp_index = 0   # last write that may delete, move or renumber a link
        self._deps = []         # what the memo reads in progress depend on (a stack)
        self._canons = {}       # spec -> its key in the stamps (see _canon)
        # Identities of the namespaces this run read and then saw deleted.
        self._forgotten = []
        # Every namespace this run opened, evicted sessions included.
        self._read = set()
        # Whole resources read at a write generation (see memo).
        self._memo = {}

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def close(self):
        sessions, self._ns = list(self._ns.values()), {}
        for ns in sessions:
            ns.close()

    # -- sessions ---------------------------------------------------------

    def _key(self, spec):
        return spec or ''

    def session(self, spec, resource=None, field='netns'):
        """The namespace session for a spec (opened on first use), with its
        cached views dropped if the kernel was written to since they were read."""
        key = self._key(spec)
        ns = self._ns.get(key)
        if ns is not None and key:
            self._ns[key] = self._ns.pop(key)  # most recently used last
        if ns is None:
            self._evict()
            fd = None if not key else _nsfs.open_namespace(key, resource, field)
            try:
                with _nsfs.entered(fd):
                    rt = _rtnl.RtSocket()
            except OSError as exc:
                if fd is not None:
                    os.close(fd)
                raise translate_os_error(exc, 'open netlink socket in %s' % _nsfs.spec_label(spec),
                                         resource, field, spec) from None
            ns = self._ns[key] = _Namespace(key, fd, rt)
            self._read.add(key)
            ns.generation = ns.index_generation = self._clock
            return ns
        canon = self._canon(key)
        if max(self._stamp_all, self._stamp_ns.get(canon, 0), self._stamp_any.get(canon, 0)) > ns.generation:
            ns.invalidate()
            ns.generation = self._clock
        if self._stamp_index > ns.index_generation:
            ns._index = {}
            ns.index_generation = self._clock
        return ns

    def wait_gone(self, spec, names, seconds=5.0):
        """Wait (at most SECONDS) until no link of NAMES is left in SPEC: the
        kernel destroys the links of deleted namespaces in the background,
        a batch at a time, much faster than deleting each pair. Returns the
        names still there."""
        deadline = time.monotonic() + seconds
        names = set(names)
        while True:
            self.touch()  # the kernel changed this by itself
            left = names & set(self.links(spec))
            if not left or time.monotonic() >= deadline:
                return sorted(left)
            time.sleep(0.02)

    def touch(self, spec=False, links=()):
        """Something was changed other than through netlink (a namespace made
        or adopted, a sysctl, a file). Without arguments every cached view
        and memo is stale; with SPEC, only what was read of that namespace;
        with LINKS ((spec, name) pairs), only what was read of those links."""
        if spec is False and not links:
            self._wrote(None)
            return
        self._wrote([(s, ('n', name)) for s, name in links])
        if spec is not False:
            key = self._canon(spec)
            self._stamp_ns[key] = self._stamp_any[key] = self._clock

    def _canon(self, spec):
        """One key per namespace however it is named (NAME, /run/netns/NAME,
        pid:PID): the path of its file, '' for our own."""
        key = self._canons.get(spec)
        if key is None:
            key = self._canons[spec] = _nsfs.spec_path(spec) or ''
        return key

    def _wrote(self, targets):
        """Stamp a write: TARGETS ((spec, ('n', name) | ('i', index))
        pairs) or, None, everything (indexes kept by name included)."""
        self._clock += 1
        if targets is None:
            self._stamp_all = self._stamp_index = self._clock
            return
        for spec, target in targets:
            key = self._canon(spec)
            self._stamp_any[key] = self._clock
            self._stamp_link[(key, target)] = self._clock

    def _dep(self, spec, target):
        """Note that the memo read in progress (if any) read TARGET of SPEC:
        ('n', name), ('i', index), 'ns' (the namespace itself) or '*' (a
        whole dump)."""
        if self._deps:
            self._deps[-1].add((self._canon(spec), target))

    def _unchanged(self, since, deps):
        if self._stamp_all > since:
            return False
        for key, target in deps:
            if self._stamp_ns.get(key, 0) > since:
                return False
            if target == '*':
                if self._stamp_any.get(key, 0) > since:
                    return False
            elif target != 'ns' and self._stamp_link.get((key, target), 0) > since:
                return False
        return True

    def memo(self, what, key, read, namespaces=()):
        """``read()``, or the value it gave for (WHAT, KEY) earlier in this run
        if nothing it read was written through this kernel since: a plan
        that reads every resource and the step that then reconciles them
        read each once, and a write to one resource leaves the others'
        memos valid. NAMESPACES: those whose files (markers, sysctls) the
        read looks at besides netlink (see touch). Callers get a copy to
        change as they like."""
        entry = self._memo.get((what, key))
        if entry is None or not self._unchanged(entry[0], entry[2]):
            since = self._clock
            self._deps.append(set((self._canon(spec), 'ns') for spec in namespaces))
            try:
                value = read()
            finally:
                deps = self._deps.pop()
            entry = self._memo[(what, key)] = (since, value, frozenset(deps))
        if self._deps:
            self._deps[-1].update(entry[2])
        return copy.deepcopy(entry[1])

    def _evict(self):
        """Keep at most MAX_SESSIONS namespaces open (each holds an fd and one
        or two sockets): a run over thousands of namespaces stays far below
        the usual limit of 1,024 open files, and the sockets that libraries
        open afterwards get numbers that select() can take (libnftables
        aborts the process on a socket numbered 1,024 or more). The least
        recently used session goes; it is opened again when needed."""
        while len(self._ns) >= MAX_SESSIONS:
            key = next((k for k in self._ns if k), None)
            if key is None:
                return
            self._ns.pop(key).close()

    def exists(self, spec):
        self._dep(spec, 'ns')
        return not spec or _nsfs.namespace_id(spec) is not None

    def _spec_of_fd(self, fd):
        """The spec of the open session whose namespace fd is FD; False when
        none is (the write's reach is then not known)."""
        for key, ns in self._ns.items():
            if ns.fd == fd:
                return key or None
        return False

    def ns_fd(self, spec, resource=None, field='netns'):
        """An fd of the namespace, for IFLA_NET_NS_FD (None: our own)."""
        ns = self.session(spec, resource, field)
        if ns.fd is None:
            ns.fd = os.open('/proc/thread-self/ns/net', os.O_RDONLY | os.O_CLOEXEC)
        return ns.fd

    def forget(self, spec):
        """Drop a session (its namespace is about to go away)."""
        ns = self._ns.pop(self._key(spec), None)
        if ns is not None and ns.fd is not None:
            ident = _nsfs.namespace_id('/proc/self/fd/%d' % ns.fd)
        else:  # not open (any more): still mounted under its name
            ident = _nsfs.namespace_id(spec) if spec else None
        if ident is not None:
            self._forgotten.append((spec, ident))
        # Links die with their namespace (and veth peers elsewhere with them).
        self._wrote(None)
        if ns is not None:
            ns.close()

    def call(self, spec, action, method, *args, resource=None, field=None, value=None, **kwargs):
        """Run one pyroute2 request; netlink errors leave translated.

        A dump the kernel marks as interrupted (the table changed while it
        was read) is retried a few times.
        """
        read = method in _READS or (args and args[0] == 'get')
        attempts = _DUMP_ATTEMPTS if read else 1
        try:
            ns = self.session(spec, resource)
            for attempt in range(attempts):
                try:
                    result = getattr(ns.ipr, method)(*args, **kwargs)
                    return list(result) if read else result
                except _deps.NetlinkDumpInterrupted:
                    if attempt + 1 == attempts:
                        raise
        except (_deps.NetlinkError, _deps.NetlinkDumpInterrupted, OSError) as exc:
            raise translate_os_error(exc, action, resource, field, value) from None
        finally:
            if not read:
                self._wrote(None)  # pyroute2 requests: reach not tracked

    def _rt(self, spec, action, msg_type, body, mode='write', flags=0, resource=None, field=None, value=None,
            targets=None):
        """One request on the namespace's own rtnetlink socket (see _rtnl);
        the same retries, translation and staleness rules as ``call``.
        TARGETS: the links a write reaches ((spec, ('n', name) | ('i',
        index)) pairs); None: it may reach anything."""
        attempts = _DUMP_ATTEMPTS if mode == 'dump' else 1
        try:
            ns = self.session(spec, resource)
            for attempt in range(attempts):
                try:
                    return ns.rt.request(msg_type, flags, body, mode)
                except _rtnl.DumpInterrupted:
                    if attempt + 1 == attempts:
                        raise OSError(errno.EINTR, 'dump interrupted %d times' % attempts) from None
        except OSError as exc:
            raise translate_os_error(exc, action, resource, field, value) from None
        finally:
            if mode == 'write':
                self._wrote(None if msg_type == _rtnl.RTM_DELLINK else targets)
        return []

    # -- reads --------------------------------------------------------------

    def links(self, spec, resource=None):
        """name → link dict, one dump per namespace until something changes."""
        self._dep(spec, '*')
        return self._links(spec, resource)

    def _links(self, spec, resource=None):
        ns = self.session(spec, resource)
        if ns._links is None or ns.stale:
            msgs = self._rt(spec, 'list links', _rtnl.RTM_GETLINK, _rtnl.link_dump_request(), 'dump',
                            resource=resource)
            ns._links = {}
            ident = _nsfs.namespace_id(spec)
            for msg in msgs:
                link = _link_to_dict(msg)
                link['_ns'] = ident  # whose records tell whether it is ours
                ns._links[link['name']] = link
            ns.stale = False
            ns._fresh = {}
            ns._index = dict((name, link['index']) for name, link in ns._links.items())
        return ns._links

    def link(self, spec, name, resource=None):
        """One link by name: from the dump, or asked for alone after a write."""
        link = self._link(spec, name, resource)
        if self._deps:
            self._dep(spec, ('n', name))
            if link is not None:
                self._dep(spec, ('i', link['index']))
        return link

    def _link(self, spec, name, resource=None):
        ns = self.session(spec, resource)
        if not ns.stale:
            return self._links(spec, resource).get(name)
        if name not in ns._fresh:
            try:
                msgs = self._rt(spec, 'look up link %s' % name, _rtnl.RTM_GETLINK, _rtnl.link_get_request(name),
                                'get', resource=resource)
            except LinkNotFound:
                msgs = []
            link = _link_to_dict(msgs[0]) if msgs else None
            if link is not None:
                link['_ns'] = _nsfs.namespace_id(spec)
            ns._fresh[name] = link
        return ns._fresh[name]

    def link_index(self, spec, name, resource=None):
        """The index of a link by name, None if there is none.

        Unlike the rest of a link, its index cannot change while the link
        exists under that name, so it is kept across the writes that cannot
        delete, rename or move a link (addresses, routes, neighbours, link
        flags, alias, master, MTU, MAC, new links); a deleted link, a
        pyroute2 write or a forgotten namespace drops what is kept.
        """
        ns = self.session(spec, resource)
        self._dep(spec, ('n', name))
        index = ns._index.get(name)
        if index is None:
            link = self.link(spec, name, resource)
            if link is None:
                return None
            index = ns._index[name] = link['index']
        return index

    def link_by_index(self, spec, index):
        self._dep(spec, ('i', index))
        for link in self._links(spec).values():
            if link['index'] == index:
                return link
        return None

    def addresses(self, spec, index, resource=None):
        """Addresses of a link, link-local IPv6 left out (kernel-chosen)."""
        self._dep(spec, ('i', index))
        ns = self.session(spec, resource)
        if ns._addrs is None:
            addrs = {}
            for msg in self._rt(spec, 'list addresses', _rtnl.RTM_GETADDR, _rtnl.addr_dump_request(), 'dump',
                                resource=resource):
                addr = _addr_to_dict(msg)
                if addr['family'] == socket.AF_INET6 and addr['scope'] == _RT_SCOPE_LINK:
                    continue
                addrs.setdefault(addr['index'], []).append(addr['address'])
            ns._addrs = addrs
        return list(ns._addrs.get(index, []))

    def routes(self, spec, resource=None):
        """Unicast routes of the main table, both families."""
        self._dep(spec, '*')
        return self._routes_main(spec, resource)

    def _routes_main(self, spec, resource=None):
        ns = self.session(spec, resource)
        if ns._routes is None:
            ns._routes = [r for r in self._all_routes(spec, resource)
                          if r['table'] == _RT_TABLE_MAIN and r['type'] == 1]  # RTN_UNICAST
        return ns._routes

    def all_routes(self, spec, resource=None):
        """Routes of every table (local and VPN tables too), both families.

        Without strict checking the kernel dumps every table whatever the
        request names, which is what is wanted here.
        """
        self._dep(spec, '*')
        return self._all_routes(spec, resource)

    def _all_routes(self, spec, resource=None):
        ns = self.session(spec, resource)
        if ns._all_routes is None:
            routes = []
            for family in (socket.AF_INET, socket.AF_INET6):
                for msg in self._rt(spec, 'list routes', _rtnl.RTM_GETROUTE, _rtnl.route_dump_request(family),
                                    'dump', resource=resource):
                    routes.append(_route_to_dict(msg))
            ns._all_routes = routes
        return ns._all_routes

    def rules(self, spec, resource=None):
        """Policy routing rules (``ip rule``), both families, as plain dicts
        with their selectors as prefixes (``from``/``to``, None when any)."""
        self._dep(spec, '*')
        ns = self.session(spec, resource)
        if ns._rules is None:
            rules = []
            for family in (socket.AF_INET, socket.AF_INET6):
                for msg in self._rt(spec, 'list routing rules', _rtnl.RTM_GETRULE, _rtnl.rule_dump_request(family),
                                    'dump', resource=resource):
                    rule = _rtnl.parse_rule(msg)
                    rules.append({
                        'family': rule['family'],
                        'from': _prefix(rule['src'], rule['src_len']) if rule['src'] else None,
                        'to': _prefix(rule['dst'], rule['dst_len']) if rule['dst'] else None,
                        'iif': rule['iif'],
                        'oif': rule['oif'],
                        'priority': rule['priority'],
                        'table': rule['table'],
                    })
            ns._rules = rules
        return ns._rules

    def managed_routes(self, spec, index):
        self._dep(spec, ('i', index))
        return [r for r in self._routes_main(spec) if r['oif'] == index and r['proto'] == RTPROT_HOSTNET]

    def fdb(self, spec, index, resource=None):
        """FDB entries that a device holds itself (NTF_SELF), e.g. a VXLAN
        device's remote VTEPs; a bridge master's entries for a port are not
        included.

        One AF_BRIDGE dump per namespace serves every device until something
        changes there (without strict checking the kernel ignores an
        ifindex in the request anyway), so the entries are split by ifindex
        here.
        """
        self._dep(spec, ('i', index))
        ns = self.session(spec, resource)
        if ns._fdb is None:
            fdb = {}
            for msg in self._rt(spec, 'list FDB entries', _rtnl.RTM_GETNEIGH,
                                _rtnl.neigh_dump_request(socket.AF_BRIDGE), 'dump', resource=resource):
                entry = _neigh_to_dict(msg)
                if entry['self'] and entry['master'] is None:
                    fdb.setdefault(entry['index'], []).append(entry)
            ns._fdb = fdb
        return list(ns._fdb.get(index, []))

    def neighbours(self, spec, index, resource=None):
        """IPv4 and IPv6 neighbour entries of a device (one AF_UNSPEC dump
        per namespace, split by ifindex)."""
        self._dep(spec, ('i', index))
        ns = self.session(spec, resource)
        if ns._neigh is None:
            neigh = {}
            for msg in self._rt(spec, 'list neighbours', _rtnl.RTM_GETNEIGH,
                                _rtnl.neigh_dump_request(socket.AF_UNSPEC), 'dump', resource=resource):
                entry = _neigh_to_dict(msg)
                if entry['family'] in (socket.AF_INET, socket.AF_INET6) and entry['dst']:
                    neigh.setdefault(entry['index'], []).append(entry)
            ns._neigh = neigh
        return list(ns._neigh.get(index, []))

    def link_kind_supported(self, spec, kind, resource=None, field=None):
        """Whether the kernel knows a link kind, found out without changing
        anything: creating a link of a kind without that kind's required
        attributes fails with EOPNOTSUPP when the kind is unknown and with
        another error (EINVAL) when it is known. The answer is kept."""
        if kind in self._kinds:
            return self._kinds[kind]
        names = self.links(spec, resource)
        probe = next(n for n in ('hn-kind%d' % i for i in range(len(names) + 1)) if n not in names)
        supported = True
        try:
            self.call(spec, 'probe link kind %s' % kind, 'link', 'add', ifname=probe, kind=kind,
                      resource=resource, field=field, value=kind)
        except HostnetError as err:
            supported = getattr(err, 'errno_name', None) not in ('EOPNOTSUPP', 'ENOTSUP')
        else:
            # A kind that needs no attributes was created: take it away again.
            link = self.link(spec, probe, resource)
            if link is not None:
                self.link_del(spec, resource, link['index'])
        self._kinds[kind] = supported
        return supported

    # -- writes -------------------------------------------------------------

    def link_add(self, spec, resource, **kwargs):
        action = 'create link %s' % kwargs.get('ifname')
        if kwargs.get('kind') == 'veth' and set(kwargs) <= _RT_VETH and set(kwargs.get('peer') or ()) <= _RT_VETH_PEER \
                and kwargs.get('peer', {}).get('ifname'):
            args = dict(kwargs)
            del args['kind']
            peer = kwargs['peer']
            pspec = self._spec_of_fd(peer['net_ns_fd']) if 'net_ns_fd' in peer else spec
            targets = None if pspec is False else [(spec, ('n', kwargs['ifname'])), (pspec, ('n', peer['ifname']))]
            self._rt(spec, action, _rtnl.RTM_NEWLINK, _rtnl.veth_request(**args), flags=_rtnl.F_EXCL | _rtnl.F_CREATE,
                     resource=resource, field='name', value=kwargs.get('ifname'), targets=targets)
        else:
            self.call(spec, action, 'link', 'add', resource=resource, field='name', value=kwargs.get('ifname'),
                      **kwargs)

    def link_set(self, spec, resource, index, field=None, value=None, **kwargs):
        action = 'set %s' % ', '.join('%s=%s' % kv for kv in sorted(kwargs.items()))
        if set(kwargs) <= _RT_LINK_SET and kwargs.get('state', 'up') in ('up', 'down'):
            self._rt(spec, action, _rtnl.RTM_NEWLINK, _rtnl.link_request(index, **kwargs),
                     resource=resource, field=field, value=value, targets=[(spec, ('i', index))])
        else:
            self.call(spec, action, 'link', 'set', index=index, resource=resource, field=field, value=value,
                      **kwargs)

    def bridge_port_set(self, spec, resource, index, hairpin, action=None, field=None, value=None):
        """Hairpin mode of a bridge port (``bridge link set dev X hairpin on``)."""
        self._rt(spec, action or 'set hairpin mode', _rtnl.RTM_NEWLINK, _rtnl.bridge_port_request(index, hairpin),
                 resource=resource, field=field, value=value, targets=[(spec, ('i', index))])

    def link_del(self, spec, resource, index, vanished_ok=False):
        """Delete a link by index. ``vanished_ok``: a link already gone is
        deleted (a veth whose peer's namespace was just deleted goes with
        it, a moment later, while this run may still have seen it)."""
        names = [name for name, known in self.session(spec, resource)._index.items() if known == index]
        try:
            self._rt(spec, 'delete link', _rtnl.RTM_DELLINK, _rtnl.link_request(index), resource=resource)
        except LinkNotFound:
            if not vanished_ok:
                raise
        for name in names:
            _intent.forget(spec, name, index)

    def links_del_together(self, spec, links):
        """Delete links of one namespace in one request (LINKS: (resource,
        index) pairs); True when done, False when nothing was deleted (the
        caller deletes them one by one). The kernel unregisters the links of
        a group in one batch, one synchronisation for them all instead of one
        each (200 bridges took half the time of one by one). They are put in
        a group no other link of the namespace is in, and the group is read
        back right before the delete; if anything else joined it, or the
        kernel refuses, they go back to their groups."""
        links = list(links)
        resource = links[0][0]
        indexes = set(index for _res, index in links)
        ns = self.session(spec, resource)
        names = [(name, known) for name, known in ns._index.items() if known in indexes]

        def groups():
            msgs = self._rt(spec, 'list links', _rtnl.RTM_GETLINK, _rtnl.link_dump_request(), 'dump',
                            resource=resource)
            return dict((link['index'], link['group']) for link in map(_rtnl.parse_link, msgs))

        before = groups()
        group = _BATCH_GROUP
        while group in before.values():
            group += 1
        moved = []
        try:
            for res, index in links:
                self._rt(spec, 'set group', _rtnl.RTM_NEWLINK, _rtnl.link_request(index, group=group),
                         resource=res, targets=[(spec, ('i', index))])
                moved.append((res, index))
            if set(index for index, known in groups().items() if known == group) <= indexes:
                self._rt(spec, 'delete links', _rtnl.RTM_DELLINK, _rtnl.link_request(0, group=group),
                         resource=resource)
                for name, index in names:
                    _intent.forget(spec, name, index)
                return True
        except HostnetError:
            pass
        for res, index in moved:
            try:
                self._rt(spec, 'set group', _rtnl.RTM_NEWLINK, _rtnl.link_request(index, group=before.get(index, 0)),
                         resource=res, targets=[(spec, ('i', index))])
            except HostnetError:
                pass  # gone meanwhile: its own delete says so
        return False

    def namespaces_forgotten(self):
        """(spec, namespace identity) of the namespaces this run read and
        dropped because they were being deleted."""
        return list(self._forgotten)

    def namespaces_read(self):
        """(spec, namespace identity) of every namespace this run opened."""
        out = []
        for key in sorted(self._read):
            ident = _nsfs.namespace_id(key or None)
            if ident is not None:
                out.append((key or None, ident))
        return out

    def addr_add(self, spec, resource, index, cidr):
        iface = ipaddress.ip_interface(cidr)
        # IPv6 without duplicate address detection: the address is usable at
        # once, as Docker does for its bridges and endpoints.
        body = _rtnl.addr_request(index, str(iface.ip), iface.network.prefixlen,
                                  flags=_IFA_F_NODAD if iface.version == 6 else None)
        self._rt(spec, 'add address %s' % cidr, _rtnl.RTM_NEWADDR, body, flags=_rtnl.F_EXCL | _rtnl.F_CREATE,
                 resource=resource, field='addresses', value=cidr, targets=[(spec, ('i', index))])

    def addr_del(self, spec, resource, index, cidr):
        iface = ipaddress.ip_interface(cidr)
        self._rt(spec, 'remove address %s' % cidr, _rtnl.RTM_DELADDR,
                 _rtnl.addr_request(index, str(iface.ip), iface.network.prefixlen),
                 resource=resource, field='addresses', value=cidr, targets=[(spec, ('i', index))])

    def route_add(self, spec, resource, index, dest, via=None, metric=None, field='routes'):
        self._rt(spec, 'add route %s%s' % (dest, ' via %s' % via if via else ''), _rtnl.RTM_NEWROUTE,
                 _route_request(index, dest, via, metric), flags=_rtnl.F_EXCL | _rtnl.F_CREATE,
                 resource=resource, field=field, value=dest, targets=[(spec, ('i', index))])

    def route_del(self, spec, resource, index, dest, via=None, metric=None, field='routes'):
        try:
            self._rt(spec, 'remove route %s' % dest, _rtnl.RTM_DELROUTE,
                     _route_request(index, dest, via, metric, delete=True),
                     resource=resource, field=field, value=dest, targets=[(spec, ('i', index))])
        except KernelError as err:
            # Already gone with an address it depended on: that is the goal.
            if err.errno_name != 'ESRCH':
                raise

    def fdb_append(self, spec, resource, index, mac, dst, field=None):
        """Add a destination to an all-zero (flood) FDB entry: NLM_F_APPEND,
        as ``bridge fdb append``; the kernel accepts one already listed."""
        self._rt(spec, 'append FDB entry %s dst %s' % (mac, dst), _rtnl.RTM_NEWNEIGH, _fdb_request(index, mac, dst),
                 flags=_rtnl.F_CREATE | _rtnl.F_APPEND, resource=resource, field=field, value=dst,
                 targets=[(spec, ('i', index))])

    def fdb_replace(self, spec, resource, index, mac, dst, field=None):
        """Set the static FDB entry of a unicast MAC (NLM_F_CREATE|NLM_F_REPLACE):
        a learned entry for the same MAC becomes this one instead of failing."""
        self._rt(spec, 'set FDB entry %s dst %s' % (mac, dst), _rtnl.RTM_NEWNEIGH, _fdb_request(index, mac, dst),
                 flags=_rtnl.F_REPLACE | _rtnl.F_CREATE, resource=resource, field=field, value=mac,
                 targets=[(spec, ('i', index))])

    def fdb_del(self, spec, resource, index, mac, dst, field=None):
        try:
            self._rt(spec, 'remove FDB entry %s dst %s' % (mac, dst), _rtnl.RTM_DELNEIGH,
                     _fdb_request(index, mac, dst), resource=resource, field=field, value=dst,
                     targets=[(spec, ('i', index))])
        except HostnetError as err:
            # Already gone (the device went, or someone removed it): the goal.
            if getattr(err, 'errno_name', None) != 'ENOENT':
                raise

    def neigh_replace(self, spec, resource, index, ip, mac, field=None):
        """A permanent neighbour entry ip → mac (replacing a learned one)."""
        self._rt(spec, 'set neighbour %s lladdr %s' % (ip, mac), _rtnl.RTM_NEWNEIGH,
                 _rtnl.neigh_request(_family(ip), index, _NUD_PERMANENT, dst=ip, lladdr=mac),
                 flags=_rtnl.F_REPLACE | _rtnl.F_CREATE, resource=resource, field=field, value=ip,
                 targets=[(spec, ('i', index))])

    def neigh_del(self, spec, resource, index, ip, field=None):
        try:
            self._rt(spec, 'remove neighbour %s' % ip, _rtnl.RTM_DELNEIGH,
                     _rtnl.neigh_request(_family(ip), index, _NUD_PERMANENT, dst=ip),
                     resource=resource, field=field, value=ip, targets=[(spec, ('i', index))])
        except HostnetError as err:
            if getattr(err, 'errno_name', None) != 'ENOENT':
                raise


def _family(ip):
    return socket.AF_INET6 if ':' in ip else socket.AF_INET


def _fdb_request(index, mac, dst):
    # Static (permanent, noarp) entry of the device itself (NTF_SELF).
    return _rtnl.neigh_request(socket.AF_BRIDGE, index, _NUD_PERMANENT | _NUD_NOARP, _NTF_SELF, dst=dst, lladdr=mac)


def _route_request(index, dest, via, metric, delete=False):
    family = socket.AF_INET6 if ':' in (via or dest) else socket.AF_INET
    if dest == 'default':
        dst, dst_len = ('::' if family == socket.AF_INET6 else '0.0.0.0'), 0
    else:
        net = ipaddress.ip_network(dest, strict=False)
        dst, dst_len = str(net.network_address), net.prefixlen
    return _rtnl.route_request(family, index, RTPROT_HOSTNET, _RT_TABLE_MAIN, dst, dst_len, gateway=via,
                               priority=metric, delete=delete)
