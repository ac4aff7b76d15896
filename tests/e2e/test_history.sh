#!/bin/bash
# The cold pipeline against the real Mosquitto, Kafka and PostgreSQL:
# simulator -> bridge -> Kafka -> fleetsync history.  Every reading stored
# exactly once through repeats, late data, 10 SIGKILLs, a 60 s database
# outage and stored offsets moved under the running sink; rollups equal a recomputation from raw rows; bad records are
# counted, never stored; alerts are upserted; a replay adds what is missing
# and leaves the rollups as they were.  No timing or size thresholds: the
# memory during an outage and how fast answers come with a slow database are
# measured by bench/history_limits.sh (make bench).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/bridge_lib.sh"

P="e2ehist$$-"                 # topic prefix: this suite's own topics
ID="E2EH$$"                     # truck id prefix
G="e2e-history-$$"              # consumer group (offsets in sink_offsets)
W=$(mktemp -d /tmp/fleetsync-e2e-history.XXXXXX)
B=$FLEETSYNC_BROKERS
MP=$((TEST_METRICS_BASE + 2))
H_ARGS=(--topic-prefix "$P" --group "$G" --metrics-port "$MP")
# Static membership for the kill loop: a restarted member takes its
# partitions back at once instead of waiting for the dead one's session to
# time out.
STATIC=(-X "group.instance.id=e2e-history-$$" -X session.timeout.ms=6000)
day() { date -u -d "yesterday $1" +%Y-%m-%dT%H:%M:%SZ; }
bridge_pid= hist_pid= dash_pid=
cleanup() {
    [ -n "$dash_pid" ] && kill "$dash_pid" 2>/dev/null
    [ -n "$bridge_pid" ] && kill -9 "$bridge_pid" 2>/dev/null
    [ -n "$hist_pid" ] && kill -9 "$hist_pid" 2>/dev/null
    rm -rf "$W"
}
trap cleanup EXIT

q() { psql "$FLEETSYNC_PG" -Atqc "$1" 2>/dev/null; }
rows() { q "SELECT count(*) FROM telemetry WHERE truck_id LIKE '$ID-%'"; }
samples() { q "SELECT coalesce(sum(samples), 0) FROM telemetry_hourly WHERE truck_id LIKE '$ID-%'"; }
start_history() {
    "$FS" history "${H_ARGS[@]}" "$@" >>"$W/history.log" 2>&1 &
    hist_pid=$!
}
# Sum of the topic's end offsets, and of what the group stored.
topic_end() {
    kcat -b "$B" -Q -t "${P}truck-telemetry:0:-1" -t "${P}truck-telemetry:1:-1" -t "${P}truck-telemetry:2:-1" \
        -t "${P}truck-telemetry:3:-1" -t "${P}truck-telemetry:4:-1" -t "${P}truck-telemetry:5:-1" 2>/dev/null |
        awk '{ s += $NF } END { print s + 0 }'
}
stored_end() { q "SELECT coalesce(sum(next_offset), 0) FROM sink_offsets WHERE group_id = '$G' AND topic = '${P}truck-telemetry'"; }
caught_up() { [ "$(stored_end)" = "$(topic_end)" ] && echo 1 || echo 0; }
# Rollups of the suite's trucks, as text, to compare before and after.
rollups() {
    q "SELECT truck_id, hour, samples, round(distance_km::numeric, 9), round(moving_s::numeric, 6),
              round(idle_s::numeric, 6), round(parked_s::numeric, 6), max_speed_kmh,
              round(fuel_used_pct::numeric, 9), last_ts, last_seq
       FROM telemetry_hourly WHERE truck_id LIKE '$ID-%' ORDER BY 1, 2"
}
# Marks every hour of the suite's trucks dirty and waits for the recompute.
recompute_all() {
    q "INSERT INTO rollup_dirty SELECT truck_id, hour FROM telemetry_hourly WHERE truck_id LIKE '$ID-%'
       ON CONFLICT DO NOTHING" >/dev/null
    for _ in $(seq 120); do
        [ "$(q "SELECT count(*) FROM rollup_dirty WHERE truck_id LIKE '$ID-%'")" = 0 ] && return 0
        sleep 0.5
    done
    return 1
}

