# -*- coding: utf-8 -*-
# Copyright: contributors to hostnet.provision
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Named network namespaces, created or adopted from a running process.

Private to the hostnet.provision collection.

A namespace the collection creates gets its loopback brought up. One adopted
from a process (``pid``, as done for Docker's hidden namespaces) is only
named: what is inside belongs to that process's owner and is not touched.
"""

from __future__ import annotations

from ansible_collections.hostnet.provision.plugins.module_utils import _nsfs
from ansible_collections.hostnet.provision.plugins.module_utils import _sysctl
from ansible_collections.hostnet.provision.plugins.module_utils import _validate as v
from ansible_collections.hostnet.provision.plugins.module_utils._engine import Op, ResourceKind
from ansible_collections.hostnet.provision.plugins.module_utils._errors import (
    NotManagedError,
    ValidationError,
    translate_os_error,
)

__all__ = ['NetnsKind']


class NetnsKind(ResourceKind):
    label = 'netns'

    def key(self, item):
        return (None, item['name'])

    def normalize(self, item):
        name = v.netns_name(item.get('name'), 'netns %s' % item.get('name'))
        pid = item.get('pid')
        if pid is not None and (not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0):
            raise ValidationError('netns %s: pid %r is not a process id' % (name, pid), 'netns %s' % name, 'pid', pid)
        res = 'netns %s' % name
        sysctls = item.get('sysctls') or None
        if sysctls is not None:
            if pid is not None:
                raise ValidationError('%s: sysctls can only be set in namespaces the collection creates, not in '
                                      'the namespace of pid %d' % (res, pid), res, 'sysctls', sysctls)
            sysctls = dict((_sysctl.normalize_key(k, res)[0], _sysctl_value(v, res, k))
                           for k, v in sysctls.items())
        return {'name': name, 'pid': pid, 'sysctls': sysctls}

    def scope(self, items):
        return [None]

    def _res(self, name):
        return 'netns %s' % name

    def current(self, key):
        # Read once per run while nothing changes (the plan of a role reads
        # every namespace, then the step reconciling them does).
        return self.kernel.memo('netns', key, lambda: self._read(key), namespaces=[key[1]])

    def _read(self, key):
        name = key[1]
        marker = _nsfs.read_marker(name)
        if marker is None and _nsfs.dead_name(name):
            if _nsfs.has_record(name):
                # Ours, half gone or half made (a run killed between the
                # two steps of a create or delete): made anew.
                return {'name': name, 'pid': None, 'sysctls': {}, '_dead': True}
            raise NotManagedError(
                '%s: /run/netns/%s exists but holds no network namespace, and hostnet.provision did not make '
                'it; it is left alone (remove the file yourself, or choose another name)' % (self._res(name), name),
                self._res(name), 'name', name)
        if marker is None and not self.ctx.check_mode:
            # A record whose name is gone from /run/netns (a run killed
            # inside a delete, after the name went): the collection's own
            # bookkeeping, dropped.
            _nsfs.forget_orphan_record(name)
        if marker is None:
            if _nsfs.stale_marker(name):
                raise NotManagedError(
                    '%s: the network namespace named %r is not the one hostnet.provision created under that name '
                    '(it was deleted and another one was made under the name since); it is neither adopted nor '
                    'deleted (remove it yourself, or choose another name)' % (self._res(name), name),
                    self._res(name), 'name', name)
            if _nsfs.namespace_id(name) is not None:
                raise NotManagedError(
                    '%s: a network namespace named %r already exists and was not created by '
                    'hostnet.provision; it is left alone (use it by name from other modules, or '
                    'choose another name)' % (self._res(name), name), name, 'name', name)
            return None
        out = {'name': name, 'pid': marker.get('pid'), 'sysctls': {}}
        if marker.get('origin') == 'created':
            lo = self.kernel.link(name, 'lo', self._res(name))
            out['_lo_up'] = bool(lo and lo['up'])
            out['sysctls'] = dict((k, _sysctl.read(name, k, self._res(name))) for k in marker.get('sysctls', []))
        elif marker.get('pid') and _nsfs.namespace_id('pid:%d' % marker['pid']) != _nsfs.namespace_id(name):
            # The process is gone or restarted: the name points at a stale namespace.
            out['_stale'] = True
        return out

    def touched(self, changes):
        """After changes: what was read of these namespaces is stale (made,
        their lo, their sysctls); a deleted one made everything stale
        already (Kernel.forget)."""
        for key, _before, _after in changes:
            self.kernel.touch(key[1])

    def managed_keys(self, scope):
        if not self.ctx.check_mode:
            for name in _nsfs.recorded_names():
                _nsfs.forget_orphan_record(name)
        return [(None, n) for n in _nsfs.list_named(dead=True)
                if _nsfs.read_marker(n) is not None or (_nsfs.dead_name(n) and _nsfs.has_record(n))]

    def predict(self, before, desired, replace):
        after = {'name': desired['name'], 'pid': desired['pid'], 'sysctls': {}}
        if desired['pid'] is None and before is not None:
            after['pid'] = before['pid']
        if after['pid'] is None:
            after['_lo_up'] = True
        if before is not None and not replace:
            after['sysctls'].update(before['sysctls'])
        after['sysctls'].update(desired['sysctls'] or {})
        return after

    def plan(self, key, before, after):
        name = key[1]
        res = self._res(name)
        kernel = self.kernel
        if after is None:
            def delete():
                _check_ours(name, res)
                kernel.forget(name)
                _os(lambda: _nsfs.delete_named(name), 'delete network namespace', res, name)
            # Final: what was in the namespace is gone with it; it goes last.
            return [Op(res, 'delete netns %s' % name, delete, final=True)]
        pid = after['pid']
        if pid is not None and _nsfs.namespace_id('pid:%d' % pid) is None:
            raise ValidationError('%s: pid %d has no network namespace (no such process?)' % (res, pid),
                                  res, 'pid', pid)
        ops = []
        if before is not None and before.get('_dead'):
            ops.append(Op(res, 'remove /run/netns/%s, left without its namespace by an interrupted run' % name,
                          lambda: _os(lambda: _nsfs.remove_dead_name(name), 'remove', res, name)))
            before = None
        if before is not None and (before['pid'] != pid or before.get('_stale')):
            ops.append(Op(res, 'release netns name %s (was %s)' % (name, _origin(before['pid'])),
                          lambda: (_check_ours(name, res), kernel.forget(name),
                                   _os(lambda: _nsfs.delete_named(name), 'release', res, name))))
            before = None
        if before is None:
            # The undo removes only the namespace this op made (its identity
            # as created), never whatever holds the name by then.
            made = {}
            if pid is None:
                ops.append(Op(res, 'create netns %s' % name,
                              lambda: made.update(_os(lambda: _nsfs.create_named(name), 'create network namespace',
                                                      res, name)),
                              lambda: _undo_create(kernel, name, made)))
            else:
                ops.append(Op(res, 'attach netns %s to the namespace of pid %d' % (name, pid),
                              lambda: made.update(_os(lambda: _nsfs.attach_named(name, pid),
                                                      'attach network namespace', res, name)),
                              lambda: _undo_create(kernel, name, made)))
        if pid is None and not (before or {}).get('_lo_up'):
            def lo_state(state):
                def run():
                    if state == 'down' and not kernel.exists(name):
                        return  # gone with the namespace
                    lo = kernel.link(name, 'lo', res)
                    kernel.link_set(name, res, lo['index'], state=state)
                return run
            ops.append(Op(res, 'bring up lo in netns %s' % name, lo_state('up'), lo_state('down')))
        ops.extend(self._sysctl_ops(name, res, before, after['sysctls']))
        return ops

    def _sysctl_ops(self, name, res, before, wanted):
        """One op per sysctl whose value differs (all of them in a new namespace)."""
        ops = []
        for key, value in sorted(wanted.items()):
            old = None
            if before is not None:
                old = before['sysctls'][key] if key in before['sysctls'] else _sysctl.read(name, key, res)
                if old == value:
                    continue
            was = '' if old is None else ' (was %s)' % old
            ops.append(Op(res, 'set sysctl %s=%s in netns %s%s' % (key, value, name, was),
                          _set_sysctl(name, key, value, res),
                          # In a new namespace: undone with the namespace itself.
                          _set_sysctl(name, key, old, res) if old is not None else _nothing))
        return ops


def _set_sysctl(name, key, value, res):
    def run():
        _sysctl.write(name, key, value, res)
        marker = _nsfs.read_marker(name) or {}
        keys = sorted(set(marker.get('sysctls', [])) | {key})
        _nsfs.update_marker(name, sysctls=keys)
    return run


def _nothing():
    return None


def _sysctl_value(value, res, key):
    if isinstance(value, bool):
        return '1' if value else '0'
    if isinstance(value, (int, str)) and str(value).strip():
        return ' '.join(str(value).split())
    raise ValidationError('%s: sysctls value %r for %s is not a number or string' % (res, value, key),
                          res, 'sysctls', key)


def _origin(pid):
    return 'created' if pid is None else 'pid %d' % pid


def _os(fn, action, res, name):
    try:
        return fn()
    except OSError as exc:
        raise translate_os_error(exc, action, res, 'name', name) from None


def _check_ours(name, res):
    """Right before a name is removed: it must still be the namespace the
    collection recorded (someone may have re-made it since the plan)."""
    if _nsfs.read_marker(name) is None and _nsfs.namespace_id(name) is not None:
        raise NotManagedError('%s: the network namespace named %r is no longer the one hostnet.provision '
                              'recorded; it is left alone' % (res, name), res, 'name', name)


def _undo_create(kernel, name, made):
    """Remove the namespace the create op made, and only that one."""
    if not made or not _nsfs.same_identity(made, _nsfs.identity(name)):
        return
    kernel.forget(name)
    _nsfs.delete_named(name)
