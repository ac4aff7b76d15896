/*
 * geo.h - great-circle math and geofences, shared by the simulator (moving
 * trucks, anchoring geofence_exit incidents) and the detector (gps_jump,
 * stationary_engine_on, geofence_exit).  docs/design.md "Alerts", "Simulator
 * scenarios and geofences".
 *
 * The Earth is a sphere of GEO_EARTH_RADIUS_M.  Against the WGS84 ellipsoid
 * this errs by at most about 0.5 % in distance (Munich-Berlin: 504.30 km here,
 * 504.58 km on the ellipsoid), far below what the alert rules care about
 * (50 m radii, speeds implied by jumps of hundreds of km), and it keeps
 * distance, bearing and destination mutually consistent: moving a point with
 * geo_destination() by d metres puts it d metres away by geo_haversine_m().
 *
 * Arguments are always (lat, lon) in degrees, as in telemetry; GeoJSON's
 * [lon, lat] order exists only inside struct geo_lonlat.
 *
 * Everything here is pure (no globals, no I/O except geo_fences_load_file)
 * and may be called from any thread; a loaded geo_fence_set is read-only and
 * may be shared between threads.
 */
#ifndef FS_GEO_H
#define FS_GEO_H

#include <stddef.h>
#include <stdint.h>

/* IUGG mean Earth radius R1 = (2a + b) / 3 of WGS84: the sphere that
 * minimises the average distance error over the globe. */
#define GEO_EARTH_RADIUS_M 6371008.8

/* Limits of a fences file: anything beyond is an error, never a crash or an
 * unbounded allocation. */
#define GEO_FENCE_ID_MAX 64            /* bytes of properties.id */
#define GEO_MAX_FENCES 10000           /* features per file */
#define GEO_MAX_FENCE_VERTICES 100000  /* positions of one Polygon, all rings, as written */
#define GEO_MAX_FILE_BYTES (16u << 20) /* 16 MiB */

/* Great-circle distance in metres (haversine), >= 0. */
double geo_haversine_m(double lat1, double lon1, double lat2, double lon2);

/* Initial bearing of the great circle from point 1 to point 2, degrees
 * clockwise from true north, in [0, 360).  0 when the points coincide. */
double geo_bearing_deg(double lat1, double lon1, double lat2, double lon2);

/* The point reached by travelling dist_m metres from (lat, lon) along the
 * great circle with initial bearing bearing_deg.  *out_lon is in
 * [-180, 180).  out_lat and out_lon must not be NULL. */
void geo_destination(double lat, double lon, double bearing_deg, double dist_m, double *out_lat, double *out_lon);

/* Speed in km/h needed to cover dist_m metres in dt_ms milliseconds.
 * Direction in time does not matter: a negative dt_ms (readings compared out
 * of order) gives the same speed as its absolute value.  dt_ms == 0 gives 0
 * when dist_m == 0 (a duplicate reading) and INFINITY otherwise (a jump
 * within one timestamp is impossible), so that "speed > limit" flags it.
 * Callers must not serialise INFINITY into JSON. */
double geo_implied_speed_kmh(double dist_m, int64_t dt_ms);

/* A GeoJSON position. */
struct geo_lonlat {
    double lon, lat;
};

/* A linear ring without GeoJSON's repeated closing position: count >= 3
 * vertices, the edge from pts[count - 1] back to pts[0] is implied. */
struct geo_ring {
    struct geo_lonlat *pts;
    size_t count;
};

/* Whether (lat, lon) lies in the polygon rings[0] minus the holes
 * rings[1..ring_count-1].  Planar ray casting in lon/lat, which is exact
 * enough for fence-sized polygons (a few km) away from the poles; rings must
 * not cross the antimeridian.  Points on an edge of the outer ring or of a
 * hole (within 1e-9 degrees, about 0.1 mm) count as inside: a truck parked on
 * the fence line has not left.  Returns 1 or 0; 0 when ring_count is 0. */
