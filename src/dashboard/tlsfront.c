/*
 * tlsfront.c - the dashboard's TLS listener in front of civetweb (see
 * tlsfront.h).
 *
 * A connection: accepted (or closed at once past max_conns), handshake and
 * the request line within the timeouts, the peer line added, then a pump
 * between the TLS client and the loopback backend until either side closes
 * or the front stops.  Every connection thread is counted; stop waits for
 * the count to reach zero before freeing the front.
 */
#include "dashboard/tlsfront.h"

#include "core/log.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#define HEAD_MAX 16384 /* the request line must come within it (civetweb's max_request_size) */
#define IO_TIMEOUT 10  /* seconds a blocked read or write of a client may take */
#define POLL_MS 500    /* how often a pump looks at the stop flag */

struct ds_tlsfront {
    SSL_CTX *ctx;
    int listen_fd, backend_port, max_conns;
    char token[DS_PEER_TOKEN_LEN + 1];
    pthread_t acceptor;
    int acceptor_started;
    atomic_int stopping;
    pthread_mutex_t lock;
    pthread_cond_t idle;
    int conns; /* connection threads alive (under lock) */
};

struct front_conn {
    struct ds_tlsfront *f;
    int fd;
    char addr[64];
};

static const char *ssl_reason(void)
{
    unsigned long e = ERR_get_error();
    const char *why = e ? ERR_reason_error_string(e) : NULL;
    return why ? why : "unknown error";
}

SSL_CTX *ds_tls_server_context(const char *cert, const char *key, char *err, size_t err_size)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx) {
        snprintf(err, err_size, "cannot create a TLS context: %s", ssl_reason());
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
        snprintf(err, err_size, "cannot load the TLS certificate %s: %s", cert, ssl_reason());
        goto fail;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
        snprintf(err, err_size, "cannot load the TLS key %s: %s", key, ssl_reason());
        goto fail;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        snprintf(err, err_size, "the TLS key %s does not belong to the certificate %s", key, cert);
        goto fail;
    }
    return ctx;
fail:
    SSL_CTX_free(ctx);
    return NULL;
}

