# -*- coding: utf-8 -*-
# Copyright: contributors to hostnet.provision
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The local lab of hostnet.provision: hosts made of namespaces on this machine.

Run it through scripts/lab.sh (root):

    lab.sh up [N]              N hosts lab1..labN (default 3) on an underlay switch
    lab.sh down                end every lab process and remove the lab's state
    lab.sh status [--json]     the hosts and whether they run
    lab.sh exec HOST [CMD...]  run CMD (default: a shell) inside HOST

A host is a long-lived process, PID 1 of its own PID namespace, in its own
network, mount, UTS and IPC namespaces. Its mount namespace has a private
/run (so /run/netns), a fresh /sys and overlays on /etc, /var and /usr/local
whose upper layers live in the lab directory, so nothing a play writes
reaches the machine's own files. The underlay switch is a bridge `sw0` in
a namespace of its own; each host's `eth0` is a veth whose other end sits on
that bridge. The veths are created from inside the switch's namespace with
the peer placed straight into the host's: nothing is ever created in the
machine's own network namespace.

The lab directory (HOSTNET_LAB_DIR, default <repo>/.cache/lab) holds the
records: hosts/NAME.pid and switch.pid ("PID STARTTIME", PID 1 of each
namespace as seen from here), the unshare launchers' records, the overlay
layers, inventory.yml and lab.json. Ending a host is SIGKILL of its PID 1
(`unshare --fork` ignores SIGTERM); its PID namespace takes every process
started inside with it, and its mounts and links go with its namespaces.

Only the standard library and util-linux/iproute2 programs are used; `ip`
output is read as JSON (`ip -j`), never as text.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import glob
import json
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_LAB_DIR = os.path.join(REPO, '.cache', 'lab')
DEFAULT_PYTHON = os.path.join(REPO, '.venv', 'bin', 'python')

MARKER = '.hostnet-lab'          # written first by `up`; `down` removes state only where it exists
HOST_TAG = 'hostnet-lab-host'    # $0 of a host's init: finds strays of a crashed `up`
SWITCH_TAG = 'hostnet-lab-switch'
SWITCH_NAME = 'lab-switch'
BRIDGE = 'sw0'
HOST_IF = 'eth0'
NET4, PREFIX4 = '198.18.0.', 24       # RFC 2544 benchmarking range
NET6, PREFIX6 = '2001:db8:18::', 64   # RFC 3849 documentation range
DEFAULT_HOSTS = 3
MAX_HOSTS = 200
HOST_NAME = re.compile(r'^[a-z][a-z0-9]{0,11}$')  # "sw-" + name must fit IFNAMSIZ
OVERLAYS = ('etc', 'var', 'usr/local')
READY_TIMEOUT = 15.0
DOWN_TIMEOUT = 10.0

NSENTER_ALL = ['--net', '--mount', '--uts', '--ipc', '--pid']
UNSHARE = ['unshare', '--net', '--mount', '--uts', '--ipc', '--pid', '--fork', '--kill-child',
           '--mount-proc', '--propagation', 'private', '--']

# PID 1 of a lab host. $0 is HOST_TAG, then: lab dir, host name, state dir,
# lines for /etc/hosts, overlay dirs.
HOST_INIT = r'''
set -eu
lab=$1 name=$2 state=$3 etc_hosts=$4
shift 4
mount -t tmpfs -o mode=0755,size=64m hostnet-lab /run
mkdir -p /run/netns /run/lock
mount -t sysfs hostnet-lab /sys
for dir in "$@"; do
    [ -d "/$dir" ] || continue
    mkdir -p "$state/overlay/$dir/upper" "$state/overlay/$dir/work"
    mount -t overlay hostnet-lab \
        -o "lowerdir=/$dir,upperdir=$state/overlay/$dir/upper,workdir=$state/overlay/$dir/work" "/$dir"
done
printf '%s\n' "$name" >/proc/sys/kernel/hostname
printf '%s\n' "$name" >/etc/hostname
printf '%s\n' "$etc_hosts" >>/etc/hosts
ip link set lo up
echo ready
# From here on PID 1 only reaps what tasks leave behind, until SIGKILL from outside.
exec /bin/sh -c 'while :; do sleep 3600 & wait; done' "$0" "$lab" "$name" </dev/null >/dev/null 2>&1
'''

