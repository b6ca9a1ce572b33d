# -*- coding: utf-8 -*-
"""The collection as users get it: built into a tarball, installed into a
fresh path, and used from a project outside the repository."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tarfile
import textwrap

import pytest

from conftest import REPO
from helpers import addresses, link, netns_names

pytestmark = pytest.mark.playbook

BIN = os.path.dirname(sys.executable)

USER_PLAYBOOK = textwrap.dedent('''\
    ---
    - name: A user's project that uses the installed collection
      hosts: localhost
      connection: local
      gather_facts: false
      tasks:
        - name: One small bridge network through the role, by its FQCN
          ansible.builtin.include_role:
            name: hostnet.provision.bridge_network
          vars:
            # forwarding on (in the sandbox), persisted under the project, not /etc
            bridge_network_sysctl_file: "{{ playbook_dir }}/60-hostnet-provision.conf"
            bridge_network_networks:
              - name: tb
                subnet: 198.51.100.0/28
                endpoints:
                  - name: tb1

        - name: Resource modules with the group's default state
          module_defaults:
            group/hostnet.provision.hostnet:
              state: replaced
            hostnet.provision.net_info:
              gather: [managed]
          block:
            - name: A bridge of the user's own
              hostnet.provision.bridge:
                config:
                  - name: tb-own
                    addresses: [198.18.0.1/24]

            - name: Read back what the collection manages
              hostnet.provision.net_info:
              register: tb_info

        - name: The role's fact and net_info agree
          ansible.builtin.assert:
            that:
              - bridge_network_result | map(attribute='name') | list == ['tb']
              - tb_info.net_info.keys() | list == ['managed']
              - tb_info.net_info.managed.bridge | map(attribute='name') | sort == ['br-tb', 'tb-own']
    ''')


def run(cmd, cwd, env=None):
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, '%s failed:\n%s%s' % (' '.join(cmd), proc.stdout[-3000:], proc.stderr[-3000:])
    return proc.stdout


@pytest.fixture(scope='module')
def tarball(tmp_path_factory):
    out = tmp_path_factory.mktemp('build')
    run([os.path.join(BIN, 'ansible-galaxy'), 'collection', 'build', '--output-path', str(out), REPO], cwd=str(out))
    built = [name for name in os.listdir(str(out)) if name.endswith('.tar.gz')]
    assert len(built) == 1, built
    return os.path.join(str(out), built[0])


def test_tarball_holds_the_collection_not_the_development_tree(tarball):
    with tarfile.open(tarball) as tar:
        members = tar.getnames()
    tops = {name.split('/')[0] for name in members}
    for dev in ('bench', 'molecule', 'scripts', 'tests', '.ci', '.git', '.venv', '.cache',
                'requirements-dev.txt', 'pytest.ini', '.ansible-lint', '.gitignore'):
        assert dev not in tops, dev
    assert not [name for name in members if '__pycache__' in name or name.endswith('.pyc')]
    for shipped in ('plugins', 'roles', 'playbooks', 'docs', 'meta', 'changelogs',
                    'README.md', 'CHANGELOG.rst', 'LICENSE', 'MANIFEST.json', 'FILES.json'):
        assert shipped in tops, shipped
    modules = {name for name in members if re.match(r'plugins/modules/\w+\.py$', name)}
    assert modules == {'plugins/modules/%s' % name for name in os.listdir(os.path.join(REPO, 'plugins', 'modules'))
                       if name.endswith('.py')}
    assert len(modules) == 11
    for role in os.listdir(os.path.join(REPO, 'roles')):
        assert 'roles/%s/tasks/main.yml' % role in members
        assert 'roles/%s/meta/argument_specs.yml' % role in members
    assert 'meta/runtime.yml' in members
    assert 'changelogs/changelog.yaml' in members


def test_installed_tarball_runs_a_user_project_outside_the_repository(tarball, tmp_path):
    install = tmp_path / 'collections'
    # Nothing of the developer's set-up (ANSIBLE_COLLECTIONS_PATH pointing
    # at the checkout would make the install a no-op): a user's environment.
    env = {key: value for key, value in os.environ.items() if not key.startswith('ANSIBLE_')}
    env.update(ANSIBLE_COLLECTIONS_PATH=str(install), ANSIBLE_COLLECTIONS_SCAN_SYS_PATH='false',
               ANSIBLE_LOCALHOST_WARNING='false', ANSIBLE_INVENTORY_UNPARSED_WARNING='false',
               ANSIBLE_NOCOLOR='1', ANSIBLE_FORCE_COLOR='0', ANSIBLE_HOME=str(tmp_path / 'home'))
    env.pop('PYTHONPATH', None)
    run([os.path.join(BIN, 'ansible-galaxy'), 'collection', 'install', '--offline', '-p', str(install), tarball],
        cwd=str(tmp_path), env=env)
    installed = install / 'ansible_collections' / 'hostnet' / 'provision'
    assert (installed / 'MANIFEST.json').is_file()
    assert not (installed / 'tests').exists() and not (installed / 'scripts').exists()

    project = tmp_path / 'project'
    project.mkdir()
    (project / 'site.yml').write_text(USER_PLAYBOOK)
    # The installed copy is the only one Ansible can see.
    listing = run([os.path.join(BIN, 'ansible-galaxy'), 'collection', 'list', 'hostnet.provision'],
                  cwd=str(project), env=env)
    assert str(install) in listing and REPO not in listing

    cmd = [os.path.join(BIN, 'ansible-playbook'), '-i', 'localhost,', 'site.yml',
           '-e', 'ansible_python_interpreter=%s' % sys.executable]
    out = run(cmd, cwd=str(project), env=env)
    assert re.search(r'^localhost\s+:.*failed=0', out, re.M), out[-3000:]
    assert 'tb1' in netns_names()
    bridge = link('br-tb', details=True)
    assert bridge['linkinfo']['info_kind'] == 'bridge'
    assert addresses('br-tb') == ['198.51.100.1/28']
    assert addresses('tb-own') == ['198.18.0.1/24']
    assert 'net.ipv4.ip_forward' in (project / '60-hostnet-provision.conf').read_text()

    # A second run changes nothing.
    out = run(cmd, cwd=str(project), env=env)
    assert re.search(r'^localhost\s+:.*changed=0 .*failed=0', out, re.M), out[-3000:]

    # docs/hosts.md: the shipped example inventory, copied into a project,
    # with the collection's main play run by its name (syntax and inventory:
    # its hosts are placeholders).
    inventory = project / 'inventory'
    run(['cp', '-r', str(installed / 'playbooks' / 'inventory' / 'example'), str(inventory)], cwd=str(project))
    listing = run([os.path.join(BIN, 'ansible-inventory'), '-i', str(inventory), '--list'], cwd=str(project), env=env)
    for group in ('bridge_hosts', 'tenant_hosts', 'overlay_hosts'):
        assert '"%s"' % group in listing
    assert '"ansible_become": true' in listing
    run([os.path.join(BIN, 'ansible-playbook'), '-i', str(inventory), 'hostnet.provision.site', '--syntax-check'],
        cwd=str(project), env=env)
    (project / 'fleet.yml').write_text(textwrap.dedent('''\
        ---
        - name: Hosts ready for hostnet.provision
          hosts: all
          become: true
          roles:
            - role: hostnet.provision.prerequisites
        - name: The collection's own main play
          ansible.builtin.import_playbook: hostnet.provision.site
        '''))
    run([os.path.join(BIN, 'ansible-playbook'), '-i', str(inventory), 'fleet.yml', '--syntax-check'],
        cwd=str(project), env=env)
