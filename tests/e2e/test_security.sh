#!/bin/bash
# MQTT identities and TLS (docs/security.md), against a stack of its
# own (it changes Mosquitto's configuration): real Mosquitto, Kafka and
# PostgreSQL on ports of their own (the test block + 70), started with --tls.
# Anonymous clients work until `fleetsync trucks add`; then a truck writes its
# own topics only, reads nothing, wrong or no password is refused, a gateway
# writes any truck's topics and its own presence, the bridge logs in with its
# account (over TLS) and sends a forged payload (truck_id != topic id) to the DLQ.  TLS:
# a client trusting the local CA connects, one that does not cannot; the
# simulator over mqtts:// delivers through the bridge into Kafka.
. "$(dirname "$0")/lib.sh"

S=70
MQTT=$((TEST_MQTT_PORT + S)) KAFKA=$((TEST_KAFKA_PORT + S)) PGP=$((TEST_PG_PORT + S))
TLS=$((MQTT + 53))
D=$(mktemp -d /tmp/fleetsync-sec.XXXXXX)
chmod 755 "$D"
export FLEETSYNC_MQTT=mqtt://127.0.0.1:$MQTT FLEETSYNC_BROKERS=127.0.0.1:$KAFKA
export FLEETSYNC_PG="host=127.0.0.1 port=$PGP dbname=fleetsync user=fleetsync"
export FLEETSYNC_DATA_DIR=$D FLEETSYNC_TOPIC_PREFIX=
export PGPASSFILE=$D/pgpass   # psql: the role fleetsync's password (services start)
B=127.0.0.1:$KAFKA
P="e2esec$$-"          # topic prefix
ID="SEC$$-"            # truck id prefix
T1=${ID}000001 T2=${ID}000002 T3=${ID}000003 GW=${ID}GW0001
bridge_pid=
cleanup() {
    [ -n "$bridge_pid" ] && kill -9 "$bridge_pid" 2>/dev/null
    "$FS" services stop >/dev/null 2>&1
    rm -rf "$D"
}
trap cleanup EXIT

count_topic() { kcat -b "$B" -C -t "$1" -o beginning -e -q -f "${3:-%k}\n" 2>/dev/null | grep -c "$2"; }
wait_count() {  # TOPIC PATTERN N: waits up to 30 s for N keys matching; prints the count
    local n=0
    for _ in $(seq 60); do
        n=$(count_topic "$1" "$2")
        [ "$n" -ge "$3" ] && break
        sleep 0.5
    done
    echo "$n"
}
reading() {  # reading TRUCK_ID SEQ: one valid telemetry payload
    echo "{\"v\":1,\"truck_id\":\"$1\",\"ts\":$(date +%s%3N),\"seq\":$2,\"lat\":48.1,\"lon\":11.5,\"speed_kmh\":50,\"ignition\":true}"
}
pass_of() { "$FS" trucks password "$1" 2>/dev/null | awk '{ print $2 }'; }
# pub USER PASS TOPIC MSG [more mosquitto_pub args]: MQTT v5, QoS 1, so a refused
# publish is reported (PUBACK "Not authorized"); prints stdout+stderr, returns its status.
pub() {
    local u=$1 pw=$2 t=$3 m=$4; shift 4
    mosquitto_pub -V mqttv5 -q 1 -p "$MQTT" -u "$u" -P "$pw" -t "$t" -m "$m" "$@" 2>&1
}
# A refused CONNECT reads "not authorised" (MQTT 3.1.1) or "Not authorized" (v5).
refused() { printf '%s' "$1" | grep -qi 'not authori[sz]ed' && echo refused || printf '%s' "$1"; }

s0=$(date +%s)
if "$FS" services start --tls --topic-prefix "$P" --timeout 120 >"$D/start.out" 2>&1; then
    echo "ok - services start --tls on ports of its own ($(( $(date +%s) - s0 )) s)"
else
    echo "not ok - services start --tls"; sed 's/^/# /' "$D/start.out"; exit 1
fi
check "the local CA and server certificate exist" test -s "$D/tls/ca.crt" -a -s "$D/tls/server.crt"
check "the server certificate names 127.0.0.1 and is signed by the CA" \
    bash -c "openssl x509 -in '$D/tls/server.crt' -noout -ext subjectAltName | grep -q 'IP Address:127.0.0.1' &&
             openssl verify -CAfile '$D/tls/ca.crt' '$D/tls/server.crt'"
