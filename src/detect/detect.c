/*
 * detect.c - `fleetsync detect`, the detector service (docs/design.md "Alerts",
 * docs/detect.md).
 *
 * One thread: a consumer of truck-telemetry (group fleetsync-detector, manual
 * commits) feeds each record to the rule engine (detect/engine.h) by
 * partition; alerts go to truck-alerts (key = truck_id) through an idempotent
 * producer (acks=all, messages never time out).
 *
 * Recovery: every --checkpoint-ms the producer is flushed (every
 * alert of the records read so far is acknowledged by Kafka), the engine
 * state of each owned partition is written with its next offset into
 * <state-dir>/<group>/ckpt-<G>.bin (tmp, fsync, rename, fsync dir), those
 * offsets are committed synchronously with metadata "ckpt:<G>", and the
 * previous generation's file is removed.  On assignment a partition whose
 * committed metadata names a file holding it at exactly the committed offset
 * gets that state back; any other partition (no commit, moved by `fleetsync
 * replay`, file missing or torn) starts from a reset state at its committed
 * offset (or --start) and warms up.  A crash anywhere in that sequence leaves
 * the commits naming a file that still exists, or no commit at all: the
 * records after the committed offset are read again from the saved state and
 * give the same alerts (same alert_id, same state), at least once.
 *
 * A fatal error of the idempotent producer (librdkafka 2.0.2, docs/design.md
 * pitfalls) ends the process with status 1 without committing anything after
 * the last checkpoint; the restart resumes from that checkpoint and sends the
 * unacknowledged alerts again (the supervisor, `fleetsync up`, restarts it).
 */
#include "detect/detect.h"

#include "core/clock.h"
#include "detect/checkpoint.h"
#include "detect/engine.h"

#include "core/config.h"
#include "core/geo.h"
#include "core/kafka.h"
#include "core/kafkaauth.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/opts.h"
#include "core/sig.h"
#include "core/telemetry.h"
#include "core/tmscan.h"
#include "core/topics.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

#define DETECT_DEFAULT_GROUP "fleetsync-detector"
#define DETECT_DEFAULT_METRICS_PORT 9103
#define DETECT_DEFAULT_CKPT_MS 5000
#define DETECT_CLOCK_AHEAD_MS 60000 /* partition time runs at most this far past the wall clock */
#define BATCH_MAX 10000
#define MAX_PARTITIONS 4096

enum start_pos { START_EARLIEST, START_LATEST };

/* What the service knows of one partition of truck-telemetry. */
struct part {
    int assigned;
    int64_t next_offset;  /* offset of the next record to read; -1 unknown */
    int64_t last_feed_ms; /* wall clock of the last record (or the assignment) */
    int64_t max_ts;       /* highest event time fed */
};

struct detect {
    struct fs_config *cfg;
    struct detect_rules rules;
    struct geo_fence_set fences;
    int have_fences;
    struct detect_engine *eng;
    int nparts;
    struct part *parts;
    char topic_in[256], topic_out[256];
    char dir[4096]; /* <state-dir>/<group> */
    enum start_pos start;
    int64_t ckpt_ms;

    rd_kafka_t *consumer, *producer;
    rd_kafka_topic_t *out; /* truck-alerts, held so its metadata stays known */
    const char *group;
    volatile int fatal; /* a Kafka fatal error or lost deliveries: exit 1 */
    uint64_t produced, delivered, failed;
    int dirty;              /* fed or changed since the last checkpoint */
    uint64_t gen, prev_gen; /* checkpoint generations */
    int cleaned;            /* leftovers of earlier runs removed */
    struct ckpt_writer w;

    /* The interval checkpoint runs beside the consumer loop: one partition's
     * state is copied per pass (CK_SAVING), then a thread writes and fsyncs
     * the file (CK_WRITING) while readings go on being evaluated, and the
     * loop commits the offsets once the file is durable.  A rebalance or a
     * stop abandons it for a checkpoint taken at once. */
    enum { CK_IDLE, CK_SAVING, CK_WRITING } ck_phase;
    int ck_next;                              /* next partition to copy */
    uint64_t ck_gen;                          /* generation being written */
    uint64_t ck_assign_gen;                   /* d->assign_gen when it started */
    rd_kafka_topic_partition_list_t *ck_list; /* the offsets it covers */
    int64_t ck_t0;
    pthread_t ck_thread;
    atomic_int ck_done; /* set by the writer thread */
    int ck_rc;
    char ck_err[512];
    uint64_t assign_gen; /* bumped by every assignment change */

    struct detect_stats last;
    struct metrics *metrics;
    struct metric *m_records, *m_events, *m_decode[TM_REASON_COUNT + 2], *m_raised[DR_COUNT], *m_cleared[DR_COUNT],
        *m_wallclock, *m_dups, *m_late, *m_trucks, *m_bpt, *m_held, *m_assigned, *m_event_lag, *m_ckpt_age, *m_ckpts,
        *m_ckpt_fail, *m_ckpt_bytes, *m_restored, *m_reset, *m_produced, *m_delivered, *m_failed, *m_outq;
    int64_t last_ckpt_ms;
    int lock_fd;      /* holds the state directory's lock; -1 */
    int metrics_port; /* -1: none */
};

/* Extra decode reasons after tm_reason's. */
#define DEC_PARTITION TM_REASON_COUNT     /* partition outside the topic's count at start */
#define DEC_REFUSED (TM_REASON_COUNT + 1) /* the engine refused the reading (out of memory) */

/* ---- producing alerts ------------------------------------------------------ */

static void dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    (void)rk;
    struct detect *d = opaque;
    if (m->err) {
        d->failed++;
        metric_add(d->m_failed, 1);
        log_error("alert delivery to %s failed: %s", d->topic_out, rd_kafka_err2str(m->err));
        d->fatal = 1; /* not committed past it: the restart sends it again */
        return;
    }
    d->delivered++;
    metric_add(d->m_delivered, 1);
}

