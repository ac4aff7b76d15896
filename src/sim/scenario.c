/*
 * scenario.c - scenario and geofence files for the simulator (see
 * scenario.h).  Parsing is strict: unknown fields, wrong types, values out
 * of range, unknown trucks or fences and overlapping incidents of one truck
 * are errors, reported with the line, so a typo never silently drops an
 * incident from the ground truth.
 */
#include "sim/scenario.h"

#include "core/clock.h"
#include "core/geo.h"
#include "core/log.h"
#include "core/readfile.h"
#include "core/telemetry.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#define MAX_FILE_BYTES (64u << 20)

static int read_file(const char *path, char **text, size_t *len, char *err, size_t err_size)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, err_size, "%s: %s", path, strerror(errno));
        return -1;
    }
    int e = readfile_bounded(f, MAX_FILE_BYTES, text, len);
    fclose(f);
    if (e == ENOMEM)
        snprintf(err, err_size, "%s: out of memory", path);
    else if (e)
        snprintf(err, err_size, "%s: %s", path, strerror(e));
    else if (*len > MAX_FILE_BYTES)
        snprintf(err, err_size, "%s: larger than %u MiB", path, MAX_FILE_BYTES >> 20);
    else
        return 0;
    free(*text);
    *text = NULL;
    return -1;
}

/* --- geofences --------------------------------------------------------- */

/* A point inside a polygon fence, preferably near its vertex mean: the mean
 * itself when inside, else the inside point of a 32 x 32 grid over the
 * bounding box nearest to it (a concave fence). */
static int polygon_inside_point(const struct geo_fence *g, double *lat, double *lon)
{
    const struct geo_ring *outer = &g->rings[0];
    double mlat = 0, mlon = 0;
    for (size_t v = 0; v < outer->count; v++) {
        mlat += outer->pts[v].lat;
        mlon += outer->pts[v].lon;
    }
    mlat /= (double)outer->count;
    mlon /= (double)outer->count;
    if (geo_fence_contains(g, mlat, mlon)) {
        *lat = mlat;
        *lon = mlon;
        return 0;
    }
    double best = -1;
    for (int i = 1; i < 32; i++)
        for (int j = 1; j < 32; j++) {
            double la = g->bbox[1] + (g->bbox[3] - g->bbox[1]) * i / 32.0;
            double lo = g->bbox[0] + (g->bbox[2] - g->bbox[0]) * j / 32.0;
            double d = geo_haversine_m(mlat, mlon, la, lo);
            if (geo_fence_contains(g, la, lo) && (best < 0 || d < best)) {
                best = d;
                *lat = la;
                *lon = lo;
            }
        }
    return best < 0 ? -1 : 0;
}

/* Converts core/geo's fences into what the simulator needs of them. */
static int fences_from_geo(const char *name, const struct geo_fence_set *gs, struct sim_fences *out, char *err,
                           size_t err_size)
{
    out->v = calloc(gs->count + 1, sizeof(*out->v));
    if (!out->v) {
        snprintf(err, err_size, "%s: out of memory", name);
        return -1;
    }
    for (size_t k = 0; k < gs->count; k++) {
        const struct geo_fence *g = &gs->fences[k];
        struct sim_fence *fe = &out->v[k];
        snprintf(fe->id, sizeof(fe->id), "%s", g->id);
        fe->has_window = g->has_window;
        fe->window_from_min = g->window_start_min;
        fe->window_to_min = g->window_end_min;
        if (g->kind == GEO_FENCE_CIRCLE) {
            fe->lat = g->center_lat;
            fe->lon = g->center_lon;
            fe->out_m = g->radius_m;
        } else {
            if (polygon_inside_point(g, &fe->lat, &fe->lon) != 0) {
                snprintf(err, err_size, "%s: feature %zu (id \"%s\"): no inside point found for the truck to wait at",
                         name, k + 1, g->id);
                sim_fences_release(out);
                return -1;
            }
            fe->out_m = 0;
            for (size_t v = 0; v < g->rings[0].count; v++)
                fe->out_m =
                    fmax(fe->out_m, geo_haversine_m(fe->lat, fe->lon, g->rings[0].pts[v].lat, g->rings[0].pts[v].lon));
        }
        out->n++;
    }
    return 0;
}

