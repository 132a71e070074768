#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
# make test-qgis340: the plugin's tests and `make demo` on QGIS 3.40 LTR (Debian 13,
# Python 3.13, numpy 2, GDAL 3.10), in a Debian 13 chroot made with debootstrap.
#
# - The chroot is built once, outside the repository (LANDCOVER_CHROOT, default
#   /var/cache/qgis-landcover/trixie) and reused while its stamp matches this script's
#   recipe; a build that stopped half-way has no stamp and is rebuilt from scratch.
# - Debian packages come from the mirror the host's apt uses; the host's CA bundle and
#   pip configuration are copied in (and the local folders that configuration names
#   are bind-mounted read-only) so pip reaches its registry exactly as on the host.
# - Each run copies the working tree's files (tracked and untracked-not-ignored) into
#   the chroot, keeping the chroot's own .venv, then runs, inside a private mount
#   namespace (its /proc, /sys, /dev mounts vanish with it; a trap unmounts them too):
#     LANDCOVER_TRAINING=0 make test   (no torch in the chroot: tests/model_training
#     LANDCOVER_TRAINING=0 make demo    runs on the host with `make test`)
#   scripts/test_qgis340.sh [--build]   (--build: only build or check the chroot)
# LANDCOVER_CHROOT_SUITE=sid: the same on Debian unstable, QGIS 3.44 (the last Qt 5 LTR;
# `make test-qgis344`), whose archive snapshot has an expired Valid-Until (so apt runs
# with Acquire::Check-Valid-Until=false there), with Xvfb, and running
# LANDCOVER_CHROOT_TARGETS (default: test demo) there.
# Needs root (debootstrap, chroot, mount); re-runs itself with sudo otherwise.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
self="$root/scripts/test_qgis340.sh"
suite="${LANDCOVER_CHROOT_SUITE:-trixie}"
chroot_dir="${LANDCOVER_CHROOT:-/var/cache/qgis-landcover/$suite}"
targets="${LANDCOVER_CHROOT_TARGETS:-test demo}"
packages=(qgis python3-qgis qgis-providers python3-gdal gdal-bin python3-venv
  ca-certificates make git)
apt_options=()
if [ "$suite" = sid ]; then
  packages+=(xvfb x11-utils xauth)
  apt_options=(-o Acquire::Check-Valid-Until=false)
fi
# Changing the recipe (suite or packages) invalidates an existing chroot.
recipe="v1 $suite ${packages[*]}"
stamp="$chroot_dir/.landcover-chroot-complete"
work=/work/qgis-landcover   # the working tree's copy, inside the chroot

if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "test-qgis340: needs root (debootstrap, chroot, mount)" >&2; exit 1; }
  exec sudo --preserve-env bash "$self" "$@"
fi

log() { echo "test-qgis340: $*"; }

# The URIs of the host's apt sources (deb822 .sources or one-line .list files).
host_apt_uris() {
  local f
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] && cat "$f"
  done | sed -nE \
    -e 's/^[[:space:]]*URIs:[[:space:]]*([^[:space:]]+).*/\1/p' \
    -e 's/^[[:space:]]*deb[[:space:]]+(\[[^]]*\][[:space:]]+)?([^[:space:]]+)[[:space:]].*/\2/p'
}

# The Debian archive and its security archive, as the host's apt reaches them.
host_mirror() {
  local uri
  uri=$(host_apt_uris | grep -E '/debian/?$' | head -n1 || true)
  echo "${uri:-http://deb.debian.org/debian}"
}

host_security_mirror() {
  local uri
  uri=$(host_apt_uris | grep -E '/debian-security/?$' | head -n1 || true)
  echo "${uri:-http://deb.debian.org/debian-security}"
}

# Nothing may stay mounted below the chroot before it is deleted (an rm -rf through a
# bind mount of /dev would delete the host's files).
unmount_below() {
  local target
  awk -v dir="$1" '$2 == dir || index($2, dir "/") == 1 { print $2 }' /proc/mounts | sort -r |
    while read -r target; do umount -l "$target" || true; done
  if awk -v dir="$1" '$2 == dir || index($2, dir "/") == 1 { found = 1 } END { exit !found }' /proc/mounts; then
    echo "test-qgis340: something is still mounted below $1; not deleting it" >&2
    return 1
  fi
}

build_chroot() {
  local mirror security started
  started=$(date +%s)
  mirror="$(host_mirror)"
  security="$(host_security_mirror)"
  if ! command -v debootstrap >/dev/null; then
    log "installing debootstrap on the host"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >/dev/null
  fi
  if [ -e "$chroot_dir" ]; then
    log "removing the incomplete or outdated chroot $chroot_dir"
    unmount_below "$chroot_dir"
    rm -rf --one-file-system "$chroot_dir"
  fi
  mkdir -p "$chroot_dir"
  log "debootstrap $suite from $mirror into $chroot_dir (a few minutes)"
  debootstrap --variant=minbase --include=ca-certificates "$suite" "$chroot_dir" "$mirror" \
    > "$chroot_dir.debootstrap.log" 2>&1 || {
    tail -n 30 "$chroot_dir.debootstrap.log" >&2
    exit 1
  }
  if [ "$suite" = sid ]; then  # unstable has no updates or security suites
    echo "deb $mirror $suite main" > "$chroot_dir/etc/apt/sources.list"
    # apt inside (scripts/setup.sh too) accepts the snapshot's expired Release file.
    echo 'Acquire::Check-Valid-Until "false";' > "$chroot_dir/etc/apt/apt.conf.d/99snapshot"
  else
    cat > "$chroot_dir/etc/apt/sources.list" <<EOF
deb $mirror $suite main
deb $mirror $suite-updates main
deb $security $suite-security main
EOF
  fi
  log "installing ${packages[*]} in the chroot"
  in_chroot bash -ec "export DEBIAN_FRONTEND=noninteractive
    apt-get ${apt_options[*]} update -qq
    apt-get install -y -qq --no-install-recommends ${packages[*]} >/dev/null
    apt-get clean"
  echo "$recipe" > "$stamp"
  log "chroot built in $(($(date +%s) - started)) s"
}

