/*
 * scenario.h - incidents to inject (JSON lines) and the geofences they
 * leave (GeoJSON), parsed and checked before anything is sent, and the
 * ground-truth file written as incidents happen.
 *
 * Every error names the file, the line (or feature) and the reason.  The
 * incident array is sorted by truck, then time, as fleet_new() wants it,
 * and each incident keeps its source line for the truth file.
 */
#ifndef FS_SIM_SCENARIO_H
#define FS_SIM_SCENARIO_H

#include "sim/fleet.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

struct sim_fence {
    char id[65];
    double lat, lon; /* a point inside: the circle's centre, for a polygon its vertex
                      * mean (or the inside point nearest to it) */
    double out_m;    /* every point of the fence is within this distance of (lat, lon) */
    int has_window;  /* properties.active: leaving alerts only in [from, to) UTC */
    int window_from_min, window_to_min;
};

struct sim_fences {
    struct sim_fence *v;
    size_t n;
};

/* Loads a GeoJSON FeatureCollection with core/geo.h (the detector's reading
 * of the same file) and keeps, per fence, a point inside and its extent.
 * Returns 0, or -1 with "FILE: feature N ...: reason" in err.  Release with
 * sim_fences_release. */
int sim_fences_load(const char *path, struct sim_fences *out, char *err, size_t err_size);
int sim_fences_parse(const char *name, const char *text, size_t len, struct sim_fences *out, char *err,
                     size_t err_size);
const struct sim_fence *sim_fences_find(const struct sim_fences *f, const char *id);
void sim_fences_release(struct sim_fences *f);

/* What a scenario is checked against. */
struct scenario_params {
    const char *id_prefix; /* e.g. "TRK-" */
    uint32_t trucks;
    int64_t start_ms;                /* at_s counts from here */
    const struct sim_fences *fences; /* may be NULL: then geofence_exit is an error */
};

struct scenario {
    struct fleet_incident *inc; /* sorted by truck, at_ms */
    char **line_text;           /* each incident as compact JSON, in its source order of keys (malloc) */
    size_t n;
};

/* Parses a whole scenario; returns 0, or -1 with "FILE:LINE: reason" in err
 * (nothing is allocated then).  A geofence_exit outside its fence's active
 * window is accepted with a warning (the detector will not alert on it).  Blank lines and lines starting with '#' are
 * skipped.  Two incidents of one truck may not overlap in time. */
int scenario_load(const char *path, const struct scenario_params *p, struct scenario *out, char *err, size_t err_size);
int scenario_parse(const char *name, const char *text, size_t len, const struct scenario_params *p,
                   struct scenario *out, char *err, size_t err_size);
void scenario_release(struct scenario *s);

/* Writes incident k's source line plus "start_ms" and "end_ms" as one JSON
 * line.  Returns 0 or -1. */
int scenario_write_truth(const struct scenario *s, size_t k, FILE *out);

#endif
