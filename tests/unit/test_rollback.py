# -*- coding: utf-8 -*-
# Copyright: contributors to hostnet.provision
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The engine's act step: a failure midway undoes every operation of the
call that ran (all resources, newest first) and says what stands.

A toy kind whose operations write into a dict stands in for the kernel: the
undo is checked on that state, not on a mock of the engine.
"""

from __future__ import annotations

import pytest

from ansible_collections.hostnet.provision.plugins.module_utils._engine import Context, Op, ResourceKind, reconcile
from ansible_collections.hostnet.provision.plugins.module_utils._errors import ApplyError, KernelError


class ToyKind(ResourceKind):
    """Resources {name, value}; ``state`` is the "kernel". An item with
    ``fail`` makes its second operation fail; ``undoable: false`` gives its
    operations no undo; ``partial`` marks the failing op as partial, with
    an undo that removes what it did before failing."""

    label = 'toy'

    def __init__(self, state):
        super().__init__(kernel=None, ctx=Context())
        self.state = state

    def normalize(self, item):
        return dict(item, netns=None)

    def current(self, key):
        return None if key[1] not in self.state else {'name': key[1], 'netns': None, 'value': self.state[key[1]]}

    def managed_keys(self, scope):
        return [(None, n) for n in sorted(self.state)]

    def plan(self, key, before, after):
        name = key[1]
        state = self.state
        undoable = after is None or after.get('undoable', True)
        old = None if before is None else before['value']

        def put(value):
            def run():
                if value is None:
                    state.pop(name, None)
                else:
                    state[name] = value
            return run

        if after is None:
            return [Op(name, 'delete %s' % name, put(None), put(old) if undoable else None)]
        ops = [Op(name, 'set %s to %s' % (name, after['value']), put(after['value']), put(old) if undoable else None)]
        if after.get('fail'):
            def boom():
                if after.get('partial'):  # several kernel steps, the first one done
                    state[name + '-half'] = True
                raise KernelError('%s: kernel says no' % name, name, 'value', after['value'], errno_name='EINVAL')
            ops.append(Op(name, 'extra step of %s' % name, boom, lambda: state.pop(name + '-half', None),
                          partial=after.get('partial', False)))
        return ops


def _run(state, config, mode='merged'):
    return reconcile(ToyKind(state), config, mode, Context())


def test_all_resources_of_the_call_are_undone():
    state = {'kept': 1, 'b': 5}
    with pytest.raises(ApplyError) as info:
        _run(state, [{'name': 'a', 'value': 1}, {'name': 'b', 'value': 2}, {'name': 'c', 'value': 3, 'fail': True}])
    err = info.value
    assert state == {'kept': 1, 'b': 5}
    assert 'nothing of this call was kept' in str(err)
    assert err.done == []
    assert err.rolled_back == ['set c to 3', 'set b to 2', 'set a to 1']
    assert (err.resource, err.field, err.value) == ('c', 'value', 3)


def test_partial_operation_is_undone_too():
    state = {}
    with pytest.raises(ApplyError) as info:
        _run(state, [{'name': 'a', 'value': 1}, {'name': 'c', 'value': 3, 'fail': True, 'partial': True}])
    assert state == {}
    assert info.value.rolled_back[0] == 'extra step of c'


def test_what_cannot_be_undone_is_named_as_kept():
    state = {'old': 7}
    with pytest.raises(ApplyError) as info:
        _run(state, [{'name': 'a', 'value': 1, 'undoable': False}, {'name': 'b', 'value': 2},
                     {'name': 'c', 'value': 3, 'fail': True}])
    err = info.value
    assert state == {'old': 7, 'a': 1}
    assert err.done == ['set a to 1 (cannot be undone)']
    assert 'kept, could not be rolled back: set a to 1 (cannot be undone)' in str(err)
    assert 'nothing of this call was kept' not in str(err)
    assert err.rolled_back == ['set c to 3', 'set b to 2']


def test_overridden_deletions_are_undone():
    state = {'gone': 4}
    with pytest.raises(ApplyError) as info:
        _run(state, [{'name': 'a', 'value': 1, 'fail': True}], mode='overridden')
    assert state == {'gone': 4}
    assert info.value.rolled_back == ['set a to 1', 'delete gone']


def test_an_undo_that_fails_is_named():
    state = {}
    kind = ToyKind(state)
    real_plan = kind.plan

    def plan(key, before, after):
        ops = real_plan(key, before, after)
        if key[1] == 'a':
            def broken():
                raise KernelError('a: undo refused', 'a', 'value', 1, errno_name='EBUSY')
            ops[0].undo = broken
        return ops
    kind.plan = plan
    with pytest.raises(ApplyError) as info:
        reconcile(kind, [{'name': 'a', 'value': 1}, {'name': 'c', 'value': 3, 'fail': True}], 'merged', Context())
    assert state == {'a': 1}
    assert info.value.done == ['set a to 1 (undo failed: a: undo refused)']


class FinalDeletes(ToyKind):
    """Deletions that cannot be undone, marked final (as a bridge's or a
    namespace's); ``fail_delete`` names one whose deletion fails."""

    def __init__(self, state, fail_delete=None):
        super().__init__(state)
        self.fail_delete = fail_delete
        self.order = []

    def plan(self, key, before, after):
        ops = super().plan(key, before, after)
        for op in ops:
            run = op.run

            def logged(run=run, text=op.text):
                if after is None and key[1] == self.fail_delete:
                    raise KernelError('%s: busy' % key[1], key[1], 'name', key[1], errno_name='EBUSY')
                run()
                self.order.append(text)
            op.run = logged
            if after is None:
                op.undo, op.final = None, True
        return ops


def test_final_operations_run_after_the_rest_of_the_call():
    state = {'gone': 4, 'b': 5}
    kind = FinalDeletes(state)
    result = reconcile(kind, [{'name': 'a', 'value': 1}, {'name': 'b', 'value': 2}], 'overridden', Context())
    assert kind.order == ['set a to 1', 'set b to 2', 'delete gone']
    assert result.commands == kind.order
    assert state == {'a': 1, 'b': 2}


def test_a_failure_before_the_final_operations_keeps_nothing():
    state = {'gone': 4}
    kind = FinalDeletes(state)
    with pytest.raises(ApplyError) as info:
        reconcile(kind, [{'name': 'a', 'value': 1}, {'name': 'c', 'value': 3, 'fail': True}], 'overridden', Context())
    assert state == {'gone': 4}
    assert 'nothing of this call was kept' in str(info.value)
    assert 'delete gone' not in kind.order


def test_a_failing_final_operation_names_the_earlier_ones_as_kept():
    state = {'x': 1, 'y': 2, 'z': 3}
    kind = FinalDeletes(state, fail_delete='z')
    with pytest.raises(ApplyError) as info:
        reconcile(kind, [{'name': 'a', 'value': 1}], 'overridden', Context())
    err = info.value
    assert state == {'z': 3}
    assert err.done == ['delete x (cannot be undone)', 'delete y (cannot be undone)']
    assert err.rolled_back == ['set a to 1']
