/*
 * billing.c - `fleetsync billing`: consumer group fleetsync-billing reads
 * truck-telemetry and keeps billing_daily (per truck and UTC day: distance,
 * engine hours, idle hours, max speed) up to date, exactly once.
 *
 * The exactly-once machinery (offsets in sink_offsets, in the same
 * transaction as the rows; retries; re-seeks) is core/pgsink.c, shared with
 * history.  Batches are folded in memory as they come (pgsink's hold());
 * at most every --state-ms a state flush writes everything folded since the
 * last one, with the offsets it covers, in one transaction (pgsink's
 * write()).  A crash between flushes loses the held state and its offsets
 * together: the records are read again.  Per batch:
 *
 *   1. Readings are read by tm_read() (core/tmscan.h); bad
 *      records are counted by reason and skipped.
 *   2. Replay check: billing keeps its own copy of its position per partition
 *      (billing_progress), which `fleetsync replay` does not move.  A batch
 *      whose first record of a partition lies below it was rewound: the
 *      trucks of that partition lose their billing_daily rows from day D on
 *      and restart from the fold state stored at the end of their latest
 *      earlier day (billing_day_end), with floor D.  D is the UTC day of the
 *      first re-read record's Kafka timestamp when the rewind reached that
 *      day's first record (billing_partition_days), else the day after: only
 *      days that are re-read whole are recomputed.  So a replay overwrites
 *      days, never adds them twice.
 *   3. Each reading is folded, in arrival order, into its truck's state
 *      (billing/fold.h; states cached in memory, loaded from billing_trucks
 *      on a miss); the day deltas are gathered per truck and day until the
 *      flush, which stages them with COPY and adds them to billing_daily in
 *      one upsert; the trucks' states go to billing_trucks, the position to
 *      billing_progress.  A truck's state at the end of a day goes to
 *      billing_day_end when its first reading of a later day is folded
 *      (until then billing_trucks holds it).
 * A rolled-back flush (or a reassignment) forgets the cache: states are read
 * again from what the database holds.
 */
#include "billing/billing.h"

#include "core/bcache.h"
#include "billing/fold.h"
#include "core/buf.h"
#include "core/clock.h"
#include "core/config.h"
#include "core/grow.h"
#include "core/kafkaauth.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/opts.h"
#include "core/pg.h"
#include "core/pgbin.h"
#include "core/pgsink.h"
#include "core/pgval.h"
#include "core/sig.h"
#include "core/telemetry.h"
#include "core/tmscan.h"
#include "core/topics.h"

#include <inttypes.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BILLING_DEFAULT_METRICS_PORT 9104
#define BILLING_DEFAULT_STATE_MS 120000
#define BILLING_DEFAULT_STATE_READINGS 10
#define COPY_CHUNK (1u << 20)  /* bytes of COPY data sent at once by a state flush */
#define STAGED_MAX (32u << 20) /* bytes of rows staged while folding (midnight) that make a flush due */

/* ---- trucks: fold state per truck, cached ----------------------------------- */

/* A truck of the fleet: its fold state, and the sum of its deltas of one
 * day not staged yet (acc_*, while acc_on; the day is the one of
 * st.last_ts_ms: the last delta added is the last reading's day's).  The
 * cache (core/bcache.h) holds one for every truck seen, 112 bytes. */
struct truck {
    uint32_t id;         /* the cache's place of its id */
    uint16_t partition;  /* of its last reading (checked < 65536 when read) */
    uint8_t known : 1;   /* st reflects the database (and the readings folded since) */
    uint8_t touched : 1; /* folded since the last write: in the list of trucks to store */
    uint8_t listed : 1;  /* in the batch's list of lookups */
    uint8_t acc_on : 1;  /* acc_* hold deltas */
    struct bill_state st;
    double acc_distance_km, acc_engine_s, acc_idle_s, acc_max_speed_kmh;
};

/* The cache's record (docs/billing.md, memory). */
_Static_assert(sizeof(struct truck) <= 112, "struct truck grew: billing's memory per truck");

static void cache_forget(struct bcache *c)
{
    for (uint32_t i = 0; i < c->count; i++) {
        struct truck *t = bcache_rec(c, i);
        t->known = 0;
        t->touched = 0;
        t->listed = 0;
        t->acc_on = 0;
    }
}

/* ---- the service's state -------------------------------------------------------- */

struct row {
    char id[TM_TRUCK_ID_MAX + 1];
    size_t id_len;
    struct bill_point pt;
    int32_t partition;
    uint32_t h;  /* bcache_hash() of the id */
    uint32_t no; /* the truck's record number */
    struct truck *t;
};

/* One partition seen in the batch (first_*), and billing's position in it
 * since the last write (next_offset, kept in progs). */
struct part {
    int32_t partition;
    int64_t first_offset, first_ts_ms, next_offset;
};

/* The first offset of each UTC day of record timestamps, per partition. */
struct pday {
    int32_t partition;
    int64_t day_ms, first_offset;
};

/* What a flush's commit counts: gathered while folding (p), then handed to
 * the flush that writes it (f). */
struct counts {
    int64_t readings, dups, late, jumps, upserted, recomputed, rewinds, lookups, held;
    int flushed; /* the state was written: flush_trucks, stage_ms, apply_ms */
    int64_t flush_trucks, stage_ms, apply_ms;
    int64_t rejected[TM_REASON_COUNT];
};

struct billing {
    const struct fs_config *cfg;
    char topic[256];
    int state_readings; /* --state-readings */
    struct bcache cache;
    struct row *rows;
    size_t row_cap;
    uint32_t *touched; /* record numbers of the trucks folded since the last write */
    size_t touched_n, touched_cap;
    struct part *parts;
    size_t part_n, part_cap;
    struct part *progs; /* next_offset per partition, since the last write */
    size_t prog_n, prog_cap;
    struct pday *pdays;
    size_t pday_n, pday_cap;
    struct buf stage, ends, aux; /* COPY rows: billing_stage, billing_end_stage; lookups, billing_truck_stage */
    /* A state flush in two parts (pgsink.h, finish): write() stages the
     * rows folded since the last flush in the transaction's temporary
     * tables (COPY) and hands the rest to finish(), which applies them
     * while the next batches are folded.  What finish() reads is its own:
     * the positions (fprogs, fpdays), which tables were staged, f. */
    struct part *fprogs;
    size_t fprog_n, fprog_cap;
    struct pday *fpdays;
    size_t fpday_n, fpday_cap;
    int f_days, f_ends, f_trucks; /* staged: billing_stage, billing_end_stage, billing_truck_stage */
    struct counts p, f;           /* counted on commit: folded since the last flush, and in the flush */
    uint64_t rejected_logged;
    struct metrics *metrics;
    struct metric *m_folded, *m_readings, *m_dups, *m_late, *m_jumps, *m_upserted, *m_recomputed, *m_rewinds,
        *m_lookups, *m_rejected[TM_REASON_COUNT], *m_trucks, *m_flushes, *m_held, *m_flush_trucks, *m_flush_seconds;
};

