/*
 * spool.c - append-only segment files with an acknowledged watermark
 * (see spool.h for the positions, the record format and what happens to
 * damage).
 */
#include "bridge/spool.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#define HDR_BYTES 8u          /* u32 length + u32 crc */
#define BODY_FIXED 10u        /* u64 received_ms + u16 topic length */
#define WBUF_BYTES (2u << 20) /* more than the largest record */
#define DEFAULT_SEGMENT (64ull << 20)
#define BODY_MAX (BODY_FIXED + SPOOL_MAX_TOPIC + SPOOL_MAX_PAYLOAD)
/* A resync checks the CRC of every candidate whose header looks right; bytes
 * crafted to look like headers everywhere could make that quadratic, so past
 * this many CRC'd bytes it gives up and skips to the segment's end. */
#define RESYNC_CRC_BUDGET (256ull << 20)

/* A record handed out by spool_next and not yet acknowledged. */
struct flight {
    uint64_t offset;
    uint64_t end;
    int acked;
};

struct segment {
    uint64_t start;
};

struct spool {
    char dir[PATH_MAX];
    int lock_fd;
    int ckpt_fd;
    struct spool_options opt;

    /* Segments in offset order; the last is the one appended to. */
    struct segment *segs;
    size_t nsegs, segs_cap;
    int wfd;           /* the last segment, open for append */
    uint64_t head;     /* flushed end */
    uint64_t own_from; /* head at open: records from here on were written by this process */
    int roll_pending;  /* the last segment was found damaged: the next append starts a new one */
    unsigned char *wbuf;
    size_t wlen;

    uint64_t acked;
    uint64_t read;
    int rfd;             /* segment open for reading */
    uint64_t rfd_start;  /* its start offset */
    uint64_t rfd_size;   /* its size when opened */
    unsigned char *rbuf; /* bytes [rbuf_off, rbuf_off + rbuf_len) */
    size_t rbuf_cap, rbuf_len;
    uint64_t rbuf_off;
    char topic[SPOOL_MAX_TOPIC + 1];

    struct flight *ring; /* circular, in offset order */
    size_t ring_cap, ring_head, ring_len;

    uint64_t damage_seen_to; /* damage before this offset was reported already */
    uint64_t damaged_ranges, damaged_bytes;
    int damaged_files; /* .damaged files in dir */
};

static void put32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
    p[2] = (unsigned char)(v >> 16);
    p[3] = (unsigned char)(v >> 24);
}

static uint32_t get32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void put64(unsigned char *p, uint64_t v)
{
    put32(p, (uint32_t)v);
    put32(p + 4, (uint32_t)(v >> 32));
}

static uint64_t get64(const unsigned char *p)
{
    return (uint64_t)get32(p) | (uint64_t)get32(p + 4) << 32;
}

static void seg_path(const struct spool *s, uint64_t start, char *buf, size_t size)
{
    snprintf(buf, size, "%s/%020" PRIu64 ".spool", s->dir, start);
}

static int seg_push(struct spool *s, uint64_t start)
{
    if (s->nsegs == s->segs_cap) {
        size_t cap = s->segs_cap ? s->segs_cap * 2 : 16;
        struct segment *n = realloc(s->segs, cap * sizeof(*n));
        if (!n)
            return -1;
        s->segs = n;
        s->segs_cap = cap;
    }
    s->segs[s->nsegs++].start = start;
    return 0;
}

static int cmp_seg(const void *a, const void *b)
{
    uint64_t x = ((const struct segment *)a)->start, y = ((const struct segment *)b)->start;
    return x < y ? -1 : x > y;
}

/* Index of the segment holding offset (the last one starting at or before). */
static size_t seg_find(const struct spool *s, uint64_t offset)
{
    size_t i = 0;
    while (i + 1 < s->nsegs && s->segs[i + 1].start <= offset)
        i++;
    return i;
}

static int open_append(struct spool *s, uint64_t start, uint64_t valid_len)
{
    char path[PATH_MAX + 32];
    seg_path(s, start, path, sizeof(path));
    int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0)
        return -1;
    if (ftruncate(fd, (off_t)valid_len) != 0 || lseek(fd, (off_t)valid_len, SEEK_SET) < 0) {
        close(fd);
        return -1;
    }
    if (s->wfd >= 0)
        close(s->wfd);
    s->wfd = fd;
    return 0;
}

