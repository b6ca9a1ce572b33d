# -*- coding: utf-8 -*-
# Copyright: contributors to hostnet.provision
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Network namespaces as files: create, attach, enter, delete.

Private to the hostnet.provision collection.

Named namespaces follow iproute2's convention (a bind mount of a namespace
file under /run/netns/NAME), so ``ip netns exec`` and every other tool see
them. Everything here uses the system calls directly (setns, unshare, mount)
through ctypes: no ``ip`` process is forked.

A namespace is referred to by a *spec* string:

* ``None`` or ``''``: the namespace the module runs in;
* ``NAME``: /run/netns/NAME;
* ``/path``: any namespace file (``/proc/PID/ns/net``, a bind mount);
* ``pid:PID``: the namespace of a running process.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import os
import socket

from ansible_collections.hostnet.provision.plugins.module_utils._errors import (
    HostnetError,
    NamespaceNotFound,
    translate_os_error,
)

__all__ = [
    'NETNS_RUN_DIR',
    'STATE_DIR',
    'spec_path',
    'spec_label',
    'same_namespace',
    'namespace_id',
    'identity',
    'same_identity',
    'list_named',
    'create_named',
    'attach_named',
    'delete_named',
    'read_marker',
    'stale_marker',
    'update_marker',
    'entered',
    'open_namespace',
]

NETNS_RUN_DIR = '/run/netns'
# Names the collection made or attached (one small JSON file per name).
# It lives in /run like the namespaces themselves, so both go at reboot.
STATE_DIR = '/run/hostnet/netns'

_CLONE_NEWNET = 0x40000000
_MS_BIND = 4096
_MS_REC = 16384
_MS_SHARED = 1 << 20
_MNT_DETACH = 2
# SO_NETNS_COOKIE (Linux 5.14+): a 64-bit number the kernel never hands out
# twice while it runs, unlike namespace inode numbers, which are reused.
_SO_NETNS_COOKIE = 71

_libc = None


def _c():
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(ctypes.util.find_library('c') or None, use_errno=True)
        _libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p,
                                ctypes.c_ulong, ctypes.c_void_p]
        _libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
        _libc.setns.argtypes = [ctypes.c_int, ctypes.c_int]
        _libc.unshare.argtypes = [ctypes.c_int]
    return _libc


def _check(ret):
    if ret != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))


def _setns(fd):
    _check(_c().setns(fd, _CLONE_NEWNET))


def _mount(src, dst, fstype, flags):
    _check(_c().mount(src.encode() if src else None, dst.encode(),
                      fstype.encode() if fstype else None, flags, None))


def spec_path(spec):
    """Namespace spec → path of a namespace file (None: our own)."""
    if spec in (None, ''):
        return None
    if not isinstance(spec, str):
        raise HostnetError('netns must be a string, got %r' % (spec,), field='netns', value=spec)
    if spec.startswith('pid:'):
        return '/proc/%s/ns/net' % spec[4:]
    if spec.startswith('/'):
        return spec
    return os.path.join(NETNS_RUN_DIR, spec)


def spec_label(spec):
    """How a spec is named in messages."""
    return 'the current namespace' if spec in (None, '') else 'netns %s' % spec


_NSFS_DEV = []


def _nsfs_dev():
    """The device number of nsfs, the kernel's one pseudo filesystem of
    namespace files: every live namespace file reports it."""
    if not _NSFS_DEV:
        _NSFS_DEV.append(os.stat('/proc/self/ns/net').st_dev)
    return _NSFS_DEV[0]


def namespace_id(spec):
    """(st_dev, st_ino) identifying a namespace, or None if it does not exist.

    A name whose file in /run/netns outlived its namespace (unmounted, or
    left by a run killed between creating the file and mounting the
    namespace on it) is a plain file, not a namespace: None.
    """
    path = spec_path(spec) or '/proc/thread-self/ns/net'
    try:
        st = os.stat(path)
    except OSError:
        return None
    if st.st_dev != _nsfs_dev():
        return None
    return (st.st_dev, st.st_ino)


def dead_name(name):
    """True when /run/netns/NAME exists but holds no namespace."""
    path = os.path.join(NETNS_RUN_DIR, name)
    return os.path.lexists(path) and namespace_id(name) is None


