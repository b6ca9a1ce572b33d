# -*- coding: utf-8 -*-
# Copyright: contributors to hostnet.provision
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The nftables model without a kernel: the skeleton's shape, element
encoding and decoding (as libnftables lists them), which elements a bridge
owns, and how map elements read back as portmap resources."""

from __future__ import annotations

import json

import pytest

from ansible_collections.hostnet.provision.plugins.module_utils import _nft
from ansible_collections.hostnet.provision.plugins.module_utils._engine import Context
from ansible_collections.hostnet.provision.plugins.module_utils._errors import ValidationError
from ansible_collections.hostnet.provision.plugins.module_utils._kind_bridge import bridge_elements, owned_elements
from ansible_collections.hostnet.provision.plugins.module_utils._kind_portmap import (
    PortmapKind,
    _parse,
    describe,
    mapping_elements,
)
from ansible_collections.hostnet.provision.plugins.module_utils._nft import BRIDGE, INET, Element, group_elements


class FakeTables:
    """Elements in memory, with the read interface of _nft.Tables."""

    def __init__(self, elements=()):
        self._elements = dict((e.ident(), e) for e in elements)
        self.generation = 1

    def elements(self, family=None, set_name=None):
        return [e for e in self._elements.values()
                if (family is None or e.family == family) and (set_name is None or e.set == set_name)]

    def get(self, family, set_name, key):
        return self._elements.get((family, set_name, key))

    def grouped(self, key_of):
        return group_elements(self.elements(), key_of)

    def intact(self):
        return True


def test_skeleton_is_json_and_only_names_our_tables():
    cmds = _nft._skeleton(bridge_meta=True)
    json.dumps(cmds)
    for cmd in cmds:
        body = next(iter(next(iter(cmd.values())).values()))
        assert body.get('table', body.get('name')) == 'hostnet'
    chains = [c['add']['chain'] for c in cmds if 'add' in c and 'chain' in c['add']]
    hooks = dict((c['name'], (c.get('hook'), c.get('prio'))) for c in chains if c['family'] == INET)
    assert hooks['raw_prerouting'] == ('prerouting', -300)
    assert hooks['nat_prerouting'] == ('prerouting', -100) and hooks['nat_output'] == ('output', -100)
    assert hooks['nat_postrouting'] == ('postrouting', 100) and hooks['filter_forward'] == ('forward', 0)
    # The ICC rule matches the bridge name, or the port on kernels without nft_meta_bridge.
    assert '"ibrname"' in json.dumps(_nft._rules(True)[(BRIDGE, 'filter_forward')])
    assert '"@no_icc_ports"' in json.dumps(_nft._rules(False)[(BRIDGE, 'filter_forward')])


@pytest.mark.parametrize('set_name, listed, key, value, comment', [
    ('bridges', 'hn-br0', 'hn-br0', None, None),
    ('bridge_nets4', {'concat': ['hn-br0', {'prefix': {'addr': '198.51.100.0', 'len': 24}}]},
     ('hn-br0', '198.51.100.0/24'), None, None),
    # A /32 in an interval set is listed as a plain address.
    ('bridge_nets4', {'concat': ['hn-br0', '203.0.113.7']}, ('hn-br0', '203.0.113.7/32'), None, None),
    ('masq_nets6', {'elem': {'val': {'prefix': {'addr': '2001:db8:100::', 'len': 64}}, 'comment': 'hn-br0'}},
     '2001:db8:100::/64', None, 'hn-br0'),
    ('dnat4_any_addr', [{'elem': {'val': {'concat': ['tcp', 8080]}, 'comment': 'auto'}}, '198.51.100.10'],
     ('tcp', 8080), '198.51.100.10', 'auto'),
    ('dnat6_port', [{'concat': ['2001:db8:ff::1', 'udp', 53]}, 5353], ('2001:db8:ff::1', 'udp', 53), 5353, None),
])
def test_elements_decode_and_encode_round_trip(set_name, listed, key, value, comment):
    family = BRIDGE if set_name.startswith('no_icc') else INET
    element, _raw = _nft._decode(family, set_name, listed)
    assert (element.key, element.value, element.comment) == (key, value, comment)
    again, _raw = _nft._decode(family, set_name, json.loads(json.dumps(_nft._encode(element))))
    assert again == element


def test_bridge_elements_and_ownership():
    config = {'addresses': ['198.51.100.1/24', '198.51.100.2/25', '2001:db8:100::1/64'], 'masquerade': True,
              'icc': False, 'isolated': True, 'host_access': False}
    mine = bridge_elements('hn-br0', config, ports=['veth-a'], bridge_meta=False)
    # Overlapping addresses give one subnet (interval sets refuse overlaps).
    assert Element(INET, 'bridge_nets4', ('hn-br0', '198.51.100.0/24')) in mine
    assert len([e for e in mine if e.set == 'bridge_nets4']) == 1
    assert Element(INET, 'masq_nets4', '198.51.100.0/24', comment='hn-br0') in mine
    assert Element(BRIDGE, 'no_icc_ports', 'veth-a', comment='hn-br0') in mine
    assert Element(INET, 'isolated_self', ('hn-br0', 'hn-br0')) in mine
    other = bridge_elements('hn-br1', {'addresses': ['203.0.113.1/24'], 'masquerade': True, 'isolated': True})
    tables = FakeTables(mine | other)
    assert owned_elements(tables, 'hn-br0') == mine
    assert owned_elements(tables, 'hn-br1') == other
    # A bridge without addresses and with the defaults owns nothing.
    assert bridge_elements('hn-l2', {'addresses': [], 'masquerade': False, 'icc': True, 'isolated': False,
                                     'host_access': True}) == set()


def _mapping(**fields):
    base = {'netns': None, 'protocol': 'tcp', 'host_ip': None, 'host_port': 8080, 'destination': '198.51.100.10',
            'port': 80, 'assigned_port': 8080}
    base.update(fields)
    return base


def test_map_elements_read_back_as_mappings():
    web = _mapping()
    rng = _mapping(protocol='udp', host_port='5000-5002', destination='198.51.100.11', port=6000,
                   assigned_port=5000)
    auto = _mapping(host_port='auto', assigned_port=49152, destination='2001:db8:100::10', port=443)
    local = _mapping(host_ip='127.0.0.1', host_port=8443, assigned_port=8443)
    tables = FakeTables(set().union(*(mapping_elements(m) for m in (web, rng, auto, local))))
    parsed = _parse(None, tables)
    assert parsed[(None, 'tcp', '0.0.0.0', '8080')]['destination'] == '198.51.100.10'
    assert parsed[(None, 'udp', '0.0.0.0', '5000-5002')]['port'] == 6000
    assert parsed[(None, 'tcp', '::', 'auto:2001:db8:100::10:443')]['assigned_port'] == 49152
    assert parsed[(None, 'tcp', '127.0.0.1', '8443')]['host_ip'] == '127.0.0.1'
    assert not any(m['_broken'] for m in parsed.values())
    # A range missing one port reads back as broken (the next run repairs it).
    partial = set(mapping_elements(rng))
    partial.discard(Element(INET, 'dnat4_any_port', ('udp', 5001), 6001))
    assert _parse(None, FakeTables(partial))[(None, 'udp', '0.0.0.0', '5000-5002')]['_broken'] is True


def test_describe():
    assert describe(_mapping()) == 'tcp *:8080 -> 198.51.100.10:80'
    assert describe(_mapping(host_port='5000-5002', port=6000)) == 'tcp *:5000-5002 -> 198.51.100.10:6000-6002'
    assert describe(_mapping(host_port='auto', assigned_port=49152, destination='2001:db8::1')) == \
        'tcp [::]:auto=49152 -> [2001:db8::1]:80'


@pytest.mark.parametrize('item, field, fragment', [
    ({'host_port': 8080, 'destination': '198.51.100.10', 'port': 80, 'protocol': 'icmp'}, 'protocol', 'one of'),
    ({'host_port': '8080-8080', 'destination': '198.51.100.10', 'port': 80}, 'host_port', 'A < B'),
    ({'host_port': True, 'destination': '198.51.100.10', 'port': 80}, 'host_port', 'not a port'),
    ({'host_port': 8080, 'destination': '224.0.0.1', 'port': 80}, 'destination', 'not an endpoint'),
    ({'host_port': 8080, 'host_ip': '224.0.0.1', 'destination': '198.51.100.10', 'port': 80}, 'host_ip',
     'multicast'),
    ({'host_port': 8080}, 'destination', 'address family'),
])
def test_portmap_input_refused(item, field, fragment):
    kind = PortmapKind(None, Context())
    with pytest.raises(ValidationError) as info:
        kind.normalize(item)
    assert info.value.field == field and fragment in str(info.value)


def test_portmap_identity():
    kind = PortmapKind(None, Context())
    explicit = kind.normalize({'host_port': '8080', 'destination': '198.51.100.10', 'port': 80})
    assert explicit['host_port'] == 8080
    assert kind.key(explicit) == (None, 'tcp', '0.0.0.0', '8080')
    # 0.0.0.0 given is the same as no host_ip; deletion needs no destination.
    deleting = kind.normalize({'host_port': 8080, 'host_ip': '0.0.0.0'})
    assert kind.key(deleting) == kind.key(explicit)
    auto = kind.normalize({'host_port': 'auto', 'destination': '2001:db8:100::10', 'port': 443, 'assigned_port': 1})
    assert auto['assigned_port'] is None
    assert kind.key(auto) == (None, 'tcp', '::', 'auto:2001:db8:100::10:443')
