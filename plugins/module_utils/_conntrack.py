# -*- coding: utf-8 -*-
# Copyright: contributors to hostnet.provision
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Connection tracking entries (ctnetlink through pyroute2), namespace-aware.

Private to the hostnet.provision collection.

The one door to ctnetlink, as ``_netlink`` is to rtnetlink. After a
published port changes or goes away, its conntrack entries must go too:
an entry remembers its NAT decision, so a UDP flow that keeps sending would
keep reaching the old destination for as long as it never pauses.

pyroute2 0.7 opens the socket in the constructor, 0.9 on the first request
in the calling thread; either way the socket is opened, used and closed
while the thread is inside the namespace. The ``conntrack`` command is
never run.
"""

from __future__ import annotations

import ipaddress
import os
import socket

from ansible_collections.hostnet.provision.plugins.module_utils import _deps
from ansible_collections.hostnet.provision.plugins.module_utils import _nsfs
from ansible_collections.hostnet.provision.plugins.module_utils._errors import translate_os_error

__all__ = ['flush']

_PROTOCOLS = {'tcp': socket.IPPROTO_TCP, 'udp': socket.IPPROTO_UDP, 'sctp': getattr(socket, 'IPPROTO_SCTP', 132)}


def flush(spec, selectors, resource=None):
    """Delete the entries that one of ``selectors`` takes: (version,
    protocol, ports, destination_filter), an entry being taken when its
    original tuple is of that IP version and protocol, goes to one of
    ``ports``, and its original destination address passes
    ``destination_filter(ipaddress_object)``. One dump of the table per IP
    version, however many selectors. Returns how many entries were
    deleted."""
    _deps.require_pyroute2()
    by_family = {}
    for version, protocol, ports, destination_filter in selectors:
        family = socket.AF_INET if version == 4 else socket.AF_INET6
        by_family.setdefault(family, []).append((_PROTOCOLS[protocol], set(ports), destination_filter))
    fd = _nsfs.open_namespace(spec, resource) if spec else None
    deleted = 0
    try:
        with _nsfs.entered(fd):
            if _count() == 0:
                return 0  # an empty table: no socket, no dump
            for family, wanted in sorted(by_family.items()):
                deleted += _flush_family(family, wanted, resource)
    except (_deps.NetlinkError, OSError) as exc:
        raise translate_os_error(exc, 'flush conntrack entries in %s' % _nsfs.spec_label(spec), resource,
                                 'conntrack') from None
    finally:
        if fd is not None:
            os.close(fd)
    return deleted


def _flush_family(family, wanted, resource):
    from pyroute2 import Conntrack  # pylint: disable=import-outside-toplevel

    def taken(orig):
        return any(orig.proto == proto and orig.dport in ports and keep(ipaddress.ip_address(orig.daddr))
                   for proto, ports, keep in wanted)

    deleted = 0
    ct = Conntrack(nfgen_family=family)
    try:
        victims = [e.tuple_orig for e in ct.dump_entries() if taken(e.tuple_orig)]
        for tuple_orig in victims:
            try:
                ct.entry('del', tuple_orig=tuple_orig)
                deleted += 1
            except _deps.NetlinkError as exc:
                err = translate_os_error(exc, 'delete conntrack entry to port %s' % tuple_orig.dport,
                                         resource, 'conntrack')
                # Gone meanwhile (timed out, closed): that is the goal.
                if getattr(err, 'errno_name', None) != 'ENOENT':
                    raise err from None
    finally:
        ct.close()
    return deleted


def _count():
    """Entries in the conntrack table of the namespace this thread is in
    (/proc/sys/net shows the opener's namespace), None when unknown."""
    try:
        with open('/proc/sys/net/netfilter/nf_conntrack_count') as handle:
            return int(handle.read())
    except (OSError, ValueError):
        return None
