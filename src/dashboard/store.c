/*
 * store.c - the dashboard's truck store (see store.h).
 *
 * Trucks live in one growing array; an open-addressing hash of their ids
 * (FNV-1a, linear probing, load <= 1/2) finds them.  A slot keeps the id's
 * full hash next to the index, so a probe passes other trucks' slots
 * without reading them, and growing the table rehashes no id.  Ids are kept once, in an
 * append-only arena.  The fine grid keeps a doubly linked list of the trucks
 * in each cell (indices, not pointers, so the array may move), and both grids
 * keep count and position sums per cell for clusters.
 */
#include "dashboard/store.h"

#include "core/tmscan.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define FINE_CELLS ((size_t)DS_FINE_COLS * DS_FINE_ROWS)
#define COARSE_CELLS ((size_t)DS_COARSE_COLS * DS_COARSE_ROWS)
#define FINE_PER_COARSE 16 /* DS_COARSE_DEG / DS_FINE_DEG */

const char *ds_state_name(enum ds_state s)
{
    switch (s) {
    case DS_MOVING:
        return "moving";
    case DS_IDLE:
        return "idle";
    case DS_PARKED:
        return "parked";
    case DS_OFFLINE:
        return "offline";
    default:
        return "unknown";
    }
}

int ds_store_init(struct ds_store *s, uint32_t max_trucks)
{
    memset(s, 0, sizeof(*s));
    s->max_trucks = max_trucks ? max_trucks : 1;
    s->cap = 1024;
    s->trucks = malloc(s->cap * sizeof(*s->trucks));
    s->slot_mask = 2047;
    s->slots = calloc((size_t)s->slot_mask + 1, sizeof(*s->slots));
    s->ids_cap = 16384;
    s->ids = malloc(s->ids_cap);
    s->fine_head = calloc(FINE_CELLS, sizeof(*s->fine_head));
    s->fine = calloc(FINE_CELLS, sizeof(*s->fine));
    s->coarse = calloc(COARSE_CELLS, sizeof(*s->coarse));
    if (!s->trucks || !s->slots || !s->ids || !s->fine_head || !s->fine || !s->coarse) {
        ds_store_release(s);
        return -1;
    }
    return 0;
}

void ds_store_release(struct ds_store *s)
{
    free(s->trucks);
    free(s->slots);
    free(s->ids);
    free(s->fine_head);
    free(s->fine);
    free(s->coarse);
    memset(s, 0, sizeof(*s));
}

static int fine_col(double lon)
{
    int c = (int)floor((lon + 180.0) / DS_FINE_DEG);
    return c < 0 ? 0 : c >= DS_FINE_COLS ? DS_FINE_COLS - 1 : c;
}

static int fine_row(double lat)
{
    int r = (int)floor((lat + 90.0) / DS_FINE_DEG);
    return r < 0 ? 0 : r >= DS_FINE_ROWS ? DS_FINE_ROWS - 1 : r;
}

uint32_t ds_store_hash(const char *id, size_t len)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)id[i];
        h *= 16777619u;
    }
    return h;
}

#define SLOT_TAG(h) ((uint64_t)(h) << 32)
#define SLOT_TAG_MASK 0xffffffff00000000ull

const char *ds_store_id(const struct ds_store *s, uint32_t idx, size_t *len)
{
    const struct ds_truck *t = &s->trucks[idx];
    *len = t->id_len;
    return s->ids + t->id_off;
}

int64_t ds_store_find_hashed(const struct ds_store *s, const char *id, size_t id_len, uint32_t hash)
{
    if (!s->slots || id_len == 0 || id_len > DS_ID_MAX)
        return -1;
    /* A slot whose hash differs is passed without touching its truck. */
    uint64_t tag = SLOT_TAG(hash);
    for (uint32_t i = hash & s->slot_mask;; i = (i + 1) & s->slot_mask) {
        uint64_t v = s->slots[i];
        if (!v)
            return -1;
        if ((v & SLOT_TAG_MASK) != tag)
            continue;
        uint32_t idx = (uint32_t)v - 1;
        const struct ds_truck *t = &s->trucks[idx];
        if (t->id_len == id_len && memcmp(s->ids + t->id_off, id, id_len) == 0)
            return idx;
    }
}

