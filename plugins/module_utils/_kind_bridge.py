# -*- coding: utf-8 -*-
# Copyright: contributors to hostnet.provision
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Bridges with gateway addresses (docker0 and user-defined networks), and
their network policy in the collection's nftables tables: masquerade,
inter-endpoint communication (icc), isolation from other bridges and
access to the host.

Private to the hostnet.provision collection.

A bridge's nftables state is a set of elements keyed by its name (or, for
subnets and ports, carrying its name as the element comment), so deleting
the bridge deletes exactly its elements. Those elements are computed from
the bridge's config and compared with what the tables hold, so drift (a
flushed ruleset, a stale element of a bridge that vanished) is repaired by
the next run. A bridge with addresses is *registered*: its subnets let
published ports hairpin, and it is isolated from the other registered
bridges unless its ``reach`` says otherwise. ``allow`` lists named
exceptions that pass even between isolated bridges: new connections from
this bridge to another one (a whole bridge, one protocol, or ports of
it), one direction each (replies pass). The host's 127.0.0.1 reaches
published ports without route_localnet (see _nft); the bridge module turns
route_localnet off on its bridges where earlier versions turned it on.
"""

from __future__ import annotations

import ipaddress
import re

from ansible_collections.hostnet.provision.plugins.module_utils import _intent
from ansible_collections.hostnet.provision.plugins.module_utils import _clash
from ansible_collections.hostnet.provision.plugins.module_utils import _procfs
from ansible_collections.hostnet.provision.plugins.module_utils import _validate as v
from ansible_collections.hostnet.provision.plugins.module_utils._engine import Op, ResourceKind, resource_label
from ansible_collections.hostnet.provision.plugins.module_utils._errors import (
    ConflictError,
    KernelError,
    LinkNotFound,
    ValidationError,
)
from ansible_collections.hostnet.provision.plugins.module_utils._linkops import (
    LinkRef,
    address_ops,
    attribute_ops,
    claim,
    managed_link_keys,
    one_prefix_per_ipv6,
)
from ansible_collections.hostnet.provision.plugins.module_utils._netlink import OWNER_TAG, is_managed
from ansible_collections.hostnet.provision.plugins.module_utils._nft import BRIDGE, INET, Element
from ansible_collections.hostnet.provision.plugins.module_utils._nftplan import NftPlanner

__all__ = ['BridgeKind', 'POLICY_DEFAULTS', 'ALLOW_PROTOCOLS', 'MAX_ALLOW_PORTS', 'allow_entry', 'allow_list',
           'bridge_elements', 'owned_elements', 'port_icc_ops']

# The network policy fields and their values for a new bridge.
POLICY_DEFAULTS = {'masquerade': False, 'icc': True, 'isolated': False, 'host_access': True, 'dns_access': False}
_ROUTE_LOCALNET = ('net', 'ipv4', 'conf', None, 'route_localnet')

# allow: the protocols an exception may name (icmp: ICMP and ICMPv6, no
# ports), how nftables names them in its sets, and how many ports one
# exception may list (one set element per port).
ALLOW_PROTOCOLS = ('tcp', 'udp', 'sctp', 'icmp')
_L4PROTO = {'tcp': ('tcp',), 'udp': ('udp',), 'sctp': ('sctp',), 'icmp': ('icmp', 'ipv6-icmp')}
_FROM_L4PROTO = {'tcp': 'tcp', 'udp': 'udp', 'sctp': 'sctp', 'icmp': 'icmp', 'ipv6-icmp': 'icmp'}
MAX_ALLOW_PORTS = 4096
_ALLOW_NAME = re.compile(r'^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$')
_ALLOW_SETS = ('allow', 'allow_proto', 'allow_ports')

# Kernel limits for forward_delay while STP runs (BR_MIN/MAX_FORWARD_DELAY),
# in hundredths of a second as iproute2 takes it.
_FD_MIN, _FD_MAX = 200, 3000


class BridgeKind(ResourceKind):
    label = 'bridge'
    list_fields = ('addresses', 'reach', 'allow')
    fields = ('name', 'netns', 'addresses', 'mtu', 'mac', 'stp', 'forward_delay', 'vlan_filtering') + \
        tuple(POLICY_DEFAULTS) + ('reach', 'allow')

    def __init__(self, kernel, ctx, enable_forwarding=False):
        super().__init__(kernel, ctx)
        self.nft = NftPlanner(kernel, ctx, enable_forwarding)
        # netns key -> the bridges this run deletes there, in plan order
        # (deleted together, see _delete).
        self._doomed = {}

    def normalize(self, item):
        name = v.ifname(item.get('name'), 'bridge %s' % item.get('name'), new_link=True)
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
        for field in POLICY_DEFAULTS:
            value = item.get(field)
            if value is not None and not isinstance(value, bool):
                raise ValidationError('%s: %s %r must be true or false' % (res, field, value), res, field, value)
            out[field] = value
        out['reach'] = _reach(item.get('reach'), name, res)
        out['allow'] = None if item.get('allow') is None else allow_list(item['allow'], name, res)
        fd = out['forward_delay']
        if fd is not None and (not isinstance(fd, int) or fd < 0):
            raise ValidationError('%s: forward_delay %r must be a non-negative number of hundredths of a second'
                                  % (res, fd), res, 'forward_delay', fd)
        _check_forward_delay(out, res)
        out.update(_clash.override(item, res))
        v.mtu_ipv6(out['mtu'], out['addresses'], res)
        return out

    def _res(self, key):
        return 'bridge %s' % resource_label(*key)

    def predict(self, before, desired, replace):
        after = super().predict(before, desired, replace)
        if not replace and before and desired.get('allow') is not None:
            # merged: an exception given replaces the one of the same name.
            given = set(e['name'] for e in desired['allow'])
            after['allow'] = allow_list([e for e in before.get('allow') or [] if e['name'] not in given] +
                                        desired['allow'], desired['name'], self._res(self.key(desired)))
        after['addresses'] = one_prefix_per_ipv6(after['addresses'], desired['addresses'])
        # Again with the kernel's values: STP may already be on.
        _check_forward_delay(after, self._res(self.key(desired)))
        for private in ('_localnet', '_nft', '_nft_intact', '_up'):
            after.pop(private, None)
        for field, default in POLICY_DEFAULTS.items():
            if after.get(field) is None:
                after[field] = default
        after['reach'] = sorted(set(after.get('reach') or []))
        after['allow'] = sorted(after.get('allow') or [], key=lambda e: e['name'])
        return after

    def current(self, key):
        netns, name = key
        link = claim(self.kernel.link(netns, name, self._res(key)), 'bridge', self._res(key), name, netns)
        return None if link is None else self._shape(netns, link)

    def _shape(self, netns, link):
        br = link.get('bridge') or {}
        out = {
            'name': link['name'],
            'netns': netns,
            'addresses': self.kernel.addresses(netns, link['index']),
            'mtu': link['mtu'],
            'mac': link['mac'],
            'stp': br.get('stp'),
            'forward_delay': br.get('forward_delay'),
            'vlan_filtering': br.get('vlan_filtering'),
            '_up': link['up'],
        }
        out.update(dict.fromkeys(POLICY_DEFAULTS))
        out['reach'] = []
        out['allow'] = []
        if self.nft.available():
            # The policy as the tables hold it; what plan() compares with.
            res = self._res((netns, link['name']))
            tables = self.nft.tables(netns, res)
            out['_nft'] = owned_elements(tables, link['name'])
            out['_nft_intact'] = tables.intact()
            out.update(_policy(out['_nft'], link['name']))
        out['_localnet'] = _procfs.sysctl_get(netns, _localnet_sysctl(link['name']), self._res((netns, link['name'])))
        return out

    def managed_keys(self, scope):
        return managed_link_keys(self.kernel, scope, 'bridge')

    def plan(self, key, before, after):
        netns, name = key
        res = self._res(key)
        ref = LinkRef(self.kernel, netns, name, res)
        if after is None and self._keep_for_foreign_ports(res, netns, name):
            return []
        if after is None:
            ops = self._policy_ops(key, res, before, None)
            doomed = _Doomed(ref, ops[0] if ops else None)
            self._doomed.setdefault(netns or '', []).append(doomed)
            ops.append(Op(res, 'delete bridge %s' % resource_label(netns, name), lambda: self._delete(doomed)))
            # Final: the bridge cannot be built again as it was (its ports
            # detached, their bridge port settings lost), nor its nftables
            # elements (the last ones take the tables along): all of it
            # goes after the rest of the call.
            for op in ops:
                op.final = True
            return ops
        _clash.check(self.kernel, res, _clash.added(netns, 'addresses', (before or {}).get('addresses'),
                                                    after.get('addresses')),
                     [(netns, name)], after.get('_allow_route_overlap'))
        v.mtu_ipv6(after.get('mtu'), after.get('addresses'), res)
        ops = []
        existing = before
        if before is None:
            ops.append(Op(res, 'create bridge %s' % resource_label(netns, name),
                          lambda: self._create(ref, after), lambda: self._remove(ref), partial=True))
            before = {}
        else:
            ops.extend(attribute_ops(ref, before, after))
            if before.get('_up') is False:
                # Set down by hand: the collection keeps its bridges up.
                ops.append(Op(res, 'bring up bridge %s' % resource_label(netns, name),
                              lambda: ref.set(state='up'), lambda: ref.set(state='down')))
            old, new = _bridge_args(before), _bridge_args(after)
            changed = dict((k, v) for k, v in new.items() if v != old.get(k))
            if changed:
                ops.append(Op(res, 'set %s on bridge %s' % (_describe(changed), resource_label(netns, name)),
                              lambda: _set_bridge(ref, changed, after),
                              lambda: _set_bridge(ref, dict((k, old[k]) for k in changed if k in old), before)))
        ops.extend(address_ops(ref, before.get('addresses'), after.get('addresses')))
        ops.extend(self._policy_ops(key, res, existing, after))
        return ops

    # -- network policy (nftables) ---------------------------------------------

    def _policy_ops(self, key, res, before, after):
        """nftables elements, then route_localnet, then forwarding.

        Pure but for what a bridge with icc: false or masquerade needs to
        know (its ports, the kernel's nft_meta_bridge, other bridges'
        subnets, the forwarding sysctls): the tables' state comes from
        current() (``_nft``), or from the before config when not read.
        """
        netns, name = key
        if after is not None and after.get('masquerade') and not after.get('addresses'):
            raise ValidationError('%s: masquerade needs the bridge\'s subnets: give it at least one address'
                                  % res, res, 'masquerade', True)
        if after is not None and after.get('reach') and not after.get('addresses'):
            raise ValidationError('%s: reach %s needs the bridge to route: give it at least one address'
                                  % (res, ', '.join(after['reach'])), res, 'reach', after['reach'])
        if after is not None and after.get('allow') and not after.get('addresses'):
            names = [e['name'] for e in after['allow']]
            raise ValidationError('%s: allow %s needs the bridge to route: give it at least one address'
                                  % (res, ', '.join(names)), res, 'allow', names)
        if not self.nft.available():
            if any(value not in (None, POLICY_DEFAULTS[f]) for f, value in (after or {}).items()
                   if f in POLICY_DEFAULTS) or (after or {}).get('reach') or (after or {}).get('allow'):
                self.nft.require()
            if after is not None and after.get('addresses'):
                self.nft.warn_once('missing', 'nftables (libnftables1) is not installed: bridges are not '
                                              'registered in its tables, so published ports, hairpin and '
                                              'localhost access do not work for them, and they are not '
                                              'isolated from each other')
            return self._localnet_ops(key, res, before, after)
        icc_off = after is not None and after.get('icc') is False
        bridge_meta = self.nft.bridge_meta(netns) if icc_off else True
        ports = self._ports(netns, name) if icc_off and not bridge_meta else []
        want = bridge_elements(name, after, ports, bridge_meta) if after is not None else set()
        if before is None:
            have = set()
        elif '_nft' in before:
            have = set(before['_nft'])
        else:
            have = bridge_elements(name, before, (), True)
        if any(e.set.startswith('masq_nets') for e in want - have):
            self._check_overlaps(self.nft.tables(netns, res), res, name, want)
        ops = []
        # Elements of an earlier bridge of this name (deleted behind our
        # back) are cleaned up by the same transaction.
        op = self.nft.change_op(netns, res, 'bridge %s' % name, delete=have - want, add=want - have,
                                repair=before is not None and before.get('_nft_intact') is False,
                                owner=lambda tables: owned_elements(tables, name), keep=want)
        if op is not None:
            ops.append(op)
            if icc_off and not bridge_meta:
                # Only when the port list changes, not on every idempotent run.
                self.nft.warn_once('icc', 'this kernel has no nft_meta_bridge (CONFIG_NFT_BRIDGE_META): icc: '
                                          'false is enforced on the ports the bridge has now and on ports the '
                                          'veth module attaches; ports attached otherwise are covered when this '
                                          'module runs again')
        if after is None:
            return ops
        ops.extend(self._localnet_ops(key, res, before, after))
        if after.get('masquerade'):
            versions = set(ipaddress.ip_interface(a).version for a in after['addresses'])
            ops.extend(self.nft.forwarding_ops(netns, versions, res))
        return ops

    def _localnet_ops(self, key, res, before, after):
        """route_localnet off where earlier versions turned it on: localhost
        publishing no longer needs it (see _nft._localhost_rules), and left
        on it opens the host's 127.0.0.1 to the bridge whenever the rule
        that drops 127/8 from outside is gone (a flushed ruleset)."""
        if after is None or before is None or before.get('_localnet') != '1':
            return []
        netns, name = key
        parts = _localnet_sysctl(name)
        return [Op(res, 'set %s=0 (published ports on 127.0.0.1 no longer need it; on, it would expose the '
                        'host\'s 127.0.0.1 to the bridge after a ruleset flush)' % _procfs.sysctl_label(parts),
                   lambda: _procfs.sysctl_set(netns, parts, '0', res, 'name'),
                   lambda: _procfs.sysctl_set(netns, parts, '1', res, 'name'))]

    def _delete(self, doomed):
        """Delete a bridge, and with it the other bridges this run deletes in
        its namespace whose nftables changes are made (one transaction made
        them all, see NftPlanner.change_op): the kernel deletes them in one
        batch, and their own delete operations find them gone. If they
        cannot go together, each goes alone, in its own operation."""
        if doomed.gone:
            return
        index = doomed.ref.index()
        batch = [(doomed, index)]
        for other in self._doomed[doomed.ref.netns or '']:
            if other is not doomed and not other.gone and self.nft.applied(other.policy):
                try:
                    batch.append((other, other.ref.index()))
                except LinkNotFound:
                    pass  # its own operation says so, in its turn
        if len(batch) > 1 and self.kernel.links_del_together(
                doomed.ref.netns, [(other.ref.resource, i) for other, i in batch]):
            for other, _index in batch:
                other.gone = True
            return
        self.kernel.link_del(doomed.ref.netns, doomed.ref.resource, index)
        doomed.gone = True

    def _keep_for_foreign_ports(self, res, netns, name):
        """A bridge that links the collection did not make are attached to is
        kept whole (deleting it would cut them off): the run says so."""
        bridge = self.kernel.link(netns, name) if self.kernel.exists(netns) else None
        if bridge is None:
            return False
        foreign = sorted(link['name'] for link in self.kernel.links(netns).values()
                         if link['master'] == bridge['index'] and not is_managed(link))
        if foreign:
            self.ctx.warn('%s: kept, not deleted: %s %s attached to it and %s not created by %s; detach or '
                          'remove %s and run again to delete the bridge'
                          % (res, ', '.join(foreign), 'is' if len(foreign) == 1 else 'are',
                             'was' if len(foreign) == 1 else 'were', OWNER_TAG,
                             'it' if len(foreign) == 1 else 'them'))
        return bool(foreign)

    def _ports(self, netns, name):
        if not self.kernel.exists(netns):
            return []
        bridge = self.kernel.link(netns, name)
        if bridge is None:
            return []
        return sorted(link['name'] for link in self.kernel.links(netns).values() if link['master'] == bridge['index'])

    def _check_overlaps(self, tables, res, name, want):
        """Masqueraded subnets of two bridges must not overlap."""
        for element in want:
            if element.set not in ('masq_nets4', 'masq_nets6'):
                continue
            net = ipaddress.ip_network(element.key)
            for other in tables.elements(INET, element.set):
                if other.comment != name and ipaddress.ip_network(other.key).overlaps(net):
                    raise ConflictError('%s: subnet %s overlaps %s, masqueraded for bridge %s'
                                        % (res, net, other.key, other.comment or '(unknown)'),
                                        res, 'addresses', str(net))

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
        with _intent.creating(ref.netns, [ref.name], 'bridge'):
            try:
                self.kernel.link_add(ref.netns, ref.resource, **args)
            except KernelError as err:
                raise _explain(err, after) from None
            ref.mark_created()
            ref.set(ifalias=OWNER_TAG, state='up')

    def _remove(self, ref):
        ref.remove_created()


class _Doomed:
    """A bridge the run deletes: its LinkRef, the operation that removes its
    nftables elements (None: nothing to remove), whether it is gone."""

    __slots__ = ('ref', 'policy', 'gone')

    def __init__(self, ref, policy):
        self.ref, self.policy, self.gone = ref, policy, False


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


def _localnet_sysctl(name):
    return tuple(name if part is None else part for part in _ROUTE_LOCALNET)


def _subnets(addresses):
    nets = [ipaddress.ip_interface(a).network for a in addresses or []]
    out = []
    for version in (4, 6):
        out.extend(ipaddress.collapse_addresses(n for n in nets if n.version == version))
    return out


def bridge_elements(name, config, ports=(), bridge_meta=True):
    """The nftables elements a bridge with this config owns."""
    out = set()
    nets = _subnets(config.get('addresses'))
    if nets:
        out.add(Element(INET, 'bridges', name))
        for net in nets:
            out.add(Element(INET, 'bridge_nets%d' % net.version, (name, str(net))))
        # Forwarding between registered bridges needs an element of reach:
        # the bridge to itself, and to each bridge it may reach.
        for other in set([name] + list(config.get('reach') or [])):
            out.add(Element(INET, 'reach', (name, other)))
        out.update(allow_elements(name, config.get('allow')))
    if config.get('masquerade'):
        out.add(Element(INET, 'nat_bridges', name))
        for net in nets:
            out.add(Element(INET, 'masq_nets%d' % net.version, str(net), comment=name))
    if config.get('isolated'):
        out.add(Element(INET, 'isolated', name))
        out.add(Element(INET, 'isolated_self', (name, name)))
    if config.get('host_access') is False:
        out.add(Element(INET, 'no_host_access', name))
    if config.get('dns_access'):
        for address in config.get('addresses') or []:
            ip = ipaddress.ip_interface(address).ip
            out.add(Element(INET, 'dns_access%d' % ip.version, (name, str(ip))))
    if config.get('icc') is False:
        out.add(Element(BRIDGE, 'no_icc', name))
        out.add(Element(INET, 'no_icc_routed', (name, name)))
        if not bridge_meta:
            for port in ports:
                out.add(Element(BRIDGE, 'no_icc_ports', port, comment=name))
    return out


def owned_elements(tables, name):
    """The elements of the tables that belong to bridge ``name``."""
    return set(tables.grouped(_owner).get(name, ()))


def _owner(element):
    """The bridge an element of the tables belongs to (None: no bridge's)."""
    key = element.key
    if element.set in ('bridges', 'nat_bridges', 'isolated', 'no_host_access', 'no_icc'):
        return key
    if element.set in ('bridge_nets4', 'bridge_nets6', 'dns_access4', 'dns_access6', 'reach') or \
            element.set in _ALLOW_SETS:
        return key[0] if isinstance(key, tuple) else None
    if element.set in ('isolated_self', 'no_icc_routed'):
        return key[0] if isinstance(key, tuple) and len(key) == 2 and key[0] == key[1] else None
    if element.set in ('masq_nets4', 'masq_nets6', 'no_icc_ports'):
        return element.comment
    return None


def _policy(owned, name):
    sets = set(e.set for e in owned)
    return {
        'masquerade': 'nat_bridges' in sets,
        'icc': 'no_icc' not in sets,
        'isolated': 'isolated' in sets,
        'host_access': 'no_host_access' not in sets,
        'dns_access': bool(sets & set(['dns_access4', 'dns_access6'])),
        'reach': sorted(e.key[1] for e in owned if e.set == 'reach' and e.key[1] != name),
        'allow': _allow_from_elements(owned),
    }


def _reach(value, name, res):
    """The bridges a bridge may open connections to: names, sorted, unique."""
    if value is None:
        return None
    if not isinstance(value, list):
        raise ValidationError('%s: reach %r must be a list of bridge names' % (res, value), res, 'reach', value)
    out = set()
    for other in value:
        other = v.ifname(other, res, 'reach')
        if other == name:
            raise ValidationError('%s: reach names the bridge itself (%s); its endpoints always reach each '
                                  'other unless icc is false' % (res, other), res, 'reach', other)
        out.add(other)
    return sorted(out)


# -- allow: named exceptions to isolation ---------------------------------------


def allow_list(value, name, res):
    """A bridge's allow option: each exception checked and in canonical
    form, sorted by name; names and what they allow given once."""
    if not isinstance(value, list):
        raise ValidationError('%s: allow %r must be a list of exceptions (name, to, protocol, ports)'
                              % (res, value), res, 'allow', value)
    out, names, covered = [], set(), {}
    for raw in value:
        entry = allow_entry(raw, res)
        if entry['to'] == name:
            raise ValidationError('%s: allow %s: to %r is the bridge itself; its endpoints always reach each '
                                  'other unless icc is false' % (res, entry['name'], entry['to']),
                                  res, 'allow', entry['to'])
        if entry['name'] in names:
            raise ValidationError('%s: allow %r is listed twice' % (res, entry['name']),
                                  res, 'allow', entry['name'])
        names.add(entry['name'])
        for element in allow_elements(name, [entry]):
            other = covered.get(element.ident())
            if other is not None:
                raise ValidationError('%s: allow %s: %s is already allowed by %s'
                                      % (res, entry['name'], _allow_text(element), other),
                                      res, 'allow', entry['name'])
            covered[element.ident()] = entry['name']
        out.append(entry)
    return sorted(out, key=lambda e: e['name'])


def allow_entry(raw, res, bridge=True):
    """One exception: {name, to, protocol, ports}.

    No protocol and no ports: the whole destination; a protocol without
    ports: all of that protocol; ports (default protocol tcp): those ports,
    canonical (sorted, merged, single ports as numbers, ranges as "A-B").
    ``bridge``: ``to`` is a bridge name (the module); a role checks its own.
    """
    if not isinstance(raw, dict):
        raise ValidationError('%s: allow entry %r must be a dict with name, %s, protocol, ports'
                              % (res, raw, 'to' if bridge else 'from, to'), res, 'allow', raw)
    name = raw.get('name')
    if not isinstance(name, str) or not _ALLOW_NAME.match(name):
        raise ValidationError('%s: allow name %r must be 1 to 64 letters, digits, ".", "_", ":" or "-", starting '
                              'with a letter or digit' % (res, name), res, 'name', name)
    where = '%s: allow %s' % (res, name)
    to = raw.get('to')
    if bridge:  # the destination bridge (a role checks its own names)
        if not isinstance(to, str) or not to:
            raise ValidationError('%s: to %r must name the destination bridge' % (where, to), res, 'to', to)
        v.ifname(to, where, 'to')
    protocol = raw.get('protocol')
    ports = raw.get('ports')
    if ports in ('', []):
        ports = None
    if protocol is None and ports is not None:
        protocol = 'tcp'
    if protocol is not None and protocol not in ALLOW_PROTOCOLS:
        raise ValidationError('%s: protocol %r must be one of %s' % (where, protocol, ', '.join(ALLOW_PROTOCOLS)),
                              res, 'protocol', protocol)
    spans = []
    if ports is not None:
        if protocol == 'icmp':
            raise ValidationError('%s: ports %r: icmp has no ports (leave ports out to allow ICMP)'
                                  % (where, ports), res, 'ports', ports)
        for port in ports if isinstance(ports, list) else [ports]:
            spans.append(_port_span(port, where, res))
        spans = _merge_spans(spans)
        count = sum(last - first + 1 for first, last in spans)
        if count > MAX_ALLOW_PORTS:
            raise ValidationError('%s: ports %r are %d ports, more than %d (one set element each); allow the '
                                  'whole protocol instead (leave ports out)' % (where, ports, count, MAX_ALLOW_PORTS),
                                  res, 'ports', ports)
    return {'name': name, 'to': to, 'protocol': protocol,
            'ports': [first if first == last else '%d-%d' % (first, last) for first, last in spans]}


def _port_span(port, where, res):
    """A port (5432, "5432") or a range ("8000-8010") as (first, last)."""
    text = str(port).strip() if isinstance(port, (int, str)) and not isinstance(port, bool) else None
    first, sep, last = (text or '').partition('-')
    if text is None or not first.isdigit() or (sep and not last.isdigit()):
        raise ValidationError('%s: port %r must be a port number or a range like 8000-8010' % (where, port),
                              res, 'ports', port)
    first, last = int(first), int(last) if sep else int(first)
    if not 1 <= first <= 65535 or not 1 <= last <= 65535:
        raise ValidationError('%s: port %r is out of range (1 to 65535)' % (where, port), res, 'ports', port)
    if last < first:
        raise ValidationError('%s: port range %r must be A-B with A <= B' % (where, port), res, 'ports', port)
    return first, last


def _merge_spans(spans):
    out = []
    for first, last in sorted(spans):
        if out and first <= out[-1][1] + 1:
            out[-1] = (out[-1][0], max(out[-1][1], last))
        else:
            out.append((first, last))
    return out


def allow_elements(name, allow):
    """The set elements of a bridge's exceptions (comment: their names)."""
    out = set()
    for entry in allow or []:
        if entry['protocol'] is None:
            out.add(Element(INET, 'allow', (name, entry['to']), comment=entry['name']))
            continue
        for l4proto in _L4PROTO[entry['protocol']]:
            if not entry['ports']:
                out.add(Element(INET, 'allow_proto', (name, entry['to'], l4proto), comment=entry['name']))
                continue
            for first, last in (_port_span(p, name, name) for p in entry['ports']):
                for port in range(first, last + 1):
                    out.add(Element(INET, 'allow_ports', (name, entry['to'], l4proto, port), comment=entry['name']))
    return out


def _allow_text(element):
    key = element.key
    if element.set == 'allow':
        return 'all traffic to %s' % key[1]
    if element.set == 'allow_proto':
        return 'all of %s to %s' % (_FROM_L4PROTO.get(key[2], key[2]), key[1])
    return '%s port %s to %s' % (key[2], key[3], key[1])


def _allow_from_elements(owned):
    """The allow option as the tables hold it (elements without a name,
    not made by this module, are left out: the next run deletes them)."""
    found = {}
    for element in owned:
        if element.set not in _ALLOW_SETS or not element.comment or len(element.key) < 2:
            continue
        entry = found.setdefault(element.comment, {'name': element.comment, 'to': element.key[1],
                                                   'protocol': None, 'ports': set()})
        if element.set != 'allow':
            entry['protocol'] = _FROM_L4PROTO.get(element.key[2], element.key[2])
        if element.set == 'allow_ports':
            entry['ports'].add(element.key[3])
    out = []
    for entry in found.values():
        spans = _merge_spans((p, p) for p in entry['ports'] if isinstance(p, int))
        entry['ports'] = [first if first == last else '%d-%d' % (first, last) for first, last in spans]
        out.append(entry)
    return sorted(out, key=lambda e: e['name'])


def port_icc_ops(nft, netns, port, bridge, res, icc=None, attached=False):
    """For a port that the veth module attaches to (or detaches from) a bridge:
    on kernels without nft_meta_bridge, keep the port's element of
    ``no_icc_ports`` in step with its bridge's icc (the bridge module lists
    the ports it sees; this covers ports attached later on their own).

    ``icc``: in check mode, the icc the bridge will have once the earlier
    task of the play (a role's bridge task) has run, which the tables do
    not show yet; that task also lists (or drops) the ports on the bridge
    now (``attached``: this port is one of them)."""
    if not nft.available():
        return []
    hinted = icc is not None and bool(bridge) and nft.ctx.check_mode
    if not nft.kernel.exists(netns) and not hinted:
        return []
    tables = nft.tables(netns, res)
    have = tables.get(BRIDGE, 'no_icc_ports', port)
    if hinted:
        off = icc is False and not nft.bridge_meta(netns)
        if have is not None and have.comment == bridge:
            have = Element(BRIDGE, 'no_icc_ports', port, comment=bridge) if off and attached else None
    else:
        off = bool(bridge) and tables.get(BRIDGE, 'no_icc', bridge) is not None and not nft.bridge_meta(netns)
    want = Element(BRIDGE, 'no_icc_ports', port, comment=bridge) if off else None
    if have == want:
        return []
    op = nft.change_op(netns, res, 'icc: false of bridge %s' % ((want or have).comment or bridge),
                       delete=[have] if have is not None else (), add=[want] if want is not None else (),
                       repair=False)
    return [op] if op is not None else []
