# -*- coding: utf-8 -*-
# Copyright: contributors to hostnet.provision
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The recorded desired state: what ``hostnet-restore`` re-creates at boot.

Private to the hostnet.provision collection.

After a successful run (not check mode, not ``gathered``) a resource module
records, for each namespace the call looked at, every resource of its kind
that the collection manages there, read back from the kernel in the shape
of ``config`` (what ``state: gathered`` returns). One JSON file per kind and
namespace under the state directory (``/etc/hostnet/state``, or
``HOSTNET_STATE_DIR``)::

    bridge.json            bridges of the namespace the module runs in
    veth@tenant-a.json     veths in the named namespace tenant-a

Each file carries a schema version and is replaced atomically (temporary
file in the same directory, fsync, rename, fsync of the directory), so a
crash leaves the old record or the new one, never half of one. A kind with
nothing left in a namespace has no file there: ``deleted`` and
``overridden`` remove from the record what they removed from the kernel.
Resources in namespaces given by path or ``pid:PID`` are not recorded
(after a reboot those references point nowhere).
"""

from __future__ import annotations

import json
import os
import time
from urllib.parse import quote, unquote

from ansible_collections.hostnet.provision.plugins.module_utils import _nsfs
from ansible_collections.hostnet.provision.plugins.module_utils._engine import gather
from ansible_collections.hostnet.provision.plugins.module_utils._errors import HostnetError

__all__ = ['DEFAULT_STATE_DIR', 'ORDER', 'SCHEMA', 'RecordError', 'enabled', 'file_name', 'load', 'load_all',
           'record_run', 'recordable', 'state_dir', 'write']

DEFAULT_STATE_DIR = '/etc/hostnet/state'
SCHEMA = 1
# Dependency order of the restore: namespaces, bridges (with their nftables
# policy), what plugs into them, published ports, then VXLAN peers.
ORDER = ('netns', 'bridge', 'veth', 'macvlan', 'vxlan', 'portmap', 'vxlan_peer')
_SUFFIX = '.json'
# Fields the kernel keeps choosing while the user has not set them: a
# bridge's MAC and MTU follow its ports. They are recorded only once a call
# gave them (the kernel keeps a value set by hand), else the record would
# fix a value the kernel was about to change.
_FOLLOWS_PORTS = {'bridge': ('mac', 'mtu')}


class RecordError(HostnetError):
    """A record cannot be written or read."""


def state_dir(path=None):
    return path or os.environ.get('HOSTNET_STATE_DIR') or DEFAULT_STATE_DIR


def enabled(option=None):
    """Whether to record: the module option when given, else HOSTNET_RECORD (default on)."""
    if option is not None:
        return bool(option)
    return os.environ.get('HOSTNET_RECORD', '1').strip().lower() not in ('0', 'false', 'no', 'off')


def recordable(netns):
    """A namespace a record can refer to after a reboot: ours, or a name."""
    return netns in (None, '') or (isinstance(netns, str) and not netns.startswith(('/', 'pid:')))


def file_name(kind, netns):
    return kind + ('@' + quote(netns, safe='') if netns else '') + _SUFFIX


def _parse_name(name):
    if not name.endswith(_SUFFIX) or name.startswith('.'):
        return None
    base = name[:-len(_SUFFIX)]
    kind, _sep, netns = base.partition('@')
    return kind, (unquote(netns) or None)


def write(directory, kind, netns, config):
    """Replace the record of a kind in a namespace atomically (no file: nothing recorded)."""
    path = os.path.join(directory, file_name(kind, netns))
    try:
        if not config:
            try:
                os.unlink(path)
            except FileNotFoundError:
                return False
            _fsync_dir(directory)
            return True
        old = load(path, kind, netns, strict=False)
        if old is not None and old['config'] == config:
            return False
        os.makedirs(directory, mode=0o755, exist_ok=True)
        data = {'schema': SCHEMA, 'kind': kind, 'netns': netns or None, 'config': config,
                'written': time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}
        tmp = os.path.join(directory, '.%s.%d.tmp' % (file_name(kind, netns), os.getpid()))
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
            with os.fdopen(fd, 'w') as fh:
                json.dump(data, fh, indent=1, sort_keys=True)
                fh.write('\n')
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise
        _fsync_dir(directory)
        return True
    except OSError as exc:
        raise RecordError('cannot record the desired state in %s: %s (set record: false, or HOSTNET_RECORD=0, '
                          'to run without recording)' % (path, exc.strerror or exc), field='record',
                          value=path) from None


def _fsync_dir(directory):
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def load(path, kind=None, netns=None, strict=True):
    """One record as {'kind', 'netns', 'config'}; None if missing. A record
    that is unreadable, of another schema or of the wrong shape raises
    RecordError (or is None when not strict)."""
    try:
        with open(path) as fh:
            data = json.load(fh)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        if not strict:
            return None
        raise RecordError('record %s is unreadable: %s' % (path, exc), field='record', value=path) from None
    problem = None
    if not isinstance(data, dict):
        problem = 'not a JSON object'
    elif data.get('schema') != SCHEMA:
        problem = 'schema %r, this version reads schema %d' % (data.get('schema'), SCHEMA)
    elif not isinstance(data.get('config'), list) or not all(isinstance(i, dict) for i in data['config']):
        problem = 'config is not a list of resources'
    elif kind is not None and (data.get('kind') != kind or (data.get('netns') or None) != (netns or None)):
        problem = 'it names %s in %r, its file name %s in %r' % (data.get('kind'), data.get('netns'), kind, netns)
    if problem:
        if not strict:
            return None
        raise RecordError('record %s: %s' % (path, problem), field='record', value=path)
    return {'kind': data['kind'], 'netns': data.get('netns') or None, 'config': data['config']}


def load_all(directory=None):
    """Every record in dependency order: a list of (kind, netns, path, record or RecordError)."""
    directory = state_dir(directory)
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise RecordError('cannot read the state directory %s: %s' % (directory, exc.strerror),
                          field='state_dir', value=directory) from None
    found = []
    for name in names:
        parsed = _parse_name(name)
        if parsed is None:
            continue
        kind, netns = parsed
        path = os.path.join(directory, name)
        if kind not in ORDER:
            found.append((len(ORDER), kind, netns, path,
                          RecordError('record %s: unknown kind %r' % (path, kind), field='record', value=path)))
            continue
        try:
            rec = load(path, kind, netns)
        except RecordError as err:
            rec = err
        if rec is not None:
            found.append((ORDER.index(kind), kind, netns, path, rec))
    found.sort(key=lambda f: (f[0], f[2] or ''))
    return [f[1:] for f in found]


def record_run(kind_name, kind, config, directory=None):
    """After a successful run: record the kind's managed resources in every
    namespace the call looked at. ``kind`` is a fresh instance (current reads)."""
    directory = state_dir(directory)
    items = [i for i in (config or []) if isinstance(i, dict)]
    scope = sorted({i.get('netns') or None for i in items} | {None}, key=lambda s: s or '')
    if kind_name == 'netns':
        scope = [None]
    for netns in scope:
        if not recordable(netns):
            continue
        resources = gather(kind, scope=[netns]) if kind.kernel.exists(netns) else []
        if kind_name != 'netns':
            resources = [r for r in resources if recordable(r.get('netns'))]
        if kind_name in _FOLLOWS_PORTS:
            _drop_unset(directory, kind_name, netns, resources, items, _FOLLOWS_PORTS[kind_name])
        _keep_overrides(directory, kind_name, kind, netns, resources, items)
        write(directory, kind_name, netns, resources)
    if kind_name == 'netns':
        _forget_gone_namespaces(directory)


# Per-resource overrides of the safety checks: not kernel state (gathered
# resources do not show them), yet the restore needs them to make again what
# the run was allowed to make.
OVERRIDES = ('allow_route_overlap', 'allow_listening', 'allow_foreign_dnat')


def _keep_overrides(directory, kind_name, kind, netns, resources, items):
    """Carry the overrides that this call or the earlier record gave a
    resource (matched by the kind's key) into its record."""
    old = load(os.path.join(directory, file_name(kind_name, netns)), kind_name, netns, strict=False)
    given = {}
    for item in (old['config'] if old else []) + items:
        flags = dict((f, True) for f in OVERRIDES if item.get(f) is True)
        if not flags:
            continue
        key = _key_of(kind, item)
        if key is not None:
            given.setdefault(key, {}).update(flags)
    if not given:
        return
    for res in resources:
        res.update(given.get(_key_of(kind, res), {}))


def _key_of(kind, item):
    try:
        return kind.key(kind.normalize(dict((k, v) for k, v in item.items() if k not in OVERRIDES)))
    except Exception:  # pylint: disable=broad-except  # an item another call refused: no key, no flag
        return None


def _drop_unset(directory, kind_name, netns, resources, items, fields):
    """Leave out the fields that neither this call nor an earlier recorded
    one set for a resource (the kernel chose them)."""
    old = load(os.path.join(directory, file_name(kind_name, netns)), kind_name, netns, strict=False)
    given = {}
    for item in (old['config'] if old else []) + [i for i in items if (i.get('netns') or None) == netns]:
        given.setdefault(item.get('name'), set()).update(f for f in fields if item.get(f) is not None)
    for res in resources:
        for field in fields:
            if field not in given.get(res.get('name'), ()):
                res.pop(field, None)


def _forget_gone_namespaces(directory):
    """Records of resources in a named namespace that no longer exists go
    with it (they went with the namespace)."""
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return
    for name in names:
        parsed = _parse_name(name)
        if parsed is None or parsed[1] is None or not recordable(parsed[1]):
            continue
        if _nsfs.namespace_id(parsed[1]) is None:
            write(directory, parsed[0], parsed[1], [])