int64_t ds_store_find(const struct ds_store *s, const char *id, size_t id_len)
{
    return ds_store_find_hashed(s, id, id_len, ds_store_hash(id, id_len));
}

/* The first truck whose slot carries hash (probably the one), or NULL. */
static const struct ds_truck *likely_truck(const struct ds_store *s, uint32_t hash)
{
    uint64_t tag = SLOT_TAG(hash);
    uint32_t i = hash & s->slot_mask;
    for (int probes = 0; probes < 8; probes++, i = (i + 1) & s->slot_mask) {
        uint64_t v = s->slots[i];
        if (!v)
            return NULL;
        if ((v & SLOT_TAG_MASK) == tag)
            return &s->trucks[(uint32_t)v - 1];
    }
    return NULL;
}

void ds_store_prefetch_slot(const struct ds_store *s, uint32_t hash, const struct ds_reading *r)
{
    __builtin_prefetch(&s->slots[hash & s->slot_mask]);
    if (r->lat >= -90 && r->lat <= 90 && r->lon >= -180 && r->lon <= 180)
        __builtin_prefetch(&s->fine[(size_t)fine_row(r->lat) * DS_FINE_COLS + (size_t)fine_col(r->lon)]);
}

void ds_store_prefetch_truck(const struct ds_store *s, uint32_t hash)
{
    const struct ds_truck *t = likely_truck(s, hash);
    if (t) {
        __builtin_prefetch(t, 1);
        __builtin_prefetch((const char *)(t + 1) - 1, 1); /* 56 bytes may span two lines */
    }
}

void ds_store_prefetch_id(const struct ds_store *s, uint32_t hash)
{
    const struct ds_truck *t = likely_truck(s, hash);
    if (t)
        __builtin_prefetch(s->ids + t->id_off);
}

static int grow_slots(struct ds_store *s)
{
    uint32_t mask = s->slot_mask * 2 + 1;
    uint64_t *slots = calloc((size_t)mask + 1, sizeof(*slots));
    if (!slots)
        return -1;
    for (uint32_t i = 0; i <= s->slot_mask; i++) {
        uint64_t v = s->slots[i];
        if (!v)
            continue;
        uint32_t j = (uint32_t)(v >> 32) & mask;
        while (slots[j])
            j = (j + 1) & mask;
        slots[j] = v;
    }
    free(s->slots);
    s->slots = slots;
    s->slot_mask = mask;
    return 0;
}

/* The index of truck id, added (without a position) if new; -1 if full. */
static int64_t find_or_add(struct ds_store *s, const char *id, size_t id_len, uint32_t hash)
{
    int64_t found = ds_store_find_hashed(s, id, id_len, hash);
    if (found >= 0)
        return found;
    if (s->count >= s->max_trucks)
        return -1;
    if ((uint64_t)(s->count + 1) * 2 > (uint64_t)s->slot_mask + 1 && grow_slots(s) != 0)
        return -1;
    if (s->count == s->cap) {
        uint32_t cap = s->cap * 2 > s->max_trucks ? s->max_trucks : s->cap * 2;
        struct ds_truck *n = realloc(s->trucks, (size_t)cap * sizeof(*n));
        if (!n)
            return -1;
        s->trucks = n;
        s->cap = cap;
    }
    if (s->ids_len + id_len > s->ids_cap) {
        size_t cap = s->ids_cap * 2;
        char *n = realloc(s->ids, cap);
        if (!n)
            return -1;
        s->ids = n;
        s->ids_cap = cap;
    }
    uint32_t idx = s->count++;
    struct ds_truck *t = &s->trucks[idx];
    memset(t, 0, sizeof(*t));
    t->id_off = (uint32_t)s->ids_len;
    t->id_len = (uint8_t)id_len;
    memcpy(s->ids + s->ids_len, id, id_len);
    s->ids_len += id_len;
    uint32_t i = hash & s->slot_mask;
    while (s->slots[i])
        i = (i + 1) & s->slot_mask;
    s->slots[i] = SLOT_TAG(hash) | (idx + 1);
    return idx;
}

