#!/bin/bash
# `fleetsync report` against the real PostgreSQL of the test stack: a small
# fixture of raw readings (telemetry) and their hourly rollups
# (telemetry_hourly), written by hand with psql, and every report checked
# against values computed by hand: distance, average speed, trip and stop
# boundaries, each output format, a hostile truck id kept as data, exit codes.
#
# The fixture (the same day as tests/unit/test_trips.c, whose header tells its
# story): trucks drive north along a meridian, so each distance is
# R * dlat with R = 6371.0088 km; a step of 0.009 degrees is L = 1.0007557 km.
#   A  2026-11-01 07:50-09:20, 24 readings: 3 trips (5L, L, 2L), a 0.222 km
#      hop that is too short to be a trip, 4 stops.  Rollups: hour 07 one
#      reading; hour 08 18 readings, 6L + 0.2224 km = 6.226924 km in 660 s
#      moving, 1380 s idle, 1260 s parked, max 72, fuel 1.5 %; hour 09 5
#      readings, 2L = 2.001511 km in 180 s, 420 s idle, max 60, fuel 0.5 %.
#      Day: 8.228436 km in 840 s moving = 35.265 km/h.
#   B  10:00-10:03, 4 readings, 2 x 0.015 degrees = 3.335852 km in 180 s
#      = 66.717 km/h, max 90, fuel 0.5 %.
#   H  a hostile id (quotes, semicolon, comment, comma): 12:00-12:01, L in
#      60 s = 60.045 km/h.
#   N  one rollup row two hours ago (10 km in 600 s), for --since.
# Truck ids start with E2ER<pid>- so the suite sees only its own trucks.  The
# fleet-wide figures are checked in a database of the suite's own (created
# and dropped here), which also shows an empty database answering with empty
# results; everything else runs in the stack's database.
. "$(dirname "$0")/lib.sh"

ID="E2ER$$"
A="$ID-A" B="$ID-B" N="$ID-N"
H="$ID-x'; DROP TABLE telemetry; --\",y"
OWN_DB="e2ereport_$$"
OWN_PG="host=127.0.0.1 port=$TEST_PG_PORT dbname=$OWN_DB user=fleetsync"
# Role fleetsync may not create databases: the superuser services start keeps
# for itself makes the suite's own one, owned by fleetsync.
ADMIN_PG="host=127.0.0.1 port=$TEST_PG_PORT dbname=postgres user=fleetsync_admin passfile=$FLEETSYNC_DATA_DIR/pgpass-admin"
W=$(mktemp -d /tmp/fleetsync-e2e-report.XXXXXX)
cleanup() {
    psql "$FLEETSYNC_PG" -qX -v ON_ERROR_STOP=1 -v p="$ID-%" >/dev/null 2>&1 <<'SQL'
DELETE FROM telemetry_recent WHERE truck_id LIKE :'p';
DELETE FROM telemetry_packed WHERE truck_id LIKE :'p';
DELETE FROM telemetry_hourly WHERE truck_id LIKE :'p';
DELETE FROM alerts WHERE truck_id LIKE :'p';
SQL
    psql "$ADMIN_PG" -qX -c "DROP DATABASE IF EXISTS $OWN_DB" >/dev/null 2>&1
    rm -rf "$W"
}
trap cleanup EXIT

# report ARGS...: runs fleetsync report; stdout in $out, stderr in $W/err, exit code in $rc.
report() { out=$("$FS" report "$@" 2>"$W/err"); rc=$?; }

