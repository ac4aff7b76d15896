/*
 * report.c - `fleetsync report`: the history queries people ask for (see
 * report.h and docs/report.md).
 *
 * Each subcommand is one row of `subs`: the options it takes, the ones it
 * needs, its default time window, and a function that runs its query and
 * prints the answer.  One option table (core/opts.h) parses and checks the
 * values and makes each report's --help from the options it takes; window
 * resolution, the connection and pg_migrate() (so that an empty database
 * answers with empty results) are shared.  Tables, CSV and JSON are printed
 * by core/table.h.  Values from the command line reach SQL only as parameters of
 * PQexecParams; SQL text is built from constant fragments only.
 */
#include "report/report.h"

#include "core/clock.h"
#include "report/invoice.h"

#include "core/config.h"
#include "core/log.h"
#include "core/opts.h"
#include "core/pg.h"
#include "core/rollup.h"
#include "core/table.h"
#include "core/timeparse.h"
#include "report/trips.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define TRUCK_ID_MAX 1024 /* bytes; longer is a usage error */

/* ---- parsing ------------------------------------------------------------ */

int report_parse_duration(const char *s, int64_t *ms)
{
    return time_parse_duration(s, 36500 * FS_DAY_MS, ms, NULL, 0);
}

int report_parse_day(const char *s, int64_t *ms)
{
    return time_parse_day(s, ms, NULL, 0);
}

int report_parse_time(const char *s, int64_t *ms)
{
    return time_parse_iso8601(s, 1, ms, NULL, 0);
}

/* ---- formatting --------------------------------------------------------- */

void report_xml_text(FILE *out, const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        switch (*p) {
        case '&':
            fputs("&amp;", out);
            break;
        case '<':
            fputs("&lt;", out);
            break;
        case '>':
            fputs("&gt;", out);
            break;
        case '"':
            fputs("&quot;", out);
            break;
        case '\'':
            fputs("&apos;", out);
            break;
        default:
            fputc(*p < 0x20 && *p != '\t' && *p != '\n' && *p != '\r' ? '?' : *p, out);
        }
    }
}

/* ---- options ------------------------------------------------------------ */

/* The options of every report: indices into the option table of
 * cmd_report, and bits of struct ropts.given. */
enum {
    O_TRUCK,
    O_FLEET,
    O_SINCE,
    O_FROM,
    O_TO,
    O_DAY,
    O_MIN_STOP,
    O_MIN_TRIP,
    O_RULE,
    O_FORMAT,
    O_JSON,
    O_CSV,
    O_COUNT
};
#define BIT(o) ((uint64_t)1 << (o))
#define WINDOW (BIT(O_SINCE) | BIT(O_FROM) | BIT(O_TO))
#define OUTPUT (BIT(O_FORMAT) | BIT(O_JSON) | BIT(O_CSV))

enum out_format { OUT_TABLE, OUT_JSON, OUT_CSV, OUT_GEOJSON, OUT_GPX }; /* the words of --format */

struct ropts {
    uint64_t given; /* BIT(O_...) of the options on the command line */
    const char *truck;
    int64_t since_ms, from_ms, to_ms, day_ms;
    struct trips_params tp;
    const char *rule;
    int fleet;
    int out; /* enum out_format */
    /* Resolved: the query window [from, to). */
    int64_t win_from_ms, win_to_ms;
};

struct sub {
    const char *name;
    int (*run)(PGconn *conn, struct ropts *o, char *err, size_t err_size);
    uint64_t allowed;      /* options it takes besides the output ones */
    uint64_t required;     /* options it needs */
    int64_t default_since; /* window when none is given; 0 = a window is required */
    const char *synopsis;
    const char *about;    /* what it answers, before the options in its --help */
    const char *examples; /* after the options */
};

/* Option callbacks: the messages follow "--NAME " (core/opts.h). */
static int opt_since(void *value, const char *arg, char *err, size_t err_size)
{
    if (report_parse_duration(arg, value) || *(int64_t *)value <= 0) {
        snprintf(err, err_size, "needs a duration such as 90s, 30m, 2h or 7d");
        return -1;
    }
    return 0;
}

static int opt_min_stop(void *value, const char *arg, char *err, size_t err_size)
{
    if (report_parse_duration(arg, value)) {
        snprintf(err, err_size, "needs a duration such as 90s or 5m");
        return -1;
    }
    return 0;
}

static int opt_time(void *value, const char *arg, char *err, size_t err_size)
{
    if (report_parse_time(arg, value)) {
        snprintf(err, err_size, "needs an ISO 8601 time with Z or an offset (2026-11-01T08:00:00Z) or a date");
        return -1;
    }
    return 0;
}

static int opt_day(void *value, const char *arg, char *err, size_t err_size)
{
    if (report_parse_day(arg, value)) {
        snprintf(err, err_size, "needs a UTC day YYYY-MM-DD");
        return -1;
    }
    return 0;
}

