/*
 * mqttpool.c - MQTT device connections on one epoll loop (see mqttpool.h).
 *
 * Each connection's transport and session plumbing (TCP, TLS, CONNECT and
 * CONNACK, output queue, reads, keepalive) is core/mqttconn.c's; the pool
 * adds what a fleet of devices needs on top: the epoll set and the list of
 * connections with something to write (one write per connection per
 * mqp_poll), the pending QoS 1 messages and flow control, presence, and
 * connecting a bounded number at a time.
 */
#include "sim/mqttpool.h"

#include "core/clock.h"
#include "core/log.h"
#include "core/mqttconn.h"
#include "core/mqttwire.h"
#include "core/tlsclient.h"

#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BACKOFF_MIN_MS 500
#define BACKOFF_MAX_MS 30000
#define CONNECT_TIMEOUT_MS 30000
#define CONNECTS_PER_POLL 256
/* Connection attempts under way at once.  A broker accepts from a bounded
 * queue (Mosquitto listens with a backlog of 100): SYNs beyond it are
 * dropped and sent again only after 1, 2, 4... seconds, so thousands of
 * connects at once take far longer than a steady stream. */
#define MAX_CONNECTING 64
#define MAX_EVENTS 1024
#define READ_SIZE 65536
#define OUT_KEEP 16384         /* an output buffer larger than this is freed once written */
#define RESOLVE_EVERY_MS 10000 /* after a failed connect, look the broker up again at most this often */

/* A QoS 1 PUBLISH the broker has not acknowledged: sent again after a
 * reconnect.  The broker acknowledges in order (MQTT 3.1.1, 4.6), so the
 * pending messages are a ring and an acknowledgement is nearly always for
 * its head. */
struct pend {
    uint8_t *pkt;
    uint32_t len;
    uint16_t mid;
    uint8_t presence; /* the connection's own presence, not telemetry */
    uint8_t acked;    /* acknowledged out of order: freed when it reaches the head */
    uint8_t sent;     /* written to a connection once: a resend carries DUP */
};

struct conn {
    struct mqc mc; /* the connection: its state, socket, output queue */
    struct mqttpool *pool;
    struct pend *pend; /* ring: pend[(pend_head + k) % pend_cap], k < npend */
    int64_t retry_ms;  /* DOWN: when to try again; connecting: when to give up */
    uint32_t pend_head, npend, pend_cap;
    uint32_t inflight;  /* telemetry in pend */
    uint32_t q0_queued; /* QoS 0 telemetry in out, acknowledged once written */
    uint32_t index;
    uint16_t next_mid;
    uint8_t in[MQW_MAX_INCOMING]; /* the start of a packet not read whole */
    uint8_t in_len;
    uint8_t want_out; /* EPOLLOUT registered */
    uint8_t backoff;  /* failures in a row */
    uint8_t ever_up;
    uint8_t dirty;  /* in the pool's list of connections to write */
    uint8_t addr_i; /* the broker address of this attempt */
    uint8_t held;   /* its window filled up: closed until half of it is acknowledged */
};

struct mqttpool {
    struct mqp_config cfg;
    SSL_CTX *ssl_ctx; /* mqtts://, shared by every connection */
    struct conn *c;
    uint32_t n;
    uint32_t *dirty; /* connections with something to write */
    uint32_t ndirty;
    int ep;
    uint8_t *rbuf;       /* READ_SIZE bytes, for every read */
    struct mqc_addrs to; /* the broker's addresses, once resolved */
    uint32_t addr_next;  /* the one to try, moved on by a failure */
    int64_t resolved_ms;
    int resolve_again;
    struct sockaddr_storage *src; /* source_ips, resolved */
    socklen_t *src_len;
    int64_t now_ms;
    int64_t next_misc_ms;
    int64_t next_scan_ms;
    uint32_t scan_from;
    uint32_t connecting; /* connections in MQC_TCP, MQC_TLS or MQC_CONNACK */
    int closing;
    struct mqp_stats st;
    /* Problems are logged as one line per second, not one per connection. */
    uint32_t lost_pending, refused_pending, failed_pending;
    char last_reason[256];
};

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
    c->retry_ms = fs_mono_ms() + d;
    if (c->backoff < 255)
        c->backoff++;
}

