# -*- coding: utf-8 -*-
# Copyright: contributors to hostnet.provision
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Reachability probes from inside namespaces: ICMP echo and TCP connect.

Private to the hostnet.provision collection.

A socket opened while this thread is inside a namespace stays there, so
each probe enters its source namespace only to open the socket; no ``ping``
or ``ip netns exec`` process is started. Every probe is bounded by its
timeout; nothing is sent except one echo request or one TCP handshake.
The probes run concurrently in one thread (non-blocking sockets, one
selector): a run costs about its timeout per window of MAX_IN_FLIGHT probes.

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
import selectors
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
# Probes in flight at once (sockets): bounded by the open-file limit too.
MAX_IN_FLIGHT = 4096

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


class _IcmpSocket:
    """One raw ICMP (or ICMPv6) socket per source namespace and family,
    shared by every echo probe from there: a raw socket receives every ICMP
    message of its namespace, so one socket per probe would copy each reply
    to all of them. Probes are told apart by (identifier, sequence)."""

    def __init__(self, spec, version):
        if version == 4:
            self.sock = _open(spec, socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
        else:
            self.sock = _open(spec, socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
        self.sock.setblocking(False)
        self.version = version
        self.waiting = {}  # (ident, seq) -> probe

    def send(self, probe, ident, seq):
        request = 8 if self.version == 4 else 128
        payload = b'hostnet.provision probe'
        header = struct.pack('!BBHHH', request, 0, 0, ident, seq)
        checksum = _checksum(header + payload) if self.version == 4 else 0  # the kernel fills ICMPv6's
        packet = struct.pack('!BBHHH', request, 0, checksum, ident, seq) + payload
        try:
            self.sock.sendto(packet, (str(probe.address), 0))
        except OSError as exc:
            raise _from_os_error(exc, 'icmp probe') from None
        self.waiting[(ident, seq)] = probe

    def receive(self):
        """Read what arrived: [(probe, outcome)] for the probes it decides."""
        decided = []
        while True:
            try:
                data, peer = self.sock.recvfrom(2048)
            except (BlockingIOError, InterruptedError):
                return decided
            except OSError:
                return decided  # an error queued on the socket: each probe ends by its timeout
            if self.version == 4:
                data = data[(data[0] & 0x0f) * 4:]  # raw IPv4 sockets include the IP header
            if len(data) < 8:
                continue
            kind = data[0]
            if kind == (0 if self.version == 4 else 129):  # echo reply
                probe = self.waiting.get(struct.unpack('!HH', data[4:8]))
                if probe is not None and ipaddress.ip_address(peer[0].split('%')[0]) == probe.address:
                    decided.append((probe, _Outcome(REACHABLE, 'echo reply')))
            elif kind in ((3, 13) if self.version == 4 else (1,)):
                # Destination unreachable (or administratively prohibited):
                # the network's answer, about the echo request it quotes.
                inner = data[8:]
                if self.version == 4 and len(inner) >= 20:
                    inner = inner[(inner[0] & 0x0f) * 4:]
                elif self.version == 6:
                    inner = inner[40:]
                if len(inner) >= 8:
                    probe = self.waiting.get(struct.unpack('!HH', inner[4:8]))
                    if probe is not None:
                        code = data[1]
                        prohibited = (kind == 3 and code in (9, 10, 13)) or (kind == 1 and code == 1)
                        decided.append((probe, _Outcome(BLOCKED, 'prohibited' if prohibited else 'unreachable')))
            for probe, _outcome in decided:
                self.waiting.pop(probe.key, None)

    def close(self):
        self.sock.close()


class _Probe:
    """One check in flight."""

    def __init__(self, number, check, deadline):
        self.number = number
        self.check = check
        self.address = ipaddress.ip_address(check['to'])
        self.deadline = deadline
        self.sock = None  # TCP: its own socket
        self.key = None   # ICMP: (ident, seq) on the shared socket


def _start_tcp(probe):
    sock = _open(probe.check.get('from') or None, socket.AF_INET if probe.address.version == 4 else socket.AF_INET6,
                 socket.SOCK_STREAM, 0)
    sock.setblocking(False)
    probe.sock = sock
    err = sock.connect_ex((str(probe.address), int(probe.check['port'])))
    if err in (0, errno.EISCONN):
        raise _Outcome(REACHABLE, 'connected')
    if err not in (errno.EINPROGRESS, errno.EAGAIN, errno.EALREADY):
        raise _from_os_error(OSError(err, os.strerror(err)), 'tcp connect')


def _finish_tcp(probe):
    err = probe.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
    if err == 0:
        return _Outcome(REACHABLE, 'connected')
    return _from_os_error(OSError(err, os.strerror(err)), 'tcp connect')


def _checksum(data):
    if len(data) % 2:
        data += b'\0'
    total = sum(struct.unpack('!%dH' % (len(data) // 2), data))
    total = (total >> 16) + (total & 0xffff)
    total += total >> 16
    return ~total & 0xffff


def _window():
    """How many probes are in flight at once: as many as the open-file limit
    allows (raised to its hard limit), keeping room for everything else."""
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, 65536) if hard != resource.RLIM_INFINITY else 65536
    if soft != resource.RLIM_INFINITY and soft < want:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
            soft = want
        except (OSError, ValueError):
            pass
    limit = soft if soft != resource.RLIM_INFINITY else 65536
    return max(16, min(MAX_IN_FLIGHT, limit - 64))


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
    None when unknown).

    The probes run concurrently (up to the open-file limit at once, see
    _window), each bounded by ``timeout`` from its own start: the whole run
    takes about ``timeout`` times the number of windows, not the sum of the
    probes. A probe the network answers (echo reply, ICMP unreachable, TCP
    reset or handshake) is decided as soon as the answer arrives."""
    checks = validate(checks, timeout)
    outcomes = [None] * len(checks)
    window = _window()
    icmp = {}      # (spec, version) -> _IcmpSocket
    flight = {}    # fd -> probe (TCP)
    echoes = []    # probes waiting on a shared ICMP socket
    ident = os.getpid() & 0xffff
    selector = selectors.DefaultSelector()
    queue = list(enumerate(checks))
    queue.reverse()
    try:
        while queue or flight or echoes:
            while queue and len(flight) + len(echoes) < window:
                number, check = queue.pop()
                probe = _Probe(number, check, time.monotonic() + timeout)
                try:
                    if check['protocol'] == 'tcp':
                        try:
                            _start_tcp(probe)
                        except _Outcome:
                            if probe.sock is not None:
                                probe.sock.close()
                            raise
                        flight[probe.sock.fileno()] = probe
                        selector.register(probe.sock, selectors.EVENT_WRITE, probe)
                    else:
                        spec = check.get('from') or None
                        shared = icmp.get((spec, probe.address.version))
                        if shared is None:
                            shared = icmp[(spec, probe.address.version)] = _IcmpSocket(spec, probe.address.version)
                            selector.register(shared.sock, selectors.EVENT_READ, shared)
                        probe.key = ((ident + (number >> 16)) & 0xffff, (number & 0xffff) or 0x10000 - 1)
                        shared.send(probe, *probe.key)
                        echoes.append(probe)
                except _Outcome as outcome:
                    outcomes[number] = outcome
            now = time.monotonic()
            pending = list(flight.values()) + echoes
            if not pending:
                continue
            left = max(0.0, min(p.deadline for p in pending) - now)
            for key, _events in selector.select(left):
                if isinstance(key.data, _IcmpSocket):
                    for probe, outcome in key.data.receive():
                        if outcomes[probe.number] is None and probe in echoes:
                            outcomes[probe.number] = outcome
                            echoes.remove(probe)
                else:
                    probe = key.data
                    outcomes[probe.number] = _finish_tcp(probe)
                    _drop_tcp(selector, flight, probe)
            now = time.monotonic()
            for probe in [p for p in flight.values() if p.deadline <= now]:
                outcomes[probe.number] = _Outcome(BLOCKED, 'timeout')
                _drop_tcp(selector, flight, probe)
            for probe in [p for p in echoes if p.deadline <= now]:
                outcomes[probe.number] = _Outcome(BLOCKED, 'timeout')
                echoes.remove(probe)
                for shared in icmp.values():
                    shared.waiting.pop(probe.key, None)
    finally:
        for probe in list(flight.values()):
            probe.sock.close()
        for shared in icmp.values():
            shared.close()
        selector.close()
    out = []
    for check, outcome in zip(checks, outcomes):
        outcome = outcome or _Outcome(UNKNOWN, 'no result')
        entry = dict(check)
        entry['result'] = outcome.result
        entry['reason'] = outcome.reason
        entry['reachable'] = None if outcome.result == UNKNOWN else outcome.result == REACHABLE
        out.append(entry)
    return out


def _drop_tcp(selector, flight, probe):
    selector.unregister(probe.sock)
    del flight[probe.sock.fileno()]
    probe.sock.close()


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