static void error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    struct detect *d = opaque;
    if (err == RD_KAFKA_RESP_ERR__FATAL) {
        char why[512];
        rd_kafka_fatal_error(rk, why, sizeof(why));
        log_error("Kafka producer fatal error: %s; exiting with status 1 (restart resumes from the last checkpoint)",
                  why);
        d->fatal = 1;
        return;
    }
    log_debug("Kafka: %s: %s", rd_kafka_err2str((rd_kafka_resp_err_t)err), reason);
}

static void emit(void *ctx, const struct detect_alert *a)
{
    struct detect *d = ctx;
    char json[1024];
    size_t n = detect_alert_json(a, json, sizeof(json));
    if (a->state == DA_RAISED)
        metric_add(d->m_raised[a->rule], 1);
    else
        metric_add(d->m_cleared[a->rule], 1);
    if (a->wallclock)
        metric_add(d->m_wallclock, 1);
    if (n == 0) {
        log_error("alert of %.*s does not fit its buffer: dropped", (int)a->truck_id_len, a->truck_id);
        return;
    }
    for (;;) {
        rd_kafka_resp_err_t e =
            rd_kafka_producev(d->producer, RD_KAFKA_V_TOPIC(d->topic_out), RD_KAFKA_V_KEY(a->truck_id, a->truck_id_len),
                              RD_KAFKA_V_VALUE(json, n), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
        if (!e) {
            d->produced++;
            metric_add(d->m_produced, 1);
            return;
        }
        if (e == RD_KAFKA_RESP_ERR__QUEUE_FULL && !d->fatal) {
            rd_kafka_poll(d->producer, 100);
            continue;
        }
        log_error("cannot produce to %s: %s", d->topic_out, rd_kafka_err2str(e));
        d->fatal = 1;
        return;
    }
}

/* Waits until Kafka acknowledged every alert produced so far.  Returns 0, or
 * -1 on a fatal error / failed delivery (nothing may be committed then). */
static int producer_drain(struct detect *d)
{
    int64_t start = fs_mono_ms(), warned = start;
    while (rd_kafka_outq_len(d->producer) > 0 && !d->fatal) {
        rd_kafka_flush(d->producer, 500);
        int64_t now = fs_mono_ms();
        if (sig_stopping() && now - start >= 30000) {
            log_error("stopping with %d alert(s) unacknowledged after 30 s: not committing (the restart sends them "
                      "again)",
                      rd_kafka_outq_len(d->producer));
            return -1;
        }
        if (now - warned >= 10000) {
            log_warn("waiting %" PRId64 " s for Kafka to acknowledge %d alert(s)", (now - start) / 1000,
                     rd_kafka_outq_len(d->producer));
            warned = now;
        }
    }
    return d->fatal || d->delivered + d->failed != d->produced || d->failed ? -1 : 0;
}

/* ---- checkpoints ----------------------------------------------------------- */

/* Opens a checkpoint of generation d->gen + 1: returns the offsets list to
 * fill, or NULL when there is nothing to save. */
static rd_kafka_topic_partition_list_t *ckpt_open(struct detect *d)
{
    int n = 0;
    for (int p = 0; p < d->nparts; p++)
        if (d->parts[p].assigned && d->parts[p].next_offset >= 0)
            n++;
    if (n == 0 || !d->dirty)
        return NULL;
    ckpt_begin(&d->w);
    return rd_kafka_topic_partition_list_new(n);
}

/* Copies partition p's engine state and next offset into the checkpoint
 * being built (nothing when p is not owned or has no position). */
static void ckpt_add(struct detect *d, rd_kafka_topic_partition_list_t *l, uint64_t gen, int p)
{
    struct part *pt = &d->parts[p];
    if (!pt->assigned || pt->next_offset < 0)
        return;
    size_t at = ckpt_entry_begin(&d->w, p, pt->next_offset);
    if (at == (size_t)-1 || detect_engine_save_partition(d->eng, p, &d->w.buf, &d->w.len, &d->w.cap) != 0)
        d->w.failed = 1;
    ckpt_entry_end(&d->w, at);
    rd_kafka_topic_partition_t *tp = rd_kafka_topic_partition_list_add(l, d->topic_in, p);
    tp->offset = pt->next_offset;
    char meta[32];
    int mlen = snprintf(meta, sizeof(meta), "ckpt:%" PRIu64, gen);
    tp->metadata = malloc((size_t)mlen);
    if (tp->metadata) {
        memcpy(tp->metadata, meta, (size_t)mlen);
        tp->metadata_size = (size_t)mlen;
    }
}

/* With file ckpt-<gen> durable: waits until Kafka acknowledged every alert
 * produced so far (those of the records the file covers among them), then
 * commits the file's offsets.  Returns 0 or -1 (the file is removed, the
 * commits still name the previous one).  Takes l. */
static int ckpt_commit(struct detect *d, uint64_t gen, rd_kafka_topic_partition_list_t *l, size_t bytes,
                       const char *why, int64_t t0)
{
    rd_kafka_resp_err_t e = RD_KAFKA_RESP_ERR_NO_ERROR;
    if (producer_drain(d) != 0) {
        e = RD_KAFKA_RESP_ERR__FATAL;
    } else {
        e = rd_kafka_commit(d->consumer, l, 0);
        for (int i = 0; !e && i < l->cnt; i++)
            if (l->elems[i].err)
                e = l->elems[i].err;
    }
    int count = l->cnt;
    rd_kafka_topic_partition_list_destroy(l);
    if (e) {
        /* The commits still name the previous file: keep it. */
        log_warn("checkpoint %" PRIu64 " written but its offsets not committed: %s", gen, rd_kafka_err2str(e));
        metric_add(d->m_ckpt_fail, 1);
        ckpt_remove(d->dir, gen);
        d->dirty = 1;
        return -1;
    }
    d->gen = gen;
    if (d->prev_gen)
        ckpt_remove(d->dir, d->prev_gen);
    if (!d->cleaned) {
        ckpt_remove_others(d->dir, gen);
        d->cleaned = 1;
    }
    d->prev_gen = gen;
    d->last_ckpt_ms = fs_mono_ms();
    metric_add(d->m_ckpts, 1);
    metric_set(d->m_ckpt_bytes, (double)bytes);
    log_debug("checkpoint %" PRIu64 " (%s): %d partition(s), %zu bytes, %" PRId64 " ms", gen, why, count, bytes,
              fs_mono_ms() - t0);
    return 0;
}

static void *ckpt_writer_main(void *arg)
{
    struct detect *d = arg;
    d->ck_rc = ckpt_finish_write(&d->w, d->dir, d->ck_gen, d->ck_err, sizeof(d->ck_err));
    atomic_store(&d->ck_done, 1);
    return NULL;
}

/* Frees the checkpoint's image once its file is written (or abandoned): at
 * 1M trucks it is ~130 MB, which would otherwise stay resident between two
 * checkpoints.  An image that big is its own mapping, unmapped by free();
 * malloc_trim gives back the heap pages of smaller ones. */
static void ckpt_drop_image(struct detect *d)
{
    ckpt_writer_release(&d->w);
#ifdef __GLIBC__
    malloc_trim(0);
#endif
}

/* Drops the interval checkpoint in progress, if any: its file (written or
 * not) is never committed and is removed. */
static void ckpt_abandon(struct detect *d)
{
    if (d->ck_phase == CK_IDLE)
        return;
    if (d->ck_phase == CK_WRITING) {
        pthread_join(d->ck_thread, NULL);
        ckpt_remove(d->dir, d->ck_gen);
    }
    ckpt_drop_image(d);
    rd_kafka_topic_partition_list_destroy(d->ck_list);
    d->ck_list = NULL;
    d->ck_phase = CK_IDLE;
    d->dirty = 1;
}

/* Writes a checkpoint of every owned partition with a known position and
 * commits it, at once (a rebalance, a stop).  Returns 0 (also when there was
 * nothing to do) or -1. */
static int checkpoint(struct detect *d, const char *why)
{
    ckpt_abandon(d);
    if (d->fatal)
        return -1;
    int64_t t0 = fs_mono_ms();
    rd_kafka_topic_partition_list_t *l = ckpt_open(d);
    if (!l)
        return 0;
    uint64_t gen = d->gen + 1;
    for (int p = 0; p < d->nparts; p++)
        ckpt_add(d, l, gen, p);
    char err[512];
    size_t bytes = d->w.len;
    int rc = ckpt_finish_write(&d->w, d->dir, gen, err, sizeof(err));
    ckpt_drop_image(d);
    if (rc != 0) {
        log_error("checkpoint not written: %s", err);
        metric_add(d->m_ckpt_fail, 1);
        rd_kafka_topic_partition_list_destroy(l);
        return -1;
    }
    d->dirty = 0;
    return ckpt_commit(d, gen, l, bytes, why, t0);
}

/* One step of the interval checkpoint, called once per pass of the consumer
 * loop: start it when due, copy the next partition, hand the image to the
 * writer thread, or commit once the thread is done. */
static void ckpt_step(struct detect *d)
{
    int64_t mono = fs_mono_ms();
    switch (d->ck_phase) {
    case CK_IDLE:
        if (mono - d->last_ckpt_ms < d->ckpt_ms)
            return;
        d->ck_list = ckpt_open(d);
        if (!d->ck_list) {
            d->last_ckpt_ms = mono;
            return;
        }
        d->ck_gen = d->gen + 1;
        d->ck_next = 0;
        d->ck_t0 = mono;
        d->ck_assign_gen = d->assign_gen;
        d->dirty = 0; /* what changes from here on goes into the next one */
        d->ck_phase = CK_SAVING;
        return;
    case CK_SAVING:
        if (d->ck_assign_gen != d->assign_gen) {
            ckpt_abandon(d);
            return;
        }
        while (d->ck_next < d->nparts && !(d->parts[d->ck_next].assigned && d->parts[d->ck_next].next_offset >= 0))
            d->ck_next++;
        if (d->ck_next < d->nparts) {
            ckpt_add(d, d->ck_list, d->ck_gen, d->ck_next++);
            return;
        }
        atomic_store(&d->ck_done, 0);
        if (d->ck_list->cnt == 0 || pthread_create(&d->ck_thread, NULL, ckpt_writer_main, d) != 0) {
            if (d->ck_list->cnt)
                log_warn("cannot start the checkpoint writer: retried at the next interval");
            ckpt_abandon(d);
            d->last_ckpt_ms = mono;
            return;
        }
        d->ck_phase = CK_WRITING;
        return;
    case CK_WRITING:
        if (!atomic_load(&d->ck_done))
            return;
        pthread_join(d->ck_thread, NULL);
        d->ck_phase = CK_IDLE;
        size_t bytes = d->w.len;
        ckpt_drop_image(d);
        rd_kafka_topic_partition_list_t *l = d->ck_list;
        d->ck_list = NULL;
        if (d->ck_rc != 0 || d->ck_assign_gen != d->assign_gen) {
            if (d->ck_rc != 0) {
                log_error("checkpoint not written: %s", d->ck_err);
                metric_add(d->m_ckpt_fail, 1);
            }
            ckpt_remove(d->dir, d->ck_gen);
            rd_kafka_topic_partition_list_destroy(l);
            d->dirty = 1;
            d->last_ckpt_ms = mono; /* retried at the next interval */
            return;
        }
        if (ckpt_commit(d, d->ck_gen, l, bytes, "interval", d->ck_t0) != 0)
            d->last_ckpt_ms = mono;
        return;
    }
}

/* ---- assignment ------------------------------------------------------------ */

static void on_assign(struct detect *d, rd_kafka_topic_partition_list_t *parts)
{
    rd_kafka_resp_err_t e = RD_KAFKA_RESP_ERR_NO_ERROR;
    for (int attempt = 0; attempt < 3; attempt++) {
        e = rd_kafka_committed(d->consumer, parts, 10000);
        if (!e)
            break;
        log_warn("cannot read the committed offsets (%s): %s", rd_kafka_err2str(e),
                 attempt < 2 ? "retrying" : "resuming where the group left off, from a reset state");
    }
    struct ckpt_file f = {0};
    int restored = 0, no_commit = 0, moved = 0;
    int64_t now = fs_mono_ms();
    for (int i = 0; i < parts->cnt; i++) {
        rd_kafka_topic_partition_t *tp = &parts->elems[i];
        int p = tp->partition;
        if (p < 0 || p >= d->nparts) {
            log_error("partition %d of %s is beyond the %d the topic had at start: restart the detector to read it", p,
                      tp->topic, d->nparts);
            continue;
        }
        struct part *pt = &d->parts[p];
        pt->assigned = 1;
        pt->last_feed_ms = now;
        pt->max_ts = 0;
        if (e) {
            /* Let librdkafka use the committed offset (or --start). */
            detect_engine_reset_partition(d->eng, p);
            tp->offset = RD_KAFKA_OFFSET_STORED;
            pt->next_offset = -1;
            moved++;
            continue;
        }
        if (tp->offset >= 0) {
            uint64_t gen;
            const char *data;
            size_t len;
            char err[512];
            int ok = 0;
            if (ckpt_parse_meta(tp->metadata, tp->metadata_size, &gen)) {
                if (gen > d->gen)
                    d->gen = gen;
                if (f.gen != gen) {
                    ckpt_file_release(&f);
                    if (ckpt_read(d->dir, gen, &f, err, sizeof(err)) != 0)
                        log_warn("partition %d: %s", p, err);
                }
                if (ckpt_find(&f, p, tp->offset, &data, &len)) {
                    ok = detect_engine_load_partition(d->eng, p, data, len) == 0;
                    if (!ok)
                        log_warn("partition %d: checkpoint %" PRIu64 " refused by the engine", p, gen);
                } else if (f.buf) {
                    log_warn("partition %d: checkpoint %" PRIu64 " has no state at offset %" PRId64, p, gen,
                             (int64_t)tp->offset);
                }
            }
            if (ok) {
                restored++;
            } else {
                detect_engine_reset_partition(d->eng, p);
                moved++;
            }
            pt->next_offset = tp->offset;
            continue;
        }
        /* No commit: --start. */
        detect_engine_reset_partition(d->eng, p);
        no_commit++;
        int64_t lo, hi;
        if (rd_kafka_query_watermark_offsets(d->consumer, tp->topic, p, &lo, &hi, 5000) == 0) {
            tp->offset = d->start == START_EARLIEST ? lo : hi;
            pt->next_offset = tp->offset;
        } else {
            tp->offset = d->start == START_EARLIEST ? RD_KAFKA_OFFSET_BEGINNING : RD_KAFKA_OFFSET_END;
            pt->next_offset = -1;
        }
    }
    ckpt_file_release(&f);
    rd_kafka_assign(d->consumer, parts);
    d->assign_gen++;
    d->dirty = 1;
    metric_add(d->m_restored, (uint64_t)restored);
    metric_add(d->m_reset, (uint64_t)(moved + no_commit));
    int assigned = 0;
    for (int p = 0; p < d->nparts; p++)
        assigned += d->parts[p].assigned;
    metric_set(d->m_assigned, assigned);
    log_info("assigned %d partition(s) of %s: %d restored from checkpoint, %d reset at the committed offset "
             "(replayed or no checkpoint), %d reset with no commit (--start %s)",
             parts->cnt, d->topic_in, restored, moved, no_commit, d->start == START_EARLIEST ? "earliest" : "latest");
}

static void on_revoke(struct detect *d, rd_kafka_topic_partition_list_t *parts, int lost)
{
    if (!lost && !d->fatal)
        checkpoint(d, "revoke");
    for (int i = 0; i < parts->cnt; i++) {
        int p = parts->elems[i].partition;
        if (p < 0 || p >= d->nparts)
            continue;
        detect_engine_reset_partition(d->eng, p);
        d->parts[p].assigned = 0;
        d->parts[p].next_offset = -1;
    }
    rd_kafka_assign(d->consumer, NULL);
    d->assign_gen++;
    metric_set(d->m_assigned, 0);
    log_info("%s %d partition(s)", lost ? "lost" : "revoked", parts->cnt);
}

static void rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t *parts, void *opaque)
{
    struct detect *d = opaque;
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS)
        on_assign(d, parts);
    else
        on_revoke(d, parts, rd_kafka_assignment_lost(rk));
}

