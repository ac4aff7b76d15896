/*
 * mqttpool.c - libmosquitto connections on one epoll loop (see mqttpool.h).
 */
#include "sim/mqttpool.h"

#include "core/log.h"

#include <errno.h>
#include <fcntl.h>
#include <mosquitto.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#define BACKOFF_MIN_MS     500
#define BACKOFF_MAX_MS     30000
#define CONNECTS_PER_POLL  256
#define MAX_EVENTS         1024

enum conn_state { C_DOWN, C_CONNECTING, C_UP };

struct conn {
    struct mosquitto *m;
    struct mqttpool *pool;
    int64_t retry_ms;   /* DOWN: when to try again */
    uint32_t inflight;
    uint32_t index;
    int fd;             /* registered in epoll, or -1 */
    int presence_mid;
    uint8_t state;
    uint8_t want_out;   /* EPOLLOUT registered */
    uint8_t backoff;    /* failures in a row */
    uint8_t ever_up;
};

struct mqttpool {
    struct mqp_config cfg;
    SSL_CTX *ssl_ctx;   /* mqtts://, shared by every connection */
    struct conn *c;
    uint32_t n;
    int ep;
    int64_t next_misc_ms;
    int64_t next_scan_ms;
    uint32_t scan_from;
    int closing;
    struct mqp_stats st;
    /* Problems are logged as one line per second, not one per connection. */
    uint32_t lost_pending, refused_pending, failed_pending;
    char last_reason[160];
};

/* One client TLS context for the pool: libmosquitto's own would load the
 * CA file again at every connect of every connection (a descriptor the
 * pool's fd limit does not allow there, and memory per connection).  The
 * peer is verified against the CA and the host name or IP address. */
