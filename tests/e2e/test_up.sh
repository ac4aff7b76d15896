#!/bin/bash
# fleetsync up, the main job (docs/up.md): from an empty data dir it starts its
# own Kafka and PostgreSQL (on ports of their own, not the shared stack's),
# fleetsync ingest as the MQTT edge (the default in a new data dir: no
# Mosquitto; with the data dir's certificates also on the TLS port), every
# pipeline and 200 simulated trucks with a scenario; checked through the real
# clients and the API: every truck on the dashboard, in history and in
# billing, the scenario's alerts in truck-alerts, status --json with every
# group; SIGINT stops everything, exit 0; a second up with --edge mosquitto
# (Mosquitto + bridge) resumes with the data intact.  With DATA_DIR/notify.json present the first
# up also runs notify: a webhook receiver (build/tools/webhook_receiver) gets
# the scenario's alerts, signed, and status shows group fleetsync-notify with its
# lag; the second up, the file moved away, runs no notify.
. "$(dirname "$0")/lib.sh"

S=60
MQTT=$((TEST_MQTT_PORT + S)) KAFKA=$((TEST_KAFKA_PORT + S)) PGP=$((TEST_PG_PORT + S)) HTTP=$((TEST_HTTP_PORT + S))
D=$(mktemp -d /tmp/fleetsync-up.XXXXXX)
chmod 755 "$D"
# The endpoints carry passwords (the broker without accounts ignores its;
# PostgreSQL's role gets the one of the password file written here before the
# first start, as services start keeps a D/pgpass it finds): none may show in
# ps or in a log.
MQTT_SECRET=UpMqttSecret$$ PG_SECRET=UpPgSecret$$
(umask 077 && printf '*:*:*:fleetsync:%s\n' "$PG_SECRET" >"$D/pgpass")
export FLEETSYNC_MQTT=mqtt://e2e-user:$MQTT_SECRET@127.0.0.1:$MQTT FLEETSYNC_BROKERS=127.0.0.1:$KAFKA
export FLEETSYNC_PG="host=127.0.0.1 port=$PGP dbname=fleetsync user=fleetsync password=$PG_SECRET"
export FLEETSYNC_LISTEN=127.0.0.1:$HTTP FLEETSYNC_DATA_DIR=$D FLEETSYNC_TOPIC_PREFIX=
export PGPASSFILE=$D/pgpass   # psql: the role fleetsync's password (services start)
B=127.0.0.1:$KAFKA
UP_PID= RX_PID=
cleanup() {
    [ -n "$UP_PID" ] && kill -INT "$UP_PID" 2>/dev/null && wait "$UP_PID" 2>/dev/null
    [ -n "$RX_PID" ] && kill "$RX_PID" 2>/dev/null
    "$FS" services stop >/dev/null 2>&1
    rm -rf "$D"
}
trap cleanup EXIT

cat >"$D/scenario.jsonl" <<'EOF'
{"truck_id":"TRK-000007","rule":"stationary_engine_on","at_s":1800,"duration_s":1500}
{"truck_id":"TRK-000009","rule":"gps_jump","at_s":600,"km":400}
{"truck_id":"TRK-000012","rule":"overspeed","at_s":3000,"duration_s":180,"speed_kmh":125}
EOF

# A routes file in the data dir: up runs notify, which posts every alert to a
# webhook receiver of this suite.
RX=$(dirname "$FS")/tools/webhook_receiver RXP=$((TEST_HTTP_PORT + S + 1)) RX_SECRET=up-webhook-secret-$$-0123
printf '{"destinations": {"hook": {"url": "http://127.0.0.1:%s/hook", "secret": "%s"}}, "routes": [{"to": ["hook"]}]}\n' \
    "$RXP" "$RX_SECRET" >"$D/notify.json"
chmod 600 "$D/notify.json"
"$RX" "$RXP" "$D/hook.jsonl" "$D/hook.ctl" 2>"$D/hook.log" &
RX_PID=$!
# The scenario's raised alerts the receiver got (answered 200), whose
# signature openssl verifies with the secret.
hook_rules() {
    local t v body mac
    jq -r 'select(.status == 200) | [(.headers["x-fleetsync-signature"] // "" |
            capture("^t=(?<t>[0-9]+),v1=(?<v>[0-9a-f]{64})$")? // {t: "0", v: "none"} | .t, .v), .body] | @tsv' \
        "$D/hook.jsonl" 2>/dev/null | while IFS=$'\t' read -r t v body; do
        mac=$(printf '%s.%s' "$t" "$body" | openssl dgst -sha256 -hmac "$RX_SECRET")
        [ "${mac##* }" = "$v" ] && printf '%s\n' "$body"
    done | jq -r 'select(.state == "raised") | "\(.truck_id) \(.rule)"' | sort -u |
        grep -cE '^(TRK-000007 stationary_engine_on|TRK-000009 gps_jump|TRK-000012 overspeed)$'
}

