#!/bin/bash
# The PostgreSQL sinks (history, billing) against records that PostgreSQL
# would refuse or read differently, produced with kcat into the suite's own
# topics, between good ones:
#   1. trucks named NULL, null and Null: stored, found again after a
#      restart (a repeat is a repeat, not a second row or a reset billing
#      state), billed like a control truck with the same readings; ids with
#      characters array literals treat specially are refused as bad_truck_id.
#   2. poison records: a number that underflows (1e-400) is stored as 0; an
#      alert whose started_ms lies past year 9999 is dead-lettered by the
#      sink's check; a reading, an alert and a billing state that a CHECK
#      constraint of the database refuses (SQLSTATE 23514) are isolated by
#      bisection and dead-lettered; every good record around them is stored,
#      the offsets reach the end of the topics, and a restart dead-letters
#      nothing twice.
#   3. the same ids through MQTT and the bridge: NULL and null stored and
#      billed; the others dead-lettered by the bridge as bad_truck_id.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/bridge_lib.sh"

P="e2esink$$-"                  # topic prefix: this suite's own topics
T="${P}truck-telemetry" A="${P}truck-alerts" D="${P}truck-telemetry-dlq"
ID="E2ES$$"                     # truck id prefix of the control and poison trucks
GH="e2e-sink-history-$$" GB="e2e-sink-billing-$$"
B=$FLEETSYNC_BROKERS
MH=$((TEST_METRICS_BASE + 30)) MB=$((TEST_METRICS_BASE + 31))
C="e2e_poison_$$"               # the suite's CHECK constraints
W=$(mktemp -d /tmp/fleetsync-e2e-sink.XXXXXX)
hist_pid= bill_pid= bridge_pid=
q() { psql "$FLEETSYNC_PG" -XAtqc "$1" 2>/dev/null; }
NULLS="'NULL', 'null', 'Null'"
forget_null_trucks() {
    for t in telemetry_recent telemetry_packed telemetry_hourly rollup_dirty billing_daily billing_trucks billing_day_end; do
        q "DELETE FROM $t WHERE truck_id IN ($NULLS)" >/dev/null
    done
}
cleanup() {
    [ -n "$bridge_pid" ] && kill -9 "$bridge_pid" 2>/dev/null
    [ -n "$hist_pid" ] && kill -9 "$hist_pid" 2>/dev/null
    [ -n "$bill_pid" ] && kill -9 "$bill_pid" 2>/dev/null
    for t in telemetry_recent alerts billing_trucks; do q "ALTER TABLE $t DROP CONSTRAINT IF EXISTS $C" >/dev/null; done
    forget_null_trucks
    keep_logs e2e-sink "$W/history.log" "$W/billing.log"
    rm -rf "$W"
}
trap cleanup EXIT

start_history() {
    "$FS" history --topic-prefix "$P" --group "$GH" --metrics-port "$MH" --flush-ms 100 >>"$W/history.log" 2>&1 &
    hist_pid=$!
}
start_billing() {
    "$FS" billing --topic-prefix "$P" --group "$GB" --metrics-port "$MB" --flush-ms 100 >>"$W/billing.log" 2>&1 &
    bill_pid=$!
}
# SIGTERM: the last batch is stored, exit 0.  In this shell, not $(...).
stop_both() {
    kill -TERM "$hist_pid" "$bill_pid"
    wait "$hist_pid"; hist_rc=$?
    wait "$bill_pid"; bill_rc=$?
    hist_pid= bill_pid=
}
# reading ID TS SEQ LAT [EXTRA]: one telemetry record, key TAB value.
reading() {
    printf '%s\t{"v":1,"truck_id":"%s","ts":%s,"seq":%s,"lat":%s,"lon":11.5,"speed_kmh":40,"ignition":true%s}\n' \
        "$1" "$1" "$2" "$3" "$4" "${5:-}"
}
topic_end() {
    local a=() p
    for p in 0 1 2 3 4 5; do a+=(-t "$1:$p:-1"); done
    kcat -b "$B" -Q "${a[@]}" 2>/dev/null | awk '{ s += $NF } END { print s + 0 }'
}
stored_end() { q "SELECT coalesce(sum(next_offset), 0) FROM sink_offsets WHERE group_id = '$1' AND topic = '$2'"; }
# caught_up GROUP TOPIC: 1 once the group's stored offsets reach the topic's end.
caught_up() { [ "$(stored_end "$1" "$2")" = "$(topic_end "$2")" ] && echo 1 || echo 0; }
# Counts are 0 until history has created the schema.
count() { local n; n=$(q "SELECT count(*) FROM telemetry WHERE $1"); echo "${n:-0}"; }
rows_of() { count "truck_id = '$1'"; }
rows_null() { count "truck_id IN ($NULLS)"; }
dlq() { kcat -b "$B" -C -t "$D" -o beginning -e -q -f '%h|%s\n' 2>/dev/null; }
dlq_count() { dlq | grep -c "sink=$1" || true; }
dead() { metric "$1" "fleetsync_sink_dead_letters_total{group=\"$2\",reason=\"$3\"}"; }

