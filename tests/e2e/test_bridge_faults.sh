#!/bin/bash
# The bridge under faults, with the real Mosquitto and Kafka:
#  - a fatal idempotent-producer error (raised through librdkafka's test API)
#    is recovered without losing a message;
#  - Kafka stopped mid-stream and started again: nothing lost, the spool took
#    the load and drained, the metrics show the episode;
#  - two bridges share a subscription and split the load; one is SIGKILLed
#    and restarted: nothing lost;
#  - a spool with a damaged record in each of two segments: the bridge
#    starts, delivers every intact record, counts and keeps the damage, and
#    goes on; its spool files are 0600 in 0700 directories.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/bridge_lib.sh"

P="e2efault$$-"
ID="E2EF$$"
W=$(mktemp -d /tmp/fleetsync-e2e-bfault.XXXXXX)
B=$FLEETSYNC_BROKERS
pids=()
stop_kafka() {
    local kafka_pid
    kafka_pid=$(cat "$FLEETSYNC_DATA_DIR/run/kafka.pid")
    kill -TERM "$kafka_pid"
    while kill -0 "$kafka_pid" 2>/dev/null; do sleep 0.2; done
}
# spool_offsets SEGMENT: where each record of a spool segment starts (a record
# is a u32 little-endian body length, a u32 CRC, the body).
spool_offsets() {
    local f=$1 size pos=0 len
    size=$(stat -c %s "$f")
    while [ "$pos" -lt "$size" ]; do
        echo "$pos"
        len=$(od -An -tu4 -j "$pos" -N4 "$f" | tr -d ' ')
        pos=$((pos + 8 + len))
    done
}
# damage FILE AT: overwrites one byte (in a payload: '#' is in none).
damage() { printf '#' | dd of="$1" bs=1 seek="$2" conv=notrunc status=none; }
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
stop_kafka
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
start_bridge share2 --client-id "e2e-share2-$$" --share "g$$" --metrics-port $((TEST_METRICS_BASE + 4)) \
    --session-expiry 300
b2=$bridge_pid; pids+=("$b2")
wait "${pubs[@]}"
check_eq "every reading arrives with one member killed and restarted" 12000 \
    "$(wait_unique "${P}truck-telemetry" "^$ID-S" 12000)"
kill -TERM "$b1" "$b2"; wait "$b1" "$b2" 2>/dev/null

# 4. A damaged spool.  300 readings spooled while Kafka is away, the bridge
#    SIGKILLed; its segment split in two at reading 150 (segments are named
#    by their first record's offset), and one payload byte damaged in reading
#    50 (the first segment) and in reading 200 (the last).
MP=$((TEST_METRICS_BASE + 5))
SP="$W/bridge/e2e-damage-$$"
start_bridge damage --client-id "e2e-damage-$$" --metrics-port $MP --session-expiry 300
dmg_pid=$bridge_pid; pids+=("$dmg_pid")
stop_kafka
lines "$ID-D00001" 0 300 | pub_lines "$ID-D00001"
wait_until 300 60 metric $MP fleetsync_bridge_received_total >/dev/null
sleep 1 # the last batch flushed and acknowledged to MQTT
kill -9 "$dmg_pid"; wait "$dmg_pid" 2>/dev/null
seg0="$SP/00000000000000000000.spool"
offs=($(spool_offsets "$seg0"))
check_eq "the spool holds the 300 readings Kafka never acknowledged" 300 "${#offs[@]}"
cut=${offs[150]}
seg1="$SP/$(printf %020d "$cut").spool"
tail -c +$((cut + 1)) "$seg0" >"$seg1"
truncate -s "$cut" "$seg0"
damage "$seg0" $((offs[51] - 3))
damage "$seg1" $((offs[201] - 3 - cut))
check "Kafka starts again" "$FS" services start
start_bridge damage2 --client-id "e2e-damage-$$" --metrics-port $MP --session-expiry 300
check_eq "a bridge whose spool has damaged records starts" 0 $?
dmg_pid=$bridge_pid; pids+=("$dmg_pid")
check_eq "every intact reading arrives" 298 "$(wait_unique "${P}truck-telemetry" "^$ID-D00001 " 298)"
missing=$(kcat -b "$B" -C -t "${P}truck-telemetry" -o beginning -e -q -f '%k %s\n' 2>/dev/null |
    grep "^$ID-D00001 " | sed 's/.*"seq":\([0-9]*\).*/\1/' | sort -un |
    awk '{ seen[$1] = 1 } END { for (i = 0; i < 300; i++) if (!seen[i]) printf "%s%d", n++ ? " " : "", i }')
check_eq "exactly the two damaged readings are missing" "50 200" "$missing"
check_eq "the damaged ranges are counted" 2 "$(metric $MP fleetsync_bridge_spool_damaged_total)"
check_eq "the damaged segments are kept aside" 2 "$(metric $MP fleetsync_bridge_spool_damaged_files)"
check_eq "as <segment>.damaged in the spool dir" 2 "$(ls "$SP" | grep -c '\.spool\.damaged$')"
check_contains "the damage is logged with segment, reason and size" \
    "spool segment $seg0 is damaged (bad CRC): skipped" "$(cat "$W/damage2.log")"
sleep 2
check "the bridge keeps running (no exit, no restart loop)" kill -0 "$dmg_pid"
lines "$ID-D00001" 300 10 | pub_lines "$ID-D00001"
check_eq "and goes on bridging new readings" 308 "$(wait_unique "${P}truck-telemetry" "^$ID-D00001 " 308)"
check_eq "the bridge's state dir is 0700" 700 "$(stat -c %a "$W/bridge")"
check_eq "the spool dir is 0700" 700 "$(stat -c %a "$SP")"
check_eq "every spool file is 0600 (those the test wrote 0644 too)" 600 "$(stat -c %a "$SP"/* | sort -u | tr '\n' ' ' | sed 's/ $//')"
kill -TERM "$dmg_pid"; wait "$dmg_pid"
check_eq "it stops cleanly" 0 $?
done_testing
