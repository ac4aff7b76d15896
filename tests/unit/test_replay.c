/* fleetsync replay: --since and --at, billing's day start, where a group keeps
 * its offsets, and the offset each partition moves to. */
#include "admin/replay.h"

#include "core/clock.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#define MIN_MS (60LL * 1000)
#define HOUR_MS (60 * MIN_MS)
/* 2026-11-27T00:00:00Z */
#define DAY_20261127_MS 1795737600000LL

static int64_t since(const char *s)
{
    char err[256];
    int64_t ms = -1;
    assert_int_equal(replay_parse_duration_ms(s, &ms, err, sizeof(err)), 0);
    return ms;
}

static int since_fails(const char *s, const char *reason)
{
    char err[256] = "";
    int64_t ms = 42;
    int rc = replay_parse_duration_ms(s, &ms, err, sizeof(err));
    assert_int_equal(ms, 42);
    assert_non_null(strstr(err, reason));
    return rc;
}

static int64_t at(const char *s)
{
    char err[256];
    int64_t ms = -1;
    if (replay_parse_iso8601_ms(s, &ms, err, sizeof(err)) != 0)
        fail_msg("'%s' refused: %s", s, err);
    return ms;
}

static int at_fails(const char *s, const char *reason)
{
    char err[256] = "";
    int64_t ms = 42;
    int rc = replay_parse_iso8601_ms(s, &ms, err, sizeof(err));
    assert_int_equal(ms, 42);
    if (!strstr(err, reason))
        fail_msg("'%s': expected a reason with '%s', got '%s'", s, reason, err);
    return rc;
}

static void durations_take_seconds_minutes_hours_days(void **state)
{
    (void)state;
    assert_int_equal(since("90s"), 90 * 1000);
    assert_int_equal(since("30m"), 30 * MIN_MS);
    assert_int_equal(since("2h"), 2 * HOUR_MS);
    assert_int_equal(since("7d"), 7 * FS_DAY_MS);
    assert_int_equal(since("3650d"), REPLAY_MAX_SINCE_MS);
}

static void bad_durations_are_refused_with_a_reason(void **state)
{
    (void)state;
    assert_int_equal(since_fails("", "not a duration"), -1);
    assert_int_equal(since_fails("2", "not a duration"), -1);
    assert_int_equal(since_fails("h", "not a duration"), -1);
    assert_int_equal(since_fails("-2h", "not a duration"), -1);
    assert_int_equal(since_fails("2 h", "not a duration"), -1);
    assert_int_equal(since_fails("1h30m", "not a duration"), -1);
    assert_int_equal(since_fails("2w", "unknown unit"), -1);
    assert_int_equal(since_fails("2H", "unknown unit"), -1);
    assert_int_equal(since_fails("0s", "empty"), -1);
    assert_int_equal(since_fails("3651d", "longer than"), -1);
    assert_int_equal(since_fails("99999999999999999999s", "longer than"), -1);
}

static void iso8601_reads_utc_and_offsets(void **state)
{
    (void)state;
    assert_int_equal(at("2026-11-27T00:00:00Z"), DAY_20261127_MS);
    assert_int_equal(at("2026-11-27T01:30Z"), DAY_20261127_MS + 90 * MIN_MS);
    assert_int_equal(at("2026-11-27T01:30:00.250Z"), DAY_20261127_MS + 90 * MIN_MS + 250);
    assert_int_equal(at("2026-11-27T01:30:00.2Z"), DAY_20261127_MS + 90 * MIN_MS + 200);
    assert_int_equal(at("2026-11-27T01:30:00.123456Z"), DAY_20261127_MS + 90 * MIN_MS + 123);
    assert_int_equal(at("2026-11-27 01:30:00z"), DAY_20261127_MS + 90 * MIN_MS);
    /* The same instant written in other zones. */
    assert_int_equal(at("2026-11-27T02:30:00+01:00"), DAY_20261127_MS + 90 * MIN_MS);
    assert_int_equal(at("2026-11-27T02:30:00+0100"), DAY_20261127_MS + 90 * MIN_MS);
    assert_int_equal(at("2026-11-27T02:30:00+01"), DAY_20261127_MS + 90 * MIN_MS);
    assert_int_equal(at("2026-11-26T20:00:00-05:30"), DAY_20261127_MS + 90 * MIN_MS);
    assert_int_equal(at("1970-01-01T00:00:00Z"), 0);
    assert_int_equal(at("2024-02-29T12:00:00Z"), 1709208000000LL);
}

