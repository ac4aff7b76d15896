/*
 * mqttconn.c - one non-blocking MQTT client connection (see mqttconn.h).
 *
 * Invariant: state DOWN <=> fd == -1 and no TLS session; the output queue
 * holds only whole packets, and out_off never passes out.len.
 */
#include "core/mqttconn.h"

#include "core/tlsclient.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* A connection's first output buffer: room for CONNECT and a few packets.
 * Thousands of mostly idle connections each keep one, so it starts small
 * (struct buf's own first step is 1 KiB) and doubles from there. */
#define OUT_FIRST 512

void mqc_init(struct mqc *c)
{
    *c = (struct mqc){.fd = -1, .state = MQC_DOWN};
}

void mqc_release(struct mqc *c)
{
    mqc_close(c);
    buf_release(&c->out);
}

int mqc_resolve(const char *host, int port, int family, struct mqc_addrs *out, char *err, size_t err_size)
{
    struct addrinfo hints = {.ai_family = family, .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    char port_s[16];
    snprintf(port_s, sizeof(port_s), "%d", port);
    out->n = 0;
    int rc = getaddrinfo(host, port_s, &hints, &res);
    if (rc != 0 || !res) {
        snprintf(err, err_size, "cannot resolve %s: %s", host, rc ? gai_strerror(rc) : "no address");
        return -1;
    }
    for (struct addrinfo *a = res; a && out->n < MQC_MAX_ADDRS; a = a->ai_next) {
        if (a->ai_addrlen > sizeof(out->addr[0]))
            continue;
        memcpy(&out->addr[out->n], a->ai_addr, a->ai_addrlen);
        out->len[out->n++] = a->ai_addrlen;
    }
    freeaddrinfo(res);
    if (!out->n) {
        snprintf(err, err_size, "cannot resolve %s: no usable address", host);
        return -1;
    }
    return 0;
}

int mqc_start(struct mqc *c, const struct sockaddr *to, socklen_t to_len, const struct sockaddr *from,
              socklen_t from_len, int64_t now_ms, char *err, size_t err_size)
{
    int fd = socket(to->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        goto fail;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)); /* the drivers batch their writes */
    if (from) {
#ifdef IP_BIND_ADDRESS_NO_PORT
        /* The port is chosen at connect(), per destination: more than one
         * address's worth of ephemeral ports. */
        setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
#endif
        if (bind(fd, from, from_len) != 0)
            goto fail;
    }
    if (connect(fd, to, to_len) != 0 && errno != EINPROGRESS)
        goto fail;
    c->fd = fd;
    c->state = MQC_TCP;
    c->last_out_ms = now_ms;
    c->ping_ms = 0;
    c->tls_wait = 0;
    return 0;
fail:
    snprintf(err, err_size, "%s", strerror(errno));
    if (fd >= 0)
        close(fd);
    return -1;
}

static int handshake(struct mqc *c, char *err, size_t err_size)
{
    ERR_clear_error();
    int r = SSL_do_handshake(c->ssl);
    if (r == 1) {
        c->tls_wait = 0;
        return 1;
    }
    int e = SSL_get_error(c->ssl, r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
        c->tls_wait = e == SSL_ERROR_WANT_WRITE ? MQC_READ_WANTS_WRITE : 0;
        return 0;
    }
    snprintf(err, err_size, "TLS handshake failed: %s", tls_client_error(e));
    return -1;
}

int mqc_step(struct mqc *c, SSL_CTX *ctx, const char *host, char *err, size_t err_size)
{
    if (c->state == MQC_TLS)
        return handshake(c, err, err_size);
    if (c->state != MQC_TCP)
        return 1;
    int so_err = 0;
    socklen_t len = sizeof(so_err);
    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &so_err, &len) != 0)
        so_err = errno;
    if (so_err) {
        snprintf(err, err_size, "%s", strerror(so_err));
        return -1;
    }
    if (!ctx)
        return 1;
    c->ssl = tls_client_session(ctx, c->fd, host);
    if (!c->ssl) {
        snprintf(err, err_size, "cannot start TLS");
        return -1;
    }
    c->state = MQC_TLS;
    return handshake(c, err, err_size);
}

int mqc_reserve(struct mqc *c, size_t n)
{
    if (c->out_off && c->out_off == c->out.len) { /* all written: start at the front */
        c->out_off = 0;
        buf_reset(&c->out);
    }
    if (c->out.cap - c->out.len > n)
        return 0;
    if (c->out_off) { /* written already: drop it before growing */
        memmove(c->out.p, c->out.p + c->out_off, c->out.len - c->out_off);
        c->out.len -= c->out_off;
        c->out_off = 0;
        if (c->out.cap - c->out.len > n)
            return 0;
    }
    if (!c->out.cap && n < OUT_FIRST) {
        if (!(c->out.p = malloc(OUT_FIRST)))
            return -1;
        c->out.cap = OUT_FIRST;
        c->out.p[0] = '\0';
        return 0;
    }
    return buf_reserve(&c->out, n);
}

void mqc_commit(struct mqc *c, size_t n)
{
    c->out.len += n;
    c->out.p[c->out.len] = '\0';
}

