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
import itertools
import math
import os
import selectors
import socket
import struct
import time

from ansible_collections.hostnet.provision.plugins.module_utils import _dnswire, _hostports, _nsfs
from ansible_collections.hostnet.provision.plugins.module_utils._errors import HostnetError, ValidationError

__all__ = ['probe', 'validate', 'unexpected', 'forward_drops', 'lookup', 'validate_lookups', 'name_checks',
           'PROTOCOLS', 'MAX_TIMEOUT', 'REACHABLE', 'BLOCKED', 'UNKNOWN', 'RESOLVED', 'NOT_FOUND']

PROTOCOLS = ('icmp', 'tcp')
# A probe waits at most this long: more is a typo (ms for s), not a network.
MAX_TIMEOUT = 60.0
REACHABLE, BLOCKED, UNKNOWN = 'reachable', 'blocked', 'unknown'
RESOLVED, NOT_FOUND = 'resolved', 'not found'
# Probes in flight at once (sockets): bounded by the open-file limit too.
MAX_IN_FLIGHT = 4096
_RUNS = itertools.count(1)  # probe() runs of this process (see its echo identifier)

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
                    self.waiting.pop(probe.key, None)
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
        self.sock = None    # TCP: its own socket
        self.key = None     # ICMP: (ident, seq) on the shared socket
        self.shared = None  # ICMP: that socket


def _start_tcp(probe):
    sock = _open(probe.check.get('from') or None, socket.AF_INET if probe.address.version == 4 else socket.AF_INET6,
                 socket.SOCK_STREAM, 0)
    sock.setblocking(False)
    probe.sock = sock
    err = sock.connect_ex((str(probe.address), int(probe.check['port'])))
    if err in (0, errno.EISCONN):
        raise _Outcome(REACHABLE, 'connected')
    if err not in (errno.EINPROGRESS, errno.EAGAIN, errno.EALREADY):
        raise _tcp_error(probe, err)


def _finish_tcp(probe):
    err = probe.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
    if err == 0:
        return _Outcome(REACHABLE, 'connected')
    return _tcp_error(probe, err)


def _tcp_error(probe, err):
    if err == errno.ECONNREFUSED and probe.check.get('reset_reaches'):
        # A published port: the reset came from the destination the DNAT
        # sent the connection to; it was reached, nothing listens there.
        return _Outcome(REACHABLE, 'refused (reached, nothing listens)')
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


def _validate_timeout(timeout):
    if not _number(timeout) or math.isnan(timeout) or not 0 < timeout <= MAX_TIMEOUT:
        raise ValidationError('reachability: timeout %r must be a number of seconds above 0 and at most %d '
                              '(a probe with no time to wait proves nothing)' % (timeout, MAX_TIMEOUT),
                              'reachability', 'timeout', timeout)


def _validate_from(src, res):
    if src not in (None, ''):
        if not isinstance(src, str) or '\0' in src or (src.startswith('pid:') and not src[4:].isdigit()) \
                or (not src.startswith('/') and not src.startswith('pid:') and
                    ('/' in src or src in ('.', '..'))):
            raise ValidationError('%s: from %r is not a namespace name, path or pid:PID' % (res, src),
                                  res, 'from', src)


def validate(checks, timeout, allow_empty=False):
    """Every check and the timeout, before the first probe: a list of
    normalised checks, or ValidationError naming the check, field and value."""
    _validate_timeout(timeout)
    if allow_empty and checks in (None, []):
        return []
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
        _validate_from(check.get('from'), res)
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
        reset = check.get('reset_reaches')
        if reset is not None and not isinstance(reset, bool):
            raise ValidationError('%s: reset_reaches %r must be true or false' % (res, reset), res,
                                  'reset_reaches', reset)
        if reset and protocol != 'tcp':
            raise ValidationError('%s: reset_reaches is for tcp probes (a reset is a TCP answer)' % res, res,
                                  'reset_reaches', reset)
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
    # Probes in flight, in the order they started: with one timeout for all,
    # that is also the order of their deadlines, so the first one of each
    # is the next to expire and expired ones are taken from the front.
    echoes = {}    # number -> probe waiting on a shared ICMP socket
    # The echo identifier: this process's, and another on each run, so that
    # a run's echoes never join the conntrack entries of an earlier run of
    # the same process (ICMP conntrack knows the identifier, not the
    # sequence; an entry NATed under an old ruleset lives on for 30 s).
    ident = (os.getpid() + 4099 * next(_RUNS)) & 0xffff
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
                        probe.shared = shared
                        shared.send(probe, *probe.key)
                        echoes[number] = probe
                except _Outcome as outcome:
                    outcomes[number] = outcome
            firsts = [next(iter(d.values())) for d in (flight, echoes) if d]
            if not firsts:
                continue
            left = max(0.0, min(p.deadline for p in firsts) - time.monotonic())
            for key, _events in selector.select(left):
                if isinstance(key.data, _IcmpSocket):
                    for probe, outcome in key.data.receive():
                        if outcomes[probe.number] is None and echoes.get(probe.number) is probe:
                            outcomes[probe.number] = outcome
                            del echoes[probe.number]
                else:
                    probe = key.data
                    outcomes[probe.number] = _finish_tcp(probe)
                    _drop_tcp(selector, flight, probe)
            now = time.monotonic()
            while flight:
                probe = next(iter(flight.values()))
                if probe.deadline > now:
                    break
                outcomes[probe.number] = _Outcome(BLOCKED, 'timeout')
                _drop_tcp(selector, flight, probe)
            while echoes:
                probe = next(iter(echoes.values()))
                if probe.deadline > now:
                    break
                outcomes[probe.number] = _Outcome(BLOCKED, 'timeout')
                del echoes[probe.number]
                probe.shared.waiting.pop(probe.key, None)
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