# --- the command line -----------------------------------------------------
check "--help exits 0 and teaches the options" bash -c "'$FS' history --help | grep -q -- '--retention'"
rc=0; "$FS" history --bogus >/dev/null 2>&1 || rc=$?
check_eq "an unknown option is a usage error" 2 "$rc"
rc=0; out=$("$FS" history --max-batch 0 2>&1) || rc=$?
check_eq "--max-batch 0 is a usage error" 2 "$rc"
check_contains "and says why" "--max-batch is" "$out"

"$FS" services start --topic-prefix "$P" >/dev/null 2>&1
check "topics with the suite's prefix exist" topics_ready

# --- 1. a simulated fleet through the whole pipeline ----------------------
start_bridge bridge --client-id "e2e-hbridge-$$" --metrics-port $((TEST_METRICS_BASE + 3)) --session-expiry 300
check_eq "bridge starts" 0 $?
"$FS" sim --trucks 20 --connections 2 --interval 10 --duration 3600 --speedup 0 --start "$(day 09:00)" \
    --id-prefix "$ID-" --metrics-port -1 --quiet >"$W/sim1.log" 2>&1
K1=$(wait_unique "${P}truck-telemetry" "^$ID-" 7200)
check_eq "the simulator's 7200 readings are in Kafka" 7200 "$K1"

# Static membership from the start: section 3's first restart then takes
# over this member's partitions at once instead of waiting for its session
# to time out.
start_history --max-batch 2000 "${STATIC[@]}"
check_eq "history stores every reading" "$K1" "$(wait_until "$K1" 120 rows)"
# Batches of 2,000 hold their rollups in memory (--rollup-batch 1000): they
# follow the rows once the group is caught up.
check_eq "rollups count every reading once" "$K1" "$(wait_until "$K1" 20 samples)"
check_eq "the stored offsets reach the end of the topic" 1 "$(wait_until 1 40 caught_up)"
check "the schema version is recorded" test "$(q 'SELECT max(version) FROM fleetsync_schema')" -ge 1
check "the current hour's and the next hour's partitions exist" test "$(q "SELECT count(*) FROM pg_class WHERE relname IN
    (SELECT 'telemetry_recent_' || to_char((now() + h * interval '1 hour') AT TIME ZONE 'UTC', 'YYYYMMDD_HH24')
     FROM generate_series(0, 1) h)")" = 2

# Rollups kept incrementally equal a recomputation from raw rows.
rollups >"$W/roll.before"
check "rollups are recomputed when marked dirty" recompute_all
rollups >"$W/roll.after"
check "incremental rollups equal the recomputation" cmp -s "$W/roll.before" "$W/roll.after"
# ... and an independent computation in SQL (distance on the same sphere,
# moving = either end faster than 5 km/h, gaps over 10 min ignored).
indep=$(q "WITH p AS (
    SELECT truck_id, ts, speed_kmh AS v, lat, lon,
           lag(ts) OVER w AS pts, lag(speed_kmh) OVER w AS pv, lag(lat) OVER w AS plat, lag(lon) OVER w AS plon
    FROM telemetry WHERE truck_id LIKE '$ID-%' WINDOW w AS (PARTITION BY truck_id ORDER BY ts, seq))
  SELECT round(sum(2 * 6371.0088 * asin(sqrt(power(sin(radians(lat - plat) / 2), 2) +
         cos(radians(plat)) * cos(radians(lat)) * power(sin(radians(lon - plon) / 2), 2))))::numeric, 6),
         round(sum(extract(epoch FROM ts - pts))::numeric, 3)
  FROM p WHERE pts IS NOT NULL AND ts > pts AND ts - pts <= interval '10 minutes' AND (v > 5 OR pv > 5)")