# The fixture, for psql with variables a, b, h, n (truck ids).
fixture_sql() {
    cat <<'SQL'
SET TimeZone = 'UTC';
-- The day's hour partitions, as history makes them, where no partition
-- covers the hour yet (42P07: made already; 42P17: another covers it).
DO $$
DECLARE h timestamptz;
BEGIN
    FOR h IN SELECT generate_series(timestamptz '2026-11-01 00:00+00', '2026-11-01 23:00+00', '1 hour') LOOP
        BEGIN
            EXECUTE format('CREATE TABLE telemetry_recent_%s PARTITION OF telemetry_recent FOR VALUES FROM (%L) TO (%L)',
                           to_char(h, 'YYYYMMDD_HH24'), h, h + interval '1 hour');
        EXCEPTION WHEN duplicate_table OR invalid_object_definition THEN NULL;
        END;
    END LOOP;
END $$;
INSERT INTO telemetry_recent (truck_id, ts, seq, lat, lon, speed_kmh, heading_deg, ignition, fuel_pct) VALUES
 (:'a', '2026-11-01T07:50:00Z',  0, 48.000, 11.0,  0, NULL, false, 50.00),
 (:'a', '2026-11-01T08:00:00Z',  1, 48.000, 11.0,  0, NULL, true,  50.00),
 (:'a', '2026-11-01T08:01:00Z',  2, 48.009, 11.0, 54, 0,    true,  49.75),
 (:'a', '2026-11-01T08:02:00Z',  3, 48.018, 11.0, 60, 0,    true,  49.50),
 (:'a', '2026-11-01T08:03:00Z',  4, 48.027, 11.0, 60, 0,    true,  49.25),
 (:'a', '2026-11-01T08:04:00Z',  5, 48.027, 11.0,  0, 0,    true,  49.25),
 (:'a', '2026-11-01T08:06:00Z',  6, 48.027, 11.0,  0, 0,    true,  49.25),
 (:'a', '2026-11-01T08:07:00Z',  7, 48.036, 11.0, 60, 0,    true,  49.00),
 (:'a', '2026-11-01T08:08:00Z',  8, 48.045, 11.0, 72, 0,    true,  48.75),
 (:'a', '2026-11-01T08:09:00Z',  9, 48.045, 11.0,  0, 0,    true,  48.75),
 (:'a', '2026-11-01T08:15:00Z', 10, 48.045, 11.0,  0, 0,    true,  48.75),
 (:'a', '2026-11-01T08:20:00Z', 11, 48.045, 11.0,  0, 0,    false, 48.75),
 (:'a', '2026-11-01T08:30:00Z', 12, 48.045, 11.0,  0, 0,    false, 48.75),
 (:'a', '2026-11-01T08:31:00Z', 13, 48.054, 11.0, 60, 0,    true,  48.50),
 (:'a', '2026-11-01T08:32:00Z', 14, 48.054, 11.0,  0, 0,    false, 48.50),
 (:'a', '2026-11-01T08:33:00Z', 15, 48.054, 11.0,  0, 0,    false, 48.50),
 (:'a', '2026-11-01T08:34:00Z', 16, 48.056, 11.0, 30, 0,    true,  48.50),
 (:'a', '2026-11-01T08:35:00Z', 17, 48.056, 11.0,  0, 0,    true,  48.50),
 (:'a', '2026-11-01T08:45:00Z', 18, 48.056, 11.0,  0, 0,    false, 48.50),
 (:'a', '2026-11-01T09:10:00Z', 19, 48.056, 11.0,  0, 0,    false, 48.50),
 (:'a', '2026-11-01T09:11:00Z', 20, 48.065, 11.0, 60, 0,    true,  48.25),
 (:'a', '2026-11-01T09:12:00Z', 21, 48.074, 11.0, 60, 0,    true,  48.00),
 (:'a', '2026-11-01T09:13:00Z', 22, 48.074, 11.0,  0, 0,    true,  48.00),
 (:'a', '2026-11-01T09:20:00Z', 23, 48.074, 11.0,  0, 0,    false, 48.00),
 (:'b', '2026-11-01T10:00:00Z',  0, 50.000, 12.0,  0, NULL, true,  80.00),
 (:'b', '2026-11-01T10:01:00Z',  1, 50.015, 12.0, 90, 0,    true,  79.75),
 (:'b', '2026-11-01T10:02:00Z',  2, 50.030, 12.0, 90, 0,    true,  79.50),
 (:'b', '2026-11-01T10:03:00Z',  3, 50.030, 12.0,  0, 0,    false, 79.50),
 (:'h', '2026-11-01T12:00:00Z',  0, 48.000, 13.0, 60, 0,    true,  NULL),
 (:'h', '2026-11-01T12:01:00Z',  1, 48.009, 13.0, 60, 0,    true,  NULL);
INSERT INTO telemetry_hourly (truck_id, hour, samples, distance_km, moving_s, idle_s, parked_s, max_speed_kmh,
    fuel_used_pct, last_ts, last_seq, last_lat, last_lon, last_speed_kmh, last_ignition, last_fuel_pct) VALUES
 (:'a', '2026-11-01T07:00:00Z',  1, 0,                  0,    0,    0,  0, 0,   '2026-11-01T07:50:00Z',  0, 48.000, 11.0, 0, false, 50.00),
 (:'a', '2026-11-01T08:00:00Z', 18, 6.226924493077844,  660, 1380, 1260, 72, 1.5, '2026-11-01T08:45:00Z', 18, 48.056, 11.0, 0, false, 48.50),
 (:'a', '2026-11-01T09:00:00Z',  5, 2.0015114442035924, 180,  420,    0, 60, 0.5, '2026-11-01T09:20:00Z', 23, 48.074, 11.0, 0, false, 48.00),
 (:'b', '2026-11-01T10:00:00Z',  4, 3.3358524070059867, 180,    0,    0, 90, 0.5, '2026-11-01T10:03:00Z',  3, 50.030, 12.0, 0, false, 79.50),
 (:'h', '2026-11-01T12:00:00Z',  2, 1.0007557221017962,  60,    0,    0, 60, 0,   '2026-11-01T12:01:00Z',  1, 48.009, 13.0, 60, true, NULL),
 (:'n', date_trunc('hour', now()) - interval '2 hours', 10, 10, 600, 0, 0, 80, 0, date_trunc('hour', now()) - interval '1 hour 1 minute', 9, 48.1, 11.1, 60, true, NULL);
INSERT INTO alerts (alert_id, truck_id, rule, started_at, detected_at, ended_at, lat, lon, details) VALUES
 (:'a' || ':overspeed:1793520480000', :'a', 'overspeed', '2026-11-01T08:08:00Z', '2026-11-01T08:09:00Z',
  '2026-11-01T08:10:00Z', 48.045, 11.0, '{"max_kmh": 72}'),
 (:'a' || ':stationary_engine_on:now', :'a', 'stationary_engine_on', now() - interval '1 hour',
  now() - interval '40 minutes', NULL, 48.074, 11.0, '{"minutes": 20}'),
 (:'h' || ':gps_jump:now', :'h', 'gps_jump', now() - interval '2 hours', now() - interval '2 hours',
  now() - interval '110 minutes', 48.0, 13.0, '{"km": 400}');
SQL
}
load_fixture() {   # CONNINFO
    fixture_sql | psql "$1" -qX -v ON_ERROR_STOP=1 -v a="$A" -v b="$B" -v h="$H" -v n="$N" >"$W/psql.out" 2>&1
}

