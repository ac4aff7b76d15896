/*
 * fuzz_detect_rules.c - libFuzzer target for the detector's two readers of
 * outside bytes: the --rules parser and the checkpoint loader.
 *
 * Properties checked on every input (abort() on violation):
 *   - detect_rules_parse never crashes, leaks or reads out of bounds;
 *   - a rejected input names the file and leaves the rules untouched;
 *   - accepted rules print (--print-rules) to text that parses back to the
 *     same rules, and every threshold is in its documented range;
 *   - the same bytes as a checkpoint (with its checksum appended, so that
 *     the loader's structure checks are reached): detect_engine_load_partition
 *     returns 0 or -1, -1 leaves the partition empty, and a loaded partition
 *     takes readings and saves again without a sanitizer report.
 */
#include "detect/engine.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "fuzz_detect_rules: %s\n", what);
        abort();
    }
}

static char *print(const struct detect_rules *r, size_t *len)
{
    char *text = NULL;
    FILE *f = open_memstream(&text, len);
    check(f != NULL, "open_memstream");
    detect_rules_print(r, f);
    fclose(f);
    return text;
}

static void on_alert(void *ctx, const struct detect_alert *a)
{
    char buf[1024];
    check(detect_alert_json(a, buf, sizeof(buf)) > 0, "alert record does not fit 1 KiB");
    (*(int *)ctx)++;
}

/* The checkpoint's trailing checksum (FNV-1a 64 of the bytes before it). */
static uint64_t fnv64(const uint8_t *s, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ s[i]) * 1099511628211ull;
    return h;
}

static void fuzz_checkpoint(const uint8_t *data, size_t size)
{
    char *buf = malloc(size + 8);
    check(buf != NULL, "malloc");
    memcpy(buf, data, size);
    uint64_t sum = fnv64(data, size);
    memcpy(buf + size, &sum, 8);
    struct detect_rules r;
    detect_rules_defaults(&r);
    int alerts = 0;
    struct detect_engine *e = detect_engine_new(&r, NULL, 1, on_alert, &alerts);
    check(e != NULL, "engine");
    struct detect_stats st;
    if (detect_engine_load_partition(e, 0, buf, size + 8) != 0) {
        detect_engine_stats(e, &st);
        check(st.trucks == 0 && st.held == 0, "a refused checkpoint left state behind");
    } else {
        detect_engine_stats(e, &st);
        struct detect_reading rd = {.truck_id = "TRK-000001",
                                    .truck_id_len = 10,
                                    .lat = 48.1,
                                    .lon = 11.5,
                                    .speed_kmh = 120,
                                    .ignition = true,
                                    .fuel_pct = 50};
        for (int i = 0; i < 20; i++) {
            rd.ts_ms = 1764201600000LL + i * 60000LL;
            rd.seq = i;
            check(detect_engine_feed(e, 0, &rd) == 0, "feed after load");
        }
        detect_engine_idle(e, 0, 1764300000000LL, 3600000);
        char *out = NULL;
        size_t len = 0, cap = 0;
        check(detect_engine_save_partition(e, 0, &out, &len, &cap) == 0, "save after load");
        free(out);
    }
    detect_engine_free(e);
    free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_checkpoint(data, size);
    struct detect_rules r, d;
    detect_rules_defaults(&r);
    detect_rules_defaults(&d);
    char err[512];
    size_t l0, l1;
    if (detect_rules_parse("f.json", (const char *)data, size, &r, err, sizeof(err)) != 0) {
        check(strncmp(err, "f.json", 6) == 0, "error does not name the file");
        char *a = print(&r, &l0), *b = print(&d, &l1);
        check(l0 == l1 && memcmp(a, b, l0) == 0, "rejected input changed the rules");
        free(a);
        free(b);
        return 0;
    }
    check(r.lateness_ms >= 0 && r.stationary_min_ms > 0 && r.towing_min_ms > 0 && r.fuel_drop_window_ms >= 0 &&
              r.overspeed_min_ms > 0 && r.offline_min_ms > 0 && r.stationary_radius_m > 0 && r.overspeed_kmh > 0,
          "accepted a threshold out of range");
    char *a = print(&r, &l0);
    struct detect_rules back;
    detect_rules_defaults(&back);
    check(detect_rules_parse("p.json", a, l0, &back, err, sizeof(err)) == 0, "printed rules do not parse");
    char *b = print(&back, &l1);
    check(l0 == l1 && memcmp(a, b, l0) == 0, "printed rules do not read back the same");
    free(a);
    free(b);
    return 0;
}
