#!/bin/bash
# The bridge against the real Mosquitto and Kafka: valid telemetry reaches
# truck-telemetry keyed by truck in seq order, presence reaches truck-status,
# every invalid payload is in the DLQ with its reason, nothing is lost when
# the bridge is SIGKILLed mid-stream, SIGTERM shuts it down cleanly, MQTT
# 3.1.1 works as MQTT 5 does, and a message past the spool's limits goes to
# the DLQ cut, without stopping what follows.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/bridge_lib.sh"

P="e2ebridge$$-"                      # topic prefix: this suite's own topics
ID="E2EB$$"                            # truck id prefix
W=$(mktemp -d /tmp/fleetsync-e2e-bridge.XXXXXX)
B=$FLEETSYNC_BROKERS
BR_ARGS=(--client-id "e2e-bridge-$$" --metrics-port $((TEST_METRICS_BASE + 1)) --session-expiry 300)
bridge_pid=
big_pid=
cleanup() {
    [ -n "$bridge_pid" ] && kill -9 "$bridge_pid" 2>/dev/null
    [ -n "$big_pid" ] && kill "$big_pid" 2>/dev/null
    rm -rf "$W"
}
trap cleanup EXIT

"$FS" services start --topic-prefix "$P" >/dev/null 2>&1
check "topics with the suite's prefix exist" topics_ready

start_bridge bridge "${BR_ARGS[@]}"; check_eq "bridge starts and subscribes" 0 $?

# 1. Valid telemetry: 5 trucks x 200 readings.
for t in 1 2 3 4 5; do lines "$ID-00000$t" 0 200 | pub_lines "$ID-00000$t"; done
check_eq "1000 valid readings in truck-telemetry" 1000 "$(wait_count "${P}truck-telemetry" "^$ID-" 1000)"
kcat -b "$B" -C -t "${P}truck-telemetry" -o beginning -e -q -f '%k %p %s\n' 2>/dev/null | grep "^$ID-" >"$W/tele"
check_eq "each truck's readings are in one partition" 5 "$(awk '{print $1, $2}' "$W/tele" | sort -u | wc -l)"
ordered=$(awk '{ split($3, a, "\"seq\":"); split(a[2], b, ","); s = b[1] + 0;
                 if ($1 in last && s != last[$1] + 1) bad++; last[$1] = s } END { print bad + 0 }' "$W/tele")
check_eq "per-truck seq order with no gap" 0 "$ordered"
first=$(grep "^$ID-000001 " "$W/tele" | head -1 | cut -d' ' -f3-)
check_contains "value is normalized JSON with known fields first" \
    "{\"v\":1,\"truck_id\":\"$ID-000001\",\"ts\":" "$first"
check_contains "unknown fields are kept after the known ones" ",\"fuel_pct\":50,\"driver\":\"x\"}" "$first"
ts_ok=$(kcat -b "$B" -C -t "${P}truck-telemetry" -o beginning -e -q -f '%k %T\n' 2>/dev/null | grep "^$ID-" |
        awk -v now="$(date +%s%3N)" '$2 > now - 600000 && $2 <= now { ok++ } END { print ok + 0 }')
check_eq "record timestamps are the receive time" 1000 "$ts_ok"

# 2. Presence.
mosquitto_pub -p $MQTT_PORT -q 1 -t "fleet/trucks/$ID-000001/status" -m online
mosquitto_pub -p $MQTT_PORT -q 1 -t "fleet/gateways/GW$$/status" -m offline
check_eq "presence reaches truck-status" 2 "$(wait_count "${P}truck-status" "$$" 2)"
st=$(kcat -b "$B" -C -t "${P}truck-status" -o beginning -e -q -f '%k %s\n' 2>/dev/null)
check_contains "truck presence record" "$ID-000001 {\"id\":\"$ID-000001\",\"kind\":\"truck\",\"status\":\"online\",\"ts\":" "$st"
check_contains "gateway presence record" "GW$$ {\"id\":\"GW$$\",\"kind\":\"gateway\",\"status\":\"offline\"" "$st"

# 3. One invalid payload per rejection reason.
now=$(date +%s%3N)
ok="\"lat\":48.1,\"lon\":11.5,\"speed_kmh\":10,\"ignition\":false"
declare -A bad=(
    [invalid_json]='{"v":1,"truck_id":'
    [duplicate_key]="{\"v\":1,\"v\":1,\"truck_id\":\"$ID-000009\",\"ts\":$now,\"seq\":1,$ok}"
    [unsupported_version]="{\"v\":2,\"truck_id\":\"$ID-000009\",\"ts\":$now,\"seq\":1,$ok}"
    [missing_field]="{\"v\":1,\"truck_id\":\"$ID-000009\",\"ts\":$now,\"seq\":1,\"lon\":11.5,\"speed_kmh\":10,\"ignition\":false}"
    [wrong_type]="{\"v\":1,\"truck_id\":\"$ID-000009\",\"ts\":$now,\"seq\":\"1\",$ok}"
    [out_of_range]="{\"v\":1,\"truck_id\":\"$ID-000009\",\"ts\":$now,\"seq\":1,\"lat\":91,\"lon\":11.5,\"speed_kmh\":10,\"ignition\":false}"
    [bad_truck_id]="{\"v\":1,\"truck_id\":\"bad id!\",\"ts\":$now,\"seq\":1,$ok}"
    [topic_mismatch]="{\"v\":1,\"truck_id\":\"$ID-000008\",\"ts\":$now,\"seq\":1,$ok}"
    [ts_in_future]="{\"v\":1,\"truck_id\":\"$ID-000009\",\"ts\":$((now + 3 * 86400000)),\"seq\":1,$ok}"
    [ts_too_old]="{\"v\":1,\"truck_id\":\"$ID-000009\",\"ts\":915148800000,\"seq\":1,$ok}"
)
for reason in "${!bad[@]}"; do
    mosquitto_pub -p $MQTT_PORT -q 1 -t "fleet/trucks/$ID-000009/telemetry" -m "${bad[$reason]}"
