/*
 * server.c - the MQTT side of "fleetsync ingest" (see ingest.h).
 *
 * One thread, one epoll loop: the listening socket (level-triggered), every
 * connection (edge-triggered: a readable connection goes on the ready list
 * and is read until EAGAIN, or until something stops it), librdkafka's
 * wake-up pipe and the signal descriptor.
 *
 * The protocol of each connection is session.c's (states, PUBACK order,
 * refusals); this file gives it bytes and writes out its answers.  A closed
 * connection has no socket; its memory stays until every record it produced
 * has its delivery report (refs == 0), since the reports point into its
 * ring, and until the ready list no longer holds it.
 *
 * TLS (--tls): a second listening socket whose connections carry an SSL
 * object (OpenSSL, non-blocking over the same descriptor and loop).  A
 * connection is "handshaking" until SSL_do_handshake completes; until then
 * nothing reaches its session.  SSL_read / SSL_write may want the other
 * direction (WANT_WRITE while reading, WANT_READ while writing): every
 * event of a TLS connection both flushes and reads it again, so either
 * want is met by the next edge.  OpenSSL keeps decrypted bytes of its own,
 * so a short SSL_read does not mean the socket is empty: only WANT_READ
 * clears "readable".  A failed handshake (plain-text bytes, an unknown CA on
 * the client's side, a client gone) ends the socket, counted
 * tls_handshake; one not done within --connect-timeout, counted
 * tls_handshake_timeout.
 *
 * Backpressure: a session whose ring is full stops reading its socket until
 * a slot frees; a full librdkafka queue stops reading every socket (the
 * packet that did not fit stays in its read buffer and is offered again once
 * Kafka drained).  Nothing is buffered beyond one packet per connection: TCP
 * pushes back.
 */
#include "ingest/ingest.h"
#include "ingest/session.h"

#include "core/clock.h"
#include "core/log.h"
#include "core/mqttwire.h"
#include "core/route.h"
#include "core/sig.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

/* A CONNECT or a reading fits.  The buffer doubles (up to max_packet + 8)
 * while a packet does not fit or a read fills it: a gateway with many
 * readings waiting is read in one recv() per wake-up, not one per 512 bytes,
 * and a truck with one reading a minute keeps 512 bytes. */
#define RBUF_START 512
#define HASH_BUCKETS 65536
/* Within a pass, the clock is read again every MIDPASS_CONNS connections
 * read, and delivery reports are taken when MIDPASS_POLL_MS passed. */
#define MIDPASS_CONNS 32
#define MIDPASS_POLL_MS 2
/* A connection's acknowledged records wait, up to PUBACK_HOLD_MS, while
 * others of its records are still in Kafka's hands: a gateway's readings of
 * one write go to several partitions, whose batches librdkafka sends (and
 * reports) in different produce requests, and their PUBACKs then leave in
 * one send() instead of one per request. */
#define PUBACK_HOLD_MS 5

struct conn {
    struct ises ses; /* first: a delivery report's slot leads back to its conn */
    int fd;          /* -1 once closed */
    struct ingest *g;
    SSL *ssl;        /* a connection of the TLS listener; NULL: plain */
    int handshaking; /* TLS: the handshake is not done yet */
    int tls_failed;  /* TLS: a fatal error (no close_notify may follow) */
    uint8_t *rbuf;
    size_t rlen, rcap;
    int readable, on_ready;
    int64_t last_rx_ms, opened_ms;
    struct conn *prev, *next; /* all open connections, or zombies */
    struct conn *hnext;       /* account hash chain, from a login on */
    int hashed;
    uint32_t hbucket;
    struct conn *rnext; /* ready list */
    struct conn *wnext; /* write list: PUBACKs released by delivery reports */
    int on_write;
    int64_t held_ms; /* when it went on the write list (the loop's clock) */
};

_Static_assert(offsetof(struct conn, ses) == 0, "a delivery report finds its conn from its session");

struct ing_server {
    int lfd, ep;
    int tls_lfd;      /* --tls: the TLS listener; -1: none */
    SSL_CTX *ssl_ctx; /* its certificate and key */
    struct conn *all, *zombies, *ready, *writes;
    struct conn *hash[HASH_BUCKETS];
    size_t n;
};

