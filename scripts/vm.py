# -*- coding: utf-8 -*-
# Copyright: contributors to hostnet.provision
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Debian 12 VMs under qemu for hostnet.provision: what the namespace lab cannot show.

Run it through scripts/vm.sh (root):

    vm.sh image [--rebuild]     build (or reuse) the cached image; print its directory
    vm.sh up [N]                N VMs vm1..vmN (default 2) on one isolated L2 segment
    vm.sh down                  end every VM process and remove the VM directory
    vm.sh status [--json]       the VMs and whether they run
    vm.sh ssh VM [CMD...]       run CMD (default: a shell) in VM over ssh
    vm.sh reboot VM...          reboot VMs, wait until each is back with a new boot id

The image. mmdebstrap installs Debian 12 (minbase, systemd, openssh-server,
python3 with the distribution's python3-pyroute2, python3-netaddr and
python3-nftables, nftables, iproute2, a Debian kernel) from the Debian mirror
this machine's apt uses, into a directory that mkfs.ext4 turns into an image.
The kernel and a small initrd (virtio and ext4 modules only) are copied out
and booted directly by qemu. The image lives in ~/.cache/hostnet.provision/
vm-images/HASH (HOSTNET_VM_IMAGES overrides the directory), HASH
being the hash of the whole recipe (suite, mirrors, packages, every file put
into the image, every command run in it): the same recipe is built once.

A VM. Its disk is a qcow2 overlay on the read-only image, thrown away with
the VM. NIC 1 (eth0) is qemu user-mode networking with restrict=on inside
198.19.255.0/24 and no IPv6, so the guest cannot reach anything outside;
ssh is forwarded from a port on 127.0.0.1 only. NIC 2 (eth1) is the underlay:
a unix stream socket into a hub, a machine-less qemu process that joins the
VMs' underlay NICs into one L2 segment (198.18.1.0/24, 2001:db8:18:1::/64)
that nothing else is on. Per-VM settings (hostname, ssh key, underlay
addresses) reach the guest through qemu's fw_cfg, applied at every boot by a
small unit in the image, so a reboot keeps them.

KVM is used when a probe VM (a boot sector that reports through an I/O port)
runs under it; otherwise TCG, with a 256 MiB code cache (the default 1 GiB
costs over a GiB of memory per VM) and -cpu qemu64.

Every qemu process is recorded ("PID STARTTIME") in the VM directory; `down`
SIGKILLs the recorded ones and any process whose command line names the VM
directory, waits for them, then removes the directory and checks that
nothing of it runs anywhere. `up` cleans up after itself when it fails.

Only the standard library, qemu, qemu-img, mmdebstrap, mkfs.ext4 and ssh are used.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import glob
import hashlib
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CACHE = os.path.join(REPO, '.cache', 'vm')
# Images are kept per machine, not per checkout, so that a fresh clone (CI's)
# reuses the image an earlier run built from the same recipe.
IMAGES = os.environ.get('HOSTNET_VM_IMAGES') or os.path.join(
    os.environ.get('XDG_CACHE_HOME') or os.path.expanduser('~/.cache'), 'hostnet.provision', 'vm-images')
DEFAULT_VM_DIR = os.path.join(CACHE, 'run')

QEMU = 'qemu-system-x86_64'
MARKER = '.hostnet-vm'
DEFAULT_VMS = 2
MAX_VMS = 8
VM_NAME = re.compile(r'^vm[1-9]$')

# Addresses: only ranges reserved for benchmarking and documentation.
MGMT_NET = '198.19.255.0/24'      # user-mode networking, per VM, restricted
MGMT_GUEST = '198.19.255.15'
MGMT_HOST = '198.19.255.2'
UNDERLAY4, UNDERLAY_PREFIX4 = '198.18.1.', 24
UNDERLAY6, UNDERLAY_PREFIX6 = '2001:db8:18:1::', 64
UNDERLAY_IF = 'eth1'
MGMT_IF = 'eth0'

MEMORY_MB = 768
TCG_TB_SIZE_MB = 256
BOOT_TIMEOUT = {'kvm': 90.0, 'tcg': 420.0}  # TCG on a loaded 2-core machine: up to ~190 s seen
REBOOT_TIMEOUT = {'kvm': 180.0, 'tcg': 420.0}
SSH_TIMEOUT = 30.0
DOWN_TIMEOUT = 10.0
PROBE_TIMEOUT = 20.0

# -- the image recipe --------------------------------------------------------

SUITE = 'bookworm'
IMAGE_SIZE = '2G'
PACKAGES = [
    'systemd-sysv', 'udev', 'kmod', 'dbus', 'openssh-server', 'python3',
    'python3-pyroute2', 'python3-netaddr', 'python3-nftables', 'nftables',
    'iproute2', 'iputils-ping', 'socat', 'conntrack', 'procps', 'ethtool', 'netbase', 'dnsmasq-base',
    'linux-image-amd64', 'initramfs-tools',
]
DPKG_OPTS = [
    'path-exclude=/usr/share/doc/*', 'path-include=/usr/share/doc/*/copyright',
    'path-exclude=/usr/share/man/*', 'path-exclude=/usr/share/info/*',
    'path-exclude=/usr/share/locale/*', 'path-include=/usr/share/locale/locale.alias',
]
KERNEL_CMDLINE = ('root=/dev/vda rw rootfstype=ext4 console=ttyS0 net.ifnames=0 quiet loglevel=3 '
                  'systemd.show_status=false mitigations=off panic=10')

