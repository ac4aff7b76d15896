/*
 * sinkoffsets.c - the queries of the sink_offsets table (see sinkoffsets.h).
 */
#include "core/sinkoffsets.h"

#include "core/pg.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ROW_COLUMNS "group_id, topic, partition, next_offset, (extract(epoch FROM updated_at) * 1000)::bigint"

static const char SQL_READ_GROUP[] =
    "SELECT " ROW_COLUMNS " FROM sink_offsets WHERE group_id = $1 ORDER BY topic, partition";
static const char SQL_READ_GROUP_FOR_UPDATE[] =
    "SELECT " ROW_COLUMNS " FROM sink_offsets WHERE group_id = $1 ORDER BY topic, partition FOR UPDATE";
static const char SQL_READ_ALL[] = "SELECT " ROW_COLUMNS " FROM sink_offsets ORDER BY group_id, topic, partition";
static const char SQL_TABLE_EXISTS[] = "SELECT to_regclass('sink_offsets') IS NOT NULL";
static const char SQL_GROUP_HAS_ROWS[] = "SELECT EXISTS (SELECT 1 FROM sink_offsets WHERE group_id = $1)";

/* The heart of the exactly-once sinks: the update happens only where the
 * row still holds $5; an absent row is inserted, which only a sink that saw
 * none ($5 = -1) expects.  One row affected = stored, none = moved. */
#define STORE_CHECKED(table)                                                                                           \
    "INSERT INTO " table " (group_id, topic, partition, next_offset) "                                                 \
    "VALUES ($1, $2, $3, $4) ON CONFLICT (group_id, topic, partition) DO UPDATE "                                      \
    "SET next_offset = EXCLUDED.next_offset, updated_at = now() "                                                      \
    "WHERE " table ".next_offset = $5"
static const char *const SQL_STORE_CHECKED[] = {
    [SINKOFF_SINK] = STORE_CHECKED("sink_offsets"), [SINKOFF_ROLLUP] = STORE_CHECKED("rollup_offsets")};
static const char *const TABLE_NAME[] = {[SINKOFF_SINK] = "the stored offset", [SINKOFF_ROLLUP] = "the rollup offset"};
static const char SQL_STORE[] = "INSERT INTO sink_offsets (group_id, topic, partition, next_offset) "
                                "VALUES ($1, $2, $3, $4) ON CONFLICT (group_id, topic, partition) "
                                "DO UPDATE SET next_offset = EXCLUDED.next_offset, updated_at = now()";

/* Parses a whole decimal integer in [min, max]. */
static int parse_int64(const char *s, int64_t min, int64_t max, int64_t *v)
{
    char *end;
    if (!s || !*s)
        return -1;
    errno = 0;
    long long n = strtoll(s, &end, 10);
    if (errno || *end || n < min || n > max)
        return -1;
    *v = n;
    return 0;
}

int sinkoff_row_parse(const char *const cols[SINKOFF_COLUMNS], struct sinkoff_row *row, char *err, size_t err_size)
{
    int64_t partition;
    row->group = cols[0];
    row->topic = cols[1];
    if (parse_int64(cols[2], INT32_MIN, INT32_MAX, &partition) != 0) {
        snprintf(err, err_size, "sink_offsets row of %s: partition '%s' is not a 32-bit number", cols[0], cols[2]);
        return -1;
    }
    row->partition = (int32_t)partition;
    if (parse_int64(cols[3], INT64_MIN, INT64_MAX, &row->next_offset) != 0) {
        snprintf(err, err_size, "sink_offsets row of %s: next_offset '%s' is not a number", cols[0], cols[3]);
        return -1;
    }
    if (parse_int64(cols[4], INT64_MIN, INT64_MAX, &row->updated_ms) != 0) {
        snprintf(err, err_size, "sink_offsets row of %s: updated_at '%s' is not a time", cols[0], cols[4]);
        return -1;
    }
    return 0;
}

/* Runs a query of rows and hands each to fn. */
static int read_rows(PGconn *conn, const char *sql, int n, const char *const *vals, sinkoff_row_fn fn, void *ctx,
                     char *err, size_t err_size)
{
    PGresult *res = pg_exec_params(conn, sql, n, vals, PGRES_TUPLES_OK, err, err_size);
    if (!res)
        return -1;
    int rc = 0;
    if (PQnfields(res) != SINKOFF_COLUMNS) {
        snprintf(err, err_size, "sink_offsets: %d columns instead of %d", PQnfields(res), SINKOFF_COLUMNS);
        rc = -1;
    }
    for (int r = 0; rc == 0 && r < PQntuples(res); r++) {
        const char *cols[SINKOFF_COLUMNS];
        struct sinkoff_row row;
        for (int c = 0; c < SINKOFF_COLUMNS; c++)
            cols[c] = PQgetvalue(res, r, c);
        if (sinkoff_row_parse(cols, &row, err, err_size) != 0)
            rc = -1;
        else
            rc = fn(ctx, &row, err, err_size);
    }
    PQclear(res);
    return rc;
}

