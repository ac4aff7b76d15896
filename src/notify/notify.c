/*
 * notify.c - `fleetsync notify`: consumer group fleetsync-notify reads
 * truck-alerts and POSTs each alert to the webhook destinations its routes
 * name (notify/routes.h), signed (notify/sign.h), at least once, in order
 * per truck and destination.  One thread drives Kafka and every HTTP
 * transfer (libcurl's multi interface), so destinations proceed
 * independently without locks.
 *
 * A record's life:
 *
 *   read ──> not an alert ──> dead letter "invalid_alert"
 *        ──> the destinations its routes match; for each one:
 *              the destination's queue is full ──> dead letter "queue_full"
 *              else a job of the delivery engine (notify/deliver.h: lanes per
 *              destination, retries with backoff), which ends delivered or
 *              given up ──> dead letter "refused" / "retries_exhausted"
 *   a dead letter counts as done when truck-alerts-dlq acknowledges it.
 *
 * Invariants:
 *   - A truck's alerts reach a destination in the order they were read,
 *     each after the one before it finished (the engine's lanes, keyed by
 *     truck id).
 *   - A record is finished when every destination it matched has it
 *     delivered or dead-lettered.  Per partition the commit frontier
 *     (notify/frontier.h) is the lowest unfinished offset; only it is
 *     committed, so a crash re-delivers (never loses) what was not
 *     finished.  Re-deliveries carry the same idempotency key.
 *   - Memory is bounded: each destination holds at most its queue bound
 *     of jobs, and reading pauses while more than --max-outstanding records
 *     are kept for the frontier.
 *   - A revoked partition's queued jobs are dropped and its epoch moves
 *     on: in-flight jobs and dead letters of the old epoch finish without
 *     touching the new owner's frontier.
 */
#include "notify/notify.h"

#include "core/clock.h"
#include "core/config.h"
#include "core/kafka.h"
#include "core/kafkaauth.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/opts.h"
#include "core/rule.h"
#include "core/sig.h"
#include "core/topics.h"
#include "notify/deliver.h"
#include "notify/frontier.h"
#include "notify/routes.h"

#include <curl/curl.h> /* curl_global_init */
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define NOTIFY_DEFAULT_METRICS_PORT 9106
#define NOTIFY_DEFAULT_GROUP "fleetsync-notify"
#define NOTIFY_MAX_RECORD (64 * 1024) /* an alert is a few hundred bytes */
#define NOTIFY_MAX_PARTITIONS 4096
#define NOTIFY_IDEM_MAX 300 /* alert_id (truck 64 + rule + ms) + ":cleared" */
#define POLL_BATCH 500

/* ---- records ------------------------------------------------------------------- */

struct rec {
    int32_t partition;
    int64_t offset;
    uint32_t epoch; /* the partition's assignment when read */
    int pending;    /* destinations not finished with it */
    int refs;       /* jobs and dead letters that point at it */
    char *key, *body;
    size_t key_len, body_len;
    char idem[NOTIFY_IDEM_MAX + 1]; /* alert_id:state */
    char truck[65];
};

/* A dead letter waiting for the DLQ's acknowledgement. */
struct dead {
    struct rec *rec;
};

struct part {
    int assigned;
    uint32_t epoch;
    struct frontier f;
};

struct notify {
    const struct fs_config *cfg;
    const char *group;
    char topic[256], dlq_topic[256];
    struct notify_routes routes;
    struct deliver *dl;
    struct part *parts;
    int nparts;
    rd_kafka_t *consumer, *dlq;
    size_t dead_flying; /* dead letters not acknowledged */
    int paused, stopping, fatal, closing, start_earliest;
    int max_outstanding;
    int64_t drain_ms, commit_ms, drain_deadline;
    struct metrics *metrics;
    struct metric *m_records, *m_invalid, *m_unrouted, *m_outstanding, *m_dead_invalid, *m_dlq_failed;
};

static struct part *part_of(struct notify *n, int32_t p)
{
    if (p < 0 || p >= NOTIFY_MAX_PARTITIONS)
        return NULL;
    if (p >= n->nparts) {
        int cap = p + 1 > 2 * n->nparts ? p + 1 : 2 * n->nparts;
        struct part *np = realloc(n->parts, (size_t)cap * sizeof(*np));
        if (!np)
            return NULL;
        for (int i = n->nparts; i < cap; i++) {
            memset(&np[i], 0, sizeof(np[i]));
            frontier_init(&np[i].f);
        }
        n->parts = np;
        n->nparts = cap;
    }
    return &n->parts[p];
}

