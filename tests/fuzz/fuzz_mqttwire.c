/*
 * fuzz_mqttwire.c - libFuzzer target for the simulator's MQTT packet parser
 * and PUBLISH encoder.
 *
 * Properties checked on every input (abort() on violation):
 *   - read as a stream of broker packets, as the connection pool reads a
 *     socket, mqw_parse never reads out of bounds (ASan/UBSan), never
 *     claims more than it was given or more than MQW_MAX_INCOMING, and
 *     answers the same for the same bytes;
 *   - every cut of a packet it accepted asks for more (0), never -1;
 *   - a PUBLISH of the input's bytes as topic and payload has the length
 *     mqw_publish_size() gives, and its fixed header states the rest.
 */
#include "sim/mqttwire.h"

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
    publish(data, size);
    return 0;
}
