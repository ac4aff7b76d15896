#!/bin/bash
# fleetsync notify under faults, against the real Kafka and real HTTP
# receivers (build/tools/webhook_receiver), alerts produced at a steady rate
# (build/tools/kafka_produce --rate) into the suite's own truck-alerts
# (prefix $P) while the faults happen:
#
#   outage   the receiver down for 60 s (its port closed: connections
#            refused) while 10 trucks keep raising and clearing alerts (10 a
#            second over 80 s, 800 in all), with the destination's default
#            backoff (500 ms doubling to 30 s): nothing arrives while it is
#            down, every alert arrives after it is back, none dead-lettered;
#   sigkill  notify SIGKILLed 5 times during a stream of 2,400 alerts (60 a
#            second), each time after it delivered more since its restart,
#            restarted at once: every alert delivered.
#
# After each: the deliveries are exactly the produced alert_id:state set,
# every signature verifies with the destination's secret (openssl), a
# repeated delivery carries its first delivery's idempotency key and body,
# each truck's first deliveries come in produced order, and the group's lag
# (fleetsync status) ends at 0.  CHAOS_NOTIFY_OUTAGE_S shortens the outage
# (default 60).  Ports: notify's metrics TEST_METRICS_BASE + 50, the
# receiver + 51.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/../e2e/notify_lib.sh"

TOOLS=$(dirname "$FS")/tools
RX=$TOOLS/webhook_receiver KP=$TOOLS/kafka_produce # built by make tools
for t in "$RX" "$KP"; do [ -x "$t" ] || { echo "not ok - $t is missing: run make tools"; exit 1; }; done
P="chaosnotify$$-"
ID="CHN$$"
G="chaos-notify-$$"
B=$FLEETSYNC_BROKERS
OUTAGE=${CHAOS_NOTIFY_OUTAGE_S:-60}
MP=$((TEST_METRICS_BASE + 50)) PA=$((TEST_METRICS_BASE + 51))
SA="chaos-secret-$$-0123456789"
W=$(mktemp -d /tmp/fleetsync-chaos-notify.XXXXXX)
notify_pid= producer= rx_pids=()
cleanup() {
    [ -n "$notify_pid" ] && kill -9 "$notify_pid" 2>/dev/null
    [ -n "$producer" ] && kill "$producer" 2>/dev/null
    for p in "${rx_pids[@]}"; do kill "$p" 2>/dev/null; done
    keep_logs chaos-notify "$W/notify.log"
    rm -rf "$W"
}
trap cleanup EXIT
# stream FILE TRUCKS INCIDENTS: alerts of trucks $ID-<TRUCKS...>, incident by
# incident (each truck raised, then each cleared), as kafka_produce lines
# stamped when produced.
stream() {
    local f=$1 k s t
    shift
    local n=$1
    shift
    for k in $(seq 1 "$n"); do
        for s in raised cleared; do for t in "$@"; do alert "$ID-$t" "$k" "$s"; done; done
    done | sed 's/^/0|/' >"$f"
}
produce_at() { "$KP" --rate "$1" "$B" "${P}truck-alerts" "$2" 2>>"$W/produce.log"; }
# deliveries_between FROM_MS TO_MS: requests the receiver recorded in that window.
deliveries_between() { jq --argjson a "$1" --argjson b "$2" 'select(.t_ms >= $a and .t_ms < $b)' "$W/a.jsonl" | grep -c '"t_ms"'; }
after_checks() {   # after_checks WHAT FILE PREFIX: the checks every fault ends with
    local got
    check_eq "$1: they are exactly the produced alerts (alert_id:state)" "$(cut -d'|' -f2- "$2" | expected /dev/stdin)" \
        "$(keys a "$3" | sort -u)"
    got=$(count_distinct a "$3")
    check_eq "$1: a repeated delivery carries its first one's idempotency key and body" "$got" \
        "$(same_key_repeats a "$3")"
    echo "# $1: $(($(keys a "$3" | wc -l) - got)) repeat(s)"
    check_eq "$1: every signature verifies with the destination's secret (openssl)" 0 "$(bad_signatures a "$SA")"
    check_eq "$1: each truck's first deliveries arrive in produced order" "" "$(in_order a "$3")"
    check_eq "$1: fleetsync status shows the group's lag, 0 once all is delivered" 0 "$(lag_settles "$G" 30)"
}