/* Opens segment si for reading, if it is not the one open already. */
static int open_read(struct spool *s, size_t si)
{
    uint64_t start = s->segs[si].start;
    if (s->rfd >= 0 && s->rfd_start == start)
        return 0;
    char path[PATH_MAX + 32];
    seg_path(s, start, path, sizeof(path));
    if (s->rfd >= 0)
        close(s->rfd);
    s->rbuf_len = 0;
    s->rfd = open(path, O_RDONLY | O_CLOEXEC);
    if (s->rfd < 0)
        return -1;
    s->rfd_start = start;
    return 0;
}

/* Where the segment holding offset ends: the next one's start, or head. */
static uint64_t seg_end_of(const struct spool *s, size_t si)
{
    return si + 1 < s->nsegs ? s->segs[si + 1].start : s->head;
}

/* Makes bytes [off, off + len) of one segment available in rbuf.  Returns 0
 * with *out pointing at them, 1 when the segment ends before off + len (the
 * file is short, or the range crosses the segment's end), -1 on an I/O
 * error (errno). */
static int read_at(struct spool *s, uint64_t off, size_t len, const unsigned char **out)
{
    if (off >= s->rbuf_off && off + len <= s->rbuf_off + s->rbuf_len) {
        *out = s->rbuf + (off - s->rbuf_off);
        return 0;
    }
    size_t si = seg_find(s, off);
    uint64_t start = s->segs[si].start, seg_end = seg_end_of(s, si);
    if (off < start || off + len > seg_end)
        return 1;
    if (open_read(s, si) != 0)
        return errno == ENOENT ? 1 : -1;
    if (len > s->rbuf_cap) {
        unsigned char *n = realloc(s->rbuf, len);
        if (!n)
            return -1;
        s->rbuf = n;
        s->rbuf_cap = len;
    }
    /* Read ahead as far as the buffer and the flushed data of this segment go. */
    size_t want = s->rbuf_cap;
    if (off + want > seg_end)
        want = (size_t)(seg_end - off);
    ssize_t n = pread(s->rfd, s->rbuf, want, (off_t)(off - start));
    if (n < 0)
        return -1;
    s->rbuf_off = off;
    s->rbuf_len = (size_t)n;
    if ((size_t)n < len)
        return 1;
    *out = s->rbuf;
    return 0;
}

/* Checks the record at off, which must end by end.  Returns 0 with *rec
 * pointing at it (header first), 1 when it fails a check (*why says which),
 * -1 on an I/O error.  verify_crc 0 skips the CRC (records this process
 * wrote); *crc_bytes, if given, counts the bytes whose CRC was computed. */
static int check_record(struct spool *s, uint64_t off, uint64_t end, int verify_crc, const unsigned char **rec,
                        const char **why, uint64_t *crc_bytes)
{
    const unsigned char *p;
    int rc;
    if (off > end || end - off < HDR_BYTES + BODY_FIXED) {
        *why = "cut short";
        return 1;
    }
    if ((rc = read_at(s, off, HDR_BYTES + BODY_FIXED, &p)) != 0)
        goto short_or_error;
    uint32_t blen = get32(p);
    size_t tlen = (size_t)p[HDR_BYTES + 8] | (size_t)p[HDR_BYTES + 9] << 8;
    if (blen < BODY_FIXED || blen > BODY_MAX) {
        *why = "bad length";
        return 1;
    }
    if (end - off - HDR_BYTES < blen) {
        *why = "cut short";
        return 1;
    }
    if (tlen > SPOOL_MAX_TOPIC || BODY_FIXED + tlen > blen || blen - BODY_FIXED - tlen > SPOOL_MAX_PAYLOAD) {
        *why = "bad topic length";
        return 1;
    }
    if ((rc = read_at(s, off, HDR_BYTES + blen, &p)) != 0)
        goto short_or_error;
    if (verify_crc) {
        if (crc_bytes)
            *crc_bytes += blen;
        if ((uint32_t)crc32(0L, p + HDR_BYTES, blen) != get32(p + 4)) {
            *why = "bad CRC";
            return 1;
        }
    }
    *rec = p;
    return 0;
short_or_error:
    *why = "cut short";
    return rc;
}

