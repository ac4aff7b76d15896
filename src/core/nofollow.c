/*
 * nofollow.c - opening files under folders another user writes (see
 * nofollow.h).
 */
#include "core/nofollow.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Walks rel's components from dfd (which it closes): returns the folder of
 * the last one walked, or -1.  stop_before_last leaves the last component
 * for the caller and puts it in *leaf (pointing into buf). */
static int walk(int dfd, char *buf, int create, mode_t mode, int stop_before_last, const char **leaf)
{
    char *p = buf;
    for (;;) {
        while (*p == '/')
            p++;
        if (!*p)
            break;
        char *end = strchr(p, '/');
        char *next = end ? end + 1 : p + strlen(p);
        if (end)
            *end = '\0';
        while (end && *next == '/')
            next++;
        if (stop_before_last && !*next) {
            *leaf = p;
            return dfd;
        }
        if (strcmp(p, ".") == 0 || strcmp(p, "..") == 0) {
            close(dfd);
            errno = EINVAL;
            return -1;
        }
        int fd = openat(dfd, p, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0 && errno == ENOENT && create) {
            if (mkdirat(dfd, p, mode) != 0 && errno != EEXIST) {
                int e = errno;
                close(dfd);
                errno = e;
                return -1;
            }
            fd = openat(dfd, p, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        }
        int e = errno;
        close(dfd);
        if (fd < 0) {
            errno = e;
            return -1;
        }
        dfd = fd;
        p = next;
    }
    if (stop_before_last) {
        close(dfd);
        errno = EINVAL;
        return -1;
    }
    return dfd;
}

/* The folder of rel's last component, walked from base without following
 * a link (rel is copied into buf, *leaf points at its last component in
 * it); -1 with errno. */
static int open_parent(const char *base, const char *rel, char buf[PATH_MAX], const char **leaf)
{
    if (snprintf(buf, PATH_MAX, "%s", rel) >= PATH_MAX) {
        errno = ENAMETOOLONG;
        return -1;
    }
    int dfd = open(base, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        return -1;
    return walk(dfd, buf, 0, 0, 1, leaf);
}

int nf_opendir(const char *base, const char *rel, int create, mode_t mode)
{
    char buf[PATH_MAX];
    if (snprintf(buf, sizeof(buf), "%s", rel ? rel : "") >= (int)sizeof(buf)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    int dfd = open(base, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        return -1;
    return walk(dfd, buf, create, mode, 0, NULL);
}

int nf_open(const char *base, const char *rel, int flags, mode_t mode)
{
    char buf[PATH_MAX];
    const char *leaf = NULL;
    int dfd = open_parent(base, rel, buf, &leaf);
    if (dfd < 0)
        return -1;
    if (strcmp(leaf, ".") == 0 || strcmp(leaf, "..") == 0) {
        close(dfd);
        errno = EINVAL;
        return -1;
    }
    int trunc = flags & O_TRUNC;
    int oflags = (flags & ~O_TRUNC) | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK;
    int fd = -1, e = 0;
    for (int attempt = 0; attempt < 2; attempt++) {
        fd = openat(dfd, leaf, oflags, mode);
        struct stat st;
        int bad;
        if (fd >= 0) {
            bad = fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || ((flags & O_ACCMODE) != O_RDONLY && st.st_nlink != 1);
            if (!bad)
                break;
            close(fd);
            fd = -1;
            e = EINVAL;
        } else {
            /* O_NOFOLLOW on a link: ELOOP; O_NONBLOCK keeps a FIFO from blocking. */
            e = errno;
            bad = e == ELOOP;
            if (!bad)
                break;
        }
        if (!(flags & O_CREAT) || attempt > 0)
            break;
        /* Ours to create: whatever else is there goes (a link's target stays
         * as it is), and the new file must be the one we make. */
        if (unlinkat(dfd, leaf, 0) != 0 && errno != ENOENT) {
            e = errno;
            break;
        }
        oflags |= O_EXCL;
    }
    close(dfd);
    if (fd < 0) {
        errno = e;
        return -1;
    }
    /* Back to blocking for the caller, then truncate what was checked. */
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) != 0 || (trunc && ftruncate(fd, 0) != 0)) {
        e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

int nf_write(const char *base, const char *rel, const char *text, size_t len, mode_t mode, uid_t uid, gid_t gid)
{
    int fd = nf_open(base, rel, O_WRONLY | O_CREAT | O_TRUNC, mode);
    if (fd < 0)
        return -1;
    if (fchmod(fd, mode) != 0) /* before the text: a file that held none of it may have had another mode */
        goto fail;
    size_t off = 0;
    while (off < len) {
        ssize_t n = write(fd, text + off, len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            goto fail;
        off += (size_t)n;
    }
    if (uid != (uid_t)-1 && fchown(fd, uid, gid) != 0)
        goto fail;
    if (close(fd) != 0)
        return -1;
    return 0;
fail:;
    int e = errno;
    close(fd);
    errno = e;
    return -1;
}

int nf_unlink(const char *base, const char *rel)
{
    char buf[PATH_MAX];
    const char *leaf = NULL;
    int dfd = open_parent(base, rel, buf, &leaf);
    if (dfd < 0)
        return errno == ENOENT ? 0 : -1;
    int rc = unlinkat(dfd, leaf, 0);
    int e = errno;
    close(dfd);
    if (rc != 0 && e != ENOENT) {
        errno = e;
        return -1;
    }
    return 0;
}
