/*
 * fuzz_notify_routes.c - libFuzzer target for notify's routes file (the
 * one input of `fleetsync notify` that people write by hand).
 *
 * Properties checked on every input (abort() on violation):
 *   - notify_routes_parse never crashes, leaks or reads out of bounds;
 *   - a refusal leaves the routes empty and says why in a NUL-terminated
 *     message;
 *   - accepted routes hold 1..64 destinations, each with an http(s) URL, a
 *     secret of 16..512 bytes and every number in its documented range;
 *     every route sends to at least one destination and to none beyond the
 *     table, and every destination is used;
 *   - matching any rule, state and truck id (taken from the input's last
 *     bytes) names only destinations of the table.
 */
#include "notify/routes.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "fuzz_notify_routes: %s\n", what);
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct notify_routes r;
    char err[512];
    err[sizeof(err) - 1] = 'x';
    if (notify_routes_parse((const char *)data, size, &r, err, sizeof(err)) != 0) {
        check(r.dest_count == 0 && r.route_count == 0 && !r.dests && !r.routes, "a refusal left routes behind");
        check(memchr(err, '\0', sizeof(err)) != NULL && err[0] != '\0', "a refusal without a message");
        return 0;
    }
    check(r.dest_count >= 1 && r.dest_count <= NOTIFY_MAX_DESTS, "destination count out of range");
    check(r.route_count >= 1 && r.route_count <= NOTIFY_MAX_ROUTES, "route count out of range");
    uint64_t all = r.dest_count == 64 ? ~0ull : (1ull << r.dest_count) - 1, used = 0;
    for (size_t i = 0; i < r.dest_count; i++) {
        const struct notify_dest *d = &r.dests[i];
        check(!strncmp(d->url, "http://", 7) || !strncmp(d->url, "https://", 8), "a URL that is not http(s)");
        check(d->secret_len >= NOTIFY_SECRET_MIN && d->secret_len <= NOTIFY_SECRET_MAX, "secret length");
        check(d->timeout_ms >= 100 && d->timeout_ms <= 120000, "timeout_ms");
        check(d->queue >= 1 && d->queue <= 1000000, "queue");
        check(d->parallel >= 1 && d->parallel <= 64, "parallel");
        check(d->backoff_base_ms >= 10 && d->backoff_max_ms >= d->backoff_base_ms, "backoff");
        check(d->retry_for_ms >= 1000, "retry_for_s");
    }
    for (size_t i = 0; i < r.route_count; i++) {
        check(r.routes[i].to != 0 && (r.routes[i].to & ~all) == 0, "a route's destinations");
        used |= r.routes[i].to;
    }
    check(used == all, "a destination no route uses");
    const char *truck = size > 8 ? (const char *)data + size - 8 : "TRK-1";
    size_t tlen = size > 8 ? 8 : 5;
    for (int rule = -1; rule < 8; rule++)
        for (int state = 1; state <= 2; state++)
            check((notify_routes_match(&r, rule, state, truck, tlen) & ~all) == 0, "a match beyond the table");
    notify_routes_release(&r);
    return 0;
}
