# -*- coding: utf-8 -*-
"""hostnet.provision.reachability: probes that can say yes and no."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import tempfile
import time

import pytest

from helpers import run_module


def build():
    run_module('netns', config=[{'name': 'rp-a'}, {'name': 'rp-b'}])
    run_module('bridge', config=[{'name': 'rp-br0', 'addresses': ['198.51.100.1/24', '2001:db8:100::1/64']}])
    run_module('veth', config=[
        {'name': 'rp-%s-h' % ns, 'bridge': 'rp-br0',
         'peer': {'name': 'eth0', 'netns': 'rp-%s' % ns,
                  'addresses': ['198.51.100.%d/24' % last, '2001:db8:100::%d/64' % last]}}
        for ns, last in (('a', 10), ('b', 11))
    ])


def listener(netns, port):
    """A TCP listener in NETNS on PORT, once it listens (bounded wait)."""
    server = subprocess.Popen(['ip', 'netns', 'exec', netns, 'socat', 'TCP-LISTEN:%d,fork,reuseaddr' % port,
                               'SYSTEM:true'])
    for _attempt in range(50):
        if subprocess.run(['ip', 'netns', 'exec', netns, 'ss', '-Hltn', 'sport = :%d' % port], capture_output=True,
                          text=True, check=False).stdout.strip():
            break
        subprocess.run(['sleep', '0.05'], check=True)
    return server


def test_icmp_and_tcp_both_ways():
    build()
    server = listener('rp-b', 8080)
    try:
        result = run_module('reachability', timeout=0.5, checks=[
            {'from': 'rp-a', 'to': '198.51.100.11'},
            {'from': 'rp-a', 'to': '2001:db8:100::11'},
            {'from': 'rp-a', 'to': '198.51.100.99'},              # nobody there
            {'from': 'rp-a', 'to': '198.51.100.11', 'protocol': 'tcp', 'port': 8080},
            {'from': 'rp-a', 'to': '198.51.100.11', 'protocol': 'tcp', 'port': 8081},
            {'from': '', 'to': '198.51.100.10'},                   # from the host over the bridge
        ])
        assert [r['reachable'] for r in result['results']] == [True, True, False, True, False, True]
        assert result['changed'] is False
        failed = run_module('reachability', fail=True, timeout=0.5,
                            checks=[{'from': 'rp-a', 'to': '198.51.100.99', 'expect': True}])
        assert '1 of 1 checks did not match expect' in failed['msg']
    finally:
        server.kill()
        server.wait(timeout=10)


def test_results_say_why_and_blocked_means_dropped_or_refused():
    """TCP: a reset is blocked with reason refused, a drop is blocked with
    reason timeout (real packets: an nft drop rule in rp-b)."""
    build()
    sh_ok = subprocess.run
    sh_ok(['ip', 'netns', 'exec', 'rp-b', 'nft', 'add table inet t; add chain inet t in '
           '{ type filter hook input priority 0; tcp dport 9999 drop; }'], check=True)
    result = run_module('reachability', timeout=0.5, checks=[
        {'from': 'rp-a', 'to': '198.51.100.11', 'protocol': 'tcp', 'port': 8081},
        {'from': 'rp-a', 'to': '198.51.100.11', 'protocol': 'tcp', 'port': 9999},
        {'from': 'rp-a', 'to': '198.51.100.11'},
    ])
    got = [(r['result'], r['reason'], r['reachable']) for r in result['results']]
    assert got == [('blocked', 'refused', False), ('blocked', 'timeout', False),
                   ('reachable', 'echo reply', True)]


def test_undecidable_probe_is_unknown_and_fails_any_expectation():
    build()
    # No namespace "rp-gone": the probe cannot run, it proves nothing.
    from ansible.module_utils.common import warnings as ansible_warnings
    ansible_warnings._global_warnings.clear()  # modules run in-process: this call's warnings only
    result = run_module('reachability', timeout=0.5, checks=[
        {'from': 'rp-gone', 'to': '198.51.100.11'},
        {'from': 'pid:999999999', 'to': '198.51.100.11', 'protocol': 'tcp', 'port': 80},
    ])
    assert [r['result'] for r in result['results']] == ['unknown', 'unknown']
    assert [r['reachable'] for r in result['results']] == [None, None]
    assert 'rp-gone' in result['results'][0]['reason']
    assert len(result['warnings']) == 2
    for expect in (True, False):
        failed = run_module('reachability', fail=True, timeout=0.5,
                            checks=[{'from': 'rp-gone', 'to': '198.51.100.11', 'expect': expect}])
        assert '1 of 1 checks did not match expect' in failed['msg'] and 'unknown' in failed['msg']
        assert failed['unexpected'][0]['result'] == 'unknown'


def test_timeout_zero_negative_or_absurd_is_refused_before_any_probe():
    build()
    for timeout in (0, -1, 0.0, 61, 1e9):
        failed = run_module('reachability', fail=True, timeout=timeout,
                            checks=[{'from': 'rp-a', 'to': '198.51.100.99', 'expect': False}])
        assert failed['field'] == 'timeout' and failed['value'] == timeout, failed
        assert 'timeout %r' % (timeout,) in failed['msg'] or 'timeout %r' % float(timeout) in failed['msg']
        assert 'results' not in failed


def test_foreign_forward_drop_policy_is_reported_and_explains_the_blocked_published_port():
    """Another table's forward chain with policy drop (Docker's, a firewall's)
    blocks a published port: the report says which chain, on every run, and
    stops saying it once that chain accepts DNATed connections."""
    from ansible.module_utils.common import warnings as ansible_warnings
    from ansible_collections.hostnet.provision.plugins.filter.report import report_lines
    from traffic import HOST_V4, Servers, build as build_host

    servers = Servers()
    try:
        build_host(endpoints=('ep-a',))
        servers.tcp('ep-a', 80, 'hello-a')
        run_module('portmap', config=[{'host_port': 8080, 'destination': '198.51.100.10', 'port': 80}])
        checks = [{'from': 'outside', 'to': HOST_V4, 'protocol': 'tcp', 'port': 8080, 'label': 'published web'},
                  {'from': 'ep-a', 'to': '2001:db8:100::1'}]
        fine = run_module('reachability', timeout=1, checks=checks)
        assert [r['result'] for r in fine['results']] == ['reachable', 'reachable']
        assert fine['firewall'] == []

        sh_ok = subprocess.run
        sh_ok(['nft', 'add table ip filter; add chain ip filter FORWARD '
               '{ type filter hook forward priority filter; policy drop; }'], check=True)
        for _run in range(2):  # every run, also when nothing changed
            ansible_warnings._global_warnings.clear()
            result = run_module('reachability', timeout=1, checks=checks)
            assert result['results'][0]['result'] == 'blocked'
            assert result['firewall'] == [{'netns': None, 'family': 'ipv4', 'chain': 'ip filter FORWARD',
                                           'policy': 'drop'}]
            texts = [w['event']['msg'] if isinstance(w, dict) else w for w in result.get('warnings') or []]
            warned = [w for w in texts if w.startswith('WARNING: ') and 'ip filter FORWARD' in w]
            assert len(warned) == 1 and '1 blocked IPv4 check' in warned[0], texts
        lines = report_lines('host', result['results'], firewall=result['firewall'])
        assert [line for line in lines if line.startswith('WARNING: firewall: chain ip filter FORWARD drops '
                                                          'forwarded IPv4 traffic by policy')], lines
        failed = run_module('reachability', fail=True, timeout=1, checks=[dict(checks[0], expect=True)])
        assert 'chain ip filter FORWARD drops forwarded IPv4 traffic by policy' in failed['msg'], failed['msg']
        assert failed['firewall'] == result['firewall']

        sh_ok(['nft', 'add rule ip filter FORWARD ct status dnat accept; '
               'add rule ip filter FORWARD ct state established,related accept'], check=True)
        ansible_warnings._global_warnings.clear()
        accepted = run_module('reachability', timeout=1, checks=checks)
        assert accepted['results'][0]['result'] == 'reachable' and accepted['firewall'] == []
        assert not [line for line in report_lines('host', accepted['results'], firewall=accepted['firewall'])
                    if 'firewall' in line]
    finally:
        servers.stop()
        subprocess.run(['nft', 'delete table ip filter'], check=False, capture_output=True)


def test_many_probes_at_once_each_gets_its_own_answer():
    """Probes run concurrently and share one raw ICMP socket per source
    namespace and family: 120 checks mixing answered and dropped echoes over
    both families, refused and accepted TCP, from two namespaces, each get
    their own result; an ICMP error from the network (an nft reject in rp-b)
    decides a probe at once (prohibited), not by its timeout."""
    build()
    subprocess.run(['ip', 'netns', 'exec', 'rp-b', 'nft', 'add table inet t; add chain inet t in '
                    '{ type filter hook input priority 0; ip saddr 198.51.100.10 icmp type echo-request '
                    'reject with icmp type admin-prohibited; }'], check=True)
    server = listener('rp-b', 8080)
    try:
        cases = [
            ({'from': 'rp-a', 'to': '198.51.100.11'}, 'blocked', 'prohibited'),      # rejected by rp-b
            ({'from': 'rp-b', 'to': '198.51.100.10'}, 'reachable', 'echo reply'),
            ({'from': 'rp-a', 'to': '2001:db8:100::11'}, 'reachable', 'echo reply'),
            ({'from': 'rp-a', 'to': '198.51.100.99'}, 'blocked', None),               # nobody there
            ({'from': 'rp-a', 'to': '198.51.100.11', 'protocol': 'tcp', 'port': 8080}, 'reachable', 'connected'),
            ({'from': 'rp-a', 'to': '198.51.100.11', 'protocol': 'tcp', 'port': 8081}, 'blocked', 'refused'),
        ]
        checks, expected = [], []
        for _round in range(20):
            for check, result, reason in cases:
                checks.append(dict(check))
                expected.append((result, reason))
        result = run_module('reachability', timeout=2, checks=checks)['results']
        # The kernel rate-limits the ICMP errors it sends (icmp_ratelimit):
        # after the first few rejects, the rest end by their timeout.
        got = [(r['result'], r['reason'] if reason is not None else None)
               for r, (_res, reason) in zip(result, expected)]
        assert got[0] == ('blocked', 'prohibited')
        assert [g if e != ('blocked', 'prohibited') or g[1] != 'timeout' else e
                for g, e in zip(got, expected)] == expected
    finally:
        server.kill()
        server.wait(timeout=10)


def test_ipv6_answers_decide_at_once_and_drops_by_the_timeout():
    """IPv6 probes as IPv4 ones: an ICMPv6 admin-prohibited reject and a TCP
    reset from rp-b end their probes as soon as they arrive (well before a
    5 s timeout); a drop ends by the timeout."""
    build()
    subprocess.run(['ip', 'netns', 'exec', 'rp-b', 'nft', 'add table inet t; add chain inet t in '
                    '{ type filter hook input priority 0; ip6 saddr 2001:db8:100::10 icmpv6 type echo-request '
                    'reject with icmpv6 type admin-prohibited; tcp dport 9999 drop; }'], check=True)
    started = time.monotonic()
    result = run_module('reachability', timeout=5, checks=[
        {'from': 'rp-a', 'to': '2001:db8:100::11'},
        {'from': 'rp-a', 'to': '2001:db8:100::11', 'protocol': 'tcp', 'port': 8081},
        {'from': 'rp-b', 'to': '2001:db8:100::10'},
    ])
    elapsed = time.monotonic() - started
    got = [(r['result'], r['reason']) for r in result['results']]
    assert got == [('blocked', 'prohibited'), ('blocked', 'refused'), ('reachable', 'echo reply')]
    assert elapsed < 3, elapsed
    started = time.monotonic()
    dropped = run_module('reachability', timeout=0.5, checks=[
        {'from': 'rp-a', 'to': '2001:db8:100::11', 'protocol': 'tcp', 'port': 9999}])
    assert [(r['result'], r['reason']) for r in dropped['results']] == [('blocked', 'timeout')]
    assert 0.45 < time.monotonic() - started < 3


def _dnat_count(netns):
    """Packets to TCP port 80 counted inside NETNS (nft counter)."""
    out = subprocess.run(['ip', 'netns', 'exec', netns, 'nft', '-j', 'list', 'table', 'inet', 'probecount'],
                         capture_output=True, text=True, check=True).stdout
    return sum(o['counter']['packets'] for o in json.loads(out)['nftables'] if 'counter' in o) + sum(
        e['counter']['packets'] for o in json.loads(out)['nftables'] if 'rule' in o
        for e in o['rule']['expr'] if 'counter' in e)


def test_published_port_through_the_host_counts_a_reset_from_the_endpoint():
    """reset_reaches: a TCP probe to the host's address and published port
    is DNATed to the endpoint, whose kernel resets it (nothing listens):
    the published path works, proven by a counter inside the endpoint. A
    forward drop policy cuts the path: the same probe is blocked (timeout)
    and its expect fails. With a listener it connects."""
    from traffic import HOST_V4, HOST_V6, Servers, build as build_host

    servers = Servers()
    try:
        build_host(endpoints=('ep-a',))
        run_module('portmap', config=[{'host_port': 8080, 'destination': '198.51.100.10', 'port': 80},
                                      {'host_port': 8080, 'destination': '2001:db8:100::10', 'port': 80}])
        subprocess.run(['ip', 'netns', 'exec', 'ep-a', 'nft', 'add table inet probecount; add chain inet probecount '
                        'in { type filter hook input priority 0; tcp dport 80 counter; }'], check=True)
        published = [{'from': 'outside', 'to': HOST_V4, 'protocol': 'tcp', 'port': 8080, 'reset_reaches': True,
                      'expect': True},
                     {'from': 'outside', 'to': HOST_V6, 'protocol': 'tcp', 'port': 8080, 'reset_reaches': True,
                      'expect': True},
                     {'from': '', 'to': HOST_V4, 'protocol': 'tcp', 'port': 8080, 'reset_reaches': True,
                      'expect': True}]
        result = run_module('reachability', timeout=1, checks=published + [
            {'from': 'outside', 'to': HOST_V4, 'protocol': 'tcp', 'port': 8080}])
        got = [(r['result'], r['reason']) for r in result['results']]
        assert got == [('reachable', 'refused (reached, nothing listens)')] * 3 + [('blocked', 'refused')]
        assert _dnat_count('ep-a') >= 4  # each probe's SYN arrived inside the endpoint

        servers.tcp('ep-a', 80, 'hello-a')
        servers.tcp('ep-a', 80, 'hello-a', family=6)
        listening = run_module('reachability', timeout=1, checks=published)
        assert [(r['result'], r['reason']) for r in listening['results']] == [('reachable', 'connected')] * 3

        subprocess.run(['nft', 'add table ip filter; add chain ip filter FORWARD '
                        '{ type filter hook forward priority filter; policy drop; }'], check=True)
        failed = run_module('reachability', fail=True, timeout=0.5, checks=published[:1])
        assert [(r['result'], r['reason']) for r in failed['results']] == [('blocked', 'timeout')]
        assert '1 of 1 checks did not match expect' in failed['msg']
    finally:
        servers.stop()
        subprocess.run(['nft', 'delete table ip filter'], check=False, capture_output=True)


def test_reset_reaches_is_for_tcp_only():
    build()
    failed = run_module('reachability', fail=True, timeout=0.5,
                        checks=[{'from': 'rp-a', 'to': '198.51.100.11', 'reset_reaches': True}])
    assert failed['field'] == 'reset_reaches' and 'results' not in failed, failed


@pytest.fixture
def etc_overlay():
    """/etc as an overlay (upper layer on a tmpfs) in the sandbox's mount
    namespace: /etc/netns/NS/resolv.conf never reaches the machine's /etc."""
    base = tempfile.mkdtemp(prefix='hn-rp-etc-')
    subprocess.run(['mount', '-t', 'tmpfs', 'hn-rp', base], check=True)
    os.makedirs(os.path.join(base, 'upper'))
    os.makedirs(os.path.join(base, 'work'))
    subprocess.run(['mount', '-t', 'overlay', 'hn-rp', '-o', 'lowerdir=/etc,upperdir=%s/upper,workdir=%s/work'
                    % (base, base), '/etc'], check=True)
    try:
        yield base
    finally:
        subprocess.run(['umount', '/etc'], check=False)
        subprocess.run(['umount', base], check=False)
        os.rmdir(base)


