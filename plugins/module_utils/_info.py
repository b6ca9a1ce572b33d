# -*- coding: utf-8 -*-
# Copyright: contributors to hostnet.provision
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Read-only report of a host's network state (the net_info module).

Private to the hostnet.provision collection.

Two halves: what the kernel has (namespaces, links by kind, addresses,
routes, bridge ports), whoever made it; and what the collection manages,
in the exact shape of each module's ``config`` so it can be fed back.
"""

from __future__ import annotations

import os

from ansible_collections.hostnet.provision.plugins.module_utils import _clash
from ansible_collections.hostnet.provision.plugins.module_utils import _nsfs
from ansible_collections.hostnet.provision.plugins.module_utils._engine import gather
from ansible_collections.hostnet.provision.plugins.module_utils._errors import HostnetError, NamespaceNotFound, ValidationError
from ansible_collections.hostnet.provision.plugins.module_utils._kinds import KINDS
from ansible_collections.hostnet.provision.plugins.module_utils._netlink import RTPROT_HOSTNET, is_managed

__all__ = ['SECTIONS', 'check_namespaces', 'collect']

SECTIONS = ('namespaces', 'links', 'addresses', 'routes', 'managed')
# Read only when asked for: what the clash check decides on (see _clash).
EXTRA_SECTIONS = ('clash',)


def _label(spec):
    return spec or ''


def process_namespaces(named_ids):
    """Network namespaces held by processes but without a name: {inode: pid}."""
    found = {}
    for entry in os.listdir('/proc'):
        if not entry.isdigit():
            continue
        try:
            st = os.stat('/proc/%s/ns/net' % entry)
        except OSError:
            continue
        ident = (st.st_dev, st.st_ino)
        if ident not in named_ids and ident not in found:
            found[ident] = int(entry)
    return found


def check_namespaces(specs):
    """Refuse specs that are malformed or name no live network namespace."""
    if not isinstance(specs, (list, tuple)):
        raise ValidationError('net_info: netns %r must be a list of namespaces' % (specs,), 'net_info', 'netns',
                              specs)
    for spec in specs:
        if spec in (None, ''):
            continue
        if not isinstance(spec, str) or '\0' in spec:
            raise ValidationError('net_info: netns %r is not a namespace name, path or pid:PID' % (spec,),
                                  'net_info', 'netns', spec)
        if spec.startswith('pid:') and not (spec[4:].isdigit() and int(spec[4:]) > 0):
            raise ValidationError('net_info: netns %r: pid:PID needs a process id (a positive number)' % spec,
                                  'net_info', 'netns', spec)
        if not spec.startswith(('/', 'pid:')) and ('/' in spec or spec in ('.', '..')):
            raise ValidationError('net_info: netns %r is not a namespace name (no "/"), an absolute path or '
                                  'pid:PID' % spec, 'net_info', 'netns', spec)
        if spec.startswith('pid:') and not os.path.exists('/proc/%s' % spec[4:]):
            raise NamespaceNotFound('net_info: netns %r: no process %s is running' % (spec, spec[4:]),
                                    'net_info', 'netns', spec)
        # Opening it proves a live namespace (not a stale file or a plain file).
        try:
            os.close(_nsfs.open_namespace(spec, 'net_info', 'netns'))
        except HostnetError as err:
            text = str(err).split(': ', 1)[-1]
            raise NamespaceNotFound('net_info: netns %r: %s' % (spec, text), 'net_info', 'netns', spec) from None


def collect(kernel, ctx, netns=None, sections=SECTIONS, process_namespaces_too=False, kinds=None):
    """Build the report. ``netns``: specs to read (default: ours + all named).

    A namespace asked for by name, path or ``pid:PID`` that does not exist
    is an error (an empty report would read as "nothing there")."""
    if netns is not None:
        check_namespaces(netns)
    named = _nsfs.list_named()
    specs = [None] + named if netns is None else list(netns)
    own_id = _nsfs.namespace_id(None)
    info = {}

    if 'namespaces' in sections:
        entries = [{'name': None, 'id': own_id[1], 'current': True, 'managed': False, 'pid': None}]
        named_ids = {own_id: None}
        for name in named:
            ident = _nsfs.namespace_id(name)
            marker = _nsfs.read_marker(name)
            named_ids[ident] = name
            entries.append({'name': name, 'id': ident[1] if ident else None, 'current': ident == own_id,
                            'managed': marker is not None, 'pid': (marker or {}).get('pid')})
        if process_namespaces_too:
            for ident, pid in sorted(process_namespaces(named_ids).items(), key=lambda kv: kv[1]):
                entries.append({'name': None, 'id': ident[1], 'current': False, 'managed': False, 'pid': pid,
                                'netns': 'pid:%d' % pid})
        info['namespaces'] = entries

    if 'links' in sections or 'addresses' in sections or 'routes' in sections:
        per_ns = {}
        for spec in specs:
            if not kernel.exists(spec):
                continue
            per_ns[_label(spec)] = _namespace_view(kernel, spec, sections)
        for section in ('links', 'addresses', 'routes'):
            if section in sections:
                info[section] = dict((label, view[section]) for label, view in per_ns.items())

    if 'clash' in sections:
        # The same plain data the modules' clash check decides on, so that a
        # role can run that check on the controller before its first change.
        info['clash'] = dict((_label(spec), _clash.routing_facts(kernel, spec)) for spec in specs
                             if kernel.exists(spec))

    if 'managed' in sections:
        managed = {}
        for name, kind_class in (kinds or KINDS).items():
            kind = kind_class(kernel, ctx)
            managed[name] = gather(kind, scope=[s for s in specs if kernel.exists(s)])
        info['managed'] = managed
    return info


def _namespace_view(kernel, spec, sections):
    links = kernel.links(spec)
    by_index = dict((link['index'], link['name']) for link in links.values())
    view = {'links': [], 'addresses': {}, 'routes': []}
    for link in sorted(links.values(), key=lambda l: l['index']):
        entry = {
            'name': link['name'],
            'kind': link['kind'] or ('loopback' if link['name'] == 'lo' else 'device'),
            'mtu': link['mtu'],
            'mac': link['mac'],
            'up': link['up'],
            'master': by_index.get(link['master']),
            'alias': link['alias'],
            'managed': is_managed(link),
        }
        for extra in ('bridge', 'vxlan', 'macvlan', 'vlan'):
            if link.get(extra):
                entry[extra] = link[extra]
        view['links'].append(entry)
        if 'addresses' in sections:
            view['addresses'][link['name']] = kernel.addresses(spec, link['index'])
    if 'routes' in sections:
        for route in kernel.routes(spec):
            view['routes'].append({
                'dest': route['dest'],
                'via': route['via'],
                'dev': by_index.get(route['oif']),
                'metric': route['metric'],
                'proto': route['proto'],
                'managed': route['proto'] == RTPROT_HOSTNET,
            })
    return view
