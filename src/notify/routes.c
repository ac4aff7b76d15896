/*
 * routes.c - the routes file of `fleetsync notify`, read with jansson and
 * checked field by field (see routes.h).  Every error names where it is: a
 * syntax error its line and column, anything else the path of the field
 * ("destinations.ops.timeout_ms", "routes[2].states[0]").
 */
#include "notify/routes.h"

#include "core/readfile.h"
#include "core/rule.h"

#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int fail(char *err, size_t err_size, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(char *err, size_t err_size, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, err_size, fmt, ap);
    va_end(ap);
    return -1;
}

static int name_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > NOTIFY_NAME_MAX)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
              c == '-'))
            return 0;
    }
    return 1;
}

/* An integer field of o in [lo, hi], or dflt when absent. */
static int int_field(json_t *o, const char *path, const char *key, long long lo, long long hi, long long dflt,
                     long long *out, char *err, size_t err_size)
{
    json_t *v = json_object_get(o, key);
    if (!v) {
        *out = dflt;
        return 0;
    }
    if (!json_is_integer(v))
        return fail(err, err_size, "%s.%s: must be a whole number", path, key);
    long long x = json_integer_value(v);
    if (x < lo || x > hi)
        return fail(err, err_size, "%s.%s: %lld is out of range (%lld to %lld)", path, key, x, lo, hi);
    *out = x;
    return 0;
}

static int parse_dest(const char *name, json_t *o, struct notify_dest *d, char *err, size_t err_size)
{
    char path[128];
    snprintf(path, sizeof(path), "destinations.%s", name);
    if (!name_ok(name))
        return fail(err, err_size, "%s: a destination's name is 1-%d characters of A-Z a-z 0-9 . _ -", path,
                    NOTIFY_NAME_MAX);
    if (!json_is_object(o))
        return fail(err, err_size, "%s: must be an object {\"url\": ..., \"secret\": ...}", path);
    static const char *const known[] = {
        "url", "secret", "timeout_ms", "queue", "parallel", "backoff_base_ms", "backoff_max_ms", "retry_for_s", NULL};
    const char *key;
    json_t *v;
    json_object_foreach(o, key, v)
    {
        int ok = 0;
        for (int i = 0; known[i]; i++)
            ok |= strcmp(key, known[i]) == 0;
        if (!ok)
            return fail(err, err_size,
                        "%s.%s: unknown field (known: url, secret, timeout_ms, queue, parallel, backoff_base_ms, "
                        "backoff_max_ms, retry_for_s)",
                        path, key);
    }
    snprintf(d->name, sizeof(d->name), "%s", name);

    json_t *url = json_object_get(o, "url");
    if (!url)
        return fail(err, err_size, "%s.url: missing", path);
    if (!json_is_string(url))
        return fail(err, err_size, "%s.url: must be a string", path);
    const char *u = json_string_value(url);
    size_t ulen = json_string_length(url);
    if (strncmp(u, "http://", 7) != 0 && strncmp(u, "https://", 8) != 0)
        return fail(err, err_size, "%s.url: must start with http:// or https://", path);
    if (ulen > NOTIFY_URL_MAX || strlen(u) != ulen)
        return fail(err, err_size, "%s.url: longer than %d bytes or holds a NUL", path, NOTIFY_URL_MAX);
    for (size_t i = 0; i < ulen; i++)
        if ((unsigned char)u[i] <= 0x20 || u[i] == 0x7f)
            return fail(err, err_size, "%s.url: holds a space or a control character", path);
    if (u[u[4] == 's' ? 8 : 7] == '\0' || u[u[4] == 's' ? 8 : 7] == '/')
        return fail(err, err_size, "%s.url: has no host", path);
    memcpy(d->url, u, ulen + 1);

    json_t *sec = json_object_get(o, "secret");
    if (!sec)
        return fail(err, err_size, "%s.secret: missing (the key the receiver checks signatures with)", path);
    if (!json_is_string(sec))
        return fail(err, err_size, "%s.secret: must be a string", path);
    size_t slen = json_string_length(sec);
    if (slen < NOTIFY_SECRET_MIN || slen > NOTIFY_SECRET_MAX)
        return fail(err, err_size, "%s.secret: must be %d to %d bytes long (it is %zu)", path, NOTIFY_SECRET_MIN,
                    NOTIFY_SECRET_MAX, slen);
    memcpy(d->secret, json_string_value(sec), slen);
    d->secret[slen] = '\0';
    d->secret_len = slen;

    long long x;
    if (int_field(o, path, "timeout_ms", 100, 120000, 5000, &x, err, err_size) < 0)
        return -1;
    d->timeout_ms = (int)x;
    if (int_field(o, path, "queue", 1, 1000000, 1000, &x, err, err_size) < 0)
        return -1;
    d->queue = (int)x;
    if (int_field(o, path, "parallel", 1, 64, 4, &x, err, err_size) < 0)
        return -1;
    d->parallel = (int)x;
    if (int_field(o, path, "backoff_base_ms", 10, 600000, 500, &x, err, err_size) < 0)
        return -1;
    d->backoff_base_ms = (int)x;
    if (int_field(o, path, "backoff_max_ms", 10, 3600000, 30000, &x, err, err_size) < 0)
        return -1;
    d->backoff_max_ms = (int)x;
    if (d->backoff_max_ms < d->backoff_base_ms)
        return fail(err, err_size, "%s.backoff_max_ms: %d is below backoff_base_ms %d", path, d->backoff_max_ms,
                    d->backoff_base_ms);
    if (int_field(o, path, "retry_for_s", 1, 30LL * 86400, 86400, &x, err, err_size) < 0)
        return -1;
    d->retry_for_ms = x * 1000;
    return 0;
}

