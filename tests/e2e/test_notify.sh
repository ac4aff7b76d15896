#!/bin/bash
# fleetsync notify against the real Kafka and real HTTP receivers
# (build/tools/webhook_receiver, which records every request and answers as
# its control file says).  Alerts are produced with kcat into the suite's
# own truck-alerts topic (prefix $P), under the suite's own group.
#
#   - usage: --help, a bad routes file (exit 2, the field named), --check;
#   - every raised and cleared alert reaches its destination once at least,
#     with a signature that openssl verifies with the destination's secret
#     (a tampered body does not), a fresh timestamp, the idempotency key
#     alert_id:state and Content-Type application/json;
#   - the receiver down for 15 s (short to keep the suite fast: the backoff
#     cap of the test routes is 2 s, so a longer outage changes nothing but
#     the number of retries; tests/chaos/chaos_notify.sh has 60 s with the
#     default backoff and alerts produced throughout): the
#     alerts produced meanwhile arrive after it is back, none lost, each
#     truck's in order;
#   - one destination answering 500 while another keeps receiving at once;
#     the first gets everything after it recovers;
#   - a destination over its queue bound dead-letters the excess to
#     truck-alerts-dlq with destination and reason queue_full; a 404 is
#     permanent (reason refused); a record that is not an alert: invalid_alert;
#   - SIGKILL of notify mid-stream, then a restart: every alert delivered,
#     repeats only with the same idempotency key, each truck's first
#     deliveries in order; the group's lag ends at 0 (fleetsync status);
#   - SIGTERM: a clean exit 0;
#   - a new group at latest, stopped before any alert came: what is produced
#     while it is stopped is delivered after its restart.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/notify_lib.sh"

RX=$(dirname "$FS")/tools/webhook_receiver   # built by make tools
[ -x "$RX" ] || { echo "not ok - $RX is missing: run make tools"; exit 1; }
P="e2enotify$$-"
ID="E2EN$$"
G="e2e-notify-$$"
B=$FLEETSYNC_BROKERS
MP=$((TEST_METRICS_BASE + 40))   # notify's metrics (+40..+44: this suite only)
PA=$((TEST_METRICS_BASE + 41)) PB=$((TEST_METRICS_BASE + 42)) PC=$((TEST_METRICS_BASE + 43))
PD=$((TEST_METRICS_BASE + 44))
SA="secret-a-$$-0123456789" SB="secret-b-$$-0123456789" SC="secret-c-$$-0123456789" SD="secret-d-$$-0123456789"
W=$(mktemp -d /tmp/fleetsync-e2e-notify.XXXXXX)
notify_pid= rx_pids=()
cleanup() {
    [ -n "$notify_pid" ] && kill -9 "$notify_pid" 2>/dev/null
    for p in "${rx_pids[@]}"; do kill "$p" 2>/dev/null; done
    keep_logs e2e-notify "$W/notify.log"
    rm -rf "$W"
}
trap cleanup EXIT
"$FS" services start --topic-prefix "$P" >/dev/null 2>&1
check "topics with the suite's prefix exist" topics_ready
check "services start created truck-alerts-dlq (3 partitions)" \
    bash -c "kcat -b '$B' -L -t '${P}truck-alerts-dlq' 2>/dev/null | grep -q '3 partitions'"

cat >"$W/routes.json" <<EOF
{
  "destinations": {
    "a":     {"url": "http://127.0.0.1:$PA/hook", "secret": "$SA", "timeout_ms": 2000,
              "backoff_base_ms": 200, "backoff_max_ms": 2000},
    "b":     {"url": "http://127.0.0.1:$PB/hook", "secret": "$SB", "timeout_ms": 2000,
              "backoff_base_ms": 200, "backoff_max_ms": 2000},
    "small": {"url": "http://127.0.0.1:$PC/hook", "secret": "$SC", "queue": 2, "parallel": 1,
              "backoff_base_ms": 200, "backoff_max_ms": 1000},
    "gone":  {"url": "http://127.0.0.1:$PD/hook", "secret": "$SD"}
  },
  "routes": [
    {"truck_prefix": ["$ID-T", "$ID-B", "$ID-K", "$ID-L"], "to": ["a"]},
    {"truck_prefix": "$ID-B", "to": ["b"]},
    {"truck_prefix": "$ID-Q", "states": ["raised"], "to": ["small"]},
    {"truck_prefix": "$ID-G", "rules": ["gps_jump"], "to": ["gone"]}
  ]
}
EOF
chmod 600 "$W/routes.json"