static void rec_unref(struct rec *r)
{
    if (--r->refs > 0)
        return;
    free(r->key);
    free(r->body);
    free(r);
}

/* One destination (or the dead letter of an invalid record) is finished
 * with r: the frontier moves when it was the last. */
static void rec_finish_one(struct notify *n, struct rec *r)
{
    if (--r->pending > 0)
        return;
    struct part *p = part_of(n, r->partition);
    if (p && p->assigned && p->epoch == r->epoch)
        frontier_done(&p->f, r->offset);
}

/* Whether r's partition is still ours since r was read (else its jobs are
 * dropped: the partition's new owner delivers it). */
static int rec_current(struct notify *n, const struct rec *r)
{
    struct part *p = part_of(n, r->partition);
    return p && p->assigned && p->epoch == r->epoch;
}

/* ---- dead letters ---------------------------------------------------------------- */

static void dlq_delivered(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    (void)rk;
    struct notify *n = opaque;
    struct dead *dl = m->_private;
    if (!dl)
        return;
    n->dead_flying--;
    if (m->err && n->closing) {
        log_warn("dead letter of %s [%d] offset %" PRId64 " not acknowledged before the stop: the record is not "
                 "committed, read again after a restart",
                 n->topic, dl->rec->partition, dl->rec->offset);
    } else if (m->err) {
        /* The record stays unfinished: not committed, delivered again after
         * a restart.  Exit so that one happens. */
        log_error("cannot dead-letter %s [%d] offset %" PRId64 " to %s: %s; stopping", n->topic, dl->rec->partition,
                  dl->rec->offset, n->dlq_topic, rd_kafka_err2str(m->err));
        metric_add(n->m_dlq_failed, 1);
        n->fatal = 1;
    } else {
        rec_finish_one(n, dl->rec);
    }
    rec_unref(dl->rec);
    free(dl);
}

/* Sends r to the dead-letter topic for destination di (-1: r is not an
 * alert), with headers saying who and why.  The destination is finished
 * with r when Kafka acknowledges it (dlq_delivered). */
static void dead_letter(struct notify *n, struct rec *r, int di, const char *why, const char *detail, int attempts)
{
    struct dead *dl = malloc(sizeof(*dl));
    char part[16], off[24], att[16];
    snprintf(part, sizeof(part), "%d", r->partition);
    snprintf(off, sizeof(off), "%" PRId64, r->offset);
    snprintf(att, sizeof(att), "%d", attempts);
    rd_kafka_headers_t *h = rd_kafka_headers_new(8);
    rd_kafka_header_add(h, "sink", -1, n->group, -1);
    if (di >= 0)
        rd_kafka_header_add(h, "destination", -1, n->routes.dests[di].name, -1);
    rd_kafka_header_add(h, "error", -1, why, -1);
    rd_kafka_header_add(h, "error_detail", -1, detail, (ssize_t)strnlen(detail, 1024));
    rd_kafka_header_add(h, "attempts", -1, att, -1);
    rd_kafka_header_add(h, "source_topic", -1, n->topic, -1);
    rd_kafka_header_add(h, "source_partition", -1, part, -1);
    rd_kafka_header_add(h, "source_offset", -1, off, -1);
    rd_kafka_resp_err_t e = RD_KAFKA_RESP_ERR__QUEUE_FULL;
    if (dl) {
        dl->rec = r;
        r->refs++;
        e = rd_kafka_producev(n->dlq, RD_KAFKA_V_TOPIC(n->dlq_topic), RD_KAFKA_V_KEY(r->key, r->key_len),
                              RD_KAFKA_V_VALUE(r->body, r->body_len), RD_KAFKA_V_HEADERS(h),
                              RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_OPAQUE(dl), RD_KAFKA_V_END);
    }
    if (e) {
        rd_kafka_headers_destroy(h);
        log_error("cannot dead-letter %s [%d] offset %" PRId64 " to %s: %s; stopping", n->topic, r->partition,
                  r->offset, n->dlq_topic, dl ? rd_kafka_err2str(e) : "out of memory");
        metric_add(n->m_dlq_failed, 1);
        n->fatal = 1; /* r stays unfinished: read again after the restart */
        if (dl) {
            rec_unref(r);
            free(dl);
        }
        return;
    }
    n->dead_flying++;
    if (di >= 0)
        log_warn("%s [%d] offset %" PRId64 " (%s) dead-lettered for %s: %s (%s)", n->topic, r->partition, r->offset,
                 r->idem, n->routes.dests[di].name, why, detail);
    else
        log_warn("%s [%d] offset %" PRId64 " dead-lettered: %s (%s)", n->topic, r->partition, r->offset, why, detail);
}

