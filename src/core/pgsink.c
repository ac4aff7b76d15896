/*
 * pgsink.c - exactly-once Kafka -> PostgreSQL sink (see pgsink.h).
 */
#include "core/pgsink.h"

#include "core/clock.h"
#include "core/config.h"
#include "core/grow.h"
#include "core/kafka.h"
#include "core/log.h"
#include "core/pg.h"
#include "core/sig.h"
#include "core/sinkoffsets.h"
#include "core/topics.h"

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SINK_MAX_BACKOFF_MS 10000
#define SINK_HOLD_IDLE_MS 1000 /* what is held is written once no record came for this long */

/* What this process knows of one assigned partition. */
struct tp {
    char topic[256];
    int32_t partition;
    int64_t expected; /* sink_offsets.next_offset as we last saw it; -1 = no row */
    int64_t next;     /* one past the last offset in the current batch; -1 = none */
    int64_t loaded;   /* what load_offsets() is reading into expected */
    int64_t held;     /* one past the last offset the pipeline holds in memory; -1 = none */
    int64_t pending;  /* what the flush running in the background stores; -1 = none */
};

struct sink {
    const struct pgsink_options *o;
    const struct pgsink_ops *ops;
    void *ctx;
    rd_kafka_t *rk;
    PGconn *conn;
    struct tp *tps;
    size_t tp_count, tp_cap;
    rd_kafka_message_t **batch;
    rd_kafka_message_t **chunk; /* what one consume call returned */
    size_t n;
    int64_t first_ms;
    int64_t next_tick_ms;
    int64_t last_write_ms; /* the last transaction that stored what was held */
    int64_t last_msg_ms;   /* the last record received */
    int holding;           /* the pipeline holds batches not yet written */
    int hold_paused;       /* after a failure: no holding until a batch commits */
    int fatal;
    /* A state flush committing in the background (pgsink.h, finish): its
     * thread owns conn until job_done; hold() reads on rconn meanwhile. */
    int job_on, job_thread_on;
    pthread_t job_thread;
    atomic_int job_done;
    int job_result; /* enum attempt */
    size_t job_count;
    int64_t job_t0;
    char job_err[1024];
    PGconn *rconn;
    rd_kafka_queue_t *q; /* the consumer's queue: the flush's thread wakes its poll when it ends */
    rd_kafka_t *dlq;     /* producer of dead letters, made on the first one */
    char dlq_topic[256];
    struct metric *m_messages, *m_batches, *m_db_errors, *m_conflicts, *m_db_up, *m_batch_size, *m_batch_seconds;
    struct metric *m_dead_refused, *m_dead_database;
};

/* Sleeps up to ms, waking early on a stop request. */
static void nap(int ms)
{
    struct pollfd p = {.fd = sig_fd(), .events = POLLIN};
    if (!sig_stopping())
        poll(&p, 1, ms);
}

static struct tp *tp_find(struct sink *s, const char *topic, int32_t partition, int create)
{
    for (size_t i = 0; i < s->tp_count; i++)
        if (s->tps[i].partition == partition && strcmp(s->tps[i].topic, topic) == 0)
            return &s->tps[i];
    if (!create)
        return NULL;
    if (grow_one(&s->tps, &s->tp_cap, s->tp_count, sizeof(*s->tps), 32) != 0)
        return NULL;
    struct tp *t = &s->tps[s->tp_count++];
    snprintf(t->topic, sizeof(t->topic), "%s", topic);
    t->partition = partition;
    t->expected = -1;
    t->next = -1;
    t->loaded = -1;
    t->held = -1;
    t->pending = -1;
    return t;
}

static void drop_batch(struct sink *s)
{
    for (size_t i = 0; i < s->n; i++)
        rd_kafka_message_destroy(s->batch[i]);
    s->n = 0;
    for (size_t i = 0; i < s->tp_count; i++)
        s->tps[i].next = -1;
}

static void db_down(struct sink *s)
{
    if (s->rconn) {
        PQfinish(s->rconn);
        s->rconn = NULL;
    }
    if (s->conn) {
        PQfinish(s->conn);
        s->conn = NULL;
    }
    if (s->m_db_up)
        metric_set(s->m_db_up, 0);
}

/* Connects (and migrates) unless connected.  0 on success. */
static int db_ensure(struct sink *s, char *err, size_t err_size)
{
    if (s->conn && PQstatus(s->conn) == CONNECTION_OK)
        return 0;
    db_down(s);
    s->conn = pg_connect(s->o->cfg, s->o->group, err, err_size);
    if (!s->conn)
        return -1;
    if (pg_migrate(s->conn, err, err_size) < 0) {
        db_down(s);
        return -1;
    }
    /* A commit acknowledged before its WAL is flushed: a server crash
     * loses the last transactions' rows and offsets together, the stored
     * offsets then lie behind what this process expects, its next
     * transaction finds them moved and re-reads from them (see pgsink.h). */
    if (pg_exec(s->conn, "SET synchronous_commit = off", err, err_size) < 0) {
        db_down(s);
        return -1;
    }
    if (s->m_db_up)
        metric_set(s->m_db_up, 1);
    s->next_tick_ms = 0;
    return 0;
}