# --- usage ---------------------------------------------------------------------
help=$("$FS" notify --help); check_eq "notify --help exits 0" 0 $?
check_contains "--help names the group" "fleetsync-notify" "$help"
check_contains "--help shows the signature header" "X-FleetSync-Signature: t=<unix ms>,v1=" "$help"
sed 's/"queue": 2/"queue": 0/' "$W/routes.json" >"$W/bad.json"
out=$("$FS" notify --routes "$W/bad.json" 2>&1); rc=$?
check_eq "a bad routes file exits 2" 2 "$rc"
check_contains "the error names the file and the field" "$W/bad.json: destinations.small.queue: 0 is out of range" "$out"
printf '{"destinations": {\n  "a": {"url": 1,}\n}}\n' >"$W/bad2.json"
check_contains "a syntax error names the line" "line 2" "$("$FS" notify --routes "$W/bad2.json" 2>&1)"
out=$("$FS" notify --routes "$W/routes.json" --check 2>&1); rc=$?
check_eq "--check of the good file exits 0" 0 "$rc"
check_contains "--check lists the destinations" "4 destination(s), 4 route(s)" "$out"
check_eq "a missing routes file exits 2" 2 "$("$FS" notify --data-dir "$W/none" >/dev/null 2>&1; echo $?)"

receiver a "$PA"; receiver b "$PB"; receiver c "$PC"; receiver d "$PD"
echo 404 >"$W/d.ctl"
sleep 0.5

# --- every alert, signed -------------------------------------------------------------
for t in 1 2 3 4 5; do incidents "$ID-T$t" 1 4; done >"$W/p1.txt"
produce <"$W/p1.txt"
start_notify
got=$(wait_count 40 60 a "$ID-T")
check_eq "all 40 raised and cleared alerts reach destination a" 40 "$got"
check_eq "they are exactly the produced ones (alert_id:state)" "$(expected "$W/p1.txt")" "$(keys a "$ID-T" | sort -u)"
check_eq "every signature verifies with a's secret (openssl), fresh t, key = alert_id:state" 0 "$(bad_signatures a "$SA")"
check_eq "a tampered body fails every signature check (the check works)" \
    "$(wc -l <"$W/a.jsonl")" "$(bad_signatures a "$SA" tamper)"
check_eq "another destination's secret verifies none of a's deliveries" \
    "$(wc -l <"$W/a.jsonl")" "$(bad_signatures a "$SB")"
check_eq "Content-Type is application/json on every request" "" \
    "$(jq -r 'select(.headers["content-type"] != "application/json") | .uri' "$W/a.jsonl")"
check_eq "bodies are the alert records as produced" "$(cut -d'|' -f2- "$W/p1.txt" | sort)" \
    "$(jq -r 'select(.status == 200) | .body' "$W/a.jsonl" | sort -u)"
check_eq "each truck's alerts arrive in order" "" "$(in_order a "$ID-T")"
check_eq "metrics: delivered to a = 40" 40 "$(metric "$MP" 'fleetsync_notify_delivered_total{destination="a"}')"

