/* Packed truck-hours (src/core/pack.h): every reading comes back bit for
 * bit, the compact forms are chosen where they are exact and the raw ones
 * where not, and the decoder refuses malformed rows with a reason. */
#include "core/pack.h"

#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#define H0 1764288000000LL /* 2025-11-28T00:00:00Z */

static struct pack_reading R(int64_t t_ms, int64_t seq, double lat, double lon) {
    return (struct pack_reading){.ts_ms = H0 + t_ms,
                                 .seq = seq,
                                 .lat = lat,
                                 .lon = lon,
                                 .speed_kmh = 72.5,
                                 .heading_deg = 184,
                                 .fuel_pct = 63.2,
                                 .odometer_km = 123456.7,
                                 .ignition = 1,
                                 .has_recv = 1,
                                 .recv_ms = H0 + t_ms + 35};
}

/* Splits COPY text into columns: \N is NULL.  The pointers point into
 * line, whose tabs become NULs. */
static void
split(char *line, const char *cols[PACK_NCOLS])
{
    int c = 0;
    char *p = line;
    for (;;) {
        char *tab = strchr(p, '\t');
        if (tab)
            *tab = '\0';
        assert_true(c < PACK_NCOLS);
        cols[c++] = strcmp(p, "\\N") == 0 ? NULL : p;
        if (!tab)
            break;
        p = tab + 1;
    }
    assert_int_equal(c, PACK_NCOLS);
}

static int same_double(double a, double b)
{
    return memcmp(&a, &b, sizeof(a)) == 0 || (isnan(a) && isnan(b));
}

static void assert_same(const struct pack_reading *a, const struct pack_reading *b, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(a[i].ts_ms, b[i].ts_ms);
        assert_int_equal(a[i].seq, b[i].seq);
        assert_int_equal(!!a[i].ignition, !!b[i].ignition);
        assert_int_equal(a[i].has_recv, b[i].has_recv);
        if (a[i].has_recv)
            assert_int_equal(a[i].recv_ms, b[i].recv_ms);
        const double va[] = {a[i].lat, a[i].lon, a[i].speed_kmh, a[i].heading_deg, a[i].fuel_pct, a[i].odometer_km};
        const double vb[] = {b[i].lat, b[i].lon, b[i].speed_kmh, b[i].heading_deg, b[i].fuel_pct, b[i].odometer_km};
        for (int j = 0; j < 6; j++)
            if (!same_double(va[j], vb[j]))
                fail_msg("reading %zu field %d: %.17g became %.17g", i, j, va[j], vb[j]);
    }
}

/* Encodes r, checks the text against expect (when given), decodes and
 * compares; returns the encoded text (free it). */
static char *round_trip(const struct pack_reading *r, size_t n, const char *expect)
{
    struct buf b = {0};
    char err[200] = "";
    if (pack_encode(r, n, H0, &b, err, sizeof(err)) != 0)
        fail_msg("encode: %s", err);
    assert_false(b.oom);
    char *text = strdup(b.p);
    if (expect)
        assert_string_equal(text, expect);
    const char *cols[PACK_NCOLS];
    split(b.p, cols);
    struct pack_reading *back = calloc(n, sizeof(*back));
    size_t got = 0;
    if (pack_decode(cols, H0, back, n, &got, err, sizeof(err)) != 0)
        fail_msg("decode: %s", err);
    assert_int_equal(got, n);
    assert_same(r, back, n);
    free(back);
    buf_release(&b);
    return text;
}

static void test_one_reading(void **state)
{
    (void)state;
    struct pack_reading r = R(1500, 7, 48.137154, 11.576124);
    /* n, scales, then ts, seq, ignition, record time, lat, lon, speed,
     * heading, fuel, odometer; nothing raw, nothing big */
    free(round_trip(&r, 1, "1\t{6,6,1,0,1,1}\t{1500,7,1,35,48137154,11576124,725,184,632,1234567}\t\\N\t\\N"));
}

static void test_steady_drive_is_differences(void **state)
{
    (void)state;
    struct pack_reading r[4];
    for (int i = 0; i < 4; i++) {
        r[i] = R(1000 * i, 100 + i, 48.0 + 0.0001 * i, 11.5 - 0.0002 * i);
        r[i].odometer_km = 1000.0 + 0.5 * i;
    }
    char *t = round_trip(r, 4, NULL);
    assert_string_equal(t, "4\t{4,4,1,0,1,1}\t{0,1000,1000,1000,100,1,1,1,1,1,1,1,35,35,35,35,"
                           "480000,1,1,1,115000,-2,-2,-2,725,725,725,725,184,184,184,184,632,0,0,0,10000,5,5,5}"
                           "\t\\N\t\\N");
    free(t);
}

