# -*- coding: utf-8 -*-
# Copyright: contributors to hostnet.provision
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""VXLAN devices: the tunnel end of an overlay network (VNI, local VTEP
address, underlay link, UDP port, optional multicast group), with an MTU
that fits the underlay, optionally enslaved to a bridge and addressed,
with the kernel's random MAC or a given one (set at creation, corrected in
place; a recreated device keeps its MAC).

Private to the hostnet.provision collection.

The kernel cannot change a device's VNI or port in place; local address,
group and underlay link are part of the tunnel's identity too. A change of
any of them is planned, and shown, as a delete and a create, so a device
with the right name but the wrong identity is never reported as fine.
Recreating a device drops its FDB entries: the vxlan_peer module puts them
back. A delete that a failed call undoes builds the device again as it was:
same ifindex and MAC, its addresses, FDB entries and neighbours.
"""

from __future__ import annotations

import ipaddress

from ansible_collections.hostnet.provision.plugins.module_utils import _intent
from ansible_collections.hostnet.provision.plugins.module_utils import _nsfs
from ansible_collections.hostnet.provision.plugins.module_utils import _validate as v
from ansible_collections.hostnet.provision.plugins.module_utils._engine import Op, ResourceKind, merge_config, resource_label
from ansible_collections.hostnet.provision.plugins.module_utils._errors import (
    ConflictError,
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
)
from ansible_collections.hostnet.provision.plugins.module_utils._netlink import OWNER_TAG

__all__ = ['VxlanKind', 'DEFAULT_PORT', 'overhead']

DEFAULT_PORT = 4789
VNI_MIN, VNI_MAX = 1, 2 ** 24 - 1
# Outer IP + UDP (8) + VXLAN (8) + inner Ethernet (14) headers.
_OVERHEAD = {4: 20 + 8 + 8 + 14, 6: 40 + 8 + 8 + 14}
_ZERO_MAC = '00:00:00:00:00:00'
# What cannot change in place (the tunnel's identity), in plan order.
IDENTITY = ('vni', 'port', 'local', 'group', 'dev')


def overhead(family):
    """Bytes a VXLAN packet adds on an underlay of this IP version."""
    return _OVERHEAD[family]


def _family(config):
    """4 or 6: the underlay's IP version, decided by local or group."""
    for field in ('local', 'group'):
        if config.get(field):
            return ipaddress.ip_address(config[field]).version
    return 4


