/*
 * mqttsub.c - the bridge's MQTT subscriber (see mqttsub.h).
 *
 * States of the one connection:
 *
 *   IDLE -> TCP -> [TLS] -> CONNACK -> SUBACK -> UP
 *     ^                                            |
 *     +------------- lost, refused, timeout -------+
 *
 * A resumed session may deliver queued messages right after the CONNACK,
 * before the SUBACK: they are handed over and acknowledged like any other.
 */
#include "bridge/mqttsub.h"

#include "core/buf.h"
#include "core/log.h"
#include "core/mqttwire.h"
#include "core/tlsclient.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define RBUF_SIZE (MSUB_MAX_PAYLOAD + 128 * 1024) /* a whole packet of the longest payload, and more */
#define READ_BUDGET (4 * 1024 * 1024)             /* bytes per msub_handle: PUBACKs go out in between */
#define CONNECT_TIMEOUT_MS 30000
#define MAX_ADDRS 8

enum state { S_IDLE, S_TCP, S_TLS, S_CONNACK, S_SUBACK, S_UP };

struct msub {
    struct msub_config cfg;
    char *host, *user, *pass, *client_id, *cafile;
    char **filters;
    msub_message_fn on_message;
    void *ud;
    SSL_CTX *ssl_ctx;

    enum state state;
    int fd;
    SSL *ssl;
    int tls_wants_write; /* the last SSL_read or handshake needs the socket writable */
    int v5;
    uint16_t keepalive_s;   /* the broker's Server Keep Alive if it sent one */
    int64_t deadline_ms;    /* connect, TLS, CONNACK, SUBACK must be done by then */
    int64_t next_try_ms;
    int backoff_ms;
    int64_t last_out_ms, ping_sent_ms;
    unsigned addr_next;
    uint64_t connects;
    int was_active;         /* msub_tick's last "active" */

    uint8_t *in;
    size_t in_len;
    uint64_t skip;          /* bytes of a cut PUBLISH still to come and be dropped */
    struct buf out;         /* packets to write; out.p[0..out_off) are written */
    size_t out_off;
};

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static char *dup_or_null(const char *s)
{
    return s && *s ? strdup(s) : NULL;
}

struct msub *msub_new(const struct msub_config *cfg, msub_message_fn on_message, void *ud, char *err,
                      size_t err_size)
{
    struct msub *s = calloc(1, sizeof(*s));
    if (!s) {
        snprintf(err, err_size, "out of memory");
        return NULL;
    }
    s->cfg = *cfg;
    s->fd = -1;
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
    if (s->ssl) {
        SSL_free(s->ssl);
        s->ssl = NULL;
    }
    if (s->fd >= 0)
        close(s->fd);
    s->fd = -1;
    s->in_len = s->out_off = 0;
    buf_reset(&s->out);
    s->skip = 0;
    s->tls_wants_write = 0;
    s->ping_sent_ms = 0;
}

void msub_free(struct msub *s)
{
    if (!s)
        return;
    close_socket(s);
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
    buf_release(&s->out);
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
    s->next_try_ms = mono_ms() + s->backoff_ms;
    s->backoff_ms = s->backoff_ms < 16000 ? s->backoff_ms * 2 : 30000;
}

static int out_append(struct msub *s, const uint8_t *b, size_t n)
{
    buf_put(&s->out, b, n);
    return s->out.oom ? -1 : 0;
}

int msub_flush(struct msub *s)
{
    if (s->fd < 0 || s->state == S_TCP || s->state == S_TLS)
        return 0;
    while (s->out_off < s->out.len) {
        size_t len = s->out.len - s->out_off;
        ssize_t w;
        if (s->ssl) {
            ERR_clear_error();
            int r = SSL_write(s->ssl, (const uint8_t *)s->out.p + s->out_off, len > INT32_MAX ? INT32_MAX : (int)len);
            if (r <= 0) {
                int e = SSL_get_error(s->ssl, r);
                if (e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ)
                    return 0;
                lost(s, e == SSL_ERROR_SYSCALL && errno ? strerror(errno) : "TLS write failed");
                return -1;
            }
            w = r;
        } else {
            w = send(s->fd, (const uint8_t *)s->out.p + s->out_off, len, MSG_NOSIGNAL);
            if (w < 0) {
                if (errno == EINTR)
                    continue;
                if (errno == EAGAIN || errno == EWOULDBLOCK)
                    return 0;
                lost(s, strerror(errno));
                return -1;
            }
        }
        s->out_off += (size_t)w;
        s->last_out_ms = mono_ms();
    }
    s->out_off = 0;
    buf_reset(&s->out);
    return 0;
}