check "the CA key is the operator's alone (0600)" test "$(stat -c %a "$D/tls/ca.key")" = 600
check "the dashboard's certificate: signed by the CA, for 127.0.0.1 and localhost" \
    bash -c "openssl x509 -in '$D/tls/dashboard.crt' -noout -ext subjectAltName | grep -q 'IP Address:127.0.0.1, DNS:localhost' &&
             openssl verify -CAfile '$D/tls/ca.crt' '$D/tls/dashboard.crt'"
check "its key is the operator's alone (0600)" test "$(stat -c %a "$D/tls/dashboard.key")" = 600
DP=$((TEST_METRICS_BASE + S + 1))
"$FS" dashboard --listen "127.0.0.1:$DP" --tls --topic-prefix "$P" --group "e2e-sec-dash-$$" >"$D/dash.log" 2>&1 &
dash_pid=$!
for _ in $(seq 100); do curl -s --cacert "$D/tls/ca.crt" "https://localhost:$DP/healthz" >/dev/null && break; sleep 0.1; done
check_eq "dashboard --tls serves https with the local CA's certificate (curl --cacert D/tls/ca.crt)" 200 \
    "$(curl -s -o /dev/null -w '%{http_code}' --cacert "$D/tls/ca.crt" "https://localhost:$DP/api/fleet")"
kill -TERM "$dash_pid"; wait "$dash_pid"
check_eq "and stops with exit 0" 0 $?

# Before any credentials: anonymous, as before.
check "without credentials an anonymous client may publish" \
    mosquitto_pub -p "$MQTT" -q 1 -t "fleet/trucks/$T1/telemetry" -m "$(reading "$T1" 0)"

# 1. Identities.
out=$("$FS" trucks add --count 3 --id-prefix "$ID" --gateways 1 --print 2>"$D/add.err")
check_eq "trucks add --print: one line per requested account" 4 "$(printf '%s\n' "$out" | grep -c "^$ID")"
check_contains "the first trucks add restarts the running Mosquitto (client id = account is read at start)" \
    "restarted with its first credentials" "$(cat "$D/add.err")"
check_eq "the password file is hashed (\$7\$ PBKDF2-SHA512), no plaintext" 5 \
    "$(grep -c ':\$7\$101\$' "$D/mqtt/passwd")"
check_eq "the printed password is not in the password file" 0 \
    "$(grep -c "$(printf '%s\n' "$out" | head -1 | awk '{print $2}')" "$D/mqtt/passwd")"
check_eq "trucks list shows 3 trucks, 1 gateway, the bridge" "3 1 1" \
    "$("$FS" trucks list 2>/dev/null | awk '{ c[$2]++ } END { print c["truck"]+0, c["gateway"]+0, c["bridge"]+0 }')"
check_eq "mosquitto.conf bounds the queue of an absent session by bytes too (2 GB)" 1 \
    "$(grep -c '^max_queued_bytes 2000000000$' "$D/mosquitto/mosquitto.conf")"
long_id=$(printf 'L%.0s' $(seq 65))
"$FS" trucks add "$long_id" >"$D/long.out" 2>&1
check_eq "trucks add: a 65-character id (longer than telemetry's truck_id) exits 2" 2 $?
check_contains "trucks add: the error names the 64-character limit" "1..64 characters" "$(cat "$D/long.out")"
check_eq "trucks add: the long id got no account" 0 "$(grep -c "^$long_id:" "$D/mqtt/passwd")"
P1=$(pass_of "$T1") P2=$(pass_of "$T2") PG=$(pass_of "$GW") PB=$(pass_of fleetsync-bridge)
check_eq "the printed password is the one the data dir derives" "$T1 $P1" "$(printf '%s\n' "$out" | grep "^$T1 ")"
sleep 1 # Mosquitto reloads on SIGHUP asynchronously

r=$(mosquitto_pub -p "$MQTT" -q 1 -t "fleet/trucks/$T1/telemetry" -m x 2>&1)
check_contains "an anonymous client is refused now" "not authorised" "$r"
r=$(pub "$T1" wrongpassword "fleet/trucks/$T1/telemetry" x)
check_eq "a wrong password is refused" refused "$(refused "$r")"
r=$(mosquitto_pub -V mqttv5 -q 1 -p "$MQTT" -u "$T1" -t "fleet/trucks/$T1/telemetry" -m x 2>&1)
check_eq "a user without password is refused" refused "$(refused "$r")"
r=$(pub "$T1" "$P2" "fleet/trucks/$T1/telemetry" x)
check_eq "another truck's password is refused" refused "$(refused "$r")"