"$FS" services start --topic-prefix "$P" >/dev/null 2>&1
check "topics with the suite's prefix exist, the DLQ among them" \
    bash -c "topics() { kcat -b '$B' -L 2>/dev/null; }; for _ in \$(seq 50); do
        topics | grep -q 'topic \"$D\"' && topics | grep -q 'topic \"$T\" with 6' && exit 0; sleep 0.2; done; exit 1"
forget_null_trucks

# --- 1. trucks named NULL -------------------------------------------------------
# Three readings each of NULL, null, Null and a control truck, 10 s and
# 0.001 degrees apart at 40 km/h, ten minutes ago.
T0=$(( $(date +%s%3N) - 600000 ))
for id in NULL null Null "$ID-ctl"; do
    for k in 0 1 2; do reading "$id" $((T0 + k * 10000)) $((k + 1)) "48.10$k"; done
done >"$W/first"
# Ids that break the truck id rule, each with a character an array or COPY
# literal reads specially: refused by the readers (bad_truck_id), never sent.
printf '%s\n' 'x	{"v":1,"truck_id":"a,b","ts":'"$T0"',"seq":1,"lat":1,"lon":1,"speed_kmh":1,"ignition":true}' \
    'x	{"v":1,"truck_id":"{x}","ts":'"$T0"',"seq":1,"lat":1,"lon":1,"speed_kmh":1,"ignition":true}' \
    'x	{"v":1,"truck_id":"\"q\"","ts":'"$T0"',"seq":1,"lat":1,"lon":1,"speed_kmh":1,"ignition":true}' \
    'x	{"v":1,"truck_id":"a\\b","ts":'"$T0"',"seq":1,"lat":1,"lon":1,"speed_kmh":1,"ignition":true}' >>"$W/first"
kcat -b "$B" -P -t "$T" -K '\t' -l "$W/first"
start_history
start_billing
check_eq "history stores the readings of NULL, null and Null" 9 "$(wait_until 9 60 rows_null)"
check_eq "history caught up" 1 "$(wait_until 1 40 caught_up "$GH" "$T")"
check_eq "billing caught up" 1 "$(wait_until 1 40 caught_up "$GB" "$T")"
check_eq "history refuses the 4 ids with , { } \" \\ as bad_truck_id" 4 \
    "$(metric "$MH" 'fleetsync_history_rejected_total{reason="bad_truck_id"}')"
check_eq "billing refuses them too" 4 "$(metric "$MB" 'fleetsync_billing_rejected_total{reason="bad_truck_id"}')"
check_eq "no row of a refused id" 0 "$(count "truck_id IN ('a,b', '{x}', '\"q\"', 'a\\b')")"
stop_both
check_eq "history and billing stop cleanly" "0 0" "$hist_rc $bill_rc"

