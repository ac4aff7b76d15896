/* Telemetry v1 (docs/design.md): what tm_parse accepts, what it refuses with
 * which reason and detail, the normalized form, and the MQTT topic rules.
 * Malformed payloads live as files in tests/fixtures/telemetry/ with their
 * verdicts in cases.tsv; the tests below cover each rule at its bounds. */
#include "core/telemetry.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

/* 2025-11-28T00:00:00Z: fixed, so ts bounds are exact. */
#define NOW_MS 1764288000000LL

/* ---- helpers ----------------------------------------------------------- */

/* The docs/design.md example, field by field in table order; payload_with()
 * replaces one field's value (NULL: leaves it out). */
struct kv {
    const char *key, *value;
};
static const struct kv example[] = {
    {"v", "1"},
    {"truck_id", "\"TRK-000042\""},
    {"ts", "1764201600123"},
    {"seq", "1234"},
    {"lat", "48.137154"},
    {"lon", "11.576124"},
    {"speed_kmh", "72.5"},
    {"ignition", "true"},
    {"heading_deg", "184"},
    {"fuel_pct", "63.2"},
    {"odometer_km", "123456.7"},
};
#define EXAMPLE_NORMALIZED                                                                                             \
    "{\"v\":1,\"truck_id\":\"TRK-000042\",\"ts\":1764201600123,\"seq\":1234,\"lat\":48.137154,\"lon\":11.576124,"      \
    "\"speed_kmh\":72.5,\"ignition\":true,\"heading_deg\":184,\"fuel_pct\":63.2,\"odometer_km\":123456.7}"

static char payload[8192];
static char detail[128];

static const char *payload_with(const char *key, const char *value)
{
    size_t n = 0;
    payload[n++] = '{';
    for (size_t i = 0; i < sizeof(example) / sizeof(example[0]); i++) {
        const char *v = strcmp(example[i].key, key) == 0 ? value : example[i].value;
        if (!v)
            continue;
        n += (size_t)snprintf(payload + n, sizeof(payload) - n, "%s\"%s\":%s", n > 1 ? "," : "", example[i].key, v);
    }
    snprintf(payload + n, sizeof(payload) - n, "}");
    return payload;
}

/* Parses s, releases the reading, returns the reason name; detail is kept. */
static const char *verdict(const char *s)
{
    struct tm_reading r;
    enum tm_reason why = tm_parse(s, strlen(s), NOW_MS, &r, detail, sizeof(detail));
    tm_reading_release(&r);
    return tm_reason_name(why);
}

static const char *verdict_with(const char *key, const char *value)
{
    return verdict(payload_with(key, value));
}

static void assert_verdict(const char *key, const char *value, const char *reason, const char *want_detail)
{
    const char *got = verdict_with(key, value);
    if (strcmp(got, reason) != 0 || strcmp(detail, want_detail) != 0)
        fail_msg("%s=%s: got %s/%s, want %s/%s", key, value ? value : "(absent)", got, detail, reason, want_detail);
}

static void assert_accepted(const char *key, const char *value)
{
    assert_verdict(key, value, "ok", "");
}

/* The normalized form of s, into out; fails the test if s is refused, or if
 * tm_normalize() (the MQTT edges' one pass) writes other bytes than
 * tm_parse() + tm_serialize(). */
static void normalize(const char *s, char *out, size_t size)
{
    struct tm_reading r;
    enum tm_reason why = tm_parse(s, strlen(s), NOW_MS, &r, detail, sizeof(detail));
    if (why != TM_OK)
        fail_msg("refused %s (%s) for: %s", tm_reason_name(why), detail, s);
    int n = tm_serialize(&r, out, size);
    tm_reading_release(&r);
    assert_true(n >= 0);
    assert_int_equal((size_t)n, strlen(out));

    static char one_pass[TM_MAX_PAYLOAD + 1];
    int m;
    why = tm_normalize(s, strlen(s), NOW_MS, NULL, &r, one_pass, sizeof(one_pass), &m, detail, sizeof(detail));
    tm_reading_release(&r);
    assert_int_equal(why, TM_OK);
    if (m != n || memcmp(one_pass, out, (size_t)n) != 0)
        fail_msg("tm_normalize wrote %s, tm_serialize %s, for: %s", one_pass, out, s);
}

/* The normalized value of one field in the example. */
static const char *normalized_field(const char *key, const char *value)
{
    static char out[TM_MAX_PAYLOAD + 1];
    normalize(payload_with(key, value), out, sizeof(out));
    char needle[64];
    snprintf(needle, sizeof(needle), "\"%s\":", key);
    char *p = strstr(out, needle);
    assert_non_null(p);
    p += strlen(needle);
    p[strcspn(p, ",}")] = '\0';
    return p;
}

/* ---- reason names ------------------------------------------------------ */

static void reason_names_are_designs_strings(void **state)
{
    (void)state;
    static const char *const want[TM_REASON_COUNT] = {
        "ok",         "invalid_json", "too_large",    "duplicate_key",  "unsupported_version", "missing_field",
        "wrong_type", "out_of_range", "bad_truck_id", "topic_mismatch", "ts_in_future",        "ts_too_old",
    };
    for (int i = 0; i < TM_REASON_COUNT; i++)
        assert_string_equal(tm_reason_name((enum tm_reason)i), want[i]);
    assert_string_equal(tm_reason_name(TM_REASON_COUNT), "unknown");
    assert_string_equal(tm_reason_name((enum tm_reason) - 1), "unknown");
}

/* ---- a valid reading --------------------------------------------------- */

static void valid_reading_parses_with_every_field(void **state)
{
    (void)state;
    const char *s = payload_with("", NULL);
    struct tm_reading r;
    assert_int_equal(tm_parse(s, strlen(s), NOW_MS, &r, detail, sizeof(detail)), TM_OK);
    assert_string_equal(detail, "");
    assert_string_equal(r.truck_id, "TRK-000042");
    assert_int_equal(r.ts_ms, 1764201600123LL);
    assert_int_equal(r.seq, 1234);
    assert_true(r.lat == 48.137154);
    assert_true(r.lon == 11.576124);
    assert_true(r.speed_kmh == 72.5);
    assert_true(r.ignition);
    assert_true(r.has_heading && r.heading_deg == 184);
    assert_true(r.has_fuel && r.fuel_pct == 63.2);
    assert_true(r.has_odometer && r.odometer_km == 123456.7);
    assert_null(r.extra);
    assert_int_equal(r.extra_len, 0);
    tm_reading_release(&r);
}

static void optional_fields_may_be_absent(void **state)
{
    (void)state;
    char s[512];
    snprintf(s, sizeof(s),
             "{\"v\":1,\"truck_id\":\"T\",\"ts\":1764201600123,\"seq\":0,\"lat\":0,\"lon\":0,"
             "\"speed_kmh\":0,\"ignition\":false}");
    struct tm_reading r;
    assert_int_equal(tm_parse(s, strlen(s), NOW_MS, &r, detail, sizeof(detail)), TM_OK);
    assert_false(r.has_heading);
    assert_false(r.has_fuel);
    assert_false(r.has_odometer);
    assert_false(r.ignition);
    tm_reading_release(&r);
}

static void a_refused_payload_leaves_an_empty_reading(void **state)
{
    (void)state;
    struct tm_reading r;
    memset(&r, 0xa5, sizeof(r));
    const char *s = "{\"v\":1,\"truck_id\":\"TRK-1\",\"x\":1,\"ts\":1}";
    assert_int_equal(tm_parse(s, strlen(s), NOW_MS, &r, detail, sizeof(detail)), TM_TS_TOO_OLD);
    assert_null(r.extra);
    assert_int_equal(r.extra_len, 0);
    assert_string_equal(r.truck_id, "");
    tm_reading_release(&r); /* allowed, and a no-op */
}

static void detail_may_be_null_or_short(void **state)
{
    (void)state;
    struct tm_reading r;
    const char *s = payload_with("speed_kmh", NULL);
    assert_int_equal(tm_parse(s, strlen(s), NOW_MS, &r, NULL, 0), TM_MISSING_FIELD);
    char tiny[4];
    assert_int_equal(tm_parse(s, strlen(s), NOW_MS, &r, tiny, sizeof(tiny)), TM_MISSING_FIELD);
    assert_string_equal(tiny, "spe");
}

