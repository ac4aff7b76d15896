#!/bin/bash
# The dashboard against the real Mosquitto, bridge and Kafka: the JSON API of
# docs/design.md, the WebSocket protocol of docs/dashboard.md (viewport, deltas,
# clusters, coalescing, error frames, a slow client), a restart under load
# that rebuilds the map from Kafka, a clean SIGTERM, and the page in headless
# Chromium (tests/browser/dashboard.js).  No timing thresholds: how fast
# frames, answers, a stop and a rebuild come is measured by
# bench/dashboard_limits.sh (make bench); the waits here only catch a hang.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/bridge_lib.sh"

root=$(cd "$(dirname "$0")/../.." && pwd)
P="e2edash$$-"                 # topic prefix: this suite's own topics
ID="E2ED$$"                    # truck ids of single readings
SIMID="E2EDS$$-"               # the simulator's trucks
W=$(mktemp -d /tmp/fleetsync-e2e-dashboard.XXXXXX)
OUT=${TEST_OUTPUT_DIR:-$W/out}  # the browser's screenshot stays here
mkdir -p "$OUT"
B=$FLEETSYNC_BROKERS
PORT=$TEST_HTTP_PORT
URL=http://127.0.0.1:$PORT
WS=ws://127.0.0.1:$PORT/ws
DASH_ARGS=(--topic-prefix "$P" --listen "127.0.0.1:$PORT" --group "e2e-dashboard-$$")
bridge_pid= dash_pid= sim_pid=
cleanup() {
    for p in $sim_pid $dash_pid $bridge_pid; do kill "$p" 2>/dev/null && wait "$p" 2>/dev/null; done
    if [ -z "${TEST_OUTPUT_DIR:-}" ]; then echo "# artifacts: $OUT"; find "$W" -mindepth 1 -maxdepth 1 ! -name out -exec rm -rf {} +; fi
}
trap cleanup EXIT

api() { curl -s --max-time 5 "$URL$1"; }
jget() { jq -r "$1" 2>/dev/null; }
now_ms() { date +%s%3N; }

start_dashboard() {
    "$FS" dashboard "${DASH_ARGS[@]}" "$@" >>"$W/dashboard.log" 2>&1 &
    dash_pid=$!
    for _ in $(seq 150); do
        [ "$(api /healthz | jget .assigned_partitions)" -gt 0 ] 2>/dev/null && return 0
        kill -0 "$dash_pid" 2>/dev/null || return 1
        sleep 0.1
    done
    return 1
}
# wait_for JQ_EXPR PATH [TRIES]: polls an API path until the jq expression is true.
wait_for() {
    for _ in $(seq "${3:-100}"); do
        [ "$(api "$2" | jget "$1")" = true ] && return 0
        sleep 0.1
    done
    return 1
}
# reading TRUCK TS LAT LON SPEED IGNITION: one telemetry payload.
reading() {
    printf '{"v":1,"truck_id":"%s","ts":%s,"seq":%s,"lat":%s,"lon":%s,"speed_kmh":%s,"ignition":%s,"heading_deg":90,"fuel_pct":61.5}' \
        "$1" "$2" "$(($2 % 1000000))" "$3" "$4" "$5" "$6"
}
pub() { mosquitto_pub -p "$MQTT_PORT" -q 1 -t "fleet/trucks/$1/telemetry" -m "$2"; }

# --- command line ----------------------------------------------------------------
check "dashboard --help exits 0" "$FS" dashboard --help
"$FS" dashboard --listen 0.0.0.0:$PORT >"$W/refuse.out" 2>&1
check_eq "a non-loopback --listen without authentication exits 2" 2 $?
check_contains "and says why" "refusing to listen on 0.0.0.0:$PORT without authentication" "$(cat "$W/refuse.out")"
"$FS" dashboard --rebuild forever >/dev/null 2>&1
check_eq "a bad option value exits 2" 2 $?