# PID 1 of the underlay switch. $0 is SWITCH_TAG, then: lab dir, hostname, bridge.
SWITCH_INIT = r'''
set -eu
printf '%s\n' "$2" >/proc/sys/kernel/hostname
ip link set lo up
ip link add "$3" type bridge mcast_snooping 0
ip link set "$3" up
echo ready
exec /bin/sh -c 'while :; do sleep 3600 & wait; done' "$0" "$1" </dev/null >/dev/null 2>&1
'''


class LabError(Exception):
    """A lab command failed; the message says what to do."""


# -- processes ------------------------------------------------------------

def process_start(pid):
    """Start time of a live process (field 22 of /proc/PID/stat), or None when gone or a zombie."""
    try:
        with open('/proc/%d/stat' % pid, 'rb') as stat:
            data = stat.read()
    except OSError:
        return None
    fields = data.rsplit(b')', 1)[-1].split()
    if len(fields) < 20 or fields[0] in (b'Z', b'X'):
        return None
    return fields[19].decode()


def read_record(path):
    """(pid, start) from a record file, or None when it is missing or unreadable."""
    try:
        with open(path, encoding='ascii') as handle:
            words = handle.read().split()
        return int(words[0]), (words[1] if len(words) > 1 else None)
    except (OSError, ValueError, IndexError):
        return None


def write_record(path, pid):
    start = process_start(pid)
    if start is None:
        raise LabError('process %d ended before it could be recorded in %s' % (pid, path))
    tmp = path + '.tmp'
    with open(tmp, 'w', encoding='ascii') as handle:
        handle.write('%d %s\n' % (pid, start))
    os.replace(tmp, path)
    return start


def alive(record):
    return record is not None and record[1] is not None and process_start(record[0]) == record[1]


def child_of(parent):
    """PID of the (only) child of PARENT -- the PID 1 that `unshare --fork` started."""
    try:
        with open('/proc/%d/task/%d/children' % (parent, parent), encoding='ascii') as handle:
            children = [int(word) for word in handle.read().split()]
    except OSError:
        children = [pid for pid in all_pids() if parent_of(pid) == parent]
    if len(children) != 1:
        raise LabError('expected one child of unshare %d, found %r' % (parent, children))
    return children[0]


