/*
 * fuzz_pack.c - libFuzzer target for the packed truck-hour decoder
 * (core/pack.h): any text in the columns of a packed row.
 *
 * Input: the columns as COPY text, tab-separated, \N for NULL (a row with
 * fewer columns gets NULL for the rest; extra tabs stay in the last one).
 *
 * Properties checked on every input (abort() on violation):
 *   - pack_decode never crashes or reads out of bounds (ASan/UBSan), and
 *     returns at most the readings asked for;
 *   - whatever it accepts, pack_encode accepts again, and decoding that
 *     gives the same readings bit for bit;
 *   - encoding is canonical: the re-encoded row encodes to itself.
 */
#include "core/pack.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FUZZ_HOUR_MS 1764288000000LL
#define FUZZ_MAX 64

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "fuzz_pack: %s\n", what);
        abort();
    }
}

static void split(char *line, const char *cols[PACK_NCOLS])
{
    char *p = line;
    for (int c = 0; c < PACK_NCOLS; c++) {
        if (!p) {
            cols[c] = NULL;
            continue;
        }
        char *tab = c + 1 < PACK_NCOLS ? strchr(p, '\t') : NULL;
        if (tab)
            *tab = '\0';
        cols[c] = strcmp(p, "\\N") == 0 ? NULL : p;
        p = tab ? tab + 1 : NULL;
    }
}

static int same(const struct pack_reading *a, const struct pack_reading *b, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (a[i].ts_ms != b[i].ts_ms || a[i].seq != b[i].seq || a[i].ignition != b[i].ignition ||
            a[i].has_recv != b[i].has_recv || (a[i].has_recv && a[i].recv_ms != b[i].recv_ms))
            return 0;
        const double va[] = {a[i].lat, a[i].lon, a[i].speed_kmh, a[i].heading_deg, a[i].fuel_pct, a[i].odometer_km};
        const double vb[] = {b[i].lat, b[i].lon, b[i].speed_kmh, b[i].heading_deg, b[i].fuel_pct, b[i].odometer_km};
        for (int j = 0; j < 6; j++)
            if (memcmp(&va[j], &vb[j], sizeof(double)) != 0 && !(isnan(va[j]) && isnan(vb[j])))
                return 0;
    }
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct pack_reading a[FUZZ_MAX], b[FUZZ_MAX];
    char *text = malloc(size + 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    const char *cols[PACK_NCOLS];
    split(text, cols);
    char err[256];
    size_t n = 0, m = 0;
    if (pack_decode(cols, FUZZ_HOUR_MS, a, FUZZ_MAX, &n, err, sizeof(err)) == 0) {
        check(n >= 1 && n <= FUZZ_MAX, "a count out of bounds");
        struct buf enc = {0}, again = {0};
        check(pack_encode(a, n, FUZZ_HOUR_MS, &enc, err, sizeof(err)) == 0, "a decoded row does not encode");
        check(!enc.oom, "out of memory");
        char *copy = strdup(enc.p);
        check(copy != NULL, "out of memory");
        split(enc.p, cols);
        check(pack_decode(cols, FUZZ_HOUR_MS, b, FUZZ_MAX, &m, err, sizeof(err)) == 0, "a re-encoded row is refused");
        check(m == n && same(a, b, n), "a re-encoded row decodes to other readings");
        check(pack_encode(b, m, FUZZ_HOUR_MS, &again, err, sizeof(err)) == 0 && strcmp(again.p, copy) == 0,
              "encoding is not canonical");
        free(copy);
        buf_release(&enc);
        buf_release(&again);
    } else {
        check(n == 0, "a refused row with readings");
    }
    free(text);
    return 0;
}
