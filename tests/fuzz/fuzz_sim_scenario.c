/*
 * fuzz_sim_scenario.c - libFuzzer target for the simulator's scenario and
 * geofence parsers.
 *
 * Properties checked on every input (abort() on violation):
 *   - neither parser crashes, leaks or reads out of bounds (ASan/UBSan);
 *   - a rejected input leaves an error naming the file;
 *   - an accepted scenario is sorted by truck and time, names only trucks
 *     that exist, and every incident's truth line is valid output.
 */
#include "sim/fleet.h"
#include "sim/scenario.h"

#include "core/log.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "fuzz_sim_scenario: %s\n", what);
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    char err[512];
    log_set_level(LOG_ERROR); /* scenario warnings would flood the output */
    struct sim_fences fences;
    int frc = sim_fences_parse("f.geojson", text, size, &fences, err, sizeof(err));
    if (frc != 0)
        check(strncmp(err, "f.geojson", 9) == 0, "fence error does not name the file");
    /* The same bytes as a scenario, checked against a fixed fence. */
    struct sim_fence one = {.id = "depot", .lat = 48.1, .lon = 11.5, .out_m = 500};
    struct sim_fences fixed = {.v = &one, .n = 1};
    struct scenario_params p = {.id_prefix = "TRK-", .trucks = 50, .start_ms = 1764201600000LL, .fences = &fixed};
    struct scenario s;
    if (scenario_parse("s.jsonl", text, size, &p, &s, err, sizeof(err)) == 0) {
        FILE *devnull = fopen("/dev/null", "w");
        for (size_t k = 0; k < s.n; k++) {
            check(s.inc[k].truck < 50, "incident for a truck that does not exist");
            if (k)
                check(s.inc[k].truck > s.inc[k - 1].truck ||
                          (s.inc[k].truck == s.inc[k - 1].truck && s.inc[k].at_ms >= s.inc[k - 1].at_ms),
                      "incidents not sorted");
            if (devnull)
                check(scenario_write_truth(&s, k, devnull) == 0, "truth line cannot be written");
        }
        if (devnull)
            fclose(devnull);
        scenario_release(&s);
    } else {
        check(strncmp(err, "s.jsonl", 7) == 0, "scenario error does not name the file");
    }
    if (frc == 0)
        sim_fences_release(&fences);
    return 0;
}
