# -*- coding: utf-8 -*-
# Copyright: contributors to hostnet.provision
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""From a role's list of networks to each module's config, checked first.

Private to the hostnet.provision collection. Pure computation: it reads a
host's ``net_info`` report and never the kernel, so the roles' filter
plugins run it on the controller before any change is made.

What it promises (the roles' contract):

* every problem is found before anything changes, each naming the
  network/endpoint, the field and the value: overlapping subnets, a subnet
  colliding with a route the host already has, names, a host port published
  twice, an address outside its subnet or taken twice, a name the role would
  create that something else already holds on the host;
* one set of rules for modules and roles: every config derived here is run
  through the resource kinds' own ``normalize``/``check_all`` (the checks
  the modules make), so a role never calls a module with a value the module
  would refuse halfway through the role;
* stable addressing: an endpoint keeps the address it has (read back from
  the host), new endpoints take the lowest free addresses, and no address
  held by any endpoint the collection made on the bridge is given twice (an
  endpoint no longer listed keeps its address until it is removed);
* ``state: absent`` on a network or endpoint (and ``purge`` for endpoints no
  longer listed) removes exactly what was made for it;
* address space is never enumerated: blocks and free addresses are
  computed arithmetically, so an IPv6 /48 plans as fast as an IPv4 /29.
"""

from __future__ import annotations

import hashlib
import ipaddress

from ansible.module_utils.parsing.convert_bool import boolean

from ansible_collections.hostnet.provision.plugins.module_utils import _clash
from ansible_collections.hostnet.provision.plugins.module_utils import _dns
from ansible_collections.hostnet.provision.plugins.module_utils import _validate as v
from ansible_collections.hostnet.provision.plugins.module_utils._errors import ConflictError, ValidationError
from ansible_collections.hostnet.provision.plugins.module_utils._kind_bridge import allow_entry, allow_list
from ansible_collections.hostnet.provision.plugins.module_utils._kinds import KINDS

__all__ = ['PlanError', 'plan_networks', 'plan_overlay', 'overlay_forwarding', 'overlay_mac', 'overlay_underlay',
           'derived_name']

# Link names the kernel or the namespace already gives a meaning to.
_RESERVED_LINK_NAMES = ('lo', 'all', 'default')
# Outer IP + UDP + VXLAN + inner Ethernet headers, by underlay IP version.
_VXLAN_OVERHEAD = {4: 50, 6: 70}
_IPV6_MIN_MTU = 1280


class PlanError(ValidationError):
    """All the problems found in a role's input, one per line."""

    def __init__(self, problems):
        self.problems = problems
        super().__init__('%d problem(s), nothing was changed:\n- %s' % (len(problems), '\n- '.join(problems)))


def derived_name(prefix, *parts, limit=15):
    """A stable interface name: prefix + name if it fits, else prefix + hash."""
    plain = prefix + '-'.join(parts)
    if len(plain.encode('utf-8')) <= limit and all(v_ok(c) for c in plain):
        return plain
    digest = hashlib.sha256('/'.join(parts).encode('utf-8')).hexdigest()
    return prefix + digest[:limit - len(prefix)]


def v_ok(char):
    return not (char.isspace() or char in '/:%')


class _Problems(list):
    def add(self, where, message):
        self.append('%s: %s' % (where, message))


def _net(value):
    try:
        return ipaddress.ip_network(value, strict=True)
    except (ValueError, TypeError):
        return None


def _as_int(value):
    """An integer given as a string of digits (``-e var=4243``) as an int;
    anything else unchanged, for the kinds' checks to refuse by name."""
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return value


def _as_bool(value, where, field, problems):
    if value is None or isinstance(value, bool):
        return value
    try:
        return boolean(value, strict=True)
    except TypeError:
        problems.add(where, '%s %r must be true or false' % (field, value))
        return None


def _reason(err):
    """A ValidationError's text without the resource prefix the caller repeats."""
    return str(err)


# -- what the host has (from net_info) ------------------------------------------


def _host_routes(facts, own_bridges):
    """Routes of the host namespace that someone else made (not ours, not
    the connected routes of our own bridges)."""
    out = []
    for route in ((facts or {}).get('routes') or {}).get('', []):
        if route.get('managed') or route.get('dest') in (None, 'default') or route.get('dev') in own_bridges:
            continue
        net = _net(route['dest'])
        if net is not None:
            out.append((net, route))
    return out


def _managed_veths(facts):
    return ((facts or {}).get('managed') or {}).get('veth', []) or []


def _existing_endpoints(facts):
    """(namespace, bridge) → what a managed veth holds there now."""
    found = {}
    for veth in _managed_veths(facts):
        peer = veth.get('peer') or {}
        found[(peer.get('netns'), veth.get('bridge'))] = {
            'host_if': veth['name'], 'peer': peer.get('name'), 'netns': peer.get('netns'),
            'addresses': list(peer.get('addresses') or [])}
    return found


def _host_links(facts):
    """Links of the host namespace by name, or None when not read."""
    links = (facts or {}).get('links')
    if links is None:
        return None
    return dict((link['name'], link) for link in links.get('', []) or [])


def _foreign_namespaces(facts):
    """Named namespaces the collection did not create, or None when not read."""
    entries = (facts or {}).get('namespaces')
    if entries is None:
        return None
    return set(e['name'] for e in entries if e.get('name') and not e.get('managed'))


def _check_names_free(wanted, facts, problems):
    """Refuse a name the role would create (or use) that a link the
    collection does not manage holds, or a managed link of another kind.

    ``wanted``: (where, field, name, kind) of links in the host namespace.
    """
    links = _host_links(facts)
    if links is None:
        return
    for where, field, name, kind in wanted:
        link = links.get(name)
        if link is None:
            continue
        if not link.get('managed'):
            problems.add(where, '%s %s already exists on the host (a %s link) and was not made by '
                                'hostnet.provision; it is left alone: choose another name'
                         % (field, name, link.get('kind') or 'network'))
        elif link.get('kind') != kind:
            problems.add(where, '%s %s is already a %s made by hostnet.provision for something else, not a %s'
                         % (field, name, link.get('kind'), kind))


# -- one set of rules: the resource kinds' own checks ----------------------------------


def _check_with_kinds(derived, problems):
    """Run every derived config through its kind's normalize and check_all.

    ``derived``: {kind name: [(where, config)]}. The kinds are created
    without a kernel: their input checks are pure. A ValidationError becomes
    a problem named after the network/endpoint the config came from.
    """
    for kind_name, entries in derived.items():
        kind = KINDS[kind_name](None, None)
        items, origins = [], []
        count = 0
        for where, config in entries:
            try:
                # portmap: a dual-stack mapping is two, one per family.
                for one in (kind.expand([config]) if hasattr(kind, 'expand') else [config]):
                    count += 1
                    items.append(kind.normalize(one))
                    origins.append(where)
            except ValidationError as err:
                problems.add(where, _reason(err))
        if len(items) != count or any(where not in origins for where, _config in entries):
            continue  # check_all compares normalised items only
        try:
            kind.check_all(items)
        except ValidationError as err:
            where = next((w for w, item in zip(origins, items)
                          if err.value is not None and err.value in (item.get('name'), item.get('device'))),
                         ', '.join(sorted(set(origins))) or kind_name)
            problems.add(where, _reason(err))


# -- arithmetic address allocation (never enumerates a range) ---------------------------


def _first_host(net):
    """The first address a gateway or bridge may use."""
    return net.network_address + 1 if net.num_addresses > 2 else net.network_address


def _last_host(net):
    if net.version == 4 and net.num_addresses > 2:
        return net.broadcast_address - 1
    return net.broadcast_address


