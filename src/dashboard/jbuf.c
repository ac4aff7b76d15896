/*
 * jbuf.c - bounded JSON output buffer (see jbuf.h).
 */
#include "dashboard/jbuf.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void jbuf_init(struct jbuf *b, size_t max)
{
    memset(b, 0, sizeof(*b));
    b->max = max;
}

void jbuf_release(struct jbuf *b)
{
    free(b->p);
    memset(b, 0, sizeof(*b));
}

void jbuf_reset(struct jbuf *b)
{
    b->len = 0;
    b->overflow = 0;
    if (b->p)
        b->p[0] = '\0';
}

static int reserve(struct jbuf *b, size_t n)
{
    if (b->overflow)
        return -1;
    if (b->len + n + 1 > b->max) {
        b->overflow = 1;
        return -1;
    }
    if (b->len + n + 1 <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 1024;
    while (cap < b->len + n + 1)
        cap *= 2;
    if (cap > b->max)
        cap = b->max;
    char *p = realloc(b->p, cap);
    if (!p) {
        b->overflow = 1;
        return -1;
    }
    b->p = p;
    b->cap = cap;
    return 0;
}

void jbuf_put(struct jbuf *b, const char *s, size_t n)
{
    if (reserve(b, n) != 0)
        return;
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

void jbuf_puts(struct jbuf *b, const char *s) { jbuf_put(b, s, strlen(s)); }

void jbuf_printf(struct jbuf *b, const char *fmt, ...)
{
    char tmp[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n < sizeof(tmp)) {
        jbuf_put(b, tmp, (size_t)n);
        return;
    }
    if (reserve(b, (size_t)n) != 0)
        return;
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void jbuf_str(struct jbuf *b, const char *s, size_t n)
{
    jbuf_put(b, "\"", 1);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            char e[2] = {'\\', (char)c};
            jbuf_put(b, e, 2);
        } else if (c < 0x20 || c >= 0x7f) {
            jbuf_printf(b, "\\u%04x", c < 0x20 ? c : 0xfffd);
        } else {
            jbuf_put(b, (const char *)&s[i], 1);
        }
    }
    jbuf_put(b, "\"", 1);
}

void jbuf_num(struct jbuf *b, double v)
{
    if (!isfinite(v)) {
        jbuf_puts(b, "null");
        return;
    }
    char tmp[32];
    for (int prec = 6; prec <= 17; prec++) {
        snprintf(tmp, sizeof(tmp), "%.*g", prec, v);
        if (strtod(tmp, NULL) == v)
            break;
    }
    jbuf_puts(b, tmp);
}