static int write_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static int backend_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in a = {
        .sin_family = AF_INET, .sin_port = htons((uint16_t)port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Bytes from the client to the backend until either closes or the front
 * stops; the request line first, with the peer line after it. */
static void serve(struct front_conn *c, SSL *ssl)
{
    struct ds_tlsfront *f = c->f;
    char *head = malloc(HEAD_MAX), *buf = malloc(HEAD_MAX);
    int be = -1;
    if (!head || !buf)
        goto out;
    if (SSL_accept(ssl) != 1) {
        log_debug("TLS handshake with %s failed: %s", c->addr, ssl_reason());
        goto out;
    }
    size_t n = 0;
    char *eol = NULL;
    while (!eol && n < HEAD_MAX) {
        int r = SSL_read(ssl, head + n, (int)(HEAD_MAX - n));
        if (r <= 0)
            goto out;
        n += (size_t)r;
        eol = memmem(head, n, "\r\n", 2);
    }
    if (!eol)
        goto out; /* a request line over 16 KiB: civetweb would refuse it too */
    if ((be = backend_connect(f->backend_port)) < 0) {
        log_warn("cannot reach the dashboard's HTTP server on 127.0.0.1:%d: %s", f->backend_port, strerror(errno));
        goto out;
    }
    char peer[160];
    int pn = snprintf(peer, sizeof(peer), DS_PEER_HEADER ": %s %s\r\n", f->token, c->addr);
    size_t line = (size_t)(eol + 2 - head);
    if (write_all(be, head, line) != 0 || write_all(be, peer, (size_t)pn) != 0 ||
        write_all(be, head + line, n - line) != 0)
        goto out;
    while (!atomic_load(&f->stopping)) {
        struct pollfd p[2] = {{.fd = c->fd, .events = POLLIN}, {.fd = be, .events = POLLIN}};
        int r = SSL_pending(ssl) > 0 ? 1 : poll(p, 2, POLL_MS);
        if (r < 0 && errno != EINTR)
            break;
        if (r <= 0)
            continue;
        if (SSL_pending(ssl) > 0 || (p[0].revents & (POLLIN | POLLHUP | POLLERR))) {
            int k = SSL_read(ssl, buf, HEAD_MAX);
            if (k <= 0 || write_all(be, buf, (size_t)k) != 0)
                break;
        }
        if (p[1].revents & (POLLIN | POLLHUP | POLLERR)) {
            ssize_t k = recv(be, buf, HEAD_MAX, 0);
            if (k <= 0 || SSL_write(ssl, buf, (int)k) != (int)k)
                break;
        }
    }
    SSL_shutdown(ssl);
out:
    if (be >= 0)
        close(be);
    free(head);
    free(buf);
}

static void *conn_main(void *arg)
{
    struct front_conn *c = arg;
    struct ds_tlsfront *f = c->f;
    struct timeval tv = {.tv_sec = IO_TIMEOUT};
    setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    SSL *ssl = SSL_new(f->ctx);
    if (ssl && SSL_set_fd(ssl, c->fd) == 1)
        serve(c, ssl);
    SSL_free(ssl);
    close(c->fd);
    free(c);
    pthread_mutex_lock(&f->lock);
    if (--f->conns == 0)
        pthread_cond_broadcast(&f->idle);
    pthread_mutex_unlock(&f->lock);
    return NULL;
}

static void *acceptor_main(void *arg)
{
    struct ds_tlsfront *f = arg;
    while (!atomic_load(&f->stopping)) {
        struct pollfd p = {.fd = f->listen_fd, .events = POLLIN};
        if (poll(&p, 1, POLL_MS) <= 0)
            continue;
        struct sockaddr_storage sa;
        socklen_t sl = sizeof(sa);
        int fd = accept4(f->listen_fd, (struct sockaddr *)&sa, &sl, SOCK_CLOEXEC);
        if (fd < 0)
            continue;
        struct front_conn *c = calloc(1, sizeof(*c));
        pthread_mutex_lock(&f->lock);
        int full = f->conns >= f->max_conns;
        if (!full && c)
            f->conns++;
        pthread_mutex_unlock(&f->lock);
        if (full || !c) {
            if (full)
                log_warn("HTTPS connection refused: %d connections already", f->max_conns);
            free(c);
            close(fd);
            continue;
        }
        c->f = f;
        c->fd = fd;
        if (getnameinfo((struct sockaddr *)&sa, sl, c->addr, sizeof(c->addr), NULL, 0, NI_NUMERICHOST) != 0)
            snprintf(c->addr, sizeof(c->addr), "unknown");
        pthread_t t;
        pthread_attr_t at;
        pthread_attr_init(&at);
        pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
        if (pthread_create(&t, &at, conn_main, c) != 0) {
            close(fd);
            free(c);
            pthread_mutex_lock(&f->lock);
            if (--f->conns == 0)
                pthread_cond_broadcast(&f->idle);
            pthread_mutex_unlock(&f->lock);
        }
        pthread_attr_destroy(&at);
    }
    return NULL;
}

static int listen_on(const char *host, int port, char *err, size_t err_size)
{
    char h[256], ps[16];
    size_t hl = strlen(host);
    if (hl >= 2 && host[0] == '[' && host[hl - 1] == ']')
        snprintf(h, sizeof(h), "%.*s", (int)(hl - 2), host + 1);
    else
        snprintf(h, sizeof(h), "%s", host);
    snprintf(ps, sizeof(ps), "%d", port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE}, *res;
    int e = getaddrinfo(h, ps, &hints, &res);
    if (e != 0) {
        snprintf(err, err_size, "cannot listen on %s:%d: %s", host, port, gai_strerror(e));
        return -1;
    }
    int fd = -1, why = 0;
    for (struct addrinfo *a = res; a && fd < 0; a = a->ai_next) {
        fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
        if (fd < 0) {
            why = errno;
            continue;
        }
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        if (bind(fd, a->ai_addr, a->ai_addrlen) != 0 || listen(fd, 128) != 0) {
            why = errno;
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(res);
    if (fd < 0)
        snprintf(err, err_size, "cannot listen on %s:%d: %s", host, port, strerror(why));
    return fd;
}

struct ds_tlsfront *ds_tlsfront_start(SSL_CTX *ctx, const char *host, int port, int backend_port, const char *token,
                                      int max_conns, char *err, size_t err_size)
{
    struct ds_tlsfront *f = calloc(1, sizeof(*f));
    if (!f) {
        snprintf(err, err_size, "out of memory");
        SSL_CTX_free(ctx);
        return NULL;
    }
    f->ctx = ctx;
    f->listen_fd = -1;
    f->backend_port = backend_port;
    f->max_conns = max_conns;
    snprintf(f->token, sizeof(f->token), "%s", token);
    pthread_mutex_init(&f->lock, NULL);
    pthread_cond_init(&f->idle, NULL);
    if ((f->listen_fd = listen_on(host, port, err, err_size)) < 0)
        goto fail;
    if (pthread_create(&f->acceptor, NULL, acceptor_main, f) != 0) {
        snprintf(err, err_size, "cannot start the TLS listener's thread");
        goto fail;
    }
    f->acceptor_started = 1;
    return f;
fail:
    ds_tlsfront_stop(f);
    return NULL;
}

void ds_tlsfront_stop(struct ds_tlsfront *f)
{
    if (!f)
        return;
    atomic_store(&f->stopping, 1);
    if (f->acceptor_started)
        pthread_join(f->acceptor, NULL);
    pthread_mutex_lock(&f->lock);
    while (f->conns > 0) /* each pump sees the flag within POLL_MS, a blocked TLS call within IO_TIMEOUT */
        pthread_cond_wait(&f->idle, &f->lock);
    pthread_mutex_unlock(&f->lock);
    if (f->listen_fd >= 0)
        close(f->listen_fd);
    SSL_CTX_free(f->ctx);
    pthread_mutex_destroy(&f->lock);
    pthread_cond_destroy(&f->idle);
    explicit_bzero(f->token, sizeof(f->token));
    free(f);
}
