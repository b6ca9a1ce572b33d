# -*- coding: utf-8 -*-
"""Drive the modules in-process and check the kernel through other channels.

``run_module`` runs a module's real ``main()`` with real arguments (the same
code path ansible-playbook takes, minus the fork), so a test can make dozens
of calls quickly. Verification never uses the module's own reads: it goes
through ``ip -j``, /sys/class/net and real packets.
"""

from __future__ import annotations

import importlib
import io
import json
import os
import subprocess
import sys
import contextlib

from ansible.module_utils.testing import patch_module_args

MODULES = 'ansible_collections.hostnet.provision.plugins.modules.'


class ModuleFailed(Exception):
    def __init__(self, result):
        super().__init__(result.get('msg'))
        self.result = result


def run_module(name, check=False, diff=True, fail=False, **params):
    """Run hostnet.provision.NAME; return its result dict.

    With fail=True the module must fail and its result is returned;
    otherwise a failure raises ModuleFailed.
    """
    module = importlib.import_module(MODULES + name)
    args = dict(params, _ansible_check_mode=check, _ansible_diff=diff)
    out = io.StringIO()
    with patch_module_args(args), contextlib.redirect_stdout(out):
        try:
            module.main()
        except SystemExit:
            pass
    result = json.loads(out.getvalue())
    if fail:
        assert result.get('failed'), 'expected a failure, got %r' % (result,)
        return result
    if result.get('failed'):
        raise ModuleFailed(result)
    return result


def quartet(name, **params):
    """check mode → apply → apply again → check mode again.

    Returns the four results after asserting changed, changed, not changed,
    not changed, and that check mode predicted exactly the operations made.
    """
    first_check = run_module(name, check=True, **params)
    applied = run_module(name, **params)
    again = run_module(name, **params)
    second_check = run_module(name, check=True, **params)
    assert first_check['changed'] is True
    assert applied['changed'] is True
    assert first_check['commands'] == applied['commands']
    assert again['changed'] is False and again['commands'] == []
    assert second_check['changed'] is False and second_check['commands'] == []
    return first_check, applied, again, second_check


def sh(*cmd, netns=None, check=True):
    if netns:
        cmd = ('ip', 'netns', 'exec', netns) + cmd
    return subprocess.run(cmd, check=check, capture_output=True, text=True)


def ip_json(*args, netns=None):
    cmd = ['ip', '-j']
    if netns:
        cmd += ['-n', netns]
    out = subprocess.run(cmd + list(args), check=True, capture_output=True, text=True).stdout
    return json.loads(out) if out.strip() else []


def link(name, netns=None, details=False):
    """One link as ``ip -j [-d] link show`` prints it, or None."""
    args = (['-d'] if details else []) + ['link', 'show']
    for entry in ip_json(*args, netns=netns):
        if entry['ifname'] == name:
            return entry
    return None


def addresses(name, netns=None):
    """Global addresses of a link as CIDR strings (via ``ip -j addr``)."""
    out = []
    for entry in ip_json('addr', 'show', 'dev', name, netns=netns):
        for a in entry.get('addr_info', []):
            if a.get('scope') == 'global':
                out.append('%s/%s' % (a['local'], a['prefixlen']))
    return sorted(out)


def default_gateways(netns=None):
    gws = []
    for fam in ('-4', '-6'):
        for r in ip_json(fam, 'route', 'show', 'default', netns=netns):
            gws.append(r.get('gateway'))
    return gws


def netns_names():
    return sorted(n['name'] for n in ip_json('netns', 'list'))


def sys_class_net(netns=None):
    """Interface names through /sys/class/net (a second independent channel)."""
    if netns is None:
        return sorted(os.listdir('/sys/class/net'))
    return sorted(sh('ls', '/sys/class/net', netns=netns).stdout.split())


def ping(netns, address, count=1, timeout=2):
    """True when one ICMP echo gets an answer (bounded: count × timeout)."""
    flag = '-6' if ':' in address else '-4'
    return sh('ping', flag, '-n', '-c', str(count), '-W', str(timeout), address, netns=netns,
              check=False).returncode == 0


def python():
    return sys.executable


def fdb(dev, netns=None):
    """FDB entries of a device as ``bridge -j fdb show dev DEV`` prints them."""
    cmd = ['bridge', '-j']
    if netns:
        cmd += ['-n', netns]
    out = subprocess.run(cmd + ['fdb', 'show', 'dev', dev], check=True, capture_output=True, text=True).stdout
    return json.loads(out) if out.strip() else []


def neighbours(dev, netns=None):
    """Neighbour entries of a device (both families) via ``ip -j neigh``."""
    return ip_json('neigh', 'show', 'dev', dev, netns=netns)


def wait_for(predicate, timeout=5.0, interval=0.1):
    """Poll predicate until it is true or timeout seconds passed (bounded)."""
    import time
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


# -- "nothing changed": a snapshot of everything a refused call could touch --

_VOLATILE_LINK_KEYS = ('stats', 'stats64', 'operstate', 'linkinfo_xstats', 'carrier_changes', 'carrier_up_count',
                       'carrier_down_count',
                       # Address lifetimes count down; DAD ends on its own.
                       'valid_life_time', 'preferred_life_time', 'tentative')


# Carrier flags follow the peer's state on the kernel's own timing (link
# changes are batched for up to a second): a veth whose peer just came up
# shows NO-CARRIER, then LOWER_UP. The administrative UP flag stays.
_CARRIER_FLAGS = ('NO-CARRIER', 'LOWER_UP', 'M-DOWN')


