/*
 * readfile.c - bounded whole-file reads (see readfile.h).
 */
#include "core/readfile.h"

#include <errno.h>
#include <stdlib.h>

int readfile_bounded(FILE *f, size_t max, char **text, size_t *len)
{
    size_t limit = max + 1, cap = limit < 65536 ? limit : 65536, n = 0;
    char *buf = malloc(cap + 1);
    *text = NULL;
    *len = 0;
    if (!buf)
        return ENOMEM;
    for (;;) {
        if (n == cap) {
            if (cap == limit)
                break;
            size_t ncap = cap > limit / 2 ? limit : cap * 2;
            char *nb = realloc(buf, ncap + 1);
            if (!nb) {
                free(buf);
                return ENOMEM;
            }
            buf = nb;
            cap = ncap;
        }
        size_t want = cap - n;
        errno = 0;
        size_t got = fread(buf + n, 1, want, f);
        n += got;
        if (got < want) { /* the end, or an error */
            if (ferror(f)) {
                int e = errno ? errno : EIO;
                free(buf);
                return e;
            }
            break;
        }
    }
    buf[n] = '\0';
    *text = buf;
    *len = n;
    return 0;
}
