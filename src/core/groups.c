/*
 * groups.c - consumer groups through librdkafka's admin API (groups.h).
 *
 * Every function sends one admin request on a queue of its own and waits for
 * its result event; nothing is cached, so each answer is the cluster's view
 * at the time of the call.
 */
#include "core/groups.h"
#include "core/clock.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Errors a group request meets while the group's coordinator is elected or
 * loads (a new cluster, a group never seen): asking again a little later
 * works. */
static int coordinator_busy(rd_kafka_resp_err_t e)
{
    return e == RD_KAFKA_RESP_ERR_NOT_COORDINATOR || e == RD_KAFKA_RESP_ERR_COORDINATOR_NOT_AVAILABLE ||
           e == RD_KAFKA_RESP_ERR_COORDINATOR_LOAD_IN_PROGRESS;
}

/* Runs one admin request already sent to q: waits for its result event.
 * Returns the event (the caller destroys it) or NULL with a reason in err
 * and the error in *code. */
rd_kafka_event_t *groups_admin_result(rd_kafka_queue_t *q, const char *what, int timeout_ms, rd_kafka_resp_err_t *code,
                                      char *err, size_t err_size)
{
    rd_kafka_event_t *ev = rd_kafka_queue_poll(q, timeout_ms + 2000);
    *code = RD_KAFKA_RESP_ERR_NO_ERROR;
    if (!ev) {
        *code = RD_KAFKA_RESP_ERR__TIMED_OUT;
        snprintf(err, err_size, "%s: no answer from Kafka within %d ms", what, timeout_ms);
        return NULL;
    }
    if (rd_kafka_event_error(ev)) {
        *code = rd_kafka_event_error(ev);
        snprintf(err, err_size, "%s: %s", what, rd_kafka_event_error_string(ev));
        rd_kafka_event_destroy(ev);
        return NULL;
    }
    return ev;
}

void groups_req_start(struct groups_req *r, rd_kafka_t *rk, rd_kafka_admin_op_t op, int timeout_ms)
{
    char why[256];
    r->q = rd_kafka_queue_new(rk);
    r->o = rd_kafka_AdminOptions_new(rk, op);
    rd_kafka_AdminOptions_set_request_timeout(r->o, timeout_ms, why, sizeof(why));
    r->ev = NULL;
}

void groups_req_release(struct groups_req *r)
{
    if (r->ev)
        rd_kafka_event_destroy(r->ev);
    rd_kafka_AdminOptions_destroy(r->o);
    rd_kafka_queue_destroy(r->q);
    r->ev = NULL;
    r->o = NULL;
    r->q = NULL;
}

/* After a failed group request: 1 (having waited a moment) when it is worth
 * asking again before deadline_ms, 0 when the failure is final. */
int groups_again(rd_kafka_resp_err_t code, int64_t deadline_ms)
{
    if (!coordinator_busy(code) || fs_mono_ms() + 300 > deadline_ms)
        return 0;
    struct timespec pause = {0, 300 * 1000 * 1000};
    nanosleep(&pause, NULL);
    return 1;
}

/* Kafka lists a member only once it has joined: one that joins during the
 * broker's initial rebalance delay shows as the group's state alone. */
int groups_members(rd_kafka_t *rk, const char *group, int timeout_ms, size_t *members, char *who, size_t who_size,
                   const char **live_state, rd_kafka_resp_err_t *code, char *err, size_t err_size)
{
    struct groups_req r;
    groups_req_start(&r, rk, RD_KAFKA_ADMIN_OP_DESCRIBECONSUMERGROUPS, timeout_ms);
    const char *groups[1] = {group};
    int rc = -1;

    *members = 0;
    *live_state = NULL;
    who[0] = '\0';
    rd_kafka_DescribeConsumerGroups(rk, groups, 1, r.o, r.q);
    if (!(r.ev = groups_admin_result(r.q, "DescribeConsumerGroups", timeout_ms, code, err, err_size)))
        goto out;
    size_t n;
    const rd_kafka_ConsumerGroupDescription_t **gd =
        rd_kafka_DescribeConsumerGroups_result_groups(rd_kafka_event_DescribeConsumerGroups_result(r.ev), &n);
    for (size_t i = 0; i < n; i++) {
        const rd_kafka_error_t *e = rd_kafka_ConsumerGroupDescription_error(gd[i]);
        if (e && rd_kafka_error_code(e) != RD_KAFKA_RESP_ERR_GROUP_ID_NOT_FOUND) {
            *code = rd_kafka_error_code(e);
            snprintf(err, err_size, "cannot describe group %s: %s", group, rd_kafka_error_string(e));
            goto out;
        }
        if (e)
            continue;
        rd_kafka_consumer_group_state_t st = rd_kafka_ConsumerGroupDescription_state(gd[i]);
        if (st == RD_KAFKA_CONSUMER_GROUP_STATE_PREPARING_REBALANCE ||
            st == RD_KAFKA_CONSUMER_GROUP_STATE_COMPLETING_REBALANCE || st == RD_KAFKA_CONSUMER_GROUP_STATE_STABLE)
            *live_state = rd_kafka_consumer_group_state_name(st);
        size_t m = rd_kafka_ConsumerGroupDescription_member_count(gd[i]);
        for (size_t j = 0; j < m; j++) {
            const rd_kafka_MemberDescription_t *md = rd_kafka_ConsumerGroupDescription_member(gd[i], j);
            size_t used = strlen(who);
            if (used + 1 < who_size)
                snprintf(who + used, who_size - used, "%s%s@%s", used ? ", " : "",
                         rd_kafka_MemberDescription_client_id(md), rd_kafka_MemberDescription_host(md));
        }
        *members += m;
    }
    rc = 0;
out:
    groups_req_release(&r);
    return rc;
}

