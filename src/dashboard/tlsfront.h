/*
 * tlsfront.h - HTTPS for the dashboard: a TLS listener in front of civetweb.
 *
 * Debian's civetweb (1.15) loads OpenSSL at run time by the 1.1 names and
 * does not find SSL_get_peer_certificate in OpenSSL 3 (a macro there): its
 * HTTPS worker then calls a null pointer on the first connection.  So the
 * dashboard terminates TLS itself, with the OpenSSL it links: the front
 * accepts on the public --listen address, completes the handshake and
 * forwards the bytes, both ways, to civetweb on an ephemeral loopback port.
 *
 * The first line of each connection (civetweb closes a connection after
 * one request, so that is its only request, or the WebSocket upgrade) is
 * followed by "X-FleetSync-Peer: TOKEN ADDR": the client's address, vouched
 * for by a random TOKEN only this process knows.  The server trusts the
 * address only with that token and refuses requests without it (they did
 * not come through TLS).  Since the line comes first, a header of the same
 * name sent by the client is never the one read.
 *
 * Threads: one accepting thread and one thread per connection (at most
 * max_conns; more are closed at once), each the only user of its SSL.
 */
#ifndef FS_DASHBOARD_TLSFRONT_H
#define FS_DASHBOARD_TLSFRONT_H

#include <openssl/ssl.h>
#include <stddef.h>

#define DS_PEER_HEADER "X-FleetSync-Peer"
#define DS_PEER_TOKEN_LEN 32 /* hex characters */

struct ds_tlsfront;

/* A server context (TLS 1.2 or newer) with the certificate chain and key of
 * two PEM files.  Returns NULL with a reason in err (which file, and
 * OpenSSL's reason). */
SSL_CTX *ds_tls_server_context(const char *cert, const char *key, char *err, size_t err_size);

/* Listens on host:port and forwards every connection to 127.0.0.1:
 * backend_port with the peer line carrying token.  ctx is owned by the
 * front from then on (also on failure).  Returns the front, or NULL with a
 * reason in err. */
struct ds_tlsfront *ds_tlsfront_start(SSL_CTX *ctx, const char *host, int port, int backend_port, const char *token,
                                      int max_conns, char *err, size_t err_size);

/* Stops accepting, ends every connection and frees the front; NULL is fine. */
void ds_tlsfront_stop(struct ds_tlsfront *f);

#endif