def _lowest_free(first, last, taken):
    """The lowest address in [first, last] not in ``taken``: one look per
    taken address at most, whatever the size of the range."""
    candidate = first
    for addr in sorted(a for a in taken if a.version == first.version and first <= a <= last):
        if addr == candidate:
            candidate += 1
        elif addr > candidate:
            break
    return candidate if candidate <= last else None


def _is_host_address(addr, net):
    if addr not in net:
        return False
    if net.version == 4 and net.num_addresses > 2:
        return addr not in (net.network_address, net.broadcast_address)
    return addr != net.network_address or net.num_addresses <= 2


# -- bridge networks (bridge_network, tenant_networks) -------------------------------


def plan_networks(networks, facts=None, prefix='br-', veth_prefix='ve', defaults=None):
    """Validate ``networks`` against the host and derive every module's config.

    ``defaults`` fill fields a network leaves unset (e.g. masquerade, icc,
    isolated, host_access); its ``allow`` is the list of named exceptions
    to isolation between the networks (from, to, protocol, ports), one
    direction each. Raises PlanError with every problem found.
    """
    defaults = dict(defaults or {})
    allow = defaults.pop('allow', None)
    problems = _Problems()
    nets = []
    seen_names = {}
    if not isinstance(networks, list):
        raise PlanError(['networks: %r must be a list of networks' % (networks,)])
    for index, raw in enumerate(networks):
        net = _normalize_network(raw, index, defaults, prefix, problems)
        if net is None:
            continue
        if net['name'] in seen_names:
            problems.add('network %s' % net['name'], 'listed twice')
            continue
        seen_names[net['name']] = net
        nets.append(net)

    present = [n for n in nets if n['state'] == 'present']
    own_bridges = set(n['bridge'] for n in nets)
    _check_bridges_unique(nets, problems)
    _check_reach(nets, problems)
    _check_overlaps(present, problems)
    checked = [n for n in present if not n.get(_clash.OVERRIDE)]
    if _clash_facts(facts) is None:
        _check_host_routes(checked, facts, own_bridges, problems)
    _check_foreign_bridges(present, facts, own_bridges, problems)
    for net in present:
        _assign_addresses(net, facts, problems)
    _check_clash(checked, facts, problems)
    _check_endpoints_across_networks(present, problems)
    _check_foreign_namespaces(present, facts, problems)
    ports = _check_ports(present, problems)
    exceptions = _check_allow(allow, nets, problems)
    if problems:
        raise PlanError(list(problems))
    out, derived, wanted = _derive(nets, ports, facts, veth_prefix, exceptions)
    # The address families the networks use: the sysctls the role keeps on.
    out['families'] = sorted(set(s['net'].version for n in present for s in n['subnets']))
    _check_with_kinds(derived, problems)
    out['dns'] = _dns_plan(nets, out['report'], problems)
    _check_names_free(wanted, facts, problems)
    if problems:
        raise PlanError(list(problems))
    return out


def _normalize_network(raw, index, defaults, prefix, problems):
    if not isinstance(raw, dict) or not raw.get('name'):
        problems.add('network #%d' % (index + 1), 'needs a name')
        return None
    name = str(raw['name'])
    where = 'network %s' % name
    net = dict(defaults)
    net.update((k, val) for k, val in raw.items() if val is not None)
    net['name'] = name
    net['state'] = raw.get('state') or 'present'
    if raw.get('egress') is not None:  # tenant_networks' word for masquerade
        net['masquerade'] = raw['egress']
    for field in ('masquerade', 'icc', 'isolated', 'host_access', 'purge', 'dns', _clash.OVERRIDE):
        net[field] = _as_bool(net.get(field), where, field, problems)
    if net.get('mtu') is not None:
        net['mtu'] = _as_int(net['mtu'])
    if net['state'] not in ('present', 'absent'):
        problems.add(where, 'state %r must be present or absent' % (net['state'],))
    bridge = raw.get('bridge') or derived_name(prefix, name)
    try:
        v.ifname(bridge, where, 'bridge')
        if bridge in _RESERVED_LINK_NAMES:
            problems.add(where, 'bridge %r is a name the kernel reserves; choose another' % bridge)
    except ValidationError as err:
        problems.add(where, str(err).split(': ', 1)[1])
    net['bridge'] = bridge
    subnets = []
    for field, gw_field in (('subnet', 'gateway'), ('subnet6', 'gateway6')):
        if not raw.get(field):
            if raw.get(gw_field):
                problems.add(where, '%s %r needs %s (it is the gateway of that subnet)'
                             % (gw_field, raw[gw_field], field))
            continue
        subnet = _net(raw[field])
        if subnet is None:
            problems.add(where, '%s %r is not a network address with prefix (e.g. 198.51.100.0/24)'
                         % (field, raw[field]))
            continue
        if field == 'subnet6' and subnet.version != 6:
            problems.add(where, 'subnet6 %s is not an IPv6 network' % subnet)
            continue
        if subnet.num_addresses < 4:
            problems.add(where, '%s %s is too small for a gateway and endpoints' % (field, subnet))
            continue
        gateway = raw.get(gw_field) or str(_first_host(subnet))
        try:
            gw = ipaddress.ip_address(str(gateway))
        except ValueError:
            problems.add(where, '%s %r is not an address' % (gw_field, gateway))
            continue
        if not _is_host_address(gw, subnet) or gw == subnet.broadcast_address:
            problems.add(where, '%s %s is not a host address of %s %s' % (gw_field, gw, field, subnet))
            continue
        subnets.append({'field': field, 'net': subnet, 'gateway': gw})
    if not subnets and net['state'] == 'present':
        problems.add(where, 'needs a subnet')
    families = [s['net'].version for s in subnets]
    if len(set(families)) != len(families):
        problems.add(where, 'subnet and subnet6 must be one IPv4 and one IPv6 network')
    mtu = net.get('mtu')
    if 6 in families and isinstance(mtu, int) and not isinstance(mtu, bool) and 68 <= mtu < _IPV6_MIN_MTU:
        problems.add(where, 'mtu %d is below %d, the minimum for IPv6, and the network has the IPv6 subnet %s'
                     % (mtu, _IPV6_MIN_MTU, next(s['net'] for s in subnets if s['net'].version == 6)))
    net['subnets'] = subnets
    reach = raw.get('reach')
    if reach is not None and (not isinstance(reach, list) or
                              not all(isinstance(r, str) and r for r in reach)):
        problems.add(where, 'reach %r must be a list of network names' % (reach,))
        reach = None
    net['reach'] = list(dict.fromkeys(reach or []))
    net['endpoints'] = []
    names = set()
    endpoints = raw.get('endpoints') or []
    if not isinstance(endpoints, list):
        problems.add(where, 'endpoints %r must be a list' % (endpoints,))
        endpoints = []
    for position, ep in enumerate(endpoints):
        if isinstance(ep, str):
            ep = {'name': ep}
        if not isinstance(ep, dict) or not ep.get('name'):
            problems.add(where, 'endpoint #%d needs a name' % (position + 1))
            continue
        ep = dict((k, val) for k, val in ep.items() if val is not None)
        ep['name'] = str(ep['name'])
        ep.setdefault('state', 'present')
        ep.setdefault('interface', 'eth0')
        ep_where = '%s endpoint %s' % (where, ep['name'])
        ep['default_route'] = _as_bool(ep.get('default_route', True), ep_where, 'default_route', problems)
        if ep['state'] not in ('present', 'absent'):
            problems.add(ep_where, 'state %r must be present or absent' % (ep['state'],))
        try:
            v.netns_name(ep['name'], ep_where, 'name')
            v.ifname(ep['interface'], ep_where, 'interface')
            if ep['interface'] in _RESERVED_LINK_NAMES:
                problems.add(ep_where, 'interface %r is a name the namespace already has or the kernel reserves; '
                                       'choose another (e.g. eth0)' % ep['interface'])
        except ValidationError as err:
            problems.add(ep_where, str(err).split(': ', 1)[1])
        if ep['name'] in names:
            problems.add(ep_where, 'listed twice')
        names.add(ep['name'])
        net['endpoints'].append(ep)
    return net