int sim_fences_parse(const char *name, const char *text, size_t len, struct sim_fences *out, char *err, size_t err_size)
{
    struct geo_fence_set gs;
    char why[384];
    memset(out, 0, sizeof(*out));
    if (geo_fences_load_buf(text, len, &gs, why, sizeof(why)) != 0) {
        snprintf(err, err_size, "%s: %s", name, why);
        return -1;
    }
    int rc = fences_from_geo(name, &gs, out, err, err_size);
    geo_fence_set_release(&gs);
    return rc;
}

int sim_fences_load(const char *path, struct sim_fences *out, char *err, size_t err_size)
{
    struct geo_fence_set gs;
    memset(out, 0, sizeof(*out));
    if (geo_fences_load_file(path, &gs, err, err_size) != 0)
        return -1;
    int rc = fences_from_geo(path, &gs, out, err, err_size);
    geo_fence_set_release(&gs);
    return rc;
}

const struct sim_fence *sim_fences_find(const struct sim_fences *f, const char *id)
{
    for (size_t k = 0; f && k < f->n; k++)
        if (strcmp(f->v[k].id, id) == 0)
            return &f->v[k];
    return NULL;
}

void sim_fences_release(struct sim_fences *f)
{
    free(f->v);
    f->v = NULL;
    f->n = 0;
}

/* --- scenarios --------------------------------------------------------- */

/* Fields each rule needs besides truck_id, rule, at_s. */
static const char *const rule_fields[RULE_COUNT][3] = {
    [RULE_STATIONARY_ENGINE_ON] = {"duration_s"},
    [RULE_MOVING_IGNITION_OFF] = {"duration_s", "speed_kmh"},
    [RULE_GPS_JUMP] = {"km"},
    [RULE_FUEL_DROP] = {"pct", "over_s"},
    [RULE_GEOFENCE_EXIT] = {"fence", "duration_s"},
    [RULE_OVERSPEED] = {"duration_s", "speed_kmh"},
    [RULE_OFFLINE] = {"duration_s"},
};

static int rule_has_field(int rule, const char *key)
{
    for (int k = 0; k < 3 && rule_fields[rule][k]; k++)
        if (strcmp(rule_fields[rule][k], key) == 0)
            return 1;
    return 0;
}

/* Reads a number field within [lo, hi]; reason in why on failure. */
static int num_field(json_t *o, const char *key, double lo, double hi, double *out, char *why, size_t why_size)
{
    json_t *v = json_object_get(o, key);
    if (!v) {
        snprintf(why, why_size, "missing field \"%s\"", key);
        return -1;
    }
    if (!json_is_number(v)) {
        snprintf(why, why_size, "\"%s\" must be a number", key);
        return -1;
    }
    *out = json_number_value(v);
    if (!(*out >= lo && *out <= hi)) {
        snprintf(why, why_size, "\"%s\" must be within [%g, %g] (got %g)", key, lo, hi, *out);
        return -1;
    }
    return 0;
}

/* Parses "<prefix><digits>" into a 0-based index < trucks. */
static int truck_index(const char *id, const struct scenario_params *p, uint32_t *out)
{
    size_t pl = strlen(p->id_prefix);
    if (strncmp(id, p->id_prefix, pl) != 0)
        return -1;
    const char *d = id + pl;
    size_t nd = strlen(d);
    if (nd < 6 || nd > 10)
        return -1;
    uint64_t v = 0;
    for (size_t k = 0; k < nd; k++) {
        if (d[k] < '0' || d[k] > '9')
            return -1;
        v = v * 10 + (uint64_t)(d[k] - '0');
    }
    if (nd > 6 && d[0] == '0') /* more than six digits only without leading zeros */
        return -1;
    if (v < 1 || v > p->trucks)
        return -1;
    *out = (uint32_t)(v - 1);
    return 0;
}

