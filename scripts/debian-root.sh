#!/usr/bin/env bash
# Debian roots for testing biha beside the host's own packages (the host is Debian 12 with
# PostgreSQL 15 and Node.js 20):
#   pg17    Debian 13 (trixie) with PostgreSQL 17 and Node.js 20 (PostgreSQL 17 needs trixie's libraries)
#   node18  Debian 12 (bookworm) with PostgreSQL 15 and Debian 12's own Node.js 18
#
#   scripts/debian-root.sh PROFILE                 build the root unless a complete one exists; print its path
#   scripts/debian-root.sh PROFILE --check         print the path of a complete root; exit 1 if there is none
#   scripts/debian-root.sh PROFILE run CMD [ARG]   run CMD inside the root (as root, cwd = this checkout)
#
# The root is built with debootstrap (installed on the host with apt-get when missing) under
# BIHA_ROOT_DIR (default /var/cache/biha/roots/trixie-pg17 or bookworm-node18) from
# BIHA_DEBIAN_MIRROR (default http://deb.debian.org/debian). It is built in DIR.partial and renamed
# to DIR only when complete, with the stamp file DIR/.biha-root-complete; a complete root is reused
# as it is (remove the directory to rebuild it). Debian's packaging is kept from creating or
# starting a default cluster inside the root (policy-rc.d exits 101, createcluster.conf has
# create_main_cluster = false).
#
# `run` enters a private mount and PID namespace (unshare): inside it the root gets /proc (of the
# new PID namespace), /dev, /sys, an empty tmpfs on /tmp, and this checkout bind-mounted read-only
# at the same path as on the host (and node_modules' target, when it is a symbolic link out of the
# checkout). When CMD ends, or the run is killed, the namespace goes away: every process started in
# it is killed by the kernel and every mount disappears; nothing is mounted on the host at any time.
# The network is the host's (loopback shared): use ports no other test uses. CMD gets a clean
# environment plus the caller's BIHA_SCENARIO_* variables (ports and major of test/roots/scenario.sh).
#
# Exit status: that of CMD for `run`; 0 built or reused; 1 failure; 2 bad usage.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "$0")" && pwd)
CHECKOUT=$(cd "$SCRIPT_DIR/.." && pwd)
MIRROR=${BIHA_DEBIAN_MIRROR:-http://deb.debian.org/debian}
STAMP=.biha-root-complete

say() { echo "debian-root: $*" >&2; }
die() { say "$*"; exit 1; }

PROFILE=${1:-}
case $PROFILE in
  pg17) SUITE=trixie PG=17 ;;
  node18) SUITE=bookworm PG=15 ;;
  -h|--help) sed -n '2,28p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
  *) say "which root? give a profile first: pg17 or node18 (see --help)"; exit 2 ;;
esac
shift
ROOTFS=${BIHA_ROOT_DIR:-/var/cache/biha/roots/$SUITE-$PROFILE}
# What biha needs at run time inside the root (scripts/install-deps.sh names the host's list; the
# nftables fencing is not exercised there). nodejs is the suite's own.
PACKAGES=(postgresql-$PG nodejs procps openssl util-linux iproute2 ca-certificates)

complete() { [ -f "$ROOTFS/$STAMP" ] && [ -x "$ROOTFS/usr/lib/postgresql/$PG/bin/pg_ctl" ] && [ -x "$ROOTFS/usr/bin/node" ]; }

need_root() { [ "$(id -u)" -eq 0 ] || die "run as root (debootstrap, chroot and mounts need it)"; }

