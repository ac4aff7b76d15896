/*
 * sign.h - the headers that let a webhook receiver trust a delivery
 * (docs/notify.md, "Checking a signature"):
 *
 *   X-FleetSync-Signature: t=<unix ms>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>
 *   X-FleetSync-Idempotency-Key: <alert_id>:<state>
 *
 * The timestamp is signed with the body, so a receiver that refuses old
 * timestamps also refuses a replayed request.
 *
 * Pure (OpenSSL's HMAC); any thread.
 */
#ifndef FS_NOTIFY_SIGN_H
#define FS_NOTIFY_SIGN_H

#include <stddef.h>
#include <stdint.h>

/* "t=...,v1=" + 64 hex digits + NUL, with room for any int64 */
#define NOTIFY_SIG_MAX (3 + 20 + 4 + 64 + 1)

/* Writes the signature header's value for body signed at t_ms into out
 * (NOTIFY_SIG_MAX bytes).  Returns 0, or -1 if OpenSSL failed. */
int notify_sign(const char *secret, size_t secret_len, int64_t t_ms, const char *body, size_t body_len,
                char out[NOTIFY_SIG_MAX]);

#endif
