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


def report_checks(bridge_networks=None, tenants=None, overlay=None, overlay_all=None):
    """Probes that prove a host's topology: reachability within each network,
    isolation between tenants, the overlay to every other host."""
    checks = _network_checks(bridge_networks, 'network') + _network_checks(tenants, 'tenant')
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


def report_lines(host, probes=None, bridge_networks=None, tenants=None, overlay=None, firewall=None):
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
            lines.append('%s %s  bridge %s  %s  gateway %s%s' % (
                kind, net['name'], net['bridge'], ' '.join(net.get('subnets') or []),
                ' '.join(net.get('gateways') or []), '  (%s)' % ', '.join(flags) if flags else ''))
            for ep in net.get('endpoints') or []:
                ports = ', '.join('%s:%s->%s/%s' % (p.get('host_ip') or '*', p['host_port'], p['port'],
                                                    p.get('protocol', 'tcp')) for p in ep.get('ports') or [])
                published = '   published %s' % ports if ports else ''
                addresses = ' '.join(ep.get('addresses') or [])
                lines.append('    %-12s %-10s %s%s' % (ep['name'], ep.get('interface', ''), addresses, published))
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
    for f in firewall or []:
        # Another table's forward policy: why published or forwarded flows are blocked.
        lines.append('WARNING: firewall: chain %s drops forwarded %s traffic by policy (no rule accepts DNATed '
                     'connections): published ports and flows routed through this host are blocked there'
                     % (f['chain'], f['family'].replace('ipv', 'IPv')))
    return lines


class FilterModule(object):
    def filters(self):
        return {'report_checks': report_checks, 'report_lines': report_lines}
