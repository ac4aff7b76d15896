/*
 * randbytes.h - bytes from the kernel's random generator (getrandom), for
 * the keys that the credentials files are derived from (core/kafkaauth.c,
 * core/mqttauth.c).
 */
#ifndef FS_RANDBYTES_H
#define FS_RANDBYTES_H

#include <stddef.h>

/* Fills buf with n random bytes, asking again after a signal or a short
 * read.  Returns 0, or -1 with "getrandom: <reason>" in err (buf's contents
 * are then undefined). */
int randbytes_fill(void *buf, size_t n, char *err, size_t err_size);

#endif
