# -*- coding: utf-8 -*-
# Copyright: contributors to hostnet.provision
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""_rtnl/_netlink: the engine's own rtnetlink requests are byte for byte
what pyroute2 sends for the same call (cases/rtnl_wire.yml), so the kernel
does exactly what it did when pyroute2 sent them. No kernel involved: the
socket is a stand-in that records what is sent and acknowledges it."""

from __future__ import annotations

import struct

import pytest

from ansible_collections.hostnet.provision.plugins.module_utils import _netlink, _rtnl

HEADER = struct.Struct('=IHHII')
NLMSG_ERROR = 2


class RecordingSocket:
    """Stands in for the NETLINK_ROUTE socket: records, then acknowledges."""

    def __init__(self):
        self.sent = []

    def send(self, data):
        self.sent.append(bytes(data))
        return len(data)

    def recvmsg(self, _size):
        _length, _type, _flags, seq, _pid = HEADER.unpack_from(self.sent[-1])
        ack = HEADER.pack(HEADER.size + 4 + HEADER.size, NLMSG_ERROR, 0, seq, 0) + struct.pack('=i', 0) \
            + self.sent[-1][:HEADER.size]
        return ack, [], 0, None

    def close(self):
        pass


@pytest.fixture
def recorded(monkeypatch):
    """A Kernel whose rtnetlink socket records every request."""
    sock = RecordingSocket()
    real = _rtnl.RtSocket

    def factory():
        rt = real.__new__(real)
        rt.sock = sock
        rt.seq = 0
        return rt

    monkeypatch.setattr(_rtnl, 'RtSocket', factory)
    kernel = _netlink.Kernel()
    yield kernel, sock
    kernel.close()


@pytest.mark.cases('rtnl_wire', 'requests')
def test_request_bytes_match_pyroute2(case, recorded):
    kernel, sock = recorded
    getattr(kernel, case['method'])(None, 'unit test', *case['args'], **case.get('kwargs', {}))
    assert len(sock.sent) == 1
    length, msg_type, flags, _seq, pid = HEADER.unpack_from(sock.sent[0])
    assert length == len(sock.sent[0])
    assert (msg_type, flags, pid) == (case['type'], case['flags'], 0)
    assert sock.sent[0][HEADER.size:].hex() == case['body'].replace(' ', '')


def test_kernel_error_is_translated(recorded, monkeypatch):
    """A NLMSG_ERROR reply leaves as our typed error, errno by name."""
    kernel, sock = recorded

    def refuse(_size):
        _length, _type, _flags, seq, _pid = HEADER.unpack_from(sock.sent[-1])
        return HEADER.pack(36, NLMSG_ERROR, 0, seq, 0) + struct.pack('=i', -17) + sock.sent[-1][:16], [], 0, None

    monkeypatch.setattr(sock, 'recvmsg', refuse)
    with pytest.raises(_netlink.HostnetError) as info:
        kernel.addr_add(None, 'unit test', 3, '198.51.100.5/24')
    assert info.value.errno_name == 'EEXIST'
    assert (info.value.field, info.value.value) == ('addresses', '198.51.100.5/24')
    assert 'add address 198.51.100.5/24 failed' in str(info.value)
