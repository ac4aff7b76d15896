#!/bin/bash
# fleetsync detect against the real Kafka: 200 simulated trucks over 3
# simulated hours (readings written into truck-telemetry with kcat, in
# order, from `fleetsync sim --dry-run --print`) with incidents of every rule.
#   A. group $GK reads the topic while it is written, SIGKILLed 4 times and
#      restarted (checkpoints every 300 ms), then restarted on a torn
#      checkpoint file;
#   B. group $GR reads it uninterrupted afterwards (the reference);
#   C. $GR is stopped, rewound with `fleetsync replay --at` and restarted;
#   D. a detector with default settings on topics of its own, fed live
#      readings and a truck's 30-minute backlog.
# Checks: --help/--print-rules/bad --rules; every incident of the truth file
# has its raised alert (the matching rule of detect/match.h), no false alarms, one cleared
# per raised, leaving a fence outside its active window does not alert; the
# killed run's set of (alert_id, state) equals the reference's; the replay
# re-emits the incidents after the rewind point with the same alert_ids; bad
# records are counted by reason, never a crash; with default settings an
# alert is on truck-alerts within seconds of its crossing reading (not after
# a 120 s lateness bound), and a backlog uploaded in order after 30 min
# offline raises what it shows.
. "$(dirname "$0")/lib.sh"

P="e2edet$$-"                 # topic prefix: this suite's own topics
ID="E2ED$$-"                  # truck id prefix
GK="e2e-detect-kill-$$"       # group of the killed run
GR="e2e-detect-ref-$$"        # group of the reference run
B=$FLEETSYNC_BROKERS
W=$(mktemp -d /tmp/fleetsync-e2e-detect.XXXXXX)
MP=$((TEST_METRICS_BASE + 13))
TRUCKS=200 INTERVAL=30 DURATION=10800
det_pid=
cleanup() {
    [ -n "$det_pid" ] && kill -9 "$det_pid" 2>/dev/null
    [ -z "${KEEP_W:-}" ] && rm -rf "$W"
}
trap cleanup EXIT

tid() { printf '%s%06d' "$ID" "$1"; }
# start_det GROUP LOG [args]: the detector in the background ($det_pid).
# The killed group uses static membership (STATIC), so a restarted member
# takes its partitions back at once instead of waiting for the dead one's
# session to time out; the reference group does not, so that a clean stop
# leaves the group empty for `fleetsync replay`.
STATIC=(-X "group.instance.id=$GK" -X session.timeout.ms=6000)
start_det() {
    local g=$1 log=$2; shift 2
    "$FS" detect --topic-prefix "$P" --group "$g" --state-dir "$W/state" --metrics-port "$MP" \
        --geofences "$W/fences.geojson" --start earliest "$@" >>"$log" 2>&1 &
    det_pid=$!
}
# lag GROUP: the group's committed lag on the suite's telemetry topic.
lag() {
    "$FS" status --json --group "$1" --topic-prefix "$P" 2>/dev/null |
        jq -r --arg g "$1" '[.groups[] | select(.group == $g) | .lag] | first // "none"'
}
# wait_caught_up GROUP: until the group committed the end of the topic.
wait_caught_up() {
    for _ in $(seq 90); do
        [ "$(lag "$1")" = 0 ] && return 0
        sleep 0.5
    done
    return 1
}
# stop_det: SIGTERM, then its exit status (called directly, not in a
# subshell: `wait` needs the parent shell).
stop_det() {
    kill -TERM "$det_pid" 2>/dev/null
    local rc=0
    wait "$det_pid" || rc=$?
    det_pid=
    return $rc
}
# alerts_end: "p:end" of every partition of the alerts topic.
alerts_end() {
    local args=()
    for p in 0 1 2 3 4 5; do args+=(-t "${P}truck-alerts:$p:-1"); done
    kcat -b "$B" -Q "${args[@]}" 2>/dev/null | awk '{ gsub(/[][]/, "", $2); printf "%s:%s ", $2, $NF }'
}
# alerts_between FROM TO: alert JSON lines with FROM <= offset < TO per
# partition (FROM/TO as alerts_end prints them; empty FROM = 0).
alerts_between() {
    kcat -b "$B" -C -t "${P}truck-alerts" -o beginning -e -q -f '%p\t%o\t%s\n' 2>/dev/null |
        awk -F'\t' -v from="$1" -v to="$2" '
            BEGIN { n = split(from, a, " "); for (i = 1; i <= n; i++) { split(a[i], kv, ":"); lo[kv[1]] = kv[2] }
                    n = split(to, a, " "); for (i = 1; i <= n; i++) { split(a[i], kv, ":"); hi[kv[1]] = kv[2] } }
            $2 >= (lo[$1] + 0) && $2 < (hi[$1] + 0) { print $3 }'
}
pairs() { jq -r '"\(.alert_id) \(.state)"' | sort -u; }

