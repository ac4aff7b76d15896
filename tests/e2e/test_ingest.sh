#!/bin/bash
# fleetsync ingest against the real Kafka, with mosquitto_pub and the
# simulator as its clients: readings over MQTT 3.1.1 and 5 reach
# truck-telemetry as the same records the bridge writes from the same
# messages (key, partition, value, dead-letter headers compared byte for
# byte), a malformed one goes to the DLQ with its reason, logins and topics
# are checked against the data dir's accounts (fleetsync trucks), QoS 2 and
# SUBSCRIBE are refused, a packet past the size limit ends its connection,
# and the simulator's readings all arrive, each acknowledged (Kafka stopped:
# test_ingest_faults.sh).  Over TLS (--tls): a reading from mosquitto_pub
# trusting the CA reaches Kafka; plain-text MQTT on the TLS port, a client
# trusting another CA and a silent TLS socket are refused and counted.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/bridge_lib.sh"

P="e2eingest$$-"                       # topic prefix: this suite's own topics
P2="e2eingestbr$$-"                    # the bridge's, for the comparison
ID="E2EI$$"
W=$(mktemp -d /tmp/fleetsync-e2e-ingest.XXXXXX)
B=$FLEETSYNC_BROKERS
IPORT=$((TEST_MQTT_PORT + 57))         # the ingest's MQTT port, in the suite's shifted block
MPORT=$((TEST_METRICS_BASE + 57))
TPORT=$((TEST_MQTT_PORT + 59))         # its TLS port
ingest_pid=
bridge_pid=
workers_pid=
cleanup() {
    [ -n "$ingest_pid" ] && kill -9 "$ingest_pid" 2>/dev/null
    [ -n "$workers_pid" ] && kill -9 "$workers_pid" 2>/dev/null   # its workers follow (PR_SET_PDEATHSIG)
    [ -n "$bridge_pid" ] && kill -9 "$bridge_pid" 2>/dev/null
    rm -rf "$W"
}
trap cleanup EXIT

"$FS" services start --topic-prefix "$P" >/dev/null 2>&1
check "topics with the suite's prefix exist" topics_ready

T1="$ID-000001" T2="$ID-000002" T3="$ID-000003"
"$FS" trucks add --data-dir "$W" --print "$T1" "$T2" "$T3" >"$W/creds" 2>/dev/null
pass() { awk -v id="$1" '$1 == id { print $2 }' "$W/creds"; }
P1=$(pass "$T1") P2W=$(pass "$T2") P3=$(pass "$T3")
check "trucks add made three accounts" test -n "$P1" -a -n "$P2W" -a -n "$P3"

