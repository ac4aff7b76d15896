/* notify's HTTP delivery engine (src/notify/deliver.h) against a real HTTP
 * server in this process (civetweb on a free loopback port), no Kafka:
 * the request's headers (a signature checked here with OpenSSL's HMAC
 * directly, the idempotency key, the content type) and body; a 500 retried
 * until a 2xx; a 429's Retry-After honoured up to the backoff cap; a 404
 * given up at once; a refused connection and a timeout
 * retried, then given up after retry_for; one destination failing while
 * another delivers; a truck's order kept through failures while other
 * trucks go on; the queue bound; dropping waiting jobs. */
#include "core/clock.h"
#include "core/hex.h"
#include "core/log.h"
#include "core/metrics.h"
#include "notify/deliver.h"

#include <civetweb.h>
#include <curl/curl.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#define SECRET "whsec-unit-0123456789"
#define MAX_SEEN 256

/* ---- the server: answers per path, records what it got ---------------------- */

struct seen {
    char path[16], sig[160], key[128], ctype[64], body[256];
    int status;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct seen seen[MAX_SEEN];
static int nseen;
static int answer_a = 200, answer_b = 200; /* what /a and /b answer */
static int fail_first_x;                   /* /a answers 500 to this many requests of keys starting "x" */
static int slow_ms;                        /* /a waits this long before answering */
static int retry_after_s;                  /* /a says Retry-After: this with a 429 to the first request */
static struct mg_context *server;
static int port;

static int handler(struct mg_connection *c, void *ud)
{
    (void)ud;
    const struct mg_request_info *ri = mg_get_request_info(c);
    struct seen s;
    memset(&s, 0, sizeof(s));
    snprintf(s.path, sizeof(s.path), "%s", ri->local_uri);
    const char *h;
    if ((h = mg_get_header(c, "X-FleetSync-Signature")))
        snprintf(s.sig, sizeof(s.sig), "%s", h);
    if ((h = mg_get_header(c, "X-FleetSync-Idempotency-Key")))
        snprintf(s.key, sizeof(s.key), "%s", h);
    if ((h = mg_get_header(c, "Content-Type")))
        snprintf(s.ctype, sizeof(s.ctype), "%s", h);
    int n = mg_read(c, s.body, sizeof(s.body) - 1);
    s.body[n > 0 ? n : 0] = '\0';
    if (slow_ms && strcmp(s.path, "/a") == 0)
        usleep((useconds_t)slow_ms * 1000);
    pthread_mutex_lock(&lock);
    int status = strcmp(s.path, "/b") == 0 ? answer_b : answer_a;
    if (strcmp(s.path, "/a") == 0 && s.key[0] == 'x' && fail_first_x > 0) {
        fail_first_x--;
        status = 500;
    }
    char extra[64] = "";
    if (strcmp(s.path, "/a") == 0 && retry_after_s > 0 && nseen == 0) {
        status = 429;
        snprintf(extra, sizeof(extra), "Retry-After: %d\r\n", retry_after_s);
    }
    s.status = status;
    if (nseen < MAX_SEEN)
        seen[nseen++] = s;
    pthread_mutex_unlock(&lock);
    mg_printf(c, "HTTP/1.1 %d X\r\n%sContent-Length: 2\r\nConnection: close\r\n\r\nok", status, extra);
    return status;
}

static int setup(void **state)
{
    (void)state;
    const char *options[] = {"listening_ports", "127.0.0.1:0", "num_threads", "8", NULL};
    struct mg_callbacks cb;
    memset(&cb, 0, sizeof(cb));
    log_set_level(LOG_WARN); /* the retries' INFO lines */
    curl_global_init(CURL_GLOBAL_DEFAULT);
    mg_init_library(0);
    server = mg_start(&cb, NULL, options);
    assert_non_null(server);
    mg_set_request_handler(server, "/", handler, NULL);
    struct mg_server_port sp[2];
    assert_true(mg_get_server_ports(server, 2, sp) > 0);
    port = sp[0].port;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    mg_stop(server);
    mg_exit_library();
    curl_global_cleanup();
    return 0;
}

static void reset_server(void)
{
    pthread_mutex_lock(&lock);
    nseen = 0;
    answer_a = answer_b = 200;
    fail_first_x = 0;
    slow_ms = 0;
    retry_after_s = 0;
    pthread_mutex_unlock(&lock);
}

/* ---- the engine's side ------------------------------------------------------- */

struct outcome {
    int dest, delivered, attempts;
    enum deliver_reason reason;
    char detail[128], key[64];
};

struct run {
    struct outcome out[MAX_SEEN];
    int nout, dropped;
    struct metrics *m;
    struct deliver *d;
};

static void on_done(void *ctx, int dest, void *ud, int delivered, enum deliver_reason reason, const char *detail,
                    int attempts)
{
    struct run *r = ctx;
    struct outcome *o = &r->out[r->nout++];
    o->dest = dest;
    o->delivered = delivered;
    o->attempts = attempts;
    o->reason = reason;
    snprintf(o->detail, sizeof(o->detail), "%s", detail);
    snprintf(o->key, sizeof(o->key), "%s", (const char *)ud);
}

static void on_dropped(void *ctx, void *ud)
{
    (void)ud;
    ((struct run *)ctx)->dropped++;
}

static const struct deliver_ops ops = {.done = on_done, .dropped = on_dropped};

static struct notify_dest dests[2];
static struct notify_routes routes;

/* Destination i posts to /a (i = 0) or /b (i = 1) of the test server, or to
 * a closed port when closed. */
static void make_dest(int i, const char *path, int closed)
{
    struct notify_dest *d = &dests[i];
    memset(d, 0, sizeof(*d));
    snprintf(d->name, sizeof(d->name), "d%d", i);
    snprintf(d->url, sizeof(d->url), "http://127.0.0.1:%d%s", closed ? 1 : port, path);
    snprintf(d->secret, sizeof(d->secret), "%s", SECRET);
    d->secret_len = strlen(SECRET);
    d->timeout_ms = 2000;
    d->queue = 100;
    d->parallel = 4;
    d->backoff_base_ms = 20;
    d->backoff_max_ms = 80;
    d->retry_for_ms = 60000;
}

/* Each test's fixture (cmocka's state): the server answering 200 to every
 * request, destination 0 posting to /a with make_dest's settings.  A test
 * changes what it needs, then starts the engine with start(); the fixture's
 * teardown frees the engine and its metrics, also after a failed check. */
static int fresh(void **state)
{
    struct run *r = calloc(1, sizeof(*r));
    assert_non_null(r);
    reset_server();
    make_dest(0, "/a", 0);
    *state = r;
    return 0;
}

/* Frees the engine and its metrics, if started. */
static void stop(struct run *r)
{
    deliver_free(r->d);
    metrics_free(r->m);
    r->d = NULL;
    r->m = NULL;
}

static int done(void **state)
{
    stop(*state);
    free(*state);
    return 0;
}

/* The engine over the first ndests destinations, with new metrics and no
 * outcomes yet. */
static struct deliver *start(struct run *r, int ndests)
{
    stop(r);
    routes.dests = dests;
    routes.dest_count = (size_t)ndests;
    r->nout = r->dropped = 0;
    r->m = metrics_new();
    assert_non_null(r->m);
    r->d = deliver_new(&routes, r->m, &ops, r);
    assert_non_null(r->d);
    return r->d;
}

/* Steps until every job is done or max_ms passed. */
static void drive(struct deliver *d, int max_ms)
{
    int64_t until = fs_mono_ms() + max_ms;
    while (deliver_queued(d, -1) > 0 && fs_mono_ms() < until)
        deliver_step(d, 20);
}

static void submit(struct deliver *d, int dest, const char *key, const char *order, const char *body)
{
    struct deliver_item it = {.body = body, .body_len = strlen(body), .key = key, .order = order, .ud = (void *)key};
    assert_int_equal(deliver_submit(d, dest, &it), 0);
}

/* One job (key, truck T1, body {}) for destination 0, driven until it is
 * done: its outcome is r->out[0].  Returns how long that took, in ms. */
static int64_t deliver_one(struct run *r, const char *key)
{
    int64_t t0 = fs_mono_ms();
    submit(r->d, 0, key, "T1", "{}");
    drive(r->d, 5000);
    assert_int_equal(r->nout, 1);
    return fs_mono_ms() - t0;
}

static double series(struct metrics *m, const char *line_start)
{
    size_t len;
    char *text = metrics_render(m, &len);
    double v = -1;
    const char *p = text;
    while (p && (p = strstr(p, line_start))) {
        if (p == text || p[-1] == '\n') {
            v = atof(p + strlen(line_start));
            break;
        }
        p++;
    }
    free(text);
    return v;
}

/* ---- tests ---------------------------------------------------------------------- */

static void posts_the_body_signed_with_key_and_content_type(void **state)
{
    struct run *r = *state;
    struct deliver *d = start(r, 1);
    const char *body = "{\"alert_id\":\"T1:overspeed:1\",\"state\":\"raised\"}";
    int64_t before = fs_wall_ms();
    submit(d, 0, "T1:overspeed:1:raised", "T1", body);
    drive(d, 5000);
    assert_int_equal(r->nout, 1);
    assert_true(r->out[0].delivered);
    assert_int_equal(r->out[0].attempts, 1);
    assert_int_equal(nseen, 1);
    assert_string_equal(seen[0].body, body);
    assert_string_equal(seen[0].key, "T1:overspeed:1:raised");
    assert_string_equal(seen[0].ctype, "application/json");
    /* t=<ms>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>, checked with OpenSSL here */
    long long t = 0;
    char hexsig[65] = "";
    assert_int_equal(sscanf(seen[0].sig, "t=%lld,v1=%64[0-9a-f]", &t, hexsig), 2);
    assert_true(t >= before && t <= fs_wall_ms());
    char msg[512], want[65];
    int mlen = snprintf(msg, sizeof(msg), "%lld.%s", t, body);
    unsigned char mac[32];
    unsigned int maclen = 0;
    assert_non_null(HMAC(EVP_sha256(), SECRET, (int)strlen(SECRET), (unsigned char *)msg, (size_t)mlen, mac, &maclen));
    hex_encode(mac, 32, want);
    assert_string_equal(hexsig, want);
    assert_true(series(r->m, "fleetsync_notify_delivered_total{destination=\"d0\"} ") == 1);
}

static void a_500_is_retried_until_a_2xx(void **state)
{
    struct run *r = *state;
    fail_first_x = 3;
    start(r, 1);
    deliver_one(r, "x1");
    assert_true(r->out[0].delivered);
    assert_int_equal(r->out[0].attempts, 4);
    assert_int_equal(nseen, 4);
    assert_true(series(r->m, "fleetsync_notify_retries_total{destination=\"d0\"} ") == 3);
}

static void a_429s_retry_after_is_honoured_up_to_the_cap(void **state)
{
    struct run *r = *state;
    retry_after_s = 1; /* 429 with Retry-After: 1, then 200 */
    dests[0].backoff_max_ms = 5000;
    start(r, 1);
    int64_t el = deliver_one(r, "k1");
    assert_true(r->out[0].delivered);
    assert_int_equal(r->out[0].attempts, 2);
    assert_int_equal(seen[0].status, 429);
    assert_true(el >= 1000 && el < 2500); /* not the 20-40 ms backoff: the receiver's second */

    stop(r);
    reset_server();
    retry_after_s = 30; /* more than backoff_max_ms: capped */
    make_dest(0, "/a", 0);
    dests[0].backoff_max_ms = 300;
    start(r, 1);
    el = deliver_one(r, "k1");
    assert_true(r->out[0].delivered);
    assert_true(el >= 300 && el < 1500);
}

static void a_404_is_given_up_at_once(void **state)
{
    struct run *r = *state;
    answer_a = 404;
    start(r, 1);
    deliver_one(r, "k1");
    assert_false(r->out[0].delivered);
    assert_int_equal(r->out[0].reason, DELIVER_REFUSED);
    assert_string_equal(deliver_reason_name(r->out[0].reason), "refused");
    assert_string_equal(r->out[0].detail, "HTTP 404");
    assert_int_equal(r->out[0].attempts, 1);
    assert_int_equal(nseen, 1);
}

static void refused_connections_are_retried_then_given_up_after_retry_for(void **state)
{
    struct run *r = *state;
    make_dest(0, "/a", 1);
    dests[0].retry_for_ms = 300;
    start(r, 1);
    int64_t el = deliver_one(r, "k1");
    assert_false(r->out[0].delivered);
    assert_int_equal(r->out[0].reason, DELIVER_RETRIES_EXHAUSTED);
    assert_true(r->out[0].attempts > 2);
    assert_true(el >= 300 && el < 3000);
    assert_non_null(strstr(r->out[0].detail, "onnect")); /* curl's "Couldn't connect" / "Connection refused" */
}

static void a_timeout_is_retried(void **state)
{
    struct run *r = *state;
    slow_ms = 400;
    dests[0].timeout_ms = 150;
    struct deliver *d = start(r, 1);
    submit(d, 0, "k1", "T1", "{}");
    int64_t until = fs_mono_ms() + 1000;
    while (series(r->m, "fleetsync_notify_retries_total{destination=\"d0\"} ") < 1 && fs_mono_ms() < until)
        deliver_step(d, 20);
    assert_true(series(r->m, "fleetsync_notify_retries_total{destination=\"d0\"} ") >= 1);
    assert_int_equal(r->nout, 0);
    slow_ms = 0;
    drive(d, 5000);
    assert_int_equal(r->nout, 1);
    assert_true(r->out[0].delivered);
    assert_true(r->out[0].attempts >= 2);
    stop(r);
    usleep(500000); /* the slow handler threads finish */
}

static void a_failing_destination_does_not_hold_up_another(void **state)
{
    struct run *r = *state;
    answer_a = 500;
    make_dest(1, "/b", 0);
    struct deliver *d = start(r, 2);
    static const char *keys[] = {"k0", "k1", "k2", "k3", "k4"};
    for (int i = 0; i < 5; i++) {
        submit(d, 0, keys[i], "T1", "{}");
        submit(d, 1, keys[i], "T1", "{}");
    }
    int64_t until = fs_mono_ms() + 3000;
    while (deliver_queued(d, 1) > 0 && fs_mono_ms() < until)
        deliver_step(d, 20);
    assert_int_equal(deliver_queued(d, 1), 0);
    assert_int_equal(deliver_queued(d, 0), 5);
    assert_int_equal(r->nout, 5);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(r->out[i].dest, 1);
        assert_string_equal(r->out[i].key, keys[i]); /* in order */
    }
    pthread_mutex_lock(&lock);
    answer_a = 200;
    pthread_mutex_unlock(&lock);
    drive(d, 5000);
    assert_int_equal(r->nout, 10);
    for (int i = 0; i < 5; i++)
        assert_string_equal(r->out[5 + i].key, keys[i]);
}

