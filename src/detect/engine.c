/*
 * engine.c - the detector's per-truck state and rules (engine.h), pure: no
 * I/O, no clock, no threads.
 *
 * Layout.  Everything is per partition (struct part), so a partition can be
 * reset, checkpointed and restored on its own: a linear-probing hash table of
 * truck ids (slots hold index + 1) over an array of struct truck in chunks of
 * TRUCK_CHUNK, the ids in one growable arena, and a ring of held readings
 * (struct held) addressed by absolute positions (uint32, wrapping).  Each
 * truck chains its held readings in (ts, seq) order (held_head .. held_tail),
 * so a new in-order reading is appended in O(1) and a released one finds the
 * truck's earlier ones at the chain's head.
 *
 * Ordering.  A reading arrives with the partition time ptime (highest ts
 * fed) after it; it is released once ptime >= arrival + lateness_ms.  The
 * ring is FIFO and arrival is non-decreasing along it, so releasing is a pop
 * from the ring's head.  Releasing reading R of truck T processes T's chain
 * up to and including R, smallest (ts, seq) first; those chain members that
 * arrived after R are marked consumed and skipped when the ring reaches them.
 * At feed time a reading whose (ts, seq) is at or before the truck's last
 * processed one is a duplicate (equal) or too late (older); one equal to a
 * held reading is a duplicate.  seq takes part by its low 32 bits.
 * With lateness_ms 0 (the default) every reading is released in the feed
 * that brought it (nothing stays in the ring, whatever its arr_lag), so the
 * rules see each truck's readings in log order, minus the too-late ones.
 *
 * Per-truck rule state (the states of each rule, on processed readings):
 *   stationary_engine_on  anchor = first position of the current stop; a
 *                         position further than radius_m from it re-anchors.
 *                         ign_since = first ignition-on reading at this anchor.
 *                         RAISED when ts - ign_since >= min; CLEARED by
 *                         ignition off or a re-anchor.
 *   moving_ignition_off   ign_since = first ignition-off reading moving
 *                         (reported speed and speed implied from the last good
 *                         position both >= min_speed); RAISED after min_ms;
 *                         CLEARED by a reading not moving or ignition on.
 *                         (ign_since serves both: they need opposite ignition.)
 *   gps_jump              a position further than min_km from the last good
 *                         one at an implied speed above max_speed is JUMPED:
 *                         RAISED, the reading is kept out of the position
 *                         rules.  CLEARED by the next reading plausible from
 *                         the last good position (out and back), or by the
 *                         third consecutive reading plausible from the jumped
 *                         positions (the truck really is there: it becomes
 *                         the good position).
 *   fuel_drop             while parked (speed < parked_max, no re-anchor) a
 *                         reference (ts, fuel) follows every reading at or
 *                         above it and moves to the current one when older
 *                         than the window; fuel more than pct below it within
 *                         the window RAISES (started = reference ts).
 *                         CLEARED when no further fall for a window, a rise of
 *                         more than 1 point (refuel), or the truck moves off.
 *   geofence_exit         fence = index of the first fence containing the
 *                         truck; leaving it inside its active window RAISES
 *                         (fence kept), entering it again CLEARS.
 *   overspeed             over_since = first reading above speed_kmh; RAISED
 *                         after min_ms; CLEARED by a reading at or below it.
 *   offline               RAISED by a sweep of the partition, whenever its
 *                         watermark (ptime - lateness) enters a new step of
 *                         sweep_ms, for trucks whose last reading arrived at a
 *                         partition time <= watermark - min (started = the
 *                         truck's last ts, detected = the watermark); CLEARED
 *                         by the truck's next processed reading.
 * An active alert is one bit of flags; each incident raises once and clears
 * once, with the same started_ms (so the same alert_id).
 */
#include "detect/engine.h"

#include "core/jsonesc.h"

#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define NIL UINT32_MAX
#define UNSET INT64_MIN
#define TRUCK_CHUNK_SHIFT 6
#define TRUCK_CHUNK (1u << TRUCK_CHUNK_SHIFT)
#define FUEL_NONE 0xFFFFu
#define HELD_CONSUMED 0x80000000u
#define HELD_IGN 0x40000000u
#define HELD_IDX 0x3FFFFFFFu
#define MAX_TRUCKS_PER_PART HELD_IDX
#define DEG2RAD (3.14159265358979323846 / 180.0)
#define MAX_TS_MS (INT64_MAX / 4) /* far past year 9999; keeps ts +- any duration in range */

/* flags: bits 0..DR_COUNT-1 are the active alerts */
#define ACT(r) (1u << (r))
#define F_WALLCLOCK (1u << 8) /* the active offline alert came from detect_engine_idle */
#define F_SEEN (1u << 9)      /* a reading was processed: last_ts, good position valid */
#define F_IGN (1u << 10)      /* ignition of the last good reading */

struct truck {
    int64_t last_ts;     /* last processed reading */
    int64_t ign_since;   /* stationary run (ignition on) or towing run (off) start, UNSET */
    int64_t over_since;  /* UNSET */
    int64_t jump_since;  /* the active gps_jump's start */
    int64_t fence_since; /* the active geofence_exit's start */
    int64_t fuel_ref_ts;
    uint32_t last_seq;
    uint32_t good_lag;     /* last_ts - ts of the last good position */
    uint32_t fuel_dec_lag; /* last fall during a fuel_drop - fuel_ref_ts */
    int32_t arr_lag;       /* latest arrival partition time - last_ts (< 0: a clock ahead) */
    uint32_t held_head, held_tail;
    uint32_t id_off;
    int32_t good_lat, good_lon, anchor_lat, anchor_lon, jump_lat, jump_lon; /* 1e-7 degrees */
    uint16_t fuel_ref, fuel_last;                                           /* 0.01 %, FUEL_NONE */
    int16_t fence;
    uint16_t flags;
    uint8_t id_len, jump_n;
};

struct held {
    int64_t ts;
    uint32_t truck; /* index | HELD_IGN | HELD_CONSUMED */
    uint32_t next;  /* absolute ring position of the truck's next held reading */
    uint32_t seq;
    int32_t arr_lag; /* partition time at arrival - ts (< 0: a clock ahead of the cap) */
    int32_t lat, lon;
    uint16_t speed; /* 0.01 km/h */
    uint16_t fuel;  /* 0.01 %, FUEL_NONE */
};

