/*
 * engine.h - the detector's rules and per-truck state, pure: no Kafka, no
 * I/O, no clock of its own (docs/design.md "Alerts", docs/detect.md).
 *
 * The service (detect.c) feeds it readings per Kafka partition in record
 * order; the engine evaluates every rule in event time and reports raised /
 * cleared alerts through a callback.  Same input sequence per partition, same
 * alerts: nothing depends on batch boundaries or on the wall clock, except
 * the `offline` fallback for a partition that receives nothing at all
 * (detect_engine_idle), whose alerts say "source":"wallclock".
 *
 * On arrival (lateness_ms 0, the default): each reading is processed when it
 * is fed, so its alerts come out of that detect_engine_feed call.  A truck's
 * readings are evaluated in the partition's (log) order; one whose (ts, seq)
 * is older than the truck's last processed reading is "too late": counted
 * and skipped by every rule (it changes no state, raises and clears
 * nothing), so the result depends only on the record sequence.  A truck's
 * backlog arriving in order after a gap (buffered while offline) is newer
 * than its last processed reading and is evaluated in full.
 *
 * Ordering (lateness_ms > 0, for sources that reorder a truck's readings): a
 * reading is held until its partition's event time (the highest ts that
 * partition has seen) has moved lateness_ms past the partition time at its
 * arrival; a truck's held readings are then processed in (ts, seq) order.  A
 * reading older than one already processed for its truck is too late as
 * above.  In both modes the same (truck_id, ts, seq) again is a "duplicate":
 * counted, changes nothing.
 *
 * Not thread-safe: one engine per consumer thread.
 */
#ifndef FS_DETECT_ENGINE_H
#define FS_DETECT_ENGINE_H

#include "core/geo.h"
#include "core/rule.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

enum detect_rule {
    DR_STATIONARY_ENGINE_ON = FS_RULE_STATIONARY_ENGINE_ON,
    DR_MOVING_IGNITION_OFF = FS_RULE_MOVING_IGNITION_OFF,
    DR_GPS_JUMP = FS_RULE_GPS_JUMP,
    DR_FUEL_DROP = FS_RULE_FUEL_DROP,
    DR_GEOFENCE_EXIT = FS_RULE_GEOFENCE_EXIT,
    DR_OVERSPEED = FS_RULE_OVERSPEED,
    DR_OFFLINE = FS_RULE_OFFLINE,
    DR_COUNT = FS_RULE_COUNT
};

/* "stationary_engine_on", ... as docs/design.md "Alerts"; NULL outside the enum. */
const char *detect_rule_name(enum detect_rule r);
/* The rule of that name, or -1. */
int detect_rule_from_name(const char *name);

/* Thresholds (rules.c: defaults, --rules FILE, --print-rules). */
struct detect_rules {
    bool enabled[DR_COUNT];
    int64_t lateness_ms; /* 0: each reading on arrival; > 0: held and ordered */
    /* stationary_engine_on: engine on, within radius_m of where it stopped, for min_ms */
    double stationary_radius_m; /* 50 */
    int64_t stationary_min_ms;  /* 20 min */
    /* moving_ignition_off: ignition off, speed >= min_speed_kmh (reported and
     * implied by positions), for min_ms */
    double towing_min_speed_kmh; /* 10 */
    int64_t towing_min_ms;       /* 60 s */
    /* gps_jump: implied speed above max_speed_kmh over at least min_km */
    double jump_max_speed_kmh; /* 250 */
    double jump_min_km;        /* 1 */
    /* fuel_drop: fuel falls more than pct within window_ms while parked
     * (speed below parked_max_speed_kmh, within stationary_radius_m) */
    double fuel_drop_pct;        /* 10 */
    int64_t fuel_drop_window_ms; /* 5 min */
    double parked_max_speed_kmh; /* 5 */
    /* overspeed: above max_speed_kmh for min_ms */
    double overspeed_kmh;     /* 100 */
    int64_t overspeed_min_ms; /* 60 s */
    /* offline: no reading for min_ms of partition event time */
    int64_t offline_min_ms; /* 10 min */
};

void detect_rules_defaults(struct detect_rules *r);
/* Reads a JSON object like --print-rules writes (any subset of rules and
 * fields; unknown names are errors).  Returns 0, or -1 with a reason in err
 * ("rules.json: overspeed.min_duration_s: must be a number > 0"). */
int detect_rules_load_file(const char *path, struct detect_rules *r, char *err, size_t err_size);
int detect_rules_parse(const char *name, const char *text, size_t len, struct detect_rules *r, char *err,
                       size_t err_size);
/* Writes the rules as pretty JSON (the format detect_rules_parse reads). */
void detect_rules_print(const struct detect_rules *r, FILE *out);

