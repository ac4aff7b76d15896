#!/bin/bash
# The system fault suite (docs/chaos.md).  A steady run of the
# whole pipeline -- simulator (200 trucks, a scenario, a fixed absolute start
# in the past, --speedup, then a real-time tail) -> Mosquitto -> bridge ->
# Kafka -> history, billing, detect, dashboard, each run by this script so
# that it can kill -9 / SIGSTOP each one -- while faults are applied in turn:
#
#   SIGKILL of the simulator, the bridge, history, billing, detect and the
#   dashboard, several times each, each restarted at once; Kafka killed -9 and
#   brought back by `services start` (on a 3-broker cluster: one broker of the
#   three killed -9, kept down 60 s while the others serve, brought back and
#   waited for until it is in every ISR again); Mosquitto restarted;
#   PostgreSQL stopped for 60 s; history SIGSTOPped for 60 s.
#
# After each fault: every (truck_id, ts, seq) that Kafka holds below history's
# stored offsets is in PostgreSQL's telemetry exactly once.  At the end: every
# reading the simulator generates (its --dry-run with the same arguments) is
# in Kafka and in PostgreSQL exactly once; the (alert_id, state) set equals a
# reference detector's on a partition-by-partition copy of the same topic
# (wall-clock offline alerts aside); billing_daily equals a reference billing
# run into its own schema; the dashboard's mean reading age during the
# PostgreSQL and history faults is within 20 % of a window without faults.
# Prints the table: fault, readings, stored, lost, duplicated, alert
# differences, latency change.  Any loss, duplicate or difference fails.
#
# A killed simulator is restarted with the same --seed, --start and
# --duration: it regenerates the same readings (docs/sim.md) from the start,
# so what the killed one had not delivered is sent again, as repeats of the
# same triples.
#
# Environment:
#   CHAOS_SHORT=1        the make-test form (tests/e2e/test_faults.sh): 100
#                        trucks, each process killed once, 15 s outages, no
#                        timing thresholds, about 3 minutes
#   CHAOS_OWN_STACK=1    start (and stop) private services on the port block
#                        + CHAOS_PORT_OFFSET in a data dir of its own, instead
#                        of using (and disturbing) the caller's stack
#   CHAOS_PORT_OFFSET=N  metrics ports TEST_METRICS_BASE+N+1.., dashboard
#                        TEST_HTTP_PORT+N (default 80)
#   CHAOS_STATIC_MEMBERS=0|1  static group membership of history, billing,
#                        detect, dashboard (default 1 on the single broker, 0
#                        on the cluster; see STATIC below)
#   CHAOS_EDGE=ingest    the trucks' edge is `fleetsync ingest` (docs/ingest.md)
#                        on the MQTT port + OFF + 7 instead of Mosquitto +
#                        the bridge: the simulator publishes to it, the ingest
#                        is SIGKILLed where the bridge was, and the Mosquitto
#                        restart (no longer on the path) is left out
#   CHAOS_KAFKA_BROKERS=3  private services (implies CHAOS_OWN_STACK=1) with
#                        `services start --kafka-brokers 3` (docs/cluster.md):
#                        Kafka on TEST_KAFKA_PORT+N, +N+2, +N+4 (controllers one
#                        above each), every process given all three; topics
#                        with 3 replicas, min.insync.replicas 2; the Kafka
#                        fault kills one broker (the leader of partition 0 of
#                        the run's truck-telemetry) instead of the only one
. "$(dirname "$0")/lib.sh"

SHORT=${CHAOS_SHORT:-0}
EDGE=${CHAOS_EDGE:-mosquitto}
case "$EDGE" in
mosquitto) EP=bridge ;;   # the edge's process this script kills and restarts
ingest) EP=ingest ;;
*) echo "CHAOS_EDGE is mosquitto or ingest, not '$EDGE'" >&2; exit 2 ;;
esac
OFF=${CHAOS_PORT_OFFSET:-80}
OWN=${CHAOS_OWN_STACK:-0}
KB=${CHAOS_KAFKA_BROKERS:-1}
case "$KB" in
1) ;;
3) OWN=1 ;;   # a cluster is never the caller's stack: this script starts its own
*) echo "CHAOS_KAFKA_BROKERS is 1 or 3, not '$KB'" >&2; exit 2 ;;
esac
W=$(mktemp -d /tmp/fleetsync-chaos-system.XXXXXX)
chmod 755 "$W"
# A copy of the binary (the dashboard then needs --web-dir: it looks for the
# page next to its binary).
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
own_binary

if [ "$OWN" = 1 ]; then
    private_services "$OFF" "$W/stack"
    # A cluster: brokers on the port + 0, 2, 4 (controllers one above each);
    # every process gets all three, so none depends on the one killed.
    [ "$KB" = 3 ] && FLEETSYNC_BROKERS=127.0.0.1:$((TEST_KAFKA_PORT + OFF)),127.0.0.1:$((TEST_KAFKA_PORT + OFF + 2)),127.0.0.1:$((TEST_KAFKA_PORT + OFF + 4))
fi
export FLEETSYNC_TOPIC_PREFIX=

