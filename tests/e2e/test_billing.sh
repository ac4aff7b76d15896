#!/bin/bash
# The billing pipeline against the real Kafka and PostgreSQL: a hand-computed
# fixture (a midnight crossing, a GPS jump out and back, idling, repeats, a
# late reading, a bad record) produced with kcat into the suite's own topic;
# billing_daily equals the hand numbers; a backlog consumed through SIGKILLs
# gives the same totals as the formula; a replay into the middle of a day
# changes nothing and a replay to the start of the day recomputes that day
# (updated_at moves, totals stay, the day before is left alone); report
# invoice in table, CSV and JSON; usage errors exit 2.
#
# Replay and billing's recomputed days go by Kafka record timestamps, which
# kcat cannot set: the records are produced by build/tools/kafka_produce,
# each stamped with its reading's ts, as the bridge stamps the time it received
# it.  The suite's day (DAY) is fixed when it starts: the UTC day before
# (inside the topic's 7-day retention, and never ahead of the broker's clock),
# so nothing depends on the time of day it runs at or on a midnight passing
# while it runs.
. "$(dirname "$0")/lib.sh"

KAFKA_PRODUCE=$(dirname "$FS")/tools/kafka_produce   # built by make test (make tools)
[ -x "$KAFKA_PRODUCE" ] || { echo "not ok - $KAFKA_PRODUCE is missing: run make tools"; exit 1; }
P="e2ebill$$-"                  # topic prefix: this suite's own topics
T="${P}truck-telemetry"
ID="E2EB$$"                     # truck id prefix
G="e2e-billing-$$"              # consumer group (offsets in sink_offsets)
B=$FLEETSYNC_BROKERS
MP=$((TEST_METRICS_BASE + 9))     # billing's metrics (no other suite uses +9)
W=$(mktemp -d /tmp/fleetsync-e2e-billing.XXXXXX)
STATIC=(-X "group.instance.id=e2e-billing-$$" -X session.timeout.ms=6000)
bill_pid=
cleanup() {
    [ -n "$bill_pid" ] && kill -9 "$bill_pid" 2>/dev/null
    keep_logs e2e-billing "$W/billing.log"
    rm -rf "$W"
}
trap cleanup EXIT

q() { psql "$FLEETSYNC_PG" -XAtqc "$1" 2>/dev/null; }
start_billing() {
    "$FS" billing --topic-prefix "$P" --group "$G" --metrics-port "$MP" "${STATIC[@]}" "$@" >>"$W/billing.log" 2>&1 &
    bill_pid=$!
}
# Stops billing with SIGTERM; its exit status in $stop_rc.  Called in this
# shell, not in $(...): wait needs its own child.
stop_billing() { kill -TERM "$bill_pid"; wait "$bill_pid"; stop_rc=$?; bill_pid=; }
# replay ARGS...: a static member stays in the group for its session timeout
# after it left, and replay refuses a group with members: retry until then.
replay() {
    local out rc
    for _ in $(seq 40); do
        out=$("$FS" replay --topic-prefix "$P" --group "$G" "$@" 2>&1); rc=$?
        case "$out" in *"refused: group"*"is running"*) sleep 0.5 ;; *) break ;; esac
    done
    printf '%s\n' "$out"
    return $rc
}
topic_end() {
    local a=() p
    for p in 0 1 2 3 4 5; do a+=(-t "$T:$p:-1"); done
    kcat -b "$B" -Q "${a[@]}" 2>/dev/null | awk '{ s += $NF } END { print s + 0 }'
}
stored_end() { q "SELECT coalesce(sum(next_offset), 0) FROM sink_offsets WHERE group_id = '$G' AND topic = '$T'"; }
wait_caught_up() {   # SECONDS
    local end
    end=$(topic_end)
    for _ in $(seq $(($1 * 5))); do
        [ "$(stored_end)" = "$end" ] && return 0
        sleep 0.2
    done
    return 1
}
# Every value of the suite's rows, rounded, to compare runs.
snapshot() {
    q "SELECT truck_id, day, round(distance_km::numeric, 6), round(engine_hours::numeric, 9),
              round(idle_hours::numeric, 9), max_speed_kmh FROM billing_daily
       WHERE truck_id LIKE '$ID-%' ORDER BY 1, 2"
}
updated() { q "SELECT updated_at FROM billing_daily WHERE truck_id = '$1' AND day = '$2'"; }
moved() {   # TRUCK DAY OLD_UPDATED_AT: the row was written after OLD
    [ "$(q "SELECT updated_at > '$3'::timestamptz FROM billing_daily WHERE truck_id = '$1' AND day = '$2'")" = t ]
}