static uint32_t hash_name(const char *s)
{
    uint32_t h = 2166136261u;
    while (*s)
        h = (h ^ (uint8_t)*s++) * 16777619u;
    return h % HASH_BUCKETS;
}

static void hash_del(struct ing_server *s, struct conn *c)
{
    if (!c->hashed)
        return;
    for (struct conn **p = &s->hash[c->hbucket]; *p; p = &(*p)->hnext)
        if (*p == c) {
            *p = c->hnext;
            break;
        }
    c->hashed = 0;
}

static void list_del(struct conn **head, struct conn *c)
{
    if (c->prev)
        c->prev->next = c->next;
    else
        *head = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->prev = c->next = NULL;
}

static void list_add(struct conn **head, struct conn *c)
{
    c->prev = NULL;
    c->next = *head;
    if (*head)
        (*head)->prev = c;
    *head = c;
}

static void conn_free(struct conn *c)
{
    ises_release(&c->ses);
    free(c->rbuf);
    free(c);
}

static void make_ready(struct ing_server *s, struct conn *c)
{
    if (c->on_ready || c->fd < 0)
        return;
    c->on_ready = 1;
    c->rnext = s->ready;
    s->ready = c;
}

/* A connection with acknowledged records whose PUBACKs leave once this
 * pass's delivery reports are all in (and its other records' reports, up to
 * PUBACK_HOLD_MS). */
static void make_writable(struct ing_server *s, struct conn *c)
{
    if (c->on_write)
        return;
    c->on_write = 1;
    c->held_ms = c->g->mono_ms;
    c->wnext = s->writes;
    s->writes = c;
}

/* Sends up to len bytes: the count sent, or -1 with errno (EAGAIN: the
 * socket, or TLS, wants an event first). */
static ssize_t conn_send(struct conn *c, const void *buf, size_t len)
{
    if (!c->ssl)
        return send(c->fd, buf, len, MSG_NOSIGNAL);
    ERR_clear_error();
    int k = SSL_write(c->ssl, buf, len > INT_MAX ? INT_MAX : (int)len);
    if (k > 0)
        return k;
    int e = SSL_get_error(c->ssl, k);
    if (e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ) {
        errno = EAGAIN;
        return -1;
    }
    c->tls_failed = 1;
    errno = EPIPE;
    return -1;
}

/* Writes what the session has for the client, as much as the socket takes
 * (EPOLLOUT tells when it takes more). */
static void wflush(struct conn *c)
{
    struct ises *s = &c->ses;
    size_t off = 0;
    if (c->handshaking)
        return;
    while (off < s->out_len && c->fd >= 0) {
        ssize_t k = conn_send(c, s->out + off, s->out_len - off);
        if (k > 0) {
            off += (size_t)k;
            continue;
        }
        if (k < 0 && errno == EINTR)
            continue;
        break; /* EAGAIN: EPOLLOUT tells; an error: the next read sees it */
    }
    if (off) {
        memmove(s->out, s->out + off, s->out_len - off);
        s->out_len -= off;
    }
}

/* Produces one message as the bridge would have: 0, 1 when librdkafka's
 * queue is full (try again later), -1 on another error (counted). */