/* One stored row: the offset of a known partition. */
static int load_row(void *ctx, const struct sinkoff_row *row, char *err, size_t err_size)
{
    (void)err;
    (void)err_size;
    struct tp *t = tp_find(ctx, row->topic, row->partition, 0);
    if (t)
        t->loaded = row->next_offset;
    return 0;
}

/* Loads every stored offset of the group into the known partitions; a
 * failed read leaves what they expected alone. */
static int load_offsets(struct sink *s, char *err, size_t err_size)
{
    for (size_t i = 0; i < s->tp_count; i++)
        s->tps[i].loaded = -1;
    if (sinkoff_read_group(s->conn, s->o->group, 0, load_row, s, err, err_size) != 0)
        return -1;
    for (size_t i = 0; i < s->tp_count; i++)
        s->tps[i].expected = s->tps[i].loaded;
    return 0;
}

/* Loads the stored offsets, retrying while the database is away. */
static int load_offsets_retry(struct sink *s)
{
    char err[512];
    int backoff = 250;
    for (;;) {
        if (db_ensure(s, err, sizeof(err)) == 0 && load_offsets(s, err, sizeof(err)) == 0)
            return 0;
        if (sig_stopping())
            return -1;
        log_warn("cannot read stored offsets: %s; retrying in %d ms", err, backoff);
        if (s->conn && PQstatus(s->conn) != CONNECTION_OK)
            db_down(s);
        nap(backoff);
        backoff = backoff * 2 > SINK_MAX_BACKOFF_MS ? SINK_MAX_BACKOFF_MS : backoff * 2;
    }
}

static int64_t start_offset(const struct sink *s)
{
    return s->o->start == PGSINK_START_LATEST ? RD_KAFKA_OFFSET_END : RD_KAFKA_OFFSET_BEGINNING;
}

/* Stores the batch's offsets (pending: the background flush's) with the
 * check of pgsink.h.  Returns 0, -1 on a database error, -2 when the stored
 * offsets moved under us. */
static int store_offsets(struct sink *s, int pending, char *err, size_t err_size)
{
    for (size_t i = 0; i < s->tp_count; i++) {
        struct tp *t = &s->tps[i];
        int64_t next = pending ? t->pending : t->next;
        if (next < 0)
            continue;
        int r = sinkoff_store_checked(s->conn, s->o->group, t->topic, t->partition, next, t->expected, err, err_size);
        if (r == SINKOFF_MOVED)
            return -2;
        if (r != 0)
            return -1;
    }
    return 0;
}

/* Where partition t is read from: its stored offset, or what the
 * pipeline's start_at() says, or --start. */
static int64_t read_from(struct sink *s, const struct tp *t)
{
    int64_t at = t->expected;
    if (s->ops->start_at)
        at = s->ops->start_at(s->ctx, s->conn, t->topic, t->partition, t->expected);
    return at >= 0 ? at : start_offset(s);
}

/* Re-reads the stored offsets and moves the assigned partitions there. */
static void reseek(struct sink *s)
{
    if (load_offsets_retry(s) < 0)
        return;
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new((int)s->tp_count);
    for (size_t i = 0; i < s->tp_count; i++) {
        struct tp *t = &s->tps[i];
        rd_kafka_topic_partition_list_add(l, t->topic, t->partition)->offset = read_from(s, t);
    }
    rd_kafka_error_t *e = rd_kafka_seek_partitions(s->rk, l, 10000);
    if (e) {
        log_warn("seek to the stored offsets failed: %s", rd_kafka_error_string(e));
        rd_kafka_error_destroy(e);
    }
    rd_kafka_topic_partition_list_destroy(l);
}

/* Tells Kafka the group's progress (for lag tools only). */
static void commit_kafka(struct sink *s, int pending)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new((int)s->tp_count);
    for (size_t i = 0; i < s->tp_count; i++) {
        int64_t next = pending ? s->tps[i].pending : s->tps[i].next;
        if (next >= 0)
            rd_kafka_topic_partition_list_add(l, s->tps[i].topic, s->tps[i].partition)->offset = next;
    }
    if (l->cnt > 0)
        rd_kafka_commit(s->rk, l, 1);
    rd_kafka_topic_partition_list_destroy(l);
}

/* Sets each partition's next offset to one past its last record in
 * batch[lo, hi). */
static void range_offsets(struct sink *s, size_t lo, size_t hi)
{
    for (size_t i = 0; i < s->tp_count; i++)
        s->tps[i].next = s->tps[i].held;
    struct tp *t = NULL;
    const rd_kafka_message_t *prev = NULL;
    for (size_t i = lo; i < hi; i++) {
        const rd_kafka_message_t *m = s->batch[i];
        if (!prev || m->rkt != prev->rkt || m->partition != prev->partition)
            t = tp_find(s, rd_kafka_topic_name(m->rkt), m->partition, 0);
        prev = m;
        if (t)
            t->next = m->offset + 1;
    }
    /* Records read again below the stored offset (start_at()): the stored
     * offset stays. */
    for (size_t i = 0; i < s->tp_count; i++)
        if (s->tps[i].next >= 0 && s->tps[i].next <= s->tps[i].expected)
            s->tps[i].next = -1;
}

