# -*- coding: utf-8 -*-
"""Names per network: the dns engine's input checks, files and plan, and the
role's plan of it (no process is started here: networks without a resolver,
or supervision left to systemd)."""

from __future__ import annotations

import os

import pytest

from ansible_collections.hostnet.provision.plugins.module_utils import _dns
from ansible_collections.hostnet.provision.plugins.module_utils._errors import ConflictError, ValidationError
from ansible_collections.hostnet.provision.plugins.module_utils._topology import PlanError, plan_networks

WEB = {'name': 'web', 'listen': ['198.51.100.1'], 'upstreams': ['198.18.7.2#5353'],
       'hosts': [{'address': '198.51.100.2', 'names': ['a', 'alpha']}, {'address': '198.51.100.3', 'names': ['b']}],
       'endpoints': [{'netns': 'a', 'search': ['example.test'], 'options': ['ndots:2'],
                      'hosts': [{'address': '198.18.7.1', 'names': ['gw-host']}]}, {'netns': 'b'}]}


@pytest.fixture
def paths(tmp_path):
    return dict(_dns.DEFAULTS, config_dir=str(tmp_path / 'conf'), netns_dir=str(tmp_path / 'netns'),
                run_dir=str(tmp_path / 'run'), supervisor='systemd')


def read(path):
    with open(path) as fh:
        return fh.read().splitlines()


@pytest.mark.parametrize('network, field', [
    ({'name': 'we/b', 'listen': ['198.51.100.1']}, 'name'),
    ({'name': 'web', 'listen': ['198.51.100.300']}, 'listen'),
    ({'name': 'web'}, 'listen'),
    ({'name': 'web', 'listen': ['198.51.100.1'], 'upstreams': ['198.18.7.2#99999']}, 'upstreams'),
    ({'name': 'web', 'listen': ['198.51.100.1'], 'hosts': [{'address': '198.51.100.2', 'names': ['bad name']}]},
     'hosts.names'),
    ({'name': 'web', 'listen': ['198.51.100.1'], 'endpoints': [{'netns': 'a', 'options': ['ndots 2']}]}, 'options'),
    ({'name': 'web', 'listen': ['198.51.100.1'], 'resolv_file': 'resolv.conf'}, 'resolv_file'),
])
def test_bad_input_is_refused_naming_the_field(network, field):
    with pytest.raises(ValidationError) as err:
        _dns.normalize([network])
    assert err.value.field == field


def test_one_namespace_gets_its_files_from_one_network():
    with pytest.raises(ValidationError, match='a namespace has one resolv.conf'):
        _dns.normalize([WEB, dict(WEB, name='other')])


def test_files_and_plan(paths):
    nets = _dns.normalize([WEB])
    changes, restarts, stopped, diff = _dns.plan(nets, paths)
    assert restarts == ['web'] and stopped == []
    # systemd starts the resolver: the module writes files only.
    assert [c[0] for c in changes] == ['write'] * 6
    _dns.apply(changes, paths)
    conf = read(os.path.join(paths['config_dir'], 'web.conf'))
    assert conf[0] == _dns.marker('web')
    for line in ('bind-dynamic', 'listen-address=198.51.100.1', 'no-hosts', 'domain-needed', 'local=/web/',
                 'no-resolv', 'server=198.18.7.2#5353'):
        assert line in conf
    assert 'resolv-file=/etc/resolv.conf' not in conf
    assert read(os.path.join(paths['config_dir'], 'web.hosts'))[1:] == [
        '198.51.100.2 a a.web alpha alpha.web', '198.51.100.3 b b.web']
    assert read(os.path.join(paths['netns_dir'], 'a', 'resolv.conf'))[1:] == [
        'nameserver 198.51.100.1', 'search web example.test', 'options ndots:2']
    assert read(os.path.join(paths['netns_dir'], 'a', 'hosts'))[3:] == ['198.51.100.2 a a.web', '198.18.7.1 gw-host']
    assert diff['before'] == {} and len(diff['after']) == 6
    assert _dns.plan(nets, paths)[0] == []

    # An endpoint no longer listed loses its files; the hosts file changes.
    fewer = _dns.normalize([dict(WEB, hosts=WEB['hosts'][:1], endpoints=WEB['endpoints'][:1])])
    changes, restarts, _stopped, _diff = _dns.plan(fewer, paths)
    assert restarts == []
    assert [c[:2] for c in changes] == [
        ('remove', os.path.join(paths['netns_dir'], 'b', 'resolv.conf')),
        ('remove', os.path.join(paths['netns_dir'], 'b', 'hosts')),
        ('write', os.path.join(paths['config_dir'], 'web.hosts')),
        ('rmdir', os.path.join(paths['netns_dir'], 'b'))]
    _dns.apply(changes, paths)
    assert not os.path.exists(os.path.join(paths['netns_dir'], 'b'))

    # absent: every file of the network goes, and systemd is told to stop it.
    changes, _restarts, stopped, _diff = _dns.plan(_dns.normalize([{'name': 'web', 'state': 'absent'}]), paths)
    assert stopped == ['web']
    _dns.apply(changes, paths)
    assert os.listdir(paths['config_dir']) == [] and os.listdir(paths['netns_dir']) == []