def _check_bridges_unique(nets, problems):
    seen = {}
    for net in nets:
        if net['bridge'] in seen:
            problems.add('network %s' % net['name'], 'bridge %s is also the bridge of network %s'
                         % (net['bridge'], seen[net['bridge']]))
        seen[net['bridge']] = net['name']


def _check_reach(nets, problems):
    """``reach`` names other networks of the same list, present and not both
    isolated (isolation overrides reach between two isolated bridges)."""
    by_name = dict((n['name'], n) for n in nets)
    for net in nets:
        if net['state'] != 'present':
            continue
        for name in net['reach']:
            where = 'network %s' % net['name']
            other = by_name.get(name)
            if name == net['name']:
                problems.add(where, 'reach %s names the network itself; its endpoints reach each other unless '
                                    'icc is false' % name)
            elif other is None:
                problems.add(where, 'reach %s: no network of that name in this list (known: %s)'
                             % (name, ', '.join(sorted(by_name)) or 'none'))
            elif other['state'] != 'present':
                problems.add(where, 'reach %s: network %s is marked absent' % (name, name))
            elif net.get('isolated') and other.get('isolated'):
                problems.add(where, 'reach %s: both networks are isolated, which drops all traffic between them '
                                    'whatever reach says' % name)


def _check_overlaps(nets, problems):
    for i, a in enumerate(nets):
        for b in nets[i + 1:]:
            for sa in a['subnets']:
                for sb in b['subnets']:
                    if sa['net'].overlaps(sb['net']):
                        problems.add('network %s' % b['name'], '%s %s overlaps %s %s of network %s'
                                     % (sb['field'], sb['net'], sa['field'], sa['net'], a['name']))


def _check_host_routes(nets, facts, own_bridges, problems, label='network'):
    routes = _host_routes(facts, own_bridges)
    for net in nets:
        for sub in net['subnets']:
            for route_net, route in routes:
                if sub['net'].overlaps(route_net):
                    via = ' via %s' % route['via'] if route.get('via') else ''
                    dev = ' dev %s' % route['dev'] if route.get('dev') else ''
                    problems.add('%s %s' % (label, net['name']),
                                 '%s %s collides with the host route %s%s%s; using it would cut the host off '
                                 'from that network' % (sub['field'], sub['net'], route['dest'], via, dev))


def _clash_facts(facts):
    """The host namespace's routing as the clash check reads it (net_info's
    ``clash`` section), or None when it was not gathered."""
    return ((facts or {}).get('clash') or {}).get('')


def _check_clash(nets, facts, problems):
    """The modules' clash check (one set of rules, see _clash), made on the
    controller before the first change: every bridge subnet and endpoint
    address the role adds, against the host's routes in every table, its
    policy rules, its default gateways and the address the controller
    connects from. Like the modules, only what is not in place yet is
    checked; ``allow_route_overlap: true`` on a network skips it."""
    routing = _clash_facts(facts)
    if routing is None:
        return
    in_place = dict((b['name'], set(b.get('addresses') or []))
                    for b in ((facts or {}).get('managed') or {}).get('bridge', []) if not b.get('netns'))
    existing = _existing_endpoints(facts)
    for net in nets:
        where = 'network %s' % net['name']
        view = _clash.View(routing, near=[net['bridge']], label='the host', owner='network')
        refused = set()
        for sub in net['subnets']:
            if '%s/%d' % (sub['gateway'], sub['net'].prefixlen) in in_place.get(net['bridge'], ()):
                continue
            try:
                _clash.check_entry(view, where, sub['field'], str(sub['net']), text=str(sub['net']))
            except ConflictError as err:
                problems.append(str(err))
                refused.add(sub['net'])
        for ep in net['endpoints']:
            if ep['state'] != 'present':
                continue
            have = existing.get((ep['name'], net['bridge']), {}).get('addresses', [])
            for cidr in ep.get('_addresses', []):
                network = ipaddress.ip_interface(cidr).network
                if cidr in have or network in refused:
                    continue  # in place already, or its subnet is refused above
                field = 'address6' if network.version == 6 and any(
                    s['field'] == 'subnet6' and s['net'] == network for s in net['subnets']) else 'address'
                try:
                    _clash.check_entry(view, '%s endpoint %s' % (where, ep['name']), field, cidr,
                                       text=cidr)
                except ConflictError as err:
                    problems.append(str(err))


def _check_foreign_bridges(nets, facts, own_bridges, problems):
    """Subnets of bridges the collection manages for others (another role's networks)."""
    for bridge in ((facts or {}).get('managed') or {}).get('bridge', []):
        if bridge['name'] in own_bridges or bridge.get('netns'):
            continue
        for cidr in bridge.get('addresses') or []:
            other = ipaddress.ip_interface(cidr).network
            for net in nets:
                for sub in net['subnets']:
                    if sub['net'].overlaps(other):
                        problems.add('network %s' % net['name'], '%s %s overlaps %s on bridge %s'
                                     % (sub['field'], sub['net'], other, bridge['name']))


def _check_foreign_namespaces(nets, facts, problems, label='network'):
    foreign = _foreign_namespaces(facts)
    if not foreign:
        return
    for net in nets:
        for ep in net['endpoints']:
            if ep['state'] == 'present' and ep['name'] in foreign:
                problems.add('%s %s endpoint %s' % (label, net['name'], ep['name']),
                             'name %s: a network namespace of that name exists and was not made by '
                             'hostnet.provision; it is left alone: choose another endpoint name' % ep['name'])


def _on_bridge(facts, bridge, listed):
    """Managed endpoints on ``bridge`` whose namespace is not in ``listed``."""
    return [veth for veth in _managed_veths(facts)
            if veth.get('bridge') == bridge and (veth.get('peer') or {}).get('netns') not in listed]


def _assign_addresses(net, facts, problems):
    """The addresses listed endpoints already have first, then explicit ones,
    then the lowest free. Every address a managed endpoint on this bridge
    holds is taken, listed or not, present or going: never given twice."""
    where = 'network %s' % net['name']
    existing = _existing_endpoints(facts)
    listed = set(ep['name'] for ep in net['endpoints'])
    going = set(ep['name'] for ep in net['endpoints'] if ep['state'] != 'present')
    held = []  # (address, holder) of endpoints that are not given an address here
    for veth in _on_bridge(facts, net['bridge'], listed - going):
        peer = veth.get('peer') or {}
        label = 'endpoint %s (%s)' % (peer.get('netns'), 'being removed' if peer.get('netns') in going
                                      else 'kept, not listed')
        held.extend((ipaddress.ip_interface(a).ip, label) for a in peer.get('addresses') or [])
    for sub in net['subnets']:
        field = 'address' if sub['field'] == 'subnet' else 'address6'
        taken = {sub['gateway']: 'the gateway'}
        taken.update((addr, holder) for addr, holder in held if addr in sub['net'])
        # Listed endpoints keep what they have (unless given another address):
        # reserved before anyone is given an explicit or a new address.
        keeps = {}
        for ep in net['endpoints']:
            if ep['state'] != 'present' or ep.get(field):
                continue
            have = existing.get((ep['name'], net['bridge']), {}).get('addresses', [])
            addr = next((ipaddress.ip_interface(a).ip for a in have
                         if ipaddress.ip_interface(a).ip in sub['net']), None)
            if addr is not None and addr not in taken:
                taken[addr] = 'endpoint %s' % ep['name']
                keeps[ep['name']] = addr
        pending = []
        for ep in net['endpoints']:
            if ep['state'] != 'present':
                continue
            ep_where = '%s endpoint %s' % (where, ep['name'])
            wanted = ep.get(field)
            if not wanted:
                if ep['name'] in keeps:
                    ep.setdefault('_addresses', []).append('%s/%d' % (keeps[ep['name']], sub['net'].prefixlen))
                else:
                    pending.append(ep)
                continue
            try:
                addr = ipaddress.ip_address(str(wanted).split('/', maxsplit=1)[0])
            except ValueError:
                problems.add(ep_where, '%s %r is not an address' % (field, wanted))
                continue
            if not _is_host_address(addr, sub['net']) or addr == sub['net'].broadcast_address:
                problems.add(ep_where, '%s %s is outside %s %s' % (field, addr, sub['field'], sub['net']))
                continue
            if addr in taken:
                problems.add(ep_where, '%s %s is already taken by %s' % (field, addr, taken[addr]))
                continue
            taken[addr] = 'endpoint %s' % ep['name']
            ep.setdefault('_addresses', []).append('%s/%d' % (addr, sub['net'].prefixlen))
        first, last = _first_host(sub['net']), _last_host(sub['net'])
        for ep in pending:
            addr = _lowest_free(first, last, taken)
            if addr is None:
                problems.add('%s endpoint %s' % (where, ep['name']), '%s %s has no free address left'
                             % (sub['field'], sub['net']))
                continue
            taken[addr] = 'endpoint %s' % ep['name']
            ep.setdefault('_addresses', []).append('%s/%d' % (addr, sub['net'].prefixlen))