/* ---- v ----------------------------------------------------------------- */

static void v_must_be_1(void **state)
{
    (void)state;
    assert_accepted("v", "1");
    assert_verdict("v", "2", "unsupported_version", "v");
    assert_verdict("v", "0", "unsupported_version", "v");
    assert_verdict("v", "-1", "unsupported_version", "v");
}

static void v_must_be_an_integer(void **state)
{
    (void)state;
    assert_verdict("v", "1.0", "wrong_type", "v");
    assert_verdict("v", "\"1\"", "wrong_type", "v");
    assert_verdict("v", "true", "wrong_type", "v");
    assert_verdict("v", "null", "wrong_type", "v");
}

static void v_missing_is_missing_field(void **state)
{
    (void)state;
    assert_verdict("v", NULL, "missing_field", "v");
}

/* ---- truck_id ---------------------------------------------------------- */

static void truck_id_of_1_and_64_chars_is_accepted(void **state)
{
    (void)state;
    assert_accepted("truck_id", "\"x\"");
    assert_accepted("truck_id", "\"0123456789012345678901234567890123456789012345678901234567890123\"");
    assert_accepted("truck_id", "\"az.AZ_09-\"");
    /* Words an unquoted array literal would read as NULL are ordinary ids:
     * the sinks quote them (core/pgval.h). */
    assert_accepted("truck_id", "\"NULL\"");
    assert_accepted("truck_id", "\"null\"");
}

static void truck_id_of_65_chars_is_bad(void **state)
{
    (void)state;
    assert_verdict("truck_id", "\"01234567890123456789012345678901234567890123456789012345678901234\"", "bad_truck_id",
                   "truck_id");
}

static void truck_id_empty_or_with_other_chars_is_bad(void **state)
{
    (void)state;
    static const char *const bad[] = {"\"\"", "\"TRK 42\"", "\"TRK/42\"", "\"TRK+\"", "\"TRK#\"", "\"TRK\\u00e9\"",
                                      "\"TRK\\n\"", "\"TRK:1\"", "\"\\u0041/\"",
                                      /* what an array or COPY literal would read differently */
                                      "\"a,b\"", "\"{x}\"", "\"\\\"q\\\"\"", "\"a\\\\b\"", "\"a\\tb\""};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_verdict("truck_id", bad[i], "bad_truck_id", "truck_id");
}

static void truck_id_must_be_a_string(void **state)
{
    (void)state;
    assert_verdict("truck_id", "42", "wrong_type", "truck_id");
    assert_verdict("truck_id", "null", "wrong_type", "truck_id");
    assert_verdict("truck_id", "[\"TRK-1\"]", "wrong_type", "truck_id");
}

/* ---- ts ---------------------------------------------------------------- */

static void ts_from_2000_01_01_is_accepted(void **state)
{
    (void)state;
    assert_accepted("ts", "946684800000");
    assert_verdict("ts", "946684799999", "ts_too_old", "ts");
    assert_verdict("ts", "0", "ts_too_old", "ts");
    assert_verdict("ts", "-1", "ts_too_old", "ts");
    assert_verdict("ts", "1764201600", "ts_too_old", "ts"); /* seconds, not ms */
}

static void ts_up_to_24h_ahead_is_accepted(void **state)
{
    (void)state;
    assert_accepted("ts", "1764374400000"); /* NOW_MS + 24 h */
    assert_verdict("ts", "1764374400001", "ts_in_future", "ts");
    assert_verdict("ts", "9223372036854775807", "ts_in_future", "ts");
}

static void ts_must_be_an_integer(void **state)
{
    (void)state;
    assert_verdict("ts", "1.7642016e12", "wrong_type", "ts");
    assert_verdict("ts", "1764201600123.0", "wrong_type", "ts");
    assert_verdict("ts", "true", "wrong_type", "ts");
    assert_verdict("ts", "\"1764201600123\"", "wrong_type", "ts");
}

static void ts_limit_saturates_near_int64_max(void **state)
{
    (void)state;
    const char *s = payload_with("ts", "9223372036854775807");
    struct tm_reading r;
    assert_int_equal(tm_parse(s, strlen(s), INT64_MAX - 5, &r, detail, sizeof(detail)), TM_OK);
    tm_reading_release(&r);
}

/* ---- seq --------------------------------------------------------------- */

static void seq_from_0_is_accepted(void **state)
{
    (void)state;
    assert_accepted("seq", "0");
    assert_accepted("seq", "9223372036854775807");
    assert_verdict("seq", "-1", "out_of_range", "seq");
}

static void seq_must_be_an_integer(void **state)
{
    (void)state;
    assert_verdict("seq", "3.0", "wrong_type", "seq");
    assert_verdict("seq", "1e3", "wrong_type", "seq");
    assert_verdict("seq", "\"3\"", "wrong_type", "seq");
}

/* ---- lat, lon, speed_kmh ----------------------------------------------- */

static void lat_within_plus_minus_90(void **state)
{
    (void)state;
    assert_accepted("lat", "-90");
    assert_accepted("lat", "90.0");
    assert_accepted("lat", "48");
    assert_verdict("lat", "-90.000001", "out_of_range", "lat");
    assert_verdict("lat", "90.0000000001", "out_of_range", "lat");
    assert_verdict("lat", "\"48.1\"", "wrong_type", "lat");
    assert_verdict("lat", "null", "wrong_type", "lat");
    assert_verdict("lat", NULL, "missing_field", "lat");
}

static void lon_within_plus_minus_180(void **state)
{
    (void)state;
    assert_accepted("lon", "-180");
    assert_accepted("lon", "180");
    assert_verdict("lon", "-180.1", "out_of_range", "lon");
    assert_verdict("lon", "180.00000000001", "out_of_range", "lon");
    assert_verdict("lon", "false", "wrong_type", "lon");
    assert_verdict("lon", NULL, "missing_field", "lon");
}

static void speed_within_0_and_400(void **state)
{
    (void)state;
    assert_accepted("speed_kmh", "0");
    assert_accepted("speed_kmh", "400");
    assert_accepted("speed_kmh", "-0.0");
    assert_verdict("speed_kmh", "-0.001", "out_of_range", "speed_kmh");
    assert_verdict("speed_kmh", "400.001", "out_of_range", "speed_kmh");
    assert_verdict("speed_kmh", "{}", "wrong_type", "speed_kmh");
    assert_verdict("speed_kmh", NULL, "missing_field", "speed_kmh");
}

/* ---- ignition ---------------------------------------------------------- */

static void ignition_must_be_a_boolean(void **state)
{
    (void)state;
    assert_accepted("ignition", "false");
    assert_accepted("ignition", "true");
    assert_verdict("ignition", "\"true\"", "wrong_type", "ignition");
    assert_verdict("ignition", "1", "wrong_type", "ignition");
    assert_verdict("ignition", "null", "wrong_type", "ignition");
    assert_verdict("ignition", NULL, "missing_field", "ignition");
}

/* ---- optional fields --------------------------------------------------- */

static void heading_from_0_below_360(void **state)
{
    (void)state;
    assert_accepted("heading_deg", "0");
    assert_accepted("heading_deg", "359.99999999999994");
    assert_accepted("heading_deg", NULL);
    assert_verdict("heading_deg", "360", "out_of_range", "heading_deg");
    assert_verdict("heading_deg", "-0.5", "out_of_range", "heading_deg");
    assert_verdict("heading_deg", "null", "wrong_type", "heading_deg");
    assert_verdict("heading_deg", "\"N\"", "wrong_type", "heading_deg");
}

static void fuel_from_0_to_100(void **state)
{
    (void)state;
    assert_accepted("fuel_pct", "0");
    assert_accepted("fuel_pct", "100");
    assert_accepted("fuel_pct", NULL);
    assert_verdict("fuel_pct", "100.01", "out_of_range", "fuel_pct");
    assert_verdict("fuel_pct", "-1", "out_of_range", "fuel_pct");
    assert_verdict("fuel_pct", "null", "wrong_type", "fuel_pct");
}

