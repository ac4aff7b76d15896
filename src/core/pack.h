/*
 * pack.h - one truck-hour of readings as one packed row: the columns of
 * PostgreSQL arrays that history writes for readings older than the packing
 * period, and the reverse, for repacking an hour that got a late reading.
 *
 * A packed row holds n readings of one truck, all in the UTC hour starting
 * at hour_ms, in strictly increasing (ts, seq) order.  Every value comes back
 * bit for bit, in C (pack_decode) and in SQL (the decoding view of the
 * migration that creates the packed table), so reports read the same numbers
 * from a packed hour as from one row per reading.  The columns, in
 * PACK_COLUMNS order (COPY text, SQL NULL written \N):
 *
 *   n                 int4     the number of readings
 *   ts_d              int4[]   ts: ms after hour_ms for the first, then the
 *                              difference to the previous (>= 0)
 *   seq_d, seq_raw    int4[], int8[]   seq: first value then differences when
 *                              they all fit int4 (seq_raw NULL), else every
 *                              value in seq_raw (seq_d NULL)
 *   ignition          bool[]
 *   recv_d, recv_raw  int4[], int8[]   the Kafka record time minus ts in ms
 *                              when all fit int4, else the record time in ms;
 *                              an element is NULL where there is none
 *   then, for each of lat, lon, speed, heading, fuel, odometer:
 *   <f>_s             int2     decimal scale s in [0, PACK_MAX_SCALE]: the
 *                              value is an integer k over 10^s
 *   <f>_d or <f>_v    int4[]   k: for lat, lon, fuel and odometer ("_d") the
 *                              first then differences to the previous present
 *                              value, for speed and heading ("_v") k itself
 *   <f>_raw           float8[] the values themselves, used (and _s, _d/_v
 *                              NULL) when no scale represents them all
 *                              exactly within int4
 *   An absent value (heading, fuel, odometer) is a NULL element; a field
 *   absent from every reading has all three columns NULL.
 *
 * The value is (double)k / 10^s, which IEEE division rounds the same in C
 * and in PostgreSQL (float8 division of an exact integer by an exact power
 * of ten); a scale is chosen only if that division gives back every value's
 * exact bits (so -0 and digits beyond 10^-9 go raw).  Differences keep equal
 * steps equal, which lz4 TOAST compression turns into a few bytes.
 *
 * Pure functions: no globals, any thread.
 */
#ifndef FS_PACK_H
#define FS_PACK_H

#include "core/buf.h"

#include <stddef.h>
#include <stdint.h>

#define PACK_MAX_SCALE 9
#define PACK_HOUR_MS 3600000LL

/* The packed columns, in the order pack_encode() writes them. */
#define PACK_COLUMNS                                                                                                   \
    "n, ts_d, seq_d, seq_raw, ignition, recv_d, recv_raw, lat_s, lat_d, lat_raw, lon_s, lon_d, lon_raw, speed_s, "     \
    "speed_v, speed_raw, heading_s, heading_v, heading_raw, fuel_s, fuel_d, fuel_raw, odometer_s, odometer_d, "        \
    "odometer_raw"
#define PACK_NCOLS 25

/* One reading.  heading_deg, fuel_pct, odometer_km are NAN when absent;
 * every present number is finite.  recv_ms is the Kafka record time, valid
 * only when has_recv. */
struct pack_reading {
    int64_t ts_ms, seq;
    double lat, lon, speed_kmh, heading_deg, fuel_pct, odometer_km;
    int ignition;
    int has_recv;
    int64_t recv_ms;
};

/* Appends the PACK_NCOLS columns of readings r[0..n) (n >= 1) to out as
 * COPY text: tab-separated, NULL as \N, no line end.  The readings must lie
 * in [hour_ms, hour_ms + PACK_HOUR_MS) in strictly increasing (ts, seq)
 * order with the numbers finite (absent ones NAN).  Returns 0, or -1 with
 * the reason in err and out unchanged.  Memory: check out->oom after. */
int pack_encode(const struct pack_reading *r, size_t n, int64_t hour_ms, struct buf *out, char *err, size_t err_size);

/* Reads a packed row back: cols[i] is column i's text as PostgreSQL writes
 * it (COPY text or a text result), NULL for SQL NULL.  Writes at most max
 * readings into out and their number into *n.  Returns 0, or -1 with the
 * reason in err (malformed text, arrays of the wrong length, values out of
 * the hour or out of order, more than max readings) and *n = 0.  Whatever
 * it accepts, pack_encode() accepts again. */
int pack_decode(const char *const cols[PACK_NCOLS], int64_t hour_ms, struct pack_reading *out, size_t max, size_t *n,
                char *err, size_t err_size);

#endif
