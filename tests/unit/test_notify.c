/* notify's pure parts: the routes file (good and bad files, each error
 * naming its line or field), matching, the webhook signature against an
 * HMAC-SHA256 vector computed with openssl, the verdict of an HTTP answer,
 * the backoff schedule's bounds, the commit frontier with out-of-order
 * completions, and the queue bound that sends a record to the dead
 * letters. */
#include "core/rule.h"
#include "notify/frontier.h"
#include "notify/policy.h"
#include "notify/routes.h"
#include "notify/sign.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#define SECRET "\"secret\":\"whsec-test-0123456789\""

static const char good[] =
    "{\n"
    "  \"destinations\": {\n"
    "    \"ops\": {\"url\": \"https://ops.example/hook\", " SECRET ", \"timeout_ms\": 2000,\n"
    "            \"queue\": 50, \"parallel\": 2, \"backoff_base_ms\": 100,\n"
    "            \"backoff_max_ms\": 5000, \"retry_for_s\": 600},\n"
    "    \"theft\": {\"url\": \"http://127.0.0.1:8099/t\", " SECRET "}\n"
    "  },\n"
    "  \"routes\": [\n"
    "    {\"to\": [\"ops\"]},\n"
    "    {\"rules\": [\"stationary_engine_on\", \"moving_ignition_off\"],\n"
    "     \"truck_prefix\": [\"TRK-\", \"VAN-\"], \"states\": [\"raised\"], \"to\": [\"theft\"]}\n"
    "  ]\n"
    "}\n";

static void parse_ok(const char *text, struct notify_routes *r)
{
    char err[512] = "";
    int rc = notify_routes_parse(text, strlen(text), r, err, sizeof(err));
    if (rc != 0)
        fail_msg("parse failed: %s", err);
}

/* The error of a bad file; the test checks it holds want. */
static void parse_fails_with(const char *text, const char *want)
{
    struct notify_routes r;
    char err[512] = "";
    assert_int_equal(notify_routes_parse(text, strlen(text), &r, err, sizeof(err)), -1);
    if (!strstr(err, want))
        fail_msg("error \"%s\" does not say \"%s\"", err, want);
    assert_int_equal(r.dest_count, 0);
    assert_null(r.dests);
}

static void routes_good_file_reads_every_field_and_defaults(void **state)
{
    (void)state;
    struct notify_routes r;
    parse_ok(good, &r);
    assert_int_equal(r.dest_count, 2);
    assert_int_equal(r.route_count, 2);
    const struct notify_dest *ops = &r.dests[0], *theft = &r.dests[1];
    assert_string_equal(ops->name, "ops");
    assert_string_equal(ops->url, "https://ops.example/hook");
    assert_string_equal(ops->secret, "whsec-test-0123456789");
    assert_int_equal(ops->secret_len, 21);
    assert_int_equal(ops->timeout_ms, 2000);
    assert_int_equal(ops->queue, 50);
    assert_int_equal(ops->parallel, 2);
    assert_int_equal(ops->backoff_base_ms, 100);
    assert_int_equal(ops->backoff_max_ms, 5000);
    assert_int_equal(ops->retry_for_ms, 600000);
    assert_string_equal(theft->name, "theft");
    assert_int_equal(theft->timeout_ms, 5000);
    assert_int_equal(theft->queue, 1000);
    assert_int_equal(theft->parallel, 4);
    assert_int_equal(theft->backoff_base_ms, 500);
    assert_int_equal(theft->backoff_max_ms, 30000);
    assert_int_equal(theft->retry_for_ms, 86400000);
    assert_int_equal(r.routes[1].prefix_count, 2);
    assert_int_equal(r.routes[1].states, NOTIFY_RAISED);
    notify_routes_release(&r);
}

static void routes_syntax_error_names_line_and_column(void **state)
{
    (void)state;
    parse_fails_with("{\"destinations\": {\n\"a\": {\"url\": \"http://x\",,}}}", "line 2, column");
}

