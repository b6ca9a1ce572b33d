# -*- coding: utf-8 -*-
"""hostnet.provision.reachability: probes that can say yes and no."""

from __future__ import annotations

import subprocess

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
