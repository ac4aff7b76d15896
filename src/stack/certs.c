/*
 * certs.c - the local certificate authority in D/tls/ (start --tls), made
 * with the openssl CLI: the CA, the broker's certificate for 127.0.0.1 and
 * localhost, and the dashboard's for every name and address of this host.
 * Keys stay the invoking user's (0600) but the broker's, which goes to the
 * service user.  Made once and kept across restarts, so that clients which
 * trust ca.crt keep trusting the servers.
 */
#include "stack/stack.h"

#include "core/log.h"
#include "core/nofollow.h"
#include "core/proc.h"

#include <errno.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <limits.h>
#include <netdb.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

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

/* The subjectAltName of the dashboard's certificate: loopback, this
 * host's name and every address of its interfaces, so browsers on other
 * machines that open https://HOST:PORT/ by one of them can verify it. */
static void dashboard_san(char *out, size_t size)
{
    size_t n = 0;
    svc_conf_add(out, size, &n, "IP:127.0.0.1,DNS:localhost");
    char host[256];
    if (gethostname(host, sizeof(host)) == 0 && host[0] &&
        strspn(host, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                     "0123456789.-") == strlen(host) &&
        strcmp(host, "localhost") != 0)
        svc_conf_add(out, size, &n, ",DNS:%s", host);
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
        svc_conf_add(out, size, &n, ",IP:%s", a);
    }
    freeifaddrs(ifs);
    if (n >= size)
        snprintf(out, size, "IP:127.0.0.1,DNS:localhost"); /* too many addresses: loopback only */
}

/* D/tls/<name>.key and <name>.crt: a new P-256 key and a certificate for
 * subject and subjectAltName san, signed by the local CA (valid 825 days),
 * through D/tls/<name>.csr (removed again) and <name>.ext.  The caller sets
 * the umask the files get.  Returns 0, or -1 when a step failed (openssl
 * says why in D/log/tls.log). */
static int tls_issue(const struct svc_ctx *c, const char *name, const char *subject, const char *san,
                     const char *ca_crt, const char *ca_key, const char *serial)
{
    char rel[64], key[PATH_MAX], csr[PATH_MAX], crt[PATH_MAX], ext[PATH_MAX];
    snprintf(rel, sizeof(rel), "tls/%s.key", name);
    svc_path_join(key, sizeof(key), c->dir, rel);
    snprintf(rel, sizeof(rel), "tls/%s.csr", name);
    svc_path_join(csr, sizeof(csr), c->dir, rel);
    snprintf(rel, sizeof(rel), "tls/%s.crt", name);
    svc_path_join(crt, sizeof(crt), c->dir, rel);
    snprintf(rel, sizeof(rel), "tls/%s.ext", name);
    svc_path_join(ext, sizeof(ext), c->dir, rel);
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
        char *const req[] = {"openssl", "req",     "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                             "-nodes",  "-keyout", key,    "-out",    csr,  "-subj",    (char *)subject,
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
    unlink(csr);
    return rc;
}

/* D/tls/dashboard.crt and .key, signed by the local CA, for `fleetsync
 * dashboard --tls`: made once, the key stays the invoking user's (0600). */
static int tls_dashboard_ensure(const struct svc_ctx *c, const char *ca_crt, const char *ca_key, const char *serial)
{
    char key[PATH_MAX], crt[PATH_MAX], san[4096];
    svc_path_join(key, sizeof(key), c->dir, "tls/dashboard.key");
    svc_path_join(crt, sizeof(crt), c->dir, "tls/dashboard.crt");
    if (access(crt, R_OK) == 0 && access(key, F_OK) == 0)
        return 0;
    if (access(ca_key, R_OK) != 0) {
        log_warn("no dashboard certificate: the local CA's key %s is not readable here", ca_key);
        return 0; /* the broker does not need it */
    }
    dashboard_san(san, sizeof(san));
    mode_t old = umask(077);
    int rc = tls_issue(c, "dashboard", "/O=FleetSync/CN=FleetSync dashboard", san, ca_crt, ca_key, serial);
    umask(old);
    if (rc != 0) {
        log_error("openssl could not make the dashboard's certificate; see %s/log/tls.log", c->dir);
        return -1;
    }
    chmod(crt, 0644);
    log_info("made %s for fleetsync dashboard --tls (%s)", crt, san);
    return 0;
}

/* D/tls/: a local CA (ca.key stays the invoking user's, 0600) and a server
 * certificate for 127.0.0.1 and localhost signed by it.  Made once; kept
 * across restarts so clients that trust ca.crt keep trusting the broker. */
int svc_tls_ensure(const struct svc_ctx *c)
{
    char dir[PATH_MAX], ca_key[PATH_MAX], ca_crt[PATH_MAX], key[PATH_MAX], crt[PATH_MAX], serial[PATH_MAX];
    svc_path_join(dir, sizeof(dir), c->dir, "tls");
    svc_path_join(ca_key, sizeof(ca_key), c->dir, "tls/ca.key");
    svc_path_join(ca_crt, sizeof(ca_crt), c->dir, "tls/ca.crt");
    svc_path_join(key, sizeof(key), c->dir, "tls/server.key");
    svc_path_join(crt, sizeof(crt), c->dir, "tls/server.crt");
    svc_path_join(serial, sizeof(serial), c->dir, "tls/ca.srl");
    if (access(ca_crt, R_OK) == 0 && access(crt, R_OK) == 0 && access(key, F_OK) == 0)
        return tls_dashboard_ensure(c, ca_crt, ca_key, serial) == 0 ? svc_give_to_service(c, "tls/server.key") : -1;
    if (svc_mkdir_p(dir, 0755) != 0) {
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
    if (rc == 0)
        rc = tls_issue(c, "server", "/O=FleetSync/CN=localhost", "IP:127.0.0.1,DNS:localhost", ca_crt, ca_key, serial);
    umask(old);
    if (rc != 0) {
        log_error("openssl could not make the certificates; see %s/log/tls.log", c->dir);
        return -1;
    }
    chmod(ca_crt, 0644);
    chmod(crt, 0644);
    return tls_dashboard_ensure(c, ca_crt, ca_key, serial) == 0 ? svc_give_to_service(c, "tls/server.key") : -1;
}
