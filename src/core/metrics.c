/*
 * metrics.c - Prometheus registry and endpoint (see metrics.h).
 *
 * Series live in an array that only grows while the lock is held; values
 * are atomics, so the hot path of a service never takes the lock.
 */
#include "core/metrics.h"
#include "core/grow.h"
#include "core/log.h"

#include <civetweb.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct metric {
    char *name;
    char *help;
    char *labels;
    enum metric_kind kind;
    _Atomic uint64_t value; /* counter: count; gauge: bits of a double; histogram: count */
    /* histogram only */
    int nbounds;
    double bounds[METRICS_MAX_BUCKETS];
    _Atomic uint64_t buckets[METRICS_MAX_BUCKETS + 1]; /* not cumulative; last = +Inf */
    _Atomic uint64_t sum_micro;                        /* sum of observations x 1e6 */
};

struct metrics {
    pthread_mutex_t lock;
    struct metric **series;
    size_t count, cap;
    struct mg_context *server;
    int port;
};

static pthread_once_t mg_once = PTHREAD_ONCE_INIT;
static void mg_init_once(void)
{
    mg_init_library(0);
}

struct metrics *metrics_new(void)
{
    struct metrics *m = calloc(1, sizeof(*m));
    if (m)
        pthread_mutex_init(&m->lock, NULL);
    return m;
}

static struct metric *metrics_add(struct metrics *m, enum metric_kind kind, const char *name, const char *help,
                                  const char *labels)
{
    struct metric *s = NULL;
    pthread_mutex_lock(&m->lock);
    for (size_t i = 0; i < m->count; i++) {
        struct metric *e = m->series[i];
        if (strcmp(e->name, name) == 0 && strcmp(e->labels, labels ? labels : "") == 0) {
            s = e;
            goto out;
        }
    }
    if (grow_one(&m->series, &m->cap, m->count, sizeof(*m->series), 32) != 0)
        goto out;
    s = calloc(1, sizeof(*s));
    if (!s)
        goto out;
    s->name = strdup(name);
    s->help = strdup(help ? help : "");
    s->labels = strdup(labels ? labels : "");
    s->kind = kind;
    if (!s->name || !s->help || !s->labels) {
        free(s->name);
        free(s->help);
        free(s->labels);
        free(s);
        s = NULL;
        goto out;
    }
    m->series[m->count++] = s;
out:
    pthread_mutex_unlock(&m->lock);
    return s;
}

struct metric *metrics_counter(struct metrics *m, const char *name, const char *help, const char *labels)
{
    return metrics_add(m, METRIC_COUNTER, name, help, labels);
}

struct metric *metrics_gauge(struct metrics *m, const char *name, const char *help, const char *labels)
{
    return metrics_add(m, METRIC_GAUGE, name, help, labels);
}

struct metric *metrics_histogram(struct metrics *m, const char *name, const char *help, const char *labels,
                                 const double *bounds, int nbounds)
{
    if (nbounds < 1 || nbounds > METRICS_MAX_BUCKETS)
        return NULL;
    struct metric *h = metrics_add(m, METRIC_HISTOGRAM, name, help, labels);
    if (h && h->nbounds == 0) {
        memcpy(h->bounds, bounds, (size_t)nbounds * sizeof(*bounds));
        h->nbounds = nbounds;
    }
    return h;
}

void metric_observe(struct metric *h, double v)
{
    int i = 0;
    while (i < h->nbounds && v > h->bounds[i])
        i++;
    atomic_fetch_add_explicit(&h->buckets[i], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->value, 1, memory_order_relaxed);
    if (v > 0)
        atomic_fetch_add_explicit(&h->sum_micro, (uint64_t)(v * 1e6), memory_order_relaxed);
}

void metric_tally_observe(struct metric_tally *t, double v)
{
    const struct metric *h = t->h;
    if (!h)
        return;
    int i = 0;
    while (i < h->nbounds && v > h->bounds[i])
        i++;
    t->buckets[i]++;
    t->count++;
    if (v > 0)
        t->sum_micro += (uint64_t)(v * 1e6);
}

void metric_tally_flush(struct metric_tally *t)
{
    struct metric *h = t->h;
    if (!h || !t->count)
        return;
    for (int i = 0; i <= h->nbounds; i++)
        if (t->buckets[i]) {
            atomic_fetch_add_explicit(&h->buckets[i], t->buckets[i], memory_order_relaxed);
            t->buckets[i] = 0;
        }
    atomic_fetch_add_explicit(&h->value, t->count, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->sum_micro, t->sum_micro, memory_order_relaxed);
    t->count = t->sum_micro = 0;
}

