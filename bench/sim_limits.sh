#!/bin/bash
# bench/sim_limits.sh - when the simulator's readings arrive, against their
# limits (bench/run runs it and puts its table in docs/bench/sim.md;
# tests/e2e/test_sim.sh checks the same run's readings without timing
# thresholds: their count, their ts spread evenly, none received before its ts).
#
# Needs FLEETSYNC_BIN and FLEETSYNC_MQTT (tests/e2e/stack.sh or the bench's) and
# a running Mosquitto.  `fleetsync sim --trucks 1000 --interval 5 --duration
# 30 --batch-ms 100`, every truck its own connection, while mosquitto_sub
# records the time each reading is received (%U); then:
#   spread    receive time - ts from the earliest to the 99th percentile: the
#             connections coming up plus a batch's wait (--batch-ms) and its
#             delivery: < 2000 ms
#   seconds   the most readings received in one wall-clock second, as a share
#             of all: readings go out when due, spread evenly: <= 25 %
# Prints one markdown table row per figure: | figure | measured | limit | met |.
set -u
FS=${FLEETSYNC_BIN:?source tests/e2e/stack.sh first}
port=${FLEETSYNC_MQTT##*:}
P="SIMLIM$$-"
W=$(mktemp -d /tmp/fleetsync-sim-limits.XXXXXX)
sub= sim=
cleanup() {
    for p in $sim $sub; do kill "$p" 2>/dev/null && wait "$p" 2>/dev/null; done
    rm -rf "$W"
}
trap cleanup EXIT
row() { echo "| $1 | $2 | $3 | $(if [ "$4" = 1 ]; then echo met; else echo "**not met**"; fi) |"; }

mosquitto_sub -p "$port" -t "fleet/trucks/+/telemetry" -q 1 -F '%U %t %p' >"$W/at" 2>"$W/sub.err" &
sub=$!
sleep 1
"$FS" sim --trucks 1000 --interval 5 --duration 30 --batch-ms 100 --id-prefix "$P" --clear-presence \
    --metrics-port -1 --quiet >"$W/sim.out" 2>&1 &
sim=$!
wait "$sim"; rc=$?; sim=
sleep 2
kill "$sub" 2>/dev/null; wait "$sub" 2>/dev/null; sub=
# "received_ms ts" per reading of this run
grep " fleet/trucks/$P" "$W/at" |
    sed 's/^\([0-9]*\)\.\([0-9][0-9][0-9]\)[0-9]* [^ ]* .*"ts":\([0-9]*\),.*/\1\2 \3/' >"$W/late"
n=$(wc -l <"$W/late")
[ "$rc" = 0 ] && [ "$n" = 6000 ] || echo "sim_limits: the run exited $rc with $n of 6000 readings received" >&2
awk '{ print $1 - $2 }' "$W/late" | sort -n >"$W/late.sorted"
spread=-1
[ "$n" -gt 0 ] && spread=$(( $(sed -n "$(( n * 99 / 100 > 0 ? n * 99 / 100 : 1 ))p" "$W/late.sorted") - $(head -1 "$W/late.sorted") ))
row "receive time - ts, earliest to 99th percentile ($n readings, --batch-ms 100)" "$spread ms" "< 2000 ms" \
    "$([ "$n" = 6000 ] && [ "$spread" -ge 0 ] && [ "$spread" -lt 2000 ] && echo 1)"
top=$(awk '{ print int($1 / 1000) }' "$W/late" | sort | uniq -c | sort -rn | awk 'NR == 1 { print $1 }')
row "the most readings received in one wall-clock second" \
    "${top:-0} of $n ($(awk -v t="${top:-0}" -v n="$n" 'BEGIN { printf "%.1f", n ? 100 * t / n : 0 }') %)" "<= 25 %" \
    "$([ "$n" = 6000 ] && [ "${top:-0}" -le $((n / 4)) ] && echo 1)"
