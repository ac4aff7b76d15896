/*
 * match.c - alerts against ground truth: the matching rule of match.h and
 * per-rule precision, recall and detection delay (see match.h).
 */
#include "detect/match.h"

#include "core/rule.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

const char *match_rule_name(int rule)
{
    return fs_rule_name(rule);
}

int match_rule_from_name(const char *name)
{
    return fs_rule_from_name(name);
}

static int cmp_i64(int64_t a, int64_t b)
{
    return a < b ? -1 : a > b;
}

static int alert_cmp(const void *pa, const void *pb)
{
    const struct match_alert *a = pa, *b = pb;
    int c = strcmp(a->truck_id, b->truck_id);
    if (c)
        return c;
    if (a->rule != b->rule)
        return a->rule < b->rule ? -1 : 1;
    if ((c = cmp_i64(a->started_ms, b->started_ms)))
        return c;
    return cmp_i64(a->detected_ms, b->detected_ms);
}

size_t match_dedupe(struct match_alert *a, size_t n)
{
    if (n < 2)
        return n;
    qsort(a, n, sizeof(*a), alert_cmp);
    size_t w = 1;
    for (size_t i = 1; i < n; i++) {
        const struct match_alert *p = &a[w - 1];
        if (a[i].rule == p->rule && a[i].started_ms == p->started_ms && strcmp(a[i].truck_id, p->truck_id) == 0)
            continue; /* same alert id; the earlier detected_ms sorts first */
        a[w++] = a[i];
    }
    return w;
}

static int i64_cmp(const void *pa, const void *pb)
{
    return cmp_i64(*(const int64_t *)pa, *(const int64_t *)pb);
}

void match_run(struct match_incident *inc, size_t ni, struct match_alert *al, size_t na,
               struct match_result out[MATCH_RULES])
{
    memset(out, 0, sizeof(struct match_result) * MATCH_RULES);
    for (size_t i = 0; i < ni; i++)
        inc[i].matched = 0, inc[i].delay_ms = 0;
    for (size_t j = 0; j < na; j++)
        al[j].matched = 0;
    /* Quadratic, but only within a truck's alerts: n is a scenario's size
     * (tens to thousands), and alerts of other trucks are skipped by strcmp. */
    for (size_t i = 0; i < ni; i++) {
        struct match_incident *x = &inc[i];
        if (x->rule < 0 || x->rule >= MATCH_RULES)
            continue;
        int64_t lo = x->start_ms - MATCH_BEFORE_MS, hi = x->end_ms + MATCH_AFTER_MS;
        for (size_t j = 0; j < na; j++) {
            struct match_alert *a = &al[j];
            if (a->rule != x->rule || a->started_ms < lo || a->started_ms > hi || strcmp(a->truck_id, x->truck_id))
                continue;
            a->matched = 1;
            int64_t d = a->detected_ms - x->start_ms;
            if (!x->matched || d < x->delay_ms)
                x->delay_ms = d;
            x->matched = 1;
        }
    }
    int64_t *delays = malloc((ni ? ni : 1) * sizeof(*delays));
    for (int r = 0; r < MATCH_RULES; r++) {
        struct match_result *o = &out[r];
        size_t nd = 0;
        for (size_t i = 0; i < ni; i++) {
            if (inc[i].rule != r)
                continue;
            o->incidents++;
            if (inc[i].matched) {
                o->matched_incidents++;
                if (delays)
                    delays[nd++] = inc[i].delay_ms;
            }
        }
        for (size_t j = 0; j < na; j++) {
            if (al[j].rule != r)
                continue;
            o->alerts++;
            o->matched_alerts += (size_t)al[j].matched;
        }
        o->precision = o->alerts ? (double)o->matched_alerts / (double)o->alerts : -1;
        o->recall = o->incidents ? (double)o->matched_incidents / (double)o->incidents : -1;
        o->delay_median_ms = o->delay_max_ms = -1;
        if (nd) {
            qsort(delays, nd, sizeof(*delays), i64_cmp);
            o->delay_median_ms = nd % 2 ? delays[nd / 2] : (delays[nd / 2 - 1] + delays[nd / 2]) / 2;
            o->delay_max_ms = delays[nd - 1];
        }
    }
    free(delays);
}