static void day_text(int64_t day_ms, char *buf, size_t size)
{
    time_t t = (time_t)(fs_day_start_ms(day_ms) / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, size, "%Y-%m-%d", &tm);
}

/* ---- reading records ----------------------------------------------------------- */

/* Reads one record into *r; 0 = a reading, -1 = refused (counted). */
static int read_reading(struct billing *b, const rd_kafka_message_t *m, int64_t now, struct row *r)
{
    struct tm_fast f;
    char norm[TM_MAX_PAYLOAD + 1], detail[128];
    int normalized;
    enum tm_reason why = tm_read(m->payload, m->len, now, norm, sizeof(norm), &normalized, &f, detail, sizeof(detail));
    if (why == TM_OK) {
        memcpy(r->id, f.truck_id.p, f.truck_id.n);
        r->id[f.truck_id.n] = '\0';
        r->id_len = f.truck_id.n;
        r->pt = (struct bill_point){f.ts_ms, f.seq, f.lat, f.lon, f.speed_kmh, f.ignition};
        return 0;
    }
    b->p.rejected[why]++;
    if (b->rejected_logged++ < 20 || log_get_level() >= LOG_DEBUG)
        log_warn("%s [%d] offset %" PRId64 ": refused (%s: %s)", rd_kafka_topic_name(m->rkt), m->partition, m->offset,
                 tm_reason_name(why), detail);
    return -1;
}

/* ---- replay -------------------------------------------------------------------- */

#define STATE_COLS                                                                                                     \
    "last_ts_ms, last_seq, last_lat, last_lon, last_speed_kmh, last_ignition, has_good, good_ts_ms, good_lat, "        \
    "good_lon, last_good"

/* The partition was rewound below what billing had read: recompute its
 * trucks' days from D on (see the top of the file).  Only trucks with data
 * from D on are touched: they restart from the end of their latest day
 * before D, with floor D (re-read stragglers of earlier days stay out of
 * the days left alone).  A truck whose last reading lies before D keeps its
 * state, and its floor: the re-read records are all repeats for it, and its
 * live readings of today must still count. */
static int rewind_partition(struct billing *b, PGconn *conn, const struct part *p, int64_t stored, char *err,
                            size_t err_size)
{
    char part_s[16], day_s[16], floor_s[24];
    snprintf(part_s, sizeof(part_s), "%d", p->partition);
    if (p->first_ts_ms < 0) {
        log_warn("%s [%d] rewound from %" PRId64 " to %" PRId64 " but its records carry no timestamp: "
                 "no day is recomputed (re-read readings are skipped as repeats)",
                 b->topic, p->partition, stored, p->first_offset);
        return 0;
    }
    int64_t d = fs_day_start_ms(p->first_ts_ms);
    day_text(d, day_s, sizeof(day_s));
    const char *v3[3] = {b->topic, part_s, day_s};
    PGresult *r = pg_exec_params(conn,
                                 "SELECT first_offset FROM billing_partition_days WHERE topic = $1 AND partition = $2 "
                                 "AND day = $3::date",
                                 3, v3, PGRES_TUPLES_OK, err, err_size);
    if (!r)
        return -1;
    if (PQntuples(r) == 1 && p->first_offset > strtoll(PQgetvalue(r, 0, 0), NULL, 10))
        d += FS_DAY_MS; /* rewound into the middle of day d: it is not re-read whole */
    PQclear(r);
    day_text(d, day_s, sizeof(day_s));
    snprintf(floor_s, sizeof(floor_s), "%" PRId64, d);
    const char *v4[4] = {b->topic, part_s, day_s, floor_s};
    r = pg_exec_params(conn,
                       "DELETE FROM billing_daily WHERE day >= $3::date AND truck_id IN "
                       "(SELECT truck_id FROM billing_trucks WHERE topic = $1 AND partition = $2)",
                       3, v4, PGRES_COMMAND_OK, err, err_size);
    if (!r)
        return -1;
    int64_t days = strtoll(PQcmdTuples(r), NULL, 10);
    PQclear(r);
    static const char *const steps[] = {
        "DELETE FROM billing_day_end WHERE day >= $3::date AND truck_id IN "
        "(SELECT truck_id FROM billing_trucks WHERE topic = $1 AND partition = $2)",
        "UPDATE billing_trucks SET has_last = false, has_good = false, last_good = false, floor_ms = $4::bigint, "
        "updated_at = now() WHERE topic = $1 AND partition = $2 AND has_last AND last_ts_ms >= $4::bigint "
        "AND $3::date IS NOT NULL",
        "UPDATE billing_trucks b SET has_last = true, last_ts_ms = e.last_ts_ms, last_seq = e.last_seq, "
        "last_lat = e.last_lat, last_lon = e.last_lon, last_speed_kmh = e.last_speed_kmh, "
        "last_ignition = e.last_ignition, has_good = e.has_good, good_ts_ms = e.good_ts_ms, "
        "good_lat = e.good_lat, good_lon = e.good_lon, last_good = e.last_good, floor_ms = $4::bigint "
        "FROM (SELECT DISTINCT ON (truck_id) * FROM billing_day_end WHERE day < $3::date AND truck_id IN "
        "(SELECT truck_id FROM billing_trucks WHERE topic = $1 AND partition = $2) ORDER BY truck_id, day DESC) e "
        "WHERE b.truck_id = e.truck_id AND b.floor_ms = $4::bigint",
    };
    for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
        r = pg_exec_params(conn, steps[i], i == 0 ? 3 : 4, v4, PGRES_COMMAND_OK, err, err_size);
        if (!r)
            return -1;
        PQclear(r);
    }
    log_info("%s [%d] was rewound from offset %" PRId64 " to %" PRId64 ": recomputing its trucks' days from %s "
             "(%" PRId64 " truck-days cleared)",
             b->topic, p->partition, stored, p->first_offset, day_s, days);
    b->p.recomputed += days;
    b->p.rewinds++;
    cache_forget(&b->cache);
    return 0;
}

