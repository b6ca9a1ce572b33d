# -*- coding: utf-8 -*-
# Copyright: contributors to hostnet.provision
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""nftables through libnftables' JSON interface, namespace-aware.

Private to the hostnet.provision collection.

Three layers, bottom up:

* ``run``: one JSON batch through ``libnftables.so.1`` (ctypes; the Python
  binding python3-nftables is not importable from every interpreter). The
  library opens its netlink socket in ``nft_ctx_new``, so the context is
  created, used and freed while the thread is inside the target namespace.
  JSON goes in and JSON comes out; nft's text output is never parsed.
* the layout of the two tables the collection owns entirely,
  ``inet hostnet`` and ``bridge hostnet``: a fixed program of chains and
  rules (the *skeleton*) that only refers to named sets and maps. What is
  configured lives in the elements of those sets and maps, so a thousand
  published ports cost one map lookup, not a thousand rules.
* ``Tables``: the elements of one namespace, read once, changed by atomic
  transactions. Every transaction re-asserts the skeleton (add table, add
  chains and sets, flush our chains, add our rules) when it has not been
  verified in this run, then deletes and adds elements, all in one batch.
  When no element is left, the transaction deletes both tables instead.
  Nothing outside the two tables is ever listed in a write or changed.

See docs/nftables.md for the design (hooks, priorities, coexistence).
"""

from __future__ import annotations

import ctypes
import ipaddress
import json
import os

from ansible_collections.hostnet.provision.plugins.module_utils import _nsfs
from ansible_collections.hostnet.provision.plugins.module_utils._errors import (
    KernelError,
    MissingDependency,
    translate_os_error,
)

__all__ = [
    'TABLE',
    'INET',
    'BRIDGE',
    'SETS',
    'LIBRARY',
    'available',
    'require',
    'run',
    'bridge_meta_supported',
    'Element',
    'group_elements',
    'Tables',
]

TABLE = 'hostnet'
INET = 'inet'
BRIDGE = 'bridge'
LIBRARY = 'libnftables.so.1'

_OUTPUT_JSON = 1 << 4  # NFT_CTX_OUTPUT_JSON

# Named sets and maps: (family, name) -> (key types, map data type, flags).
SETS = {
    # Bridges registered by the bridge module (they have addresses).
    (INET, 'bridges'): (('ifname',), None, ()),
    # Each registered bridge's subnets: hairpin masquerade, masquerade exemption.
    (INET, 'bridge_nets4'): (('ifname', 'ipv4_addr'), None, ('interval',)),
    (INET, 'bridge_nets6'): (('ifname', 'ipv6_addr'), None, ('interval',)),
    # Subnets of bridges with masquerade (element comment: the bridge).
    (INET, 'masq_nets4'): (('ipv4_addr',), None, ('interval',)),
    (INET, 'masq_nets6'): (('ipv6_addr',), None, ('interval',)),
    # Bridges with masquerade: reachable from outside only via published ports.
    (INET, 'nat_bridges'): (('ifname',), None, ()),
    (INET, 'isolated'): (('ifname',), None, ()),
    (INET, 'isolated_self'): (('ifname', 'ifname'), None, ()),
    # Which registered bridge may open connections to which: (b, b) for
    # every registered bridge, (b, other) for each bridge in b's reach.
    # Forwarding between two registered bridges needs an element.
    (INET, 'reach'): (('ifname', 'ifname'), None, ()),
    # Named exceptions to isolation (bridge option allow), one direction
    # each, owned by the source bridge (element comment: the exception's
    # name): a whole bridge, one protocol, or protocol . port.
    (INET, 'allow'): (('ifname', 'ifname'), None, ()),
    (INET, 'allow_proto'): (('ifname', 'ifname', 'inet_proto'), None, ()),
    (INET, 'allow_ports'): (('ifname', 'ifname', 'inet_proto', 'inet_service'), None, ()),
    # icc: false, routed path: (b, b) drops what b's endpoints route to
    # each other through the gateway (iifname and oifname both b).
    (INET, 'no_icc_routed'): (('ifname', 'ifname'), None, ()),
    (INET, 'no_host_access'): (('ifname',), None, ()),
    # dns_access: a bridge's own addresses that its endpoints may send DNS
    # (udp/tcp 53) to although host_access is false (its network's resolver).
    (INET, 'dns_access4'): (('ifname', 'ipv4_addr'), None, ()),
    (INET, 'dns_access6'): (('ifname', 'ipv6_addr'), None, ()),
    # Published ports: host address (or any) . protocol . port -> destination
    # address and port, as two maps with the same keys (libnftables' JSON
    # parser before 1.0.7 cannot declare concatenated map data).
    (INET, 'dnat4_addr'): (('ipv4_addr', 'inet_proto', 'inet_service'), 'ipv4_addr', ()),
    (INET, 'dnat4_port'): (('ipv4_addr', 'inet_proto', 'inet_service'), 'inet_service', ()),
    (INET, 'dnat4_any_addr'): (('inet_proto', 'inet_service'), 'ipv4_addr', ()),
    (INET, 'dnat4_any_port'): (('inet_proto', 'inet_service'), 'inet_service', ()),
    (INET, 'dnat6_addr'): (('ipv6_addr', 'inet_proto', 'inet_service'), 'ipv6_addr', ()),
    (INET, 'dnat6_port'): (('ipv6_addr', 'inet_proto', 'inet_service'), 'inet_service', ()),
    (INET, 'dnat6_any_addr'): (('inet_proto', 'inet_service'), 'ipv6_addr', ()),
    (INET, 'dnat6_any_port'): (('inet_proto', 'inet_service'), 'inet_service', ()),
    # icc: false, by bridge name (meta ibrname) or, on kernels without
    # nft_meta_bridge, by the bridge's ports (element comment: the bridge).
    (BRIDGE, 'no_icc'): (('ifname',), None, ()),
    (BRIDGE, 'no_icc_ports'): (('ifname',), None, ()),
}

# Base chains: (family, name) -> (type, hook, priority); None: regular chain.
CHAINS = {
    (INET, 'raw_prerouting'): ('filter', 'prerouting', -300),
    (INET, 'localhost_output'): ('filter', 'output', -150),
    (INET, 'localhost_prerouting'): ('filter', 'prerouting', -90),
    (INET, 'nat_prerouting'): ('nat', 'prerouting', -100),
    (INET, 'nat_output'): ('nat', 'output', -100),
    (INET, 'publish'): None,
    (INET, 'nat_postrouting'): ('nat', 'postrouting', 100),
    (INET, 'filter_forward'): ('filter', 'forward', 0),
    (INET, 'filter_input'): ('filter', 'input', 0),
    (INET, 'localhost_reply'): ('filter', 'input', 200),
    (INET, 'host_guard'): None,
    (BRIDGE, 'filter_forward'): ('filter', 'forward', 0),
}


# -- the library ---------------------------------------------------------------

class _Lib:
    handle = None
    error = None


def _load():
    """The ctypes handle of libnftables, loaded once; MissingDependency if absent."""
    if _Lib.handle is not None:
        return _Lib.handle
    if _Lib.error is None:
        try:
            lib = ctypes.CDLL(LIBRARY, use_errno=True)
            void_p, char_p = ctypes.c_void_p, ctypes.c_char_p
            lib.nft_ctx_new.restype = void_p
            lib.nft_ctx_new.argtypes = [ctypes.c_uint32]
            lib.nft_ctx_free.argtypes = [void_p]
            lib.nft_ctx_output_set_flags.argtypes = [void_p, ctypes.c_uint]
            lib.nft_ctx_set_dry_run.argtypes = [void_p, ctypes.c_bool]
            lib.nft_ctx_buffer_output.argtypes = [void_p]
            lib.nft_ctx_buffer_error.argtypes = [void_p]
            lib.nft_ctx_get_output_buffer.argtypes = [void_p]
            lib.nft_ctx_get_output_buffer.restype = char_p
            lib.nft_ctx_get_error_buffer.argtypes = [void_p]
            lib.nft_ctx_get_error_buffer.restype = char_p
            lib.nft_run_cmd_from_buffer.argtypes = [void_p, char_p]
        except (OSError, AttributeError) as exc:
            _Lib.error = str(exc)
        else:
            _Lib.handle = lib
            return lib
    raise MissingDependency(
        'nftables (%s) is required on the target for NAT, published ports and isolation: install the '
        'package "nftables" (Debian/Ubuntu: it brings libnftables1; RHEL: "nftables") (%s)'
        % (LIBRARY, _Lib.error), field='nftables')


def require():
    """Raise MissingDependency (naming the package) unless libnftables loads."""
    _load()


def available():
    """True when libnftables can be loaded."""
    try:
        _load()
    except MissingDependency:
        return False
    return True


def run(spec, commands, resource=None, dry_run=False, action='nftables transaction'):
    """Run one batch of JSON commands in a namespace; return the output objects.

    All commands of one call are one kernel transaction: all or nothing.
    With ``dry_run`` the kernel validates the batch and commits nothing.
    """
    lib = _load()
    payload = json.dumps({'nftables': commands}).encode('utf-8')
    fd = _nsfs.open_namespace(spec, resource) if spec else None
    try:
        with _nsfs.entered(fd):
            # The netlink socket is opened here and bound to this namespace.
            ctx = lib.nft_ctx_new(0)
            if not ctx:
                raise KernelError('%s: %s failed: could not create a libnftables context'
                                  % (resource or 'nftables', action), resource)
            try:
                lib.nft_ctx_output_set_flags(ctx, _OUTPUT_JSON)
                lib.nft_ctx_buffer_output(ctx)
                lib.nft_ctx_buffer_error(ctx)
                if dry_run:
                    lib.nft_ctx_set_dry_run(ctx, True)
                rc = lib.nft_run_cmd_from_buffer(ctx, payload)
                out = lib.nft_ctx_get_output_buffer(ctx) or b''
                err = lib.nft_ctx_get_error_buffer(ctx) or b''
            finally:
                lib.nft_ctx_free(ctx)
    except OSError as exc:
        raise translate_os_error(exc, '%s in %s' % (action, _nsfs.spec_label(spec)), resource) from None
    finally:
        if fd is not None:
            os.close(fd)
    if rc != 0:
        raise KernelError('%s: %s in %s failed: %s' % (resource or 'nftables', action, _nsfs.spec_label(spec),
                                                       _error_text(err)), resource)
    text = out.decode('utf-8').strip()
    return json.loads(text).get('nftables', []) if text else []


def _error_text(err):
    lines = [line.split('Error: ', 1)[-1].strip() for line in err.decode('utf-8', 'replace').splitlines()]
    return '; '.join(line for line in lines if line) or 'libnftables reported an error'


_BRIDGE_META = {}


def bridge_meta_supported(spec=None):
    """Whether the kernel matches ``meta ibrname`` in the bridge family
    (nft_meta_bridge, CONFIG_NFT_BRIDGE_META). Asked once per process with
    a dry-run transaction that the kernel validates and never commits."""
    if 'value' not in _BRIDGE_META:
        probe = {'family': BRIDGE, 'table': 'hostnet_probe'}
        try:
            run(spec, [
                {'add': {'table': {'family': BRIDGE, 'name': 'hostnet_probe'}}},
                {'add': {'chain': dict(probe, name='probe', type='filter', hook='forward', prio=0,
                                       policy='accept')}},
                {'add': {'rule': dict(probe, chain='probe',
                                      expr=[_match(_meta('ibrname'), 'probe'), {'accept': None}])}},
            ], dry_run=True, action='probe for meta ibrname')
        except KernelError:
            _BRIDGE_META['value'] = False
        else:
            _BRIDGE_META['value'] = True
    return _BRIDGE_META['value']


# -- expressions ---------------------------------------------------------------

def _meta(key):
    return {'meta': {'key': key}}


def _payload(protocol, field):
    return {'payload': {'protocol': protocol, 'field': field}}


def _match(left, right, op='=='):
    return {'match': {'op': op, 'left': left, 'right': right}}


def _concat(*items):
    return {'concat': list(items)}


def _prefix(cidr):
    net = ipaddress.ip_network(cidr, strict=False)
    return {'prefix': {'addr': str(net.network_address), 'len': net.prefixlen}}


def _ct(key):
    return {'ct': {'key': key}}


_ESTABLISHED = {'set': ['established', 'related']}
_ND = ['nd-router-solicit', 'nd-neighbor-solicit', 'nd-neighbor-advert']
_MLD = ['mld-listener-query', 'mld-listener-report', 'mld-listener-done', 'mld2-listener-report']


def _dnat_rule(family, specific):
    l3 = 'ip' if family == 4 else 'ip6'
    key_parts = [_meta('l4proto'), _payload('th', 'dport')]
    if specific:
        key_parts.insert(0, _payload(l3, 'daddr'))
    key = _concat(*key_parts)
    base = 'dnat%d%s_' % (family, '' if specific else '_any')
    expr = [_match(_meta('nfproto'), 'ipv4' if family == 4 else 'ipv6')]
    if family == 6:
        # The kernel cannot send ::1 anywhere but lo: leave it alone.
        expr.append(_match(_payload('ip6', 'daddr'), '::1', '!='))
    expr.append({'dnat': {'family': l3,
                          'addr': {'map': {'key': key, 'data': '@' + base + 'addr'}},
                          'port': {'map': {'key': key, 'data': '@' + base + 'port'}}}})
    return expr


def _localhost_rules():
    """The host's own connections from 127/8 to a published port, without
    route_localnet: (output chain, prerouting chain, input chain) rules.

    The kernel refuses to route a packet with a 127/8 source out of a
    non-loopback interface, and a packet to 127/8 arriving on one, unless
    route_localnet is on there; and route_localnet on a bridge lets its
    endpoints reach the host's 127.0.0.1 as soon as the rule that drops
    127/8 from outside is gone (a flushed ruleset). So it stays off, and the
    addresses are swapped around the two routing decisions instead:

    * output, after conntrack and before the DNAT (whose re-routing would
      fail): the packet's source becomes the destination's own address (a
      unicast source the kernel routes from); postrouting then masquerades
      the flow (``ct original ip saddr 127.0.0.0/8``), so conntrack knows
      the bridge's address as the reply's destination;
    * prerouting, after NAT restored the reply's destination to 127/8:
      it becomes that bridge address again, a local one, so the reply is
      routed to the host;
    * input, after NAT: the reply gets its original 127/8 destination back
      for the socket lookup.

    Every piece lives in this table: a flush removes them together with the
    DNAT, and nothing is opened. Only flows whose conntrack entry says they
    came from 127/8 to 127/8 and were DNATed are touched.
    """
    saddr, daddr = _payload('ip', 'saddr'), _payload('ip', 'daddr')
    loopback = _prefix('127.0.0.0/8')
    ours = [_match(_ct('status'), 'dnat', 'in'),
            _match({'ct': {'key': 'ip saddr', 'dir': 'original'}}, loopback),
            _match({'ct': {'key': 'ip daddr', 'dir': 'original'}}, loopback),
            _match(_meta('iifname'), 'lo', '!=')]
    reply = [_match(_ct('direction'), 'reply')] + ours

    def mangle(key, value):
        return {'mangle': {'key': key, 'value': value}}
    output = []
    # The destination of the mapping the publish chain will use (the host
    # address's own first, then any address's), for a new flow or one that
    # was DNATed (not a flow that began before the port was published).
    for data, key in (('@dnat4_addr', _concat(daddr, _meta('l4proto'), _payload('th', 'dport'))),
                      ('@dnat4_any_addr', _concat(_meta('l4proto'), _payload('th', 'dport')))):
        for state in (_match(_ct('state'), 'new', 'in'), _match(_ct('status'), 'dnat', 'in')):
            output.append([_match(_ct('direction'), 'original'), state, _match(saddr, loopback),
                           _match(daddr, loopback), mangle(saddr, {'map': {'key': key, 'data': data}})])
    prerouting = [reply + [mangle(daddr, {'ct': {'key': 'ip daddr', 'dir': 'reply'}})]]
    input_ = [reply + [mangle(daddr, {'ct': {'key': 'ip saddr', 'dir': 'original'}})]]
    return output, prerouting, input_


def _rules(bridge_meta):
    """The skeleton's rules: (family, chain) -> list of expression lists."""
    masquerade = {'masquerade': None}
    drop, ret, accept = {'drop': None}, {'return': None}, {'accept': None}
    icc_key = _meta('ibrname') if bridge_meta else _meta('iifname')
    icc_set = '@no_icc' if bridge_meta else '@no_icc_ports'
    localhost = _localhost_rules()
    return {
        (INET, 'raw_prerouting'): [
            # 127/8 from any non-loopback interface is never legitimate (a
            # second wall where someone else turned route_localnet on).
            [_match(_meta('iifname'), 'lo', '!='), _match(_payload('ip', 'daddr'), _prefix('127.0.0.0/8')), drop],
        ],
        (INET, 'localhost_output'): localhost[0],
        (INET, 'localhost_prerouting'): localhost[1],
        (INET, 'localhost_reply'): localhost[2],
        (INET, 'nat_prerouting'): [
            [_match({'fib': {'result': 'type', 'flags': ['daddr']}}, 'local'), {'jump': {'target': 'publish'}}],
        ],
        (INET, 'nat_output'): [
            [_match({'fib': {'result': 'type', 'flags': ['daddr']}}, 'local'), {'jump': {'target': 'publish'}}],
        ],
        (INET, 'publish'): [
            _dnat_rule(4, True), _dnat_rule(4, False), _dnat_rule(6, True), _dnat_rule(6, False),
        ],
        (INET, 'nat_postrouting'): [
            [_match(_payload('ip', 'daddr'), {'set': [_prefix('224.0.0.0/4'), '255.255.255.255']}), ret],
            [_match(_payload('ip6', 'daddr'), _prefix('ff00::/8')), ret],
            # Hairpin: DNATed traffic going back into the bridge it came from.
            [_match(_ct('status'), 'dnat', 'in'),
             _match(_concat(_meta('oifname'), _payload('ip', 'saddr')), '@bridge_nets4'), masquerade],
            [_match(_ct('status'), 'dnat', 'in'),
             _match(_concat(_meta('oifname'), _payload('ip6', 'saddr')), '@bridge_nets6'), masquerade],
            # The host's own 127/8 to a published port (see _localhost_rules).
            [_match(_ct('direction'), 'original'), _match(_ct('status'), 'dnat', 'in'),
             _match({'ct': {'key': 'ip saddr', 'dir': 'original'}}, _prefix('127.0.0.0/8')),
             _match(_meta('oifname'), 'lo', '!='), masquerade],
            # Masquerade: a bridge's subnets leaving by any other interface.
            [_match(_concat(_meta('oifname'), _payload('ip', 'saddr')), '@bridge_nets4', '!='),
             _match(_payload('ip', 'saddr'), '@masq_nets4'), masquerade],
            [_match(_concat(_meta('oifname'), _payload('ip6', 'saddr')), '@bridge_nets6', '!='),
             _match(_payload('ip6', 'saddr'), '@masq_nets6'), masquerade],
        ],
        (INET, 'filter_forward'): [
            # Published ports pass every policy below (as with Docker).
            [_match(_ct('status'), 'dnat', 'in'), accept],
            # Named exceptions (allow): new connections from the source bridge
            # and the replies of those connections, ahead of every drop below.
            # A reply's source port is the connection's destination port.
            [_match(_ct('direction'), 'original'), _match(_concat(_meta('iifname'), _meta('oifname')), '@allow'),
             accept],
            [_match(_ct('direction'), 'reply'), _match(_concat(_meta('oifname'), _meta('iifname')), '@allow'),
             accept],
            [_match(_ct('direction'), 'original'),
             _match(_concat(_meta('iifname'), _meta('oifname'), _meta('l4proto')), '@allow_proto'), accept],
            [_match(_ct('direction'), 'reply'),
             _match(_concat(_meta('oifname'), _meta('iifname'), _meta('l4proto')), '@allow_proto'), accept],
            [_match(_ct('direction'), 'original'),
             _match(_concat(_meta('iifname'), _meta('oifname'), _meta('l4proto'), _payload('th', 'dport')),
                    '@allow_ports'), accept],
            [_match(_ct('direction'), 'reply'),
             _match(_concat(_meta('oifname'), _meta('iifname'), _meta('l4proto'), _payload('th', 'sport')),
                    '@allow_ports'), accept],
            # icc: false, routed through the gateway back into the same bridge.
            [_match(_concat(_meta('iifname'), _meta('oifname')), '@no_icc_routed'), drop],
            [_match(_meta('iifname'), '@isolated'), _match(_meta('oifname'), '@isolated'),
             _match(_concat(_meta('iifname'), _meta('oifname')), '@isolated_self', '!='), drop],
            # Bridges are isolated from each other unless reach allows it
            # (new connections; replies of allowed ones pass).
            [_match(_meta('iifname'), '@bridges'), _match(_meta('oifname'), '@bridges'),
             _match(_concat(_meta('iifname'), _meta('oifname')), '@reach', '!='),
             _match(_ct('state'), _ESTABLISHED, '!='), drop],
            # "Direct access": new connections into a NAT bridge from anywhere
            # but a registered bridge only through published ports.
            [_match(_meta('oifname'), '@nat_bridges'), _match(_meta('iifname'), '@bridges', '!='),
             _match(_ct('state'), _ESTABLISHED, '!='), drop],
        ],
        (INET, 'filter_input'): [
            [_match(_meta('iifname'), '@no_host_access'), {'jump': {'target': 'host_guard'}}],
        ],

        (INET, 'host_guard'): [
            [_match(_ct('state'), _ESTABLISHED), ret],
            [_match(_meta('l4proto'), {'set': ['tcp', 'udp']}), _match(_payload('th', 'dport'), 53),
             _match(_concat(_meta('iifname'), _payload('ip', 'daddr')), '@dns_access4'), ret],
            [_match(_meta('l4proto'), {'set': ['tcp', 'udp']}), _match(_payload('th', 'dport'), 53),
             _match(_concat(_meta('iifname'), _payload('ip6', 'daddr')), '@dns_access6'), ret],
            [_match(_meta('nfproto'), 'ipv4'), _match(_payload('udp', 'sport'), 68),
             _match(_payload('udp', 'dport'), 67), ret],
            [_match(_meta('nfproto'), 'ipv6'), _match(_payload('udp', 'dport'), 547), ret],
            [_match(_meta('l4proto'), 'igmp'), ret],
            [_match(_payload('icmpv6', 'type'), {'set': _ND + _MLD}), ret],
            [drop],
        ],
        (BRIDGE, 'filter_forward'): [
            [_match(_payload('icmpv6', 'type'), {'set': _ND + ['nd-router-advert'] + _MLD}), accept],
            [_match(icc_key, icc_set), _match(_meta('protocol'), {'set': ['ip', 'ip6']}), drop],
        ],
    }