# After the restart the caches are empty: each truck's state is looked up
# by id.  A repeat of the second reading (late for billing, a duplicate for
# history), then a fourth reading.
for id in NULL null Null "$ID-ctl"; do
    reading "$id" $((T0 + 10000)) 2 48.101
    reading "$id" $((T0 + 30000)) 4 48.103
done | kcat -b "$B" -P -t "$T" -K '\t'
start_history
start_billing
check_eq "after a restart: the new readings of NULL, null, Null are stored" 12 "$(wait_until 12 60 rows_null)"
check_eq "history caught up after the restart" 1 "$(wait_until 1 40 caught_up "$GH" "$T")"
check_eq "billing caught up after the restart" 1 "$(wait_until 1 40 caught_up "$GB" "$T")"
sleep 1
check_eq "every truck has its 4 rows, the repeat not twice" "NULL|4 Null|4 null|4" \
    "$(q "SELECT truck_id, count(*) FROM telemetry WHERE truck_id IN ($NULLS) GROUP BY 1 ORDER BY truck_id COLLATE \"C\"" | tr '\n' ' ' | sed 's/ $//')"
check_eq "the repeats are counted as repeats (4 trucks)" 4 "$(metric "$MH" fleetsync_history_duplicates_total)"
check_eq "history had no database error" 0 "$(metric "$MH" "fleetsync_sink_db_errors_total{group=\"$GH\"}")"
check_eq "rollups count 4 samples per truck" "4 4 4" \
    "$(q "SELECT sum(samples) FROM telemetry_hourly WHERE truck_id IN ($NULLS) GROUP BY truck_id ORDER BY 1" | tr '\n' ' ' | sed 's/ $//')"
check_eq "billing finds the stored states: the repeat is late for each truck" 4 \
    "$(metric "$MB" fleetsync_billing_late_total)"
ctl=$(q "SELECT round(sum(distance_km)::numeric, 6) || '|' || round(sum(engine_hours)::numeric, 6) FROM billing_daily WHERE truck_id = '$ID-ctl'")
check_eq "the control truck drove 3 intervals of 0.111 km and 10 s" "0.334|0.008" \
    "$(q "SELECT round(sum(distance_km)::numeric, 3) || '|' || round(sum(engine_hours)::numeric, 3) FROM billing_daily WHERE truck_id = '$ID-ctl'")"
for id in NULL null Null; do
    check_eq "billing of truck '$id' equals the control truck's (km|engine h)" "$ctl" \
        "$(q "SELECT round(sum(distance_km)::numeric, 6) || '|' || round(sum(engine_hours)::numeric, 6) FROM billing_daily WHERE truck_id = '$id'")"
done
check_eq "billing_trucks holds each truck's 4th reading as its last" "3" \
    "$(q "SELECT count(*) FROM billing_trucks WHERE truck_id IN ($NULLS) AND last_seq = 4 AND has_last")"

# --- 2. poison records ----------------------------------------------------------
# Readings are stored in telemetry_recent (telemetry is the view over it and the
# packed hours).
for t in telemetry_recent alerts billing_trucks; do q "ALTER TABLE $t DROP CONSTRAINT IF EXISTS $C" >/dev/null; done
q "ALTER TABLE telemetry_recent ADD CONSTRAINT $C CHECK (odometer_km IS DISTINCT FROM 4242.5)" >/dev/null
q "ALTER TABLE alerts ADD CONSTRAINT $C CHECK (rule <> 'poison$$')" >/dev/null
q "ALTER TABLE billing_trucks ADD CONSTRAINT $C CHECK (truck_id <> '$ID-pb')" >/dev/null
check_eq "the suite's CHECK constraints are in place" 3 \
    "$(q "SELECT count(*) FROM pg_constraint WHERE conname = '$C' AND conrelid IN
          ('telemetry_recent'::regclass, 'alerts'::regclass, 'billing_trucks'::regclass)")"