/* ---- records ----------------------------------------------------------------- */

static void handle(struct detect *d, const rd_kafka_message_t *m, int64_t now)
{
    int p = m->partition;
    metric_add(d->m_records, 1);
    if (p < 0 || p >= d->nparts) {
        metric_add(d->m_decode[DEC_PARTITION], 1);
        return;
    }
    struct part *pt = &d->parts[p];
    if (!pt->assigned)
        return; /* fetched before a revoke */
    pt->next_offset = m->offset + 1;
    pt->last_feed_ms = fs_mono_ms();
    d->dirty = 1;

    struct tm_fast f;
    char norm[TM_MAX_PAYLOAD + 1];
    int normalized;
    enum tm_reason why = tm_read(m->payload, m->len, now, norm, sizeof(norm), &normalized, &f, NULL, 0);
    if (why != TM_OK) {
        metric_add(d->m_decode[why], 1);
        return;
    }
    struct detect_reading dr = {
        .truck_id = f.truck_id.p,
        .truck_id_len = f.truck_id.n,
        .ts_ms = f.ts_ms,
        .seq = f.seq,
        .lat = f.lat,
        .lon = f.lon,
        .speed_kmh = f.speed_kmh,
        .ignition = f.ignition,
        .fuel_pct = f.fuel_s.n ? f.fuel_pct : NAN,
    };
    detect_engine_cap_time(d->eng, now + DETECT_CLOCK_AHEAD_MS);
    if (detect_engine_feed(d->eng, p, &dr) != 0) {
        metric_add(d->m_decode[DEC_REFUSED], 1);
        return;
    }
    metric_add(d->m_events, 1);
    if (f.ts_ms > pt->max_ts)
        pt->max_ts = f.ts_ms;
}

