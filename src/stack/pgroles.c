/*
 * pgroles.c - PostgreSQL roles and passwords: the password files D/pgpass
 * and D/pgpass-admin, the roles set up on every start, and the upgrade in
 * place of a cluster made by an earlier FleetSync (trust logins).
 *
 * Every connection logs in with a password (SCRAM-SHA-256, pg_hba.conf for
 * the unix socket and for 127.0.0.1/::1).  Two roles:
 *   SVC_PG_ADMIN  the bootstrap superuser; only services start logs in as
 *                 it, with the password in D/pgpass-admin
 *   SVC_PG_ROLE   the pipelines' role: no superuser, no CREATEDB/CREATEROLE;
 *                 it owns the database fleetsync and its tables (the
 *                 migrations run as it); password in D/pgpass (PG_PASSFILE),
 *                 which pg_connect() finds from the data dir
 * Both files are libpq password files, mode 0600, owned by whoever runs
 * services start.  Each start sets SVC_PG_ROLE's attributes and password
 * again and hands it the database and the tables, so a data dir made by an
 * earlier FleetSync (initdb --auth=trust, "fleetsync" the superuser) is
 * upgraded in place: see svc_pg_upgrade_auth().
 */
#include "stack/stack.h"

#include "core/clock.h"
#include "core/log.h"
#include "core/nofollow.h"
#include "core/pg.h"
#include "core/proc.h"
#include "core/randbytes.h"

#include <errno.h>
#include <fcntl.h>
#include <libpq-fe.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define PG_PW_BYTES 20 /* 40 hex digits */

/* The password of `user` in the libpq password file D/rel, as this file
 * writes it (host:port:*:user:password, the password in hex).  Returns 0,
 * 1 when there is no file or no line for user, -1 when it cannot be read. */
static int pgpass_read(const struct svc_ctx *c, const char *rel, const char *user, char *pw, size_t size)
{
    FILE *f = svc_fopen_read(c, rel);
    if (!f)
        return errno == ENOENT ? 1 : -1;
    char line[PATH_MAX + 256];
    int rc = 1;
    while (rc == 1 && fgets(line, sizeof(line), f)) {
        line[strcspn(line, "\r\n")] = '\0';
        char *last = strrchr(line, ':');
        if (!last || last == line)
            continue;
        *last = '\0';
        char *prev = strrchr(line, ':');
        size_t len = strlen(last + 1);
        if (!prev || strcmp(prev + 1, user) != 0 || len == 0 || len >= size)
            continue;
        memcpy(pw, last + 1, len + 1);
        rc = 0;
    }
    fclose(f);
    return rc;
}

/* pgpass host field: ':' and '\' escaped. */
static void pgpass_escape(const char *in, char *out, size_t size)
{
    size_t o = 0;
    for (; *in && o + 2 < size; in++) {
        if (*in == ':' || *in == '\\')
            out[o++] = '\\';
        out[o++] = *in;
    }
    out[o] = '\0';
}

/* Writes D/rel (0600, the invoking user's) with the lines libpq matches
 * for user's connections to this data dir's server: 127.0.0.1, localhost,
 * ::1 and the unix socket folder, on the server's port.  Rewritten only
 * when it differs (a new port), through a temporary file and rename(). */