static void test_equal_ts_and_seq_restart(void **state)
{
    (void)state;
    /* Two readings at the same ms (seq tells them apart), then a device
     * that rebooted: seq falls back to 0 (a negative difference). */
    struct pack_reading r[] = {R(10, 500, 1, 2), R(10, 501, 1, 2), R(20, 0, 1, 2), R(3599999, 1, 1, 2)};
    char *t = round_trip(r, 4, NULL);
    assert_non_null(strstr(t, "\t{10,0,10,3599979,500,1,-501,1,"));
    free(t);
}

static void test_extreme_coordinates(void **state)
{
    (void)state;
    /* Across the antimeridian and from pole to pole: the differences of
     * the finest scale overflow int4, a coarser one holds them. */
    struct pack_reading r[] = {R(0, 1, -90, -180), R(1, 2, 90, 180), R(2, 3, -90, -180)};
    char *t = round_trip(r, 3, NULL);
    assert_non_null(strstr(t, "\t{0,0,1,0,1,1}\t"));
    assert_non_null(strstr(t, ",35,35,35,-90,180,-180,-180,360,-360,725,"));
    free(t);
    /* Seven decimals at both ends of the longitude: differences of 3.6e9
     * do not fit int4, so the values go raw. */
    struct pack_reading w[] = {R(0, 1, 0, -179.9999999), R(1, 2, 0, 179.9999999)};
    t = round_trip(w, 2, NULL);
    assert_non_null(strstr(t, "\t{0,NULL,1,0,1,1}\t"));
    assert_non_null(strstr(t, "\t{NULL,NULL,-179.9999999,179.9999999,NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL}\t"));
    free(t);
}

static void test_inexact_values_go_raw(void **state)
{
    (void)state;
    struct pack_reading r[] = {R(0, 1, 0.1 + 0.2, 1e-300), R(1, 2, 48.1234567891, 5e-324)};
    r[0].odometer_km = 1e300;
    r[1].odometer_km = 1.7976931348623157e308;
    r[0].speed_kmh = 0.5;
    r[1].speed_kmh = -0.0; /* -0 keeps its sign: raw */
    char *t = round_trip(r, 2, NULL);
    assert_non_null(strstr(t, "\t{NULL,NULL,NULL,0,1,NULL}\t"));
    assert_non_null(strstr(t, "\t{0.30000000000000004,48.1234567891,1e-300,4.94065645841247e-324,0.5,-0,"
                              "NULL,NULL,NULL,NULL,1e+300,1.7976931348623157e+308}\t"));
    free(t);
}

static void test_absent_fields(void **state)
{
    (void)state;
    struct pack_reading r[] = {R(0, 1, 1, 1), R(1, 2, 1, 1), R(2, 3, 1, 1), R(3, 4, 1, 1)};
    for (int i = 0; i < 4; i++)
        r[i].heading_deg = r[i].odometer_km = NAN;
    r[1].fuel_pct = NAN; /* a difference skips the absent value */
    r[2].fuel_pct = 60.2;
    r[0].has_recv = r[3].has_recv = 0;
    char *t = round_trip(r, 4, NULL);
    /* heading and odometer absent everywhere: no scale, NULL elements */
    assert_string_equal(t, "4\t{0,0,1,NULL,1,NULL}\t{0,1,1,1,1,1,1,1,1,1,1,1,NULL,35,35,NULL,1,0,0,0,1,0,0,0,"
                           "725,725,725,725,NULL,NULL,NULL,NULL,632,NULL,-30,30,NULL,NULL,NULL,NULL}\t\\N\t\\N");
    free(t);
}

static void test_big_seq_and_record_time(void **state)
{
    (void)state;
    struct pack_reading r[] = {R(0, 0, 1, 1), R(1, INT64_MAX, 1, 1), R(2, 0, 1, 1)};
    r[1].recv_ms = INT64_MIN; /* a producer's timestamp: any int64 */
    r[2].recv_ms = INT64_MAX;
    char *t = round_trip(r, 3, NULL);
    assert_non_null(strstr(t, "\t{0,1,1,NULL,NULL,NULL,1,1,1,NULL,NULL,NULL,"));
    assert_non_null(
        strstr(t, "\t\\N\t{0,9223372036854775807,0,1764288000035,-9223372036854775808,9223372036854775807}"));
    free(t);
}

