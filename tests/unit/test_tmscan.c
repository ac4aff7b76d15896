/* The fast reader of normalized telemetry (src/core/tmscan.h): what it
 * accepts, what it leaves to tm_parse(), and that its numbers are the ones
 * strtod() reads.  tests/fuzz/fuzz_tmscan.c checks agreement with tm_parse()
 * on arbitrary input. */
#include "core/telemetry.h"
#include "core/tmscan.h"

#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#define NOW 1764288000000LL

static int scan(const char *s, int allow_extra, struct tm_fast *f)
{
    return tm_scan(s, strlen(s), NOW, allow_extra, f);
}

static void test_normalized_form(void **state)
{
    (void)state;
    struct tm_fast f;
    const char *s = "{\"v\":1,\"truck_id\":\"TRK-000042\",\"ts\":1764201600123,\"seq\":1234,\"lat\":48.137154,"
                    "\"lon\":11.576124,\"speed_kmh\":72.5,\"ignition\":true,\"heading_deg\":184,\"fuel_pct\":63.2,"
                    "\"odometer_km\":123456.7}";
    assert_int_equal(scan(s, 0, &f), 1);
    assert_int_equal(f.truck_id.n, 10);
    assert_memory_equal(f.truck_id.p, "TRK-000042", 10);
    assert_true(f.ts_ms == 1764201600123LL && f.seq == 1234);
    assert_true(f.lat == 48.137154 && f.lon == 11.576124 && f.speed_kmh == 72.5);
    assert_true(f.heading_deg == 184 && f.fuel_pct == 63.2 && f.odometer_km == 123456.7);
    assert_true(f.ignition);
    assert_int_equal(f.lat_s.n, 9);
    assert_memory_equal(f.lat_s.p, "48.137154", 9);
    assert_false(f.has_extra);
}

static void test_optional_fields_absent(void **state)
{
    (void)state;
    struct tm_fast f;
    assert_int_equal(scan("{\"v\":1,\"truck_id\":\"a\",\"ts\":1764201600000,\"seq\":0,\"lat\":-1e-5,\"lon\":0,"
                          "\"speed_kmh\":0,\"ignition\":false}",
                          0, &f),
                     1);
    assert_true(isnan(f.heading_deg) && isnan(f.fuel_pct) && isnan(f.odometer_km));
    assert_int_equal(f.fuel_s.n, 0);
    assert_true(f.lat == -1e-5);
    assert_false(f.ignition);
}

static void test_declines(void **state)
{
    (void)state;
    struct tm_fast f;
    const char *declined[] = {
        /* another key order */
        "{\"truck_id\":\"a\",\"v\":1,\"ts\":1764201600000,\"seq\":0,\"lat\":1,\"lon\":1,\"speed_kmh\":0,\"ignition\":"
        "false}",
        /* numbers JSON does not allow */
        "{\"v\":1,\"truck_id\":\"a\",\"ts\":1764201600000,\"seq\":0,\"lat\":+1,\"lon\":1,\"speed_kmh\":0,\"ignition\":"
        "false}",
        "{\"v\":1,\"truck_id\":\"a\",\"ts\":1764201600000,\"seq\":01,\"lat\":1,\"lon\":1,\"speed_kmh\":0,\"ignition\":"
        "false}",
        /* out of range, bad id, escapes, spaces */
        "{\"v\":1,\"truck_id\":\"a\",\"ts\":1764201600000,\"seq\":0,\"lat\":91,\"lon\":1,\"speed_kmh\":0,\"ignition\":"
        "false}",
        "{\"v\":1,\"truck_id\":\"a'b\",\"ts\":1764201600000,\"seq\":0,\"lat\":1,\"lon\":1,\"speed_kmh\":0,\"ignition\":"
        "false}",
        "{\"v\":1,\"truck_id\":\"a\\u0041\",\"ts\":1764201600000,\"seq\":0,\"lat\":1,\"lon\":1,\"speed_kmh\":0,"
        "\"ignition\":false}",
        "{\"v\":1, "
        "\"truck_id\":\"a\",\"ts\":1764201600000,\"seq\":0,\"lat\":1,\"lon\":1,\"speed_kmh\":0,\"ignition\":false}",
        /* ts too far ahead of now, before 2000 */
        "{\"v\":1,\"truck_id\":\"a\",\"ts\":1864201600000,\"seq\":0,\"lat\":1,\"lon\":1,\"speed_kmh\":0,\"ignition\":"
        "false}",
        "{\"v\":1,\"truck_id\":\"a\",\"ts\":946684799999,\"seq\":0,\"lat\":1,\"lon\":1,\"speed_kmh\":0,\"ignition\":"
        "false}",
        /* truncated, trailing garbage */
        "{\"v\":1,\"truck_id\":\"a\",\"ts\":1764201600000,\"seq\":0,\"lat\":1,\"lon\":1,\"speed_kmh\":0,\"ignition\":"
        "false",
        "{\"v\":1,\"truck_id\":\"a\",\"ts\":1764201600000,\"seq\":0,\"lat\":1,\"lon\":1,\"speed_kmh\":0,\"ignition\":"
        "false}x",
    };
    for (size_t i = 0; i < sizeof(declined) / sizeof(declined[0]); i++)
        if (scan(declined[i], 1, &f) != 0)
            fail_msg("accepted %s", declined[i]);
}

