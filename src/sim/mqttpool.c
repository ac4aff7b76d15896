/*
 * mqttpool.c - MQTT device connections on one epoll loop (see mqttpool.h).
 */
#include "sim/mqttpool.h"

#include "core/log.h"
#include "core/mqttwire.h"
#include "core/tlsclient.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BACKOFF_MIN_MS     500
#define BACKOFF_MAX_MS     30000
#define CONNECT_TIMEOUT_MS 30000
#define CONNECTS_PER_POLL  256
/* Connection attempts under way at once.  A broker accepts from a bounded
 * queue (Mosquitto listens with a backlog of 100): SYNs beyond it are
 * dropped and sent again only after 1, 2, 4... seconds, so thousands of
 * connects at once take far longer than a steady stream. */
#define MAX_CONNECTING     64
#define MAX_EVENTS         1024
#define READ_SIZE          65536
#define OUT_KEEP           16384 /* an output buffer larger than this is freed once written */
#define MAX_ADDRS          8
#define RESOLVE_EVERY_MS   10000 /* after a failed connect, look the broker up again at most this often */

enum conn_state { C_DOWN, C_TCP, C_TLS, C_CONNECTING, C_UP };

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
    struct mqttpool *pool;
    SSL *ssl;
    uint8_t *out;       /* to write: out[out_off, out_len) */
    struct pend *pend;  /* ring: pend[(pend_head + k) % pend_cap], k < npend */
    int64_t retry_ms;   /* DOWN: when to try again; connecting: when to give up */
    int64_t last_out_ms;
    int64_t ping_ms;    /* a PINGREQ not yet answered, or 0 */
    uint32_t out_off, out_len, out_cap;
    uint32_t pend_head, npend, pend_cap;
    uint32_t inflight;  /* telemetry in pend */
    uint32_t q0_queued; /* QoS 0 telemetry in out, acknowledged once written */
    uint32_t index;
    int fd;             /* registered in epoll, or -1 */
    uint16_t next_mid;
    uint8_t in[MQW_MAX_INCOMING]; /* the start of a packet not read whole */
    uint8_t in_len;
    uint8_t state;
    uint8_t want_out;   /* EPOLLOUT registered */
    uint8_t backoff;    /* failures in a row */
    uint8_t ever_up;
    uint8_t dirty;      /* in the pool's list of connections to write */
    uint8_t addr_i;     /* the broker address of this attempt */
    uint8_t tls_wait;   /* TLS_READ_WANTS_WRITE | TLS_WRITE_WANTS_READ */
    uint8_t held;       /* its window filled up: closed until half of it is acknowledged */
};

/* OpenSSL may need the other direction first (a renegotiation, a TLS 1.3
 * key update): the waiting operation is retried when that one is ready. */
#define TLS_READ_WANTS_WRITE 1
#define TLS_WRITE_WANTS_READ 2

struct mqttpool {
    struct mqp_config cfg;
    SSL_CTX *ssl_ctx;   /* mqtts://, shared by every connection */
    struct conn *c;
    uint32_t n;
    uint32_t *dirty;    /* connections with something to write */
    uint32_t ndirty;
    int ep;
    uint8_t *rbuf;      /* READ_SIZE bytes, for every read */
    struct sockaddr_storage addr[MAX_ADDRS]; /* the broker's addresses, once resolved */
    socklen_t addr_len[MAX_ADDRS];
    uint32_t naddr, addr_next; /* addr_next: the one to try, moved on by a failure */
    int64_t resolved_ms;
    int resolve_again;
    struct sockaddr_storage *src; /* source_ips, resolved */
    socklen_t *src_len;
    int64_t now_ms;
    int64_t next_misc_ms;
    int64_t next_scan_ms;
    uint32_t scan_from;
    uint32_t connecting; /* connections in C_TCP, C_TLS or C_CONNECTING */
    int closing;
    struct mqp_stats st;
    /* Problems are logged as one line per second, not one per connection. */
    uint32_t lost_pending, refused_pending, failed_pending;
    char last_reason[256];
};

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

static void set_reason(struct mqttpool *p, const char *reason)
{
    snprintf(p->last_reason, sizeof(p->last_reason), "%s", reason);
}

/* Closes the socket; QoS 0 readings still in the output buffer are lost
 * (QoS 1 ones stay pending). */