static int pgpass_write(const struct svc_ctx *c, const char *rel, const char *user, const char *pw)
{
    char sock[PATH_MAX], esc[2 * PATH_MAX], text[4 * PATH_MAX], old[4 * PATH_MAX], tmp[64];
    svc_path_join(sock, sizeof(sock), c->dir, "postgres/run");
    pgpass_escape(sock, esc, sizeof(esc));
    int n =
        snprintf(text, sizeof(text), "127.0.0.1:%d:*:%s:%s\nlocalhost:%d:*:%s:%s\n\\:\\:1:%d:*:%s:%s\n%s:%d:*:%s:%s\n",
                 c->ports.pg, user, pw, c->ports.pg, user, pw, c->ports.pg, user, pw, esc, c->ports.pg, user, pw);
    if (n < 0 || (size_t)n >= sizeof(text)) {
        log_error("%s/%s does not fit (data dir path too long?)", c->dir, rel);
        return -1;
    }
    int fd = nf_open(c->dir, rel, O_RDONLY, 0);
    if (fd >= 0) {
        struct stat st;
        ssize_t got = read(fd, old, sizeof(old) - 1);
        int same = got == n && memcmp(old, text, (size_t)n) == 0 && fstat(fd, &st) == 0 &&
                   (st.st_mode & 0777) == 0600 && st.st_uid == geteuid();
        close(fd);
        if (same)
            return 0;
    }
    snprintf(tmp, sizeof(tmp), "%s.new", rel);
    char from[PATH_MAX], to[PATH_MAX];
    svc_path_join(from, sizeof(from), c->dir, tmp);
    svc_path_join(to, sizeof(to), c->dir, rel);
    fd = nf_open(c->dir, tmp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0 || fchmod(fd, 0600) != 0 || write(fd, text, (size_t)n) != n || fsync(fd) != 0 || close(fd) != 0 ||
        (fd = -1, rename(from, to) != 0)) {
        log_error("cannot write %s: %s", to, strerror(errno));
        if (fd >= 0)
            close(fd);
        unlink(from);
        return -1;
    }
    return 0;
}

static int pg_new_password(char *out, size_t size)
{
    unsigned char raw[PG_PW_BYTES];
    char err[128];
    if (randbytes_fill(raw, sizeof(raw), err, sizeof(err)) != 0) {
        log_error("%s", err);
        return -1;
    }
    if (size < 2 * sizeof(raw) + 1)
        return -1;
    for (size_t i = 0; i < sizeof(raw); i++)
        snprintf(out + 2 * i, 3, "%02x", raw[i]);
    memset(raw, 0, sizeof(raw));
    return 0;
}

/* 1 when D/postgres/data/pg_hba.conf lets anyone in without a password
 * (a cluster made by an earlier services start), 0 when not, -1 when it
 * cannot be read. */
int svc_pg_hba_trusts(const struct svc_ctx *c)
{
    FILE *f = svc_fopen_read(c, "postgres/data/pg_hba.conf");
    if (!f) {
        log_error("cannot read %s/postgres/data/pg_hba.conf: %s", c->dir, strerror(errno));
        return -1;
    }
    char line[1024];
    int trust = 0;
    while (!trust && fgets(line, sizeof(line), f)) {
        line[strcspn(line, "#")] = '\0';
        for (char *t = strtok(line, " \t\r\n"); t && !trust; t = strtok(NULL, " \t\r\n"))
            trust = strcmp(t, "trust") == 0;
    }
    fclose(f);
    return trust;
}

static const char pg_hba_text[] = "# Written by fleetsync services start: every connection logs in with a\n"
                                  "# password (SCRAM-SHA-256); the passwords are in the data dir's pgpass\n"
                                  "# (role " SVC_PG_ROLE ") and pgpass-admin (role " SVC_PG_ADMIN ").\n"
                                  "# TYPE  DATABASE     USER  ADDRESS        METHOD\n"
                                  "local   all          all                  scram-sha-256\n"
                                  "host    all          all   127.0.0.1/32   scram-sha-256\n"
                                  "host    all          all   ::1/128        scram-sha-256\n"
                                  "local   replication  all                  scram-sha-256\n"
                                  "host    replication  all   127.0.0.1/32   scram-sha-256\n"
                                  "host    replication  all   ::1/128        scram-sha-256\n";

/* Notices ("role ... does not exist, skipping") go to the debug log. */
static void pg_notice_quiet(void *arg, const char *message)
{
    (void)arg;
    log_debug("PostgreSQL: %.*s", (int)strcspn(message, "\n"), message);
}

/* A connection to this data dir's server: over TCP on 127.0.0.1 with the
 * password file D/passfile_rel, or (passfile_rel NULL) over the unix socket
 * without a password, which only a server still on trust accepts.  NULL
 * with the server's reason in err. */
