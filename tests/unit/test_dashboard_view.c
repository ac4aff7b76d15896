/* What a dashboard WebSocket client receives: frames with deltas, clusters
 * when many, client message parsing, and the alerts ring. */
#include "dashboard/alerts.h"
#include "dashboard/proto.h"
#include "dashboard/view.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#define NOW 1764201600000LL

static void put(struct ds_store *s, const char *id, int64_t ts, double lat, double lon)
{
    struct ds_reading r = {.ts_ms = ts, .lat = lat, .lon = lon, .speed_kmh = 50, .ignition = 1};
    assert_int_equal(ds_store_reading(s, id, strlen(id), &r), DS_APPLIED);
}

static void first_frame_resets_then_only_changes_follow(void **state)
{
    (void)state;
    struct ds_store s;
    struct ds_view v;
    struct buf out;
    assert_int_equal(ds_store_init(&s, 100), 0);
    assert_int_equal(ds_view_init(&v), 0);
    out = (struct buf){.max = 1 << 20};
    put(&s, "A", NOW, 48, 11);
    put(&s, "B", NOW, 49, 12);
    put(&s, "FAR", NOW, -30, 150);
    assert_int_equal(ds_view_frame(&v, &s, NOW, &out), 0); /* no viewport yet */
    struct ds_bbox b = {10, 47, 13, 50};
    ds_view_set(&v, &b, 6);
    assert_int_equal(ds_view_frame(&v, &s, NOW, &out), 1);
    assert_non_null(strstr(out.p, "\"type\":\"trucks\""));
    assert_non_null(strstr(out.p, "\"reset\":true"));
    assert_non_null(strstr(out.p, "\"truck_id\":\"A\""));
    assert_non_null(strstr(out.p, "\"truck_id\":\"B\""));
    assert_null(strstr(out.p, "FAR"));
    /* Nothing changed: nothing to send. */
    assert_int_equal(ds_view_frame(&v, &s, NOW, &out), 0);
    /* A moves: only A. */
    put(&s, "A", NOW + 1000, 48.01, 11);
    assert_int_equal(ds_view_frame(&v, &s, NOW + 1000, &out), 1);
    assert_non_null(strstr(out.p, "\"reset\":false"));
    assert_non_null(strstr(out.p, "\"truck_id\":\"A\""));
    assert_null(strstr(out.p, "\"truck_id\":\"B\""));
    assert_non_null(strstr(out.p, "\"remove\":[]"));
    /* B leaves the view: removed by id. */
    put(&s, "B", NOW + 2000, 20, 20);
    assert_int_equal(ds_view_frame(&v, &s, NOW + 2000, &out), 1);
    assert_non_null(strstr(out.p, "\"upsert\":[]"));
    assert_non_null(strstr(out.p, "\"remove\":[\"B\"]"));
    /* Time alone makes A offline: that is a change too. */
    assert_int_equal(ds_view_frame(&v, &s, NOW + 1000 + DS_OFFLINE_AFTER_MS, &out), 1);
    assert_non_null(strstr(out.p, "\"state\":\"offline\""));
    buf_release(&out);
    ds_view_release(&v);
    ds_store_release(&s);
}

static void many_trucks_in_view_become_bounded_clusters(void **state)
{
    (void)state;
    struct ds_store s;
    struct ds_view v;
    struct buf out;
    char id[16];
    assert_int_equal(ds_store_init(&s, 100000), 0);
    assert_int_equal(ds_view_init(&v), 0);
    out = (struct buf){.max = 8 << 20};
    for (int i = 0; i < 50000; i++) {
        snprintf(id, sizeof(id), "T%d", i);
        put(&s, id, NOW, -60 + (i % 240) * 0.5, -170 + (i / 240) * 1.6);
    }
    struct ds_bbox world = {-180, -90, 180, 90};
    for (int zoom = 0; zoom <= 18; zoom += 2) {
        ds_view_set(&v, &world, zoom);
        assert_int_equal(ds_view_frame(&v, &s, NOW, &out), 1);
        assert_non_null(strstr(out.p, "\"type\":\"clusters\""));
        size_t n = 0;
        for (const char *p = out.p; (p = strstr(p, "\"count\":")); p++)
            n++;
        assert_true(n >= 1 && n <= DS_VIEW_MAX_FEATURES);
    }
    /* Unchanged clusters are not sent again; a change is. */
    assert_int_equal(ds_view_frame(&v, &s, NOW, &out), 0);
    put(&s, "T0", NOW + 1, 10, 10);
    assert_int_equal(ds_view_frame(&v, &s, NOW, &out), 1);
    /* Zoomed into a corner with few trucks: individual trucks again. */
    struct ds_bbox small = {-170.1, -60.1, -169.9, -59.9};
    ds_view_set(&v, &small, 14);
    assert_int_equal(ds_view_frame(&v, &s, NOW, &out), 1);
    assert_non_null(strstr(out.p, "\"type\":\"trucks\""));
    assert_non_null(strstr(out.p, "\"reset\":true"));
    buf_release(&out);
    ds_view_release(&v);
    ds_store_release(&s);
}

static void viewport_and_ping_messages_parse(void **state)
{
    (void)state;
    struct ds_client_msg m;
    const char *code = NULL;
    char detail[128];
    const char *vp = "{\"type\":\"viewport\",\"bbox\":[-200,40.5,20,60],\"zoom\":5.5}";
    assert_int_equal(ds_proto_parse(vp, strlen(vp), &m, &code, detail, sizeof(detail)), 0);
    assert_int_equal(m.type, DS_MSG_VIEWPORT);
    assert_true(m.bbox.min_lon == -180 && m.bbox.min_lat == 40.5 && m.bbox.max_lon == 20 && m.zoom == 5.5);
    assert_int_equal(ds_proto_parse("{\"type\":\"ping\"}", 15, &m, &code, detail, sizeof(detail)), 0);
    assert_int_equal(m.type, DS_MSG_PING);
}