/* ---- the delivery engine's callbacks ----------------------------------------------- */

static void on_done(void *ctx, int dest, void *ud, int delivered, enum deliver_reason reason, const char *detail,
                    int attempts)
{
    struct notify *n = ctx;
    struct rec *r = ud;
    if (delivered)
        rec_finish_one(n, r);
    else
        dead_letter(n, r, dest, deliver_reason_name(reason), detail, attempts);
    rec_unref(r);
}

static void on_dropped(void *ctx, void *ud)
{
    (void)ctx;
    rec_unref(ud);
}

static int on_wanted(void *ctx, void *ud)
{
    return rec_current(ctx, ud);
}

static const struct deliver_ops deliver_ops = {.done = on_done, .dropped = on_dropped, .wanted = on_wanted};

/* ---- reading alerts ----------------------------------------------------------------- */

/* Reads the fields routing needs.  Returns 0, or -1 with the reason in
 * detail. */
static int parse_alert(const rd_kafka_message_t *m, struct rec *r, int *rule, int *state, char *detail, size_t dsize)
{
    json_error_t je;
    int rc = -1;
    if (m->len > NOTIFY_MAX_RECORD) {
        snprintf(detail, dsize, "larger than %d bytes", NOTIFY_MAX_RECORD);
        return -1;
    }
    json_t *o = json_loadb(m->payload, m->len, JSON_REJECT_DUPLICATES, &je);
    if (!json_is_object(o)) {
        snprintf(detail, dsize, "not a JSON object%s%s", o ? "" : ": ", o ? "" : je.text);
        goto out;
    }
    json_t *id = json_object_get(o, "alert_id"), *st = json_object_get(o, "state"),
           *truck = json_object_get(o, "truck_id"), *ru = json_object_get(o, "rule");
    if (!json_is_string(id) || json_string_length(id) == 0 || json_string_length(id) > 256) {
        snprintf(detail, dsize, "alert_id: missing or not a string of 1-256 bytes");
        goto out;
    }
    const char *s = json_is_string(st) ? json_string_value(st) : "";
    *state = strcmp(s, "raised") == 0 ? NOTIFY_RAISED : strcmp(s, "cleared") == 0 ? NOTIFY_CLEARED : 0;
    if (!*state) {
        snprintf(detail, dsize, "state: is not \"raised\" or \"cleared\"");
        goto out;
    }
    if (!json_is_string(truck) || json_string_length(truck) == 0 || json_string_length(truck) > 64) {
        snprintf(detail, dsize, "truck_id: missing or not a string of 1-64 bytes");
        goto out;
    }
    if (!json_is_string(ru)) {
        snprintf(detail, dsize, "rule: missing or not a string");
        goto out;
    }
    *rule = fs_rule_from_name(json_string_value(ru));
    snprintf(r->idem, sizeof(r->idem), "%s:%s", json_string_value(id), s);
    snprintf(r->truck, sizeof(r->truck), "%s", json_string_value(truck));
    rc = 0;
out:
    json_decref(o);
    return rc;
}

