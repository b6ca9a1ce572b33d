# -*- coding: utf-8 -*-
# Copyright: contributors to hostnet.provision
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmarks of hostnet.provision at scale, side by side with the ip
floor, pyroute2 item by item, the CNI bridge plugin and the naive Ansible
loop. Run it through scripts/bench.sh (it must run inside scripts/sandbox.sh):

    bash scripts/bench.sh            # full run (about an hour on 2 cores)
    bash scripts/bench.sh --quick    # small scales only (a smoke test)

Prints a table and writes bench/results/<date>/{table.md,results.json,cost.png}
(bench/results/latest points at the last run). See bench/README.md.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from hnbench import impls, measure, report, topology  # noqa: E402  pylint: disable=wrong-import-position

BENCH = os.path.dirname(os.path.abspath(__file__))
FULL = {'bridge_network': [1, 10, 100, 1000], 'tenant_networks': [10, 50, 200], 'vxlan': [10, 100, 1000, 5000],
        'report': [10, 100]}
QUICK = {'bridge_network': [1, 10, 100], 'tenant_networks': [10], 'vxlan': [10, 100, 1000], 'report': [10]}
PHASES = {'bridge_network': ['converge', 'idempotent', 'change', 'teardown'],
          'tenant_networks': ['converge', 'idempotent', 'change', 'teardown'],
          'vxlan': ['converge', 'idempotent', 'add1', 'rm1', 'teardown'],
          'report': ['converge', 'probe', 'teardown']}
# Workloads only the collection has a column for (the probes of a report).
OURS_ONLY = ('report',)
ALL = ('converge', 'idempotent', 'change', 'add1', 'rm1', 'teardown')
# The naive loop costs a third of a second or more per command: every phase at
# the smallest scale, and at N=100 the first converge alone (the figure the
# ratio target is about; its other phases re-run the same ~700 commands).
NAIVE_FULL = {'bridge_network': {10: ALL, 100: ('converge',)},
              'tenant_networks': {10: ('converge',)}, 'vxlan': {10: ALL}}
NAIVE_QUICK = {'bridge_network': {10: ('converge', 'teardown')}, 'vxlan': {10: ('converge', 'teardown')}}


def in_sandbox():
    outer = os.environ.get('HOSTNET_OUTER_NETNS')
    return bool(outer) and str(os.stat('/proc/self/ns/net').st_ino) != outer and os.path.ismount('/run')


def wipe():
    """Back to an empty sandbox: only lo, no namespaces, no rules."""
    commands = [['ip', '-all', 'netns', 'delete']]
    commands += [['ip', 'link', 'del', name] for name in os.listdir('/sys/class/net') if name != 'lo']
    commands += [['rm', '-rf', '/run/hostnet', '/run/bench'], ['nft', 'flush', 'ruleset']]
    commands += [['iptables', '-t', table, flag] for table in ('filter', 'nat') for flag in ('-F', '-X')]
    for cmd in commands:
        subprocess.run(cmd, check=False, capture_output=True)
    for path in ('/proc/sys/net/ipv4/ip_forward', '/proc/sys/net/ipv6/conf/all/forwarding'):
        with open(path, 'w') as fh:
            fh.write('0\n')
    os.makedirs('/run/bench', exist_ok=True)


def underlay():
    """Workload 3's stand-in NIC: a veth end with the local VTEP address."""
    a, b, cidr = topology.W3_UNDERLAY
    for cmd in (['ip', 'link', 'add', a, 'type', 'veth', 'peer', 'name', b], ['ip', 'addr', 'add', cidr, 'dev', a],
                ['ip', 'link', 'set', a, 'up'], ['ip', 'link', 'set', b, 'up']):
        subprocess.run(cmd, check=True)


def spec_for(workload, scale, phase):
    if workload == 'bridge_network':
        return topology.bridge_network(scale, extra=0 if phase in ('converge', 'idempotent') else 1)
    if workload == 'tenant_networks':
        return topology.tenants(scale, extra=0 if phase in ('converge', 'idempotent') else 1)
    if workload == 'report':
        return topology.report(scale)
    spec = topology.vxlan(scale, extra=1 if phase == 'add1' else 0)
    if phase == 'rm1':
        spec['remove'] = topology.vxlan(scale, extra=1)['peers'][-1:]
    return spec