q() { psql -h 127.0.0.1 -p "$PGP" -U fleetsync -d fleetsync -Atqc "$1" 2>/dev/null; }
api() { curl -s --max-time 5 "http://127.0.0.1:$HTTP$1"; }
trucks_api() { api /api/fleet | jq -r '.trucks // empty'; }
# The simulator's trucks (TRK-000001..200; TRK-9000xx: single readings of this suite).
trucks_history() { q "SELECT count(DISTINCT truck_id) FROM telemetry WHERE truck_id NOT LIKE 'TRK-9000%'"; }
trucks_billing() { q "SELECT count(DISTINCT truck_id) FROM billing_daily"; }
alert_rules() {
    kcat -b "$B" -C -t truck-alerts -o beginning -e -q 2>/dev/null |
        jq -r 'select(.state == "raised") | "\(.truck_id) \(.rule)"' | sort -u |
        grep -E '^(TRK-000007 stationary_engine_on|TRK-000009 gps_jump|TRK-000012 overspeed)$' | wc -l
}

# The broker's certificate in D/tls/, as services start --tls makes it (CA,
# server certificate for 127.0.0.1): up gives the ingest a TLS listener on
# the TLS port (MQTT + 53).
TLSP=$((MQTT + 53))
mkdir -p "$D/tls"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$D/tls/ca.key" -out "$D/tls/ca.crt" \
    -days 2 -subj "/CN=e2e up CA" -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign \
    >/dev/null 2>&1 &&
    openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$D/tls/server.key" \
        -out "$D/tls/server.csr" -subj "/CN=localhost" >/dev/null 2>&1 &&
    printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n' >"$D/tls/server.ext" &&
    openssl x509 -req -in "$D/tls/server.csr" -CA "$D/tls/ca.crt" -CAkey "$D/tls/ca.key" -CAcreateserial \
        -out "$D/tls/server.crt" -days 2 -extfile "$D/tls/server.ext" >/dev/null 2>&1

# The simulated clock starts two hours back and runs as fast as the edge
# takes it, then in real time: the scenario's incidents are in the past.
"$FS" up --trucks 200 --interval 10 --scenario "$D/scenario.jsonl" --start now-2h --speedup 0 \
    --metrics-base $((TEST_METRICS_BASE + 60)) --check-interval 2 >"$D/up.out" 2>&1 &
UP_PID=$!
t0=$(date +%s)

got=$(wait_prints 200 180 trucks_api)
check_eq "dashboard: /api/fleet counts all 200 trucks" 200 "$got"
check_contains "up prints the dashboard URL" "http://127.0.0.1:$HTTP/" "$(cat "$D/up.out")"
kids=$(pgrep -P "$UP_PID" | tr '\n' ' ')
args=$(for k in $kids; do tr '\0' ' ' <"/proc/$k/cmdline"; echo; done)
check "up runs its children (ingest, pipelines, simulator): $(printf '%s\n' "$args" | grep -c fleetsync) seen" \
    test "$(printf '%s\n' "$args" | grep -c fleetsync)" -ge 5
check_eq "no child's command line (ps) holds the MQTT or PostgreSQL password" 0 \
    "$(printf '%s\n' "$args" | grep -c -e "$MQTT_SECRET" -e "$PG_SECRET")"
check_eq "the children get the endpoints by environment (FLEETSYNC_MQTT, FLEETSYNC_PG)" 2 \
    "$(k=${kids%% *}; tr '\0' '\n' <"/proc/$k/environ" | grep -c -e "^FLEETSYNC_MQTT=.*$MQTT_SECRET" -e "^FLEETSYNC_PG=.*$PG_SECRET")"
check_contains "up's banner shows the MQTT URL with its password masked" "mqtt://e2e-user:***@127.0.0.1:$MQTT" \
    "$(cat "$D/up.out")"
check_eq "no log of up or of its children holds a password" 0 \
    "$(cat "$D/up.out" "$D"/log/*.log 2>/dev/null | grep -a -c -e "$MQTT_SECRET" -e "$PG_SECRET")"