/* The end of segment si's bytes: its end, or less if the file is shorter
 * (only looked at once a record has failed: it costs an fstat). */
static int seg_data_end(struct spool *s, size_t si, uint64_t *data_end)
{
    uint64_t start = s->segs[si].start;
    struct stat st;
    *data_end = seg_end_of(s, si);
    if (open_read(s, si) != 0) {
        if (errno != ENOENT)
            return -1;
        *data_end = start; /* gone: all of it is damage */
        return 0;
    }
    if (fstat(s->rfd, &st) != 0)
        return -1;
    if (start + (uint64_t)st.st_size < *data_end)
        *data_end = start + (uint64_t)st.st_size;
    return 0;
}

/* Resynchronises after a bad record at from: the next offset before
 * data_end where a whole record passes every check, CRC included.  Returns
 * 0 with *next set and *found 1, or *found 0 when there is none (or the
 * search gave up past RESYNC_CRC_BUDGET); -1 on an I/O error. */
static int find_resync(struct spool *s, uint64_t from, uint64_t data_end, uint64_t *next, int *found)
{
    uint64_t crc_bytes = 0;
    *found = 0;
    for (uint64_t q = from + 1; q < data_end && data_end - q >= HDR_BYTES + BODY_FIXED; q++) {
        const unsigned char *rec;
        const char *why;
        int rc = check_record(s, q, data_end, 1, &rec, &why, &crc_bytes);
        if (rc < 0)
            return -1;
        if (rc == 0) {
            *next = q;
            *found = 1;
            return 0;
        }
        if (crc_bytes > RESYNC_CRC_BUDGET)
            break;
    }
    return 0;
}

/* Keeps a hard link to the damaged segment starting at start as
 * <segment>.damaged (the bytes stay for inspection after the spool deletes
 * the segment), deleting the oldest .damaged files past
 * SPOOL_MAX_DAMAGED_FILES.  Returns how many the directory holds; kept gets
 * the link's path, or "" if none could be made. */
static int set_aside(struct spool *s, uint64_t start, char *kept, size_t kept_size)
{
    char path[PATH_MAX + 32];
    seg_path(s, start, path, sizeof(path));
    kept[0] = '\0';
    for (int tries = 0; tries < 64; tries++) {
        DIR *d = opendir(s->dir);
        if (!d)
            return 0;
        int count = 0, present = 0;
        uint64_t oldest = UINT64_MAX;
        struct dirent *e;
        while ((e = readdir(d))) {
            char *end;
            unsigned long long o = strtoull(e->d_name, &end, 10);
            if (end == e->d_name || strcmp(end, ".spool.damaged") != 0)
                continue;
            count++;
            if (o == start)
                present = 1;
            else if (o < oldest)
                oldest = o;
        }
        closedir(d);
        if (present) {
            snprintf(kept, kept_size, "%s.damaged", path);
            return count;
        }
        if (count < SPOOL_MAX_DAMAGED_FILES) {
            char link_path[PATH_MAX + 48];
            snprintf(link_path, sizeof(link_path), "%s.damaged", path);
            if (link(path, link_path) != 0)
                return count;
            snprintf(kept, kept_size, "%s", link_path);
            return count + 1;
        }
        char old[PATH_MAX + 48];
        seg_path(s, oldest, old, sizeof(old));
        strncat(old, ".damaged", sizeof(old) - strlen(old) - 1);
        if (unlink(old) != 0)
            return count;
    }
    return 0;
}

