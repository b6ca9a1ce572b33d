# -*- coding: utf-8 -*-
# Copyright: contributors to hostnet.provision
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Published ports (Docker's ``-p [ip:]hostPort:containerPort``): DNAT of
host ports to an endpoint address, as elements of the collection's
nftables maps.

Private to the hostnet.provision collection.

One mapping is one resource, identified by (netns, protocol, host_ip,
host_port); ``host_ip`` omitted means every address of the destination's
family. A range publishes each port to the same offset of a same-size
range. ``host_port: auto`` picks a free port in 49152-65535 once; the map
element's comment (``auto``) records the choice, so the mapping keeps its
port across runs and is identified by its destination instead. Element
comments also record ranges (``8000-8010``), so the maps alone describe
every mapping: nothing is kept anywhere else.

When a mapping is changed or removed (and when a UDP mapping is added), the
conntrack entries to its host ports are flushed: an entry keeps its NAT
decision, so a UDP flow would otherwise keep reaching the old target (or,
for a flow that started before the port was published, none).
"""

from __future__ import annotations

import ipaddress

from ansible_collections.hostnet.provision.plugins.module_utils import _conntrack
from ansible_collections.hostnet.provision.plugins.module_utils import _hostports
from ansible_collections.hostnet.provision.plugins.module_utils import _nsfs
from ansible_collections.hostnet.provision.plugins.module_utils import _procfs
from ansible_collections.hostnet.provision.plugins.module_utils import _validate as v
from ansible_collections.hostnet.provision.plugins.module_utils._engine import Op, ResourceKind, resource_label
from ansible_collections.hostnet.provision.plugins.module_utils._errors import (
    ConflictError,
    LinkNotFound,
    NamespaceNotFound,
    ValidationError,
)
from ansible_collections.hostnet.provision.plugins.module_utils._netlink import is_managed
from ansible_collections.hostnet.provision.plugins.module_utils._nft import INET, Element
from ansible_collections.hostnet.provision.plugins.module_utils._nftplan import NftPlanner

__all__ = ['PortmapKind', 'PROTOCOLS', 'AUTO_PORTS', 'describe', 'mapping_elements']

PROTOCOLS = ('tcp', 'udp', 'sctp')
AUTO_PORTS = (49152, 65535)
_WILDCARD = {4: '0.0.0.0', 6: '::'}


def _version_of(item):
    for field in ('host_ip', 'destination'):
        if item.get(field):
            # Normalised addresses: only IPv6 ones hold a colon.
            return 6 if ':' in item[field] else 4
    return item.get('_version')


def _ports(host_port):
    """The host ports of a host_port value (an int or "A-B")."""
    if isinstance(host_port, int):
        return [host_port]
    low, high = host_port.split('-')
    return list(range(int(low), int(high) + 1))


def _spec(host_port):
    return str(host_port)


def _where(host_ip, version):
    if host_ip:
        return '[%s]' % host_ip if version == 6 else host_ip
    return '*' if version == 4 else '[::]'


def describe(item):
    """``tcp *:8080 -> 198.51.100.10:80`` (``*``: every IPv4 address)."""
    version = _version_of(item)
    hp = item['host_port']
    if hp == 'auto' and item.get('assigned_port'):
        hp = 'auto=%s' % item['assigned_port']
    text = '%s %s:%s' % (item['protocol'], _where(item.get('host_ip'), version), hp)
    if item.get('destination'):
        dest = '[%s]' % item['destination'] if version == 6 else item['destination']
        port = item.get('port')
        if port is not None and isinstance(item['host_port'], str) and '-' in item['host_port']:
            port = '%d-%d' % (port, port + len(_ports(item['host_port'])) - 1)
        text += ' -> %s:%s' % (dest, port)
    return text


class PortmapKind(ResourceKind):
    label = 'portmap'

    def __init__(self, kernel, ctx, enable_forwarding=False):
        super().__init__(kernel, ctx)
        self.nft = NftPlanner(kernel, ctx, enable_forwarding)
        self._parsed = {}        # netns -> (tables generation, {key: mapping}, port index)
        self._claims = {}        # netns -> {(protocol, version, port): [claim]} planned in this run
        self._released = set()   # keys planned for deletion in this run
        self._auto_taken = {}    # (netns, protocol) -> ports chosen in this run
        self._requested = {}     # (netns, protocol) -> explicit host ports of this call
        self._hairpin = {}       # netns -> {port ifindex: hairpin on}
        self._hairpin_planned = set()
        self._bridge_ports = {}  # (netns, bridge ifindex) -> its managed ports
        self._hairpin_bridges = set()  # (netns, bridge ifindex) whose ports were planned
        self._bound = {}         # (netns, protocol) -> ports bound by sockets (read once)
        self._ruleset = {}       # netns -> the namespace's whole ruleset (read once, JSON objects)
        self._sockets = {}       # (netns, protocol) -> its bound/listening sockets (read once)
        self._drops_checked = set()
        self.firewall = []       # other tables' forward chains that drop published traffic
        self._flushes = {}       # netns -> conntrack selectors still to flush in this run

    # -- identity and input ------------------------------------------------------

    def expand(self, config):
        """A mapping with ``destination6`` (a dual-stack endpoint) is two
        mappings: IPv4 to ``destination``, IPv6 to ``destination6``."""
        out = []
        for item in config or []:
            if not isinstance(item, dict) or item.get('destination6') in (None, ''):
                out.append(dict(item, destination6=None) if isinstance(item, dict) else item)
                continue
            res = 'portmap %s' % (item.get('host_port'),)
            dest6 = item['destination6']
            try:
                ok = ipaddress.ip_address(dest6).version == 6
            except ValueError:
                ok = False
            if not ok:
                raise ValidationError('%s: destination6 %r is not an IPv6 address' % (res, dest6), res,
                                      'destination6', dest6)
            if item.get('host_ip') not in (None, ''):
                raise ValidationError('%s: destination6 %s with host_ip %s: a mapping on one host address has one '
                                      'family; give destination6 only without host_ip' % (res, dest6, item['host_ip']),
                                      res, 'destination6', dest6)
            if str(item.get('host_port')).strip() == 'auto':
                raise ValidationError('%s: destination6 %s with host_port auto: auto chooses a port per family; '
                                      'give an explicit host_port (or two mappings)' % (res, dest6), res,
                                      'destination6', dest6)
            if item.get('destination') not in (None, ''):
                try:
                    v4 = ipaddress.ip_address(item['destination']).version == 4
                except ValueError:
                    v4 = True  # normalize() names the bad value
                if not v4:
                    raise ValidationError('%s: destination %s must be the IPv4 address when destination6 is given'
                                          % (res, item['destination']), res, 'destination', item['destination'])
                out.append(dict(item, destination6=None))
            out.append(dict(item, destination=dest6, destination6=None))
        return out

    def key(self, item):
        version = _version_of(item)
        host = item.get('host_ip') or _WILDCARD[version]
        if item['host_port'] == 'auto':
            slot = 'auto:%s:%s' % (item['destination'], item['port'])
        else:
            slot = _spec(item['host_port'])
        return (item.get('netns'), item['protocol'], host, slot)

    def item_label(self, item):
        return resource_label(item.get('netns'), describe(item))

    def _res(self, item_or_key):
        if isinstance(item_or_key, tuple):
            netns, protocol, host, slot = item_or_key
            return resource_label(netns, 'portmap %s %s:%s' % (protocol, host, slot))
        return 'portmap %s' % self.item_label(item_or_key)

    def normalize(self, item):
        res = 'portmap %s' % (item.get('host_port'),)
        protocol = item.get('protocol') or 'tcp'
        if protocol not in PROTOCOLS:
            raise ValidationError('%s: protocol %r must be one of %s' % (res, protocol, ', '.join(PROTOCOLS)),
                                  res, 'protocol', protocol)
        out = {
            'netns': v.netns_spec(item.get('netns'), res),
            'protocol': protocol,
            'host_ip': None,
            'host_port': _host_port(item.get('host_port'), res),
            'destination': None,
            'port': None,
            'assigned_port': None,
        }
        version = None
        if item.get('host_ip') not in (None, ''):
            host_ip = ipaddress.ip_address(v.ip_address(item['host_ip'], res, 'host_ip'))
            if host_ip.is_multicast:
                raise ValidationError('%s: host_ip %s is a multicast address' % (res, host_ip), res, 'host_ip',
                                      item['host_ip'])
            version = host_ip.version
            if not host_ip.is_unspecified:
                out['host_ip'] = str(host_ip)
            if host_ip.version == 6 and host_ip.is_loopback:
                raise ValidationError('%s: host_ip ::1 cannot be published: the kernel does not DNAT IPv6 '
                                      'loopback traffic (use 127.0.0.1 or a global address)' % res,
                                      res, 'host_ip', item['host_ip'])
        if item.get('destination') not in (None, ''):
            dest = ipaddress.ip_address(v.ip_address(item['destination'], res, 'destination'))
            if dest.is_multicast or dest.is_unspecified or dest.is_loopback:
                raise ValidationError('%s: destination %s is not an endpoint (unicast, non-loopback) address'
                                      % (res, dest), res, 'destination', item['destination'])
            if version is not None and dest.version != version:
                raise ValidationError('%s: destination %s and host_ip %s are of different address families'
                                      % (res, dest, item['host_ip']), res, 'destination', item['destination'])
            version = dest.version
            out['destination'] = str(dest)
        if version is None:
            raise ValidationError('%s: give destination (or host_ip), so that the address family is known'
                                  % res, res, 'destination', None)
        if out['host_ip'] is None:
            out['_version'] = version
        port = item.get('port')
        if port is not None:
            if not isinstance(port, int) or isinstance(port, bool) or not 1 <= port <= 65535:
                raise ValidationError('%s: port %r is not a port number (1 to 65535)' % (res, port),
                                      res, 'port', port)
            size = len(_ports(out['host_port'])) if out['host_port'] != 'auto' else 1
            if port + size - 1 > 65535:
                raise ValidationError('%s: port %d + %d ports of the range passes 65535' % (res, port, size),
                                      res, 'port', port)
            out['port'] = port
        for flag in ('allow_listening', 'allow_foreign_dnat'):
            value = item.get(flag)
            if value is not None and not isinstance(value, bool):
                raise ValidationError('%s: %s %r must be true or false' % (res, flag, value), res, flag, value)
            out['_' + flag] = bool(value)
        hint = item.get('bridge')
        if hint is not None:
            if not isinstance(hint, dict) or not hint.get('name'):
                raise ValidationError('%s: bridge %r must be a dict with a name (and ports)' % (res, hint),
                                      res, 'bridge', hint)
            ports = hint.get('ports') or []
            if not isinstance(ports, list):
                raise ValidationError('%s: bridge.ports %r must be a list of port names' % (res, ports),
                                      res, 'bridge.ports', ports)
            out['_bridge'] = {'name': v.ifname(hint['name'], res, 'bridge.name'),
                              'ports': [v.ifname(p, res, 'bridge.ports') for p in ports]}
        if out['host_port'] == 'auto' and (out['destination'] is None or out['port'] is None):
            raise ValidationError('%s: host_port auto needs destination and port (they identify the mapping)'
                                  % res, res, 'host_port', 'auto')
        return out

    def check_all(self, items):
        seen = {}
        for item in items:
            key = self.key(item)
            if key in seen:
                raise ValidationError('portmap %s: host_port %s is listed twice in config'
                                      % (describe(item), item['host_port']), describe(item),
                                      'host_port', item['host_port'])
            seen[key] = item
            if item['host_port'] != 'auto':
                # Explicit ports of this call are never handed out as "auto".
                self._requested.setdefault((item['netns'] or '', item['protocol']), set()).update(
                    _ports(item['host_port']))

    # -- reading --------------------------------------------------------------

    def _parsed_state(self, netns):
        tables = self.nft.tables(netns)
        generation = getattr(tables, 'generation', 0)
        cached = self._parsed.get(netns or '')
        if cached is None or cached[0] != generation:
            mappings = _parse(netns, tables)
            index = {}
            for key, mapping in mappings.items():
                claim = _claim(key, mapping)
                for port in claim['ports']:
                    index.setdefault((claim['protocol'], claim['version'], port), []).append(claim)
            cached = (generation, mappings, index)
            self._parsed[netns or ''] = cached
        return cached

    def _mappings(self, netns):
        return self._parsed_state(netns)[1]

    def current(self, key):
        netns = key[0]
        if not self.kernel.exists(netns):
            raise NamespaceNotFound('%s: netns %r: network namespace does not exist' % (self._res(key), netns),
                                    self._res(key), 'netns', netns)
        self.nft.require()
        mapping = self._mappings(netns).get(key)
        return None if mapping is None else dict(mapping)

    def managed_keys(self, scope):
        self.nft.require()
        keys = []
        for netns in scope:
            if self.kernel.exists(netns):
                keys.extend(self._mappings(netns))
        return keys

    # -- deciding -------------------------------------------------------------

    def predict(self, before, desired, replace):
        after = dict(before) if before else {}
        for field, value in desired.items():
            if value is not None or field not in after:
                after[field] = value
        for private in ('_elements', '_broken', '_version'):
            after.pop(private, None)
        res = self._res(desired)
        for field in ('destination', 'port'):
            if after.get(field) is None:
                raise ValidationError('%s: %s is required to publish a port' % (res, field), res, field, None)
        if after['host_port'] == 'auto':
            after['assigned_port'] = (before or {}).get('assigned_port') or \
                self._choose_port(after['netns'], after['protocol'], res)
        else:
            after['assigned_port'] = _ports(after['host_port'])[0]
        return after

    def _taken(self, netns, protocol):
        """Host ports of a protocol used by any mapping (table or this run)."""
        taken = set(self._auto_taken.get((netns or '', protocol), ()))
        taken |= self._requested.get((netns or '', protocol), set())
        indexes = [self._claims.get(netns or '', {})]
        if self.kernel.exists(netns):
            indexes.append(self._parsed_state(netns)[2])
        for index in indexes:
            taken.update(port for proto, _version, port in index if proto == protocol)
        return taken

    def _bound_ports(self, netns, protocol, res):
        key = (netns or '', protocol)
        if key not in self._bound:
            self._bound[key] = _procfs.bound_ports(netns, protocol, res) if self.kernel.exists(netns) else set()
        return self._bound[key]

    def _choose_port(self, netns, protocol, res):
        taken = self._taken(netns, protocol) | self._bound_ports(netns, protocol, res)
        if self.kernel.exists(netns):
            # Nor a port another table already DNATs.
            taken |= set(port for port, _where in _hostports.foreign_dnat(
                self._rules(netns, res), protocol, range(AUTO_PORTS[0], AUTO_PORTS[1] + 1)))
        for port in range(AUTO_PORTS[0], AUTO_PORTS[1] + 1):
            if port not in taken:
                self._auto_taken.setdefault((netns or '', protocol), set()).add(port)
                return port
        raise ConflictError('%s: no free %s port left in %d-%d' % (res, protocol, AUTO_PORTS[0], AUTO_PORTS[1]),
                            res, 'host_port', 'auto')

    def plan(self, key, before, after):
        netns = key[0]
        if after is None:
            self._released.add(key)
            res = self._res(before)
            ops = []
            op = self.nft.change_op(netns, res, 'unpublish %s' % describe(before),
                                    delete=set(before['_elements']), summary=True)
            if op is not None:
                ops.append(op)
            ops.append(self._flush_op(netns, res, [before]))
            return ops
        res = self._res(after)
        version = _version_of(after)
        self._check_clash(key, after, res)
        if self._bridge_to_come(netns, after, version):
            # Check mode: the bridge task before this one in the play makes
            # the destination's bridge and turns forwarding on for its
            # families (the caller's bridge hint says so).
            ops = []
        else:
            ops = self.nft.forwarding_ops(netns, {version}, res)
        want = mapping_elements(after)
        have = set((before or {}).get('_elements') or ())
        if want != have:
            what = 'publish %s' % describe(after) if before is None else \
                'change %s (was %s)' % (describe(after), describe(before))
            ops.append(self.nft.change_op(netns, res, what, delete=have - want, add=want - have, summary=True))
        else:
            op = self.nft.change_op(netns, res, 'restore', summary=True)
            if op is not None:
                ops.append(op)
        if self.kernel.exists(netns):
            if before is None or before.get('host_ip') != after.get('host_ip'):
                self._check_host_ip(netns, after, res)
            if before is None or _claim(key, before)['ports'] != _claim(key, after)['ports'] or \
                    before.get('host_ip') != after.get('host_ip'):
                self._check_others(netns, after, version, res)
            self._check_forward_drops(netns, version, res)
        ops.extend(self._hairpin_ops(netns, after, version, res, warn=want != have))
        if want != have and (before is not None or after['protocol'] == 'udp'):
            # A new TCP/SCTP mapping has nothing to flush (new connections
            # get new entries); a UDP flow that was sending to the port
            # before it was published would keep its un-NATed entry. Last:
            # a final operation defers what follows it for its resource.
            ops.append(self._flush_op(netns, res, [m for m in (before, after) if m is not None]))
        return ops

    # -- ports and policies of others ------------------------------------------------

    def _rules(self, netns, res):
        key = netns or ''
        if key not in self._ruleset:
            self._ruleset[key] = _hostports.ruleset(netns, res)
        return self._ruleset[key]

    def _check_host_ip(self, netns, after, res):
        """A mapping on one host address needs an address this namespace has:
        on any other the rule would never match (Docker refuses it too)."""
        host_ip = after.get('host_ip')
        if host_ip in (None, '') or ipaddress.ip_address(host_ip).is_unspecified:
            return
        for link in self.kernel.links(netns, res).values():
            if any(cidr.split('/')[0] == host_ip for cidr in self.kernel.addresses(netns, link['index'], res)):
                return
        message = ('%s: host_ip %s is not an address of %s: the mapping would never match'
                   % (res, host_ip, _nsfs.spec_label(netns)))
        if self.ctx.check_mode:
            # An earlier task of the play (a bridge's gateway) may add it.
            self.ctx.warn_each(('host_ip', _nsfs.spec_label(netns)), '%s (%s)' % (host_ip, res),
                               'check mode: host_ip not an address of %s now: %%s; the mappings would never '
                               'match (assuming an earlier task adds them)' % _nsfs.spec_label(netns))
            return
        raise ValidationError(message, res, 'host_ip', host_ip)

    def _check_others(self, netns, after, version, res):
        """Refuse a host port that a host process listens on, or that another
        nftables table already DNATs (each unless explicitly allowed)."""
        ports = set(_ports(after['assigned_port'] if after['host_port'] == 'auto' else after['host_port']))
        protocol = after['protocol']
        key = (netns or '', protocol)
        if key not in self._sockets:
            self._sockets[key] = _hostports.sockets(netns, protocol, res)  # read once per run
        holders = _hostports.name_processes([h for h in self._sockets[key] if h.port in ports and
                                             _hostports.conflicts(h, version, after.get('host_ip'))])
        if holders:
            text = '; '.join(h.describe() for h in holders)
            if not after.get('_allow_listening'):
                raise ConflictError('%s: host_port %s: %s: publishing it would take its connections (set '
                                    'allow_listening: true on this mapping to publish it anyway)'
                                    % (res, after['host_port'], text), res, 'host_port',
                                    after['host_port'])
            self.ctx.warn('%s: %s; allow_listening is set: connections to the host\'s addresses on it now go to '
                          '%s instead' % (res, text, after['destination']))
        taken = _hostports.foreign_dnat(self._rules(netns, res), protocol, ports, version, after.get('host_ip'))
        if taken:
            text = ', '.join('host port %d/%s is already DNATed by %s' % (port, protocol, where)
                             for port, where in taken)
            if not after.get('_allow_foreign_dnat'):
                raise ConflictError('%s: host_port %s: %s (another tool publishes it; set allow_foreign_dnat: '
                                    'true on this mapping to publish it anyway)' % (res, after['host_port'], text),
                                    res, 'host_port',
                                    after['host_port'])
            self.ctx.warn('%s: %s; allow_foreign_dnat is set: whichever table\'s rule runs first takes the '
                          'connections' % (res, text))

    def _check_forward_drops(self, netns, version, res):
        """Every run: warn when another table's forward chain drops by policy
        what this module forwards to the endpoints."""
        key = (netns or '', version)
        if key in self._drops_checked:
            return
        self._drops_checked.add(key)
        for where in _hostports.foreign_forward_drops(self._rules(netns, res), version):
            self.firewall.append({'netns': netns, 'family': 'ipv%d' % version, 'chain': where, 'policy': 'drop'})
            self.ctx.warn('WARNING: %s: chain %s has policy drop on the forward hook and no rule accepting DNATed '
                          'connections (ct status dnat accept): published IPv%d ports in %s are dropped there; '
                          'accept them in that chain' % (res, where, version, _nsfs_label(netns)))

    def touched(self, changes):
        """After changes: nothing read through the kernel's netlink views is
        stale. Mappings live in nftables (read through self.nft, which
        knows its own changes); the hairpin flags went through netlink and
        stamped their ports; conntrack and the forwarding sysctls are not
        read by any kind's current state."""

    def result_extra(self):
        """Module result keys beside the engine's: other tables' drop policies."""
        return {'firewall': self.firewall}

    def _check_clash(self, key, after, res):
        """Refuse a host port that another mapping (in the table, not being
        deleted in this run, or planned in this run) already publishes."""
        netns = after['netns']
        mine = _claim(key, after)
        indexes = [self._claims.setdefault(netns or '', {})]
        if self.kernel.exists(netns):
            indexes.append(self._parsed_state(netns)[2])
        for port in sorted(mine['ports']):
            slot = (mine['protocol'], mine['version'], port)
            for index in indexes:
                for other in index.get(slot, ()):
                    if other['key'] == key or other['key'] in self._released:
                        continue
                    if other['host_ip'] and mine['host_ip'] and other['host_ip'] != mine['host_ip']:
                        continue
                    shared = mine['ports'] & other['ports']
                    raise ConflictError('%s: host_port %s: host port %s/%s%s is already published by portmap %s'
                                        % (res, after['host_port'], _range_text(shared), mine['protocol'],
                                           '' if not mine['host_ip'] else ' on %s' % mine['host_ip'],
                                           describe(other['mapping'])),
                                        res, 'host_port', after['host_port'])
        for port in mine['ports']:
            indexes[0].setdefault((mine['protocol'], mine['version'], port), []).append(mine)

    def _flush_op(self, netns, res, mappings):
        """Flush the conntrack entries of these mappings' host ports.

        Final: it runs once every rule of the call is in place (a failure
        before undoes the rules and leaves the entries as they were, which
        cannot be brought back once flushed). The first flush op of a
        namespace to run flushes for every mapping of the call there, in
        one dump of the table; the others find nothing left to do."""
        selectors = []
        for m in mappings:
            ports = _ports(m['assigned_port'] if m['host_port'] == 'auto' else m['host_port'])
            sel = (_version_of(m), m['protocol'], m.get('host_ip'), tuple(ports))
            if sel not in selectors:
                selectors.append(sel)
        pending = self._flushes.setdefault(netns or '', [])
        pending.extend(sel for sel in selectors if sel not in pending)
        kernel = self.kernel

        def run():
            todo = self._flushes.pop(netns or '', [])
            if not todo:
                return
            local = None
            wanted = []
            for version, protocol, host_ip, ports in todo:
                if host_ip:
                    target = ipaddress.ip_address(host_ip)

                    def match(addr, target=target):
                        return addr == target
                else:
                    if local is None:
                        local = _local_addresses(kernel, netns)

                    def match(addr, local=local):
                        return addr.is_loopback or addr in local
                wanted.append((version, protocol, ports, match))
            _conntrack.flush(netns, wanted, res)
        text = 'flush conntrack entries to %s' % ', '.join(
            '%s %s:%s' % (p, _where(h, ver), _range_text(ports)) for ver, p, h, ports in selectors)
        return Op(res, text, run, final=True)

    def _hairpin_ops(self, netns, after, version, res, warn=True):
        """Hairpin mode on the managed ports of the destination's bridge.

        With br_netfilter loaded, a connection from an endpoint to its own
        published port is DNATed back to the port it came from and bridged,
        not routed; the bridge sends a frame out of its ingress port only in
        hairpin mode. Without br_netfilter the traffic is routed and this is
        harmless.
        """
        if not self.kernel.exists(netns):
            return []
        dest = ipaddress.ip_address(after['destination'])
        bridge = self._managed_bridge(netns, after, version)
        link = None if bridge is None else self.kernel.link(netns, bridge)
        # Check mode, the bridge and its ports made by earlier tasks of the
        # play: what they will be, as the caller (a role) says.
        hint = after.get('_bridge') if self.ctx.check_mode else None
        if link is None and hint is not None:
            bridge = hint['name']
            link = self.kernel.link(netns, bridge)
        if link is None and hint is None:
            if self.ctx.check_mode:
                # On a fresh host the bridge is made by an earlier task of the
                # play: say so once for the call, not "no bridge" per mapping.
                self.ctx.tolerate_missing(LinkNotFound(
                    '%s: no managed bridge holds destination %s yet' % (res, dest), res, 'destination', str(dest)))
                return []
            if warn:  # when the mapping is made or changed, not on every run
                self.ctx.warn_each('hairpin', '%s (%s)' % (dest, res),
                                   'destinations not behind a bridge managed by hostnet.provision.bridge: %s; '
                                   'their ports are reachable from outside, but not via the host\'s 127.0.0.1 nor '
                                   'from endpoints of their own network (hairpin)')
            return []
        if (netns or '', bridge) in self._hairpin_bridges:
            return []  # every port of this bridge was looked at for an earlier mapping
        self._hairpin_bridges.add((netns or '', bridge))
        modes = self._hairpin_modes(netns, res)
        names = []
        if link is not None:
            names = [port['name'] for port in self._managed_ports(netns, link['index'])
                     if not modes.get(port['index'])]
        if hint is not None and hint['name'] == bridge:
            # Ports that do not exist yet start with hairpin off.
            links = self.kernel.links(netns, res)
            names.extend(name for name in hint['ports'] if name not in links)
        ops = []
        for name in sorted(set(names)):
            if (netns or '', name) in self._hairpin_planned:
                continue
            self._hairpin_planned.add((netns or '', name))
            ops.append(Op(res, 'enable hairpin mode on port %s of bridge %s' % (name, bridge),
                          self._set_hairpin(netns, name, 1, res),
                          self._set_hairpin(netns, name, 0, res)))
        return ops

    def _managed_bridge(self, netns, mapping, version):
        """The managed bridge whose subnet holds the destination (from the
        table's bridge_nets set), or None."""
        dest = ipaddress.ip_address(mapping['destination'])
        for element in self.nft.tables(netns).elements(INET, 'bridge_nets%d' % version):
            if dest in ipaddress.ip_network(element.key[1]):
                return element.key[0]
        return None

    def _bridge_to_come(self, netns, mapping, version):
        """Check mode with a bridge hint whose bridge is not made yet."""
        if not self.ctx.check_mode or mapping.get('_bridge') is None:
            return False
        if not self.kernel.exists(netns):
            return True
        return self._managed_bridge(netns, mapping, version) is None and \
            self.kernel.link(netns, mapping['_bridge']['name']) is None

    def _managed_ports(self, netns, bridge_index):
        """The managed ports of a bridge by name, listed once per bridge and run
        (N published ports on one bridge would otherwise scan every link N times)."""
        key = (netns or '', bridge_index)
        ports = self._bridge_ports.get(key)
        if ports is None:
            ports = self._bridge_ports[key] = sorted(
                (port for port in self.kernel.links(netns).values()
                 if port['master'] == bridge_index and is_managed(port)), key=lambda l: l['name'])
        return ports

    def _hairpin_modes(self, netns, res):
        modes = self._hairpin.get(netns or '')
        if modes is None:
            # Bridge ports carry their hairpin mode in the link dump.
            modes = dict((link['index'], link['hairpin']) for link in self.kernel.links(netns, res).values()
                         if 'hairpin' in link)
            self._hairpin[netns or ''] = modes
        return modes

    def _set_hairpin(self, netns, name, mode, res):
        kernel = self.kernel

        def run():
            index = kernel.link_index(netns, name, res)
            if index is not None:
                kernel.bridge_port_set(netns, res, index, mode, action='set hairpin mode of %s' % name,
                                       field='destination')
        return run


def _claim(key, mapping):
    ports = _ports(mapping['assigned_port'] if mapping['host_port'] == 'auto' else mapping['host_port'])
    return {'key': key, 'protocol': mapping['protocol'], 'version': _version_of(mapping),
            'host_ip': mapping.get('host_ip'), 'ports': set(ports), 'mapping': mapping}


def _range_text(ports):
    ports = sorted(ports)
    if len(ports) > 1 and ports[-1] - ports[0] == len(ports) - 1:
        return '%d-%d' % (ports[0], ports[-1])
    return ','.join(str(p) for p in ports)


def _host_port(value, res):
    if value is None or value == '':
        raise ValidationError('%s: host_port is required (a port, a range "8000-8010" or "auto")' % res,
                              res, 'host_port', value)
    if isinstance(value, bool):
        raise ValidationError('%s: host_port %r is not a port' % (res, value), res, 'host_port', value)
    if isinstance(value, str):
        text = value.strip()
        if text == 'auto':
            return 'auto'
        if text.isdigit():
            value = int(text)
        elif '-' in text:
            low, _sep, high = text.partition('-')
            if not (low.strip().isdigit() and high.strip().isdigit()):
                raise ValidationError('%s: host_port %r is not a port, a range "A-B" or "auto"' % (res, value),
                                      res, 'host_port', value)
            low, high = int(low), int(high)
            if not 1 <= low < high <= 65535:
                raise ValidationError('%s: host_port range %r must be A-B with 1 <= A < B <= 65535' % (res, value),
                                      res, 'host_port', value)
            return '%d-%d' % (low, high)
        else:
            raise ValidationError('%s: host_port %r is not a port, a range "A-B" or "auto"' % (res, value),
                                  res, 'host_port', value)
    if not isinstance(value, int) or not 1 <= value <= 65535:
        raise ValidationError('%s: host_port %r is not a port number (1 to 65535)' % (res, value),
                              res, 'host_port', value)
    return value


def _sets(version, specific):
    base = 'dnat%d%s_' % (version, '' if specific else '_any')
    return base + 'addr', base + 'port'


def mapping_elements(mapping):
    """The map elements that publish one mapping."""
    version = _version_of(mapping)
    host_ip = mapping.get('host_ip')
    addr_set, port_set = _sets(version, bool(host_ip))
    ports = _ports(mapping['assigned_port'] if mapping['host_port'] == 'auto' else mapping['host_port'])
    comment = _spec(mapping['host_port'])
    out = set()
    for offset, port in enumerate(ports):
        key = (host_ip, mapping['protocol'], port) if host_ip else (mapping['protocol'], port)
        out.add(Element(INET, addr_set, key, mapping['destination'], comment))
        out.add(Element(INET, port_set, key, mapping['port'] + offset))
    return out


def _parse(netns, tables):
    """Every mapping the maps of a namespace hold, by key."""
    groups = {}
    for version in (4, 6):
        for specific in (True, False):
            addr_set, port_set = _sets(version, specific)
            for element in tables.elements(INET, addr_set):
                key = element.key
                host_ip, proto, hport = key if specific else (None, key[0], key[1])
                if not isinstance(hport, int) or not isinstance(proto, str):
                    continue
                port_el = tables.get(INET, port_set, key)
                spec = element.comment or str(hport)
                if spec == 'auto':
                    group = (version, host_ip, proto, 'auto', hport)
                elif '-' in spec:
                    group = (version, host_ip, proto, spec)
                else:
                    spec = str(hport)
                    group = (version, host_ip, proto, spec)
                groups.setdefault(group, []).append((hport, element, port_el))
    out = {}
    for group, members in sorted(groups.items(), key=lambda g: repr(g[0])):
        version, host_ip, proto, spec = group[:4]
        members.sort(key=lambda m: m[0])
        first_port, first, first_port_el = members[0]
        mapping = {
            'netns': netns,
            'protocol': proto,
            'host_ip': host_ip,
            'host_port': 'auto' if spec == 'auto' else (int(spec) if spec.isdigit() else spec),
            'destination': first.value,
            'port': first_port_el.value if first_port_el is not None else None,
            'assigned_port': first_port,
            '_version': version,
        }
        if mapping['port'] is not None and mapping['host_port'] != 'auto':
            # A range starts at its first host port: shift the container port.
            mapping['port'] = mapping['port'] - (first_port - _ports(mapping['host_port'])[0])
        elements = set()
        for _hport, element, port_el in members:
            elements.add(element)
            if port_el is not None:
                elements.add(port_el)
        mapping['_elements'] = elements
        complete = mapping['port'] is not None and 1 <= mapping['port'] <= 65535 and \
            elements == mapping_elements(mapping)
        mapping['_broken'] = not complete
        kind_key = (netns, proto, host_ip or _WILDCARD[version],
                    'auto:%s:%s' % (mapping['destination'], mapping['port']) if spec == 'auto' else spec)
        if kind_key in out:  # a second auto mapping to the same target: list it by its port
            mapping['host_port'] = first_port
            kind_key = kind_key[:3] + (str(first_port),)
        if mapping['port'] is None:
            mapping['port'] = 0
        out[kind_key] = mapping
    return out


def _nsfs_label(netns):
    return 'the current namespace' if not netns else 'netns %s' % netns


def _local_addresses(kernel, netns):
    local = set()
    for link in kernel.links(netns).values():
        for cidr in kernel.addresses(netns, link['index']):
            local.add(ipaddress.ip_interface(cidr).ip)
    return local
