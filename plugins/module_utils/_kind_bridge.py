# -*- coding: utf-8 -*-
# Copyright: contributors to hostnet.provision
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Bridges with gateway addresses (docker0 and user-defined networks).

Private to the hostnet.provision collection.
"""

from __future__ import annotations

from ansible_collections.hostnet.provision.plugins.module_utils import _validate as v
from ansible_collections.hostnet.provision.plugins.module_utils._engine import Op, ResourceKind, resource_label
from ansible_collections.hostnet.provision.plugins.module_utils._errors import KernelError, ValidationError
from ansible_collections.hostnet.provision.plugins.module_utils._linkops import (
    LinkRef,
    address_ops,
    attribute_ops,
    claim,
    one_prefix_per_ipv6,
)
from ansible_collections.hostnet.provision.plugins.module_utils._netlink import OWNER_TAG, is_managed

__all__ = ['BridgeKind']

# Kernel limits for forward_delay while STP runs (BR_MIN/MAX_FORWARD_DELAY),
# in hundredths of a second as iproute2 takes it.
_FD_MIN, _FD_MAX = 200, 3000


class BridgeKind(ResourceKind):
    label = 'bridge'
    list_fields = ('addresses',)
    fields = ('name', 'netns', 'addresses', 'mtu', 'mac', 'stp', 'forward_delay', 'vlan_filtering')

    def normalize(self, item):
        name = v.ifname(item.get('name'), 'bridge %s' % item.get('name'))
        res = 'bridge %s' % name
        out = {
            'name': name,
            'netns': v.netns_spec(item.get('netns'), res),
            'addresses': v.cidr_list(item.get('addresses'), res),
            'mtu': v.mtu(item.get('mtu'), res),
            'mac': v.mac(item.get('mac'), res),
            'stp': item.get('stp'),
            'forward_delay': item.get('forward_delay'),
            'vlan_filtering': item.get('vlan_filtering'),
        }
        fd = out['forward_delay']
        if fd is not None and (not isinstance(fd, int) or fd < 0):
            raise ValidationError('%s: forward_delay %r must be a non-negative number of hundredths of a second'
                                  % (res, fd), res, 'forward_delay', fd)
        _check_forward_delay(out, res)
        return out

    def _res(self, key):
        return 'bridge %s' % resource_label(*key)

    def predict(self, before, desired, replace):
        after = super().predict(before, desired, replace)
        after['addresses'] = one_prefix_per_ipv6(after['addresses'], desired['addresses'])
        # Again with the kernel's values: STP may already be on.
        _check_forward_delay(after, self._res(self.key(desired)))
        return after

    def current(self, key):
        netns, name = key
        link = claim(self.kernel.link(netns, name, self._res(key)), 'bridge', self._res(key), name, netns)
        return None if link is None else self._shape(netns, link)

    def _shape(self, netns, link):
        br = link.get('bridge') or {}
        return {
            'name': link['name'],
            'netns': netns,
            'addresses': self.kernel.addresses(netns, link['index']),
            'mtu': link['mtu'],
            'mac': link['mac'],
            'stp': br.get('stp'),
            'forward_delay': br.get('forward_delay'),
            'vlan_filtering': br.get('vlan_filtering'),
        }

    def managed_keys(self, scope):
        keys = []
        for netns in scope:
            if not self.kernel.exists(netns):
                continue
            for link in self.kernel.links(netns).values():
                if link['kind'] == 'bridge' and is_managed(link):
                    keys.append((netns, link['name']))
        return keys

    def plan(self, key, before, after):
        netns, name = key
        res = self._res(key)
        ref = LinkRef(self.kernel, netns, name, res)
        if after is None:
            return [Op(res, 'delete bridge %s' % resource_label(netns, name),
                       lambda: self.kernel.link_del(netns, res, ref.index()))]
        ops = []
        if before is None:
            ops.append(Op(res, 'create bridge %s' % resource_label(netns, name),
                          lambda: self._create(ref, after), lambda: self._remove(ref), partial=True))
            before = {}
        else:
            ops.extend(attribute_ops(ref, before, after))
            old, new = _bridge_args(before), _bridge_args(after)
            changed = dict((k, v) for k, v in new.items() if v != old.get(k))
            if changed:
                ops.append(Op(res, 'set %s on bridge %s' % (_describe(changed), resource_label(netns, name)),
                              lambda: _set_bridge(ref, changed, after),
                              lambda: _set_bridge(ref, dict((k, old[k]) for k in changed if k in old), before)))
        ops.extend(address_ops(ref, before.get('addresses'), after.get('addresses')))
        return ops

    def _create(self, ref, after):
        args = {'ifname': ref.name, 'kind': 'bridge'}
        for field, nl_name in (('mtu', 'mtu'), ('mac', 'address')):
            if after.get(field) is not None:
                args[nl_name] = after[field]
        args.update(_bridge_args(after))
        if not args.get('br_vlan_filtering'):
            # Off is the kernel's default; asking for it explicitly fails on
            # kernels built without bridge VLAN support.
            args.pop('br_vlan_filtering', None)
        try:
            self.kernel.link_add(ref.netns, ref.resource, **args)
        except KernelError as err:
            raise _explain(err, after) from None
        ref.set(ifalias=OWNER_TAG, state='up')

    def _remove(self, ref):
        if ref.get() is not None:
            self.kernel.link_del(ref.netns, ref.resource, ref.index())


def _check_forward_delay(config, res):
    fd = config.get('forward_delay')
    if config.get('stp') and fd is not None and not _FD_MIN <= fd <= _FD_MAX:
        raise ValidationError('%s: forward_delay %r is out of range with stp on (%d to %d hundredths of a '
                              'second)' % (res, fd, _FD_MIN, _FD_MAX), res, 'forward_delay', fd)


def _set_bridge(ref, args, config):
    try:
        ref.set(kind='bridge', **args)
    except KernelError as err:
        raise _explain(err, config) from None


def _bridge_args(config):
    args = {}
    if config.get('stp') is not None:
        args['br_stp_state'] = 1 if config['stp'] else 0
    if config.get('forward_delay') is not None:
        args['br_forward_delay'] = config['forward_delay']
    if config.get('vlan_filtering') is not None:
        args['br_vlan_filtering'] = 1 if config['vlan_filtering'] else 0
    return args


def _explain(err, config):
    """Name the option a kernel without bridge VLAN support refuses."""
    if err.errno_name in ('EOPNOTSUPP', 'ENOTSUP') and config.get('vlan_filtering'):
        err.args = ('%s; vlan_filtering is not supported by this kernel '
                    '(built without CONFIG_BRIDGE_VLAN_FILTERING)' % err,)
        err.field, err.value = 'vlan_filtering', True
    return err


_OPTION_NAMES = {'br_stp_state': 'stp', 'br_forward_delay': 'forward_delay', 'br_vlan_filtering': 'vlan_filtering'}


def _describe(args):
    """Bridge options in the user's terms: stp=true, forward_delay=400."""
    def show(key, value):
        return str(value) if key == 'br_forward_delay' else ('true' if value else 'false')
    return ', '.join('%s=%s' % (_OPTION_NAMES[k], show(k, v)) for k, v in sorted(args.items(), key=lambda kv: _OPTION_NAMES[kv[0]]))