def _check_endpoints_across_networks(nets, problems):
    """One namespace on two networks needs two interface names and one default route."""
    seen = {}
    routes = {}
    for net in nets:
        for ep in net['endpoints']:
            if ep['state'] != 'present':
                continue
            key = (ep['name'], ep['interface'])
            if key in seen:
                problems.add('network %s endpoint %s' % (net['name'], ep['name']),
                             'interface %s is also used on network %s; give one of them another interface'
                             % (ep['interface'], seen[key]))
            seen[key] = net['name']
            if ep.get('default_route', True):
                if ep['name'] in routes:
                    problems.add('network %s endpoint %s' % (net['name'], ep['name']),
                                 'already has its default route through network %s; set default_route: false '
                                 'on one of them' % routes[ep['name']])
                routes[ep['name']] = net['name']


def _port_range(value):
    """host_port as (first, last), or None for "auto"."""
    if str(value).strip() == 'auto':
        return None
    first, _sep, last = str(value).partition('-')
    return int(first), int(last or first)


def _check_ports(nets, problems):
    """Collect published ports; refuse a host port published twice."""
    published = []  # (protocol, host_ip, (first, last), owner)
    ports = []
    for net in nets:
        for ep in net['endpoints']:
            if ep['state'] != 'present':
                continue
            owner = 'endpoint %s of network %s' % (ep['name'], net['name'])
            entries = ep.get('ports') or []
            if not isinstance(entries, list):
                problems.add('network %s endpoint %s' % (net['name'], ep['name']),
                             'ports %r must be a list' % (entries,))
                continue
            for port in entries:
                if isinstance(port, (int, str)) and not isinstance(port, bool):
                    port = {'host_port': port, 'port': port}
                entry = _port_entry(net, ep, port, problems)
                if entry is None:
                    continue
                span = _port_range(entry['host_port'])
                for protocol, host_ip, other, other_owner in published:
                    if span and protocol == entry['protocol'] and span[0] <= other[1] and other[0] <= span[1] \
                            and (host_ip is None or entry.get('host_ip') is None or host_ip == entry.get('host_ip')):
                        problems.add('network %s endpoint %s' % (net['name'], ep['name']),
                                     'host port %s/%s is also published by %s'
                                     % (entry['host_port'], protocol, other_owner))
                if span:
                    published.append((entry['protocol'], entry.get('host_ip'), span, owner))
                entry['_where'] = 'network %s endpoint %s' % (net['name'], ep['name'])
                entry['_bridge'] = net['bridge']
                ports.append(entry)
    return ports


def _port_entry(net, ep, port, problems):
    where = 'network %s endpoint %s' % (net['name'], ep['name'])
    if not isinstance(port, dict) or port.get('host_port') in (None, '') or port.get('port') in (None, ''):
        problems.add(where, 'port %r needs host_port and port' % (port,))
        return None
    host_port = _as_int(port['host_port'])
    try:
        _port_range(host_port)
    except ValueError:
        problems.add(where, 'host_port %r must be a port, a range like 8000-8010, or auto' % (port['host_port'],))
        return None
    if isinstance(host_port, bool):
        problems.add(where, 'host_port %r must be a port, a range like 8000-8010, or auto' % (host_port,))
        return None
    protocol = port.get('protocol') or 'tcp'
    if protocol not in ('tcp', 'udp', 'sctp'):
        problems.add(where, 'protocol %r must be tcp, udp or sctp' % (protocol,))
        return None
    host_ip = port.get('host_ip')
    family = None
    if host_ip:
        try:
            family = ipaddress.ip_address(str(host_ip)).version
        except ValueError:
            problems.add(where, 'host_ip %r is not an address' % (host_ip,))
            return None
    dest = next((a for a in ep.get('_addresses', [])
                 if family is None or ipaddress.ip_interface(a).version == family), None)
    if dest is None:
        if family:
            problems.add(where, 'has no IPv%d address to publish port %s of host_ip %s to'
                         % (family, port.get('host_port'), host_ip))
        else:
            problems.add(where, 'has no address to publish port %s to' % (port.get('host_port'),))
        return None
    entry = {'protocol': protocol, 'host_port': host_port, 'destination': dest.split('/')[0],
             'port': _as_int(port['port'])}
    if host_ip:
        entry['host_ip'] = host_ip
    elif str(host_port).strip() != 'auto':
        # A dual-stack endpoint is published over both families (the IPv6
        # address as destination6: portmap makes one mapping per family).
        dest6 = next((a for a in ep.get('_addresses', []) if ipaddress.ip_interface(a).version == 6), None)
        if dest6 is not None and ipaddress.ip_interface(dest).version == 4:
            entry['destination6'] = dest6.split('/')[0]
    return entry


def _check_allow(allow, nets, problems):
    """The named exceptions, checked: {network name: [(bridge option, as
    given)]} for each source network (None when no list was given)."""
    if allow is None:
        return None
    if not isinstance(allow, list):
        problems.append('allow: %r must be a list of exceptions (name, from, to, protocol, ports)' % (allow,))
        return {}
    by_name = dict((n['name'], n) for n in nets)
    out, seen = {}, set()
    for index, raw in enumerate(allow):
        label = 'allow %s' % (raw.get('name') if isinstance(raw, dict) and raw.get('name') else '#%d' % (index + 1))
        try:
            entry = allow_entry(raw, 'allow', bridge=False)
        except ValidationError as err:
            problems.append(str(err).split(': ', 1)[1] if str(err).startswith('allow: ') else str(err))
            continue
        if entry['name'] in seen:
            problems.add(label, 'name %r is listed twice' % entry['name'])
            continue
        seen.add(entry['name'])
        ends = {}
        for field in ('from', 'to'):
            value = raw.get(field)
            net = by_name.get(value) if isinstance(value, str) else None
            if net is None:
                problems.add(label, '%s %r is not one of the networks listed (%s)'
                             % (field, value, ', '.join(sorted(by_name)) or 'none'))
            elif net['state'] != 'present':
                problems.add(label, '%s %r is a network marked absent' % (field, value))
            else:
                ends[field] = net
        if len(ends) < 2:
            continue
        if ends['from'] is ends['to']:
            problems.add(label, 'from and to are both %r; endpoints of one network always reach each other'
                         % raw['from'])
            continue
        given = dict(entry, to=ends['to']['name'])
        # The module's option as a user would write it: unset fields left out.
        bridge = dict((k, val) for k, val in entry.items() if val not in (None, []))
        bridge['to'] = ends['to']['bridge']
        out.setdefault(ends['from']['name'], []).append((bridge, given))
    for name, entries in out.items():
        try:
            allow_list([bridge for bridge, _given in entries], by_name[name]['bridge'], 'network %s' % name)
        except ValidationError as err:
            problems.append(str(err))
    return out