"$FS" services start --topic-prefix "$P" >/dev/null 2>&1
check "topics with the suite's prefix exist" topics_ready
start_bridge bridge --client-id "e2e-dbridge-$$" --metrics-port $((TEST_METRICS_BASE + 6)) --session-expiry 300
check_eq "bridge starts" 0 $?
start_dashboard
check_eq "dashboard starts and joins its group" 0 $?
if ! kill -0 "$dash_pid" 2>/dev/null; then
    sed 's/^/# /' "$W/dashboard.log" | tail -20
    done_testing; exit
fi
check_eq "/healthz answers" ok "$(api /healthz | jget .status)"

# --- API -----------------------------------------------------------------------
t=$(now_ms)
pub "$ID-000001" "$(reading "$ID-000001" "$t" 48.137154 11.576124 72.5 true)"
pub "$ID-000002" "$(reading "$ID-000002" "$t" 52.520008 13.404954 0 true)"
pub "$ID-000003" "$(reading "$ID-000003" "$t" 40.712776 -74.005974 0 false)"
check "three trucks reach the dashboard" wait_for '.trucks == 3' /api/fleet 150
check_eq "/api/fleet counts by state" '{"trucks":3,"moving":1,"idle":1,"parked":1,"offline":0}' "$(api /api/fleet | jq -c .)"
one=$(api "/api/trucks/$ID-000001")
check_eq "/api/trucks/{id}: latest fields" "$ID-000001 $t 48.137154 11.576124 72.5 90 true 61.5 moving $t" \
    "$(echo "$one" | jget '[.truck_id, .ts, .lat, .lon, .speed_kmh, .heading_deg, .ignition, .fuel_pct, .state, .last_seen_ms] | map(tostring) | join(" ")')"
check_eq "/api/trucks/{id} of an unknown truck is 404" 404 "$(curl -s -o /dev/null -w '%{http_code}' "$URL/api/trucks/NOPE$$")"

pub "$ID-000001" "$(reading "$ID-000001" $((t - 60000)) 10 10 5 true)"
pub "$ID-000001" "$(reading "$ID-000001" "$t" 10 10 5 true)"
pub "$ID-000002" "$(reading "$ID-000002" $((t + 1000)) 52.6 13.5 0 true)"
check "a newer reading is applied" wait_for '.lat == 52.6' "/api/trucks/$ID-000002"
check_eq "late and repeated readings never move a truck back" "48.137154 $t" \
    "$(api "/api/trucks/$ID-000001" | jget '"\(.lat) \(.ts)"')"

box=$(api "/api/trucks?bbox=5,45,15,55")
check_eq "/api/trucks?bbox lists the trucks in the box" "$ID-000001 $ID-000002" \
    "$(echo "$box" | jget '[.trucks[].truck_id] | sort | join(" ")')"
check_eq "/api/trucks?bbox counts them" 2 "$(echo "$box" | jget .count)"
check_eq "a bad bbox is 400" 400 "$(curl -s -o /dev/null -w '%{http_code}' "$URL/api/trucks?bbox=1,2,x")"
check_eq "an inverted bbox is 400" 400 "$(curl -s -o /dev/null -w '%{http_code}' "$URL/api/trucks?bbox=10,2,3,4")"

mosquitto_pub -p "$MQTT_PORT" -q 1 -t "fleet/trucks/$ID-000003/status" -m offline
check "presence offline makes the truck offline" wait_for '.state == "offline"' "/api/trucks/$ID-000003"

