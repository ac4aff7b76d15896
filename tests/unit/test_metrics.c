/* Prometheus registry: text format, label sets, the HTTP endpoint. */
#include "core/metrics.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>

static void counter_renders_with_help_and_type(void **state)
{
    (void)state;
    struct metrics *m = metrics_new();
    struct metric *c = metrics_counter(m, "fleetsync_test_total", "Things counted.", NULL);
    metric_add(c, 3);
    metric_add(c, 4);
    char *text = metrics_render(m, NULL);
    assert_non_null(strstr(text, "# HELP fleetsync_test_total Things counted.\n"));
    assert_non_null(strstr(text, "# TYPE fleetsync_test_total counter\n"));
    assert_non_null(strstr(text, "\nfleetsync_test_total 7\n"));
    free(text);
    metrics_free(m);
}

static void label_sets_share_one_header(void **state)
{
    (void)state;
    struct metrics *m = metrics_new();
    metric_add(metrics_counter(m, "fleetsync_rejected_total", "Rejected.", "reason=\"too_large\""), 1);
    metrics_gauge(m, "fleetsync_lag", "Lag.", NULL);
    metric_add(metrics_counter(m, "fleetsync_rejected_total", "Rejected.", "reason=\"invalid_json\""), 2);
    char *text = metrics_render(m, NULL);
    const char *first = strstr(text, "# TYPE fleetsync_rejected_total");
    assert_non_null(first);
    assert_null(strstr(first + 1, "# TYPE fleetsync_rejected_total"));
    assert_non_null(strstr(text, "fleetsync_rejected_total{reason=\"too_large\"} 1\n"));
    assert_non_null(strstr(text, "fleetsync_rejected_total{reason=\"invalid_json\"} 2\n"));
    free(text);
    metrics_free(m);
}

static void same_series_registered_twice_is_one(void **state)
{
    (void)state;
    struct metrics *m = metrics_new();
    struct metric *a = metrics_counter(m, "fleetsync_x_total", "x", "k=\"v\"");
    struct metric *b = metrics_counter(m, "fleetsync_x_total", "x", "k=\"v\"");
    assert_ptr_equal(a, b);
    metrics_free(m);
}

static void gauge_keeps_fractions(void **state)
{
    (void)state;
    struct metrics *m = metrics_new();
    struct metric *g = metrics_gauge(m, "fleetsync_ratio", "r", NULL);
    metric_set(g, 0.25);
    assert_true(metric_value(g) == 0.25);
    char *text = metrics_render(m, NULL);
    assert_non_null(strstr(text, "fleetsync_ratio 0.25\n"));
    assert_non_null(strstr(text, "fleetsync_process_resident_memory_bytes "));
    free(text);
    metrics_free(m);
}

static void histogram_renders_cumulative_buckets(void **state)
{
    (void)state;
    struct metrics *m = metrics_new();
    static const double bounds[] = {0.001, 0.01, 0.1};
    struct metric *h = metrics_histogram(m, "fleetsync_latency_seconds", "Latency.", NULL, bounds, 3);
    metric_observe(h, 0.0005);
    metric_observe(h, 0.005);
    metric_observe(h, 0.005);
    metric_observe(h, 5);
    char *text = metrics_render(m, NULL);
    assert_non_null(strstr(text, "# TYPE fleetsync_latency_seconds histogram\n"));
    assert_non_null(strstr(text, "fleetsync_latency_seconds_bucket{le=\"0.001\"} 1\n"));
    assert_non_null(strstr(text, "fleetsync_latency_seconds_bucket{le=\"0.01\"} 3\n"));
    assert_non_null(strstr(text, "fleetsync_latency_seconds_bucket{le=\"0.1\"} 3\n"));
    assert_non_null(strstr(text, "fleetsync_latency_seconds_bucket{le=\"+Inf\"} 4\n"));
    assert_non_null(strstr(text, "fleetsync_latency_seconds_count 4\n"));
    assert_non_null(strstr(text, "fleetsync_latency_seconds_sum 5.0105"));
    assert_true(metric_quantile(h, 0.5) == 0.01);
    assert_true(metric_quantile(h, 0.1) == 0.001);
    free(text);
    metrics_free(m);
}

