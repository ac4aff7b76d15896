#!/bin/bash
# bench/dashboard_limits.sh - the live map's time limits, measured under a
# moving fleet (bench/dashboard runs it and puts its table in
# docs/bench/dashboard.md; tests/e2e/test_dashboard.sh asserts the same
# behaviour without timing thresholds).
#
# Needs the FLEETSYNC_* / TEST_* environment of tests/e2e/stack.sh (or the
# bench's, with TEST_HTTP_PORT, TEST_MQTT_PORT and TEST_METRICS_BASE set) and
# a running stack; the dashboard port must be free.  Starts a bridge, a
# dashboard and `fleetsync sim --trucks TRUCKS --interval 1` on topics of its
# own, then measures:
#   frames     map frames a client receives over 3 s with a viewport of at most
#              1000 moving trucks (server_ms of the first and last): at most
#              one per 50 ms
#   burst      300 readings of one truck published at once: frames carrying
#              them over their server_ms span: at most one per 50 ms (+2 for
#              the ends)
#   api        GET /api/fleet while a WebSocket client does not read: < 1 s
#   stop       SIGTERM -> exit of the dashboard under that load: < 10 s
#   rebuild    start of a new dashboard -> its map holds every truck again
#              (read back from Kafka): < 10 s
# Prints one markdown table row per figure: | figure | measured | limit | met |.
#
#   bash bench/dashboard_limits.sh            (TRUCKS=1500 by default)
set -u
root=$(cd "$(dirname "$0")/.." && pwd)
FS=${FLEETSYNC_BIN:?source tests/e2e/stack.sh first}
TRUCKS=${TRUCKS:-1500}
P="limits$$-" ID="LIM$$"
W=$(mktemp -d /tmp/fleetsync-dashboard-limits.XXXXXX)
URL=http://127.0.0.1:$TEST_HTTP_PORT
WS=ws://127.0.0.1:$TEST_HTTP_PORT/ws
bp= dp= sp=
cleanup() {
    for p in $sp $dp $bp; do kill "$p" 2>/dev/null && wait "$p" 2>/dev/null; done
    rm -rf "$W"
}
trap cleanup EXIT
die() { echo "dashboard_limits: $*" >&2; exit 1; }
now_ms() { date +%s%3N; }
trucks() { curl -s --max-time 5 "$URL/api/fleet" | jq -r '.trucks // 0' 2>/dev/null || echo 0; }
# row FIGURE MEASURED LIMIT CONDITION
row() { echo "| $1 | $2 | $3 | $(if [ "$4" = 1 ]; then echo met; else echo "**not met**"; fi) |"; }
start_dashboard() {
    "$FS" dashboard --topic-prefix "$P" --group "limits-$$" --listen "127.0.0.1:$TEST_HTTP_PORT" --metrics-port -1 \
        >>"$W/dash.log" 2>&1 &
    dp=$!
}

"$FS" services start --topic-prefix "$P" >/dev/null 2>&1 || die "cannot create the topics of $P"
"$FS" bridge --topic-prefix "$P" --data-dir "$W" --quiet --client-id "limits-br-$$" \
    --metrics-port $((TEST_METRICS_BASE + 6)) >"$W/bridge.log" 2>&1 &
bp=$!
start_dashboard
"$FS" sim --trucks "$TRUCKS" --interval 1 --id-prefix "$ID-" --clear-presence --quiet \
    --metrics-port $((TEST_METRICS_BASE + 7)) >"$W/sim.log" 2>&1 &
sp=$!
for _ in $(seq 600); do [ "$(trucks)" -ge "$TRUCKS" ] 2>/dev/null && break; sleep 0.1; done
[ "$(trucks)" -ge "$TRUCKS" ] 2>/dev/null || die "the map did not get the $TRUCKS trucks: $(tail -3 "$W/dash.log")"