/* ---- trucks: lookups and staging --------------------------------------------------- */

static void state_from(struct bill_state *s, const PGresult *r, int i, int c)
{
    s->has_last = 1;
    s->last_ts_ms = strtoll(PQgetvalue(r, i, c), NULL, 10);
    s->last_seq = strtoll(PQgetvalue(r, i, c + 1), NULL, 10);
    s->last_lat = strtod(PQgetvalue(r, i, c + 2), NULL);
    s->last_lon = strtod(PQgetvalue(r, i, c + 3), NULL);
    s->last_speed_kmh = strtod(PQgetvalue(r, i, c + 4), NULL);
    s->last_ignition = PQgetvalue(r, i, c + 5)[0] == 't';
    s->has_good = PQgetvalue(r, i, c + 6)[0] == 't';
    s->good_ts_ms = strtoll(PQgetvalue(r, i, c + 7), NULL, 10);
    s->good_lat = strtod(PQgetvalue(r, i, c + 8), NULL);
    s->good_lon = strtod(PQgetvalue(r, i, c + 9), NULL);
    s->last_good = PQgetvalue(r, i, c + 10)[0] == 't';
}

/* The 11 STATE_COLS fields of a binary COPY row. */
static void put_state(struct buf *b, const struct bill_state *s)
{
    pgbin_int8(b, s->last_ts_ms);
    pgbin_int8(b, s->last_seq);
    pgbin_float8(b, s->last_lat);
    pgbin_float8(b, s->last_lon);
    pgbin_float8(b, s->last_speed_kmh);
    pgbin_bool(b, s->last_ignition);
    pgbin_bool(b, s->has_good);
    pgbin_int8(b, s->good_ts_ms);
    pgbin_float8(b, s->good_lat);
    pgbin_float8(b, s->good_lon);
    pgbin_bool(b, s->last_good);
}

/* Loads the states of the batch's trucks the cache does not know. */
static int lookup_unknown(struct billing *b, PGconn *conn, size_t nrows, char *err, size_t err_size)
{
    buf_reset(&b->aux);
    buf_put(&b->aux, "{", 1);
    size_t n = 0;
    for (size_t i = 0; i < nrows; i++) {
        struct truck *t = b->rows[i].t;
        if (t->known || t->listed)
            continue;
        t->listed = 1;
        if (n++)
            buf_put(&b->aux, ",", 1);
        /* Quoted: an unquoted NULL (a valid id) would be the SQL NULL. */
        size_t idn;
        const char *id = bcache_id(&b->cache, t, &idn);
        pgval_put_array_elem(&b->aux, id, idn);
    }
    buf_put(&b->aux, "}", 1);
    for (size_t i = 0; i < nrows; i++)
        b->rows[i].t->listed = 0;
    if (b->aux.oom) {
        snprintf(err, err_size, "out of memory");
        return -1;
    }
    if (n == 0)
        return 0;
    b->p.lookups += (int64_t)n;
    const char *vals[1] = {b->aux.p};
    PGresult *r = pg_exec_params(conn,
                                 "SELECT truck_id, has_last, floor_ms, " STATE_COLS
                                 " FROM billing_trucks WHERE truck_id = ANY($1::text[])",
                                 1, vals, PGRES_TUPLES_OK, err, err_size);
    if (!r)
        return -1;
    for (int i = 0; i < PQntuples(r); i++) {
        const char *id = PQgetvalue(r, i, 0);
        int added;
        uint32_t no = bcache_get(&b->cache, id, strlen(id), &added);
        if (no == BCACHE_NONE || added) /* added: not a truck of the batch (the lookup asks for those) */
            continue;
        struct truck *t = bcache_rec(&b->cache, no);
        bill_state_init(&t->st);
        if (PQgetvalue(r, i, 1)[0] == 't')
            state_from(&t->st, r, i, 3);
        bill_set_floor_ms(&t->st, strtoll(PQgetvalue(r, i, 2), NULL, 10));
        t->known = 1;
    }
    PQclear(r);
    for (size_t i = 0; i < nrows; i++) {
        struct truck *t = b->rows[i].t;
        if (!t->known) {
            bill_state_init(&t->st);
            t->known = 1;
        }
    }
    return 0;
}

/* Stages the truck's gathered deltas of day_ms (a COPY row of billing_stage). */
static void stage_acc(struct billing *b, struct truck *t, int64_t day_ms)
{
    if (!t->acc_on)
        return;
    size_t n;
    const char *id = bcache_id(&b->cache, t, &n);
    pgbin_row(&b->stage, 6);
    pgbin_text(&b->stage, id, n);
    pgbin_date_of_ms(&b->stage, day_ms);
    pgbin_float8(&b->stage, t->acc_distance_km);
    pgbin_float8(&b->stage, t->acc_engine_s);
    pgbin_float8(&b->stage, t->acc_idle_s);
    pgbin_float8(&b->stage, t->acc_max_speed_kmh);
    t->acc_on = 0;
}

/* Stages the truck's state *end as the end of its day (a COPY row of
 * billing_end_stage): called when the truck's first reading of a later day
 * was folded, so no reading can change that day's end any more (earlier
 * readings are late and skipped). */
static void stage_day_end(struct billing *b, const struct truck *t, const struct bill_state *end)
{
    size_t n;
    const char *id = bcache_id(&b->cache, t, &n);
    pgbin_row(&b->ends, 13);
    pgbin_text(&b->ends, id, n);
    pgbin_date_of_ms(&b->ends, end->last_ts_ms);
    put_state(&b->ends, end);
}

/* Adds d to the truck's deltas; *acc_day is the day they are of (updated
 * when they are staged and start again with d). */
static void add_delta(struct billing *b, struct truck *t, int64_t *acc_day, const struct bill_delta *d)
{
    if (t->acc_on && *acc_day != d->day_ms)
        stage_acc(b, t, *acc_day);
    if (!t->acc_on) {
        *acc_day = d->day_ms;
        t->acc_distance_km = d->distance_km;
        t->acc_engine_s = d->engine_s;
        t->acc_idle_s = d->idle_s;
        t->acc_max_speed_kmh = d->max_speed_kmh;
        t->acc_on = 1;
    } else {
        t->acc_distance_km += d->distance_km;
        t->acc_engine_s += d->engine_s;
        t->acc_idle_s += d->idle_s;
        if (d->max_speed_kmh > t->acc_max_speed_kmh)
            t->acc_max_speed_kmh = d->max_speed_kmh;
    }
}

