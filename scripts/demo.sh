#!/usr/bin/env bash
# The main job: from a fresh machine, install what is missing, build biha, create a real 3-node
# cluster of PostgreSQL (13 to 18) on loopback ports under a temporary directory, show it, kill the
# leader with kill -9 (controller and postmaster), show the new leader and the write gap a client
# saw, restart the old leader as a follower, and clean everything up (also on failure or Ctrl-C).
#
#   bash scripts/demo.sh            (as root: PostgreSQL runs as the postgres OS user)
#   BIHA_DEMO_PORT=26000 bash scripts/demo.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

if [ "$(id -u)" -eq 0 ]; then
  bash scripts/install-deps.sh
fi
if [ ! -d node_modules ] || [ ! -f dist/bihactl/main.js ]; then
  npm ci --no-audit --no-fund || npm install --no-audit --no-fund
fi
[ -f dist/bihactl/main.js ] || npm run -s build

BASE=${BIHA_DEMO_PORT:-25400}
DEMO=$(mktemp -d /tmp/biha-demo.XXXXXX)
chmod 755 "$DEMO"
if [ "$(id -u)" -eq 0 ]; then chown postgres:postgres "$DEMO"; fi
export BIHA_REPLICATION_PASSWORD="demo-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"
BIHACTL="node $ROOT/bin/bihactl.js"
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
as_pg() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

# The PostgreSQL bin directory in the order bihactl uses: BIHA_PG_BINDIR; for a data directory of
# major N (argument 1) /usr/lib/postgresql/N/bin, /usr/pgsql-N/bin, then pg_config --bindir if it is
# of major N; without a major pg_config --bindir, else the newest of those layouts installed.
pg_bindir() {
  local want=${1:-} d m
  if [ -n "${BIHA_PG_BINDIR:-}" ]; then echo "$BIHA_PG_BINDIR"; return 0; fi
  if [ -n "$want" ]; then
    for d in "/usr/lib/postgresql/$want/bin" "/usr/pgsql-$want/bin"; do
      if [ -x "$d/pg_ctl" ]; then echo "$d"; return 0; fi
    done
  fi
  d=$(pg_config --bindir 2>/dev/null || true)
  if [ -n "$d" ] && [ -x "$d/pg_ctl" ]; then
    m=$("$d/pg_ctl" --version | sed -nE 's/.*\(PostgreSQL\) ([0-9]+).*/\1/p')
    if [ -z "$want" ] || [ "$m" = "$want" ]; then echo "$d"; return 0; fi
  fi
  [ -z "$want" ] || return 1
  for d in /usr/lib/postgresql/*/bin /usr/pgsql-*/bin; do
    [ -x "$d/pg_ctl" ] || continue
    m=$(echo "$d" | sed -E 's#.*/(pgsql-)?([0-9]+)/bin$#\2#')
    case $m in '' | *[!0-9]*) continue ;; esac
    echo "$m $d"
  done | sort -n | tail -n 1 | cut -d' ' -f2-
}
# The programs of the cluster's own version once node 1 exists, else those bihactl init will use.
pg_bin() {
  local v=""
  [ -f "$DEMO/n1/PG_VERSION" ] && v=$(cat "$DEMO/n1/PG_VERSION")
  pg_bindir "$v"
}

cleanup() {
  set +e
  say "cleaning up"
  for n in 1 2 3; do
    [ -f "$DEMO/n$n/pg_biha/biha.conf" ] && $BIHACTL stop --pgdata="$DEMO/n$n" >/dev/null 2>&1
  done
  for n in 1 2 3; do
    if [ -f "$DEMO/n$n/postmaster.pid" ]; then
      as_pg "$(pg_bin)/pg_ctl" stop -D "$DEMO/n$n" -m immediate >/dev/null 2>&1
    fi
  done
  rm -rf "$DEMO"
  echo "removed $DEMO"
}
trap cleanup EXIT INT TERM

port() { echo $((BASE + ($1 - 1) * 10)); }
leader_of() { # prints the leader id as node $1 sees it
  $BIHACTL status --pgdata="$DEMO/n$1" --json 2>/dev/null |
    node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const j=JSON.parse(s);const l=j.status.find(x=>x.state==="LEADER_RW");process.stdout.write(l?String(l.id):"0")})'
}

