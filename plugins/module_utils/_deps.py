# -*- coding: utf-8 -*-
# Copyright: contributors to hostnet.provision
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Guarded imports of third-party libraries.

Private to the hostnet.provision collection. Importing this never fails, so
``ansible-test sanity --test import`` passes and a target without pyroute2
gets an actionable message instead of a traceback.
"""

from __future__ import annotations

import importlib
import importlib.util
import traceback

__all__ = ['HAS_PYROUTE2', 'PYROUTE2_IMPORT_ERROR', 'require_pyroute2']

# pyroute2 takes about half a second to import, more than a whole run of a
# module that only reads (the reads go over the engine's own rtnetlink
# socket). Whether it is installed is decided here without importing it; the
# names below are imported on first use.
_LAZY = {
    'IPRoute': ('pyroute2', 'IPRoute'),
    'NetlinkError': ('pyroute2.netlink.exceptions', 'NetlinkError'),
    'NetlinkDumpInterrupted': ('pyroute2.netlink.exceptions', 'NetlinkDumpInterrupted'),
}


def _installed():
    try:
        return importlib.util.find_spec('pyroute2') is not None
    except (ImportError, ValueError):
        return False


HAS_PYROUTE2 = _installed()
PYROUTE2_IMPORT_ERROR = None if HAS_PYROUTE2 else "ModuleNotFoundError: No module named 'pyroute2'"


def __getattr__(name):
    """IPRoute, NetlinkError, NetlinkDumpInterrupted and PYROUTE2_VERSION,
    imported when first asked for."""
    if name == 'PYROUTE2_VERSION':
        if not HAS_PYROUTE2:
            return None
        return getattr(_import('pyroute2'), '__version__', 'unknown')
    if name not in _LAZY:
        raise AttributeError('module %r has no attribute %r' % (__name__, name))
    module, attr = _LAZY[name]
    value = getattr(_import(module), attr)
    globals()[name] = value
    return value


def _import(module):
    require_pyroute2()
    try:
        return importlib.import_module(module)
    except ImportError:
        from ansible_collections.hostnet.provision.plugins.module_utils._errors import MissingDependency
        raise MissingDependency('the Python library pyroute2 is installed on the target but cannot be imported:\n%s'
                                % traceback.format_exc(), field='pyroute2') from None


def require_pyroute2():
    """Raise MissingDependency naming the packages to install."""
    if not HAS_PYROUTE2:
        from ansible_collections.hostnet.provision.plugins.module_utils._errors import MissingDependency
        raise MissingDependency(
            'the Python library pyroute2 (0.7.2 or newer) is required on the target: '
            'install the Debian/Ubuntu package python3-pyroute2, the RHEL package '
            'python3-pyroute2 (EPEL), or "pip install pyroute2"',
            field='pyroute2')