struct part {
    struct truck **chunks;
    uint32_t nchunks, chunks_cap, n;
    uint32_t *slots; /* truck index + 1, 0 = empty */
    uint32_t mask;   /* slots - 1; 0 when no table */
    char *ids;
    uint32_t ids_len, ids_cap;
    struct held *ring;
    uint32_t ring_cap, head, tail, nheld;
    int64_t ptime; /* highest ts fed, UNSET */
    int64_t swept; /* watermark step of the last offline sweep */
};

struct detect_engine {
    struct detect_rules r;
    const struct geo_fence_set *fences;
    int nparts;
    struct part *parts;
    detect_emit_fn emit;
    void *ctx;
    struct detect_stats st;
    int64_t sweep_ms;
    double jump_min_m;
    int64_t time_cap; /* partition time never moves past this (INT64_MAX: no cap) */
};

/* ---- small helpers ---- */

static inline struct truck *truck_at(const struct part *p, uint32_t i)
{
    return &p->chunks[i >> TRUCK_CHUNK_SHIFT][i & (TRUCK_CHUNK - 1)];
}

static inline struct held *held_at(const struct part *p, uint32_t pos)
{
    return &p->ring[pos & (p->ring_cap - 1)];
}

static inline const char *truck_id(const struct part *p, const struct truck *t)
{
    return p->ids + t->id_off;
}

static inline uint32_t sat_u32(int64_t v)
{
    return v < 0 ? 0 : v > (int64_t)UINT32_MAX ? UINT32_MAX : (uint32_t)v;
}

static inline int32_t sat_i32(int64_t v)
{
    return v < INT32_MIN ? INT32_MIN : v > INT32_MAX ? INT32_MAX : (int32_t)v;
}

static inline int32_t q_deg(double d)
{
    if (!isfinite(d))
        return 0;
    if (d > 180.0)
        d = 180.0;
    if (d < -180.0)
        d = -180.0;
    return (int32_t)lrint(d * 1e7);
}

static inline uint16_t q_centi(double v, double max)
{
    if (!isfinite(v) || v < 0)
        return 0;
    if (v > max)
        v = max;
    return (uint16_t)lrint(v * 100.0);
}

static uint32_t hash_id(const char *s, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (uint8_t)s[i]) * 16777619u;
    h ^= h >> 16;
    h *= 0x85ebca6bu;
    h ^= h >> 13;
    return h;
}

/* Metres between two positions: equirectangular below about 10 km (error
 * far below a metre at those distances), haversine beyond. */
static double dist_m(int32_t lat1, int32_t lon1, int32_t lat2, int32_t lon2)
{
    double dlat = ((double)lat2 - lat1) * 1e-7, dlon = ((double)lon2 - lon1) * 1e-7;
    if (dlon > 180.0)
        dlon -= 360.0;
    else if (dlon < -180.0)
        dlon += 360.0;
    if (fabs(dlat) > 0.1 || fabs(dlon) > 0.1)
        return geo_haversine_m(lat1 * 1e-7, lon1 * 1e-7, lat2 * 1e-7, lon2 * 1e-7);
    double x = dlon * cos(((double)lat1 + lat2) * 0.5e-7 * DEG2RAD);
    return GEO_EARTH_RADIUS_M * DEG2RAD * sqrt(x * x + dlat * dlat);
}

/* (ts, seq) order: <0, 0, >0 */
static inline int key_cmp(int64_t ts1, uint32_t seq1, int64_t ts2, uint32_t seq2)
{
    if (ts1 != ts2)
        return ts1 < ts2 ? -1 : 1;
    return seq1 < seq2 ? -1 : seq1 > seq2;
}

/* ---- partitions: trucks, table, ring ---- */

static void part_release(struct part *p)
{
    for (uint32_t i = 0; i < p->nchunks; i++)
        free(p->chunks[i]);
    free(p->chunks);
    free(p->slots);
    free(p->ids);
    free(p->ring);
    memset(p, 0, sizeof(*p));
    p->ptime = UNSET;
    p->swept = UNSET;
}

static int table_grow(struct part *p)
{
    uint32_t cap = p->mask ? (p->mask + 1) * 2 : 64;
    uint32_t *s = calloc(cap, sizeof(*s));
    if (!s)
        return -1;
    for (uint32_t i = 0; i < p->n; i++) {
        const struct truck *t = truck_at(p, i);
        uint32_t k = hash_id(truck_id(p, t), t->id_len) & (cap - 1);
        while (s[k])
            k = (k + 1) & (cap - 1);
        s[k] = i + 1;
    }
    free(p->slots);
    p->slots = s;
    p->mask = cap - 1;
    return 0;
}

/* The truck with this id in p, created when new; NULL when memory is short. */
static struct truck *truck_get(struct part *p, const char *id, size_t len, uint32_t *idx)
{
    if ((uint64_t)(p->n + 1) * 4 > (uint64_t)(p->mask + 1) * 3 && (p->n >= MAX_TRUCKS_PER_PART || table_grow(p)))
        return NULL;
    uint32_t k = hash_id(id, len) & p->mask;
    for (uint32_t s; (s = p->slots[k]); k = (k + 1) & p->mask) {
        struct truck *t = truck_at(p, s - 1);
        if (t->id_len == len && memcmp(truck_id(p, t), id, len) == 0) {
            *idx = s - 1;
            return t;
        }
    }
    uint32_t i = p->n;
    if ((i >> TRUCK_CHUNK_SHIFT) >= p->nchunks) {
        if (p->nchunks == p->chunks_cap) {
            uint32_t cap = p->chunks_cap ? p->chunks_cap * 2 : 8;
            struct truck **c = realloc(p->chunks, cap * sizeof(*c));
            if (!c)
                return NULL;
            p->chunks = c;
            p->chunks_cap = cap;
        }
        if (!(p->chunks[p->nchunks] = malloc(TRUCK_CHUNK * sizeof(struct truck))))
            return NULL;
        p->nchunks++;
    }
    if (p->ids_len + len > p->ids_cap) {
        uint64_t cap = p->ids_cap ? (uint64_t)p->ids_cap + p->ids_cap / 2 : 1024;
        if (cap < (uint64_t)p->ids_len + len)
            cap = (uint64_t)p->ids_len + len;
        char *ids = cap > UINT32_MAX ? NULL : realloc(p->ids, cap);
        if (!ids)
            return NULL;
        p->ids = ids;
        p->ids_cap = (uint32_t)cap;
    }
    struct truck *t = truck_at(p, i);
    memset(t, 0, sizeof(*t));
    t->ign_since = t->over_since = t->jump_since = t->fence_since = t->fuel_ref_ts = UNSET;
    t->held_head = t->held_tail = NIL;
    t->fuel_ref = t->fuel_last = FUEL_NONE;
    t->fence = -1;
    t->id_len = (uint8_t)len;
    t->id_off = p->ids_len;
    memcpy(p->ids + p->ids_len, id, len);
    p->ids_len += (uint32_t)len;
    p->slots[k] = i + 1;
    p->n++;
    *idx = i;
    return t;
}

