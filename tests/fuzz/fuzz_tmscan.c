/*
 * fuzz_tmscan.c - differential libFuzzer target: the fast reader of
 * normalized telemetry (tm_scan) against the full parser (tm_parse).
 *
 * Properties checked on every input (abort() on violation):
 *   - tm_scan never crashes or reads out of bounds (ASan/UBSan);
 *   - whatever tm_scan accepts, tm_parse accepts with the same values;
 *   - whatever tm_parse accepts, tm_scan accepts its normalized form (with
 *     unknown fields allowed when the reading has some) with the same values.
 */
#include "core/telemetry.h"
#include "core/tmscan.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FUZZ_NOW_MS 1764288000000LL

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "fuzz_tmscan: %s\n", what);
        abort();
    }
}

static int same_opt(bool has, double a, double b)
{
    return has ? a == b : isnan(b);
}

static void agree(const struct tm_reading *r, const struct tm_fast *f)
{
    check(f->truck_id.n == strlen(r->truck_id) && memcmp(f->truck_id.p, r->truck_id, f->truck_id.n) == 0,
          "truck_id differs");
    check(f->ts_ms == r->ts_ms && f->seq == r->seq, "ts/seq differ");
    check(f->lat == r->lat && f->lon == r->lon && f->speed_kmh == r->speed_kmh, "position/speed differ");
    check(f->ignition == r->ignition, "ignition differs");
    check(same_opt(r->has_heading, r->heading_deg, f->heading_deg), "heading differs");
    check(same_opt(r->has_fuel, r->fuel_pct, f->fuel_pct), "fuel differs");
    check(same_opt(r->has_odometer, r->odometer_km, f->odometer_km), "odometer differs");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *buf = (const char *)data;
    struct tm_fast f;
    struct tm_reading r;
    int fast = tm_scan(buf, size, FUZZ_NOW_MS, 0, &f);
    enum tm_reason why = tm_parse(buf, size, FUZZ_NOW_MS, &r, NULL, 0);
    if (fast) {
        check(why == TM_OK, "tm_scan accepted what tm_parse refuses");
        agree(&r, &f);
    }
    if (why == TM_OK) {
        char norm[TM_MAX_PAYLOAD + 1];
        int n = tm_serialize(&r, norm, sizeof(norm));
        check(n > 0, "serialize failed");
        check(tm_scan(norm, (size_t)n, FUZZ_NOW_MS, r.extra_len > 0, &f) == 1, "tm_scan refused a normalized form");
        agree(&r, &f);
        check(f.has_extra == (r.extra_len > 0), "extra flag differs");
    }
    tm_reading_release(&r);
    return 0;
}
