# -*- coding: utf-8 -*-
# Copyright: contributors to hostnet.provision
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmark callback of bench/run.py (not part of the collection's plugins):
per-task wall time, changed flag, kernel change count (``commands`` of our
modules) and loop items run/changed, written as JSON to $BENCH_TASKS_JSON."""

from __future__ import annotations

DOCUMENTATION = r'''
name: bench_timer
type: aggregate
short_description: per-task timings for bench/run.py
description: Records per-task wall time, changed and the length of C(commands) into $BENCH_TASKS_JSON.
requirements: []
'''

import json
import os
import time

from ansible.plugins.callback import CallbackBase


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = 'aggregate'
    CALLBACK_NAME = 'bench_timer'
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._tasks = []
        self._current = None
        self._start = time.monotonic()

    def _close(self):
        if self._current is not None:
            self._current['seconds'] = round(time.monotonic() - self._current.pop('_t0'), 4)
            self._tasks.append(self._current)
            self._current = None

    def v2_playbook_on_task_start(self, task, is_conditional):
        self._close()
        self._current = {'task': task.get_name(), 'action': task.action, '_t0': time.monotonic(),
                         'changed': False, 'commands': 0, 'items': 0, 'items_changed': 0, 'status': 'started'}

    def _record(self, result, status):
        if self._current is None:
            return
        res = result._result
        self._current['status'] = status
        self._current['changed'] = bool(res.get('changed'))
        cmds = res.get('commands')
        if isinstance(cmds, list):
            self._current['commands'] += len(cmds)
        items = res.get('results')
        if isinstance(items, list):
            self._current['items'] += len(items)
            self._current['items_changed'] += sum(1 for i in items if isinstance(i, dict) and i.get('changed'))
        elif status != 'skipped':
            self._current['items'] += 1
            self._current['items_changed'] += 1 if res.get('changed') else 0

    def v2_runner_on_ok(self, result):
        self._record(result, 'ok')

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._record(result, 'failed')

    def v2_runner_on_skipped(self, result):
        self._record(result, 'skipped')

    def v2_playbook_on_stats(self, stats):
        self._close()
        path = os.environ.get('BENCH_TASKS_JSON')
        if path:
            with open(path, 'w') as fh:
                json.dump({'seconds': round(time.monotonic() - self._start, 4), 'tasks': self._tasks}, fh, indent=1)