SEED_SCRIPT = r'''#!/bin/sh
# Apply the settings qemu hands to this VM through fw_cfg (scripts/vm.py); runs at every boot.
set -eu
modprobe qemu_fw_cfg
seed=/sys/firmware/qemu_fw_cfg/by_name/opt/hostnet
i=0
while [ ! -e "$seed/hostname/raw" ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
name=$(cat "$seed/hostname/raw")
printf '%s\n' "$name" > /etc/hostname
hostname "$name"
mkdir -p -m 0700 /root/.ssh
cat "$seed/authorized_keys/raw" > /root/.ssh/authorized_keys
chmod 0600 /root/.ssh/authorized_keys
mkdir -p /run/systemd/network
cat "$seed/underlay.network/raw" > /run/systemd/network/20-hostnet-underlay.network
cat "$seed/hosts/raw" > /etc/hosts
'''

IMAGE_FILES = {
    '/usr/local/sbin/hostnet-seed': (0o755, SEED_SCRIPT),
    '/etc/systemd/system/hostnet-seed.service': (0o644, '''\
[Unit]
Description=Apply the hostnet.provision VM settings from qemu fw_cfg
DefaultDependencies=no
After=local-fs.target systemd-modules-load.service
Before=systemd-networkd.service ssh.service sysinit.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/local/sbin/hostnet-seed

[Install]
WantedBy=sysinit.target
'''),
    '/etc/systemd/network/10-hostnet-mgmt.network': (0o644, '''\
# Management NIC: qemu user-mode networking (restrict=on), ssh forwarded from the machine's 127.0.0.1.
[Match]
Name=%s

[Link]
RequiredForOnline=no

[Network]
Address=%s/24
LinkLocalAddressing=no
IPv6AcceptRA=no
''' % (MGMT_IF, MGMT_GUEST)),
    '/etc/systemd/networkd.conf.d/hostnet.conf': (0o644, '''\
# Routes and rules that hostnet.provision makes are not networkd's to remove.
[Network]
ManageForeignRoutes=no
ManageForeignRoutingPolicyRules=no
'''),
    '/etc/ssh/sshd_config.d/hostnet.conf': (0o644, '''\
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UseDNS no
MaxStartups 100
'''),
    '/etc/fstab': (0o644, '/dev/vda / ext4 rw,noatime 0 0\n'),
    '/etc/initramfs-tools/conf.d/hostnet.conf': (0o644, 'MODULES=list\nCOMPRESS=gzip\n'),
    '/etc/initramfs-tools/hooks/hostnet': (0o755, r'''#!/bin/sh
# A small initrd: the virtio disk and ext4, nothing else.
[ "${1:-}" = prereqs ] && exit 0
. /usr/share/initramfs-tools/hook-functions
for module in virtio_pci virtio_blk ext4; do
    manual_add_modules "$module"
    echo "$module" >> "${DESTDIR}/conf/modules"
done
'''),
    '/etc/modules-load.d/hostnet.conf': (0o644, '8021q\n'),
}

IMAGE_COMMANDS = [
    'systemctl enable systemd-networkd.service hostnet-seed.service',
    'systemctl mask systemd-networkd-wait-online.service apt-daily.timer apt-daily-upgrade.timer '
    'e2scrub_all.timer fstrim.timer getty@tty1.service',
    'update-initramfs -c -k all',
    'passwd -l root',
    ': > /etc/machine-id',
    'rm -f /var/lib/dbus/machine-id',
]


class VmError(Exception):
    """A VM command failed; the message says what to do."""


# -- small helpers ------------------------------------------------------------

def log(message):
    print(message, flush=True)


def run(argv, **kwargs):
    kwargs.setdefault('capture_output', True)
    kwargs.setdefault('text', True)
    proc = subprocess.run(argv, check=False, **kwargs)
    if proc.returncode != 0:
        detail = (proc.stderr or proc.stdout or '').strip() if kwargs.get('capture_output') else ''
        suffix = (': ' + detail[-2000:]) if detail else ''
        raise VmError('%s failed (exit %d)%s' % (' '.join(argv[:3]), proc.returncode, suffix))
    return proc


def need(*programs):
    missing = [program for program in programs if shutil.which(program) is None]
    if missing:
        raise VmError('missing %s: run scripts/setup.sh (apt packages qemu-system-x86, qemu-utils, '
                      'mmdebstrap, openssh-client)' % ', '.join(missing))


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
    try:
        with open(path, encoding='ascii') as handle:
            words = handle.read().split()
        return int(words[0]), (words[1] if len(words) > 1 else None)
    except (OSError, ValueError, IndexError):
        return None


def write_record(path, pid):
    start = process_start(pid)
    if start is None:
        raise VmError('process %d ended before it could be recorded in %s' % (pid, path))
    write_file(path, '%d %s\n' % (pid, start))
    return start


def alive(record):
    return record is not None and record[1] is not None and process_start(record[0]) == record[1]


def write_file(path, text, mode=0o644):
    tmp = path + '.tmp'
    with open(tmp, 'w', encoding='utf-8') as handle:
        handle.write(text)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def strays(path):
    """PIDs of processes whose command line names a file inside PATH (our qemus)."""
    needle = (path.rstrip('/') + '/').encode()
    found = []
    for name in os.listdir('/proc'):
        if not name.isdigit() or int(name) == os.getpid():
            continue
        try:
            with open('/proc/%s/cmdline' % name, 'rb') as handle:
                argv = handle.read().split(b'\0')
        except OSError:
            continue
        if argv and os.path.basename(argv[0]) == QEMU.encode() and any(needle in arg for arg in argv):
            found.append(int(name))
    return found