# --- 1. the command line ----------------------------------------------------
help=$("$FS" detect --help); check_eq "--help exits 0" 0 $?
check_contains "--help explains recovery and replay" "fleetsync replay --group fleetsync-detector" "$help"
check_contains "--help lists --checkpoint-ms" "--checkpoint-ms" "$help"
rules=$("$FS" detect --print-rules); check_eq "--print-rules exits 0" 0 $?
check_eq "--print-rules is JSON naming every rule" \
    "fuel_drop geofence_exit gps_jump moving_ignition_off offline overspeed stationary_engine_on" \
    "$(jq -r '[keys[] | select(. != "lateness_s")] | join(" ")' <<<"$rules")"
printf '%s' "$rules" >"$W/rules.json"
check_eq "--print-rules output is accepted back by --rules" "$rules" "$("$FS" detect --rules "$W/rules.json" --print-rules)"
echo '{"overspeed":{"speed_kmh":250,"min_duration_s":30}}' >"$W/fast.json"
check_eq "--rules changes what --print-rules shows" "250 30" \
    "$("$FS" detect --rules "$W/fast.json" --print-rules | jq -r '"\(.overspeed.speed_kmh) \(.overspeed.min_duration_s)"')"
echo '{"overspeed":{"min_duration_s":-5}}' >"$W/bad.json"
rc=0; out=$("$FS" detect --rules "$W/bad.json" 2>&1) || rc=$?
check_eq "a bad --rules file is a usage error" 2 "$rc"
check_contains "naming file and field" "bad.json: overspeed.min_duration_s" "$out"
echo '{"teleport":{}}' >"$W/bad2.json"
rc=0; out=$("$FS" detect --rules "$W/bad2.json" --print-rules 2>&1) || rc=$?
check_eq "an unknown rule is a usage error" 2 "$rc"
check_contains "naming it" "teleport" "$out"
rc=0; "$FS" detect --start middle >/dev/null 2>&1 || rc=$?
check_eq "--start middle is a usage error" 2 "$rc"
rc=0; "$FS" detect --bogus >/dev/null 2>&1 || rc=$?
check_eq "an unknown option is a usage error" 2 "$rc"

"$FS" services start --topic-prefix "$P" >/dev/null 2>&1
check "topics with the suite's prefix exist" topics_ready