def _skeleton(bridge_meta):
    """Commands that (re)create the tables' program, leaving elements alone."""
    cmds = []
    for family in (INET, BRIDGE):
        cmds.append({'add': {'table': {'family': family, 'name': TABLE}}})
    for (family, name), hook in CHAINS.items():
        chain = {'family': family, 'table': TABLE, 'name': name}
        if hook is not None:
            chain.update(type=hook[0], hook=hook[1], prio=hook[2], policy='accept')
        cmds.append({'add': {'chain': chain}})
    for (family, name), (types, data, flags) in SETS.items():
        obj = {'family': family, 'table': TABLE, 'name': name,
               'type': list(types) if len(types) > 1 else types[0]}
        if flags:
            obj['flags'] = list(flags)
        if data:
            obj['map'] = data
        cmds.append({'add': {'map' if data else 'set': obj}})
    for family, name in CHAINS:
        cmds.append({'flush': {'chain': {'family': family, 'table': TABLE, 'name': name}}})
    for (family, chain), rules in _rules(bridge_meta).items():
        for expr in rules:
            cmds.append({'add': {'rule': {'family': family, 'table': TABLE, 'chain': chain, 'expr': expr}}})
    return cmds


# -- elements ------------------------------------------------------------------

class Element:
    """One element of one of our sets or maps, in plain Python terms.

    ``key`` is a string or a tuple of strings/ints (addresses of interval
    sets as networks, ``198.51.100.0/24``); ``value`` the map data or None;
    ``comment`` the element's comment or None.
    """

    __slots__ = ('family', 'set', 'key', 'value', 'comment')

    def __init__(self, family, set_name, key, value=None, comment=None):
        self.family = family
        self.set = set_name
        self.key = key
        self.value = value
        self.comment = comment

    def ident(self):
        return (self.family, self.set, self.key)

    def __eq__(self, other):
        return isinstance(other, Element) and self._cmp() == other._cmp()

    def __hash__(self):
        return hash(self._cmp())

    def _cmp(self):
        return (self.family, self.set, self.key, self.value, self.comment)

    def __repr__(self):
        return 'Element(%s %s %r%s%s)' % (self.family, self.set, self.key,
                                          '' if self.value is None else ' : %r' % (self.value,),
                                          '' if self.comment is None else ' comment %r' % self.comment)

    def describe(self):
        key = ' . '.join(str(k) for k in self.key) if isinstance(self.key, tuple) else str(self.key)
        if self.value is not None:
            key += ' : %s' % self.value
        return '%s %s' % (self.set, key)