def tail(path, lines=25):
    try:
        with open(path, encoding='utf-8', errors='replace') as handle:
            return ''.join(handle.readlines()[-lines:]).strip()
    except OSError:
        return ''


# -- the image ---------------------------------------------------------------

def debian_sources():
    """deb lines of this machine's apt sources for SUITE (and its -updates/-security), mirror URLs as they are."""
    entries = []
    paths = ['/etc/apt/sources.list'] + sorted(glob.glob('/etc/apt/sources.list.d/*.list')) \
        + sorted(glob.glob('/etc/apt/sources.list.d/*.sources'))
    for path in paths:
        try:
            with open(path, encoding='utf-8') as handle:
                text = handle.read()
        except OSError:
            continue
        if path.endswith('.sources'):
            for stanza in re.split(r'\n\s*\n', text):
                fields = {}
                for line in stanza.splitlines():
                    if line.startswith('#') or ':' not in line or line[0].isspace():
                        continue
                    key, value = line.split(':', 1)
                    fields[key.strip().lower()] = value.split()
                if 'deb' not in fields.get('types', []) or fields.get('enabled', ['yes'])[0] == 'no':
                    continue
                for uri in fields.get('uris', []):
                    for suite in fields.get('suites', []):
                        entries.append((uri, suite, fields.get('components', ['main'])))
        else:
            for line in text.splitlines():
                words = re.sub(r'\[[^]]*\]', ' ', line.split('#', 1)[0]).split()
                if len(words) >= 3 and words[0] == 'deb':
                    entries.append((words[1], words[2], words[3:] or ['main']))
    lines = []
    for uri, suite, components in entries:
        if suite in (SUITE, SUITE + '-updates', SUITE + '-security') or suite.startswith(SUITE + '/'):
            line = 'deb %s %s %s' % (uri, suite, ' '.join(c for c in components if c == 'main') or 'main')
            if line not in lines:
                lines.append(line)
    override = os.environ.get('HOSTNET_VM_MIRROR')
    if override:
        lines = ['deb %s %s main' % (override, SUITE)]
    if not any(line.split()[2] == SUITE for line in lines):
        raise VmError('no apt source for Debian %s found in /etc/apt/sources.list*; set HOSTNET_VM_MIRROR '
                      'to a Debian mirror URL' % SUITE)
    return lines


def recipe():
    return {
        'version': 1,
        'suite': SUITE,
        'variant': 'minbase',
        'sources': debian_sources(),
        'packages': PACKAGES,
        'dpkg_opts': DPKG_OPTS,
        'files': {path: [oct(mode), text] for path, (mode, text) in sorted(IMAGE_FILES.items())},
        'commands': IMAGE_COMMANDS,
        'size': IMAGE_SIZE,
    }


def recipe_hash(spec):
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]


def image_complete(path):
    return all(os.path.isfile(os.path.join(path, name)) for name in ('rootfs.ext4', 'vmlinuz', 'initrd.img', 'recipe.json'))


@contextlib.contextmanager
def flock(path):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def build_image(rebuild=False):
    """Return (image directory, seconds spent building or 0.0 when cached)."""
    spec = recipe()
    key = recipe_hash(spec)
    target = os.path.join(IMAGES, key)
    with flock(os.path.join(IMAGES, '.lock')):
        if image_complete(target) and not rebuild:
            return target, 0.0
        need('mmdebstrap', 'mkfs.ext4')
        started = time.monotonic()
        work = tempfile.mkdtemp(prefix='build-', dir=IMAGES)
        try:
            stage = os.path.join(work, 'stage')
            for path, (mode, text) in IMAGE_FILES.items():
                dest = stage + path
                os.makedirs(os.path.dirname(dest), exist_ok=True)
                with open(dest, 'w', encoding='utf-8') as handle:
                    handle.write(text)
                os.chmod(dest, mode)
            root = os.path.join(work, 'root')
            hook = os.path.join(work, 'customize.sh')
            with open(hook, 'w', encoding='utf-8') as handle:
                handle.write('set -eu\nroot=$1\ncp -a %s/. "$root"/\n' % shlex.quote(stage))
                for command in IMAGE_COMMANDS:
                    handle.write('chroot "$root" /bin/sh -c %s\n' % shlex.quote(command))
            argv = ['mmdebstrap', '--mode=root', '--variant=minbase', '--format=directory',
                    '--include=' + ','.join(PACKAGES)]
            argv += ['--dpkgopt=' + opt for opt in DPKG_OPTS]
            argv += ['--customize-hook=sh %s "$1"' % shlex.quote(hook), SUITE, root] + spec['sources']
            log('vm image: building %s with mmdebstrap from %s' % (key, spec['sources'][0].split()[1]))
            env = dict(os.environ, INITRD='No', DEBIAN_FRONTEND='noninteractive')  # one initrd, built by the hook
            with open(os.path.join(work, 'build.log'), 'w', encoding='utf-8') as build_log:
                proc = subprocess.run(argv, stdout=build_log, stderr=subprocess.STDOUT, env=env, check=False)
            if proc.returncode != 0:
                raise VmError('mmdebstrap failed (exit %d):\n%s' % (proc.returncode, tail(os.path.join(work, 'build.log'))))
            out = os.path.join(work, 'image')
            os.makedirs(out)
            kernels = sorted(glob.glob(os.path.join(root, 'boot', 'vmlinuz-*')))
            initrds = sorted(glob.glob(os.path.join(root, 'boot', 'initrd.img-*')))
            if len(kernels) != 1 or len(initrds) != 1:
                raise VmError('expected one kernel and one initrd in the image, found %r %r' % (kernels, initrds))
            shutil.copyfile(kernels[0], os.path.join(out, 'vmlinuz'))
            shutil.copyfile(initrds[0], os.path.join(out, 'initrd.img'))
            run(['mkfs.ext4', '-q', '-F', '-L', 'hostnet-root', '-d', root, '-E', 'root_owner=0:0',
                 os.path.join(out, 'rootfs.ext4'), IMAGE_SIZE])
            os.chmod(os.path.join(out, 'rootfs.ext4'), 0o444)
            spec['kernel'] = os.path.basename(kernels[0])[len('vmlinuz-'):]
            spec['built_in_seconds'] = round(time.monotonic() - started, 1)
            write_file(os.path.join(out, 'recipe.json'), json.dumps(spec, indent=2) + '\n')
            if os.path.exists(target):
                shutil.rmtree(target)
            os.replace(out, target)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        took = time.monotonic() - started
        for old in glob.glob(os.path.join(glob.escape(IMAGES), '*')):  # keep only the current recipe's image
            if os.path.isdir(old) and os.path.basename(old) != key and not os.path.basename(old).startswith('build-'):
                shutil.rmtree(old, ignore_errors=True)
        return target, took