class VxlanKind(ResourceKind):
    label = 'vxlan'
    list_fields = ('addresses',)

    # -- input ------------------------------------------------------------

    def normalize(self, item):
        name = v.ifname(item.get('name'), 'vxlan %s' % item.get('name'), new_link=True)
        res = 'vxlan %s' % name
        out = {
            'name': name,
            'netns': v.netns_spec(item.get('netns'), res),
            'vni': _int_in(item.get('vni'), res, 'vni', VNI_MIN, VNI_MAX, 'a VXLAN network identifier'),
            'local': _unicast(item.get('local'), res),
            'dev': v.ifname(item['dev'], res, 'dev') if item.get('dev') is not None else None,
            'port': _int_in(item.get('port'), res, 'port', 1, 65535, 'a UDP port'),
            'group': _multicast(item.get('group'), res),
            'learning': item.get('learning'),
            'mtu': v.mtu(item.get('mtu'), res),
            'mac': v.mac(item.get('mac'), res),
            'bridge': v.ifname(item['bridge'], res, 'bridge') if item.get('bridge') else None,
            'addresses': v.cidr_list(item.get('addresses'), res),
        }
        if out['learning'] is not None and not isinstance(out['learning'], bool):
            raise ValidationError('%s: learning %r must be true or false' % (res, out['learning']),
                                  res, 'learning', out['learning'])
        if out['dev'] == 'lo':
            raise ValidationError('%s: dev %r is the loopback link; the tunnel needs an underlay that reaches '
                                  'the other VTEPs' % (res, out['dev']), res, 'dev', out['dev'])
        v.mtu_ipv6(out['mtu'], out['addresses'], res)
        if out['local'] and out['group'] and _family(out) != ipaddress.ip_address(out['group']).version:
            raise ValidationError('%s: group %s and local %s are of different IP versions'
                                  % (res, out['group'], out['local']), res, 'group', out['group'])
        return out

    def check_all(self, items):
        super().check_all(items)
        seen = {}
        for item in items:
            if item['vni'] is None:
                continue
            slot = (item['netns'], item['vni'], item['port'] or DEFAULT_PORT, _family(item))
            other = seen.get(slot)
            if other is not None:
                raise ValidationError('vxlan %s: vni %d on port %d is also used by vxlan %s in this call'
                                      % (item['name'], slot[1], slot[2], other), item['name'], 'vni', slot[1])
            seen[slot] = item['name']

    # -- read -------------------------------------------------------------

    def _res(self, key):
        return 'vxlan %s' % resource_label(*key)

    def current(self, key):
        netns, name = key
        link = claim(self.kernel.link(netns, name, self._res(key)), 'vxlan', self._res(key), name, netns)
        return None if link is None else self._shape(netns, link)

    def _shape(self, netns, link):
        vx = link.get('vxlan') or {}
        dev = self.kernel.link_by_index(netns, vx['link']) if vx.get('link') else None
        return {
            'name': link['name'],
            'netns': netns,
            'vni': vx.get('vni'),
            'local': _norm_ip(vx.get('local')),
            'dev': dev['name'] if dev else None,
            'port': vx.get('port'),
            'group': _norm_ip(vx.get('group')),
            'learning': vx.get('learning'),
            'mtu': link['mtu'],
            'mac': link['mac'],
            'bridge': self._master_name(netns, link),
            'addresses': self.kernel.addresses(netns, link['index']),
            '_up': link['up'],
        }

    def _master_name(self, netns, link):
        if not link['master']:
            return None
        master = self.kernel.link_by_index(netns, link['master'])
        return master['name'] if master else None

    def managed_keys(self, scope):
        return managed_link_keys(self.kernel, scope, 'vxlan')

    # -- decide -----------------------------------------------------------

    def predict(self, before, desired, replace):
        after = merge_config(before, desired, replace, self.list_fields)
        after.pop('_up', None)
        if replace and desired.get('bridge') is None:
            after['bridge'] = None
        res = self._res(self.key(desired))
        if before is None or _identity_changes(before, after):
            # A new device: what was not given takes its default.
            for field in ('vni', 'dev'):
                if after.get(field) is None:
                    raise ValidationError('%s: %s is required to create the device' % (res, field),
                                          res, field, None)
            if after.get('port') is None:
                after['port'] = DEFAULT_PORT
            if after.get('learning') is None:
                after['learning'] = False
            if desired.get('mtu') is None:
                after['mtu'] = self._max_mtu(after, res)
        return after

    def _underlay(self, config, res):
        """The underlay link, None when it does not exist (yet)."""
        try:
            dev = self.kernel.link(config['netns'], config['dev'], res)
            if dev is None:
                raise LinkNotFound('%s: dev %r does not exist in %s'
                                   % (res, config['dev'], _nsfs.spec_label(config['netns'])),
                                   res, 'dev', config['dev'])
        except (NamespaceNotFound, LinkNotFound) as err:
            self.ctx.tolerate_missing(err)
            return None
        return dev

    def _max_mtu(self, config, res):
        """The largest MTU that fits the underlay (None: underlay unknown)."""
        dev = self._underlay(config, res)
        if dev is None or not dev['mtu']:
            return None
        return dev['mtu'] - overhead(_family(config))

    def plan(self, key, before, after):
        netns, name = key
        res = self._res(key)
        kernel = self.kernel
        ref = LinkRef(kernel, netns, name, res)
        label = resource_label(netns, name)
        if after is None:
            saved = {}
            return [Op(res, 'delete vxlan %s' % label, lambda: self._delete(res, ref, saved),
                       lambda: self._restore(res, ref, before, saved))]
        ops = []
        changes = _identity_changes(before, after) if before is not None else None
        if changes:
            old, saved = before, {}
            ops.append(Op(res, 'delete vxlan %s to recreate it (%s)' % (label, ', '.join(changes)),
                          lambda: self._delete(res, ref, saved),
                          lambda: self._restore(res, ref, old, saved)))
            before = None
        self._check_refs(res, before, after)
        if before is None:
            ops.append(Op(res, 'create vxlan %s (%s)' % (label, _describe(after)),
                          lambda: self._create(res, ref, after), lambda: self._remove(ref), partial=True))
            before = {}
        else:
            ops.extend(attribute_ops(ref, before, after))
            if after.get('learning') is not None and after['learning'] != before['learning']:
                ops.append(Op(res, 'set learning of %s to %s (was %s)' % (name, _onoff(after['learning']),
                                                                          _onoff(before['learning'])),
                              _learning_setter(ref, after['learning']), _learning_setter(ref, before['learning'])))
            if not before.get('_up'):
                ops.append(Op(res, 'bring up %s' % name, lambda: ref.set(state='up'), lambda: ref.set(state='down')))
            if after.get('bridge') != before.get('bridge'):
                ops.append(self._master_op(res, netns, ref, before.get('bridge'), after.get('bridge')))
        ops.extend(address_ops(ref, before.get('addresses'), after.get('addresses')))
        return ops

    def _check_refs(self, res, before, after):
        """Refuse a missing underlay or bridge, an MTU that cannot fit and a
        local address the namespace does not have, before any change."""
        v.mtu_ipv6(after.get('mtu'), after.get('addresses'), res)
        if after.get('local') and (before is None or after['local'] != before.get('local')):
            self._check_local(res, after)
        if after.get('mtu') and (before is None or after['mtu'] != before.get('mtu')):
            max_mtu = self._max_mtu(after, res)
            if max_mtu is not None and after['mtu'] > max_mtu:
                raise ValidationError(
                    '%s: mtu %d cannot fit the underlay: dev %s has MTU %d and VXLAN over IPv%d adds %d bytes, '
                    'so the largest MTU is %d' % (res, after['mtu'], after['dev'], max_mtu + overhead(_family(after)),
                                                  _family(after), overhead(_family(after)), max_mtu),
                    res, 'mtu', after['mtu'])
        bridge = after.get('bridge')
        if not bridge:
            return
        netns = after['netns']
        try:
            link = self.kernel.link(netns, bridge, res)
            if link is None:
                raise LinkNotFound('%s: bridge %r does not exist in %s' % (res, bridge, _nsfs.spec_label(netns)),
                                   res, 'bridge', bridge)
        except (NamespaceNotFound, LinkNotFound) as err:
            self.ctx.tolerate_missing(err)
            return
        if link['kind'] != 'bridge':
            raise ValidationError('%s: bridge %r is a %s, not a bridge' % (res, bridge, link['kind']),
                                  res, 'bridge', bridge)

    def _check_local(self, res, after):
        """local must be an address of the device's namespace (the kernel
        accepts any, and the tunnel then sends from an address no reply
        reaches). Link-local IPv6 addresses are not read, so not checked."""
        local = ipaddress.ip_address(after['local'])
        if local.is_link_local:
            return
        netns = after['netns']
        try:
            if not self.kernel.exists(netns):
                raise NamespaceNotFound('%s: netns %r does not exist' % (res, netns), res, 'netns', netns)
        except NamespaceNotFound as err:
            self.ctx.tolerate_missing(err)
            return
        for link in self.kernel.links(netns, res).values():
            for cidr in self.kernel.addresses(netns, link['index'], res):
                if ipaddress.ip_interface(cidr).ip == local:
                    return
        raise ValidationError('%s: local %s is not an address of %s; give an address this host has there '
                              '(the VTEP address the peers send to)' % (res, local, _nsfs.spec_label(netns)),
                              res, 'local', after['local'])

    # -- act --------------------------------------------------------------

    def _create(self, res, ref, after, index=None, mac=None):
        kernel = self.kernel
        netns = ref.netns
        dev = kernel.link(netns, after['dev'], res)
        if dev is None:
            raise LinkNotFound('%s: dev %r does not exist' % (res, after['dev']), res, 'dev', after['dev'])
        six = _family(after) == 6
        args = {'ifname': ref.name, 'kind': 'vxlan', 'vxlan_id': after['vni'], 'vxlan_link': dev['index'],
                'vxlan_port': after['port'], 'vxlan_learning': 1 if after['learning'] else 0}
        if after['local']:
            args['vxlan_local6' if six else 'vxlan_local'] = after['local']
        if after['group']:
            args['vxlan_group6' if six else 'vxlan_group'] = after['group']
        if after.get('mtu'):
            args['mtu'] = after['mtu']
        if index:
            args['index'] = index
        mac = mac or after.get('mac')
        if mac:
            args['address'] = mac
        with _intent.creating(netns, [ref.name], 'vxlan'):
            try:
                kernel.link_add(netns, res, **args)
            except (KernelError, ConflictError) as err:
                raise self._explain(err, netns, after) from None
            ref.mark_created()
            ref.set(ifalias=OWNER_TAG)
        if after.get('bridge'):
            bridge = kernel.link(netns, after['bridge'], res)
            ref.set(field='bridge', value=after['bridge'], master=bridge['index'])
        ref.set(state='up')

    def _explain(self, err, netns, config):
        name = getattr(err, 'errno_name', None)
        if name in ('EOPNOTSUPP', 'ENOTSUP'):
            err.args = ('%s; this kernel has no VXLAN support (vxlan link kind)' % err,)
        elif name == 'EEXIST':
            other = [link['name'] for link in self.kernel.links(netns).values()
                     if link['kind'] == 'vxlan' and (link.get('vxlan') or {}).get('vni') == config['vni']
                     and (link.get('vxlan') or {}).get('port') == config['port']]
            if other:
                err.args = ('%s; vni %d on port %d is already used by vxlan %s in %s'
                            % (err, config['vni'], config['port'], other[0], _nsfs.spec_label(netns)),)
                err.field, err.value = 'vni', config['vni']
        return err

    def _remove(self, ref):
        ref.remove_created()

    def _delete(self, res, ref, saved):
        """Delete the device, noting first what building it again as it was
        needs beyond its config: its ifindex, MAC and up state, and the
        static FDB entries and permanent neighbours it holds (vxlan_peer's),
        which the kernel drops with it."""
        netns, kernel = ref.netns, self.kernel
        link = ref.get()
        if link is None:
            raise LinkNotFound('%s: link %s vanished while being configured' % (res, ref.name), res, 'name', ref.name)
        index = link['index']
        group = _norm_ip((link.get('vxlan') or {}).get('group'))
        saved.clear()
        saved.update(index=index, mac=link['mac'], up=link['up'],
                     fdb=[(e['mac'], _norm_ip(e['dst'])) for e in kernel.fdb(netns, index, res)
                          if e['permanent'] and e['mac'] and e['dst'] and not
                          (e['mac'] == _ZERO_MAC and _norm_ip(e['dst']) == group)],
                     neigh=[(_norm_ip(n['dst']), n['mac']) for n in kernel.neighbours(netns, index, res)
                            if n['permanent'] and n['mac']])
        kernel.link_del(netns, res, index)

    def _restore(self, res, ref, before, saved):
        """Undo of a delete: the old device again as it was - same ifindex,
        MAC and up state, its addresses, FDB entries and neighbours."""
        if ref.get() is not None or before.get('dev') is None or not saved:
            return
        kernel, netns = self.kernel, ref.netns
        self._create(res, ref, before, index=saved.get('index'), mac=saved.get('mac'))
        index = ref.index()
        for cidr in before.get('addresses') or []:
            kernel.addr_add(netns, res, index, cidr)
        # Entries of one MAC in the order listed; the MACs newest first as
        # the kernel lists them (so that it lists them as before).
        macs = []
        for mac, _dst in saved.get('fdb') or []:
            if mac not in macs:
                macs.append(mac)
        for mac in reversed(macs):
            for dst in [d for m, d in saved['fdb'] if m == mac]:
                if mac == _ZERO_MAC:
                    kernel.fdb_append(netns, res, index, mac, dst)
                else:
                    kernel.fdb_replace(netns, res, index, mac, dst)
        for ip, mac in saved.get('neigh') or []:
            kernel.neigh_replace(netns, res, index, ip, mac)
        if not saved.get('up'):
            ref.set(state='down')

    def _master_op(self, res, netns, ref, old, new):
        kernel = self.kernel

        def setter(bridge):
            def run():
                index = kernel.link(netns, bridge, res)['index'] if bridge else 0
                ref.set(field='bridge', value=bridge, master=index)
            return run
        text = 'attach %s to bridge %s' % (ref.name, new) if new else 'detach %s from bridge %s' % (ref.name, old)
        return Op(res, text, setter(new), setter(old))


