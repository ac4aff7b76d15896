/* The bridge spool: order, acknowledgement watermark, recovery after a crash,
 * torn tails, segment roll and deletion, locking, damaged records skipped
 * (and exactly which survive), private file modes. */
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
    assert_int_equal(spool_acked(s), start); /* the first is still out */
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

/* ---- damage ------------------------------------------------------------- */

/* What on_damage reported. */
static struct {
    int n, torn;
    uint64_t bytes, seg_offset;
    char why[32], segment[512], kept[512];
    int kept_files;
} dmg;

static void on_damage(const struct spool_damage *d, void *ctx)
{
    (void)ctx;
    if (d->torn) {
        dmg.torn++;
        return;
    }
    dmg.n++;
    dmg.bytes += d->bytes;
    dmg.seg_offset = d->seg_offset;
    dmg.kept_files = d->kept_files;
    snprintf(dmg.why, sizeof(dmg.why), "%s", d->why);
    snprintf(dmg.segment, sizeof(dmg.segment), "%s", d->segment);
    snprintf(dmg.kept, sizeof(dmg.kept), "%s", d->kept_as ? d->kept_as : "");
}

static struct spool *open_reporting(uint64_t segment_bytes)
{
    struct spool_options opt = {.segment_bytes = segment_bytes, .on_damage = on_damage};
    struct spool *s;
    char err[256];
    memset(&dmg, 0, sizeof(dmg));
    assert_int_equal(spool_open(dir, &opt, &s, err, sizeof(err)), 0);
    return s;
}

/* Writes records 0..n-1 (segments of segment_bytes), notes where each starts
 * and ends, and closes the spool with nothing acknowledged. */
static void write_spool(int n, uint64_t segment_bytes, uint64_t *off, uint64_t *end)
{
    struct spool *s;
    struct spool_options opt = {.segment_bytes = segment_bytes};
    struct spool_record r;
    char err[256];
    assert_int_equal(spool_open(dir, &opt, &s, err, sizeof(err)), 0);
    append_n(s, 0, n);
    assert_int_equal(spool_flush(s), 0);
    for (int i = 0; i < n; i++) {
        assert_int_equal(next_seq(s, &r), i);
        off[i] = r.offset;
        end[i] = spool_read_pos(s);
    }
    spool_close(s);
}

static void seg_file(uint64_t start, char *path, size_t size)
{
    snprintf(path, size, "%s/%020llu.spool", dir, (unsigned long long)start);
}

/* Overwrites len bytes at offset at of the segment starting at start. */
static void scribble(uint64_t start, uint64_t at, const void *bytes, size_t len)
{
    char path[512];
    seg_file(start, path, sizeof(path));
    int fd = open(path, O_WRONLY);
    assert_true(fd >= 0);
    assert_int_equal(pwrite(fd, bytes, len, (off_t)(at - start)), (ssize_t)len);
    close(fd);
}

/* Reads everything and returns the seqs that came back, as a string "0 1 3". */
static void read_all(struct spool *s, char *out, size_t size)
{
    struct spool_record r;
    size_t used = 0;
    int seq;
    out[0] = '\0';
    while ((seq = next_seq(s, &r)) >= 0)
        used += (size_t)snprintf(out + used, size - used, used ? " %d" : "%d", seq);
    assert_int_equal(spool_next(s, &r), 0); /* the end, not an error */
}

static int count_files(const char *pattern)
{
    char cmd[600];
    int n = -1;
    snprintf(cmd, sizeof(cmd), "ls %s/%s 2>/dev/null | wc -l", dir, pattern);
    FILE *p = popen(cmd, "r");
    assert_int_equal(fscanf(p, "%d", &n), 1);
    pclose(p);
    return n;
}

/* A flipped payload byte in the middle of the last segment: that record is
 * lost, counted and reported; every record after it still comes. */