# --- the fleet, its incidents and its readings -------------------------------
START_S=$(($(date +%s) - DURATION - 600))
START=$(date -u -d "@$START_S" +%Y-%m-%dT%H:%M:%SZ)
# A fence whose active window (2 h, 12 h away from the incident) excludes it.
OFF_H=$(( ( $(date -u -d "@$((START_S + 3000))" +%-H) + 12 ) % 24 ))
cat >"$W/fences.geojson" <<EOF
{"type":"FeatureCollection","features":[
 {"type":"Feature","properties":{"id":"depot-corsica","radius_m":800},
  "geometry":{"type":"Point","coordinates":[9.10,42.15]}},
 {"type":"Feature","properties":{"id":"yard-off","active":"$(printf '%02d:00-%02d:00' $OFF_H $(((OFF_H + 2) % 24)))"},
  "geometry":{"type":"Polygon","coordinates":[[[8.98,40.04],[9.01,40.04],[9.01,40.06],[8.98,40.06],[8.98,40.04]]]}}
]}
EOF
{
    n=1; for at in 1200 3000 5400 7800; do
        echo "{\"truck_id\":\"$(tid $n)\",\"rule\":\"stationary_engine_on\",\"at_s\":$at,\"duration_s\":1500}"; n=$((n + 1)); done
    n=11; for at in 1500 3600 6000 8400; do
        echo "{\"truck_id\":\"$(tid $n)\",\"rule\":\"moving_ignition_off\",\"at_s\":$at,\"duration_s\":600,\"speed_kmh\":30}"; n=$((n + 1)); done
    n=21; for at_km in 900:400 2700:50 5000:5 8000:120; do
        echo "{\"truck_id\":\"$(tid $n)\",\"rule\":\"gps_jump\",\"at_s\":${at_km%:*},\"km\":${at_km#*:}}"; n=$((n + 1)); done
    n=31; for at in 1800 4000 6300 8200; do
        echo "{\"truck_id\":\"$(tid $n)\",\"rule\":\"fuel_drop\",\"at_s\":$at,\"pct\":30,\"over_s\":300}"; n=$((n + 1)); done
    n=41; for at in 2000 4500 6600 8600; do
        echo "{\"truck_id\":\"$(tid $n)\",\"rule\":\"geofence_exit\",\"at_s\":$at,\"fence\":\"depot-corsica\",\"duration_s\":900}"; n=$((n + 1)); done
    echo "{\"truck_id\":\"$(tid 45)\",\"rule\":\"geofence_exit\",\"at_s\":3000,\"fence\":\"yard-off\",\"duration_s\":900}"
    n=51; for at in 1000 3300 5700 8800; do
        echo "{\"truck_id\":\"$(tid $n)\",\"rule\":\"overspeed\",\"at_s\":$at,\"duration_s\":180,\"speed_kmh\":125}"; n=$((n + 1)); done
    n=61; for at in 2400 4800 7000 9000; do
        echo "{\"truck_id\":\"$(tid $n)\",\"rule\":\"offline\",\"at_s\":$at,\"duration_s\":1200}"; n=$((n + 1)); done
} >"$W/scenario.jsonl"
"$FS" sim --trucks $TRUCKS --interval $INTERVAL --duration $DURATION --speedup 0 --start "$START" --dry-run --print \
    --id-prefix "$ID" --scenario "$W/scenario.jsonl" --geofences "$W/fences.geojson" --truth "$W/truth.jsonl" \
    --metrics-port -1 --quiet 2>"$W/sim.log" |
    awk '{ split($1, t, "/"); i = index($0, " "); print t[3] "\t" substr($0, i + 1) }' >"$W/readings.tsv"
N=$(wc -l <"$W/readings.tsv")
check_eq "the simulator wrote every reading and 29 incidents" "$((TRUCKS * DURATION / INTERVAL - 4 * 1200 / INTERVAL)) 29" \
    "$N $(wc -l <"$W/truth.jsonl")"
split -n l/12 -d "$W/readings.tsv" "$W/chunk."
# Bad records: invalid JSON, hostile truck ids, and one valid reading in
# another key order (tm_parse fallback: a duplicate of a reading already sent).
{
    printf '%s\t%s\n' "$(tid 1)" '{"v":1,"truck_id":'
    printf '%s\t%s\n' '../../etc/passwd' '{"v":1,"truck_id":"../../etc/passwd","ts":1764201600123,"seq":1,"lat":1,"lon":1,"speed_kmh":1,"ignition":true}'
    printf '%s\t%s\n' 'x' "{\"v\":1,\"truck_id\":\"$(head -c 200 /dev/zero | tr '\0' A)\",\"ts\":1764201600123,\"seq\":1,\"lat\":1,\"lon\":1,\"speed_kmh\":1,\"ignition\":true}"
    printf '%s\t%s\n' 'q' '{"v":1,"truck_id":"a\"b","ts":1764201600123,"seq":1,"lat":1,"lon":1,"speed_kmh":1,"ignition":true}'
    printf '%s\t%s\n' 'z' '{"v":1,"truck_id":"z","ts":1764201600123,"seq":1,"lat":1,"lon":1,"speed_kmh":"fast","ignition":true}'
    tail -1 "$W/chunk.01" | awk -F'\t' '{ print $1 }' | tr -d '\n'; printf '\t'
    tail -1 "$W/chunk.01" | cut -f2 | jq -c 'to_entries | reverse | from_entries'
} >"$W/bad.tsv"
produce() { kcat -b "$B" -P -t "${P}truck-telemetry" -K $'\t' -z lz4 <"$1"; }