static void odometer_from_0(void **state)
{
    (void)state;
    assert_accepted("odometer_km", "0");
    assert_accepted("odometer_km", "1.7976931348623157e308");
    assert_accepted("odometer_km", NULL);
    assert_verdict("odometer_km", "-0.1", "out_of_range", "odometer_km");
    assert_verdict("odometer_km", "null", "wrong_type", "odometer_km");
    assert_verdict("odometer_km", "\"1\"", "wrong_type", "odometer_km");
}

/* ---- which fault wins -------------------------------------------------- */

static void every_required_field_missing_is_named(void **state)
{
    (void)state;
    static const char *const required[] = {"v", "truck_id", "ts", "seq", "lat", "lon", "speed_kmh", "ignition"};
    for (size_t i = 0; i < sizeof(required) / sizeof(required[0]); i++)
        assert_verdict(required[i], NULL, "missing_field", required[i]);
}

static void first_fault_in_table_order_wins(void **state)
{
    (void)state;
    /* Fields appear in reverse order in the text: the table decides, not the
     * position in the payload. */
    assert_string_equal(verdict("{\"odometer_km\":-1,\"lat\":\"x\",\"seq\":1.5,\"ts\":1764201600123,"
                                "\"truck_id\":\"T\",\"v\":1}"),
                        "wrong_type");
    assert_string_equal(detail, "seq");
    assert_string_equal(verdict("{\"odometer_km\":-1,\"lat\":\"x\",\"seq\":-1,\"v\":1}"), "missing_field");
    assert_string_equal(detail, "truck_id");
    assert_string_equal(verdict("{\"lat\":\"x\",\"v\":2}"), "unsupported_version");
    assert_string_equal(detail, "v");
    assert_string_equal(verdict("{\"fuel_pct\":200,\"heading_deg\":400,\"v\":1,\"truck_id\":\"T\",\"ts\":1764201600123,"
                                "\"seq\":1,\"lat\":1,\"lon\":1,\"speed_kmh\":1,\"ignition\":true}"),
                        "out_of_range");
    assert_string_equal(detail, "heading_deg");
}

static void duplicate_key_beats_schema_faults(void **state)
{
    (void)state;
    assert_string_equal(verdict("{\"v\":2,\"x\":1,\"x\":2}"), "duplicate_key");
    assert_string_equal(detail, "x");
}

static void syntax_error_beats_an_earlier_duplicate_key(void **state)
{
    (void)state;
    assert_string_equal(verdict("{\"a\":1,\"a\":2,"), "invalid_json");
}

/* ---- invalid_json, duplicate_key, too_large ---------------------------- */

static void invalid_json_detail_says_where(void **state)
{
    (void)state;
    assert_string_equal(verdict("{\"v\":1,"), "invalid_json");
    assert_non_null(strstr(detail, "byte 7"));
    assert_non_null(strstr(detail, "end of file"));
}

static void top_level_not_an_object_is_invalid_json(void **state)
{
    (void)state;
    static const char *const tops[] = {"[]", "[{\"v\":1}]", "1", "\"x\"", "null", "true"};
    for (size_t i = 0; i < sizeof(tops) / sizeof(tops[0]); i++) {
        assert_string_equal(verdict(tops[i]), "invalid_json");
        assert_string_equal(detail, "top level is not an object");
    }
}

static void nan_infinity_and_overflow_are_invalid_json(void **state)
{
    (void)state;
    assert_string_equal(verdict_with("lat", "NaN"), "invalid_json");
    assert_string_equal(verdict_with("lat", "Infinity"), "invalid_json");
    assert_string_equal(verdict_with("lat", "-Infinity"), "invalid_json");
    assert_string_equal(verdict_with("odometer_km", "1e400"), "invalid_json");
    assert_string_equal(verdict_with("seq", "9223372036854775808"), "invalid_json");
}

static void invalid_utf8_is_invalid_json(void **state)
{
    (void)state;
    assert_string_equal(verdict_with("truck_id", "\"TRK-\xc3\x28\""), "invalid_json");
    /* The offending byte is quoted back in the detail, but as '?': the
     * detail becomes a Kafka header and must stay printable ASCII. */
    for (const char *p = detail; *p; p++)
        assert_true(*p >= 0x20 && *p <= 0x7e);
}

static void embedded_nul_is_invalid_json(void **state)
{
    (void)state;
    /* jansson alone would skip a raw NUL between tokens. */
    const char s[] = "{\"v\":1\0}";
    struct tm_reading r;
    assert_int_equal(tm_parse(s, sizeof(s) - 1, NOW_MS, &r, detail, sizeof(detail)), TM_INVALID_JSON);
    assert_string_equal(detail, "byte 6: NUL byte");
    assert_string_equal(verdict_with("truck_id", "\"a\\u0000b\""), "invalid_json");
}

static void duplicate_key_names_the_key(void **state)
{
    (void)state;
    assert_string_equal(verdict("{\"v\":1,\"lat\":1,\"lat\":2}"), "duplicate_key");
    assert_string_equal(detail, "lat");
    /* Spelled differently, same key: the detail is the decoded name. */
    assert_string_equal(verdict("{\"lat\":1,\"l\\u0061t\":2}"), "duplicate_key");
    assert_string_equal(detail, "lat");
    /* Nested objects may not repeat keys either. */
    assert_string_equal(verdict("{\"m\":{\"k\":1,\"k\":2}}"), "duplicate_key");
    assert_string_equal(detail, "k");
    /* The empty key is a key too, and the detail must not be empty. */
    assert_string_equal(verdict("{\"\":1,\"\":2}"), "duplicate_key");
    assert_string_equal(detail, "\"\"");
}

static void duplicate_key_detail_is_printable_ascii(void **state)
{
    (void)state;
    assert_string_equal(verdict("{\"M\xc3\xbc\\n\":1,\"M\xc3\xbc\\n\":2}"), "duplicate_key");
    assert_string_equal(detail, "M???");
}

static void payload_of_4096_bytes_is_accepted(void **state)
{
    (void)state;
    char *s = malloc(TM_MAX_PAYLOAD + 2);
    assert_non_null(s);
    int n = snprintf(s, TM_MAX_PAYLOAD + 2, "%s", EXAMPLE_NORMALIZED);
    memcpy(s + n - 1, ",\"pad\":\"", 8);
    n += 7;
    memset(s + n, 'x', (size_t)(TM_MAX_PAYLOAD - n - 2));
    memcpy(s + TM_MAX_PAYLOAD - 2, "\"}", 3);
    assert_int_equal(strlen(s), TM_MAX_PAYLOAD);

    struct tm_reading r;
    assert_int_equal(tm_parse(s, TM_MAX_PAYLOAD, NOW_MS, &r, detail, sizeof(detail)), TM_OK);
    char out[TM_MAX_PAYLOAD + 1];
    assert_int_equal(tm_serialize(&r, out, sizeof(out)), TM_MAX_PAYLOAD);
    assert_string_equal(out, s);
    tm_reading_release(&r);

    /* One byte more (a space, still valid JSON) is too large. */
    memcpy(s + TM_MAX_PAYLOAD - 1, " }", 3);
    assert_int_equal(tm_parse(s, TM_MAX_PAYLOAD + 1, NOW_MS, &r, detail, sizeof(detail)), TM_TOO_LARGE);
    assert_string_equal(detail, "4097 bytes, limit 4096");
    free(s);
}

static void payload_of_1_mib_is_too_large_without_parsing(void **state)
{
    (void)state;
    /* Not JSON at all: had it been parsed, the verdict would be invalid_json. */
    size_t len = 1u << 20;
    char *s = malloc(len);
    assert_non_null(s);
    memset(s, '[', len);
    struct tm_reading r;
    assert_int_equal(tm_parse(s, len, NOW_MS, &r, detail, sizeof(detail)), TM_TOO_LARGE);
    assert_string_equal(detail, "1048576 bytes, limit 4096");
    assert_int_equal(tm_parse(s, 10, NOW_MS, &r, detail, sizeof(detail)), TM_INVALID_JSON);
    free(s);
}

/* A reading whose normalized form would outgrow TM_MAX_PAYLOAD (1e5 becomes
 * 100000) is refused, so the normalized form always fits and always parses
 * again.  The known fields are as long as they can be, so the bound holds
 * with the longest known part. */
