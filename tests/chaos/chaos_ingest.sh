#!/bin/bash
# The ingest's fault suite (docs/ingest.md, "Chaos").  On services of its own
# (data dir and ports CHAOS_PORT_OFFSET above the test block, default 100),
# since it stops their Kafka: the simulator publishes QoS 1 readings to
# `fleetsync ingest` while
#
#   (a) the ingest is SIGKILLed 10 times during a 100,000-reading run, and
#       restarted at once each time;
#   (b) Kafka is stopped for 60 s mid-run (SIGTERM, then `services start`):
#       the ingest's acknowledged counter does not move meanwhile (no truck
#       gets a PUBACK), everything arrives once Kafka is back;
#   (c) `--workers 3`, one worker SIGKILLed mid-run: its trucks reconnect to
#       the others, the parent starts it again.
#
# After each: every reading the simulator generates (its --dry-run with the
# same arguments) is in truck-telemetry, compared as (truck_id, ts, seq)
# sets; repeats (what Kafka had before a PUBACK was lost) only as the same
# (truck_id, ts, seq) with the same value.  Prints a table: part, readings,
# records, repeats, lost.
#
# Environment: CHAOS_INGEST_READINGS (default 100000, part a),
# CHAOS_INGEST_OUTAGE_S (default 60, part b), CHAOS_PORT_OFFSET (default 100).
. "$(dirname "$0")/lib.sh"