# --- A. SIGKILLed while it reads the topic being written ---------------------
start_det "$GK" "$W/kill.log" --checkpoint-ms 300 "${STATIC[@]}"
kills=0
for k in 00 01 02 03 04 05 06 07 08 09 10 11; do
    produce "$W/chunk.$k"
    [ "$k" = 01 ] && produce "$W/bad.tsv"
    case $k in
    02 | 05 | 07 | 09)
        # The first kill waits for a committed checkpoint, so that a restart
        # has one to restore even on a slow machine.
        if [ "$k" = 02 ]; then
            for _ in $(seq 120); do [ "$(metric "$MP" fleetsync_detect_checkpoints_total)" -ge 1 ] 2>/dev/null && break; sleep 0.25; done
        fi
        sleep 0.$((RANDOM % 4 + 1)) # while it reads the chunk or just after
        kill -9 "$det_pid"; wait "$det_pid" 2>/dev/null
        kills=$((kills + 1))
        start_det "$GK" "$W/kill.log" --checkpoint-ms 300 "${STATIC[@]}"
        ;;
    *) sleep 0.4 ;;
    esac
done
check "the killed group catches up with the topic" wait_caught_up "$GK"
check_eq "it was killed 4 times" 4 "$kills"
check "a restart restored partitions from a checkpoint" grep -Eq '[1-6] restored from checkpoint' "$W/kill.log"
stop_det; check_eq "it stops cleanly on SIGTERM (exit 0)" 0 $?
# A torn checkpoint file: the partitions are reset at the committed offsets
# (logged), never loaded, nothing crashes.
ckpt=$(ls "$W/state/$GK"/ckpt-*.bin 2>/dev/null | head -1)
check "one checkpoint file is left after a clean stop" test -n "$ckpt" -a "$(ls "$W/state/$GK" | grep -c '^ckpt-')" = 1
printf 'torn' | dd of="$ckpt" bs=1 seek=40 conv=notrunc 2>/dev/null
start_det "$GK" "$W/torn.log" --checkpoint-ms 300 "${STATIC[@]}"
for _ in $(seq 60); do grep -q 'assigned 6' "$W/torn.log" && break; sleep 0.25; done
check "a torn checkpoint is refused and the partitions reset" \
    grep -q '0 restored from checkpoint, 6 reset at the committed offset' "$W/torn.log"
check "the log says why" grep -q 'torn or foreign file' "$W/torn.log"
stop_det; check_eq "it stops cleanly (exit 0)" 0 $?
END_A=$(alerts_end)

# --- B. the reference: one uninterrupted run ----------------------------------
start_det "$GR" "$W/ref.log" --checkpoint-ms 1000
check "the reference group catches up with the topic" wait_caught_up "$GR"
sleep 1.2 # a metrics refresh
check_eq "every valid reading was fed once" "$((N + 1))" "$(metric "$MP" fleetsync_detect_events_total)"
check_eq "invalid JSON is counted" 1 "$(metric "$MP" 'fleetsync_detect_decode_errors_total{reason="invalid_json"}')"
check_eq "hostile truck ids are counted" 3 "$(metric "$MP" 'fleetsync_detect_decode_errors_total{reason="bad_truck_id"}')"
check_eq "a string speed is counted as the wrong type" 1 "$(metric "$MP" 'fleetsync_detect_decode_errors_total{reason="wrong_type"}')"
check_eq "the reordered repeat is a duplicate" 1 "$(metric "$MP" fleetsync_detect_duplicates_total)"
check_eq "the trucks are in memory" "$TRUCKS" "$(metric "$MP" fleetsync_detect_trucks)"
check "and the detector is still running" kill -0 "$det_pid"
stop_det; check_eq "it stops cleanly on SIGTERM (exit 0)" 0 $?
END_B=$(alerts_end)
alerts_between "$END_A" "$END_B" >"$W/ref.jsonl"
alerts_between "" "$END_A" >"$W/kill.jsonl"