static size_t fine_of(double lat, double lon)
{
    return (size_t)fine_row(lat) * DS_FINE_COLS + (size_t)fine_col(lon);
}

static size_t coarse_of_fine(size_t f)
{
    size_t r = f / DS_FINE_COLS, c = f % DS_FINE_COLS;
    return (r / FINE_PER_COARSE) * DS_COARSE_COLS + c / FINE_PER_COARSE;
}

static void cell_add(struct ds_cell *c, double lat, double lon, int sign)
{
    c->count = sign > 0 ? c->count + 1 : c->count - 1;
    c->sum_lat += sign * lat;
    c->sum_lon += sign * lon;
    if (c->count == 0)
        c->sum_lat = c->sum_lon = 0; /* no drift survives an empty cell */
}

static void grid_remove(struct ds_store *s, uint32_t idx)
{
    struct ds_truck *t = &s->trucks[idx];
    double lat = ds_truck_lat(t), lon = ds_truck_lon(t);
    size_t f = fine_of(lat, lon);
    if (t->prev)
        s->trucks[t->prev - 1].next = t->next;
    else
        s->fine_head[f] = t->next;
    if (t->next)
        s->trucks[t->next - 1].prev = t->prev;
    t->next = t->prev = 0;
    cell_add(&s->fine[f], lat, lon, -1);
    cell_add(&s->coarse[coarse_of_fine(f)], lat, lon, -1);
}

static void grid_insert(struct ds_store *s, uint32_t idx)
{
    struct ds_truck *t = &s->trucks[idx];
    double lat = ds_truck_lat(t), lon = ds_truck_lon(t);
    size_t f = fine_of(lat, lon);
    t->prev = 0;
    t->next = s->fine_head[f];
    if (t->next)
        s->trucks[t->next - 1].prev = idx + 1;
    s->fine_head[f] = idx + 1;
    cell_add(&s->fine[f], lat, lon, 1);
    cell_add(&s->coarse[coarse_of_fine(f)], lat, lon, 1);
}

/* A truck moving within its cell: the same sums as cell_add(-1) then
 * cell_add(+1) would give, without touching the cell's list. */
static void cell_move(struct ds_cell *c, double olat, double olon, double nlat, double nlon)
{
    if (c->count == 1) {
        c->sum_lat = nlat;
        c->sum_lon = nlon;
    } else {
        c->sum_lat = (c->sum_lat - olat) + nlat;
        c->sum_lon = (c->sum_lon - olon) + nlon;
    }
}

static uint16_t tenths(double v, double max)
{
    if (!(v > 0))
        return 0;
    if (v > max)
        v = max;
    return (uint16_t)lround(v * 10.0);
}

enum ds_apply ds_store_reading(struct ds_store *s, const char *id, size_t id_len, const struct ds_reading *r)
{
    return ds_store_reading_hashed(s, id, id_len, ds_store_hash(id, id_len), r);
}