static void test_encode_refuses(void **state)
{
    (void)state;
    struct buf b = {0};
    char err[200];
    struct pack_reading r[] = {R(5, 1, 1, 1), R(5, 1, 1, 1)};
    assert_int_equal(pack_encode(r, 0, H0, &b, err, sizeof(err)), -1);
    assert_int_equal(pack_encode(r, 2, H0, &b, err, sizeof(err)), -1); /* a repeat */
    assert_non_null(strstr(err, "not after"));
    r[1].ts_ms = H0 + PACK_HOUR_MS;
    assert_int_equal(pack_encode(r, 2, H0, &b, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "not in the hour"));
    r[1] = R(6, 1, NAN, 1);
    assert_int_equal(pack_encode(r, 2, H0, &b, err, sizeof(err)), -1);
    assert_string_equal(err, "reading 1: lat is missing");
    r[1] = R(6, 1, 1, INFINITY);
    assert_int_equal(pack_encode(r, 2, H0, &b, err, sizeof(err)), -1);
    assert_string_equal(err, "reading 1: lon is not finite");
    assert_int_equal(b.len, 0);
    buf_release(&b);
}

/* A valid row with column col replaced by text (followed by tail when
 * given) must be refused with a reason that says why. */
static void refuse(int col, const char *text, const char *tail, const char *why)
{
    struct pack_reading r[] = {R(0, 1, 1, 1), R(1000, 2, 1.5, 1)};
    struct buf b = {0};
    char err[200], joined[400];
    assert_int_equal(pack_encode(r, 2, H0, &b, err, sizeof(err)), 0);
    const char *cols[PACK_NCOLS];
    split(b.p, cols);
    if (tail) {
        snprintf(joined, sizeof(joined), "%s%s", text, tail);
        text = joined;
    }
    cols[col] = text;
    struct pack_reading out[4];
    size_t n = 99;
    if (pack_decode(cols, H0, out, 4, &n, err, sizeof(err)) != -1)
        fail_msg("column %d = %s: accepted", col, text ? text : "NULL");
    assert_int_equal(n, 0);
    if (!strstr(err, why))
        fail_msg("column %d = %s: \"%s\" does not say \"%s\"", col, text ? text : "NULL", err, why);
    buf_release(&b);
}

static void test_decode_refuses(void **state)
{
    (void)state;
    /* The valid row: 2 readings, d = ts 0,1000 seq 1,1 ign 1,1 recv 35,35
     * lat 1,0 / 15,5 (scale 1) lon 1,0 speed 725,725 heading 184,184
     * fuel 632,0 odometer 1234567,0. */
    refuse(0, "3", NULL, "d: not an array of 30");
    refuse(0, "5", NULL, "n: not a count");
    refuse(0, "0", NULL, "n: not a count");
    refuse(0, NULL, NULL, "n: not a count");
    refuse(1, "{1,0,1,0,1}", NULL, "s: not an array");
    refuse(1, "{10,0,1,0,1,1}", NULL, "s: lat's scale");
    refuse(1, "{-1,0,1,0,1,1}", NULL, "s: lat's scale");
    refuse(1, "{NULL,0,1,0,1,1}", NULL, "lat: reading 0 is in both"); /* raw, yet k in d */
    refuse(2, NULL, NULL, "d: not an array");
    refuse(2, "{0,3600000,", "1,1,1,1,35,35,15,5,1,0,725,725,184,184,632,0,1234567,0}", "ts: reading 1");
    refuse(2, "{5,-1,", "1,1,1,1,35,35,15,5,1,0,725,725,184,184,632,0,1234567,0}", "ts: reading 1");
    refuse(2, "{0,NULL,", "1,1,1,1,35,35,15,5,1,0,725,725,184,184,632,0,1234567,0}", "ts: reading 1");
    refuse(2, "{0,2147483648,", "1,1,1,1,35,35,15,5,1,0,725,725,184,184,632,0,1234567,0}", "d: not an array");
    refuse(2, "{0,1000,", "1,1,1,1,35,35,15,5,1,0,725,725,184,184,632,0,1234567,0", "d: not an array");
    refuse(2, "{0,1000,", "1,1,1,1,35,35,15,5,1,0,725,725,184,184,632,0,1234567,0}x", "d: not an array");
    refuse(2, "{0,0,", "1,0,1,1,35,35,15,5,1,0,725,725,184,184,632,0,1234567,0}", "seq: reading 1 is not after");
    refuse(2, "{0,0,", "1,NULL,1,1,35,35,15,5,1,0,725,725,184,184,632,0,1234567,0}", "seq: reading 1 needs");
    refuse(2, "{0,1000,", "1,1,1,2,35,35,15,5,1,0,725,725,184,184,632,0,1234567,0}", "ignition: reading 1");
    refuse(2, "{0,1000,", "1,1,1,1,35,35,15,NULL,1,0,725,725,184,184,632,0,1234567,0}", "lat: reading 1 has none");
    refuse(3, "{NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL,1}", NULL, "odometer_km: reading 1 is in both");
    refuse(3, "{NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL,Infinity}", NULL, "r: not an array");
    refuse(4, "{1,2,NULL,NULL}", NULL, "seq: reading 0 needs");
    refuse(4, "{NULL,NULL,1,NULL}", NULL, "recv: reading 0 is in both");
}