static void bad_client_messages_name_their_fault(void **state)
{
    (void)state;
    static const struct {
        const char *msg, *code;
    } cases[] = {
        {"", "bad_json"},
        {"nope", "bad_json"},
        {"[1,2]", "bad_json"},
        {"{\"type\":\"viewport\",\"type\":\"ping\"}", "bad_json"},
        {"{}", "unknown_type"},
        {"{\"type\":7}", "unknown_type"},
        {"{\"type\":\"subscribe\"}", "unknown_type"},
        {"{\"type\":\"viewport\",\"zoom\":3}", "bad_viewport"},
        {"{\"type\":\"viewport\",\"bbox\":[1,2,3],\"zoom\":3}", "bad_viewport"},
        {"{\"type\":\"viewport\",\"bbox\":[1,2,3,\"4\"],\"zoom\":3}", "bad_viewport"},
        {"{\"type\":\"viewport\",\"bbox\":[10,2,3,4],\"zoom\":3}", "bad_viewport"},
        {"{\"type\":\"viewport\",\"bbox\":[1,2,3,4],\"zoom\":31}", "bad_viewport"},
        {"{\"type\":\"viewport\",\"bbox\":[1,2,3,4]}", "bad_viewport"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct ds_client_msg m;
        const char *code = NULL;
        char detail[128] = "";
        assert_int_equal(ds_proto_parse(cases[i].msg, strlen(cases[i].msg), &m, &code, detail, sizeof(detail)), -1);
        assert_string_equal(code, cases[i].code);
        assert_true(detail[0] != '\0');
    }
    char big[DS_PROTO_MAX_MSG + 2];
    memset(big, ' ', sizeof(big));
    struct ds_client_msg m;
    const char *code = NULL;
    assert_int_equal(ds_proto_parse(big, sizeof(big), &m, &code, NULL, 0), -1);
    assert_string_equal(code, "too_large");
}

static void alerts_are_idempotent_and_listed_since(void **state)
{
    (void)state;
    struct ds_alerts a;
    const struct ds_alert *added;
    assert_int_equal(ds_alerts_init(&a, 3), 0);
    const char *raised = "{\"alert_id\":\"T1:overspeed:1000\",\"state\":\"raised\",\"truck_id\":\"T1\","
                         "\"rule\":\"overspeed\",\"started_ms\":1000,\"detected_ms\":2000,\"lat\":1,\"lon\":2}";
    const char *cleared = "{\"alert_id\":\"T1:overspeed:1000\",\"state\":\"cleared\",\"truck_id\":\"T1\","
                          "\"rule\":\"overspeed\",\"started_ms\":1000,\"detected_ms\":2000,\"ended_ms\":5000}";
    assert_int_equal(ds_alerts_add(&a, raised, strlen(raised), 0, &added), 1);
    assert_int_equal(added->event_ms, 2000);
    assert_int_equal(ds_alerts_add(&a, raised, strlen(raised), 0, &added), 0);
    assert_int_equal(ds_alerts_add(&a, cleared, strlen(cleared), 0, &added), 1);
    assert_int_equal(added->event_ms, 5000);
    assert_int_equal(ds_alerts_add(&a, "{\"alert_id\":\"x\"}", 16, 0, NULL), -1);
    assert_int_equal(ds_alerts_add(&a, "garbage", 7, 0, NULL), -1);
    struct buf out = {.max = 1 << 16};
    ds_alerts_json_since(&a, 3000, 100, &out);
    assert_non_null(strstr(out.p, "\"state\":\"cleared\""));
    assert_null(strstr(out.p, "\"state\":\"raised\""));
    buf_reset(&out);
    ds_alerts_json_since(&a, 0, 100, &out);
    assert_true(strstr(out.p, "raised") < strstr(out.p, "cleared")); /* oldest first */
    /* The ring keeps the newest cap records. */
    char rec[256];
    for (int i = 0; i < 5; i++) {
        int n =
            snprintf(rec, sizeof(rec),
                     "{\"alert_id\":\"T%d:offline:1\",\"state\":\"raised\",\"truck_id\":\"T%d\",\"rule\":\"offline\","
                     "\"detected_ms\":%d}",
                     i, i, 10000 + i);
        assert_int_equal(ds_alerts_add(&a, rec, (size_t)n, 0, NULL), 1);
    }
    assert_int_equal(a.count, 3);
    buf_reset(&out);
    ds_alerts_json_since(&a, 0, 100, &out);
    assert_null(strstr(out.p, "T1:offline"));
    assert_non_null(strstr(out.p, "T4:offline"));
    buf_release(&out);
    ds_alerts_release(&a);
}

static void json_strings_are_escaped(void **state)
{
    (void)state;
    struct buf b = {.max = 64};
    jbuf_str(&b, "a\"b\\c\n\x01", 7);
    assert_string_equal(b.p, "\"a\\\"b\\\\c\\u000a\\u0001\"");
    buf_reset(&b);
    for (int i = 0; i < 100; i++)
        buf_puts(&b, "0123456789");
    assert_true(b.oom);
    assert_true(b.len < 64);
    buf_release(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(first_frame_resets_then_only_changes_follow),
        cmocka_unit_test(many_trucks_in_view_become_bounded_clusters),
        cmocka_unit_test(viewport_and_ping_messages_parse),
        cmocka_unit_test(bad_client_messages_name_their_fault),
        cmocka_unit_test(alerts_are_idempotent_and_listed_since),
        cmocka_unit_test(json_strings_are_escaped),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