done
head -c 5000 /dev/zero | tr '\0' ' ' >"$W/large"
mosquitto_pub -p $MQTT_PORT -q 1 -t "fleet/trucks/$ID-000009/telemetry" -f "$W/large"
check_eq "11 invalid payloads in the DLQ" 11 "$(wait_count "${P}truck-telemetry-dlq" "$ID-000009" 11)"
dlq=$(kcat -b "$B" -C -t "${P}truck-telemetry-dlq" -o beginning -e -q -f '%h\n' 2>/dev/null)
for reason in "${!bad[@]}" too_large; do
    check_contains "DLQ holds a $reason with its header" "error=$reason," "$dlq"
done
check_contains "DLQ names the field" "error=out_of_range,error_detail=lat," "$dlq"
check_contains "DLQ carries mqtt_topic and received_ms" "mqtt_topic=fleet/trucks/$ID-000009/telemetry,received_ms=" "$dlq"
orig=$(kcat -b "$B" -C -t "${P}truck-telemetry-dlq" -o beginning -e -q -f '%s\n' 2>/dev/null | grep -c '^{"v":1,"truck_id":$')
check_eq "DLQ value is the original bytes" 1 "$orig"
check_eq "no invalid payload reached truck-telemetry" 0 "$(count_topic "${P}truck-telemetry" "^$ID-00000[89]")"