# What the bridge's account sees of fleet/#.
mosquitto_sub -V mqttv5 -p "$MQTT" -u fleetsync-bridge -P "$PB" -t 'fleet/#' -v >"$D/seen" 2>&1 &
sub_pid=$!
# A truck subscribing to everything receives nothing.
mosquitto_sub -V mqttv5 -p "$MQTT" -u "$T3" -P "$(pass_of "$T3")" -t 'fleet/#' -v >"$D/t3seen" 2>&1 &
t3_pid=$!
sleep 0.5
r=$(pub "$T1" "$P1" "fleet/trucks/$T1/telemetry" own-topic)
check "a truck may publish to its own topic (QoS 1 acknowledged)" test -z "$r"
r=$(pub "$T1" "$P1" "fleet/trucks/$T2/telemetry" spoofed-by-t1)
check_contains "a truck publishing to another truck's topic is refused by the broker" "Not authorized" "$r"
r=$(pub "$T1" "$P1" "fleet/gateways/$GW/status" spoofed-gateway)
check_contains "a truck may not publish a gateway's presence" "Not authorized" "$r"
r=$(pub "$GW" "$PG" "fleet/trucks/$T2/telemetry" via-gateway)
check "a gateway may publish for any truck" test -z "$r"
r=$(pub "$GW" "$PG" "fleet/gateways/$GW/status" gateway-online)
check "a gateway may publish its own presence" test -z "$r"
r=$(pub "$GW" "$PG" "fleet/gateways/${ID}GW0002/status" other-gateway)
check_contains "a gateway may not publish another gateway's presence" "Not authorized" "$r"
sleep 1
kill "$sub_pid" "$t3_pid" 2>/dev/null
wait "$sub_pid" "$t3_pid" 2>/dev/null
check_contains "the bridge's account receives the truck's own message" "fleet/trucks/$T1/telemetry own-topic" "$(cat "$D/seen")"
check_contains "the bridge's account receives the gateway's messages" "fleet/gateways/$GW/status gateway-online" "$(cat "$D/seen")"
check_eq "refused publishes were not delivered" 0 "$(grep -c -e spoofed -e other-gateway "$D/seen")"
check_eq "a truck's subscription receives nothing" 0 "$(grep -c '^fleet/' "$D/t3seen")"

# 2. The bridge logs in with its own account (over TLS, trusting the data dir's
# CA by itself); a forged payload goes to the DLQ.  A bridge instance with a
# --client-id of its own has an account of that name (trucks add --bridge).
r=$("$FS" bridge --mqtt "mqtts://127.0.0.1:$TLS" --topic-prefix "$P" --client-id "no-account-$$" --metrics-port -1 \
    --quiet 2>&1 & p=$!; sleep 3; kill -TERM $p; wait $p)
check_contains "a bridge instance without an account is refused" "not authori" "$r"
check_contains "trucks add --bridge makes a bridge instance's account; Mosquitto reloads (SIGHUP)" \
    "reloads its credentials" "$("$FS" trucks add --bridge "e2e-sec-$$" 2>&1)"
check_eq "trucks list shows it as a bridge" "e2e-sec-$$ bridge" "$("$FS" trucks list 2>/dev/null | grep "^e2e-sec-$$ ")"
sleep 1
"$FS" bridge --mqtt "mqtts://127.0.0.1:$TLS" --topic-prefix "$P" --client-id "e2e-sec-$$" \
    --metrics-port $((TEST_METRICS_BASE + S)) --quiet >"$D/bridge.log" 2>&1 &
bridge_pid=$!
for _ in $(seq 100); do grep -q subscribed "$D/bridge.log" && break; sleep 0.1; done
check_contains "the bridge logs in as its client id's account by itself" "logging in to MQTT as e2e-sec-$$" \
    "$(cat "$D/bridge.log")"
check_contains "the bridge is connected over TLS and subscribed" "subscribed" "$(cat "$D/bridge.log")"
r=$(pub "$T1" "$P1" "fleet/trucks/$T1/telemetry" "$(reading "$T1" 1)")
check "truck 1 publishes its reading" test -z "$r"
r=$(pub "$T1" "$P1" "fleet/trucks/$T1/telemetry" "$(reading "$T2" 1)")
check "truck 1 publishes a forged reading (truck_id of truck 2) on its own topic" test -z "$r"
check_eq "truck 1's reading is in truck-telemetry" 1 "$(wait_count "${P}truck-telemetry" "^$T1\$" 1)"
dlq_forged() {  # DLQ records from truck 1's topic with reason topic_mismatch
    kcat -b "$B" -C -t "${P}truck-telemetry-dlq" -o beginning -e -q -f '%h\n' 2>/dev/null |
        grep 'error=topic_mismatch' | grep -c "mqtt_topic=fleet/trucks/$T1/telemetry,"
}
for _ in $(seq 60); do [ "$(dlq_forged)" -ge 1 ] && break; sleep 0.5; done
check_eq "the forged reading is in the DLQ as topic_mismatch" 1 "$(dlq_forged)"
check_eq "nothing in truck-telemetry carries truck 2's id" 0 "$(count_topic "${P}truck-telemetry" "^$T2\$")"

