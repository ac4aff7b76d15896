#!/bin/bash
# fleetsync sim against the shared stack's real Mosquitto: counts, payloads,
# per-truck seq, presence and the last will, scenarios and ground truth.  No
# timing thresholds: how late readings arrive and how they spread over wall
# seconds is measured by bench/sim_limits.sh (make bench).
. "$(dirname "$0")/lib.sh"
port=${FLEETSYNC_MQTT##*:}
tmp=$FLEETSYNC_DATA_DIR/sim-$$
mkdir -p "$tmp"
P="E2ESIM$$-"
cleanup() { kill "${sub:-}" "${sub_at:-}" "${sim:-}" 2>/dev/null; wait 2>/dev/null; }
trap cleanup EXIT

# Retained presence lines "topic status" of the trucks whose ids start with $1.
presence() {
    mosquitto_sub -p "$port" -t 'fleet/trucks/+/status' -v -W 2 2>/dev/null | grep "^fleet/trucks/$1" || true
}

# --- the command line -----------------------------------------------------
check "--help exits 0 and lists every option" bash -c "'$FS' sim --help | grep -q -- '--source-ips'"
rc=0; "$FS" sim --bogus >/dev/null 2>&1 || rc=$?
check_eq "an unknown option is a usage error" 2 "$rc"
rc=0; out=$("$FS" sim --speedup 10 --metrics-port -1 2>&1) || rc=$?
check_eq "--speedup > 1 without --start in the past is a usage error" 2 "$rc"
check_contains "and says why" "never runs ahead of the wall clock" "$out"
rc=0; "$FS" sim --trucks 0 >/dev/null 2>&1 || rc=$?
check_eq "--trucks 0 is a usage error" 2 "$rc"
rc=0; out=$(timeout 20 "$FS" sim --mqtt "mqtts://127.0.0.1:$port" --cafile "$tmp/no-such-ca.crt" --trucks 5 \
    --metrics-port -1 --quiet 2>&1) || rc=$?
check_eq "a CA file that does not exist fails at once (exit 1)" 1 "$rc"
check_contains "and names it" "cannot load CA certificates from $tmp/no-such-ca.crt: No such file or directory" "$out"

# --- a bad scenario fails before anything is sent -------------------------
B="E2ESIMBAD$$-"
printf '%s\n' "{\"truck_id\":\"${B}000001\",\"rule\":\"offline\",\"at_s\":5,\"duration_s\":60}" \
    "{\"truck_id\":\"${B}000002\",\"rule\":\"teleport\",\"at_s\":5}" >"$tmp/bad.jsonl"
rc=0; out=$("$FS" sim --trucks 5 --id-prefix "$B" --scenario "$tmp/bad.jsonl" --metrics-port -1 --quiet 2>&1) || rc=$?
check_eq "a bad scenario line exits 1" 1 "$rc"
check_contains "naming file, line and reason" "$tmp/bad.jsonl:2: unknown rule \"teleport\"" "$out"
check_eq "and nothing was sent (no presence)" 0 "$(presence "$B" | wc -l)"

# --- 1,000 trucks, each with its own connection, 30 s --------------------
mosquitto_sub -p "$port" -t 'fleet/trucks/+/telemetry' -q 1 -v >"$tmp/tele.raw" 2>"$tmp/sub.err" &
sub=$!
# The same readings with the time each was received (seconds.nanoseconds).
mosquitto_sub -p "$port" -t 'fleet/trucks/+/telemetry' -q 1 -F '%U %t %p' >"$tmp/tele.at" 2>>"$tmp/sub.err" &
sub_at=$!
sleep 1
"$FS" sim --trucks 1000 --interval 5 --duration 30 --batch-ms 100 --id-prefix "$P" --metrics-port -1 --quiet \
    >"$tmp/sim.out" 2>"$tmp/sim.err" &
sim=$!
sleep 15
presence "$P" >"$tmp/presence.during"
rc=0; wait "$sim" || rc=$?
sim=
check_eq "the 30 s run exits 0 (everything acknowledged)" 0 "$rc"
sed 's/^/# /' "$tmp/sim.out"
sleep 2
kill "$sub" "$sub_at" 2>/dev/null; wait "$sub" "$sub_at" 2>/dev/null; sub= sub_at=
check_eq "every truck's presence said online during the run" 1000 "$(grep -c ' online$' "$tmp/presence.during")"
grep "^fleet/trucks/$P" "$tmp/tele.raw" >"$tmp/tele"
check_eq "mosquitto_sub receives 1000 trucks x 30 s / 5 s readings" 6000 "$(wc -l <"$tmp/tele")"
cut -d' ' -f2- "$tmp/tele" >"$tmp/payloads"
check_eq "every topic id equals the payload's truck_id" 0 \
    "$(awk '{ split($1, t, "/"); if (index($2, "\"truck_id\":\"" t[3] "\"") == 0) bad++ } END { print bad + 0 }' "$tmp/tele")"