static void normalized_form_never_exceeds_4096_bytes(void **state)
{
    (void)state;
    static const char head[] =
        "{\"v\":1,\"truck_id\":\"0123456789012345678901234567890123456789012345678901234567890123\","
        "\"ts\":1764201600123,\"seq\":9223372036854775807,\"lat\":-1.2345678901234567e-300,"
        "\"lon\":-1.2345678901234567e-300,\"speed_kmh\":1.2345678901234567e-300,\"ignition\":false,"
        "\"heading_deg\":1.2345678901234567e-300,\"fuel_pct\":1.2345678901234567e-300,"
        "\"odometer_km\":1.2345678901234567e300,\"n\":1e5,\"pad\":\"";
    static char s[TM_MAX_PAYLOAD + 1], out[TM_MAX_PAYLOAD + 1];
    struct tm_reading r;

    /* Measure the normalized length with an empty pad, then pad to reach
     * exactly 4096 and 4097 bytes of normalized form. */
    snprintf(s, sizeof(s), "%s\"}", head);
    normalize(s, out, sizeof(out));
    size_t in0 = strlen(s), norm0 = strlen(out);
    assert_true(in0 < norm0);
    for (size_t norm = TM_MAX_PAYLOAD; norm <= TM_MAX_PAYLOAD + 1; norm++) {
        size_t pad = norm - norm0, len = in0 + pad;
        assert_true(len <= TM_MAX_PAYLOAD);
        memcpy(s, head, sizeof(head) - 1);
        memset(s + sizeof(head) - 1, 'x', pad);
        memcpy(s + sizeof(head) - 1 + pad, "\"}", 3);
        enum tm_reason why = tm_parse(s, len, NOW_MS, &r, detail, sizeof(detail));
        if (norm == TM_MAX_PAYLOAD) {
            assert_int_equal(why, TM_OK);
            assert_int_equal(tm_serialize(&r, out, sizeof(out)), TM_MAX_PAYLOAD);
            tm_reading_release(&r);
        } else {
            assert_int_equal(why, TM_TOO_LARGE);
            assert_string_equal(detail, "normalized");
        }
    }
}

/* ---- normalized form --------------------------------------------------- */

static void normalized_form_follows_table_order(void **state)
{
    (void)state;
    char out[TM_MAX_PAYLOAD + 1];
    /* The example's fields in another order; normalized, they are in table order. */
    normalize("{ \"odometer_km\" : 123456.7, \"fuel_pct\":63.2, \"ignition\":true, \"heading_deg\":184,\n"
              "  \"speed_kmh\":72.5, \"lon\":11.576124, \"lat\":48.137154, \"seq\":1234,\n"
              "  \"ts\":1764201600123, \"truck_id\":\"TRK-000042\", \"v\":1 }",
              out, sizeof(out));
    assert_string_equal(out, EXAMPLE_NORMALIZED);
}

static void unknown_fields_are_kept_in_order_after_known_ones(void **state)
{
    (void)state;
    char out[TM_MAX_PAYLOAD + 1];
    normalize("{\"zeta\":1,\"v\":1,\"truck_id\":\"T\",\"alpha\":{\"y\":[1,2.50,null],\"x\":\"q\\\"\\/\\u00e9\"},"
              "\"ts\":1764201600123,\"seq\":0,\"lat\":0,\"lon\":0,\"speed_kmh\":0,\"ignition\":true,"
              "\"mid\" : true , \"\":\"\",\"ctl\":\"\\u0001\\t\"}",
              out, sizeof(out));
    assert_string_equal(out, "{\"v\":1,\"truck_id\":\"T\",\"ts\":1764201600123,\"seq\":0,\"lat\":0,\"lon\":0,"
                             "\"speed_kmh\":0,\"ignition\":true,\"zeta\":1,\"alpha\":{\"y\":[1,2.5,null],"
                             "\"x\":\"q\\\"/\xc3\xa9\"},\"mid\":true,\"\":\"\",\"ctl\":\"\\u0001\\t\"}");
}

static void unknown_fields_are_exposed_without_braces(void **state)
{
    (void)state;
    const char *s = payload_with("v", "1,\"b\":[],\"a\":-0.0");
    struct tm_reading r;
    assert_int_equal(tm_parse(s, strlen(s), NOW_MS, &r, detail, sizeof(detail)), TM_OK);
    assert_string_equal(r.extra, "\"b\":[],\"a\":0");
    assert_int_equal(r.extra_len, strlen(r.extra));
    tm_reading_release(&r);
    assert_null(r.extra);
}

static void deep_nesting_in_unknown_fields_is_kept(void **state)
{
    (void)state;
    /* As deep as 4 KiB allows; the serializer recurses once per level. */
    enum { DEPTH = 1900 };
    char *s = malloc(TM_MAX_PAYLOAD + 1);
    assert_non_null(s);
    int n = snprintf(s, TM_MAX_PAYLOAD, "%.*s,\"deep\":", (int)strlen(EXAMPLE_NORMALIZED) - 1, EXAMPLE_NORMALIZED);
    memset(s + n, '[', DEPTH);
    memset(s + n + DEPTH, ']', DEPTH);
    memcpy(s + n + 2 * DEPTH, "}", 2);
    char *out = malloc(TM_MAX_PAYLOAD + 1);
    assert_non_null(out);
    normalize(s, out, TM_MAX_PAYLOAD + 1);
    assert_string_equal(out, s);
    free(out);
    free(s);
}

static void normalization_round_trips(void **state)
{
    (void)state;
    static const char *const inputs[] = {
        EXAMPLE_NORMALIZED,
        "{\"v\":1,\"truck_id\":\"a\",\"ts\":946684800000,\"seq\":0,\"lat\":-0.0,\"lon\":1e-7,\"speed_kmh\":3.3e2,"
        "\"ignition\":false,\"odometer_km\":1e300,\"u\":[0.1,-2.5e-320,1e22,9007199254740993,-0]}",
        "{\"u\":{\"a\":{\"b\":[{}]}},\"v\":1,\"truck_id\":\"a\",\"ts\":946684800000,\"seq\":0,\"lat\":0."
        "30000000000000004,"
        "\"lon\":179.99999999999997,\"speed_kmh\":1e2,\"ignition\":false,\"fuel_pct\":99.99999999999999}",
    };
    char once[TM_MAX_PAYLOAD + 1], twice[TM_MAX_PAYLOAD + 1];
    for (size_t i = 0; i < sizeof(inputs) / sizeof(inputs[0]); i++) {
        normalize(inputs[i], once, sizeof(once));
        normalize(once, twice, sizeof(twice));
        assert_string_equal(once, twice);
    }
}

static void numbers_take_their_shortest_form(void **state)
{
    (void)state;
    assert_string_equal(normalized_field("lat", "0.1"), "0.1");
    assert_string_equal(normalized_field("lat", "48.137154"), "48.137154");
    assert_string_equal(normalized_field("lat", "48.1371540000"), "48.137154");
    assert_string_equal(normalized_field("lat", "0.30000000000000004"), "0.30000000000000004");
    assert_string_equal(normalized_field("lat", "-89.99999999999999"), "-89.99999999999999");
    assert_string_equal(normalized_field("odometer_km", "1e-7"), "1e-7");
    assert_string_equal(normalized_field("odometer_km", "1.5E+300"), "1.5e300");
    assert_string_equal(normalized_field("odometer_km", "5e-324"), "5e-324");
}

/* The numbers tm_normalize() copies from the payload (no exponent, at most
 * 15 significant digits, 1e-4 or more unless integral) and those it leaves to
 * the shortest-form search: the same text either way (normalize() compares
 * both with tm_serialize()). */