static int opt_rule(void *value, const char *arg, char *err, size_t err_size)
{
    if (!*arg) {
        snprintf(err, err_size, "needs a rule name");
        return -1;
    }
    *(const char **)value = arg;
    return 0;
}

/* ---- queries ------------------------------------------------------------ */

/* Runs sql with text parameters; NULL with a reason in err on failure. */
static PGresult *query(PGconn *conn, const char *sql, int nparams, const char *const *vals, char *err, size_t err_size)
{
    PGresult *res = PQexecParams(conn, sql, nparams, NULL, vals, NULL, NULL, 0);
    if (PQresultStatus(res) == PGRES_TUPLES_OK)
        return res;
    char why[512];
    pg_error(conn, res, why, sizeof(why));
    snprintf(err, err_size, "query failed: %s", why);
    PQclear(res);
    return NULL;
}

static double col_double(const PGresult *r, int row, int col)
{
    return PQgetisnull(r, row, col) ? NAN : strtod(PQgetvalue(r, row, col), NULL);
}

static int64_t col_ms(const PGresult *r, int row, int col)
{
    return PQgetisnull(r, row, col) ? INT64_MIN : strtoll(PQgetvalue(r, row, col), NULL, 10);
}

static const char *col_text(const PGresult *r, int row, int col)
{
    return PQgetisnull(r, row, col) ? NULL : PQgetvalue(r, row, col);
}

/* ms since the epoch of a timestamptz column, for a select list. */
#define MS_OF(col) "(extract(epoch FROM " col ") * 1000)::bigint"

/* The hours of the window [$2, $3): telemetry's packed truck-hours are
 * found by their key (truck_id, hour) instead of all being decoded
 * (docs/history.md, Packed hours). */
#define IN_HOURS " AND hour > $2::timestamptz - interval '1 hour' AND hour < $3"

/* Readings with a real position and speed: the bridge lets no other through,
 * but a row written by hand could hold NaN (which PostgreSQL sorts above every
 * number), and NaN would make invalid GeoJSON. */
#define VALID_POSITION " AND lat BETWEEN -90 AND 90 AND lon BETWEEN -180 AND 180 AND speed_kmh BETWEEN 0 AND 1000"

static enum table_format table_format(const struct ropts *o)
{
    return o->out == OUT_JSON ? TABLE_JSON : o->out == OUT_CSV ? TABLE_CSV : TABLE_TEXT;
}

static int print_and_release(struct table *t, const struct ropts *o, char *err, size_t err_size)
{
    int rc = table_print(t, table_format(o), stdout);
    table_release(t);
    if (rc < 0)
        snprintf(err, err_size, "cannot write the report: %s", errno ? strerror(errno) : "out of memory");
    return rc;
}

/* Rollups are per hour: a window covers the hours it touches. */
static void hour_window(struct ropts *o)
{
    o->win_from_ms = rollup_hour_of(o->win_from_ms);
    o->win_to_ms = rollup_hour_of(o->win_to_ms - 1) + ROLLUP_HOUR_MS;
}

static int run_avg_speed(PGconn *conn, struct ropts *o, char *err, size_t err_size)
{
    static const struct table_col cols[] = {
        {"truck_id", "truck", 0, 0}, {"trucks", NULL, 1, 0},       {"from", NULL, 0, 0},          {"to", NULL, 0, 0},
        {"distance_km", NULL, 1, 0}, {"moving_s", "moving", 1, 0}, {"avg_speed_kmh", NULL, 1, 0},
    };
    char from[40], to[40];
    hour_window(o);
    const char *vals[] = {pg_format_ts(o->win_from_ms, from, sizeof(from)), pg_format_ts(o->win_to_ms, to, sizeof(to)),
                          o->truck};
    PGresult *r = query(conn,
                        o->truck ? "SELECT count(DISTINCT truck_id), coalesce(sum(distance_km), 0),"
                                   " coalesce(sum(moving_s), 0) FROM telemetry_hourly"
                                   " WHERE hour >= $1 AND hour < $2 AND truck_id = $3"
                                 : "SELECT count(DISTINCT truck_id), coalesce(sum(distance_km), 0),"
                                   " coalesce(sum(moving_s), 0) FROM telemetry_hourly"
                                   " WHERE hour >= $1 AND hour < $2",
                        o->truck ? 3 : 2, vals, err, err_size);
    if (!r)
        return -1;
    double km = col_double(r, 0, 1), moving_s = col_double(r, 0, 2);
    struct table t;
    table_init(&t, cols, sizeof(cols) / sizeof(cols[0]));
    table_str(&t, o->truck, "(fleet)");
    table_num(&t, col_double(r, 0, 0), 0);
    table_time(&t, o->win_from_ms);
    table_time(&t, o->win_to_ms);
    table_num(&t, km, 3);
    table_dur(&t, moving_s);
    table_num(&t, moving_s > 0 ? km / moving_s * 3600.0 : NAN, 1);
    PQclear(r);
    return print_and_release(&t, o, err, err_size);
}

