# -*- coding: utf-8 -*-
"""Run without root, every module fails with a message that says to use
become, before it reads or changes anything."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import COLLECTIONS
from helpers import MODULES, kernel_snapshot, snapshot_diff

CHILD = '''
import contextlib, importlib, io, json, sys
sys.path.insert(0, %r)
from ansible.module_utils.testing import patch_module_args
module = importlib.import_module(%r + sys.argv[1])
out = io.StringIO()
with patch_module_args(json.loads(sys.argv[2])), contextlib.redirect_stdout(out):
    try:
        module.main()
    except SystemExit:
        pass
print(out.getvalue())
''' % (COLLECTIONS, MODULES)


@pytest.mark.parametrize('module, params', [
    ('netns', {'config': [{'name': 'hn-nr'}]}),
    ('bridge', {'config': [{'name': 'hn-nr'}]}),
    ('veth', {'config': [{'name': 'hn-nr', 'peer': {'name': 'eth0'}}]}),
    ('macvlan', {'config': [{'name': 'hn-nr', 'parent': 'lo'}]}),
    ('vxlan', {'config': [{'name': 'hn-nr', 'vni': 1}]}),
    ('vxlan_peer', {'config': [{'device': 'hn-nr', 'peers': ['198.18.0.2']}]}),
    ('portmap', {'state': 'gathered'}),
    ('net_info', {}),
    ('reachability', {'checks': [{'from': '', 'to': '198.18.0.2'}]}),
])
def test_without_root_the_message_says_become(module, params):
    before = kernel_snapshot()
    proc = subprocess.run(['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups', sys.executable, '-c', CHILD,
                           module, json.dumps(params)], capture_output=True, text=True, timeout=60, check=False)
    result = json.loads(proc.stdout)
    assert result.get('failed') is True
    assert 'need root' in result['msg'] and 'become: true' in result['msg'], result['msg']
    assert snapshot_diff(before, kernel_snapshot()) == []
