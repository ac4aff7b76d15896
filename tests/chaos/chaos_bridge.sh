#!/bin/bash
# The bridge SIGKILLed 10 times at random moments during a 100,000-message
# run, restarted each time; then Kafka stopped for 60 s mid-run.  Every
# reading must be in Kafka; repeats only as the same (truck_id, ts, seq).
#
# CHAOS_SECURE=1: the same against a stack of its own started with
# `services start --secure` (Kafka wants SASL, ACLs per principal; ports at
# the test block + CHAOS_PORT_OFFSET, default 90): the bridge logs in with the
# credentials of that data dir, through every SIGKILL and the Kafka restart.
# A shorter run: CHAOS_BRIDGE_READINGS (default 100000, 20 trucks) and
# CHAOS_BRIDGE_OUTAGE_S (default 60).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/../e2e/bridge_lib.sh"

P="chaos$$-"
ID="CHB$$"
W=$(mktemp -d /tmp/fleetsync-chaos-bridge.XXXXXX)
N=${CHAOS_BRIDGE_READINGS:-100000}
OUTAGE=${CHAOS_BRIDGE_OUTAGE_S:-60}
PER=$((N / 20)) N=$((N / 20 * 20))
ARGS=(--client-id "chaos-bridge-$$" --metrics-port $((TEST_METRICS_BASE + 1)) --session-expiry 600)
OWN=
if [ -n "${CHAOS_SECURE:-}" ]; then
    OFF=${CHAOS_PORT_OFFSET:-90}
    OWN=$(mktemp -d /tmp/fleetsync-chaos-bridge-secure.XXXXXX)
    private_services "$OFF" "$OWN"
    MQTT_PORT=$((TEST_MQTT_PORT + OFF))
    # The bridge's data dir is the stack's: that is where its Kafka credentials are.
    ARGS+=(--data-dir "$OWN")
fi
B=$FLEETSYNC_BROKERS
cleanup() {
    [ -n "${bridge_pid:-}" ] && kill -9 "$bridge_pid" 2>/dev/null
    [ -n "$OWN" ] && { "$FS" services stop >/dev/null 2>&1; rm -rf "$OWN"; }
    keep_logs chaos-bridge "$W"/*.log
    rm -rf "$W"
}
trap cleanup EXIT
if [ -n "$OWN" ]; then
    check "services start --secure (a stack of its own)" "$FS" services start --secure --topic-prefix "$P" --timeout 120
    check_contains "kcat without credentials is refused" "Failed to acquire metadata" "$(timeout 20 kcat -b "$B" -L -m 5 2>&1)"
else
    "$FS" services start --topic-prefix "$P" >/dev/null 2>&1
fi
check "topics exist" topics_ready

start_bridge bridge "${ARGS[@]}"
pubs=()
for t in $(seq -w 1 20); do lines "$ID-0000$t" 0 "$PER" | pub_lines "$ID-0000$t" & pubs+=($!); done
for k in $(seq 1 10); do
    sleep "0.$((RANDOM % 9 + 1))"
    kill -9 "$bridge_pid"; wait "$bridge_pid" 2>/dev/null
    start_bridge bridge "${ARGS[@]}" || echo "# restart $k failed"
done
wait "${pubs[@]}"
check_eq "$N readings survive 10 SIGKILLs" "$N" \
    "$(wait_unique "${P}truck-telemetry" "^$ID-" "$N" 240)"
total=$(count_topic "${P}truck-telemetry" "^$ID-")
echo "# $total records for $N readings"

# Kafka away for $OUTAGE s while 20 trucks send 10 readings a second each.
SECS=$((OUTAGE + 30)) NK=$(((OUTAGE + 30) * 200))
( for i in $(seq 0 $((SECS - 1))); do for t in $(seq -w 1 20); do lines "$ID-K000$t" $((i * 10)) 10 | pub_lines "$ID-K000$t"; done; sleep 1; done ) &
pub=$!
sleep 10
kafka_pid=$(service_pid kafka)
kill -TERM "$kafka_pid"
wait_gone "$kafka_pid"
sleep "$OUTAGE"
check "Kafka starts again after $OUTAGE s" "$FS" services start
wait "$pub"
check_eq "$NK readings arrive across a $OUTAGE s Kafka outage" "$NK" \
    "$(wait_unique "${P}truck-telemetry" "^$ID-K" "$NK" 240)"
if [ -n "$OWN" ]; then
    check_contains "the bridge logged in to Kafka as its principal" "Kafka as fleetsync-bridge" "$(cat "$W/bridge.log")"
    check_eq "no authorization or authentication error in the bridge's log" 0 \
        "$(grep -ci 'authoriz\|authenticat' "$W/bridge.log")"
fi
kill -TERM "$bridge_pid"; wait "$bridge_pid"; check_eq "clean stop" 0 $?
bridge_pid=
done_testing