static void send_connect(struct msub *s)
{
    struct mqw_connect m = {.client_id = s->client_id, .keepalive_s = (uint16_t)s->cfg.keepalive_s,
                            .clean_session = 0, .user = s->user, .pass = s->pass, .version = s->cfg.version,
                            .session_expiry_s = s->cfg.session_expiry_s, .receive_max = s->cfg.receive_max};
    uint8_t pkt[1024];
    size_t n = mqw_encode_connect(pkt, sizeof(pkt), &m);
    if (!n || out_append(s, pkt, n) != 0) {
        lost(s, "cannot build CONNECT (client id or credentials too long?)");
        return;
    }
    s->state = S_CONNACK;
    s->keepalive_s = (uint16_t)s->cfg.keepalive_s;
    s->connects++;
    msub_flush(s);
}

static void tls_step(struct msub *s)
{
    ERR_clear_error();
    int r = SSL_do_handshake(s->ssl);
    if (r == 1) {
        s->tls_wants_write = 0;
        send_connect(s);
        return;
    }
    int e = SSL_get_error(s->ssl, r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
        s->tls_wants_write = e == SSL_ERROR_WANT_WRITE;
        return;
    }
    char why[256];
    snprintf(why, sizeof(why), "TLS handshake failed: %s", tls_client_error(e));
    lost(s, why);
}

static void tcp_done(struct msub *s)
{
    int err = 0;
    socklen_t len = sizeof(err);
    if (getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
        err = errno;
    if (err) {
        lost(s, strerror(err));
        return;
    }
    if (!s->ssl_ctx) {
        send_connect(s);
        return;
    }
    s->ssl = tls_client_session(s->ssl_ctx, s->fd, s->host);
    if (!s->ssl) {
        lost(s, "cannot start TLS");
        return;
    }
    s->state = S_TLS;
    tls_step(s);
}

/* Starts a connection to the next resolved address. */
static void try_connect(struct msub *s)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV}, *res = NULL, *a;
    char port[16];
    snprintf(port, sizeof(port), "%d", s->cfg.port);
    int rc = getaddrinfo(s->host, port, &hints, &res);
    if (rc != 0 || !res) {
        char why[256];
        snprintf(why, sizeof(why), "cannot resolve %s: %s", s->host, rc ? gai_strerror(rc) : "no address");
        lost(s, why);
        return;
    }
    unsigned n = 0;
    for (a = res; a; a = a->ai_next)
        n++;
    a = res;
    for (unsigned k = s->addr_next++ % (n < MAX_ADDRS ? n : MAX_ADDRS); k > 0; k--)
        a = a->ai_next;
    s->fd = socket(a->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (s->fd < 0) {
        freeaddrinfo(res);
        lost(s, strerror(errno));
        return;
    }
    int one = 1;
    setsockopt(s->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)); /* we batch our writes ourselves */
    s->state = S_TCP;
    s->deadline_ms = mono_ms() + CONNECT_TIMEOUT_MS;
    s->last_out_ms = mono_ms();
    int r = connect(s->fd, a->ai_addr, a->ai_addrlen);
    freeaddrinfo(res);
    if (r != 0 && errno != EINPROGRESS)
        lost(s, strerror(errno));
    else if (r == 0)
        tcp_done(s);
}

