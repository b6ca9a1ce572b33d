# -*- coding: utf-8 -*-
"""Warnings of one cause for many resources are said once per call."""

from __future__ import annotations

from ansible_collections.hostnet.provision.plugins.module_utils._engine import Context


def test_one_warning_per_cause_naming_every_item_once():
    said = []
    ctx = Context(warn=said.append)
    for n in range(20):
        ctx.warn_each('hairpin', 'dest%d' % n, 'not behind a managed bridge: %s (hairpin)')
    ctx.warn_each('hairpin', 'dest0', 'not behind a managed bridge: %s (hairpin)')
    ctx.warn_each(('host_ip', 'ns1'), '198.51.100.9', 'check mode: host_ip not in ns1: %s')
    assert said == []
    ctx.flush_warnings()
    assert said == ['not behind a managed bridge: %s (hairpin)' % ', '.join('dest%d' % n for n in range(20)),
                    'check mode: host_ip not in ns1: 198.51.100.9']
    assert ctx.warnings == said
    ctx.flush_warnings()  # nothing collected since: nothing said again
    assert len(said) == 2
