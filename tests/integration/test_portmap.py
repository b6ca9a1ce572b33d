# -*- coding: utf-8 -*-
"""hostnet.provision.portmap against the real kernel, proven with packets.

The sandbox namespace is "the host": an "outside" namespace hangs off it on
a veth (198.18.0.0/24, 2001:db8:ff::/64), endpoint namespaces sit on
managed bridges (hn-br0 198.51.100.0/24, hn-br1 203.0.113.0/24).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from helpers import quartet, run_module, sh
from traffic import (
    HOST_V4,
    HOST_V6,
    OUTSIDE_V4,
    Servers,
    build,
    elements,
    foreign,
    peer_seen,
    reaches,
    ruleset,
    sysctl,
    wait_file_grows,
)

WEB = {'host_port': 8080, 'destination': '198.51.100.10', 'port': 80}
WEB6 = {'host_port': 8080, 'destination': '2001:db8:100::10', 'port': 80}


@pytest.fixture
def servers():
    srv = Servers()
    yield srv
    srv.stop()


@pytest.fixture
def net(servers):
    """Topology plus a TCP server "hello-a" on ep-a port 80 (both families)."""
    build()
    servers.tcp('ep-a', 80, 'hello-a')
    servers.tcp('ep-a', 80, 'hello-a6', family=6)
    return servers


def test_published_port_reachable_from_everywhere_and_gone_after_removal(net):
    result = run_module('portmap', config=[WEB, WEB6])
    assert result['changed'] and not result.get('failed')
    # From outside the host, by the host's address; the endpoint sees the client.
    assert peer_seen('outside', HOST_V4, 8080) == OUTSIDE_V4
    assert reaches('outside', HOST_V6, 8080, 'hello-a6')
    # From a namespace on another bridge.
    assert reaches('ep-c', HOST_V4, 8080, 'hello-a')
    assert reaches('ep-c', '198.51.100.1', 8080, 'hello-a')
    # From an endpoint of the same bridge, and from the destination itself
    # (hairpin: masqueraded, so the reply comes back through the host).
    assert peer_seen('ep-b', HOST_V4, 8080) == '198.51.100.1'
    assert peer_seen('ep-b', '198.51.100.1', 8080) == '198.51.100.1'
    assert peer_seen('ep-a', HOST_V4, 8080) == '198.51.100.1'
    assert reaches('ep-a', '2001:db8:100::1', 8080, 'hello-a6')
    # From the host itself: 127.0.0.1 (DNAT in output; no route_localnet,
    # see docs/nftables.md) and its own addresses.
    assert reaches(None, '127.0.0.1', 8080, 'hello-a')
    assert reaches(None, HOST_V4, 8080, 'hello-a')
    assert reaches(None, '198.51.100.1', 8080, 'hello-a')
    assert reaches(None, HOST_V6, 8080, 'hello-a6')
    assert sysctl(None, 'net', 'ipv4', 'conf', 'hn-br0', 'route_localnet') == '0'
    # ::1 cannot be DNATed by the kernel (documented): refused, not hanging.
    assert not reaches(None, '::1', 8080, 'hello-a6', timeout=1)

    removed = run_module('portmap', state='deleted', config=[WEB, WEB6])
    # The entries are flushed once every rule is gone (final operations).
    assert removed['commands'] == ['nftables: unpublish tcp *:8080 -> 198.51.100.10:80',
                                   'nftables: unpublish tcp [::]:8080 -> [2001:db8:100::10]:80',
                                   'flush conntrack entries to tcp *:8080',
                                   'flush conntrack entries to tcp [::]:8080']
    for netns, address in (('outside', HOST_V4), ('ep-b', HOST_V4), ('ep-a', HOST_V4), (None, '127.0.0.1'),
                           ('outside', HOST_V6)):
        assert not reaches(netns, address, 8080, 'hello-a', timeout=1), (netns, address)


def test_quartet_and_check_mode_changes_nothing_in_the_ruleset(net):
    config = [WEB, {'protocol': 'udp', 'host_port': '5000-5002', 'destination': '198.51.100.11', 'port': 6000},
              {'host_ip': '127.0.0.1', 'host_port': 8443, 'destination': '198.51.100.11', 'port': 443}]
    before = ruleset()
    predicted = run_module('portmap', check=True, config=config)
    assert ruleset() == before
    first, applied, _again, _check2 = quartet('portmap', config=config)
    assert predicted['commands'] == applied['commands']
    assert first['after'] == applied['after']
    assert [m['assigned_port'] for m in applied['after']] == [8080, 5000, 8443]
    # One element per host port in each of the two maps, recording the range.
    addr = elements('inet', 'dnat4_any_addr')
    assert {'elem': {'val': {'concat': ['udp', 5001]}, 'comment': '5000-5002'}} in [a[0] for a in addr]
    assert len(elements('inet', 'dnat4_any_port')) == 4
    assert len(elements('inet', 'dnat4_addr')) == 1
    # Check mode of a deletion changes nothing either.
    state = ruleset()
    assert run_module('portmap', check=True, state='deleted')['changed'] is True
    assert ruleset() == state


def test_range_maps_each_port_to_the_same_offset(net):
    net.tcp('ep-b', 7001, 'range-7001')
    run_module('portmap', config=[{'host_port': '9000-9002', 'destination': '198.51.100.11', 'port': 7000}])
    assert reaches('outside', HOST_V4, 9001, 'range-7001')
    assert not reaches('outside', HOST_V4, 9000, 'range-7001', timeout=1)


def test_host_ip_limits_the_mapping_and_localhost_only_stays_local(net):
    run_module('portmap', config=[dict(WEB, host_ip='127.0.0.1')])
    assert reaches(None, '127.0.0.1', 8080, 'hello-a')
    assert not reaches(None, HOST_V4, 8080, 'hello-a', timeout=1)
    assert not reaches('outside', HOST_V4, 8080, 'hello-a', timeout=1)


def test_127_is_not_opened_to_the_bridge(net):
    """route_localnet=1 on the bridge must not let endpoints reach the host's
    127.0.0.1 services nor its localhost-only mappings."""
    run_module('portmap', config=[dict(WEB, host_ip='127.0.0.1', host_port=8090)])
    net.tcp(None, 7001, 'host-local')
    assert reaches(None, '127.0.0.1', 7001, 'host-local')
    # Teach ep-b to send 127/8 out of eth0 to the gateway (as an attacker would).
    for cmd in (('ip', 'addr', 'del', '127.0.0.1/8', 'dev', 'lo'),
                ('ip', 'route', 'del', 'local', '127.0.0.0/8', 'dev', 'lo', 'table', 'local'),
                ('ip', 'route', 'del', 'local', '127.0.0.1', 'dev', 'lo', 'table', 'local'),
                ('sysctl', '-qw', 'net.ipv4.conf.eth0.route_localnet=1'),
                ('sysctl', '-qw', 'net.ipv4.conf.all.route_localnet=1'),
                ('ip', 'route', 'add', '127.0.0.0/8', 'via', '198.51.100.1', 'dev', 'eth0')):
        sh(*cmd, netns='ep-b', check=False)
    assert sh('ip', 'route', 'get', '127.0.0.1', netns='ep-b').stdout.startswith('127.0.0.1 via 198.51.100.1')
    assert not reaches('ep-b', '127.0.0.1', 7001, 'host-local', timeout=1)
    assert not reaches('ep-b', '127.0.0.1', 8090, 'hello-a', timeout=1)
    # Without our drop rule it stays closed (route_localnet is off) ...
    handle = next(r['rule']['handle'] for r in _rules('raw_prerouting'))
    sh('nft', 'delete', 'rule', 'inet', 'hostnet', 'raw_prerouting', 'handle', str(handle))
    assert not reaches('ep-b', '127.0.0.1', 7001, 'host-local', timeout=1)
    # Control: ... and with route_localnet on (as earlier versions set it) it opens.
    sh('sysctl', '-qw', 'net.ipv4.conf.hn-br0.route_localnet=1')
    assert reaches('ep-b', '127.0.0.1', 7001, 'host-local')
    # ... and a re-run repairs the table's program.
    repaired = run_module('portmap', config=[dict(WEB, host_ip='127.0.0.1', host_port=8090)])
    assert repaired['commands'] == ['nftables: restore the rules of tables inet/bridge hostnet']
    assert not reaches('ep-b', '127.0.0.1', 7001, 'host-local', timeout=1)


def _rules(chain):
    out = subprocess.run(['nft', '-j', 'list', 'chain', 'inet', 'hostnet', chain], check=True,
                         capture_output=True, text=True).stdout
    return [o for o in json.loads(out)['nftables'] if 'rule' in o]


def test_conntrack_flushed_when_udp_destination_changes(net, tmp_path):
    sink_a, sink_b = str(tmp_path / 'a'), str(tmp_path / 'b')
    net.udp_sink('ep-a', 5353, sink_a)
    net.udp_sink('ep-b', 5353, sink_b)
    to_a = {'protocol': 'udp', 'host_port': 5353, 'destination': '198.51.100.10', 'port': 5353}
    run_module('portmap', config=[to_a])
    net.udp_stream('outside', HOST_V4, 5353, source_port=40000)
    assert wait_file_grows(sink_a)
    # Control: changing the map behind the module's back (no flush) leaves the
    # running flow on its old destination; then put it back.
    for dest in ('198.51.100.11', '198.51.100.10'):
        sh('nft', 'delete', 'element', 'inet', 'hostnet', 'dnat4_any_addr', '{ udp . 5353 }')
        sh('nft', 'add', 'element', 'inet', 'hostnet', 'dnat4_any_addr', '{ udp . 5353 comment "5353" : %s }' % dest)
        assert wait_file_grows(sink_a)
        assert not wait_file_grows(sink_b, timeout=1.0)
    # The module's change flushes the flow's conntrack entry: it moves to ep-b.
    result = run_module('portmap', config=[dict(to_a, destination='198.51.100.11')])
    assert 'flush conntrack entries to udp *:5353' in result['commands']
    assert wait_file_grows(sink_b)
    conntrack = sh('conntrack', '-L', '-p', 'udp', '--dport', '5353', check=False).stdout
    assert '198.51.100.10' not in conntrack


def test_one_call_flushes_the_entries_of_every_mapping_it_changes(net, tmp_path):
    """The flush of a call runs once its rules are all in place, one dump
    for all its mappings: two running flows, both mappings swapped in one
    call, both flows move."""
    sinks = dict(((ep, port), str(tmp_path / ('%s-%d' % (ep, port)))) for ep in ('ep-a', 'ep-b') for port in (5353, 5354))
    for (ep, port), path in sinks.items():
        net.udp_sink(ep, port, path)
    maps = [{'protocol': 'udp', 'host_port': 5353, 'destination': '198.51.100.10', 'port': 5353},
            {'protocol': 'udp', 'host_port': 5354, 'destination': '198.51.100.11', 'port': 5354}]
    run_module('portmap', config=maps)
    net.udp_stream('outside', HOST_V4, 5353, source_port=40000)
    net.udp_stream('outside', HOST_V4, 5354, source_port=40001)
    assert wait_file_grows(sinks[('ep-a', 5353)]) and wait_file_grows(sinks[('ep-b', 5354)])
    swapped = [dict(maps[0], destination='198.51.100.11'), dict(maps[1], destination='198.51.100.10')]
    result = run_module('portmap', config=swapped)
    assert [c for c in result['commands'] if c.startswith('flush')] == \
        ['flush conntrack entries to udp *:5353', 'flush conntrack entries to udp *:5354']
    assert wait_file_grows(sinks[('ep-b', 5353)]) and wait_file_grows(sinks[('ep-a', 5354)])
    conntrack = sh('conntrack', '-L', '-p', 'udp', check=False).stdout
    assert 'dport=5353 src=198.51.100.10' not in conntrack and 'dport=5354 src=198.51.100.11' not in conntrack


@contextlib.contextmanager
def nft_generations():
    """The ruleset generations committed meanwhile (``nft monitor``): one
    per transaction."""
    seen = []
    with subprocess.Popen(['nft', 'monitor'], stdout=subprocess.PIPE, text=True) as monitor:
        try:
            time.sleep(0.3)  # subscribed before the first transaction
            yield seen
            time.sleep(0.3)
        finally:
            monitor.terminate()
            out = monitor.communicate(timeout=5)[0]
    seen.extend(line for line in out.splitlines() if line.startswith('# new generation'))


def test_the_mappings_of_one_call_change_the_ruleset_in_one_transaction(net):
    mappings = [{'host_port': 8100 + i, 'destination': '198.51.100.10', 'port': 80} for i in range(20)]
    run_module('portmap', config=[WEB])  # the tables exist
    with nft_generations() as published:
        result = run_module('portmap', config=mappings)
    assert len(result['commands']) == 20 and len(published) == 1, published
    assert reaches('outside', HOST_V4, 8119, 'hello-a') and reaches('outside', HOST_V4, 8080, 'hello-a')
    with nft_generations() as removed:
        result = run_module('portmap', state='deleted', config=mappings)
    assert len(published) == 1 and len(removed) == 1, removed
    assert not reaches('outside', HOST_V4, 8100, 'hello-a', timeout=1)
    assert reaches('outside', HOST_V4, 8080, 'hello-a')


def test_auto_port_is_chosen_once_and_kept(net):
    net.tcp(None, 49152, 'busy')  # a listener on the host takes the first candidate
    auto = {'host_port': 'auto', 'destination': '198.51.100.10', 'port': 80}
    first = run_module('portmap', config=[auto, {'host_port': 49153, 'destination': '198.51.100.11', 'port': 80}])
    port = first['after'][0]['assigned_port']
    assert first['after'][0]['host_port'] == 'auto' and port == 49154
    assert reaches('outside', HOST_V4, port, 'hello-a')
    again = run_module('portmap', config=[auto])
    assert again['changed'] is False
    gathered = run_module('portmap', state='gathered')['gathered']
    assert {'netns': None, 'protocol': 'tcp', 'host_ip': None, 'host_port': 'auto', 'destination': '198.51.100.10',
            'port': 80, 'assigned_port': port} in gathered
    # The record is the map element's comment: a new process finds it.
    assert {'elem': {'val': {'concat': ['tcp', port]}, 'comment': 'auto'}} in \
        [e[0] for e in elements('inet', 'dnat4_any_addr')]
    assert run_module('portmap', state='overridden', config=gathered)['changed'] is False


def test_host_port_clash_is_refused_naming_both(net):
    run_module('portmap', config=[WEB])
    state = ruleset()
    clash = {'host_port': '8079-8081', 'destination': '198.51.100.11', 'port': 80}
    result = run_module('portmap', fail=True, config=[clash])
    assert result['msg'] == ('portmap tcp *:8079-8081 -> 198.51.100.11:80-82: host_port 8079-8081: host port '
                             '8080/tcp is already '
                             'published by portmap tcp *:8080 -> 198.51.100.10:80')
    assert result['field'] == 'host_port'
    # A specific address of the same family clashes with the wildcard too.
    result = run_module('portmap', fail=True, config=[dict(WEB, host_ip=HOST_V4, destination='198.51.100.11')])
    assert 'already published by portmap tcp *:8080 -> 198.51.100.10:80' in result['msg']
    # Within one call: refused before the first item is applied.
    result = run_module('portmap', fail=True, config=[dict(WEB, host_port=8085),
                                                      dict(WEB, host_port='8084-8086', destination='198.51.100.11')])
    assert result['msg'].endswith('host port 8085/tcp is already published by portmap tcp *:8085 -> 198.51.100.10:80')
    assert result['changed'] is False
    assert ruleset() == state
    # Other protocol, other family, other explicit address: no clash.
    run_module('portmap', config=[dict(WEB, protocol='udp'), WEB6])
    run_module('portmap', config=[dict(WEB, host_port=8082, host_ip=HOST_V4),
                                  dict(WEB, host_port=8082, host_ip='198.51.100.1')])


def test_overridden_gathered_round_trip_and_deleted(net):
    config = [WEB, WEB6, {'protocol': 'udp', 'host_port': 53, 'destination': '198.51.100.11', 'port': 53}]
    run_module('portmap', config=config)
    gathered = run_module('portmap', state='gathered')['gathered']
    assert len(gathered) == 3
    assert run_module('portmap', state='overridden', config=gathered)['changed'] is False
    result = run_module('portmap', state='overridden', config=[WEB])
    assert result['commands'] == ['nftables: unpublish tcp [::]:8080 -> [2001:db8:100::10]:80',
                                  'nftables: unpublish udp *:53 -> 198.51.100.11:53',
                                  'flush conntrack entries to tcp [::]:8080',
                                  'flush conntrack entries to udp *:53']
    assert reaches('outside', HOST_V4, 8080, 'hello-a')
    assert run_module('portmap', state='deleted')['commands'] == [
        'nftables: unpublish tcp *:8080 -> 198.51.100.10:80', 'flush conntrack entries to tcp *:8080']
    assert run_module('portmap', state='gathered')['gathered'] == []


def test_other_tables_survive_byte_identical(net):
    subprocess.run(['nft', '-f', '-'], check=True, text=True, input=(
        'table inet filter {\n chain forward { type filter hook forward priority 0; policy accept;\n'
        '  ip saddr 198.18.2.0/24 counter accept\n }\n}\n'
        'table ip nat {\n chain postrouting { type nat hook postrouting priority 100; policy accept;\n'
        '  oifname "nothing0" masquerade\n }\n}\n'))
    theirs = foreign(ruleset())
    run_module('portmap', config=[WEB, WEB6])
    run_module('bridge', config=[{'name': 'hn-br0', 'icc': False, 'isolated': True, 'host_access': False}])
    run_module('portmap', state='overridden', config=[WEB])
    assert reaches('outside', HOST_V4, 8080, 'hello-a')
    run_module('portmap', state='deleted')
    run_module('bridge', state='deleted')
    assert foreign(ruleset()) == theirs
    # Nothing of ours is left when nothing is configured.
    assert 'hostnet' not in ruleset()


def test_flush_ruleset_by_someone_else_then_rerun_restores(net):
    run_module('portmap', config=[WEB])
    sh('nft', 'flush', 'ruleset')
    assert not reaches('outside', HOST_V4, 8080, 'hello-a', timeout=1)
    from traffic import BR0, BR1
    bridges = run_module('bridge', config=[BR0, BR1])
    assert bridges['changed'] is True
    assert run_module('portmap', config=[WEB])['changed'] is True
    assert reaches('outside', HOST_V4, 8080, 'hello-a')
    assert reaches(None, '127.0.0.1', 8080, 'hello-a')
    assert run_module('portmap', config=[WEB])['changed'] is False
    assert run_module('bridge', config=[BR0, BR1])['changed'] is False


def test_forwarding_is_not_changed_silently(net):
    sh('sysctl', '-qw', 'net.ipv4.ip_forward=0')
    state = ruleset()
    result = run_module('portmap', fail=True, config=[WEB])
    assert 'net.ipv4.ip_forward=0' in result['msg'] and result['field'] == 'enable_forwarding'
    assert ruleset() == state and sysctl(None, 'net', 'ipv4', 'ip_forward') == '0'
    check = run_module('portmap', check=True, enable_forwarding=True, config=[WEB])
    assert check['commands'][0] == 'enable IPv4 forwarding in the current namespace (net.ipv4.ip_forward=1)'
    assert sysctl(None, 'net', 'ipv4', 'ip_forward') == '0'
    applied = run_module('portmap', enable_forwarding=True, config=[WEB])
    assert applied['commands'] == check['commands']
    assert sysctl(None, 'net', 'ipv4', 'ip_forward') == '1'
    assert reaches('outside', HOST_V4, 8080, 'hello-a')


@pytest.mark.parametrize('item, field, fragment', [
    ({'host_port': 0, 'destination': '198.51.100.10', 'port': 80}, 'host_port', 'not a port number'),
    ({'host_port': '90-80', 'destination': '198.51.100.10', 'port': 80}, 'host_port', 'A < B'),
    ({'host_port': 'many', 'destination': '198.51.100.10', 'port': 80}, 'host_port', 'not a port'),
    ({'host_port': 8080, 'destination': '198.51.100.300', 'port': 80}, 'destination', 'not a valid'),
    ({'host_port': 8080, 'destination': '127.0.0.1', 'port': 80}, 'destination', 'not an endpoint'),
    ({'host_port': 8080, 'destination': '198.51.100.10', 'port': 70000}, 'port', 'not a port number'),
    ({'host_port': '65530-65535', 'destination': '198.51.100.10', 'port': 65533}, 'port', 'passes 65535'),
    ({'host_port': 8080, 'host_ip': HOST_V6, 'destination': '198.51.100.10', 'port': 80}, 'destination',
     'different address families'),
    ({'host_port': 8080, 'host_ip': '::1', 'destination': '2001:db8:100::10', 'port': 80}, 'host_ip',
     'does not DNAT IPv6 loopback'),
    ({'host_port': 'auto', 'destination': '198.51.100.10'}, 'host_port', 'needs destination and port'),
    ({'host_port': 8080, 'destination': '198.51.100.10'}, 'port', 'required'),
    ({'host_port': 8080, 'port': 80}, 'destination', 'address family'),
    ({'host_port': 8080, 'destination': '198.51.100.10', 'port': 80, 'netns': 'missing'}, 'netns', 'does not exist'),
])
def test_bad_input_refused_before_any_change(net, item, field, fragment):
    state = ruleset()
    result = run_module('portmap', fail=True, config=[dict(WEB, host_port=7070), item])
    assert fragment in result['msg'], result['msg']
    assert result['field'] == field
    assert ruleset() == state


def test_libnftables_missing_is_a_clear_error(net, monkeypatch):
    from ansible_collections.hostnet.provision.plugins.module_utils import _nft
    monkeypatch.setattr(_nft, 'LIBRARY', 'libnftables-missing.so.1')
    monkeypatch.setattr(_nft._Lib, 'handle', None)
    monkeypatch.setattr(_nft._Lib, 'error', None)
    result = run_module('portmap', fail=True, config=[WEB])
    assert 'install the package "nftables"' in result['msg'] and 'libnftables1' in result['msg']


# -- ports and policies that belong to others --------------------------------------

def _settled(entry):
    # What the kernel changes by itself after the fixture built the topology
    # (DAD, bridge port timers and STP states) is not a change of the call.
    if isinstance(entry, dict):
        return dict((k, _settled(v)) for k, v in entry.items()
                    if k not in ('tentative', 'state', 'routes6') and not k.endswith('_timer'))
    if isinstance(entry, list):
        return [_settled(v) for v in entry]
    return entry


def _snapshot():
    from helpers import kernel_snapshot
    return _settled(kernel_snapshot())


def run_alone(*args, **kwargs):
    """run_module with the process-wide warning list emptied first (modules
    run in-process here, and Ansible keeps warnings per process), so that a
    result's warnings are this run's own."""
    from ansible.module_utils.common import warnings as ansible_warnings
    ansible_warnings._global_warnings.clear()
    return run_module(*args, **kwargs)


def warnings(result):
    """The warning texts of a result (ansible-core 2.19 wraps them as events)."""
    return [w['event']['msg'] if isinstance(w, dict) else w for w in result.get('warnings') or []]


@contextlib.contextmanager
def host_listener(*address):
    """A socat TCP listener in the sandbox's own namespace (the host), ended
    by its process id when the block ends. Yields its pid."""
    from traffic import wait_listening
    proc = subprocess.Popen(['timeout', '60', 'socat'] + list(address) + ['SYSTEM:echo host-service'],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        port = int(address[0].split(':')[1].split(',')[0])
        wait_listening(None, 'tcp6' if address[0].startswith('TCP6') else 'tcp', port)
        socat = [int(p) for p in sh('pgrep', '-P', str(proc.pid)).stdout.split()]
        yield socat[0] if socat else proc.pid
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def test_port_a_host_process_listens_on_is_refused_naming_it(net):
    with host_listener('TCP4-LISTEN:8080,reuseaddr,fork') as pid:
        before = _snapshot()
        for check in (True, False):
            failed = run_alone('portmap', check=check, fail=True, config=[WEB])
            assert failed['field'] == 'host_port' and failed['value'] == 8080 and not failed['changed']
            assert 'host port 8080/tcp is held by socat (pid %d)' % pid in failed['msg'], failed['msg']
            assert 'allow_listening' in failed['msg']
        assert _snapshot() == before
        assert reaches(None, HOST_V4, 8080, 'host-service')
        # IPv6 only on the port: an IPv4 mapping takes nothing from it... but
        # a wildcard IPv6 socket takes IPv4 too (dual-stack), so it counts.
    with host_listener('TCP6-LISTEN:8080,reuseaddr,fork') as pid:
        failed = run_alone('portmap', fail=True, config=[WEB])
        assert '(pid %d), listening on [::]' % pid in failed['msg'], failed['msg']
    # A listener on 127.0.0.1 only does not compete with a mapping on another address.
    with host_listener('TCP4-LISTEN:8081,bind=127.0.0.1,reuseaddr,fork'):
        run_alone('portmap', config=[dict(WEB, host_port=8081, host_ip=HOST_V4)])
        assert reaches('outside', HOST_V4, 8081, 'hello-a')
    # The explicit override publishes anyway, and says what it takes.
    with host_listener('TCP4-LISTEN:8082,reuseaddr,fork') as pid:
        result = run_alone('portmap', config=[dict(WEB, host_port=8082, allow_listening=True)])
        assert result['changed']
        assert [w for w in warnings(result) if 'host port 8082/tcp is held by socat (pid %d)' % pid in w]
        assert reaches('outside', HOST_V4, 8082, 'hello-a')


def _sctp_supported():
    import socket
    try:
        socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_SCTP).close()
        return True
    except OSError:
        return False


def test_sctp_port_a_host_process_has_bound_is_refused_naming_it(net):
    """Needs a kernel with SCTP (the sctp module): /proc/net/sctp/eps exists
    only then, and without it no SCTP socket can hold a port."""
    if not _sctp_supported():
        pytest.skip('this kernel has no SCTP (sctp module not available): no SCTP socket can exist')
    code = ('import socket, time\n'
            's = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_SCTP)\n'
            's.bind(("0.0.0.0", 9132)); s.listen(1); print("ready", flush=True); time.sleep(60)\n')
    proc = subprocess.Popen([sys.executable, '-c', code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == 'ready'
        before = ruleset()
        failed = run_alone('portmap', fail=True, config=[dict(WEB, protocol='sctp', host_port=9132)])
        assert 'host port 9132/sctp is held by python' in failed['msg'] and '(pid %d)' % proc.pid in failed['msg'], \
            failed['msg']
        assert ruleset() == before
        # TCP on the same port number is another protocol's port.
        run_alone('portmap', config=[dict(WEB, host_port=9132)])
    finally:
        proc.kill()
        proc.wait(timeout=10)


def test_port_another_table_dnats_is_refused_naming_table_and_chain(net):
    sh('nft', 'add table ip nat; '
       'add chain ip nat PREROUTING { type nat hook prerouting priority dstnat; policy accept; }; '
       'add chain ip nat DOCKER; add rule ip nat PREROUTING fib daddr type local jump DOCKER; '
       'add rule ip nat DOCKER iifname != "docker0" tcp dport { 8080, 9000-9010 } dnat to 203.0.113.99:80')
    before = _snapshot()
    for config in ([WEB], [dict(WEB, host_port='9005-9006')]):
        failed = run_alone('portmap', fail=True, config=config)
        assert 'is already DNATed by ip nat DOCKER' in failed['msg'], failed['msg']
        assert failed['field'] == 'host_port' and failed['value'] == config[0]['host_port']
        assert 'allow_foreign_dnat' in failed['msg']
    # UDP on the same port is not what the rule takes.
    assert _snapshot() == before
    run_alone('portmap', config=[dict(WEB, protocol='udp')])
    result = run_alone('portmap', config=[dict(WEB, allow_foreign_dnat=True)])
    assert result['changed'] and [w for w in warnings(result) if 'ip nat DOCKER' in w]
    # "auto" never picks a port another table takes.
    sh('nft', 'add rule ip nat DOCKER tcp dport 49152 dnat to 203.0.113.99:22')
    auto = run_alone('portmap', config=[{'host_port': 'auto', 'destination': '198.51.100.10', 'port': 22}])
    assert auto['after'][0]['assigned_port'] == 49153


def test_another_tables_dnat_counts_only_on_the_addresses_it_matches(net):
    """A foreign DNAT limited to one destination address takes that address
    only; one with no address match takes them all; an ip-family table takes
    no IPv6 mapping."""
    sh('nft', 'add table ip nat; '
       'add chain ip nat PREROUTING { type nat hook prerouting priority dstnat; policy accept; }; '
       'add chain ip nat DOCKER; add rule ip nat PREROUTING fib daddr type local jump DOCKER; '
       'add rule ip nat DOCKER ip daddr 198.51.100.7 tcp dport 8080 dnat to 203.0.113.99:80; '
       'add rule ip nat DOCKER ip daddr { 198.18.0.1, 198.18.0.100-198.18.0.120 } tcp dport 8081 '
       'dnat to 203.0.113.99:80; '
       'add rule ip nat DOCKER tcp dport 8082 dnat to 203.0.113.99:80')
    # Another address than the rule's: published, and the port answers.
    result = run_alone('portmap', config=[dict(WEB, host_ip=HOST_V4)])
    assert result['changed'] and not [w for w in warnings(result) if 'DOCKER' in w]
    assert reaches('outside', HOST_V4, 8080, 'hello-a')
    before = ruleset()
    # The rule's own address (in a set), no address match at all, or every
    # address of the namespace (no host_ip): refused, nothing changed.
    for entry, port in ((dict(WEB, host_port=8081, host_ip=HOST_V4), 8081),
                        (dict(WEB, host_port=8082, host_ip=HOST_V4), 8082),
                        (dict(WEB, host_port=8080, host_ip='198.51.100.1'), None),
                        (dict(WEB, host_port=8081), 8081)):
        if port is None:
            run_alone('portmap', config=[entry])  # 198.51.100.1 is not the rule's 198.51.100.7
            run_alone('portmap', state='deleted', config=[entry])
            before = ruleset()
            continue
        failed = run_alone('portmap', fail=True, config=[entry])
        assert 'host port %d/tcp is already DNATed by ip nat DOCKER' % port in failed['msg'], failed['msg']
        assert ruleset() == before
    # An ip-family table takes no IPv6 mapping, whatever its ports.
    result = run_alone('portmap', config=[dict(WEB6, host_port=8082, host_ip=HOST_V6)])
    assert result['changed']
    assert reaches('outside', HOST_V6, 8082, 'hello-a6')


def test_foreign_forward_drop_policy_is_warned_every_run_and_is_true(net):
    sh('nft', 'add table ip filter; '
       'add chain ip filter FORWARD { type filter hook forward priority filter; policy drop; }')
    first = run_alone('portmap', config=[WEB])
    again = run_alone('portmap', config=[WEB])
    assert first['changed'] and not again['changed']
    for result in (first, again):
        warned = [w for w in warnings(result) if w.startswith('WARNING: ') and 'ip filter FORWARD' in w]
        assert len(warned) == 1, warnings(result)
        assert result['firewall'] == [{'netns': None, 'family': 'ipv4', 'chain': 'ip filter FORWARD',
                                       'policy': 'drop'}]
    # The warning is true: the published port does not answer from outside.
    assert not reaches('outside', HOST_V4, 8080, 'hello-a', timeout=1)
    # Accepting DNATed connections there ends both the drop and the warning.
    sh('nft', 'add rule ip filter FORWARD ct status dnat accept')
    sh('nft', 'add rule ip filter FORWARD ct state established,related accept')
    assert reaches('outside', HOST_V4, 8080, 'hello-a')
    fine = run_alone('portmap', config=[WEB])
    assert fine['firewall'] == [] and not [w for w in warnings(fine) if 'FORWARD' in w]


def test_dual_stack_endpoint_published_over_both_families(net):
    entry = {'host_port': 8080, 'destination': '198.51.100.10', 'destination6': '2001:db8:100::10', 'port': 80}
    check, applied, _again, _check2 = quartet('portmap', config=[entry])
    published = [c for c in applied['commands'] if c.startswith('nftables: publish')]
    assert published == ['nftables: publish tcp *:8080 -> 198.51.100.10:80',
                         'nftables: publish tcp [::]:8080 -> [2001:db8:100::10]:80']
    # Real TCP over IPv6 and IPv4 from another namespace (socat clients).
    assert reaches('outside', HOST_V6, 8080, 'hello-a6')
    assert reaches('outside', HOST_V4, 8080, 'hello-a')
    assert reaches('ep-c', HOST_V6, 8080, 'hello-a6')
    gathered = run_alone('portmap', state='gathered')['gathered']
    assert sorted(g['destination'] for g in gathered) == ['198.51.100.10', '2001:db8:100::10']
    removed = run_alone('portmap', state='deleted', config=[entry])
    assert len([c for c in removed['commands'] if c.startswith('nftables: unpublish')]) == 2
    assert not reaches('outside', HOST_V6, 8080, 'hello-a6', timeout=1)
