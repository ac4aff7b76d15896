/* The bridge spool: order, acknowledgement watermark, recovery after a crash,
 * torn tails, segment roll and deletion, locking. */
#include "bridge/spool.h"

#include <fcntl.h>
#include <signal.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

static char dir[256];

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/fleetsync-spool-test.XXXXXX");
    return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static void append_n(struct spool *s, int from, int n)
{
    for (int i = from; i < from + n; i++) {
        char topic[64], payload[64];
        int tl = snprintf(topic, sizeof(topic), "fleet/trucks/T%d/telemetry", i);
        int pl = snprintf(payload, sizeof(payload), "{\"seq\":%d}", i);
        assert_int_equal(spool_append(s, 1000 + i, topic, (size_t)tl, payload, (size_t)pl), 0);
    }
}

static int next_seq(struct spool *s, struct spool_record *r)
{
    int rc = spool_next(s, r);
    if (rc != 1)
        return -1;
    int seq = -1;
    assert_int_equal(sscanf((const char *)r->payload, "{\"seq\":%d}", &seq), 1);
    return seq;
}

static void records_come_back_in_order(void **state)
{
    (void)state;
    struct spool *s;
    char err[256];
    assert_int_equal(spool_open(dir, NULL, &s, err, sizeof(err)), 0);
    append_n(s, 0, 100);
    struct spool_record r;
    assert_int_equal(spool_next(s, &r), 0); /* not flushed yet: not readable */
    assert_int_equal(spool_flush(s), 0);
    for (int i = 0; i < 100; i++) {
        assert_int_equal(next_seq(s, &r), i);
        assert_int_equal(r.received_ms, 1000 + i);
        char topic[64];
        snprintf(topic, sizeof(topic), "fleet/trucks/T%d/telemetry", i);
        assert_string_equal(r.topic, topic);
    }
    assert_int_equal(spool_next(s, &r), 0);
    spool_close(s);
}

static void out_of_order_acks_advance_the_watermark(void **state)
{
    (void)state;
    struct spool *s;
    char err[256];
    assert_int_equal(spool_open(dir, NULL, &s, err, sizeof(err)), 0);
    append_n(s, 0, 3);
    spool_flush(s);
    struct spool_record r[3];
    for (int i = 0; i < 3; i++)
        assert_int_equal(spool_next(s, &r[i]), 1);
    uint64_t start = spool_acked(s);
    spool_ack(s, r[2].offset);
    spool_ack(s, r[1].offset);
    assert_int_equal(spool_acked(s), start);  /* the first is still out */
    assert_int_equal(spool_in_flight(s), 3);
    spool_ack(s, r[0].offset);
    assert_int_equal(spool_acked(s), spool_head(s));
    assert_int_equal(spool_in_flight(s), 0);
    assert_int_equal(spool_pending_bytes(s), 0);
    spool_ack(s, 123456); /* unknown offsets are ignored */
    spool_close(s);
}

static void restart_resumes_at_the_checkpoint(void **state)
{
    (void)state;
    struct spool *s;
    char err[256];
    struct spool_record r;
    assert_int_equal(spool_open(dir, NULL, &s, err, sizeof(err)), 0);
    append_n(s, 0, 10);
    spool_flush(s);
    for (int i = 0; i < 10; i++) {
        assert_int_equal(next_seq(s, &r), i);
        if (i < 4)
            spool_ack(s, r.offset);
    }
    spool_close(s); /* checkpoints: 0-3 acknowledged */
    assert_int_equal(spool_open(dir, NULL, &s, err, sizeof(err)), 0);
    for (int i = 4; i < 10; i++)
        assert_int_equal(next_seq(s, &r), i);
    assert_int_equal(spool_next(s, &r), 0);
    spool_close(s);
}