static void test_extra_fields_only_when_allowed(void **state)
{
    (void)state;
    struct tm_fast f;
    const char *s = "{\"v\":1,\"truck_id\":\"a\",\"ts\":1764201600000,\"seq\":0,\"lat\":1,\"lon\":1,\"speed_kmh\":0,"
                    "\"ignition\":false,\"fuel_pct\":50,\"driver\":\"x\"}";
    assert_int_equal(scan(s, 0, &f), 0);
    assert_int_equal(scan(s, 1, &f), 1);
    assert_true(f.has_extra && f.fuel_pct == 50);
}

static void test_numbers_equal_strtod(void **state)
{
    (void)state;
    const char *nums[] = {"0.1",  "48.137154", "-179.999999",         "0.000001",         "89.99999999999999",
                          "1e-7", "12.5e3",    "0.30000000000000004", "123456789.123456", "7"};
    char buf[256];
    for (size_t i = 0; i < sizeof(nums) / sizeof(nums[0]); i++) {
        struct tm_fast f;
        snprintf(buf, sizeof(buf),
                 "{\"v\":1,\"truck_id\":\"a\",\"ts\":1764201600000,\"seq\":0,\"lat\":0,\"lon\":0,\"speed_kmh\":0,"
                 "\"ignition\":false,\"odometer_km\":%s}",
                 nums[i]);
        int ok = scan(buf, 0, &f);
        double want = strtod(nums[i], NULL);
        if (want < 0) {
            assert_int_equal(ok, 0);
            continue;
        }
        assert_int_equal(ok, 1);
        if (f.odometer_km != want)
            fail_msg("%s read as %.17g, strtod gives %.17g", nums[i], f.odometer_km, want);
    }
}

/* tm_read(): the normalized form is read in place; another producer's
 * key order is normalized into norm (the spans point there); a bad record
 * and a record without a value are refused with the reason. */
static void test_read(void **state)
{
    (void)state;
    struct tm_fast f;
    char norm[TM_MAX_PAYLOAD + 1], detail[128];
    int normalized = -1;
    const char *fast = "{\"v\":1,\"truck_id\":\"T1\",\"ts\":1764201600000,\"seq\":3,\"lat\":1.5,\"lon\":2,"
                       "\"speed_kmh\":0,\"ignition\":false}";
    assert_int_equal(tm_read(fast, strlen(fast), NOW, norm, sizeof(norm), &normalized, &f, detail, sizeof(detail)),
                     TM_OK);
    assert_int_equal(normalized, 0);
    assert_ptr_equal(f.truck_id.p, fast + 19);
    const char *other = "{\"truck_id\":\"T2\",\"v\":1,\"seq\":4,\"ts\":1764201600000,\"lon\":2,\"lat\":1.25,"
                        "\"ignition\":true,\"speed_kmh\":50.0}";
    assert_int_equal(tm_read(other, strlen(other), NOW, norm, sizeof(norm), &normalized, &f, detail, sizeof(detail)),
                     TM_OK);
    assert_int_equal(normalized, 1);
    assert_true(f.truck_id.p >= norm && f.truck_id.p < norm + sizeof(norm));
    assert_memory_equal(f.truck_id.p, "T2", 2);
    assert_true(f.seq == 4 && f.lat == 1.25 && f.lon == 2 && f.speed_kmh == 50 && f.ignition);
    const char *bad = "{\"v\":1,\"truck_id\":\"T3\",\"ts\":1764201600000,\"seq\":3,\"lat\":95,\"lon\":2,"
                      "\"speed_kmh\":0,\"ignition\":false}";
    assert_int_equal(tm_read(bad, strlen(bad), NOW, norm, sizeof(norm), &normalized, &f, detail, sizeof(detail)),
                     TM_OUT_OF_RANGE);
    assert_non_null(strstr(detail, "lat"));
    assert_int_equal(tm_read(NULL, 0, NOW, norm, sizeof(norm), &normalized, &f, detail, sizeof(detail)),
                     TM_INVALID_JSON);
    assert_int_equal(tm_read(other, strlen(other), NOW, norm, 16, &normalized, &f, NULL, 0), TM_TOO_LARGE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_normalized_form),
        cmocka_unit_test(test_optional_fields_absent),
        cmocka_unit_test(test_declines),
        cmocka_unit_test(test_extra_fields_only_when_allowed),
        cmocka_unit_test(test_numbers_equal_strtod),
        cmocka_unit_test(test_read),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
