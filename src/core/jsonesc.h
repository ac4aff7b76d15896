/*
 * jsonesc.h - escaping text for the inside of a JSON string, the one rule
 * every JSON FleetSync writes by hand follows (the telemetry serializer, the
 * detector's alerts, the dashboard's messages, the reports' --json).
 *
 * '"' and '\' get a backslash; bytes below 0x20 become \u00XX (lowercase
 * hex), or with JSONESC_SHORT \b \f \n \r \t for those five; every other
 * byte stands for itself (the caller vouches for its UTF-8), or with
 * JSONESC_ASCII each byte from 0x7f up becomes \ufffd, so the output is
 * ASCII whatever the input was.
 *
 * No allocation but a struct buf's growth.  Pure; any thread.
 */
#ifndef FS_CORE_JSONESC_H
#define FS_CORE_JSONESC_H

#include <stddef.h>
#include <string.h>

struct buf; /* core/buf.h */

#define JSONESC_SHORT 1 /* \b \f \n \r \t in their two-character forms */
#define JSONESC_ASCII 2 /* bytes >= 0x7f as \ufffd */

#define JSONESC_MAX 6 /* the longest escape of one byte: \u00XX, \ufffd */

/* The escape of byte c into e (room for JSONESC_MAX) and its length, or 0
 * when c stands for itself.  Inline: writers test every byte. */
static inline size_t jsonesc_byte(unsigned char c, int flags, char e[JSONESC_MAX])
{
    static const char hex[] = "0123456789abcdef";
    if (c == '"' || c == '\\') {
        e[0] = '\\';
        e[1] = (char)c;
        return 2;
    }
    if (c >= 0x20 && (c < 0x7f || !(flags & JSONESC_ASCII)))
        return 0;
    if (c >= 0x20) {
        memcpy(e, "\\ufffd", 6);
        return 6;
    }
    if (flags & JSONESC_SHORT) {
        char s = c == '\b' ? 'b' : c == '\f' ? 'f' : c == '\n' ? 'n' : c == '\r' ? 'r' : c == '\t' ? 't' : 0;
        if (s) {
            e[0] = '\\';
            e[1] = s;
            return 2;
        }
    }
    memcpy(e, "\\u00", 4);
    e[4] = hex[c >> 4];
    e[5] = hex[c & 15];
    return 6;
}

/* How many bytes from s[0..n) on stand for themselves. */
static inline size_t jsonesc_plain(const char *s, size_t n, int flags)
{
    char e[JSONESC_MAX];
    size_t i = 0;
    while (i < n && jsonesc_byte((unsigned char)s[i], flags, e) == 0)
        i++;
    return i;
}

/* Writes s[0..n) escaped (no quotes) through put, one call per run of
 * plain bytes and one per escape, for writers of any kind of output. */
void jsonesc_write(const char *s, size_t n, int flags, void (*put)(void *ud, const char *p, size_t len), void *ud);

/* '"' + s[0..n) escaped + '"' appended to b (struct buf's rules on oom). */
void jsonesc_buf(struct buf *b, const char *s, size_t n, int flags);

/* The NUL-terminated s escaped (no quotes) into out, at most max bytes and
 * a NUL (out has room for max + 1).  s is cut before the first UTF-8
 * character (lead byte and continuation bytes) whose escape would pass max,
 * so a cut never splits an escape or a character.  Returns the length. */
size_t jsonesc_cut(char *out, size_t max, const char *s, int flags);

#endif
