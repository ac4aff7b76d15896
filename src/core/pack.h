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
 *   n   int4      the number of readings
 *   s   int2[6]   the decimal scale of lat, lon, speed_kmh, heading_deg,
 *                 fuel_pct, odometer_km: each value is an integer k over
 *                 10^s, s in [0, PACK_MAX_SCALE]; NULL where the field is
 *                 stored raw in r (or absent from every reading)
 *   d   int4[10n] ten sections of n integers, element i of section j at
 *                 d[j * n + i] (1-based in SQL: d[j * n + i + 1]):
 *                   0 ts: ms after hour_ms for the first reading, then the
 *                     difference to the previous one (>= 0)
 *                   1 seq: the first, then differences (all NULL when they
 *                     do not fit int4: seq is then in b)
 *                   2 ignition: 1 or 0
 *                   3 the Kafka record time minus ts, ms (NULL: none, or in b)
 *                   4-9 lat, lon, speed_kmh, heading_deg, fuel_pct,
 *                     odometer_km as k: lat, lon, fuel, odometer the first
 *                     then differences to the previous present value, speed
 *                     and heading k itself; NULL where absent or raw
 *   r   float8[6n] NULL, or the values of the fields without a scale, in
 *                 sections as d's 4-9 (NULL elements elsewhere)
 *   b   int8[2n]  NULL, or seq (section 0) and the record time in ms
 *                 (section 1) where they did not fit d
 *
 * One array for most of the data matters: PostgreSQL compresses (lz4) a
 * row's values only once the row passes about 2 kB, one value at a time,
 * and stops when the row fits; a single array of 10n int4 crosses that at
 * about 50 readings and compresses as a whole, while ten small arrays
 * would stay uncompressed.
 *
 * A value is (double)k / 10^s, which IEEE division rounds the same in C and
 * in PostgreSQL (float8 division of an exact integer by an exact power of
 * ten); a scale is chosen only if that division gives back every value's
 * exact bits and every k and difference fits int4 (so -0, digits beyond
 * 10^-9 and far jumps go raw).  Differences keep equal steps equal, which
 * compression turns into a few bytes.
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
#define PACK_COLUMNS "n, s, d, r, b"
#define PACK_NCOLS 5

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
