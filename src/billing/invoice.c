/*
 * invoice.c - `fleetsync report invoice`: a month of billing_daily as an
 * invoice, per truck and in total (docs/billing.md).
 *
 * Per truck: km, engine hours, idle hours (shown with 3 decimals), max speed,
 * and amount = km * rate_per_km + engine_hours * rate_per_engine_hour, from
 * the shown (rounded) km and hours, rounded to cents, so that every line can
 * be checked by hand.  The total line adds the lines' rounded values.  Values
 * from the command line reach SQL only as parameters.
 */
#include "billing/billing.h"

#include "core/config.h"
#include "core/csv.h"
#include "core/pg.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define INVOICE_MAX_RATE 1e9

enum inv_format { INV_TABLE, INV_CSV, INV_JSON };

struct inv_line {
    char truck[80];
    int64_t days;
    int64_t m, engine_mh, idle_mh; /* km and hours in thousandths, as shown */
    double max_speed_kmh;
    int64_t cents;
};

/* A number of thousandths, rounded half away from zero. */
static int64_t milli(double v) {
    return (int64_t)llround(v * 1000.0);
}

static void fmt_milli(int64_t v, char *buf, size_t size) {
    snprintf(buf, size, "%s%" PRId64 ".%03" PRId64, v < 0 ? "-" : "", (v < 0 ? -v : v) / 1000, (v < 0 ? -v : v) % 1000);
}

static void fmt_cents(int64_t v, char *buf, size_t size) {
    snprintf(buf, size, "%s%" PRId64 ".%02" PRId64, v < 0 ? "-" : "", (v < 0 ? -v : v) / 100, (v < 0 ? -v : v) % 100);
}

static int parse_rate(const char *s, double *v) {
    char *end;
    errno = 0;
    *v = strtod(s, &end);
    return end != s && !*end && !errno && isfinite(*v) && *v >= 0 && *v <= INVOICE_MAX_RATE ? 0 : -1;
}

static int parse_month(const char *s, int *year, int *month) {
    if (strlen(s) != 7 || s[4] != '-')
        return -1;
    for (int i = 0; i < 7; i++)
        if (i != 4 && (s[i] < '0' || s[i] > '9'))
            return -1;
    *year = atoi(s);
    *month = atoi(s + 5);
    return *year >= 1970 && *month >= 1 && *month <= 12 ? 0 : -1;
}

static int valid_truck(const char *s) {
    size_t n = strlen(s);
    if (n == 0 || n > 64)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
              c == '-'))
            return 0;
    }
    return 1;
}

static void usage(FILE *f) {
    fprintf(f,
            "usage: fleetsync report invoice --month YYYY-MM --rate-per-km X --rate-per-engine-hour Y\n"
            "                                [--truck ID] [--format table|csv|json] [--pg CONNINFO]\n"
            "\n"
            "The month's invoice from billing_daily (kept by `fleetsync billing`): per truck the\n"
            "UTC days with data, km driven, engine hours, idle hours, max speed and\n"
            "  amount = km x rate-per-km + engine hours x rate-per-engine-hour\n"
            "computed from the km and hours as shown (3 decimals) and rounded to cents; then a\n"
            "total line that adds the lines.  Rates are numbers >= 0 in your currency.\n"
            "\n"
            "  --month YYYY-MM              the UTC calendar month (required)\n"
            "  --rate-per-km X              price per km driven (required)\n"
            "  --rate-per-engine-hour Y     price per engine hour (required)\n"
            "  --truck ID                   one truck only\n"
            "  --format F                   table (default), csv or json; --csv and --json too\n"
            "  -h, --help                   this text\n"
            "\n"
            "%s"
            "\n"
            "Examples:\n"
            "  fleetsync report invoice --month 2026-11 --rate-per-km 0.35 --rate-per-engine-hour 12\n"
            "  fleetsync report invoice --month 2026-11 --rate-per-km 0.35 --rate-per-engine-hour 12 --csv > nov.csv\n"
            "  fleetsync report invoice --month 2026-11 --rate-per-km 0.4 --rate-per-engine-hour 0 --truck TRK-000042 --json\n",
            cfg_options_help);
}

