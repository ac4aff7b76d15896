/*
 * checkpoint.c - the detector's local checkpoint files (checkpoint.h).
 */
#include "detect/checkpoint.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CKPT_MAGIC "FSDETCK1"
#define CKPT_VERSION 1u
#define CKPT_HEADER 16u /* magic + version + count */
#define CKPT_MAX_FILE (8ull << 30)

static uint64_t fnv64(const char *p, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)p[i]) * 1099511628211ull;
    return h;
}

static int put(struct ckpt_writer *w, const void *p, size_t n)
{
    if (w->failed)
        return -1;
    if (w->len + n > w->cap) {
        size_t cap = w->cap ? w->cap : 4096;
        while (cap < w->len + n)
            cap *= 2;
        char *b = realloc(w->buf, cap);
        if (!b) {
            w->failed = 1;
            return -1;
        }
        w->buf = b;
        w->cap = cap;
    }
    memcpy(w->buf + w->len, p, n);
    w->len += n;
    return 0;
}

void ckpt_begin(struct ckpt_writer *w)
{
    w->len = 0;
    w->count = 0;
    w->failed = 0;
    uint32_t v = CKPT_VERSION, c = 0;
    put(w, CKPT_MAGIC, 8);
    put(w, &v, 4);
    put(w, &c, 4);
}

size_t ckpt_entry_begin(struct ckpt_writer *w, int partition, int64_t next_offset)
{
    int32_t p = partition;
    uint64_t len = 0;
    if (put(w, &p, 4) || put(w, &next_offset, 8))
        return (size_t)-1;
    size_t at = w->len;
    if (put(w, &len, 8))
        return (size_t)-1;
    return at;
}

void ckpt_entry_end(struct ckpt_writer *w, size_t len_at)
{
    if (w->failed || len_at == (size_t)-1 || len_at + 8 > w->len)
        return;
    uint64_t len = w->len - (len_at + 8);
    memcpy(w->buf + len_at, &len, 8);
    w->count++;
}

static void path_of(char *buf, size_t size, const char *dir, uint64_t gen)
{
    snprintf(buf, size, "%s/ckpt-%" PRIu64 ".bin", dir, gen);
}

int ckpt_finish_write(struct ckpt_writer *w, const char *dir, uint64_t gen, char *err, size_t err_size)
{
    if (w->failed || w->len < CKPT_HEADER) {
        snprintf(err, err_size, "out of memory for the checkpoint");
        return -1;
    }
    memcpy(w->buf + 12, &w->count, 4);
    uint64_t sum = fnv64(w->buf, w->len);
    if (put(w, &sum, 8)) {
        snprintf(err, err_size, "out of memory for the checkpoint");
        return -1;
    }
    char path[4096], tmp[4200];
    path_of(path, sizeof(path), dir, gen);
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        snprintf(err, err_size, "%s: %s", tmp, strerror(errno));
        return -1;
    }
    size_t off = 0;
    while (off < w->len) {
        ssize_t n = write(fd, w->buf + off, w->len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            snprintf(err, err_size, "%s: %s", tmp, n < 0 ? strerror(errno) : "short write");
            close(fd);
            unlink(tmp);
            return -1;
        }
        off += (size_t)n;
    }
    if (fsync(fd) != 0) {
        snprintf(err, err_size, "fsync %s: %s", tmp, strerror(errno));
        close(fd);
        unlink(tmp);
        return -1;
    }
    close(fd);
    if (rename(tmp, path) != 0) {
        snprintf(err, err_size, "rename %s: %s", tmp, strerror(errno));
        unlink(tmp);
        return -1;
    }
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    return 0;
}

void ckpt_writer_release(struct ckpt_writer *w)
{
    free(w->buf);
    memset(w, 0, sizeof(*w));
}