static void set_reason(struct mqttpool *p, const char *reason)
{
    snprintf(p->last_reason, sizeof(p->last_reason), "%s", reason);
}

/* Closes the socket; QoS 0 readings still in the output buffer are lost
 * (QoS 1 ones stay pending). */
static void close_socket(struct conn *c)
{
    struct mqttpool *p = c->pool;
    if (c->mc.fd >= 0)
        epoll_ctl(p->ep, EPOLL_CTL_DEL, c->mc.fd, NULL);
    if (c->q0_queued) {
        p->st.failed += c->q0_queued;
        p->st.inflight -= c->q0_queued;
        c->q0_queued = 0;
        c->held = c->inflight > p->cfg.max_inflight / 2;
    }
    c->in_len = 0;
    c->want_out = 0;
    if (c->mc.state == MQC_UP && p->st.up)
        p->st.up--;
    else if (c->mc.state != MQC_DOWN && p->connecting)
        p->connecting--;
    mqc_close(&c->mc);
    schedule_retry(c);
}

/* A connection that was up, or on its way up, is gone. */
static void conn_lost(struct conn *c, const char *reason)
{
    struct mqttpool *p = c->pool;
    if (!p->closing) {
        p->st.errors++;
        p->lost_pending++;
        set_reason(p, reason);
    }
    close_socket(c);
}

/* A connection attempt failed before the broker answered. */
static void conn_failed(struct conn *c, const char *reason)
{
    struct mqttpool *p = c->pool;
    p->st.errors++;
    p->failed_pending++;
    const char *from = p->cfg.n_source_ips ? p->cfg.source_ips[c->index % p->cfg.n_source_ips] : NULL;
    if (c->mc.state <= MQC_TLS && p->to.n) { /* this address did not answer: the next attempt tries another */
        if (p->addr_next == c->addr_i)
            p->addr_next = (c->addr_i + 1u) % p->to.n;
        p->resolve_again = 1;
    }
    snprintf(p->last_reason, sizeof(p->last_reason), "%s%s%s", reason, from ? " from " : "", from ? from : "");
    close_socket(c);
}

/* EPOLLOUT while there is something the socket can take, or a TLS read
 * waits to write. */
static void set_want_out(struct conn *c, int want)
{
    if (c->mc.fd < 0 || (uint8_t)want == c->want_out)
        return;
    struct epoll_event ev = {.events = EPOLLIN | (want ? EPOLLOUT : 0), .data.ptr = c};
    if (epoll_ctl(c->pool->ep, EPOLL_CTL_MOD, c->mc.fd, &ev) == 0)
        c->want_out = (uint8_t)want;
}

/* --- output ---------------------------------------------------------------- */

static void mark_dirty(struct mqttpool *p, struct conn *c)
{
    if (!c->dirty) {
        c->dirty = 1;
        p->dirty[p->ndirty++] = c->index;
    }
}

static int out_append(struct conn *c, const uint8_t *b, size_t n)
{
    if (mqc_append(&c->mc, b, n) != 0)
        return -1;
    mark_dirty(c->pool, c);
    return 0;
}

/* Writes what the output buffer holds, as far as the socket takes it.
 * Returns 0, or -1 if the connection was lost. */
static int flush(struct conn *c)
{
    struct mqttpool *p = c->pool;
    char why[200];
    int r = mqc_flush(&c->mc, p->now_ms, why, sizeof(why));
    if (r < 0) {
        conn_lost(c, why);
        return -1;
    }
    if (r > 0) {
        if (c->q0_queued) {
            p->st.acked += c->q0_queued;
            p->st.inflight -= c->q0_queued;
            c->q0_queued = 0;
            c->held = 0;
        }
        mqc_trim(&c->mc, OUT_KEEP);
    }
    set_want_out(c, (mqc_pending_out(&c->mc) && !(c->mc.tls_wait & MQC_WRITE_WANTS_READ)) ||
                        (c->mc.tls_wait & MQC_READ_WANTS_WRITE));
    return 0;
}

/* --- pending QoS 1 messages ------------------------------------------------ */

