# -*- coding: utf-8 -*-
# Copyright: contributors to hostnet.provision
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
name: nsenter
short_description: Run tasks inside the namespaces of a process on the controller (a lab host)
version_added: 1.0.0
description:
  - Runs every command of a task inside the network, mount, UTS, IPC and PID namespaces of a process
    that runs on the controller, the way C(nsenter --target PID) does. Modules, M(ansible.builtin.raw),
    M(ansible.builtin.script), M(ansible.builtin.command) and file transfers all happen inside the target.
  - Made for the local lab of the collection (C(scripts/lab.sh up)), where each lab host is a long-lived
    process with its own namespaces, a private C(/run) (and so C(/run/netns)), a fresh C(/sys) and
    overlays on C(/etc), C(/var) and C(/usr/local). The lab writes an inventory that uses this plugin.
  - Files are copied by streaming them through C(nsenter) into the target's mount namespace, so a file
    put to C(/etc/...) lands in the lab host's C(/etc), never in the controller's.
  - The target process is found by O(nsenter_pid), by a PID file (O(nsenter_pidfile)), or by the PID
    file the lab keeps for each host under O(nsenter_lab_dir). A PID file may carry the process's start
    time as a second word; then a recycled PID is refused.
author:
  - hostnet.provision contributors (@hostnet-provision)
extends_documentation_fragment:
  - connection_pipelining
options:
  nsenter_pid:
    description:
      - PID (as seen by the controller) of the process whose namespaces the commands enter.
      - Takes precedence over O(nsenter_pidfile) and O(nsenter_lab_dir).
    type: int
    vars:
      - name: ansible_nsenter_pid
  nsenter_pidfile:
    description:
      - File that holds the target's PID as its first word; an optional second word is the process's start
        time (field 22 of C(/proc/PID/stat)), which must match.
      - Used when O(nsenter_pid) is not set. Defaults to C(<nsenter_lab_dir>/hosts/<inventory_hostname>.pid).
    type: path
    vars:
      - name: ansible_nsenter_pidfile
  nsenter_lab_dir:
    description:
      - Directory of a lab made by C(scripts/lab.sh up); its C(hosts/) directory holds one PID file per lab host.
      - Used to derive O(nsenter_pidfile) when neither O(nsenter_pid) nor O(nsenter_pidfile) is set.
    type: path
    env:
      - name: HOSTNET_LAB_DIR
    vars:
      - name: ansible_nsenter_lab_dir
  nsenter_lab_host:
    description:
      - Name of the lab host, used to derive O(nsenter_pidfile) from O(nsenter_lab_dir).
      - Defaults to the inventory hostname.
    type: str
    vars:
      - name: inventory_hostname
      - name: ansible_nsenter_lab_host
  nsenter_namespaces:
    description:
      - The namespaces of the target to enter.
      - Leave out V(mnt) only when the target shares the controller's mount namespace, and V(pid) only when
        processes started by tasks may outlive the target.
    type: list
    elements: str
    choices: [net, mnt, uts, ipc, pid]
    default: [net, mnt, uts, ipc, pid]
    vars:
      - name: ansible_nsenter_namespaces
  nsenter_executable:
    description:
      - The C(nsenter) program of util-linux on the controller.
    type: str
    default: nsenter
    vars:
      - name: ansible_nsenter_executable
