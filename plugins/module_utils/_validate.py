# -*- coding: utf-8 -*-
# Copyright: contributors to hostnet.provision
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Input checks shared by every resource kind.

Private to the hostnet.provision collection. Each check returns the
normalised value or raises ValidationError naming resource, field and value;
all of them run before anything is changed.
"""

from __future__ import annotations

import ipaddress
import re

from ansible_collections.hostnet.provision.plugins.module_utils._errors import ValidationError

__all__ = [
    'ifname',
    'netns_spec',
    'netns_name',
    'cidr',
    'cidr_list',
    'ip_address',
    'mac',
    'mtu',
    'mtu_ipv6',
    'route_dest',
    'unique_keys',
]

IFNAMSIZ = 16  # kernel buffer, NUL included: 15 bytes of name
_BAD_IFNAME_BYTES = frozenset(b'/: \t\n\v\f\r\xa0')
_MAC = re.compile(r'^[0-9a-f]{2}(:[0-9a-f]{2}){5}$')
# /proc/sys/net/ipv{4,6}/conf/{all,default} exist: the kernel refuses
# these names (EINVAL) once it tries to register the link's sysctls.
_RESERVED_IFNAMES = ('all', 'default')
# Below this MTU the kernel has no IPv6 on a link (RFC 8200 minimum).
IPV6_MIN_MTU = 1280


def _fail(resource, field, value, why):
    raise ValidationError('%s: %s %r %s' % (resource, field, value, why), resource, field, value)


def ifname(value, resource, field='name', new_link=False):
    """An interface name the kernel accepts (dev_valid_name) and keeps.

    ``%`` is refused: the kernel takes a name with it as a template
    (``ve%d`` becomes ``ve0``) and the link would not be found again under
    the name given. ``new_link``: the name is one of a link to create, so
    ``lo``, which every namespace has, is refused too.
    """
    if not isinstance(value, str) or not value:
        _fail(resource, field, value, 'is not a valid interface name: it must be a non-empty string')
    size = len(value.encode('utf-8'))
    if size >= IFNAMSIZ:
        _fail(resource, field, value,
              'is %d bytes long; Linux interface names are at most %d bytes' % (size, IFNAMSIZ - 1))
    if value in ('.', '..'):
        _fail(resource, field, value, 'is not a valid interface name')
    if value in _RESERVED_IFNAMES:
        _fail(resource, field, value, 'is reserved by the kernel (net.ipv4.conf.%s); choose another name' % value)
    if new_link and value == 'lo':
        _fail(resource, field, value, 'is the loopback link every namespace already has; choose another name')
    if '%' in value:
        _fail(resource, field, value, 'contains "%"; the kernel would take it as a template (ve%d becomes ve0)')
    # The kernel (dev_valid_name) checks bytes, and its isspace() includes 0xA0.
    for byte in value.encode('utf-8'):
        if byte in _BAD_IFNAME_BYTES:
            _fail(resource, field, value, 'contains %r; interface names may not contain "/", ":" or whitespace'
                  % chr(byte))
    return value


def netns_name(value, resource, field='name'):
    """A name for /run/netns/NAME."""
    if not isinstance(value, str) or not value or value in ('.', '..') or '/' in value \
            or value.startswith('.') or len(value.encode('utf-8')) > 255:
        _fail(resource, field, value, 'is not a valid namespace name '
              '(non-empty, no "/", not starting with ".", at most 255 bytes)')
    return value


def netns_spec(value, resource, field='netns'):
    """A namespace reference: a name, an absolute path, or pid:PID."""
    if value in (None, ''):
        return None
    if not isinstance(value, str):
        _fail(resource, field, value, 'must be a namespace name, a path, or "pid:PID"')
    if value.startswith('pid:'):
        if not value[4:].isdigit() or int(value[4:]) <= 0:
            _fail(resource, field, value, 'must be "pid:" followed by a process id')
        return value
    if value.startswith('/'):
        return value
    return netns_name(value, resource, field)


def cidr(value, resource, field='addresses'):
    """An interface address with prefix (198.51.100.1/24), normalised."""
    if not isinstance(value, str) or '/' not in value:
        _fail(resource, field, value, 'is not an address with prefix length (e.g. 198.51.100.1/24)')
    try:
        iface = ipaddress.ip_interface(value)
    except ValueError as exc:
        _fail(resource, field, value, 'is not a valid address: %s' % exc)
    if iface.ip.is_multicast or iface.ip.is_unspecified:
        _fail(resource, field, value, 'is not a unicast host address')
    if iface.ip.is_loopback:
        _fail(resource, field, value, 'is a loopback address, which belongs on lo only')
    net = iface.network
    if iface.ip.version == 4 and net.prefixlen <= 30 and iface.ip in (net.network_address, net.broadcast_address):
        _fail(resource, field, value, 'is the %s address of its subnet %s, not a host address'
              % ('network' if iface.ip == net.network_address else 'broadcast', net))
    return str(iface)


def cidr_list(values, resource, field='addresses'):
    if values is None:
        return None
    out = []
    for value in values:
        norm = cidr(value, resource, field)
        if norm in out:
            _fail(resource, field, value, 'is listed twice')
        ip = ipaddress.ip_interface(norm).ip
        # IPv4 allows one address with two prefixes; IPv6 does not (EEXIST).
        if ip.version == 6 and any(ipaddress.ip_interface(o).ip == ip for o in out):
            _fail(resource, field, value, 'is listed twice with different prefix lengths')
        out.append(norm)
    return out


def ip_address(value, resource, field):
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        _fail(resource, field, value, 'is not a valid IPv4 or IPv6 address')


def mac(value, resource, field='mac'):
    if value is None:
        return None
    norm = value.lower() if isinstance(value, str) else value
    if not isinstance(norm, str) or not _MAC.match(norm):
        _fail(resource, field, value, 'is not a MAC address (six colon-separated hex bytes)')
    if int(norm[:2], 16) & 1:
        _fail(resource, field, value, 'is a multicast MAC address; a link needs a unicast one')
    if norm == '00:00:00:00:00:00':
        _fail(resource, field, value, 'is the all-zero MAC address')
    return norm


def mtu(value, resource, field='mtu', low=68, high=65535):
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        _fail(resource, field, value, 'is out of range (%d to %d)' % (low, high))
    return value


def mtu_ipv6(mtu_value, addresses, resource, field='mtu', addr_field='addresses', origin=''):
    """Refuse an MTU below 1280 on a link that is to carry an IPv6 address
    (the kernel refuses the address with a bare EINVAL, or drops every IPv6
    address when the MTU goes down)."""
    if mtu_value is None or mtu_value >= IPV6_MIN_MTU:
        return
    for address in addresses or []:
        if isinstance(address, str) and ':' in address:
            raise ValidationError('%s: %s %r%s is below %d, the minimum for IPv6, but %s has the IPv6 address %s'
                                  % (resource, field, mtu_value, origin, IPV6_MIN_MTU, addr_field, address),
                                  resource, field, mtu_value)


def route_dest(value, resource, field='routes'):
    if value == 'default':
        return value
    try:
        return str(ipaddress.ip_network(value, strict=True))
    except ValueError as exc:
        _fail(resource, field, value, 'is not a network (e.g. 203.0.113.0/24 or default): %s' % exc)


def unique_keys(items, key, label):
    """Refuse two resources with the same identity in one call."""
    seen = {}
    for item in items:
        k = key(item)
        if k in seen:
            name = k[-1] if isinstance(k, tuple) else k
            where = (' in netns %s' % k[0]) if isinstance(k, tuple) and k[0] else ''
            raise ValidationError('%s %r%s is listed twice in config' % (label, name, where),
                                  '%s %s' % (label, name), 'name', name)
        seen[k] = item
