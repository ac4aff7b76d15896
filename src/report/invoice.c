/*
 * invoice.c - `fleetsync report invoice`: a month of billing_daily as an
 * invoice, per truck and in total (docs/billing.md).
 *
 * Per truck: km, engine hours, idle hours (shown with 3 decimals), max speed,
 * and amount = km * rate_per_km + engine_hours * rate_per_engine_hour, from
 * the shown (rounded) km and hours, rounded to cents, so that every line can
 * be checked by hand.  The total line adds the lines' rounded values.  Values
 * from the command line reach SQL only as parameters.  The options are one
 * table (core/opts.h); the invoice is printed through core/table.h.
 */
#include "report/invoice.h"

#include "core/config.h"
#include "core/opts.h"
#include "core/pg.h"
#include "core/table.h"
#include "core/telemetry.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define INVOICE_MAX_RATE 1000000000LL

enum inv_format { INV_TABLE, INV_CSV, INV_JSON };

struct inv_line {
    char truck[80];
    int64_t days;
    int64_t m, engine_mh, idle_mh; /* km and hours in thousandths, as shown */
    double max_speed_kmh;
    int64_t cents;
};

/* A number of thousandths, rounded half away from zero. */
static int64_t milli(double v)
{
    return (int64_t)llround(v * 1000.0);
}

static void fmt_milli(int64_t v, char *buf, size_t size)
{
    snprintf(buf, size, "%s%" PRId64 ".%03" PRId64, v < 0 ? "-" : "", (v < 0 ? -v : v) / 1000, (v < 0 ? -v : v) % 1000);
}

static void fmt_cents(int64_t v, char *buf, size_t size)
{
    snprintf(buf, size, "%s%" PRId64 ".%02" PRId64, v < 0 ? "-" : "", (v < 0 ? -v : v) / 100, (v < 0 ? -v : v) % 100);
}

static int parse_month(const char *s, int *year, int *month)
{
    if (strlen(s) != 7 || s[4] != '-')
        return -1;
    for (int i = 0; i < 7; i++)
        if (i != 4 && (s[i] < '0' || s[i] > '9'))
            return -1;
    *year = atoi(s);
    *month = atoi(s + 5);
    return *year >= 1970 && *month >= 1 && *month <= 12 ? 0 : -1;
}

/* Option values. */
struct month {
    const char *text; /* "2026-11" */
    int year, mon;
};

static int opt_month(void *value, const char *arg, char *err, size_t err_size)
{
    struct month *m = value;
    if (parse_month(arg, &m->year, &m->mon) < 0) {
        snprintf(err, err_size, "is YYYY-MM (a UTC calendar month, e.g. 2026-11), not '%s'", arg);
        return -1;
    }
    m->text = arg;
    return 0;
}

static int opt_truck(void *value, const char *arg, char *err, size_t err_size)
{
    if (!tm_valid_id(arg, strlen(arg))) {
        snprintf(err, err_size, "is a truck id: 1-64 characters of A-Z a-z 0-9 . _ -");
        return -1;
    }
    *(const char **)value = arg;
    return 0;
}

static const char invoice_about[] =
    "The month's invoice from billing_daily (kept by `fleetsync billing`): per truck the\n"
    "UTC days with data, km driven, engine hours, idle hours, max speed and\n"
    "  amount = km x rate-per-km + engine hours x rate-per-engine-hour\n"
    "computed from the km and hours as shown (3 decimals) and rounded to cents; then a\n"
    "total line that adds the lines.  Rates are numbers >= 0 in your currency.";

static const char invoice_after[] =
    "Examples:\n"
    "  fleetsync report invoice --month 2026-11 --rate-per-km 0.35 --rate-per-engine-hour 12\n"
    "  fleetsync report invoice --month 2026-11 --rate-per-km 0.35 --rate-per-engine-hour 12 --csv > nov.csv\n"
    "  fleetsync report invoice --month 2026-11 --rate-per-km 0.4 --rate-per-engine-hour 0 --truck TRK-000042 --json";

