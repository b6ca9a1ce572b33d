# -*- coding: utf-8 -*-
"""Named exceptions to isolation: the plan (roles) and the bridge's option
in canonical form, set elements and read-back."""

from __future__ import annotations

import pytest

from ansible_collections.hostnet.provision.plugins.module_utils._errors import ValidationError
from ansible_collections.hostnet.provision.plugins.module_utils._kind_bridge import (
    BridgeKind,
    allow_elements,
    allow_list,
    bridge_elements,
    owned_elements,
)
from ansible_collections.hostnet.provision.plugins.module_utils._nft import INET, Element, group_elements
from ansible_collections.hostnet.provision.plugins.module_utils._topology import PlanError, plan_networks

TENANTS = [
    {'name': 'web', 'subnet': '198.51.100.0/25', 'endpoints': ['w1']},
    {'name': 'db', 'subnet': '198.51.100.128/25', 'endpoints': ['d1']},
    {'name': 'ops', 'subnet': '203.0.113.0/24', 'endpoints': ['o1']},
]
ALLOW = [{'name': 'web-to-db', 'from': 'web', 'to': 'db', 'protocol': 'tcp', 'ports': [5432]},
         {'name': 'ops-all', 'from': 'ops', 'to': 'db'}]


def plan(allow, tenants=None):
    return plan_networks(TENANTS if tenants is None else tenants, None, prefix='tn-', defaults={'isolated': True, 'allow': allow})


def test_each_exception_goes_to_its_source_bridge_by_bridge_name():
    out = plan(ALLOW)
    allow = dict((b['name'], b['allow']) for b in out['bridges'])
    assert allow == {
        'tn-web': [{'name': 'web-to-db', 'to': 'tn-db', 'protocol': 'tcp', 'ports': [5432]}],
        'tn-db': [],
        'tn-ops': [{'name': 'ops-all', 'to': 'tn-db'}],
    }
    # The report names networks, not bridges.
    assert [r['allow'] for r in out['report']] == [
        [{'name': 'web-to-db', 'to': 'db', 'protocol': 'tcp', 'ports': [5432]}], [],
        [{'name': 'ops-all', 'to': 'db', 'protocol': None, 'ports': []}]]


def test_without_an_allow_list_the_bridges_get_no_allow_option():
    out = plan_networks(TENANTS, None, prefix='tn-', defaults={'isolated': True})
    assert all('allow' not in b for b in out['bridges'])


@pytest.mark.parametrize('allow, fragments', [
    ([{'name': 'x', 'from': 'nosuch', 'to': 'db'}], ['allow x', "from 'nosuch' is not one of the networks"]),
    ([{'name': 'x', 'from': 'web', 'to': 'dbx'}], ['allow x', "to 'dbx' is not one of the networks"]),
    ([{'name': 'x', 'from': 'web'}], ['allow x', 'to None']),
    ([{'name': 'x', 'from': 'web', 'to': 'web'}], ['allow x', "from and to are both 'web'"]),
    ([{'name': 'x', 'from': 'web', 'to': 'db', 'protocol': 'icmpx'}], ['allow x', "protocol 'icmpx'"]),
    ([{'name': 'x', 'from': 'web', 'to': 'db', 'ports': ['9-1']}], ['allow x', "port range '9-1'"]),
    ([{'name': 'x', 'from': 'web', 'to': 'db', 'ports': [70000]}], ['allow x', 'port 70000 is out of range']),
    ([{'name': 'x', 'from': 'web', 'to': 'db', 'protocol': 'icmp', 'ports': [1]}], ['allow x', 'icmp has no ports']),
    ([{'name': 'x', 'from': 'web', 'to': 'db'}, {'name': 'x', 'from': 'db', 'to': 'web'}],
     ['allow x', "name 'x' is listed twice"]),
    ([{'name': 'x', 'from': 'web', 'to': 'db', 'ports': [80]}, {'name': 'y', 'from': 'web', 'to': 'db', 'ports': ['70-90']}],
     ['network web', 'allow y: tcp port 80 to tn-db is already allowed by x']),
    ([{'from': 'web', 'to': 'db'}], ['allow name None']),
    ('web', ["allow: 'web' must be a list"]),
])
def test_bad_exceptions_are_refused_naming_field_and_value(allow, fragments):
    with pytest.raises(PlanError) as err:
        plan(allow)
    for fragment in fragments:
        assert fragment in str(err.value), str(err.value)


def test_an_exception_to_a_network_marked_absent_is_refused():
    tenants = TENANTS[:1] + [dict(TENANTS[1], state='absent')] + TENANTS[2:]
    with pytest.raises(PlanError) as err:
        plan(ALLOW[:1], tenants)
    assert "allow web-to-db: to 'db' is a network marked absent" in str(err.value)


