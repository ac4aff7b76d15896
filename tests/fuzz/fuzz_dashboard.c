/*
 * fuzz_dashboard.c - libFuzzer target for what the dashboard reads
 * from outside: WebSocket client messages (src/dashboard/proto.h), and
 * records of truck-telemetry and truck-alerts on their way into the store,
 * a frame and the alerts ring.
 *
 * Properties checked on every input (abort() on violation):
 *   - ds_proto_parse never crashes or reads out of bounds (ASan/UBSan);
 *   - a refusal names one of the documented error codes and a NUL-terminated
 *     printable detail;
 *   - an accepted viewport is clamped to the world with min <= max and a
 *     zoom in 0..30;
 *   - a reading tm_scan() accepts goes into the store, a frame of the whole
 *     world renders, and an alert record is added or refused, all without a
 *     fault; an alerts listing stays within its buffer.
 */
#include "core/tmscan.h"
#include "dashboard/alerts.h"
#include "dashboard/jbuf.h"
#include "dashboard/proto.h"
#include "dashboard/view.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int ok, const char *what) {
    if (!ok) {
        fprintf(stderr, "fuzz_dashboard: %s\n", what);
        abort();
    }
}

#define FUZZ_NOW_MS 1764288000000LL

static void records(const char *buf, size_t size) {
    static struct ds_store store;
    static struct ds_alerts alerts;
    static struct ds_view view;
    static int ready;
    if (!ready) {
        check(ds_store_init(&store, 1000) == 0 && ds_alerts_init(&alerts, 64) == 0 && ds_view_init(&view) == 0,
              "init");
        struct ds_bbox world = {-180, -90, 180, 90};
        ds_view_set(&view, &world, 3);
        ready = 1;
    }
    struct tm_fast f;
    if (tm_scan(buf, size, FUZZ_NOW_MS, 1, &f)) {
        struct ds_reading r = {.ts_ms = f.ts_ms, .seq = f.seq, .lat = f.lat, .lon = f.lon, .speed_kmh = f.speed_kmh,
                               .ignition = f.ignition, .has_heading = f.heading_s.n > 0, .heading_deg = f.heading_deg,
                               .has_fuel = f.fuel_s.n > 0, .fuel_pct = f.fuel_pct};
        ds_store_reading(&store, f.truck_id.p, f.truck_id.n, &r);
    }
    struct jbuf out;
    jbuf_init(&out, 1 << 20);
    ds_view_frame(&view, &store, FUZZ_NOW_MS, &out);
    const struct ds_alert *added = NULL;
    ds_alerts_add(&alerts, buf, size, FUZZ_NOW_MS, &added);
    jbuf_reset(&out);
    ds_alerts_json_since(&alerts, 0, 16, &out);
    check(out.len <= out.max, "alerts listing overflowed its buffer");
    jbuf_release(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    records((const char *)data, size);
    struct ds_client_msg m;
    const char *code = NULL;
    char detail[128];
    memset(detail, 'x', sizeof(detail));
    if (ds_proto_parse((const char *)data, size, &m, &code, detail, sizeof(detail)) == 0) {
        check(m.type == DS_MSG_VIEWPORT || m.type == DS_MSG_PING, "unknown type accepted");
        if (m.type == DS_MSG_VIEWPORT) {
            check(m.bbox.min_lon >= -180 && m.bbox.max_lon <= 180 && m.bbox.min_lat >= -90 && m.bbox.max_lat <= 90,
                  "viewport outside the world");
            check(m.bbox.min_lon <= m.bbox.max_lon && m.bbox.min_lat <= m.bbox.max_lat, "inverted viewport");
            check(m.zoom >= 0 && m.zoom <= 30, "zoom out of range");
        }
        return 0;
    }
    check(code && (strcmp(code, "too_large") == 0 || strcmp(code, "bad_json") == 0 ||
                   strcmp(code, "unknown_type") == 0 || strcmp(code, "bad_viewport") == 0),
          "undocumented error code");
    check(memchr(detail, '\0', sizeof(detail)) != NULL, "detail not terminated");
    for (const char *p = detail; *p; p++)
        check(*p >= 0x20 && *p < 0x7f, "detail not printable");
    return 0;
}
