#!/bin/bash
# Kafka with authentication and ACLs (`services start --secure`,
# docs/security.md), against a stack of its own (the test block + 100, data dir
# of its own): every Kafka client must log in with SASL as a FleetSync
# principal and may do only what that principal's ACLs grant.  Shown with
# kcat against the real broker: no credentials (client and controller
# listener) are refused; a reader (the dashboard) reads truck-telemetry but
# cannot write it; only detect writes truck-alerts; wrong passwords are
# refused.  The bridge and history find their credentials in the data dir and
# carry MQTT readings into PostgreSQL, detect writes an alert, billing and the
# dashboard read, `status` sees every group: all with no new option.  notify
# (principal fleetsync-notify) reads truck-alerts, posts detect's alert to a
# webhook receiver and dead-letters a record that is no alert to
# truck-alerts-dlq; it may not read truck-telemetry nor write truck-alerts,
# no other principal writes truck-alerts-dlq, and notify run with another
# principal's credentials (billing's) reads nothing and delivers nothing.  `--secure` on a
# running unauthenticated Kafka (the shared stack) is refused and changes
# nothing.  A secure 3-broker cluster replicates (brokers log in as the admin)
# and enforces the same ACLs.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/bridge_lib.sh"

SHARED_D=$FLEETSYNC_DATA_DIR SHARED_B=$FLEETSYNC_BROKERS
S=100
MQTT=$((TEST_MQTT_PORT + S)) KAFKA=$((TEST_KAFKA_PORT + S)) PGP=$((TEST_PG_PORT + S))
MB=$((TEST_METRICS_BASE + S))
D=$(mktemp -d /tmp/fleetsync-kafkasec.XXXXXX)
W=$D/work
mkdir -p "$W"
chmod 755 "$D"
export FLEETSYNC_MQTT=mqtt://127.0.0.1:$MQTT FLEETSYNC_BROKERS=127.0.0.1:$KAFKA
export FLEETSYNC_PG="host=127.0.0.1 port=$PGP dbname=fleetsync user=fleetsync"
export FLEETSYNC_DATA_DIR=$D FLEETSYNC_TOPIC_PREFIX=
export PGPASSFILE=$D/pgpass   # psql and the pipelines: this stack's role password (services start)
B=127.0.0.1:$KAFKA MQTT_PORT=$MQTT
P="e2eks$$-"           # topic prefix of this suite's pipeline
ID="KSEC$$-"           # truck id prefix
G="e2e-kafkasec-history-$$"
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done
    "$FS" services stop >/dev/null 2>&1
    [ -d "$D/cluster/run" ] && FLEETSYNC_DATA_DIR=$D/cluster "$FS" services stop >/dev/null 2>&1
    [ -z "${KEEP_W:-}" ] && rm -rf "$D"
}
trap cleanup EXIT

# --secure on the shared stack, whose Kafka runs without authentication.
if [ -f "$SHARED_D/run/kafka.pid" ]; then
    rc=0; out=$(FLEETSYNC_DATA_DIR=$SHARED_D FLEETSYNC_BROKERS=$SHARED_B FLEETSYNC_MQTT=mqtt://127.0.0.1:$TEST_MQTT_PORT \
        FLEETSYNC_PG="host=127.0.0.1 port=$TEST_PG_PORT dbname=fleetsync user=fleetsync" \
        "$FS" services start --secure 2>&1) || rc=$?
    check_eq "--secure on a running unauthenticated Kafka is refused" 1 "$rc"
    check_contains "and says to stop it first" "services stop' first" "$out"
    check_fails "and leaves that data dir as it was (no D/kafka-auth)" test -e "$SHARED_D/kafka-auth"
fi

t0=$(date +%s%N)
rc=0; "$FS" services start --secure --topic-prefix "$P" --timeout 120 >"$W/start.out" 2>&1 || rc=$?
check_eq "services start --secure on ports of its own (in $(( ($(date +%s%N) - t0) / 1000000 )) ms)" 0 "$rc"
[ "$rc" = 0 ] || { sed 's/^/# /' "$W/start.out"; done_testing; exit 1; }
check_contains "start says Kafka wants SASL and enforces ACLs" "SASL/PLAIN and ACLs" "$(cat "$W/start.out")"
check_eq "the secret is 0600 in a 0700 folder" "600 700" \
    "$(stat -c %a "$D/kafka-auth/secret") $(stat -c %a "$D/kafka-auth")"
