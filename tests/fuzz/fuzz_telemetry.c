/*
 * fuzz_telemetry.c - libFuzzer target for the telemetry parser and the MQTT
 * topic parser.
 *
 * Properties checked on every input (abort() on violation):
 *   - tm_parse never crashes, leaks or reads out of bounds (ASan/UBSan);
 *   - an accepted reading's normalized form fits in TM_MAX_PAYLOAD + 1
 *     bytes, is accepted again and normalizes to the same bytes;
 *   - it is accepted on its own truck's telemetry topic too;
 *   - the detail is always NUL-terminated printable ASCII;
 *   - tm_parse (with its fast path for flat objects of known fields) gives
 *     the same reason, detail and normalized reading as jansson alone
 *     (tm_parse_reference);
 *   - tm_normalize (parse and normalize in one pass, numbers copied from the
 *     payload where they are plain) gives that reason and detail too, and
 *     exactly tm_serialize()'s bytes;
 *   - a topic tm_topic_parse accepts is rebuilt exactly from its kind and id,
 *     and its id obeys the truck_id rule.
 * now_ms is fixed so that a crash reproduces.
 */
#include "core/telemetry.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FUZZ_NOW_MS 1764288000000LL /* 2025-11-28T00:00:00Z */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "fuzz_telemetry: %s\n", what);
        abort();
    }
}

static void check_detail(const char *detail)
{
    for (const char *p = detail; *p; p++)
        check(*p >= 0x20 && *p <= 0x7e, "detail is not printable ASCII");
}

static void fuzz_payload(const uint8_t *data, size_t size)
{
    static char once[TM_MAX_PAYLOAD + 1], twice[TM_MAX_PAYLOAD + 1];
    char detail[64];
    struct tm_reading r, again;

    static char ref_once[TM_MAX_PAYLOAD + 1];
    char ref_detail[64];
    struct tm_reading ref;
    enum tm_reason ref_why =
        tm_parse_reference((const char *)data, size, FUZZ_NOW_MS, &ref, ref_detail, sizeof(ref_detail));
    int ref_n = ref_why == TM_OK ? tm_serialize(&ref, ref_once, sizeof(ref_once)) : -1;
    tm_reading_release(&ref);

    static char one_pass[TM_MAX_PAYLOAD + 1];
    int one_n;
    enum tm_reason one_why = tm_normalize((const char *)data, size, FUZZ_NOW_MS, NULL, &r, one_pass, sizeof(one_pass),
                                          &one_n, detail, sizeof(detail));
    tm_reading_release(&r);
    check(one_why == ref_why && strcmp(detail, ref_detail) == 0, "tm_normalize judges otherwise than jansson");
    check(one_n == ref_n && (ref_n < 0 || memcmp(one_pass, ref_once, (size_t)ref_n) == 0),
          "tm_normalize writes other bytes than tm_serialize");

    enum tm_reason why = tm_parse((const char *)data, size, FUZZ_NOW_MS, &r, detail, sizeof(detail));
    check_detail(detail);
    if (why != ref_why || strcmp(detail, ref_detail) != 0) {
        fprintf(stderr, "fast path %s (%s), jansson %s (%s)\n", tm_reason_name(why), detail, tm_reason_name(ref_why),
                ref_detail);
        abort();
    }
    check(why < TM_REASON_COUNT, "reason outside the enum");
    if (why != TM_OK) {
        check(r.extra == NULL, "refused reading holds memory");
        check(detail[0] != '\0', "refused without detail");
        return;
    }
    int n1 = tm_serialize(&r, once, sizeof(once));
    check(n1 >= 0, "normalized form exceeds TM_MAX_PAYLOAD");
    check(n1 == ref_n && memcmp(once, ref_once, (size_t)n1) == 0, "fast path and jansson normalize differently");

    /* The same bytes on the truck's own telemetry topic pass as well. */
    char topic[TM_TRUCK_ID_MAX + 32];
    snprintf(topic, sizeof(topic), "fleet/trucks/%s/telemetry", r.truck_id);
    tm_reading_release(&r);
    why = tm_parse_mqtt(topic, (const char *)data, size, FUZZ_NOW_MS, &r, detail, sizeof(detail));
    check(why == TM_OK, "accepted payload refused on its own topic");
    tm_reading_release(&r);

    why = tm_parse(once, (size_t)n1, FUZZ_NOW_MS, &again, detail, sizeof(detail));
    if (why != TM_OK) {
        fprintf(stderr, "normalized form refused: %s (%s): %s\n", tm_reason_name(why), detail, once);
        abort();
    }
    int n2 = tm_serialize(&again, twice, sizeof(twice));
    tm_reading_release(&again);
    if (n2 != n1 || memcmp(once, twice, (size_t)n1) != 0) {
        fprintf(stderr, "normalization is not stable:\n  once  %s\n  twice %s\n", once, twice);
        abort();
    }
}

static void fuzz_topic(const uint8_t *data, size_t size)
{
    /* MQTT topics are at most 65535 bytes; stop at an embedded NUL as a C
     * string would. */
    static char topic[65536], rebuilt[65536 + 32];
    char id[TM_TRUCK_ID_MAX + 1];

    if (size >= sizeof(topic))
        size = sizeof(topic) - 1;
    memcpy(topic, data, size);
    topic[size] = '\0';

    enum tm_topic_kind kind = tm_topic_parse(topic, id, sizeof(id));
    if (kind == TM_TOPIC_UNKNOWN) {
        check(id[0] == '\0', "unknown topic left an id");
        return;
    }
    size_t n = strlen(id);
    check(n >= 1 && n <= TM_TRUCK_ID_MAX, "id length");
    check(strspn(id, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") == n, "id charset");
    const char *fmt = kind == TM_TOPIC_TELEMETRY      ? "fleet/trucks/%s/telemetry"
                      : kind == TM_TOPIC_TRUCK_STATUS ? "fleet/trucks/%s/status"
                                                      : "fleet/gateways/%s/status";
    snprintf(rebuilt, sizeof(rebuilt), fmt, id);
    check(strcmp(rebuilt, topic) == 0, "topic does not rebuild from kind and id");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_payload(data, size);
    fuzz_topic(data, size);
    return 0;
}