/* Fills *in from one scenario object.  Returns 0 (and maybe a warning in
 * warn, else warn[0] = 0) or -1 with the reason in why. */
static int parse_incident(json_t *o, const struct scenario_params *p, struct fleet_incident *in, char *why,
                          size_t why_size, char *warn, size_t warn_size)
{
    warn[0] = '\0';
    memset(in, 0, sizeof(*in));
    if (!json_is_object(o)) {
        snprintf(why, why_size, "not a JSON object");
        return -1;
    }
    const char *rule_s = json_string_value(json_object_get(o, "rule"));
    if (!rule_s) {
        snprintf(why, why_size, "missing field \"rule\" (a string)");
        return -1;
    }
    int rule = fleet_rule_parse(rule_s);
    if (rule < 0) {
        snprintf(why, why_size, "unknown rule \"%s\"", rule_s);
        return -1;
    }
    in->rule = (enum fleet_rule)rule;
    const char *key;
    json_t *val;
    json_object_foreach(o, key, val)
    {
        if (strcmp(key, "truck_id") && strcmp(key, "rule") && strcmp(key, "at_s") && !rule_has_field(rule, key)) {
            snprintf(why, why_size, "unknown field \"%s\" for rule %s", key, rule_s);
            return -1;
        }
    }
    const char *id = json_string_value(json_object_get(o, "truck_id"));
    if (!id) {
        snprintf(why, why_size, "missing field \"truck_id\" (a string)");
        return -1;
    }
    if (truck_index(id, p, &in->truck) != 0) {
        char first[80], last[80];
        tm_format_truck_id(first, sizeof(first), p->id_prefix, strlen(p->id_prefix), 0);
        tm_format_truck_id(last, sizeof(last), p->id_prefix, strlen(p->id_prefix), p->trucks ? p->trucks - 1 : 0);
        snprintf(why, why_size, "truck_id \"%s\" is not a simulated truck (%s ... %s)", id, first, last);
        return -1;
    }
    json_t *at = json_object_get(o, "at_s");
    if (!json_is_integer(at) || json_integer_value(at) < 0 || json_integer_value(at) > 3153600000LL) {
        snprintf(why, why_size,
                 "\"at_s\" must be an integer >= 0 (simulated seconds from the start, at most 100 years)");
        return -1;
    }
    in->at_ms = p->start_ms + (int64_t)json_integer_value(at) * 1000;
    double d;
    switch (in->rule) {
    case RULE_STATIONARY_ENGINE_ON:
    case RULE_OFFLINE:
    case RULE_GEOFENCE_EXIT:
        if (num_field(o, "duration_s", 1, 30 * 86400, &d, why, why_size))
            return -1;
        in->duration_ms = (int64_t)llround(d * 1000);
        if (in->rule == RULE_GEOFENCE_EXIT) {
            const char *fence = json_string_value(json_object_get(o, "fence"));
            const struct sim_fence *fe;
            if (!fence) {
                snprintf(why, why_size, "missing field \"fence\" (a fence id)");
                return -1;
            }
            if (!p->fences || !p->fences->n) {
                snprintf(why, why_size, "geofence_exit needs --geofences FILE with fence \"%s\"", fence);
                return -1;
            }
            if (!(fe = sim_fences_find(p->fences, fence))) {
                snprintf(why, why_size, "fence \"%s\" is not in the geofences file", fence);
                return -1;
            }
            in->fence_lat = fe->lat;
            in->fence_lon = fe->lon;
            in->fence_out_m = fe->out_m;
            if (fe->has_window) {
                int min = (int)((((in->at_ms % FS_DAY_MS) + FS_DAY_MS) % FS_DAY_MS) / 60000);
                int from = fe->window_from_min, to = fe->window_to_min;
                int inside = from <= to ? (min >= from && min < to) : (min >= from || min < to);
                if (!inside)
                    snprintf(warn, warn_size,
                             "leaves fence \"%s\" at %02d:%02d UTC, outside its active window "
                             "%02d:%02d-%02d:%02d: the detector will not alert",
                             fence, min / 60, min % 60, from / 60, from % 60, to / 60, to % 60);
            }
        }
        return 0;
    case RULE_MOVING_IGNITION_OFF:
    case RULE_OVERSPEED:
        if (num_field(o, "duration_s", 1, 86400, &d, why, why_size))
            return -1;
        in->duration_ms = (int64_t)llround(d * 1000);
        if (num_field(o, "speed_kmh", 1, 250, &in->speed_kmh, why, why_size))
            return -1;
        return 0;
    case RULE_GPS_JUMP:
        return num_field(o, "km", 0.1, 5000, &in->km, why, why_size);
    case RULE_FUEL_DROP:
        if (num_field(o, "pct", 0.1, 100, &in->pct, why, why_size) ||
            num_field(o, "over_s", 1, 86400, &d, why, why_size))
            return -1;
        in->duration_ms = (int64_t)llround(d * 1000);
        return 0;
    default:
        return -1;
    }
}