# Copies the host's CA bundle and pip configuration into the chroot (every run, so a
# change on the host is seen). Prints the local folders that configuration names.
copy_host_config() {
  local path
  if [ -f /etc/ssl/certs/ca-certificates.crt ]; then
    mkdir -p "$chroot_dir/etc/ssl/certs"
    cp -fL /etc/ssl/certs/ca-certificates.crt "$chroot_dir/etc/ssl/certs/ca-certificates.crt"
  fi
  for path in /etc/pip.conf /etc/xdg/pip /root/.config/pip /root/.pip; do
    [ -e "$path" ] || continue
    mkdir -p "$chroot_dir$(dirname "$path")"
    rm -rf "${chroot_dir:?}$path"
    cp -rL "$path" "$chroot_dir$path"
  done
}

# Local folders (find-links, file:// indexes) named by the pip configuration or PIP_*.
pip_local_dirs() {
  {
    cat /etc/pip.conf /etc/xdg/pip/*.conf /root/.config/pip/*.conf /root/.pip/*.conf 2>/dev/null || true
    env | grep '^PIP_' || true
  } | grep -oE '(file://)?/[^[:space:]"]+' | sed 's|^file://||' |
    while read -r path; do
      path="${path%/}"
      # A local index (.../simple) links to files beside it: mount the folder above.
      [ "$(basename "$path")" = simple ] && path="$(dirname "$path")"
      [ -d "$path" ] && case "$path" in /etc/* | /root/* | /usr/* | /) ;; *) echo "$path" ;; esac
    done | sort -u
}

mounted=()
cleanup() {
  local i
  for ((i = ${#mounted[@]} - 1; i >= 0; i--)); do umount -l "${mounted[$i]}" 2>/dev/null || true; done
  mounted=()
}

mount_system() {
  local dir
  mkdir -p "$chroot_dir/proc" "$chroot_dir/sys" "$chroot_dir/dev"
  mount -t proc proc "$chroot_dir/proc" && mounted+=("$chroot_dir/proc")
  mount --rbind /sys "$chroot_dir/sys" && mounted+=("$chroot_dir/sys")
  mount --rbind /dev "$chroot_dir/dev" && mounted+=("$chroot_dir/dev")
  if [ -n "${1:-}" ]; then
    while read -r dir; do
      [ -n "$dir" ] || continue
      mkdir -p "$chroot_dir$dir"
      mount --bind "$dir" "$chroot_dir$dir" && mounted+=("$chroot_dir$dir")
      mount -o remount,bind,ro "$chroot_dir$dir" 2>/dev/null || true
    done < <(pip_local_dirs)
  fi
  cp -fL /etc/resolv.conf "$chroot_dir/etc/resolv.conf" 2>/dev/null || true
}

# Runs a command inside the chroot, in a private mount namespace.
in_chroot() {
  unshare --mount --propagation private -- bash "$self" --inside "$@"
}

# Inside the private mount namespace: mount, chroot, run "$@", unmount.
run_inside() {
  trap cleanup EXIT
  mount_system "${WITH_PIP_DIRS:-}"
  # Environment: the host's proxy, certificate and pip variables, nothing else.
  env_vars=(HOME=/root PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
    LANG=C.UTF-8 TERM=dumb CI="${CI:-}")
  while IFS= read -r line; do env_vars+=("$line"); done < <(
    env | grep -E '^(PIP_|SSL_CERT_|REQUESTS_CA_BUNDLE=|CURL_CA_BUNDLE=|https?_proxy=|HTTPS?_PROXY=|no_proxy=|NO_PROXY=)' || true)
  status=0
  chroot "$chroot_dir" /usr/bin/env -i "${env_vars[@]}" "$@" || status=$?
  return "$status"
}

main() {
  # One run at a time per chroot (two would share its copy of the tree and its .venv).
  mkdir -p "$(dirname "$chroot_dir")"
  exec 9> "$chroot_dir.lock"
  flock 9
  if [ "$(cat "$stamp" 2>/dev/null)" != "$recipe" ]; then
    build_chroot
  else
    log "reusing the chroot $chroot_dir"
  fi
  copy_host_config
  [ "${1:-}" = "--build" ] && return 0 # build (or check) the chroot only

  log "copying the working tree into $chroot_dir$work"
  mkdir -p "$chroot_dir$work"
  find "$chroot_dir$work" -mindepth 1 -maxdepth 1 ! -name .venv -exec rm -rf {} +
  # (a tracked file deleted in the working tree is skipped with a warning)
  (cd "$root" && git ls-files -z --cached --others --exclude-standard |
    tar --null -T - --ignore-failed-read -cf -) | tar -xf - -C "$chroot_dir$work"

  started=$(date +%s)
  export WITH_PIP_DIRS=1
  in_chroot bash -ec "cd $work &&
    dpkg-query -W -f='\${Package} \${Version}\n' qgis python3 python3-numpy python3-gdal &&
    export LANDCOVER_TRAINING=0 && for target in $targets; do make \$target; done"
  log "make $targets inside the chroot took $(($(date +%s) - started)) s"
}

# Everything is read before anything runs (the file may change while it runs).
if [ "${1:-}" = "--inside" ]; then
  shift
  run_inside "$@"
else
  main "$@"
fi
