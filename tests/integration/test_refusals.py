# -*- coding: utf-8 -*-
"""Refused input leaves nothing behind: a table of bad inputs, run against
the real kernel (inside the sandbox).

Every ``tests/integration/cases/refusals_*.yml`` file is a YAML list of
cases; each case is one module call that must fail. A case has:

``id``
    unique name (the pytest id: ``FILE/ID``).
``setup`` (optional)
    a list of steps run first, each expected to succeed. A step is either
    ``{module: NAME, params: {...}}`` (a hostnet.provision module call with
    those arguments) or ``{sh: [ARGV...]}`` (a command, for objects the
    collection did not make: a foreign link, route or namespace).
``module``
    the module under test (``veth``, ``bridge``, ...).
``params``
    its arguments (``config``, ``state``, ...).
``check`` (optional, default false)
    run the call in check mode.
``expect``
    a list of substrings that must ALL appear in the failure message: at
    least the field and the value, and for a combination the other field.
``field`` (optional)
    the exact ``field`` the failure must report.

For each case: setup runs, the kernel state is snapshotted
(helpers.kernel_snapshot: links, addresses, routes, rules, permanent
neighbours, static FDB entries in every namespace, the nftables ruleset,
the forwarding sysctls, /run/hostnet and the namespace names; timers that
tick on their own left out), the module
runs and must fail with ``changed: false`` and the expected message, and a
second snapshot must equal the first. A case whose failure only the kernel
finds (a conflict made in setup) proves that the whole call is undone.
"""

from __future__ import annotations

import glob
import os
import signal
import subprocess

import pytest
import yaml

from helpers import kernel_snapshot, run_module, snapshot_diff

CASES = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'cases')
_KEYS = {'id', 'setup', 'module', 'params', 'check', 'expect', 'field'}


def _load():
    out = []
    for path in sorted(glob.glob(os.path.join(CASES, 'refusals_*.yml'))):
        with open(path, encoding='utf-8') as handle:
            cases = yaml.safe_load(handle) or []
        label = os.path.basename(path)[len('refusals_'):-len('.yml')]
        for case in cases:
            out.append(pytest.param(case, id='%s/%s' % (label, case['id'])))
    return out


ALL = _load()


def test_case_table_is_well_formed():
    ids = [p.id for p in ALL]
    assert len(ids) == len(set(ids)), 'duplicate case ids'
    for param in ALL:
        case = param.values[0]
        assert set(case) <= _KEYS, '%s: unknown keys %s' % (param.id, set(case) - _KEYS)
        assert case.get('module') and isinstance(case.get('params'), dict), param.id
        assert isinstance(case.get('expect'), list) and case['expect'], param.id


def _steady(snapshot):
    """A snapshot without the timers that tick on their own (a bridge
    port's forward_delay_timer and the like)."""
    if isinstance(snapshot, dict):
        return dict((k, _steady(v)) for k, v in snapshot.items() if not str(k).endswith('_timer'))
    if isinstance(snapshot, list):
        return [_steady(v) for v in snapshot]
    return snapshot


def _setup(steps):
    for step in steps or []:
        if 'sh' in step:
            subprocess.run([str(a) for a in step['sh']], check=True, capture_output=True, text=True)
        else:
            run_module(step['module'], **step.get('params', {}))


def _processes_here():
    """PIDs of the processes in this network namespace (the sandbox's)."""
    here = os.readlink('/proc/self/ns/net')
    out = set()
    for pid in filter(str.isdigit, os.listdir('/proc')):
        try:
            if os.readlink('/proc/%s/ns/net' % pid) == here:
                out.add(int(pid))
        except OSError:
            continue
    return out


@pytest.fixture
def no_leftover_processes():
    """What a case's setup starts in the background (a listener) ends with
    the case, so that it cannot hold a port of a later test."""
    started = _processes_here()
    yield
    for pid in _processes_here() - started:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


@pytest.mark.parametrize('case', ALL)
@pytest.mark.usefixtures('no_leftover_processes')
def test_refused_without_a_trace(case):
    _setup(case.get('setup'))
    before = _steady(kernel_snapshot())
    result = run_module(case['module'], check=bool(case.get('check')), fail=True, **case['params'])
    after = _steady(kernel_snapshot())
    msg = result.get('msg') or ''
    missing = [s for s in case['expect'] if str(s) not in msg]
    assert not missing, 'message %r lacks %r' % (msg, missing)
    if 'field' in case:
        assert result.get('field') == case['field'], msg
    assert not result.get('changed'), 'reported changed: %r' % (result,)
    diff = snapshot_diff(before, after)
    assert before == after, 'the refused call left changes:\n%s' % '\n'.join(diff)
