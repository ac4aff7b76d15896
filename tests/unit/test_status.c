/* fleetsync status: lag per partition and group, the consumption rate, which
 * groups are shown, and the JSON and table renderings. */
#include "admin/status.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

static void add_part(struct status_group *g, const char *topic, int32_t partition, int64_t committed, int64_t low,
                     int64_t end)
{
    struct status_part *p = status_group_part(g, topic, partition, 1);
    assert_non_null(p);
    p->committed = committed;
    p->low = low;
    p->end = end;
}

static void lag_is_end_minus_committed(void **state)
{
    (void)state;
    assert_int_equal(status_lag(10, 0, 13), 3);
    assert_int_equal(status_lag(13, 0, 13), 0);
}

static void a_group_at_or_past_the_end_has_no_lag(void **state)
{
    (void)state;
    /* A topic recreated under a group: its stored position is past the end. */
    assert_int_equal(status_lag(500, 0, 100), 0);
}

static void a_partition_without_a_commit_lags_by_what_is_retained(void **state)
{
    (void)state;
    assert_int_equal(status_lag(STATUS_UNKNOWN, 0, 40), 40);
    assert_int_equal(status_lag(STATUS_UNKNOWN, 25, 40), 15);
}

static void an_unknown_end_gives_an_unknown_lag(void **state)
{
    (void)state;
    assert_int_equal(status_lag(10, STATUS_UNKNOWN, STATUS_UNKNOWN), STATUS_UNKNOWN);
}

static void group_lag_is_the_sum_over_partitions_sorted(void **state)
{
    (void)state;
    struct status_report r;
    memset(&r, 0, sizeof(r));
    struct status_group *g = status_report_group(&r, "fleetsync-detector", 1);
    add_part(g, "truck-telemetry", 1, 4, 0, 4);
    add_part(g, "truck-alerts", 0, 1, 0, 2);
    add_part(g, "truck-telemetry", 0, 10, 0, 13);
    status_group_finish(g);
    assert_int_equal(g->lag, 4);
    assert_string_equal(g->parts[0].topic, "truck-alerts");
    assert_int_equal(g->parts[1].partition, 0);
    assert_int_equal(g->parts[1].lag, 3);
    assert_int_equal(g->parts[2].partition, 1);
    assert_int_equal(g->parts[2].lag, 0);
    status_report_release(&r);
}

static void group_lag_is_unknown_when_no_end_is_known(void **state)
{
    (void)state;
    struct status_report r;
    memset(&r, 0, sizeof(r));
    struct status_group *g = status_report_group(&r, "fleetsync-history", 1);
    add_part(g, "truck-telemetry", 0, 10, STATUS_UNKNOWN, STATUS_UNKNOWN);
    status_group_finish(g);
    assert_int_equal(g->lag, STATUS_UNKNOWN);
    status_report_release(&r);
}

static void rate_is_positions_moved_per_second(void **state)
{
    (void)state;
    struct status_report r;
    memset(&r, 0, sizeof(r));
    struct status_group *a = status_report_group(&r, "before", 1);
    add_part(a, "t", 0, 100, 0, 1000);
    add_part(a, "t", 1, 50, 0, 1000);
    struct status_group *b = status_report_group(&r, "after", 1);
    a = status_report_group(&r, "before", 0); /* the array may have moved */
    add_part(b, "t", 0, 300, 0, 1000);
    add_part(b, "t", 1, 150, 0, 1000);
    assert_true(status_rate_per_s(a, b, 2000) == 150.0);
    status_report_release(&r);
}

static void a_rewind_or_a_new_partition_adds_nothing_to_the_rate(void **state)
{
    (void)state;
    struct status_report r;
    memset(&r, 0, sizeof(r));
    status_report_group(&r, "before", 1);
    status_report_group(&r, "after", 1);
    struct status_group *a = &r.groups[0], *b = &r.groups[1];
    add_part(a, "t", 0, 500, 0, 1000);
    add_part(a, "t", 1, STATUS_UNKNOWN, 0, 1000);
    add_part(b, "t", 0, 100, 0, 1000); /* replayed */
    add_part(b, "t", 1, 70, 0, 1000);  /* first commit */
    add_part(b, "t", 2, 80, 0, 1000);  /* not in the first sample */
    assert_true(status_rate_per_s(a, b, 1000) == 0.0);
    status_report_release(&r);
}

static void rate_needs_two_samples_apart(void **state)
{
    (void)state;
    struct status_group g;
    memset(&g, 0, sizeof(g));
    assert_true(status_rate_per_s(NULL, &g, 1000) < 0);
    assert_true(status_rate_per_s(&g, &g, 0) < 0);
}

static void fleetsync_groups_and_named_ones_are_shown(void **state)
{
    (void)state;
    const char *named[] = {"analytics"};
    assert_int_equal(status_group_selected("fleetsync-history", NULL, 0), 1);
    assert_int_equal(status_group_selected("analytics", named, 1), 1);
    assert_int_equal(status_group_selected("analytics", NULL, 0), 0);
    assert_int_equal(status_group_selected("fleetsync", named, 1), 0);
}

static void exit_code_is_1_when_a_service_is_down_or_kafka_silent(void **state)
{
    (void)state;
    struct status_report r;
    memset(&r, 0, sizeof(r));
    r.service_count = 2;
    r.services[0] = (struct status_service){"mosquitto", 1, 18830, 1};
    r.services[1] = (struct status_service){"kafka", 0, 19092, 1};
    assert_int_equal(status_exit_code(&r), 0);
    r.services[0].healthy = 0;
    assert_int_equal(status_exit_code(&r), 1);
    r.services[0].healthy = 1;
    strcpy(r.kafka_error, "cannot reach Kafka");
    assert_int_equal(status_exit_code(&r), 1);
}

