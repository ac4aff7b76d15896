/*
 * pg.c - PostgreSQL connection setup and schema migrations (see pg.h).
 */
#include "core/pg.h"

#include "core/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* The SQLSTATE of the last error pg_error() reported on this thread, and the
 * table and constraint it names. */
static _Thread_local char last_sqlstate[6];
static _Thread_local char last_table[64], last_constraint[64];

const char *pg_last_sqlstate(void)
{
    return last_sqlstate;
}

const char *pg_last_table(void)
{
    return last_table;
}

const char *pg_last_constraint(void)
{
    return last_constraint;
}

void pg_clear_sqlstate(void)
{
    last_sqlstate[0] = last_table[0] = last_constraint[0] = '\0';
}

int pg_sqlstate_is_data_error(const char *sqlstate)
{
    return sqlstate && (strncmp(sqlstate, "22", 2) == 0 || strncmp(sqlstate, "23", 2) == 0);
}

void pg_error(PGconn *conn, const PGresult *res, char *err, size_t err_size)
{
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    snprintf(last_sqlstate, sizeof(last_sqlstate), "%s", state && strlen(state) == 5 ? state : "");
    const char *table = res ? PQresultErrorField(res, PG_DIAG_TABLE_NAME) : NULL;
    const char *constraint = res ? PQresultErrorField(res, PG_DIAG_CONSTRAINT_NAME) : NULL;
    snprintf(last_table, sizeof(last_table), "%s", table ? table : "");
    snprintf(last_constraint, sizeof(last_constraint), "%s", constraint ? constraint : "");
    const char *msg = res ? PQresultErrorMessage(res) : "";
    if (!msg || !*msg)
        msg = conn ? PQerrorMessage(conn) : "no connection";
    /* One line: libpq's messages carry newlines and tab-indented hints. */
    size_t o = 0;
    int space = 0;
    for (const char *p = msg; *p && o + 1 < err_size; p++) {
        if (*p == '\n' || *p == '\t' || *p == ' ') {
            space = 1;
            continue;
        }
        if (space && o > 0 && o + 2 < err_size)
            err[o++] = ' ';
        space = 0;
        err[o++] = *p;
    }
    if (err_size > 0)
        err[o] = '\0';
}

int pg_exec(PGconn *conn, const char *sql, char *err, size_t err_size)
{
    PGresult *res = PQexec(conn, sql);
    ExecStatusType st = PQresultStatus(res);
    int rc = (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) ? 0 : -1;
    if (rc < 0)
        pg_error(conn, res, err, err_size);
    PQclear(res);
    return rc;
}

PGresult *pg_exec_params(PGconn *conn, const char *sql, int n, const char *const *vals, ExecStatusType want, char *err,
                         size_t err_size)
{
    PGresult *r = PQexecParams(conn, sql, n, NULL, vals, NULL, NULL, 0);
    if (PQresultStatus(r) != want) {
        pg_error(conn, r, err, err_size);
        PQclear(r);
        return NULL;
    }
    return r;
}

/* Server notices ("relation already exists, skipping") go to the debug log,
 * not to stderr. */
static void notice(void *arg, const char *message)
{
    (void)arg;
    log_debug("PostgreSQL: %.*s", (int)strcspn(message, "\n"), message);
}

/* The data dir's password file, when it exists and nothing else says
 * where the password comes from (PGPASSFILE; a passfile= or password= in
 * the conninfo wins anyway, coming after it).  Returns path or NULL. */
static const char *data_dir_passfile(const struct fs_config *cfg, char *path, size_t size)
{
    const char *env = getenv("PGPASSFILE");
    if ((env && *env) || !cfg->data_dir || !*cfg->data_dir)
        return NULL;
    int n = snprintf(path, size, "%s/%s", cfg->data_dir, PG_PASSFILE);
    if (n < 0 || (size_t)n >= size || access(path, R_OK) != 0)
        return NULL;
    return path;
}

