/*
 * mqttsub.c - the bridge's MQTT subscriber (see mqttsub.h).
 *
 * The connection itself (TCP, TLS, CONNECT/CONNACK, output queue, reads,
 * keepalive) is core/mqttconn.c's; on top of it the subscriber adds the
 * subscription and its own states:
 *
 *   IDLE -> connecting (mqttconn: TCP, TLS, CONNACK) -> SUBACK -> UP
 *     ^                                                           |
 *     +------------------- lost, refused, timeout ----------------+
 *
 * A resumed session may deliver queued messages right after the CONNACK,
 * before the SUBACK: they are handed over and acknowledged like any other.
 */
#include "bridge/mqttsub.h"

#include "core/clock.h"
#include "core/log.h"
#include "core/mqttconn.h"
#include "core/mqttwire.h"
#include "core/tlsclient.h"

#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define RBUF_SIZE (MSUB_MAX_PAYLOAD + 128 * 1024) /* a whole packet of the longest payload, and more */
#define READ_BUDGET (4 * 1024 * 1024)             /* bytes per msub_handle: PUBACKs go out in between */
#define CONNECT_TIMEOUT_MS 30000

/* IDLE: no socket; CONNECTING: the connection's own states (conn.state);
 * SUBACK: CONNACK accepted, SUBSCRIBE sent; UP: subscribed. */
enum state { S_IDLE, S_CONNECTING, S_SUBACK, S_UP };

struct msub {
    struct msub_config cfg;
    char *host, *user, *pass, *client_id, *cafile;
    char **filters;
    msub_message_fn on_message;
    void *ud;
    SSL_CTX *ssl_ctx;

    enum state state;
    struct mqc conn;
    int v5;
    uint16_t keepalive_s; /* the broker's Server Keep Alive if it sent one */
    int64_t deadline_ms;  /* connect, TLS, CONNACK, SUBACK must be done by then */
    int64_t next_try_ms;
    int backoff_ms;
    unsigned addr_next;
    uint64_t connects;
    int was_active; /* msub_tick's last "active" */

    uint8_t *in;
    size_t in_len;
    uint64_t skip; /* bytes of a cut PUBLISH still to come and be dropped */
};

static char *dup_or_null(const char *s)
{
    return s && *s ? strdup(s) : NULL;
}

struct msub *msub_new(const struct msub_config *cfg, msub_message_fn on_message, void *ud, char *err, size_t err_size)
{
    struct msub *s = calloc(1, sizeof(*s));
    if (!s) {
        snprintf(err, err_size, "out of memory");
        return NULL;
    }
    s->cfg = *cfg;
    mqc_init(&s->conn);
    s->on_message = on_message;
    s->ud = ud;
    s->v5 = cfg->version == 5;
    s->backoff_ms = 500;
    s->host = strdup(cfg->host);
    s->client_id = strdup(cfg->client_id);
    s->user = dup_or_null(cfg->user);
    s->pass = s->user ? dup_or_null(cfg->pass) : NULL;
    int pass_ok = !s->user || !cfg->pass || !*cfg->pass || s->pass;
    s->cafile = dup_or_null(cfg->cafile);
    s->filters = calloc((size_t)cfg->nfilters, sizeof(char *));
    s->in = malloc(RBUF_SIZE);
    int ok = s->host && s->client_id && s->filters && s->in && (!cfg->user || !*cfg->user || s->user) && pass_ok &&
             (!cfg->cafile || s->cafile);
    for (int k = 0; ok && k < cfg->nfilters; k++)
        ok = (s->filters[k] = strdup(cfg->filters[k])) != NULL;
    if (!ok) {
        snprintf(err, err_size, "out of memory");
        msub_free(s);
        return NULL;
    }
    s->cfg.host = s->host;
    s->cfg.client_id = s->client_id;
    s->cfg.user = s->user;
    s->cfg.pass = s->pass;
    s->cfg.cafile = s->cafile;
    s->cfg.filters = (const char *const *)s->filters;
    if (cfg->tls && !(s->ssl_ctx = tls_client_context(s->cafile, s->host, err, err_size))) {
        msub_free(s);
        return NULL;
    }
    return s;
}

static void close_socket(struct msub *s)
{
    mqc_close(&s->conn);
    s->in_len = 0;
    s->skip = 0;
}

void msub_free(struct msub *s)
{
    if (!s)
        return;
    mqc_release(&s->conn);
    if (s->ssl_ctx)
        SSL_CTX_free(s->ssl_ctx);
    for (int k = 0; s->filters && k < s->cfg.nfilters; k++)
        free(s->filters[k]);
    free(s->filters);
    free(s->host);
    free(s->client_id);
    free(s->user);
    free(s->pass);
    free(s->cafile);
    free(s->in);
    free(s);
}

