/*
 * mqttprobe.h - is an MQTT broker answering?  One blocking exchange on
 * FleetSync's own client connection (core/mqttconn.h): connect (TLS when
 * asked), CONNECT (MQTT 3.1.1, clean session), wait for the CONNACK, and
 * on acceptance DISCONNECT; all within one timeout.
 *
 * The probe reports the broker's answer, not a verdict: a broker that
 * refuses the login ("not authorised") has answered MQTT, and the caller
 * decides whether that counts as up (the services' health check does: it
 * probes anonymously so that it never takes over an account's session).
 * Any thread may call it; it blocks that thread only, and a write to a
 * closed peer raises no SIGPIPE.
 */
#ifndef FS_CORE_MQTTPROBE_H
#define FS_CORE_MQTTPROBE_H

#include <stddef.h>

/* CONNACK return codes of MQTT 3.1.1 that a probe tells apart. */
#define MQTTPROBE_ACCEPTED 0
#define MQTTPROBE_NOT_AUTHORISED 5

struct mqttprobe_target {
    const char *host; /* a name or an address */
    int port;
    const char *client_id; /* may be "" (the broker then assigns one) */
    const char *user;      /* NULL or "": anonymous */
    const char *pass;      /* NULL: none (used only with a user) */
    int tls;               /* TLS, verified against the system's CAs and host */
};

/* Connects to t and waits up to timeout_ms (at least 1) for the broker's
 * CONNACK, trying each address the host resolves to in turn.  Returns 0
 * with *return_code the CONNACK's return code (MQTTPROBE_ACCEPTED, then
 * DISCONNECT was sent), or -1 with a reason in err when no CONNACK came:
 * the name does not resolve, nothing listens, TLS fails, the peer does not
 * speak MQTT, or the time ran out.  Nothing stays open either way. */
int mqttprobe_connack(const struct mqttprobe_target *t, int timeout_ms, int *return_code, char *err, size_t err_size);

#endif