# The bridge with a wrong password, or trusting another CA, says why and
# keeps trying (a broker's accounts and certificates can be fixed meanwhile).
bridge_refused() {  # LOG PATTERN: waits up to 10 s for the pattern, the bridge still running
    local pid=$! log=$1
    for _ in $(seq 100); do grep -q "$2" "$log" && break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && grep -q "$2" "$log"; local rc=$?
    kill -TERM "$pid"; wait "$pid" 2>/dev/null
    return $rc
}
"$FS" bridge --mqtt "mqtts://fleetsync-bridge:wrong@127.0.0.1:$TLS" --topic-prefix "$P" --client-id "e2e-sec-bad-$$" \
    --metrics-port -1 --quiet >"$D/bridge-badpass.log" 2>&1 &
check "a bridge with a wrong password says the broker refused it" bridge_refused "$D/bridge-badpass.log" \
    "refused the connection: .*not authori"
"$FS" bridge --mqtt "mqtts://127.0.0.1:$TLS" --cafile "$D/tls/server.crt" --topic-prefix "$P" \
    --client-id "e2e-sec-badca-$$" --metrics-port -1 --quiet >"$D/bridge-badca.log" 2>&1 &
check "a bridge trusting the wrong CA says the TLS handshake failed" bridge_refused "$D/bridge-badca.log" \
    "TLS handshake failed"

# 3. TLS.
check "mosquitto_pub trusting the local CA publishes over TLS" \
    mosquitto_pub -h 127.0.0.1 -p "$TLS" --cafile "$D/tls/ca.crt" -u "$T1" -P "$P1" -q 1 \
    -t "fleet/trucks/$T1/status" -m online
check_fails "without the CA (system CAs only) the TLS connection fails" \
    mosquitto_pub -h 127.0.0.1 -p "$TLS" --capath /etc/ssl/certs -u "$T1" -P "$P1" -q 1 -t "fleet/trucks/$T1/status" -m x
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$D/other.key" -out "$D/other.crt" \
    -days 2 -subj "/CN=another CA" >/dev/null 2>&1
check_fails "trusting another CA the TLS connection fails" \
    mosquitto_pub -h 127.0.0.1 -p "$TLS" --cafile "$D/other.crt" -u "$T1" -P "$P1" -q 1 -t "fleet/trucks/$T1/status" -m x
check_fails "plain MQTT to the TLS port fails" \
    mosquitto_pub -h 127.0.0.1 -p "$TLS" -u "$T1" -P "$P1" -q 1 -t "fleet/trucks/$T1/status" -m x

# The simulator over mqtts:// (CA and credentials from the data dir), through the bridge into Kafka.
before=$(count_topic "${P}truck-telemetry" "^$ID")
"$FS" sim --mqtt "mqtts://127.0.0.1:$TLS" --trucks 3 --id-prefix "$ID" --interval 1 --duration 5 \
    --metrics-port -1 --drain-timeout 10 >"$D/sim.out" 2>&1
check_eq "sim over mqtts:// exits 0 (every reading acknowledged)" 0 $?
check_contains "sim logs in with the data dir's credentials" "credentials of" "$(cat "$D/sim.out")"
want=$((before + 15))
got=$(wait_count "${P}truck-telemetry" "^$ID" "$want")
check "sim's readings over TLS reach truck-telemetry ($((got - before)) of >= 15)" test "$got" -ge "$want"
"$FS" sim --mqtt "mqtts://127.0.0.1:$TLS" --cafile "$D/other.crt" --trucks 1 --id-prefix "$ID" --interval 1 \
    --duration 2 --metrics-port -1 --quiet --drain-timeout 2 >"$D/sim-other.out" 2>&1
check_eq "sim trusting another CA delivers nothing (exit 1)" 1 $?
# A gateway connection of the simulator (--connections 1) uses the gateway account.
"$FS" sim --trucks 3 --connections 1 --id-prefix "$ID" --interval 1 --duration 3 --metrics-port -1 --quiet \
    --drain-timeout 10 >"$D/sim-gw.out" 2>&1
