-- 002_billing.sql - the billing pipeline's tables (docs/design.md, PostgreSQL
-- contract; docs/billing.md).  Written only by `fleetsync billing`, each
-- batch in one transaction with the group's sink_offsets rows.

-- One row per truck and UTC day, kept up to date as data arrives: the
-- contract's table, read by `fleetsync report invoice`.
CREATE TABLE billing_daily (
    truck_id      text             NOT NULL,
    day           date             NOT NULL,
    distance_km   double precision NOT NULL DEFAULT 0,
    engine_hours  double precision NOT NULL DEFAULT 0,
    idle_hours    double precision NOT NULL DEFAULT 0,  -- engine on, not moving
    max_speed_kmh double precision NOT NULL DEFAULT 0,
    updated_at    timestamptz      NOT NULL DEFAULT now(),
    PRIMARY KEY (truck_id, day)
);
CREATE INDEX billing_daily_day ON billing_daily (day);

-- Each truck's fold state after its latest reading (src/billing/fold.h),
-- and the partition its readings come from (a replay of that partition
-- recomputes its trucks).  Times in ms since the epoch.
CREATE TABLE billing_trucks (
    truck_id       text             PRIMARY KEY,
    topic          text             NOT NULL,
    partition      integer          NOT NULL,
    has_last       boolean          NOT NULL,
    last_ts_ms     bigint           NOT NULL,
    last_seq       bigint           NOT NULL,
    last_lat       double precision NOT NULL,
    last_lon       double precision NOT NULL,
    last_speed_kmh double precision NOT NULL,
    last_ignition  boolean          NOT NULL,
    has_good       boolean          NOT NULL,
    good_ts_ms     bigint           NOT NULL,
    good_lat       double precision NOT NULL,
    good_lon       double precision NOT NULL,
    last_good      boolean          NOT NULL,
    floor_ms       bigint           NOT NULL DEFAULT 0,
    updated_at     timestamptz      NOT NULL DEFAULT now()
);
CREATE INDEX billing_trucks_partition ON billing_trucks (topic, partition);

-- The fold state after the last reading of each truck-day: where a replay
-- that recomputes days from D on restarts each truck (its latest day < D).
CREATE TABLE billing_day_end (
    truck_id       text             NOT NULL,
    day            date             NOT NULL,
    last_ts_ms     bigint           NOT NULL,
    last_seq       bigint           NOT NULL,
    last_lat       double precision NOT NULL,
    last_lon       double precision NOT NULL,
    last_speed_kmh double precision NOT NULL,
    last_ignition  boolean          NOT NULL,
    has_good       boolean          NOT NULL,
    good_ts_ms     bigint           NOT NULL,
    good_lat       double precision NOT NULL,
    good_lon       double precision NOT NULL,
    last_good      boolean          NOT NULL,
    PRIMARY KEY (truck_id, day)
);

-- Billing's own copy of its position per partition, moved only by billing
-- (sink_offsets is also moved by `fleetsync replay`): a batch starting below
-- it is a replay.
CREATE TABLE billing_progress (
    topic       text    NOT NULL,
    partition   integer NOT NULL,
    next_offset bigint  NOT NULL,
    PRIMARY KEY (topic, partition)
);

-- The first offset billing read of each UTC day of record timestamps, per
-- partition: tells a rewind to the start of a day from one into its middle.
CREATE TABLE billing_partition_days (
    topic        text    NOT NULL,
    partition    integer NOT NULL,
    day          date    NOT NULL,
    first_offset bigint  NOT NULL,
    PRIMARY KEY (topic, partition, day)
);
