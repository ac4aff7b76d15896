/*
 * buf.h - a growable byte buffer for text built piece by piece: the COPY
 * streams and array literals of the history and billing pipelines, the
 * dashboard's JSON (with dashboard/jbuf.h).
 *
 * A zeroed struct buf is empty and unbounded; (struct buf){.max = N} is an
 * empty buffer whose len + 1 stays within N bytes.  The bytes are
 * p[0..len); once memory is allocated p[len] is '\0', so a buffer of text
 * is also a C string.  Memory grows by doubling from 1 KiB and is kept
 * across buf_reset(), so a pipeline reuses it batch after batch;
 * buf_release() frees it.
 *
 * Allocation failure or an addition past max: the piece being added is
 * dropped whole (the buffer keeps what it had) and oom is set, and stays set
 * until buf_reset().  Build a whole message, then check oom once before
 * using it.
 *
 * Not thread-safe.
 */
#ifndef FS_BUF_H
#define FS_BUF_H

#include <stddef.h>
#include <string.h>

struct buf {
    char *p;
    size_t len, cap;
    size_t max; /* 0: no bound; else len + 1 <= max */
    int oom;    /* an addition was dropped: no memory, or past max */
};

/* Makes room for more bytes (and the '\0' after them).  Returns 0, or -1
 * with oom set when memory is short or max would be passed (the buffer is
 * unchanged). */
int buf_reserve(struct buf *b, size_t more);

/* Appends s[0..n).  Inline: the COPY writers call it once per field. */
static inline void buf_put(struct buf *b, const void *s, size_t n)
{
    if (b->cap - b->len <= n && buf_reserve(b, n) < 0)
        return;
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static inline void buf_putc(struct buf *b, char c)
{
    buf_put(b, &c, 1);
}

static inline void buf_puts(struct buf *b, const char *s)
{
    buf_put(b, s, strlen(s));
}

/* Appends the formatted text (whole, however long). */
void buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Empties the buffer and clears oom; the memory stays for reuse. */
void buf_reset(struct buf *b);

/* Frees the memory; the buffer is empty again (its max stays). */
void buf_release(struct buf *b);

#endif