T1=$(( $(date +%s%3N) - 300000 ))
{
    reading "$ID-p1" "$T1" 1 48.2
    reading "$ID-p2" "$T1" 1 1e-400                      # underflows: 0 in C, refused by float8's input
    reading "$ID-p3" "$T1" 1 48.3 ',"odometer_km":4242.5' # the database's CHECK refuses it
    reading "$ID-pb" "$T1" 1 48.4                        # billing's state of this truck is refused
    reading "$ID-p1" $((T1 + 10000)) 2 48.201
} | kcat -b "$B" -P -t "$T" -K '\t'
now=$(date +%s%3N)
alert() {  # alert ID RULE STARTED_MS
    printf '%s\t{"alert_id":"%s","state":"raised","truck_id":"%s-p1","rule":"%s","started_ms":%s}\n' \
        "$ID-p1" "$1" "$ID" "$2" "$3"
}
{
    alert "$ID-a1" overspeed "$now"
    alert "$ID-a2" overspeed 99999999999999999           # year 3170843: past what PostgreSQL stores
    alert "$ID-a3" "poison$$" "$now"                     # the database's CHECK refuses it
    printf '%s\t{"broken":true}\n' "$ID-p1"               # not an alert: counted and skipped, not a dead letter
    alert "$ID-a4" overspeed "$now"
} | kcat -b "$B" -P -t "$A" -K '\t'

check_eq "history stores the good readings after the poison ones" 2 "$(wait_until 2 60 rows_of "$ID-p1")"
check_eq "history caught up on truck-telemetry" 1 "$(wait_until 1 60 caught_up "$GH" "$T")"
check_eq "history caught up on truck-alerts" 1 "$(wait_until 1 60 caught_up "$GH" "$A")"
check_eq "billing caught up" 1 "$(wait_until 1 60 caught_up "$GB" "$T")"
check_eq "1e-400 is stored as 0" "1|0" "$(q "SELECT count(*), max(lat) FROM telemetry WHERE truck_id = '$ID-p2'")"
check_eq "the refused reading is not stored" 0 "$(rows_of "$ID-p3")"
check_eq "the reading billing refuses is stored by history" 1 "$(rows_of "$ID-pb")"
check_eq "the good alerts are stored, the poison ones not" "$ID-a1 $ID-a4" \
    "$(q "SELECT alert_id FROM alerts WHERE alert_id LIKE '$ID-a%' ORDER BY 1" | tr '\n' ' ' | sed 's/ $//')"
check_eq "billing bills the trucks around the one it refuses" "$ID-p1 $ID-p2 $ID-p3" \
    "$(q "SELECT DISTINCT truck_id FROM billing_daily WHERE truck_id LIKE '$ID-p%' ORDER BY 1" | tr '\n' ' ' | sed 's/ $//')"
check_eq "no billing state of the refused truck" 0 "$(q "SELECT count(*) FROM billing_trucks WHERE truck_id = '$ID-pb'")"

dlq >"$W/dlq"
check_eq "3 dead letters of history" 3 "$(grep -c "sink=$GH" "$W/dlq")"
check_eq "1 dead letter of billing" 1 "$(grep -c "sink=$GB" "$W/dlq")"
l=$(grep "sink=$GH" "$W/dlq" | grep "\"$ID-p3\"")
check_contains "the refused reading is in the DLQ with the database's reason" "error=database_refused" "$l"
check_contains "and its SQLSTATE" "sqlstate=23514" "$l"
check_contains "and the constraint's name" "$C" "$l"
check_contains "and where it came from" "source_topic=$T" "$l"
l=$(grep "sink=$GH" "$W/dlq" | grep "\"$ID-a2\"")
check_contains "the alert past year 9999 is dead-lettered by the check" "error=out_of_range" "$l"
check_contains "naming the field" "started_ms" "$l"
check_contains "from truck-alerts" "source_topic=$A" "$l"
l=$(grep "sink=$GH" "$W/dlq" | grep "\"$ID-a3\"")
check_contains "the alert the database refuses is dead-lettered" "sqlstate=23514" "$l"
l=$(grep "sink=$GB" "$W/dlq")
check_contains "billing's dead letter is the reading of the refused truck" "\"truck_id\":\"$ID-pb\"" "$l"
check_contains "with the database's reason" "error=database_refused" "$l"
check_eq "history counts 1 dead letter of its check" 1 "$(dead "$MH" "$GH" out_of_range)"
check_eq "history counts 2 dead letters the database refused" 2 "$(dead "$MH" "$GH" database_refused)"
check_eq "billing counts 1" 1 "$(dead "$MB" "$GB" database_refused)"
check_eq "a record that is not an alert is counted once, not dead-lettered" 1 \
    "$(metric "$MH" fleetsync_history_alert_errors_total)"