struct parsed {
    struct fleet_incident in;
    char *text;
    size_t line;
};

static int cmp_parsed(const void *a, const void *b)
{
    const struct parsed *x = a, *y = b;
    if (x->in.truck != y->in.truck)
        return x->in.truck < y->in.truck ? -1 : 1;
    if (x->in.at_ms != y->in.at_ms)
        return x->in.at_ms < y->in.at_ms ? -1 : 1;
    return x->line < y->line ? -1 : x->line > y->line;
}

/* When an incident's effect begins and ends (a geofence exit starts early:
 * the truck drives to the boundary). */
static void incident_span(const struct fleet_incident *in, int64_t *b, int64_t *e)
{
    *b = in->at_ms;
    *e = in->at_ms + in->duration_ms;
    if (in->rule == RULE_GEOFENCE_EXIT) {
        *b -= (int64_t)((in->fence_out_m + 1000.0) / (40.0 / 3.6) * 1000.0);
        *e += 120000;
    }
    if (in->rule == RULE_GPS_JUMP)
        *e = in->at_ms + 1;
}

int scenario_parse(const char *name, const char *text, size_t len, const struct scenario_params *p,
                   struct scenario *out, char *err, size_t err_size)
{
    struct parsed *v = NULL;
    size_t n = 0, cap = 0, line = 0;
    char why[256];
    int rc = -1;
    memset(out, 0, sizeof(*out));
    for (size_t pos = 0; pos < len;) {
        const char *s = text + pos, *nl = memchr(s, '\n', len - pos);
        size_t ll = nl ? (size_t)(nl - s) : len - pos;
        pos += ll + 1;
        line++;
        size_t k = 0;
        while (k < ll && (s[k] == ' ' || s[k] == '\t' || s[k] == '\r'))
            k++;
        if (k == ll || s[k] == '#')
            continue;
        if (memchr(s, '\0', ll)) {
            snprintf(err, err_size, "%s:%zu: invalid JSON: a NUL byte", name, line);
            goto out;
        }
        json_error_t je;
        json_t *o = json_loadb(s, ll, JSON_REJECT_DUPLICATES, &je);
        if (!o) {
            snprintf(err, err_size, "%s:%zu: invalid JSON: %s", name, line, je.text);
            goto out;
        }
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            struct parsed *nv = realloc(v, cap * sizeof(*v));
            if (!nv) {
                json_decref(o);
                snprintf(err, err_size, "%s:%zu: out of memory", name, line);
                goto out;
            }
            v = nv;
        }
        char warn[256];
        int bad = parse_incident(o, p, &v[n].in, why, sizeof(why), warn, sizeof(warn));
        if (!bad && warn[0])
            log_warn("%s:%zu: %s", name, line, warn);
        /* kept as compact JSON for the truth file */
        v[n].text = bad ? NULL : json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
        json_decref(o);
        if (bad) {
            snprintf(err, err_size, "%s:%zu: %s", name, line, why);
            goto out;
        }
        v[n].line = line;
        if (!v[n].text) {
            snprintf(err, err_size, "%s:%zu: out of memory", name, line);
            goto out;
        }
        n++;
    }
    if (n)
        qsort(v, n, sizeof(*v), cmp_parsed);
    for (size_t k = 1; k < n; k++) {
        if (v[k].in.truck != v[k - 1].in.truck)
            continue;
        int64_t b0, e0, b1, e1;
        incident_span(&v[k - 1].in, &b0, &e0);
        incident_span(&v[k].in, &b1, &e1);
        if (b1 < e0) {
            snprintf(err, err_size, "%s:%zu: overlaps the incident of the same truck on line %zu", name,
                     v[k].line > v[k - 1].line ? v[k].line : v[k - 1].line,
                     v[k].line > v[k - 1].line ? v[k - 1].line : v[k].line);
            goto out;
        }
        if (v[k].in.rule == RULE_GEOFENCE_EXIT || v[k - 1].in.rule == RULE_GEOFENCE_EXIT) {
            /* an anchored truck waits at one fence */
            for (size_t j = k; j-- > 0 && v[j].in.truck == v[k].in.truck;)
                if (v[j].in.rule == RULE_GEOFENCE_EXIT && v[k].in.rule == RULE_GEOFENCE_EXIT &&
                    (v[j].in.fence_lat != v[k].in.fence_lat || v[j].in.fence_lon != v[k].in.fence_lon)) {
                    snprintf(err, err_size, "%s:%zu: a truck can leave only one fence (see line %zu)", name, v[k].line,
                             v[j].line);
                    goto out;
                }
        }
    }
    out->inc = calloc(n + 1, sizeof(*out->inc));
    out->line_text = calloc(n + 1, sizeof(*out->line_text));
    if (!out->inc || !out->line_text) {
        snprintf(err, err_size, "%s: out of memory", name);
        goto out;
    }
    for (size_t k = 0; k < n; k++) {
        out->inc[k] = v[k].in;
        out->line_text[k] = v[k].text;
        v[k].text = NULL;
    }
    out->n = n;
    rc = 0;