/* Outcomes of one attempt at storing a part of the batch. */
enum attempt {
    A_OK = 0,
    A_ERROR = -1,    /* connection or other error: wait and retry */
    A_CONFLICT = -2, /* the stored offsets moved: drop the batch, re-seek */
    A_DATA = -3,     /* PostgreSQL refused the data (SQLSTATE class 22, 23) */
    A_REFUSED = -4,  /* the pipeline refused a record (*refused) */
    A_RESEEK = -5,   /* the pipeline asked for a re-read: drop the batch, re-seek */
    A_PENDING = -6,  /* the transaction goes on in the background (pgsink.h, finish) */
};

/* The background part of a state flush: finish(), the offsets, COMMIT, on
 * conn, which is the thread's until job_done. */
static void *job_main(void *arg)
{
    struct sink *s = arg;
    enum attempt r = A_OK;
    pg_clear_sqlstate();
    if (s->ops->finish(s->ctx, s->conn, s->job_err, sizeof(s->job_err)) != 0) {
        r = A_ERROR;
    } else {
        int o = store_offsets(s, 1, s->job_err, sizeof(s->job_err));
        if (o == -2)
            r = A_CONFLICT;
        else if (o < 0 || pg_exec(s->conn, "COMMIT", s->job_err, sizeof(s->job_err)) < 0)
            r = A_ERROR;
    }
    if (r != A_OK && PQstatus(s->conn) == CONNECTION_OK)
        PQclear(PQexec(s->conn, "ROLLBACK"));
    s->job_result = r;
    atomic_store(&s->job_done, 1);
    if (s->q) /* its outcome is taken (metrics, Kafka's view) without waiting for the next message */
        rd_kafka_queue_yield(s->q);
    return NULL;
}

/* Hands the open transaction, whose write() returned, to the background:
 * what was held and the batch[lo, hi) of write_once() go with it. */
static void job_start(struct sink *s, size_t count, int64_t t0)
{
    for (size_t i = 0; i < s->tp_count; i++) {
        s->tps[i].pending = s->tps[i].next;
        s->tps[i].held = -1;
    }
    s->holding = 0;
    /* The next interval starts now: what is folded from here on waits at
     * most hold_ms from this moment, however long this flush takes. */
    s->last_write_ms = fs_mono_ms();
    s->job_count = count;
    s->job_t0 = t0;
    s->job_err[0] = '\0';
    atomic_store(&s->job_done, 0);
    s->job_on = 1;
    s->job_thread_on = pthread_create(&s->job_thread, NULL, job_main, s) == 0;
    if (!s->job_thread_on)
        job_main(s); /* no thread: it runs here */
}

/* Ends a failed attempt: a data error while the connection is fine, or any
 * other error. */
static enum attempt attempt_failed(struct sink *s)
{
    int data = s->conn && PQstatus(s->conn) == CONNECTION_OK && pg_sqlstate_is_data_error(pg_last_sqlstate());
    if (s->conn && PQstatus(s->conn) == CONNECTION_OK)
        PQclear(PQexec(s->conn, "ROLLBACK"));
    s->ops->aborted(s->ctx);
    return data ? A_DATA : A_ERROR;
}

/* One attempt at writing batch[lo, hi) with its offsets in one transaction;
 * bg: the pipeline's finish(), the offsets and the COMMIT may go on in the
 * background (A_PENDING). */
static enum attempt write_once(struct sink *s, size_t lo, size_t hi, size_t *refused, int bg, char *err,
                               size_t err_size)
{
    pg_clear_sqlstate();
    if (db_ensure(s, err, err_size) < 0)
        return A_ERROR;
    range_offsets(s, lo, hi);
    if (pg_exec(s->conn, "BEGIN", err, err_size) < 0)
        return attempt_failed(s);
    size_t at = 0;
    int w = s->ops->write(s->ctx, s->conn, s->batch + lo, hi - lo, &at, err, err_size);
    if (w == PGSINK_REFUSED && at < hi - lo) {
        PQclear(PQexec(s->conn, "ROLLBACK"));
        s->ops->aborted(s->ctx);
        *refused = lo + at;
        return A_REFUSED;
    }
    if (w == PGSINK_RESEEK) {
        PQclear(PQexec(s->conn, "ROLLBACK"));
        snprintf(err, err_size, "the pipeline lost what it derived from earlier records");
        return A_RESEEK;
    }
    if (w != 0)
        return attempt_failed(s);
    if (bg && s->ops->finish) {
        job_start(s, hi - lo, fs_mono_ms());
        return A_PENDING;
    }
    if (s->ops->finish && s->ops->finish(s->ctx, s->conn, err, err_size) != 0)
        return attempt_failed(s);
    int r = store_offsets(s, 0, err, err_size);
    if (r == -2) {
        PQclear(PQexec(s->conn, "ROLLBACK"));
        s->ops->aborted(s->ctx);
        return A_CONFLICT;
    }
    if (r < 0 || pg_exec(s->conn, "COMMIT", err, err_size) < 0)
        return attempt_failed(s);
    return A_OK;
}

static void dlq_delivered(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    (void)rk;
    (void)opaque;
    *(rd_kafka_resp_err_t *)m->_private = m->err;
}

/* Produces m to the DLQ and waits for the brokers' acknowledgement.
 * Returns 0, or -1 with the reason in err. */
