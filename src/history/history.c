/*
 * history.c - the cold pipeline: `fleetsync history`, truck-telemetry and
 * truck-alerts into PostgreSQL, exactly once (docs/design.md, PostgreSQL contract).
 *
 * The exactly-once machinery (consumer group, offsets stored with the rows,
 * retries, backoff) is core/pgsink.c.  This file writes one batch:
 *
 *   1. Each record is read by tm_scan() (the normalized form, no JSON tree);
 *      anything else goes through tm_parse() and is refused by reason when
 *      invalid (counted, logged, skipped: it is still in Kafka and the DLQ
 *      is the bridge's).
 *   2. Rows are sorted by (truck_id, ts, seq); repeats inside the batch drop.
 *   3. Each truck's latest stored reading (a cache, filled from
 *      telemetry_hourly.last_* on a miss) splits its rows in two:
 *        - fresh rows, newer than anything stored: COPY straight into
 *          telemetry (no conflict is possible), and folded into the hourly
 *          rollups as deltas (core/rollup.h), upserted from a staging table
 *          with the batch, or under load held in memory per truck-hour and
 *          upserted by tick() once per --rollup-ms and partition, with the
 *          partition's rollup offset (after a crash the partition is read
 *          again from there: the records up to the stored offset are
 *          folded again and stored only where missing);
 *        - late rows (QoS 1 repeats, crash resends, replays, stragglers):
 *          COPY into a staging table, INSERT ... ON CONFLICT DO NOTHING, and
 *          the hours they touch (and the next) are marked in rollup_dirty.
 *   4. Alerts are upserted by alert_id.
 * Every value is written in a form PostgreSQL reads (core/pgval.h): number
 * digits that float8 would refuse become their value, timestamps out of its
 * range are refused (an alert: PGSINK_REFUSED, pgsink dead-letters it) or
 * left NULL (the Kafka record time), ids in array literals are quoted.
 * pgsink then stores the offsets and commits.  Outside batches, tick()
 * recomputes dirty hours from raw rows (overwriting, never adding), packs
 * closed hours, creates the hour partitions ahead of time, drops those
 * packing emptied and those past --retention.
 */
#include "history/history.h"

#include "core/bcache.h"
#include "core/buf.h"
#include "core/clock.h"
#include "core/config.h"
#include "core/grow.h"
#include "core/kafkaauth.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/opts.h"
#include "core/pack.h"
#include "core/pg.h"
#include "core/pgbin.h"
#include "core/pgsink.h"
#include "core/pgval.h"
#include "core/rollup.h"
#include "core/sig.h"
#include "core/sinkoffsets.h"
#include "core/telemetry.h"
#include "core/tmscan.h"
#include "core/topics.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define HISTORY_DEFAULT_METRICS_PORT 9102

/* "YYYY-MM-DD HH:MM:SS.mmm+00", the day part cached (rows of a batch share
 * few days). */
struct tsfmt {
    int64_t day;
    char day_s[16];
};

static void put_ts(struct buf *b, struct tsfmt *f, int64_t ms)
{
    int64_t day = fs_day_of(ms);
    if (day != f->day) {
        time_t t = (time_t)(day * 86400);
        struct tm tm;
        gmtime_r(&t, &tm);
        strftime(f->day_s, sizeof(f->day_s), "%Y-%m-%d ", &tm);
        f->day = day;
    }
    int64_t r = ms - day * FS_DAY_MS;
    int h = (int)(r / 3600000), mi = (int)(r / 60000 % 60), s = (int)(r / 1000 % 60), m = (int)(r % 1000);
    char tmp[24];
    buf_put(b, f->day_s, 11);
    tmp[0] = (char)('0' + h / 10);
    tmp[1] = (char)('0' + h % 10);
    tmp[2] = ':';
    tmp[3] = (char)('0' + mi / 10);
    tmp[4] = (char)('0' + mi % 10);
    tmp[5] = ':';
    tmp[6] = (char)('0' + s / 10);
    tmp[7] = (char)('0' + s % 10);
    tmp[8] = '.';
    tmp[9] = (char)('0' + m / 100);
    tmp[10] = (char)('0' + m / 10 % 10);
    tmp[11] = (char)('0' + m % 10);
    memcpy(tmp + 12, "+00", 3);
    buf_put(b, tmp, 15);
}

/* A float8 column from its JSON digits and tm_scan()'s value (NaN when
 * absent, finite when present), as binary COPY: NULL when absent. */
static void put_float8(struct buf *b, const struct tm_span *sp, double v)
{
    double x;
    if (sp->n && pgval_float8_span(sp->p, sp->n, v, &x) == 0)
        pgbin_float8(b, x);
    else
        pgbin_null(b);
}

static void put_double(struct buf *b, double v)
{
    if (isnan(v))
        buf_put(b, "\\N", 2);
    else
        buf_printf(b, "%.17g", v);
}

/* ---- the truck cache: latest stored reading per truck ----------------------- */

/* One per truck of the fleet: 80 bytes, plus its id once and 4-8 bytes of
 * index in the cache (core/bcache.h).  The batch's newest fresh reading of
 * a truck, applied to last on commit, is in history.pend, not here. */
struct truck {
    uint32_t id; /* the id's place in the cache (core/bcache.h) */
    /* Its newest held truck-hour: entry held_at1 - 1 of partition
     * held_part's list, valid while that list's generation is held_gen
     * (held_at1 0: none). */
    int32_t held_at1, held_part;
    uint32_t held_gen;
    uint8_t known; /* last/has_last reflect the database */
    uint8_t has_last;
    struct rollup_point last;
};

/* What bench/memory measures at a million trucks: keep it at 80 bytes. */
_Static_assert(sizeof(struct truck) <= 80, "struct truck grew: history's memory per truck grows with it");

/* The batch's newest fresh reading of truck t, applied on commit. */
struct pend {
    struct truck *t;
    struct rollup_point pt;
};

/* The cache is a core/bcache.h cache of struct truck (its first member is
 * the id's place); records never move. */
static void cache_forget(struct bcache *c)
{
    for (uint32_t i = 0; i < c->count; i++) {
        struct truck *t = bcache_rec(c, i);
        t->known = 0;
    }
}

/* Truck id[0..n), added (unknown) when missing; NULL when memory is short. */
static struct truck *cache_get(struct bcache *c, const char *id, size_t n)
{
    int added;
    uint32_t no = n > 0 && n <= BCACHE_ID_MAX ? bcache_get(c, id, n, &added) : BCACHE_NONE;
    return no == BCACHE_NONE ? NULL : bcache_rec(c, no);
}

/* ---- rollups held in memory ------------------------------------------------------ */

/* One truck-hour's rollup not yet added to telemetry_hourly. */
struct held {
    const struct truck *t; /* its truck (records never move) */
    struct rollup_hour hr; /* committed batches' deltas; samples 0: nothing */
    int32_t prev;          /* the truck's previous held hour in this list, or -1 */
    int32_t batch;         /* the running batch's delta: index in history.bd, or -1 */
};

/* The running batch's delta of one held truck-hour, added on commit. */
struct bdelta {
    int32_t part, at;
    struct rollup_hour d;
};

/* One partition of truck-telemetry: its held truck-hours and positions. */
struct rpart {
    struct held *v;
    size_t n, cap;
    uint32_t gen;      /* bumped when the list is emptied */
    int64_t roff;      /* rollup_offsets.next_offset as last seen (-1: no row) */
    int64_t folded;    /* one past the last record folded and committed (-1: none) */
    int64_t bnext;     /* one past the running batch's last record of it (-1: none) */
    int64_t stored_at; /* sink_offsets.next_offset at assignment: records before it may be stored */
    int64_t due_ms;    /* when its held rollups are written at the latest */
    int flush;         /* the running batch writes its rollups */
    int complete;      /* release(): the rollups are complete up to the stored offset */
};

/* ---- one batch --------------------------------------------------------------- */

struct row {
    struct tm_fast f;
    int64_t recv_ms;
    struct truck *t;
    int32_t part;
    uint8_t late;  /* 1: older than the truck's newest stored reading; 2: maybe stored, newer than it */
    uint8_t maybe; /* read again below the stored offset: possibly stored already */
};

/* A partition of telemetry_recent: [from, to) in ms. */
struct rpartition {
    int64_t from, to;
    char name[40];
};

struct history {
    const struct fs_config *cfg;
    char topic_telemetry[256], topic_alerts[256];
    int retention_days; /* 0 = keep raw rows forever */
    int hours_ahead;    /* hour partitions created ahead of the current one */
    int days_ahead;     /* --days-ahead (-1: not given): hours_ahead = 24 x this */
    struct bcache cache;
    struct pend *pend; /* the batch's newest fresh reading of each truck that has one */
    size_t pend_n, pend_cap;
    struct row *rows;
    struct row **ord; /* rows sorted by (truck, ts, seq) */
    size_t row_cap;
    struct buf copy, aux;
    char **arena; /* normalized copies of records that needed tm_parse() */
    char *spare;  /* tm_read()'s buffer for the next one */
    size_t arena_n, arena_cap;
    struct rpartition *parts; /* the partitions of telemetry_recent this process knows of */
    size_t part_n, part_cap;
    int parts_loaded;
    int64_t next_housekeeping_ms;
    int pack_grace_min;     /* an hour is packed this long after it ends; < 0: never */
    int64_t pack_floor_ms;  /* hours before this were packed (or refused) by this process */
    int pack_piece;         /* readings per packed row at most (--pack-piece) */
    int64_t pack_part_hour; /* an hour packed in part: its trucks up to pack_after are done */
    char pack_after[TM_TRUCK_ID_MAX + 1];
    /* The trucks that end the passes of pack_bounds_hour: each pass packs
     * the trucks after the previous pass's last up to the next bound. */
    struct buf pack_bounds;   /* the bounds, each ending in '\0', in SQL's order */
    size_t pack_bound_next;   /* the place in it of the bound of the hour's next pass */
    int64_t pack_bounds_hour; /* INT64_MIN: none read */
    struct pack_reading *pk;  /* one piece of a truck-hour being packed */
    size_t pk_cap;
    /* counted when the batch commits: a rolled-back or bisected batch is
     * read again */
    int64_t rows_pending, dup_pending, late_pending, alerts_pending, alert_errors_pending, reread_pending;
    int64_t min_ts_pending; /* the oldest reading the batch wrote (INT64_MAX: none) */
    int64_t rejected_pending[TM_REASON_COUNT];
    struct metrics *metrics;
    struct metric *m_rows, *m_dups, *m_late, *m_rejected[TM_REASON_COUNT], *m_alerts, *m_alert_errors, *m_recomputed,
        *m_dirty, *m_part_created, *m_part_dropped, *m_lookups, *m_packed, *m_packed_hours, *m_pack_refused,
        *m_part_reclaimed;
    int reclaim_due; /* hours were packed since the last look for emptied days */
    int64_t next_reclaim_ms;
    uint64_t rejected_logged;
    /* Rollups held in memory (docs/history.md, "Rollups held in memory"). */
    const char *group;
    int rollup_ms;    /* held at most this long; 0: every batch writes them */
    int rollup_batch; /* batches of fewer records write them at once */
    struct rpart *rp; /* by partition of truck-telemetry */
    size_t rp_n;
    struct bdelta *bd;
    size_t bd_n, bd_cap;
    int write_failed; /* write() failed: the rollback is known, memory stays */
    int need_reseek;  /* held state dropped: the partitions must be read again */
    int seek_open;    /* held state dropped and no batch written since */
    int mixed;        /* a truck has held hours in two partitions' lists */
    int64_t last_write_ms;
    struct metric *m_held, *m_rollup_writes, *m_reread;
};

/* Orders row pointers by truck (its cache slot: any fixed order will do),
 * then (ts, seq). */
static int cmp_rows(const void *a, const void *b)
{
    const struct row *x = *(const struct row *const *)a, *y = *(const struct row *const *)b;
    if (x->t != y->t)
        return (uintptr_t)x->t < (uintptr_t)y->t ? -1 : 1;
    if (x->f.ts_ms != y->f.ts_ms)
        return x->f.ts_ms < y->f.ts_ms ? -1 : 1;
    if (x->f.seq != y->f.seq)
        return x->f.seq < y->f.seq ? -1 : 1;
    return 0;
}

static struct rollup_point to_point(const struct tm_fast *f)
{
    return (struct rollup_point){.ts_ms = f->ts_ms,
                                 .seq = f->seq,
                                 .lat = f->lat,
                                 .lon = f->lon,
                                 .speed_kmh = f->speed_kmh,
                                 .ignition = f->ignition,
                                 .fuel_pct = f->fuel_pct};
}

static void clear_pending(struct history *h)
{
    h->rows_pending = h->dup_pending = h->late_pending = h->alerts_pending = h->alert_errors_pending =
        h->reread_pending = 0;
    h->min_ts_pending = INT64_MAX;
    memset(h->rejected_pending, 0, sizeof(h->rejected_pending));
}