check_eq "server.properties (it holds the passwords) is 0600" 600 "$(stat -c %a "$D/kafka/server.properties")"
check "services status: healthy (its probe logs in as the admin)" "$FS" services status
check "a second start (no flag) keeps the stack secure and creates the default prefix's ACLs" \
    "$FS" services start
check_eq "topics of the suite's prefix exist (kcat as the admin)" 0 "$(topics_ready; echo $?)"

# --- no credentials, wrong credentials ----------------------------------------
out=$(timeout 20 kcat -b "$B" -L -m 5 2>&1)
check_contains "kcat without credentials gets no metadata" "Failed to acquire metadata" "$out"
rc=0; echo "${ID}anon:x" | timeout 20 kcat -b "$B" -P -t "${P}truck-telemetry" -K: -m 5 >/dev/null 2>&1 || rc=$?
check "kcat without credentials cannot produce (exit $rc)" test "$rc" -ne 0
out=$(timeout 20 kcat -b "127.0.0.1:$((KAFKA + 1))" -L -m 5 2>&1)
check_contains "the controller listener refuses a client without credentials" "Failed to acquire metadata" "$out"
out=$(timeout 20 kcat -b "127.0.0.1:$((KAFKA + 1))" $(kafka_sasl_args fleetsync-bridge) -L -m 5 2>&1)
check_contains "the controller listener refuses a FleetSync client principal too" "Failed to acquire metadata" "$out"
out=$(timeout 20 kcat -b "$B" -X security.protocol=SASL_PLAINTEXT -X sasl.mechanisms=PLAIN \
    -X sasl.username=fleetsync-admin -X sasl.password=0123456789abcdef0123456789abcdef -L -m 5 2>&1)
check_contains "a wrong admin password is refused" "Invalid username or password" "$out"

# --- what each principal may do ------------------------------------------------
# produce USER TOPIC KEY: one record as USER; prints kcat's exit status
# (kcat -P exits 1 when a delivery fails), its output in $W/produce-USER.out.
# shellcheck disable=SC2046
produce() {
    local rc=0
    echo "$3:{}" | timeout 30 kcat $(kafka_sasl_args "$1") -b "$B" -P -t "$2" -K: >"$W/produce-$1.out" 2>&1 || rc=$?
    echo "$rc"
}
# refused USER TOPIC KEY: the broker refused USER's record for lack of an ACL.
refused() {
    [ "$(produce "$@")" -ne 0 ] && grep -q 'Topic authorization failed' "$W/produce-$1.out"
}
keys() { kc -b "$B" -C -t "$1" -o beginning -e -q -f '%k\n' 2>/dev/null | grep -c "^$2" || true; }
# shellcheck disable=SC2046
check_eq "the dashboard (a reader) reads truck-telemetry" 0 \
    "$(timeout 30 kcat $(kafka_sasl_args fleetsync-dashboard) -b "$B" -C -t "${P}truck-telemetry" -o beginning -e -q \
        >/dev/null 2>&1; echo $?)"
check "the dashboard cannot produce to truck-telemetry (Topic authorization failed)" \
    refused fleetsync-dashboard "${P}truck-telemetry" "${ID}dash"
check "history (a reader) cannot produce to truck-telemetry" refused fleetsync-history "${P}truck-telemetry" "${ID}hist"
check "detect cannot produce to truck-telemetry" refused fleetsync-detect "${P}truck-telemetry" "${ID}det"
check_eq "the bridge produces to truck-telemetry" 0 "$(produce fleetsync-bridge "${P}truck-telemetry" "${ID}brg")"
check_eq "the simulator (sim --kafka) produces to truck-telemetry" 0 "$(produce fleetsync-sim "${P}truck-telemetry" "${ID}sim")"
for u in fleetsync-bridge fleetsync-dashboard fleetsync-history fleetsync-billing fleetsync-sim; do
    check "$u cannot produce to truck-alerts" refused "$u" "${P}truck-alerts" "${ID}alert-$u"
done
check_eq "detect produces to truck-alerts" 0 "$(produce fleetsync-detect "${P}truck-alerts" "${ID}alert-detect")"
check_eq "truck-telemetry holds the bridge's and the simulator's records, none of the refused ones" "2 0" \
    "$(keys "${P}truck-telemetry" "${ID}\(brg\|sim\)") $(keys "${P}truck-telemetry" "${ID}\(anon\|dash\|hist\|det\)")"