static void plain_numbers_keep_their_digits_without_trailing_zeros(void **state)
{
    (void)state;
    assert_string_equal(normalized_field("lat", "48.137150"), "48.13715");
    assert_string_equal(normalized_field("speed_kmh", "12.0"), "12");
    assert_string_equal(normalized_field("speed_kmh", "12.50"), "12.5");
    assert_string_equal(normalized_field("lat", "-0.0"), "0");
    assert_string_equal(normalized_field("lat", "-0"), "0");
    assert_string_equal(normalized_field("lat", "0.000"), "0");
    assert_string_equal(normalized_field("lat", "-0.5"), "-0.5");
    assert_string_equal(normalized_field("lat", "0.0001"), "0.0001");
    assert_string_equal(normalized_field("lat", "0.00012300"), "0.000123");
    assert_string_equal(normalized_field("lat", "0.00001"), "1e-5");
    assert_string_equal(normalized_field("lat", "-0.000099"), "-9.9e-5");
    assert_string_equal(normalized_field("odometer_km", "123456789012345"), "123456789012345");
    assert_string_equal(normalized_field("odometer_km", "12345678901234.5"), "12345678901234.5");
    assert_string_equal(normalized_field("odometer_km", "1234567890123456"), "1234567890123456");
    assert_string_equal(normalized_field("odometer_km", "12345678901234.56"), "12345678901234.56");
    assert_string_equal(normalized_field("odometer_km", "10000000000000000.0"), "1e16");
    assert_string_equal(normalized_field("lat", "0.1000000000000000055511151231257827"), "0.1");
    assert_string_equal(normalized_field("lat", "4.5e1"), "45");
}

/* tm_normalize() judges as tm_parse_mqtt() does: the same reason and detail
 * for a refused payload, the topic's truck id checked, the normalized form
 * that fits or -1. */
static void tm_normalize_judges_as_tm_parse_mqtt(void **state)
{
    (void)state;
    struct tm_reading r;
    char norm[TM_MAX_PAYLOAD + 1], small[64];
    int n;
    const char *ok = payload_with("lat", "48.1371540");
    assert_int_equal(
        tm_normalize(ok, strlen(ok), NOW_MS, "TRK-000042", &r, norm, sizeof(norm), &n, detail, sizeof(detail)), TM_OK);
    tm_reading_release(&r);
    assert_string_equal(norm, EXAMPLE_NORMALIZED);
    assert_int_equal(n, (int)strlen(EXAMPLE_NORMALIZED));

    assert_int_equal(
        tm_normalize(ok, strlen(ok), NOW_MS, "TRK-000043", &r, norm, sizeof(norm), &n, detail, sizeof(detail)),
        TM_TOPIC_MISMATCH);
    assert_string_equal(detail, "truck_id");
    assert_int_equal(n, -1);

    const char *bad = payload_with("lat", "90.5");
    assert_int_equal(tm_normalize(bad, strlen(bad), NOW_MS, NULL, &r, norm, sizeof(norm), &n, detail, sizeof(detail)),
                     TM_OUT_OF_RANGE);
    assert_string_equal(detail, "lat");
    assert_int_equal(n, -1);

    ok = payload_with("lat", "48.1371540"); /* the buffer bad took */
    assert_int_equal(tm_normalize(ok, strlen(ok), NOW_MS, NULL, &r, small, sizeof(small), &n, detail, sizeof(detail)),
                     TM_OK);
    assert_string_equal(r.truck_id, "TRK-000042");
    tm_reading_release(&r);
    assert_int_equal(n, -1);
}

static void integral_numbers_print_without_fraction(void **state)
{
    (void)state;
    assert_string_equal(normalized_field("speed_kmh", "72.0"), "72");
    assert_string_equal(normalized_field("speed_kmh", "100"), "100");
    assert_string_equal(normalized_field("speed_kmh", "1e2"), "100");
    assert_string_equal(normalized_field("odometer_km", "123456789012345.0"), "123456789012345");
    /* From 2^53 on, integers print in exponent form when that is shorter. */
    assert_string_equal(normalized_field("odometer_km", "1e21"), "1e21");
}

/* The definition the contract gives, kept naive on purpose: the first of
 * %.1g .. %.17g that reads back, integral values below 2^53 as integers,
 * exponents without '+' and leading zeros.  tm_serialize takes a faster
 * route for plain decimals and must land on the same text. */
static void shortest_by_definition(double d, char *out, size_t size)
{
    if (d == 0) {
        snprintf(out, size, "0");
        return;
    }
    if (fabs(d) < 9007199254740992.0 && d == trunc(d)) {
        snprintf(out, size, "%lld", (long long)d);
        return;
    }
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(out, size, "%.*g", prec, d);
        if (strtod(out, NULL) == d)
            break;
    }
    char *e = strchr(out, 'e');
    if (e) {
        char *src = e + 1, *dst = e + 1;
        if (*src == '-')
            *dst++ = *src++;
        else if (*src == '+')
            src++;
        while (*src == '0' && src[1])
            src++;
        memmove(dst, src, strlen(src) + 1);
    }
}

static void numbers_match_the_shortest_round_trip_scan(void **state)
{
    (void)state;
    static const double pow10[] = {1, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15};
    uint64_t x = 88172645463325252ULL; /* xorshift64: the same values every run */
    struct tm_reading r = {.truck_id = "T", .ts_ms = TM_TS_MIN_MS};
    char out[TM_MAX_PAYLOAD + 1], want[64];

    for (int i = 0; i < 60000; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        double d;
        switch (i % 3) {
        case 0: /* a decimal with 0..15 places, as devices send them */
            d = (double)(int64_t)(x % 2000000000000000ULL - 1000000000000000LL) / pow10[(x >> 52) % 16];
            break;
        case 1: /* a quotient that does not terminate */
            d = (double)(int64_t)(x >> 20) / 7.0 / pow10[(x >> 60) % 16];
            break;
        default: /* any finite double */
            memcpy(&d, &x, sizeof(d));
            if (!isfinite(d))
                d = 1.5;
        }
        r.lat = d;
        assert_true(tm_serialize(&r, out, sizeof(out)) > 0);
        char *got = strstr(out, "\"lat\":") + 6;
        got[strcspn(got, ",")] = '\0';
        shortest_by_definition(d, want, sizeof(want));
        if (strcmp(got, want) != 0)
            fail_msg("%.17g printed as %s, want %s", d, got, want);
    }
}

static void negative_zero_prints_as_zero(void **state)
{
    (void)state;
    assert_string_equal(normalized_field("lat", "-0.0"), "0");
    assert_string_equal(normalized_field("speed_kmh", "-0"), "0");
}

static void serialize_reports_a_short_buffer(void **state)
{
    (void)state;
    const char *s = payload_with("", NULL);
    struct tm_reading r;
    assert_int_equal(tm_parse(s, strlen(s), NOW_MS, &r, detail, sizeof(detail)), TM_OK);
    size_t len = strlen(EXAMPLE_NORMALIZED);
    char out[TM_MAX_PAYLOAD + 1];
    assert_int_equal(tm_serialize(&r, out, len + 1), (int)len);
    assert_string_equal(out, EXAMPLE_NORMALIZED);
    assert_int_equal(tm_serialize(&r, out, len), -1);
    assert_string_equal(out, "");
    assert_int_equal(tm_serialize(&r, NULL, 0), -1);
    tm_reading_release(&r);
}

static void a_reading_built_by_hand_serializes_to_valid_json(void **state)
{
    (void)state;
    struct tm_reading r = {.truck_id = "bad \"id\"",
                           .ts_ms = 1764201600123LL,
                           .seq = 1,
                           .lat = NAN,
                           .lon = INFINITY,
                           .speed_kmh = 50,
                           .ignition = true};
    char out[TM_MAX_PAYLOAD + 1];
    assert_true(tm_serialize(&r, out, sizeof(out)) > 0);
    assert_string_equal(out, "{\"v\":1,\"truck_id\":\"bad \\\"id\\\"\",\"ts\":1764201600123,\"seq\":1,"
                             "\"lat\":null,\"lon\":null,\"speed_kmh\":50,\"ignition\":true}");
    assert_string_equal(verdict(out), "bad_truck_id");
}

/* ---- MQTT topics ------------------------------------------------------- */

static void topic_kinds_are_recognized(void **state)
{
    (void)state;
    char id[TM_TRUCK_ID_MAX + 1];
    assert_int_equal(tm_topic_parse("fleet/trucks/TRK-000042/telemetry", id, sizeof(id)), TM_TOPIC_TELEMETRY);
    assert_string_equal(id, "TRK-000042");
    assert_int_equal(tm_topic_parse("fleet/trucks/TRK-000042/status", id, sizeof(id)), TM_TOPIC_TRUCK_STATUS);
    assert_string_equal(id, "TRK-000042");
    assert_int_equal(tm_topic_parse("fleet/gateways/gw_7.a/status", id, sizeof(id)), TM_TOPIC_GATEWAY_STATUS);
    assert_string_equal(id, "gw_7.a");
}