static void handle(struct notify *n, const rd_kafka_message_t *m)
{
    struct part *p = part_of(n, m->partition);
    if (!p || !p->assigned)
        return; /* fetched before a revoke */
    metric_add(n->m_records, 1);
    struct rec *r = calloc(1, sizeof(*r));
    if (r) {
        r->key = malloc(m->key_len + 1);
        r->body = malloc(m->len + 1);
    }
    int fa = r && r->key && r->body ? frontier_add(&p->f, m->offset) : -2;
    if (fa == -1 && p->f.count == 0) {
        /* Below the start the assignment set: the start was out of range and
         * auto.offset.reset moved the consumer back (a topic recreated).
         * Nothing is outstanding: start again from here. */
        log_warn("%s [%d]: reading resumed at offset %" PRId64 ", below the start %" PRId64, n->topic, m->partition,
                 m->offset, frontier_position(&p->f));
        frontier_reset(&p->f);
        fa = frontier_add(&p->f, m->offset);
    }
    if (fa != 0) {
        /* Offsets only go up; out of memory: stop, the restart reads the
         * record again (it is not committed). */
        log_error("out of memory (or offsets out of order) at %s [%d] offset %" PRId64 "; stopping", n->topic,
                  m->partition, m->offset);
        n->fatal = 1;
        if (r) {
            free(r->key);
            free(r->body);
            free(r);
        }
        return;
    }
    if (m->key_len)
        memcpy(r->key, m->key, m->key_len);
    if (m->len)
        memcpy(r->body, m->payload, m->len);
    r->body[m->len] = '\0';
    r->key_len = m->key_len;
    r->body_len = m->len;
    r->partition = m->partition;
    r->offset = m->offset;
    r->epoch = p->epoch;
    r->refs = 1;    /* this function's, dropped at the end */
    r->pending = 1; /* likewise: a record that matches nothing is finished at once */

    int rule = -1, state = 0;
    char detail[256];
    if (parse_alert(m, r, &rule, &state, detail, sizeof(detail)) != 0) {
        metric_add(n->m_invalid, 1);
        metric_add(n->m_dead_invalid, 1);
        dead_letter(n, r, -1, "invalid_alert", detail, 0);
        rec_unref(r);
        return;
    }
    uint64_t to = notify_routes_match(&n->routes, rule, state, r->truck, strlen(r->truck));
    if (!to)
        metric_add(n->m_unrouted, 1);
    struct deliver_item it = {.body = r->body, .body_len = r->body_len, .key = r->idem, .order = r->truck, .ud = r};
    for (size_t di = 0; di < n->routes.dest_count && !n->fatal; di++) {
        if (!(to & (1ull << di)))
            continue;
        r->pending++;
        r->refs++;
        int q = deliver_submit(n->dl, (int)di, &it);
        if (q == 0)
            continue;
        r->refs--;
        if (q < 0) {
            log_error("out of memory for a delivery; stopping");
            n->fatal = 1; /* r stays unfinished: read again after the restart */
            break;
        }
        char why[96];
        snprintf(why, sizeof(why), "%zu records queued, the bound is %d", deliver_queued(n->dl, (int)di),
                 n->routes.dests[di].queue);
        dead_letter(n, r, (int)di, deliver_reason_name(DELIVER_QUEUE_FULL), why, 0);
    }
    rec_finish_one(n, r); /* the function's own share */
    rec_unref(r);
}

/* ---- offsets and rebalances ------------------------------------------------------------ */

/* Commits each assigned partition's frontier (all: also when it did not
 * move, for the last commit).  sync waits for the answer. */
static void commit(struct notify *n, int all, int sync)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(8);
    for (int i = 0; i < n->nparts; i++) {
        struct part *p = &n->parts[i];
        if (!p->assigned)
            continue;
        int64_t off = all ? frontier_position(&p->f) : frontier_take_commit(&p->f);
        if (off >= 0)
            rd_kafka_topic_partition_list_add(l, n->topic, i)->offset = off;
    }
    if (l->cnt > 0) {
        rd_kafka_resp_err_t e = rd_kafka_commit(n->consumer, l, sync ? 0 : 1);
        if (e && e != RD_KAFKA_RESP_ERR__NO_OFFSET)
            log_warn("cannot commit offsets of group %s: %s", n->group, rd_kafka_err2str(e));
    }
    rd_kafka_topic_partition_list_destroy(l);
}

/* Records the frontiers keep (finished or not), and of them unfinished. */
static size_t kept(const struct notify *n, size_t *undone)
{
    size_t k = 0, u = 0;
    for (int i = 0; i < n->nparts; i++) {
        k += n->parts[i].f.count;
        u += frontier_outstanding(&n->parts[i].f);
    }
    if (undone)
        *undone = u;
    return k;
}

static int of_partition(void *ud, void *arg)
{
    return ((struct rec *)ud)->partition == *(int32_t *)arg;
}

/* Sets each assigned partition's start: its committed offset, or for a
 * partition the group never committed, its first (--start earliest) or
 * next (latest) offset now, explicitly rather than through
 * auto.offset.reset, so that the frontier knows it and commits it before
 * any record comes: alerts produced while notify is stopped are read after
 * the restart, not skipped by "latest".  A partition whose offsets Kafka
 * does not tell keeps INVALID (auto.offset.reset decides, the frontier
 * starts with its first record). */
static void resolve_starts(struct notify *n, rd_kafka_topic_partition_list_t *parts)
{
    rd_kafka_resp_err_t e = rd_kafka_committed(n->consumer, parts, 10000);
    if (e) {
        log_warn("cannot read the committed offsets of group %s: %s", n->group, rd_kafka_err2str(e));
        for (int i = 0; i < parts->cnt; i++)
            parts->elems[i].offset = RD_KAFKA_OFFSET_INVALID;
        return;
    }
    for (int i = 0; i < parts->cnt; i++) {
        rd_kafka_topic_partition_t *t = &parts->elems[i];
        if (t->err)
            t->offset = RD_KAFKA_OFFSET_INVALID;
        if (t->offset >= 0)
            continue;
        int64_t lo, hi;
        if (rd_kafka_query_watermark_offsets(n->consumer, t->topic, t->partition, &lo, &hi, 10000) == 0) {
            t->offset = n->start_earliest ? lo : hi;
            log_info("%s [%d]: no committed offset, starting at %s offset %" PRId64, t->topic, t->partition,
                     n->start_earliest ? "the earliest" : "the latest", t->offset);
        } else {
            t->offset = RD_KAFKA_OFFSET_INVALID;
        }
    }
}

