#!/bin/bash
# bench/history_limits.sh - the cold pipeline's limits under a failing
# database (bench/history runs it and puts its table in docs/bench/history.md;
# tests/e2e/test_history.sh asserts the same behaviour without timing or size
# thresholds).
#
# Needs the FLEETSYNC_* / TEST_* environment of tests/e2e/stack.sh (or the
# bench's, with TEST_HTTP_PORT and TEST_METRICS_BASE set) and a running stack
# whose PostgreSQL it may stop (DATA_DIR/run/postgres.pid) and start again
# (`fleetsync services start`); the dashboard port must be free.  Starts
# `fleetsync history` and `fleetsync dashboard --max-clients 4` on topics of
# its own, then measures:
#   outage   PostgreSQL stopped while `fleetsync sim --kafka` writes N readings
#            into Kafka: the history process's peak VmRSS over OUTAGE_S s
#            (sampled every 0.5 s) while it retries: < 400,000 KiB; after
#            the restart every reading is stored
#   slow db  a transaction holds an ACCESS EXCLUSIVE lock on telemetry for
#            15 s while 40 track requests (/api/trucks/{id}/track) come at
#            once: GET /api/fleet meanwhile < 4000 ms, the last track answer
#            < 7000 ms (the dashboard's bounds: 1 s for a connection, 2 s
#            statement timeout), each saying the history is unavailable
# Prints one markdown table row per figure: | figure | measured | limit | met |.
#
#   bash bench/history_limits.sh            (N=200000 OUTAGE_S=30 by default)
set -u
FS=${FLEETSYNC_BIN:?source tests/e2e/stack.sh first}
N=${N:-200000}
OUTAGE_S=${OUTAGE_S:-30}
P="hlimits$$-" ID="HLIM$$" G="hlimits-$$"
W=$(mktemp -d /tmp/fleetsync-history-limits.XXXXXX)
MP=$((TEST_METRICS_BASE + 2))
URL=http://127.0.0.1:$TEST_HTTP_PORT
hp= dp= lp=
cleanup() {
    for p in $dp $hp $lp; do kill "$p" 2>/dev/null && wait "$p" 2>/dev/null; done
    rm -rf "$W"
}
trap cleanup EXIT
die() { echo "history_limits: $*" >&2; exit 1; }
q() { psql "$FLEETSYNC_PG" -XAtqc "$1" 2>/dev/null; }
rows() { q "SELECT count(*) FROM telemetry WHERE truck_id LIKE '$ID-%'"; }
metric() { curl -s "http://127.0.0.1:$MP/metrics" | awk -v n="$1" '$1 == n { print $2 }'; }
row() { echo "| $1 | $2 | $3 | $(if [ "$4" = 1 ]; then echo met; else echo "**not met**"; fi) |"; }
# wait_rows WANT SECONDS
wait_rows() {
    local i
    for i in $(seq $(($2 * 2))); do [ "$(rows)" = "$1" ] && return 0; sleep 0.5; done
    return 1
}

"$FS" services start --topic-prefix "$P" >/dev/null 2>&1 || die "cannot create the topics of $P"
"$FS" history --topic-prefix "$P" --group "$G" --metrics-port "$MP" >"$W/history.log" 2>&1 &
hp=$!
"$FS" dashboard --topic-prefix "$P" --group "$G-dash" --listen "127.0.0.1:$TEST_HTTP_PORT" --max-clients 4 \
    --metrics-port -1 >"$W/dashboard.log" 2>&1 &
dp=$!
for _ in $(seq 300); do [ "$(metric "fleetsync_sink_db_up{group=\"$G\"}")" = 1 ] && break; sleep 0.1; done
[ "$(metric "fleetsync_sink_db_up{group=\"$G\"}")" = 1 ] || die "history did not start: $(tail -3 "$W/history.log")"

# --- outage ------------------------------------------------------------------------
pg_pid=$(head -1 "$FLEETSYNC_DATA_DIR/run/postgres.pid")
kill -INT "$pg_pid" || die "cannot stop PostgreSQL ($pg_pid)"
for _ in $(seq 300); do kill -0 "$pg_pid" 2>/dev/null || break; sleep 0.1; done
t0=$(date +%s)
trucks=100
"$FS" sim --kafka --topic-prefix "$P" --trucks $trucks --interval 10 --speedup 0 \
    --start "$(date -u -d yesterday +%Y-%m-%dT00:00:00Z)" --duration $((N / trucks * 10)) --id-prefix "$ID-" \
    --metrics-port -1 --quiet >"$W/sim.log" 2>&1 || die "sim --kafka: $(tail -3 "$W/sim.log")"
peak=0
while [ $(($(date +%s) - t0)) -lt "$OUTAGE_S" ]; do
    r=$(awk '$1 == "VmRSS:" { print $2 }' "/proc/$hp/status" 2>/dev/null)
    [ "${r:-0}" -gt "$peak" ] && peak=$r
    sleep 0.5
done
alive=0; kill -0 "$hp" 2>/dev/null && alive=1
"$FS" services start >/dev/null 2>"$W/restart.err" || die "services start: $(tail -3 "$W/restart.err")"
stored=0; wait_rows "$N" 300 && stored=1
row "history's peak RSS, PostgreSQL stopped ${OUTAGE_S} s while $N readings arrive" "$peak KiB" "< 400000 KiB" \
    "$([ "$alive" = 1 ] && [ "$stored" = 1 ] && [ "$peak" -lt 400000 ] && echo 1)"

# --- slow database --------------------------------------------------------------------
now=$(date +%s%3N)
for i in 2 1 0; do
    printf '%s\t{"v":1,"truck_id":"%s","ts":%s,"seq":%s,"lat":48.1%s,"lon":11.5,"speed_kmh":50,"ignition":true}\n' \
        "$ID-T" "$ID-T" "$((now - i * 1000))" "$((3 - i))" "$i"
done | kcat -b "$FLEETSYNC_BROKERS" -P -t "${P}truck-telemetry" -K '\t'
wait_rows $((N + 3)) 60 || die "the track's readings were not stored"
psql "$FLEETSYNC_PG" -qc "BEGIN; LOCK TABLE telemetry IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(15); COMMIT" \
    >/dev/null 2>&1 &
lp=$!
for _ in $(seq 50); do
    [ "$(q "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation
        WHERE c.relname = 'telemetry' AND l.mode = 'AccessExclusiveLock' AND l.granted")" = 1 ] && break
    sleep 0.1
done
t0=$(date +%s%3N)
curls=
for i in $(seq 40); do
    curl -s --max-time 20 -o "$W/track.$i" "$URL/api/trucks/$ID-T/track" &
    curls="$curls $!"
done
sleep 0.5
f0=$(date +%s%3N)
live=$(curl -s --max-time 20 "$URL/api/fleet" | jq -r '.trucks // 0' 2>/dev/null)
f1=$(date +%s%3N)
for p in $curls; do wait "$p"; done
t1=$(date +%s%3N)
unavailable=$(cat "$W"/track.* | jq -r 'select(.history == false) | .error' 2>/dev/null | grep -c 'history database is')
row "GET /api/fleet while 40 track requests wait on a locked table" "$((f1 - f0)) ms" "< 4000 ms" \
    "$([ "${live:-0}" -gt 0 ] && [ $((f1 - f0)) -lt 4000 ] && echo 1)"
row "the last of those 40 track answers ($unavailable of 40: history unavailable)" "$((t1 - t0)) ms" "< 7000 ms" \
    "$([ "$unavailable" = 40 ] && [ $((t1 - t0)) -lt 7000 ] && echo 1)"
wait "$lp"; lp=