enum ds_apply ds_store_reading_hashed(struct ds_store *s, const char *id, size_t id_len, uint32_t hash,
                                      const struct ds_reading *r)
{
    if (id_len == 0 || id_len > DS_ID_MAX || !(r->lat >= -90 && r->lat <= 90) || !(r->lon >= -180 && r->lon <= 180))
        return DS_BAD;
    int64_t found = find_or_add(s, id, id_len, hash);
    if (found < 0) {
        s->refused++;
        return DS_FULL;
    }
    uint32_t idx = (uint32_t)found;
    struct ds_truck *t = &s->trucks[idx];
    if ((t->flags & DS_F_POSITION) && (r->ts_ms < t->ts_ms || (r->ts_ms == t->ts_ms && (uint32_t)r->seq <= t->seq))) {
        s->stale++;
        return DS_STALE;
    }
    int32_t lat_e7 = (int32_t)lround(r->lat * 1e7), lon_e7 = (int32_t)lround(r->lon * 1e7);
    int relink = 1;
    if (t->flags & DS_F_POSITION) {
        /* Most readings leave the truck in its fine cell (0.25 degrees is
         * minutes of driving): then only the cell's sums change, and the
         * neighbours on its list (random places in the array) stay untouched. */
        double olat = ds_truck_lat(t), olon = ds_truck_lon(t), nlat = lat_e7 / 1e7, nlon = lon_e7 / 1e7;
        size_t f = fine_of(olat, olon);
        if (f == fine_of(nlat, nlon)) {
            cell_move(&s->fine[f], olat, olon, nlat, nlon);
            cell_move(&s->coarse[coarse_of_fine(f)], olat, olon, nlat, nlon);
            relink = 0;
        } else {
            grid_remove(s, idx);
        }
    }
    t->ts_ms = r->ts_ms;
    t->seq = (uint32_t)r->seq;
    t->lat_e7 = lat_e7;
    t->lon_e7 = lon_e7;
    t->speed_dkmh = tenths(r->speed_kmh, 6000);
    t->heading_ddeg = r->has_heading ? tenths(r->heading_deg, 3599) : 0;
    t->fuel_dpct = r->has_fuel ? tenths(r->fuel_pct, 1000) : 0;
    t->odometer_km = r->has_odometer ? (float)r->odometer_km : 0;
    uint8_t keep = t->flags & DS_F_STATUS_OFFLINE;
    t->flags =
        (uint8_t)(keep | DS_F_POSITION | (r->ignition ? DS_F_IGNITION : 0) | (r->has_heading ? DS_F_HEADING : 0) |
                  (r->has_fuel ? DS_F_FUEL : 0) | (r->has_odometer ? DS_F_ODOMETER : 0));
    if (relink)
        grid_insert(s, idx);
    t->version = ++s->version;
    s->applied++;
    return DS_APPLIED;
}

enum ds_apply ds_store_status(struct ds_store *s, const char *id, size_t id_len, int offline, int64_t ts_ms)
{
    if (id_len == 0 || id_len > DS_ID_MAX)
        return DS_BAD;
    int64_t found = find_or_add(s, id, id_len, ds_store_hash(id, id_len));
    if (found < 0) {
        s->refused++;
        return DS_FULL;
    }
    struct ds_truck *t = &s->trucks[found];
    if (ts_ms <= t->status_ts_ms) {
        s->stale++;
        return DS_STALE;
    }
    t->status_ts_ms = ts_ms;
    t->flags = (uint8_t)(offline ? t->flags | DS_F_STATUS_OFFLINE : t->flags & ~DS_F_STATUS_OFFLINE);
    t->version = ++s->version;
    return DS_APPLIED;
}

enum ds_state ds_truck_state(const struct ds_truck *t, int64_t now_ms)
{
    if (!(t->flags & DS_F_POSITION) || now_ms - t->ts_ms >= DS_OFFLINE_AFTER_MS)
        return DS_OFFLINE;
    if ((t->flags & DS_F_STATUS_OFFLINE) && t->status_ts_ms >= t->ts_ms)
        return DS_OFFLINE;
    if (t->speed_dkmh > (uint16_t)(DS_MOVING_KMH * 10))
        return DS_MOVING;
    return (t->flags & DS_F_IGNITION) ? DS_IDLE : DS_PARKED;
}

