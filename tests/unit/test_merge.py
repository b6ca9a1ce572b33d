# -*- coding: utf-8 -*-
# Copyright: contributors to hostnet.provision
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""_engine.merge_config: how merged/replaced combine before and desired."""

from __future__ import annotations

import copy

import pytest

from ansible_collections.hostnet.provision.plugins.module_utils._engine import merge_config


@pytest.mark.cases('merge', 'cases')
def test_merge_config(case):
    before = case['before']
    untouched = copy.deepcopy(before)
    after = merge_config(before, case['desired'], case['replace'], case['list_fields'], case.get('nested'))
    assert after == case['after']
    assert before == untouched