static void routes_bad_fields_are_named(void **state)
{
    (void)state;
    parse_fails_with("[]", "must be an object");
    parse_fails_with("{\"routes\": [{\"to\": [\"a\"]}]}", "destinations: missing");
    parse_fails_with("{\"destinations\": {\"a\": {\"url\": \"http://x\", " SECRET "}}}", "routes: missing");
    parse_fails_with("{\"destinations\": {\"a\": {\"url\": \"ftp://x\", " SECRET "}}, \"routes\": [{\"to\": [\"a\"]}]}",
                     "destinations.a.url: must start with http:// or https://");
    parse_fails_with("{\"destinations\": {\"a\": {\"url\": \"http://\", " SECRET "}}, \"routes\": [{\"to\": [\"a\"]}]}",
                     "destinations.a.url: has no host");
    parse_fails_with("{\"destinations\": {\"a\": {\"url\": \"http://x\", \"secret\": \"short\"}}, "
                     "\"routes\": [{\"to\": [\"a\"]}]}",
                     "destinations.a.secret: must be 16 to 512 bytes long");
    parse_fails_with("{\"destinations\": {\"a\": {\"url\": \"http://x\"}}, \"routes\": [{\"to\": [\"a\"]}]}",
                     "destinations.a.secret: missing");
    parse_fails_with("{\"destinations\": {\"a\": {\"url\": \"http://x\", " SECRET ", \"timeout_ms\": 0}}, "
                     "\"routes\": [{\"to\": [\"a\"]}]}",
                     "destinations.a.timeout_ms: 0 is out of range");
    parse_fails_with("{\"destinations\": {\"a\": {\"url\": \"http://x\", " SECRET ", \"queue\": \"10\"}}, "
                     "\"routes\": [{\"to\": [\"a\"]}]}",
                     "destinations.a.queue: must be a whole number");
    parse_fails_with("{\"destinations\": {\"a\": {\"url\": \"http://x\", " SECRET ", \"timeout\": 5}}, "
                     "\"routes\": [{\"to\": [\"a\"]}]}",
                     "destinations.a.timeout: unknown field");
    parse_fails_with("{\"destinations\": {\"a b\": {\"url\": \"http://x\", " SECRET "}}, "
                     "\"routes\": [{\"to\": [\"a b\"]}]}",
                     "a destination's name is");
    parse_fails_with("{\"destinations\": {\"a\": {\"url\": \"http://x\", " SECRET "}}, "
                     "\"routes\": [{\"to\": [\"a\"]}, {\"to\": [\"b\"]}]}",
                     "routes[1].to[0]: no destination named \"b\"");
    parse_fails_with("{\"destinations\": {\"a\": {\"url\": \"http://x\", " SECRET "}}, "
                     "\"routes\": [{\"rules\": [\"speeding\"], \"to\": [\"a\"]}]}",
                     "routes[0].rules[0]: not a rule");
    parse_fails_with("{\"destinations\": {\"a\": {\"url\": \"http://x\", " SECRET "}}, "
                     "\"routes\": [{\"states\": [\"open\"], \"to\": [\"a\"]}]}",
                     "routes[0].states[0]: is \"raised\" or \"cleared\"");
    parse_fails_with("{\"destinations\": {\"a\": {\"url\": \"http://x\", " SECRET "}}, "
                     "\"routes\": [{\"truck_prefix\": [\"T\", 3], \"to\": [\"a\"]}]}",
                     "routes[0].truck_prefix: each prefix");
    parse_fails_with("{\"destinations\": {\"a\": {\"url\": \"http://x\", " SECRET "}}, "
                     "\"routes\": [{\"rule\": [\"gps_jump\"], \"to\": [\"a\"]}]}",
                     "routes[0].rule: unknown field");
    parse_fails_with("{\"destinations\": {\"a\": {\"url\": \"http://x\", " SECRET "}, "
                     "\"b\": {\"url\": \"http://y\", " SECRET "}}, \"routes\": [{\"to\": [\"a\"]}]}",
                     "destinations.b: no route sends anything to it");
    parse_fails_with("{\"destinations\": {\"a\": {\"url\": \"http://x\", " SECRET
                     "}}, \"routes\": [{\"to\": [\"a\"]}], "
                     "\"routes\": []}",
                     "duplicate object key");
}