static int touch(struct billing *b, struct truck *t, uint32_t no)
{
    if (t->touched)
        return 0;
    if (grow_one(&b->touched, &b->touched_cap, b->touched_n, sizeof(*b->touched), 256) != 0)
        return -1;
    b->touched[b->touched_n++] = no;
    t->touched = 1;
    return 0;
}

static struct part *part_get(struct part **parts, size_t *n, size_t *cap, int32_t partition)
{
    for (size_t i = 0; i < *n; i++)
        if ((*parts)[i].partition == partition)
            return &(*parts)[i];
    if (grow_one(parts, cap, *n, sizeof(**parts), 16) != 0)
        return NULL;
    struct part *p = &(*parts)[(*n)++];
    *p = (struct part){.partition = partition, .first_offset = -1, .first_ts_ms = -1, .next_offset = -1};
    return p;
}

static int pday_note(struct billing *b, int32_t partition, int64_t ts_ms, int64_t offset)
{
    if (ts_ms < 0)
        return 0;
    int64_t day = fs_day_start_ms(ts_ms);
    for (size_t i = 0; i < b->pday_n; i++) {
        struct pday *d = &b->pdays[i];
        if (d->partition == partition && d->day_ms == day) {
            if (offset < d->first_offset)
                d->first_offset = offset;
            return 0;
        }
    }
    if (grow_one(&b->pdays, &b->pday_cap, b->pday_n, sizeof(*b->pdays), 16) != 0)
        return -1;
    b->pdays[b->pday_n++] = (struct pday){partition, day, offset};
    return 0;
}

static const char *stage_sql =
    "CREATE TEMP TABLE IF NOT EXISTS billing_stage (truck_id text, day date, distance_km float8, engine_s float8, "
    "idle_s float8, max_speed_kmh float8) ON COMMIT DELETE ROWS;"
    "CREATE TEMP TABLE IF NOT EXISTS billing_end_stage (LIKE billing_day_end) ON COMMIT DELETE ROWS;"
    "CREATE TEMP TABLE IF NOT EXISTS billing_truck_stage (LIKE billing_trucks INCLUDING DEFAULTS) "
    "ON COMMIT DELETE ROWS";

static const char *upsert_daily_sql =
    "INSERT INTO billing_daily AS b (truck_id, day, distance_km, engine_hours, idle_hours, max_speed_kmh, "
    "updated_at) SELECT truck_id, day, sum(distance_km), sum(engine_s) / 3600.0, sum(idle_s) / 3600.0, "
    "max(max_speed_kmh), now() FROM billing_stage GROUP BY truck_id, day "
    "ON CONFLICT (truck_id, day) DO UPDATE SET distance_km = b.distance_km + EXCLUDED.distance_km, "
    "engine_hours = b.engine_hours + EXCLUDED.engine_hours, idle_hours = b.idle_hours + EXCLUDED.idle_hours, "
    "max_speed_kmh = GREATEST(b.max_speed_kmh, EXCLUDED.max_speed_kmh), updated_at = now()";

static const char *upsert_day_end_sql =
    "INSERT INTO billing_day_end SELECT * FROM billing_end_stage "
    "ON CONFLICT (truck_id, day) DO UPDATE SET last_ts_ms = EXCLUDED.last_ts_ms, "
    "last_seq = EXCLUDED.last_seq, last_lat = EXCLUDED.last_lat, last_lon = EXCLUDED.last_lon, "
    "last_speed_kmh = EXCLUDED.last_speed_kmh, last_ignition = EXCLUDED.last_ignition, "
    "has_good = EXCLUDED.has_good, good_ts_ms = EXCLUDED.good_ts_ms, good_lat = EXCLUDED.good_lat, "
    "good_lon = EXCLUDED.good_lon, last_good = EXCLUDED.last_good";

static const char *upsert_trucks_sql =
    "INSERT INTO billing_trucks SELECT * FROM billing_truck_stage ON CONFLICT (truck_id) DO UPDATE SET "
    "topic = EXCLUDED.topic, partition = EXCLUDED.partition, has_last = EXCLUDED.has_last, "
    "last_ts_ms = EXCLUDED.last_ts_ms, last_seq = EXCLUDED.last_seq, last_lat = EXCLUDED.last_lat, "
    "last_lon = EXCLUDED.last_lon, last_speed_kmh = EXCLUDED.last_speed_kmh, "
    "last_ignition = EXCLUDED.last_ignition, has_good = EXCLUDED.has_good, good_ts_ms = EXCLUDED.good_ts_ms, "
    "good_lat = EXCLUDED.good_lat, good_lon = EXCLUDED.good_lon, last_good = EXCLUDED.last_good, "
    "floor_ms = EXCLUDED.floor_ms, updated_at = now()";

/* ---- one batch, and the write ---------------------------------------------------- */

/* Forgets what was folded since the last write (after it, or when it is lost). */
static void reset_interval(struct billing *b)
{
    for (size_t i = 0; i < b->touched_n; i++) {
        struct truck *t = bcache_rec(&b->cache, b->touched[i]);
        t->touched = 0;
        t->acc_on = 0;
    }
    b->touched_n = 0;
    b->part_n = 0;
    b->prog_n = 0;
    b->pday_n = 0;
    buf_reset(&b->stage);
    buf_reset(&b->ends);
    buf_reset(&b->aux);
}

static void clear_pending(struct billing *b)
{
    memset(&b->p, 0, sizeof(b->p));
    memset(&b->f, 0, sizeof(b->f));
    b->fprog_n = b->fpday_n = 0;
    b->f_days = b->f_ends = b->f_trucks = 0;
}

/* Folds one batch into the trucks' states and the accumulators of the
 * interval.  A rewound partition is recomputed (database writes: only when
 * in_tx); otherwise returns 1 before anything changed, so that the batch
 * is written in a transaction.  0 folded, -1 error (err). */