static void hostile_topics_are_unknown(void **state)
{
    (void)state;
    static const char *const hostile[] = {
        "",
        "fleet",
        "fleet/trucks/",
        "fleet/trucks//telemetry",
        "fleet/trucks/TRK-1",
        "fleet/trucks/TRK-1/",
        "fleet/trucks/TRK-1/telemetry/",
        "fleet/trucks/TRK-1/telemetry/extra",
        "fleet/trucks/TRK-1/x/telemetry",
        "fleet/trucks/+/telemetry",
        "fleet/trucks/#",
        "fleet/trucks/TRK-1/#",
        "fleet/trucks/TRK+1/telemetry",
        "fleet/trucks/TRK 1/telemetry",
        "fleet/trucks/TRK-\xc3\xa9/telemetry",
        "fleet/gateways/GW-1/telemetry",
        "fleet/gateways//status",
        "/fleet/trucks/TRK-1/telemetry",
        "Fleet/trucks/TRK-1/telemetry",
        "fleet/trucks/TRK-1/Telemetry",
        "$SYS/broker/uptime",
        "fleet/trucks/01234567890123456789012345678901234567890123456789012345678901234/telemetry",
    };
    char id[TM_TRUCK_ID_MAX + 1];
    for (size_t i = 0; i < sizeof(hostile) / sizeof(hostile[0]); i++) {
        memcpy(id, "junk", 5);
        if (tm_topic_parse(hostile[i], id, sizeof(id)) != TM_TOPIC_UNKNOWN)
            fail_msg("accepted topic %s", hostile[i]);
        assert_string_equal(id, "");
    }
    assert_int_equal(tm_topic_parse(NULL, id, sizeof(id)), TM_TOPIC_UNKNOWN);
}

static void topic_id_of_64_chars_is_accepted(void **state)
{
    (void)state;
    char id[TM_TRUCK_ID_MAX + 1];
    const char *t = "fleet/trucks/0123456789012345678901234567890123456789012345678901234567890123/telemetry";
    assert_int_equal(tm_topic_parse(t, id, sizeof(id)), TM_TOPIC_TELEMETRY);
    assert_int_equal(strlen(id), 64);
}

static void topic_id_that_does_not_fit_is_unknown(void **state)
{
    (void)state;
    char id[6];
    assert_int_equal(tm_topic_parse("fleet/trucks/TRK-1/telemetry", id, sizeof(id)), TM_TOPIC_TELEMETRY);
    assert_int_equal(tm_topic_parse("fleet/trucks/TRK-12/telemetry", id, sizeof(id)), TM_TOPIC_UNKNOWN);
    assert_string_equal(id, "");
    assert_int_equal(tm_topic_parse("fleet/trucks/TRK-1/telemetry", NULL, 0), TM_TOPIC_UNKNOWN);
}

static void payload_for_another_truck_is_a_topic_mismatch(void **state)
{
    (void)state;
    const char *s = payload_with("", NULL);
    struct tm_reading r;
    assert_int_equal(
        tm_parse_mqtt("fleet/trucks/TRK-000043/telemetry", s, strlen(s), NOW_MS, &r, detail, sizeof(detail)),
        TM_TOPIC_MISMATCH);
    assert_string_equal(detail, "truck_id");
    /* Case matters: ids are compared byte for byte. */
    assert_int_equal(
        tm_parse_mqtt("fleet/trucks/trk-000042/telemetry", s, strlen(s), NOW_MS, &r, detail, sizeof(detail)),
        TM_TOPIC_MISMATCH);
    assert_int_equal(
        tm_parse_mqtt("fleet/trucks/TRK-000042/telemetry", s, strlen(s), NOW_MS, &r, detail, sizeof(detail)), TM_OK);
    assert_string_equal(r.truck_id, "TRK-000042");
    tm_reading_release(&r);
}

static void topic_mismatch_is_checked_right_after_truck_id(void **state)
{
    (void)state;
    const char *s = payload_with("lat", "200");
    struct tm_reading r;
    assert_int_equal(tm_parse_mqtt("fleet/trucks/OTHER/telemetry", s, strlen(s), NOW_MS, &r, detail, sizeof(detail)),
                     TM_TOPIC_MISMATCH);
    s = payload_with("v", "2");
    assert_int_equal(tm_parse_mqtt("fleet/trucks/OTHER/telemetry", s, strlen(s), NOW_MS, &r, detail, sizeof(detail)),
                     TM_UNSUPPORTED_VERSION);
}

static void telemetry_on_a_topic_that_is_not_telemetry_is_refused(void **state)
{
    (void)state;
    const char *s = payload_with("", NULL);
    struct tm_reading r;
    assert_int_equal(tm_parse_mqtt("fleet/trucks/TRK-000042/status", s, strlen(s), NOW_MS, &r, detail, sizeof(detail)),
                     TM_TOPIC_MISMATCH);
    assert_string_equal(detail, "topic");
    assert_int_equal(tm_parse_mqtt("fleet/trucks/+/telemetry", s, strlen(s), NOW_MS, &r, detail, sizeof(detail)),
                     TM_BAD_TRUCK_ID);
    assert_string_equal(detail, "topic");
    assert_null(r.extra);
}

/* ---- fixture files ----------------------------------------------------- */

#define FIXTURE_MAX (64 * 1024)

static char fixture_dir[1024];

static void locate_fixtures(void)
{
    const char *root = getenv("FLEETSYNC_FIXTURES");
    snprintf(fixture_dir, sizeof(fixture_dir), "%s/telemetry", root && *root ? root : "tests/fixtures");
}

/* Reads a fixture into a malloc'ed buffer (caller frees); fails the test
 * if it is missing or bigger than FIXTURE_MAX. */
static char *read_fixture(const char *name, size_t *len)
{
    char path[2048];
    snprintf(path, sizeof(path), "%s/%s", fixture_dir, name);
    FILE *f = fopen(path, "rb");
    if (!f)
        fail_msg("cannot open fixture %s: %s", path, strerror(errno));
    char *buf = malloc(FIXTURE_MAX + 1);
    assert_non_null(buf);
    *len = fread(buf, 1, FIXTURE_MAX + 1, f);
    fclose(f);
    if (*len > FIXTURE_MAX)
        fail_msg("fixture %s is larger than %d bytes", path, FIXTURE_MAX);
    buf[*len] = '\0';
    return buf;
}

struct fixture_case {
    char file[256], reason[64], detail[256];
};

/* Checks one manifest line; returns 0, or 1 after printing what differs. */
static int check_fixture_case(const struct fixture_case *c)
{
    size_t len;
    char *in = read_fixture(c->file, &len);
    char got_detail[256];
    struct tm_reading r;
    enum tm_reason why = tm_parse(in, len, NOW_MS, &r, got_detail, sizeof(got_detail));
    int bad = 0;

    if (strcmp(tm_reason_name(why), c->reason) != 0) {
        print_error("%s: got %s (%s), want %s (%s)\n", c->file, tm_reason_name(why), got_detail, c->reason, c->detail);
        bad = 1;
    } else if (why == TM_OK) {
        size_t want_len;
        char *want = read_fixture(c->detail, &want_len);
        if (want_len > 0 && want[want_len - 1] == '\n')
            want[--want_len] = '\0';
        char out[TM_MAX_PAYLOAD + 1];
        int n = tm_serialize(&r, out, sizeof(out));
        if (n < 0 || strcmp(out, want) != 0) {
            print_error("%s: normalized\n  got  %s\n  want %s\n", c->file, out, want);
            bad = 1;
        }
        free(want);
    } else if (why == TM_INVALID_JSON ? !strstr(got_detail, c->detail) : strcmp(got_detail, c->detail) != 0) {
        print_error("%s: %s detail \"%s\", want \"%s\"\n", c->file, c->reason, got_detail, c->detail);
        bad = 1;
    }
    tm_reading_release(&r);
    free(in);
    return bad;
}