/* "rules", "states" or "truck_prefix" of route i: an array of strings (a
 * single string for truck_prefix too). */
static int parse_route(const struct notify_routes *r, size_t i, json_t *o, struct notify_route *rt, char *err,
                       size_t err_size)
{
    if (!json_is_object(o))
        return fail(err, err_size, "routes[%zu]: must be an object {\"to\": [...], ...}", i);
    const char *key;
    json_t *v;
    json_object_foreach(o, key, v)
    {
        if (strcmp(key, "rules") && strcmp(key, "states") && strcmp(key, "truck_prefix") && strcmp(key, "to"))
            return fail(err, err_size, "routes[%zu].%s: unknown field (known: rules, truck_prefix, states, to)", i,
                        key);
    }

    json_t *rules = json_object_get(o, "rules");
    if (rules) {
        if (!json_is_array(rules) || json_array_size(rules) == 0)
            return fail(err, err_size, "routes[%zu].rules: must be a non-empty array of rule names", i);
        size_t k;
        json_array_foreach(rules, k, v)
        {
            int rule = json_is_string(v) ? fs_rule_from_name(json_string_value(v)) : -1;
            if (rule < 0)
                return fail(err, err_size,
                            "routes[%zu].rules[%zu]: not a rule (stationary_engine_on, moving_ignition_off, "
                            "gps_jump, fuel_drop, geofence_exit, overspeed, offline)",
                            i, k);
            rt->rules |= 1u << rule;
        }
    }

    json_t *states = json_object_get(o, "states");
    if (states) {
        if (!json_is_array(states) || json_array_size(states) == 0)
            return fail(err, err_size, "routes[%zu].states: must be a non-empty array of \"raised\", \"cleared\"", i);
        size_t k;
        json_array_foreach(states, k, v)
        {
            const char *s = json_is_string(v) ? json_string_value(v) : "";
            if (strcmp(s, "raised") == 0)
                rt->states |= NOTIFY_RAISED;
            else if (strcmp(s, "cleared") == 0)
                rt->states |= NOTIFY_CLEARED;
            else
                return fail(err, err_size, "routes[%zu].states[%zu]: is \"raised\" or \"cleared\"", i, k);
        }
    }

    json_t *pre = json_object_get(o, "truck_prefix");
    if (pre) {
        size_t n = json_is_string(pre) ? 1 : json_is_array(pre) ? json_array_size(pre) : 0;
        if (n == 0 || n > NOTIFY_MAX_PREFIXES)
            return fail(err, err_size, "routes[%zu].truck_prefix: must be a string or an array of 1-%d strings", i,
                        NOTIFY_MAX_PREFIXES);
        rt->prefixes = calloc(n, sizeof(*rt->prefixes));
        if (!rt->prefixes)
            return fail(err, err_size, "out of memory");
        for (size_t k = 0; k < n; k++) {
            json_t *s = json_is_string(pre) ? pre : json_array_get(pre, k);
            if (!json_is_string(s) || json_string_length(s) > 64 || strlen(json_string_value(s)) == 0)
                return fail(err, err_size, "routes[%zu].truck_prefix: each prefix is a string of 1-64 characters", i);
            if (!(rt->prefixes[k] = strdup(json_string_value(s))))
                return fail(err, err_size, "out of memory");
            rt->prefix_count++;
        }
    }

    json_t *to = json_object_get(o, "to");
    if (!to)
        return fail(err, err_size, "routes[%zu].to: missing (the destinations' names)", i);
    if (json_is_string(to) || !json_is_array(to) || json_array_size(to) == 0)
        return fail(err, err_size, "routes[%zu].to: must be a non-empty array of destination names", i);
    size_t k;
    json_array_foreach(to, k, v)
    {
        const char *name = json_is_string(v) ? json_string_value(v) : NULL;
        size_t d = 0;
        while (name && d < r->dest_count && strcmp(r->dests[d].name, name) != 0)
            d++;
        if (!name || d == r->dest_count)
            return fail(err, err_size, "routes[%zu].to[%zu]: no destination named \"%s\"", i, k,
                        name ? name : "(not a string)");
        rt->to |= 1ull << d;
    }
    return 0;
}

