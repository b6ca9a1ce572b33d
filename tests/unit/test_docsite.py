# -*- coding: utf-8 -*-
# Copyright: contributors to hostnet.provision
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The docs site: its lint, the link check, and the pictures drawn from net_info.

The pictures are rendered from recorded net_info results of the lab
(tests/unit/fixtures/netinfo/, recorded by `scripts/docs.sh record`).
"""

from __future__ import annotations

import html
import importlib.util
import os
import re
import shutil
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
FIXTURES = os.path.join(HERE, 'fixtures', 'netinfo')
# The docs tooling is in .venv only (requirements-dev.txt): the docs tests run
# there, once, not again under .venv-pyroute2-0.7 or ansible-test units.
HAS_DOCS_TOOLS = all(importlib.util.find_spec(m) for m in ('antsibull_docs', 'pypandoc'))


def _load(name):
    spec = importlib.util.spec_from_file_location(name, os.path.join(REPO, 'scripts', name + '.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _dot(argv, capsys):
    netpic = _load('netpic')
    assert netpic.main(argv) == 0
    return capsys.readouterr().out


def _node(dot, host, netns, link):
    """The label of node host/netns/link, as a list of lines."""
    match = re.search(r'^\s*"%s" \[label="([^"]*)"' % re.escape('%s/%s/%s' % (host, netns, link)), dot, re.M)
    assert match, 'no node %s/%s/%s in\n%s' % (host, netns, link, dot)
    return [line for line in match.group(1).split('\\l') if line]


def test_picture_of_the_bridge_networks(capsys):
    """lab1's bridges, each endpoint namespace with its address, the veth pairs between them."""
    dot = _dot(['--only', 'br-web', 'br-backend', '--', os.path.join(FIXTURES, 'lab1.json')], capsys)
    assert _node(dot, 'lab1', '', 'br-web') == ['br-web (bridge)', '198.51.100.1/25', '2001:db8:100::1/64']
    assert _node(dot, 'lab1', '', 'br-backend') == ['br-backend (bridge)', '198.51.100.129/25']
    endpoints = {'web1': ('br-web', '198.51.100.2/25', '198.51.100.1'),
                 'web2': ('br-web', '198.51.100.3/25', '198.51.100.1'),
                 'db1': ('br-backend', '198.51.100.130/25', '198.51.100.129'),
                 'db2': ('br-backend', '198.51.100.131/25', '198.51.100.129')}
    for netns, (bridge, address, gateway) in endpoints.items():
        assert '"cluster_lab1/%s"' % netns in dot
        label = _node(dot, 'lab1', netns, 'eth0')
        assert address in label and 'default via %s' % gateway in label, label
        host_end = 've%s-%s' % (bridge[3:], netns)
        assert '"lab1//%s" -> "lab1//%s" [arrowhead=none];' % (bridge, host_end) in dot
        assert '"lab1//%s" -> "lab1/%s/eth0" [arrowhead=none, style=bold' % (host_end, netns) in dot
    # --only: the overlay and the underlay of lab1 are left out
    assert 'ov-ov1' not in dot and '198.18.0.11' not in dot


def test_picture_of_the_overlay(capsys):
    """One VXLAN device per host, joined across the three hosts; each host's block and endpoint."""
    files = [os.path.join(FIXTURES, 'lab%d.json' % i) for i in (1, 2, 3)]
    dot = _dot(['--only', 'ov-ov1', 'eth0', '--'] + files, capsys)
    for i in (1, 2, 3):
        assert _node(dot, 'lab%d' % i, '', 'vx-ov1')[:2] == ['vx-ov1 (vxlan)', 'VNI 4242']
        assert '198.18.0.1%d/24' % i in _node(dot, 'lab%d' % i, '', 'eth0')
        assert '"lab%d//ov-ov1" -> "lab%d//vx-ov1" [arrowhead=none];' % (i, i) in dot
    assert len(re.findall(r'"lab\d//vx-ov1" -> "lab\d//vx-ov1" .*label="VXLAN 4242"', dot)) == 2
    assert 'tn-acme' not in dot and 'br-web' not in dot