static int fold_batch(struct billing *b, PGconn *conn, rd_kafka_message_t **msgs, size_t n, int in_tx, char *err,
                      size_t err_size)
{
    int64_t now = fs_wall_ms();
    size_t nrows = 0;
    uint64_t folded = 0;

    b->part_n = 0;
    if (n > b->row_cap) {
        struct row *r = realloc(b->rows, n * sizeof(*r));
        if (!r) {
            snprintf(err, err_size, "out of memory");
            return -1;
        }
        b->rows = r;
        b->row_cap = n;
    }

    /* 1. partitions (the batch's first records) */
    for (size_t i = 0; i < n; i++) {
        const rd_kafka_message_t *m = msgs[i];
        struct part *p = part_get(&b->parts, &b->part_n, &b->part_cap, m->partition);
        if (!p) {
            snprintf(err, err_size, "out of memory");
            return -1;
        }
        if (p->first_offset < 0) {
            p->first_offset = m->offset;
            p->first_ts_ms = rd_kafka_message_timestamp(m, NULL);
        }
        p->next_offset = m->offset + 1;
    }

    /* 2. rewound partitions */
    if (b->part_n > 0) {
        const char *v1[1] = {b->topic};
        PGresult *res = pg_exec_params(conn, "SELECT partition, next_offset FROM billing_progress WHERE topic = $1", 1,
                                       v1, PGRES_TUPLES_OK, err, err_size);
        if (!res)
            return -1;
        for (int i = 0; i < PQntuples(res); i++) {
            int32_t partition = (int32_t)atoi(PQgetvalue(res, i, 0));
            int64_t stored = strtoll(PQgetvalue(res, i, 1), NULL, 10);
            for (size_t j = 0; j < b->part_n; j++) {
                if (b->parts[j].partition != partition || b->parts[j].first_offset >= stored)
                    continue;
                /* Only a re-seek reads backwards, and it drops what was
                 * held: a rewind is met with nothing folded since the
                 * last write. */
                int r = !in_tx             ? 1
                        : b->touched_n > 0 ? -1
                                           : rewind_partition(b, conn, &b->parts[j], stored, err, err_size);
                if (r != 0) {
                    if (r < 0 && b->touched_n > 0)
                        snprintf(err, err_size, "%s [%d] rewound while readings were held", b->topic, partition);
                    PQclear(res);
                    return r;
                }
            }
        }
        PQclear(res);
    }

    /* 3. readings, in arrival order; the position of each partition */
    for (size_t i = 0; i < n; i++) {
        const rd_kafka_message_t *m = msgs[i];
        struct part *p = part_get(&b->progs, &b->prog_n, &b->prog_cap, m->partition);
        if (!p || pday_note(b, m->partition, rd_kafka_message_timestamp(m, NULL), m->offset) < 0) {
            snprintf(err, err_size, "out of memory");
            return -1;
        }
        p->next_offset = m->offset + 1;
        struct row *r = &b->rows[nrows];
        if (m->partition < 0 || m->partition > UINT16_MAX) {
            snprintf(err, err_size, "%s [%d]: billing keeps partition numbers below 65536", b->topic, m->partition);
            return -1;
        }
        if (read_reading(b, m, now, r) < 0)
            continue;
        r->partition = m->partition;
        r->h = bcache_hash(r->id, r->id_len);
        nrows++;
    }

    /* 4. trucks, then the fold */
    for (size_t i = 0; i < nrows; i++) {
        struct row *r = &b->rows[i];
        int added;
        if (i + 24 < nrows)
            bcache_prefetch_slot(&b->cache, b->rows[i + 24].h);
        if (i + 16 < nrows)
            bcache_prefetch_rec(&b->cache, b->rows[i + 16].h);
        if (i + 8 < nrows)
            bcache_prefetch_id(&b->cache, b->rows[i + 8].h);
        r->no = bcache_get_hashed(&b->cache, r->id, r->id_len, r->h, &added);
        r->t = r->no == BCACHE_NONE ? NULL : bcache_rec(&b->cache, r->no);
        if (!r->t) {
            snprintf(err, err_size, "out of memory");
            return -1;
        }
    }
    if (lookup_unknown(b, conn, nrows, err, err_size) < 0)
        return -1;
    for (size_t i = 0; i < nrows; i++) {
        struct row *r = &b->rows[i];
        struct truck *t = r->t;
        struct bill_out o;
        if (i + 8 < nrows) { /* the records were read for the lookups, and are out of the cache again */
            __builtin_prefetch(b->rows[i + 8].t);
            __builtin_prefetch((const char *)b->rows[i + 8].t + 64);
        }
        struct bill_state before = t->st;
        switch (bill_fold(&t->st, &r->pt, &o)) {
        case BILL_DUPLICATE:
            b->p.dups++;
            continue;
        case BILL_LATE:
        case BILL_BEFORE_FLOOR:
            b->p.late++;
            continue;
        case BILL_FOLDED:
            break;
        }
        if (touch(b, t, r->no) < 0) {
            snprintf(err, err_size, "out of memory");
            return -1;
        }
        t->partition = (uint16_t)r->partition;
        b->p.readings++;
        b->p.jumps += o.jump;
        int64_t acc_day = fs_day_start_ms(before.last_ts_ms); /* of the deltas held, if any */
        if (o.n == 2)
            add_delta(b, t, &acc_day, &o.d[1]);
        add_delta(b, t, &acc_day, &o.d[0]);
        if (before.has_last && fs_day_start_ms(before.last_ts_ms) < fs_day_start_ms(t->st.last_ts_ms))
            stage_day_end(b, t, &before);
        folded++;
    }
    /* Counted now, not at the flush: progress shows while the state is held
     * (a dropped flush's readings are folded, and counted, again). */
    metric_add(b->m_folded, folded);
    if (b->stage.oom || b->ends.oom) {
        snprintf(err, err_size, "out of memory");
        return -1;
    }
    return 0;
}

/* Sends the COPY rows gathered in buf to table, unless there are none. */
static int copy_rows(PGconn *conn, const char *table, struct buf *buf, int *sent, char *err, size_t err_size)
{
    if (buf->len == 0)
        return 0;
    if (pgbin_copy(conn, table, buf, err, err_size) < 0) /* refuses a buffer that ran out of memory */
        return -1;
    buf_reset(buf);
    *sent = 1;
    return 0;
}