static void rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t *parts, void *opaque)
{
    struct notify *n = opaque;
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        resolve_starts(n, parts);
        for (int i = 0; i < parts->cnt; i++) {
            struct part *p = part_of(n, parts->elems[i].partition);
            if (!p)
                continue;
            p->assigned = 1;
            p->epoch++;
            frontier_reset(&p->f);
            if (parts->elems[i].offset >= 0)
                frontier_start(&p->f, parts->elems[i].offset);
        }
        rd_kafka_assign(rk, parts);
        n->paused = 0;
        log_info("assigned %d partition(s) of %s", parts->cnt, n->topic);
        return;
    }
    int lost = rd_kafka_assignment_lost(rk);
    if (!lost && !n->fatal)
        commit(n, 1, 1);
    for (int i = 0; i < parts->cnt; i++) {
        struct part *p = part_of(n, parts->elems[i].partition);
        if (!p)
            continue;
        int32_t pn = parts->elems[i].partition;
        deliver_drop(n->dl, of_partition, &pn); /* in-flight ones are dropped when they end (on_wanted) */
        p->assigned = 0;
        p->epoch++;
        frontier_reset(&p->f);
    }
    rd_kafka_assign(rk, NULL);
    log_info("%s %d partition(s)", lost ? "lost" : "revoked", parts->cnt);
}

/* Pauses reading while the frontiers keep too many records, resumes below
 * half of that. */
static void flow_control(struct notify *n)
{
    size_t k = kept(n, NULL);
    int want = k > (size_t)n->max_outstanding ? 1 : k < (size_t)n->max_outstanding / 2 ? 0 : n->paused;
    if (want == n->paused)
        return;
    rd_kafka_topic_partition_list_t *a = NULL;
    if (rd_kafka_assignment(n->consumer, &a) == 0 && a) {
        if (want)
            rd_kafka_pause_partitions(n->consumer, a);
        else
            rd_kafka_resume_partitions(n->consumer, a);
        rd_kafka_topic_partition_list_destroy(a);
    }
    n->paused = want;
    log_info("%s reading: %zu records kept (--max-outstanding %d)", want ? "pausing" : "resuming", k,
             n->max_outstanding);
}

/* ---- the loop -------------------------------------------------------------------------- */

static void update_metrics(struct notify *n)
{
    size_t undone;
    kept(n, &undone);
    metric_set(n->m_outstanding, (double)undone);
    deliver_update_metrics(n->dl);
}

static int run(struct notify *n)
{
    int64_t last_commit = fs_mono_ms(), last_tick = last_commit;
    while (!n->fatal) {
        int64_t now = fs_mono_ms();
        if (!n->stopping && sig_stopping()) {
            n->stopping = 1;
            n->drain_deadline = now + n->drain_ms;
            deliver_set_stopping(n->dl);
            log_info("stopping: reading no more; %zu deliveries and %zu dead letters to finish within %" PRId64 " ms",
                     deliver_queued(n->dl, -1), n->dead_flying, n->drain_ms);
        }
        if (n->stopping && ((deliver_queued(n->dl, -1) == 0 && n->dead_flying == 0) || now >= n->drain_deadline))
            break;
        if (kafka_consumer_fatal(n->consumer, n->group)) {
            n->fatal = 1;
            break;
        }
        if (!n->stopping) {
            for (int i = 0; i < POLL_BATCH && !n->fatal; i++) {
                rd_kafka_message_t *m = rd_kafka_consumer_poll(n->consumer, 0);
                if (!m)
                    break;
                if (m->err) {
                    if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
                        log_warn("consumer: %s", rd_kafka_message_errstr(m));
                } else if (strcmp(rd_kafka_topic_name(m->rkt), n->topic) == 0) {
                    handle(n, m);
                }
                rd_kafka_message_destroy(m);
            }
            flow_control(n);
        }
        rd_kafka_poll(n->dlq, 0);
        now = fs_mono_ms();
        if (!n->stopping && now - last_commit >= n->commit_ms) {
            commit(n, 0, 0);
            last_commit = now;
        }
        if (now - last_tick >= 1000) {
            update_metrics(n);
            last_tick = now;
        }
        deliver_step(n->dl, 50);
    }
    return n->fatal ? 1 : 0;
}

