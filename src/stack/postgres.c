/*
 * postgres.c - the PostgreSQL server: its binaries (the newest Debian major
 * version, or FLEETSYNC_PG_BINDIR), initdb of a new cluster with password
 * logins, the server's command line, its start and its health probe (a
 * ping).  Roles and passwords are pgroles.c's.
 */
#include "stack/stack.h"

#include "core/log.h"

#include <dirent.h>
#include <libpq-fe.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* A ping needs no password: the server answers whether it would let us in. */
int svc_pg_healthy(const struct svc_ctx *c)
{
    char port[16];
    snprintf(port, sizeof(port), "%d", c->ports.pg);
    const char *keys[] = {"host", "port", "dbname", "user", "connect_timeout", NULL};
    const char *vals[] = {"127.0.0.1", port, "postgres", SVC_PG_ROLE, "2", NULL};
    return PQpingParams(keys, vals, 0) == PQPING_OK ? 0 : -1;
}

static int pg_bindir(char *buf, size_t size)
{
    const char *env = getenv("FLEETSYNC_PG_BINDIR");
    if (env && *env) {
        snprintf(buf, size, "%s", env);
        return 0;
    }
    /* Debian keeps server binaries per major version; take the newest. */
    DIR *d = opendir("/usr/lib/postgresql");
    int best = 0;
    if (d) {
        struct dirent *e;
        while ((e = readdir(d))) {
            int v = atoi(e->d_name);
            char probe[PATH_MAX];
            snprintf(probe, sizeof(probe), "/usr/lib/postgresql/%s/bin/postgres", e->d_name);
            if (v > best && access(probe, X_OK) == 0)
                best = v;
        }
        closedir(d);
    }
    if (!best) {
        log_error("PostgreSQL server binaries not found under /usr/lib/postgresql; run scripts/bootstrap "
                  "or set FLEETSYNC_PG_BINDIR");
        return -1;
    }
    snprintf(buf, size, "/usr/lib/postgresql/%d/bin", best);
    return 0;
}

/* The server's settings besides its port, sockets and listen address.
 *
 * The sinks write tens of MB of WAL a second at a few hundred thousand
 * trucks.  PostgreSQL's defaults (a checkpoint at 1 GB of WAL or every 5
 * minutes) then checkpoint every half minute, and after each one the first
 * change of every page of the readings' primary key logs the whole page:
 * random inserts touch them all.  Checkpoints at most every 15 minutes or
 * 8 GB of WAL, and full-page images compressed (lz4), cut the WAL by about
 * 40 % at 400,000 trucks (docs/history.md).  The price: up to 8 GB of WAL
 * on disk between checkpoints, and a longer replay after a server crash. */
static const char *const pg_settings[] = {
    "max_connections=200",      "logging_collector=off", "max_wal_size=8GB",
    "checkpoint_timeout=15min", "wal_compression=lz4",
};
_Static_assert(3 + 2 * (4 + sizeof(pg_settings) / sizeof(pg_settings[0])) + 1 <= SVC_PG_ARGV_MAX,
               "SVC_PG_ARGV_MAX holds the server's command line");

/* shared_buffers: a quarter of the machine's memory, between 128 MB and
 * 8 GB.  History inserts every reading at a random place of its primary
 * key; with PostgreSQL's 128 MB (or our former 256 MB) the key outgrows
 * the buffers within minutes at 100,000 trucks, and each insert then
 * evicts a dirty page to read another (docs/history.md).  Pages are only
 * allocated as they are used. */
static void pg_shared_buffers(char buf[48])
{
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    long long mb = pages > 0 && page > 0 ? (long long)pages / 1024 * page / 1024 / 4 : 128;
    if (mb < 128)
        mb = 128;
    if (mb > 8192)
        mb = 8192;
    snprintf(buf, 48, "shared_buffers=%lldMB", mb);
}