/* Truck A's first alert (key x...) fails three times; A's later alerts wait
 * for it, while truck B (another lane) is delivered meanwhile. */
static void a_trucks_order_is_kept_while_other_trucks_go_on(void **state)
{
    struct run *r = *state;
    fail_first_x = 3;
    dests[0].backoff_base_ms = 100;
    dests[0].backoff_max_ms = 100;
    dests[0].parallel = 8;
    struct deliver *d = start(r, 1);
    /* Lanes are hash(order) % 8: find a B on another lane than "TA". */
    static const char *bs[] = {"TB", "TC", "TD", "TE", "TF"};
    submit(d, 0, "xA1", "TA", "{}");
    submit(d, 0, "yA2", "TA", "{}");
    submit(d, 0, "yA3", "TA", "{}");
    for (int i = 0; i < 5; i++)
        submit(d, 0, bs[i], bs[i], "{}");
    drive(d, 5000);
    assert_int_equal(r->nout, 8);
    int pos_a1 = -1, pos_a2 = -1, pos_a3 = -1, others_before_a1 = 0;
    for (int i = 0; i < r->nout; i++) {
        if (!strcmp(r->out[i].key, "xA1"))
            pos_a1 = i;
        else if (!strcmp(r->out[i].key, "yA2"))
            pos_a2 = i;
        else if (!strcmp(r->out[i].key, "yA3"))
            pos_a3 = i;
        else if (pos_a1 < 0)
            others_before_a1++;
    }
    assert_true(pos_a1 < pos_a2 && pos_a2 < pos_a3);
    assert_true(others_before_a1 >= 1); /* at least one other truck did not wait for A */
    /* The server saw A's alerts in order too: xA1 (4 times), then yA2, then yA3. */
    int last = -1;
    for (int i = 0; i < nseen; i++) {
        int o = !strcmp(seen[i].key, "xA1") ? 1 : !strcmp(seen[i].key, "yA2") ? 2 : !strcmp(seen[i].key, "yA3") ? 3 : 0;
        if (!o)
            continue;
        assert_true(o >= last);
        last = o;
    }
}

