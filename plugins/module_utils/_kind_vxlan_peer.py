# -*- coding: utf-8 -*-
# Copyright: contributors to hostnet.provision
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Forwarding entries of VXLAN devices: the flood list (the all-zero MAC
sent to every remote VTEP, how broadcast and unknown traffic reaches the
peers), static MAC -> VTEP entries, and permanent neighbour entries
IP -> MAC on the device (as flannel does), so that an overlay works without
multicast and without learning.

Private to the hostnet.provision collection.

One resource is one device (``device`` and ``netns``) with its peers and
entries. Only VXLAN devices the collection created are served, and only
their own static entries are managed: learned entries are left alone
(except that a static entry replaces a learned one for the same MAC), and
the entry the kernel keeps for the device's multicast group is no peer.

Reading costs one FDB dump and one neighbour dump per namespace however
many peers there are; applying makes one netlink request per difference.
"""

from __future__ import annotations

import functools
import ipaddress

from ansible_collections.hostnet.provision.plugins.module_utils import _nsfs
from ansible_collections.hostnet.provision.plugins.module_utils import _validate as v
from ansible_collections.hostnet.provision.plugins.module_utils._engine import Op, ResourceKind, resource_label
from ansible_collections.hostnet.provision.plugins.module_utils._errors import (
    ConflictError,
    LinkNotFound,
    NotManagedError,
    ValidationError,
)
from ansible_collections.hostnet.provision.plugins.module_utils._netlink import OWNER_TAG, is_managed

__all__ = ['VxlanPeerKind', 'ZERO_MAC']

ZERO_MAC = '00:00:00:00:00:00'


@functools.lru_cache(maxsize=65536)
def _ip_sort(ip):
    addr = ipaddress.ip_address(ip)
    return (addr.version, int(addr))


@functools.lru_cache(maxsize=65536)
def _parse_ip(value):
    return ipaddress.ip_address(value)


def _norm_ip(value):
    return str(_parse_ip(value)) if value else None


def _shape_entries(fdb, neigh):
    """Config-shaped entries from the sets {(mac, vtep)} and {(ip, mac)}."""
    out = []
    ips_of = {}
    for ip, mac in neigh:
        ips_of.setdefault(mac, []).append(ip)
    macs = set()
    for mac, vtep in fdb:
        macs.add(mac)
        for ip in ips_of.get(mac) or [None]:
            out.append({'mac': mac, 'vtep': vtep, 'ip': ip})
    for ip, mac in neigh:
        if mac not in macs:
            out.append({'mac': mac, 'vtep': None, 'ip': ip})
    return sorted(out, key=lambda e: (e['mac'], _ip_sort(e['vtep']) if e['vtep'] else (0, 0),
                                      _ip_sort(e['ip']) if e['ip'] else (0, 0)))


def _fdb_set(entries):
    return set((e['mac'], e['vtep']) for e in entries or [] if e['vtep'])


def _neigh_set(entries):
    return set((e['ip'], e['mac']) for e in entries or [] if e['ip'])


class VxlanPeerKind(ResourceKind):
    label = 'vxlan_peer'
    list_fields = ('peers', 'entries')

    def __init__(self, kernel, ctx):
        super().__init__(kernel, ctx)
        self._items = {}

    # -- input ------------------------------------------------------------

    def normalize(self, item):
        name = v.ifname(item.get('device'), 'vxlan_peer %s' % item.get('device'), 'device')
        res = 'vxlan_peer %s' % name
        return {
            'device': name,
            'netns': v.netns_spec(item.get('netns'), res),
            'peers': _peers(item.get('peers'), res),
            'entries': _entries(item.get('entries'), res),
        }

    def key(self, item):
        return (item.get('netns'), item['device'])

    def item_label(self, item):
        return resource_label(item.get('netns'), item['device'])

    def check_all(self, items):
        super().check_all(items)
        self._items = dict((self.key(i), i) for i in items)

    # -- read -------------------------------------------------------------

    def _res(self, key):
        return 'vxlan_peer %s' % resource_label(*key)

    def current(self, key):
        netns, name = key
        res = self._res(key)
        link = self.kernel.link(netns, name, res)
        if link is None:
            return None
        where = ' in netns %s' % netns if netns else ''
        if not is_managed(link):
            raise NotManagedError('%s: device %r: the %s%s was not created by %s; its forwarding entries are left '
                                  'alone' % (res, name, link['kind'] or 'link', where, OWNER_TAG), res, 'device', name)
        if link['kind'] != 'vxlan':
            raise ConflictError('%s: device %r%s is a %s, not a vxlan device' % (res, name, where, link['kind']),
                                res, 'device', name)
        vx = link.get('vxlan') or {}
        group = _norm_ip(vx.get('group'))
        peers, fdb, learned = set(), set(), {}
        for entry in self.kernel.fdb(netns, link['index'], res):
            mac, dst = entry['mac'], _norm_ip(entry['dst'])
            if not mac or not dst:
                continue
            if mac == ZERO_MAC:
                if entry['permanent'] and dst != group:
                    peers.add(dst)
            elif int(mac[:2], 16) & 1:
                continue  # multicast MACs: not ours
            elif entry['permanent']:
                fdb.add((mac, dst))
            else:
                learned[mac] = dst
        neigh = set((_norm_ip(n['dst']), n['mac']) for n in self.kernel.neighbours(netns, link['index'], res)
                    if n['permanent'] and n['mac'])
        six = any(_parse_ip(a).version == 6 for a in (vx.get('local'), vx.get('group')) if a)
        return {
            'device': name,
            'netns': netns,
            'peers': sorted(peers, key=_ip_sort),
            'entries': _shape_entries(fdb, neigh),
            '_index': link['index'],
            '_family': 6 if six else 4,
            '_local': _norm_ip(vx.get('local')),
            '_learned': learned,
        }

    def managed_keys(self, scope):
        keys = []
        for netns in scope:
            if not self.kernel.exists(netns):
                continue
            for link in self.kernel.links(netns).values():
                if link['kind'] == 'vxlan' and is_managed(link):
                    keys.append((netns, link['name']))
        return keys

    # -- decide -----------------------------------------------------------

    def predict(self, before, desired, replace):
        before = before or {'peers': [], 'entries': []}
        if replace:
            peers = list(desired['peers'] or [])
            fdb, neigh = _fdb_set(desired['entries']), _neigh_set(desired['entries'])
        else:
            have = set(before['peers'])
            peers = list(before['peers']) + [p for p in desired['peers'] or [] if p not in have]
            want_fdb, want_neigh = _fdb_set(desired['entries']), _neigh_set(desired['entries'])
            # A MAC has one VTEP and an IP one MAC: given ones win.
            macs, ips = set(e[0] for e in want_fdb), set(e[0] for e in want_neigh)
            fdb = set(e for e in _fdb_set(before['entries']) if e[0] not in macs) | want_fdb
            neigh = set(e for e in _neigh_set(before['entries']) if e[0] not in ips) | want_neigh
        return {
            'device': desired['device'],
            'netns': desired['netns'],
            'peers': sorted(peers, key=_ip_sort),
            'entries': _shape_entries(fdb, neigh),
        }

    def _deletion_target(self, key, before):
        """What stays when a resource is deleted: nothing, or (state
        deleted with peers/entries listed) all but the listed ones."""
        item = self._items.get(key)
        if item is None or (item['peers'] is None and item['entries'] is None):
            return {'peers': [], 'entries': []}
        fdb, neigh = _fdb_set(item['entries']), _neigh_set(item['entries'])
        # An entry listed without ip takes the neighbour entries of its MAC along.
        bare = set(e[0] for e in fdb) - set(e[1] for e in neigh)
        listed = set(item['peers'] or [])
        return {
            'peers': [p for p in before['peers'] if p not in listed],
            'entries': _shape_entries(_fdb_set(before['entries']) - fdb,
                                      set(e for e in _neigh_set(before['entries']) - neigh if e[1] not in bare)),
        }

    def plan(self, key, before, after):
        netns, name = key
        res = self._res(key)
        if after is None:
            target = self._deletion_target(key, before)
        else:
            target = after
            if before is None:
                # Refused before any change; in check mode the device may
                # come from an earlier task of the same play.
                self.ctx.tolerate_missing(LinkNotFound(
                    '%s: the vxlan device %r does not exist in %s (create it with hostnet.provision.vxlan first)'
                    % (res, name, _nsfs.spec_label(netns)), res, 'device', name))
            else:
                _check_family(res, before, after)
                _check_not_local(res, before, after)
        before = before or {'peers': [], 'entries': [], '_index': None, '_learned': {}}
        return _diff_ops(self.kernel, res, netns, name, before, target)


def _check_family(res, before, after):
    """Peers and VTEPs must be of the device's IP version."""
    family = before['_family']
    for field, values in (('peers', after['peers']),
                          ('entries', [e['vtep'] for e in after['entries'] if e['vtep']])):
        for value in values:
            if _parse_ip(value).version != family:
                raise ValidationError('%s: %s %s is an IPv%d address but the device %s tunnels over IPv%d'
                                      % (res, field, value, 6 if family == 4 else 4, after['device'], family),
                                      res, field, value)


