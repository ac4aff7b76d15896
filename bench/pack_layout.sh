#!/bin/bash
# bench/pack_layout.sh - bytes per reading of the two layouts history can
# store readings in, and a check that the packed layout's decoding view
# gives back exactly the stored rows.
#
#   bench/pack_layout.sh [TRUCKS [HOURS [INTERVAL_S]]]     (default 200 168 60)
#
# build/bench/pack_layout (bench/pack_layout.c) writes a synthetic fleet's
# readings as one row per reading and as one packed row per truck-hour
# (src/core/pack.h); both are loaded with COPY into a schema of their own in
# the database of $FLEETSYNC_PG (dropped at the end), vacuumed, and measured
# with pg_total_relation_size (heap, TOAST and indexes).  Then every decoded
# reading is compared, column by column, with its row (the generator's edge
# trucks included: raw floats, -0, seq past int4, record times in years 0001
# and 9999, absent fields).  Prints a small Markdown table; exit status 1 if
# a reading differs.
set -eu
cd "$(dirname "$0")/.."
TRUCKS=${1:-200} HOURS=${2:-168} IV=${3:-60}
: "${FLEETSYNC_PG:?FLEETSYNC_PG: the database to measure in}"
W=$(mktemp -d /tmp/fleetsync-pack-layout.XXXXXX)
S=pack_layout_$$
q() { psql "$FLEETSYNC_PG" -X -q -At -v ON_ERROR_STOP=1 "$@"; }
trap 'q -c "DROP SCHEMA IF EXISTS $S CASCADE" >/dev/null 2>&1; rm -rf "$W"' EXIT
make --no-print-directory -s build/bench/pack_layout
build/bench/pack_layout "$TRUCKS" "$HOURS" "$IV" "$W"
N=$(wc -l <"$W/rows.tsv")
q <<SQL
CREATE SCHEMA $S;
SET search_path = $S;
CREATE TABLE rows (truck_id text NOT NULL, ts timestamptz NOT NULL, seq bigint NOT NULL, lat float8 NOT NULL,
    lon float8 NOT NULL, speed_kmh float8 NOT NULL, heading_deg float8, ignition boolean NOT NULL, fuel_pct float8,
    odometer_km float8, received_at timestamptz, PRIMARY KEY (truck_id, ts, seq));
CREATE TABLE packed (truck_id text NOT NULL, hour timestamptz NOT NULL, n int4 NOT NULL, s int2[] NOT NULL,
    d int4[] NOT NULL, r float8[], b int8[], PRIMARY KEY (truck_id, hour));
ALTER TABLE packed ALTER d SET COMPRESSION lz4, ALTER r SET COMPRESSION lz4, ALTER b SET COMPRESSION lz4;
$(sed -n '/^-- packed-view-begin/,/^-- packed-view-end/p' docs/history.md | sed 's/telemetry_packed/packed/; s/telemetry_unpacked/unpacked/')
\copy rows FROM '$W/rows.tsv'
\copy packed FROM '$W/packed.tsv'
VACUUM ANALYZE rows;
VACUUM ANALYZE packed;
SQL
size() { q -c "SELECT pg_total_relation_size('$S.$1')"; }
rb=$(size rows) pb=$(size packed)
t0=$(date +%s%N)
decoded=$(q -c "SELECT count(*) FROM $S.unpacked")
t1=$(date +%s%N)
# As text: float8's shortest exact form tells -0 from 0, which = does not.
diff=$(q -c "SELECT count(*) FROM $S.rows o FULL JOIN $S.unpacked u USING (truck_id, ts, seq)
             WHERE (o.lat::text, o.lon::text, o.speed_kmh::text, o.heading_deg::text, o.ignition, o.fuel_pct::text,
                    o.odometer_km::text, o.received_at)
                   IS DISTINCT FROM (u.lat::text, u.lon::text, u.speed_kmh::text, u.heading_deg::text, u.ignition,
                                     u.fuel_pct::text, u.odometer_km::text, u.received_at)")
echo "$N readings ($TRUCKS trucks, $HOURS h, one every $IV s), PostgreSQL $(q -c 'SHOW server_version')"
echo
echo "| layout | bytes on disk (with indexes) | bytes per reading |"
echo "|---|---|---|"
echo "| one row per reading, PK (truck_id, ts, seq) | $rb | $(echo "scale=1; $rb / $N" | bc) |"
echo "| one packed row per truck-hour (lz4), PK (truck_id, hour) | $pb | $(echo "scale=1; $pb / $N" | bc) |"
echo
echo "Decoding view: $decoded readings in $(( (t1 - t0) / 1000000 )) ms (count(*)); readings that differ from their row: $diff"
[ "$decoded" = "$N" ] && [ "$diff" = 0 ]