static SSL_CTX *tls_context(const struct mqp_config *cfg, char *err, size_t err_size)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx) {
        snprintf(err, err_size, "cannot create a TLS context");
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    int ok = cfg->cafile ? SSL_CTX_load_verify_locations(ctx, cfg->cafile, NULL)
                         : SSL_CTX_set_default_verify_paths(ctx);
    if (ok != 1) {
        unsigned long e = ERR_get_error();
        snprintf(err, err_size, "cannot load CA certificates%s%s: %s", cfg->cafile ? " from " : "",
                 cfg->cafile ? cfg->cafile : "", e ? ERR_reason_error_string(e) : "unknown error");
        SSL_CTX_free(ctx);
        return NULL;
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    X509_VERIFY_PARAM *param = SSL_CTX_get0_param(ctx);
    if (X509_VERIFY_PARAM_set1_ip_asc(param, cfg->host) != 1) {
        X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
        X509_VERIFY_PARAM_set1_host(param, cfg->host, 0);
    }
    return ctx;
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void presence_topic(const struct mqttpool *p, uint32_t i, char *buf, size_t size)
{
    char id[128];
    p->cfg.name(p->cfg.name_ud, i, id, sizeof(id));
    snprintf(buf, size, "fleet/%s/%s/status", p->cfg.gateway ? "gateways" : "trucks", id);
}

static void schedule_retry(struct conn *c)
{
    int64_t d = BACKOFF_MIN_MS << (c->backoff < 6 ? c->backoff : 6);
    if (d > BACKOFF_MAX_MS)
        d = BACKOFF_MAX_MS;
    /* jitter 50-100 %, so a broker restart is not hit by everyone at once */
    d = d / 2 + (int64_t)((uint64_t)rand() % (uint64_t)(d / 2 + 1));
    c->retry_ms = mono_ms() + d;
    if (c->backoff < 255)
        c->backoff++;
}

/* The socket is gone (libmosquitto closed it): forget it, plan a retry. */
static void conn_lost(struct conn *c, int rc)
{
    struct mqttpool *p = c->pool;
    if (c->state == C_UP && p->st.up)
        p->st.up--;
    if (!p->closing) {
        p->st.errors++;
        if (c->state != C_DOWN) {
            p->lost_pending++;
            snprintf(p->last_reason, sizeof(p->last_reason), "%s", mosquitto_strerror(rc));
        }
    }
    if (c->fd >= 0) {
        epoll_ctl(p->ep, EPOLL_CTL_DEL, c->fd, NULL);
        c->fd = -1;
    }
    c->state = C_DOWN;
    c->want_out = 0;
    schedule_retry(c);
}

static void update_out(struct conn *c)
{
    if (c->fd < 0)
        return;
    uint8_t want = mosquitto_want_write(c->m) ? 1 : 0;
    if (want == c->want_out)
        return;
    struct epoll_event ev = {.events = EPOLLIN | (want ? EPOLLOUT : 0), .data.ptr = c};
    if (epoll_ctl(c->pool->ep, EPOLL_CTL_MOD, c->fd, &ev) == 0)
        c->want_out = want;
}

static void on_connect(struct mosquitto *m, void *ud, int rc)
{
    struct conn *c = ud;
    struct mqttpool *p = c->pool;
    if (rc != 0) {
        p->st.errors++;
        p->refused_pending++;
        snprintf(p->last_reason, sizeof(p->last_reason), "%s", mosquitto_connack_string(rc));
        return; /* libmosquitto drops the socket; conn_lost follows */
    }
    if (c->ever_up)
        p->st.reconnects++;
    c->ever_up = 1;
    c->state = C_UP;
    c->backoff = 0;
    p->st.up++;
    char topic[192];
    presence_topic(p, c->index, topic, sizeof(topic));
    mosquitto_publish(m, &c->presence_mid, topic, 6, "online", 1, true);
}

static void on_publish(struct mosquitto *m, void *ud, int mid)
{
    (void)m;
    struct conn *c = ud;
    struct mqttpool *p = c->pool;
    if (mid == c->presence_mid) { /* mids wrap at 65535: match it once */
        c->presence_mid = -1;
        return;
    }
    p->st.acked++;
    if (c->inflight)
        c->inflight--;
    if (p->st.inflight)
        p->st.inflight--;
}

/* libmosquitto opens a socket pair in mosquitto_new() and again in the
 * first connect, only to wake its own threaded loop, which the pool does not
 * use; it would cost two more descriptors per connection and one more
 * write() per publish.  The pool lets it fail (EMFILE; libmosquitto carries
 * on without it) by allowing no new descriptor during mosquitto_new() and
 * exactly one, the TCP socket, during the connect.  Another thread opening a
 * descriptor at that instant fails too: only the metrics server's accept(),
 * whose client retries.  Returns 1 if the limit was set (undo with
 * fds_unlimit). */
static int fds_limit(int ep, int allow, struct rlimit *old)
{
    int probe = fcntl(ep, F_DUPFD_CLOEXEC, 0); /* the lowest free descriptor */
    if (probe < 0)
        return 0;
    close(probe);
    if (getrlimit(RLIMIT_NOFILE, old) != 0)
        return 0;
    struct rlimit lim = *old;
    lim.rlim_cur = (rlim_t)probe + (rlim_t)allow;
    return setrlimit(RLIMIT_NOFILE, &lim) == 0;
}

static void fds_unlimit(int limited, const struct rlimit *old)
{
    int saved = errno;
    if (limited)
        setrlimit(RLIMIT_NOFILE, old);
    errno = saved;
}

struct mqttpool *mqp_new(const struct mqp_config *cfg, uint32_t n, char *err, size_t err_size)
{
    struct mqttpool *p = calloc(1, sizeof(*p));
    if (!p) {
        snprintf(err, err_size, "out of memory");
        return NULL;
    }
    p->cfg = *cfg;
    p->n = n;
    p->st.conns = n;
    p->ep = epoll_create1(EPOLL_CLOEXEC);
    p->c = calloc(n ? n : 1, sizeof(*p->c));
    if (p->ep < 0 || !p->c) {
        snprintf(err, err_size, "cannot create the event loop: %s", strerror(errno));
        goto fail;
    }
    if (cfg->tls && !(p->ssl_ctx = tls_context(cfg, err, err_size)))
        goto fail;
    /* Each connection costs one socket (see connect_without_sockpair). */
    struct rlimit rl;
    rlim_t need = (rlim_t)n + 256;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < need) {
        rl.rlim_cur = need;
        if (rl.rlim_max < need)
            rl.rlim_max = need;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0) {
            getrlimit(RLIMIT_NOFILE, &rl);
            rl.rlim_cur = rl.rlim_max;
            setrlimit(RLIMIT_NOFILE, &rl);
            if (rl.rlim_cur < need) {
                snprintf(err, err_size, "%u connections need %llu file descriptors, the limit is %llu (ulimit -n)",
                         n, (unsigned long long)need, (unsigned long long)rl.rlim_cur);
                goto fail;
            }
        }
    }
    int64_t now = mono_ms();
    for (uint32_t i = 0; i < n; i++) {
        struct conn *c = &p->c[i];
        char id[128], topic[192];
        c->pool = p;
        c->index = i;
        c->fd = -1;
        c->presence_mid = -1;
        c->retry_ms = now;
        cfg->name(cfg->name_ud, i, id, sizeof(id));
        struct rlimit old;
        int limited = fds_limit(p->ep, 0, &old);
        c->m = mosquitto_new(id, true, c);
        fds_unlimit(limited, &old);
        if (!c->m) {
            snprintf(err, err_size, "cannot create MQTT client %s: %s", id, strerror(errno));
            goto fail;
        }
        mosquitto_connect_callback_set(c->m, on_connect);
        mosquitto_publish_callback_set(c->m, on_publish);
        char pass[128];
        if (cfg->password && cfg->password(cfg->password_ud, id, pass, sizeof(pass)) == 0)
            mosquitto_username_pw_set(c->m, id, pass);
        else if (cfg->user && *cfg->user)
            mosquitto_username_pw_set(c->m, cfg->user, cfg->pass && *cfg->pass ? cfg->pass : NULL);
        if (p->ssl_ctx && (mosquitto_int_option(c->m, MOSQ_OPT_SSL_CTX_WITH_DEFAULTS, 0) != MOSQ_ERR_SUCCESS ||
                           mosquitto_void_option(c->m, MOSQ_OPT_SSL_CTX, p->ssl_ctx) != MOSQ_ERR_SUCCESS)) {
            snprintf(err, err_size, "cannot set up TLS for MQTT client %s", id);
            goto fail;
        }
        presence_topic(p, i, topic, sizeof(topic));
        mosquitto_will_set(c->m, topic, 7, "offline", 1, true);
        if (cfg->max_inflight)
            mosquitto_max_inflight_messages_set(c->m, cfg->max_inflight);
    }
    return p;
fail:
    mqp_free(p, 0);
    return NULL;
}

