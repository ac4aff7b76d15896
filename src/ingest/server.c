/*
 * server.c - the MQTT side of "fleetsync ingest" (see ingest.h).
 *
 * One thread, one epoll loop: the listening socket (level-triggered), every
 * connection (edge-triggered: a readable connection goes on the ready list
 * and is read until EAGAIN, or until something stops it), librdkafka's
 * wake-up pipe and the signal descriptor.
 *
 * A connection's states:
 *
 *   WAIT_CONNECT --CONNECT ok--> OPEN --DISCONNECT, EOF, error--> CLOSED
 *        |                        |                                ^
 *        +--refused, timeout------+---------------------------------+
 *
 * CLOSED has no socket; the connection's memory stays until every record it
 * produced has its delivery report (refs == 0), since the reports point
 * into its ring.  A will is produced when an OPEN connection ends without a
 * DISCONNECT (MQTT 5: or with reason 0x04).
 *
 * PUBACK order: each QoS 1 PUBLISH takes the next slot of the connection's
 * ring (receive_max slots) with its packet id; the delivery report of its
 * record marks it done; the done prefix of the ring is released as PUBACKs,
 * so they leave in the order the PUBLISHes came even though the records go
 * to many partitions.  A full ring stops reading that connection; a full
 * librdkafka queue stops reading every connection (the packet that did not
 * fit stays in its read buffer and is produced again once Kafka drained).
 * Nothing is buffered beyond one packet per connection: TCP pushes back.
 */
#include "ingest/ingest.h"

#include "core/clock.h"
#include "core/log.h"
#include "core/mqttwire.h"
#include "core/route.h"
#include "core/sig.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define WBUF_MAX (64 * 1024) /* answers not yet taken by a client: past this, a slow reader */
#define RBUF_START 1024
#define HASH_BUCKETS 65536

enum conn_state { WAIT_CONNECT, OPEN, CLOSED };

struct pend {
    struct conn *c;
    uint16_t mid;
    uint8_t done;
    uint8_t rc;     /* the PUBACK's reason code (MQTT 5) */
    uint8_t failed; /* Kafka did not take the record: no PUBACK, the connection ends */
    int64_t t_ms;   /* received (monotonic) */
};

struct conn {
    int fd;
    enum conn_state state;
    int version;
    char account[MQA_ID_MAX + 1];
    uint8_t *rbuf;
    size_t rlen, rcap;
    uint8_t *wbuf;
    size_t wlen, wcap;
    int readable, on_ready, blocked; /* blocked: ring full, read again when a slot frees */
    uint16_t keepalive_s;
    int64_t last_rx_ms, opened_ms;
    char *will_topic;
    uint8_t *will_payload;
    size_t will_len;
    struct pend *ring;
    uint32_t cap, head, tail; /* slots head - tail in use */
    uint32_t refs;            /* records produced whose delivery report has not come */
    struct conn *prev, *next; /* all connections, or zombies */
    struct conn *hnext;       /* account hash chain (OPEN only) */
    struct conn *rnext;       /* ready list */
};

struct ing_server {
    int lfd, ep;
    struct conn *all, *zombies, *ready;
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
    for (struct conn **p = &s->hash[hash_name(c->account)]; *p; p = &(*p)->hnext)
        if (*p == c) {
            *p = c->hnext;
            return;
        }
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
    free(c->rbuf);
    free(c->wbuf);
    free(c->ring);
    free(c->will_topic);
    free(c->will_payload);
    free(c);
}

static void make_ready(struct ing_server *s, struct conn *c)
{
    if (c->on_ready || c->state == CLOSED)
        return;
    c->on_ready = 1;
    c->rnext = s->ready;
    s->ready = c;
}

/* Appends to the write buffer; 0, or -1 when the client does not take its
 * answers (past WBUF_MAX). */
static int wput(struct conn *c, const uint8_t *p, size_t n)
{
    if (c->wlen + n > WBUF_MAX)
        return -1;
    if (c->wlen + n > c->wcap) {
        size_t cap = c->wcap ? c->wcap * 2 : 256;
        while (cap < c->wlen + n)
            cap *= 2;
        uint8_t *w = realloc(c->wbuf, cap);
        if (!w)
            return -1;
        c->wbuf = w;
        c->wcap = cap;
    }
    memcpy(c->wbuf + c->wlen, p, n);
    c->wlen += n;
    return 0;
}

