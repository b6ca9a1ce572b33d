# -*- coding: utf-8 -*-
# Copyright: contributors to hostnet.provision
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The results as a table (Markdown, printed), JSON, a PNG plot, and the
verdict on each target of the benchmark issue."""

from __future__ import annotations

import json
import os

IMPL_ORDER = ('ours', 'floor', 'pyroute2', 'cni', 'naive')
# One colour per implementation in every panel of the plot.
IMPL_COLORS = {'ours': 'tab:blue', 'floor': 'tab:orange', 'pyroute2': 'tab:green', 'cni': 'tab:red',
               'naive': 'tab:purple'}
WORKLOAD_TITLES = {'bridge_network': 'W1 bridge network (N endpoints, N/10 ports)',
                   'tenant_networks': 'W2 tenants (T tenants x 5 endpoints, isolated)',
                   'vxlan': 'W3 VXLAN flood list (P peers)',
                   'report': 'W4 report probes (N endpoints, icc off, N*(N-1) pairs)'}


def _index(records):
    out = {}
    for rec in records:
        out[(rec['workload'], rec['scale'], rec['phase'], rec['impl'])] = rec
    return out


def _secs(rec):
    if rec is None:
        return '-'
    if rec.get('rc') not in (0, None):
        return 'FAIL'
    return '%.2f' % rec['wall']


def _ratio(a, b):
    if not a or not b or a.get('rc') or b.get('rc') or not b['wall']:
        return '-'
    return '%.1fx' % (a['wall'] / b['wall'])


def _mem(rec):
    if rec is None or rec.get('rc'):
        return '-'
    module = rec.get('module_rss_mb')
    return '%s/%s' % ('%.0f' % module if module else '-', '%.0f' % rec['rss_max_mb'])


def _changes(rec):
    if rec is None:
        return '-'
    changed = rec.get('changed')
    ops = rec.get('ops')
    return '%s/%s' % ('-' if changed is None else changed, '-' if ops is None else ops)


def table(records, meta):
    """Markdown table: one row per workload, scale and phase."""
    idx = _index(records)
    keys = sorted(set((r['workload'], r['scale'], r['phase']) for r in records),
                  key=lambda k: (list(WORKLOAD_TITLES).index(k[0]), k[1], _PHASES.index(k[2])))
    lines = ['Machine: %s' % meta.get('machine', '?'),
             'Date: %s; load average at start %.2f (baseline CPU idle %.0f %%)'
             % (meta.get('date', '?'), meta.get('load', 0.0), 100 * meta.get('idle', 0.0)),
             '',
             'Seconds of wall time (whole ansible-playbook run for the Ansible columns). ours MB: peak RSS of',
             'the largest module process / of the largest process of the run (the controller). changed/ops:',
             'ours = tasks changed / kernel operations its modules report; floor = commands; pyroute2 = ',
             'items created / netlink requests; naive = tasks changed / commands run; CNI = plugin execs.',
             '',
             '| workload | scale | phase | ours s | ours MB | ours changed/ops | ip floor s | ours/floor '
             '| pyroute2 s | CNI s | naive s | naive/ours |',
             '|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|']
    for workload, scale, phase in keys:
        ours, floor, pyroute2, cni, naive = (idx.get((workload, scale, phase, impl)) for impl in IMPL_ORDER)
        lines.append('| %s | %d | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |' % (
            workload, scale, phase, _secs(ours), _mem(ours), _changes(ours), _secs(floor), _ratio(ours, floor),
            _secs(pyroute2), _secs(cni), _secs(naive), _ratio(naive, ours)))
    return '\n'.join(lines) + '\n'


_PHASES = ['converge', 'idempotent', 'change', 'add1', 'rm1', 'probe', 'teardown']


def _task_seconds(rec, action_words):
    for task in (rec or {}).get('tasks') or []:
        if all(w in task['task'] for w in action_words):
            return task['seconds']
    return None


def targets(records):
    """The issue's targets, each with met/missed and the figures behind it."""
    idx = _index(records)
    out = []

    def add(name, met, detail):
        out.append({'target': name, 'met': met, 'detail': detail})

    def rec(workload, scale, phase, impl='ours'):
        return idx.get((workload, scale, phase, impl))

    def ok(*records_):
        return all(r is not None and not r['rc'] for r in records_)

    def ratio(name, workload, scale, phase, limit, floor_phase=None):
        ours, floor = rec(workload, scale, phase), rec(workload, scale, floor_phase or phase, 'floor')
        if ok(ours, floor):
            add(name, ours['wall'] <= limit * floor['wall'],
                'ours %.2f s, floor %.2f s (%.2fx)' % (ours['wall'], floor['wall'], ours['wall'] / floor['wall']))

    w1 = sorted(set(r['scale'] for r in records if r['workload'] == 'bridge_network'))
    top = w1[-1] if w1 else None
    if top:
        ratio('W1 N=%d converge <= 0.8x the ip floor (whole playbook)' % top, 'bridge_network', top, 'converge', 0.8)
        idem, floor = rec('bridge_network', top, 'idempotent'), rec('bridge_network', top, 'converge', 'floor')
        if ok(idem, floor):
            add('W1 N=%d idempotent re-run <= 0.3x the floor, changed=0' % top,
                idem['wall'] <= 0.3 * floor['wall'] and idem.get('changed') == 0,
                '%.2f s (%.2fx the floor\'s %.2f s), changed=%s, kernel ops=%s'
                % (idem['wall'], idem['wall'] / floor['wall'], floor['wall'], idem.get('changed'), idem.get('ops')))
        change = rec('bridge_network', top, 'change')
        if ok(idem, change):
            add('W1 N=%d one endpoint more no slower than the idempotent re-run' % top,
                change['wall'] <= idem['wall'] * 1.05,
                'change %.2f s (%s kernel ops), idempotent %.2f s' % (change['wall'], change.get('ops'), idem['wall']))
        ratio('W1 N=%d teardown <= 1.5x the floor\'s teardown' % top, 'bridge_network', top, 'teardown', 1.5)
    if 10 in w1:
        r10 = rec('bridge_network', 10, 'converge')
        if ok(r10):
            add('W1 N=10 converge from nothing <= 2.5 s (the role\'s fixed cost, whole playbook)', r10['wall'] <= 2.5,
                '%.2f s' % r10['wall'])
    if 100 in w1:
        ours, naive = rec('bridge_network', 100, 'converge'), rec('bridge_network', 100, 'converge', 'naive')
        if ok(ours, naive):
            add('W1 N=100 naive loop >= 90x slower than the role', naive['wall'] >= 90 * ours['wall'],
                'naive %.1f s / ours %.2f s = %.1fx' % (naive['wall'], ours['wall'], naive['wall'] / ours['wall']))
    w2 = sorted(set(r['scale'] for r in records if r['workload'] == 'tenant_networks'))
    if w2:
        ratio('W2 T=%d converge <= 0.8x the floor' % w2[-1], 'tenant_networks', w2[-1], 'converge', 0.8)
        ratio('W2 T=%d teardown <= 1.5x the floor\'s teardown' % w2[-1], 'tenant_networks', w2[-1], 'teardown', 1.5)
    w3 = sorted(set(r['scale'] for r in records if r['workload'] == 'vxlan'))
    if w3:
        top3 = w3[-1]
        for phase in ('converge', 'idempotent'):
            r3 = rec('vxlan', top3, phase)
            if r3 and not r3['rc']:
                task = _task_seconds(r3, ['Flood list'])
                add('W3 P=%d %s: peers reconciled in <= 2 s (vxlan_peer task)' % (top3, phase),
                    task is not None and task <= 2.0,
                    'vxlan_peer task %s s, whole playbook %.2f s' % (task, r3['wall']))
        add1 = rec('vxlan', top3, 'add1')
        if add1 and not add1['rc']:
            events = add1.get('events') or {}
            add('W3 P=%d adding one peer makes exactly one kernel change' % top3,
                add1.get('ops') == 1 and events.get('fdb+', 0) == 1 and not events.get('fdb-'),
                'module ops %s; FDB notifications seen: %s' % (add1.get('ops'), events))
    w4 = sorted(set(r['scale'] for r in records if r['workload'] == 'report'))
    if w4:
        r4 = rec('report', w4[-1], 'probe')
        if r4 and not r4['rc']:
            task = _task_seconds(r4, ['Probe every pair'])
            add('W4 N=%d: %d pair probes (icc off, all blocked) in <= 10 s (whole playbook)'
                % (w4[-1], w4[-1] * (w4[-1] - 1)), r4['wall'] <= 10.0,
                'whole playbook %.2f s, reachability task %s s' % (r4['wall'], task))
    mem = [max(r.get('module_rss_mb') or 0, r.get('rss_max_mb') or 0) for r in records
           if r['impl'] == 'ours' and not r['rc']]
    if mem:
        add('memory under 200 MB (largest ansible-playbook/module process)', max(mem) < 200,
            'peak %.0f MB' % max(mem))
    for workload in WORKLOAD_TITLES:
        slopes = {}
        for impl in ('ours', 'floor'):
            pts = sorted((r['scale'], r['wall']) for r in records if r['workload'] == workload and r['impl'] == impl
                         and r['phase'] == 'converge' and not r['rc'])
            # Marginal cost per item between consecutive scales: flat when linear.
            slopes[impl] = [(b[0], (b[1] - a[1]) / (b[0] - a[0])) for a, b in zip(pts, pts[1:])]
        ours = slopes['ours']
        if len(ours) >= 2:
            (_s0, m0), (s1, m1) = ours[-2], ours[-1]
            floor = slopes['floor']
            context = ''
            if len(floor) >= 2 and floor[-2][1] > 0:
                context = '; ip floor: %.1f -> %.1f ms/item (%.1fx)' % (
                    1000 * floor[-2][1], 1000 * floor[-1][1], floor[-1][1] / floor[-2][1])
            # Below half a millisecond per item the run is all fixed cost and
            # the ratio of two such slopes is noise: flat counts as linear.
            flat = max(m0, m1) < 0.0005
            add('%s: cost linear in scale (marginal cost per item up to %d within 1.5x of the previous segment)'
                % (workload, s1), flat or (m0 > 0 and m1 <= 1.5 * m0),
                'ours: %s ms/item%s' % (' -> '.join('%.1f (to %d)' % (1000 * m, s) for s, m in ours), context))
    return out