check_eq "truck-alerts holds detect's record only" "1 0" \
    "$(keys "${P}truck-alerts" "${ID}alert-detect") $(keys "${P}truck-alerts" "${ID}alert-fleetsync-[^d]")"
# shellcheck disable=SC2046
check_contains "the billing reader cannot read truck-alerts" "authorization failed" \
    "$(timeout 30 kcat $(kafka_sasl_args fleetsync-billing) -b "$B" -C -t "${P}truck-alerts" -o beginning -e -q 2>&1)"

# notify: reads truck-alerts, writes truck-alerts-dlq only.
# shellcheck disable=SC2046
check_eq "notify reads truck-alerts" 0 \
    "$(timeout 30 kcat $(kafka_sasl_args fleetsync-notify) -b "$B" -C -t "${P}truck-alerts" -o beginning -e -q \
        >/dev/null 2>&1; echo $?)"
# shellcheck disable=SC2046
check_contains "notify cannot read truck-telemetry" "authorization failed" \
    "$(timeout 30 kcat $(kafka_sasl_args fleetsync-notify) -b "$B" -C -t "${P}truck-telemetry" -o beginning -e -q 2>&1)"
check "notify cannot produce to truck-alerts (no forged alerts)" refused fleetsync-notify "${P}truck-alerts" "${ID}alert-notify"
check "notify cannot produce to truck-telemetry" refused fleetsync-notify "${P}truck-telemetry" "${ID}notify"
check_eq "notify produces to truck-alerts-dlq" 0 "$(produce fleetsync-notify "${P}truck-alerts-dlq" "${ID}dlq-notify")"
for u in fleetsync-detect fleetsync-history fleetsync-dashboard; do
    check "$u cannot produce to truck-alerts-dlq" refused "$u" "${P}truck-alerts-dlq" "${ID}dlq-$u"
done

# The simulator's --kafka mode (it stands in for the bridge) logs in as fleetsync-sim.
rc=0; "$FS" sim --trucks 4 --interval 10 --duration 60 --speedup 0 --id-prefix "${ID}SIM" --metrics-port -1 --quiet \
    --start "$(date -u -d '-1 hour' +%Y-%m-%dT%H:%M:%SZ)" --kafka --topic-prefix "$P" >"$W/sim-kafka.out" 2>&1 || rc=$?
check_eq "sim --kafka exits 0 against the secure Kafka" 0 "$rc"
check_contains "and every reading is acknowledged" "acknowledged 24, failed 0" "$(cat "$W/sim-kafka.out")"
check_eq "its 24 readings are in truck-telemetry" 24 "$(keys "${P}truck-telemetry" "${ID}SIM")"

# --- the pipeline finds its credentials in the data dir ------------------------
# Every component as it runs in production, with no Kafka option: the bridge
# writes, history, detect, billing and the dashboard read, detect writes alerts.
HTTP=$((TEST_HTTP_PORT + S))
GD="e2e-kafkasec-detect-$$" GB="e2e-kafkasec-billing-$$"
"$FS" bridge --topic-prefix "$P" --client-id "e2e-kafkasec-$$" --metrics-port "$MB" >"$W/bridge.log" 2>&1 &
pids+=($!)
"$FS" history --topic-prefix "$P" --group "$G" --metrics-port $((MB + 1)) >"$W/history.log" 2>&1 &
pids+=($!)
"$FS" detect --topic-prefix "$P" --group "$GD" --state-dir "$W/detect" --start earliest --lateness 0 --metrics-port $((MB + 2)) \
    >"$W/detect.log" 2>&1 &
pids+=($!)
"$FS" billing --topic-prefix "$P" --group "$GB" --metrics-port $((MB + 3)) >"$W/billing.log" 2>&1 &
pids+=($!)
"$FS" dashboard --topic-prefix "$P" --listen "127.0.0.1:$HTTP" --metrics-port -1 \
    >"$W/dashboard.log" 2>&1 &
pids+=($!)
# The dashboard starts at the end of the topics: publish once it has its partitions.
for _ in $(seq 300); do
    grep -q subscribed "$W/bridge.log" && grep -q assigned "$W/dashboard.log" && break
    sleep 0.1
