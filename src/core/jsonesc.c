/*
 * jsonesc.c - escaping for JSON strings (see jsonesc.h).
 */
#include "core/jsonesc.h"

#include "core/buf.h"

#include <string.h>

void jsonesc_write(const char *s, size_t n, int flags, void (*put)(void *ud, const char *p, size_t len), void *ud)
{
    char e[JSONESC_MAX];
    for (size_t i = 0; i < n;) {
        size_t run = jsonesc_plain(s + i, n - i, flags);
        if (run)
            put(ud, s + i, run);
        i += run;
        if (i < n) {
            put(ud, e, jsonesc_byte((unsigned char)s[i], flags, e));
            i++;
        }
    }
}

static void put_buf(void *ud, const char *p, size_t len)
{
    buf_put(ud, p, len);
}

void jsonesc_buf(struct buf *b, const char *s, size_t n, int flags)
{
    buf_putc(b, '"');
    jsonesc_write(s, n, flags, put_buf, b);
    buf_putc(b, '"');
}

size_t jsonesc_cut(char *out, size_t max, const char *s, int flags)
{
    char e[JSONESC_MAX];
    size_t o = 0;
    while (*s) {
        size_t n = 1, len = 0;
        while ((s[n] & 0xC0) == 0x80)
            n++;
        for (size_t i = 0; i < n; i++) {
            size_t k = jsonesc_byte((unsigned char)s[i], flags, e);
            len += k ? k : 1;
        }
        if (o + len > max)
            break;
        for (size_t i = 0; i < n; i++) {
            size_t k = jsonesc_byte((unsigned char)s[i], flags, e);
            if (k) {
                memcpy(out + o, e, k);
                o += k;
            } else {
                out[o++] = s[i];
            }
        }
        s += n;
    }
    out[o] = '\0';
    return o;
}
