# -*- coding: utf-8 -*-
"""Recorded desired state, hostnet-restore and the per-host lock, against
the real kernel (inside the sandbox).

The records go to the throwaway HOSTNET_STATE_DIR that conftest sets, never
to /etc/hostnet. The restore runs as the real launcher
(roles/boot_restore/files/hostnet-restore) in a subprocess, with the engine
from this checkout; what it makes is read back through ``ip -j``,
``bridge -j``, ``nft -j`` and proven with packets.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import subprocess
import sys
import time

import pytest

from helpers import kernel_snapshot, ping, run_module, sh, wait_for
from traffic import HOST_V4, Servers, build, reaches, settle

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LAUNCHER = os.path.join(REPO, 'roles', 'boot_restore', 'files', 'hostnet-restore')
LIB = os.path.join(REPO, '.cache', 'collections')

WEB = {'host_port': 8080, 'destination': '198.51.100.10', 'port': 80}
MACVLAN = {'name': 'eth0', 'netns': 'ep-m', 'parent': 'nic0', 'mode': 'bridge', 'addresses': ['198.19.6.10/24']}
VXLANS = [{'name': 'vx0', 'vni': 42, 'local': '198.18.0.1', 'dev': 'hn-up', 'addresses': ['198.19.5.1/24']},
          {'name': 'vx0', 'netns': 'outside', 'vni': 42, 'local': '198.18.0.2', 'dev': 'eth0',
           'addresses': ['198.19.5.2/24']}]
PEERS = [{'device': 'vx0', 'peers': ['198.18.0.2']}, {'device': 'vx0', 'netns': 'outside', 'peers': ['198.18.0.1']}]


def state_dir():
    return os.environ['HOSTNET_STATE_DIR']


def records():
    """{file name: record} of the state directory."""
    out = {}
    for name in sorted(os.listdir(state_dir())) if os.path.isdir(state_dir()) else []:
        with open(os.path.join(state_dir(), name)) as fh:
            out[name] = json.load(fh)
    return out


def restore(*args, env=None):
    """Run hostnet-restore as a program; (exit status, stdout lines)."""
    environ = dict(os.environ, HOSTNET_RESTORE_LIB=LIB, HOSTNET_RESTORE_PYTHON=sys.executable, **(env or {}))
    proc = subprocess.run([LAUNCHER] + list(args), capture_output=True, text=True, env=environ,
                          timeout=300, check=False)
    assert not proc.stderr.strip(), proc.stderr
    return proc.returncode, proc.stdout.splitlines()


@pytest.fixture
def servers():
    srv = Servers()
    yield srv
    srv.stop()


def stand_in_nic():
    sh('ip', 'link', 'add', 'nic0', 'type', 'veth', 'peer', 'name', 'nic0-far')
    sh('ip', 'link', 'set', 'nic0', 'up')
    sh('ip', 'link', 'set', 'nic0-far', 'up')


def build_everything():
    """Bridges with masquerade and endpoints, a published port, a macvlan on
    a stand-in NIC, a VXLAN between the host and "outside" with peers."""
    build()
    run_module('portmap', config=[WEB])
    stand_in_nic()
    run_module('netns', config=[{'name': 'ep-m'}])
    run_module('macvlan', config=[MACVLAN])
    run_module('vxlan', config=VXLANS)
    run_module('vxlan_peer', config=PEERS)


def reboot():
    """What a reboot takes: every namespace, link and nftables table the
    collection made, /run and the forwarding switches. The stand-in NIC
    (the machine's own) and the records in the state directory stay."""
    sh('ip', '-all', 'netns', 'delete')
    for name in os.listdir('/sys/class/net'):
        if name not in ('lo', 'nic0', 'nic0-far'):
            sh('ip', 'link', 'del', name, check=False)
    for family in ('inet', 'bridge'):
        sh('nft', 'delete', 'table', family, 'hostnet', check=False)
    sh('rm', '-rf', '/run/hostnet')
    for path in ('/proc/sys/net/ipv4/ip_forward', '/proc/sys/net/ipv6/conf/all/forwarding'):
        with open(path, 'w') as fh:
            fh.write('0\n')
    assert sh('nft', 'list', 'tables').stdout.strip() == ''
    assert set(os.listdir('/sys/class/net')) <= {'lo', 'nic0', 'nic0-far'}


_KERNEL_CHOSEN = ('ifindex', 'link_index', 'link', 'link_netnsid', 'address', 'broadcast', 'handle', 'inode',
                  'cookie', 'dev', 'since', 'perm_address', 'parentbus', 'parentdev', 'ifalias_index',
                  'stats', 'stats64', 'gso_max_size', 'gso_max_segs', 'tso_max_size', 'tso_max_segs',
                  'gro_max_size', 'gso_ipv4_max_size', 'gro_ipv4_max_size', 'id', 'bridge_id', 'root_id',
                  'designated_root', 'designated_bridge', 'no', 'root_port', 'designated_port', 'port_no',
                  'port_id', 'hash_elasticity', 'lladdr', 'mac', 'addr_gen_mode', 'mcast_router', 'ifa_flags',
                  'flags', 'max_mtu', 'min_mtu', 'num_tx_queues', 'num_rx_queues', 'group', 'qdisc',
                  'inet6_addr_gen_mode', 'af_spec', 'proto_down', 'netnsid', 'linkmode')


def _strip(value):
    if isinstance(value, dict):
        return dict((k, _strip(v)) for k, v in value.items() if k not in _KERNEL_CHOSEN)
    if isinstance(value, list):
        items = [_strip(v) for v in value]
        return sorted(items, key=lambda v: json.dumps(v, sort_keys=True))
    return value


def what_matters(snap):
    """A kernel snapshot without what the kernel chooses (indexes, random
    MACs, link-local addresses, handles) and without the netns records'
    identities (new namespaces are new): what the restore must bring back."""
    out = {}
    for name, view in snap.items():
        if name in ('records', 'sysctl', 'netns', 'nftables'):
            continue
        if name.startswith('nftables in '):
            out[name] = _strip(view)
            continue
        links = dict((link['ifname'], {'kind': (link.get('linkinfo') or {}).get('info_kind'),
                                       'mtu': link.get('mtu'), 'up': 'UP' in link.get('flags', []),
                                       'master': link.get('master'), 'alias': link.get('ifalias')})
                     for link in view['links'])
        addrs = sorted('%s %s/%s' % (a['ifname'], i['local'], i['prefixlen']) for a in view['addresses']
                       for i in a.get('addr_info', []) if i.get('scope') == 'global')
        routes = sorted('%s %s %s %s %s' % (r.get('dst'), r.get('gateway'), r.get('dev'), r.get('protocol'),
                                            r.get('table')) for r in view['routes4'] + view['routes6']
                        if not (r.get('dst') or '').startswith(('fe80', 'ff00', 'multicast')))
        # Static entries with a VTEP (the flood list, vxlan_peer entries), not learned ones.
        fdb = sorted('%s %s %s' % (e.get('ifname'), e.get('mac'), e.get('dst')) for e in view['fdb']
                     if e.get('dst') and (e.get('state') == 'permanent' or e.get('mac') == '00:00:00:00:00:00'))
        out[name] = {'links': links, 'addresses': addrs, 'routes': routes, 'fdb': fdb,
                     'rules': _strip(view['rules']),
                     'neighbours': sorted('%s %s' % (n.get('dev'), n.get('dst')) for n in view['neighbours'])}
    out['nftables'] = _strip(snap['nftables'])
    out['sysctl'] = snap['sysctl']
    out['netns'] = snap['netns']
    # Link records are named by their namespace's identity: new namespaces,
    # new names; their number is what must come back.
    out['records'] = sorted(p for p in snap['records'] if not p.startswith('/run/hostnet/links/'))
    out['link_records'] = len([p for p in snap['records'] if p.startswith('/run/hostnet/links/')
                               and not os.path.basename(p).startswith('.')])
    return out


def diff(before, after):
    lines = []
    for key in sorted(set(before) | set(after)):
        if before.get(key) != after.get(key):
            lines.append('%s:\n  before %r\n  after  %r' % (key, before.get(key), after.get(key)))
    return '\n'.join(lines)


def test_restore_brings_back_kernel_state_and_traffic(servers):
    build_everything()
    recorded = records()
    assert sorted(recorded) == ['bridge.json', 'macvlan@ep-m.json', 'netns.json', 'portmap.json', 'veth.json',
                                'vxlan.json', 'vxlan@outside.json', 'vxlan_peer.json', 'vxlan_peer@outside.json']
    assert all(r['schema'] == 1 for r in recorded.values())
    assert [b['name'] for b in recorded['bridge.json']['config']] == ['hn-br0', 'hn-br1']
    assert recorded['bridge.json']['config'][0]['masquerade'] is True
    assert recorded['portmap.json']['config'][0]['host_port'] == 8080
    assert recorded['vxlan_peer@outside.json']['config'] == [
        {'device': 'vx0', 'netns': 'outside', 'peers': ['198.18.0.1'], 'entries': []}]
    assert sorted(n['name'] for n in recorded['netns.json']['config']) == ['ep-a', 'ep-b', 'ep-c', 'ep-m', 'outside']
    before = what_matters(kernel_snapshot())

    reboot()
    code, lines = restore()
    assert code == 0, lines
    assert lines[-1] == 'hostnet-restore: 17 changed', lines
    # Dependency order: namespaces, bridges, veths, macvlan, vxlan, ports, peers.
    kinds = [line.split()[1] for line in lines if line.startswith('changed ')]
    assert kinds == sorted(kinds, key=['netns', 'bridge', 'veth', 'macvlan', 'vxlan', 'portmap',
                                       'vxlan_peer'].index), kinds
    after = what_matters(kernel_snapshot())
    assert after == before, diff(before, after)
    # The records are what they were (the restore does not rewrite them).
    assert records() == recorded

    # Packets: endpoints of one bridge, the published port from outside and
    # from another bridge, the macvlan's parent, the overlay.
    assert settle('ep-a', '198.51.100.1') and settle('ep-c', '203.0.113.1')
    assert ping('ep-a', '198.51.100.11')
    servers.tcp('ep-a', 80, 'hello-a')
    assert settle('outside', HOST_V4)
    assert reaches('outside', HOST_V4, 8080, 'hello-a')
    assert reaches('ep-c', HOST_V4, 8080, 'hello-a')
    assert sh('ip', '-j', 'link', 'show', 'eth0', netns='ep-m').returncode == 0
    assert wait_for(lambda: ping(None, '198.19.5.2'), timeout=10)

    # In sync: --check changes nothing and says so.
    snap = kernel_snapshot()
    code, lines = restore('--check')
    assert code == 0, lines
    assert lines[-1] == 'hostnet-restore --check: 17 ok', lines
    now = kernel_snapshot()
    assert now['nftables'] == snap['nftables'] and now['records'] == snap['records']
    assert what_matters(now) == what_matters(snap), diff(what_matters(snap), what_matters(now))

    # Drift: a bridge's address removed by hand is reported, not repaired.
    sh('ip', 'addr', 'del', '198.51.100.1/24', 'dev', 'hn-br0')
    code, lines = restore('--check')
    assert code == 2, lines
    assert 'drift bridge hn-br0: add address 198.51.100.1/24 to hn-br0' in lines, lines
    assert not any(line.startswith('drift ') and 'hn-br0' not in line for line in lines), lines
    assert sh('ip', '-j', 'addr', 'show', 'dev', 'hn-br0').stdout.count('198.51.100.1"') == 0
    # ... and repaired by a restore.
    code, lines = restore()
    assert code == 0 and 'changed bridge hn-br0: add address 198.51.100.1/24 to hn-br0' in lines, lines
    assert restore('--check')[0] == 0


def test_bridge_policy_that_lists_ports_is_whole_after_the_restore():
    # icc: false names the bridge's ports where the kernel lacks nft bridge
    # meta support: the restore applies bridges again once the ports exist.
    run_module('netns', config=[{'name': 'ep-a'}, {'name': 'ep-b'}])
    bridge = {'name': 'hn-br0', 'addresses': ['198.51.100.1/24'], 'icc': False}
    run_module('bridge', config=[bridge])
    run_module('veth', config=[{'name': 'v-%s' % n, 'bridge': 'hn-br0',
                                'peer': {'name': 'eth0', 'netns': n, 'addresses': ['198.51.100.%d/24' % last]}}
                               for n, last in (('ep-a', 10), ('ep-b', 11))])
    run_module('bridge', config=[bridge])
    assert settle('ep-a', '198.51.100.1') and not ping('ep-a', '198.51.100.11')
    before = what_matters(kernel_snapshot())
    reboot()
    code, lines = restore()
    assert code == 0, lines
    assert what_matters(kernel_snapshot()) == before
    assert restore('--check')[0] == 0
    assert settle('ep-a', '198.51.100.1') and settle('ep-b', '198.51.100.1')
    assert not ping('ep-a', '198.51.100.11')


def test_a_failing_resource_is_reported_and_the_rest_restored():
    build()
    stand_in_nic()
    run_module('netns', config=[{'name': 'ep-m'}])
    run_module('macvlan', config=[MACVLAN])
    reboot()
    sh('ip', 'link', 'del', 'nic0')  # the parent NIC is gone
    code, lines = restore()
    assert code == 1, lines
    failed = [line for line in lines if line.startswith('failed ')]
    assert len(failed) == 1 and failed[0].startswith('failed macvlan eth0@ep-m: ') and 'nic0' in failed[0], lines
    assert lines[-1] == 'hostnet-restore: 11 changed, 1 failed', lines
    # Everything else is back: endpoints reach each other through their bridge.
    assert settle('ep-a', '198.51.100.1')
    assert ping('ep-a', '198.51.100.11')
    assert sh('ip', 'link', 'show', 'eth0', netns='ep-m', check=False).returncode != 0


def test_a_damaged_record_is_reported_and_the_rest_restored():
    run_module('netns', config=[{'name': 'ns-a'}])
    run_module('bridge', config=[{'name': 'hn-br0', 'addresses': ['198.51.100.1/24']}])
    with open(os.path.join(state_dir(), 'veth.json'), 'w') as fh:
        fh.write('{"schema": 99, "kind": "veth", "netns": null, "config": []}')
    reboot()
    code, lines = restore()
    assert code == 1, lines
    assert any(line.startswith('failed record ') and 'veth.json: schema 99' in line for line in lines), lines
    assert 'hostnet-restore: 2 changed, 1 failed' == lines[-1]
    assert sh('ip', 'link', 'show', 'hn-br0').returncode == 0
    assert 'ns-a' in sh('ip', 'netns', 'list').stdout


def test_deleted_and_overridden_leave_the_record_check_mode_and_record_false_write_nothing():
    run_module('netns', config=[{'name': 'ns-a'}])
    bridges = [{'name': 'hn-br0', 'addresses': ['198.51.100.1/24']},
               {'name': 'hn-br1', 'addresses': ['203.0.113.1/24']},
               {'name': 'hn-br2', 'netns': 'ns-a'}]
    run_module('bridge', config=bridges)
    assert [b['name'] for b in records()['bridge.json']['config']] == ['hn-br0', 'hn-br1']
    assert [b['name'] for b in records()['bridge@ns-a.json']['config']] == ['hn-br2']

    # Check mode records nothing.
    written = records()
    run_module('bridge', check=True, config=[{'name': 'hn-br3'}])
    run_module('bridge', check=True, state='deleted', config=[])
    assert records() == written
    # record: false records nothing, and neither does HOSTNET_RECORD=0.
    run_module('bridge', record=False, config=[{'name': 'hn-br3'}])
    assert records() == written
    os.environ['HOSTNET_RECORD'] = '0'
    try:
        run_module('bridge', state='deleted', config=[{'name': 'hn-br3'}])
        assert records() == written
        run_module('bridge', config=[{'name': 'hn-br3'}])
        assert records() == written
        # ... unless the call asks for it.
        run_module('bridge', record=True, config=[{'name': 'hn-br3'}])
        assert [b['name'] for b in records()['bridge.json']['config']] == ['hn-br0', 'hn-br1', 'hn-br3']
    finally:
        del os.environ['HOSTNET_RECORD']

    # deleted removes what it removed.
    run_module('bridge', state='deleted', config=[{'name': 'hn-br1'}])
    assert [b['name'] for b in records()['bridge.json']['config']] == ['hn-br0', 'hn-br3']
    # overridden removes every other one of the scope.
    run_module('bridge', state='overridden', config=[{'name': 'hn-br0'}])
    assert [b['name'] for b in records()['bridge.json']['config']] == ['hn-br0']
    assert 'bridge@ns-a.json' in records()
    # A bridge's MAC and MTU follow its ports until set: not recorded then.
    assert 'mac' not in records()['bridge.json']['config'][0] and 'mtu' not in records()['bridge.json']['config'][0]
    # A changed attribute is recorded as read back, and stays recorded.
    run_module('bridge', config=[{'name': 'hn-br0', 'mtu': 1400}])
    assert records()['bridge.json']['config'][0]['mtu'] == 1400
    run_module('bridge', config=[{'name': 'hn-br0', 'addresses': ['198.51.100.1/24']}])
    assert records()['bridge.json']['config'][0]['mtu'] == 1400
    # The last one deleted: no file is left for the kind.
    run_module('bridge', state='deleted', config=[])
    assert 'bridge.json' not in records()
    # A namespace deleted takes the records of what was inside it along.
    run_module('netns', state='deleted', config=[{'name': 'ns-a'}])
    assert sorted(records()) == []
    # No temporary file is ever left behind.
    assert not [n for n in os.listdir(state_dir()) if n.startswith('.')]


# -- the per-host lock ----------------------------------------------------------

DRIVER = r'''
import json, os, sys
sys.path.insert(0, %(tests)r)
sys.path.insert(0, %(lib)r)
from helpers import run_module
out = []
for step in json.loads(sys.argv[1]):
    out.append(run_module(step.pop('module'), fail=step.pop('fail', False), **step))
print(json.dumps(out))
'''


def driver(steps, env=None):
    code = DRIVER % {'tests': os.path.dirname(os.path.abspath(__file__)), 'lib': LIB}
    return subprocess.Popen([sys.executable, '-c', code, json.dumps(steps)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=dict(os.environ, **(env or {})))


def finish(proc):
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    return json.loads(out.strip().splitlines()[-1])


def network(n):
    """Steps of one tenant network: a NAT bridge, two endpoints, a published port."""
    bridge = {'name': 'hn-br%d' % n, 'addresses': ['198.51.100.%d/28' % (1 + 16 * n)], 'masquerade': True,
              'isolated': True}
    steps = [{'module': 'netns', 'config': [{'name': 'ns%d-%d' % (n, i)} for i in (1, 2)]},
             {'module': 'bridge', 'enable_forwarding': True, 'config': [bridge]},
             {'module': 'veth', 'config': [
                 {'name': 've%d-%d' % (n, i), 'bridge': bridge['name'],
                  'peer': {'name': 'eth0', 'netns': 'ns%d-%d' % (n, i),
                           'addresses': ['198.51.100.%d/28' % (1 + 16 * n + i)],
                           'gateway': ['198.51.100.%d' % (1 + 16 * n)]}} for i in (1, 2)]},
             {'module': 'portmap', 'config': [{'host_port': 8000 + n, 'destination': '198.51.100.%d' % (2 + 16 * n),
                                               'port': 80}]}]
    return steps * 2  # and again: the second round changes nothing


def test_two_concurrent_runs_on_different_networks_both_end_correct():
    procs = [driver(network(n)) for n in (0, 1)]
    results = [finish(p) for p in procs]
    for res in results:
        assert [r['changed'] for r in res] == [True] * 4 + [False] * 4
    # Both networks are whole in the kernel and in the one nftables table.
    for n in (0, 1):
        assert ping('ns%d-1' % n, '198.51.100.%d' % (3 + 16 * n))
    table = json.loads(sh('nft', '-j', 'list', 'table', 'inet', 'hostnet').stdout)['nftables']
    text = json.dumps(table)
    for n in (0, 1):
        assert '"hn-br%d"' % n in text and '198.51.100.%d' % (2 + 16 * n) in text
    # Nothing is left to do for either network, and both are recorded.
    for n in (0, 1):
        assert all(not r['changed'] for r in finish(driver(network(n)[:4])))
    assert [b['name'] for b in records()['bridge.json']['config']] == ['hn-br0', 'hn-br1']
    assert sorted(p['host_port'] for p in records()['portmap.json']['config']) == [8000, 8001]


HOLDER = r'''
import sys, time
sys.path.insert(0, %(lib)r)
from ansible_collections.hostnet.provision.plugins.module_utils._lock import host_lock
with host_lock(what='hostnet-restore'):
    print('held', flush=True)
    time.sleep(30)
'''


def test_a_held_lock_makes_the_next_run_wait_then_fail_naming_the_holder():
    holder = subprocess.Popen([sys.executable, '-c', HOLDER % {'lib': LIB}], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == 'held'
        start = time.monotonic()
        result = run_module('bridge', fail=True, lock_timeout=1, config=[{'name': 'hn-br0'}])
        waited = time.monotonic() - start
        assert 1 <= waited < 10, waited
        assert 'pid %d (hostnet-restore)' % holder.pid in result['msg'], result['msg']
        assert result['changed'] is False
        assert sh('ip', 'link', 'show', 'hn-br0', check=False).returncode != 0
        # The environment sets the default timeout; check mode waits too.
        os.environ['HOSTNET_LOCK_TIMEOUT'] = '0'
        try:
            result = run_module('bridge', check=True, fail=True, config=[{'name': 'hn-br0'}])
        finally:
            del os.environ['HOSTNET_LOCK_TIMEOUT']
        assert 'holds the lock /run/hostnet/lock: pid %d' % holder.pid in result['msg'], result['msg']
        # The restore waits for it as well.
        code, lines = restore('--lock-timeout', '0')
        assert code == 1 and 'pid %d (hostnet-restore)' % holder.pid in lines[-1], lines
    finally:
        holder.kill()
        holder.wait(timeout=10)
    # The kernel let go of the dead holder's lock: the next run goes ahead.
    assert run_module('bridge', lock_timeout=5, config=[{'name': 'hn-br0'}])['changed']
    assert oct(os.stat('/run/hostnet/lock').st_mode & 0o777) == '0o600'
    assert not os.path.exists('/run/hostnet/lock.holder')


def test_overrides_are_recorded_and_the_restore_honours_them(servers):
    """A port published over a host listener with allow_listening: true is
    recorded with the flag, and the restore publishes it again although the
    listener is still there (without the flag it would refuse it)."""
    build()
    servers.tcp(None, 8085, 'host-service')
    mapping = dict(WEB, host_port=8085, allow_listening=True)
    run_module('portmap', config=[mapping])
    recorded = records()['portmap.json']['config']
    assert [m.get('allow_listening') for m in recorded] == [True], recorded
    # A later call that does not repeat the flag keeps it in the record.
    run_module('portmap', config=[dict(WEB, host_port=8086)])
    recorded = dict((m['host_port'], m) for m in records()['portmap.json']['config'])
    assert recorded[8085].get('allow_listening') is True and 'allow_listening' not in recorded[8086]
    reboot()
    code, lines = restore()
    assert code == 0, lines
    ruleset = sh('nft', '-j', 'list', 'table', 'inet', 'hostnet').stdout
    assert '8085' in ruleset and '8086' in ruleset


PLAY = '''---
- name: Network %(n)d
  hosts: localhost
  connection: local
  gather_facts: false
  vars:
    ansible_python_interpreter: "{{ ansible_playbook_python }}"
  tasks:
%(tasks)s
'''


@pytest.mark.playbook
def test_two_concurrent_playbooks_on_one_host_take_turns(tmp_path):
    """Two ansible-playbook runs at the same time on one host, on different
    networks: they take turns on the host lock, both end correct, and the
    one nftables table holds both; run again, neither changes anything."""
    from test_playbook import run_playbook
    import yaml
    paths = []
    for n in (0, 1):
        tasks = []
        for step in network(n)[:4]:
            step = dict(step)
            module = step.pop('module')
            tasks.append({'name': module, 'hostnet.provision.%s' % module: step})
        text = PLAY % {'n': n, 'tasks': yaml.safe_dump(tasks, sort_keys=False).replace('\n', '\n    ').rstrip()}
        path = tmp_path / ('net%d.yml' % n)
        path.write_text(text.replace('  tasks:\n', '  tasks:\n    ', 1))
        paths.append(str(path))
    for expect_changed in (4, 0):
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            results = list(pool.map(run_playbook, paths))
        for rc, stats, output in results:
            assert rc == 0, output[-3000:]
            assert stats['changed'] == expect_changed and stats['failed'] == 0, output[-3000:]
        for n in (0, 1):
            assert ping('ns%d-1' % n, '198.51.100.%d' % (3 + 16 * n))
        text = sh('nft', '-j', 'list', 'table', 'inet', 'hostnet').stdout
        for n in (0, 1):
            assert '"hn-br%d"' % n in text and '198.51.100.%d' % (2 + 16 * n) in text