static int run_summary(PGconn *conn, struct ropts *o, char *err, size_t err_size)
{
    static const struct table_col cols[] = {
        {"truck_id", "truck", 0, 0},   {"distance_km", NULL, 1, 0},   {"driving_s", "driving", 1, 0},
        {"idle_s", "idle", 1, 0},      {"parked_s", "parked", 1, 0},  {"max_speed_kmh", NULL, 1, 0},
        {"fuel_used_pct", NULL, 1, 0}, {"avg_speed_kmh", NULL, 1, 0},
    };
    char from[40], to[40];
    hour_window(o);
    const char *vals[] = {pg_format_ts(o->win_from_ms, from, sizeof(from)), pg_format_ts(o->win_to_ms, to, sizeof(to)),
                          o->truck};
#define SUMMARY_SQL                                                                                                    \
    "SELECT truck_id, sum(distance_km), sum(moving_s), sum(idle_s), sum(parked_s), max(max_speed_kmh),"                \
    " sum(fuel_used_pct) FROM telemetry_hourly WHERE hour >= $1 AND hour < $2"
#define SUMMARY_END " GROUP BY truck_id ORDER BY truck_id COLLATE \"C\""
    PGresult *r = query(conn, o->truck ? SUMMARY_SQL " AND truck_id = $3" SUMMARY_END : SUMMARY_SQL SUMMARY_END,
                        o->truck ? 3 : 2, vals, err, err_size);
    if (!r)
        return -1;
    struct table t;
    table_init(&t, cols, sizeof(cols) / sizeof(cols[0]));
    for (int i = 0; i < PQntuples(r); i++) {
        double km = col_double(r, i, 1), moving_s = col_double(r, i, 2);
        table_str(&t, col_text(r, i, 0), NULL);
        table_num(&t, km, 3);
        table_dur(&t, moving_s);
        table_dur(&t, col_double(r, i, 3));
        table_dur(&t, col_double(r, i, 4));
        table_num(&t, col_double(r, i, 5), 1);
        table_num(&t, col_double(r, i, 6), 1);
        table_num(&t, moving_s > 0 ? km / moving_s * 3600.0 : NAN, 1);
    }
    PQclear(r);
    return print_and_release(&t, o, err, err_size);
}

/* The truck's readings in [from, to), ordered by (ts, seq); *pts is freed
 * by the caller (also when empty). */
static int load_points(PGconn *conn, const char *truck, int64_t from_ms, int64_t to_ms, struct rollup_point **pts,
                       size_t *n, char *err, size_t err_size)
{
    char from[40], to[40];
    const char *vals[] = {truck, pg_format_ts(from_ms, from, sizeof(from)), pg_format_ts(to_ms, to, sizeof(to))};
    *pts = NULL;
    *n = 0;
    PGresult *r = query(conn,
                        "SELECT " MS_OF("ts") ", seq, lat, lon, speed_kmh, ignition, fuel_pct FROM telemetry"
                                              " WHERE truck_id = $1 AND ts >= $2 AND ts < $3" IN_HOURS VALID_POSITION
                                              " ORDER BY ts, seq",
                        3, vals, err, err_size);
    if (!r)
        return -1;
    int rows = PQntuples(r);
    if (rows > 0) {
        *pts = calloc((size_t)rows, sizeof(**pts));
        if (!*pts) {
            PQclear(r);
            snprintf(err, err_size, "out of memory for %d readings", rows);
            return -1;
        }
    }
    for (int i = 0; i < rows; i++) {
        struct rollup_point *p = &(*pts)[i];
        p->ts_ms = col_ms(r, i, 0);
        p->seq = col_ms(r, i, 1);
        p->lat = col_double(r, i, 2);
        p->lon = col_double(r, i, 3);
        p->speed_kmh = col_double(r, i, 4);
        p->ignition = PQgetvalue(r, i, 5)[0] == 't';
        p->fuel_pct = col_double(r, i, 6);
    }
    *n = (size_t)rows;
    PQclear(r);
    return 0;
}

static int segment_day(PGconn *conn, struct ropts *o, struct trips_result *res, char *err, size_t err_size)
{
    struct rollup_point *pts;
    size_t n;
    if (load_points(conn, o->truck, o->day_ms, o->day_ms + FS_DAY_MS, &pts, &n, err, err_size) < 0)
        return -1;
    int rc = trips_segment(pts, n, &o->tp, res);
    free(pts);
    if (rc < 0)
        snprintf(err, err_size, "out of memory segmenting %zu readings", n);
    return rc;
}