# -- the accelerator probe -----------------------------------------------------

def boot_sector():
    """A boot sector that writes 0x21 to the isa-debug-exit port: qemu then exits with (0x21 << 1) | 1 = 67."""
    code = bytes([0xB0, 0x21, 0xE6, 0xF4, 0xF4, 0xEB, 0xFD])  # mov al,0x21; out 0xf4,al; hlt; jmp $-1
    return code + b'\0' * (510 - len(code)) + b'\x55\xaa'


def run_probe(image, accel, cpu):
    """Seconds the probe VM took under ACCEL with -cpu CPU, or an error message (str)."""
    argv = [QEMU, '-accel', accel, '-cpu', cpu, '-machine', 'pc', '-m', '16', '-nodefaults', '-display', 'none',
            '-no-reboot', '-device', 'isa-debug-exit,iobase=0xf4,iosize=0x04',
            '-drive', 'file=%s,format=raw,if=ide' % image]
    started = time.monotonic()
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=PROBE_TIMEOUT, check=False)
    except subprocess.TimeoutExpired:
        return 'no answer in %ds' % PROBE_TIMEOUT
    if proc.returncode != 67:
        return 'exit %d: %s' % (proc.returncode, ' '.join(proc.stderr.strip().splitlines()[-1:]))
    return time.monotonic() - started


def probe_accel(workdir):
    """('kvm', cpu, why) when a probe VM runs under KVM at least about as fast as under TCG, else ('tcg', 'qemu64', why).

    The probe VM is a boot sector that reports through the isa-debug-exit port. A /dev/kvm that opens
    but runs guests far slower than TCG (as nested KVM can) counts as not working.
    """
    if os.environ.get('HOSTNET_VM_ACCEL') == 'tcg':
        return 'tcg', 'qemu64', 'HOSTNET_VM_ACCEL=tcg'
    try:
        fd = os.open('/dev/kvm', os.O_RDWR | os.O_CLOEXEC)
        os.close(fd)
    except OSError as exc:
        return 'tcg', 'qemu64', '/dev/kvm: %s' % exc.strerror
    image = os.path.join(workdir, 'probe.img')
    with open(image, 'wb') as handle:
        handle.write(boot_sector())
    try:
        tcg = run_probe(image, 'tcg', 'qemu64')
        reasons = []
        for cpu in ('host', 'qemu64'):
            took = run_probe(image, 'kvm', cpu)
            if isinstance(took, str):
                reasons.append('-cpu %s: %s' % (cpu, took))
                continue
            if isinstance(tcg, float) and took > 2 * tcg + 0.5:
                reasons.append('-cpu %s: the probe VM took %.2fs under KVM, %.2fs under TCG' % (cpu, took, tcg))
                break
            return 'kvm', cpu, 'the probe VM ran under KVM with -cpu %s in %.2fs' % (cpu, took)
    finally:
        os.unlink(image)
    return 'tcg', 'qemu64', 'KVM does not work here (%s)' % '; '.join(reasons)


# -- the VM directory -------------------------------------------------------------

class VmDir:
    """Paths of one VM directory."""

    def __init__(self, path):
        self.path = os.path.realpath(path)
        self.marker = os.path.join(self.path, MARKER)
        self.state = os.path.join(self.path, 'vm.json')
        self.inventory = os.path.join(self.path, 'inventory.yml')
        self.key = os.path.join(self.path, 'id_ed25519')
        self.switch = os.path.join(self.path, 'switch')

    def vm(self, name, *parts):
        return os.path.join(self.path, 'vms', name, *parts)

    def sock(self, name):
        return os.path.join(self.switch, '%s.sock' % name)

    def records(self):
        paths = [os.path.join(self.switch, 'pid')] + glob.glob(os.path.join(glob.escape(self.path), 'vms', '*', 'pid'))
        return [record for record in map(read_record, paths) if record is not None]

    def load(self):
        try:
            with open(self.state, encoding='utf-8') as handle:
                return json.load(handle)
        except (OSError, ValueError):
            return None