PGconn *pg_connect(const struct fs_config *cfg, const char *app_name, char *err, size_t err_size)
{
    char passfile[4096];
    const char *pf = data_dir_passfile(cfg, passfile, sizeof(passfile));
    /* expand_dbname: the first dbname is the whole conninfo string or URI;
     * the passfile before it is overridden by one the conninfo names. */
    const char *keys[] = {"passfile", "dbname", "application_name", "connect_timeout", NULL};
    const char *vals[] = {pf, cfg->pg, app_name ? app_name : "fleetsync", "10", NULL};
    PGconn *conn = PQconnectdbParams(keys, vals, 1);
    if (!conn) {
        snprintf(err, err_size, "out of memory");
        return NULL;
    }
    if (PQstatus(conn) != CONNECTION_OK) {
        char why[512], shown[CFG_MASKED_MAX];
        pg_error(conn, NULL, why, sizeof(why));
        const char *env = getenv("PGPASSFILE");
        const char *pg_shown = cfg_mask_secrets(cfg->pg, shown, sizeof(shown));
        if (strstr(why, "password") && !pf && !(env && *env))
            snprintf(err, err_size,
                     "cannot connect to PostgreSQL (%s): %s; there is no password file %s/%s (give the data dir "
                     "of 'fleetsync services start' with --data-dir, or set PGPASSFILE)",
                     pg_shown, why, cfg->data_dir, PG_PASSFILE);
        else
            snprintf(err, err_size, "cannot connect to PostgreSQL (%s): %s", pg_shown, why);
        PQfinish(conn);
        return NULL;
    }
    PQsetNoticeProcessor(conn, notice, NULL);
    if (pg_exec(conn, "SET TimeZone = 'UTC'", err, err_size) < 0) {
        PQfinish(conn);
        return NULL;
    }
    return conn;
}

int pg_schema_version(void)
{
    int v = 0;
    for (int i = 0; i < pg_migration_count; i++)
        if (pg_migrations[i].version > v)
            v = pg_migrations[i].version;
    return v;
}

/* Applies one migration unless it is recorded; 1 = applied, 0 = was there. */
static int migrate_one(PGconn *conn, const struct pg_migration *m, char *err, size_t err_size)
{
    char buf[512];
    if (pg_exec(conn, "BEGIN", err, err_size) < 0)
        return -1;
    /* Serialise concurrent migrators; released at COMMIT/ROLLBACK. */
    if (pg_exec(conn, "SELECT pg_advisory_xact_lock(7215470401)", err, err_size) < 0)
        goto fail;
    snprintf(buf, sizeof(buf), "SELECT 1 FROM fleetsync_schema WHERE version = %d", m->version);
    PGresult *res = PQexec(conn, buf);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        pg_error(conn, res, err, err_size);
        PQclear(res);
        goto fail;
    }
    int present = PQntuples(res) > 0;
    PQclear(res);
    if (present) {
        pg_exec(conn, "COMMIT", err, err_size);
        return 0;
    }
    char why[1024];
    if (pg_exec(conn, m->sql, why, sizeof(why)) < 0) {
        snprintf(err, err_size, "migration %s failed: %s", m->name, why);
        goto fail;
    }
    const char *vals[2];
    char vbuf[16];
    snprintf(vbuf, sizeof(vbuf), "%d", m->version);
    vals[0] = vbuf;
    vals[1] = m->name;
    res = PQexecParams(conn, "INSERT INTO fleetsync_schema (version, name) VALUES ($1, $2)", 2, NULL, vals, NULL, NULL,
                       0);
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        pg_error(conn, res, err, err_size);
        PQclear(res);
        goto fail;
    }
    PQclear(res);
    if (pg_exec(conn, "COMMIT", err, err_size) < 0)
        return -1;
    return 1;
fail:
    PQclear(PQexec(conn, "ROLLBACK"));
    return -1;
}