/* Appends a held reading at the ring's tail; returns its position, or NIL
 * when memory is short. */
static uint32_t ring_push(struct part *p, const struct held *h)
{
    /* NIL is the chain terminator: no reading lives at that position. */
    for (int pass = 0; pass < 2; pass++) {
        if (p->tail - p->head == p->ring_cap) {
            uint32_t cap = p->ring_cap ? p->ring_cap * 2 : 256;
            if (!cap)
                return NIL;
            struct held *r = malloc((size_t)cap * sizeof(*r));
            if (!r)
                return NIL;
            for (uint32_t pos = p->head; pos != p->tail; pos++)
                r[pos & (cap - 1)] = p->ring[pos & (p->ring_cap - 1)];
            free(p->ring);
            p->ring = r;
            p->ring_cap = cap;
        }
        uint32_t pos = p->tail++;
        if (pos == NIL) {
            struct held *d = held_at(p, pos);
            memset(d, 0, sizeof(*d));
            d->truck = HELD_CONSUMED;
            continue;
        }
        *held_at(p, pos) = *h;
        return pos;
    }
    return NIL;
}

/* Links the held reading at pos into its truck's chain, after prev (NIL:
 * at the head). */
static void chain_link(struct part *p, struct truck *t, uint32_t prev, uint32_t pos)
{
    struct held *h = held_at(p, pos);
    if (prev == NIL) {
        h->next = t->held_head;
        t->held_head = pos;
    } else {
        struct held *ph = held_at(p, prev);
        h->next = ph->next;
        ph->next = pos;
    }
    if (h->next == NIL)
        t->held_tail = pos;
    p->nheld++;
}

/* ---- alerts ---- */

static void emit(struct detect_engine *e, const struct part *p, const struct truck *t, enum detect_rule rule,
                 enum detect_alert_state state, int64_t started, int64_t at, int32_t lat, int32_t lon,
                 const char *details)
{
    struct detect_alert a = {
        .truck_id = truck_id(p, t),
        .truck_id_len = t->id_len,
        .rule = rule,
        .state = state,
        .started_ms = started,
        .detected_ms = at,
        .ended_ms = state == DA_CLEARED ? at : 0,
        .lat = lat * 1e-7,
        .lon = lon * 1e-7,
        .wallclock = rule == DR_OFFLINE && (t->flags & F_WALLCLOCK),
    };
    if (a.wallclock)
        snprintf(a.details, sizeof(a.details), "{\"source\":\"wallclock\"}");
    else if (details)
        snprintf(a.details, sizeof(a.details), "%s", details);
    else
        snprintf(a.details, sizeof(a.details), "{\"duration_s\":%.3f}", ((double)at - (double)started) / 1000.0);
    if (state == DA_RAISED)
        e->st.raised[rule]++;
    else
        e->st.cleared[rule]++;
    e->emit(e->ctx, &a);
}

static void raise_alert(struct detect_engine *e, const struct part *p, struct truck *t, enum detect_rule rule,
                        int64_t started, int64_t at, int32_t lat, int32_t lon, const char *details)
{
    t->flags |= ACT(rule);
    emit(e, p, t, rule, DA_RAISED, started, at, lat, lon, details);
}

static void clear_alert(struct detect_engine *e, const struct part *p, struct truck *t, enum detect_rule rule,
                        int64_t started, int64_t at, int32_t lat, int32_t lon)
{
    emit(e, p, t, rule, DA_CLEARED, started, at, lat, lon, NULL);
    t->flags &= (uint16_t)~ACT(rule);
    if (rule == DR_OFFLINE)
        t->flags &= (uint16_t)~F_WALLCLOCK;
}

static int fence_find(const struct geo_fence_set *fs, int32_t lat_q, int32_t lon_q)
{
    double lat = lat_q * 1e-7, lon = lon_q * 1e-7;
    size_t n = fs->count < INT16_MAX ? fs->count : INT16_MAX;
    for (size_t i = 0; i < n; i++) {
        const struct geo_fence *f = &fs->fences[i];
        if (lon < f->bbox[0] || lat < f->bbox[1] || lon > f->bbox[2] || lat > f->bbox[3])
            continue;
        if (geo_fence_contains(f, lat, lon))
            return (int)i;
    }
    return -1;
}

/* ---- the rules: one processed reading ----
 *
 * process() hands one reading to each rule in a fixed order; the order is
 * part of the behaviour (alerts come out in it, and later rules see the
 * state earlier ones left):
 *   offline cleared -> gps_jump (decides whether the position is good) ->
 *   for a good position: ignition run, stop anchor, stationary_engine_on or
 *   moving_ignition_off, fuel_drop, geofence_exit -> overspeed (also for a
 *   jumped reading: speed is no position) -> the truck's last reading.
 * Each rule_* function reads and writes only its own fields of the truck
 * (see the state block at the top), except where its comment says. */

/* A reading as the rules see it. */
struct reading {
    const struct held *h;
    int64_t ts;
    double speed_kmh;
    bool ign;
    bool seen; /* the truck had a processed reading before this one */
};

/* Whether moving d metres in dt ms is a GPS jump. */
static bool is_jump(const struct detect_engine *e, double d, int64_t dt)
{
    return d >= e->jump_min_m && geo_implied_speed_kmh(d, dt) > e->r.jump_max_speed_kmh;
}

/* gps_jump.  Returns whether the reading's position is good (plausible);
 * when the truck is confirmed at the jumped position, moves the good
 * position there. */