al="{\"alert_id\":\"$ID-000002:stationary_engine_on:$t\",\"state\":\"raised\",\"truck_id\":\"$ID-000002\",\"rule\":\"stationary_engine_on\",\"started_ms\":$t,\"detected_ms\":$((t + 1200000)),\"lat\":52.6,\"lon\":13.5,\"details\":{\"minutes\":20}}"
printf '%s\n%s\nnot json\n' "$al" "$al" | kcat -b "$B" -P -t "${P}truck-alerts" -k "$ID-000002"
check "an alert record reaches /api/alerts" wait_for "map(select(.truck_id == \"$ID-000002\")) | length == 1" "/api/alerts?since=0"
check_eq "a repeated alert record is kept once" 1 "$(api "/api/alerts?since=0" | jget 'length')"
check_eq "/api/alerts?since filters by time" 0 "$(api "/api/alerts?since=$((t + 1200001))" | jget 'length')"
m=$(curl -s "$URL/metrics")
check_contains "/metrics serves the consumer's counters" 'fleetsync_dashboard_consumed_total{topic="telemetry"}' "$m"
check_contains "/metrics counts the invalid alert record" 'fleetsync_dashboard_invalid_total{topic="alerts"} 1' "$m"
check "/metrics counts late readings" test "$(echo "$m" | awk '$1 == "fleetsync_dashboard_stale_total" { print $2 }')" -ge 2
check_contains "the page is served" '<div id="map">' "$(api /)"
check_eq "leaflet is served from node_modules" 200 "$(curl -s -o /dev/null -w '%{http_code}' "$URL/vendor/leaflet/dist/leaflet.js")"
check_eq "the offline basemap is served" 200 "$(curl -s -o /dev/null -w '%{http_code}' "$URL/vendor/world-atlas/countries-50m.json")"
check_eq "paths outside the page are refused" 404 "$(curl -s -o /dev/null -w '%{http_code}' --path-as-is "$URL/../Makefile")"

# --- authentication: required off loopback, HTTP Basic ---------------------------
APORT=$((TEST_METRICS_BASE + 8))
echo "fleet:s3cret" >"$W/auth"
"$FS" dashboard --topic-prefix "$P" --group "e2e-dashboard-auth-$$" --listen "0.0.0.0:$APORT" --auth-file "$W/auth" \
    --insecure-http >"$W/auth.log" 2>&1 & # HTTPS: tests/e2e/test_dashboard_auth.sh
auth_pid=$!
for _ in $(seq 100); do curl -s "http://127.0.0.1:$APORT/healthz" | grep -q '"ok"' && break; sleep 0.1; done
check_eq "with --auth-file (and --insecure-http) it listens off loopback; /healthz needs no login" 200 \
    "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$APORT/healthz")"
check_eq "the API without credentials is 401" 401 "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$APORT/api/fleet")"
check_eq "wrong credentials are 401" 401 "$(curl -s -o /dev/null -w '%{http_code}' -u fleet:nope "http://127.0.0.1:$APORT/api/fleet")"
check_eq "the right credentials are 200" 200 "$(curl -s -o /dev/null -w '%{http_code}' -u fleet:s3cret "http://127.0.0.1:$APORT/api/fleet")"
check_eq "a WebSocket without credentials is refused" 1 \
    "$(node "$root/tests/e2e/dashboard_ws.js" "ws://127.0.0.1:$APORT/ws" wait:100 >/dev/null 2>&1; echo $?)"
kill -TERM "$auth_pid"; wait "$auth_pid"

# --- WebSocket protocol -------------------------------------------------------------
vp_eu='{"type":"viewport","bbox":[5,45,15,55],"zoom":6}'
( sleep 1.2; pub "$ID-000001" "$(reading "$ID-000001" $((t + 2000)) 48.2 11.6 80 true)" ) &
node "$root/tests/e2e/dashboard_ws.js" "$WS" "send:$vp_eu" wait:2500 'send:{"type":"ping"}' wait:300 >"$W/ws1.out" 2>&1
check_eq "ws: hello first" hello "$(head -1 "$W/ws1.out" | cut -d' ' -f2- | jget .type)"
frames=$(cut -d' ' -f2- "$W/ws1.out" | jq -c 'select(.type == "trucks")')
check_eq "ws: the first frame resets and holds the trucks in view" "true $ID-000001 $ID-000002" \
    "$(echo "$frames" | head -1 | jget '"\(.reset) \([.upsert[].truck_id] | sort | join(" "))"')"
check_eq "ws: a later reading comes as a delta of that truck only" "false $ID-000001 48.2" \
    "$(echo "$frames" | sed -n 2p | jget '"\(.reset) \([.upsert[].truck_id] | join(" ")) \(.upsert[0].lat)"')"
check_contains "ws: fleet counters are pushed" '"type":"fleet"' "$(cat "$W/ws1.out")"
check_contains "ws: ping is answered" '"type":"pong"' "$(cat "$W/ws1.out")"

