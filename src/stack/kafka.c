/*
 * kafka.c - Kafka in KRaft mode: a single broker (D/kafka) or a cluster of
 * three combined broker + controller nodes (D/kafka-<k>, start
 * --kafka-brokers 3).  Its server.properties and log4j2.properties, the
 * jars and the JVM, storage formatted once with one cluster id, the start,
 * the health probes (a metadata response; a cluster lists all its brokers)
 * and, with start --secure, SASL listeners and the ACLs of core/kafkaauth.h.
 */
#include "stack/services.h"
#include "stack/stack.h"

#include "core/clock.h"
#include "core/kafka.h"
#include "core/kafkaauth.h"
#include "core/log.h"
#include "core/nofollow.h"
#include "core/proc.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* Broker k of N listens on kafka + 2(k-1), its controller one above. */
int svc_kafka_port(const struct svc_ctx *c, int node)
{
    return c->ports.kafka + 2 * (node > 0 ? node - 1 : 0);
}

int svc_kafka_controller_port(const struct svc_ctx *c, int node)
{
    return c->ports.controller + 2 * (node > 0 ? node - 1 : 0);
}

/* While a broker starts, "brokers are down" is expected: probe quietly. */
void svc_kafka_quiet_log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    (void)rk;
    (void)level;
    log_debug("librdkafka %s: %s", fac, buf);
}

/* "127.0.0.1:P1,127.0.0.1:P2,..." for every broker of the data dir. */
void svc_kafka_bootstrap_list(const struct svc_ctx *c, char *buf, size_t size)
{
    int first, last;
    size_t n = 0;
    svc_unit_range(c, SVC_KAFKA, &first, &last);
    buf[0] = '\0';
    for (int k = first; k <= last && n < size; k++)
        n += (size_t)snprintf(buf + n, size - n, "%s127.0.0.1:%d", k > first ? "," : "", svc_kafka_port(c, k));
}

/* A client of the data dir's Kafka: of one broker (node, bootstrapped to it
 * alone), or of all of them (node -1). */
rd_kafka_t *svc_kafka_admin(const struct svc_ctx *c, int node, char *err, size_t err_size)
{
    struct fs_config kc;
    char brokers[256];
    cfg_init(&kc);
    kc.data_dir = c->dir;
    kc.kafka_user = KA_USER_ADMIN;
    if (node >= 0)
        snprintf(brokers, sizeof(brokers), "127.0.0.1:%d", svc_kafka_port(c, node));
    else
        svc_kafka_bootstrap_list(c, brokers, sizeof(brokers));
    kc.brokers = brokers;
    static const char *const defaults[] = {"socket.connection.setup.timeout.ms", "2000", "reconnect.backoff.max.ms",
                                           "500", NULL};
    rd_kafka_conf_t *conf = kafka_conf_new(&kc, defaults, err, err_size);
    cfg_release(&kc);
    if (!conf)
        return NULL;
    rd_kafka_conf_set_log_cb(conf, svc_kafka_quiet_log_cb);
    return kafka_new(RD_KAFKA_PRODUCER, conf, err, err_size);
}

/* One broker answers a metadata request (the client knows no other). */
int svc_kafka_healthy(const struct svc_ctx *c, int node, int timeout_ms)
{
    char err[256];
    rd_kafka_t *rk = svc_kafka_admin(c, node, err, sizeof(err));
    if (!rk)
        return -1;
    int rc = kafka_wait_ready(rk, timeout_ms, err, sizeof(err));
    rd_kafka_destroy(rk);
    return rc;
}

/* A cluster is ready for topics with replication factor N once the
 * metadata lists all N brokers (a broker is listed once the controller has
 * unfenced it).  Waits up to timeout_ms; returns 0 or -1. */