static void test_decode_lat_never_absent(void **state)
{
    (void)state;
    /* Fields that may be absent decode as NAN; lat may not be. */
    const char *cols[PACK_NCOLS] = {"1", "{NULL,0,0,NULL,NULL,NULL}", "{0,0,0,NULL,NULL,1,2,NULL,NULL,NULL}", NULL,
                                    NULL};
    struct pack_reading out[1];
    size_t n;
    char err[200];
    assert_int_equal(pack_decode(cols, H0, out, 1, &n, err, sizeof(err)), -1);
    assert_string_equal(err, "lat: reading 0 has none");
    cols[3] = "{5,NULL,NULL,NULL,NULL,NULL}";
    assert_int_equal(pack_decode(cols, H0, out, 1, &n, err, sizeof(err)), 0);
    assert_true(out[0].lat == 5 && out[0].lon == 1 && out[0].speed_kmh == 2);
    assert_true(isnan(out[0].heading_deg) && isnan(out[0].fuel_pct) && isnan(out[0].odometer_km));
    assert_false(out[0].has_recv);
}

static void test_random_hours(void **state)
{
    (void)state;
    /* A drive sampled every 1-3 s with jittered decimals of 0-9 digits. */
    srand(7);
    static struct pack_reading r[3000];
    for (int pass = 0; pass < 20; pass++) {
        size_t n = 1 + (size_t)(rand() % 3000);
        int64_t t = rand() % 1000;
        double lat = 40 + rand() % 10, lon = -5 + rand() % 10;
        for (size_t i = 0; i < n; i++) {
            int digits = rand() % 10;
            double q = pow(10, digits);
            lat += (rand() % 2001 - 1000) / 1e6;
            lon += (rand() % 2001 - 1000) / 1e6;
            r[i] = R(t, (int64_t)i, round(lat * q) / q, round(lon * q) / q);
            r[i].speed_kmh = (rand() % 1300) / 10.0;
            r[i].heading_deg = rand() % 7 ? (rand() % 3600) / 10.0 : NAN;
            r[i].fuel_pct = rand() % 5 ? (rand() % 1001) / 10.0 : NAN;
            r[i].ignition = rand() % 2;
            r[i].has_recv = rand() % 4 != 0;
            t += 1000 + rand() % 2000;
            if (t >= PACK_HOUR_MS) {
                n = i + 1;
                break;
            }
        }
        free(round_trip(r, n, NULL));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_one_reading),
        cmocka_unit_test(test_steady_drive_is_differences),
        cmocka_unit_test(test_equal_ts_and_seq_restart),
        cmocka_unit_test(test_extreme_coordinates),
        cmocka_unit_test(test_inexact_values_go_raw),
        cmocka_unit_test(test_absent_fields),
        cmocka_unit_test(test_big_seq_and_record_time),
        cmocka_unit_test(test_encode_refuses),
        cmocka_unit_test(test_decode_refuses),
        cmocka_unit_test(test_decode_lat_never_absent),
        cmocka_unit_test(test_random_hours),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
