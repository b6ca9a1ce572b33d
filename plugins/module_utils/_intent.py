# -*- coding: utf-8 -*-
# Copyright: contributors to hostnet.provision
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Records of the links the collection made: written before each create,
completed with the link's index once its alias is on.

Private to the hostnet.provision collection.

One file per link under ``/run/hostnet/links`` (``DEV-INODE-NAME``: the
namespace's identity and the link's name), emptied at boot with the links
themselves. It serves two promises:

- **Ownership that holds.** A link is the collection's when its alias has
  the collection's grammar *and* the record of its name in its namespace
  holds its index: a link someone else made under a name of ours, alias
  copied and all, is foreign. Links that an earlier version made (alias, no
  record) are taken as ours until the first run of this version that
  changes something in their namespace records them (``adopt_legacy``);
  from then on, a link without a record is foreign.
- **Crash consistency.** The kernel takes a link's alias only after the
  link exists. The record is written first, as an intent without index: a
  run killed between create and alias leaves a link without alias that an
  intent names, of the intent's kind. The next run (under the per-host lock,
  so no other run is mid-create) deletes such half-made links before its own
  operations (in check mode, reports them) and makes them again where the
  configuration wants them.
"""

from __future__ import annotations

import contextlib
import json
import os

from ansible_collections.hostnet.provision.plugins.module_utils import _nsfs
from ansible_collections.hostnet.provision.plugins.module_utils._engine import Op
from ansible_collections.hostnet.provision.plugins.module_utils._errors import translate_os_error

__all__ = ['LINKS_DIR', 'adopt_legacy', 'begin', 'creating', 'forget', 'forget_cache', 'is_half_made', 'owned', 'record',
           'recovery_ops', 'sweep']

LINKS_DIR = '/run/hostnet/links'
# A namespace whose links all have records (see adopt_legacy): a file
# ``.recorded-DEV-INODE``.
_RECORDED = '.recorded-%s-%s'


class _Cache:
    """The records, read once per run (runs take turns on the host lock and
    keep this up to date with their own writes)."""
    records = None   # (dev, inode, name) -> dict
    recorded = None  # set of (dev, inode)


def forget_cache():
    """At the start of a run: read the records again when first needed."""
    _Cache.records = None
    _Cache.recorded = None


def _load():
    if _Cache.records is not None:
        return
    records, recorded = {}, set()
    try:
        entries = os.listdir(LINKS_DIR)
    except OSError:
        entries = []
    for entry in entries:
        if entry.startswith('.recorded-'):
            parts = entry[len('.recorded-'):].split('-')
            if len(parts) == 2 and all(p.isdigit() for p in parts):
                recorded.add((int(parts[0]), int(parts[1])))
            continue
        parts = entry.split('-', 2)
        if entry.startswith('.') or len(parts) != 3 or not parts[0].isdigit() or not parts[1].isdigit():
            continue
        try:
            with open(os.path.join(LINKS_DIR, entry)) as fh:
                data = json.load(fh)
        except (OSError, ValueError):
            continue
        if isinstance(data, dict):
            records[(int(parts[0]), int(parts[1]), parts[2])] = data
    _Cache.records, _Cache.recorded = records, recorded


def _key(spec, name):
    ident = _nsfs.namespace_id(spec)
    if ident is None:
        return None
    return (ident[0], ident[1], name)


def _file(key):
    return os.path.join(LINKS_DIR, '%s-%s-%s' % key)


def _write(key, data, what):
    path = _file(key)
    tmp = os.path.join(LINKS_DIR, '.%s.tmp' % os.path.basename(path))
    try:
        os.makedirs(LINKS_DIR, mode=0o755, exist_ok=True)
        with open(tmp, 'w') as fh:
            json.dump(data, fh)
        os.replace(tmp, path)
    except OSError as exc:
        _unlink(tmp)
        raise translate_os_error(exc, 'write %s (%s)' % (path, what), '%s %s' % (data.get('kind') or 'link', key[2]),
                                 'name', key[2]) from None
    _load()
    _Cache.records[key] = data


def _unlink(path):
    try:
        os.unlink(path)
    except OSError:
        pass


def _drop(key):
    _unlink(_file(key))
    if _Cache.records is not None:
        _Cache.records.pop(key, None)


def begin(spec, name, kind):
    """Before a link is created: the intent (no index yet)."""
    key = _key(spec, name)
    if key is not None:
        _write(key, {'netns': spec, 'name': name, 'kind': kind}, 'the record before creating %s %s' % (kind, name))


def record(spec, name, index, kind=None):
    """The link carries the collection's alias now: its record holds its index."""
    key = _key(spec, name)
    if key is None:
        return
    _load()
    old = _Cache.records.get(key) or {}
    if old.get('index') == index:
        return
    _write(key, {'netns': spec, 'name': name, 'kind': kind or old.get('kind'), 'index': index},
           'the record of %s' % name)


def forget(spec, name, index):
    """The collection deleted the link: its record goes (if it is that link's)."""
    key = _key(spec, name)
    if key is None:
        return
    _load()
    data = _Cache.records.get(key)
    if data is not None and data.get('index') in (None, index):
        _drop(key)


@contextlib.contextmanager
def creating(spec, names, kind):
    """Around the code that creates a link and puts the alias on it. An
    intent that did not become a record by the end (the code failed: the name
    was taken meanwhile, say) goes, so that the name is never taken for half
    made by us; only a killed run leaves an intent behind."""
    begun = []
    try:
        for name in names:
            begin(spec, name, kind)
            begun.append(name)
        yield
    finally:
        for name in begun:
            key = _key(spec, name)
            if key is not None and 'index' not in (_Cache.records or {}).get(key, {}):
                _drop(key)


