# -*- coding: utf-8 -*-
# Copyright: contributors to hostnet.provision
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Planning helpers for resource kinds that keep state in the collection's
nftables tables (bridge, portmap).

Private to the hostnet.provision collection.

``NftPlanner`` gives a kind, for one module run: the tables of each
namespace (read once), operations that change elements in one atomic
transaction (with the inverse transaction as undo), and the forwarding
sysctls published ports and masquerade depend on (checked; changed only
when the user allowed it with ``enable_forwarding``).
"""

from __future__ import annotations

from ansible_collections.hostnet.provision.plugins.module_utils import _nft
from ansible_collections.hostnet.provision.plugins.module_utils import _nsfs
from ansible_collections.hostnet.provision.plugins.module_utils import _procfs
from ansible_collections.hostnet.provision.plugins.module_utils._engine import Op
from ansible_collections.hostnet.provision.plugins.module_utils._errors import ValidationError

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
        deleted = []

        def run():
            tables = self.tables(netns, resource)
            gone = list(delete)
            if owner is not None:
                wanted = set(add) | set(keep)
                gone.extend(e for e in owner(tables) if e not in wanted and e not in gone)
            if repair:
                tables.rewrite_program()
            tables.apply(delete=gone, add=add, action=what)
            deleted[:] = gone

        def undo():
            self.tables(netns, resource).apply(delete=add, add=deleted or delete, action='undo: %s' % what)
        return Op(resource, text, run, undo)

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


def _where(netns):
    return '' if not netns else ' (netns %s)' % netns