done
N=200
for t in 1 2; do lines "${ID}00000$t" 0 $((N / 2)) | pub_lines "${ID}00000$t"; done
# A speeding truck: 150 km/h for 100 s of event time (overspeed: over 100 km/h for 60 s).
awk -v id="${ID}000009" -v now="$(date +%s%3N)" 'BEGIN { for (i = 0; i < 100; i++)
    printf "{\"v\":1,\"truck_id\":\"%s\",\"ts\":%.0f,\"seq\":%d,\"lat\":48.1%04d,\"lon\":11.5,\"speed_kmh\":150,\"ignition\":true,\"fuel_pct\":50}\n", id, now - 100000 + i * 1000, i, i }' |
    pub_lines "${ID}000009"
N=$((N + 100))
rows() { psql "$FLEETSYNC_PG" -XAtqc "SELECT count(*) FROM telemetry WHERE truck_id LIKE '${ID}0%'" 2>/dev/null || echo 0; }
check_eq "MQTT readings reach PostgreSQL through the bridge and history, both logged in to Kafka" "$N" \
    "$(wait_until "$N" 240 rows)"
alerts() { keys "${P}truck-alerts" "${ID}000009"; }
check "detect reads truck-telemetry and writes an overspeed alert to truck-alerts" \
    test "$(wait_until 1 120 alerts)" -ge 1
# notify, with its credentials from the data dir, posts detect's alert to a
# webhook receiver; detect's "{}" record (above) is no alert: dead-lettered.
RX=$(dirname "$FS")/tools/webhook_receiver GN="e2e-kafkasec-notify-$$" RXP=$((MB + 5))
printf '{"destinations": {"a": {"url": "http://127.0.0.1:%s/hook", "secret": "kafkasec-secret-%s-0123456789"}},
 "routes": [{"to": ["a"]}]}\n' "$RXP" "$$" >"$W/routes.json"
chmod 600 "$W/routes.json"
"$RX" "$RXP" "$W/rx.jsonl" "$W/rx.ctl" 2>>"$W/rx.log" &
pids+=($!)
"$FS" notify --routes "$W/routes.json" --topic-prefix "$P" --group "$GN" --start earliest --metrics-port $((MB + 4)) \
    >"$W/notify.log" 2>&1 &
pids+=($!)
posted() { jq -r 'select(.status == 200) | .headers["x-fleetsync-idempotency-key"]' "$W/rx.jsonl" 2>/dev/null |
    sort -u | grep -c "^${ID}000009:overspeed:.*:raised$"; }
check_eq "notify reads truck-alerts and posts detect's overspeed alert to the webhook" 1 "$(wait_until 1 60 posted)"
notify_dlq() { kc -b "$B" -C -t "${P}truck-alerts-dlq" -o beginning -e -q -f '%h\n' 2>/dev/null |
    grep "sink=$GN" | grep -c 'error=invalid_alert'; }
check_eq "notify writes truck-alerts-dlq (detect's {} record: invalid_alert)" 1 "$(wait_until 1 30 notify_dlq)"
# The same notify with billing's credentials (-X overrides the data dir's):
# billing may not read truck-alerts.
RXP2=$((MB + 6))
sed "s/:$RXP\//:$RXP2\//" "$W/routes.json" >"$W/routes2.json"
chmod 600 "$W/routes2.json"
"$RX" "$RXP2" "$W/rx2.jsonl" "$W/rx2.ctl" 2>>"$W/rx.log" &
pids+=($!)
billing_pass=$(kafka_sasl_args fleetsync-billing | sed 's/.*sasl.password=//')
"$FS" notify --routes "$W/routes2.json" --topic-prefix "$P" --group "$GN-wrong" --start earliest --metrics-port -1 \
    -X sasl.username=fleetsync-billing -X "sasl.password=$billing_pass" >"$W/notify-wrong.log" 2>&1 &
wrong=$!
pids+=($wrong)
denied() { grep -ci 'not authorized\|authorization failed' "$W/notify-wrong.log"; }
check "notify as another principal (billing) is refused truck-alerts" test "$(wait_until 1 30 denied)" -ge 1
sleep 3
check_eq "... and delivers nothing" 0 "$(cat "$W/rx2.jsonl" 2>/dev/null | wc -l)"
kill -TERM "$wrong" 2>/dev/null; wait "$wrong" 2>/dev/null
lag() {
    "$FS" status --json --topic-prefix "$P" --group "$1" 2>/dev/null |
        jq -r --arg g "$1" '[.groups[] | select(.group == $g) | .lag] | first // "none"'
}
for g in "$G" "$GD" "$GB" "$GN"; do
    check_eq "status (as the admin) shows group $g caught up" 0 "$(for _ in $(seq 60); do
        l=$(lag "$g"); [ "$l" = 0 ] && break; sleep 1; done; echo "$l")"