static void routes_load_names_the_file(void **state)
{
    (void)state;
    char path[] = "/tmp/test_notify_routes.XXXXXX", err[512];
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "{\n  \"routes\": 1,\n", 17), 17);
    close(fd);
    struct notify_routes r;
    assert_int_equal(notify_routes_load(path, &r, err, sizeof(err)), -1);
    assert_non_null(strstr(err, path));
    assert_non_null(strstr(err, "line 3"));
    unlink(path);
    assert_int_equal(notify_routes_load("/nonexistent/notify.json", &r, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "/nonexistent/notify.json: No such file"));
}

static void routes_match_by_rule_state_and_prefix(void **state)
{
    (void)state;
    struct notify_routes r;
    parse_ok(good, &r);
    const uint64_t ops = 1, theft = 2;
    int stat = FS_RULE_STATIONARY_ENGINE_ON;
    assert_int_equal(notify_routes_match(&r, stat, NOTIFY_RAISED, "TRK-000001", 10), ops | theft);
    assert_int_equal(notify_routes_match(&r, stat, NOTIFY_RAISED, "VAN-7", 5), ops | theft);
    assert_int_equal(notify_routes_match(&r, stat, NOTIFY_CLEARED, "TRK-000001", 10), ops);
    assert_int_equal(notify_routes_match(&r, stat, NOTIFY_RAISED, "BUS-1", 5), ops);
    assert_int_equal(notify_routes_match(&r, stat, NOTIFY_RAISED, "TRK", 3), ops); /* shorter than the prefix */
    assert_int_equal(notify_routes_match(&r, FS_RULE_OVERSPEED, NOTIFY_RAISED, "TRK-000001", 10), ops);
    assert_int_equal(notify_routes_match(&r, -1, NOTIFY_RAISED, "TRK-000001", 10), ops); /* unknown rule name */
    notify_routes_release(&r);

    parse_ok("{\"destinations\": {\"a\": {\"url\": \"http://x\", " SECRET "}}, "
             "\"routes\": [{\"rules\": [\"offline\"], \"states\": [\"cleared\"], \"to\": [\"a\"]}]}",
             &r);
    assert_int_equal(notify_routes_match(&r, FS_RULE_OFFLINE, NOTIFY_CLEARED, "X", 1), 1);
    assert_int_equal(notify_routes_match(&r, FS_RULE_OFFLINE, NOTIFY_RAISED, "X", 1), 0);
    assert_int_equal(notify_routes_match(&r, FS_RULE_GPS_JUMP, NOTIFY_CLEARED, "X", 1), 0);
    notify_routes_release(&r);
}

/* Expected value computed once with
 *   printf '%s' '1764201600123.{"alert_id":"TRK-1:overspeed:1","state":"raised"}' |
 *     openssl dgst -sha256 -hmac 'whsec-test-0123456789' */
static void signature_matches_openssl_hmac_sha256(void **state)
{
    (void)state;
    const char body[] = "{\"alert_id\":\"TRK-1:overspeed:1\",\"state\":\"raised\"}";
    char sig[NOTIFY_SIG_MAX];
    assert_int_equal(notify_sign("whsec-test-0123456789", 21, 1764201600123LL, body, strlen(body), sig), 0);
    assert_string_equal(sig, "t=1764201600123,v1=b7aa32e86fd0ab7c82731220a561eda942bf5e82e6c93fc1b42fbe1f64bca777");
    /* Another timestamp signs differently: it is part of the message. */
    assert_int_equal(notify_sign("whsec-test-0123456789", 21, 1764201600124LL, body, strlen(body), sig), 0);
    assert_null(strstr(sig, "b7aa32e86fd0ab7c"));
}

