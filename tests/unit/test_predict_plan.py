# -*- coding: utf-8 -*-
# Copyright: contributors to hostnet.provision
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The kinds' decide step: normalize, check_all, predict and the bridge's
plan, from cases/predict_plan.yml. Nothing here reaches the kernel: the
kernel is a stand-in that fails the test when called, namespace identity
comes from a table, and plans are inspected, never run."""

from __future__ import annotations

import pytest

from ansible_collections.hostnet.provision.plugins.module_utils import _clash
from ansible_collections.hostnet.provision.plugins.module_utils import _nft
from ansible_collections.hostnet.provision.plugins.module_utils import _nsfs
from ansible_collections.hostnet.provision.plugins.module_utils._engine import Context
from ansible_collections.hostnet.provision.plugins.module_utils._kind_bridge import BridgeKind
from ansible_collections.hostnet.provision.plugins.module_utils._kind_netns import NetnsKind
from ansible_collections.hostnet.provision.plugins.module_utils._kind_veth import VethKind

KINDS = {'bridge': BridgeKind, 'veth': VethKind, 'netns': NetnsKind}

# Namespace spec → identity, instead of stat() on /run/netns and /proc.
NAMESPACE_IDS = {None: 'self', '': 'self', 'web': 'web', '/run/netns/web': 'web', 'db': 'db'}


class RefusingKernel:
    """Stands in for _netlink.Kernel: attributes exist, calls fail."""

    def __getattr__(self, name):
        if name.startswith('_'):
            raise AttributeError(name)

        def refuse(*args, **kwargs):
            raise AssertionError('kernel.%s%r called during a pure step' % (name, args))
        return refuse


@pytest.fixture(autouse=True)
def _no_namespace_files(monkeypatch):
    monkeypatch.setattr(_nsfs, 'namespace_id', NAMESPACE_IDS.get)
    # Plans are the same whether or not libnftables is installed here.
    monkeypatch.setattr(_nft, 'available', lambda: True)
    # The clash check reads the host's routing; it has its own tests
    # (tests/integration/test_clash.py).
    monkeypatch.setattr(_clash, 'check', lambda *args, **kwargs: None)
    # So does the look at a bridge's ports before deleting it
    # (tests/integration/test_ownership.py).
    monkeypatch.setattr(BridgeKind, '_keep_for_foreign_ports', lambda *args: False)


def _kind(name):
    return KINDS[name](RefusingKernel(), Context())


@pytest.mark.cases('predict_plan', 'normalize')
def test_normalize(case):
    assert _kind(case['kind']).normalize(case['item']) == case['expect']


@pytest.mark.cases('predict_plan', 'normalize_refused')
def test_normalize_refused(case, raises_validation):
    with raises_validation(case['error']):
        _kind(case['kind']).normalize(case['item'])


def _check_all(case):
    kind = _kind(case['kind'])
    return kind.check_all([kind.normalize(item) for item in case['items']])


@pytest.mark.cases('predict_plan', 'check_all')
def test_check_all(case):
    assert _check_all(case) is None


@pytest.mark.cases('predict_plan', 'check_all_refused')
def test_check_all_refused(case, raises_validation):
    with raises_validation(case['error']):
        _check_all(case)


def _predict(case):
    kind = _kind(case['kind'])
    return kind.predict(case['before'], kind.normalize(case['item']), case['replace'])


@pytest.mark.cases('predict_plan', 'predict')
def test_predict(case):
    assert _predict(case) == case['after']


@pytest.mark.cases('predict_plan', 'predict_refused')
def test_predict_refused(case, raises_validation):
    with raises_validation(case['error']):
        _predict(case)


@pytest.mark.cases('predict_plan', 'bridge_plan')
def test_bridge_plan(case):
    before, after = case['before'], case['after']
    key = ((after or before)['netns'], (after or before)['name'])
    assert [op.text for op in _kind('bridge').plan(key, before, after)] == case['ops']
