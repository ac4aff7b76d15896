/*
 * datadir.c - the data dir a start, stop or status works on (struct
 * svc_ctx): its absolute path and ports, the user the services run as
 * (created when missing; it must be able to reach the data dir), and the
 * folders and files written into it.  Root opens nothing there by a path
 * that could follow a link the service user planted, and gives files away
 * only with fchown() on a descriptor (core/nofollow.h).
 */
#include "stack/stack.h"

#include "core/kafkaauth.h"
#include "core/log.h"
#include "core/mqttauth.h"
#include "core/nofollow.h"

#include <errno.h>
#include <fcntl.h>
#include <libpq-fe.h>
#include <limits.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

void svc_path_join(char *buf, size_t size, const char *dir, const char *rel)
{
    int n = snprintf(buf, size, "%s/%s", dir, rel);
    if (n < 0 || (size_t)n >= size)
        buf[0] = '\0';
}

int svc_mkdir_p(const char *path, mode_t mode)
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
int svc_mkdir(const struct svc_ctx *c, const char *rel, mode_t mode)
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
int svc_write_file_mode(const struct svc_ctx *c, const char *rel, const char *text, mode_t mode)
{
    if (nf_write(c->dir, rel, text, strlen(text), mode, c->as_root ? c->uid : (uid_t)-1, c->gid) != 0) {
        log_error("cannot write %s/%s: %s", c->dir, rel, strerror(errno));
        return -1;
    }
    return 0;
}

int svc_write_file(const struct svc_ctx *c, const char *rel, const char *text)
{
    return svc_write_file_mode(c, rel, text, 0644);
}

/* D/rel opened for reading without following a symbolic link (the folders
 * are the service user's, core/nofollow.h).  NULL with errno set when it
 * cannot be opened; the caller fcloses the FILE. */
FILE *svc_fopen_read(const struct svc_ctx *c, const char *rel)
{
    int fd = nf_open(c->dir, rel, O_RDONLY, 0);
    FILE *f = fd >= 0 ? fdopen(fd, "r") : NULL;
    if (!f && fd >= 0) {
        int e = errno;
        close(fd);
        errno = e;
    }
    return f;
}

/* Hands a file of the credentials store or of D/tls/ to the service user
 * (Mosquitto reads it after dropping to that user); as a normal user the
 * files are already the services'. */
int svc_give_to_service(const struct svc_ctx *c, const char *rel)
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
void __attribute__((format(printf, 4, 5))) svc_conf_add(char *buf, size_t size, size_t *n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(buf + (*n < size ? *n : size - 1), *n < size ? size - *n : 1, fmt, ap);
    va_end(ap);
    *n += k > 0 ? (size_t)k : 0;
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
int svc_check_reachable(const struct svc_ctx *c)
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
            return 0; /* a link, or data: svc_check_reachable says what to do */
    }
    /* FNV-1a of the checkout's path: two checkouts of one name stay apart. */
    uint32_t h = 2166136261u;
    for (const char *p = cwd; *p; p++)
        h = (h ^ (unsigned char)*p) * 16777619u;
    const char *base = strrchr(cwd, '/');
    base = base && base[1] ? base + 1 : "root";
    snprintf(target, sizeof(target), "/var/lib/fleetsync/%.64s-%08x", base, (unsigned)h);
    if (svc_mkdir_p(target, 0755) != 0) {
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

/* --- the context ------------------------------------------------------ */

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

int svc_ctx_init(struct svc_ctx *c, const struct fs_config *cfg, const struct svc_ports *ports, int create)
{
    memset(c, 0, sizeof(*c));
    if (create && (ensure_user(c) != 0 || place_default_data_dir(c, cfg->data_dir) != 0))
        return -1;
    if (create && svc_mkdir_p(cfg->data_dir, 0755) != 0) {
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
        FILE *f = svc_fopen_read(c, "run/ports");
        if (f) {
            struct svc_ports p;
            if (fscanf(f, "mqtt=%d kafka=%d controller=%d pg=%d", &p.mqtt, &p.kafka, &p.controller, &p.pg) == 4)
                c->ports = p;
            fclose(f);
        }
        c->tls_port = mqa_tls_port(c->dir);
    }
    c->kafka_nodes = svc_kafka_nodes_saved(c->dir);
    c->secure = ka_is_secure(c->dir);
    c->edge_ingest = svc_edge_saved(c->dir) == SVC_EDGE_INGEST;
    return ensure_user(c);
}

int svc_save_ports(const struct svc_ctx *c)
{
    char text[128];
    snprintf(text, sizeof(text), "mqtt=%d kafka=%d controller=%d pg=%d\n", c->ports.mqtt, c->ports.kafka,
             c->ports.controller, c->ports.pg);
    return nf_write(c->dir, "run/ports", text, strlen(text), 0644, (uid_t)-1, (gid_t)-1);
}
