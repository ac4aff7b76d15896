#!/bin/bash
# `make demo` as a newcomer meets it: `fleetsync up` run from a private (0700)
# directory with no data dir given, as `make demo` runs it from a fresh clone.
# As root the services run as user fleetsync, which cannot enter a 0700
# directory of root's: the data goes to /var/lib/fleetsync/NAME-HASH and ./var
# links to it.  The default fleet carries the demo's incidents, so the
# dashboard shows trucks on the map and, within three minutes, an alert; a
# second run with --no-incidents shows no alert.  Own ports (the shared
# stack's + 75), own data dir.
. "$(dirname "$0")/lib.sh"

S=75
MQTT=$((TEST_MQTT_PORT + S)) KAFKA=$((TEST_KAFKA_PORT + S)) PGP=$((TEST_PG_PORT + S)) HTTP=$((TEST_HTTP_PORT + S))
W=$(mktemp -d /tmp/fleetsync-demo.XXXXXX) # mode 0700, like a clone under /root
unset FLEETSYNC_DATA_DIR
export FLEETSYNC_MQTT=mqtt://127.0.0.1:$MQTT FLEETSYNC_BROKERS=127.0.0.1:$KAFKA
export FLEETSYNC_PG="host=127.0.0.1 port=$PGP dbname=fleetsync user=fleetsync"
export FLEETSYNC_LISTEN=127.0.0.1:$HTTP FLEETSYNC_TOPIC_PREFIX=
B=127.0.0.1:$KAFKA
UP_PID=
cd "$W" || exit 1
target=
cleanup() {
    [ -n "$UP_PID" ] && kill -INT "$UP_PID" 2>/dev/null && wait "$UP_PID" 2>/dev/null
    (cd "$W" && "$FS" services stop >/dev/null 2>&1)
    [ -n "$target" ] && case "$target" in /var/lib/fleetsync/fleetsync-demo.*) rm -rf "$target" ;; esac
    rm -rf "$W"
}
trap cleanup EXIT

api() { curl -s --max-time 5 "http://127.0.0.1:$HTTP$1"; }
trucks_api() { api /api/fleet | jq -r '.trucks // empty'; }
# Alerts the dashboard holds, as "truck rule" lines.
alerts_api() { api "/api/alerts?since=0" | jq -r '.[] | select(.state == "raised") | "\(.truck_id) \(.rule)"' 2>/dev/null | sort -u; }
has_alert() { alerts_api | grep -qx "$1" && echo yes || echo no; }

check_eq "the work dir is private (mode 700)" 700 "$(stat -c %a "$W")"

"$FS" up --trucks 20 --metrics-base $((TEST_METRICS_BASE + S)) --check-interval 2 >"$W/up.out" 2>&1 &
UP_PID=$!
for _ in $(seq 180); do grep -q 'FleetSync is up' "$W/up.out" 2>/dev/null && break; sleep 1; done
t0=$(date +%s)
check_contains "up starts from the private dir" "FleetSync is up" "$(cat "$W/up.out")"
if [ "$(id -u)" -eq 0 ]; then
    target=$(readlink ./var)
    check "as root: ./var links to a data dir the service user can reach ($target)" \
        test -d "$target" -a "${target#/var/lib/fleetsync/}" != "$target"
    check_contains "up says where the data dir is" "$target" "$(cat "$W/up.out")"
else
    echo "ok - as root: ./var links to a data dir the service user can reach # skip not root"
    _n=$((_n + 1))
    check "./var is the data dir" test -d ./var
fi
check_contains "up says which trucks misbehave" "TRK-000001..3 misbehave" "$(cat "$W/up.out")"
check_contains "a new data dir: fleetsync ingest is the MQTT edge" "ingest      MQTT -> Kafka on 127.0.0.1:$MQTT" \
    "$(cat "$W/up.out")"

got=$(wait_prints 20 120 trucks_api)
check_eq "the map: /api/fleet counts all 20 trucks" 20 "$got"
check_contains "the map page is served" "<html" "$(api /)"

# The GPS jump comes first (reading at 20 s, evaluated on arrival).
got=$(wait_prints yes 240 has_alert "TRK-000001 gps_jump")
el=$(($(date +%s) - t0))
check_eq "an alert on the dashboard: TRK-000001 gps_jump" yes "$got"
check "... within three minutes of up being up ($el s)" test "$el" -le 180
# The alert comes within seconds of the jump, before the other two incidents
# (45 s and 1 min) have begun: wait for them.
incidents_started() {
    curl -s --max-time 5 "http://127.0.0.1:$((TEST_METRICS_BASE + S + 5))/metrics" |
        awk '$1 == "fleetsync_sim_incidents_started" { print $2 }'
}
check_eq "the simulator started the three incidents" 3 "$(wait_prints 3 120 incidents_started)"
check_eq "alerts only of the demo's trucks" "" "$(alerts_api | grep -v '^TRK-00000[123] ')"

kill -INT "$UP_PID"
wait "$UP_PID"
check_eq "SIGINT: up exits 0" 0 $?
UP_PID=

# --no-incidents: a quiet fleet; the simulator is given no incidents.  With
# --edge mosquitto: the simulator's readings go through Mosquitto and the
# bridge.
"$FS" up --trucks 20 --no-incidents --edge mosquitto --metrics-base $((TEST_METRICS_BASE + S)) --check-interval 2 \
    >"$W/up2.out" 2>&1 &
UP_PID=$!
for _ in $(seq 180); do grep -q 'FleetSync is up' "$W/up2.out" 2>/dev/null && break; sleep 1; done
check_contains "--no-incidents: up is up" "FleetSync is up" "$(cat "$W/up2.out")"
check "--no-incidents: up says nothing misbehaves" bash -c "! grep -q misbehave '$W/up2.out'"
sleep 2
sim=$(pgrep -af -- "$FS sim --quiet --trucks 20 " | grep -v pgrep) # this suite's, not another stack's 200
check_contains "--no-incidents: the simulator runs" "sim --quiet" "$sim"
check "--no-incidents: ... without a scenario" bash -c "! printf '%s' \"$sim\" | grep -q -- --scenario"
bridge_acked() {
    curl -s --max-time 5 "http://127.0.0.1:$((TEST_METRICS_BASE + S + 1))/metrics" |
        awk '$1 == "fleetsync_bridge_acked_total" { print ($2 >= 20) ? "yes" : "no" }'
}
check_eq "--edge mosquitto: the simulator's readings reach Kafka through the bridge" yes "$(wait_prints yes 60 bridge_acked)"
kill -INT "$UP_PID"
wait "$UP_PID"
check_eq "--no-incidents: SIGINT exits 0" 0 $?
UP_PID=

done_testing