check_eq "sim as gateway $GW delivers every reading (exit 0)" 0 $?

# 4. remove: the account is gone.
check "trucks remove" "$FS" trucks remove "$T3"
sleep 1
r=$(pub "$T3" "$(pass_of "$T3")" "fleet/trucks/$T3/telemetry" x)
check_eq "a removed truck is refused" refused "$(refused "$r")"
check "services status is healthy with credentials (the broker answers the probe)" "$FS" services status

kill "$bridge_pid" 2>/dev/null
wait "$bridge_pid"
check_eq "bridge: SIGTERM exits 0" 0 $?
bridge_pid=

# 5. A client id is its account: no truck can take over the bridge's session
# (kick it, or wipe what is queued for it with a clean start) or another
# truck's (kick it and fire its last will).
QT=${ID}Q01
"$FS" trucks add "$QT" >/dev/null 2>&1
PQ=$(pass_of "$QT")
sleep 1
conns() { grep -c "connected to MQTT" "$D/bridge-main.log"; }
"$FS" bridge --mqtt "mqtt://127.0.0.1:$MQTT" --topic-prefix "$P" --metrics-port -1 >"$D/bridge-main.log" 2>&1 &
bridge_pid=$!
for _ in $(seq 100); do grep -q subscribed "$D/bridge-main.log" && break; sleep 0.1; done
check_contains "the bridge runs as fleetsync-bridge (default client id)" "as fleetsync-bridge" "$(cat "$D/bridge-main.log")"
r=$(pub "$T1" "$P1" "fleet/trucks/$T1/status" takeover -i fleetsync-bridge)
mosquitto_sub -V mqttv5 -p "$MQTT" -u "$T2" -P "$P2" -i fleetsync-bridge -t "fleet/#" -W 2 >/dev/null 2>&1
"$FS" services status >/dev/null 2>&1
sleep 2
check_eq "a truck connecting as client id fleetsync-bridge (and the status probe) does not kick the bridge" \
    "1 0" "$(conns) $(grep -c 'connection lost' "$D/bridge-main.log")"
kill -TERM "$bridge_pid"; wait "$bridge_pid"; bridge_pid=
for s in 1 2 3 4 5; do pub "$QT" "$PQ" "fleet/trucks/$QT/telemetry" "$(reading "$QT" "$s")" >/dev/null; done
r=$(pub "$T2" "$P2" "fleet/trucks/$T2/status" wipe -i fleetsync-bridge)  # MQTT 5 clean start, expiry 0
check "a truck's clean-start connect as client id fleetsync-bridge is accepted (as the truck)" test -z "$r"
"$FS" bridge --mqtt "mqtt://127.0.0.1:$MQTT" --topic-prefix "$P" --metrics-port -1 >>"$D/bridge-main.log" 2>&1 &
bridge_pid=$!
check_eq "the 5 readings queued for the bridge while it was away survive and reach Kafka" 5 \
    "$(wait_count "${P}truck-telemetry" "^$QT\$" 5)"
# Status payloads are "online"/"offline"; the bridge passes them on as {"id":...,"status":...}.
status_count() { count_topic "${P}truck-status" "^$1 .*\"status\":\"$2\"" '%k %s'; }
t1_online=$(status_count "$T1" online) t2_offline=$(status_count "$T2" offline)
mosquitto_sub -V mqttv5 -p "$MQTT" -u "$T2" -P "$P2" -i "$T2" -t "fleet/trucks/$T2/none" \
    --will-topic "fleet/trucks/$T2/status" --will-payload offline >"$D/t2.out" 2>&1 &
t2_pid=$!
sleep 1
r=$(pub "$T1" "$P1" "fleet/trucks/$T1/telemetry" "$(reading "$T1" 7)" -i "$T2")
sleep 1
pub "$T1" "$P1" "fleet/trucks/$T1/status" online >/dev/null
for _ in $(seq 60); do  # once T1's "online" is in Kafka, the bridge has passed on what came before
    [ "$(status_count "$T1" online)" -gt "$t1_online" ] && break; sleep 0.5
done
check_eq "the bridge passed on the truck's status after the attempt" $((t1_online + 1)) "$(status_count "$T1" online)"
check_eq "a truck connecting with another truck's client id does not fire that truck's last will" "$t2_offline" \
    "$(status_count "$T2" offline)"
check "the other truck is still connected" kill -0 "$t2_pid"
kill "$t2_pid"; wait "$t2_pid" 2>/dev/null
kill -TERM "$bridge_pid"; wait "$bridge_pid"; bridge_pid=
done_testing
