# -*- coding: utf-8 -*-
# Copyright: contributors to hostnet.provision
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""veth pairs: the host end (optionally on a bridge) and the peer end
created directly inside its namespace under its final name (``eth0``), with
addresses, a default gateway and routes — one container endpoint. The peer
end may instead be a port of a bridge in its namespace: one pair then joins
two bridges directly (in one namespace or two).

Private to the hostnet.provision collection.

The host end's alias records where its peer is
(``hostnet.provision veth peer=eth0@web``); that hint is always verified
against the kernel (each end's peer index must be the other's index).
"""

from __future__ import annotations

import ipaddress

from ansible_collections.hostnet.provision.plugins.module_utils import _intent
from ansible_collections.hostnet.provision.plugins.module_utils import _clash
from ansible_collections.hostnet.provision.plugins.module_utils import _ipconf
from ansible_collections.hostnet.provision.plugins.module_utils import _nsfs
from ansible_collections.hostnet.provision.plugins.module_utils import _validate as v
from ansible_collections.hostnet.provision.plugins.module_utils._engine import (
    Op,
    ResourceKind,
    merge_config,
    public,
    resource_label,
)
from ansible_collections.hostnet.provision.plugins.module_utils._errors import (
    ConflictError,
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
    one_prefix_per_ipv6,
    read_routes,
    repair_op,
    route_ops,
)
from ansible_collections.hostnet.provision.plugins.module_utils._kind_bridge import port_icc_ops
from ansible_collections.hostnet.provision.plugins.module_utils._netlink import OWNER_TAG, make_alias, parse_alias
from ansible_collections.hostnet.provision.plugins.module_utils._nftplan import NftPlanner

__all__ = ['VethKind']

_PEER_TAG = make_alias('veth-peer')
_PEER_LISTS = ('addresses', 'gateway', 'routes')


def _host_alias(peer_name, peer_netns):
    return make_alias('veth', peer='%s@%s' % (peer_name, peer_netns or '.'))


def _parse_hint(alias):
    parsed = parse_alias(alias)
    if parsed is None or parsed[0] != 'veth':
        return None
    name, _sep, netns = parsed[1]['peer'].partition('@')
    return name, (None if netns == '.' else netns)


class VethKind(ResourceKind):
    label = 'veth'
    list_fields = ('addresses',)

    def __init__(self, kernel, ctx):
        super().__init__(kernel, ctx)
        # (namespace id, bridge index) -> {address: (holder key, holder text)}
        # on that bridge, read once when a pair of the call is planned on it.
        self._segments = {}
        self._leaving = set()  # (namespace id, name) of pairs this call deletes

    # -- input ------------------------------------------------------------

    def normalize(self, item):
        name = v.ifname(item.get('name'), 'veth %s' % item.get('name'), new_link=True)
        res = 'veth %s' % name
        peer_in = item.get('peer')
        peer = None if not peer_in else {
            'name': v.ifname(peer_in.get('name'), res, 'peer.name', new_link=True),
            'netns': v.netns_spec(peer_in.get('netns'), res, 'peer.netns'),
            'mtu': v.mtu(peer_in.get('mtu'), res, 'peer.mtu'),
            'mac': v.mac(peer_in.get('mac'), res, 'peer.mac'),
            'addresses': v.cidr_list(peer_in.get('addresses'), res, 'peer.addresses'),
            'gateway': _ipconf.gateways(peer_in.get('gateway'), peer_in.get('addresses'), res, 'peer.gateway'),
            'routes': _ipconf.routes(peer_in.get('routes'), res, 'peer.routes', peer_in.get('addresses')),
            'bridge': v.ifname(peer_in['bridge'], res, 'peer.bridge') if peer_in.get('bridge') else None,
        }
        out = {
            'name': name,
            'netns': v.netns_spec(item.get('netns'), res),
            'mtu': v.mtu(item.get('mtu'), res),
            'mac': v.mac(item.get('mac'), res),
            'addresses': v.cidr_list(item.get('addresses'), res),
            'bridge': v.ifname(item['bridge'], res, 'bridge') if item.get('bridge') else None,
            'peer': peer,
        }
        out.update(_clash.override(item, res))
        icc = item.get('bridge_icc')
        if icc is not None and not isinstance(icc, bool):
            raise ValidationError('%s: bridge_icc %r must be true or false' % (res, icc), res, 'bridge_icc', icc)
        if icc is not None and not out['bridge']:
            raise ValidationError('%s: bridge_icc %r needs bridge (it tells check mode the icc of that bridge)'
                                  % (res, icc), res, 'bridge_icc', icc)
        if icc is not None:
            out['_bridge_icc'] = icc  # check mode only (see _icc_ops)
        _check_mtu_ipv6(res, out)
        if peer and out['netns'] == peer['netns'] and name == peer['name']:
            raise ValidationError('%s: peer.name %r equals name in the same namespace' % (res, name),
                                  res, 'peer.name', name)
        if peer and peer['bridge']:
            _check_peer_bridge(res, out)
        return out

    def check_all(self, items):
        super().check_all(items)
        # Every end of every pair needs its own name in its namespace.
        seen = {}
        for item in items:
            ends = [(item['netns'], item['name'], 'name')]
            if item['peer']:
                ends.append((item['peer']['netns'], item['peer']['name'], 'peer.name'))
            owner = resource_label(item['netns'], item['name'])
            res = 'veth %s' % owner
            for netns, name, field in ends:
                other = seen.get((netns, name))
                if other is not None and other != owner:
                    raise ValidationError('%s: %s %r%s is also used by veth %s in this call'
                                          % (res, field, name, ' in netns %s' % netns if netns else '', other),
                                          res, field, name)
                seen[(netns, name)] = owner
        _ipconf.check_default_routes(
            [i for i in items if i['peer']], 'veth', netns_of=lambda i: i['peer']['netns'],
            name_of=lambda i: resource_label(i['netns'], i['name']), gateways_of=lambda i: i['peer']['gateway'],
            field='peer.gateway')

    # -- read -------------------------------------------------------------

    def _res(self, key):
        return 'veth %s' % resource_label(*key)

    def current(self, key):
        # Read once per run while nothing changes (the plan of a role reads
        # every pair, then the step reconciling them does).
        return self.kernel.memo('veth', key, lambda: self._read(key))

    def _read(self, key):
        netns, name = key
        res = self._res(key)
        host = claim(self.kernel.link(netns, name, res), 'veth', res, name, netns)
        if host is None:
            return None
        hint = _parse_hint(host['alias'])
        if hint is None:
            raise ConflictError('%s: %r%s is the peer end of another veth pair managed by %s, not a host end'
                                % (res, name, ' in netns %s' % netns if netns else '', OWNER_TAG),
                                res, 'name', name)
        out = {
            'name': name,
            'netns': netns,
            'mtu': host['mtu'],
            'mac': host['mac'],
            'addresses': self.kernel.addresses(netns, host['index']),
            'bridge': self._master_name(netns, host),
            'peer': {'name': hint[0], 'netns': hint[1], 'mtu': None, 'mac': None,
                     'addresses': [], 'gateway': [], 'routes': [], 'bridge': None},
            '_up': host['up'],
        }
        peer = self._find_peer(host, hint)
        if peer is None:
            out['_broken'] = True
            return out
        pns = hint[1]
        gateways, routes = read_routes(self.kernel, pns, peer['index'])
        out['peer'].update({
            'mtu': peer['mtu'],
            'mac': peer['mac'],
            'addresses': self.kernel.addresses(pns, peer['index']),
            'gateway': gateways,
            'routes': routes,
            'bridge': self._master_name(pns, peer),
        })
        out['_peer_up'] = peer['up']
        return out

    def _master_name(self, netns, link):
        if not link['master']:
            return None
        master = self.kernel.link_by_index(netns, link['master'])
        return master['name'] if master else None

    def _find_peer(self, host, hint):
        pname, pns = hint
        if not self.kernel.exists(pns):
            return None
        peer = self.kernel.link(pns, pname)
        if peer is None or peer['kind'] != 'veth' or peer['link'] != host['index'] \
                or host['link'] != peer['index'] or peer['alias'] != _PEER_TAG:
            return None
        return peer

    def touched(self, changes):
        """After changes: only what was read of these pairs' two ends is
        stale (their writes all went through netlink or their own records)."""
        links = []
        for (netns, name), before, after in changes:
            links.append((netns, name))
            for state in (before, after):
                if state is not None and state.get('peer'):
                    links.append((state['peer']['netns'], state['peer']['name']))
        self.kernel.touch(links=links)

    def managed_keys(self, scope):
        return managed_link_keys(self.kernel, scope, 'veth', owned=lambda link: _parse_hint(link['alias']) is not None)

    # -- decide -----------------------------------------------------------

    def predict(self, before, desired, replace):
        if desired['peer'] is None:
            if before is None:
                res = 'veth %s' % resource_label(desired['netns'], desired['name'])
                raise ValidationError('%s: peer is required to create the pair' % res, res, 'peer', None)
            desired = dict(desired, peer=dict(before['peer']))
        after = merge_config(before, desired, replace, self.list_fields, nested={'peer': _PEER_LISTS})
        after['addresses'] = one_prefix_per_ipv6(after['addresses'], desired['addresses'])
        after['peer']['addresses'] = one_prefix_per_ipv6(after['peer']['addresses'], desired['peer']['addresses'])
        if replace and desired.get('bridge') is None:
            after['bridge'] = None
        if replace and desired['peer'].get('bridge') is None:
            after['peer']['bridge'] = None
        if before is not None and _nsfs.same_namespace(before['peer']['netns'], desired['peer']['netns']):
            after['peer']['netns'] = before['peer']['netns']
        for private in ('_up', '_peer_up', '_broken'):
            after.pop(private, None)
        return after

    def _needs_recreate(self, before, after):
        bp, ap = before['peer'], after['peer']
        return before.get('_broken') or bp['name'] != ap['name'] or bp['netns'] != ap['netns']

    def plan(self, key, before, after):
        netns, name = key
        res = self._res(key)
        kernel = self.kernel
        host = LinkRef(kernel, netns, name, res)
        if after is None:
            self._leaving.add((_nsfs.namespace_id(netns), name))
            old = public(before)
            # Undone by building the pair again as it was (not when its peer was lost already).
            return self._icc_ops(netns, name, before, None, res) + [
                Op(res, 'delete veth %s (and its peer)' % resource_label(netns, name),
                   lambda: _delete_pair(kernel, netns, name, res),
                   None if before.get('_broken') else lambda: self._restore(key, old))]
        peer = LinkRef(kernel, after['peer']['netns'], after['peer']['name'], res, 'peer.name')
        ops = []
        if before is not None and self._needs_recreate(before, after):
            bp, old = before['peer'], public(before)
            ops.append(Op(res, 'delete veth %s to recreate it (peer %s@%s becomes %s@%s)'
                          % (name, bp['name'], bp['netns'] or '.', after['peer']['name'],
                             after['peer']['netns'] or '.'),
                          lambda: kernel.link_del(netns, res, host.index()),
                          lambda: self._restore(key, old)))
            before = None
        _check_mtu_ipv6(res, after)
        _ipconf.check_on_link(after['peer'].get('addresses'), after['peer'].get('gateway'),
                              after['peer'].get('routes'), res, 'peer.gateway', 'peer.routes')
        self._check_refs(res, netns, after, creating=before is None)
        self._check_clash(res, netns, before, after)
        self._check_segment(res, key, before, after)
        if before is None:
            ops.append(Op(res, 'create veth %s with peer %s in %s' % (
                resource_label(netns, name), after['peer']['name'], _nsfs.spec_label(after['peer']['netns'])),
                lambda: self._create(res, netns, after, host, peer),
                host.remove_created, partial=True))
            before = {'peer': {}}
        else:
            ops.extend(attribute_ops(host, before, after))
            ops.extend(attribute_ops(peer, before['peer'], after['peer'], prefix='peer '))
            for ref, up in ((host, before.get('_up')), (peer, before.get('_peer_up'))):
                if not up:
                    ops.append(Op(res, 'bring up %s' % ref.name, _up(ref), _down(ref)))
            if after.get('bridge') != before.get('bridge'):
                ops.append(self._master_op(res, netns, host, before.get('bridge'), after.get('bridge')))
            if after['peer'].get('bridge') != before['peer'].get('bridge'):
                ops.append(self._master_op(res, after['peer']['netns'], peer, before['peer'].get('bridge'),
                                           after['peer'].get('bridge'), 'peer.bridge'))
        ops.extend(address_ops(host, before.get('addresses'), after.get('addresses')))
        ops.extend(address_ops(peer, before['peer'].get('addresses'), after['peer'].get('addresses'),
                               field='peer.addresses'))
        ops.extend(route_ops(peer, _ipconf.gateway_routes(before['peer'].get('gateway')),
                             _ipconf.gateway_routes(after['peer'].get('gateway')), field='peer.gateway'))
        ops.extend(route_ops(peer, before['peer'].get('routes'), after['peer'].get('routes'),
                             field='peer.routes'))
        if set(before['peer'].get('addresses') or []) - set(after['peer'].get('addresses') or []):
            ops.append(repair_op(peer, after['peer'].get('addresses'),
                                 _ipconf.gateway_routes(after['peer'].get('gateway')) + list(after['peer'].get('routes') or [])))
        ops.extend(self._icc_ops(netns, name, before, after, res))
        return ops

    def _icc_ops(self, netns, name, before, after, res):
        """An end on a bridge with icc: false is listed in its ICC set
        (kernels without nft_meta_bridge), detached or deleted it is not."""
        ops = []
        bp, ap = (before or {}).get('peer') or {}, (after or {}).get('peer') or {}
        host_bridge = (after or {}).get('bridge')
        ends = ((netns, name, (before or {}).get('bridge'), host_bridge, (after or {}).get('_bridge_icc')),
                (ap.get('netns', bp.get('netns')), ap.get('name', bp.get('name')), bp.get('bridge'),
                 ap.get('bridge'), None))
        for ns, end, old, new, icc in ends:
            if not old and not new:
                continue
            if getattr(self, '_nft', None) is None:
                self._nft = NftPlanner(self.kernel, self.ctx)
            ops.extend(port_icc_ops(self._nft, ns, end, new, res, icc=icc, attached=bool(new) and old == new))
        return ops

    def _check_clash(self, res, netns, before, after):
        """What the pair adds must not clash with the host's routing (see _clash)."""
        bp, ap = (before or {}).get('peer') or {}, after['peer']
        entries = _clash.added(netns, 'addresses', (before or {}).get('addresses'), after.get('addresses')) + \
            _clash.added(ap['netns'], 'peer.addresses', bp.get('addresses'), ap.get('addresses')) + \
            _clash.added(ap['netns'], 'peer.gateway', _ipconf.gateway_routes(bp.get('gateway')),
                         _ipconf.gateway_routes(ap.get('gateway'))) + \
            _clash.added(ap['netns'], 'peer.routes', bp.get('routes'), ap.get('routes'))
        near = [(netns, after['name']), (ap['netns'], ap['name'])] + \
            ([(netns, after['bridge'])] if after.get('bridge') else [])
        _clash.check(self.kernel, res, entries, near, after.get('_allow_route_overlap'))

    def _check_segment(self, res, key, before, after):
        """Refuse a peer address that the bridge itself, the peer of another
        managed pair on the same bridge, or an earlier pair of this call
        there already holds: one address, one holder on the bridge. Only the
        addresses this pair adds there are checked; only the bridges of this
        call are read (their ports' peers once each)."""
        netns, bridge = key[0], after.get('bridge')
        link = self.kernel.link(netns, bridge) if bridge else None
        if link is None or link['kind'] != 'bridge':
            return  # no bridge, or check mode: made earlier in the play
        segment, held = self._segment(netns, link)
        mine = (_nsfs.namespace_id(netns), key[1])
        peer = after['peer']
        same = before is not None and before.get('bridge') == bridge and \
            _nsfs.same_namespace(before['peer']['netns'], peer['netns'])
        had = set(before['peer'].get('addresses') or []) if same else set()
        for cidr in peer.get('addresses') or []:
            holder = segment.get(ipaddress.ip_interface(cidr).ip)
            if cidr not in had and holder is not None and holder[0] != mine:
                raise ConflictError('%s: peer.addresses %s: %s is already held on bridge %s by %s; one address has '
                                    'one holder there' % (res, cidr, ipaddress.ip_interface(cidr).ip, bridge,
                                                          holder[1]), res, 'peer.addresses', cidr)
        keep = set(ipaddress.ip_interface(cidr).ip for cidr in peer.get('addresses') or [])
        mine_held = held.setdefault(mine, set())
        for addr in mine_held - keep:
            del segment[addr]  # given up by this pair
            mine_held.discard(addr)
        text = 'veth %s (peer %s in %s)' % (resource_label(netns, key[1]), peer['name'],
                                            _nsfs.spec_label(peer['netns']))
        for addr in keep:
            if segment.setdefault(addr, (mine, text))[0] == mine:
                mine_held.add(addr)

    def _segment(self, netns, bridge):
        """Who holds which address on ``bridge`` now: the bridge and the
        peers of the managed pairs on it (read once per bridge and run), and
        the addresses each pair holds there (holder → set of addresses)."""
        ident = _nsfs.namespace_id(netns)
        known = self._segments.get((ident, bridge['index']))
        if known is not None:
            return known
        segment, held = {}, {}
        self._segments[(ident, bridge['index'])] = (segment, held)
        for cidr in self.kernel.addresses(netns, bridge['index']):
            segment[ipaddress.ip_interface(cidr).ip] = (None, 'the bridge itself')
        for port in sorted(self.kernel.links(netns).values(), key=lambda l: l['name']):
            hint = _parse_hint(port['alias']) if port['master'] == bridge['index'] else None
            if hint is None or port['kind'] != 'veth' or (ident, port['name']) in self._leaving:
                continue
            peer = self._find_peer(port, hint)
            if peer is None:
                continue
            text = 'veth %s (peer %s in %s)' % (resource_label(netns, port['name']), hint[0],
                                                _nsfs.spec_label(hint[1]))
            holder = (ident, port['name'])
            for cidr in self.kernel.addresses(hint[1], peer['index']):
                addr = ipaddress.ip_interface(cidr).ip
                if segment.setdefault(addr, (holder, text))[0] == holder:
                    held.setdefault(holder, set()).add(addr)
        return segment, held

    def _restore(self, key, old):
        """Undo of a recreate's delete: build the old pair again, as it was
        (what stood before is not put through the clash check again)."""
        for op in self.plan(key, None, dict(old, _allow_route_overlap=True)):
            op.run()

    def _check_refs(self, res, netns, after, creating):
        """Refuse missing namespaces/bridges and taken peer names, before any change."""
        pns, pname = after['peer']['netns'], after['peer']['name']
        try:
            if not self.kernel.exists(pns):
                raise NamespaceNotFound('%s: peer.netns %r does not exist' % (res, pns), res, 'peer.netns', pns)
            if creating and self.kernel.link(pns, pname, res) is not None:
                raise ConflictError('%s: peer.name %r is already taken in %s'
                                    % (res, pname, _nsfs.spec_label(pns)), res, 'peer.name', pname)
        except (NamespaceNotFound, LinkNotFound) as err:
            self.ctx.tolerate_missing(err)
        for ns, bridge, field in ((netns, after.get('bridge'), 'bridge'),
                                  (pns, after['peer'].get('bridge'), 'peer.bridge')):
            if not bridge:
                continue
            try:
                link = self.kernel.link(ns, bridge, res)
                if link is None:
                    raise LinkNotFound('%s: %s %r does not exist in %s'
                                       % (res, field, bridge, _nsfs.spec_label(ns)), res, field, bridge)
            except (NamespaceNotFound, LinkNotFound) as err:
                self.ctx.tolerate_missing(err)
            else:
                if link['kind'] != 'bridge':
                    raise ValidationError('%s: %s %r is a %s, not a bridge' % (res, field, bridge, link['kind']),
                                          res, field, bridge)

    def _create(self, res, netns, after, host, peer):
        kernel = self.kernel
        pcfg = after['peer']
        peer_args = {'ifname': pcfg['name']}
        if not _nsfs.same_namespace(netns, pcfg['netns']):
            peer_args['net_ns_fd'] = kernel.ns_fd(pcfg['netns'], res, 'peer.netns')
        for field, nl_name in (('mtu', 'mtu'), ('mac', 'address')):
            if pcfg.get(field) is not None:
                peer_args[nl_name] = pcfg[field]
        args = {'ifname': after['name'], 'kind': 'veth', 'peer': peer_args}
        for field, nl_name in (('mtu', 'mtu'), ('mac', 'address')):
            if after.get(field) is not None:
                args[nl_name] = after[field]
        with _intent.creating(netns, [after['name']], 'veth'):
            kernel.link_add(netns, res, **args)
            host.mark_created()
            kernel.session(pcfg['netns']).invalidate()
            # One request per end (alias, bridge and up together). The peer
            # first: the host end's alias, last, marks the pair as whole and
            # ours (a run killed before it leaves a half-made pair that the
            # next run deletes, see _intent). At a thousand endpoints every
            # request saved is about half a second.
            if pcfg.get('bridge'):
                peer.set(field='peer.bridge', value=pcfg['bridge'], ifalias=_PEER_TAG,
                         master=_bridge_index(kernel, pcfg['netns'], pcfg['bridge'], res, 'peer.bridge'),
                         state='up')
            else:
                peer.set(ifalias=_PEER_TAG, state='up')
            alias = _host_alias(pcfg['name'], pcfg['netns'])
            if after.get('bridge'):
                host.set(field='bridge', value=after['bridge'], ifalias=alias,
                         master=_bridge_index(kernel, netns, after['bridge'], res), state='up')
            else:
                host.set(ifalias=alias, state='up')

    def _master_op(self, res, netns, end, old, new, field='bridge'):
        kernel = self.kernel

        def setter(bridge):
            def run():
                index = _bridge_index(kernel, netns, bridge, res, field) if bridge else 0
                end.set(field=field, value=bridge, master=index)
            return run
        where = '' if field == 'bridge' else ' in %s' % _nsfs.spec_label(netns)
        text = 'attach %s%s to bridge %s' % (end.name, where, new) if new else \
            'detach %s%s from bridge %s' % (end.name, where, old)
        return Op(res, text, setter(new), setter(old))