static int produce(void *ctx, const char *topic, size_t topic_len, const void *payload, size_t payload_len,
                   struct ises_pend *slot)
{
    struct ingest *g = ctx;
    static struct route r; /* 8 KiB of buffers: not on the stack */
    char t[ROUTE_MAX_TOPIC + 1];
    size_t tl = topic_len < ROUTE_MAX_TOPIC ? topic_len : ROUTE_MAX_TOPIC;
    memcpy(t, topic, tl);
    t[tl] = '\0';
    route_message(t, payload, payload_len, g->wall_ms, &r);
    rd_kafka_resp_err_t e = route_produce_rkt(g->rk, g->rkts, &r, t, g->wall_ms, slot);
    if (e == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
        if (!g->kafka_full) {
            g->kafka_full = 1;
            g->paused_since_ms = fs_mono_ms();
            log_warn("Kafka's producer queue is full: no client is read until it drains");
        }
        return 1;
    }
    if (e) {
        g->errors++;
        metric_add(g->m_delivery_errors, 1);
        log_error("cannot produce to %s: %s", g->topics[r.dest], rd_kafka_err2str(e));
        return -1;
    }
    g->readings++; /* the counter: ing_counts_publish() */
    if (r.dest == ROUTE_DLQ) {
        g->dlq++;
        for (int i = 1; i < TM_REASON_COUNT; i++)
            if (g->m_dlq[i] && strcmp(tm_reason_name((enum tm_reason)i), r.error) == 0)
                metric_add(g->m_dlq[i], 1);
    }
    return 0;
}

/* The socket of an ended session: flushed and closed; the connection waits
 * among the zombies for its last delivery reports. */
static void conn_drop(struct ingest *g, struct conn *c)
{
    struct ing_server *s = g->srv;
    if (c->fd < 0)
        return;
    wflush(c);
    if (c->ses.will_sent)
        metric_add(g->m_wills, 1);
    hash_del(s, c);
    epoll_ctl(s->ep, EPOLL_CTL_DEL, c->fd, NULL);
    if (c->ssl) {
        /* close_notify, once, without waiting for the client's */
        ERR_clear_error();
        if (!c->handshaking && !c->tls_failed)
            SSL_shutdown(c->ssl);
        SSL_free(c->ssl);
        c->ssl = NULL;
        ERR_clear_error();
    }
    close(c->fd);
    c->fd = -1;
    list_del(&s->all, c);
    s->n--;
    metric_set(g->m_connections, (double)s->n);
    list_add(&s->zombies, c); /* freed by sweep() once no report or list points to it */
}

/* Ends a connection from outside its protocol (EOF, timers, takeover). */
static void conn_close(struct ingest *g, struct conn *c, int send_will, uint8_t rc)
{
    ises_end(&c->ses, send_will, rc);
    conn_drop(g, c);
}

/* Frees the closed connections that nothing points to any more. */
static void sweep(struct ing_server *s)
{
    struct conn *next;
    for (struct conn *c = s->zombies; c; c = next) {
        next = c->next;
        if (c->ses.refs == 0 && !c->on_ready && !c->on_write) {
            list_del(&s->zombies, c);
            conn_free(c);
        }
    }
}

void ing_server_delivered(struct ingest *g, void *opaque, rd_kafka_resp_err_t err, int64_t ts_ms)
{
    (void)ts_ms;
    if (!err) {
        g->acked++;
    } else {
        g->errors++;
        metric_add(g->m_delivery_errors, 1);
        log_error("delivery failed: %s", rd_kafka_err2str(err));
    }
    if (!opaque)
        return;
    struct ises_pend *p = opaque;
    struct conn *c = (struct conn *)p->s; /* the session is the connection's first member */
    ises_delivered(p, !err);              /* deferred (ses.defer): flush_writes releases */
    if (c->fd < 0)
        return;
    /* Released and written after the poll: the reports of one produce
     * request come together, and a connection's PUBACKs among them leave in
     * one send() (with those of its records still in flight, if they come
     * within PUBACK_HOLD_MS: flush_writes). */
    make_writable(g->srv, c);
}

/* ---- the session's view of the server ---------------------------------- */