static int connect_without_sockpair(struct mqttpool *p, struct conn *c, const char *bind)
{
    struct rlimit old;
    int limited = fds_limit(p->ep, 1, &old);
    int rc = mosquitto_connect_bind(c->m, p->cfg.host, p->cfg.port, p->cfg.keepalive_s, bind);
    fds_unlimit(limited, &old);
    return rc;
}

static void try_connect(struct mqttpool *p, struct conn *c)
{
    const char *bind = NULL;
    if (p->cfg.n_source_ips)
        bind = p->cfg.source_ips[c->index % p->cfg.n_source_ips];
    int rc = c->ever_up || c->backoff ? mosquitto_reconnect(c->m) : connect_without_sockpair(p, c, bind);
    if (rc == MOSQ_ERR_INVAL && !c->ever_up)
        rc = connect_without_sockpair(p, c, bind);
    if (rc != MOSQ_ERR_SUCCESS) {
        p->st.errors++;
        p->failed_pending++;
        snprintf(p->last_reason, sizeof(p->last_reason), "%s%s%s",
                 rc == MOSQ_ERR_ERRNO ? strerror(errno) : mosquitto_strerror(rc), bind ? " from " : "",
                 bind ? bind : "");
        schedule_retry(c);
        return;
    }
    c->fd = mosquitto_socket(c->m);
    c->state = C_CONNECTING;
    c->want_out = mosquitto_want_write(c->m) ? 1 : 0;
    struct epoll_event ev = {.events = EPOLLIN | (c->want_out ? EPOLLOUT : 0), .data.ptr = c};
    if (c->fd < 0 || epoll_ctl(p->ep, EPOLL_CTL_ADD, c->fd, &ev) != 0) {
        log_error("cannot watch MQTT connection %u: %s", c->index, strerror(errno));
        mosquitto_disconnect(c->m);
        c->fd = -1;
        c->state = C_DOWN;
        schedule_retry(c);
    }
}

int mqp_can_publish(const struct mqttpool *p, uint32_t c)
{
    return !p->cfg.max_inflight || p->c[c].inflight < p->cfg.max_inflight;
}

int mqp_publish(struct mqttpool *p, uint32_t ci, const char *topic, const char *payload, int len)
{
    struct conn *c = &p->c[ci];
    if (p->cfg.qos == 0 && c->state != C_UP) {
        p->st.failed++;
        return -1;
    }
    /* Counted first: a QoS 0 publish may be written, and on_publish run,
     * inside mosquitto_publish(). */
    p->st.published++;
    p->st.inflight++;
    c->inflight++;
    int rc = mosquitto_publish(c->m, NULL, topic, len, payload, p->cfg.qos, false);
    if (rc == MOSQ_ERR_SUCCESS || (p->cfg.qos > 0 && (rc == MOSQ_ERR_NO_CONN || rc == MOSQ_ERR_CONN_LOST ||
                                                      rc == MOSQ_ERR_ERRNO))) {
        /* QoS 1 stays queued in libmosquitto and is resent after reconnecting. */
        update_out(c);
        return 0;
    }
    p->st.published--;
    p->st.inflight--;
    c->inflight--;
    p->st.failed++;
    return -1;
}

int mqp_conn_up(const struct mqttpool *p, uint32_t c)
{
    return p->c[c].state == C_UP;
}

void mqp_count_lost(struct mqttpool *p)
{
    p->st.failed++;
}

