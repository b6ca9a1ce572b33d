# -*- coding: utf-8 -*-
# Copyright: contributors to hostnet.provision
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Draw the networks that hostnet.provision.net_info reports, as Graphviz DOT.

    scripts/netpic.py [--title TEXT] [--only NAME...] [--out FILE] [HOST=]FILE.json...

Each FILE.json is one host's ``net_info`` result (namespaces, links,
addresses, routes, managed), as scripts/netinfo.yml saves it; the host's
name is HOST, else the file's name without ``.json``. The picture has one box per
host, one box per network namespace inside it (its links and addresses)
and one node per bridge, VXLAN device or macvlan parent, with an edge for
every bridge port and every veth pair. A VXLAN device is joined to the
VXLAN devices of the same VNI on the other hosts (dashed: the overlay over
the underlay). ``--only`` keeps the given bridges (and what hangs off them)
and links of the host's own namespace, and drops the rest. Render with ``dot -Tsvg FILE.dot -o FILE.svg``.

Pure Python, no dependency: the drawing is done by Graphviz's ``dot``.
"""

import argparse
import json
import os
import sys


def _q(text):
    """A DOT string literal."""
    return '"' + str(text).replace('\\', '\\\\').replace('"', '\\"') + '"'


def _id(*parts):
    return _q('/'.join(str(p) for p in parts))


def _label(lines):
    """A multi-line label, each line left-aligned."""
    return '"' + ''.join(_q(line)[1:-1] + '\\l' for line in lines) + '"'


def _link_lines(name, link, addresses):
    lines = ['%s (%s)' % (name, link.get('kind') or 'link')]
    lines.extend(addresses.get(name, []))
    return lines


class Picture:
    """Collects nodes and edges of one or more hosts and writes DOT."""

    def __init__(self, title=None, only=None):
        self.title = title
        self.only = set(only or [])
        self.out = []
        self.edges = []
        self.vxlans = {}    # vni -> [node id]

    def _keep(self, info):
        """Namespaces and links kept: all, or only those of the --only bridges."""
        links = info.get('links', {})
        if not self.only:
            return None
        keep = set()
        for ns, ns_links in links.items():
            for link in ns_links:
                if link['name'] in self.only and (ns == '' or link.get('kind') == 'bridge'):
                    keep.add((ns, link['name']))
                if link.get('master') in self.only:
                    keep.add((ns, link['name']))
        # the peers of kept veth ends, in their namespaces
        peers = set()
        for ns, ns_links in links.items():
            for link in ns_links:
                peer = _veth_peer(link)
                if (ns, link['name']) in keep and peer:
                    peers.add(peer)
                if peer and peer in keep:
                    peers.add((ns, link['name']))
        return keep | peers

    def add_host(self, host, info):
        links = info.get('links', {})
        addresses = info.get('addresses', {})
        routes = info.get('routes', {})
        keep = self._keep(info)
        self.out.append('  subgraph %s {' % _q('cluster_' + host))
        self.out.append('    label=%s; style=rounded; color="#555555"; fontname="Helvetica-Bold";' % _q(host))
        for ns in sorted(links, key=lambda n: (n != '', n)):
            shown = [link for link in links[ns] if _shown(link) and (keep is None or (ns, link['name']) in keep)]
            if not shown:
                continue
            ns_addr = addresses.get(ns, {})
            if ns:
                self.out.append('    subgraph %s {' % _q('cluster_' + host + '/' + ns))
                self.out.append('      label=%s; style="rounded,filled"; fillcolor="#eef4fb"; color="#7a9cc6";' % _q('netns ' + ns))
            for link in shown:
                node = _id(host, ns, link['name'])
                kind = link.get('kind')
                lines = _link_lines(link['name'], link, ns_addr)
                lines.extend('default via %s' % r['via'] for r in routes.get(ns, [])
                             if r.get('dev') == link['name'] and r.get('dest') == 'default' and r.get('via'))
                if kind == 'bridge':
                    shape, fill = 'box', '#ffe9b3'
                elif kind == 'vxlan':
                    vx = link.get('vxlan') or {}
                    vni = vx.get('vni', vx.get('id'))
                    lines.insert(1, 'VNI %s' % vni)
                    shape, fill = 'box', '#d9f2d9'
                    self.vxlans.setdefault(vni, []).append(node)
                elif kind == 'macvlan':
                    mode = (link.get('macvlan') or {}).get('mode')
                    if mode:
                        lines.insert(1, 'mode %s' % mode)
                    shape, fill = 'box', '#f3e0f7'
                else:
                    shape, fill = 'box', '#ffffff'
                self.out.append('      %s [label=%s, shape=%s, style="rounded,filled", fillcolor=%s];'
                                % (node, _label(lines), shape, _q(fill)))
                master = link.get('master')
                if master:
                    self.edges.append('  %s -> %s [arrowhead=none];' % (_id(host, ns, master), node))
                peer = _veth_peer(link)
                if peer and (keep is None or peer in keep):
                    self.edges.append('  %s -> %s [arrowhead=none, style=bold, label="veth"];'
                                      % (node, _id(host, peer[0], peer[1])))
                parent = _macvlan_parent(link)
                if parent:
                    self.edges.append('  %s -> %s [arrowhead=none, style=dashed, label="parent"];'
                                      % (_id(host, '', parent), node))
            if ns:
                self.out.append('    }')
        self.out.append('  }')

    def dot(self):
        lines = ['digraph hostnet {',
                 '  graph [rankdir=TB, fontname="Helvetica", fontsize=11, nodesep=0.3, ranksep=0.5%s];'
                 % (', labelloc=t, label=%s' % _q(self.title) if self.title else ''),
                 '  node [fontname="Helvetica", fontsize=10];',
                 '  edge [fontname="Helvetica", fontsize=9, color="#444444"];']
        lines.extend(self.out)
        lines.extend(self.edges)
        for vni in sorted(self.vxlans, key=str):
            nodes = self.vxlans[vni]
            for a, b in zip(nodes, nodes[1:]):
                lines.append('  %s -> %s [arrowhead=none, style=dashed, color="#2e8b57", label=%s];'
                             % (a, b, _q('VXLAN %s' % vni)))
        lines.append('}')
        return '\n'.join(lines) + '\n'


def _shown(link):
    """Links worth drawing: not lo, not the lab's own underlay wiring unless managed."""
    if link['name'] == 'lo':
        return False
    return True


