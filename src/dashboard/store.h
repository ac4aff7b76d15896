/*
 * store.h - the dashboard's in-memory picture of the fleet: the latest
 * reading of every truck, a spatial grid over it, clusters and viewport
 * queries.
 *
 * Invariants:
 *   - A truck only moves forward in event time: a reading is applied when
 *     its ts is newer than the stored one (ties on ts: a higher seq wins),
 *     so a late or repeated reading never moves a truck back.
 *   - Every truck with a position is on exactly one list of the fine grid
 *     (DS_FINE_DEG cells); the fine and coarse (DS_COARSE_DEG) cells count
 *     the trucks and sum their positions, so clusters and "how many in this
 *     box" never walk trucks.
 *   - Memory is bounded: at most max_trucks trucks (further ids are refused
 *     with DS_FULL); trucks are never removed (an id keeps its index).
 *     Per truck: sizeof(struct ds_truck) + the id + two to four 8-byte hash
 *     slots; the grids are a fixed ~30 MB.
 *
 * The derived state of a truck is computed when asked, from its reading,
 * its presence and the wall clock (ds_truck_state).
 *
 * Not thread-safe: the caller serialises every call on one store (the
 * dashboard holds one mutex around it).  Pure otherwise (no I/O).
 */
#ifndef FS_DASHBOARD_STORE_H
#define FS_DASHBOARD_STORE_H

#include <stddef.h>
#include <stdint.h>

#define DS_OFFLINE_AFTER_MS (10LL * 60 * 1000) /* no reading for this long: offline */
#define DS_MOVING_KMH 5.0                      /* speed above this: moving */
#define DS_FINE_DEG 0.25
#define DS_COARSE_DEG 4.0
#define DS_FINE_COLS 1440 /* 360 / DS_FINE_DEG */
#define DS_FINE_ROWS 720
#define DS_COARSE_COLS 90
#define DS_COARSE_ROWS 45
#define DS_ID_MAX 64

enum ds_state { DS_MOVING = 0, DS_IDLE, DS_PARKED, DS_OFFLINE, DS_STATE_COUNT };

/* "moving", "idle", "parked", "offline"; "unknown" outside the enum. */
const char *ds_state_name(enum ds_state s);

enum {
    DS_F_IGNITION = 1 << 0,
    DS_F_HEADING = 1 << 1,
    DS_F_FUEL = 1 << 2,
    DS_F_ODOMETER = 1 << 3,
    DS_F_STATUS_OFFLINE = 1 << 4, /* the last presence record said offline */
    DS_F_POSITION = 1 << 5,       /* has a reading (a presence record alone gives none) */
};

/* 56 bytes. */
struct ds_truck {
    int64_t ts_ms;          /* event time of the latest reading; 0 = none */
    int64_t status_ts_ms;   /* time of the latest presence record; 0 = none */
    int32_t lat_e7, lon_e7; /* degrees x 1e7: exact to the 7 decimals telemetry carries (1 cm) */
    float odometer_km;
    uint32_t seq;          /* low 32 bits of the reading's seq */
    uint32_t version;      /* ds_store.version when this truck last changed */
    uint32_t next, prev;   /* fine-cell list, index + 1; 0 = none */
    uint32_t id_off;       /* into the id arena */
    uint16_t speed_dkmh;   /* 0.1 km/h */
    uint16_t heading_ddeg; /* 0.1 degree */
    uint16_t fuel_dpct;    /* 0.1 % */
    uint8_t id_len;
    uint8_t flags; /* DS_F_* */
};
_Static_assert(sizeof(struct ds_truck) == 56, "struct ds_truck is the 56 bytes a truck costs in the store");

struct ds_reading {
    int64_t ts_ms;
    int64_t seq;
    double lat, lon, speed_kmh;
    int ignition;
    int has_heading, has_fuel, has_odometer;
    double heading_deg, fuel_pct, odometer_km;
};

struct ds_cell {
    uint32_t count;
    double sum_lat, sum_lon;
};

struct ds_store {
    struct ds_truck *trucks;
    uint32_t count, cap, max_trucks;
    uint64_t *slots; /* open addressing: the id's hash << 32 | (index + 1); 0 = empty */
    uint32_t slot_mask;
    char *ids; /* id arena */
    size_t ids_len, ids_cap;
    uint32_t version;    /* bumped by every change */
    uint32_t *fine_head; /* DS_FINE_COLS * DS_FINE_ROWS, index + 1 */
    struct ds_cell *fine;
    struct ds_cell *coarse;
    uint64_t applied, stale, refused;
};

/* Sets up an empty store for at most max_trucks (>= 1) trucks.  Returns 0, or
 * -1 when memory is short (then nothing needs releasing). */
int ds_store_init(struct ds_store *s, uint32_t max_trucks);
/* Frees everything; safe on a zeroed or released store. */
void ds_store_release(struct ds_store *s);

enum ds_apply { DS_APPLIED = 0, DS_STALE, DS_FULL, DS_BAD };

