# -*- coding: utf-8 -*-
"""The local lab (scripts/lab.sh) and the connection plugin hostnet.provision.nsenter.

A lab is brought up in a temporary lab directory inside the sandbox; Ansible
reaches its hosts through the inventory the lab writes. Every check goes
through another channel than the code under test: the hosts' own `ip -j`,
/proc, the overlay's upper layer, real pings, and a scan of every process
and mount table on the machine after `down`.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import tempfile
import time

import pytest

from conftest import COLLECTIONS, REPO
from helpers import environ_for_lab

pytestmark = pytest.mark.lab

LAB_SH = os.path.join(REPO, 'scripts', 'lab.sh')
TAGS = (b'hostnet-lab-host', b'hostnet-lab-switch')
NAMES = ['lab1', 'lab2', 'lab3']
UNDERLAY = {'lab1': '198.18.0.11', 'lab2': '198.18.0.12', 'lab3': '198.18.0.13'}
TEST_FILE = '/etc/hostnet-lab-test'


def lab(lab_dir, *args, check=True, timeout=60):
    """Run scripts/lab.sh ARGS against LAB_DIR; return the CompletedProcess."""
    env = environ_for_lab(HOSTNET_LAB_DIR=str(lab_dir), HOSTNET_LAB_PYTHON=sys.executable)
    proc = subprocess.run(['bash', LAB_SH] + list(args), env=env, capture_output=True, text=True,
                          timeout=timeout, check=False)
    if check:
        assert proc.returncode == 0, 'lab.sh %s: %s%s' % (' '.join(args), proc.stdout, proc.stderr)
    return proc


def status(lab_dir):
    return json.loads(lab(lab_dir, 'status', '--json', check=False).stdout)


def ansible(lab_dir, pattern, module, args=None, inventory=None):
    """Run an ad-hoc module through the lab's inventory (or INVENTORY); return {host: result} (from --tree)."""
    env = environ_for_lab(ANSIBLE_COLLECTIONS_PATH=COLLECTIONS, ANSIBLE_NOCOLOR='1')
    binary = os.path.join(os.path.dirname(sys.executable), 'ansible')
    if not os.path.exists(binary):
        binary = os.path.join(REPO, '.venv', 'bin', 'ansible')
    with tempfile.TemporaryDirectory() as tree:
        inventory = inventory or os.path.join(str(lab_dir), 'inventory.yml')
        command = [binary, '-i', str(inventory), pattern, '-m', module, '--tree', tree]
        if args:
            command += ['-a', args]
        proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300, check=False)
        results = {}
        for name in os.listdir(tree):
            with open(os.path.join(tree, name), encoding='utf-8') as handle:
                results[name] = json.load(handle)
    if not results:
        pytest.fail('ansible %s -m %s: no result (rc %d)\n%s\n%s'
                    % (pattern, module, proc.returncode, proc.stdout[-2000:], proc.stderr[-2000:]))
    return results


def own_links():
    """Names of the links in the namespace the tests run in (the sandbox's)."""
    out = subprocess.run(['ip', '-j', 'link', 'show'], capture_output=True, text=True, check=True).stdout
    return sorted(link['ifname'] for link in json.loads(out))


def lab_processes(lab_dir):
    """PIDs whose command line marks them as processes of this lab."""
    found = []
    for name in os.listdir('/proc'):
        if not name.isdigit():
            continue
        try:
            with open('/proc/%s/cmdline' % name, 'rb') as handle:
                argv = handle.read().split(b'\0')
        except OSError:
            continue
        for tag in TAGS:
            if tag in argv and argv[argv.index(tag) + 1:argv.index(tag) + 2] == [str(lab_dir).encode()]:
                found.append(int(name))
    return found


def live(pid):
    try:
        with open('/proc/%d/stat' % pid, 'rb') as handle:
            return handle.read().rsplit(b')', 1)[-1].split()[0] not in (b'Z', b'X')
    except OSError:
        return False


