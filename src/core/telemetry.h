/*
 * telemetry.h - Telemetry v1: validation and normalization of truck readings
 * (docs/design.md "Telemetry v1", "MQTT contract").
 *
 * tm_parse() is the one gate a payload passes before it reaches Kafka: it
 * either accepts a reading or names exactly one rejection reason (the DLQ
 * `error` header) and the field at fault (`error_detail`).  tm_serialize()
 * writes the normalized form that truck-telemetry carries.
 *
 * Invariant: for every reading tm_parse() accepts, tm_serialize() needs at
 * most TM_MAX_PAYLOAD + 1 bytes, and tm_parse() accepts that output again
 * (same now_ms) and serializes it to the same bytes.  Consumers can therefore
 * re-validate what they read from Kafka with the same function.
 *
 * All functions are pure (no globals, no I/O) and may be called from any
 * thread.
 */
#ifndef FS_TELEMETRY_H
#define FS_TELEMETRY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/clock.h"

#define TM_MAX_PAYLOAD 4096         /* bytes; larger is too_large, checked before parsing */
#define TM_TRUCK_ID_MAX 64          /* characters of [A-Za-z0-9._-]; also the limit for gateway ids */
#define TM_TS_MIN_MS 946684800000LL /* 2000-01-01T00:00:00Z */
#define TM_TS_AHEAD_MS FS_DAY_MS    /* ts may lie this far past now_ms */

/* Rejection reasons; tm_reason_name() gives the contract's spelling.  When a
 * payload has several faults, the first in this order wins: too_large,
 * invalid_json, duplicate_key, then the fields in the contract's table order
 * (v, truck_id, ts, seq, lat, lon, speed_kmh, ignition, heading_deg,
 * fuel_pct, odometer_km), each field's presence, type and range in turn. */
enum tm_reason {
    TM_OK = 0,
    TM_INVALID_JSON,
    TM_TOO_LARGE,
    TM_DUPLICATE_KEY,
    TM_UNSUPPORTED_VERSION,
    TM_MISSING_FIELD,
    TM_WRONG_TYPE,
    TM_OUT_OF_RANGE,
    TM_BAD_TRUCK_ID,
    TM_TOPIC_MISMATCH,
    TM_TS_IN_FUTURE,
    TM_TS_TOO_OLD,
    TM_REASON_COUNT
};

/* "invalid_json", "too_large", ... exactly as the contract; "ok" for TM_OK and
 * "unknown" for a value outside the enum.  Static strings. */
const char *tm_reason_name(enum tm_reason r);

struct tm_reading {
    char truck_id[TM_TRUCK_ID_MAX + 1];
    int64_t ts_ms;
    int64_t seq;
    double lat, lon, speed_kmh;
    bool ignition;
    bool has_heading;
    double heading_deg;
    bool has_fuel;
    double fuel_pct;
    bool has_odometer;
    double odometer_km;
    /* Unknown fields, already normalized as `"k":v,"k2":v2` (no braces), in
     * their original order.  Owned (malloc), NULL with extra_len 0 if none. */
    char *extra;
    size_t extra_len;
};

/* Parses and validates one payload of len bytes (no NUL terminator needed).
 * now_ms is the wall clock: ts must be >= TM_TS_MIN_MS and
 * <= now_ms + TM_TS_AHEAD_MS.
 *
 * On TM_OK fills *out; the caller owns out->extra and releases it with
 * tm_reading_release().  On any other result *out is zeroed (releasing it is
 * a harmless no-op, not needed) and detail gets the offending field's name
 * (e.g. "lat", "truck_id", the duplicated key), or for invalid_json a short
 * description such as "byte 7: string or '}' expected near end of file", or
 * "normalized" for too_large when the normalized form would exceed
 * TM_MAX_PAYLOAD (only possible when numbers like 1e5 expand).  detail is
 * printable ASCII, truncated to detail_size; detail may be NULL. */
enum tm_reason tm_parse(const char *buf, size_t len, int64_t now_ms, struct tm_reading *out, char *detail,
                        size_t detail_size);

/* tm_parse with jansson reading every payload, without the fast path for
 * flat objects of known fields: the reference the tests compare tm_parse
 * with (same result, same detail, same reading). */
enum tm_reason tm_parse_reference(const char *buf, size_t len, int64_t now_ms, struct tm_reading *out, char *detail,
                                  size_t detail_size);

/* Frees what tm_parse() allocated in *r and empties it; r may be NULL. */
void tm_reading_release(struct tm_reading *r);