# Exactly once: the dead letters' offsets were stored with the batches; a
# restart reads nothing again and dead-letters nothing twice.
stop_both
check_eq "both stop cleanly" "0 0" "$hist_rc $bill_rc"
start_history
start_billing
reading "$ID-p1" $((T1 + 20000)) 3 48.202 | kcat -b "$B" -P -t "$T" -K '\t'
check_eq "after a restart the next reading is stored" 3 "$(wait_until 3 60 rows_of "$ID-p1")"
check_eq "history caught up" 1 "$(wait_until 1 40 caught_up "$GH" "$T")"
check_eq "billing caught up" 1 "$(wait_until 1 40 caught_up "$GB" "$T")"
sleep 1
check_eq "no dead letter twice" "3 1" "$(dlq_count "$GH") $(dlq_count "$GB")"
check_eq "no row twice" "3 1 1 0" "$(rows_of "$ID-p1") $(rows_of "$ID-p2") $(rows_of "$ID-pb") $(rows_of "$ID-p3")"

# --- 3. through MQTT and the bridge ------------------------------------------------
start_bridge bridge --client-id "e2e-sbridge-$$" --metrics-port $((TEST_METRICS_BASE + 32))
check_eq "the bridge starts" 0 $?
for id in NULL null; do
    printf '{"v":1,"truck_id":"%s","ts":%s,"seq":5,"lat":48.104,"lon":11.5,"speed_kmh":40,"ignition":true}\n' \
        "$id" $((T0 + 40000)) | pub_lines "$id"
done
for id in 'a,b' '{x}' '"q"' 'a\b'; do
    printf '{"v":1,"truck_id":"x","ts":%s,"seq":1,"lat":1,"lon":1,"speed_kmh":1,"ignition":true}\n' "$T0" | pub_lines "$id"
done
check_eq "through the bridge: the 5th readings of NULL and null are stored" 14 "$(wait_until 14 60 rows_null)"
check_eq "history caught up" 1 "$(wait_until 1 40 caught_up "$GH" "$T")"
check_eq "billing caught up" 1 "$(wait_until 1 40 caught_up "$GB" "$T")"
check_eq "billing holds the 5th reading as the last of NULL and null" 2 \
    "$(q "SELECT count(*) FROM billing_trucks WHERE truck_id IN ('NULL', 'null') AND last_seq = 5")"
check_eq "and billed the interval once (0.111 km more than the control)" "0.445 0.445" \
    "$(q "SELECT round(sum(distance_km)::numeric, 3) FROM billing_daily WHERE truck_id IN ('NULL', 'null') GROUP BY truck_id" | tr '\n' ' ' | sed 's/ $//')"
check_eq "the bridge dead-letters the 4 other ids as bad_truck_id" 4 \
    "$(wait_until 4 20 bash -c "kcat -b '$B' -C -t '$D' -o beginning -e -q -f '%h\n' 2>/dev/null | grep -c 'error=bad_truck_id'")"
check_eq "history had no database error" 0 "$(metric "$MH" "fleetsync_sink_db_errors_total{group=\"$GH\"}")"
kill -TERM "$bridge_pid"; wait "$bridge_pid"; bridge_pid=
stop_both
done_testing