static void report_damage(struct spool *s, uint64_t from, uint64_t to, const char *why)
{
    if (from < s->damage_seen_to)
        return; /* seen before a rewind */
    s->damage_seen_to = to;
    s->damaged_ranges++;
    s->damaged_bytes += to - from;
    size_t si = seg_find(s, from);
    uint64_t start = s->segs[si].start;
    if (si + 1 == s->nsegs)
        s->roll_pending = 1; /* the damaged file takes no more appends */
    char path[PATH_MAX + 32], kept[PATH_MAX + 48];
    seg_path(s, start, path, sizeof(path));
    int files = set_aside(s, start, kept, sizeof(kept));
    s->damaged_files = files;
    if (s->opt.on_damage) {
        struct spool_damage d = {.segment = path,
                                 .seg_offset = from - start,
                                 .bytes = to - from,
                                 .why = why,
                                 .kept_as = kept[0] ? kept : NULL,
                                 .kept_files = files};
        s->opt.on_damage(&d, s->opt.ctx);
    }
}

/* Recovers the last segment, of size bytes: walks its records (past any
 * damage) to the end of the last whole one, *valid_end.  *torn: what follows
 * it is a torn write (its header promises more than the file holds);
 * *damaged: some range in it is damage (reported later by spool_next). */
static int scan_last(struct spool *s, uint64_t start, uint64_t size, uint64_t *valid_end, int *torn, int *damaged)
{
    uint64_t pos = start, end = start + size;
    int rc = 0;
    s->head = end;
    *valid_end = start;
    *torn = *damaged = 0;
    while (pos < end) {
        const unsigned char *rec;
        const char *why;
        rc = check_record(s, pos, end, 1, &rec, &why, NULL);
        if (rc < 0)
            goto out;
        if (rc == 0) {
            pos += HDR_BYTES + get32(rec);
            *valid_end = pos;
            continue;
        }
        uint64_t next;
        int found;
        if ((rc = find_resync(s, pos, end, &next, &found)) != 0)
            goto out;
        if (!found) {
            const unsigned char *h;
            *torn = end - pos < HDR_BYTES;
            if (!*torn && (rc = read_at(s, pos, HDR_BYTES, &h)) < 0)
                goto out;
            if (!*torn && rc == 0) {
                uint32_t blen = get32(h);
                *torn = blen >= BODY_FIXED && blen <= BODY_MAX && end - pos - HDR_BYTES < blen;
            }
            rc = 0;
            *damaged |= !*torn;
            break;
        }
        *damaged = 1;
        pos = next;
    }
out:
    /* What was read may be cut off now: read it afresh. */
    if (s->rfd >= 0)
        close(s->rfd);
    s->rfd = -1;
    s->rbuf_len = 0;
    return rc;
}

static int read_checkpoint(struct spool *s, uint64_t *out)
{
    char buf[32] = {0};
    ssize_t n = pread(s->ckpt_fd, buf, sizeof(buf) - 1, 0);
    if (n <= 0)
        return -1;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(buf, &end, 10);
    if (errno || end == buf)
        return -1;
    *out = v;
    return 0;
}