# ---- usage and help -------------------------------------------------------
report --help
check_eq "report --help exits 0" 0 "$rc"
for sub in avg-speed summary trips stops track alerts; do
    check_contains "report --help lists $sub" "  $sub " "$out"
done
check_contains "report --help has examples" "fleetsync report avg-speed --truck TRK-000042 --since 30d" "$out"
for sub in avg-speed summary trips stops track alerts; do
    report "$sub" --help
    check_eq "report $sub --help exits 0 with its usage" "0 usage: fleetsync report $sub" \
        "$rc $(head -1 <<<"$out" | cut -d' ' -f1-4)"
done

usage_case() {   # what expected-stderr args...
    local what=$1 msg=$2; shift 2
    report "$@"
    check_eq "usage error exits 2: $what" 2 "$rc"
    check_contains "usage error says why: $what" "$msg" "$(cat "$W/err")"
}
usage_case "no subcommand" "usage: fleetsync report"
usage_case "unknown subcommand" "'speed' is not a report" speed
usage_case "avg-speed without --truck or --fleet" "needs --truck ID or --fleet" avg-speed
usage_case "avg-speed with both" "needs --truck ID or --fleet" avg-speed --truck "$A" --fleet
usage_case "a duration without a unit" "--since needs a duration" avg-speed --fleet --since 30
usage_case "a time without a zone" "--from needs an ISO 8601 time" summary --from 2026-11-01T08:00:00 --to 2026-11-02
usage_case "--since with --from" "not both" summary --since 7d --from 2026-11-01
usage_case "an empty window" "--from must be before --to" summary --from 2026-11-02 --to 2026-11-01
usage_case "trips without --day" "trips needs --day" trips --truck "$A"
usage_case "a bad day" "--day needs a UTC day" stops --truck "$A" --day 2026-11-31
usage_case "an option of another report" "--fleet is not an option of summary" summary --fleet
usage_case "--json with --csv" "give one of --json, --csv, --format" summary --json --csv
usage_case "gpx outside track" "--format geojson and gpx are for track" trips --truck "$A" --day 2026-11-01 --format gpx
usage_case "track without a window" "track needs a window" track --truck "$A"
usage_case "an unexpected argument" "unexpected argument 'extra'" alerts extra