static int dlq_produce(struct sink *s, const rd_kafka_message_t *m, const char *reason, const char *detail,
                       const char *sqlstate, char *err, size_t err_size)
{
    if (!s->dlq) {
        static const char *const defaults[] = {
            "acks", "all", "enable.idempotence", "true", "linger.ms", "0", "message.timeout.ms", "15000", NULL};
        char why[512];
        rd_kafka_conf_t *conf = kafka_conf_new(s->o->cfg, defaults, why, sizeof(why));
        if (!conf) {
            snprintf(err, err_size, "cannot configure the dead-letter producer: %s", why);
            return -1;
        }
        rd_kafka_conf_set_dr_msg_cb(conf, dlq_delivered);
        s->dlq = kafka_new(RD_KAFKA_PRODUCER, conf, why, sizeof(why));
        if (!s->dlq) {
            snprintf(err, err_size, "cannot create the dead-letter producer: %s", why);
            return -1;
        }
    }
    char part[16], off[24];
    snprintf(part, sizeof(part), "%" PRId32, m->partition);
    snprintf(off, sizeof(off), "%" PRId64, m->offset);
    const char *topic = rd_kafka_topic_name(m->rkt);
    rd_kafka_headers_t *h = rd_kafka_headers_new(7);
    rd_kafka_header_add(h, "error", -1, reason, -1);
    rd_kafka_header_add(h, "error_detail", -1, detail, (ssize_t)strnlen(detail, 1024));
    if (sqlstate && *sqlstate)
        rd_kafka_header_add(h, "sqlstate", -1, sqlstate, -1);
    rd_kafka_header_add(h, "sink", -1, s->o->group, -1);
    rd_kafka_header_add(h, "source_topic", -1, topic, -1);
    rd_kafka_header_add(h, "source_partition", -1, part, -1);
    rd_kafka_header_add(h, "source_offset", -1, off, -1);
    rd_kafka_resp_err_t result = RD_KAFKA_RESP_ERR__IN_PROGRESS; /* set by dlq_delivered() */
    rd_kafka_resp_err_t e =
        rd_kafka_producev(s->dlq, RD_KAFKA_V_TOPIC(s->dlq_topic), RD_KAFKA_V_KEY(m->key, m->key_len),
                          RD_KAFKA_V_VALUE(m->payload, m->len), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                          RD_KAFKA_V_HEADERS(h), RD_KAFKA_V_OPAQUE((void *)&result), RD_KAFKA_V_END);
    if (e) {
        rd_kafka_headers_destroy(h);
        snprintf(err, err_size, "cannot produce to %s: %s", s->dlq_topic, rd_kafka_err2str(e));
        return -1;
    }
    /* message.timeout.ms bounds the wait: the delivery report comes. */
    while (result == RD_KAFKA_RESP_ERR__IN_PROGRESS)
        rd_kafka_poll(s->dlq, 100);
    if (result) {
        snprintf(err, err_size, "cannot produce to %s: %s", s->dlq_topic, rd_kafka_err2str(result));
        return -1;
    }
    return 0;
}

/* Dead-letters batch[i]: produces it to the DLQ, then stores its offset (in
 * a transaction of its own, with the offset check).  A_OK, A_ERROR (wait and
 * retry) or A_CONFLICT. */
static enum attempt dead_letter(struct sink *s, size_t i, const char *reason, const char *detail, const char *sqlstate,
                                char *err, size_t err_size)
{
    pg_clear_sqlstate();
    if (db_ensure(s, err, err_size) < 0)
        return A_ERROR;
    range_offsets(s, i, i + 1);
    if (pg_exec(s->conn, "BEGIN", err, err_size) < 0)
        goto fail;
    /* The offset row is locked (and checked) before the dead letter goes
     * out: another instance cannot take the partition over in between. */
    int r = store_offsets(s, 0, err, err_size);
    if (r == -2) {
        PQclear(PQexec(s->conn, "ROLLBACK"));
        return A_CONFLICT;
    }
    if (r < 0 || dlq_produce(s, s->batch[i], reason, detail, sqlstate, err, err_size) < 0 ||
        pg_exec(s->conn, "COMMIT", err, err_size) < 0)
        goto fail;
    return A_OK;
fail:
    if (s->conn && PQstatus(s->conn) == CONNECTION_OK)
        PQclear(PQexec(s->conn, "ROLLBACK"));
    return A_ERROR;
}

/* A part of the batch is stored: offsets, Kafka's view, metrics. */
static void part_stored(struct sink *s, size_t count, int64_t t0, int written)
{
    if (written)
        s->ops->committed(s->ctx);
    if (written) /* everything held went with it: the next interval starts */
        s->last_write_ms = fs_mono_ms();
    s->holding = 0;
    s->hold_paused = 0;
    for (size_t i = 0; i < s->tp_count; i++)
        s->tps[i].held = -1;
    commit_kafka(s, 0);
    for (size_t i = 0; i < s->tp_count; i++)
        if (s->tps[i].next >= 0)
            s->tps[i].expected = s->tps[i].next;
    if (s->m_batches && written) {
        metric_add(s->m_batches, 1);
        metric_add(s->m_messages, count);
        metric_observe(s->m_batch_size, (double)count);
        metric_observe(s->m_batch_seconds, (double)(fs_mono_ms() - t0) / 1000.0);
    }
}