static void arena_clear(struct history *h)
{
    for (size_t i = 0; i < h->arena_n; i++)
        free(h->arena[i]);
    h->arena_n = 0;
}

/* ---- held rollups ------------------------------------------------------------------ */

/* Partition p's state, created on first use; NULL when out of memory. */
static struct rpart *rp_get(struct history *h, int32_t p)
{
    if (p < 0)
        return NULL;
    if ((size_t)p >= h->rp_n) {
        size_t n = (size_t)p + 1;
        struct rpart *v = realloc(h->rp, n * sizeof(*v));
        if (!v)
            return NULL;
        for (size_t i = h->rp_n; i < n; i++)
            v[i] = (struct rpart){.roff = -1, .folded = -1, .bnext = -1, .stored_at = -1};
        h->rp = v;
        h->rp_n = n;
    }
    return &h->rp[p];
}

static void rp_empty(struct rpart *r)
{
    r->n = 0;
    r->gen++;
    r->due_ms = 0;
}

static void held_gauge(struct history *h)
{
    size_t n = 0;
    for (size_t i = 0; i < h->rp_n; i++)
        n += h->rp[i].n;
    metric_set(h->m_held, (double)n);
}

/* Forgets every held rollup and what the truck cache knows: the partitions
 * must be read again from their rollup offsets (start_at()). */
static void held_drop_all(struct history *h)
{
    for (size_t i = 0; i < h->rp_n; i++) {
        struct rpart *r = &h->rp[i];
        rp_empty(r);
        r->roff = r->folded = r->bnext = r->stored_at = -1;
        r->flush = 0;
    }
    h->bd_n = 0;
    h->mixed = 0;
    h->need_reseek = 1;
    h->seek_open = 1;
    cache_forget(&h->cache);
    h->pend_n = 0;
    held_gauge(h);
}

/* Truck t's held entry for hour in partition p's list, created empty; -1
 * when out of memory. */
static int32_t held_entry(struct history *h, struct truck *t, int32_t p, int64_t hour)
{
    struct rpart *r = &h->rp[p];
    int32_t prev = -1;
    if (t->held_at1 > 0 && (size_t)t->held_part < h->rp_n && t->held_gen == h->rp[t->held_part].gen) {
        if (t->held_part == p) {
            if (r->v[t->held_at1 - 1].hr.hour_ms == hour)
                return t->held_at1 - 1;
            prev = t->held_at1 - 1;
        } else {
            h->mixed = 1; /* the truck's key moved (more partitions): see held_write() */
        }
    }
    if (grow_one(&r->v, &r->cap, r->n, sizeof(*r->v), 256) != 0)
        return -1;
    struct held *e = &r->v[r->n];
    e->t = t;
    rollup_hour_init(&e->hr, hour);
    e->prev = prev;
    e->batch = -1;
    t->held_part = p;
    t->held_gen = r->gen;
    t->held_at1 = (int32_t)++r->n;
    return (int32_t)r->n - 1;
}

/* The running batch's delta of truck t's hour (partition p); NULL when out
 * of memory. */
static struct rollup_hour *held_delta(struct history *h, struct truck *t, int32_t p, int64_t hour)
{
    int32_t at = held_entry(h, t, p, hour);
    if (at < 0)
        return NULL;
    struct held *e = &h->rp[p].v[at];
    if (e->batch < 0) {
        if (grow_one(&h->bd, &h->bd_cap, h->bd_n, sizeof(*h->bd), 1024) != 0)
            return NULL;
        struct bdelta *b = &h->bd[h->bd_n];
        b->part = p;
        b->at = at;
        rollup_hour_init(&b->d, hour);
        e->batch = (int32_t)h->bd_n++;
    }
    return &h->bd[e->batch].d;
}

/* Forgets the running batch's deltas (rolled back). */
static void held_batch_reset(struct history *h)
{
    for (size_t i = 0; i < h->bd_n; i++) {
        struct bdelta *b = &h->bd[i];
        if ((size_t)b->part < h->rp_n && (size_t)b->at < h->rp[b->part].n)
            h->rp[b->part].v[b->at].batch = -1;
    }
    h->bd_n = 0;
    for (size_t i = 0; i < h->rp_n; i++) {
        h->rp[i].bnext = -1;
        h->rp[i].flush = 0;
    }
}

/* A recomputation overwrote truck t's rollup of hour from raw rows, which
 * hold every reading folded into its held entry: that entry is dropped. */
static void held_forget(struct history *h, struct truck *t, int64_t hour)
{
    if (t->held_at1 <= 0 || (size_t)t->held_part >= h->rp_n)
        return;
    struct rpart *r = &h->rp[t->held_part];
    if (t->held_gen != r->gen)
        return;
    for (int32_t i = t->held_at1 - 1; i >= 0 && (size_t)i < r->n; i = r->v[i].prev) {
        if (r->v[i].hr.hour_ms == hour) {
            rollup_hour_init(&r->v[i].hr, hour);
            return;
        }
        if (r->v[i].hr.hour_ms < hour)
            return;
    }
}

/* Reads one truck-telemetry record into *r; 0 = a row, -1 = refused
 * (counted), -2 = out of memory (the batch fails and is tried again).  A
 * record tm_read() had to normalize keeps its normalized copy (r->f points
 * into it) in the arena until the batch ends. */
static int read_reading(struct history *h, const rd_kafka_message_t *m, int64_t now, struct row *r)
{
    char detail[128];
    int normalized = 0;
    if (grow_one(&h->arena, &h->arena_cap, h->arena_n, sizeof(*h->arena), 64) != 0)
        return -2;
    if (!h->spare && !(h->spare = malloc(TM_MAX_PAYLOAD + 1)))
        return -2;
    enum tm_reason why =
        tm_read(m->payload, m->len, now, h->spare, TM_MAX_PAYLOAD + 1, &normalized, &r->f, detail, sizeof(detail));
    if (why == TM_OK) {
        if (normalized) {
            h->arena[h->arena_n++] = h->spare;
            h->spare = NULL;
        }
        return 0;
    }
    h->rejected_pending[why]++;
    if (h->rejected_logged++ < 20 || log_get_level() >= LOG_DEBUG)
        log_warn("%s [%d] offset %" PRId64 ": refused (%s: %s)", rd_kafka_topic_name(m->rkt), m->partition, m->offset,
                 tm_reason_name(why), detail);
    return -1;
}

/* ---- partitions ----------------------------------------------------------------- */

/* The partitions of telemetry_recent: one UTC hour each (telemetry_recent_
 * YYYYMMDD_HH), and the daily ones of earlier versions (telemetry_pYYYYMMDD),
 * which stay until packed and reclaimed, or past --retention.  Ranges of
 * different widths coexist as long as they do not overlap: an hour inside a
 * day partition goes into the day. */
static const struct rpartition *part_of(const struct history *h, int64_t ms)
{
    for (size_t i = 0; i < h->part_n; i++)
        if (h->parts[i].from <= ms && ms < h->parts[i].to)
            return &h->parts[i];
    return NULL;
}

/* from, to and the name of the partition named name (a day or an hour);
 * 0, or -1 when the name is neither. */
static int part_parse(const char *name, struct rpartition *p)
{
    int y, mo, d, hh, n = 0;
    struct tm tm = {0};
    if (sscanf(name, "telemetry_recent_%4d%2d%2d_%2d%n", &y, &mo, &d, &hh, &n) == 4 && n == 28 && !name[n] && hh >= 0 &&
        hh < 24) {
        tm = (struct tm){.tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d, .tm_hour = hh};
        p->from = (int64_t)timegm(&tm) * 1000;
        p->to = p->from + ROLLUP_HOUR_MS;
    } else if (sscanf(name, "telemetry_p%4d%2d%2d%n", &y, &mo, &d, &n) == 3 && n == 19 && !name[n]) {
        tm = (struct tm){.tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d};
        p->from = (int64_t)timegm(&tm) * 1000;
        p->to = p->from + FS_DAY_MS;
    } else {
        return -1;
    }
    snprintf(p->name, sizeof(p->name), "%s", name);
    return 0;
}

static void add_part(struct history *h, const struct rpartition *p)
{
    if (part_of(h, p->from))
        return;
    if (grow_one(&h->parts, &h->part_cap, h->part_n, sizeof(*h->parts), 64) != 0)
        return;
    h->parts[h->part_n++] = *p;
}

static void forget_part(struct history *h, const char *name)
{
    for (size_t i = 0; i < h->part_n; i++)
        if (strcmp(h->parts[i].name, name) == 0) {
            h->parts[i] = h->parts[--h->part_n];
            return;
        }
}

static int load_parts(struct history *h, PGconn *conn, char *err, size_t err_size)
{
    PGresult *r = pg_exec_params(conn,
                                 "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                                 "WHERE i.inhparent = 'telemetry_recent'::regclass",
                                 0, NULL, PGRES_TUPLES_OK, err, err_size);
    if (!r)
        return -1;
    h->part_n = 0;
    for (int i = 0; i < PQntuples(r); i++) {
        struct rpartition p;
        if (part_parse(PQgetvalue(r, i, 0), &p) == 0)
            add_part(h, &p);
    }
    PQclear(r);
    h->parts_loaded = 1;
    return 0;
}

/* Creates the hour partition of the hour that begins at hour (ms), which no
 * partition this process knows of covers.  In the batch's transaction when
 * a reading needs it (a backfill, a late reading into an hour whose emptied
 * partition was dropped); IF NOT EXISTS: another instance may have made it. */
