#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
# make demo: the plugin's main job through qgis_process on the shipped real sample.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
echo "Algorithms of the 'landcover' provider (qgis_process list):"
scripts/qgis_process list 2>/dev/null | sed -n '/^Land cover (U-Net)/,/^$/p'