static void close_socket(struct conn *c)
{
    struct mqttpool *p = c->pool;
    if (c->ssl) {
        SSL_free(c->ssl);
        c->ssl = NULL;
    }
    if (c->fd >= 0) {
        epoll_ctl(p->ep, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
        c->fd = -1;
    }
    if (c->q0_queued) {
        p->st.failed += c->q0_queued;
        p->st.inflight -= c->q0_queued;
        c->q0_queued = 0;
        c->held = c->inflight > p->cfg.max_inflight / 2;
    }
    c->out_off = c->out_len = 0;
    c->in_len = 0;
    c->ping_ms = 0;
    c->tls_wait = 0;
    c->want_out = 0;
    if (c->state == C_UP && p->st.up)
        p->st.up--;
    else if (c->state != C_DOWN && p->connecting)
        p->connecting--;
    c->state = C_DOWN;
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
    if (c->state <= C_TLS && p->naddr) { /* this address did not answer: the next attempt tries another */
        if (p->addr_next == c->addr_i)
            p->addr_next = (c->addr_i + 1u) % p->naddr;
        p->resolve_again = 1;
    }
    snprintf(p->last_reason, sizeof(p->last_reason), "%s%s%s", reason, from ? " from " : "", from ? from : "");
    close_socket(c);
}

/* EPOLLOUT while there is something the socket can take, or a TLS read
 * waits to write. */
static void set_want_out(struct conn *c, int want)
{
    if (c->fd < 0 || (uint8_t)want == c->want_out)
        return;
    struct epoll_event ev = {.events = EPOLLIN | (want ? EPOLLOUT : 0), .data.ptr = c};
    if (epoll_ctl(c->pool->ep, EPOLL_CTL_MOD, c->fd, &ev) == 0)
        c->want_out = (uint8_t)want;
}

/* --- output ---------------------------------------------------------------- */

/* Makes room for n more bytes in the output buffer; -1 if out of memory. */
static int out_reserve(struct conn *c, size_t n)
{
    if (c->out_off && c->out_off == c->out_len)
        c->out_off = c->out_len = 0;
    if (c->out_cap - c->out_len >= n)
        return 0;
    if (c->out_off) { /* written already: drop it before growing */
        memmove(c->out, c->out + c->out_off, c->out_len - c->out_off);
        c->out_len -= c->out_off;
        c->out_off = 0;
        if (c->out_cap - c->out_len >= n)
            return 0;
    }
    size_t cap = c->out_cap ? c->out_cap : 512;
    while (cap - c->out_len < n)
        cap *= 2;
    if (cap > UINT32_MAX)
        return -1;
    uint8_t *o = realloc(c->out, cap);
    if (!o)
        return -1;
    c->out = o;
    c->out_cap = (uint32_t)cap;
    return 0;
}

static void mark_dirty(struct mqttpool *p, struct conn *c)
{
    if (!c->dirty) {
        c->dirty = 1;
        p->dirty[p->ndirty++] = c->index;
    }
}

static int out_append(struct conn *c, const uint8_t *b, size_t n)
{
    if (out_reserve(c, n) != 0)
        return -1;
    memcpy(c->out + c->out_len, b, n);
    c->out_len += (uint32_t)n;
    mark_dirty(c->pool, c);
    return 0;
}

/* Writes what the output buffer holds, as far as the socket takes it.
 * Returns 0, or -1 if the connection was lost. */
static int flush(struct conn *c)
{
    struct mqttpool *p = c->pool;
    while (c->out_off < c->out_len) {
        size_t len = c->out_len - c->out_off;
        ssize_t w;
        if (c->ssl) {
            ERR_clear_error();
            int r = SSL_write(c->ssl, c->out + c->out_off, len > INT32_MAX ? INT32_MAX : (int)len);
            if (r <= 0) {
                int e = SSL_get_error(c->ssl, r);
                if (e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ) {
                    if (e == SSL_ERROR_WANT_READ)
                        c->tls_wait |= TLS_WRITE_WANTS_READ;
                    break;
                }
                conn_lost(c, e == SSL_ERROR_SYSCALL && errno ? strerror(errno) : "TLS write failed");
                return -1;
            }
            w = r;
            c->tls_wait &= (uint8_t)~TLS_WRITE_WANTS_READ;
        } else {
            w = send(c->fd, c->out + c->out_off, len, MSG_NOSIGNAL);
            if (w < 0) {
                if (errno == EINTR)
                    continue;
                if (errno == EAGAIN || errno == EWOULDBLOCK)
                    break;
                conn_lost(c, strerror(errno));
                return -1;
            }
        }
        c->out_off += (uint32_t)w;
        c->last_out_ms = p->now_ms;
    }
    if (c->out_off == c->out_len) {
        c->out_off = c->out_len = 0;
        if (c->q0_queued) {
            p->st.acked += c->q0_queued;
            p->st.inflight -= c->q0_queued;
            c->q0_queued = 0;
            c->held = 0;
        }
        if (c->out_cap > OUT_KEEP) {
            free(c->out);
            c->out = NULL;
            c->out_cap = 0;
        }
    }
    set_want_out(c, (c->out_off < c->out_len && !(c->tls_wait & TLS_WRITE_WANTS_READ)) ||
                        (c->tls_wait & TLS_READ_WANTS_WRITE));
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
    c->state = C_UP;
    c->backoff = 0;
    c->ping_ms = 0;
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
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV}, *res = NULL;
    if (p->cfg.n_source_ips)
        hints.ai_family = p->src[0].ss_family;
    char port[16];
    snprintf(port, sizeof(port), "%d", p->cfg.port);
    p->resolved_ms = p->now_ms;
    p->resolve_again = 0;
    int rc = getaddrinfo(p->cfg.host, port, &hints, &res);
    if (rc != 0 || !res) {
        snprintf(err, err_size, "cannot resolve %s: %s", p->cfg.host, rc ? gai_strerror(rc) : "no address");
        return -1;
    }
    p->naddr = 0;
    for (struct addrinfo *a = res; a && p->naddr < MAX_ADDRS; a = a->ai_next) {
        if (a->ai_addrlen > sizeof(p->addr[0]))
            continue;
        memcpy(&p->addr[p->naddr], a->ai_addr, a->ai_addrlen);
        p->addr_len[p->naddr++] = a->ai_addrlen;
    }
    freeaddrinfo(res);
    p->addr_next %= p->naddr ? p->naddr : 1;
    if (!p->naddr) {
        snprintf(err, err_size, "cannot resolve %s: no usable address", p->cfg.host);
        return -1;
    }
    return 0;
}

