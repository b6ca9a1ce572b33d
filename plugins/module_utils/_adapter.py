# -*- coding: utf-8 -*-
# Copyright: contributors to hostnet.provision
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What every resource module does with its AnsibleModule, in one place.

Private to the hostnet.provision collection. The module object is passed
in (duck-typed): this file does not import AnsibleModule, so the engine
below it stays usable without Ansible.
"""

from __future__ import annotations

import os

from ansible_collections.hostnet.provision.plugins.module_utils import _deps
from ansible_collections.hostnet.provision.plugins.module_utils._engine import STATES, Context, reconcile
from ansible_collections.hostnet.provision.plugins.module_utils._errors import (
    ApplyError,
    HostnetError,
    LinkNotFound,
    NamespaceNotFound,
)

__all__ = ['CallContext', 'RUN_ARGS', 'STATE_ARG', 'run_resource_module', 'run_info_module', 'run_probe_module',
           'run_network_module']

STATE_ARG = dict(type='str', default='merged', choices=list(STATES))
# Options every resource module shares besides state (doc fragment: resource).
RUN_ARGS = dict(
    record=dict(type='bool'),
    lock_timeout=dict(type='int'),
)


def _require_root(module):
    """Every module reads namespaces and nftables and most change them: root
    (CAP_SYS_ADMIN, CAP_NET_ADMIN) is needed, and the message says how."""
    if os.geteuid() != 0:
        module.fail_json(msg='the modules of hostnet.provision need root on %s (they read and change the kernel\'s '
                             'network state): run them with become: true' % _hostname())


def _require_pyroute2(module):
    _require_root(module)
    if not _deps.HAS_PYROUTE2:
        module.fail_json(
            msg='Failed to import the required Python library (pyroute2) on %s\'s Python. '
                'Install python3-pyroute2 (Debian/Ubuntu/EPEL) or "pip install pyroute2".'
                % _hostname(), exception=_deps.PYROUTE2_IMPORT_ERROR)


_ASSUMED = {'destination': 'a managed bridge holding'}


class CallContext(Context):
    """The context of one module call. In check mode, what is missing now
    but may be made by an earlier task of the play (a namespace, a bridge)
    is collected and reported as one warning for the call (``summarize``),
    not one per resource."""

    def __init__(self, check_mode=False, warn=None):
        super().__init__(check_mode, warn)
        self.assumed = []

    def tolerate_missing(self, err):
        if not self.check_mode or not isinstance(err, (NamespaceNotFound, LinkNotFound)):
            raise err
        self.assumed.append(err)

    def summarize(self):
        """One warning naming everything check mode assumed into existence."""
        if not self.assumed:
            return
        groups = {}
        for err in self.assumed:
            what = 'netns' if isinstance(err, NamespaceNotFound) else (err.field or 'link').split('.')[-1]
            values = groups.setdefault(what, [])
            if str(err.value) not in values:
                values.append(str(err.value))
        found = '; '.join('%s %s' % (_ASSUMED.get(what, what), ', '.join(values))
                          for what, values in sorted(groups.items()))
        hairpin = '; hairpin mode of the ports of those bridges is not predicted' if 'destination' in groups else ''
        self.warn('check mode: not found now: %s (assuming it will exist when this runs for real, made by an '
                  'earlier task)%s' % (found, hairpin))
        self.assumed = []


def run_resource_module(module, kind_class):
    """Reconcile ``config`` with ``state``; exit_json or fail_json once."""
    _require_pyroute2(module)
    from ansible_collections.hostnet.provision.plugins.module_utils._netlink import Kernel

    from ansible_collections.hostnet.provision.plugins.module_utils import _record
    from ansible_collections.hostnet.provision.plugins.module_utils._lock import host_lock

    ctx = CallContext(check_mode=module.check_mode, warn=module.warn)
    params = module.params
    try:
        # One run per host at a time, check mode included (consistent reads).
        with host_lock(params.get('lock_timeout')), Kernel() as kernel:
            kind = kind_class(kernel, ctx)
            config = params['config']
            if hasattr(kind, 'expand'):
                config = kind.expand(config)
            result = reconcile(kind, config, params['state'], ctx)
            if not ctx.check_mode and params['state'] != 'gathered' and _record.enabled(params.get('record')):
                try:
                    _record.record_run(_kind_name(kind), kind_class(kernel, ctx), config)
                except HostnetError as err:
                    module.fail_json(msg=str(err), changed=result.changed, commands=result.commands,
                                     field=err.field, value=err.value)
        ctx.summarize()
    except ApplyError as err:
        # Something was changed before the failure: say so, as changed.
        module.fail_json(msg=str(err), changed=bool(err.done), resource=err.resource, field=err.field,
                         value=err.value, commands=err.done, rolled_back=err.rolled_back)
    except HostnetError as err:
        module.fail_json(msg=str(err), changed=False, resource=err.resource, field=err.field,
                         value=err.value)
    out = result.as_dict()
    if hasattr(kind, 'result_extra') and result.gathered is None:
        out.update(kind.result_extra())
    if module._diff and result.gathered is None:
        out['diff'] = result.diff()
    module.exit_json(**out)


def run_network_module(module):
    """The network module: plan and apply a host's bridge networks in one call."""
    _require_pyroute2(module)
    from ansible_collections.hostnet.provision.plugins.module_utils import _dns, _network
    from ansible_collections.hostnet.provision.plugins.module_utils._lock import host_lock
    from ansible_collections.hostnet.provision.plugins.module_utils._netlink import Kernel
    from ansible_collections.hostnet.provision.plugins.module_utils._topology import PlanError

    params = module.params
    ctx = CallContext(check_mode=module.check_mode, warn=module.warn)
    dns_paths = dict((key, params['dns_%s' % key] if key != 'dnsmasq' else params['dnsmasq']) for key in _dns.DEFAULTS)
    try:
        with host_lock(params.get('lock_timeout')), Kernel() as kernel:
            out = _network.converge(
                kernel, ctx, params['networks'], _normalizer(module), bridge_prefix=params['bridge_prefix'],
                veth_prefix=params['veth_prefix'], policy=params['policy'], purge=params['purge'],
                forwarding=params['forwarding'], sysctl_file=params['sysctl_file'], dns_paths=dns_paths,
                record=params.get('record'), diff=module._diff)
        ctx.summarize()
    except PlanError as err:
        module.fail_json(msg=str(err), changed=False)
    except ApplyError as err:
        module.fail_json(msg=str(err), changed=bool(err.done), resource=err.resource, field=err.field,
                         value=err.value, commands=err.done, rolled_back=err.rolled_back)
    except HostnetError as err:
        module.fail_json(msg=str(err), changed=False, resource=err.resource, field=err.field, value=err.value)
    module.exit_json(**out)


