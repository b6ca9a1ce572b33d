# -*- coding: utf-8 -*-
# Copyright: contributors to hostnet.provision
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The benchmark harness of hostnet.provision (bench/run.py). Not shipped
as part of the collection's plugins; runs only inside scripts/sandbox.sh."""
