/*
 * match.h - precision and recall of detector alerts against the simulator's
 * ground truth (docs/design.md "Simulator scenarios and geofences"), pure: no
 * Kafka, no files.  Used by `fleetsync bench detect`.
 *
 * The matching rule: an alert matches an incident when truck and rule agree
 * and the alert's started_ms lies within [start_ms - 2 min, end_ms + 30 min]
 * (both edges included).  Per rule:
 *   precision = matched alerts / alerts      (alerts: distinct alert ids raised)
 *   recall    = matched incidents / incidents
 *   delay     = detected_ms - start_ms of an incident's earliest matching
 *               alert (by detected_ms); median and max over matched incidents
 * A rule without alerts has no precision, one without incidents no recall:
 * both are reported as "-" (null in JSON) and do not fail the run.
 */
#ifndef FS_OPS_MATCH_H
#define FS_OPS_MATCH_H

#include "core/rule.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define MATCH_RULES FS_RULE_COUNT
#define MATCH_BEFORE_MS (2 * 60 * 1000LL)
#define MATCH_AFTER_MS (30 * 60 * 1000LL)
#define MATCH_ID_MAX 64

/* stationary_engine_on ... offline, in docs/design.md "Alerts" order; NULL outside. */
const char *match_rule_name(int rule);
/* The index of a rule name, or -1. */
int match_rule_from_name(const char *name);

struct match_incident {
    char truck_id[MATCH_ID_MAX + 1];
    int rule;
    int64_t start_ms, end_ms;
    /* out */
    int matched;
    int64_t delay_ms; /* of the earliest matching alert; valid when matched */
};

struct match_alert {
    char truck_id[MATCH_ID_MAX + 1];
    int rule;
    int64_t started_ms, detected_ms;
    /* out */
    int matched;
};

struct match_result {
    size_t incidents, alerts, matched_incidents, matched_alerts;
    double precision, recall;              /* 0..1, or -1 when undefined */
    int64_t delay_median_ms, delay_max_ms; /* meaningful when matched_incidents > 0 */
};

/* Sorts the alerts and drops repeats of one alert id (truck, rule,
 * started_ms), keeping the earliest detected_ms.  Returns the new count. */
size_t match_dedupe(struct match_alert *a, size_t n);

/* Marks matches in both arrays and fills out[MATCH_RULES].  Incidents or
 * alerts with a rule outside 0..MATCH_RULES-1 are ignored.  Call
 * match_dedupe first when the alerts may hold repeats. */
void match_run(struct match_incident *inc, size_t ni, struct match_alert *al, size_t na,
               struct match_result out[MATCH_RULES]);

/* 1 when every rule's precision and recall is 100 % (or undefined). */
int match_all_pass(const struct match_result r[MATCH_RULES]);

/* The per-rule table for people, and the same as one JSON object:
 * {"pass":true,"rules":{"overspeed":{"incidents":1,"alerts":1,
 *  "matched_incidents":1,"matched_alerts":1,"precision":1,"recall":1,
 *  "delay_median_ms":60000,"delay_max_ms":60000},...}}
 * match_json returns a malloc'd string, or NULL when memory is short. */
void match_print_table(FILE *out, const struct match_result r[MATCH_RULES]);
char *match_json(const struct match_result r[MATCH_RULES]);

#endif
