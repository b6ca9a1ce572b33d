# -*- coding: utf-8 -*-
"""Names inside networks: bridge_network with dns, proven by lookups and TCP.

The role runs through ansible-playbook on the sandbox itself. The resolver
is a real dnsmasq per network; answers are read with `getent hosts` under
`ip netns exec` (which mounts /etc/netns/NS/resolv.conf and hosts), and a
TCP connection is made by name. /etc is an overlay for the duration of the
module (the sandbox's mount namespace is private), so /etc/netns is written
there and never reaches the machine's own /etc; the resolvers' own files
and pidfiles go to a temporary directory.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import pytest

from helpers import ip_json, sh
from test_check_mode_fresh import module_tasks, play_role

pytestmark = pytest.mark.playbook

UPSTREAM = '198.18.7.2'
EXTERNAL = ('www.ext.example', '203.0.113.77')
NETWORK_TASK = "Networks, endpoints, published ports and resolvers"


@pytest.fixture(scope='module')
def etc_overlay():
    """/etc as an overlay (upper layer on a tmpfs) in the sandbox's mount namespace."""
    base = tempfile.mkdtemp(prefix='hn-dns-etc-')
    subprocess.run(['mount', '-t', 'tmpfs', 'hn-dns', base], check=True)
    os.makedirs(os.path.join(base, 'upper'))
    os.makedirs(os.path.join(base, 'work'))
    subprocess.run(['mount', '-t', 'overlay', 'hn-dns', '-o', 'lowerdir=/etc,upperdir=%s/upper,workdir=%s/work'
                    % (base, base), '/etc'], check=True)
    try:
        yield
    finally:
        subprocess.run(['umount', '/etc'], check=False)
        subprocess.run(['umount', base], check=False)
        os.rmdir(base)


@pytest.fixture
def dirs(etc_overlay):
    """Where the resolvers' files go; readable by dnsmasq's unprivileged user."""
    base = tempfile.mkdtemp(prefix='hn-dns-')
    os.chmod(base, 0o755)
    out = {'bridge_network_dns_config_dir': os.path.join(base, 'conf'),
           'bridge_network_dns_run_dir': os.path.join(base, 'run'),
           'bridge_network_dns_supervisor': 'process'}
    try:
        yield out
    finally:
        # Never leave a resolver running, whatever the test did.
        for pidfile in _glob(out['bridge_network_dns_run_dir'], '.pid'):
            _kill(pidfile)
        shutil.rmtree(base, ignore_errors=True)
        shutil.rmtree('/etc/netns', ignore_errors=True)