static struct pend *pend_at(const struct conn *c, uint32_t k)
{
    return &c->pend[(c->pend_head + k) % c->pend_cap];
}

static int pend_push(struct conn *c, uint8_t *pkt, size_t len, uint16_t mid, int presence)
{
    if (c->npend == c->pend_cap) {
        uint32_t cap = c->pend_cap ? c->pend_cap * 2 : 8;
        struct pend *n = malloc((size_t)cap * sizeof(*n));
        if (!n || cap < c->pend_cap) {
            free(n);
            return -1;
        }
        for (uint32_t k = 0; k < c->npend; k++)
            n[k] = *pend_at(c, k);
        free(c->pend);
        c->pend = n;
        c->pend_cap = cap;
        c->pend_head = 0;
    }
    *pend_at(c, c->npend) = (struct pend){.pkt = pkt, .len = (uint32_t)len, .mid = mid, .presence = (uint8_t)presence};
    c->npend++;
    return 0;
}

static uint16_t take_mid(struct conn *c)
{
    if (++c->next_mid == 0)
        c->next_mid = 1;
    return c->next_mid;
}

static void on_puback(struct conn *c, uint16_t mid)
{
    struct mqttpool *p = c->pool;
    for (uint32_t k = 0; k < c->npend; k++) {
        struct pend *e = pend_at(c, k);
        if (!e->acked && e->mid == mid) {
            e->acked = 1;
            if (!e->presence) {
                c->inflight--;
                p->st.inflight--;
                p->st.acked++;
                if (c->held && c->inflight <= p->cfg.max_inflight / 2)
                    c->held = 0;
            }
            break;
        }
    }
    while (c->npend && pend_at(c, 0)->acked) { /* an unknown mid changes nothing */
        free(pend_at(c, 0)->pkt);
        c->pend_head = (c->pend_head + 1) % c->pend_cap;
        c->npend--;
    }
}

/* Queues a QoS 1 presence message ("online", "offline" or empty). */
static int queue_presence(struct conn *c, const char *value)
{
    struct mqttpool *p = c->pool;
    char topic[192];
    presence_topic(p, c->index, topic, sizeof(topic));
    size_t tl = strlen(topic), vl = strlen(value), sz = mqw_publish_size(tl, vl, 1);
    uint8_t *pkt = malloc(sz);
    if (!pkt)
        return -1;
    uint16_t mid = take_mid(c);
    size_t n = mqw_encode_publish(pkt, sz, topic, tl, value, vl, 1, 1, mid);
    if (!n || pend_push(c, pkt, n, mid, 1) != 0) {
        free(pkt);
        return -1;
    }
    return out_append(c, pkt, n);
}

/* CONNACK accepted: announce presence, then send again, in their order,
 * the readings the broker had not acknowledged.  Presence messages of an
 * earlier connection are dropped: this one says "online" again. */
static void on_up(struct conn *c)
{
    struct mqttpool *p = c->pool;
    if (c->ever_up)
        p->st.reconnects++;
    c->ever_up = 1;
    if (p->connecting)
        p->connecting--;
    c->backoff = 0;
    p->st.up++;
    uint32_t n = c->npend, kept = 0;
    struct pend *old = n ? malloc((size_t)n * sizeof(*old)) : NULL;
    if (n && !old) {
        conn_lost(c, "out of memory");
        return;
    }
    for (uint32_t k = 0; k < n; k++) {
        struct pend *e = pend_at(c, k);
        if (e->presence || e->acked)
            free(e->pkt);
        else
            old[kept++] = *e;
    }
    c->pend_head = 0;
    c->npend = 0;
    int rc = queue_presence(c, "online");
    for (uint32_t k = 0; k < kept; k++) {
        if (old[k].sent)
            old[k].pkt[0] |= MQW_DUP_BIT;
        if (pend_push(c, old[k].pkt, old[k].len, old[k].mid, 0) != 0) { /* out of memory: lost, counted */
            free(old[k].pkt);
            c->inflight--;
            p->st.inflight--;
            p->st.failed++;
            continue;
        }
        if (rc == 0) {
            pend_at(c, c->npend - 1)->sent = 1;
            rc = out_append(c, old[k].pkt, old[k].len);
        }
    }
    free(old);
    if (rc != 0)
        conn_lost(c, "out of memory");
}