int notify_routes_parse(const char *text, size_t len, struct notify_routes *out, char *err, size_t err_size)
{
    json_error_t je;
    int rc = -1;
    memset(out, 0, sizeof(*out));
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
    if (!root)
        return fail(err, err_size, "line %d, column %d: %s", je.line, je.column, je.text);
    if (!json_is_object(root)) {
        fail(err, err_size, "line 1: must be an object {\"destinations\": {...}, \"routes\": [...]}");
        goto out;
    }
    const char *key;
    json_t *v;
    json_object_foreach(root, key, v)
    {
        if (strcmp(key, "destinations") != 0 && strcmp(key, "routes") != 0) {
            fail(err, err_size, "%s: unknown field (known: destinations, routes)", key);
            goto out;
        }
    }
    json_t *dests = json_object_get(root, "destinations");
    if (!json_is_object(dests) || json_object_size(dests) == 0) {
        fail(err, err_size, "destinations: %s", dests ? "must be a non-empty object {\"name\": {...}}" : "missing");
        goto out;
    }
    if (json_object_size(dests) > NOTIFY_MAX_DESTS) {
        fail(err, err_size, "destinations: more than %d", NOTIFY_MAX_DESTS);
        goto out;
    }
    out->dests = calloc(json_object_size(dests), sizeof(*out->dests));
    if (!out->dests) {
        fail(err, err_size, "out of memory");
        goto out;
    }
    json_object_foreach(dests, key, v)
    {
        if (parse_dest(key, v, &out->dests[out->dest_count], err, err_size) < 0)
            goto out;
        out->dest_count++;
    }
    json_t *routes = json_object_get(root, "routes");
    if (!json_is_array(routes) || json_array_size(routes) == 0) {
        fail(err, err_size, "routes: %s", routes ? "must be a non-empty array [{...}]" : "missing");
        goto out;
    }
    if (json_array_size(routes) > NOTIFY_MAX_ROUTES) {
        fail(err, err_size, "routes: more than %d", NOTIFY_MAX_ROUTES);
        goto out;
    }
    out->routes = calloc(json_array_size(routes), sizeof(*out->routes));
    if (!out->routes) {
        fail(err, err_size, "out of memory");
        goto out;
    }
    size_t i;
    json_array_foreach(routes, i, v)
    {
        out->route_count++; /* counted first: release frees a half-parsed route's prefixes */
        if (parse_route(out, i, v, &out->routes[i], err, err_size) < 0)
            goto out;
    }
    uint64_t used = 0;
    for (size_t r = 0; r < out->route_count; r++)
        used |= out->routes[r].to;
    for (size_t d = 0; d < out->dest_count; d++)
        if (!(used & (1ull << d))) {
            fail(err, err_size, "destinations.%s: no route sends anything to it", out->dests[d].name);
            goto out;
        }
    rc = 0;
out:
    json_decref(root);
    if (rc != 0)
        notify_routes_release(out);
    return rc;
}

int notify_routes_load(const char *path, struct notify_routes *out, char *err, size_t err_size)
{
    memset(out, 0, sizeof(*out));
    FILE *f = fopen(path, "rb");
    if (!f)
        return fail(err, err_size, "%s: %s", path, strerror(errno));
    char *text = NULL, why[512];
    size_t len = 0;
    int e = readfile_bounded(f, NOTIFY_FILE_MAX, &text, &len);
    fclose(f);
    if (e)
        return fail(err, err_size, "%s: %s", path, strerror(e));
    int rc = -1;
    if (len > NOTIFY_FILE_MAX)
        fail(err, err_size, "%s: larger than %d bytes", path, NOTIFY_FILE_MAX);
    else if (notify_routes_parse(text, len, out, why, sizeof(why)) < 0)
        fail(err, err_size, "%s: %s", path, why);
    else
        rc = 0;
    free(text);
    return rc;
}

void notify_routes_release(struct notify_routes *r)
{
    for (size_t i = 0; i < r->route_count; i++) {
        for (size_t k = 0; k < r->routes[i].prefix_count; k++)
            free(r->routes[i].prefixes[k]);
        free(r->routes[i].prefixes);
    }
    free(r->routes);
    if (r->dests)
        memset(r->dests, 0, r->dest_count * sizeof(*r->dests)); /* the secrets */
    free(r->dests);
    memset(r, 0, sizeof(*r));
}

uint64_t notify_routes_match(const struct notify_routes *r, int rule, int state, const char *truck_id,
                             size_t truck_id_len)
{
    uint64_t to = 0;
    for (size_t i = 0; i < r->route_count; i++) {
        const struct notify_route *rt = &r->routes[i];
        if (rt->rules && (rule < 0 || rule >= 32 || !(rt->rules & (1u << rule))))
            continue;
        if (rt->states && !(rt->states & state))
            continue;
        int pre = rt->prefix_count == 0;
        for (size_t k = 0; k < rt->prefix_count && !pre; k++) {
            size_t n = strlen(rt->prefixes[k]);
            pre = n <= truck_id_len && memcmp(truck_id, rt->prefixes[k], n) == 0;
        }
        if (pre)
            to |= rt->to;
    }
    return to;
}
