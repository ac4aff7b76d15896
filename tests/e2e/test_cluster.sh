#!/bin/bash
# Distributed mode, locally (docs/cluster.md): `services start --kafka-brokers 3` runs
# a 3-broker KRaft cluster on its own ports and data dir (not the shared
# stack's): topics with 3 replicas and min.insync.replicas=2; the bridge, two
# history instances and two detect instances (one group each) work unchanged
# against it and split the partitions; every reading is stored exactly once;
# a broker killed with SIGKILL while the simulator writes does not stop the
# pipeline, `services start` brings it back and it catches up; `services
# stop` stops all three.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/bridge_lib.sh"

S=80
MQTT=$((TEST_MQTT_PORT + S)) KAFKA=$((TEST_KAFKA_PORT + S)) PGP=$((TEST_PG_PORT + S))
K1=$KAFKA K2=$((KAFKA + 2)) K3=$((KAFKA + 4))
B=127.0.0.1:$K1,127.0.0.1:$K2,127.0.0.1:$K3
MB=$((TEST_METRICS_BASE + S))
D=$(mktemp -d /tmp/fleetsync-cluster.XXXXXX)
W=$D/work
mkdir -p "$W"
chmod 755 "$D"
export FLEETSYNC_MQTT=mqtt://127.0.0.1:$MQTT FLEETSYNC_BROKERS=$B
export FLEETSYNC_PG="host=127.0.0.1 port=$PGP dbname=fleetsync user=fleetsync"
export FLEETSYNC_DATA_DIR=$D FLEETSYNC_TOPIC_PREFIX=
export PGPASSFILE=$D/pgpass   # psql: the role fleetsync's password (services start)
MQTT_PORT=$MQTT P=
ID="E2EC$$-"
GH="e2e-cluster-history-$$" GD="e2e-cluster-detect-$$"
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done
    "$FS" services stop >/dev/null 2>&1
    [ -z "${KEEP_W:-}" ] && rm -rf "$D"
}
trap cleanup EXIT

q() { psql "$FLEETSYNC_PG" -XAtqc "$1" 2>/dev/null; }
rows() { q "SELECT count(*) FROM telemetry WHERE truck_id LIKE '$ID%'"; }
distinct_rows() { q "SELECT count(DISTINCT (truck_id, ts, seq)) FROM telemetry WHERE truck_id LIKE '$ID%'"; }
md() { kcat -b "$B" -L -J -t "$1" 2>/dev/null; }
# replicas/isr of every partition of a topic, one "p:replicas:isr" word each
repl() { md "$1" | jq -r '.topics[0].partitions[] | "\(.partition):\(.replicas | length):\(.isrs | length)"' | xargs; }
lag() {
    "$FS" status --json --group "$1" 2>/dev/null | jq -r --arg g "$1" '[.groups[] | select(.group == $g) | .lag] | first // "none"'
}
members() {
    "$FS" status --json --group "$1" 2>/dev/null | jq -r --arg g "$1" '[.groups[] | select(.group == $g) | .members] | first // 0'
}
# sim RUN START [SPEEDUP]: 20 trucks, one simulated hour (7200 readings), as
# fast as the broker takes it by default; runs start an hour apart (now-4h,
# now-3h, now-2h).
sim() {
    "$FS" sim --trucks 20 --connections 2 --interval 10 --duration 3600 --speedup "${3:-0}" --start "$2" \
        --id-prefix "$ID" --seed "$1" --metrics-port -1 --quiet >"$W/sim$1.log" 2>&1
}
# wait_value WANT SECS COMMAND...: polls until COMMAND prints WANT; prints the last value.
wait_value() {
    local want=$1 secs=$2 got=; shift 2
    for _ in $(seq $((secs * 2))); do
        got=$("$@")
        [ "$got" = "$want" ] && break
        sleep 0.5
    done
    printf '%s' "$got"
}

# --- the cluster ------------------------------------------------------------
rc=0; out=$("$FS" services start --kafka-brokers 2 2>&1) || rc=$?
check_eq "--kafka-brokers 2 is a usage error" 2 "$rc"
check_contains "and says what is supported" "1 or 3" "$out"
check_contains "services --help teaches --kafka-brokers" "--kafka-brokers N" "$("$FS" services --help)"