/* --- connecting -------------------------------------------------------------- */

/* Looks the broker up (again): every address, tried in turn after failures. */
static int resolve(struct mqttpool *p, char *err, size_t err_size)
{
    struct mqc_addrs to;
    p->resolved_ms = p->now_ms;
    p->resolve_again = 0;
    if (mqc_resolve(p->cfg.host, p->cfg.port, p->cfg.n_source_ips ? p->src[0].ss_family : AF_UNSPEC, &to, err,
                    err_size) != 0)
        return -1;
    p->to = to;
    p->addr_next %= p->to.n;
    return 0;
}

static void send_connect(struct conn *c)
{
    struct mqttpool *p = c->pool;
    char id[128], topic[192], pass[128];
    p->cfg.name(p->cfg.name_ud, c->index, id, sizeof(id));
    presence_topic(p, c->index, topic, sizeof(topic));
    struct mqw_connect m = {.client_id = id,
                            .keepalive_s = (uint16_t)p->cfg.keepalive_s,
                            .clean_session = 1,
                            .will_topic = topic,
                            .will_payload = "offline",
                            .will_len = 7,
                            .will_qos = 1,
                            .will_retain = 1};
    if (p->cfg.password && p->cfg.password(p->cfg.password_ud, id, pass, sizeof(pass)) == 0) {
        m.user = id;
        m.pass = pass;
    } else if (p->cfg.user && *p->cfg.user) {
        m.user = p->cfg.user;
        m.pass = p->cfg.pass && *p->cfg.pass ? p->cfg.pass : NULL;
    }
    if (mqc_queue_connect(&c->mc, &m) != 0) {
        conn_failed(c, "cannot build CONNECT");
        return;
    }
    c->retry_ms = p->now_ms + CONNECT_TIMEOUT_MS;
    flush(c);
}

/* A socket event while TCP connects or TLS shakes hands: CONNECT once the
 * transport is ready. */
static void step(struct conn *c)
{
    struct mqttpool *p = c->pool;
    char why[200];
    int r = mqc_step(&c->mc, p->ssl_ctx, p->cfg.host, why, sizeof(why));
    if (r < 0)
        conn_failed(c, why);
    else if (r > 0)
        send_connect(c);
    else
        set_want_out(c, (c->mc.tls_wait & MQC_READ_WANTS_WRITE) != 0);
}

static void try_connect(struct conn *c)
{
    struct mqttpool *p = c->pool;
    char err[200];
    if ((!p->to.n || (p->resolve_again && p->now_ms - p->resolved_ms >= RESOLVE_EVERY_MS)) &&
        resolve(p, err, sizeof(err)) != 0 && !p->to.n) {
        p->st.errors++;
        p->failed_pending++;
        set_reason(p, err);
        schedule_retry(c);
        return;
    }
    c->addr_i = (uint8_t)p->addr_next;
    const struct sockaddr *from = NULL;
    socklen_t from_len = 0;
    if (p->cfg.n_source_ips) {
        uint32_t k = c->index % (uint32_t)p->cfg.n_source_ips;
        from = (const struct sockaddr *)&p->src[k];
        from_len = p->src_len[k];
    }
    if (mqc_start(&c->mc, (const struct sockaddr *)&p->to.addr[c->addr_i], p->to.len[c->addr_i], from, from_len,
                  p->now_ms, err, sizeof(err)) != 0) {
        /* this address (or the source address) did not take it: the next attempt tries another */
        if (p->addr_next == c->addr_i)
            p->addr_next = (c->addr_i + 1u) % p->to.n;
        p->resolve_again = 1;
        p->st.errors++;
        p->failed_pending++;
        const char *src = p->cfg.n_source_ips ? p->cfg.source_ips[c->index % p->cfg.n_source_ips] : NULL;
        snprintf(p->last_reason, sizeof(p->last_reason), "%s%s%s", err, src ? " from " : "", src ? src : "");
        schedule_retry(c);
        return;
    }
    p->connecting++;
    c->retry_ms = p->now_ms + CONNECT_TIMEOUT_MS;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.ptr = c};
    if (epoll_ctl(p->ep, EPOLL_CTL_ADD, c->mc.fd, &ev) != 0) {
        log_error("cannot watch MQTT connection %u: %s", c->index, strerror(errno));
        conn_failed(c, strerror(errno));
        return;
    }
    c->want_out = 1;
}