def mounts_mentioning(lab_dir):
    """Lines of every mount table on the machine (all mount namespaces) naming the lab directory."""
    lines = []
    for name in os.listdir('/proc'):
        if name.isdigit():
            try:
                with open('/proc/%s/mountinfo' % name, encoding='utf-8', errors='replace') as handle:
                    lines += [line for line in handle if str(lab_dir) in line]
            except OSError:
                continue
    return lines


def recorded_pids(lab_dir):
    pids = []
    for root, dummy, files in os.walk(str(lab_dir)):
        for name in files:
            if name.endswith('.pid'):
                with open(os.path.join(root, name), encoding='ascii') as handle:
                    pids.append(int(handle.read().split()[0]))
    return pids


def assert_nothing_left(lab_dir, pids):
    assert not [pid for pid in pids if live(pid)], 'recorded lab processes still run'
    assert not lab_processes(lab_dir), 'lab processes still run'
    assert not mounts_mentioning(lab_dir), 'mounts of the lab remain'
    findmnt = subprocess.run(['findmnt', '-J', '-l'], capture_output=True, text=True, check=True).stdout
    assert str(lab_dir) not in findmnt
    assert not os.path.exists(str(lab_dir)), 'lab directory remains: %r' % os.listdir(str(lab_dir))
    assert own_links() == ['lo']


@pytest.fixture(scope='module')
def lab_dir(tmp_path_factory):
    """A running three-host lab for the tests that only look at it."""
    path = tmp_path_factory.mktemp('lab') / 'lab'
    started = time.monotonic()
    lab(path, 'up', '3')
    print('lab up: %.2fs' % (time.monotonic() - started))
    yield path
    lab(path, 'down', check=False)


@pytest.fixture
def scratch_lab(tmp_path):
    """A lab directory of the test's own, taken down whatever happens."""
    path = tmp_path / 'lab'
    yield path
    lab(path, 'down', check=False)


def test_up_creates_nothing_in_the_callers_namespace(lab_dir):
    assert own_links() == ['lo']
    state = status(lab_dir)
    assert state['up'] and [host['name'] for host in state['hosts']] == NAMES


def test_up_again_leaves_a_running_lab_alone(lab_dir):
    before = status(lab_dir)
    out = lab(lab_dir, 'up').stdout
    assert 'already up' in out
    assert status(lab_dir)['hosts'] == before['hosts']
    refused = lab(lab_dir, 'up', '5', check=False)
    assert refused.returncode == 1 and 'down first' in refused.stderr


def test_facts_show_only_the_hosts_own_links_and_name(lab_dir):
    results = ansible(lab_dir, 'lab', 'ansible.builtin.setup', 'gather_subset=network')
    assert sorted(results) == NAMES
    for name, result in results.items():
        facts = result['ansible_facts']
        assert sorted(facts['ansible_interfaces']) == ['eth0', 'lo'], name
        assert facts['ansible_hostname'] == name
        assert facts['ansible_eth0']['ipv4']['address'] == UNDERLAY[name]


def test_raw_runs_inside_the_host(lab_dir):
    results = ansible(lab_dir, 'lab', 'ansible.builtin.raw', 'hostname; readlink /proc/self/ns/net; ip -j link')
    own_netns = os.readlink('/proc/self/ns/net')
    seen = set()
    for name, result in results.items():
        assert result.get('rc') == 0, result
        hostname, netns, links = result['stdout'].strip().split('\n', 2)
        assert hostname == name
        assert netns != own_netns and netns not in seen
        seen.add(netns)
        assert sorted(link['ifname'] for link in json.loads(links)) == ['eth0', 'lo']