int geo_polygon_contains(const struct geo_ring *rings, size_t ring_count, double lat, double lon);

/* Whether (lat, lon) is within radius_m metres of the centre (boundary
 * included).  Returns 1 or 0. */
int geo_circle_contains(double center_lat, double center_lon, double radius_m, double lat, double lon);

enum geo_fence_kind { GEO_FENCE_POLYGON, GEO_FENCE_CIRCLE };

struct geo_fence {
    char id[GEO_FENCE_ID_MAX + 1]; /* properties.id: 1-64 bytes, no control characters */
    enum geo_fence_kind kind;
    /* GEO_FENCE_POLYGON: rings[0] is the outer ring, the rest are holes.
     * rings and the vertices they point into (points) are owned by the set. */
    struct geo_ring *rings;
    size_t ring_count;
    struct geo_lonlat *points;
    /* GEO_FENCE_CIRCLE: a GeoJSON Point with properties.radius_m (zero for
     * polygons). */
    double center_lat, center_lon, radius_m;
    /* properties.active "HH:MM-HH:MM" (UTC): leaving the fence alerts only
     * inside [start, end); end < start wraps past midnight. */
    int has_window;
    int window_start_min, window_end_min; /* minutes after 00:00 UTC, 0-1439 */
    /* min_lon, min_lat, max_lon, max_lat (GeoJSON bbox order), slightly
     * padded; a prefilter only.  A circle whose box would cross the
     * antimeridian or reach a pole gets the full longitude range. */
    double bbox[4];
};

struct geo_fence_set {
    struct geo_fence *fences; /* in file order */
    size_t count;
};

/* Parses a GeoJSON FeatureCollection of len bytes (no NUL terminator needed)
 * into *out.  Each feature is a Polygon (rings closed, at least 4 positions
 * each, no edge spanning more than 180 degrees of longitude) or a Point with
 * properties.radius_m > 0; properties.id (string, unique) is required,
 * properties.active optional; other properties are ignored.  Duplicate JSON
 * keys are an error.
 *
 * Returns 0 and fills *out, which the caller releases with
 * geo_fence_set_release().  Returns -1 with *out empty (nothing to release)
 * and err holding one line that names the problem and, for a feature, its
 * number counted from 1 (and id when known), e.g.
 * "feature 3 (id \"yard-hamburg\"): outer ring has 2 positions, needs at least 4".
 * err is always NUL-terminated and free of control characters (input quoted
 * in it has them replaced by '?'); it may be NULL if err_size is 0. */
int geo_fences_load_buf(const char *buf, size_t len, struct geo_fence_set *out, char *err, size_t err_size);

/* geo_fences_load_buf() on the contents of a file (at most
 * GEO_MAX_FILE_BYTES, of which no more than that plus one byte is read);
 * err starts with the path, e.g. "fences.geojson: feature 2 ...", or reads
 * "cannot read geofences from PATH: <strerror>". */
int geo_fences_load_file(const char *path, struct geo_fence_set *out, char *err, size_t err_size);

/* The fence with this id, or NULL (also when s or id is NULL).  A linear
 * scan: look fences up once, not per reading. */
const struct geo_fence *geo_fences_find(const struct geo_fence_set *s, const char *id);

/* Whether (lat, lon) is inside the fence, boundary included (see
 * geo_polygon_contains, geo_circle_contains).  Returns 1 or 0. */
int geo_fence_contains(const struct geo_fence *f, double lat, double lon);

/* Whether the fence's time window covers the UTC time of day of ts_ms
 * (event time, ms since the Unix epoch; any int64_t, also before 1970).
 * 1 when the fence has no window. */
int geo_fence_active(const struct geo_fence *f, int64_t ts_ms);

/* Frees every fence and empties *s; safe on an empty or released set. */
void geo_fence_set_release(struct geo_fence_set *s);

#endif
