# -*- coding: utf-8 -*-
"""Ownership that holds (inside the sandbox): what the collection did not
make is never adopted, changed or deleted — look-alike aliases, namespaces
re-made under a recorded name, names taken between plan and run, foreign
ports on a bridge — and sysctls are switched only for the families in use.
Each case compares kernel snapshots to prove that nothing foreign changed."""

from __future__ import annotations

import json
import os

import pytest

from ansible_collections.hostnet.provision.plugins.module_utils._engine import Context, _apply_resource
from ansible_collections.hostnet.provision.plugins.module_utils._errors import HostnetError
from ansible_collections.hostnet.provision.plugins.module_utils._kind_bridge import BridgeKind
from ansible_collections.hostnet.provision.plugins.module_utils._kind_netns import NetnsKind
from ansible_collections.hostnet.provision.plugins.module_utils._kind_veth import VethKind
from ansible_collections.hostnet.provision.plugins.module_utils._netlink import Kernel

from helpers import kernel_snapshot, link, netns_names, run_module, sh, snapshot_diff, wait_for


_PORT_TIMERS = ('hold_timer', 'message_age_timer', 'forward_delay_timer')


def snapshot():
    """kernel_snapshot() without bridge ports' timers, which tick on their own."""
    snap = kernel_snapshot()
    for view in snap.values():
        if isinstance(view, dict) and isinstance(view.get('links'), list):
            for entry in view['links']:
                port = (entry.get('linkinfo') or {}).get('info_slave_data') or {}
                for timer in _PORT_TIMERS:
                    port.pop(timer, None)
    return snap


def unchanged(before):
    assert snapshot_diff(before, snapshot()) == []


def warnings(result):
    """Warning texts of a result (plain strings, or Ansible's structured summaries)."""
    return [w if isinstance(w, str) else w['event']['msg'] for w in result.get('warnings', [])]


def ns_inode(name):
    return os.stat('/run/netns/%s' % name).st_ino


# -- aliases -------------------------------------------------------------------

@pytest.mark.parametrize('alias', ['hostnet.provisionXYZ', 'hostnet.provision-fake', 'hostnet.provision fake',
                                   'hostnet.provision veth-peer extra'])
def test_lookalike_alias_is_not_ours(alias):
    sh('ip', 'link', 'add', 'hn-br0', 'type', 'bridge')
    sh('ip', 'link', 'set', 'hn-br0', 'alias', alias)
    before = snapshot()
    assert run_module('bridge', state='gathered')['gathered'] == []
    assert run_module('bridge', state='deleted')['changed'] is False
    assert run_module('bridge', state='overridden', config=[])['changed'] is False
    result = run_module('bridge', fail=True, config=[{'name': 'hn-br0', 'mtu': 1400}])
    assert 'not created by hostnet.provision' in result['msg']
    result = run_module('bridge', fail=True, state='deleted', config=[{'name': 'hn-br0'}])
    assert 'not created by hostnet.provision' in result['msg']
    unchanged(before)
    assert run_module('net_info')['changed'] is False
    info = run_module('net_info')
    links = [item for item in _walk(info) if isinstance(item, dict) and item.get('name') == 'hn-br0'
             and 'managed' in item]
    assert links and not any(item['managed'] for item in links)


def _walk(value):
    if isinstance(value, dict):
        yield value
        for item in value.values():
            yield from _walk(item)
    elif isinstance(value, list):
        for item in value:
            yield from _walk(item)


# -- namespaces re-made behind the collection's back ------------------------------

def test_namespace_recreated_by_someone_else_is_refused_never_deleted():
    run_module('netns', config=[{'name': 'hn-a'}])
    old_inode = ns_inode('hn-a')
    sh('ip', 'netns', 'del', 'hn-a')
    sh('ip', 'netns', 'add', 'hn-a')
    sh('ip', 'link', 'add', 'fx0', 'type', 'veth', 'peer', 'name', 'fx1', netns='hn-a')
    # (The kernel usually hands the freed inode number out again: the
    # record's inode alone would match.)
    print('inode reused:', ns_inode('hn-a') == old_inode)
    before = snapshot()
    result = run_module('netns', fail=True, config=[{'name': 'hn-a'}])
    assert "namespace named 'hn-a' is not the one hostnet.provision created" in result['msg']
    assert result['field'] == 'name' and result['value'] == 'hn-a'
    run_module('netns', fail=True, state='deleted', config=[{'name': 'hn-a'}])
    assert run_module('netns', state='deleted')['changed'] is False
    assert run_module('netns', state='overridden', config=[])['changed'] is False
    assert run_module('netns', state='gathered')['gathered'] == []
    unchanged(before)
    assert netns_names() == ['hn-a'] and link('fx0', netns='hn-a') is not None