report avg-speed --fleet --pg "host=127.0.0.1 port=1 dbname=fleetsync user=fleetsync connect_timeout=3"
check_eq "no database: exit 1" 1 "$rc"
check_contains "no database: a clear message" "cannot connect to PostgreSQL (host=127.0.0.1 port=1" "$(cat "$W/err")"

# ---- an empty database ----------------------------------------------------
psql "$ADMIN_PG" -qX -v ON_ERROR_STOP=1 -c "CREATE DATABASE $OWN_DB OWNER fleetsync" >/dev/null
report avg-speed --fleet --since 30d --json --pg "$OWN_PG"
check_eq "empty database: avg-speed exits 0 (schema created)" 0 "$rc"
check_contains "empty database: no distance, no average" '"trucks":0,' "$out"
check_contains "empty database: average is null" '"distance_km":0.000,"moving_s":0,"avg_speed_kmh":null}' "$out"
for sub in summary alerts; do
    report "$sub" --json --pg "$OWN_PG"
    check_eq "empty database: $sub prints []" "0 []" "$rc $out"
done
for sub in trips stops; do
    report "$sub" --truck "$A" --day 2026-11-01 --json --pg "$OWN_PG"
    check_eq "empty database: $sub prints []" "0 []" "$rc $out"
done
report track --truck "$A" --from 2026-11-01 --to 2026-11-02 --pg "$OWN_PG"
check_eq "empty database: track is a feature without geometry" \
    '0 {"type":"Feature","geometry":null,"properties":{"truck_id":"'"$A"'","from":"2026-11-01T00:00:00Z","to":"2026-11-02T00:00:00Z","points":0,"times":[],"speeds_kmh":[]}}' \
    "$rc $out"

# ---- the fleet, in the suite's own database -------------------------------
check "fixture loads into the suite's own database" load_fixture "$OWN_PG"
report avg-speed --fleet --from 2026-11-01T07:00:00Z --to 2026-11-01T11:00:00Z --json --pg "$OWN_PG"
check_eq "fleet average speed 07:00-11:00: A + B = 11.564 km in 1020 s = 40.8 km/h" \
    '{"truck_id":null,"trucks":2,"from":"2026-11-01T07:00:00Z","to":"2026-11-01T11:00:00Z","distance_km":11.564,"moving_s":1020,"avg_speed_kmh":40.8}' \
    "$(sed -n 2p <<<"$out")"
report avg-speed --fleet --from 2026-11-01 --to 2026-11-02 --pg "$OWN_PG"
check_contains "fleet average speed of the day, table: 3 trucks, 12.565 km, 18 min, 41.9 km/h" \
    "(fleet)       3  2026-11-01T00:00:00Z  2026-11-02T00:00:00Z       12.565  18m 00s           41.9" "$out"
report summary --from 2026-11-01 --to 2026-11-02 --csv --pg "$OWN_PG"
check_eq "summary of every truck, by id, as CSV" \
    "truck_id,distance_km,driving_s,idle_s,parked_s,max_speed_kmh,fuel_used_pct,avg_speed_kmh