# --- a 15 s outage ---------------------------------------------------------------------
echo down >"$W/a.ctl"
sleep 0.5
for t in 1 2 3 4 5; do incidents "$ID-T$t" 5 10; done >"$W/p2.txt"
produce <"$W/p2.txt"
sleep 15
check_eq "nothing of the outage's alerts arrived while a was down" 40 "$(count_distinct a "$ID-T")"
r=$(metric "$MP" 'fleetsync_notify_retries_total{destination="a"}')
check "a's failed attempts were retried (retries_total $r > 0)" test "${r:-0}" -gt 0
check_eq "queue depth of a holds the waiting alerts" 60 "$(metric "$MP" 'fleetsync_notify_queue_depth{destination="a"}')"
echo 200 >"$W/a.ctl"
got=$(wait_count 100 30 a "$ID-T")
check_eq "after the outage all 100 alerts are delivered (none lost)" 100 "$got"
check_eq "the outage's alerts are exactly the produced ones" "$(cat "$W/p1.txt" "$W/p2.txt" | expected /dev/stdin)" \
    "$(keys a "$ID-T" | sort -u)"
check_eq "each truck's alerts still arrive in order" "" "$(in_order a "$ID-T")"

# --- one destination answering 500, the other unaffected ----------------------------------
echo 500 >"$W/b.ctl"
sleep 0.3
for t in 1 2; do incidents "$ID-B$t" 1 5; done >"$W/p3.txt"
s=$(date +%s%3N)
produce <"$W/p3.txt"
got=$(wait_count 20 15 a "$ID-B")
el=$(($(date +%s%3N) - s))
check_eq "a receives all 20 alerts while b answers 500" 20 "$got"
check "b answered 500 to attempts meanwhile" test "$(jq -r 'select(.status == 500) | .uri' "$W/b.jsonl" | wc -l)" -gt 0
check_eq "b has none of them yet" 0 "$(count_distinct b "$ID-B")"
check "a got them within 10 s ($el ms): b's failures did not hold a up" test "$el" -lt 10000
sleep 2
echo 200 >"$W/b.ctl"
check_eq "b gets all 20 once it answers 200" 20 "$(wait_count 20 20 b "$ID-B")"
check_eq "b's signatures verify with b's secret" 0 "$(bad_signatures b "$SB")"
check_eq "b's alerts arrive in order per truck" "" "$(in_order b "$ID-B")"

# --- queue bound, refusals, records that are not alerts ---------------------------------------------
echo down >"$W/c.ctl"
sleep 0.5
for k in 1 2 3 4 5 6; do alert "$ID-Q1" "$k" raised; done >"$W/p4.txt"
produce <"$W/p4.txt"
RULE=gps_jump alert "$ID-G1" 1 raised | produce
printf '%s|not an alert\n' "$ID-X" | produce
for _ in $(seq 50); do
    [ "$(dlq | grep -c 'error=queue_full')" -ge 4 ] && [ "$(dlq | grep -c 'error=invalid_alert')" -ge 1 ] &&
        [ "$(dlq | grep -c 'error=refused')" -ge 1 ] && break
    sleep 0.2
done
d=$(dlq)
check_eq "queue bound 2: the 4 alerts over it are dead-lettered for small (reason queue_full)" 4 \
    "$(grep 'destination=small' <<<"$d" | grep -c 'error=queue_full')"
check_contains "the dead letter says why" "error_detail=2 records queued, the bound is 2" "$d"
check_contains "dead letters name the sink and the source" "sink=$G" "$d"
check_eq "a 404 is permanent: dead-lettered for gone (reason refused, HTTP 404)" 1 \
    "$(grep 'destination=gone' <<<"$d" | grep 'error=refused' | grep -c 'error_detail=HTTP 404')"
check_eq "gone was tried once (no retry after a 4xx)" 1 "$(wc -l <"$W/d.jsonl")"
check_eq "a record that is not an alert is dead-lettered (invalid_alert)" 1 "$(grep -c 'error=invalid_alert' <<<"$d")"
check_eq "metrics: dead letters of small by queue_full = 4" 4 \
    "$(metric "$MP" 'fleetsync_notify_dead_letters_total{destination="small",reason="queue_full"}')"
echo 200 >"$W/c.ctl"
check_eq "the 2 queued within the bound are delivered once small is back" 2 "$(wait_count 2 20 c "$ID-Q")"
check_eq "... the first two, in order" "$ID-Q1:overspeed:1764201601000:raised $ID-Q1:overspeed:1764201602000:raised" \
    "$(keys c "$ID-Q" | awk '!s[$0]++' | tr '\n' ' ' | sed 's/ $//')"

