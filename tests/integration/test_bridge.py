# -*- coding: utf-8 -*-
"""hostnet.provision.bridge against the real kernel (inside the sandbox)."""

from __future__ import annotations

import pytest

from helpers import addresses, link, quartet, run_module, sh, sys_class_net

BR = {'name': 'hn-br0', 'addresses': ['198.51.100.1/24', '2001:db8:100::1/64'], 'mtu': 1450,
      'stp': True, 'forward_delay': 400, 'vlan_filtering': False, 'mac': '02:00:5e:10:00:01'}


def kernel_has_vlan_filtering():
    probe = sh('ip', 'link', 'add', 'hn-probe', 'type', 'bridge', 'vlan_filtering', '1', check=False)
    sh('ip', 'link', 'del', 'hn-probe', check=False)
    return probe.returncode == 0


def test_quartet_and_readback_through_ip():
    check, applied, _again, _check2 = quartet('bridge', config=[BR])
    assert applied['commands'] == [
        'create bridge hn-br0', 'add address 198.51.100.1/24 to hn-br0', 'add address 2001:db8:100::1/64 to hn-br0',
        # A bridge with addresses is registered in the nftables tables (hairpin,
        # localhost ports, isolation from other bridges); route_localnet stays off.
        'nftables: bridge hn-br0: add bridge_nets4 hn-br0 . 198.51.100.0/24, '
        'add bridge_nets6 hn-br0 . 2001:db8:100::/64, add bridges hn-br0, add reach hn-br0 . hn-br0']
    entry = link('hn-br0', details=True)
    data = entry['linkinfo']['info_data']
    assert entry['linkinfo']['info_kind'] == 'bridge'
    assert entry['mtu'] == 1450 and entry['address'] == '02:00:5e:10:00:01'
    assert data['stp_state'] == 1 and data['forward_delay'] == 400 and data['vlan_filtering'] == 0
    assert entry['ifalias'] == 'hostnet.provision'
    assert 'UP' in entry['flags']
    assert addresses('hn-br0') == ['198.51.100.1/24', '2001:db8:100::1/64']
    assert 'hn-br0' in sys_class_net()
    # Check mode predicted exactly what the kernel now has.
    assert check['after'] == applied['after']


def test_mtu_change_predicted_in_check_mode_without_being_made():
    run_module('bridge', config=[BR])
    predicted = run_module('bridge', check=True, config=[{'name': 'hn-br0', 'mtu': 1400}])
    assert predicted['changed'] is True
    assert predicted['commands'] == ['set mtu of hn-br0 to 1400 (was 1450)']
    assert predicted['diff']['before']['hn-br0']['mtu'] == 1450
    assert predicted['diff']['after']['hn-br0']['mtu'] == 1400
    assert link('hn-br0')['mtu'] == 1450
    done = run_module('bridge', config=[{'name': 'hn-br0', 'mtu': 1400}])
    assert done['commands'] == predicted['commands'] and done['after'] == predicted['after']
    assert link('hn-br0')['mtu'] == 1400


def test_merged_adds_addresses_replaced_sets_them_exactly():
    run_module('bridge', config=[BR])
    merged = run_module('bridge', config=[{'name': 'hn-br0', 'addresses': ['203.0.113.1/24']}])
    assert merged['commands'] == ['add address 203.0.113.1/24 to hn-br0',
                                  'nftables: bridge hn-br0: add bridge_nets4 hn-br0 . 203.0.113.0/24']
    assert addresses('hn-br0') == ['198.51.100.1/24', '2001:db8:100::1/64', '203.0.113.1/24']
    replaced = run_module('bridge', state='replaced', config=[{'name': 'hn-br0', 'addresses': ['203.0.113.1/24']}])
    assert sorted(replaced['commands']) == [
        'nftables: bridge hn-br0: delete bridge_nets4 hn-br0 . 198.51.100.0/24, '
        'delete bridge_nets6 hn-br0 . 2001:db8:100::/64',
        'remove address 198.51.100.1/24 from hn-br0', 'remove address 2001:db8:100::1/64 from hn-br0']
    assert addresses('hn-br0') == ['203.0.113.1/24']
    assert link('hn-br0')['mtu'] == 1450  # not given: kept


def test_bridge_options_change_in_place():
    run_module('bridge', config=[BR])
    result = run_module('bridge', config=[{'name': 'hn-br0', 'stp': False, 'forward_delay': 1500}])
    assert result['commands'] == ['set forward_delay=1500, stp=false on bridge hn-br0']
    data = link('hn-br0', details=True)['linkinfo']['info_data']
    assert data['stp_state'] == 0 and data['forward_delay'] == 1500


def test_vlan_filtering():
    if not kernel_has_vlan_filtering():
        # This kernel is built without CONFIG_BRIDGE_VLAN_FILTERING: the
        # module must say so clearly and create nothing.
        result = run_module('bridge', fail=True, config=[dict(BR, vlan_filtering=True)])
        assert 'not supported' in result['msg'] and 'vlan_filtering' in result['msg']
        assert link('hn-br0') is None
        return
    quartet('bridge', config=[dict(BR, vlan_filtering=True)])
    assert link('hn-br0', details=True)['linkinfo']['info_data']['vlan_filtering'] == 1