# frames: for 3 s, a busy viewport: the largest square around the median
# truck holding at most 1000 trucks, so they come individually, as deltas
# (a clusters frame equal to the previous one is not sent at all).
world='{"type":"viewport","bbox":[-180,-85,180,85],"zoom":2}'
busy=$(curl -s --max-time 10 "$URL/api/trucks?bbox=-30,30,50,75" | jq -c --arg p "$ID-" '
    [.trucks[] | select(.truck_id | startswith($p))] as $t
    | ($t | map(.lat) | sort | .[length / 2 | floor]) as $la | ($t | map(.lon) | sort | .[length / 2 | floor]) as $lo
    | [0.125, 0.25, 0.5, 1, 2, 4, 8] | map(. as $h | {h: $h, n: ([$t[] | select((.lat - $la | fabs) <= $h and (.lon - $lo | fabs) <= $h)] | length)})
    | map(select(.n <= 1000)) | last
    | {type: "viewport", bbox: [($lo - .h), ($la - .h), ($lo + .h), ($la + .h)], zoom: 8, n: .n}' 2>/dev/null)
in_view=$(jq -r '.n // 0' <<<"$busy" 2>/dev/null)
node "$root/tests/e2e/dashboard_ws.js" "$WS" "send:$(jq -c 'del(.n)' <<<"$busy")" wait:3000 >"$W/busy.out" 2>&1
cut -d' ' -f2- "$W/busy.out" | jq -c 'select(.type == "clusters" or .type == "trucks")' >"$W/busy"
n=$(wc -l <"$W/busy") span=0
[ "$n" -gt 1 ] && span=$(( $(tail -1 "$W/busy" | jq .server_ms) - $(head -1 "$W/busy" | jq .server_ms) ))
row "map frames, a viewport of ${in_view:-?} moving trucks, 3 s" "$n frames over $span ms" \
    "at most one per 50 ms" "$([ "$n" -ge 1 ] && [ "$n" -le $((span / 50 + 1)) ] && echo 1)"

# burst: 300 readings of one truck, alone in its viewport
vp='{"type":"viewport","bbox":[-75,40,-73,41.5],"zoom":9}'
t=$(now_ms)
( sleep 1; awk -v id="$ID-B" -v t="$t" 'BEGIN { for (i = 1; i <= 300; i++)
    printf "{\"v\":1,\"truck_id\":\"%s\",\"ts\":%.0f,\"seq\":%d,\"lat\":%.4f,\"lon\":-74,\"speed_kmh\":60,\"ignition\":true}\n", id, t + i, i, 40.7 + i / 10000 }' |
    mosquitto_pub -p "$TEST_MQTT_PORT" -q 1 -t "fleet/trucks/$ID-B/telemetry" -l ) &
node "$root/tests/e2e/dashboard_ws.js" "$WS" "send:$vp" wait:4000 >"$W/burst.out" 2>&1
cut -d' ' -f2- "$W/burst.out" | jq -c "select(.type == \"trucks\" and .reset == false and any(.upsert[]; .truck_id == \"$ID-B\"))" \
    >"$W/burst"
nf=$(wc -l <"$W/burst") span=0
[ "$nf" -gt 0 ] && span=$(( $(tail -1 "$W/burst" | jq .server_ms) - $(head -1 "$W/burst" | jq .server_ms) ))
row "a burst of 300 readings of one truck" "$nf frames over $span ms" "at most one per 50 ms" \
    "$([ "$nf" -ge 1 ] && [ "$nf" -le $((span / 50 + 2)) ] && echo 1)"

# api: while a client with the world in view does not read
node "$root/tests/e2e/dashboard_ws.js" "$WS" "send:$world" pause wait:4000 resume wait:1500 >"$W/slow.out" 2>&1 &
slow=$!
sleep 1.5
s=$(date +%s%N)
curl -s --max-time 30 "$URL/api/fleet" >/dev/null
api_ms=$(( ($(date +%s%N) - s) / 1000000 ))
wait "$slow"
row "GET /api/fleet while a client does not read" "$api_ms ms" "< 1000 ms" "$([ "$api_ms" -lt 1000 ] && echo 1)"

# stop and rebuild
before=$(trucks)
kill -TERM "$dp"
s=$(date +%s%N)
for _ in $(seq 600); do kill -0 "$dp" 2>/dev/null || break; sleep 0.01; done
stop_ms=$(( ($(date +%s%N) - s) / 1000000 ))
kill -KILL "$dp" 2>/dev/null; wait "$dp" 2>/dev/null
row "SIGTERM -> exit under load" "$stop_ms ms" "< 10000 ms" "$([ "$stop_ms" -lt 10000 ] && echo 1)"
s=$(date +%s%N)
start_dashboard
for _ in $(seq 600); do [ "$(trucks)" -ge "$before" ] 2>/dev/null && break; sleep 0.05; done
rebuild_ms=$(( ($(date +%s%N) - s) / 1000000 ))
after=$(trucks)
row "restart -> the map holds its $before trucks again (read back from Kafka)" "$rebuild_ms ms ($after trucks)" \
    "< 10000 ms" "$([ "$after" -ge "$before" ] && [ "$rebuild_ms" -lt 10000 ] && echo 1)"