def _veth_peer(link):
    """(netns, name) of a veth end's peer, from the collection's alias grammar."""
    alias = link.get('alias') or ''
    prefix = 'hostnet.provision veth peer='
    if alias.startswith(prefix):
        name, _sep, ns = alias[len(prefix):].partition('@')
        return (ns if ns != '-' else '', name)
    return None


def _macvlan_parent(link):
    alias = link.get('alias') or ''
    prefix = 'hostnet.provision macvlan parent='
    if alias.startswith(prefix):
        return alias[len(prefix):].split()[0]
    return None


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--title')
    parser.add_argument('--only', nargs='*', default=[], help='bridges (with their ports) and host links to keep (default: everything)')
    parser.add_argument('--out', help='DOT file (default: standard output)')
    parser.add_argument('files', nargs='+', metavar='[HOST=]FILE.json')
    args = parser.parse_args(argv)
    picture = Picture(args.title, args.only)
    for arg in args.files:
        host, sep, path = arg.partition('=')
        if not sep:
            path = arg
            host = os.path.basename(path)
            host = host[:-len('.json')] if host.endswith('.json') else host
        with open(path, encoding='utf-8') as handle:
            info = json.load(handle)
        info = info.get('net_info', info)
        picture.add_host(host, info)
    text = picture.dot()
    if args.out:
        with open(args.out, 'w', encoding='utf-8') as handle:
            handle.write(text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == '__main__':
    sys.exit(main())