def _derive(nets, ports, facts, veth_prefix, exceptions=None):
    """Each module's config: what is present, and what goes.

    Returns (plan, derived, wanted): the plan the role feeds to the modules,
    the same configs with where each came from (for the kinds' checks), and
    the host-namespace names the plan creates (for the kernel-state check).
    """
    out = {'netns': [], 'netns_absent': [], 'bridges': [], 'bridges_absent': [], 'veths': [],
           'veths_absent': [], 'ports': [], 'ports_absent': [], 'report': [], 'warnings': []}
    derived = {'netns': [], 'bridge': [], 'veth': [], 'portmap': []}
    wanted = []
    ours = set()  # every endpoint address of these networks that is present or going
    used = set()
    for net in nets:
        if net['state'] == 'present':
            for ep in net['endpoints']:
                if ep['state'] == 'present':
                    used.add(ep['name'])
    existing = _existing_endpoints(facts)
    removed_veths = set()
    for net in nets:
        where = 'network %s' % net['name']
        report = {'name': net['name'], 'bridge': net['bridge'], 'state': net['state'],
                  'icc': net.get('icc', True) is not False, 'isolated': bool(net.get('isolated')),
                  'host_access': net.get('host_access', True) is not False,
                  'purge': bool(net.get('purge')),
                  'subnets': [str(s['net']) for s in net['subnets']],
                  'gateways': [str(s['gateway']) for s in net['subnets']], 'endpoints': [], 'kept': []}
        out['report'].append(report)
        if net['state'] == 'absent':
            out['bridges_absent'].append({'name': net['bridge']})
        else:
            # A MAC of its own: a bridge without one takes its lowest port's,
            # so an endpoint joining or leaving would change the gateway's MAC
            # under every endpoint's neighbour cache (traffic to the gateway,
            # its resolver included, lost until they re-resolve it).
            bridge = {'name': net['bridge'], 'mac': bridge_mac(net['bridge']),
                      'addresses': ['%s/%d' % (s['gateway'], s['net'].prefixlen) for s in net['subnets']]}
            for field in ('mtu', 'masquerade', 'icc', 'isolated', 'host_access'):
                if net.get(field) is not None:
                    bridge[field] = net[field]
            if net['reach']:
                bridges = dict((n['name'], n['bridge']) for n in nets)
                bridge['reach'] = [bridges[name] for name in net['reach']]
                report['reach'] = list(net['reach'])
            if exceptions is not None:
                mine = exceptions.get(net['name'], [])
                bridge['allow'] = [b for b, _given in mine]
                report['allow'] = [given for _b, given in mine]
            # DNS to the gateway (the network's resolver) passes host_access: false;
            # closed again when dns is switched off.
            if net.get('dns'):
                bridge['dns_access'] = True
            elif any(b.get('name') == net['bridge'] and b.get('dns_access')
                     for b in ((facts or {}).get('managed') or {}).get('bridge', []) or []):
                bridge['dns_access'] = False
            if net.get(_clash.OVERRIDE):
                bridge[_clash.OVERRIDE] = True
            out['bridges'].append(bridge)
            derived['bridge'].append((where, bridge))
            wanted.append((where, 'bridge', net['bridge'], 'bridge'))
        for ep in net['endpoints']:
            ep_where = '%s endpoint %s' % (where, ep['name'])
            host_if = ep.get('host_interface') or existing.get((ep['name'], net['bridge']), {}).get('host_if') \
                or derived_name(veth_prefix, net['name'], ep['name'])
            had = existing.get((ep['name'], net['bridge']), {}).get('addresses', [])
            ours.update(a.split('/')[0] for a in had + ep.get('_addresses', []))
            if net['state'] == 'absent' or ep['state'] == 'absent':
                out['veths_absent'].append({'name': host_if})
                removed_veths.add(host_if)
                if ep['name'] not in used and {'name': ep['name']} not in out['netns_absent']:
                    out['netns_absent'].append({'name': ep['name']})
                continue
            if {'name': ep['name']} not in out['netns']:
                out['netns'].append({'name': ep['name']})
                derived['netns'].append((ep_where, {'name': ep['name']}))
            peer = {'name': ep['interface'], 'netns': ep['name'], 'addresses': ep['_addresses']}
            if ep.get('default_route', True):
                peer['gateway'] = [str(s['gateway']) for s in net['subnets']]
            if net.get('mtu'):
                peer['mtu'] = net['mtu']
            veth = {'name': host_if, 'bridge': net['bridge'], 'peer': peer}
            if net.get('icc') is not None:
                # Check mode: the icc the bridge task gives the bridge (see the veth module).
                veth['bridge_icc'] = net['icc']
            if net.get('mtu'):
                veth['mtu'] = net['mtu']
            if net.get(_clash.OVERRIDE):
                veth[_clash.OVERRIDE] = True
            out['veths'].append(veth)
            derived['veth'].append((ep_where, veth))
            wanted.append((ep_where, 'host_interface', host_if, 'veth'))
            report['endpoints'].append({'name': ep['name'], 'interface': ep['interface'], 'host_interface': host_if,
                                        'addresses': ep['_addresses'],
                                        'ports': [_public(p) for p in ports if p['destination'] in
                                                  [a.split('/')[0] for a in ep['_addresses']]]})
            if ep.get('aliases'):
                report['endpoints'][-1]['aliases'] = [str(a) for a in _as_list(ep['aliases'])]
        # Endpoints the collection made on this bridge that are no longer listed.
        listed = set(ep['name'] for ep in net['endpoints'])
        for veth in _on_bridge(facts, net['bridge'], listed):
            peer = veth.get('peer') or {}
            addresses = list(peer.get('addresses') or [])
            entry = {'name': peer.get('netns'), 'host_interface': veth['name'], 'addresses': addresses}
            if net['state'] == 'absent' or net.get('purge'):
                out['veths_absent'].append({'name': veth['name']})
                removed_veths.add(veth['name'])
                ours.update(a.split('/')[0] for a in addresses)
                if peer.get('netns') and peer['netns'] not in used \
                        and {'name': peer['netns']} not in out['netns_absent']:
                    out['netns_absent'].append({'name': peer['netns']})
                continue
            report['kept'].append(entry)
            out['warnings'].append('%s: endpoint %s (%s, %s) is kept (not listed); its address stays reserved. '
                                   'Set purge: true on the network to remove endpoints no longer listed'
                                   % (where, peer.get('netns'), veth['name'], ' '.join(addresses) or 'no address'))
    # A namespace goes only when no endpoint that stays is in it.
    staying = set((v.get('peer') or {}).get('netns') for v in _managed_veths(facts) if v['name'] not in removed_veths)
    out['netns_absent'] = [n for n in out['netns_absent'] if n['name'] not in staying]
    # Each bridge's ports once the veth task has run: portmap predicts
    # their hairpin mode in check mode from them, before they exist.
    bridge_ports = {}
    for veth in _managed_veths(facts):
        if veth['name'] not in removed_veths and veth.get('bridge'):
            bridge_ports.setdefault(veth['bridge'], set()).add(veth['name'])
    for veth in out['veths']:
        bridge_ports.setdefault(veth['bridge'], set()).add(veth['name'])
    for port in ports:
        public = _public(port)
        public['bridge'] = {'name': port['_bridge'], 'ports': sorted(bridge_ports.get(port['_bridge'], ()))}
        out['ports'].append(public)
        derived['portmap'].append((port['_where'], public))
    # Published ports of these endpoints that are no longer wanted.
    wanted_ports = set(_port_key(p) for p in ports)
    for port in ((facts or {}).get('managed') or {}).get('portmap', []):
        if port.get('destination') in ours and not port.get('netns') and _port_key(port) not in wanted_ports:
            out['ports_absent'].append(port)
    return out, derived, wanted


