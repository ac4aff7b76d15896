/*
 * jbuf.c - JSON values into a buffer (see jbuf.h).
 */
#include "dashboard/jbuf.h"

#include "core/jsonesc.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void jbuf_str(struct buf *b, const char *s, size_t n)
{
    jsonesc_buf(b, s, n, JSONESC_ASCII);
}

void jbuf_num(struct buf *b, double v)
{
    if (!isfinite(v)) {
        buf_puts(b, "null");
        return;
    }
    char tmp[32];
    for (int prec = 6; prec <= 17; prec++) {
        snprintf(tmp, sizeof(tmp), "%.*g", prec, v);
        if (strtod(tmp, NULL) == v)
            break;
    }
    buf_puts(b, tmp);
}