void svc_pg_server_argv(const struct svc_ctx *c, const char *bindir, int tcp, struct svc_pg_cmd *cmd)
{
    char sock[PATH_MAX];
    snprintf(cmd->bin, sizeof(cmd->bin), "%s/postgres", bindir);
    svc_path_join(cmd->data, sizeof(cmd->data), c->dir, "postgres/data");
    svc_path_join(sock, sizeof(sock), c->dir, "postgres/run");
    snprintf(cmd->port, sizeof(cmd->port), "port=%d", c->ports.pg);
    snprintf(cmd->sockopt, sizeof(cmd->sockopt), "unix_socket_directories=%s", sock);
    pg_shared_buffers(cmd->buffers);
    char *own[] = {cmd->port, tcp ? "listen_addresses=127.0.0.1" : "listen_addresses=", cmd->sockopt, cmd->buffers};
    char **argv = cmd->argv;
    int a = 0;
    argv[a++] = cmd->bin;
    argv[a++] = "-D";
    argv[a++] = cmd->data;
    for (size_t i = 0; i < sizeof(own) / sizeof(own[0]); i++) {
        argv[a++] = "-c";
        argv[a++] = own[i];
    }
    for (size_t i = 0; i < sizeof(pg_settings) / sizeof(pg_settings[0]); i++) {
        argv[a++] = "-c";
        argv[a++] = (char *)pg_settings[i];
    }
    argv[a] = NULL;
}

int svc_start_postgres(const struct svc_ctx *c)
{
    char bindir[PATH_MAX], bin[PATH_MAX + 16], data[PATH_MAX], ver[PATH_MAX], logp[64];
    char admin_pw[64], pwline[80];
    struct svc_pg_cmd cmd;
    int rc = -1;
    if (pg_bindir(bindir, sizeof(bindir)) != 0)
        return -1;
    if (svc_mkdir(c, "postgres", 0750) != 0 || svc_mkdir(c, "postgres/run", 0750) != 0)
        return -1;
    svc_path_join(data, sizeof(data), c->dir, "postgres/data");
    svc_path_join(ver, sizeof(ver), c->dir, "postgres/data/PG_VERSION");
    svc_log_rel(SVC_POSTGRES, 0, logp, sizeof(logp));

    int fresh = access(ver, F_OK) != 0;
    int trusts = fresh ? 0 : svc_pg_hba_trusts(c);
    if (trusts < 0 || svc_pg_passwords(c, fresh || trusts, admin_pw, sizeof(admin_pw)) != 0)
        goto out;
    if (fresh) {
        log_info("initializing PostgreSQL cluster in %s (password logins; superuser %s)", data, SVC_PG_ADMIN);
        snprintf(bin, sizeof(bin), "%s/initdb", bindir);
        snprintf(pwline, sizeof(pwline), "%s\n", admin_pw);
        char *const init[] = {bin,
                              "-D",
                              data,
                              "-U",
                              SVC_PG_ADMIN,
                              "--auth=scram-sha-256",
                              "--pwfile=/dev/stdin",
                              "-E",
                              "UTF8",
                              "--locale=C",
                              "--no-instructions",
                              NULL};
        int st = svc_run_sync(c, init, logp, c->dir, pwline);
        memset(pwline, 0, sizeof(pwline));
        if (st != 0) {
            log_error("initdb failed (exit %d)", st);
            goto out;
        }
    } else if (trusts && svc_pg_upgrade_auth(c, bindir, admin_pw) != 0) {
        log_error("the upgrade of %s/postgres to password logins failed; the cluster is unchanged where it did not "
                  "get that far. See %s/%s",
                  c->dir, c->dir, logp);
        goto out;
    }
    svc_pg_server_argv(c, bindir, 1, &cmd);
    pid_t pid = svc_spawn(c, cmd.argv, logp, cmd.data);
    rc = pid > 0 ? svc_write_pid(c, SVC_POSTGRES, 0, pid) : -1;
out:
    memset(admin_pw, 0, sizeof(admin_pw));
    return rc;
}