# The telemetry v1 table of docs/design.md, field by field (the validator's rules).
valid='select(.v == 1 and (.truck_id | type) == "string" and (.truck_id | test("^[A-Za-z0-9._-]{1,64}$"))
  and (.ts | type) == "number" and .ts == (.ts | floor) and .ts >= 946684800000 and .ts <= (now * 1000 + 86400000)
  and (.seq | type) == "number" and .seq >= 0 and .seq == (.seq | floor)
  and .lat >= -90 and .lat <= 90 and .lon >= -180 and .lon <= 180
  and .speed_kmh >= 0 and .speed_kmh <= 400 and (.ignition | type) == "boolean"
  and .heading_deg >= 0 and .heading_deg < 360 and .fuel_pct >= 0 and .fuel_pct <= 100 and .odometer_km >= 0)'
check_eq "every payload passes the telemetry v1 rules" 6000 "$(jq -c "$valid" "$tmp/payloads" | wc -l)"
check_eq "normal traffic never exceeds 90 km/h" 0 "$(jq 'select(.speed_kmh > 90)' "$tmp/payloads" | wc -l)"
check_eq "1000 distinct trucks" 1000 "$(jq -r .truck_id "$tmp/payloads" | sort -u | wc -l)"
check_eq "per-truck seq is gap-free from 0" 0 "$(jq -r '[.truck_id, .seq] | @tsv' "$tmp/payloads" | sort -k1,1 -k2,2n |
    awk '{ if ($1 != p) { if ($2 != 0) bad++ } else if ($2 != l + 1) bad++; p = $1; l = $2 } END { print bad + 0 }')"
# Each truck's readings are due at its own phase of the interval (5 ms apart
# here), so every whole second of simulated time holds 1000 / 5 readings.
check_eq "readings are spread evenly (every second but the first and last holds 200 by ts, none more)" 0 \
    "$(jq -r '(.ts / 1000 | floor)' "$tmp/payloads" | sort -n | uniq -c |
        awk '{ c[NR] = $1 } END { for (i = 1; i <= NR; i++) if (c[i] > 200 || (i > 1 && i < NR && c[i] != 200)) bad++; print bad + 0 }')"
# Readings are written in batches of --batch-ms (100 here; a truck with a
# connection of its own sends each when due by default): never early (the
# simulated clock never runs ahead of the wall clock); how late,
# bench/sim_limits.sh.
grep " fleet/trucks/$P" "$tmp/tele.at" | sed 's/^\([0-9]*\)\.\([0-9][0-9][0-9]\)[0-9]* [^ ]* .*"ts":\([0-9]*\),.*/\1\2 \3/' >"$tmp/late"
check_eq "the receive time of every reading was recorded" 6000 "$(grep -c '^[0-9]* [0-9]*$' "$tmp/late")"
check_eq "no reading arrives before its ts" 0 "$(awk '$1 < $2 { bad++ } END { print bad + 0 }' "$tmp/late")"
check_eq "a clean end leaves every truck offline" 1000 "$(presence "$P" | grep -c ' offline$')"

# --- SIGKILL: the broker publishes each truck's retained last will --------
K="E2ESIMKILL$$-"
"$FS" sim --trucks 1000 --interval 5 --id-prefix "$K" --metrics-port $((TEST_METRICS_BASE + 5)) --quiet >"$tmp/kill.out" 2>&1 &
sim=$!
up=0
for _ in $(seq 1 40); do
    up=$(presence "$K" | grep -c ' online$')
    [ "$up" -eq 1000 ] && break
    sleep 0.5