@contextlib.contextmanager
def locked(vmdir, create):
    if create:
        os.makedirs(vmdir.path, exist_ok=True)
    try:
        fd = os.open(vmdir.path, os.O_RDONLY | os.O_DIRECTORY)
    except FileNotFoundError:
        yield None
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield fd
    finally:
        os.close(fd)


def vm_plan(count):
    vms = []
    for index in range(1, count + 1):
        octet = 10 + index
        vms.append({
            'name': 'vm%d' % index,
            'index': index,
            'underlay_ip': UNDERLAY4 + str(octet),
            'underlay_ip6': UNDERLAY6 + str(octet),
            'underlay_interface': UNDERLAY_IF,
            'underlay_mac': '52:54:00:c6:12:%02x' % octet,
            'mgmt_mac': '52:54:00:c6:13:%02x' % octet,
        })
    return vms


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def spawn(argv, logfile, record):
    with open(logfile, 'ab') as handle:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=handle, stderr=handle,  # pylint: disable=consider-using-with
                                start_new_session=True, close_fds=True)
    write_record(record, proc.pid)
    return proc


def start_switch(vmdir, vms, deadline):
    os.makedirs(vmdir.switch, exist_ok=True)
    argv = [QEMU, '-name', 'hostnet-vm-switch', '-machine', 'none', '-nodefaults', '-display', 'none',
            '-monitor', 'none']
    for index, vm in enumerate(vms):
        sock = vmdir.sock(vm['name'])
        if len(sock) > 100:
            raise VmError('socket path %s is too long for a unix socket: use a shorter HOSTNET_VM_DIR' % sock)
        argv += ['-netdev', 'stream,id=p%d,server=on,addr.type=unix,addr.path=%s' % (index, sock),
                 '-netdev', 'hubport,id=h%d,hubid=0,netdev=p%d' % (index, index)]
    proc = spawn(argv, os.path.join(vmdir.switch, 'switch.log'), os.path.join(vmdir.switch, 'pid'))
    while not all(os.path.exists(vmdir.sock(vm['name'])) for vm in vms):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise VmError('the underlay switch did not come up: %s' % tail(os.path.join(vmdir.switch, 'switch.log')))
        time.sleep(0.05)
    return proc


def seed_files(vmdir, vm, vms):
    seed = vmdir.vm(vm['name'], 'seed')
    os.makedirs(seed, exist_ok=True)
    with open(vmdir.key + '.pub', encoding='ascii') as handle:
        key = handle.read()
    hosts = ['127.0.0.1 localhost', '::1 localhost ip6-localhost ip6-loopback', '127.0.1.1 %s' % vm['name']]
    hosts += ['%s %s' % (other['underlay_ip'], other['name']) for other in vms]
    files = {
        'hostname': vm['name'] + '\n',
        'authorized_keys': key,
        'hosts': '\n'.join(hosts) + '\n',
        'underlay.network': '''\
# Underlay NIC: the VMs' isolated L2 segment (scripts/vm.py).
[Match]
Name=%s

[Link]
RequiredForOnline=no

[Network]
IPv6AcceptRA=no
ConfigureWithoutCarrier=yes

[Address]
Address=%s/%d

[Address]
Address=%s/%d
DuplicateAddressDetection=none
''' % (UNDERLAY_IF, vm['underlay_ip'], UNDERLAY_PREFIX4, vm['underlay_ip6'], UNDERLAY_PREFIX6),
    }
    for name, text in files.items():
        write_file(os.path.join(seed, name), text)
    return seed


def qemu_argv(vmdir, vm, image, accel, cpu, port):
    disk = vmdir.vm(vm['name'], 'disk.qcow2')
    seed = vmdir.vm(vm['name'], 'seed')
    accel_opt = 'tcg,tb-size=%d' % TCG_TB_SIZE_MB if accel == 'tcg' else 'kvm'
    argv = [QEMU, '-name', 'hostnet-%s' % vm['name'], '-machine', 'q35', '-accel', accel_opt, '-cpu', cpu,
            '-smp', '1', '-m', str(MEMORY_MB), '-nodefaults', '-display', 'none', '-vga', 'none',
            '-monitor', 'none', '-serial', 'file:%s' % vmdir.vm(vm['name'], 'console.log'),
            '-kernel', os.path.join(image, 'vmlinuz'), '-initrd', os.path.join(image, 'initrd.img'),
            '-append', KERNEL_CMDLINE,
            '-drive', 'file=%s,if=virtio,format=qcow2,cache=unsafe,discard=unmap' % disk,
            '-netdev', 'user,id=mgmt,restrict=on,ipv6=off,net=%s,host=%s,dhcpstart=%s,'
                       'hostfwd=tcp:127.0.0.1:%d-%s:22' % (MGMT_NET, MGMT_HOST, MGMT_GUEST, port, MGMT_GUEST),
            '-device', 'virtio-net-pci,netdev=mgmt,mac=%s,addr=0x3' % vm['mgmt_mac'],
            '-netdev', 'stream,id=underlay,server=off,addr.type=unix,addr.path=%s' % vmdir.sock(vm['name']),
            '-device', 'virtio-net-pci,netdev=underlay,mac=%s,addr=0x4' % vm['underlay_mac'],
            '-device', 'virtio-rng-pci']
    for name in ('hostname', 'authorized_keys', 'hosts', 'underlay.network'):
        argv += ['-fw_cfg', 'name=opt/hostnet/%s,file=%s' % (name, os.path.join(seed, name))]
    return argv


