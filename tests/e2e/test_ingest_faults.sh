#!/bin/bash
# fleetsync ingest while Kafka does not answer.  On a private stack of its
# own (data dir and ports 120 above the suites' block), since its Kafka is
# stopped with SIGSTOP mid-stream: the shared stack's Kafka keeps serving the
# other suites.  QoS 1 PUBLISHes sent while Kafka is stopped get no PUBACK
# and make no record; once Kafka runs again every one is in Kafka and the
# PUBACKs come, in the order of the PUBLISHes.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/bridge_lib.sh"

ID="E2EIF$$"
W=$(mktemp -d /tmp/fleetsync-e2e-ingestf.XXXXXX)
D=$W/stack
KPORT=$((TEST_KAFKA_PORT + 120)) QPORT=$((TEST_MQTT_PORT + 120)) GPORT=$((TEST_PG_PORT + 120))
IPORT=$((TEST_MQTT_PORT + 127)) MPORT=$((TEST_METRICS_BASE + 127))
B=127.0.0.1:$KPORT
ENV=(FLEETSYNC_DATA_DIR="$D" FLEETSYNC_BROKERS="$B" FLEETSYNC_MQTT="mqtt://127.0.0.1:$QPORT"
     FLEETSYNC_PG="host=127.0.0.1 port=$GPORT dbname=fleetsync user=fleetsync")
priv() { env "${ENV[@]}" "$FS" "$@"; }  # a command on the private stack (env execs it: same pid)
ingest_pid=
kafka_pid=
cleanup() {
    [ -n "$kafka_pid" ] && kill -CONT "$kafka_pid" 2>/dev/null
    [ -n "$ingest_pid" ] && kill -9 "$ingest_pid" 2>/dev/null
    priv services stop >/dev/null 2>&1
    [ -n "${KEEP:-}" ] || rm -rf "$W"
}
trap cleanup EXIT

mkdir -p "$D" && chmod 755 "$W" "$D"
priv services start --timeout 120 >"$W/start.out" 2>&1
check_eq "a private stack starts" 0 $?
T="$ID-000001"
priv trucks add --print "$T" >"$W/creds" 2>/dev/null
PW=$(awk -v id="$T" '$1 == id { print $2 }' "$W/creds")
env "${ENV[@]}" "$FS" ingest --listen "127.0.0.1:$IPORT" --metrics-port "$MPORT" --quiet >"$W/ingest.log" 2>&1 &
ingest_pid=$!
for _ in $(seq 150); do grep -q "ingest listening" "$W/ingest.log" && break; sleep 0.2; done
check "ingest starts on it" grep -q "ingest listening" "$W/ingest.log"
ipub() { timeout -k 5 60 mosquitto_pub -p "$IPORT" -u "$T" -P "$PW" -i "$T" -q 1 -t "fleet/trucks/$T/telemetry" "$@"; }
count() {  # count FROM TO: readings of seq FROM..TO in truck-telemetry
    kcat -b "$B" -C -t truck-telemetry -o beginning -e -q -f '%s\n' 2>/dev/null |
        awk -v f="$1" -v t="$2" '{ if (match($0, /"seq":[0-9]+/)) { s = substr($0, RSTART + 6, RLENGTH - 6) + 0; if (s >= f && s <= t) n++ } } END { print n + 0 }'
}
pubacks() { grep -c 'received PUBACK' "$1"; }

lines "$T" 0 5 | ipub -l
check_eq "with Kafka up, 5 readings are acknowledged" 5 "$(wait_until 5 60 count 0 4)"

kafka_pid=$(cat "$D/run/kafka.pid")
kill -STOP "$kafka_pid"
# stdbuf: mosquitto_pub's -d lines as they happen, not when it exits
lines "$T" 100 8 | stdbuf -oL -eL timeout -k 5 60 mosquitto_pub -p "$IPORT" -u "$T" -P "$PW" -i "$T" -q 1 \
    -t "fleet/trucks/$T/telemetry" -l -d >"$W/held.log" 2>&1 &
held=$!
sleep 5
check_eq "Kafka stopped: the 8 PUBLISHes were sent" 8 "$(grep -c 'sending PUBLISH' "$W/held.log")"
check_eq "no PUBACK while Kafka has not acknowledged" 0 "$(pubacks "$W/held.log")"
kill -CONT "$kafka_pid"; kafka_pid=
for _ in $(seq 60); do [ "$(pubacks "$W/held.log")" -ge 8 ] && break; sleep 0.5; done
kill "$held" 2>/dev/null; wait "$held" 2>/dev/null
check_eq "Kafka back: the 8 PUBACKs come" 8 "$(pubacks "$W/held.log")"
sent=$(sed -n 's/.*sending PUBLISH (d[01], q1, r0, m\([0-9]*\),.*/\1/p' "$W/held.log" | tr '\n' ' ')
acked=$(sed -n 's/.*received PUBACK (Mid: \([0-9]*\).*/\1/p' "$W/held.log" | tr '\n' ' ')
check_eq "in the order of the PUBLISHes" "$sent" "$acked"
check_eq "and the 8 readings are in truck-telemetry" 8 "$(wait_until 8 20 count 100 107)"
m=$(curl -s "http://127.0.0.1:$MPORT/metrics")
check_contains "every record handed to Kafka was acknowledged" "fleetsync_ingest_acknowledged_total 13" "$m"

kill -TERM "$ingest_pid"; wait "$ingest_pid"; rc=$?; ingest_pid=
check_eq "SIGTERM stops the ingest cleanly" 0 "$rc"
priv services stop >/dev/null 2>&1
check_eq "the private stack stops, nothing of it left" "" "$(pgrep -af -- "$D" | grep -v pgrep)"
done_testing
