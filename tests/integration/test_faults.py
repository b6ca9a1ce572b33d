# -*- coding: utf-8 -*-
"""Faults (inside the sandbox): a module process killed with SIGKILL in the
middle of its work, and files in /run/netns that outlived their
namespaces. The next run converges, the one after changes nothing, and
nothing is orphaned: no name in /run/netns without its namespace, no
namespace of the collection's without its record, no record without its
namespace."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from conftest import COLLECTIONS
from helpers import MODULES, run_module, sh

COUNT = 150
NAMES = ['hn-kill-%d' % i for i in range(COUNT)]
RECORDS = '/run/hostnet/netns'

# Runs one module in a process of its own, as Ansible does, so that it can
# be killed: argv[1] module name, argv[2] its arguments as JSON.
CHILD = '''
import importlib, json, sys
sys.path.insert(0, %r)
from ansible.module_utils.testing import patch_module_args
module = importlib.import_module(%r + sys.argv[1])
with patch_module_args(json.loads(sys.argv[2])):
    module.main()
''' % (COLLECTIONS, MODULES)


def start_module(module, **params):
    return subprocess.Popen([sys.executable, '-c', CHILD, module, json.dumps(params)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def live(name):
    """Whether /run/netns/NAME holds a namespace (not a plain file)."""
    return os.stat('/run/netns/%s' % name).st_dev == os.stat('/proc/self/ns/net').st_dev


def assert_nothing_orphaned():
    names = sorted(os.listdir('/run/netns'))
    dead = [n for n in names if not live(n)]
    assert dead == [], 'names without a namespace: %s' % dead
    records = sorted(n for n in os.listdir(RECORDS) if not n.startswith('.')) if os.path.isdir(RECORDS) else []
    assert sorted(set(names) - set(records)) == [], 'namespaces without their record'
    assert sorted(set(records) - set(names)) == [], 'records without their namespace'


def converge(names):
    run_module('netns', config=[dict(name=n) for n in names])
    again = run_module('netns', config=[dict(name=n) for n in names])
    assert again['changed'] is False, again['commands'][:5]


def kill_when(proc, done, timeout=60):
    """SIGKILL the module as soon as done() says it is midway (polled every
    millisecond, at most ``timeout`` s); True if it was killed, False if it
    ended first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        if done():
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)
            return True
        time.sleep(0.001)
    proc.kill()
    proc.wait(timeout=10)
    raise AssertionError('the module neither ended nor got midway in %d s' % timeout)


def named():
    try:
        return len(os.listdir('/run/netns'))
    except FileNotFoundError:
        return 0


SHARES = (0.2, 0.5, 0.8)  # how far into its work each run is killed


@pytest.mark.parametrize('state', ['merged', 'deleted'])
def test_netns_killed_midway(state):
    """Kill a 150-namespace create (or delete) when a fifth, half and four
    fifths of it are done; every next run converges and the end state has
    no orphan."""
    config = [dict(name=n) for n in NAMES]
    killed = 0
    for share in SHARES:
        if state == 'merged':
            proc = start_module('netns', config=config)
            killed += kill_when(proc, lambda: named() >= share * COUNT)
            converge(NAMES)
            assert_nothing_orphaned()
            assert sorted(n for n in os.listdir('/run/netns')) == sorted(NAMES)
            run_module('netns', config=[], state='overridden')
        else:
            converge(NAMES)
            proc = start_module('netns', config=config, state='deleted')
            killed += kill_when(proc, lambda: named() <= (1 - share) * COUNT)
            run_module('netns', config=config, state='deleted')
            assert os.listdir('/run/netns') == []
            assert_nothing_orphaned()
    assert killed >= 2, 'the runs ended before the kill: the test proves nothing'


def test_name_file_of_a_gone_namespace_is_taken_back():
    """A namespace of ours whose /run/netns file outlived it (unmounted by
    hand, or a run killed between the two steps of a delete): the next run
    makes it again instead of refusing it as foreign."""
    run_module('netns', config=[dict(name='hn-dead')])
    sh('umount', '/run/netns/hn-dead')
    assert not live('hn-dead')
    check = run_module('netns', check=True, config=[dict(name='hn-dead')])
    made = run_module('netns', config=[dict(name='hn-dead')])
    assert check['commands'] == made['commands']
    assert made['changed'] and live('hn-dead')
    assert run_module('netns', config=[dict(name='hn-dead')])['changed'] is False
    assert_nothing_orphaned()
    # Deleting works on a dead name too.
    sh('umount', '/run/netns/hn-dead')
    assert run_module('netns', config=[dict(name='hn-dead')], state='deleted')['changed'] is True
    assert os.listdir('/run/netns') == []
    assert_nothing_orphaned()


def test_foreign_dead_name_file_is_refused_and_kept():
    """A plain file in /run/netns the collection did not make is neither
    used nor removed, and the message says what it is."""
    os.makedirs('/run/netns', exist_ok=True)
    with open('/run/netns/hn-other', 'w'):
        pass
    result = run_module('netns', fail=True, config=[dict(name='hn-other')])
    assert 'holds no network namespace' in result['msg'] and 'hn-other' in result['msg']
    assert os.path.exists('/run/netns/hn-other') and not live('hn-other')