got=$(wait_prints 200 120 trucks_history)
check_eq "history: rows for every truck" 200 "$got"
got=$(wait_prints 200 120 trucks_billing)
check_eq "billing: billing_daily rows for every truck" 200 "$got"
# The simulated past must be caught up first: on a loaded machine that takes a while.
got=$(wait_prints 3 240 alert_rules)
check_eq "truck-alerts: the scenario's three incidents raised" 3 "$got"
[ "$got" = 3 ] || { echo "# raised:"; kcat -b "$B" -C -t truck-alerts -o beginning -e -q 2>/dev/null |
    jq -r 'select(.state == "raised") | "#   \(.truck_id) \(.rule) \(.started_ms)"' | sort -u | head -20; }

got=$(wait_prints 3 60 hook_rules)
check_eq "notify (run by up: DATA_DIR/notify.json) posts the scenario's three alerts to the webhook, signed" 3 "$got"
check_contains "up's banner names the routes file" "alerts to webhooks, routes $D/notify.json" "$(cat "$D/up.out")"

# Let the run reach 90 s, then look at status and the status line.
while [ $(($(date +%s) - t0)) -lt 90 ]; do sleep 2; done
st=$("$FS" status --json 2>/dev/null)
for g in fleetsync-dashboard fleetsync-history fleetsync-detector fleetsync-billing fleetsync-notify; do
    check_eq "status --json: group $g with a member" 1 \
        "$(printf '%s' "$st" | jq --arg g "$g" '[.groups[] | select(.group == $g and .members >= 1)] | length')"
done
check_eq "status --json: every service healthy (Kafka, PostgreSQL; no Mosquitto with the ingest)" "kafka postgres" \
    "$(printf '%s' "$st" | jq -r '[.services[] | select(.healthy) | .name] | join(" ")')"
check "status --json: the ingest (DATA_DIR/run/ingest-metrics) acknowledged the simulator's readings" \
    test "$(printf '%s' "$st" | jq '.ingest.workers == 1 and .ingest.acknowledged >= 200')" = true
check_eq "default edge in a new data dir: up runs fleetsync ingest on the MQTT port (TLS too) and no bridge" "1 0" \
    "$(printf '%s\n' "$args" | grep -c " ingest .*--listen 127.0.0.1:$MQTT --tls 127.0.0.1:$TLSP ") $(printf '%s\n' "$args" | grep -c ' bridge ')"
check_eq "default edge: no Mosquitto runs (no pid file, no process on the data dir)" "0 0" \
    "$(ls "$D/run/mosquitto.pid" 2>/dev/null | wc -l) $(pgrep -fc "mosquitto -c $D/" || true)"
check_contains "up's banner names the ingest and its TLS port" \
    "ingest      MQTT -> Kafka on 127.0.0.1:$MQTT and TLS on 127.0.0.1:$TLSP" "$(cat "$D/up.out")"
check_eq "the data dir remembers the edge" ingest "$(cat "$D/mqtt-edge" 2>/dev/null)"
ss=$("$FS" services status); rc=$?
check_eq "services status exits 0 (Mosquitto is off, not down)" 0 "$rc"
check_contains "services status shows mosquitto off" "off" "$(grep '^mosquitto ' <<<"$ss")"
check_eq "services status --json marks mosquitto off" true \
    "$("$FS" services status --json | jq '.[] | select(.name == "mosquitto") | .off')"
check_eq "up names the TLS port to the data dir's clients (DATA_DIR/run/mqtt-tls)" "mqtts=$TLSP" "$(cat "$D/run/mqtt-tls")"
check_contains "up's status line tells trucks, rate, lag and alerts" "trucks 200" "$(grep -a 'msg/s' "$D/up.out" | tail -1)"
check_contains "up's status line has the lag per group" "detector" "$(grep -a 'msg/s' "$D/up.out" | tail -1)"
check_eq "status --json: notify's lag (group fleetsync-notify) is known" 1 \
    "$(printf '%s' "$st" | jq '[.groups[] | select(.group == "fleetsync-notify" and (.lag | type) == "number")] | length')"
check_contains "up's status line has notify's lag" " notify " "$(grep -a 'msg/s' "$D/up.out" | tail -1)"
restarts=$(grep -c 'restarting in' "$D/up.out")
check_eq "no child died during the run" 0 "$restarts"
[ "$restarts" -eq 0 ] || grep -a 'restarting in' "$D/up.out" | head -5 | sed 's/^/# /'
# After the status line's count of the simulator's 200 trucks: one more over TLS.
reading() { echo '{"v":1,"truck_id":"'"$1"'","ts":'"$(date +%s%3N)"',"seq":1,"lat":48.1,"lon":11.5,"speed_kmh":50.5,"ignition":true,"fuel_pct":50,"driver":"x"}'; }
truck_rows() { q "SELECT count(*) FROM telemetry WHERE truck_id = '$1'"; }
timeout 20 mosquitto_pub -h 127.0.0.1 -p "$TLSP" --cafile "$D/tls/ca.crt" -i TRK-900002 -q 1 \
    -t fleet/trucks/TRK-900002/telemetry -m "$(reading TRK-900002)"