def test_copy_lands_in_the_hosts_etc_only(lab_dir):
    assert not os.path.exists(TEST_FILE)
    results = ansible(lab_dir, 'lab', 'ansible.builtin.copy', 'content={{ inventory_hostname }} dest=%s' % TEST_FILE)
    assert all(result.get('changed') for result in results.values()), results
    for name in NAMES:
        out = lab(lab_dir, 'exec', name, 'cat', TEST_FILE).stdout
        assert out == name
        with open(os.path.join(str(lab_dir), 'hosts', name, 'overlay', 'etc', 'upper', TEST_FILE[5:]), encoding='utf-8') as upper:
            assert upper.read() == name
    assert not os.path.exists(TEST_FILE)
    # And back through fetch_file.
    fetch_dir = lab_dir.parent / 'fetched'
    fetched = ansible(lab_dir, 'lab1', 'ansible.builtin.fetch', 'src=%s dest=%s/' % (TEST_FILE, fetch_dir))
    assert fetched['lab1'].get('changed'), fetched
    with open(os.path.join(str(fetch_dir), 'lab1', TEST_FILE[1:]), encoding='utf-8') as copy:
        assert copy.read() == 'lab1'


def test_hosts_ping_each_other_over_the_underlay(lab_dir):
    for source, target in itertools.permutations(NAMES, 2):
        proc = lab(lab_dir, 'exec', source, 'ping', '-c', '1', '-W', '2', UNDERLAY[target], check=False, timeout=10)
        assert proc.returncode == 0, (source, target, proc.stdout, proc.stderr)
    proc = lab(lab_dir, 'exec', 'lab1', 'ping', '-6', '-c', '1', '-W', '2', '2001:db8:18::13', check=False, timeout=10)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_a_daemon_started_in_a_host_dies_with_it(scratch_lab):
    lab(scratch_lab, 'up', '1')
    lab(scratch_lab, 'exec', 'lab1', 'sh', '-c', 'setsid sleep 1000 </dev/null >/dev/null 2>&1 &')
    pids = recorded_pids(scratch_lab)
    deadline = time.monotonic() + 5
    sleepers = []
    while not sleepers and time.monotonic() < deadline:
        time.sleep(0.01)  # the daemon may not have exec'd `sleep` yet
        sleepers = [int(name) for name in os.listdir('/proc') if name.isdigit() and _cmdline(name) == b'sleep\x001000\x00']
    assert sleepers
    lab(scratch_lab, 'down')
    assert not [pid for pid in sleepers if live(pid)]
    assert_nothing_left(scratch_lab, pids)


def _cmdline(pid):
    try:
        with open('/proc/%s/cmdline' % pid, 'rb') as handle:
            return handle.read()
    except OSError:
        return b''


def test_down_leaves_nothing_behind(scratch_lab):
    lab(scratch_lab, 'up', '3')
    pids = recorded_pids(scratch_lab)
    assert len(pids) == 8  # switch + 3 hosts, each a PID 1 and its unshare launcher
    started = time.monotonic()
    lab(scratch_lab, 'down')
    print('lab down: %.2fs' % (time.monotonic() - started))
    assert_nothing_left(scratch_lab, pids)
    assert lab(scratch_lab, 'status', check=False).returncode == 3
    lab(scratch_lab, 'down')  # again: nothing to do


def test_a_dead_host_is_reported_then_rebuilt_and_cleaned(scratch_lab):
    lab(scratch_lab, 'up', '3')
    with open(os.path.join(str(scratch_lab), 'hosts', 'lab2.pid'), encoding='ascii') as handle:
        os.kill(int(handle.read().split()[0]), signal.SIGKILL)
    time.sleep(0.2)
    state = status(scratch_lab)
    assert not state['up'] and [host['running'] for host in state['hosts']] == [True, False, True]
    assert lab(scratch_lab, 'status', check=False).returncode == 1

    results = ansible(scratch_lab, 'lab2', 'ansible.builtin.ping')
    assert results['lab2'].get('unreachable'), results
    assert 'lab host lab2 is not running' in results['lab2']['msg'] and 'scripts/lab.sh up' in results['lab2']['msg']

    out = lab(scratch_lab, 'up').stdout  # a half-dead lab is cleaned, then rebuilt at its size
    assert 'cleaning up' in out
    assert status(scratch_lab)['up'] and len(status(scratch_lab)['hosts']) == 3

    with open(os.path.join(str(scratch_lab), 'hosts', 'lab1.pid'), encoding='ascii') as handle:
        os.kill(int(handle.read().split()[0]), signal.SIGKILL)
    pids = recorded_pids(scratch_lab)
    lab(scratch_lab, 'down')
    assert_nothing_left(scratch_lab, pids)