/* A failure while the pipeline held batches: what it held is gone (its
 * offsets were never stored), so the partitions re-read from the stored
 * offsets; holding pauses until a batch commits on its own (pgsink.h). */
static int job_end(struct sink *s);

static void held_lost(struct sink *s, const char *why)
{
    if (s->job_on && job_end(s) < 0)
        return; /* it lost what was held, this too */
    log_warn("%s; re-reading what was held in memory from the stored offsets", why);
    s->ops->aborted(s->ctx);
    for (size_t i = 0; i < s->tp_count; i++)
        s->tps[i].held = -1;
    s->holding = 0;
    s->hold_paused = 1;
    drop_batch(s);
    if (s->conn && PQstatus(s->conn) != CONNECTION_OK)
        db_down(s);
    reseek(s);
}

/* The flush in the background is over (joined): its offsets are stored, or
 * what was held is lost.  0 or -1 (held_lost() done). */
static int job_end(struct sink *s)
{
    if (s->job_thread_on)
        pthread_join(s->job_thread, NULL);
    s->job_on = s->job_thread_on = 0;
    enum attempt r = (enum attempt)s->job_result;
    if (r == A_OK) {
        s->ops->committed(s->ctx);
        s->hold_paused = 0;
        commit_kafka(s, 1);
        for (size_t i = 0; i < s->tp_count; i++) {
            if (s->tps[i].pending >= 0)
                s->tps[i].expected = s->tps[i].pending;
            s->tps[i].pending = -1;
        }
        if (s->m_batches) {
            metric_add(s->m_batches, 1);
            metric_add(s->m_messages, s->job_count);
            metric_observe(s->m_batch_size, (double)s->job_count);
            metric_observe(s->m_batch_seconds, (double)(fs_mono_ms() - s->job_t0) / 1000.0);
        }
        return 0;
    }
    for (size_t i = 0; i < s->tp_count; i++)
        s->tps[i].pending = -1;
    if (s->m_db_errors && r != A_CONFLICT)
        metric_add(s->m_db_errors, 1);
    if (s->m_conflicts && r == A_CONFLICT)
        metric_add(s->m_conflicts, 1);
    held_lost(s, r == A_CONFLICT ? "another writer moved the offsets" : s->job_err);
    return -1;
}

/* Waits for the flush in the background, if one runs (job_end()). */
static int job_wait(struct sink *s)
{
    return s->job_on ? job_end(s) : 0;
}

/* A connection for hold()'s reads: conn, or rconn while conn is the
 * background flush's.  NULL with err. */
static PGconn *read_conn(struct sink *s, char *err, size_t err_size)
{
    if (!s->job_on)
        return db_ensure(s, err, err_size) < 0 ? NULL : s->conn;
    if (s->rconn && PQstatus(s->rconn) == CONNECTION_OK)
        return s->rconn;
    if (s->rconn)
        PQfinish(s->rconn);
    s->rconn = pg_connect(s->o->cfg, s->o->group, err, err_size);
    return s->rconn;
}

/* Takes the batch into the pipeline's memory (pgsink.h, holding).  1 = held
 * (or lost and re-read), 0 = it must be written now. */
static int hold_batch(struct sink *s)
{
    char err[1024];
    if (!s->ops->hold || s->o->hold_ms <= 0 || s->hold_paused || fs_mono_ms() >= s->last_write_ms + s->o->hold_ms)
        return 0;
    PGconn *c = read_conn(s, err, sizeof(err));
    int h = !c ? -1 : s->ops->hold(s->ctx, c, s->batch, s->n, err, sizeof(err));
    if (h == 1)
        return 0;
    if (h < 0) {
        if (s->m_db_errors)
            metric_add(s->m_db_errors, 1);
        held_lost(s, err);
        return 1;
    }
    range_offsets(s, 0, s->n);
    for (size_t i = 0; i < s->tp_count; i++)
        s->tps[i].held = s->tps[i].next;
    s->holding = 1;
    drop_batch(s);
    return 1;
}

/* Writes what the pipeline holds when no batch is pending; bg: in the
 * background (write_once()). */
static void write_held(struct sink *s, int bg)
{
    char err[1024];
    size_t refused = 0;
    int64_t t0 = fs_mono_ms();
    enum attempt r = write_once(s, 0, 0, &refused, bg, err, sizeof(err));
    if (r == A_PENDING)
        return;
    if (r == A_OK) {
        part_stored(s, 0, t0, 1);
        return;
    }
    if (s->m_db_errors && r != A_CONFLICT)
        metric_add(s->m_db_errors, 1);
    if (s->m_conflicts && r == A_CONFLICT)
        metric_add(s->m_conflicts, 1);
    held_lost(s, err);
}

/* Writes the batch, retrying with backoff; bisects it after a data error
 * and dead-letters the records PostgreSQL or the pipeline refuses (see
 * pgsink.h).  batch[0, lo) is stored; [lo, hi) is the next attempt;
 * [lo, bad) holds a record PostgreSQL refused (bad = 0: none known).  On a
 * stop request it gives up after a few attempts: what is not stored is read
 * again.  may_hold: the batch may go to the pipeline's memory instead
 * (not on a stop or a revocation). */