uint32_t ds_store_fleet(const struct ds_store *s, int64_t now_ms, uint32_t *counts)
{
    uint32_t total = 0;
    for (int i = 0; i < DS_STATE_COUNT; i++)
        counts[i] = 0;
    for (uint32_t i = 0; i < s->count; i++) {
        const struct ds_truck *t = &s->trucks[i];
        if (!(t->flags & DS_F_POSITION))
            continue;
        counts[ds_truck_state(t, now_ms)]++;
        total++;
    }
    return total;
}

int ds_bbox_clamp(struct ds_bbox *b)
{
    if (!isfinite(b->min_lon) || !isfinite(b->min_lat) || !isfinite(b->max_lon) || !isfinite(b->max_lat))
        return -1;
    b->min_lon = fmax(-180, fmin(180, b->min_lon));
    b->max_lon = fmax(-180, fmin(180, b->max_lon));
    b->min_lat = fmax(-90, fmin(90, b->min_lat));
    b->max_lat = fmax(-90, fmin(90, b->max_lat));
    return b->min_lon <= b->max_lon && b->min_lat <= b->max_lat ? 0 : -1;
}

static int inside(const struct ds_truck *t, const struct ds_bbox *b)
{
    double lat = ds_truck_lat(t), lon = ds_truck_lon(t);
    return lon >= b->min_lon && lon <= b->max_lon && lat >= b->min_lat && lat <= b->max_lat;
}

size_t ds_store_query(const struct ds_store *s, const struct ds_bbox *b, uint32_t *out, size_t max)
{
    size_t n = 0;
    int r0 = fine_row(b->min_lat), r1 = fine_row(b->max_lat), c0 = fine_col(b->min_lon), c1 = fine_col(b->max_lon);
    /* Walk coarse cells first: empty ones skip 256 fine cells at once. */
    for (int cr = r0 / FINE_PER_COARSE; cr <= r1 / FINE_PER_COARSE; cr++) {
        for (int cc = c0 / FINE_PER_COARSE; cc <= c1 / FINE_PER_COARSE; cc++) {
            if (!s->coarse[(size_t)cr * DS_COARSE_COLS + (size_t)cc].count)
                continue;
            int fr0 = cr * FINE_PER_COARSE, fc0 = cc * FINE_PER_COARSE;
            for (int r = fr0 > r0 ? fr0 : r0; r < fr0 + FINE_PER_COARSE && r <= r1; r++) {
                for (int c = fc0 > c0 ? fc0 : c0; c < fc0 + FINE_PER_COARSE && c <= c1; c++) {
                    for (uint32_t v = s->fine_head[(size_t)r * DS_FINE_COLS + (size_t)c]; v;
                         v = s->trucks[v - 1].next) {
                        if (!inside(&s->trucks[v - 1], b))
                            continue;
                        if (n < max)
                            out[n] = v - 1;
                        n++;
                    }
                }
            }
        }
    }
    return n;
}

uint64_t ds_store_count_approx(const struct ds_store *s, const struct ds_bbox *b)
{
    uint64_t n = 0;
    int r0 = fine_row(b->min_lat), r1 = fine_row(b->max_lat), c0 = fine_col(b->min_lon), c1 = fine_col(b->max_lon);
    for (int cr = r0 / FINE_PER_COARSE; cr <= r1 / FINE_PER_COARSE; cr++) {
        for (int cc = c0 / FINE_PER_COARSE; cc <= c1 / FINE_PER_COARSE; cc++) {
            const struct ds_cell *k = &s->coarse[(size_t)cr * DS_COARSE_COLS + (size_t)cc];
            if (!k->count)
                continue;
            int fr0 = cr * FINE_PER_COARSE, fc0 = cc * FINE_PER_COARSE;
            int full = fr0 >= r0 && fr0 + FINE_PER_COARSE - 1 <= r1 && fc0 >= c0 && fc0 + FINE_PER_COARSE - 1 <= c1;
            if (full) {
                n += k->count;
                continue;
            }
            for (int r = fr0 > r0 ? fr0 : r0; r < fr0 + FINE_PER_COARSE && r <= r1; r++)
                for (int c = fc0 > c0 ? fc0 : c0; c < fc0 + FINE_PER_COARSE && c <= c1; c++)
                    n += s->fine[(size_t)r * DS_FINE_COLS + (size_t)c].count;
        }
    }
    return n;
}

