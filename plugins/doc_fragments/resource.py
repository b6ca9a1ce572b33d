# -*- coding: utf-8 -*-
# Copyright: contributors to hostnet.provision
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment(object):
    """Options and attributes every resource module of the collection shares."""

    DOCUMENTATION = r'''
options:
  state:
    description:
      - V(merged) creates missing resources and sets the attributes that are given; attributes not
        given keep their current value and list attributes (addresses, routes, gateways) gain the given entries.
      - V(replaced) works like V(merged) except that list attributes become exactly the given lists
        (and an attribute that holds a reference, like a bridge membership, is cleared when not given).
      - V(overridden) works like V(replaced) for every given resource, and deletes every other resource
        of this kind that the collection created in the namespaces the call looks at (the namespace
        the module runs in and every namespace named in O(config)).
      - V(deleted) deletes the given resources; with an empty O(config) it deletes every resource of this
        kind that the collection created in the namespace the module runs in.
      - V(gathered) changes nothing and returns the resources the collection manages in the shape of O(config).
      - Only resources that the collection created (their interface alias starts with C(hostnet.provision))
        are ever changed or deleted; a name held by anything else is refused with an error.
    type: str
    choices: [merged, replaced, overridden, deleted, gathered]
    default: merged
  record:
    description:
      - After a successful run (not in check mode, not V(gathered)), record on the target the resources of this
        kind that the collection manages in every namespace the call looked at, in the shape of O(config), so that
        C(hostnet-restore) re-creates them at boot (see the collection's docs/restore.md and the role
        P(hostnet.provision.boot_restore#role)). One JSON file per kind and namespace under C(/etc/hostnet/state)
        (or the directory in the environment variable C(HOSTNET_STATE_DIR)), replaced atomically; what
        V(deleted) and V(overridden) remove leaves the record too.
      - Resources in namespaces given by path or C(pid:PID) are not recorded.
      - When not given, V(true) unless the environment variable C(HOSTNET_RECORD) is V(0) (set it with the
        C(environment) keyword of a play to switch recording off for every module and role of the play).
    type: bool
  lock_timeout:
    description:
      - Every call (check mode included) holds an exclusive lock on C(/run/hostnet/lock) on the target from before
        it reads the state until it ends, so two plays (or a play and C(hostnet-restore)) never work on one host at
        the same time. A call that finds the lock taken waits this many seconds, then fails naming the holder
        (its process id, program and since when it holds the lock).
      - When not given, the environment variable C(HOSTNET_LOCK_TIMEOUT), else V(300).
    type: int
requirements:
  - pyroute2 >= 0.7.2 on the managed host (Debian/Ubuntu package C(python3-pyroute2))
  - Linux with network namespaces; the module runs as root (CAP_NET_ADMIN and CAP_SYS_ADMIN)
notes:
  - All input is checked, and the whole plan is computed, before anything is changed. That includes what only
    the kernel would refuse or silently mangle - C(%) in a link name, the names C(all) and C(default), C(lo) for
    a link to create, an MTU below 1280 on a link with an IPv6 address, a next hop that is the link's own,
    network or broadcast address.
    If applying fails midway, every change the call made, for all its resources, is undone, newest first,
    and the error says that nothing of the call was kept, or names exactly what stands because it could not
    be undone; a re-run converges. A deleted or recreated VXLAN device comes back as it was (ifindex, MAC,
    addresses, FDB entries, neighbours); deleting a bridge (with its nftables policy) or a namespace, which
    cannot be undone as it was, runs after every other change of the call, when nothing else can fail.
  - In check mode a namespace or bridge that does not exist yet is assumed to be created by an earlier
    task of the same play; a warning says so.
  - The engine talks netlink directly (pyroute2); it never runs the C(ip) command.
attributes:
  check_mode:
    support: full
    description: Predicts exactly the operations a real run would make; changes nothing.
  diff_mode:
    support: full
    description: Shows each changed resource before and after, keyed by C(name@netns).
  platform:
    support: full
    platforms: [linux]
    description: Linux only (netlink).
'''
