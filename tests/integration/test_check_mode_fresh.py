# -*- coding: utf-8 -*-
"""Check mode tells the truth on a fresh host.

From an empty sandbox, every module call is first made in check mode and
then for real: the operations predicted (``commands``) must be exactly the
operations made, and the warnings of check mode must be few and true. The
roles are run with --check from nothing, then for real.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from conftest import COLLECTIONS, _wipe
from helpers import kernel_snapshot, run_module, snapshot_diff


def _settled(entry):
    """A snapshot without what the kernel changes by itself right after a
    change (DAD's tentative flag and the kernel routes it then adds, bridge
    port timers), so that "check mode changed nothing" can be compared."""
    if isinstance(entry, dict):
        return dict((k, _settled(v)) for k, v in entry.items()
                    if k != 'tentative' and not k.endswith('_timer') and
                    not (k == 'routes6' and isinstance(v, list)) and k != 'state')
    if isinstance(entry, list):
        return [_settled(v) for v in entry]
    return entry


def settled_snapshot():
    snap = kernel_snapshot()
    for name, view in snap.items():
        if isinstance(view, dict) and 'routes6' in view:
            view['routes6_ours'] = [r for r in view['routes6'] if r.get('protocol') != 'kernel']
    return _settled(snap)


def step(name, **params):
    """Check mode, then for real: the same commands, and check mode changed nothing."""
    before = settled_snapshot()
    predicted = run_module(name, check=True, **params)
    assert snapshot_diff(before, settled_snapshot()) == [], name
    made = run_module(name, **params)
    assert predicted['commands'] == made['commands'], (name, predicted['commands'], made['commands'])
    assert predicted['changed'] == made['changed']
    again = run_module(name, check=True, **params)
    assert again['changed'] is False and again['commands'] == [], (name, again['commands'])
    return predicted, made


def endpoints(bridge, prefix, names, v4, v6=None):
    return [{'name': '%s-%s' % (prefix, n), 'bridge': bridge,
             'peer': {'name': 'eth0', 'netns': '%s%s' % (prefix, n),
                      'addresses': ['%s.%d/24' % (v4, 10 + i)] + (['%s::%d/64' % (v6, 10 + i)] if v6 else []),
                      'gateway': ['%s.1' % v4] + (['%s::1' % v6] if v6 else [])}}
            for i, n in enumerate(names)]


TOPOLOGIES = {
    'dual_stack_published': dict(
        bridge={'name': 'cm-br0', 'addresses': ['198.51.100.1/24', '2001:db8:100::1/64'], 'masquerade': True},
        names=['a', 'b', 'c'], v4='198.51.100', v6='2001:db8:100',
        ports=[
            {'host_port': 8080, 'destination': '198.51.100.10', 'port': 80},
            {'host_port': 8080, 'destination': '2001:db8:100::10', 'port': 80},
            {'host_port': 8443, 'host_ip': '127.0.0.1', 'destination': '198.51.100.11', 'port': 443},
            {'host_port': '9000-9003', 'destination': '198.51.100.12', 'port': 7000},
            {'host_port': 'auto', 'destination': '198.51.100.11', 'port': 22},
            {'host_port': 5353, 'protocol': 'udp', 'destination': '198.51.100.10', 'port': 53},
        ]),
    'icc_false': dict(
        bridge={'name': 'cm-br1', 'addresses': ['203.0.113.1/24'], 'icc': False, 'masquerade': True},
        names=['x', 'y'], v4='203.0.113', v6=None,
        ports=[{'host_port': 8081, 'destination': '203.0.113.10', 'port': 80},
               {'host_port': '7000-7001', 'protocol': 'udp', 'destination': '203.0.113.11', 'port': 7000}]),
}


@pytest.mark.parametrize('topology', sorted(TOPOLOGIES))
def test_modules_predict_exactly_what_they_do_from_nothing(topology):
    t = TOPOLOGIES[topology]
    prefix = 'cm%s' % topology[0]
    eps = endpoints(t['bridge']['name'], prefix, t['names'], t['v4'], t['v6'])
    step('netns', config=[{'name': e['peer']['netns']} for e in eps])
    step('bridge', config=[t['bridge']], enable_forwarding=True)
    step('veth', config=eps)
    step('bridge', config=[t['bridge']], enable_forwarding=True)
    predicted, made = step('portmap', config=t['ports'], enable_forwarding=True)
    assert any('hairpin' in c for c in made['commands'])
    assert not [w for w in predicted.get('warnings', []) if 'hairpin' in w], predicted.get('warnings')


# -- the roles, through ansible-playbook -----------------------------------------

_CALLBACK = '''
import json, os
from ansible.plugins.callback import CallbackBase


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = 'aggregate'
    CALLBACK_NAME = 'hn_record'
    CALLBACK_NEEDS_ENABLED = True

    def _record(self, result, status):
        r = result._result
        with open(os.environ['HN_RECORD'], 'a') as fh:
            fh.write(json.dumps({'task': result._task.get_name(), 'action': result._task.action,
                                 'status': status, 'changed': bool(r.get('changed')),
                                 'commands': r.get('commands'), 'warnings': r.get('warnings') or [],
                                 'msg': r.get('msg'), 'dns': r.get('dns')}) + '\\n')

    def v2_runner_on_ok(self, result):
        self._record(result, 'ok')

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._record(result, 'failed')

    def v2_runner_on_skipped(self, result):
        self._record(result, 'skipped')
'''


def play_role(tmp, role, variables, check=False):
    """ansible-playbook of ROLE on this host (the sandbox); every task's result."""
    plugins = tmp / 'callback_plugins'
    plugins.mkdir(exist_ok=True)
    (plugins / 'hn_record.py').write_text(_CALLBACK)
    record = tmp / ('record-%s.jsonl' % ('check' if check else 'real'))
    if record.exists():
        record.unlink()
    playbook = tmp / 'play.yml'
    playbook.write_text('- hosts: localhost\n  gather_facts: false\n  roles: [{role: hostnet.provision.%s}]\n' % role)
    varfile = tmp / 'vars.json'
    varfile.write_text(json.dumps(variables))
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=COLLECTIONS, ANSIBLE_LOCALHOST_WARNING='false',
               ANSIBLE_INVENTORY_UNPARSED_WARNING='false', ANSIBLE_NOCOLOR='1', ANSIBLE_CALLBACK_PLUGINS=str(plugins),
               ANSIBLE_CALLBACKS_ENABLED='hn_record', HN_RECORD=str(record),
               ANSIBLE_PYTHON_INTERPRETER=sys.executable)
    command = [os.path.join(os.path.dirname(sys.executable), 'ansible-playbook'), '-i', 'localhost,', '-c', 'local',
               '-e', '@%s' % varfile, str(playbook)] + (['--check'] if check else [])
    proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300, check=False)
    tasks = [json.loads(line) for line in record.read_text().splitlines()] if record.exists() else []
    return proc.returncode, tasks, proc.stdout + proc.stderr


