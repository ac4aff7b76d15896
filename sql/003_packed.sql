-- 003_packed.sql - readings older than the packing period as one row per
-- truck and UTC hour (docs/history.md, "Packed hours"; src/core/pack.h).
--
-- The row-per-reading table becomes telemetry_recent (its daily partitions
-- keep their names); history packs closed hours of it into telemetry_packed
-- and deletes what it packed, in one transaction.  The view telemetry yields
-- one row per reading from both, with the columns the table had, so psql,
-- Grafana, reports and the dashboard read readings as rows as before.  Rows
-- already stored stay in telemetry_recent and are packed by history's
-- packing pass, hour by hour, like new ones.  No extension, no superuser.
ALTER TABLE telemetry RENAME TO telemetry_recent;

CREATE TABLE telemetry_packed (
    truck_id text        NOT NULL,
    hour     timestamptz NOT NULL,
    n        integer     NOT NULL,  -- readings in the row
    s        smallint[]  NOT NULL,  -- decimal scales of lat, lon, speed, heading, fuel, odometer
    d        integer[]   NOT NULL,  -- ten sections of n: ts, seq, ignition, record time, the six fields
    r        float8[],              -- values of the fields without a scale
    b        bigint[],              -- seq and record times that do not fit d
    PRIMARY KEY (truck_id, hour)
);
-- lz4 where the server has it (PostgreSQL 14 and newer, built with lz4);
-- pglz otherwise, which compresses the same arrays somewhat less.
DO $$
BEGIN
    EXECUTE 'ALTER TABLE telemetry_packed ALTER d SET COMPRESSION lz4, ALTER r SET COMPRESSION lz4, '
            'ALTER b SET COMPRESSION lz4';
EXCEPTION WHEN others THEN
    NULL;
END
$$;

CREATE VIEW telemetry_unpacked AS
SELECT p.truck_id,
       p.hour + x.t * interval '1 millisecond' AS ts,
       CASE WHEN p.d[p.n + x.i] IS NOT NULL THEN x.sq ELSE p.b[x.i] END AS seq,
       CASE WHEN p.s[1] IS NULL THEN p.r[x.i] ELSE x.lat / c.x10[p.s[1] + 1] END AS lat,
       CASE WHEN p.s[2] IS NULL THEN p.r[p.n + x.i] ELSE x.lon / c.x10[p.s[2] + 1] END AS lon,
       CASE WHEN p.s[3] IS NULL THEN p.r[2 * p.n + x.i] ELSE p.d[6 * p.n + x.i] / c.x10[p.s[3] + 1] END AS speed_kmh,
       CASE WHEN p.s[4] IS NULL THEN p.r[3 * p.n + x.i] ELSE p.d[7 * p.n + x.i] / c.x10[p.s[4] + 1] END AS heading_deg,
       p.d[2 * p.n + x.i] = 1 AS ignition,
       CASE WHEN p.s[5] IS NULL THEN p.r[4 * p.n + x.i]
            WHEN p.d[8 * p.n + x.i] IS NOT NULL THEN x.fuel / c.x10[p.s[5] + 1] END AS fuel_pct,
       CASE WHEN p.s[6] IS NULL THEN p.r[5 * p.n + x.i]
            WHEN p.d[9 * p.n + x.i] IS NOT NULL THEN x.odo / c.x10[p.s[6] + 1] END AS odometer_km,
       CASE WHEN p.d[3 * p.n + x.i] IS NOT NULL THEN p.hour + (x.t + p.d[3 * p.n + x.i]) * interval '1 millisecond'
            ELSE to_timestamp(p.b[p.n + x.i] / 1000) + (p.b[p.n + x.i] % 1000) * interval '1 millisecond'
       END AS received_at,
       p.hour
FROM telemetry_packed p
CROSS JOIN LATERAL (
    SELECT i, sum(p.d[i]) OVER w AS t, sum(p.d[p.n + i]) OVER w AS sq,
           (sum(p.d[4 * p.n + i]) OVER w)::float8 AS lat, (sum(p.d[5 * p.n + i]) OVER w)::float8 AS lon,
           (sum(p.d[8 * p.n + i]) OVER w)::float8 AS fuel, (sum(p.d[9 * p.n + i]) OVER w)::float8 AS odo
    FROM generate_series(1, p.n) AS i WINDOW w AS (ORDER BY i)) x,
    (SELECT '{1,10,100,1000,10000,100000,1000000,10000000,100000000,1000000000}'::float8[] AS x10) c;

-- hour, after the table's columns, is for the planner: a condition on it
-- reaches telemetry_packed's key, while one on ts alone is checked only
-- after decoding every packed hour of the truck.  Within one hour of ts
-- (hour > from - 1 hour AND hour < to holds for every reading of [from, to)).
CREATE VIEW telemetry AS
SELECT truck_id, ts, seq, lat, lon, speed_kmh, heading_deg, ignition, fuel_pct, odometer_km, received_at,
       date_trunc('hour', ts) AS hour
FROM telemetry_recent
UNION ALL
SELECT truck_id, ts, seq, lat, lon, speed_kmh, heading_deg, ignition, fuel_pct, odometer_km, received_at, hour
FROM telemetry_unpacked;