/* Applies one reading of truck id (id_len bytes, 1..DS_ID_MAX).  DS_STALE when
 * it is not newer than what the store holds, DS_FULL when the truck is new and
 * the store is full (or memory is short), DS_BAD for an empty or too long id
 * or coordinates outside [-90, 90] x [-180, 180]. */
enum ds_apply ds_store_reading(struct ds_store *s, const char *id, size_t id_len, const struct ds_reading *r);

/* The same with the id's hash given (ds_store_hash), for a batch whose
 * records the caller has prepared with the prefetch calls below. */
enum ds_apply ds_store_reading_hashed(struct ds_store *s, const char *id, size_t id_len, uint32_t hash,
                                      const struct ds_reading *r);

/* The hash of a truck id the store's table uses. */
uint32_t ds_store_hash(const char *id, size_t id_len);

/* Applying a batch of readings is bound by cache misses (the hash slot, the
 * truck, its id, its grid cell: each a random place in tens of MB at a
 * million trucks), so a caller applying many readings at once announces
 * them in three passes, each touching only what the one before brought into
 * the cache, then applies them: ds_store_prefetch_slot for all (the slot and
 * the grid cell of the new position), ds_store_prefetch_truck for all (the
 * truck, found by its hash), ds_store_prefetch_id a few readings ahead of
 * ds_store_reading_hashed (the id, whose place the truck holds).  They are
 * hints only: they change nothing and may be skipped or repeated. */
void ds_store_prefetch_slot(const struct ds_store *s, uint32_t hash, const struct ds_reading *r);
void ds_store_prefetch_truck(const struct ds_store *s, uint32_t hash);
void ds_store_prefetch_id(const struct ds_store *s, uint32_t hash);

struct tm_fast;
/* The store's reading of a scanned telemetry record (core/tmscan.h's
 * tm_scan / tm_read result): its fields, and which optional ones it has.
 * The truck id stays in f (f->truck_id). */
void ds_reading_from_scan(const struct tm_fast *f, struct ds_reading *out);

/* Applies a presence record (offline = 1 for "offline").  Newer records (by
 * ts) replace older ones; a truck not seen before is added without a
 * position.  A reading newer than the record makes the truck online again. */
enum ds_apply ds_store_status(struct ds_store *s, const char *id, size_t id_len, int offline, int64_t ts_ms);

/* The truck's index, or -1 if unknown. */
int64_t ds_store_find(const struct ds_store *s, const char *id, size_t id_len);
/* The same with the id's hash given (ds_store_hash). */
int64_t ds_store_find_hashed(const struct ds_store *s, const char *id, size_t id_len, uint32_t hash);

/* The truck's id (not NUL-terminated) and its length. */
const char *ds_store_id(const struct ds_store *s, uint32_t idx, size_t *len);

enum ds_state ds_truck_state(const struct ds_truck *t, int64_t now_ms);

static inline double ds_truck_lat(const struct ds_truck *t)
{
    return t->lat_e7 / 1e7;
}
static inline double ds_truck_lon(const struct ds_truck *t)
{
    return t->lon_e7 / 1e7;
}

/* Counts trucks with a position by derived state (counts[DS_STATE_COUNT]);
 * returns the total.  O(trucks). */
uint32_t ds_store_fleet(const struct ds_store *s, int64_t now_ms, uint32_t *counts);

/* A viewport: min_lon, min_lat, max_lon, max_lat, already clamped to the
 * world (ds_bbox_clamp). */
struct ds_bbox {
    double min_lon, min_lat, max_lon, max_lat;
};

/* Clamps to [-180, 180] x [-90, 90]; returns -1 if a value is not finite or
 * min > max after clamping. */
int ds_bbox_clamp(struct ds_bbox *b);

/* Trucks with a position inside b (edges included), appended to out as
 * indices, at most max of them; returns how many there are in all (may
 * exceed max). */
size_t ds_store_query(const struct ds_store *s, const struct ds_bbox *b, uint32_t *out, size_t max);

/* Trucks in the grid cells that b touches: an upper bound of ds_store_query's
 * total, from the cell counts only. */
uint64_t ds_store_count_approx(const struct ds_store *s, const struct ds_bbox *b);

struct ds_cluster {
    double lat, lon; /* centroid of its trucks */
    uint32_t count;
    int32_t cx, cy; /* the cluster cell (column, row) at cell_deg */
};

/* The cluster cell size for a map zoom level: about 64 screen pixels, a power
 * of two times DS_FINE_DEG, grown until the cells b touches are at most
 * max_cells. */
double ds_cluster_cell_deg(const struct ds_bbox *b, double zoom, size_t max_cells);

/* Non-empty clusters of cell_deg (from ds_cluster_cell_deg) over the cells b
 * touches, into out (at most max); returns their number.  Cells are those of
 * the grid, so a cluster may hold trucks slightly outside b. */
size_t ds_store_clusters(const struct ds_store *s, const struct ds_bbox *b, double cell_deg, struct ds_cluster *out,
                         size_t max);

#endif