static uint8_t login(void *ctx, struct ises *ses, const struct mqw_connect_in *m, char *account)
{
    struct conn *c = (struct conn *)ses;
    struct ingest *g = ctx;
    struct ing_server *s = g->srv;
    if (m->user && m->user_len <= MQA_ID_MAX) {
        memcpy(account, m->user, m->user_len);
        account[m->user_len] = '\0';
    }
    if (g->store) {
        char err[256];
        if (mqa_store_refresh(g->store, err, sizeof(err)) != 0)
            log_warn("keeping the accounts loaded before: %s", err);
        if (!m->user || !mqa_valid_id(account) || !m->pass ||
            !mqa_store_login(g->store, account, m->pass, m->pass_len)) {
            log_debug("login refused for '%s'", account);
            return MQW_RC_BAD_LOGIN;
        }
    } else {
        /* No accounts: the client id names the connection. */
        size_t n = m->client_id_len <= MQA_ID_MAX ? m->client_id_len : MQA_ID_MAX;
        memcpy(account, m->client_id, n);
        account[n] = '\0';
    }
    /* The account is the client id (Mosquitto's use_username_as_clientid):
     * a second connection of it takes over from the first (3.1.4-2). */
    for (struct conn *o = s->hash[hash_name(account)]; o; o = o->hnext)
        if (o != c && strcmp(o->ses.account, account) == 0) {
            log_info("%s connected again: closing its previous connection", account);
            conn_close(g, o, 1, MQW_RC_TAKEN_OVER);
            break;
        }
    c->hbucket = hash_name(account);
    c->hnext = s->hash[c->hbucket];
    s->hash[c->hbucket] = c;
    c->hashed = 1;
    metric_add(g->m_connects, 1);
    return 0;
}

static int may_publish(void *ctx, const char *account, const char *topic, size_t topic_len)
{
    struct ingest *g = ctx;
    return !g->store || mqa_store_may_publish(g->store, account, topic, topic_len);
}

static void refused(void *ctx, enum ing_refusal why)
{
    ing_refused(ctx, why);
}

/* Both take the loop's clock, read after epoll_wait, before the delivery
 * reports and every MIDPASS_CONNS connections of a pass, not once per
 * message; the latency goes to the pass's tally (ing_counts_publish). */
static void acked(void *ctx, int64_t t_ms)
{
    struct ingest *g = ctx;
    metric_tally_observe(&g->latency, (double)(g->mono_ms - t_ms) / 1000.0);
}

static int64_t now_ms(void *ctx)
{
    struct ingest *g = ctx;
    return g->mono_ms;
}

static const struct ises_ops ops = {login, may_publish, produce, refused, acked, now_ms};

/* Receives up to len bytes: the count, 0 at the end of the stream, or -1
 * with errno (EAGAIN: nothing now). */
static ssize_t conn_recv(struct conn *c, void *buf, size_t len)
{
    if (!c->ssl)
        return recv(c->fd, buf, len, 0);
    ERR_clear_error();
    int k = SSL_read(c->ssl, buf, len > INT_MAX ? INT_MAX : (int)len);
    if (k > 0)
        return k;
    int e = SSL_get_error(c->ssl, k);
    if (e == SSL_ERROR_ZERO_RETURN)
        return 0;
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
        errno = EAGAIN;
        return -1;
    }
    c->tls_failed = 1;
    errno = ECONNRESET;
    return -1;
}

/* Drives a TLS connection's handshake.  Returns 1 once it is done, 0 while
 * it waits for the socket, -1 when it failed (the socket closed, counted). */
static int tls_handshake(struct ingest *g, struct conn *c)
{
    ERR_clear_error();
    int r = SSL_do_handshake(c->ssl);
    if (r == 1) {
        c->handshaking = 0;
        return 1;
    }
    int e = SSL_get_error(c->ssl, r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
        c->readable = 0;
        return 0;
    }
    char why[256] = "the client closed the connection";
    unsigned long code = ERR_peek_error();
    if (code)
        ERR_error_string_n(code, why, sizeof(why));
    log_debug("TLS handshake failed: %s", why);
    ing_refused(g, REF_TLS_HANDSHAKE);
    conn_close(g, c, 0, 0);
    return -1;
}

/* Reads and hands to the session what the socket holds, while nothing
 * stops it. */
