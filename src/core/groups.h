/*
 * groups.h - consumer groups through librdkafka's admin API: which groups
 * exist, who their members are, and what they have committed.
 *
 * Shared by `fleetsync replay` (is the group stopped? where is it?) and
 * `fleetsync status` (members, positions and lag of every group).  Each
 * request is synchronous: it sends one admin request on its own queue and
 * waits for the answer, so any thread that owns rk may call these.
 */
#ifndef FS_GROUPS_H
#define FS_GROUPS_H

#include <librdkafka/rdkafka.h>
#include <stddef.h>
#include <stdint.h>

/* One admin request: its queue, its options and its result event.
 *
 *     struct groups_req r;
 *     groups_req_start(&r, rk, RD_KAFKA_ADMIN_OP_DELETEGROUPS, timeout_ms);
 *     rd_kafka_DeleteGroups(rk, &dg, 1, r.o, r.q);
 *     if (!(r.ev = groups_admin_result(r.q, "DeleteGroups", timeout_ms, &code, err, sizeof(err))))
 *         goto out;
 *     ...
 *   out:
 *     groups_req_release(&r);
 */
struct groups_req {
    rd_kafka_queue_t *q;
    rd_kafka_AdminOptions_t *o; /* op's options, the request timeout set */
    rd_kafka_event_t *ev;       /* NULL until the result came */
};

void groups_req_start(struct groups_req *r, rd_kafka_t *rk, rd_kafka_admin_op_t op, int timeout_ms);

/* Destroys the event (if any), the options and the queue. */
void groups_req_release(struct groups_req *r);

/* Waits for the result event of one admin request already sent to q.
 * Returns the event (the caller destroys it) or NULL with a reason in err
 * and the error in *code. */
rd_kafka_event_t *groups_admin_result(rd_kafka_queue_t *q, const char *what, int timeout_ms, rd_kafka_resp_err_t *code,
                                      char *err, size_t err_size);

/* After a failed group request: 1 (having waited a moment) when it is worth
 * asking again before deadline_ms (CLOCK_MONOTONIC ms), because the group's
 * coordinator is still being elected or loading; 0 when the failure is
 * final. */
int groups_again(rd_kafka_resp_err_t code, int64_t deadline_ms);

/* The requests below fail with a reason in err and the Kafka error in *code
 * (for groups_again()). */

/* Counts the group's members in *members and names them ("client@host, ...",
 * cut at who_size) in who.  *live_state is the group's state when it is one
 * of a running group (PreparingRebalance, CompletingRebalance, Stable: a
 * consumer joining during the broker's initial rebalance delay is not listed
 * as a member yet), else NULL.  A group Kafka does not know has 0 members.
 * Returns 0 or -1. */
int groups_members(rd_kafka_t *rk, const char *group, int timeout_ms, size_t *members, char *who, size_t who_size,
                   const char **live_state, rd_kafka_resp_err_t *code, char *err, size_t err_size);

/* The group's committed offsets in Kafka, every topic (partitions without a
 * commit are left out).  Returns a list the caller destroys (possibly
 * empty), or NULL. */
rd_kafka_topic_partition_list_t *groups_committed(rd_kafka_t *rk, const char *group, int timeout_ms,
                                                  rd_kafka_resp_err_t *code, char *err, size_t err_size);

/* The ids of every consumer group the cluster knows (any state).  On success
 * *names is an array of *count strings; the caller frees each and the array
 * (groups_names_free).  Returns 0, or -1 with a reason in err (a broker that
 * could not answer fails the whole listing). */
int groups_list(rd_kafka_t *rk, int timeout_ms, char ***names, size_t *count, char *err, size_t err_size);

void groups_names_free(char **names, size_t count);

#endif
