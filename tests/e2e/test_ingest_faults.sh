#!/bin/bash
# fleetsync ingest while Kafka does not answer.  On a private stack of its
# own (data dir and ports 120 above the suites' block), since its Kafka is
# stopped with SIGSTOP mid-stream: the shared stack's Kafka keeps serving the
# other suites.  QoS 1 PUBLISHes sent while Kafka is stopped get no PUBACK
# and make no record; once Kafka runs again every one is in Kafka and the
# PUBACKs come, in the order of the PUBLISHes.  Then hostile clients
# (mqtt_hostile.py, raw sockets: a slow reader, a silent half-open client, a
# CONNECT flood, wrong passwords at rate) while a well-behaved truck
# publishes: each is closed or refused and counted by reason, and the truck
# gets every PUBACK, none late (docs/ingest.md, "Hostile clients").
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/bridge_lib.sh"

ID="E2EIF$$"
W=$(mktemp -d /tmp/fleetsync-e2e-ingestf.XXXXXX)
D=$W/stack
KPORT=$((TEST_KAFKA_PORT + 120)) QPORT=$((TEST_MQTT_PORT + 120)) GPORT=$((TEST_PG_PORT + 120))
IPORT=$((TEST_MQTT_PORT + 127)) MPORT=$((TEST_METRICS_BASE + 127))
B=127.0.0.1:$KPORT
ENV=(FLEETSYNC_DATA_DIR="$D" FLEETSYNC_BROKERS="$B" FLEETSYNC_MQTT="mqtt://127.0.0.1:$QPORT"
     FLEETSYNC_PG="host=127.0.0.1 port=$GPORT dbname=fleetsync user=fleetsync")
priv() { env "${ENV[@]}" "$FS" "$@"; }  # a command on the private stack (env execs it: same pid)
ingest_pid=
kafka_pid=
cleanup() {
    [ -n "$kafka_pid" ] && kill -CONT "$kafka_pid" 2>/dev/null
    [ -n "$ingest_pid" ] && kill -9 "$ingest_pid" 2>/dev/null
    priv services stop >/dev/null 2>&1
    [ -n "${KEEP:-}" ] || rm -rf "$W"
}
trap cleanup EXIT

mkdir -p "$D" && chmod 755 "$W" "$D"
priv services start --timeout 120 >"$W/start.out" 2>&1
check_eq "a private stack starts" 0 $?
T="$ID-000001" TG="$ID-000002" TS="$ID-000003" TH="$ID-000004"
priv trucks add --print "$T" "$TG" "$TS" "$TH" >"$W/creds" 2>/dev/null
pw() { awk -v id="$1" '$1 == id { print $2 }' "$W/creds"; }
PW=$(pw "$T")
env "${ENV[@]}" "$FS" ingest --listen "127.0.0.1:$IPORT" --metrics-port "$MPORT" --quiet \
    --max-connections 300 --connect-timeout 2 --max-unread 4096 >"$W/ingest.log" 2>&1 &
ingest_pid=$!
for _ in $(seq 150); do grep -q "ingest listening" "$W/ingest.log" && break; sleep 0.2; done
check "ingest starts on it" grep -q "ingest listening" "$W/ingest.log"
ipub() { timeout -k 5 60 mosquitto_pub -p "$IPORT" -u "$T" -P "$PW" -i "$T" -q 1 -t "fleet/trucks/$T/telemetry" "$@"; }
count() {  # count FROM TO: readings of seq FROM..TO in truck-telemetry
    kcat -b "$B" -C -t truck-telemetry -o beginning -e -q -f '%s\n' 2>/dev/null |
        awk -v f="$1" -v t="$2" '{ if (match($0, /"seq":[0-9]+/)) { s = substr($0, RSTART + 6, RLENGTH - 6) + 0; if (s >= f && s <= t) n++ } } END { print n + 0 }'
}
count_truck() { kcat -b "$B" -C -t truck-telemetry -o beginning -e -q -f '%k\n' 2>/dev/null | grep -c "^$1\$"; }
count_will() { kcat -b "$B" -C -t truck-status -o beginning -e -q -f '%k %s\n' 2>/dev/null | grep -c "^$TH .*offline"; }
pubacks() { grep -c 'received PUBACK' "$1"; }

lines "$T" 0 5 | ipub -l
check_eq "with Kafka up, 5 readings are acknowledged" 5 "$(wait_until 5 60 count 0 4)"

kafka_pid=$(cat "$D/run/kafka.pid")
kill -STOP "$kafka_pid"
# stdbuf: mosquitto_pub's -d lines as they happen, not when it exits
lines "$T" 100 8 | stdbuf -oL -eL timeout -k 5 60 mosquitto_pub -p "$IPORT" -u "$T" -P "$PW" -i "$T" -q 1 \
    -t "fleet/trucks/$T/telemetry" -l -d >"$W/held.log" 2>&1 &