/* The invoice's columns: the text table is laid out as printf's
 * "%-20s %5s %12s %10s %10s %8s %12s". */
static const struct table_col inv_cols[] = {
    {"truck_id", "truck", 0, 20},    {"days", NULL, 1, 5},
    {"distance_km", "km", 1, 12},    {"engine_hours", "engine_h", 1, 10},
    {"idle_hours", "idle_h", 1, 10}, {"max_speed_kmh", "max_kmh", 1, 8},
    {"amount", NULL, 1, 12},
};
#define INV_AMOUNT_COL 6

static void add_line(struct table *t, const struct inv_line *x)
{
    char buf[32];
    table_str(t, x->truck, NULL);
    snprintf(buf, sizeof(buf), "%" PRId64, x->days);
    table_literal(t, buf);
    fmt_milli(x->m, buf, sizeof(buf));
    table_literal(t, buf);
    fmt_milli(x->engine_mh, buf, sizeof(buf));
    table_literal(t, buf);
    fmt_milli(x->idle_mh, buf, sizeof(buf));
    table_literal(t, buf);
    table_num(t, x->max_speed_kmh, 1);
    fmt_cents(x->cents, buf, sizeof(buf));
    table_literal(t, buf);
}

/* The table holds the n lines, a rule, and the total (row n + 1). */
static int print_invoice(FILE *out, const struct table *t, size_t n, int fmt, const char *month, double rkm, double rh)
{
    if (fmt == INV_CSV)
        return table_print(t, TABLE_CSV, out);
    if (fmt == INV_TABLE) {
        fprintf(out, "invoice %s: %.10g per km, %.10g per engine hour\n\n", month, rkm, rh);
        return table_print(t, TABLE_TEXT, out);
    }
    if (t->oom)
        return -1;
    fputs("{\"month\":", out);
    table_json_string(out, month);
    fprintf(out, ",\"rate_per_km\":%.10g,\"rate_per_engine_hour\":%.10g,\"trucks\":[", rkm, rh);
    for (size_t i = 0; i < n; i++) {
        fputs(i ? ",\n" : "\n", out);
        table_json_object(t, i, 0, out);
    }
    fputs("],\n\"total\":", out);
    table_json_object(t, n + 1, 1, out); /* without its truck_id */
    fputs("}\n", out);
    return ferror(out) ? -1 : 0;
}