P="chaossys$$-"                 # the run's topics
R="chaosref$$-"                 # the reference detector's copy
T="${P}truck-telemetry"
ID="CHS$$-"                     # truck ids
SCHEMA="chaosref$$"             # the reference billing's schema
B=$FLEETSYNC_BROKERS
MB=$((TEST_METRICS_BASE + OFF))
HTTP=$((TEST_HTTP_PORT + OFF))
IPORT=$((TEST_MQTT_PORT + OFF + 7))   # the ingest (CHAOS_EDGE=ingest)
GH="chaos-history-$$" GB="chaos-billing-$$" GD="chaos-detect-$$" GS="chaos-dash-$$"
GRD="chaos-refdetect-$$" GRB="chaos-refbilling-$$"
FENCES=$(cd "$(dirname "$0")/../e2e" && pwd)/detect_fences.geojson
PG_REF="$FLEETSYNC_PG options=-csearch_path=$SCHEMA"

if [ "$SHORT" = 1 ]; then
    TRUCKS=100 SPEEDUP=6 BACK=240 TAIL=140 KILLS=1 OUTAGE=15
else
    TRUCKS=200 SPEEDUP=8 BACK=1680 TAIL=600 KILLS=3 OUTAGE=60
fi
INTERVAL=5 SEED=4242
NOW=$(date -u +%s)
T0=$(( (NOW - BACK) / 60 * 60 ))                  # fixed absolute start, in the past
START=$(date -u -d "@$T0" +%Y-%m-%dT%H:%M:%SZ)
DUR=$(( NOW + TAIL - T0 ))                        # simulated seconds: ends TAIL s from now

