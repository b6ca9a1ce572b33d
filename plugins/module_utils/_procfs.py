# -*- coding: utf-8 -*-
# Copyright: contributors to hostnet.provision
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Per-namespace /proc files: network sysctls and bound ports.

Private to the hostnet.provision collection.

/proc/sys/net and /proc/thread-self/net show the network namespace of the
thread that opens them, so every access enters the namespace first
(``_nsfs.entered``) and opens the file inside. Sysctls are addressed by
path components, never by a dotted name (interface names may hold dots).
"""

from __future__ import annotations

import os

from ansible_collections.hostnet.provision.plugins.module_utils import _nsfs
from ansible_collections.hostnet.provision.plugins.module_utils._errors import HostnetError, translate_os_error

__all__ = ['sysctl_get', 'sysctl_set', 'sysctl_label', 'bound_ports']

# /proc/net socket tables: state column values (include/net/tcp_states.h).
_TCP_LISTEN = '0A'


def sysctl_label(parts):
    return '.'.join(parts)


def _path(parts):
    for part in parts:
        if not part or '/' in part or part in ('.', '..'):
            raise HostnetError('bad sysctl path component %r' % (part,), field='sysctl', value=part)
    return os.path.join('/proc/sys', *parts)


def _inside(spec, fn, action, resource=None, field=None):
    fd = _nsfs.open_namespace(spec, resource) if spec else None
    try:
        with _nsfs.entered(fd):
            return fn()
    except OSError as exc:
        raise translate_os_error(exc, '%s in %s' % (action, _nsfs.spec_label(spec)), resource, field) from None
    finally:
        if fd is not None:
            os.close(fd)


def sysctl_get(spec, parts, resource=None):
    """A sysctl's value as a string in a namespace; None if it does not exist."""
    path = _path(parts)

    def read():
        try:
            with open(path) as fh:
                return fh.read().strip()
        except FileNotFoundError:
            return None
    return _inside(spec, read, 'read %s' % sysctl_label(parts), resource)


def sysctl_set(spec, parts, value, resource=None, field=None):
    path = _path(parts)

    def write():
        with open(path, 'w') as fh:
            fh.write('%s\n' % value)
    _inside(spec, write, 'set %s=%s' % (sysctl_label(parts), value), resource, field)


def bound_ports(spec, protocol, resource=None):
    """Local ports in use by sockets of a protocol (tcp: listening sockets;
    udp and sctp: every bound socket), IPv4 and IPv6, in a namespace."""

    def read():
        ports = set()
        if protocol == 'sctp':
            ports.update(_sctp_ports('/proc/thread-self/net/sctp/eps'))
            return ports
        for name in (protocol, protocol + '6'):
            ports.update(_inet_ports('/proc/thread-self/net/%s' % name, listen_only=protocol == 'tcp'))
        return ports
    return _inside(spec, read, 'list %s sockets' % protocol, resource)


def _inet_ports(path, listen_only):
    try:
        with open(path) as fh:
            lines = fh.read().splitlines()[1:]
    except FileNotFoundError:
        return set()
    ports = set()
    for line in lines:
        cols = line.split()
        if len(cols) < 4 or ':' not in cols[1]:
            continue
        if listen_only and cols[3] != _TCP_LISTEN:
            continue
        ports.add(int(cols[1].rsplit(':', 1)[1], 16))
    return ports


def _sctp_ports(path):
    try:
        with open(path) as fh:
            lines = fh.read().splitlines()[1:]
    except FileNotFoundError:
        return set()
    ports = set()
    for line in lines:
        cols = line.split()
        if len(cols) > 5 and cols[5].isdigit():
            ports.add(int(cols[5]))
    return ports
