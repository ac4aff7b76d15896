/*
 * services.c - start, stop and watch the embedded Mosquitto, Kafka and
 * PostgreSQL (see services.h for the data dir layout).
 *
 * Each service is one foreground process that we fork, put in its own
 * session, drop to the service user, and exec; its pid goes into
 * D/run/<name>.pid.  A pid file counts only while /proc/<pid>/cmdline still
 * names the service's binary and this data dir, so a stale file left by a
 * crash or a reboot (pid reused by another program) is ignored and replaced.
 * "Healthy" means the service answers its own protocol: an MQTT CONNACK, a
 * Kafka metadata response, a PostgreSQL ping.
 */
#include "stack/services.h"
#include "core/clock.h"

#include "core/kafka.h"
#include "core/kafkaauth.h"
#include "core/log.h"
#include "core/mqttauth.h"
#include "core/mqttprobe.h"
#include "core/nofollow.h"
#include "core/opts.h"
#include "core/pg.h"
#include "core/proc.h"
#include "core/topics.h"
#include "core/units.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <grp.h>
#include <ifaddrs.h>
#include <libpq-fe.h>
#include <netdb.h>
#include <limits.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char *const svc_names[SVC_COUNT] = {"mosquitto", "kafka", "postgres"};

/* Everything a start, stop or status needs to know about one data dir. */
struct svc_ctx {
    char dir[PATH_MAX]; /* absolute data dir */
    struct svc_ports ports;
    uid_t uid; /* the user services run as */
    gid_t gid;
    int as_root;     /* we are root and must drop to uid/gid */
    int tls_port;    /* Mosquitto's TLS listener, 0 = none */
    int kafka_nodes; /* 1: the single broker; 3: a cluster (D/kafka-brokers) */
    int secure;      /* Kafka wants SASL and enforces ACLs (D/kafka-auth/secret) */
};

/* A unit is one process: (service, node).  Node 0 is the service itself,
 * the single Kafka broker included (D/kafka, run/kafka.pid); the brokers of
 * a cluster are Kafka nodes 1..N (D/kafka-<k>, run/kafka-<k>.pid). */
static void unit_range(const struct svc_ctx *c, enum svc_id id, int *first, int *last)
{
    int cluster = id == SVC_KAFKA && c->kafka_nodes > 1;
    *first = cluster ? 1 : 0;
    *last = cluster ? c->kafka_nodes : 0;
}

static const char *unit_name(enum svc_id id, int node, char *buf, size_t size)
{
    static const char *const names[SVC_COUNT] = {"mosquitto", "kafka", "postgres"};
    if (node > 0)
        snprintf(buf, size, "%s-%d", names[id], node);
    else
        snprintf(buf, size, "%s", names[id]);
    return buf;
}

/* Broker k of N listens on kafka + 2(k-1), its controller one above. */
static int kafka_port(const struct svc_ctx *c, int node)
{
    return c->ports.kafka + 2 * (node > 0 ? node - 1 : 0);
}

static int kafka_controller_port(const struct svc_ctx *c, int node)
{
    return c->ports.controller + 2 * (node > 0 ? node - 1 : 0);
}

static void path_join(char *buf, size_t size, const char *dir, const char *rel)
{
    int n = snprintf(buf, size, "%s/%s", dir, rel);
    if (n < 0 || (size_t)n >= size)
        buf[0] = '\0';
}

static int mkdir_p(const char *path, mode_t mode)
{
    char tmp[PATH_MAX];
    if (snprintf(tmp, sizeof(tmp), "%s", path) >= (int)sizeof(tmp))
        return -1;
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(tmp, 0755) != 0 && errno != EEXIST)
            return -1;
        *p = '/';
    }
    if (mkdir(tmp, mode) != 0 && errno != EEXIST)
        return -1;
    return 0;
}

/* Creates D/rel (its parents 0755) owned by the service user.  Every
 * component is opened without following symbolic links, and the folder is
 * handed over with fchown() on its descriptor: a folder the service user
 * already owns may hold a link it planted (core/nofollow.h). */
static int svc_mkdir(const struct svc_ctx *c, const char *rel, mode_t mode)
{
    char parent[PATH_MAX];
    snprintf(parent, sizeof(parent), "%s", rel);
    char *slash = strrchr(parent, '/');
    int fd = -1;
    if (slash) {
        *slash = '\0';
        fd = nf_opendir(c->dir, parent, 1, 0755);
        if (fd < 0)
            goto fail;
        close(fd);
    }
    fd = nf_opendir(c->dir, rel, 1, mode);
    if (fd < 0)
        goto fail;
    if (c->as_root && fchown(fd, c->uid, c->gid) != 0) {
        log_error("cannot hand %s/%s to user %s: %s", c->dir, rel, SVC_USER, strerror(errno));
        close(fd);
        return -1;
    }
    close(fd);
    return 0;
fail:
    log_error("cannot create %s/%s: %s", c->dir, rel, strerror(errno));
    return -1;
}

/* Writes D/rel (a configuration file the services read) with mode, also
 * when it existed with another, owned by the service user. */
static int write_file_mode(const struct svc_ctx *c, const char *rel, const char *text, mode_t mode)
{
    if (nf_write(c->dir, rel, text, strlen(text), mode, c->as_root ? c->uid : (uid_t)-1, c->gid) != 0) {
        log_error("cannot write %s/%s: %s", c->dir, rel, strerror(errno));
        return -1;
    }
    return 0;
}

static int write_file(const struct svc_ctx *c, const char *rel, const char *text)
{
    return write_file_mode(c, rel, text, 0644);
}

/* --- the service user ------------------------------------------------- */

static int ensure_user(struct svc_ctx *c)
{
    if (geteuid() != 0) {
        c->uid = getuid();
        c->gid = getgid();
        c->as_root = 0;
        return 0;
    }
    c->as_root = 1;
    struct passwd *pw = getpwnam(SVC_USER);
    if (!pw) {
        log_info("creating system user %s for the services", SVC_USER);
        int rc = system("useradd --system --no-create-home --home-dir /nonexistent "
                        "--shell /usr/sbin/nologin " SVC_USER " >/dev/null 2>&1");
        pw = getpwnam(SVC_USER);
        if (!pw) {
            log_error("cannot create the system user %s (useradd exit %d); "
                      "create it by hand or start the services as a normal user",
                      SVC_USER, rc);
            return -1;
        }
    }
    c->uid = pw->pw_uid;
    c->gid = pw->pw_gid;
    return 0;
}

/* Whether user uid/gid can walk down to path: every existing directory on
 * the way must let it search.  Returns 0, or -1 with the first one that does
 * not in bad. */
static int walkable(const char *path, uid_t uid, gid_t gid, char *bad, size_t bad_size, mode_t *bad_mode)
{
    char p[PATH_MAX];
    snprintf(p, sizeof(p), "%s", path);
    for (;;) {
        struct stat st;
        if (stat(p, &st) == 0) {
            int ok = st.st_uid == uid   ? (st.st_mode & S_IXUSR)
                     : st.st_gid == gid ? (st.st_mode & S_IXGRP)
                                        : (st.st_mode & S_IXOTH);
            if (!ok) {
                snprintf(bad, bad_size, "%s", p);
                *bad_mode = st.st_mode & 0777;
                return -1;
            }
        }
        char *slash = strrchr(p, '/');
        if (!slash || slash == p)
            return 0;
        *slash = '\0';
    }
}

/* As root, the service user must be able to walk down to the data dir: a
 * clone under a 0700 /root is not reachable, and the services would fail in
 * ways far from the cause.  Says so plainly instead. */
static int check_reachable(const struct svc_ctx *c)
{
    char bad[PATH_MAX];
    mode_t mode;
    if (!c->as_root || walkable(c->dir, c->uid, c->gid, bad, sizeof(bad), &mode) == 0)
        return 0;
    log_error("the data dir %s is not reachable by user %s: %s is mode %03o. "
              "Use a data dir outside it (--data-dir /var/lib/fleetsync/NAME) or run as a normal user",
              c->dir, SVC_USER, bad, (unsigned)mode);
    return -1;
}

/* Started as root with the default data dir (./var) in a checkout the
 * service user cannot reach (a clone in /root, or in a 0700 mktemp dir), the
 * data goes to /var/lib/fleetsync/NAME-HASH, one per checkout, and ./var
 * becomes a link to it: every command run from the checkout then finds it
 * as before.  An existing ./var is kept (a link, or a directory with data in
 * it; an empty directory left by an earlier refusal is replaced).  Returns
 * 0, or -1 (said why). */
static int place_default_data_dir(const struct svc_ctx *c, const char *data_dir)
{
    if (!c->as_root || strcmp(data_dir, CFG_DEFAULT_DATA_DIR) != 0)
        return 0;
    char cwd[PATH_MAX], bad[PATH_MAX], target[PATH_MAX];
    mode_t mode;
    struct stat st;
    if (!getcwd(cwd, sizeof(cwd)) || walkable(cwd, c->uid, c->gid, bad, sizeof(bad), &mode) == 0)
        return 0;
    if (lstat(data_dir, &st) == 0) {
        if (!S_ISDIR(st.st_mode) || rmdir(data_dir) != 0)
            return 0; /* a link, or data: check_reachable says what to do */
    }
    /* FNV-1a of the checkout's path: two checkouts of one name stay apart. */
    uint32_t h = 2166136261u;
    for (const char *p = cwd; *p; p++)
        h = (h ^ (unsigned char)*p) * 16777619u;
    const char *base = strrchr(cwd, '/');
    base = base && base[1] ? base + 1 : "root";
    snprintf(target, sizeof(target), "/var/lib/fleetsync/%.64s-%08x", base, (unsigned)h);
    if (mkdir_p(target, 0755) != 0) {
        log_error("cannot create %s: %s", target, strerror(errno));
        return -1;
    }
    if (symlink(target, data_dir) != 0) {
        log_error("cannot link %s to %s: %s", data_dir, target, strerror(errno));
        return -1;
    }
    log_info("this checkout is not reachable by user %s (%s is mode %03o): the data dir is %s (%s links to it)",
             SVC_USER, bad, (unsigned)mode, target, data_dir);
    return 0;
}

/* --- processes ---------------------------------------------------------- */

/* A broker holds one descriptor per client: Mosquitto with 100,000 truck
 * connections needs as many, far above the usual soft limit (1024).  The
 * soft limit goes up to the hard one; as root the hard one too, up to the
 * kernel's fs.nr_open.  Both stop at SVC_MAX_OPEN_FILES: some programs size
 * tables by the limit or close every descriptor below it, which a limit
 * near 2^30 (fs.nr_open under recent systemd) makes slow.  Best effort: a
 * service that stays at a lower limit still runs. */
