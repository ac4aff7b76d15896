-- 005_packed_pieces.sql - a truck-hour of very many readings is packed into
-- several rows, its pieces (docs/history.md, "Packed hours"): piece 0 holds
-- the first --pack-piece readings in (ts, seq) order, piece 1 the next, and
-- so on, each a packed row of its own (src/core/pack.h), so that packing
-- holds at most one piece in memory and no row grows without bound.  An hour
-- of fewer readings stays one row, piece 0.  The view telemetry_unpacked
-- decodes every row as before: pieces are rows of the same (truck_id, hour).
ALTER TABLE telemetry_packed ADD COLUMN piece integer NOT NULL DEFAULT 0;
ALTER TABLE telemetry_packed DROP CONSTRAINT telemetry_packed_pkey,
    ADD PRIMARY KEY (truck_id, hour, piece);