static PGconn *pg_open(const struct svc_ctx *c, const char *db, const char *user, const char *passfile_rel, char *err,
                       size_t err_size)
{
    char port[16], sock[PATH_MAX], passfile[PATH_MAX];
    snprintf(port, sizeof(port), "%d", c->ports.pg);
    svc_path_join(sock, sizeof(sock), c->dir, "postgres/run");
    if (passfile_rel)
        svc_path_join(passfile, sizeof(passfile), c->dir, passfile_rel);
    const char *keys[] = {"host", "port", "dbname", "user", "connect_timeout", "application_name", "passfile", NULL};
    const char *vals[] = {passfile_rel ? "127.0.0.1" : sock, port, db, user, "10", "fleetsync-services",
                          passfile_rel ? passfile : NULL,    NULL};
    PGconn *conn = PQconnectdbParams(keys, vals, 0);
    if (PQstatus(conn) != CONNECTION_OK) {
        pg_error(conn, NULL, err, err_size);
        PQfinish(conn);
        return NULL;
    }
    PQsetNoticeProcessor(conn, pg_notice_quiet, NULL);
    return conn;
}

/* Runs each statement of sql (NULL-terminated); logs the first failure. */
static int pg_run(PGconn *conn, const char *const *sql)
{
    char err[512];
    for (; *sql; sql++) {
        if (pg_exec(conn, *sql, err, sizeof(err)) != 0) {
            log_error("PostgreSQL: %s (%.60s...)", err, *sql);
            return -1;
        }
    }
    return 0;
}

/* "ALTER ROLE user PASSWORD '<SCRAM verifier>'" (or CREATE ROLE with attrs):
 * the verifier is computed here, so the password itself never reaches the
 * server or its logs. */
static int pg_set_password(PGconn *conn, const char *verb, const char *user, const char *attrs, const char *pw)
{
    char *ver = PQencryptPasswordConn(conn, pw, user, "scram-sha-256");
    if (!ver) {
        log_error("cannot compute the password verifier of %s: %s", user, PQerrorMessage(conn));
        return -1;
    }
    char *lit = PQescapeLiteral(conn, ver, strlen(ver));
    PQfreemem(ver);
    if (!lit)
        return -1;
    char sql[1024];
    snprintf(sql, sizeof(sql), "%s ROLE %s WITH %s PASSWORD %s", verb, user, attrs, lit);
    PQfreemem(lit);
    const char *stmts[] = {sql, NULL};
    int rc = pg_run(conn, stmts);
    memset(sql, 0, sizeof(sql));
    return rc;
}

/* Upgrades a cluster made by an earlier services start (pg_hba "trust",
 * the bootstrap superuser named fleetsync) in place: the server runs on its
 * unix socket only (D/postgres/run, the service user's 0750 folder), the
 * superuser is renamed SVC_PG_ADMIN and gets admin_pw, pg_hba.conf asks
 * every connection for a password, and the server stops again.  The
 * bootstrap superuser keeps its attribute (PostgreSQL requires it) and can
 * only be renamed from another session, hence a passing superuser
 * "fleetsync_upgrade".  svc_pg_provision() then makes the pipelines' role and
 * hands it the database.  Safe to repeat after an interruption. */