# The suite's day, read once: every reading and record timestamp below is
# explicit, relative to its midnight.
DAY=$(date -u -d "$(date -u +%Y-%m-%d) - 1 day" +%Y-%m-%d)
DAY0=$(date -u -d "$DAY - 1 day" +%Y-%m-%d)                  # the day before it
MID=$(( $(date -u -d "$DAY 00:00:00Z" +%s) * 1000 ))      # DAY's midnight, ms
# produce FILE: FILE's "KEY|VALUE" lines, each record stamped with the
# reading's ts (a record that is not a reading: the ts before it).
produce() {
    awk '{ if (match($0, /"ts":[0-9]+/)) ts = substr($0, RSTART + 5, RLENGTH - 5); print ts "|" $0 }' "$1" >"$1.ts" &&
        "$KAFKA_PRODUCE" "$B" "$T" "$1.ts"
}
KM_PER_DEG=$(awk 'BEGIN { printf "%.12f", 6371008.8 * atan2(0, -1) / 180 / 1000 }')

"$FS" services start --topic-prefix "$P" >/dev/null 2>&1
check "topics with the suite's prefix exist" topics_ready

# --- usage -------------------------------------------------------------------
help=$("$FS" billing --help); check_eq "billing --help exits 0" 0 $?
check_contains "billing --help names the group and the table" "fleetsync-billing" "$help"
check_contains "billing --help shows the invoice command" "fleetsync report invoice --month" "$help"
check_eq "billing with a bad --max-batch exits 2" 2 "$("$FS" billing --max-batch 0 >/dev/null 2>&1; echo $?)"
inv_rc() { "$FS" report invoice "$@" >/dev/null 2>&1; echo $?; }
check_eq "invoice --help exits 0" 0 "$(inv_rc --help)"
check_eq "invoice: a bad month exits 2" 2 "$(inv_rc --month 2026-13 --rate-per-km 1 --rate-per-engine-hour 1)"
check_eq "invoice: a month that is a day exits 2" 2 "$(inv_rc --month 2026-11-01 --rate-per-km 1 --rate-per-engine-hour 1)"
check_eq "invoice: a negative rate exits 2" 2 "$(inv_rc --month 2026-11 --rate-per-km -0.5 --rate-per-engine-hour 1)"
check_eq "invoice: a rate that is not a number exits 2" 2 "$(inv_rc --month 2026-11 --rate-per-km x --rate-per-engine-hour 1)"
check_eq "invoice: a missing rate exits 2" 2 "$(inv_rc --month 2026-11 --rate-per-km 1)"
check_eq "invoice: a bad format exits 2" 2 "$(inv_rc --month 2026-11 --rate-per-km 1 --rate-per-engine-hour 1 --format xml)"
check_contains "invoice: the error says what a month is" "YYYY-MM" \
    "$("$FS" report invoice --month 11/2026 --rate-per-km 1 --rate-per-engine-hour 1 2>&1)"
check_contains "other reports still reach history's report" "usage: fleetsync report" "$("$FS" report --help 2>&1)"

