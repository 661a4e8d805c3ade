#!/usr/bin/env bash
# The .deb on a stock Debian 12 with Debian's own Node.js 18 and PostgreSQL 15, inside the root of
# scripts/debian-root.sh node18 (run as root there):
#
#   scripts/debian-root.sh node18 run bash test/roots/package.sh release/biha_<version>_<arch>.deb
#
# dpkg -i (its dependencies must already be there: no network), the installed bihactl's version,
# a one-node cluster made, started, shown LEADER_RW and stopped through it, then dpkg --purge.
# Facts as "RESULT key=value" lines (test/integration/package.test.ts asserts them). Every wait is
# bounded; on exit the node is stopped and the package purged. BIHA_SCENARIO_PORT (default 24580).
set -euo pipefail
DEB=${1:?which .deb?}
PORT=${BIHA_SCENARIO_PORT:-24580}
export BIHA_REPLICATION_PASSWORD="pkg-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"
say() { echo "package: $*"; }
result() { echo "RESULT $1=$2"; }
[ "$(id -u)" -eq 0 ] || { say "run as root inside the root of scripts/debian-root.sh node18"; exit 1; }
say "$(. /etc/os-release && echo "$PRETTY_NAME"); Node.js $(node --version)"
result node_version "$(node --version)"

DIR=$(mktemp -d /tmp/biha-pkg.XXXXXX)
chmod 755 "$DIR"
chown postgres:postgres "$DIR"
PGDATA_DIR=$DIR/n1
cleanup() {
  if [ -x /usr/bin/bihactl ] && [ -d "$PGDATA_DIR/pg_biha" ]; then timeout 60 /usr/bin/bihactl stop --pgdata="$PGDATA_DIR" >/dev/null 2>&1 || true; fi
  dpkg --purge biha >/dev/null 2>&1 || true
  rm -rf "$DIR"
}
trap cleanup EXIT

if dpkg -i "$DEB"; then result dpkg_install ok; else result dpkg_install failed; exit 1; fi
result bihactl_path "$(readlink -f /usr/bin/bihactl)"
result version "$(/usr/bin/bihactl --version)"
timeout 240 /usr/bin/bihactl init --biha-node-id=1 --host=127.0.0.1 --port="$PORT" --nquorum=1 --minnodes=1 --pgdata="$PGDATA_DIR" >/dev/null
timeout 240 /usr/bin/bihactl start --pgdata="$PGDATA_DIR"
state=''
for _ in $(seq 1 300); do
  state=$(timeout 10 /usr/bin/bihactl status --pgdata="$PGDATA_DIR" --json 2>/dev/null |
    node -e 'let s="";process.stdin.on("data",(d)=>(s+=d)).on("end",()=>{try{const j=JSON.parse(s);console.log((j.status.find((n)=>n.id===1)||{}).state||"")}catch{console.log("")}})' || true)
  [ "$state" = LEADER_RW ] && break
  sleep 0.2
done
result state "$state"
result controller_code "$(tr '\0' ' ' < "/proc/$(head -1 "$PGDATA_DIR/pg_biha/controller.pid")/cmdline" | grep -o '/usr/lib/biha/[^ ]*' | head -1)"
timeout 120 /usr/bin/bihactl stop --pgdata="$PGDATA_DIR"
result stopped "$([ -f "$PGDATA_DIR/postmaster.pid" ] && echo no || echo yes)"
dpkg --purge biha >/dev/null
result purged "$([ -e /usr/lib/biha ] && echo no || echo yes)"
