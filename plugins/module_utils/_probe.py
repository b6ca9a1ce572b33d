# -*- coding: utf-8 -*-
# Copyright: contributors to hostnet.provision
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Reachability probes from inside namespaces: ICMP echo and TCP connect.

Private to the hostnet.provision collection.

A socket opened while this thread is inside a namespace stays there, so
each probe enters its source namespace only to open the socket; no ``ping``
or ``ip netns exec`` process is started. Every probe is bounded by its
timeout; nothing is sent except one echo request or one TCP handshake.
"""

from __future__ import annotations

import ipaddress
import os
import select
import socket
import struct
import time

from ansible_collections.hostnet.provision.plugins.module_utils import _nsfs
from ansible_collections.hostnet.provision.plugins.module_utils._errors import ValidationError

__all__ = ['probe']


def _open(spec, family, kind, proto):
    fd = None if spec in (None, '') else _nsfs.open_namespace(spec, 'probe', 'from')
    try:
        with _nsfs.entered(fd):
            return socket.socket(family, kind, proto)
    finally:
        if fd is not None:
            os.close(fd)


def _icmp(spec, address, timeout):
    ip = ipaddress.ip_address(address)
    if ip.version == 4:
        sock = _open(spec, socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
        request_type, reply_type = 8, 0
    else:
        sock = _open(spec, socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
        request_type, reply_type = 128, 129
    ident = os.getpid() & 0xffff
    payload = b'hostnet.provision probe'
    header = struct.pack('!BBHHH', request_type, 0, 0, ident, 1)
    checksum = _checksum(header + payload) if ip.version == 4 else 0  # the kernel fills ICMPv6's
    packet = struct.pack('!BBHHH', request_type, 0, checksum, ident, 1) + payload
    deadline = time.monotonic() + timeout
    try:
        sock.sendto(packet, (str(ip), 0))
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([sock], [], [], left)[0]:
                return False
            data, peer = sock.recvfrom(2048)
            if ip.version == 4:
                data = data[(data[0] & 0x0f) * 4:]  # raw IPv4 sockets include the IP header
            if len(data) >= 8 and data[0] == reply_type and struct.unpack('!H', data[4:6])[0] == ident \
                    and ipaddress.ip_address(peer[0].split('%')[0]) == ip:
                return True
    except OSError:
        return False
    finally:
        sock.close()


def _checksum(data):
    if len(data) % 2:
        data += b'\0'
    total = sum(struct.unpack('!%dH' % (len(data) // 2), data))
    total = (total >> 16) + (total & 0xffff)
    total += total >> 16
    return ~total & 0xffff


def _tcp(spec, address, port, timeout):
    ip = ipaddress.ip_address(address)
    sock = _open(spec, socket.AF_INET if ip.version == 4 else socket.AF_INET6, socket.SOCK_STREAM, 0)
    sock.settimeout(timeout)
    try:
        sock.connect((str(ip), port))
        return True
    except OSError:
        return False
    finally:
        sock.close()


def probe(checks, timeout=1.0):
    """Run each check {from, to, protocol (icmp|tcp), port}; add ``reachable``."""
    out = []
    for check in checks:
        entry = dict(check)
        src = check.get('from') or None
        try:
            ipaddress.ip_address(check['to'])
        except (KeyError, ValueError):
            raise ValidationError('probe: to %r is not an IP address' % (check.get('to'),), 'probe', 'to',
                                  check.get('to')) from None
        protocol = check.get('protocol') or 'icmp'
        if protocol == 'tcp':
            if not check.get('port'):
                raise ValidationError('probe: a tcp probe to %s needs a port' % check['to'], 'probe', 'port', None)
            entry['reachable'] = _tcp(src, check['to'], int(check['port']), timeout)
        elif protocol == 'icmp':
            entry['reachable'] = _icmp(src, check['to'], timeout)
        else:
            raise ValidationError('probe: protocol %r must be icmp or tcp' % protocol, 'probe', 'protocol', protocol)
        entry['protocol'] = protocol
        out.append(entry)
    return out