/* The first part of a state flush, in the open transaction: stages
 * everything folded since the last flush in the temporary tables (days, day
 * ends, trucks: COPY, in chunks of about COPY_CHUNK bytes, never the text of
 * the whole fleet at once), then hands what apply_interval() needs to the
 * flush (fprogs, fpdays, f) and starts the next interval: from here on the
 * readings folded are the next flush's.  The staged rows are the snapshot
 * the flush writes, so folding may go on while apply_interval() runs. */
static int stage_interval(struct billing *b, PGconn *conn, char *err, size_t err_size)
{
    int64_t t0 = fs_mono_ms();
    b->f_days = b->f_ends = b->f_trucks = 0;
    if (b->touched_n > 0 || b->stage.len > 0 || b->ends.len > 0) {
        if (pg_exec(conn, stage_sql, err, err_size) < 0)
            return -1;
    }
    for (size_t i = 0; i < b->touched_n; i++) {
        struct truck *t = bcache_rec(&b->cache, b->touched[i]);
        stage_acc(b, t, fs_day_start_ms(t->st.last_ts_ms));
        if (b->stage.len >= COPY_CHUNK && copy_rows(conn, "billing_stage", &b->stage, &b->f_days, err, err_size) < 0)
            return -1;
    }
    if (copy_rows(conn, "billing_stage", &b->stage, &b->f_days, err, err_size) < 0 ||
        copy_rows(conn, "billing_end_stage", &b->ends, &b->f_ends, err, err_size) < 0)
        return -1;
    static const char trucks_table[] =
        "billing_truck_stage (truck_id, topic, partition, has_last, " STATE_COLS ", floor_ms)";
    buf_reset(&b->aux);
    for (size_t i = 0; i < b->touched_n; i++) {
        const struct truck *t = bcache_rec(&b->cache, b->touched[i]);
        size_t n;
        const char *id = bcache_id(&b->cache, t, &n);
        pgbin_row(&b->aux, 16);
        pgbin_text(&b->aux, id, n);
        pgbin_text(&b->aux, b->topic, strlen(b->topic));
        pgbin_int4(&b->aux, t->partition);
        pgbin_bool(&b->aux, t->st.has_last);
        put_state(&b->aux, &t->st);
        pgbin_int8(&b->aux, bill_floor_ms(&t->st));
        if (b->aux.len >= COPY_CHUNK && copy_rows(conn, trucks_table, &b->aux, &b->f_trucks, err, err_size) < 0)
            return -1;
    }
    if (copy_rows(conn, trucks_table, &b->aux, &b->f_trucks, err, err_size) < 0)
        return -1;
    /* The flush's share: positions, counts; then the next interval. */
    struct part *pg = b->fprogs;
    size_t pg_cap = b->fprog_cap;
    b->fprogs = b->progs, b->fprog_cap = b->prog_cap, b->fprog_n = b->prog_n;
    b->progs = pg, b->prog_cap = pg_cap;
    struct pday *pd = b->fpdays;
    size_t pd_cap = b->fpday_cap;
    b->fpdays = b->pdays, b->fpday_cap = b->pday_cap, b->fpday_n = b->pday_n;
    b->pdays = pd, b->pday_cap = pd_cap;
    b->f = b->p;
    b->f.flushed = 1;
    b->f.flush_trucks = (int64_t)b->touched_n;
    b->f.stage_ms = fs_mono_ms() - t0;
    memset(&b->p, 0, sizeof(b->p));
    reset_interval(b);
    return 0;
}

/* The rest of a state flush, in the same transaction: the staged rows go
 * into their tables (one upsert each), the positions with them.  Reads and
 * writes only what stage_interval() handed over (fprogs, fpdays, f, f_*):
 * it runs while the next batches are folded (pgsink.h, finish). */
static int apply_interval(struct billing *b, PGconn *conn, char *err, size_t err_size)
{
    char part_s[16], off_s[24], day_s[16];
    int64_t t0 = fs_mono_ms();
    PGresult *res;

    if (b->f_days) {
        res = pg_exec_params(conn, upsert_daily_sql, 0, NULL, PGRES_COMMAND_OK, err, err_size);
        if (!res)
            return -1;
        b->f.upserted = strtoll(PQcmdTuples(res), NULL, 10);
        PQclear(res);
    }
    if (b->f_ends && pg_exec(conn, upsert_day_end_sql, err, err_size) < 0)
        return -1;
    if (b->f_trucks && pg_exec(conn, upsert_trucks_sql, err, err_size) < 0)
        return -1;
    for (size_t i = 0; i < b->fprog_n; i++) {
        snprintf(part_s, sizeof(part_s), "%d", b->fprogs[i].partition);
        snprintf(off_s, sizeof(off_s), "%" PRId64, b->fprogs[i].next_offset);
        const char *v[3] = {b->topic, part_s, off_s};
        res = pg_exec_params(conn,
                             "INSERT INTO billing_progress (topic, partition, next_offset) VALUES ($1, $2, $3) "
                             "ON CONFLICT (topic, partition) DO UPDATE SET next_offset = EXCLUDED.next_offset",
                             3, v, PGRES_COMMAND_OK, err, err_size);
        if (!res)
            return -1;
        PQclear(res);
    }
    for (size_t i = 0; i < b->fpday_n; i++) {
        snprintf(part_s, sizeof(part_s), "%d", b->fpdays[i].partition);
        snprintf(off_s, sizeof(off_s), "%" PRId64, b->fpdays[i].first_offset);
        day_text(b->fpdays[i].day_ms, day_s, sizeof(day_s));
        const char *v[4] = {b->topic, part_s, day_s, off_s};
        res = pg_exec_params(conn,
                             "INSERT INTO billing_partition_days (topic, partition, day, first_offset) "
                             "VALUES ($1, $2, $3, $4) ON CONFLICT (topic, partition, day) DO UPDATE SET "
                             "first_offset = LEAST(billing_partition_days.first_offset, EXCLUDED.first_offset)",
                             4, v, PGRES_COMMAND_OK, err, err_size);
        if (!res)
            return -1;
        PQclear(res);
    }
    b->f.apply_ms = fs_mono_ms() - t0;
    return 0;
}

/* pgsink's write(): the batch (possibly empty) and everything held before
 * it, staged; pgsink's finish() applies it. */