static inline bool rule_gps_jump(struct detect_engine *e, struct part *p, struct truck *t, const struct reading *r)
{
    const struct held *h = r->h;
    const int64_t ts = r->ts;
    if (!r->seen || !e->r.enabled[DR_GPS_JUMP])
        return true;
    double d = dist_m(t->good_lat, t->good_lon, h->lat, h->lon);
    bool implausible = is_jump(e, d, ts - (t->last_ts - t->good_lag));
    if (!(t->flags & ACT(DR_GPS_JUMP))) {
        if (!implausible)
            return true;
        char det[160];
        snprintf(det, sizeof(det), "{\"km\":%.1f}", d / 1000.0);
        raise_alert(e, p, t, DR_GPS_JUMP, ts, ts, t->good_lat, t->good_lon, det);
        t->jump_since = ts;
        t->jump_lat = h->lat;
        t->jump_lon = h->lon;
        t->jump_n = 0;
        return false;
    }
    if (!implausible) {
        clear_alert(e, p, t, DR_GPS_JUMP, t->jump_since, ts, h->lat, h->lon);
        return true;
    }
    double dj = dist_m(t->jump_lat, t->jump_lon, h->lat, h->lon);
    bool from_jump = !is_jump(e, dj, ts - t->last_ts);
    bool good = false;
    t->jump_n = from_jump ? (uint8_t)(t->jump_n + 1) : 0;
    if (t->jump_n >= 3) {
        /* The truck is where the jump put it: the previous reading there
         * becomes the good position this one is judged from. */
        clear_alert(e, p, t, DR_GPS_JUMP, t->jump_since, ts, h->lat, h->lon);
        t->good_lat = t->jump_lat;
        t->good_lon = t->jump_lon;
        t->good_lag = 0;
        good = true;
    }
    t->jump_lat = h->lat;
    t->jump_lon = h->lon;
    return good;
}

/* The ignition run that stationary_engine_on and moving_ignition_off share
 * (ign_since): a change of ignition ends it and clears their alerts. */
static inline void ignition_run_check(struct detect_engine *e, struct part *p, struct truck *t, const struct reading *r)
{
    const bool was_ign = r->seen && (t->flags & F_IGN);
    if (r->seen && was_ign == r->ign)
        return;
    if (t->flags & ACT(DR_STATIONARY_ENGINE_ON))
        clear_alert(e, p, t, DR_STATIONARY_ENGINE_ON, t->ign_since, r->ts, r->h->lat, r->h->lon);
    if (t->flags & ACT(DR_MOVING_IGNITION_OFF))
        clear_alert(e, p, t, DR_MOVING_IGNITION_OFF, t->ign_since, r->ts, r->h->lat, r->h->lon);
    t->ign_since = UNSET;
}

/* stationary_engine_on, for a reading with ignition on; reanchor: the
 * position left the current stop (the anchor already moved to it). */
static inline void rule_stationary_engine_on(struct detect_engine *e, struct part *p, struct truck *t,
                                             const struct reading *r, bool reanchor)
{
    const struct detect_rules *R = &e->r;
    if (reanchor) {
        if (t->flags & ACT(DR_STATIONARY_ENGINE_ON))
            clear_alert(e, p, t, DR_STATIONARY_ENGINE_ON, t->ign_since, r->ts, r->h->lat, r->h->lon);
        t->ign_since = UNSET;
    }
    if (t->ign_since == UNSET) {
        t->ign_since = r->ts;
    } else if (R->enabled[DR_STATIONARY_ENGINE_ON] && !(t->flags & ACT(DR_STATIONARY_ENGINE_ON)) &&
               r->ts - t->ign_since >= R->stationary_min_ms) {
        char det[160];
        snprintf(det, sizeof(det), "{\"minutes\":%.15g,\"radius_m\":%.15g}", (double)R->stationary_min_ms / 60000.0,
                 R->stationary_radius_m);
        raise_alert(e, p, t, DR_STATIONARY_ENGINE_ON, t->ign_since, r->ts, t->anchor_lat, t->anchor_lon, det);
    }
}

/* moving_ignition_off, for a reading with ignition off: moving means the
 * reported speed and the speed implied from the last good position both
 * reach towing_min_speed_kmh. */
static inline void rule_moving_ignition_off(struct detect_engine *e, struct part *p, struct truck *t,
                                            const struct reading *r)
{
    const struct detect_rules *R = &e->r;
    const struct held *h = r->h;
    bool moving = r->seen && r->speed_kmh >= R->towing_min_speed_kmh &&
                  geo_implied_speed_kmh(dist_m(t->good_lat, t->good_lon, h->lat, h->lon),
                                        r->ts - (t->last_ts - t->good_lag)) >= R->towing_min_speed_kmh;
    if (!moving) {
        if (t->flags & ACT(DR_MOVING_IGNITION_OFF))
            clear_alert(e, p, t, DR_MOVING_IGNITION_OFF, t->ign_since, r->ts, h->lat, h->lon);
        t->ign_since = UNSET;
    } else if (t->ign_since == UNSET) {
        t->ign_since = r->ts;
    } else if (R->enabled[DR_MOVING_IGNITION_OFF] && !(t->flags & ACT(DR_MOVING_IGNITION_OFF)) &&
               r->ts - t->ign_since >= R->towing_min_ms) {
        char det[160];
        snprintf(det, sizeof(det), "{\"speed_kmh\":%.1f}", r->speed_kmh);
        raise_alert(e, p, t, DR_MOVING_IGNITION_OFF, t->ign_since, r->ts, h->lat, h->lon, det);
    }
}