def module_tasks(tasks):
    return [t for t in tasks if t['action'].startswith('hostnet.provision.') and
            t['action'] not in ('hostnet.provision.net_info', 'hostnet.provision.reachability')]


ROLE_CASES = {
    'bridge_network': lambda tmp: {
        'bridge_network_sysctl_file': str(tmp / 'sysctl.conf'),
        'bridge_network_networks': [
            {'name': 'web', 'subnet': '198.51.100.0/25', 'subnet6': '2001:db8:100::/64', 'endpoints': [
                {'name': 'web1', 'ports': [{'host_port': 8080, 'port': 80},
                                           {'host_port': 8443, 'host_ip': '127.0.0.1', 'port': 443},
                                           {'host_port': '9000-9002', 'port': 9000, 'protocol': 'udp'}]},
                {'name': 'web2', 'ports': [{'host_port': 'auto', 'port': 22}]}, {'name': 'web3'}]},
            {'name': 'quiet', 'subnet': '203.0.113.0/26', 'icc': False,
             'endpoints': [{'name': 'q1', 'ports': [{'host_port': 8081, 'port': 80}]}, {'name': 'q2'}]},
        ]},
    'tenant_networks': lambda tmp: {
        'tenant_networks_sysctl_file': str(tmp / 'sysctl.conf'),
        'tenant_networks_tenants': [
            {'name': 'acme', 'subnet': '203.0.113.0/26', 'endpoints': [
                {'name': 'acme1', 'ports': [{'host_port': 8082, 'port': 80}]}, {'name': 'acme2'}]},
            {'name': 'globex', 'subnet': '203.0.113.64/26', 'icc': False, 'endpoints': [
                {'name': 'globex1', 'ports': [{'host_port': 8083, 'port': 80}]}, {'name': 'globex2'}]},
        ]},
}


AGAIN = "Bridge policy again"