static void bad_iso8601_is_refused_with_a_reason(void **state)
{
    (void)state;
    assert_int_equal(at_fails("2026-11-27T01:30:00", "no time zone"), -1);
    assert_int_equal(at_fails("2026-11-27", "no time of day"), -1);
    assert_int_equal(at_fails("yesterday", "not an ISO 8601 time"), -1);
    assert_int_equal(at_fails("2026-11-27T1:30Z", "not an ISO 8601 time"), -1);
    assert_int_equal(at_fails("2026-11-27T01:30:00.Z", "not an ISO 8601 time"), -1);
    assert_int_equal(at_fails("2026-11-27T01:30:00ZZ", "not an ISO 8601 time"), -1);
    assert_int_equal(at_fails("2026-11-27T01:30:00+1", "not an ISO 8601 time"), -1);
    assert_int_equal(at_fails("2026-11-27T01:30:00 UTC", "not an ISO 8601 time"), -1);
    assert_int_equal(at_fails("2026-13-01T00:00:00Z", "not a valid date"), -1);
    assert_int_equal(at_fails("2026-02-29T00:00:00Z", "not a valid date"), -1);
    assert_int_equal(at_fails("2026-11-31T00:00:00Z", "not a valid date"), -1);
    assert_int_equal(at_fails("2026-11-27T24:00:00Z", "not a valid date"), -1);
    assert_int_equal(at_fails("2026-11-27T01:60:00Z", "not a valid date"), -1);
    assert_int_equal(at_fails("1969-12-31T23:59:59Z", "not a valid date"), -1);
    assert_int_equal(at_fails("2026-11-27T01:30:00+24:00", "invalid UTC offset"), -1);
    char longer[128];
    memset(longer, '9', sizeof(longer) - 1);
    longer[sizeof(longer) - 1] = '\0';
    assert_int_equal(at_fails(longer, "not an ISO 8601 time"), -1);
}

static void billing_rewinds_to_the_start_of_the_utc_day(void **state)
{
    (void)state;
    assert_int_equal(fs_day_start_ms(DAY_20261127_MS), DAY_20261127_MS);
    assert_int_equal(fs_day_start_ms(DAY_20261127_MS + 1), DAY_20261127_MS);
    assert_int_equal(fs_day_start_ms(DAY_20261127_MS + FS_DAY_MS - 1), DAY_20261127_MS);
    assert_int_equal(fs_day_start_ms(-1), -FS_DAY_MS);
    /* 00:30 in Berlin is still the previous UTC day. */
    assert_int_equal(replay_effective_from_ms(REPLAY_GROUP_BILLING, at("2026-11-27T00:30:00+01:00")),
                     DAY_20261127_MS - FS_DAY_MS);
    assert_int_equal(replay_effective_from_ms(REPLAY_GROUP_BILLING, DAY_20261127_MS + 5 * HOUR_MS), DAY_20261127_MS);
}

static void other_groups_rewind_to_the_moment_itself(void **state)
{
    (void)state;
    int64_t t = DAY_20261127_MS + 5 * HOUR_MS + 17;
    assert_int_equal(replay_effective_from_ms(REPLAY_GROUP_HISTORY, t), t);
    assert_int_equal(replay_effective_from_ms(REPLAY_GROUP_DASHBOARD, t), t);
    assert_int_equal(replay_effective_from_ms("fleetsync-billing-v2", t), t);
}

static void sinks_keep_offsets_in_postgresql(void **state)
{
    (void)state;
    assert_int_equal(replay_group_store(REPLAY_GROUP_HISTORY, 0), REPLAY_STORE_PG);
    assert_int_equal(replay_group_store(REPLAY_GROUP_BILLING, 0), REPLAY_STORE_PG);
    assert_int_equal(replay_group_store("my-sink", 1), REPLAY_STORE_PG);
    assert_int_equal(replay_group_store(REPLAY_GROUP_DASHBOARD, 0), REPLAY_STORE_KAFKA);
    assert_int_equal(replay_group_store(REPLAY_GROUP_DETECTOR, 0), REPLAY_STORE_KAFKA);
    assert_int_equal(replay_group_store("my-consumer", 0), REPLAY_STORE_KAFKA);
    assert_true(replay_group_is_pg_sink(REPLAY_GROUP_HISTORY));
    assert_false(replay_group_is_pg_sink("fleetsync-history2"));
}

