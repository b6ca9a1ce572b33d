# -*- coding: utf-8 -*-
# Copyright: contributors to hostnet.provision
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Name resolution per network: one dnsmasq per network, and the
``/etc/netns/NAME`` files of its endpoints.

Private to the hostnet.provision collection. Pure Python: files and
processes only (no kernel state), so it runs without Ansible.

Per network ``NET`` (paths configurable):

* ``CONFIG_DIR/NET.conf``: the resolver's configuration: it listens on the
  network's gateway addresses only (``bind-dynamic``), never reads the
  host's ``/etc/hosts``, answers the names in ``CONFIG_DIR/NET.hosts``
  (bare and under the network's domain), forwards nothing about that domain
  nor any bare name, and forwards every other name to its upstreams (the
  host's ``/etc/resolv.conf`` by default);
* ``CONFIG_DIR/NET.hosts``: the endpoints' names and aliases, rewritten
  every run; a change is loaded with SIGHUP (the resolver keeps its PID);
* ``NETNS_DIR/NS/resolv.conf`` and ``NETNS_DIR/NS/hosts`` of each endpoint,
  which ``ip netns exec NS`` mounts over ``/etc``.

Every file starts with a marker line naming the network; a file without it
is never overwritten nor removed (ConflictError). Supervision: ``process``
starts the resolver itself (pidfile in ``RUN_DIR``, restarted when dead or
when its configuration changed), ``systemd`` leaves starting and stopping
to the unit ``hostnet-dns@NET.service`` and reports which networks need a
restart; both reload a changed hosts file with SIGHUP.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import re
import signal
import subprocess
import time

from ansible_collections.hostnet.provision.plugins.module_utils import _validate as v
from ansible_collections.hostnet.provision.plugins.module_utils._errors import (
    ConflictError,
    HostnetError,
    MissingDependency,
    ValidationError,
)

__all__ = ['DEFAULTS', 'SUPERVISORS', 'supervisor', 'normalize', 'plan', 'apply', 'running_pid', 'marker', 'summary']

SUPERVISORS = ('auto', 'process', 'systemd')
DEFAULTS = {
    'config_dir': '/etc/hostnet/dns',
    'netns_dir': '/etc/netns',
    'run_dir': '/run/hostnet/dns',
    'dnsmasq': '/usr/sbin/dnsmasq',
    'supervisor': 'auto',
}
_MARK = '# Managed by hostnet.provision'
_NAME = re.compile(r'^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$')
_HOSTNAME = re.compile(r'^(?=.{1,253}$)[A-Za-z0-9_]([A-Za-z0-9_-]{0,62})(\.[A-Za-z0-9_]([A-Za-z0-9_-]{0,62}))*$')
_OPTION = re.compile(r'^[a-z0-9-]+(:[0-9]+)?$')
_WAIT = 5.0  # seconds for a resolver to start or stop


def supervisor(wanted, booted_marker='/run/systemd/system'):
    """``auto`` is ``systemd`` on a host booted with systemd (sd_booted's
    test), else ``process`` (a container, a lab host)."""
    if wanted != 'auto':
        return wanted
    return 'systemd' if os.path.isdir(booted_marker) else 'process'


def marker(net):
    """First line of every file this module writes for network ``net``."""
    return '%s (dns network %s); changes are overwritten.' % (_MARK, net)


# -- input --------------------------------------------------------------------------


def _fail(where, field, value, why):
    raise ValidationError('%s: %s %r %s' % (where, field, value, why), where, field, value)


def _list(value, where, field):
    if value is None:
        return []
    if not isinstance(value, list):
        _fail(where, field, value, 'must be a list')
    return value


def _address(value, where, field):
    try:
        return str(ipaddress.ip_address(str(value)))
    except ValueError:
        _fail(where, field, value, 'is not an IPv4 or IPv6 address')


def _hostname(value, where, field):
    if not isinstance(value, str) or not _HOSTNAME.match(value):
        _fail(where, field, value, 'is not a host name (letters, digits, "-", "_", dot-separated labels)')
    return value


def _hosts(entries, where, field):
    out = []
    for entry in _list(entries, where, field):
        if not isinstance(entry, dict):
            _fail(where, field, entry, 'entries must be {address, names}')
        names = [_hostname(n, where, field + '.names') for n in _list(entry.get('names'), where, field)]
        if not names:
            _fail(where, field, entry, 'entries need at least one name')
        out.append({'address': _address(entry.get('address'), where, field + '.address'), 'names': names})
    return out


def _upstream(value, where):
    """``ADDRESS`` or ``ADDRESS#PORT`` (dnsmasq's ``server=`` syntax)."""
    text = str(value)
    address, _sep, port = text.partition('#')
    address = _address(address, where, 'upstreams')
    if port and (not port.isdigit() or not 0 < int(port) < 65536):
        _fail(where, 'upstreams', value, 'has a port outside 1-65535')
    return address + ('#' + port if port else '')


def _endpoint(raw, where):
    if not isinstance(raw, dict):
        _fail(where, 'endpoints', raw, 'entries must be dicts')
    netns = v.netns_name(raw.get('netns'), where, 'endpoints.netns')
    ep_where = '%s endpoint %s' % (where, netns)
    search = [_hostname(s, ep_where, 'search') for s in _list(raw.get('search'), ep_where, 'search')]
    options = []
    for opt in _list(raw.get('options'), ep_where, 'options'):
        if not isinstance(opt, str) or not _OPTION.match(opt):
            _fail(ep_where, 'options', opt, 'is not a resolv.conf option (e.g. ndots:2, edns0, rotate)')
        options.append(opt)
    return {
        'netns': netns,
        'keep': bool(raw.get('keep')),
        'nameservers': [_address(a, ep_where, 'nameservers')
                        for a in _list(raw.get('nameservers'), ep_where, 'nameservers')],
        'search': search,
        'options': options,
        'hosts': _hosts(raw.get('hosts'), ep_where, 'hosts'),
    }


def normalize(networks):
    """Every network checked and in canonical form; ValidationError on the first problem."""
    out = []
    seen = {}
    files = {}
    for raw in _list(networks, 'dns', 'config'):
        if not isinstance(raw, dict):
            _fail('dns', 'config', raw, 'entries must be dicts')
        name = raw.get('name')
        if not isinstance(name, str) or not _NAME.match(name):
            _fail('dns', 'name', name, 'must be 1-63 letters, digits, "_", "-" or "." (it names files)')
        where = 'dns network %s' % name
        if name in seen:
            _fail(where, 'name', name, 'is listed twice')
        seen[name] = True
        state = raw.get('state') or 'present'
        if state not in ('present', 'absent'):
            _fail(where, 'state', state, 'must be present or absent')
        net = {'name': name, 'state': state, 'resolver': bool(raw.get('resolver', True)),
               'domain': _hostname(raw.get('domain') or name, where, 'domain'),
               'listen': [_address(a, where, 'listen') for a in _list(raw.get('listen'), where, 'listen')],
               'upstreams': [_upstream(u, where) for u in _list(raw.get('upstreams'), where, 'upstreams')],
               'resolv_file': raw.get('resolv_file') or '/etc/resolv.conf',
               'hosts': _hosts(raw.get('hosts'), where, 'hosts'),
               'endpoints': [_endpoint(e, where) for e in _list(raw.get('endpoints'), where, 'endpoints')]}
        if not os.path.isabs(net['resolv_file']):
            _fail(where, 'resolv_file', net['resolv_file'], 'must be an absolute path')
        if state == 'present' and net['resolver'] and not net['listen']:
            _fail(where, 'listen', [], 'needs at least one address (the gateway) for the resolver')
        for ep in net['endpoints']:
            if state == 'present' and ep['netns'] in files:
                _fail(where, 'endpoints.netns', ep['netns'],
                      'also gets its resolver files from dns network %s; a namespace has one resolv.conf'
                      % files[ep['netns']])
            files[ep['netns']] = name
        out.append(net)
    return out


# -- what each network should have ----------------------------------------------------


def _conf(net, paths):
    # bind-dynamic: its own sockets on the listen addresses only (several
    # resolvers side by side), and an address that is not usable yet (IPv6
    # duplicate address detection, a bridge restored later at boot) is
    # bound when it is.
    lines = [marker(net['name']),
             '# One resolver per network: it answers the names of this network only.',
             'bind-dynamic']
    lines += ['listen-address=%s' % a for a in net['listen']]
    lines += ['no-hosts',
              'addn-hosts=%s' % _path(paths, 'config_dir', net['name'] + '.hosts'),
              'domain-needed',
              'local=/%s/' % net['domain'],
              'pid-file=%s' % _path(paths, 'run_dir', net['name'] + '.pid')]
    if net['upstreams']:
        lines.append('no-resolv')
        lines += ['server=%s' % u for u in net['upstreams']]
    else:
        lines.append('resolv-file=%s' % net['resolv_file'])
    return '\n'.join(lines) + '\n'


def _names(net, name):
    return [name, '%s.%s' % (name, net['domain'])] if '.' not in name else [name]


def _hosts_file(net):
    lines = [marker(net['name'])]
    for entry in net['hosts']:
        names = []
        for name in entry['names']:
            names += [n for n in _names(net, name) if n not in names]
        lines.append('%s %s' % (entry['address'], ' '.join(names)))
    return '\n'.join(lines) + '\n'


def _resolv(net, ep):
    lines = [marker(net['name'])]
    servers = ep['nameservers'] or (net['listen'] if net['resolver'] and net['state'] == 'present' else [])
    lines += ['nameserver %s' % s for s in servers]
    search = ([net['domain']] if net['resolver'] else []) + [s for s in ep['search'] if s != net['domain']]
    if search:
        lines.append('search %s' % ' '.join(search))
    if ep['options']:
        lines.append('options %s' % ' '.join(ep['options']))
    return '\n'.join(lines) + '\n'


def _etc_hosts(net, ep):
    lines = [marker(net['name']), '127.0.0.1 localhost', '::1 localhost ip6-localhost ip6-loopback']
    for entry in net['hosts']:
        if ep['netns'] in entry['names']:
            lines.append('%s %s' % (entry['address'], ' '.join(_names(net, ep['netns']))))
    for entry in ep['hosts']:
        lines.append('%s %s' % (entry['address'], ' '.join(entry['names'])))
    return '\n'.join(lines) + '\n'


def _path(paths, key, *parts):
    return os.path.join(paths[key], *parts)


# -- what the host has ------------------------------------------------------------------


def _read(path):
    try:
        with open(path) as fh:
            return fh.read()
    except FileNotFoundError:
        return None
    except OSError as err:
        raise HostnetError('%s: cannot read: %s' % (path, err.strerror), path)


def _owner(content):
    """The network a file was written for, or '' for a file not ours."""
    first = (content or '').split('\n', 1)[0]
    match = re.match(r'^%s \(dns network (.+)\); changes are overwritten\.$' % re.escape(_MARK), first)
    return match.group(1) if match else ''


def _tagged_netns_files(paths, name):
    """Endpoint files under NETNS_DIR written for network ``name``."""
    found = []
    try:
        entries = sorted(os.listdir(paths['netns_dir']))
    except FileNotFoundError:
        return found
    for ns in entries:
        for leaf in ('resolv.conf', 'hosts'):
            path = _path(paths, 'netns_dir', ns, leaf)
            if os.path.isfile(path) and _owner(_read(path)) == name:
                found.append((ns, path))
    return found


def running_pid(paths, name):
    """PID of the network's resolver if it runs (pidfile, and the process is
    a dnsmasq with this network's configuration), else None."""
    text = _read(_path(paths, 'run_dir', name + '.pid'))
    if not text or not text.strip().isdigit():
        return None
    pid = int(text.strip())
    try:
        with open('/proc/%d/cmdline' % pid, 'rb') as fh:
            argv = fh.read().split(b'\0')
    except OSError:
        return None
    conf = _path(paths, 'config_dir', name + '.conf').encode()
    if any(a.endswith(b'dnsmasq') for a in argv[:1]) and any(conf in a for a in argv):
        return pid
    return None


# -- plan -----------------------------------------------------------------------------------


def _want_file(path, content, name, changes, before, after, handover=()):
    """``handover``: networks of this call whose files this one may take
    over (a namespace whose files move to another network)."""
    have = _read(path)
    owner = _owner(have)
    if have is not None and owner != name and owner not in handover:
        why = 'was written for dns network %s' % owner if owner else 'was not written by hostnet.provision'
        raise ConflictError('%s: exists and %s; it is left alone (remove it, or choose another network/endpoint)'
                            % (path, why), path)
    before[path] = have
    after[path] = content
    if have != content:
        changes.append(('write', path, content))
    return have != content


def _drop_file(path, changes, before, after):
    before[path] = _read(path)
    after[path] = None
    changes.append(('remove', path))


def plan(networks, paths):
    """(changes, restarts, stopped, diff) for the normalized ``networks``.

    ``changes``: ordered ('write'|'remove'|'rmdir', path[, content]) and
    ('start'|'stop'|'restart'|'reload', network) steps; ``restarts``: the
    networks whose resolver configuration changed, ``stopped``: those whose
    resolver goes (both for systemd).
    """
    changes, restarts, stopped = [], [], []
    before, after = {}, {}
    # Which network of this call writes each namespace's files.
    claimed = dict((ep['netns'], net['name']) for net in networks if net['state'] == 'present'
                   for ep in net['endpoints'])
    names = set(net['name'] for net in networks)
    for net in networks:
        name = net['name']
        conf_path = _path(paths, 'config_dir', name + '.conf')
        hosts_path = _path(paths, 'config_dir', name + '.hosts')
        pid = running_pid(paths, name)
        wanted_ns = set()
        present = net['state'] == 'present'
        if present:
            for ep in net['endpoints']:
                wanted_ns.add(ep['netns'])
                if ep['keep']:
                    continue
                for leaf, content in (('resolv.conf', _resolv(net, ep)), ('hosts', _etc_hosts(net, ep))):
                    _want_file(_path(paths, 'netns_dir', ep['netns'], leaf), content, name, changes, before, after,
                               handover=names)
        emptied = set()
        for ns, path in _tagged_netns_files(paths, name):
            if ns not in wanted_ns and claimed.get(ns, name) == name:
                _drop_file(path, changes, before, after)
                emptied.add(ns)
        if present and net['resolver']:
            conf_changed = _want_file(conf_path, _conf(net, paths), name, changes, before, after)
            hosts_changed = _want_file(hosts_path, _hosts_file(net), name, changes, before, after)
            if conf_changed:
                restarts.append(name)
            if paths['supervisor'] == 'process':
                if pid is None:
                    changes.append(('start', name))
                elif conf_changed:
                    changes.append(('restart', name))
                elif hosts_changed:
                    changes.append(('reload', name))
            elif hosts_changed and not conf_changed and pid is not None:
                changes.append(('reload', name))
        else:
            if pid is not None and paths['supervisor'] == 'process':
                changes.insert(0, ('stop', name))
            if pid is not None or _owner(_read(conf_path)) == name:
                stopped.append(name)
            for path in (conf_path, hosts_path):
                if _owner(_read(path)) == name:
                    _drop_file(path, changes, before, after)
        for ns in sorted(emptied):
            changes.append(('rmdir', _path(paths, 'netns_dir', ns)))
    return changes, restarts, stopped, {'before': _compact(before), 'after': _compact(after)}


def _compact(files):
    return dict((path, content) for path, content in sorted(files.items()) if content is not None)


# -- apply -----------------------------------------------------------------------------------


def _write(path, content):
    os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
    tmp = '%s.hostnet-tmp' % path
    with open(tmp, 'w') as fh:
        fh.write(content)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def _wait(test, seconds=_WAIT):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if test():
            return True
        time.sleep(0.05)
    return test()


def _start(paths, name):
    binary = paths['dnsmasq']
    if not os.access(binary, os.X_OK):
        raise MissingDependency('dns network %s: the resolver %s is missing on this host: install the package '
                                'dnsmasq-base (Debian/Ubuntu) or dnsmasq (RHEL/Fedora)' % (name, binary),
                                name, 'dnsmasq', binary)
    os.makedirs(paths['run_dir'], mode=0o755, exist_ok=True)
    conf = _path(paths, 'config_dir', name + '.conf')
    # dnsmasq forks into the background and its first process exits only
    # once the resolver listens (or with its error).
    proc = subprocess.run([binary, '--conf-file=%s' % conf], stdin=subprocess.DEVNULL, capture_output=True,
                          text=True, timeout=30, check=False)
    if proc.returncode != 0:
        raise ConflictError('dns network %s: the resolver did not start: %s'
                            % (name, (proc.stderr or proc.stdout).strip()), name, 'listen')
    if not _wait(lambda: running_pid(paths, name) is not None):
        raise ConflictError('dns network %s: the resolver started but wrote no pidfile in %s'
                            % (name, paths['run_dir']), name)


def _signal(pid, sig):
    try:
        os.kill(pid, sig)
    except OSError as err:
        if err.errno != errno.ESRCH:
            raise HostnetError('cannot signal resolver %d: %s' % (pid, err.strerror))


def _exited(pid):
    """The process is gone, or a zombie its parent has not reaped yet."""
    try:
        with open('/proc/%d/stat' % pid) as fh:
            return fh.read().rsplit(')', 1)[1].split()[0] in ('Z', 'X')
    except (OSError, IndexError):
        return True


def _stop(paths, name):
    pid = running_pid(paths, name)
    if pid is None:
        return
    _signal(pid, signal.SIGTERM)
    # dnsmasq removes its pidfile before it exits: wait for the process.
    if not _wait(lambda: _exited(pid)):
        _signal(pid, signal.SIGKILL)
        _wait(lambda: _exited(pid))
    try:
        os.unlink(_path(paths, 'run_dir', name + '.pid'))
    except FileNotFoundError:
        pass


def apply(changes, paths):
    """Carry out ``plan``'s changes, in order."""
    for change in changes:
        action, target = change[0], change[1]
        try:
            if action == 'write':
                _write(target, change[2])
            elif action == 'remove':
                os.unlink(target)
            elif action == 'rmdir':
                if os.path.isdir(target) and not os.listdir(target):
                    os.rmdir(target)
            elif action == 'stop':
                _stop(paths, target)
            elif action == 'start':
                _start(paths, target)
            elif action == 'restart':
                _stop(paths, target)
                _start(paths, target)
            elif action == 'reload':
                pid = running_pid(paths, target)
                if pid is not None:
                    _signal(pid, signal.SIGHUP)
        except (OSError, subprocess.SubprocessError) as err:
            raise HostnetError('dns: %s %s failed: %s' % (action, target, getattr(err, 'strerror', None) or err),
                               target)


def summary(changes):
    """The changes as short strings for the module's ``commands``."""
    return ['%s %s' % (c[0], c[1]) for c in changes]