int cmd_invoice(int argc, char **argv)
{
    static const char *const formats[] = {"table", "csv", "json", NULL}; /* enum inv_format */
    struct fs_config cfg;
    struct month month = {NULL, 0, 0};
    const char *truck = NULL;
    double rkm = NAN, rh = NAN;
    int rest, rc = 2, fmt = INV_TABLE;
    char err[512];
    PGconn *conn = NULL;
    PGresult *r = NULL;
    struct inv_line *lines = NULL;
    struct table t;
    const struct opt opts[] = {
        OPT_CB("month", "YYYY-MM", &month, opt_month, "the UTC calendar month (required)"),
        OPT_DBL("rate-per-km", "X", &rkm, 0, INVOICE_MAX_RATE, "price per km driven (required)"),
        OPT_DBL("rate-per-engine-hour", "Y", &rh, 0, INVOICE_MAX_RATE, "price per engine hour (required)"),
        OPT_CB("truck", "ID", &truck, opt_truck, "one truck only"),
        OPT_WORDS("format", "F", &fmt, formats, "table (default), csv or json"),
        OPT_SET("csv", &fmt, INV_CSV, "--format csv"),
        OPT_SET("json", &fmt, INV_JSON, "--format json"),
        OPT_END_MARK,
    };
    const struct opt_command cmd = {
        .no_args = 1,
        .name = "report invoice",
        .usage = "fleetsync report invoice --month YYYY-MM --rate-per-km X --rate-per-engine-hour Y "
                 "[--truck ID] [--format table|csv|json] [--pg CONNINFO]",
        .about = invoice_about,
        .after = invoice_after,
        .opts = opts,
        .shared = 1,
    };

    table_init(&t, inv_cols, sizeof(inv_cols) / sizeof(inv_cols[0]));
    t.gap = " ";
    cfg_init(&cfg);
    if (opt_parse_or_leave(&cmd, &cfg, argc, argv, &rest, &rc))
        goto out;
    if (!month.text || isnan(rkm) || isnan(rh)) {
        opt_error(&cmd, "--month, --rate-per-km and --rate-per-engine-hour are required");
        goto out;
    }

    rc = 1;
    conn = pg_connect(&cfg, "fleetsync-report", err, sizeof(err));
    if (!conn || pg_migrate(conn, err, sizeof(err)) < 0) {
        fprintf(stderr, "fleetsync report invoice: %s\n", err);
        goto out;
    }
    char first[32];
    snprintf(first, sizeof(first), "%04d-%02d-01", month.year, month.mon);
    const char *vals[2] = {first, truck};
    r = PQexecParams(conn,
                     "SELECT truck_id, count(*), sum(distance_km), sum(engine_hours), sum(idle_hours), "
                     "max(max_speed_kmh) FROM billing_daily WHERE day >= $1::date "
                     "AND day < ($1::date + interval '1 month')::date AND ($2::text IS NULL OR truck_id = $2) "
                     "GROUP BY truck_id ORDER BY truck_id",
                     2, NULL, vals, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        pg_error(conn, r, err, sizeof(err));
        fprintf(stderr, "fleetsync report invoice: %s\n", err);
        goto out;
    }
    size_t n = (size_t)PQntuples(r);
    lines = calloc(n + 1, sizeof(*lines));
    if (!lines) {
        fprintf(stderr, "fleetsync report invoice: out of memory\n");
        goto out;
    }
    struct inv_line tot = {.truck = "TOTAL"};
    for (size_t i = 0; i < n; i++) {
        struct inv_line *x = &lines[i];
        snprintf(x->truck, sizeof(x->truck), "%s", PQgetvalue(r, (int)i, 0));
        x->days = strtoll(PQgetvalue(r, (int)i, 1), NULL, 10);
        x->m = milli(strtod(PQgetvalue(r, (int)i, 2), NULL));
        x->engine_mh = milli(strtod(PQgetvalue(r, (int)i, 3), NULL));
        x->idle_mh = milli(strtod(PQgetvalue(r, (int)i, 4), NULL));
        x->max_speed_kmh = strtod(PQgetvalue(r, (int)i, 5), NULL);
        x->cents = (int64_t)llround(((double)x->m * rkm + (double)x->engine_mh * rh) / 10.0);
        tot.days += x->days;
        tot.m += x->m;
        tot.engine_mh += x->engine_mh;
        tot.idle_mh += x->idle_mh;
        if (x->max_speed_kmh > tot.max_speed_kmh)
            tot.max_speed_kmh = x->max_speed_kmh;
        tot.cents += x->cents;
    }
    for (size_t i = 0; i < n; i++)
        add_line(&t, &lines[i]);
    table_rule(&t, (uint64_t)1 << INV_AMOUNT_COL);
    add_line(&t, &tot);
    if (print_invoice(stdout, &t, n, fmt, month.text, rkm, rh) < 0) {
        fprintf(stderr, "fleetsync report invoice: cannot write the invoice: %s\n",
                t.oom ? "out of memory" : strerror(errno));
        goto out;
    }
    rc = fflush(stdout) == 0 && !ferror(stdout) ? 0 : 1;

out:
    table_release(&t);
    PQclear(r);
    if (conn)
        PQfinish(conn);
    free(lines);
    cfg_release(&cfg);
    return rc;
}
