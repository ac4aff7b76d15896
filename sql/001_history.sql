-- 001_history.sql - the cold pipeline's tables (docs/design.md, PostgreSQL contract).
--
-- Applied once by `fleetsync history` (and every command that needs the
-- schema) inside a transaction, recorded in fleetsync_schema.  Nothing here
-- needs a superuser: plain tables, declarative partitioning, btree indexes.

-- One row per reading (truck_id, ts, seq), partitioned by UTC day.  Daily
-- partitions telemetry_pYYYYMMDD are created by the sink ahead of time and on
-- demand for backfilled days, and dropped past the retention setting.
CREATE TABLE telemetry (
    truck_id    text             NOT NULL,
    ts          timestamptz      NOT NULL,
    seq         bigint           NOT NULL,
    lat         double precision NOT NULL,
    lon         double precision NOT NULL,
    speed_kmh   double precision NOT NULL,
    heading_deg double precision,
    ignition    boolean          NOT NULL,
    fuel_pct    double precision,
    odometer_km double precision,
    received_at timestamptz,     -- the Kafka record timestamp (bridge receive time)
    PRIMARY KEY (truck_id, ts, seq)
) PARTITION BY RANGE (ts);

-- Hourly per-truck aggregates.  The interval between two consecutive readings
-- of a truck belongs to the hour of the later reading; see src/core/rollup.h
-- for how intervals are classified.  last_* is the latest reading folded in,
-- so new readings extend the row without scanning raw rows.
CREATE TABLE telemetry_hourly (
    truck_id       text             NOT NULL,
    hour           timestamptz      NOT NULL,
    samples        integer          NOT NULL,
    distance_km    double precision NOT NULL,
    moving_s       double precision NOT NULL,
    idle_s         double precision NOT NULL,  -- engine on, not moving
    parked_s       double precision NOT NULL,  -- engine off, not moving
    max_speed_kmh  double precision NOT NULL,
    fuel_used_pct  double precision NOT NULL,  -- sum of fuel level decreases
    last_ts        timestamptz      NOT NULL,
    last_seq       bigint           NOT NULL,
    last_lat       double precision NOT NULL,
    last_lon       double precision NOT NULL,
    last_speed_kmh double precision NOT NULL,
    last_ignition  boolean          NOT NULL,
    last_fuel_pct  double precision,
    PRIMARY KEY (truck_id, hour)
);
CREATE INDEX telemetry_hourly_hour ON telemetry_hourly (hour);

-- Truck-hours whose rollup must be recomputed from raw rows (late data,
-- duplicates, replays).  Written in the batch's transaction, cleared when the
-- recomputed row is stored.
CREATE TABLE rollup_dirty (
    truck_id text        NOT NULL,
    hour     timestamptz NOT NULL,
    PRIMARY KEY (truck_id, hour)
);

-- One row per alert_id (docs/design.md, Alerts).
CREATE TABLE alerts (
    alert_id    text PRIMARY KEY,
    truck_id    text        NOT NULL,
    rule        text        NOT NULL,
    started_at  timestamptz NOT NULL,
    detected_at timestamptz,
    ended_at    timestamptz,
    lat         double precision,
    lon         double precision,
    details     jsonb
);
CREATE INDEX alerts_started_at ON alerts (started_at);
CREATE INDEX alerts_truck ON alerts (truck_id, started_at);

-- Kafka positions of every PostgreSQL sink (history, billing): the offset of
-- the next record to read, stored in the same transaction as the rows it
-- covers.  `fleetsync replay` moves these for a stopped group.
CREATE TABLE sink_offsets (
    group_id    text        NOT NULL,
    topic       text        NOT NULL,
    partition   integer     NOT NULL,
    next_offset bigint      NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (group_id, topic, partition)
);