def test_picture_of_macvlan_and_router(capsys):
    dot = _dot(['host=' + os.path.join(FIXTURES, 'macvlan.json')], capsys)
    for netns, address in (('app1', '203.0.113.10/24'), ('app2', '203.0.113.11/24')):
        assert _node(dot, 'host', netns, 'eth0')[:3] == ['eth0 (macvlan)', 'mode bridge', address]
        assert '"host//uplink0" -> "host/%s/eth0" [arrowhead=none, style=dashed, label="parent"];' % netns in dot
    dot = _dot(['host=' + os.path.join(FIXTURES, 'router.json')], capsys)
    assert '"host/router/to-left" -> "host/left/eth0"' in dot
    assert 'default via 198.51.100.129' in _node(dot, 'host', 'right', 'eth0')


def test_picture_renders_with_graphviz(tmp_path):
    if not shutil.which('dot'):
        pytest.skip("Graphviz's dot is not installed")
    out = subprocess.run([sys.executable, os.path.join(REPO, 'scripts', 'netpic.py'),
                          os.path.join(FIXTURES, 'lab2.json')], capture_output=True, text=True, check=True).stdout
    svg = html.unescape(subprocess.run(['dot', '-Tsvg'], input=out, capture_output=True, text=True, check=True).stdout)
    assert '<svg' in svg and 'tn-globex' in svg and '203.0.113.66/26' in svg


def _tree(tmp_path):
    """A tree the link check can read: docs/ and scripts/docsite.py copied, the rest linked."""
    for entry in os.listdir(REPO):
        if entry in ('.git', 'docs', 'scripts') or entry.startswith(('.venv', '.cache')):
            continue
        os.symlink(os.path.join(REPO, entry), tmp_path / entry)
    shutil.copytree(os.path.join(REPO, 'docs'), tmp_path / 'docs')
    (tmp_path / 'scripts').mkdir()
    shutil.copy(os.path.join(REPO, 'scripts', 'docsite.py'), tmp_path / 'scripts')
    return tmp_path


def _links(root):
    return subprocess.run([sys.executable, str(root / 'scripts' / 'docsite.py'), '--links'],
                          capture_output=True, text=True, check=False)


def test_link_check(tmp_path):
    root = _tree(tmp_path)
    assert _links(root).returncode == 0, _links(root).stderr
    with open(root / 'docs' / 'dns.md', 'a', encoding='utf-8') as handle:
        handle.write('\nSee [the missing guide](missing.md) and [a site](https://example.invalid/x).\n')
    (root / 'docs' / 'docsite' / 'rst' / 'images' / 'overlay.svg').unlink()
    result = _links(root)
    assert result.returncode == 1
    assert 'docs/dns.md' in result.stderr and 'missing.md does not exist' in result.stderr
    assert 'link to example.invalid: https://example.invalid/x' in result.stderr
    assert 'docs/overlay.md' in result.stderr and 'overlay.svg does not exist' in result.stderr


@pytest.mark.skipif(not HAS_DOCS_TOOLS, reason='antsibull-docs and pypandoc-binary are in .venv only (requirements-dev.txt)')
def test_docs_lint():
    """scripts/docs.sh lint: guides up to date, links, antsibull-docs lint-collection-docs --plugin-docs."""
    result = subprocess.run(['bash', os.path.join(REPO, 'scripts', 'docs.sh'), 'lint'],
                            capture_output=True, text=True, check=False, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert 'docs.sh: lint ok' in result.stdout


@pytest.mark.skipif(not HAS_DOCS_TOOLS, reason='antsibull-docs and pypandoc-binary are in .venv only (requirements-dev.txt)')
def test_stale_guide_is_found(tmp_path):
    """An edit of docs/NAME.md without regenerating docs/docsite/rst/NAME.rst fails the check."""
    root = _tree(tmp_path)
    check = [sys.executable, str(root / 'scripts' / 'docsite.py'), '--check']
    with open(root / 'docs' / 'router.md', 'a', encoding='utf-8') as handle:
        handle.write('\nOne more paragraph.\n')
    result = subprocess.run(check, capture_output=True, text=True, check=False)
    assert result.returncode == 1 and 'docs/docsite/rst/router.rst' in result.stderr, result.stderr
