#!/bin/bash
# A Kafka consumer's fatal error ends the pipeline with status 1 instead of
# leaving a process that looks healthy and reads nothing more.  librdkafka
# makes some consumer errors fatal (a static member fenced after a broker of
# a cluster died: docs/chaos.md, "Static members and a dead broker"); the
# suite fabricates one with FLEETSYNC_TEST_CONSUMER_FATAL_MS
# (rd_kafka_test_fatal_error) in history, billing, detect and the dashboard,
# against the real Kafka and PostgreSQL.  The same processes without it keep
# running (the check that could fail the other way), and history still
# stores what it read before the error, exactly once.
. "$(dirname "$0")/lib.sh"

P="e2efatal$$-"
B=$FLEETSYNC_BROKERS
HTTP=$((TEST_HTTP_PORT + 40))
W=$(mktemp -d /tmp/fleetsync-e2e-fatal.XXXXXX)
PIDS=()
cleanup() {
    local p
    for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null; done
    wait 2>/dev/null
    rm -rf "$W"
}
trap cleanup EXIT

"$FS" services start --topic-prefix "$P" >/dev/null 2>&1
check "topics with the suite's prefix exist" topics_ready

# A few readings, so history has something to store before the error.
ID="FTL$$-"
now=$(date +%s%3N)
for i in $(seq 1 20); do
    printf '%s%06d\t{"v":1,"truck_id":"%s%06d","ts":%s,"seq":1,"lat":48.1,"lon":11.5,"speed_kmh":50,"ignition":true}\n' \
        "$ID" "$i" "$ID" "$i" "$((now - i * 1000))"
done | kcat -P -b "$B" -t "${P}truck-telemetry" -K $'\t' 2>/dev/null
check_eq "20 readings produced" 20 "$(kcat -C -b "$B" -t "${P}truck-telemetry" -e -q -f '%o\n' 2>/dev/null | wc -l)"

# run NAME [env...]: starts the pipeline NAME with its own group, logging to W/NAME-TAG.log.
run() {
    local name=$1 tag=$2; shift 2
    local args=(--topic-prefix "$P" --group "e2efatal$$-$name-$tag")
    case "$name" in
    history | billing) args+=(--metrics-port -1 --flush-ms 100) ;;
    detect) args+=(--metrics-port -1 --state-dir "$W/detect-$tag") ;;
    dashboard) args+=(--metrics-port -1 --listen "127.0.0.1:$((HTTP + ${#PIDS[@]}))") ;;
    esac
    env "$@" "$FS" "$name" "${args[@]}" >"$W/$name-$tag.log" 2>&1 &
    PIDS+=($!)
    LAST=$!
}
# wait_exit PID SECONDS: ES = the process's exit status once it ended, or
# "running" (in this shell, not a $(...) subshell: only the parent can wait).
wait_exit() {
    local i
    ES=running
    for i in $(seq $(($2 * 10))); do
        if ! kill -0 "$1" 2>/dev/null; then
            wait "$1"
            ES=$?
            return
        fi
        sleep 0.1
    done
}

declare -A FAT CTL
for name in history billing detect dashboard; do
    run "$name" fatal FLEETSYNC_TEST_CONSUMER_FATAL_MS=4000
    FAT[$name]=$LAST
    run "$name" control
    CTL[$name]=$LAST
done
for name in history billing detect dashboard; do
    wait_exit "${FAT[$name]}" 60
    check_eq "$name: a fatal consumer error exits with status 1" 1 "$ES"
    check_contains "$name: the log says why and what happens next" "Kafka consumer fatal error" \
        "$(cat "$W/$name-fatal.log")"
done
for name in history billing detect dashboard; do
    wait_exit "${CTL[$name]}" 1
    check_eq "$name: without the error it keeps running" running "$ES"
done
stored=$(psql "$FLEETSYNC_PG" -XAtqc "SELECT count(*) FROM telemetry WHERE truck_id LIKE '$ID%'")
check_eq "history stored the 20 readings once (the error stops it; nothing is lost or doubled)" 20 "$stored"
check_contains "history's log: the group in the message" "e2efatal$$-history-fatal" "$(cat "$W/history-fatal.log")"

done_testing