int mqc_append(struct mqc *c, const void *pkt, size_t n)
{
    if (mqc_reserve(c, n) != 0)
        return -1;
    memcpy(c->out.p + c->out.len, pkt, n);
    mqc_commit(c, n);
    return 0;
}

int mqc_queue_connect(struct mqc *c, const struct mqw_connect *m)
{
    uint8_t pkt[1024];
    size_t n = mqw_encode_connect(pkt, sizeof(pkt), m);
    if (!n || mqc_append(c, pkt, n) != 0)
        return -1;
    c->state = MQC_CONNACK;
    return 0;
}

int mqc_connack(struct mqc *c, const struct mqw_packet *pk)
{
    if (c->state != MQC_CONNACK)
        return -1;
    if (pk->return_code)
        return 1;
    c->state = MQC_UP;
    c->ping_ms = 0;
    return 0;
}

int mqc_flush(struct mqc *c, int64_t now_ms, char *err, size_t err_size)
{
    while (c->out_off < c->out.len) {
        size_t len = c->out.len - c->out_off;
        const char *from = c->out.p + c->out_off;
        ssize_t w;
        if (c->ssl) {
            ERR_clear_error();
            int r = SSL_write(c->ssl, from, len > INT32_MAX ? INT32_MAX : (int)len);
            if (r <= 0) {
                int e = SSL_get_error(c->ssl, r);
                if (e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ) {
                    if (e == SSL_ERROR_WANT_READ)
                        c->tls_wait |= MQC_WRITE_WANTS_READ;
                    return 0;
                }
                snprintf(err, err_size, "%s", e == SSL_ERROR_SYSCALL && errno ? strerror(errno) : "TLS write failed");
                return -1;
            }
            c->tls_wait &= (uint8_t)~MQC_WRITE_WANTS_READ;
            w = r;
        } else {
            w = send(c->fd, from, len, MSG_NOSIGNAL);
            if (w < 0) {
                if (errno == EINTR)
                    continue;
                if (errno == EAGAIN || errno == EWOULDBLOCK)
                    return 0;
                snprintf(err, err_size, "%s", strerror(errno));
                return -1;
            }
        }
        c->out_off += (size_t)w;
        c->last_out_ms = now_ms;
    }
    c->out_off = 0;
    buf_reset(&c->out);
    return 1;
}

void mqc_trim(struct mqc *c, size_t keep)
{
    if (c->out.cap > keep && !mqc_pending_out(c)) {
        buf_release(&c->out);
        c->out_off = 0;
    }
}

long mqc_read(struct mqc *c, uint8_t *buf, size_t room, int *empty, char *err, size_t err_size)
{
    *empty = 0;
    if (c->ssl) {
        ERR_clear_error();
        int n = SSL_read(c->ssl, buf, room > INT32_MAX ? INT32_MAX : (int)room);
        if (n > 0) {
            c->tls_wait &= (uint8_t)~MQC_READ_WANTS_WRITE;
            return n;
        }
        int e = SSL_get_error(c->ssl, n);
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
            if (e == SSL_ERROR_WANT_WRITE)
                c->tls_wait |= MQC_READ_WANTS_WRITE;
            else
                c->tls_wait &= (uint8_t)~MQC_READ_WANTS_WRITE;
            *empty = 1;
            return 0;
        }
        snprintf(err, err_size, "%s",
                 e == SSL_ERROR_ZERO_RETURN ? "connection closed by the broker" : tls_client_error(e));
        return -1;
    }
    for (;;) {
        ssize_t r = read(c->fd, buf, room);
        if (r > 0) {
            *empty = (size_t)r < room;
            return r;
        }
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            *empty = 1;
            return 0;
        }
        snprintf(err, err_size, "%s", r == 0 ? "connection closed by the broker" : strerror(errno));
        return -1;
    }
}

int mqc_tls_pending(const struct mqc *c)
{
    return c->ssl && c->state >= MQC_CONNACK && SSL_pending(c->ssl) > 0;
}

int mqc_keepalive(struct mqc *c, int64_t now_ms, int64_t keepalive_ms, int reading, char *err, size_t err_size)
{
    if (keepalive_ms <= 0 || c->state < MQC_CONNACK)
        return 0;
    if (reading && c->ping_ms && now_ms - c->ping_ms >= keepalive_ms) {
        snprintf(err, err_size, "no PINGRESP within the keep-alive");
        return -1;
    }
    if ((!c->ping_ms || !reading) && now_ms - c->last_out_ms >= keepalive_ms * 3 / 4) {
        uint8_t ping[2];
        mqw_encode_empty(ping, sizeof(ping), MQW_PINGREQ);
        if (mqc_append(c, ping, sizeof(ping)) != 0) {
            snprintf(err, err_size, "out of memory");
            return -1;
        }
        if (!c->ping_ms)
            c->ping_ms = now_ms;
    }
    return 0;
}

void mqc_tls_shutdown(struct mqc *c)
{
    if (c->ssl && c->fd >= 0 && c->state >= MQC_CONNACK)
        SSL_shutdown(c->ssl);
}

void mqc_close(struct mqc *c)
{
    if (c->ssl) {
        SSL_free(c->ssl);
        c->ssl = NULL;
    }
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    c->state = MQC_DOWN;
    c->out_off = 0;
    buf_reset(&c->out);
    c->tls_wait = 0;
    c->ping_ms = 0;
}
