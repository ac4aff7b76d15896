#!/bin/bash
# Every `fleetsync report` gives the same output, byte for byte, as the one
# committed in tests/fixtures/report/golden.txt, which was made by the code
# that stored one row per reading: however history lays the readings out in
# PostgreSQL, reports read the same numbers.
#
# A fixed day of readings (made by awk below, no randomness) goes through
# Kafka and a real `fleetsync history` into a database of the suite's own,
# where history packs the day's closed hours into one row per truck-hour;
# then a second set: repeats of packed readings and late readings into
# packed hours, which history stores and packs again.  The readings: four trucks on 2026-11-01 06:00-09:00, one
# every 20 s, driving and stopping with the engine on and off:
#   G1  6-decimal positions, a reading every 20 s, two at the same ms (seq
#       tells them apart), heading absent every 7th reading, fuel every 11th;
#   G2  its device reboots at 07:30 (seq restarts at 0);
#   G3  7-decimal positions, a 15-minute gap (the rollups ignore it);
#   G4  positions whose digits no decimal scale holds (0.1 + 0.2 style), no
#       odometer, no heading.
# Then every report subcommand over that day, in every format it has.
# GOLDEN_UPDATE=1 rewrites the golden file instead of comparing.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/bridge_lib.sh"

P="e2egold$$-"
G="e2e-golden-$$"
B=$FLEETSYNC_BROKERS
GOLDEN="$(dirname "$0")/../fixtures/report/golden.txt"
OWN_DB="e2egolden_$$"
OWN_PG="host=127.0.0.1 port=$TEST_PG_PORT dbname=$OWN_DB user=fleetsync"
ADMIN_PG="host=127.0.0.1 port=$TEST_PG_PORT dbname=postgres user=fleetsync_admin passfile=$FLEETSYNC_DATA_DIR/pgpass-admin"
W=$(mktemp -d /tmp/fleetsync-e2e-golden.XXXXXX)
hist_pid=
cleanup() {
    [ -n "$hist_pid" ] && kill "$hist_pid" 2>/dev/null && wait "$hist_pid" 2>/dev/null
    psql "$ADMIN_PG" -qX -c "DROP DATABASE IF EXISTS $OWN_DB" >/dev/null 2>&1
    [ "${GOLDEN_KEEP:-0}" = 1 ] || rm -rf "$W"
}
trap cleanup EXIT

q() { psql "$OWN_PG" -Atqc "$1" 2>/dev/null; }
rows() { q "SELECT count(*) FROM telemetry" || echo 0; }

# readings PHASE: the fixed readings as key<TAB>value lines; phase 1 the
# day, phase 2 the repeats and late readings.
readings() {
    awk -v phase="$1" '
    function emit(id, ts, seq, lat, lon, v, ign, hd, fuel, odo,    s) {
        s = sprintf("{\"v\":1,\"truck_id\":\"%s\",\"ts\":%.0f,\"seq\":%d,\"lat\":%s,\"lon\":%s,\"speed_kmh\":%s,\"ignition\":%s",
                    id, ts, seq, lat, lon, v, ign ? "true" : "false")
        if (hd != "") s = s sprintf(",\"heading_deg\":%s", hd)
        if (fuel != "") s = s sprintf(",\"fuel_pct\":%s", fuel)
        if (odo != "") s = s sprintf(",\"odometer_km\":%s", odo)
        printf "%s\t%s}\n", id, s
    }
    function dec(x, d) { return sprintf("%d.%0" d "d", int(x / 10 ^ d), x % 10 ^ d) }
    BEGIN {
        t0 = 1793512800000  # 2026-11-01T06:00:00Z
        for (k = 1; k <= 4; k++) {
            id = "G" k
            lat = 48000000 + 100000 * k; lon = 11000000 + 50000 * k   # micro-degrees
            fuel = 8000 - 300 * k; odo = 1200000 + 1000 * k           # 0.01 %, 0.1 km
            seq = 100 * k
            for (i = 0; i < 540; i++) {
                ts = t0 + 20000 * i
                if (k == 3 && i >= 200 && i < 245) continue           # a 15-minute gap
                phase_of = (i % 37 == 5) ? 2 : 1                      # late: arrives after its hour is stored
                cyc = i % 60
                v = (cyc < 35) ? 40 + (i * 7) % 45 + (i % 3) * 0.5 : 0   # drive 35 readings, then stand
                ign = (cyc < 50)                                      # engine off for the last 10
                if (v > 0) { lat += 2700 + (i * 13) % 400; lon += 1200 + (i * 11) % 300; fuel -= 1 + i % 2; odo += 3 }
                if (i % 97 == 50 && fuel <= 8500) fuel += 1500       # a refuel
                seq++
                if (k == 2 && i == 270) seq = 0                       # reboot
                if (phase_of != phase) continue
                hd = (k == 4 || i % 7 == 3) ? "" : sprintf("%d", (i * 17) % 360)
                f = (i % 11 == 4) ? "" : dec(fuel, 2)
                o = (k == 4) ? "" : dec(odo, 1)
                if (k == 3) { la = dec(lat * 10 + i % 10, 7); lo = dec(lon * 10 + (i * 3) % 10, 7) }
                else if (k == 4) { la = sprintf("%.17g", lat / 1e6 + 0.1 + 0.2); lo = sprintf("%.17g", lon / 1e6 / 3 * 3 + 1e-9 / 3) }
                else { la = dec(lat, 6); lo = dec(lon, 6) }
                emit(id, ts, seq, la, lo, v, ign, hd, f, o)
                if (k == 1 && i % 100 == 10)                          # a second reading in the same ms
                    emit(id, ts, seq + 1000000, la, lo, v, ign, hd, f, o)
            }
        }
        if (phase == 2)                                               # repeats of stored readings
            for (i = 0; i < 30; i++) {
                if ((i * 17) % 37 == 5) continue                      # (only of readings of phase 1)
                ts = t0 + 20000 * (i * 17)
                printf "G1\t{\"v\":1,\"truck_id\":\"G1\",\"ts\":%.0f,\"seq\":%d,\"lat\":0,\"lon\":0,\"speed_kmh\":0,\"ignition\":false}\n", ts, 101 + i * 17
            }
    }'
}