int spool_open(const char *dir, const struct spool_options *opt, struct spool **out, char *err, size_t err_size)
{
    struct spool *s = calloc(1, sizeof(*s));
    char path[PATH_MAX + 32];
    if (!s) {
        snprintf(err, err_size, "out of memory");
        return -1;
    }
    s->lock_fd = s->ckpt_fd = s->wfd = s->rfd = -1;
    if (opt)
        s->opt = *opt;
    if (!s->opt.segment_bytes)
        s->opt.segment_bytes = DEFAULT_SEGMENT;
    snprintf(s->dir, sizeof(s->dir), "%s", dir);

    /* Telemetry: the owner's only.  A spool made by an older version (0755,
     * 0644) is tightened on open. */
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        snprintf(err, err_size, "cannot create spool dir %s: %s", dir, strerror(errno));
        goto fail;
    }
    struct stat dst;
    if (stat(dir, &dst) != 0 || ((dst.st_mode & 077) && chmod(dir, 0700) != 0)) {
        snprintf(err, err_size, "cannot make spool dir %s private (chmod 0700): %s", dir, strerror(errno));
        goto fail;
    }
    snprintf(path, sizeof(path), "%s/lock", dir);
    s->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (s->lock_fd < 0 || flock(s->lock_fd, LOCK_EX | LOCK_NB) != 0) {
        snprintf(err, err_size, "spool %s is in use by another bridge (or not writable): %s", dir, strerror(errno));
        goto fail;
    }
    snprintf(path, sizeof(path), "%s/checkpoint", dir);
    s->ckpt_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (s->ckpt_fd < 0 || fchmod(s->lock_fd, 0600) != 0 || fchmod(s->ckpt_fd, 0600) != 0) {
        snprintf(err, err_size, "cannot open %s: %s", path, strerror(errno));
        goto fail;
    }
    s->wbuf = malloc(WBUF_BYTES);
    s->rbuf_cap = WBUF_BYTES;
    s->rbuf = malloc(s->rbuf_cap);
    if (!s->wbuf || !s->rbuf) {
        snprintf(err, err_size, "out of memory");
        goto fail;
    }

    DIR *d = opendir(dir);
    if (!d) {
        snprintf(err, err_size, "cannot list %s: %s", dir, strerror(errno));
        goto fail;
    }
    struct dirent *e;
    while ((e = readdir(d))) {
        char *end;
        unsigned long long start = strtoull(e->d_name, &end, 10);
        if (end == e->d_name || (strcmp(end, ".spool") != 0 && strcmp(end, ".spool.damaged") != 0))
            continue;
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        chmod(path, 0600); /* best effort: reading it needs no more */
        s->damaged_files += strcmp(end, ".spool.damaged") == 0;
        if (strcmp(end, ".spool") == 0 && seg_push(s, start) != 0) {
            closedir(d);
            snprintf(err, err_size, "out of memory");
            goto fail;
        }
    }
    closedir(d);
    if (s->nsegs > 1)
        qsort(s->segs, s->nsegs, sizeof(*s->segs), cmp_seg);

    uint64_t ckpt = 0;
    int have_ckpt = read_checkpoint(s, &ckpt) == 0;
    if (s->nsegs == 0) {
        /* A fresh spool continues the offset space of a checkpoint, if any,
         * so offsets never repeat. */
        if (seg_push(s, have_ckpt ? ckpt : 0) != 0 || open_append(s, s->segs[0].start, 0) != 0) {
            snprintf(err, err_size, "cannot create a segment in %s: %s", dir, strerror(errno));
            goto fail;
        }
        s->head = s->segs[0].start;
    } else {
        /* The last segment: a torn write at its end is cut off; if it
         * holds damage, appends go to a new segment from its end. */
        uint64_t last = s->segs[s->nsegs - 1].start, valid_end;
        struct stat st;
        int torn, damaged;
        seg_path(s, last, path, sizeof(path));
        if (stat(path, &st) != 0 || scan_last(s, last, (uint64_t)st.st_size, &valid_end, &torn, &damaged) != 0) {
            snprintf(err, err_size, "cannot recover spool segment %s: %s", path, strerror(errno));
            goto fail;
        }
        uint64_t keep = torn ? valid_end - last : (uint64_t)st.st_size;
        if (open_append(s, last, keep) != 0) {
            snprintf(err, err_size, "cannot recover spool segment %s: %s", path, strerror(errno));
            goto fail;
        }
        s->head = last + keep;
        if (torn && s->opt.on_damage) {
            struct spool_damage dmg = {.segment = path,
                                       .seg_offset = keep,
                                       .bytes = (uint64_t)st.st_size - keep,
                                       .why = "torn write",
                                       .torn = 1};
            s->opt.on_damage(&dmg, s->opt.ctx);
        }
        if (damaged && (seg_push(s, s->head) != 0 || open_append(s, s->head, 0) != 0)) {
            snprintf(err, err_size, "cannot create a segment in %s: %s", dir, strerror(errno));
            goto fail;
        }
    }
    s->acked = have_ckpt ? ckpt : s->segs[0].start;
    if (s->acked < s->segs[0].start)
        s->acked = s->segs[0].start;
    if (s->acked > s->head)
        s->acked = s->head;
    s->read = s->acked;
    s->own_from = s->head;
    *out = s;
    return 0;
fail:
    spool_close(s);
    return -1;
}

int spool_flush(struct spool *s)
{
    size_t off = 0;
    while (off < s->wlen) {
        ssize_t n = write(s->wfd, s->wbuf + off, s->wlen - off);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        off += (size_t)n;
    }
    s->head += s->wlen;
    s->wlen = 0;
    if (s->opt.fsync && off && fdatasync(s->wfd) != 0)
        return -1;
    return 0;
}

