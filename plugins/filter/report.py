# -*- coding: utf-8 -*-
# Copyright: contributors to hostnet.provision
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters behind the site report: which probes prove a topology, and a
table a person can read at a glance."""

from __future__ import annotations


def _first_ip(endpoint):
    addresses = endpoint.get('addresses') or ([endpoint['address']] if endpoint.get('address') else [])
    return addresses[0].split('/')[0] if addresses else None


def _network_checks(networks, kind):
    checks = []
    present = [n for n in networks or [] if n.get('state', 'present') == 'present']
    for net in present:
        eps = net.get('endpoints') or []
        for a in eps:
            for gw in (net.get('gateways') or [])[:1]:
                # The gateway is the host's own address: closed when host_access is off.
                checks.append({'from': a['name'], 'to': gw, 'expect': net.get('host_access', True),
                               'label': '%s %s: %s -> gateway' % (kind, net['name'], a['name'])})
            for b in eps:
                if a is not b and _first_ip(b):
                    checks.append({'from': a['name'], 'to': _first_ip(b), 'expect': net.get('icc', True),
                                   'label': '%s %s: %s -> %s' % (kind, net['name'], a['name'], b['name'])})
    isolated = [n for n in present if n.get('isolated') and n.get('endpoints')]
    for net in isolated:
        for other in isolated:
            if other is not net:
                a, b = net['endpoints'][0], other['endpoints'][0]
                # The probe is ICMP: a named exception that covers it opens the pair.
                allowed = [e['name'] for e in net.get('allow') or []
                           if e.get('to') == other['name'] and e.get('protocol') in (None, 'icmp')]
                checks.append({'from': a['name'], 'to': _first_ip(b), 'expect': bool(allowed),
                               'label': '%s %s -> %s %s (%s)' % (kind, net['name'], kind, other['name'],
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
                                'expect': _addresses(ep, version), 'icc': net.get('icc', True),
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
    """The outcome of each lookup of report_lookups, run as `getent ahostsv4`
    or `ahostsv6` inside the endpoint (the registered loop results): the
    addresses it got, and whether they are exactly the expected ones (none
    for a name that must not resolve)."""
    names = []
    for r in results or []:
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
        if n.get('ok') and n.get('expect'):
            for address in n['addresses']:
                checks.append({'from': n['from'], 'to': address, 'expect': n.get('icc', True),
                               'label': '%s -> %s by name (%s)' % (n['label'].split(' resolves ')[0], n['name'],
                                                                   address)})
    return checks


def report_checks(bridge_networks=None, tenants=None, overlay=None, overlay_all=None, names=None):
    """Probes that prove a host's topology: reachability within each network,
    isolation between tenants, the overlay to every other host, and the
    addresses names resolved to."""
    checks = _network_checks(bridge_networks, 'network') + _network_checks(tenants, 'tenant') + _name_checks(names)
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
