#!/usr/bin/env bash
# A 3-node biha cluster driven through bihactl inside a root of scripts/debian-root.sh (run as root
# there; PostgreSQL and the controllers run as postgres): PostgreSQL 17 on Debian 13 (profile pg17),
# or PostgreSQL 15 on Debian 12's own Node.js 18 (profile node18):
#
#   BIHA_SCENARIO_PG=17 scripts/debian-root.sh pg17 run bash test/roots/scenario.sh
#   BIHA_SCENARIO_PG=15 BIHA_SCENARIO_PORT=24550 scripts/debian-root.sh node18 run bash test/roots/scenario.sh
#
# init (node 1, synchronous mode: --sync-standbys=1, nquorum 2), add nodes 2 and 3 from the magic
# string, start each; wait for a LEADER_RW and two streaming FOLLOWERs; a client inserts unique ids
# through the multi-host string meanwhile; failover: kill -9 of the leader's controller and
# postmaster (PIDs from pg_biha/controller.pid and postmaster.pid); a new leader; no acknowledged
# id missing; the old leader restarts with biha.autorewind = true and follows again; switchover with
# bihactl set-leader; rewind: the leader's WAL is made to diverge, it crashes, comes back in
# NODE_ERROR (autorewind off) and bihactl rewind makes it follow; the same with autorewind on, where
# the controller rewinds it by itself; bihactl backup of a follower, checked by pg_verifybackup.
#
# Facts are printed as "RESULT key=value" lines (test/integration/debian-roots.test.ts asserts
# them), steps as "scenario: ..." lines. Exit status 0 once every step ran (the results say how they
# went), 1 when a step could not run (a timeout, a failed command). Every wait is bounded; on exit,
# also on failure, the nodes are stopped (bihactl stop, then kill -9 of their PIDs) and the data
# removed.
#
# BIHA_SCENARIO_PG (default 17): the PostgreSQL major of the root. BIHA_SCENARIO_PORT (default
# 24500): node i uses BASE+10*(i-1) (PostgreSQL), +1 (biha), +2 (http, given explicitly: bihactl's
# default is far from the node's block).
set -euo pipefail
cd "$(dirname "$0")/../.."
CHECKOUT=$PWD
PG=${BIHA_SCENARIO_PG:-17}
BASE=${BIHA_SCENARIO_PORT:-24500}
PGBIN=/usr/lib/postgresql/$PG/bin
BIHACTL=(node "$CHECKOUT/bin/bihactl.js")
export BIHA_REPLICATION_PASSWORD="scenario-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"
T0=$SECONDS

say() { echo "scenario: [$((SECONDS - T0))s] $*"; }
result() { echo "RESULT $1=$2"; }
die() { say "FAILED: $*"; exit 1; }
port() { echo $((BASE + ($1 - 1) * 10)); }
pgdata() { echo "$DIR/n$1"; }
# A bihactl command bounded in time; its output goes to the log of this run.
ctl() { timeout 240 "${BIHACTL[@]}" "$@"; }
# psql as postgres over the node's socket (the directory the server uses: line 5 of postmaster.pid;
# biha leaves unix_socket_directories to the DBA); unaligned, tuples only.
sockdir() { sed -n 5p "$(pgdata "$1")/postmaster.pid" 2>/dev/null || true; }
psql_su() { local n=$1; shift; timeout 30 runuser -u postgres -- "$PGBIN/psql" -X -At -v ON_ERROR_STOP=1 -h "$(sockdir "$n")" -p "$(port "$n")" -d biha_db "$@"; }

[ "$(id -u)" -eq 0 ] || die "run as root inside a root of scripts/debian-root.sh"
[ -x "$PGBIN/pg_ctl" ] || die "no PostgreSQL $PG in $PGBIN"
[ -f "$CHECKOUT/dist/bihactl/main.js" ] || die "no dist/: build it on the host first (npx tsc -p tsconfig.build.json)"
say "PostgreSQL: $("$PGBIN/postgres" --version); Node.js $(node --version); $(. /etc/os-release && echo "$PRETTY_NAME")"

