/*
 * routes.h - notify's routes file: which alerts go to which webhook
 * destinations (docs/notify.md, "Routes file").
 *
 *     {"destinations": {"ops": {"url": "https://ops.example/hook", "secret": "...",
 *                               "timeout_ms": 5000, "queue": 1000}},
 *      "routes": [{"rules": ["overspeed"], "truck_prefix": "TRK-", "states": ["raised"],
 *                  "to": ["ops"]}]}
 *
 * A route matches an alert when every condition it sets holds (an absent
 * condition matches everything); an alert goes to the union of the
 * destinations of every route it matches, to each destination once.
 * Unknown keys are errors (a typo must not silently widen a route).
 *
 * Pure (no I/O but reading the file); any thread.
 */
#ifndef FS_NOTIFY_ROUTES_H
#define FS_NOTIFY_ROUTES_H

#include <stddef.h>
#include <stdint.h>

#define NOTIFY_MAX_DESTS 64 /* destinations of one file: a route's target set is a uint64_t */
#define NOTIFY_MAX_ROUTES 1024
#define NOTIFY_MAX_PREFIXES 64 /* truck prefixes of one route */
#define NOTIFY_NAME_MAX 64     /* [A-Za-z0-9._-], a metric label and a header value */
#define NOTIFY_URL_MAX 2048
#define NOTIFY_SECRET_MIN 16 /* bytes */
#define NOTIFY_SECRET_MAX 512
#define NOTIFY_FILE_MAX (1024 * 1024)

enum notify_state { NOTIFY_RAISED = 1, NOTIFY_CLEARED = 2 };

struct notify_dest {
    char name[NOTIFY_NAME_MAX + 1];
    char url[NOTIFY_URL_MAX + 1];
    char secret[NOTIFY_SECRET_MAX + 1];
    size_t secret_len;
    int timeout_ms;       /* a whole attempt, connect to last byte (default 5000) */
    int queue;            /* records waiting or in flight at most (default 1000) */
    int parallel;         /* requests in flight at most; a truck's are one at a time (default 4) */
    int backoff_base_ms;  /* first retry after about this (default 500) */
    int backoff_max_ms;   /* retries at most this far apart (default 30000) */
    int64_t retry_for_ms; /* a record still failing this long after its first try is dead-lettered (default 1 day) */
};

struct notify_route {
    uint32_t rules;  /* bit fs_rule per rule; 0 = every rule */
    int states;      /* NOTIFY_RAISED | NOTIFY_CLEARED; 0 = both */
    char **prefixes; /* truck id prefixes (any of them); none = every truck */
    size_t prefix_count;
    uint64_t to; /* bit i = dests[i] */
};

struct notify_routes {
    struct notify_dest *dests;
    size_t dest_count;
    struct notify_route *routes;
    size_t route_count;
};

/* Parses the routes file's text (len bytes; need not be NUL-terminated).
 * Returns 0 with *out filled (release with notify_routes_release), or -1
 * with a reason that names the line and column of a syntax error or the
 * field at fault ("routes[1].to[0]: no destination named \"opz\"") in err;
 * *out is then empty. */
int notify_routes_parse(const char *text, size_t len, struct notify_routes *out, char *err, size_t err_size);

/* Reads and parses the file at path (at most NOTIFY_FILE_MAX bytes).
 * Returns 0, or -1 with "PATH: reason" in err. */
int notify_routes_load(const char *path, struct notify_routes *out, char *err, size_t err_size);

void notify_routes_release(struct notify_routes *r);

/* The destinations (bit i = dests[i]) that an alert of rule (an fs_rule,
 * or -1 for a name the table does not know: it matches only routes without
 * a rules condition), state (NOTIFY_RAISED or NOTIFY_CLEARED) and truck id
 * goes to. */
uint64_t notify_routes_match(const struct notify_routes *r, int rule, int state, const char *truck_id,
                             size_t truck_id_len);

#endif
