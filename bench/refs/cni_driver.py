# -*- coding: utf-8 -*-
# Copyright: contributors to hostnet.provision
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Reference: the CNI reference bridge plugin, one exec per endpoint.

Calls /usr/lib/cni/bridge (Debian package containernetworking-plugins) the
way containerd, podman and Kubernetes do: the runtime makes the namespace,
then execs the plugin with CNI_* in the environment and the network config
on stdin; endpoints with published ports are chained to the portmap plugin
with the bridge's result as prevResult. IPAM is host-local with its state
under the sandbox's private /run.

Usage: python cni_driver.py SPEC.json PHASE STATE_DIR
PHASE: converge (ADD what has no result yet; also the one-item change),
check (CHECK every endpoint's bridge plugin), teardown (DEL every endpoint, then the
namespaces). Prints a JSON line: {"execs": N, "failed": N}.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

CNI_PATH = '/usr/lib/cni'


def _conf(net, state_dir):
    return {
        'cniVersion': '1.0.0', 'name': 'bench', 'type': 'bridge', 'bridge': net['bridge'],
        'isGateway': True, 'ipMasq': True,
        'ipam': {'type': 'host-local', 'ranges': [[{'subnet': net['subnet'], 'gateway': net['gateway']}]],
                 'routes': [{'dst': '0.0.0.0/0'}], 'dataDir': os.path.join(state_dir, 'ipam')},
    }


def _portmap_conf(ep, prev):
    return {
        'cniVersion': '1.0.0', 'name': 'bench', 'type': 'portmap', 'capabilities': {'portMappings': True},
        'runtimeConfig': {'portMappings': [{'hostPort': p['host_port'], 'containerPort': p['port'], 'protocol': 'tcp'}
                                           for p in ep['ports']]},
        'prevResult': prev,
    }


class Runner:
    execs = 0
    failed = 0

    def plugin(self, kind, command, ep, conf):
        env = dict(os.environ, CNI_COMMAND=command, CNI_CONTAINERID=ep['name'], CNI_NETNS='/run/netns/' + ep['name'],
                   CNI_IFNAME='eth0', CNI_PATH=CNI_PATH)
        self.execs += 1
        proc = subprocess.run([os.path.join(CNI_PATH, kind)], input=json.dumps(conf).encode(), env=env,
                              capture_output=True, check=False)
        if proc.returncode != 0:
            self.failed += 1
            sys.stderr.write('%s %s %s: %s\n' % (kind, command, ep['name'], proc.stdout.decode() + proc.stderr.decode()))
            return None
        return json.loads(proc.stdout) if proc.stdout.strip() else {}


def main():
    spec = json.load(open(sys.argv[1]))
    phase, state_dir = sys.argv[2], sys.argv[3]
    os.makedirs(state_dir, exist_ok=True)
    results_path = os.path.join(state_dir, 'results.json')
    results = json.load(open(results_path)) if os.path.exists(results_path) else {}
    run = Runner()
    endpoints = [(net, ep) for net in spec['networks'] for ep in net['endpoints']]
    if phase == 'converge':
        missing = [ep['name'] for _net, ep in endpoints if ep['name'] not in results]
        if missing:
            # The runtime creates the namespaces (one ip -batch for all of them).
            subprocess.run(['ip', '-batch', '-'], input=''.join('netns add %s\n' % n for n in missing).encode(),
                           check=True)
        with open('/proc/sys/net/ipv4/ip_forward', 'w') as fh:
            fh.write('1\n')
        for net, ep in endpoints:
            if ep['name'] in results:
                continue
            prev = run.plugin('bridge', 'ADD', ep, _conf(net, state_dir))
            if prev is not None and ep['ports']:
                run.plugin('portmap', 'ADD', ep, _portmap_conf(ep, prev))
            if prev is not None:
                results[ep['name']] = prev
    elif phase == 'check':
        for net, ep in endpoints:
            prev = results.get(ep['name'])
            if prev is None:
                continue
            # portmap's CHECK fails on an IPv4-only host (it looks for its
            # ip6tables chain, never made): the bridge plugin's CHECK only.
            run.plugin('bridge', 'CHECK', ep, dict(_conf(net, state_dir), prevResult=prev))
    else:
        for net, ep in endpoints:
            prev = results.pop(ep['name'], None)
            if ep['ports']:
                run.plugin('portmap', 'DEL', ep, _portmap_conf(ep, prev or {'cniVersion': '1.0.0'}))
            run.plugin('bridge', 'DEL', ep, dict(_conf(net, state_dir), prevResult=prev) if prev else _conf(net, state_dir))
        subprocess.run(['ip', '-force', '-batch', '-'],
                       input=''.join('netns del %s\n' % ep['name'] for _net, ep in endpoints).encode(),
                       check=False, capture_output=True)
        for net in spec['networks']:
            subprocess.run(['ip', 'link', 'del', net['bridge']], check=False, capture_output=True)
    with open(results_path, 'w') as fh:
        json.dump(results, fh)
    print(json.dumps({'execs': run.execs, 'failed': run.failed}))
    return 1 if run.failed else 0


if __name__ == '__main__':
    sys.exit(main())