psql "$ADMIN_PG" -qX -c "CREATE DATABASE $OWN_DB OWNER fleetsync" >/dev/null 2>&1
check "the suite's own database is created" q "SELECT 1"
"$FS" services start --topic-prefix "$P" >/dev/null 2>&1
check "topics with the suite's prefix exist" topics_ready

readings 1 >"$W/phase1"
readings 2 >"$W/phase2"
N1=$(wc -l <"$W/phase1")
# The repeats of phase 2 are readings of phase 1 (their seq and ts), stored once.
N2=$(grep -vc '"lat":0,"lon":0' "$W/phase2")
kcat -b "$B" -P -t "${P}truck-telemetry" -K '\t' -l "$W/phase1"
"$FS" history --pg "$OWN_PG" --topic-prefix "$P" --group "$G" --retention 0 --metrics-port -1 \
    >"$W/history.log" 2>&1 &
hist_pid=$!
check_eq "history stores the day's $N1 readings" "$N1" "$(wait_until "$N1" 120 rows)"
# The day's hours are long closed: history packs them (one row per truck-hour).
recent() { echo $(( $(q "SELECT -count(*) FROM telemetry_recent" || echo -1) )); }
check_eq "history packs every closed hour" 0 "$(wait_until 0 120 recent)"
check_eq "into one row per truck-hour (4 trucks, 3 hours)" 12 "$(q "SELECT count(*) FROM telemetry_packed")"
check_eq "the view yields every reading once" "$N1" "$(rows)"
# Then repeats of packed readings and late readings into packed hours.
kcat -b "$B" -P -t "${P}truck-telemetry" -K '\t' -l "$W/phase2"
check_eq "and the $N2 late ones, the repeats once" $((N1 + N2)) "$(wait_until $((N1 + N2)) 120 rows)"
check_eq "the late readings are packed into their hours" 0 "$(wait_until 0 120 recent)"
sleep 1
check_eq "no reading twice" $((N1 + N2)) "$(rows)"
check_eq "none twice by (truck_id, ts, seq) either" $((N1 + N2)) \
    "$(q "SELECT count(DISTINCT (truck_id, ts, seq)) FROM telemetry")"
check_eq "rollups are recomputed for the late readings" 0 \
    "$(wait_until 0 60 bash -c "psql '$OWN_PG' -Atqc 'SELECT -count(*) FROM rollup_dirty'")"

# Every report, every format, over the fixture's day.
run_reports() {
    local day=(--from 2026-11-01 --to 2026-11-02) t f
    for f in table json csv; do
        for t in G1 G2 G3 G4; do
            echo "== avg-speed --truck $t --format $f"
            "$FS" report avg-speed --pg "$OWN_PG" --truck "$t" "${day[@]}" --format "$f" 2>&1
        done
        echo "== avg-speed --fleet --format $f"
        "$FS" report avg-speed --pg "$OWN_PG" --fleet "${day[@]}" --format "$f" 2>&1
        echo "== summary --format $f"
        "$FS" report summary --pg "$OWN_PG" "${day[@]}" --format "$f" 2>&1
        for t in G1 G2 G3 G4; do
            echo "== trips --truck $t --format $f"
            "$FS" report trips --pg "$OWN_PG" --truck "$t" --day 2026-11-01 --format "$f" 2>&1
            echo "== stops --truck $t --format $f"
            "$FS" report stops --pg "$OWN_PG" --truck "$t" --day 2026-11-01 --min-stop 2m --format "$f" 2>&1
        done
    done
    for f in geojson gpx csv table; do
        for t in G1 G2 G3 G4; do
            echo "== track --truck $t --format $f"
            "$FS" report track --pg "$OWN_PG" --truck "$t" --from 2026-11-01T07:10:00Z --to 2026-11-01T07:40:10Z \
                --format "$f" 2>&1
        done
    done
}
run_reports >"$W/out"
check "every report ran" test "$(grep -c "^== " "$W/out")" -eq 58
if [ "${GOLDEN_UPDATE:-0}" = 1 ]; then
    mkdir -p "$(dirname "$GOLDEN")"
    cp "$W/out" "$GOLDEN"
    echo "# wrote $GOLDEN"
fi
if cmp -s "$GOLDEN" "$W/out"; then
    _ok "every report's output equals the golden file"
else
    _not_ok "every report's output equals the golden file"
    diff "$GOLDEN" "$W/out" | head -20 | sed 's/^/# /'
fi
done_testing