static void the_queue_bound_refuses_the_next_job(void **state)
{
    struct run *r = *state;
    dests[0].queue = 2;
    struct deliver *d = start(r, 1);
    submit(d, 0, "k1", "T1", "{}");
    submit(d, 0, "k2", "T2", "{}");
    struct deliver_item it = {.body = "{}", .body_len = 2, .key = "k3", .order = "T3", .ud = "k3"};
    assert_int_equal(deliver_submit(d, 0, &it), 1);
    assert_int_equal(deliver_queued(d, 0), 2);
    assert_true(series(r->m, "fleetsync_notify_dead_letters_total{destination=\"d0\",reason=\"queue_full\"} ") == 1);
    drive(d, 5000);
    assert_int_equal(r->nout, 2);
    assert_int_equal(deliver_submit(d, 0, &it), 0); /* room again */
    drive(d, 5000);
    assert_int_equal(r->nout, 3);
}

static int key_is_k2(void *ud, void *arg)
{
    (void)arg;
    return strcmp(ud, "k2") == 0;
}

static void dropping_and_abandoning_report_dropped(void **state)
{
    struct run *r = *state;
    struct deliver *d = start(r, 1);
    submit(d, 0, "k1", "T1", "{}");
    submit(d, 0, "k2", "T2", "{}");
    submit(d, 0, "k3", "T3", "{}");
    deliver_drop(d, key_is_k2, NULL);
    assert_int_equal(r->dropped, 1);
    assert_int_equal(deliver_queued(d, 0), 2);
    deliver_abandon(d);
    assert_int_equal(r->dropped, 3);
    assert_int_equal(deliver_queued(d, -1), 0);
    assert_int_equal(r->nout, 0);
}

