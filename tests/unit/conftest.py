# -*- coding: utf-8 -*-
# Copyright: contributors to hostnet.provision
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests: the engine's pure logic, table-driven from cases/*.yml.

No root, no namespaces, no network. A test function marked
``@pytest.mark.cases('FILE', 'SECTION')`` receives each entry of that
section of ``cases/FILE.yml`` as its ``case`` argument; an entry with an
``xfail`` key is a known bug (strict: it must keep failing until fixed).
"""

from __future__ import annotations

import contextlib
import os
import sys

import pytest
import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
COLLECTIONS = os.path.join(REPO, '.cache', 'collections')


def _ensure_collection_path():
    """Make ``ansible_collections.hostnet.provision`` importable from the repo."""
    link = os.path.join(COLLECTIONS, 'ansible_collections', 'hostnet', 'provision')
    if not os.path.islink(link):
        os.makedirs(os.path.dirname(link), exist_ok=True)
        try:
            os.symlink(REPO, link)
        except FileExistsError:  # made meanwhile by another test run
            pass
    if COLLECTIONS in sys.path:
        sys.path.remove(COLLECTIONS)
    sys.path.insert(0, COLLECTIONS)


_ensure_collection_path()

# pylint: disable=wrong-import-position
from ansible_collections.hostnet.provision.plugins.module_utils._errors import ValidationError  # noqa: E402


def pytest_configure(config):
    config.addinivalue_line('markers', 'cases(file, section): parametrize "case" from cases/FILE.yml')


def load_cases(file, section):
    with open(os.path.join(HERE, 'cases', '%s.yml' % file), encoding='utf-8') as fh:
        return yaml.safe_load(fh)[section]


def _param(case):
    marks = [pytest.mark.xfail(strict=True, reason=case['xfail'])] if case.get('xfail') else []
    return pytest.param(case, id=case['id'], marks=marks)


def pytest_generate_tests(metafunc):
    marker = metafunc.definition.get_closest_marker('cases')
    if marker is not None:
        metafunc.parametrize('case', [_param(case) for case in load_cases(*marker.args)])


@contextlib.contextmanager
def _raises_validation(expected):
    """Expect a ValidationError matching ``expected``: field and value exactly,
    ``msg`` (a string or a list of strings) as substrings of the message,
    ``resource`` exactly if given."""
    with pytest.raises(ValidationError) as info:
        yield info
    err = info.value
    assert (err.field, err.value) == (expected['field'], expected['value'])
    msgs = expected['msg'] if isinstance(expected['msg'], list) else [expected['msg']]
    for msg in msgs:
        assert msg in str(err)
    if 'resource' in expected:
        assert err.resource == expected['resource']


@pytest.fixture
def case_table():
    """``case_table(file, section)``: the raw list of cases."""
    return load_cases


@pytest.fixture
def raises_validation():
    """``with raises_validation(case['error']): ...``"""
    return _raises_validation


@pytest.fixture(autouse=True)
def _intents_in_tmp(tmp_path, monkeypatch):
    """Link records (see _intent) go to a throwaway directory, never
    to the machine's /run/hostnet."""
    from ansible_collections.hostnet.provision.plugins.module_utils import _intent
    monkeypatch.setattr(_intent, 'LINKS_DIR', str(tmp_path / 'links'))
    _intent.forget_cache()
