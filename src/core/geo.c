/*
 * geo.c - spherical great-circle math and GeoJSON geofences (see geo.h).
 *
 * The fence loader treats a fences file as hostile input: the buffer, the
 * number of features and the vertices of each fence are bounded before
 * anything is allocated for them, every value is type- and range-checked,
 * and the first problem found is reported with the feature it is in.  A set
 * that loads is therefore internally consistent: every fence has a unique id,
 * polygons have closed rings of at least 3 vertices whose edges do not
 * cross the antimeridian, circles have a radius > 0, and every bbox contains
 * its fence, so geo_fence_contains() may reject on the bbox alone.
 */
#include "core/geo.h"

#include "core/clock.h"
#include "core/readfile.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEG_TO_RAD (M_PI / 180.0)
#define RAD_TO_DEG (180.0 / M_PI)

/* A point this close to an edge (in degrees, about 0.1 mm) is on the
 * boundary: exact float equality would make "on the fence line" depend on
 * rounding in whoever produced the coordinates. */
#define EDGE_EPS_DEG 1e-9
/* Padding of every bbox (about 10 cm), so that a point the exact test accepts
 * is never lost to rounding in the box computation. */
#define BBOX_PAD_DEG 1e-6

/* --- great-circle math ------------------------------------------------- */

double geo_haversine_m(double lat1, double lon1, double lat2, double lon2)
{
    double dlat = (lat2 - lat1) * DEG_TO_RAD, dlon = (lon2 - lon1) * DEG_TO_RAD;
    double s1 = sin(dlat / 2), s2 = sin(dlon / 2);
    double a = s1 * s1 + cos(lat1 * DEG_TO_RAD) * cos(lat2 * DEG_TO_RAD) * s2 * s2;
    /* Rounding can push a a hair above 1 for antipodes; asin would give NaN. */
    return 2.0 * GEO_EARTH_RADIUS_M * asin(fmin(1.0, sqrt(a)));
}

/* Folds any finite angle into [0, 360); fmod of a tiny negative angle plus
 * 360 can round to exactly 360, which the contract excludes. */
static double norm_deg360(double deg)
{
    double d = fmod(deg, 360.0);
    if (d < 0)
        d += 360.0;
    return d >= 360.0 ? 0.0 : d;
}

double geo_bearing_deg(double lat1, double lon1, double lat2, double lon2)
{
    double p1 = lat1 * DEG_TO_RAD, p2 = lat2 * DEG_TO_RAD, dl = (lon2 - lon1) * DEG_TO_RAD;
    double y = sin(dl) * cos(p2);
    double x = cos(p1) * sin(p2) - sin(p1) * cos(p2) * cos(dl);
    return norm_deg360(atan2(y, x) * RAD_TO_DEG);
}

void geo_destination(double lat, double lon, double bearing_deg, double dist_m, double *out_lat, double *out_lon)
{
    double d = dist_m / GEO_EARTH_RADIUS_M, b = bearing_deg * DEG_TO_RAD;
    double p1 = lat * DEG_TO_RAD, l1 = lon * DEG_TO_RAD;
    double sin_p2 = sin(p1) * cos(d) + cos(p1) * sin(d) * cos(b);
    double p2 = asin(fmax(-1.0, fmin(1.0, sin_p2)));
    double l2 = l1 + atan2(sin(b) * sin(d) * cos(p1), cos(d) - sin(p1) * sin_p2);
    *out_lat = p2 * RAD_TO_DEG;
    *out_lon = norm_deg360(l2 * RAD_TO_DEG + 180.0) - 180.0;
}

double geo_implied_speed_kmh(double dist_m, int64_t dt_ms)
{
    double d = fabs(dist_m);
    /* via double: llabs(INT64_MIN) would overflow */
    double dt = fabs((double)dt_ms);
    if (d == 0)
        return 0.0;
    if (dt == 0)
        return INFINITY;
    return d / dt * 3600.0; /* m/ms = 1000 m/s = 3600 km/h */
}

/* --- containment ------------------------------------------------------- */