t0=$(date +%s%N)
rc=0; "$FS" services start --kafka-brokers 3 --timeout 120 >"$W/start.out" 2>&1 || rc=$?
check_eq "services start --kafka-brokers 3 (in $(( ($(date +%s%N) - t0) / 1000000 )) ms)" 0 "$rc"
[ "$rc" = 0 ] || { sed 's/^/# /' "$W/start.out"; done_testing; exit 1; }
st=$("$FS" services status); rc=$?
check_eq "services status: exit 0, every broker healthy" 0 "$rc"
for k in 1 2 3; do
    check_contains "status shows kafka-$k healthy on its port" "healthy" "$(grep "^  kafka-$k .* $((KAFKA + 2 * k - 2)) " <<<"$st")"
done
js=$("$FS" services status --json)
check_eq "status --json keeps three services" 3 "$(jq length <<<"$js")"
check_eq "status --json: kafka lists 3 healthy brokers with controllers on +1/+3/+5" \
    "$((KAFKA + 1)) $((KAFKA + 3)) $((KAFKA + 5))" \
    "$(jq -r '[.[] | select(.name == "kafka") | .brokers[] | select(.healthy) | .controller_port] | join(" ")' <<<"$js")"
check_eq "kcat -L: 3 brokers" "1 2 3" "$(md truck-telemetry | jq -r '[.brokers[].id] | sort | join(" ")')"
check_eq "truck-telemetry: 6 partitions, each 3 replicas in sync" "0:3:3 1:3:3 2:3:3 3:3:3 4:3:3 5:3:3" \
    "$(repl truck-telemetry)"
check_eq "truck-alerts: 3 replicas each" "0:3:3 1:3:3 2:3:3 3:3:3 4:3:3 5:3:3" "$(repl truck-alerts)"
tcfg=$(java -Xmx128m -cp "$(kafka_libs)/*" kafka.admin.ConfigCommand --bootstrap-server "$B" \
    --describe --entity-type topics --entity-name truck-telemetry 2>&1)
check_contains "truck-telemetry has min.insync.replicas=2" "min.insync.replicas=2 " "$tcfg"
rc=0; out=$("$FS" services start --kafka-brokers 1 2>&1) || rc=$?
check_eq "the data dir remembers its cluster: --kafka-brokers 1 is refused" 1 "$rc"
check_contains "and says why" "3-broker" "$out"
check "a second start without the flag keeps the cluster" "$FS" services start

# --- the pipeline, every group with two instances ---------------------------
"$FS" bridge --metrics-port $((MB + 4)) --quiet >"$W/bridge.log" 2>&1 &
pids+=($!)
for i in 1 2; do
    "$FS" history --group "$GH" --metrics-port $((MB + i - 1)) >"$W/history$i.log" 2>&1 &
    pids+=($!)
    "$FS" detect --group "$GD" --state-dir "$W/detect$i" --start earliest --metrics-port $((MB + i + 1)) \
        >"$W/detect$i.log" 2>&1 &
    pids+=($!)
done
check_eq "two history instances in group $GH" 2 "$(wait_value 2 60 members "$GH")"
check_eq "two detect instances in group $GD" 2 "$(wait_value 2 60 members "$GD")"
# Two members listed does not yet mean the rebalance is over: the readings
# are sent once each history instance holds its half of the 12 partitions
# (truck-telemetry and truck-alerts, 6 each), or one instance could store
# them all before the other is given any.
last_assigned() { grep -o 'assigned [0-9]* partitions' "$W/history$1.log" | tail -1; }
halves() { printf '%s,%s' "$(last_assigned 1)" "$(last_assigned 2)"; }
check_eq "each history instance holds 6 partitions" "assigned 6 partitions,assigned 6 partitions" \
    "$(wait_value "assigned 6 partitions,assigned 6 partitions" 60 halves)"

sim 1 now-4h
check_eq "simulator run 1: every QoS 1 reading acknowledged" 0 $?
N1=7200
check_eq "history stores run 1's $N1 readings" "$N1" "$(wait_until "$N1" 240 rows)"
h1=$(metric $MB fleetsync_history_rows_total) h2=$(metric $((MB + 1)) fleetsync_history_rows_total)
shared() { awk -v a="${h1:-0}" -v b="${h2:-0}" -v n="$N1" 'BEGIN { exit !(a > 0 && b > 0 && a + b == n) }'; }
check "each history instance stored a share (${h1:-0} + ${h2:-0})" shared
shared || for i in 1 2; do  # what each instance was given, for the record
    grep -E 'assigned|revoked|WARN|ERROR|fatal' "$W/history$i.log" | tail -8 | sed "s/^/# history$i: /"