static void wflush(struct conn *c)
{
    size_t off = 0;
    while (off < c->wlen && c->fd >= 0) {
        ssize_t k = send(c->fd, c->wbuf + off, c->wlen - off, MSG_NOSIGNAL);
        if (k > 0) {
            off += (size_t)k;
            continue;
        }
        if (k < 0 && errno == EINTR)
            continue;
        break; /* EAGAIN: EPOLLOUT tells; an error: the next read sees it */
    }
    memmove(c->wbuf, c->wbuf + off, c->wlen - off);
    c->wlen -= off;
}

/* Produces one message as the bridge would have: 0, 1 when librdkafka's
 * queue is full (try again later), -1 on another error (counted). */
static int produce(struct ingest *g, const char *topic, size_t topic_len, const void *payload, size_t payload_len,
                   void *opaque)
{
    static struct route r; /* 8 KiB of buffers: not on the stack */
    char t[ROUTE_MAX_TOPIC + 1];
    size_t tl = topic_len < ROUTE_MAX_TOPIC ? topic_len : ROUTE_MAX_TOPIC;
    memcpy(t, topic, tl);
    t[tl] = '\0';
    route_message(t, payload, payload_len, g->wall_ms, &r);
    rd_kafka_resp_err_t e = route_produce(g->rk, g->topics, &r, t, g->wall_ms, opaque);
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
    g->readings++;
    metric_add(g->m_readings, 1);
    if (r.dest == ROUTE_DLQ) {
        g->dlq++;
        for (int i = 1; i < TM_REASON_COUNT; i++)
            if (g->m_dlq[i] && strcmp(tm_reason_name((enum tm_reason)i), r.error) == 0)
                metric_add(g->m_dlq[i], 1);
    }
    return 0;
}

/* Ends a connection: its will (when it has one and did not say goodbye),
 * an MQTT 5 DISCONNECT with rc (0: none), the socket. */