/* Planar distance from (x, y) to the segment (x1, y1)-(x2, y2) within eps. */
static int near_segment(double x, double y, double x1, double y1, double x2, double y2)
{
    double dx = x2 - x1, dy = y2 - y1, len2 = dx * dx + dy * dy;
    double t = len2 > 0 ? ((x - x1) * dx + (y - y1) * dy) / len2 : 0.0;
    t = fmax(0.0, fmin(1.0, t));
    double ex = x - (x1 + t * dx), ey = y - (y1 + t * dy);
    return ex * ex + ey * ey <= EDGE_EPS_DEG * EDGE_EPS_DEG;
}

enum ring_where { RING_OUTSIDE, RING_INSIDE, RING_ON_EDGE };

/* Ray casting (W. R. Franklin's PNPOLY) with x = lon, y = lat, plus an
 * explicit edge test because ray casting alone puts boundary points on
 * either side depending on the edge's direction. */
static enum ring_where ring_locate(const struct geo_ring *r, double lat, double lon)
{
    int inside = 0;
    for (size_t i = 0, j = r->count - 1; i < r->count; j = i++) {
        double xi = r->pts[i].lon, yi = r->pts[i].lat, xj = r->pts[j].lon, yj = r->pts[j].lat;
        if (near_segment(lon, lat, xi, yi, xj, yj))
            return RING_ON_EDGE;
        if ((yi > lat) != (yj > lat) && lon < (xj - xi) * (lat - yi) / (yj - yi) + xi)
            inside = !inside;
    }
    return inside ? RING_INSIDE : RING_OUTSIDE;
}

int geo_polygon_contains(const struct geo_ring *rings, size_t ring_count, double lat, double lon)
{
    if (ring_count == 0 || rings[0].count == 0)
        return 0;
    enum ring_where w = ring_locate(&rings[0], lat, lon);
    if (w != RING_INSIDE)
        return w == RING_ON_EDGE;
    for (size_t h = 1; h < ring_count; h++) {
        if (rings[h].count == 0)
            continue;
        w = ring_locate(&rings[h], lat, lon);
        if (w == RING_ON_EDGE)
            return 1; /* a hole's edge is the polygon's boundary too */
        if (w == RING_INSIDE)
            return 0;
    }
    return 1;
}

int geo_circle_contains(double center_lat, double center_lon, double radius_m, double lat, double lon)
{
    return geo_haversine_m(center_lat, center_lon, lat, lon) <= radius_m;
}

int geo_fence_contains(const struct geo_fence *f, double lat, double lon)
{
    if (lon < f->bbox[0] || lat < f->bbox[1] || lon > f->bbox[2] || lat > f->bbox[3])
        return 0;
    if (f->kind == GEO_FENCE_CIRCLE)
        return geo_circle_contains(f->center_lat, f->center_lon, f->radius_m, lat, lon);
    return geo_polygon_contains(f->rings, f->ring_count, lat, lon);
}

int geo_fence_active(const struct geo_fence *f, int64_t ts_ms)
{
    if (!f->has_window)
        return 1;
    int64_t ms = ts_ms % FS_DAY_MS;
    if (ms < 0)
        ms += FS_DAY_MS; /* C's % truncates toward zero: times before 1970 */
    int min = (int)(ms / 60000);
    if (f->window_start_min < f->window_end_min)
        return min >= f->window_start_min && min < f->window_end_min;
    return min >= f->window_start_min || min < f->window_end_min;
}

/* --- fence set --------------------------------------------------------- */

const struct geo_fence *geo_fences_find(const struct geo_fence_set *s, const char *id)
{
    for (size_t k = 0; s && id && k < s->count; k++)
        if (strcmp(s->fences[k].id, id) == 0)
            return &s->fences[k];
    return NULL;
}

static void fence_release(struct geo_fence *f)
{
    free(f->rings);
    free(f->points);
    f->rings = NULL;
    f->points = NULL;
    f->ring_count = 0;
}