def test_record_with_another_cookie_is_not_ours():
    """A namespace that got the recorded inode number back is told apart by
    its netns cookie: here the record is made to describe an earlier
    namespace with the live inode and device but another cookie."""
    run_module('netns', config=[{'name': 'hn-a'}])
    path = '/run/hostnet/netns/hn-a'
    with open(path) as handle:
        record = json.load(handle)
    assert record['inode'] == ns_inode('hn-a') and record['dev'] is not None
    if record.get('cookie') is None:
        pytest.skip('this kernel has no SO_NETNS_COOKIE (before 5.14): inode and device are all there is')
    record['cookie'] += 1
    with open(path, 'w') as handle:
        json.dump(record, handle)
    before = snapshot()
    result = run_module('netns', fail=True, config=[{'name': 'hn-a'}])
    assert 'is not the one hostnet.provision created' in result['msg']
    assert run_module('netns', state='deleted')['changed'] is False
    run_module('netns', fail=True, state='deleted', config=[{'name': 'hn-a'}])
    unchanged(before)


# -- rollback undoes only what this run made ------------------------------------------

def _plan(kernel, kind_class, item):
    kind = kind_class(kernel, Context())
    item = kind.normalize(item)
    kind.check_all([item])
    key = kind.key(item)
    before = kind.current(key)
    after = kind.predict(before, item, False)
    return key, kind.plan(key, before, after)


def test_bridge_name_taken_between_plan_and_run_is_not_rolled_back():
    with Kernel() as kernel:
        key, ops = _plan(kernel, BridgeKind, {'name': 'hn-br0', 'mtu': 1400})
        assert ops[0].text == 'create bridge hn-br0' and ops[0].partial
        # Another tool takes the name after the plan was made.
        sh('ip', 'link', 'add', 'hn-br0', 'type', 'bridge')
        before = snapshot()
        with pytest.raises(HostnetError) as err:
            _apply_resource(key, ops, [])
        assert 'hn-br0' in str(err.value)
    unchanged(before)


def test_bridge_undo_spares_a_foreign_link_that_took_the_name():
    with Kernel() as kernel:
        _key, ops = _plan(kernel, BridgeKind, {'name': 'hn-br0'})
        ops[0].run()
        assert link('hn-br0')['ifalias'] == 'hostnet.provision'
        # Ours goes, someone else's comes under the name; then the undo runs.
        sh('ip', 'link', 'del', 'hn-br0')
        sh('ip', 'link', 'add', 'hn-br0', 'type', 'bridge')
        before = snapshot()
        ops[0].undo()
    unchanged(before)
    # And it does remove what it made when that is still there.
    with Kernel() as kernel:
        _key, ops = _plan(kernel, BridgeKind, {'name': 'hn-br1'})
        ops[0].run()
        ops[0].undo()
    assert link('hn-br1') is None


def test_veth_name_taken_between_plan_and_run_is_not_rolled_back():
    run_module('netns', config=[{'name': 'ns-a'}])
    with Kernel() as kernel:
        key, ops = _plan(kernel, VethKind, {'name': 'veth-a', 'peer': {'name': 'eth0', 'netns': 'ns-a'}})
        sh('ip', 'link', 'add', 'veth-a', 'type', 'veth', 'peer', 'name', 'other')
        before = snapshot()
        with pytest.raises(HostnetError):
            _apply_resource(key, ops, [])
    unchanged(before)


def test_netns_undo_removes_only_the_namespace_it_made():
    with Kernel() as kernel:
        key, ops = _plan(kernel, NetnsKind, {'name': 'hn-a'})
        create = ops[0]
        assert create.text == 'create netns hn-a'
        # Name taken meanwhile: the create fails, its undo removes nothing.
        sh('ip', 'netns', 'add', 'hn-a')
        before = snapshot()
        with pytest.raises(HostnetError):
            _apply_resource(key, ops, [])
        create.undo()
        unchanged(before)
    sh('ip', 'netns', 'del', 'hn-a')
    with Kernel() as kernel:
        key, ops = _plan(kernel, NetnsKind, {'name': 'hn-a'})
        ops[0].run()
        # Deleted and re-made by someone else (likely with the same inode
        # number) before the undo runs.
        sh('ip', 'netns', 'del', 'hn-a')
        sh('ip', 'netns', 'add', 'hn-a')
        before = snapshot()
        ops[0].undo()
        unchanged(before)
        assert netns_names() == ['hn-a']


# -- a bridge with foreign ports ---------------------------------------------------------

