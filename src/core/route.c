/*
 * route.c - MQTT message -> Kafka record, shared by the bridge and the
 * ingest (see route.h).
 */
#include "core/route.h"

#include "core/telemetry.h"

#include <stdio.h>
#include <string.h>

static void route_dlq(struct route *out, const char *topic, const void *payload, size_t payload_len, enum tm_reason why,
                      const char *detail)
{
    out->dest = ROUTE_DLQ;
    out->key = topic;
    out->key_len = strlen(topic);
    out->value = payload;
    out->value_len = payload_len < ROUTE_MAX_KEPT ? payload_len : ROUTE_MAX_KEPT;
    out->error = tm_reason_name(why);
    snprintf(out->error_detail, sizeof(out->error_detail), "%s", detail ? detail : "");
}

/* A record built in the route's own key and value buffers. */
static void route_own(struct route *out, enum route_dest dest, size_t value_len)
{
    out->dest = dest;
    out->key = out->keybuf;
    out->key_len = strlen(out->keybuf);
    out->value = out->valbuf;
    out->value_len = value_len;
    out->error = NULL;
}

void route_message(const char *topic, const void *payload, size_t payload_len, int64_t received_ms, struct route *out)
{
    char id[TM_TRUCK_ID_MAX + 1];
    enum tm_topic_kind kind = tm_topic_parse(topic, id, sizeof(id));

    if (kind == TM_TOPIC_TELEMETRY) {
        struct tm_reading r;
        char detail[64] = "";
        int n;
        enum tm_reason why = tm_normalize(payload, payload_len, received_ms, id, &r, out->valbuf, sizeof(out->valbuf),
                                          &n, detail, sizeof(detail));
        if (why != TM_OK) {
            route_dlq(out, topic, payload, payload_len, why, detail);
            return;
        }
        size_t kl = strlen(r.truck_id); /* as snprintf "%s" would, without its cost per message */
        if (kl >= sizeof(out->keybuf))
            kl = sizeof(out->keybuf) - 1;
        memcpy(out->keybuf, r.truck_id, kl);
        out->keybuf[kl] = '\0';
        tm_reading_release(&r);
        if (n < 0) {
            route_dlq(out, topic, payload, payload_len, TM_TOO_LARGE, "normalized");
            return;
        }
        route_own(out, ROUTE_TELEMETRY, (size_t)n);
        return;
    }
    if (kind == TM_TOPIC_TRUCK_STATUS || kind == TM_TOPIC_GATEWAY_STATUS) {
        const char *status = NULL;
        if (payload_len == 6 && memcmp(payload, "online", 6) == 0)
            status = "online";
        else if (payload_len == 7 && memcmp(payload, "offline", 7) == 0)
            status = "offline";
        if (!status) {
            /* An empty payload clears a retained message: still not presence. */
            route_dlq(out, topic, payload, payload_len, payload_len ? TM_OUT_OF_RANGE : TM_MISSING_FIELD, "status");
            return;
        }
        snprintf(out->keybuf, sizeof(out->keybuf), "%s", id);
        int n =
            snprintf(out->valbuf, sizeof(out->valbuf), "{\"id\":\"%s\",\"kind\":\"%s\",\"status\":\"%s\",\"ts\":%lld}",
                     id, kind == TM_TOPIC_TRUCK_STATUS ? "truck" : "gateway", status, (long long)received_ms);
        route_own(out, ROUTE_STATUS, (size_t)n);
        return;
    }
    route_dlq(out, topic, payload, payload_len, TM_BAD_TRUCK_ID, "topic");
}

rd_kafka_resp_err_t route_produce_rkt(rd_kafka_t *rk, rd_kafka_topic_t *const rkts[3], const struct route *r,
                                      const char *topic, int64_t received_ms, void *opaque)
{
    if (r->dest == ROUTE_DLQ) { /* rare: the headers' way, by name */
        const char *names[3] = {NULL, NULL, rd_kafka_topic_name(rkts[ROUTE_DLQ])};
        return route_produce(rk, names, r, topic, received_ms, opaque);
    }
    return rd_kafka_producev(rk, RD_KAFKA_V_RKT(rkts[r->dest]), RD_KAFKA_V_KEY(r->key, r->key_len),
                             RD_KAFKA_V_VALUE((void *)r->value, r->value_len), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                             RD_KAFKA_V_TIMESTAMP(received_ms), RD_KAFKA_V_OPAQUE(opaque), RD_KAFKA_V_END);
}

rd_kafka_resp_err_t route_produce(rd_kafka_t *rk, const char *const topics[3], const struct route *r, const char *topic,
                                  int64_t received_ms, void *opaque)
{
    rd_kafka_resp_err_t e;
    if (r->dest != ROUTE_DLQ)
        return rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topics[r->dest]), RD_KAFKA_V_KEY(r->key, r->key_len),
                                 RD_KAFKA_V_VALUE((void *)r->value, r->value_len),
                                 RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_TIMESTAMP(received_ms),
                                 RD_KAFKA_V_OPAQUE(opaque), RD_KAFKA_V_END);
    char received[32];
    snprintf(received, sizeof(received), "%lld", (long long)received_ms);
    rd_kafka_headers_t *hdrs = rd_kafka_headers_new(4);
    rd_kafka_header_add(hdrs, "error", -1, r->error, -1);
    rd_kafka_header_add(hdrs, "error_detail", -1, r->error_detail, -1);
    rd_kafka_header_add(hdrs, "mqtt_topic", -1, topic, -1);
    rd_kafka_header_add(hdrs, "received_ms", -1, received, -1);
    e = rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topics[r->dest]), RD_KAFKA_V_KEY(r->key, r->key_len),
                          RD_KAFKA_V_VALUE((void *)r->value, r->value_len), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                          RD_KAFKA_V_TIMESTAMP(received_ms), RD_KAFKA_V_OPAQUE(opaque), RD_KAFKA_V_HEADERS(hdrs),
                          RD_KAFKA_V_END);
    if (e)
        rd_kafka_headers_destroy(hdrs);
    return e;
}