node "$root/tests/e2e/dashboard_ws.js" "$WS" send:nope 'send:{"type":"zoom"}' 'send:{"type":"viewport","bbox":[1,2],"zoom":3}' \
    big:10000 bin:xyz "send:$vp_eu" wait:800 >"$W/ws2.out" 2>&1
check_eq "ws: the connection survives bad messages" 0 $?
check_eq "ws: each bad message gets an error frame with its code" "bad_json unknown_type bad_viewport too_large bad_json" \
    "$(cut -d' ' -f2- "$W/ws2.out" | jq -r 'select(.type == "error") | .error' | tr '\n' ' ' | sed 's/ $//')"
check_contains "ws: and a good one after them still works" '"type":"trucks"' "$(cat "$W/ws2.out")"

# --- under load: clusters, rate limit, slow client ---------------------------------
"$FS" sim --trucks 1500 --interval 1 --id-prefix "$SIMID" --quiet --metrics-port $((TEST_METRICS_BASE + 7)) >"$W/sim.log" 2>&1 &
sim_pid=$!
check "the simulator's 1500 trucks arrive" wait_for '.trucks >= 1503' /api/fleet 300
vp_world='{"type":"viewport","bbox":[-180,-85,180,85],"zoom":2}'
node "$root/tests/e2e/dashboard_ws.js" "$WS" "send:$vp_world" wait:3000 >"$W/ws3.out" 2>&1
cl=$(cut -d' ' -f2- "$W/ws3.out" | jq -c 'select(.type == "clusters")' | tail -1)
check_eq "ws: more than 1000 trucks in view come as clusters" clusters "$(echo "$cl" | jget .type)"
check "ws: at most 2000 features, and the counts add up to the total" \
    test "$(echo "$cl" | jget '(.clusters | length) <= 2000 and ([.clusters[].count] | add) == .total')" = true
node "$root/tests/e2e/dashboard_ws.js" "$WS" 'send:{"type":"viewport","bbox":[-75,40,-73,41.5],"zoom":9}' wait:1500 >"$W/ws4.out" 2>&1
check_eq "ws: a viewport with at most 1000 trucks gets individual trucks" trucks \
    "$(cut -d' ' -f2- "$W/ws4.out" | jq -r 'select(.type == "trucks" or .type == "clusters") | .type' | tail -1)"

# A burst of 300 readings of one truck: coalesced into fewer frames (at most
# one per 50 ms: bench/dashboard_limits.sh measures it), and the last frame
# carries the last reading.
vp_nyc='{"type":"viewport","bbox":[-75,40,-73,41.5],"zoom":9}'
( sleep 1; awk -v id="$ID-000003" -v t="$((t + 10000))" 'BEGIN { for (i = 1; i <= 300; i++)
    printf "{\"v\":1,\"truck_id\":\"%s\",\"ts\":%.0f,\"seq\":%d,\"lat\":%.4f,\"lon\":-74,\"speed_kmh\":60,\"ignition\":true}\n", id, t + i, i, 40.7 + i / 10000 }' |
    mosquitto_pub -p "$MQTT_PORT" -q 1 -t "fleet/trucks/$ID-000003/telemetry" -l ) &
node "$root/tests/e2e/dashboard_ws.js" "$WS" "send:$vp_nyc" wait:4000 >"$W/ws6.out" 2>&1
cut -d' ' -f2- "$W/ws6.out" | jq -c 'select(.type == "trucks" and .reset == false)' >"$W/burst"
nf=$(wc -l <"$W/burst")
check "ws: a burst of 300 readings is coalesced ($nf frames, fewer than readings)" test "$nf" -ge 1 -a "$nf" -lt 300
check_eq "ws: the last frame carries the last reading" 40.73 "$(tail -1 "$W/burst" | jget '.upsert[0].lat')"

node "$root/tests/e2e/dashboard_ws.js" "$WS" "send:$vp_world" \
    pause wait:4000 resume wait:1500 >"$W/ws5.out" 2>&1 &