# --- SIGKILL mid-stream ---------------------------------------------------------------------------
# a answers after 20 ms: 1000 alerts over 4 lanes take about 5 s, and the
# kill (after 400) falls in the middle with commits made before it.
echo "200 20" >"$W/a.ctl"
sleep 0.3
for t in 0 1 2 3 4 5 6 7 8 9; do incidents "$ID-K$t" 1 50; done >"$W/p5.txt"
produce <"$W/p5.txt" &
producer=$!
for _ in $(seq 400); do
    [ "$(keys a "$ID-K" | wc -l)" -ge 400 ] && break
    sleep 0.05
done
kill -9 "$notify_pid"; wait "$notify_pid" 2>/dev/null; notify_pid=
wait "$producer"
before=$(count_distinct a "$ID-K")
check "notify was killed mid-stream ($before of 1000 delivered before SIGKILL)" test "$before" -lt 1000 -a "$before" -gt 0
start_notify
got=$(wait_count 1000 90 a "$ID-K")
check_eq "after the restart all 1000 alerts are delivered (nothing lost)" 1000 "$got"
check_eq "they are exactly the produced ones" "$(expected "$W/p5.txt")" "$(keys a "$ID-K" | sort -u)"
dups=$(($(keys a "$ID-K" | wc -l) - got))
check_eq "repeats carry the same idempotency key (distinct bodies = distinct keys)" "$got" \
    "$(jq -r --arg p "$ID-K" 'select(.status == 200 and (.body | contains($p))) | .body' "$W/a.jsonl" | sort -u | wc -l)"
echo "# $dups repeat(s) after the SIGKILL, each with its first delivery's key"
check "the frontier was committed mid-stream: fewer repeats ($dups) than alerts delivered before the kill ($before)" \
    test "$dups" -lt "$before"
check_eq "every signature still verifies" 0 "$(bad_signatures a "$SA")"
check_eq "each truck's first deliveries in order across the crash" "" "$(in_order a "$ID-K")"
lag=
for _ in $(seq 30); do
    lag=$("$FS" status --json --topic-prefix "$P" --group "$G" 2>/dev/null |
        jq -r --arg g "$G" '[.groups[] | select(.group == $g) | .lag] | first // "none"')
    [ "$lag" = 0 ] && break
    sleep 0.5
done
check_eq "fleetsync status shows the group's lag, 0 once all is delivered" 0 "$lag"

# --- SIGTERM -------------------------------------------------------------------------------------------
kill -TERM "$notify_pid"; wait "$notify_pid"; rc=$?; notify_pid=
check_eq "SIGTERM: notify exits 0" 0 "$rc"
check_contains "it says what it did" "stopped:" "$(tail -3 "$W/notify.log")"

# --- a new group at latest, stopped before any alert came -------------------------------------------------
# It commits where it started, so what is produced while it is stopped is
# delivered after the restart, not skipped by "latest".
G2="$G-latest"
lines_before=$(wc -l <"$W/a.jsonl")
start_notify --group "$G2" --start latest
for _ in $(seq 100); do
    [ "$(grep -c 'no committed offset, starting at the latest' "$W/notify.log")" -ge 6 ] && break
    sleep 0.2
done
sleep 2 # a commit
kill -TERM "$notify_pid"; wait "$notify_pid"; rc=$?; notify_pid=
check_eq "a new group at latest stops cleanly" 0 "$rc"
check_eq "it posted none of the topic's old alerts" "$lines_before" "$(wc -l <"$W/a.jsonl")"
incidents "$ID-L1" 1 2 >"$W/p6.txt"
produce <"$W/p6.txt"
start_notify --group "$G2" --start latest
check_eq "the 4 alerts produced while it was stopped are delivered after its restart" 4 "$(wait_count 4 40 a "$ID-L")"
kill -TERM "$notify_pid"; wait "$notify_pid"; notify_pid=

done_testing
