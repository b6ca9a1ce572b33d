# -*- coding: utf-8 -*-
"""DNS on the wire (_dnswire): the bytes of a query, the reading of an
answer (compression, CNAME chains, malformed and foreign messages), and
resolv.conf as the C library reads it."""

from __future__ import annotations

import struct

import pytest

from ansible_collections.hostnet.provision.plugins.module_utils import _dnswire


def test_query_bytes():
    # id 0x1234, RD, one question: web2.web A IN
    assert _dnswire.query(0x1234, 'web2.web', 'ipv4') == (
        b'\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00'
        b'\x04web2\x03web\x00\x00\x01\x00\x01')
    assert _dnswire.query(0x10001, 'a.', 'ipv6')[:2] == b'\x00\x01'          # 16-bit id
    assert _dnswire.query(1, 'a.', 'ipv6')[-4:] == b'\x00\x1c\x00\x01'        # AAAA IN


@pytest.mark.parametrize('name', ['', 'a..b', 'x' * 64 + '.example', '.'.join(['abcdefg'] * 40)])
def test_query_refuses_names_dns_cannot_carry(name):
    with pytest.raises(ValueError):
        _dnswire.query(1, name, 'ipv4')


def _answer(ident, name, qtype, records, rcode=0, flags=0x8180, question=None):
    """A response: the question (``question`` overrides it), then records
    given as (name bytes, type, rdata)."""
    msg = struct.pack('!HHHHHH', ident, flags | rcode, 1, len(records), 0, 0)
    msg += question if question is not None else _dnswire._encode_name(name) + struct.pack('!HH', qtype, 1)
    for rname, rtype, rdata in records:
        msg += rname + struct.pack('!HHIH', rtype, 1, 60, len(rdata)) + rdata
    return msg


POINTER_TO_QNAME = b'\xc0\x0c'   # the question's name starts right after the header


def test_answer_reads_compressed_records_and_follows_a_cname():
    target = _dnswire._encode_name('web2.web')
    data = _answer(7, 'www.web', 28, [
        (POINTER_TO_QNAME, 5, target),                               # www.web CNAME web2.web
        (b'\x04web2\x03web\x00', 28, bytes.fromhex('20010db8010000000000000000000003')),
        (b'\xc0\x0c', 28, bytes.fromhex('20010db8010000000000000000000004')),
    ])
    assert _dnswire.answer(data, 7, 'www.web', 'ipv6') == (0, ['2001:db8:100::3', '2001:db8:100::4'])
    assert _dnswire.answer(data, 7, 'WWW.web.', 'ipv6')[1][0] == '2001:db8:100::3'   # case, final dot


def test_answer_rcodes_and_empty_answers():
    assert _dnswire.answer(_answer(9, 'gone', 1, [], rcode=3), 9, 'gone', 'ipv4') == (_dnswire.NXDOMAIN, [])
    assert _dnswire.answer(_answer(9, 'v6only', 1, []), 9, 'v6only', 'ipv4') == (0, [])
    assert _dnswire.answer(_answer(9, 'x', 1, [], rcode=2), 9, 'x', 'ipv4')[0] == 2


@pytest.mark.parametrize('data, why', [
    (_answer(8, 'a', 1, []), 'id'),                                               # another query's answer
    (_answer(7, 'a', 1, [], flags=0x0100), 'query'),                             # not a response
    (_answer(7, 'b', 1, []), 'not a type'),                                       # another name
    (_answer(7, 'a', 28, []), 'type 28'),                                         # another type
    (_answer(7, 'a', 1, [(b'\xc0\x0c', 1, b'\x01\x02\x03')]), '3 bytes'),        # A of 3 bytes
    (_answer(7, 'a', 1, [(b'\xc0\x0c', 1, b'\x01\x02\x03\x04')])[:-2], 'past the end'),
    (_answer(7, 'a', 1, [(b'\xc0\x13', 1, b'\x01\x02\x03\x04')]), 'loop'),       # points at itself (offset 19)
    (b'\x00\x07\x81', 'header'),
])
def test_answer_refuses_what_is_not_the_answer(data, why):
    with pytest.raises(_dnswire.WireError) as err:
        _dnswire.answer(data, 7, 'a', 'ipv4')
    assert why in str(err.value)


def test_resolv_conf_as_the_c_library_reads_it():
    conf = _dnswire.parse_resolv_conf('# comment\nnameserver 198.51.100.1\nnameserver 2001:db8:100::1 # v6\n'
                                      'nameserver not-an-address\nnameserver 198.51.100.2\nnameserver 198.51.100.3\n'
                                      'domain old\nsearch web example.\noptions edns0 ndots:2\n')
    assert conf == {'nameservers': ['198.51.100.1', '2001:db8:100::1', '198.51.100.2'],
                    'search': ['web', 'example'], 'ndots': 2}
    assert _dnswire.parse_resolv_conf('') == {'nameservers': [], 'search': [], 'ndots': 1}


def test_candidates_follow_ndots_and_search():
    assert _dnswire.candidates('web2', ['web', 'example'], 1) == ['web2.web', 'web2.example', 'web2']
    assert _dnswire.candidates('a.b', ['web'], 1) == ['a.b', 'a.b.web']
    assert _dnswire.candidates('a.b', ['web'], 2) == ['a.b.web', 'a.b']
    assert _dnswire.candidates('a.b.', ['web'], 1) == ['a.b']
    assert _dnswire.candidates('web2', [], 1) == ['web2']


def test_resolv_conf_path_is_the_one_ip_netns_exec_mounts(tmp_path, monkeypatch):
    assert _dnswire.resolv_conf_path(None) == '/etc/resolv.conf'
    assert _dnswire.resolv_conf_path('pid:1') == '/etc/resolv.conf'
    assert _dnswire.resolv_conf_path('hn-no-such-netns-here') == '/etc/resolv.conf'
    real = _dnswire.os.path.join
    monkeypatch.setattr(_dnswire.os.path, 'join', lambda *parts: real(str(tmp_path), *parts[1:])
                        if parts[0] == '/etc/netns' else real(*parts))
    (tmp_path / 'web1').mkdir()
    (tmp_path / 'web1' / 'resolv.conf').write_text('nameserver 198.51.100.1\nsearch web\n')
    conf = _dnswire.resolv_conf('web1')
    assert conf['path'] == str(tmp_path / 'web1' / 'resolv.conf')
    assert conf['nameservers'] == ['198.51.100.1'] and conf['search'] == ['web']