# Runs a command chrooted into DIR inside a private mount + PID namespace, with /proc, /dev, /sys
# and a fresh /tmp mounted there. Extra bind mounts: "SRC:DST:ro|rw" words in BINDS.
in_namespace() {
  local dir=$1
  shift
  # shellcheck disable=SC2016
  unshare --mount --propagation private --pid --fork --kill-child -- bash -c '
    set -euo pipefail
    dir=$1; binds=$2; shift 2
    mount -t proc proc "$dir/proc"
    mount --rbind /dev "$dir/dev"
    mount --make-rslave "$dir/dev"
    mount --rbind /sys "$dir/sys"
    mount --make-rslave "$dir/sys"
    mount -t tmpfs -o mode=1777,size=4g tmpfs "$dir/tmp"
    for b in $binds; do
      src=${b%%:*}; rest=${b#*:}; dst=${rest%%:*}; mode=${rest##*:}
      mkdir -p "$dir$dst"
      mount --bind "$src" "$dir$dst"
      if [ "$mode" = ro ]; then mount -o remount,bind,ro "$dir$dst"; fi
    done
    # A clean environment, plus the BIHA_SCENARIO_* settings of the caller (ports, ...).
    keep=()
    while IFS= read -r v; do keep+=("$v"); done < <(env | grep -E "^BIHA_SCENARIO_[A-Z0-9_]*=" || true)
    exec chroot "$dir" /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
      HOME=/root LANG=C.UTF-8 TERM=dumb DEBIAN_FRONTEND=noninteractive "${keep[@]}" "$@"
  ' debian-root "$dir" "${BINDS:-}" "$@"
}

build() {
  need_root
  mkdir -p "$(dirname "$ROOTFS")"
  # One build at a time (CI and a test may both ask for the root).
  exec 9>"$ROOTFS.lock"
  flock 9
  if complete; then
    echo "$ROOTFS"
    return 0
  fi
  [ ! -e "$ROOTFS" ] || die "$ROOTFS exists but is not a complete root (no $STAMP): remove it to rebuild"
  command -v dpkg-query >/dev/null 2>&1 || die "this script needs a Debian host (dpkg-query not found)"
  if ! command -v debootstrap >/dev/null 2>&1; then
    say "installing debootstrap on the host"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends debootstrap >&2 ||
      { apt-get update -q >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends debootstrap >&2; }
  fi
  local partial=$ROOTFS.partial t0=$SECONDS
  # A partial root is what an interrupted build left; nothing can be mounted in it (builds mount
  # only inside their own namespace), so it is safe to remove.
  rm -rf "$partial"
  say "debootstrap --variant=minbase $SUITE $partial $MIRROR"
  debootstrap --variant=minbase "$SUITE" "$partial" "$MIRROR" >&2 || die "debootstrap failed (see above)"
  # No default cluster, no service started by a package's maintainer scripts.
  printf '#!/bin/sh\nexit 101\n' > "$partial/usr/sbin/policy-rc.d"
  chmod 755 "$partial/usr/sbin/policy-rc.d"
  mkdir -p "$partial/etc/postgresql-common"
  printf '# biha test root: no default cluster\ncreate_main_cluster = false\n' > "$partial/etc/postgresql-common/createcluster.conf"
  say "apt-get install ${PACKAGES[*]} (inside the root)"
  BINDS='' in_namespace "$partial" sh -c "apt-get update -q && apt-get install -y -q --no-install-recommends ${PACKAGES[*]} && apt-get clean" >&2 ||
    die "installing ${PACKAGES[*]} in the root failed (see above)"
  [ -x "$partial/usr/lib/postgresql/$PG/bin/pg_ctl" ] || die "no PostgreSQL $PG in the root after installing it"
  [ -z "$(ls -A "$partial/etc/postgresql" 2>/dev/null)" ] || die "a default cluster was created in the root: $(ls "$partial/etc/postgresql")"
  touch "$partial/$STAMP"
  mv "$partial" "$ROOTFS"
  say "built $ROOTFS in $((SECONDS - t0)) s ($(du -sh "$ROOTFS" | cut -f1))"
  echo "$ROOTFS"
}

run() {
  need_root
  [ "$#" -gt 0 ] || die "run: which command?"
  complete || die "no complete root at $ROOTFS: build it with $0"
  local binds="$CHECKOUT:$CHECKOUT:ro" nm
  if [ -L "$CHECKOUT/node_modules" ]; then
    nm=$(readlink -f "$CHECKOUT/node_modules")
    case $nm in "$CHECKOUT"/*) ;; *) [ -d "$nm" ] && binds="$binds $nm:$nm:ro" ;; esac
  fi
  for b in $binds; do
    case ${b%%:*} in *[[:space:]]*) die "paths with blanks cannot be bind-mounted: $b" ;; esac
  done
  BINDS=$binds in_namespace "$ROOTFS" /bin/sh -c 'cd "$0" && exec "$@"' "$CHECKOUT" "$@"
}

case "${1:-}" in
  '') build ;;
  --check) complete || { say "no complete root at $ROOTFS"; exit 1; }; echo "$ROOTFS" ;;
  run) shift; [ "${1:-}" != -- ] || shift; run "$@" ;;
  *) say "unknown argument '$1' (none, --check, or run CMD ...) after the profile"; exit 2 ;;
esac