static void send_subscribe(struct msub *s)
{
    uint8_t pkt[2048];
    size_t n = mqw_encode_subscribe(pkt, sizeof(pkt), 1, s->cfg.filters, s->cfg.nfilters, 1, s->cfg.version);
    if (!n || out_append(s, pkt, n) != 0) {
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
    case MQW_CONNACK:
        if (s->state != S_CONNACK) {
            lost(s, "unexpected CONNACK");
            return -1;
        }
        reason_text(pk, extra, sizeof(extra));
        if (pk->return_code) {
            char why[400];
            snprintf(why, sizeof(why), "the broker refused the connection: %s%s",
                     mqw_connack_string(pk->return_code), extra);
            if (pk->return_code == 4 || pk->return_code == 5 || pk->return_code == 0x86 ||
                pk->return_code == 0x87)
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
                         "on the way is lost", k < (size_t)s->cfg.nfilters ? s->cfg.filters[k] : "a filter");
        log_info("subscribed to %s%s%s%s%s (QoS 1)", s->cfg.filters[0], s->cfg.nfilters > 1 ? ", " : "",
                 s->cfg.nfilters > 1 ? s->cfg.filters[1] : "", s->cfg.nfilters > 2 ? ", " : "",
                 s->cfg.nfilters > 2 ? s->cfg.filters[2] : "");
        s->state = S_UP;
        s->backoff_ms = 500;
        return 0;
    case MQW_PINGRESP:
        s->ping_sent_ms = 0;
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
        if (out_append(s, ack, sizeof(ack)) != 0) {
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
    while (budget > 0 && s->fd >= 0) {
        size_t room = RBUF_SIZE - s->in_len;
        ssize_t r;
        if (s->ssl) {
            ERR_clear_error();
            int n = SSL_read(s->ssl, s->in + s->in_len, (int)room);
            if (n <= 0) {
                int e = SSL_get_error(s->ssl, n);
                if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
                    s->tls_wants_write = e == SSL_ERROR_WANT_WRITE;
                    break;
                }
                lost(s, e == SSL_ERROR_ZERO_RETURN ? "connection closed by the broker" : tls_client_error(e));
                return -1;
            }
            s->tls_wants_write = 0;
            r = n;
        } else {
            r = read(s->fd, s->in + s->in_len, room);
            if (r < 0 && errno == EINTR)
                continue;
            if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
                break;
            if (r <= 0) {
                lost(s, r == 0 ? "connection closed by the broker" : strerror(errno));
                return -1;
            }
        }
        budget = (size_t)r < budget ? budget - (size_t)r : 0;
        int emptied = !s->ssl && (size_t)r < room;
        if (s->skip) {
            size_t drop = (uint64_t)r < s->skip ? (size_t)r : (size_t)s->skip;
            s->skip -= drop;
            memmove(s->in + s->in_len, s->in + s->in_len + drop, (size_t)r - drop);
            r -= (ssize_t)drop;
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
    return s->fd;
}

short msub_events(const struct msub *s, int reading)
{
    if (s->fd < 0)
        return 0;
    if (s->state == S_TCP)
        return POLLOUT;
    short ev = 0;
    int taking = reading || s->state != S_UP;
    if (taking)
        ev |= POLLIN;
    if (s->out_off < s->out.len || (s->tls_wants_write && taking))
        ev |= POLLOUT;
    return ev;
}

int msub_pending(const struct msub *s)
{
    return s->ssl && s->state >= S_CONNACK && SSL_pending(s->ssl) > 0;
}

long msub_handle(struct msub *s, short revents, int reading)
{
    if (s->fd < 0)
        return 0;
    if (!revents && msub_pending(s))
        revents = POLLIN; /* decrypted bytes OpenSSL holds: poll cannot see them */
    if (!revents)
        return 0;
    if (s->state == S_TCP) {
        if (revents & (POLLOUT | POLLERR | POLLHUP))
            tcp_done(s);
        return 0;
    }
    if (s->state == S_TLS) {
        tls_step(s);
        return 0;
    }
    if ((revents & POLLOUT) && s->tls_wants_write && !(revents & POLLIN))
        revents |= POLLIN; /* an SSL_read waits for the socket to take a write */
    /* A closed or broken socket is read even while paused: the read finds
     * out (and the messages before the end are taken, a little over budget). */
    if (((revents & POLLIN) && (reading || s->state != S_UP)) || (revents & (POLLHUP | POLLERR)))
        return read_some(s);
    return 0;
}

void msub_tick(struct msub *s, int active)
{
    int64_t now = mono_ms();
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
    if (s->state < S_CONNACK)
        return; /* CONNECT goes first */
    int64_t ka = (int64_t)s->keepalive_s * 1000;
    if (ka > 0) {
        /* A PINGRESP behind messages that waited unread during a pause is
         * read soon after: its clock starts again when reading does. */
        if (resumed && s->ping_sent_ms)
            s->ping_sent_ms = now;
        if (active && s->ping_sent_ms && now - s->ping_sent_ms > ka) {
            lost(s, "no PINGRESP within the keep-alive");
            return;
        }
        /* Paused, PINGRESPs stay unread: ping on regardless, so that the
         * broker keeps the connection (and the messages it sent). */
        if ((!s->ping_sent_ms || !active) && now - s->last_out_ms >= ka * 3 / 4) {
            uint8_t ping[2];
            mqw_encode_empty(ping, sizeof(ping), MQW_PINGREQ);
            if (out_append(s, ping, 2) == 0 && !s->ping_sent_ms)
                s->ping_sent_ms = now;
        }
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
    if (s->state >= S_CONNACK) {
        uint8_t d[2];
        mqw_encode_empty(d, sizeof(d), MQW_DISCONNECT);
        if (out_append(s, d, 2) == 0) {
            /* A moment for the socket to take it all; then close anyway. */
            for (int k = 0; k < 20 && s->fd >= 0 && s->out_off < s->out.len; k++) {
                if (msub_flush(s) != 0)
                    break;
                if (s->out_off < s->out.len) {
                    struct pollfd p = {.fd = s->fd, .events = POLLOUT};
                    poll(&p, 1, 50);
                }
            }
        }
        if (s->ssl && s->fd >= 0)
            SSL_shutdown(s->ssl);
    }
    close_socket(s);
    s->state = S_IDLE;
}