static void conn_read(struct ingest *g, struct conn *c)
{
    if (c->handshaking && tls_handshake(g, c) <= 0)
        return;
    int filled = 0; /* the last read took all the room there was: more may wait */
    while (c->fd >= 0 && !g->kafka_full && !c->ses.blocked) {
        size_t used = 0;
        enum ises_status st = ises_input(&c->ses, c->rbuf, c->rlen, &used);
        memmove(c->rbuf, c->rbuf + used, c->rlen - used);
        c->rlen -= used;
        if (st == ISES_ENDED) {
            conn_drop(g, c);
            return;
        }
        wflush(c);
        if (st == ISES_STALLED || !c->readable)
            return;
        size_t max_cap = c->ses.max_packet + 8;
        if (c->rlen == c->rcap || (filled && c->rcap < max_cap)) {
            size_t cap = c->rcap * 2 < max_cap ? c->rcap * 2 : max_cap;
            uint8_t *b = cap > c->rcap ? realloc(c->rbuf, cap) : NULL;
            if (b) {
                c->rbuf = b;
                c->rcap = cap;
            } else if (c->rlen == c->rcap) { /* a packet that cannot fit */
                conn_close(g, c, 1, MQW_RC_PACKET_TOO_LARGE);
                return;
            }
        }
        ssize_t k = conn_recv(c, c->rbuf + c->rlen, c->rcap - c->rlen);
        filled = k > 0 && (size_t)k == c->rcap - c->rlen;
        if (k > 0) {
            /* Less than asked for: the socket is empty now (edge-triggered:
             * what arrives later raises a new event), no recv for EAGAIN.
             * Not so with TLS, which may hold decrypted bytes of its own. */
            if ((size_t)k < c->rcap - c->rlen && !c->ssl)
                c->readable = 0;
            c->rlen += (size_t)k;
            c->last_rx_ms = g->mono_ms;
            continue;
        }
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            c->readable = 0;
            continue; /* the loop's top takes what the buffer holds, then returns */
        }
        conn_close(g, c, 1, 0); /* EOF or error without DISCONNECT: the will */
        return;
    }
}

/* ---- the loop ----------------------------------------------------------- */

/* Accepts what the listener lfd has; tls: its connections speak TLS. */
static void accept_all(struct ingest *g, int lfd, int tls)
{
    struct ing_server *s = g->srv;
    for (;;) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return;
        if (s->n >= (size_t)g->o->max_connections) {
            ing_refused(g, REF_TOO_MANY);
            close(fd);
            continue;
        }
        struct conn *c = calloc(1, sizeof(*c));
        if (c)
            c->rbuf = malloc(RBUF_START);
        if (c && c->rbuf && tls) {
            c->ssl = SSL_new(s->ssl_ctx);
            if (c->ssl && SSL_set_fd(c->ssl, fd) == 1) {
                SSL_set_accept_state(c->ssl);
                c->handshaking = 1;
            } else {
                SSL_free(c->ssl);
                c->ssl = NULL;
                ERR_clear_error();
                free(c->rbuf);
                c->rbuf = NULL;
            }
        }
        if (!c || !c->rbuf) {
            if (c)
                free(c->rbuf);
            free(c);
            close(fd);
            continue;
        }
        /* TCP keep-alive finds the half-open sockets of clients whose MQTT
         * keep-alive is 0 (dead after 60 s idle + 3 probes 10 s apart). */
        int one = 1, idle = 60, intvl = 10, cnt = 3, sndbuf = g->o->max_unread / 2;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
        setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle));
        setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof(intvl));
        setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof(cnt));
        /* A fixed send buffer (the kernel doubles it: max_unread bytes),
         * not one autotuned up to net.ipv4.tcp_wmem's 4 MiB: a client that
         * does not read its PUBACKs fills it and then the session's out
         * (max_unread more), and is closed as a slow reader. */
        setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
        ises_init(&c->ses, &ops, g, (size_t)g->o->max_packet_size, (uint16_t)g->o->receive_max);
        c->ses.out_max = (size_t)g->o->max_unread;
        c->ses.defer = 1; /* flush_writes releases what the reports acknowledged */
        c->g = g;
        c->fd = fd;
        c->rcap = RBUF_START;
        c->opened_ms = c->last_rx_ms = fs_mono_ms();
        struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET, .data.ptr = c};
        if (epoll_ctl(s->ep, EPOLL_CTL_ADD, fd, &ev) != 0) {
            SSL_free(c->ssl);
            conn_free(c);
            close(fd);
            continue;
        }
        list_add(&s->all, c);
        s->n++;
        metric_set(g->m_connections, (double)s->n);
    }
}