static int billing_write(void *ctx, PGconn *conn, rd_kafka_message_t **msgs, size_t n, size_t *refused, char *err,
                         size_t err_size)
{
    struct billing *b = ctx;
    (void)refused; /* every value billing writes is computed from a checked reading */
    if (fold_batch(b, conn, msgs, n, 1, err, err_size) < 0)
        return -1;
    return stage_interval(b, conn, err, err_size);
}

/* pgsink's finish(): see apply_interval(). */
static int billing_finish(void *ctx, PGconn *conn, char *err, size_t err_size)
{
    return apply_interval(ctx, conn, err, err_size);
}

/* pgsink's hold(): the batch folded in memory; 1 when it must be written
 * now (a rewound partition is recomputed in a transaction). */
static int billing_hold(void *ctx, PGconn *conn, rd_kafka_message_t **msgs, size_t n, char *err, size_t err_size)
{
    struct billing *b = ctx;
    /* Enough readings per truck held: a flush now writes each truck's rows
     * once for state_readings readings on average. */
    if (b->state_readings > 0 && b->touched_n > 0 &&
        b->p.readings >= (int64_t)b->state_readings * (int64_t)b->touched_n)
        return 1;
    /* Past midnight every truck stages its day's row and its day's end (about
     * 200 bytes): written in rounds of STAGED_MAX, not all held at once. */
    if (b->stage.len + b->ends.len >= STAGED_MAX)
        return 1;
    int r = fold_batch(b, conn, msgs, n, 0, err, err_size);
    if (r == 0)
        b->p.held++;
    return r;
}

static void billing_committed(void *ctx)
{
    struct billing *b = ctx;
    const struct counts *f = &b->f;
    metric_add(b->m_readings, (uint64_t)f->readings);
    metric_add(b->m_dups, (uint64_t)f->dups);
    metric_add(b->m_late, (uint64_t)f->late);
    metric_add(b->m_jumps, (uint64_t)f->jumps);
    metric_add(b->m_upserted, (uint64_t)f->upserted);
    metric_add(b->m_recomputed, (uint64_t)f->recomputed);
    metric_add(b->m_rewinds, (uint64_t)f->rewinds);
    metric_add(b->m_lookups, (uint64_t)f->lookups);
    metric_add(b->m_held, (uint64_t)f->held);
    if (f->flushed && f->flush_trucks > 0) {
        /* Give back what the flush's buffers and librdkafka's threads freed
         * (glibc keeps freed memory in its arenas otherwise). */
        malloc_trim(0);
        log_debug("state flush: %" PRId64 " trucks, %" PRId64 " ms staging them, %" PRId64 " ms applying",
                  f->flush_trucks, f->stage_ms, f->apply_ms);
    }
    if (f->flushed) {
        metric_add(b->m_flushes, 1);
        metric_observe(b->m_flush_trucks, (double)f->flush_trucks);
        metric_observe(b->m_flush_seconds, (double)(f->stage_ms + f->apply_ms) / 1000.0);
    }
    for (int i = 1; i < TM_REASON_COUNT; i++)
        metric_add(b->m_rejected[i], (uint64_t)f->rejected[i]);
    metric_set(b->m_trucks, (double)b->cache.count);
    memset(&b->f, 0, sizeof(b->f));
    b->fprog_n = b->fpday_n = 0;
    b->f_days = b->f_ends = b->f_trucks = 0;
}

static void billing_aborted(void *ctx)
{
    struct billing *b = ctx;
    /* The outcome may be unknown (a lost connection at COMMIT), or another
     * instance wrote these partitions: read the states again. */
    reset_interval(b);
    cache_forget(&b->cache);
    clear_pending(b);
}

/* ---- the command --------------------------------------------------------------------- */

/* The about text names the GPS jump limit: "%.0f" of BILL_MAX_KMH. */
static const char billing_about[] =
    "The billing pipeline: consumer group fleetsync-billing reads truck-telemetry and\n"
    "keeps billing_daily in PostgreSQL up to date: per truck and UTC day, distance\n"
    "driven (GPS jumps above %.0f km/h filtered), engine hours, idle hours, max speed.\n"
    "Exactly once: the state folded in memory is written with the Kafka offsets it\n"
    "covers in one transaction, within --state-ms, so a crash neither loses nor\n"
    "counts a reading twice (what was not written yet is read again).  After\n"
    "`fleetsync replay --group fleetsync-billing ...` it recomputes the replayed UTC\n"
    "days (overwriting them).\n"
    "`fleetsync report invoice --month YYYY-MM ...` prints the invoice.  docs/billing.md\n"
    "has the definitions (gaps > 10 min, midnight split, jumps).";

#define STR_(x) #x
#define STR(x) STR_(x)

static const char billing_after[] = "Metrics on 127.0.0.1:" STR(
    BILLING_DEFAULT_METRICS_PORT) "/metrics (--metrics-port N, -1 for none).\n"
                                  "Examples:\n"
                                  "  fleetsync billing                               # against the embedded stack\n"
                                  "  fleetsync billing --pg 'postgresql://app@db.example/fleet' --brokers k1:9092\n"
                                  "  fleetsync report invoice --month 2026-11 --rate-per-km 0.35 "
                                  "--rate-per-engine-hour 12\n"
                                  "Exit status: 0 after a clean stop (SIGINT/SIGTERM), 1 runtime failure (a Kafka "
                                  "fatal\n"
                                  "consumer error: restart it, it rejoins the group), 2 usage error.";

