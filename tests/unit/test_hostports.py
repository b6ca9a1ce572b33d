# -*- coding: utf-8 -*-
# Copyright: contributors to hostnet.provision
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Other tables' DNAT and forward policies, and which sockets compete with a
mapping, read from libnftables JSON and /proc lines as the kernel lists them
(the JSON below is what ``nft -j list ruleset`` printed for the rules in
the comments, nftables 1.0.6)."""

from __future__ import annotations

import ipaddress

import pytest

from ansible_collections.hostnet.provision.plugins.module_utils import _hostports
from ansible_collections.hostnet.provision.plugins.module_utils import _probe
from ansible_collections.hostnet.provision.plugins.module_utils._errors import ValidationError


def rule(family, table, chain, *expr):
    return {'rule': {'family': family, 'table': table, 'chain': chain, 'handle': 4, 'expr': list(expr)}}


def dport(protocol, right):
    return {'match': {'op': '==', 'left': {'payload': {'protocol': protocol, 'field': 'dport'}}, 'right': right}}


DNAT = {'dnat': {'addr': '203.0.113.99', 'port': 80}}

RULESET = [
    # ip nat DOCKER: iifname != "docker0" tcp dport { 8080, 9000-9010 } dnat to 203.0.113.99:80
    rule('ip', 'nat', 'DOCKER',
         {'match': {'op': '!=', 'left': {'meta': {'key': 'iifname'}}, 'right': 'docker0'}},
         dport('tcp', {'set': [8080, {'range': [9000, 9010]}]}), DNAT),
    # inet fw pre: meta l4proto udp th dport 5353 redirect to :53
    rule('inet', 'fw', 'pre', {'match': {'op': '==', 'left': {'meta': {'key': 'l4proto'}}, 'right': 'udp'}},
         dport('th', 5353), {'redirect': {'port': 53}}),
    # A filter rule on a port, no translation: not a claim.
    rule('inet', 'fw', 'input', dport('tcp', 22), {'accept': None}),
    # Our own table is never "another tool".
    rule('inet', 'hostnet', 'publish', dport('tcp', 7000), DNAT),
]


@pytest.mark.parametrize('protocol, ports, found', [
    ('tcp', [8080], [(8080, 'ip nat DOCKER')]),
    ('tcp', [9005, 9006, 9011], [(9005, 'ip nat DOCKER'), (9006, 'ip nat DOCKER')]),
    ('udp', [8080], []),
    ('udp', [5353], [(5353, 'inet fw pre')]),
    ('tcp', [5353], []),
    ('tcp', [22], []),
    ('tcp', [7000], []),
])
def test_foreign_dnat_claims(protocol, ports, found):
    assert _hostports.foreign_dnat(RULESET, protocol, ports) == found


def daddr(protocol, right):
    return {'match': {'op': '==', 'left': {'payload': {'protocol': protocol, 'field': 'daddr'}}, 'right': right}}


ADDRESSED = [
    # ip nat A: ip daddr 198.51.100.7 tcp dport 8080 dnat to 203.0.113.99:80
    rule('ip', 'nat', 'A', daddr('ip', '198.51.100.7'), dport('tcp', 8080), DNAT),
    # ip nat B: ip daddr { 198.18.0.0/28, 198.18.0.100-198.18.0.120 } tcp dport 8081 dnat ...
    rule('ip', 'nat', 'B',
         daddr('ip', {'set': [{'prefix': {'addr': '198.18.0.0', 'len': 28}},
                              {'range': ['198.18.0.100', '198.18.0.120']}]}),
         dport('tcp', 8081), DNAT),
    # ip nat C: ip daddr @docker_addrs tcp dport 8082 dnat ...  (a named set: not read, any address)
    rule('ip', 'nat', 'C', daddr('ip', '@docker_addrs'), dport('tcp', 8082), DNAT),
    # inet nat D: ip6 daddr 2001:db8:ff::1 tcp dport 8083 dnat ...
    rule('inet', 'nat', 'D', daddr('ip6', '2001:db8:ff::1'), dport('tcp', 8083), DNAT),
    # ip nat E: tcp dport 8084 dnat ...  (any address)
    rule('ip', 'nat', 'E', dport('tcp', 8084), DNAT),
]


@pytest.mark.parametrize('port, version, host_ip, claimed', [
    (8080, 4, '198.18.0.1', False),      # another address than the rule's
    (8080, 4, '198.51.100.7', True),     # the rule's address
    (8080, 4, None, True),               # every address includes the rule's
    (8080, 4, '0.0.0.0', True),
    (8080, 6, None, False),              # an ip table takes no IPv6
    (8081, 4, '198.18.0.5', True),       # in the prefix
    (8081, 4, '198.18.0.110', True),     # in the range
    (8081, 4, '198.18.0.50', False),
    (8082, 4, '198.18.0.50', True),      # unreadable match: any address
    (8083, 6, '2001:db8:ff::1', True),
    (8083, 6, '2001:db8:ff::2', False),
    (8083, 4, None, False),              # limited to an IPv6 address
    (8084, 4, '198.18.0.50', True),
    (8084, None, None, True),            # no family given: as before, any
])
def test_foreign_dnat_matches_the_destination_address(port, version, host_ip, claimed):
    found = _hostports.foreign_dnat(ADDRESSED, 'tcp', [port], version, host_ip)
    assert bool(found) is claimed, found


def chain(family, table, name, hook, policy):
    return {'chain': {'family': family, 'table': table, 'name': name, 'handle': 1, 'type': 'filter',
                      'hook': hook, 'prio': 0, 'policy': policy}}


def test_forward_drop_policies_of_other_tables():
    objs = [chain('ip', 'filter', 'FORWARD', 'forward', 'drop'),
            chain('ip6', 'filter', 'FORWARD', 'forward', 'drop'),
            chain('inet', 'fw', 'fwd', 'forward', 'drop'),
            chain('inet', 'fw', 'in', 'input', 'drop'),
            chain('ip', 'open', 'FORWARD', 'forward', 'accept'),
            chain('inet', 'hostnet', 'filter_forward', 'forward', 'drop'),
            # inet fw fwd: ct status dnat accept
            rule('inet', 'fw', 'fwd', {'match': {'op': 'in', 'left': {'ct': {'key': 'status'}}, 'right': 'dnat'}},
                 {'accept': None})]
    assert _hostports.foreign_forward_drops(objs, 4) == ['ip filter FORWARD']
    assert _hostports.foreign_forward_drops(objs, 6) == ['ip6 filter FORWARD']


@pytest.mark.parametrize('address, version, host_ip, competes', [
    ('0.0.0.0', 4, None, True),
    ('0.0.0.0', 4, '198.18.0.1', True),
    ('0.0.0.0', 6, None, False),
    ('::', 4, None, True),            # a dual-stack socket takes IPv4 too
    ('::', 6, '2001:db8:ff::1', True),
    ('127.0.0.1', 4, None, True),     # a wildcard mapping takes 127.0.0.1 (DNAT in output)
    ('127.0.0.1', 4, '198.18.0.1', False),
    ('198.18.0.1', 4, '198.18.0.1', True),
    ('::ffff:198.18.0.1', 4, '198.18.0.1', True),
    ('2001:db8:ff::1', 4, None, False),
])
def test_which_sockets_compete_with_a_mapping(address, version, host_ip, competes):
    holder = _hostports.Holder('tcp', ipaddress.ip_address(address), 8080, 1)
    assert _hostports.conflicts(holder, version, host_ip) is competes


def test_proc_net_addresses_decode():
    assert str(_hostports._decode_address('0100007F')) == '127.0.0.1'
    assert str(_hostports._decode_address('B80D0120000000000000000001000000')) == '2001:db8::1'


def test_holder_names_process_and_pid():
    holder = _hostports.Holder('tcp', ipaddress.ip_address('0.0.0.0'), 8080, 77)
    holder.processes = [('nginx', 123)]
    assert holder.describe() == 'host port 8080/tcp is held by nginx (pid 123), listening on 0.0.0.0'


@pytest.mark.parametrize('checks, timeout, field', [
    ([{'to': '198.51.100.10'}], 0, 'timeout'),
    ([{'to': '198.51.100.10'}], -0.5, 'timeout'),
    ([{'to': '198.51.100.10'}], float('nan'), 'timeout'),
    ([{'to': '198.51.100.10'}], 61, 'timeout'),
    ([{'to': '198.51.100.10'}], True, 'timeout'),
    ([], 1, 'checks'),
    ([{'to': '198.51.100.10', 'protocol': 'tcp'}], 1, 'port'),
    ([{'to': '198.51.100.10', 'port': 80}], 1, 'port'),
    ([{'to': '198.51.100.10', 'expect': 'yes'}], 1, 'expect'),
    ([{'to': '198.51.100.10'}, {'to': 'nowhere'}], 1, 'to'),
])
def test_probe_input_refused_before_any_probe(checks, timeout, field):
    with pytest.raises(ValidationError) as err:
        _probe.validate(checks, timeout)
    assert err.value.field == field


@pytest.mark.parametrize('result, expect, unexpected', [
    ('reachable', True, False), ('reachable', False, True),
    ('blocked', False, False), ('blocked', True, True),
    ('unknown', True, True), ('unknown', False, True), ('unknown', None, False),
])
def test_unknown_meets_no_expectation(result, expect, unexpected):
    check = {'to': '198.51.100.10', 'result': result, 'expect': expect}
    assert bool(_probe.unexpected([check])) is unexpected


# /proc/net/sctp/eps as net/sctp/proc.c prints it (pointers hashed, IPv6 in
# full form, a trailing space after each address).
SCTP_EPS = (' ENDPT     SOCK   STY SST HBKT LPORT   UID INODE LADDRS\n'
            '00000000b2a8d3b3 000000003e1c9a0f 2   10  29   5000      0 123456 0.0.0.0 \n'
            '000000005f3c2e11 00000000a4d1c7e2 1   10  30   5001      0 123457 198.18.0.1 '
            '2001:0db8:00ff:0000:0000:0000:0000:0001 \n'
            '00000000c0ffee00 00000000deadbe00 2   10  31   5002      0 123458 0000:0000:0000:0000:0000:0000:0000:0000 \n')


def test_sctp_endpoints_are_read_with_every_local_address():
    holders = _hostports._sctp_holders(SCTP_EPS, None)
    assert [(h.protocol, str(h.address), h.port, h.inode) for h in holders] == [
        ('sctp', '0.0.0.0', 5000, 123456),
        ('sctp', '198.18.0.1', 5001, 123457),
        ('sctp', '2001:db8:ff::1', 5001, 123457),
        ('sctp', '::', 5002, 123458)]
    assert [h.port for h in _hostports._sctp_holders(SCTP_EPS, {5001})] == [5001, 5001]
    by_port = dict((h.port, h) for h in holders)
    # A wildcard endpoint takes every mapping of its family; :: takes IPv4 too.
    assert _hostports.conflicts(by_port[5000], 4, '198.18.0.1')
    assert _hostports.conflicts(by_port[5002], 4, None)
    assert not _hostports.conflicts(holders[1], 4, '198.18.0.2')
    assert 'host port 5000/sctp is held by' in by_port[5000].describe()