static int run_trips(PGconn *conn, struct ropts *o, char *err, size_t err_size)
{
    static const struct table_col cols[] = {
        {"start", NULL, 0, 0},         {"end", NULL, 0, 0},
        {"start_lat", NULL, 1, 0},     {"start_lon", NULL, 1, 0},
        {"end_lat", NULL, 1, 0},       {"end_lon", NULL, 1, 0},
        {"distance_km", NULL, 1, 0},   {"duration_s", "duration", 1, 0},
        {"moving_s", "moving", 1, 0},  {"avg_speed_kmh", NULL, 1, 0},
        {"max_speed_kmh", NULL, 1, 0},
    };
    struct trips_result res;
    if (segment_day(conn, o, &res, err, err_size) < 0)
        return -1;
    struct table t;
    table_init(&t, cols, sizeof(cols) / sizeof(cols[0]));
    for (size_t i = 0; i < res.trip_count; i++) {
        const struct trip *tr = &res.trips[i];
        table_time(&t, tr->start_ms);
        table_time(&t, tr->end_ms);
        table_num(&t, tr->start_lat, 6);
        table_num(&t, tr->start_lon, 6);
        table_num(&t, tr->end_lat, 6);
        table_num(&t, tr->end_lon, 6);
        table_num(&t, tr->distance_km, 3);
        table_dur(&t, tr->duration_s);
        table_dur(&t, tr->moving_s);
        table_num(&t, tr->avg_speed_kmh, 1);
        table_num(&t, tr->max_speed_kmh, 1);
    }
    trips_result_release(&res);
    return print_and_release(&t, o, err, err_size);
}

static int run_stops(PGconn *conn, struct ropts *o, char *err, size_t err_size)
{
    static const struct table_col cols[] = {
        {"start", NULL, 0, 0}, {"end", NULL, 0, 0}, {"duration_s", "duration", 1, 0},
        {"lat", NULL, 1, 0},   {"lon", NULL, 1, 0}, {"engine_on_s", "engine_on", 1, 0},
    };
    struct trips_result res;
    if (segment_day(conn, o, &res, err, err_size) < 0)
        return -1;
    struct table t;
    table_init(&t, cols, sizeof(cols) / sizeof(cols[0]));
    for (size_t i = 0; i < res.stop_count; i++) {
        const struct stop *s = &res.stops[i];
        table_time(&t, s->start_ms);
        table_time(&t, s->end_ms);
        table_dur(&t, s->duration_s);
        table_num(&t, s->lat, 6);
        table_num(&t, s->lon, 6);
        table_dur(&t, s->engine_on_s);
    }
    trips_result_release(&res);
    return print_and_release(&t, o, err, err_size);
}

static void track_geojson(const PGresult *r, const struct ropts *o, FILE *out)
{
    int n = PQntuples(r);
    char buf[40], lat[32], lon[32];
    fputs("{\"type\":\"Feature\",\"geometry\":", out);
    if (n == 0) {
        fputs("null", out);
    } else {
        fputs(n == 1 ? "{\"type\":\"Point\",\"coordinates\":" : "{\"type\":\"LineString\",\"coordinates\":[", out);
        for (int i = 0; i < n; i++)
            fprintf(out, "%s[%s,%s]", i ? "," : "", table_format_number(col_double(r, i, 3), 6, lon, sizeof(lon)),
                    table_format_number(col_double(r, i, 2), 6, lat, sizeof(lat)));
        fputs(n == 1 ? "}" : "]}", out);
    }
    fputs(",\"properties\":{\"truck_id\":", out);
    table_json_string(out, o->truck);
    fprintf(out, ",\"from\":\"%s\"", table_format_time(o->win_from_ms, buf, sizeof(buf)));
    fprintf(out, ",\"to\":\"%s\",\"points\":%d,\"times\":[", table_format_time(o->win_to_ms, buf, sizeof(buf)), n);
    for (int i = 0; i < n; i++)
        fprintf(out, "%s\"%s\"", i ? "," : "", table_format_time(col_ms(r, i, 0), buf, sizeof(buf)));
    fputs("],\"speeds_kmh\":[", out);
    for (int i = 0; i < n; i++)
        fprintf(out, "%s%s", i ? "," : "", table_format_number(col_double(r, i, 4), 1, buf, sizeof(buf)));
    fputs("]}}\n", out);
}

static void track_gpx(const PGresult *r, const struct ropts *o, FILE *out)
{
    char buf[40], lat[32], lon[32];
    fputs("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
          "<gpx version=\"1.1\" creator=\"fleetsync\" xmlns=\"http://www.topografix.com/GPX/1/1\">\n"
          "  <trk>\n    <name>",
          out);
    report_xml_text(out, o->truck);
    fputs("</name>\n    <trkseg>\n", out);
    for (int i = 0; i < PQntuples(r); i++)
        fprintf(out, "      <trkpt lat=\"%s\" lon=\"%s\"><time>%s</time></trkpt>\n",
                table_format_number(col_double(r, i, 2), 6, lat, sizeof(lat)),
                table_format_number(col_double(r, i, 3), 6, lon, sizeof(lon)),
                table_format_time(col_ms(r, i, 0), buf, sizeof(buf)));
    fputs("    </trkseg>\n  </trk>\n</gpx>\n", out);
}