def has_record(name):
    """Whether the collection holds a record for the name, live or not."""
    return _load_marker(name) is not None


def _cookie_here():
    """The netns cookie of the namespace this thread is in (None: kernel too old)."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            return int.from_bytes(sock.getsockopt(socket.SOL_SOCKET, _SO_NETNS_COOKIE, 8), 'little')
    except OSError:
        return None


def identity(spec):
    """What tells one namespace from another that later got its inode
    number: {dev, inode, cookie}, or None if it does not exist. The cookie
    is read from a socket opened inside it (None on kernels before 5.14,
    where dev and inode are all there is)."""
    path = spec_path(spec) or '/proc/thread-self/ns/net'
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if st.st_dev != _nsfs_dev():
            return None  # a plain file left in /run/netns, no namespace
        try:
            with entered(fd if spec_path(spec) else None):
                cookie = _cookie_here()
        except OSError:
            cookie = None
    finally:
        os.close(fd)
    return {'dev': st.st_dev, 'inode': st.st_ino, 'cookie': cookie}


def same_identity(record, ident):
    """Whether a recorded identity and a live one are the same namespace.

    Records written before the collection kept dev and cookie carry only an
    inode; whatever both sides know must agree.
    """
    if not record or not ident or record.get('inode') != ident['inode']:
        return False
    for field in ('dev', 'cookie'):
        if record.get(field) is not None and ident.get(field) is not None and record[field] != ident[field]:
            return False
    return True


def same_namespace(a, b):
    ida, idb = namespace_id(a), namespace_id(b)
    return ida is not None and ida == idb


def list_named(dead=False):
    """Names of all live named namespaces under /run/netns (with dead=True,
    also the names whose file outlived its namespace)."""
    try:
        names = sorted(os.listdir(NETNS_RUN_DIR))
    except FileNotFoundError:
        return []
    return [n for n in names if dead or namespace_id(n) is not None]


def open_namespace(spec, resource=None, field='netns'):
    """Open a namespace file read-only; NamespaceNotFound names the field."""
    path = spec_path(spec) or '/proc/thread-self/ns/net'
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise NamespaceNotFound('%s: network namespace %r does not exist' % (resource or 'netns', spec),
                                resource, field, spec) from None
    except OSError as exc:
        raise translate_os_error(exc, 'open network namespace %r' % spec, resource, field, spec) from None
    if spec not in (None, '') and not spec.startswith('pid:') and not spec.startswith('/proc/') \
            and os.fstat(fd).st_dev == os.stat(os.path.dirname(path) or '/').st_dev:
        os.close(fd)
        raise NamespaceNotFound('%s: %s exists but is not a mounted network namespace' % (resource or 'netns', path),
                                resource, field, spec)
    return fd


class entered:
    """Context manager: run the body with this thread inside a namespace.

    A netlink socket opened inside stays bound to that namespace after we
    leave, which is how one process serves many namespaces.
    """

    def __init__(self, fd):
        self.fd = fd
        self.home = None

    def __enter__(self):
        if self.fd is None:
            return self
        self.home = os.open('/proc/thread-self/ns/net', os.O_RDONLY | os.O_CLOEXEC)
        _setns(self.fd)
        return self

    def __exit__(self, *exc):
        if self.home is not None:
            try:
                _setns(self.home)
            finally:
                os.close(self.home)
                self.home = None
        return False


def _ensure_run_dir():
    """/run/netns as a shared mount point, as iproute2 sets it up."""
    os.makedirs(NETNS_RUN_DIR, mode=0o755, exist_ok=True)
    try:
        _mount('', NETNS_RUN_DIR, None, _MS_SHARED | _MS_REC)
    except OSError:
        # Not a mount point yet: bind it onto itself, then share it.
        _mount(NETNS_RUN_DIR, NETNS_RUN_DIR, 'none', _MS_BIND | _MS_REC)
        _mount('', NETNS_RUN_DIR, None, _MS_SHARED | _MS_REC)


def _write_marker(name, origin, pid=None, ident=None):
    os.makedirs(STATE_DIR, mode=0o755, exist_ok=True)
    ident = ident or identity(name) or {}
    data = {'origin': origin, 'pid': pid, 'inode': ident.get('inode'), 'dev': ident.get('dev'),
            'cookie': ident.get('cookie')}
    _write_json(os.path.join(STATE_DIR, name), data)


def _write_json(path, data):
    """Atomically (temporary file, rename); a failed write (a full /run)
    leaves no temporary file behind."""
    tmp = os.path.join(os.path.dirname(path), '.%s.tmp' % os.path.basename(path))
    try:
        with open(tmp, 'w') as fh:
            json.dump(data, fh)
        os.replace(tmp, path)
    except OSError:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def update_marker(name, **fields):
    """Add fields (e.g. the sysctl keys we manage) to a namespace's record."""
    data = read_marker(name)
    if data is None:
        return
    data.update(fields)
    _write_json(os.path.join(STATE_DIR, name), data)