/* The group's committed offsets in Kafka, every topic.  Returns a list the
 * caller destroys (possibly empty), or NULL with a reason in err. */
rd_kafka_topic_partition_list_t *groups_committed(rd_kafka_t *rk, const char *group, int timeout_ms,
                                                  rd_kafka_resp_err_t *code, char *err, size_t err_size)
{
    struct groups_req r;
    groups_req_start(&r, rk, RD_KAFKA_ADMIN_OP_LISTCONSUMERGROUPOFFSETS, timeout_ms);
    rd_kafka_ListConsumerGroupOffsets_t *req = rd_kafka_ListConsumerGroupOffsets_new(group, NULL);
    rd_kafka_topic_partition_list_t *out = NULL;

    rd_kafka_ListConsumerGroupOffsets(rk, &req, 1, r.o, r.q);
    if (!(r.ev = groups_admin_result(r.q, "ListConsumerGroupOffsets", timeout_ms, code, err, err_size)))
        goto out;
    size_t n;
    const rd_kafka_group_result_t **gr =
        rd_kafka_ListConsumerGroupOffsets_result_groups(rd_kafka_event_ListConsumerGroupOffsets_result(r.ev), &n);
    out = rd_kafka_topic_partition_list_new(16);
    for (size_t i = 0; i < n; i++) {
        const rd_kafka_error_t *e = rd_kafka_group_result_error(gr[i]);
        if (e) {
            *code = rd_kafka_error_code(e);
            snprintf(err, err_size, "cannot list the offsets of group %s: %s", group, rd_kafka_error_string(e));
            rd_kafka_topic_partition_list_destroy(out);
            out = NULL;
            goto out;
        }
        const rd_kafka_topic_partition_list_t *l = rd_kafka_group_result_partitions(gr[i]);
        for (int j = 0; l && j < l->cnt; j++)
            if (l->elems[j].err == RD_KAFKA_RESP_ERR_NO_ERROR && l->elems[j].offset >= 0)
                rd_kafka_topic_partition_list_add(out, l->elems[j].topic, l->elems[j].partition)->offset =
                    l->elems[j].offset;
    }
out:
    groups_req_release(&r);
    rd_kafka_ListConsumerGroupOffsets_destroy(req);
    return out;
}

int groups_list(rd_kafka_t *rk, int timeout_ms, char ***names, size_t *count, char *err, size_t err_size)
{
    struct groups_req r;
    groups_req_start(&r, rk, RD_KAFKA_ADMIN_OP_LISTCONSUMERGROUPS, timeout_ms);
    rd_kafka_resp_err_t code;
    int rc = -1;

    *names = NULL;
    *count = 0;
    rd_kafka_ListConsumerGroups(rk, r.o, r.q);
    if (!(r.ev = groups_admin_result(r.q, "ListConsumerGroups", timeout_ms, &code, err, err_size)))
        goto out;
    const rd_kafka_ListConsumerGroups_result_t *res = rd_kafka_event_ListConsumerGroups_result(r.ev);
    size_t nerr;
    const rd_kafka_error_t **errs = rd_kafka_ListConsumerGroups_result_errors(res, &nerr);
    if (nerr > 0) {
        snprintf(err, err_size, "cannot list the consumer groups: %s", rd_kafka_error_string(errs[0]));
        goto out;
    }
    size_t n;
    const rd_kafka_ConsumerGroupListing_t **gl = rd_kafka_ListConsumerGroups_result_valid(res, &n);
    if (n > 0 && !(*names = calloc(n, sizeof(**names)))) {
        snprintf(err, err_size, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        if (!((*names)[i] = strdup(rd_kafka_ConsumerGroupListing_group_id(gl[i])))) {
            snprintf(err, err_size, "out of memory");
            groups_names_free(*names, i);
            *names = NULL;
            goto out;
        }
    }
    *count = n;
    rc = 0;
out:
    groups_req_release(&r);
    return rc;
}

void groups_names_free(char **names, size_t count)
{
    for (size_t i = 0; i < count; i++)
        free(names[i]);
    free(names);
}