OFF=${CHAOS_PORT_OFFSET:-100}
N=${CHAOS_INGEST_READINGS:-100000}
OUTAGE=${CHAOS_INGEST_OUTAGE_S:-60}
W=$(mktemp -d /tmp/fleetsync-chaos-ingest.XXXXXX)
chmod 755 "$W"
own_binary
D=$W/stack                                        # the services' data dir
A=$W/accounts                                     # the ingest's and simulator's (trucks, secret)
private_services "$OFF" "$D"
mkdir -p "$A/run" && chmod 755 "$A"
B=$FLEETSYNC_BROKERS
IPORT=$((TEST_MQTT_PORT + OFF + 7))               # the ingest
MB=$((TEST_METRICS_BASE + OFF + 7))               # its metrics (workers: MB, MB+1, MB+2)
echo "mqtt=$IPORT" >"$A/run/ports"                # the ingest stands as the accounts' broker
ingest_pid=
sim_pid=
ROWS=()
cleanup() {
    [ -n "$sim_pid" ] && kill -9 "$sim_pid" 2>/dev/null
    [ -n "$ingest_pid" ] && kill -9 "$ingest_pid" 2>/dev/null   # workers follow (PR_SET_PDEATHSIG)
    wait 2>/dev/null
    "$FS" services stop >/dev/null 2>&1
    keep_logs chaos-ingest "$W"/*.log "$W"/*.out
    rm -rf "$W"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# start_ingest [args]: the ingest in the background (appending to ingest.log);
# waits until it says it listens.  Sets ingest_pid.
start_ingest() {
    start_logged ingest_pid "$W/ingest.log" "ingest listening" 300 \
        "$FS" ingest --data-dir "$A" --listen "127.0.0.1:$IPORT" --metrics-port "$MB" --quiet "$@"
}
# triples PREFIX: "truck_id ts seq" of every record of trucks PREFIX* in
# truck-telemetry, one a line (repeats kept); values into $W/values.
triples() {
    kcat -b "$B" -C -t truck-telemetry -o beginning -e -q -f '%s\n' 2>/dev/null | grep "\"truck_id\":\"$1" |
        tee "$W/values" | jq -r '"\(.truck_id) \(.ts) \(.seq)"'
}
# expected SIM_ARGS...: the readings the simulator generates, as triples.
expected() {
    "$FS" sim "$@" --dry-run --print --speedup 0 --metrics-port -1 --quiet 2>/dev/null |
        sed -n 's/^fleet\/trucks\/[^/]*\/telemetry //p' | jq -r '"\(.truck_id) \(.ts) \(.seq)"' | sort -u
}
# verify PART PREFIX SIM_ARGS...: Kafka holds every generated reading (waits up
# to 120 s for the last ones); repeats are the same record.  Adds a row.
verify() {
    local part=$1 pfx=$2 want got recs uniq vals lost
    shift 2
    expected "$@" >"$W/want.txt"
    want=$(wc -l <"$W/want.txt")
    for _ in $(seq 60); do
        triples "$pfx" >"$W/got.txt"
        got=$(sort -u "$W/got.txt" | comm -12 - "$W/want.txt" | wc -l)
        [ "$got" -ge "$want" ] && break
        sleep 2
    done
    recs=$(wc -l <"$W/got.txt")
    uniq=$(sort -u "$W/got.txt" | wc -l)
    vals=$(sort -u "$W/values" | wc -l)
    lost=$((want - got))
    check "$part: every one of the $want readings generated is in truck-telemetry" test "$want" -gt 0 -a "$lost" -eq 0
    check_eq "$part: nothing else of these trucks is there" "$want" "$uniq"
    check_eq "$part: repeats only as the same (truck_id, ts, seq) with the same value ($((recs - uniq)) repeats)" \
        "$uniq" "$vals"
    ROWS+=("$(printf '%-36s %9s %9s %8s %6s' "$part" "$want" "$recs" "$((recs - uniq))" "$lost")")
}

log "starting private services (ports + $OFF)"
check "private services start (Kafka on $B)" "$FS" services start --timeout 180
"$FS" trucks add --data-dir "$A" --count 100 --id-prefix "CIA$$-" >/dev/null 2>&1
"$FS" trucks add --data-dir "$A" --count 100 --id-prefix "CIB$$-" >/dev/null 2>&1
"$FS" trucks add --data-dir "$A" --count 60 --id-prefix "CIC$$-" >/dev/null 2>&1
check "260 accounts" test "$(wc -l <"$A/mqtt/passwd")" -ge 260
START=$(date -u -d '-1 day' +%Y-%m-%dT%H:00:00Z)
SIM=(--data-dir "$A" --mqtt "mqtt://127.0.0.1:$IPORT" --metrics-port -1 --quiet --qos 1)

# --- (a) the ingest SIGKILLed 10 times -------------------------------------------
# 100 trucks, a reading every 10 simulated s, N readings; --speedup 200: about
# 2,000 readings a second, about 50 s of run for the 10 kills.
A_ARGS=(--trucks 100 --interval 10 --seed 11 --start "$START" --duration $((N / 100 * 10)) --id-prefix "CIA$$-")
start_ingest; check_eq "(a) the ingest starts" 0 $?
"$FS" sim "${SIM[@]}" "${A_ARGS[@]}" --speedup 200 --drain-timeout 60 >"$W/sim-a.out" 2>&1 &
sim_pid=$!
kills=0
for k in $(seq 1 10); do
    sleep "$((RANDOM % 2 + 1)).$((RANDOM % 10))"
    # each kill once this ingest has acknowledged some (the trucks are back)
    for _ in $(seq 50); do [ "$(metric "$MB" fleetsync_ingest_acknowledged_total)" -ge 500 ] 2>/dev/null && break; sleep 0.2; done
    kill -0 "$sim_pid" 2>/dev/null || break
    log "SIGKILL $k of the ingest (pid $ingest_pid), $(metric "$MB" fleetsync_ingest_acknowledged_total) acknowledged"
    kill -9 "$ingest_pid"; wait "$ingest_pid" 2>/dev/null
    kills=$k
    start_ingest || echo "# restart $k failed"
done
check_eq "(a) 10 SIGKILLs while the simulator ran" 10 "$kills"
wait "$sim_pid"; rc=$?; sim_pid=
check_eq "(a) the simulator delivered everything (exit 0: $(grep -o 'published.*' "$W/sim-a.out" | head -1))" 0 "$rc"
verify "(a) ingest SIGKILL x10" "CIA$$-" "${A_ARGS[@]}"

# --- (b) Kafka stopped for $OUTAGE s ----------------------------------------------
# 100 trucks, a reading a second each, in real time; Kafka stopped 15 s in.
B_START=$(date -u +%Y-%m-%dT%H:%M:%SZ)
B_ARGS=(--trucks 100 --interval 1 --seed 12 --start "$B_START" --duration $((OUTAGE + 45)) --id-prefix "CIB$$-")
"$FS" sim "${SIM[@]}" "${B_ARGS[@]}" --speedup 1 --drain-timeout 120 >"$W/sim-b.out" 2>&1 &
sim_pid=$!
sleep 15
kafka_pid=$(service_pid kafka)
log "stopping Kafka (pid $kafka_pid) for $OUTAGE s"
kill -TERM "$kafka_pid"
wait_gone "$kafka_pid"
sleep 3   # the last answers of the broker's shutdown are in
a0=$(metric "$MB" fleetsync_ingest_acknowledged_total) r0=$(metric "$MB" fleetsync_ingest_readings_total)
sleep $((OUTAGE - 3))
a1=$(metric "$MB" fleetsync_ingest_acknowledged_total) r1=$(metric "$MB" fleetsync_ingest_readings_total)
check "(b) Kafka down: the ingest kept taking readings ($r0 -> $r1 handed to librdkafka)" test "$r1" -gt "$r0"
check_eq "(b) Kafka down: nothing acknowledged meanwhile, so no PUBACK" "$a0" "$a1"
check "(b) Kafka starts again after $OUTAGE s" "$FS" services start --timeout 180
wait "$sim_pid"; rc=$?; sim_pid=
check_eq "(b) the simulator delivered everything (exit 0: $(grep -o 'published.*' "$W/sim-b.out" | head -1))" 0 "$rc"
verify "(b) Kafka stopped ${OUTAGE} s" "CIB$$-" "${B_ARGS[@]}"
kill -TERM "$ingest_pid"; wait "$ingest_pid"; check_eq "the ingest stops cleanly" 0 $?
ingest_pid=

# --- (c) --workers 3, one worker SIGKILLed ---------------------------------------------
C_ARGS=(--trucks 60 --interval 10 --seed 13 --start "$START" --duration 5000 --id-prefix "CIC$$-")
start_ingest --workers 3; check_eq "(c) the ingest starts with --workers 3" 0 $?
for _ in $(seq 50); do [ "$(pgrep -c -P "$ingest_pid")" -ge 3 ] && break; sleep 0.2; done
"$FS" sim "${SIM[@]}" "${C_ARGS[@]}" --speedup 100 --drain-timeout 60 >"$W/sim-c.out" 2>&1 &
sim_pid=$!
sleep 10
conns=()
for i in 0 1 2; do conns+=("$(metric $((MB + i)) fleetsync_ingest_connections)"); done
check "(c) the 60 trucks are spread over the 3 workers (${conns[*]})" test "$((conns[0] + conns[1] + conns[2]))" -eq 60 \
    -a "${conns[0]}" -gt 0 -a "${conns[1]}" -gt 0 -a "${conns[2]}" -gt 0
victim=$(pgrep -P "$ingest_pid" | head -1)
vi=$(sed -n "s/.*worker \([0-9]\) started, pid $victim\$/\1/p" "$W/ingest.log" | head -1)
logins=()
for i in 0 1 2; do logins+=("$(metric $((MB + i)) fleetsync_ingest_connects_total)"); done
log "SIGKILL of worker $vi (pid $victim), which holds ${conns[$vi]} trucks"
kill -9 "$victim"
sleep 5
# New logins since: on the two others, and on the worker started again
# (its counters start from 0).
again=0
for i in 0 1 2; do
    l=$(metric $((MB + i)) fleetsync_ingest_connects_total)
    if [ "$i" = "$vi" ]; then again=$((again + ${l:-0})); else again=$((again + ${l:-0} - logins[i])); fi
done
check "(c) its ${conns[$vi]} trucks logged in again ($again new logins over the workers)" test "$again" -ge "${conns[$vi]}"
wait "$sim_pid"; rc=$?; sim_pid=
check_eq "(c) the simulator delivered everything (exit 0: $(grep -o 'published.*' "$W/sim-c.out" | head -1))" 0 "$rc"
check_contains "(c) the parent started the killed worker again" "killed by signal 9" "$(cat "$W/ingest.log")"
check "(c) 3 workers again" test "$(pgrep -c -P "$ingest_pid")" -eq 3
verify "(c) --workers 3, one SIGKILLed" "CIC$$-" "${C_ARGS[@]}"
kill -TERM "$ingest_pid"; wait "$ingest_pid"; check_eq "the workers stop cleanly" 0 $?
ingest_pid=

echo "# $(printf '%-36s %9s %9s %8s %6s' part readings records repeats lost)"
for r in "${ROWS[@]}"; do echo "# $r"; done
"$FS" services stop >/dev/null 2>&1
check_eq "the private services stop, nothing of them left" "" "$(pgrep -af -- "$D" | grep -v pgrep)"
done_testing
