# -*- coding: utf-8 -*-
"""The site report's probes (filter report_checks): every address of every
endpoint over both families, published ports through the host, egress."""

from __future__ import annotations

from ansible_collections.hostnet.provision.plugins.filter.report import report_checks

WEB = {'name': 'web', 'bridge': 'br-web', 'icc': True, 'host_access': True,
       'gateways': ['198.51.100.1', '2001:db8:100::1'],
       'endpoints': [{'name': 'web1', 'addresses': ['198.51.100.2/25', '2001:db8:100::2/64'],
                      'ports': [{'host_port': 8080, 'port': 80}, {'host_port': 5353, 'port': 53, 'protocol': 'udp'}]},
                     {'name': 'web2', 'addresses': ['198.51.100.3/25', '2001:db8:100::3/64'],
                      'ports': [{'host_port': 8443, 'port': 443, 'host_ip': '198.18.0.11'}]}]}
BACK = {'name': 'back', 'bridge': 'br-back', 'icc': False, 'host_access': True, 'gateways': ['198.51.100.129'],
        'endpoints': [{'name': 'db1', 'addresses': ['198.51.100.130/25']},
                      {'name': 'db2', 'addresses': ['198.51.100.131/25']}]}


def _by_label(checks):
    return dict((c['label'], (c['from'], c['to'], c.get('port'), c['expect'])) for c in checks)


def test_both_families_published_ports_and_egress():
    checks = report_checks([WEB, BACK], host_addresses=['198.18.0.11', '2001:db8:18::11'],
                           egress_targets=['198.18.0.12', '2001:db8:18::12'],
                           configs={'network': [{'name': 'back', 'masquerade': False}]})
    got = _by_label(checks)
    assert got['network web: web1 -> web2 (IPv6)'] == ('web1', '2001:db8:100::3', None, True)
    assert got['network web: web1 -> gateway (IPv6)'] == ('web1', '2001:db8:100::1', None, True)
    assert got['network back: db1 -> db2'] == ('db1', '198.51.100.131', None, False)
    assert not [label for label in got if 'back' in label and 'IPv6' in label]  # IPv4-only network
    published = [c for c in checks if c.get('protocol') == 'tcp']
    assert [(c['from'], c['to'], c['port'], c['reset_reaches'], c['expect']) for c in published] == [
        ('', '198.18.0.11', 8080, True, True), ('', '2001:db8:18::11', 8080, True, True),
        ('', '198.18.0.11', 8443, True, True)]     # a port bound to one host address: that one only; no UDP
    assert got['network web: web1 -> 198.18.0.12 beyond the host (egress on)'][3] is True
    assert got['network web: web1 -> 2001:db8:18::12 beyond the host (egress on)'][3] is True
    assert got['network back: db1 -> 198.18.0.12 beyond the host (egress off)'] == ('db1', '198.18.0.12', None, False)


def test_without_host_addresses_published_ports_go_to_the_gateways_and_egress_is_not_probed():
    checks = report_checks([WEB])
    published = [(c['to'], c['port']) for c in checks if c.get('protocol') == 'tcp']
    assert published == [('198.51.100.1', 8080), ('2001:db8:100::1', 8080), ('198.18.0.11', 8443)]
    assert not [c for c in checks if 'egress' in c['label']]
    # The result's own field wins over the roles' input.
    off = dict(WEB, masquerade=False)
    assert [c['expect'] for c in report_checks([off], egress_targets=['198.18.0.12'],
                                               configs={'network': [{'name': 'web', 'masquerade': True}]})
            if 'egress' in c['label']] == [False]
