#!/bin/bash
# bench/dashboard_latency.sh - a short latency probe of the live map, for
# bench/dashboard (not a test_*.sh: no timing thresholds in make test).
#
# Needs the FLEETSYNC_* / TEST_* environment of tests/e2e/stack.sh and a running
# stack.  Starts a bridge, a dashboard and `fleetsync sim --trucks N
# --interval 1` (load), then publishes probe readings with ts = now every
# 200 ms for a truck alone in its viewport, and measures ts -> WebSocket frame
# received (MQTT, bridge, Kafka, dashboard, WebSocket).  Prints p50/p99/max.
#
#   TRUCKS=1500 bash bench/dashboard_latency.sh
set -u
root=$(cd "$(dirname "$0")/.." && pwd)
FS=${FLEETSYNC_BIN:?source tests/e2e/stack.sh first}
TRUCKS=${TRUCKS:-1500}
P="lat$$-"; W=$(mktemp -d /tmp/fleetsync-dashboard-latency.XXXXXX)
"$FS" services start --topic-prefix "$P" >/dev/null 2>&1
"$FS" bridge --topic-prefix "$P" --data-dir "$W" --quiet --client-id "lat-br-$$" --metrics-port $((TEST_METRICS_BASE + 6)) \
    >"$W/bridge.log" 2>&1 & bp=$!
"$FS" dashboard --topic-prefix "$P" --group "lat-$$" >"$W/dash.log" 2>&1 & dp=$!
sleep 3
"$FS" sim --trucks "$TRUCKS" --interval 1 --id-prefix "LAT$$-" --quiet --metrics-port $((TEST_METRICS_BASE + 7)) \
    >"$W/sim.log" 2>&1 & sp=$!
sleep 10
WS_WALL=1 node "$root/tests/e2e/dashboard_ws.js" "ws://127.0.0.1:$TEST_HTTP_PORT/ws" \
    'send:{"type":"viewport","bbox":[-101,-46,-99,-44],"zoom":9}' wait:12000 >"$W/ws.out" & wp=$!
sleep 1
for i in $(seq 50); do
    printf '{"v":1,"truck_id":"PROBE%s","ts":%s,"seq":%s,"lat":-45,"lon":-100,"speed_kmh":50,"ignition":true}\n' \
        $$ "$(date +%s%3N)" "$i"
    sleep 0.2
done | mosquitto_pub -p "$TEST_MQTT_PORT" -q 1 -t "fleet/trucks/PROBE$$/telemetry" -l
wait $wp
echo "fleet: $(curl -s "127.0.0.1:$TEST_HTTP_PORT/api/fleet")"
echo "dashboard: $(curl -s "127.0.0.1:$TEST_HTTP_PORT/metrics" | grep -E '^fleetsync_(dashboard_consumed_total\{topic="telemetry"|process_cpu)' | tr '\n' ' ')"
kill $sp; wait $sp 2>/dev/null; kill $dp $bp; wait $dp $bp 2>/dev/null
while read -r w j; do
    echo "$j" | jq -r --arg w "$w" 'select(.type == "trucks") | .upsert[] | ($w | tonumber) - .ts'
done <"$W/ws.out" | sort -n >"$W/lat.txt"
n=$(wc -l <"$W/lat.txt")
echo "probe readings seen: $n of 50"
[ "$n" -gt 0 ] && echo "latency ts -> frame: p50 $(sed -n "$(( (n + 1) / 2 ))p" "$W/lat.txt") ms," \
    "p99 $(sed -n "$(( (n * 99 + 99) / 100 ))p" "$W/lat.txt") ms, max $(tail -1 "$W/lat.txt") ms"
rm -rf "$W"