/* The connection is gone (or never came): log once, retry after backoff. */
static void lost(struct msub *s, const char *why)
{
    if (s->state == S_UP)
        log_warn("MQTT connection lost: %s", why);
    else
        log_warn("cannot connect to MQTT %s:%d: %s; retrying in %d ms", s->host, s->cfg.port, why, s->backoff_ms);
    close_socket(s);
    s->state = S_IDLE;
    s->next_try_ms = fs_mono_ms() + s->backoff_ms;
    s->backoff_ms = s->backoff_ms < 16000 ? s->backoff_ms * 2 : 30000;
}

int msub_flush(struct msub *s)
{
    if (s->conn.state < MQC_CONNACK)
        return 0; /* CONNECT goes first */
    char why[256];
    if (mqc_flush(&s->conn, fs_mono_ms(), why, sizeof(why)) < 0) {
        lost(s, why);
        return -1;
    }
    return 0;
}

static void send_connect(struct msub *s)
{
    struct mqw_connect m = {.client_id = s->client_id,
                            .keepalive_s = (uint16_t)s->cfg.keepalive_s,
                            .clean_session = 0,
                            .user = s->user,
                            .pass = s->pass,
                            .version = s->cfg.version,
                            .session_expiry_s = s->cfg.session_expiry_s,
                            .receive_max = s->cfg.receive_max};
    if (mqc_queue_connect(&s->conn, &m) != 0) {
        lost(s, "cannot build CONNECT (client id or credentials too long?)");
        return;
    }
    s->keepalive_s = (uint16_t)s->cfg.keepalive_s;
    s->connects++;
    msub_flush(s);
}

/* TCP connected or TLS moved on: CONNECT once the transport is ready. */
static void step(struct msub *s)
{
    char why[300];
    int r = mqc_step(&s->conn, s->ssl_ctx, s->host, why, sizeof(why));
    if (r < 0)
        lost(s, why);
    else if (r > 0)
        send_connect(s);
}

/* Starts a connection to the next resolved address. */
static void try_connect(struct msub *s)
{
    struct mqc_addrs to;
    char why[300];
    if (mqc_resolve(s->host, s->cfg.port, AF_UNSPEC, &to, why, sizeof(why)) != 0) {
        lost(s, why);
        return;
    }
    unsigned k = s->addr_next++ % to.n;
    int64_t now = fs_mono_ms();
    if (mqc_start(&s->conn, (const struct sockaddr *)&to.addr[k], to.len[k], NULL, 0, now, why, sizeof(why)) != 0) {
        lost(s, why);
        return;
    }
    s->state = S_CONNECTING;
    s->deadline_ms = now + CONNECT_TIMEOUT_MS;
}

static void send_subscribe(struct msub *s)
{
    uint8_t pkt[2048];
    size_t n = mqw_encode_subscribe(pkt, sizeof(pkt), 1, s->cfg.filters, s->cfg.nfilters, 1, s->cfg.version);
    if (!n || mqc_append(&s->conn, pkt, n) != 0) {
        lost(s, "cannot build SUBSCRIBE");
        return;
    }
    s->state = S_SUBACK;
}

static void reason_text(const struct mqw_packet *pk, char *buf, size_t size)
{
    if (pk->reason)
        snprintf(buf, size, " (%.*s)", (int)(pk->reason_len < 200 ? pk->reason_len : 200), pk->reason);
    else
        *buf = 0;
}

/* Acts on a packet other than PUBLISH.  Returns 0, or -1 if the connection
 * is gone. */