# --- the fixture ---------------------------------------------------------------
# reading ID TS_MS SEQ LAT SPEED IGNITION -> "ID|json" (key|value for kcat -K'|')
reading() { printf '%s|{"v":1,"truck_id":"%s","ts":%s,"seq":%s,"lat":%s,"lon":11,"speed_kmh":%s,"ignition":%s}\n' \
    "$1" "$1" "$2" "$3" "$4" "$5" "$6"; }
A="$ID-A" BT="$ID-B"
{
    # A: every 60 s from 23:50:30 to 00:09:30, 0.01 degrees north a minute,
    # engine on, 60 km/h: 19 intervals, the one over midnight split in half.
    for k in $(seq 0 19); do
        reading "$A" $((MID - 570000 + k * 60000)) "$k" "$(awk -v k="$k" 'BEGIN { printf "%.2f", 48 + k / 100 }')" 60 true
        [ "$k" = 3 ] || [ "$k" = 4 ] && reading "$A" $((MID - 570000 + k * 60000)) "$k" "$(awk -v k="$k" 'BEGIN { printf "%.2f", 48 + k / 100 }')" 60 true
    done
    # B: from 01:00, 50 km/h, reading 5 is a fix 4 degrees (445 km) off;
    # then idling 5 minutes, then the engine off.
    for k in $(seq 0 17); do
        lat=$(awk -v k="$k" 'BEGIN { printf "%.2f", k <= 10 ? 47 + k / 100 : 47.10 }')
        [ "$k" = 5 ] && lat=51.00
        sp=50; [ "$k" -ge 11 ] && sp=0
        ign=true; [ "$k" -ge 16 ] && ign=false
        reading "$BT" $((MID + 3600000 + k * 60000)) "$k" "$lat" "$sp" "$ign"
        [ "$k" = 12 ] && reading "$BT" $((MID + 3600000 + k * 60000)) "$k" "$lat" "$sp" "$ign"
    done
    reading "$BT" $((MID + 3600000 + 510000)) 1000 47.085 50 true     # late: older than B's last
    echo "$BT|{not json"                                               # refused, counted
} >"$W/fixture.txt"
produce "$W/fixture.txt"
check_eq "the fixture is in Kafka (20 + 2 + 18 + 1 + 1 + 1 records)" 43 "$(topic_end)"

# Batches of 5 records, the state written at most every 3 s: the first batch
# is written at once, the next ones are folded in memory and written
# together, with their offsets, when the interval is over or billing has
# caught up (no record for a second).
t_start=$(date +%s%N)
start_billing --max-batch 5 --state-ms 3000 --state-readings 0
check "billing consumed the fixture" wait_caught_up 60
t_ms=$((($(date +%s%N) - t_start) / 1000000))
flushes=$(metric "$MP" fleetsync_billing_state_flushes_total)
check "the state was written at most once per 3 s interval, the first batch and once caught up ($flushes flushes in $t_ms ms)" \
    test "${flushes:-99}" -ge 1 -a "${flushes:-99}" -le $((t_ms / 3000 + 2))
check "most of the fixture's 9 batches were folded in memory, not written ($(metric "$MP" fleetsync_billing_batches_held_total) held)" \
    test "$(metric "$MP" fleetsync_billing_batches_held_total)" -ge 5
check_eq "one transaction per state flush" "$flushes" "$(metric "$MP" "fleetsync_sink_batches_total{group=\"$G\"}")"
check_eq "flush metrics: one observation per flush" "$flushes" "$(metric "$MP" fleetsync_billing_flush_trucks_count)"
check_eq "flush metrics: the trucks written add up to A and B once per flush they were folded in" 0 \
    "$(awk -v s="$(metric "$MP" fleetsync_billing_flush_trucks_sum)" -v f="$flushes" 'BEGIN { print (s >= 2 && s <= 2 * f) ? 0 : 1 }')"
