# -*- coding: utf-8 -*-
# Copyright: contributors to hostnet.provision
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The records of the desired state (atomic files with a schema) and the
per-host lock, on a temporary directory: no root, no kernel."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from ansible_collections.hostnet.provision.plugins.module_utils import _record
from ansible_collections.hostnet.provision.plugins.module_utils._errors import HostnetError
from ansible_collections.hostnet.provision.plugins.module_utils._lock import LockTimeout, host_lock, lock_timeout

BR = [{'name': 'hn-br0', 'netns': None, 'addresses': ['198.51.100.1/24']}]


def test_file_names_per_kind_and_namespace():
    assert _record.file_name('bridge', None) == 'bridge.json'
    assert _record.file_name('veth', 'tenant-a') == 'veth@tenant-a.json'
    # Names are quoted: nothing a namespace name holds escapes the directory.
    assert _record.file_name('veth', 'a@b%c') == 'veth@a%40b%25c.json'
    assert _record._parse_name('veth@a%40b%25c.json') == ('veth', 'a@b%c')
    assert _record._parse_name('.veth.json.12.tmp') is None
    assert _record.recordable(None) and _record.recordable('tenant-a')
    assert not _record.recordable('/proc/1/ns/net') and not _record.recordable('pid:1')


def test_write_is_atomic_with_schema_and_no_leftovers(tmp_path):
    d = str(tmp_path / 'state')
    assert _record.write(d, 'bridge', 'ns-a', BR) is True
    with open(os.path.join(d, 'bridge@ns-a.json')) as fh:
        data = json.load(fh)
    assert data['schema'] == _record.SCHEMA == 1
    assert (data['kind'], data['netns'], data['config']) == ('bridge', 'ns-a', BR)
    assert os.listdir(d) == ['bridge@ns-a.json']
    # The same content is not rewritten (no churn, no fsync); new content is.
    mtime = os.stat(os.path.join(d, 'bridge@ns-a.json')).st_mtime_ns
    assert _record.write(d, 'bridge', 'ns-a', BR) is False
    assert os.stat(os.path.join(d, 'bridge@ns-a.json')).st_mtime_ns == mtime
    assert _record.write(d, 'bridge', 'ns-a', BR + [{'name': 'hn-br1'}]) is True
    assert _record.load(os.path.join(d, 'bridge@ns-a.json'), 'bridge', 'ns-a')['config'][1] == {'name': 'hn-br1'}
    # Nothing left of a kind: no file.
    assert _record.write(d, 'bridge', 'ns-a', []) is True
    assert os.listdir(d) == []
    assert _record.write(d, 'bridge', 'ns-a', []) is False


def test_a_failed_write_keeps_the_old_record_and_leaves_no_temporary(tmp_path, monkeypatch):
    d = str(tmp_path)
    _record.write(d, 'bridge', None, BR)

    def broken_replace(src, dst):
        raise OSError(28, 'No space left on device')
    monkeypatch.setattr(_record.os, 'replace', broken_replace)
    with pytest.raises(HostnetError, match='No space left on device.*record: false'):
        _record.write(d, 'bridge', None, BR + [{'name': 'hn-br1'}])
    assert os.listdir(d) == ['bridge.json']
    assert _record.load(os.path.join(d, 'bridge.json'))['config'] == BR


@pytest.mark.parametrize('content, problem', [
    ('{"schema": 2, "kind": "bridge", "netns": null, "config": []}', 'schema 2, this version reads schema 1'),
    ('{"kind": "bridge", "netns": null, "config": []}', 'schema None'),
    ('{"schema": 1, "kind": "bridge", "netns": null, "config": {}}', 'config is not a list'),
    ('{"schema": 1, "kind": "veth", "netns": null, "config": []}', 'it names veth'),
    ('[1, 2]', 'not a JSON object'),
    ('{"schema": 1, "kind": "bri', 'unreadable'),
])
def test_records_of_another_schema_or_shape_are_refused(tmp_path, content, problem):
    path = tmp_path / 'bridge.json'
    path.write_text(content)
    with pytest.raises(HostnetError, match=problem):
        _record.load(str(path), 'bridge', None)
    assert _record.load(str(path), 'bridge', None, strict=False) is None