/* ---- truck and gateway ids ----------------------------------------------
 * An id (truck_id, a gateway's, an MQTT account) is 1..TM_TRUCK_ID_MAX
 * characters of [A-Za-z0-9._-]: safe as an MQTT topic level, a Kafka key, a
 * file name and in SQL text.  The simulator names truck i (0-based) prefix +
 * at least six digits of i + 1 (TRK-000001) and gateway g prefix + "GW" + at
 * least four digits of g + 1 (TRK-GW0001); `fleetsync trucks` creates the
 * same names.  Pure; any thread. */

/* 1 if c may appear in an id.  Inline: the fast path tests every byte. */
static inline int tm_id_char(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
           c == '-';
}

/* 1 if s[0..n) is a valid id (s need not be NUL-terminated). */
int tm_valid_id(const char *s, size_t n);

/* 1 if every one of s[0..n) is tm_id_char (n may be 0: id prefixes). */
int tm_id_chars(const char *s, size_t n);

/* Writes prefix[0..prefix_len) + the digits of index + 1, zero-padded to
 * six (truck) or after "GW" to four (gateway), NUL-terminated, into buf.
 * Returns the length, or 0 (buf "" if size > 0) when it does not fit. */
size_t tm_format_truck_id(char *buf, size_t size, const char *prefix, size_t prefix_len, uint32_t index);
size_t tm_format_gateway_id(char *buf, size_t size, const char *prefix, size_t prefix_len, uint32_t index);

/* MQTT topics: fleet/trucks/{id}/telemetry, fleet/trucks/{id}/status,
 * fleet/gateways/{id}/status.  Anything else, including wildcards, extra
 * levels and ids that break the truck_id rule, is TM_TOPIC_UNKNOWN. */
enum tm_topic_kind { TM_TOPIC_UNKNOWN = 0, TM_TOPIC_TELEMETRY, TM_TOPIC_TRUCK_STATUS, TM_TOPIC_GATEWAY_STATUS };

/* Classifies a NUL-terminated topic and copies its id into id (id_size
 * should be TM_TRUCK_ID_MAX + 1).  Returns TM_TOPIC_UNKNOWN, with id set to
 * "", when the topic does not match or the id does not fit.  id may be NULL
 * only when id_size is 0. */
enum tm_topic_kind tm_topic_parse(const char *topic, char *id, size_t id_size);

/* tm_parse() for a message received on an MQTT topic.  The topic is judged
 * first: one that is not fleet/trucks/{id}/telemetry gives TM_BAD_TRUCK_ID
 * (unparseable topic) or TM_TOPIC_MISMATCH (another known topic), detail
 * "topic".  Then the payload as tm_parse(), with one more rule checked right
 * after truck_id's own: it must equal the topic's id, else TM_TOPIC_MISMATCH,
 * detail "truck_id".  Ownership as tm_parse(). */
enum tm_reason tm_parse_mqtt(const char *topic, const char *buf, size_t len, int64_t now_ms, struct tm_reading *out,
                             char *detail, size_t detail_size);

/* tm_parse() and tm_serialize() in one pass, for the MQTT edges: the payload
 * judged as tm_parse() does (expect_id, when not NULL, as tm_parse_mqtt()'s
 * topic id: a different truck_id is TM_TOPIC_MISMATCH, detail "truck_id"),
 * and an accepted reading's normalized form written into norm (norm_size
 * bytes, NUL-terminated), *norm_len its length, or -1 when it does not fit
 * (*out is still filled).  The bytes are tm_serialize()'s (fuzzed by
 * tests/fuzz/fuzz_telemetry.c), but a number as plain as a device writes it
 * ("48.137150", "12.0") is copied from the payload with the fraction's
 * trailing zeros dropped, instead of searching its shortest form again.
 * Ownership of *out as tm_parse(). */
enum tm_reason tm_normalize(const char *buf, size_t len, int64_t now_ms, const char *expect_id, struct tm_reading *out,
                            char *norm, size_t norm_size, int *norm_len, char *detail, size_t detail_size);

/* Writes the normalized JSON of *r into buf: known fields in the contract's
 * table order (v, truck_id, ts, seq, lat, lon, speed_kmh, ignition, then
 * heading_deg, fuel_pct, odometer_km when present), then r->extra; compact;
 * numbers in shortest round-trip form (integral values without ".0", -0 as
 * 0).  Returns the length written (buf is NUL-terminated), or -1 if size is
 * too small (buf then holds "" if size > 0).  A reading from tm_parse() always
 * fits in TM_MAX_PAYLOAD + 1 bytes.  A reading filled in by hand is written
 * as valid JSON too (truck_id escaped, NaN and infinities as null), but
 * tm_parse() accepts it only if it obeys the field rules. */
int tm_serialize(const struct tm_reading *r, char *buf, size_t size);

#endif