def ssh_argv(vmdir, port, *command):
    return ['ssh', '-q', '-i', vmdir.key, '-p', str(port), '-o', 'StrictHostKeyChecking=no',
            '-o', 'UserKnownHostsFile=/dev/null', '-o', 'BatchMode=yes', '-o', 'ConnectTimeout=10',
            '-o', 'LogLevel=ERROR', 'root@127.0.0.1'] + list(command)


def banner(port):
    """True when an SSH server answers on 127.0.0.1:PORT (user-mode networking accepts before sshd runs)."""
    try:
        with socket.create_connection(('127.0.0.1', port), timeout=2) as sock:
            sock.settimeout(3)
            return sock.recv(64).startswith(b'SSH-')
    except OSError:
        return False


def boot_id(vmdir, port):
    proc = subprocess.run(ssh_argv(vmdir, port, 'cat', '/proc/sys/kernel/random/boot_id'), capture_output=True,
                          text=True, timeout=SSH_TIMEOUT, check=False)
    return proc.stdout.strip() if proc.returncode == 0 else None


def wait_ssh(vmdir, vms, procs, deadline, old_ids=None):
    """Wait until every VM answers ssh (with a boot id other than OLD_IDS[name]); return {name: seconds}."""
    started = time.monotonic()
    pending = {vm['name']: vm for vm in vms}
    ready = {}
    while pending:
        for name, vm in list(pending.items()):
            proc = procs.get(name)
            if proc is not None and proc.poll() is not None:
                raise VmError('qemu of %s exited (%s):\n%s\nconsole:\n%s' % (
                    name, proc.returncode, tail(vmdir.vm(name, 'qemu.log')), tail(vmdir.vm(name, 'console.log'))))
            if proc is None and not alive(read_record(vmdir.vm(name, 'pid'))):
                raise VmError('qemu of %s is not running' % name)
            if banner(vm['port']):
                ident = boot_id(vmdir, vm['port'])
                if ident and ident != (old_ids or {}).get(name):
                    vm['boot_id'] = ident
                    ready[name] = round(time.monotonic() - started, 1)
                    del pending[name]
        if pending and time.monotonic() > deadline:
            raise VmError('%s did not answer ssh in time; console:\n%s' % (
                ', '.join(sorted(pending)), '\n'.join(tail(vmdir.vm(name, 'console.log'), 15) for name in sorted(pending))))
        if pending:
            time.sleep(0.5)
    return ready


