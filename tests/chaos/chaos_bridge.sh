#!/bin/bash
# The bridge SIGKILLed 10 times at random moments during a 100,000-message
# run, restarted each time; then Kafka stopped for 60 s mid-run.  Every
# reading must be in Kafka; repeats only as the same (truck_id, ts, seq).
. "$(dirname "$0")/../e2e/lib.sh"
. "$(dirname "$0")/../e2e/bridge_lib.sh"

P="chaos$$-"
ID="CHB$$"
W=$(mktemp -d /tmp/fleetsync-chaos-bridge.XXXXXX)
B=$FLEETSYNC_BROKERS
ARGS=(--client-id "chaos-bridge-$$" --metrics-port 19101 --session-expiry 600)
cleanup() { [ -n "${bridge_pid:-}" ] && kill -9 "$bridge_pid" 2>/dev/null; rm -rf "$W"; }
trap cleanup EXIT
"$FS" services start --topic-prefix "$P" >/dev/null 2>&1
check "topics exist" topics_ready

start_bridge bridge "${ARGS[@]}"
pubs=()
for t in $(seq -w 1 20); do lines "$ID-0000$t" 0 5000 | pub_lines "$ID-0000$t" & pubs+=($!); done
for k in $(seq 1 10); do
    sleep "0.$((RANDOM % 9 + 1))"
    kill -9 "$bridge_pid"; wait "$bridge_pid" 2>/dev/null
    subscribed_before=$k start_bridge bridge "${ARGS[@]}" || echo "# restart $k failed"
done
wait "${pubs[@]}"
check_eq "100000 readings survive 10 SIGKILLs" 100000 \
    "$(wait_unique "${P}truck-telemetry" "^$ID-" 100000 240)"
total=$(count_topic "${P}truck-telemetry" "^$ID-")
echo "# $total records for 100000 readings"

# Kafka away for 60 s while 20 trucks send 10 readings a second each.
( for i in $(seq 0 89); do for t in $(seq -w 1 20); do lines "$ID-K000$t" $((i * 10)) 10 | pub_lines "$ID-K000$t"; done; sleep 1; done ) &
pub=$!
sleep 10
kafka_pid=$(cat "$FLEETSYNC_DATA_DIR/run/kafka.pid")
kill -TERM "$kafka_pid"
while kill -0 "$kafka_pid" 2>/dev/null; do sleep 0.2; done
sleep 60
check "Kafka starts again after 60 s" "$FS" services start
wait "$pub"
check_eq "18000 readings arrive across a 60 s Kafka outage" 18000 \
    "$(wait_unique "${P}truck-telemetry" "^$ID-K" 18000 240)"
kill -TERM "$bridge_pid"; wait "$bridge_pid"; check_eq "clean stop" 0 $?
bridge_pid=
done_testing