/* fuel_drop; reanchor: the position left the current stop. */
static inline void rule_fuel_drop(struct detect_engine *e, struct part *p, struct truck *t, const struct reading *r,
                                  bool reanchor)
{
    const struct detect_rules *R = &e->r;
    const struct held *h = r->h;
    const int64_t ts = r->ts;
    bool parked = !reanchor && r->speed_kmh < R->parked_max_speed_kmh;
    if (!parked) {
        if (t->flags & ACT(DR_FUEL_DROP))
            clear_alert(e, p, t, DR_FUEL_DROP, t->fuel_ref_ts, ts, h->lat, h->lon);
        t->fuel_ref = FUEL_NONE;
        return;
    }
    if (h->fuel == FUEL_NONE)
        return;
    if (t->flags & ACT(DR_FUEL_DROP)) {
        if (h->fuel < t->fuel_last) {
            t->fuel_last = h->fuel;
            t->fuel_dec_lag = sat_u32(ts - t->fuel_ref_ts);
        } else if (h->fuel > t->fuel_last + 100 || ts - (t->fuel_ref_ts + t->fuel_dec_lag) >= R->fuel_drop_window_ms) {
            clear_alert(e, p, t, DR_FUEL_DROP, t->fuel_ref_ts, ts, h->lat, h->lon);
            t->fuel_ref = h->fuel;
            t->fuel_ref_ts = ts;
        }
    } else if (t->fuel_ref == FUEL_NONE || h->fuel >= t->fuel_ref || ts - t->fuel_ref_ts > R->fuel_drop_window_ms) {
        t->fuel_ref = h->fuel;
        t->fuel_ref_ts = ts;
    } else if ((t->fuel_ref - h->fuel) > R->fuel_drop_pct * 100.0) {
        if (R->enabled[DR_FUEL_DROP]) {
            char det[160];
            snprintf(det, sizeof(det), "{\"pct\":%.2f}", (t->fuel_ref - h->fuel) / 100.0);
            raise_alert(e, p, t, DR_FUEL_DROP, t->fuel_ref_ts, ts, h->lat, h->lon, det);
            t->fuel_last = h->fuel;
            t->fuel_dec_lag = sat_u32(ts - t->fuel_ref_ts);
        } else {
            t->fuel_ref = h->fuel;
            t->fuel_ref_ts = ts;
        }
    }
}

/* geofence_exit. */
static inline void rule_geofence_exit(struct detect_engine *e, struct part *p, struct truck *t, const struct reading *r)
{
    const struct geo_fence_set *fs = e->fences;
    const struct held *h = r->h;
    if (!fs || !fs->count || !e->r.enabled[DR_GEOFENCE_EXIT])
        return;
    if (t->flags & ACT(DR_GEOFENCE_EXIT)) {
        if (geo_fence_contains(&fs->fences[t->fence], h->lat * 1e-7, h->lon * 1e-7))
            clear_alert(e, p, t, DR_GEOFENCE_EXIT, t->fence_since, r->ts, h->lat, h->lon);
    } else if (t->fence >= 0 && !geo_fence_contains(&fs->fences[t->fence], h->lat * 1e-7, h->lon * 1e-7)) {
        const struct geo_fence *f = &fs->fences[t->fence];
        if (geo_fence_active(f, r->ts)) {
            /* At most 120 bytes escaped, so the details fit det and the alert's 192. */
            char id[120 + 1], det[160];
            jsonesc_cut(id, sizeof(id) - 1, f->id, 0);
            snprintf(det, sizeof(det), "{\"fence\":\"%s\"}", id);
            t->fence_since = r->ts;
            raise_alert(e, p, t, DR_GEOFENCE_EXIT, r->ts, r->ts, h->lat, h->lon, det);
        } else {
            t->fence = (int16_t)fence_find(fs, h->lat, h->lon);
        }
    } else if (t->fence < 0) {
        t->fence = (int16_t)fence_find(fs, h->lat, h->lon);
    }
}

/* The rules that need a good position: the ignition run, the stop anchor,
 * stationary_engine_on or moving_ignition_off, fuel_drop, geofence_exit. */
static inline void rules_on_position(struct detect_engine *e, struct part *p, struct truck *t, const struct reading *r)
{
    const struct held *h = r->h;
    const bool reanchor = !r->seen || dist_m(t->anchor_lat, t->anchor_lon, h->lat, h->lon) > e->r.stationary_radius_m;
    ignition_run_check(e, p, t, r);
    if (reanchor) {
        t->anchor_lat = h->lat;
        t->anchor_lon = h->lon;
    }
    if (r->ign)
        rule_stationary_engine_on(e, p, t, r, reanchor);
    else
        rule_moving_ignition_off(e, p, t, r);
    rule_fuel_drop(e, p, t, r, reanchor);
    rule_geofence_exit(e, p, t, r);
}

/* overspeed; the alert's position is the last good one when this reading's
 * is not good. */
static inline void rule_overspeed(struct detect_engine *e, struct part *p, struct truck *t, const struct reading *r,
                                  bool good)
{
    const struct detect_rules *R = &e->r;
    const int32_t lat = good ? r->h->lat : t->good_lat, lon = good ? r->h->lon : t->good_lon;
    if (r->speed_kmh > R->overspeed_kmh) {
        if (t->over_since == UNSET) {
            t->over_since = r->ts;
        } else if (R->enabled[DR_OVERSPEED] && !(t->flags & ACT(DR_OVERSPEED)) &&
                   r->ts - t->over_since >= R->overspeed_min_ms) {
            char det[160];
            snprintf(det, sizeof(det), "{\"speed_kmh\":%.1f,\"limit_kmh\":%.15g}", r->speed_kmh, R->overspeed_kmh);
            raise_alert(e, p, t, DR_OVERSPEED, t->over_since, r->ts, lat, lon, det);
        }
    } else {
        if (t->flags & ACT(DR_OVERSPEED))
            clear_alert(e, p, t, DR_OVERSPEED, t->over_since, r->ts, lat, lon);
        t->over_since = UNSET;
    }
}

/* Records the reading as the truck's last one (and its position as the good
 * one when good). */
static inline void truck_note_reading(struct truck *t, const struct reading *r, bool good)
{
    const struct held *h = r->h;
    int64_t arr = r->ts + h->arr_lag;
    if (r->seen && t->last_ts + t->arr_lag > arr)
        arr = t->last_ts + t->arr_lag;
    if (good) {
        t->good_lat = h->lat;
        t->good_lon = h->lon;
        t->good_lag = 0;
        if (r->ign)
            t->flags |= F_IGN;
        else
            t->flags &= (uint16_t)~F_IGN;
    } else {
        t->good_lag = sat_u32(r->ts - (t->last_ts - t->good_lag));
    }
    t->last_ts = r->ts;
    t->last_seq = h->seq;
    t->arr_lag = sat_i32(arr - r->ts);
    t->flags |= F_SEEN;
}