int match_all_pass(const struct match_result r[MATCH_RULES])
{
    for (int i = 0; i < MATCH_RULES; i++) {
        if (r[i].alerts && r[i].matched_alerts != r[i].alerts)
            return 0;
        if (r[i].incidents && r[i].matched_incidents != r[i].incidents)
            return 0;
    }
    return 1;
}

static void pct(char *buf, size_t size, double v)
{
    if (v < 0)
        snprintf(buf, size, "-");
    else
        snprintf(buf, size, "%.1f %%", v * 100.0);
}

static void secs(char *buf, size_t size, int64_t ms, int defined)
{
    if (!defined)
        snprintf(buf, size, "-");
    else
        snprintf(buf, size, "%.0f s", (double)ms / 1000.0);
}

void match_print_table(FILE *out, const struct match_result r[MATCH_RULES])
{
    fprintf(out, "%-21s %9s %6s %7s %9s %7s %12s %10s\n", "rule", "incidents", "alerts", "matched", "precision",
            "recall", "delay median", "delay max");
    struct match_result t = {0};
    for (int i = 0; i < MATCH_RULES; i++) {
        char p[16], rc[16], dm[24], dx[24];
        pct(p, sizeof(p), r[i].precision);
        pct(rc, sizeof(rc), r[i].recall);
        secs(dm, sizeof(dm), r[i].delay_median_ms, r[i].matched_incidents > 0);
        secs(dx, sizeof(dx), r[i].delay_max_ms, r[i].matched_incidents > 0);
        fprintf(out, "%-21s %9zu %6zu %7zu %9s %7s %12s %10s\n", fs_rule_name(i), r[i].incidents, r[i].alerts,
                r[i].matched_incidents, p, rc, dm, dx);
        t.incidents += r[i].incidents;
        t.alerts += r[i].alerts;
        t.matched_incidents += r[i].matched_incidents;
        t.matched_alerts += r[i].matched_alerts;
    }
    char p[16], rc[16];
    pct(p, sizeof(p), t.alerts ? (double)t.matched_alerts / (double)t.alerts : -1);
    pct(rc, sizeof(rc), t.incidents ? (double)t.matched_incidents / (double)t.incidents : -1);
    fprintf(out, "%-21s %9zu %6zu %7zu %9s %7s\n", "all", t.incidents, t.alerts, t.matched_incidents, p, rc);
}

char *match_json(const struct match_result r[MATCH_RULES])
{
    json_t *root = json_object(), *rules = json_object();
    if (!root || !rules) {
        json_decref(root);
        json_decref(rules);
        return NULL;
    }
    json_object_set_new(root, "pass", json_boolean(match_all_pass(r)));
    for (int i = 0; i < MATCH_RULES; i++) {
        json_t *o = json_object();
        json_object_set_new(o, "incidents", json_integer((json_int_t)r[i].incidents));
        json_object_set_new(o, "alerts", json_integer((json_int_t)r[i].alerts));
        json_object_set_new(o, "matched_incidents", json_integer((json_int_t)r[i].matched_incidents));
        json_object_set_new(o, "matched_alerts", json_integer((json_int_t)r[i].matched_alerts));
        json_object_set_new(o, "precision", r[i].precision < 0 ? json_null() : json_real(r[i].precision));
        json_object_set_new(o, "recall", r[i].recall < 0 ? json_null() : json_real(r[i].recall));
        json_object_set_new(o, "delay_median_ms",
                            !r[i].matched_incidents ? json_null() : json_integer(r[i].delay_median_ms));
        json_object_set_new(o, "delay_max_ms", !r[i].matched_incidents ? json_null() : json_integer(r[i].delay_max_ms));
        json_object_set_new(rules, fs_rule_name(i), o);
    }
    json_object_set_new(root, "rules", rules);
    char *s = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(root);
    return s;
}