done
d1=$(metric $((MB + 2)) fleetsync_detect_partitions_assigned) d2=$(metric $((MB + 3)) fleetsync_detect_partitions_assigned)
check "the detect instances split the 6 partitions (${d1:-0} + ${d2:-0})" \
    awk -v a="${d1:-0}" -v b="${d2:-0}" 'BEGIN { exit !(a > 0 && b > 0 && a + b == 6) }'

# --- a broker dies while the trucks write ------------------------------------
# Run 2 takes 15 s (speedup 240); broker 2 is killed 4 s in, so most of it
# goes through the two brokers left (leaders move once the controller fences
# the dead one, after broker.session.timeout.ms = 6 s).
sim 2 now-3h 240 &
sim_pid=$!
pids+=($sim_pid)
sleep 4
kill -9 "$(cat "$D/run/kafka-2.pid")"
t_kill=$(date +%s%N)
at_kill=$(rows)
rc=0; st=$("$FS" services status) || rc=$?
check_eq "status exits 1 with a broker down" 1 "$rc"
check_contains "status shows kafka degraded" "degraded" "$(grep '^kafka ' <<<"$st")"
check_contains "status shows kafka-2 down" "down" "$(grep '^  kafka-2 ' <<<"$st")"
wait "$sim_pid"
check_eq "simulator run 2 (a broker killed 4 s in): every reading acknowledged" 0 $?
N2=$((2 * N1))
check_eq "history stores run 2 with one broker down" "$N2" "$(wait_until "$N2" 240 rows)"
echo "# run 2 complete in PostgreSQL $(( ($(date +%s%N) - t_kill) / 1000000 )) ms after the kill"
check "most of run 2 was stored after the kill ($((N2 - at_kill)) of $N1 readings)" test $((N2 - at_kill)) -gt 3600
check_contains "and kafka-2 was still down then" "down" "$("$FS" services status | grep '^  kafka-2 ')"
check_eq "ISR shrank to the 2 live brokers" "0:3:2 1:3:2 2:3:2 3:3:2 4:3:2 5:3:2" \
    "$(wait_value "0:3:2 1:3:2 2:3:2 3:3:2 4:3:2 5:3:2" 30 repl truck-telemetry)"

t0=$(date +%s%N)
check "services start brings the killed broker back" "$FS" services start
echo "# restarted in $(( ($(date +%s%N) - t0) / 1000000 )) ms"
check "status is healthy again" "$FS" services status
check_eq "the restarted broker catches up: every ISR has 3 replicas again" \
    "0:3:3 1:3:3 2:3:3 3:3:3 4:3:3 5:3:3" "$(wait_value "0:3:3 1:3:3 2:3:3 3:3:3 4:3:3 5:3:3" 60 repl truck-telemetry)"

sim 3 now-2h
check_eq "simulator run 3 (after the restart): every reading acknowledged" 0 $?
N3=$((3 * N1))
check_eq "history stores run 3" "$N3" "$(wait_until "$N3" 240 rows)"
sleep 2
check_eq "exactly once: rows = distinct (truck_id, ts, seq)" "$(rows)" "$(distinct_rows)"
check_eq "exactly once: rows = distinct readings Kafka holds" "$(unique_readings truck-telemetry "^$ID")" "$(rows)"
check_eq "history group: lag 0" 0 "$(wait_value 0 60 lag "$GH")"
check_eq "detect group: lag 0" 0 "$(wait_value 0 60 lag "$GD")"
r1=$(metric $((MB + 2)) fleetsync_detect_records_total) r2=$(metric $((MB + 3)) fleetsync_detect_records_total)
check "both detect instances read, every reading at least once (${r1:-0} + ${r2:-0} of $N3)" \
    awk -v a="${r1:-0}" -v b="${r2:-0}" -v n="$N3" 'BEGIN { exit !(a > 0 && b > 0 && a + b >= n) }'
alive=0
for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && alive=$((alive + 1)); done
check_eq "bridge, both history and both detect instances survived the broker kill" 5 "$alive"

# --- stop ----------------------------------------------------------------------
for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null; done
for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
pids=()
kpids=$(cat "$D"/run/kafka-*.pid)
t0=$(date +%s%N)
check "services stop" "$FS" services stop
echo "# stopped in $(( ($(date +%s%N) - t0) / 1000000 )) ms"
left=
for p in $kpids; do  # a zombie waiting for init to reap it is gone
    kill -0 "$p" 2>/dev/null && ! grep -q '^State:.*zombie' "/proc/$p/status" 2>/dev/null && left="$left $p"
done
check_eq "services stop stops all three brokers" "" "$left"
check_eq "no pid file is left" "" "$(ls "$D/run/"*.pid 2>/dev/null)"
done_testing
