/*
 * randbytes.c - getrandom until the buffer is full (randbytes.h).
 */
#include "core/randbytes.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/types.h>

int randbytes_fill(void *buf, size_t n, char *err, size_t err_size)
{
    unsigned char *p = buf;
    size_t got = 0;
    while (got < n) {
        ssize_t k = getrandom(p + got, n - got, 0);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0) {
            snprintf(err, err_size, "getrandom: %s", strerror(errno));
            return -1;
        }
        got += (size_t)k;
    }
    return 0;
}
