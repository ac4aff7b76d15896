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
 *     fault; an alerts listing stays within its buffer;
 *   - the API's query strings (bbox, since) and the login form: an accepted
 *     bbox is inside the world with min <= max, decoded fields are
 *     NUL-terminated within their buffers;
 *   - what a client sends for access (src/dashboard/auth.h): an auth-file
 *     line, a Cookie header, a session cookie value (never valid: it is not
 *     signed with this process's key), a Bearer header, Origin and Host.
 */
#include "core/tmscan.h"
#include "dashboard/alerts.h"
#include "dashboard/auth.h"
#include "dashboard/jbuf.h"
#include "dashboard/proto.h"
#include "dashboard/view.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "fuzz_dashboard: %s\n", what);
        abort();
    }
}

#define FUZZ_NOW_MS 1764288000000LL

static void records(const char *buf, size_t size)
{
    static struct ds_store store;
    static struct ds_alerts alerts;
    static struct ds_view view;
    static int ready;
    if (!ready) {
        check(ds_store_init(&store, 1000) == 0 && ds_alerts_init(&alerts, 64) == 0 && ds_view_init(&view) == 0, "init");
        struct ds_bbox world = {-180, -90, 180, 90};
        ds_view_set(&view, &world, 3);
        ready = 1;
    }
    struct tm_fast f;
    if (tm_scan(buf, size, FUZZ_NOW_MS, 1, &f)) {
        struct ds_reading r;
        ds_reading_from_scan(&f, &r);
        ds_store_reading(&store, f.truck_id.p, f.truck_id.n, &r);
    }
    struct buf out = {.max = 1 << 20};
    ds_view_frame(&view, &store, FUZZ_NOW_MS, &out);
    const struct ds_alert *added = NULL;
    ds_alerts_add(&alerts, buf, size, FUZZ_NOW_MS, &added);
    buf_reset(&out);
    ds_alerts_json_since(&alerts, 0, 16, &out);
    check(out.len <= out.max, "alerts listing overflowed its buffer");
    buf_release(&out);
}

static void api_and_access(const char *buf, size_t size)
{
    static struct ds_auth auth;
    static int ready;
    char err[256];
    if (!ready) {
        /* One login and one token, parsed from lines (no KDF run needed). */
        struct ds_cred c;
        check(ds_auth_init(&auth, 60000, err, sizeof(err)) == 0, "auth init");
        check(ds_auth_parse_line("fuzz:$token-sha256$00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff",
                                 &c, err, sizeof(err)) == 0,
              "token line");
        auth.cred[auth.n++] = c;
        ready = 1;
    }
    struct ds_bbox bb;
    if (ds_query_bbox(buf, size, &bb) == 0)
        check(bb.min_lon >= -180 && bb.max_lon <= 180 && bb.min_lat >= -90 && bb.max_lat <= 90 &&
                  bb.min_lon <= bb.max_lon && bb.min_lat <= bb.max_lat,
              "query bbox outside the world or inverted");
    long long since;
    ds_query_since(buf, size, &since);
    char user[DS_AUTH_NAME_MAX + 2], pw[DS_AUTH_SECRET_MAX + 2];
    if (ds_form_login(buf, size, user, sizeof(user), pw, sizeof(pw)) == 0)
        check(memchr(user, 0, sizeof(user)) && memchr(pw, 0, sizeof(pw)), "form field not terminated");

    /* The string APIs take NUL-terminated text, as civetweb hands headers. */
    char *text = malloc(size + 8);
    check(text != NULL, "malloc");
    memcpy(text, "Bearer ", 7);
    memcpy(text + 7, buf, size);
    text[size + 7] = '\0';
    const char *s = text + 7;
    struct ds_cred c;
    int r = ds_auth_parse_line(s, &c, err, sizeof(err));
    check(r == 1 || (r == -1 && memchr(err, 0, sizeof(err))) ||
              (r == 0 && (c.kind == DS_CRED_PBKDF2 || c.kind == DS_CRED_TOKEN || c.kind == DS_CRED_PLAIN)),
          "auth line: bad result");
    if (r == 0 && c.kind == DS_CRED_PBKDF2)
        check(c.iter >= DS_AUTH_ITER_MIN && c.salt_len >= 8 && c.salt_len <= sizeof(c.salt), "pbkdf2 parameters");
    char v[DS_AUTH_COOKIE_MAX + 1];
    int n = ds_auth_cookie(s, "fs_session", v, sizeof(v)), idx = -1;
    check(n < (int)sizeof(v), "cookie longer than its buffer");
    if (n >= 0)
        check(ds_auth_session_check(&auth, v, (size_t)n, FUZZ_NOW_MS, &idx) != 0, "forged session accepted");
    check(ds_auth_session_check(&auth, s, strlen(s), FUZZ_NOW_MS, &idx) != 0, "forged session accepted");
    ds_auth_check_header(&auth, text); /* "Bearer <input>": a token check */
    ds_auth_origin_ok(s, "127.0.0.1:8080");
    ds_auth_origin_ok("http://127.0.0.1:8080", s);
    ds_auth_host_loopback(s);
    static const char *const fuzz_hosts[] = {"dash.example.org", "10.0.0.5"};
    ds_auth_host_allowed(s, fuzz_hosts, 2, 1);
    free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    records((const char *)data, size);
    api_and_access((const char *)data, size);
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