def _check_not_local(res, before, after):
    """No peer or VTEP may be the device's own local address (the kernel
    accepts it and the tunnel sends to itself)."""
    local = before.get('_local')
    if not local:
        return
    for field, values in (('peers', after['peers']),
                          ('entries', [e['vtep'] for e in after['entries'] if e['vtep']])):
        for value in values:
            if value == local:
                raise ValidationError('%s: %s %s is the local address of the device %s itself; a peer is another '
                                      'VTEP' % (res, field, value, after['device']), res, field, value)


def _diff_ops(kernel, res, netns, name, before, after):
    index = before['_index']
    ops = []

    def fdb(fn, mac, dst, field):
        return lambda: fn(netns, res, index, mac, dst, field=field)

    def neigh_set(ip, mac):
        return lambda: kernel.neigh_replace(netns, res, index, ip, mac, field='entries')

    def neigh_del(ip):
        return lambda: kernel.neigh_del(netns, res, index, ip, field='entries')

    # Flood list: one appended destination per peer.
    old_peers, new_peers = set(before['peers']), set(after['peers'])
    for peer in before['peers']:
        if peer not in new_peers:
            ops.append(Op(res, 'remove peer %s from %s' % (peer, name),
                          fdb(kernel.fdb_del, ZERO_MAC, peer, 'peers'), fdb(kernel.fdb_append, ZERO_MAC, peer, 'peers')))
    for peer in after['peers']:
        if peer not in old_peers:
            ops.append(Op(res, 'add peer %s to %s' % (peer, name),
                          fdb(kernel.fdb_append, ZERO_MAC, peer, 'peers'), fdb(kernel.fdb_del, ZERO_MAC, peer, 'peers')))

    # Static MAC -> VTEP entries: a changed VTEP is one replace.
    old_fdb, new_fdb = _fdb_set(before['entries']), _fdb_set(after['entries'])
    added = sorted(new_fdb - old_fdb)
    removed = sorted(old_fdb - new_fdb)
    moved = {}
    for mac, dst in removed:
        moved.setdefault(mac, dst)
    moved = dict((mac, moved[mac]) for mac, _dst in added if mac in moved)
    for mac, dst in removed:
        if moved.get(mac) == dst:
            continue
        ops.append(Op(res, 'remove fdb entry %s dst %s from %s' % (mac, dst, name),
                      fdb(kernel.fdb_del, mac, dst, 'entries'), fdb(kernel.fdb_replace, mac, dst, 'entries')))
    learned = before.get('_learned') or {}
    for mac, dst in added:
        if mac in moved:
            ops.append(Op(res, 'change fdb entry %s on %s to dst %s (was %s)' % (mac, name, dst, moved[mac]),
                          fdb(kernel.fdb_replace, mac, dst, 'entries'),
                          fdb(kernel.fdb_replace, mac, moved[mac], 'entries')))
        else:
            extra = ' (replacing a learned one to %s)' % learned[mac] if mac in learned else ''
            ops.append(Op(res, 'add fdb entry %s dst %s to %s%s' % (mac, dst, name, extra),
                          fdb(kernel.fdb_replace, mac, dst, 'entries'), fdb(kernel.fdb_del, mac, dst, 'entries')))

    # Neighbour entries IP -> MAC (permanent).
    old_neigh = dict(_neigh_set(before['entries']))
    new_neigh = dict(_neigh_set(after['entries']))
    for ip in sorted(old_neigh, key=_ip_sort):
        if ip not in new_neigh:
            ops.append(Op(res, 'remove neighbour %s from %s' % (ip, name), neigh_del(ip),
                          neigh_set(ip, old_neigh[ip])))
    for ip in sorted(new_neigh, key=_ip_sort):
        mac = new_neigh[ip]
        if ip not in old_neigh:
            ops.append(Op(res, 'add neighbour %s lladdr %s to %s' % (ip, mac, name), neigh_set(ip, mac),
                          neigh_del(ip)))
        elif old_neigh[ip] != mac:
            ops.append(Op(res, 'change neighbour %s on %s to lladdr %s (was %s)' % (ip, name, mac, old_neigh[ip]),
                          neigh_set(ip, mac), neigh_set(ip, old_neigh[ip])))
    return ops


