/* core/tlsclient: a client context always checks the server's name or
 * address; a host that cannot be checked (empty) fails the setup with a
 * reason instead of giving a context that accepts any certificate the CA
 * signed. */
#include "core/tlsclient.h"

#include <openssl/x509v3.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

static void a_name_is_checked(void **state)
{
    (void)state;
    char err[256] = "";
    SSL_CTX *ctx = tls_client_context(NULL, "broker.example", err, sizeof(err));
    assert_non_null(ctx);
    const char *want = X509_VERIFY_PARAM_get0_host(SSL_CTX_get0_param(ctx), 0);
    assert_non_null(want);
    assert_string_equal(want, "broker.example");
    SSL_CTX_free(ctx);
}

static void an_address_is_checked(void **state)
{
    (void)state;
    char err[256] = "";
    SSL_CTX *ctx = tls_client_context(NULL, "127.0.0.1", err, sizeof(err));
    assert_non_null(ctx);
    /* An IP address is checked as one (subjectAltName IP), not as a name. */
    assert_null(X509_VERIFY_PARAM_get0_host(SSL_CTX_get0_param(ctx), 0));
    char *ip = X509_VERIFY_PARAM_get1_ip_asc(SSL_CTX_get0_param(ctx));
    assert_non_null(ip);
    assert_string_equal(ip, "127.0.0.1");
    OPENSSL_free(ip);
    SSL_CTX_free(ctx);
}

static void an_empty_host_fails_the_setup(void **state)
{
    (void)state;
    char err[256] = "";
    /* OpenSSL takes an empty name as "check no name": refused here. */
    assert_null(tls_client_context(NULL, "", err, sizeof(err)));
    assert_non_null(strstr(err, "no host name to verify"));
    err[0] = '\0';
    assert_null(tls_client_context(NULL, NULL, err, sizeof(err)));
    assert_non_null(strstr(err, "no host name to verify"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(a_name_is_checked),
        cmocka_unit_test(an_address_is_checked),
        cmocka_unit_test(an_empty_host_fails_the_setup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
