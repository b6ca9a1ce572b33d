# -*- coding: utf-8 -*-
# Copyright: contributors to hostnet.provision
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Network sysctls of a namespace (net.ipv4.ip_forward, rp_filter ...).

Private to the hostnet.provision collection.

/proc/sys/net belongs to the network namespace of the task that opens the
file, so reading or writing another namespace's value means entering it for
the open; no ``sysctl`` or ``ip netns exec`` process is started.
"""

from __future__ import annotations

import os

from ansible_collections.hostnet.provision.plugins.module_utils import _nsfs
from ansible_collections.hostnet.provision.plugins.module_utils._errors import ValidationError, translate_os_error

__all__ = ['normalize_key', 'read', 'write']


def normalize_key(key, resource, field='sysctls'):
    """``net.ipv4.ip_forward`` or ``net/ipv4/conf/eth0.100/rp_filter`` → dotted key + path.

    Only ``net.*`` keys: the others are not per namespace.
    """
    if not isinstance(key, str) or not key:
        raise ValidationError('%s: %s key %r is not a sysctl name' % (resource, field, key), resource, field, key)
    parts = key.split('/') if '/' in key else key.split('.')
    if parts[0] != 'net' or len(parts) < 3 or any(p in ('', '.', '..') for p in parts):
        raise ValidationError('%s: %s key %r is not a network sysctl (net.*); only those are per namespace'
                              % (resource, field, key), resource, field, key)
    return key, os.path.join('/proc/sys', *parts)


def _in_namespace(spec, fn, resource):
    fd = None if spec in (None, '') else _nsfs.open_namespace(spec, resource)
    try:
        with _nsfs.entered(fd):
            return fn()
    finally:
        if fd is not None:
            os.close(fd)


def read(spec, key, resource):
    """Current value as a string, or None when the key does not exist there."""
    _key, path = normalize_key(key, resource)

    def get():
        try:
            with open(path) as fh:
                return ' '.join(fh.read().split())
        except FileNotFoundError:
            return None
    return _in_namespace(spec, get, resource)


def write(spec, key, value, resource):
    _key, path = normalize_key(key, resource)

    def put():
        try:
            with open(path, 'w') as fh:
                fh.write('%s\n' % value)
        except OSError as exc:
            raise translate_os_error(exc, 'set sysctl %s=%s' % (key, value), resource, 'sysctls', key) from None
    _in_namespace(spec, put, resource)
