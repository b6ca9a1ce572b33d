# -*- coding: utf-8 -*-
# Copyright: contributors to hostnet.provision
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Who else uses a host port: listening processes, other tables' DNAT, and
other tables' forward policies (read-only, for the portmap kind).

Private to the hostnet.provision collection.

* Sockets: the namespace's /proc/thread-self/net/{tcp,tcp6,udp,udp6} and
  sctp/eps give each socket's local address(es), port, state and inode; the
  process holding the inode is found through /proc/PID/fd
  (``socket:[INODE]`` links). TCP counts listening sockets; UDP and SCTP
  every bound socket.
* nftables: the whole ruleset of the namespace through libnftables' JSON
  (never nft's text). Tables other than the collection's own are read, not
  changed: a rule with a ``dnat`` or ``redirect`` statement that matches a
  destination port (a value, a range or an anonymous set) claims that port,
  on the destination addresses it matches (``ip daddr``/``ip6 daddr``: a
  value, prefix, range or anonymous set; any address when it has no such
  match or one we cannot read) and the families of its table;
  a base chain on the forward hook with policy drop drops published
  traffic unless one of its rules accepts DNATed connections
  (``ct status dnat accept``).
"""

from __future__ import annotations

import ipaddress
import os

from ansible_collections.hostnet.provision.plugins.module_utils import _nft
from ansible_collections.hostnet.provision.plugins.module_utils import _nsfs
from ansible_collections.hostnet.provision.plugins.module_utils._errors import translate_os_error

__all__ = ['Holder', 'sockets', 'name_processes', 'conflicts', 'foreign_dnat', 'foreign_forward_drops', 'ruleset']

_TCP_LISTEN = '0A'  # include/net/tcp_states.h
_OUR_TABLES = (_nft.TABLE, 'hostnet_probe')


class Holder:
    """A socket bound to a host port: address, port, inode and its processes."""

    __slots__ = ('protocol', 'address', 'port', 'inode', 'processes')

    def __init__(self, protocol, address, port, inode):
        self.protocol = protocol
        self.address = address
        self.port = port
        self.inode = inode
        self.processes = []   # [(name, pid)]

    def describe(self):
        if not self.processes:
            who = 'a socket of no process this module can see (inode %s)' % self.inode
        else:
            who = ', '.join('%s (pid %d)' % p for p in self.processes[:3])
            if len(self.processes) > 3:
                who += ' and %d more' % (len(self.processes) - 3)
        return 'host port %d/%s is held by %s, listening on %s' % (self.port, self.protocol, who,
                                                                   _where(self.address))


def _where(address):
    return '[%s]' % address if ':' in str(address) else str(address)


def _decode_address(hexaddr):
    raw = bytes.fromhex(hexaddr)
    if len(raw) == 4:
        return ipaddress.ip_address(raw[::-1])
    # IPv6: four 32-bit words, each in host (little-endian) order.
    return ipaddress.ip_address(b''.join(raw[i:i + 4][::-1] for i in range(0, 16, 4)))


def _sockets(protocol, ports):
    """Holders of the given ports in the current namespace (inside it)."""
    found = []
    for name in (protocol, protocol + '6'):
        try:
            with open('/proc/thread-self/net/%s' % name) as fh:
                lines = fh.read().splitlines()[1:]
        except FileNotFoundError:
            continue
        for line in lines:
            cols = line.split()
            if len(cols) < 10 or ':' not in cols[1]:
                continue
            if protocol == 'tcp' and cols[3] != _TCP_LISTEN:
                continue
            hexaddr, hexport = cols[1].rsplit(':', 1)
            port = int(hexport, 16)
            if ports is None or port in ports:
                found.append(Holder(protocol, _decode_address(hexaddr), port, int(cols[9])))
    return found


def _sctp_holders(text, ports):
    """Holders from the text of /proc/net/sctp/eps (every bound SCTP
    endpoint; one line per socket: ENDPT SOCK STY SST HBKT LPORT UID INODE
    LADDRS, the local addresses space-separated, IPv6 in full form)."""
    found = []
    for line in text.splitlines()[1:]:
        cols = line.split()
        if len(cols) < 9 or not cols[5].isdigit() or not cols[7].isdigit():
            continue
        port = int(cols[5])
        if ports is not None and port not in ports:
            continue
        for address in cols[8:]:
            try:
                found.append(Holder('sctp', ipaddress.ip_address(address.lstrip('*')), port, int(cols[7])))
            except ValueError:
                continue
    return found


def _processes(holders):
    """Fill each holder's processes from /proc/PID/fd (the PID namespace)."""
    wanted = dict(('socket:[%d]' % h.inode, h) for h in holders if h.inode)
    if not wanted:
        return
    for entry in os.listdir('/proc'):
        if not entry.isdigit():
            continue
        fd_dir = '/proc/%s/fd' % entry
        try:
            fds = os.listdir(fd_dir)
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink('%s/%s' % (fd_dir, fd))
            except OSError:
                continue
            holder = wanted.get(target)
            if holder is None:
                continue
            try:
                with open('/proc/%s/comm' % entry) as fh:
                    name = fh.read().strip()
            except OSError:
                name = '?'
            if (name, int(entry)) not in holder.processes:
                holder.processes.append((name, int(entry)))


def sockets(spec, protocol, resource=None):
    """Every socket of ``protocol`` (tcp: listening; udp and sctp: bound) in
    a namespace, without its processes (see ``name_processes``). SCTP's table
    exists only while the kernel's sctp module is loaded: without it no SCTP
    socket can exist."""
    if protocol not in ('tcp', 'udp', 'sctp'):
        return []
    fd = _nsfs.open_namespace(spec, resource) if spec else None
    try:
        with _nsfs.entered(fd):
            if protocol == 'sctp':
                try:
                    with open('/proc/thread-self/net/sctp/eps') as fh:
                        return _sctp_holders(fh.read(), None)
                except FileNotFoundError:
                    return []
            return _sockets(protocol, None)
    except OSError as exc:
        raise translate_os_error(exc, 'list %s sockets in %s' % (protocol, _nsfs.spec_label(spec)),
                                 resource) from None
    finally:
        if fd is not None:
            os.close(fd)


def name_processes(holders):
    """Fill in the processes holding each socket (once per holder)."""
    _processes([h for h in holders if not h.processes])
    return holders


def conflicts(holder, version, host_ip):
    """Whether a socket competes with a mapping of IP ``version`` on
    ``host_ip`` (None: every address of that family)."""
    address = holder.address
    if address.is_unspecified:
        # 0.0.0.0 takes IPv4; :: takes IPv6 and (dual-stack sockets) IPv4.
        return address.version == version or address.version == 6
    mapped = getattr(address, 'ipv4_mapped', None)
    if mapped is not None:
        address = mapped
    if address.version != version:
        return False
    return host_ip is None or address == ipaddress.ip_address(host_ip)


# -- other tables ------------------------------------------------------------------

def ruleset(spec, resource=None):
    """Every table, chain and rule of a namespace as libnftables JSON objects."""
    return _nft.run(spec, [{'list': {'ruleset': None}}], resource, action='list the ruleset')


def _foreign(obj):
    return obj.get('table') not in _OUR_TABLES


def _ports_of(right):
    """The destination ports a match's right side covers (a set of ints), or
    None when it is not a port literal we can read."""
    if isinstance(right, int) and not isinstance(right, bool):
        return {right}
    if isinstance(right, dict):
        if 'range' in right and all(isinstance(v, int) for v in right['range']):
            low, high = right['range']
            return set(range(low, high + 1))
        if 'set' in right:
            return _ports_of(right['set'])
        return None
    if isinstance(right, list):
        out = set()
        for item in right:
            ports = _ports_of(item)
            if ports is None:
                return None
            out |= ports
        return out
    return None


def _networks_of(right):
    """The destination networks a daddr match's right side covers (a list of
    ip_network), or None when it is not an address literal we can read (then
    the rule counts as matching any address)."""
    try:
        if isinstance(right, str):
            return [ipaddress.ip_network(right, strict=False)]
        if isinstance(right, dict):
            if 'prefix' in right:
                prefix = right['prefix']
                return [ipaddress.ip_network('%s/%s' % (prefix['addr'], prefix['len']), strict=False)]
            if 'range' in right:
                low, high = (ipaddress.ip_address(v) for v in right['range'])
                return list(ipaddress.summarize_address_range(low, high))
            if 'set' in right:
                return _networks_of(right['set'])
            return None
        if isinstance(right, list):
            out = []
            for item in right:
                nets = _networks_of(item)
                if nets is None:
                    return None
                out.extend(nets)
            return out
    except (ValueError, TypeError, KeyError):
        return None
    return None


def _rule_facts(expr):
    """(protocols, ports, translates, networks) of one rule: the transport
    protocols it is limited to (None: any), the destination ports it matches
    (None: not matched), whether it has a dnat/redirect statement, and the
    destination addresses it is limited to (None: any address)."""
    protocols, ports, translates, networks = None, None, False, None
    for stmt in expr:
        if 'dnat' in stmt or 'redirect' in stmt:
            translates = True
        match = stmt.get('match')
        if not match or match.get('op', '==') not in ('==', 'in'):
            continue
        left, right = match.get('left'), match.get('right')
        if not isinstance(left, dict):
            continue
        payload = left.get('payload')
        if payload and payload.get('field') == 'dport':
            matched = _ports_of(right)
            if matched is not None:
                ports = matched if ports is None else ports & matched
            if payload.get('protocol') in ('tcp', 'udp', 'sctp'):
                protocols = {payload['protocol']}
        if payload and payload.get('field') == 'daddr' and payload.get('protocol') in ('ip', 'ip6'):
            matched = _networks_of(right)
            if matched is not None:
                networks = matched if networks is None else [n for n in matched if any(
                    n.version == o.version and n.overlaps(o) for o in networks)]
        meta = left.get('meta')
        if meta and meta.get('key') == 'l4proto':
            names = right if isinstance(right, list) else (right.get('set') if isinstance(right, dict) else [right])
            if isinstance(names, list) and all(isinstance(n, str) for n in names):
                protocols = set(names) if protocols is None else protocols & set(names)
    return protocols, ports, translates, networks


def _covers(family, networks, version, host_ip):
    """Whether a rule of table ``family`` limited to ``networks`` (None: any
    address) can take a mapping of IP ``version`` on ``host_ip`` (None or
    unspecified: every address of the namespace, which includes theirs)."""
    if version is not None and (family == 'ip' and version != 4 or family == 'ip6' and version != 6):
        return False
    if networks is None:
        return True
    if version is not None and not any(n.version == version for n in networks):
        return False
    if host_ip in (None, '') or ipaddress.ip_address(host_ip).is_unspecified:
        return True
    address = ipaddress.ip_address(host_ip)
    return any(address in n for n in networks if n.version == address.version)


def foreign_dnat(objs, protocol, ports, version=None, host_ip=None):
    """Rules of other tables that DNAT (or redirect) one of ``ports`` of
    ``protocol`` where a mapping of IP ``version`` on ``host_ip`` would
    receive it (None: any family, every address): a list of (port,
    "family table chain"). A rule limited to other destination addresses
    (``ip daddr 198.51.100.7``) does not take a mapping on another host_ip."""
    found = []
    for obj in objs:
        rule = obj.get('rule')
        if not rule or not _foreign(rule):
            continue
        protocols, matched, translates, networks = _rule_facts(rule.get('expr') or [])
        if not translates or matched is None:
            continue
        if protocols is not None and protocol not in protocols:
            continue
        if not _covers(rule.get('family'), networks, version, host_ip):
            continue
        for port in sorted(matched & set(ports)):
            where = '%s %s %s' % (rule['family'], rule['table'], rule['chain'])
            if (port, where) not in found:
                found.append((port, where))
    return found


def _accepts_dnat(expr):
    has_dnat_match, verdict = False, None
    for stmt in expr:
        match = stmt.get('match')
        if match and isinstance(match.get('left'), dict) and (match['left'].get('ct') or {}).get('key') == 'status':
            right = match.get('right')
            values = right if isinstance(right, list) else [right]
            if 'dnat' in values:
                has_dnat_match = True
        if 'accept' in stmt:
            verdict = 'accept'
    return has_dnat_match and verdict == 'accept'


def foreign_forward_drops(objs, version):
    """Base chains of other tables on the forward hook of IP ``version`` with
    policy drop and no rule accepting DNATed connections: "family table chain"."""
    families = ('ip', 'inet') if version == 4 else ('ip6', 'inet')
    accepting = set()
    for obj in objs:
        rule = obj.get('rule')
        if rule and _foreign(rule) and _accepts_dnat(rule.get('expr') or []):
            accepting.add((rule['family'], rule['table'], rule['chain']))
    out = []
    for obj in objs:
        chain = obj.get('chain')
        if not chain or not _foreign(chain) or chain.get('family') not in families:
            continue
        if chain.get('hook') != 'forward' or chain.get('policy') != 'drop':
            continue
        ident = (chain['family'], chain['table'], chain['name'])
        if ident not in accepting:
            out.append('%s %s %s' % ident)
    return out