/* Runs the rules on truck t's next reading h, in (ts, seq) order. */
static void process(struct detect_engine *e, struct part *p, struct truck *t, const struct held *h)
{
    const struct reading r = {
        .h = h,
        .ts = h->ts,
        .speed_kmh = h->speed / 100.0,
        .ign = h->truck & HELD_IGN,
        .seen = t->flags & F_SEEN,
    };
    e->st.processed++;
    if (t->flags & ACT(DR_OFFLINE))
        clear_alert(e, p, t, DR_OFFLINE, t->last_ts, r.ts, h->lat, h->lon);
    const bool good = rule_gps_jump(e, p, t, &r);
    if (good)
        rules_on_position(e, p, t, &r);
    rule_overspeed(e, p, t, &r, good);
    truck_note_reading(t, &r, good);
}

/* Processes truck t's held readings up to and including the one at pos. */
static void release_upto(struct detect_engine *e, struct part *p, uint32_t pos)
{
    struct truck *t = truck_at(p, held_at(p, pos)->truck & HELD_IDX);
    for (;;) {
        uint32_t c = t->held_head;
        struct held *x = held_at(p, c);
        t->held_head = x->next;
        if (t->held_head == NIL)
            t->held_tail = NIL;
        x->truck |= HELD_CONSUMED;
        p->nheld--;
        process(e, p, t, x);
        if (c == pos)
            break;
    }
}

/* Releases the readings whose lateness bound has passed (all with force). */
static void release(struct detect_engine *e, struct part *p, bool force)
{
    for (; p->head != p->tail; p->head++) {
        struct held *h = held_at(p, p->head);
        if (h->truck & HELD_CONSUMED)
            continue;
        if (!force && e->r.lateness_ms > 0 && h->ts + (int64_t)h->arr_lag > p->ptime - e->r.lateness_ms)
            break;
        release_upto(e, p, p->head);
    }
}

static void sweep_offline(struct detect_engine *e, struct part *p, int64_t wm)
{
    for (uint32_t i = 0; i < p->n; i++) {
        struct truck *t = truck_at(p, i);
        if (!(t->flags & F_SEEN) || (t->flags & ACT(DR_OFFLINE)) || t->held_head != NIL)
            continue;
        if (t->last_ts + (int64_t)t->arr_lag + e->r.offline_min_ms <= wm) {
            char det[64];
            snprintf(det, sizeof(det), "{\"minutes\":%.15g}", (double)e->r.offline_min_ms / 60000.0);
            raise_alert(e, p, t, DR_OFFLINE, t->last_ts, wm, t->good_lat, t->good_lon, det);
        }
    }
}

static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

/* ---- the interface ---- */

struct detect_engine *detect_engine_new(const struct detect_rules *rules, const struct geo_fence_set *fences,
                                        int partitions, detect_emit_fn emit_fn, void *ctx)
{
    if (partitions < 0 || !rules || !emit_fn)
        return NULL;
    struct detect_engine *e = calloc(1, sizeof(*e));
    if (!e)
        return NULL;
    e->r = *rules;
    e->fences = fences;
    e->nparts = partitions;
    e->emit = emit_fn;
    e->ctx = ctx;
    e->jump_min_m = rules->jump_min_km * 1000.0;
    e->time_cap = INT64_MAX;
    /* Offline sweeps every minute of watermark (finer for short thresholds):
     * detection up to one step after the threshold, at a cost of one pass
     * over the partition's trucks per step. */
    e->sweep_ms = rules->offline_min_ms / 10;
    if (e->sweep_ms > 60000)
        e->sweep_ms = 60000;
    if (e->sweep_ms < 1000)
        e->sweep_ms = 1000;
    e->parts = calloc(partitions ? (size_t)partitions : 1, sizeof(*e->parts));
    if (!e->parts) {
        free(e);
        return NULL;
    }
    for (int i = 0; i < partitions; i++)
        part_release(&e->parts[i]);
    return e;
}

void detect_engine_free(struct detect_engine *e)
{
    if (!e)
        return;
    for (int i = 0; i < e->nparts; i++)
        part_release(&e->parts[i]);
    free(e->parts);
    free(e);
}

void detect_engine_cap_time(struct detect_engine *e, int64_t cap_ms)
{
    e->time_cap = cap_ms;
}

int detect_engine_feed(struct detect_engine *e, int partition, const struct detect_reading *r)
{
    if (partition < 0 || partition >= e->nparts || !r->truck_id || r->truck_id_len == 0 || r->truck_id_len > 64 ||
        r->ts_ms < 0 || r->ts_ms > MAX_TS_MS)
        return -1;
    struct part *p = &e->parts[partition];
    e->st.readings++;
    uint32_t idx;
    struct truck *t = truck_get(p, r->truck_id, r->truck_id_len, &idx);
    if (!t)
        return -1;
    const uint32_t seq = (uint32_t)r->seq;
    if (t->flags & F_SEEN) {
        int c = key_cmp(r->ts_ms, seq, t->last_ts, t->last_seq);
        if (c <= 0) {
            if (c == 0)
                e->st.duplicates++;
            else
                e->st.too_late++;
            return 0;
        }
    }
    /* where in the truck's chain: after prev */
    uint32_t prev = NIL;
    if (t->held_tail != NIL) {
        const struct held *tl = held_at(p, t->held_tail);
        int c = key_cmp(r->ts_ms, seq, tl->ts, tl->seq);
        if (c == 0) {
            e->st.duplicates++;
            return 0;
        }
        if (c > 0) {
            prev = t->held_tail;
        } else {
            for (uint32_t cur = t->held_head; cur != NIL; cur = held_at(p, cur)->next) {
                const struct held *x = held_at(p, cur);
                int cc = key_cmp(r->ts_ms, seq, x->ts, x->seq);
                if (cc == 0) {
                    e->st.duplicates++;
                    return 0;
                }
                if (cc < 0)
                    break;
                prev = cur;
            }
        }
    }
    /* A clock running ahead moves the partition's time no further than the cap. */
    int64_t pt = r->ts_ms < e->time_cap ? r->ts_ms : e->time_cap;
    if (p->ptime == UNSET || pt > p->ptime)
        p->ptime = pt;
    struct held h = {
        .ts = r->ts_ms,
        .truck = idx | (r->ignition ? HELD_IGN : 0),
        .next = NIL,
        .seq = seq,
        .arr_lag = sat_i32(p->ptime - r->ts_ms),
        .lat = q_deg(r->lat),
        .lon = q_deg(r->lon),
        .speed = q_centi(r->speed_kmh, 655.0),
        .fuel = isnan(r->fuel_pct) ? FUEL_NONE : q_centi(r->fuel_pct, 100.0),
    };
    uint32_t pos = ring_push(p, &h);
    if (pos == NIL)
        return -1;
    chain_link(p, truck_at(p, idx), prev, pos);
    release(e, p, false);
    if (e->r.enabled[DR_OFFLINE]) {
        int64_t wm = p->ptime - e->r.lateness_ms;
        int64_t step = floor_div(wm, e->sweep_ms);
        if (p->swept == UNSET || step > p->swept) {
            p->swept = step;
            sweep_offline(e, p, wm);
        }
    }
    return 0;
}

