/*
 * netaddr.c - loopback names and addresses (see netaddr.h).
 */
#include "core/netaddr.h"

#include <string.h>
#include <strings.h>

/* s is exactly a dotted quad whose first part is 127. */
static int loopback_quad(const char *s)
{
    for (int part = 0; part < 4; part++) {
        int v = 0, digits = 0;
        while (*s >= '0' && *s <= '9' && digits < 4) {
            v = v * 10 + (*s++ - '0');
            digits++;
        }
        if (digits == 0 || digits > 3 || v > 255 || (part == 0 && v != 127))
            return 0;
        if (part < 3 && *s++ != '.')
            return 0;
    }
    return *s == '\0';
}

int netaddr_loopback(const char *host)
{
    if (!host)
        return 0;
    if (strcasecmp(host, "localhost") == 0 || strcmp(host, "::1") == 0 || strcmp(host, "[::1]") == 0)
        return 1;
    if (strncasecmp(host, "::ffff:", 7) == 0)
        host += 7;
    return loopback_quad(host);
}
