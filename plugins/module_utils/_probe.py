# -*- coding: utf-8 -*-
# Copyright: contributors to hostnet.provision
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Reachability probes from inside namespaces: ICMP echo and TCP connect.

Private to the hostnet.provision collection.

A socket opened while this thread is inside a namespace stays there, so
each probe enters its source namespace only to open the socket; no ``ping``
or ``ip netns exec`` process is started. Every probe is bounded by its
timeout; nothing is sent except one echo request or one TCP handshake.

Every probe ends in one of three results, never a guess:

* ``reachable``: an echo reply came back, or the TCP handshake completed;
* ``blocked``: the network said no: no answer within the timeout (dropped
  on the way), an ICMP error (host/network unreachable, administratively
  prohibited), no route from the source, a local firewall refusing the
  send, or, for TCP, a reset (``refused``: the destination was reached
  but nothing accepts connections on that port). ``reason`` tells which;
* ``unknown``: the probe could not run, so it proves nothing either way:
  the source namespace does not exist, the socket could not be opened
  (permissions) or an unexpected socket error. An ``expect`` fails
  against ``unknown``, whichever way it points.

All checks are validated before the first packet is sent.

``forward_drops`` reads (never changes) the ruleset of the namespace the
probes are run from: a base chain of another table on the forward hook
with policy drop (see _hostports) explains why published or forwarded
flows through this host are blocked, so the report shows it.
"""

from __future__ import annotations

import errno
import ipaddress
import math
import os
import select
import socket
import struct
import time

from ansible_collections.hostnet.provision.plugins.module_utils import _hostports, _nsfs
from ansible_collections.hostnet.provision.plugins.module_utils._errors import HostnetError, ValidationError

__all__ = ['probe', 'validate', 'unexpected', 'forward_drops', 'PROTOCOLS', 'MAX_TIMEOUT', 'REACHABLE', 'BLOCKED', 'UNKNOWN']

PROTOCOLS = ('icmp', 'tcp')
# A probe waits at most this long: more is a typo (ms for s), not a network.
MAX_TIMEOUT = 60.0
REACHABLE, BLOCKED, UNKNOWN = 'reachable', 'blocked', 'unknown'

# Socket errors that are the network's answer (blocked), by name.
_BLOCKED_ERRORS = {
    errno.ECONNREFUSED: 'refused',          # TCP reset (or ICMP port unreachable)
    errno.ETIMEDOUT: 'timeout',
    errno.EHOSTUNREACH: 'unreachable',      # ICMP host unreachable / no neighbour
    errno.ENETUNREACH: 'unreachable',       # no route from the source
    errno.EACCES: 'prohibited',             # ICMP administratively prohibited, local reject
    errno.EPERM: 'prohibited',              # a local firewall dropped the send
}


class _Outcome(Exception):
    """A probe's result and why (raised inside the probe, caught once)."""

    def __init__(self, result, reason):
        super().__init__(reason)
        self.result = result
        self.reason = reason


def _from_os_error(exc, what):
    reason = _BLOCKED_ERRORS.get(exc.errno)
    if reason is not None:
        return _Outcome(BLOCKED, reason)
    return _Outcome(UNKNOWN, '%s failed: %s (%s)' % (what, exc.strerror or exc,
                                                     errno.errorcode.get(exc.errno, exc.errno)))


def _open(spec, family, kind, proto):
    try:
        fd = None if spec in (None, '') else _nsfs.open_namespace(spec, 'probe', 'from')
    except HostnetError as err:
        raise _Outcome(UNKNOWN, str(err)) from None
    try:
        with _nsfs.entered(fd):
            return socket.socket(family, kind, proto)
    except OSError as exc:
        raise _Outcome(UNKNOWN, 'cannot open a probe socket in %s: %s' % (_nsfs.spec_label(spec),
                                                                          exc.strerror or exc)) from None
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
                raise _Outcome(BLOCKED, 'timeout')
            data, peer = sock.recvfrom(2048)
            if ip.version == 4:
                data = data[(data[0] & 0x0f) * 4:]  # raw IPv4 sockets include the IP header
            if len(data) >= 8 and data[0] == reply_type and struct.unpack('!H', data[4:6])[0] == ident \
                    and ipaddress.ip_address(peer[0].split('%')[0]) == ip:
                raise _Outcome(REACHABLE, 'echo reply')
    except OSError as exc:
        raise _from_os_error(exc, 'icmp probe') from None
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
    except socket.timeout:
        raise _Outcome(BLOCKED, 'timeout') from None
    except OSError as exc:
        raise _from_os_error(exc, 'tcp connect') from None
    finally:
        sock.close()
    raise _Outcome(REACHABLE, 'connected')


