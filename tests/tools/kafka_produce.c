/*
 * kafka_produce [--rate N] BROKERS TOPIC FILE - a test tool: produces FILE's
 * lines "TS_MS|KEY|VALUE" to TOPIC, in order, each record with the Kafka
 * timestamp TS_MS (CreateTime); TS_MS 0 is the time the record is produced.
 *
 * --rate N paces the lines at N per second, line i due i/N s after the
 * first (a steady stream: benchmarks and fault suites that produce while
 * something is down), each sent as it is due (linger.ms 0), so that its
 * timestamp (TS_MS 0) is when it left for Kafka.  FILE may be "-" (stdin).
 *
 * kcat cannot set a record's timestamp, and the bridge stamps each record
 * with the time it received the reading.  Suites whose results depend on
 * record timestamps (billing's recomputed days) produce with this tool so that
 * they do not depend on when they run.  Idempotent producer, acks=all, as the
 * bridge.  Exit status 0 when every record was delivered, 1 when one was not
 * (or a line is malformed), 2 on a usage error.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <librdkafka/rdkafka.h>

static int failed;

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    (void)rk;
    (void)opaque;
    if (m->err) {
        if (!failed++)
            fprintf(stderr, "kafka_produce: a record was not delivered: %s\n", rd_kafka_err2str(m->err));
    }
}

static int set(rd_kafka_conf_t *conf, const char *name, const char *value)
{
    char err[256];
    if (rd_kafka_conf_set(conf, name, value, err, sizeof(err)) != RD_KAFKA_CONF_OK) {
        fprintf(stderr, "kafka_produce: %s=%s: %s\n", name, value, err);
        return -1;
    }
    return 0;
}

/* Splits "TS_MS|KEY|VALUE" in place; 0 on success. */
static int split(char *line, int64_t *ts, char **key, size_t *key_len, char **value)
{
    char *end, *bar1 = strchr(line, '|'), *bar2;
    if (!bar1 || !(bar2 = strchr(bar1 + 1, '|')))
        return -1;
    errno = 0;
    long long v = strtoll(line, &end, 10);
    if (errno || end != bar1 || v < 0)
        return -1;
    *ts = v;
    *key = bar1 + 1;
    *key_len = (size_t)(bar2 - bar1 - 1);
    *value = bar2 + 1;
    return 0;
}

/* Waits (serving delivery reports) until line i of a stream of rate per
 * second that began at start is due. */
static void wait_due(rd_kafka_t *rk, const struct timespec *start, long i, long rate)
{
    long long due_ns = (long long)start->tv_sec * 1000000000LL + start->tv_nsec + (long long)i * 1000000000LL / rate;
    for (;;) {
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        long long left_ms = (due_ns - ((long long)now.tv_sec * 1000000000LL + now.tv_nsec)) / 1000000;
        if (left_ms <= 0)
            break;
        if (left_ms > 1) {
            rd_kafka_poll(rk, (int)(left_ms - 1));
            continue;
        }
        struct timespec due = {.tv_sec = (time_t)(due_ns / 1000000000LL), .tv_nsec = (long)(due_ns % 1000000000LL)};
        clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &due, NULL);
        break;
    }
}

int main(int argc, char **argv)
{
    long rate = 0;
    if (argc == 6 && strcmp(argv[1], "--rate") == 0) {
        char *end;
        rate = strtol(argv[2], &end, 10);
        if (*end || rate < 1 || rate > 1000000) {
            fprintf(stderr, "kafka_produce: --rate %s: not a number of records per second (1 to 1000000)\n", argv[2]);
            return 2;
        }
        argv += 2;
        argc -= 2;
    }
    if (argc != 4) {
        fprintf(stderr, "usage: kafka_produce [--rate N] BROKERS TOPIC FILE  (FILE: lines TS_MS|KEY|VALUE, - for "
                        "stdin; TS_MS 0: now)\n");
        return 2;
    }
    FILE *f = strcmp(argv[3], "-") == 0 ? stdin : fopen(argv[3], "r");
    if (!f) {
        fprintf(stderr, "kafka_produce: %s: %s\n", argv[3], strerror(errno));
        return 1;
    }
    char err[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (set(conf, "bootstrap.servers", argv[1]) || set(conf, "enable.idempotence", "true") ||
        set(conf, "acks", "all") || set(conf, "linger.ms", rate ? "0" : "5") || set(conf, "log_level", "3")) {
        rd_kafka_conf_destroy(conf);
        fclose(f);
        return 1;
    }
    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
    if (!rk) {
        fprintf(stderr, "kafka_produce: %s\n", err);
        rd_kafka_conf_destroy(conf);
        fclose(f);
        return 1;
    }

    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    long n = 0, bad = 0;
    struct timespec start;
    clock_gettime(CLOCK_MONOTONIC, &start);
    while ((len = getline(&line, &cap, f)) >= 0) {
        if (len > 0 && line[len - 1] == '\n')
            line[--len] = '\0';
        if (len == 0)
            continue;
        int64_t ts;
        char *key, *value;
        size_t key_len;
        if (split(line, &ts, &key, &key_len, &value) != 0) {
            if (!bad++)
                fprintf(stderr, "kafka_produce: line %ld is not TS_MS|KEY|VALUE\n", n + bad);
            continue;
        }
        if (rate)
            wait_due(rk, &start, n, rate);
        rd_kafka_resp_err_t e;
        while ((e = rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(argv[2]), RD_KAFKA_V_KEY(key, key_len),
                                      RD_KAFKA_V_VALUE(value, strlen(value)), RD_KAFKA_V_TIMESTAMP(ts),
                                      RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END)) ==
               RD_KAFKA_RESP_ERR__QUEUE_FULL)
            rd_kafka_poll(rk, 100);
        if (e) {
            fprintf(stderr, "kafka_produce: %s\n", rd_kafka_err2str(e));
            failed++;
            break;
        }
        n++;
        rd_kafka_poll(rk, 0);
    }
    free(line);
    fclose(f);
    int left = rd_kafka_flush(rk, 30000) == RD_KAFKA_RESP_ERR_NO_ERROR ? 0 : rd_kafka_outq_len(rk);
    rd_kafka_destroy(rk);
    if (left || failed || bad) {
        fprintf(stderr, "kafka_produce: %d of %ld records not delivered, %ld malformed lines\n", left + failed, n, bad);
        return 1;
    }
    return 0;
}