int spool_append(struct spool *s, int64_t received_ms, const char *topic, size_t topic_len, const void *payload,
                 size_t payload_len)
{
    if (topic_len > SPOOL_MAX_TOPIC || payload_len > SPOOL_MAX_PAYLOAD) {
        errno = EMSGSIZE;
        return -1;
    }
    size_t blen = BODY_FIXED + topic_len + payload_len, rlen = HDR_BYTES + blen;
    if (s->wlen + rlen > WBUF_BYTES && spool_flush(s) != 0)
        return -1;
    /* Roll on a record boundary once the segment is full. */
    uint64_t seg_start = s->segs[s->nsegs - 1].start;
    if (s->head + s->wlen - seg_start >= s->opt.segment_bytes || s->roll_pending) {
        if (spool_flush(s) != 0)
            return -1;
        if (seg_push(s, s->head) != 0 || open_append(s, s->head, 0) != 0)
            return -1;
        s->roll_pending = 0;
    }
    unsigned char *p = s->wbuf + s->wlen;
    if (rlen > WBUF_BYTES) {
        errno = EMSGSIZE;
        return -1;
    }
    unsigned char *body = p + HDR_BYTES;
    put64(body, (uint64_t)received_ms);
    body[8] = (unsigned char)topic_len;
    body[9] = (unsigned char)(topic_len >> 8);
    memcpy(body + BODY_FIXED, topic, topic_len);
    memcpy(body + BODY_FIXED + topic_len, payload, payload_len);
    put32(p, (uint32_t)blen);
    put32(p + 4, (uint32_t)crc32(0L, body, (uInt)blen));
    s->wlen += rlen;
    return 0;
}

/* Hands out [offset, end); a skipped damaged range goes in already acked. */
static int ring_push(struct spool *s, uint64_t offset, uint64_t end, int acked)
{
    if (s->ring_len == s->ring_cap) {
        size_t cap = s->ring_cap ? s->ring_cap * 2 : 1024;
        struct flight *n = malloc(cap * sizeof(*n));
        if (!n)
            return -1;
        for (size_t i = 0; i < s->ring_len; i++)
            n[i] = s->ring[(s->ring_head + i) % s->ring_cap];
        free(s->ring);
        s->ring = n;
        s->ring_cap = cap;
        s->ring_head = 0;
    }
    struct flight *f = &s->ring[(s->ring_head + s->ring_len) % s->ring_cap];
    f->offset = offset;
    f->end = end;
    f->acked = acked;
    s->ring_len++;
    return 0;
}

/* Moves acked past the acknowledged records at the ring's head. */
static void ring_advance(struct spool *s)
{
    while (s->ring_len && s->ring[s->ring_head].acked) {
        s->acked = s->ring[s->ring_head].end;
        s->ring_head = (s->ring_head + 1) % s->ring_cap;
        s->ring_len--;
    }
    /* Nothing in flight: acked catches up with read, across segment ends. */
    if (!s->ring_len)
        s->acked = s->read;
}

int spool_next(struct spool *s, struct spool_record *rec)
{
    const unsigned char *r;
    for (;;) {
        if (s->read >= s->head)
            return 0;
        size_t si = seg_find(s, s->read);
        /* The CRC finds records torn by a crash or damaged on disk, so it is
         * checked for what an earlier process left; what this one wrote
         * moments ago through its own buffer is read back as it was (from
         * the page cache, or from disk if the cache let it go: damage in
         * those seconds is the one case the check would have caught, and is
         * left to the disk). */
        const char *why;
        int rc = check_record(s, s->read, seg_end_of(s, si), s->read < s->own_from, &r, &why, NULL);
        if (rc < 0)
            return -1;
        if (rc == 0)
            break;
        /* Damage: skip to the next whole record of this segment, or to its
         * end, as if the bytes between had been acknowledged. */
        uint64_t data_end, next;
        int found;
        if (seg_data_end(s, si, &data_end) != 0 || find_resync(s, s->read, data_end, &next, &found) != 0)
            return -1;
        if (!found)
            next = seg_end_of(s, si);
        report_damage(s, s->read, next, why);
        if (ring_push(s, s->read, next, 1) != 0)
            return -1;
        s->read = next;
        ring_advance(s);
    }
    uint32_t blen = get32(r);
    const unsigned char *body = r + HDR_BYTES;
    size_t tlen = (size_t)body[8] | (size_t)body[9] << 8;
    if (ring_push(s, s->read, s->read + HDR_BYTES + blen, 0) != 0)
        return -1;
    memcpy(s->topic, body + BODY_FIXED, tlen);
    s->topic[tlen] = '\0';
    rec->offset = s->read;
    rec->received_ms = (int64_t)get64(body);
    rec->topic = s->topic;
    rec->payload = body + BODY_FIXED + tlen;
    rec->payload_len = blen - BODY_FIXED - tlen;
    s->read += HDR_BYTES + blen;
    return 1;
}

