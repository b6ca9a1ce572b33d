# -*- coding: utf-8 -*-
# Copyright: contributors to hostnet.provision
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Planning helpers for resource kinds that keep state in the collection's
nftables tables (bridge, portmap).

Private to the hostnet.provision collection.

``NftPlanner`` gives a kind, for one module run: the tables of each
namespace (read once), operations that change elements atomically (with
the inverse change as undo; the changes a run plans in one namespace go in
one transaction, see ``change_op``), and the forwarding
sysctls published ports and masquerade depend on (checked; changed only
when the user allowed it with ``enable_forwarding``).
"""

from __future__ import annotations

from ansible_collections.hostnet.provision.plugins.module_utils import _nft
from ansible_collections.hostnet.provision.plugins.module_utils import _nsfs
from ansible_collections.hostnet.provision.plugins.module_utils import _procfs
from ansible_collections.hostnet.provision.plugins.module_utils._engine import Op
from ansible_collections.hostnet.provision.plugins.module_utils._errors import HostnetError, ValidationError

__all__ = ['NftPlanner', 'FORWARDING_SYSCTL']

FORWARDING_SYSCTL = {
    4: ('net', 'ipv4', 'ip_forward'),
    6: ('net', 'ipv6', 'conf', 'all', 'forwarding'),
}


class _NoTables:
    """Stand-in for a namespace that does not exist yet (check mode)."""

    def intact(self):
        return True

    def elements(self, family=None, set_name=None):
        return []

    def get(self, family, set_name, key):
        return None

    def grouped(self, key_of):
        return {}


class NftPlanner:
    """The nftables side of one module run."""

    def __init__(self, kernel, ctx, enable_forwarding=False):
        self.kernel = kernel
        self.ctx = ctx
        self.enable_forwarding = enable_forwarding
        self._tables = {}
        self._repair_planned = set()
        self._forwarding = set()
        self._warned = set()
        self._pending = {}  # netns key -> the changes planned there, in plan order (see change_op)
        self._change_of = {}  # operation -> its change

    @staticmethod
    def available():
        return _nft.available()

    @staticmethod
    def require():
        _nft.require()

    def warn_once(self, key, message):
        if key not in self._warned:
            self._warned.add(key)
            self.ctx.warn(message)

    def tables(self, netns, resource=None):
        """The collection's tables in a namespace (a stand-in if it is missing)."""
        key = netns or ''
        tables = self._tables.get(key)
        if tables is None:
            if not self.kernel.exists(netns):
                return _NoTables()
            tables = self._tables[key] = _nft.Tables(netns, resource)
        return tables

    def bridge_meta(self, netns):
        return _nft.bridge_meta_supported(netns if self.kernel.exists(netns) else None)

    def change_op(self, netns, resource, what, delete=(), add=(), summary=False, repair=None, owner=None,
                  keep=()):
        """One operation changing elements atomically, or None if nothing to do.

        ``repair``: the tables' program was found damaged (a rule or chain
        deleted): rewrite it (once per namespace and run); None asks the
        tables. ``owner(tables)``: the elements the resource owns when the
        operation runs; those not in ``add`` or ``keep`` (what it should own)
        are deleted too (leftovers of an earlier incarnation). The text lists
        the elements, or only ``what`` (summary).
        """
        delete, add = sorted(delete, key=repr), sorted(add, key=repr)
        key = netns or ''
        if repair is None:
            repair = not self.tables(netns).intact()
        repair = repair and key not in self._repair_planned
        if not delete and not add and not repair:
            return None
        if summary:
            parts = [what] if delete or add else []
        else:
            parts = ['%s: %s' % (what, ', '.join(['add %s' % e.describe() for e in add] +
                                                 ['delete %s' % e.describe() for e in delete]))] \
                if delete or add else []
        if repair:
            self._repair_planned.add(key)
            parts.append('restore the rules of tables inet/bridge %s' % _nft.TABLE)
        text = 'nftables%s: %s' % (_where(netns), '; '.join(parts))
        change = _Change(what, delete, add, owner, keep, repair)
        self._pending.setdefault(key, []).append(change)

        def run():
            change.ran = True
            if change.applied:
                return  # in the transaction of an earlier operation of this run
            tables = self.tables(netns, resource)
            batch = [c for c in self._pending[key] if not c.applied]
            try:
                _apply(tables, batch, change)
            except HostnetError:
                if len(batch) == 1:
                    raise
                # One of the batch is refused: each goes alone, so that the
                # error names the change it belongs to.
                _apply(tables, [change], change)

        def undo():
            tables = self.tables(netns, resource)
            # This change, and those its transaction made whose operations
            # never ran (a failure came first), newest first.
            todo = [c for c in self._pending[key] if c is change or (c.leader is change and not c.ran)]
            for c in reversed(todo):
                if c.applied:
                    tables.apply(delete=c.add, add=c.gone, action='undo: %s' % c.what)
                    c.applied = False
        op = Op(resource, text, run, undo)
        self._change_of[op] = change
        return op

    def applied(self, op):
        """Whether the change of OP (a change_op; None: no change) is made,
        by OP's run or in the transaction of an earlier one."""
        change = self._change_of.get(op)
        return change is None or change.applied

    def forwarding_ops(self, netns, versions, resource):
        """Check that forwarding is on for each IP version in ``versions``;
        if not, plan turning it on (enable_forwarding) or refuse."""
        ops = []
        for version in sorted(versions):
            key = (netns or '', version)
            if key in self._forwarding:
                continue
            self._forwarding.add(key)
            parts = FORWARDING_SYSCTL[version]
            if not self.kernel.exists(netns):
                # Check mode, namespace made earlier in the play: it starts off.
                value = '0'
            else:
                value = _procfs.sysctl_get(netns, parts, resource)
            if value == '1':
                continue
            label = _procfs.sysctl_label(parts)
            if not self.enable_forwarding:
                raise ValidationError(
                    '%s: IPv%d forwarding is off in %s (%s=%s), so nothing would be forwarded to or from the '
                    'bridges; set enable_forwarding: true to let the module turn it on, or turn it on yourself '
                    '(e.g. with ansible.posix.sysctl)' % (resource, version, _nsfs.spec_label(netns), label, value),
                    resource, 'enable_forwarding', False)
            if version == 6:
                self.warn_once(('ra', key), 'IPv6 forwarding turned on in %s: interfaces with accept_ra=1 now '
                                            'ignore router advertisements (use accept_ra=2 on an uplink that '
                                            'needs them)' % _nsfs.spec_label(netns))
            ops.append(Op(resource, 'enable IPv%d forwarding in %s (%s=1)' % (version, _nsfs.spec_label(netns),
                                                                              label),
                          _sysctl(netns, parts, '1', resource), _sysctl(netns, parts, value or '0', resource)))
        return ops


