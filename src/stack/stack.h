/*
 * stack.h - what the files of src/stack share; private to the component
 * (other components use services.h).
 *
 *   services.c    the command, start / stop / status, probes for others
 *   datadir.c     struct svc_ctx: the data dir, its ports, the service user,
 *                 folders and files written into it
 *   supervisor.c  processes: spawned as the service user, pid files, logs,
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
#include <stdio.h>
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
    int edge_ingest; /* fleetsync ingest is the MQTT edge: no Mosquitto (D/mqtt-edge) */
};

/* datadir.c */
void svc_path_join(char *buf, size_t size, const char *dir, const char *rel);
int svc_mkdir_p(const char *path, mode_t mode);
int svc_mkdir(const struct svc_ctx *c, const char *rel, mode_t mode);
int svc_write_file_mode(const struct svc_ctx *c, const char *rel, const char *text, mode_t mode);
int svc_write_file(const struct svc_ctx *c, const char *rel, const char *text);
FILE *svc_fopen_read(const struct svc_ctx *c, const char *rel);
int svc_check_reachable(const struct svc_ctx *c);
int svc_give_to_service(const struct svc_ctx *c, const char *rel);
void __attribute__((format(printf, 4, 5))) svc_conf_add(char *buf, size_t size, size_t *n, const char *fmt, ...);
int svc_ctx_init(struct svc_ctx *c, const struct fs_config *cfg, const struct svc_ports *ports, int create);
int svc_save_ports(const struct svc_ctx *c);

/* supervisor.c; svc_names[id] is also the service's folder in the data dir */
extern const char *const svc_names[SVC_COUNT];
void svc_unit_range(const struct svc_ctx *c, enum svc_id id, int *first, int *last);
const char *svc_unit_name(enum svc_id id, int node, char *buf, size_t size);
pid_t svc_spawn(const struct svc_ctx *c, char *const argv[], const char *log_rel, const char *cwd);
int svc_run_sync(const struct svc_ctx *c, char *const argv[], const char *log_rel, const char *cwd, const char *input);
void svc_log_rel(enum svc_id id, int node, char *buf, size_t size);
pid_t svc_running_pid(const struct svc_ctx *c, enum svc_id id, int node);
int svc_write_pid(const struct svc_ctx *c, enum svc_id id, int node, pid_t pid);
void svc_pid_forget(const struct svc_ctx *c, enum svc_id id, int node);
void svc_print_log_tail(const struct svc_ctx *c, enum svc_id id, int node, int lines);
int svc_wait_unit_healthy(const struct svc_ctx *c, enum svc_id id, int node, long long deadline);
int svc_wait_healthy(const struct svc_ctx *c, enum svc_id id, int timeout_s, int *failed_node);
void svc_reap_children(void);

/* mosquitto.c */
int svc_mqtt_healthy_at(const struct cfg_mqtt_url *url, int port, int refused_ok, int timeout_ms);
int svc_mqtt_healthy(const struct svc_ctx *c, int timeout_ms);
int svc_start_mosquitto(const struct svc_ctx *c);
int svc_edge_choose(struct svc_ctx *c, enum svc_edge requested);
int svc_edge_ingest_prepare(const struct svc_ctx *c);

/* certs.c */
int svc_tls_ensure(const struct svc_ctx *c);

/* kafka.c */
int svc_kafka_port(const struct svc_ctx *c, int node);
int svc_kafka_controller_port(const struct svc_ctx *c, int node);
void svc_kafka_quiet_log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf);
void svc_kafka_bootstrap_list(const struct svc_ctx *c, char *buf, size_t size);
rd_kafka_t *svc_kafka_admin(const struct svc_ctx *c, int node, char *err, size_t err_size);
int svc_kafka_healthy(const struct svc_ctx *c, int node, int timeout_ms);
int svc_kafka_cluster_ready(const struct svc_ctx *c, int timeout_ms);
int svc_start_kafka(const struct svc_ctx *c);
int svc_kafka_nodes_saved(const char *dir);
int svc_kafka_nodes_choose(struct svc_ctx *c, int requested);
int svc_kafka_secure_choose(struct svc_ctx *c, int requested);
int svc_kafka_acls_ensure(rd_kafka_t *rk, const struct fs_config *cfg, int timeout_ms, char *err, size_t err_size);

/* postgres.c */
#define SVC_PG_ARGV_MAX 24 /* the server's command line, NULL included */
/* The server's command line (argv) and the strings it points into. */
struct svc_pg_cmd {
    char bin[PATH_MAX + 16], data[PATH_MAX], port[16], sockopt[PATH_MAX + 32], buffers[48];
    char *argv[SVC_PG_ARGV_MAX];
};
int svc_pg_healthy(const struct svc_ctx *c);
void svc_pg_server_argv(const struct svc_ctx *c, const char *bindir, int tcp, struct svc_pg_cmd *cmd);
int svc_start_postgres(const struct svc_ctx *c);

/* pgroles.c */
int svc_pg_hba_trusts(const struct svc_ctx *c);
int svc_pg_upgrade_auth(const struct svc_ctx *c, const char *bindir, const char *admin_pw);
int svc_pg_passwords(const struct svc_ctx *c, int need_admin, char *admin_pw, size_t admin_size);
int svc_pg_provision(const struct svc_ctx *c);

#endif
