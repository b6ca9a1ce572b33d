# -*- coding: utf-8 -*-
"""playbooks/site.yml on the local lab, then a "reboot" of every host (every
namespace, link and nftables table the collection made is deleted, /run is
emptied) and hostnet-restore, installed by the role boot_restore, brings it
all back: proven by restore --check, by the next site.yml run changing
nothing, and by its reachability report (real packets, every check as
expected, or the play fails)."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from conftest import COLLECTIONS, REPO
from test_lab import lab

pytestmark = [pytest.mark.lab, pytest.mark.playbook]

HOSTS = ('lab1', 'lab2', 'lab3')
WIPE = r'''
for p in /run/hostnet/dns/*.pid; do [ -f "$p" ] && kill "$(cat "$p")"; done
ip -all netns delete
for l in $(ls /sys/class/net); do case $l in lo|eth0) ;; *) ip link del "$l" 2>/dev/null ;; esac; done
for f in inet bridge; do nft delete table $f hostnet 2>/dev/null; done
rm -rf /run/hostnet
echo "left: $(ls /sys/class/net | tr '\n' ' ')tables: $(nft list tables | wc -l)"
'''


def site(lab_dir):
    # The lab hosts have /etc of their own (an overlay): the records go to
    # each host's /etc/hostnet/state, as on a real host, not to the shared
    # throwaway directory of the in-process tests.
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=COLLECTIONS, ANSIBLE_NOCOLOR='1')
    env.pop('HOSTNET_STATE_DIR', None)
    binary = os.path.join(os.path.dirname(sys.executable), 'ansible-playbook')
    proc = subprocess.run([binary, '-i', os.path.join(str(lab_dir), 'inventory.yml'),
                           '-i', os.path.join(REPO, 'playbooks', 'inventory', 'lab'),
                           os.path.join(REPO, 'playbooks', 'site.yml')],
                          env=env, capture_output=True, text=True, timeout=900, check=False)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    recap = dict((m.group(1), int(m.group(2))) for m in re.finditer(r'^(lab\d)\s+:.*changed=(\d+)', proc.stdout, re.M))
    assert sorted(recap) == list(HOSTS), proc.stdout[-2000:]
    return recap, proc.stdout


def changed_tasks(out):
    """The names of the tasks that changed something on some host."""
    return sorted(set(m.group(1) for chunk in out.split('\nTASK [')[1:] for m in [re.match(r'(.*?)\] \*', chunk)]
                      if m and re.search(r'^changed: \[', chunk, re.M)))


def on(lab_dir, host, script, **env):
    prefix = ' '.join('%s=%s' % item for item in sorted(env.items()))
    return lab(lab_dir, 'exec', host, 'sh', '-c', 'unset HOSTNET_STATE_DIR; ' + ('export %s; ' % prefix if prefix else '')
               + script, check=False)


@pytest.fixture
def lab_dir(tmp_path):
    path = tmp_path / 'lab'
    lab(path, 'up', '3')
    yield path
    lab(path, 'down', check=False)


def test_site_comes_back_after_a_reboot_without_a_play(lab_dir):
    site(lab_dir)
    restore_env = {'HOSTNET_RESTORE_PYTHON': sys.executable}
    for host in HOSTS:
        # Installed by the role, records written by the modules, in sync.
        check = on(lab_dir, host, 'hostnet-restore --check', PATH='/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin',
                   **restore_env)
        assert check.returncode == 0 and check.stdout.splitlines()[-1].startswith('hostnet-restore --check: '), \
            check.stdout + check.stderr
        assert ' ok' in check.stdout.splitlines()[-1] and 'drift' not in check.stdout
        wiped = on(lab_dir, host, WIPE)
        assert wiped.stdout.strip() == 'left: eth0 lo tables: 0', wiped.stdout + wiped.stderr
        restored = on(lab_dir, host, '/usr/local/sbin/hostnet-restore', **restore_env)
        assert restored.returncode == 0, restored.stdout + restored.stderr
        assert re.match(r'hostnet-restore: \d+ changed$', restored.stdout.splitlines()[-1]), restored.stdout
    # Nothing left for the play to do but start the name resolvers again
    # (in the lab they run under the dns module's own supervision, not as
    # systemd units that start at boot), and every check holds.
    recap, out = site(lab_dir)
    assert recap == {'lab1': 1, 'lab2': 1, 'lab3': 0}, out[-3000:]
    assert changed_tasks(out) == ["hostnet.provision.bridge_network : Networks, endpoints, published ports and "
                                  "resolvers"], out[-3000:]
    assert len(re.findall(r'reachability \(real packets\): (\d+) of \1 as expected', out)) == 3, out[-3000:]
    # Names, from inside the endpoints: the own network's (and an alias) over
    # IPv4 and IPv6, reachable by name; another network's or tenant's not at all.
    report = out.split('TASK [Show the report]', 1)[1]
    names = re.findall(r'names \(lookups inside the endpoints\): (\d+) of (\d+) as expected', report)
    assert sorted(names) == [('4', '4'), ('7', '7')], report[-4000:]
    for line in (r'ok +network web: web1 resolves web2 \(IPv4\) +198\.51\.100\.3"',
                 r'ok +network web: web1 resolves web2 \(IPv6\) +2001:db8:100::3"',
                 r'ok +network web: web1 resolves www \(IPv6\) +2001:db8:100::3"',
                 r'ok +network web: web1 resolves db1 of network backend +not found"',
                 r'ok +network web: web1 -> www by name \(2001:db8:100::3\) +reaches"',
                 r'ok +network backend: db1 -> db2 by name \(198\.51\.100\.131\) +blocked"',
                 r'ok +tenant acme: acme1 resolves acme2 \(IPv4\) +203\.0\.113\.3"',
                 r'ok +tenant acme: acme1 resolves globex1 of tenant globex +not found"',
                 r'ok +tenant globex: globex1 -> globex2 by name \(203\.0\.113\.67\) +reaches"'):
        assert re.search(line, report), (line, report[-4000:])