void detect_engine_flush_partition(struct detect_engine *e, int partition)
{
    if (partition < 0 || partition >= e->nparts)
        return;
    release(e, &e->parts[partition], true);
}

void detect_engine_idle(struct detect_engine *e, int partition, int64_t now_ms, int64_t silent_ms)
{
    if (partition < 0 || partition >= e->nparts || !e->r.enabled[DR_OFFLINE] || silent_ms < e->r.offline_min_ms)
        return;
    struct part *p = &e->parts[partition];
    release(e, p, true);
    for (uint32_t i = 0; i < p->n; i++) {
        struct truck *t = truck_at(p, i);
        if (!(t->flags & F_SEEN) || (t->flags & ACT(DR_OFFLINE)))
            continue;
        t->flags |= F_WALLCLOCK;
        raise_alert(e, p, t, DR_OFFLINE, t->last_ts, now_ms, t->good_lat, t->good_lon, NULL);
    }
}

void detect_engine_reset_partition(struct detect_engine *e, int partition)
{
    if (partition >= 0 && partition < e->nparts)
        part_release(&e->parts[partition]);
}

void detect_engine_stats(const struct detect_engine *e, struct detect_stats *out)
{
    *out = e->st;
    out->trucks = 0;
    out->held = 0;
    for (int i = 0; i < e->nparts; i++) {
        out->trucks += e->parts[i].n;
        out->held += e->parts[i].nheld;
    }
}

size_t detect_engine_bytes_per_truck(const struct detect_engine *e)
{
    uint64_t bytes = 0, trucks = 0;
    for (int i = 0; i < e->nparts; i++) {
        const struct part *p = &e->parts[i];
        trucks += p->n;
        bytes += (uint64_t)p->nchunks * TRUCK_CHUNK * sizeof(struct truck) + p->chunks_cap * sizeof(void *);
        bytes += p->mask ? (uint64_t)(p->mask + 1) * sizeof(uint32_t) : 0;
        bytes += p->ids_cap;
    }
    return trucks ? (size_t)((bytes + trucks / 2) / trucks) : 0;
}

/* ---- checkpoints ----
 * "FSDE" version header_size truck_size | ptime swept n nheld |
 * n x (id_len id struct-truck) | nheld x struct-held (ring order) | fnv64 */

#define CK_MAGIC 0x45445346u /* "FSDE" little-endian */
#define CK_VERSION 1u

static int buf_put(char **buf, size_t *len, size_t *cap, const void *src, size_t n)
{
    if (*len + n > *cap) {
        size_t c = *cap ? *cap : 4096;
        while (c < *len + n)
            c *= 2;
        char *b = realloc(*buf, c);
        if (!b)
            return -1;
        *buf = b;
        *cap = c;
    }
    memcpy(*buf + *len, src, n);
    *len += n;
    return 0;
}

static uint64_t fnv64(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (uint8_t)s[i]) * 1099511628211ull;
    return h;
}

int detect_engine_save_partition(const struct detect_engine *e, int partition, char **buf, size_t *len, size_t *cap)
{
    if (partition < 0 || partition >= e->nparts)
        return -1;
    const struct part *p = &e->parts[partition];
    size_t start = *len;
    uint32_t hdr[4] = {CK_MAGIC, CK_VERSION, (uint32_t)sizeof(struct truck), (uint32_t)sizeof(struct held)};
    int64_t times[2] = {p->ptime, p->swept};
    uint32_t counts[2] = {p->n, p->nheld};
    if (buf_put(buf, len, cap, hdr, sizeof(hdr)) || buf_put(buf, len, cap, times, sizeof(times)) ||
        buf_put(buf, len, cap, counts, sizeof(counts)))
        goto fail;
    for (uint32_t i = 0; i < p->n; i++) {
        struct truck t = *truck_at(p, i);
        t.held_head = t.held_tail = NIL;
        t.id_off = 0;
        if (buf_put(buf, len, cap, &t.id_len, 1) || buf_put(buf, len, cap, truck_id(p, truck_at(p, i)), t.id_len) ||
            buf_put(buf, len, cap, &t, sizeof(t)))
            goto fail;
    }
    for (uint32_t pos = p->head; pos != p->tail; pos++) {
        struct held h = *held_at(p, pos);
        if (h.truck & HELD_CONSUMED)
            continue;
        h.next = NIL;
        if (buf_put(buf, len, cap, &h, sizeof(h)))
            goto fail;
    }
    uint64_t sum = fnv64(*buf + start, *len - start);
    if (buf_put(buf, len, cap, &sum, sizeof(sum)))
        goto fail;
    return 0;
fail:
    *len = start;
    return -1;
}

static bool ts_ok(int64_t ts, bool unset_ok)
{
    return (unset_ok && ts == UNSET) || (ts >= 0 && ts <= MAX_TS_MS);
}

/* Whether a truck read from a checkpoint keeps the invariants process()
 * relies on (times in range, so differences never overflow). */
static bool truck_ok(const struct truck *t, size_t nfences)
{
    return ts_ok(t->last_ts, false) && ts_ok(t->ign_since, true) && ts_ok(t->over_since, true) &&
           ts_ok(t->jump_since, true) && ts_ok(t->fence_since, true) && ts_ok(t->fuel_ref_ts, true) &&
           (t->fuel_ref <= 10000 || t->fuel_ref == FUEL_NONE) && (t->fuel_last <= 10000 || t->fuel_last == FUEL_NONE) &&
           /* a fuel reference has its time (process() subtracts it) */
           (t->fuel_ref == FUEL_NONE || t->fuel_ref_ts != UNSET) && t->fence >= -1 &&
           (t->fence < (int64_t)nfences || !(t->flags & ACT(DR_GEOFENCE_EXIT))) &&
           /* an active alert has its start */
           (!(t->flags & ACT(DR_STATIONARY_ENGINE_ON)) || (t->ign_since != UNSET && (t->flags & F_IGN))) &&
           (!(t->flags & ACT(DR_MOVING_IGNITION_OFF)) || (t->ign_since != UNSET && !(t->flags & F_IGN))) &&
           (!(t->flags & ACT(DR_OVERSPEED)) || t->over_since != UNSET) &&
           (!(t->flags & ACT(DR_GPS_JUMP)) || t->jump_since != UNSET) &&
           (!(t->flags & ACT(DR_GEOFENCE_EXIT)) || (t->fence_since != UNSET && t->fence >= 0)) &&
           (!(t->flags & ACT(DR_FUEL_DROP)) || (t->fuel_ref_ts != UNSET && t->fuel_ref != FUEL_NONE)) &&
           ((t->flags & F_SEEN) || !(t->flags & (ACT(DR_COUNT) - 1)));
}

