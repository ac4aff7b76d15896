/*
 * sign.c - the webhook signature (see sign.h): HMAC-SHA256 over
 * "<t>.<body>", hex.
 */
#include "notify/sign.h"

#include "core/hex.h"

#include <inttypes.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <stdio.h>
#include <string.h>

int notify_sign(const char *secret, size_t secret_len, int64_t t_ms, const char *body, size_t body_len,
                char out[NOTIFY_SIG_MAX])
{
    char t[24];
    int tn = snprintf(t, sizeof(t), "%" PRId64 ".", t_ms);
    unsigned char mac[EVP_MAX_MD_SIZE];
    size_t mac_len = 0;
    int rc = -1;
    char digest[] = "SHA256";
    OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
                           OSSL_PARAM_construct_end()};
    EVP_MAC *m = EVP_MAC_fetch(NULL, "HMAC", NULL);
    EVP_MAC_CTX *h = m ? EVP_MAC_CTX_new(m) : NULL;
    if (h && EVP_MAC_init(h, (const unsigned char *)secret, secret_len, params) == 1 &&
        EVP_MAC_update(h, (const unsigned char *)t, (size_t)tn) == 1 &&
        EVP_MAC_update(h, (const unsigned char *)body, body_len) == 1 &&
        EVP_MAC_final(h, mac, &mac_len, sizeof(mac)) == 1 && mac_len == 32) {
        char hex[65];
        hex_encode(mac, 32, hex);
        snprintf(out, NOTIFY_SIG_MAX, "t=%" PRId64 ",v1=%s", t_ms, hex);
        rc = 0;
    }
    EVP_MAC_CTX_free(h);
    EVP_MAC_free(m);
    return rc;
}
