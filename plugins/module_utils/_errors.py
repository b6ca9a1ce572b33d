# -*- coding: utf-8 -*-
# Copyright: contributors to hostnet.provision
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Typed errors of the engine.

Private to the hostnet.provision collection: no stability promise to
anything outside it.

Every error carries the resource, the field and the value it is about, so
the module adapter can fail with one clear message in one place.
"""

from __future__ import annotations

import errno as _errno

__all__ = [
    'HostnetError',
    'ValidationError',
    'NamespaceNotFound',
    'LinkNotFound',
    'ConflictError',
    'NotManagedError',
    'KernelError',
    'ApplyError',
    'MissingDependency',
    'translate_os_error',
]


class HostnetError(Exception):
    """Base class: a message plus the resource/field/value it concerns."""

    def __init__(self, message, resource=None, field=None, value=None):
        self.resource = resource
        self.field = field
        self.value = value
        super().__init__(message)

    def to_dict(self):
        return {
            'msg': str(self),
            'resource': self.resource,
            'field': self.field,
            'value': self.value,
        }


class ValidationError(HostnetError):
    """The input is wrong; raised before anything is changed."""


class NamespaceNotFound(HostnetError):
    """A network namespace that a resource refers to does not exist."""


class LinkNotFound(HostnetError):
    """A link that a resource refers to (bridge, parent) does not exist."""


class ConflictError(HostnetError):
    """Something else already holds a name, address or port we need."""


class NotManagedError(ConflictError):
    """The object exists but was not created by this collection."""


class KernelError(HostnetError):
    """The kernel refused an operation; carries the errno name."""

    def __init__(self, message, resource=None, field=None, value=None, errno_name=None):
        super().__init__(message, resource, field, value)
        self.errno_name = errno_name


class ApplyError(HostnetError):
    """An operation failed while applying a plan.

    Every operation of the call that ran has been undone, newest first:
    ``rolled_back`` lists them; ``done`` lists what stands because it could
    not be undone (empty: nothing of the call was kept).
    """

    def __init__(self, message, resource=None, done=None, rolled_back=None, cause=None):
        super().__init__(message, resource)
        self.done = list(done or [])
        self.rolled_back = list(rolled_back or [])
        self.cause = cause


class MissingDependency(HostnetError):
    """A Python library or system component is missing on the target."""


def errno_name(code):
    """Symbolic name of an errno value (``EEXIST``), never a bare number."""
    return _errno.errorcode.get(abs(code or 0), 'E%s' % code)


# Which error class an errno name means, for the one translation point.
_BY_ERRNO = {
    'EEXIST': ConflictError,
    'EADDRINUSE': ConflictError,
    'EBUSY': ConflictError,
    'ENODEV': LinkNotFound,
}


def translate_os_error(exc, action, resource=None, field=None, value=None):
    """Turn a NetlinkError/OSError into one of our errors (errno by name)."""
    code = getattr(exc, 'code', None)
    if code is None:
        code = getattr(exc, 'errno', None)
    name = errno_name(code)
    text = _errno_text(code, exc)
    cls = _BY_ERRNO.get(name, KernelError)
    message = '%s: %s failed: %s (%s)' % (resource or 'kernel', action, text, name)
    if cls is KernelError:
        return KernelError(message, resource, field, value, errno_name=name)
    err = cls(message, resource, field, value)
    err.errno_name = name
    return err


def _errno_text(code, exc):
    import os
    try:
        return os.strerror(abs(code))
    except (TypeError, ValueError):
        return str(exc)