static void verdict_of_http_answers(void **state)
{
    (void)state;
    assert_int_equal(notify_verdict_of(200), NOTIFY_DELIVERED);
    assert_int_equal(notify_verdict_of(204), NOTIFY_DELIVERED);
    assert_int_equal(notify_verdict_of(0), NOTIFY_RETRY); /* no answer: refused, reset, timed out */
    assert_int_equal(notify_verdict_of(500), NOTIFY_RETRY);
    assert_int_equal(notify_verdict_of(503), NOTIFY_RETRY);
    assert_int_equal(notify_verdict_of(429), NOTIFY_RETRY);
    assert_int_equal(notify_verdict_of(408), NOTIFY_RETRY);
    assert_int_equal(notify_verdict_of(400), NOTIFY_PERMANENT);
    assert_int_equal(notify_verdict_of(401), NOTIFY_PERMANENT);
    assert_int_equal(notify_verdict_of(404), NOTIFY_PERMANENT);
    assert_int_equal(notify_verdict_of(410), NOTIFY_PERMANENT);
    assert_int_equal(notify_verdict_of(302), NOTIFY_PERMANENT);
}

static void backoff_doubles_within_jitter_bounds_up_to_the_cap(void **state)
{
    (void)state;
    const uint32_t rnds[] = {0, 1, 7, 12345, 0x7fffffffu, 0xffffffffu};
    for (int attempt = 1; attempt <= 40; attempt++) {
        int64_t d = 500;
        for (int i = 1; i < attempt && d < 30000; i++)
            d *= 2;
        if (d > 30000)
            d = 30000;
        for (size_t k = 0; k < sizeof(rnds) / sizeof(rnds[0]); k++) {
            int64_t w = notify_backoff_ms(500, 30000, attempt, rnds[k]);
            if (w < d / 2 || w > d)
                fail_msg("attempt %d rnd %u: %lld outside [%lld, %lld]", attempt, rnds[k], (long long)w,
                         (long long)(d / 2), (long long)d);
        }
    }
    /* The ends of the jitter are reached. */
    assert_int_equal(notify_backoff_ms(1000, 30000, 1, 0), 500);
    assert_int_equal(notify_backoff_ms(1000, 30000, 1, 500), 1000);
    assert_int_equal(notify_backoff_ms(1000, 30000, 3, 0), 2000);
    assert_int_equal(notify_backoff_ms(1000, 30000, 30, 15000), 30000);
    /* A huge attempt number neither overflows nor passes the cap. */
    assert_true(notify_backoff_ms(1000, 30000, 1000000, 0xffffffffu) <= 30000);
}

static void retries_stop_after_retry_for(void **state)
{
    (void)state;
    assert_true(notify_may_retry(1000, 1000 + 59999, 60000));
    assert_false(notify_may_retry(1000, 1000 + 60000, 60000));
}

static void queue_bound_sends_the_next_record_to_dead_letters(void **state)
{
    (void)state;
    assert_true(notify_queue_admits(0, 1));
    assert_false(notify_queue_admits(1, 1));
    assert_true(notify_queue_admits(999, 1000));
    assert_false(notify_queue_admits(1000, 1000));
    assert_false(notify_queue_admits(1001, 1000));
}