static int ck_get(const char *buf, size_t len, size_t *off, void *dst, size_t n)
{
    if (len - *off < n)
        return -1;
    memcpy(dst, buf + *off, n);
    *off += n;
    return 0;
}

int detect_engine_load_partition(struct detect_engine *e, int partition, const char *buf, size_t len)
{
    if (partition < 0 || partition >= e->nparts)
        return -1;
    struct part *p = &e->parts[partition];
    part_release(p);
    size_t off = 0;
    uint32_t hdr[4], counts[2];
    int64_t times[2];
    uint64_t sum;
    if (len < sizeof(hdr) + sizeof(sum))
        goto bad;
    memcpy(&sum, buf + len - sizeof(sum), sizeof(sum));
    len -= sizeof(sum);
    if (fnv64(buf, len) != sum || ck_get(buf, len, &off, hdr, sizeof(hdr)) || hdr[0] != CK_MAGIC ||
        hdr[1] != CK_VERSION || hdr[2] != sizeof(struct truck) || hdr[3] != sizeof(struct held) ||
        ck_get(buf, len, &off, times, sizeof(times)) || ck_get(buf, len, &off, counts, sizeof(counts)))
        goto bad;
    if (!ts_ok(times[0], true) || (counts[1] && times[0] == UNSET))
        goto bad;
    p->ptime = times[0];
    p->swept = times[1];
    size_t nfences = e->fences ? e->fences->count : 0;
    for (uint32_t i = 0; i < counts[0]; i++) {
        uint8_t id_len;
        char id[64];
        struct truck t;
        if (ck_get(buf, len, &off, &id_len, 1) || id_len == 0 || id_len > 64 || ck_get(buf, len, &off, id, id_len) ||
            ck_get(buf, len, &off, &t, sizeof(t)) || t.id_len != id_len)
            goto bad;
        uint32_t idx;
        struct truck *nt = truck_get(p, id, id_len, &idx);
        if (!nt || idx != i)
            goto bad; /* out of memory, or the same id twice */
        t.id_off = nt->id_off;
        t.held_head = t.held_tail = NIL;
        if (t.fence >= (int64_t)nfences) {
            /* the fences changed since: forget the fence and its alert */
            t.fence = -1;
            t.flags &= (uint16_t)~ACT(DR_GEOFENCE_EXIT);
        }
        if (!truck_ok(&t, nfences))
            goto bad;
        *nt = t;
    }
    for (uint32_t k = 0; k < counts[1]; k++) {
        struct held h;
        if (ck_get(buf, len, &off, &h, sizeof(h)) || (h.truck & HELD_CONSUMED) || (h.truck & HELD_IDX) >= p->n ||
            !ts_ok(h.ts, false) || (h.fuel > 10000 && h.fuel != FUEL_NONE))
            goto bad;
        struct truck *t = truck_at(p, h.truck & HELD_IDX);
        uint32_t prev = NIL;
        for (uint32_t cur = t->held_head; cur != NIL; cur = held_at(p, cur)->next) {
            const struct held *x = held_at(p, cur);
            int c = key_cmp(h.ts, h.seq, x->ts, x->seq);
            if (c == 0)
                goto bad;
            if (c < 0)
                break;
            prev = cur;
        }
        h.next = NIL;
        uint32_t pos = ring_push(p, &h);
        if (pos == NIL)
            goto bad;
        chain_link(p, t, prev, pos);
    }
    if (off != len)
        goto bad;
    return 0;
bad:
    part_release(p);
    return -1;
}

/* ---- alert records ---- */

size_t detect_alert_id(const struct detect_alert *a, char *buf, size_t size)
{
    int n = snprintf(buf, size, "%.*s:%s:%lld", (int)a->truck_id_len, a->truck_id,
                     detect_rule_name(a->rule) ? detect_rule_name(a->rule) : "unknown", (long long)a->started_ms);
    return n < 0 ? 0 : (size_t)n;
}

size_t detect_alert_json(const struct detect_alert *a, char *buf, size_t size)
{
    char raw[65], id[65 * 6 + 1], aid[200], aid_esc[200 * 6 + 1];
    size_t n = a->truck_id_len < 64 ? a->truck_id_len : 64;
    memcpy(raw, a->truck_id, n);
    raw[n] = 0;
    jsonesc_cut(id, sizeof(id) - 1, raw, 0);
    detect_alert_id(a, aid, sizeof(aid));
    jsonesc_cut(aid_esc, sizeof(aid_esc) - 1, aid, 0);
    const char *rule = detect_rule_name(a->rule) ? detect_rule_name(a->rule) : "unknown";
    char ended[40] = "";
    if (a->state == DA_CLEARED)
        snprintf(ended, sizeof(ended), ",\"ended_ms\":%lld", (long long)a->ended_ms);
    int w = snprintf(buf, size,
                     "{\"alert_id\":\"%s\",\"state\":\"%s\",\"truck_id\":\"%s\",\"rule\":\"%s\",\"started_ms\":%lld,"
                     "\"detected_ms\":%lld%s,\"lat\":%.7f,\"lon\":%.7f,\"details\":%s}",
                     aid_esc, a->state == DA_RAISED ? "raised" : "cleared", id, rule, (long long)a->started_ms,
                     (long long)a->detected_ms, ended, isfinite(a->lat) ? a->lat : 0.0, isfinite(a->lon) ? a->lon : 0.0,
                     a->details[0] ? a->details : "{}");
    return (w < 0 || (size_t)w >= size) ? 0 : (size_t)w;
}
