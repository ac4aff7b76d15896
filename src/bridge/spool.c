/*
 * spool.c - append-only segment files with an acknowledged watermark
 * (see spool.h for the positions and the record format).
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

#define HDR_BYTES      8u  /* u32 length + u32 crc */
#define BODY_FIXED     10u /* u64 received_ms + u16 topic length */
#define WBUF_BYTES     (2u << 20) /* more than the largest record */
#define DEFAULT_SEGMENT (64ull << 20)

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
    int wfd;         /* the last segment, open for append */
    uint64_t head;   /* flushed end */
    uint64_t own_from; /* head at open: records from here on were written by this process */
    unsigned char *wbuf;
    size_t wlen;

    uint64_t acked;
    uint64_t read;
    int rfd;              /* segment open for reading */
    uint64_t rfd_start;   /* its start offset */
    unsigned char *rbuf;  /* bytes [rbuf_off, rbuf_off + rbuf_len) */
    size_t rbuf_cap, rbuf_len;
    uint64_t rbuf_off;
    char topic[SPOOL_MAX_TOPIC + 1];

    struct flight *ring;  /* circular, in offset order */
    size_t ring_cap, ring_head, ring_len;
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

static uint64_t get64(const unsigned char *p) { return (uint64_t)get32(p) | (uint64_t)get32(p + 4) << 32; }

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
    int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
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

/* Scans the last segment for its valid end: the first record that is short
 * or fails its CRC ends it. */