# -- name lookups ------------------------------------------------------------------------------------

LOOKUP_FAMILIES = tuple(_dnswire.QTYPES)


def validate_lookups(lookups):
    """Every lookup {from, name, family, expect, reach, label}, before the
    first query: a list of normalised lookups, or ValidationError."""
    if lookups in (None, []):
        return []
    if not isinstance(lookups, list):
        raise ValidationError('reachability: lookups %r must be a list' % (lookups,), 'reachability', 'lookups',
                              lookups)
    out = []
    for number, item in enumerate(lookups):
        res = 'reachability lookup %d' % (number + 1)
        if not isinstance(item, dict):
            raise ValidationError('%s: %r is not a dict' % (res, item), res, 'lookups', item)
        _validate_from(item.get('from'), res)
        name = item.get('name')
        try:
            if not isinstance(name, str) or not name.rstrip('.'):
                raise ValueError(name)
            _dnswire.query(0, name, 'ipv4')
        except (ValueError, UnicodeError):
            raise ValidationError('%s: name %r is not a DNS name' % (res, name), res, 'name', name) from None
        family = item.get('family') or 'ipv4'
        if family not in LOOKUP_FAMILIES:
            raise ValidationError('%s: family %r must be ipv4 (A) or ipv6 (AAAA)' % (res, family), res, 'family',
                                  family)
        expect = item.get('expect')
        if expect is not None:
            if not isinstance(expect, list):
                raise ValidationError('%s: expect %r must be a list of addresses ([] for a name that must not '
                                      'resolve)' % (res, expect), res, 'expect', expect)
            for address in expect:
                try:
                    version = ipaddress.ip_address(address).version
                except ValueError:
                    raise ValidationError('%s: expect %r is not an IP address' % (res, address), res, 'expect',
                                          address) from None
                if version != (4 if family == 'ipv4' else 6):
                    raise ValidationError('%s: expect %s is not an %s address' % (res, address, family), res,
                                          'expect', address)
        reach = item.get('reach')
        if reach is not None and not isinstance(reach, bool):
            raise ValidationError('%s: reach %r must be true or false' % (res, reach), res, 'reach', reach)
        for field in ('label', 'reach_label'):
            if item.get(field) is not None and not isinstance(item[field], str):
                raise ValidationError('%s: %s %r must be text' % (res, field, item[field]), res, field, item[field])
        entry = dict(item)
        entry['family'] = family
        if expect is not None:
            entry['expect'] = sorted(str(ipaddress.ip_address(a)) for a in expect)
        out.append(entry)
    return out


class _Lookup:
    """One lookup in flight: the names to ask for, in order, each of the
    resolv.conf's nameservers in turn, one query at a time."""

    def __init__(self, number, item, conf):
        self.number = number
        self.item = item
        self.spec = item.get('from') or None
        self.servers = conf['nameservers']
        self.names = _dnswire.candidates(item['name'], conf['search'], conf['ndots'])
        self.conf = conf['path']
        self.name = 0      # index into names
        self.server = 0    # index into servers
        self.sock = None
        self.ident = 0
        self.deadline = 0.0
        self.trouble = []  # why a name got no answer from any server
        self.addresses = None
        self.answered_by = None


def _lookup_outcome(look, result, reason):
    entry = dict(look.item)
    entry.update(result=result, reason=reason, addresses=sorted(set(look.addresses or [])),
                 resolv_conf=look.conf, server=look.answered_by)
    expect = entry.get('expect')
    entry['ok'] = None if expect is None else (result != UNKNOWN and entry['addresses'] == expect)
    return entry


def _lookup_next(look, answered):
    """Move on after an attempt: to the next server when it did not answer,
    to the next name when it said the name has no such address. Returns
    the final entry when nothing is left to ask, else None."""
    if answered:
        look.name += 1
        look.server = 0
    else:
        look.server += 1
        if look.server >= len(look.servers):
            look.trouble.append(look.names[look.name])
            look.name += 1
            look.server = 0
    if look.name < len(look.names) and look.servers:
        return None
    if look.trouble:
        return _lookup_outcome(look, UNKNOWN, 'no answer for %s: %s' % (
            ', '.join(look.trouble), '; '.join(look.reasons)))
    return _lookup_outcome(look, NOT_FOUND, 'no %s record' % ('A' if look.item['family'] == 'ipv4' else 'AAAA'))


