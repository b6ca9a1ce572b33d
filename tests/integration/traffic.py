# -*- coding: utf-8 -*-
"""Real packets between namespaces, and nftables read back through ``nft -j``.

Every wait is bounded: servers are started with a deadline, clients have a
connect and an idle timeout, polling loops give up after a few seconds.
``None`` as a namespace means the sandbox namespace itself ("the host").
"""

from __future__ import annotations

import ipaddress
import json
import os
import signal
import subprocess
import sys
import time

from helpers import run_module, sh

# Seconds; a backstop only (the fixtures kill their servers): a test that runs
# several role plays on a loaded machine must not outlive its servers.
SERVER_LIFETIME = 900


def _in(netns, cmd):
    return (['ip', 'netns', 'exec', netns] if netns else []) + list(cmd)


def _addr(address):
    return '[%s]' % address if ':' in address else address


class Servers:
    """Background listeners, all killed at teardown."""

    def __init__(self):
        self.procs = []

    def _start(self, netns, cmd):
        proc = subprocess.Popen(_in(netns, ['timeout', str(SERVER_LIFETIME)] + cmd),
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.procs.append(proc)
        return proc

    def tcp(self, netns, port, text, family=4):
        """A TCP server answering ``text`` and ``peer=<client address>``."""
        listen = 'TCP4-LISTEN:%d,fork,reuseaddr' % port if family == 4 else 'TCP6-LISTEN:%d,fork,reuseaddr,ipv6only=1' % port
        self._start(netns, ['socat', '-T3', listen, 'SYSTEM:echo %s; echo peer=$SOCAT_PEERADDR' % text])
        wait_listening(netns, 'tcp' if family == 4 else 'tcp6', port)

    def udp_sink(self, netns, port, path):
        """A UDP server appending every datagram to ``path``."""
        open(path, 'w').close()
        self._start(netns, ['socat', '-u', 'UDP-RECV:%d,reuseaddr' % port, 'OPEN:%s,creat,append' % path])
        wait_listening(netns, 'udp', port)

    def udp_stream(self, netns, address, port, source_port, count=400, interval=0.05):
        """A client sending one datagram every ``interval`` from a fixed source port."""
        code = ('import socket,time\n'
                's=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n'
                's.bind(("",%d))\n'
                'for i in range(%d):\n'
                '    s.sendto(b"ping\\n",("%s",%d)); time.sleep(%s)\n' % (source_port, count, address, port, interval))
        self._start(netns, [sys.executable, '-c', code])

    def stop(self):
        for proc in self.procs:
            if proc.poll() is None:
                # `timeout` leads a process group of its own: kill the server
                # under it too, not only the wrapper.
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except OSError:
                    proc.kill()
            proc.wait(timeout=10)
        self.procs = []


def wait_listening(netns, table, port, timeout=5.0):
    """Poll /proc/net/<table> until a socket is bound to ``port``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = sh('cat', '/proc/net/%s' % table, netns=netns, check=False).stdout
        for line in out.splitlines()[1:]:
            cols = line.split()
            if len(cols) > 3 and ':' in cols[1] and int(cols[1].rsplit(':', 1)[1], 16) == port:
                return
        time.sleep(0.05)
    raise AssertionError('nothing listens on %s port %d in %s' % (table, port, netns or 'the host'))


def tcp_get(netns, address, port, timeout=2):
    """Connect, return what the server said (``''`` if the connection failed).

    ``timeout`` bounds the connect, which is what policy decides (a dropped
    SYN). Once connected, the server gets a few seconds to answer: stdin is
    empty, and socat's default 0.5 s wait after one side's EOF loses a reply
    from a server slowed by a loaded machine."""
    wait = timeout + 3
    cmd = _in(netns, ['timeout', str(timeout + wait + 2), 'socat', '-t%d' % wait, '-T%d' % wait, '-',
                      'TCP:%s:%d,connect-timeout=%d' % (_addr(address), port, timeout)])
    proc = subprocess.run(cmd, capture_output=True, text=True, stdin=subprocess.DEVNULL, check=False)
    return proc.stdout


def reaches(netns, address, port, text, timeout=2):
    """True when the server that says ``text`` answers."""
    return text in tcp_get(netns, address, port, timeout)


def peer_seen(netns, address, port, timeout=2):
    """The client address the server saw, or None."""
    for line in tcp_get(netns, address, port, timeout).splitlines():
        if line.startswith('peer='):
            return str(ipaddress.ip_address(line[5:].strip('[]')))
    return None


def wait_file_grows(path, timeout=3.0):
    """True when ``path`` grows within ``timeout`` seconds."""
    start = os.path.getsize(path)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if os.path.getsize(path) > start:
            return True
        time.sleep(0.05)
    return False


def nft_json(*args):
    out = subprocess.run(['nft', '-j', 'list'] + list(args), check=True, capture_output=True, text=True).stdout
    return json.loads(out)['nftables']


def ruleset():
    """``nft -j list ruleset`` as text (compared byte for byte)."""
    return subprocess.run(['nft', '-j', 'list', 'ruleset'], check=True, capture_output=True, text=True).stdout


def foreign(ruleset_text):
    """The objects of every table that is not ours, in listing order."""
    out = []
    for obj in json.loads(ruleset_text)['nftables']:
        body = next(iter(obj.values()))
        if 'metainfo' in obj:
            continue
        table = body.get('table') if 'table' in body and isinstance(body.get('table'), str) else body.get('name')
        if table != 'hostnet':
            out.append(obj)
    return out


def elements(family, set_name):
    """Elements of one of our sets/maps as nft -j prints them."""
    for obj in nft_json('table', family, 'hostnet'):
        body = obj.get('set') or obj.get('map')
        if body and body['name'] == set_name:
            return body.get('elem', [])
    return []


def sysctl(netns, *parts):
    return sh('cat', '/proc/sys/' + '/'.join(parts), netns=netns).stdout.strip()


# -- a small data center --------------------------------------------------------

BR0 = {'name': 'hn-br0', 'addresses': ['198.51.100.1/24', '2001:db8:100::1/64'], 'masquerade': True}
BR1 = {'name': 'hn-br1', 'addresses': ['203.0.113.1/24', '2001:db8:200::1/64'], 'masquerade': True}
UPLINK = {'name': 'hn-up', 'addresses': ['198.18.0.1/24', '2001:db8:ff::1/64'],
          'peer': {'name': 'eth0', 'netns': 'outside', 'addresses': ['198.18.0.2/24', '2001:db8:ff::2/64'],
                   'gateway': ['198.18.0.1', '2001:db8:ff::1']}}
HOST_V4, HOST_V6 = '198.18.0.1', '2001:db8:ff::1'
OUTSIDE_V4, OUTSIDE_V6 = '198.18.0.2', '2001:db8:ff::2'


def endpoint(netns, bridge, v4, v6, gw4, gw6, host_end=None):
    return {'name': host_end or 'v-%s' % netns, 'bridge': bridge,
            'peer': {'name': 'eth0', 'netns': netns, 'addresses': ['%s/24' % v4, '%s/64' % v6],
                     'gateway': [gw4, gw6]}}


ENDPOINTS = {
    'ep-a': ('hn-br0', '198.51.100.10', '2001:db8:100::10', '198.51.100.1', '2001:db8:100::1'),
    'ep-b': ('hn-br0', '198.51.100.11', '2001:db8:100::11', '198.51.100.1', '2001:db8:100::1'),
    'ep-c': ('hn-br1', '203.0.113.10', '2001:db8:200::10', '203.0.113.1', '2001:db8:200::1'),
}


def build(bridges=(BR0, BR1), endpoints=('ep-a', 'ep-b', 'ep-c')):
    """The host (sandbox), an outside namespace on a veth uplink, bridges and
    endpoint namespaces on them. Returns the endpoint addresses."""
    run_module('netns', config=[{'name': n} for n in ('outside',) + tuple(endpoints)])
    run_module('bridge', enable_forwarding=True, config=list(bridges))
    config = [UPLINK] + [endpoint(n, *ENDPOINTS[n]) for n in endpoints]
    run_module('veth', config=config)
    # Resolve neighbours once (IPv6 needs up to a second on fresh links), so
    # that the tests' short client timeouts measure policy, not ND.
    for name in endpoints:
        for gateway in ENDPOINTS[name][3:]:
            assert settle(name, gateway), (name, gateway)
    for address in (HOST_V4, HOST_V6):
        assert settle('outside', address), address
    return dict((n, ENDPOINTS[n][1]) for n in endpoints)


def settle(netns, address, deadline=10):
    """One echo reply within ``deadline`` seconds (one request a second)."""
    flag = '-6' if ':' in address else '-4'
    return sh('ping', flag, '-n', '-q', '-c', '1', '-w', str(deadline), address, netns=netns,
              check=False).returncode == 0