# Hand numbers: one degree of latitude is R * pi / 180 = $KM_PER_DEG km.
near() {   # TRUCK DAY COLUMN EXPECTED TOLERANCE
    local v
    v=$(q "SELECT $3 FROM billing_daily WHERE truck_id = '$1' AND day = '$2'")
    awk -v v="$v" -v e="$4" -v t="$5" 'BEGIN { d = v - e; if (v == "" || d > t || d < -t) exit 1 }' ||
        { echo "$1 $2 $3 = '$v', expected $4 +- $5"; return 1; }
}
check "A, the day before: 9.5 intervals of 0.01 degrees (within 1 m)" near "$A" "$DAY0" distance_km \
    "$(awk -v k="$KM_PER_DEG" 'BEGIN { printf "%.9f", 0.095 * k }')" 0.001
check "A, the day before: 570 s of engine" near "$A" "$DAY0" engine_hours "$(awk 'BEGIN { printf "%.12f", 570 / 3600 }')" 1e-9
check "A, the day before: no idling" near "$A" "$DAY0" idle_hours 0 1e-12
check "A, the day before: max speed 60" near "$A" "$DAY0" max_speed_kmh 60 0
check "A, the day: the other half of the midnight interval, 0.095 degrees" near "$A" "$DAY" distance_km \
    "$(awk -v k="$KM_PER_DEG" 'BEGIN { printf "%.9f", 0.095 * k }')" 0.001
check "A, the day: 570 s of engine" near "$A" "$DAY" engine_hours "$(awk 'BEGIN { printf "%.12f", 570 / 3600 }')" 1e-9
# B: 4 x 0.01 + (jump: 0) + 0.02 from the last good fix + 4 x 0.01 = 0.10 degrees;
# engine 16 intervals with the engine on = 960 s; idle 4 + 1 intervals = 300 s.
check "B: the GPS jump out and back adds no distance: 0.10 degrees" near "$BT" "$DAY" distance_km \
    "$(awk -v k="$KM_PER_DEG" 'BEGIN { printf "%.9f", 0.10 * k }')" 0.001
check "B: 960 s of engine" near "$BT" "$DAY" engine_hours "$(awk 'BEGIN { printf "%.12f", 960 / 3600 }')" 1e-9
check "B: 300 s idle" near "$BT" "$DAY" idle_hours "$(awk 'BEGIN { printf "%.12f", 300 / 3600 }')" 1e-9
check "B: max speed 50" near "$BT" "$DAY" max_speed_kmh 50 0
check_eq "three rows for the fixture" 3 "$(q "SELECT count(*) FROM billing_daily WHERE truck_id LIKE '$ID-%'")"
check_eq "metrics: 38 readings folded" 38 "$(metric "$MP" fleetsync_billing_readings_total)"
check_eq "metrics: 3 repeats skipped" 3 "$(metric "$MP" fleetsync_billing_duplicates_total)"
check_eq "metrics: 1 late reading skipped" 1 "$(metric "$MP" fleetsync_billing_late_total)"
check_eq "metrics: 1 GPS jump" 1 "$(metric "$MP" fleetsync_billing_gps_jumps_total)"
check_eq "metrics: 1 bad record refused" 1 "$(metric "$MP" 'fleetsync_billing_rejected_total{reason="invalid_json"}')"
stop_billing; check_eq "billing stops cleanly on SIGTERM (exit 0)" 0 "$stop_rc"