/* A JSON string.  billing only writes ids of [A-Za-z0-9._-], but the table
 * may hold rows written by hand. */
static void json_str(FILE *out, const char *s) {
    fputc('"', out);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            fprintf(out, "\\%c", *p);
        else if (*p < 0x20)
            fprintf(out, "\\u%04x", *p);
        else
            fputc(*p, out);
    }
    fputc('"', out);
}

static void print_table(FILE *out, const char *month, double rkm, double rh, const struct inv_line *l, size_t n,
                        const struct inv_line *tot) {
    char km[32], eh[32], ih[32], amt[32];
    fprintf(out, "invoice %s: %.10g per km, %.10g per engine hour\n\n", month, rkm, rh);
    fprintf(out, "%-20s %5s %12s %10s %10s %8s %12s\n", "truck", "days", "km", "engine_h", "idle_h", "max_kmh",
            "amount");
    for (size_t i = 0; i <= n; i++) {
        const struct inv_line *x = i < n ? &l[i] : tot;
        if (i == n)
            fprintf(out, "%-20s %5s %12s %10s %10s %8s %12s\n", "", "", "", "", "", "", "------------");
        fmt_milli(x->m, km, sizeof(km));
        fmt_milli(x->engine_mh, eh, sizeof(eh));
        fmt_milli(x->idle_mh, ih, sizeof(ih));
        fmt_cents(x->cents, amt, sizeof(amt));
        fprintf(out, "%-20s %5" PRId64 " %12s %10s %10s %8.1f %12s\n", x->truck, x->days, km, eh, ih,
                x->max_speed_kmh, amt);
    }
}

static void print_csv(FILE *out, const struct inv_line *l, size_t n, const struct inv_line *tot) {
    char km[32], eh[32], ih[32], amt[32];
    fprintf(out, "truck_id,days,distance_km,engine_hours,idle_hours,max_speed_kmh,amount\n");
    for (size_t i = 0; i <= n; i++) {
        const struct inv_line *x = i < n ? &l[i] : tot;
        fmt_milli(x->m, km, sizeof(km));
        fmt_milli(x->engine_mh, eh, sizeof(eh));
        fmt_milli(x->idle_mh, ih, sizeof(ih));
        fmt_cents(x->cents, amt, sizeof(amt));
        csv_field(out, x->truck);
        fprintf(out, ",%" PRId64 ",%s,%s,%s,%.1f,%s\n", x->days, km, eh, ih, x->max_speed_kmh, amt);
    }
}

static void json_line(FILE *out, const struct inv_line *x, int with_truck) {
    char km[32], eh[32], ih[32], amt[32];
    fmt_milli(x->m, km, sizeof(km));
    fmt_milli(x->engine_mh, eh, sizeof(eh));
    fmt_milli(x->idle_mh, ih, sizeof(ih));
    fmt_cents(x->cents, amt, sizeof(amt));
    fputc('{', out);
    if (with_truck) {
        fputs("\"truck_id\":", out);
        json_str(out, x->truck);
        fputc(',', out);
    }
    fprintf(out,
            "\"days\":%" PRId64 ",\"distance_km\":%s,\"engine_hours\":%s,\"idle_hours\":%s,\"max_speed_kmh\":%.1f,"
            "\"amount\":%s}",
            x->days, km, eh, ih, x->max_speed_kmh, amt);
}

static void print_json(FILE *out, const char *month, double rkm, double rh, const struct inv_line *l, size_t n,
                       const struct inv_line *tot) {
    fputs("{\"month\":", out);
    json_str(out, month);
    fprintf(out, ",\"rate_per_km\":%.10g,\"rate_per_engine_hour\":%.10g,\"trucks\":[", rkm, rh);
    for (size_t i = 0; i < n; i++) {
        fputs(i ? ",\n" : "\n", out);
        json_line(out, &l[i], 1);
    }
    fputs("],\n\"total\":", out);
    json_line(out, tot, 0);
    fputs("}\n", out);
}

