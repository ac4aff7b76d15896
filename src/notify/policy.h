/*
 * policy.h - notify's delivery decisions, kept apart from the I/O so they
 * can be tested alone: how an HTTP attempt ended, when to try again, and
 * whether a destination takes one more record.
 *
 * Pure; any thread.
 */
#ifndef FS_NOTIFY_POLICY_H
#define FS_NOTIFY_POLICY_H

#include <stddef.h>
#include <stdint.h>

/* What an attempt's outcome means for the record. */
enum notify_verdict {
    NOTIFY_DELIVERED = 0, /* 2xx */
    NOTIFY_RETRY,         /* 5xx, 408, 429, no answer (connection refused, reset, timeout) */
    NOTIFY_PERMANENT,     /* any other status (4xx, 3xx, 1xx): the receiver refuses it, dead-letter */
};

/* http_status: the answer's status, or 0 when there was none (transport
 * error: the connection failed or timed out). */
enum notify_verdict notify_verdict_of(long http_status);

/* The wait before retry number attempt (1 = the first retry, after the
 * first failure): d = min(max_ms, base_ms * 2^(attempt-1)), then jitter
 * ("equal jitter"): d/2 + rnd % (d/2 + 1), so the wait lies in [d/2, d]
 * and destinations failing together do not retry in lockstep.  rnd is any
 * random 32-bit number. */
int64_t notify_backoff_ms(int base_ms, int max_ms, int attempt, uint32_t rnd);

/* Whether a destination holding depth records (waiting or in flight) takes
 * one more: 1 below its bound, 0 at or above it (the record is
 * dead-lettered for that destination with reason "queue_full"). */
int notify_queue_admits(size_t depth, size_t bound);

/* Whether a record that failed again at now_ms, first tried at first_ms,
 * may be retried (1) or has been failing too long (0: dead-lettered with
 * reason "retries_exhausted"). */
int notify_may_retry(int64_t first_ms, int64_t now_ms, int64_t retry_for_ms);

#endif
