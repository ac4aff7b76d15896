/*
 * rules.c - the detector's thresholds: defaults (docs/design.md "Alerts"), the
 * JSON of --rules FILE and --print-rules, and the rule names.
 *
 * One table (fields[]) lists every setting with its JSON name, unit and
 * lower bound; parse, print and the defaults all read it, so a new threshold
 * is one line here plus its field in struct detect_rules.
 */
#include "detect/engine.h"

#include "core/errmsg.h"
#include "core/readfile.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

const char *detect_rule_name(enum detect_rule r)
{
    return fs_rule_name((int)r);
}

int detect_rule_from_name(const char *name)
{
    return fs_rule_from_name(name);
}

enum field_kind {
    F_DOUBLE,     /* a number, stored as is */
    F_DURATION_S, /* seconds in JSON, int64_t milliseconds in the struct */
};

struct field {
    int rule; /* -1: top level */
    const char *key;
    enum field_kind kind;
    size_t off;
    double min;   /* smallest value allowed */
    int min_open; /* 1: the value must be > min, not >= */
    double def;
};

#define D(rule, key, member, min, open, def)                                                                           \
    {                                                                                                                  \
        rule, key, F_DOUBLE, offsetof(struct detect_rules, member), min, open, def                                     \
    }
#define S(rule, key, member, min, open, def)                                                                           \
    {                                                                                                                  \
        rule, key, F_DURATION_S, offsetof(struct detect_rules, member), min, open, def                                 \
    }

static const struct field fields[] = {
    S(-1, "lateness_s", lateness_ms, 0, 0, 0),
    D(DR_STATIONARY_ENGINE_ON, "radius_m", stationary_radius_m, 0, 1, 50),
    S(DR_STATIONARY_ENGINE_ON, "min_duration_s", stationary_min_ms, 0, 1, 1200),
    D(DR_MOVING_IGNITION_OFF, "min_speed_kmh", towing_min_speed_kmh, 0, 1, 10),
    S(DR_MOVING_IGNITION_OFF, "min_duration_s", towing_min_ms, 0, 1, 60),
    D(DR_GPS_JUMP, "max_speed_kmh", jump_max_speed_kmh, 0, 1, 250),
    D(DR_GPS_JUMP, "min_km", jump_min_km, 0, 0, 1),
    D(DR_FUEL_DROP, "pct", fuel_drop_pct, 0, 1, 10),
    S(DR_FUEL_DROP, "window_s", fuel_drop_window_ms, 0, 1, 300),
    D(DR_FUEL_DROP, "parked_max_speed_kmh", parked_max_speed_kmh, 0, 1, 5),
    D(DR_OVERSPEED, "speed_kmh", overspeed_kmh, 0, 1, 100),
    S(DR_OVERSPEED, "min_duration_s", overspeed_min_ms, 0, 1, 60),
    S(DR_OFFLINE, "min_duration_s", offline_min_ms, 0, 1, 600),
};
#define NFIELDS (sizeof(fields) / sizeof(fields[0]))

/* Durations are bounded so that ms arithmetic never overflows: 30 days. */
#define MAX_DURATION_S (30.0 * 86400)
#define MAX_NUMBER 1e6

static void set_field(struct detect_rules *r, const struct field *f, double v)
{
    char *p = (char *)r + f->off;
    if (f->kind == F_DOUBLE)
        *(double *)(void *)p = v;
    else
        *(int64_t *)(void *)p = (int64_t)llround(v * 1000.0);
}

static double get_field(const struct detect_rules *r, const struct field *f)
{
    const char *p = (const char *)r + f->off;
    if (f->kind == F_DOUBLE)
        return *(const double *)(const void *)p;
    return (double)*(const int64_t *)(const void *)p / 1000.0;
}

void detect_rules_defaults(struct detect_rules *r)
{
    memset(r, 0, sizeof(*r));
    for (int i = 0; i < DR_COUNT; i++)
        r->enabled[i] = true;
    for (size_t i = 0; i < NFIELDS; i++)
        set_field(r, &fields[i], fields[i].def);
}

static const struct field *find_field(int rule, const char *key)
{
    for (size_t i = 0; i < NFIELDS; i++)
        if (fields[i].rule == rule && strcmp(fields[i].key, key) == 0)
            return &fields[i];
    return NULL;
}

/* One number into *tmp, checked against its bounds. */
static int parse_number(const char *name, const char *path, const struct field *f, json_t *v, struct detect_rules *tmp,
                        char *err, size_t err_size)
{
    double max = f->kind == F_DURATION_S ? MAX_DURATION_S : MAX_NUMBER;
    if (!json_is_number(v))
        return errmsg_fail(err, err_size, "%s: %s: must be a number %s %g", name, path,
                           f->min_open ? ">" : ">=", f->min);
    double x = json_number_value(v);
    if (!isfinite(x) || (f->min_open ? x <= f->min : x < f->min) || x > max)
        return errmsg_fail(err, err_size, "%s: %s: must be a number %s %g and at most %g", name, path,
                           f->min_open ? ">" : ">=", f->min, max);
    set_field(tmp, f, x);
    return 0;
}

