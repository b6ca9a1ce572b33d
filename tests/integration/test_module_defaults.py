# -*- coding: utf-8 -*-
"""The roles are immune to a play's module_defaults.

A play may set module_defaults for every module of the collection and for
its action group (``state: overridden`` or ``state: deleted`` for
group/hostnet.provision.hostnet, a ``netns`` and ``gather`` for net_info,
another supervisor and directories for dns, forwarding for bridge and
portmap, a ``config`` naming resources of nobody's ...). Every role sets
every option its tasks rely on, so such a play builds exactly what the same
play without those defaults builds, and resources the user made before
(with the collection's modules or without them) survive.

Each role runs in a fresh sandbox three times from the same starting point:
without defaults (the reference), under hostile defaults with
``state: overridden``, and again with ``state: deleted``. The kernel state
after each (links, addresses, routes, namespaces, nftables, forwarding
sysctls, read through ip, nft and /proc, with what differs between two
identical builds - interface indexes, MAC addresses - left out) must be
the same.
"""

from __future__ import annotations

import copy
import json
import subprocess

import pytest
import yaml

from conftest import _wipe
from helpers import ip_json, netns_names, run_module
from test_playbook import run_playbook

pytestmark = pytest.mark.playbook

RESOURCE_MODULES = ('netns', 'veth', 'bridge', 'portmap', 'macvlan', 'vxlan', 'vxlan_peer')


def hostile_defaults(state):
    """module_defaults that would wreck a role relying on any default."""
    defaults = {'group/hostnet.provision.hostnet': {'state': state, 'lock_timeout': 30}}
    for name in RESOURCE_MODULES:
        defaults['hostnet.provision.' + name] = {'state': state}
    # A config the roles' tasks would apply if they left theirs out.
    defaults['hostnet.provision.netns']['config'] = [{'name': 'md-evil'}]
    defaults['hostnet.provision.bridge'].update(config=[{'name': 'md-evil0', 'addresses': ['198.18.99.1/24']}],
                                                enable_forwarding=True)
    defaults['hostnet.provision.portmap'].update(config=[], enable_forwarding=True)
    defaults['hostnet.provision.veth']['config'] = [{'name': 'md-evil1', 'peer': {'name': 'md-evil2'}}]
    defaults['hostnet.provision.dns'] = {
        'config': [], 'supervisor': 'systemd', 'config_dir': '/nonexistent/md/dns', 'netns_dir': '/nonexistent/md/netns',
        'run_dir': '/nonexistent/md/run', 'dnsmasq': '/nonexistent/md/dnsmasq'}
    defaults['hostnet.provision.network'] = {
        'networks': [{'name': 'md-evil', 'subnet': '198.18.98.0/24', 'endpoints': [{'name': 'md-evil3'}]}],
        'bridge_prefix': 'md-', 'veth_prefix': 'mx', 'policy': {'isolated': True, 'host_access': False, 'icc': False},
        'purge': True, 'forwarding': False, 'sysctl_file': '/nonexistent/md/sysctl.conf', 'dns_supervisor': 'systemd',
        'dns_config_dir': '/nonexistent/md/dns', 'dns_netns_dir': '/nonexistent/md/netns',
        'dns_run_dir': '/nonexistent/md/run', 'dnsmasq': '/nonexistent/md/dnsmasq'}
    defaults['hostnet.provision.net_info'] = {'netns': ['md-nowhere'], 'gather': ['namespaces'],
                                              'process_namespaces': True}
    defaults['hostnet.provision.reachability'] = {'checks': [{'to': '198.18.99.99', 'expect': True}], 'timeout': 0.1}
    return defaults


def write_play(path, role, module_defaults=None):
    play = {'name': 'Role %s' % role, 'hosts': 'localhost', 'connection': 'local', 'gather_facts': False,
            'vars': {'ansible_python_interpreter': '{{ ansible_playbook_python }}'},
            'roles': [{'role': 'hostnet.provision.' + role}]}
    if module_defaults:
        play['module_defaults'] = module_defaults
    with open(path, 'w') as fh:
        yaml.safe_dump([play], fh, sort_keys=False)
    return path


def _strip(value, keys):
    if isinstance(value, dict):
        return dict((k, _strip(v, keys)) for k, v in value.items() if k not in keys)
    if isinstance(value, list):
        return [_strip(v, keys) for v in value]
    return value