# A CA and the ingest's certificate for 127.0.0.1 in $W/tls/ (where services
# start --tls puts them, and where the ingest looks by default); another CA
# that signed nothing of ours.
mkca() { openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$1.key" -out "$1.crt" -days 2 \
    -subj "/CN=$2" -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign >/dev/null 2>&1; }
mkdir -p "$W/tls"
mkca "$W/tls/ca" "e2e ingest CA" && mkca "$W/other-ca" "e2e other CA" &&
    openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$W/tls/server.key" \
        -out "$W/tls/server.csr" -subj "/CN=localhost" >/dev/null 2>&1 &&
    printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n' >"$W/tls/server.ext" &&
    openssl x509 -req -in "$W/tls/server.csr" -CA "$W/tls/ca.crt" -CAkey "$W/tls/ca.key" -CAcreateserial \
        -out "$W/tls/server.crt" -days 2 -extfile "$W/tls/server.ext" >/dev/null 2>&1
check "a CA and a server certificate for the TLS listener" test -s "$W/tls/server.crt"

"$FS" ingest --data-dir "$W" --topic-prefix "$P" --listen "127.0.0.1:$IPORT" --metrics-port "$MPORT" --quiet \
    --connect-timeout 2 --tls "127.0.0.1:$TPORT" \
    >"$W/ingest.log" 2>&1 &
ingest_pid=$!
for _ in $(seq 150); do grep -q "ingest listening" "$W/ingest.log" && break; sleep 0.2; done
check "ingest starts and listens" grep -q "ingest listening" "$W/ingest.log"
check_contains "with a TLS listener" "and TLS on 127.0.0.1:$TPORT" "$(cat "$W/ingest.log")"

ipub() {  # ipub USER PASS [mosquitto_pub args]: one publisher against the ingest
    local u=$1 pw=$2; shift 2
    timeout -k 5 60 mosquitto_pub -p "$IPORT" -u "$u" -P "$pw" -i "$u" "$@"
}

# 1. Valid readings, MQTT 3.1.1 and 5, QoS 1 and 0.
lines "$T1" 0 100 | ipub "$T1" "$P1" -q 1 -t "fleet/trucks/$T1/telemetry" -l
check_eq "MQTT 3.1.1 publisher exits 0" 0 $?
lines "$T2" 0 100 | ipub "$T2" "$P2W" -V mqttv5 -q 1 -t "fleet/trucks/$T2/telemetry" -l
check_eq "MQTT 5 publisher exits 0" 0 $?
lines "$T2" 100 20 | ipub "$T2" "$P2W" -q 0 -t "fleet/trucks/$T2/telemetry" -l
check_eq "220 readings in truck-telemetry" 220 "$(wait_count "${P}truck-telemetry" "^$ID-00000[12]" 220 60)"

# 2. The same messages through Mosquitto and the bridge make the same records.
"$FS" services start --topic-prefix "$P2" >/dev/null 2>&1
lines "$T3" 0 30 >"$W/same"
printf '%s\n' '{"v":1,"truck_id":"'"$T3"'","ts":1,"seq":1}' '{"v":1,' '{"v":1,"truck_id":"'"$T3"'","ts":"x"}' >>"$W/same"
ipub "$T3" "$P3" -q 1 -t "fleet/trucks/$T3/telemetry" -l <"$W/same"
start_bridge bridge --client-id "e2e-ingest-bridge-$$" --metrics-port -1 --topic-prefix "$P2"
check_eq "bridge starts" 0 $?
timeout -k 5 60 mosquitto_pub -p "$MQTT_PORT" -q 1 -t "fleet/trucks/$T3/telemetry" -l <"$W/same"
wait_count "${P2}truck-telemetry" "^$T3" 30 60 >/dev/null
wait_count "${P}truck-telemetry" "^$T3" 30 60 >/dev/null
dump() { kc -b "$B" -C -t "$1" -o beginning -e -q -f '%k %p %s\n' 2>/dev/null | grep "$T3" | sort; }
dump "${P}truck-telemetry" >"$W/ing.tele"
dump "${P2}truck-telemetry" >"$W/br.tele"
check_eq "30 telemetry records from the ingest" 30 "$(wc -l <"$W/ing.tele")"
check "ingest and bridge wrote the same telemetry records (key, partition, value)" cmp -s "$W/ing.tele" "$W/br.tele"
wait_count "${P2}truck-telemetry-dlq" "$T3" 3 60 >/dev/null
ddump() {  # key, value and headers but received_ms (each edge's own receive time)
    kc -b "$B" -C -t "$1" -o beginning -e -q -f '%k|%s|%h\n' 2>/dev/null | grep "$T3" | sed 's/,received_ms=[0-9]*//' | sort
}
ddump "${P}truck-telemetry-dlq" >"$W/ing.dlq"
ddump "${P2}truck-telemetry-dlq" >"$W/br.dlq"
check_eq "3 dead letters from the ingest" 3 "$(wc -l <"$W/ing.dlq")"
check "ingest and bridge wrote the same dead letters (key, value, error headers)" cmp -s "$W/ing.dlq" "$W/br.dlq"
check_contains "a dead letter names its reason" "error=invalid_json" "$(cat "$W/ing.dlq")"
kill "$bridge_pid" 2>/dev/null; wait "$bridge_pid" 2>/dev/null; bridge_pid=

# 3. Logins and topics as the broker checks them.
rc=0; echo x | ipub "$T1" "wrong-password" -q 1 -t "fleet/trucks/$T1/telemetry" -l 2>/dev/null || rc=$?
check "a wrong password is refused" test "$rc" -ne 0
rc=0; echo x | ipub "$ID-999999" "$P1" -q 1 -t "fleet/trucks/$ID-999999/telemetry" -l 2>/dev/null || rc=$?
check "an unknown account is refused" test "$rc" -ne 0
echo '{"v":1,"truck_id":"'"$T2"'","ts":1,"seq":424242}' |
    ipub "$T1" "$P1" -V mqttv5 -q 1 -t "fleet/trucks/$T2/telemetry" -l >/dev/null 2>&1
lines "$T1" 500 1 | ipub "$T1" "$P1" -q 1 -t "fleet/trucks/$T2/telemetry" -l >/dev/null 2>&1
sleep 1
check_eq "another truck's topic: nothing produced" 0 \
    "$(kc -b "$B" -C -t "${P}truck-telemetry-dlq" -o beginning -e -q -f '%s\n' 2>/dev/null | grep -c 424242)"
m=$(curl -s "http://127.0.0.1:$MPORT/metrics")
check_contains "bad logins are counted" 'fleetsync_ingest_refused_total{reason="bad_login"} 2' "$m"
check_contains "other trucks' topics are counted (MQTT 5 and 3.1.1)" \
    'fleetsync_ingest_refused_total{reason="not_authorized"} 2' "$m"

# 4. What a publishing-only server refuses.
rc=0; ipub "$T1" "$P1" -q 2 -t "fleet/trucks/$T1/telemetry" -m '{"v":1,"seq":777777}' >/dev/null 2>&1 || rc=$?
check "a QoS 2 publisher (MQTT 3.1.1) loses its connection" test "$rc" -ne 0
timeout 10 mosquitto_sub -p "$IPORT" -u "$T1" -P "$P1" -i "$T1" -t 'fleet/#' -C 1 -W 3 >/dev/null 2>&1
big=$(head -c 70000 /dev/zero | tr '\0' 'x')
rc=0; ipub "$T1" "$P1" -q 1 -t "fleet/trucks/$T1/telemetry" -m "$big" >/dev/null 2>&1 || rc=$?
m=$(curl -s "http://127.0.0.1:$MPORT/metrics")
check_contains "QoS 2 is refused and counted" 'fleetsync_ingest_refused_total{reason="qos2"} 1' "$m"
check_eq "nothing of the QoS 2 message reached Kafka" 0 \
    "$(kc -b "$B" -C -t "${P}truck-telemetry-dlq" -o beginning -e -q -f '%s\n' 2>/dev/null | grep -c 777777)"
check_contains "SUBSCRIBE is refused and counted" 'fleetsync_ingest_refused_total{reason="subscribe"} 1' "$m"
check_contains "a packet past --max-packet-size is refused and counted" \
    'fleetsync_ingest_refused_total{reason="too_large"} 1' "$m"
check "nothing of the oversized message reached Kafka" test \
    "$(kc -b "$B" -C -t "${P}truck-telemetry-dlq" -o beginning -e -q -f '%S\n' 2>/dev/null | grep -c '^7000[0-9]')" -eq 0

# 4a. TLS: mosquitto_pub trusting the CA publishes over TLS; plain-text MQTT
#     on the TLS port and a client that trusts another CA get nothing.
tpub() {  # tpub USER PASS [mosquitto_pub args]: a publisher on the TLS port
    local u=$1 pw=$2; shift 2
    timeout -k 5 30 mosquitto_pub -h 127.0.0.1 -p "$TPORT" -u "$u" -P "$pw" -i "$u" "$@"
}
tls_seen() { kc -b "$B" -C -t "${P}truck-telemetry" -o beginning -e -q -f '%s\n' 2>/dev/null | grep -c "\"seq\":$1,"; }
lines "$T1" 9001 1 | tpub "$T1" "$P1" --cafile "$W/tls/ca.crt" -q 1 -t "fleet/trucks/$T1/telemetry" -l
check_eq "TLS: a QoS 1 reading from mosquitto_pub --cafile CA is acknowledged" 0 $?
check_eq "TLS: the reading is in truck-telemetry" 1 "$(wait_prints 1 30 tls_seen 9001)"
# -m, not -l: mosquitto_pub -l connects again and again after a failure.
rc=0; tpub "$T1" "$P1" -q 1 -t "fleet/trucks/$T1/telemetry" -m "$(lines "$T1" 9002 1)" >/dev/null 2>&1 || rc=$?
check "TLS: plain-text MQTT on the TLS port is refused" test "$rc" -ne 0
rc=0; tpub "$T1" "$P1" --cafile "$W/other-ca.crt" -q 1 -t "fleet/trucks/$T1/telemetry" -m "$(lines "$T1" 9003 1)" \
    >/dev/null 2>"$W/wrongca.err" || rc=$?
check "TLS: a client trusting another CA refuses the ingest's certificate" test "$rc" -ne 0
check_contains "TLS: it fails in the handshake" "A TLS error occurred" "$(cat "$W/wrongca.err")"
check_eq "TLS: neither of those readings reached Kafka" "0 0" "$(tls_seen 9002) $(tls_seen 9003)"

# 4b. Hostile sockets: bytes that are not a CONNECT, a socket that never
#     sends one (--connect-timeout 2), on the TLS port one that never starts
#     the handshake.
exec 6<>"/dev/tcp/127.0.0.1/$TPORT"
exec 3<>"/dev/tcp/127.0.0.1/$IPORT"
printf 'GET / HTTP/1.0\r\n\r\n' >&3
check_eq "bytes that are not a CONNECT: closed at once, no answer" 0 "$(timeout 5 cat <&3 | wc -c)"
exec 3<&-
exec 4<>"/dev/tcp/127.0.0.1/$IPORT"
t0=$(date +%s%N)
got=$(timeout 10 cat <&4 | wc -c)
dt=$(( ($(date +%s%N) - t0) / 1000000 ))
exec 4<&-
check "a silent socket is closed after --connect-timeout (2 s; took $dt ms)" test "$got" -eq 0 -a "$dt" -ge 1900 -a "$dt" -lt 6000
check_eq "a silent socket on the TLS port is closed too" 0 "$(timeout 5 cat <&6 | wc -c)"
exec 6<&-
m=$(curl -s "http://127.0.0.1:$MPORT/metrics")
check_contains "both are counted" 'fleetsync_ingest_refused_total{reason="connect_timeout"} 1' "$m"
check "the first as malformed" test "$(echo "$m" | awk '$1 == "fleetsync_ingest_refused_total{reason=\"malformed\"}" { print $2 }')" -ge 1
check_contains "TLS: the silent socket is counted as a handshake timeout" \
    'fleetsync_ingest_refused_total{reason="tls_handshake_timeout"} 1' "$m"
check_contains "TLS: the plain-text client and the one trusting another CA are counted as failed handshakes" \
    'fleetsync_ingest_refused_total{reason="tls_handshake"} 2' "$m"

# 5. The simulator, logging in with its data dir's derived passwords.
S="$ID-S"
"$FS" trucks add --data-dir "$W" --count 20 --id-prefix "$S" >/dev/null 2>&1
mkdir -p "$W/run" && echo "mqtt=$IPORT" >"$W/run/ports"   # the ingest stands as the data dir's broker
"$FS" sim --data-dir "$W" --mqtt "mqtt://127.0.0.1:$IPORT" --trucks 20 --interval 10 --duration 600 --speedup 0 \
    --id-prefix "$S" --metrics-port -1 --quiet --start "$(date -u -d '-1 hour' +%Y-%m-%dT%H:%M:%SZ)" \
    >"$W/sim.out" 2>&1
check_eq "the simulator against the ingest exits 0" 0 $?
check_contains "the simulator's 1200 readings are acknowledged" "published 1200, acknowledged 1200, failed 0" \
    "$(cat "$W/sim.out")"
check_eq "all 1200 are in truck-telemetry" 1200 "$(wait_unique "${P}truck-telemetry" "^$S" 1200 60)"
st=$(kc -b "$B" -C -t "${P}truck-status" -o beginning -e -q -f '%k %s\n' 2>/dev/null | grep -c "^$S.*online")
check "its trucks' presence is in truck-status" test "$st" -ge 20
m=$(curl -s "http://127.0.0.1:$MPORT/metrics")
acked=$(echo "$m" | awk '$1 == "fleetsync_ingest_acknowledged_total" { print $2 }')
check "every reading handed to Kafka is acknowledged" test "$acked" = \
    "$(echo "$m" | awk '$1 == "fleetsync_ingest_readings_total" { print $2 }')"
check_contains "the PUBLISH->PUBACK latency is measured" "fleetsync_ingest_puback_latency_seconds_count" "$m"
# Buckets fine enough between 10 and 100 ms to tell 20 ms from 30, 50 from 75.
lat_le=$(echo "$m" | sed -n 's/^fleetsync_ingest_puback_latency_seconds_bucket{le="\([^"]*\)"}.*/\1/p' | tr '\n' ' ')
check_contains "the latency histogram has buckets at 15, 20, 25, 30, 40, 50, 75 and 100 ms" \
    "0.01 0.015 0.02 0.025 0.03 0.04 0.05 0.075 0.1 " "$lat_le"

# 6. A clean stop tells MQTT 5 clients why (DISCONNECT 0x8B, server shutting down).
mkfifo "$W/v5.in"
stdbuf -oL -eL timeout -k 5 40 mosquitto_pub -p "$IPORT" -u "$T2" -P "$P2W" -i "$T2" -V mqttv5 -d -q 1 \
    -t "fleet/trucks/$T2/telemetry" -l <"$W/v5.in" >"$W/v5.log" 2>&1 &
v5_pid=$!
exec 5>"$W/v5.in"   # its stdin stays open: it stays connected
for _ in $(seq 50); do grep -q 'received CONNACK' "$W/v5.log" && break; sleep 0.1; done
kill -TERM "$ingest_pid"; wait "$ingest_pid"; rc=$?; ingest_pid=
for _ in $(seq 50); do grep -q 'DISCONNECT' "$W/v5.log" && break; sleep 0.1; done
exec 5>&-
kill "$v5_pid" 2>/dev/null; wait "$v5_pid" 2>/dev/null
check_eq "SIGTERM stops the ingest cleanly" 0 "$rc"
check_contains "an MQTT 5 client hears the server is shutting down" "DISCONNECT (139)" "$(cat "$W/v5.log")"
grep -q "stopped: readings" "$W/ingest.log" || sed 's/^/# /' "$W/ingest.log" | tail -20

# 7. --workers 3: three processes on one port (SO_REUSEPORT), each its own
#    Kafka producer and metrics port (base + i).  30 trucks spread over them;
#    then one worker is killed with SIGKILL mid-stream: its trucks reconnect
#    to the others and resend what was not acknowledged, nothing acknowledged
#    is lost, and the parent starts the worker again.
WPORT=$((TEST_MQTT_PORT + 58)) WM=$((TEST_METRICS_BASE + 70))   # metrics on WM, WM+1, WM+2
"$FS" ingest --workers 3 --data-dir "$W" --topic-prefix "$P" --listen "127.0.0.1:$WPORT" --metrics-port "$WM" \
    >"$W/workers.log" 2>&1 &
workers_pid=$!
for _ in $(seq 150); do [ "$(grep -c "ingest listening" "$W/workers.log")" -ge 3 ] && break; sleep 0.2; done
check_eq "three workers listen on one port" 3 "$(grep -c "ingest listening" "$W/workers.log")"
wm() { curl -s "http://127.0.0.1:$((WM + $1))/metrics" | awk -v k="$2" '$1 == k { print $2 }'; }
WS="$ID-W"
"$FS" trucks add --data-dir "$W" --count 30 --id-prefix "$WS" >/dev/null 2>&1
echo "mqtt=$WPORT" >"$W/run/ports"
wsim() {  # wsim DURATION_S: the 30 trucks, one QoS 1 reading a second each, in real time
    "$FS" sim --data-dir "$W" --mqtt "mqtt://127.0.0.1:$WPORT" --trucks 30 --interval 1 --duration "$1" \
        --id-prefix "$WS" --metrics-port -1 --quiet --drain-timeout 20 "${@:2}"
}
num() { sed -n "s/.* $1 \([0-9]*\).*/\1/p" "$2" | head -1; }   # num WORD FILE: the number after WORD
wsim 2 >"$W/wsim1.out" 2>&1
n1=$(num acknowledged "$W/wsim1.out")
check "30 trucks against 3 workers: every reading acknowledged ($n1)" \
    test "${n1:-0}" -ge 30 -a "$n1" = "$(num published "$W/wsim1.out")" -a "$(num failed "$W/wsim1.out")" = 0
c0=$(wm 0 fleetsync_ingest_connects_total) c1=$(wm 1 fleetsync_ingest_connects_total) c2=$(wm 2 fleetsync_ingest_connects_total)
check_eq "the 30 connections are counted by the workers' metrics ($c0 + $c1 + $c2)" 30 $((c0 + c1 + c2))
check "each worker took some of them" test "$c0" -ge 1 -a "$c1" -ge 1 -a "$c2" -ge 1
check_eq "all $n1 readings are in truck-telemetry" "$n1" "$(wait_unique "${P}truck-telemetry" "^$WS" "$n1" 30)"

w1=$(sed -n 's/.*worker 1 started, pid \([0-9]*\).*/\1/p' "$W/workers.log")
wsim 6 >"$W/wsim2.out" 2>&1 &
sim_pid=$!
sleep 2
kill -9 "$w1"
wait "$sim_pid"
check_eq "the simulator exits 0 though a worker was killed under it" 0 $?
n2=$(num acknowledged "$W/wsim2.out")
check "every reading acknowledged ($n2), none failed" \
    test "${n2:-0}" -ge 150 -a "$n2" = "$(num published "$W/wsim2.out")" -a "$(num failed "$W/wsim2.out")" = 0
check "the killed worker's trucks reconnected" test "$(num reconnects "$W/wsim2.out")" -ge 1
check_eq "all $((n1 + n2)) readings are in truck-telemetry" $((n1 + n2)) \
    "$(wait_unique "${P}truck-telemetry" "^$WS" $((n1 + n2)) 30)"
for _ in $(seq 50); do [ "$(grep -c "ingest listening" "$W/workers.log")" -ge 4 ] && break; sleep 0.2; done
check_contains "the parent logs the death" "worker 1 (pid $w1) was killed by signal 9" "$(cat "$W/workers.log")"
check_eq "and starts the worker again" 4 "$(grep -c "ingest listening" "$W/workers.log")"
check "the new worker serves metrics" test -n "$(wm 1 fleetsync_ingest_connections)"
st=$("$FS" status --ingest-metrics "$WM" --json 2>/dev/null)
check_eq "status finds the 3 workers from the first metrics port" 3 "$(echo "$st" | jq '.ingest.workers')"
check "status sums what the workers acknowledged (at least $((n1 + n2)))" \
    test "$(echo "$st" | jq '.ingest.acknowledged | floor')" -ge $((n1 + n2))
"$FS" status --ingest-metrics "$WM" >"$W/status.out" 2>/dev/null
check "status shows the ingest's 3 workers and their metrics ports in its table" \
    grep -Eq "^ingest +3 .* 127.0.0.1:$WM..$((WM + 2))\$" "$W/status.out"
kill -TERM "$workers_pid"; wait "$workers_pid"; rc=$?; workers_pid=
check_eq "SIGTERM stops the parent and its workers cleanly" 0 "$rc"
check_eq "each worker stopped cleanly" 3 "$(grep -c "stopped: readings" "$W/workers.log")"
check_eq "no worker is left" "" "$(pgrep -f -- "--listen 127.0.0.1:$WPORT")"
done_testing