def test_files_not_written_by_the_collection_are_left_alone(paths):
    os.makedirs(os.path.join(paths['netns_dir'], 'a'))
    foreign = os.path.join(paths['netns_dir'], 'a', 'resolv.conf')
    with open(foreign, 'w') as fh:
        fh.write('nameserver 198.18.0.53\n')
    with pytest.raises(ConflictError, match='was not written by hostnet.provision'):
        _dns.plan(_dns.normalize([WEB]), paths)
    # Nor are another network's files taken over.
    with open(foreign, 'w') as fh:
        fh.write(_dns.marker('other') + '\n')
    with pytest.raises(ConflictError, match='was written for dns network other'):
        _dns.plan(_dns.normalize([WEB]), paths)
    # Removing the network does not remove them either.
    changes = _dns.plan(_dns.normalize([{'name': 'web', 'state': 'absent'}]), paths)[0]
    assert changes == []


def test_a_namespace_moves_its_files_to_another_network_of_the_call(paths):
    first = {'name': 'one', 'resolver': False, 'endpoints': [{'netns': 'a', 'search': ['one.test']}]}
    _dns.apply(_dns.plan(_dns.normalize([first]), paths)[0], paths)
    second = {'name': 'two', 'resolver': False, 'endpoints': [{'netns': 'a', 'search': ['two.test']}]}
    changes = _dns.plan(_dns.normalize([dict(first, endpoints=[]), second]), paths)[0]
    assert [c[0] for c in changes] == ['write', 'write']
    _dns.apply(changes, paths)
    assert read(os.path.join(paths['netns_dir'], 'a', 'resolv.conf')) == [_dns.marker('two'), 'search two.test']
    # Not with a network that is not in the call.
    with pytest.raises(ConflictError, match='was written for dns network two'):
        _dns.plan(_dns.normalize([first]), paths)


def test_settings_without_a_resolver_and_no_process_at_all(paths):
    paths['supervisor'] = 'process'
    net = {'name': 'plain', 'resolver': False,
           'endpoints': [{'netns': 'a', 'nameservers': ['198.18.0.53'], 'options': ['edns0']}]}
    changes = _dns.plan(_dns.normalize([net]), paths)[0]
    assert [c[0] for c in changes] == ['write', 'write']
    assert dict((c[1], c[2]) for c in changes)[os.path.join(paths['netns_dir'], 'a', 'resolv.conf')].splitlines()[1:] \
        == ['nameserver 198.18.0.53', 'options edns0']


def test_supervisor_auto():
    assert _dns.supervisor('auto', booted_marker='/nonexistent') == 'process'
    assert _dns.supervisor('auto', booted_marker='/') == 'systemd'
    assert _dns.supervisor('process') == 'process'


# -- the role's plan ----------------------------------------------------------------------

def test_role_plan_gives_names_aliases_and_endpoint_settings():
    plan = plan_networks([
        {'name': 'web', 'subnet': '198.51.100.0/25', 'dns': True, 'endpoints': [
            {'name': 'a', 'aliases': ['alpha'], 'dns_search': ['example.test'], 'extra_hosts': ['gw:198.18.0.1']},
            {'name': 'b', 'dns': ['198.18.0.53'], 'dns_options': ['ndots:2']}]},
        {'name': 'quiet', 'subnet': '198.51.100.128/25', 'endpoints': [{'name': 'q'}]},
    ])
    web, quiet = plan['dns']
    assert web['resolver'] and web['listen'] == ['198.51.100.1']
    assert web['hosts'] == [{'address': '198.51.100.2', 'names': ['a', 'alpha']},
                            {'address': '198.51.100.3', 'names': ['b']}]
    assert web['endpoints'] == [
        {'netns': 'a', 'nameservers': [], 'search': ['example.test'], 'options': [],
         'hosts': [{'address': '198.18.0.1', 'names': ['gw']}]},
        {'netns': 'b', 'nameservers': ['198.18.0.53'], 'search': [], 'options': ['ndots:2'], 'hosts': []}]
    # A network without dns: no resolver (an earlier one is removed), no files.
    assert quiet == {'name': 'quiet', 'state': 'present', 'resolver': False, 'listen': ['198.51.100.129'],
                     'hosts': [], 'endpoints': []}
    assert plan['bridges'][0]['dns_access'] is True and 'dns_access' not in plan['bridges'][1]
    assert plan['report'][0]['dns'] == ['198.51.100.1']


def test_role_plan_closes_dns_access_when_dns_goes():
    plan = plan_networks([{'name': 'web', 'subnet': '198.51.100.0/25', 'endpoints': []}],
                         {'managed': {'bridge': [{'name': 'br-web', 'dns_access': True}]}})
    assert plan['bridges'][0]['dns_access'] is False


def test_role_plan_files_come_from_the_default_route_network():
    plan = plan_networks([
        {'name': 'front', 'subnet': '198.51.100.0/25', 'dns': True, 'endpoints': [{'name': 'a'}]},
        {'name': 'back', 'subnet': '198.51.100.128/25', 'dns': True,
         'endpoints': [{'name': 'a', 'interface': 'eth1', 'default_route': False}]},
    ])
    front, back = plan['dns']
    assert [e['netns'] for e in front['endpoints']] == ['a'] and back['endpoints'] == []
    assert back['hosts'] == [{'address': '198.51.100.130', 'names': ['a']}]


@pytest.mark.parametrize('endpoint, text', [
    ({'name': 'a', 'extra_hosts': ['no-address']}, 'extra_hosts'),
    ({'name': 'a', 'extra_hosts': ['gw:not-an-address']}, 'not an IPv4 or IPv6 address'),
    ({'name': 'a', 'aliases': ['two words']}, 'is not a host name'),
    ({'name': 'a', 'dns': ['resolver.example']}, 'nameservers'),
])
def test_role_plan_refuses_bad_dns_settings_before_any_change(endpoint, text):
    with pytest.raises(PlanError, match=text):
        plan_networks([{'name': 'web', 'subnet': '198.51.100.0/25', 'dns': True, 'endpoints': [endpoint]}])
