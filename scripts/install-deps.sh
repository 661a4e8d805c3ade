#!/usr/bin/env bash
# Install the operating-system packages biha needs on a Debian machine (CI or a fresh host).
#
# Idempotent: installs only what is missing, runs `apt-get update` at most once and only when
# something is missing. If installing postgresql-15 made Debian create and start its default
# cluster 15/main (port 5432), that cluster is stopped again (only when this run installed it).
#
#   scripts/install-deps.sh          install what is missing (as root)
#   scripts/install-deps.sh --check  only report; exit 1 if something is missing
#
# Exit status: 0 all present (or installed), 1 something missing and not installed, 2 bad usage.
set -euo pipefail

PACKAGES=(postgresql-15 iproute2 nftables procps util-linux openssl iputils-arping)

check_only=0
case "${1:-}" in
  '') ;;
  --check) check_only=1 ;;
  -h|--help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
  *) echo "install-deps: unknown option '$1' (use --check or no option)" >&2; exit 2 ;;
esac

is_installed() {
  dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'
}

if ! command -v dpkg-query >/dev/null 2>&1; then
  echo "install-deps: this script needs a Debian-based system (dpkg-query not found)" >&2
  exit 1
fi

missing=()
for p in "${PACKAGES[@]}"; do
  if is_installed "$p"; then
    echo "install-deps: $p is installed"
  else
    missing+=("$p")
  fi
done

if [ "${#missing[@]}" -eq 0 ]; then
  echo "install-deps: all dependencies are present, nothing to do"
  exit 0
fi

echo "install-deps: missing: ${missing[*]}"
if [ "$check_only" -eq 1 ]; then
  exit 1
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: run as root to install them: sudo $0" >&2
  exit 1
fi

# Remember whether Debian's default cluster existed before we installed the server.
installing_pg=0
main_existed=0
for p in "${missing[@]}"; do
  [ "$p" = postgresql-15 ] && installing_pg=1
done
if [ -d /etc/postgresql/15/main ]; then
  main_existed=1
fi

export DEBIAN_FRONTEND=noninteractive
echo "install-deps: apt-get update"
apt-get update -q
echo "install-deps: apt-get install ${missing[*]}"
apt-get install -y -q --no-install-recommends "${missing[@]}"

for p in "${missing[@]}"; do
  if ! is_installed "$p"; then
    echo "install-deps: $p is still not installed after apt-get install" >&2
    exit 1
  fi
  echo "install-deps: installed $p"
done

if [ "$installing_pg" -eq 1 ] && [ "$main_existed" -eq 0 ] && [ -d /etc/postgresql/15/main ]; then
  echo "install-deps: stopping the cluster 15/main that the postgresql-15 package created (port 5432)"
  pg_ctlcluster 15 main stop || echo "install-deps: 15/main was not running"
fi

echo "install-deps: done"