int cmd_invoice(int argc, char **argv) {
    enum { OPT_MONTH = 1, OPT_RKM, OPT_RH, OPT_TRUCK, OPT_FORMAT, OPT_CSV, OPT_JSON };
    static const struct option longopts[] = {
        {"month", required_argument, NULL, OPT_MONTH},
        {"rate-per-km", required_argument, NULL, OPT_RKM},
        {"rate-per-engine-hour", required_argument, NULL, OPT_RH},
        {"truck", required_argument, NULL, OPT_TRUCK},
        {"format", required_argument, NULL, OPT_FORMAT},
        {"csv", no_argument, NULL, OPT_CSV},
        {"json", no_argument, NULL, OPT_JSON},
        {"help", no_argument, NULL, 'h'},
        CFG_LONG_OPTIONS,
        {NULL, 0, NULL, 0},
    };
    struct fs_config cfg;
    const char *month = NULL, *truck = NULL, *bad = NULL;
    double rkm = NAN, rh = NAN;
    int year = 0, mon = 0, c, rc = 2;
    enum inv_format fmt = INV_TABLE;
    char err[512];
    PGconn *conn = NULL;
    PGresult *r = NULL;
    struct inv_line *lines = NULL;

    cfg_init(&cfg);
    optind = 1;
    while ((c = getopt_long(argc, argv, "h" CFG_SHORT_OPTIONS, longopts, NULL)) != -1) {
        switch (c) {
        case 'h':
            usage(stdout);
            rc = 0;
            goto out;
        case OPT_MONTH:
            month = optarg;
            if (parse_month(optarg, &year, &mon) < 0)
                bad = "--month is YYYY-MM (a UTC calendar month, e.g. 2026-11)";
            break;
        case OPT_RKM:
            if (parse_rate(optarg, &rkm) < 0)
                bad = "--rate-per-km is a number >= 0 (e.g. 0.35)";
            break;
        case OPT_RH:
            if (parse_rate(optarg, &rh) < 0)
                bad = "--rate-per-engine-hour is a number >= 0 (e.g. 12.5)";
            break;
        case OPT_TRUCK:
            truck = optarg;
            if (!valid_truck(optarg))
                bad = "--truck is a truck id: 1-64 characters of A-Z a-z 0-9 . _ -";
            break;
        case OPT_FORMAT:
            if (strcmp(optarg, "table") == 0)
                fmt = INV_TABLE;
            else if (strcmp(optarg, "csv") == 0)
                fmt = INV_CSV;
            else if (strcmp(optarg, "json") == 0)
                fmt = INV_JSON;
            else
                bad = "--format is table, csv or json";
            break;
        case OPT_CSV:
            fmt = INV_CSV;
            break;
        case OPT_JSON:
            fmt = INV_JSON;
            break;
        default:
            if (cfg_option(&cfg, c, optarg, err, sizeof(err)) == 1)
                break;
            if (c != '?')
                fprintf(stderr, "fleetsync report invoice: %s\n", err);
            usage(stderr);
            goto out;
        }
        if (bad) {
            fprintf(stderr, "fleetsync report invoice: %s\n", bad);
            goto out;
        }
    }
    if (optind != argc) {
        fprintf(stderr, "fleetsync report invoice: unexpected argument '%s'\n", argv[optind]);
        goto out;
    }
    if (!month || isnan(rkm) || isnan(rh)) {
        fprintf(stderr, "fleetsync report invoice: --month, --rate-per-km and --rate-per-engine-hour are required "
                        "(fleetsync report invoice --help)\n");
        goto out;
    }

    rc = 1;
    conn = pg_connect(&cfg, "fleetsync-report", err, sizeof(err));
    if (!conn || pg_migrate(conn, err, sizeof(err)) < 0) {
        fprintf(stderr, "fleetsync report invoice: %s\n", err);
        goto out;
    }
    char first[32];
    snprintf(first, sizeof(first), "%04d-%02d-01", year, mon);
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
    if (fmt == INV_TABLE)
        print_table(stdout, month, rkm, rh, lines, n, &tot);
    else if (fmt == INV_CSV)
        print_csv(stdout, lines, n, &tot);
    else
        print_json(stdout, month, rkm, rh, lines, n, &tot);
    rc = fflush(stdout) == 0 && !ferror(stdout) ? 0 : 1;

out:
    PQclear(r);
    if (conn)
        PQfinish(conn);
    free(lines);
    cfg_release(&cfg);
    return rc;
}