/* CONNECT timeout and keep-alive (1.5 times the client's, 3.1.2.10). */
static void check_timers(struct ingest *g)
{
    struct ing_server *s = g->srv;
    int64_t now = fs_mono_ms();
    struct conn *next;
    for (struct conn *c = s->all; c; c = next) {
        next = c->next;
        if (c->ses.state == ISES_WAIT_CONNECT && now - c->opened_ms > g->o->connect_timeout_s * 1000LL) {
            ing_refused(g, c->handshaking ? REF_TLS_TIMEOUT : REF_CONNECT_TIMEOUT);
            conn_close(g, c, 0, 0);
        } else if (c->ses.state == ISES_OPEN && c->ses.keepalive_s &&
                   now - c->last_rx_ms > c->ses.keepalive_s * 1500LL && !c->ses.blocked && !g->kafka_full) {
            ing_refused(g, REF_KEEPALIVE);
            conn_close(g, c, 1, MQW_RC_KEEPALIVE_TIMEOUT);
        }
    }
}

/* A non-blocking listening socket on host:port (shared with the other
 * workers when reuseport).  Returns it, or -1 + err. */
static int listen_on(const char *host, int port, int reuseport, char *err, size_t err_size)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE}, *ai = NULL;
    char ps[16];
    snprintf(ps, sizeof(ps), "%d", port);
    int e = getaddrinfo(host, ps, &hints, &ai);
    if (e) {
        snprintf(err, err_size, "cannot resolve %s: %s", host, gai_strerror(e));
        return -1;
    }
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    if (fd >= 0)
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    /* Workers share the port; the kernel spreads new connections over
     * their sockets. */
    if (fd >= 0 && reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0) {
        snprintf(err, err_size, "SO_REUSEPORT: %s", strerror(errno));
        goto fail;
    }
    if (fd < 0 || bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, 4096) != 0) {
        snprintf(err, err_size, "cannot listen on %s:%d: %s", host, port, strerror(errno));
        goto fail;
    }
    freeaddrinfo(ai);
    return fd;
fail:
    if (fd >= 0)
        close(fd);
    freeaddrinfo(ai);
    return -1;
}

/* The TLS listener's context: TLS 1.2 or later, the certificate chain and
 * key of --tls-cert / --tls-key.  Returns it, or NULL + err. */
static SSL_CTX *tls_context(const struct ing_opts *o, char *err, size_t err_size)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    const char *step = "SSL_CTX_new";
    if (!ctx)
        goto fail;
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    /* Partial writes: wflush sends what fits and keeps the rest in the
     * session's buffer, which may move before the retry.  Idle connections
     * give their TLS buffers back. */
    SSL_CTX_set_mode(ctx,
                     SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION);
    step = o->tls_cert;
    if (SSL_CTX_use_certificate_chain_file(ctx, o->tls_cert) != 1)
        goto fail;
    step = o->tls_key;
    if (SSL_CTX_use_PrivateKey_file(ctx, o->tls_key, SSL_FILETYPE_PEM) != 1 || SSL_CTX_check_private_key(ctx) != 1)
        goto fail;
    return ctx;
fail:;
    char why[256] = "out of memory";
    unsigned long code = ERR_get_error();
    if (code)
        ERR_error_string_n(code, why, sizeof(why));
    ERR_clear_error();
    snprintf(err, err_size, "TLS: %s: %s", step, why);
    SSL_CTX_free(ctx);
    return NULL;
}

