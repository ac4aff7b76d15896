#!/bin/bash
# bench/history_pgcpu.sh - what fleetsync history costs PostgreSQL: CPU of
# history's backend (utime + stime of the pid pg_stat_activity shows for
# application_name = the group) per reading, in two phases:
#
#   store  a backlog of TRUCKS trucks x HOURS closed hours, one reading every
#          INTERVAL_S s (fleetsync sim --kafka --speedup 0, starting two days
#          ago), read by `history --pack-grace -1`: rows, per-batch rollups,
#          offsets; timed until fleetsync_history_rows_total reaches them all
#   pack   history restarted with the default packing: every closed hour
#          packed (and its day reclaimed), timed until telemetry_recent is empty
#   live   LIVE_TRUCKS trucks (default 3000) in real time, one reading every
#          10 s each (sim --kafka --speedup 1): after a 20 s warm-up, a
#          LIVE_S s window (default 60) of history with its defaults, batches
#          of what 0.5 s brings (about one reading per truck and batch: the
#          case where each reading also updates its truck-hour's rollup row)
#
# and prints "readings per PostgreSQL CPU-second" of each phase and of store
# and pack together, and writes it to docs/bench/history-pgcpu.md (not with
# HISTORY_BENCH_BIN: another build's figures are printed only).  Only the backend's CPU counts: autovacuum, the WAL writer and the
# checkpointer are not in it.  Against the stack the FLEETSYNC_* variables
# point at (e.g. tests/e2e/stack.sh's), in a database and on topics of its
# own that it removes.  Usage:
#   bench/history_pgcpu.sh [TRUCKS [HOURS [INTERVAL_S]]]     (default 500 6 60)
#   HISTORY_BENCH_BIN=BIN   another build of fleetsync to run as history
#   LIVE_TRUCKS=N LIVE_S=S  the live phase's fleet and window (LIVE_S=0: no live phase)
set -u
cd "$(dirname "$0")/.."
TRUCKS=${1:-500} HOURS=${2:-6} INTERVAL=${3:-60}
FS=$(pwd)/build/fleetsync
BIN=${HISTORY_BENCH_BIN:-$FS}
HZ=$(getconf CLK_TCK)
P="hpgcpu$$-" G="hpgcpu-$$" DB="hpgcpu_$$"
PORT=$(sed -n 's/.*port=\([0-9]*\).*/\1/p' <<<"$FLEETSYNC_PG")
OWN_PG="host=127.0.0.1 port=$PORT dbname=$DB user=fleetsync"
ADMIN_PG="host=127.0.0.1 port=$PORT dbname=postgres user=fleetsync_admin passfile=$FLEETSYNC_DATA_DIR/pgpass-admin"
MP=${HISTORY_BENCH_METRICS_PORT:-19290}
W=$(mktemp -d /tmp/fleetsync-history-pgcpu.XXXXXX)
hp=
cleanup() {
    [ -n "$hp" ] && kill "$hp" 2>/dev/null && wait "$hp" 2>/dev/null
    psql "$ADMIN_PG" -qX -c "DROP DATABASE IF EXISTS $DB" >/dev/null 2>&1
    rm -rf "$W"
}
trap cleanup EXIT
note() { printf '[bench history_pgcpu %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
cpu_s() { awk -v hz="$HZ" '{ sub(/^.*\) /, ""); print ($12 + $13) / hz }' "/proc/$1/stat" 2>/dev/null || echo 0; }
metric() { curl -s "http://127.0.0.1:$MP/metrics" | awk -v n="$1" '$1 == n { print $2 }'; }
q() { psql "$OWN_PG" -XAtqc "$1"; }
backend() {
    local pid=
    for _ in $(seq 100); do
        pid=$(q "SELECT pid FROM pg_stat_activity WHERE application_name = '$G'" | head -1)
        [ -n "$pid" ] && break
        sleep 0.1
    done
    echo "$pid"
}

"$FS" services start --topic-prefix "$P" >/dev/null 2>&1
psql "$ADMIN_PG" -qX -c "CREATE DATABASE $DB OWNER fleetsync" >/dev/null || exit 1
"$FS" sim --kafka --topic-prefix "$P" --trucks "$TRUCKS" --interval "$INTERVAL" --duration $((HOURS * 3600)) \
    --speedup 0 --start now-2d --quiet >"$W/sim.log" 2>&1 || { cat "$W/sim.log"; exit 1; }
N=$(awk '/published [0-9]+, acknowledged/ { sub(/,/, "", $4); print $4 }' "$W/sim.log")
[ -n "$N" ] && [ "$N" -gt 0 ] || { cat "$W/sim.log"; exit 1; }
note "$N readings of $TRUCKS trucks in Kafka"

# phase PHASE DONE-TEST HISTORY-OPTIONS...: runs history until DONE-TEST holds;
# prints "PHASE pg_cpu_s history_cpu_s wall_s".
phase() {
    local name=$1 done_test=$2
    shift 2
    "$BIN" history --pg "$OWN_PG" --topic-prefix "$P" --group "$G" --retention 0 --metrics-port "$MP" "$@" \
        >>"$W/history.log" 2>&1 &
    hp=$!
    local t0 pg c0 p0
    t0=$(date +%s.%N)
    pg=$(backend)
    p0=$(cpu_s "$pg") c0=$(cpu_s "$hp")
    until $done_test; do sleep 0.2; done
    local p1 c1 t1
    p1=$(cpu_s "$pg") c1=$(cpu_s "$hp") t1=$(date +%s.%N)
    kill -TERM "$hp"
    wait "$hp" 2>/dev/null
    hp=
    echo "$name $(echo "$p1 - $p0" | bc -l) $(echo "$c1 - $c0" | bc -l) $(echo "$t1 - $t0" | bc -l)"
}
stored() { [ "$(metric fleetsync_history_rows_total)" = "$N" ]; }
packed() { [ "$(q "SELECT count(*) FROM telemetry_recent")" = 0 ]; }
s=$(phase store stored --pack-grace -1)
note "$s"
p=$(phase pack packed)
note "$p"
[ "$(q "SELECT count(*) FROM telemetry")" = "$N" ] || { note "telemetry does not hold the $N readings"; exit 1; }
LIVE_TRUCKS=${LIVE_TRUCKS:-3000} LIVE_S=${LIVE_S:-60}
l="live 0 0 0 0"
if [ "$LIVE_S" -gt 0 ]; then
    "$BIN" history --pg "$OWN_PG" --topic-prefix "$P" --group "$G" --retention 0 --metrics-port "$MP" \
        >>"$W/history.log" 2>&1 &
    hp=$!
    pg=$(backend)
    "$FS" sim --kafka --topic-prefix "$P" --trucks "$LIVE_TRUCKS" --interval 10 --id-prefix LIVE- --quiet \
        >"$W/sim-live.log" 2>&1 &
    sp=$!
    sleep 20
    r0=$(metric fleetsync_history_rows_total) p0=$(cpu_s "$pg") c0=$(cpu_s "$hp") t0=$(date +%s.%N)
    sleep "$LIVE_S"
    r1=$(metric fleetsync_history_rows_total) p1=$(cpu_s "$pg") c1=$(cpu_s "$hp") t1=$(date +%s.%N)
    kill -9 "$sp"
    wait "$sp" 2>/dev/null
    batches=$(metric "fleetsync_sink_batches_total{group=\"$G\"}")
    kill -TERM "$hp"
    wait "$hp" 2>/dev/null
    hp=
    l="live $(echo "$p1 - $p0" | bc -l) $(echo "$c1 - $c0" | bc -l) $(echo "$t1 - $t0" | bc -l) $((r1 - r0))"
    note "$l (batches in all: $batches)"
fi
load=$(cut -d' ' -f1 /proc/loadavg)
table=$(printf '%s\n%s\n%s\n' "$s" "$p" "$l" | awk -v n="$N" '
    { pg[$1] = $2; cpu[$1] = $3; wall[$1] = $4; rows[$1] = $5 }
    END {
        printf "| phase | readings | PostgreSQL CPU s | readings per PostgreSQL CPU-second | history CPU s | wall s |\n"
        printf "|---|---|---|---|---|---|\n"
        printf "| store (--pack-grace -1) | %d | %.2f | %.0f | %.2f | %.1f |\n", n, pg["store"], n / pg["store"], cpu["store"], wall["store"]
        printf "| pack | %d | %.2f | %.0f | %.2f | %.1f |\n", n, pg["pack"], n / pg["pack"], cpu["pack"], wall["pack"]
        t = pg["store"] + pg["pack"]
        printf "| store and pack | %d | %.2f | %.0f | %.2f | |\n", n, t, n / t, cpu["store"] + cpu["pack"]
        if (rows["live"] > 0)
            printf "| live, %.0f readings/s | %d | %.2f | %.0f | %.2f | %.1f |\n", rows["live"] / wall["live"], rows["live"],
                pg["live"], rows["live"] / pg["live"], cpu["live"], wall["live"]
    }')
echo "$table"
[ -n "${HISTORY_BENCH_BIN:-}" ] && exit 0
pgv=$(q "SHOW server_version")
cpu_model=$(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)
{
    echo "# History: readings per PostgreSQL CPU-second"
    echo
    echo "Command: \`bench/history_pgcpu.sh $TRUCKS $HOURS $INTERVAL\` (LIVE_TRUCKS=$LIVE_TRUCKS LIVE_S=$LIVE_S),"
    echo "$(date -u +%Y-%m-%dT%H:%MZ), against the stack of the FLEETSYNC_* variables."
    echo "Machine: $(nproc) cores ($cpu_model), PostgreSQL $pgv; 1-minute load average at the end: $load."
    echo
    echo "The CPU of history's PostgreSQL backend (utime + stime of the pid pg_stat_activity shows"
    echo "for its group; autovacuum, WAL writer and checkpointer not counted). store: a backlog of"
    echo "$TRUCKS trucks x $HOURS closed hours at one reading every $INTERVAL s, history with"
    echo "\`--pack-grace -1\`; pack: history restarted, until every closed hour is packed; live:"
    echo "$LIVE_TRUCKS trucks at 10 s in real time, a ${LIVE_S} s window after a 20 s warm-up."
    echo
    echo "$table"
} >docs/bench/history-pgcpu.md
note "wrote docs/bench/history-pgcpu.md"