int pg_migrate(PGconn *conn, char *err, size_t err_size)
{
    if (pg_exec(conn,
                "CREATE TABLE IF NOT EXISTS fleetsync_schema ("
                " version integer PRIMARY KEY, name text NOT NULL,"
                " applied_at timestamptz NOT NULL DEFAULT now())",
                err, err_size) < 0) {
        /* Two processes creating it at once: one loses with a unique
         * violation on the catalog; the table is there either way. */
        if (pg_exec(conn, "SELECT 1 FROM fleetsync_schema LIMIT 1", err, err_size) < 0)
            return -1;
    }
    int applied = 0;
    for (int i = 0; i < pg_migration_count; i++) {
        int r = migrate_one(conn, &pg_migrations[i], err, err_size);
        if (r < 0)
            return -1;
        if (r > 0) {
            log_info("schema: applied migration %s", pg_migrations[i].name);
            applied++;
        }
    }
    return applied;
}

char *pg_format_ts(int64_t ms, char *buf, size_t size)
{
    time_t s = (time_t)(ms >= 0 ? ms / 1000 : (ms - 999) / 1000);
    int frac = (int)(ms - (int64_t)s * 1000);
    struct tm tm;
    gmtime_r(&s, &tm);
    snprintf(buf, size, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
             tm.tm_min, tm.tm_sec, frac);
    return buf;
}

int pg_parse_ts(const char *s, int64_t *ms)
{
    int y, mo, d, h, mi, sec, n = 0;
    if (sscanf(s, "%4d-%2d-%2d%*1[ T]%2d:%2d:%2d%n", &y, &mo, &d, &h, &mi, &sec, &n) != 6)
        return -1;
    const char *p = s + n;
    int64_t frac_ms = 0;
    if (*p == '.') {
        int digits = 0;
        p++;
        while (*p >= '0' && *p <= '9') {
            if (digits < 3) {
                frac_ms = frac_ms * 10 + (*p - '0');
                digits++;
            }
            p++;
        }
        while (digits++ < 3)
            frac_ms *= 10;
    }
    int off_s = 0;
    if (*p == '+' || *p == '-') {
        int oh = 0, om = 0;
        int sign = *p == '-' ? -1 : 1;
        if (sscanf(p + 1, "%2d:%2d", &oh, &om) < 1)
            return -1;
        off_s = sign * (oh * 3600 + om * 60);
    } else if (*p == 'Z') {
        off_s = 0;
    } else if (*p) {
        return -1;
    }
    struct tm tm = {0};
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = sec;
    time_t t = timegm(&tm);
    *ms = ((int64_t)t - off_s) * 1000 + frac_ms;
    return 0;
}

int pg_copy(PGconn *conn, const char *sql, const struct buf *data, char *err, size_t err_size)
{
    if (data->oom) {
        snprintf(err, err_size, "out of memory while building the rows of %s", sql);
        return -1;
    }
    size_t len = data->len;
    PGresult *res = PQexec(conn, sql);
    if (PQresultStatus(res) != PGRES_COPY_IN) {
        pg_error(conn, res, err, err_size);
        PQclear(res);
        return -1;
    }
    PQclear(res);
    size_t off = 0;
    while (off < len) {
        size_t n = len - off > (1 << 20) ? (1 << 20) : len - off;
        if (PQputCopyData(conn, data->p + off, (int)n) != 1) {
            pg_error(conn, NULL, err, err_size);
            return -1;
        }
        off += n;
    }
    if (PQputCopyEnd(conn, NULL) != 1) {
        pg_error(conn, NULL, err, err_size);
        return -1;
    }
    int rc = 0;
    while ((res = PQgetResult(conn)) != NULL) {
        if (PQresultStatus(res) != PGRES_COMMAND_OK && rc == 0) {
            pg_error(conn, res, err, err_size);
            rc = -1;
        }
        PQclear(res);
    }
    return rc;
}