static void handle_events(struct epoll_event *ev, int n)
{
    for (int k = 0; k < n; k++) {
        struct conn *c = ev[k].data.ptr;
        if (c->fd < 0)
            continue;
        int rc = MOSQ_ERR_SUCCESS;
        if (ev[k].events & (EPOLLIN | EPOLLERR | EPOLLHUP))
            rc = mosquitto_loop_read(c->m, 1);
        if (rc == MOSQ_ERR_SUCCESS && mosquitto_socket(c->m) == c->fd && (ev[k].events & EPOLLOUT))
            rc = mosquitto_loop_write(c->m, 1);
        if (rc != MOSQ_ERR_SUCCESS || mosquitto_socket(c->m) != c->fd) {
            if (mosquitto_socket(c->m) >= 0 && mosquitto_socket(c->m) == c->fd)
                mosquitto_disconnect(c->m);
            conn_lost(c, rc);
            continue;
        }
        update_out(c);
    }
}

int mqp_poll(struct mqttpool *p, int timeout_ms)
{
    struct epoll_event ev[MAX_EVENTS];
    int n = epoll_wait(p->ep, ev, MAX_EVENTS, timeout_ms);
    if (n < 0) {
        if (errno == EINTR)
            return 0;
        log_error("epoll_wait: %s", strerror(errno));
        return -1;
    }
    handle_events(ev, n);
    int64_t now = mono_ms();
    if (now >= p->next_misc_ms) {
        p->next_misc_ms = now + 1000;
        if (p->lost_pending)
            log_warn("%u MQTT connection(s) lost: %s (%u of %u up; reconnecting with backoff)", p->lost_pending,
                     p->last_reason, p->st.up, p->n);
        if (p->refused_pending)
            log_warn("%u MQTT connection(s) refused by %s:%d: %s", p->refused_pending, p->cfg.host, p->cfg.port,
                     p->last_reason);
        if (p->failed_pending)
            log_warn("%u connection attempt(s) to MQTT at %s:%d failed: %s (%u of %u up)", p->failed_pending,
                     p->cfg.host, p->cfg.port, p->last_reason, p->st.up, p->n);
        p->lost_pending = p->refused_pending = p->failed_pending = 0;
        for (uint32_t i = 0; i < p->n; i++) {
            struct conn *c = &p->c[i];
            if (c->fd < 0)
                continue;
            int rc = mosquitto_loop_misc(c->m);
            if (rc != MOSQ_ERR_SUCCESS || mosquitto_socket(c->m) != c->fd)
                conn_lost(c, rc);
            else
                update_out(c);
        }
    }
    if (now >= p->next_scan_ms && !p->closing) {
        /* (Re)connect what is due, a bounded number per call, so the
         * broker's accept queue is never flooded and events keep flowing. */
        int started = 0;
        uint32_t i = p->scan_from, seen = 0;
        for (; seen < p->n && started < CONNECTS_PER_POLL; seen++, i = (i + 1) % p->n) {
            struct conn *c = &p->c[i];
            if (c->state == C_DOWN && c->fd < 0 && c->retry_ms <= now) {
                try_connect(p, c);
                started++;
            }
        }
        p->scan_from = p->n ? i % p->n : 0;
        p->next_scan_ms = started >= CONNECTS_PER_POLL ? now : now + 100;
    }
    return 0;
}

void mqp_get_stats(const struct mqttpool *p, struct mqp_stats *out)
{
    *out = p->st;
}

void mqp_free(struct mqttpool *p, int wait_ms)
{
    if (!p)
        return;
    p->closing = 1;
    if (p->c) {
        char topic[192];
        for (uint32_t i = 0; i < p->n; i++) {
            struct conn *c = &p->c[i];
            if (c->m && c->state == C_UP) {
                presence_topic(p, i, topic, sizeof(topic));
                if (p->cfg.clear_presence)
                    mosquitto_publish(c->m, NULL, topic, 0, NULL, 1, true);
                else
                    mosquitto_publish(c->m, NULL, topic, 7, "offline", 1, true);
                mosquitto_disconnect(c->m);
                update_out(c);
            }
        }
        int64_t until = mono_ms() + wait_ms;
        while (mono_ms() < until) {
            int pending = 0;
            for (uint32_t i = 0; i < p->n; i++)
                if (p->c[i].fd >= 0 && mosquitto_socket(p->c[i].m) >= 0 && mosquitto_want_write(p->c[i].m))
                    pending = 1;
            if (!pending)
                break;
            mqp_poll(p, 50);
        }
        for (uint32_t i = 0; i < p->n; i++)
            if (p->c[i].m)
                mosquitto_destroy(p->c[i].m);
        free(p->c);
    }
    if (p->ep >= 0)
        close(p->ep);
    if (p->ssl_ctx)
        SSL_CTX_free(p->ssl_ctx); /* each connection held a reference of its own */
    free(p);
}