check_eq "a QoS 1 reading over TLS (mosquitto_pub --cafile DATA_DIR/tls/ca.crt) is acknowledged" 0 $?
check_eq "... and reaches history" 1 "$(wait_prints 1 60 truck_rows TRK-900002)"

# SIGINT: everything stops, exit 0, nothing left running.
pids=$(grep -ao 'started [a-z]* (pid [0-9]*' "$D/up.out" | grep -o '[0-9]*$')
pids="$pids $(cat "$D"/run/*.pid 2>/dev/null)"
rows=$(q "SELECT count(*) FROM telemetry")
billed=$(q "SELECT round(sum(distance_km)::numeric, 3) FROM billing_daily")
kill -INT "$UP_PID"
wait "$UP_PID"
check_eq "SIGINT: up exits 0" 0 $?
UP_PID=
left=
for p in $pids; do kill -0 "$p" 2>/dev/null && left="$left $p"; done
check_eq "SIGINT: every child and service is gone" "" "$left"
[ -z "$left" ] || ps -o pid,args -p ${left// /,} | sed 's/^/# /'

# A second up (no simulator) resumes with the data intact; without a routes
# file it runs no notify.  It takes MQTT with Mosquitto + bridge (--edge
# mosquitto): a reading published on the MQTT port reaches history through
# them.
mv "$D/notify.json" "$D/notify.json.off"
"$FS" up --no-sim --edge mosquitto --metrics-base $((TEST_METRICS_BASE + 60)) --check-interval 2 >"$D/up2.out" 2>&1 &
UP_PID=$!
got=$(wait_prints 200 120 trucks_history)
check_eq "second up: history still has every truck" 200 "$got"
# Once up has started its children (dashboard is the last before notify):
for _ in $(seq 120); do grep -aq 'started dashboard' "$D/up2.out" && break; sleep 1; done
sleep 2
check_contains "second up, no routes file: the banner says notify is off" "off: no $D/notify.json" "$(cat "$D/up2.out")"
check_eq "second up, no routes file: notify is not started (no notify child, no 'started notify')" "0 0" \
    "$(for k in $(pgrep -P "$UP_PID"); do tr '\0' ' ' <"/proc/$k/cmdline"; echo; done | grep -c ' notify ') $(grep -ac 'started notify' "$D/up2.out")"
kids2=$(for k in $(pgrep -P "$UP_PID"); do tr '\0' ' ' <"/proc/$k/cmdline"; echo; done)
check_eq "--edge mosquitto: up runs the bridge and no ingest" "1 0" \
    "$(printf '%s\n' "$kids2" | grep -c ' bridge ') $(printf '%s\n' "$kids2" | grep -c ' ingest ')"
check "--edge mosquitto: services status has Mosquitto healthy" bash -c "'$FS' services status | grep -q '^mosquitto .* healthy'"
check_eq "--edge mosquitto: the data dir forgets the ingest edge" no "$(test -e "$D/mqtt-edge" && echo yes || echo no)"
bridge_subscribed() {
    curl -s "http://127.0.0.1:$((TEST_METRICS_BASE + 61))/metrics" | awk '$1 == "fleetsync_bridge_mqtt_connected" { print $2 }'
}
wait_prints 1 60 bridge_subscribed >/dev/null
timeout 20 mosquitto_pub -p "$MQTT" -i TRK-900001 -q 1 -t fleet/trucks/TRK-900001/telemetry -m "$(reading TRK-900001)"
check_eq "--edge mosquitto: a QoS 1 reading published on the MQTT port is acknowledged" 0 $?
check_eq "--edge mosquitto: through the bridge it reaches history" 1 "$(wait_prints 1 60 truck_rows TRK-900001)"
after=$(q "SELECT count(*) FROM telemetry")
check "second up: no reading lost ($rows before the stop, $after after)" test "${after:-0}" -ge "${rows:-1}"
billed2=$(q "SELECT round(sum(distance_km)::numeric, 3) FROM billing_daily")
check "second up: billed distance kept ($billed km before, $billed2 km after)" \
    awk -v a="${billed:-0}" -v b="${billed2:--1}" 'BEGIN { exit !(b >= a && a > 0) }'
kill -INT "$UP_PID"
wait "$UP_PID"
check_eq "second up: SIGINT exits 0" 0 $?
UP_PID=
check_eq "second up: no process of the data dir is left" "" "$(pgrep -f -- "--data-dir $D" | tr '\n' ' ')"

done_testing
