/*
 * netaddr.h - which host names and addresses are this machine's loopback:
 * the dashboard decides by it whether a listen address, a client's address
 * and a request's Host header stay on this machine.
 *
 * Pure; any thread.
 */
#ifndef FS_CORE_NETADDR_H
#define FS_CORE_NETADDR_H

/* 1 for "localhost" (any case), "::1", "[::1]", a dotted quad 127.a.b.c
 * (each part 0..255, at most three digits) and the same quad mapped into
 * IPv6 ("::ffff:127.0.0.1", as a dual-stack socket reports a peer); 0 for
 * anything else, NULL included.  No port: the caller strips it. */
int netaddr_loopback(const char *host);

#endif