def _load_marker(name):
    try:
        with open(os.path.join(STATE_DIR, name)) as fh:
            data = json.load(fh)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def read_marker(name):
    """The collection's record of a named namespace, or None if not ours.

    The record counts only while it and the live namespace agree (device,
    inode and, where the kernel has them, netns cookie): a namespace someone
    else made under the name after ours went — even one that got our inode
    number back — is not ours.
    """
    data = _load_marker(name)
    if data is None or not same_identity(data, identity(name)):
        return None
    return data


def stale_marker(name):
    """True when a record exists for the name but the namespace under that
    name now is another one (deleted and re-made behind the collection's back)."""
    data = _load_marker(name)
    return data is not None and namespace_id(name) is not None and not same_identity(data, identity(name))


def _bind_namespace(name, source):
    path = os.path.join(NETNS_RUN_DIR, name)
    _ensure_run_dir()
    fd = os.open(path, os.O_RDONLY | os.O_CREAT | os.O_EXCL, 0o444)
    os.close(fd)
    try:
        _mount(source, path, 'none', _MS_BIND)
    except OSError:
        os.unlink(path)
        raise


def create_named(name):
    """Create a new network namespace and name it (like ``ip netns add``);
    return the identity of the namespace made (see ``identity``).

    The record is written before the name: a run killed in between leaves a
    record without a namespace (harmless, replaced by the next create), never
    a namespace of ours without its record (which would look foreign).
    """
    home = os.open('/proc/thread-self/ns/net', os.O_RDONLY | os.O_CLOEXEC)
    try:
        _check(_c().unshare(_CLONE_NEWNET))
        try:
            st = os.stat('/proc/thread-self/ns/net')
            ident = {'dev': st.st_dev, 'inode': st.st_ino, 'cookie': _cookie_here()}
            _write_marker(name, 'created', ident=ident)
            _bind_or_forget(name, '/proc/thread-self/ns/net')
        finally:
            _setns(home)
    finally:
        os.close(home)
    return ident


def attach_named(name, pid):
    """Name the namespace of a running process (like ``ip netns attach``);
    return the identity of the namespace named (record first, as above)."""
    ident = identity('pid:%d' % pid)
    _write_marker(name, 'pid', pid, ident=ident)
    _bind_or_forget(name, '/proc/%d/ns/net' % pid)
    return ident


def _bind_or_forget(name, source):
    try:
        _bind_namespace(name, source)
    except OSError:
        _forget_marker(name)
        raise


def remove_dead_name(name):
    """Remove /run/netns/NAME if it still holds no namespace (the caller
    checked that the collection made it)."""
    if dead_name(name):
        os.unlink(os.path.join(NETNS_RUN_DIR, name))


def recorded_names():
    """Names the collection holds a namespace record for."""
    try:
        return sorted(n for n in os.listdir(STATE_DIR) if not n.startswith('.'))
    except OSError:
        return []


def forget_orphan_record(name):
    """Drop the record of a name that has no file in /run/netns at all."""
    if has_record(name) and not os.path.lexists(os.path.join(NETNS_RUN_DIR, name)):
        _forget_marker(name)


def _forget_marker(name):
    try:
        os.unlink(os.path.join(STATE_DIR, name))
    except FileNotFoundError:
        pass


def delete_named(name):
    """Remove a name (the namespace itself goes when nothing else holds it)."""
    path = os.path.join(NETNS_RUN_DIR, name)
    if namespace_id(name) is not None:
        _check(_c().umount2(path.encode(), _MNT_DETACH))
    os.unlink(path)
    _forget_marker(name)