static void *wake_after_100_ms(void *arg)
{
    usleep(100000);
    deliver_wakeup(arg);
    return NULL;
}

/* Another thread's wakeup (notify's: a Kafka record arrived) ends a
 * step's wait at once instead of at its max_wait_ms. */
static void a_wakeup_from_another_thread_ends_the_wait(void **state)
{
    struct deliver *d = start(*state, 1);
    pthread_t t;
    int64_t t0 = fs_mono_ms();
    assert_int_equal(pthread_create(&t, NULL, wake_after_100_ms, d), 0);
    deliver_step(d, 5000);
    int64_t waited = fs_mono_ms() - t0;
    pthread_join(t, NULL);
    assert_true(waited >= 90 && waited < 2000);
}

#define TEST(f) cmocka_unit_test_setup_teardown(f, fresh, done)

int main(void)
{
    const struct CMUnitTest tests[] = {
        TEST(posts_the_body_signed_with_key_and_content_type),
        TEST(a_500_is_retried_until_a_2xx),
        TEST(a_429s_retry_after_is_honoured_up_to_the_cap),
        TEST(a_404_is_given_up_at_once),
        TEST(refused_connections_are_retried_then_given_up_after_retry_for),
        TEST(a_timeout_is_retried),
        TEST(a_failing_destination_does_not_hold_up_another),
        TEST(a_trucks_order_is_kept_while_other_trucks_go_on),
        TEST(the_queue_bound_refuses_the_next_job),
        TEST(dropping_and_abandoning_report_dropped),
        TEST(a_wakeup_from_another_thread_ends_the_wait),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