double metric_quantile(const struct metric *h, double q)
{
    struct metric *w = (struct metric *)h;
    uint64_t total = atomic_load_explicit(&w->value, memory_order_relaxed);
    if (!total || h->nbounds == 0)
        return 0;
    uint64_t rank = (uint64_t)(q * (double)total), seen = 0;
    for (int i = 0; i <= h->nbounds; i++) {
        seen += atomic_load_explicit(&w->buckets[i], memory_order_relaxed);
        if (seen > rank)
            return i < h->nbounds ? h->bounds[i] : h->bounds[h->nbounds - 1];
    }
    return h->bounds[h->nbounds - 1];
}

void metric_add(struct metric *c, uint64_t n)
{
    atomic_fetch_add_explicit(&c->value, n, memory_order_relaxed);
}

void metric_set(struct metric *g, double v)
{
    uint64_t bits;
    memcpy(&bits, &v, sizeof(bits));
    atomic_store_explicit(&g->value, bits, memory_order_relaxed);
}

double metric_value(const struct metric *s)
{
    uint64_t bits = atomic_load_explicit(&((struct metric *)s)->value, memory_order_relaxed);
    if (s->kind == METRIC_COUNTER)
        return (double)bits;
    double v;
    memcpy(&v, &bits, sizeof(v));
    return v;
}

/* A growing string for the rendering. */
struct sbuf {
    char *p;
    size_t len, cap;
    int oom;
};

static void sb_printf(struct sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(struct sbuf *b, const char *fmt, ...)
{
    if (b->oom)
        return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->p ? b->p + b->len : NULL, b->p ? b->cap - b->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0) {
            b->oom = 1;
            return;
        }
        if (b->p && b->len + (size_t)n < b->cap) {
            b->len += (size_t)n;
            return;
        }
        size_t cap = b->cap ? b->cap * 2 : 4096;
        while (cap < b->len + (size_t)n + 1)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
}

static void sb_histogram(struct sbuf *b, const struct metric *s)
{
    struct metric *w = (struct metric *)s;
    const char *sep = *s->labels ? "," : "";
    uint64_t cum = 0;
    for (int i = 0; i <= s->nbounds; i++) {
        cum += atomic_load_explicit(&w->buckets[i], memory_order_relaxed);
        if (i < s->nbounds)
            sb_printf(b, "%s_bucket{%s%sle=\"%g\"} %llu\n", s->name, s->labels, sep, s->bounds[i],
                      (unsigned long long)cum);
        else
            sb_printf(b, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", s->name, s->labels, sep, (unsigned long long)cum);
    }
    const char *open = *s->labels ? "{" : "", *close = *s->labels ? "}" : "";
    sb_printf(b, "%s_sum%s%s%s %.6f\n", s->name, open, s->labels, close,
              (double)atomic_load_explicit(&w->sum_micro, memory_order_relaxed) / 1e6);
    sb_printf(b, "%s_count%s%s%s %llu\n", s->name, open, s->labels, close,
              (unsigned long long)atomic_load_explicit(&w->value, memory_order_relaxed));
}

static void sb_value(struct sbuf *b, const struct metric *s)
{
    const char *open = *s->labels ? "{" : "", *close = *s->labels ? "}" : "";
    if (s->kind == METRIC_HISTOGRAM)
        sb_histogram(b, s);
    else if (s->kind == METRIC_COUNTER)
        sb_printf(b, "%s%s%s%s %llu\n", s->name, open, s->labels, close,
                  (unsigned long long)atomic_load_explicit(&((struct metric *)s)->value, memory_order_relaxed));
    else
        sb_printf(b, "%s%s%s%s %.17g\n", s->name, open, s->labels, close, metric_value(s));
}

/* CPU seconds and resident bytes of this process, from /proc/self. */
static void process_stats(double *cpu_s, double *rss_bytes)
{
    *cpu_s = 0;
    *rss_bytes = 0;
    char buf[1024];
    FILE *f = fopen("/proc/self/stat", "r");
    if (f) {
        size_t n = fread(buf, 1, sizeof(buf) - 1, f);
        buf[n] = '\0';
        fclose(f);
        /* Fields after the command (which may hold spaces) start past ')'. */
        const char *p = strrchr(buf, ')');
        unsigned long utime = 0, stime = 0;
        long rss = 0;
        if (p &&
            sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu %*d %*d %*d %*d %*d %*d %*u %*u %ld",
                   &utime, &stime, &rss) == 3) {
            long hz = sysconf(_SC_CLK_TCK);
            *cpu_s = (double)(utime + stime) / (double)(hz > 0 ? hz : 100);
            *rss_bytes = (double)rss * (double)sysconf(_SC_PAGESIZE);
        }
    }
}

