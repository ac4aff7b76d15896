/*
 * deliver.h - notify's HTTP delivery engine: per destination a bounded
 * queue split into lanes, each lane one request at a time, every request
 * driven by one libcurl multi handle in the caller's thread.
 *
 * A job's life:
 *
 *   deliver_submit ──> WAITING in lane hash(order key) % parallel of its destination
 *   WAITING ──(head of its lane, its time come: deliver_step)──> IN FLIGHT
 *   IN FLIGHT ──2xx──> done(delivered)
 *             ──5xx, 408, 429, no answer──> WAITING again after a backoff with
 *                            jitter (or the answer's Retry-After, up to
 *                            backoff_max_ms); done(dead, "retries_exhausted") once
 *                            the job has failed for retry_for_s (never while stopping)
 *             ──any other status──> done(dead, "refused")
 *
 * Invariants: only a lane's head is in flight, and one order key (a truck)
 * always maps to one lane of a destination, so a key's jobs reach a
 * destination in the order they were submitted, each after the one before
 * it is done.  A destination holds at most its queue bound of jobs (waiting
 * or in flight): deliver_submit refuses the one beyond.  Destinations share
 * nothing but the thread: a destination that fails holds up only its own
 * lanes.
 *
 * Each request: POST of the body to the destination's URL with
 *   Content-Type: application/json
 *   X-FleetSync-Signature: t=<unix ms>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>  (notify/sign.h)
 *   X-FleetSync-Idempotency-Key: <the job's key>
 * http and https only, redirects not followed, the destination's timeout
 * over the whole attempt.
 *
 * One thread (the caller's) for every function.
 */
#ifndef FS_NOTIFY_DELIVER_H
#define FS_NOTIFY_DELIVER_H

#include "notify/routes.h"

#include <stddef.h>
#include <stdint.h>

struct metrics;
struct deliver;

/* Why a job was given up (a dead letter's "error" header). */
enum deliver_reason { DELIVER_QUEUE_FULL, DELIVER_REFUSED, DELIVER_RETRIES_EXHAUSTED, DELIVER_REASONS };
const char *deliver_reason_name(enum deliver_reason r);

/* What a job carries.  Every pointer must stay valid until the job is done
 * or dropped (the callbacks below say when). */
struct deliver_item {
    const char *body;
    size_t body_len;
    const char *key;   /* X-FleetSync-Idempotency-Key */
    const char *order; /* jobs with the same order key keep their order */
    void *ud;          /* the caller's, handed back */
};

struct deliver_ops {
    /* A job is done: delivered (2xx), or given up with reason and detail
     * ("HTTP 404", curl's message); attempts made.  Called once per
     * submitted job that is not dropped. */
    void (*done)(void *ctx, int dest, void *ud, int delivered, enum deliver_reason reason, const char *detail,
                 int attempts);
    /* A job was dropped without an outcome (deliver_drop, deliver_abandon). */
    void (*dropped)(void *ctx, void *ud);
    /* May be NULL.  Asked when an attempt ends: 0 drops the job (its record
     * belongs to someone else now), 1 goes on. */
    int (*wanted)(void *ctx, void *ud);
};

/* A new engine for r's destinations (r must outlive it), registering its
 * per destination series in m (required; m must outlive it).  NULL on out
 * of memory.  curl_global_init() must have been called. */
struct deliver *deliver_new(const struct notify_routes *r, struct metrics *m, const struct deliver_ops *ops, void *ctx);

/* Queues it for destination dest.  Returns 0, 1 when the destination is at
 * its queue bound (nothing queued: the caller dead-letters it with
 * DELIVER_QUEUE_FULL), -1 on out of memory. */
int deliver_submit(struct deliver *d, int dest, const struct deliver_item *it);

/* Starts what is due, moves transfers on, reports what ended, then waits
 * for network activity or the next due retry, at most max_wait_ms. */
void deliver_step(struct deliver *d, int max_wait_ms);

/* Ends deliver_step's wait at once (or the next one's, when none is
 * waiting): something else has work, such as a Kafka record to read.  The
 * only function any thread may call (curl_multi_wakeup). */
void deliver_wakeup(struct deliver *d);

/* Jobs waiting or in flight: of destination dest, or of all (dest < 0). */
size_t deliver_queued(const struct deliver *d, int dest);

/* From now on a failed attempt is never given up (dead-lettered): it waits
 * for a restart instead. */
void deliver_set_stopping(struct deliver *d);

/* Drops the waiting (not in flight) jobs for which pred(ud, arg) is 1. */
void deliver_drop(struct deliver *d, int (*pred)(void *ud, void *arg), void *arg);

/* Drops every job, in flight or not (each: dropped). */
void deliver_abandon(struct deliver *d);

/* Abandons and frees. */
void deliver_free(struct deliver *d);

/* Totals over every destination, for the stop's log line. */
double deliver_total_delivered(const struct deliver *d);
double deliver_total_dead(const struct deliver *d);

/* Updates the queue-depth gauges. */
void deliver_update_metrics(struct deliver *d);

#endif