done
check_eq "1000 trucks online before the kill" 1000 "$up"
# The gauges are refreshed once a second: give them that second.
for _ in $(seq 1 10); do
    m=$(curl -s http://127.0.0.1:$((TEST_METRICS_BASE + 5))/metrics)
    case "$m" in *"fleetsync_sim_connections_up 1000"*) break ;; esac
    sleep 0.5
done
check_contains "metrics on --metrics-port show the connections" "fleetsync_sim_connections_up 1000" "$m"
kill -9 "$sim"; wait "$sim" 2>/dev/null; sim=
sleep 2
check_eq "after SIGKILL every truck's retained presence says offline" 1000 "$(presence "$K" | grep -c ' offline$')"

# --- the broker goes away: reconnect with backoff, resend, lose nothing ----
pidf=$FLEETSYNC_DATA_DIR/run/mosquitto.pid
if [ -f "$pidf" ]; then
    R="E2ESIMRECON$$-"
    "$FS" sim --trucks 200 --interval 1 --duration 30 --id-prefix "$R" --metrics-port -1 --quiet \
        >"$tmp/recon.out" 2>&1 &
    sim=$!
    sleep 8
    kill -9 "$(cat "$pidf")"
    sleep 3
    "$FS" services start >"$tmp/restart.out" 2>&1
    rc=0; wait "$sim" || rc=$?
    sim=
    check_eq "a run across a broker restart still delivers everything (exit 0)" 0 "$rc"
    check_contains "after reconnecting every connection" "reconnects 200" "$(cat "$tmp/recon.out")"
    check_contains "with all 6000 readings acknowledged" "acknowledged 6000, failed 0, in flight at the end 0" \
        "$(cat "$tmp/recon.out")"
else
    echo "ok - broker restart # SKIP no embedded mosquitto pid file"
fi

# --- scenario with all seven rules, geofences and ground truth -------------
S="E2ESIMSCN$$-"
sed "s/TRK-/$S/g" tests/fixtures/scenarios/all_rules.jsonl >"$tmp/all.jsonl"
mosquitto_sub -p "$port" -t 'fleet/trucks/+/telemetry' -q 1 -v >"$tmp/scn.raw" 2>/dev/null &
sub=$!
sleep 1
rc=0
"$FS" sim --trucks 20 --interval 60 --start now-3h --speedup 0 --duration 7200 --id-prefix "$S" \
    --scenario "$tmp/all.jsonl" --geofences tests/fixtures/scenarios/fences.geojson --truth "$tmp/truth.jsonl" \
    --metrics-port -1 --quiet >"$tmp/scn.out" 2>&1 || rc=$?
check_eq "a scenario run exits 0" 0 "$rc"
sleep 2
kill "$sub" 2>/dev/null; wait "$sub" 2>/dev/null; sub=
check_eq "the truth file has the seven incidents" 7 "$(wc -l <"$tmp/truth.jsonl")"
check_eq "each with a start_ms and the seven rule names" "7 7" \
    "$(jq -s '[map(select(.start_ms > 0)) | length, (map(.rule) | unique | length)] | join(" ")' -r "$tmp/truth.jsonl")"
grep "^fleet/trucks/$S" "$tmp/scn.raw" | cut -d' ' -f2- >"$tmp/scn"
check_eq "the offline truck sends nothing for 1200 s (120 - 20 readings)" 100 \
    "$(jq -r "select(.truck_id == \"${S}000013\") | .seq" "$tmp/scn" | wc -l)"
check_eq "the overspeed truck drives 125 km/h" 1 \
    "$(jq -r "select(.truck_id == \"${S}000012\" and .speed_kmh == 125) | .truck_id" "$tmp/scn" | sort -u | wc -l)"
check_eq "the towed truck moves with the ignition off" 1 \
    "$(jq -r "select(.truck_id == \"${S}000008\" and .speed_kmh == 30 and .ignition == false) | .truck_id" "$tmp/scn" |
        sort -u | wc -l)"
check_eq "same seed, same readings" "$("$FS" sim --trucks 3 --duration 600 --start 2026-01-01T00:00:00Z --speedup 0 --dry-run --print \
    --seed 9 --metrics-port -1 --quiet 2>/dev/null | md5sum)" "$("$FS" sim --trucks 3 --duration 600 --start 2026-01-01T00:00:00Z \
    --speedup 0 --dry-run --print --seed 9 --metrics-port -1 --quiet 2>/dev/null | md5sum)"
done_testing