/* Abandons what is still queued or in flight (delivered again after a
 * restart: it is not committed), waits for the dead letters already sent,
 * and commits the frontiers. */
static void finish(struct notify *n, int clean)
{
    size_t left = deliver_queued(n->dl, -1);
    deliver_abandon(n->dl);
    if (left)
        log_warn("%zu deliveries not finished within --drain-ms: not committed, delivered again after a restart", left);
    int64_t until = fs_mono_ms() + (n->drain_ms > 5000 ? n->drain_ms : 5000);
    while (n->dead_flying > 0 && fs_mono_ms() < until)
        rd_kafka_poll(n->dlq, 100);
    if (clean && !n->fatal)
        commit(n, 1, 1);
}

/* ---- setup ------------------------------------------------------------------------------- */

/* librdkafka calls this from one of its threads when the consumer queue
 * goes from empty to not empty. */
static void on_records(rd_kafka_t *rk, void *opaque)
{
    (void)rk;
    struct notify *n = opaque;
    deliver_wakeup(n->dl);
}

static int notify_kafka_new(struct notify *n, int start_earliest)
{
    char err[1024];
    static const char *const pdefaults[] = {
        KAFKA_RELIABLE_PRODUCER_DEFAULTS,
        "client.id",
        "fleetsync-notify",
        NULL,
    };
    rd_kafka_conf_t *conf = kafka_conf_new(n->cfg, pdefaults, err, sizeof(err));
    if (!conf) {
        log_error("%s", err);
        return -1;
    }
    rd_kafka_conf_set_opaque(conf, n);
    rd_kafka_conf_set_dr_msg_cb(conf, dlq_delivered);
    if (!(n->dlq = kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err)))) {
        log_error("cannot create the dead-letter producer: %s", err);
        return -1;
    }
    static const char *const cdefaults[] = {
        "client.id",
        "fleetsync-notify",
        "enable.auto.commit",
        "false",
        "enable.auto.offset.store",
        "false",
        "enable.partition.eof",
        "false",
        NULL,
    };
    conf = kafka_conf_new(n->cfg, cdefaults, err, sizeof(err));
    if (!conf) {
        log_error("%s", err);
        return -1;
    }
    if (rd_kafka_conf_set(conf, "group.id", n->group, err, sizeof(err)) != RD_KAFKA_CONF_OK ||
        rd_kafka_conf_set(conf, "auto.offset.reset", start_earliest ? "earliest" : "latest", err, sizeof(err)) !=
            RD_KAFKA_CONF_OK) {
        rd_kafka_conf_destroy(conf);
        log_error("%s", err);
        return -1;
    }
    rd_kafka_conf_set_rebalance_cb(conf, rebalance_cb);
    rd_kafka_conf_set_opaque(conf, n);
    if (!(n->consumer = kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err)))) {
        log_error("cannot create the Kafka consumer: %s", err);
        return -1;
    }
    rd_kafka_poll_set_consumer(n->consumer);
    /* A record (or rebalance) arriving while the loop waits on the HTTP
     * transfers ends that wait: it is read at once, not after up to the
     * loop's 50 ms. */
    rd_kafka_queue_t *q = rd_kafka_queue_get_consumer(n->consumer);
    rd_kafka_queue_cb_event_enable(q, on_records, n);
    rd_kafka_queue_destroy(q);
    if (kafka_wait_ready(n->consumer, 30000, err, sizeof(err)) != 0) {
        log_error("cannot reach Kafka at %s: %s", n->cfg->brokers, err);
        return -1;
    }
    rd_kafka_topic_partition_list_t *subs = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(subs, n->topic, RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t e = rd_kafka_subscribe(n->consumer, subs);
    rd_kafka_topic_partition_list_destroy(subs);
    if (e) {
        log_error("cannot subscribe to %s: %s", n->topic, rd_kafka_err2str(e));
        return -1;
    }
    return 0;
}