static void update_metrics(struct detect *d)
{
    struct detect_stats s;
    detect_engine_stats(d->eng, &s);
    metric_add(d->m_dups, s.duplicates - d->last.duplicates);
    metric_add(d->m_late, s.too_late - d->last.too_late);
    d->last = s;
    metric_set(d->m_trucks, (double)s.trucks);
    metric_set(d->m_held, (double)s.held);
    metric_set(d->m_bpt, (double)detect_engine_bytes_per_truck(d->eng));
    metric_set(d->m_outq, rd_kafka_outq_len(d->producer));
    int64_t max_ts = 0;
    for (int p = 0; p < d->nparts; p++)
        if (d->parts[p].assigned && d->parts[p].max_ts > max_ts)
            max_ts = d->parts[p].max_ts;
    metric_set(d->m_event_lag, max_ts ? (double)(fs_wall_ms() - max_ts) / 1000.0 : 0);
    metric_set(d->m_ckpt_age, d->last_ckpt_ms ? (double)(fs_mono_ms() - d->last_ckpt_ms) / 1000.0 : 0);
}

/* The wall-clock fallback of `offline` for partitions that receive nothing. */
static void idle_check(struct detect *d)
{
    int64_t mono = fs_mono_ms(), now = fs_wall_ms();
    for (int p = 0; p < d->nparts; p++) {
        struct part *pt = &d->parts[p];
        if (!pt->assigned || mono - pt->last_feed_ms < d->rules.offline_min_ms)
            continue;
        uint64_t before = d->produced;
        detect_engine_idle(d->eng, p, now, mono - pt->last_feed_ms);
        if (d->produced != before)
            d->dirty = 1;
    }
}