/* Loads cases.tsv; fails loudly if it is missing or malformed. */
static struct fixture_case *load_manifest(size_t *count)
{
    char path[2048];
    snprintf(path, sizeof(path), "%s/cases.tsv", fixture_dir);
    FILE *f = fopen(path, "r");
    if (!f)
        fail_msg("fixture manifest %s missing (%s): run from the repository root or set FLEETSYNC_FIXTURES", path,
                 strerror(errno));
    size_t cap = 256, n = 0;
    struct fixture_case *cases = calloc(cap, sizeof(*cases));
    assert_non_null(cases);
    char line[1024];
    int lineno = 0;
    while (fgets(line, sizeof(line), f)) {
        lineno++;
        line[strcspn(line, "\r\n")] = '\0';
        if (line[0] == '#' || line[0] == '\0')
            continue;
        if (n == cap)
            fail_msg("%s: more than %zu cases", path, cap);
        char *reason = strchr(line, '\t');
        char *det = reason ? strchr(reason + 1, '\t') : NULL;
        if (!det)
            fail_msg("%s:%d: want file<TAB>reason<TAB>detail", path, lineno);
        *reason++ = '\0';
        *det++ = '\0';
        if (strlen(line) >= sizeof(cases[n].file) || strlen(reason) >= sizeof(cases[n].reason) ||
            strlen(det) >= sizeof(cases[n].detail))
            fail_msg("%s:%d: a column is too long", path, lineno);
        memcpy(cases[n].file, line, strlen(line) + 1);
        memcpy(cases[n].reason, reason, strlen(reason) + 1);
        memcpy(cases[n].detail, det, strlen(det) + 1);
        n++;
    }
    fclose(f);
    if (n == 0)
        fail_msg("%s lists no cases", path);
    *count = n;
    return cases;
}

static void every_fixture_gets_its_verdict(void **state)
{
    (void)state;
    size_t n;
    struct fixture_case *cases = load_manifest(&n);
    int bad = 0;
    for (size_t i = 0; i < n; i++)
        bad += check_fixture_case(&cases[i]);
    free(cases);
    if (bad)
        fail_msg("%d of %zu fixture cases failed", bad, n);
}

static void every_fixture_file_is_in_the_manifest(void **state)
{
    (void)state;
    size_t n;
    struct fixture_case *cases = load_manifest(&n);
    DIR *d = opendir(fixture_dir);
    if (!d)
        fail_msg("cannot open %s: %s", fixture_dir, strerror(errno));
    int orphans = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.' || strcmp(e->d_name, "cases.tsv") == 0)
            continue;
        bool listed = false;
        for (size_t i = 0; i < n && !listed; i++)
            listed = strcmp(cases[i].file, e->d_name) == 0 ||
                     (strcmp(cases[i].reason, "ok") == 0 && strcmp(cases[i].detail, e->d_name) == 0);
        if (!listed) {
            print_error("%s/%s is not in cases.tsv\n", fixture_dir, e->d_name);
            orphans++;
        }
    }
    closedir(d);
    free(cases);
    assert_int_equal(orphans, 0);
}

/* tm_parse reads flat objects of known fields without jansson; whatever it
 * decides must be what jansson alone (tm_parse_reference) decides: the
 * reason, the detail and every bit of the reading.  The inputs cover the
 * shapes the fast path takes and the ones where it must hand over. */
static void fast_path_agrees_with_jansson(void **state)
{
    (void)state;
    static const char *const inputs[] = {
        "{\"v\":1,\"truck_id\":\"TRK-000042\",\"ts\":1764287000000,\"seq\":17,\"lat\":52.520008,\"lon\":13.404954,"
        "\"speed_kmh\":63.5,\"heading_deg\":271.25,\"fuel_pct\":48.2,\"odometer_km\":183422.7,\"ignition\":true}",
        " {\n\t\"v\" : 1 , \"truck_id\":\"T1\", \"ts\":1764287000000,\"seq\":-0,\"lat\":-0.0,\"lon\":1E2,"
        "\"speed_kmh\":0e-400,\"ignition\":false}\r\n",
        /* decimals at the edges of the exact conversion, and past them */
        "{\"v\":1,\"truck_id\":\"T1\",\"ts\":1764287000000,\"seq\":1,\"lat\":0.1,\"lon\":-179.99999999999,"
        "\"speed_kmh\":1.23456789012345e2,\"ignition\":true,\"odometer_km\":1234567890123456789.5}",
        "{\"v\":1,\"truck_id\":\"T1\",\"ts\":1764287000000,\"seq\":1,\"lat\":0.000000000000000000001,\"lon\":1e22,"
        "\"speed_kmh\":0.00000000000000000000000001,\"ignition\":true,\"odometer_km\":1e23}",
        "{\"v\":1,\"truck_id\":\"T1\",\"ts\":1764287000000,\"seq\":1,\"lat\":45.00000000000000000001,\"lon\":9."
        "999999999999999,"
        "\"speed_kmh\":2.2250738585072011e-308,\"ignition\":true,\"odometer_km\":1.7976931348623157e308}",
        /* errors the fast path finds itself, in table order */
        "{}",
        "{\"v\":2}",
        "{\"v\":1.0,\"truck_id\":\"T1\"}",
        "{\"v\":1,\"truck_id\":\"bad id\",\"ts\":1}",
        "{\"v\":1,\"truck_id\":\"T1\",\"ts\":1764287000000.0,\"seq\":1}",
        "{\"v\":1,\"truck_id\":\"T1\",\"ts\":1764287000000,\"seq\":1,\"lat\":91,\"lon\":0,\"speed_kmh\":0,\"ignition\":"
        "true}",
        "{\"v\":1,\"truck_id\":\"T1\",\"ts\":1764287000000,\"seq\":1,\"lat\":0,\"lon\":0,\"speed_kmh\":0,\"ignition\":"
        "null}",
        "{\"v\":1,\"truck_id\":\"T1\",\"ts\":1764287000000,\"seq\":1,\"lat\":0,\"lon\":0,\"speed_kmh\":0,\"ignition\":"
        "true,"
        "\"heading_deg\":360}",
        /* shapes it hands to jansson */
        "{\"v\":1,\"truck_id\":\"T1\",\"ts\":1764287000000,\"seq\":1,\"lat\":0,\"lon\":0,\"speed_kmh\":0,\"ignition\":"
        "true,"
        "\"driver\":\"x\"}",
        "{\"v\":1,\"truck_id\":\"T\\u0031\",\"ts\":1764287000000,\"seq\":1,\"lat\":0,\"lon\":0,\"speed_kmh\":0,"
        "\"ignition\":true}",
        "{\"v\":1,\"v\":1}",
        "{\"v\":1,\"truck_id\":\"T1\",\"ts\":99999999999999999999,\"seq\":1}",
        "{\"v\":1,\"truck_id\":\"T1\",\"ts\":1764287000000,\"seq\":01}",
        "{\"v\":1,\"lat\":1e999}",
        "{\"v\":1,\"lat\":[1]}",
        "{\"v\":1,}",
        "{\"v\":1} x",
        "{\"v\":1",
        "[1]",
        "",
    };
    for (size_t k = 0; k < sizeof(inputs) / sizeof(inputs[0]); k++) {
        struct tm_reading a, b;
        char da[64], db[64], na[TM_MAX_PAYLOAD + 1], nb[TM_MAX_PAYLOAD + 1];
        const char *in = inputs[k];
        enum tm_reason ra = tm_parse(in, strlen(in), NOW_MS, &a, da, sizeof(da));
        enum tm_reason rb = tm_parse_reference(in, strlen(in), NOW_MS, &b, db, sizeof(db));
        if (ra != rb || strcmp(da, db) != 0)
            fail_msg("input %zu: %s (%s) against jansson's %s (%s)", k, tm_reason_name(ra), da, tm_reason_name(rb), db);
        if (ra == TM_OK) {
            int n = tm_serialize(&a, na, sizeof(na));
            assert_int_equal(n, tm_serialize(&b, nb, sizeof(nb)));
            assert_memory_equal(na, nb, (size_t)n);
            assert_memory_equal(&a.lat, &b.lat, sizeof(double));
            assert_memory_equal(&a.lon, &b.lon, sizeof(double));
            assert_memory_equal(&a.speed_kmh, &b.speed_kmh, sizeof(double));
            assert_memory_equal(&a.odometer_km, &b.odometer_km, sizeof(double));
        }
        tm_reading_release(&a);
        tm_reading_release(&b);
    }
}