mine=$(q "SELECT round(sum(distance_km)::numeric, 6), round(sum(moving_s)::numeric, 3)
          FROM telemetry_hourly WHERE truck_id LIKE '$ID-%'")
check "the fleet drove (${mine%%|*} km)" test "${mine%%.*}" -gt 100
check_eq "rollup distance and moving time match an independent SQL computation" "$indep" "$mine"

# --- 2. repeats, late readings, bad records, alerts -----------------------
kcat -b "$B" -C -t "${P}truck-telemetry" -o beginning -e -q -f '%k\t%s\n' 2>/dev/null | grep "^$ID-" |
    head -500 >"$W/repeats"
# A late reading: truck 1, 1 ms after its first stored reading.
first=$(q "SELECT (extract(epoch FROM ts) * 1000)::bigint FROM telemetry WHERE truck_id = '$ID-000001' ORDER BY ts LIMIT 1")
printf '%s\t{"v":1,"truck_id":"%s","ts":%s,"seq":999999,"lat":48.1,"lon":11.5,"speed_kmh":0,"ignition":false}\n' \
    "$ID-000001" "$ID-000001" "$((first + 1))" >>"$W/repeats"
kcat -b "$B" -P -t "${P}truck-telemetry" -K '\t' -l "$W/repeats"
printf '%s\n' 'x	not json' \
    "x	{\"v\":1,\"truck_id\":\"x'); DROP TABLE telemetry; --\",\"ts\":$first,\"seq\":1,\"lat\":1,\"lon\":1,\"speed_kmh\":1,\"ignition\":true}" \
    "x	{\"v\":1,\"truck_id\":\"$ID-9\",\"ts\":$first,\"seq\":1,\"lat\":91,\"lon\":1,\"speed_kmh\":1,\"ignition\":true}" |
    kcat -b "$B" -P -t "${P}truck-telemetry" -K '\t'
now=$(date +%s%3N)
printf '%s\n' \
    "$ID-000002	{\"alert_id\":\"$ID-000002:overspeed:$now\",\"state\":\"raised\",\"truck_id\":\"$ID-000002\",\"rule\":\"overspeed\",\"started_ms\":$now,\"detected_ms\":$((now + 60000)),\"lat\":48.1,\"lon\":11.5,\"details\":{\"max_kmh\":112}}" \
    "$ID-000002	{\"alert_id\":\"$ID-000002:overspeed:$now\",\"state\":\"raised\",\"truck_id\":\"$ID-000002\",\"rule\":\"overspeed\",\"started_ms\":$now,\"detected_ms\":$((now + 60000)),\"lat\":48.1,\"lon\":11.5,\"details\":{\"max_kmh\":112}}" \
    "$ID-000002	{\"alert_id\":\"$ID-000002:overspeed:$now\",\"state\":\"cleared\",\"truck_id\":\"$ID-000002\",\"rule\":\"overspeed\",\"started_ms\":$now,\"ended_ms\":$((now + 120000))}" \
    "$ID-000002	{\"broken\":true}" |
    kcat -b "$B" -P -t "${P}truck-alerts" -K '\t'
K2=$((K1 + 1))
check_eq "repeats are stored once, the late reading is added" "$K2" "$(wait_until "$K2" 60 rows)"
sleep 1
check_eq "no more rows than readings" "$K2" "$(rows)"
check_eq "metrics count the repeats" 500 "$(metric "$MP" fleetsync_history_duplicates_total)"
check_eq "metrics count the late reading" 1 "$(metric "$MP" fleetsync_history_late_rows_total)"
check_eq "an invalid record is counted by reason" 1 "$(metric "$MP" 'fleetsync_history_rejected_total{reason="invalid_json"}')"
check_eq "a hostile truck id is refused as data" 1 "$(metric "$MP" 'fleetsync_history_rejected_total{reason="bad_truck_id"}')"
check_eq "an out-of-range reading is refused" 1 "$(metric "$MP" 'fleetsync_history_rejected_total{reason="out_of_range"}')"
check "the telemetry table is intact" test "$(q "SELECT count(*) FROM telemetry")" -ge "$K2"
check_eq "the late reading's hours were recomputed: rollups count it once" "$K2" "$(wait_until "$K2" 20 samples)"
check_eq "one alert row, raised then cleared" \
    "overspeed|t|t|{\"max_kmh\": 112}" \
    "$(q "SELECT rule, detected_at IS NOT NULL, ended_at = started_at + interval '2 minutes', details FROM alerts WHERE alert_id = '$ID-000002:overspeed:$now'")"
check_eq "a record that is not an alert is counted" 1 "$(metric "$MP" fleetsync_history_alert_errors_total)"

# --- 3. SIGKILL ten times while a backlog is stored -----------------------
kill -9 "$hist_pid"; wait "$hist_pid" 2>/dev/null
"$FS" sim --trucks 40 --connections 2 --interval 10 --duration 7200 --speedup 0 --start "$(day 12:00)" \
    --id-prefix "$ID-K" --metrics-port -1 --quiet >"$W/sim2.log" 2>&1
K3=$((K2 + $(wait_unique "${P}truck-telemetry" "^$ID-K" 28800)))
check_eq "a backlog of 28800 more readings is in Kafka" $((K2 + 28800)) "$K3"
# Each kill lands while batches are being stored: after the row count has
# started to grow, at a random moment within the next 0.3 s.  Every batch
# holds its rollups in memory, written twice a second at most: a kill loses
# what is held, and the restart rebuilds it from the records since the
# rollup offsets.
kills=0 busy=0
for i in $(seq 10); do
    start_history --max-batch 5 --flush-ms 20 --rollup-batch 1 --rollup-ms 500 "${STATIC[@]}"
    before=$(rows)
    # A restart first reads again the records since its rollup offsets
    # (stored already: no new row) before rows grow.
    deadline=$((SECONDS + 90))
    while [ "$SECONDS" -lt "$deadline" ]; do [ "$(rows)" -gt "$before" ] && { busy=$((busy + 1)); break; }; sleep 0.1; done
    sleep "$(printf '0.%02d' $((RANDOM % 30)))"
    kill -9 "$hist_pid" 2>/dev/null && kills=$((kills + 1))
    wait "$hist_pid" 2>/dev/null
done
between=$(rows)
check_eq "ten SIGKILLs landed" 10 "$kills"
check_eq "each one while rows were being stored" 10 "$busy"
check "the backlog was not finished yet (stored $between of $K3)" test "$between" -lt "$K3"
start_history --max-batch 2000 "${STATIC[@]}"
check_eq "after the kills: every reading stored" "$K3" "$(wait_until "$K3" 120 rows)"
check_eq "the stored offsets reach the end of the topic" 1 "$(wait_until 1 40 caught_up)"
sleep 1
check_eq "exactly K rows: none twice" "$K3" "$(rows)"
check_eq "rollups count each reading once" "$K3" "$(wait_until "$K3" 20 samples)"
check "held rollups were rebuilt from records read again" test "$(grep -c 'where its held rollups began' "$W/history.log")" -ge 1
rollups >"$W/roll.before"
recompute_all
rollups >"$W/roll.after"
check "rollups after the kills equal the recomputation" cmp -s "$W/roll.before" "$W/roll.after"

# --- 4. PostgreSQL stopped for 60 s ----------------------------------------
# The live dashboard runs beside it: a stopped database must not slow it.
# --max-clients 4: 20 web workers, so that requests held by the database
# would show as a map that no longer answers.
"$FS" dashboard --topic-prefix "$P" --listen "127.0.0.1:$TEST_HTTP_PORT" --group "e2e-hdash-$$" \
    --max-clients 4 --metrics-port -1 >"$W/dashboard.log" 2>&1 &
dash_pid=$!
fleet() { curl -s --max-time 5 "http://127.0.0.1:$TEST_HTTP_PORT/api/fleet" | jq -r '.trucks // 0' 2>/dev/null || echo 0; }
for _ in $(seq 100); do [ "$(fleet)" -gt 0 ] 2>/dev/null && break; sleep 0.2; done
pg_pid=$(cat "$FLEETSYNC_DATA_DIR/run/postgres.pid")
kill -INT "$pg_pid"
for _ in $(seq 100); do kill -0 "$pg_pid" 2>/dev/null || break; sleep 0.2; done
check "PostgreSQL is stopped" bash -c "! kill -0 $pg_pid 2>/dev/null"
t0=$(date +%s)
"$FS" sim --trucks 20 --connections 2 --interval 10 --duration 1800 --speedup 0 --start "$(day 15:00)" \
    --id-prefix "$ID-O" --metrics-port -1 --quiet >"$W/sim3.log" 2>&1
K4=$((K3 + $(wait_unique "${P}truck-telemetry" "^$ID-O" 3600)))
check_eq "the bridge keeps taking readings into Kafka during the outage" $((K3 + 3600)) "$K4"
live=$(curl -s --max-time 5 "http://127.0.0.1:$TEST_HTTP_PORT/api/trucks/$ID-O000001" | jq -r .truck_id 2>/dev/null)
check_eq "the dashboard shows a truck that first reported during the outage" "$ID-O000001" "$live"
track() { curl -s --max-time 10 "http://127.0.0.1:$TEST_HTTP_PORT/api/trucks/$1/track" | jq -r "$2" 2>/dev/null; }
check_eq "its panel's track says the history is not reachable" false "$(track "$ID-O000001" .history)"
sleep 5
check_eq "the sink reports the database down" 0 "$(metric "$MP" 'fleetsync_sink_db_up{group="'"$G"'"}')"
check "it retries with backoff (failed attempts counted)" test "$(metric "$MP" 'fleetsync_sink_db_errors_total{group="'"$G"'"}')" -ge 1
check "it is still running" kill -0 "$hist_pid"
sleep $((60 - ($(date +%s) - t0)))
"$FS" services start >/dev/null 2>&1
check_eq "after the outage: every reading stored" "$K4" "$(wait_until "$K4" 120 rows)"
check_eq "the stored offsets reach the end of the topic" 1 "$(wait_until 1 40 caught_up)"
check_eq "none twice" "$K4" "$(rows)"
# Today's track in the dashboard's panel comes from the stored rows.
now=$(date +%s%3N)
for i in 2 1 0; do
    printf '%s\t{"v":1,"truck_id":"%s","ts":%s,"seq":%s,"lat":48.1%s,"lon":11.5,"speed_kmh":50,"ignition":true}\n' \
        "$ID-T1" "$ID-T1" "$((now - i * 1000))" "$((3 - i))" "$i"
done | kcat -b "$B" -P -t "${P}truck-telemetry" -K '\t'
K4=$((K4 + 3))
check_eq "three readings of today are stored" "$K4" "$(wait_until "$K4" 60 rows)"
check_eq "the dashboard's track of the truck has them, in order" "true 3 48.12 48.1" \
    "$(track "$ID-T1" '"\(.history) \(.points | length) \(.points[0][1]) \(.points[2][1])"')"
# A database that holds the track's query (a lock on telemetry for 15 s) while
# 40 track requests come at once: the map answers while the lock is held, and
# each track request gets its answer from the dashboard's bounds (1 s waiting
# for the connection, 2 s statement timeout: "history unavailable"), not after
# the lock.  How fast: bench/history_limits.sh.
psql "$FLEETSYNC_PG" -qc "BEGIN; LOCK TABLE telemetry IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(15); COMMIT" \
    >/dev/null 2>&1 &
lock_pid=$!
# The lock is still held (granted to the psql above).
locked() { [ "$(q "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation
    WHERE c.relname = 'telemetry' AND l.mode = 'AccessExclusiveLock' AND l.granted")" = 1 ]; }
for _ in $(seq 50); do locked && break; sleep 0.1; done
curls=
for i in $(seq 40); do
    curl -s --max-time 20 -o "$W/track.$i" "http://127.0.0.1:$TEST_HTTP_PORT/api/trucks/$ID-T1/track" &
    curls="$curls $!"
done
sleep 0.5
live=$(curl -s --max-time 20 "http://127.0.0.1:$TEST_HTTP_PORT/api/fleet" | jq -r '.trucks // 0' 2>/dev/null)
map_while_locked() { [ "${live:-0}" -gt 0 ] && locked; }
check "slow database: the map answers during 40 held track requests, while the lock is held" map_while_locked
for p in $curls; do wait "$p"; done
check "slow database: every track request was answered while the lock was held" locked
check_eq "slow database: each answer says the history is unavailable" 40 \
    "$(cat "$W"/track.* | jq -r 'select(.history == false) | .error' 2>/dev/null | grep -c 'history database is')"
wait "$lock_pid"
check_eq "after the lock: the track is back" "true 3" "$(track "$ID-T1" '"\(.history) \(.points | length)"')"
kill -TERM "$dash_pid"; wait "$dash_pid" 2>/dev/null; dash_pid=

# --- another writer moves the stored offsets under the running sink ---------
# As a second instance after a rebalance, or a replay, would: the rows go back
# two records.  The sink stores a batch's offsets only where the row still
# holds what it last saw, so its next batch rolls back, it re-reads from what
# is stored, and the records it reads again are not stored twice.
conflicts() { metric "$MP" 'fleetsync_sink_offset_conflicts_total{group="'"$G"'"}'; }
moved_log() { grep -c "another writer moved the offsets" "$W/history.log"; }
c0=$(conflicts) l0=$(moved_log)
q "UPDATE sink_offsets SET next_offset = greatest(next_offset - 2, 0)
   WHERE group_id = '$G' AND topic = '${P}truck-telemetry'" >/dev/null
now=$(date +%s%3N)
for i in 1 2 3; do
    printf '%s\t{"v":1,"truck_id":"%s","ts":%s,"seq":%s,"lat":48.2,"lon":11.5,"speed_kmh":50,"ignition":true}\n' \
        "$ID-T2" "$ID-T2" "$((now + i))" "$i"
done | kcat -b "$B" -P -t "${P}truck-telemetry" -K '\t'
K4=$((K4 + 3))
check_eq "offsets moved under the sink: the new readings are stored" "$K4" "$(wait_until "$K4" 60 rows)"
check "the sink found the offsets moved and dropped its batch (conflicts $c0 -> $(conflicts))" \
    test "$(conflicts)" -gt "${c0:-0}"
check "and says so in its log" test "$(moved_log)" -gt "$l0"
check_eq "the stored offsets reach the end of the topic" 1 "$(wait_until 1 40 caught_up)"
sleep 1
check_eq "none twice" "$K4" "$(rows)"

# --- 5. a clean stop, then a replay of the last hour -----------------------
kill -TERM "$hist_pid"; rc=0; wait "$hist_pid" || rc=$?; hist_pid=
check_eq "SIGTERM stops history cleanly" 0 "$rc"
rollups >"$W/roll.before"
# Lose some rows, as if an operator deleted them by mistake.
q "DELETE FROM telemetry_recent WHERE truck_id = '$ID-000003'; DELETE FROM telemetry_packed WHERE truck_id = '$ID-000003'" >/dev/null
check_eq "a truck's rows are gone" $((K4 - 360)) "$(rows)"
# The static member stays registered until its session times out (6 s).
rc=0; "$FS" replay --group "$G" --since 1h --topic-prefix "$P" >"$W/replay.out" 2>&1 || rc=$?
check_eq "replay refuses a group that still has a member" 1 "$rc"
for _ in $(seq 30); do
    rc=0; "$FS" replay --group "$G" --since 1h --topic-prefix "$P" >"$W/replay.out" 2>&1 || rc=$?
    [ "$rc" = 0 ] && break
    sleep 1
done
check_eq "replay --since 1h of the stopped group" 0 "$rc"
check "the stored offsets moved back" test "$(stored_end)" -lt "$(topic_end)"
start_history
check_eq "replay restored the missing rows" "$K4" "$(wait_until "$K4" 120 rows)"
check_eq "the stored offsets reach the end again" 1 "$(wait_until 1 60 caught_up)"
for _ in $(seq 40); do [ "$(q "SELECT count(*) FROM rollup_dirty")" = 0 ] && break; sleep 0.5; done
rollups >"$W/roll.after"
check "rollups after the replay are identical to before" cmp -s "$W/roll.before" "$W/roll.after"
check_eq "row count unchanged" "$K4" "$(rows)"
kill -TERM "$hist_pid"; wait "$hist_pid" 2>/dev/null; hist_pid=

# --- 6. a hand-computed fixture, delivered out of order ------------------------
# The readings of tests/e2e/test_report.sh's fixture (2026-11-01, a backfilled
# day: its partition is created on demand).  Even seqs first, then odd ones, so
# half of them arrive late and their hours are recomputed from raw rows.  The
# expected hourly rows were computed by hand (docs/report.md's worked example).
FA="$ID-FA" FB="$ID-FB"
fixture() {   # truck minute seq lat lon speed ignition fuel
    cat <<EOF2
$FA 470 0 48.000 11.0 0 false 50
$FA 480 1 48.000 11.0 0 true 50
$FA 481 2 48.009 11.0 54 true 49.75
$FA 482 3 48.018 11.0 60 true 49.5
$FA 483 4 48.027 11.0 60 true 49.25
$FA 484 5 48.027 11.0 0 true 49.25
$FA 486 6 48.027 11.0 0 true 49.25
$FA 487 7 48.036 11.0 60 true 49
$FA 488 8 48.045 11.0 72 true 48.75
$FA 489 9 48.045 11.0 0 true 48.75
$FA 495 10 48.045 11.0 0 true 48.75
$FA 500 11 48.045 11.0 0 false 48.75
$FA 510 12 48.045 11.0 0 false 48.75
$FA 511 13 48.054 11.0 60 true 48.5
$FA 512 14 48.054 11.0 0 false 48.5
$FA 513 15 48.054 11.0 0 false 48.5
$FA 514 16 48.056 11.0 30 true 48.5
$FA 515 17 48.056 11.0 0 true 48.5
$FA 525 18 48.056 11.0 0 false 48.5
$FA 550 19 48.056 11.0 0 false 48.5
$FA 551 20 48.065 11.0 60 true 48.25
$FA 552 21 48.074 11.0 60 true 48
$FA 553 22 48.074 11.0 0 true 48
$FA 560 23 48.074 11.0 0 false 48
$FB 600 0 50.000 12.0 0 true 80
$FB 601 1 50.015 12.0 90 true 79.75
$FB 602 2 50.030 12.0 90 true 79.5
$FB 603 3 50.030 12.0 0 false 79.5
EOF2
}
as_records() {
    awk '{ printf "%s\t{\"v\":1,\"truck_id\":\"%s\",\"ts\":%.0f,\"seq\":%d,\"lat\":%s,\"lon\":%s,\"speed_kmh\":%s,\"ignition\":%s,\"fuel_pct\":%s}\n",
                  $1, $1, (1793491200 + $2 * 60) * 1000, $3, $4, $5, $6, $7, $8 }'
}
fixture | awk '$3 % 2 == 0' | as_records | kcat -b "$B" -P -t "${P}truck-telemetry" -K '\t'
start_history
wait_until 16 60 q "SELECT count(*) FROM telemetry WHERE truck_id IN ('$FA', '$FB')" >/dev/null
fixture | awk '$3 % 2 == 1' | as_records | kcat -b "$B" -P -t "${P}truck-telemetry" -K '\t'
check_eq "the fixture's 28 readings are stored" 28 \
    "$(wait_until 28 60 q "SELECT count(*) FROM telemetry WHERE truck_id IN ('$FA', '$FB')")"