static int on_control(struct msub *s, const struct mqw_packet *pk)
{
    char extra[220];
    switch (pk->type) {
    case MQW_CONNACK: {
        int r = s->state == S_CONNECTING ? mqc_connack(&s->conn, pk) : -1;
        if (r < 0) {
            lost(s, "unexpected CONNACK");
            return -1;
        }
        reason_text(pk, extra, sizeof(extra));
        if (r > 0) {
            char why[400];
            snprintf(why, sizeof(why), "the broker refused the connection: %s%s", mqw_connack_string(pk->return_code),
                     extra);
            if (pk->return_code == 4 || pk->return_code == 5 || pk->return_code == 0x86 || pk->return_code == 0x87)
                log_error("MQTT broker %s:%d refused the connection: %s", s->host, s->cfg.port,
                          mqw_connack_string(pk->return_code));
            lost(s, why);
            return -1;
        }
        if (s->v5 && pk->server_keepalive)
            s->keepalive_s = pk->server_keepalive;
        log_info("connected to MQTT %s:%d as %s (MQTT %s, %s session)", s->host, s->cfg.port, s->client_id,
                 s->v5 ? "5" : "3.1.1", pk->session_present ? "resumed" : "new");
        send_subscribe(s);
        return s->state == S_IDLE ? -1 : 0;
    }
    case MQW_SUBACK:
        if (s->state != S_SUBACK || pk->mid != 1) {
            lost(s, "unexpected SUBACK");
            return -1;
        }
        for (size_t k = 0; k < pk->ncodes && k < (size_t)s->cfg.nfilters; k++)
            if (pk->codes[k] >= 0x80) {
                char why[600];
                snprintf(why, sizeof(why), "the broker refused the subscription %s: %s", s->cfg.filters[k],
                         s->v5 ? mqw_reason_string(pk->codes[k]) : "failure");
                log_error("%s", why);
                lost(s, why);
                return -1;
            }
        for (size_t k = 0; k < pk->ncodes; k++)
            if (pk->codes[k] == 0)
                log_warn("the broker granted %s QoS 0 only: its messages are not acknowledged, and one lost "
                         "on the way is lost",
                         k < (size_t)s->cfg.nfilters ? s->cfg.filters[k] : "a filter");
        log_info("subscribed to %s%s%s%s%s (QoS 1)", s->cfg.filters[0], s->cfg.nfilters > 1 ? ", " : "",
                 s->cfg.nfilters > 1 ? s->cfg.filters[1] : "", s->cfg.nfilters > 2 ? ", " : "",
                 s->cfg.nfilters > 2 ? s->cfg.filters[2] : "");
        s->state = S_UP;
        s->backoff_ms = 500;
        return 0;
    case MQW_PINGRESP:
        mqc_pong(&s->conn);
        return 0;
    case MQW_DISCONNECT: {
        char why[400];
        reason_text(pk, extra, sizeof(extra));
        snprintf(why, sizeof(why), "the broker disconnected: %s%s", mqw_reason_string(pk->return_code), extra);
        lost(s, why);
        return -1;
    }
    default: {
        char why[64];
        snprintf(why, sizeof(why), "unexpected packet type %d from the broker", pk->type);
        lost(s, why);
        return -1;
    }
    }
}

/* Hands a PUBLISH over and queues its PUBACK.  Returns 0, 1 if the
 * callback refused it, -1 if the connection is gone. */
static int on_publish(struct msub *s, const struct mqw_packet *pk, size_t full_len, int cut)
{
    if (s->state < S_SUBACK) {
        lost(s, "PUBLISH before CONNACK");
        return -1;
    }
    size_t plen = pk->payload_len < MSUB_MAX_PAYLOAD ? pk->payload_len : MSUB_MAX_PAYLOAD;
    cut = cut || plen < pk->payload_len;
    if (s->on_message(s->ud, pk->topic, pk->topic_len, pk->payload, plen, full_len, cut) != 0)
        return 1;
    if (pk->qos) {
        /* QoS 2 is never granted (we subscribe at 1); a broker sending it
         * anyway gets a PUBACK it will refuse, and says why. */
        uint8_t ack[4];
        mqw_encode_puback(ack, sizeof(ack), pk->mid);
        if (mqc_append(&s->conn, ack, sizeof(ack)) != 0) {
            lost(s, "out of memory");
            return -1;
        }
    }
    return 0;
}

/* Parses what the input buffer holds.  Returns messages handed over, or
 * -1 (gone), -2 (refused). */
static long parse_input(struct msub *s)
{
    long msgs = 0;
    size_t off = 0;
    int version = s->v5 ? 5 : 4;
    while (off < s->in_len) {
        struct mqw_packet pk;
        int n = mqw_parse_in(s->in + off, s->in_len - off, version, RBUF_SIZE, &pk);
        if (n == 0)
            break;
        if (n == -1) {
            lost(s, "malformed packet from the broker");
            return -1;
        }
        if (n == -2) {
            /* Longer than the buffer: take the start of its payload once
             * the buffer is full of it, then drop the rest. */
            if (off > 0 || s->in_len < RBUF_SIZE)
                break;
            size_t full = pk.length - (size_t)(pk.payload - s->in);
            int r = on_publish(s, &pk, full, 1);
            if (r != 0)
                return r < 0 ? -1 : -2;
            msgs++;
            s->skip = pk.length - s->in_len;
            s->in_len = 0;
            return msgs;
        }
        if (pk.type == MQW_PUBLISH) {
            int r = on_publish(s, &pk, pk.payload_len, 0);
            if (r != 0)
                return r < 0 ? -1 : -2;
            msgs++;
        } else if (on_control(s, &pk) != 0) {
            return -1;
        }
        off += (size_t)n;
    }
    if (off) {
        memmove(s->in, s->in + off, s->in_len - off);
        s->in_len -= off;
    }
    return msgs;
}