static void a_killed_writer_loses_nothing_it_flushed(void **state)
{
    (void)state;
    pid_t pid = fork();
    if (pid == 0) {
        struct spool *s;
        char err[256];
        if (spool_open(dir, NULL, &s, err, sizeof(err)) != 0)
            _exit(3);
        append_n(s, 0, 500);
        spool_flush(s);
        struct spool_record r;
        for (int i = 0; i < 100; i++) {
            spool_next(s, &r);
            spool_ack(s, r.offset);
        }
        spool_checkpoint(s);
        append_n(s, 500, 7); /* never flushed: as if still in the buffer */
        raise(SIGKILL);
    }
    int st;
    waitpid(pid, &st, 0);
    assert_true(WIFSIGNALED(st));
    struct spool *s;
    char err[256];
    struct spool_record r;
    assert_int_equal(spool_open(dir, NULL, &s, err, sizeof(err)), 0);
    for (int i = 100; i < 500; i++)
        assert_int_equal(next_seq(s, &r), i);
    assert_int_equal(spool_next(s, &r), 0);
    spool_close(s);
}

static void a_torn_tail_is_cut_off(void **state)
{
    (void)state;
    struct spool *s;
    char err[256], path[512];
    struct spool_record r;
    assert_int_equal(spool_open(dir, NULL, &s, err, sizeof(err)), 0);
    append_n(s, 0, 5);
    spool_flush(s);
    uint64_t head = spool_head(s);
    spool_close(s);
    snprintf(path, sizeof(path), "%s/%020d.spool", dir, 0);
    int fd = open(path, O_WRONLY | O_APPEND);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "\x40\x00\x00\x00garbage", 11), 11); /* a header promising 64 bytes */
    close(fd);
    assert_int_equal(spool_open(dir, NULL, &s, err, sizeof(err)), 0);
    assert_int_equal(spool_head(s), head);
    append_n(s, 5, 1);
    spool_flush(s);
    for (int i = 0; i < 6; i++)
        assert_int_equal(next_seq(s, &r), i);
    spool_close(s);
}

static void segments_roll_and_acknowledged_ones_are_deleted(void **state)
{
    (void)state;
    struct spool *s;
    char err[256];
    struct spool_record r;
    struct spool_options opt = {.segment_bytes = 1000};
    assert_int_equal(spool_open(dir, &opt, &s, err, sizeof(err)), 0);
    append_n(s, 0, 200);
    spool_flush(s);
    int files = 0;
    char cmd[400];
    snprintf(cmd, sizeof(cmd), "ls %s/*.spool | wc -l", dir);
    FILE *p = popen(cmd, "r");
    assert_int_equal(fscanf(p, "%d", &files), 1);
    pclose(p);
    assert_true(files > 5);
    for (int i = 0; i < 200; i++) {
        assert_int_equal(next_seq(s, &r), i);
        spool_ack(s, r.offset);
    }
    assert_int_equal(spool_checkpoint(s), 0);
    p = popen(cmd, "r");
    assert_int_equal(fscanf(p, "%d", &files), 1);
    pclose(p);
    assert_int_equal(files, 1);
    spool_close(s);
    assert_int_equal(spool_open(dir, &opt, &s, err, sizeof(err)), 0);
    assert_int_equal(spool_next(s, &r), 0);
    append_n(s, 200, 1);
    spool_flush(s);
    assert_int_equal(next_seq(s, &r), 200);
    spool_close(s);
}

static void rewind_hands_out_unacknowledged_records_again(void **state)
{
    (void)state;
    struct spool *s;
    char err[256];
    struct spool_record r;
    assert_int_equal(spool_open(dir, NULL, &s, err, sizeof(err)), 0);
    append_n(s, 0, 5);
    spool_flush(s);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(next_seq(s, &r), i);
        if (i < 2)
            spool_ack(s, r.offset);
    }
    spool_rewind(s);
    assert_int_equal(spool_in_flight(s), 0);
    for (int i = 2; i < 5; i++)
        assert_int_equal(next_seq(s, &r), i);
    spool_close(s);
}