say "bihactl init: node 1 (PostgreSQL $(port 1), control channel $(($(port 1) + 1)))"
$BIHACTL init --biha-node-id=1 --host=127.0.0.1 --port="$(port 1)" --nquorum=2 --minnodes=2 \
  --heartbeat-send-period=200 --heartbeat-max-lost=5 --pgdata="$DEMO/n1" --magic-file="$DEMO/magic" >/dev/null
PSQL="$(pg_bin)/psql"
echo "PostgreSQL $(cat "$DEMO/n1/PG_VERSION") (programs in $(pg_bin))"
echo "magic string: $(cut -c1-40 "$DEMO/magic")… (full string in $DEMO/magic, mode 0600)"
$BIHACTL start --pgdata="$DEMO/n1"
for n in 2 3; do
  say "bihactl add: node $n"
  $BIHACTL add --biha-node-id=$n --host=127.0.0.1 --port="$(port $n)" --magic-file="$DEMO/magic" --pgdata="$DEMO/n$n"
  $BIHACTL start --pgdata="$DEMO/n$n"
  for i in $(seq 1 200); do [ "$(leader_of 1)" != 0 ] && break; sleep 0.1; done
done

for i in $(seq 1 100); do [ "$(leader_of 1)" != 0 ] && break; sleep 0.1; done
say "bihactl status"
$BIHACTL status --pgdata="$DEMO/n1"

say "writing through a multi-host read-write connection string"
CONN="postgresql://biha_replication_user@127.0.0.1:$(port 1),127.0.0.1:$(port 2),127.0.0.1:$(port 3)/biha_db?target_session_attrs=read-write&connect_timeout=2"
export PGPASSWORD=$BIHA_REPLICATION_PASSWORD
$PSQL -X -q "$CONN" -c "create table if not exists demo(id serial primary key, at timestamptz default clock_timestamp(), node text default current_setting('port'))" \
  -c "insert into demo default values" -c "select count(*) as rows, max(node) as written_on_port from demo"

OLD=$(leader_of 1)
say "kill -9 of the leader (node $OLD): its controller and its postmaster"
node "$ROOT/scripts/write-gap.mjs" "$CONN" 6 > "$DEMO/gap.txt" &
WRITER=$!
sleep 1
kill -9 "$(cat "$DEMO/n$OLD/pg_biha/controller.pid")" "$(head -1 "$DEMO/n$OLD/postmaster.pid")"
echo "killed at $(date +%T.%3N)"
SURV=$(( OLD % 3 + 1 ))
for i in $(seq 1 300); do
  L=$(leader_of $SURV); if [ "$L" != 0 ] && [ "$L" != "$OLD" ]; then break; fi; sleep 0.05
done
echo "new leader: node $L (seen $(date +%T.%3N))"
wait $WRITER || true
cat "$DEMO/gap.txt"
$BIHACTL status --pgdata="$DEMO/n$SURV"
ACKED=$(sed -n 's/^client: \([0-9]*\) inserts acknowledged.*/\1/p' "$DEMO/gap.txt")
PRESENT=$($PSQL -X -q -t -A "$CONN" -c "select count(*) from demo_gap")
echo "after the failover: $ACKED inserts into demo_gap acknowledged, $PRESENT rows of demo_gap on the new leader (node $L)"

say "restart the old leader (node $OLD): it rejoins as a follower"
$BIHACTL start --pgdata="$DEMO/n$OLD"
for i in $(seq 1 100); do
  ST=$($BIHACTL status --pgdata="$DEMO/n$OLD" --json 2>/dev/null | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const j=JSON.parse(s);process.stdout.write(j.status.find(x=>x.id===j.nodeId).state)})' || true)
  [ "$ST" = FOLLOWER ] && break; sleep 0.1
done
$BIHACTL status --pgdata="$DEMO/n$OLD"
# The rejoined node is a hot standby: read the same table there once it has replayed up to the leader.
OLDCONN="postgresql://biha_replication_user@127.0.0.1:$(port $OLD)/biha_db?connect_timeout=2"
for i in $(seq 1 100); do
  ONOLD=$($PSQL -X -q -t -A "$OLDCONN" -c "select count(*) from demo_gap" 2>/dev/null || echo 0)
  [ "$ONOLD" = "$PRESENT" ] && break; sleep 0.1
done
echo "after the rejoin: $ACKED acknowledged, $ONOLD rows of demo_gap on node $OLD (the old leader, now a follower)"
say "done"