void geo_fence_set_release(struct geo_fence_set *s)
{
    if (!s)
        return;
    for (size_t k = 0; k < s->count; k++)
        fence_release(&s->fences[k]);
    free(s->fences);
    s->fences = NULL;
    s->count = 0;
}

/* --- loading: error reporting ------------------------------------------ */

struct load_ctx {
    char *err;
    size_t err_size;
    size_t feature; /* counted from 1; 0 while outside the features */
    const char *id; /* the current feature's id once validated */
};

/* Copies s into dst (at most max bytes of s), control characters replaced
 * by '?' so that input quoted in a message cannot break the log line. */
static const char *printable(char *dst, size_t dst_size, const char *s, size_t max)
{
    size_t n = 0;
    for (; s && *s && n < max && n + 4 < dst_size; s++)
        dst[n++] = ((unsigned char)*s < 0x20 || *s == 0x7f) ? '?' : *s;
    if (s && *s && n + 4 <= dst_size) {
        memcpy(dst + n, "...", 3);
        n += 3;
    }
    dst[n] = '\0';
    return dst;
}

__attribute__((format(printf, 2, 3))) static int fail(struct load_ctx *c, const char *fmt, ...)
{
    char reason[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, sizeof(reason), fmt, ap);
    va_end(ap);
    if (!c->err || c->err_size == 0)
        return -1;
    if (c->feature && c->id)
        snprintf(c->err, c->err_size, "feature %zu (id \"%s\"): %s", c->feature, c->id, reason);
    else if (c->feature)
        snprintf(c->err, c->err_size, "feature %zu: %s", c->feature, reason);
    else
        snprintf(c->err, c->err_size, "%s", reason);
    return -1;
}

/* --- loading: geometry ------------------------------------------------- */

/* A GeoJSON position: [lon, lat] or [lon, lat, altitude]. */
static int parse_position(struct load_ctx *c, json_t *pos, const char *where, struct geo_lonlat *out)
{
    size_t n = json_array_size(pos);
    if (!json_is_array(pos) || n < 2 || n > 3 || !json_is_number(json_array_get(pos, 0)) ||
        !json_is_number(json_array_get(pos, 1)) || (n == 3 && !json_is_number(json_array_get(pos, 2))))
        return fail(c, "%s must be [lon, lat] numbers", where);
    out->lon = json_number_value(json_array_get(pos, 0));
    out->lat = json_number_value(json_array_get(pos, 1));
    if (!(out->lon >= -180 && out->lon <= 180 && out->lat >= -90 && out->lat <= 90))
        return fail(c, "%s [%.10g, %.10g] is out of range: GeoJSON is [lon, lat], lon in [-180, 180], lat in [-90, 90]",
                    where, out->lon, out->lat);
    return 0;
}

static void ring_name(char *dst, size_t size, size_t r)
{
    if (r == 0)
        snprintf(dst, size, "outer ring");
    else
        snprintf(dst, size, "hole %zu", r);
}

/* Reads ring r (JSON array of positions) into pts[0..size-2]: GeoJSON's
 * closing position is checked, then dropped. */
static int parse_ring(struct load_ctx *c, json_t *ring, size_t r, struct geo_lonlat *pts)
{
    char name[32], where[96];
    size_t n = json_array_size(ring);
    ring_name(name, sizeof(name), r);
    if (n < 4)
        return fail(c, "%s has %zu position%s, needs at least 4 (a closed ring: the last repeats the first)", name, n,
                    n == 1 ? "" : "s");
    struct geo_lonlat last;
    for (size_t v = 0; v < n; v++) {
        snprintf(where, sizeof(where), "position %zu of the %s", v + 1, name);
        struct geo_lonlat *p = v + 1 < n ? &pts[v] : &last;
        if (parse_position(c, json_array_get(ring, v), where, p) != 0)
            return -1;
        if (v > 0 && fabs(p->lon - pts[v - 1].lon) > 180)
            return fail(c,
                        "%s crosses the antimeridian between positions %zu and %zu; split the fence there "
                        "(RFC 7946 section 3.1.9)",
                        name, v, v + 1);
    }
    if (last.lon != pts[0].lon || last.lat != pts[0].lat)
        return fail(c, "%s is not closed: its last position must repeat the first", name);
    return 0;
}