static void register_metrics(struct billing *b)
{
    struct metrics *m = b->metrics;
    b->m_folded =
        metrics_counter(m, "fleetsync_billing_readings_folded_total",
                        "Readings folded into the trucks' states in memory, counted as they are folded.", NULL);
    b->m_readings =
        metrics_counter(m, "fleetsync_billing_readings_total",
                        "Readings folded and written to billing_daily (counted when their flush commits).", NULL);
    b->m_dups = metrics_counter(m, "fleetsync_billing_duplicates_total",
                                "Readings with the (ts, seq) of the truck's last one (repeats), skipped.", NULL);
    b->m_late =
        metrics_counter(m, "fleetsync_billing_late_total",
                        "Readings older than the truck's last one (or before a recomputed day), skipped.", NULL);
    b->m_jumps = metrics_counter(m, "fleetsync_billing_gps_jumps_total",
                                 "Readings whose implied speed exceeded the limit: no distance counted.", NULL);
    b->m_upserted =
        metrics_counter(m, "fleetsync_billing_rows_upserted_total", "billing_daily rows inserted or updated.", NULL);
    b->m_recomputed = metrics_counter(m, "fleetsync_billing_days_recomputed_total",
                                      "Truck-days cleared for recomputation by a replay.", NULL);
    b->m_rewinds =
        metrics_counter(m, "fleetsync_billing_rewinds_total", "Partitions found rewound (by fleetsync replay).", NULL);
    b->m_lookups = metrics_counter(m, "fleetsync_billing_truck_lookups_total",
                                   "Truck states read from the database (cache misses).", NULL);
    b->m_trucks = metrics_gauge(m, "fleetsync_billing_trucks", "Trucks whose state is cached.", NULL);
    b->m_flushes =
        metrics_counter(m, "fleetsync_billing_state_flushes_total",
                        "Transactions that wrote the state folded since the last one, with its offsets.", NULL);
    b->m_held = metrics_counter(m, "fleetsync_billing_batches_held_total",
                                "Batches folded in memory without a transaction (written with the next flush).", NULL);
    static const double trucks[] = {1, 10, 100, 1000, 10000, 100000, 1000000};
    static const double secs[] = {0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
    b->m_flush_trucks = metrics_histogram(m, "fleetsync_billing_flush_trucks", "Trucks written per state flush.", NULL,
                                          trucks, (int)(sizeof(trucks) / sizeof(trucks[0])));
    b->m_flush_seconds =
        metrics_histogram(m, "fleetsync_billing_flush_seconds", "Time to write the state in a flush's transaction.",
                          NULL, secs, (int)(sizeof(secs) / sizeof(secs[0])));
    for (int i = 1; i < TM_REASON_COUNT; i++) {
        char label[64];
        snprintf(label, sizeof(label), "reason=\"%s\"", tm_reason_name((enum tm_reason)i));
        b->m_rejected[i] = metrics_counter(m, "fleetsync_billing_rejected_total",
                                           "Records of truck-telemetry that are not valid readings, by reason.", label);
    }
}

int cmd_billing(int argc, char **argv)
{
    struct fs_config cfg;
    struct billing b;
    struct pgsink_options so = {
        .max_batch = 20000, .flush_ms = 500, .start = PGSINK_START_EARLIEST, .hold_ms = BILLING_DEFAULT_STATE_MS};
    char about[sizeof(billing_about) + 16];
    int rest, rc = 2;

    memset(&b, 0, sizeof(b));
    bcache_init(&b.cache, sizeof(struct truck));
    b.state_readings = BILLING_DEFAULT_STATE_READINGS;
    cfg_init(&cfg);
    cfg.kafka_user = KA_USER_BILLING;
    snprintf(about, sizeof(about), billing_about, BILL_MAX_KMH);
    const struct opt opts[] = {
        PGSINK_OPTS(&so),
        OPT_INTEGER("state-readings", "N", &b.state_readings, 0, 1000000,
                    "write the folded state once the trucks folded since the last write have N readings each on "
                    "average (default " STR(BILLING_DEFAULT_STATE_READINGS) ", 0 = only --state-ms)"),
        OPT_INTEGER("state-ms", "MS", &so.hold_ms, 0, 3600000,
                    "the longest the folded state waits to be written with its offsets; 0 = every batch (default " STR(
                        BILLING_DEFAULT_STATE_MS) ")"),
        OPT_END_MARK,
    };
    const struct opt_command cmd = {
        .no_args = 1,
        .name = "billing",
        .usage = "fleetsync billing [options]",
        .about = about,
        .after = billing_after,
        .opts = opts,
        .shared = 1,
    };
    if (opt_parse_or_leave(&cmd, &cfg, argc, argv, &rest, &rc))
        goto out;
    rc = 1;
    sig_install();
    b.cfg = &cfg;
    cfg_topic(&cfg, TOPIC_TELEMETRY, b.topic, sizeof(b.topic));
    b.metrics = metrics_new();
    if (!b.metrics) {
        log_error("out of memory");
        goto out;
    }
    register_metrics(&b);
    if (metrics_serve_option(b.metrics, cfg.metrics_port, BILLING_DEFAULT_METRICS_PORT) != 0)
        goto out;

    so.cfg = &cfg;
    so.group = cfg.group ? cfg.group : "fleetsync-billing";
    so.topics[0] = b.topic;
    so.topic_count = 1;
    so.metrics = b.metrics;
    /* Billing is not latency-bound (a state flush every --state-ms): fetches
     * of up to 1 MB or 500 ms mean a fraction of the consumer's wake-ups
     * (its CPU per reading halved in bench/billing).  Its memory is the
     * fleet's states: librdkafka prefetches at most 8 MB of records, not
     * pgsink's 64 MB (which, with librdkafka's per-message overhead, cost
     * more than 100 MB of a 1,000,000-truck billing's 290 MB).  The prefetch
     * limit paces the consumer (docs/billing.md): at 2 MB billing folded
     * 35,000 readings/s of a live 100,000/s, at 8 MB all of them. */
    static const char *const kafka_defaults[] = {
        "fetch.min.bytes", "1048576", "fetch.wait.max.ms", "500", "queued.max.messages.kbytes", "8192", NULL};
    so.kafka_defaults = kafka_defaults;
    static const struct pgsink_ops ops = {.write = billing_write,
                                          .committed = billing_committed,
                                          .aborted = billing_aborted,
                                          .tick = NULL,
                                          .hold = billing_hold,
                                          .finish = billing_finish};
    char pg_shown[CFG_MASKED_MAX];
    log_info("billing: Kafka %s -> PostgreSQL %s (group %s)", cfg.brokers,
             cfg_mask_secrets(cfg.pg, pg_shown, sizeof(pg_shown)), so.group);
    rc = pgsink_run(&so, &ops, &b);
    log_info("stopped: %.0f readings folded, %.0f repeats and %.0f late readings skipped, %.0f GPS jumps",
             metric_value(b.m_readings), metric_value(b.m_dups), metric_value(b.m_late), metric_value(b.m_jumps));

out:
    bcache_release(&b.cache);
    free(b.rows);
    free(b.touched);
    free(b.parts);
    free(b.progs);
    free(b.pdays);
    free(b.fprogs);
    free(b.fpdays);
    buf_release(&b.stage);
    buf_release(&b.ends);
    buf_release(&b.aux);
    metrics_free(b.metrics);
    cfg_release(&cfg);
    return rc;
}