def test_bridge_with_a_foreign_port_is_kept_and_the_run_says_so():
    run_module('netns', config=[{'name': 'ns-a'}])
    run_module('bridge', config=[{'name': 'hn-br0', 'addresses': ['198.18.20.1/24']}])
    run_module('veth', config=[{'name': 'veth-a', 'bridge': 'hn-br0', 'peer': {'name': 'eth0', 'netns': 'ns-a'}}])
    sh('ip', 'link', 'add', 'fx0', 'type', 'veth', 'peer', 'name', 'fx1')
    sh('ip', 'link', 'set', 'fx0', 'master', 'hn-br0')
    sh('ip', 'link', 'set', 'fx0', 'up')
    sh('ip', 'link', 'set', 'fx1', 'up')
    # The bridge's carrier settles first (a port came up): not our change.
    assert wait_for(lambda: 'LOWER_UP' in link('hn-br0')['flags'])
    before = snapshot()
    for state, config in (('deleted', [{'name': 'hn-br0'}]), ('deleted', []), ('overridden', [])):
        result = run_module('bridge', state=state, config=config)
        assert result['changed'] is False and result['commands'] == []
        assert any('hn-br0' in w and 'fx0' in w and 'kept, not deleted' in w for w in warnings(result))
    unchanged(before)
    assert link('fx0')['master'] == 'hn-br0'
    # Once the foreign port is gone, the bridge is deleted as asked.
    sh('ip', 'link', 'set', 'fx0', 'nomaster')
    assert run_module('bridge', state='deleted', config=[{'name': 'hn-br0'}])['commands'][-1] == 'delete bridge hn-br0'
    assert link('hn-br0') is None and link('fx0') is not None


# -- forwarding only for the families in use -----------------------------------------------

def _sysctl(path):
    with open(path) as handle:
        return handle.read().strip()


def test_ipv4_only_bridge_leaves_ipv6_forwarding_alone():
    run_module('bridge', enable_forwarding=True,
               config=[{'name': 'hn-br0', 'addresses': ['198.18.20.1/24'], 'masquerade': True}])
    assert _sysctl('/proc/sys/net/ipv4/ip_forward') == '1'
    assert _sysctl('/proc/sys/net/ipv6/conf/all/forwarding') == '0'
    run_module('bridge', enable_forwarding=True,
               config=[{'name': 'hn-br1', 'addresses': ['2001:db8:20::1/64'], 'masquerade': True}])
    assert _sysctl('/proc/sys/net/ipv6/conf/all/forwarding') == '1'


# -- links: the record of the name, not the alias alone -------------------------

def test_link_remade_by_someone_else_with_our_alias_is_not_ours():
    """A bridge of ours deleted and made again by someone else under its
    name, alias copied: refused, neither adopted, changed nor deleted; a
    never-recorded name with the alias likewise."""
    run_module('bridge', config=[{'name': 'hn-own', 'addresses': ['198.18.60.1/24']}])
    sh('ip', 'link', 'del', 'hn-own')
    for name in ('hn-own', 'hn-fake'):
        sh('ip', 'link', 'add', name, 'type', 'bridge')
        sh('ip', 'link', 'set', name, 'alias', 'hostnet.provision')
    before = snapshot()
    for name in ('hn-own', 'hn-fake'):
        result = run_module('bridge', fail=True, config=[{'name': name, 'addresses': ['198.18.61.1/24']}])
        assert 'not created by hostnet.provision' in result['msg'], result['msg']
    gathered = run_module('bridge', state='gathered')['gathered']
    assert [b['name'] for b in gathered] == []
    assert run_module('bridge', config=[], state='overridden')['changed'] is False
    # The only change: the record of the deleted bridge (another index) is
    # dropped at the end of a run; the look-alike stays foreign without it.
    diff = snapshot_diff(before, snapshot())
    assert len(diff) == 1 and diff[0].startswith('records/') and '-hn-own:' in diff[0] and diff[0].endswith('-> None')
    for name in ('hn-own', 'hn-fake'):
        result = run_module('bridge', fail=True, config=[{'name': name, 'addresses': ['198.18.61.1/24']}])
        assert 'not created by hostnet.provision' in result['msg'], result['msg']
    assert run_module('bridge', state='gathered')['gathered'] == []


def test_links_of_an_earlier_version_are_adopted_once_then_recorded():
    """Alias and no record (made before the collection kept records): ours
    until the first run records them; after that, a new look-alike is not."""
    sh('ip', 'link', 'add', 'hn-old', 'type', 'bridge')
    sh('ip', 'link', 'set', 'hn-old', 'alias', 'hostnet.provision')
    assert [b['name'] for b in run_module('bridge', state='gathered')['gathered']] == ['hn-old']
    result = run_module('bridge', config=[{'name': 'hn-old', 'addresses': ['198.18.62.1/24']}])
    assert result['changed'] is True
    sh('ip', 'link', 'add', 'hn-new', 'type', 'bridge')
    sh('ip', 'link', 'set', 'hn-new', 'alias', 'hostnet.provision')
    assert [b['name'] for b in run_module('bridge', state='gathered')['gathered']] == ['hn-old']
