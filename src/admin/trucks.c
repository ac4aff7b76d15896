/*
 * trucks.c - `fleetsync trucks add|list|remove`: MQTT identities of the
 * embedded broker (see trucks.h, core/mqttauth.h, docs/security.md).
 *
 * The password file is rewritten by streaming: the old file is copied into
 * a temporary one (keeping only the account names in memory, to skip ids
 * that already have an account), new lines are appended, and the new file
 * replaces the old with rename().  Hashing is PBKDF2-HMAC-SHA512 with
 * libcrypto, as mosquitto_passwd does, without one process per truck.
 */
#include "admin/trucks.h"

#include "core/config.h"
#include "core/log.h"
#include "core/mqttauth.h"
#include "core/telemetry.h"
#include "core/opts.h"
#include "stack/services.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MAX_GATEWAYS 100000
#define MAX_BRIDGE_OPTS 64
#define ERR_MAX (2 * PATH_MAX + 256)

int trucks_line_user(const char *line, char *buf, size_t size)
{
    const char *colon = strchr(line, ':');
    if (!colon || colon == line || (size_t)(colon - line) >= size)
        return -1;
    size_t n = (size_t)(colon - line);
    memcpy(buf, line, n);
    buf[n] = '\0';
    return mqa_valid_id(buf) ? (int)n : -1;
}

/* --- a set of account names (open addressing) -------------------------- */

struct nameset {
    char **slot;
    size_t cap, len;
};

static uint64_t name_hash(const char *s)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

static int set_grow(struct nameset *s)
{
    size_t cap = s->cap ? s->cap * 2 : 1024;
    char **slot = calloc(cap, sizeof(*slot));
    if (!slot)
        return -1;
    for (size_t i = 0; i < s->cap; i++) {
        if (!s->slot[i])
            continue;
        size_t k = name_hash(s->slot[i]) & (cap - 1);
        while (slot[k])
            k = (k + 1) & (cap - 1);
        slot[k] = s->slot[i];
    }
    free(s->slot);
    s->slot = slot;
    s->cap = cap;
    return 0;
}

static int set_has(const struct nameset *s, const char *name)
{
    if (!s->cap)
        return 0;
    for (size_t k = name_hash(name) & (s->cap - 1); s->slot[k]; k = (k + 1) & (s->cap - 1))
        if (strcmp(s->slot[k], name) == 0)
            return 1;
    return 0;
}

/* Returns 1 if added, 0 if it was there, -1 out of memory. */
static int set_add(struct nameset *s, const char *name)
{
    if (set_has(s, name))
        return 0;
    if ((s->len + 1) * 2 > s->cap && set_grow(s) != 0)
        return -1;
    char *copy = strdup(name);
    if (!copy)
        return -1;
    size_t k = name_hash(name) & (s->cap - 1);
    while (s->slot[k])
        k = (k + 1) & (s->cap - 1);
    s->slot[k] = copy;
    s->len++;
    return 1;
}

static void set_free(struct nameset *s)
{
    for (size_t i = 0; i < s->cap; i++)
        free(s->slot[i]);
    free(s->slot);
    memset(s, 0, sizeof(*s));
}

/* --- the store ---------------------------------------------------------- */

struct store {
    const char *data_dir;
    char passwd[PATH_MAX], acl[PATH_MAX], tmp[PATH_MAX + 8];
    struct mqa_secret secret;
    FILE *out;            /* the new password file, while writing */
    struct nameset names; /* accounts in the new file */
    char **gateways;      /* gateway accounts, in order */
    size_t n_gateways;
    char **bridges; /* bridge accounts besides MQA_BRIDGE_USER, in order */
    size_t n_bridges;
    size_t added, kept, removed;
};

/* Appends a copy of name to the list *v of *n names.  Returns 0 or -1. */
static int list_add(char ***v, size_t *n, const char *name, char *err, size_t err_size)
{
    if (*n >= MAX_GATEWAYS) {
        snprintf(err, err_size, "more than %d gateway or bridge accounts", MAX_GATEWAYS);
        return -1;
    }
    char **g = realloc(*v, (*n + 1) * sizeof(*g));
    if (g)
        *v = g;
    if (!g || !(g[*n] = strdup(name))) {
        snprintf(err, err_size, "out of memory");
        return -1;
    }
    (*n)++;
    return 0;
}

static int in_list(char *const *v, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(v[i], name) == 0)
            return 1;
    return 0;
}