static void flush(struct sink *s, int may_hold)
{
    if (s->n == 0) {
        if (job_wait(s) < 0)
            return;
        if (s->holding && (!may_hold || fs_mono_ms() >= s->last_write_ms + s->o->hold_ms))
            write_held(s, 0);
        return;
    }
    if (may_hold && hold_batch(s))
        return;
    if (job_wait(s) < 0) /* the next transaction after it */
        return;
    char err[1024], detail[1024], state[6];
    int backoff = 250, attempts = 0;
    size_t lo = 0, hi = s->n, bad = 0;
    int64_t t0 = fs_mono_ms();
    while (lo < s->n) {
        size_t refused = 0;
        enum attempt r = write_once(s, lo, hi, &refused, may_hold && s->holding, err, sizeof(err));
        const char *reason = NULL;
        if (r == A_PENDING) {
            drop_batch(s); /* its offsets are the background flush's */
            return;
        }
        if (r != A_OK && s->holding) {
            if (s->m_db_errors && r != A_CONFLICT)
                metric_add(s->m_db_errors, 1);
            if (s->m_conflicts && r == A_CONFLICT)
                metric_add(s->m_conflicts, 1);
            held_lost(s, err);
            return;
        }
        if (r == A_OK) {
            part_stored(s, hi - lo, t0, 1);
            lo = hi;
            hi = bad > lo ? bad : s->n;
            attempts = 0;
            backoff = 250;
            t0 = fs_mono_ms();
            continue;
        }
        if (r == A_REFUSED && refused > lo) {
            hi = refused; /* the records before it first */
            continue;
        }
        if (r == A_DATA && hi - lo > 1) {
            if (s->m_db_errors)
                metric_add(s->m_db_errors, 1);
            if (lo == 0 && hi == s->n)
                log_warn("PostgreSQL refused a batch of %zu messages: %s; looking for the record at fault", s->n, err);
            bad = hi;
            hi = lo + (hi - lo) / 2;
            continue;
        }
        if (r == A_REFUSED || r == A_DATA) {
            reason = r == A_REFUSED ? "out_of_range" : "database_refused";
            if (r == A_DATA && s->m_db_errors)
                metric_add(s->m_db_errors, 1);
            snprintf(detail, sizeof(detail), "%s", err);
            snprintf(state, sizeof(state), "%s", r == A_DATA ? pg_last_sqlstate() : "");
            for (;;) {
                r = dead_letter(s, lo, reason, detail, state, err, sizeof(err));
                if (r != A_ERROR || sig_stopping())
                    break;
                log_warn("cannot dead-letter %s [%d] offset %" PRId64 ": %s; retrying in %d ms",
                         rd_kafka_topic_name(s->batch[lo]->rkt), s->batch[lo]->partition, s->batch[lo]->offset, err,
                         backoff);
                if (s->conn && PQstatus(s->conn) != CONNECTION_OK)
                    db_down(s);
                nap(backoff);
                backoff = backoff * 2 > SINK_MAX_BACKOFF_MS ? SINK_MAX_BACKOFF_MS : backoff * 2;
            }
            if (r == A_OK) {
                log_warn("%s [%d] offset %" PRId64 ": dead-lettered to %s (%s: %s)",
                         rd_kafka_topic_name(s->batch[lo]->rkt), s->batch[lo]->partition, s->batch[lo]->offset,
                         s->dlq_topic, reason, detail);
                struct metric *m = strcmp(reason, "out_of_range") == 0 ? s->m_dead_refused : s->m_dead_database;
                if (m)
                    metric_add(m, 1);
                part_stored(s, 1, t0, 0);
                lo++;
                hi = bad > lo ? bad : s->n;
                backoff = 250;
                t0 = fs_mono_ms();
                continue;
            }
            if (r != A_CONFLICT) {
                log_warn("stopping with %zu messages not stored; they will be read again", s->n - lo);
                drop_batch(s);
                return;
            }
        }
        if (r == A_RESEEK) {
            log_warn("%s; re-reading from where it starts", err);
            drop_batch(s);
            reseek(s);
            return;
        }
        if (r == A_CONFLICT) {
            log_warn("%s: another writer moved the offsets; re-reading from what is stored", err);
            if (s->m_conflicts)
                metric_add(s->m_conflicts, 1);
            drop_batch(s);
            reseek(s);
            return;
        }
        if (s->m_db_errors)
            metric_add(s->m_db_errors, 1);
        if (s->conn && PQstatus(s->conn) != CONNECTION_OK)
            db_down(s);
        attempts++;
        if (sig_stopping() && attempts >= 3) {
            log_warn("stopping with %zu messages not stored (%s); they will be read again", s->n - lo, err);
            drop_batch(s);
            return;
        }
        log_warn("cannot store a batch of %zu messages: %s; retrying in %d ms", hi - lo, err, backoff);
        nap(backoff);
        backoff = backoff * 2 > SINK_MAX_BACKOFF_MS ? SINK_MAX_BACKOFF_MS : backoff * 2;
    }
    drop_batch(s);
}

/* After the last batch of a revocation or a stop: the pipeline writes what
 * it keeps (pgsink.h, release). */
static void release(struct sink *s)
{
    char err[1024];
    if (s->ops->release && s->n == 0 && db_ensure(s, err, sizeof(err)) == 0 &&
        s->ops->release(s->ctx, s->conn, err, sizeof(err)) < 0)
        log_warn("%s", err);
}