static void tally_adds_what_observe_would(void **state)
{
    (void)state;
    struct metrics *m = metrics_new();
    static const double bounds[] = {0.001, 0.01, 0.1};
    struct metric *h = metrics_histogram(m, "fleetsync_age_seconds", "Age.", NULL, bounds, 3);
    struct metric_tally t = {.h = h};
    metric_tally_observe(&t, 0.0005);
    metric_tally_observe(&t, 0.005);
    metric_tally_observe(&t, 0.005);
    metric_tally_observe(&t, 5);
    assert_true(metric_value(h) == 0); /* nothing is visible before the flush */
    metric_tally_flush(&t);
    metric_tally_flush(&t); /* a second flush adds nothing */
    metric_tally_observe(&t, 0.05);
    metric_tally_flush(&t);
    char *text = metrics_render(m, NULL);
    assert_non_null(strstr(text, "fleetsync_age_seconds_bucket{le=\"0.001\"} 1\n"));
    assert_non_null(strstr(text, "fleetsync_age_seconds_bucket{le=\"0.01\"} 3\n"));
    assert_non_null(strstr(text, "fleetsync_age_seconds_bucket{le=\"0.1\"} 4\n"));
    assert_non_null(strstr(text, "fleetsync_age_seconds_bucket{le=\"+Inf\"} 5\n"));
    assert_non_null(strstr(text, "fleetsync_age_seconds_count 5\n"));
    assert_non_null(strstr(text, "fleetsync_age_seconds_sum 5.0605"));
    free(text);
    struct metric_tally none = {0}; /* no histogram (metrics off): a no-op */
    metric_tally_observe(&none, 1);
    metric_tally_flush(&none);
    metrics_free(m);
}

static char *http_get(int port, const char *path)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
        close(fd);
        return NULL;
    }
    char req[256];
    int n = snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", path);
    if (write(fd, req, (size_t)n) != n) {
        close(fd);
        return NULL;
    }
    size_t cap = 65536, len = 0;
    char *buf = malloc(cap);
    ssize_t r;
    while ((r = read(fd, buf + len, cap - len - 1)) > 0)
        len += (size_t)r;
    buf[len] = '\0';
    close(fd);
    return buf;
}

static void endpoint_serves_metrics_and_healthz(void **state)
{
    (void)state;
    struct metrics *m = metrics_new();
    metric_add(metrics_counter(m, "fleetsync_served_total", "s", NULL), 42);
    char err[256];
    assert_int_equal(metrics_serve(m, "127.0.0.1", 0, err, sizeof(err)), 0);
    assert_true(metrics_port(m) > 0);
    char *resp = http_get(metrics_port(m), "/metrics");
    assert_non_null(resp);
    assert_non_null(strstr(resp, "200 OK"));
    assert_non_null(strstr(resp, "text/plain; version=0.0.4"));
    assert_non_null(strstr(resp, "fleetsync_served_total 42\n"));
    free(resp);
    resp = http_get(metrics_port(m), "/healthz");
    assert_non_null(strstr(resp, "ok\n"));
    free(resp);
    resp = http_get(metrics_port(m), "/nothing");
    assert_non_null(strstr(resp, "404"));
    free(resp);
    metrics_free(m);
}

static void busy_port_is_a_clear_error(void **state)
{
    (void)state;
    struct metrics *a = metrics_new(), *b = metrics_new();
    char err[256];
    assert_int_equal(metrics_serve(a, "127.0.0.1", 0, err, sizeof(err)), 0);
    assert_int_equal(metrics_serve(b, "127.0.0.1", metrics_port(a), err, sizeof(err)), -1);
    assert_non_null(strstr(err, "cannot serve metrics on 127.0.0.1:"));
    metrics_free(a);
    metrics_free(b);
}

static void the_port_option_picks_the_default_or_none(void **state)
{
    (void)state;
    struct metrics *a = metrics_new(), *b = metrics_new();
    char err[256];
    assert_int_equal(metrics_serve(a, "127.0.0.1", 0, err, sizeof(err)), 0);
    int busy = metrics_port(a);
    /* -1: no server, whatever the default. */
    assert_int_equal(metrics_serve_option(b, -1, busy), 0);
    assert_int_equal(metrics_port(b), 0);
    /* 0: the default, here a busy port; a port given: that one. */
    assert_int_equal(metrics_serve_option(b, 0, busy), -1);
    assert_int_equal(metrics_serve_option(b, busy, 1), -1);
    metrics_free(a);
    metrics_free(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(counter_renders_with_help_and_type),        cmocka_unit_test(label_sets_share_one_header),
        cmocka_unit_test(same_series_registered_twice_is_one),       cmocka_unit_test(gauge_keeps_fractions),
        cmocka_unit_test(histogram_renders_cumulative_buckets),      cmocka_unit_test(tally_adds_what_observe_would),
        cmocka_unit_test(endpoint_serves_metrics_and_healthz),       cmocka_unit_test(busy_port_is_a_clear_error),
        cmocka_unit_test(the_port_option_picks_the_default_or_none),
    };
    return cmocka_run_group_tests_name("metrics", tests, NULL, NULL);
}
