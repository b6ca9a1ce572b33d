# -*- coding: utf-8 -*-
"""The collection's alias grammar: one parser decides what is ours."""

from __future__ import annotations

import pytest

from ansible_collections.hostnet.provision.plugins.module_utils._netlink import is_managed, make_alias, parse_alias


@pytest.mark.parametrize('alias, expected', [
    ('hostnet.provision', ('', {})),
    ('hostnet.provision veth peer=eth0@web', ('veth', {'peer': 'eth0@web'})),
    ('hostnet.provision veth peer=eth0@.', ('veth', {'peer': 'eth0@.'})),
    ('hostnet.provision veth peer=eth0@my ns', ('veth', {'peer': 'eth0@my ns'})),
    ('hostnet.provision veth-peer', ('veth-peer', {})),
    ('hostnet.provision macvlan parent=nic0', ('macvlan', {'parent': 'nic0'})),
    ('hostnet.provision macvlan parent=nic0 vlan=100', ('macvlan', {'parent': 'nic0', 'vlan': '100'})),
    ('hostnet.provision macvlan-parent', ('macvlan-parent', {})),
])
def test_our_aliases_parse(alias, expected):
    assert parse_alias(alias) == expected
    assert is_managed({'alias': alias})


@pytest.mark.parametrize('alias', [
    None, '', 'docker0', 'hostnet.provisionXYZ', 'hostnet.provision-fake', 'hostnet.provision ',
    'hostnet.provision fake', 'hostnet.provision veth', 'hostnet.provision veth peer=eth0',
    'hostnet.provision veth peer', 'hostnet.provision veth-peer x', 'hostnet.provision macvlan',
    'hostnet.provision macvlan parent=', 'hostnet.provision macvlan parent=nic0 vlan=x',
    'hostnet.provision macvlan parent=nic0 owner=me', 'hostnet.provision macvlan-parent parent=nic0',
    'xhostnet.provision', 'hostnet.provision\tveth-peer', 'HOSTNET.PROVISION',
])
def test_lookalikes_are_not_ours(alias):
    assert parse_alias(alias) is None
    assert not is_managed({'alias': alias})


def test_make_alias_round_trips():
    for role, fields in (('', {}), ('veth', {'peer': 'eth0@.'}), ('veth-peer', {}),
                         ('macvlan', {'parent': 'nic0', 'vlan': '7'}), ('macvlan', {'parent': 'nic0'}),
                         ('macvlan-parent', {})):
        assert parse_alias(make_alias(role, **fields)) == (role, fields)