static void send_connect(struct conn *c)
{
    struct mqttpool *p = c->pool;
    char id[128], topic[192], pass[128];
    p->cfg.name(p->cfg.name_ud, c->index, id, sizeof(id));
    presence_topic(p, c->index, topic, sizeof(topic));
    struct mqw_connect m = {.client_id = id, .keepalive_s = (uint16_t)p->cfg.keepalive_s, .clean_session = 1,
                            .will_topic = topic, .will_payload = "offline", .will_len = 7, .will_qos = 1,
                            .will_retain = 1};
    if (p->cfg.password && p->cfg.password(p->cfg.password_ud, id, pass, sizeof(pass)) == 0) {
        m.user = id;
        m.pass = pass;
    } else if (p->cfg.user && *p->cfg.user) {
        m.user = p->cfg.user;
        m.pass = p->cfg.pass && *p->cfg.pass ? p->cfg.pass : NULL;
    }
    uint8_t pkt[1024];
    size_t n = mqw_encode_connect(pkt, sizeof(pkt), &m);
    if (!n || out_append(c, pkt, n) != 0) {
        conn_failed(c, "cannot build CONNECT");
        return;
    }
    c->state = C_CONNECTING;
    c->retry_ms = p->now_ms + CONNECT_TIMEOUT_MS;
    flush(c);
}

static void tls_step(struct conn *c)
{
    ERR_clear_error();
    int r = SSL_do_handshake(c->ssl);
    if (r == 1) {
        send_connect(c);
        return;
    }
    int e = SSL_get_error(c->ssl, r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
        set_want_out(c, e == SSL_ERROR_WANT_WRITE);
        return;
    }
    char why[200];
    snprintf(why, sizeof(why), "TLS handshake failed: %s", tls_client_error(e));
    conn_failed(c, why);
}

