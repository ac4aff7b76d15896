/* Bridge routing: where each MQTT message goes and with which key, value
 * and dead-letter reason. */
#include "bridge/bridge.h"

#include "core/clock.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void route(const char *topic, const char *payload, int64_t received_ms, struct route *r)
{
    struct spool_record rec = {
        .offset = 0, .received_ms = received_ms, .topic = topic, .payload = payload, .payload_len = strlen(payload)};
    route_record(&rec, r);
}

static struct route r;

/* A valid telemetry payload for truck at ts (speed written as 72.0). */
static const char *payload(const char *truck, int64_t ts)
{
    static char p[512];
    snprintf(p, sizeof(p),
             "{\"v\":1,\"truck_id\":\"%s\",\"ts\":%lld,\"seq\":7,\"lat\":48.1,\"lon\":11.5,"
             "\"speed_kmh\":72.0,\"ignition\":true}",
             truck, (long long)ts);
    return p;
}

static void valid_telemetry_goes_to_truck_telemetry_keyed_by_truck(void **state)
{
    (void)state;
    int64_t now = wall_ms();
    route("fleet/trucks/TRK-000042/telemetry", payload("TRK-000042", now), now, &r);
    assert_int_equal(r.dest, ROUTE_TELEMETRY);
    assert_int_equal(r.key_len, 10);
    assert_memory_equal(r.key, "TRK-000042", 10);
    char want[512];
    snprintf(want, sizeof(want),
             "{\"v\":1,\"truck_id\":\"TRK-000042\",\"ts\":%lld,\"seq\":7,\"lat\":48.1,\"lon\":11.5,"
             "\"speed_kmh\":72,\"ignition\":true}",
             (long long)now);
    assert_int_equal(r.value_len, strlen(want));
    assert_memory_equal(r.value, want, r.value_len);
}

static void invalid_telemetry_goes_to_the_dlq_with_its_reason(void **state)
{
    (void)state;
    route("fleet/trucks/TRK-000042/telemetry", "{\"v\":1,", wall_ms(), &r);
    assert_int_equal(r.dest, ROUTE_DLQ);
    assert_string_equal(r.error, "invalid_json");
    assert_int_equal(r.key_len, strlen("fleet/trucks/TRK-000042/telemetry"));
    assert_memory_equal(r.value, "{\"v\":1,", 7); /* the original bytes */
}

static void a_payload_for_another_truck_is_a_topic_mismatch(void **state)
{
    (void)state;
    int64_t now = wall_ms();
    route("fleet/trucks/TRK-000042/telemetry", payload("TRK-000043", now), now, &r);
    assert_int_equal(r.dest, ROUTE_DLQ);
    assert_string_equal(r.error, "topic_mismatch");
    assert_string_equal(r.error_detail, "truck_id");
}

static void the_receive_time_judges_ts_in_future(void **state)
{
    (void)state;
    /* A reading 2 h ahead of "now" is fine; judged against a receive time two
     * days earlier (a resend from an old spool) the same bytes are too new. */
    int64_t now = wall_ms(), ts = now + 2 * 3600 * 1000LL;
    route("fleet/trucks/TRK-1/telemetry", payload("TRK-1", ts), now, &r);
    assert_int_equal(r.dest, ROUTE_TELEMETRY);
    route("fleet/trucks/TRK-1/telemetry", payload("TRK-1", ts), now - 2 * FS_DAY_MS, &r);
    assert_int_equal(r.dest, ROUTE_DLQ);
    assert_string_equal(r.error, "ts_in_future");
}

static void truck_presence_goes_to_truck_status(void **state)
{
    (void)state;
    route("fleet/trucks/TRK-000042/status", "offline", 1764201600123LL, &r);
    assert_int_equal(r.dest, ROUTE_STATUS);
    assert_memory_equal(r.key, "TRK-000042", 10);
    const char *want = "{\"id\":\"TRK-000042\",\"kind\":\"truck\",\"status\":\"offline\",\"ts\":1764201600123}";
    assert_int_equal(r.value_len, strlen(want));
    assert_memory_equal(r.value, want, r.value_len);
}

static void gateway_presence_goes_to_truck_status(void **state)
{
    (void)state;
    route("fleet/gateways/GW-7/status", "online", 5, &r);
    assert_int_equal(r.dest, ROUTE_STATUS);
    const char *want = "{\"id\":\"GW-7\",\"kind\":\"gateway\",\"status\":\"online\",\"ts\":5}";
    assert_memory_equal(r.value, want, strlen(want));
}

static void unknown_presence_words_are_dead_letters(void **state)
{
    (void)state;
    route("fleet/trucks/TRK-1/status", "maybe", 5, &r);
    assert_int_equal(r.dest, ROUTE_DLQ);
    assert_string_equal(r.error, "out_of_range");
    assert_string_equal(r.error_detail, "status");
    route("fleet/trucks/TRK-1/status", "", 5, &r);
    assert_int_equal(r.dest, ROUTE_DLQ);
    assert_string_equal(r.error, "missing_field");
}

static void a_topic_with_a_bad_id_is_a_dead_letter(void **state)
{
    (void)state;
    route("fleet/trucks/bad id!/telemetry", "{}", 5, &r);
    assert_int_equal(r.dest, ROUTE_DLQ);
    assert_string_equal(r.error, "bad_truck_id");
    assert_string_equal(r.error_detail, "topic");
}

/* A payload larger than a Kafka record takes (a spool made by an earlier
 * version may hold one) is a dead letter carrying its first BRIDGE_MAX_KEPT
 * bytes: it can be produced, and does not block the records behind it. */
static void a_huge_payload_is_a_dead_letter_cut_to_fit_kafka(void **state)
{
    (void)state;
    static char big[1024 * 1024];
    memset(big, 'x', sizeof(big));
    struct spool_record rec = {
        .received_ms = 5, .topic = "fleet/trucks/T1/telemetry", .payload = big, .payload_len = sizeof(big)};
    route_record(&rec, &r);
    assert_int_equal(r.dest, ROUTE_DLQ);
    assert_string_equal(r.error, "too_large");
    assert_ptr_equal(r.value, big);
    assert_int_equal(r.value_len, BRIDGE_MAX_KEPT);
    assert_true(BRIDGE_MAX_KEPT + 2048 < 1000000);
    rec.topic = "fleet/trucks/T1/status";
    route_record(&rec, &r);
    assert_string_equal(r.error, "out_of_range");
    assert_int_equal(r.value_len, BRIDGE_MAX_KEPT);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(valid_telemetry_goes_to_truck_telemetry_keyed_by_truck),
        cmocka_unit_test(invalid_telemetry_goes_to_the_dlq_with_its_reason),
        cmocka_unit_test(a_payload_for_another_truck_is_a_topic_mismatch),
        cmocka_unit_test(the_receive_time_judges_ts_in_future),
        cmocka_unit_test(truck_presence_goes_to_truck_status),
        cmocka_unit_test(gateway_presence_goes_to_truck_status),
        cmocka_unit_test(unknown_presence_words_are_dead_letters),
        cmocka_unit_test(a_topic_with_a_bad_id_is_a_dead_letter),
        cmocka_unit_test(a_huge_payload_is_a_dead_letter_cut_to_fit_kafka),
    };
    return cmocka_run_group_tests_name("bridge_route", tests, NULL, NULL);
}
