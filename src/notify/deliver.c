/*
 * deliver.c - the HTTP delivery engine of notify (see deliver.h): lanes of
 * jobs per destination, one libcurl multi handle, retries with backoff.
 */
#include "notify/deliver.h"

#include "core/clock.h"
#include "core/log.h"
#include "core/metrics.h"
#include "notify/policy.h"
#include "notify/sign.h"

#include <curl/curl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct job {
    struct deliver_item it;
    struct job *next; /* in its lane */
    int dest, lane, attempts;
    int64_t first_ms; /* monotonic: the first attempt's start */
    int64_t due_ms;   /* monotonic: not before */
    CURL *easy;       /* in flight when not NULL */
    struct curl_slist *hdrs;
    int64_t submitted_ms;
    char errbuf[CURL_ERROR_SIZE];
};

struct lane {
    struct job *head, *tail;
};

struct dest {
    const struct notify_dest *d;
    struct lane *lanes; /* d->parallel of them */
    size_t depth;       /* jobs in the lanes */
    struct metric *m_delivered, *m_retries, *m_dead[DELIVER_REASONS], *m_depth, *m_latency;
};

struct deliver {
    const struct notify_routes *r;
    struct dest *dests;
    const struct deliver_ops *ops;
    void *ctx;
    CURLM *multi;
    int stopping;
    uint32_t rnd;
};

static const char *const reason_names[DELIVER_REASONS] = {"queue_full", "refused", "retries_exhausted"};

const char *deliver_reason_name(enum deliver_reason r)
{
    return (int)r >= 0 && r < DELIVER_REASONS ? reason_names[r] : "unknown";
}

static uint32_t next_rnd(struct deliver *d)
{
    d->rnd ^= d->rnd << 13;
    d->rnd ^= d->rnd >> 17;
    d->rnd ^= d->rnd << 5;
    return d->rnd;
}

static uint32_t fnv1a(const char *s)
{
    uint32_t h = 2166136261u;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h;
}

static void register_metrics(struct dest *t, struct metrics *m)
{
    static const double bounds[] = {0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800};
    char l[128];
    snprintf(l, sizeof(l), "destination=\"%s\"", t->d->name);
    t->m_delivered =
        metrics_counter(m, "fleetsync_notify_delivered_total", "Alerts a destination answered with 2xx.", l);
    t->m_retries = metrics_counter(m, "fleetsync_notify_retries_total",
                                   "Failed attempts retried later (5xx, 408, 429, no answer).", l);
    for (int r = 0; r < DELIVER_REASONS; r++) {
        char lr[192];
        snprintf(lr, sizeof(lr), "%s,reason=\"%s\"", l, reason_names[r]);
        t->m_dead[r] = metrics_counter(m, "fleetsync_notify_dead_letters_total",
                                       "Alerts dead-lettered, by destination and reason.", lr);
    }
    t->m_depth = metrics_gauge(m, "fleetsync_notify_queue_depth", "Alerts waiting or in flight for a destination.", l);
    t->m_latency = metrics_histogram(m, "fleetsync_notify_delivery_seconds",
                                     "From reading an alert to its 2xx answer, retries included.", l, bounds,
                                     (int)(sizeof(bounds) / sizeof(bounds[0])));
}

struct deliver *deliver_new(const struct notify_routes *r, struct metrics *m, const struct deliver_ops *ops, void *ctx)
{
    struct deliver *d = calloc(1, sizeof(*d));
    if (!d)
        return NULL;
    d->r = r;
    d->ops = ops;
    d->ctx = ctx;
    d->rnd = (uint32_t)fs_wall_ms() | 1u;
    d->dests = calloc(r->dest_count ? r->dest_count : 1, sizeof(*d->dests));
    d->multi = curl_multi_init();
    if (!d->dests || !d->multi)
        goto fail;
    for (size_t i = 0; i < r->dest_count; i++) {
        struct dest *t = &d->dests[i];
        t->d = &r->dests[i];
        if (!(t->lanes = calloc((size_t)t->d->parallel, sizeof(*t->lanes))))
            goto fail;
        register_metrics(t, m);
    }
    return d;
fail:
    deliver_free(d);
    return NULL;
}