static int run_track(PGconn *conn, struct ropts *o, char *err, size_t err_size)
{
    static const struct table_col cols[] = {
        {"ts", NULL, 0, 0},        {"seq", NULL, 1, 0},         {"lat", NULL, 1, 0},      {"lon", NULL, 1, 0},
        {"speed_kmh", NULL, 1, 0}, {"heading_deg", NULL, 1, 0}, {"ignition", NULL, 0, 0}, {"fuel_pct", NULL, 1, 0},
    };
    char from[40], to[40];
    const char *vals[] = {o->truck, pg_format_ts(o->win_from_ms, from, sizeof(from)),
                          pg_format_ts(o->win_to_ms, to, sizeof(to))};
    PGresult *r = query(
        conn,
        "SELECT " MS_OF("ts") ", seq, lat, lon, speed_kmh, heading_deg, ignition, fuel_pct"
                              " FROM telemetry WHERE truck_id = $1 AND ts >= $2 AND ts < $3" IN_HOURS VALID_POSITION
                              " ORDER BY ts, seq",
        3, vals, err, err_size);
    if (!r)
        return -1;
    if (o->out == OUT_GEOJSON || o->out == OUT_GPX) {
        if (o->out == OUT_GEOJSON)
            track_geojson(r, o, stdout);
        else
            track_gpx(r, o, stdout);
        PQclear(r);
        if (ferror(stdout)) {
            snprintf(err, err_size, "cannot write the report: %s", strerror(errno));
            return -1;
        }
        return 0;
    }
    struct table t;
    table_init(&t, cols, sizeof(cols) / sizeof(cols[0]));
    for (int i = 0; i < PQntuples(r); i++) {
        table_time(&t, col_ms(r, i, 0));
        table_num(&t, col_double(r, i, 1), 0);
        table_num(&t, col_double(r, i, 2), 6);
        table_num(&t, col_double(r, i, 3), 6);
        table_num(&t, col_double(r, i, 4), 1);
        table_num(&t, col_double(r, i, 5), 1);
        const char *ign = PQgetvalue(r, i, 6)[0] == 't' ? "true" : "false";
        table_literal(&t, ign); /* a JSON boolean */
        table_num(&t, col_double(r, i, 7), 2);
    }
    PQclear(r);
    return print_and_release(&t, o, err, err_size);
}

static int run_alerts(PGconn *conn, struct ropts *o, char *err, size_t err_size)
{
    static const struct table_col cols[] = {
        {"started_at", "started", 0, 0},
        {"ended_at", "ended", 0, 0},
        {"truck_id", "truck", 0, 0},
        {"rule", NULL, 0, 0},
        {"lat", NULL, 1, 0},
        {"lon", NULL, 1, 0},
        {"detected_at", "detected", 0, 0},
        {"alert_id", NULL, 0, 0},
        {"details", NULL, 0, 0},
    };
    char from[40], to[40], sql[640];
    const char *vals[4];
    int n = 0;
    vals[n++] = pg_format_ts(o->win_from_ms, from, sizeof(from));
    vals[n++] = pg_format_ts(o->win_to_ms, to, sizeof(to));
    /* Alerts active at any time in the window. */
    snprintf(sql, sizeof(sql),
             "SELECT " MS_OF("started_at") ", " MS_OF("ended_at") ", truck_id, rule, lat, lon, " MS_OF(
                 "detected_at") ", alert_id, details::text FROM alerts"
                                " WHERE started_at < $2 AND (ended_at IS NULL OR ended_at >= $1)%s%s"
                                " ORDER BY started_at, alert_id COLLATE \"C\"",
             o->truck ? " AND truck_id = $3" : "", o->rule ? (o->truck ? " AND rule = $4" : " AND rule = $3") : "");
    if (o->truck)
        vals[n++] = o->truck;
    if (o->rule)
        vals[n++] = o->rule;
    PGresult *r = query(conn, sql, n, vals, err, err_size);
    if (!r)
        return -1;
    struct table t;
    table_init(&t, cols, sizeof(cols) / sizeof(cols[0]));
    for (int i = 0; i < PQntuples(r); i++) {
        table_time(&t, col_ms(r, i, 0));
        table_time(&t, col_ms(r, i, 1));
        table_str(&t, col_text(r, i, 2), NULL);
        table_str(&t, col_text(r, i, 3), NULL);
        table_num(&t, col_double(r, i, 4), 6);
        table_num(&t, col_double(r, i, 5), 6);
        table_time(&t, col_ms(r, i, 6));
        table_str(&t, col_text(r, i, 7), NULL);
        table_json(&t, col_text(r, i, 8));
    }
    PQclear(r);
    return print_and_release(&t, o, err, err_size);
}

/* ---- the command -------------------------------------------------------- */

