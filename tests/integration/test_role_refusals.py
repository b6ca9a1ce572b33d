# -*- coding: utf-8 -*-
"""Bad role inputs are refused before any change, through ansible-playbook.

The cases are in cases/role_refusals.yml. One playbook runs them all on
the sandbox itself (connection local), each in its own block/rescue; around
every role run the playbook takes a kernel_snapshot() (links, addresses,
routes, rules, neighbours, FDB in every namespace, nftables, forwarding
sysctls, /run/hostnet) through ip/bridge/nft, not through the collection.
Each case then asserts on its own: the role failed, the message names the
field and the value, and the snapshot after equals the snapshot before.

A control case (a valid network) proves that the harness sees a change.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile

import pytest
import yaml

from conftest import COLLECTIONS, REPO, _wipe
from helpers import snapshot_diff

pytestmark = pytest.mark.playbook

HERE = os.path.dirname(os.path.abspath(__file__))
CASES_FILE = os.path.join(HERE, 'cases', 'role_refusals.yml')
with open(CASES_FILE) as _fh:
    TABLE = yaml.safe_load(_fh)
CASES = TABLE['cases']
CONTROL = {'id': 'control-valid-network', 'role': 'bridge_network',
           'vars': {'bridge_network_networks': [{'name': 'ok', 'subnet': '198.51.100.0/28', 'endpoints': [{'name': 'ok1'}]}]}}

SNAPSHOT = '''import json, sys
sys.path.insert(0, %r)
from helpers import kernel_snapshot
with open(sys.argv[1], 'w') as fh:
    json.dump(kernel_snapshot(), fh)
''' % HERE


def _command(name, argv):
    return {'name': name, 'ansible.builtin.command': {'argv': argv}, 'changed_when': False}


def _playbook(cases, workdir):
    snap = os.path.join(workdir, 'snapshot.py')
    with open(snap, 'w') as fh:
        fh.write(SNAPSHOT)
    tasks = [
        {'name': 'No results yet', 'ansible.builtin.set_fact': {'role_refusals': {}}},
        # The stand-in NIC every case sees (its connected route is a host route).
        _command('Underlay NIC', ['ip', 'link', 'add', 'hn-ul0', 'type', 'veth', 'peer', 'name', 'hn-ul1']),
        _command('Underlay address', ['ip', 'addr', 'add', '198.18.5.1/24', 'dev', 'hn-ul0']),
        _command('Underlay up', ['ip', 'link', 'set', 'hn-ul0', 'up']),
    ]
    fresh = True
    for case in cases:
        for number, argv in enumerate(case.get('setup') or []):
            tasks.append(_command('Setup %s %d' % (case['id'], number), argv))
        if fresh or case.get('setup'):
            tasks.append(_command('Before %s' % case['id'], [sys.executable, snap, os.path.join(workdir, case['id'] + '.before')]))
        variables = dict(TABLE.get('defaults', {}).get(case['role'], {}))
        variables.update(case.get('vars') or {})
        block = {'name': 'Case %s' % case['id'], 'block': [
            {'name': 'Role %s' % case['role'], 'ansible.builtin.include_role': {'name': 'hostnet.provision.' + case['role']},
             'vars': variables},
            {'name': 'Accepted', 'ansible.builtin.set_fact': {
                'role_refusals': "{{ role_refusals | combine({%r: {'failed': false}}) }}" % case['id']}},
        ], 'rescue': [
            {'name': 'Refused', 'ansible.builtin.set_fact': {
                'role_refusals': "{{ role_refusals | combine({%r: {'failed': true, 'msg': ansible_failed_result.msg}}) }}"
                                 % case['id']}},
        ]}
        if case.get('environment'):
            # Seen by the modules the role runs (a local connection passes
            # the task's environment, e.g. SSH_CONNECTION, to them).
            block['environment'] = case['environment']
        tasks.append(block)
        after = os.path.join(workdir, case['id'] + '.after')
        tasks.append(_command('After %s' % case['id'], [sys.executable, snap, after]))
        # Without a teardown, the next case starts from this state: its
        # "before" is this "after" (one snapshot fewer per case).
        fresh = bool(case.get('teardown'))
        for number, argv in enumerate(case.get('teardown') or []):
            tasks.append(_command('Teardown %s %d' % (case['id'], number), argv))
    tasks.append({'name': 'Write the results', 'ansible.builtin.copy': {
        'content': '{{ role_refusals | to_json }}', 'dest': os.path.join(workdir, 'results.json'), 'mode': '0644'}})
    play = [{'name': 'Role refusals', 'hosts': 'localhost', 'connection': 'local', 'gather_facts': False,
             'vars': {'ansible_python_interpreter': sys.executable}, 'tasks': tasks}]
    path = os.path.join(workdir, 'refusals.yml')
    with open(path, 'w') as fh:
        json.dump(play, fh)
    return path


def _before_file(cases, index, workdir):
    """The snapshot taken right before case ``index``'s role run."""
    case = cases[index]
    own = os.path.join(workdir, case['id'] + '.before')
    if os.path.exists(own):
        return own
    return os.path.join(workdir, cases[index - 1]['id'] + '.after')


