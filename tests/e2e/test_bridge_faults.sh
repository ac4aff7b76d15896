#!/bin/bash
# The bridge under faults, with the real Mosquitto and Kafka:
#  - a fatal idempotent-producer error (raised through librdkafka's test API)
#    is recovered without losing a message;
#  - Kafka stopped mid-stream and started again: nothing lost, the spool took
#    the load and drained, the metrics show the episode;
#  - two bridges share a subscription and split the load; one is SIGKILLed
#    and restarted: nothing lost.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/bridge_lib.sh"

P="e2efault$$-"
ID="E2EF$$"
W=$(mktemp -d /tmp/fleetsync-e2e-bfault.XXXXXX)
B=$FLEETSYNC_BROKERS
pids=()
cleanup() { for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done; rm -rf "$W"; }
trap cleanup EXIT

"$FS" services start --topic-prefix "$P" >/dev/null 2>&1
check "topics with the suite's prefix exist" topics_ready

# 1. Fatal producer error after 500 acknowledgements.
start_bridge fatal --client-id "e2e-fatal-$$" --metrics-port $((TEST_METRICS_BASE + 2)) --session-expiry 300 --test-fatal-after 500
pids+=("$bridge_pid")
check_eq "bridge with an injected fatal error starts" 0 $?
lines "$ID-F00001" 0 3000 | pub_lines "$ID-F00001"
check_eq "all 3000 readings arrive across the fatal error" 3000 \
    "$(wait_unique "${P}truck-telemetry" "^$ID-F00001 " 3000)"
check_contains "the producer was recreated" "Kafka producer recreated" "$(cat "$W/fatal.log")"
check_eq "metrics count the recreation" 1 "$(metric $((TEST_METRICS_BASE + 2)) fleetsync_bridge_producer_recreated_total)"
kill -TERM "$bridge_pid"; wait "$bridge_pid"
check_eq "it still stops cleanly" 0 $?

# 2. Kafka away while trucks keep sending, with a spool budget small enough
#    that the bridge has to pause its MQTT reads (the broker queues).
start_bridge outage --client-id "e2e-outage-$$" --metrics-port $((TEST_METRICS_BASE + 2)) --session-expiry 300 --spool-budget 40K \
    --keepalive 5
pids+=("$bridge_pid")
( for i in $(seq 0 29); do lines "$ID-K00001" $((i * 100)) 100 | pub_lines "$ID-K00001"; sleep 1; done ) &
pub=$!
sleep 4
kafka_pid=$(cat "$FLEETSYNC_DATA_DIR/run/kafka.pid")
kill -TERM "$kafka_pid"
while kill -0 "$kafka_pid" 2>/dev/null; do sleep 0.2; done
# Away long enough for the pause to outlast three keep-alives of 5 s.
sleep 16
spool_during=$(metric $((TEST_METRICS_BASE + 2)) fleetsync_bridge_spool_bytes)
echo "# spool during the outage: $spool_during bytes"
check "the spool holds the messages while Kafka is away" test "${spool_during%.*}" -gt 0
check_eq "past the budget the bridge pauses MQTT reads" 1 "$(metric $((TEST_METRICS_BASE + 2)) fleetsync_bridge_backpressure)"
check "Kafka starts again" "$FS" services start
wait "$pub"
check_eq "all 3000 readings arrive after the outage" 3000 \
    "$(wait_unique "${P}truck-telemetry" "^$ID-K00001 " 3000 180)"
for _ in $(seq 40); do [ "$(metric $((TEST_METRICS_BASE + 2)) fleetsync_bridge_spool_bytes)" = 0 ] && break; sleep 0.5; done
check_eq "the spool drained" 0 "$(metric $((TEST_METRICS_BASE + 2)) fleetsync_bridge_spool_bytes)"
check_eq "reads resumed" 0 "$(metric $((TEST_METRICS_BASE + 2)) fleetsync_bridge_backpressure)"
# The pause outlasted 1.5 keep-alives of 5 s: pings kept the connection.
check_eq "the MQTT connection outlived the pause" 1 "$(metric $((TEST_METRICS_BASE + 2)) fleetsync_bridge_mqtt_connects_total)"
check_eq "no message went to the DLQ" 0 "$(count_topic "${P}truck-telemetry-dlq" "$ID-K")"
kill -TERM "$bridge_pid"; wait "$bridge_pid"

# 3. Two bridges on a shared subscription; one is killed and comes back.
start_bridge share1 --client-id "e2e-share1-$$" --share "g$$" --metrics-port $((TEST_METRICS_BASE + 3)) --session-expiry 300
b1=$bridge_pid; pids+=("$b1")
start_bridge share2 --client-id "e2e-share2-$$" --share "g$$" --metrics-port $((TEST_METRICS_BASE + 4)) --session-expiry 300
b2=$bridge_pid; pids+=("$b2")
for t in 1 2 3 4; do lines "$ID-S0000$t" 0 1000 | pub_lines "$ID-S0000$t"; done
wait_unique "${P}truck-telemetry" "^$ID-S" 4000 >/dev/null
r1=$(metric $((TEST_METRICS_BASE + 3)) fleetsync_bridge_received_total); r2=$(metric $((TEST_METRICS_BASE + 4)) fleetsync_bridge_received_total)
echo "# shared subscription split: $r1 + $r2"
check "both bridges take part of the load" test "${r1:-0}" -gt 0 -a "${r2:-0}" -gt 0
check_eq "together they saw every message once" 4000 "$(( ${r1:-0} + ${r2:-0} ))"
pubs=()
for t in 5 6 7 8; do lines "$ID-S0000$t" 0 2000 | pub_lines "$ID-S0000$t" & pubs+=($!); done
sleep 0.5
kill -9 "$b2"; wait "$b2" 2>/dev/null
sleep 1
subscribed_before=1 start_bridge share2 --client-id "e2e-share2-$$" --share "g$$" --metrics-port $((TEST_METRICS_BASE + 4)) \
    --session-expiry 300
b2=$bridge_pid; pids+=("$b2")
wait "${pubs[@]}"
check_eq "every reading arrives with one member killed and restarted" 12000 \
    "$(wait_unique "${P}truck-telemetry" "^$ID-S" 12000)"
kill -TERM "$b1" "$b2"; wait "$b1" "$b2" 2>/dev/null
done_testing
