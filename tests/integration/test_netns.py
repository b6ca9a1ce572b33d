# -*- coding: utf-8 -*-
"""hostnet.provision.netns against the real kernel (inside the sandbox)."""

from __future__ import annotations

import subprocess

import pytest

from helpers import ip_json, netns_names, quartet, run_module, sh


def lo_is_up(netns):
    lo = ip_json('link', 'show', 'lo', netns=netns)[0]
    return 'UP' in lo['flags']


def test_quartet_creates_namespaces_with_loopback_up():
    config = [{'name': 'hn-a'}, {'name': 'hn-b'}]
    check, applied, _again, _check2 = quartet('netns', config=config)
    assert applied['commands'] == ['create netns hn-a', 'bring up lo in netns hn-a',
                                   'create netns hn-b', 'bring up lo in netns hn-b']
    assert netns_names() == ['hn-a', 'hn-b']
    assert lo_is_up('hn-a') and lo_is_up('hn-b')
    assert applied['diff']['after'] == {'hn-a': {'name': 'hn-a', 'pid': None, 'sysctls': {}},
                                        'hn-b': {'name': 'hn-b', 'pid': None, 'sysctls': {}}}
    assert check['after'] == applied['after']


def test_check_mode_changes_nothing():
    run_module('netns', check=True, config=[{'name': 'hn-a'}])
    assert netns_names() == []


def test_gathered_round_trip_and_overridden_spares_foreign():
    run_module('netns', config=[{'name': 'hn-a'}, {'name': 'hn-b'}])
    sh('ip', 'netns', 'add', 'foreign')
    gathered = run_module('netns', state='gathered')['gathered']
    assert gathered == [{'name': 'hn-a', 'pid': None, 'sysctls': {}}, {'name': 'hn-b', 'pid': None, 'sysctls': {}}]
    assert run_module('netns', state='overridden', config=gathered)['changed'] is False

    result = run_module('netns', state='overridden', config=[{'name': 'hn-b'}])
    assert result['commands'] == ['delete netns hn-a']
    assert netns_names() == ['foreign', 'hn-b']


def test_deleted_named_and_all():
    run_module('netns', config=[{'name': 'hn-a'}, {'name': 'hn-b'}, {'name': 'hn-c'}])
    assert run_module('netns', state='deleted', config=[{'name': 'hn-a'}])['commands'] == ['delete netns hn-a']
    assert run_module('netns', state='deleted', config=[{'name': 'hn-a'}])['changed'] is False
    assert run_module('netns', state='deleted')['commands'] == ['delete netns hn-b', 'delete netns hn-c']
    assert netns_names() == []


def test_foreign_namespace_is_refused_and_left_alone():
    sh('ip', 'netns', 'add', 'foreign')
    result = run_module('netns', fail=True, config=[{'name': 'foreign'}])
    assert 'not created by hostnet.provision' in result['msg']
    assert result['field'] == 'name' and result['value'] == 'foreign'
    assert run_module('netns', state='deleted', fail=True, config=[{'name': 'foreign'}])
    assert not lo_is_up('foreign')
    assert netns_names() == ['foreign']


@pytest.fixture
def process_with_netns():
    """A process in its own network namespace, like a container."""
    proc = subprocess.Popen(['unshare', '--net', 'sleep', '60'])
    try:
        for _attempt in range(50):  # bounded wait for unshare to exec sleep
            if open('/proc/%d/comm' % proc.pid).read().strip() == 'sleep':
                break
            subprocess.run(['sleep', '0.05'], check=True)
        yield proc
    finally:
        proc.kill()
        proc.wait(timeout=10)


def test_attach_namespace_of_running_process(process_with_netns):
    pid = process_with_netns.pid
    config = [{'name': 'app1', 'pid': pid, 'sysctls': {}}]
    _check, applied, _again, _check2 = quartet('netns', config=config)
    assert applied['commands'] == ['attach netns app1 to the namespace of pid %d' % pid]
    assert sh('ip', 'netns', 'identify', str(pid)).stdout.split() == ['app1']
    # Adopted, not owned: the process's loopback is left as it was (down).
    assert not lo_is_up('app1')
    assert run_module('netns', state='gathered')['gathered'] == [{'name': 'app1', 'pid': pid, 'sysctls': {}}]
    assert run_module('netns', state='deleted', config=config)['changed'] is True
    assert netns_names() == []


@pytest.mark.parametrize('config, field, fragment', [
    ([{'name': 'a/b'}], 'name', 'not a valid namespace name'),
    ([{'name': '.hidden'}], 'name', 'not a valid namespace name'),
    ([{'name': 'x', 'pid': 0}], 'pid', 'not a process id'),
    ([{'name': 'x', 'pid': 999999}], 'pid', 'no such process'),
    ([{'name': 'x'}, {'name': 'x'}], 'name', 'listed twice'),
])
def test_bad_input_refused_before_any_change(config, field, fragment):
    result = run_module('netns', fail=True, config=config + [{'name': 'hn-ok'}])
    assert fragment in result['msg']
    assert result['field'] == field
    assert netns_names() == []


def read_sysctl(netns, key):
    return sh('cat', '/proc/sys/' + key.replace('.', '/'), netns=netns).stdout.strip()


def test_router_namespace_sysctls():
    config = [{'name': 'router', 'sysctls': {'net.ipv4.ip_forward': 1, 'net.ipv6.conf.all.forwarding': True,
                                             'net.ipv4.conf.all.rp_filter': 2}}]
    check, applied, _again, _check2 = quartet('netns', config=config)
    assert 'set sysctl net.ipv4.ip_forward=1 in netns router' in applied['commands']
    assert read_sysctl('router', 'net.ipv4.ip_forward') == '1'
    assert read_sysctl('router', 'net.ipv6.conf.all.forwarding') == '1'
    assert read_sysctl('router', 'net.ipv4.conf.all.rp_filter') == '2'
    # The machine's (here: the sandbox's) own value is untouched.
    assert open('/proc/sys/net/ipv4/ip_forward').read().strip() == '0'
    gathered = run_module('netns', state='gathered')['gathered']
    assert gathered == [{'name': 'router', 'pid': None,
                         'sysctls': {'net.ipv4.ip_forward': '1', 'net.ipv6.conf.all.forwarding': '1',
                                     'net.ipv4.conf.all.rp_filter': '2'}}]
    assert run_module('netns', state='overridden', config=gathered)['changed'] is False
    change = run_module('netns', config=[{'name': 'router', 'sysctls': {'net.ipv4.ip_forward': 0}}])
    assert change['commands'] == ['set sysctl net.ipv4.ip_forward=0 in netns router (was 1)']
    assert check['after'] == applied['after']


@pytest.mark.parametrize('sysctls, fragment', [
    ({'kernel.hostname': 'x'}, 'not a network sysctl'),
    ({'net.ipv4.ip_forward': None}, 'not a number or string'),
    ({'net.ipv4.no_such_key': 1}, 'No such file'),
])
def test_bad_sysctls_refused(sysctls, fragment):
    result = run_module('netns', fail=True, config=[{'name': 'r1', 'sysctls': sysctls}])
    assert fragment in result['msg'], result['msg']
    assert result['field'] == 'sysctls'