int svc_kafka_cluster_ready(const struct svc_ctx *c, int timeout_ms)
{
    char err[256];
    rd_kafka_t *rk = svc_kafka_admin(c, -1, err, sizeof(err));
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
        svc_conf_add(buf, size, &n,
                     "listeners=PLAINTEXT://127.0.0.1:%d,CONTROLLER://127.0.0.1:%d\n"
                     "advertised.listeners=PLAINTEXT://127.0.0.1:%d\n"
                     "controller.listener.names=CONTROLLER\n"
                     "inter.broker.listener.name=PLAINTEXT\n"
                     "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT\n",
                     svc_kafka_port(c, node), svc_kafka_controller_port(c, node), svc_kafka_port(c, node));
        goto out;
    }
    if (ka_password(c->dir, KA_USER_ADMIN, admin, sizeof(admin), err, sizeof(err)) != 0) {
        log_error("Kafka credentials: %s", err);
        return -1;
    }
    svc_conf_add(buf, size, &n,
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
                 svc_kafka_port(c, node), svc_kafka_controller_port(c, node), svc_kafka_port(c, node), admin, admin,
                 admin);
    for (const char *const *u = ka_users; *u; u++) {
        if (ka_password(c->dir, *u, pass, sizeof(pass), err, sizeof(err)) != 0) {
            log_error("Kafka credentials: %s", err);
            goto wipe;
        }
        svc_conf_add(buf, size, &n, " user_%s=\"%s\"", *u, pass);
    }
    svc_conf_add(buf, size, &n, ";\n");
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
        snprintf(voters, sizeof(voters), "1@127.0.0.1:%d", svc_kafka_controller_port(c, 0));
    for (int k = 1; node > 0 && k <= n && v < sizeof(voters); k++)
        v += (size_t)snprintf(voters + v, sizeof(voters) - v, "%s%d@127.0.0.1:%d", k > 1 ? "," : "", k,
                              svc_kafka_controller_port(c, k));
    svc_unit_name(SVC_KAFKA, node, name, sizeof(name));
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
    int rc = svc_write_file_mode(c, rel, text, c->secure ? 0600 : 0644);
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
    return svc_write_file(c, rel, log4j);
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
    svc_unit_range(c, SVC_KAFKA, &first, &last);
    for (int k = first; k <= last; k++) {
        char rel[64], name[32], line[256];
        snprintf(rel, sizeof(rel), "%s/data/meta.properties", svc_unit_name(SVC_KAFKA, k, name, sizeof(name)));
        FILE *f = svc_fopen_read(c, rel);
        if (!f)
            continue;
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

/* The files a JVM of Kafka node `node` is started with: its
 * server.properties (props, PATH_MAX), the option naming its
 * log4j2.properties (l4j, PATH_MAX + 32) and its log relative to the data
 * dir (logp, 64). */
static void kafka_node_files(const struct svc_ctx *c, int node, char *props, char *l4j, char *logp)
{
    char name[32], rel[64], l4jpath[PATH_MAX];
    svc_unit_name(SVC_KAFKA, node, name, sizeof(name));
    snprintf(rel, sizeof(rel), "%s/server.properties", name);
    svc_path_join(props, PATH_MAX, c->dir, rel);
    snprintf(rel, sizeof(rel), "%s/log4j2.properties", name);
    svc_path_join(l4jpath, sizeof(l4jpath), c->dir, rel);
    snprintf(l4j, PATH_MAX + 32, "-Dlog4j2.configurationFile=%s", l4jpath);
    svc_log_rel(SVC_KAFKA, node, logp, 64);
}

/* Starts every Kafka node of the data dir that is not running: writes its
 * configuration, formats its storage once (the nodes of a cluster in
 * parallel, with one cluster id) and starts them all before any is waited
 * for, since a cluster's controllers need a majority to elect a leader. */
int svc_start_kafka(const struct svc_ctx *c)
{
    char cp[PATH_MAX + 16], java[PATH_MAX], id[64];
    int first, last, rc = 0;
    pid_t fmt[SVC_KAFKA_MAX_BROKERS + 1] = {0};
    int todo[SVC_KAFKA_MAX_BROKERS + 1] = {0};
    if (kafka_classpath(cp, sizeof(cp)) != 0)
        return -1;
    const char *jb = java_bin(java, sizeof(java));
    svc_unit_range(c, SVC_KAFKA, &first, &last);
    int have_id = kafka_saved_cluster_id(c, id, sizeof(id)) == 0;

    for (int k = first; k <= last && rc == 0; k++) {
        char name[32], rel[64], props[PATH_MAX], meta[PATH_MAX], logp[64], l4j[PATH_MAX + 32];
        pid_t pid = svc_running_pid(c, SVC_KAFKA, k);
        svc_unit_name(SVC_KAFKA, k, name, sizeof(name));
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
        svc_path_join(meta, sizeof(meta), c->dir, rel);
        if (access(meta, F_OK) == 0)
            continue;
        /* Storage is formatted once; meta.properties marks a formatted dir. */
        if (!have_id) {
            kafka_cluster_id(id);
            have_id = 1;
        }
        log_info("formatting Kafka storage of %s (cluster id %s)", name, id);
        kafka_node_files(c, k, props, l4j, logp);
        char *const argv[] = {(char *)jb, "-Xmx256m", l4j, "-cp", cp,    "kafka.tools.StorageTool",
                              "format",   "-t",       id,  "-c",  props, NULL};
        fmt[k] = svc_spawn(c, argv, logp, c->dir);
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
        char props[PATH_MAX], logp[64], l4j[PATH_MAX + 32];
        if (!todo[k])
            continue;
        kafka_node_files(c, k, props, l4j, logp);
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
        pid_t pid = svc_spawn(c, argv, logp, c->dir);
        if (pid <= 0 || svc_write_pid(c, SVC_KAFKA, k, pid) != 0)
            return -1;
    }
    return 0;
}

/* The broker count of the data dir: D/kafka-brokers when a cluster was
 * started there, else 1. */
int svc_kafka_nodes_saved(const char *dir)
{
    char path[PATH_MAX];
    int n = 1;
    svc_path_join(path, sizeof(path), dir, "kafka-brokers");
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
    snprintf(rel, sizeof(rel), "%s/data/meta.properties", svc_unit_name(SVC_KAFKA, node, name, sizeof(name)));
    svc_path_join(path, sizeof(path), c->dir, rel);
    return access(path, F_OK) == 0;
}

/* start --kafka-brokers N: 0 keeps what the data dir has.  A data dir
 * holds one Kafka, single or cluster: switching would leave the topics and
 * offsets of the other behind, so it is refused while that one's storage
 * exists.  The choice is remembered in D/kafka-brokers. */
int svc_kafka_nodes_choose(struct svc_ctx *c, int requested)
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
    svc_path_join(path, sizeof(path), c->dir, "kafka-brokers");
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

/* start --secure on a data dir that is not secure yet: makes the secret
 * (D/kafka-auth/) the brokers' passwords derive from.  A running broker
 * would keep its open listeners until restarted, so that is refused. */
int svc_kafka_secure_choose(struct svc_ctx *c, int requested)
{
    char err[512];
    if (!requested || c->secure)
        return 0;
    int first, last;
    svc_unit_range(c, SVC_KAFKA, &first, &last);
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
int svc_kafka_acls_ensure(rd_kafka_t *rk, const struct fs_config *cfg, int timeout_ms, char *err, size_t err_size)
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

int svc_kafka_bootstrap(const struct fs_config *cfg, char *buf, size_t size)
{
    struct svc_ctx c;
    if (svc_ctx_init(&c, cfg, NULL, 0) != 0)
        return -1;
    svc_kafka_bootstrap_list(&c, buf, size);
    return c.kafka_nodes;
}