# --- a backlog through SIGKILLs ---------------------------------------------------
NT=400 NR=150   # trucks, readings each: from 02:00, 60 s apart, 0.01 degrees a minute
awk -v id="$ID-L" -v mid="$MID" -v nt="$NT" -v nr="$NR" 'BEGIN {
    for (k = 0; k < nr; k++) for (t = 0; t < nt; t++)
        printf "%s%03d|{\"v\":1,\"truck_id\":\"%s%03d\",\"ts\":%.0f,\"seq\":%d,\"lat\":%.2f,\"lon\":%.3f,\"speed_kmh\":60,\"ignition\":true}\n",
            id, t, id, t, mid + 7200000 + k * 60000, k, 40 + k / 100, 5 + t / 1000
}' >"$W/backlog.txt"
produce "$W/backlog.txt"
check_eq "the backlog is in Kafka" $((43 + NT * NR)) "$(topic_end)"
# The state written every 3 s: after each restart, once billing's first
# transaction is stored (its first batch of up to 6000 records), it is
# killed 50-650 ms later, while the batches folded since are held in memory
# with their offsets not stored: they are read again after the restart,
# never lost or counted twice.
total=$(topic_end) kills=0 kill_at=
for _ in $(seq 40); do
    from=$(stored_end)
    start_billing --max-batch 6000 --state-ms 3000 --state-readings 0
    for _ in $(seq 200); do now_at=$(stored_end); [ "$now_at" != "$from" ] && break; sleep 0.05; done
    [ "$now_at" = "$total" ] && break
    sleep "$(printf "0.%02d" $((RANDOM % 60 + 5)))"
    kill -9 "$bill_pid"; wait "$bill_pid" 2>/dev/null; kills=$((kills + 1)); kill_at+=" $(stored_end)"
done
check "billing caught up after $kills SIGKILLs" wait_caught_up 120
check "at least 3 SIGKILLs hit the backlog (records stored at each:$kill_at)" test "$kills" -ge 3
# Each backlog truck: 149 intervals of 0.01 degrees and 60 s.
check_eq "every backlog truck has 1.49 degrees (within 1 m) and 8940 s of engine" "$NT" \
    "$(q "SELECT count(*) FROM billing_daily WHERE truck_id LIKE '$ID-L%' AND day = '$DAY'
          AND abs(distance_km - 1.49 * $KM_PER_DEG) < 0.001 AND abs(engine_hours - 8940 / 3600.0) < 1e-9
          AND idle_hours = 0 AND max_speed_kmh = 60")"
check_eq "no other rows" $((NT + 3)) "$(q "SELECT count(*) FROM billing_daily WHERE truck_id LIKE '$ID-%'")"
before=$(snapshot)
stop_billing; check_eq "billing stops cleanly after the kills" 0 "$stop_rc"

# --- replay into the middle of the day: nothing is recomputed, nothing added ----
# 01:30 lies between the fixture's last record and the backlog's first.
up_a_y=$(updated "$A" "$DAY0") up_a_t=$(updated "$A" "$DAY") up_b=$(updated "$BT" "$DAY")
out=$(replay --at "${DAY}T01:30:00Z"); check_eq "replay --at the middle of the day exits 0" 0 $?
check_contains "replay moved the stored offsets" "messages to reprocess" "$out"
start_billing --state-ms 2000
check "billing read the replayed records" wait_caught_up 60
check_eq "totals are the same after the mid-day replay" "$before" "$(snapshot)"
check_eq "A's and B's days were not recomputed (their partitions were not re-read from the day's start)" \
    "$up_a_y $up_a_t $up_b" "$(updated "$A" "$DAY0") $(updated "$A" "$DAY") $(updated "$BT" "$DAY")"
check "the mid-day replay was seen as a rewind" test "$(metric "$MP" fleetsync_billing_rewinds_total)" -ge 1
stop_billing; check_eq "billing stops cleanly again" 0 "$stop_rc"

# --- replay from the evening before: the day is recomputed, the day before kept --
# 23:55 of the day before: A's partition is re-read from its reading of 23:55:30
# (the middle of that day, which is left alone), every other one from its start.
out=$(replay --at "${DAY0}T23:55:00Z"); check_eq "replay --at 23:55 of the day before exits 0" 0 $?
check_contains "everything from 23:55 on is re-read (all but A's first 5 readings and 2 repeats)" \
    "$((43 + NT * NR - 7)) messages to reprocess" "$out"
