#!/bin/bash
# The embedded services, checked with real clients against the shared stack.
. "$(dirname "$0")/lib.sh"

check "status exits 0 with every service healthy" "$FS" services status
st=$("$FS" services status)
for s in mosquitto kafka postgres; do
    check_contains "status shows $s healthy" "healthy" "$(grep "^$s " <<<"$st")"
done
check_eq "status --json names three services" 3 "$("$FS" services status --json | jq length)"

# MQTT: a real publish reaches a real subscriber (QoS 1).
topic="fleet/trucks/E2E-SVC-$$/telemetry"
mosquitto_sub -p "$TEST_MQTT_PORT" -t "$topic" -C 1 -W 10 -q 1 >"$FLEETSYNC_DATA_DIR/sub.out" 2>&1 &
sub=$!
sleep 0.5
check "mosquitto_pub publishes at QoS 1" mosquitto_pub -p "$TEST_MQTT_PORT" -t "$topic" -q 1 -m hello
wait $sub
check_eq "mosquitto_sub receives it" hello "$(cat "$FLEETSYNC_DATA_DIR/sub.out")"

# Packets over 64 KiB are refused by the broker (max_packet_size).
head -c 70000 /dev/zero | tr '\0' x >"$FLEETSYNC_DATA_DIR/big"
check_fails "a 70 KB MQTT packet is refused" mosquitto_pub -p "$TEST_MQTT_PORT" -t "$topic" -q 1 -f "$FLEETSYNC_DATA_DIR/big"

# Kafka: kcat -L shows the topics of docs/design.md with their partitions.
md=$(kcat -b "$FLEETSYNC_BROKERS" -L -J)
parts() { jq -r --arg t "$1" '.topics[] | select(.topic == $t) | .partitions | length' <<<"$md"; }
check_eq "truck-telemetry has 6 partitions" 6 "$(parts truck-telemetry)"
check_eq "truck-status has 6 partitions" 6 "$(parts truck-status)"
check_eq "truck-alerts has 6 partitions" 6 "$(parts truck-alerts)"
check_eq "truck-telemetry-dlq has 3 partitions" 3 "$(parts truck-telemetry-dlq)"
check_eq "truck-alerts-dlq (notify's dead letters) has 3 partitions" 3 "$(parts truck-alerts-dlq)"
check "a record goes through Kafka" bash -c \
    "echo k:v | kcat -b $FLEETSYNC_BROKERS -P -t truck-telemetry-dlq -K: -p 0 && \
     kcat -b $FLEETSYNC_BROKERS -C -t truck-telemetry-dlq -p 0 -o -1 -e -q -f '%k=%s\n' | grep -qx k=v"

# PostgreSQL: the fleetsync database and role answer.
check_eq "psql select 1" 1 "$(psql "$FLEETSYNC_PG" -XAtc 'select 1')"
check_eq "connected as role fleetsync" fleetsync "$(psql "$FLEETSYNC_PG" -XAtc 'select current_user')"

# A second start is harmless and quick.
check "a second start succeeds" "$FS" services start
# A crashed service leaves a stale pid file: status says so, start recovers.
kill -9 "$(cat "$FLEETSYNC_DATA_DIR/run/mosquitto.pid")"
sleep 0.5
check_fails "status exits 1 with mosquitto killed" "$FS" services status
check_contains "status shows mosquitto down" "down" "$("$FS" services status | grep '^mosquitto ')"
check "start brings back the killed service" "$FS" services start
check "status is healthy again" "$FS" services status
# Topic settings, read back with Kafka's own ConfigCommand.
tcfg() {
    java -Xmx128m -cp "$(kafka_libs)/*" kafka.admin.ConfigCommand --bootstrap-server "$FLEETSYNC_BROKERS" \
        --describe --entity-type topics --entity-name "$1" 2>&1
}
check_contains "truck-status is compacted" "cleanup.policy=compact" "$(tcfg truck-status)"
check_contains "truck-telemetry keeps 7 days" "retention.ms=604800000" "$(tcfg truck-telemetry)"
done_testing