static void json_has_designs_shape_with_nulls_for_unknowns(void **state)
{
    (void)state;
    struct status_report r;
    memset(&r, 0, sizeof(r));
    r.service_count = 1;
    r.services[0] = (struct status_service){"kafka", 42, 19092, 1};
    struct status_group *g = status_report_group(&r, "fleetsync-history", 1);
    g->store = STATUS_STORE_PG;
    g->members = 1;
    g->rate = 12.34;
    g->last_commit_ms = 1795740123000LL; /* 2026-11-27T00:42:03Z */
    add_part(g, "truck-telemetry", 0, 10, 0, 13);
    add_part(g, "truck-telemetry", 1, 7, STATUS_UNKNOWN, STATUS_UNKNOWN);
    status_group_finish(g);
    char *s = status_json(&r);
    assert_non_null(s);
    assert_string_equal(s, "{\"services\":[{\"name\":\"kafka\",\"pid\":42,\"port\":19092,\"healthy\":true}],"
                           "\"groups\":[{\"group\":\"fleetsync-history\",\"members\":1,\"lag\":3,\"partitions\":["
                           "{\"topic\":\"truck-telemetry\",\"partition\":0,\"committed\":10,\"end\":13,\"lag\":3},"
                           "{\"topic\":\"truck-telemetry\",\"partition\":1,\"committed\":7,\"end\":null,\"lag\":null}],"
                           "\"store\":\"postgresql\",\"rate\":12.3,\"last_commit\":\"2026-11-27T00:42:03.000Z\"}]}");
    free(s);
    status_report_release(&r);
}

static void json_names_an_unreachable_kafka(void **state)
{
    (void)state;
    struct status_report r;
    memset(&r, 0, sizeof(r));
    strcpy(r.kafka_error, "cannot reach Kafka at 127.0.0.1:1");
    char *s = status_json(&r);
    assert_non_null(s);
    assert_string_equal(s, "{\"services\":[],\"groups\":[],\"kafka_error\":\"cannot reach Kafka at 127.0.0.1:1\"}");
    free(s);
}

static void table_aligns_groups_and_partitions(void **state)
{
    (void)state;
    struct status_report r;
    memset(&r, 0, sizeof(r));
    r.service_count = 1;
    r.services[0] = (struct status_service){"mosquitto", 0, 18830, 0};
    struct status_group *g = status_report_group(&r, "fleetsync-dashboard", 1);
    g->members = 2;
    strcpy(g->who, "rdkafka@/127.0.0.1, rdkafka@/127.0.0.1");
    add_part(g, "truck-status", 3, 5, 0, 9);
    status_group_finish(g);
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_non_null(f);
    status_print_table(f, &r);
    fclose(f);
    assert_non_null(strstr(buf, "mosquitto  external  18830  DOWN\n"));
    assert_non_null(strstr(buf, "fleetsync-dashboard        2          4         -  kafka       -\n"));
    assert_non_null(strstr(buf, "    members: rdkafka@/127.0.0.1, rdkafka@/127.0.0.1\n"));
    assert_non_null(strstr(buf, "    truck-status     3            5            9          4\n"));
    free(buf);
    status_report_release(&r);
}

static void ingest_metrics_are_summed_over_workers(void **state)
{
    (void)state;
    struct status_ingest in = {0};
    const char *w0 = "# HELP fleetsync_ingest_connections Client connections open.\n"
                     "fleetsync_ingest_connections 12\n"
                     "fleetsync_ingest_connects_total 40\n"
                     "fleetsync_ingest_readings_total 100\n"
                     "fleetsync_ingest_acknowledged_total 99\n"
                     "fleetsync_ingest_kafka_paused_seconds 1.5\n";
    const char *w1 = "fleetsync_ingest_connections 8\nfleetsync_ingest_readings_total 50\n"
                     "fleetsync_ingest_acknowledged_total 50\n";
    assert_int_equal(status_ingest_add(&in, w0), 1);
    assert_int_equal(status_ingest_add(&in, w1), 1);
    assert_int_equal(status_ingest_add(&in, "fleetsync_bridge_connected 1\n"), 0);
    assert_true(in.connections == 20 && in.readings == 150 && in.acknowledged == 149 && in.paused_s == 1.5);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(lag_is_end_minus_committed),
        cmocka_unit_test(a_group_at_or_past_the_end_has_no_lag),
        cmocka_unit_test(a_partition_without_a_commit_lags_by_what_is_retained),
        cmocka_unit_test(an_unknown_end_gives_an_unknown_lag),
        cmocka_unit_test(group_lag_is_the_sum_over_partitions_sorted),
        cmocka_unit_test(group_lag_is_unknown_when_no_end_is_known),
        cmocka_unit_test(rate_is_positions_moved_per_second),
        cmocka_unit_test(a_rewind_or_a_new_partition_adds_nothing_to_the_rate),
        cmocka_unit_test(rate_needs_two_samples_apart),
        cmocka_unit_test(fleetsync_groups_and_named_ones_are_shown),
        cmocka_unit_test(exit_code_is_1_when_a_service_is_down_or_kafka_silent),
        cmocka_unit_test(json_has_designs_shape_with_nulls_for_unknowns),
        cmocka_unit_test(json_names_an_unreachable_kafka),
        cmocka_unit_test(table_aligns_groups_and_partitions),
        cmocka_unit_test(ingest_metrics_are_summed_over_workers),
    };
    return cmocka_run_group_tests_name("status", tests, NULL, NULL);
}
