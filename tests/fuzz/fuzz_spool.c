/*
 * fuzz_spool.c - libFuzzer target for the bridge spool's reader: any bytes on
 * disk, as one or two segment files and a checkpoint, are read without a
 * crash and without stopping the reader.
 *
 * Input: byte 0 splits the rest into two segments (0: one segment), byte 1
 * moves the second segment's start by -8..+7 bytes (a gap or an overlap, as a
 * truncated or damaged file leaves), byte 2 is a checkpoint (0: none; else
 * offset 13 * byte, which may fall inside a record); the rest are the
 * segments' bytes.
 *
 * Properties checked on every input (abort() on violation):
 *   - spool_open succeeds: damage is never a reason to refuse a spool;
 *   - spool_next never fails (-1): damage is skipped, and the records it
 *     hands out lie in the spool, in offset order, with a topic and payload
 *     within the record (ASan reads them);
 *   - the records and the reported damage cover the spool exactly, from the
 *     read position at open to head;
 *   - a rewind hands out the same records again and reports nothing new;
 *   - once every record is acknowledged, acked reaches head;
 *   - a record appended afterwards is read back exactly.
 */
#include "bridge/spool.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char dir[64];
static uint64_t reported_bytes;
static int reports;

static void check(int ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "fuzz_spool: %s\n", what);
        abort();
    }
}

static void on_damage(const struct spool_damage *d, void *ctx)
{
    (void)ctx;
    check(d->bytes > 0, "an empty damaged range");
    check(d->segment && d->why, "a report without segment or reason");
    if (!d->torn) {
        reported_bytes += d->bytes;
        reports++;
    }
}

static void clear_dir(void)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char path[600];
    check(d != NULL, "cannot list the fuzz dir");
    while ((e = readdir(d)))
        if (e->d_name[0] != '.') {
            snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
            unlink(path);
        }
    closedir(d);
}

static void remove_dir(void)
{
    clear_dir();
    rmdir(dir);
}

static void write_file(const char *name, const void *bytes, size_t len)
{
    char path[600];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    check(fd >= 0, "cannot write a fuzz file");
    check(write(fd, bytes, len) == (ssize_t)len, "short write of a fuzz file");
    close(fd);
}

/* Reads to the end; returns the records handed out and their bytes. */
static size_t read_through(struct spool *s, uint64_t *offsets, size_t max, uint64_t *bytes)
{
    struct spool_record r;
    uint64_t last = 0;
    size_t n = 0;
    int rc;
    *bytes = 0;
    while ((rc = spool_next(s, &r)) == 1) {
        check(n == 0 || r.offset > last, "records out of offset order");
        check(spool_read_pos(s) <= spool_head(s), "a record past head");
        volatile size_t sum = strlen(r.topic);
        for (size_t i = 0; i < r.payload_len; i++)
            sum += ((const unsigned char *)r.payload)[i];
        (void)sum;
        *bytes += spool_read_pos(s) - r.offset;
        last = r.offset;
        if (n < max)
            offsets[n] = r.offset;
        n++;
    }
    check(rc == 0, "spool_next failed on bytes on disk");
    return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static uint64_t offsets[8192], again[8192];
    if (!dir[0]) {
        snprintf(dir, sizeof(dir), "%s/fuzz-spool.XXXXXX", access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
        check(mkdtemp(dir) != NULL, "mkdtemp");
        atexit(remove_dir);
    }
    if (size < 3)
        return 0;
    size_t split = data[0], body_len = size - 3;
    int delta = (int)(data[1] & 15) - 8;
    const uint8_t *body = data + 3;
    clear_dir();
    if (split == 0 || split >= body_len) {
        write_file("00000000000000000000.spool", body, body_len);
    } else {
        char name[64];
        long start = (long)split + delta;
        if (start < 1)
            start = 1;
        write_file("00000000000000000000.spool", body, split);
        snprintf(name, sizeof(name), "%020ld.spool", start);
        write_file(name, body + split, body_len - split);
    }
    if (data[2]) {
        char ckpt[32];
        int n = snprintf(ckpt, sizeof(ckpt), "%020u\n", 13u * data[2]);
        write_file("checkpoint", ckpt, (size_t)n);
    }

    struct spool_options opt = {.on_damage = on_damage};
    struct spool *s;
    char err[256];
    reported_bytes = 0;
    reports = 0;
    check(spool_open(dir, &opt, &s, err, sizeof(err)) == 0, "spool_open refused damaged bytes");
    uint64_t from = spool_read_pos(s), bytes, bytes_again;
    size_t n = read_through(s, offsets, 8192, &bytes);
    check(bytes + reported_bytes == spool_head(s) - from, "records and damage do not cover the spool");
    check(spool_damaged_bytes(s) == reported_bytes, "the counter and the reports differ");

    int reports_before = reports;
    spool_rewind(s);
    check(n == read_through(s, again, 8192, &bytes_again) && bytes == bytes_again, "a rewind read differently");
    check(memcmp(offsets, again, (n < 8192 ? n : 8192) * sizeof(*offsets)) == 0, "a rewind read other records");
    check(reports == reports_before, "damage reported twice");
    for (size_t i = n; i-- > 0;)
        if (i < 8192)
            spool_ack(s, offsets[i]);
    if (n <= 8192)
        check(spool_acked(s) == spool_head(s), "acked did not reach head");

    static const char topic[] = "fleet/trucks/FUZZ/telemetry", payload[] = "{\"seq\":1}";
    struct spool_record r;
    check(spool_append(s, 42, topic, sizeof(topic) - 1, payload, sizeof(payload) - 1) == 0, "append failed");
    check(spool_flush(s) == 0, "flush failed");
    check(spool_next(s, &r) == 1, "the appended record did not come back");
    check(r.received_ms == 42 && strcmp(r.topic, topic) == 0 && r.payload_len == sizeof(payload) - 1 &&
              memcmp(r.payload, payload, r.payload_len) == 0,
          "the appended record came back different");
    check(spool_next(s, &r) == 0, "more than the appended record");
    spool_close(s);
    return 0;
}