/* --- reading ----------------------------------------------------------------- */

/* Returns 0, or -1 if the connection is gone. */
static int on_packet(struct conn *c, const struct mqw_packet *pk)
{
    struct mqttpool *p = c->pool;
    char why[80];
    switch (pk->type) {
    case MQW_CONNACK: {
        int r = mqc_connack(&c->mc, pk);
        if (r < 0)
            break;
        if (r > 0) {
            p->st.errors++;
            p->refused_pending++;
            set_reason(p, mqw_connack_string(pk->return_code));
            close_socket(c);
            return -1;
        }
        on_up(c);
        return c->mc.fd >= 0 ? 0 : -1;
    }
    case MQW_PUBACK:
        if (c->mc.state != MQC_UP)
            break;
        on_puback(c, pk->mid);
        return 0;
    case MQW_PINGRESP:
        mqc_pong(&c->mc);
        return 0;
    default:
        break;
    }
    snprintf(why, sizeof(why), "unexpected packet (type %d) from the broker", pk->type);
    conn_lost(c, why);
    return -1;
}

/* Reads every packet waiting on the socket.  Returns 0, or -1 if the
 * connection is gone. */
static int on_readable(struct conn *c)
{
    struct mqttpool *p = c->pool;
    uint8_t *buf = p->rbuf;
    for (;;) {
        size_t have = c->in_len;
        memcpy(buf, c->in, have);
        int empty;
        char why[200];
        long r = mqc_read(&c->mc, buf + have, READ_SIZE - have, &empty, why, sizeof(why));
        if (r < 0) {
            conn_lost(c, why);
            return -1;
        }
        if (r == 0) {
            if (c->mc.tls_wait & MQC_READ_WANTS_WRITE)
                set_want_out(c, 1);
            return 0;
        }
        size_t len = have + (size_t)r, off = 0;
        for (;;) {
            struct mqw_packet pk;
            int n = mqw_parse(buf + off, len - off, &pk);
            if (n < 0) {
                conn_lost(c, "malformed packet from the broker");
                return -1;
            }
            if (n == 0)
                break;
            off += (size_t)n;
            if (on_packet(c, &pk) != 0)
                return -1;
        }
        c->in_len = (uint8_t)(len - off); /* less than MQW_MAX_INCOMING: mqw_parse said so */
        memcpy(c->in, buf + off, c->in_len);
        if (empty)
            return 0; /* the socket is empty */
    }
}

static void on_event(struct conn *c, uint32_t events)
{
    if (c->mc.state == MQC_TCP || c->mc.state == MQC_TLS) {
        step(c);
        return;
    }
    if (((events & (EPOLLIN | EPOLLERR | EPOLLHUP)) ||
         ((events & EPOLLOUT) && (c->mc.tls_wait & MQC_READ_WANTS_WRITE))) &&
        on_readable(c) != 0)
        return;
    if (c->mc.fd >= 0 && (mqc_pending_out(&c->mc) || c->want_out))
        flush(c); /* also unregisters EPOLLOUT once nothing is left */
}