# The ports must be free (the loopback network is the host's).
for n in 1 2 3; do
  for p in $(port "$n") $(($(port "$n") + 1)) $(($(port "$n") + 2)); do
    if [ -n "$(ss -Htln "( sport = :$p )" 2>/dev/null)" ]; then die "port $p is in use: choose other ports with BIHA_SCENARIO_PORT"; fi
  done
done

say "ports: $(port 1)-$(($(port 3) + 2)) are free"

DIR=$(mktemp -d /tmp/biha-scenario.XXXXXX)
chmod 755 "$DIR"
chown postgres:postgres "$DIR"
WRITER=""

pid_of() { # controller|postmaster node -> pid or empty
  local f
  if [ "$1" = controller ]; then f="$(pgdata "$2")/pg_biha/controller.pid"; else f="$(pgdata "$2")/postmaster.pid"; fi
  [ -f "$f" ] && head -1 "$f" | tr -dc 0-9
  return 0
}
# Signals a PID only if that process runs from this scenario's directory.
kill_own() {
  local pid=$1
  [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] || return 0
  tr '\0' ' ' < "/proc/$pid/cmdline" | grep -qF "$DIR" || return 0
  kill -9 "$pid" 2>/dev/null || true
}
cleanup() {
  local rc=$?
  set +e
  trap - EXIT INT TERM
  [ -n "$WRITER" ] && kill "$WRITER" 2>/dev/null
  say "cleaning up (exit $rc)"
  for n in 1 2 3; do
    [ -f "$(pgdata "$n")/pg_biha/biha.conf" ] && timeout 60 "${BIHACTL[@]}" stop --pgdata="$(pgdata "$n")" >/dev/null 2>&1
  done
  for n in 1 2 3; do
    kill_own "$(pid_of controller "$n")"
    kill_own "$(pid_of postmaster "$n")"
  done
  if [ "$rc" != 0 ]; then
    for n in 1 2 3; do
      for f in controller.log postgresql.log; do
        echo "---- node $n: $f (last lines)"
        tail -n 30 "$(pgdata "$n")/pg_biha/log/$f" 2>/dev/null
      done
    done
  fi
  rm -rf "$DIR" "$DIR".* 2>/dev/null
  say "removed $DIR"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

status_json() { timeout 15 "${BIHACTL[@]}" status --pgdata="$(pgdata "$1")" --json 2>/dev/null; }
# Reads `bihactl status --json` of node $1 on stdin and prints what $2 asks for:
#   leader: the LEADER_RW id (0 if none); state:ID: that node's state; error: this node's error type.
jq_status() {
  node -e '
    let s = ""; process.stdin.on("data", (d) => (s += d)).on("end", () => {
      let j; try { j = JSON.parse(s); } catch { process.stdout.write(""); return; }
      const [what, arg] = process.argv[1].split(":");
      if (what === "leader") { const l = j.status.find((x) => x.state === "LEADER_RW"); process.stdout.write(l ? String(l.id) : "0"); }
      else if (what === "state") { const n = j.status.find((x) => x.id === Number(arg)); process.stdout.write(n ? n.state : ""); }
      else if (what === "error") process.stdout.write(j.error.type);
    });' "$1"
}
leader_seen_by() { local l; l=$(status_json "$1" | jq_status leader) || true; echo "${l:-0}"; }
state_of() { status_json "$1" | jq_status "state:$1" || true; }
# wait_until SECONDS DESCRIPTION COMMAND...: polls COMMAND every 0.2 s.
wait_until() {
  local secs=$1 what=$2 end
  shift 2
  end=$((SECONDS + secs))
  while [ "$SECONDS" -lt "$end" ]; do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.2
  done
  die "timed out after ${secs}s waiting for $what"
}
is_leader() { [ "$(leader_seen_by "$1")" = "$2" ]; }
is_state() { [ "$(state_of "$1")" = "$2" ]; }
streaming() { [ "$(psql_su "$1" -c "select count(*) from pg_stat_wal_receiver where status = 'streaming'")" = 1 ]; }
follows() { is_state "$1" FOLLOWER && streaming "$1"; }
senders() { [ "$(psql_su "$1" -c "select count(*) from pg_stat_replication where state = 'streaming'")" = "$2" ]; }
a_new_leader() { # prints the leader as seen by any node but $1, if it is not $1
  local n l
  for n in 1 2 3; do
    [ "$n" = "$1" ] && continue
    l=$(leader_seen_by "$n")
    if [ "$l" != 0 ] && [ "$l" != "$1" ]; then echo "$l"; return 0; fi
  done
  return 1
}
current_leader() { local n l; for n in 1 2 3; do l=$(leader_seen_by "$n"); [ "$l" != 0 ] && { echo "$l"; return 0; }; done; return 1; }
set_autorewind() { sed -i -E "s/^biha\.autorewind\s*=.*/biha.autorewind = $2/" "$(pgdata "$1")/postgresql.biha.conf"; }
CONN="postgresql://biha_replication_user:$BIHA_REPLICATION_PASSWORD@127.0.0.1:$(port 1),127.0.0.1:$(port 2),127.0.0.1:$(port 3)/biha_db?target_session_attrs=read-write&connect_timeout=2"

# ---- the cluster
say "bihactl init: node 1 (port $(port 1)), --sync-standbys=1 --nquorum=2 --minnodes=2"
ctl init --biha-node-id=1 --host=127.0.0.1 --port="$(port 1)" --http-port="$(($(port 1) + 2))" --nquorum=2 --minnodes=2 --sync-standbys=1 \
  --heartbeat-send-period=200 --heartbeat-max-lost=5 --pgdata="$(pgdata 1)" --magic-file="$DIR/magic" >/dev/null ||
  die "bihactl init failed"
ctl start --pgdata="$(pgdata 1)" || die "bihactl start of node 1 failed"
MAGIC=$(cat "$DIR/magic")
for n in 2 3; do
  say "bihactl add --magic-string: node $n (port $(port "$n"))"
  ctl add --biha-node-id="$n" --host=127.0.0.1 --port="$(port "$n")" --http-port="$(($(port "$n") + 2))" --magic-string="$MAGIC" --pgdata="$(pgdata "$n")" ||
    die "bihactl add of node $n failed"
  ctl start --pgdata="$(pgdata "$n")" || die "bihactl start of node $n failed"
done
wait_until 120 "node 1 as LEADER_RW" is_leader 1 1
wait_until 120 "node 2 to follow and stream" follows 2
wait_until 120 "node 3 to follow and stream" follows 3
wait_until 60 "two streaming WAL senders on node 1" senders 1 2
result formed_seconds $((SECONDS - T0))
result leader_initial 1
for n in 1 2 3; do
  result "pg_version_n$n" "$(cat "$(pgdata "$n")/PG_VERSION")"
  result "server_version_num_n$n" "$(psql_su "$n" -c 'show server_version_num')"
done
# PostgreSQL 16+: pg_hba.conf and pg_ident.conf include biha's files instead of holding copies of the
# rules; PostgreSQL reports the rules it read from the included file. Before 16: the rules are in
# pg_hba.conf itself, and PostgreSQL read them without error.
for n in 1 2 3; do
  if [ "$PG" -ge 16 ]; then
    result "hba_include_n$n" "$(grep -c '^include pg_hba.biha.conf$' "$(pgdata "$n")/pg_hba.conf" || true)"
    result "hba_rules_from_include_n$n" "$(psql_su "$n" -c "select count(*) from pg_hba_file_rules where file_name like '%/pg_hba.biha.conf' and error is null")"
    result "ident_include_n$n" "$(grep -c '^include pg_ident.biha.conf$' "$(pgdata "$n")/pg_ident.conf" || true)"
  else
    result "hba_rules_n$n" "$(psql_su "$n" -c "select count(*) from pg_hba_file_rules where error is null and 'biha_replication_user' = any(user_name)")"
  fi
done
result followers_streaming "$(for n in 2 3; do follows "$n" && echo "$n"; done | wc -l)"
result sync_standby_names "'$(psql_su 1 -c 'show synchronous_standby_names')'"

# ---- failover under writes
say "writing through $(echo "$CONN" | sed 's/:[^:@]*@/:***@/')"
node "$CHECKOUT/test/roots/writer.mjs" "$CONN" "$DIR/acked" "$DIR/writer.stop" 240 > "$DIR/writer.out" 2>&1 &
WRITER=$!
wait_until 30 "the first acknowledged insert" test -s "$DIR/acked"
sleep 2
OLD=1
CPID=$(pid_of controller $OLD)
PPID_=$(pid_of postmaster $OLD)
[ -n "$CPID" ] && [ -n "$PPID_" ] || die "no PID files on node $OLD"
say "failover: kill -9 of node $OLD's controller ($CPID) and postmaster ($PPID_)"
kill_t=$(date +%s%N)
kill_own "$CPID"
kill_own "$PPID_"
wait_until 60 "a new leader" a_new_leader $OLD
NEW=$(a_new_leader $OLD)
elected_t=$(date +%s%N)
say "node $NEW leads"
result failover_new_leader "$NEW"
result failover_elected_ms $(((elected_t - kill_t) / 1000000))
# Writes resume on the new leader; then the writer stops.
NEWPORT=$(port "$NEW")
on_new() { [ "$(awk -v p="$NEWPORT" '$2 == p' "$DIR/acked" | wc -l)" -ge 10 ]; }
wait_until 60 "10 acknowledged inserts on node $NEW" on_new
touch "$DIR/writer.stop"
wait "$WRITER" || die "the writer failed: $(cat "$DIR/writer.out")"
WRITER=""
cat "$DIR/writer.out"
psql_su "$NEW" -c 'select id from acked order by id' > "$DIR/present"
cut -d' ' -f1 "$DIR/acked" | sort -n > "$DIR/acked.ids"
MISSING=$(comm -23 <(sort "$DIR/acked.ids") <(sort "$DIR/present") | wc -l)
result acked_rows "$(wc -l < "$DIR/acked.ids")"
result acked_on_new_leader "$(awk -v p="$NEWPORT" '$2 == p' "$DIR/acked" | wc -l)"
result present_rows "$(wc -l < "$DIR/present")"
result acked_missing "$MISSING"
[ "$MISSING" = 0 ] || say "acknowledged ids missing on node $NEW: $(comm -23 <(sort "$DIR/acked.ids") <(sort "$DIR/present") | sort -n | head -20 | tr '\n' ' ')"

# ---- the old leader rejoins (its WAL may hold commits that waited for a standby: autorewind)
say "restart node $OLD with biha.autorewind = true"
set_autorewind $OLD true
ctl start --pgdata="$(pgdata $OLD)" || die "bihactl start of node $OLD failed"
rejoin_via=autorewind
end=$((SECONDS + 120))
while [ "$SECONDS" -lt "$end" ]; do
  st=$(state_of $OLD)
  [ "$st" = FOLLOWER ] && streaming $OLD && break
  if [ "$st" = NODE_ERROR ] && [ "$rejoin_via" = autorewind ]; then
    say "node $OLD is in NODE_ERROR ($(status_json $OLD | jq_status error)): bihactl rewind"
    rejoin_via=rewind
    ctl rewind --pgdata="$(pgdata $OLD)" || die "bihactl rewind of node $OLD failed"
  fi
  sleep 0.2
done
follows $OLD || die "node $OLD did not rejoin (state $(state_of $OLD))"
result rejoin_state "$(state_of $OLD)"
result rejoin_via "$rejoin_via"
# Whether its controller had to rewind it (the crashed leader may hold commits no standby confirmed).
result rejoin_rewound "$(grep -q 'rewound;' "$(pgdata $OLD)/pg_biha/log/controller.log" && echo yes || echo no)"
# It replays what the new leader has.
same_rows() { [ "$(psql_su $OLD -c 'select count(*) from acked')" = "$(psql_su "$NEW" -c 'select count(*) from acked')" ]; }
wait_until 60 "node $OLD to replay the rows" same_rows
result rejoin_rows "$(psql_su $OLD -c 'select count(*) from acked')"
set_autorewind $OLD false

# ---- switchover
CUR=$(current_leader) || die "no leader before the switchover"
TARGET=$OLD
[ "$TARGET" != "$CUR" ] || TARGET=$(( CUR % 3 + 1 ))
wait_until 60 "node $TARGET to stream" follows "$TARGET"
say "switchover: bihactl set-leader --id=$TARGET (on node $CUR)"
sw_t0=$(date +%s%N)
ctl set-leader --pgdata="$(pgdata "$CUR")" --id="$TARGET" || die "bihactl set-leader --id=$TARGET failed"
result switchover_ms $((($(date +%s%N) - sw_t0) / 1000000))
result switchover_target "$TARGET"
all_see() { local n; for n in 1 2 3; do is_leader "$n" "$1" || return 1; done; }
wait_until 60 "every node to see node $TARGET lead" all_see "$TARGET"
result switchover_leader "$(leader_seen_by "$CUR")"
psql_su "$TARGET" -c "insert into acked values (-1, $(port "$TARGET"))" >/dev/null || die "no write on the new leader $TARGET"
result switchover_write ok
wait_until 90 "node $CUR (the previous leader) to follow" follows "$CUR"
result switchover_old_state "$(state_of "$CUR")"

# ---- rewind: the leader's WAL diverges, it crashes, comes back in NODE_ERROR; bihactl rewind
# diverge_and_crash NODE TABLE: NODE (the leader) commits rows into TABLE that its followers never
# receive (their password files are moved aside and primary_conninfo cleared meanwhile, so that
# their controllers cannot attach them again; synchronous_commit = local), then crashes (kill -9).
diverge_and_crash() {
  local l=$1 table=$2 f followers
  followers=$(for f in 1 2 3; do [ "$f" != "$l" ] && echo "$f"; done)
  say "node $l commits rows its followers never receive, then crashes"
  for f in $followers; do mv "$(pgdata "$f")/pg_biha/pgpass" "$(pgdata "$f")/pg_biha/pgpass.aside"; done
  for f in $followers; do psql_su "$f" -c "alter system set primary_conninfo = ''" -c 'select pg_reload_conf()' >/dev/null; done
  wait_until 60 "the followers to disconnect from node $l" senders "$l" 0
  psql_su "$l" -c 'set synchronous_commit = local' -c "create table $table (id int)" -c "insert into $table select generate_series(1, 1000)" >/dev/null
  kill_own "$(pid_of controller "$l")"
  kill_own "$(pid_of postmaster "$l")"
  for f in $followers; do mv "$(pgdata "$f")/pg_biha/pgpass.aside" "$(pgdata "$f")/pg_biha/pgpass"; done
  wait_until 60 "a leader other than node $l" a_new_leader "$l"
}
rewinds_in_log() { grep -c 'rewound;' "$(pgdata "$1")/pg_biha/log/controller.log" || true; }
L=$TARGET
for n in 1 2 3; do set_autorewind "$n" false; done
say "rewind with bihactl rewind (biha.autorewind = false)"
diverge_and_crash "$L" only_on_old
R_NEW=$(a_new_leader "$L")
result rewind_new_leader "$R_NEW"
ctl start --pgdata="$(pgdata "$L")" || die "bihactl start of node $L failed"
wait_until 60 "node $L in NODE_ERROR" is_state "$L" NODE_ERROR
result rewind_error "$(status_json "$L" | jq_status error)"
say "bihactl rewind on node $L"
rw_t0=$(date +%s%N)
ctl rewind --pgdata="$(pgdata "$L")" || die "bihactl rewind of node $L failed"
result rewind_ms $((($(date +%s%N) - rw_t0) / 1000000))
wait_until 90 "node $L to follow and stream after the rewind" follows "$L"
result rewind_state "$(state_of "$L")"
result rewind_error_after "$(status_json "$L" | jq_status error)"
result rewind_only_on_old "$(psql_su "$L" -c "select coalesce(to_regclass('only_on_old')::text, 'absent')")"
result rewind_pg_version "$(cat "$(pgdata "$L")/PG_VERSION")"

# ---- the same divergence with biha.autorewind = true: the controller rewinds the node by itself
L2=$R_NEW
wait_until 90 "both followers of node $L2 to stream" senders "$L2" 2
say "rewind by the controller (biha.autorewind = true)"
diverge_and_crash "$L2" only_on_old_auto
result autorewind_new_leader "$(a_new_leader "$L2")"
before=$(rewinds_in_log "$L2")
set_autorewind "$L2" true
ctl start --pgdata="$(pgdata "$L2")" || die "bihactl start of node $L2 failed"
wait_until 120 "node $L2 to be rewound and to follow" follows "$L2"
result autorewind_state "$(state_of "$L2")"
result autorewind_rewinds "$(( $(rewinds_in_log "$L2") - before ))"
result autorewind_only_on_old "$(psql_su "$L2" -c "select coalesce(to_regclass('only_on_old_auto')::text, 'absent')")"
set_autorewind "$L2" false

# ---- a backup with bihactl backup (pg_basebackup from a streaming follower), checked by pg_verifybackup
say "bihactl backup, then pg_verifybackup"
ctl backup --pgdata="$(pgdata "$L2")" --target="$DIR/backup" || die "bihactl backup failed"
result backup_pg_version "$(cat "$DIR/backup/PG_VERSION")"
result backup_verified "$(timeout 120 runuser -u postgres -- "$PGBIN/pg_verifybackup" "$DIR/backup" >/dev/null && echo yes || echo no)"
rm -rf "$DIR/backup"

# ---- the end: one leader, two streaming followers, all on the root's major
FINAL=$(current_leader) || die "no leader at the end"
result final_leader "$FINAL"
result final_followers "$(for n in 1 2 3; do [ "$n" != "$FINAL" ] && follows "$n" && echo "$n"; done | wc -l)"
# What PostgreSQL complained about: the distinct WARNING/ERROR/FATAL/PANIC messages of each node's
# log (numbers and quoted names folded), and how many PANICs.
for n in 1 2 3; do
  log="$(pgdata "$n")/pg_biha/log/postgresql.log"
  grep -hoE '(WARNING|ERROR|FATAL|PANIC): .*' "$log" 2>/dev/null | sed -E 's/[0-9A-F]+\/[0-9A-F]+/LSN/g; s/[0-9]+/N/g; s/"[^"]*"/"…"/g' |
    sort | uniq -c | sort -rn | sed "s/^/scenario: node $n postgresql.log: /" || true
done
# And the controllers' errors (pino level 50 and more), by message.
for n in 1 2 3; do
  node -e '
    const fs = require("fs"); const counts = new Map();
    for (const line of fs.readFileSync(process.argv[1], "utf8").split("\n")) {
      let j; try { j = JSON.parse(line); } catch { continue; }
      if (j.level >= 50) { const m = String(j.msg).replace(/\d+/g, "N"); counts.set(m, (counts.get(m) ?? 0) + 1); }
    }
    for (const [m, c] of counts) console.log(`scenario: node ${process.argv[2]} controller.log: ${c} error(s): ${m}`);
  ' "$(pgdata "$n")/pg_biha/log/controller.log" "$n" || true
done
result panics "$(cat "$DIR"/n*/pg_biha/log/postgresql.log 2>/dev/null | grep -c 'PANIC:' || true)"
result total_seconds $((SECONDS - T0))
say "done"