static void notify_release(struct notify *n)
{
    if (n->dl)
        deliver_abandon(n->dl);
    if (n->consumer)
        kafka_consumer_destroy(n->consumer); /* the revoke callback commits (what finish committed already) */
    if (n->dlq) {
        /* Unacknowledged dead letters: their records were not committed.
         * Purged, so that their callbacks free them. */
        n->closing = 1;
        rd_kafka_purge(n->dlq, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
        for (int i = 0; i < 50 && n->dead_flying > 0; i++)
            rd_kafka_poll(n->dlq, 100);
        rd_kafka_destroy(n->dlq);
    }
    deliver_free(n->dl);
    for (int i = 0; i < n->nparts; i++)
        frontier_release(&n->parts[i].f);
    free(n->parts);
    notify_routes_release(&n->routes);
    metrics_free(n->metrics);
}

/* ---- the command ---------------------------------------------------------------------------- */

static const char notify_about[] =
    "The webhook pipeline: consumer group fleetsync-notify reads truck-alerts and POSTs\n"
    "each alert (its JSON as the detector wrote it) to the destinations whose routes it\n"
    "matches (rule, truck id prefix, raised/cleared), with the headers\n"
    "  X-FleetSync-Signature: t=<unix ms>,v1=<hex HMAC-SHA256(secret, \"<t>.<body>\")>\n"
    "  X-FleetSync-Idempotency-Key: <alert_id>:<state>\n"
    "At least once, in order per truck and destination: 5xx, 408, 429, timeouts and\n"
    "refused connections are retried with exponential backoff (with jitter); any other\n"
    "answer that is not 2xx, a full destination queue, or retries failing for\n"
    "retry_for_s send the alert to truck-alerts-dlq (headers destination, error,\n"
    "error_detail).  Offsets are committed only below records every destination has\n"
    "finished, so a crash re-delivers with the same idempotency key and loses nothing.\n"
    "Routes file (--routes; default DATA_DIR/notify.json, which `fleetsync up` looks for):\n"
    "  {\"destinations\": {\"ops\": {\"url\": \"https://ops.example/hook\", \"secret\": \"...16+ bytes...\",\n"
    "                             \"timeout_ms\": 5000, \"queue\": 1000, \"parallel\": 4}},\n"
    "   \"routes\": [{\"rules\": [\"stationary_engine_on\"], \"truck_prefix\": \"TRK-\",\n"
    "               \"states\": [\"raised\"], \"to\": [\"ops\"]}]}\n"
    "docs/notify.md has every field, how a receiver checks the signature, and the metrics.";

#define STR_(x) #x
#define STR(x) STR_(x)

static const char notify_after[] = "Metrics on 127.0.0.1:" STR(
    NOTIFY_DEFAULT_METRICS_PORT) "/metrics (--metrics-port N, -1 for none).\n"
                                 "Examples:\n"
                                 "  fleetsync notify --check                  # read DATA_DIR/notify.json, say what it "
                                 "routes, exit\n"
                                 "  fleetsync notify --routes /etc/fleetsync/notify.json --brokers k1:9092\n"
                                 "Exit status: 0 after a clean stop (SIGINT/SIGTERM: reading stops, deliveries get "
                                 "--drain-ms\n"
                                 "to finish, what finished is committed), 1 runtime failure, 2 usage error or a bad "
                                 "routes file.";

static const char *const start_words[] = {"latest", "earliest", NULL};

int cmd_notify(int argc, char **argv)
{
    struct fs_config cfg;
    struct notify n;
    const char *routes_path = NULL;
    char routes_buf[4096], err[1024];
    int rest, rc = 2, check = 0, start = 0, curl_up = 0;
    int64_t drain_ms = 10000, commit_ms = 1000;
    int max_outstanding = 100000;

    memset(&n, 0, sizeof(n));
    cfg_init(&cfg);
    cfg.kafka_user = KA_USER_NOTIFY;
    const struct opt opts[] = {
        OPT_STR("routes", "FILE", &routes_path, "the routes file (default DATA_DIR/notify.json)"),
        OPT_BOOLEAN("check", &check, "read the routes file, print what it routes where, and exit\n(0: good, 2: bad)"),
        OPT_WORDS("start", "earliest|latest", &start, start_words,
                  "where a new group starts in each partition (default latest:\n"
                  "a first start does not send the topic's 30 days of old alerts)"),
        OPT_DUR("drain-ms", "MS", &drain_ms, 600000,
                "on SIGTERM, deliveries in progress get this long to finish\n(default 10s; the rest is delivered "
                "again after a restart)"),
        OPT_DUR("commit-ms", "MS", &commit_ms, 60000, "commit the finished offsets this often (default 1s)"),
        OPT_INTEGER("max-outstanding", "N", &max_outstanding, 100, 100000000,
                    "pause reading while this many records wait for a slow destination\n(default 100000)"),
        OPT_END_MARK,
    };
    const struct opt_command cmd = {
        .no_args = 1,
        .name = "notify",
        .usage = "fleetsync notify [--routes FILE] [options]",
        .about = notify_about,
        .after = notify_after,
        .opts = opts,
        .shared = 1,
    };
    if (opt_parse_or_leave(&cmd, &cfg, argc, argv, &rest, &rc))
        goto out;
    if (commit_ms < 10)
        commit_ms = 10;
    if (!routes_path) {
        snprintf(routes_buf, sizeof(routes_buf), "%s/%s", cfg.data_dir, NOTIFY_ROUTES_FILE);
        routes_path = routes_buf;
    }
    if (notify_routes_load(routes_path, &n.routes, err, sizeof(err)) != 0) {
        fprintf(stderr, "fleetsync notify: bad routes file %s\n", err);
        rc = 2;
        goto out;
    }
    struct stat st;
    if (stat(routes_path, &st) == 0 && (st.st_mode & 077))
        log_warn("%s can be read by other users (mode %03o) and holds the destinations' secrets: chmod 600 it",
                 routes_path, (unsigned)(st.st_mode & 0777));
    if (check) {
        printf("%s: %zu destination(s), %zu route(s)\n", routes_path, n.routes.dest_count, n.routes.route_count);
        for (size_t i = 0; i < n.routes.dest_count; i++) {
            const struct notify_dest *d = &n.routes.dests[i];
            printf("  %-16s %s (timeout %d ms, queue %d, parallel %d, backoff %d..%d ms, retry for %" PRId64 " s)\n",
                   d->name, d->url, d->timeout_ms, d->queue, d->parallel, d->backoff_base_ms, d->backoff_max_ms,
                   d->retry_for_ms / 1000);
        }
        rc = 0;
        goto out;
    }

    rc = 1;
    sig_install();
    n.cfg = &cfg;
    n.group = cfg.group ? cfg.group : NOTIFY_DEFAULT_GROUP;
    n.drain_ms = drain_ms;
    n.commit_ms = commit_ms;
    n.max_outstanding = max_outstanding;
    cfg_topic(&cfg, TOPIC_ALERTS, n.topic, sizeof(n.topic));
    cfg_topic(&cfg, TOPIC_ALERTS_DLQ, n.dlq_topic, sizeof(n.dlq_topic));
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        log_error("cannot initialize libcurl");
        goto out;
    }
    curl_up = 1;
    if (!(n.metrics = metrics_new()) || !(n.dl = deliver_new(&n.routes, n.metrics, &deliver_ops, &n))) {
        log_error("out of memory");
        goto out;
    }
    n.m_records = metrics_counter(n.metrics, "fleetsync_notify_records_total", "Records read from truck-alerts.", NULL);
    n.m_invalid = metrics_counter(n.metrics, "fleetsync_notify_invalid_total",
                                  "Records that are not alerts (dead-lettered with reason invalid_alert).", NULL);
    n.m_unrouted = metrics_counter(n.metrics, "fleetsync_notify_unrouted_total", "Alerts that matched no route.", NULL);
    n.m_outstanding = metrics_gauge(n.metrics, "fleetsync_notify_outstanding",
                                    "Records read and not finished by every destination (not committed).", NULL);
    n.m_dead_invalid =
        metrics_counter(n.metrics, "fleetsync_notify_dead_letters_total",
                        "Alerts dead-lettered for a destination, by reason.", "reason=\"invalid_alert\"");
    n.m_dlq_failed = metrics_counter(n.metrics, "fleetsync_notify_dlq_errors_total",
                                     "Dead letters Kafka refused (notify then stops: the record is read again).", NULL);
    if (metrics_serve_option(n.metrics, cfg.metrics_port, NOTIFY_DEFAULT_METRICS_PORT) != 0)
        goto out;
    n.start_earliest = start == 1;
    if (notify_kafka_new(&n, n.start_earliest) != 0)
        goto out;
    log_info("consuming %s from %s as group %s: %zu destination(s), %zu route(s) from %s; dead letters to %s", n.topic,
             cfg.brokers, n.group, n.routes.dest_count, n.routes.route_count, routes_path, n.dlq_topic);
    rc = run(&n);
    finish(&n, rc == 0);
    update_metrics(&n);
    log_info("stopped: %.0f alerts read, %.0f deliveries, %.0f dead letters", metric_value(n.m_records),
             deliver_total_delivered(n.dl), deliver_total_dead(n.dl) + metric_value(n.m_dead_invalid));
out:
    notify_release(&n);
    if (curl_up)
        curl_global_cleanup();
    cfg_release(&cfg);
    return rc;
}