/* --- the pool ---------------------------------------------------------------- */

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
    p->dirty = calloc(n ? n : 1, sizeof(*p->dirty));
    p->rbuf = malloc(READ_SIZE);
    int64_t now = fs_mono_ms();
    for (uint32_t i = 0; p->c && i < n; i++) { /* before any failure: mqp_free reads them */
        struct conn *c = &p->c[i];
        mqc_init(&c->mc);
        c->pool = p;
        c->index = i;
        c->retry_ms = now;
    }
    if (p->ep < 0 || !p->c || !p->dirty || !p->rbuf) {
        snprintf(err, err_size, "cannot create the event loop: %s", strerror(errno));
        goto fail;
    }
    if (cfg->tls && !(p->ssl_ctx = tls_client_context(cfg->cafile, cfg->host, err, err_size)))
        goto fail;
    if (cfg->n_source_ips) {
        p->src = calloc(cfg->n_source_ips, sizeof(*p->src));
        p->src_len = calloc(cfg->n_source_ips, sizeof(*p->src_len));
        if (!p->src || !p->src_len) {
            snprintf(err, err_size, "out of memory");
            goto fail;
        }
        for (size_t k = 0; k < cfg->n_source_ips; k++) {
            struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE | AI_NUMERICHOST}, *res;
            int rc = getaddrinfo(cfg->source_ips[k], NULL, &hints, &res);
            if (rc != 0) {
                snprintf(err, err_size, "source address %s: %s", cfg->source_ips[k], gai_strerror(rc));
                goto fail;
            }
            memcpy(&p->src[k], res->ai_addr, res->ai_addrlen);
            p->src_len[k] = res->ai_addrlen;
            freeaddrinfo(res);
            if (p->src[k].ss_family != p->src[0].ss_family) {
                snprintf(err, err_size, "source addresses mix IPv4 and IPv6");
                goto fail;
            }
        }
    }
    /* Each connection costs one socket. */
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
                snprintf(err, err_size, "%u connections need %llu file descriptors, the limit is %llu (ulimit -n)", n,
                         (unsigned long long)need, (unsigned long long)rl.rlim_cur);
                goto fail;
            }
        }
    }
    return p;
fail:
    mqp_free(p, 0);
    return NULL;
}

int mqp_can_publish(const struct mqttpool *p, uint32_t c)
{
    /* QoS 0 readings count until written, so a fast simulator's buffers
     * stay bounded.  A connection whose window filled up waits until half of
     * it is acknowledged: then it takes a batch, not one reading per
     * acknowledgement. */
    const struct conn *cc = &p->c[c];
    return !p->cfg.max_inflight || (!cc->held && cc->inflight + cc->q0_queued < p->cfg.max_inflight);
}

int mqp_publish(struct mqttpool *p, uint32_t ci, const char *topic, const char *payload, int len)
{
    struct conn *c = &p->c[ci];
    size_t tl = strlen(topic), pl = len > 0 ? (size_t)len : 0;
    size_t sz = mqw_publish_size(tl, pl, p->cfg.qos);
    if (p->cfg.qos == 0) {
        if (c->mc.state != MQC_UP || mqc_reserve(&c->mc, sz) != 0)
            goto refused;
        size_t n = mqw_encode_publish((uint8_t *)c->mc.out.p + c->mc.out.len, sz, topic, tl, payload, pl, 0, 0, 0);
        if (!n)
            goto refused;
        mqc_commit(&c->mc, n);
        mark_dirty(p, c);
        c->q0_queued++;
    } else {
        uint8_t *pkt = malloc(sz);
        uint16_t mid = take_mid(c);
        size_t n = pkt ? mqw_encode_publish(pkt, sz, topic, tl, payload, pl, 1, 0, mid) : 0;
        if (!n || pend_push(c, pkt, n, mid, 0) != 0) {
            free(pkt);
            goto refused;
        }
        c->inflight++;
        /* While the connection is down it stays pending: sent after the CONNACK. */
        if (c->mc.state == MQC_UP) {
            pend_at(c, c->npend - 1)->sent = 1;
            if (out_append(c, pkt, n) != 0)
                conn_lost(c, "out of memory");
        }
    }
    p->st.published++;
    p->st.inflight++;
    if (p->cfg.max_inflight && c->inflight + c->q0_queued >= p->cfg.max_inflight)
        c->held = 1;
    return 0;
refused:
    p->st.failed++;
    return -1;
}

int mqp_conn_up(const struct mqttpool *p, uint32_t c)
{
    return p->c[c].mc.state == MQC_UP;
}

void mqp_count_lost(struct mqttpool *p)
{
    p->st.failed++;
}

static void flush_dirty(struct mqttpool *p)
{
    for (uint32_t k = 0; k < p->ndirty; k++) {
        struct conn *c = &p->c[p->dirty[k]];
        c->dirty = 0;
        if (c->mc.state >= MQC_CONNACK)
            flush(c);
    }
    p->ndirty = 0;
}