def _encode_part(value, type_, interval):
    if type_ in ('ipv4_addr', 'ipv6_addr') and interval:
        return _prefix(value)
    return value


def _encode_key(element):
    types, _data, flags = SETS[(element.family, element.set)]
    parts = element.key if isinstance(element.key, tuple) else (element.key,)
    encoded = [_encode_part(p, t, 'interval' in flags) for p, t in zip(parts, types)]
    key = encoded[0] if len(encoded) == 1 else _concat(*encoded)
    return key


def _encode(element, with_value=True):
    key = _encode_key(element)
    if element.comment is not None:
        key = {'elem': {'val': key, 'comment': element.comment}}
    if with_value and element.value is not None:
        return [key, element.value]
    return key


def _decode_part(value, type_, interval):
    if isinstance(value, dict):
        if 'prefix' in value:
            return str(ipaddress.ip_network('%s/%s' % (value['prefix']['addr'], value['prefix']['len']),
                                            strict=False))
        if 'range' in value:
            return '%s-%s' % tuple(value['range'])
        return json.dumps(value, sort_keys=True)
    if type_ in ('ipv4_addr', 'ipv6_addr') and interval and isinstance(value, str):
        return str(ipaddress.ip_network(value, strict=False))
    return value


def _decode(family, name, raw):
    """A listed element (JSON) -> (Element, raw key for deletion)."""
    types, data, flags = SETS[(family, name)]
    value = None
    if data is not None and isinstance(raw, list) and len(raw) == 2:
        raw, value = raw
        if isinstance(value, dict):
            value = json.dumps(value, sort_keys=True)
    comment = None
    key_raw = raw
    if isinstance(raw, dict) and 'elem' in raw:
        comment = raw['elem'].get('comment')
        key_raw = raw['elem']['val']
    parts = key_raw['concat'] if isinstance(key_raw, dict) and 'concat' in key_raw else [key_raw]
    decoded = tuple(_decode_part(p, t, 'interval' in flags) for p, t in zip(parts, types))
    key = decoded[0] if len(decoded) == 1 else decoded
    return Element(family, name, key, value, comment), key_raw