int deliver_submit(struct deliver *d, int dest, const struct deliver_item *it)
{
    struct dest *t = &d->dests[dest];
    if (!notify_queue_admits(t->depth, (size_t)t->d->queue)) {
        metric_add(t->m_dead[DELIVER_QUEUE_FULL], 1);
        return 1;
    }
    struct job *j = calloc(1, sizeof(*j));
    if (!j)
        return -1;
    j->it = *it;
    j->dest = dest;
    j->lane = (int)(fnv1a(it->order) % (uint32_t)t->d->parallel);
    j->submitted_ms = fs_mono_ms();
    struct lane *l = &t->lanes[j->lane];
    if (l->tail)
        l->tail->next = j;
    else
        l->head = j;
    l->tail = j;
    t->depth++;
    return 0;
}

static size_t discard(char *p, size_t size, size_t nmemb, void *ud)
{
    (void)p;
    (void)ud;
    return size * nmemb;
}

static void end_transfer(struct deliver *d, struct job *j)
{
    if (j->easy) {
        curl_multi_remove_handle(d->multi, j->easy);
        curl_easy_cleanup(j->easy);
        j->easy = NULL;
    }
    curl_slist_free_all(j->hdrs);
    j->hdrs = NULL;
}

/* Starts one attempt of j.  Returns 0, or -1 when it could not be set up
 * (out of memory). */
static int job_start(struct deliver *d, struct dest *t, struct job *j)
{
    char sig[NOTIFY_SIG_MAX], h_sig[NOTIFY_SIG_MAX + 32], h_key[512];
    if (notify_sign(t->d->secret, t->d->secret_len, fs_wall_ms(), j->it.body, j->it.body_len, sig) != 0)
        return -1;
    snprintf(h_sig, sizeof(h_sig), "X-FleetSync-Signature: %s", sig);
    snprintf(h_key, sizeof(h_key), "X-FleetSync-Idempotency-Key: %s", j->it.key);
    struct curl_slist *h = NULL, *n;
    const char *lines[] = {"Content-Type: application/json", h_sig, h_key, "Expect:"};
    for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++) {
        if (!(n = curl_slist_append(h, lines[i]))) {
            curl_slist_free_all(h);
            return -1;
        }
        h = n;
    }
    CURL *e = curl_easy_init();
    if (!e) {
        curl_slist_free_all(h);
        return -1;
    }
    j->errbuf[0] = '\0';
    curl_easy_setopt(e, CURLOPT_URL, t->d->url);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(e, CURLOPT_POST, 1L);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, j->it.body);
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)j->it.body_len);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(e, CURLOPT_USERAGENT, "fleetsync-notify");
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)t->d->timeout_ms);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)(t->d->timeout_ms < 10000 ? t->d->timeout_ms : 10000));
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, discard);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, j->errbuf);
    curl_easy_setopt(e, CURLOPT_PRIVATE, j);
    if (curl_multi_add_handle(d->multi, e) != CURLM_OK) {
        curl_easy_cleanup(e);
        curl_slist_free_all(h);
        return -1;
    }
    j->easy = e;
    j->hdrs = h;
    return 0;
}

/* Takes the head job off lane l of destination dest: done (with the
 * outcome) or dropped (outcome < 0). */
static void lane_pop(struct deliver *d, int dest, struct lane *l, int outcome, enum deliver_reason why,
                     const char *detail)
{
    struct job *j = l->head;
    l->head = j->next;
    if (!l->head)
        l->tail = NULL;
    d->dests[dest].depth--;
    end_transfer(d, j);
    if (outcome < 0)
        d->ops->dropped(d->ctx, j->it.ud);
    else
        d->ops->done(d->ctx, dest, j->it.ud, outcome, why, detail, j->attempts);
    free(j);
}