def nft_bridge_meta():
    """Whether this kernel matches meta ibrname in the bridge family (then
    icc needs no per-port entries)."""
    probe = 'table bridge hn_probe { chain c { type filter hook forward priority 0; meta ibrname "x" accept; } }'
    proc = subprocess.run(['nft', '-c', '-f', '-'], input=probe, capture_output=True, text=True, check=False)
    return proc.returncode == 0


def commands(tasks):
    return [c for t in module_tasks(tasks) for c in t['commands'] or []]


@pytest.mark.parametrize('role', sorted(ROLE_CASES))
def test_roles_check_mode_from_nothing(role, tmp_path):
    """A role's tasks in check mode see the host as it is (nothing), not as
    the earlier tasks would have left it; the role tells the modules what
    those tasks make where a prediction depends on it (portmap: the bridge
    and ports whose hairpin mode it sets; veth: the icc of the bridge it
    joins, whose icc set lists the port on kernels without nft bridge meta
    support). Every task predicts exactly the operations it then makes, in
    order. The bridge policy call repeated after the veth task (for ports
    attached otherwise) changes nothing in a real run from nothing; in
    check mode it sees no bridge yet, so it is left out of the comparison."""
    variables = ROLE_CASES[role](tmp_path)
    before = settled_snapshot()
    rc, predicted, out = play_role(tmp_path, role, variables, check=True)
    assert rc == 0, out[-4000:]
    assert snapshot_diff(before, settled_snapshot()) == [], 'check mode changed the host'
    rc, made, out = play_role(tmp_path, role, variables)
    assert rc == 0, out[-4000:]
    assert not [t for t in predicted + made if t['status'] == 'failed']

    def shape(tasks):
        return [(t['task'], t['status'], t['changed']) for t in tasks if AGAIN not in t['task']]
    assert shape(predicted) == shape(made)

    # Exact: each task predicts the operations it makes, in the same order,
    # the icc set's port elements included.
    def exact(tasks):
        return [(t['task'], t['commands'] or []) for t in module_tasks(tasks) if AGAIN not in t['task']]
    assert exact(predicted) == exact(made)
    assert any(c.startswith('enable hairpin mode on port ') for c in commands(made))
    if not nft_bridge_meta():
        # The icc: false network's ports are listed by the veth task, and
        # predicted there (the case would not test that otherwise).
        icc = [c for t in module_tasks(predicted) if t['action'].endswith(('.veth', '.network'))
               for c in t['commands'] or [] if 'no_icc_ports' in c]
        assert len(icc) == 2, commands(predicted)
    # The bridges' policy step repeated after the endpoints (a real run
    # only) has nothing left to do: the operations made are those predicted.
    assert commands(made) == commands(predicted)
    # Warnings: one per call for what check mode assumes, never one per
    # endpoint, nothing about hairpin mode that is not predicted, and no
    # false "not behind a bridge" (hairpin) warning.
    for t in module_tasks(predicted):
        assumed = [w for w in t['warnings'] if w.startswith('check mode:')]
        assert len(assumed) <= 1 and len(t['warnings']) <= 3, (t['task'], t['warnings'])
        assert not [w for w in t['warnings'] if 'is not behind a bridge' in w or 'hairpin' in w], t['warnings']
    # Converged: again changes nothing and repeats no warning.
    rc, again_run, out = play_role(tmp_path, role, variables)
    assert rc == 0 and not [t for t in again_run if t['changed']], out[-3000:]
    assert [w for t in again_run for w in t['warnings']] == []


def test_macvlan_vxlan_and_peers_predict_exactly_from_nothing():
    """macvlan on a stand-in NIC; VXLAN over a veth underlay between two
    namespace hosts, with flood entries and static neighbours."""
    step('netns', config=[{'name': 'cm-ha'}, {'name': 'cm-hb'}, {'name': 'cm-m1'}])
    step('veth', config=[{'name': 'cm-und-a', 'netns': 'cm-ha', 'addresses': ['198.18.0.1/24'],
                          'peer': {'name': 'cm-und-b', 'netns': 'cm-hb', 'addresses': ['198.18.0.2/24']}}])
    subprocess.run(['ip', 'link', 'add', 'cm-nic0', 'type', 'veth', 'peer', 'name', 'cm-nic0-far'], check=True)
    subprocess.run(['ip', 'link', 'set', 'cm-nic0', 'up'], check=True)
    step('macvlan', config=[{'name': 'eth0', 'netns': 'cm-m1', 'parent': 'cm-nic0', 'mode': 'bridge',
                             'addresses': ['203.0.113.10/24', '2001:db8:113::10/64'], 'gateway': ['203.0.113.1']}])
    tunnels = [{'name': 'vx0', 'netns': 'cm-h%s' % h, 'vni': 100, 'local': '198.18.0.%d' % n, 'dev': 'cm-und-%s' % h,
                'addresses': ['198.51.100.%d/24' % n]} for h, n in (('a', 1), ('b', 2))]
    step('vxlan', config=tunnels)
    step('vxlan_peer', config=[
        {'device': 'vx0', 'netns': 'cm-ha', 'peers': ['198.18.0.2'],
         'entries': [{'mac': '02:00:cb:00:71:02', 'vtep': '198.18.0.2', 'ip': '198.51.100.2'}]},
        {'device': 'vx0', 'netns': 'cm-hb', 'peers': ['198.18.0.1']}])