static void a_bad_crc_in_the_middle_skips_only_that_record(void **state)
{
    (void)state;
    uint64_t off[10], end[10];
    char got[256];
    write_spool(10, 0, off, end);
    scribble(0, end[4] - 2, "X", 1);
    struct spool *s = open_reporting(0);
    read_all(s, got, sizeof(got));
    assert_string_equal(got, "0 1 2 3 5 6 7 8 9");
    assert_int_equal(dmg.n, 1);
    assert_string_equal(dmg.why, "bad CRC");
    assert_int_equal(dmg.seg_offset, off[4]);
    assert_int_equal(dmg.bytes, end[4] - off[4]);
    assert_int_equal(spool_damaged_ranges(s), 1);
    assert_int_equal(spool_damaged_bytes(s), end[4] - off[4]);
    /* The segment is kept aside, and takes no more appends. */
    char kept[512];
    seg_file(0, kept, sizeof(kept));
    strcat(kept, ".damaged");
    assert_string_equal(dmg.kept, kept);
    assert_int_equal(access(kept, F_OK), 0);
    assert_int_equal(dmg.kept_files, 1);
    append_n(s, 10, 1);
    assert_int_equal(spool_flush(s), 0);
    assert_int_equal(count_files("*.spool"), 2);
    struct spool_record r;
    assert_int_equal(next_seq(s, &r), 10);
    spool_close(s);
}

/* A length field scribbled over in a segment before the last: the reader
 * resynchronises on the next whole record instead of failing. */
static void a_bad_header_in_an_earlier_segment_is_skipped(void **state)
{
    (void)state;
    uint64_t off[40], end[40];
    char got[512];
    write_spool(40, 300, off, end);
    assert_true(count_files("*.spool") > 3);
    /* Record 2 lies in the first segment, which is not the last. */
    assert_true(end[2] < 300);
    scribble(0, off[2], "\xff\xff\xff\x7f", 4);
    struct spool *s = open_reporting(300);
    read_all(s, got, sizeof(got));
    assert_string_equal(got, "0 1 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28 29 30 31 "
                             "32 33 34 35 36 37 38 39");
    assert_int_equal(dmg.n, 1);
    assert_string_equal(dmg.why, "bad length");
    assert_int_equal(dmg.bytes, end[2] - off[2]);
    spool_close(s);
}

/* Garbage over the end of one record and the start of the next (a torn
 * sector): both are lost, one range, and the records after come. */
static void damage_across_a_record_boundary_loses_both_records(void **state)
{
    (void)state;
    uint64_t off[10], end[10];
    char got[256];
    write_spool(10, 0, off, end);
    static const char junk[16] = "\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\x0f\x10";
    scribble(0, end[5] - 8, junk, sizeof(junk));
    struct spool *s = open_reporting(0);
    read_all(s, got, sizeof(got));
    assert_string_equal(got, "0 1 2 3 4 7 8 9");
    assert_int_equal(dmg.n, 1);
    assert_int_equal(dmg.seg_offset, off[5]);
    assert_int_equal(dmg.bytes, off[7] - off[5]);
    spool_close(s);
}

/* A bad CRC in the last record of a segment: the rest of that segment is
 * skipped and the next segment read. */
static void damage_at_the_tail_of_an_earlier_segment(void **state)
{
    (void)state;
    uint64_t off[40], end[40];
    char got[512];
    write_spool(40, 300, off, end);
    /* A segment rolls before the first record that starts past 300 bytes. */
    int last_in_first = 0;
    while (off[last_in_first + 1] < 300)
        last_in_first++;
    scribble(0, end[last_in_first] - 1, "#", 1);
    struct spool *s = open_reporting(300);
    read_all(s, got, sizeof(got));
    char want[512];
    size_t used = 0;
    for (int i = 0; i < 40; i++)
        if (i != last_in_first)
            used += (size_t)snprintf(want + used, sizeof(want) - used, used ? " %d" : "%d", i);
    assert_string_equal(got, want);
    assert_int_equal(dmg.n, 1);
    assert_string_equal(dmg.why, "bad CRC");
    spool_close(s);
}

/* A whole record with a bad CRC at the very end of the last segment is
 * damage (it was acknowledged to MQTT), not a torn write: counted, and new
 * records go to a new segment. */