def _drop_volatile(entry):
    if isinstance(entry, dict):
        return dict((k, [f for f in v if f not in _CARRIER_FLAGS] if k == 'flags' and isinstance(v, list)
                     else _drop_volatile(v)) for k, v in entry.items() if k not in _VOLATILE_LINK_KEYS)
    if isinstance(entry, list):
        return [_drop_volatile(v) for v in entry]
    return entry


def _netns_view(netns=None):
    def links():
        # Bridge and bridge-port timers tick; keep what a change would show.
        out = []
        for entry in ip_json('-d', 'link', 'show', netns=netns):
            linkinfo = entry.get('linkinfo') or {}
            for part in ('info_data', 'info_slave_data'):
                info = linkinfo.get(part) or {}
                for timer in [k for k in info if k.endswith('_timer')]:
                    info.pop(timer)
            out.append(_drop_volatile(entry))
        return out

    def fdb_all():
        cmd = ['bridge', '-j'] + (['-n', netns] if netns else []) + ['fdb', 'show']
        text = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        # Without the multicast addresses the kernel itself keeps on each
        # device ('self', joined as IPv6 comes up, on its own timing).
        return [e for e in (json.loads(text) if text.strip() else []) if ('permanent' in (e.get('state') or '')
                or 'static' in (e.get('flags') or []) or e.get('dst'))
                and not ('self' in (e.get('flags') or []) and int(e['mac'].split(':')[0], 16) & 1
                         and not e.get('dst'))]

    def addresses():
        # Without IPv6 link-local addresses: the kernel's own, on its timing.
        return [dict(entry, addr_info=[a for a in entry.get('addr_info', []) if a.get('scope') != 'link'])
                for entry in _drop_volatile(ip_json('addr', 'show', netns=netns))]

    def routes6():
        # Without the kernel's link-local, multicast and anycast routes,
        # which come and go with the links and DAD on the kernel's timing.
        return [r for r in ip_json('-6', 'route', 'show', 'table', 'all', netns=netns)
                if not (r.get('protocol') == 'kernel' and (r.get('dst', '').startswith(('fe80', 'ff00'))
                                                           or r.get('type') in ('anycast', 'multicast')))]

    return {
        'links': links(),
        'addresses': addresses(),
        'routes4': ip_json('-4', 'route', 'show', 'table', 'all', netns=netns),
        'routes6': routes6(),
        'rules': ip_json('rule', 'show', netns=netns),
        'neighbours': ip_json('neigh', 'show', 'nud', 'permanent', netns=netns),
        'fdb': fdb_all(),
    }


def _read(path):
    try:
        with open(path) as handle:
            return handle.read()
    except OSError as err:
        return 'unreadable: %s' % err.strerror


def kernel_snapshot():
    """Everything a refused module or role call could have changed, read
    through the kernel's other channels (ip, bridge, nft, /proc, /run):
    links, addresses, routes and rules of every table, permanent neighbour
    and static FDB entries — in the sandbox's own namespace and in every
    named namespace — the nftables ruleset, the forwarding sysctls and the
    collection's records under /run/hostnet. Compare two with ==."""
    snap = {'': _netns_view(None)}
    snap['nftables'] = _ruleset(None)
    for name in netns_names():
        snap[name] = _netns_view(name)
        snap['nftables in %s' % name] = _ruleset(name)
    snap['sysctl'] = dict((p, _read(p)) for p in (
        '/proc/sys/net/ipv4/ip_forward', '/proc/sys/net/ipv6/conf/all/forwarding',
        '/proc/sys/net/ipv4/conf/all/route_localnet'))
    records = {}
    for root, _dirs, files in os.walk('/run/hostnet'):
        for name in files:
            path = os.path.join(root, name)
            if path in ('/run/hostnet/lock', '/run/hostnet/lock.holder'):
                continue  # the per-host lock of every run, not state
            records[path] = _read(path)
    snap['records'] = records
    snap['netns'] = netns_names()
    return snap


def _ruleset(netns):
    argv = ['nft', '-j', 'list', 'ruleset']
    if netns:
        argv = ['ip', 'netns', 'exec', netns] + argv
    ruleset = subprocess.run(argv, check=True, capture_output=True, text=True).stdout
    return [e for e in json.loads(ruleset)['nftables'] if 'metainfo' not in e]


def snapshot_diff(before, after):
    """Human-readable list of the parts of two snapshots that differ."""
    out = []
    for key in sorted(set(before) | set(after)):
        if before.get(key) != after.get(key):
            if isinstance(before.get(key), dict) and isinstance(after.get(key), dict):
                for sub in sorted(set(before[key]) | set(after[key])):
                    if before[key].get(sub) != after[key].get(sub):
                        out.append('%s/%s: %r -> %r' % (key, sub, before[key].get(sub), after[key].get(sub)))
            else:
                out.append('%s: %r -> %r' % (key, before.get(key), after.get(key)))
    return out


def environ_for_lab(**extra):
    """os.environ for what runs modules inside lab hosts (scripts/lab.sh,
    ansible-playbook over the nsenter connection): without the in-process
    tests' throwaway HOSTNET_STATE_DIR. Lab hosts keep their records in
    their own /etc overlay; one shared /tmp directory would be written by
    every lab host at once and wiped between tests."""
    env = dict(os.environ, **extra)
    env.pop('HOSTNET_STATE_DIR', None)
    return env
