/*
 * tmscan.h - a fast reader of the normalized telemetry that truck-telemetry
 * carries (tm_serialize()'s output), for the consumers that read millions of
 * records: no allocation, no JSON tree, one pass.
 *
 * tm_scan() accepts only the normalized shape (docs/design.md "Telemetry
 * v1"): known fields in table order, compact, integers as plain digits,
 * numbers as JSON numbers of at most 32 characters, and the field rules of
 * tm_parse() (ranges, truck_id characters).  Anything else —
 * another producer's key order, unknown fields, escapes — returns 0, and the
 * caller falls back to tm_parse() + tm_serialize(), then scans that.  So for
 * every input, tm_scan() either declines or agrees with tm_parse() (fuzzed by
 * tests/fuzz/fuzz_tmscan.c).
 *
 * The number spans point into the input: they are the exact digits, ready to
 * be copied into a COPY stream without reformatting.
 */
#ifndef FS_TMSCAN_H
#define FS_TMSCAN_H

#include "core/telemetry.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct tm_span {
    const char *p;
    uint16_t n; /* 0 = absent */
};

struct tm_fast {
    struct tm_span truck_id; /* only [A-Za-z0-9._-], 1..64 chars */
    int64_t ts_ms, seq;
    double lat, lon, speed_kmh, heading_deg, fuel_pct, odometer_km; /* NAN when absent */
    bool ignition;
    struct tm_span seq_s, lat_s, lon_s, speed_s, heading_s, fuel_s, odometer_s;
    bool has_extra; /* unknown fields follow the known ones (allowed only when asked) */
};

/* Returns 1 and fills *out when buf[0..len) is a normalized reading with
 * ts in [TM_TS_MIN_MS, now_ms + TM_TS_AHEAD_MS]; 0 otherwise.  allow_extra
 * lets unknown fields follow (they are not checked: pass 1 only for
 * tm_serialize() output). */
int tm_scan(const char *buf, size_t len, int64_t now_ms, int allow_extra, struct tm_fast *out);

/* Reads one truck-telemetry record the way every consumer does: tm_scan()
 * of the record itself; for any other shape, tm_parse() decides, and its
 * reading is written by tm_serialize() into norm (TM_MAX_PAYLOAD + 1 bytes
 * are enough) and scanned there.  Then *normalized is 1 and out's spans
 * point into norm: keep norm while they are used.  Returns TM_OK, or the
 * reason the record is refused with the field at fault in detail (may be
 * NULL).  A NULL buf (a record without a value) is TM_INVALID_JSON. */
enum tm_reason tm_read(const char *buf, size_t len, int64_t now_ms, char *norm, size_t norm_size, int *normalized,
                       struct tm_fast *out, char *detail, size_t detail_size);

#endif