static void conn_close(struct ingest *g, struct conn *c, int send_will, uint8_t rc)
{
    struct ing_server *s = g->srv;
    if (c->state == CLOSED)
        return;
    if (rc && c->version == 5 && c->state == OPEN) {
        uint8_t d[3];
        size_t n = mqw_encode_disconnect(d, sizeof(d), rc);
        if (wput(c, d, n) == 0)
            wflush(c);
    } else {
        wflush(c);
    }
    if (send_will && c->state == OPEN && c->will_topic) {
        if (produce(g, c->will_topic, strlen(c->will_topic), c->will_payload, c->will_len, NULL) == 0)
            metric_add(g->m_wills, 1);
        else
            log_warn("the will of %s could not be produced", c->account);
    }
    if (c->state == OPEN)
        hash_del(s, c);
    epoll_ctl(s->ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    c->fd = -1;
    c->state = CLOSED;
    list_del(&s->all, c);
    s->n--;
    metric_set(g->m_connections, (double)s->n);
    list_add(&s->zombies, c); /* freed by sweep() once no report or list points to it */
}

/* Frees the closed connections that nothing points to any more. */
static void sweep(struct ing_server *s)
{
    struct conn *next;
    for (struct conn *c = s->zombies; c; c = next) {
        next = c->next;
        if (c->refs == 0 && !c->on_ready) {
            list_del(&s->zombies, c);
            conn_free(c);
        }
    }
}

/* The done prefix of the ring leaves as PUBACKs, in order. */
static void release(struct ingest *g, struct conn *c)
{
    int freed = 0, failed = 0;
    while (c->tail != c->head && c->ring[c->tail % c->cap].done) {
        struct pend *p = &c->ring[c->tail % c->cap];
        if (p->failed)
            failed = 1;
        if (c->state == OPEN && !failed) {
            uint8_t a[5];
            size_t n = mqw_encode_puback_rc(a, sizeof(a), c->version, p->mid, p->rc);
            if (wput(c, a, n) != 0) {
                ing_refused(g, REF_SLOW_READER);
                conn_close(g, c, 1, 0);
                return;
            }
            metric_observe(g->m_latency, (double)(fs_mono_ms() - p->t_ms) / 1000.0);
        }
        c->tail++;
        freed = 1;
    }
    if (failed && c->state == OPEN) {
        /* Kafka refused a record: no PUBACK; the client sends it again. */
        conn_close(g, c, 1, MQW_RC_UNSPECIFIED);
        return;
    }
    if (c->state == OPEN) {
        wflush(c);
        if (freed && c->blocked) {
            c->blocked = 0;
            make_ready(g->srv, c);
        }
    }
}

void ing_server_delivered(struct ingest *g, void *opaque, rd_kafka_resp_err_t err, int64_t ts_ms)
{
    (void)ts_ms;
    if (!err) {
        g->acked++;
        metric_add(g->m_acked, 1);
    } else {
        g->errors++;
        metric_add(g->m_delivery_errors, 1);
        log_error("delivery failed: %s", rd_kafka_err2str(err));
    }
    if (!opaque)
        return;
    struct pend *p = opaque;
    struct conn *c = p->c;
    p->done = 1;
    p->failed = err != 0;
    c->refs--;
    if (c->state != CLOSED)
        release(g, c);
}

/* ---- packets ------------------------------------------------------------ */

/* A 3.1.1 CONNACK return code for an MQTT 5 reason. */
static uint8_t v3_code(uint8_t rc)
{
    switch (rc) {
    case MQW_RC_BAD_VERSION:
        return 1;
    case MQW_RC_BAD_CLIENT_ID:
        return 2;
    case MQW_RC_SERVER_BUSY:
        return 3;
    case MQW_RC_BAD_LOGIN:
        return 4;
    default:
        return 5;
    }
}

static void refuse_connect(struct ingest *g, struct conn *c, int version, uint8_t rc, enum ing_refusal why)
{
    uint8_t out[64];
    size_t n = version == 5 ? mqw_encode_connack(out, sizeof(out), 5, 0, rc, NULL)
                            : mqw_encode_connack(out, sizeof(out), 4, 0, v3_code(rc), NULL);
    if (n && wput(c, out, n) == 0)
        wflush(c);
    ing_refused(g, why);
    conn_close(g, c, 0, 0);
}

static int on_connect(struct ingest *g, struct conn *c, const struct mqw_connect_in *m)
{
    struct ing_server *s = g->srv;
    int v = m->version;
    char user[MQA_ID_MAX + 1] = "";
    if (m->user && m->user_len <= MQA_ID_MAX) {
        memcpy(user, m->user, m->user_len);
        user[m->user_len] = '\0';
    }
    if (g->store) {
        char err[256];
        if (mqa_store_refresh(g->store, err, sizeof(err)) != 0)
            log_warn("keeping the accounts loaded before: %s", err);
        if (!m->user || !mqa_valid_id(user) || !m->pass ||
            !mqa_store_login(g->store, user, m->pass, m->pass_len)) {
            log_debug("login refused for '%s'", user);
            refuse_connect(g, c, v, MQW_RC_BAD_LOGIN, REF_BAD_LOGIN);
            return -1;
        }
    } else {
        /* No accounts: the client id names the connection. */
        size_t n = m->client_id_len <= MQA_ID_MAX ? m->client_id_len : MQA_ID_MAX;
        memcpy(user, m->client_id, n);
        user[n] = '\0';
    }
    if (m->will_topic) {
        if (m->will_qos == 2 && v == 5) {
            refuse_connect(g, c, v, MQW_RC_QOS_UNSUPPORTED, REF_QOS2);
            return -1;
        }
        if (m->will_retain && v == 5) {
            refuse_connect(g, c, v, MQW_RC_RETAIN_UNSUPPORTED, REF_RETAIN);
            return -1;
        }
        if (g->store && !mqa_store_may_publish(g->store, user, m->will_topic, m->will_topic_len)) {
            refuse_connect(g, c, v, MQW_RC_NOT_AUTHORIZED, REF_NOT_AUTHORIZED);
            return -1;
        }
        c->will_topic = strndup(m->will_topic, m->will_topic_len);
        c->will_payload = malloc(m->will_len ? m->will_len : 1);
        if (!c->will_topic || !c->will_payload) {
            refuse_connect(g, c, v, MQW_RC_SERVER_BUSY, REF_TOO_MANY);
            return -1;
        }
        memcpy(c->will_payload, m->will_payload, m->will_len);
        c->will_len = m->will_len;
    }
    c->cap = (uint32_t)g->o->receive_max;
    c->ring = calloc(c->cap, sizeof(*c->ring));
    if (!c->ring) {
        refuse_connect(g, c, v, MQW_RC_SERVER_BUSY, REF_TOO_MANY);
        return -1;
    }
    /* The account is the client id (Mosquitto's use_username_as_clientid):
     * a second connection of it takes over from the first (3.1.4-2). */
    for (struct conn *o = s->hash[hash_name(user)]; o; o = o->hnext)
        if (strcmp(o->account, user) == 0) {
            log_info("%s connected again: closing its previous connection", user);
            conn_close(g, o, 1, MQW_RC_TAKEN_OVER);
            break;
        }
    snprintf(c->account, sizeof(c->account), "%s", user);
    c->version = v;
    c->keepalive_s = m->keepalive_s;
    c->state = OPEN;
    uint32_t h = hash_name(c->account);
    c->hnext = s->hash[h];
    s->hash[h] = c;
    uint8_t out[128];
    struct mqw_connack_props p = {.receive_max = (uint16_t)g->o->receive_max,
                                  .max_packet_size = (uint32_t)g->o->max_packet_size,
                                  .assigned_client_id = m->client_id_len ? NULL : c->account};
    size_t n = mqw_encode_connack(out, sizeof(out), v, 0, 0, &p);
    metric_add(g->m_connects, 1);
    return wput(c, out, n);
}

/* A PUBLISH: 0 taken, 1 to be taken again later (ring or Kafka full), -1
 * the connection ended. */
static int on_publish(struct ingest *g, struct conn *c, const struct mqw_in *in)
{
    if (in->qos == 2) {
        ing_refused(g, REF_QOS2);
        conn_close(g, c, 1, MQW_RC_QOS_UNSUPPORTED); /* 3.1.1: no way to refuse but closing */
        return -1;
    }
    if (in->retain && c->version == 5) {
        ing_refused(g, REF_RETAIN);
        conn_close(g, c, 1, MQW_RC_RETAIN_UNSUPPORTED);
        return -1;
    }
    if (in->qos == 1 && c->head - c->tail >= c->cap) {
        if (c->version == 5) { /* it sent more than the Receive Maximum it was told */
            ing_refused(g, REF_MALFORMED);
            conn_close(g, c, 1, MQW_RC_RECEIVE_MAX);
            return -1;
        }
        c->blocked = 1;
        return 1;
    }
    int allowed = !g->store || mqa_store_may_publish(g->store, c->account, in->topic, in->topic_len);
    if (!allowed) {
        /* 3.1.1 has no refusal: acknowledged and dropped, as the broker
         * does; MQTT 5 says "not authorized" in the PUBACK. */
        ing_refused(g, REF_NOT_AUTHORIZED);
        if (in->qos == 1) {
            struct pend *p = &c->ring[c->head++ % c->cap];
            *p = (struct pend){.c = c, .mid = in->mid, .done = 1, .rc = MQW_RC_NOT_AUTHORIZED, .t_ms = fs_mono_ms()};
            release(g, c);
        }
        return c->state == OPEN ? 0 : -1;
    }
    struct pend *p = NULL;
    if (in->qos == 1) {
        p = &c->ring[c->head % c->cap];
        *p = (struct pend){.c = c, .mid = in->mid, .t_ms = fs_mono_ms()};
    }
    int r = produce(g, in->topic, in->topic_len, in->payload, in->payload_len, p);
    if (r == 1)
        return 1;
    if (r < 0) {
        conn_close(g, c, 1, MQW_RC_UNSPECIFIED);
        return -1;
    }
    if (p) {
        c->head++;
        c->refs++;
    }
    return 0;
}

/* Handles one packet: 0 next, 1 stop reading this connection for now
 * (the packet stays), -1 the connection ended. */
static int on_packet(struct ingest *g, struct conn *c, const struct mqw_in *in)
{
    uint8_t out[64];
    size_t n;
    switch (in->type) {
    case MQW_CONNECT:
        return on_connect(g, c, &in->connect) == 0 ? 0 : -1;
    case MQW_PUBLISH:
        return on_publish(g, c, in);
    case MQW_PINGREQ:
        n = mqw_encode_empty(out, sizeof(out), MQW_PINGRESP);
        return wput(c, out, n);
    case MQW_SUBSCRIBE:
        ing_refused(g, REF_SUBSCRIBE);
        n = mqw_encode_suback_refusal(out, sizeof(out), c->version, in->mid, in->nfilters < 32 ? in->nfilters : 32,
                                      MQW_RC_NOT_AUTHORIZED);
        return in->nfilters < 32 ? wput(c, out, n) : -1;
    case MQW_UNSUBSCRIBE:
        n = mqw_encode_unsuback(out, sizeof(out), c->version, in->mid, in->nfilters < 32 ? in->nfilters : 32);
        return in->nfilters < 32 ? wput(c, out, n) : -1;
    case MQW_DISCONNECT:
        conn_close(g, c, c->version == 5 && in->reason == 0x04, 0);
        return -1;
    default:
        return -1;
    }
}

/* Parses what the read buffer holds.  0, 1 stalled, -1 ended. */
static int parse_buffer(struct ingest *g, struct conn *c)
{
    size_t off = 0;
    int rc = 0;
    while (off < c->rlen && c->state != CLOSED) {
        struct mqw_in in;
        uint8_t why;
        int version = c->state == WAIT_CONNECT ? 0 : c->version;
        int n = mqw_parse_client(c->rbuf + off, c->rlen - off, version, (size_t)g->o->max_packet_size, &in, &why);
        if (n == 0)
            break;
        if (n == MQW_IN_TOO_LARGE) {
            ing_refused(g, REF_TOO_LARGE);
            conn_close(g, c, 1, MQW_RC_PACKET_TOO_LARGE);
            return -1;
        }
        if (n < 0) {
            if (c->state == WAIT_CONNECT && why == MQW_RC_BAD_VERSION) {
                refuse_connect(g, c, in.connect.version, MQW_RC_BAD_VERSION, REF_BAD_VERSION);
                return -1;
            }
            ing_refused(g, REF_MALFORMED);
            conn_close(g, c, 1, why);
            return -1;
        }
        rc = on_packet(g, c, &in);
        if (rc != 0)
            break;
        off += (size_t)n;
    }
    if (c->state == CLOSED)
        return -1;
    memmove(c->rbuf, c->rbuf + off, c->rlen - off);
    c->rlen -= off;
    wflush(c);
    return rc > 0 ? 1 : 0;
}

/* Reads and handles what the socket holds, while nothing stops it. */
static void conn_read(struct ingest *g, struct conn *c)
{
    while (c->state != CLOSED && !g->kafka_full && !c->blocked) {
        int r = parse_buffer(g, c);
        if (r != 0)
            return;
        if (!c->readable)
            return;
        if (c->rlen == c->rcap) {
            size_t cap = c->rcap * 2;
            if (cap > (size_t)g->o->max_packet_size + 8)
                cap = (size_t)g->o->max_packet_size + 8;
            uint8_t *b = cap > c->rcap ? realloc(c->rbuf, cap) : NULL;
            if (!b) {
                conn_close(g, c, 1, MQW_RC_PACKET_TOO_LARGE);
                return;
            }
            c->rbuf = b;
            c->rcap = cap;
        }
        ssize_t k = recv(c->fd, c->rbuf + c->rlen, c->rcap - c->rlen, 0);
        if (k > 0) {
            c->rlen += (size_t)k;
            c->last_rx_ms = fs_mono_ms();
            continue;
        }
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            c->readable = 0;
            parse_buffer(g, c);
            return;
        }
        conn_close(g, c, 1, 0); /* EOF or error without DISCONNECT: the will */
        return;
    }
}