def owned(link):
    """Whether the record agrees that a link carrying the collection's alias
    is the collection's (see the module's docstring). Links read without
    their namespace (``_ns``) cannot be checked against a record."""
    ns = link.get('_ns')
    if ns is None:
        return True
    _load()
    data = _Cache.records.get((ns[0], ns[1], link['name']))
    if data is None:
        return (ns[0], ns[1]) not in _Cache.recorded
    # No index: the alias went on and the run was killed before the record.
    return data.get('index') in (None, link['index'])


def adopt_legacy(kernel):
    """At the end of a run that changed something: the links of the
    namespaces it read that carry the collection's alias but have no record
    (made by an earlier version) are recorded, and from then on a link
    without a record in those namespaces is foreign."""
    from ansible_collections.hostnet.provision.plugins.module_utils._netlink import parse_alias
    _load()
    for spec, ident in kernel.namespaces_read():
        if (ident[0], ident[1]) in _Cache.recorded or not kernel.exists(spec):
            continue
        for link in kernel.links(spec).values():
            key = (ident[0], ident[1], link['name'])
            parsed = parse_alias(link.get('alias'))
            if parsed is not None and parsed[0] != 'veth-peer' and key not in _Cache.records:
                _write(key, {'netns': spec, 'name': link['name'], 'kind': link.get('kind'), 'index': link['index']},
                       'the record of %s' % link['name'])
        marker = os.path.join(LINKS_DIR, _RECORDED % (ident[0], ident[1]))
        try:
            os.makedirs(LINKS_DIR, mode=0o755, exist_ok=True)
            with open(marker, 'w'):
                pass
        except OSError:
            continue  # tried again by the next run
        _Cache.recorded.add((ident[0], ident[1]))


def sweep(kernel):
    """At the end of a run: drop the records of links gone from the
    namespaces the run read (deleted with a namespace, or by hand). Only
    complete records (with an index); intents are the recovery's."""
    _load()
    # Namespaces the run read that are gone now (deleted by it, or by the
    # undo of a failed call): their marker and records go too.
    gone = getattr(kernel, 'namespaces_forgotten', list)()
    complete = {}  # namespace identity -> its complete records (one pass, not one per namespace)
    if gone:
        for key, data in _Cache.records.items():
            if 'index' in data:
                complete.setdefault((key[0], key[1]), []).append(key)
    for spec, ident in gone:
        if kernel.exists(spec) and _nsfs.namespace_id(spec) == ident:
            continue  # still there under its name: not deleted
        if (ident[0], ident[1]) in _Cache.recorded:
            _unlink(os.path.join(LINKS_DIR, _RECORDED % (ident[0], ident[1])))
            _Cache.recorded.discard((ident[0], ident[1]))
        for key in complete.pop((ident[0], ident[1]), []):
            _drop(key)
    if not _Cache.records:
        return
    by_ns = {}
    for key, data in _Cache.records.items():
        if 'index' in data:
            by_ns.setdefault((key[0], key[1]), []).append(key)
    for spec, ident in kernel.namespaces_read():
        keys = by_ns.get((ident[0], ident[1]))
        if not keys or not kernel.exists(spec) or _nsfs.namespace_id(spec) != ident:
            continue
        links = kernel.links(spec)
        for key in keys:
            link = links.get(key[2])
            if link is None or link['index'] != _Cache.records[key].get('index'):
                _drop(key)


def is_half_made(spec, link):
    """A link without the collection's alias that an intent of the
    collection names, with the intent's kind."""
    key = _key(spec, link['name'])
    if key is None:
        return False
    _load()
    data = _Cache.records.get(key)
    return data is not None and 'index' not in data and data.get('kind') == link.get('kind')


def recovery_ops(kernel, check_mode):
    """Delete the links half made by an interrupted run (ops, reported in
    check mode too); intents that name nothing half made are dropped."""
    from ansible_collections.hostnet.provision.plugins.module_utils._netlink import parse_alias
    _load()
    ops = []
    for key, data in sorted(_Cache.records.items()):
        if 'index' in data:
            continue
        spec, name = data.get('netns'), key[2]
        link = kernel.link(spec, name) if kernel.exists(spec) and _key(spec, name) == key else None
        if link is None or link.get('kind') != data.get('kind'):
            if not check_mode:
                _drop(key)
            continue
        if parse_alias(link.get('alias')) is not None:
            # Alias on, record not: killed in between. Ours; complete it.
            if not check_mode:
                record(spec, name, link['index'])
            continue
        where = '' if not spec else ' in %s' % _nsfs.spec_label(spec)
        res = '%s %s' % (data.get('kind') or 'link', name)
        ops.append(Op(res, 'delete %s %s%s, half made by an interrupted run' % (data.get('kind'), name, where),
                      _delete(kernel, spec, name, link['index'], key, res)))
    return ops


def _delete(kernel, spec, name, index, key, res):
    from ansible_collections.hostnet.provision.plugins.module_utils._netlink import parse_alias

    def run():
        link = kernel.link(spec, name) if kernel.exists(spec) else None
        if link is not None and link['index'] == index and parse_alias(link.get('alias')) is None:
            kernel.link_del(spec, res, index)
        _drop(key)
    return run