/* One reading, as tm_scan() gives it. */
struct detect_reading {
    const char *truck_id; /* not NUL-terminated */
    size_t truck_id_len;  /* 1..64 */
    int64_t ts_ms, seq;
    double lat, lon, speed_kmh;
    bool ignition;
    double fuel_pct; /* NAN when absent */
};

enum detect_alert_state { DA_RAISED, DA_CLEARED };

struct detect_alert {
    const char *truck_id;
    size_t truck_id_len;
    enum detect_rule rule;
    enum detect_alert_state state;
    int64_t started_ms;  /* event time the incident began: part of alert_id */
    int64_t detected_ms; /* event time the rule fired */
    int64_t ended_ms;    /* cleared only */
    double lat, lon;
    int wallclock;     /* offline raised by the wall-clock fallback */
    char details[192]; /* JSON object, e.g. {"minutes":20} */
};

/* "TRK-000042:stationary_engine_on:1764201600123"; returns its length.
 * buf needs 64 + 1 + 20 + 1 + 20 + 1 bytes at most. */
size_t detect_alert_id(const struct detect_alert *a, char *buf, size_t size);
/* The alert record of docs/design.md "Alerts" as compact JSON; returns its
 * length (< size), or 0 when it does not fit. */
size_t detect_alert_json(const struct detect_alert *a, char *buf, size_t size);

typedef void (*detect_emit_fn)(void *ctx, const struct detect_alert *a);

struct detect_stats {
    uint64_t readings;  /* fed */
    uint64_t processed; /* evaluated by the rules */
    uint64_t duplicates;
    uint64_t too_late;
    uint64_t raised[DR_COUNT], cleared[DR_COUNT];
    uint64_t trucks; /* in the table */
    uint64_t held;   /* readings waiting for the lateness bound (0 with lateness 0) */
};

struct detect_engine;

/* fences may be NULL (then geofence_exit never fires) and must outlive the
 * engine.  partitions: the number of partitions the caller may feed
 * (0..partitions-1).  Returns NULL when memory is short. */
struct detect_engine *detect_engine_new(const struct detect_rules *rules, const struct geo_fence_set *fences,
                                        int partitions, detect_emit_fn emit, void *ctx);
void detect_engine_free(struct detect_engine *e);

/* Feeds one reading of a partition, in record order; may emit alerts (for
 * readings released by the partition's advanced event time, and offline
 * alerts of that partition).  Returns 0 (also for a duplicate or too-late
 * reading, which are counted), or -1 when memory is short or the reading is
 * outside the contract (partition out of range, truck_id_len 0 or > 64,
 * ts_ms < 0); then the reading is not taken. */
int detect_engine_feed(struct detect_engine *e, int partition, const struct detect_reading *r);

/* Caps the partition time: a reading whose ts lies beyond cap_ms (a truck
 * whose clock runs ahead) still counts for its truck, but moves its
 * partition's time only up to cap_ms, so it neither releases the others'
 * held readings early nor makes every other truck of the partition look
 * offline.  The service passes the wall clock plus a minute before each
 * reading; INT64_MAX (the default) is no cap.  A reading from the future is
 * the one case where a result depends on when it was processed. */
void detect_engine_cap_time(struct detect_engine *e, int64_t cap_ms);

/* The wall-clock fallback: a partition that has received nothing for
 * offline_min_ms of wall time (now_ms, measured by the caller from its last
 * feed) raises offline for its trucks silent that long, marked wallclock.
 * Nothing happens while silent_ms < offline_min_ms; otherwise the
 * partition's held readings are processed first (as
 * detect_engine_flush_partition), then every truck of the partition that is
 * not offline yet raises (started_ms = its last ts, detected_ms = now_ms). */
void detect_engine_idle(struct detect_engine *e, int partition, int64_t now_ms, int64_t silent_ms);

/* Processes every held reading of the partition now, in the usual order,
 * without waiting for the lateness bound (end of input; detect_engine_idle
 * does it before raising).  A reading that arrives later for a truck with
 * newer processed readings is then too late. */
void detect_engine_flush_partition(struct detect_engine *e, int partition);

/* Forgets the state of one partition's trucks, its held readings and its
 * event time (a replay or a partition assigned without a checkpoint). */
void detect_engine_reset_partition(struct detect_engine *e, int partition);

/* Checkpoints: the whole state of the given partition (trucks, held
 * readings, event time) as bytes, and back.  save appends to a malloc'd
 * buffer (*buf, *len, *cap grow); load returns 0, or -1 for bytes it did not
 * write (a torn or foreign file), leaving the partition reset. */
int detect_engine_save_partition(const struct detect_engine *e, int partition, char **buf, size_t *len, size_t *cap);
int detect_engine_load_partition(struct detect_engine *e, int partition, const char *buf, size_t len);

void detect_engine_stats(const struct detect_engine *e, struct detect_stats *out);
/* Bytes of memory the engine holds per truck on average (table + state),
 * without held readings. */
size_t detect_engine_bytes_per_truck(const struct detect_engine *e);

#endif