def _sysctl(netns, parts, value, resource):
    return lambda: _procfs.sysctl_set(netns, parts, value, resource)


class _Change:
    """One change_op's elements, and whether (and by whose run) it was made."""

    __slots__ = ('what', 'delete', 'add', 'owner', 'keep', 'repair', 'gone', 'applied', 'ran', 'leader')

    def __init__(self, what, delete, add, owner, keep, repair):
        self.what, self.delete, self.add, self.owner, self.keep, self.repair = what, delete, add, owner, keep, repair
        self.gone = list(delete)
        self.applied = self.ran = False
        self.leader = None


def _apply(tables, batch, leader):
    """The changes of BATCH, in order, as one transaction: what the tables
    hold after them all, diffed with what they hold now. One transaction
    for a hundred published ports costs about what one costs; a transaction
    each would cost a hundred."""
    current = dict((e.ident(), e) for e in tables.elements())
    net = dict(current)
    for change in batch:
        gone = list(change.delete)
        if change.owner is not None:
            wanted = set(change.add) | set(change.keep)
            gone.extend(e for e in change.owner(tables) if e not in wanted and e not in gone)
        change.gone = gone
        for e in gone:
            net.pop(e.ident(), None)
        for e in change.add:
            net[e.ident()] = e
    if any(change.repair for change in batch):
        tables.rewrite_program()
    action = batch[0].what if len(batch) == 1 else '%s and %d more changes' % (leader.what, len(batch) - 1)
    tables.apply(delete=[e for ident, e in current.items() if net.get(ident) != e],
                 add=[e for ident, e in net.items() if current.get(ident) != e], action=action)
    for change in batch:
        change.applied, change.leader = True, leader


def _where(netns):
    return '' if not netns else ' (netns %s)' % netns
