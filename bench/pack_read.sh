#!/bin/bash
# bench/pack_read.sh - what packing an hour partition costs PostgreSQL, in
# parts: one hour of 20,000 trucks at one reading per 10 s (7,200,000 rows
# in arrival order, as history writes them; about 1.4 GB with the primary
# key) in a table like a partition of telemetry_recent, then
#   - read as packing's 72 truck-range passes do (each: the trucks' rows of
#     the hour through the primary key, sorted; work_mem 64 MB), twice;
#   - read once in (truck_id, ts, seq) order, by a scan and a sort, twice;
#   - read once in that order through the primary key, twice;
#   - deleted by the 72 passes' ranges, against one TRUNCATE.
# Wall times, in seconds, of psql running the statements (the output only
# counted, not sent).  Against the stack of $FLEETSYNC_PG (the test stack:
# `. tests/e2e/stack.sh; stack_start` first); takes about 6 minutes.
# docs/bench/pack.md has a run.
set -u
: "${FLEETSYNC_PG:?run . tests/e2e/stack.sh; stack_start first}"
psql "$FLEETSYNC_PG" -XAtq -c "DROP TABLE IF EXISTS hp_exp_hour" -c "CREATE TABLE hp_exp_hour (
    truck_id text NOT NULL, ts timestamptz NOT NULL, seq bigint NOT NULL, lat float8 NOT NULL, lon float8 NOT NULL,
    speed_kmh float8 NOT NULL, heading_deg float8, ignition boolean NOT NULL, fuel_pct float8, odometer_km float8,
    received_at timestamptz, PRIMARY KEY (truck_id, ts, seq))"
t0=$(date +%s)
psql "$FLEETSYNC_PG" -XAtq -c "INSERT INTO hp_exp_hour SELECT 'P-' || lpad(k::text, 6, '0'),
    '2026-12-07 10:00+00'::timestamptz + i * interval '10 s' + k * interval '0.4 ms', i, 45 + random(), 11 + random(),
    random() * 90, random() * 360, true, random() * 100, 1000 + i * 0.1, now()
    FROM generate_series(0, 359) i, generate_series(1, 20000) k ORDER BY i, k" -c "VACUUM ANALYZE hp_exp_hour"
echo "loaded in $(( $(date +%s) - t0 )) s; size $(psql "$FLEETSYNC_PG" -XAtqc "SELECT pg_size_pretty(pg_total_relation_size('hp_exp_hour'))")"
# bounds: 72 ranges of ~278 trucks
mapfile -t B < <(psql "$FLEETSYNC_PG" -XAtqc "SELECT 'P-' || lpad((k * 278)::text, 6, '0') FROM generate_series(1, 71) k")
B+=("")
W=$(mktemp -d /tmp/fleetsync-pack-read.XXXXXX)
trap 'rm -rf "$W"' EXIT
cols="truck_id, (extract(epoch FROM ts) * 1000)::bigint, seq, lat, lon, speed_kmh, heading_deg, ignition, fuel_pct, odometer_km, (extract(epoch FROM received_at) * 1000)::bigint"
run() { # label sql-file
    local s e
    s=$(date +%s.%N)
    psql "$FLEETSYNC_PG" -XAtq -v ON_ERROR_STOP=1 -f "$2" >/dev/null || echo "failed: $1"
    e=$(date +%s.%N)
    echo "$1: $(echo "$e - $s" | bc) s wall"
}
passes() {
    local prev="" f=$1
    : >"$f"
    echo "SET work_mem = '64MB';" >>"$f"
    for b in "${B[@]}"; do
        echo "SELECT count(*), sum(length(x::text)) FROM (SELECT $cols FROM hp_exp_hour WHERE ts >= '2026-12-07 10:00+00' AND ts < '2026-12-07 11:00+00' AND truck_id > '$prev' AND ('$b' = '' OR truck_id <= '$b') ORDER BY truck_id, ts, seq) x;" >>"$f"
        prev=$b
    done
}
passes $W/passes.sql
echo "SET work_mem = '64MB'; SELECT count(*), sum(length(x::text)) FROM (SELECT $cols FROM hp_exp_hour ORDER BY truck_id, ts, seq) x;" >$W/sort.sql
echo "SET work_mem = '64MB'; SET enable_sort = off; SET enable_bitmapscan = off; SELECT count(*), sum(length(x::text)) FROM (SELECT $cols FROM hp_exp_hour ORDER BY truck_id, ts, seq) x;" >$W/idx.sql
psql "$FLEETSYNC_PG" -XAtq -c "SET work_mem = '64MB'" -c "EXPLAIN SELECT $cols FROM hp_exp_hour WHERE ts >= '2026-12-07 10:00+00' AND ts < '2026-12-07 11:00+00' AND truck_id > '${B[10]}' AND truck_id <= '${B[11]}' ORDER BY truck_id, ts, seq" | head -5
for r in 1 2; do
    run "72 truck-range passes (read $r)" $W/passes.sql
    run "one read, seq scan + sort (read $r)" $W/sort.sql
    run "one read, index order (read $r)" $W/idx.sql
done
# deleting what the passes read vs truncating
: >$W/del.sql; prev=""
for b in "${B[@]}"; do
    echo "DELETE FROM hp_exp_hour WHERE ts >= '2026-12-07 10:00+00' AND ts < '2026-12-07 11:00+00' AND truck_id > '$prev' AND ('$b' = '' OR truck_id <= '$b');" >>$W/del.sql
    prev=$b
done
run "72 range DELETEs" $W/del.sql
echo "TRUNCATE hp_exp_hour;" >$W/trunc.sql
run "TRUNCATE" $W/trunc.sql
psql "$FLEETSYNC_PG" -XAtq -c "DROP TABLE hp_exp_hour"