start_billing --state-ms 2000
check "billing read everything again" wait_caught_up 90
check_eq "totals are the same after the replay (overwritten, not doubled)" "$before" "$(snapshot)"
check_eq "metrics: every row of the day was recomputed" $((NT + 2)) "$(metric "$MP" fleetsync_billing_days_recomputed_total)"
check "A's day moved (recomputed)" moved "$A" "$DAY" "$up_a_t"
check "B's day moved (recomputed)" moved "$BT" "$DAY" "$up_b"
check_eq "A's day before was left alone (re-read in part: its readings from 23:55:30 are skipped)" "$up_a_y" "$(updated "$A" "$DAY0")"
stop_billing; check_eq "billing stops cleanly" 0 "$stop_rc"

# --- the invoice -------------------------------------------------------------------
MONTH=${DAY:0:7}
inv() { "$FS" report invoice --month "$MONTH" --rate-per-km 0.35 --rate-per-engine-hour 12 "$@"; }
# B: 11.120 km x 0.35 + 0.267 h x 12 = 3.892 + 3.204 = 7.096 -> 7.10
out=$(inv --truck "$BT" --format csv); check_eq "invoice --csv exits 0" 0 $?
check_eq "CSV: heading, B's line, the total" \
    "truck_id,days,distance_km,engine_hours,idle_hours,max_speed_kmh,amount
$BT,1,11.120,0.267,0.083,50.0,7.10
TOTAL,1,11.120,0.267,0.083,50.0,7.10" "$out"
out=$(inv --truck "$BT" --format json); check_eq "invoice --json exits 0" 0 $?
check_eq "JSON: B's amount" "7.1" "$(printf '%s' "$out" | jq -r '.trucks[0].amount')"
check_eq "JSON: the total equals B's line" "11.12 0.267 7.1" "$(printf '%s' "$out" | jq -r '"\(.total.distance_km) \(.total.engine_hours) \(.total.amount)"')"
out=$(inv --truck "$BT"); check_eq "invoice table exits 0" 0 $?
check_contains "table: B's line" "$(printf '%-20s %5s %12s %10s %10s %8s %12s' "$BT" 1 11.120 0.267 0.083 50.0 7.10)" "$out"
# Every line of the month: amount = km x 0.35 + h x 12 (rounded to cents); the
# total adds the lines.
csv=$(inv --csv)
check_eq "every CSV line's amount is km x rate + engine hours x rate" "" "$(printf '%s\n' "$csv" | awk -F, 'NR > 1 && $1 != "TOTAL" {
    a = sprintf("%.2f", $3 * 0.35 + $4 * 12 + 1e-9); if (a != $7) print $0 " (expected " a ")" }')"
check_eq "the total line adds the lines' amounts" 0 "$(printf '%s\n' "$csv" | awk -F, 'NR > 1 && $1 != "TOTAL" {
    s += $7 } $1 == "TOTAL" { t = $7 } END { print (sprintf("%.2f", s) == t) ? 0 : 1 }')"
check_eq "the month has the suite's trucks (A, B, $NT backlog trucks)" $((NT + 2)) \
    "$(printf '%s\n' "$csv" | grep -c "^$ID-")"
empty=$("$FS" report invoice --month 1999-01 --rate-per-km 1 --rate-per-engine-hour 1 --json)
check_eq "a month without data: no lines, a zero total" "0 0" \
    "$(printf '%s' "$empty" | jq -r '"\(.trucks | length) \(.total.amount)"')"