/* An attempt of the head of lane l ended with HTTP status (0: no answer). */
static void attempt_done(struct deliver *d, int dest, struct lane *l, long status, CURLcode cc, int64_t retry_after_s)
{
    struct dest *t = &d->dests[dest];
    struct job *j = l->head;
    int64_t now = fs_mono_ms();
    char detail[CURL_ERROR_SIZE + 64];
    if (status > 0)
        snprintf(detail, sizeof(detail), "HTTP %ld", status);
    else
        snprintf(detail, sizeof(detail), "%s", j->errbuf[0] ? j->errbuf : curl_easy_strerror(cc));
    end_transfer(d, j);
    if (d->ops->wanted && !d->ops->wanted(d->ctx, j->it.ud)) {
        lane_pop(d, dest, l, -1, DELIVER_REFUSED, "");
        return;
    }
    switch (notify_verdict_of(status)) {
    case NOTIFY_DELIVERED:
        metric_add(t->m_delivered, 1);
        metric_observe(t->m_latency, (double)(now - j->submitted_ms) / 1000.0);
        log_debug("%s delivered to %s (%s, attempt %d)", j->it.key, t->d->name, detail, j->attempts);
        lane_pop(d, dest, l, 1, DELIVER_REFUSED, detail);
        return;
    case NOTIFY_RETRY:
        if (d->stopping || notify_may_retry(j->first_ms, now, t->d->retry_for_ms)) {
            int64_t wait = notify_backoff_ms(t->d->backoff_base_ms, t->d->backoff_max_ms, j->attempts, next_rnd(d));
            /* A receiver's Retry-After (429, 503) is honoured up to backoff_max_ms. */
            if (retry_after_s > 0 && retry_after_s * 1000 > wait)
                wait = retry_after_s * 1000 < t->d->backoff_max_ms ? retry_after_s * 1000 : t->d->backoff_max_ms;
            j->due_ms = now + wait;
            metric_add(t->m_retries, 1);
            if (j->attempts == 1 || log_get_level() >= LOG_DEBUG)
                log_info("%s to %s failed (%s); retrying in %" PRId64 " ms", j->it.key, t->d->name, detail,
                         j->due_ms - now);
            return;
        }
        metric_add(t->m_dead[DELIVER_RETRIES_EXHAUSTED], 1);
        lane_pop(d, dest, l, 0, DELIVER_RETRIES_EXHAUSTED, detail);
        return;
    case NOTIFY_PERMANENT:
        metric_add(t->m_dead[DELIVER_REFUSED], 1);
        lane_pop(d, dest, l, 0, DELIVER_REFUSED, detail);
        return;
    }
}

/* Starts every lane head whose time has come; lowers *next_due to the
 * earliest waiting retry. */
static void start_due(struct deliver *d, int64_t *next_due)
{
    int64_t now = fs_mono_ms();
    for (size_t i = 0; i < d->r->dest_count; i++) {
        struct dest *t = &d->dests[i];
        for (int li = 0; li < t->d->parallel; li++) {
            struct job *j = t->lanes[li].head;
            if (!j || j->easy)
                continue;
            if (j->due_ms > now) {
                if (j->due_ms < *next_due)
                    *next_due = j->due_ms;
                continue;
            }
            if (!j->attempts)
                j->first_ms = now;
            j->attempts++;
            if (job_start(d, t, j) != 0) {
                j->due_ms =
                    now + notify_backoff_ms(t->d->backoff_base_ms, t->d->backoff_max_ms, j->attempts, next_rnd(d));
                log_warn("cannot start a request to %s (out of memory); retrying", t->d->name);
            }
        }
    }
}

