# -*- coding: utf-8 -*-
# Copyright: contributors to hostnet.provision
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""hostnet-restore: re-create the recorded desired state, without Ansible.

Private to the hostnet.provision collection.

Runs the modules' own engine (pyroute2 and libnftables only) over the
records the modules wrote (see _record): namespaces, bridges with their
nftables policy, veths, macvlans, VXLAN devices (each with its addresses
and routes), published ports, then VXLAN peers. Each resource is applied
on its own with ``state: replaced``, so one that fails (its parent NIC is
gone, say) is reported and the others are still restored. Bridges are
applied a second time once their ports exist (their nftables policy may
list the ports), reported only when that changes something. One line per
resource on stdout (the journal, under systemd)::

    changed bridge hn-br0: create bridge hn-br0; add address 198.51.100.1/24 to hn-br0
    ok veth ve-a
    failed macvlan mv0: macvlan mv0: parent 'eth9' does not exist
    skipped veth ve-c@ctr: netns ctr was adopted from a process; it comes back with its process

Exit status: 0 all restored (or, with --check, no drift); 1 a resource or
record failed; 2 (--check only) drift found: a ``drift`` line names each
resource that a restore would change, with the operations.
"""

from __future__ import annotations

import argparse
import sys

from ansible_collections.hostnet.provision.plugins.module_utils import _deps
from ansible_collections.hostnet.provision.plugins.module_utils import _record
from ansible_collections.hostnet.provision.plugins.module_utils._engine import Context, reconcile
from ansible_collections.hostnet.provision.plugins.module_utils._errors import HostnetError
from ansible_collections.hostnet.provision.plugins.module_utils._lock import host_lock

__all__ = ['main', 'restore']

EXIT_OK, EXIT_FAILED, EXIT_DRIFT = 0, 1, 2
# Kinds whose constructor takes enable_forwarding: the recorded state was
# accepted with forwarding on (masquerade, published ports), so the restore
# turns it back on where a bridge or port needs it.
_FORWARDING = ('bridge', 'portmap')


def _kind_class(name):
    from ansible_collections.hostnet.provision.plugins.module_utils._kinds import KINDS
    return KINDS[name]


def _label(kind, item):
    try:
        return kind.item_label(item)
    except (KeyError, TypeError, AttributeError):
        return repr(item)


def _apply_one(kind_name, item, check, out):
    """Restore one resource; return 'ok', 'changed', 'drift' or 'failed'."""
    from ansible_collections.hostnet.provision.plugins.module_utils._netlink import Kernel

    warnings = []
    ctx = Context(check_mode=check, warn=warnings.append)
    cls = _kind_class(kind_name)
    label = '%s %r' % (kind_name, item)
    try:
        with Kernel() as kernel:
            kind = cls(kernel, ctx, enable_forwarding=True) if kind_name in _FORWARDING else cls(kernel, ctx)
            label = '%s %s' % (kind_name, _label(kind, item))
            config = [item]
            if hasattr(kind, 'expand'):
                config = kind.expand(config)
            result = reconcile(kind, config, 'replaced', ctx)
    except HostnetError as err:
        out('failed %s: %s' % (label, err))
        return 'failed'
    except OSError as err:
        out('failed %s: %s' % (label, err))
        return 'failed'
    for text in warnings:
        out('warning %s: %s' % (label, text))
    if not result.changed:
        out('ok %s' % label)
        return 'ok'
    status = 'drift' if check else 'changed'
    out('%s %s: %s' % (status, label, '; '.join(result.commands)))
    return status


def restore(state_dir=None, check=False, out=None):
    """Restore (or, with check, compare) every record; return the exit status."""
    out = out or _stdout
    counts = {}

    def count(status):
        counts[status] = counts.get(status, 0) + 1

    try:
        records = _record.load_all(state_dir)
    except HostnetError as err:
        out('failed %s' % err)
        return EXIT_FAILED
    if not records:
        out('nothing recorded in %s' % _record.state_dir(state_dir))
    # Bridges again once their ports exist (before the ports are published):
    # on kernels without nft bridge meta support, icc: false lists the ports.
    # Reported only when it changes something.
    again = [(k, n, p, r) for k, n, p, r in records if k == 'bridge' and not isinstance(r, HostnetError)]
    at = next((i for i, r in enumerate(records) if r[0] in ('portmap', 'vxlan_peer')), len(records))
    records = records[:at] + [('bridge again',) + r[1:] for r in again] + records[at:]
    adopted = set()
    for kind_name, netns, path, rec in records:
        quiet = kind_name == 'bridge again'
        kind_name = kind_name.split()[0]
        if isinstance(rec, HostnetError):
            out('failed %s' % rec)
            count('failed')
            continue
        for item in rec['config']:
            where = item.get('netns') or netns
            if kind_name == 'netns' and item.get('pid') is not None:
                adopted.add(item.get('name'))
                out('skipped netns %s: adopted from process %s; it comes back with its process, not from a record'
                    % (item.get('name'), item.get('pid')))
                count('skipped')
                continue
            if kind_name != 'netns' and where in adopted:
                if quiet:
                    continue
                out('skipped %s in netns %s: that namespace was adopted from a process' % (kind_name, where))
                count('skipped')
                continue
            if quiet:
                lines = []
                status = _apply_one(kind_name, dict(item), check, lines.append)
                if status != 'ok':
                    for line in lines:
                        out(line)
                    count(status)
                continue
            count(_apply_one(kind_name, dict(item), check, out))
    out('hostnet-restore%s: %s' % (' --check' if check else '', ', '.join(
        '%d %s' % (n, s) for s, n in sorted(counts.items())) or 'nothing to do'))
    if counts.get('failed'):
        return EXIT_FAILED
    if counts.get('drift'):
        return EXIT_DRIFT
    return EXIT_OK


def _parser():
    p = argparse.ArgumentParser(
        prog='hostnet-restore',
        description='Re-create the networks recorded by hostnet.provision (namespaces, links, addresses, routes, '
                    'nftables policy, published ports, VXLAN peers), in dependency order.')
    p.add_argument('--check', action='store_true',
                   help='change nothing; report each resource that differs from its record ("drift"); exit 2 on drift')
    p.add_argument('--state-dir', default=None,
                   help='directory of the records (default: $HOSTNET_STATE_DIR or %s)' % _record.DEFAULT_STATE_DIR)
    p.add_argument('--lock-timeout', type=int, default=None,
                   help='seconds to wait for another run holding the host lock (default: $HOSTNET_LOCK_TIMEOUT or 300)')
    return p


def _stdout(line):
    sys.stdout.write(line + '\n')
    sys.stdout.flush()


def main(argv=None):
    args = _parser().parse_args(argv)
    out = _stdout
    if not _deps.HAS_PYROUTE2:
        out('failed: the Python library pyroute2 is not installed (python3-pyroute2)')
        return EXIT_FAILED
    try:
        with host_lock(args.lock_timeout, what='hostnet-restore'):
            return restore(args.state_dir, args.check, out)
    except HostnetError as err:
        out('failed: %s' % err)
        return EXIT_FAILED
