#!/bin/bash
# fleetsync bench detect through the live pipeline (simulator -> Mosquitto ->
# bridge -> Kafka -> fleetsync detect -> truck-alerts) against the real
# services: a scenario with one incident of every rule over 200 trucks and 3
# simulated hours is found with 100 % precision and recall (exit 0, JSON with
# every rule), and the same scenario with a rule switched off in the
# detector's rules file shows recall below 100 % and exit 1: the command can
# fail.  bench detect makes its own topics, group and truck ids and removes
# them; this suite checks that nothing is left.
. "$(dirname "$0")/lib.sh"

D=$(cd "$(dirname "$0")" && pwd)
W=$(mktemp -d /tmp/fleetsync-e2e-benchdetect.XXXXXX)
B=$FLEETSYNC_BROKERS
trap 'rm -rf "$W"' EXIT
SCEN=$D/detect_scenario.jsonl
FENCES=$D/detect_fences.geojson
RULES="stationary_engine_on moving_ignition_off gps_jump fuel_drop geofence_exit overspeed offline"

# --- the command line -----------------------------------------------------
check "--help teaches, with an example" bash -c "'$FS' bench detect --help | grep -q -- '--scenario tests/e2e/detect_scenario.jsonl'"
check "bench --help names the detect benchmark" bash -c "'$FS' bench --help | grep -q detect"
rc=0; out=$("$FS" bench detect 2>&1) || rc=$?
check_eq "no --scenario is a usage error" 2 "$rc"
check_contains "and says so" "--scenario FILE is required" "$out"
rc=0; "$FS" bench detect --scenario "$SCEN" --bogus >/dev/null 2>&1 || rc=$?
check_eq "an unknown option is a usage error" 2 "$rc"
rc=0; out=$("$FS" bench detect --scenario "$SCEN" --trucks 0 2>&1) || rc=$?
check_eq "--trucks 0 is a usage error" 2 "$rc"
check_contains "and says why" "--trucks is" "$out"
rc=0; "$FS" bench detect --scenario "$W/missing.jsonl" >/dev/null 2>&1 || rc=$?
check_eq "an unreadable scenario is a usage error" 2 "$rc"
rc=0; "$FS" bench teleport >/dev/null 2>&1 || rc=$?
check_eq "an unknown benchmark is a usage error" 2 "$rc"

# --- 1. every rule at 100 % ------------------------------------------------
t0=$(date +%s)
rc=0
"$FS" bench detect --scenario "$SCEN" --geofences "$FENCES" --trucks 200 --hours 3 --json \
    >"$W/ok.json" 2>"$W/ok.err" || rc=$?
check_eq "bench detect over 200 trucks, 3 simulated hours exits 0 (in $(( $(date +%s) - t0 )) s)" 0 "$rc"
[ "$rc" = 0 ] || { sed 's/^/# /' "$W/ok.err" | tail -30; sed 's/^/# /' "$W/ok.json"; }
check "its output is one JSON object" jq -e . "$W/ok.json"
check_eq "the JSON has every rule" "$(echo $RULES | tr ' ' '\n' | sort | tr '\n' ' ')" \
    "$(jq -r '.rules | keys[]' "$W/ok.json" 2>/dev/null | sort | tr '\n' ' ')"
for r in $RULES; do
    check_eq "$r: 1 incident, 1 alert, matched, precision and recall 100 %" "1 1 1 1 true true" \
        "$(jq -r --arg r "$r" '.rules[$r] | "\(.incidents) \(.alerts) \(.matched_incidents) \(.matched_alerts) \(.precision == 1) \(.recall == 1)"' "$W/ok.json" 2>/dev/null)"
done
check_eq "pass is true" true "$(jq -r .pass "$W/ok.json" 2>/dev/null)"
# overspeed fires 60 s after the first reading above 100 km/h at the earliest;
# offline's alert starts at the last reading before the gap, so its delay is
# about 10 min minus up to one interval.
check "detection delays are reported for every rule (overspeed >= 60 s, offline >= 9 min)" \
    jq -e '([.rules[].delay_median_ms | numbers] | length) == 7 and .rules.overspeed.delay_median_ms >= 60000
           and .rules.offline.delay_max_ms >= 540000' "$W/ok.json"
check "progress lines went to stderr" grep -q "bench detect: caught up" "$W/ok.err"
prefix=$(sed -n 's/.*topics \(bench-[0-9]*-\)\*.*/\1/p' "$W/ok.err" | head -1)
check "stderr names the private topic prefix" test -n "$prefix"
left=$(kcat -b "$B" -L 2>/dev/null | grep -c "\"${prefix:-none}" || true)
check_eq "its topics are deleted afterwards" 0 "$left"
"$FS" status --json >"$W/status.json" 2>/dev/null
check "status --json lists the stack's groups" jq -e '.groups | type == "array"' "$W/status.json"
check_eq "its consumer group is deleted afterwards" "" \
    "$(jq -r --arg g "bench-detect-${prefix//[!0-9]/}" '.groups[] | select(.group == $g) | .group' "$W/status.json" 2>/dev/null)"

# --- 2. a rule the detector does not run: recall < 100 %, exit 1 -----------
echo '{"overspeed":{"enabled":false}}' >"$W/rules.json"
t0=$(date +%s)
rc=0
"$FS" bench detect --scenario "$SCEN" --geofences "$FENCES" --trucks 200 --hours 3 --rules "$W/rules.json" \
    --quiet-s 5 >"$W/fail.out" 2>"$W/fail.err" || rc=$?
check_eq "with overspeed disabled in the detector bench detect exits 1 (in $(( $(date +%s) - t0 )) s)" 1 "$rc"
[ "$rc" = 1 ] || { sed 's/^/# /' "$W/fail.err" | tail -30; sed 's/^/# /' "$W/fail.out"; }
check_contains "the table shows overspeed at recall 0 %" "0.0 %" "$(grep '^overspeed ' "$W/fail.out")"
check_contains "the other rules still at 100 %" "100.0 %" "$(grep '^gps_jump ' "$W/fail.out")"
check_contains "it says FAIL" "FAIL" "$(cat "$W/fail.out")"
check_contains "and names the missed incident" "missed: " "$(grep overspeed "$W/fail.out")"

done_testing