int ing_server_open(struct ingest *g, char *err, size_t err_size)
{
    struct ing_server *s = calloc(1, sizeof(*s));
    if (!s) {
        snprintf(err, err_size, "out of memory");
        return -1;
    }
    g->srv = s;
    s->lfd = s->ep = s->tls_lfd = -1;
    if (g->o->tls_port && !(s->ssl_ctx = tls_context(g->o, err, err_size)))
        return -1;
    if ((s->lfd = listen_on(g->o->host, g->o->port, g->o->reuseport, err, err_size)) < 0)
        return -1;
    if (g->o->tls_port && (s->tls_lfd = listen_on(g->o->tls_host, g->o->tls_port, g->o->reuseport, err, err_size)) < 0)
        return -1;
    s->ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
    struct epoll_event wk = {.events = EPOLLIN, .data.ptr = &s->lfd};
    struct epoll_event sg = {.events = EPOLLIN, .data.ptr = &s->ep};
    struct epoll_event tl = {.events = EPOLLIN, .data.ptr = &s->tls_lfd};
    if (s->ep < 0 || epoll_ctl(s->ep, EPOLL_CTL_ADD, s->lfd, &ev) != 0 ||
        epoll_ctl(s->ep, EPOLL_CTL_ADD, g->wake[0], &wk) != 0 || epoll_ctl(s->ep, EPOLL_CTL_ADD, sig_fd(), &sg) != 0 ||
        (s->tls_lfd >= 0 && epoll_ctl(s->ep, EPOLL_CTL_ADD, s->tls_lfd, &tl) != 0)) {
        snprintf(err, err_size, "epoll: %s", strerror(errno));
        return -1;
    }
    return 0;
}

static void drain_fd(int fd)
{
    char buf[256];
    while (read(fd, buf, sizeof(buf)) > 0)
        ;
}

static void status_line(struct ingest *g, uint64_t *last_readings, uint64_t *last_acked, double dt_s)
{
    fprintf(stderr, "\r\033[Kclients %zu | in %6.0f/s | acked %6.0f/s, %llu total | DLQ %llu | queue %d%s", g->srv->n,
            (double)(g->readings - *last_readings) / dt_s, (double)(g->acked - *last_acked) / dt_s,
            (unsigned long long)g->acked, (unsigned long long)g->dlq, rd_kafka_outq_len(g->rk),
            g->kafka_full ? " (full: paused)" : "");
    *last_readings = g->readings;
    *last_acked = g->acked;
}

/* Releases and writes the PUBACKs of the records Kafka acknowledged, one
 * send() per connection: now if none of its records is still waiting for
 * Kafka (or all), or once they waited PUBACK_HOLD_MS; until then the
 * connection stays on the list. */
static void flush_writes(struct ingest *g, int all)
{
    struct ing_server *s = g->srv;
    struct conn *list = s->writes;
    s->writes = NULL;
    while (list) {
        struct conn *c = list;
        list = c->wnext;
        if (!all && c->fd >= 0 && c->ses.refs && g->mono_ms - c->held_ms < PUBACK_HOLD_MS) {
            c->wnext = s->writes;
            s->writes = c;
            continue;
        }
        c->on_write = 0;
        if (c->fd < 0)
            continue;
        int unblocked = ises_release_done(&c->ses);
        if (c->ses.state == ISES_CLOSED) { /* a record Kafka did not take */
            conn_drop(g, c);
            continue;
        }
        wflush(c);
        if (unblocked)
            make_ready(s, c);
    }
}

/* The epoll_wait timeout while nothing is ready: until the first held
 * PUBACKs are due, else 200 ms. */
static int idle_timeout(struct ingest *g)
{
    int64_t due = INT64_MAX;
    for (struct conn *c = g->srv->writes; c; c = c->wnext)
        if (c->held_ms + PUBACK_HOLD_MS < due)
            due = c->held_ms + PUBACK_HOLD_MS;
    if (due == INT64_MAX)
        return 200;
    int64_t left = due - fs_mono_ms();
    return left < 0 ? 0 : left > 200 ? 200 : (int)left + 1;
}

void ing_counts_publish(struct ingest *g)
{
    metric_add(g->m_readings, g->readings - g->readings_shown);
    metric_add(g->m_acked, g->acked - g->acked_shown);
    g->readings_shown = g->readings;
    g->acked_shown = g->acked;
    metric_tally_flush(&g->latency);
}

