# -*- coding: utf-8 -*-
# Copyright: contributors to hostnet.provision
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Crash-consistent link creation: an intent written before each create.

Private to the hostnet.provision collection.

A link is marked as the collection's by its alias, which the kernel cannot
take in the request that creates the link: a run killed between the two
(SIGKILL, OOM, a lost controller) would leave a link nobody owns, and every
later run would refuse its name as foreign. So each create is preceded by an
intent under ``/run/hostnet/intent`` (kind, namespace, name), removed once
the alias is on. The next run (under the per-host lock, so no other run is
mid-create) finds links that an intent names, of that kind and without an
alias: they are half made by the collection, and are deleted before that
run's own operations (in check mode, reported) and made again where the
configuration still wants them. /run is emptied at boot, as are the links.
"""

from __future__ import annotations

import contextlib
import json
import os

from ansible_collections.hostnet.provision.plugins.module_utils import _nsfs
from ansible_collections.hostnet.provision.plugins.module_utils._engine import Op
from ansible_collections.hostnet.provision.plugins.module_utils._errors import translate_os_error

__all__ = ['INTENT_DIR', 'begin', 'creating', 'end', 'is_half_made', 'recovery_ops']

INTENT_DIR = '/run/hostnet/intent'


def _path(spec, name):
    ident = _nsfs.namespace_id(spec)
    if ident is None:
        return None
    return os.path.join(INTENT_DIR, '%s-%s-%s' % (ident[0], ident[1], name))


def begin(spec, name, kind):
    """Before a link is created: say so (atomically: temporary file, rename)."""
    path = _path(spec, name)
    if path is None:
        return
    tmp = path + '.tmp'
    try:
        os.makedirs(INTENT_DIR, mode=0o755, exist_ok=True)
        with open(tmp, 'w') as fh:
            json.dump({'netns': spec, 'name': name, 'kind': kind}, fh)
        os.replace(tmp, path)
    except OSError as exc:
        _unlink(tmp)
        # Before the create: the link is not made without its intent.
        raise translate_os_error(exc, 'write %s (the intent before creating %s %s)' % (path, kind, name),
                                 '%s %s' % (kind, name), 'name', name) from None


def end(spec, name):
    """The link carries its alias (or was never made): the intent is done."""
    path = _path(spec, name)
    if path is None:
        return
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


@contextlib.contextmanager
def creating(spec, names, kind):
    """Around the code that creates a link and puts the alias on it: the
    intent lives exactly as long. It also goes when that code fails (a name
    taken meanwhile must not look half made by us next time); only a killed
    run leaves it behind."""
    begun = []
    try:
        for name in names:
            begin(spec, name, kind)
            begun.append(name)
        yield
    finally:
        for name in begun:
            end(spec, name)


def _intents():
    try:
        names = sorted(os.listdir(INTENT_DIR))
    except FileNotFoundError:
        return []
    out = []
    for entry in names:
        path = os.path.join(INTENT_DIR, entry)
        try:
            with open(path) as fh:
                data = json.load(fh)
        except (OSError, ValueError):
            data = None
        out.append((path, data if isinstance(data, dict) else None))
    return out


def _unlink(path):
    try:
        os.unlink(path)
    except OSError:
        pass


def is_half_made(spec, link):
    """A link without the collection's alias that an intent of the
    collection names, with the intent's kind."""
    if not os.path.isdir(INTENT_DIR):
        return False
    path = _path(spec, link['name'])
    if path is None or not os.path.exists(path):
        return False
    try:
        with open(path) as fh:
            data = json.load(fh)
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and data.get('kind') == link.get('kind')


def recovery_ops(kernel, check_mode):
    """Delete the links half made by an interrupted run (ops, reported in
    check mode too); intents that name nothing half made are dropped."""
    from ansible_collections.hostnet.provision.plugins.module_utils._netlink import is_managed
    ops = []
    for path, data in _intents():
        if path.endswith('.tmp') or data is None or not isinstance(data.get('name'), str):
            if not check_mode:
                _unlink(path)
            continue
        spec, name = data.get('netns'), data['name']
        link = kernel.link(spec, name) if kernel.exists(spec) else None
        stale = (link is None or is_managed(link) or link.get('kind') != data.get('kind')
                 or _path(spec, name) != path)
        if stale:
            if not check_mode:
                _unlink(path)
            continue
        where = '' if not spec else ' in %s' % _nsfs.spec_label(spec)
        res = '%s %s' % (data.get('kind') or 'link', name)
        ops.append(Op(res, 'delete %s %s%s, half made by an interrupted run' % (data.get('kind'), name, where),
                      _delete(kernel, spec, name, link['index'], path, res)))
    return ops


def _delete(kernel, spec, name, index, path, res):
    from ansible_collections.hostnet.provision.plugins.module_utils._netlink import is_managed

    def run():
        link = kernel.link(spec, name) if kernel.exists(spec) else None
        if link is not None and link['index'] == index and not is_managed(link):
            kernel.link_del(spec, res, index)
        _unlink(path)
    return run