m=$(curl -s http://127.0.0.1:$((TEST_METRICS_BASE + 1))/metrics)
check_contains "metrics count dead letters by reason" 'fleetsync_bridge_dlq_total{reason="too_large"} 1' "$m"
check_contains "metrics count acknowledged records" "fleetsync_bridge_acked_total 1013" "$m"

# 3b. fleetsync sim --kafka writes into truck-telemetry exactly what the
# bridge makes of the same readings sent over MQTT: same key, partition and
# bytes, record for record.
S="$ID-S"
sim_args=(--trucks 20 --interval 10 --duration 600 --speedup 0 --id-prefix "$S" --metrics-port -1 --quiet
          --start "$(date -u -d '-1 hour' +%Y-%m-%dT%H:%M:%SZ)")
# --clear-presence: no retained presence is left for later suites' subscribers.
"$FS" sim "${sim_args[@]}" --clear-presence >"$W/sim-mqtt.out" 2>&1; check_eq "the simulator over MQTT exits 0" 0 $?
"$FS" sim "${sim_args[@]}" --kafka --topic-prefix "$P" >"$W/sim-kafka.out" 2>&1
check_eq "the same simulator with --kafka exits 0" 0 $?
check_contains "its summary counts 1200 acknowledged" "published 1200, acknowledged 1200, failed 0" "$(cat "$W/sim-kafka.out")"
check "both runs' 2 x 1200 readings are in truck-telemetry" test "$(wait_count "${P}truck-telemetry" "^$S" 2400)" -ge 2400
kcat -b "$B" -C -t "${P}truck-telemetry" -o beginning -e -q -f '%k %p %s\n' 2>/dev/null | grep "^$S" >"$W/twins"
# A QoS 1 redelivery may repeat an MQTT record: each distinct one must be
# there at least twice, and there must be exactly 1200 distinct ones.
check_eq "every record has its twin from the other path (same key, partition, bytes)" "1200 0" \
    "$(sort "$W/twins" | uniq -c | awk '{ n++ } $1 < 2 { single++ } END { print n + 0, single + 0 }')"
rc=0; out=$(timeout 20 "$FS" sim --kafka --connections 2 --duration 1 --speedup 0 --start now-1m --metrics-port -1 2>&1) || rc=$?
check_eq "--kafka with an MQTT option is a usage error" 2 "$rc"
check_contains "that names the MQTT options" "--kafka does not use MQTT" "$out"
rc=0; timeout 20 "$FS" sim --kafka --qos 1 --duration 1 --speedup 0 --start now-1m --metrics-port -1 >/dev/null 2>&1 ||
    rc=$?
check_eq "so is --qos" 2 "$rc"

# 4. SIGKILL twice mid-stream: nothing lost, repeats only as the same reading.
for t in 6 7; do lines "$ID-00000$t" 0 4000 | pub_lines "$ID-00000$t" & done
sleep 0.3; kill -9 "$bridge_pid"; wait "$bridge_pid" 2>/dev/null
start_bridge bridge "${BR_ARGS[@]}"
sleep 0.5; kill -9 "$bridge_pid"; wait "$bridge_pid" 2>/dev/null
start_bridge bridge "${BR_ARGS[@]}"; check_eq "bridge restarts after two SIGKILLs" 0 $?
uniq=$(wait_unique "${P}truck-telemetry" "^$ID-00000[67] " 8000)
kcat -b "$B" -C -t "${P}truck-telemetry" -o beginning -e -q -f '%k %s\n' 2>/dev/null | grep "^$ID-00000[67] " >"$W/k"
check_eq "every reading survives two SIGKILLs (unique readings)" 8000 "$uniq"
echo "# $(wc -l <"$W/k") records for 8000 readings (repeats are resends of the same reading)"

# 5. SIGTERM: clean shutdown, exit 0, spool drained.
kill -TERM "$bridge_pid"; wait "$bridge_pid"; rc=$?; bridge_pid=
check_eq "SIGTERM exits 0" 0 "$rc"
check_contains "shutdown summary" "stopped: received" "$(tail -3 "$W/bridge.log")"
ck=$(sed 's/^0*//' "$W/bridge/e2e-bridge-$$/checkpoint")
last=$(ls "$W/bridge/e2e-bridge-$$/"*.spool | tail -1)
head=$(( $(basename "$last" .spool | sed 's/^0*//') + $(stat -c %s "$last") ))
check_eq "checkpoint covers the whole spool after a clean stop" "$head" "${ck:-0}"

# 6. MQTT 3.1.1, and messages past the spool's limits (a payload over 1 MiB,
# a topic over 1 KiB): kept cut, in the DLQ, and what follows them still
# flows.  The stack's Mosquitto refuses packets over 64 KiB (docs/design.md), so
# this part has a Mosquitto of its own that takes any size.
BIGP=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
printf 'listener %d 127.0.0.1\nallow_anonymous true\n' "$BIGP" >"$W/big.conf"
mosquitto -c "$W/big.conf" >"$W/big-mosquitto.log" 2>&1 &
big_pid=$!
for _ in $(seq 50); do mosquitto_pub -p "$BIGP" -t probe -m x 2>/dev/null && break; sleep 0.1; done
FLEETSYNC_MQTT=mqtt://127.0.0.1:$BIGP start_bridge bridge311 --client-id "e2e-bridge311-$$" --mqtt-version 311 \
    --metrics-port $((TEST_METRICS_BASE + 2))
check_eq "an MQTT 3.1.1 bridge subscribes" 0 $?
check_contains "it says which MQTT it speaks" "(MQTT 3.1.1, new session)" "$(cat "$W/bridge311.log")"
lines "$ID-000011" 0 100 | timeout -k 5 60 mosquitto_pub -p "$BIGP" -q 1 -t "fleet/trucks/$ID-000011/telemetry" -l
check_eq "3.1.1: 100 readings in truck-telemetry" 100 "$(wait_count "${P}truck-telemetry" "^$ID-000011" 100)"
head -c 2097152 /dev/zero | tr '\0' 'x' >"$W/huge"
mosquitto_pub -p "$BIGP" -q 1 -t "fleet/trucks/$ID-000012/telemetry" -f "$W/huge"
long_id=$(head -c 2000 /dev/zero | tr '\0' 'y')
mosquitto_pub -p "$BIGP" -q 1 -t "fleet/trucks/$long_id/telemetry" -m '{"v":1}'
lines "$ID-000013" 0 1 | mosquitto_pub -p "$BIGP" -q 1 -t "fleet/trucks/$ID-000013/telemetry" -l
check_eq "a reading after them arrives" 1 "$(wait_count "${P}truck-telemetry" "^$ID-000013" 1)"
check_eq "the 2 MiB payload and the 2 KiB topic are in the DLQ" 2 \
    "$(wait_count "${P}truck-telemetry-dlq" "$ID-000012\|yyyyyyyyyy" 2)"
big=$(kcat -b "$B" -C -t "${P}truck-telemetry-dlq" -o beginning -e -q -f '%S %h\n' 2>/dev/null | grep "$ID-000012")
check_contains "the 2 MiB payload is too_large, kept as its first 512 KiB" "524288 error=too_large," "$big"
lng=$(kcat -b "$B" -C -t "${P}truck-telemetry-dlq" -o beginning -e -q -f '%k %h\n' 2>/dev/null | grep yyyyyyyyyy)
check_contains "the long topic is a bad_truck_id" "error=bad_truck_id,error_detail=topic" "$lng"
check_eq "its mqtt_topic is cut to 1024 bytes" 1024 "$(printf '%s' "$lng" | sed 's/.*mqtt_topic=\([^,]*\),.*/\1/' | tr -d '\n' | wc -c)"
kill -TERM "$bridge_pid"; wait "$bridge_pid"; rc=$?; bridge_pid=
check_eq "the 3.1.1 bridge stops cleanly" 0 "$rc"
kill "$big_pid"; wait "$big_pid" 2>/dev/null; big_pid=
done_testing