static int scan_valid_len(struct spool *s, uint64_t start, uint64_t *len)
{
    char path[PATH_MAX + 32];
    seg_path(s, start, path, sizeof(path));
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    struct stat st;
    if (fstat(fd, &st) != 0) {
        close(fd);
        return -1;
    }
    uint64_t size = (uint64_t)st.st_size, pos = 0;
    unsigned char hdr[HDR_BYTES];
    unsigned char *body = NULL;
    size_t body_cap = 0;
    while (pos + HDR_BYTES <= size) {
        if (pread(fd, hdr, HDR_BYTES, (off_t)pos) != HDR_BYTES)
            break;
        uint32_t blen = get32(hdr), crc = get32(hdr + 4);
        if (blen < BODY_FIXED || blen > BODY_FIXED + SPOOL_MAX_TOPIC + SPOOL_MAX_PAYLOAD ||
            pos + HDR_BYTES + blen > size)
            break;
        if (blen > body_cap) {
            unsigned char *n = realloc(body, blen);
            if (!n)
                break;
            body = n;
            body_cap = blen;
        }
        if (pread(fd, body, blen, (off_t)(pos + HDR_BYTES)) != (ssize_t)blen)
            break;
        if ((uint32_t)crc32(0L, body, blen) != crc)
            break;
        pos += HDR_BYTES + blen;
    }
    free(body);
    close(fd);
    *len = pos;
    return 0;
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

    if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
        snprintf(err, err_size, "cannot create spool dir %s: %s", dir, strerror(errno));
        goto fail;
    }
    snprintf(path, sizeof(path), "%s/lock", dir);
    s->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (s->lock_fd < 0 || flock(s->lock_fd, LOCK_EX | LOCK_NB) != 0) {
        snprintf(err, err_size, "spool %s is in use by another bridge (or not writable): %s", dir,
                 strerror(errno));
        goto fail;
    }
    snprintf(path, sizeof(path), "%s/checkpoint", dir);
    s->ckpt_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (s->ckpt_fd < 0) {
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
        if (end != e->d_name && strcmp(end, ".spool") == 0 && seg_push(s, start) != 0) {
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
        uint64_t last = s->segs[s->nsegs - 1].start, len;
        if (scan_valid_len(s, last, &len) != 0 || open_append(s, last, len) != 0) {
            snprintf(err, err_size, "cannot recover spool segment in %s: %s", dir, strerror(errno));
            goto fail;
        }
        s->head = last + len;
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
    if (s->head + s->wlen - seg_start >= s->opt.segment_bytes) {
        if (spool_flush(s) != 0)
            return -1;
        if (seg_push(s, s->head) != 0 || open_append(s, s->head, 0) != 0)
            return -1;
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

/* Makes bytes [off, off + len) available in rbuf; returns a pointer or NULL. */
static const unsigned char *read_at(struct spool *s, uint64_t off, size_t len)
{
    if (off >= s->rbuf_off && off + len <= s->rbuf_off + s->rbuf_len)
        return s->rbuf + (off - s->rbuf_off);
    size_t si = seg_find(s, off);
    uint64_t start = s->segs[si].start;
    if (s->rfd < 0 || s->rfd_start != start) {
        char path[PATH_MAX + 32];
        seg_path(s, start, path, sizeof(path));
        if (s->rfd >= 0)
            close(s->rfd);
        s->rfd = open(path, O_RDONLY | O_CLOEXEC);
        if (s->rfd < 0)
            return NULL;
        s->rfd_start = start;
    }
    if (len > s->rbuf_cap) {
        unsigned char *n = realloc(s->rbuf, len);
        if (!n)
            return NULL;
        s->rbuf = n;
        s->rbuf_cap = len;
    }
    /* Read ahead as far as the buffer and the flushed data of this segment go. */
    uint64_t seg_end = si + 1 < s->nsegs ? s->segs[si + 1].start : s->head;
    size_t want = s->rbuf_cap;
    if (off + want > seg_end)
        want = (size_t)(seg_end - off);
    if (want < len)
        return NULL;
    ssize_t n = pread(s->rfd, s->rbuf, want, (off_t)(off - start));
    if (n < (ssize_t)len)
        return NULL;
    s->rbuf_off = off;
    s->rbuf_len = (size_t)n;
    return s->rbuf;
}

static int ring_push(struct spool *s, uint64_t offset, uint64_t end)
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
    f->acked = 0;
    s->ring_len++;
    return 0;
}

int spool_next(struct spool *s, struct spool_record *rec)
{
    if (s->read >= s->head)
        return 0;
    const unsigned char *h = read_at(s, s->read, HDR_BYTES);
    if (!h)
        return -1;
    uint32_t blen = get32(h), crc = get32(h + 4);
    if (blen < BODY_FIXED || blen > BODY_FIXED + SPOOL_MAX_TOPIC + SPOOL_MAX_PAYLOAD)
        return -1;
    const unsigned char *r = read_at(s, s->read, HDR_BYTES + blen);
    if (!r)
        return -1;
    const unsigned char *body = r + HDR_BYTES;
    /* The CRC finds records torn by a crash or damaged on disk, so it is
     * checked for what an earlier process left; what this one wrote moments
     * ago through its own buffer is read back as it was (from the page cache,
     * or from disk if the cache let it go: damage in those seconds is the
     * one case the check would have caught, and is left to the disk). */
    if (s->read < s->own_from && (uint32_t)crc32(0L, body, blen) != crc)
        return -1;
    size_t tlen = (size_t)body[8] | (size_t)body[9] << 8;
    if (BODY_FIXED + tlen > blen || tlen > SPOOL_MAX_TOPIC)
        return -1;
    if (ring_push(s, s->read, s->read + HDR_BYTES + blen) != 0)
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
    while (s->ring_len && s->ring[s->ring_head].acked) {
        s->acked = s->ring[s->ring_head].end;
        s->ring_head = (s->ring_head + 1) % s->ring_cap;
        s->ring_len--;
    }
    /* Nothing in flight: acked catches up with read, across segment ends. */
    if (!s->ring_len)
        s->acked = s->read;
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

uint64_t spool_acked(const struct spool *s) { return s->acked; }
uint64_t spool_read_pos(const struct spool *s) { return s->read; }
uint64_t spool_head(const struct spool *s) { return s->head; }
uint64_t spool_pending_bytes(const struct spool *s) { return s->head + s->wlen - s->acked; }
size_t spool_in_flight(const struct spool *s) { return s->ring_len; }

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