def _public(port):
    return dict((k, val) for k, val in port.items() if not k.startswith('_'))


def _port_key(port):
    return (port.get('protocol') or 'tcp', port.get('host_ip') or None, str(port.get('host_port')))


# -- names (the dns module) -------------------------------------------------------------

_DNS_ENDPOINT_FIELDS = ('dns', 'dns_search', 'dns_options', 'extra_hosts')


def _extra_hosts(value, where, problems):
    """``docker run --add-host`` entries: ``NAME:ADDRESS`` or {name(s), address}."""
    out = []
    for entry in value if isinstance(value, list) else [value]:
        if isinstance(entry, str) and ':' in entry:
            name, _sep, address = entry.partition(':')
            out.append({'address': address, 'names': [name]})
        elif isinstance(entry, dict) and entry.get('address') and (entry.get('name') or entry.get('names')):
            names = entry.get('names') or [entry['name']]
            out.append({'address': entry['address'], 'names': names if isinstance(names, list) else [names]})
        else:
            problems.add(where, 'extra_hosts %r must be NAME:ADDRESS or {name, address}' % (entry,))
    return out


def _as_list(value):
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _dns_plan(nets, reports, problems):
    """The dns module's config: one entry per network (absent or without a
    resolver when the network has no ``dns``, so that switching it off or
    removing the network removes its resolver and files).

    A namespace gets its resolver files from the network its default route
    goes through (the one network that may give it one).
    """
    out = []
    for net, report in zip(nets, reports):
        where = 'network %s' % net['name']
        resolver = bool(net.get('dns')) and net['state'] == 'present'
        entry = {'name': net['name'], 'state': net['state'], 'resolver': resolver,
                 'listen': [str(s['gateway']) for s in net['subnets']], 'hosts': [], 'endpoints': []}
        for field, key in (('dns_upstreams', 'upstreams'), ('dns_domain', 'domain')):
            if net.get(field):
                entry[key] = net[field]
        if net['state'] == 'present':
            by_name = dict((ep['name'], ep) for ep in net['endpoints'])
            for ep_report in report['endpoints']:
                ep = by_name[ep_report['name']]
                names = [ep['name']] + [str(a) for a in _as_list(ep.get('aliases'))]
                for address in ep_report['addresses'] if resolver else []:
                    entry['hosts'].append({'address': address.split('/')[0], 'names': names})
                own = {'netns': ep['name'], 'nameservers': _as_list(ep.get('dns')),
                       'search': _as_list(ep.get('dns_search')), 'options': _as_list(ep.get('dns_options')),
                       'hosts': _extra_hosts(ep.get('extra_hosts') or [], '%s endpoint %s' % (where, ep['name']),
                                             problems)}
                if ep.get('default_route', True) and (resolver or any(ep.get(f) for f in _DNS_ENDPOINT_FIELDS)):
                    entry['endpoints'].append(own)
            for kept in (k for k in report['kept'] if k.get('name')):
                for address in kept['addresses'] if resolver else []:
                    entry['hosts'].append({'address': address.split('/')[0], 'names': [kept['name']]})
                entry['endpoints'].append({'netns': kept['name'], 'keep': True})
        if resolver:
            report['dns'] = entry['listen']
        try:
            _dns.normalize([entry])
        except ValidationError as err:
            problems.add(where, str(err))
        out.append(entry)
    return out


# -- overlay (overlay_network) --------------------------------------------------------


def _underlay(facts, dev, local_ip, where, problems):
    """The underlay device (given, or the one holding ``local_ip``) and its MTU.

    Returns (dev, mtu); either may be None when the host's links or
    addresses were not read. A local_ip the host does not hold, or a device
    it does not have, is a problem."""
    facts = facts or {}
    addresses = (facts.get('addresses') or {}).get('')
    links = _host_links(facts)
    if not dev and addresses is not None:
        holders = sorted(name for name, addrs in addresses.items()
                         if any(_same_ip(a, local_ip) for a in addrs or []))
        if not holders:
            problems.add(where, 'local_ip %s is not an address of this host; set overlay_network_local_ip to one of '
                                'its addresses, or overlay_network_underlay_interface' % local_ip)
            return None, None
        dev = holders[0]
    if dev and links is not None and dev not in links:
        problems.add(where, 'dev %s (overlay_network_underlay_interface) is not an interface of this host' % dev)
        return None, None
    if dev and addresses is not None and dev in addresses and \
            not any(_same_ip(a, local_ip) for a in addresses[dev] or []):
        problems.add(where, 'local_ip %s is not an address of dev %s (overlay_network_local_ip and '
                            'overlay_network_underlay_interface disagree)' % (local_ip, dev))
    mtu = (links or {}).get(dev, {}).get('mtu') if dev else None
    return dev, mtu


def _same_ip(cidr, address):
    try:
        return ipaddress.ip_interface(str(cidr)).ip == ipaddress.ip_address(str(address))
    except ValueError:
        return False


def _block(subnet, bits, index):
    """Block ``index`` of ``subnet`` cut into 2**bits, computed, not listed."""
    size = subnet.num_addresses >> bits
    start = int(subnet.network_address) + index * size
    return ipaddress.ip_network((start, subnet.prefixlen + bits))


# The name overlay_mac takes for a host's VXLAN device: no endpoint can have
# it (a namespace name has no "/").
OVERLAY_DEVICE = '/vxlan'


def bridge_mac(name):
    """The MAC of a bridge network's bridge: derived from its name (stable
    across runs and hosts), locally administered, unicast."""
    digest = hashlib.sha256(('bridge/%s' % name).encode('utf-8')).digest()
    return ':'.join('%02x' % octet for octet in (0x02,) + tuple(bytearray(digest[:5])))


def overlay_mac(vni, index, name=''):
    """The MAC every host computes for one interface of an overlay: the
    bridge of host block ``index`` (``name`` empty), its VXLAN device
    (``name`` OVERLAY_DEVICE) or its endpoint ``name``. Locally
    administered, unicast, stable across runs; the planners refuse the
    (unlikely) collision of two of them."""
    digest = hashlib.sha256(('%s/%s/%s' % (vni, index, name)).encode('utf-8')).digest()
    return ':'.join('%02x' % octet for octet in (0x02,) + tuple(bytearray(digest[:5])))


def overlay_underlay(facts, local_ip=None, dev=None, state='present'):
    """This host's underlay as the other hosts of the overlay need it, read
    from its ``net_info`` report before any change: the address (given, or
    the first of ``dev``), the device holding it and the device's MTU.
    Problems are left to plan_overlay, which names them."""
    addresses = ((facts or {}).get('addresses') or {}).get('') or {}
    if not local_ip and dev:
        first = next(iter(addresses.get(dev) or []), None)
        local_ip = str(first).split('/', 1)[0] if first else None
    found, mtu = (dev or None), None
    if local_ip:
        found, mtu = _underlay(facts, dev or None, local_ip, 'overlay', _Problems())
    return {'local_ip': local_ip or None, 'dev': found, 'mtu': mtu, 'state': state or 'present'}