/* ---- the loop ----------------------------------------------------------- */

static void accept_all(struct ingest *g)
{
    struct ing_server *s = g->srv;
    for (;;) {
        int fd = accept4(s->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
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
        if (!c || !c->rbuf) {
            free(c);
            close(fd);
            continue;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        c->fd = fd;
        c->rcap = RBUF_START;
        c->opened_ms = c->last_rx_ms = fs_mono_ms();
        struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET, .data.ptr = c};
        if (epoll_ctl(s->ep, EPOLL_CTL_ADD, fd, &ev) != 0) {
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
        if (c->state == WAIT_CONNECT && now - c->opened_ms > g->o->connect_timeout_s * 1000LL) {
            ing_refused(g, REF_CONNECT_TIMEOUT);
            conn_close(g, c, 0, 0);
        } else if (c->state == OPEN && c->keepalive_s && now - c->last_rx_ms > c->keepalive_s * 1500LL &&
                   !c->blocked && !g->kafka_full) {
            ing_refused(g, REF_KEEPALIVE);
            conn_close(g, c, 1, MQW_RC_KEEPALIVE_TIMEOUT);
        }
    }
}

int ing_server_open(struct ingest *g, char *err, size_t err_size)
{
    struct ing_server *s = calloc(1, sizeof(*s));
    if (!s) {
        snprintf(err, err_size, "out of memory");
        return -1;
    }
    g->srv = s;
    s->lfd = s->ep = -1;
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE}, *ai = NULL;
    char port[16];
    snprintf(port, sizeof(port), "%d", g->o->port);
    int e = getaddrinfo(g->o->host, port, &hints, &ai);
    if (e) {
        snprintf(err, err_size, "cannot resolve %s: %s", g->o->host, gai_strerror(e));
        return -1;
    }
    s->lfd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    if (s->lfd >= 0)
        setsockopt(s->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (s->lfd < 0 || bind(s->lfd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(s->lfd, 4096) != 0) {
        snprintf(err, err_size, "cannot listen on %s:%d: %s", g->o->host, g->o->port, strerror(errno));
        freeaddrinfo(ai);
        return -1;
    }
    freeaddrinfo(ai);
    s->ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
    struct epoll_event wk = {.events = EPOLLIN, .data.ptr = &s->lfd};
    struct epoll_event sg = {.events = EPOLLIN, .data.ptr = &s->ep};
    if (s->ep < 0 || epoll_ctl(s->ep, EPOLL_CTL_ADD, s->lfd, &ev) != 0 ||
        epoll_ctl(s->ep, EPOLL_CTL_ADD, g->wake[0], &wk) != 0 || epoll_ctl(s->ep, EPOLL_CTL_ADD, sig_fd(), &sg) != 0) {
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
    fprintf(stderr, "\r\033[Kclients %zu | in %6.0f/s | acked %6.0f/s, %llu total | DLQ %llu | queue %d%s",
            g->srv->n, (double)(g->readings - *last_readings) / dt_s, (double)(g->acked - *last_acked) / dt_s,
            (unsigned long long)g->acked, (unsigned long long)g->dlq, rd_kafka_outq_len(g->rk),
            g->kafka_full ? " (full: paused)" : "");
    *last_readings = g->readings;
    *last_acked = g->acked;
}

int ing_server_run(struct ingest *g)
{
    struct ing_server *s = g->srv;
    struct epoll_event evs[256];
    int64_t last_timers = fs_mono_ms(), last_status = last_timers;
    uint64_t last_readings = 0, last_acked = 0;
    int tty = isatty(STDERR_FILENO) && !g->o->quiet;
    while (!sig_stopping()) {
        int timeout = g->kafka_full ? 5 : s->ready ? 0 : 200;
        int n = epoll_wait(s->ep, evs, 256, timeout);
        g->wall_ms = fs_wall_ms();
        for (int i = 0; i < n; i++) {
            void *p = evs[i].data.ptr;
            if (!p) {
                accept_all(g);
            } else if (p == &s->lfd) {
                drain_fd(g->wake[0]);
            } else if (p == &s->ep) {
                drain_fd(sig_fd());
            } else {
                struct conn *c = p;
                if (evs[i].events & EPOLLOUT)
                    wflush(c);
                if (evs[i].events & (EPOLLIN | EPOLLRDHUP | EPOLLERR | EPOLLHUP)) {
                    c->readable = 1;
                    make_ready(s, c);
                }
            }
        }
        rd_kafka_poll(g->rk, 0);
        if (g->kafka_full && rd_kafka_outq_len(g->rk) < 100000) {
            g->kafka_full = 0;
            g->paused_s += (double)(fs_mono_ms() - g->paused_since_ms) / 1000.0;
            metric_set(g->m_paused, g->paused_s);
            log_info("Kafka's producer queue drained: reading clients again");
        }
        /* The ready list: read each connection until it has nothing more or
         * something stops it; those stopped by Kafka stay on the list. */
        struct conn *list = s->ready;
        s->ready = NULL;
        while (list) {
            struct conn *c = list;
            list = c->rnext;
            c->on_ready = 0;
            if (c->state == CLOSED)
                continue;
            if (!g->kafka_full)
                conn_read(g, c);
            if (c->state != CLOSED && g->kafka_full)
                make_ready(s, c);
        }
        sweep(s);
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
    while (s->all)
        conn_close(g, s->all, 0, 0);
    while (s->zombies) {
        struct conn *c = s->zombies;
        list_del(&s->zombies, c);
        conn_free(c);
    }
    if (s->lfd >= 0)
        close(s->lfd);
    if (s->ep >= 0)
        close(s->ep);
    free(s);
    g->srv = NULL;
}