def test_ports_are_canonical_and_elements_one_per_port():
    allow = allow_list([{'name': 'r', 'to': 'b1', 'ports': [82, '80-81', '5432']},
                        {'name': 'p', 'to': 'b1', 'protocol': 'icmp'}], 'b0', 'bridge b0')
    assert allow == [{'name': 'p', 'to': 'b1', 'protocol': 'icmp', 'ports': []},
                     {'name': 'r', 'to': 'b1', 'protocol': 'tcp', 'ports': ['80-82', 5432]}]
    assert allow_elements('b0', allow) == {
        Element(INET, 'allow_proto', ('b0', 'b1', 'icmp'), comment='p'),
        Element(INET, 'allow_proto', ('b0', 'b1', 'ipv6-icmp'), comment='p'),
        Element(INET, 'allow_ports', ('b0', 'b1', 'tcp', 80), comment='r'),
        Element(INET, 'allow_ports', ('b0', 'b1', 'tcp', 81), comment='r'),
        Element(INET, 'allow_ports', ('b0', 'b1', 'tcp', 82), comment='r'),
        Element(INET, 'allow_ports', ('b0', 'b1', 'tcp', 5432), comment='r')}


class _Tables:
    def __init__(self, elements):
        self._elements = elements

    def elements(self, family=None, set_name=None):
        return list(self._elements)

    def grouped(self, key_of):
        return group_elements(self.elements(), key_of)


def test_elements_read_back_as_the_option_and_belong_to_the_source_bridge():
    allow = allow_list([{'name': 'r', 'to': 'b1', 'protocol': 'udp', 'ports': ['53', 5353]},
                        {'name': 'w', 'to': 'b2'}, {'name': 'i', 'to': 'b2', 'protocol': 'icmp'}], 'b0', 'bridge b0')
    mine = bridge_elements('b0', {'addresses': ['198.51.100.1/24'], 'allow': allow})
    theirs = bridge_elements('b1', {'addresses': ['203.0.113.1/24'],
                                    'allow': allow_list([{'name': 'back', 'to': 'b0'}], 'b1', 'bridge b1')})
    owned = owned_elements(_Tables(mine | theirs), 'b0')
    assert owned == mine
    from ansible_collections.hostnet.provision.plugins.module_utils._kind_bridge import _policy
    assert _policy(owned, 'b0')['allow'] == allow


def test_merged_replaces_an_exception_of_the_same_name():
    kind = BridgeKind(None, None)
    before = {'name': 'b0', 'netns': None, 'addresses': ['198.51.100.1/24'], 'reach': [],
              'allow': allow_list([{'name': 'a', 'to': 'b1'}, {'name': 'b', 'to': 'b2'}], 'b0', 'bridge b0')}
    desired = kind.normalize({'name': 'b0', 'allow': [{'name': 'a', 'to': 'b1', 'ports': [22]}]})
    after = kind.predict(before, desired, replace=False)
    assert after['allow'] == [{'name': 'a', 'to': 'b1', 'protocol': 'tcp', 'ports': [22]},
                              {'name': 'b', 'to': 'b2', 'protocol': None, 'ports': []}]
    assert kind.predict(before, desired, replace=True)['allow'] == [
        {'name': 'a', 'to': 'b1', 'protocol': 'tcp', 'ports': [22]}]


@pytest.mark.parametrize('item, field', [
    ({'allow': 'b1'}, 'allow'),
    ({'allow': [{'name': 'a', 'to': 'b0'}]}, 'allow'),
    ({'allow': [{'name': 'a', 'to': 'b1', 'protocol': 'gre'}]}, 'protocol'),
    ({'allow': [{'name': 'a', 'to': 'b1', 'ports': [True]}]}, 'ports'),
    ({'allow': [{'name': '', 'to': 'b1'}]}, 'name'),
    ({'allow': [{'name': 'a', 'to': None}]}, 'to'),
])
def test_the_module_refuses_bad_exceptions_by_field(item, field):
    with pytest.raises(ValidationError) as err:
        BridgeKind(None, None).normalize(dict(item, name='b0'))
    assert err.value.field == field


def test_the_site_report_expects_what_the_exceptions_open():
    from ansible_collections.hostnet.provision.plugins.filter.report import report_checks
    report = plan(ALLOW)['report']
    for net in report:
        net['endpoints'] = [{'name': net['name'] + '1', 'addresses': ['%s/26' % net['gateways'][0]]}]
    checks = dict((c['label'], c['expect']) for c in report_checks([], report) if '->' in c['label'] and 'gateway' not in c['label'])
    assert checks['tenant ops -> tenant db (allowed by ops-all)'] is True
    assert checks['tenant web -> tenant db (isolated)'] is False  # TCP 5432 only; the probe is ICMP
    assert checks['tenant db -> tenant ops (isolated)'] is False
