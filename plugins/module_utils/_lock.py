# -*- coding: utf-8 -*-
# Copyright: contributors to hostnet.provision
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""One run at a time per host: an exclusive lock under /run.

Private to the hostnet.provision collection.

Every resource module call (check mode included, so that what it reads is
consistent) and every ``hostnet-restore`` run takes an exclusive ``flock``
on ``/run/hostnet/lock`` before it reads any state and holds it to its end.
A second run waits up to a bounded time, then fails naming the holder: the
holder writes its pid, program and start time into ``/run/hostnet/lock.holder``
right after it got the lock and removes it before letting go. The kernel
releases a flock when its process dies, so a killed run never blocks the
next one.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import sys
import time

from ansible_collections.hostnet.provision.plugins.module_utils._errors import HostnetError

__all__ = ['DEFAULT_TIMEOUT', 'LOCK_DIR', 'LockTimeout', 'host_lock', 'lock_timeout']

LOCK_DIR = '/run/hostnet'
DEFAULT_TIMEOUT = 300
_POLL = 0.2


class LockTimeout(HostnetError):
    """Another run held the host's lock for longer than the timeout."""


def lock_timeout(value=None):
    """The timeout in seconds: the given value, else HOSTNET_LOCK_TIMEOUT, else 300."""
    if value is None:
        value = os.environ.get('HOSTNET_LOCK_TIMEOUT') or DEFAULT_TIMEOUT
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        seconds = -1
    if seconds < 0 or isinstance(value, bool):
        raise HostnetError('lock_timeout %r must be a number of seconds (0 or more)' % (value,),
                           field='lock_timeout', value=value)
    return seconds


def _program():
    name = os.path.basename(sys.argv[0] or '') or 'python'
    # Ansible runs a module as AnsiballZ_<module>.py.
    if name.startswith('AnsiballZ_'):
        name = 'ansible module %s' % name[len('AnsiballZ_'):].rsplit('.', 1)[0]
    return name


def _describe_holder(path):
    try:
        with open(path) as fh:
            data = json.load(fh)
    except (OSError, ValueError):
        return 'another run (it did not say which)'
    if not isinstance(data, dict):
        return 'another run (it did not say which)'
    return 'pid %s (%s), holding it since %s' % (data.get('pid'), data.get('program'), data.get('since'))


class host_lock:
    """Context manager: hold the host's lock for the body.

    ``what`` names this run in the holder file; ``timeout`` is in seconds.
    """

    def __init__(self, timeout=None, what=None, lock_dir=None):
        self.timeout = lock_timeout(timeout)
        self.what = what or _program()
        self.dir = lock_dir or os.environ.get('HOSTNET_LOCK_DIR') or LOCK_DIR
        self.path = os.path.join(self.dir, 'lock')
        self.holder = os.path.join(self.dir, 'lock.holder')
        self.fd = None

    def __enter__(self):
        try:
            os.makedirs(self.dir, mode=0o755, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise HostnetError('cannot open the lock %s: %s (the collection runs as root: use become)'
                               % (self.path, exc.strerror), field='lock', value=self.path) from None
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EINTR):
                    os.close(fd)
                    raise
            if time.monotonic() >= deadline:
                os.close(fd)
                raise LockTimeout('another hostnet.provision run holds the lock %s: %s; waited %g s '
                                  '(lock_timeout / HOSTNET_LOCK_TIMEOUT)'
                                  % (self.path, _describe_holder(self.holder), self.timeout),
                                  field='lock_timeout', value=self.timeout)
            time.sleep(_POLL)
        self.fd = fd
        info = {'pid': os.getpid(), 'program': self.what,
                'since': time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}
        tmp = '%s.%d.tmp' % (self.holder, os.getpid())
        try:
            with open(tmp, 'w') as fh:
                json.dump(info, fh)
            os.replace(tmp, self.holder)
        except OSError:
            # Naming the holder is a courtesy; the flock is the lock. (A
            # full /run: leave no half-written file behind.)
            try:
                os.unlink(tmp)
            except OSError:
                pass
        return self

    def __exit__(self, *exc):
        if self.fd is None:
            return False
        # The holder file goes first: once unlocked, it is the next holder's.
        try:
            os.unlink(self.holder)
        except OSError:
            pass
        try:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
        finally:
            os.close(self.fd)
            self.fd = None
        return False
