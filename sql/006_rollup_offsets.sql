-- 006_rollup_offsets.sql - where history's hourly rollups are complete
-- (docs/history.md, "Rollups held in memory").
--
-- Under load history holds the rollup deltas of its batches in memory and
-- adds them to telemetry_hourly once per truck-hour and --rollup-ms, per
-- partition of truck-telemetry, with the offset of the next record whose
-- rollup is not in the table yet, in the same transaction.  After a crash
-- history reads each partition again from here: the records up to
-- sink_offsets are folded again and stored only where missing.  Moved with a
-- check, like sink_offsets: the row must still hold what the writer saw.
CREATE TABLE rollup_offsets (
    group_id    text        NOT NULL,
    topic       text        NOT NULL,
    partition   integer     NOT NULL,
    next_offset bigint      NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (group_id, topic, partition)
);