def machine():
    cpu = '?'
    try:
        for line in open('/proc/cpuinfo'):
            if line.startswith('model name'):
                cpu = line.split(':', 1)[1].strip()
                break
    except OSError:
        pass
    mem = 0
    try:
        for line in open('/proc/meminfo'):
            if line.startswith('MemTotal'):
                mem = int(line.split()[1]) // 1024
    except OSError:
        pass
    distro = '?'
    try:
        for line in open('/etc/os-release'):
            if line.startswith('PRETTY_NAME='):
                distro = line.split('=', 1)[1].strip().strip('"')
    except OSError:
        pass
    versions = subprocess.run([sys.executable, '-c', 'import pyroute2, ansible.release as r; '
                               'print(r.__version__, pyroute2.__version__)'], capture_output=True, text=True,
                              check=False).stdout.split()
    return '%d x %s, %d MiB RAM, %s, kernel %s, Python %s, ansible-core %s, pyroute2 %s' % (
        os.cpu_count(), cpu, mem, distro, platform.release(), platform.python_version(),
        versions[0] if versions else '?', versions[1] if len(versions) > 1 else '?')


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n', maxsplit=1)[0])
    parser.add_argument('--quick', action='store_true', help='small scales only (smoke test)')
    parser.add_argument('--workloads', default='bridge_network,tenant_networks,vxlan,report')
    parser.add_argument('--impls', default='ours,floor,pyroute2,cni,naive')
    parser.add_argument('--scales', help='override, e.g. bridge_network=10,100;vxlan=5000')
    parser.add_argument('--out', default=os.path.join(BENCH, 'results'))
    parser.add_argument('--no-warmup', action='store_true')
    parser.add_argument('--report', metavar='DIR', help='only rebuild table.md and cost.png from DIR/results.json')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if args.report:
        with open(os.path.join(args.report, 'results.json')) as fh:
            saved = json.load(fh)
        text, _png = report.write(saved['records'], saved['meta'], args.report)
        print(text)
        return 0
    if not in_sandbox():
        sys.stderr.write('bench/run.py changes network state: run it through scripts/bench.sh '
                         '(inside scripts/sandbox.sh)\n')
        return 2
    scales = dict(QUICK if args.quick else FULL)
    if args.scales:
        for part in args.scales.split(';'):
            name, _sep, values = part.partition('=')
            scales[name.strip()] = [int(v) for v in values.split(',') if v.strip()]
    workloads = [w for w in args.workloads.split(',') if w]
    chosen = args.impls.split(',')
    naive_plan = NAIVE_QUICK if args.quick else NAIVE_FULL
    available = {'ours': impls.Ours(), 'floor': impls.Floor(), 'pyroute2': impls.Pyroute2(), 'cni': impls.Cni(),
                 'naive': impls.Naive(naive_plan)}
    order = [available[name] for name in report.IMPL_ORDER if name in chosen]

    stamp = datetime.datetime.now().strftime('%Y%m%d-%H%M%S')
    out_dir = os.path.join(args.out, stamp)
    os.makedirs(out_dir, exist_ok=True)
    wipe()
    idle = measure.idle_fraction(2.0)
    meta = {'date': datetime.datetime.now().isoformat(timespec='seconds'), 'machine': machine(),
            'load': measure.load(), 'idle': idle, 'quick': args.quick, 'scales': scales, 'workloads': workloads}
    print('hostnet.provision bench: %s' % meta['machine'], flush=True)
    if not args.no_warmup and 'ours' in chosen:
        # Byte-compiled caches and a first AnsiballZ build, as on any host that ran a playbook before.
        work = os.path.join(out_dir, 'work', 'warmup')
        for phase in ('converge', 'teardown'):
            available['ours'].run('bridge_network', spec_for('bridge_network', 10, phase), phase, work)
        wipe()

    monitor = measure.KernelMonitor()
    records = []
    started = time.monotonic()
    try:
        for workload in workloads:
            for scale in scales.get(workload, []):
                for impl in order:
                    if workload in OURS_ONLY and impl.name != 'ours':
                        continue
                    phases = [p for p in PHASES[workload] if impl.supports(workload, scale, p)]
                    if not phases:
                        continue
                    wipe()
                    measure.settle(idle)
                    if workload == 'vxlan':
                        underlay()
                    monitor.take()
                    work = os.path.join(out_dir, 'work', '%s-%d' % (workload, scale), impl.name)
                    failed = False
                    for phase in phases:
                        if failed and phase != 'teardown':
                            continue
                        load = measure.load()
                        result = impl.run(workload, spec_for(workload, scale, phase), phase, work)
                        result['events'] = monitor.take()
                        result.update(workload=workload, scale=scale, impl=impl.name, phase=phase, load=load)
                        records.append(dict(result))
                        failed = failed or result['rc'] != 0
                        print('%-16s %5d %-9s %-10s %8.2f s  rc=%s changed/ops=%s/%s  mem=%s/%s MB  load=%.1f' % (
                            workload, scale, impl.name, phase, result['wall'], result['rc'], result.get('changed'),
                            result.get('ops'), result.get('module_rss_mb'), result.get('rss_max_mb'), load), flush=True)
                        measure.settle(idle, limit=10.0)
                    # Partial results survive an interrupted run.
                    with open(os.path.join(out_dir, 'results.partial.json'), 'w') as fh:
                        json.dump(records, fh)
    finally:
        monitor.close()
        wipe()
    meta['seconds'] = round(time.monotonic() - started)
    text, png = report.write(records, meta, out_dir)
    latest = os.path.join(args.out, 'latest')
    if os.path.islink(latest) or os.path.exists(latest):
        os.unlink(latest)
    os.symlink(stamp, latest)
    print()
    print(text)
    print('results: %s%s' % (out_dir, '' if png else ' (no plot: matplotlib missing, see bench/requirements.txt)'))
    return 0 if all(r['rc'] == 0 for r in records) else 1


if __name__ == '__main__':
    sys.exit(main())
