# -*- coding: utf-8 -*-
# Copyright: contributors to hostnet.provision
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Registry of resource kinds, by module name.

Private to the hostnet.provision collection. Used where every kind is
handled alike: the net_info report and a boot-time restore.
"""

from __future__ import annotations

from ansible_collections.hostnet.provision.plugins.module_utils._kind_bridge import BridgeKind
from ansible_collections.hostnet.provision.plugins.module_utils._kind_macvlan import MacvlanKind
from ansible_collections.hostnet.provision.plugins.module_utils._kind_netns import NetnsKind
from ansible_collections.hostnet.provision.plugins.module_utils._kind_portmap import PortmapKind
from ansible_collections.hostnet.provision.plugins.module_utils._kind_veth import VethKind
from ansible_collections.hostnet.provision.plugins.module_utils._kind_vxlan import VxlanKind
from ansible_collections.hostnet.provision.plugins.module_utils._kind_vxlan_peer import VxlanPeerKind

__all__ = ['KINDS']

# Order matters for anyone restoring state: namespaces, then bridges, then
# what plugs into them, then what refers to addresses behind them.
KINDS = {
    'netns': NetnsKind,
    'bridge': BridgeKind,
    'veth': VethKind,
    'macvlan': MacvlanKind,
    'vxlan': VxlanKind,
    'vxlan_peer': VxlanPeerKind,
    'portmap': PortmapKind,
}
