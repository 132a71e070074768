#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
# Idempotent set-up on Debian 12 (QGIS 3.22) or Debian 13 (QGIS 3.40): QGIS + GDAL from
# Debian packages when missing, then .venv (with the system site-packages, so PyQGIS and
# GDAL import) and the pinned Python requirements, constrained for the release
# (constraints-<codename>.txt: numpy 1 on bookworm, numpy 2 on trixie, as each one's
# GDAL is built). A second run with everything present takes about a second.
#   [LANDCOVER_TRAINING=0] scripts/setup.sh [extra Debian packages...]
# LANDCOVER_TRAINING=0 installs only the plugin's and its tests' requirements
# (requirements-plugin.txt), no torch: the training tests then cannot run.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

codename="$(. /etc/os-release && echo "${VERSION_CODENAME:-}")"
constraints="constraints-$codename.txt"
if [ ! -f "$constraints" ]; then
  echo "setup: unsupported system '${codename:-unknown}' (/etc/os-release):" \
    "Debian 12 (bookworm) or 13 (trixie) expected; no $constraints" >&2
  exit 1
fi
requirements=(requirements-plugin.txt)
[ "${LANDCOVER_TRAINING:-1}" = 0 ] || requirements+=(requirements-training.txt)

apt_packages=(qgis python3-qgis qgis-providers python3-gdal gdal-bin python3-venv "$@")
missing=()
for package in "${apt_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'ok installed' || missing+=("$package")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup: installing Debian packages: ${missing[*]}"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# /usr/bin/python3 is Debian's, the one PyQGIS and python3-gdal are built for.
if ! .venv/bin/python -c 'import qgis.core, osgeo.gdal' >/dev/null 2>&1; then
  echo "setup: creating .venv"
  rm -rf .venv
  /usr/bin/python3 -m venv --system-site-packages .venv
fi

wanted="$(cat "${requirements[@]}" "$constraints" | sha256sum | cut -d' ' -f1)"
stamp=.venv/.requirements.sha256
if [ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ]; then
  echo "setup: installing Python requirements into .venv"
  find_links=()
  # A CPU wheel of the pinned torch may lie on disk; without it pip takes PyPI's.
  [ -d /opt/wheels ] && find_links=(--find-links /opt/wheels)
  .venv/bin/pip install -q --disable-pip-version-check "${find_links[@]}" \
    "${requirements[@]/#/--requirement=}" --constraint="$constraints"
  echo "$wanted" > "$stamp"
fi
