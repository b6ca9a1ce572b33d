# -*- coding: utf-8 -*-
# Copyright: contributors to hostnet.provision
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one door to netlink: sockets per namespace, dumps as plain dicts.

Private to the hostnet.provision collection.

``Kernel`` opens one pyroute2 socket per namespace (entering it once) and
keeps one dump of links, addresses and routes per namespace, refreshed only
after a change there. Everything it returns is plain JSON-safe data; every
netlink error passes through ``Kernel.call`` and leaves as one of our typed
errors.
"""

from __future__ import annotations

import ipaddress
import os
import socket

from ansible_collections.hostnet.provision.plugins.module_utils import _deps
from ansible_collections.hostnet.provision.plugins.module_utils import _nsfs
from ansible_collections.hostnet.provision.plugins.module_utils._errors import (
    HostnetError,
    KernelError,
    LinkNotFound,
    translate_os_error,
)

__all__ = ['Kernel', 'OWNER_TAG', 'RTPROT_HOSTNET', 'is_managed']

# Interface alias carried by every link the collection creates.
OWNER_TAG = 'hostnet.provision'
# Route protocol number marking routes the collection added (iproute2
# shows it as a number; 4 = "static" would be shared with other tools).
RTPROT_HOSTNET = 0x68

_IFF_UP = 0x1
_IFA_F_NODAD = 0x02
_IFA_F_PERMANENT = 0x80
_RT_TABLE_MAIN = 254
_RT_SCOPE_LINK = 253
_NUD_NOARP = 0x40
_NUD_PERMANENT = 0x80
_NTF_SELF = 0x02
# Requests that only read: they leave a namespace's cached dumps valid.
_READS = ('get_links', 'get_addr', 'get_routes', 'get_neighbours')
_DUMP_ATTEMPTS = 5
# IFLA_MACVLAN_MODE bits, for a pyroute2 that returns the number.
_MACVLAN_MODES = {1: 'private', 2: 'vepa', 4: 'bridge', 8: 'passthru', 16: 'source'}


def is_managed(link):
    alias = link.get('alias') or ''
    return alias == OWNER_TAG or alias.startswith(OWNER_TAG + ' ')


def _attr(msg, name, default=None):
    value = msg.get_attr(name)
    return default if value is None else value


def _link_to_dict(msg):
    info = msg.get_attr('IFLA_LINKINFO')
    kind = info.get_attr('IFLA_INFO_KIND') if info is not None else None
    data = info.get_attr('IFLA_INFO_DATA') if info is not None else None
    link = {
        'index': msg['index'],
        'name': msg.get_attr('IFLA_IFNAME'),
        'kind': kind,
        'alias': msg.get_attr('IFLA_IFALIAS'),
        'mtu': msg.get_attr('IFLA_MTU'),
        'mac': msg.get_attr('IFLA_ADDRESS'),
        'up': bool(msg['flags'] & _IFF_UP),
        'master': msg.get_attr('IFLA_MASTER'),
        'link': msg.get_attr('IFLA_LINK'),
        'link_netnsid': msg.get_attr('IFLA_LINK_NETNSID'),
    }
    if kind == 'bridge' and data is not None and hasattr(data, 'get_attr'):
        link['bridge'] = {
            'stp': bool(_attr(data, 'IFLA_BR_STP_STATE', 0)),
            'forward_delay': _attr(data, 'IFLA_BR_FORWARD_DELAY'),
            'vlan_filtering': bool(_attr(data, 'IFLA_BR_VLAN_FILTERING', 0)),
        }
    elif kind == 'vxlan' and data is not None and hasattr(data, 'get_attr'):
        # pyroute2 0.7.2 and 0.9.x both decode IFLA_VXLAN_PORT (be16) to
        # host order; the group/local of the other family is absent.
        link['vxlan'] = {
            'vni': data.get_attr('IFLA_VXLAN_ID'),
            'port': data.get_attr('IFLA_VXLAN_PORT'),
            'local': data.get_attr('IFLA_VXLAN_LOCAL') or data.get_attr('IFLA_VXLAN_LOCAL6'),
            'group': data.get_attr('IFLA_VXLAN_GROUP') or data.get_attr('IFLA_VXLAN_GROUP6'),
            'link': data.get_attr('IFLA_VXLAN_LINK'),
            'learning': bool(_attr(data, 'IFLA_VXLAN_LEARNING', 0)),
        }
    elif kind == 'macvlan' and data is not None and hasattr(data, 'get_attr'):
        mode = data.get_attr('IFLA_MACVLAN_MODE')
        link['macvlan'] = {'mode': _MACVLAN_MODES.get(mode, mode)}
    elif kind == 'vlan' and data is not None and hasattr(data, 'get_attr'):
        link['vlan'] = {'id': data.get_attr('IFLA_VLAN_ID')}
    return link


def _neigh_to_dict(msg):
    """A neighbour or FDB entry (RTM_NEWNEIGH) as a plain dict."""
    return {
        'index': msg['ifindex'],
        'family': msg['family'],
        'state': msg['state'],
        'flags': msg['flags'],
        'mac': (msg.get_attr('NDA_LLADDR') or '').lower() or None,
        'dst': msg.get_attr('NDA_DST'),
        'master': msg.get_attr('NDA_MASTER'),
        'permanent': bool(msg['state'] & _NUD_PERMANENT),
        'self': bool(msg['flags'] & _NTF_SELF),
    }


def _addr_to_dict(msg):
    family = msg['family']
    value = msg.get_attr('IFA_ADDRESS') if family == socket.AF_INET6 else \
        (msg.get_attr('IFA_LOCAL') or msg.get_attr('IFA_ADDRESS'))
    return {
        'index': msg['index'],
        'address': str(ipaddress.ip_interface('%s/%d' % (value, msg['prefixlen']))),
        'scope': msg['scope'],
        'family': family,
    }


def _route_to_dict(msg):
    family = msg['family']
    dst = msg.get_attr('RTA_DST')
    dest = 'default' if dst is None and msg['dst_len'] == 0 else \
        str(ipaddress.ip_network('%s/%d' % (dst, msg['dst_len']), strict=False))
    return {
        'family': family,
        'dest': dest,
        'via': msg.get_attr('RTA_GATEWAY'),
        'oif': msg.get_attr('RTA_OIF'),
        'metric': msg.get_attr('RTA_PRIORITY'),
        'table': msg.get_attr('RTA_TABLE') or msg['table'],
        'proto': msg['proto'],
        'type': msg['type'],
        'scope': msg['scope'],
    }


class _Namespace:
    """One namespace: its socket, its fd and its cached dumps."""

    def __init__(self, spec, fd, ipr):
        self.spec = spec
        self.fd = fd
        self.ipr = ipr
        self._links = None
        self._addrs = None
        self._routes = None
        self._fdb = None
        self._neigh = None
        # After a write the link dump is stale; single links are then looked
        # up by name (one small request each) instead of dumping every link
        # again, which would make a plan of N creates cost N dumps of N links.
        self.stale = False
        self._fresh = {}

    def invalidate(self):
        self.stale = True
        self._fresh = {}
        self._addrs = self._routes = None
        self._fdb = self._neigh = None


class Kernel:
    """Netlink sessions for every namespace a run touches.

    Use as a context manager; all sockets and namespace fds close on exit.
    """

    def __init__(self):
        _deps.require_pyroute2()
        self._ns = {}
        self._kinds = {}

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def close(self):
        for ns in self._ns.values():
            try:
                ns.ipr.close()
            finally:
                if ns.fd is not None:
                    os.close(ns.fd)
        self._ns = {}

    # -- sessions ---------------------------------------------------------

    def _key(self, spec):
        return spec or ''

    def session(self, spec, resource=None, field='netns'):
        """The namespace session for a spec (opened on first use)."""
        key = self._key(spec)
        ns = self._ns.get(key)
        if ns is None:
            fd = None if not key else _nsfs.open_namespace(key, resource, field)
            try:
                with _nsfs.entered(fd):
                    ipr = _deps.IPRoute()
            except OSError as exc:
                if fd is not None:
                    os.close(fd)
                raise translate_os_error(exc, 'open netlink socket in %s' % _nsfs.spec_label(spec),
                                         resource, field, spec) from None
            ns = self._ns[key] = _Namespace(key, fd, ipr)
        return ns

    def exists(self, spec):
        return not spec or _nsfs.namespace_id(spec) is not None

    def ns_fd(self, spec, resource=None, field='netns'):
        """An fd of the namespace, for IFLA_NET_NS_FD (None: our own)."""
        ns = self.session(spec, resource, field)
        if ns.fd is None:
            ns.fd = os.open('/proc/thread-self/ns/net', os.O_RDONLY | os.O_CLOEXEC)
        return ns.fd

    def forget(self, spec):
        """Drop a session (its namespace is about to go away)."""
        ns = self._ns.pop(self._key(spec), None)
        if ns is not None:
            ns.ipr.close()
            if ns.fd is not None:
                os.close(ns.fd)

    def call(self, spec, action, method, *args, resource=None, field=None, value=None, **kwargs):
        """Run one pyroute2 request; the one place netlink errors are translated.

        A dump the kernel marks as interrupted (the table changed while it
        was read) is retried a few times.
        """
        ns = self.session(spec, resource)
        read = method in _READS or (args and args[0] == 'get')
        attempts = _DUMP_ATTEMPTS if read else 1
        try:
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
                # A write can change other namespaces too (deleting a veth
                # removes its peer over there): every view goes stale.
                for other in self._ns.values():
                    other.invalidate()

    # -- reads --------------------------------------------------------------

    def links(self, spec, resource=None):
        """name → link dict, one dump per namespace until something changes."""
        ns = self.session(spec, resource)
        if ns._links is None or ns.stale:
            msgs = self.call(spec, 'list links', 'get_links', resource=resource)
            ns._links = {}
            for msg in msgs:
                link = _link_to_dict(msg)
                ns._links[link['name']] = link
            ns.stale = False
            ns._fresh = {}
        return ns._links

    def link(self, spec, name, resource=None):
        """One link by name: from the dump, or asked for alone after a write."""
        ns = self.session(spec, resource)
        if not ns.stale:
            return self.links(spec, resource).get(name)
        if name not in ns._fresh:
            try:
                msgs = self.call(spec, 'look up link %s' % name, 'link', 'get', ifname=name, resource=resource)
            except LinkNotFound:
                msgs = []
            ns._fresh[name] = _link_to_dict(msgs[0]) if msgs else None
        return ns._fresh[name]

    def link_by_index(self, spec, index):
        for link in self.links(spec).values():
            if link['index'] == index:
                return link
        return None

    def addresses(self, spec, index, resource=None):
        """Addresses of a link, link-local IPv6 left out (kernel-chosen)."""
        ns = self.session(spec, resource)
        if ns._addrs is None:
            ns._addrs = {}
            for msg in self.call(spec, 'list addresses', 'get_addr', resource=resource):
                addr = _addr_to_dict(msg)
                if addr['family'] == socket.AF_INET6 and addr['scope'] == _RT_SCOPE_LINK:
                    continue
                ns._addrs.setdefault(addr['index'], []).append(addr['address'])
        return list(ns._addrs.get(index, []))

    def routes(self, spec, resource=None):
        """Unicast routes of the main table, both families."""
        ns = self.session(spec, resource)
        if ns._routes is None:
            ns._routes = []
            for family in (socket.AF_INET, socket.AF_INET6):
                for msg in self.call(spec, 'list routes', 'get_routes', resource=resource,
                                     family=family, table=_RT_TABLE_MAIN):
                    route = _route_to_dict(msg)
                    if route['type'] == 1:  # RTN_UNICAST
                        ns._routes.append(route)
        return ns._routes

    def managed_routes(self, spec, index):
        return [r for r in self.routes(spec) if r['oif'] == index and r['proto'] == RTPROT_HOSTNET]

    def fdb(self, spec, index, resource=None):
        """FDB entries that a device holds itself (NTF_SELF), e.g. a VXLAN
        device's remote VTEPs; a bridge master's entries for a port are not
        included.

        One AF_BRIDGE dump per namespace serves every device until something
        changes there. pyroute2 0.7.2 and 0.9.x both send that dump without an
        ifindex (without strict checking the kernel would ignore one anyway),
        so the entries are split by ifindex here.
        """
        ns = self.session(spec, resource)
        if ns._fdb is None:
            ns._fdb = {}
            for msg in self.call(spec, 'list FDB entries', 'get_neighbours', resource=resource,
                                 family=socket.AF_BRIDGE):
                entry = _neigh_to_dict(msg)
                if entry['self'] and entry['master'] is None:
                    ns._fdb.setdefault(entry['index'], []).append(entry)
        return list(ns._fdb.get(index, []))

    def neighbours(self, spec, index, resource=None):
        """IPv4 and IPv6 neighbour entries of a device (one AF_UNSPEC dump
        per namespace, split by ifindex)."""
        ns = self.session(spec, resource)
        if ns._neigh is None:
            ns._neigh = {}
            for msg in self.call(spec, 'list neighbours', 'get_neighbours', resource=resource):
                entry = _neigh_to_dict(msg)
                if entry['family'] in (socket.AF_INET, socket.AF_INET6) and entry['dst']:
                    ns._neigh.setdefault(entry['index'], []).append(entry)
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
        self.call(spec, 'create link %s' % kwargs.get('ifname'), 'link', 'add',
                  resource=resource, field='name', value=kwargs.get('ifname'), **kwargs)

    def link_set(self, spec, resource, index, field=None, value=None, **kwargs):
        self.call(spec, 'set %s' % ', '.join('%s=%s' % kv for kv in sorted(kwargs.items())),
                  'link', 'set', index=index, resource=resource, field=field, value=value, **kwargs)

    def link_del(self, spec, resource, index):
        self.call(spec, 'delete link', 'link', 'del', index=index, resource=resource)

    def addr_add(self, spec, resource, index, cidr):
        iface = ipaddress.ip_interface(cidr)
        kwargs = {'index': index, 'address': str(iface.ip), 'prefixlen': iface.network.prefixlen}
        if iface.version == 6:
            # No duplicate address detection: the address is usable at once,
            # as Docker does for its bridges and endpoints.
            kwargs['flags'] = _IFA_F_NODAD
        self.call(spec, 'add address %s' % cidr, 'addr', 'add', resource=resource,
                  field='addresses', value=cidr, **kwargs)

    def addr_del(self, spec, resource, index, cidr):
        iface = ipaddress.ip_interface(cidr)
        self.call(spec, 'remove address %s' % cidr, 'addr', 'del', resource=resource,
                  field='addresses', value=cidr, index=index, address=str(iface.ip),
                  prefixlen=iface.network.prefixlen)

    def route_add(self, spec, resource, index, dest, via=None, metric=None, field='routes'):
        self.call(spec, 'add route %s%s' % (dest, ' via %s' % via if via else ''), 'route', 'add',
                  resource=resource, field=field, value=dest, **_route_kwargs(index, dest, via, metric))

    def route_del(self, spec, resource, index, dest, via=None, metric=None, field='routes'):
        try:
            self.call(spec, 'remove route %s' % dest, 'route', 'del', resource=resource, field=field,
                      value=dest, **_route_kwargs(index, dest, via, metric))
        except KernelError as err:
            # Already gone with an address it depended on: that is the goal.
            if err.errno_name != 'ESRCH':
                raise

    def fdb_append(self, spec, resource, index, mac, dst, field=None):
        """Add a destination to an all-zero (flood) FDB entry: NLM_F_APPEND,
        as ``bridge fdb append``; the kernel accepts one already listed."""
        self.call(spec, 'append FDB entry %s dst %s' % (mac, dst), 'neigh', 'append', resource=resource,
                  field=field, value=dst, **_fdb_kwargs(index, mac, dst))

    def fdb_replace(self, spec, resource, index, mac, dst, field=None):
        """Set the static FDB entry of a unicast MAC (NLM_F_CREATE|NLM_F_REPLACE):
        a learned entry for the same MAC becomes this one instead of failing."""
        self.call(spec, 'set FDB entry %s dst %s' % (mac, dst), 'neigh', 'replace', resource=resource,
                  field=field, value=mac, **_fdb_kwargs(index, mac, dst))

    def fdb_del(self, spec, resource, index, mac, dst, field=None):
        try:
            self.call(spec, 'remove FDB entry %s dst %s' % (mac, dst), 'neigh', 'del', resource=resource,
                      field=field, value=dst, **_fdb_kwargs(index, mac, dst))
        except HostnetError as err:
            # Already gone (the device went, or someone removed it): the goal.
            if getattr(err, 'errno_name', None) != 'ENOENT':
                raise

    def neigh_replace(self, spec, resource, index, ip, mac, field=None):
        """A permanent neighbour entry ip → mac (replacing a learned one)."""
        self.call(spec, 'set neighbour %s lladdr %s' % (ip, mac), 'neigh', 'replace', resource=resource,
                  field=field, value=ip, family=_family(ip), ifindex=index, dst=ip, lladdr=mac,
                  state=_NUD_PERMANENT)

    def neigh_del(self, spec, resource, index, ip, field=None):
        try:
            self.call(spec, 'remove neighbour %s' % ip, 'neigh', 'del', resource=resource, field=field,
                      value=ip, family=_family(ip), ifindex=index, dst=ip)
        except HostnetError as err:
            if getattr(err, 'errno_name', None) != 'ENOENT':
                raise


def _family(ip):
    return socket.AF_INET6 if ':' in ip else socket.AF_INET


def _fdb_kwargs(index, mac, dst):
    # Static (permanent, noarp) entry of the device itself (NTF_SELF).
    return {'family': socket.AF_BRIDGE, 'ifindex': index, 'lladdr': mac, 'dst': dst,
            'state': _NUD_PERMANENT | _NUD_NOARP, 'flags': _NTF_SELF}


def _route_kwargs(index, dest, via, metric):
    family = socket.AF_INET6 if ':' in (via or dest) else socket.AF_INET
    kwargs = {'oif': index, 'proto': RTPROT_HOSTNET, 'family': family, 'table': _RT_TABLE_MAIN}
    if dest == 'default':
        kwargs['dst_len'] = 0
        if family == socket.AF_INET6:
            kwargs['dst'] = '::'
        else:
            kwargs['dst'] = '0.0.0.0'
    else:
        net = ipaddress.ip_network(dest, strict=False)
        kwargs['dst'] = str(net.network_address)
        kwargs['dst_len'] = net.prefixlen
    if via:
        kwargs['gateway'] = via
    if metric is not None:
        kwargs['priority'] = metric
    return kwargs