def _many(count):
    """bridge_network with COUNT endpoints, each publishing a port and one on
    127.0.0.1, in an icc: false network (every per-endpoint cause at once)."""
    return [{'name': 'many', 'subnet': '198.51.100.0/24', 'icc': False, 'endpoints': [
        {'name': 'mn%d' % i,
         'ports': [{'host_port': 9100 + i, 'port': 80}, {'host_port': 9200 + i, 'host_ip': '127.0.0.1', 'port': 81}]}
        for i in range(count)]}]


def test_warnings_do_not_grow_with_the_number_of_endpoints(tmp_path):
    """Warnings a person can review: one per cause per call, in check mode on
    a fresh host as in a real run, however many endpoints a network has;
    none at all on the run that changes nothing."""
    counts = {}
    for count in (2, 10):
        _wipe()
        workdir = tmp_path / str(count)
        workdir.mkdir()
        variables = {'bridge_network_sysctl_file': str(workdir / 'sysctl.conf'), 'bridge_network_networks': _many(count)}
        rc, predicted, out = play_role(workdir, 'bridge_network', variables, check=True)
        assert rc == 0, out[-3000:]
        rc, made, out = play_role(workdir, 'bridge_network', variables)
        assert rc == 0, out[-3000:]
        if count > 2:
            # Converged: the run that changes nothing warns about nothing.
            rc, again, out = play_role(workdir, 'bridge_network', variables)
            assert rc == 0, out[-3000:]
            assert [w for t in again for w in t['warnings']] == [], out[-3000:]
            assert out.count('[WARNING]') == 0, out[-3000:]
        counts[count] = ([(t['task'], len(t['warnings'])) for t in predicted],
                         [(t['task'], len(t['warnings'])) for t in made])
        for t in predicted + made:
            assert len(t['warnings']) == len(set(t['warnings'])) <= 2, (t['task'], t['warnings'])
            assert not [w for w in t['warnings'] if 'not behind a bridge' in w], (t['task'], t['warnings'])
    assert counts[2] == counts[10], counts


def _texts(warnings):
    """Warning texts (in-process module results carry Ansible's warning summaries)."""
    return [(w.get('event') or {}).get('msg', str(w)) if isinstance(w, dict) else w for w in warnings or []]


def _call(name, **params):
    """run_module with only this call's warnings (in-process calls share
    AnsibleModule's global list of warnings)."""
    from ansible.module_utils.common import warnings as ansible_warnings
    ansible_warnings._global_warnings.clear()  # pylint: disable=protected-access
    return run_module(name, **params)


def test_hairpin_warning_is_one_for_all_destinations():
    """Published ports to destinations behind no managed bridge: one warning
    naming them all, not one per destination."""
    for count in (1, 12):
        _wipe()
        subprocess.run(['ip', 'link', 'add', 'hp0', 'type', 'veth', 'peer', 'name', 'hp1'], check=True)
        subprocess.run(['ip', 'addr', 'add', '198.18.3.1/24', 'dev', 'hp0'], check=True)
        config = [{'host_port': 9300 + i, 'destination': '198.18.3.%d' % (10 + i), 'port': 80} for i in range(count)]
        for check in (True, False):
            result = _call('portmap', check=check, config=config, enable_forwarding=True)
            hairpin = [w for w in _texts(result.get('warnings')) if 'hairpin' in w]
            assert len(hairpin) == 1, result.get('warnings')
            assert all('198.18.3.%d' % (10 + i) in hairpin[0] for i in range(count)), hairpin
        assert _call('portmap', config=config, enable_forwarding=True).get('warnings', []) == []