static void an_unread_record_comes_again(void **state)
{
    (void)state;
    struct spool *s;
    char err[256];
    struct spool_record r;
    assert_int_equal(spool_open(dir, NULL, &s, err, sizeof(err)), 0);
    append_n(s, 0, 3);
    spool_flush(s);
    assert_int_equal(next_seq(s, &r), 0);
    assert_int_equal(next_seq(s, &r), 1);
    spool_unread_last(s);
    assert_int_equal(spool_in_flight(s), 1);
    assert_int_equal(next_seq(s, &r), 1);
    assert_int_equal(next_seq(s, &r), 2);
    spool_close(s);
}

static void a_second_opener_is_refused(void **state)
{
    (void)state;
    struct spool *a, *b;
    char err[256];
    assert_int_equal(spool_open(dir, NULL, &a, err, sizeof(err)), 0);
    assert_int_equal(spool_open(dir, NULL, &b, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "in use by another bridge"));
    spool_close(a);
}

static void oversized_records_are_refused(void **state)
{
    (void)state;
    struct spool *s;
    char err[256];
    assert_int_equal(spool_open(dir, NULL, &s, err, sizeof(err)), 0);
    char *big = calloc(1, SPOOL_MAX_PAYLOAD + 1);
    assert_int_equal(spool_append(s, 1, "t", 1, big, SPOOL_MAX_PAYLOAD + 1), -1);
    assert_int_equal(spool_append(s, 1, "t", 1, big, 65536), 0);
    free(big);
    spool_close(s);
}

/* The largest record the spool takes, between two small ones, written and
 * read back whole, also after a restart (its CRC checked then). */
static void the_largest_record_comes_back(void **state)
{
    (void)state;
    struct spool *s;
    char err[256];
    static char topic[SPOOL_MAX_TOPIC], payload[SPOOL_MAX_PAYLOAD];
    memset(topic, 't', sizeof(topic));
    memset(payload, 'p', sizeof(payload));
    payload[sizeof(payload) - 1] = '!';
    for (int pass = 0; pass < 2; pass++) {
        assert_int_equal(spool_open(dir, NULL, &s, err, sizeof(err)), 0);
        struct spool_record r;
        if (pass == 0) {
            append_n(s, 0, 1);
            assert_int_equal(spool_append(s, 7, topic, sizeof(topic), payload, sizeof(payload)), 0);
            append_n(s, 1, 1);
            assert_int_equal(spool_flush(s), 0);
        }
        assert_int_equal(next_seq(s, &r), 0);
        assert_int_equal(spool_next(s, &r), 1);
        assert_int_equal(strlen(r.topic), sizeof(topic));
        assert_int_equal(r.payload_len, sizeof(payload));
        assert_memory_equal(r.payload, payload, sizeof(payload));
        assert_int_equal(next_seq(s, &r), 1);
        spool_close(s);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(records_come_back_in_order, setup, teardown),
        cmocka_unit_test_setup_teardown(out_of_order_acks_advance_the_watermark, setup, teardown),
        cmocka_unit_test_setup_teardown(restart_resumes_at_the_checkpoint, setup, teardown),
        cmocka_unit_test_setup_teardown(a_killed_writer_loses_nothing_it_flushed, setup, teardown),
        cmocka_unit_test_setup_teardown(a_torn_tail_is_cut_off, setup, teardown),
        cmocka_unit_test_setup_teardown(segments_roll_and_acknowledged_ones_are_deleted, setup, teardown),
        cmocka_unit_test_setup_teardown(rewind_hands_out_unacknowledged_records_again, setup, teardown),
        cmocka_unit_test_setup_teardown(an_unread_record_comes_again, setup, teardown),
        cmocka_unit_test_setup_teardown(a_second_opener_is_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(oversized_records_are_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(the_largest_record_comes_back, setup, teardown),
    };
    return cmocka_run_group_tests_name("spool", tests, NULL, NULL);
}