# --- 2. every incident detected, nothing else ---------------------------------
jq -s -c . "$W/truth.jsonl" >"$W/truth.json"
jq -s -c '[.[] | select(.state == "raised")]' "$W/ref.jsonl" >"$W/raised.json" # one array
missed=$(jq -r --slurpfile a "$W/raised.json" '
    select(.fence != "yard-off") | . as $i
    | select([$a[0][] | select(.truck_id == $i.truck_id and .rule == $i.rule
              and .started_ms >= $i.start_ms - 120000 and .started_ms <= $i.end_ms + 1800000)] | length == 0)
    | "\(.truck_id) \(.rule) start_ms=\(.start_ms)"' "$W/truth.jsonl")
check_eq "every incident has a matching raised alert" "" "$missed"
false_alarms=$(jq -r --slurpfile t "$W/truth.json" '
    .[] | . as $a
    | select([$t[0][] | select(.fence != "yard-off" and .truck_id == $a.truck_id and .rule == $a.rule
              and $a.started_ms >= .start_ms - 120000 and $a.started_ms <= .end_ms + 1800000)] | length == 0)
    | .alert_id' "$W/raised.json")
check_eq "every raised alert matches an incident (no false alarms)" "" "$false_alarms"
check_eq "one raised alert per incident" "28" "$(jq -r '.[].alert_id' "$W/raised.json" | sort -u | wc -l)"
per_rule=$(jq -r '.[].rule' "$W/raised.json" | sort | uniq -c | awk '{ printf "%s:%s ", $2, $1 }')
check_eq "4 of each rule" "fuel_drop:4 geofence_exit:4 gps_jump:4 moving_ignition_off:4 offline:4 overspeed:4 stationary_engine_on:4 " "$per_rule"
check_eq "leaving a fence outside its active window does not alert" "" \
    "$(jq -r --arg t "$(tid 45)" 'select(.truck_id == $t) | .alert_id' "$W/ref.jsonl")"
unpaired=$(jq -r '"\(.alert_id) \(.state)"' "$W/ref.jsonl" | sort -u | awk '{ n[$1]++ } END { for (a in n) if (n[a] != 2) print a }')
check_eq "each raised alert has its cleared (all incidents end before the run)" "" "$unpaired"
check_eq "cleared alerts carry ended_ms >= started_ms" "0" \
    "$(jq -s '[.[] | select(.state == "cleared" and ((.ended_ms // -1) < .started_ms))] | length' "$W/ref.jsonl")"

# --- 3. SIGKILL recovery: the same (alert_id, state) set ----------------------
pairs <"$W/ref.jsonl" >"$W/ref.pairs"
pairs <"$W/kill.jsonl" >"$W/kill.pairs"
check_eq "the killed run emitted the reference's 56 (alert_id, state) pairs" 56 "$(wc -l <"$W/ref.pairs")"
check_eq "the killed run's (alert_id, state) set equals the uninterrupted run's" "" \
    "$(diff "$W/ref.pairs" "$W/kill.pairs")"
echo "# killed run: $(wc -l <"$W/kill.jsonl") alert records for $(wc -l <"$W/kill.pairs") distinct pairs (repeats = records read again after a kill)"

# --- 4. replay: rewind the reference group to the middle ----------------------
# Kafka record timestamps are the produce time: rewind to the first record
# of chunk 06 (every reading of chunk 06 on is read again).
first06=$(head -1 "$W/chunk.06" | cut -f2 | jq -r .ts)
ts06=$(kcat -b "$B" -C -t "${P}truck-telemetry" -o beginning -e -q -f '%T %s\n' 2>/dev/null |
    awk -v ts="\"ts\":$first06," 'index($0, ts) { print $1; exit }')
at=$(printf '%s.%03dZ' "$(date -u -d "@$((ts06 / 1000))" +%Y-%m-%dT%H:%M:%S)" $((ts06 % 1000)))
check "replay --at the middle of the run is accepted" "$FS" replay --topic-prefix "$P" --group "$GR" --at "$at"
start_det "$GR" "$W/replay.log" --checkpoint-ms 1000
check "the rewound group catches up" wait_caught_up "$GR"
check "it starts from a reset state at the moved offsets" grep -q '0 restored from checkpoint, 6 reset at the committed offset' "$W/replay.log"
stop_det; check_eq "it stops cleanly (exit 0)" 0 $?
alerts_between "$END_B" "$(alerts_end)" >"$W/replay.jsonl"
# Incidents starting 5 min after the rewind point (warm-up) come out again.
after() { jq -r --argjson t "$((first06 + 300000))" 'select(.started_ms > $t) | "\(.alert_id) \(.state)"' | sort -u; }
want=$(after <"$W/ref.jsonl")
check "the rewind point leaves incidents after it" test "$(wc -l <<<"$want")" -ge 10
check_eq "after replay, incidents after the rewind point come out again with the same alert_ids" \
    "$want" "$(after <"$W/replay.jsonl")"
check_eq "and nothing from before it" "0" \
    "$(jq -s --argjson t "$first06" '[.[] | select(.started_ms < $t - 120000)] | length' "$W/replay.jsonl")"

# --- 5. on arrival: alerts within seconds, a 30-minute backlog in full --------
# The detector's defaults (no --lateness) on topics of their own ($PL): an
# alert reaches truck-alerts within seconds of the reading that crosses its
# threshold being published - the old 120 s lateness bound held that reading
# until its partition's event time had moved 2 min past it, which these
# topics never do.  Then a truck offline for 30 min of its partition's time
# uploads its buffered readings in order: everything they show is raised.
PL="e2edetl$$-"
GL="e2e-detect-live-$$"
"$FS" services start --topic-prefix "$PL" >/dev/null 2>&1
P0=$P P=$PL
check "the on-arrival topics exist" topics_ready
P=$P0
"$FS" detect --topic-prefix "$PL" --group "$GL" --state-dir "$W/state" --metrics-port "$MP" \
    --start earliest --checkpoint-ms 1000 >>"$W/live.log" 2>&1 &
det_pid=$!
for _ in $(seq 120); do grep -q 'assigned 6' "$W/live.log" && break; sleep 0.25; done
check "the detector with default settings owns the partitions" grep -q 'assigned 6' "$W/live.log"
check "and says it has no lateness bound" grep -q 'lateness 0 s' "$W/live.log"
# reading TRUCK TS_MS SEQ LAT LON SPEED IGN: one telemetry v1 record, key TAB value
reading() {
    printf '%s\t{"v":1,"truck_id":"%s","ts":%s,"seq":%s,"lat":%s,"lon":%s,"speed_kmh":%s,"ignition":%s,"fuel_pct":50}\n' \
        "$1" "$1" "$2" "$3" "$4" "$5" "$6" "$7"
}
# live_alerts TRUCK: "rule state started_ms" of the truck's alerts so far
live_alerts() {
    kcat -b "$B" -C -t "${PL}truck-alerts" -o beginning -e -q -f '%s\n' 2>/dev/null |
        jq -r --arg t "$1" 'select(.truck_id == $t) | "\(.rule) \(.state) \(.started_ms)"' | sort -u
}
# has_alert TRUCK RULE STATE: yes when the truck has that alert, else no
has_alert() { live_alerts "$1" | grep -q "^$2 $3 " && echo yes || echo no; }

# Overspeed: 125 km/h (347 m every 10 s eastwards) from t0 on; the reading at
# t0 + 60 s crosses the 60 s threshold.  Partition 1.
OS="${ID}L000001"
now_ms=$(($(date +%s) * 1000))
t0=$((now_ms - 70000))
for k in 0 1 2 3 4 5; do
    reading "$OS" $((t0 + k * 10000)) $k 44.5 "$(awk -v k=$k 'BEGIN { printf "%.6f", 9.0 + k * 0.004375 }')" 125 true
done >"$W/os1.tsv"
reading "$OS" $((t0 + 60000)) 6 44.5 "$(awk 'BEGIN { printf "%.6f", 9.0 + 6 * 0.004375 }')" 125 true >"$W/os2.tsv"
kcat -b "$B" -P -t "${PL}truck-telemetry" -p 1 -K $'\t' <"$W/os1.tsv"
sleep 2
check_eq "50 s over the limit: no alert yet" no "$(has_alert "$OS" overspeed raised)"
tp=$(date +%s%N)
kcat -b "$B" -P -t "${PL}truck-telemetry" -p 1 -K $'\t' <"$W/os2.tsv"
got=$(wait_prints yes 20 has_alert "$OS" overspeed raised)
el=$((($(date +%s%N) - tp) / 1000000))
check_eq "the crossing reading's overspeed alert is on truck-alerts within 20 s, default settings ($el ms)" yes "$got"
check_eq "it started with the first reading over the limit" "overspeed raised $t0" "$(live_alerts "$OS")"

# The backlog: partition 0 holds TRK-LIVE (every 10 s, 3 h ago on) and BK.
# BK drives east at 60 km/h for 10 min, then nothing arrives from it while
# LIVE's readings move the partition 30 min on; then BK's buffered 30 min
# arrive in order: 2 min driving, 25 min stopped with the engine on (720 s to
# 2220 s), driving off, one position 315 km away at 2340 s; then both live.
LV="${ID}L000002" BK="${ID}L000003"
base=$((now_ms - 3 * 3600 * 1000))
bk_lon() { # BK's longitude at second $1 (60 km/h: 0.0002119 degrees of longitude a second at 45 N)
    awk -v s="$1" 'BEGIN { d = 0.0002119; x = s < 720 ? s * d : s < 2220 ? 720 * d : (720 + s - 2220) * d;
                           if (s == 2340) x += 4; printf "%.6f", 10.0 + x }'
}
bk() { local sp=60; [ "$1" -ge 720 ] && [ "$1" -lt 2220 ] && sp=0; reading "$BK" $((base + $1 * 1000)) "$1" 45.0 "$(bk_lon "$1")" $sp true; }
lv() { reading "$LV" $((base + $1 * 1000)) "$1" 45.5 "$(awk -v s="$1" 'BEGIN { printf "%.6f", 10.0 + s * 0.0002543 }')" 72 true; }
{ for s in $(seq 0 10 590); do lv $s; bk $s; done; for s in $(seq 600 10 2390); do lv $s; done; } >"$W/bk1.tsv"
for s in $(seq 600 10 2390); do bk $s; done >"$W/bk2.tsv"
for s in $(seq 2400 10 2700); do lv $s; bk $s; done >"$W/bk3.tsv"
kcat -b "$B" -P -t "${PL}truck-telemetry" -p 0 -K $'\t' <"$W/bk1.tsv"
check_eq "BK silent for 30 min of its partition's time: offline" yes "$(wait_prints yes 20 has_alert "$BK" offline raised)"
check_eq "and nothing else yet" "offline raised $((base + 590000))" "$(live_alerts "$BK")"
tp=$(date +%s%N)
kcat -b "$B" -P -t "${PL}truck-telemetry" -p 0 -K $'\t' <"$W/bk2.tsv"
got=$(wait_prints yes 20 has_alert "$BK" gps_jump cleared)
el=$((($(date +%s%N) - tp) / 1000000))
check_eq "the 30-minute backlog is evaluated as it arrives ($el ms to its last alert)" yes "$got"
kcat -b "$B" -P -t "${PL}truck-telemetry" -p 0 -K $'\t' <"$W/bk3.tsv"
sleep 2
check_eq "the backlog raised the stop with the engine on and the GPS jump it shows, and cleared offline" \
    "gps_jump cleared $((base + 2340000))
gps_jump raised $((base + 2340000))
offline cleared $((base + 590000))
offline raised $((base + 590000))
stationary_engine_on cleared $((base + 720000))
stationary_engine_on raised $((base + 720000))" "$(live_alerts "$BK")"
check_eq "the live truck of that partition raised nothing" "" "$(live_alerts "$LV")"
sleep 1.2 # a metrics refresh
check_eq "no reading was late" 0 "$(metric "$MP" fleetsync_detect_too_late_total)"
check_eq "none is held" 0 "$(metric "$MP" fleetsync_detect_held_readings)"
stop_det; check_eq "it stops cleanly (exit 0)" 0 $?

done_testing