static const struct sub subs[] = {
    {"avg-speed", run_avg_speed, BIT(O_TRUCK) | BIT(O_FLEET) | WINDOW, 0, 30 * FS_DAY_MS,
     "(--truck ID | --fleet) [--since 30d | --from T --to T]",
     "Average speed = distance / time moving (speed > 5 km/h), of one truck (--truck ID) or of\n"
     "the whole fleet (--fleet: sum(distance) / sum(moving time)), from the hourly rollups\n"
     "(telemetry_hourly) only: never a raw reading. The window (default: the last 30d)\n"
     "covers the UTC hours it touches (from rounded down, to rounded up to the hour), and the\n"
     "output shows it. Columns: truck_id, trucks (with data), from, to, distance_km,\n"
     "moving_s, avg_speed_kmh (null when the truck never moved).",
     "Examples:\n"
     "  fleetsync report avg-speed --truck TRK-000042 --since 30d\n"
     "  fleetsync report avg-speed --fleet --from 2026-10-01 --to 2026-11-01 --json"},
    {"summary", run_summary, BIT(O_TRUCK) | WINDOW, 0, 7 * FS_DAY_MS, "[--since 7d | --from T --to T] [--truck ID]",
     "Per truck, from the hourly rollups: distance, driving (moving), idle (engine on, not\n"
     "moving) and parked (engine off) time, max speed, fuel used (sum of fuel level drops,\n"
     "in percent of the tank) and average speed. One row per truck with data, by truck id;\n"
     "--truck ID: only this truck. The window: the last 7d unless given.",
     "Examples:\n"
     "  fleetsync report summary --since 7d\n"
     "  fleetsync report summary --from 2026-11-01 --to 2026-11-08 --csv > week.csv"},
    {"trips", run_trips, BIT(O_TRUCK) | BIT(O_DAY) | BIT(O_MIN_STOP) | BIT(O_MIN_TRIP), BIT(O_TRUCK) | BIT(O_DAY), -1,
     "--truck ID --day YYYY-MM-DD [--min-stop 5m] [--min-trip-distance 0.5]",
     "The truck's trips of one UTC day, from its raw readings. A trip starts when the truck\n"
     "moves (speed > 5 km/h) and ends at a stop: standing still for --min-stop, or with the\n"
     "ignition off. Shorter pauses (red lights) stay inside the trip; trips shorter than\n"
     "--min-trip-distance are dropped (their time joins the stop around them). Columns:\n"
     "start, end, start/end position, distance_km, duration_s, moving_s, avg_speed_kmh\n"
     "(distance / time moving), max_speed_kmh. See docs/report.md for the exact rules.",
     "Example:\n"
     "  fleetsync report trips --truck TRK-000042 --day 2026-11-01"},
    {"stops", run_stops, BIT(O_TRUCK) | BIT(O_DAY) | BIT(O_MIN_STOP) | BIT(O_MIN_TRIP), BIT(O_TRUCK) | BIT(O_DAY), -1,
     "--truck ID --day YYYY-MM-DD [--min-stop 5m] [--min-trip-distance 0.5]",
     "The truck's stops of one UTC day, from its raw readings: the time between the trips of\n"
     "`report trips` (same options, same rules), plus the time before the first trip and after\n"
     "the last when the truck stood long enough. Columns: start, end, duration_s, lat, lon\n"
     "(where it arrived), engine_on_s (time with the ignition on).",
     "Example:\n"
     "  fleetsync report stops --truck TRK-000042 --day 2026-11-01 --json"},
    {"track", run_track, BIT(O_TRUCK) | WINDOW, BIT(O_TRUCK), 0,
     "--truck ID --from T --to T [--format geojson|gpx|csv|table]",
     "The truck's raw readings in [from, to) (or the last --since D), in time order. GeoJSON\n"
     "(default, also --json): one Feature whose geometry is a LineString of [lon, lat] (a Point\n"
     "for one reading, null for none) and whose properties hold truck_id, from, to, points,\n"
     "and per point times and speeds_kmh. GPX 1.1: one track, one segment, a time per point.\n"
     "csv and table: one row per reading.",
     "Examples:\n"
     "  fleetsync report track --truck TRK-000042 --from 2026-11-01T06:00Z --to 2026-11-01T18:00Z\n"
     "  fleetsync report track --truck TRK-000042 --since 2h --format gpx > last2h.gpx"},
    {"alerts", run_alerts, BIT(O_TRUCK) | BIT(O_RULE) | WINDOW, 0, FS_DAY_MS,
     "[--since 24h | --from T --to T] [--truck ID] [--rule R]",
     "Rows of the alerts table active at any time in the window (started before its end, and\n"
     "still active or ended after its start), by start time; the window: the last 24h unless\n"
     "given. --truck ID: only this truck; --rule R: only this rule (stationary_engine_on,\n"
     "overspeed, ...). Columns: started_at, ended_at (null while active), truck_id, rule,\n"
     "lat, lon, detected_at, alert_id, details (JSON).",
     "Example:\n"
     "  fleetsync report alerts --since 24h --rule stationary_engine_on"},
};
#define SUB_COUNT (sizeof(subs) / sizeof(subs[0]))