/* Sets *exists when the table exists.  Returns 0 or -1 (err). */
static int table_exists(PGconn *conn, int *exists, char *err, size_t err_size)
{
    PGresult *res = pg_exec_params(conn, SQL_TABLE_EXISTS, 0, NULL, PGRES_TUPLES_OK, err, err_size);
    if (!res)
        return -1;
    *exists = PQntuples(res) == 1 && strcmp(PQgetvalue(res, 0, 0), "t") == 0;
    PQclear(res);
    return 0;
}

int sinkoff_read_group(PGconn *conn, const char *group, int for_update, sinkoff_row_fn fn, void *ctx, char *err,
                       size_t err_size)
{
    const char *vals[1] = {group};
    return read_rows(conn, for_update ? SQL_READ_GROUP_FOR_UPDATE : SQL_READ_GROUP, 1, vals, fn, ctx, err, err_size);
}

int sinkoff_read_all(PGconn *conn, sinkoff_row_fn fn, void *ctx, char *err, size_t err_size)
{
    int exists;
    if (table_exists(conn, &exists, err, err_size) != 0)
        return -1;
    return exists ? read_rows(conn, SQL_READ_ALL, 0, NULL, fn, ctx, err, err_size) : 0;
}

int sinkoff_group_has_rows(PGconn *conn, const char *group, int *has, char *err, size_t err_size)
{
    const char *vals[1] = {group};
    int exists;
    *has = 0;
    if (table_exists(conn, &exists, err, err_size) != 0)
        return -1;
    if (!exists)
        return 0;
    PGresult *res = pg_exec_params(conn, SQL_GROUP_HAS_ROWS, 1, vals, PGRES_TUPLES_OK, err, err_size);
    if (!res)
        return -1;
    *has = PQntuples(res) == 1 && strcmp(PQgetvalue(res, 0, 0), "t") == 0;
    PQclear(res);
    return 0;
}

/* Runs one of the two upserts; *rows is the number of rows it wrote. */
static int upsert(PGconn *conn, const char *sql, const char *group, const char *topic, int32_t partition,
                  int64_t next_offset, const int64_t *expected, int *rows, char *err, size_t err_size)
{
    char part[16], next[24], exp[24];
    snprintf(part, sizeof(part), "%" PRId32, partition);
    snprintf(next, sizeof(next), "%" PRId64, next_offset);
    if (expected)
        snprintf(exp, sizeof(exp), "%" PRId64, *expected);
    const char *vals[5] = {group, topic, part, next, exp};
    PGresult *res = pg_exec_params(conn, sql, expected ? 5 : 4, vals, PGRES_COMMAND_OK, err, err_size);
    if (!res)
        return -1;
    *rows = atoi(PQcmdTuples(res));
    PQclear(res);
    return 0;
}

int sinkoff_store_checked_in(PGconn *conn, enum sinkoff_table table, const char *group, const char *topic,
                             int32_t partition, int64_t next_offset, int64_t expected, char *err, size_t err_size)
{
    int rows;
    if (upsert(conn, SQL_STORE_CHECKED[table], group, topic, partition, next_offset, &expected, &rows, err, err_size) !=
        0)
        return -1;
    if (rows != 1) {
        snprintf(err, err_size, "%s of %s [%d] is no longer %" PRId64, TABLE_NAME[table], topic, partition, expected);
        return SINKOFF_MOVED;
    }
    return 0;
}

int sinkoff_store_checked(PGconn *conn, const char *group, const char *topic, int32_t partition, int64_t next_offset,
                          int64_t expected, char *err, size_t err_size)
{
    return sinkoff_store_checked_in(conn, SINKOFF_SINK, group, topic, partition, next_offset, expected, err, err_size);
}

int sinkoff_store(PGconn *conn, const char *group, const char *topic, int32_t partition, int64_t next_offset, char *err,
                  size_t err_size)
{
    int rows;
    return upsert(conn, SQL_STORE, group, topic, partition, next_offset, NULL, &rows, err, err_size);
}
