# -*- coding: utf-8 -*-
"""What one run reads once: a resource read earlier in the run is read again
only after a write that reaches it.

A role run plans every endpoint, then reconciles and records them; with a
thousand endpoints, one endpoint more must not make the run read the other
999 again. These tests write through the kernel and count real re-reads of
veth pairs and namespaces: the pair or namespace written is read again (its
new state, from the kernel), the others are not.
"""

from __future__ import annotations

from helpers import sh

from ansible_collections.hostnet.provision.plugins.module_utils._adapter import CallContext
from ansible_collections.hostnet.provision.plugins.module_utils._kind_netns import NetnsKind
from ansible_collections.hostnet.provision.plugins.module_utils._kind_veth import VethKind
from ansible_collections.hostnet.provision.plugins.module_utils._engine import reconcile
from ansible_collections.hostnet.provision.plugins.module_utils._netlink import Kernel


def _pair(n):
    return {'name': 'vemm%d' % n, 'peer': {'name': 'eth0', 'netns': 'mm%d' % n, 'addresses': ['198.51.100.%d/26' % (n + 1)]}}


class Counting(VethKind):
    """The veth kind, counting the reads that reach the kernel."""
    reads = None

    def _read(self, key):
        self.reads.append(key[1])
        return super()._read(key)


def _made(kernel, ctx, namespaces, pairs):
    """NAMESPACES namespaces and the first PAIRS pairs made; the counting
    kind, its reads reset."""
    reconcile(NetnsKind(kernel, ctx), [{'name': 'mm%d' % n} for n in range(namespaces)], 'merged', ctx)
    kind = Counting(kernel, ctx)
    kind.reads = []
    reconcile(kind, [_pair(n) for n in range(pairs)], 'merged', ctx)
    kind.reads = []
    return kind


def test_a_write_to_one_pair_leaves_the_other_pairs_read():
    ctx = CallContext(check_mode=False, warn=lambda msg: None)
    with Kernel() as kernel:
        kind = _made(kernel, ctx, 4, 3)
        # Read back: nothing was written since the pairs were made and read.
        assert [kind.current((None, 'vemm%d' % n))['peer']['addresses'] for n in range(3)] == \
            [['198.51.100.%d/26' % (n + 1)] for n in range(3)]
        assert kind.reads == []
        # A new pair (its namespace made first): only it is read, twice
        # (plan, then its after state); the three others not at all.
        reconcile(kind, [_pair(n) for n in range(4)], 'merged', ctx)
        assert sorted(set(kind.reads)) == ['vemm3'], kind.reads
        # A change to one pair made outside: the run does not see it
        # until it writes there itself (what it read stays its view)...
        sh('ip', 'address', 'add', '198.51.100.40/26', 'dev', 'eth0', netns='mm1')
        kind.reads = []
        assert kind.current((None, 'vemm1'))['peer']['addresses'] == ['198.51.100.2/26']
        # ...and an address the run adds to that pair's peer makes its view
        # stale: read again (for the after state), with the outside change.
        wanted = dict(_pair(1), peer=dict(_pair(1)['peer'], addresses=['198.51.100.2/26', '198.51.100.41/26']))
        reconcile(kind, [wanted], 'merged', ctx)
        assert kind.reads == ['vemm1'], kind.reads
        kind.reads = []
        assert sorted(kind.current((None, 'vemm1'))['peer']['addresses']) == \
            ['198.51.100.2/26', '198.51.100.40/26', '198.51.100.41/26']
        assert [kind.current((None, 'vemm%d' % n))['name'] for n in (0, 2, 3)] == ['vemm0', 'vemm2', 'vemm3']
        assert kind.reads == []
    # A new run reads the kernel again.
    with Kernel() as kernel:
        kind = Counting(kernel, ctx)
        kind.reads = []
        kind.current((None, 'vemm0'))
        assert kind.reads == ['vemm0']


def test_a_deleted_link_makes_every_view_stale():
    ctx = CallContext(check_mode=False, warn=lambda msg: None)
    with Kernel() as kernel:
        kind = _made(kernel, ctx, 2, 2)
        # A deletion may reach other links (a veth's peer elsewhere, a
        # bridge's ports): every pair is read again after it.
        reconcile(kind, [{'name': 'vemm1'}], 'deleted', ctx)
        kind.reads = []
        assert kind.current((None, 'vemm0')) is not None and kind.current((None, 'vemm1')) is None
        assert sorted(kind.reads) == ['vemm0', 'vemm1']


def test_one_namespace_named_two_ways_is_one_namespace_for_staleness():
    ctx = CallContext(check_mode=False, warn=lambda msg: None)
    path = '/run/netns/mm0'
    with Kernel() as kernel:
        kind = _made(kernel, ctx, 1, 1)
        assert kind.current((None, 'vemm0'))['peer']['addresses'] == ['198.51.100.1/26'] and kind.reads == []
        index = kernel.link(path, 'eth0')['index']
        assert kernel.addresses(path, index) == ['198.51.100.1/26']  # the path's own view, read
        # A write through the name makes the path's view stale, and one
        # through the path the pair's memo read by name.
        kernel.addr_add('mm0', 'test', index, '198.51.100.50/26')
        assert sorted(kernel.addresses(path, index)) == ['198.51.100.1/26', '198.51.100.50/26']
        kernel.addr_add(path, 'test', index, '198.51.100.51/26')
        assert sorted(kind.current((None, 'vemm0'))['peer']['addresses']) == \
            ['198.51.100.1/26', '198.51.100.50/26', '198.51.100.51/26']
        assert kind.reads == ['vemm0']
