#!/usr/bin/env bash
# Debian 12 VMs under qemu for hostnet.provision (root):
#   scripts/vm.sh image [--rebuild]     build (or reuse) the cached image; print its directory
#   scripts/vm.sh up [N]                N VMs vm1..vmN (default 2) on one isolated L2 segment
#   scripts/vm.sh down                  end every VM process and remove the VM directory
#   scripts/vm.sh status [--json]       the VMs and whether they run
#   scripts/vm.sh ssh VM [CMD...]       run CMD (default: a shell) in VM over ssh
#   scripts/vm.sh reboot VM...          reboot VMs and wait until they are back (new boot id)
#
# The image is built with mmdebstrap from the machine's Debian mirror and
# cached under ~/.cache/hostnet.provision/vm-images by the hash of its recipe; the VMs of
# one run live in $HOSTNET_VM_DIR (default <repo>/.cache/vm/run), which also
# gets inventory.yml. KVM is used when a probe VM boots under it, TCG
# otherwise. See docs/molecule.md; the work is done by scripts/vm.py.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
exec python3 "$REPO/scripts/vm.py" "$@"
