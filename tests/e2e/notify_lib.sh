# tests/e2e/notify_lib.sh - helpers of the suites that run fleetsync notify
# against real webhook receivers (test_notify.sh, tests/chaos/chaos_notify.sh;
# sourced after lib.sh).  They use the caller's variables: W (work dir: NAME.jsonl
# records, NAME.ctl controls), RX (build/tools/webhook_receiver), rx_pids
# (an array the caller's cleanup kills), B (brokers), P (topic prefix), G
# (notify's group), MP (notify's metrics port).

# receiver NAME PORT: starts a receiver recording into $W/NAME.jsonl, told by $W/NAME.ctl.
receiver() {
    : >"$W/$1.jsonl"
    "$RX" "$2" "$W/$1.jsonl" "$W/$1.ctl" 2>>"$W/receivers.log" &
    rx_pids+=($!)
}
# start_notify [ARGS...]: notify with the routes $W/routes.json, from the
# earliest alert of its group's topic, in the background appending to
# $W/notify.log; sets notify_pid.
start_notify() {
    "$FS" notify --routes "$W/routes.json" --topic-prefix "$P" --group "$G" --metrics-port "$MP" --start earliest \
        -X session.timeout.ms=6000 "$@" >>"$W/notify.log" 2>&1 &
    # shellcheck disable=SC2034  # the caller's, for its kills and cleanup
    notify_pid=$!
}
# alert TRUCK K STATE: "TRUCK|json" of incident K of TRUCK (rule overspeed,
# or RULE from the environment), for kcat -K'|'.
alert() {
    local ms=$((1764201600000 + $2 * 1000)) rule=${RULE:-overspeed}
    printf '%s|{"alert_id":"%s:%s:%s","state":"%s","truck_id":"%s","rule":"%s","started_ms":%s,"detected_ms":%s,"lat":48.1,"lon":11.5,"details":{"k":%s}}\n' \
        "$1" "$1" "$rule" "$ms" "$3" "$1" "$rule" "$ms" "$((ms + 60000))" "$2"
}
# incidents TRUCK FROM TO: raised then cleared of each incident K in FROM..TO.
incidents() { for k in $(seq "$2" "$3"); do alert "$1" "$k" raised; alert "$1" "$k" cleared; done; }
produce() { kc -b "$B" -P -t "${P}truck-alerts" -K '|'; }
# keys NAME [PREFIX]: the idempotency keys NAME answered 200 to (for trucks
# starting with PREFIX), one per line, in arrival order.
keys() {
    jq -r --arg p "${2:-}" 'select(.status == 200) | select(.headers["x-fleetsync-idempotency-key"] | startswith($p))
        | .headers["x-fleetsync-idempotency-key"]' "$W/$1.jsonl"
}
count_distinct() { keys "$@" | sort -u | wc -l; }
# wait_count N SECS NAME [PREFIX]: until NAME has N distinct keys (for PREFIX).
wait_count() {
    for _ in $(seq $(($2 * 5))); do
        [ "$(count_distinct "$3" "${4:-}")" -ge "$1" ] && break
        sleep 0.2
    done
    count_distinct "$3" "${4:-}"
}
# expected FILE: the keys alert_id:state of a file of produced "key|json" lines.
expected() { cut -d'|' -f2- "$1" | jq -r '"\(.alert_id):\(.state)"' | sort -u; }
# in_order NAME PREFIX: per truck, the first delivery of each key comes in
# produced order (incident K, raised before cleared); prints the trucks that
# are not, nothing when all are.
in_order() {
    keys "$1" "$2" | awk -F: '!seen[$0]++ {
        t = $1; o = ($3 - 1764201600000) / 1000 * 2 + ($4 == "cleared")
        if (t in last && o <= last[t]) bad[t] = 1
        last[t] = o
    } END { for (t in bad) print t }'
}
# bad_signatures NAME SECRET [TAMPER]: deliveries of NAME whose signature
# openssl does not verify with SECRET (with TAMPER, the body gets a space
# appended first: every one should then fail).
bad_signatures() {
    local t v1 key want body mac n=0 now
    now=$(date +%s%3N)
    while IFS=$'\t' read -r t v1 key want body; do
        [ -n "${3:-}" ] && body="$body "
        mac=$(printf '%s.%s' "$t" "$body" | openssl dgst -sha256 -hmac "$2")
        if [ "${mac##* }" != "$v1" ] || [ $((now - t)) -gt 600000 ] || [ $((t - now)) -gt 60000 ] ||
            [ "$key" != "$want" ]; then
            n=$((n + 1))
        fi
    done < <(jq -r '[(.headers["x-fleetsync-signature"] // "" | capture("^t=(?<t>[0-9]+),v1=(?<v>[0-9a-f]{64})$")?
                         // {t: "0", v: "none"} | .t, .v),
                        .headers["x-fleetsync-idempotency-key"] // "",
                        (.body | fromjson? // {} | "\(.alert_id):\(.state)"), .body] | @tsv' "$W/$1.jsonl")
    echo "$n"
}
dlq() { kc -b "$B" -C -t "${P}truck-alerts-dlq" -o beginning -e -q -f '%h\n' 2>/dev/null; }

# group_lag G: group G's total lag in fleetsync status (topic prefix $P), "none" without it.
group_lag() {
    "$FS" status --json --topic-prefix "$P" --group "$1" 2>/dev/null |
        jq -r --arg g "$1" '[.groups[] | select(.group == $g) | .lag] | first // "none"'
}
# lag_settles G SECS: waits until group G's lag is 0; prints the last lag seen.
lag_settles() {
    local lag=
    for _ in $(seq $(($2 * 2))); do
        lag=$(group_lag "$1")
        [ "$lag" = 0 ] && break
        sleep 0.5
    done
    echo "$lag"
}
# same_key_repeats NAME PREFIX: the distinct bodies NAME answered 200 to for
# trucks starting with PREFIX (equal to count_distinct when every repeat
# carried its first delivery's idempotency key).
same_key_repeats() {
    jq -r --arg p "$2" 'select(.status == 200) | select(.headers["x-fleetsync-idempotency-key"] | startswith($p))
        | "\(.headers["x-fleetsync-idempotency-key"]) \(.body)"' "$W/$1.jsonl" | sort -u | wc -l
}