struct acl_read {
    struct store *st;
    char *err;
    size_t err_size;
};

static int acl_add(void *ctx, int is_bridge, const char *name)
{
    struct acl_read *r = ctx;
    return is_bridge ? list_add(&r->st->bridges, &r->st->n_bridges, name, r->err, r->err_size)
                     : list_add(&r->st->gateways, &r->st->n_gateways, name, r->err, r->err_size);
}

/* Reads the gateway and bridge-instance accounts back from the ACL. */
static int read_acl(struct store *st, char *err, size_t err_size)
{
    struct acl_read r = {st, err, err_size};
    return mqa_acl_read(st->acl, acl_add, &r, err, err_size);
}

static int is_gateway(const struct store *st, const char *name)
{
    return in_list(st->gateways, st->n_gateways, name);
}

static int is_bridge(const struct store *st, const char *name)
{
    return strcmp(name, MQA_BRIDGE_USER) == 0 || in_list(st->bridges, st->n_bridges, name);
}

/* Opens the new password file and copies the old one into it, leaving out
 * the accounts in drop (may be NULL). */
static int store_begin(struct store *st, const struct nameset *drop, char *err, size_t err_size)
{
    snprintf(st->tmp, sizeof(st->tmp), "%s.tmp", st->passwd);
    int fd = open(st->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0 || !(st->out = fdopen(fd, "w"))) {
        snprintf(err, err_size, "cannot create %s: %s", st->tmp, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    FILE *in = fopen(st->passwd, "r");
    if (!in)
        return errno == ENOENT ? 0 : (snprintf(err, err_size, "cannot read %s: %s", st->passwd, strerror(errno)), -1);
    char line[MQA_HASH_LINE_MAX + 64], name[MQA_ID_MAX + 1];
    int rc = 0;
    while (fgets(line, sizeof(line), in)) {
        if (trucks_line_user(line, name, sizeof(name)) < 0 || strchr(line, '\n') == NULL)
            continue; /* not an account line of ours (or cut): dropped */
        if (drop && set_has(drop, name)) {
            st->removed++;
            continue;
        }
        int k = set_add(&st->names, name);
        if (k < 0) {
            snprintf(err, err_size, "out of memory");
            rc = -1;
            break;
        }
        if (k == 0)
            continue; /* a duplicate line: Mosquitto would use the first */
        fputs(line, st->out);
        st->kept++;
    }
    fclose(in);
    return rc;
}

/* Adds an account unless it exists.  Returns 0 or -1. */
static int store_add(struct store *st, const char *name, char *err, size_t err_size)
{
    if (set_has(&st->names, name))
        return 0;
    char pass[MQA_PASS_CHARS + 1], line[MQA_HASH_LINE_MAX];
    unsigned char salt[MQA_SALT_BYTES];
    if (getrandom(salt, sizeof(salt), 0) != (ssize_t)sizeof(salt) ||
        mqa_derive(&st->secret, name, pass, sizeof(pass)) ||
        mqa_hash_line(name, pass, salt, MQA_ITERATIONS, line, sizeof(line)) < 0) {
        snprintf(err, err_size, "cannot hash the password of %s", name);
        return -1;
    }
    if (set_add(&st->names, name) < 0) {
        snprintf(err, err_size, "out of memory");
        return -1;
    }
    fputs(line, st->out);
    st->added++;
    return 0;
}

/* As root, Mosquitto reads the files as the service user. */
static void give_to_service(const char *path)
{
    if (geteuid() != 0)
        return;
    struct passwd *pw = getpwnam(SVC_USER);
    if (pw && chown(path, pw->pw_uid, pw->pw_gid) != 0)
        log_warn("cannot hand %s to user %s: %s", path, SVC_USER, strerror(errno));
}

static int write_acl(struct store *st, char *err, size_t err_size)
{
    size_t need = mqa_acl_text(NULL, 0, (const char *const *)st->gateways, st->n_gateways,
                               (const char *const *)st->bridges, st->n_bridges);
    char *text = malloc(need + 1), tmp[PATH_MAX + 8];
    if (!text) {
        snprintf(err, err_size, "out of memory");
        return -1;
    }
    mqa_acl_text(text, need + 1, (const char *const *)st->gateways, st->n_gateways, (const char *const *)st->bridges,
                 st->n_bridges);
    snprintf(tmp, sizeof(tmp), "%s.tmp", st->acl);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    int ok = fd >= 0 && write(fd, text, need) == (ssize_t)need && fsync(fd) == 0;
    if (fd >= 0)
        close(fd);
    free(text);
    if (!ok) {
        snprintf(err, err_size, "cannot write %s: %s", tmp, strerror(errno));
        unlink(tmp);
        return -1;
    }
    give_to_service(tmp);
    if (rename(tmp, st->acl) != 0) {
        snprintf(err, err_size, "cannot replace %s: %s", st->acl, strerror(errno));
        unlink(tmp);
        return -1;
    }
    return 0;
}

/* Installs the new password file, then the ACL (the order keeps every
 * account of the ACL in the password file). */
static int store_commit(struct store *st, char *err, size_t err_size)
{
    FILE *out = st->out;
    st->out = NULL;
    int ok = fflush(out) == 0 && fsync(fileno(out)) == 0;
    ok &= fclose(out) == 0;
    if (!ok) {
        snprintf(err, err_size, "cannot write %s: %s", st->tmp, strerror(errno));
        unlink(st->tmp);
        return -1;
    }
    give_to_service(st->tmp);
    if (rename(st->tmp, st->passwd) != 0) {
        snprintf(err, err_size, "cannot replace %s: %s", st->passwd, strerror(errno));
        unlink(st->tmp);
        return -1;
    }
    return write_acl(st, err, err_size);
}

static void store_release(struct store *st)
{
    if (st->out) {
        fclose(st->out);
        unlink(st->tmp);
    }
    set_free(&st->names);
    for (size_t i = 0; i < st->n_gateways; i++)
        free(st->gateways[i]);
    free(st->gateways);
    for (size_t i = 0; i < st->n_bridges; i++)
        free(st->bridges[i]);
    free(st->bridges);
    memset(&st->secret, 0, sizeof(st->secret));
}

/* One writer at a time: two `trucks add` would both write passwd.tmp.
 * Returns the lock's descriptor (closing it unlocks), or -1. */
static int store_lock(const char *data_dir)
{
    char path[PATH_MAX];
    mqa_path(data_dir, "mqtt/.lock", path, sizeof(path));
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
        log_error("cannot open %s: %s", path, strerror(errno));
        return -1;
    }
    while (flock(fd, LOCK_EX) != 0) {
        if (errno != EINTR) {
            log_error("cannot lock %s: %s", path, strerror(errno));
            close(fd);
            return -1;
        }
    }
    return fd;
}

/* Tells the running broker; prints what happened. */
static int reload(const struct fs_config *cfg)
{
    int rc = svc_mqtt_reload(cfg);
    if (rc == 0)
        log_info("the running Mosquitto of %s reloads its credentials (SIGHUP)", cfg->data_dir);
    else if (rc == 2)
        log_info("the running Mosquitto of %s was restarted with its first credentials "
                 "(clients reconnect; persistent sessions are kept)",
                 cfg->data_dir);
    else if (rc == 1 && svc_edge_saved(cfg->data_dir) == SVC_EDGE_INGEST)
        log_info("fleetsync ingest, the MQTT edge of %s, reads the credentials at the next login", cfg->data_dir);
    else if (rc == 1)
        log_info("Mosquitto of %s is not running; 'fleetsync services start' uses the credentials", cfg->data_dir);
    else
        log_error("could not make Mosquitto reload; 'fleetsync services stop' and 'start' apply the credentials");
    return rc < 0 ? 1 : 0;
}

/* --- the command ------------------------------------------------------- */

#define STR_(x) #x
#define STR(x) STR_(x)

static const char trucks_about[] =
    "MQTT identities of the embedded broker (docs/security.md). 'add' creates an\n"
    "account per truck (username = truck id) in DIR/mqtt/passwd, hashed as Mosquitto 2\n"
    "expects (PBKDF2-SHA512), and the ACL DIR/mqtt/acl: a truck may write only\n"
    "fleet/trucks/{its id}/# and read nothing; a gateway may write fleet/trucks/+/#\n"
    "and fleet/gateways/{its id}/#; the bridge's account (" MQA_BRIDGE_USER ") reads fleet/#.\n"
    "Passwords are derived from a secret made once in DIR/mqtt/secret (0600), so the\n"
    "simulator and the bridge of the same data dir log in by themselves. From the first\n"
    "'add' on, Mosquitto refuses anonymous clients; a running one reloads (SIGHUP).\n\n"
    "Actions:\n"
    "  add ID...           accounts for these truck ids ([A-Za-z0-9._-], at most " STR(
        MQA_ID_MAX) " chars)\n"
                    "  list                print every account with its kind\n"
                    "  password ID...      print 'ID PASSWORD' of accounts (also " MQA_BRIDGE_USER ")\n"
                    "  remove ID...        delete accounts (trucks, gateways or bridge instances)";

static int valid_prefix(const char *p)
{
    return strlen(p) <= 40 && (!*p || mqa_valid_id(p));
}

static int do_add(const struct fs_config *cfg, char **ids, int n_ids, long count, const char *prefix, long gateways,
                  const char *const *bridges, int n_bridges, int print)
{
    struct store st = {.data_dir = cfg->data_dir};
    char err[ERR_MAX], name[MQA_ID_MAX + 1], pass[MQA_PASS_CHARS + 1];
    int rc = 1;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int lock = -1;
    mqa_path(cfg->data_dir, "mqtt/passwd", st.passwd, sizeof(st.passwd));
    mqa_path(cfg->data_dir, "mqtt/acl", st.acl, sizeof(st.acl));
    if (mqa_secret_ensure(cfg->data_dir, &st.secret, err, sizeof(err)) != 0) {
        log_error("%s", err);
        return 1;
    }
    if ((lock = store_lock(cfg->data_dir)) < 0) {
        store_release(&st);
        return 1;
    }
    if (read_acl(&st, err, sizeof(err)) || store_begin(&st, NULL, err, sizeof(err)) != 0 ||
        store_add(&st, MQA_BRIDGE_USER, err, sizeof(err)) != 0)
        goto fail;
    for (int i = 0; i < n_ids; i++)
        if (store_add(&st, ids[i], err, sizeof(err)) != 0)
            goto fail;
    for (long i = 0; i < count; i++) {
        if (tm_format_truck_id(name, sizeof(name), prefix, strlen(prefix), (uint32_t)i) == 0 ||
            store_add(&st, name, err, sizeof(err)) != 0)
            goto fail;
    }
    for (long i = 0; i < gateways; i++) {
        if (tm_format_gateway_id(name, sizeof(name), prefix, strlen(prefix), (uint32_t)i) == 0 ||
            store_add(&st, name, err, sizeof(err)) != 0)
            goto fail;
        if (!is_gateway(&st, name) && list_add(&st.gateways, &st.n_gateways, name, err, sizeof(err)) != 0)
            goto fail;
    }
    for (int i = 0; i < n_bridges; i++) {
        if (is_gateway(&st, bridges[i])) {
            snprintf(err, sizeof(err), "%s is a gateway account; remove it first to make it a bridge", bridges[i]);
            goto fail;
        }
        if (store_add(&st, bridges[i], err, sizeof(err)) != 0 ||
            (!is_bridge(&st, bridges[i]) && list_add(&st.bridges, &st.n_bridges, bridges[i], err, sizeof(err)) != 0))
            goto fail;
    }
    if (store_commit(&st, err, sizeof(err)) != 0)
        goto fail;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    log_info("%zu account(s) added, %zu kept, %zu gateway(s) in %.2f s; files in %s/mqtt/", st.added, st.kept,
             st.n_gateways, (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9, cfg->data_dir);
    if (print) {
        for (int i = 0; i < n_ids; i++)
            if (mqa_derive(&st.secret, ids[i], pass, sizeof(pass)) == 0)
                printf("%s %s\n", ids[i], pass);
        for (long i = 0; i < count; i++)
            if (tm_format_truck_id(name, sizeof(name), prefix, strlen(prefix), (uint32_t)i) != 0 &&
                mqa_derive(&st.secret, name, pass, sizeof(pass)) == 0)
                printf("%s %s\n", name, pass);
        for (long i = 0; i < gateways; i++)
            if (tm_format_gateway_id(name, sizeof(name), prefix, strlen(prefix), (uint32_t)i) != 0 &&
                mqa_derive(&st.secret, name, pass, sizeof(pass)) == 0)
                printf("%s %s\n", name, pass);
        for (int i = 0; i < n_bridges; i++)
            if (mqa_derive(&st.secret, bridges[i], pass, sizeof(pass)) == 0)
                printf("%s %s\n", bridges[i], pass);
        fflush(stdout);
    }
    rc = reload(cfg);
    store_release(&st);
    close(lock);
    return rc;
fail:
    log_error("%s", err);
    store_release(&st);
    if (lock >= 0)
        close(lock);
    return 1;
}

static int do_remove(const struct fs_config *cfg, char **ids, int n_ids)
{
    struct store st = {.data_dir = cfg->data_dir};
    struct nameset drop = {0};
    char err[ERR_MAX];
    mqa_path(cfg->data_dir, "mqtt/passwd", st.passwd, sizeof(st.passwd));
    mqa_path(cfg->data_dir, "mqtt/acl", st.acl, sizeof(st.acl));
    if (access(st.passwd, F_OK) != 0) {
        log_error("%s has no MQTT accounts (fleetsync trucks add)", cfg->data_dir);
        return 1;
    }
    int lock = store_lock(cfg->data_dir);
    if (lock < 0)
        return 1;
    for (int i = 0; i < n_ids; i++) {
        if (set_add(&drop, ids[i]) < 0) {
            snprintf(err, sizeof(err), "out of memory");
            goto fail;
        }
    }
    if (read_acl(&st, err, sizeof(err)) != 0 || store_begin(&st, &drop, err, sizeof(err)) != 0)
        goto fail;
    size_t keep = 0;
    for (size_t i = 0; i < st.n_gateways; i++) {
        if (set_has(&drop, st.gateways[i]))
            free(st.gateways[i]);
        else
            st.gateways[keep++] = st.gateways[i];
    }
    st.n_gateways = keep;
    keep = 0;
    for (size_t i = 0; i < st.n_bridges; i++) {
        if (set_has(&drop, st.bridges[i]))
            free(st.bridges[i]);
        else
            st.bridges[keep++] = st.bridges[i];
    }
    st.n_bridges = keep;
    if (store_commit(&st, err, sizeof(err)) != 0)
        goto fail;
    log_info("%zu account(s) removed, %zu left", st.removed, st.kept);
    set_free(&drop);
    store_release(&st);
    int rc = reload(cfg);
    close(lock);
    return rc;
fail:
    log_error("%s", err);
    set_free(&drop);
    store_release(&st);
    close(lock);
    return 1;
}

static int do_password(const struct fs_config *cfg, char **ids, int n_ids)
{
    struct mqa_secret sec;
    char err[ERR_MAX], pass[MQA_PASS_CHARS + 1];
    int rc = mqa_secret_load(cfg->data_dir, &sec, err, sizeof(err));
    if (rc != 0) {
        log_error("%s", rc > 0 ? "no credentials store in the data dir (fleetsync trucks add)" : err);
        return 1;
    }
    for (int i = 0; i < n_ids; i++)
        if (mqa_derive(&sec, ids[i], pass, sizeof(pass)) == 0)
            printf("%s %s\n", ids[i], pass);
    memset(&sec, 0, sizeof(sec));
    return 0;
}

static int do_list(const struct fs_config *cfg)
{
    struct store st = {.data_dir = cfg->data_dir};
    char err[ERR_MAX], line[MQA_HASH_LINE_MAX + 64], name[MQA_ID_MAX + 1];
    mqa_path(cfg->data_dir, "mqtt/passwd", st.passwd, sizeof(st.passwd));
    mqa_path(cfg->data_dir, "mqtt/acl", st.acl, sizeof(st.acl));
    FILE *f = fopen(st.passwd, "r");
    if (!f) {
        if (errno == ENOENT) {
            log_info("%s has no MQTT accounts: the broker accepts anonymous clients", cfg->data_dir);
            return 0;
        }
        log_error("cannot read %s: %s", st.passwd, strerror(errno));
        return 1;
    }
    if (read_acl(&st, err, sizeof(err)) != 0) {
        log_error("%s", err);
        fclose(f);
        store_release(&st);
        return 1;
    }
    size_t n = 0;
    while (fgets(line, sizeof(line), f)) {
        if (trucks_line_user(line, name, sizeof(name)) < 0)
            continue;
        printf("%s %s\n", name, is_bridge(&st, name) ? "bridge" : is_gateway(&st, name) ? "gateway" : "truck");
        n++;
    }
    fclose(f);
    store_release(&st);
    log_info("%zu account(s)", n);
    return 0;
}

static int opt_id_prefix(void *value, const char *arg, char *err, size_t err_size)
{
    if (!valid_prefix(arg)) {
        snprintf(err, err_size, "may hold at most 40 characters of [A-Za-z0-9._-]");
        return -1;
    }
    *(const char **)value = arg;
    return 0;
}

/* The --bridge IDs of one call. */
struct bridge_ids {
    const char *v[MAX_BRIDGE_OPTS];
    int n;
};

static int opt_bridge(void *value, const char *arg, char *err, size_t err_size)
{
    struct bridge_ids *b = value;
    if (!mqa_valid_id(arg) || strcmp(arg, MQA_BRIDGE_USER) == 0 || b->n >= MAX_BRIDGE_OPTS) {
        snprintf(err, err_size,
                 "'%s': a bridge's --client-id ([A-Za-z0-9._-], 1..%d characters, not %s, at most %d "
                 "per call)",
                 arg, MQA_ID_MAX, MQA_BRIDGE_USER, MAX_BRIDGE_OPTS);
        return -1;
    }
    b->v[b->n++] = arg;
    return 0;
}

int cmd_trucks(int argc, char **argv)
{
    struct fs_config cfg;
    struct bridge_ids bridges = {.n = 0};
    int count = 0, gateways = 0, print = 0, rest, rc = 2;
    const char *prefix = "TRK-";
    const struct opt opts[] = {
        OPT_INTEGER("count", "N", &count, 1, 10000000,
                    "add: accounts for N trucks named as the simulator names them:\n"
                    "P000001 ... (P = --id-prefix, default TRK-)"),
        OPT_CB("id-prefix", "P", &prefix, opt_id_prefix, "add --count: the trucks' prefix (default TRK-)"),
        OPT_INTEGER("gateways", "N", &gateways, 1, 9999,
                    "add: also N gateway accounts PGW0001 ... (fleetsync sim --connections)"),
        OPT_CB("bridge", "ID", &bridges, opt_bridge,
               "add: an account for a further bridge instance run with --client-id ID\n"
               "(reads fleet/#; the broker ties each client id to its account)"),
        OPT_BOOLEAN("print", &print, "add: print 'ID PASSWORD' for each requested account (provisioning)"),
        OPT_END_MARK,
    };
    const struct opt_command cmd = {
        .name = "trucks",
        .usage = "fleetsync trucks add ID... | --count N [--id-prefix P] [--gateways N] [--bridge ID]... [--print]\n"
                 "fleetsync trucks list\n"
                 "fleetsync trucks password ID...\n"
                 "fleetsync trucks remove ID...",
        .about = trucks_about,
        .after = "Exit status: 0 ok, 1 runtime failure, 2 usage error.",
        .opts = opts,
        .shared = 1,
    };

    cfg_init(&cfg);
    if (opt_parse_or_leave(&cmd, &cfg, argc, argv, &rest, &rc))
        goto out;
    if (rest >= argc) {
        opt_error(&cmd, "give an action: add, list, password or remove");
        goto out;
    }
    int n_bridges = bridges.n;
    const char *action = argv[rest++];
    char **ids = argv + rest;
    int n_ids = argc - rest;
    int password = strcmp(action, "password") == 0;
    for (int i = 0; i < n_ids; i++) {
        if (!mqa_valid_id(ids[i]) || (!password && strcmp(ids[i], MQA_BRIDGE_USER) == 0)) {
            opt_error(&cmd, "'%s' is not a truck id ([A-Za-z0-9._-], 1..%d characters as telemetry's truck_id, not %s)",
                      ids[i], MQA_ID_MAX, MQA_BRIDGE_USER);
            goto out;
        }
    }
    if (strcmp(action, "add") == 0) {
        if (!n_ids && !count && !gateways && !n_bridges) {
            fprintf(stderr, "fleetsync trucks add: give truck ids, --count N, --gateways N or --bridge ID\n");
            goto out;
        }
        rc = do_add(&cfg, ids, n_ids, count, prefix, gateways, bridges.v, n_bridges, print);
    } else if (strcmp(action, "remove") == 0) {
        if (!n_ids || count || gateways || n_bridges || print) {
            fprintf(stderr, "fleetsync trucks remove: give the ids to remove (and nothing else)\n");
            goto out;
        }
        rc = do_remove(&cfg, ids, n_ids);
    } else if (password) {
        if (!n_ids || count || gateways || n_bridges || print) {
            fprintf(stderr, "fleetsync trucks password: give the account names (and nothing else)\n");
            goto out;
        }
        rc = do_password(&cfg, ids, n_ids);
    } else if (strcmp(action, "list") == 0) {
        if (n_ids || count || gateways || n_bridges || print) {
            fprintf(stderr, "fleetsync trucks list: takes no ids or add options\n");
            goto out;
        }
        rc = do_list(&cfg);
    } else {
        opt_error(&cmd, "unknown action '%s'", action);
    }
out:
    cfg_release(&cfg);
    return rc;
}