@pytest.fixture
def upstream(dirs):
    """Another resolver, in a namespace of its own, that serves one external
    name and, like any real resolver, says NXDOMAIN for every other one
    (without `--address=/#/` it has no servers and refuses; a network's
    resolver that only hears refusals can leave a client waiting its full
    timeout per search domain)."""
    sh('ip', 'netns', 'add', 'hn-up')
    sh('ip', 'link', 'add', 'hn-up0', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', 'hn-up')
    sh('ip', 'addr', 'add', '198.18.7.1/30', 'dev', 'hn-up0')
    sh('ip', 'link', 'set', 'hn-up0', 'up')
    sh('ip', 'addr', 'add', UPSTREAM + '/30', 'dev', 'eth0', netns='hn-up')
    sh('ip', 'link', 'set', 'eth0', 'up', netns='hn-up')
    pidfile = os.path.join(os.path.dirname(dirs['bridge_network_dns_run_dir']), 'upstream.pid')
    sh('ip', 'netns', 'exec', 'hn-up', '/usr/sbin/dnsmasq', '--conf-file=/dev/null', '--no-resolv', '--no-hosts',
       '--bind-interfaces', '--listen-address=' + UPSTREAM, '--address=/%s/%s' % EXTERNAL, '--address=/#/',
       '--pid-file=' + pidfile)
    try:
        yield UPSTREAM
    finally:
        _kill(pidfile)


def _glob(directory, suffix):
    try:
        return [os.path.join(directory, f) for f in os.listdir(directory) if f.endswith(suffix)]
    except FileNotFoundError:
        return []


def _pid(pidfile):
    with open(pidfile) as fh:
        return int(fh.read().strip())


def _alive(pid):
    """Running: a zombie (exited, not reaped yet by its parent) is not."""
    try:
        with open('/proc/%d/stat' % pid) as fh:
            return fh.read().rsplit(')', 1)[1].split()[0] not in ('Z', 'X')
    except OSError:
        return False


def _kill(pidfile):
    try:
        pid = _pid(pidfile)
    except (OSError, ValueError):
        return
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    for _attempt in range(50):
        if not _alive(pid):
            return
        time.sleep(0.1)


def lookup(netns, name):
    """Addresses `getent hosts NAME` gives inside NETNS (under ip netns exec),
    [] when none. Every answer, negative ones included, comes at once: a
    lookup that waits out the resolver's timeouts fails the test (it did
    while a network's bridge took its lowest port's MAC, which changed under
    the endpoints' neighbour caches when an endpoint joined or left)."""
    try:
        proc = subprocess.run(['ip', 'netns', 'exec', netns, 'getent', 'hosts', name], capture_output=True,
                              text=True, timeout=4, check=False)
    except subprocess.TimeoutExpired:
        pytest.fail('lookup of %s in %s got no answer within 4 s' % (name, netns))
    return sorted(set(line.split()[0] for line in proc.stdout.splitlines() if line.strip()))


def address(netns):
    return [a['local'] for link in ip_json('addr', 'show', 'dev', 'eth0', netns=netns)
            for a in link['addr_info'] if a['family'] == 'inet'][0]


def tcp_by_name(src, dst_ns, name, port=8000):
    """A TCP connection from SRC to NAME (resolved in SRC), accepted in DST_NS."""
    server = subprocess.Popen(['ip', 'netns', 'exec', dst_ns, sys.executable, '-c',
                               'import socket; s = socket.create_server(("", %d)); s.settimeout(10); '
                               'c, _ = s.accept(); c.sendall(b"hello"); c.close()' % port],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        client = None
        for _attempt in range(50):
            client = subprocess.run(['ip', 'netns', 'exec', src, sys.executable, '-c',
                                     'import socket; c = socket.create_connection((%r, %d), timeout=5); '
                                     'print(c.recv(5).decode())' % (name, port)],
                                    capture_output=True, text=True, timeout=20, check=False)
            if client.returncode == 0:
                break
            time.sleep(0.1)
        return client.stdout.strip()
    finally:
        server.kill()
        server.wait()


def networks(upstream, extra=(), web_state='present', other_state='present'):
    return [
        {'name': 'web', 'subnet': '198.51.100.0/25', 'dns': True, 'dns_upstreams': [upstream], 'state': web_state,
         'endpoints': [
             {'name': 'hn-a', 'aliases': ['alpha'], 'dns_search': ['example.test'], 'dns_options': ['ndots:1'],
              'extra_hosts': ['gw-host:198.18.7.1']},
             {'name': 'hn-b'}] + list(extra)},
        {'name': 'other', 'subnet': '198.51.100.128/25', 'dns': True, 'dns_upstreams': [upstream],
         'state': other_state, 'endpoints': [{'name': 'hn-c'}]},
    ]


def run(tmp_path, variables, check=False):
    rc, tasks, out = play_role(tmp_path, 'bridge_network', variables, check=check)
    assert rc == 0, out
    return tasks


def dns_task(tasks):
    """The resolvers' step of the role's network task: its operations, and
    whether it changed anything."""
    task = [t for t in tasks if t['task'].endswith(NETWORK_TASK)][0]
    commands = (task['dns'] or {}).get('commands') or []
    return {'commands': commands, 'changed': bool(commands)}


def test_names_resolve_inside_a_network_only(tmp_path, dirs, upstream):
    variables = dict(dirs, bridge_network_sysctl_file=str(tmp_path / 'sysctl.conf'),
                     bridge_network_networks=networks(upstream))
    conf = dirs['bridge_network_dns_config_dir']
    web_pidfile = os.path.join(dirs['bridge_network_dns_run_dir'], 'web.pid')

    predicted = dns_task(run(tmp_path, variables, check=True))
    assert not os.path.exists(conf) and not os.path.exists('/etc/netns')
    made = dns_task(run(tmp_path, variables))
    assert predicted['commands'] == made['commands'] and made['changed']
    assert 'start web' in made['commands'] and 'start other' in made['commands']

    a, b, c = address('hn-a'), address('hn-b'), address('hn-c')
    # Names of the own network (and aliases), bare and under the network's domain.
    assert lookup('hn-a', 'hn-b') == [b]
    assert lookup('hn-a', 'hn-b.web') == [b]
    assert lookup('hn-b', 'alpha') == [a]
    assert lookup('hn-c', 'hn-c') == [c]
    assert tcp_by_name('hn-a', 'hn-b', 'hn-b') == 'hello'
    # Nothing about the other network, bare or qualified, either way.
    assert lookup('hn-a', 'hn-c') == []
    assert lookup('hn-a', 'hn-c.other') == []
    assert lookup('hn-c', 'hn-a') == []
    assert lookup('hn-c', 'alpha.web') == []
    # Other names go to the upstream; the endpoint's own settings are in its files.
    assert lookup('hn-a', EXTERNAL[0]) == [EXTERNAL[1]]
    assert lookup('hn-a', 'gw-host') == ['198.18.7.1']
    with open('/etc/netns/hn-a/resolv.conf') as fh:
        resolv = fh.read().splitlines()
    assert 'nameserver 198.51.100.1' in resolv and 'search web example.test' in resolv and 'options ndots:1' in resolv
    # Listening on the gateways only.
    listening = subprocess.run(['ss', '-Hlnu', 'sport', '=', ':53'], capture_output=True, text=True,
                               check=True).stdout
    assert sorted(line.split()[3] for line in listening.splitlines()) == ['198.51.100.129:53', '198.51.100.1:53']

    # Idempotent, and check mode agrees.
    again = run(tmp_path, variables)
    assert [t['task'] for t in module_tasks(again) if t['changed']] == []
    assert not [t['task'] for t in again if t['changed']]
    assert not dns_task(run(tmp_path, variables, check=True))['changed']

    # A new endpoint's name resolves; the resolver is reloaded, not restarted.
    pid = _pid(web_pidfile)
    variables['bridge_network_networks'] = networks(upstream, extra=[{'name': 'hn-d', 'aliases': ['delta']}])
    predicted = dns_task(run(tmp_path, variables, check=True))
    made = dns_task(run(tmp_path, variables))
    assert predicted['commands'] == made['commands'] and 'reload web' in made['commands']
    assert lookup('hn-a', 'delta') == [address('hn-d')] and lookup('hn-d', 'hn-b') == [b]
    assert _pid(web_pidfile) == pid
    # ... and a removed one's name goes, with its files.
    variables['bridge_network_networks'] = networks(upstream, extra=[{'name': 'hn-d', 'state': 'absent'}])
    made = dns_task(run(tmp_path, variables))
    assert 'reload web' in made['commands'] and _pid(web_pidfile) == pid
    assert lookup('hn-a', 'delta') == [] and not os.path.exists('/etc/netns/hn-d')

    # A resolver that died is started again.
    other_pidfile = os.path.join(dirs['bridge_network_dns_run_dir'], 'other.pid')
    _kill(other_pidfile)
    made = dns_task(run(tmp_path, variables))
    assert made['commands'] == ['start other'] and _alive(_pid(other_pidfile))
    assert lookup('hn-c', 'hn-c.other') == [c]

    # Removing a network stops its resolver and removes its files; the other stays.
    variables['bridge_network_networks'] = networks(upstream, web_state='absent')
    predicted = dns_task(run(tmp_path, variables, check=True))
    made = dns_task(run(tmp_path, variables))
    assert predicted['commands'] == made['commands'] and made['commands'][0] == 'stop web'
    assert not _alive(pid)
    assert sorted(os.listdir(conf)) == ['other.conf', 'other.hosts']
    assert sorted(os.listdir('/etc/netns')) == ['hn-c']
    assert lookup('hn-c', 'hn-c') == [c]
    variables['bridge_network_networks'] = networks(upstream, web_state='absent', other_state='absent')
    run(tmp_path, variables)
    assert os.listdir(conf) == [] and os.listdir('/etc/netns') == []
    assert _glob(dirs['bridge_network_dns_run_dir'], '.pid') == []


QUERY = '''
import socket, struct, sys
server, name = sys.argv[1], sys.argv[2]
query = struct.pack('>HHHHHH', 0x1234, 0x0100, 1, 0, 0, 0)
query += b''.join(bytes([len(p)]) + p.encode() for p in name.split('.')) + b'\\0' + struct.pack('>HH', 1, 1)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(2)
s.sendto(query, (server, 53))
try:
    reply = s.recv(512)
except socket.timeout:
    print('timeout')
else:
    print('rcode=%d answers=%d' % (reply[3] & 15, struct.unpack('>H', reply[6:8])[0]))
'''


def query(netns, server, name):
    """One DNS query over UDP from NETNS to SERVER: 'rcode=N answers=M' or 'timeout'."""
    return subprocess.run(['ip', 'netns', 'exec', netns, sys.executable, '-c', QUERY, server, name],
                          capture_output=True, text=True, timeout=20, check=True).stdout.strip()


def tcp_open(netns, address, port):
    proc = subprocess.run(['ip', 'netns', 'exec', netns, sys.executable, '-c',
                           'import socket; socket.create_connection((%r, %d), timeout=2)' % (address, port)],
                          capture_output=True, text=True, timeout=20, check=False)
    return proc.returncode == 0


def test_tenants_resolve_their_own_names_and_reach_only_dns_on_the_host(tmp_path, dirs, upstream):
    """tenant_networks with dns: host access stays off but for DNS to the own gateway."""
    tenants = [
        {'name': 'acme', 'subnet': '203.0.113.0/26', 'dns': True, 'dns_upstreams': [upstream],
         'endpoints': [{'name': 'hn-t1'}, {'name': 'hn-t2', 'aliases': ['db']}]},
        {'name': 'globex', 'subnet': '203.0.113.64/26', 'dns': True, 'endpoints': [{'name': 'hn-g1'}]},
    ]
    variables = dict(dirs, tenant_networks_sysctl_file=str(tmp_path / 'sysctl.conf'), tenant_networks_tenants=tenants)
    # A service of the host on the acme gateway, which tenants must not reach.
    listener = subprocess.Popen([sys.executable, '-c', 'import socket, time; s = socket.create_server(("", 8053)); '
                                 'time.sleep(120)'])
    try:
        rc, _tasks, out = play_role(tmp_path, 'tenant_networks', variables)
        assert rc == 0, out
        t2 = address('hn-t2')
        assert lookup('hn-t1', 'db') == [t2] and lookup('hn-t1', 'hn-t2.acme') == [t2]
        assert lookup('hn-t1', EXTERNAL[0]) == [EXTERNAL[1]]
        assert lookup('hn-t1', 'hn-g1') == [] and lookup('hn-g1', 'db') == []
        # DNS to the own gateway passes host_access: false, over UDP and TCP ...
        assert query('hn-t1', '203.0.113.1', 'db') == 'rcode=0 answers=1'
        assert tcp_open('hn-t1', '203.0.113.1', 53)
        # ... and only that: not another port of the gateway, not another tenant's resolver.
        socket.create_connection(('203.0.113.1', 8053), timeout=2).close()  # the listener is there
        assert not tcp_open('hn-t1', '203.0.113.1', 8053)
        assert query('hn-t1', '203.0.113.65', 'hn-g1') == 'timeout'
        assert query('hn-g1', '203.0.113.65', 'hn-g1') == 'rcode=0 answers=1'
        rules = subprocess.run(['nft', '-j', 'list', 'set', 'inet', 'hostnet', 'dns_access4'], capture_output=True,
                               text=True, check=True).stdout
        assert '203.0.113.1' in rules and '203.0.113.65' in rules

        # dns switched off: resolver and files go, and DNS to the gateway is blocked again.
        tenants[0]['dns'] = False
        rc, _tasks, out = play_role(tmp_path, 'tenant_networks', variables)
        assert rc == 0, out
        assert sorted(os.listdir(dirs['bridge_network_dns_config_dir'])) == ['globex.conf', 'globex.hosts']
        assert not os.path.exists('/etc/netns/hn-t1')
        assert query('hn-t1', '203.0.113.1', 'db') == 'timeout'
    finally:
        listener.kill()
        listener.wait()
        for tenant in tenants:
            tenant['state'] = 'absent'
        play_role(tmp_path, 'tenant_networks', variables)


ANSWER = '''
import socket, struct, sys
server, name, qtype = sys.argv[1], sys.argv[2], int(sys.argv[3])
family = socket.AF_INET6 if ':' in server else socket.AF_INET
question = b''.join(bytes([len(p)]) + p.encode() for p in name.split('.')) + b'\\0' + struct.pack('>HH', qtype, 1)
s = socket.socket(family, socket.SOCK_DGRAM)
s.settimeout(2)
s.sendto(struct.pack('>HHHHHH', 0x4321, 0x0100, 1, 0, 0, 0) + question, (server, 53))
try:
    reply = s.recv(512)
except socket.timeout:
    print('timeout')
    sys.exit()
count, at, found = struct.unpack('>H', reply[6:8])[0], 12 + len(question), []
for _answer in range(count):
    at += 2 if reply[at] & 0xc0 else reply.index(0, at) + 1 - at
    rtype, _cls, _ttl, size = struct.unpack('>HHIH', reply[at:at + 10])
    at += 10
    if rtype == qtype:
        found.append(socket.inet_ntop(socket.AF_INET6 if rtype == 28 else socket.AF_INET, reply[at:at + size]))
    at += size
print('rcode=%d %s' % (reply[3] & 15, ' '.join(sorted(found))))
'''


def answer(cmd, server, name, qtype):
    """One DNS query over UDP to SERVER, its transport chosen by SERVER's
    family, run by CMD (a command prefix that enters a namespace): 'rcode=N
    ADDRESSES' or 'timeout'."""
    return subprocess.run(cmd + [sys.executable, '-c', ANSWER, server, name, str(qtype)], capture_output=True,
                          text=True, timeout=20, check=True).stdout.strip()


def until(probe, want, attempts=50):
    """PROBE() until it returns WANT (bounded: IPv6 addresses are usable
    once duplicate address detection is done); its last value."""
    got = None
    for _attempt in range(attempts):
        got = probe()
        if got == want:
            break
        time.sleep(0.1)
    return got


def addresses6(netns):
    return [a['local'] for link in ip_json('addr', 'show', 'dev', 'eth0', netns=netns)
            for a in link['addr_info'] if a['family'] == 'inet6' and a.get('scope') == 'global']


def test_a_dual_stack_network_answers_aaaa_over_both_families(tmp_path, dirs, upstream):
    """IPv6 names: AAAA records of the network's endpoints, for glibc inside
    the endpoint and for a query sent to the resolver's IPv6 address."""
    nets = [{'name': 'web', 'subnet': '198.51.100.0/25', 'subnet6': '2001:db8:100::/64', 'dns': True,
             'dns_upstreams': [upstream], 'endpoints': [{'name': 'hn-a'}, {'name': 'hn-b', 'aliases': ['api']}]},
            {'name': 'other', 'subnet': '198.51.100.128/25', 'subnet6': '2001:db8:101::/64', 'dns': True,
             'dns_upstreams': [upstream], 'endpoints': [{'name': 'hn-c'}]}]
    run(tmp_path, dict(dirs, bridge_network_sysctl_file=str(tmp_path / 'sysctl.conf'), bridge_network_networks=nets))
    b4, b6, c6 = address('hn-b'), addresses6('hn-b'), addresses6('hn-c')
    assert len(b6) == 1 and b6[0].startswith('2001:db8:100:') and len(c6) == 1
    with open('/etc/netns/hn-a/resolv.conf') as fh:
        assert [line for line in fh.read().splitlines() if line.startswith('nameserver')] == \
            ['nameserver 198.51.100.1', 'nameserver 2001:db8:100::1']

    def getent(netns, database, name):
        proc = subprocess.run(['ip', 'netns', 'exec', netns, 'getent', database, name], capture_output=True,
                              text=True, timeout=20, check=False)
        return sorted(set(line.split()[0] for line in proc.stdout.splitlines() if line.strip()))

    # glibc inside the endpoint: AAAA and A of a name and of an alias.
    assert until(lambda: getent('hn-a', 'ahostsv6', 'hn-b'), b6) == b6
    assert getent('hn-a', 'ahostsv6', 'api.web') == b6
    assert getent('hn-a', 'ahostsv4', 'hn-b') == [b4]
    assert getent('hn-a', 'ahosts', 'api') == sorted([b4] + b6)
    assert getent('hn-a', 'ahostsv6', 'hn-c') == []
    # The resolver answers over IPv6 on the gateway's IPv6 address, A and AAAA alike ...
    in_a = ['ip', 'netns', 'exec', 'hn-a']
    assert until(lambda: answer(in_a, '2001:db8:100::1', 'hn-b', 28), 'rcode=0 ' + b6[0]) == 'rcode=0 ' + b6[0]
    assert answer(in_a, '2001:db8:100::1', 'api.web', 1) == 'rcode=0 ' + b4
    assert answer(in_a, '198.51.100.1', 'hn-b', 28) == 'rcode=0 ' + b6[0]
    # ... and a name of the other network is not there, whichever family asks (NXDOMAIN).
    assert answer(in_a, '2001:db8:100::1', 'hn-c', 28) == 'rcode=3'
    assert answer(['ip', 'netns', 'exec', 'hn-c'], '2001:db8:101::1', 'hn-c', 28) == 'rcode=0 ' + c6[0]
    listening = subprocess.run(['ss', '-Hlnu', 'sport', '=', ':53'], capture_output=True, text=True,
                               check=True).stdout
    assert '[2001:db8:100::1]:53' in listening and '[2001:db8:101::1]:53' in listening


@pytest.fixture
def adoptable(tmp_path):
    """A process in a network namespace of its own (unshare --net), like a
    container, with a mount namespace of its own in which its resolv.conf
    names the web network's resolver (its gateway)."""
    resolv = tmp_path / 'resolv.conf'
    resolv.write_text('nameserver 198.51.100.1\nsearch web\n')
    proc = subprocess.Popen(['unshare', '--net', '--mount', 'sh', '-c',
                             'mount --bind %s /etc/resolv.conf && exec sleep 120' % resolv])
    try:
        for _attempt in range(50):  # bounded wait for unshare to exec sleep
            with open('/proc/%d/comm' % proc.pid) as fh:
                if fh.read().strip() == 'sleep':
                    break
            time.sleep(0.05)
        yield proc.pid
    finally:
        proc.kill()
        proc.wait(timeout=10)


def test_an_adopted_namespace_resolves_through_the_networks_resolver(tmp_path, dirs, upstream, adoptable):
    """A process the collection did not start (netns pid: adoption, a veth
    into the network's bridge) resolves the network's names through its
    resolver: with its own resolv.conf, and by asking the resolver directly."""
    from helpers import run_module
    run(tmp_path, dict(dirs, bridge_network_sysctl_file=str(tmp_path / 'sysctl.conf'),
                       bridge_network_networks=networks(upstream)))
    bridge = [link['ifname'] for link in ip_json('addr', 'show')
              if any(a.get('local') == '198.51.100.1' for a in link['addr_info'])][0]
    pid = adoptable
    run_module('netns', config=[{'name': 'hn-app', 'pid': pid}])
    run_module('veth', config=[{'name': 'hn-app-h', 'bridge': bridge,
                                'peer': {'name': 'eth0', 'netns': 'hn-app', 'addresses': ['198.51.100.100/25'],
                                         'gateway': ['198.51.100.1']}}])
    # The process's own namespaces: the adopted network namespace, its own /etc/resolv.conf.
    inside = ['nsenter', '--target', str(pid), '--net', '--mount']
    assert sh('ip', 'netns', 'identify', str(pid)).stdout.split() == ['hn-app']
    assert subprocess.run(inside + ['cat', '/etc/resolv.conf'], capture_output=True, text=True,
                          check=True).stdout.splitlines()[0] == 'nameserver 198.51.100.1'

    def resolve(name):
        proc = subprocess.run(inside + ['getent', 'hosts', name], capture_output=True, text=True, timeout=20,
                              check=False)
        return sorted(set(line.split()[0] for line in proc.stdout.splitlines() if line.strip()))

    a, b = address('hn-a'), address('hn-b')
    assert until(lambda: resolve('hn-b'), [b]) == [b]
    assert resolve('alpha') == [a] and resolve('hn-a.web') == [a]
    assert resolve(EXTERNAL[0]) == [EXTERNAL[1]]
    assert resolve('hn-c') == []
    # Without any resolv.conf: a query tool given the resolver's address.
    net_only = ['nsenter', '--target', str(pid), '--net']
    assert answer(net_only, '198.51.100.1', 'hn-b.web', 1) == 'rcode=0 ' + b
    # Another network's name: no address (REFUSED here: web's resolver does
    # not hold the domain "other" and forwards it to the upstream, which has none).
    assert answer(net_only, '198.51.100.1', 'hn-c.other', 1) in ('rcode=3', 'rcode=5')
    # The name of the adopted process itself is not the network's business: not listed, not known.
    assert resolve('hn-app') == []
