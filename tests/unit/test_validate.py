# -*- coding: utf-8 -*-
# Copyright: contributors to hostnet.provision
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""_validate: every check, from cases/validate.yml."""

from __future__ import annotations

import pytest

from ansible_collections.hostnet.provision.plugins.module_utils import _ipconf
from ansible_collections.hostnet.provision.plugins.module_utils import _validate

RESOURCE = 'unit test'

KEYS = {
    'pair': lambda item: (item.get('netns'), item['name']),
    'name': lambda item: item['name'],
}


MODULES = {'validate': _validate, 'ipconf': _ipconf}


def _call(case):
    """func(value, *args, RESOURCE, **kwargs) of _validate (or of the module named by ``module``)."""
    func = getattr(MODULES[case.get('module', 'validate')], case['func'])
    return func(case['value'], *case.get('args', []), RESOURCE, **case.get('kwargs', {}))


@pytest.mark.cases('validate', 'valid')
def test_valid(case):
    assert _call(case) == case['expect']


@pytest.mark.cases('validate', 'invalid')
def test_invalid(case, raises_validation):
    with raises_validation(dict(case['error'], resource=RESOURCE)):
        _call(case)


def _unique_keys(case):
    return _validate.unique_keys(case['items'], KEYS[case['key']], case['label'])


@pytest.mark.cases('validate', 'unique_keys')
def test_unique_keys(case):
    assert _unique_keys(case) is None


@pytest.mark.cases('validate', 'unique_keys_refused')
def test_unique_keys_refused(case, raises_validation):
    with raises_validation(case['error']):
        _unique_keys(case)


def test_every_check_has_cases(case_table):
    """Each public check of _validate appears in the case table."""
    covered = {case['func'] for section in ('valid', 'invalid') for case in case_table('validate', section)
               if case.get('module', 'validate') == 'validate'}
    assert covered | {'unique_keys'} == set(_validate.__all__)