/* Reads and parses until the socket is empty or the budget is spent. */
static long read_some(struct msub *s)
{
    long msgs = 0;
    size_t budget = READ_BUDGET;
    while (budget > 0 && s->conn.fd >= 0) {
        int emptied;
        char why[256];
        long r = mqc_read(&s->conn, s->in + s->in_len, RBUF_SIZE - s->in_len, &emptied, why, sizeof(why));
        if (r < 0) {
            lost(s, why);
            return -1;
        }
        if (r == 0)
            break;
        budget = (size_t)r < budget ? budget - (size_t)r : 0;
        if (s->skip) {
            size_t drop = (uint64_t)r < s->skip ? (size_t)r : (size_t)s->skip;
            s->skip -= drop;
            memmove(s->in + s->in_len, s->in + s->in_len + drop, (size_t)r - drop);
            r -= (long)drop;
        }
        s->in_len += (size_t)r;
        long got = parse_input(s);
        if (got == -2) {
            /* Refused: nothing more is acknowledged on this connection. */
            lost(s, "a message could not be taken");
            return -1;
        }
        if (got < 0)
            return msgs; /* gone: the broker sends the unacknowledged again */
        msgs += got;
        if (emptied)
            break; /* the socket is empty */
    }
    return msgs;
}

int msub_fd(const struct msub *s)
{
    return s->conn.fd;
}

short msub_events(const struct msub *s, int reading)
{
    if (s->conn.fd < 0)
        return 0;
    if (s->conn.state == MQC_TCP)
        return POLLOUT;
    short ev = 0;
    int taking = reading || s->state != S_UP;
    if (taking)
        ev |= POLLIN;
    if (mqc_pending_out(&s->conn) || ((s->conn.tls_wait & MQC_READ_WANTS_WRITE) && taking))
        ev |= POLLOUT;
    return ev;
}

int msub_pending(const struct msub *s)
{
    return mqc_tls_pending(&s->conn);
}

long msub_handle(struct msub *s, short revents, int reading)
{
    if (s->conn.fd < 0)
        return 0;
    if (!revents && msub_pending(s))
        revents = POLLIN; /* decrypted bytes OpenSSL holds: poll cannot see them */
    if (!revents)
        return 0;
    if (s->conn.state == MQC_TCP) {
        if (revents & (POLLOUT | POLLERR | POLLHUP))
            step(s);
        return 0;
    }
    if (s->conn.state == MQC_TLS) {
        step(s);
        return 0;
    }
    if ((revents & POLLOUT) && (s->conn.tls_wait & MQC_READ_WANTS_WRITE) && !(revents & POLLIN))
        revents |= POLLIN; /* an SSL_read waits for the socket to take a write */
    /* A closed or broken socket is read even while paused: the read finds
     * out (and the messages before the end are taken, a little over budget). */
    if (((revents & POLLIN) && (reading || s->state != S_UP)) || (revents & (POLLHUP | POLLERR)))
        return read_some(s);
    return 0;
}

void msub_tick(struct msub *s, int active)
{
    int64_t now = fs_mono_ms();
    int resumed = active && !s->was_active;
    s->was_active = active;
    if (s->state == S_IDLE) {
        if (active && now >= s->next_try_ms)
            try_connect(s);
        return;
    }
    if (s->state != S_UP && now >= s->deadline_ms) {
        char why[64];
        snprintf(why, sizeof(why), "no answer in %d s", CONNECT_TIMEOUT_MS / 1000);
        lost(s, why);
        return;
    }
    if (s->conn.state < MQC_CONNACK)
        return; /* CONNECT goes first */
    /* A PINGRESP behind messages that waited unread during a pause is read
     * soon after: its clock starts again when reading does.  Paused,
     * PINGRESPs stay unread: ping on regardless, so that the broker keeps
     * the connection (and the messages it sent). */
    if (resumed && s->conn.ping_ms)
        s->conn.ping_ms = now;
    char why[128];
    if (mqc_keepalive(&s->conn, now, (int64_t)s->keepalive_s * 1000, active, why, sizeof(why)) != 0) {
        lost(s, why);
        return;
    }
    msub_flush(s);
}

int msub_up(const struct msub *s)
{
    return s->state == S_UP;
}

uint64_t msub_connects(const struct msub *s)
{
    return s->connects;
}

void msub_disconnect(struct msub *s)
{
    if (s->conn.state >= MQC_CONNACK) {
        uint8_t d[2];
        mqw_encode_empty(d, sizeof(d), MQW_DISCONNECT);
        if (mqc_append(&s->conn, d, 2) == 0) {
            /* A moment for the socket to take it all; then close anyway. */
            for (int k = 0; k < 20 && s->conn.fd >= 0 && mqc_pending_out(&s->conn); k++) {
                if (msub_flush(s) != 0)
                    break;
                if (mqc_pending_out(&s->conn)) {
                    struct pollfd p = {.fd = s->conn.fd, .events = POLLOUT};
                    poll(&p, 1, 50);
                }
            }
        }
        mqc_tls_shutdown(&s->conn);
    }
    close_socket(s);
    s->state = S_IDLE;
}