static void read_completions(struct deliver *d)
{
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(d->multi, &left))) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        struct job *j = NULL;
        long status = 0;
        CURLcode cc = msg->data.result;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&j);
        curl_off_t retry_after = 0;
        if (cc == CURLE_OK) {
            curl_easy_getinfo(msg->easy_handle, CURLINFO_RESPONSE_CODE, &status);
            curl_easy_getinfo(msg->easy_handle, CURLINFO_RETRY_AFTER, &retry_after);
        }
        if (j)
            attempt_done(d, j->dest, &d->dests[j->dest].lanes[j->lane], status, cc, (int64_t)retry_after);
    }
}

void deliver_step(struct deliver *d, int max_wait_ms)
{
    int64_t now = fs_mono_ms(), next_due = now + max_wait_ms;
    int running = 0;
    start_due(d, &next_due);
    curl_multi_perform(d->multi, &running);
    read_completions(d);
    /* An attempt that ended may have freed a lane whose next job is due now. */
    start_due(d, &next_due);
    curl_multi_perform(d->multi, &running);
    int wait_ms = (int)(next_due - fs_mono_ms());
    if (wait_ms > max_wait_ms)
        wait_ms = max_wait_ms;
    if (wait_ms > 0)
        curl_multi_poll(d->multi, NULL, 0, wait_ms, NULL);
}

void deliver_wakeup(struct deliver *d)
{
    curl_multi_wakeup(d->multi);
}

size_t deliver_queued(const struct deliver *d, int dest)
{
    if (dest >= 0)
        return d->dests[dest].depth;
    size_t q = 0;
    for (size_t i = 0; i < d->r->dest_count; i++)
        q += d->dests[i].depth;
    return q;
}

void deliver_set_stopping(struct deliver *d)
{
    d->stopping = 1;
}

void deliver_drop(struct deliver *d, int (*pred)(void *ud, void *arg), void *arg)
{
    for (size_t i = 0; i < d->r->dest_count; i++) {
        struct dest *t = &d->dests[i];
        for (int li = 0; li < t->d->parallel; li++) {
            struct lane *l = &t->lanes[li];
            struct job **pp = &l->head, *j;
            l->tail = NULL;
            while ((j = *pp)) {
                if (!j->easy && pred(j->it.ud, arg)) {
                    *pp = j->next;
                    t->depth--;
                    d->ops->dropped(d->ctx, j->it.ud);
                    free(j);
                    continue;
                }
                l->tail = j;
                pp = &j->next;
            }
        }
    }
}

void deliver_abandon(struct deliver *d)
{
    for (size_t i = 0; d->dests && i < d->r->dest_count; i++) {
        struct dest *t = &d->dests[i];
        for (int li = 0; t->lanes && li < t->d->parallel; li++)
            while (t->lanes[li].head)
                lane_pop(d, (int)i, &t->lanes[li], -1, DELIVER_REFUSED, "");
    }
}

void deliver_free(struct deliver *d)
{
    if (!d)
        return;
    deliver_abandon(d);
    for (size_t i = 0; d->dests && i < d->r->dest_count; i++)
        free(d->dests[i].lanes);
    free(d->dests);
    if (d->multi)
        curl_multi_cleanup(d->multi);
    free(d);
}

double deliver_total_delivered(const struct deliver *d)
{
    double n = 0;
    for (size_t i = 0; i < d->r->dest_count; i++)
        n += metric_value(d->dests[i].m_delivered);
    return n;
}

double deliver_total_dead(const struct deliver *d)
{
    double n = 0;
    for (size_t i = 0; i < d->r->dest_count; i++)
        for (int r = 0; r < DELIVER_REASONS; r++)
            n += metric_value(d->dests[i].m_dead[r]);
    return n;
}

void deliver_update_metrics(struct deliver *d)
{
    for (size_t i = 0; i < d->r->dest_count; i++)
        metric_set(d->dests[i].m_depth, (double)d->dests[i].depth);
}