static int run(struct detect *d)
{
    int64_t last_tick = fs_mono_ms();
    d->last_ckpt_ms = last_tick;
    while (!sig_stopping() && !d->fatal) {
        if (kafka_consumer_fatal(d->consumer, d->group)) {
            d->fatal = 1; /* no checkpoint: the restart resumes from the last one */
            break;
        }
        rd_kafka_message_t *m = rd_kafka_consumer_poll(d->consumer, 100);
        int64_t now = fs_wall_ms();
        for (int n = 0; m; n++) {
            if (m->err) {
                if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
                    log_warn("consumer: %s", rd_kafka_message_errstr(m));
            } else if (strcmp(rd_kafka_topic_name(m->rkt), d->topic_in) == 0) {
                handle(d, m, now);
            }
            rd_kafka_message_destroy(m);
            if (n + 1 >= BATCH_MAX || d->fatal)
                break;
            m = rd_kafka_consumer_poll(d->consumer, 0);
        }
        rd_kafka_poll(d->producer, 0);
        ckpt_step(d);
        int64_t mono = fs_mono_ms();
        if (mono - last_tick >= 1000) {
            idle_check(d);
            update_metrics(d);
            last_tick = mono;
        }
    }
    return d->fatal ? 1 : 0;
}

/* ---- command line ------------------------------------------------------------ */

static const char detect_about[] = "The detector: consumer group fleetsync-detector reads truck-telemetry, runs the\n"
                                   "per-truck rules in event time (the reading's ts) and writes raised / cleared\n"
                                   "alert records to truck-alerts (key = truck_id, alert_id = truck:rule:started_ms).\n"
                                   "Rules (defaults; see --print-rules and docs/detect.md):\n"
                                   "  stationary_engine_on  engine on within 50 m of where it stopped for 20 min\n"
                                   "  moving_ignition_off   ignition off while moving >= 10 km/h for 60 s (towing)\n"
                                   "  gps_jump              implied speed > 250 km/h over >= 1 km\n"
                                   "  fuel_drop             fuel falls > 10 % within 5 min while parked\n"
                                   "  geofence_exit         leaves a fence of --geofences during its active window\n"
                                   "  overspeed             > 100 km/h for 60 s\n"
                                   "  offline               no reading for 10 min of the partition's event time";

static const char detect_after[] = "Recovery: after a crash (even kill -9) the detector resumes from its last\n"
                                   "checkpoint and emits the same (alert_id, state) records an uninterrupted run\n"
                                   "would, possibly twice (consumers are idempotent on alert_id + state). After\n"
                                   "`fleetsync replay --group fleetsync-detector --since 2h` it resets its state and\n"
                                   "warms up from the new position: incidents starting after it come out again with\n"
                                   "the same alert_id.\n"
                                   "\n"
                                   "Metrics on --metrics-port (default 9103): fleetsync_detect_events_total,\n"
                                   "fleetsync_detect_alerts_total{rule,state}, _duplicates_total, _too_late_total,\n"
                                   "_decode_errors_total{reason}, _trucks, _bytes_per_truck, _event_lag_seconds, ...\n"
                                   "Exit status: 0 after a clean stop (SIGINT/SIGTERM: checkpoint, flush, commit),\n"
                                   "1 runtime failure (a Kafka fatal error: restart it), 2 usage error.";

/* What the command line asks for, before anything is opened. */
struct detect_args {
    const char *rules_file, *fences_file, *state_dir;
    int print_rules;
    int lateness_s; /* -1: the rules' */
    int ckpt_ms;
    enum start_pos start;
};

static int parse_start(void *value, const char *arg, char *err, size_t err_size)
{
    if (strcmp(arg, "earliest") == 0) {
        *(enum start_pos *)value = START_EARLIEST;
    } else if (strcmp(arg, "latest") == 0) {
        *(enum start_pos *)value = START_LATEST;
    } else {
        snprintf(err, err_size, "earliest or latest, not '%s'", arg);
        return -1;
    }
    return 0;
}

/* Parses the command line into a (and the shared options into d->cfg), then
 * reads --rules and --lateness into d->rules.  Returns OPT_PARSED, OPT_HELP
 * (the help went to stdout) or OPT_USAGE_ERROR (said why on stderr). */
