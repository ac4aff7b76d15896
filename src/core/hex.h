/*
 * hex.h - lower-case hex encoding of bytes, and its decoding, for the
 * secrets, salts and hashes that credentials files hold (core/mqttauth.c,
 * the dashboard's auth file).
 */
#ifndef FS_HEX_H
#define FS_HEX_H

#include <stddef.h>

/* Writes 2n hex digits of p and a NUL into out (2n + 1 bytes). */
void hex_encode(const unsigned char *p, size_t n, char *out);

/* Decodes the n hex digits of s (either case; n even and > 0) into out, at
 * most max bytes.  Returns the byte count, or -1 for anything else. */
int hex_decode(const char *s, size_t n, unsigned char *out, size_t max);

#endif