# --- progress shows while the state is held -------------------------------------
# 20 readings of a new truck, one every 0.25 s (never a second without a record,
# so after billing's first transaction nothing is written until they end): the
# readings folded count as they are folded, the readings written only with a flush.
start_billing --state-ms 600000 --state-readings 0 --flush-ms 100
for _ in $(seq 50); do [ -n "$(metric "$MP" fleetsync_billing_readings_folded_total)" ] && break; sleep 0.1; done
(for k in $(seq 0 19); do
    printf '%s-F|{"v":1,"truck_id":"%s-F","ts":%s,"seq":%d,"lat":45.%02d,"lon":7.0,"speed_kmh":30,"ignition":true}\n' \
        "$ID" "$ID" $((MID + 18000000 + k * 10000)) "$k" "$k"
    sleep 0.25
done) | kcat -P -b "$B" -t "$T" -K '|' -X linger.ms=0 &
trickle=$!
folded=0 written=0
for _ in $(seq 100); do
    folded=$(metric "$MP" fleetsync_billing_readings_folded_total) written=$(metric "$MP" fleetsync_billing_readings_total)
    [ "${folded:-0}" -gt "${written:-0}" ] 2>/dev/null && break
    sleep 0.05
done
check "readings folded are counted before their state is written ($folded folded, $written written, $(metric "$MP" fleetsync_billing_state_flushes_total) flushes)" \
    test "${folded:-0}" -gt "${written:-0}"
wait "$trickle"
check "billing wrote the trickle once it ended" wait_caught_up 30
check_eq "all 20 readings folded and written" "20 20" \
    "$(metric "$MP" fleetsync_billing_readings_folded_total) $(metric "$MP" fleetsync_billing_readings_total)"
stop_billing; check_eq "billing stops cleanly after the trickle" 0 "$stop_rc"

# --- folding goes on while a state flush commits ----------------------------------
# A flush stages its rows (COPY), then applies them and commits on a thread of
# its own while billing folds the next batches.  A lock on billing_daily holds
# the flush at its upsert: billing must fold what comes meanwhile, and what it
# folds then must be neither lost nor counted twice, whether the flush then
# commits and billing is killed, or the flush fails and billing is killed.
NM=100   # trucks, 5 parts of 20 readings each: from 04:00, 60 s apart, 0.01 degrees a minute
part() { # K0 K1 FILE: readings k0..k1-1 of every truck
    awk -v id="$ID-M" -v mid="$MID" -v nt="$NM" -v k0="$1" -v k1="$2" 'BEGIN {
        for (k = k0; k < k1; k++) for (t = 0; t < nt; t++)
            printf "%s%03d|{\"v\":1,\"truck_id\":\"%s%03d\",\"ts\":%.0f,\"seq\":%d,\"lat\":%.2f,\"lon\":%.3f,\"speed_kmh\":60,\"ignition\":true}\n",
                id, t, id, t, mid + 14400000 + k * 60000, k, 41 + k / 100, 6 + t / 1000
    }' >"$3"
}
lock_billing_daily() {
    PGAPPNAME="e2e-lock-$$" psql "$FLEETSYNC_PG" -Xqc \
        "BEGIN; LOCK TABLE billing_daily IN SHARE MODE; SELECT pg_sleep(60); COMMIT" >/dev/null 2>&1 &
    lock_pid=$!
    for _ in $(seq 50); do
        [ "$(q "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid)
                WHERE a.application_name = 'e2e-lock-$$' AND l.mode = 'ShareLock' AND l.granted")" = 1 ] && break
        sleep 0.1
    done
}
unlock_billing_daily() {
    q "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'e2e-lock-$$'" >/dev/null
    wait "$lock_pid" 2>/dev/null
}
flush_waits() { # a backend of billing waits for the lock
    for _ in $(seq 100); do
        [ "$(q "SELECT count(*) FROM pg_stat_activity WHERE application_name = '$G' AND wait_event_type = 'Lock'")" -ge 1 ] &&
            return 0
        sleep 0.1
    done
    return 1
}
wait_folded() { # N: billing's folded readings reach N (10 s at most)
    for _ in $(seq 100); do
        [ "$(metric "$MP" fleetsync_billing_readings_folded_total)" = "$1" ] && return 0
        sleep 0.1
    done
    return 1
}
m_totals() { # READINGS: every truck of the part has READINGS-1 intervals of 0.01 degrees and 60 s
    q "SELECT count(*) FROM billing_daily WHERE truck_id LIKE '$ID-M%' AND day = '$DAY'
         AND abs(distance_km - ($1 - 1) * 0.01 * $KM_PER_DEG) < 0.001
         AND abs(engine_hours - ($1 - 1) * 60 / 3600.0) < 1e-9 AND idle_hours = 0"
}
start_billing --max-batch 500 --state-ms 600000 --state-readings 0 --flush-ms 100
printf '%s-N|{"v":1,"truck_id":"%s-N","ts":%s,"seq":0,"lat":41,"lon":6,"speed_kmh":0,"ignition":false}\n' \
    "$ID" "$ID" $((MID + 14000000)) >"$W/m0.txt"