static void rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t *parts, void *opaque)
{
    struct sink *s = opaque;
    job_wait(s); /* its outcome first: the offsets it stores, or what it lost */
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        for (int i = 0; i < parts->cnt; i++)
            tp_find(s, parts->elems[i].topic, parts->elems[i].partition, 1);
        if (load_offsets_retry(s) < 0) {
            rd_kafka_assign(rk, NULL);
            return;
        }
        /* Another instance may have written these partitions meanwhile:
         * whatever the pipeline derived from earlier batches is stale. */
        s->ops->aborted(s->ctx);
        for (int i = 0; i < parts->cnt; i++) {
            struct tp *t = tp_find(s, parts->elems[i].topic, parts->elems[i].partition, 0);
            parts->elems[i].offset = t ? read_from(s, t) : start_offset(s);
        }
        log_info("assigned %d partitions; reading from the offsets stored in PostgreSQL", parts->cnt);
        rd_kafka_assign(rk, parts);
    } else {
        flush(s, 0);
        release(s);
        s->tp_count = 0;
        rd_kafka_assign(rk, NULL);
    }
}

const char *const pgsink_start_words[] = {"earliest", "latest", NULL};

int pgsink_run(const struct pgsink_options *o, const struct pgsink_ops *ops, void *ctx)
{
    struct sink s = {.o = o, .ops = ops, .ctx = ctx};
    cfg_topic(o->cfg, TOPIC_DLQ, s.dlq_topic, sizeof(s.dlq_topic));
    size_t max_batch = o->max_batch > 0 ? (size_t)o->max_batch : 20000;
    int flush_ms = o->flush_ms > 0 ? o->flush_ms : 500;
    char err[1024], labels[160];
    int rc = 1;
    rd_kafka_queue_t *q = NULL;

    if (o->metrics) {
        snprintf(labels, sizeof(labels), "group=\"%s\"", o->group);
        static const double sizes[] = {1, 10, 100, 1000, 5000, 10000, 20000, 50000, 100000};
        static const double secs[] = {0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
        s.m_messages = metrics_counter(o->metrics, "fleetsync_sink_messages_total",
                                       "Kafka messages stored (with their offsets) in PostgreSQL", labels);
        s.m_batches = metrics_counter(o->metrics, "fleetsync_sink_batches_total", "Batches committed", labels);
        s.m_db_errors = metrics_counter(o->metrics, "fleetsync_sink_db_errors_total",
                                        "Failed batch attempts (database errors)", labels);
        s.m_conflicts = metrics_counter(o->metrics, "fleetsync_sink_offset_conflicts_total",
                                        "Batches dropped because the stored offsets moved", labels);
        char dl[200];
        snprintf(dl, sizeof(dl), "%s,reason=\"out_of_range\"", labels);
        s.m_dead_refused = metrics_counter(o->metrics, "fleetsync_sink_dead_letters_total",
                                           "Records dead-lettered: refused by the checks or by PostgreSQL", dl);
        snprintf(dl, sizeof(dl), "%s,reason=\"database_refused\"", labels);
        s.m_dead_database = metrics_counter(o->metrics, "fleetsync_sink_dead_letters_total",
                                            "Records dead-lettered: refused by the checks or by PostgreSQL", dl);
        s.m_db_up = metrics_gauge(o->metrics, "fleetsync_sink_db_up", "1 while PostgreSQL is reachable", labels);
        s.m_batch_size = metrics_histogram(o->metrics, "fleetsync_sink_batch_messages", "Messages per batch", labels,
                                           sizes, (int)(sizeof(sizes) / sizeof(sizes[0])));
        s.m_batch_seconds =
            metrics_histogram(o->metrics, "fleetsync_sink_batch_seconds", "Time to store a batch, retries included",
                              labels, secs, (int)(sizeof(secs) / sizeof(secs[0])));
    }
    s.batch = calloc(max_batch, sizeof(*s.batch));
    s.chunk = calloc(max_batch, sizeof(*s.chunk));
    if (!s.batch || !s.chunk) {
        free(s.batch);
        free(s.chunk);
        log_error("out of memory");
        return 1;
    }

    /* The database first: without it nothing can be stored anyway. */
    int backoff = 250;
    while (db_ensure(&s, err, sizeof(err)) < 0) {
        if (sig_stopping())
            goto out;
        log_warn("%s; retrying in %d ms", err, backoff);
        nap(backoff);
        backoff = backoff * 2 > SINK_MAX_BACKOFF_MS ? SINK_MAX_BACKOFF_MS : backoff * 2;
    }
    if (ops->tick && ops->tick(ctx, s.conn, err, sizeof(err)) < 0)
        log_warn("%s", err);

    static const char *const defaults[] = {
        "enable.auto.commit",
        "false",
        "enable.auto.offset.store",
        "false",
        "auto.offset.reset",
        "earliest",
        "queued.max.messages.kbytes",
        "65536",
        KAFKA_TELEMETRY_CONSUMER_DEFAULTS,
        "max.poll.interval.ms",
        "600000",
        "partition.assignment.strategy",
        "range,roundrobin",
        NULL,
    };
    /* The pipeline's own consumer settings come after these (and the
     * user's -X after both). */
    const char *kv[64];
    size_t nkv = 0;
    for (const char *const *d = defaults; *d; d++)
        kv[nkv++] = *d;
    for (const char *const *d = o->kafka_defaults; d && d[0] && d[1] && nkv + 3 < sizeof(kv) / sizeof(kv[0]); d += 2) {
        kv[nkv++] = d[0];
        kv[nkv++] = d[1];
    }
    kv[nkv] = NULL;
    rd_kafka_conf_t *conf = kafka_conf_new(o->cfg, kv, err, sizeof(err));
    if (!conf || rd_kafka_conf_set(conf, "group.id", o->group, err, sizeof(err)) != RD_KAFKA_CONF_OK) {
        log_error("%s", err);
        if (conf)
            rd_kafka_conf_destroy(conf);
        goto out;
    }
    rd_kafka_conf_set_rebalance_cb(conf, rebalance_cb);
    rd_kafka_conf_set_opaque(conf, &s);
    s.rk = kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err));
    if (!s.rk) {
        log_error("cannot create the Kafka consumer: %s", err);
        goto out;
    }
    rd_kafka_poll_set_consumer(s.rk);
    rd_kafka_topic_partition_list_t *sub = rd_kafka_topic_partition_list_new(o->topic_count);
    for (int i = 0; i < o->topic_count; i++)
        rd_kafka_topic_partition_list_add(sub, o->topics[i], RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t e = rd_kafka_subscribe(s.rk, sub);
    rd_kafka_topic_partition_list_destroy(sub);
    if (e) {
        log_error("cannot subscribe: %s", rd_kafka_err2str(e));
        goto out;
    }
    q = rd_kafka_queue_get_consumer(s.rk);
    s.q = q;
    log_info("consumer group %s reading %s%s%s", o->group, o->topics[0], o->topic_count > 1 ? " and " : "",
             o->topic_count > 1 ? o->topics[1] : "");

    int fatal = 0;
    while (!sig_stopping() && !(fatal = kafka_consumer_fatal(s.rk, o->group))) {
        int64_t now = fs_mono_ms();
        int timeout = s.job_on ? 50 : 200; /* 50: a flush's end is taken soon (should the wake-up not come) */
        if (s.n > 0) {
            int64_t left = s.first_ms + flush_ms - now;
            timeout = left < 0 ? 0 : (int)left;
        }
        /* Many messages per call: one wakeup and clock read per chunk, not
         * per message.  They land in a chunk of their own: a revocation
         * during the call flushes s.batch, and messages of partitions no
         * longer ours are dropped here (they are read again by the owner). */
        ssize_t got = rd_kafka_consume_batch_queue(q, timeout, s.chunk, max_batch - s.n);
        now = fs_mono_ms(); /* the chunk's messages arrived now: one clock read for all */
        /* t: the partition of prev, the last message kept (a run of one
         * partition's messages looks it up once). */
        struct tp *t = NULL;
        const rd_kafka_message_t *prev = NULL;
        for (ssize_t i = 0; i < got; i++) {
            rd_kafka_message_t *m = s.chunk[i];
            if (m->err) {
                t = NULL;
            } else if (!t || m->rkt != prev->rkt || m->partition != prev->partition) {
                t = tp_find(&s, rd_kafka_topic_name(m->rkt), m->partition, 0);
                prev = m;
            }
            if (!t) {
                if (m->err && m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
                    log_warn("Kafka: %s", rd_kafka_message_errstr(m));
                rd_kafka_message_destroy(m);
                continue;
            }
            t->next = m->offset + 1;
            if (s.n == 0)
                s.first_ms = now;
            s.batch[s.n++] = m;
            s.last_msg_ms = now;
        }
        if (s.job_on && atomic_load(&s.job_done))
            job_end(&s);
        now = fs_mono_ms();
        if (s.n > 0 && (s.n >= max_batch || now >= s.first_ms + flush_ms))
            flush(&s, 1);
        else if (s.n == 0 && s.holding && !s.job_on &&
                 (now >= s.last_write_ms + o->hold_ms || now >= s.last_msg_ms + SINK_HOLD_IDLE_MS))
            write_held(&s, 1); /* due, or caught up: nothing came for a while */
        if (ops->tick && s.n == 0 && !s.job_on && now >= s.next_tick_ms) {
            s.next_tick_ms = now + 1000;
            if (db_ensure(&s, err, sizeof(err)) < 0 || ops->tick(ctx, s.conn, err, sizeof(err)) < 0) {
                log_warn("%s", err);
                if (s.conn && PQstatus(s.conn) != CONNECTION_OK)
                    db_down(&s);
                s.next_tick_ms = now + 5000;
            }
        }
    }
    log_info("stopping: storing the last batch");
    flush(&s, 0); /* its offsets are PostgreSQL's: valid whatever Kafka's state */
    release(&s);
    rc = fatal ? 1 : 0;
out:
    if (s.job_on && s.job_thread_on) /* not after the last flush(), kept for safety */
        pthread_join(s.job_thread, NULL);
    if (q)
        rd_kafka_queue_destroy(q);
    if (s.rk)
        kafka_consumer_destroy(s.rk);
    drop_batch(&s);
    db_down(&s);
    if (s.dlq) {
        rd_kafka_flush(s.dlq, 5000);
        rd_kafka_destroy(s.dlq);
    }
    free(s.batch);
    free(s.chunk);
    free(s.tps);
    return rc;
}