"$FS" services start --topic-prefix "$P" >/dev/null 2>&1
check "topics with the suite's prefix exist" topics_ready
# The destination's defaults but for the queue bound: 800 alerts wait
# during the outage, more than the default 1000 would allow at a faster
# rate; a real receiver's backoff (500 ms doubling to 30 s) and retry window.
cat >"$W/routes.json" <<EOF
{
  "destinations": {"a": {"url": "http://127.0.0.1:$PA/hook", "secret": "$SA", "queue": 5000}},
  "routes": [{"truck_prefix": "$ID-", "to": ["a"]}]
}
EOF
chmod 600 "$W/routes.json"
receiver a "$PA"
sleep 0.5
start_notify

# --- the receiver down for $OUTAGE s while alerts keep coming -----------------------------
stream "$W/p1.txt" 40 O0 O1 O2 O3 O4 O5 O6 O7 O8 O9
produce_at 10 "$W/p1.txt" &
producer=$!
sleep 8
echo down >"$W/a.ctl"
sleep 0.5
down_ms=$(date +%s%3N) before=$(count_distinct a "$ID-O")
sleep "$OUTAGE"
up_ms=$(date +%s%3N)
check_eq "nothing arrived while the receiver was down ($OUTAGE s)" 0 "$(deliveries_between "$down_ms" "$up_ms")"
r=$(metric "$MP" 'fleetsync_notify_retries_total{destination="a"}')
check "the failed attempts were retried meanwhile (retries_total ${r:-none} > 0)" test "${r:-0}" -gt 0
q=$(metric "$MP" 'fleetsync_notify_queue_depth{destination="a"}')
check "the alerts of the outage wait in a's queue (${q:-none} > 400)" test "${q:-0}" -gt 400
echo 200 >"$W/a.ctl"
wait "$producer"
check_eq "the producer sent all 800 alerts at 10 a second" 0 $?
producer=
got=$(wait_count 800 120 a "$ID-O")
check_eq "after the outage all 800 alerts are delivered (none lost; $before before it)" 800 "$got"
late=$(jq -r --argjson u "$up_ms" 'select(.status == 200) | "\(.t_ms) \(.headers["x-fleetsync-idempotency-key"])"' \
    "$W/a.jsonl" | awk -v u="$up_ms" '!seen[$2]++ && $1 >= u' | wc -l)
check "the $((OUTAGE * 10)) or so produced during the outage were first delivered after it ($late)" \
    test "$late" -ge $((OUTAGE * 10 - 20))
check_eq "none was dead-lettered" 0 "$(dlq | grep -c "destination=a" || true)"
after_checks "outage" "$W/p1.txt" "$ID-O"

# --- SIGKILL, five times, during a stream -------------------------------------------------------
# The receiver takes 10 ms per request: the stream keeps a backlog in flight
# when each kill comes.
echo "200 10" >"$W/a.ctl"
sleep 0.3
trucks=()
for t in $(seq -w 0 19); do trucks+=("K$t"); done
stream "$W/p2.txt" 60 "${trucks[@]}"
produce_at 60 "$W/p2.txt" &
producer=$!
kills=0 mid=0
for k in 1 2 3 4 5; do
    from=$(count_distinct a "$ID-K")
    # More delivered since the (re)start, then the kill at a random moment.
    for _ in $(seq 200); do
        [ "$(count_distinct a "$ID-K")" -ge $((from + 150)) ] && break
        sleep 0.1
    done
    sleep "0.$((RANDOM % 9 + 1))"
    n=$(count_distinct a "$ID-K")
    kill -9 "$notify_pid"; wait "$notify_pid" 2>/dev/null
    kills=$((kills + 1))
    [ "$n" -lt 2400 ] && mid=$((mid + 1))
    echo "# SIGKILL $k after $n of 2400"
    start_notify
done
wait "$producer"
check_eq "the producer sent all 2400 alerts at 60 a second" 0 $?
producer=
check_eq "notify was SIGKILLed 5 times, each with alerts still to deliver" "5 5" "$kills $mid"
got=$(wait_count 2400 120 a "$ID-K")
check_eq "after 5 SIGKILLs all 2400 alerts are delivered (nothing lost)" 2400 "$got"
check_eq "none was dead-lettered" 0 "$(dlq | grep -c "destination=a" || true)"
after_checks "sigkill" "$W/p2.txt" "$ID-K"

kill -TERM "$notify_pid"; wait "$notify_pid"; rc=$?; notify_pid=
check_eq "SIGTERM after the faults: notify exits 0" 0 "$rc"
done_testing