static int detect_parse(struct detect *d, struct detect_args *a, int argc, char **argv)
{
    const struct opt opts[] = {
        OPT_STR("rules", "FILE", &a->rules_file, "thresholds as JSON (any subset of --print-rules' output)"),
        OPT_BOOLEAN("print-rules", &a->print_rules, "print the rules in effect (defaults, or --rules) and exit"),
        OPT_STR("geofences", "FILE", &a->fences_file, "GeoJSON fences for geofence_exit (as fleetsync sim reads them)"),
        OPT_INTEGER("lateness", "S", &a->lateness_s, 0, 86400,
                    "hold readings S seconds to order each truck's by ts, for\n"
                    "sources that reorder (seconds; default 0: each reading is\n"
                    "evaluated on arrival, in log order; or lateness_s of --rules)"),
        OPT_INTEGER("checkpoint-ms", "N", &a->ckpt_ms, 100, 3600000,
                    "save state + commit offsets every N ms (default 5000)"),
        OPT_STR("state-dir", "DIR", &a->state_dir, "checkpoint files go to DIR/<group>/ (default <data-dir>/detect)"),
        OPT_CB("start", "earliest|latest", &a->start, parse_start,
               "where a group with no committed offset starts (default\n"
               "earliest: the whole topic, nothing missed; latest: from now on)"),
        OPT_END_MARK,
    };
    const struct opt_command cmd = {
        .no_args = 1,
        .name = "detect",
        .usage = "fleetsync detect [options]",
        .about = detect_about,
        .after = detect_after,
        .opts = opts,
        .shared = 1,
    };
    char err[1024];
    int rest, rc = opt_parse(&cmd, d->cfg, argc, argv, &rest);
    if (rc != OPT_PARSED)
        return rc;
    if (a->rules_file && detect_rules_load_file(a->rules_file, &d->rules, err, sizeof(err)) != 0) {
        fprintf(stderr, "fleetsync detect: %s\n", err);
        return OPT_USAGE_ERROR;
    }
    if (a->lateness_s >= 0)
        d->rules.lateness_ms = (int64_t)a->lateness_s * 1000;
    d->ckpt_ms = a->ckpt_ms;
    d->start = a->start;
    return OPT_PARSED;
}

/* Loads --geofences and checks the group's name.  Returns 0, or
 * OPT_USAGE_ERROR after saying why. */
static int detect_configure(struct detect *d, const struct detect_args *a)
{
    char err[1024];
    if (a->fences_file) {
        if (geo_fences_load_file(a->fences_file, &d->fences, err, sizeof(err)) != 0) {
            fprintf(stderr, "fleetsync detect: %s\n", err);
            return OPT_USAGE_ERROR;
        }
        d->have_fences = 1;
    }
    d->group = d->cfg->group ? d->cfg->group : DETECT_DEFAULT_GROUP;
    if (strchr(d->group, '/') || strcmp(d->group, ".") == 0 || strcmp(d->group, "..") == 0) {
        fprintf(stderr, "fleetsync detect: --group '%s' cannot name a state directory (no '/')\n", d->group);
        return OPT_USAGE_ERROR;
    }
    return 0;
}

static int mkdir_p(const char *path)
{
    char tmp[4096];
    snprintf(tmp, sizeof(tmp), "%s", path);
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(tmp, 0700) != 0 && errno != EEXIST)
            return -1;
        *p = '/';
    }
    return mkdir(tmp, 0700) != 0 && errno != EEXIST ? -1 : 0;
}

static void register_metrics(struct detect *d)
{
    struct metrics *m = d->metrics;
    d->m_records = metrics_counter(m, "fleetsync_detect_records_total", "Telemetry records consumed.", NULL);
    d->m_events = metrics_counter(m, "fleetsync_detect_events_total", "Readings fed to the rules.", NULL);
    for (int i = 1; i < TM_REASON_COUNT + 2; i++) {
        char label[64];
        const char *name = i == DEC_PARTITION ? "unknown_partition"
                           : i == DEC_REFUSED ? "engine_refused"
                                              : tm_reason_name((enum tm_reason)i);
        snprintf(label, sizeof(label), "reason=\"%s\"", name);
        d->m_decode[i] = metrics_counter(m, "fleetsync_detect_decode_errors_total",
                                         "Records skipped, by reason (tm_parse's).", label);
    }
    for (int r = 0; r < DR_COUNT; r++) {
        char label[96];
        snprintf(label, sizeof(label), "rule=\"%s\",state=\"raised\"", detect_rule_name((enum detect_rule)r));
        d->m_raised[r] =
            metrics_counter(m, "fleetsync_detect_alerts_total", "Alerts emitted, by rule and state.", label);
        snprintf(label, sizeof(label), "rule=\"%s\",state=\"cleared\"", detect_rule_name((enum detect_rule)r));
        d->m_cleared[r] =
            metrics_counter(m, "fleetsync_detect_alerts_total", "Alerts emitted, by rule and state.", label);
    }
    d->m_wallclock = metrics_counter(m, "fleetsync_detect_wallclock_offline_total",
                                     "offline alerts raised by the wall-clock fallback (silent partition).", NULL);
    d->m_dups = metrics_counter(m, "fleetsync_detect_duplicates_total", "Readings seen before (truck, ts, seq).", NULL);
    d->m_late =
        metrics_counter(m, "fleetsync_detect_too_late_total",
                        "Readings older than one already processed for the truck: skipped by every rule.", NULL);
    d->m_trucks = metrics_gauge(m, "fleetsync_detect_trucks", "Trucks with state in memory.", NULL);
    d->m_bpt = metrics_gauge(m, "fleetsync_detect_bytes_per_truck", "Engine memory per truck (table + state).", NULL);
    d->m_held = metrics_gauge(m, "fleetsync_detect_held_readings",
                              "Readings waiting for the lateness bound (0 without --lateness).", NULL);
    d->m_assigned = metrics_gauge(m, "fleetsync_detect_partitions_assigned", "Partitions owned.", NULL);
    d->m_event_lag = metrics_gauge(m, "fleetsync_detect_event_lag_seconds",
                                   "Wall clock minus the newest event time read (how far behind live).", NULL);
    d->m_ckpt_age =
        metrics_gauge(m, "fleetsync_detect_checkpoint_age_seconds", "Time since the last checkpoint.", NULL);
    d->m_ckpts = metrics_counter(m, "fleetsync_detect_checkpoints_total", "Checkpoints written and committed.", NULL);
    d->m_ckpt_fail = metrics_counter(m, "fleetsync_detect_checkpoint_failures_total",
                                     "Checkpoints not written or not committed.", NULL);
    d->m_ckpt_bytes = metrics_gauge(m, "fleetsync_detect_checkpoint_bytes", "Size of the last checkpoint.", NULL);
    d->m_restored = metrics_counter(m, "fleetsync_detect_partitions_restored_total",
                                    "Assigned partitions whose state came from a checkpoint.", NULL);
    d->m_reset = metrics_counter(m, "fleetsync_detect_partitions_reset_total",
                                 "Assigned partitions that started from a reset state (no checkpoint, replay).", NULL);
    d->m_produced =
        metrics_counter(m, "fleetsync_detect_alerts_produced_total", "Alert records handed to Kafka.", NULL);
    d->m_delivered =
        metrics_counter(m, "fleetsync_detect_alerts_delivered_total", "Alert records acknowledged by Kafka.", NULL);
    d->m_failed = metrics_counter(m, "fleetsync_detect_alerts_failed_total", "Alert records Kafka refused.", NULL);
    d->m_outq = metrics_gauge(m, "fleetsync_detect_producer_queue", "Alert records waiting for acknowledgement.", NULL);
}

