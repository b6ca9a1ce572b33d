# -*- coding: utf-8 -*-
# Copyright: contributors to hostnet.provision
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""From a role's list of networks to each module's config, checked first.

Private to the hostnet.provision collection. Pure computation: it reads a
host's ``net_info`` report and never the kernel, so the roles' filter
plugins run it on the controller before any change is made.

What it promises (the roles' contract):

* every problem is found before anything changes, and all of them are
  reported at once, each naming the network/endpoint and the value:
  overlapping subnets, a subnet colliding with a route the host already has,
  names over 15 bytes, a host port published twice, an address outside its
  subnet or taken twice;
* stable addressing: an endpoint keeps the address it has (read back from
  the host), new endpoints take the lowest free addresses, so adding or
  removing an endpoint never renumbers the others;
* ``state: absent`` on a network or endpoint removes exactly what was made
  for it.
"""

from __future__ import annotations

import hashlib
import ipaddress

from ansible_collections.hostnet.provision.plugins.module_utils import _validate as v
from ansible_collections.hostnet.provision.plugins.module_utils._errors import ValidationError

__all__ = ['PlanError', 'plan_networks', 'plan_overlay', 'derived_name']


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
    return not (char.isspace() or char in '/:')


class _Problems(list):
    def add(self, where, message):
        self.append('%s: %s' % (where, message))


def _net(value):
    try:
        return ipaddress.ip_network(value, strict=True)
    except (ValueError, TypeError):
        return None


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


def _existing_endpoints(facts):
    """(namespace, bridge) → peer addresses the host has now (managed veths)."""
    found = {}
    for veth in ((facts or {}).get('managed') or {}).get('veth', []):
        peer = veth.get('peer') or {}
        found[(peer.get('netns'), veth.get('bridge'))] = {
            'host_if': veth['name'], 'peer': peer.get('name'), 'addresses': list(peer.get('addresses') or [])}
    return found


def plan_networks(networks, facts=None, prefix='br-', veth_prefix='ve', defaults=None):
    """Validate ``networks`` against the host and derive every module's config.

    ``defaults`` fill fields a network leaves unset (e.g. masquerade, icc,
    isolated, host_access). Raises PlanError with every problem found.
    """
    defaults = defaults or {}
    problems = _Problems()
    nets = []
    seen_names = {}
    for index, raw in enumerate(networks or []):
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
    _check_overlaps(present, problems)
    _check_host_routes(present, facts, own_bridges, problems)
    _check_foreign_bridges(present, facts, own_bridges, problems)
    existing = _existing_endpoints(facts)
    for net in present:
        _assign_addresses(net, existing, problems)
    _check_endpoints_across_networks(present, problems)
    ports = _check_ports(present, problems)
    if problems:
        raise PlanError(list(problems))
    return _derive(nets, ports, facts, veth_prefix)


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
    if net['state'] not in ('present', 'absent'):
        problems.add(where, 'state %r must be present or absent' % net['state'])
    bridge = raw.get('bridge') or derived_name(prefix, name)
    try:
        v.ifname(bridge, where, 'bridge')
    except ValidationError as err:
        problems.add(where, str(err).split(': ', 1)[1])
    net['bridge'] = bridge
    subnets = []
    for field, gw_field in (('subnet', 'gateway'), ('subnet6', 'gateway6')):
        if not raw.get(field):
            continue
        subnet = _net(raw[field])
        if subnet is None:
            problems.add(where, '%s %r is not a network address with prefix (e.g. 198.51.100.0/24)'
                         % (field, raw[field]))
            continue
        if subnet.num_addresses < 4:
            problems.add(where, '%s %s is too small for a gateway and endpoints' % (field, subnet))
            continue
        gateway = raw.get(gw_field) or str(next(subnet.hosts()))
        try:
            gw = ipaddress.ip_address(gateway)
        except ValueError:
            problems.add(where, '%s %r is not an address' % (gw_field, gateway))
            continue
        if gw not in subnet or gw in (subnet.network_address, subnet.broadcast_address):
            problems.add(where, '%s %s is not a host address of %s %s' % (gw_field, gw, field, subnet))
            continue
        subnets.append({'field': field, 'net': subnet, 'gateway': gw})
    if not subnets and net['state'] == 'present':
        problems.add(where, 'needs a subnet')
    families = [s['net'].version for s in subnets]
    if len(set(families)) != len(families):
        problems.add(where, 'subnet and subnet6 must be one IPv4 and one IPv6 network')
    net['subnets'] = subnets
    net['endpoints'] = []
    names = set()
    for position, ep in enumerate(raw.get('endpoints') or []):
        if isinstance(ep, str):
            ep = {'name': ep}
        if not isinstance(ep, dict) or not ep.get('name'):
            problems.add(where, 'endpoint #%d needs a name' % (position + 1))
            continue
        ep = dict(ep)
        ep['name'] = str(ep['name'])
        ep.setdefault('state', 'present')
        ep.setdefault('interface', 'eth0')
        ep_where = '%s endpoint %s' % (where, ep['name'])
        try:
            v.netns_name(ep['name'], ep_where, 'name')
            v.ifname(ep['interface'], ep_where, 'interface')
        except ValidationError as err:
            problems.add(ep_where, str(err).split(': ', 1)[1])
        if ep['name'] in names:
            problems.add(ep_where, 'listed twice')
        names.add(ep['name'])
        net['endpoints'].append(ep)
    return net


def _check_overlaps(nets, problems):
    for i, a in enumerate(nets):
        for b in nets[i + 1:]:
            for sa in a['subnets']:
                for sb in b['subnets']:
                    if sa['net'].overlaps(sb['net']):
                        problems.add('network %s' % b['name'], '%s %s overlaps %s %s of network %s'
                                     % (sb['field'], sb['net'], sa['field'], sa['net'], a['name']))


def _check_host_routes(nets, facts, own_bridges, problems):
    routes = _host_routes(facts, own_bridges)
    for net in nets:
        for sub in net['subnets']:
            for route_net, route in routes:
                if sub['net'].overlaps(route_net):
                    via = ' via %s' % route['via'] if route.get('via') else ''
                    dev = ' dev %s' % route['dev'] if route.get('dev') else ''
                    problems.add('network %s' % net['name'],
                                 '%s %s collides with the host route %s%s%s; using it would cut the host off '
                                 'from that network' % (sub['field'], sub['net'], route['dest'], via, dev))


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


def _assign_addresses(net, existing, problems):
    """Explicit addresses first, then the ones the host already has, then the lowest free."""
    where = 'network %s' % net['name']
    for sub in net['subnets']:
        field = 'address' if sub['field'] == 'subnet' else 'address6'
        taken = {sub['gateway']: 'the gateway'}
        pending = []
        for ep in net['endpoints']:
            if ep['state'] != 'present':
                continue
            ep_where = '%s endpoint %s' % (where, ep['name'])
            wanted = ep.get(field)
            if wanted:
                try:
                    addr = ipaddress.ip_address(str(wanted).split('/', maxsplit=1)[0])
                except ValueError:
                    problems.add(ep_where, '%s %r is not an address' % (field, wanted))
                    continue
                if addr not in sub['net'] or addr in (sub['net'].network_address, sub['net'].broadcast_address):
                    problems.add(ep_where, '%s %s is outside %s %s' % (field, addr, sub['field'], sub['net']))
                    continue
            else:
                have = existing.get((ep['name'], net['bridge']), {}).get('addresses', [])
                addr = next((ipaddress.ip_interface(a).ip for a in have
                             if ipaddress.ip_interface(a).ip in sub['net']), None)
                if addr is None:
                    pending.append(ep)
                    continue
            if addr in taken:
                problems.add(ep_where, '%s %s is already taken by %s' % (field, addr, taken[addr]))
                continue
            taken[addr] = 'endpoint %s' % ep['name']
            ep.setdefault('_addresses', []).append('%s/%d' % (addr, sub['net'].prefixlen))
        free = (h for h in sub['net'].hosts() if h not in taken)
        for ep in pending:
            addr = next(free, None)
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
    if str(value) == 'auto':
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
            for port in ep.get('ports') or []:
                if isinstance(port, (int, str)):
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
                ports.append(entry)
    return ports


def _port_entry(net, ep, port, problems):
    where = 'network %s endpoint %s' % (net['name'], ep['name'])
    if not isinstance(port, dict) or port.get('host_port') in (None, '') or port.get('port') in (None, ''):
        problems.add(where, 'port %r needs host_port and port' % (port,))
        return None
    try:
        _port_range(port['host_port'])
    except ValueError:
        problems.add(where, 'host_port %r must be a port, a range like 8000-8010, or auto' % (port['host_port'],))
        return None
    protocol = port.get('protocol') or 'tcp'
    if protocol not in ('tcp', 'udp', 'sctp'):
        problems.add(where, 'protocol %r must be tcp, udp or sctp' % protocol)
        return None
    host_ip = port.get('host_ip')
    family = ipaddress.ip_address(host_ip).version if host_ip else None
    dest = next((a for a in ep.get('_addresses', [])
                 if family is None or ipaddress.ip_interface(a).version == family), None)
    if dest is None:
        problems.add(where, 'has no address to publish port %s to' % port.get('host_port'))
        return None
    entry = {'protocol': protocol, 'host_port': port['host_port'], 'destination': dest.split('/')[0],
             'port': port['port']}
    if host_ip:
        entry['host_ip'] = host_ip
    return entry


def _derive(nets, ports, facts, veth_prefix):
    """Each module's config: what is present, and what goes."""
    out = {'netns': [], 'netns_absent': [], 'bridges': [], 'bridges_absent': [], 'veths': [],
           'veths_absent': [], 'ports': ports, 'ports_absent': [], 'report': []}
    ours = set()  # every endpoint address of these networks, present or going
    used = set()
    for net in nets:
        if net['state'] == 'present':
            for ep in net['endpoints']:
                if ep['state'] == 'present':
                    used.add(ep['name'])
    existing = _existing_endpoints(facts)
    for net in nets:
        report = {'name': net['name'], 'bridge': net['bridge'], 'state': net['state'],
                  'icc': net.get('icc', True) is not False, 'isolated': bool(net.get('isolated')),
                  'host_access': net.get('host_access', True) is not False,
                  'subnets': [str(s['net']) for s in net['subnets']],
                  'gateways': [str(s['gateway']) for s in net['subnets']], 'endpoints': []}
        out['report'].append(report)
        if net['state'] == 'absent':
            out['bridges_absent'].append({'name': net['bridge']})
        else:
            bridge = {'name': net['bridge'],
                      'addresses': ['%s/%d' % (s['gateway'], s['net'].prefixlen) for s in net['subnets']]}
            for field in ('mtu', 'masquerade', 'icc', 'isolated', 'host_access'):
                if net.get(field) is not None:
                    bridge[field] = net[field]
            out['bridges'].append(bridge)
        for ep in net['endpoints']:
            host_if = ep.get('host_interface') or existing.get((ep['name'], net['bridge']), {}).get('host_if') \
                or derived_name(veth_prefix, net['name'], ep['name'])
            had = existing.get((ep['name'], net['bridge']), {}).get('addresses', [])
            ours.update(a.split('/')[0] for a in had + ep.get('_addresses', []))
            if net['state'] == 'absent' or ep['state'] == 'absent':
                out['veths_absent'].append({'name': host_if})
                if ep['name'] not in used and {'name': ep['name']} not in out['netns_absent']:
                    out['netns_absent'].append({'name': ep['name']})
                continue
            if {'name': ep['name']} not in out['netns']:
                out['netns'].append({'name': ep['name']})
            peer = {'name': ep['interface'], 'netns': ep['name'], 'addresses': ep['_addresses']}
            if ep.get('default_route', True):
                peer['gateway'] = [str(s['gateway']) for s in net['subnets']]
            if net.get('mtu'):
                peer['mtu'] = net['mtu']
            veth = {'name': host_if, 'bridge': net['bridge'], 'peer': peer}
            if net.get('mtu'):
                veth['mtu'] = net['mtu']
            out['veths'].append(veth)
            report['endpoints'].append({'name': ep['name'], 'interface': ep['interface'], 'host_interface': host_if,
                                        'addresses': ep['_addresses'],
                                        'ports': [p for p in ports if p['destination'] in
                                                  [a.split('/')[0] for a in ep['_addresses']]]})
    # Published ports of these endpoints that are no longer wanted.
    wanted = set(_port_key(p) for p in ports)
    for port in ((facts or {}).get('managed') or {}).get('portmap', []):
        if port.get('destination') in ours and not port.get('netns') and _port_key(port) not in wanted:
            out['ports_absent'].append(port)
    return out


def _port_key(port):
    return (port.get('protocol') or 'tcp', port.get('host_ip') or None, str(port.get('host_port')))


def _underlay_mtu(facts, dev, local_ip):
    """The underlay link's MTU minus the VXLAN overhead (50 IPv4, 70 IPv6), or None."""
    facts = facts or {}
    if not dev:
        for name, addrs in ((facts.get('addresses') or {}).get('') or {}).items():
            if any(a.split('/')[0] == local_ip for a in addrs):
                dev = name
    link = next((l for l in (facts.get('links') or {}).get('', []) if l.get('name') == dev), None)
    if not link or not link.get('mtu'):
        return None
    return link['mtu'] - (70 if ':' in local_ip else 50)


def plan_overlay(settings, host, members, facts=None):
    """One host's share of an overlay network (VXLAN + bridge + endpoints).

    ``settings``: name, vni, subnet, port, mtu, index_bits; ``host``: this
    host's inventory name; ``members``: every host of the peers group as
    {name, local_ip, index (optional), endpoints (list of names)}.

    Each host owns one block of the subnet (block ``index``), so endpoint
    addresses are unique across hosts without a central server; the index
    is given or derived from the underlay address, and collisions are
    refused. The first address of a host's block goes on its bridge.
    """
    problems = _Problems()
    name = settings.get('name')
    where = 'overlay %s' % name
    if not name:
        problems.add('overlay', 'needs a name')
    vni = settings.get('vni')
    if not isinstance(vni, int) or isinstance(vni, bool) or not 1 <= vni <= 16777215:
        problems.add(where, 'vni %r must be a number from 1 to 16777215' % (vni,))
    subnet = _net(settings.get('subnet'))
    bits = int(settings.get('index_bits') or 4)
    if subnet is None:
        problems.add(where, 'subnet %r is not a network address with prefix' % (settings.get('subnet'),))
    elif subnet.prefixlen + bits > subnet.max_prefixlen - 2:
        problems.add(where, 'subnet %s is too small for %d host blocks' % (subnet, 2 ** bits))
    indexes = {}
    me = None
    for member in members:
        mwhere = '%s host %s' % (where, member['name'])
        try:
            local = ipaddress.ip_address(member.get('local_ip'))
        except ValueError:
            problems.add(mwhere, 'has no usable underlay address (local_ip %r): set overlay_network_local_ip or '
                                 'overlay_network_underlay_interface' % (member.get('local_ip'),))
            continue
        index = member.get('index')
        index = int(local) % (2 ** bits) if index in (None, '') else int(index)
        if not 0 <= index < 2 ** bits:
            problems.add(mwhere, 'host index %d is outside 0..%d' % (index, 2 ** bits - 1))
        elif index in indexes:
            problems.add(mwhere, 'host index %d is also used by %s; set overlay_network_host_index on one of them'
                         % (index, indexes[index]))
        indexes[index] = member['name']
        if member['name'] == host:
            me = dict(member, index=index, local_ip=str(local))
    if me is None and not problems:
        problems.add(where, 'host %s is not in the peers group' % host)
    device = derived_name('vx-', str(name or ''))
    bridge = derived_name('ov-', str(name or ''))
    for label, value in (('device', device), ('bridge', bridge)):
        try:
            v.ifname(value, where, label)
        except ValidationError as err:
            problems.add(where, str(err).split(': ', 1)[1])
    if subnet is not None and me is not None:
        _check_host_routes([{'name': name, 'subnets': [{'field': 'subnet', 'net': subnet}]}], facts, {bridge},
                           problems)
    if problems:
        raise PlanError(list(problems))

    block = list(subnet.subnets(new_prefix=subnet.prefixlen + bits))[me['index']]
    usable = [a for a in block if a not in (subnet.network_address, subnet.broadcast_address)]
    host_address = usable[0]
    taken = {host_address}
    existing = _existing_endpoints(facts)
    endpoints, pending = [], []
    for ep_name in me.get('endpoints') or []:
        have = existing.get((ep_name, bridge), {}).get('addresses', [])
        addr = next((ipaddress.ip_interface(a).ip for a in have if ipaddress.ip_interface(a).ip in block), None)
        if addr is None or addr in taken:
            pending.append(ep_name)
            continue
        taken.add(addr)
        endpoints.append((ep_name, addr))
    free = (a for a in usable if a not in taken)
    for ep_name in pending:
        addr = next(free, None)
        if addr is None:
            raise PlanError(['%s host %s: block %s has no free address for endpoint %s'
                             % (where, host, block, ep_name)])
        endpoints.append((ep_name, addr))
    order = dict((n, i) for i, n in enumerate(me.get('endpoints') or []))
    endpoints.sort(key=lambda e: order[e[0]])

    vxlan = {'name': device, 'vni': vni, 'local': me['local_ip'], 'bridge': bridge,
             'port': int(settings.get('port') or 4789)}
    if settings.get('dev'):
        vxlan['dev'] = settings['dev']
    # Everything on the overlay bridge gets the VXLAN's MTU, or large
    # packets are silently dropped: derive it here when not given.
    mtu = settings.get('mtu') or _underlay_mtu(facts, settings.get('dev'), me['local_ip'])
    if mtu:
        vxlan['mtu'] = mtu
    peers = sorted(m['local_ip'] for m in members if m['name'] != host)
    veths = []
    for ep_name, addr in endpoints:
        peer = {'name': 'eth0', 'netns': ep_name, 'addresses': ['%s/%d' % (addr, subnet.prefixlen)]}
        veth = {'name': derived_name('vo', str(name), ep_name), 'bridge': bridge, 'peer': peer}
        if mtu:
            peer['mtu'] = veth['mtu'] = mtu
        veths.append(veth)
    bridge_cfg = {'name': bridge, 'addresses': ['%s/%d' % (host_address, subnet.prefixlen)]}
    if mtu:
        bridge_cfg['mtu'] = mtu
    return {
        'vxlan': vxlan,
        'bridge': bridge_cfg,
        'netns': [{'name': ep} for ep, _addr in endpoints],
        'veths': veths,
        'peers': {'name': device, 'peers': peers},
        'report': {'name': name, 'vni': vni, 'device': device, 'bridge': bridge, 'index': me['index'],
                   'block': str(block), 'host_address': str(host_address), 'local_ip': me['local_ip'],
                   'peers': peers, 'endpoints': [{'name': ep, 'address': str(addr)} for ep, addr in endpoints]},
    }
