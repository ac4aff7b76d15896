/*
 * jbuf.h - JSON values written into a core/buf.h buffer: the dashboard's
 * frames, API answers and alert messages.  The buffers are bounded
 * ((struct buf){.max = N}): past the bound the buffer's oom is set and the
 * caller drops what it built.  Any thread, one buffer per thread.
 */
#ifndef FS_DASHBOARD_JBUF_H
#define FS_DASHBOARD_JBUF_H

#include "core/buf.h"

#include <stddef.h>

/* A JSON string literal of n bytes of s (quotes included), in ASCII:
 * control characters escaped, bytes from 0x7f up as \ufffd
 * (core/jsonesc.h, JSONESC_ASCII). */
void jbuf_str(struct buf *b, const char *s, size_t n);
/* A number in shortest round-trip form; null when not finite. */
void jbuf_num(struct buf *b, double v);

#endif