produce "$W/m0.txt"
wait_caught_up 20 # the first transaction (a batch of its own)
lock_billing_daily
part 0 20 "$W/m1.txt"; produce "$W/m1.txt"
check "the flush of the first 20 readings a truck waits for the lock" flush_waits
held_at=$(stored_end)
part 20 40 "$W/m2.txt"; produce "$W/m2.txt"
check "billing folds the next 20 readings a truck while that flush waits" wait_folded $((1 + 40 * NM))
check_eq "nothing of them is stored while the flush waits" "$held_at" "$(stored_end)"
# The flush commits while the next 20 readings a truck trickle in (a batch is
# being gathered when it stores its offsets: they must be its own records'),
# then billing is killed.
part 40 60 "$W/m3.txt"
(split -l 50 "$W/m3.txt" "$W/m3."; for f in "$W"/m3.??; do cat "$f"; sleep 0.05; done) |
    kcat -P -b "$B" -t "$T" -K '|' -X linger.ms=0 &
trickle=$!
sleep 0.3
unlock_billing_daily
for _ in $(seq 100); do [ "$(stored_end)" != "$held_at" ] && break; sleep 0.02; done
wait "$trickle"
kill -9 "$bill_pid"; wait "$bill_pid" 2>/dev/null
killed_at=$(stored_end)
check "the flush committed: $((killed_at - held_at)) of $((60 * NM)) records stored at the SIGKILL" \
    test "$killed_at" -gt "$held_at" -a "$killed_at" -le "$((held_at + 60 * NM))"
start_billing --max-batch 500 --state-ms 600000 --state-readings 0 --flush-ms 100
check "billing caught up after the SIGKILL" wait_caught_up 30
check_eq "every truck has its 60 readings' totals (none lost or counted twice)" "$NM" "$(m_totals 60)"
# The flush fails (its backend is terminated while it waits): what billing
# folded meanwhile is dropped with it and read again.
f0=$(metric "$MP" fleetsync_billing_readings_folded_total)
lock_billing_daily
part 60 80 "$W/m4.txt"; produce "$W/m4.txt"
flush_waits
part 80 100 "$W/m5.txt"; produce "$W/m5.txt"
check "billing folds while the next flush waits" wait_folded $((f0 + 40 * NM))
q "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = '$G' AND wait_event_type = 'Lock'" \
    >/dev/null
for _ in $(seq 100); do
    [ "$(metric "$MP" fleetsync_billing_readings_folded_total)" -gt $((f0 + 40 * NM)) ] && break
    sleep 0.1
done
check "after the failed flush billing reads again what it had folded ($(metric "$MP" fleetsync_billing_readings_folded_total) folded)" \
    test "$(metric "$MP" fleetsync_billing_readings_folded_total)" -gt $((f0 + 40 * NM))
kill -9 "$bill_pid"; wait "$bill_pid" 2>/dev/null
unlock_billing_daily
start_billing --max-batch 500 --state-ms 600000 --state-readings 0 --flush-ms 100
check "billing caught up after the failed flush and a SIGKILL" wait_caught_up 30
check_eq "every truck has its 100 readings' totals (none lost or counted twice)" "$NM" "$(m_totals 100)"
stop_billing; check_eq "billing stops cleanly" 0 "$stop_rc"

done_testing