int svc_pg_upgrade_auth(const struct svc_ctx *c, const char *bindir, const char *admin_pw)
{
    char err[512], logp[64];
    struct svc_pg_cmd cmd;
    int rc = -1;
    log_info("upgrading PostgreSQL in %s/postgres to password logins (SCRAM-SHA-256); role %s becomes %s, "
             "a new role %s without superuser owns the database",
             c->dir, SVC_PG_ROLE, SVC_PG_ADMIN, SVC_PG_ROLE);
    svc_pg_server_argv(c, bindir, 0, &cmd);
    svc_log_rel(SVC_POSTGRES, 0, logp, sizeof(logp));
    pid_t pid = svc_spawn(c, cmd.argv, logp, cmd.data);
    if (pid <= 0 || svc_write_pid(c, SVC_POSTGRES, 0, pid) != 0)
        return -1;
    PGconn *conn = NULL;
    long long deadline = fs_mono_ms() + 60000;
    while (!conn && fs_mono_ms() < deadline) {
        if (proc_reap(pid, NULL) == 1) {
            log_error("PostgreSQL exited during the upgrade");
            pid = 0;
            goto out;
        }
        conn = pg_open(c, "postgres", SVC_PG_ADMIN, NULL, err, sizeof(err));
        if (!conn)
            conn = pg_open(c, "postgres", SVC_PG_ROLE, NULL, err, sizeof(err));
        if (!conn)
            usleep(200 * 1000);
    }
    if (!conn) {
        log_error("cannot connect to PostgreSQL on its unix socket for the upgrade: %s", err);
        goto out;
    }
    PGresult *r = PQexec(conn, "SELECT oid = 10 FROM pg_roles WHERE rolname = current_user");
    int bootstrap = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 && PQgetvalue(r, 0, 0)[0] == 't';
    char *user = strdup(PQuser(conn));
    PQclear(r);
    if (!user)
        goto out;
    if (bootstrap && strcmp(user, SVC_PG_ROLE) == 0) {
        const char *mk[] = {"DROP ROLE IF EXISTS fleetsync_upgrade", "CREATE ROLE fleetsync_upgrade SUPERUSER LOGIN",
                            NULL};
        const char *mv[] = {"ALTER ROLE " SVC_PG_ROLE " RENAME TO " SVC_PG_ADMIN, NULL};
        int ok = pg_run(conn, mk) == 0;
        PQfinish(conn);
        conn = ok ? pg_open(c, "postgres", "fleetsync_upgrade", NULL, err, sizeof(err)) : NULL;
        ok = conn && pg_run(conn, mv) == 0;
        PQfinish(conn);
        conn = ok ? pg_open(c, "postgres", SVC_PG_ADMIN, NULL, err, sizeof(err)) : NULL;
        if (!conn) {
            log_error("upgrade: cannot rename role %s to %s%s%s", SVC_PG_ROLE, SVC_PG_ADMIN, ok ? ": " : "",
                      ok ? err : "");
            free(user);
            goto out;
        }
    } else if (!bootstrap || strcmp(user, SVC_PG_ADMIN) != 0) {
        log_error("upgrade: role %s of %s/postgres is not the bootstrap superuser; not touching it", user, c->dir);
        free(user);
        goto out;
    }
    free(user);
    const char *drop[] = {"DROP ROLE IF EXISTS fleetsync_upgrade", NULL};
    if (pg_run(conn, drop) != 0 || pg_set_password(conn, "ALTER", SVC_PG_ADMIN, "SUPERUSER LOGIN", admin_pw) != 0)
        goto out;
    if (nf_write(c->dir, "postgres/data/pg_hba.conf", pg_hba_text, strlen(pg_hba_text), 0600,
                 c->as_root ? c->uid : (uid_t)-1, c->gid) != 0) {
        log_error("cannot write %s/postgres/data/pg_hba.conf: %s", c->dir, strerror(errno));
        goto out;
    }
    rc = 0;
out:
    PQfinish(conn);
    if (pid > 0) {
        /* SIGINT: fast shutdown; the normal start follows.  A kill takes
         * the server's backends (its process group) with it. */
        if (proc_stop(pid, SIGINT, 60000, PROC_KILL_GROUP, NULL) == 1)
            log_warn("PostgreSQL did not stop within 60 s after the upgrade; killing it");
        svc_pid_forget(c, SVC_POSTGRES, 0);
    }
    return rc;
}

/* The passwords of both roles: D/pgpass gets a new one when it has none
 * (svc_pg_provision() sets it on the server); D/pgpass-admin only for a new or
 * upgraded cluster (need_admin), since nothing could set it otherwise.
 * Both files are (re)written for the current port. */
int svc_pg_passwords(const struct svc_ctx *c, int need_admin, char *admin_pw, size_t admin_size)
{
    char pw[64];
    int rc = pgpass_read(c, SVC_PG_ADMIN_PASSFILE, SVC_PG_ADMIN, admin_pw, admin_size);
    if (rc < 0 || (rc == 1 && !need_admin)) {
        log_error("cannot read the password of PostgreSQL role %s from %s/%s (%s); without it services start cannot "
                  "manage the database. Restore the file, or stop the services and remove %s/postgres to begin "
                  "with an empty database",
                  SVC_PG_ADMIN, c->dir, SVC_PG_ADMIN_PASSFILE, rc < 0 ? strerror(errno) : "no such file or line",
                  c->dir);
        return -1;
    }
    if (rc == 1 && pg_new_password(admin_pw, admin_size) != 0)
        return -1;
    if (pgpass_write(c, SVC_PG_ADMIN_PASSFILE, SVC_PG_ADMIN, admin_pw) != 0)
        return -1;
    rc = pgpass_read(c, PG_PASSFILE, SVC_PG_ROLE, pw, sizeof(pw));
    if (rc < 0) {
        log_error("cannot read %s/%s: %s", c->dir, PG_PASSFILE, strerror(errno));
        return -1;
    }
    if (rc == 1 && pg_new_password(pw, sizeof(pw)) != 0)
        return -1;
    rc = pgpass_write(c, PG_PASSFILE, SVC_PG_ROLE, pw);
    memset(pw, 0, sizeof(pw));
    return rc;
}