/* The partition count of the input topic (waits up to 30 s for it). */
static int topic_partitions(rd_kafka_t *rk, const char *topic, char *err, size_t err_size)
{
    for (int attempt = 0; attempt < 30 && !sig_stopping(); attempt++) {
        rd_kafka_topic_t *t = rd_kafka_topic_new(rk, topic, NULL);
        const struct rd_kafka_metadata *md = NULL;
        rd_kafka_resp_err_t e = rd_kafka_metadata(rk, 0, t, &md, 5000);
        rd_kafka_topic_destroy(t);
        int n = -1;
        if (!e && md->topic_cnt == 1 && !md->topics[0].err)
            n = md->topics[0].partition_cnt;
        else
            snprintf(err, err_size, "%s", e ? rd_kafka_err2str(e) : rd_kafka_err2str(md->topics[0].err));
        if (md)
            rd_kafka_metadata_destroy(md);
        if (n > 0)
            return n;
        sleep(1);
    }
    return -1;
}

/* Creates <state-dir>/<group> and takes its lock (one detector per state
 * directory).  Returns 0, or -1 after logging why. */
static int detect_open_state(struct detect *d, const char *state_dir)
{
    char base[3072];
    if (state_dir)
        snprintf(base, sizeof(base), "%s", state_dir);
    else
        snprintf(base, sizeof(base), "%s/detect", d->cfg->data_dir);
    snprintf(d->dir, sizeof(d->dir), "%s/%s", base, d->group);
    if (mkdir_p(d->dir) != 0) {
        log_error("cannot create the state directory %s: %s", d->dir, strerror(errno));
        return -1;
    }
    char lock_path[4200];
    snprintf(lock_path, sizeof(lock_path), "%s/lock", d->dir);
    d->lock_fd = open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (d->lock_fd < 0 || flock(d->lock_fd, LOCK_EX | LOCK_NB) != 0) {
        log_error("%s is in use by another detector of group %s (one process per state directory: give "
                  "--state-dir): %s",
                  d->dir, d->group, strerror(errno));
        return -1;
    }
    d->gen = ckpt_max_gen(d->dir);
    return 0;
}

/* Registers the metrics and serves them on --metrics-port (default 9103,
 * -1: not served).  Returns 0, or -1 after logging why. */
static int detect_start_metrics(struct detect *d)
{
    char err[1024];
    d->metrics = metrics_new();
    if (!d->metrics) {
        log_error("out of memory");
        return -1;
    }
    register_metrics(d);
    d->metrics_port = d->cfg->metrics_port == 0 ? DETECT_DEFAULT_METRICS_PORT : d->cfg->metrics_port;
    if (d->metrics_port > 0 && metrics_serve(d->metrics, "127.0.0.1", d->metrics_port, err, sizeof(err)) != 0) {
        log_error("%s", err);
        return -1;
    }
    return 0;
}

/* The idempotent alert producer.  Returns 0, or -1 after logging why. */
static int detect_producer_new(struct detect *d)
{
    static const char *const defaults[] = {
        KAFKA_RELIABLE_PRODUCER_DEFAULTS,
        "client.id",
        "fleetsync-detect",
        NULL,
    };
    char err[1024];
    rd_kafka_conf_t *conf = kafka_conf_new(d->cfg, defaults, err, sizeof(err));
    if (!conf) {
        log_error("%s", err);
        return -1;
    }
    rd_kafka_conf_set_opaque(conf, d);
    rd_kafka_conf_set_dr_msg_cb(conf, dr_cb);
    rd_kafka_conf_set_error_cb(conf, error_cb);
    d->producer = kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
    if (!d->producer) {
        log_error("cannot create the Kafka producer: %s", err);
        return -1;
    }
    /* Learn where truck-alerts' partitions live now, not when the first
     * alert is produced: that lookup would add a metadata round trip and
     * the refresh interval (hundreds of ms) to the first alert's delay. */
    d->out = rd_kafka_topic_new(d->producer, d->topic_out, NULL);
    const struct rd_kafka_metadata *md = NULL;
    if (d->out && rd_kafka_metadata(d->producer, 0, d->out, &md, 5000) == RD_KAFKA_RESP_ERR_NO_ERROR)
        rd_kafka_metadata_destroy(md);
    return 0;
}

/* The telemetry consumer (manual commits, our rebalance callback), once
 * Kafka answers.  Returns 0, or -1 after logging why. */