static int create_hour(struct history *h, PGconn *conn, int64_t hour, char *err, size_t err_size)
{
    struct rpartition p = {.from = hour, .to = hour + ROLLUP_HOUR_MS};
    char from[32], to[32], sql[256];
    time_t t = (time_t)(hour / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(p.name, sizeof(p.name), "telemetry_recent_%Y%m%d_%H", &tm);
    strftime(from, sizeof(from), "%Y-%m-%d %H:00:00+00", &tm);
    t += 3600;
    gmtime_r(&t, &tm);
    strftime(to, sizeof(to), "%Y-%m-%d %H:00:00+00", &tm);
    snprintf(sql, sizeof(sql),
             "CREATE TABLE IF NOT EXISTS %s PARTITION OF telemetry_recent FOR VALUES FROM ('%s') TO ('%s')", p.name,
             from, to);
    if (pg_exec(conn, sql, err, err_size) < 0) {
        h->parts_loaded = 0; /* e.g. a day partition made meanwhile covers it */
        return -1;
    }
    add_part(h, &p);
    metric_add(h->m_part_created, 1);
    log_info("created partition %s", p.name);
    return 0;
}

/* ---- the batch ---------------------------------------------------------------- */

/* A reading from row i of r, its columns from c on: ts in ms, seq, lat,
 * lon, speed_kmh, ignition, fuel_pct (NULL: NAN). */
static struct rollup_point point_from_row(const PGresult *r, int i, int c)
{
    return (struct rollup_point){
        .ts_ms = strtoll(PQgetvalue(r, i, c), NULL, 10),
        .seq = strtoll(PQgetvalue(r, i, c + 1), NULL, 10),
        .lat = strtod(PQgetvalue(r, i, c + 2), NULL),
        .lon = strtod(PQgetvalue(r, i, c + 3), NULL),
        .speed_kmh = strtod(PQgetvalue(r, i, c + 4), NULL),
        .ignition = PQgetvalue(r, i, c + 5)[0] == 't',
        .fuel_pct = PQgetisnull(r, i, c + 6) ? NAN : strtod(PQgetvalue(r, i, c + 6), NULL),
    };
}

static int lookup_unknown(struct history *h, PGconn *conn, size_t nrows, char *err, size_t err_size)
{
    buf_reset(&h->aux);
    buf_putc(&h->aux, '{');
    size_t n = 0;
    for (size_t i = 0; i < nrows; i++) {
        struct truck *t = h->ord[i]->t;
        if (t->known || (i > 0 && h->ord[i - 1]->t == t))
            continue;
        if (n++)
            buf_putc(&h->aux, ',');
        /* Quoted: an unquoted NULL (a valid id) would be the SQL NULL. */
        size_t idn;
        const char *id = bcache_id(&h->cache, t, &idn);
        pgval_put_array_elem(&h->aux, id, idn);
    }
    buf_putc(&h->aux, '}');
    if (n == 0)
        return 0;
    if (h->aux.oom) {
        snprintf(err, err_size, "out of memory");
        return -1;
    }
    metric_add(h->m_lookups, n);
    const char *vals[1] = {h->aux.p};
    PGresult *r = pg_exec_params(conn,
                                 "SELECT DISTINCT ON (truck_id) truck_id, "
                                 "(extract(epoch FROM last_ts) * 1000)::bigint, last_seq, last_lat, last_lon, "
                                 "last_speed_kmh, last_ignition, last_fuel_pct FROM telemetry_hourly "
                                 "WHERE truck_id = ANY($1::text[]) ORDER BY truck_id, hour DESC",
                                 1, vals, PGRES_TUPLES_OK, err, err_size);
    if (!r)
        return -1;
    for (int i = 0; i < PQntuples(r); i++) {
        const char *id = PQgetvalue(r, i, 0);
        struct truck *t = cache_get(&h->cache, id, strlen(id));
        if (!t)
            continue;
        t->has_last = 1;
        t->last = point_from_row(r, i, 1);
        t->known = 1;
    }
    PQclear(r);
    for (size_t i = 0; i < nrows; i++) {
        struct truck *t = h->ord[i]->t;
        if (!t->known) {
            t->known = 1;
            t->has_last = 0;
        }
    }
    return 0;
}

/* One row of telemetry_recent's columns (TELEMETRY_COLS) in binary COPY
 * (core/pgbin.h): PostgreSQL parses no text; the values are those the text
 * of the JSON digits would give (core/pgval.h). */
static void put_row(struct buf *b, const struct row *r)
{
    const struct tm_fast *f = &r->f;
    pgbin_row(b, 11);
    pgbin_text(b, f->truck_id.p, f->truck_id.n);
    pgbin_timestamptz_ms(b, f->ts_ms);
    pgbin_int8(b, f->seq);
    put_float8(b, &f->lat_s, f->lat);
    put_float8(b, &f->lon_s, f->lon);
    put_float8(b, &f->speed_s, f->speed_kmh);
    put_float8(b, &f->heading_s, f->heading_deg);
    pgbin_bool(b, f->ignition);
    put_float8(b, &f->fuel_s, f->fuel_pct);
    put_float8(b, &f->odometer_s, f->odometer_km);
    /* The record timestamp is the producer's: any int64 (CreateTime). */
    if (r->recv_ms > 0 && pgval_ts_ok(r->recv_ms))
        pgbin_timestamptz_ms(b, r->recv_ms);
    else
        pgbin_null(b);
}

static void put_hour(struct buf *b, struct tsfmt *tf, const char *id, size_t idn, const struct rollup_hour *hr)
{
    buf_put(b, id, idn);
    buf_putc(b, '\t');
    put_ts(b, tf, hr->hour_ms);
    buf_printf(b, "\t%" PRId64 "\t%.17g\t%.17g\t%.17g\t%.17g\t%.17g\t%.17g\t", hr->samples, hr->distance_km,
               hr->moving_s, hr->idle_s, hr->parked_s, hr->max_speed_kmh, hr->fuel_used_pct);
    put_ts(b, tf, hr->last.ts_ms);
    buf_printf(b, "\t%" PRId64 "\t%.17g\t%.17g\t%.17g\t%c\t", hr->last.seq, hr->last.lat, hr->last.lon,
               hr->last.speed_kmh, hr->last.ignition ? 't' : 'f');
    put_double(b, hr->last.fuel_pct);
    buf_putc(b, '\n');
}

#define TELEMETRY_COLS                                                                                                 \
    "truck_id, ts, seq, lat, lon, speed_kmh, heading_deg, ignition, fuel_pct, odometer_km, received_at"

static int ensure_stage(PGconn *conn, char *err, size_t err_size)
{
    return pg_exec(conn,
                   "CREATE TEMP TABLE IF NOT EXISTS history_stage (LIKE telemetry_recent) ON COMMIT DELETE ROWS;"
                   "CREATE TEMP TABLE IF NOT EXISTS packed_stage (LIKE telemetry_packed INCLUDING COMPRESSION) ON "
                   "COMMIT DELETE ROWS;"
                   "CREATE TEMP TABLE IF NOT EXISTS hourly_stage (LIKE telemetry_hourly) ON COMMIT DELETE ROWS",
                   err, err_size);
}

static const char *upsert_add_sql =
    "INSERT INTO telemetry_hourly AS t SELECT * FROM hourly_stage "
    "ON CONFLICT (truck_id, hour) DO UPDATE SET samples = t.samples + EXCLUDED.samples, "
    "distance_km = t.distance_km + EXCLUDED.distance_km, moving_s = t.moving_s + EXCLUDED.moving_s, "
    "idle_s = t.idle_s + EXCLUDED.idle_s, parked_s = t.parked_s + EXCLUDED.parked_s, "
    "max_speed_kmh = GREATEST(t.max_speed_kmh, EXCLUDED.max_speed_kmh), "
    "fuel_used_pct = t.fuel_used_pct + EXCLUDED.fuel_used_pct, last_ts = EXCLUDED.last_ts, "
    "last_seq = EXCLUDED.last_seq, last_lat = EXCLUDED.last_lat, last_lon = EXCLUDED.last_lon, "
    "last_speed_kmh = EXCLUDED.last_speed_kmh, last_ignition = EXCLUDED.last_ignition, "
    "last_fuel_pct = EXCLUDED.last_fuel_pct";

static const char *upsert_set_sql =
    "INSERT INTO telemetry_hourly AS t SELECT * FROM hourly_stage "
    "ON CONFLICT (truck_id, hour) DO UPDATE SET samples = EXCLUDED.samples, distance_km = EXCLUDED.distance_km, "
    "moving_s = EXCLUDED.moving_s, idle_s = EXCLUDED.idle_s, parked_s = EXCLUDED.parked_s, "
    "max_speed_kmh = EXCLUDED.max_speed_kmh, fuel_used_pct = EXCLUDED.fuel_used_pct, "
    "last_ts = EXCLUDED.last_ts, last_seq = EXCLUDED.last_seq, last_lat = EXCLUDED.last_lat, "
    "last_lon = EXCLUDED.last_lon, last_speed_kmh = EXCLUDED.last_speed_kmh, "
    "last_ignition = EXCLUDED.last_ignition, last_fuel_pct = EXCLUDED.last_fuel_pct";

/* Upserts one alert record; 0 = stored, 1 = not an alert (counted, skipped),
 * 2 = a timestamp PostgreSQL cannot store (reason in err: the record is to
 * be dead-lettered), -1 = db error. */
static int write_alert(struct history *h, PGconn *conn, const rd_kafka_message_t *m, char *err, size_t err_size)
{
    json_error_t je;
    json_t *a = m->payload ? json_loadb(m->payload, m->len, JSON_REJECT_DUPLICATES, &je) : NULL;
    const char *id = NULL, *state = NULL, *truck = NULL, *rule = NULL;
    json_int_t started = 0;
    if (a)
        json_unpack(a, "{s:s, s:s, s:s, s:s, s:I}", "alert_id", &id, "state", &state, "truck_id", &truck, "rule", &rule,
                    "started_ms", &started);
    if (!id || !state || !truck || !rule || strlen(id) > 256 ||
        (strcmp(state, "raised") != 0 && strcmp(state, "cleared") != 0)) {
        h->alert_errors_pending++;
        if (h->rejected_logged++ < 20)
            log_warn("%s [%d] offset %" PRId64 ": not an alert record; skipped", rd_kafka_topic_name(m->rkt),
                     m->partition, m->offset);
        json_decref(a);
        return 1;
    }
    char started_s[32], detected_s[32], ended_s[32], lat_s[32], lon_s[32];
    const char *vals[9] = {id, truck, rule, NULL, NULL, NULL, NULL, NULL, NULL};
    json_t *v;
    int64_t detected = 0, ended = 0;
    int has_detected = (v = json_object_get(a, "detected_ms")) && json_is_integer(v);
    if (has_detected)
        detected = (int64_t)json_integer_value(v);
    if (strcmp(state, "cleared") == 0) {
        v = json_object_get(a, "ended_ms");
        ended = v && json_is_integer(v) ? (int64_t)json_integer_value(v) : rd_kafka_message_timestamp(m, NULL);
    }
    const char *wild = !pgval_ts_ok(started)                    ? "started_ms"
                       : has_detected && !pgval_ts_ok(detected) ? "detected_ms"
                       : !pgval_ts_ok(ended)                    ? "ended_ms"
                                                                : NULL;
    if (wild) {
        snprintf(err, err_size, "%s is out of the range PostgreSQL stores (years 0001-9999)", wild);
        json_decref(a);
        return 2;
    }
    vals[3] = pg_format_ts(started, started_s, sizeof(started_s));
    if (has_detected)
        vals[4] = pg_format_ts(detected, detected_s, sizeof(detected_s));
    if ((v = json_object_get(a, "lat")) && json_is_number(v)) {
        snprintf(lat_s, sizeof(lat_s), "%.17g", json_number_value(v));
        vals[5] = lat_s;
    }
    if ((v = json_object_get(a, "lon")) && json_is_number(v)) {
        snprintf(lon_s, sizeof(lon_s), "%.17g", json_number_value(v));
        vals[6] = lon_s;
    }
    char *details = NULL;
    if ((v = json_object_get(a, "details")) != NULL)
        vals[7] = details = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    if (strcmp(state, "cleared") == 0)
        vals[8] = pg_format_ts(ended, ended_s, sizeof(ended_s));
    PGresult *r = pg_exec_params(
        conn,
        "INSERT INTO alerts (alert_id, truck_id, rule, started_at, detected_at, lat, lon, details, ended_at) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (alert_id) DO UPDATE SET "
        "detected_at = COALESCE(alerts.detected_at, EXCLUDED.detected_at), lat = COALESCE(alerts.lat, EXCLUDED.lat), "
        "lon = COALESCE(alerts.lon, EXCLUDED.lon), details = COALESCE(alerts.details, EXCLUDED.details), "
        "ended_at = COALESCE(EXCLUDED.ended_at, alerts.ended_at)",
        9, vals, PGRES_COMMAND_OK, err, err_size);
    free(details);
    json_decref(a);
    if (!r)
        return -1;
    PQclear(r);
    h->alerts_pending++;
    return 0;
}

/* Stores partition p's rollup offset if the row still holds what this
 * process last saw there (as sink_offsets does, core/sinkoffsets.h): 0
 * stored, 1 moved (another instance wrote it: err says so), -1 error. */
static int store_roff(struct history *h, PGconn *conn, int32_t p, int64_t next, char *err, size_t err_size)
{
    return sinkoff_store_checked_in(conn, SINKOFF_ROLLUP, h->group, h->topic_telemetry, p, next, h->rp[p].roff, err,
                                    err_size);
}

#define HELD_STAGE_CHUNK (1u << 20) /* bytes of held rollups' rows sent to hourly_stage at once */

/* Upserts the held rollups staged in h->aux (text rows of hourly_stage) and,
 * when *sent, those sent to hourly_stage before; *sent is cleared. */
static int upsert_staged(struct history *h, PGconn *conn, int *sent, char *err, size_t err_size)
{
    if (h->aux.len == 0 && !*sent)
        return 0;
    *sent = 0;
    if ((h->aux.len > 0 && pg_copy(conn, "COPY hourly_stage FROM STDIN", &h->aux, err, err_size) < 0) ||
        pg_exec(conn, upsert_add_sql, err, err_size) < 0 ||
        (h->mixed && pg_exec(conn, "DELETE FROM hourly_stage", err, err_size) < 0))
        return -1;
    buf_reset(&h->aux);
    return 0;
}

/* Writes the held rollups of the partitions marked flush (with the
 * running batch's deltas when with_batch) and their rollup offsets, in the
 * open transaction.  0, 1 (an offset moved: err), -1 (err).  A truck's held
 * hours are in one partition's list unless its key moved (h->mixed): the
 * lists then go one statement each, so that no statement adds to a row
 * twice. */
static int held_write(struct history *h, PGconn *conn, int with_batch, char *err, size_t err_size)
{
    struct tsfmt tf = {.day = INT64_MIN};
    int sent = 0; /* rows are in hourly_stage besides h->aux's */
    buf_reset(&h->aux);
    for (size_t p = 0; p < h->rp_n; p++) {
        struct rpart *r = &h->rp[p];
        if (!r->flush)
            continue;
        for (size_t i = 0; i < r->n; i++) {
            struct held *e = &r->v[i];
            struct rollup_hour hr = e->hr;
            if (with_batch && e->batch >= 0)
                rollup_hour_add(&hr, &h->bd[e->batch].d);
            if (hr.samples > 0) {
                size_t idn;
                const char *id = bcache_id(&h->cache, e->t, &idn);
                put_hour(&h->aux, &tf, id, idn, &hr);
            }
            /* Staged 1 MB at a time: a partition's rows are then never all
             * in memory at once (about 200 bytes a truck-hour, kept by the
             * buffer afterwards); the upsert below still reads them all. */
            if (h->aux.len >= HELD_STAGE_CHUNK) {
                if (pg_copy(conn, "COPY hourly_stage FROM STDIN", &h->aux, err, err_size) < 0)
                    return -1;
                buf_reset(&h->aux);
                sent = 1;
            }
        }
        if (h->mixed && upsert_staged(h, conn, &sent, err, err_size) < 0)
            return -1;
        /* -1: complete up to sink_offsets (records dead-lettered after the
         * last fold need not be read again). */
        int64_t to = r->complete ? -1 : with_batch && r->bnext > r->folded ? r->bnext : r->folded;
        if ((to >= 0 || r->complete) && to != r->roff) {
            int m = store_roff(h, conn, (int32_t)p, to, err, err_size);
            if (m != 0)
                return m;
        }
    }
    return upsert_staged(h, conn, &sent, err, err_size);
}

static int history_write_batch(struct history *h, PGconn *conn, rd_kafka_message_t **msgs, size_t n, size_t *refused,
                               char *err, size_t err_size);

/* Stages the batch's rows whose late is `which` and inserts those not
 * stored already (in telemetry_recent or packed: a repeat of a packed
 * reading is no new reading either) as ins (truck_id, ts), followed by
 * `rest`, which selects the count of ins.  Returns that count, or -1. */
static int64_t stage_insert(struct history *h, PGconn *conn, size_t nrows, int which, const char *rest, char *err,
                            size_t err_size)
{
    buf_reset(&h->copy);
    for (size_t i = 0; i < nrows; i++)
        if (h->ord[i]->late == which)
            put_row(&h->copy, h->ord[i]);
    char sql[1024];
    snprintf(sql, sizeof(sql), "%s%s",
             "WITH ins AS (INSERT INTO telemetry_recent SELECT s.* FROM history_stage s "
             "WHERE NOT EXISTS (SELECT 1 FROM telemetry_unpacked u WHERE u.truck_id = s.truck_id "
             "AND u.hour = date_trunc('hour', s.ts) AND u.ts = s.ts AND u.seq = s.seq) "
             "ON CONFLICT DO NOTHING RETURNING truck_id, ts)",
             rest);
    if (pg_exec(conn, "DELETE FROM history_stage", err, err_size) < 0 ||
        pgbin_copy(conn, "history_stage (" TELEMETRY_COLS ")", &h->copy, err, err_size) < 0)
        return -1;
    PGresult *r = pg_exec_params(conn, sql, 0, NULL, PGRES_TUPLES_OK, err, err_size);
    if (!r)
        return -1;
    int64_t count = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    return count;
}

static int history_write(void *ctx, PGconn *conn, rd_kafka_message_t **msgs, size_t n, size_t *refused, char *err,
                         size_t err_size)
{
    struct history *h = ctx;
    h->write_failed = 1; /* until it returns 0: aborted() then knows the rollback */
    if (h->need_reseek) {
        h->write_failed = 0;
        return PGSINK_RESEEK;
    }
    h->seek_open = 0;
    h->last_write_ms = fs_mono_ms();
    held_batch_reset(h);
    h->pend_n = 0;
    int rc = history_write_batch(h, conn, msgs, n, refused, err, err_size);
    if (rc == 0)
        h->write_failed = 0;
    /* A reading's partition is gone: another instance dropped the emptied
     * hour after this one read its list.  Not refused data: the batch is
     * retried, and aborted() makes it read the list again and create the
     * partition.  23514 is a check violation: a CHECK constraint (added by
     * an operator: that is refused data, dead-lettered) names itself, the
     * partition routing's names only the table. */
    if (rc < 0 && strcmp(pg_last_sqlstate(), "23514") == 0 && !*pg_last_constraint() &&
        strcmp(pg_last_table(), "telemetry_recent") == 0) {
        log_info("a partition of telemetry_recent is gone (%s): reading the partitions again", err);
        pg_clear_sqlstate();
    }
    return rc;
}

static int history_write_batch(struct history *h, PGconn *conn, rd_kafka_message_t **msgs, size_t n, size_t *refused,
                               char *err, size_t err_size)
{
    int64_t now = fs_wall_ms();
    size_t nrows = 0;

    if (n > h->row_cap) {
        struct row *r = realloc(h->rows, n * sizeof(*r));
        if (r)
            h->rows = r;
        struct row **o = realloc(h->ord, n * sizeof(*o));
        if (o)
            h->ord = o;
        if (!r || !o) {
            snprintf(err, err_size, "out of memory");
            return -1;
        }
        h->row_cap = n;
    }
    arena_clear(h);
    clear_pending(h);
    if (!h->parts_loaded && load_parts(h, conn, err, err_size) < 0)
        return -1;
    if (ensure_stage(conn, err, err_size) < 0)
        return -1;

    /* 1. read */
    for (size_t i = 0; i < n; i++) {
        const rd_kafka_message_t *m = msgs[i];
        const char *topic = rd_kafka_topic_name(m->rkt);
        if (strcmp(topic, h->topic_alerts) == 0) {
            int rc = write_alert(h, conn, m, err, err_size);
            if (rc < 0)
                return -1;
            if (rc == 2) {
                *refused = i;
                return PGSINK_REFUSED;
            }
            continue;
        }
        struct rpart *rp = rp_get(h, m->partition);
        if (!rp) {
            snprintf(err, err_size, "out of memory");
            return -1;
        }
        if (m->offset + 1 > rp->bnext)
            rp->bnext = m->offset + 1;
        struct row *r = &h->rows[nrows];
        int rc = read_reading(h, m, now, r);
        if (rc == -2) {
            snprintf(err, err_size, "out of memory");
            return -1;
        }
        if (rc < 0)
            continue;
        rd_kafka_timestamp_type_t tt;
        r->recv_ms = rd_kafka_message_timestamp(m, &tt);
        r->late = 0;
        r->part = m->partition;
        r->maybe = m->offset < rp->stored_at;
        h->reread_pending += r->maybe;
        nrows++;
    }
    if (nrows == 0)
        return 0;

    /* 2. trucks (one hash lookup per row), partitions, then sort and drop
     * repeats */
    int64_t ok_hour = INT64_MIN;
    for (size_t i = 0; i < nrows; i++) {
        struct row *r = &h->rows[i];
        r->t = cache_get(&h->cache, r->f.truck_id.p, r->f.truck_id.n);
        if (!r->t) {
            snprintf(err, err_size, "out of memory");
            return -1;
        }
        int64_t hr = rollup_hour_of(r->f.ts_ms);
        if (hr != ok_hour) {
            if (!part_of(h, hr) && create_hour(h, conn, hr, err, err_size) < 0)
                return -1;
            ok_hour = hr;
        }
        h->ord[i] = r;
    }
    qsort(h->ord, nrows, sizeof(*h->ord), cmp_rows);
    size_t w = 0;
    int64_t dups = 0;
    for (size_t i = 0; i < nrows; i++) {
        if (w > 0 && cmp_rows(&h->ord[w - 1], &h->ord[i]) == 0) {
            h->ord[w - 1]->maybe |= h->ord[i]->maybe;
            dups++;
            continue;
        }
        h->ord[w++] = h->ord[i];
    }
    nrows = w;

    if (lookup_unknown(h, conn, nrows, err, err_size) < 0)
        return -1;

    /* 4. rows newer than the truck's newest stored one: COPY (or staged
     * when read again below the stored offset), folded into the held
     * rollups; older rows: staged */
    buf_reset(&h->copy);
    size_t fresh = 0, late = 0, maybe = 0;
    const struct rollup_point *prev = NULL;
    struct rollup_point prev_pt;
    for (size_t i = 0; i < nrows; i++) {
        struct row *r = h->ord[i];
        struct truck *t = r->t;
        int first_of_truck = i == 0 || h->ord[i - 1]->t != t;
        if (first_of_truck)
            prev = t->has_last ? &t->last : NULL;
        struct rollup_point pt = to_point(&r->f);
        if (pt.ts_ms < h->min_ts_pending)
            h->min_ts_pending = pt.ts_ms;
        if (t->has_last && rollup_cmp(&pt, &t->last) <= 0) {
            r->late = 1;
            late++;
            continue;
        }
        if (r->maybe) {
            r->late = 2;
            maybe++;
        } else {
            put_row(&h->copy, r);
            fresh++;
        }
        struct rollup_hour *d = held_delta(h, t, r->part, rollup_hour_of(pt.ts_ms));
        if (!d) {
            snprintf(err, err_size, "out of memory");
            return -1;
        }
        rollup_fold(d, prev, &pt);
        prev_pt = pt;
        prev = &prev_pt;
        /* A truck's rows are adjacent: its entry, if any, is the last. */
        if (h->pend_n == 0 || h->pend[h->pend_n - 1].t != t) {
            if (grow_one(&h->pend, &h->pend_cap, h->pend_n, sizeof(*h->pend), 1024) != 0) {
                snprintf(err, err_size, "out of memory");
                return -1;
            }
            h->pend[h->pend_n++].t = t;
        }
        h->pend[h->pend_n - 1].pt = pt;
    }
    if (fresh > 0) {
        /* No fresh row can be stored already, unless the stored offsets
         * were moved back after a crash (a replay) past records stored
         * while their rollups were held: such a batch goes the careful way. */
        if (pg_exec(conn, "SAVEPOINT fresh", err, err_size) < 0)
            return -1;
        if (pgbin_copy(conn, "telemetry_recent (" TELEMETRY_COLS ")", &h->copy, err, err_size) < 0) {
            if (strcmp(pg_last_sqlstate(), "23505") != 0)
                return -1;
            log_info("a reading taken as new was stored already (%s): storing the batch's new readings one by "
                     "one",
                     err);
            if (pg_exec(conn, "ROLLBACK TO SAVEPOINT fresh", err, err_size) < 0)
                return -1;
            pg_clear_sqlstate();
            for (size_t i = 0; i < nrows; i++)
                if (h->ord[i]->late == 0)
                    h->ord[i]->late = 2;
            maybe += fresh;
            fresh = 0;
        }
    }
    /* Older rows: inserted unless stored (or packed) already, the hours a
     * new one touches (its own and the next) marked for recomputation. */
    int64_t inserted_late = 0, inserted_maybe = 0;
    if (late > 0 && (inserted_late = stage_insert(h, conn, nrows, 1,
                                                  ", d AS (INSERT INTO rollup_dirty SELECT DISTINCT truck_id, v.h "
                                                  "FROM ins, LATERAL (VALUES (date_trunc('hour', ins.ts)), "
                                                  "(date_trunc('hour', ins.ts) + interval '1 hour')) v(h) "
                                                  "ON CONFLICT DO NOTHING) SELECT count(*) FROM ins",
                                                  err, err_size)) < 0)
        return -1;
    /* Newer than the truck's newest stored reading as far as this process
     * knows, but possibly stored (read again after a crash): folded above,
     * inserted unless there. */
    if (maybe > 0 && (inserted_maybe = stage_insert(h, conn, nrows, 2, " SELECT count(*) FROM ins", err, err_size)) < 0)
        return -1;
    h->rows_pending = (int64_t)fresh + inserted_late + inserted_maybe;
    h->dup_pending = dups + (int64_t)late - inserted_late + (int64_t)maybe - inserted_maybe;
    h->late_pending = inserted_late;

    /* 5. rollups: a small batch (no load to speak of), a stop, or
     * --rollup-ms 0 writes them now; otherwise they stay held, and tick()
     * writes each partition's within --rollup-ms. */
    if (h->rollup_ms == 0 || n < (size_t)h->rollup_batch || sig_stopping()) {
        for (size_t p = 0; p < h->rp_n; p++)
            h->rp[p].flush = h->rp[p].n > 0 || h->rp[p].bnext >= 0;
        int m = held_write(h, conn, 1, err, err_size);
        if (m == 1) {
            held_drop_all(h);
            h->write_failed = 0;
            return PGSINK_RESEEK;
        }
        if (m < 0)
            return -1;
    }
    return 0;
}

static void history_committed(void *ctx)
{
    struct history *h = ctx;
    if (h->min_ts_pending < h->pack_floor_ms) /* rows in hours packed already: look again */
        h->pack_floor_ms = rollup_hour_of(h->min_ts_pending);
    if (h->min_ts_pending < h->pack_part_hour + ROLLUP_HOUR_MS) /* maybe a truck of it done already */
        h->pack_part_hour = INT64_MIN;
    for (size_t i = 0; i < h->pend_n; i++) {
        h->pend[i].t->last = h->pend[i].pt;
        h->pend[i].t->has_last = 1;
    }
    h->pend_n = 0;
    /* The batch's rollup deltas: written with it, or held from now on. */
    for (size_t i = 0; i < h->bd_n; i++) {
        struct bdelta *b = &h->bd[i];
        struct held *e = &h->rp[b->part].v[b->at];
        if (!h->rp[b->part].flush)
            rollup_hour_add(&e->hr, &b->d);
        e->batch = -1;
    }
    h->bd_n = 0;
    int64_t mono = fs_mono_ms();
    for (size_t p = 0; p < h->rp_n; p++) {
        struct rpart *r = &h->rp[p];
        if (r->bnext > r->folded)
            r->folded = r->bnext;
        r->bnext = -1;
        if (r->flush) {
            rp_empty(r);
            if (r->folded >= 0)
                r->roff = r->folded;
            r->flush = 0;
        } else if (r->n > 0 && r->due_ms == 0) {
            /* The first time, partition p waits (p + 1) / n of the
             * interval: the partitions' writes then come spread over it,
             * not all at once every --rollup-ms. */
            r->due_ms = mono + (r->gen == 0 ? h->rollup_ms * (int64_t)(p + 1) / (int64_t)h->rp_n : h->rollup_ms);
        }
    }
    if (h->mixed) { /* cleared once every list was written */
        size_t left = 0;
        for (size_t p = 0; p < h->rp_n; p++)
            left += h->rp[p].n;
        h->mixed = left > 0;
    }
    held_gauge(h);
    metric_add(h->m_reread, (uint64_t)h->reread_pending);
    metric_add(h->m_rows, (uint64_t)h->rows_pending);
    metric_add(h->m_dups, (uint64_t)h->dup_pending);
    metric_add(h->m_late, (uint64_t)h->late_pending);
    metric_add(h->m_alerts, (uint64_t)h->alerts_pending);
    metric_add(h->m_alert_errors, (uint64_t)h->alert_errors_pending);
    for (int i = 0; i < TM_REASON_COUNT; i++)
        metric_add(h->m_rejected[i], (uint64_t)h->rejected_pending[i]);
    clear_pending(h);
    arena_clear(h);
}

static void history_aborted(void *ctx)
{
    struct history *h = ctx;
    held_batch_reset(h);
    if (h->write_failed) {
        /* write() failed: the transaction is rolled back, what the cache
         * and the held rollups say is what committed before it. */
        h->pend_n = 0;
    } else {
        /* The outcome may be unknown (a lost connection at COMMIT), the
         * stored offsets moved, or the partitions were (re)assigned: the
         * held rollups and the cache are forgotten, and the partitions read
         * again from their rollup offsets. */
        held_drop_all(h);
    }
    h->write_failed = 0;
    h->parts_loaded = 0;
    clear_pending(h);
    arena_clear(h);
}

/* pgsink's start_at(): a partition of truck-telemetry is read from its
 * rollup offset when that lies before the stored offset (rollups were held
 * when the process stopped); the records up to the stored offset come
 * again, are folded, and stored only where missing. */
static int64_t history_start_at(void *ctx, PGconn *conn, const char *topic, int32_t partition, int64_t stored)
{
    struct history *h = ctx;
    if (!h->seek_open)
        held_drop_all(h); /* a re-read that aborted() did not announce */
    h->need_reseek = 0;
    if (strcmp(topic, h->topic_telemetry) != 0)
        return stored;
    struct rpart *r = rp_get(h, partition);
    if (!r) {
        log_warn("out of memory: partition %" PRId32 " of %s is read from its start", partition, topic);
        return RD_KAFKA_OFFSET_BEGINNING;
    }
    r->stored_at = stored;
    char ps[16], err[512];
    snprintf(ps, sizeof(ps), "%" PRId32, partition);
    const char *vals[3] = {h->group, topic, ps};
    PGresult *res = pg_exec_params(conn,
                                   "SELECT next_offset FROM rollup_offsets WHERE group_id = $1 AND topic = $2 "
                                   "AND partition = $3",
                                   3, vals, PGRES_TUPLES_OK, err, sizeof(err));
    if (!res) {
        /* Safe, if slow: everything before the stored offset is read again
         * as possibly stored, and the first rollup write finds the offset
         * row it did not expect and starts over. */
        log_warn("cannot read the rollup offset of partition %" PRId32 ": %s; reading it from its start", partition,
                 err);
        r->stored_at = INT64_MAX;
        return RD_KAFKA_OFFSET_BEGINNING;
    }
    int64_t roff = PQntuples(res) == 1 ? strtoll(PQgetvalue(res, 0, 0), NULL, 10) : -1;
    PQclear(res);
    r->roff = r->folded = roff;
    if (roff >= 0 && stored >= 0 && roff < stored) {
        log_info("partition %" PRId32 ": reading from %" PRId64 ", where its held rollups began (stored up to %" PRId64
                 ")",
                 partition, roff, stored);
        return roff;
    }
    return stored;
}

/* Writes partition p's held rollups and rollup offset in a transaction of
 * its own.  0, or -1 (err); a COMMIT whose outcome is unknown forgets
 * everything held (the partitions are read again). */
static int held_write_part(struct history *h, PGconn *conn, size_t p, int complete, char *err, size_t err_size)
{
    struct rpart *r = &h->rp[p];
    r->flush = 1;
    r->complete = complete;
    if (pg_exec(conn, "BEGIN", err, err_size) < 0)
        goto fail;
    if (ensure_stage(conn, err, err_size) < 0)
        goto fail;
    int m = held_write(h, conn, 0, err, err_size);
    if (m != 0) {
        if (m == 1) {
            PQclear(PQexec(conn, "ROLLBACK"));
            r->complete = 0;
            held_drop_all(h);
            return -1;
        }
        goto fail;
    }
    size_t rows = r->n;
    if (pg_exec(conn, "COMMIT", err, err_size) < 0) {
        held_drop_all(h);
        return -1;
    }
    metric_add(h->m_rollup_writes, (uint64_t)rows);
    rp_empty(r);
    if (complete)
        r->roff = r->folded = -1;
    else if (r->folded >= 0)
        r->roff = r->folded;
    r->flush = 0;
    r->complete = 0;
    held_gauge(h);
    return 0;
fail:
    r->flush = 0;
    r->complete = 0;
    if (PQstatus(conn) == CONNECTION_OK)
        PQclear(PQexec(conn, "ROLLBACK"));
    return -1;
}

/* Writes the held rollups that are due: a partition's once they are
 * --rollup-ms old (for at most 250 ms a tick, so that the writes spread
 * between batches), every partition's once no batch came for a second
 * (caught up). */
static int held_write_due(struct history *h, PGconn *conn, char *err, size_t err_size)
{
    int64_t now = fs_mono_ms();
    int idle = now >= h->last_write_ms + 1000;
    for (size_t p = 0; p < h->rp_n; p++) {
        struct rpart *r = &h->rp[p];
        int behind = r->folded >= 0 && r->folded != r->roff;
        if (r->n == 0 && !(idle && behind))
            continue;
        if (!idle && (r->due_ms == 0 || now < r->due_ms))
            continue;
        if (held_write_part(h, conn, p, 0, err, err_size) < 0)
            return -1;
        if (!idle && fs_mono_ms() >= now + 250)
            break;
    }
    return 0;
}

/* pgsink's release(): the partitions are revoked or history stops, the last
 * batch written: every held rollup is written now, and each partition's
 * rollup offset says "complete up to the stored offset" (-1), so that the
 * next owner starts at the stored offset (a record dead-lettered after the
 * last fold is not read again). */
static int history_release(void *ctx, PGconn *conn, char *err, size_t err_size)
{
    struct history *h = ctx;
    for (size_t p = 0; p < h->rp_n; p++) {
        struct rpart *r = &h->rp[p];
        if ((r->n > 0 || r->roff >= 0 || r->folded >= 0) && held_write_part(h, conn, p, 1, err, err_size) < 0)
            return -1;
    }
    return 0;
}

/* ---- housekeeping: dirty rollups, partitions, retention ---------------------------- */

/* Recomputes up to a few thousand dirty truck-hours.  Returns the number
 * done, or -1. */
static int recompute_dirty(struct history *h, PGconn *conn, char *err, size_t err_size)
{
    PGresult *groups = pg_exec_params(conn,
                                      "SELECT (extract(epoch FROM hour) * 1000)::bigint, array_agg(truck_id) FROM "
                                      "(SELECT truck_id, hour FROM rollup_dirty ORDER BY hour, truck_id LIMIT 5000) d "
                                      "GROUP BY hour ORDER BY hour",
                                      0, NULL, PGRES_TUPLES_OK, err, err_size);
    if (!groups)
        return -1;
    int done = 0;
    struct tsfmt tf = {.day = INT64_MIN};
    for (int g = 0; g < PQntuples(groups); g++) {
        int64_t hour = strtoll(PQgetvalue(groups, g, 0), NULL, 10);
        const char *ids = PQgetvalue(groups, g, 1);
        char hour_s[32];
        pg_format_ts(hour, hour_s, sizeof(hour_s));
        const char *vals[2] = {ids, hour_s};
        if (pg_exec(conn, "BEGIN", err, err_size) < 0 || ensure_stage(conn, err, err_size) < 0)
            goto fail;
        PGresult *r = pg_exec_params(conn,
                                     /* The packed rows by their key (truck_id, hour), then the
                                      * readings of the window among them. */
                                     "SELECT truck_id, (extract(epoch FROM ts) * 1000)::bigint, seq, lat, lon, "
                                     "speed_kmh, ignition, fuel_pct FROM ("
                                     "SELECT truck_id, ts, seq, lat, lon, speed_kmh, ignition, fuel_pct "
                                     "FROM telemetry_recent WHERE truck_id = ANY($1::text[]) "
                                     "AND ts >= $2::timestamptz - interval '10 minutes' "
                                     "AND ts < $2::timestamptz + interval '1 hour' UNION ALL "
                                     "SELECT truck_id, ts, seq, lat, lon, speed_kmh, ignition, fuel_pct "
                                     "FROM telemetry_unpacked WHERE truck_id = ANY($1::text[]) "
                                     "AND hour >= $2::timestamptz - interval '1 hour' AND hour <= $2::timestamptz "
                                     "AND ts >= $2::timestamptz - interval '10 minutes' "
                                     "AND ts < $2::timestamptz + interval '1 hour') t ORDER BY truck_id, ts, seq",
                                     2, vals, PGRES_TUPLES_OK, err, err_size);
        if (!r)
            goto fail;
        buf_reset(&h->aux);
        struct rollup_hour hr;
        struct rollup_point prev;
        int has_prev = 0;
        for (int i = 0; i < PQntuples(r); i++) {
            const char *id = PQgetvalue(r, i, 0);
            if (i == 0 || strcmp(id, PQgetvalue(r, i - 1, 0)) != 0) {
                rollup_hour_init(&hr, hour);
                has_prev = 0;
            }
            struct rollup_point pt = point_from_row(r, i, 1);
            if (pt.ts_ms >= hour)
                rollup_fold(&hr, has_prev ? &prev : NULL, &pt);
            prev = pt;
            has_prev = 1;
            int last = i + 1 == PQntuples(r) || strcmp(id, PQgetvalue(r, i + 1, 0)) != 0;
            if (last && hr.samples > 0)
                put_hour(&h->aux, &tf, id, strlen(id), &hr);
        }
        if (h->aux.len > 0) {
            if (pg_copy(conn, "COPY hourly_stage FROM STDIN", &h->aux, err, err_size) < 0 ||
                pg_exec(conn, upsert_set_sql, err, err_size) < 0) {
                PQclear(r);
                goto fail;
            }
        }
        PGresult *del = pg_exec_params(conn, "DELETE FROM rollup_dirty WHERE truck_id = ANY($1::text[]) AND hour = $2",
                                       2, vals, PGRES_COMMAND_OK, err, err_size);
        if (!del) {
            PQclear(r);
            goto fail;
        }
        int cleared = atoi(PQcmdTuples(del));
        PQclear(del);
        if (pg_exec(conn, "COMMIT", err, err_size) < 0) {
            PQclear(r);
            held_drop_all(h); /* the outcome is unknown */
            goto fail;
        }
        /* The rows overwritten hold every reading the held rollups of
         * those truck-hours had folded. */
        for (int i = 0; i < PQntuples(r); i++) {
            const char *id = PQgetvalue(r, i, 0);
            if (i > 0 && strcmp(id, PQgetvalue(r, i - 1, 0)) == 0)
                continue;
            struct truck *t = cache_get(&h->cache, id, strlen(id));
            if (!t) {
                held_drop_all(h);
                break;
            }
            held_forget(h, t, hour);
        }
        PQclear(r);
        done += cleared;
        metric_add(h->m_recomputed, (uint64_t)cleared);
    }
    PQclear(groups);
    return done;
fail:
    PQclear(groups);
    if (PQstatus(conn) == CONNECTION_OK)
        PQclear(PQexec(conn, "ROLLBACK"));
    return -1;
}

/* ---- packing closed hours ------------------------------------------------------ */

/* Appends piece `piece` of truck id's packed rows for hour, readings
 * h->pk[0..n), to h->copy (columns truck_id, hour, piece, PACK_COLUMNS); a
 * truck-hour the encoder refuses (a value written by hand that is not a
 * finite number) is left in telemetry_recent: its id goes to *keep as an
 * array element (its pieces already staged are removed from the stage
 * before the upsert).  Returns 0, or -1 when refused. */
static int pack_truck(struct history *h, const char *id, size_t n, int64_t hour, int piece, struct tsfmt *tf,
                      struct buf *keep)
{
    char why[160];
    size_t len = h->copy.len;
    buf_put(&h->copy, id, strlen(id));
    buf_putc(&h->copy, '\t');
    put_ts(&h->copy, tf, hour);
    buf_printf(&h->copy, "\t%d\t", piece);
    if (pack_encode(h->pk, n, hour, &h->copy, why, sizeof(why)) != 0) {
        h->copy.len = len;
        if (len < h->copy.cap)
            h->copy.p[len] = '\0';
        buf_putc(keep, keep->len == 0 ? '{' : ',');
        pgval_put_array_elem(keep, id, strlen(id));
        metric_add(h->m_pack_refused, 1);
        log_warn("truck %s, hour %" PRId64 ": left unpacked (%s)", id, hour, why);
        return -1;
    }
    buf_putc(&h->copy, '\n');
    return 0;
}

/* The readings of row i of a packing cursor's result. */
static struct pack_reading reading_from_row(const PGresult *r, int i)
{
    struct pack_reading p = {
        .ts_ms = strtoll(PQgetvalue(r, i, 1), NULL, 10),
        .seq = strtoll(PQgetvalue(r, i, 2), NULL, 10),
        .lat = strtod(PQgetvalue(r, i, 3), NULL),
        .lon = strtod(PQgetvalue(r, i, 4), NULL),
        .speed_kmh = strtod(PQgetvalue(r, i, 5), NULL),
        .heading_deg = PQgetisnull(r, i, 6) ? NAN : strtod(PQgetvalue(r, i, 6), NULL),
        .ignition = PQgetvalue(r, i, 7)[0] == 't',
        .fuel_pct = PQgetisnull(r, i, 8) ? NAN : strtod(PQgetvalue(r, i, 8), NULL),
        .odometer_km = PQgetisnull(r, i, 9) ? NAN : strtod(PQgetvalue(r, i, 9), NULL),
        .has_recv = !PQgetisnull(r, i, 10),
    };
    if (p.has_recv)
        p.recv_ms = strtoll(PQgetvalue(r, i, 10), NULL, 10);
    return p;
}

#define PACK_SELECT                                                                                                    \
    "truck_id, (extract(epoch FROM ts) * 1000)::bigint, seq, lat, lon, speed_kmh, heading_deg, ignition, fuel_pct, "   \
    "odometer_km, (extract(epoch FROM received_at) * 1000)::bigint"

/* Packs the oldest closed hour still in telemetry_recent, or the next
 * trucks of it: its rows, merged with the packed rows of the same hour of the
 * trucks that have rows in it (late readings), ordered by (truck_id, ts, seq)
 * with the packed copy of a repeat first, are encoded truck by truck into
 * packed_stage, piece by piece (at most --pack-piece readings a row, and in
 * memory), then the staged trucks' packed rows of the hour are replaced and
 * their rows deleted: one REPEATABLE READ transaction, so rows committed
 * meanwhile (by another instance) are neither packed nor deleted but wait
 * for the next pass, a crash leaves everything as it was, and a repeat packs
 * the same rows the same way.  A pass stops at the first truck boundary
 * after PACK_PASS_PIECES pieces' worth of readings: the transaction stays
 * bounded, and the next pass goes on with the trucks after the last one
 * packed (pack_part_hour, pack_after).  Returns 1 when an hour was packed,
 * 2 when a part of it, 0 when none is closed, -1 on error. */
#define PACK_PASS_PIECES 10

/* Reads the bounds of the passes of an hour into h->pack_bounds: from its
 * rollups (one row per truck-hour, samples = its readings), the trucks, in
 * the order the passes take them, at which the running count of readings
 * crosses a multiple of pass_max.  Each pass then reads only its own trucks'
 * rows through telemetry_recent's key, instead of every row of the hour
 * still unpacked, sorted again by every pass: at 100,000 trucks an hour
 * holds 36,000,000 readings, 360 passes.  An hour without rollups has no
 * bounds (one pass reads what is left, as many times as it takes). */
static int pack_read_bounds(struct history *h, PGconn *conn, int64_t hour, const char *hour_s, size_t pass_max,
                            char *err, size_t err_size)
{
    char max_s[24];
    snprintf(max_s, sizeof(max_s), "%zu", pass_max);
    const char *vals[2] = {hour_s, max_s};
    PGresult *r = pg_exec_params(conn,
                                 "SELECT truck_id FROM (SELECT truck_id, samples, "
                                 "sum(samples) OVER (ORDER BY truck_id) AS c FROM telemetry_hourly "
                                 "WHERE hour = $1::timestamptz) s WHERE c / $2::bigint <> (c - samples) / $2::bigint "
                                 "ORDER BY truck_id",
                                 2, vals, PGRES_TUPLES_OK, err, err_size);
    if (!r)
        return -1;
    buf_reset(&h->pack_bounds);
    for (int i = 0; i < PQntuples(r); i++)
        buf_put(&h->pack_bounds, PQgetvalue(r, i, 0), (size_t)PQgetlength(r, i, 0) + 1);
    PQclear(r);
    if (h->pack_bounds.oom) /* no bounds: correct, only slower */
        buf_reset(&h->pack_bounds);
    h->pack_bounds_hour = hour;
    h->pack_bound_next = 0;
    return 0;
}

static int pack_hour(struct history *h, PGconn *conn, char *err, size_t err_size)
{
    if (h->pack_grace_min < 0)
        return 0;
    int64_t cutoff = rollup_hour_of(fs_wall_ms() - (int64_t)h->pack_grace_min * 60000);
    /* Nothing of ours before the cutoff is left unpacked (a late reading
     * moves the floor back when it is stored): no need to look, which
     * would scan the partitions of the hours since, as ts alone has no index. */
    if (h->pack_floor_ms >= cutoff)
        return 0;
    char cut_s[32], floor_s[32], hour_s[32], next_s[32];
    PGresult *r;
    int none = 0;
    int64_t hour = h->pack_part_hour;
    /* An hour packed in part, with no late reading before it since: the
     * next pass goes on with it (the lookup reads the hour's partition). */
    if (hour == INT64_MIN || h->pack_floor_ms != hour) {
        pg_format_ts(cutoff, cut_s, sizeof(cut_s));
        pg_format_ts(h->pack_floor_ms, floor_s, sizeof(floor_s));
        const char *vals[2] = {floor_s, cut_s};
        r = pg_exec_params(conn,
                           "SELECT (extract(epoch FROM min(ts)) * 1000)::bigint FROM telemetry_recent "
                           "WHERE ts >= $1::timestamptz AND ts < $2::timestamptz",
                           2, vals, PGRES_TUPLES_OK, err, err_size);
        if (!r)
            return -1;
        none = PQgetisnull(r, 0, 0);
        hour = none ? 0 : rollup_hour_of(strtoll(PQgetvalue(r, 0, 0), NULL, 10));
        PQclear(r);
    }
    if (none) {
        /* This pass runs between batches, in their thread: every row this
         * process stored is seen, and the ones it stores later before the
         * cutoff move the floor back. */
        h->pack_floor_ms = cutoff;
        return 0;
    }
    pg_format_ts(hour, hour_s, sizeof(hour_s));
    pg_format_ts(hour + ROLLUP_HOUR_MS, next_s, sizeof(next_s));
    /* After the last truck a previous pass packed of this hour ("": none). */
    const char *after = hour == h->pack_part_hour ? h->pack_after : "";
    size_t piece_max = (size_t)h->pack_piece, pass_max = piece_max * PACK_PASS_PIECES;
    struct buf keep = {0};
    struct tsfmt tf = {.day = INT64_MIN};
    size_t packed = 0, n = 0, truck_n = 0;
    char id[TM_TRUCK_ID_MAX + 1] = "";
    int have_id = 0, piece = 0, refused = 0, stopped = 0;
    int64_t last_ts = 0, last_seq = 0;
    if (h->pack_bounds_hour != hour && pack_read_bounds(h, conn, hour, hour_s, pass_max, err, err_size) < 0)
        return -1;
    /* The pass's last truck ("": the hour's last).  The bounds are taken in
     * turn, never compared here: SQL's order of truck ids follows the
     * database's collation, which need not be strcmp()'s. */
    if (!*after)
        h->pack_bound_next = 0;
    char upto[TM_TRUCK_ID_MAX + 1];
    snprintf(upto, sizeof(upto), "%s",
             h->pack_bound_next < h->pack_bounds.len ? h->pack_bounds.p + h->pack_bound_next : "");
    const char *cv[4] = {hour_s, next_s, after, upto};
    /* A pass sorts up to pass_max rows (and the hour's rows of the packed
     * rows it merges): in memory, not in temporary files. */
    if (pg_exec(conn, "BEGIN ISOLATION LEVEL REPEATABLE READ; SET LOCAL work_mem = '64MB'", err, err_size) < 0 ||
        ensure_stage(conn, err, err_size) < 0)
        goto fail;
    r = pg_exec_params(conn,
                       "DECLARE pack_cur NO SCROLL CURSOR FOR SELECT " PACK_SELECT " FROM ("
                       "SELECT *, 1 AS src FROM telemetry_recent WHERE ts >= $1::timestamptz AND ts < $2::timestamptz "
                       "AND truck_id > $3 AND ($4 = '' OR truck_id <= $4) UNION ALL "
                       "SELECT truck_id, ts, seq, lat, lon, speed_kmh, heading_deg, ignition, fuel_pct, odometer_km, "
                       "received_at, 0 FROM telemetry_unpacked WHERE hour = $1::timestamptz AND truck_id IN "
                       "(SELECT truck_id FROM telemetry_recent WHERE ts >= $1::timestamptz AND ts < $2::timestamptz "
                       "AND truck_id > $3 AND ($4 = '' OR truck_id <= $4))) t ORDER BY truck_id, ts, seq, src",
                       4, cv, PGRES_COMMAND_OK, err, err_size);
    if (!r)
        goto fail;
    PQclear(r);
    buf_reset(&h->copy);
    for (;;) {
        r = pg_exec_params(conn, "FETCH 20000 FROM pack_cur", 0, NULL, PGRES_TUPLES_OK, err, err_size);
        if (!r)
            goto fail;
        int rows = PQntuples(r);
        for (int i = 0; i <= rows && !stopped; i++) {
            const char *rid = i < rows ? PQgetvalue(r, i, 0) : NULL;
            if (have_id && (rid ? strcmp(rid, id) != 0 : rows == 0)) { /* the truck ends */
                if (n > 0 && !refused && pack_truck(h, id, n, hour, piece, &tf, &keep) != 0)
                    refused = 1;
                if (!refused)
                    packed += truck_n;
                n = truck_n = 0;
                piece = refused = have_id = 0;
                if (packed >= pass_max && rid) {
                    stopped = 1; /* the next pass goes on after id */
                    break;
                }
            }
            if (!rid)
                break;
            struct pack_reading p = reading_from_row(r, i);
            if (have_id && p.ts_ms == last_ts && p.seq == last_seq)
                continue; /* a repeat: the packed copy came first */
            if (n == piece_max) {
                if (!refused && pack_truck(h, id, n, hour, piece, &tf, &keep) != 0)
                    refused = 1;
                piece++;
                n = 0;
            }
            if (n == h->pk_cap) {
                size_t cap = h->pk_cap ? 2 * h->pk_cap : 1024;
                if (cap > piece_max)
                    cap = piece_max;
                struct pack_reading *g = realloc(h->pk, cap * sizeof(*g));
                if (!g) {
                    PQclear(r);
                    snprintf(err, err_size, "out of memory packing truck %s", rid);
                    goto fail;
                }
                h->pk = g;
                h->pk_cap = cap;
            }
            if (!have_id) {
                snprintf(id, sizeof(id), "%s", rid);
                have_id = 1;
            }
            h->pk[n++] = p;
            truck_n++;
            last_ts = p.ts_ms;
            last_seq = p.seq;
        }
        PQclear(r);
        if (rows == 0 || stopped || h->copy.len > (4u << 20)) {
            if (h->copy.oom || keep.oom) {
                snprintf(err, err_size, "out of memory packing hour %s", hour_s);
                goto fail;
            }
            if (h->copy.len > 0 &&
                pg_copy(conn, "COPY packed_stage (truck_id, hour, piece, " PACK_COLUMNS ") FROM STDIN", &h->copy, err,
                        err_size) < 0)
                goto fail;
            buf_reset(&h->copy);
        }
        if (rows == 0 || stopped)
            break;
    }
    if (keep.len)
        buf_putc(&keep, '}');
    /* Stopped: id is the last truck this pass went through, the bound of the
     * rows it deletes (in the cursor's order, which SQL's <= follows); a
     * pass that read all its trucks up to a bound ends there. */
    const char *last = stopped ? id : upto;
    const char *kv[5] = {hour_s, next_s, keep.len ? keep.p : "{}", after, last};
    if (pg_exec(conn, "CLOSE pack_cur", err, err_size) < 0)
        goto fail;
    /* A refused truck's pieces staged before the refusal; then the staged
     * trucks' packed rows of the hour are replaced (a repack may have fewer
     * pieces than before). */
    r = pg_exec_params(conn, "DELETE FROM packed_stage WHERE truck_id = ANY($1::text[])", 1, kv + 2, PGRES_COMMAND_OK,
                       err, err_size);
    if (!r)
        goto fail;
    PQclear(r);
    r = pg_exec_params(conn,
                       "DELETE FROM telemetry_packed WHERE hour = $1::timestamptz "
                       "AND truck_id IN (SELECT truck_id FROM packed_stage)",
                       1, kv, PGRES_COMMAND_OK, err, err_size);
    if (!r)
        goto fail;
    PQclear(r);
    if (pg_exec(conn, "INSERT INTO telemetry_packed SELECT * FROM packed_stage", err, err_size) < 0)
        goto fail;
    r = pg_exec_params(conn,
                       "DELETE FROM telemetry_recent WHERE ts >= $1::timestamptz AND ts < $2::timestamptz "
                       "AND truck_id <> ALL($3::text[]) AND truck_id > $4 AND ($5 = '' OR truck_id <= $5)",
                       5, kv, PGRES_COMMAND_OK, err, err_size);
    if (!r)
        goto fail;
    PQclear(r);
    if (pg_exec(conn, "COMMIT", err, err_size) < 0)
        goto fail;
    buf_release(&keep);
    if (*last) {
        if (!stopped) /* the pass went up to its bound: the next takes the next one */
            h->pack_bound_next += strlen(h->pack_bounds.p + h->pack_bound_next) + 1;
        stopped = 1;
        h->pack_floor_ms = hour;
        h->pack_part_hour = hour;
        snprintf(h->pack_after, sizeof(h->pack_after), "%s", last);
    } else {
        h->pack_floor_ms = hour + ROLLUP_HOUR_MS;
        h->pack_part_hour = INT64_MIN;
        metric_add(h->m_packed_hours, 1);
    }
    h->reclaim_due = 1;
    metric_add(h->m_packed, packed);
    log_debug("packed hour %s%s%s: %zu readings%s", hour_s, *after ? " after truck " : "", after, packed,
              stopped ? " (more trucks in the next pass)" : "");
    return stopped ? 2 : 1;
fail:
    buf_release(&keep);
    buf_reset(&h->copy);
    if (PQstatus(conn) == CONNECTION_OK)
        PQclear(PQexec(conn, "ROLLBACK"));
    return -1;
}

/* ---- reclaiming emptied partitions --------------------------------------------- */

/* Truncates one partition of telemetry_recent (an hour, or a day of an
 * earlier version) that packing has emptied.
 * Under ACCESS EXCLUSIVE on the partition (lock_timeout 1 s: a batch writing
 * a late reading into it, or a query reading it, is waited for or the
 * partition is tried again later), it must hold no row, and no other session may
 * hold a snapshot older than this transaction: TRUNCATE is not MVCC-safe,
 * and such a snapshot (a REPEATABLE READ report, another instance's packing
 * pass) could still see the rows packing deleted and not their packed
 * rows.  An autovacuum worker's snapshot does not count: it reads no rows
 * for anyone (and one busy with a large table would hold the partition back for
 * minutes); one vacuuming this partition waits for the lock or gives way.  Truncated first, dropped then
 * (drop_empty()): the parent's lock that DROP needs is then held only for catalog changes, never while the
 * emptiness of a large heap of dead rows is checked.  Returns 1 when truncated, 0 when left for later, -1 on
 * error. */
static int reclaim_part(struct history *h, PGconn *conn, const char *name, char *err, size_t err_size)
{
    char sql[512];
    if (pg_exec(conn, "BEGIN; SET LOCAL lock_timeout = '1s'", err, err_size) < 0)
        return -1;
    snprintf(sql, sizeof(sql), "LOCK TABLE %s IN ACCESS EXCLUSIVE MODE", name);
    pg_clear_sqlstate();
    if (pg_exec(conn, sql, err, err_size) < 0) {
        /* busy, or dropped meanwhile (by another instance) */
        int busy = strcmp(pg_last_sqlstate(), "55P03") == 0 || strcmp(pg_last_sqlstate(), "42P01") == 0;
        if (PQstatus(conn) == CONNECTION_OK)
            PQclear(PQexec(conn, "ROLLBACK"));
        if (busy)
            log_debug("partition %s busy or gone; looked at again later", name);
        return busy ? 0 : -1;
    }
    snprintf(sql, sizeof(sql),
             "SELECT NOT EXISTS (SELECT 1 FROM %s) AND NOT EXISTS (SELECT 1 FROM pg_stat_activity "
             "WHERE pid <> pg_backend_pid() AND backend_xmin IS NOT NULL AND backend_type <> 'autovacuum worker' "
             "AND (datname IS NULL OR datname = current_database()) "
             "AND age(backend_xmin) > age((txid_current() %% 4294967296)::text::xid))",
             name);
    PGresult *r = pg_exec_params(conn, sql, 0, NULL, PGRES_TUPLES_OK, err, err_size);
    if (!r)
        goto fail;
    int ok = PQgetvalue(r, 0, 0)[0] == 't';
    PQclear(r);
    if (!ok) {
        PQclear(PQexec(conn, "ROLLBACK"));
        return 0;
    }
    snprintf(sql, sizeof(sql), "TRUNCATE %s", name);
    if (pg_exec(conn, sql, err, err_size) < 0 || pg_exec(conn, "COMMIT", err, err_size) < 0)
        goto fail;
    metric_add(h->m_part_reclaimed, 1);
    log_info("reclaimed partition %s (all of it packed)", name);
    return 1;
fail:
    if (PQstatus(conn) == CONNECTION_OK)
        PQclear(PQexec(conn, "ROLLBACK"));
    return -1;
}

/* Drops the past partitions named in names (a '\0'-separated list of n)
 * that hold no page: never written, or truncated by reclaim_part().  In one
 * transaction under ACCESS EXCLUSIVE on telemetry_recent itself (DROP of a
 * partition takes it: a batch, a report, a packing pass is waited for, and
 * waits in turn; lock_timeout 1 s, then the partitions are tried again
 * later), then on each partition, whose heap must still be empty.  No
 * snapshot check: an empty heap has no row any snapshot could see.  A batch
 * of another instance that still takes a dropped partition for there fails
 * as a partition gone and is retried after reading the partitions again
 * (history_write()); this instance creates the partition again for a late
 * reading, in the batch's transaction.  Returns the number left for later, or
 * -1 on error. */
static int drop_empty(struct history *h, PGconn *conn, const char *names, int n, char *err, size_t err_size)
{
    char sql[256];
    pg_clear_sqlstate();
    if (pg_exec(conn, "BEGIN; SET LOCAL lock_timeout = '1s'", err, err_size) < 0)
        return -1;
    if (pg_exec(conn, "LOCK TABLE ONLY telemetry_recent IN ACCESS EXCLUSIVE MODE", err, err_size) < 0)
        goto fail;
    int dropped = 0;
    char *gone = NULL;
    size_t gone_len = 0;
    const char *name = names;
    for (int i = 0; i < n; i++, name += strlen(name) + 1) {
        snprintf(sql, sizeof(sql), "LOCK TABLE %s IN ACCESS EXCLUSIVE MODE", name);
        if (pg_exec(conn, sql, err, err_size) < 0)
            goto fail_gone;
        const char *v[1] = {name};
        PGresult *r =
            pg_exec_params(conn, "SELECT pg_relation_size($1::regclass) = 0", 1, v, PGRES_TUPLES_OK, err, err_size);
        if (!r)
            goto fail_gone;
        int empty = PQgetvalue(r, 0, 0)[0] == 't';
        PQclear(r);
        if (!empty)
            continue;
        snprintf(sql, sizeof(sql), "DROP TABLE %s", name);
        if (pg_exec(conn, sql, err, err_size) < 0)
            goto fail_gone;
        size_t k = strlen(name) + 1;
        char *g = realloc(gone, gone_len + k);
        if (!g)
            continue; /* not dropped after all: the next round will */
        memcpy(g + gone_len, name, k);
        gone = g;
        gone_len += k;
        dropped++;
    }
    if (pg_exec(conn, "COMMIT", err, err_size) < 0) {
        free(gone);
        h->parts_loaded = 0;
        goto fail;
    }
    for (size_t o = 0; o < gone_len; o += strlen(gone + o) + 1) {
        forget_part(h, gone + o);
        metric_add(h->m_part_dropped, 1);
        log_info("dropped partition %s (emptied by packing)", gone + o);
    }
    free(gone);
    return n - dropped;
fail_gone:
    free(gone);
fail:;
    /* busy, or a partition dropped meanwhile (by another instance) */
    int busy = strcmp(pg_last_sqlstate(), "55P03") == 0 || strcmp(pg_last_sqlstate(), "42P01") == 0;
    if (PQstatus(conn) == CONNECTION_OK)
        PQclear(PQexec(conn, "ROLLBACK"));
    if (busy) {
        h->parts_loaded = 0;
        log_debug("telemetry_recent busy, or a partition gone; its emptied partitions are dropped later");
        return n;
    }
    return -1;
}

/* Reclaims the partitions of telemetry_recent that are past (their last
 * hour closed, and the pack grace with it): those that still hold pages
 * and no row any more (every hour of them packed) are truncated, then
 * those without a page dropped.  A partition with a truck-hour the encoder
 * refused keeps its rows.  Returns the partitions left for later (busy, or
 * an older snapshot still open), or -1 on error. */
static int reclaim_parts(struct history *h, PGconn *conn, char *err, size_t err_size)
{
    if (h->pack_grace_min < 0)
        return 0;
    int64_t cutoff = rollup_hour_of(fs_wall_ms() - (int64_t)h->pack_grace_min * 60000);
    PGresult *r = pg_exec_params(conn,
                                 "SELECT c.relname, pg_relation_size(c.oid) > 0 FROM pg_inherits i "
                                 "JOIN pg_class c ON c.oid = i.inhrelid "
                                 "WHERE i.inhparent = 'telemetry_recent'::regclass ORDER BY 1",
                                 0, NULL, PGRES_TUPLES_OK, err, err_size);
    if (!r)
        return -1;
    int rc = 0, left = 0, empty_n = 0;
    struct buf empty = {0};
    for (int i = 0; i < PQntuples(r) && rc == 0 && !sig_stopping(); i++) {
        const char *name = PQgetvalue(r, i, 0);
        struct rpartition p;
        if (part_parse(name, &p) != 0 || p.to > cutoff)
            continue;
        if (PQgetvalue(r, i, 1)[0] == 't') {
            int done = reclaim_part(h, conn, name, err, err_size);
            if (done < 0)
                rc = -1;
            if (done <= 0) {
                left += done == 0;
                continue;
            }
        }
        buf_put(&empty, name, strlen(name) + 1);
        empty_n++;
    }
    PQclear(r);
    if (rc == 0 && empty_n > 0 && !sig_stopping()) {
        if (empty.oom) {
            left++;
        } else {
            int l = drop_empty(h, conn, empty.p, empty_n, err, err_size);
            if (l < 0)
                rc = -1;
            else
                left += l;
        }
    }
    buf_release(&empty);
    return rc < 0 ? -1 : left;
}

static int housekeeping(struct history *h, PGconn *conn, char *err, size_t err_size)
{
    if (load_parts(h, conn, err, err_size) < 0)
        return -1;
    /* The current hour and the next ones, so that batches of live readings
     * never create one (CREATE ... PARTITION OF locks telemetry_recent until
     * the batch commits); looked at every ten minutes. */
    int64_t hour = rollup_hour_of(fs_wall_ms());
    for (int i = 0; i <= h->hours_ahead; i++) {
        int64_t t = hour + (int64_t)i * ROLLUP_HOUR_MS;
        if (!part_of(h, t) && create_hour(h, conn, t, err, err_size) < 0)
            return -1;
    }
    if (h->retention_days > 0) {
        int64_t keep_from = (fs_day_of(fs_wall_ms()) - h->retention_days) * FS_DAY_MS;
        for (size_t i = 0; i < h->part_n;) {
            if (h->parts[i].to > keep_from) {
                i++;
                continue;
            }
            char sql[128];
            snprintf(sql, sizeof(sql), "DROP TABLE IF EXISTS %s", h->parts[i].name);
            if (pg_exec(conn, sql, err, err_size) < 0)
                return -1;
            log_info("dropped partition %s (older than the retention of %d days; its rollups stay)", h->parts[i].name,
                     h->retention_days);
            metric_add(h->m_part_dropped, 1);
            h->parts[i] = h->parts[--h->part_n];
        }
        char cut_s[32];
        const char *vals[1] = {pg_format_ts(keep_from, cut_s, sizeof(cut_s))};
        PGresult *r = pg_exec_params(conn, "DELETE FROM telemetry_packed WHERE hour < $1::timestamptz", 1, vals,
                                     PGRES_COMMAND_OK, err, err_size);
        if (!r)
            return -1;
        PQclear(r);
    }
    return 0;
}

static int history_tick(void *ctx, PGconn *conn, char *err, size_t err_size)
{
    struct history *h = ctx;
    int64_t now = fs_mono_ms();
    if (now >= h->next_housekeeping_ms) {
        if (housekeeping(h, conn, err, err_size) < 0)
            return -1;
        h->next_housekeeping_ms = now + 600000;
        h->reclaim_due = 1;
    }
    /* Bounded: packing and a long recompute must not starve the batches.
     * Rollups are recomputed first: they read the rows being packed. */
    int64_t until = fs_mono_ms() + 500;
    int done;
    for (;;) {
        done = recompute_dirty(h, conn, err, err_size);
        if (done < 0)
            return -1;
        if (done == 0 || fs_mono_ms() >= until || sig_stopping())
            break;
    }
    if (held_write_due(h, conn, err, err_size) < 0)
        return -1;
    if (fs_mono_ms() < until && !sig_stopping()) {
        /* One hour per tick; a large hour's parts go on while time is left. */
        int packed;
        do {
            packed = pack_hour(h, conn, err, err_size);
        } while (packed == 2 && fs_mono_ms() < until && !sig_stopping());
        if (packed < 0)
            return -1;
        /* Once no closed hour is left to pack, the days packing emptied are
         * reclaimed (and at start, and with the housekeeping). */
        if (packed == 0 && h->reclaim_due && now >= h->next_reclaim_ms) {
            int left = reclaim_parts(h, conn, err, err_size);
            if (left < 0)
                return -1;
            h->reclaim_due = left > 0; /* tried again in 5 s */
            h->next_reclaim_ms = now + 5000;
        }
    }
    if (done == 0) { /* the last pass found nothing dirty: no need to count */
        metric_set(h->m_dirty, 0);
        return 0;
    }
    PGresult *r = PQexec(conn, "SELECT count(*) FROM rollup_dirty");
    if (PQresultStatus(r) == PGRES_TUPLES_OK)
        metric_set(h->m_dirty, strtod(PQgetvalue(r, 0, 0), NULL));
    PQclear(r);
    return 0;
}

/* ---- the command ------------------------------------------------------------------ */

/* A whole number in [min, max], optionally followed by suffix ("d").
 * Returns 0 with *v set, or -1. */
static int int_option(const char *s, long min, long max, const char *suffix, long *v)
{
    char num[32];
    size_t n = strlen(s), k = suffix ? strlen(suffix) : 0;
    if (k && n > k && strcmp(s + n - k, suffix) == 0)
        n -= k;
    if (n >= sizeof(num))
        return -1;
    memcpy(num, s, n);
    num[n] = '\0';
    return cfg_parse_long(num, min, max, v);
}

#define STR_(x) #x
#define STR(x) STR_(x)

static int opt_retention(void *value, const char *arg, char *err, size_t err_size)
{
    long v;
    if (int_option(arg, 0, 36500, "d", &v)) {
        snprintf(err, err_size, "is a number of days (0 = forever)");
        return -1;
    }
    *(int *)value = (int)v;
    return 0;
}

static const char history_about[] = "The cold pipeline: consumer group fleetsync-history reads truck-telemetry and\n"
                                    "truck-alerts and stores every reading in PostgreSQL exactly once (offsets are\n"
                                    "kept in the same transaction as the rows), with hourly per-truck rollups for\n"
                                    "reports.  The schema is created and migrated automatically.";

static const char history_after[] = "Metrics on 127.0.0.1:" STR(
    HISTORY_DEFAULT_METRICS_PORT) "/metrics (--metrics-port N, -1 for none).\n"
                                  "Examples:\n"
                                  "  fleetsync history                              # against the embedded stack\n"
                                  "  fleetsync history --pg 'postgresql://app@db.example/fleet' --brokers k1:9092\n"
                                  "Exit status: 0 after a clean stop (SIGINT/SIGTERM), 1 runtime failure (a Kafka "
                                  "fatal\n"
                                  "consumer error: restart it, it rejoins the group), 2 usage error.";

int cmd_history(int argc, char **argv)
{
    struct fs_config cfg;
    struct history h;
    struct pgsink_options so = {.max_batch = 20000, .flush_ms = 500, .start = PGSINK_START_EARLIEST};
    int rest, rc = 2;

    memset(&h, 0, sizeof(h));
    bcache_init(&h.cache, sizeof(struct truck));
    h.retention_days = 90;
    h.hours_ahead = 2;
    h.days_ahead = -1;
    h.pack_grace_min = 10;
    h.pack_piece = 10000;
    h.pack_part_hour = INT64_MIN;
    h.pack_bounds_hour = INT64_MIN;
    h.rollup_ms = 300000;
    h.rollup_batch = 1000;
    cfg_init(&cfg);
    cfg.kafka_user = KA_USER_HISTORY;
    const struct opt opts[] = {
        PGSINK_OPTS(&so),
        OPT_CB("retention", "DAYS", &h.retention_days, opt_retention,
               "drop raw partitions (and packed hours) older than this; rollups stay\n"
               "(default 90, 0 keeps raw rows forever)"),
        OPT_INTEGER("hours-ahead", "N", &h.hours_ahead, 1, 1440,
                    "hour partitions created ahead of the current hour (default 2)"),
        OPT_INTEGER("days-ahead", "N", &h.days_ahead, 0, 60, "the same in days: --hours-ahead 24 x N"),
        OPT_INTEGER("pack-grace", "MIN", &h.pack_grace_min, -1, 10080,
                    "pack an hour's readings into one row per truck this many minutes\n"
                    "after the hour ends (default 10; -1 never)"),
        OPT_INTEGER("pack-piece", "N", &h.pack_piece, 100, 1000000,
                    "readings per packed row at most: a truck-hour of more is packed\n"
                    "in several rows (default 10000); a pass packs about ten such\n"
                    "pieces' worth of readings per transaction"),
        OPT_INTEGER("rollup-ms", "MS", &h.rollup_ms, 0, 3600000,
                    "under load, hold the hourly rollups in memory up to this long and\n"
                    "add them to telemetry_hourly once per truck-hour (default 300000;\n"
                    "0 writes them with every batch)"),
        OPT_INTEGER("rollup-batch", "N", &h.rollup_batch, 1, 1000000,
                    "a batch of fewer records writes the rollups at once: no load to\n"
                    "speak of (default 1000)"),
        OPT_END_MARK,
    };
    const struct opt_command cmd = {
        .no_args = 1,
        .name = "history",
        .usage = "fleetsync history [options]",
        .about = history_about,
        .after = history_after,
        .opts = opts,
        .shared = 1,
    };
    if (opt_parse_or_leave(&cmd, &cfg, argc, argv, &rest, &rc))
        goto out;
    rc = 1;
    if (h.days_ahead >= 0)
        h.hours_ahead = 24 * h.days_ahead;
    sig_install();
    h.cfg = &cfg;
    cfg_topic(&cfg, TOPIC_TELEMETRY, h.topic_telemetry, sizeof(h.topic_telemetry));
    cfg_topic(&cfg, TOPIC_ALERTS, h.topic_alerts, sizeof(h.topic_alerts));

    h.metrics = metrics_new();
    h.m_rows = metrics_counter(h.metrics, "fleetsync_history_rows_total", "Readings stored in telemetry.", NULL);
    h.m_dups = metrics_counter(h.metrics, "fleetsync_history_duplicates_total",
                               "Readings already stored (repeats), skipped.", NULL);
    h.m_late = metrics_counter(h.metrics, "fleetsync_history_late_rows_total",
                               "Readings stored out of order (their hours are recomputed).", NULL);
    for (int i = 1; i < TM_REASON_COUNT; i++) {
        char label[64];
        snprintf(label, sizeof(label), "reason=\"%s\"", tm_reason_name((enum tm_reason)i));
        h.m_rejected[i] = metrics_counter(h.metrics, "fleetsync_history_rejected_total",
                                          "Records of truck-telemetry that are not valid readings, by reason.", label);
    }
    h.m_rejected[0] = h.m_rejected[TM_INVALID_JSON];
    h.m_alerts = metrics_counter(h.metrics, "fleetsync_history_alerts_total", "Alert records stored.", NULL);
    h.m_alert_errors = metrics_counter(h.metrics, "fleetsync_history_alert_errors_total",
                                       "Records of truck-alerts that are not alerts, skipped.", NULL);
    h.m_recomputed = metrics_counter(h.metrics, "fleetsync_history_rollups_recomputed_total",
                                     "Truck-hours recomputed from raw rows (late data, replays).", NULL);
    h.m_dirty =
        metrics_gauge(h.metrics, "fleetsync_history_rollups_dirty", "Truck-hours waiting to be recomputed.", NULL);
    h.m_part_created =
        metrics_counter(h.metrics, "fleetsync_history_partitions_created_total", "Hour partitions created.", NULL);
    h.m_part_dropped = metrics_counter(h.metrics, "fleetsync_history_partitions_dropped_total",
                                       "Partitions dropped: past --retention, or emptied by packing.", NULL);
    h.m_packed = metrics_counter(h.metrics, "fleetsync_history_packed_readings_total",
                                 "Readings moved from telemetry_recent into packed truck-hours.", NULL);
    h.m_packed_hours = metrics_counter(h.metrics, "fleetsync_history_packed_hours_total", "Hours packed.", NULL);
    h.m_part_reclaimed = metrics_counter(h.metrics, "fleetsync_history_partitions_reclaimed_total",
                                         "Partitions of telemetry_recent truncated once all of them was packed "
                                         "(then dropped).",
                                         NULL);
    h.m_pack_refused = metrics_counter(h.metrics, "fleetsync_history_pack_refused_total",
                                       "Truck-hours left unpacked: a value that is not a finite number.", NULL);
    h.m_lookups = metrics_counter(h.metrics, "fleetsync_history_truck_lookups_total",
                                  "Trucks whose latest reading was read from the database (cache misses).", NULL);
    h.m_held = metrics_gauge(h.metrics, "fleetsync_history_rollups_held",
                             "Truck-hours whose rollups are held in memory (--rollup-ms).", NULL);
    h.m_rollup_writes = metrics_counter(h.metrics, "fleetsync_history_rollups_written_total",
                                        "Held truck-hour rollups added to telemetry_hourly.", NULL);
    h.m_reread = metrics_counter(h.metrics, "fleetsync_history_reread_total",
                                 "Readings read again below the stored offset to rebuild held rollups after a "
                                 "crash or rebalance.",
                                 NULL);
    if (metrics_serve_option(h.metrics, cfg.metrics_port, HISTORY_DEFAULT_METRICS_PORT) != 0)
        goto out;

    so.cfg = &cfg;
    so.group = cfg.group ? cfg.group : "fleetsync-history";
    h.group = so.group;
    so.topics[0] = h.topic_telemetry;
    so.topics[1] = h.topic_alerts;
    so.topic_count = 2;
    so.metrics = h.metrics;
    /* librdkafka prefetches at most 16 MB of records, not pgsink's 64 MB:
     * with its overhead per message that was 100 MB and more of the
     * process's memory while it reads a backlog (docs/bench/memory.md).
     * 16 MB is 60,000 readings, three batches of --max-batch's default,
     * 0.6 s of a live 100,000 readings/s: more than the next batch needs
     * while one is written (billing keeps up with 100,000/s on 8 MB). */
    static const char *const kafka_defaults[] = {"queued.max.messages.kbytes", "16384", NULL};
    so.kafka_defaults = kafka_defaults;
    static const struct pgsink_ops ops = {.write = history_write,
                                          .committed = history_committed,
                                          .aborted = history_aborted,
                                          .tick = history_tick,
                                          .start_at = history_start_at,
                                          .release = history_release};
    char pg_shown[CFG_MASKED_MAX];
    log_info("history: Kafka %s -> PostgreSQL %s (group %s, raw retention %d days)", cfg.brokers,
             cfg_mask_secrets(cfg.pg, pg_shown, sizeof(pg_shown)), so.group, h.retention_days);
    rc = pgsink_run(&so, &ops, &h);
    log_info("stopped: %.0f readings stored, %.0f repeats skipped, %.0f alerts", metric_value(h.m_rows),
             metric_value(h.m_dups), metric_value(h.m_alerts));

out:
    bcache_release(&h.cache);
    free(h.pend);
    arena_clear(&h);
    free(h.arena);
    free(h.spare);
    free(h.rows);
    free(h.ord);
    buf_release(&h.copy);
    buf_release(&h.aux);
    free(h.parts);
    free(h.pk);
    buf_release(&h.pack_bounds);
    for (size_t i = 0; i < h.rp_n; i++)
        free(h.rp[i].v);
    free(h.rp);
    free(h.bd);
    metrics_free(h.metrics);
    cfg_release(&cfg);
    return rc;
}