declare -A PID KILLED
ROWS=()                                           # the table
cleanup() {
    local n
    for n in "${!PID[@]}"; do
        [ -n "${PID[$n]}" ] && kill -CONT "${PID[$n]}" 2>/dev/null && kill -9 "${PID[$n]}" 2>/dev/null
    done
    wait 2>/dev/null
    psql "$FLEETSYNC_PG" -XAtqc "DROP SCHEMA IF EXISTS $SCHEMA CASCADE" >/dev/null 2>&1
    if [ "$OWN" = 1 ]; then "$FS" services stop >/dev/null 2>&1; fi
    keep_logs chaos-system "$W"/*.log "$W"/*.txt
    rm -rf "$W"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

q() { psql "$FLEETSYNC_PG" -XAtqc "$1" 2>/dev/null; }

# --- the scenario: incidents spread over the run ------------------------------
tid() { printf '%s%06d' "$ID" "$1"; }
if [ "$SHORT" = 1 ]; then
    cat >"$W/scenario.jsonl" <<EOF
{"truck_id":"$(tid 3)","rule":"gps_jump","at_s":60,"km":400}
{"truck_id":"$(tid 5)","rule":"overspeed","at_s":90,"duration_s":120,"speed_kmh":125}
{"truck_id":"$(tid 9)","rule":"fuel_drop","at_s":150,"pct":30,"over_s":120}
{"truck_id":"$(tid 12)","rule":"overspeed","at_s":$((DUR - 280)),"duration_s":90,"speed_kmh":120}
EOF
else
    cat >"$W/scenario.jsonl" <<EOF
{"truck_id":"$(tid 3)","rule":"gps_jump","at_s":120,"km":400}
{"truck_id":"$(tid 5)","rule":"overspeed","at_s":240,"duration_s":180,"speed_kmh":125}
{"truck_id":"$(tid 7)","rule":"stationary_engine_on","at_s":300,"duration_s":1500}
{"truck_id":"$(tid 8)","rule":"moving_ignition_off","at_s":700,"duration_s":600,"speed_kmh":30}
{"truck_id":"$(tid 9)","rule":"fuel_drop","at_s":500,"pct":30,"over_s":300}
{"truck_id":"$(tid 11)","rule":"geofence_exit","at_s":900,"fence":"e2e-north-sea","duration_s":600}
{"truck_id":"$(tid 13)","rule":"offline","at_s":400,"duration_s":900}
{"truck_id":"$(tid 14)","rule":"gps_jump","at_s":1300,"km":300}
{"truck_id":"$(tid 20)","rule":"overspeed","at_s":$((DUR - 400)),"duration_s":120,"speed_kmh":120}
{"truck_id":"$(tid 21)","rule":"gps_jump","at_s":$((DUR - 300)),"km":250}
EOF
fi
SIM_ARGS=(--trucks "$TRUCKS" --interval "$INTERVAL" --seed "$SEED" --start "$START" --duration "$DUR"
          --id-prefix "$ID" --scenario "$W/scenario.jsonl" --geofences "$FENCES")

# --- the processes ------------------------------------------------------------
# Static group membership, so that a restarted member takes its partitions
# back at once: on the single broker.  Not on the cluster (unless
# CHAOS_STATIC_MEMBERS=1): there the death of one broker can make a static
# member's session time out, and its rejoin fences its own commits
# (FENCED_INSTANCE_ID, a fatal consumer error; confluentinc/librdkafka#3437);
# history, detect and the dashboard then keep running but read nothing more.
# Members are dynamic there, as in `fleetsync up`.
STATIC_MEMBERS=${CHAOS_STATIC_MEMBERS:-$([ "$KB" = 3 ] && echo 0 || echo 1)}
STATIC() {
    if [ "$STATIC_MEMBERS" = 1 ]; then echo "-X group.instance.id=$1-static -X session.timeout.ms=6000"
    else echo "-X session.timeout.ms=6000"; fi
}
start() {   # start NAME: runs it in the background, logging to $W/NAME.log
    local n=$1
    case "$n" in
    bridge)
        start_logged "PID[$n]" "$W/bridge.log" subscribed 150 \
            "$FS" bridge --topic-prefix "$P" --data-dir "$W" --client-id "chaos-system-$$" --session-expiry 900 \
            --metrics-port $((MB + 1)) --quiet ;;
    ingest)
        start_logged "PID[$n]" "$W/ingest.log" "ingest listening" 150 \
            "$FS" ingest --topic-prefix "$P" --data-dir "$W" --listen "127.0.0.1:$IPORT" --metrics-port $((MB + 1)) \
            --quiet ;;
    history)
        # Every batch holds its rollups in memory (written every 5 s): each
        # kill loses what is held, and the restart rebuilds it.
        # shellcheck disable=SC2046
        "$FS" history --topic-prefix "$P" --group "$GH" --metrics-port $((MB + 2)) $(STATIC "$GH") \
            --rollup-batch 1 --rollup-ms 5000 >>"$W/history.log" 2>&1 &
        PID[$n]=$! ;;
    detect)
        # shellcheck disable=SC2046
        "$FS" detect --topic-prefix "$P" --group "$GD" --metrics-port $((MB + 3)) --state-dir "$W/detect" \
            --start earliest --geofences "$FENCES" $(STATIC "$GD") >>"$W/detect.log" 2>&1 &
        PID[$n]=$! ;;
    billing)
        # shellcheck disable=SC2046
        "$FS" billing --topic-prefix "$P" --group "$GB" --metrics-port $((MB + 4)) $(STATIC "$GB") \
            >>"$W/billing.log" 2>&1 &
        PID[$n]=$! ;;
    dashboard)
        # shellcheck disable=SC2046
        "$FS" dashboard --topic-prefix "$P" --group "$GS" --listen "127.0.0.1:$HTTP" --metrics-port -1 --web-dir "$ROOT/web" \
            $(STATIC "$GS") >>"$W/dashboard.log" 2>&1 &
        PID[$n]=$!
        for _ in $(seq 100); do curl -s --max-time 1 "http://127.0.0.1:$HTTP/healthz" >/dev/null && break; sleep 0.1; done ;;
    sim)
        # shellcheck disable=SC2046
        "$FS" sim "${SIM_ARGS[@]}" --speedup "$SPEEDUP" --metrics-port $((MB + 5)) --quiet --drain-timeout 120 \
            $([ "$EDGE" = ingest ] && echo "--mqtt mqtt://127.0.0.1:$IPORT") \
            --truth "$W/truth.jsonl" >>"$W/sim.log" 2>&1 &
        PID[$n]=$! ;;
    esac
}
alive() { kill -0 "${PID[$1]}" 2>/dev/null; }
# survived NAME: alive, or, for the simulator, its run over: the summary it
# prints at its end follows its last start (on a slow machine its last
# simulated second can come before a late fault; its exit status is checked
# at the end).
survived() {
    alive "$1" && return 0
    [ "$1" = sim ] && awk '/^--- SIGKILL/ { done = 0 } /^fleetsync sim: [0-9]+ trucks/ { done = 1 } END { exit !done }' "$W/sim.log"
}
kill9() {   # kill9 NAME: SIGKILL, reap, restart
    local n=$1
    kill -9 "${PID[$n]}" 2>/dev/null && KILLED[$n]=$(( ${KILLED[$n]:-0} + 1 ))
    wait "${PID[$n]}" 2>/dev/null
    echo "--- SIGKILL $(date -u +%T)" >>"$W/$n.log"
    sleep 1
    start "$n"
}
pause() { sleep "$1.$((RANDOM % 10))"; }

# --- measurements ---------------------------------------------------------------
parts() { local p a=(); for p in 0 1 2 3 4 5; do a+=(-t "$1:$p:-1"); done; printf '%s\n' "${a[@]}"; }
ends() {   # "partition end" lines of topic $1
    mapfile -t a < <(parts "$1")
    kcat -b "$B" -Q "${a[@]}" 2>/dev/null | sed -n 's/.*\[\([0-9]*\)\] offset \([0-9]*\).*/\1 \2/p' | sort -n
}
stored() { q "SELECT partition || ' ' || next_offset FROM sink_offsets WHERE group_id = '$GH' AND topic = '$T' ORDER BY 1"; }
# reached A B: every partition's offset in B is >= A's ("p o" lines).
reached() { awk 'NR == FNR { want[$1] = $2; next } { have[$1] = $2 } END { for (p in want) if (want[p] > 0 && have[p] + 0 < want[p]) exit 1 }' "$1" "$2"; }
wait_history() {   # SECONDS: until history stored everything Kafka had when called
    ends "$T" >"$W/want.txt"
    for _ in $(seq $(($1 * 2))); do
        stored >"$W/have.txt"
        reached "$W/want.txt" "$W/have.txt" && return 0
        sleep 0.5
    done
    return 1
}
# kcat_upto TOPIC FORMAT ENDS_FILE: each partition's records below the end
# offset the file names ("p end" lines).  Bounded reads: while the topic
# grows, kcat -e may never see the end of every partition at once.
kcat_upto() {
    local p n
    while read -r p n; do
        [ "${n:-0}" -gt 0 ] || continue
        timeout 300 kcat -b "$B" -C -t "$1" -p "$p" -o beginning -c "$n" -q -f "$2" </dev/null 2>/dev/null
    done <"$3"
}
# Kafka's readings of our trucks as "partition offset truck ts seq" lines.
kafka_dump() {
    ends "$T" >"$W/dump_ends.txt"
    kcat_upto "$T" '%p %o %k %s\n' "$W/dump_ends.txt" | awk -v id="$ID" '
        index($3, id) == 1 && match($0, /"ts":[0-9]+,"seq":[0-9]+/) {
            s = substr($0, RSTART, RLENGTH); gsub(/"ts":|"seq":/, "", s); sub(/,/, " ", s)
            print $1, $2, $3, s }'
}
# PostgreSQL's rows and history's stored offsets, in one snapshot.
pg_dump_rows() {
    psql "$FLEETSYNC_PG" -XAtq -v ON_ERROR_STOP=1 >/dev/null 2>"$W/psql.err" <<EOF
BEGIN ISOLATION LEVEL REPEATABLE READ;
\o $W/pg_offsets.txt
SELECT partition || ' ' || next_offset FROM sink_offsets WHERE group_id = '$GH' AND topic = '$T';
\o $W/pg_rows.txt
SELECT truck_id || ' ' || round(extract(epoch FROM ts) * 1000)::bigint || ' ' || seq FROM telemetry WHERE truck_id LIKE '$ID%';
\o
COMMIT;
EOF
}
# checkpoint FAULT: history caught up, then Kafka below its stored offsets vs
# PostgreSQL.  Adds a row to the table (alerts and latency filled in later).
LAST_K=0 LAST_S=0 LAST_L=0 LAST_D=0
checkpoint() {
    local fault=$1 k s l d extra
    check "history catches up after: $fault" wait_history 240
    pg_dump_rows || { _not_ok "snapshot of PostgreSQL after $fault"; sed 's/^/# /' "$W/psql.err"; }
    kafka_dump >"$W/kafka.txt"
    awk 'NR == FNR { upto[$1] = $2; next } $2 < upto[$1] + 0 { print $3, $4, $5 }' \
        "$W/pg_offsets.txt" "$W/kafka.txt" | sort -u >"$W/k_upto.txt"
    awk '{ print $3, $4, $5 }' "$W/kafka.txt" | sort -u >"$W/k_all.txt"
    sort "$W/pg_rows.txt" >"$W/pg_sorted.txt"
    k=$(wc -l <"$W/k_upto.txt")
    s=$(wc -l <"$W/pg_sorted.txt")
    l=$(comm -23 "$W/k_upto.txt" "$W/pg_sorted.txt" | wc -l)
    d=$(( s - $(sort -u "$W/pg_sorted.txt" | wc -l) ))
    extra=$(sort -u "$W/pg_sorted.txt" | comm -13 "$W/k_all.txt" - | wc -l)
    check_eq "after $fault: no reading in Kafka below history's offsets is missing from PostgreSQL ($k readings)" 0 "$l"
    check_eq "after $fault: none stored twice" 0 "$d"
    check_eq "after $fault: no row that Kafka does not hold" 0 "$extra"
    [ "$l" -gt 0 ] && comm -23 "$W/k_upto.txt" "$W/pg_sorted.txt" | head -5 | sed 's/^/# lost: /'
    ROWS+=("$fault|$k|$s|$l|$d")
    LAST_K=$k LAST_S=$s LAST_L=$l LAST_D=$d
    log "$fault: $k readings in Kafka below the stored offsets, $s stored, $l lost, $d twice ($(wc -l <"$W/kafka.txt") records)"
}
# Dashboard latency: the mean of fleetsync_dashboard_reading_age_seconds
# (wall clock - ts when applied) over a window, in ms.
age() { curl -s --max-time 5 "http://127.0.0.1:$HTTP/metrics" | awk '
    $1 == "fleetsync_dashboard_reading_age_seconds_sum" { s = $2 } $1 == "fleetsync_dashboard_reading_age_seconds_count" { c = $2 }
    END { printf "%.6f %d\n", s, c }'; }
window() {   # window SECONDS: prints "mean_ms readings"
    local a b
    a=$(age); sleep "$1"; b=$(age)
    echo "$a $b" | awk '{ n = $4 - $2; if (n > 0) printf "%.1f %d\n", ($3 - $1) / n * 1000, n; else print "nan 0" }'
}
sim_clock() { metric $((MB + 5)) fleetsync_sim_clock_seconds | awk '{ printf "%d", $1 }'; }

# --- the cluster's metadata (CHAOS_KAFKA_BROKERS=3) ---------------------------------
md() { kcat -b "$B" -L -J "$@" 2>/dev/null; }
# jqe ARGS...: jq -e on stdin, false on empty input (jq 1.6 -e says true then)
jqe() { local in; in=$(cat); [ -n "$in" ] && jq -e "$@" <<<"$in" >/dev/null 2>&1; }
# "partition:replicas:in-sync replicas" of each partition of topic $1
repl() { md -t "$1" | jq -r '.topics[0].partitions[] | "\(.partition):\(.replicas | length):\(.isrs | length)"' | xargs; }
ALL3="0:3:3 1:3:3 2:3:3 3:3:3 4:3:3 5:3:3"
repl_wait() {   # TOPIC: repl once it shows all 3 in sync, else after 30 s (a new topic's metadata may lag)
    local r
    for _ in $(seq 60); do r=$(repl "$1"); [ "$r" = "$ALL3" ] && break; sleep 0.5; done
    printf '%s' "$r"
}
leader0() { md -t "$1" | jq -r '.topics[0].partitions[] | select(.partition == 0) | .leader'; }
# fenced K TOPIC: no partition of TOPIC is led by broker K or has it in its ISR,
# and each still has 2 replicas in sync (what acks=all needs).
fenced() {
    md -t "$2" | jqe --argjson k "$1" '.topics[0].partitions | length == 6 and
        all(.[]; .leader != $k and ([.isrs[].id] | index($k) | not) and (.isrs | length) >= 2)'
}
# in_sync: every partition of every topic has all its replicas in sync, in 3
# metadata answers in a row.
in_sync() {
    md | jqe '[.topics[].partitions[]] | length > 0 and all(.[]; (.isrs | length) == (.replicas | length))'
}
wait_for() {   # SECONDS COMMAND...: until COMMAND succeeds 3 times in a row, 1 s apart
    local secs=$1 ok=0; shift
    for _ in $(seq "$secs"); do
        if "$@"; then ok=$((ok + 1)); [ "$ok" -ge 3 ] && return 0; else ok=0; fi
        sleep 1
    done
    return 1
}
# members_back SECONDS: history's, billing's, detect's and the dashboard's
# groups each have their one member, for 10 s on end, within SECONDS.  A
# process can outlive its consumer: a static member fenced after a broker's
# death gets a fatal error, leaves its group and reads nothing more.
members() {
    "$FS" status --json --topic-prefix "$P" --group "$GH" --group "$GB" --group "$GD" --group "$GS" 2>/dev/null |
        jq -c --arg h "$GH" --arg b "$GB" --arg d "$GD" --arg s "$GS" \
            '[.groups[] | select(.group == $h or .group == $b or .group == $d or .group == $s) | {(.group): .members}] | add'
}
members_back() {
    local end=$(( $(date +%s) + $1 )) since= m=
    while [ "$(date +%s)" -lt "$end" ]; do
        m=$(members)
        if jqe 'length == 4 and all(.[]; . == 1)' <<<"$m"; then
            since=${since:-$(date +%s)}
            [ $(( $(date +%s) - since )) -ge 10 ] && return 0
        else
            since=
        fi
        sleep 1
    done
    echo "members: $m"
    return 1
}
total_end() { ends "$T" | awk '{ s += $2 } END { if (NR == 6) print s + 0 }'; }   # empty unless all 6 answer

# =================================================================================
if [ "$KB" = 3 ]; then
    check "private services start (Mosquitto, a 3-broker Kafka cluster, PostgreSQL on +$OFF)" \
        "$FS" services start --kafka-brokers 3 --timeout 120
elif [ "$OWN" = 1 ]; then
    check "private services start (Mosquitto, Kafka, PostgreSQL on +$OFF)" "$FS" services start --timeout 120
fi
"$FS" services start --topic-prefix "$P" >/dev/null 2>&1
check "the run's topics exist" topics_ready
if [ "$KB" = 3 ]; then
    check_eq "the cluster lists 3 brokers ($B)" "1 2 3" "$(md | jq -r '[.brokers[].id] | sort | join(" ")')"
    check_eq "$T: 6 partitions, each 3 replicas in sync" "$ALL3" "$(repl_wait "$T")"
    check_eq "${P}truck-alerts: 6 partitions, each 3 replicas in sync" "$ALL3" "$(repl_wait "${P}truck-alerts")"
    check_contains "$T has min.insync.replicas=2" "min.insync.replicas=2 " \
        "$(java -Xmx128m -cp "$(kafka_libs)/*" kafka.admin.ConfigCommand --bootstrap-server "$B" \
            --describe --entity-type topics --entity-name "$T" 2>&1)"
fi
log "simulated start $START, $DUR simulated s, $TRUCKS trucks every $INTERVAL s, speedup $SPEEDUP; $KB Kafka broker(s), $([ "$STATIC_MEMBERS" = 1 ] && echo static || echo dynamic) group members"
for n in $EP history billing detect dashboard; do start "$n"; done
sleep 2
for n in $EP history billing detect dashboard; do check "$n runs" alive "$n"; done
start sim
sleep 3
check "the simulator runs" alive sim

# --- 1. the processes, SIGKILLed in turn ------------------------------------------
gap=6; [ "$SHORT" = 1 ] && gap=3
for n in sim $EP history billing detect dashboard; do
    for _ in $(seq "$KILLS"); do
        pause "$gap"
        kill9 "$n"
    done
    pause 2
    check "$n is running again after ${KILLED[$n]:-0} SIGKILL(s)" alive "$n"
    checkpoint "SIGKILL $n x${KILLED[$n]:-0}"
done

# --- 2. Kafka killed -9, brought back by services start ------------------------------
pause "$gap"
if [ "$KB" = 3 ]; then
    # One broker of the three: the leader of partition 0 of the run's topic
    # (else broker 2), down OUTAGE s while the other two serve (acks=all with
    # min.insync.replicas 2), then brought back by services start, which
    # starts only what is not running, and waited for until it is in every
    # ISR again.
    KN=$(leader0 "$T")
    case "$KN" in 1 | 2 | 3) ;; *) KN=2 ;; esac
    FAULT="Kafka broker $KN of 3 SIGKILL, ${OUTAGE} s down"
    kpid=$(service_pid "kafka-$KN")
    others() { local k; for k in 1 2 3; do [ "$k" = "$KN" ] || service_pid "kafka-$k"; done | xargs; }
    opids=$(others)
    log "killing Kafka broker $KN (pid $kpid), the leader of partition 0 of $T"
    kill -9 "$kpid"
    t=$(date +%s)
    wait_gone "$kpid" 10
    check "Kafka broker $KN is down" bash -c "! kill -0 $kpid 2>/dev/null"
    # broker.session.timeout.ms = 6 s: then the controller fences it, its
    # leaderships move and the ISRs shrink to the two left.
    check "broker $KN leads no partition of $T and is in no ISR of it; each keeps 2 in sync" \
        wait_for 60 fenced "$KN" "$T"
    log "broker $KN fenced $(( $(date +%s) - t )) s after the kill; leaders of $T now: $(md -t "$T" | jq -r '[.topics[0].partitions[].leader] | join(" ")')"
    e1=$(total_end)
    left=$(( t + OUTAGE - $(date +%s) )); [ "$left" -gt 0 ] && sleep "$left"
    e2=$(total_end)
    check "the two brokers left keep taking acks=all writes: $T grew by $(( ${e2:-0} - ${e1:-0} )) records after the fencing" \
        test "${e2:-0}" -gt "${e1:-0}" -a -n "$e1"
    for n in $EP history billing detect dashboard sim; do check "$n runs with broker $KN down" survived "$n"; done
    t=$(date +%s)
    check "services start brings broker $KN back" "$FS" services start --timeout 180
    log "broker $KN back in $(( $(date +%s) - t )) s"
    npid=$(service_pid "kafka-$KN")
    check "services start restarted broker $KN only (new pid $npid; the others kept theirs: $opids)" \
        test -n "$npid" -a "$npid" != "$kpid" -a "$(others)" = "$opids"
    check "broker $KN is back in every ISR (every partition of every topic has its 3 replicas in sync)" \
        wait_for 240 in_sync
    log "every ISR complete $(( $(date +%s) - t )) s after the restart began"
    sleep 3
    for n in $EP history billing detect dashboard sim; do check "$n survived broker $KN's SIGKILL" survived "$n"; done
    check "each pipeline group has its member again (history, billing, detect, dashboard)" members_back 90
    checkpoint "$FAULT"
else
    kpid=$(service_pid kafka)
    kill -9 "$kpid"
    wait_gone "$kpid" 10
    check "Kafka is down" bash -c "! kill -0 $kpid 2>/dev/null"
    sleep 3
    t=$(date +%s)
    check "services start brings Kafka back" "$FS" services start --timeout 180
    log "Kafka back in $(( $(date +%s) - t )) s"
    sleep 3
    for n in $EP history billing detect dashboard sim; do check "$n survived the Kafka restart" survived "$n"; done
    check "each pipeline group has its member again (history, billing, detect, dashboard)" members_back 90
    checkpoint "Kafka SIGKILL + restart"
fi

# --- 3. Mosquitto restarted (when it is the edge) --------------------------------------
if [ "$EDGE" = mosquitto ]; then
    pause "$gap"
    mpid=$(service_pid mosquitto)
    kill -TERM "$mpid"
    wait_gone "$mpid" 10
    sleep 2
    check "services start brings Mosquitto back" "$FS" services start --timeout 60
    sleep 3
    for n in bridge sim; do check "$n survived the Mosquitto restart" survived "$n"; done
    checkpoint "Mosquitto restart"
fi

# --- 4. PostgreSQL stopped, history SIGSTOPped (the real-time tail) -------------------
LAT_BASE=nan LAT_PG=nan LAT_HIST=nan
if [ "$SHORT" != 1 ]; then
    # The dashboard's latency means something once the simulated clock is now.
    for _ in $(seq 600); do
        c=$(sim_clock); [ -n "$c" ] && [ "$c" -ge $(( $(date +%s) - 3 )) ] && break
        sleep 1
    done
    log "the simulator runs in real time"
    sleep 10
    read -r LAT_BASE n <<<"$(window 60)"
    log "dashboard mean reading age without faults: $LAT_BASE ms over $n readings"
fi
pgpid=$(service_pid postgres)
kill -INT "$pgpid"
wait_gone "$pgpid" 20
check "PostgreSQL is stopped" bash -c "! kill -0 $pgpid 2>/dev/null"
if [ "$SHORT" != 1 ]; then
    read -r LAT_PG n <<<"$(window "$OUTAGE")"
    log "... while PostgreSQL is stopped: $LAT_PG ms over $n readings"
else
    sleep "$OUTAGE"
fi
for n in history billing; do check "$n waits for the database (still running)" alive "$n"; done
check "services start brings PostgreSQL back" "$FS" services start --timeout 60
checkpoint "PostgreSQL stopped ${OUTAGE} s"

kill -STOP "${PID[history]}"
if [ "$SHORT" != 1 ]; then
    read -r LAT_HIST n <<<"$(window "$OUTAGE")"
    log "... while history is stopped: $LAT_HIST ms over $n readings"
else
    sleep "$OUTAGE"
fi
kill -CONT "${PID[history]}"
checkpoint "history SIGSTOP ${OUTAGE} s"

# --- 5. the end of the run ---------------------------------------------------------
log "waiting for the simulator to finish (simulated end $(date -u -d "@$((T0 + DUR))" +%T))"
wait "${PID[sim]}"; rc=$?; PID[sim]=
check_eq "the last simulator run ends with every reading acknowledged (exit 0)" 0 "$rc"
[ "$rc" = 0 ] || tail -5 "$W/sim.log" | sed 's/^/# /'
sleep 5
checkpoint "end of run"

# Every reading the simulator generates is in Kafka and in PostgreSQL.
"$FS" sim "${SIM_ARGS[@]}" --speedup 0 --dry-run --print --metrics-port -1 --quiet 2>"$W/dry.log" |
    awk 'match($0, /"truck_id":"[^"]*","ts":[0-9]+,"seq":[0-9]+/) {
        s = substr($0, RSTART, RLENGTH); gsub(/"truck_id":"|"ts":|"seq":/, "", s); gsub(/[",]+/, " ", s); print s }' |
    sort -u >"$W/expected.txt"
SENT=$(wc -l <"$W/expected.txt")
check "the dry run generates the run's readings ($SENT)" test "$SENT" -gt 1000
nk=$(comm -23 "$W/expected.txt" "$W/k_all.txt" | wc -l)
np=$(sort -u "$W/pg_sorted.txt" | comm -23 "$W/expected.txt" - | wc -l)
check_eq "every reading the simulator generated is in Kafka" 0 "$nk"
[ "$nk" -gt 0 ] && comm -23 "$W/expected.txt" "$W/k_all.txt" | head -5 | sed 's/^/# not in Kafka: /'
check_eq "every reading the simulator generated is in PostgreSQL" 0 "$np"
check_eq "PostgreSQL holds nothing else" "$SENT" "$LAST_S"
RECORDS=$(wc -l <"$W/kafka.txt")

# Stop the pipelines cleanly: checkpoints, commits, flushes.
group_lag() {   # PREFIX GROUP
    "$FS" status --json --topic-prefix "$1" --group "$2" 2>/dev/null |
        jq -r --arg g "$2" '[.groups[] | select(.group == $g) | .lag] | first // -1'
}
wait_lag0() { for _ in $(seq $(($3 * 2))); do [ "$(group_lag "$1" "$2")" = 0 ] && return 0; sleep 0.5; done; return 1; }
check "detect caught up" wait_lag0 "$P" "$GD" 120
sleep 6
# Late readings' hours are recomputed between batches: before the stop.
for _ in $(seq 60); do [ "$(q "SELECT count(*) FROM rollup_dirty WHERE truck_id LIKE '$ID%'")" = 0 ] && break; sleep 0.5; done
for n in detect billing history dashboard $EP; do
    kill -TERM "${PID[$n]}"; wait "${PID[$n]}"; rc=$?; PID[$n]=
    check_eq "$n stops cleanly on SIGTERM" 0 "$rc"
done
# The hourly rollups count each stored reading once, whatever the faults
# did to what history held in memory.
RDIFF=$(q "SELECT count(*) FROM (SELECT truck_id, date_trunc('hour', ts) AS hour, count(*) AS n FROM telemetry
           WHERE truck_id LIKE '$ID%' GROUP BY 1, 2) r
           FULL JOIN (SELECT truck_id, hour, samples AS n FROM telemetry_hourly WHERE truck_id LIKE '$ID%') u
           USING (truck_id, hour) WHERE r.n IS DISTINCT FROM u.n")
check_eq "the hourly rollups count every stored reading once (truck-hours that differ)" 0 "$RDIFF"

# --- 6. alerts: a reference detector on a copy of the same topic ----------------------
"$FS" services start --topic-prefix "$R" >/dev/null 2>&1
ends "$T" >"$W/copy_ends.txt"
while read -r p n; do
    [ "${n:-0}" -gt 0 ] || continue
    timeout 300 kcat -b "$B" -C -t "$T" -p "$p" -o beginning -c "$n" -q -f '%k\t%s\n' </dev/null 2>/dev/null |
        kcat -b "$B" -P -t "${R}truck-telemetry" -p "$p" -K '\t'
done <"$W/copy_ends.txt"
copied=$(ends "${R}truck-telemetry" | awk '{ s += $2 } END { print s + 0 }')
orig=$(ends "$T" | awk '{ s += $2 } END { print s + 0 }')
check_eq "the copy holds every record, partition by partition" "$orig" "$copied"
"$FS" detect --topic-prefix "$R" --group "$GRD" --metrics-port $((MB + 6)) --state-dir "$W/refdetect" \
    --start earliest --geofences "$FENCES" >"$W/refdetect.log" 2>&1 &
PID[refdetect]=$!
check "the reference detector caught up" wait_lag0 "$R" "$GRD" 180
sleep 6
kill -TERM "${PID[refdetect]}"; wait "${PID[refdetect]}"; PID[refdetect]=
alerts() {
    kcat -b "$B" -C -t "$1truck-alerts" -o beginning -e -q -f '%s\n' 2>/dev/null |
        jq -r 'select((.details.source? // "") != "wallclock") | "\(.alert_id) \(.state)"' 2>/dev/null | sort -u
}
alerts "$P" >"$W/alerts_run.txt"
alerts "$R" >"$W/alerts_ref.txt"
ADIFF=$(comm -3 "$W/alerts_run.txt" "$W/alerts_ref.txt" | wc -l)
NALERTS=$(wc -l <"$W/alerts_ref.txt")
# So that equal sets are not equally empty: each incident of the scenario that
# ended 150 simulated seconds before the end (a margin for the run's last
# readings) was raised, in the run, for its truck.
kcat -b "$B" -C -t "${P}truck-alerts" -o beginning -e -q -f '%s\n' 2>/dev/null |
    jq -r 'select(.state == "raised") | "\(.truck_id) \(.rule)"' 2>/dev/null | sort -u >"$W/raised.txt"
jq -r --argjson last "$DUR" 'select(.at_s + (.duration_s // .over_s // 0) <= $last - 150) | "\(.truck_id) \(.rule)"' \
    "$W/scenario.jsonl" | sort -u >"$W/incidents.txt"
check "the scenario has incidents to look for" test -s "$W/incidents.txt"
missing=$(comm -23 "$W/incidents.txt" "$W/raised.txt")
check_eq "every incident of the scenario was raised ($(wc -l <"$W/incidents.txt") incidents)" "" "$missing"
check_eq "the (alert_id, state) set equals the reference detector's" 0 "$ADIFF"
comm -3 "$W/alerts_run.txt" "$W/alerts_ref.txt" | head -10 | sed 's/^/# differs: /'
raised=$(grep -c ' raised$' "$W/alerts_run.txt")
log "alerts: $(wc -l <"$W/alerts_run.txt") (alert_id, state) pairs in the run, $NALERTS in the reference, $raised raised"
awk '{ split($1, a, ":"); print a[2], $2 }' "$W/alerts_run.txt" | sort | uniq -c | sed 's/^ */# /'

# --- 7. billing: a reference run into its own schema ------------------------------------
q "CREATE SCHEMA $SCHEMA" >/dev/null
"$FS" billing --topic-prefix "$P" --group "$GRB" --pg "$PG_REF" --metrics-port $((MB + 7)) >"$W/refbilling.log" 2>&1 &
PID[refbilling]=$!
ref_caught_up() {
    local e
    e=$(ends "$T" | awk '{ s += $2 } END { print s + 0 }')
    for _ in $(seq 360); do
        [ "$(psql "$PG_REF" -XAtqc "SELECT coalesce(sum(next_offset), 0) FROM sink_offsets WHERE group_id = '$GRB' AND topic = '$T'" 2>/dev/null)" = "$e" ] && return 0
        sleep 0.5
    done
    return 1
}
check "the reference billing caught up" ref_caught_up
kill -TERM "${PID[refbilling]}"; wait "${PID[refbilling]}"; PID[refbilling]=
BDIFF=$(q "SELECT count(*) FROM (SELECT * FROM public.billing_daily WHERE truck_id LIKE '$ID%') a
           FULL JOIN $SCHEMA.billing_daily r USING (truck_id, day)
           WHERE a.truck_id IS NULL OR r.distance_km IS NULL OR abs(a.distance_km - r.distance_km) > 1e-6
              OR abs(a.engine_hours - r.engine_hours) > 1e-9 OR abs(a.idle_hours - r.idle_hours) > 1e-9
              OR a.max_speed_kmh <> r.max_speed_kmh")
BROWS=$(q "SELECT count(*) || ' rows, ' || round(sum(distance_km)::numeric, 3) || ' km, ' || round(sum(engine_hours)::numeric, 3) || ' engine h'
           FROM $SCHEMA.billing_daily")
check "the reference billing has a row for every truck ($BROWS)" \
    test "$(q "SELECT count(DISTINCT truck_id) FROM $SCHEMA.billing_daily")" = "$TRUCKS"
check_eq "billing_daily equals the reference billing's" 0 "${BDIFF:-x}"

# --- 8. dashboard latency ------------------------------------------------------------
pct() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "nan" || b == "nan" || a <= 0) print "n/a"; else printf "%+.0f %%", (b / a - 1) * 100 }'; }
if [ "$SHORT" != 1 ]; then
    within() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a != "nan" && b != "nan" && b <= a * 1.2) }'; }
    check "dashboard latency with PostgreSQL stopped within 20 % of normal ($LAT_PG vs $LAT_BASE ms)" within "$LAT_BASE" "$LAT_PG"
    check "dashboard latency with history stopped within 20 % of normal ($LAT_HIST vs $LAT_BASE ms)" within "$LAT_BASE" "$LAT_HIST"
fi

# --- the table ------------------------------------------------------------------------
echo "#"
echo "# | fault | readings (Kafka) | stored | lost | duplicated | alert differences | latency change |"
echo "# |---|---:|---:|---:|---:|---:|---|"
for r in "${ROWS[@]}"; do
    IFS='|' read -r f k s l d <<<"$r"
    lat="-"
    case "$f" in
    PostgreSQL*) lat="$(pct "$LAT_BASE" "$LAT_PG") ($LAT_BASE -> $LAT_PG ms)" ;;
    history\ SIGSTOP*) lat="$(pct "$LAT_BASE" "$LAT_HIST") ($LAT_BASE -> $LAT_HIST ms)" ;;
    esac
    [ "$SHORT" = 1 ] && lat="n/a (short form)"
    al="-"; [ "$f" = "end of run" ] && al=$ADIFF
    echo "# | $f | $k | $s | $l | $d | $al | $lat |"
done
echo "#"
echo "# simulator: $SENT readings generated (dry run), $RECORDS records in Kafka for them ($((RECORDS - SENT)) repeats), $nk not in Kafka"
echo "# alerts: $NALERTS (alert_id, state) pairs in the reference, $ADIFF differences; billing: $BROWS, $BDIFF rows differ"
done_testing