static void known_groups_have_default_topics(void **state)
{
    (void)state;
    const char *t[8];
    assert_int_equal(replay_default_topics(REPLAY_GROUP_DASHBOARD, t, 8), 3);
    assert_string_equal(t[0], "truck-telemetry");
    assert_string_equal(t[1], "truck-status");
    assert_string_equal(t[2], "truck-alerts");
    assert_int_equal(replay_default_topics(REPLAY_GROUP_DETECTOR, t, 8), 1);
    assert_string_equal(t[0], "truck-telemetry");
    assert_int_equal(replay_default_topics(REPLAY_GROUP_HISTORY, t, 8), 2);
    assert_string_equal(t[0], "truck-telemetry");
    assert_string_equal(t[1], "truck-alerts");
    assert_int_equal(replay_default_topics(REPLAY_GROUP_BILLING, t, 8), 1);
    assert_string_equal(t[0], "truck-telemetry");
    assert_int_equal(replay_default_topics("my-consumer", t, 8), 0);
    assert_int_equal(replay_default_topics(REPLAY_GROUP_DASHBOARD, t, 2), 2);
}

static void a_topic_prefix_scopes_the_topics(void **state)
{
    (void)state;
    assert_true(replay_topic_in_scope(NULL, "truck-telemetry"));
    assert_true(replay_topic_in_scope("", "truck-telemetry"));
    assert_true(replay_topic_in_scope("e2e1-", "e2e1-truck-telemetry"));
    assert_false(replay_topic_in_scope("e2e1-", "truck-telemetry"));
    assert_false(replay_topic_in_scope("e2e1-", "e2e12-truck-telemetry"));
}

static struct replay_part part(int64_t low, int64_t high, int64_t at_ts, int64_t old)
{
    struct replay_part p;
    memset(&p, 0, sizeof(p));
    p.low = low;
    p.high = high;
    p.at_ts = at_ts;
    p.old = old;
    replay_choose_target(&p);
    return p;
}

static void target_is_the_first_offset_at_the_moment(void **state)
{
    (void)state;
    struct replay_part p = part(0, 100, 40, 100);
    assert_int_equal(p.target, 40);
    assert_int_equal(p.reprocess, 60);
    assert_true(p.changed);
}

static void a_partition_without_newer_messages_goes_to_its_end(void **state)
{
    (void)state;
    struct replay_part p = part(0, 100, REPLAY_NO_OFFSET, 100);
    assert_int_equal(p.target, 100);
    assert_int_equal(p.reprocess, 0);
    assert_false(p.changed);
    p = part(0, 0, REPLAY_NO_OFFSET, REPLAY_NO_OFFSET);
    assert_int_equal(p.target, 0);
    assert_int_equal(p.reprocess, 0);
    assert_true(p.changed);
}

static void replay_never_moves_a_group_forward(void **state)
{
    (void)state;
    /* The group is at 30, the moment's first offset is 40: keep 30. */
    struct replay_part p = part(0, 100, 40, 30);
    assert_int_equal(p.target, 30);
    assert_int_equal(p.reprocess, 0);
    assert_false(p.changed);
    p = part(0, 100, REPLAY_NO_OFFSET, 30);
    assert_int_equal(p.target, 30);
    assert_false(p.changed);
}

static void a_group_without_a_position_reads_from_the_target_to_the_end(void **state)
{
    (void)state;
    struct replay_part p = part(0, 100, 40, REPLAY_NO_OFFSET);
    assert_int_equal(p.target, 40);
    assert_int_equal(p.reprocess, 60);
    assert_true(p.changed);
}

static void targets_stay_inside_the_log(void **state)
{
    (void)state;
    /* Retention removed offsets below 50. */
    struct replay_part p = part(50, 100, 10, 90);
    assert_int_equal(p.target, 50);
    assert_int_equal(p.reprocess, 40);
    /* A stored position past the end (topic recreated) counts up to the end. */
    p = part(0, 100, 40, 500);
    assert_int_equal(p.target, 40);
    assert_int_equal(p.reprocess, 60);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(durations_take_seconds_minutes_hours_days),
        cmocka_unit_test(bad_durations_are_refused_with_a_reason),
        cmocka_unit_test(iso8601_reads_utc_and_offsets),
        cmocka_unit_test(bad_iso8601_is_refused_with_a_reason),
        cmocka_unit_test(billing_rewinds_to_the_start_of_the_utc_day),
        cmocka_unit_test(other_groups_rewind_to_the_moment_itself),
        cmocka_unit_test(sinks_keep_offsets_in_postgresql),
        cmocka_unit_test(known_groups_have_default_topics),
        cmocka_unit_test(a_topic_prefix_scopes_the_topics),
        cmocka_unit_test(target_is_the_first_offset_at_the_moment),
        cmocka_unit_test(a_partition_without_newer_messages_goes_to_its_end),
        cmocka_unit_test(replay_never_moves_a_group_forward),
        cmocka_unit_test(a_group_without_a_position_reads_from_the_target_to_the_end),
        cmocka_unit_test(targets_stay_inside_the_log),
    };
    return cmocka_run_group_tests_name("replay", tests, NULL, NULL);
}