def test_overridden_and_deleted_spare_foreign_bridges():
    sh('ip', 'link', 'add', 'foreign0', 'type', 'bridge')
    run_module('bridge', config=[BR, {'name': 'hn-br1'}])
    gathered = run_module('bridge', state='gathered')['gathered']
    assert [b['name'] for b in gathered] == ['hn-br0', 'hn-br1']
    assert run_module('bridge', state='overridden', config=gathered)['changed'] is False
    result = run_module('bridge', state='overridden', config=[{'name': 'hn-br1'}])
    assert result['commands'] == [
        'nftables: bridge hn-br0: delete bridge_nets4 hn-br0 . 198.51.100.0/24, '
        'delete bridge_nets6 hn-br0 . 2001:db8:100::/64, delete bridges hn-br0, delete reach hn-br0 . hn-br0',
        'delete bridge hn-br0']
    assert run_module('bridge', state='deleted')['commands'] == ['delete bridge hn-br1']
    assert link('foreign0') is not None and link('hn-br0') is None and link('hn-br1') is None


def test_bridge_inside_a_namespace():
    run_module('netns', config=[{'name': 'router'}])
    config = [{'name': 'br-in', 'netns': 'router', 'addresses': ['203.0.113.1/24']}]
    quartet('bridge', config=config)
    assert addresses('br-in', netns='router') == ['203.0.113.1/24']
    assert link('br-in') is None
    gathered = run_module('bridge', state='gathered', config=[{'name': 'br-in', 'netns': 'router'}])['gathered']
    assert gathered[0]['netns'] == 'router'
    assert run_module('bridge', state='deleted', config=config)['commands'] == [
        'nftables (netns router): bridge br-in: delete bridge_nets4 br-in . 203.0.113.0/24, delete bridges br-in, '
        'delete reach br-in . br-in',
        'delete bridge br-in@router']


def test_sixteen_byte_name_refused_with_reason():
    result = run_module('bridge', fail=True, config=[{'name': 'hn-sixteen-bytes'}])
    assert result['msg'] == ("bridge hn-sixteen-bytes: name 'hn-sixteen-bytes' is 16 bytes long; "
                             "Linux interface names are at most 15 bytes")
    assert result['field'] == 'name'


@pytest.mark.parametrize('item, field, fragment', [
    ({'name': 'br/0'}, 'name', 'may not contain'),
    ({'name': 'br:0'}, 'name', 'may not contain'),
    ({'name': 'br 0'}, 'name', 'may not contain'),
    ({'name': 'hn-bad', 'addresses': ['198.51.100.300/24']}, 'addresses', 'not a valid address'),
    ({'name': 'hn-bad', 'addresses': ['198.51.100.1']}, 'addresses', 'prefix length'),
    ({'name': 'hn-bad', 'mac': '01:00:5e:00:00:01'}, 'mac', 'multicast'),
    ({'name': 'hn-bad', 'mac': 'zz:00:5e:00:00:01'}, 'mac', 'not a MAC'),
    ({'name': 'hn-bad', 'mtu': 10}, 'mtu', 'out of range'),
    ({'name': 'hn-bad', 'stp': True, 'forward_delay': 100}, 'forward_delay', 'out of range'),
    ({'name': 'hn-bad', 'netns': 'missing-ns'}, 'netns', 'does not exist'),
])
def test_bad_input_refused_before_any_change(item, field, fragment):
    # The good bridge comes first: it must not be created either.
    result = run_module('bridge', fail=True, config=[{'name': 'hn-good'}, item])
    assert fragment in result['msg'], result['msg']
    assert result['field'] == field
    assert link('hn-good') is None


def test_duplicate_names_refused():
    result = run_module('bridge', fail=True, config=[{'name': 'hn-br0'}, {'name': 'hn-br0', 'mtu': 1400}])
    assert 'listed twice' in result['msg']
    assert link('hn-br0') is None


def test_existing_link_of_another_kind_is_refused_never_deleted():
    sh('ip', 'link', 'add', 'hn-br0', 'type', 'veth', 'peer', 'name', 'hn-br0p')
    for state in ('merged', 'replaced', 'overridden', 'deleted'):
        result = run_module('bridge', fail=True, state=state, config=[{'name': 'hn-br0'}])
        assert 'not created by hostnet.provision' in result['msg']
    assert link('hn-br0', details=True)['linkinfo']['info_kind'] == 'veth'


def test_ipv6_prefix_change_in_merged_replaces_the_address():
    run_module('bridge', config=[BR])
    result = run_module('bridge', config=[{'name': 'hn-br0', 'addresses': ['2001:db8:100::1/48']}])
    assert result['commands'] == ['remove address 2001:db8:100::1/64 from hn-br0',
                                  'add address 2001:db8:100::1/48 to hn-br0',
                                  'nftables: bridge hn-br0: add bridge_nets6 hn-br0 . 2001:db8:100::/48, '
                                  'delete bridge_nets6 hn-br0 . 2001:db8:100::/64']
    assert addresses('hn-br0') == ['198.51.100.1/24', '2001:db8:100::1/48']
    assert run_module('bridge', config=[{'name': 'hn-br0', 'addresses': ['2001:db8:100::1/48']}])['changed'] is False


