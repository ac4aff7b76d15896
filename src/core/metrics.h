/*
 * metrics.h - Prometheus text metrics and the HTTP endpoint serving them.
 *
 * A service registers its counters and gauges once at start (any thread,
 * under the registry's lock), then updates them from any thread without
 * locks (atomics).  metrics_serve() answers GET /metrics (text format 0.0.4)
 * and GET /healthz on its own small civetweb server.  Every series name is
 * prefixed "fleetsync_" by the caller; process CPU seconds and resident
 * memory are added to every rendering.
 */
#ifndef FS_METRICS_H
#define FS_METRICS_H

#include <stddef.h>
#include <stdint.h>

struct metrics;
struct metric;

enum metric_kind { METRIC_COUNTER, METRIC_GAUGE, METRIC_HISTOGRAM };

#define METRICS_MAX_BUCKETS 24

struct metrics *metrics_new(void);

/* Registers one series; labels is NULL or 'reason="too_large",topic="x"'.
 * The registry owns the series (freed by metrics_free).  Registering the
 * same name and labels twice returns the same series.  NULL on OOM. */
struct metric *metrics_counter(struct metrics *m, const char *name, const char *help, const char *labels);
struct metric *metrics_gauge(struct metrics *m, const char *name, const char *help, const char *labels);

/* A histogram with the given ascending upper bounds (at most
 * METRICS_MAX_BUCKETS; +Inf is implied). */
struct metric *metrics_histogram(struct metrics *m, const char *name, const char *help, const char *labels,
                                 const double *bounds, int nbounds);
/* Records one observation. */
void metric_observe(struct metric *h, double v);
/* A histogram's observations gathered by one thread and added to it at
 * once (metric_tally_flush): for a loop where three atomic additions per
 * observation would cost more than the work it measures.  Zero it, set h. */
struct metric_tally {
    struct metric *h;
    uint64_t count, sum_micro;
    uint64_t buckets[METRICS_MAX_BUCKETS + 1];
};
void metric_tally_observe(struct metric_tally *t, double v);
void metric_tally_flush(struct metric_tally *t);
/* Estimates quantile q (0..1) from the buckets: the upper bound of the bucket
 * holding it (the largest bound when it falls in +Inf); 0 without data. */
double metric_quantile(const struct metric *h, double q);

void metric_add(struct metric *c, uint64_t n);
void metric_set(struct metric *g, double v);
double metric_value(const struct metric *s);

/* Renders every series into a malloc'd string the caller frees. */
char *metrics_render(struct metrics *m, size_t *len);

/* Serves /metrics and /healthz on host:port (port 0 = any free port, see
 * metrics_port()).  Returns 0, or -1 with a reason in err. */
int metrics_serve(struct metrics *m, const char *host, int port, char *err, size_t err_size);
int metrics_port(const struct metrics *m);

/* Serves m on 127.0.0.1 at a service's --metrics-port: port_option 0 means
 * default_port, a negative one no server.  Returns 0, or -1 after logging
 * why with a hint at --metrics-port. */
int metrics_serve_option(struct metrics *m, int port_option, int default_port);

/* Stops the server (if any) and frees everything. */
void metrics_free(struct metrics *m);

#endif
