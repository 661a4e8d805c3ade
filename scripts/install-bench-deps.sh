#!/usr/bin/env bash
# Install what `npm run bench:compare` needs besides PostgreSQL 15: Debian's Patroni and etcd.
#
# Idempotent: installs only the packages that are missing, runs `apt-get update` at most once and
# only when something is missing. The benchmark runs its own etcd and Patroni processes, so
# Debian's own services for them are never started by the installation and are left stopped
# and disabled (systemd) afterwards.
#
#   scripts/install-bench-deps.sh          install what is missing (as root)
#   scripts/install-bench-deps.sh --check  only report; exit 1 if something is missing
#
# Exit status: 0 all present (or installed), 1 something missing and not installed, 2 bad usage.
set -euo pipefail

PACKAGES=(patroni etcd-server etcd-client)
UNITS=(etcd.service patroni.service)

check_only=0
case "${1:-}" in
  '') ;;
  --check) check_only=1 ;;
  -h|--help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
  *) echo "install-bench-deps: unknown option '$1' (use --check or no option)" >&2; exit 2 ;;
esac

if ! command -v dpkg-query >/dev/null 2>&1; then
  echo "install-bench-deps: this script needs a Debian-based system (dpkg-query not found)" >&2
  exit 1
fi

is_installed() {
  dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'
}

# Debian's units stay off: the benchmark starts its own etcd and Patroni on its own ports. Without
# a running systemd (a container) `systemctl disable` still removes the units' symlinks.
quiet_units() {
  command -v systemctl >/dev/null 2>&1 || return 0
  local now=()
  if [ -d /run/systemd/system ]; then now=(--now); fi
  for u in "${UNITS[@]}"; do
    if [ -e "/lib/systemd/system/$u" ] || [ -e "/etc/systemd/system/$u" ]; then
      systemctl disable "${now[@]}" "$u" >/dev/null 2>&1 || echo "install-bench-deps: could not disable $u" >&2
    fi
  done
}

missing=()
for p in "${PACKAGES[@]}"; do
  if is_installed "$p"; then
    echo "install-bench-deps: $p is installed"
  else
    missing+=("$p")
  fi
done

if [ "${#missing[@]}" -eq 0 ]; then
  quiet_units
  echo "install-bench-deps: all present, nothing to do"
  exit 0
fi

echo "install-bench-deps: missing: ${missing[*]}"
if [ "$check_only" -eq 1 ]; then
  exit 1
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "install-bench-deps: run as root to install them: sudo $0" >&2
  exit 1
fi

# A policy-rc.d that answers 101 keeps the packages' maintainer scripts from starting their
# services (invoke-rc.d and deb-systemd-invoke honour it). One that exists already is kept.
policy=/usr/sbin/policy-rc.d
own_policy=0
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' >"$policy"
  chmod 0755 "$policy"
  own_policy=1
fi
cleanup() {
  if [ "$own_policy" -eq 1 ]; then rm -f "$policy"; fi
}
trap cleanup EXIT

export DEBIAN_FRONTEND=noninteractive
echo "install-bench-deps: apt-get update"
apt-get update -q
echo "install-bench-deps: apt-get install ${missing[*]}"
apt-get install -y -q --no-install-recommends "${missing[@]}"

for p in "${missing[@]}"; do
  if ! is_installed "$p"; then
    echo "install-bench-deps: $p is still not installed after apt-get install" >&2
    exit 1
  fi
  echo "install-bench-deps: installed $p"
done
quiet_units
echo "install-bench-deps: done"
