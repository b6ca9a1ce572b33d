# -*- coding: utf-8 -*-
# Copyright: contributors to hostnet.provision
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The implementations compared, each able to run one phase of a workload.

* ``ours``: ansible-playbook with the collection's roles/modules (bench/playbooks);
* ``floor``: the ip tool's floor - one ``ip -batch`` for what the root
  namespace can do, one ``ip -n NS -batch`` per endpoint namespace, one
  ``nft -f`` transaction, run by one bash script;
* ``naive``: the Ansible people write today, a loop of
  ``ansible.builtin.command: ip ...`` tasks per item (generated here);
* ``pyroute2``: pyroute2 driven item by item from one Python process
  (bench/refs/pyroute2_items.py);
* ``cni``: the CNI reference bridge plugin, one exec per endpoint
  (bench/refs/cni_driver.py; workload 1 only).

A phase returns a Measurement plus ``ops`` (what the implementation says it
did: kernel operations, commands or plugin execs) and ``changed``.
"""

from __future__ import annotations

import json
import os
import re
import sys

from hnbench import measure, topology

BENCH = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REPO = os.path.dirname(BENCH)
VENV_BIN = os.path.dirname(sys.executable)
COLLECTIONS = os.path.join(REPO, '.cache', 'collections')
SYSCTL_FILE = '/run/bench/60-hostnet-provision.conf'
PHASE_TIMEOUT = 3600


def _write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'w') as fh:
        fh.write(text)
    return path


def _json(path, data):
    return _write(path, json.dumps(data, indent=1))


def _recap(log):
    """changed count of the PLAY RECAP line of an ansible-playbook log."""
    try:
        text = open(log).read()
    except OSError:
        return None, ''
    match = re.search(r'^localhost\s+:\s+(.*)$', text, re.M)
    counts = dict((k, int(v)) for k, v in re.findall(r'(\w+)=(\d+)', match.group(1))) if match else {}
    return counts, text


def ansible_env(tasks_json):
    return dict(os.environ, ANSIBLE_COLLECTIONS_PATH=COLLECTIONS, ANSIBLE_LOCALHOST_WARNING='false',
                ANSIBLE_INVENTORY_UNPARSED_WARNING='false', ANSIBLE_NOCOLOR='1', ANSIBLE_FORCE_COLOR='0',
                ANSIBLE_CALLBACK_PLUGINS=os.path.join(BENCH, 'callback_plugins'),
                ANSIBLE_CALLBACKS_ENABLED='bench_timer', BENCH_TASKS_JSON=tasks_json,
                ANSIBLE_RETRY_FILES_ENABLED='false', PATH=VENV_BIN + os.pathsep + os.environ.get('PATH', ''),
                # The records of what the runs make stay in the sandbox's own
                # /run, never in the machine's /etc/hostnet/state.
                HOSTNET_STATE_DIR='/run/bench/state')


def run_playbook(playbook, extra_vars, work, label, ops_from='commands'):
    """ansible-playbook against localhost with the venv's Python; returns
    the Measurement with changed (tasks), ops (kernel operations our modules
    report, or items run by a loop) and per-task seconds."""
    vars_file = _json(os.path.join(work, label + '.vars.json'), extra_vars)
    tasks_json = os.path.join(work, label + '.tasks.json')
    log = os.path.join(work, label + '.log')
    cmd = [os.path.join(VENV_BIN, 'ansible-playbook'), '-i', 'localhost,', playbook, '-e', '@' + vars_file,
           '-e', 'ansible_python_interpreter=' + sys.executable]
    result = measure.run(cmd, env=ansible_env(tasks_json), log=log, timeout=PHASE_TIMEOUT)
    counts, text = _recap(log)
    tasks = []
    try:
        tasks = json.load(open(tasks_json))['tasks']
    except (OSError, ValueError, KeyError):
        pass
    result['changed'] = (counts or {}).get('changed')
    result['failed_tasks'] = (counts or {}).get('failed')
    # ours: the kernel operations our modules report; naive: commands run.
    result['ops'] = sum(t.get(ops_from, 0) for t in tasks)
    result['tasks'] = [{'task': t['task'].split(' : ')[-1][:60], 'seconds': t['seconds'], 'changed': t['changed'],
                        'commands': t.get('commands', 0)} for t in tasks if t.get('status') != 'skipped']
    if result['rc'] != 0:
        result['error'] = text[-2000:]
    return result


# -- ours ---------------------------------------------------------------------

class Ours:
    name = 'ours'
    label = 'hostnet.provision'

    def supports(self, workload, scale, phase):
        return True

    def run(self, workload, spec, phase, work):
        if workload == 'vxlan':
            extra = topology.role_vars(spec, 'absent' if phase == 'teardown' else 'present')
            playbook = 'vxlan.yml'
        elif workload == 'report':
            # The network through the role (converge, teardown); the probes
            # through the reachability module in one task (probe).
            extra = topology.role_vars(spec, 'absent' if phase == 'teardown' else 'present')
            extra['bench_sysctl_file'] = SYSCTL_FILE
            playbook = 'report.yml' if phase == 'probe' else 'bridge_network.yml'
        else:
            extra = topology.role_vars(spec, 'absent' if phase == 'teardown' else 'present')
            extra['bench_sysctl_file'] = SYSCTL_FILE
            playbook = workload + '.yml'
        return run_playbook(os.path.join(BENCH, 'playbooks', playbook), extra, work, 'ours-' + phase)


# -- the ip floor ------------------------------------------------------------

def nft_ruleset(spec):
    """One nftables transaction: published ports (DNAT map, also for the
    host itself), masquerade, and for tenants isolation and no host access."""
    lines = ['table inet bench {']
    nets = spec['networks']
    tenants = spec['workload'] == 'tenant_networks'
    if tenants:
        lines += ['  set tenants {', '    type ifname',
                  '    elements = { %s }' % ', '.join('"%s"' % n['bridge'] for n in nets), '  }',
                  '  set nets {', '    type ipv4_addr', '    flags interval',
                  '    elements = { %s }' % ', '.join(n['subnet'] for n in nets), '  }']
    ports = ['%d : %s . %d' % (p['host_port'], ep['ip'], p['port'])
             for net in nets for ep in net['endpoints'] for p in ep['ports']]
    if ports:
        dnat = '    fib daddr type local dnat ip to tcp dport map { %s }' % ', '.join(ports)
        lines += ['  chain prerouting {', '    type nat hook prerouting priority dstnat; policy accept;', dnat, '  }',
                  '  chain output {', '    type nat hook output priority -100; policy accept;', dnat, '  }']
    lines += ['  chain postrouting {', '    type nat hook postrouting priority srcnat; policy accept;']
    if tenants:
        lines.append('    ip saddr @nets oifname != @tenants masquerade')
    else:
        lines += ['    ip saddr %s oifname != "%s" masquerade' % (n['subnet'], n['bridge']) for n in nets]
    lines.append('  }')
    if tenants:
        lines += ['  chain forward {', '    type filter hook forward priority filter; policy accept;',
                  '    iifname @tenants oifname @tenants drop', '  }',
                  '  chain input {', '    type filter hook input priority filter; policy accept;',
                  '    iifname @tenants ct state established,related accept', '    iifname @tenants drop', '  }']
    lines.append('}')
    return '\n'.join(lines) + '\n'


class Floor:
    name = 'floor'
    label = 'ip -batch floor'

    def supports(self, workload, scale, phase):
        # A shell script has no idempotent re-run: it fails on the first
        # object that exists (or, with -force, re-issues everything blindly).
        return phase not in ('idempotent',)

    def _endpoint_batches(self, net, eps, work, script, root):
        for ep in eps:
            root += ['netns add %s' % ep['name'],
                     'link add %s type veth peer name eth0 netns %s' % (ep['host_if'], ep['name']),
                     'link set %s master %s up' % (ep['host_if'], net['bridge'])]
            path = _write(os.path.join(work, 'floor', 'ns', ep['name']),
                          'link set lo up\naddress add %s dev eth0\nlink set eth0 up\nroute add default via %s\n'
                          % (ep['address'], ep['gateway']))
            script.append('ip -n %s -batch %s' % (ep['name'], path))
        return len(eps) * 7

    def run(self, workload, spec, phase, work, previous=None):
        script = ['set -euo pipefail']
        ops = 0
        if workload == 'vxlan':
            dev = spec['device']
            if phase == 'converge':
                script += ['ip link add %s type vxlan id %d local %s dev %s dstport 4789 nolearning'
                           % (dev, spec['vni'], spec['local'], spec['underlay']), 'ip link set %s up' % dev]
                path = _write(os.path.join(work, 'floor', 'fdb'),
                              ''.join('fdb append 00:00:00:00:00:00 dev %s dst %s\n' % (dev, p) for p in spec['peers']))
                script.append('bridge -batch %s' % path)
                ops = 2 + len(spec['peers'])
            elif phase == 'add1':
                script.append('bridge fdb append 00:00:00:00:00:00 dev %s dst %s' % (dev, spec['peers'][-1]))
                ops = 1
            elif phase == 'rm1':
                script.append('bridge fdb del 00:00:00:00:00:00 dev %s dst %s' % (dev, spec['remove'][0]))
                ops = 1
            else:
                script.append('ip link del %s' % dev)
                ops = 1
        elif phase == 'teardown':
            names = [ep['name'] for net in spec['networks'] for ep in net['endpoints']]
            path = _write(os.path.join(work, 'floor', 'teardown'),
                          ''.join('netns del %s\n' % n for n in names)
                          + ''.join('link del %s\n' % net['bridge'] for net in spec['networks']))
            script += ['ip -batch %s' % path, 'nft delete table inet bench',
                       # Deleting a namespace returns before the kernel has
                       # destroyed its links; wait until the host ends are gone.
                       'for _ in $(seq 1200); do [[ -z $(ip -o link show type veth) ]] && break; sleep 0.05; done']
            ops = len(names) + len(spec['networks']) + 1
        else:
            root = []
            if phase == 'converge':
                script.append('sysctl -qw net.ipv4.ip_forward=1')
                for net in spec['networks']:
                    root += ['link add %s type bridge' % net['bridge'],
                             'address add %s/%d dev %s' % (net['gateway'], net['prefix'], net['bridge']),
                             'link set %s up' % net['bridge']]
                    ops += 3
                body = []
                for net in spec['networks']:
                    ops += self._endpoint_batches(net, net['endpoints'], work, body, root)
                nft = _write(os.path.join(work, 'floor', 'bench.nft'), nft_ruleset(spec))
                root_path = _write(os.path.join(work, 'floor', 'root'), '\n'.join(root) + '\n')
                script += ['ip -batch %s' % root_path] + body + ['nft -f %s' % nft]
                ops += 2
            else:  # change: the one new endpoint only
                net = spec['networks'][0]
                body = []
                ops += self._endpoint_batches(net, net['endpoints'][-1:], work, body, root)
                root_path = _write(os.path.join(work, 'floor', 'root-change'), '\n'.join(root) + '\n')
                script += ['ip -batch %s' % root_path] + body
        path = _write(os.path.join(work, 'floor-%s.sh' % phase), '\n'.join(script) + '\n')
        result = measure.run(['bash', path], log=os.path.join(work, 'floor-%s.log' % phase), timeout=PHASE_TIMEOUT)
        result['ops'] = ops
        result['changed'] = ops
        return result


# -- the naive Ansible loop ---------------------------------------------------

_TOLERATE_EXISTS = "out.rc != 0 and 'File exists' not in out.stderr and 'already assigned' not in out.stderr"
_TOLERATE_GONE = "out.rc != 0 and 'Cannot find device' not in out.stderr and 'No such file' not in out.stderr"


def _task(name, cmd, loop=None, failed_when=None):
    task = {'name': name, 'ansible.builtin.command': cmd, 'register': 'out'}
    if loop is not None:
        task['loop'] = loop
        task['loop_control'] = {'label': '{{ item.name | default(item) }}'}
    if failed_when:
        task['failed_when'] = failed_when
    return task


def naive_playbook(workload, spec, phase):
    """The playbook people write: one command task per step, looping over items."""
    tasks = []
    if workload == 'vxlan':
        dev = spec['device']
        if phase == 'teardown':
            tasks.append(_task('Delete the VXLAN device', 'ip link del %s' % dev, failed_when=_TOLERATE_GONE))
        elif phase == 'rm1':
            tasks.append(_task('Remove the peer', 'bridge fdb del 00:00:00:00:00:00 dev %s dst %s'
                               % (dev, spec['remove'][0])))
        else:
            tasks += [_task('VXLAN device', 'ip link add %s type vxlan id %d local %s dev %s dstport 4789 nolearning'
                            % (dev, spec['vni'], spec['local'], spec['underlay']), failed_when=_TOLERATE_EXISTS),
                      _task('Bring it up', 'ip link set %s up' % dev),
                      _task('Flood list', 'bridge fdb append 00:00:00:00:00:00 dev %s dst {{ item }}' % dev,
                            loop=spec['peers'])]
    else:
        nets = spec['networks']
        eps = [dict(ep, bridge=net['bridge']) for net in nets for ep in net['endpoints']]
        ports = [{'name': '%s:%d' % (ep['name'], p['host_port']), 'host_port': p['host_port'],
                  'to': '%s:%d' % (ep['ip'], p['port'])} for ep in eps for p in ep['ports']]
        if phase == 'teardown':
            tasks += [_task('Delete the host ends', 'ip link del {{ item.host_if }}', eps, _TOLERATE_GONE),
                      _task('Delete the namespaces', 'ip netns del {{ item.name }}', eps, _TOLERATE_GONE),
                      _task('Delete the bridges', 'ip link del {{ item.bridge }}', nets, _TOLERATE_GONE)]
            if ports:
                tasks.append({'name': 'Unpublish ports', 'ansible.builtin.iptables': {
                    'table': 'nat', 'chain': 'PREROUTING', 'protocol': 'tcp', 'destination_port': '{{ item.host_port }}',
                    'jump': 'DNAT', 'to_destination': '{{ item.to }}', 'state': 'absent'}, 'loop': ports})
        else:
            tasks += [_task('Bridges', 'ip link add {{ item.bridge }} type bridge', nets, _TOLERATE_EXISTS),
                      _task('Gateway addresses', 'ip addr add {{ item.gateway }}/{{ item.prefix }} dev {{ item.bridge }}',
                            nets, _TOLERATE_EXISTS),
                      _task('Bridges up', 'ip link set {{ item.bridge }} up', nets),
                      _task('Forwarding', 'sysctl -w net.ipv4.ip_forward=1'),
                      _task('Namespaces', 'ip netns add {{ item.name }}', eps, _TOLERATE_EXISTS),
                      _task('veth pairs', 'ip link add {{ item.host_if }} type veth peer name eth0 netns {{ item.name }}',
                            eps, _TOLERATE_EXISTS),
                      _task('Host ends on the bridge', 'ip link set {{ item.host_if }} master {{ item.bridge }} up', eps),
                      _task('Loopback up', 'ip -n {{ item.name }} link set lo up', eps),
                      _task('Addresses', 'ip -n {{ item.name }} addr add {{ item.address }} dev eth0', eps,
                            _TOLERATE_EXISTS),
                      _task('Peer ends up', 'ip -n {{ item.name }} link set eth0 up', eps),
                      _task('Default routes', 'ip -n {{ item.name }} route add default via {{ item.gateway }}', eps,
                            _TOLERATE_EXISTS)]
            if ports:
                tasks.append({'name': 'Published ports', 'ansible.builtin.iptables': {
                    'table': 'nat', 'chain': 'PREROUTING', 'protocol': 'tcp', 'destination_port': '{{ item.host_port }}',
                    'jump': 'DNAT', 'to_destination': '{{ item.to }}'}, 'loop': ports,
                    'loop_control': {'label': '{{ item.name }}'}})
            tasks.append({'name': 'Egress masquerade', 'ansible.builtin.iptables': {
                'table': 'nat', 'chain': 'POSTROUTING', 'source': '{{ item.subnet }}', 'out_interface': '!{{ item.bridge }}',
                'jump': 'MASQUERADE'}, 'loop': nets, 'loop_control': {'label': '{{ item.name }}'}})
            if workload == 'tenant_networks':
                tasks.append({'name': 'Isolation', 'ansible.builtin.iptables': {
                    'chain': 'FORWARD', 'in_interface': '{{ item.bridge }}', 'out_interface': 'tn-+', 'jump': 'DROP'},
                    'loop': nets, 'loop_control': {'label': '{{ item.name }}'}})
    return [{'name': 'Naive - %s, %s' % (workload, phase), 'hosts': 'localhost', 'connection': 'local',
             'gather_facts': False, 'tasks': tasks}]


class Naive:
    name = 'naive'
    label = 'naive command loop'

    def __init__(self, plan):
        # {workload: {scale: phases}}: it is slow, so only small scales run.
        self.plan = plan

    def supports(self, workload, scale, phase):
        return phase in self.plan.get(workload, {}).get(scale, ())

    def run(self, workload, spec, phase, work):
        playbook = _json(os.path.join(work, 'naive-%s.yml' % phase), naive_playbook(workload, spec, phase))
        return run_playbook(playbook, {}, work, 'naive-' + phase, ops_from='items')


# -- pyroute2 item by item ------------------------------------------------------

class Pyroute2:
    name = 'pyroute2'
    label = 'pyroute2 item by item'

    def supports(self, workload, scale, phase):
        return True

    def run(self, workload, spec, phase, work):
        spec_path = _json(os.path.join(work, 'pyroute2-%s.json' % phase), spec)
        mode = {'converge': 'converge', 'change': 'converge', 'add1': 'converge', 'rm1': 'converge',
                'idempotent': 'check' if workload != 'vxlan' else 'converge', 'teardown': 'teardown'}[phase]
        cmd = [sys.executable, os.path.join(BENCH, 'refs', 'pyroute2_items.py'), spec_path, mode]
        if workload != 'vxlan':
            cmd.append(_write(os.path.join(work, 'pyroute2', 'bench.nft'), nft_ruleset(spec)))
        log = os.path.join(work, 'pyroute2-%s.log' % phase)
        result = measure.run(cmd, log=log, timeout=PHASE_TIMEOUT)
        result.update(_last_json(log, {'requests': None, 'created': None}, ('requests', 'created'), ('ops', 'changed')))
        return result


def _last_json(log, default, keys, names):
    try:
        lines = [ln for ln in open(log).read().splitlines() if ln.startswith('{')]
        data = json.loads(lines[-1])
    except (OSError, ValueError, IndexError):
        data = default
    return dict((name, data.get(key)) for key, name in zip(keys, names))


# -- the CNI reference bridge plugin -----------------------------------------------

class Cni:
    name = 'cni'
    label = 'CNI bridge plugin'

    def supports(self, workload, scale, phase):
        return workload == 'bridge_network' and os.path.exists('/usr/lib/cni/bridge')

    def run(self, workload, spec, phase, work):
        spec_path = _json(os.path.join(work, 'cni-%s.json' % phase), spec)
        mode = {'converge': 'converge', 'change': 'converge', 'idempotent': 'check', 'teardown': 'teardown'}[phase]
        log = os.path.join(work, 'cni-%s.log' % phase)
        result = measure.run([sys.executable, os.path.join(BENCH, 'refs', 'cni_driver.py'), spec_path, mode,
                              '/run/bench/cni'], log=log, timeout=PHASE_TIMEOUT)
        result.update(_last_json(log, {}, ('execs', 'failed'), ('ops', 'failed_execs')))
        result['changed'] = None
        return result
