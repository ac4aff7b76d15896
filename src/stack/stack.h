/*
 * stack.h - what the files of src/stack share; private to the component
 * (other components use services.h).
 *
 *   services.c    the command, start / stop / status, probes for others
 *   datadir.c     struct svc_ctx: the data dir, its ports, the service user,
 *                 folders and files written into it
 *   supervisor.c  processes: spawn as the service user, pid files, logs,
 *                 waiting until a unit answers
 *   mosquitto.c   mosquitto.conf, start, probe, reload
 *   certs.c       the local CA and certificates of D/tls/
 *   kafka.c       KRaft configuration, jars, start, probes, --secure ACLs
 *   postgres.c    binaries, initdb, the server's command line, start, probe
 *   pgroles.c     roles, passwords, pgpass files, upgrade of trust clusters
 *
 * Every function takes the struct svc_ctx of the data dir it works on; the
 * comment at each definition says what it does and returns.
 */
#ifndef FS_STACK_H
#define FS_STACK_H

#include "stack/services.h"

#include <librdkafka/rdkafka.h>
#include <limits.h>
#include <stddef.h>
#include <sys/types.h>

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

/* datadir.c */
void path_join(char *buf, size_t size, const char *dir, const char *rel);
int mkdir_p(const char *path, mode_t mode);
int svc_mkdir(const struct svc_ctx *c, const char *rel, mode_t mode);
int write_file_mode(const struct svc_ctx *c, const char *rel, const char *text, mode_t mode);
int write_file(const struct svc_ctx *c, const char *rel, const char *text);
int check_reachable(const struct svc_ctx *c);
int give_to_service(const struct svc_ctx *c, const char *rel);
void __attribute__((format(printf, 4, 5))) conf_add(char *buf, size_t size, size_t *n, const char *fmt, ...);
int ctx_init(struct svc_ctx *c, const struct fs_config *cfg, const struct svc_ports *ports, int create);
int save_ports(const struct svc_ctx *c);

/* supervisor.c */
void unit_range(const struct svc_ctx *c, enum svc_id id, int *first, int *last);
const char *unit_name(enum svc_id id, int node, char *buf, size_t size);
pid_t spawn(const struct svc_ctx *c, char *const argv[], const char *log_rel, const char *cwd);
int run_sync(const struct svc_ctx *c, char *const argv[], const char *log_rel, const char *cwd, const char *input);
void pid_rel(enum svc_id id, int node, char *buf, size_t size);
void log_rel(enum svc_id id, int node, char *buf, size_t size);
pid_t svc_running_pid(const struct svc_ctx *c, enum svc_id id, int node);
extern pid_t spawned[SVC_COUNT][SVC_KAFKA_MAX_BROKERS + 1];
int write_pid(const struct svc_ctx *c, enum svc_id id, int node, pid_t pid);
void print_log_tail(const struct svc_ctx *c, enum svc_id id, int node, int lines);
int wait_unit_healthy(const struct svc_ctx *c, enum svc_id id, int node, long long deadline);
int wait_healthy(const struct svc_ctx *c, enum svc_id id, int timeout_s, int *failed_node);
void reap_children(void);

/* mosquitto.c */
int mqtt_healthy_at(const struct cfg_mqtt_url *url, int port, int refused_ok, int timeout_ms);
int mqtt_healthy(const struct svc_ctx *c, int timeout_ms);
int start_mosquitto(const struct svc_ctx *c);

/* certs.c */
int tls_ensure(const struct svc_ctx *c);

/* kafka.c */
int kafka_port(const struct svc_ctx *c, int node);
int kafka_controller_port(const struct svc_ctx *c, int node);
void quiet_log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf);
void kafka_bootstrap(const struct svc_ctx *c, char *buf, size_t size);
rd_kafka_t *kafka_admin_handle(const struct svc_ctx *c, int node, char *err, size_t err_size);
int kafka_healthy(const struct svc_ctx *c, int node, int timeout_ms);
int kafka_cluster_ready(const struct svc_ctx *c, int timeout_ms);
int start_kafka(const struct svc_ctx *c);
int kafka_nodes_saved(const char *dir);
int kafka_nodes_choose(struct svc_ctx *c, int requested);
int kafka_secure_choose(struct svc_ctx *c, int requested);
int kafka_acls_ensure(rd_kafka_t *rk, const struct fs_config *cfg, int timeout_ms, char *err, size_t err_size);

/* postgres.c */
int pg_healthy(const struct svc_ctx *c);
void pg_server_argv(const struct svc_ctx *c, const char *bindir, int tcp, char bin[PATH_MAX + 16], char data[PATH_MAX],
                    char port[16], char sockopt[PATH_MAX + 32], char *argv[16]);
int start_postgres(const struct svc_ctx *c);

/* pgroles.c */
int pg_hba_trusts(const struct svc_ctx *c);
int pg_upgrade_auth(const struct svc_ctx *c, const char *bindir, const char *admin_pw);
int pg_passwords(const struct svc_ctx *c, int need_admin, char *admin_pw, size_t admin_size);
int pg_provision(const struct svc_ctx *c);

#endif