def group_elements(elements, key_of):
    """KEY_OF(element) -> the elements with that key (None: left out)."""
    groups = {}
    for element in elements:
        key = key_of(element)
        if key is not None:
            groups.setdefault(key, []).append(element)
    return groups


class Tables:
    """The collection's two tables in one namespace: elements and changes."""

    def __init__(self, spec, resource=None):
        self.spec = spec
        self.resource = resource
        self._elements = None   # ident -> Element
        self._raw = {}          # ident -> listed JSON key (for deletion)
        self._present = set()   # families whose table exists
        self._intact = False    # skeleton verified or written in this run
        self.generation = 0     # bumped on every change (callers cache parses)
        self._grouped = {}      # key function -> (generation, groups), see grouped

    # -- reading ------------------------------------------------------------

    def load(self):
        if self._elements is not None:
            return
        self.generation += 1
        listed = run(self.spec, [{'list': {'tables': None}}], self.resource, action='list tables')
        self._present = set(o['table']['family'] for o in listed
                            if 'table' in o and o['table'].get('name') == TABLE and
                            o['table'].get('family') in (INET, BRIDGE))
        self._elements, self._raw = {}, {}
        seen_rules, seen_sets, seen_chains = {}, set(), set()
        for family in sorted(self._present):
            objs = run(self.spec, [{'list': {'table': {'family': family, 'name': TABLE}}}], self.resource,
                       action='list table %s %s' % (family, TABLE))
            for obj in objs:
                kind = 'set' if 'set' in obj else 'map' if 'map' in obj else None
                if kind is not None:
                    desc = obj[kind]
                    ident = (family, desc['name'])
                    if ident not in SETS:
                        continue
                    seen_sets.add(ident)
                    for raw in desc.get('elem', []):
                        element, raw_key = _decode(family, desc['name'], raw)
                        self._elements[element.ident()] = element
                        self._raw[element.ident()] = raw_key
                elif 'chain' in obj:
                    seen_chains.add((family, obj['chain']['name']))
                elif 'rule' in obj:
                    ident = (family, obj['rule']['chain'])
                    seen_rules[ident] = seen_rules.get(ident, 0) + 1
        expected = dict((k, len(v)) for k, v in _rules(True).items())
        self._intact = (seen_sets == set(SETS) and seen_chains == set(CHAINS) and
                        all(seen_rules.get(k, 0) == n for k, n in expected.items()) and
                        not set(seen_rules) - set(expected))

    def intact(self):
        """The skeleton is complete (every chain, set and rule is there)."""
        self.load()
        return self._intact or not self._elements and not self._present

    def elements(self, family=None, set_name=None):
        self.load()
        return [e for e in self._elements.values()
                if (family is None or e.family == family) and (set_name is None or e.set == set_name)]

    def get(self, family, set_name, key):
        self.load()
        return self._elements.get((family, set_name, key))

    def grouped(self, key_of):
        """The elements grouped by KEY_OF(element) (None: in no group), in
        one pass per generation: two hundred bridges each asking for their
        own elements do not scan them all two hundred times."""
        self.load()
        cached = self._grouped.get(key_of)
        if cached is None or cached[0] != self.generation:
            cached = self._grouped[key_of] = (self.generation, group_elements(self._elements.values(), key_of))
        return cached[1]

    # -- writing ------------------------------------------------------------

    def apply(self, delete=(), add=(), action='update'):
        """One atomic transaction: remove ``delete``, then insert ``add``.

        Elements to delete are matched by key; an element to add whose key
        is present with another value or comment replaces it.
        """
        self.load()
        delete = [e for e in delete if e.ident() in self._elements]
        remaining = dict(self._elements)
        for e in delete:
            remaining.pop(e.ident(), None)
        add = [e for e in add if remaining.get(e.ident()) != e]
        replaced = [self._elements[e.ident()] for e in add
                    if e.ident() in remaining and e.ident() in self._elements]
        delete = delete + [e for e in replaced if e not in delete]
        for e in add:
            remaining[e.ident()] = e
        if not delete and not add and self._intact:
            return
        self.generation += 1
        if not remaining:
            cmds = [{'delete': {'table': {'family': f, 'name': TABLE}}} for f in sorted(self._present)]
            if cmds:
                run(self.spec, cmds, self.resource, action=action)
            self._elements, self._raw, self._present, self._intact = {}, {}, set(), False
            return
        cmds = [] if self._intact and self._present == {INET, BRIDGE} else _skeleton(bridge_meta_supported(self.spec))
        for e in delete:
            cmds.append({'delete': {'element': {'family': e.family, 'table': TABLE, 'name': e.set,
                                                'elem': [self._raw.get(e.ident()) or _encode_key(e)]}}})
        for e in add:
            cmds.append({'add': {'element': {'family': e.family, 'table': TABLE, 'name': e.set,
                                             'elem': [_encode(e)]}}})
        run(self.spec, cmds, self.resource, action=action)
        self._elements = remaining
        for e in delete:
            self._raw.pop(e.ident(), None)
        for e in add:
            self._raw[e.ident()] = _encode_key(e)
        self._present, self._intact = {INET, BRIDGE}, True

    def rewrite_program(self):
        """Make the next ``apply`` rewrite the skeleton (in its transaction)."""
        self.load()
        self._intact = False
