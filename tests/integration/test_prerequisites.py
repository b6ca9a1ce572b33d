# -*- coding: utf-8 -*-
"""The prerequisites role: installs with the host's package manager, then
proves pyroute2 and libnftables load by running two of the modules; a
missing library fails naming its package."""

from __future__ import annotations

import os

import pytest

from test_playbook import run_playbook

pytestmark = pytest.mark.playbook

PLAYBOOK = os.path.join(os.path.dirname(__file__), 'playbooks', 'prerequisites.yml')


def test_installed_packages_are_kept_and_the_modules_load():
    rc, stats, output = run_playbook(PLAYBOOK)
    assert rc == 0, output[-3000:]
    assert stats['failed'] == 0 and stats['changed'] == 0, output[-3000:]
    assert 'The modules can read nftables (libnftables)' in output


def test_a_missing_nftables_library_is_named(tmp_path):
    """Without libnftables (hidden from the module's Python by a library
    path that shadows it with an empty file), the check fails and names
    the package to install."""
    fake = tmp_path / 'libnftables.so.1'
    fake.write_bytes(b'')
    rc, stats, output = run_playbook(PLAYBOOK, '-e', '{"prerequisites_install": false}',
                                     env={'LD_LIBRARY_PATH': str(tmp_path)})
    assert rc != 0 and stats['failed'] == 1, output[-3000:]
    assert 'libnftables1' in output, output[-3000:]
