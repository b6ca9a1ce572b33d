# -*- coding: utf-8 -*-
# Copyright: contributors to hostnet.provision
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""macvlan endpoints: a link with its own MAC address on a parent NIC,
created directly inside its namespace under its final name, with addresses,
a default gateway and routes -- a container that appears as a device of the
LAN (Docker's macvlan driver).

Private to the hostnet.provision collection.

The parent is a link of the namespace the module runs in. With ``vlan`` the
macvlan sits on the parent's 802.1Q sub-interface instead: it is created
when missing (alias ``hostnet.provision macvlan-parent``) and deleted again
with the last macvlan on it; a sub-interface the collection did not create
is used, never removed.

A macvlan's alias records what it was made on
(``hostnet.provision macvlan parent=eth0 vlan=100``); that hint is always
verified against the kernel (the macvlan's lower link).
"""

from __future__ import annotations

import hashlib
import ipaddress
import os

from ansible_collections.hostnet.provision.plugins.module_utils import _intent
from ansible_collections.hostnet.provision.plugins.module_utils import _clash
from ansible_collections.hostnet.provision.plugins.module_utils import _ipconf as ipconf
from ansible_collections.hostnet.provision.plugins.module_utils import _nsfs
from ansible_collections.hostnet.provision.plugins.module_utils import _validate as v
from ansible_collections.hostnet.provision.plugins.module_utils._engine import Op, ResourceKind, merge_config, resource_label
from ansible_collections.hostnet.provision.plugins.module_utils._errors import (
    ConflictError,
    HostnetError,
    KernelError,
    LinkNotFound,
    NamespaceNotFound,
    ValidationError,
)
from ansible_collections.hostnet.provision.plugins.module_utils._linkops import (
    LinkRef,
    address_ops,
    attribute_ops,
    claim,
    managed_link_keys,
    read_routes,
    repair_op,
    route_ops,
)
from ansible_collections.hostnet.provision.plugins.module_utils._netlink import OWNER_TAG, make_alias, parse_alias

__all__ = ['MacvlanKind', 'MODES', 'vlan_link_name']

MODES = ('bridge', 'vepa', 'private', 'passthru', 'source')
_VLAN_TAG = make_alias('macvlan-parent')
_LISTS = ('addresses', 'gateway', 'routes')
_VID_MIN, _VID_MAX = 1, 4094
_HASH_DIGITS = 4


def vlan_link_name(parent, vid):
    """Name of the 802.1Q sub-interface made for ``vlan``.

    ``<parent>.<vid>`` when that fits in 15 bytes; otherwise the first bytes
    of the parent's name, 4 hex digits of a hash of the whole parent name
    (so that two long parents with the same beginning do not meet) and
    ``.<vid>``: ``enp0s20f0u1u2c2`` with vlan 4094 gives ``enp0s2XXXX.4094``.
    """
    suffix = '.%d' % vid
    name = parent + suffix
    if len(name.encode('utf-8')) < v.IFNAMSIZ:
        return name
    digest = hashlib.sha256(parent.encode('utf-8')).hexdigest()[:_HASH_DIGITS]
    room = v.IFNAMSIZ - 1 - len(suffix) - len(digest)
    head = parent.encode('utf-8')[:room].decode('utf-8', 'ignore')
    return head + digest + suffix


def _alias(parent, vid):
    return make_alias('macvlan', parent=parent, vlan=vid or None)


def _parse_hint(alias):
    """(parent, vlan) from a macvlan's alias, None if it is not ours."""
    parsed = parse_alias(alias)
    if parsed is None or parsed[0] != 'macvlan':
        return None
    vid = parsed[1].get('vlan')
    return parsed[1]['parent'], (int(vid) if vid else None)


def _lower_name(config):
    """The link a macvlan is made on: the parent or its 802.1Q sub-interface."""
    return vlan_link_name(config['parent'], config['vlan']) if config.get('vlan') else config['parent']


class MacvlanKind(ResourceKind):
    label = 'macvlan'
    list_fields = _LISTS

    def __init__(self, kernel, ctx):
        super().__init__(kernel, ctx)
        self._items = {}
        # Set when a listed resource is deleted: the call's state is deleted,
        # so no 802.1Q sub-interface is wanted by the listed resources.
        self._deleting = False
        # vlan link name -> macvlans on it, as (namespace id, name); read
        # once when needed, then kept up to date along the plan.
        self._users = None
        self._vlans_made = set()
        # lower link index -> macvlans on it (read once when needed), and
        # the macvlans this call deletes, as (namespace id, name).
        self._lowers = None
        self._leaving = set()
        # lower link index -> {address: holder} on that segment (see _check_segment).
        self._segments = {}

    # -- input ------------------------------------------------------------

    def normalize(self, item):
        name = v.ifname(item.get('name'), 'macvlan %s' % item.get('name'), new_link=True)
        res = 'macvlan %s' % name
        addresses = v.cidr_list(item.get('addresses'), res)
        out = {
            'name': name,
            'netns': v.netns_spec(item.get('netns'), res),
            'parent': v.ifname(item['parent'], res, 'parent') if item.get('parent') is not None else None,
            'mode': _mode(item.get('mode'), res),
            'vlan': _vid(item.get('vlan'), res),
            'mtu': v.mtu(item.get('mtu'), res),
            'mac': v.mac(item.get('mac'), res),
            'addresses': addresses,
            'gateway': ipconf.gateways(item.get('gateway'), addresses, res),
            'routes': ipconf.routes(item.get('routes'), res, addresses=addresses),
        }
        out.update(_clash.override(item, res))
        if out['parent'] == name and not out['netns']:
            raise ValidationError('%s: parent %r is the macvlan itself' % (res, name), res, 'parent', name)
        if out['parent'] == 'lo':
            raise ValidationError('%s: parent %r is the loopback link, which cannot carry a macvlan'
                                  % (res, out['parent']), res, 'parent', out['parent'])
        v.mtu_ipv6(out['mtu'], addresses, res)
        return out

    def check_all(self, items):
        super().check_all(items)
        ipconf.check_default_routes(items, 'macvlan', lambda i: i['netns'], lambda i: i['name'],
                                    lambda i: i['gateway'])
        self._items = dict((self.key(i), i) for i in items)
        # passthru takes the whole parent: no other macvlan beside it.
        by_lower = {}
        for item in items:
            if item['parent'] is not None:
                by_lower.setdefault(_lower_name(item), []).append(item)
        for lower, users in sorted(by_lower.items()):
            macs = {}
            for user in users:
                if user['mac'] and user['mode'] != 'passthru':
                    other = macs.setdefault(user['mac'], user)
                    if other is not user:
                        res = 'macvlan %s' % resource_label(user['netns'], user['name'])
                        raise ValidationError('%s: mac %s is also given to macvlan %s on the same parent %s in this '
                                              'call' % (res, user['mac'], resource_label(other['netns'], other['name']),
                                                        lower), res, 'mac', user['mac'])
            if len(users) > 1 and any(u['mode'] == 'passthru' for u in users):
                first = next(u for u in users if u['mode'] == 'passthru')
                other = next(u for u in users if u is not first)
                res = 'macvlan %s' % resource_label(first['netns'], first['name'])
                raise ValidationError('%s: mode passthru takes parent %s for itself, but macvlan %s (mode %s) in '
                                      'this call is on the same parent' % (res, lower, resource_label(
                                          other['netns'], other['name']), other['mode'] or 'bridge'),
                                      res, 'mode', 'passthru')

    # -- read -------------------------------------------------------------

    def _res(self, key):
        return 'macvlan %s' % resource_label(*key)

    def current(self, key):
        netns, name = key
        res = self._res(key)
        link = claim(self.kernel.link(netns, name, res), 'macvlan', res, name, netns)
        if link is None:
            return None
        hint = _parse_hint(link['alias'])
        if hint is None:
            raise ConflictError('%s: %r%s is a macvlan managed by %s but not an endpoint of the macvlan module'
                                % (res, name, ' in netns %s' % netns if netns else '', OWNER_TAG),
                                res, 'name', name)
        parent, vid = hint
        gateways, routes = read_routes(self.kernel, netns, link['index'])
        out = {
            'name': name,
            'netns': netns,
            'parent': parent,
            'mode': (link.get('macvlan') or {}).get('mode'),
            'vlan': vid,
            'mtu': link['mtu'],
            'mac': link['mac'],
            'addresses': self.kernel.addresses(netns, link['index']),
            'gateway': gateways,
            'routes': routes,
            '_up': link['up'],
        }
        if not self._on_recorded_lower(netns, link, parent, vid):
            out['_broken'] = True
        return out

    def _lower(self, netns, link):
        """The macvlan's lower link, looked up in the module's namespace."""
        if link['link'] is None:
            return None
        here = _nsfs.same_namespace(netns, None)
        if here != (link['link_netnsid'] is None):
            return None  # the lower link lives in some other namespace
        return self.kernel.link_by_index(None, link['link'])

    def _on_recorded_lower(self, netns, link, parent, vid):
        lower = self._lower(netns, link)
        if lower is None or lower['name'] != _lower_name({'parent': parent, 'vlan': vid}):
            return False
        if not vid:
            return True
        upper_parent = self.kernel.link_by_index(None, lower['link']) if lower['link'] else None
        return lower['kind'] == 'vlan' and (lower.get('vlan') or {}).get('id') == vid \
            and upper_parent is not None and upper_parent['name'] == parent

    def managed_keys(self, scope):
        return managed_link_keys(self.kernel, scope, 'macvlan', owned=lambda link: _parse_hint(link['alias']) is not None)

    # -- decide -----------------------------------------------------------

    def predict(self, before, desired, replace):
        after = merge_config(before, desired, replace, self.list_fields)
        for private in ('_up', '_broken'):
            after.pop(private, None)
        if before is None:
            res = self._res(self.key(desired))
            if after.get('parent') is None:
                raise ValidationError('%s: parent is required to create the macvlan' % res, res, 'parent', None)
            if after.get('mode') is None:
                after['mode'] = 'bridge'
        elif replace and desired.get('vlan') is None:
            after['vlan'] = None
        return after

    def _recreate_reason(self, before, after):
        if before.get('_broken'):
            return 'its lower link is no longer %s' % _lower_name(before)
        changes = []
        for field in ('parent', 'vlan'):
            if before[field] != after[field]:
                changes.append('%s %s becomes %s' % (field, _none(before[field]), _none(after[field])))
        if before['mode'] != after['mode'] and 'passthru' in (before['mode'], after['mode']):
            changes.append('mode %s becomes %s, which the kernel cannot change in place'
                           % (before['mode'], after['mode']))
        return ', '.join(changes)

    def plan(self, key, before, after):
        netns, name = key
        res = self._res(key)
        kernel = self.kernel
        ref = LinkRef(kernel, netns, name, res)
        if after is None:
            if key in self._items:
                self._deleting = True
            self._leaving.add((_nsfs.namespace_id(netns), name))
            old = before
            ops = [Op(res, 'delete macvlan %s' % resource_label(netns, name),
                      lambda: kernel.link_del(netns, res, ref.index()),
                      None if before.get('_broken') else lambda: self._restore(res, ref, old))]
            return ops + self._release_vlan(res, key, before)
        ops = []
        v.mtu_ipv6(after.get('mtu'), after.get('addresses'), res)
        ipconf.check_on_link(after.get('addresses'), after.get('gateway'), after.get('routes'), res)
        reason = self._recreate_reason(before, after) if before is not None else None
        if reason:
            old = before
            ops.append(Op(res, 'delete macvlan %s to recreate it (%s)' % (resource_label(netns, name), reason),
                          lambda: kernel.link_del(netns, res, ref.index()),
                          lambda: self._restore(res, ref, old)))
            ops.extend(self._release_vlan(res, key, before))
            before = None
        self._check_refs(res, after, key, creating=before is None,
                         mac_changed=before is not None and after.get('mac') != before.get('mac'))
        self._check_clash(res, netns, name, before, after)
        self._check_segment(res, key, before, after)
        if before is None:
            ops.extend(self._vlan_ops(res, after))
            ops.append(Op(res, 'create macvlan %s on %s (mode %s)' % (
                resource_label(netns, name), _lower_name(after), after['mode']),
                lambda: self._create(res, ref, after), lambda: self._remove(ref), partial=True))
            before = {}
        else:
            ops.extend(attribute_ops(ref, before, after))
            if after['mode'] != before['mode']:
                ops.append(Op(res, 'set mode of %s to %s (was %s)' % (name, after['mode'], before['mode']),
                              _mode_setter(ref, after['mode']), _mode_setter(ref, before['mode'])))
            if not before.get('_up'):
                ops.append(Op(res, 'bring up %s' % name, lambda: ref.set(state='up'), lambda: ref.set(state='down')))
        ops.extend(address_ops(ref, before.get('addresses'), after.get('addresses')))
        ops.extend(route_ops(ref, ipconf.gateway_routes(before.get('gateway')),
                             ipconf.gateway_routes(after.get('gateway')), field='gateway'))
        ops.extend(route_ops(ref, before.get('routes'), after.get('routes')))
        if set(before.get('addresses') or []) - set(after.get('addresses') or []):
            ops.append(repair_op(ref, after.get('addresses'),
                                 ipconf.gateway_routes(after.get('gateway')) + list(after.get('routes') or [])))
        return ops

    def _check_clash(self, res, netns, name, before, after):
        """What the endpoint adds must not clash with the host's routing (see _clash)."""
        before = before or {}
        entries = _clash.added(netns, 'addresses', before.get('addresses'), after.get('addresses')) + \
            _clash.added(netns, 'gateway', ipconf.gateway_routes(before.get('gateway')),
                         ipconf.gateway_routes(after.get('gateway'))) + \
            _clash.added(netns, 'routes', before.get('routes'), after.get('routes'))
        near = [(netns, name), (None, after['parent']), (None, _lower_name(after))]
        _clash.check(self.kernel, res, entries, near, after.get('_allow_route_overlap'))

    def _check_refs(self, res, after, key=None, creating=False, mac_changed=False):
        """Refuse a missing parent, an MTU above the parent's and a mode the
        parent cannot carry, before any change."""
        parent = after['parent']
        try:
            link = self.kernel.link(None, parent, res)
            if link is None:
                raise LinkNotFound('%s: parent %r does not exist in %s' % (res, parent, _nsfs.spec_label(None)),
                                   res, 'parent', parent)
        except (NamespaceNotFound, LinkNotFound) as err:
            self.ctx.tolerate_missing(err)
            return
        if after.get('vlan'):
            lower = self.kernel.link(None, _lower_name(after), res) or link
        else:
            lower = link
        if after.get('mtu') and lower['mtu'] and after['mtu'] > lower['mtu']:
            raise ValidationError('%s: mtu %d is larger than the MTU of its parent %s (%d); a macvlan cannot '
                                  'exceed its parent' % (res, after['mtu'], lower['name'], lower['mtu']),
                                  res, 'mtu', after['mtu'])
        if after.get('mtu') is None and creating:
            v.mtu_ipv6(lower['mtu'], after.get('addresses'), res,
                       origin=' (unset, so the MTU of parent %s)' % lower['name'])
        # With vlan and no sub-interface yet, it is made by this call: new, on the parent.
        pending = bool(after.get('vlan')) and lower is link
        if lower['kind'] == 'macvlan' and not pending:
            raise ValidationError('%s: parent %r is itself a macvlan; the kernel would put the new one on that '
                                  'macvlan\'s own parent instead: name that one' % (res, lower['name']),
                                  res, 'parent', after['parent'])
        if creating and lower['master'] and not pending:
            master = self.kernel.link_by_index(None, lower['master'])
            raise ValidationError('%s: parent %r is a port of %s %s, which holds its traffic; the kernel refuses a '
                                  'macvlan on it (EBUSY): use the %s itself as parent'
                                  % (res, lower['name'], (master or {}).get('kind') or 'master',
                                     (master or {}).get('name') or lower['master'], (master or {}).get('kind')
                                     or 'master'), res, 'parent', after['parent'])
        check_mac = bool(after.get('mac')) and after['mode'] != 'passthru' and (creating or mac_changed)
        if check_mac and after['mac'] == lower['mac']:
            raise ValidationError('%s: mac %s is the MAC address of its parent %s (the kernel refuses to bring the '
                                  'macvlan up)' % (res, after['mac'], lower['name']), res, 'mac', after['mac'])
        if (creating or check_mac) and not pending:
            self._check_lower_free(res, key, after, lower, creating, check_mac)

    def _check_lower_free(self, res, key, after, lower, creating=True, check_mac=True):
        """The kernel refuses (EINVAL) a second macvlan on a parent that
        carries a passthru one, and a passthru one on a parent that carries
        any: refused here against the macvlans the parent has now."""
        mine = (_nsfs.namespace_id(key[0]), key[1])
        for ident, name, mode, mac, _where in self._macvlans_on(lower['index']):
            if (ident, name) == mine or (ident, name) in self._leaving:
                continue
            if after.get('mac') and after['mac'] == mac and check_mac:
                raise ValidationError('%s: mac %s is already the MAC address of macvlan %s on the same parent %s '
                                      '(the kernel refuses to bring up the second one)'
                                      % (res, after['mac'], name, lower['name']), res, 'mac', after['mac'])
            if not creating:
                continue
            if 'passthru' in (mode, after['mode']):
                raise ValidationError('%s: mode %s cannot share parent %s with macvlan %s (mode %s), which is '
                                      'already on it: passthru takes the parent for one macvlan alone'
                                      % (res, after['mode'], lower['name'], name, mode), res, 'mode', after['mode'])

    def _check_segment(self, res, key, before, after):
        """Refuse an address that another managed macvlan on the same parent
        (or 802.1Q link), or that parent itself, already holds, or that an
        earlier macvlan of this call takes there: one address, one holder on
        the segment. Only the addresses this resource adds are checked."""
        lower_name = _lower_name(after)
        lower = self.kernel.link(None, lower_name, res)
        if lower is None:
            return  # check mode: made earlier in this call or play
        segment = self._segments.get(lower['index'])
        if segment is None:
            segment = self._segments[lower['index']] = {}
            for cidr in self.kernel.addresses(None, lower['index']):
                segment[ipaddress.ip_interface(cidr).ip] = 'its parent %s' % lower_name
            for ident, name, _mode, _mac, (spec, index, managed) in self._macvlans_on(lower['index']):
                if not managed or (ident, name) in self._leaving:
                    continue
                for cidr in self.kernel.addresses(spec, index):
                    segment.setdefault(ipaddress.ip_interface(cidr).ip, 'macvlan %s' % resource_label(spec, name))
        mine = 'macvlan %s' % resource_label(*key)
        had = set((before or {}).get('addresses') or []) if before and _lower_name(before) == lower_name else set()
        for cidr in after.get('addresses') or []:
            addr = ipaddress.ip_interface(cidr).ip
            holder = segment.get(addr)
            if cidr not in had and holder not in (None, mine):
                raise ConflictError('%s: addresses %s: %s is already held on the segment of %s by %s; one address '
                                    'has one holder there' % (res, cidr, addr, lower_name, holder),
                                    res, 'addresses', cidr)
        keep = set(ipaddress.ip_interface(cidr).ip for cidr in after.get('addresses') or [])
        for addr in [a for a, holder in segment.items() if holder == mine and a not in keep]:
            del segment[addr]  # given up by this call
        for addr in keep:
            segment.setdefault(addr, mine)

    def _macvlans_on(self, index):
        """(namespace id, name, mode) of the macvlans whose lower link is
        the link ``index`` of the module's namespace, in every namespace."""
        if self._lowers is None:
            self._lowers = {}
            home = _nsfs.namespace_id(None)
            seen = set()
            for spec in [None] + _nsfs.list_named() + sorted(k[0] for k in self._items if k[0]):
                ident = _nsfs.namespace_id(spec)
                if ident is None or ident in seen:
                    continue
                seen.add(ident)
                for link in self.kernel.links(spec).values():
                    if link['kind'] == 'macvlan' and link['link'] is not None \
                            and (link['link_netnsid'] is None) == (ident == home):
                        self._lowers.setdefault(link['link'], []).append(
                            (ident, link['name'], (link.get('macvlan') or {}).get('mode'), link['mac'],
                             (spec, link['index'], _parse_hint(link['alias']) is not None)))
        return self._lowers.get(index, [])

    # -- 802.1Q parent ------------------------------------------------------

    def _vlan_ops(self, res, after):
        vid = after.get('vlan')
        if not vid:
            return []
        parent, vname = after['parent'], _lower_name(after)
        if vname in self._vlans_made:
            return []
        link = self.kernel.link(None, vname, res)
        if link is not None:
            self._check_vlan_link(res, link, parent, vid)
            return []
        if not self.kernel.link_kind_supported(None, 'vlan', res, 'vlan'):
            raise ValidationError('%s: vlan %d: this kernel has no 802.1q support (vlan link kind); load the '
                                  '8021q module, or leave vlan unset and use a parent without VLAN tag'
                                  % (res, vid), res, 'vlan', vid)
        self._vlans_made.add(vname)
        made = LinkRef(self.kernel, None, vname, res, 'vlan')
        return [Op(res, 'create vlan %s (802.1Q id %d on %s)' % (vname, vid, parent),
                   lambda: self._create_vlan(res, vname, parent, vid, made), made.remove_created, partial=True)]

    def _check_vlan_link(self, res, link, parent, vid):
        lower = self.kernel.link_by_index(None, link['link']) if link['link'] else None
        if link['kind'] != 'vlan' or (link.get('vlan') or {}).get('id') != vid \
                or lower is None or lower['name'] != parent:
            raise ConflictError('%s: vlan %d: %r already exists but is not the 802.1Q sub-interface %d of %s; '
                                'rename or remove it' % (res, vid, link['name'], vid, parent), res, 'vlan', vid)

    def _release_vlan(self, res, key, before):
        """Delete the 802.1Q sub-interface the collection made, with its last macvlan."""
        vid = before.get('vlan')
        if not vid:
            return []
        parent, vname = before['parent'], _lower_name(before)
        link = self.kernel.link(None, vname, res)
        if link is None or link['kind'] != 'vlan' or link['alias'] != _VLAN_TAG:
            return []  # gone already, or not made by us: never removed
        users = self._vlan_users(vname)
        users.discard((_nsfs.namespace_id(key[0]), key[1]))
        if users or vname in self._wanted_vlans():
            return []
        return [Op(res, 'delete vlan %s (its last macvlan is gone)' % vname,
                   lambda: self._delete_vlan(res, vname),
                   lambda: self._create_vlan(res, vname, parent, vid))]

    def _wanted_vlans(self):
        if self._deleting:
            return set()
        return set(_lower_name(i) for i in self._items.values() if i.get('vlan') and i.get('parent'))

    def _vlan_users(self, vname):
        """Macvlans on a vlan link, found in the module's namespace and every
        named namespace (/run/netns) and namespace of this call."""
        if self._users is None:
            self._users = {}
            vlans = dict((link['index'], link['name']) for link in self.kernel.links(None).values()
                         if link['kind'] == 'vlan')
            home = _nsfs.namespace_id(None)
            seen = set()
            for spec in [None] + _nsfs.list_named() + sorted(k[0] for k in self._items if k[0]):
                ident = _nsfs.namespace_id(spec)
                if ident is None or ident in seen:
                    continue
                seen.add(ident)
                for link in self.kernel.links(spec).values():
                    if link['kind'] != 'macvlan' or link['link'] is None \
                            or (link['link_netnsid'] is None) != (ident == home):
                        continue
                    if link['link'] in vlans:
                        self._users.setdefault(vlans[link['link']], set()).add((ident, link['name']))
        return self._users.setdefault(vname, set())

    def _create_vlan(self, res, vname, parent, vid, made=None):
        kernel = self.kernel
        link = kernel.link(None, parent, res)
        if link is None:
            raise LinkNotFound('%s: parent %r does not exist' % (res, parent), res, 'parent', parent)
        with _intent.creating(None, [vname], 'vlan'):
            try:
                kernel.link_add(None, res, ifname=vname, kind='vlan', link=link['index'], vlan_id=vid)
            except KernelError as err:
                raise _explain(err, {'vlan': vid}) from None
            ref = made or LinkRef(kernel, None, vname, res, 'vlan')
            ref.mark_created()
            ref.set(ifalias=_VLAN_TAG, state='up')

    def _delete_vlan(self, res, vname):
        link = self.kernel.link(None, vname, res)
        if link is not None and link['alias'] == _VLAN_TAG:
            self.kernel.link_del(None, res, link['index'])

    # -- act --------------------------------------------------------------

    def _create(self, res, ref, after):
        kernel = self.kernel
        netns = ref.netns
        lower = kernel.link(None, _lower_name(after), res)
        if lower is None:
            raise LinkNotFound('%s: parent %r does not exist' % (res, _lower_name(after)), res, 'parent',
                               after['parent'])
        args = {'ifname': ref.name, 'kind': 'macvlan', 'link': lower['index'], 'macvlan_mode': after['mode']}
        elsewhere = not _nsfs.same_namespace(netns, None)
        # Made inside its namespace (IFLA_NET_NS_FD). Kernels before 6.12
        # look the new name up in the parent's namespace first and refuse
        # it (EEXIST) when a link there has it, as the host's own eth0 does
        # for a container-style eth0: then it is made under a temporary name
        # and renamed inside its namespace.
        temporary = elsewhere and kernel.link(None, ref.name, res) is not None
        if elsewhere:
            args['net_ns_fd'] = kernel.ns_fd(netns, res, 'netns')
        if temporary:
            args['ifname'] = 'hn%s' % os.urandom(5).hex()
        for field, nl_name in (('mtu', 'mtu'), ('mac', 'address')):
            if after.get(field) is not None:
                args[nl_name] = after[field]
        with _intent.creating(netns, sorted({args['ifname'], ref.name}), 'macvlan'):
            try:
                kernel.link_add(None, res, **args)
            except KernelError as err:
                raise _explain(err, after) from None
            kernel.session(netns).invalidate()
            if temporary:
                made = LinkRef(kernel, netns, args['ifname'], res, 'name')
                try:
                    made.set(field='name', value=ref.name, ifname=ref.name)
                except HostnetError:
                    self.kernel.link_del(netns, res, made.index())
                    raise
            ref.mark_created()
            ref.set(ifalias=_alias(after['parent'], after.get('vlan')), state='up')

    def _remove(self, ref):
        ref.remove_created()

    def _restore(self, res, ref, before):
        """Undo of a delete-to-recreate: the old link again, MAC included."""
        if before.get('_broken') or ref.get() is not None:
            return
        self._create(res, ref, before)
        kernel, index = self.kernel, ref.index()
        for cidr in before.get('addresses') or []:
            kernel.addr_add(ref.netns, res, index, cidr)
        for route in ipconf.gateway_routes(before.get('gateway')) + list(before.get('routes') or []):
            kernel.route_add(ref.netns, res, index, route['dest'], route.get('via'), route.get('metric'))


def _mode_setter(ref, mode):
    return lambda: ref.set(field='mode', value=mode, kind='macvlan', macvlan_mode=mode)


def _none(value):
    return 'none' if value is None else value


def _mode(value, res):
    if value is None:
        return None
    if value not in MODES:
        raise ValidationError('%s: mode %r is not one of %s' % (res, value, ', '.join(MODES)), res, 'mode', value)
    return value


def _vid(value, res):
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not _VID_MIN <= value <= _VID_MAX:
        raise ValidationError('%s: vlan %r is not an 802.1Q VLAN id (%d to %d)' % (res, value, _VID_MIN, _VID_MAX),
                              res, 'vlan', value)
    return value


def _explain(err, config):
    """Name what a kernel refuses when it lacks a link kind or a mode."""
    if err.errno_name in ('EOPNOTSUPP', 'ENOTSUP'):
        if config.get('mode') is None and config.get('vlan'):
            err.args = ('%s; this kernel has no 802.1q support (vlan link kind)' % err,)
            err.field, err.value = 'vlan', config['vlan']
        else:
            err.args = ('%s; this kernel has no macvlan support (macvlan link kind)' % err,)
    elif err.errno_name == 'EINVAL' and config.get('mode') == 'passthru':
        err.args = ('%s; mode passthru needs a parent that has no other macvlan' % err,)
        err.field, err.value = 'mode', 'passthru'
    return err