static void frontier_waits_for_the_lowest_unfinished_offset(void **state)
{
    (void)state;
    struct frontier f;
    frontier_init(&f);
    assert_int_equal(frontier_position(&f), -1);
    assert_int_equal(frontier_take_commit(&f), -1);
    for (int64_t o = 10; o < 15; o++)
        assert_int_equal(frontier_add(&f, o), 0);
    assert_int_equal(frontier_outstanding(&f), 5);
    assert_int_equal(frontier_position(&f), 10);
    assert_int_equal(frontier_take_commit(&f), 10);
    assert_int_equal(frontier_take_commit(&f), -1); /* not moved */
    /* Later records finish first: the frontier stays at 10. */
    assert_int_equal(frontier_done(&f, 12), 0);
    assert_int_equal(frontier_done(&f, 14), 0);
    assert_int_equal(frontier_position(&f), 10);
    assert_int_equal(frontier_take_commit(&f), -1);
    assert_int_equal(frontier_done(&f, 10), 0);
    assert_int_equal(frontier_position(&f), 11);
    assert_int_equal(frontier_done(&f, 11), 0); /* 12 is done: jumps to 13 */
    assert_int_equal(frontier_position(&f), 13);
    assert_int_equal(frontier_take_commit(&f), 13);
    assert_int_equal(frontier_done(&f, 13), 0); /* all done: one past the last */
    assert_int_equal(frontier_position(&f), 15);
    assert_int_equal(frontier_outstanding(&f), 0);
    /* Finishing twice, or a record never added, is refused. */
    assert_int_equal(frontier_done(&f, 13), -1);
    assert_int_equal(frontier_done(&f, 99), -1);
    /* Offsets go up only; gaps (compacted or aborted records) are fine. */
    assert_int_equal(frontier_add(&f, 14), -1);
    assert_int_equal(frontier_add(&f, 20), 0);
    assert_int_equal(frontier_position(&f), 20);
    frontier_reset(&f);
    assert_int_equal(frontier_position(&f), -1);
    assert_int_equal(frontier_add(&f, 5), 0);
    assert_int_equal(frontier_take_commit(&f), 5);
    frontier_release(&f);
}

static void frontier_starts_at_the_position_before_any_record(void **state)
{
    (void)state;
    struct frontier f;
    frontier_init(&f);
    assert_int_equal(frontier_start(&f, 42), 0);
    assert_int_equal(frontier_position(&f), 42);
    assert_int_equal(frontier_take_commit(&f), 42); /* committed although nothing was read */
    assert_int_equal(frontier_start(&f, 50), -1);   /* once only */
    assert_int_equal(frontier_add(&f, 41), -1);     /* below the start */
    assert_int_equal(frontier_add(&f, 45), 0);
    assert_int_equal(frontier_position(&f), 45);
    assert_int_equal(frontier_start(&f, 99), -1); /* records came */
    frontier_release(&f);
}

static void frontier_survives_wrapping_and_growth(void **state)
{
    (void)state;
    struct frontier f;
    frontier_init(&f);
    /* Records 1, 2, 4, 5, 7, 8, ... finish while more are added, so the
     * ring grows with finished entries behind the unfinished 0, 3, 6, ... */
    for (int64_t o = 0; o < 5000; o++) {
        assert_int_equal(frontier_add(&f, o), 0);
        if (o % 3 == 2) {
            assert_int_equal(frontier_done(&f, o), 0);
            assert_int_equal(frontier_done(&f, o - 1), 0);
        }
    }
    assert_int_equal(frontier_position(&f), 0);
    assert_int_equal(frontier_outstanding(&f), 1667 + 1); /* 0, 3, ..., 4998, and 4999 */
    assert_int_equal(frontier_done(&f, 4999), 0);
    for (int64_t o = 0; o < 5000; o += 3) {
        assert_int_equal(frontier_done(&f, o), 0);
        assert_int_equal(frontier_position(&f), o + 3 <= 4998 ? o + 3 : 5000);
    }
    assert_int_equal(frontier_outstanding(&f), 0);
    frontier_release(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(routes_good_file_reads_every_field_and_defaults),
        cmocka_unit_test(routes_syntax_error_names_line_and_column),
        cmocka_unit_test(routes_bad_fields_are_named),
        cmocka_unit_test(routes_load_names_the_file),
        cmocka_unit_test(routes_match_by_rule_state_and_prefix),
        cmocka_unit_test(signature_matches_openssl_hmac_sha256),
        cmocka_unit_test(verdict_of_http_answers),
        cmocka_unit_test(backoff_doubles_within_jitter_bounds_up_to_the_cap),
        cmocka_unit_test(retries_stop_after_retry_for),
        cmocka_unit_test(queue_bound_sends_the_next_record_to_dead_letters),
        cmocka_unit_test(frontier_waits_for_the_lowest_unfinished_offset),
        cmocka_unit_test(frontier_starts_at_the_position_before_any_record),
        cmocka_unit_test(frontier_survives_wrapping_and_growth),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
