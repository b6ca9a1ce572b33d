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