static int parse_polygon(struct load_ctx *c, json_t *geom, struct geo_fence *f)
{
    json_t *coords = json_object_get(geom, "coordinates");
    size_t nrings = json_array_size(coords), total = 0;
    if (!json_is_array(coords))
        return fail(c, "Polygon coordinates must be an array of rings");
    if (nrings == 0)
        return fail(c, "Polygon has no rings");
    /* Bound the allocation before making it: count first. */
    for (size_t r = 0; r < nrings; r++) {
        json_t *ring = json_array_get(coords, r);
        char name[32];
        ring_name(name, sizeof(name), r);
        if (!json_is_array(ring))
            return fail(c, "%s must be an array of positions", name);
        total += json_array_size(ring);
        if (total > GEO_MAX_FENCE_VERTICES)
            return fail(c, "Polygon has more than %d positions; simplify it", GEO_MAX_FENCE_VERTICES);
    }
    f->kind = GEO_FENCE_POLYGON;
    f->rings = calloc(nrings, sizeof(*f->rings));
    f->points = calloc(total, sizeof(*f->points)); /* total >= nrings > 0 */
    if (!f->rings || !f->points)
        return fail(c, "out of memory");
    f->ring_count = nrings;
    struct geo_lonlat *next = f->points;
    for (size_t r = 0; r < nrings; r++) {
        json_t *ring = json_array_get(coords, r);
        if (parse_ring(c, ring, r, next) != 0)
            return -1;
        f->rings[r].pts = next;
        f->rings[r].count = json_array_size(ring) - 1;
        next += f->rings[r].count;
    }
    const struct geo_ring *outer = &f->rings[0];
    f->bbox[0] = f->bbox[2] = outer->pts[0].lon;
    f->bbox[1] = f->bbox[3] = outer->pts[0].lat;
    for (size_t v = 1; v < outer->count; v++) {
        f->bbox[0] = fmin(f->bbox[0], outer->pts[v].lon);
        f->bbox[1] = fmin(f->bbox[1], outer->pts[v].lat);
        f->bbox[2] = fmax(f->bbox[2], outer->pts[v].lon);
        f->bbox[3] = fmax(f->bbox[3], outer->pts[v].lat);
    }
    f->bbox[0] -= BBOX_PAD_DEG;
    f->bbox[1] -= BBOX_PAD_DEG;
    f->bbox[2] += BBOX_PAD_DEG;
    f->bbox[3] += BBOX_PAD_DEG;
    return 0;
}

/* The box around a spherical cap: the latitude extent is the radius as an
 * angle; the longitude extent is asin(sin d / cos lat), the meridians the
 * cap's edge touches.  A cap over a pole or across the antimeridian gets all
 * longitudes, which is still a correct (if useless) prefilter. */
static void circle_bbox(struct geo_fence *f)
{
    double d = f->radius_m / GEO_EARTH_RADIUS_M;
    double dlat = d * RAD_TO_DEG;
    double lat_lo = f->center_lat - dlat, lat_hi = f->center_lat + dlat;
    double s = sin(d) / cos(f->center_lat * DEG_TO_RAD);
    f->bbox[0] = -180.0;
    f->bbox[2] = 180.0;
    if (d < M_PI / 2 && lat_lo > -90 && lat_hi < 90 && s < 1) {
        double dlon = asin(s) * RAD_TO_DEG;
        if (f->center_lon - dlon > -180 && f->center_lon + dlon < 180) {
            f->bbox[0] = f->center_lon - dlon - BBOX_PAD_DEG;
            f->bbox[2] = f->center_lon + dlon + BBOX_PAD_DEG;
        }
    }
    f->bbox[1] = fmax(-90.0, lat_lo - BBOX_PAD_DEG);
    f->bbox[3] = fmin(90.0, lat_hi + BBOX_PAD_DEG);
}