def _normalizer(module):
    """``normalize(kind, config)`` for _network: each single-purpose module's
    own argument spec applied to the entries derived for it."""
    import copy

    from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

    from ansible_collections.hostnet.provision.plugins.module_utils import _specs

    specs = {'netns': _specs.NETNS, 'bridge': _specs.BRIDGE, 'veth': _specs.VETH, 'portmap': _specs.PORTMAP,
             'dns': _specs.DNS}

    def normalize(kind, config):
        spec = {'config': dict(type='list', elements='dict', default=[], options=copy.deepcopy(specs[kind]))}
        result = ArgumentSpecValidator(spec).validate({'config': config})
        if result.error_messages:
            # Entries the planner derived that the module would refuse: a bug
            # of the planner, said as such rather than applied half-checked.
            raise HostnetError('%s entries derived for the %s module are invalid: %s'
                               % (len(config), kind, '; '.join(result.error_messages)), field=kind)
        return result.validated_parameters['config']
    return normalize


def _kind_name(kind):
    from ansible_collections.hostnet.provision.plugins.module_utils._kinds import KINDS
    for name, cls in KINDS.items():
        if isinstance(kind, cls):
            return name
    raise HostnetError('%s: no record name for this kind' % kind.label)


def run_info_module(module):
    """The read-only report of net_info."""
    _require_pyroute2(module)
    from ansible_collections.hostnet.provision.plugins.module_utils._info import collect
    from ansible_collections.hostnet.provision.plugins.module_utils._netlink import Kernel

    ctx = Context(check_mode=True, warn=module.warn)
    netns = module.params['netns']
    if netns is not None:
        netns = [n or None for n in netns]
    try:
        with Kernel() as kernel:
            info = collect(kernel, ctx, netns=netns, sections=module.params['gather'],
                           process_namespaces_too=module.params['process_namespaces'])
    except HostnetError as err:
        module.fail_json(msg=str(err), resource=err.resource, field=err.field, value=err.value)
    module.exit_json(changed=False, net_info=info)


def run_probe_module(module):
    """The reachability module: probes, and the checks that disagree with ``expect``
    (a probe that could not decide disagrees with any expectation); other
    tables' forward chains that drop by policy are reported beside them."""
    from ansible_collections.hostnet.provision.plugins.module_utils._probe import (
        BLOCKED,
        UNKNOWN,
        forward_drops,
        probe,
        unexpected,
    )

    _require_root(module)
    try:
        results = probe(module.params['checks'], module.params['timeout'])
    except HostnetError as err:
        module.fail_json(msg=str(err), resource=err.resource, field=err.field, value=err.value)
    try:
        firewall = forward_drops(results)
    except HostnetError as err:
        firewall = []
        module.warn('reachability: the forward policies of other firewalls were not read: %s' % err)
    for entry in firewall:
        version = entry['family'][-1]
        blocked = [r for r in results if r['result'] == BLOCKED and
                   ('ipv6' if ':' in r['to'] else 'ipv4') == entry['family']]
        module.warn('WARNING: reachability: chain %s has policy drop on the forward hook and no rule accepting '
                    'DNATed connections (ct status dnat accept): published ports and forwarded IPv%s traffic '
                    'through this host are dropped there unless one of its rules accepts them%s'
                    % (entry['chain'], version, '; it may be why %d blocked IPv%s check(s) are blocked'
                       % (len(blocked), version) if blocked else ''))
    wrong = unexpected(results)
    unknown = [r for r in results if r['result'] == UNKNOWN]
    for r in unknown:
        if r.get('expect') is None:
            module.warn('%s could not be decided: %s' % (_check_text(r), r['reason']))
    if wrong:
        module.fail_json(msg='%d of %d checks did not match expect: %s%s' % (
            len(wrong), len(results), '; '.join('%s: %s (%s), expected %s' % (
                _check_text(r), r['result'], r['reason'], 'reachable' if r['expect'] else 'blocked')
                for r in wrong),
            ''.join(' (chain %s drops forwarded %s traffic by policy)' % (f['chain'], f['family'].replace('ipv', 'IPv'))
                    for f in firewall)),
            results=results, unexpected=wrong, firewall=firewall)
    module.exit_json(changed=False, results=results, unexpected=wrong, firewall=firewall)


def _check_text(r):
    return '%s -> %s %s%s%s' % (r.get('from') or 'host', r['to'], r['protocol'],
                                ':%s' % r['port'] if r.get('port') else '',
                                ' (%s)' % r['label'] if r.get('label') else '')


def _hostname():
    import socket
    return socket.gethostname()