def build(vmdir, count, image, accel, cpu, why):
    started = time.monotonic()
    vms = vm_plan(count)
    write_file(vmdir.marker, 'hostnet.provision VMs: scripts/vm.sh down removes what is here\n')
    if not os.path.exists(vmdir.key):
        run(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-C', 'hostnet-vm', '-f', vmdir.key])
    deadline = time.monotonic() + BOOT_TIMEOUT[accel]
    start_switch(vmdir, vms, time.monotonic() + 10)
    procs = {}
    for vm in vms:
        os.makedirs(vmdir.vm(vm['name']), exist_ok=True)
        seed_files(vmdir, vm, vms)
        run(['qemu-img', 'create', '-q', '-f', 'qcow2', '-F', 'raw', '-b', os.path.join(image, 'rootfs.ext4'),
             vmdir.vm(vm['name'], 'disk.qcow2')])
        for attempt in range(3):  # the forwarded port is picked free, but may be taken before qemu binds it
            vm['port'] = free_port()
            proc = spawn(qemu_argv(vmdir, vm, image, accel, cpu, vm['port']), vmdir.vm(vm['name'], 'qemu.log'),
                         vmdir.vm(vm['name'], 'pid'))
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(0.3)
            if proc.poll() is None:
                break
            if attempt == 2 or 'hostfwd' not in tail(vmdir.vm(vm['name'], 'qemu.log')):
                raise VmError('qemu of %s did not start: %s' % (vm['name'], tail(vmdir.vm(vm['name'], 'qemu.log'))))
        procs[vm['name']] = proc
        vm['pid'] = proc.pid
    launched = time.monotonic() - started
    boot = wait_ssh(vmdir, vms, procs, deadline)
    state = {
        'vm_dir': vmdir.path, 'image': image, 'accel': accel, 'cpu': cpu, 'accel_reason': why,
        'memory_mb': MEMORY_MB, 'key': vmdir.key, 'vms': vms,
        'underlay': {'ipv4': '%s0/%d' % (UNDERLAY4, UNDERLAY_PREFIX4), 'ipv6': '%s/%d' % (UNDERLAY6, UNDERLAY_PREFIX6)},
        'timings': {'launch': round(launched, 1), 'boot_to_ssh': boot,
                    'up_total': round(time.monotonic() - started, 1)},
    }
    write_file(vmdir.inventory, inventory(vmdir, state))
    write_file(vmdir.state, json.dumps(state, indent=2) + '\n')
    return state


def inventory(vmdir, state):
    quote = json.dumps
    lines = ['---', '# Written by scripts/vm.sh up; removed by scripts/vm.sh down.', 'all:', '  children:',
             '    vms:', '      hosts:']
    for vm in state['vms']:
        lines += [
            '        %s:' % vm['name'],
            '          ansible_host: "127.0.0.1"',
            '          ansible_port: %d' % vm['port'],
            '          lab_underlay_ip: %s' % quote(vm['underlay_ip']),
            '          lab_underlay_ip6: %s' % quote(vm['underlay_ip6']),
            '          lab_underlay_interface: %s' % quote(vm['underlay_interface']),
        ]
    lines += [
        '      vars:',
        '        ansible_connection: ssh',
        '        ansible_user: root',
        '        ansible_ssh_private_key_file: %s' % quote(vmdir.key),
        '        ansible_ssh_common_args: "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR"',
        '        ansible_python_interpreter: /usr/bin/python3',
        '        ansible_pipelining: true',
        '        lab_underlay_net: %s' % quote(state['underlay']['ipv4']),
        '        lab_underlay_net6: %s' % quote(state['underlay']['ipv6']),
        '        vm_accel: %s' % quote(state['accel']),
    ]
    return '\n'.join(lines) + '\n'


def healthy(vmdir, state):
    if not state or not alive(read_record(os.path.join(vmdir.switch, 'pid'))):
        return False
    return all(alive(read_record(vmdir.vm(vm['name'], 'pid'))) for vm in state['vms'])


def check_path(vmdir):
    if vmdir.path in ('/', REPO, CACHE, IMAGES) or vmdir.path.startswith(IMAGES + '/'):
        raise VmError('%s cannot be a VM directory: set HOSTNET_VM_DIR elsewhere' % vmdir.path)


def cmd_up(vmdir, count):
    need(QEMU, 'qemu-img', 'ssh', 'ssh-keygen')
    check_path(vmdir)
    with locked(vmdir, create=True):
        state = vmdir.load()
        if healthy(vmdir, state):
            if count is not None and count != len(state['vms']):
                raise VmError('%d VMs run in %s, not %d: run scripts/vm.sh down first'
                              % (len(state['vms']), vmdir.path, count))
            log('VMs are already up: %d in %s' % (len(state['vms']), vmdir.path))
            return 0
        if vmdir.records() or strays(vmdir.path) or os.path.exists(vmdir.marker):
            log('cleaning up VMs that are not (fully) running in %s' % vmdir.path)
            teardown(vmdir, remove_dir=False)
        image, took = build_image()
        log('vm image: %s (%s)' % (image, 'built in %.1fs' % took if took else 'cached'))
        accel, cpu, why = probe_accel(vmdir.path)
        log('accelerator: %s, -cpu %s (%s)' % (accel, cpu, why))
        try:
            try:
                state = build(vmdir, count or DEFAULT_VMS, image, accel, cpu, why)
            except VmError as exc:
                # A /dev/kvm can run the probe's boot sector and still hang
                # a real kernel (nested KVM): then the VMs go again, under TCG.
                if accel != 'kvm' or 'did not answer ssh' not in str(exc):
                    raise
                teardown(vmdir, remove_dir=False)
                why = '%s, but the VMs did not boot under it: TCG' % why
                log('accelerator: tcg, -cpu qemu64 (%s)' % why)
                state = build(vmdir, count or DEFAULT_VMS, image, 'tcg', 'qemu64', why)
        except BaseException as exc:  # also Ctrl-C: never leave a VM running
            teardown(vmdir, remove_dir=False)
            if isinstance(exc, (VmError, OSError, ValueError, subprocess.SubprocessError)):
                raise VmError('vm up failed (cleaned up): %s' % exc) from None
            raise
    for vm in state['vms']:
        log('%-4s pid %-7d ssh 127.0.0.1:%-5d %s/%d %s/%d  ssh after %.1fs' % (
            vm['name'], vm['pid'], vm['port'], vm['underlay_ip'], UNDERLAY_PREFIX4, vm['underlay_ip6'],
            UNDERLAY_PREFIX6, state['timings']['boot_to_ssh'][vm['name']]))
    log('vm up: %d VMs (%s) in %.1fs; inventory %s' % (len(state['vms']), state['accel'],
                                                       state['timings']['up_total'], vmdir.inventory))
    return 0


def teardown(vmdir, remove_dir):
    victims = {}
    for pid, start in vmdir.records():
        if alive((pid, start)):
            victims[pid] = start
    for pid in strays(vmdir.path):
        victims.setdefault(pid, process_start(pid))
    for pid in victims:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + DOWN_TIMEOUT
    left = list(victims)
    while left and time.monotonic() < deadline:
        time.sleep(0.02)
        left = [pid for pid in left if alive((pid, victims[pid]))]
    if left:
        raise VmError('VM processes %r did not end within %ds' % (left, DOWN_TIMEOUT))
    if os.path.exists(vmdir.marker):
        for name in os.listdir(vmdir.path):
            path = os.path.join(vmdir.path, name)
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path, ignore_errors=True)
            else:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)
    if remove_dir:
        with contextlib.suppress(OSError):
            os.rmdir(vmdir.path)
    left = strays(vmdir.path)
    if left:
        raise VmError('the VMs left processes behind: %r' % left)
    return len(victims)


def cmd_down(vmdir):
    started = time.monotonic()
    with locked(vmdir, create=False) as fd:
        killed = teardown(vmdir, remove_dir=fd is not None)
    log('vm down: %d processes ended in %.2fs; nothing left in %s' % (killed, time.monotonic() - started, vmdir.path))
    return 0


def collect(vmdir):
    state = vmdir.load() or {}
    vms = []
    for vm in state.get('vms', []):
        record = read_record(vmdir.vm(vm['name'], 'pid'))
        vms.append(dict(vm, pid=record[0] if record else None, running=alive(record)))
    record = read_record(os.path.join(vmdir.switch, 'pid'))
    switch = {'pid': record[0] if record else None, 'running': alive(record)}
    return {
        'vm_dir': vmdir.path,
        'up': bool(vms) and switch['running'] and all(vm['running'] for vm in vms),
        'accel': state.get('accel'), 'cpu': state.get('cpu'), 'image': state.get('image'),
        'inventory': vmdir.inventory if os.path.exists(vmdir.inventory) else None,
        'timings': state.get('timings'), 'switch': switch, 'vms': vms,
        'strays': strays(vmdir.path),
    }