char *metrics_render(struct metrics *m, size_t *len)
{
    struct sbuf b = {0};
    pthread_mutex_lock(&m->lock);
    for (size_t i = 0; i < m->count; i++) {
        const struct metric *s = m->series[i];
        int first = 1;
        for (size_t j = 0; j < i; j++)
            if (strcmp(m->series[j]->name, s->name) == 0)
                first = 0;
        if (!first)
            continue;
        sb_printf(&b, "# HELP %s %s\n# TYPE %s %s\n", s->name, s->help, s->name,
                  s->kind == METRIC_COUNTER ? "counter"
                  : s->kind == METRIC_GAUGE ? "gauge"
                                            : "histogram");
        for (size_t j = i; j < m->count; j++)
            if (strcmp(m->series[j]->name, s->name) == 0)
                sb_value(&b, m->series[j]);
    }
    pthread_mutex_unlock(&m->lock);
    double cpu, rss;
    process_stats(&cpu, &rss);
    sb_printf(&b,
              "# HELP fleetsync_process_cpu_seconds_total User and system CPU time of this process.\n"
              "# TYPE fleetsync_process_cpu_seconds_total counter\nfleetsync_process_cpu_seconds_total %.2f\n"
              "# HELP fleetsync_process_resident_memory_bytes Resident memory of this process.\n"
              "# TYPE fleetsync_process_resident_memory_bytes gauge\nfleetsync_process_resident_memory_bytes %.0f\n",
              cpu, rss);
    if (b.oom) {
        free(b.p);
        return NULL;
    }
    if (len)
        *len = b.len;
    return b.p;
}

static int handle_metrics(struct mg_connection *conn, void *arg)
{
    size_t len = 0;
    char *text = metrics_render(arg, &len);
    if (!text) {
        mg_printf(conn, "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        return 500;
    }
    mg_printf(conn,
              "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n"
              "Content-Length: %zu\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n",
              len);
    mg_write(conn, text, len);
    free(text);
    return 200;
}

static int handle_healthz(struct mg_connection *conn, void *arg)
{
    (void)arg;
    mg_printf(conn,
              "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n");
    return 200;
}

static int quiet_log(const struct mg_connection *conn, const char *message)
{
    (void)conn;
    (void)message;
    return 1;
}

int metrics_serve(struct metrics *m, const char *host, int port, char *err, size_t err_size)
{
    pthread_once(&mg_once, mg_init_once);
    char ports[300];
    snprintf(ports, sizeof(ports), "%s:%d", host, port);
    const char *options[] = {"listening_ports", ports, "num_threads", "2", NULL};
    struct mg_callbacks cb;
    memset(&cb, 0, sizeof(cb));
    cb.log_message = quiet_log;
    struct mg_init_data init = {.callbacks = &cb, .user_data = m, .configuration_options = options};
    struct mg_error_data error = {0};
    char why[256] = "";
    error.text = why;
    error.text_buffer_size = sizeof(why);
    m->server = mg_start2(&init, &error);
    if (!m->server) {
        snprintf(err, err_size, "cannot serve metrics on %s: %s", ports, *why ? why : "unknown error");
        return -1;
    }
    mg_set_request_handler(m->server, "/metrics$", handle_metrics, m);
    mg_set_request_handler(m->server, "/healthz$", handle_healthz, m);
    struct mg_server_port sp[2];
    int n = mg_get_server_ports(m->server, 2, sp);
    m->port = n > 0 ? sp[0].port : port;
    return 0;
}

int metrics_serve_option(struct metrics *m, int port_option, int default_port)
{
    char err[512];
    int port = port_option == 0 ? default_port : port_option;
    if (port > 0 && metrics_serve(m, "127.0.0.1", port, err, sizeof(err)) != 0) {
        log_error("%s (use --metrics-port N, or -1 for none)", err);
        return -1;
    }
    return 0;
}

int metrics_port(const struct metrics *m)
{
    return m->port;
}

void metrics_free(struct metrics *m)
{
    if (!m)
        return;
    if (m->server)
        mg_stop(m->server);
    for (size_t i = 0; i < m->count; i++) {
        free(m->series[i]->name);
        free(m->series[i]->help);
        free(m->series[i]->labels);
        free(m->series[i]);
    }
    free(m->series);
    pthread_mutex_destroy(&m->lock);
    free(m);
}