def shape(netns=None):
    """What a build made in one namespace, without what differs between two
    identical builds (ifindex, MAC addresses, timers, counters)."""
    by_index = dict((e['ifindex'], e['ifname']) for e in ip_json('link', 'show', netns=netns))
    links = []
    for entry in ip_json('-d', 'link', 'show', netns=netns):
        info = entry.get('linkinfo') or {}
        data = info.get('info_data') or {}
        links.append({'name': entry['ifname'], 'kind': info.get('info_kind'), 'slave': info.get('info_slave_kind'),
                      'master': entry.get('master'), 'mtu': entry.get('mtu'), 'up': 'UP' in entry.get('flags', []),
                      'alias': entry.get('ifalias'), 'peer_netns': entry.get('link_netnsid') is not None,
                      'vni': data.get('id'), 'local': data.get('local'), 'port': data.get('port'),
                      'link': by_index.get(data.get('link')) if isinstance(data.get('link'), int) else data.get('link')})
    addresses = sorted('%s %s/%s' % (e['ifname'], a['local'], a['prefixlen'])
                       for e in ip_json('addr', 'show', netns=netns) for a in e.get('addr_info', [])
                       if a.get('scope') != 'link')
    routes = sorted(json.dumps(_strip(r, ('expires',)), sort_keys=True) for family in ('-4', '-6')
                    for r in ip_json(family, 'route', 'show', 'table', 'all', netns=netns)
                    if not str(r.get('dst', '')).startswith(('fe80', 'ff00')) and r.get('type') not in ('anycast', 'multicast'))
    return {'links': sorted(links, key=lambda x: x['name']), 'addresses': addresses, 'routes': routes}


def kernel_shape():
    snap = {'netns': netns_names(), '': shape()}
    for name in snap['netns']:
        snap[name] = shape(name)
    ruleset = subprocess.run(['nft', '-j', 'list', 'ruleset'], check=True, capture_output=True, text=True).stdout
    snap['nftables'] = [_strip(e, ('handle',)) for e in json.loads(ruleset)['nftables'] if 'metainfo' not in e]
    for path in ('/proc/sys/net/ipv4/ip_forward', '/proc/sys/net/ipv6/conf/all/forwarding'):
        with open(path) as fh:
            snap[path] = fh.read().strip()
    return snap


def users_own():
    """Resources of the user's own, made before the role runs: a namespace
    and a bridge made with the collection's modules (managed, not the
    role's), and a namespace and a bridge made without them."""
    run_module('netns', config=[{'name': 'mine'}])
    run_module('bridge', config=[{'name': 'mine-br', 'addresses': ['198.18.7.1/24']}])
    subprocess.run(['ip', 'netns', 'add', 'own-ns'], check=True)
    subprocess.run(['ip', 'link', 'add', 'own-br', 'type', 'bridge'], check=True)
    subprocess.run(['ip', 'addr', 'add', '198.18.8.1/24', 'dev', 'own-br'], check=True)


def underlay():
    """A stand-in NIC with an address (the overlay's underlay)."""
    subprocess.run(['ip', 'link', 'add', 'ul0', 'type', 'veth', 'peer', 'name', 'ul1'], check=True)
    subprocess.run(['ip', 'addr', 'add', '198.18.0.1/24', 'dev', 'ul0'], check=True)
    for name in ('ul0', 'ul1'):
        subprocess.run(['ip', 'link', 'set', name, 'up'], check=True)


WEB = {'name': 'web', 'subnet': '198.51.100.0/25', 'endpoints': [
    {'name': 'web1', 'ports': [{'host_port': 8080, 'port': 80}]}, {'name': 'web2'}]}
OLD = {'name': 'old', 'subnet': '198.51.100.128/26', 'endpoints': [{'name': 'old1'}]}
DB = {'name': 'db', 'subnet': '203.0.113.0/26', 'icc': False, 'endpoints': [{'name': 'db1'}, {'name': 'db2'}]}


def _bridge_network(tmp):
    common = {'bridge_network_forwarding': False, 'bridge_network_sysctl_file': str(tmp / 'sysctl.conf'),
              'bridge_network_dns_config_dir': str(tmp / 'dns'), 'bridge_network_dns_netns_dir': str(tmp / 'netns'),
              'bridge_network_dns_run_dir': str(tmp / 'run'), 'bridge_network_dns_supervisor': 'process'}
    before = dict(common, bridge_network_networks=[WEB, OLD])
    web = dict(WEB, endpoints=[{'name': 'web1', 'ports': [{'host_port': 8081, 'port': 80}]},
                               {'name': 'web2', 'state': 'absent'}, {'name': 'web3'}])
    after = dict(common, bridge_network_networks=[web, dict(OLD, state='absent'), DB])
    return before, after