/* The TCP connect finished (EPOLLOUT): start TLS or send CONNECT. */
static void tcp_done(struct conn *c)
{
    struct mqttpool *p = c->pool;
    int err = 0;
    socklen_t len = sizeof(err);
    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
        err = errno;
    if (err) {
        conn_failed(c, strerror(err));
        return;
    }
    if (!p->ssl_ctx) {
        send_connect(c);
        return;
    }
    c->ssl = tls_client_session(p->ssl_ctx, c->fd, p->cfg.host);
    if (!c->ssl) {
        conn_failed(c, "cannot start TLS");
        return;
    }
    c->state = C_TLS;
    tls_step(c);
}

static void try_connect(struct conn *c)
{
    struct mqttpool *p = c->pool;
    char err[200];
    if ((!p->naddr || (p->resolve_again && p->now_ms - p->resolved_ms >= RESOLVE_EVERY_MS)) &&
        resolve(p, err, sizeof(err)) != 0 && !p->naddr) {
        p->st.errors++;
        p->failed_pending++;
        set_reason(p, err);
        schedule_retry(c);
        return;
    }
    c->addr_i = (uint8_t)p->addr_next;
    const struct sockaddr_storage *to = &p->addr[c->addr_i];
    int fd = socket(to->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        p->st.errors++;
        p->failed_pending++;
        set_reason(p, strerror(errno));
        schedule_retry(c);
        return;
    }
    c->fd = fd;
    c->state = C_TCP;
    p->connecting++;
    c->retry_ms = p->now_ms + CONNECT_TIMEOUT_MS;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)); /* the pool batches its writes itself */
    if (p->cfg.n_source_ips) {
        uint32_t k = c->index % (uint32_t)p->cfg.n_source_ips;
#ifdef IP_BIND_ADDRESS_NO_PORT
        /* The port is chosen at connect(), per destination: more than one
         * address's worth of ephemeral ports. */
        setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
#endif
        if (bind(fd, (struct sockaddr *)&p->src[k], p->src_len[k]) != 0) {
            conn_failed(c, strerror(errno));
            return;
        }
    }
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.ptr = c};
    if (epoll_ctl(p->ep, EPOLL_CTL_ADD, fd, &ev) != 0) {
        log_error("cannot watch MQTT connection %u: %s", c->index, strerror(errno));
        close(fd);
        c->fd = -1;
        conn_failed(c, strerror(errno));
        return;
    }
    c->want_out = 1;
    if (connect(fd, (const struct sockaddr *)to, p->addr_len[c->addr_i]) != 0 && errno != EINPROGRESS)
        conn_failed(c, strerror(errno));
}

/* --- reading ----------------------------------------------------------------- */