slow=$!
sleep 1.5
# --max-time only catches a hang (how fast it answers: bench/dashboard_limits.sh).
check_eq "the API answers while a client does not read" 1503 \
    "$(curl -s --max-time 30 "$URL/api/fleet" | jq -r '[.trucks, 1503] | min' 2>/dev/null)"
wait "$slow"
check_eq "a slow client is not disconnected" 0 $?
last=$(tail -1 "$W/ws5.out" | cut -d' ' -f1)
check "a slow client gets fresh frames once it reads again" test "${last:-0}" -ge 4000

# --- restart under load ------------------------------------------------------------
# The wait only catches a hang (how long a stop takes: bench/dashboard_limits.sh).
kill -TERM "$dash_pid"
for _ in $(seq 600); do kill -0 "$dash_pid" 2>/dev/null || break; sleep 0.1; done
check_fails "SIGTERM stops the dashboard" kill -0 "$dash_pid"
kill -KILL "$dash_pid" 2>/dev/null
wait "$dash_pid"; rc=$?
check_eq "cleanly (exit 0)" 0 "$rc"
start_dashboard
check_eq "the dashboard starts again" 0 $?
# Trucks of the first part publish nothing any more: only the rebuild brings
# them back (how long it takes: bench/dashboard_limits.sh).
wait_for ".trucks >= 1503" /api/fleet 600
# At least: the shared broker's retained presence of other suites' trucks
# reaches this suite's bridge too, and a presence record makes a truck.
after=$(api /api/fleet | jget .trucks)
check "after a restart the map is populated again ($after trucks, at least the 1503 of this suite)" \
    test "${after:-0}" -ge 1503
check_eq "trucks that went silent are rebuilt from Kafka" "$ID-000001 48.2" \
    "$(api "/api/trucks/$ID-000001" | jget '"\(.truck_id) \(.lat)"')"
check "alerts are rebuilt too" wait_for "map(select(.truck_id == \"$ID-000002\")) | length == 1" "/api/alerts?since=0" 50
check_contains "the restart says it read back" "reading back the last" "$(cat "$W/dashboard.log")"

# --- the page in headless Chromium -------------------------------------------------
if [ -x /usr/bin/chromium ] && [ -d "$root/node_modules/playwright-core" ]; then
    # The browser test restarts the dashboard itself (RESTART); the new
    # process's pid comes back through $W/dash.pid.
    echo "$dash_pid" >"$W/dash.pid"
    cat >"$W/restart.sh" <<EOS
p=\$(cat "$W/dash.pid"); kill -TERM \$p; while kill -0 \$p 2>/dev/null; do sleep 0.1; done
"$FS" dashboard ${DASH_ARGS[*]} >>"$W/dashboard.log" 2>&1 </dev/null &
echo \$! >"$W/dash.pid"
EOS
    BROKERS=$B ALERT_TOPIC="${P}truck-alerts" RESTART="sh $W/restart.sh" \
        timeout 180 node "$root/tests/browser/dashboard.js" "$URL/" "$OUT" >"$W/browser.out" 2>&1
    dash_pid=$(cat "$W/dash.pid")
    while read -r verdict what; do
        case $verdict in
            PASS) _ok "browser: $what" ;;
            FAIL) _not_ok "browser: $what" ;;
            *) echo "# $verdict $what" ;;
        esac
    done <"$W/browser.out"
    check "browser: a screenshot is saved" test -s "$OUT/dashboard.png"
else
    _not_ok "browser: /usr/bin/chromium or playwright-core is missing (run scripts/bootstrap)"
fi

kill "$sim_pid" 2>/dev/null; wait "$sim_pid" 2>/dev/null; sim_pid=
kill -TERM "$dash_pid"
for _ in $(seq 100); do kill -0 "$dash_pid" 2>/dev/null || break; sleep 0.1; done
check_fails "SIGTERM at the end stops the dashboard" kill -0 "$dash_pid"
dash_pid=
check "no error in the dashboard's log" test "$(grep -c ' ERROR ' "$W/dashboard.log")" -eq 0
done_testing
