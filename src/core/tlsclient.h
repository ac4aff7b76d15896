/*
 * tlsclient.h - the client side of TLS for FleetSync's own MQTT clients
 * (the simulator's connection pool and the bridge's subscriber), on OpenSSL.
 */
#ifndef FS_CORE_TLSCLIENT_H
#define FS_CORE_TLSCLIENT_H

#include <openssl/ssl.h>
#include <stddef.h>

/* A client context that verifies the peer against cafile (NULL: the
 * system's CAs) and against host, a name or an IP address; TLS 1.2 or
 * later.  Returns NULL with a reason in err, also when host is empty or
 * cannot be set as the name to check (a context that checks no name would
 * accept any certificate the CA signed). */
SSL_CTX *tls_client_context(const char *cafile, const char *host, char *err, size_t err_size);

/* A TLS session over the connected socket fd, in connect state, with SNI
 * when host is a name.  Returns NULL if OpenSSL cannot make one. */
SSL *tls_client_session(SSL_CTX *ctx, int fd, const char *host);

/* Why the last TLS call failed: OpenSSL's reason, else errno's, else
 * "closed". */
const char *tls_client_error(int ssl_error);

#endif