@pytest.fixture(autouse=True)
def clean_sandbox():
    """The module's one playbook run manages the sandbox itself."""
    yield


@pytest.fixture(scope='module')
def outcome():
    _wipe()
    cases = [dict(c) for c in CASES] + [dict(CONTROL)]
    with tempfile.TemporaryDirectory(prefix='hn-role-refusals-') as workdir:
        playbook = _playbook(cases, workdir)
        env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=COLLECTIONS, ANSIBLE_LOCALHOST_WARNING='false',
                   ANSIBLE_INVENTORY_UNPARSED_WARNING='false', ANSIBLE_NOCOLOR='1', ANSIBLE_FORCE_COLOR='0')
        playbook_bin = os.path.join(os.path.dirname(sys.executable), 'ansible-playbook')
        if not os.path.exists(playbook_bin):
            playbook_bin = os.path.join(REPO, '.venv', 'bin', 'ansible-playbook')
        proc = subprocess.run([playbook_bin, '-i', 'localhost,', playbook], env=env, capture_output=True,
                              text=True, timeout=1200, check=False)
        output = proc.stdout + proc.stderr
        assert proc.returncode == 0, output[-4000:]
        with open(os.path.join(workdir, 'results.json')) as fh:
            results = json.load(fh)
        snapshots = {}
        for index, case in enumerate(cases):
            with open(_before_file(cases, index, workdir)) as fh:
                before = json.load(fh)
            with open(os.path.join(workdir, case['id'] + '.after')) as fh:
                after = json.load(fh)
            snapshots[case['id']] = (before, after)
    _wipe()
    return results, snapshots, output


def test_the_table_is_big_enough_and_ids_are_unique():
    assert len(CASES) >= 40
    assert len(set(c['id'] for c in CASES)) == len(CASES)
    assert set(c['role'] for c in CASES) == {'bridge_network', 'tenant_networks', 'overlay_network'}


@pytest.mark.parametrize('case', CASES, ids=[c['id'] for c in CASES])
def test_bad_role_input_is_refused_before_any_change(outcome, case):
    results, snapshots, output = outcome
    result = results.get(case['id'])
    assert result is not None, 'case %s did not run: %s' % (case['id'], output[-3000:])
    assert result['failed'], '%s was accepted' % case['id']
    message = result['msg']
    for fragment in case['expect']:
        assert fragment in message, '%r not in %r' % (fragment, message)
    # One clean message: the problems themselves, not wrapped templating errors.
    assert 'Finalization of task args' not in message and 'filter plugin' not in message, message
    before, after = snapshots[case['id']]
    assert before == after, 'case %s changed the host: %s' % (case['id'], '\n'.join(snapshot_diff(before, after)))


def test_control_a_valid_network_is_accepted_and_the_snapshot_sees_it(outcome):
    results, snapshots, _output = outcome
    assert results[CONTROL['id']] == {'failed': False}
    before, after = snapshots[CONTROL['id']]
    changed = snapshot_diff(before, after)
    assert any(line.startswith('netns') for line in changed) and before['']['links'] != after['']['links']


def test_a_refusal_is_shown_once_without_templating_prefix(tmp_path):
    """What ansible-playbook prints for a refused network (the role not
    rescued): the problem once in the failed task's result, and nowhere
    wrapped in Ansible's templating or filter plugin error."""
    from test_playbook import run_playbook
    playbook = tmp_path / 'refused.yml'
    playbook.write_text(yaml.safe_dump([{
        'name': 'Refused', 'hosts': 'localhost', 'connection': 'local', 'gather_facts': False,
        'vars': {'ansible_python_interpreter': '{{ ansible_playbook_python }}'},
        'roles': [{'role': 'hostnet.provision.bridge_network', 'vars': {'bridge_network_networks': [
            {'name': 'bad', 'subnet': '198.51.100.0/24', 'endpoints': [{'name': 'b1', 'address': '203.0.113.5'}]}]}}]}]))
    rc, stats, output = run_playbook(str(playbook))
    assert rc != 0 and stats['failed'] == 1 and stats['changed'] == 0, output[-3000:]
    problem = 'network bad endpoint b1: address 203.0.113.5 is outside subnet 198.51.100.0/24'
    fatal = [line for line in output.splitlines() if line.startswith('fatal: [localhost]: FAILED!')]
    assert len(fatal) == 1, output[-3000:]
    result = json.loads(fatal[0].split('=>', 1)[1])
    assert result['msg'].count(problem) == 1 and result['msg'].startswith('1 problem(s), nothing was changed'), result
    # Ansible's own error block repeats the result's message, once.
    assert output.count(problem) <= 2, output[-3000:]
    assert 'Finalization of task args' not in output and 'filter plugin' not in output, output[-3000:]
    assert 'Networks, endpoints, published ports and resolvers' in output