static void a_bad_crc_at_the_tail_of_the_last_segment(void **state)
{
    (void)state;
    uint64_t off[5], end[5];
    char got[256];
    write_spool(5, 0, off, end);
    scribble(0, end[4] - 1, "#", 1);
    struct spool *s = open_reporting(0);
    assert_int_equal(spool_head(s), end[4]); /* not cut off */
    append_n(s, 5, 2);
    assert_int_equal(spool_flush(s), 0);
    read_all(s, got, sizeof(got));
    assert_string_equal(got, "0 1 2 3 5 6");
    assert_int_equal(dmg.n, 1);
    assert_int_equal(dmg.torn, 0);
    assert_int_equal(dmg.bytes, end[4] - off[4]);
    assert_int_equal(count_files("*.spool"), 2);
    spool_close(s);
}

/* A segment before the last cut short in the middle of a record: what it
 * still holds whole comes, the rest of its range is one damaged range, and
 * the next segment is read. */
static void a_truncated_segment_is_skipped_to_its_end(void **state)
{
    (void)state;
    uint64_t off[40], end[40];
    char got[512], path[512];
    write_spool(40, 300, off, end);
    seg_file(0, path, sizeof(path));
    assert_int_equal(truncate(path, (off_t)(off[3] + 5)), 0);
    int next_seg = 4; /* the first record of the second segment */
    while (off[next_seg] < 300)
        next_seg++;
    struct spool *s = open_reporting(300);
    read_all(s, got, sizeof(got));
    char want[512];
    size_t used = 0;
    for (int i = 0; i < 40; i++)
        if (i < 3 || i >= next_seg)
            used += (size_t)snprintf(want + used, sizeof(want) - used, used ? " %d" : "%d", i);
    assert_string_equal(got, want);
    assert_int_equal(dmg.n, 1);
    assert_string_equal(dmg.why, "cut short");
    assert_int_equal(dmg.bytes, off[next_seg] - off[3]);
    spool_close(s);
}

/* A torn write at the end of the last segment is cut off and reported as
 * torn, not as damage. */
static void a_torn_tail_is_not_counted_as_damage(void **state)
{
    (void)state;
    uint64_t off[5], end[5];
    char got[256], path[512];
    write_spool(5, 0, off, end);
    seg_file(0, path, sizeof(path));
    assert_int_equal(truncate(path, (off_t)(end[4] - 3)), 0);
    struct spool *s = open_reporting(0);
    read_all(s, got, sizeof(got));
    assert_string_equal(got, "0 1 2 3");
    assert_int_equal(dmg.n, 0);
    assert_int_equal(dmg.torn, 1);
    assert_int_equal(spool_damaged_ranges(s), 0);
    assert_int_equal(count_files("*.damaged"), 0);
    spool_close(s);
}

/* Skipped damage counts as acknowledged: the watermark passes it, a rewind
 * does not report it again, and the segments are deleted once acked. */
static void skipped_damage_is_acknowledged_once(void **state)
{
    (void)state;
    uint64_t off[40], end[40];
    struct spool_record r;
    write_spool(40, 300, off, end);
    scribble(0, end[1] - 1, "#", 1);
    struct spool *s = open_reporting(300);
    assert_int_equal(next_seq(s, &r), 0);
    assert_int_equal(next_seq(s, &r), 2);
    spool_rewind(s);
    assert_int_equal(next_seq(s, &r), 0);
    spool_ack(s, r.offset);
    assert_int_equal(next_seq(s, &r), 2);
    assert_int_equal(spool_acked(s), off[2]); /* past the damage */
    assert_int_equal(dmg.n, 1);
    for (int i = 3; i < 40; i++)
        assert_int_equal(next_seq(s, &r), i);
    spool_rewind(s);
    for (int i = 2; i < 40; i++) {
        assert_int_equal(next_seq(s, &r), i);
        spool_ack(s, r.offset);
    }
    assert_int_equal(dmg.n, 1);
    assert_int_equal(spool_acked(s), spool_head(s));
    assert_int_equal(spool_checkpoint(s), 0);
    assert_int_equal(count_files("*.spool"), 1);
    assert_int_equal(count_files("*.spool.damaged"), 1); /* kept for inspection */
    spool_close(s);
}

