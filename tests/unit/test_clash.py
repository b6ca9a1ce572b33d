# -*- coding: utf-8 -*-
"""The clash check's pure parts: the controller's address and the wire
format of policy routing rules (the rest runs against a real kernel in
tests/integration/test_clash.py)."""

from __future__ import annotations

import ipaddress
import socket
import struct

import pytest

from ansible_collections.hostnet.provision.plugins.module_utils import _clash, _rtnl
from ansible_collections.hostnet.provision.plugins.module_utils._errors import ValidationError


@pytest.mark.parametrize('value, expected', [
    ('198.51.100.7 50000 198.51.100.1 22', '198.51.100.7'),
    ('2001:db8::7 50000 2001:db8::1 22', '2001:db8::7'),
    ('::ffff:198.51.100.7 50000 ::ffff:198.51.100.1 22', '198.51.100.7'),
    ('fe80::7%eth0 50000 fe80::1%eth0 22', 'fe80::7'),
    ('', None), ('garbage', None), (None, None),
])
def test_management_address(value, expected):
    environ = {} if value is None else {'SSH_CONNECTION': value}
    got = _clash.management_address(environ)
    assert got == (None if expected is None else ipaddress.ip_address(expected))


def test_override_is_a_private_field_only_when_true():
    assert _clash.override({}, 'bridge x') == {}
    assert _clash.override({'allow_route_overlap': False}, 'bridge x') == {}
    assert _clash.override({'allow_route_overlap': True}, 'bridge x') == {'_allow_route_overlap': True}
    with pytest.raises(ValidationError):
        _clash.override({'allow_route_overlap': 'yes'}, 'bridge x')


def _attr(kind, payload):
    size = 4 + len(payload)
    return struct.pack('=HH', size, kind) + payload + b'\0' * (-size % 4)


def test_parse_rule():
    header = struct.pack('=BBBBBBBBI', socket.AF_INET, 0, 24, 0, 100, 0, 0, 1, 0)
    msg = header + _attr(2, socket.inet_aton('198.18.40.0')) + _attr(6, struct.pack('=I', 32765)) + \
        _attr(15, struct.pack('=I', 100)) + _attr(3, b'nic0\0')
    assert _rtnl.parse_rule(msg) == {'family': socket.AF_INET, 'dst': None, 'dst_len': 0, 'src': '198.18.40.0',
                                     'src_len': 24, 'iif': 'nic0', 'oif': None, 'priority': 32765, 'table': 100,
                                     'action': 1}
    assert len(_rtnl.rule_dump_request(socket.AF_INET6)) == 12