/* Once a second: time-outs and keepalive. */
static void misc(struct mqttpool *p)
{
    int64_t ka = (int64_t)p->cfg.keepalive_s * 1000;
    for (uint32_t i = 0; i < p->n; i++) {
        struct conn *c = &p->c[i];
        if (c->mc.fd < 0)
            continue;
        if (c->mc.state != MQC_UP) {
            if (p->now_ms >= c->retry_ms)
                conn_failed(c, c->mc.state == MQC_CONNACK ? "no CONNACK within 30 s" : "connect timed out");
            continue;
        }
        if (ka <= 0 || p->closing) /* nothing may follow DISCONNECT */
            continue;
        /* at three quarters: this check runs about once a second */
        char why[80];
        if (mqc_keepalive(&c->mc, p->now_ms, ka, 1, why, sizeof(why)) != 0)
            conn_lost(c, why);
        else if (mqc_pending_out(&c->mc))
            mark_dirty(p, c); /* a PINGREQ */
    }
}

int mqp_poll(struct mqttpool *p, int timeout_ms)
{
    p->now_ms = fs_mono_ms();
    flush_dirty(p);
    struct epoll_event ev[MAX_EVENTS];
    int n = epoll_wait(p->ep, ev, MAX_EVENTS, timeout_ms);
    if (n < 0) {
        if (errno == EINTR)
            return 0;
        log_error("epoll_wait: %s", strerror(errno));
        return -1;
    }
    p->now_ms = fs_mono_ms();
    for (int k = 0; k < n; k++) {
        struct conn *c = ev[k].data.ptr;
        if (c->mc.fd >= 0)
            on_event(c, ev[k].events);
    }
    int64_t now = p->now_ms;
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
        misc(p);
    }
    if (now >= p->next_scan_ms && !p->closing) {
        /* (Re)connect what is due, a bounded number per call, so the
         * broker's accept queue is never flooded and events keep flowing. */
        int started = 0;
        uint32_t i = p->scan_from, seen = 0;
        for (; seen < p->n && started < CONNECTS_PER_POLL && p->connecting < MAX_CONNECTING;
             seen++, i = (i + 1) % p->n) {
            struct conn *c = &p->c[i];
            if (c->mc.state == MQC_DOWN && c->retry_ms <= now) {
                try_connect(c);
                started++;
            }
        }
        p->scan_from = p->n ? i % p->n : 0;
        p->next_scan_ms = started >= CONNECTS_PER_POLL || p->connecting >= MAX_CONNECTING ? now : now + 100;
    }
    flush_dirty(p);
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
        /* The last presence, then DISCONNECT; the broker closes the
         * connection once it has read them. */
        uint8_t disc[2];
        size_t dn = mqw_encode_empty(disc, sizeof(disc), MQW_DISCONNECT);
        for (uint32_t i = 0; i < p->n; i++) {
            struct conn *c = &p->c[i];
            if (c->mc.state != MQC_UP) { /* still connecting: nothing to announce */
                if (c->mc.fd >= 0)
                    close_socket(c);
                continue;
            }
            if (queue_presence(c, p->cfg.clear_presence ? "" : "offline") != 0 || out_append(c, disc, dn) != 0)
                conn_lost(c, "out of memory");
        }
        int64_t until = fs_mono_ms() + wait_ms;
        while (fs_mono_ms() < until) {
            int open = 0;
            for (uint32_t i = 0; i < p->n && !open; i++)
                open = p->c[i].mc.state == MQC_UP;
            if (!open)
                break;
            mqp_poll(p, 50);
        }
        for (uint32_t i = 0; i < p->n; i++) {
            struct conn *c = &p->c[i];
            if (c->mc.fd >= 0)
                close_socket(c);
            mqc_release(&c->mc);
            for (uint32_t k = 0; k < c->npend; k++)
                free(pend_at(c, k)->pkt);
            free(c->pend);
        }
    }
    free(p->c);
    free(p->dirty);
    free(p->rbuf);
    free(p->src);
    free(p->src_len);
    if (p->ep >= 0)
        close(p->ep);
    if (p->ssl_ctx)
        SSL_CTX_free(p->ssl_ctx);
    free(p);
}