$A,8.228,840,1800,1260,72.0,2.0,35.3
$B,3.336,180,0,0,90.0,0.5,66.7
\"$ID-x'; DROP TABLE telemetry; --\"\",y\",1.001,60,0,0,60.0,0.0,60.0" "$out"

# ---- one truck, in the stack's database -----------------------------------
report alerts --since 1m --truck "$A"   # creates the schema if this stack has none yet
check_eq "report prepares the stack's database" 0 "$rc"
check "fixture loads into the stack's database" load_fixture "$FLEETSYNC_PG"

report avg-speed --truck "$A" --from 2026-11-01 --to 2026-11-02 --json
check_eq "avg-speed of A: 8.228 km in 840 s = 35.3 km/h (JSON)" \
    "0 [
{\"truck_id\":\"$A\",\"trucks\":1,\"from\":\"2026-11-01T00:00:00Z\",\"to\":\"2026-11-02T00:00:00Z\",\"distance_km\":8.228,\"moving_s\":840,\"avg_speed_kmh\":35.3}
]" "$rc $out"
report avg-speed --truck "$A" --from 2026-11-01T08:30:00+01:00 --to 2026-11-01T09:00:00Z
check_eq "avg-speed table: a window rounds out to whole hours (07:00-09:00)" \
    "$(printf '%-*s' ${#A} truck)  trucks  from                  to                    distance_km   moving  avg_speed_kmh
$A       1  2026-11-01T07:00:00Z  2026-11-01T09:00:00Z        6.227  11m 00s           34.0" "$out"
report avg-speed --truck "$A" --from 2026-11-01 --to 2026-11-02 --csv
check_eq "avg-speed as CSV" "truck_id,trucks,from,to,distance_km,moving_s,avg_speed_kmh
$A,1,2026-11-01T00:00:00Z,2026-11-02T00:00:00Z,8.228,840,35.3" "$out"
report avg-speed --truck "$N" --since 1h --json
check_contains "--since 1h leaves out a rollup two hours old" '"distance_km":0.000,"moving_s":0,"avg_speed_kmh":null' "$out"
report avg-speed --truck "$N" --since 3h --json
check_contains "--since 3h takes it: 10 km in 600 s = 60 km/h" '"distance_km":10.000,"moving_s":600,"avg_speed_kmh":60.0' "$out"

report summary --truck "$A" --from 2026-11-01 --to 2026-11-02 --json
check_eq "summary of A: distance, driving / idle / parked time, max speed, fuel" \
    "{\"truck_id\":\"$A\",\"distance_km\":8.228,\"driving_s\":840,\"idle_s\":1800,\"parked_s\":1260,\"max_speed_kmh\":72.0,\"fuel_used_pct\":2.0,\"avg_speed_kmh\":35.3}" \
    "$(sed -n 2p <<<"$out")"
report summary --truck "$A" --from 2026-11-01 --to 2026-11-02
check_contains "summary table shows durations for people" "8.228  14m 00s  30m 00s  21m 00s" "$out"