requirements:
  - C(nsenter) from util-linux on the controller.
  - Root on the controller (entering another process's namespaces needs C(CAP_SYS_ADMIN)).
notes:
  - Everything runs as root inside the target. The remote user is ignored and privilege escalation
    (C(become)) is a no-op; a task that asks to become a user other than C(root) fails.
  - Commands start in C(/) of the target's mount namespace, with the controller's environment.
  - With O(nsenter_namespaces) containing V(pid), processes left behind by a task (daemons) belong to the
    target's PID namespace and end with it.
'''

EXAMPLES = r'''
# inventory.yml written by scripts/lab.sh up (abridged)
# all:
#   children:
#     lab:
#       hosts:
#         lab1:
#           lab_underlay_ip: 198.18.0.11
#       vars:
#         ansible_connection: hostnet.provision.nsenter
#         ansible_nsenter_lab_dir: /path/to/checkout/.cache/lab

# A process of one's own, e.g. started with
#   unshare --net --mount --uts --ipc --pid --fork --mount-proc sleep infinity
- name: Show the links of a namespace host
  hosts: nshost
  gather_facts: false
  vars:
    ansible_connection: hostnet.provision.nsenter
    ansible_nsenter_pidfile: /run/my-nshost.pid
  tasks:
    - name: List links inside the host
      ansible.builtin.raw: ip -j link
      changed_when: false
'''

import os
import shlex
import subprocess

from ansible.errors import AnsibleConnectionFailure, AnsibleError, AnsibleFileNotFound
from ansible.module_utils.common.text.converters import to_bytes, to_text
from ansible.plugins.connection import ConnectionBase
from ansible.utils.display import Display

display = Display()

# nsenter's long option for each namespace name of the option nsenter_namespaces.
_NS_FLAGS = {'net': '--net', 'mnt': '--mount', 'uts': '--uts', 'ipc': '--ipc', 'pid': '--pid'}
_SHELL = '/bin/sh'


def _process_start(pid):
    """Start time of a live process (field 22 of /proc/PID/stat), or None when it is gone or a zombie."""
    try:
        with open('/proc/%d/stat' % pid, 'rb') as stat:
            data = stat.read()
    except OSError:
        return None
    fields = data.rsplit(b')', 1)[-1].split()
    if len(fields) < 20 or fields[0] in (b'Z', b'X'):
        return None
    return to_text(fields[19])


class Connection(ConnectionBase):
    """Run commands and move files inside the namespaces of a local process."""

    transport = 'hostnet.provision.nsenter'
    has_pipelining = True
    has_tty = False

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._pid = None
        self._what = None

    # -- target ---------------------------------------------------------

    def _target(self):
        """Return (pid, start time or None, name of the target, error when it is not running)."""
        pid = self.get_option('nsenter_pid')
        if pid is not None:
            return pid, None, 'process %d' % pid, 'process %d (ansible_nsenter_pid) is not running' % pid
        host = self.get_option('nsenter_lab_host') or self._play_context.remote_addr
        pidfile = self.get_option('nsenter_pidfile')
        if pidfile:
            what = 'the process in %s' % pidfile
            dead = 'host %s: no live process in %s (ansible_nsenter_pidfile)' % (host, pidfile)
        else:
            lab_dir = self.get_option('nsenter_lab_dir')
            if not lab_dir:
                raise AnsibleConnectionFailure(
                    'hostnet.provision.nsenter: set ansible_nsenter_pid, ansible_nsenter_pidfile or '
                    'ansible_nsenter_lab_dir for host %s' % host)
            pidfile = os.path.join(lab_dir, 'hosts', '%s.pid' % host)
            what = 'lab host %s' % host
            dead = 'lab host %s is not running (no live process in %s): run scripts/lab.sh up' % (host, pidfile)
        try:
            with open(pidfile, encoding='ascii') as handle:
                words = handle.read().split()
            pid = int(words[0])
        except (OSError, ValueError, IndexError):
            raise AnsibleConnectionFailure(dead) from None
        return pid, (words[1] if len(words) > 1 else None), what, dead

    def _check_target(self):
        """Return (pid, name) of the target; raise AnsibleConnectionFailure (unreachable) when it is not running."""
        pid, start, what, dead = self._target()
        actual = _process_start(pid)
        if actual is None or (start is not None and actual != start):
            raise AnsibleConnectionFailure(dead)
        return pid, what

    def _nsenter(self, argv):
        """The controller-side argv that runs ARGV inside the target."""
        command = [self.get_option('nsenter_executable'), '--target', str(self._pid)]
        for name in self.get_option('nsenter_namespaces'):
            if name not in _NS_FLAGS:
                raise AnsibleConnectionFailure('hostnet.provision.nsenter: unknown namespace %r in nsenter_namespaces '
                                               '(choose from %s)' % (name, ', '.join(_NS_FLAGS)))
            command.append(_NS_FLAGS[name])
        return command + ['--'] + argv

    def _run(self, argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, in_data=None):
        command = self._nsenter(argv)
        display.vvvv('NSENTER %s' % ' '.join(shlex.quote(to_text(arg)) for arg in command),
                     host=self._play_context.remote_addr)
        try:
            proc = subprocess.Popen(command, stdin=stdin, stdout=stdout, stderr=subprocess.PIPE)
        except OSError as exc:
            raise AnsibleConnectionFailure('cannot run %s: %s' % (command[0], exc)) from exc
        out, err = proc.communicate(in_data)
        if proc.returncode != 0:
            # nsenter itself failed, or the target died under us: report it as unreachable.
            self._check_target()
        return proc.returncode, out or b'', err

    # -- ConnectionBase -------------------------------------------------

    def _connect(self):
        if not self._connected:
            self._pid, self._what = self._check_target()
            display.vvv('ESTABLISH NSENTER CONNECTION TO %s (PID %d)' % (self._what, self._pid),
                        host=self._play_context.remote_addr)
            self._connected = True
        return self

    def set_become_plugin(self, plugin):
        # Everything already runs as root inside the target: become is a no-op.
        super().set_become_plugin(None)

    def exec_command(self, cmd, in_data=None, sudoable=True):
        super().exec_command(cmd, in_data=in_data, sudoable=sudoable)
        become_user = self._play_context.become_user
        if sudoable and self._play_context.become and become_user not in (None, '', 'root'):
            raise AnsibleError('hostnet.provision.nsenter runs everything as root; become_user %r is not supported'
                               % become_user)
        display.vvv('EXEC %s' % to_text(cmd), host=self._play_context.remote_addr)
        argv = [_SHELL, '-c', to_text(cmd)] if isinstance(cmd, (str, bytes)) else [to_text(arg) for arg in cmd]
        return self._run(argv, in_data=in_data)

    def put_file(self, in_path, out_path):
        super().put_file(in_path, out_path)
        display.vvv('PUT %s TO %s' % (in_path, out_path), host=self._play_context.remote_addr)
        try:
            source = open(to_bytes(in_path, errors='surrogate_or_strict'), 'rb')  # pylint: disable=consider-using-with
        except FileNotFoundError:
            raise AnsibleFileNotFound('file or module does not exist: %s' % in_path) from None
        except OSError as exc:
            raise AnsibleError('cannot read %s: %s' % (in_path, exc)) from exc
        with source:
            rc, dummy, err = self._run([_SHELL, '-c', 'cat > "$1"', 'put_file', to_text(out_path)],
                                       stdin=source, stdout=subprocess.DEVNULL)
        if rc != 0:
            raise AnsibleError('failed to transfer %s to %s on %s: %s' % (in_path, out_path, self._what, to_text(err).strip()))

    def fetch_file(self, in_path, out_path):
        super().fetch_file(in_path, out_path)
        display.vvv('FETCH %s TO %s' % (in_path, out_path), host=self._play_context.remote_addr)
        try:
            target = open(to_bytes(out_path, errors='surrogate_or_strict'), 'wb')  # pylint: disable=consider-using-with
        except OSError as exc:
            raise AnsibleError('cannot write %s: %s' % (out_path, exc)) from exc
        with target:
            rc, dummy, err = self._run([_SHELL, '-c', 'cat -- "$1"', 'fetch_file', to_text(in_path)],
                                       stdin=subprocess.DEVNULL, stdout=target)
        if rc != 0:
            os.unlink(to_bytes(out_path, errors='surrogate_or_strict'))
            raise AnsibleError('failed to fetch %s from %s: %s' % (in_path, self._what, to_text(err).strip()))

    def reset(self):
        self.close()

    def close(self):
        self._connected = False
