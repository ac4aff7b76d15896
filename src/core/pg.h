/*
 * pg.h - PostgreSQL helpers every FleetSync command shares.
 *
 * pg_connect() opens a libpq connection to cfg->pg with the session set up
 * the way FleetSync's SQL expects it (TimeZone UTC, an application_name).
 * pg_migrate() applies the numbered migrations of sql/ (compiled into the
 * binary) that the database has not seen yet, each in its own transaction,
 * recording them in fleetsync_schema; it is idempotent and safe to run from
 * several processes at once (an advisory transaction lock serialises them).
 */
#ifndef FS_PG_H
#define FS_PG_H

#include "core/buf.h"
#include "core/config.h"

#include <libpq-fe.h>
#include <stddef.h>
#include <stdint.h>

/* The libpq password file of the data dir (D/pgpass, written by services
 * start): the password of the pipelines' role. */
#define PG_PASSFILE "pgpass"

/* Connects and sets TimeZone = UTC.  Unless PGPASSFILE is set or the
 * conninfo names a passfile or password, the password comes from the data
 * dir's password file (cfg->data_dir/PG_PASSFILE) when it exists.  Returns
 * NULL with a reason in err. */
PGconn *pg_connect(const struct fs_config *cfg, const char *app_name, char *err, size_t err_size);

/* Applies pending migrations.  Returns the number applied (0 when the schema
 * is current), or -1 with a reason in err. */
int pg_migrate(PGconn *conn, char *err, size_t err_size);

/* The highest migration number compiled into this binary. */
int pg_schema_version(void);

/* Runs a statement without parameters; returns 0, or -1 with the server's
 * message in err. */
int pg_exec(PGconn *conn, const char *sql, char *err, size_t err_size);

/* Runs a statement with n text parameters; returns its result when its
 * status is want (the caller PQclear()s it), or NULL with the server's
 * message in err. */
PGresult *pg_exec_params(PGconn *conn, const char *sql, int n, const char *const *vals, ExecStatusType want, char *err,
                         size_t err_size);

/* Runs sql (a COPY ... FROM STDIN) and sends the bytes of data, rows in the
 * COPY text format, in chunks of at most 1 MiB.  Returns 0, or -1 with the
 * reason in err; a buffer that lost an addition (data->oom) is refused
 * before anything is sent: a COPY of part of a batch would store it as a
 * whole. */
int pg_copy(PGconn *conn, const char *sql, const struct buf *data, char *err, size_t err_size);

/* Copies PQerrorMessage / PQresultErrorMessage into err without the
 * trailing newline, and keeps the result's SQLSTATE for pg_last_sqlstate()
 * (none without a result: a connection or client-side failure).  Every
 * helper of this file reports its failures through it. */
void pg_error(PGconn *conn, const PGresult *res, char *err, size_t err_size);

/* The SQLSTATE of the last error pg_error() reported on the calling thread
 * ("22003"), "" when it had none or after pg_clear_sqlstate(). */
const char *pg_last_sqlstate(void);
void pg_clear_sqlstate(void);
/* The table and the constraint that error names (PG_DIAG_TABLE_NAME,
 * PG_DIAG_CONSTRAINT_NAME; "" when none, cut at 63 bytes): a CHECK
 * violation names its constraint, a row no partition takes names only the
 * partitioned table. */
const char *pg_last_table(void);
const char *pg_last_constraint(void);

/* 1 for the SQLSTATE classes of errors in the data a statement carries,
 * which repeat however often it is retried: 22 (data exception: a value
 * out of range, invalid text) and 23 (integrity constraint violation). */
int pg_sqlstate_is_data_error(const char *sqlstate);

/* Formats ms since the epoch as an ISO 8601 UTC timestamp PostgreSQL reads
 * ("2026-11-27T03:12:38.123Z"); buf needs 32 bytes.  Returns buf. */
char *pg_format_ts(int64_t ms, char *buf, size_t size);

/* Parses a timestamptz in the text form the server sends with TimeZone UTC
 * ("2026-11-27 03:12:38.123+00") into ms since the epoch.  Returns 0 or -1. */
int pg_parse_ts(const char *s, int64_t *ms);

/* Embedded migrations (generated from sql/ at build time). */
struct pg_migration {
    int version;
    const char *name;
    const char *sql;
};
extern const struct pg_migration pg_migrations[];
extern const int pg_migration_count;

#endif