int ing_server_run(struct ingest *g)
{
    struct ing_server *s = g->srv;
    struct epoll_event evs[256];
    int64_t last_timers = fs_mono_ms(), last_status = last_timers;
    uint64_t last_readings = 0, last_acked = 0;
    int tty = isatty(STDERR_FILENO) && !g->o->quiet;
    while (!sig_stopping()) {
        int timeout = g->kafka_full ? 5 : s->ready ? 0 : idle_timeout(g);
        int n = epoll_wait(s->ep, evs, 256, timeout);
        g->wall_ms = fs_wall_ms();
        g->mono_ms = fs_mono_ms();
        for (int i = 0; i < n; i++) {
            void *p = evs[i].data.ptr;
            if (!p) {
                accept_all(g, s->lfd, 0);
            } else if (p == &s->tls_lfd) {
                accept_all(g, s->tls_lfd, 1);
            } else if (p == &s->lfd) {
                drain_fd(g->wake[0]);
            } else if (p == &s->ep) {
                drain_fd(sig_fd());
            } else {
                struct conn *c = p;
                if (evs[i].events & EPOLLOUT)
                    wflush(c);
                /* TLS: a read may have waited for the socket to take bytes
                 * (a handshake's, or a write inside SSL_read). */
                if (evs[i].events & (EPOLLIN | EPOLLRDHUP | EPOLLERR | EPOLLHUP) || (c->ssl && c->fd >= 0)) {
                    c->readable = 1;
                    make_ready(s, c);
                }
            }
        }
        g->mono_ms = fs_mono_ms();
        rd_kafka_poll(g->rk, 0);
        flush_writes(g, 0);
        if (g->kafka_full && rd_kafka_outq_len(g->rk) < 100000) {
            g->kafka_full = 0;
            g->paused_s += (double)(fs_mono_ms() - g->paused_since_ms) / 1000.0;
            metric_set(g->m_paused, g->paused_s);
            log_info("Kafka's producer queue drained: reading clients again");
        }
        /* The ready list: read each connection until it has nothing more or
         * something stops it; those stopped by Kafka stay on the list.  A
         * long pass (thousands of connections, or a busy machine) takes the
         * delivery reports that came meanwhile every few milliseconds, so a
         * PUBACK does not wait for the pass's end. */
        struct conn *list = s->ready;
        s->ready = NULL;
        int64_t polled_ms = g->mono_ms;
        unsigned nread = 0;
        while (list) {
            struct conn *c = list;
            list = c->rnext;
            c->on_ready = 0;
            if (c->fd < 0)
                continue;
            if (!g->kafka_full)
                conn_read(g, c);
            if (c->fd >= 0 && g->kafka_full)
                make_ready(s, c);
            if (++nread % MIDPASS_CONNS == 0) {
                g->mono_ms = fs_mono_ms();
                if (g->mono_ms - polled_ms >= MIDPASS_POLL_MS) {
                    polled_ms = g->mono_ms;
                    rd_kafka_poll(g->rk, 0);
                    flush_writes(g, 0);
                }
            }
        }
        sweep(s);
        ing_counts_publish(g);
        int64_t now = fs_mono_ms();
        if (now - last_timers >= 1000) {
            check_timers(g);
            last_timers = now;
        }
        if (tty && now - last_status >= 1000) {
            status_line(g, &last_readings, &last_acked, (double)(now - last_status) / 1000.0);
            last_status = now;
        }
    }
    if (tty)
        fputc('\n', stderr);
    return 0;
}

void ing_server_free(struct ingest *g)
{
    struct ing_server *s = g->srv;
    if (!s)
        return;
    flush_writes(g, 1); /* the PUBACKs of what the clean stop's flush acknowledged */
    while (s->all)
        conn_close(g, s->all, 0, MQW_RC_SHUTTING_DOWN); /* MQTT 5 clients hear why */
    while (s->zombies) {
        struct conn *c = s->zombies;
        list_del(&s->zombies, c);
        conn_free(c);
    }
    if (s->lfd >= 0)
        close(s->lfd);
    if (s->tls_lfd >= 0)
        close(s->tls_lfd);
    if (s->ep >= 0)
        close(s->ep);
    SSL_CTX_free(s->ssl_ctx);
    free(s);
    g->srv = NULL;
    ing_counts_publish(g); /* the wills just produced */
}