def plot(records, path):
    """Converge and idempotent wall time against scale, per workload and
    implementation (linear axes, so linear growth is a straight line)."""
    try:
        import matplotlib
        matplotlib.use('Agg')
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    workloads = [w for w in WORKLOAD_TITLES if any(r['workload'] == w for r in records)]
    phases = ('converge', 'idempotent')
    fig, axes = plt.subplots(len(phases), max(1, len(workloads)), figsize=(5.5 * max(1, len(workloads)), 8),
                             squeeze=False)
    for col, workload in enumerate(workloads):
        for row, phase in enumerate(phases):
            ax = axes[row][col]
            for impl in IMPL_ORDER:
                pts = sorted((r['scale'], r['wall']) for r in records
                             if r['workload'] == workload and r['phase'] == phase and r['impl'] == impl and not r['rc'])
                if pts:
                    ax.plot([p[0] for p in pts], [p[1] for p in pts], marker='o', label=impl, color=IMPL_COLORS[impl])
            ax.set_title('%s - %s' % (WORKLOAD_TITLES[workload].split(' (')[0], phase), fontsize=9)
            ax.set_xlabel({'bridge_network': 'endpoints N', 'tenant_networks': 'tenants T',
                           'vxlan': 'peers P', 'report': 'endpoints N'}[workload])
            ax.set_ylabel('seconds')
            ax.grid(True, alpha=0.3)
            ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write(records, meta, out_dir):
    os.makedirs(out_dir, exist_ok=True)
    verdicts = targets(records)
    text = table(records, meta)
    text += '\nTargets:\n' + ''.join('- [%s] %s: %s\n' % ('met' if t['met'] else 'MISSED', t['target'], t['detail'])
                                     for t in verdicts)
    with open(os.path.join(out_dir, 'table.md'), 'w') as fh:
        fh.write(text)
    with open(os.path.join(out_dir, 'results.json'), 'w') as fh:
        json.dump({'meta': meta, 'records': records, 'targets': verdicts}, fh, indent=1)
    png = plot(records, os.path.join(out_dir, 'cost.png'))
    return text, png