static int parse_circle(struct load_ctx *c, json_t *geom, json_t *props, struct geo_fence *f)
{
    struct geo_lonlat centre;
    if (parse_position(c, json_object_get(geom, "coordinates"), "Point position", &centre) != 0)
        return -1;
    json_t *r = json_object_get(props, "radius_m");
    if (!json_is_number(r) || !(json_number_value(r) > 0))
        return fail(c, "Point needs properties.radius_m > 0 (metres)");
    f->kind = GEO_FENCE_CIRCLE;
    f->center_lat = centre.lat;
    f->center_lon = centre.lon;
    f->radius_m = json_number_value(r);
    circle_bbox(f);
    return 0;
}

/* --- loading: properties ----------------------------------------------- */

static int two_digits(const char *s)
{
    if (s[0] < '0' || s[0] > '9' || s[1] < '0' || s[1] > '9')
        return -1;
    return (s[0] - '0') * 10 + (s[1] - '0');
}

/* "HH:MM-HH:MM", exactly, 24-hour UTC. */
static int parse_window(struct load_ctx *c, json_t *active, struct geo_fence *f)
{
    static const char form[] = "\"HH:MM-HH:MM\" (UTC, 24-hour clock)";
    if (!json_is_string(active))
        return fail(c, "properties.active must be a string %s", form);
    const char *s = json_string_value(active);
    char shown[48];
    printable(shown, sizeof(shown), s, 24);
    if (json_string_length(active) != 11 || s[2] != ':' || s[5] != '-' || s[8] != ':')
        return fail(c, "properties.active \"%s\" is not %s", shown, form);
    int h1 = two_digits(s), m1 = two_digits(s + 3), h2 = two_digits(s + 6), m2 = two_digits(s + 9);
    if (h1 < 0 || m1 < 0 || h2 < 0 || m2 < 0)
        return fail(c, "properties.active \"%s\" is not %s", shown, form);
    if (h1 > 23 || h2 > 23 || m1 > 59 || m2 > 59)
        return fail(c, "properties.active \"%s\": hours must be 00-23 and minutes 00-59", shown);
    if (h1 == h2 && m1 == m2)
        return fail(c,
                    "properties.active \"%s\" starts and ends at the same time; leave it out for a fence that is "
                    "always active",
                    shown);
    f->has_window = 1;
    f->window_start_min = h1 * 60 + m1;
    f->window_end_min = h2 * 60 + m2;
    return 0;
}

static int parse_id(struct load_ctx *c, json_t *props, struct geo_fence *f)
{
    json_t *id = json_object_get(props, "id");
    if (!id)
        return fail(c, "needs properties.id, a string naming the fence");
    if (!json_is_string(id))
        return fail(c, "properties.id must be a string");
    size_t n = json_string_length(id);
    const char *s = json_string_value(id);
    if (n == 0 || n > GEO_FENCE_ID_MAX)
        return fail(c, "properties.id must be 1-%d bytes long (got %zu)", GEO_FENCE_ID_MAX, n);
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return fail(c, "properties.id must not contain control characters");
    memcpy(f->id, s, n);
    f->id[n] = '\0';
    return 0;
}

static int parse_feature(struct load_ctx *c, json_t *ft, json_t *seen, struct geo_fence *f)
{
    char shown[48];
    if (!json_is_object(ft))
        return fail(c, "must be a GeoJSON Feature object");
    const char *type = json_string_value(json_object_get(ft, "type"));
    if (!type || strcmp(type, "Feature") != 0)
        return fail(c, "\"type\" must be \"Feature\"");
    json_t *props = json_object_get(ft, "properties");
    if (!json_is_object(props))
        return fail(c, "needs properties with an id naming the fence");
    if (parse_id(c, props, f) != 0)
        return -1;
    c->id = f->id;
    json_t *first = json_object_get(seen, f->id);
    if (first)
        return fail(c, "fence id is already used by feature %lld; ids must be unique",
                    (long long)json_integer_value(first));
    if (json_object_set_new(seen, f->id, json_integer((json_int_t)c->feature)) != 0)
        return fail(c, "out of memory");

    json_t *geom = json_object_get(ft, "geometry");
    const char *gtype = json_string_value(json_object_get(geom, "type"));
    if (!json_is_object(geom) || !gtype)
        return fail(c, "needs a geometry: a Polygon, or a Point with properties.radius_m");
    int rc;
    if (strcmp(gtype, "Polygon") == 0)
        rc = parse_polygon(c, geom, f);
    else if (strcmp(gtype, "Point") == 0)
        rc = parse_circle(c, geom, props, f);
    else
        rc = fail(c, "unsupported geometry type %s; use Polygon, or Point with properties.radius_m",
                  printable(shown, sizeof(shown), gtype, 32));
    if (rc != 0)
        return -1;
    json_t *active = json_object_get(props, "active");
    return active ? parse_window(c, active, f) : 0;
}