static const char report_common_help[] =
    "Output: an aligned table (default), --json (an array of objects), --csv (with a heading);\n"
    "or --format table|json|csv.\n"
    "Durations: 90s, 30m, 2h, 7d. Times: ISO 8601 with Z or an offset (2026-11-01T08:00:00Z,\n"
    "2026-11-01T10:00+02:00), or a date (its UTC midnight). Days are UTC.\n";

static void report_usage(FILE *out)
{
    fprintf(out, "usage: fleetsync report <subcommand> [options]   (fleetsync report <subcommand> --help)\n\n"
                 "History queries on PostgreSQL: avg-speed and summary read the hourly rollups, trips,\n"
                 "stops and track a truck's raw readings, alerts the alerts table. An empty database\n"
                 "answers with empty results (the schema is created when missing).\n\n"
                 "Subcommands:\n");
    for (size_t i = 0; i < SUB_COUNT; i++)
        fprintf(out, "  %-10s %s\n", subs[i].name, subs[i].synopsis);
    fprintf(out, "  %-10s %s\n", "invoice",
            "per truck and month from billing's billing_daily (fleetsync report invoice --help)");
    fprintf(out,
            "\n%s\n"
            "Examples:\n"
            "  fleetsync report avg-speed --truck TRK-000042 --since 30d\n"
            "  fleetsync report avg-speed --fleet --since 30d --json\n"
            "  fleetsync report summary --since 7d --csv > week.csv\n"
            "  fleetsync report trips --truck TRK-000042 --day 2026-11-01\n"
            "  fleetsync report stops --truck TRK-000042 --day 2026-11-01 --min-stop 10m\n"
            "  fleetsync report track --truck TRK-000042 --from 2026-11-01T06:00Z --to 2026-11-01T18:00Z "
            "--format gpx\n"
            "  fleetsync report alerts --since 24h --rule overspeed\n\n"
            "Exit codes: 0 ok (also when nothing matched), 1 database error, 2 usage error.\n\n%s",
            report_common_help, cfg_options_help);
}

/* Checks the options against the subcommand and resolves the window;
 * returns 0, or -1 with the reason in err. */
static int check_opts(const struct sub *s, const struct opt *opts, struct ropts *o, int64_t now, char *err,
                      size_t err_size)
{
    for (int code = O_TRUCK; code <= O_RULE; code++) {
        if ((o->given & BIT(code)) && !(s->allowed & BIT(code))) {
            snprintf(err, err_size, "--%s is not an option of %s", opts[code].name, s->name);
            return -1;
        }
        if ((s->required & BIT(code)) && !(o->given & BIT(code))) {
            snprintf(err, err_size, "%s needs --%s", s->name, opts[code].name);
            return -1;
        }
    }
    uint64_t outs = o->given & OUTPUT;
    if (outs & (outs - 1)) {
        snprintf(err, err_size, "give one of --json, --csv, --format");
        return -1;
    }
    if (s->run == run_track) {
        if (o->out == OUT_JSON)
            o->out = OUT_GEOJSON;
        else if (!(o->given & OUTPUT))
            o->out = OUT_GEOJSON;
    } else if (o->out == OUT_GEOJSON || o->out == OUT_GPX) {
        snprintf(err, err_size, "--format geojson and gpx are for track; %s prints table, json or csv", s->name);
        return -1;
    }
    if (s->run == run_avg_speed && !!(o->given & BIT(O_TRUCK)) == !!(o->given & BIT(O_FLEET))) {
        snprintf(err, err_size, "avg-speed needs --truck ID or --fleet (one of them)");
        return -1;
    }
    if (!(s->allowed & WINDOW))
        return 0;
    if ((o->given & BIT(O_SINCE)) && (o->given & (BIT(O_FROM) | BIT(O_TO)))) {
        snprintf(err, err_size, "give --since or --from/--to, not both");
        return -1;
    }
    if ((o->given & BIT(O_TO)) && !(o->given & BIT(O_FROM))) {
        snprintf(err, err_size, "--to needs --from");
        return -1;
    }
    if (o->given & BIT(O_FROM)) {
        o->win_from_ms = o->from_ms;
        o->win_to_ms = (o->given & BIT(O_TO)) ? o->to_ms : now;
    } else if (o->given & BIT(O_SINCE) || s->default_since > 0) {
        o->win_to_ms = now;
        o->win_from_ms = now - ((o->given & BIT(O_SINCE)) ? o->since_ms : s->default_since);
    } else {
        snprintf(err, err_size, "%s needs a window: --from T --to T (or --since D)", s->name);
        return -1;
    }
    if (o->win_from_ms >= o->win_to_ms) {
        snprintf(err, err_size, "the window is empty: --from must be before --to");
        return -1;
    }
    return 0;
}

