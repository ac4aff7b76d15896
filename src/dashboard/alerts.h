/*
 * alerts.h - the recent alert records of truck-alerts (docs/design.md "Alerts"),
 * kept in a ring for /api/alerts and for clients that connect later.
 *
 * Idempotent on (alert_id, state): a repeat of a record already held is not
 * added again.  The ring holds at most cap records; the oldest go first.
 * Each record is kept as compact JSON re-written from the parsed one (at
 * most DS_ALERT_MAX_BYTES), with an event time: ended_ms for a cleared
 * record, else detected_ms, else started_ms, else the Kafka record time.
 *
 * Not thread-safe: the caller serialises calls.
 */
#ifndef FS_DASHBOARD_ALERTS_H
#define FS_DASHBOARD_ALERTS_H

#include "dashboard/jbuf.h"

#include <stddef.h>
#include <stdint.h>

#define DS_ALERT_MAX_BYTES 4096
#define DS_ALERT_ID_MAX 256

struct ds_alert {
    char *json; /* owned */
    size_t len;
    int64_t event_ms;
    uint64_t seq; /* order of arrival, from 1 */
    char alert_id[DS_ALERT_ID_MAX + 1];
    int cleared;
};

struct ds_alerts {
    struct ds_alert *ring;
    size_t cap, start, count;
    uint64_t seq;
};

/* Returns 0, or -1 when memory is short. */
int ds_alerts_init(struct ds_alerts *a, size_t cap);
void ds_alerts_release(struct ds_alerts *a);

/* Adds one record of len bytes.  Returns 1 when added (*added points at it
 * until the next add), 0 for a repeat, -1 for a record that is not an alert
 * (not JSON, too large, alert_id/truck_id/rule missing, state neither
 * "raised" nor "cleared"). */
int ds_alerts_add(struct ds_alerts *a, const char *buf, size_t len, int64_t record_ms, const struct ds_alert **added);

/* Appends a JSON array of the records with event_ms >= since_ms, oldest
 * first, at most max of them (the newest ones). */
void ds_alerts_json_since(const struct ds_alerts *a, int64_t since_ms, size_t max, struct buf *out);

#endif