def _tenant_networks(tmp):
    acme = {'name': 'acme', 'subnet': '203.0.113.0/26', 'endpoints': [{'name': 'acme1'}, {'name': 'acme2'}]}
    globex = {'name': 'globex', 'subnet': '203.0.113.64/26', 'endpoints': [{'name': 'globex1'}]}
    initech = {'name': 'initech', 'subnet': '203.0.113.128/26', 'endpoints': [{'name': 'initech1'}]}
    common = {'tenant_networks_forwarding': False, 'tenant_networks_sysctl_file': str(tmp / 'sysctl.conf')}
    before = dict(common, tenant_networks_tenants=[acme, globex])
    after = dict(common, tenant_networks_purge=True, tenant_networks_tenants=[
        dict(acme, endpoints=[{'name': 'acme1'}]), dict(globex, state='absent'), initech])
    return before, after


def _overlay_network(_tmp):
    common = {'overlay_network_name': 'ov1', 'overlay_network_vni': 4242, 'overlay_network_subnet': '198.19.0.0/24',
              'overlay_network_underlay_interface': 'ul0'}
    return (dict(common, overlay_network_endpoints=['ep1']),
            dict(common, overlay_network_endpoints=['ep1', 'ep2']))


def _boot_restore(tmp):
    common = {'boot_restore_state_dir': str(tmp / 'state'), 'boot_restore_lib_dir': str(tmp / 'lib'),
              'boot_restore_program': str(tmp / 'hostnet-restore')}
    return None, common


def _prerequisites(_tmp):
    return None, {'prerequisites_install': False, 'prerequisites_check': True}


ROLES = {'bridge_network': _bridge_network, 'tenant_networks': _tenant_networks, 'overlay_network': _overlay_network,
         'boot_restore': _boot_restore, 'prerequisites': _prerequisites}


def build(tmp, role, module_defaults=None):
    """From an empty sandbox: the user's own resources, the role's earlier
    run (without defaults), then the run under test; its kernel shape."""
    _wipe()
    underlay()
    # Forwarding on, IPv4 only (the roles leave it alone: their forwarding
    # variable is false), so a task turning it on for IPv6 shows.
    with open('/proc/sys/net/ipv4/ip_forward', 'w') as fh:
        fh.write('1\n')
    before, after = ROLES[role](tmp)
    if before is not None:
        with open(tmp / 'before.json', 'w') as fh:
            json.dump(before, fh)
        rc, _stats, output = run_playbook(write_play(str(tmp / 'before.yml'), role), '-e', '@%s' % (tmp / 'before.json'))
        assert rc == 0, output[-3000:]
    users_own()
    with open(tmp / 'after.json', 'w') as fh:
        json.dump(after, fh)
    rc, _stats, output = run_playbook(write_play(str(tmp / 'after.yml'), role, module_defaults),
                                      '-e', '@%s' % (tmp / 'after.json'))
    return rc, output, kernel_shape()


def _differences(expected, got):
    out = []
    for key in sorted(set(expected) | set(got)):
        if expected.get(key) != got.get(key):
            out.append('%s: %s\n  -> %s' % (key, json.dumps(expected.get(key))[:1500], json.dumps(got.get(key))[:1500]))
    return out


@pytest.mark.parametrize('role', sorted(ROLES))
def test_role_builds_the_same_under_hostile_module_defaults(tmp_path, role):
    reference_dir = tmp_path / 'reference'
    reference_dir.mkdir()
    rc, output, reference = build(reference_dir, role)
    assert rc == 0, output[-3000:]
    # The user's own resources are there, and the role built something.
    assert {'mine', 'own-ns'} <= set(reference['netns'])
    host_links = [entry['name'] for entry in reference['']['links']]
    assert {'mine-br', 'own-br'} <= set(host_links)
    if role in ('bridge_network', 'tenant_networks', 'overlay_network'):
        assert len(host_links) > 5, host_links
    # Under hostile defaults, every state: the same kernel state.
    for state in ('overridden', 'deleted'):
        workdir = tmp_path / state
        workdir.mkdir()
        rc, output, got = build(workdir, role, copy.deepcopy(hostile_defaults(state)))
        assert rc == 0, '%s: %s' % (state, output[-3000:])
        assert got == reference, '%s:\n%s' % (state, '\n'.join(_differences(reference, got)))