int geo_fences_load_buf(const char *buf, size_t len, struct geo_fence_set *out, char *err, size_t err_size)
{
    struct load_ctx c = {.err = err, .err_size = err_size};
    json_t *root = NULL, *seen = NULL;
    char shown[160];
    int rc = -1;

    memset(out, 0, sizeof(*out));
    if (err_size)
        err[0] = '\0';
    if (len > GEO_MAX_FILE_BYTES) {
        fail(&c, "geofences are larger than the limit of %u MiB", GEO_MAX_FILE_BYTES >> 20);
        goto out;
    }
    json_error_t je;
    root = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &je);
    if (!root) {
        fail(&c, "invalid JSON at line %d, column %d: %s", je.line, je.column,
             printable(shown, sizeof(shown), je.text, 120));
        goto out;
    }
    const char *type = json_string_value(json_object_get(root, "type"));
    if (!json_is_object(root) || !type || strcmp(type, "FeatureCollection") != 0) {
        fail(&c, "not a GeoJSON FeatureCollection: the top level must be an object with \"type\": "
                 "\"FeatureCollection\"");
        goto out;
    }
    json_t *features = json_object_get(root, "features");
    if (!json_is_array(features)) {
        fail(&c, "the FeatureCollection has no \"features\" array");
        goto out;
    }
    size_t n = json_array_size(features);
    if (n > GEO_MAX_FENCES) {
        fail(&c, "%zu features, more than the limit of %d fences", n, GEO_MAX_FENCES);
        goto out;
    }
    seen = json_object();
    out->fences = calloc(n ? n : 1, sizeof(*out->fences));
    if (!seen || !out->fences) {
        fail(&c, "out of memory");
        goto out;
    }
    for (size_t k = 0; k < n; k++) {
        c.feature = k + 1;
        c.id = NULL;
        /* Counted before parsing so that a half-built fence is released. */
        out->count++;
        if (parse_feature(&c, json_array_get(features, k), seen, &out->fences[k]) != 0)
            goto out;
    }
    rc = 0;
out:
    json_decref(seen);
    json_decref(root);
    if (rc)
        geo_fence_set_release(out);
    return rc;
}

int geo_fences_load_file(const char *path, struct geo_fence_set *out, char *err, size_t err_size)
{
    char reason[512];
    char *text = NULL;
    size_t len = 0;
    int rc = -1, e;

    memset(out, 0, sizeof(*out));
    FILE *f = fopen(path, "rb");
    if (!f) {
        e = errno;
        goto fail_errno;
    }
    /* At most GEO_MAX_FILE_BYTES + 1 bytes: geo_fences_load_buf refuses
     * an oversized file by its own limit without all of it read. */
    e = readfile_bounded(f, GEO_MAX_FILE_BYTES, &text, &len);
    fclose(f);
    if (e)
        goto fail_errno;
    rc = geo_fences_load_buf(text, len, out, reason, sizeof(reason));
    free(text);
    if (rc != 0 && err_size)
        snprintf(err, err_size, "%s: %s", path, reason);
    return rc;
fail_errno:
    if (err_size)
        snprintf(err, err_size, "cannot read geofences from %s: %s", path, strerror(e));
    return -1;
}