def lookup(lookups, timeout=1.0):
    """Resolve each lookup {from, name, family} inside its source namespace
    as its programs would: the nameservers, search domains and ndots of the
    namespace's resolv.conf (_dnswire.resolv_conf: the one ``ip netns exec``
    bind-mounts), an A or AAAA query over UDP from a socket opened in that
    namespace, each server in turn. Each query waits at most ``timeout``;
    the lookups run concurrently, like the probes.

    Each lookup gets ``result``: ``resolved`` (``addresses``), ``not found``
    (every name asked for is unknown or has no such record) or ``unknown``
    (no server answered for some name: ``reason`` says why); ``ok`` tells
    whether the addresses equal ``expect`` (None without an expect; an
    unknown result meets no expectation)."""
    _validate_timeout(timeout)
    items = validate_lookups(lookups)
    out = [None] * len(items)
    window = _window()
    selector = selectors.DefaultSelector()
    flight = {}   # fd -> _Lookup
    queue = []
    for number, item in enumerate(items):
        look = _Lookup(number, item, _dnswire.resolv_conf(item.get('from') or None))
        look.reasons = []
        if not look.servers:
            out[number] = _lookup_outcome(look, UNKNOWN, 'no nameserver in %s' % look.conf)
        else:
            queue.append(look)
    queue.reverse()
    ident = int.from_bytes(os.urandom(2), 'big')

    def start(look):
        """Send the next query; on an immediate error move on until one is in flight or the lookup ends."""
        while True:
            server = look.servers[look.server]
            name = look.names[look.name]
            family = socket.AF_INET6 if ':' in server else socket.AF_INET
            try:
                sock = _open(look.spec, family, socket.SOCK_DGRAM, 0)
            except _Outcome as outcome:
                return _lookup_outcome(look, UNKNOWN, outcome.reason)
            try:
                sock.setblocking(False)
                look.ident = (ident + look.number * 7919 + look.name * 31 + look.server) & 0xffff
                sock.connect((server, 53))
                sock.send(_dnswire.query(look.ident, name, look.item['family']))
            except OSError as exc:
                sock.close()
                look.reasons.append('%s: %s' % (server, _from_os_error(exc, 'query').reason))
                final = _lookup_next(look, False)
                if final is not None:
                    return final
                continue
            look.sock = sock
            look.deadline = time.monotonic() + timeout
            flight[sock.fileno()] = look
            selector.register(sock, selectors.EVENT_READ, look)
            return None

    def drop(look):
        selector.unregister(look.sock)
        del flight[look.sock.fileno()]
        look.sock.close()
        look.sock = None

    def settle(look, final):
        if final is None:
            final = start(look)
        if final is not None:
            out[look.number] = final

    try:
        while queue or flight:
            while queue and len(flight) < window:
                look = queue.pop()
                settle(look, None)
            if not flight:
                continue
            left = max(0.0, min(lk.deadline for lk in flight.values()) - time.monotonic())
            for key, _events in selector.select(left):
                look = key.data
                server = look.servers[look.server]
                try:
                    data = look.sock.recv(4096)
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError as exc:  # ICMP port unreachable: nothing listens on the server
                    look.reasons.append('%s: %s' % (server, _from_os_error(exc, 'query').reason))
                    drop(look)
                    settle(look, _lookup_next(look, False))
                    continue
                try:
                    rcode, addresses = _dnswire.answer(data, look.ident, look.names[look.name],
                                                       look.item['family'])
                except _dnswire.WireError:
                    continue  # not the answer to this query: keep waiting for it
                drop(look)
                if rcode == _dnswire.NOERROR and addresses:
                    look.addresses = addresses
                    look.answered_by = server
                    out[look.number] = _lookup_outcome(look, RESOLVED, 'answered by %s for %s' % (
                        server, look.names[look.name]))
                elif rcode in (_dnswire.NOERROR, _dnswire.NXDOMAIN):
                    look.answered_by = server
                    settle(look, _lookup_next(look, True))
                else:
                    look.reasons.append('%s: %s' % (server, _dnswire.RCODES.get(rcode, 'rcode %d' % rcode)))
                    settle(look, _lookup_next(look, False))
            now = time.monotonic()
            for look in [lk for lk in flight.values() if lk.deadline <= now]:
                look.reasons.append('%s: timeout' % look.servers[look.server])
                drop(look)
                settle(look, _lookup_next(look, False))
    finally:
        for look in list(flight.values()):
            look.sock.close()
        selector.close()
    return out


def name_checks(names):
    """ICMP checks to the addresses names resolved to, for lookups with
    ``reach``: a name is as reachable as the address it stands for. Only
    lookups that resolved as expected (or had no expect) add checks."""
    checks = []
    for n in names:
        if n.get('reach') is None or n['result'] != RESOLVED or n.get('ok') is False:
            continue
        for address in n['addresses']:
            checks.append({'from': n.get('from'), 'to': address, 'expect': n['reach'],
                           'label': '%s -> %s by name (%s)' % (n.get('reach_label') or n.get('from') or 'host',
                                                               n['name'], address)})
    return checks