# (packed and dropped again within seconds: the log tells)
check "its hours' partitions were created on demand" grep -q 'created partition telemetry_recent_20261101_08' "$W/history.log"
for _ in $(seq 40); do [ "$(q "SELECT count(*) FROM rollup_dirty")" = 0 ] && break; sleep 0.5; done
got=$(q "SELECT truck_id, to_char(hour, 'HH24'), samples, round(distance_km::numeric, 9), moving_s, idle_s, parked_s,
                max_speed_kmh, fuel_used_pct FROM telemetry_hourly WHERE truck_id IN ('$FA', '$FB') ORDER BY 1, 2")
want="$FA|07|1|0.000000000|0|0|0|0|0
$FA|08|18|6.226924493|660|1380|1260|72|1.5
$FA|09|5|2.001511444|180|420|0|60|0.5
$FB|10|4|3.335852407|180|0|0|90|0.5"
check_eq "out-of-order readings give the hand-computed hourly rollups" "$want" "$got"
avg=$("$FS" report avg-speed --truck "$FA" --from 2026-11-01 --to 2026-11-02 --csv | tail -1)
check_contains "report avg-speed on them: 8.228 km in 14 min moving = 35.3 km/h" ",35.3" "$avg"
kill -TERM "$hist_pid"; wait "$hist_pid" 2>/dev/null; hist_pid=

# --- 7. retention: old raw partitions go, their rollups stay -------------------
# An hour partition of 2026-11-01 that packing would drop once empty is kept
# here (--pack-grace -1): only retention drops it.
# Both minus the count (wait_until waits for at least its number).
fixture_readings() { echo $(( -$(q "SELECT count(*) FROM telemetry WHERE truck_id IN ('$FA', '$FB')" || echo 1) )); }
old_part() { echo $(( -$(q "SELECT count(*) FROM pg_class WHERE relname = 'telemetry_recent_20261101_23'" || echo 1) )); }
q "CREATE TABLE IF NOT EXISTS telemetry_recent_20261101_23 PARTITION OF telemetry_recent
    FOR VALUES FROM ('2026-11-01 23:00+00') TO ('2026-11-02 00:00+00')" >/dev/null
start_history --retention 400 --pack-grace -1
sleep 2 # its housekeeping, at start
check_eq "with --retention 400 the 2026-11-01 readings stay" -28 "$(fixture_readings)"
check_eq "and its hour partition" -1 "$(old_part)"
kill -TERM "$hist_pid"; wait "$hist_pid" 2>/dev/null; hist_pid=
start_history --retention 2 --pack-grace -1
check_eq "with --retention 2 the 2026-11-01 hour partition is dropped" 0 "$(wait_until 0 20 old_part)"
check_eq "and the day's readings, packed or not" 0 "$(wait_until 0 20 fixture_readings)"
check_eq "its rollups stay" 4 "$(q "SELECT count(*) FROM telemetry_hourly WHERE truck_id IN ('$FA', '$FB')")"
check "the current hour's partition stays" test "$(q "SELECT count(*) FROM pg_class WHERE relname =
    'telemetry_recent_' || to_char(now() AT TIME ZONE 'UTC', 'YYYYMMDD_HH24')")" = 1
kill -TERM "$hist_pid"; wait "$hist_pid" 2>/dev/null; hist_pid=
kill -TERM "$bridge_pid"; wait "$bridge_pid" 2>/dev/null; bridge_pid=
grep -q 'ERROR' "$W/history.log" && sed 's/^/# /' "$W/history.log" | grep ERROR | head -5
done_testing