static int detect_consumer_new(struct detect *d)
{
    static const char *const defaults[] = {
        KAFKA_TELEMETRY_CONSUMER_DEFAULTS,
        "group.id",
        DETECT_DEFAULT_GROUP,
        "client.id",
        "fleetsync-detect",
        "enable.auto.commit",
        "false",
        "enable.auto.offset.store",
        "false",
        "enable.partition.eof",
        "false",
        NULL,
    };
    char err[1024];
    rd_kafka_conf_t *conf = kafka_conf_new(d->cfg, defaults, err, sizeof(err));
    if (!conf) {
        log_error("%s", err);
        return -1;
    }
    if (rd_kafka_conf_set(conf, "group.id", d->group, err, sizeof(err)) != RD_KAFKA_CONF_OK ||
        rd_kafka_conf_set(conf, "auto.offset.reset", d->start == START_EARLIEST ? "earliest" : "latest", err,
                          sizeof(err)) != RD_KAFKA_CONF_OK) {
        rd_kafka_conf_destroy(conf);
        log_error("%s", err);
        return -1;
    }
    rd_kafka_conf_set_rebalance_cb(conf, rebalance_cb);
    rd_kafka_conf_set_opaque(conf, d);
    d->consumer = kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err));
    if (!d->consumer) {
        log_error("cannot create the Kafka consumer: %s", err);
        return -1;
    }
    rd_kafka_poll_set_consumer(d->consumer);
    if (kafka_wait_ready(d->consumer, 30000, err, sizeof(err)) != 0) {
        log_error("cannot reach Kafka at %s: %s", d->cfg->brokers, err);
        return -1;
    }
    return 0;
}

/* Sizes the engine to the input topic's partitions and subscribes to it.
 * Returns 0, or -1 after logging why. */
static int detect_subscribe(struct detect *d)
{
    char err[1024];
    d->nparts = topic_partitions(d->consumer, d->topic_in, err, sizeof(err));
    if (d->nparts <= 0 || d->nparts > MAX_PARTITIONS) {
        log_error("cannot read the partitions of %s: %s (fleetsync services start --topic-prefix P creates the "
                  "topics)",
                  d->topic_in, d->nparts > 0 ? "too many" : err);
        return -1;
    }
    d->parts = calloc((size_t)d->nparts, sizeof(*d->parts));
    d->eng = d->parts ? detect_engine_new(&d->rules, d->have_fences ? &d->fences : NULL, d->nparts, emit, d) : NULL;
    if (!d->eng) {
        log_error("out of memory for the engine");
        return -1;
    }
    for (int p = 0; p < d->nparts; p++)
        d->parts[p].next_offset = -1;

    rd_kafka_topic_partition_list_t *subs = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(subs, d->topic_in, RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t se = rd_kafka_subscribe(d->consumer, subs);
    rd_kafka_topic_partition_list_destroy(subs);
    if (se) {
        log_error("cannot subscribe to %s: %s", d->topic_in, rd_kafka_err2str(se));
        return -1;
    }
    return 0;
}

/* Opens everything the service needs, in order: state directory, metrics,
 * producer, consumer, engine and subscription.  Returns 0, or -1 after
 * logging why (what was opened is released by detect_release). */
static int detect_setup(struct detect *d, const struct detect_args *a)
{
    if (detect_open_state(d, a->state_dir) != 0)
        return -1;
    cfg_topic(d->cfg, TOPIC_TELEMETRY, d->topic_in, sizeof(d->topic_in));
    cfg_topic(d->cfg, TOPIC_ALERTS, d->topic_out, sizeof(d->topic_out));
    sig_install();
    if (detect_start_metrics(d) != 0 || detect_producer_new(d) != 0 || detect_consumer_new(d) != 0 ||
        detect_subscribe(d) != 0)
        return -1;
    log_info("consuming %s (%d partitions) from %s as group %s, alerts to %s; %d fence(s); lateness %" PRId64
             " s; checkpoints every %" PRId64 " ms in %s; metrics on %d",
             d->topic_in, d->nparts, d->cfg->brokers, d->group, d->topic_out, d->have_fences ? (int)d->fences.count : 0,
             d->rules.lateness_ms / 1000, d->ckpt_ms, d->dir, d->metrics_port);
    return 0;
}

/* Consumes until a stop or a fatal error; a clean stop ends with a
 * checkpoint.  Returns the exit status: 0, or 1 after a fatal error or a
 * failed last checkpoint. */
static int detect_serve(struct detect *d)
{
    int rc = run(d);
    if (rc == 0 && checkpoint(d, "stop") != 0)
        rc = 1;
    update_metrics(d);
    log_info("stopping: %" PRIu64 " readings, %" PRIu64 " alerts produced, %" PRIu64 " acknowledged, %" PRIu64
             " trucks",
             d->last.processed, d->produced, d->delivered, d->last.trucks);
    return rc;
}

/* Releases whatever detect_setup opened (any part of it may be missing). */
static void detect_release(struct detect *d)
{
    ckpt_abandon(d); /* after a fatal error: the writer thread joined, nothing committed */
    if (d->consumer) {
        /* Leaves the group; the revoke callback checkpoints (nothing left to do
         * after a clean stop; skipped after a fatal error). */
        kafka_consumer_destroy(d->consumer);
    }
    if (d->producer) {
        if (!d->fatal)
            rd_kafka_flush(d->producer, 10000);
        if (d->out)
            rd_kafka_topic_destroy(d->out);
        rd_kafka_destroy(d->producer);
    }
    detect_engine_free(d->eng);
    free(d->parts);
    ckpt_writer_release(&d->w);
    if (d->have_fences)
        geo_fence_set_release(&d->fences);
    metrics_free(d->metrics);
    if (d->lock_fd >= 0)
        close(d->lock_fd);
}

int cmd_detect(int argc, char **argv)
{
    struct fs_config cfg;
    struct detect d;
    struct detect_args a = {.lateness_s = -1, .ckpt_ms = DETECT_DEFAULT_CKPT_MS, .start = START_EARLIEST};
    int rc;

    cfg_init(&cfg);
    cfg.kafka_user = KA_USER_DETECT;
    memset(&d, 0, sizeof(d));
    d.cfg = &cfg;
    d.lock_fd = -1;
    detect_rules_defaults(&d.rules);
    if (opt_leave(detect_parse(&d, &a, argc, argv), &rc))
        goto out;
    if (a.print_rules) {
        detect_rules_print(&d.rules, stdout);
        rc = 0;
        goto out;
    }
    if (detect_configure(&d, &a) != 0) {
        rc = 2;
        goto out;
    }
    rc = detect_setup(&d, &a) == 0 ? detect_serve(&d) : 1;
out:
    detect_release(&d);
    cfg_release(&cfg);
    return rc;
}
