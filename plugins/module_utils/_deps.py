# -*- coding: utf-8 -*-
# Copyright: contributors to hostnet.provision
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Guarded imports of third-party libraries.

Private to the hostnet.provision collection. Importing this never fails, so
``ansible-test sanity --test import`` passes and a target without pyroute2
gets an actionable message instead of a traceback.
"""

from __future__ import annotations

import traceback

__all__ = ['HAS_PYROUTE2', 'PYROUTE2_IMPORT_ERROR', 'PYROUTE2_VERSION', 'require_pyroute2']

try:
    import pyroute2  # noqa: F401  pylint: disable=unused-import
    from pyroute2 import IPRoute  # noqa: F401  pylint: disable=unused-import
    from pyroute2.netlink.exceptions import NetlinkError  # noqa: F401  pylint: disable=unused-import
    from pyroute2.netlink.exceptions import NetlinkDumpInterrupted  # noqa: F401  pylint: disable=unused-import
except ImportError:
    HAS_PYROUTE2 = False
    PYROUTE2_IMPORT_ERROR = traceback.format_exc()
    PYROUTE2_VERSION = None
else:
    HAS_PYROUTE2 = True
    PYROUTE2_IMPORT_ERROR = None
    PYROUTE2_VERSION = getattr(pyroute2, '__version__', 'unknown')


def require_pyroute2():
    """Raise MissingDependency naming the packages to install."""
    if not HAS_PYROUTE2:
        from ansible_collections.hostnet.provision.plugins.module_utils._errors import MissingDependency
        raise MissingDependency(
            'the Python library pyroute2 (0.7.2 or newer) is required on the target: '
            'install the Debian/Ubuntu package python3-pyroute2, the RHEL package '
            'python3-pyroute2 (EPEL), or "pip install pyroute2"',
            field='pyroute2')