int ckpt_read(const char *dir, uint64_t gen, struct ckpt_file *f, char *err, size_t err_size)
{
    memset(f, 0, sizeof(*f));
    char path[4096];
    path_of(path, sizeof(path), dir, gen);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, err_size, "%s: %s", path, strerror(errno));
        return -1;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || st.st_size < (off_t)(CKPT_HEADER + 8) || (uint64_t)st.st_size > CKPT_MAX_FILE) {
        snprintf(err, err_size, "%s: not a checkpoint (size)", path);
        close(fd);
        return -1;
    }
    size_t len = (size_t)st.st_size;
    char *buf = malloc(len);
    if (!buf) {
        snprintf(err, err_size, "%s: out of memory", path);
        close(fd);
        return -1;
    }
    size_t off = 0;
    while (off < len) {
        ssize_t n = read(fd, buf + off, len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        off += (size_t)n;
    }
    close(fd);
    uint64_t sum;
    if (off == len)
        memcpy(&sum, buf + len - 8, 8);
    if (off != len || memcmp(buf, CKPT_MAGIC, 8) != 0 || fnv64(buf, len - 8) != sum) {
        snprintf(err, err_size, "%s: torn or foreign file (magic or checksum)", path);
        free(buf);
        return -1;
    }
    uint32_t v;
    memcpy(&v, buf + 8, 4);
    if (v != CKPT_VERSION) {
        snprintf(err, err_size, "%s: version %u, expected %u", path, v, CKPT_VERSION);
        free(buf);
        return -1;
    }
    f->gen = gen;
    f->buf = buf;
    f->len = len - 8;
    return 0;
}

int ckpt_find(const struct ckpt_file *f, int partition, int64_t next_offset, const char **data, size_t *len)
{
    if (!f->buf)
        return 0;
    uint32_t count;
    memcpy(&count, f->buf + 12, 4);
    size_t off = CKPT_HEADER;
    for (uint32_t i = 0; i < count; i++) {
        if (f->len - off < 20)
            return 0;
        int32_t p;
        int64_t o;
        uint64_t n;
        memcpy(&p, f->buf + off, 4);
        memcpy(&o, f->buf + off + 4, 8);
        memcpy(&n, f->buf + off + 12, 8);
        off += 20;
        if (n > f->len - off)
            return 0;
        if (p == partition && o == next_offset) {
            *data = f->buf + off;
            *len = (size_t)n;
            return 1;
        }
        off += (size_t)n;
    }
    return 0;
}

void ckpt_file_release(struct ckpt_file *f)
{
    free(f->buf);
    memset(f, 0, sizeof(*f));
}

int ckpt_parse_meta(const void *meta, size_t size, uint64_t *gen)
{
    const char *s = meta;
    if (!s || size < 6 || size > 25 || memcmp(s, "ckpt:", 5) != 0)
        return 0;
    uint64_t g = 0;
    for (size_t i = 5; i < size; i++) {
        if (s[i] == '\0' && i > 5)
            break;
        if (s[i] < '0' || s[i] > '9')
            return 0;
        g = g * 10 + (uint64_t)(s[i] - '0');
    }
    *gen = g;
    return g > 0;
}

/* G of "ckpt-<G>.bin" (and of "ckpt-<G>.bin.tmp" when tmp), else 0. */
static uint64_t gen_of(const char *name, int *tmp)
{
    if (strncmp(name, "ckpt-", 5) != 0)
        return 0;
    char *end;
    errno = 0;
    unsigned long long g = strtoull(name + 5, &end, 10);
    if (errno || end == name + 5)
        return 0;
    if (strcmp(end, ".bin") == 0) {
        *tmp = 0;
        return g;
    }
    if (strcmp(end, ".bin.tmp") == 0) {
        *tmp = 1;
        return g;
    }
    return 0;
}

uint64_t ckpt_max_gen(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    uint64_t max = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        int tmp;
        uint64_t g = gen_of(e->d_name, &tmp);
        if (g > max)
            max = g;
    }
    closedir(d);
    return max;
}

void ckpt_remove(const char *dir, uint64_t gen)
{
    char path[4096];
    path_of(path, sizeof(path), dir, gen);
    unlink(path);
}

void ckpt_remove_others(const char *dir, uint64_t keep)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d))) {
        int tmp = 0;
        uint64_t g = gen_of(e->d_name, &tmp);
        if (g && (tmp || g != keep)) {
            char path[4096];
            snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
            unlink(path);
        }
    }
    closedir(d);
}