@pytest.fixture
def resolver(etc_overlay):
    """A real dnsmasq on the bridge's gateway (198.51.100.1): rp-a and rp-b by
    name (domain rp, IPv4 and IPv6), nothing else; rp-a's resolv.conf names
    it with search rp, rp-b's asks rp-a first (nothing listens there)."""
    build()
    hosts = os.path.join(etc_overlay, 'rp.hosts')
    with open(hosts, 'w') as fh:
        fh.write('198.51.100.10 rp-a.rp\n198.51.100.11 rp-b.rp api.rp\n2001:db8:100::11 rp-b.rp api.rp\n')
    os.chmod(hosts, 0o644)
    os.chmod(etc_overlay, 0o755)
    pidfile = os.path.join(etc_overlay, 'rp.pid')
    subprocess.run(['/usr/sbin/dnsmasq', '--conf-file=/dev/null', '--no-resolv', '--no-hosts', '--bind-interfaces',
                    '--listen-address=198.51.100.1', '--except-interface=lo', '--addn-hosts=' + hosts,
                    '--local=/rp/', '--domain-needed', '--pid-file=' + pidfile], check=True)
    for netns, text in (('rp-a', 'nameserver 198.51.100.1\nsearch rp\n'),
                        ('rp-b', 'nameserver 198.51.100.10\nnameserver 198.51.100.1\nsearch rp\n')):
        os.makedirs('/etc/netns/%s' % netns, exist_ok=True)
        with open('/etc/netns/%s/resolv.conf' % netns, 'w') as fh:
            fh.write(text)
    try:
        yield pidfile
    finally:
        try:
            with open(pidfile) as fh:
                os.kill(int(fh.read().strip()), signal.SIGTERM)
        except (OSError, ValueError):
            pass