static uint64_t cells_touched(const struct ds_bbox *b, double deg)
{
    double cols = floor((b->max_lon + 180) / deg) - floor((b->min_lon + 180) / deg) + 1;
    double rows = floor((b->max_lat + 90) / deg) - floor((b->min_lat + 90) / deg) + 1;
    return (uint64_t)(cols * rows);
}

double ds_cluster_cell_deg(const struct ds_bbox *b, double zoom, size_t max_cells)
{
    if (!isfinite(zoom) || zoom < 0)
        zoom = 0;
    if (zoom > 30)
        zoom = 30;
    double want = 90.0 / pow(2.0, zoom); /* 64 px of a 256 px tile at this zoom */
    double deg = DS_FINE_DEG;
    while (deg < want && deg < 256)
        deg *= 2;
    while (deg < 256 && cells_touched(b, deg) > max_cells)
        deg *= 2;
    return deg;
}

size_t ds_store_clusters(const struct ds_store *s, const struct ds_bbox *b, double cell_deg, struct ds_cluster *out,
                         size_t max)
{
    /* Source grid: coarse when a cluster cell holds whole coarse cells. */
    int coarse = cell_deg >= DS_COARSE_DEG;
    double src_deg = coarse ? DS_COARSE_DEG : DS_FINE_DEG;
    int src_cols = coarse ? DS_COARSE_COLS : DS_FINE_COLS, src_rows = coarse ? DS_COARSE_ROWS : DS_FINE_ROWS;
    const struct ds_cell *cells = coarse ? s->coarse : s->fine;
    int per = (int)lround(cell_deg / src_deg); /* source cells per cluster side */
    if (per < 1)
        per = 1;
    int kc0 = (int)floor((b->min_lon + 180) / cell_deg), kc1 = (int)floor((b->max_lon + 180) / cell_deg);
    int kr0 = (int)floor((b->min_lat + 90) / cell_deg), kr1 = (int)floor((b->max_lat + 90) / cell_deg);
    size_t n = 0;
    for (int kr = kr0; kr <= kr1; kr++) {
        for (int kc = kc0; kc <= kc1; kc++) {
            uint32_t count = 0;
            double sum_lat = 0, sum_lon = 0;
            for (int r = kr * per; r < (kr + 1) * per && r < src_rows; r++) {
                for (int c = kc * per; c < (kc + 1) * per && c < src_cols; c++) {
                    const struct ds_cell *k = &cells[(size_t)r * (size_t)src_cols + (size_t)c];
                    count += k->count;
                    sum_lat += k->sum_lat;
                    sum_lon += k->sum_lon;
                }
            }
            if (!count || n >= max)
                continue;
            out[n++] =
                (struct ds_cluster){.lat = sum_lat / count, .lon = sum_lon / count, .count = count, .cx = kc, .cy = kr};
        }
    }
    return n;
}

void ds_reading_from_scan(const struct tm_fast *f, struct ds_reading *out)
{
    *out = (struct ds_reading){.ts_ms = f->ts_ms,
                               .seq = f->seq,
                               .lat = f->lat,
                               .lon = f->lon,
                               .speed_kmh = f->speed_kmh,
                               .ignition = f->ignition,
                               .has_heading = f->heading_s.n > 0,
                               .heading_deg = f->heading_deg,
                               .has_fuel = f->fuel_s.n > 0,
                               .fuel_pct = f->fuel_pct,
                               .has_odometer = f->odometer_s.n > 0,
                               .odometer_km = f->odometer_km};
}
