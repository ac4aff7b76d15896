/*
 * buf.c - see buf.h.
 */
#include "core/buf.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int buf_reserve(struct buf *b, size_t more)
{
    if (more < b->cap - b->len)
        return 0;
    if (more >= SIZE_MAX / 2 - b->len || (b->max && b->len + more + 1 > b->max)) {
        b->oom = 1;
        return -1;
    }
    size_t cap = b->cap ? b->cap : 1024;
    while (cap <= b->len + more)
        cap *= 2;
    if (b->max && cap > b->max)
        cap = b->max;
    char *p = realloc(b->p, cap);
    if (!p) {
        b->oom = 1;
        return -1;
    }
    b->p = p;
    b->cap = cap;
    return 0;
}

void buf_printf(struct buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    size_t room = b->cap - b->len;
    int n = vsnprintf(room ? b->p + b->len : NULL, room, fmt, ap);
    va_end(ap);
    if (n < 0) {
        if (room)
            b->p[b->len] = '\0';
        return;
    }
    if ((size_t)n >= room) {
        if (buf_reserve(b, (size_t)n) < 0) {
            if (room)
                b->p[b->len] = '\0'; /* undo the cut-off text vsnprintf left */
            return;
        }
        va_start(ap, fmt);
        vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
        va_end(ap);
    }
    b->len += (size_t)n;
}

void buf_reset(struct buf *b)
{
    b->len = 0;
    b->oom = 0;
    if (b->p)
        b->p[0] = '\0';
}

void buf_release(struct buf *b)
{
    free(b->p);
    *b = (struct buf){.max = b->max};
}