int cmd_report(int argc, char **argv)
{
    /* Every report is history's but the invoice, which reads the billing
     * pipeline's table (invoice.c). */
    if (argc > 1 && strcmp(argv[1], "invoice") == 0)
        return cmd_invoice(argc - 1, argv + 1);
    static const char *const formats[] = {"table", "json", "csv", "geojson", "gpx", NULL}; /* enum out_format */
    struct fs_config cfg;
    struct ropts o;
    const struct sub *s = NULL;
    PGconn *conn = NULL;
    char err[1024], name[64], usage[256], after[1024];
    int rest, rc = 2;
    /* One table for every report; each takes the ones in its allowed mask
     * (check_opts), and its --help lists those. */
    const struct opt opts[] = {
        [O_TRUCK] = OPT_STR_LEN("truck", "ID", &o.truck, 1, TRUCK_ID_MAX,
                                "the truck (avg-speed, trips, stops, track), or only this truck\n"
                                "(summary, alerts)"),
        [O_FLEET] = OPT_BOOLEAN("fleet", &o.fleet, "every truck together: sum(distance) / sum(moving time)"),
        [O_SINCE] = OPT_CB("since", "D", &o.since_ms, opt_since, "the last D (the report's default: above)"),
        [O_FROM] = OPT_CB("from", "T", &o.from_ms, opt_time, "an explicit window [from, to)"),
        [O_TO] = OPT_CB("to", "T", &o.to_ms, opt_time, "the window's end (needs --from; defaults to now)"),
        [O_DAY] = OPT_CB("day", "YYYY-MM-DD", &o.day_ms, opt_day, "the UTC day"),
        [O_MIN_STOP] =
            OPT_CB("min-stop", "D", &o.tp.min_stop_ms, opt_min_stop, "shortest stop with the engine on (default 5m)"),
        [O_MIN_TRIP] =
            OPT_DBL("min-trip-distance", "KM", &o.tp.min_trip_km, 0, 100000, "shortest trip kept (default 0.5)"),
        [O_RULE] = OPT_CB("rule", "R", &o.rule, opt_rule, "only this rule (stationary_engine_on, overspeed, ...)"),
        [O_FORMAT] = OPT_WORDS("format", "F", &o.out, formats,
                               "table (default), json or csv; track: geojson (its default), gpx,\n"
                               "csv or table"),
        [O_JSON] = OPT_SET("json", &o.out, OUT_JSON, "--format json (track: geojson)"),
        [O_CSV] = OPT_SET("csv", &o.out, OUT_CSV, "--format csv"),
        [O_COUNT] = OPT_END_MARK,
    };

    cfg_init(&cfg);
    if (argc < 2) {
        report_usage(stderr);
        goto out;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        report_usage(stdout);
        rc = 0;
        goto out;
    }
    for (size_t i = 0; i < SUB_COUNT; i++)
        if (!strcmp(subs[i].name, argv[1]))
            s = &subs[i];
    if (!s) {
        fprintf(stderr, "fleetsync report: '%s' is not a report\n\n", argv[1]);
        report_usage(stderr);
        goto out;
    }

    memset(&o, 0, sizeof(o));
    trips_params_default(&o.tp);
    snprintf(name, sizeof(name), "report %s", s->name);
    snprintf(usage, sizeof(usage), "fleetsync report %s %s [--json | --csv]", s->name, s->synopsis);
    snprintf(after, sizeof(after), "%s\n\n%.*s", s->examples, (int)strlen(report_common_help) - 1, report_common_help);
    const struct opt_command cmd = {
        .name = name,
        .usage = usage,
        .about = s->about,
        .after = after,
        .opts = opts,
        .shared = 1,
        .given = &o.given,
        .shown = s->allowed | OUTPUT,
    };
    if (opt_parse_or_leave(&cmd, &cfg, argc - 1, argv + 1, &rest, &rc))
        goto out;
    if (rest != argc - 1) {
        opt_error(&cmd, "unexpected argument '%s'", argv[1 + rest]);
        goto out;
    }
    if (check_opts(s, opts, &o, fs_wall_ms(), err, sizeof(err)) < 0) {
        opt_error(&cmd, "%s", err);
        goto out;
    }

    rc = 1;
    conn = pg_connect(&cfg, "fleetsync-report", err, sizeof(err));
    if (!conn) {
        fprintf(stderr, "fleetsync report %s: %s\n", s->name, err);
        goto out;
    }
    if (pg_migrate(conn, err, sizeof(err)) < 0) {
        fprintf(stderr, "fleetsync report %s: cannot prepare the schema: %s\n", s->name, err);
        goto out;
    }
    if (s->run(conn, &o, err, sizeof(err)) < 0) {
        fprintf(stderr, "fleetsync report %s: %s\n", s->name, err);
        goto out;
    }
    if (fflush(stdout) != 0) {
        fprintf(stderr, "fleetsync report %s: cannot write the report: %s\n", s->name, strerror(errno));
        goto out;
    }
    rc = 0;
out:
    if (conn)
        PQfinish(conn);
    cfg_release(&cfg);
    return rc;
}