def test_down_after_an_interrupted_up_cleans_everything(scratch_lab):
    env = environ_for_lab(HOSTNET_LAB_DIR=str(scratch_lab), HOSTNET_LAB_PYTHON=sys.executable)
    with subprocess.Popen(['bash', LAB_SH, 'up', '3'], env=env, stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL) as up:
        launcher = os.path.join(str(scratch_lab), 'hosts', 'lab2', 'launcher.pid')
        deadline = time.monotonic() + 10
        while not os.path.exists(launcher) and up.poll() is None and time.monotonic() < deadline:
            time.sleep(0.001)
        up.send_signal(signal.SIGKILL)  # lab.sh execs lab.py: this kills `up` midway
    pids = recorded_pids(scratch_lab)
    assert lab_processes(scratch_lab), 'the interrupted up left no process to clean (test ineffective)'
    lab(scratch_lab, 'down')
    assert_nothing_left(scratch_lab, pids)


def test_the_plugin_enters_a_process_of_ones_own_by_pid(tmp_path):
    with subprocess.Popen(['unshare', '--net', '--', 'sleep', '600']) as target:
        try:
            inventory = tmp_path / 'hosts.ini'
            inventory.write_text('nshost ansible_connection=hostnet.provision.nsenter ansible_nsenter_pid=%d '
                                 'ansible_nsenter_namespaces=net ansible_python_interpreter=%s\n'
                                 % (target.pid, sys.executable))
            deadline = time.monotonic() + 5
            while os.readlink('/proc/%d/ns/net' % target.pid) == os.readlink('/proc/self/ns/net'):
                assert time.monotonic() < deadline, 'unshare did not make its namespace'
                time.sleep(0.01)
            result = ansible(None, 'nshost', 'ansible.builtin.raw', 'readlink /proc/self/ns/net', inventory=inventory)
            assert result['nshost']['stdout'].strip() == os.readlink('/proc/%d/ns/net' % target.pid)
            assert ansible(None, 'nshost', 'ansible.builtin.ping', inventory=inventory)['nshost'].get('ping') == 'pong'
        finally:
            target.kill()
    result = ansible(None, 'nshost', 'ansible.builtin.ping', inventory=inventory)['nshost']
    assert result.get('unreachable') and 'process %d (ansible_nsenter_pid) is not running' % target.pid in result['msg']


def test_a_failed_up_cleans_up_after_itself(scratch_lab):
    # A regular file where lab2's state directory must go: `up` fails after
    # the switch and lab1 have started.
    os.makedirs(os.path.join(str(scratch_lab), 'hosts'))
    with open(os.path.join(str(scratch_lab), 'hosts', 'lab2'), 'w', encoding='ascii') as handle:
        handle.write('in the way\n')
    proc = lab(scratch_lab, 'up', '3', check=False)
    assert proc.returncode == 1 and 'lab up failed (cleaned up)' in proc.stderr, proc.stderr
    assert not lab_processes(scratch_lab)
    assert not mounts_mentioning(scratch_lab)
    assert os.listdir(str(scratch_lab)) == []
    assert own_links() == ['lo']
    lab(scratch_lab, 'up', '3')  # and the next `up` works
    assert status(scratch_lab)['up']