def test_forward_delay_checked_against_stp_already_on():
    run_module('bridge', config=[BR])  # stp on
    result = run_module('bridge', fail=True, config=[{'name': 'hn-br0', 'forward_delay': 100}])
    assert result['field'] == 'forward_delay' and 'out of range with stp on' in result['msg']
    assert link('hn-br0', details=True)['linkinfo']['info_data']['forward_delay'] == 400


def test_bridges_deleted_in_one_kernel_batch_and_nothing_else_with_them():
    """A run that deletes several bridges of a namespace asks the kernel
    once (a group delete, one synchronisation for them all, not one each);
    a link the collection did not make, even one in the group the run tries
    first, stays as it was."""
    from ansible_collections.hostnet.provision.plugins.module_utils import _netlink, _rtnl
    from ansible_collections.hostnet.provision.plugins.module_utils._adapter import CallContext
    from ansible_collections.hostnet.provision.plugins.module_utils._engine import reconcile
    from ansible_collections.hostnet.provision.plugins.module_utils._kind_bridge import BridgeKind

    class Watched(_netlink.Kernel):
        """The kernel session, noting the link deletions it asks for."""
        deletes = []

        def _rt(self, spec, action, msg_type, body, *args, **kwargs):
            if msg_type == _rtnl.RTM_DELLINK:
                self.deletes.append(action)
            return super()._rt(spec, action, msg_type, body, *args, **kwargs)

    names = ['hn-gd%d' % n for n in range(3)]
    run_module('bridge', config=[{'name': name, 'addresses': ['198.51.100.%d/28' % (16 * n + 1)]}
                                 for n, name in enumerate(names)])
    sh('ip', 'link', 'add', 'hn-foreign', 'type', 'bridge')
    sh('ip', 'link', 'set', 'hn-foreign', 'group', str(_netlink._BATCH_GROUP))
    ctx = CallContext(check_mode=False, warn=lambda msg: None)
    with Watched() as kernel:
        result = reconcile(BridgeKind(kernel, ctx), [{'name': name} for name in names], 'deleted', ctx)
    assert [c for c in result.commands if c.startswith('delete')] == ['delete bridge %s' % n for n in names]
    assert Watched.deletes == ['delete links'], Watched.deletes
    left = sys_class_net()
    assert not any(name in left for name in names)
    assert link('hn-foreign')['group'] == str(_netlink._BATCH_GROUP)
    ruleset = sh('nft', 'list', 'ruleset').stdout
    assert 'hn-gd' not in ruleset
    # One bridge alone is deleted as before, by its index.
    run_module('bridge', config=[{'name': 'hn-gd9'}])
    Watched.deletes = []
    with Watched() as kernel:
        reconcile(BridgeKind(kernel, ctx), [{'name': 'hn-gd9'}], 'deleted', ctx)
    assert Watched.deletes == ['delete link'] and 'hn-gd9' not in sys_class_net()


def test_a_link_that_joins_the_batch_group_meanwhile_is_never_deleted_with_it():
    """Another tool puts its link in the group while the run gathers its
    bridges there: the run reads the group back before the delete, finds a
    stranger, puts its bridges back and deletes the first alone; the next
    gathers the others in another group."""
    from ansible_collections.hostnet.provision.plugins.module_utils import _netlink, _rtnl
    from ansible_collections.hostnet.provision.plugins.module_utils._adapter import CallContext
    from ansible_collections.hostnet.provision.plugins.module_utils._engine import reconcile
    from ansible_collections.hostnet.provision.plugins.module_utils._kind_bridge import BridgeKind

    class Raced(_netlink.Kernel):
        """The kernel session; the other tool acts right after the run's
        first 'set group' request."""
        actions = []

        def _rt(self, spec, action, msg_type, body, *args, **kwargs):
            out = super()._rt(spec, action, msg_type, body, *args, **kwargs)
            if action == 'set group' and 'set group' not in self.actions:
                sh('ip', 'link', 'set', 'hn-foreign', 'group', str(_netlink._BATCH_GROUP))
            self.actions.append(action)
            return out

    names = ['hn-gd%d' % n for n in range(3)]
    run_module('bridge', config=[{'name': name} for name in names])
    sh('ip', 'link', 'add', 'hn-foreign', 'type', 'bridge')
    ctx = CallContext(check_mode=False, warn=lambda msg: None)
    with Raced() as kernel:
        reconcile(BridgeKind(kernel, ctx), [{'name': name} for name in names], 'deleted', ctx)
    # The first bridge goes alone; the two others together, in a group
    # nothing else is in.
    deletes = [a for a in Raced.actions if a.startswith('delete')]
    assert deletes == ['delete link', 'delete links'], Raced.actions
    left = sys_class_net()
    assert 'hn-foreign' in left and not any(name in left for name in names)
    assert link('hn-foreign')['group'] == str(_netlink._BATCH_GROUP)