def _overlay_subnets(settings, bits, where, problems):
    """The overlay's subnets: ``subnet`` and/or ``subnet6``, one per IP version."""
    nets = []
    for field in ('subnet', 'subnet6'):
        raw = settings.get(field)
        if raw in (None, ''):
            continue
        net = _net(raw)
        if net is None:
            problems.add(where, '%s %r is not a network address with prefix' % (field, raw))
            continue
        if field == 'subnet6' and net.version != 6:
            problems.add(where, 'subnet6 %s is not an IPv6 network' % net)
            continue
        if any(n.version == net.version for n in nets):
            problems.add(where, 'subnet %s and subnet6 %s are both IPv%d: give one subnet per IP version'
                         % (nets[0], net, net.version))
            continue
        if net.prefixlen + bits > net.max_prefixlen - 2:
            problems.add(where, '%s %s is too small for %d host blocks (index_bits %d)' % (field, net, 2 ** bits, bits))
        nets.append(net)
    if all(settings.get(f) in (None, '') for f in ('subnet', 'subnet6')):
        problems.add(where, 'needs a subnet: overlay_network_subnet, overlay_network_subnet6 or both')
    return sorted(nets, key=lambda n: n.version)


def _overlay_mtu(mtu, members, where, problems):
    """One MTU for the whole overlay: the given one, checked against every
    present host's underlay, or the largest that fits the smallest."""
    limits = []
    for member in members:
        underlay_mtu = _as_int(member.get('underlay_mtu'))
        if member.get('state') == 'absent' or not isinstance(underlay_mtu, int) or isinstance(underlay_mtu, bool) \
                or underlay_mtu <= 0:
            continue
        family = ipaddress.ip_address(member['local_ip']).version
        limits.append((underlay_mtu - _VXLAN_OVERHEAD[family], member['name'], member.get('underlay_dev') or '?',
                       underlay_mtu, family))
    if not limits:
        return mtu
    limit, name, dev, underlay_mtu, family = min(limits)
    if mtu is None:
        # Everything on the overlay bridge, on every host, gets one MTU, or
        # large packets towards the smallest underlay are silently lost.
        return limit
    if isinstance(mtu, int) and not isinstance(mtu, bool) and mtu > limit:
        problems.add(where, 'mtu %s is larger than the underlay allows: on host %s dev %s has MTU %s, minus %d bytes '
                            'of VXLAN over IPv%d leaves %s' % (mtu, name, dev, underlay_mtu, _VXLAN_OVERHEAD[family],
                                                               family, limit))
    return mtu


def _overlay_members(members, bits, where, problems):
    """Each member with its underlay address and host index checked; this
    host's own entry is looked up by the caller."""
    indexes, out = {}, []
    for member in members or []:
        mwhere = '%s host %s' % (where, member['name'])
        try:
            local = ipaddress.ip_address(member.get('local_ip'))
        except ValueError:
            problems.add(mwhere, 'has no usable underlay address (local_ip %r): set overlay_network_local_ip or '
                                 'overlay_network_underlay_interface' % (member.get('local_ip'),))
            continue
        index = _as_int(member.get('index'))
        if index in (None, ''):
            index = int(local) % (2 ** bits)
        if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < 2 ** bits:
            problems.add(mwhere, 'host index %r is outside 0..%d' % (member.get('index'), 2 ** bits - 1))
            continue
        if index in indexes:
            problems.add(mwhere, 'host index %d is also used by %s; set overlay_network_host_index on one of them'
                         % (index, indexes[index]))
        indexes[index] = member['name']
        out.append(dict(member, index=index, local_ip=str(local), state=member.get('state') or 'present'))
    return out


def _overlay_endpoint_names(endpoints_in, where, problems):
    if isinstance(endpoints_in, str) or not isinstance(endpoints_in or [], list):
        problems.add(where, 'endpoints %r must be a list of names' % (endpoints_in,))
        return []
    seen, out = set(), []
    for ep_name in endpoints_in or []:
        ep_where = '%s endpoint %s' % (where, ep_name)
        if not isinstance(ep_name, str):
            problems.add(where, 'endpoint %r is not a name' % (ep_name,))
            continue
        try:
            v.netns_name(ep_name, ep_where, 'name')
        except ValidationError as err:
            problems.add(ep_where, str(err).split(': ', 1)[1])
        if ep_name in seen:
            problems.add(ep_where, 'name %s is listed twice in overlay_network_endpoints' % ep_name)
        seen.add(ep_name)
        out.append(ep_name)
    return out


def _overlay_addresses(subnets, bits, index, bridge, endpoints_in, facts, where, problems):
    """Per subnet: this host's block, the bridge's address (the block's
    first) and one address per endpoint (kept, else the lowest free),
    computed, never listed."""
    existing = _existing_endpoints(facts)
    kept = list(_on_bridge(facts, bridge, set(endpoints_in)))
    blocks, bridge_addresses = [], []
    addresses = dict((ep, []) for ep in endpoints_in)
    for net in subnets:
        block = _block(net, bits, index)
        first = block.network_address + 1 if block.network_address == net.network_address else block.network_address
        last = block.broadcast_address
        if net.version == 4 and last == net.broadcast_address:
            last -= 1
        taken = {first: 'the bridge'}
        for veth in kept:
            for cidr in (veth.get('peer') or {}).get('addresses') or []:
                taken[ipaddress.ip_interface(cidr).ip] = 'endpoint %s (kept, not listed)' % veth['peer'].get('netns')
        pending = []
        for ep_name in endpoints_in:
            have = existing.get((ep_name, bridge), {}).get('addresses', [])
            addr = next((ipaddress.ip_interface(a).ip for a in have if ipaddress.ip_interface(a).ip in block), None)
            if addr is None or addr in taken:
                pending.append(ep_name)
                continue
            taken[addr] = ep_name
            addresses[ep_name].append((addr, net))
        for ep_name in pending:
            addr = _lowest_free(first, last, taken)
            if addr is None:
                problems.add(where, 'block %s has no free address for endpoint %s' % (block, ep_name))
                continue
            taken[addr] = ep_name
            addresses[ep_name].append((addr, net))
        blocks.append(block)
        bridge_addresses.append((first, net))
    return blocks, bridge_addresses, addresses


def _cidrs(pairs):
    return ['%s/%d' % (addr, net.prefixlen) for addr, net in sorted(pairs, key=lambda p: p[1].version)]


