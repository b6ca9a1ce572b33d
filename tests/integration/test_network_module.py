# -*- coding: utf-8 -*-
"""The network module: bridge networks whole, in one call.

What the roles rely on beyond the single-purpose modules' own tests: the
steps share one undo list (a kernel refusal in a later step takes back the
earlier steps' changes), a converged run returns counts rather than every
resource, and a network's gateway keeps its MAC while endpoints join and
leave (the endpoints' neighbour caches stay right).
"""

from __future__ import annotations

import pytest

from helpers import ip_json, kernel_snapshot, run_module, sh, snapshot_diff

from ansible_collections.hostnet.provision.plugins.module_utils._topology import bridge_mac


def _net(endpoints, subnet6=None, state='present'):
    net = {'name': 'nm', 'subnet': '198.51.100.0/26', 'purge': True, 'state': state,
           'endpoints': [{'name': 'nm-%s' % e} for e in endpoints]}
    if subnet6:
        net['subnet6'] = subnet6
    return [net]


@pytest.fixture
def network(tmp_path):
    params = {'sysctl_file': str(tmp_path / 'sysctl.conf')}
    yield params
    run_module('network', networks=_net([], state='absent'), **params)


def _mac(name):
    return ip_json('link', 'show', 'dev', name)[0]['address']


def test_the_gateway_keeps_its_mac_while_endpoints_join_and_leave(network):
    run_module('network', networks=_net(['a']), **network)
    mac = _mac('br-nm')
    assert mac == bridge_mac('br-nm')
    # Seven more ports with the kernel's random MACs: without a MAC of its
    # own the bridge would take the lowest of them (odds 7 in 8 here).
    run_module('network', networks=_net(['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h']), **network)
    ports = [link['address'] for link in ip_json('link', 'show', 'master', 'br-nm')]
    assert len(ports) == 8 and _mac('br-nm') == mac
    run_module('network', networks=_net(['b', 'c']), **network)
    assert _mac('br-nm') == mac
    # An endpoint's neighbour entry for the gateway stays valid.
    sh('ping', '-c', '1', '-W', '2', '198.51.100.1', netns='nm-b')
    neigh = ip_json('neigh', 'show', '198.51.100.1', netns='nm-b')
    assert [n['lladdr'] for n in neigh] == [mac]


def test_a_refusal_in_a_later_step_undoes_the_earlier_steps(network):
    """The endpoint step fails at apply time (IPv6 is off in an endpoint's
    namespace, which no check before the change can know), after the
    namespace step made a namespace and the bridge step gave the bridge an
    IPv6 gateway: nothing of the call stays."""
    run_module('network', networks=_net(['a']), **network)
    sh('sysctl', '-qw', 'net.ipv6.conf.all.disable_ipv6=1', netns='nm-a')
    sh('sysctl', '-qw', 'net.ipv6.conf.eth0.disable_ipv6=1', netns='nm-a')
    before = kernel_snapshot()
    failed = run_module('network', fail=True, networks=_net(['a', 'b'], subnet6='2001:db8:77::/64'), **network)
    assert 'nothing of this call was kept' in failed['msg'], failed['msg']
    assert snapshot_diff(before, kernel_snapshot()) == []
    assert 'nm-b' not in sh('ip', 'netns', 'list').stdout


def test_a_converged_run_returns_counts_not_resources(network):
    made = run_module('network', diff=False, networks=_net(['a', 'b']), **network)
    assert made['changed'] and 'diff' not in made
    assert [s['step'] for s in made['steps']] == ['namespaces', 'bridges', 'endpoints', 'resolvers']
    again = run_module('network', diff=False, networks=_net(['a', 'b']), **network)
    assert not again['changed'] and again['commands'] == []
    assert [(s['resources'], s['changed']) for s in again['steps']] == [(2, 0), (1, 0), (2, 0), (1, 0)]
    assert set(again) <= {'changed', 'commands', 'steps', 'report', 'families', 'dns', 'invocation', 'warnings'}
    # With --diff: the changed resources only (one more endpoint, its pair).
    more = run_module('network', diff=True, networks=_net(['a', 'b', 'c']), **network)
    changed = [k for d in more['diff'] for k in d['after']]
    assert sorted(changed) == ['nm-c', 'venm-nm-c'], more['diff']