def getent(netns, family, name):
    """What the C library resolves inside NETNS (independent of the module)."""
    out = subprocess.run(['timeout', '10', 'ip', 'netns', 'exec', netns, 'getent', 'ahosts' + family[2:], name],
                         capture_output=True, text=True, check=False).stdout
    return sorted(set(line.split()[0] for line in out.splitlines() if line.strip()))


def test_lookups_resolve_inside_the_namespace_from_a_real_resolver(resolver):
    """lookups: the namespace's own resolv.conf (search rp), A and AAAA
    over UDP from inside it, answered by a real dnsmasq; the addresses are
    what getent finds there too. A resolver that does not answer (nothing
    on rp-a) is skipped for the next one; a name nobody knows is not found;
    reach probes the resolved address."""
    lookups = [
        {'from': 'rp-a', 'name': 'rp-b', 'expect': ['198.51.100.11'], 'reach': True, 'label': 'rp-b by name'},
        {'from': 'rp-a', 'name': 'api', 'family': 'ipv6', 'expect': ['2001:db8:100::11']},
        {'from': 'rp-a', 'name': 'nobody', 'expect': []},
        {'from': 'rp-a', 'name': 'rp-b.rp.'},
        {'from': 'rp-b', 'name': 'rp-a', 'expect': ['198.51.100.10']},
    ]
    started = time.monotonic()
    result = run_module('reachability', timeout=1, lookups=lookups)
    assert time.monotonic() - started < 5
    names = result['names']
    assert [(n['result'], n['addresses'], n['ok']) for n in names] == [
        ('resolved', ['198.51.100.11'], True), ('resolved', ['2001:db8:100::11'], True),
        ('not found', [], True), ('resolved', ['198.51.100.11'], None), ('resolved', ['198.51.100.10'], True)]
    assert names[0]['resolv_conf'] == '/etc/netns/rp-a/resolv.conf' and names[0]['server'] == '198.51.100.1'
    assert names[0]['reason'] == 'answered by 198.51.100.1 for rp-b.rp'
    assert names[4]['server'] == '198.51.100.1'   # after 198.51.100.10 refused (ICMP port unreachable)
    assert getent('rp-a', 'ipv4', 'rp-b') == names[0]['addresses']
    assert getent('rp-a', 'ipv6', 'api') == names[1]['addresses']
    assert [(r['label'], r['result']) for r in result['results']] == [
        ('rp-a -> rp-b by name (198.51.100.11)', 'reachable')]

    failed = run_module('reachability', fail=True, timeout=1, lookups=[
        {'from': 'rp-a', 'name': 'rp-b', 'expect': ['198.51.100.12'], 'label': 'wrong address'}])
    assert '1 of 1 lookups did not match expect: wrong address: 198.51.100.11' in failed['msg'], failed['msg']

    with open(resolver) as fh:
        os.kill(int(fh.read().strip()), signal.SIGTERM)
    for _attempt in range(50):  # bounded: the resolver is gone within 5 s
        if not getent('rp-a', 'ipv4', 'rp-b.rp.'):
            break
        time.sleep(0.1)
    gone = run_module('reachability', fail=True, timeout=0.5, lookups=[
        {'from': 'rp-a', 'name': 'rp-b', 'expect': ['198.51.100.11']}])
    assert gone['names'][0]['result'] == 'unknown' and gone['names'][0]['ok'] is False
    # ICMP port unreachable (refused), or a timeout once the kernel rate-limits those errors.
    assert re.match(r'no answer for rp-b.rp, rp-b: 198.51.100.1: (refused|timeout)', gone['names'][0]['reason']), \
        gone['names'][0]