def plan_overlay(settings, host, members, facts=None):
    """One host's share of an overlay network (VXLAN + bridge + endpoints).

    ``settings``: name, vni, subnet and/or subnet6, port, mtu, dev,
    index_bits, endpoints; ``host``: this host's inventory name;
    ``members``: every host of the peers group as {name, local_ip, index
    (optional), endpoints (list of names), underlay_mtu, underlay_dev,
    state}, read on every host before any change.

    Each host owns one block of each subnet (block ``index``), so endpoint
    addresses are unique across hosts without a central server; the index
    is given or derived from the underlay address, and collisions are
    refused. The first address of a host's block goes on its bridge. The
    MTU is one for the whole overlay: the smallest underlay's, or the given
    one checked against every host. The bridge and the endpoints get MACs
    every host computes (overlay_mac), for overlay_forwarding; so does the
    VXLAN device, which no frame is sent to but whose MAC the local bridge
    delivers to itself, so it may be no other interface's MAC.
    """
    problems = _Problems()
    name = settings.get('name')
    where = 'overlay %s' % name
    if not name:
        problems.add('overlay', 'needs a name')
    vni = _as_int(settings.get('vni'))
    if not isinstance(vni, int) or isinstance(vni, bool) or not 1 <= vni <= 16777215:
        problems.add(where, 'vni %r must be a number from 1 to 16777215' % (settings.get('vni'),))
    port = settings.get('port')
    port = 4789 if port in (None, '') else _as_int(port)
    mtu = settings.get('mtu')
    mtu = None if mtu in (None, '', 0, '0') else _as_int(mtu)
    bits = _as_int(settings.get('index_bits'))
    bits = 4 if bits in (None, '') else bits
    if not isinstance(bits, int) or isinstance(bits, bool) or not 0 <= bits <= 64:
        problems.add(where, 'index_bits %r must be a number from 0 to 64' % (settings.get('index_bits'),))
        bits = 4
    subnets = _overlay_subnets(settings, bits, where, problems)
    members = _overlay_members(members, bits, where, problems)
    me = next((m for m in members if m['name'] == host), None)
    if me is None and not problems:
        problems.add(where, 'host %s is not in the peers group' % host)
    device = derived_name('vx-', str(name or ''))
    bridge = derived_name('ov-', str(name or ''))
    for label, value in (('device', device), ('bridge', bridge)):
        try:
            v.ifname(value, where, label)
        except ValidationError as err:
            problems.add(where, str(err).split(': ', 1)[1])
    # This host's endpoints: from the settings (role parameters, play or host
    # vars alike), else from its member entry (host vars).
    endpoints_in = settings.get('endpoints')
    if endpoints_in is None:
        endpoints_in = (me or {}).get('endpoints')
    endpoints_in = _overlay_endpoint_names(endpoints_in, where, problems)
    dev = None
    if me is not None:
        dev, underlay_mtu = _underlay(facts, settings.get('dev') or None, me['local_ip'], where, problems)
        if underlay_mtu:  # this host's own reading wins over what the members say
            me.update(underlay_mtu=underlay_mtu, underlay_dev=dev)
    if subnets and me is not None:
        fields = dict((_net(settings.get(f)), f) for f in ('subnet', 'subnet6') if settings.get(f))
        _check_host_routes([{'name': name, 'subnets': [{'field': fields.get(n, 'subnet'), 'net': n} for n in subnets]}],
                           facts, {bridge}, problems, 'overlay')
    if problems:
        raise PlanError(list(problems))

    present = [m for m in members if m['state'] != 'absent']
    mtu = _overlay_mtu(mtu, present, where, problems)
    if any(n.version == 6 for n in subnets) and isinstance(mtu, int) and not isinstance(mtu, bool) \
            and 68 <= mtu < _IPV6_MIN_MTU:
        problems.add(where, 'mtu %d is below %d, the minimum for the IPv6 subnet %s'
                     % (mtu, _IPV6_MIN_MTU, next(n for n in subnets if n.version == 6)))

    blocks, bridge_addresses, addresses = _overlay_addresses(subnets, bits, me['index'], bridge, endpoints_in, facts,
                                                             '%s host %s' % (where, host), problems)
    bridge_mac = overlay_mac(vni, me['index'])
    device_mac = overlay_mac(vni, me['index'], OVERLAY_DEVICE)
    macs = {bridge_mac: 'the bridge'}
    if device_mac in macs:
        problems.add('%s device %s' % (where, device), 'MAC %s is also the MAC of %s' % (device_mac, macs[device_mac]))
    macs[device_mac] = 'the VXLAN device'
    for ep_name in endpoints_in:
        mac = overlay_mac(vni, me['index'], ep_name)
        if mac in macs:
            problems.add('%s endpoint %s' % (where, ep_name), 'MAC %s is also the MAC of %s' % (mac, macs[mac]))
        macs[mac] = 'endpoint %s' % ep_name

    vxlan = {'name': device, 'vni': vni, 'local': me['local_ip'], 'bridge': bridge, 'port': port, 'mac': device_mac}
    if dev:
        vxlan['dev'] = dev
    if mtu:
        vxlan['mtu'] = mtu
    peers = sorted((m['local_ip'] for m in present if m['name'] != host), key=lambda a: ipaddress.ip_address(a).packed)
    veths, endpoints = [], []
    for ep_name in endpoints_in:
        mac = overlay_mac(vni, me['index'], ep_name)
        peer = {'name': 'eth0', 'netns': ep_name, 'addresses': _cidrs(addresses[ep_name]), 'mac': mac}
        veth = {'name': derived_name('vo', str(name), ep_name), 'bridge': bridge, 'peer': peer}
        if mtu:
            peer['mtu'] = veth['mtu'] = mtu
        veths.append(veth)
        ips = [str(a) for a, _n in sorted(addresses[ep_name], key=lambda p: p[1].version)]
        endpoints.append({'name': ep_name, 'address': ips[0] if ips else None, 'addresses': ips, 'mac': mac})
    bridge_cfg = {'name': bridge, 'addresses': _cidrs(bridge_addresses), 'mac': bridge_mac}
    if mtu:
        bridge_cfg['mtu'] = mtu
    plan = {
        'vxlan': vxlan,
        'bridge': bridge_cfg,
        'netns': [{'name': ep} for ep in endpoints_in],
        'veths': veths,
        'peers': {'device': device, 'peers': peers},
        'report': {'name': name, 'vni': vni, 'host': host, 'state': me['state'], 'device': device, 'bridge': bridge,
                   'index': me['index'], 'block': str(blocks[0]), 'blocks': [str(b) for b in blocks],
                   'host_address': str(bridge_addresses[0][0]), 'host_addresses': [str(a) for a, _n in bridge_addresses],
                   'bridge_mac': bridge_mac, 'device_mac': device_mac, 'mtu': mtu, 'local_ip': me['local_ip'], 'peers': peers,
                   'endpoints': endpoints},
    }
    _check_with_kinds({
        'bridge': [(where, bridge_cfg)],
        'vxlan': [(where, vxlan)],
        'vxlan_peer': [(where, plan['peers'])],
        'netns': [('%s endpoint %s' % (where, n['name']), n) for n in plan['netns']],
        'veth': [('%s endpoint %s' % (where, vt['peer']['netns']), vt) for vt in veths],
    }, problems)
    _check_names_free([(where, 'bridge', bridge, 'bridge'), (where, 'device', device, 'vxlan')]
                      + [('%s endpoint %s' % (where, vt['peer']['netns']), 'host interface', vt['name'], 'veth')
                         for vt in veths], facts, problems)
    _check_foreign_namespaces([{'name': name, 'endpoints': [{'name': n['name'], 'state': 'present'}
                                                            for n in plan['netns']]}], facts, problems, 'overlay')
    if problems:
        raise PlanError(list(problems))
    return plan


def overlay_forwarding(plan, reports):
    """This host's vxlan_peer config: the flood list of plan_overlay plus a
    static MAC -> VTEP entry for the bridge and every endpoint of every
    other present host, so known unicast goes to one VTEP, never flooded.

    ``reports``: the plans' reports of the hosts of the group (hosts
    whose plan is missing or failed are skipped: they are not reached by
    MAC, only by the flood list). A MAC given twice inside the overlay
    (bridges, VXLAN devices and endpoints of every host) is refused, on
    every host alike. The VXLAN devices' MACs get no entry: no frame is
    sent to them.
    """
    problems = _Problems()
    mine = plan['report']
    where = 'overlay %s' % mine['name']
    peers = set(plan['peers']['peers'])
    owner, entries = {}, []
    for report in sorted((r for r in reports if isinstance(r, dict) and r.get('bridge_mac')),
                         key=lambda r: str(r.get('host'))):
        if report.get('state') == 'absent' or report.get('vni') != mine['vni'] or report.get('name') != mine['name']:
            continue
        macs = [(report['bridge_mac'], 'the bridge')] + [(e['mac'], 'endpoint %s' % e['name'])
                                                         for e in report.get('endpoints') or []]
        if report.get('device_mac'):
            macs.append((report['device_mac'], 'the VXLAN device'))
        for mac, what in macs:
            label = '%s of host %s' % (what, report['host'])
            if mac in owner:
                problems.add(where, 'MAC %s of %s is also the MAC of %s; rename one of them' % (mac, label, owner[mac]))
                continue
            owner[mac] = label
            if what != 'the VXLAN device' and report['host'] != mine['host'] and report['local_ip'] in peers:
                entries.append({'mac': mac, 'vtep': report['local_ip']})
    if problems:
        raise PlanError(list(problems))
    return dict(plan['peers'], entries=sorted(entries, key=lambda e: e['mac']))