held=$!
sleep 5
check_eq "Kafka stopped: the 8 PUBLISHes were sent" 8 "$(grep -c 'sending PUBLISH' "$W/held.log")"
check_eq "no PUBACK while Kafka has not acknowledged" 0 "$(pubacks "$W/held.log")"
kill -CONT "$kafka_pid"; kafka_pid=
for _ in $(seq 60); do [ "$(pubacks "$W/held.log")" -ge 8 ] && break; sleep 0.5; done
kill "$held" 2>/dev/null; wait "$held" 2>/dev/null
check_eq "Kafka back: the 8 PUBACKs come" 8 "$(pubacks "$W/held.log")"
sent=$(sed -n 's/.*sending PUBLISH (d[01], q1, r0, m\([0-9]*\),.*/\1/p' "$W/held.log" | tr '\n' ' ')
acked=$(sed -n 's/.*received PUBACK (Mid: \([0-9]*\).*/\1/p' "$W/held.log" | tr '\n' ' ')
check_eq "in the order of the PUBLISHes" "$sent" "$acked"
check_eq "and the 8 readings are in truck-telemetry" 8 "$(wait_until 8 20 count 100 107)"

# Hostile clients (tests/e2e/mqtt_hostile.py, raw sockets) while a
# well-behaved truck publishes 20 QoS 1 readings a second: each is closed or
# refused and counted, and the truck gets every PUBACK meanwhile.
H=(python3 "$(dirname "$0")/mqtt_hostile.py")
refused() { curl -s "http://127.0.0.1:$MPORT/metrics" | awk -v r="fleetsync_ingest_refused_total{reason=\"$1\"}" '$1 == r { print $2 }'; }
"${H[@]}" truck 127.0.0.1 "$IPORT" "$TG" "$(pw "$TG")" "fleet/trucks/$TG/telemetry" 240 20 >"$W/truck.out" 2>&1 &
truck=$!
# Half-open: logged in with keep-alive 2 and a will, then silent (no FIN).
"${H[@]}" silent 127.0.0.1 "$IPORT" "$TH" "$(pw "$TH")" 2 "fleet/trucks/$TH/status" offline >"$W/silent.out" 2>&1 &
silent=$!
# A slow reader: QoS 1 readings as fast as it can, never reading a PUBACK.
"${H[@]}" slow-reader 127.0.0.1 "$IPORT" "$TS" "$(pw "$TS")" "fleet/trucks/$TS/telemetry" 60000 >"$W/slow.out" 2>&1
r=$(cat "$W/slow.out")
check "a slow reader is closed (--max-unread 4096) before 60,000 unread PUBACKs ($r)" grep -q 'closed=1' "$W/slow.out"
check_eq "counted as slow_reader" 1 "$(refused slow_reader)"
# A CONNECT flood: 1,000 sockets at once, each sending only the start of a
# CONNECT, past --max-connections 300 and --connect-timeout 2.
"${H[@]}" connect-flood 127.0.0.1 "$IPORT" 1000 3 >"$W/flood.out" 2>&1
check "a CONNECT flood: every socket closed by the ingest ($(cat "$W/flood.out"))" grep -q 'opened=1000 reset=1000' "$W/flood.out"
tm=$(refused too_many_connections) ct=$(refused connect_timeout)
check "counted: those past --max-connections at once ($tm), the others at --connect-timeout ($ct)" \
    test "$tm" -ge 700 -a $((tm + ct)) -eq 1000
# Wrong passwords at rate, MQTT 3.1.1 and 5.
"${H[@]}" bad-login 127.0.0.1 "$IPORT" "$TS" 1000 4 >"$W/bad4.out" 2>&1
"${H[@]}" bad-login 127.0.0.1 "$IPORT" "$TS" 500 5 >"$W/bad5.out" 2>&1
check "1,000 wrong passwords (3.1.1): each CONNACK 4 ($(cat "$W/bad4.out"))" grep -q 'codes=4:1000 ' "$W/bad4.out"
check "500 wrong passwords (MQTT 5): each CONNACK 0x86 ($(cat "$W/bad5.out"))" grep -q 'codes=134:500 ' "$W/bad5.out"
check_eq "counted as bad_login" 1500 "$(refused bad_login)"
wait "$silent"
ms=$(sed -n 's/closed_after_ms=//p' "$W/silent.out")
check "a silent client (keep-alive 2) is closed at 1.5 times it (3 s; took ${ms:-?} ms)" test "${ms:-0}" -ge 2500 -a "${ms:-0}" -lt 5500
check_eq "counted as keepalive" 1 "$(refused keepalive)"
check_eq "and its will is in truck-status" 1 "$(wait_until 1 20 count_will)"
wait "$truck"
r=$(cat "$W/truck.out")
check "meanwhile the truck got all its 240 PUBACKs, none later than 2 s ($r)" \
    test "$(sed -n 's/.*acked=\([0-9]*\).*/\1/p' <<<"$r")" = 240 -a "$(sed -n 's/.*max_ms=\([0-9]*\).*/\1/p' <<<"$r")" -lt 2000
check_eq "and its 240 readings are in truck-telemetry" 240 "$(wait_until 240 20 count_truck "$TG")"
rd=$(metric "$MPORT" fleetsync_ingest_readings_total) ak=$(metric "$MPORT" fleetsync_ingest_acknowledged_total)
check "every record handed to Kafka was acknowledged ($rd, $ak)" test -n "$rd" -a "$rd" = "$ak"

kill -TERM "$ingest_pid"; wait "$ingest_pid"; rc=$?; ingest_pid=
check_eq "SIGTERM stops the ingest cleanly" 0 "$rc"
priv services stop >/dev/null 2>&1
check_eq "the private stack stops, nothing of it left" "" "$(pgrep -af -- "$D" | grep -v pgrep)"
done_testing