def veths(count=COUNT):
    return [dict(name='hn-kv%d' % i, peer=dict(name='eth0', netns=NAMES[i], addresses=['198.18.%d.%d/24' % (
        i // 200, i % 200 + 2)])) for i in range(count)]


def test_veth_killed_midway():
    """Kill a 150-pair create when a fifth, half and four fifths of the pairs
    exist: the next run finishes the half-made pairs (made and killed before
    they were marked as ours) rather than refusing them as foreign."""
    converge(NAMES)
    killed = 0
    for share in SHARES:
        proc = start_module('veth', config=veths())
        killed += kill_when(proc, lambda: len([n for n in os.listdir('/sys/class/net') if n.startswith('hn-kv')])
                            >= share * COUNT)
        run_module('veth', config=veths())
        assert run_module('veth', config=veths())['changed'] is False
        run_module('veth', config=[], state='overridden')
        assert [n for n in os.listdir('/sys/class/net') if n.startswith('hn-kv')] == []
    assert killed >= 2, 'the runs ended before the kill: the test proves nothing'


def test_half_made_link_is_deleted_and_made_again():
    """The state a kill leaves between a link's create and its alias: the
    link without alias, the intent written before the create. Check mode
    reports the repair, the run makes it, nothing else is touched; the same
    link without an intent stays foreign and refused."""
    from ansible_collections.hostnet.provision.plugins.module_utils import _intent
    converge(['hn-half'])
    sh('ip', 'link', 'add', 'hn-hv', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', 'hn-half')
    sh('ip', 'link', 'add', 'hn-hbr', 'type', 'bridge')
    sh('ip', 'link', 'add', 'hn-foreign', 'type', 'veth', 'peer', 'name', 'hn-foreign-p')
    _intent.begin(None, 'hn-hv', 'veth')
    _intent.begin(None, 'hn-hbr', 'bridge')
    bridges = [dict(name='hn-hbr', addresses=['198.18.51.1/24'])]
    check = run_module('bridge', check=True, config=bridges)
    made = run_module('bridge', config=bridges)
    assert check['commands'] == made['commands']
    assert made['commands'][:2] == ['delete bridge hn-hbr, half made by an interrupted run',
                                    'delete veth hn-hv, half made by an interrupted run']
    assert run_module('bridge', config=bridges)['changed'] is False
    assert [n for n in os.listdir(_intent.LINKS_DIR) if not n.startswith('.')
            and 'index' not in json.load(open(os.path.join(_intent.LINKS_DIR, n)))] == [], 'intents left'
    # The veth went with the repair; made again by its own module.
    config = [dict(name='hn-hv', peer=dict(name='eth0', netns='hn-half', addresses=['198.18.50.2/24']))]
    assert not os.path.exists('/sys/class/net/hn-hv')
    assert run_module('veth', config=config)['changed'] is True
    assert run_module('veth', config=config)['changed'] is False
    assert os.path.exists('/sys/class/net/hn-foreign')
    refused = run_module('veth', fail=True, config=[dict(name='hn-foreign', peer=dict(name='eth0', netns='hn-half'))])
    assert 'not created by hostnet.provision' in refused['msg']


@pytest.fixture
def full_run():
    """/run/hostnet on a tiny tmpfs, filled up (the sandbox's /run is its own)."""
    os.makedirs('/run/hostnet', exist_ok=True)
    sh('mount', '-t', 'tmpfs', '-o', 'size=64k', 'tmpfs', '/run/hostnet')
    filler = '/run/hostnet/filler'
    subprocess.run(['dd', 'if=/dev/zero', 'of=%s' % filler, 'bs=4k', 'count=64'], capture_output=True, check=False)
    yield filler
    sh('umount', '-l', '/run/hostnet')


def test_full_run_refuses_before_any_change(full_run):
    """With /run full, a namespace or a link cannot be recorded: the module
    fails naming the cause, nothing of the call stays, and once there is
    room again the next run converges."""
    from helpers import kernel_snapshot, snapshot_diff
    before = kernel_snapshot()
    for module, config in (('netns', [dict(name='hn-full')]),
                           ('bridge', [dict(name='hn-fullbr', addresses=['198.18.52.1/24'])])):
        result = run_module(module, fail=True, config=config)
        assert 'No space left on device' in result['msg'], result['msg']
        assert 'nothing of this call was kept' in result['msg'] or module == 'netns', result['msg']
    assert snapshot_diff(before, kernel_snapshot()) == []
    assert not os.path.exists('/run/netns/hn-full')
    os.unlink(full_run)
    for module, config in (('netns', [dict(name='hn-full')]),
                           ('bridge', [dict(name='hn-fullbr', addresses=['198.18.52.1/24'])])):
        assert run_module(module, config=config)['changed'] is True
        assert run_module(module, config=config)['changed'] is False
    assert_nothing_orphaned()