report trips --truck "$A" --day 2026-11-01 --json
check_eq "trips of A: 3 trips (red light inside trip 1, the 0.222 km hop dropped)" "0 [
{\"start\":\"2026-11-01T08:00:00Z\",\"end\":\"2026-11-01T08:09:00Z\",\"start_lat\":48.000000,\"start_lon\":11.000000,\"end_lat\":48.045000,\"end_lon\":11.000000,\"distance_km\":5.004,\"duration_s\":540,\"moving_s\":420,\"avg_speed_kmh\":42.9,\"max_speed_kmh\":72.0},
{\"start\":\"2026-11-01T08:30:00Z\",\"end\":\"2026-11-01T08:32:00Z\",\"start_lat\":48.045000,\"start_lon\":11.000000,\"end_lat\":48.054000,\"end_lon\":11.000000,\"distance_km\":1.001,\"duration_s\":120,\"moving_s\":120,\"avg_speed_kmh\":30.0,\"max_speed_kmh\":60.0},
{\"start\":\"2026-11-01T09:10:00Z\",\"end\":\"2026-11-01T09:13:00Z\",\"start_lat\":48.056000,\"start_lon\":11.000000,\"end_lat\":48.074000,\"end_lon\":11.000000,\"distance_km\":2.002,\"duration_s\":180,\"moving_s\":180,\"avg_speed_kmh\":40.0,\"max_speed_kmh\":60.0}
]" "$rc $out"
report stops --truck "$A" --day 2026-11-01 --json
check_eq "stops of A: 4 stops (1 min with the ignition off counts; the hop merges)" "0 [
{\"start\":\"2026-11-01T07:50:00Z\",\"end\":\"2026-11-01T08:00:00Z\",\"duration_s\":600,\"lat\":48.000000,\"lon\":11.000000,\"engine_on_s\":0},
{\"start\":\"2026-11-01T08:09:00Z\",\"end\":\"2026-11-01T08:30:00Z\",\"duration_s\":1260,\"lat\":48.045000,\"lon\":11.000000,\"engine_on_s\":660},
{\"start\":\"2026-11-01T08:32:00Z\",\"end\":\"2026-11-01T09:10:00Z\",\"duration_s\":2280,\"lat\":48.054000,\"lon\":11.000000,\"engine_on_s\":660},
{\"start\":\"2026-11-01T09:13:00Z\",\"end\":\"2026-11-01T09:20:00Z\",\"duration_s\":420,\"lat\":48.074000,\"lon\":11.000000,\"engine_on_s\":420}
]" "$rc $out"
report trips --truck "$A" --day 2026-11-01
check_contains "trips table: heading" "start                 end                   start_lat" "$out"
check_contains "trips table: first trip" "2026-11-01T08:00:00Z  2026-11-01T08:09:00Z  48.000000" "$out"
check_contains "trips table: durations for people" "5.004    9m 00s  7m 00s           42.9           72.0" "$out"
report stops --truck "$A" --day 2026-11-01 --csv
check_eq "stops as CSV: heading + 4 rows" "start,end,duration_s,lat,lon,engine_on_s 5" "$(head -1 <<<"$out") $(wc -l <<<"$out")"
report trips --truck "$A" --day 2026-11-01 --min-stop 2m --json
check_eq "--min-stop 2m: the red light becomes a stop, 4 trips" 4 "$(jq length <<<"$out")"
report trips --truck "$A" --day 2026-11-01 --min-trip-distance 0 --json
check_eq "--min-trip-distance 0 keeps the 0.222 km hop" "0.222" "$(jq -r '.[2].distance_km' <<<"$out")"
report trips --truck "$A" --day 2026-11-02 --json
check_eq "a day without readings has no trips" "0 []" "$rc $out"

report track --truck "$A" --from 2026-11-01T08:00:00Z --to 2026-11-01T08:10:00Z
check_eq "track is GeoJSON: a LineString Feature of 9 points in [from, to)" "Feature LineString 9 9 9" \
    "$(jq -r '"\(.type) \(.geometry.type) \(.geometry.coordinates | length) \(.properties.times | length) \(.properties.points)"' <<<"$out")"
check_eq "GeoJSON positions are [lon, lat], times and speeds per point" \
    '[11,48] [11,48.045] 2026-11-01T08:00:00Z 2026-11-01T08:09:00Z 72' \
    "$(jq -c -j '.geometry.coordinates[0], " ", .geometry.coordinates[8], " ", .properties.times[0], " ", .properties.times[8], " ", .properties.speeds_kmh[7]' <<<"$out")"
report track --truck "$A" --from 2026-11-01T08:00:00Z --to 2026-11-01T08:10:00Z --format gpx
check_eq "track as GPX 1.1: 9 track points" 9 "$(grep -c '<trkpt ' <<<"$out")"
check_contains "GPX point with its time" '<trkpt lat="48.009000" lon="11.000000"><time>2026-11-01T08:01:00Z</time></trkpt>' "$out"
check_contains "GPX root" '<gpx version="1.1" creator="fleetsync" xmlns="http://www.topografix.com/GPX/1/1">' "$out"
if python3 -c 'import xml.dom.minidom' 2>/dev/null; then
    check "GPX is well-formed XML" python3 -c 'import sys, xml.dom.minidom; xml.dom.minidom.parseString(sys.argv[1])' "$out"
fi
report track --truck "$A" --from 2026-11-01T08:00:00Z --to 2026-11-01T08:10:00Z --csv
check_eq "track as CSV: a row per reading" "ts,seq,lat,lon,speed_kmh,heading_deg,ignition,fuel_pct 10" \
    "$(head -1 <<<"$out") $(wc -l <<<"$out")"
check_contains "track CSV row" "2026-11-01T08:08:00Z,8,48.045000,11.000000,72.0,0.0,true,48.75" "$out"

psql "$FLEETSYNC_PG" -qX -v ON_ERROR_STOP=1 -v q="$ID-Q" >/dev/null <<'SQL'
INSERT INTO telemetry_recent (truck_id, ts, seq, lat, lon, speed_kmh, ignition) VALUES
 (:'q', '2026-11-01T06:00:00Z', 0, 48.0,  11.0, 0, false),
 (:'q', '2026-11-01T06:01:00Z', 1, 'NaN', 11.0, 0, false);
SQL
report track --truck "$ID-Q" --from 2026-11-01 --to 2026-11-02
check_eq "track of one valid reading (and one NaN position, skipped) is a Point" \
    '{"type":"Point","coordinates":[11,48]} 1' "$(jq -c -j '.geometry, " ", .properties.points' <<<"$out")"

report alerts --truck "$A" --from 2026-11-01 --to 2026-11-02 --json
check_eq "alerts of A on the fixture day, details as JSON" \
    "{\"started_at\":\"2026-11-01T08:08:00Z\",\"ended_at\":\"2026-11-01T08:10:00Z\",\"truck_id\":\"$A\",\"rule\":\"overspeed\",\"lat\":48.045000,\"lon\":11.000000,\"detected_at\":\"2026-11-01T08:09:00Z\",\"alert_id\":\"$A:overspeed:1793520480000\",\"details\":{\"max_kmh\": 72}}" \
    "$(sed -n 2p <<<"$out")"
report alerts --since 24h --truck "$A" --json
check_eq "alerts --since 24h: the active one, ended_at null" "stationary_engine_on null 1" \
    "$(jq -r '"\(.[0].rule) \(.[0].ended_at) \(length)"' <<<"$out")"
report alerts --since 24h --rule gps_jump --json
check_contains "alerts --rule filters (hostile id as JSON text)" \
    "\"truck_id\":\"$ID-x'; DROP TABLE telemetry; --\\\",y\",\"rule\":\"gps_jump\"" "$out"
report alerts --since 24h --rule overspeed --truck "$A" --json
check_eq "alerts --rule and --truck together" "0 []" "$rc $out"

# ---- hostile truck ids are data -------------------------------------------
report avg-speed --truck "$H" --from 2026-11-01 --to 2026-11-02 --json
check_contains "hostile id: avg-speed finds its rollup (L in 60 s = 60.0 km/h)" \
    '"distance_km":1.001,"moving_s":60,"avg_speed_kmh":60.0}' "$out"
report trips --truck "$H" --day 2026-11-01 --json
check_eq "hostile id: one trip from its readings" "1 1.001" "$(jq -r '"\(length) \(.[0].distance_km)"' <<<"$out")"
report track --truck "$H" --from 2026-11-01 --to 2026-11-02 --format gpx
check_contains "hostile id: escaped in GPX" "<name>$ID-x&apos;; DROP TABLE telemetry; --&quot;,y</name>" "$out"
report summary --truck "$H" --from 2026-11-01 --to 2026-11-02
check_contains "hostile id: shown in the table" "$H" "$out"
report trips --truck "'; SELECT pg_sleep(5); --" --day 2026-11-01 --json
check_eq "an injection attempt is just an unknown truck" "0 []" "$rc $out"
check_eq "the telemetry table is intact" 24 \
    "$(psql "$FLEETSYNC_PG" -qXAt -v a="$A" <<<"SELECT count(*) FROM telemetry WHERE truck_id = :'a'")"

done_testing