/* Every segment damaged: at most SPOOL_MAX_DAMAGED_FILES are kept, the
 * newest ones. */
static void damaged_segment_files_are_bounded(void **state)
{
    (void)state;
    uint64_t off[60], end[60];
    char got[512];
    write_spool(60, 200, off, end);
    int segs = 0;
    uint64_t starts[64];
    for (int i = 0; i < 60; i++)
        if (i == 0 || off[i] >= starts[segs - 1] + 200) {
            starts[segs++] = off[i];
            scribble(starts[segs - 1], end[i] - 1, "#", 1); /* each segment's first record */
        }
    assert_true(segs > SPOOL_MAX_DAMAGED_FILES + 1);
    struct spool *s = open_reporting(200);
    read_all(s, got, sizeof(got));
    assert_int_equal(dmg.n, segs);
    assert_int_equal(dmg.kept_files, SPOOL_MAX_DAMAGED_FILES);
    assert_int_equal(count_files("*.damaged"), SPOOL_MAX_DAMAGED_FILES);
    char newest[512];
    seg_file(starts[segs - 1], newest, sizeof(newest));
    strcat(newest, ".damaged");
    assert_int_equal(access(newest, F_OK), 0);
    spool_close(s);
    s = open_reporting(200);
    assert_int_equal(spool_damaged_files(s), SPOOL_MAX_DAMAGED_FILES);
    spool_close(s);
}

/* ---- modes -------------------------------------------------------------- */

static int mode_of(const char *path)
{
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    return (int)(st.st_mode & 07777);
}

/* Spool files hold telemetry: 0600 in a 0700 directory, whatever the umask,
 * and a spool an older version left readable is tightened on open. */
static void spool_files_are_private(void **state)
{
    (void)state;
    char sub[400], path[512];
    struct spool *s;
    char err[256];
    mode_t old = umask(0);
    snprintf(sub, sizeof(sub), "%s/spool", dir);
    assert_int_equal(spool_open(sub, NULL, &s, err, sizeof(err)), 0);
    append_n(s, 0, 3);
    assert_int_equal(spool_flush(s), 0);
    spool_close(s);
    const char *files[] = {"lock", "checkpoint", "00000000000000000000.spool"};
    assert_int_equal(mode_of(sub), 0700);
    for (int i = 0; i < 3; i++) {
        snprintf(path, sizeof(path), "%s/%s", sub, files[i]);
        assert_int_equal(mode_of(path), 0600);
        chmod(path, 0644);
    }
    chmod(sub, 0755);
    assert_int_equal(spool_open(sub, NULL, &s, err, sizeof(err)), 0);
    assert_int_equal(mode_of(sub), 0700);
    for (int i = 0; i < 3; i++) {
        snprintf(path, sizeof(path), "%s/%s", sub, files[i]);
        assert_int_equal(mode_of(path), 0600);
    }
    spool_close(s);
    umask(old);
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
        cmocka_unit_test_setup_teardown(a_bad_crc_in_the_middle_skips_only_that_record, setup, teardown),
        cmocka_unit_test_setup_teardown(a_bad_header_in_an_earlier_segment_is_skipped, setup, teardown),
        cmocka_unit_test_setup_teardown(damage_across_a_record_boundary_loses_both_records, setup, teardown),
        cmocka_unit_test_setup_teardown(damage_at_the_tail_of_an_earlier_segment, setup, teardown),
        cmocka_unit_test_setup_teardown(a_bad_crc_at_the_tail_of_the_last_segment, setup, teardown),
        cmocka_unit_test_setup_teardown(a_truncated_segment_is_skipped_to_its_end, setup, teardown),
        cmocka_unit_test_setup_teardown(a_torn_tail_is_not_counted_as_damage, setup, teardown),
        cmocka_unit_test_setup_teardown(skipped_damage_is_acknowledged_once, setup, teardown),
        cmocka_unit_test_setup_teardown(damaged_segment_files_are_bounded, setup, teardown),
        cmocka_unit_test_setup_teardown(spool_files_are_private, setup, teardown),
    };
    return cmocka_run_group_tests_name("spool", tests, NULL, NULL);
}