def _unicast_ip(value, res, field):
    try:
        addr = _parse_ip(value)
    except (ValueError, TypeError):
        v.ip_address(value, res, field)  # raises the ValidationError naming the field
        raise
    if addr.is_multicast or addr.is_unspecified or addr.is_loopback:
        raise ValidationError('%s: %s %r is not a unicast address' % (res, field, value), res, field, value)
    return str(addr)


def _peers(values, res):
    if values is None:
        return None
    out = set()
    for value in values:
        peer = _unicast_ip(value, res, 'peers')
        if peer in out:
            raise ValidationError('%s: peers lists %s twice' % (res, peer), res, 'peers', value)
        out.add(peer)
    return sorted(out, key=_ip_sort)


def _entries(values, res):
    if values is None:
        return None
    vteps, macs_of_ip, seen = {}, {}, set()
    for value in values:
        if not isinstance(value, dict) or not value.get('mac') or not (value.get('vtep') or value.get('ip')):
            raise ValidationError('%s: entries item %r needs a mac and a vtep, an ip or both' % (res, value),
                                  res, 'entries', value)
        mac = v.mac(value['mac'], res, 'entries')
        vtep = _unicast_ip(value['vtep'], res, 'entries') if value.get('vtep') else None
        ip = _unicast_ip(value['ip'], res, 'entries') if value.get('ip') else None
        if (mac, vtep, ip) in seen:
            raise ValidationError('%s: entries lists %s twice' % (res, mac), res, 'entries', value)
        seen.add((mac, vtep, ip))
        if vtep is not None and vteps.setdefault(mac, vtep) != vtep:
            raise ValidationError('%s: entries gives MAC %s two VTEPs (%s and %s); a MAC is behind one VTEP'
                                  % (res, mac, vteps[mac], vtep), res, 'entries', value)
        if ip is not None and macs_of_ip.setdefault(ip, mac) != mac:
            raise ValidationError('%s: entries gives IP %s two MACs (%s and %s)' % (res, ip, macs_of_ip[ip], mac),
                                  res, 'entries', value)
    return _shape_entries(set(vteps.items()), set(macs_of_ip.items()))