int detect_rules_parse(const char *name, const char *text, size_t len, struct detect_rules *r, char *err,
                       size_t err_size)
{
    if (!name)
        name = "rules";
    json_error_t je;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
    if (!root)
        return errmsg_fail(err, err_size, "%s: line %d: %s", name, je.line, je.text);
    int rc = -1;
    struct detect_rules tmp = *r;
    if (!json_is_object(root)) {
        errmsg_fail(err, err_size, "%s: must be a JSON object", name);
        goto out;
    }
    const char *key;
    json_t *val;
    json_object_foreach(root, key, val)
    {
        const struct field *f = find_field(-1, key);
        if (f) {
            if (parse_number(name, key, f, val, &tmp, err, err_size))
                goto out;
            continue;
        }
        int rule = detect_rule_from_name(key);
        if (rule < 0) {
            errmsg_fail(err, err_size, "%s: %s: unknown setting (rules are %s, %s, %s, %s, %s, %s, %s; or lateness_s)",
                        name, key, fs_rule_name(0), fs_rule_name(1), fs_rule_name(2), fs_rule_name(3), fs_rule_name(4),
                        fs_rule_name(5), fs_rule_name(6));
            goto out;
        }
        if (!json_is_object(val)) {
            errmsg_fail(err, err_size, "%s: %s: must be an object", name, key);
            goto out;
        }
        const char *k2;
        json_t *v2;
        json_object_foreach(val, k2, v2)
        {
            char path[128];
            snprintf(path, sizeof(path), "%s.%s", key, k2);
            if (strcmp(k2, "enabled") == 0) {
                if (!json_is_boolean(v2)) {
                    errmsg_fail(err, err_size, "%s: %s: must be true or false", name, path);
                    goto out;
                }
                tmp.enabled[rule] = json_is_true(v2);
                continue;
            }
            const struct field *f2 = find_field(rule, k2);
            if (!f2) {
                errmsg_fail(err, err_size, "%s: %s: unknown setting", name, path);
                goto out;
            }
            if (parse_number(name, path, f2, v2, &tmp, err, err_size))
                goto out;
        }
    }
    *r = tmp;
    rc = 0;
out:
    json_decref(root);
    return rc;
}

int detect_rules_load_file(const char *path, struct detect_rules *r, char *err, size_t err_size)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return errmsg_fail(err, err_size, "cannot read rules from %s: %s", path, strerror(errno));
    enum { MAX_RULES_FILE = 1 << 20 };
    char *buf = NULL;
    size_t n = 0;
    int rc = -1, e = readfile_bounded(f, MAX_RULES_FILE, &buf, &n);
    if (e == ENOMEM) {
        errmsg_fail(err, err_size, "%s: out of memory", path);
        goto out;
    }
    if (e) {
        errmsg_fail(err, err_size, "cannot read rules from %s: %s", path, strerror(e));
        goto out;
    }
    if (n > MAX_RULES_FILE) {
        errmsg_fail(err, err_size, "%s: larger than 1 MiB", path);
        goto out;
    }
    rc = detect_rules_parse(path, buf, n, r, err, err_size);
out:
    free(buf);
    fclose(f);
    return rc;
}

/* The shortest of %.15g / %.17g that reads back as the same double. */
static const char *num(double v, char *buf, size_t size)
{
    snprintf(buf, size, "%.15g", v);
    if (strtod(buf, NULL) != v)
        snprintf(buf, size, "%.17g", v);
    return buf;
}

void detect_rules_print(const struct detect_rules *r, FILE *out)
{
    char nb[40];
    fprintf(out, "{\n");
    int first = 1;
    for (size_t i = 0; i < NFIELDS; i++)
        if (fields[i].rule < 0) {
            fprintf(out, "%s  \"%s\": %s", first ? "" : ",\n", fields[i].key,
                    num(get_field(r, &fields[i]), nb, sizeof(nb)));
            first = 0;
        }
    for (int rule = 0; rule < DR_COUNT; rule++) {
        fprintf(out, "%s  \"%s\": {\"enabled\": %s", first ? "" : ",\n", fs_rule_name(rule),
                r->enabled[rule] ? "true" : "false");
        first = 0;
        for (size_t i = 0; i < NFIELDS; i++)
            if (fields[i].rule == rule)
                fprintf(out, ", \"%s\": %s", fields[i].key, num(get_field(r, &fields[i]), nb, sizeof(nb)));
        fprintf(out, "}");
    }
    fprintf(out, "\n}\n");
}
