/*
 * tlsclient.c - client TLS contexts and sessions (see tlsclient.h).
 */
#include "core/tlsclient.h"

#include <arpa/inet.h>
#include <errno.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <string.h>

SSL_CTX *tls_client_context(const char *cafile, const char *host, char *err, size_t err_size)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx) {
        snprintf(err, err_size, "cannot create a TLS context");
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    /* The output buffer may grow (move) between a partial write and its retry. */
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    int ok = cafile ? SSL_CTX_load_verify_locations(ctx, cafile, NULL) : SSL_CTX_set_default_verify_paths(ctx);
    if (ok != 1) {
        int sys = errno;
        unsigned long e = ERR_get_error();
        const char *why = e ? ERR_reason_error_string(e) : NULL;
        if (!why)
            why = sys ? strerror(sys) : "unknown error";
        snprintf(err, err_size, "cannot load CA certificates%s%s: %s", cafile ? " from " : "", cafile ? cafile : "",
                 why);
        SSL_CTX_free(ctx);
        return NULL;
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    X509_VERIFY_PARAM *param = SSL_CTX_get0_param(ctx);
    /* Without a name to check, any certificate the CA signed would pass:
     * a host that cannot be set fails the setup instead. */
    if (!host || !*host) {
        snprintf(err, err_size, "no host name to verify the server's certificate against");
        SSL_CTX_free(ctx);
        return NULL;
    }
    if (X509_VERIFY_PARAM_set1_ip_asc(param, host) != 1) {
        X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
        if (X509_VERIFY_PARAM_set1_host(param, host, 0) != 1) {
            unsigned long e = ERR_get_error();
            snprintf(err, err_size, "cannot set '%s' as the name the server's certificate must have: %s", host,
                     e && ERR_reason_error_string(e) ? ERR_reason_error_string(e) : "out of memory");
            SSL_CTX_free(ctx);
            return NULL;
        }
    }
    return ctx;
}

SSL *tls_client_session(SSL_CTX *ctx, int fd, const char *host)
{
    SSL *ssl = SSL_new(ctx);
    if (!ssl)
        return NULL;
    if (SSL_set_fd(ssl, fd) != 1) {
        SSL_free(ssl);
        return NULL;
    }
    struct in6_addr a6;
    if (inet_pton(AF_INET, host, &a6) != 1 && inet_pton(AF_INET6, host, &a6) != 1)
        SSL_set_tlsext_host_name(ssl, host); /* SNI: names only */
    SSL_set_connect_state(ssl);
    return ssl;
}

const char *tls_client_error(int ssl_error)
{
    unsigned long le = ERR_peek_last_error();
    if (le && ERR_reason_error_string(le))
        return ERR_reason_error_string(le);
    if (ssl_error == SSL_ERROR_SYSCALL && errno)
        return strerror(errno);
    return "closed";
}