def _identity_changes(before, after):
    """What differs in the part of a device that cannot change in place."""
    return ['%s %s becomes %s' % (field, _none(before.get(field)), _none(after.get(field)))
            for field in IDENTITY if after.get(field) != before.get(field)]


def _describe(config):
    parts = ['vni %d' % config['vni'], 'port %d' % config['port']]
    for field in ('local', 'group', 'dev', 'mtu', 'mac'):
        if config.get(field):
            parts.append('%s %s' % (field, config[field]))
    return ', '.join(parts)


def _onoff(value):
    return 'on' if value else 'off'


def _learning_setter(ref, learning):
    return lambda: ref.set(field='learning', value=learning, kind='vxlan', vxlan_learning=1 if learning else 0)


def _none(value):
    return 'none' if value is None else value


def _norm_ip(value):
    return str(ipaddress.ip_address(value)) if value else None


def _int_in(value, res, field, low, high, what):
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise ValidationError('%s: %s %r is not %s (%d to %d)' % (res, field, value, what, low, high),
                              res, field, value)
    return value


def _unicast(value, res, field='local'):
    if value is None:
        return None
    addr = ipaddress.ip_address(v.ip_address(value, res, field))
    if addr.is_multicast or addr.is_unspecified:
        raise ValidationError('%s: %s %r is not a unicast address' % (res, field, value), res, field, value)
    return str(addr)


def _multicast(value, res, field='group'):
    if value is None:
        return None
    addr = ipaddress.ip_address(v.ip_address(value, res, field))
    if not addr.is_multicast:
        raise ValidationError('%s: %s %r is not a multicast address (224.0.0.0/4 or ff00::/8)' % (res, field, value),
                              res, field, value)
    return str(addr)