def test_lookups_are_validated_before_any_query():
    build()
    for lookup, field in (({'from': 'rp-a', 'name': 'a..b'}, 'name'),
                          ({'from': 'rp-a', 'name': 'x', 'family': 'ipv6', 'expect': ['198.51.100.1']}, 'expect'),
                          ({'from': 'rp-a', 'name': 'x', 'expect': ['nope']}, 'expect'),
                          ({'from': 'a/b', 'name': 'x'}, 'from')):
        failed = run_module('reachability', fail=True, timeout=0.5, lookups=[lookup])
        assert failed['field'] == field and 'names' not in failed, failed


def test_egress_reaches_beyond_the_host_only_through_its_masquerade():
    """What the report's egress probe expects, on the kernel: an outside
    address that has no route back to the endpoints' subnet answers an
    endpoint only while its bridge masquerades (the reply goes to the host's
    address); with masquerade off the same probe is blocked, over IPv4 and
    IPv6 alike."""
    from ansible_collections.hostnet.provision.plugins.filter.report import report_checks
    from traffic import BR0, OUTSIDE_V4, OUTSIDE_V6, build as build_host

    build_host(endpoints=('ep-a',))
    for flag in ('-4', '-6'):  # outside knows the uplink only, not the endpoints' subnets
        subprocess.run(['ip', '-n', 'outside', flag, 'route', 'del', 'default'], check=True)
    net = {'name': 'web', 'bridge': 'hn-br0', 'gateways': ['198.51.100.1', '2001:db8:100::1'],
           'endpoints': [{'name': 'ep-a', 'addresses': ['198.51.100.10/24', '2001:db8:100::10/64']}]}
    for masquerade in (True, False):
        run_module('bridge', config=[dict(BR0, masquerade=masquerade)])
        checks = [c for c in report_checks([dict(net, masquerade=masquerade)], egress_targets=[OUTSIDE_V4, OUTSIDE_V6])
                  if 'beyond the host' in c['label']]
        assert [(c['to'], c['expect']) for c in checks] == [(OUTSIDE_V4, masquerade), (OUTSIDE_V6, masquerade)]
        # Each run's echoes have their own identifier, so the second round
        # does not ride on the first round's NATed conntrack entries.
        result = run_module('reachability', timeout=1, checks=checks)
        assert [r['result'] for r in result['results']] == ['reachable' if masquerade else 'blocked'] * 2, result
        assert result['unexpected'] == []
