# -*- coding: utf-8 -*-
# Copyright: contributors to hostnet.provision
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters behind the site report: which probes prove a topology, and a
table a person can read at a glance."""

from __future__ import annotations


def _ips(endpoint):
    addresses = endpoint.get('addresses') or ([endpoint['address']] if endpoint.get('address') else [])
    return [a.split('/')[0] for a in addresses]


def _first_ip(endpoint):
    ips = _ips(endpoint)
    return ips[0] if ips else None


def _version(address):
    return 6 if ':' in address else 4


def _reachable_from(endpoint, addresses):
    """The addresses of the families the endpoint has an address of."""
    versions = set(_version(a) for a in _ips(endpoint))
    return [a for a in addresses if _version(a) in versions]


def _egress_on(net, kind, configs):
    """Whether a network masquerades its traffic out (egress): the result's
    own field when it has one, else the role's input, else the roles'
    default (on)."""
    for field in ('masquerade', 'egress'):
        if net.get(field) is not None:
            return bool(net[field])
    for given in (configs or {}).get(kind) or []:
        if isinstance(given, dict) and given.get('name') == net['name']:
            for field in ('masquerade', 'egress'):
                if given.get(field) is not None:
                    return bool(given[field])
    return True


def _network_checks(networks, kind, host_addresses=None, egress_targets=None, configs=None):
    checks = []
    present = [n for n in networks or [] if n.get('state', 'present') == 'present']
    for net in present:
        eps = net.get('endpoints') or []
        gateways = net.get('gateways') or []
        for a in eps:
            for gw in _reachable_from(a, gateways):
                # The gateway is the host's own address: closed when host_access is off.
                checks.append({'from': a['name'], 'to': gw, 'expect': net.get('host_access', True),
                               'label': '%s %s: %s -> gateway%s' % (kind, net['name'], a['name'],
                                                                    ' (IPv6)' if ':' in gw else '')})
            for b in eps:
                if a is b:
                    continue
                for address in _reachable_from(a, _ips(b)):
                    checks.append({'from': a['name'], 'to': address, 'expect': net.get('icc', True),
                                   'label': '%s %s: %s -> %s%s' % (kind, net['name'], a['name'], b['name'],
                                                                   ' (IPv6)' if ':' in address else '')})
        for ep in eps:
            for port in ep.get('ports') or []:
                if port.get('protocol', 'tcp') != 'tcp':
                    continue  # a UDP port has no answer to wait for
                specific = port.get('host_ip') not in (None, '', '0.0.0.0', '::')
                targets = [port['host_ip']] if specific else (list(host_addresses or []) or gateways)
                for address in _reachable_from(ep, targets):
                    # From the host's namespace through its DNAT: a reset from
                    # the endpoint (nothing listens) still proves the path.
                    checks.append({'from': '', 'to': address, 'protocol': 'tcp', 'port': int(port['host_port']),
                                   'reset_reaches': True, 'expect': True,
                                   'label': '%s %s: host %s:%s -> %s:%s (published)' % (
                                       kind, net['name'], address, port['host_port'], ep['name'],
                                       port.get('port', port['host_port']))})
        if eps and egress_targets:
            on = _egress_on(net, kind, configs)
            for address in _reachable_from(eps[0], egress_targets):
                checks.append({'from': eps[0]['name'], 'to': address, 'expect': on,
                               'label': '%s %s: %s -> %s beyond the host (egress %s)' % (
                                   kind, net['name'], eps[0]['name'], address, 'on' if on else 'off')})
    isolated = [n for n in present if n.get('isolated') and n.get('endpoints')]
    for net in isolated:
        for other in isolated:
            if other is not net:
                a, b = net['endpoints'][0], other['endpoints'][0]
                # The probe is ICMP: a named exception that covers it opens the pair.
                allowed = [e['name'] for e in net.get('allow') or []
                           if e.get('to') == other['name'] and e.get('protocol') in (None, 'icmp')]
                for address in _reachable_from(a, _ips(b)):
                    checks.append({'from': a['name'], 'to': address, 'expect': bool(allowed),
                                   'label': '%s %s -> %s %s%s (%s)' % (kind, net['name'], kind, other['name'],
                                                                       ' IPv6' if ':' in address else '',
                                                                       'allowed by %s' % allowed[0] if allowed
                                                                       else 'isolated')})
    return checks


def _addresses(endpoint, version):
    return sorted(a.split('/')[0] for a in endpoint.get('addresses') or []
                  if (':' in a) == (version == 6))


def report_lookups(bridge_networks=None, tenants=None):
    """Name lookups that prove a host's resolvers: from the first endpoint of
    each network with a resolver, another endpoint's name and every alias
    (over IPv4, and IPv6 when the network is dual-stack), and the first
    endpoint of every other network with a resolver, which must not resolve."""
    lookups = []
    named = [(kind, n) for kind, networks in (('network', bridge_networks), ('tenant', tenants))
             for n in networks or [] if n.get('state', 'present') == 'present' and n.get('dns') and n.get('endpoints')]
    for kind, net in named:
        eps = net['endpoints']
        src = eps[0]
        versions = [v for v in (4, 6) if _addresses(src, v)]
        targets = [(eps[1]['name'], eps[1])] if len(eps) > 1 else []
        targets += [(alias, ep) for ep in eps for alias in ep.get('aliases') or []]
        for name, ep in targets:
            for version in versions:
                lookups.append({'from': src['name'], 'name': name, 'family': 'ipv%d' % version,
                                'expect': _addresses(ep, version), 'reach': net.get('icc', True) or ep is src,
                                'reach_label': '%s %s: %s' % (kind, net['name'], src['name']),
                                'label': '%s %s: %s resolves %s (IPv%d)' % (kind, net['name'], src['name'],
                                                                            name, version)})
        for other_kind, other in named:
            if other is not net:
                name = other['endpoints'][0]['name']
                family = 'ipv%d' % versions[0] if versions else 'ipv4'
                label = '%s %s: %s resolves %s of %s %s' % (kind, net['name'], src['name'], name, other_kind,
                                                            other['name'])
                lookups.append({'from': src['name'], 'name': name, 'family': family, 'expect': [], 'label': label})
    return lookups


def report_names(results=None):
    """The outcome of each lookup of report_lookups, as the reachability
    module's ``names`` returns them (or, from older reports, the registered
    results of `getent ahostsv4` / `ahostsv6` run inside the endpoint):
    the addresses it got, a result to show (``resolved``, ``not found`` or
    ``UNKNOWN (why)``) and whether they are exactly the expected ones (none
    for a name that must not resolve)."""
    names = []
    for r in results or []:
        if 'item' not in r and r.get('result') is not None:
            item = dict(r)
            if item['result'] not in ('resolved', 'not found'):
                item['result'] = 'UNKNOWN (%s)' % item.get('reason')
                item['ok'] = False
            else:
                item['ok'] = bool(item.get('ok')) if item.get('expect') is not None else True
            item['addresses'] = sorted(item.get('addresses') or [])
            names.append(item)
            continue
        item = dict(r.get('item') or {})
        rc = r.get('rc')
        addresses = sorted(set(line.split()[0] for line in (r.get('stdout') or '').splitlines() if line.strip()))
        if rc == 0:
            item['result'], item['ok'] = 'resolved', addresses == sorted(item.get('expect') or [])
        elif rc == 2:
            # getent: the name is not known (NXDOMAIN from the resolver).
            item['result'], item['ok'] = 'not found', not item.get('expect')
        else:
            why = (r.get('stderr') or r.get('msg') or 'rc %s' % rc).strip().splitlines() or ['']
            item['result'], item['ok'] = 'UNKNOWN (%s)' % why[-1], False
        item['addresses'] = addresses if rc == 0 else []
        names.append(item)
    return names


def _name_checks(names):
    """Probes to the addresses names resolved to: a name is as reachable as
    the address it stands for."""
    checks = []
    for n in names or []:
        # A lookup with reach was probed by the reachability module itself.
        if n.get('ok') and n.get('expect') and 'reach' not in n:
            for address in n['addresses']:
                checks.append({'from': n['from'], 'to': address, 'expect': n.get('icc', True),
                               'label': '%s -> %s by name (%s)' % (n['label'].split(' resolves ')[0], n['name'],
                                                                   address)})
    return checks


def report_checks(bridge_networks=None, tenants=None, overlay=None, overlay_all=None, names=None,
                  host_addresses=None, egress_targets=None, configs=None):
    """Probes that prove a host's topology: reachability within each network
    (every address of every endpoint, IPv4 and IPv6, and the gateways),
    isolation between tenants, each published TCP port from the host's
    namespace to ``host_addresses`` (else the network's gateways), egress
    from each network's first endpoint to ``egress_targets`` (addresses
    beyond the host, expected reachable when the network masquerades:
    ``configs`` {'network': [...], 'tenant': [...]} are the roles' inputs,
    read when the results do not say), the overlay to every other host, and
    the addresses names resolved to (``names`` from report_names, when the
    lookups did not probe them themselves)."""
    checks = (_network_checks(bridge_networks, 'network', host_addresses, egress_targets, configs) +
              _network_checks(tenants, 'tenant', host_addresses, egress_targets, configs) + _name_checks(names))
    if overlay and overlay.get('state', 'present') == 'present':
        for ep in overlay.get('endpoints') or []:
            for other in overlay_all or []:
                if not other or other.get('local_ip') == overlay.get('local_ip'):
                    continue
                targets = [('host %s' % other['local_ip'], other['host_address'])]
                targets += [(e['name'], e['address']) for e in other.get('endpoints') or []]
                for label, address in targets:
                    checks.append({'from': ep['name'], 'to': address, 'expect': True,
                                   'label': 'overlay %s: %s -> %s' % (overlay['name'], ep['name'], label)})
    return checks


def report_lines(host, probes=None, bridge_networks=None, tenants=None, overlay=None, firewall=None, names=None):
    """A plain-text report of one host."""
    lines = ['== %s ==' % host]
    for kind, networks in (('network', bridge_networks), ('tenant', tenants)):
        for net in networks or []:
            if net.get('state', 'present') != 'present':
                lines.append('%s %s: absent' % (kind, net['name']))
                continue
            flags = [] if net.get('icc', True) else ['icc off']
            if net.get('isolated'):
                flags.append('isolated')
            if not net.get('host_access', True):
                flags.append('no host access')
            if net.get('dns'):
                flags.append('names on %s' % ' '.join(net['dns']))
            lines.append('%s %s  bridge %s  %s  gateway %s%s' % (
                kind, net['name'], net['bridge'], ' '.join(net.get('subnets') or []),
                ' '.join(net.get('gateways') or []), '  (%s)' % ', '.join(flags) if flags else ''))
            for ep in net.get('endpoints') or []:
                ports = ', '.join('%s:%s->%s/%s' % (p.get('host_ip') or '*', p['host_port'], p['port'],
                                                    p.get('protocol', 'tcp')) for p in ep.get('ports') or [])
                published = '   published %s' % ports if ports else ''
                addresses = ' '.join(ep.get('addresses') or [])
                aliases = '   aliases %s' % ' '.join(ep['aliases']) if ep.get('aliases') else ''
                lines.append('    %-12s %-10s %s%s%s' % (ep['name'], ep.get('interface', ''), addresses, published,
                                                         aliases))
            for ep in net.get('kept') or []:
                lines.append('    %-12s %-10s %s   kept (not listed; purge: true removes it)'
                             % (ep['name'], '', ' '.join(ep.get('addresses') or [])))
    if overlay and overlay.get('state', 'present') == 'present':
        lines.append('overlay %s  vni %s  device %s  bridge %s  this host %s (block %s)  peers %s' % (
            overlay['name'], overlay['vni'], overlay['device'], overlay['bridge'], overlay['host_address'],
            overlay['block'], ' '.join(overlay.get('peers') or []) or 'none'))
        for ep in overlay.get('endpoints') or []:
            lines.append('    %-12s %s' % (ep['name'], ep['address']))
    if probes:
        def verdict(p):
            # "unknown" (the probe could not decide) meets no expectation.
            result = p.get('result') or ('reachable' if p.get('reachable') else 'blocked')
            ok = p.get('expect') is None and result != 'unknown' or \
                result != 'unknown' and p.get('expect') == (result == 'reachable')
            return result, ok
        ok = sum(1 for p in probes if verdict(p)[1])
        lines.append('reachability (real packets): %d of %d as expected' % (ok, len(probes)))
        for p in probes:
            result, good = verdict(p)
            text = {'reachable': 'reaches', 'blocked': 'blocked'}.get(result, 'UNKNOWN (%s)' % p.get('reason'))
            if result == 'reachable' and str(p.get('reason') or '').startswith('refused'):
                text = 'reaches (reset: nothing listens)'  # a published port reached through the DNAT
            mark = 'ok' if good else 'UNEXPECTED' if p.get('expect') is not None else 'UNKNOWN'
            lines.append('    %-10s %-50s %s' % (mark, p.get('label') or '%s -> %s' % (p['from'], p['to']), text))
    if names:
        ok = sum(1 for n in names if n.get('ok'))
        lines.append('names (lookups inside the endpoints): %d of %d as expected' % (ok, len(names)))
        for n in names:
            got = ' '.join(n.get('addresses') or []) if n.get('result') == 'resolved' else n.get('result')
            lines.append('    %-10s %-50s %s' % ('ok' if n.get('ok') else 'UNEXPECTED', n.get('label'), got))
    for f in firewall or []:
        # Another table's forward policy: why published or forwarded flows are blocked.
        lines.append('WARNING: firewall: chain %s drops forwarded %s traffic by policy (no rule accepts DNATed '
                     'connections): published ports and flows routed through this host are blocked there'
                     % (f['chain'], f['family'].replace('ipv', 'IPv')))
    return lines


class FilterModule(object):
    def filters(self):
        return {'report_checks': report_checks, 'report_lines': report_lines, 'report_lookups': report_lookups,
                'report_names': report_names}