out:
    for (size_t k = 0; k < n; k++)
        free(v[k].text);
    free(v);
    if (rc)
        scenario_release(out);
    return rc;
}

int scenario_load(const char *path, const struct scenario_params *p, struct scenario *out, char *err, size_t err_size)
{
    char *text;
    size_t len;
    memset(out, 0, sizeof(*out));
    if (read_file(path, &text, &len, err, err_size) != 0)
        return -1;
    int rc = scenario_parse(path, text, len, p, out, err, err_size);
    free(text);
    return rc;
}

void scenario_release(struct scenario *s)
{
    if (s->line_text)
        for (size_t k = 0; k < s->n; k++)
            free(s->line_text[k]);
    free(s->line_text);
    free(s->inc);
    memset(s, 0, sizeof(*s));
}

int scenario_write_truth(const struct scenario *s, size_t k, FILE *out)
{
    if (k >= s->n)
        return -1;
    json_t *o = json_loads(s->line_text[k], 0, NULL);
    if (!o)
        return -1;
    const struct fleet_incident *in = &s->inc[k];
    json_object_set_new(o, "start_ms", json_integer(in->started_ms));
    json_object_set_new(o, "end_ms", json_integer(in->ended_ms));
    int rc = json_dumpf(o, out, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(o);
    if (rc == 0 && (fputc('\n', out) == EOF || fflush(out) != 0))
        rc = -1;
    return rc;
}