void spool_unread_last(struct spool *s)
{
    if (!s->ring_len)
        return;
    s->ring_len--;
    s->read = s->ring[(s->ring_head + s->ring_len) % s->ring_cap].offset;
}

void spool_ack(struct spool *s, uint64_t offset)
{
    /* Binary search over the ring, which is sorted by offset. */
    size_t lo = 0, hi = s->ring_len;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        uint64_t o = s->ring[(s->ring_head + mid) % s->ring_cap].offset;
        if (o < offset)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo >= s->ring_len || s->ring[(s->ring_head + lo) % s->ring_cap].offset != offset)
        return;
    s->ring[(s->ring_head + lo) % s->ring_cap].acked = 1;
    ring_advance(s);
}

void spool_rewind(struct spool *s)
{
    s->ring_len = 0;
    s->ring_head = 0;
    s->read = s->acked;
}

int spool_checkpoint(struct spool *s)
{
    char buf[32];
    int n = snprintf(buf, sizeof(buf), "%020" PRIu64 "\n", s->acked);
    if (pwrite(s->ckpt_fd, buf, (size_t)n, 0) != n)
        return -1;
    if (s->opt.fsync)
        fdatasync(s->ckpt_fd);
    /* Delete segments that end at or before acked, keeping the last one. */
    size_t drop = 0;
    while (drop + 1 < s->nsegs && s->segs[drop + 1].start <= s->acked)
        drop++;
    for (size_t i = 0; i < drop; i++) {
        char path[PATH_MAX + 32];
        seg_path(s, s->segs[i].start, path, sizeof(path));
        if (s->rfd >= 0 && s->rfd_start == s->segs[i].start) {
            close(s->rfd);
            s->rfd = -1;
            s->rbuf_len = 0;
        }
        unlink(path);
    }
    if (drop) {
        memmove(s->segs, s->segs + drop, (s->nsegs - drop) * sizeof(*s->segs));
        s->nsegs -= drop;
    }
    return 0;
}

uint64_t spool_acked(const struct spool *s)
{
    return s->acked;
}
uint64_t spool_read_pos(const struct spool *s)
{
    return s->read;
}
uint64_t spool_head(const struct spool *s)
{
    return s->head;
}
uint64_t spool_pending_bytes(const struct spool *s)
{
    return s->head + s->wlen - s->acked;
}
size_t spool_in_flight(const struct spool *s)
{
    return s->ring_len;
}
uint64_t spool_damaged_ranges(const struct spool *s)
{
    return s->damaged_ranges;
}
uint64_t spool_damaged_bytes(const struct spool *s)
{
    return s->damaged_bytes;
}
int spool_damaged_files(const struct spool *s)
{
    return s->damaged_files;
}

void spool_close(struct spool *s)
{
    if (!s)
        return;
    if (s->wfd >= 0) {
        spool_flush(s);
        if (s->ckpt_fd >= 0)
            spool_checkpoint(s);
        close(s->wfd);
    }
    if (s->rfd >= 0)
        close(s->rfd);
    if (s->ckpt_fd >= 0)
        close(s->ckpt_fd);
    if (s->lock_fd >= 0)
        close(s->lock_fd);
    free(s->segs);
    free(s->wbuf);
    free(s->rbuf);
    free(s->ring);
    free(s);
}