def _check_mtu_ipv6(res, config):
    """Each end: no MTU below 1280 next to an IPv6 address."""
    v.mtu_ipv6(config.get('mtu'), config.get('addresses'), res)
    peer = config.get('peer') or {}
    v.mtu_ipv6(peer.get('mtu'), peer.get('addresses'), res, 'peer.mtu', 'peer.addresses')


def _up(ref):
    return lambda: ref.set(state='up')


def _down(ref):
    return lambda: ref.set(state='down')


def _bridge_index(kernel, netns, bridge, res, field='bridge'):
    """The bridge's ifindex when a port is attached (checked to exist at plan time)."""
    index = kernel.link_index(netns, bridge, res)
    if index is None:
        raise LinkNotFound('%s: %s %r vanished while being configured' % (res, field, bridge), res, field, bridge)
    return index


def _check_peer_bridge(res, config):
    """A peer end that is a bridge port: no IP configuration of its own (the
    bridge holds it), and never the other end's bridge (a loop)."""
    peer = config['peer']
    for field in ('addresses', 'gateway', 'routes'):
        if peer.get(field):
            raise ValidationError('%s: peer.%s %r: the peer end is a port of bridge %s and takes no IP '
                                  'configuration; give it to the bridge' % (res, field, peer[field], peer['bridge']),
                                  res, 'peer.%s' % field, peer[field])
    if config.get('bridge') == peer['bridge'] and _nsfs.same_namespace(config.get('netns'), peer['netns']):
        raise ValidationError('%s: peer.bridge %r is also the bridge of the other end: the pair would loop '
                              'frames back into the same bridge' % (res, peer['bridge']),
                              res, 'peer.bridge', peer['bridge'])


def _delete_pair(kernel, netns, name, res):
    """Delete a veth pair through its host end. A pair whose peer's
    namespace was deleted just before (a teardown deletes namespaces first:
    the kernel then destroys their links in one batch) may be gone by now,
    or go while this runs: that is the deletion wanted."""
    index = kernel.link_index(netns, name, res)
    if index is not None:
        kernel.link_del(netns, res, index, vanished_ok=True)
