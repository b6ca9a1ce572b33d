# -*- coding: utf-8 -*-
# Copyright: contributors to hostnet.provision
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""DNS on the wire, as a stub resolver needs it: an A or AAAA query, its
answer, and the resolver settings of a namespace (resolv.conf).

Private to the hostnet.provision collection. Pure functions of bytes and
files; the lookups that send them are run by _probe.lookup.
"""

from __future__ import annotations

import ipaddress
import os
import struct

__all__ = ['QTYPES', 'query', 'answer', 'resolv_conf', 'candidates', 'NOERROR', 'NXDOMAIN']

QTYPES = {'ipv4': 1, 'ipv6': 28}   # A, AAAA
NOERROR, SERVFAIL, NXDOMAIN, REFUSED = 0, 2, 3, 5
RCODES = {0: 'NOERROR', 1: 'FORMERR', 2: 'SERVFAIL', 3: 'NXDOMAIN', 4: 'NOTIMP', 5: 'REFUSED'}
_CLASS_IN = 1
_MAX_POINTERS = 64   # a compression loop in a hostile answer ends here


class WireError(ValueError):
    """An answer that is not a well-formed DNS message for the query."""


def _encode_name(name):
    labels = name.rstrip('.').split('.')
    out = b''
    for label in labels:
        raw = label.encode('idna') if label else b''
        if not raw or len(raw) > 63:
            raise ValueError('name %r has an empty label or one longer than 63 bytes' % name)
        out += struct.pack('!B', len(raw)) + raw
    out += b'\0'
    if len(out) > 255:
        raise ValueError('name %r is longer than 255 bytes' % name)
    return out


def query(ident, name, family):
    """A recursive query (RD set) for the A (``ipv4``) or AAAA (``ipv6``)
    records of ``name`` with message id ``ident``."""
    header = struct.pack('!HHHHHH', ident & 0xffff, 0x0100, 1, 0, 0, 0)
    return header + _encode_name(name) + struct.pack('!HH', QTYPES[family], _CLASS_IN)


def _read_name(data, offset):
    """(name, offset after it) at ``offset``, following compression pointers."""
    labels = []
    end = None
    jumps = 0
    while True:
        if offset >= len(data):
            raise WireError('name runs past the end of the message')
        length = data[offset]
        if length & 0xc0 == 0xc0:
            if offset + 1 >= len(data):
                raise WireError('truncated compression pointer')
            jumps += 1
            if jumps > _MAX_POINTERS:
                raise WireError('compression pointer loop')
            if end is None:
                end = offset + 2
            offset = ((length & 0x3f) << 8) | data[offset + 1]
            continue
        if length & 0xc0:
            raise WireError('unknown label type 0x%02x' % length)
        offset += 1
        if length == 0:
            break
        if offset + length > len(data):
            raise WireError('label runs past the end of the message')
        labels.append(data[offset:offset + length].decode('ascii', 'replace'))
        offset += length
    return '.'.join(labels).lower(), (end if end is not None else offset)


def answer(data, ident, name, family):
    """Read the answer to ``query(ident, name, family)``: (rcode, addresses).

    ``addresses`` are the records of the asked type in the answer section
    (after any CNAME chain the server followed), as strings. Raises
    WireError for a message that is not a response to that query (wrong
    id, not a response, another question) or is malformed; a truncated
    (TC) answer is read for what it holds."""
    if len(data) < 12:
        raise WireError('message shorter than a DNS header')
    got_id, flags, qdcount, ancount, _ns, _ar = struct.unpack('!HHHHHH', data[:12])
    if got_id != ident & 0xffff:
        raise WireError('message id %d is not the query id %d' % (got_id, ident & 0xffff))
    if not flags & 0x8000:
        raise WireError('message is a query, not a response')
    rcode = flags & 0x000f
    offset = 12
    want = name.rstrip('.').lower()
    qtype = QTYPES[family]
    for _i in range(qdcount):
        qname, offset = _read_name(data, offset)
        if offset + 4 > len(data):
            raise WireError('truncated question')
        got_type, _cls = struct.unpack('!HH', data[offset:offset + 4])
        offset += 4
        if qname != want or got_type != qtype:
            raise WireError('answer is for %s type %d, not %s type %d' % (qname, got_type, want, qtype))
    addresses = []
    for _i in range(ancount):
        _rname, offset = _read_name(data, offset)
        if offset + 10 > len(data):
            raise WireError('truncated resource record')
        rtype, rclass, _ttl, rdlength = struct.unpack('!HHIH', data[offset:offset + 10])
        offset += 10
        rdata = data[offset:offset + rdlength]
        if len(rdata) != rdlength:
            raise WireError('record data runs past the end of the message')
        offset += rdlength
        if rclass != _CLASS_IN or rtype != qtype:
            continue  # a CNAME on the way, or another record
        if rtype == 1 and rdlength == 4:
            addresses.append(str(ipaddress.IPv4Address(rdata)))
        elif rtype == 28 and rdlength == 16:
            addresses.append(str(ipaddress.IPv6Address(rdata)))
        else:
            raise WireError('type %d record of %d bytes' % (rtype, rdlength))
    return rcode, addresses


def resolv_conf_path(spec):
    """The resolv.conf the programs of namespace ``spec`` read: the one
    ``ip netns exec`` bind-mounts (/etc/netns/NAME/resolv.conf) for a named
    namespace that has one, else /etc/resolv.conf."""
    if spec and not spec.startswith('/') and not spec.startswith('pid:'):
        own = os.path.join('/etc/netns', spec, 'resolv.conf')
        if os.path.isfile(own):
            return own
    return '/etc/resolv.conf'


def parse_resolv_conf(text):
    """{nameservers, search, ndots} of a resolv.conf, as the C library reads
    it: at most three nameservers, the last search (or domain) line, ndots
    (default 1, at most 15)."""
    servers, search, ndots = [], [], 1
    for line in text.splitlines():
        words = line.split('#', 1)[0].split(';', 1)[0].split()
        if not words:
            continue
        if words[0] == 'nameserver' and len(words) > 1 and len(servers) < 3:
            try:
                servers.append(str(ipaddress.ip_address(words[1].split('%')[0])))
            except ValueError:
                continue
        elif words[0] in ('search', 'domain'):
            search = [w.rstrip('.') for w in words[1:]][:6] if words[0] == 'search' else words[1:2]
        elif words[0] == 'options':
            for opt in words[1:]:
                if opt.startswith('ndots:') and opt[6:].isdigit():
                    ndots = min(int(opt[6:]), 15)
    return {'nameservers': servers, 'search': search, 'ndots': ndots}


def resolv_conf(spec):
    """The resolver settings of namespace ``spec`` (see resolv_conf_path);
    a missing or unreadable file means none (no nameserver)."""
    path = resolv_conf_path(spec)
    try:
        with open(path) as handle:
            conf = parse_resolv_conf(handle.read())
    except OSError:
        conf = parse_resolv_conf('')
    conf['path'] = path
    return conf


def candidates(name, search, ndots):
    """The names a stub resolver asks for, in order: a name ending in a dot
    as it is; one with at least ``ndots`` dots as it is, then with each
    search domain; one with fewer, with each search domain first."""
    if name.endswith('.'):
        return [name.rstrip('.')]
    suffixed = ['%s.%s' % (name, domain) for domain in search if domain]
    if name.count('.') >= ndots:
        return [name] + suffixed
    return suffixed + [name]
