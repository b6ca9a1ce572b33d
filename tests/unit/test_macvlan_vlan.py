# -*- coding: utf-8 -*-
# Copyright: contributors to hostnet.provision
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The macvlan kind's 802.1Q parent bookkeeping, on a kernel stand-in.

The sandbox kernel has no vlan link kind, so the life cycle of the
sub-interfaces the collection makes for ``vlan`` (made once for all its
macvlans, removed with the last one, never removed when not ours) is driven
here through the real engine against a small in-memory kernel; the VMs run
the same path against a real kernel (tests/integration/test_macvlan.py).
"""

from __future__ import annotations

import pytest

from ansible_collections.hostnet.provision.plugins.module_utils import _nsfs
from ansible_collections.hostnet.provision.plugins.module_utils._engine import Context, reconcile
from ansible_collections.hostnet.provision.plugins.module_utils._errors import ConflictError, ValidationError
from ansible_collections.hostnet.provision.plugins.module_utils._kind_macvlan import MacvlanKind

# (st_dev, st_ino) as _nsfs.namespace_id gives them.
NAMESPACES = {None: (0, 1), '': (0, 1), 'ns-a': (0, 2), 'ns-b': (0, 3)}
VLAN_TAG = 'hostnet.provision macvlan-parent'


class FakeKernel:
    """Links per namespace, with just the behaviour the macvlan kind relies on."""

    def __init__(self, vlan_support=True):
        self.ns = dict((spec, {}) for spec in (None, 'ns-a', 'ns-b'))
        self.vlan_support = vlan_support
        self._next = 1
        self.add(None, 'nic0', kind='veth')

    def add(self, spec, name, **attrs):
        link = {'index': self._next, 'name': name, 'kind': None, 'alias': None, 'mtu': 1500,
                'mac': '02:00:00:00:00:%02x' % self._next, 'up': False, 'master': None, 'link': None,
                'link_netnsid': None}
        link.update(attrs)
        self._next += 1
        self.ns[spec][name] = link
        return link

    def _find(self, index):
        for spec, links in self.ns.items():
            for link in links.values():
                if link['index'] == index:
                    return spec, link
        raise AssertionError('no link %d' % index)

    # reads
    def links(self, spec, resource=None):
        return self.ns[spec or None]

    def link(self, spec, name, resource=None):
        return self.ns[spec or None].get(name)

    def link_index(self, spec, name, resource=None):
        link = self.link(spec, name, resource)
        return None if link is None else link['index']

    def link_by_index(self, spec, index):
        return next((link for link in self.ns[spec or None].values() if link['index'] == index), None)

    def exists(self, spec):
        return (spec or None) in self.ns

    def addresses(self, spec, index, resource=None):
        return []

    def managed_routes(self, spec, index):
        return []

    def link_kind_supported(self, spec, kind, resource=None, field=None):
        return self.vlan_support

    def ns_fd(self, spec, resource=None, field=None):
        return spec

    def session(self, spec, resource=None, field='netns'):
        return self

    def invalidate(self):
        pass

    # writes
    def link_add(self, spec, resource, **kwargs):
        name, kind = kwargs['ifname'], kwargs['kind']
        if kind == 'vlan':
            self.add(spec, name, kind='vlan', link=kwargs['link'], vlan={'id': kwargs['vlan_id']})
        else:
            target = kwargs.get('net_ns_fd', spec)
            self.add(target, name, kind='macvlan', link=kwargs['link'],
                     link_netnsid=None if target == spec else 0, macvlan={'mode': kwargs['macvlan_mode']})

    def link_set(self, spec, resource, index, field=None, value=None, **kwargs):
        _spec, link = self._find(index)
        if 'ifalias' in kwargs:
            link['alias'] = kwargs['ifalias']
        if 'state' in kwargs:
            link['up'] = kwargs['state'] == 'up'
        if 'macvlan_mode' in kwargs:
            link['macvlan']['mode'] = kwargs['macvlan_mode']

    def link_del(self, spec, resource, index):
        owner, link = self._find(index)
        del self.ns[owner][link['name']]
        if link['kind'] == 'vlan':
            # As the kernel does: the macvlans on it go with it.
            for links in self.ns.values():
                for name in [n for n, up in links.items() if up['kind'] == 'macvlan' and up['link'] == index]:
                    del links[name]


@pytest.fixture(autouse=True)
def _namespaces(monkeypatch):
    monkeypatch.setattr(_nsfs, 'namespace_id', NAMESPACES.get)
    monkeypatch.setattr(_nsfs, 'list_named', lambda dead=False: ['ns-a', 'ns-b'])


def run(kernel, config, state='merged', check=False):
    ctx = Context(check_mode=check)
    return reconcile(MacvlanKind(kernel, ctx), config, state, ctx).as_dict()


def endpoint(netns, vlan=100, **extra):
    return dict({'name': 'eth0', 'netns': netns, 'parent': 'nic0', 'vlan': vlan}, **extra)


def test_one_sub_interface_for_all_its_macvlans():
    kernel = FakeKernel()
    predicted = run(kernel, [endpoint('ns-a'), endpoint('ns-b')], check=True)
    result = run(kernel, [endpoint('ns-a'), endpoint('ns-b')])
    assert result['commands'] == predicted['commands'] == [
        'create vlan nic0.100 (802.1Q id 100 on nic0)',
        'create macvlan eth0@ns-a on nic0.100 (mode bridge)',
        'create macvlan eth0@ns-b on nic0.100 (mode bridge)']
    vlan = kernel.link(None, 'nic0.100')
    assert vlan['alias'] == VLAN_TAG and vlan['vlan'] == {'id': 100} and vlan['up']
    assert kernel.link('ns-a', 'eth0')['alias'] == 'hostnet.provision macvlan parent=nic0 vlan=100'
    assert result['after'][0]['vlan'] == 100 and result['after'][0]['parent'] == 'nic0'
    assert run(kernel, [endpoint('ns-a'), endpoint('ns-b')])['changed'] is False


def test_sub_interface_goes_with_its_last_macvlan():
    kernel = FakeKernel()
    run(kernel, [endpoint('ns-a'), endpoint('ns-b')])
    assert run(kernel, [{'name': 'eth0', 'netns': 'ns-a'}], state='deleted')['commands'] == [
        'delete macvlan eth0@ns-a']
    assert kernel.link(None, 'nic0.100') is not None
    assert run(kernel, [{'name': 'eth0', 'netns': 'ns-b'}], state='deleted')['commands'] == [
        'delete macvlan eth0@ns-b', 'delete vlan nic0.100 (its last macvlan is gone)']
    assert kernel.link(None, 'nic0.100') is None and kernel.link(None, 'nic0') is not None


def test_both_deleted_in_one_call_remove_it_once_after_the_last():
    kernel = FakeKernel()
    run(kernel, [endpoint('ns-a'), endpoint('ns-b')])
    # Full items given to deleted (the same vars as for merged): still deleted.
    result = run(kernel, [endpoint('ns-a'), endpoint('ns-b')], state='deleted')
    assert result['commands'] == ['delete macvlan eth0@ns-a', 'delete macvlan eth0@ns-b',
                                  'delete vlan nic0.100 (its last macvlan is gone)']
    assert kernel.link(None, 'nic0.100') is None


def test_overridden_keeps_it_for_the_macvlan_that_stays():
    kernel = FakeKernel()
    run(kernel, [endpoint('ns-a'), endpoint('ns-a', name='eth1')])
    result = run(kernel, [endpoint('ns-a')], state='overridden')
    assert result['commands'] == ['delete macvlan eth1@ns-a']
    assert kernel.link(None, 'nic0.100') is not None


def test_moving_off_the_vlan_removes_it():
    kernel = FakeKernel()
    run(kernel, [endpoint('ns-a')])
    result = run(kernel, [endpoint('ns-a', vlan=None)], state='replaced')
    assert result['commands'] == [
        'delete macvlan eth0@ns-a to recreate it (vlan 100 becomes none)',
        'delete vlan nic0.100 (its last macvlan is gone)',
        'create macvlan eth0@ns-a on nic0 (mode bridge)']
    assert kernel.link(None, 'nic0.100') is None
    assert kernel.link('ns-a', 'eth0')['alias'] == 'hostnet.provision macvlan parent=nic0'


def test_a_sub_interface_we_did_not_make_is_used_never_removed():
    kernel = FakeKernel()
    kernel.add(None, 'nic0.200', kind='vlan', link=kernel.link(None, 'nic0')['index'], vlan={'id': 200})
    assert run(kernel, [endpoint('ns-a', vlan=200)])['commands'] == ['create macvlan eth0@ns-a on nic0.200 (mode bridge)']
    assert run(kernel, [{'name': 'eth0', 'netns': 'ns-a'}], state='deleted')['commands'] == ['delete macvlan eth0@ns-a']
    assert kernel.link(None, 'nic0.200') is not None


def test_a_macvlan_made_elsewhere_keeps_the_sub_interface():
    kernel = FakeKernel()
    run(kernel, [endpoint('ns-a')])
    vlan = kernel.link(None, 'nic0.100')
    kernel.add('ns-b', 'foreign', kind='macvlan', link=vlan['index'], link_netnsid=0, macvlan={'mode': 'bridge'})
    assert run(kernel, [], state='deleted')['commands'] == []  # nothing managed in the module's namespace
    assert run(kernel, [{'name': 'eth0', 'netns': 'ns-a'}], state='deleted')['commands'] == ['delete macvlan eth0@ns-a']
    assert kernel.link(None, 'nic0.100') is not None and kernel.link('ns-b', 'foreign') is not None


def test_a_name_held_by_something_else_is_refused_naming_vlan():
    kernel = FakeKernel()
    kernel.add(None, 'nic0.100', kind='veth')
    with pytest.raises(ConflictError) as info:
        run(kernel, [endpoint('ns-a')])
    assert info.value.field == 'vlan' and 'not the 802.1Q sub-interface 100 of nic0' in str(info.value)
    assert kernel.link('ns-a', 'eth0') is None


def test_no_vlan_support_is_refused_naming_vlan():
    kernel = FakeKernel(vlan_support=False)
    with pytest.raises(ValidationError) as info:
        run(kernel, [endpoint('ns-b', vlan=None), endpoint('ns-a')])
    assert (info.value.field, info.value.value) == ('vlan', 100)
    assert 'this kernel has no 802.1q support (vlan link kind)' in str(info.value)
    assert kernel.link('ns-b', 'eth0') is None and kernel.link(None, 'nic0.100') is None


def test_long_parent_names_get_a_derived_sub_interface_name():
    kernel = FakeKernel()
    kernel.add(None, 'enp0s20f0u1u2c2', kind='veth')
    result = run(kernel, [endpoint('ns-a', parent='enp0s20f0u1u2c2', vlan=4094)])
    vname = result['commands'][0].split()[2]
    assert len(vname) == 15 and vname.startswith('enp0s2') and vname.endswith('.4094')
    assert kernel.link(None, vname)['alias'] == VLAN_TAG
    assert run(kernel, [endpoint('ns-a', parent='enp0s20f0u1u2c2', vlan=4094)])['changed'] is False


def test_vlan_undo_spares_a_sub_interface_it_did_not_make():
    """A concurrent run (same alias) re-made the sub-interface between this
    run's create and its undo: the undo leaves that one alone."""
    kernel = FakeKernel()
    kind = MacvlanKind(kernel, Context())
    item = kind.normalize(endpoint('ns-a'))
    kind.check_all([item])
    key = kind.key(item)
    ops = kind.plan(key, None, kind.predict(None, item, False))
    create_vlan = ops[0]
    assert create_vlan.text == 'create vlan nic0.100 (802.1Q id 100 on nic0)'
    create_vlan.run()
    mine = kernel.link(None, 'nic0.100')
    kernel.link_del(None, None, mine['index'])
    other = kernel.add(None, 'nic0.100', kind='vlan', link=mine['link'], vlan={'id': 100}, alias=VLAN_TAG)
    create_vlan.undo()
    assert kernel.link(None, 'nic0.100') is other
    # What it made itself, it removes.
    kernel.link_del(None, None, other['index'])
    ops = MacvlanKind(kernel, Context()).plan(key, None, kind.predict(None, item, False))
    ops[0].run()
    ops[0].undo()
    assert kernel.link(None, 'nic0.100') is None
