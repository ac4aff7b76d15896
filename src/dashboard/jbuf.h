/*
 * jbuf.h - a bounded growing buffer for the JSON the dashboard writes.
 *
 * Appends never fail loudly: past max bytes (or when memory is short) the
 * buffer stops growing and says so in overflow, and the caller drops what it
 * built.  Any thread, one buffer per thread.
 */
#ifndef FS_DASHBOARD_JBUF_H
#define FS_DASHBOARD_JBUF_H

#include <stddef.h>

struct jbuf {
    char *p;      /* NUL-terminated while len < cap */
    size_t len, cap, max;
    int overflow;
};

/* An empty buffer that may grow to max bytes. */
void jbuf_init(struct jbuf *b, size_t max);
void jbuf_release(struct jbuf *b);
/* Empties it, keeping its memory. */
void jbuf_reset(struct jbuf *b);
void jbuf_put(struct jbuf *b, const char *s, size_t n);
void jbuf_puts(struct jbuf *b, const char *s);
void jbuf_printf(struct jbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A JSON string literal of n bytes of s (quotes included); control
 * characters and non-ASCII bytes outside valid UTF-8 are escaped or
 * replaced. */
void jbuf_str(struct jbuf *b, const char *s, size_t n);
/* A number in shortest round-trip form; null when not finite. */
void jbuf_num(struct jbuf *b, double v);

#endif
