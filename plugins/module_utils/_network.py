# -*- coding: utf-8 -*-
# Copyright: contributors to hostnet.provision
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Bridge networks in one call: read, plan, then every kind in order.

Private to the hostnet.provision collection. What the ``network`` module
(and through it the ``bridge_network`` and ``tenant_networks`` roles) does
on the target, in one process and one kernel session:

1. read the host's namespace once (links, routes, namespaces, what the
   collection manages, what the route clash check decides on);
2. plan every network (``_topology.plan_networks``): every problem of every
   network is found before anything changes, and refused all at once;
3. normalise each step's resources through the single-purpose module's own
   argument spec (the caller's ``normalize``), and plan the resolvers' files;
4. run the steps in the order a host needs them - namespaces, bridges,
   endpoints, the bridges' policy again (their ports now exist), published
   ports, resolvers, then what is removed: namespaces before their veth ends
   (the kernel destroys those in one batch), then bridges. The steps share
   one undo list: a failure undoes every kernel operation of the call;
5. keep forwarding on across reboots (a sysctl file) when asked.

The result holds what changed, not every resource: counts per step, the
operations, and before/after only for the resources that changed.
"""

from __future__ import annotations

import functools
import os
import tempfile

from ansible_collections.hostnet.provision.plugins.module_utils import _dns, _intent, _record
from ansible_collections.hostnet.provision.plugins.module_utils._engine import reconcile, rollback
from ansible_collections.hostnet.provision.plugins.module_utils._errors import ApplyError, HostnetError
from ansible_collections.hostnet.provision.plugins.module_utils._info import collect
from ansible_collections.hostnet.provision.plugins.module_utils._kind_bridge import BridgeKind
from ansible_collections.hostnet.provision.plugins.module_utils._kind_netns import NetnsKind
from ansible_collections.hostnet.provision.plugins.module_utils._kind_portmap import PortmapKind
from ansible_collections.hostnet.provision.plugins.module_utils._kind_veth import VethKind
from ansible_collections.hostnet.provision.plugins.module_utils._topology import plan_networks

__all__ = ['converge', 'sysctl_content']

# What the plan reads of the host: its own namespace only (endpoints'
# addresses come through their veths), every table for the clash check.
_GATHER = ['namespaces', 'links', 'routes', 'managed', 'clash']


def sysctl_content(families):
    """The persistent forwarding file: only the families the networks use."""
    lines = ['# Managed by hostnet.provision: its bridges route and NAT their subnets.']
    if 4 in families:
        lines.append('net.ipv4.ip_forward = 1')
    if 6 in families:
        lines.append('net.ipv6.conf.all.forwarding = 1')
    return '\n'.join(lines) + '\n'


def _steps(plan, forwarding, check_mode):
    """(label, record name, kind factory, config, state), in the order they run."""
    bridge = functools.partial(BridgeKind, enable_forwarding=forwarding)
    portmap = functools.partial(PortmapKind, enable_forwarding=forwarding)
    # Without nft bridge meta, icc: false lists the bridge's ports. The
    # endpoint step lists the ports it makes; the bridges' policy runs again
    # after it for ports attached otherwise meanwhile. In check mode nothing
    # was attached, and a bridge still to be made would be predicted twice.
    again = not check_mode and any(b.get('icc') is False for b in plan['bridges'])
    return [
        ('namespaces', 'netns', NetnsKind, plan['netns'], 'merged'),
        ('bridges', 'bridge', bridge, plan['bridges'], 'replaced'),
        ('endpoints', 'veth', VethKind, plan['veths'], 'replaced'),
        ('bridge policy', 'bridge', bridge, plan['bridges'] if again else [], 'replaced'),
        ('published ports', 'portmap', portmap, plan['ports'], 'replaced'),
        ('unpublished ports', 'portmap', functools.partial(PortmapKind, enable_forwarding=False),
         plan['ports_absent'], 'deleted'),
        ('removed namespaces', 'netns', NetnsKind, plan['netns_absent'], 'deleted'),
        ('removed endpoints', 'veth', VethKind, plan['veths_absent'], 'deleted'),
        ('removed networks', 'bridge', functools.partial(BridgeKind, enable_forwarding=False),
         plan['bridges_absent'], 'deleted'),
    ]


def converge(kernel, ctx, networks, normalize, bridge_prefix='br-', veth_prefix='ve', policy=None, purge=False,
             forwarding=True, sysctl_file=None, dns_paths=None, record=None, diff=False):
    """Make the host's bridge networks what ``networks`` says.

    ``normalize(kind, config)``: the single-purpose module's argument spec
    applied to the entries derived for it (defaults, types). Raises
    ``_topology.PlanError`` (every problem, nothing changed) or HostnetError.
    """
    info = collect(kernel, ctx, netns=[None], sections=_GATHER, process_namespaces_too=False)
    defaults = {'masquerade': True, 'icc': True, 'purge': purge}
    defaults.update(policy or {})
    plan = plan_networks(networks, info, prefix=bridge_prefix, veth_prefix=veth_prefix, defaults=defaults)
    for warning in plan['warnings']:
        ctx.warn(warning)
    if not ctx.check_mode:
        # A published port's bridge hint (the bridge and its ports, as the
        # earlier steps will make them) serves check mode only; with a
        # thousand endpoints it is a thousand names per mapping to check.
        plan['ports'] = [dict((k, v) for k, v in port.items() if k != 'bridge') for port in plan['ports']]

    # Every step's entries are checked (argument spec, dual-stack mappings
    # split) before the first step changes anything.
    steps = []
    for label, name, factory, config, state in _steps(plan, forwarding, ctx.check_mode):
        if config:
            kind = factory(kernel, ctx)
            config = normalize(name, config)
            steps.append((label, name, factory, kind, kind.expand(config) if hasattr(kind, 'expand') else config,
                          state))
    # The resolvers' files are planned (and their entries checked) before the
    # first kernel change too; they are written after the endpoints exist.
    dns_changes, dns_out, dns_diff, paths = [], None, None, None
    if plan['dns']:
        paths = dict(dns_paths or {})
        paths['supervisor'] = _dns.supervisor(paths.get('supervisor', 'auto'))
        dns_config = normalize('dns', plan['dns'])
        dns_changes, restart, stopped, dns_diff = _dns.plan(_dns.normalize(dns_config), paths)
        dns_out = {'supervisor': paths['supervisor'], 'restart': restart, 'stopped': stopped,
                   'resolvers': [d['name'] for d in dns_config if d['resolver'] and d['state'] == 'present'],
                   'commands': _dns.summary(dns_changes), 'networks': len(plan['dns'])}

    content = sysctl_content(plan['families'])
    write_sysctl = bool(forwarding and sysctl_file and plan['bridges'] and _read(sysctl_file) != content)

    out = {'changed': False, 'commands': [], 'steps': [], 'report': plan['report'], 'families': plan['families']}
    diffs = []
    done = []  # every kernel operation of the call, for the undo of a failure
    for label, name, factory, kind, config, state in steps:
        if label.startswith('removed') and dns_out is not None:
            _apply_dns(ctx, dns_changes, paths, dns_out, dns_diff, out, diffs if diff else None)
            dns_out = None
        try:
            result = reconcile(kind, config, state, ctx, done=done)
        except HostnetError as err:
            if not done or ctx.check_mode:
                raise
            # A later step refused what only the kernel as it is now can
            # tell (its own checks run when it plans): the earlier steps'
            # operations are undone, as for a failure while applying.
            failure = err if isinstance(err, ApplyError) else rollback(err, done)
            # The undo may have deleted namespaces an earlier step made:
            # nothing of them stays in the records either.
            _intent.sweep(kernel)
            raise failure from None
        if not ctx.check_mode and _record.enabled(record):
            _record.record_run(name, factory(kernel, ctx), config)
        if label == 'removed namespaces' and not ctx.check_mode:
            # Their veth pairs go with them, in the kernel's own batch: the
            # next step deletes only what is left after that.
            kernel.wait_gone(None, [v['name'] for v in plan['veths_absent'] if not v.get('netns')])
        out['steps'].append({'step': label, 'resources': len(config),
                             'changed': max(len(result.before), len(result.after)),
                             'commands': len(result.commands)})
        out['commands'].extend(result.commands)
        out['changed'] = out['changed'] or result.changed
        if diff and result.changed:
            d = result.diff()
            d.update(before_header='%s (before)' % label, after_header='%s (after)' % label)
            diffs.append(d)
    if dns_out is not None:
        _apply_dns(ctx, dns_changes, paths, dns_out, dns_diff, out, diffs if diff else None)
    if write_sysctl:
        before = _read(sysctl_file)
        if not ctx.check_mode:
            _write(sysctl_file, content)
        out['commands'].append('write %s' % sysctl_file)
        out['changed'] = True
        if diff:
            diffs.append({'before_header': sysctl_file, 'after_header': sysctl_file, 'before': before or '',
                          'after': content})
    if diff:
        out['diff'] = diffs
    return out


def _apply_dns(ctx, changes, paths, dns_out, dns_diff, out, diffs):
    """The resolvers' step: after the published ports, before any removal."""
    if changes and not ctx.check_mode:
        _dns.apply(changes, paths)
    out['dns'] = dns_out
    out['steps'].append({'step': 'resolvers', 'resources': dns_out.pop('networks'),
                         'changed': len(changes), 'commands': len(dns_out['commands'])})
    out['commands'].extend(dns_out['commands'])
    out['changed'] = out['changed'] or bool(changes)
    if diffs is not None and changes:
        diffs.append(dns_diff)


def _read(path):
    try:
        with open(path) as handle:
            return handle.read()
    except FileNotFoundError:
        return None
    except OSError as err:
        raise HostnetError('%s cannot be read: %s' % (path, err.strerror), field='sysctl_file', value=path)


def _write(path, content):
    """Atomically, root-owned 0644, as a sysctl.d file must be."""
    directory = os.path.dirname(path) or '.'
    try:
        os.makedirs(directory, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=directory, prefix='.hostnet-')
        try:
            with os.fdopen(fd, 'w') as handle:
                handle.write(content)
            os.chmod(tmp, 0o644)
            os.replace(tmp, path)
        except BaseException:
            os.unlink(tmp)
            raise
    except OSError as err:
        raise HostnetError('%s cannot be written: %s' % (path, err.strerror), field='sysctl_file', value=path)
