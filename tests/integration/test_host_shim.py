# -*- coding: utf-8 -*-
"""The host talks to its own macvlan endpoints through a macvlan of its own
(docs/host-shim.md), and the management path stays up at every step.

A veth end (``nic0``) stands in for the host's NIC, holding the host's
management address 203.0.113.2/24; its other end is in namespace ``lan``,
the controller (203.0.113.100) on the LAN. Every step runs with
``SSH_CONNECTION`` naming that controller, as under Ansible, while a TCP
session from the controller to the host echoes a line every 100 ms: it must
never miss one.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from helpers import addresses, kernel_snapshot, ping, run_module, sh, snapshot_diff

HOST, CONTROLLER = '203.0.113.2', '203.0.113.100'
ENDPOINTS = {'ns-a': '203.0.113.10', 'ns-b': '203.0.113.11'}
SHIM = {'name': 'hn-shim', 'parent': 'nic0', 'mode': 'bridge', 'addresses': ['203.0.113.3/32'],
        'routes': [{'dest': address + '/32'} for address in ENDPOINTS.values()]}

ECHO_SERVER = '''
import socket
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("%s", 2222))
srv.listen(1)
conn, _peer = srv.accept()
while True:
    data = conn.recv(64)
    if not data:
        break
    conn.sendall(data)
''' % HOST

# Sends a line every 100 ms for at most 120 s (bounded), each answer within
# 1 s; prints "ok N" or "lost at N" and stops at the first loss or when the
# file named by argv[1] appears.
ECHO_CLIENT = '''
import os, socket, sys, time
s = socket.create_connection(("%s", 2222), timeout=5)
s.settimeout(1)
sent = 0
deadline = time.monotonic() + 120
while time.monotonic() < deadline and not os.path.exists(sys.argv[1]):
    sent += 1
    try:
        s.sendall(b"%%d\\n" %% sent)
        if not s.recv(64):
            raise OSError("closed")
    except OSError:
        print("lost at %%d" %% sent)
        sys.exit(1)
    time.sleep(0.1)
print("ok %%d" %% sent)
''' % HOST


@pytest.fixture
def lan(monkeypatch, tmp_path):
    """The host's NIC with its management address, the controller on the LAN
    with a live session to the host, and two macvlan endpoints on the NIC."""
    sh('ip', 'netns', 'add', 'lan')
    sh('ip', 'link', 'add', 'nic0', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', 'lan')
    sh('ip', 'addr', 'add', HOST + '/24', 'dev', 'nic0')
    sh('ip', 'link', 'set', 'nic0', 'up')
    sh('ip', 'addr', 'add', CONTROLLER + '/24', 'dev', 'eth0', netns='lan')
    sh('ip', 'link', 'set', 'eth0', 'up', netns='lan')
    sh('ip', 'link', 'set', 'lo', 'up', netns='lan')
    monkeypatch.setenv('SSH_CONNECTION', '%s 50000 %s 22' % (CONTROLLER, HOST))
    run_module('netns', config=[{'name': name} for name in ENDPOINTS])
    run_module('macvlan', config=[{'name': 'eth0', 'netns': name, 'parent': 'nic0',
                                   'addresses': [address + '/24']} for name, address in ENDPOINTS.items()])
    server = subprocess.Popen(['timeout', '150', sys.executable, '-c', ECHO_SERVER], start_new_session=True)
    for _attempt in range(50):
        if ':08AE ' in open('/proc/net/tcp', encoding='ascii').read():
            break
        time.sleep(0.1)
    stop = tmp_path / 'stop'
    client = subprocess.Popen(['ip', 'netns', 'exec', 'lan', 'timeout', '150', sys.executable, '-c', ECHO_CLIENT,
                               str(stop)], stdout=subprocess.PIPE, text=True, start_new_session=True)
    session = {'stop': stop, 'client': client}
    yield session
    for proc in (client, server):
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def session_survived(session):
    """End the controller's session; True when it never missed an answer
    (and answered a few lines: half a second more for a short test)."""
    time.sleep(0.5)
    session['stop'].touch()
    out, _err = session['client'].communicate(timeout=10)
    assert out.startswith('ok '), out
    return int(out.split()[1]) >= 3


def test_the_host_reaches_its_macvlan_endpoints_through_a_shim(lan):
    # Before: the LAN reaches the endpoints, the host does not (the
    # kernel's macvlan design: the parent never hands frames to its children).
    assert ping('lan', ENDPOINTS['ns-a'])
    assert not ping(None, ENDPOINTS['ns-a'], timeout=1)
    # The shim: a macvlan of the host's own on the same NIC, a /32 address
    # and one route per endpoint. Nothing on nic0 changes.
    nic_before = addresses('nic0')
    result = run_module('macvlan', config=[SHIM])
    assert result['commands'][:2] == ['create macvlan hn-shim on nic0 (mode bridge)',
                                      'add address 203.0.113.3/32 to hn-shim']
    assert addresses('nic0') == nic_before == [HOST + '/24']
    for name, address in ENDPOINTS.items():
        assert ping(None, address), name
        # ... from the shim's address, which the endpoint answers on its segment.
        assert sh('ip', '-j', 'route', 'get', address).stdout.count('"prefsrc":"203.0.113.3"') == 1
    assert ping('lan', HOST) and ping('lan', ENDPOINTS['ns-b'])
    assert run_module('macvlan', config=[SHIM])['changed'] is False
    # Removing the shim takes its routes with it; the management path is as before.
    run_module('macvlan', state='deleted', config=[{'name': 'hn-shim'}])
    assert not ping(None, ENDPOINTS['ns-a'], timeout=1)
    assert addresses('nic0') == [HOST + '/24']
    assert session_survived(lan)


@pytest.mark.parametrize('change, fragment', [
    # A route on the shim that would capture the controller's address.
    ({'routes': [{'dest': '203.0.113.96/28'}]}, 'SSH_CONNECTION'),
    # A subnet on the shim: its prefix route covers the controller.
    ({'addresses': ['203.0.113.3/24']}, 'SSH_CONNECTION'),
    # The host's own management address, moved onto the shim.
    ({'addresses': [HOST + '/32']}, 'by its parent nic0'),
])
def test_a_shim_that_would_cut_the_management_path_is_refused(lan, change, fragment):
    before = kernel_snapshot()
    result = run_module('macvlan', fail=True, config=[dict(SHIM, **change)])
    assert fragment in result['msg'], result['msg']
    assert snapshot_diff(before, kernel_snapshot()) == []
    assert ping('lan', HOST)
    assert session_survived(lan)