/* Returns 0, or -1 if the connection is gone. */
static int on_packet(struct conn *c, const struct mqw_packet *pk)
{
    struct mqttpool *p = c->pool;
    char why[80];
    switch (pk->type) {
    case MQW_CONNACK:
        if (c->state != C_CONNECTING)
            break;
        if (pk->return_code != 0) {
            p->st.errors++;
            p->refused_pending++;
            set_reason(p, mqw_connack_string(pk->return_code));
            close_socket(c);
            return -1;
        }
        on_up(c);
        return c->fd >= 0 ? 0 : -1;
    case MQW_PUBACK:
        if (c->state != C_UP)
            break;
        on_puback(c, pk->mid);
        return 0;
    case MQW_PINGRESP:
        c->ping_ms = 0;
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
        ssize_t r;
        if (c->ssl) {
            ERR_clear_error();
            int n = SSL_read(c->ssl, buf + have, (int)(READ_SIZE - have));
            if (n <= 0) {
                int e = SSL_get_error(c->ssl, n);
                if (e == SSL_ERROR_WANT_READ) {
                    c->tls_wait &= (uint8_t)~TLS_READ_WANTS_WRITE;
                    return 0;
                }
                if (e == SSL_ERROR_WANT_WRITE) {
                    c->tls_wait |= TLS_READ_WANTS_WRITE;
                    set_want_out(c, 1);
                    return 0;
                }
                conn_lost(c, e == SSL_ERROR_ZERO_RETURN ? "connection closed by the broker"
                             : e == SSL_ERROR_SYSCALL && errno ? strerror(errno) : "TLS read failed");
                return -1;
            }
            r = n;
            c->tls_wait &= (uint8_t)~TLS_READ_WANTS_WRITE;
        } else {
            r = read(c->fd, buf + have, READ_SIZE - have);
            if (r < 0 && errno == EINTR)
                continue;
            if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
                return 0;
            if (r <= 0) {
                conn_lost(c, r == 0 ? "connection closed by the broker" : strerror(errno));
                return -1;
            }
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
        if (!c->ssl && (size_t)r < READ_SIZE - have)
            return 0; /* the socket is empty */
    }
}

static void on_event(struct conn *c, uint32_t events)
{
    switch (c->state) {
    case C_TCP:
        tcp_done(c);
        return;
    case C_TLS:
        tls_step(c);
        return;
    default:
        break;
    }
    if (((events & (EPOLLIN | EPOLLERR | EPOLLHUP)) || ((events & EPOLLOUT) && (c->tls_wait & TLS_READ_WANTS_WRITE))) &&
        on_readable(c) != 0)
        return;
    if (c->fd >= 0 && (c->out_off < c->out_len || c->want_out))
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
    int64_t now = mono_ms();
    for (uint32_t i = 0; p->c && i < n; i++) { /* before any failure: mqp_free reads them */
        struct conn *c = &p->c[i];
        c->pool = p;
        c->index = i;
        c->fd = -1;
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
                snprintf(err, err_size, "%u connections need %llu file descriptors, the limit is %llu (ulimit -n)",
                         n, (unsigned long long)need, (unsigned long long)rl.rlim_cur);
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
        if (c->state != C_UP || out_reserve(c, sz) != 0)
            goto refused;
        size_t n = mqw_encode_publish(c->out + c->out_len, sz, topic, tl, payload, pl, 0, 0, 0);
        if (!n)
            goto refused;
        c->out_len += (uint32_t)n;
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
        if (c->state == C_UP) {
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
    return p->c[c].state == C_UP;
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
        if (c->fd >= 0 && c->state >= C_CONNECTING)
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
        if (c->fd < 0)
            continue;
        if (c->state != C_UP) {
            if (p->now_ms >= c->retry_ms)
                conn_failed(c, c->state == C_CONNECTING ? "no CONNACK within 30 s" : "connect timed out");
            continue;
        }
        if (ka <= 0 || p->closing) /* nothing may follow DISCONNECT */
            continue;
        if (c->ping_ms && p->now_ms - c->ping_ms >= ka) {
            conn_lost(c, "no answer to PINGREQ (keepalive)");
        } else if (!c->ping_ms && p->now_ms - c->last_out_ms >= ka * 3 / 4) {
            /* at three quarters: this check runs about once a second */
            uint8_t ping[2];
            size_t n = mqw_encode_empty(ping, sizeof(ping), MQW_PINGREQ);
            if (out_append(c, ping, n) != 0)
                conn_lost(c, "out of memory");
            else
                c->ping_ms = p->now_ms;
        }
    }
}

int mqp_poll(struct mqttpool *p, int timeout_ms)
{
    p->now_ms = mono_ms();
    flush_dirty(p);
    struct epoll_event ev[MAX_EVENTS];
    int n = epoll_wait(p->ep, ev, MAX_EVENTS, timeout_ms);
    if (n < 0) {
        if (errno == EINTR)
            return 0;
        log_error("epoll_wait: %s", strerror(errno));
        return -1;
    }
    p->now_ms = mono_ms();
    for (int k = 0; k < n; k++) {
        struct conn *c = ev[k].data.ptr;
        if (c->fd >= 0)
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
            if (c->state == C_DOWN && c->fd < 0 && c->retry_ms <= now) {
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
            if (c->state != C_UP) { /* still connecting: nothing to announce */
                if (c->fd >= 0)
                    close_socket(c);
                continue;
            }
            if (queue_presence(c, p->cfg.clear_presence ? "" : "offline") != 0 || out_append(c, disc, dn) != 0)
                conn_lost(c, "out of memory");
        }
        int64_t until = mono_ms() + wait_ms;
        while (mono_ms() < until) {
            int open = 0;
            for (uint32_t i = 0; i < p->n && !open; i++)
                open = p->c[i].state == C_UP;
            if (!open)
                break;
            mqp_poll(p, 50);
        }
        for (uint32_t i = 0; i < p->n; i++) {
            struct conn *c = &p->c[i];
            if (c->fd >= 0)
                close_socket(c);
            for (uint32_t k = 0; k < c->npend; k++)
                free(pend_at(c, k)->pkt);
            free(c->pend);
            free(c->out);
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