done
trucks() { curl -s --max-time 5 "http://127.0.0.1:$HTTP/api/trucks?bbox=-180,-90,180,90" | grep -o "${ID}00000[129]" | sort -u | wc -l; }
check_eq "the dashboard reads the fleet from Kafka" 3 "$(wait_until 3 60 trucks)"
for c in bridge history detect billing dashboard notify; do
    check_contains "$c logged in to Kafka as its own principal" "Kafka as fleetsync-$c" "$(cat "$W/$c.log")"
    check_eq "no authorization or authentication error in $c's log" 0 "$(grep -ci 'authoriz\|authenticat' "$W/$c.log")"
done
for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
pids=()

rc=0; "$FS" services stop >"$W/stop.out" 2>&1 || rc=$?
check_eq "services stop" 0 "$rc"
left=$(pgrep -af -- "$D" | grep -v pgrep || true)
check_eq "no process of the secure stack is left" "" "$left"

# --- a secure 3-broker cluster (same ports, a data dir of its own) ---------------
D2=$D/cluster
mkdir -p "$D2"
chmod 755 "$D2"
B3=127.0.0.1:$KAFKA,127.0.0.1:$((KAFKA + 2)),127.0.0.1:$((KAFKA + 4))
cl() { FLEETSYNC_DATA_DIR=$D2 FLEETSYNC_BROKERS=$B3 "$@"; }
rc=0; cl "$FS" services start --secure --kafka-brokers 3 --timeout 120 >"$W/start3.out" 2>&1 || rc=$?
check_eq "services start --secure --kafka-brokers 3" 0 "$rc"
[ "$rc" = 0 ] || sed 's/^/# /' "$W/start3.out"
# shellcheck disable=SC2046
repl=$(kcat $(kafka_sasl_args fleetsync-admin "$D2") -b "$B3" -L -J -t truck-telemetry 2>/dev/null |
    jq -r '.topics[0].partitions[] | "\(.partition):\(.replicas | length):\(.isrs | length)"' | xargs)
check_eq "truck-telemetry: 3 replicas each, all in sync (the brokers replicate as the admin over SASL)" \
    "0:3:3 1:3:3 2:3:3 3:3:3 4:3:3 5:3:3" "$repl"
for k in 0 2 4; do
    check_contains "broker on $((KAFKA + k)) refuses kcat without credentials" "Failed to acquire metadata" \
        "$(timeout 20 kcat -b "127.0.0.1:$((KAFKA + k))" -L -m 5 2>&1)"
done
# shellcheck disable=SC2046
cprod() {  # cprod USER KEY: one record to the cluster's truck-telemetry with acks=all
    local rc=0
    echo "$2:{}" | timeout 30 kcat $(kafka_sasl_args "$1" "$D2") -b "$B3" -P -t truck-telemetry -K: -X acks=all \
        >"$W/cprod-$1.out" 2>&1 || rc=$?
    echo "$rc"
}
check_eq "the bridge's principal writes to the cluster (acks=all)" 0 "$(cprod fleetsync-bridge "${ID}c-brg")"
check "the dashboard's is refused (Topic authorization failed)" \
    bash -c "[ \"$(cprod fleetsync-dashboard "${ID}c-dash")\" -ne 0 ] && grep -q 'Topic authorization failed' '$W/cprod-fleetsync-dashboard.out'"
# shellcheck disable=SC2046
check_eq "the cluster holds the bridge's record only" "${ID}c-brg" \
    "$(kcat $(kafka_sasl_args fleetsync-admin "$D2") -b "$B3" -C -t truck-telemetry -o beginning -e -q -f '%k\n' 2>/dev/null | xargs)"
rc=0; cl "$FS" services stop >"$W/stop3.out" 2>&1 || rc=$?
check_eq "services stop (cluster)" 0 "$rc"
check_eq "no process of the secure cluster is left" "" "$(pgrep -af -- "$D2" | grep -v pgrep || true)"
done_testing