def parent_of(pid):
    try:
        with open('/proc/%d/stat' % pid, 'rb') as stat:
            return int(stat.read().rsplit(b')', 1)[-1].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def all_pids():
    return [int(name) for name in os.listdir('/proc') if name.isdigit()]


def strays(lab):
    """PIDs of processes whose command line marks them as part of LAB (launchers and PID 1s)."""
    found = []
    for pid in all_pids():
        try:
            with open('/proc/%d/cmdline' % pid, 'rb') as handle:
                argv = handle.read().split(b'\0')
        except OSError:
            continue
        for tag in (HOST_TAG, SWITCH_TAG):
            tag = tag.encode()
            if tag in argv:
                index = argv.index(tag)
                if index + 1 < len(argv) and argv[index + 1] == lab.encode():
                    found.append(pid)
    return found


def mounts_referring_to(lab):
    """Mount lines, in any mount namespace on the machine, that name a path inside LAB."""
    seen, lines = set(), []
    needle = lab + '/'
    for pid in all_pids():
        try:
            namespace = os.stat('/proc/%d/ns/mnt' % pid).st_ino
            if namespace in seen:
                continue
            seen.add(namespace)
            with open('/proc/%d/mountinfo' % pid, encoding='utf-8', errors='replace') as handle:
                lines.extend(line.strip() for line in handle if needle in line)
        except OSError:
            continue
    return lines


# -- commands run in namespaces ------------------------------------------

def run(argv, stdin=None):
    proc = subprocess.run(argv, input=stdin, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise LabError('%s failed (exit %d): %s' % (' '.join(argv), proc.returncode, proc.stderr.strip()))
    return proc.stdout


def in_ns(pid, *flags):
    return ['nsenter', '--target', str(pid)] + list(flags or ('--net',)) + ['--']


# -- the lab directory ------------------------------------------------------

class Lab:
    """Paths of one lab directory."""

    def __init__(self, path):
        self.path = os.path.realpath(path)
        self.hosts_dir = os.path.join(self.path, 'hosts')
        self.switch_dir = os.path.join(self.path, 'switch')
        self.switch_pid = os.path.join(self.path, 'switch.pid')
        self.inventory = os.path.join(self.path, 'inventory.yml')
        self.state = os.path.join(self.path, 'lab.json')
        self.marker = os.path.join(self.path, MARKER)

    def host_pid(self, name):
        return os.path.join(self.hosts_dir, name + '.pid')

    def host_dir(self, name):
        return os.path.join(self.hosts_dir, name)

    def check_path(self):
        path = self.path
        if path == '/':
            raise LabError('the lab directory cannot be /')
        for banned in ('/run', '/proc', '/sys', '/dev') + tuple('/' + name for name in OVERLAYS):
            if path == banned or path.startswith(banned + '/'):
                raise LabError('the lab directory %s cannot be under %s (the lab hosts mount their own %s); '
                               'set HOSTNET_LAB_DIR elsewhere' % (path, banned, banned))

    def records(self):
        """Every process record the lab directory holds (PID 1s and launchers)."""
        paths = [self.switch_pid, os.path.join(self.switch_dir, 'launcher.pid')]
        paths += glob.glob(os.path.join(glob.escape(self.hosts_dir), '*.pid'))
        paths += glob.glob(os.path.join(glob.escape(self.hosts_dir), '*', 'launcher.pid'))
        return [record for record in map(read_record, paths) if record is not None]

    def load(self):
        try:
            with open(self.state, encoding='utf-8') as handle:
                return json.load(handle)
        except (OSError, ValueError):
            return None

    def write(self, path, text):
        tmp = path + '.tmp'
        with open(tmp, 'w', encoding='utf-8') as handle:
            handle.write(text)
        os.replace(tmp, path)


@contextlib.contextmanager
def locked(lab, create):
    """Hold an exclusive lock on the lab directory (None when it does not exist and CREATE is false)."""
    while True:
        if create:
            os.makedirs(lab.path, exist_ok=True)
        try:
            fd = os.open(lab.path, os.O_RDONLY | os.O_DIRECTORY)
        except FileNotFoundError:
            if create:
                continue
            yield None
            return
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            same = os.path.samestat(os.stat(lab.path), os.fstat(fd))
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)  # removed by a `down` while we waited: start over
    try:
        yield fd
    finally:
        os.close(fd)


# -- up ---------------------------------------------------------------------

def host_plan(count):
    hosts = []
    for index in range(1, count + 1):
        octet = 10 + index
        name = 'lab%d' % index
        hosts.append({
            'name': name,
            'index': index,
            'underlay_ip': NET4 + str(octet),
            'underlay_ip6': NET6 + str(octet),
            'interface': HOST_IF,
            'mac': '02:00:c6:12:00:%02x' % octet,
            'switch_port': 'sw-' + name,
        })
    return hosts


def spawn(lab, tag, script, args, state_dir):
    """Start an `unshare` launcher running SCRIPT as PID 1; record the launcher; return its Popen."""
    os.makedirs(state_dir, exist_ok=True)
    with open(os.path.join(state_dir, 'init.log'), 'ab') as log:
        proc = subprocess.Popen(  # pylint: disable=consider-using-with  # outlives this program
            UNSHARE + ['/bin/sh', '-c', script, tag, lab.path] + args,
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log,
            start_new_session=True, close_fds=True)
    write_record(os.path.join(state_dir, 'launcher.pid'), proc.pid)
    return proc


def wait_ready(proc, what, state_dir, deadline):
    """Wait for the init's 'ready' line; return the PID of the namespace's PID 1."""
    line = b''
    remaining = deadline - time.monotonic()
    if remaining > 0 and select.select([proc.stdout], [], [], remaining)[0]:
        line = proc.stdout.readline()
    proc.stdout.close()
    if line.strip() != b'ready':
        try:
            with open(os.path.join(state_dir, 'init.log'), encoding='utf-8', errors='replace') as handle:
                log = handle.read().strip()
        except OSError:
            log = ''
        raise LabError('%s did not come up%s' % (what, (': ' + log) if log else ' in time'))
    return child_of(proc.pid)


def build(lab, count, python):
    started = time.monotonic()
    hosts = host_plan(count)
    ipv6 = os.path.isdir('/proc/sys/net/ipv6')
    with open(lab.marker, 'w', encoding='ascii') as handle:  # first: `down` removes state only where it is
        handle.write('hostnet.provision lab: scripts/lab.sh down removes what is here\n')
    os.makedirs(lab.hosts_dir, exist_ok=True)

    etc_hosts = '\n'.join(['# hostnet.provision lab'] + ['%s %s' % (host['underlay_ip'], host['name']) for host in hosts])
    deadline = time.monotonic() + READY_TIMEOUT
    switch_proc = spawn(lab, SWITCH_TAG, SWITCH_INIT, [SWITCH_NAME, BRIDGE], lab.switch_dir)
    procs = [spawn(lab, HOST_TAG, HOST_INIT, [host['name'], lab.host_dir(host['name']), etc_hosts] + list(OVERLAYS),
                   lab.host_dir(host['name']))
             for host in hosts]

    switch_pid = wait_ready(switch_proc, 'the underlay switch', lab.switch_dir, deadline)
    switch = {'pid': switch_pid, 'start': write_record(lab.switch_pid, switch_pid), 'bridge': BRIDGE}
    for host, proc in zip(hosts, procs):
        pid = wait_ready(proc, 'lab host ' + host['name'], lab.host_dir(host['name']), deadline)
        host['pid'] = pid
        host['start'] = write_record(lab.host_pid(host['name']), pid)

    # Every veth is made inside the switch's namespace, its peer placed straight
    # into the host's namespace by PID: the machine's own namespace never sees it.
    batch = []
    for host in hosts:
        batch.append('link add %s type veth peer name %s address %s netns %d'
                     % (host['switch_port'], HOST_IF, host['mac'], host['pid']))
        batch.append('link set %s master %s up' % (host['switch_port'], BRIDGE))
    run(in_ns(switch_pid) + ['ip', '-batch', '-'], '\n'.join(batch) + '\n')
    for host in hosts:
        batch = ['address add %s/%d dev %s' % (host['underlay_ip'], PREFIX4, HOST_IF)]
        if ipv6:
            batch.append('address add %s/%d dev %s nodad' % (host['underlay_ip6'], PREFIX6, HOST_IF))
        batch.append('link set %s up' % HOST_IF)
        run(in_ns(host['pid']) + ['ip', '-batch', '-'], '\n'.join(batch) + '\n')
        links = json.loads(run(in_ns(host['pid']) + ['ip', '-j', 'link', 'show']))
        flags = {link['ifname']: link.get('flags', []) for link in links}
        if sorted(flags) != sorted(['lo', HOST_IF]) or 'UP' not in flags[HOST_IF]:
            raise LabError('lab host %s has links %r, expected lo and %s up' % (host['name'], sorted(flags), HOST_IF))

    state = {
        'lab_dir': lab.path,
        'switch': switch,
        'hosts': hosts,
        'underlay': {'ipv4': '%s0/%d' % (NET4, PREFIX4), 'ipv6': '%s/%d' % (NET6, PREFIX6) if ipv6 else None},
        'python': python,
    }
    lab.write(lab.inventory, inventory(lab, state))
    lab.write(lab.state, json.dumps(state, indent=2) + '\n')
    return state, time.monotonic() - started


def inventory(lab, state):
    quote = json.dumps  # a JSON string is a valid YAML scalar
    lines = [
        '---',
        '# Written by scripts/lab.sh up; removed by scripts/lab.sh down.',
        'all:',
        '  children:',
        '    lab:',
        '      hosts:',
    ]
    for host in state['hosts']:
        lines += [
            '        %s:' % host['name'],
            '          lab_underlay_ip: %s' % quote(host['underlay_ip']),
            '          lab_underlay_ip6: %s' % quote(host['underlay_ip6'] if state['underlay']['ipv6'] else ''),
            '          lab_underlay_interface: %s' % quote(host['interface']),
        ]
    lines += [
        '      vars:',
        '        ansible_connection: hostnet.provision.nsenter',
        '        ansible_nsenter_lab_dir: %s' % quote(lab.path),
        '        ansible_python_interpreter: %s' % quote(state['python']),
        '        ansible_pipelining: true',
        '        lab_underlay_net: %s' % quote(state['underlay']['ipv4']),
        '        lab_underlay_net6: %s' % quote(state['underlay']['ipv6'] or ''),
    ]
    return '\n'.join(lines) + '\n'


def healthy(lab, state):
    if not state or not alive(read_record(lab.switch_pid)):
        return False
    return all(alive(read_record(lab.host_pid(host['name']))) for host in state.get('hosts', []))


def cmd_up(lab, count):
    lab.check_path()
    python = os.environ.get('HOSTNET_LAB_PYTHON') or DEFAULT_PYTHON
    with locked(lab, create=True):
        state = lab.load()
        if healthy(lab, state):
            running = len(state['hosts'])
            if count is not None and count != running:
                raise LabError('the lab in %s runs %d hosts, not %d: run scripts/lab.sh down first'
                               % (lab.path, running, count))
            print('lab is already up: %d hosts in %s' % (running, lab.path))
            return 0
        if lab.records() or strays(lab.path) or os.path.exists(lab.marker):
            print('cleaning up a lab that is not (fully) running in %s' % lab.path)
            teardown(lab, remove_dir=False)
        if count is None and state:
            count = len(state.get('hosts', [])) or None  # rebuild a broken lab at its size
        try:
            state, took = build(lab, count or DEFAULT_HOSTS, python)
        except BaseException as exc:  # also Ctrl-C: never leave a half-built lab running
            teardown(lab, remove_dir=False)
            if isinstance(exc, (LabError, OSError, ValueError)):
                raise LabError('lab up failed (cleaned up): %s' % exc) from None
            raise
    for host in state['hosts']:
        print('%-8s pid %-7d %s/%d %s/%d'
              % (host['name'], host['pid'], host['underlay_ip'], PREFIX4, host['underlay_ip6'], PREFIX6))
    print('lab up: %d hosts in %.2fs; inventory %s' % (len(state['hosts']), took, lab.inventory))
    return 0


# -- down -------------------------------------------------------------------

def teardown(lab, remove_dir):
    """SIGKILL every process of the lab, wait for them to go, remove the lab's state."""
    victims = {}
    for pid, start in lab.records():
        if alive((pid, start)):
            victims[pid] = start
    for pid in strays(lab.path):
        victims.setdefault(pid, process_start(pid))
    killed = set()
    deadline = time.monotonic() + DOWN_TIMEOUT
    # Rounds: a process of an interrupted `up` may still be starting others
    # while the first round kills it; the next round finds those.
    while victims:
        for pid in victims:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        killed.update(victims)
        left = list(victims)
        while left and time.monotonic() < deadline:
            time.sleep(0.02)
            left = [pid for pid in left if alive((pid, victims[pid]))]
        if left:
            raise LabError('lab processes %r did not end within %ds' % (left, DOWN_TIMEOUT))
        victims = dict((pid, process_start(pid)) for pid in strays(lab.path))
        if victims and time.monotonic() >= deadline:
            break  # reported below

    # The mounts lived in the hosts' mount namespaces and went with them;
    # a mount under the lab directory in ours would be a leftover of a bug.
    for line in reversed(mounts_referring_to(lab.path)):
        point = line.split()[4]
        if point.startswith(lab.path + '/'):
            subprocess.run(['umount', '--lazy', point], check=False, capture_output=True)

    if os.path.exists(lab.marker):
        for path in (lab.hosts_dir, lab.switch_dir):
            shutil.rmtree(path, ignore_errors=True)
        for path in (lab.switch_pid, lab.inventory, lab.state, lab.marker):
            for name in (path + '.tmp', path):  # .tmp: left by an interrupted write
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(name)
    if remove_dir:
        with contextlib.suppress(OSError):
            os.rmdir(lab.path)

    problems = ['process %d' % pid for pid in strays(lab.path)]
    problems += ['mount: ' + line for line in mounts_referring_to(lab.path)]
    if problems:
        raise LabError('the lab left things behind: %s' % '; '.join(problems))
    return len(killed)


def cmd_down(lab):
    started = time.monotonic()
    with locked(lab, create=False) as fd:
        if fd is None:
            killed = teardown(lab, remove_dir=False)  # no directory, but maybe strays
        else:
            killed = teardown(lab, remove_dir=True)
    print('lab down: %d processes ended in %.2fs; nothing left in %s'
          % (killed, time.monotonic() - started, lab.path))
    return 0


# -- status / exec ----------------------------------------------------------

def collect(lab):
    state = lab.load() or {}
    names = [os.path.basename(path)[:-4] for path in glob.glob(os.path.join(glob.escape(lab.hosts_dir), '*.pid'))]
    by_name = {host['name']: host for host in state.get('hosts', [])}
    hosts = []
    for name in sorted(set(names) | set(by_name), key=lambda name: (len(name), name)):
        record = read_record(lab.host_pid(name))
        host = dict(by_name.get(name, {'name': name}))
        host.update(pid=record[0] if record else None, running=alive(record))
        hosts.append(host)
    record = read_record(lab.switch_pid)
    switch = {'pid': record[0] if record else None, 'running': alive(record), 'bridge': BRIDGE}
    complete = bool(state) and bool(hosts)
    return {
        'lab_dir': lab.path,
        'up': complete and switch['running'] and all(host['running'] for host in hosts),
        'complete': complete,
        'inventory': lab.inventory if os.path.exists(lab.inventory) else None,
        'switch': switch,
        'hosts': hosts,
    }


def cmd_status(lab, as_json):
    status = collect(lab)
    if as_json:
        print(json.dumps(status, indent=2))
    elif not status['hosts'] and status['switch']['pid'] is None:
        print('no lab in %s' % lab.path)
    else:
        word = {True: 'running', False: 'NOT RUNNING'}
        print('lab %s: %s' % (lab.path, 'up' if status['up'] else 'NOT UP (run scripts/lab.sh down, then up)'))
        print('%-10s pid %-7s %s' % ('switch', status['switch']['pid'], word[status['switch']['running']]))
        for host in status['hosts']:
            print('%-10s pid %-7s %-11s %s %s'
                  % (host['name'], host['pid'], word[host['running']], host.get('underlay_ip', ''), host.get('underlay_ip6', '')))
    if status['up']:
        return 0
    return 3 if not status['hosts'] and status['switch']['pid'] is None else 1


def cmd_exec(lab, name, command):
    record = read_record(lab.host_pid(name))
    if not alive(record):
        raise LabError('lab host %s is not running: run scripts/lab.sh up' % name)
    if not command:
        command = ['/bin/bash' if os.path.exists('/bin/bash') else '/bin/sh']
    argv = in_ns(record[0], *NSENTER_ALL) + command
    os.execvp(argv[0], argv)


# -- command line -----------------------------------------------------------

def main(argv=None):
    parser = argparse.ArgumentParser(prog='lab.sh', description='The local lab of hostnet.provision '
                                     '(lab directory: $HOSTNET_LAB_DIR, default %s).' % DEFAULT_LAB_DIR)
    commands = parser.add_subparsers(dest='command', required=True)
    up = commands.add_parser('up', help='start the lab (idempotent)')
    up.add_argument('count', nargs='?', type=int, help='number of hosts (default %d)' % DEFAULT_HOSTS)
    commands.add_parser('down', help='end the lab and remove its state')
    status = commands.add_parser('status', help='show the hosts and whether they run')
    status.add_argument('--json', action='store_true', help='machine-readable output')
    execute = commands.add_parser('exec', help='run a command inside a lab host')
    execute.add_argument('host')
    execute.add_argument('cmd', nargs=argparse.REMAINDER, help='command (default: a shell)')
    args = parser.parse_args(argv)

    lab = Lab(os.environ.get('HOSTNET_LAB_DIR') or DEFAULT_LAB_DIR)
    try:
        if args.command in ('up', 'down', 'exec') and os.geteuid() != 0:
            raise LabError('needs root (it creates namespaces and mounts)')
        if args.command == 'up':
            if args.count is not None and not 1 <= args.count <= MAX_HOSTS:
                raise LabError('the number of hosts must be 1 to %d, not %d' % (MAX_HOSTS, args.count))
            return cmd_up(lab, args.count)
        if args.command == 'down':
            return cmd_down(lab)
        if args.command == 'status':
            return cmd_status(lab, args.json)
        if not HOST_NAME.match(args.host):
            raise LabError('not a lab host name: %r' % args.host)
        return cmd_exec(lab, args.host, args.cmd)
    except LabError as exc:
        print('lab.sh %s: %s' % (args.command, exc), file=sys.stderr)
        return 1


if __name__ == '__main__':
    sys.exit(main())
