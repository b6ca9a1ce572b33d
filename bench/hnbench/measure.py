# -*- coding: utf-8 -*-
# Copyright: contributors to hostnet.provision
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Measuring a command: wall time, peak memory of its process tree, the
kernel's own change notifications while it ran, and the machine's load."""

from __future__ import annotations

import os
import select
import socket
import struct
import subprocess
import threading
import time

# rtnetlink multicast groups: links, FDB/neighbours, IPv4/IPv6 addresses and routes.
_GROUPS = 0x1 | 0x4 | 0x10 | 0x40 | 0x100 | 0x400
_EVENT_NAMES = {16: 'link+', 17: 'link-', 20: 'addr+', 21: 'addr-', 24: 'route+', 25: 'route-',
                28: 'neigh+', 29: 'neigh-'}
_POLL_INTERVAL = 0.05
_HDR = struct.Struct('=IHHII')


class Measurement(dict):
    """wall (s), rss_max_mb (largest process of the tree, from wait4),
    tree_rss_mb (peak sum of the tree's resident memory, polled),
    module_rss_mb (peak of Ansible module processes, polled), rc, events."""


def _children(pid):
    """All descendants of pid (one pass over /proc; bounded by its size)."""
    parents = {}
    for entry in os.listdir('/proc'):
        if not entry.isdigit():
            continue
        try:
            with open('/proc/%s/stat' % entry, 'rb') as fh:
                stat = fh.read()
        except OSError:
            continue
        # "pid (comm) state ppid ...": comm may hold spaces; split after ')'.
        rest = stat[stat.rfind(b')') + 2:].split()
        parents.setdefault(int(rest[1]), []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        current = todo.pop()
        for child in parents.get(current, ()):
            out.append(child)
            todo.append(child)
    return out


def _status_kb(pid, field):
    try:
        with open('/proc/%d/status' % pid) as fh:
            for line in fh:
                if line.startswith(field):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _is_module(pid):
    try:
        with open('/proc/%d/cmdline' % pid, 'rb') as fh:
            return b'AnsiballZ_' in fh.read()
    except OSError:
        return False


class _TreePoller(threading.Thread):
    """Polls the process tree of pid: peak summed RSS and peak module RSS."""

    def __init__(self, pid):
        super().__init__(daemon=True)
        self.pid = pid
        self.stop = threading.Event()
        self.tree_peak_kb = 0
        self.module_peak_kb = 0
        self._modules = {}

    def run(self):
        while not self.stop.is_set():
            pids = [self.pid] + _children(self.pid)
            total = 0
            for pid in pids:
                total += _status_kb(pid, 'VmRSS:')
                if pid in self._modules or _is_module(pid):
                    # VmHWM: the process's own peak, even between two polls.
                    self._modules[pid] = max(self._modules.get(pid, 0), _status_kb(pid, 'VmHWM:'))
            self.tree_peak_kb = max(self.tree_peak_kb, total)
            if self._modules:
                self.module_peak_kb = max(self._modules.values())
            self.stop.wait(_POLL_INTERVAL)


class KernelMonitor:
    """Counts rtnetlink notifications in the namespace it was opened in
    (an independent view of what a run changed), in a background thread."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, 0)
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, 33, 64 << 20)  # SO_RCVBUFFORCE (root)
        except OSError:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
        self.sock.bind((0, _GROUPS))
        self.sock.setblocking(False)
        self.counts = {}
        self.overflow = False
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop.is_set():
            ready, _w, _x = select.select([self.sock], [], [], 0.2)
            if ready:
                self._drain()

    def _drain(self):
        while True:
            try:
                data = self.sock.recv(1 << 20)
            except BlockingIOError:
                return
            except OSError:  # ENOBUFS: the kernel dropped notifications
                self.overflow = True
                continue
            offset = 0
            with self._lock:
                while offset + _HDR.size <= len(data):
                    length, kind, _flags, _seq, _pid = _HDR.unpack_from(data, offset)
                    if length < _HDR.size:
                        break
                    name = _EVENT_NAMES.get(kind, str(kind))
                    if kind in (28, 29) and length > _HDR.size and data[offset + _HDR.size] == socket.AF_BRIDGE:
                        name = 'fdb' + name[-1]  # an FDB entry, not an ARP/ND neighbour
                    self.counts[name] = self.counts.get(name, 0) + 1
                    offset += (length + 3) & ~3

    def take(self):
        """The counts since the last take (after letting late ones arrive)."""
        time.sleep(0.3)
        self._drain()
        with self._lock:
            counts, self.counts = self.counts, {}
            overflow, self.overflow = self.overflow, False
        if overflow:
            counts['overflow'] = True
        return counts

    def close(self):
        self._stop.set()
        self._thread.join(timeout=2)
        self.sock.close()


def run(cmd, env=None, cwd=None, stdin=None, timeout=None, log=None):
    """Run cmd; return a Measurement. Output goes to the log file."""
    started = time.monotonic()
    out = open(log, 'ab') if log else subprocess.DEVNULL
    try:
        proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT,
                                stdin=open(stdin, 'rb') if stdin else subprocess.DEVNULL)
        poller = _TreePoller(proc.pid)
        poller.start()
        deadline = None if timeout is None else started + timeout
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if deadline is not None and time.monotonic() > deadline:
                proc.kill()
                pid, status, usage = os.wait4(proc.pid, 0)
                status = -9
                break
            time.sleep(0.01)
        proc.returncode = os.waitstatus_to_exitcode(status) if status >= 0 else status
        wall = time.monotonic() - started
        poller.stop.set()
        poller.join(timeout=2)
    finally:
        if log:
            out.close()
    return Measurement(wall=round(wall, 3), rc=proc.returncode,
                       rss_max_mb=round(usage.ru_maxrss / 1024.0, 1),
                       tree_rss_mb=round(poller.tree_peak_kb / 1024.0, 1),
                       module_rss_mb=round(poller.module_peak_kb / 1024.0, 1) or None)


def cpu_times():
    with open('/proc/stat') as fh:
        fields = [int(x) for x in fh.readline().split()[1:]]
    idle = fields[3] + fields[4]
    return idle, sum(fields)


def idle_fraction(interval=0.5):
    idle0, total0 = cpu_times()
    time.sleep(interval)
    idle1, total1 = cpu_times()
    return (idle1 - idle0) / float(max(1, total1 - total0))


def settle(baseline, limit=30.0):
    """Wait (at most limit seconds) until the CPUs are about as idle as when
    the bench started: the kernel finishes tearing down namespaces in the
    background, and that work must not be billed to the next measurement."""
    deadline = time.monotonic() + limit
    waited = 0.0
    while time.monotonic() < deadline:
        if idle_fraction() >= baseline - 0.15:
            break
        waited += 0.5
    return waited


def load():
    with open('/proc/loadavg') as fh:
        return float(fh.read().split()[0])