/* ---- ids ------------------------------------------------------------------ */

static void id_rule_is_1_to_64_of_the_safe_characters(void **state)
{
    (void)state;
    char max[TM_TRUCK_ID_MAX + 2];
    memset(max, 'a', sizeof(max));
    assert_true(tm_valid_id("TRK-000001", 10));
    assert_true(tm_valid_id("a.b_c-D9", 8));
    assert_true(tm_valid_id(max, TM_TRUCK_ID_MAX));
    assert_false(tm_valid_id(max, TM_TRUCK_ID_MAX + 1));
    assert_false(tm_valid_id("", 0));
    assert_true(tm_valid_id("TRK-1/x", 5)); /* only n bytes count */
    static const char *const bad[] = {"TRK 1", "TRK/1", "TRK+1", "TRK#1", "trk\"1", "\xc3\xa9", "a:b", "a*b"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_false(tm_valid_id(bad[i], strlen(bad[i])));
    for (int c = 1; c < 256; c++) {
        int want = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
                   c == '-';
        char one = (char)c;
        assert_int_equal(tm_id_char(one), want);
        assert_int_equal(tm_valid_id(&one, 1), want);
    }
    assert_true(tm_id_chars("", 0)); /* an empty id prefix is allowed */
    assert_true(tm_id_chars("sec-", 4));
    assert_false(tm_id_chars("se c-", 5));
}

static void truck_ids_have_at_least_six_digits(void **state)
{
    (void)state;
    char buf[32];
    assert_int_equal(tm_format_truck_id(buf, sizeof(buf), "TRK-", 4, 0), 10);
    assert_string_equal(buf, "TRK-000001");
    tm_format_truck_id(buf, sizeof(buf), "TRK-", 4, 41);
    assert_string_equal(buf, "TRK-000042");
    tm_format_truck_id(buf, sizeof(buf), "sec-", 4, 1234566);
    assert_string_equal(buf, "sec-1234567");
    tm_format_truck_id(buf, sizeof(buf), "X", 1, 999999);
    assert_string_equal(buf, "X1000000");
    tm_format_truck_id(buf, sizeof(buf), "", 0, UINT32_MAX);
    assert_string_equal(buf, "4294967296");
    assert_int_equal(tm_format_truck_id(buf, 11, "TRK-", 4, 0), 10); /* just fits */
    assert_int_equal(tm_format_truck_id(buf, 10, "TRK-", 4, 0), 0);
    assert_string_equal(buf, "");
    assert_int_equal(tm_format_truck_id(buf, 0, "TRK-", 4, 0), 0);
}

static void gateway_ids_have_gw_and_four_digits(void **state)
{
    (void)state;
    char buf[32];
    assert_int_equal(tm_format_gateway_id(buf, sizeof(buf), "TRK-", 4, 0), 10);
    assert_string_equal(buf, "TRK-GW0001");
    tm_format_gateway_id(buf, sizeof(buf), "P", 1, 12344);
    assert_string_equal(buf, "PGW12345");
    assert_int_equal(tm_format_gateway_id(buf, 10, "TRK-", 4, 0), 0);
    assert_string_equal(buf, "");
}

int main(void)
{
    locate_fixtures();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(reason_names_are_designs_strings),
        cmocka_unit_test(valid_reading_parses_with_every_field),
        cmocka_unit_test(optional_fields_may_be_absent),
        cmocka_unit_test(a_refused_payload_leaves_an_empty_reading),
        cmocka_unit_test(detail_may_be_null_or_short),
        cmocka_unit_test(v_must_be_1),
        cmocka_unit_test(v_must_be_an_integer),
        cmocka_unit_test(v_missing_is_missing_field),
        cmocka_unit_test(truck_id_of_1_and_64_chars_is_accepted),
        cmocka_unit_test(truck_id_of_65_chars_is_bad),
        cmocka_unit_test(truck_id_empty_or_with_other_chars_is_bad),
        cmocka_unit_test(truck_id_must_be_a_string),
        cmocka_unit_test(ts_from_2000_01_01_is_accepted),
        cmocka_unit_test(ts_up_to_24h_ahead_is_accepted),
        cmocka_unit_test(ts_must_be_an_integer),
        cmocka_unit_test(ts_limit_saturates_near_int64_max),
        cmocka_unit_test(seq_from_0_is_accepted),
        cmocka_unit_test(seq_must_be_an_integer),
        cmocka_unit_test(lat_within_plus_minus_90),
        cmocka_unit_test(lon_within_plus_minus_180),
        cmocka_unit_test(speed_within_0_and_400),
        cmocka_unit_test(ignition_must_be_a_boolean),
        cmocka_unit_test(heading_from_0_below_360),
        cmocka_unit_test(fuel_from_0_to_100),
        cmocka_unit_test(odometer_from_0),
        cmocka_unit_test(every_required_field_missing_is_named),
        cmocka_unit_test(first_fault_in_table_order_wins),
        cmocka_unit_test(duplicate_key_beats_schema_faults),
        cmocka_unit_test(syntax_error_beats_an_earlier_duplicate_key),
        cmocka_unit_test(invalid_json_detail_says_where),
        cmocka_unit_test(top_level_not_an_object_is_invalid_json),
        cmocka_unit_test(nan_infinity_and_overflow_are_invalid_json),
        cmocka_unit_test(invalid_utf8_is_invalid_json),
        cmocka_unit_test(embedded_nul_is_invalid_json),
        cmocka_unit_test(duplicate_key_names_the_key),
        cmocka_unit_test(duplicate_key_detail_is_printable_ascii),
        cmocka_unit_test(payload_of_4096_bytes_is_accepted),
        cmocka_unit_test(payload_of_1_mib_is_too_large_without_parsing),
        cmocka_unit_test(normalized_form_never_exceeds_4096_bytes),
        cmocka_unit_test(normalized_form_follows_table_order),
        cmocka_unit_test(unknown_fields_are_kept_in_order_after_known_ones),
        cmocka_unit_test(unknown_fields_are_exposed_without_braces),
        cmocka_unit_test(deep_nesting_in_unknown_fields_is_kept),
        cmocka_unit_test(normalization_round_trips),
        cmocka_unit_test(numbers_take_their_shortest_form),
        cmocka_unit_test(plain_numbers_keep_their_digits_without_trailing_zeros),
        cmocka_unit_test(tm_normalize_judges_as_tm_parse_mqtt),
        cmocka_unit_test(integral_numbers_print_without_fraction),
        cmocka_unit_test(numbers_match_the_shortest_round_trip_scan),
        cmocka_unit_test(negative_zero_prints_as_zero),
        cmocka_unit_test(serialize_reports_a_short_buffer),
        cmocka_unit_test(a_reading_built_by_hand_serializes_to_valid_json),
        cmocka_unit_test(topic_kinds_are_recognized),
        cmocka_unit_test(hostile_topics_are_unknown),
        cmocka_unit_test(topic_id_of_64_chars_is_accepted),
        cmocka_unit_test(topic_id_that_does_not_fit_is_unknown),
        cmocka_unit_test(payload_for_another_truck_is_a_topic_mismatch),
        cmocka_unit_test(topic_mismatch_is_checked_right_after_truck_id),
        cmocka_unit_test(telemetry_on_a_topic_that_is_not_telemetry_is_refused),
        cmocka_unit_test(every_fixture_gets_its_verdict),
        cmocka_unit_test(every_fixture_file_is_in_the_manifest),
        cmocka_unit_test(fast_path_agrees_with_jansson),
        cmocka_unit_test(id_rule_is_1_to_64_of_the_safe_characters),
        cmocka_unit_test(truck_ids_have_at_least_six_digits),
        cmocka_unit_test(gateway_ids_have_gw_and_four_digits),
    };
    return cmocka_run_group_tests_name("telemetry", tests, NULL, NULL);
}