def cmd_status(vmdir, as_json):
    status = collect(vmdir)
    if as_json:
        print(json.dumps(status, indent=2))
    elif not status['vms'] and status['switch']['pid'] is None and not status['strays']:
        print('no VMs in %s' % vmdir.path)
    else:
        word = {True: 'running', False: 'NOT RUNNING'}
        print('VMs in %s: %s (%s)' % (vmdir.path, 'up' if status['up'] else 'NOT UP (run scripts/vm.sh down)',
                                      status['accel']))
        print('%-6s pid %-7s %s' % ('switch', status['switch']['pid'], word[status['switch']['running']]))
        for vm in status['vms']:
            print('%-6s pid %-7s %-11s ssh 127.0.0.1:%s %s' % (vm['name'], vm['pid'], word[vm['running']],
                                                               vm.get('port'), vm.get('underlay_ip')))
        if status['strays']:
            print('stray qemu processes: %r' % status['strays'])
    if status['up']:
        return 0
    return 3 if not status['vms'] and status['switch']['pid'] is None and not status['strays'] else 1


def find_vm(vmdir, name):
    state = vmdir.load() or {}
    for vm in state.get('vms', []):
        if vm['name'] == name and alive(read_record(vmdir.vm(name, 'pid'))):
            return vm, state
    raise VmError('%s is not running in %s: run scripts/vm.sh up' % (name, vmdir.path))


def cmd_ssh(vmdir, name, command):
    vm = find_vm(vmdir, name)[0]
    argv = ssh_argv(vmdir, vm['port'], *command)
    if not command:
        argv.insert(1, '-t')
    os.execvp(argv[0], argv)


def cmd_reboot(vmdir, names):
    started = time.monotonic()
    vms, old, accel = [], {}, 'tcg'
    for name in names:
        vm, state = find_vm(vmdir, name)
        accel = state['accel']
        old[name] = boot_id(vmdir, vm['port'])
        if not old[name]:
            raise VmError('%s does not answer ssh' % name)
        subprocess.run(ssh_argv(vmdir, vm['port'], 'systemctl', 'reboot'), capture_output=True,
                       timeout=SSH_TIMEOUT, check=False)
        vms.append(vm)
    ready = wait_ssh(vmdir, vms, {}, time.monotonic() + REBOOT_TIMEOUT[accel], old_ids=old)
    for name in names:
        log('%s rebooted: back on ssh after %.1fs' % (name, ready[name]))
    log('vm reboot: %s in %.1fs' % (', '.join(names), time.monotonic() - started))
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(prog='vm.sh', description='Debian 12 VMs under qemu for hostnet.provision '
                                     '(VM directory: $HOSTNET_VM_DIR, default %s).' % DEFAULT_VM_DIR)
    commands = parser.add_subparsers(dest='command', required=True)
    image = commands.add_parser('image', help='build (or reuse) the cached image')
    image.add_argument('--rebuild', action='store_true', help='build even when a cached image exists')
    up = commands.add_parser('up', help='start the VMs (idempotent)')
    up.add_argument('count', nargs='?', type=int, help='number of VMs (default %d)' % DEFAULT_VMS)
    commands.add_parser('down', help='end the VMs and remove the VM directory')
    status = commands.add_parser('status', help='show the VMs and whether they run')
    status.add_argument('--json', action='store_true', help='machine-readable output')
    ssh = commands.add_parser('ssh', help='run a command in a VM')
    ssh.add_argument('vm')
    ssh.add_argument('cmd', nargs=argparse.REMAINDER, help='command (default: a shell)')
    reboot = commands.add_parser('reboot', help='reboot VMs and wait until they are back')
    reboot.add_argument('vms', nargs='+')
    args = parser.parse_args(argv)

    vmdir = VmDir(os.environ.get('HOSTNET_VM_DIR') or DEFAULT_VM_DIR)
    try:
        if args.command != 'status' and os.geteuid() != 0:
            raise VmError('needs root (mmdebstrap, chroot, and the VM files are root-owned)')
        if args.command == 'image':
            path, took = build_image(rebuild=args.rebuild)
            log('vm image: %s (%s)' % (path, 'built in %.1fs' % took if took else 'cached'))
            print(path)
            return 0
        if args.command == 'up':
            if args.count is not None and not 1 <= args.count <= MAX_VMS:
                raise VmError('the number of VMs must be 1 to %d, not %d' % (MAX_VMS, args.count))
            return cmd_up(vmdir, args.count)
        if args.command == 'down':
            return cmd_down(vmdir)
        if args.command == 'status':
            return cmd_status(vmdir, args.json)
        for name in [args.vm] if args.command == 'ssh' else args.vms:
            if not VM_NAME.match(name):
                raise VmError('not a VM name: %r' % name)
        if args.command == 'ssh':
            return cmd_ssh(vmdir, args.vm, args.cmd)
        return cmd_reboot(vmdir, args.vms)
    except VmError as exc:
        print('vm.sh %s: %s' % (args.command, exc), file=sys.stderr)
        return 1


if __name__ == '__main__':
    sys.exit(main())