/* Logs in as SVC_PG_ADMIN and sets up SVC_PG_ROLE: no superuser or other
 * power, the password of D/pgpass, owner of the database fleetsync
 * (created once) and of every table, view and sequence in it (those of an
 * upgraded cluster belonged to the superuser).  Run by every start. */
int svc_pg_provision(const struct svc_ctx *c)
{
    char err[512], pw[64];
    PGconn *db = NULL;
    int rc = -1;
    if (svc_pg_hba_trusts(c) > 0) {
        log_error("the running PostgreSQL of %s lets anyone in as superuser (trust, made by an earlier FleetSync); "
                  "'fleetsync services stop', then 'fleetsync services start' upgrades it to password logins",
                  c->dir);
        return -1;
    }
    if (pgpass_read(c, PG_PASSFILE, SVC_PG_ROLE, pw, sizeof(pw)) != 0) {
        log_error("no password for role %s in %s/%s", SVC_PG_ROLE, c->dir, PG_PASSFILE);
        return -1;
    }
    db = pg_open(c, "postgres", SVC_PG_ADMIN, SVC_PG_ADMIN_PASSFILE, err, sizeof(err));
    if (!db) {
        log_error("cannot log in to PostgreSQL on port %d as %s (password of %s/%s): %s", c->ports.pg, SVC_PG_ADMIN,
                  c->dir, SVC_PG_ADMIN_PASSFILE, err);
        goto out;
    }
    static const char attrs[] = "LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS";
    PGresult *r = PQexec(db, "SELECT 1 FROM pg_roles WHERE rolname = '" SVC_PG_ROLE "'");
    int role = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1;
    PQclear(r);
    if (pg_set_password(db, role ? "ALTER" : "CREATE", SVC_PG_ROLE, attrs, pw) != 0)
        goto out;
    r = PQexec(db, "SELECT 1 FROM pg_database WHERE datname = 'fleetsync'");
    int exists = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1;
    PQclear(r);
    const char *mkdb[] = {exists ? "ALTER DATABASE fleetsync OWNER TO " SVC_PG_ROLE
                                 : "CREATE DATABASE fleetsync OWNER " SVC_PG_ROLE,
                          NULL};
    if (pg_run(db, mkdb) != 0)
        goto out;
    if (!exists)
        log_info("created database fleetsync, owned by role %s", SVC_PG_ROLE);
    PQfinish(db);
    db = pg_open(c, "fleetsync", SVC_PG_ADMIN, SVC_PG_ADMIN_PASSFILE, err, sizeof(err));
    if (!db) {
        log_error("cannot log in to database fleetsync as %s: %s", SVC_PG_ADMIN, err);
        goto out;
    }
    /* Tables and views first: a sequence owned by a column moves with its
     * table and cannot be given away on its own. */
    static const char *const hand_over[] = {
        "DO $$DECLARE r record; BEGIN"
        " FOR r IN SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        "  WHERE c.relowner = 10 AND c.relkind IN ('r', 'p', 'v', 'm', 'f')"
        "  AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%'"
        " LOOP EXECUTE format('ALTER TABLE %I.%I OWNER TO " SVC_PG_ROLE "', r.nspname, r.relname); END LOOP;"
        " FOR r IN SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        "  WHERE c.relowner = 10 AND c.relkind = 'S'"
        "  AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%'"
        " LOOP EXECUTE format('ALTER SEQUENCE %I.%I OWNER TO " SVC_PG_ROLE "', r.nspname, r.relname); END LOOP;"
        " END$$",
        NULL};
    if (pg_run(db, hand_over) != 0)
        goto out;
    rc = 0;
out:
    memset(pw, 0, sizeof(pw));
    PQfinish(db);
    return rc;
}