#define SVC_MAX_OPEN_FILES 1048576ULL
static void raise_open_files(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return;
    unsigned long long want = 0;
    FILE *f = fopen("/proc/sys/fs/nr_open", "r");
    if (f) {
        if (fscanf(f, "%llu", &want) != 1)
            want = 0;
        fclose(f);
    }
    if (want > SVC_MAX_OPEN_FILES)
        want = SVC_MAX_OPEN_FILES;
    if (want > rl.rlim_max) {
        struct rlimit up = {(rlim_t)want, (rlim_t)want};
        if (setrlimit(RLIMIT_NOFILE, &up) == 0)
            return;
    }
    const rlim_t cap = (rlim_t)SVC_MAX_OPEN_FILES; /* RLIM_INFINITY compares as the largest */
    if (rl.rlim_cur < rl.rlim_max && rl.rlim_cur < cap) {
        rl.rlim_cur = rl.rlim_max < cap ? rl.rlim_max : cap;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

/* In a fresh child, in its own session (proc_spawn()): stdin from
 * /dev/null (or a pipe holding input), open-file limit raised, privileges
 * dropped, output appended to D/log_rel, cwd set.  The log is opened only
 * after dropping to the service user, without following a symbolic link (one
 * there is replaced by a new file): D/log is that user's, and root must not
 * open what it points to.  Never returns on failure. */
static void child_setup(const struct svc_ctx *c, const char *log_rel, const char *cwd, const char *input)
{
    raise_open_files();
    int in = open("/dev/null", O_RDONLY);
    if (in < 0)
        _exit(126);
    if (c->as_root) {
        if (setgroups(0, NULL) != 0 || setgid(c->gid) != 0 || setuid(c->uid) != 0) {
            dprintf(2, "fleetsync: cannot switch to user %s: %s\n", SVC_USER, strerror(errno));
            _exit(126);
        }
        setenv("HOME", c->dir, 1);
        setenv("USER", SVC_USER, 1);
    }
    if (input) {
        /* Made after the switch, so that the service user may open it again
         * as /dev/stdin (initdb --pwfile). */
        int p[2];
        size_t len = strlen(input);
        if (pipe(p) != 0 || write(p[1], input, len) != (ssize_t)len) {
            dprintf(2, "fleetsync: cannot pass input to %s: %s\n", log_rel, strerror(errno));
            _exit(126);
        }
        close(p[1]);
        close(in);
        in = p[0];
    }
    int out = nf_open(c->dir, log_rel, O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (out < 0) {
        dprintf(2, "fleetsync: cannot open %s/%s: %s\n", c->dir, log_rel, strerror(errno));
        _exit(126);
    }
    dup2(in, 0);
    dup2(out, 1);
    dup2(out, 2);
    if (in > 2)
        close(in);
    if (out > 2)
        close(out);
    if (cwd && chdir(cwd) != 0) {
        dprintf(2, "fleetsync: cannot enter %s: %s\n", cwd, strerror(errno));
        _exit(126);
    }
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    signal(SIGPIPE, SIG_DFL);
}

struct child_args {
    const struct svc_ctx *c;
    const char *log_rel, *cwd, *input;
};

static void child_setup_cb(void *arg)
{
    const struct child_args *a = arg;
    child_setup(a->c, a->log_rel, a->cwd, a->input);
}

/* Forks argv (searched in PATH) as the service user, in its own session,
 * output into D/log_rel; input, when not NULL, is its stdin.  Returns the
 * pid or -1. */
static pid_t spawn_input(const struct svc_ctx *c, char *const argv[], const char *log_rel, const char *cwd,
                         const char *input)
{
    struct child_args a = {.c = c, .log_rel = log_rel, .cwd = cwd, .input = input};
    struct proc_spec spec = {
        .argv = argv, .log_fd = -1, .group = PROC_SESSION_OWN, .setup = child_setup_cb, .setup_arg = &a};
    pid_t pid;
    if (proc_spawn(&spec, &pid) != 0) {
        log_error("fork: %s", strerror(errno));
        return -1;
    }
    return pid;
}

static pid_t spawn(const struct svc_ctx *c, char *const argv[], const char *log_rel, const char *cwd)
{
    return spawn_input(c, argv, log_rel, cwd, NULL);
}

/* Runs argv to completion as the service user; returns its exit status. */
static int run_sync(const struct svc_ctx *c, char *const argv[], const char *log_rel, const char *cwd,
                    const char *input)
{
    pid_t pid = spawn_input(c, argv, log_rel, cwd, input);
    if (pid < 0)
        return -1;
    int st;
    if (proc_wait(pid, &st) != 0)
        return -1;
    return proc_exit_code(st);
}

/* "run/<unit>.pid" and "log/<unit>.log", relative to the data dir: both
 * folders are the service user's, so they are opened with core/nofollow.h. */
static void pid_rel(enum svc_id id, int node, char *buf, size_t size)
{
    char name[32];
    snprintf(buf, size, "run/%s.pid", unit_name(id, node, name, sizeof(name)));
}

static void log_rel(enum svc_id id, int node, char *buf, size_t size)
{
    char name[32];
    snprintf(buf, size, "log/%s.log", unit_name(id, node, name, sizeof(name)));
}

/* The marker a live process of this service must show in its command line. */
static const char *const svc_markers[SVC_COUNT] = {"mosquitto", "kafka.Kafka", "postgres"};

/* Returns the pid of the running unit, or 0.  A pid file whose process
 * is gone or is some other program is stale: removed, 0 returned.  A Kafka
 * broker must also name its own server.properties (D/kafka-<k>/...). */
static pid_t svc_running_pid(const struct svc_ctx *c, enum svc_id id, int node)
{
    char path[64], buf[32], props[64], name[32];
    pid_rel(id, node, path, sizeof(path));
    snprintf(props, sizeof(props), "/%s/server.properties", unit_name(id, node, name, sizeof(name)));
    int pfd = nf_open(c->dir, path, O_RDONLY, 0);
    if (pfd < 0)
        return 0;
    long pid = 0;
    ssize_t got = read(pfd, buf, sizeof(buf) - 1);
    close(pfd);
    if (got > 0) {
        buf[got] = '\0';
        pid = strtol(buf, NULL, 10);
    }

    int alive = 0;
    if (pid > 0 && kill((pid_t)pid, 0) == 0) {
        char proc[64], cmd[8192];
        snprintf(proc, sizeof(proc), "/proc/%ld/cmdline", pid);
        int fd = open(proc, O_RDONLY);
        if (fd >= 0) {
            ssize_t n = read(fd, cmd, sizeof(cmd) - 1);
            close(fd);
            if (n > 0) {
                for (ssize_t i = 0; i < n; i++)
                    if (cmd[i] == '\0')
                        cmd[i] = ' ';
                cmd[n] = '\0';
                /* A zombie (our own unreaped child) has an empty cmdline. */
                alive = strstr(cmd, svc_markers[id]) && strstr(cmd, c->dir) && (id != SVC_KAFKA || strstr(cmd, props));
            }
        }
    }
    if (!alive) {
        log_debug("removing stale pid file %s/%s (pid %ld)", c->dir, path, pid);
        nf_unlink(c->dir, path);
        return 0;
    }
    return (pid_t)pid;
}

/* Services this process forked during a start.  Until exec runs, a child's
 * cmdline is still ours, so its liveness is judged by waitpid(), not /proc. */
static pid_t spawned[SVC_COUNT][SVC_KAFKA_MAX_BROKERS + 1];

static int write_pid(const struct svc_ctx *c, enum svc_id id, int node, pid_t pid)
{
    spawned[id][node] = pid;
    char path[64], text[32];
    pid_rel(id, node, path, sizeof(path));
    snprintf(text, sizeof(text), "%d\n", (int)pid);
    if (nf_write(c->dir, path, text, strlen(text), 0644, (uid_t)-1, (gid_t)-1) != 0) {
        log_error("cannot write %s/%s: %s", c->dir, path, strerror(errno));
        return -1;
    }
    return 0;
}

static void print_log_tail(const struct svc_ctx *c, enum svc_id id, int node, int lines)
{
    char rel[64], path[PATH_MAX];
    log_rel(id, node, rel, sizeof(rel));
    path_join(path, sizeof(path), c->dir, rel);
    int fd = nf_open(c->dir, rel, O_RDONLY, 0);
    FILE *f = fd >= 0 ? fdopen(fd, "r") : NULL;
    if (!f) {
        if (fd >= 0)
            close(fd);
        fprintf(stderr, "(no log at %s)\n", path);
        return;
    }
    char buf[8192];
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    long from = size > (long)sizeof(buf) - 1 ? size - (long)sizeof(buf) + 1 : 0;
    fseek(f, from, SEEK_SET);
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *p = buf + n;
    int seen = 0;
    while (p > buf && seen <= lines) {
        p--;
        if (*p == '\n' && p != buf + n - 1)
            seen++;
    }
    if (*p == '\n')
        p++;
    fprintf(stderr, "--- last lines of %s ---\n%s", path, p);
    if (n && buf[n - 1] != '\n')
        fputc('\n', stderr);
    fprintf(stderr, "---\n");
}

/* --- health checks ------------------------------------------------------ */

/* Connects and waits for the CONNACK.  Returns 0 when the broker answered
 * as wanted: accepted, or, with refused_ok, refused as not authorised (an
 * anonymous probe of a broker with credentials: it answers MQTT, and the
 * probe logs in as no account, so it takes over nobody's session).
 * url, when not NULL, is an endpoint this data dir did not start: its host,
 * credentials and TLS (system CAs) are used instead of 127.0.0.1:port. */
static int mqtt_healthy_at(const struct cfg_mqtt_url *url, int port, int refused_ok, int timeout_ms)
{
    char id[64], err[256];
    snprintf(id, sizeof(id), "fleetsync-probe-%d", (int)getpid());
    struct mqttprobe_target t = {.host = url ? url->host : "127.0.0.1",
                                 .port = url ? url->port : port,
                                 .client_id = id,
                                 .user = url ? url->user : NULL,
                                 .pass = url && *url->pass ? url->pass : NULL,
                                 .tls = url && url->tls};
    int code;
    if (mqttprobe_connack(&t, timeout_ms, &code, err, sizeof(err)) != 0) {
        log_debug("MQTT probe of %s:%d: %s", t.host, t.port, err);
        return -1;
    }
    return code == MQTTPROBE_ACCEPTED || (refused_ok && code == MQTTPROBE_NOT_AUTHORISED) ? 0 : -1;
}

/* The data dir's own broker.  Once credentials exist (D/mqtt/secret) it
 * refuses anonymous clients: the probe stays anonymous and takes the
 * refusal as the answer.  Logging in as the bridge would, with the broker's
 * client id = account rule, take over the bridge's session. */
static int mqtt_healthy(const struct svc_ctx *c, int timeout_ms)
{
    struct mqa_secret s;
    char err[256];
    int have = mqa_secret_load(c->dir, &s, err, sizeof(err)) == 0;
    memset(&s, 0, sizeof(s));
    return mqtt_healthy_at(NULL, c->ports.mqtt, have, timeout_ms);
}

/* A ping needs no password: the server answers whether it would let us in. */
static int pg_healthy(const struct svc_ctx *c)
{
    char port[16];
    snprintf(port, sizeof(port), "%d", c->ports.pg);
    const char *keys[] = {"host", "port", "dbname", "user", "connect_timeout", NULL};
    const char *vals[] = {"127.0.0.1", port, "postgres", SVC_PG_ROLE, "2", NULL};
    return PQpingParams(keys, vals, 0) == PQPING_OK ? 0 : -1;
}

/* While a broker starts, "brokers are down" is expected: probe quietly. */
static void quiet_log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    (void)rk;
    (void)level;
    log_debug("librdkafka %s: %s", fac, buf);
}

/* "127.0.0.1:P1,127.0.0.1:P2,..." for every broker of the data dir. */
static void kafka_bootstrap(const struct svc_ctx *c, char *buf, size_t size)
{
    int first, last;
    size_t n = 0;
    unit_range(c, SVC_KAFKA, &first, &last);
    buf[0] = '\0';
    for (int k = first; k <= last && n < size; k++)
        n += (size_t)snprintf(buf + n, size - n, "%s127.0.0.1:%d", k > first ? "," : "", kafka_port(c, k));
}

/* A client of the data dir's Kafka: of one broker (node, bootstrapped to it
 * alone), or of all of them (node -1). */
static rd_kafka_t *kafka_admin_handle(const struct svc_ctx *c, int node, char *err, size_t err_size)
{
    struct fs_config kc;
    char brokers[256];
    cfg_init(&kc);
    kc.data_dir = c->dir;
    kc.kafka_user = KA_USER_ADMIN;
    if (node >= 0)
        snprintf(brokers, sizeof(brokers), "127.0.0.1:%d", kafka_port(c, node));
    else
        kafka_bootstrap(c, brokers, sizeof(brokers));
    kc.brokers = brokers;
    static const char *const defaults[] = {"socket.connection.setup.timeout.ms", "2000", "reconnect.backoff.max.ms",
                                           "500", NULL};
    rd_kafka_conf_t *conf = kafka_conf_new(&kc, defaults, err, err_size);
    cfg_release(&kc);
    if (!conf)
        return NULL;
    rd_kafka_conf_set_log_cb(conf, quiet_log_cb);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, err_size);
    if (!rk)
        rd_kafka_conf_destroy(conf);
    return rk;
}

/* One broker answers a metadata request (the client knows no other). */
static int kafka_healthy(const struct svc_ctx *c, int node, int timeout_ms)
{
    char err[256];
    rd_kafka_t *rk = kafka_admin_handle(c, node, err, sizeof(err));
    if (!rk)
        return -1;
    int rc = kafka_wait_ready(rk, timeout_ms, err, sizeof(err));
    rd_kafka_destroy(rk);
    return rc;
}

/* A cluster is ready for topics with replication factor N once the
 * metadata lists all N brokers (a broker is listed once the controller has
 * unfenced it).  Waits up to timeout_ms; returns 0 or -1. */
static int kafka_cluster_ready(const struct svc_ctx *c, int timeout_ms)
{
    char err[256];
    rd_kafka_t *rk = kafka_admin_handle(c, -1, err, sizeof(err));
    if (!rk)
        return -1;
    long long deadline = fs_mono_ms() + timeout_ms;
    int seen = 0;
    do {
        const struct rd_kafka_metadata *md = NULL;
        if (rd_kafka_metadata(rk, 0, NULL, &md, 2000) == RD_KAFKA_RESP_ERR_NO_ERROR) {
            seen = md->broker_cnt;
            rd_kafka_metadata_destroy(md);
            if (seen >= c->kafka_nodes)
                break;
        }
        usleep(200 * 1000);
    } while (fs_mono_ms() < deadline);
    rd_kafka_destroy(rk);
    if (seen < c->kafka_nodes) {
        log_error("Kafka lists %d of %d brokers after %d s", seen, c->kafka_nodes, timeout_ms / 1000);
        return -1;
    }
    return 0;
}

/* An endpoint this data dir did not start, probed where the shared options
 * point (--mqtt, --brokers with the -X properties, --pg).  Returns 0 when it
 * answers. */
static int external_healthy(const struct fs_config *cfg, enum svc_id id)
{
    char err[256];
    if (id == SVC_MOSQUITTO) {
        struct cfg_mqtt_url url;
        if (cfg_parse_mqtt_url(cfg->mqtt, &url, err, sizeof(err)) != 0)
            return -1;
        return mqtt_healthy_at(&url, url.port, 0, 2000);
    }
    if (id == SVC_KAFKA) {
        static const char *const defaults[] = {"socket.connection.setup.timeout.ms", "2000", NULL};
        rd_kafka_conf_t *conf = kafka_conf_new(cfg, defaults, err, sizeof(err));
        if (!conf)
            return -1;
        rd_kafka_conf_set_log_cb(conf, quiet_log_cb);
        rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
        if (!rk) {
            rd_kafka_conf_destroy(conf);
            return -1;
        }
        int rc = kafka_wait_ready(rk, 3000, err, sizeof(err));
        rd_kafka_destroy(rk);
        return rc;
    }
    const char *keys[] = {"dbname", "connect_timeout", NULL};
    const char *values[] = {cfg->pg, "2", NULL};
    return PQpingParams(keys, values, 1) == PQPING_OK ? 0 : -1;
}

/* --- configuration files ------------------------------------------------ */

/* Hands a file of the credentials store or of D/tls/ to the service user
 * (Mosquitto reads it after dropping to that user); as a normal user the
 * files are already the services'. */
static int give_to_service(const struct svc_ctx *c, const char *rel)
{
    if (!c->as_root)
        return 0;
    int fd = nf_open(c->dir, rel, O_RDONLY, 0);
    if (fd < 0 && errno == ENOENT)
        return 0;
    struct stat st;
    if (fd >= 0 && (fstat(fd, &st) != 0 || st.st_nlink != 1)) {
        errno = EMLINK; /* a second name elsewhere: not ours to give away */
        close(fd);
        fd = -1;
    }
    if (fd < 0 || fchown(fd, c->uid, c->gid) != 0) {
        log_error("cannot hand %s/%s to user %s: %s", c->dir, rel, SVC_USER, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    close(fd);
    return 0;
}

/* Appends printf output at *n of buf, never past its end; *n counts what
 * the whole text needs, so an overflow shows as *n >= size. */
static void __attribute__((format(printf, 4, 5))) conf_add(char *buf, size_t size, size_t *n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(buf + (*n < size ? *n : size - 1), *n < size ? size - *n : 1, fmt, ap);
    va_end(ap);
    *n += k > 0 ? (size_t)k : 0;
}

/* D/run/mqtt-auth exists while the running Mosquitto was started with
 * credentials: use_username_as_clientid is read at start only (a SIGHUP
 * does not apply it), so the first credentials need a restart. */
static int mqtt_has_credentials(const struct svc_ctx *c)
{
    char passwd[PATH_MAX];
    path_join(passwd, sizeof(passwd), c->dir, "mqtt/passwd");
    return access(passwd, F_OK) == 0;
}

static int save_auth_mark(const struct svc_ctx *c)
{
    char path[PATH_MAX];
    path_join(path, sizeof(path), c->dir, "run/mqtt-auth");
    if (!mqtt_has_credentials(c))
        return unlink(path) == 0 || errno == ENOENT ? 0 : -1;
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    fputs("started with credentials (use_username_as_clientid)\n", f);
    return fclose(f);
}

static int write_mosquitto_conf(const struct svc_ctx *c)
{
    char text[16384], passwd[PATH_MAX], acl[PATH_MAX];
    /* Credentials exist once `fleetsync trucks add` has written the password
     * file (docs/security.md): from then on nobody connects anonymously. */
    path_join(passwd, sizeof(passwd), c->dir, "mqtt/passwd");
    path_join(acl, sizeof(acl), c->dir, "mqtt/acl");
    int auth = mqtt_has_credentials(c);
    if (auth && (give_to_service(c, "mqtt/passwd") != 0 || give_to_service(c, "mqtt/acl") != 0))
        return -1;
    size_t n = 0;
    conf_add(text, sizeof(text), &n,
             "# Generated by fleetsync services start; changes are overwritten.\n"
             "listener %d 127.0.0.1\n",
             c->ports.mqtt);
    if (auth)
        conf_add(text, sizeof(text), &n,
                 "# Credentials of fleetsync trucks add (docs/security.md).\n"
                 "allow_anonymous false\n"
                 "# A client's id is its account's name, whatever id it sends: no account can\n"
                 "# take over (kick, or wipe with a clean session) another's session.\n"
                 "use_username_as_clientid true\n"
                 "password_file %s\n"
                 "acl_file %s\n",
                 passwd, acl);
    else
        conf_add(text, sizeof(text), &n, "allow_anonymous true\n");
    conf_add(text, sizeof(text), &n,
             "# Packets over 64 KiB are refused by the broker (docs/design.md).\n"
             "max_packet_size 65536\n"
             "# The bridge's persistent session keeps what arrives while it is away\n"
             "# (the default queue of 1000 drops the excess silently): up to 10 million\n"
             "# messages or 2 GB of payload (10 million readings of 200 bytes; at 180\n"
             "# bytes, the simulator's, 10 million fit), whichever comes first; past\n"
             "# either, Mosquitto drops further QoS 1 messages for that session (the\n"
             "# publisher still gets its PUBACK).  The byte bound keeps one client with\n"
             "# 64 KiB packets from filling memory; 2 GB is under Mosquitto's int limit.\n"
             "max_queued_messages 10000000\n"
             "max_queued_bytes 2000000000\n"
             "max_inflight_messages 1000\n"
             "persistence true\n"
             "persistence_location %s/mosquitto/data/\n"
             "autosave_interval 60\n"
             "log_dest stdout\n"
             "log_type error\nlog_type warning\nlog_type notice\nlog_type information\n"
             "connection_messages false\n"
             "log_timestamp_format %%Y-%%m-%%dT%%H:%%M:%%S\n"
             "set_tcp_nodelay true\n",
             c->dir);
    if (c->tls_port)
        conf_add(text, sizeof(text), &n,
                 "# services start --tls: MQTT over TLS with the local CA's certificate.\n"
                 "listener %d 127.0.0.1\n"
                 "certfile %s/tls/server.crt\n"
                 "keyfile %s/tls/server.key\n"
                 "tls_version tlsv1.2\n",
                 c->tls_port, c->dir, c->dir);
    if (n >= sizeof(text)) {
        log_error("mosquitto.conf does not fit (data dir path too long?)");
        return -1;
    }
    return write_file(c, "mosquitto/mosquitto.conf", text);
}

/* The openssl child's stdin and output (see openssl_run()). */
static void openssl_setup(void *arg)
{
    const struct svc_ctx *c = arg;
    int in = open("/dev/null", O_RDONLY), out = nf_open(c->dir, "log/tls.log", O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (in < 0 || out < 0)
        _exit(126);
    dup2(in, 0);
    dup2(out, 1);
    dup2(out, 2);
}

/* Runs the openssl CLI (as the invoking user), output into D/log/tls.log
 * (opened without following a link: D/log is the service user's). */
static int openssl_run(const struct svc_ctx *c, char *const argv[])
{
    struct proc_spec spec = {.argv = argv, .log_fd = -1, .setup = openssl_setup, .setup_arg = (void *)c};
    pid_t pid;
    int st;
    if (proc_spawn(&spec, &pid) != 0 || proc_wait(pid, &st) != 0)
        return -1;
    return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -1;
}

/* D/tls/: a local CA (ca.key stays the invoking user's, 0600) and a server
 * certificate for 127.0.0.1 and localhost signed by it.  Made once; kept
 * across restarts so clients that trust ca.crt keep trusting the broker. */
/* The subjectAltName of the dashboard's certificate: loopback, this
 * host's name and every address of its interfaces, so browsers on other
 * machines that open https://HOST:PORT/ by one of them can verify it. */
static void dashboard_san(char *out, size_t size)
{
    size_t n = 0;
    conf_add(out, size, &n, "IP:127.0.0.1,DNS:localhost");
    char host[256];
    if (gethostname(host, sizeof(host)) == 0 && host[0] &&
        strspn(host, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                     "0123456789.-") == strlen(host) &&
        strcmp(host, "localhost") != 0)
        conf_add(out, size, &n, ",DNS:%s", host);
    struct ifaddrs *ifs;
    if (getifaddrs(&ifs) != 0)
        return;
    for (struct ifaddrs *i = ifs; i; i = i->ifa_next) {
        if (!i->ifa_addr || (i->ifa_addr->sa_family != AF_INET && i->ifa_addr->sa_family != AF_INET6))
            continue;
        char a[NI_MAXHOST];
        socklen_t sl = i->ifa_addr->sa_family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
        if (getnameinfo(i->ifa_addr, sl, a, sizeof(a), NULL, 0, NI_NUMERICHOST) != 0 || strchr(a, '%') ||
            strcmp(a, "127.0.0.1") == 0)
            continue; /* link-local IPv6 (with a zone) cannot be in a certificate */
        conf_add(out, size, &n, ",IP:%s", a);
    }
    freeifaddrs(ifs);
    if (n >= size)
        snprintf(out, size, "IP:127.0.0.1,DNS:localhost"); /* too many addresses: loopback only */
}

/* D/tls/dashboard.crt and .key, signed by the local CA, for `fleetsync
 * dashboard --tls`: made once, the key stays the invoking user's (0600). */
static int tls_dashboard_ensure(const struct svc_ctx *c, const char *ca_crt, const char *ca_key, const char *serial)
{
    char key[PATH_MAX], csr[PATH_MAX], crt[PATH_MAX], ext[PATH_MAX], san[4096];
    path_join(key, sizeof(key), c->dir, "tls/dashboard.key");
    path_join(csr, sizeof(csr), c->dir, "tls/dashboard.csr");
    path_join(crt, sizeof(crt), c->dir, "tls/dashboard.crt");
    path_join(ext, sizeof(ext), c->dir, "tls/dashboard.ext");
    if (access(crt, R_OK) == 0 && access(key, F_OK) == 0)
        return 0;
    if (access(ca_key, R_OK) != 0) {
        log_warn("no dashboard certificate: the local CA's key %s is not readable here", ca_key);
        return 0; /* the broker does not need it */
    }
    dashboard_san(san, sizeof(san));
    mode_t old = umask(077);
    int rc = -1;
    FILE *f = fopen(ext, "w");
    if (f) {
        fprintf(f,
                "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n"
                "extendedKeyUsage=serverAuth\nsubjectAltName=%s\n",
                san);
        rc = fclose(f) == 0 ? 0 : -1;
    }
    if (rc == 0) {
        char *const req[] = {
            "openssl", "req",     "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
            "-nodes",  "-keyout", key,    "-out",    csr,  "-subj",    "/O=FleetSync/CN=FleetSync dashboard",
            NULL};
        char *const sign[] = {"openssl",
                              "x509",
                              "-req",
                              "-in",
                              csr,
                              "-CA",
                              (char *)ca_crt,
                              "-CAkey",
                              (char *)ca_key,
                              "-CAserial",
                              (char *)serial,
                              "-CAcreateserial",
                              "-out",
                              crt,
                              "-days",
                              "825",
                              "-extfile",
                              ext,
                              NULL};
        rc = openssl_run(c, req) == 0 && openssl_run(c, sign) == 0 ? 0 : -1;
    }
    umask(old);
    unlink(csr);
    if (rc != 0) {
        log_error("openssl could not make the dashboard's certificate; see %s/log/tls.log", c->dir);
        return -1;
    }
    chmod(crt, 0644);
    log_info("made %s for fleetsync dashboard --tls (%s)", crt, san);
    return 0;
}

static int tls_ensure(const struct svc_ctx *c)
{
    char dir[PATH_MAX], ca_key[PATH_MAX], ca_crt[PATH_MAX], key[PATH_MAX], csr[PATH_MAX], crt[PATH_MAX], ext[PATH_MAX],
        serial[PATH_MAX];
    path_join(dir, sizeof(dir), c->dir, "tls");
    path_join(ca_key, sizeof(ca_key), c->dir, "tls/ca.key");
    path_join(ca_crt, sizeof(ca_crt), c->dir, "tls/ca.crt");
    path_join(key, sizeof(key), c->dir, "tls/server.key");
    path_join(csr, sizeof(csr), c->dir, "tls/server.csr");
    path_join(crt, sizeof(crt), c->dir, "tls/server.crt");
    path_join(ext, sizeof(ext), c->dir, "tls/server.ext");
    path_join(serial, sizeof(serial), c->dir, "tls/ca.srl");
    if (access(ca_crt, R_OK) == 0 && access(crt, R_OK) == 0 && access(key, F_OK) == 0)
        return tls_dashboard_ensure(c, ca_crt, ca_key, serial) == 0 ? give_to_service(c, "tls/server.key") : -1;
    if (mkdir_p(dir, 0755) != 0) {
        log_error("cannot create %s: %s", dir, strerror(errno));
        return -1;
    }
    log_info("creating a local CA and a server certificate in %s (openssl)", dir);
    mode_t old = umask(077);
    int rc = 0;
    if (access(ca_crt, R_OK) != 0 || access(ca_key, R_OK) != 0) {
        char *const ca[] = {"openssl",
                            "req",
                            "-x509",
                            "-newkey",
                            "ec",
                            "-pkeyopt",
                            "ec_paramgen_curve:P-256",
                            "-nodes",
                            "-keyout",
                            ca_key,
                            "-out",
                            ca_crt,
                            "-days",
                            "3650",
                            "-subj",
                            "/O=FleetSync/CN=FleetSync local CA",
                            "-addext",
                            "basicConstraints=critical,CA:TRUE",
                            "-addext",
                            "keyUsage=critical,keyCertSign,cRLSign",
                            NULL};
        rc = openssl_run(c, ca);
    }
    FILE *f = rc == 0 ? fopen(ext, "w") : NULL;
    if (f) {
        fputs("basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n"
              "extendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n",
              f);
        rc = fclose(f) == 0 ? 0 : -1;
    } else {
        rc = -1;
    }
    if (rc == 0) {
        char *const req[] = {"openssl", "req",     "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                             "-nodes",  "-keyout", key,    "-out",    csr,  "-subj",    "/O=FleetSync/CN=localhost",
                             NULL};
        char *const sign[] = {"openssl", "x509",   "-req",  "-in",       csr,        "-CA",
                              ca_crt,    "-CAkey", ca_key,  "-CAserial", serial,     "-CAcreateserial",
                              "-out",    crt,      "-days", "825",       "-extfile", ext,
                              NULL};
        rc = openssl_run(c, req) == 0 && openssl_run(c, sign) == 0 ? 0 : -1;
    }
    umask(old);
    unlink(csr);
    if (rc != 0) {
        log_error("openssl could not make the certificates; see %s/log/tls.log", c->dir);
        return -1;
    }
    chmod(ca_crt, 0644);
    chmod(crt, 0644);
    return tls_dashboard_ensure(c, ca_crt, ca_key, serial) == 0 ? give_to_service(c, "tls/server.key") : -1;
}

/* D/run/mqtt-tls tells clients (core/mqttauth.h) the TLS port, or is
 * removed when the broker has no TLS listener. */
static int save_tls_port(const struct svc_ctx *c)
{
    char text[32];
    if (!c->tls_port)
        return nf_unlink(c->dir, "run/mqtt-tls");
    snprintf(text, sizeof(text), "mqtts=%d\n", c->tls_port);
    return nf_write(c->dir, "run/mqtt-tls", text, strlen(text), 0644, (uid_t)-1, (gid_t)-1);
}

/* The listener part of node's server.properties.  Plain: PLAINTEXT for
 * clients and brokers, the controller's PLAINTEXT, both on 127.0.0.1.
 * Secure (core/kafkaauth.h): both listeners want SASL/PLAIN, the client one
 * knowing every FleetSync principal, the controller's the admin alone (the
 * brokers and controllers talk as the admin, a super user); the
 * StandardAuthorizer then lets a principal do only what an ACL grants it.
 * The passwords make the text a secret: the caller writes it 0600. */
static int kafka_listener_conf(const struct svc_ctx *c, int node, char *buf, size_t size)
{
    size_t n = 0;
    int rc = -1;
    char admin[KA_PASS_CHARS + 1], pass[KA_PASS_CHARS + 1], err[256];
    if (!c->secure) {
        conf_add(buf, size, &n,
                 "listeners=PLAINTEXT://127.0.0.1:%d,CONTROLLER://127.0.0.1:%d\n"
                 "advertised.listeners=PLAINTEXT://127.0.0.1:%d\n"
                 "controller.listener.names=CONTROLLER\n"
                 "inter.broker.listener.name=PLAINTEXT\n"
                 "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT\n",
                 kafka_port(c, node), kafka_controller_port(c, node), kafka_port(c, node));
        goto out;
    }
    if (ka_password(c->dir, KA_USER_ADMIN, admin, sizeof(admin), err, sizeof(err)) != 0) {
        log_error("Kafka credentials: %s", err);
        return -1;
    }
    conf_add(buf, size, &n,
             "# services start --secure: SASL/PLAIN on both listeners, ACLs enforced.\n"
             "listeners=SASL_PLAINTEXT://127.0.0.1:%d,CONTROLLER://127.0.0.1:%d\n"
             "advertised.listeners=SASL_PLAINTEXT://127.0.0.1:%d\n"
             "controller.listener.names=CONTROLLER\n"
             "inter.broker.listener.name=SASL_PLAINTEXT\n"
             "listener.security.protocol.map=CONTROLLER:SASL_PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT\n"
             "sasl.enabled.mechanisms=" KA_MECHANISM "\n"
             "sasl.mechanism.inter.broker.protocol=" KA_MECHANISM "\n"
             "sasl.mechanism.controller.protocol=" KA_MECHANISM "\n"
             "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer\n"
             "super.users=User:" KA_USER_ADMIN "\n"
             "allow.everyone.if.no.acl.found=false\n"
             "listener.name.controller.plain.sasl.jaas.config="
             "org.apache.kafka.common.security.plain.PlainLoginModule required "
             "username=\"" KA_USER_ADMIN "\" password=\"%s\" user_" KA_USER_ADMIN "=\"%s\";\n"
             "listener.name.sasl_plaintext.plain.sasl.jaas.config="
             "org.apache.kafka.common.security.plain.PlainLoginModule required "
             "username=\"" KA_USER_ADMIN "\" password=\"%s\"",
             kafka_port(c, node), kafka_controller_port(c, node), kafka_port(c, node), admin, admin, admin);
    for (const char *const *u = ka_users; *u; u++) {
        if (ka_password(c->dir, *u, pass, sizeof(pass), err, sizeof(err)) != 0) {
            log_error("Kafka credentials: %s", err);
            goto wipe;
        }
        conf_add(buf, size, &n, " user_%s=\"%s\"", *u, pass);
    }
    conf_add(buf, size, &n, ";\n");
out:
    rc = n < size ? 0 : -1;
    if (rc != 0)
        log_error("the listeners of server.properties do not fit (data dir path too long?)");
wipe:
    memset(admin, 0, sizeof(admin));
    memset(pass, 0, sizeof(pass));
    return rc;
}

/* D/<unit>/server.properties of Kafka node `node` (0: the single broker).
 * A cluster's nodes are each broker and controller (KRaft combined mode),
 * vote in one static quorum and keep every partition on 3 brokers, writes
 * acknowledged by 2 (min.insync.replicas), so one broker may be down. */
static int write_kafka_conf(const struct svc_ctx *c, int node)
{
    char text[8192], voters[256], name[32], listen[4096];
    int n = c->kafka_nodes > 1 ? c->kafka_nodes : 1;
    int rf = n, min_isr = n > 1 ? 2 : 1;
    size_t v = 0;
    voters[0] = '\0';
    if (node == 0)
        snprintf(voters, sizeof(voters), "1@127.0.0.1:%d", kafka_controller_port(c, 0));
    for (int k = 1; node > 0 && k <= n && v < sizeof(voters); k++)
        v += (size_t)snprintf(voters + v, sizeof(voters) - v, "%s%d@127.0.0.1:%d", k > 1 ? "," : "", k,
                              kafka_controller_port(c, k));
    unit_name(SVC_KAFKA, node, name, sizeof(name));
    if (kafka_listener_conf(c, node, listen, sizeof(listen)) != 0)
        return -1;
    int len = snprintf(text, sizeof(text),
                       "# Generated by fleetsync services start; changes are overwritten.\n"
                       "# Node %d of %d in KRaft combined mode (broker + controller).\n"
                       "process.roles=broker,controller\n"
                       "node.id=%d\n"
                       "controller.quorum.voters=%s\n"
                       "%s"
                       "log.dirs=%s/%s/data\n"
                       "num.partitions=6\n"
                       "auto.create.topics.enable=false\n"
                       "default.replication.factor=%d\n"
                       "min.insync.replicas=%d\n"
                       "offsets.topic.replication.factor=%d\n"
                       "offsets.topic.num.partitions=12\n"
                       "transaction.state.log.replication.factor=%d\n"
                       "transaction.state.log.min.isr=%d\n"
                       "share.coordinator.state.topic.replication.factor=%d\n"
                       "share.coordinator.state.topic.min.isr=%d\n"
                       "group.initial.rebalance.delay.ms=0\n"
                       "# A killed broker is fenced (its leaderships move) after 6 s, not 9.\n"
                       "broker.session.timeout.ms=6000\n"
                       "broker.heartbeat.interval.ms=1000\n"
                       "num.network.threads=2\n"
                       "num.io.threads=%d\n"
                       "num.replica.fetchers=1\n"
                       "log.retention.hours=168\n"
                       "log.segment.bytes=268435456\n",
                       node ? node : 1, n, node ? node : 1, voters, listen, c->dir, name, rf, min_isr, rf, rf, min_isr,
                       rf, min_isr, n > 1 ? 2 : 4);
    if (len < 0 || (size_t)len >= sizeof(text)) {
        log_error("server.properties does not fit (data dir path too long?)");
        return -1;
    }
    char rel[64];
    snprintf(rel, sizeof(rel), "%s/server.properties", name);
    int rc = write_file_mode(c, rel, text, c->secure ? 0600 : 0644);
    memset(listen, 0, sizeof(listen));
    memset(text, 0, sizeof(text));
    if (rc != 0)
        return -1;

    static const char log4j[] = "# Generated by fleetsync services start.\n"
                                "status = warn\n"
                                "appender.out.type = Console\n"
                                "appender.out.name = out\n"
                                "appender.out.layout.type = PatternLayout\n"
                                "appender.out.layout.pattern = [%d{ISO8601}] %p %m (%c)%n\n"
                                "rootLogger.level = info\n"
                                "rootLogger.appenderRef.out.ref = out\n"
                                "logger.state.name = state.change.logger\n"
                                "logger.state.level = warn\n"
                                "logger.kafka.name = kafka\n"
                                "logger.kafka.level = info\n"
                                "logger.apache.name = org.apache.kafka\n"
                                "logger.apache.level = warn\n";
    snprintf(rel, sizeof(rel), "%s/log4j2.properties", name);
    return write_file(c, rel, log4j);
}

/* --- starting each service ----------------------------------------------- */

static int start_mosquitto(const struct svc_ctx *c)
{
    char conf[PATH_MAX], logp[64];
    if (svc_mkdir(c, "mosquitto/data", 0750) != 0 || (c->tls_port && tls_ensure(c) != 0) ||
        write_mosquitto_conf(c) != 0)
        return -1;
    if (save_tls_port(c) != 0) {
        log_error("cannot write %s/run/mqtt-tls: %s", c->dir, strerror(errno));
        return -1;
    }
    if (save_auth_mark(c) != 0) {
        log_error("cannot write %s/run/mqtt-auth: %s", c->dir, strerror(errno));
        return -1;
    }
    path_join(conf, sizeof(conf), c->dir, "mosquitto/mosquitto.conf");
    log_rel(SVC_MOSQUITTO, 0, logp, sizeof(logp));
    const char *bin = access("/usr/sbin/mosquitto", X_OK) == 0 ? "/usr/sbin/mosquitto" : "mosquitto";
    char *const argv[] = {(char *)bin, "-c", conf, NULL};
    pid_t pid = spawn(c, argv, logp, c->dir);
    return pid > 0 ? write_pid(c, SVC_MOSQUITTO, 0, pid) : -1;
}

static void kafka_cluster_id(char out[23])
{
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    unsigned char raw[18] = {0}; /* 16 random bytes; the last group of 3 reads two zeros */
    int fd = open("/dev/urandom", O_RDONLY);
    if (fd < 0 || read(fd, raw, 16) != 16) {
        srand((unsigned)time(NULL) ^ (unsigned)getpid());
        for (int i = 0; i < 16; i++)
            raw[i] = (unsigned char)rand();
    }
    if (fd >= 0)
        close(fd);
    /* An id starting with '-' reads as an option to StorageTool ("--cluster-id:
     * expected one argument"; Kafka's own Uuid.randomUuid() skips those): the
     * top bit clear keeps the first character in A-Za-f. */
    raw[0] &= 0x7f;
    /* 128 bits in url-safe base64 without padding: 22 characters. */
    for (int i = 0, o = 0; o < 22; i += 3) {
        unsigned v = (unsigned)raw[i] << 16 | (unsigned)raw[i + 1] << 8 | raw[i + 2];
        for (int k = 18; k >= 0 && o < 22; k -= 6)
            out[o++] = b64[(v >> k) & 63];
    }
    out[22] = '\0';
}

static int kafka_classpath(char *buf, size_t size)
{
    char libs[PATH_MAX], probe[PATH_MAX + 32];
    svc_kafka_libs(libs, sizeof(libs));
    snprintf(probe, sizeof(probe), "%s/kafka_2.13-%s.jar", libs, SVC_KAFKA_VERSION);
    if (access(probe, R_OK) != 0) {
        log_error("Kafka jars not found in %s (missing %s); run scripts/bootstrap "
                  "or set FLEETSYNC_KAFKA_LIBS",
                  libs, probe);
        return -1;
    }
    snprintf(buf, size, "%s/*", libs);
    return 0;
}

static const char *java_bin(char *buf, size_t size)
{
    const char *home = getenv("JAVA_HOME");
    if (home && *home) {
        snprintf(buf, size, "%s/bin/java", home);
        if (access(buf, X_OK) == 0)
            return buf;
    }
    return "java";
}

/* The cluster id a formatted node of this data dir has (every node of a
 * cluster must share it), from D/<unit>/data/meta.properties. */
static int kafka_saved_cluster_id(const struct svc_ctx *c, char *out, size_t size)
{
    int first, last;
    unit_range(c, SVC_KAFKA, &first, &last);
    for (int k = first; k <= last; k++) {
        char rel[64], name[32], line[256];
        snprintf(rel, sizeof(rel), "%s/data/meta.properties", unit_name(SVC_KAFKA, k, name, sizeof(name)));
        int fd = nf_open(c->dir, rel, O_RDONLY, 0);
        FILE *f = fd >= 0 ? fdopen(fd, "r") : NULL;
        if (!f) {
            if (fd >= 0)
                close(fd);
            continue;
        }
        int found = 0;
        while (!found && fgets(line, sizeof(line), f)) {
            if (strncmp(line, "cluster.id=", 11) != 0)
                continue;
            line[strcspn(line, "\r\n")] = '\0';
            size_t len = strlen(line + 11);
            if (len == 0 || len >= size)
                continue;
            memcpy(out, line + 11, len + 1);
            found = 1;
        }
        fclose(f);
        if (found)
            return 0;
    }
    return -1;
}

/* Starts every Kafka node of the data dir that is not running: writes its
 * configuration, formats its storage once (the nodes of a cluster in
 * parallel, with one cluster id) and starts them all before any is waited
 * for, since a cluster's controllers need a majority to elect a leader. */
static int start_kafka(const struct svc_ctx *c)
{
    char cp[PATH_MAX + 16], java[PATH_MAX], id[64];
    int first, last, rc = 0;
    pid_t fmt[SVC_KAFKA_MAX_BROKERS + 1] = {0};
    int todo[SVC_KAFKA_MAX_BROKERS + 1] = {0};
    if (kafka_classpath(cp, sizeof(cp)) != 0)
        return -1;
    const char *jb = java_bin(java, sizeof(java));
    unit_range(c, SVC_KAFKA, &first, &last);
    int have_id = kafka_saved_cluster_id(c, id, sizeof(id)) == 0;

    for (int k = first; k <= last && rc == 0; k++) {
        char name[32], rel[64], props[PATH_MAX], meta[PATH_MAX], logp[64], l4jpath[PATH_MAX];
        char l4j[PATH_MAX + 32];
        pid_t pid = svc_running_pid(c, SVC_KAFKA, k);
        unit_name(SVC_KAFKA, k, name, sizeof(name));
        if (pid) {
            log_debug("%s already running (pid %d)", name, (int)pid);
            continue;
        }
        todo[k] = 1;
        snprintf(rel, sizeof(rel), "%s/data", name);
        if (svc_mkdir(c, rel, 0750) != 0 || write_kafka_conf(c, k) != 0) {
            rc = -1; /* still reap the formats already running */
            break;
        }
        snprintf(rel, sizeof(rel), "%s/data/meta.properties", name);
        path_join(meta, sizeof(meta), c->dir, rel);
        if (access(meta, F_OK) == 0)
            continue;
        /* Storage is formatted once; meta.properties marks a formatted dir. */
        if (!have_id) {
            kafka_cluster_id(id);
            have_id = 1;
        }
        log_info("formatting Kafka storage of %s (cluster id %s)", name, id);
        snprintf(rel, sizeof(rel), "%s/server.properties", name);
        path_join(props, sizeof(props), c->dir, rel);
        snprintf(rel, sizeof(rel), "%s/log4j2.properties", name);
        path_join(l4jpath, sizeof(l4jpath), c->dir, rel);
        snprintf(l4j, sizeof(l4j), "-Dlog4j2.configurationFile=%s", l4jpath);
        log_rel(SVC_KAFKA, k, logp, sizeof(logp));
        char *const argv[] = {(char *)jb, "-Xmx256m", l4j, "-cp", cp,    "kafka.tools.StorageTool",
                              "format",   "-t",       id,  "-c",  props, NULL};
        fmt[k] = spawn(c, argv, logp, c->dir);
        if (fmt[k] < 0)
            rc = -1;
    }
    for (int k = first; k <= last; k++) {
        int st = 0;
        if (fmt[k] <= 0)
            continue;
        if (proc_wait(fmt[k], &st) != 0) {
            log_error("formatting the Kafka storage of node %d: cannot wait for it: %s", k ? k : 1, strerror(errno));
            rc = -1;
            continue;
        }
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
            log_error("formatting the Kafka storage of node %d failed (exit %d)", k ? k : 1, proc_exit_code(st));
            rc = -1;
        }
    }
    if (rc != 0)
        return -1;

    for (int k = first; k <= last; k++) {
        char name[32], rel[64], props[PATH_MAX], logp[64], l4jpath[PATH_MAX], l4j[PATH_MAX + 32];
        if (!todo[k])
            continue;
        unit_name(SVC_KAFKA, k, name, sizeof(name));
        snprintf(rel, sizeof(rel), "%s/server.properties", name);
        path_join(props, sizeof(props), c->dir, rel);
        snprintf(rel, sizeof(rel), "%s/log4j2.properties", name);
        path_join(l4jpath, sizeof(l4jpath), c->dir, rel);
        snprintf(l4j, sizeof(l4j), "-Dlog4j2.configurationFile=%s", l4jpath);
        log_rel(SVC_KAFKA, k, logp, sizeof(logp));
        /* The single broker gets about 1 GB of heap: the whole system has to
         * fit beside it on 2 cores.  A cluster's three get half each. */
        const char *heap = c->kafka_nodes > 1 ? "512m" : "1g";
        char xms[16], xmx[16];
        snprintf(xms, sizeof(xms), "-Xms%s", heap);
        snprintf(xmx, sizeof(xmx), "-Xmx%s", heap);
        char *const argv[] = {(char *)jb,
                              xms,
                              xmx,
                              "-XX:+UseG1GC",
                              "-XX:MaxGCPauseMillis=20",
                              "-XX:+ExitOnOutOfMemoryError",
                              "-Djava.awt.headless=true",
                              l4j,
                              "-cp",
                              cp,
                              "kafka.Kafka",
                              props,
                              NULL};
        pid_t pid = spawn(c, argv, logp, c->dir);
        if (pid <= 0 || write_pid(c, SVC_KAFKA, k, pid) != 0)
            return -1;
    }
    return 0;
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

/* --- PostgreSQL roles and passwords -----------------------------------------
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
 * upgraded in place: see pg_upgrade_auth(). */

#define PG_PW_BYTES 20 /* 40 hex digits */

/* The password of `user` in the libpq password file D/rel, as this file
 * writes it (host:port:*:user:password, the password in hex).  Returns 0,
 * 1 when there is no file or no line for user, -1 when it cannot be read. */
static int pgpass_read(const struct svc_ctx *c, const char *rel, const char *user, char *pw, size_t size)
{
    int fd = nf_open(c->dir, rel, O_RDONLY, 0);
    if (fd < 0)
        return errno == ENOENT ? 1 : -1;
    FILE *f = fdopen(fd, "r");
    if (!f) {
        close(fd);
        return -1;
    }
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
    path_join(sock, sizeof(sock), c->dir, "postgres/run");
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
    path_join(from, sizeof(from), c->dir, tmp);
    path_join(to, sizeof(to), c->dir, rel);
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
    size_t got = 0;
    while (got < sizeof(raw)) {
        ssize_t k = getrandom(raw + got, sizeof(raw) - got, 0);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0) {
            log_error("getrandom: %s", strerror(errno));
            return -1;
        }
        got += (size_t)k;
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
static int pg_hba_trusts(const struct svc_ctx *c)
{
    int fd = nf_open(c->dir, "postgres/data/pg_hba.conf", O_RDONLY, 0);
    FILE *f = fd >= 0 ? fdopen(fd, "r") : NULL;
    if (!f) {
        if (fd >= 0)
            close(fd);
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
    path_join(sock, sizeof(sock), c->dir, "postgres/run");
    if (passfile_rel)
        path_join(passfile, sizeof(passfile), c->dir, passfile_rel);
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

static void pg_server_argv(const struct svc_ctx *c, const char *bindir, int tcp, char bin[PATH_MAX + 16],
                           char data[PATH_MAX], char port[16], char sockopt[PATH_MAX + 32], char *argv[16])
{
    char sock[PATH_MAX];
    snprintf(bin, PATH_MAX + 16, "%s/postgres", bindir);
    path_join(data, PATH_MAX, c->dir, "postgres/data");
    path_join(sock, sizeof(sock), c->dir, "postgres/run");
    snprintf(port, 16, "port=%d", c->ports.pg);
    snprintf(sockopt, PATH_MAX + 32, "unix_socket_directories=%s", sock);
    int a = 0;
    argv[a++] = bin;
    argv[a++] = "-D";
    argv[a++] = data;
    argv[a++] = "-c";
    argv[a++] = port;
    argv[a++] = "-c";
    argv[a++] = tcp ? "listen_addresses=127.0.0.1" : "listen_addresses=";
    argv[a++] = "-c";
    argv[a++] = sockopt;
    argv[a++] = "-c";
    argv[a++] = "shared_buffers=256MB";
    argv[a++] = "-c";
    argv[a++] = "max_connections=200";
    argv[a++] = "-c";
    argv[a++] = "logging_collector=off";
    argv[a] = NULL;
}

/* Upgrades a cluster made by an earlier services start (pg_hba "trust",
 * the bootstrap superuser named fleetsync) in place: the server runs on its
 * unix socket only (D/postgres/run, the service user's 0750 folder), the
 * superuser is renamed SVC_PG_ADMIN and gets admin_pw, pg_hba.conf asks
 * every connection for a password, and the server stops again.  The
 * bootstrap superuser keeps its attribute (PostgreSQL requires it) and can
 * only be renamed from another session, hence a passing superuser
 * "fleetsync_upgrade".  pg_provision() then makes the pipelines' role and
 * hands it the database.  Safe to repeat after an interruption. */
static int pg_upgrade_auth(const struct svc_ctx *c, const char *bindir, const char *admin_pw)
{
    char bin[PATH_MAX + 16], data[PATH_MAX], port[16], sockopt[PATH_MAX + 32], err[512], logp[64];
    char *argv[16];
    int rc = -1;
    log_info("upgrading PostgreSQL in %s/postgres to password logins (SCRAM-SHA-256); role %s becomes %s, "
             "a new role %s without superuser owns the database",
             c->dir, SVC_PG_ROLE, SVC_PG_ADMIN, SVC_PG_ROLE);
    pg_server_argv(c, bindir, 0, bin, data, port, sockopt, argv);
    log_rel(SVC_POSTGRES, 0, logp, sizeof(logp));
    pid_t pid = spawn(c, argv, logp, data);
    if (pid <= 0 || write_pid(c, SVC_POSTGRES, 0, pid) != 0)
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
        spawned[SVC_POSTGRES][0] = 0;
        nf_unlink(c->dir, "run/postgres.pid");
    }
    return rc;
}

/* The passwords of both roles: D/pgpass gets a new one when it has none
 * (pg_provision() sets it on the server); D/pgpass-admin only for a new or
 * upgraded cluster (need_admin), since nothing could set it otherwise.
 * Both files are (re)written for the current port. */
static int pg_passwords(const struct svc_ctx *c, int need_admin, char *admin_pw, size_t admin_size)
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

static int start_postgres(const struct svc_ctx *c)
{
    char bindir[PATH_MAX], bin[PATH_MAX + 16], data[PATH_MAX], ver[PATH_MAX], logp[64], port[16];
    char sockopt[PATH_MAX + 32], admin_pw[64], pwline[80];
    char *argv[16];
    int rc = -1;
    if (pg_bindir(bindir, sizeof(bindir)) != 0)
        return -1;
    if (svc_mkdir(c, "postgres", 0750) != 0 || svc_mkdir(c, "postgres/run", 0750) != 0)
        return -1;
    path_join(data, sizeof(data), c->dir, "postgres/data");
    path_join(ver, sizeof(ver), c->dir, "postgres/data/PG_VERSION");
    log_rel(SVC_POSTGRES, 0, logp, sizeof(logp));

    int fresh = access(ver, F_OK) != 0;
    int trusts = fresh ? 0 : pg_hba_trusts(c);
    if (trusts < 0 || pg_passwords(c, fresh || trusts, admin_pw, sizeof(admin_pw)) != 0)
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
        int st = run_sync(c, init, logp, c->dir, pwline);
        memset(pwline, 0, sizeof(pwline));
        if (st != 0) {
            log_error("initdb failed (exit %d)", st);
            goto out;
        }
    } else if (trusts && pg_upgrade_auth(c, bindir, admin_pw) != 0) {
        log_error("the upgrade of %s/postgres to password logins failed; the cluster is unchanged where it did not "
                  "get that far. See %s/%s",
                  c->dir, c->dir, logp);
        goto out;
    }
    pg_server_argv(c, bindir, 1, bin, data, port, sockopt, argv);
    pid_t pid = spawn(c, argv, logp, data);
    rc = pid > 0 ? write_pid(c, SVC_POSTGRES, 0, pid) : -1;
out:
    memset(admin_pw, 0, sizeof(admin_pw));
    return rc;
}

/* Logs in as SVC_PG_ADMIN and sets up SVC_PG_ROLE: no superuser or other
 * power, the password of D/pgpass, owner of the database fleetsync
 * (created once) and of every table, view and sequence in it (those of an
 * upgraded cluster belonged to the superuser).  Run by every start. */
static int pg_provision(const struct svc_ctx *c)
{
    char err[512], pw[64];
    PGconn *db = NULL;
    int rc = -1;
    if (pg_hba_trusts(c) > 0) {
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

/* --- context ---------------------------------------------------------- */

int svc_ports_from_config(const struct fs_config *cfg, struct svc_ports *out, char *err, size_t err_size)
{
    struct cfg_mqtt_url u;
    char host[256];
    if (cfg_parse_mqtt_url(cfg->mqtt, &u, err, err_size) != 0)
        return -1;
    out->mqtt = u.port;
    if (cfg_parse_host_port(cfg->brokers, host, sizeof(host), &out->kafka) != 0) {
        snprintf(err, err_size, "--brokers '%s' needs host:port", cfg->brokers);
        return -1;
    }
    out->controller = out->kafka + 1;
    char *perr = NULL, shown[CFG_MASKED_MAX];
    cfg_mask_secrets(cfg->pg, shown, sizeof(shown));
    PQconninfoOption *opts = PQconninfoParse(cfg->pg, &perr);
    if (!opts) {
        snprintf(err, err_size, "--pg '%s': %s", shown, perr ? perr : "cannot parse");
        PQfreemem(perr);
        return -1;
    }
    out->pg = 5432;
    for (PQconninfoOption *o = opts; o->keyword; o++)
        if (strcmp(o->keyword, "port") == 0 && o->val)
            out->pg = atoi(o->val);
    PQconninfoFree(opts);
    if (out->pg <= 0 || out->pg > 65535) {
        snprintf(err, err_size, "--pg '%s' has no valid port", shown);
        return -1;
    }
    return 0;
}

/* The broker count of the data dir: D/kafka-brokers when a cluster was
 * started there, else 1. */
static int kafka_nodes_saved(const char *dir)
{
    char path[PATH_MAX];
    int n = 1;
    path_join(path, sizeof(path), dir, "kafka-brokers");
    FILE *f = fopen(path, "r");
    if (f) {
        if (fscanf(f, "%d", &n) != 1 || n < 1 || n > SVC_KAFKA_MAX_BROKERS)
            n = 1;
        fclose(f);
    }
    return n;
}

/* Has Kafka node `node` of the data dir formatted storage? */
static int kafka_node_formatted(const struct svc_ctx *c, int node)
{
    char rel[64], name[32], path[PATH_MAX];
    snprintf(rel, sizeof(rel), "%s/data/meta.properties", unit_name(SVC_KAFKA, node, name, sizeof(name)));
    path_join(path, sizeof(path), c->dir, rel);
    return access(path, F_OK) == 0;
}

/* start --kafka-brokers N: 0 keeps what the data dir has.  A data dir
 * holds one Kafka, single or cluster: switching would leave the topics and
 * offsets of the other behind, so it is refused while that one's storage
 * exists.  The choice is remembered in D/kafka-brokers. */
static int kafka_nodes_choose(struct svc_ctx *c, int requested)
{
    if (!requested)
        return 0;
    int cluster_storage = 0;
    for (int k = 1; k <= SVC_KAFKA_MAX_BROKERS; k++)
        cluster_storage |= kafka_node_formatted(c, k);
    if (requested != c->kafka_nodes && (requested > 1 ? kafka_node_formatted(c, 0) : cluster_storage)) {
        log_error("%s already holds a %s Kafka; --kafka-brokers %d needs a new data dir (--data-dir), or "
                  "'fleetsync services stop' and remove %s/%s first (its topics and offsets go with it)",
                  c->dir, c->kafka_nodes > 1 ? "3-broker" : "single-broker", requested, c->dir,
                  c->kafka_nodes > 1 ? "kafka-*" : "kafka");
        return -1;
    }
    char path[PATH_MAX];
    path_join(path, sizeof(path), c->dir, "kafka-brokers");
    if (requested > 1) {
        FILE *f = fopen(path, "w");
        if (!f || fprintf(f, "%d\n", requested) < 0 || fclose(f) != 0) {
            log_error("cannot write %s: %s", path, strerror(errno));
            return -1;
        }
    } else if (unlink(path) != 0 && errno != ENOENT) {
        log_error("cannot remove %s: %s", path, strerror(errno));
        return -1;
    }
    c->kafka_nodes = requested;
    return 0;
}

static int ctx_init(struct svc_ctx *c, const struct fs_config *cfg, const struct svc_ports *ports, int create)
{
    memset(c, 0, sizeof(*c));
    if (create && (ensure_user(c) != 0 || place_default_data_dir(c, cfg->data_dir) != 0))
        return -1;
    if (create && mkdir_p(cfg->data_dir, 0755) != 0) {
        log_error("cannot create data dir %s: %s", cfg->data_dir, strerror(errno));
        return -1;
    }
    if (!realpath(cfg->data_dir, c->dir)) {
        if (create)
            log_error("data dir %s: %s", cfg->data_dir, strerror(errno));
        snprintf(c->dir, sizeof(c->dir), "%s", cfg->data_dir);
        if (create)
            return -1;
    }
    if (ports) {
        c->ports = *ports;
    } else {
        char err[256];
        if (svc_ports_from_config(cfg, &c->ports, err, sizeof(err)) != 0) {
            log_error("%s", err);
            return -1;
        }
        /* status and stop use the ports the stack was started with. */
        int fd = nf_open(c->dir, "run/ports", O_RDONLY, 0);
        FILE *f = fd >= 0 ? fdopen(fd, "r") : NULL;
        if (!f && fd >= 0)
            close(fd);
        if (f) {
            struct svc_ports p;
            if (fscanf(f, "mqtt=%d kafka=%d controller=%d pg=%d", &p.mqtt, &p.kafka, &p.controller, &p.pg) == 4)
                c->ports = p;
            fclose(f);
        }
        c->tls_port = mqa_tls_port(c->dir);
    }
    c->kafka_nodes = kafka_nodes_saved(c->dir);
    c->secure = ka_is_secure(c->dir);
    return ensure_user(c);
}

static int save_ports(const struct svc_ctx *c)
{
    char text[128];
    snprintf(text, sizeof(text), "mqtt=%d kafka=%d controller=%d pg=%d\n", c->ports.mqtt, c->ports.kafka,
             c->ports.controller, c->ports.pg);
    return nf_write(c->dir, "run/ports", text, strlen(text), 0644, (uid_t)-1, (gid_t)-1);
}

const char *svc_kafka_libs(char *buf, size_t size)
{
    const char *env = getenv("FLEETSYNC_KAFKA_LIBS");
    if (env && *env) {
        snprintf(buf, size, "%s", env);
        return buf;
    }
    /* Same rule as scripts/bootstrap: FLEETSYNC_CACHE, else a system-wide cache
     * for root (readable by the service user), else the user's cache. */
    const char *cache = getenv("FLEETSYNC_CACHE");
    const char *xdg = getenv("XDG_CACHE_HOME");
    const char *home = getenv("HOME");
    if (cache && *cache)
        snprintf(buf, size, "%s/kafka-%s/libs", cache, SVC_KAFKA_VERSION);
    else if (geteuid() == 0)
        snprintf(buf, size, "/var/cache/fleetsync/kafka-%s/libs", SVC_KAFKA_VERSION);
    else if (xdg && *xdg)
        snprintf(buf, size, "%s/fleetsync/kafka-%s/libs", xdg, SVC_KAFKA_VERSION);
    else
        snprintf(buf, size, "%s/.cache/fleetsync/kafka-%s/libs", home ? home : ".", SVC_KAFKA_VERSION);
    /* A normal user on a machine where root has bootstrapped uses root's
     * system-wide cache rather than downloading the jars again. */
    if (geteuid() != 0 && !(cache && *cache)) {
        char probe[PATH_MAX + 64], sys[256];
        snprintf(probe, sizeof(probe), "%s/kafka_2.13-%s.jar", buf, SVC_KAFKA_VERSION);
        snprintf(sys, sizeof(sys), "/var/cache/fleetsync/kafka-%s/libs", SVC_KAFKA_VERSION);
        if (access(probe, R_OK) != 0 && access(sys, R_OK | X_OK) == 0)
            snprintf(buf, size, "%s", sys);
    }
    return buf;
}

/* --- start / stop / status -------------------------------------------- */

/* start --secure on a data dir that is not secure yet: makes the secret
 * (D/kafka-auth/) the brokers' passwords derive from.  A running broker
 * would keep its open listeners until restarted, so that is refused. */
static int kafka_secure_choose(struct svc_ctx *c, int requested)
{
    char err[512];
    if (!requested || c->secure)
        return 0;
    int first, last;
    unit_range(c, SVC_KAFKA, &first, &last);
    for (int k = first; k <= last; k++) {
        if (svc_running_pid(c, SVC_KAFKA, k)) {
            log_error("Kafka of %s is running without authentication; 'fleetsync services stop' first, then "
                      "'fleetsync services start --secure'",
                      c->dir);
            return -1;
        }
    }
    if (ka_secret_ensure(c->dir, err, sizeof(err)) != 0) {
        log_error("%s", err);
        return -1;
    }
    log_info("Kafka of %s is secure from now on: SASL/%s for every client, ACLs per FleetSync principal "
             "(credentials in %s/kafka-auth/)",
             c->dir, KA_MECHANISM, c->dir);
    c->secure = 1;
    return 0;
}

/* Creates the ACLs of core/kafkaauth.h for cfg's topic prefix (creating an
 * ACL that exists already is no error).  Returns 0, or -1 + err. */
static int kafka_acls_ensure(rd_kafka_t *rk, const struct fs_config *cfg, int timeout_ms, char *err, size_t err_size)
{
    rd_kafka_AclBinding_t *acl[64];
    int n = ka_acl_bindings(cfg, acl, (int)(sizeof(acl) / sizeof(acl[0])), err, err_size);
    if (n < 0)
        return -1;
    int rc = -1;
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_AdminOptions_t *o = rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_CREATEACLS);
    rd_kafka_AdminOptions_set_request_timeout(o, timeout_ms, NULL, 0);
    rd_kafka_CreateAcls(rk, acl, (size_t)n, o, q);
    rd_kafka_event_t *ev = rd_kafka_queue_poll(q, timeout_ms + 2000);
    if (!ev) {
        snprintf(err, err_size, "Kafka did not answer the creation of its ACLs within %d ms", timeout_ms);
    } else if (rd_kafka_event_error(ev)) {
        snprintf(err, err_size, "cannot create the Kafka ACLs: %s", rd_kafka_event_error_string(ev));
    } else {
        size_t cnt = 0;
        const rd_kafka_acl_result_t **r = rd_kafka_CreateAcls_result_acls(rd_kafka_event_CreateAcls_result(ev), &cnt);
        rc = 0;
        for (size_t i = 0; i < cnt && rc == 0; i++) {
            const rd_kafka_error_t *e = rd_kafka_acl_result_error(r[i]);
            if (e) {
                snprintf(err, err_size, "cannot create Kafka ACL %zu of %d: %s", i + 1, n, rd_kafka_error_string(e));
                rc = -1;
            }
        }
    }
    if (ev)
        rd_kafka_event_destroy(ev);
    rd_kafka_AdminOptions_destroy(o);
    rd_kafka_queue_destroy(q);
    for (int i = 0; i < n; i++)
        rd_kafka_AclBinding_destroy(acl[i]);
    return rc;
}

/* Waits until unit (id, node) answers; fails early when it exits. */
static int wait_unit_healthy(const struct svc_ctx *c, enum svc_id id, int node, long long deadline)
{
    char name[32];
    unit_name(id, node, name, sizeof(name));
    while (fs_mono_ms() < deadline) {
        int gone;
        pid_t sp = spawned[id][node];
        if (sp) {
            int r = proc_reap(sp, NULL);
            gone = r == 1 || (r < 0 && errno == ECHILD);
        } else {
            gone = !svc_running_pid(c, id, node);
        }
        if (gone) {
            log_error("%s exited during start", name);
            return -1;
        }
        int left = (int)(deadline - fs_mono_ms());
        left = left < 100 ? 100 : left;
        int ok = id == SVC_MOSQUITTO ? mqtt_healthy(c, left < 2000 ? left : 2000)
                 : id == SVC_KAFKA   ? kafka_healthy(c, node, left < 3000 ? left : 3000)
                                     : pg_healthy(c);
        if (ok == 0)
            return 0;
        usleep(200 * 1000);
    }
    log_error("%s did not answer in time (--timeout)", name);
    return -1;
}

/* Waits up to timeout_s until every unit of the service answers (and a
 * Kafka cluster lists all its brokers).  On failure *failed_node names the
 * unit whose log tells why. */
static int wait_healthy(const struct svc_ctx *c, enum svc_id id, int timeout_s, int *failed_node)
{
    long long deadline = fs_mono_ms() + (long long)timeout_s * 1000;
    int first, last;
    unit_range(c, id, &first, &last);
    for (int k = first; k <= last; k++) {
        if (wait_unit_healthy(c, id, k, deadline) != 0) {
            *failed_node = k;
            return -1;
        }
    }
    if (id == SVC_KAFKA && c->kafka_nodes > 1) {
        long long left = deadline - fs_mono_ms();
        if (kafka_cluster_ready(c, left > 1000 ? (int)left : 1000) != 0) {
            *failed_node = first;
            return -1;
        }
    }
    return 0;
}

/* Reaps the services this process started that have exited (only ours:
 * "up" has children of its own). */
static void reap_children(void)
{
    for (int i = 0; i < SVC_COUNT; i++)
        for (int k = 0; k <= SVC_KAFKA_MAX_BROKERS; k++)
            if (spawned[i][k] && proc_reap(spawned[i][k], NULL) == 1)
                spawned[i][k] = 0;
}

int svc_start(const struct fs_config *cfg, const struct svc_options *opt)
{
    struct svc_ctx c;
    long long t0 = fs_mono_ms();
    int failed = -1, failed_node = 0;
    char err[512];

    if (opt->kafka_brokers != 0 && opt->kafka_brokers != 1 && opt->kafka_brokers != SVC_KAFKA_MAX_BROKERS) {
        log_error("%d Kafka brokers: only 1 or %d are supported", opt->kafka_brokers, SVC_KAFKA_MAX_BROKERS);
        return 1;
    }
    if (ctx_init(&c, cfg, &opt->ports, 1) != 0 || check_reachable(&c) != 0)
        return 1;
    c.tls_port = opt->tls_port;
    if (kafka_nodes_choose(&c, opt->kafka_brokers) != 0 || kafka_secure_choose(&c, opt->secure) != 0)
        return 1;
    if (svc_mkdir(&c, "run", 0755) != 0 || svc_mkdir(&c, "log", 0755) != 0)
        return 1;

    /* Units running per service; a service counts as running when all are. */
    int running[SVC_COUNT] = {0}, units[SVC_COUNT], any = 0;
    pid_t first_pid[SVC_COUNT] = {0};
    for (int i = 0; i < SVC_COUNT; i++) {
        int first, last;
        unit_range(&c, (enum svc_id)i, &first, &last);
        units[i] = last - first + 1;
        for (int k = first; k <= last; k++) {
            pid_t pid = svc_running_pid(&c, (enum svc_id)i, k);
            if (pid && !first_pid[i])
                first_pid[i] = pid;
            running[i] += pid != 0;
        }
        any |= running[i];
    }
    /* Ports recorded by a running stack win: a second start must not write
     * ports the running services do not listen on. */
    if (!any && save_ports(&c) != 0) {
        log_error("cannot write %s/run/ports: %s", c.dir, strerror(errno));
        return 1;
    }

    static int (*const starters[SVC_COUNT])(const struct svc_ctx *) = {start_mosquitto, start_kafka, start_postgres};
    for (int i = 0; i < SVC_COUNT; i++) {
        if (running[i] == units[i]) {
            if (!opt->quiet && units[i] > 1)
                log_info("%s already running (%d brokers)", svc_names[i], units[i]);
            else if (!opt->quiet)
                log_info("%s already running (pid %d)", svc_names[i], (int)first_pid[i]);
            if (i == SVC_MOSQUITTO && opt->tls_port && mqa_tls_port(c.dir) != opt->tls_port)
                log_warn("mosquitto is running without a TLS listener on port %d; 'fleetsync services stop' "
                         "first to start it with --tls",
                         opt->tls_port);
            continue;
        }
        if (running[i] && !opt->quiet)
            log_info("%s: %d of %d brokers running; starting the others", svc_names[i], running[i], units[i]);
        if (starters[i](&c) != 0) {
            int first, last;
            unit_range(&c, (enum svc_id)i, &first, &last);
            failed = i;
            failed_node = first;
            goto fail;
        }
    }
    for (int i = 0; i < SVC_COUNT; i++) {
        if (wait_healthy(&c, (enum svc_id)i, opt->timeout_s, &failed_node) != 0) {
            failed = i;
            goto fail;
        }
        reap_children();
    }
    if (pg_provision(&c) != 0) {
        failed = SVC_POSTGRES;
        failed_node = 0;
        goto fail;
    }

    /* On a cluster every topic has 3 replicas and min.insync.replicas 2. */
    rd_kafka_t *rk = kafka_admin_handle(&c, -1, err, sizeof(err));
    if (!rk || topics_ensure(rk, cfg, c.kafka_nodes, opt->partitions, 30000, err, sizeof(err)) != 0 ||
        (c.secure && kafka_acls_ensure(rk, cfg, 30000, err, sizeof(err)) != 0)) {
        log_error("%s", err);
        if (rk)
            rd_kafka_destroy(rk);
        int last;
        failed = SVC_KAFKA;
        unit_range(&c, SVC_KAFKA, &failed_node, &last);
        goto fail;
    }
    rd_kafka_destroy(rk);

    char kb[256];
    kafka_bootstrap(&c, kb, sizeof(kb));
    if (!opt->quiet)
        log_info("services up in %.1f s: MQTT 127.0.0.1:%d, Kafka %s%s%s, PostgreSQL 127.0.0.1:%d; "
                 "data and logs in %s",
                 (double)(fs_mono_ms() - t0) / 1000.0, c.ports.mqtt, kb,
                 c.kafka_nodes > 1 ? " (3 brokers: replication factor 3, min.insync.replicas 2)" : "",
                 c.secure ? " (SASL/" KA_MECHANISM " and ACLs)" : "", c.ports.pg, c.dir);
    if (!opt->quiet && c.tls_port && mqa_tls_port(c.dir) == c.tls_port)
        log_info("MQTT over TLS: mqtts://127.0.0.1:%d (clients trust %s/tls/ca.crt)", c.tls_port, c.dir);
    return 0;

fail:
    reap_children();
    if (failed >= 0)
        print_log_tail(&c, (enum svc_id)failed, failed_node, 25);
    log_error("start failed; the services that did start are still running ('fleetsync services stop' stops them)");
    return 1;
}

int svc_mqtt_reload(const struct fs_config *cfg)
{
    struct svc_ctx c;
    if (ctx_init(&c, cfg, NULL, 0) != 0)
        return -1;
    pid_t pid = svc_running_pid(&c, SVC_MOSQUITTO, 0);
    if (!pid)
        return 1;
    if (write_mosquitto_conf(&c) != 0)
        return -1;
    char mark[PATH_MAX];
    path_join(mark, sizeof(mark), c.dir, "run/mqtt-auth");
    if (mqtt_has_credentials(&c) && access(mark, F_OK) != 0) {
        /* Started without credentials: client id = account needs a start.
         * Persistent sessions are saved on SIGTERM and read back. */
        log_info("restarting mosquitto (pid %d) so that each client id is its account", (int)pid);
        kill(pid, SIGTERM);
        for (int t = 0; t < 300 && kill(pid, 0) == 0; t++)
            usleep(100 * 1000);
        if (kill(pid, 0) == 0) {
            log_error("mosquitto (pid %d) did not stop within 30 s", (int)pid);
            return -1;
        }
        if (start_mosquitto(&c) != 0 || wait_unit_healthy(&c, SVC_MOSQUITTO, 0, fs_mono_ms() + 30000) != 0)
            return -1;
        return 2;
    }
    /* SIGHUP: Mosquitto reads its configuration, password and ACL files
     * again; connected clients stay connected. */
    if (kill(pid, SIGHUP) != 0) {
        log_error("cannot signal mosquitto (pid %d): %s", (int)pid, strerror(errno));
        return -1;
    }
    return 0;
}

int svc_stop(const struct fs_config *cfg, int timeout_s)
{
    struct svc_ctx c;
    if (ctx_init(&c, cfg, NULL, 0) != 0)
        return 1;
    /* PostgreSQL: SIGINT is its "fast" shutdown (roll back, checkpoint, exit);
     * Kafka and Mosquitto shut down cleanly on SIGTERM.  A cluster's brokers
     * are signalled together: each hands its leaderships over while the
     * controller quorum still has its majority. */
    static const int stop_signal[SVC_COUNT] = {SIGTERM, SIGTERM, SIGINT};
    struct {
        enum svc_id id;
        int node;
        pid_t pid;
    } u[SVC_COUNT + SVC_KAFKA_MAX_BROKERS];
    int nu = 0;
    for (int i = SVC_COUNT - 1; i >= 0; i--) {
        int first, last;
        unit_range(&c, (enum svc_id)i, &first, &last);
        for (int k = first; k <= last; k++) {
            pid_t pid = svc_running_pid(&c, (enum svc_id)i, k);
            char name[32];
            if (!pid)
                continue;
            log_info("stopping %s (pid %d)", unit_name((enum svc_id)i, k, name, sizeof(name)), (int)pid);
            kill(pid, stop_signal[i]);
            u[nu].id = (enum svc_id)i;
            u[nu].node = k;
            u[nu].pid = pid;
            nu++;
        }
    }
    if (!nu) {
        log_info("no service of %s is running", c.dir);
        return 0;
    }
    long long deadline = fs_mono_ms() + (long long)timeout_s * 1000;
    int rc = 0;
    for (int j = 0; j < nu; j++) {
        pid_t pid = u[j].pid;
        char name[32];
        unit_name(u[j].id, u[j].node, name, sizeof(name));
        while (kill(pid, 0) == 0 && fs_mono_ms() < deadline) {
            reap_children();
            usleep(100 * 1000);
        }
        if (kill(pid, 0) == 0) {
            log_warn("%s (pid %d) did not stop within %d s; killing it", name, (int)pid, timeout_s);
            kill(-pid, SIGKILL);
            kill(pid, SIGKILL);
            for (int k = 0; k < 50 && kill(pid, 0) == 0; k++) {
                reap_children();
                usleep(100 * 1000);
            }
            if (kill(pid, 0) == 0) {
                log_error("%s (pid %d) is still there", name, (int)pid);
                rc = 1;
                continue;
            }
        }
        /* PostgreSQL's backends and Kafka's forks share the session: make sure
         * none outlives its leader. */
        kill(-pid, SIGKILL);
        char path[64];
        pid_rel(u[j].id, u[j].node, path, sizeof(path));
        nf_unlink(c.dir, path);
    }
    if (rc == 0)
        log_info("all services of %s stopped", c.dir);
    return rc;
}

static long long dir_bytes_total;
static int dir_bytes_cb(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)path;
    (void)flag;
    (void)ftw;
    dir_bytes_total += (long long)st->st_blocks * 512;
    return 0;
}

static long long dir_bytes(const char *path)
{
    dir_bytes_total = 0;
    nftw(path, dir_bytes_cb, 16, FTW_PHYS);
    return dir_bytes_total;
}

/* One Kafka node, as services status shows it. */
struct knode_state {
    int node;
    int pid;
    int port;
    int controller;
    int healthy;
    long long data_bytes;
};

/* always != 0 probes a service without a pid file too: an endpoint this
 * data dir did not start, where the shared options point.  kn gets each
 * Kafka node (*nkn of them). */
static int probe_all(const struct fs_config *cfg, struct svc_state out[SVC_COUNT],
                     struct knode_state kn[SVC_KAFKA_MAX_BROKERS + 1], int *nkn, int always)
{
    struct svc_ctx c;
    if (ctx_init(&c, cfg, NULL, 0) != 0)
        return -1;
    static const char *const data_rel[SVC_COUNT] = {"mosquitto", "kafka", "postgres"};
    const int ports[SVC_COUNT] = {c.ports.mqtt, c.ports.kafka, c.ports.pg};
    *nkn = 0;
    for (int i = 0; i < SVC_COUNT; i++) {
        char path[PATH_MAX];
        memset(&out[i], 0, sizeof(out[i]));
        out[i].name = svc_names[i];
        out[i].port = ports[i];
        if (i == SVC_KAFKA) {
            /* healthy = every broker answers; pid = the first running one. */
            int first, last, all = 1;
            unit_range(&c, SVC_KAFKA, &first, &last);
            for (int k = first; k <= last; k++) {
                struct knode_state *n = &kn[(*nkn)++];
                char name[32];
                n->node = k ? k : 1;
                n->pid = (int)svc_running_pid(&c, SVC_KAFKA, k);
                n->port = kafka_port(&c, k);
                n->controller = kafka_controller_port(&c, k);
                n->healthy = n->pid && kafka_healthy(&c, k, 3000) == 0;
                path_join(path, sizeof(path), c.dir, unit_name(SVC_KAFKA, k, name, sizeof(name)));
                n->data_bytes = dir_bytes(path);
                if (n->pid && !out[i].pid)
                    out[i].pid = n->pid;
                out[i].brokers_running += n->pid != 0;
                out[i].data_bytes += n->data_bytes;
                all &= n->healthy;
            }
            out[i].brokers = last - first + 1;
            out[i].healthy = all;
            if (!out[i].pid && always)
                out[i].healthy = external_healthy(cfg, SVC_KAFKA) == 0;
            continue;
        }
        out[i].pid = (int)svc_running_pid(&c, (enum svc_id)i, 0);
        if (out[i].pid) {
            int ok = i == SVC_MOSQUITTO ? mqtt_healthy(&c, 2000) : pg_healthy(&c);
            out[i].healthy = ok == 0;
        } else if (always) {
            out[i].healthy = external_healthy(cfg, (enum svc_id)i) == 0;
        }
        path_join(path, sizeof(path), c.dir, data_rel[i]);
        out[i].data_bytes = dir_bytes(path);
    }
    return 0;
}

int svc_kafka_bootstrap(const struct fs_config *cfg, char *buf, size_t size)
{
    struct svc_ctx c;
    if (ctx_init(&c, cfg, NULL, 0) != 0)
        return -1;
    kafka_bootstrap(&c, buf, size);
    return c.kafka_nodes;
}

int svc_probe(const struct fs_config *cfg, struct svc_state out[SVC_COUNT])
{
    struct knode_state kn[SVC_KAFKA_MAX_BROKERS + 1];
    int nkn;
    return probe_all(cfg, out, kn, &nkn, 0);
}

int svc_probe_endpoints(const struct fs_config *cfg, struct svc_state out[SVC_COUNT])
{
    struct knode_state kn[SVC_KAFKA_MAX_BROKERS + 1];
    int nkn;
    return probe_all(cfg, out, kn, &nkn, 1);
}

int svc_status(const struct fs_config *cfg, int json)
{
    struct svc_state st[SVC_COUNT];
    struct knode_state kn[SVC_KAFKA_MAX_BROKERS + 1];
    int nkn = 0;
    if (probe_all(cfg, st, kn, &nkn, 0) != 0)
        return 1;
    int all = 1;
    if (json)
        printf("[");
    else
        printf("%-10s %8s %6s  %-9s %10s\n", "SERVICE", "PID", "PORT", "HEALTH", "DATA");
    for (int i = 0; i < SVC_COUNT; i++) {
        char size[32];
        units_format_bytes((uint64_t)st[i].data_bytes, size, sizeof(size));
        /* A cluster with some brokers down still serves: "degraded". */
        const char *health = st[i].healthy                    ? "healthy"
                             : st[i].brokers > 1 && st[i].pid ? "degraded"
                             : st[i].pid                      ? "unhealthy"
                                                              : "down";
        if (json) {
            printf("%s{\"name\":\"%s\",\"pid\":%d,\"port\":%d,\"healthy\":%s,\"data_bytes\":%lld", i ? "," : "",
                   st[i].name, st[i].pid, st[i].port, st[i].healthy ? "true" : "false", st[i].data_bytes);
            if (i == SVC_KAFKA) {
                printf(",\"brokers\":[");
                for (int k = 0; k < nkn; k++)
                    printf("%s{\"node\":%d,\"pid\":%d,\"port\":%d,\"controller_port\":%d,\"healthy\":%s,"
                           "\"data_bytes\":%lld}",
                           k ? "," : "", kn[k].node, kn[k].pid, kn[k].port, kn[k].controller,
                           kn[k].healthy ? "true" : "false", kn[k].data_bytes);
                printf("]");
            }
            printf("}");
        } else if (st[i].pid) {
            printf("%-10s %8d %6d  %-9s %10s\n", st[i].name, st[i].pid, st[i].port, health, size);
        } else {
            printf("%-10s %8s %6d  %-9s %10s\n", st[i].name, "-", st[i].port, health, size);
        }
        /* A cluster's brokers, each on its own line under "kafka". */
        for (int k = 0; !json && i == SVC_KAFKA && nkn > 1 && k < nkn; k++) {
            char name[32], pid[16];
            units_format_bytes((uint64_t)kn[k].data_bytes, size, sizeof(size));
            snprintf(name, sizeof(name), "  kafka-%d", kn[k].node);
            snprintf(pid, sizeof(pid), "%d", kn[k].pid);
            printf("%-10s %8s %6d  %-9s %10s  controller %d\n", name, kn[k].pid ? pid : "-", kn[k].port,
                   kn[k].healthy ? "healthy"
                   : kn[k].pid   ? "unhealthy"
                                 : "down",
                   size, kn[k].controller);
        }
        all &= st[i].healthy;
    }
    if (json)
        printf("]\n");
    return all ? 0 : 1;
}

/* --- the command ------------------------------------------------------- */

#define STR_(x) #x
#define STR(x) STR_(x)

static const char services_about[] =
    "Runs the embedded stack: Mosquitto (MQTT), Kafka " SVC_KAFKA_VERSION " in KRaft mode, PostgreSQL.\n"
    "Ports come from the shared endpoints below (the Kafka controller listens on the\n"
    "Kafka port + 1). Data and logs live in the data dir: DIR/log/<service>.log.\n"
    "Started as root, the services run as the system user '" SVC_USER "'.\n"
    "Once 'fleetsync trucks add' has made MQTT credentials in DIR/mqtt/, Mosquitto\n"
    "refuses anonymous clients and enforces the ACLs (docs/security.md).\n"
    "PostgreSQL asks every connection for a password: role fleetsync (no superuser,\n"
    "owner of the database fleetsync) has it in DIR/pgpass, which every FleetSync\n"
    "command reads (psql: PGPASSFILE=DIR/pgpass); the superuser fleetsync_admin,\n"
    "which only start uses, in DIR/pgpass-admin.  Both are made on the first start.\n\n"
    "Actions:\n"
    "  start               start what is not running, wait until each answers,\n"
    "                      create the topics (idempotent)\n"
    "  stop                stop all services of the data dir\n"
    "  status              pid, port, health and data size of each; exit 1 if any is down";

static int opt_kafka_brokers(void *value, const char *arg, char *err, size_t err_size)
{
    long v;
    if (cfg_parse_long(arg, 1, SVC_KAFKA_MAX_BROKERS, &v) != 0 || (v != 1 && v != SVC_KAFKA_MAX_BROKERS)) {
        snprintf(err, err_size, "is 1 or %d (a %d-broker KRaft cluster); other sizes are not supported",
                 SVC_KAFKA_MAX_BROKERS, SVC_KAFKA_MAX_BROKERS);
        return -1;
    }
    *(int *)value = (int)v;
    return 0;
}

int cmd_services(int argc, char **argv)
{
    struct fs_config cfg;
    struct svc_options opt = {.timeout_s = 120};
    int json = 0, rest, rc = 2, tls = 0, tls_port = 0;
    char err[512];
    const struct opt opts[] = {
        OPT_INTEGER("partitions", "N", &opt.partitions, 1, 1000,
                    "partitions of truck-telemetry on creation (default 6)"),
        OPT_CB("kafka-brokers", "N", &opt.kafka_brokers, opt_kafka_brokers,
               "1 (default) or " STR(SVC_KAFKA_MAX_BROKERS) ": a " STR(
                   SVC_KAFKA_MAX_BROKERS) "-broker KRaft cluster on this machine,\n"
                                          "broker k on the Kafka port + 2(k-1), its controller one above\n"
                                          "(19092/19093, 19094/19095, 19096/19097), data in DIR/kafka-<k>;\n"
                                          "topics get 3 replicas and min.insync.replicas=2, so one broker\n"
                                          "may be down.  Remembered in the data dir: later start, stop and\n"
                                          "status need no flag, and start brings back a missing broker.\n"
                                          "Clients list the brokers: --brokers 127.0.0.1:19092,127.0.0.1:19094,\n"
                                          "127.0.0.1:19096 (docs/cluster.md)"),
        OPT_BOOLEAN("tls", &tls,
                    "also serve MQTT over TLS: a local CA and a server certificate\n"
                    "for 127.0.0.1/localhost are made once in DIR/tls/ (openssl);\n"
                    "clients use mqtts://127.0.0.1:PORT and trust DIR/tls/ca.crt"),
        OPT_INTEGER("tls-port", "N", &tls_port, 1, 65535, "the TLS listener's port (default: MQTT port + 53, 18883)"),
        OPT_BOOLEAN("secure", &opt.secure,
                    "Kafka wants SASL (PLAIN, on 127.0.0.1) from every client and\n"
                    "enforces ACLs: one principal per FleetSync process kind, only\n"
                    "the bridge (and sim --kafka) write truck-telemetry, only detect\n"
                    "writes truck-alerts.  Passwords derive from DIR/kafka-auth/secret\n"
                    "(0600); every fleetsync command finds its own there.  Remembered\n"
                    "in the data dir (docs/security.md)"),
        OPT_INTEGER("timeout", "S", &opt.timeout_s, 1, 86400, "seconds to wait for each service (default 120)"),
        OPT_BOOLEAN("json", &json, "status as JSON"),
        OPT_END_MARK,
    };
    const struct opt_command cmd = {
        .name = "services",
        .usage = "fleetsync services start|stop|status [options]",
        .about = services_about,
        .opts = opts,
        .shared = 1,
    };

    cfg_init(&cfg);
    cfg.kafka_user = KA_USER_ADMIN;
    switch (opt_parse(&cmd, &cfg, argc, argv, &rest)) {
    case OPT_HELP:
        rc = 0;
        goto out;
    case OPT_USAGE_ERROR:
        goto out;
    }
    if (rest == argc) {
        opt_error(&cmd, "give an action: start, stop or status");
        goto out;
    }
    if (rest + 1 != argc) {
        opt_error(&cmd, "unexpected argument '%s'", argv[rest + 1]);
        goto out;
    }
    const char *action = argv[rest];
    if (strcmp(action, "start") == 0) {
        if (svc_ports_from_config(&cfg, &opt.ports, err, sizeof(err)) != 0) {
            fprintf(stderr, "fleetsync services: %s\n", err);
        } else if (tls && opt.ports.mqtt + 53 > 65535 && !tls_port) {
            fprintf(stderr, "fleetsync services: MQTT port %d + 53 is no port; give --tls-port\n", opt.ports.mqtt);
        } else {
            opt.tls_port = tls ? (tls_port ? tls_port : opt.ports.mqtt + 53) : 0;
            rc = svc_start(&cfg, &opt);
        }
    } else if (strcmp(action, "stop") == 0) {
        rc = svc_stop(&cfg, 60);
    } else if (strcmp(action, "status") == 0) {
        rc = svc_status(&cfg, json);
    } else {
        opt_error(&cmd, "unknown action '%s'", action);
    }
out:
    cfg_release(&cfg);
    return rc;
}
