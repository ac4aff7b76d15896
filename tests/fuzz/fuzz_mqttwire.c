/*
 * fuzz_mqttwire.c - libFuzzer target for the MQTT packet parsers (the
 * simulator's and the bridge's) and the PUBLISH encoder.
 *
 * Properties checked on every input (abort() on violation):
 *   - read as a stream of broker packets, as the connection pool reads a
 *     socket, mqw_parse never reads out of bounds (ASan/UBSan), never
 *     claims more than it was given or more than MQW_MAX_INCOMING, and
 *     answers the same for the same bytes;
 *   - every cut of a packet it accepted asks for more (0), never -1;
 *   - read as the bridge reads (mqw_parse_in, MQTT 3.1.1 and 5, a limit of
 *     256 bytes), the same holds; a PUBLISH's topic and payload lie within
 *     the packet, and one past the limit (-2) lies within the bytes given;
 *   - a PUBLISH of the input's bytes as topic and payload has the length
 *     mqw_publish_size() gives, and its fixed header states the rest;
 *   - read as the ingest reads a client (mqw_parse_client: before CONNECT,
 *     then in the CONNECT's version, a limit of 512 bytes), a packet is
 *     never longer than the bytes given or the limit, every string and
 *     payload lies within it, every cut of it asks for more, a refusal
 *     comes with a reason code, and the same bytes get the same answer.
 */
#include "core/mqttwire.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "fuzz_mqttwire: %s\n", what);
        abort();
    }
}

static void stream(const uint8_t *data, size_t size)
{
    size_t off = 0;
    while (off < size) {
        struct mqw_packet pk, again;
        int n = mqw_parse(data + off, size - off, &pk);
        check(n == mqw_parse(data + off, size - off, &again), "same bytes, different answer");
        if (n <= 0)
            return;
        check((size_t)n <= size - off && n <= MQW_MAX_INCOMING && pk.length == (uint32_t)n, "length out of range");
        for (int cut = 0; cut < n; cut++)
            check(mqw_parse(data + off, (size_t)cut, &again) == 0, "a cut packet is not 'need more'");
        off += (size_t)n;
    }
}

static void stream_in(const uint8_t *data, size_t size, int version)
{
    size_t off = 0, max = 256;
    while (off < size) {
        struct mqw_packet pk, again;
        int n = mqw_parse_in(data + off, size - off, version, max, &pk);
        check(n == mqw_parse_in(data + off, size - off, version, max, &again), "same bytes, different answer");
        if (n == -2) {
            const uint8_t *end = data + size;
            check(pk.type == MQW_PUBLISH && pk.length > max, "-2 for a packet within the limit");
            check((const uint8_t *)pk.topic >= data + off && (const uint8_t *)pk.topic + pk.topic_len <= end &&
                      pk.payload + pk.payload_len <= end,
                  "a long PUBLISH's head lies outside the bytes given");
            return;
        }
        if (n <= 0)
            return;
        check((size_t)n <= size - off && (size_t)n <= max && pk.length == (uint32_t)n, "length out of range");
        if (pk.type == MQW_PUBLISH) {
            const uint8_t *end = data + off + (size_t)n;
            check((const uint8_t *)pk.topic + pk.topic_len <= end && pk.payload + pk.payload_len == end,
                  "PUBLISH topic or payload outside the packet");
        }
        if (pk.type == MQW_SUBACK)
            check(pk.ncodes > 0 && pk.codes + pk.ncodes == data + off + (size_t)n, "SUBACK codes outside the packet");
        for (int cut = 0; cut < n; cut++) {
            int c = mqw_parse_in(data + off, (size_t)cut, version, max, &again);
            check(c == 0, "a cut packet is not 'need more'");
        }
        off += (size_t)n;
    }
}

static int within(const void *p, size_t n, const uint8_t *lo, const uint8_t *hi)
{
    return !p || ((const uint8_t *)p >= lo && (const uint8_t *)p + n <= hi);
}

static void stream_client(const uint8_t *data, size_t size)
{
    size_t off = 0, max = 512;
    int version = 0;
    while (off < size) {
        struct mqw_in in, again;
        uint8_t why = 0, why2 = 0;
        int n = mqw_parse_client(data + off, size - off, version, max, &in, &why);
        check(n == mqw_parse_client(data + off, size - off, version, max, &again, &why2),
              "same bytes, different answer");
        if (n == MQW_IN_MALFORMED)
            check(why >= 0x80 && why == why2, "a refusal without a reason code");
        if (n <= 0)
            return;
        const uint8_t *lo = data + off, *hi = data + off + (size_t)n;
        check((size_t)n <= size - off && (size_t)n <= max && in.length == (uint32_t)n, "length out of range");
        check(within(in.topic, in.topic_len, lo, hi) && within(in.payload, in.payload_len, lo, hi), "PUBLISH outside");
        const struct mqw_connect_in *c = &in.connect;
        check(within(c->client_id, c->client_id_len, lo, hi) && within(c->will_topic, c->will_topic_len, lo, hi) &&
                  within(c->will_payload, c->will_len, lo, hi) && within(c->user, c->user_len, lo, hi) &&
                  within(c->pass, c->pass_len, lo, hi),
              "CONNECT field outside the packet");
        if (in.type == MQW_PUBLISH)
            check(in.topic_len > 0 && in.qos < 3 && in.payload + in.payload_len == hi, "PUBLISH shape");
        for (int cut = 0; cut < n; cut++)
            check(mqw_parse_client(data + off, (size_t)cut, version, max, &again, &why2) == 0,
                  "a cut packet is not 'need more'");
        if (in.type == MQW_CONNECT)
            version = in.connect.version;
        off += (size_t)n;
    }
}

static void publish(const uint8_t *data, size_t size)
{
    size_t tl = size ? data[0] % (size > 1 ? size : 1) : 0;
    const char *topic = (const char *)data + (size ? 1 : 0);
    if (size && tl > size - 1)
        tl = size - 1;
    size_t pl = size - (size ? 1 : 0) - tl;
    int qos = size && (data[0] & 0x80) ? 1 : 0;
    size_t need = mqw_publish_size(tl, pl, qos);
    uint8_t *out = malloc(need + 1);
    check(out != NULL, "out of memory");
    check(mqw_encode_publish(out, need - 1, topic, tl, topic + tl, pl, qos, 0, 42) == 0, "wrote past its size");
    size_t n = mqw_encode_publish(out, need + 1, topic, tl, topic + tl, pl, qos, 0, 42);
    check(n == need, "size differs from mqw_publish_size");
    size_t rem = 0, i = 1;
    for (int shift = 0; i < n; shift += 7) {
        uint8_t b = out[i++];
        rem |= (size_t)(b & 0x7f) << shift;
        if (!(b & 0x80))
            break;
    }
    check(i + rem == n, "remaining length wrong");
    check((out[0] >> 4) == MQW_PUBLISH && ((out[0] >> 1) & 3) == qos, "fixed header wrong");
    check((size_t)(out[i] << 8 | out[i + 1]) == tl && memcmp(out + i + 2, topic, tl) == 0, "topic wrong");
    check(memcmp(out + n - pl, topic + tl, pl) == 0, "payload wrong");
    free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    stream(data, size);
    stream_in(data, size, 4);
    stream_in(data, size, 5);
    publish(data, size);
    stream_client(data, size);
    return 0;
}
