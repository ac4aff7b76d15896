/*
 * alerts.c - recent alerts ring (see alerts.h).  Repeats are found by a
 * linear scan: alerts are rare and the ring small (thousands).
 */
#include "dashboard/alerts.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

int ds_alerts_init(struct ds_alerts *a, size_t cap)
{
    memset(a, 0, sizeof(*a));
    a->cap = cap ? cap : 1;
    a->ring = calloc(a->cap, sizeof(*a->ring));
    return a->ring ? 0 : -1;
}

void ds_alerts_release(struct ds_alerts *a)
{
    if (a->ring)
        for (size_t i = 0; i < a->cap; i++)
            free(a->ring[i].json);
    free(a->ring);
    memset(a, 0, sizeof(*a));
}

static int64_t int_field(json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);
    return json_is_integer(v) ? (int64_t)json_integer_value(v) : 0;
}

int ds_alerts_add(struct ds_alerts *a, const char *buf, size_t len, int64_t record_ms, const struct ds_alert **added)
{
    if (len > DS_ALERT_MAX_BYTES)
        return -1;
    json_t *o = json_loadb(buf, len, JSON_REJECT_DUPLICATES, NULL);
    int rc = -1;
    char *dump = NULL;
    if (!json_is_object(o))
        goto out;
    const char *id = json_string_value(json_object_get(o, "alert_id"));
    const char *state = json_string_value(json_object_get(o, "state"));
    if (!id || !*id || strlen(id) > DS_ALERT_ID_MAX || !state || !json_is_string(json_object_get(o, "truck_id")) ||
        !json_is_string(json_object_get(o, "rule")))
        goto out;
    int cleared = strcmp(state, "cleared") == 0;
    if (!cleared && strcmp(state, "raised") != 0)
        goto out;
    for (size_t i = 0; i < a->count; i++) {
        const struct ds_alert *e = &a->ring[(a->start + i) % a->cap];
        if (e->cleared == cleared && strcmp(e->alert_id, id) == 0) {
            rc = 0;
            goto out;
        }
    }
    dump = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (!dump || strlen(dump) > DS_ALERT_MAX_BYTES)
        goto out;
    int64_t ev = cleared ? int_field(o, "ended_ms") : 0;
    if (!ev)
        ev = int_field(o, "detected_ms");
    if (!ev)
        ev = int_field(o, "started_ms");
    if (!ev)
        ev = record_ms;
    struct ds_alert *slot;
    if (a->count == a->cap) {
        slot = &a->ring[a->start];
        a->start = (a->start + 1) % a->cap;
    } else {
        slot = &a->ring[(a->start + a->count) % a->cap];
        a->count++;
    }
    free(slot->json);
    slot->json = dump;
    dump = NULL;
    slot->len = strlen(slot->json);
    slot->event_ms = ev;
    slot->seq = ++a->seq;
    slot->cleared = cleared;
    strcpy(slot->alert_id, id);
    if (added)
        *added = slot;
    rc = 1;
out:
    free(dump);
    json_decref(o);
    return rc;
}

void ds_alerts_json_since(const struct ds_alerts *a, int64_t since_ms, size_t max, struct buf *out)
{
    size_t match = 0;
    for (size_t i = 0; i < a->count; i++)
        if (a->ring[(a->start + i) % a->cap].event_ms >= since_ms)
            match++;
    size_t skip = match > max ? match - max : 0, n = 0;
    buf_puts(out, "[");
    for (size_t i = 0; i < a->count; i++) {
        const struct ds_alert *e = &a->ring[(a->start + i) % a->cap];
        if (e->event_ms < since_ms)
            continue;
        if (skip) {
            skip--;
            continue;
        }
        if (n++)
            buf_puts(out, ",");
        buf_put(out, e->json, e->len);
    }
    buf_puts(out, "]");
}
