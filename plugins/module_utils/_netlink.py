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
from ansible_collections.hostnet.provision.plugins.module_utils._errors import KernelError, translate_os_error

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
    return link


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

    def invalidate(self):
        self._links = self._addrs = self._routes = None


class Kernel:
    """Netlink sessions for every namespace a run touches.

    Use as a context manager; all sockets and namespace fds close on exit.
    """

    def __init__(self):
        _deps.require_pyroute2()
        self._ns = {}

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
        """Run one pyroute2 request; the one place netlink errors are translated."""
        ns = self.session(spec, resource)
        try:
            return getattr(ns.ipr, method)(*args, **kwargs)
        except (_deps.NetlinkError, OSError) as exc:
            raise translate_os_error(exc, action, resource, field, value) from None
        finally:
            if method not in ('get_links', 'get_addr', 'get_routes'):
                ns.invalidate()

    # -- reads --------------------------------------------------------------

    def links(self, spec, resource=None):
        """name → link dict, one dump per namespace until something changes."""
        ns = self.session(spec, resource)
        if ns._links is None:
            msgs = self.call(spec, 'list links', 'get_links', resource=resource)
            ns._links = {}
            for msg in msgs:
                link = _link_to_dict(msg)
                ns._links[link['name']] = link
        return ns._links

    def link(self, spec, name, resource=None):
        return self.links(spec, resource).get(name)

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
