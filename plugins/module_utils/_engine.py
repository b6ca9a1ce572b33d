# -*- coding: utf-8 -*-
# Copyright: contributors to hostnet.provision
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Desired state → plan → apply → read back, for any resource kind.

Private to the hostnet.provision collection.

The loop every module shares (Ansible's resource-module states):

* ``merged``: create what is missing, set the attributes that are given;
  lists (addresses, routes) gain the given entries;
* ``replaced``: as merged, but lists become exactly what is given;
* ``overridden``: replaced for each given resource, and every other resource
  of this kind that the collection manages in the same namespaces is deleted;
* ``deleted``: the given resources (or, with an empty config, every managed
  resource of this kind in scope) are deleted;
* ``gathered``: nothing changes; the managed resources are returned in the
  shape of ``config``.

Decide, then act, then report: every resource's before state is read and
its after state predicted; the operations are exactly the differences; in
check mode nothing runs and the prediction is the answer; otherwise the
operations run resource by resource and the after state is read back from
the kernel. When an operation fails, every operation of the call that ran
is undone, newest first, so nothing of a failed call stays; what cannot be
undone is named in the error as kept. Operations that cannot be undone
faithfully (deleting a bridge or a namespace: what was in it is gone) are
marked ``final``: they run after every other operation of the call, when
nothing else of it can fail any more.
"""

from __future__ import annotations

import copy

from ansible_collections.hostnet.provision.plugins.module_utils._errors import (
    ApplyError,
    HostnetError,
    LinkNotFound,
    NamespaceNotFound,
)
from ansible_collections.hostnet.provision.plugins.module_utils._validate import unique_keys

__all__ = ['Context', 'Op', 'gather', 'public', 'ResourceKind', 'Result', 'reconcile', 'rollback', 'STATES',
           'resource_label']

STATES = ('merged', 'replaced', 'overridden', 'deleted', 'gathered')


class Context:
    """What the engine needs from its caller: check mode and a warn sink."""

    def __init__(self, check_mode=False, warn=None):
        self.check_mode = check_mode
        self.warnings = []
        self._warn = warn
        self._grouped = {}

    def warn(self, message):
        self.warnings.append(message)
        if self._warn is not None:
            self._warn(message)

    def warn_each(self, cause, item, message):
        """A warning of one cause that may hold for many resources of a call:
        collected, and said once (``flush_warnings``) with every ITEM named.
        MESSAGE has one ``%s`` for the items."""
        items = self._grouped.setdefault(cause, (message, []))[1]
        if item not in items:
            items.append(item)

    def flush_warnings(self):
        """One warning per cause collected by ``warn_each``."""
        grouped, self._grouped = self._grouped, {}
        for message, items in grouped.values():
            self.warn(message % ', '.join(items))

    def tolerate_missing(self, err):
        """In check mode a missing namespace/link may be made earlier in the
        same play: warn and plan as if it will exist. Otherwise re-raise."""
        if not self.check_mode or not isinstance(err, (NamespaceNotFound, LinkNotFound)):
            raise err
        self.warn('check mode: %s (assuming it will exist when this runs for real)' % err)


class Op:
    """One kernel change: a description, how to do it, how to take it back.

    An op whose text is None is a repair step (re-adding what the kernel
    dropped as a side effect of another op); it is not listed in commands.
    """

    __slots__ = ('resource', 'text', 'run', 'undo', 'partial', 'final')

    def __init__(self, resource, text, run, undo=None, partial=False, final=False):
        self.resource = resource
        self.text = text
        self.run = run
        self.undo = undo
        # partial: the op does several kernel steps, so its own undo also
        # runs when it fails halfway (e.g. a created pair is deleted again).
        self.partial = partial
        # final: cannot be undone as it was (a deleted bridge's ports, a
        # deleted namespace's contents); it and the ops of its resource after
        # it run once every other op of the call has run (see reconcile).
        self.final = final

    def __repr__(self):
        return 'Op(%r)' % self.text


def resource_label(netns, name):
    return name if not netns else '%s@%s' % (name, netns)


class ResourceKind:
    """What a kind of resource must provide to the loop.

    ``key``: identity of a (normalised) resource, ``(netns, name)``.
    ``normalize``: validate one config entry (syntax only), return a dict.
    ``check_all``: cross-item validation (names used twice and the like).
    ``current``: the managed resource as a config-shaped dict, None if
    absent; raises NotManagedError if something else holds the name.
    ``managed_keys``: keys of all managed resources in the given scope.
    ``predict``: before + desired → after (config-shaped).
    ``plan``: before → after as a list of Op (after None: delete).
    ``scope``: namespaces that overridden/deleted/gathered look at.
    """

    label = 'resource'
    list_fields = ()

    def __init__(self, kernel, ctx):
        self.kernel = kernel
        self.ctx = ctx

    def key(self, item):
        return (item.get('netns'), item['name'])

    def item_label(self, item):
        """How a (config-shaped) resource is named in the diff."""
        return resource_label(item.get('netns'), item['name'])

    def normalize(self, item):
        raise NotImplementedError

    def check_all(self, items):
        unique_keys(items, self.key, self.label)

    def current(self, key):
        raise NotImplementedError

    def managed_keys(self, scope):
        raise NotImplementedError

    def scope(self, items):
        return sorted({None} | {item.get('netns') for item in items}, key=lambda s: s or '')

    def predict(self, before, desired, replace):
        return merge_config(before, desired, replace, self.list_fields)

    def plan(self, key, before, after):
        raise NotImplementedError


def merge_config(before, desired, replace, list_fields, nested=None):
    """Apply desired onto before: unset (None) fields keep their value;
    list fields are unioned (merged) or taken as given (replaced)."""
    after = copy.deepcopy(before) if before else {}
    for field, value in desired.items():
        if nested and field in nested and isinstance(value, dict):
            after[field] = merge_config((before or {}).get(field), value, replace, nested[field])
        elif field in list_fields:
            if value is None:
                if replace or field not in after or after[field] is None:
                    after[field] = []
            elif replace:
                after[field] = list(value)
            else:
                merged = list(after.get(field) or [])
                merged.extend(v for v in value if v not in merged)
                after[field] = merged
        elif value is not None or field not in after:
            after[field] = value
    return after


class Result:
    def __init__(self, label=None):
        self.label = label or (lambda i: resource_label(i.get('netns'), i['name']))
        self.changed = False
        self.before = []
        self.after = []
        self.commands = []
        self.gathered = None
        self.warnings = []

    def as_dict(self):
        out = {'changed': self.changed, 'commands': self.commands}
        if self.gathered is not None:
            out['gathered'] = self.gathered
        else:
            out['before'] = self.before
            out['after'] = self.after
        return out

    def diff(self):
        def keyed(items):
            return dict((self.label(i), i) for i in items)
        return {'before': keyed(self.before), 'after': keyed(self.after)}


def public(item):
    """A resource as users see it: engine-private fields (``_x``) left out."""
    return dict((k, v) for k, v in item.items() if not k.startswith('_'))


def _sorted_keys(keys):
    return sorted(keys, key=lambda k: tuple('' if p is None else str(p) for p in k))


def gather(kind, keys=None, scope=None):
    """Managed resources of a kind in config shape: the given keys, or all
    in the given namespaces (default: the kind's own scope)."""
    if keys is None:
        keys = kind.managed_keys(kind.scope([]) if scope is None else scope)
    return [public(c) for c in (kind.current(k) for k in _sorted_keys(keys)) if c is not None]


def reconcile(kind, config, state, ctx, done=None):
    """Run the whole loop for one module call; return a Result.

    ``done``: the operations of earlier reconciles of the same call (a
    composite module runs several kinds one after another); a failure undoes
    them too, so nothing of the call stays. It gains this call's operations."""
    if state not in STATES:
        raise HostnetError('state must be one of %s, got %r' % (', '.join(STATES), state),
                           field='state', value=state)
    items = [kind.normalize(item) for item in (config or [])]
    kind.check_all(items)
    result = Result(kind.item_label)

    if state == 'gathered':
        result.gathered = gather(kind, [kind.key(i) for i in items] if items else None)
        return result

    # 0. Links half made by an interrupted run are deleted first, so that
    # what follows sees the kernel as if that run had not started (in check
    # mode: reported, and seen as absent by the kinds).
    recovery = _recovery(kind, ctx)

    # 1. Decide: before, predicted after and operations for every resource.
    plan = [(None, None, None, recovery)] if recovery else []  # (key, before, after, ops)
    if state in ('merged', 'replaced', 'overridden'):
        replace = state != 'merged'
        wanted = set()
        deletions = []
        if state == 'overridden':
            wanted = set(kind.key(i) for i in items)
            for key in _sorted_keys(kind.managed_keys(kind.scope(items))):
                if key not in wanted:
                    before = kind.current(key)
                    if before is not None:
                        deletions.append((key, before, None, kind.plan(key, before, None)))
        plan.extend(deletions)
        for item in items:
            key = kind.key(item)
            try:
                before = kind.current(key)
            except (NamespaceNotFound, LinkNotFound) as err:
                ctx.tolerate_missing(err)
                before = None
            after = kind.predict(before, item, replace)
            plan.append((key, before, after, kind.plan(key, before, after)))
    else:  # deleted
        keys = [kind.key(i) for i in items] if items else kind.managed_keys(kind.scope(items))
        for key in _sorted_keys(keys) if not items else keys:
            try:
                before = kind.current(key)
            except NamespaceNotFound:
                before = None
            if before is not None:
                plan.append((key, before, None, kind.plan(key, before, None)))

    ctx.flush_warnings()

    # 2. Act (unless check mode), one resource at a time; a failure undoes
    # every operation of the call that ran (``done``). Final operations
    # (and what follows them for their resource) run last, in plan order,
    # so that a failure anywhere else finds them not yet made.
    done = [] if done is None else done
    # Ops without text only repair kernel side effects of the ones with text.
    plan = [(key, before, after, ops) for key, before, after, ops in plan if any(op.text for op in ops)]
    now, last = [], []
    for key, before, after, ops in plan:
        cut = next((i for i, op in enumerate(ops) if op.final), len(ops))
        now.append((key, ops[:cut]))
        if cut < len(ops):
            last.append((key, ops[cut:]))
    for key, ops in now + last:
        result.changed = True
        result.commands.extend(op.text for op in ops if op.text)
        if ctx.check_mode or key is None:  # check mode, or the recovery: done already
            continue
        _apply_resource(key, ops, done)

    if result.changed and not ctx.check_mode:
        # Not every change went through netlink (namespaces, sysctls): what
        # was read before it is stale, also for the after state below. A
        # kind that knows what its changes reach says so (``touched``); for
        # any other, everything read is stale.
        kernel = getattr(kind, 'kernel', None)
        if hasattr(kind, 'touched') and all(key is not None for key, _b, _a, _o in plan):
            kind.touched([(key, before, after) for key, before, after, _ops in plan])
        elif hasattr(kernel, 'touch'):
            kernel.touch()
        _adopt_legacy(kind)
    if not ctx.check_mode:
        _sweep_records(kind)

    # 3. Report: before/after of the resources that changed.
    for key, before, after, ops in plan:
        if before is not None:
            result.before.append(public(before))
        if after is not None:
            if not ctx.check_mode:
                after = kind.current(key)
            if after is not None:
                result.after.append(public(after))
    result.warnings = ctx.warnings
    return result


def _recovery(kind, ctx):
    """Delete (in check mode: list) the links an interrupted run half made."""
    kernel = getattr(kind, 'kernel', None)
    if kernel is None:
        return []
    from ansible_collections.hostnet.provision.plugins.module_utils import _intent
    ops = _intent.recovery_ops(kernel, ctx.check_mode)
    if not ctx.check_mode:
        for op in ops:
            op.run()
    return ops


def _adopt_legacy(kind):
    """Record the links an earlier version made in the namespaces read (see
    _intent.adopt_legacy)."""
    kernel = getattr(kind, 'kernel', None)
    if kernel is not None and hasattr(kernel, 'namespaces_read'):
        from ansible_collections.hostnet.provision.plugins.module_utils import _intent
        _intent.adopt_legacy(kernel)


def _sweep_records(kind):
    """Drop the records of links that are gone from the namespaces read (see
    _intent.sweep)."""
    kernel = getattr(kind, 'kernel', None)
    if kernel is not None and hasattr(kernel, 'namespaces_read'):
        from ansible_collections.hostnet.provision.plugins.module_utils import _intent
        _intent.sweep(kernel)


def _apply_resource(key, ops, done):
    """Run one resource's operations; ``done`` holds every operation of this
    call that ran so far (all earlier resources). On a failure everything of
    the call is undone, newest first: the failing operation's own partial
    work, then this resource's and every earlier resource's operations."""
    for op in ops:
        try:
            op.run()
        except HostnetError as err:
            raise _rollback(op, err, done) from None
        done.append(op)


def rollback(err, done):
    """Undo DONE, newest first, because ERR stopped the call before any
    operation of its own ran (a later kind of a composite call refused its
    input); returns the ApplyError to raise."""
    return _rollback(None, err, done)


def _rollback(failed, err, done):
    rolled_back, kept = [], []
    for prev in reversed(done + ([failed] if failed is not None and failed.partial else [])):
        if prev.undo is None:
            if prev.text:
                kept.append('%s (cannot be undone)' % prev.text)
            continue
        try:
            prev.undo()
            rolled_back.append(prev.text or 'repairs')
        except HostnetError as uerr:
            kept.append('%s (undo failed: %s)' % (prev.text or 'repairs', uerr))
    msg = str(err)
    if kept:
        msg += '; kept, could not be rolled back: %s' % '; '.join(reversed(kept))
        if rolled_back:
            msg += '; rolled back: %s' % '; '.join(rolled_back)
    else:
        msg += '; nothing of this call was kept'
        if rolled_back:
            msg += ' (rolled back: %s)' % '; '.join(rolled_back)
    failure = ApplyError(msg, resource=failed.resource if failed is not None else err.resource,
                         done=list(reversed(kept)), rolled_back=rolled_back,
                         cause=err)
    failure.field, failure.value = err.field, err.value
    return failure