def _number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def validate(checks, timeout):
    """Every check and the timeout, before the first probe: a list of
    normalised checks, or ValidationError naming the check, field and value."""
    if not _number(timeout) or math.isnan(timeout) or not 0 < timeout <= MAX_TIMEOUT:
        raise ValidationError('reachability: timeout %r must be a number of seconds above 0 and at most %d '
                              '(a probe with no time to wait proves nothing)' % (timeout, MAX_TIMEOUT),
                              'reachability', 'timeout', timeout)
    if not isinstance(checks, list) or not checks:
        raise ValidationError('reachability: checks %r must be a non-empty list' % (checks,), 'reachability',
                              'checks', checks)
    out = []
    for number, check in enumerate(checks):
        res = 'reachability check %d' % (number + 1)
        if not isinstance(check, dict):
            raise ValidationError('%s: %r is not a dict' % (res, check), res, 'checks', check)
        to = check.get('to')
        try:
            ipaddress.ip_address(to)
        except ValueError:
            raise ValidationError('%s: to %r is not an IP address' % (res, to), res, 'to', to) from None
        if ipaddress.ip_address(to).is_unspecified or ipaddress.ip_address(to).is_multicast:
            raise ValidationError('%s: to %s is not a unicast address' % (res, to), res, 'to', to)
        src = check.get('from')
        if src not in (None, ''):
            if not isinstance(src, str) or '\0' in src or (src.startswith('pid:') and not src[4:].isdigit()) \
                    or (not src.startswith('/') and not src.startswith('pid:') and
                        ('/' in src or src in ('.', '..'))):
                raise ValidationError('%s: from %r is not a namespace name, path or pid:PID' % (res, src),
                                      res, 'from', src)
        protocol = check.get('protocol') or 'icmp'
        if protocol not in PROTOCOLS:
            raise ValidationError('%s: protocol %r must be icmp or tcp' % (res, protocol), res, 'protocol',
                                  protocol)
        port = check.get('port')
        if protocol == 'tcp':
            if port is None:
                raise ValidationError('%s: a tcp probe to %s needs a port' % (res, to), res, 'port', None)
            if not isinstance(port, int) or isinstance(port, bool) or not 1 <= port <= 65535:
                raise ValidationError('%s: port %r is not a port number (1 to 65535)' % (res, port), res, 'port',
                                      port)
        elif port is not None:
            raise ValidationError('%s: port %r is given for an icmp probe (ports are for tcp)' % (res, port),
                                  res, 'port', port)
        expect = check.get('expect')
        if expect is not None and not isinstance(expect, bool):
            raise ValidationError('%s: expect %r must be true or false' % (res, expect), res, 'expect', expect)
        entry = dict(check)
        entry['protocol'] = protocol
        out.append(entry)
    return out


def probe(checks, timeout=1.0):
    """Run each check {from, to, protocol (icmp|tcp), port}; add ``result``
    (reachable, blocked or unknown), ``reason`` and ``reachable`` (a bool,
    None when unknown)."""
    checks = validate(checks, timeout)
    out = []
    for check in checks:
        entry = dict(check)
        src = check.get('from') or None
        try:
            if check['protocol'] == 'tcp':
                _tcp(src, check['to'], int(check['port']), timeout)
            else:
                _icmp(src, check['to'], timeout)
            outcome = _Outcome(UNKNOWN, 'no result')  # not reached: every probe raises its outcome
        except _Outcome as result:
            outcome = result
        entry['result'] = outcome.result
        entry['reason'] = outcome.reason
        entry['reachable'] = None if outcome.result == UNKNOWN else outcome.result == REACHABLE
        out.append(entry)
    return out


def unexpected(results):
    """Checks whose ``expect`` is not met (an unknown result meets none)."""
    return [r for r in results if r.get('expect') is not None and
            (r['result'] == UNKNOWN or r['expect'] != (r['result'] == REACHABLE))]


def forward_drops(checks, spec=None):
    """Base chains of other nftables tables on the forward hook of ``spec``
    (None: the namespace this runs in) whose policy drop would drop
    published or forwarded traffic of the checks' address families:
    [{netns, family, chain, policy}]. Reads the ruleset only."""
    versions = sorted(set(ipaddress.ip_address(c['to']).version for c in checks))
    objs = _hostports.ruleset(spec, 'reachability')
    return [{'netns': spec, 'family': 'ipv%d' % version, 'chain': where, 'policy': 'drop'}
            for version in versions for where in _hostports.foreign_forward_drops(objs, version)]