def test_load_all_in_dependency_order_with_errors_in_place(tmp_path):
    d = str(tmp_path)
    for kind, netns in (('vxlan_peer', None), ('portmap', None), ('veth', 'b'), ('veth', None), ('netns', None),
                        ('bridge', 'a')):
        _record.write(d, kind, netns, [{'name': 'x'}])
    (tmp_path / 'macvlan.json').write_text('{"schema": 7}')
    (tmp_path / 'tunnel.json').write_text('{}')
    (tmp_path / '.veth.json.1.tmp').write_text('half')
    (tmp_path / 'notes.txt').write_text('not a record')
    found = _record.load_all(d)
    assert [(k, n) for k, n, _p, _r in found] == [
        ('netns', None), ('bridge', 'a'), ('veth', None), ('veth', 'b'), ('macvlan', None), ('portmap', None),
        ('vxlan_peer', None), ('tunnel', None)]
    assert isinstance(found[4][3], HostnetError) and 'schema 7' in str(found[4][3])
    assert isinstance(found[-1][3], HostnetError) and "unknown kind 'tunnel'" in str(found[-1][3])
    assert _record.load_all(str(tmp_path / 'missing')) == []


def test_recording_switch(monkeypatch):
    monkeypatch.delenv('HOSTNET_RECORD', raising=False)
    assert _record.enabled() is True and _record.enabled(False) is False
    for off in ('0', 'false', 'No', 'off'):
        monkeypatch.setenv('HOSTNET_RECORD', off)
        assert _record.enabled() is False and _record.enabled(True) is True
    monkeypatch.setenv('HOSTNET_STATE_DIR', '/tmp/x')
    assert _record.state_dir() == '/tmp/x' and _record.state_dir('/y') == '/y'
    monkeypatch.delenv('HOSTNET_STATE_DIR')
    assert _record.state_dir() == '/etc/hostnet/state'


def test_lock_timeout_sources(monkeypatch):
    monkeypatch.delenv('HOSTNET_LOCK_TIMEOUT', raising=False)
    assert lock_timeout() == 300 and lock_timeout(5) == 5
    monkeypatch.setenv('HOSTNET_LOCK_TIMEOUT', '7')
    assert lock_timeout() == 7 and lock_timeout(0) == 0
    for bad in (-1, 'soon', True):
        with pytest.raises(HostnetError, match='lock_timeout'):
            lock_timeout(bad)


HOLD = r'''
import sys, time
from ansible_collections.hostnet.provision.plugins.module_utils._lock import host_lock
with host_lock(lock_dir=sys.argv[1], what='other play'):
    print('held', flush=True)
    time.sleep(30)
'''


def test_the_lock_is_exclusive_names_its_holder_and_is_released(tmp_path):
    d = str(tmp_path)
    proc = subprocess.Popen([sys.executable, '-c', HOLD, d], stdout=subprocess.PIPE, text=True,
                            env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path)))
    try:
        assert proc.stdout.readline().strip() == 'held'
        start = time.monotonic()
        with pytest.raises(LockTimeout) as err:
            with host_lock(0.5, lock_dir=d):
                pass
        assert time.monotonic() - start >= 0.5
        assert 'pid %d (other play), holding it since 20' % proc.pid in str(err.value)
    finally:
        proc.kill()
        proc.wait(timeout=10)
    # A dead holder's flock is gone with it; the stale holder file is replaced.
    with host_lock(0, lock_dir=d, what='me') as lock:
        with open(lock.holder) as fh:
            assert json.load(fh)['pid'] == os.getpid()
        assert oct(os.stat(lock.path).st_mode & 0o777) == '0o600'
    assert not os.path.exists(os.path.join(d, 'lock.holder'))
    # Released at the end of the body, also when it raises.
    with pytest.raises(RuntimeError):
        with host_lock(0, lock_dir=d):
            raise RuntimeError('boom')
    with host_lock(0, lock_dir=d):
        pass
