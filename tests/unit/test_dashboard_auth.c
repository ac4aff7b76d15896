/* Who may watch the fleet: the credentials file, password and token checks,
 * session cookies (signed, expiring), the Origin and Host checks, rate
 * limits, and the API's query and form parsing. */
#include "dashboard/auth.h"
#include "dashboard/proto.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#define NOW 1764201600000LL
#define TOKEN "0123456789abcdef0123456789abcdef"

/* An auth object from the lines given (a temporary file). */
static void load(struct ds_auth *a, const char *text)
{
    char path[] = "/tmp/test_dashboard_auth.XXXXXX", err[512];
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    assert_int_equal(ds_auth_init(a, 3600 * 1000, err, sizeof(err)), 0);
    int r = ds_auth_load(a, path, err, sizeof(err));
    unlink(path);
    if (r != 0)
        fail_msg("%s", err);
}

static char *line_for(const char *name, const char *pw, int token)
{
    static char line[512];
    char hash[400];
    if (token)
        assert_int_equal(ds_auth_hash_token(pw, strlen(pw), hash, sizeof(hash)), 0);
    else
        assert_int_equal(ds_auth_hash_password(pw, strlen(pw), DS_AUTH_ITER_MIN, hash, sizeof(hash)), 0);
    snprintf(line, sizeof(line), "%s:%s\n", name, hash);
    return line;
}

static void hashed_password_verifies_and_wrong_ones_do_not(void **state)
{
    (void)state;
    static struct ds_auth a;
    char text[1024];
    snprintf(text, sizeof(text), "# operators\n\n%s", line_for("ops", "correct horse", 0));
    load(&a, text);
    assert_int_equal(a.n, 1);
    assert_int_equal(a.plain, 0);
    assert_int_equal(ds_auth_check_password(&a, "ops", "correct horse", 13), 0);
    assert_int_equal(ds_auth_check_password(&a, "ops", "correct hors", 12), -1);
    assert_int_equal(ds_auth_check_password(&a, "ops", "", 0), -1);
    assert_int_equal(ds_auth_check_password(&a, "nobody", "correct horse", 13), -1);
    ds_auth_release(&a);
}

static void two_hashes_of_one_password_differ(void **state)
{
    (void)state;
    char h1[400], h2[400];
    assert_int_equal(ds_auth_hash_password("pw-pw-pw", 8, DS_AUTH_ITER_MIN, h1, sizeof(h1)), 0);
    assert_int_equal(ds_auth_hash_password("pw-pw-pw", 8, DS_AUTH_ITER_MIN, h2, sizeof(h2)), 0);
    assert_string_not_equal(h1, h2); /* salted */
    assert_non_null(strstr(h1, "$pbkdf2-sha256$10000$"));
    assert_null(strstr(h1, "pw-pw-pw"));
}

static void token_verifies_by_its_hash(void **state)
{
    (void)state;
    static struct ds_auth a;
    load(&a, line_for("ci", TOKEN, 1));
    assert_int_equal(a.tokens, 1);
    assert_int_equal(ds_auth_check_token(&a, TOKEN, strlen(TOKEN)), 0);
    assert_int_equal(ds_auth_check_token(&a, TOKEN, strlen(TOKEN) - 1), -1);
    assert_int_equal(ds_auth_check_header(&a, "Bearer " TOKEN), 0);
    assert_int_equal(ds_auth_check_header(&a, "Bearer x" TOKEN), -1);
    /* A token is not a password. */
    assert_int_equal(ds_auth_check_password(&a, "ci", TOKEN, strlen(TOKEN)), -1);
    ds_auth_release(&a);
}

static void basic_header_checks_a_login(void **state)
{
    (void)state;
    static struct ds_auth a;
    load(&a, line_for("fleet", "s3cret-pw", 0));
    /* base64("fleet:s3cret-pw") and base64("fleet:wrong") */
    assert_int_equal(ds_auth_check_header(&a, "Basic ZmxlZXQ6czNjcmV0LXB3"), 0);
    assert_int_equal(ds_auth_check_header(&a, "Basic ZmxlZXQ6czNjcmV0LXB3"), 0); /* cached */
    assert_int_equal(ds_auth_check_header(&a, "Basic ZmxlZXQ6d3Jvbmc="), -1);
    assert_int_equal(ds_auth_check_header(&a, "Basic !!!!"), -1);
    assert_int_equal(ds_auth_check_header(&a, "Digest x"), -1);
    ds_auth_release(&a);
}

static void plain_text_lines_are_accepted_and_counted(void **state)
{
    (void)state;
    static struct ds_auth a;
    load(&a, "fleet:s3cret\n");
    assert_int_equal(a.plain, 1);
    assert_int_equal(ds_auth_check_password(&a, "fleet", "s3cret", 6), 0);
    assert_int_equal(ds_auth_check_password(&a, "fleet", "s3cre", 5), -1);
    assert_int_equal(ds_auth_check_header(&a, "Basic ZmxlZXQ6czNjcmV0"), 0);
    ds_auth_release(&a);
}

static void bad_lines_are_refused_with_a_reason(void **state)
{
    (void)state;
    struct ds_cred c;
    char err[300];
    assert_int_equal(ds_auth_parse_line("# comment", &c, err, sizeof(err)), 1);
    assert_int_equal(ds_auth_parse_line("   ", &c, err, sizeof(err)), 1);
    assert_int_equal(ds_auth_parse_line("nocolon", &c, err, sizeof(err)), -1);
    assert_int_equal(ds_auth_parse_line(":pw", &c, err, sizeof(err)), -1);
    assert_int_equal(ds_auth_parse_line("bad name:pw", &c, err, sizeof(err)), -1);
    assert_int_equal(ds_auth_parse_line("ops:", &c, err, sizeof(err)), -1);
    assert_int_equal(ds_auth_parse_line("ops:$md5$abc", &c, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "unknown hash scheme"));
    assert_int_equal(ds_auth_parse_line("ops:$pbkdf2-sha256$10$00112233445566778899$00", &c, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "--hash-password"));
    assert_int_equal(ds_auth_parse_line("ops:$token-sha256$abcd", &c, err, sizeof(err)), -1);
    char err2[512];
    static struct ds_auth a;
    assert_int_equal(ds_auth_init(&a, 1000, err2, sizeof(err2)), 0);
    assert_int_equal(ds_auth_load(&a, "/nonexistent/auth", err2, sizeof(err2)), -1);
    assert_non_null(strstr(err2, "cannot read --auth-file /nonexistent/auth"));
    ds_auth_release(&a);
}

static void session_cookie_verifies_until_it_expires(void **state)
{
    (void)state;
    static struct ds_auth a;
    load(&a, line_for("ops", "correct horse", 0));
    char v[DS_AUTH_COOKIE_MAX + 1];
    int idx = -1;
    assert_int_equal(ds_auth_session_new(&a, 0, NOW, v, sizeof(v)), 0);
    assert_true(strlen(v) < DS_AUTH_COOKIE_MAX);
    assert_int_equal(ds_auth_session_check(&a, v, strlen(v), NOW + 1000, &idx), 0);
    assert_int_equal(idx, 0);
    assert_int_equal(ds_auth_session_check(&a, v, strlen(v), NOW + 3600 * 1000 - 1, &idx), 0);
    assert_int_equal(ds_auth_session_check(&a, v, strlen(v), NOW + 3600 * 1000, &idx), -2); /* expired */
    ds_auth_release(&a);
}

static void forged_session_cookies_are_refused(void **state)
{
    (void)state;
    static struct ds_auth a, other;
    load(&a, line_for("ops", "correct horse", 0));
    load(&other, line_for("ops", "correct horse", 0));
    char v[DS_AUTH_COOKIE_MAX + 1], f[DS_AUTH_COOKIE_MAX + 40];
    int idx;
    assert_int_equal(ds_auth_session_new(&a, 0, NOW, v, sizeof(v)), 0);
    /* Another key (another process) signed it. */
    assert_int_equal(ds_auth_session_check(&other, v, strlen(v), NOW, &idx), -1);
    /* A later expiry written into a signed cookie. */
    snprintf(f, sizeof(f), "9%s", v);
    assert_int_equal(ds_auth_session_check(&a, f, strlen(f), NOW, &idx), -1);
    /* One bit of the MAC changed. */
    snprintf(f, sizeof(f), "%s", v);
    f[strlen(f) - 1] = f[strlen(f) - 1] == '0' ? '1' : '0';
    assert_int_equal(ds_auth_session_check(&a, f, strlen(f), NOW, &idx), -1);
    assert_int_equal(ds_auth_session_check(&a, "", 0, NOW, &idx), -1);
    assert_int_equal(ds_auth_session_check(&a, "1.2.3", 5, NOW, &idx), -1);
    /* No session for an entry that does not exist. */
    assert_int_equal(ds_auth_session_new(&a, 5, NOW, v, sizeof(v)), -1);
    ds_auth_release(&a);
    ds_auth_release(&other);
}

static void cookie_header_is_split(void **state)
{
    (void)state;
    char v[64];
    assert_int_equal(ds_auth_cookie("a=1; fs_session=abc.def; b=2", "fs_session", v, sizeof(v)), 7);
    assert_string_equal(v, "abc.def");
    assert_int_equal(ds_auth_cookie("fs_session=x", "fs_session", v, sizeof(v)), 1);
    assert_int_equal(ds_auth_cookie("xfs_session=1; fs_sessionx=2", "fs_session", v, sizeof(v)), -1);
    assert_int_equal(ds_auth_cookie("", "fs_session", v, sizeof(v)), -1);
    assert_int_equal(ds_auth_cookie("fs_session=0123456789", "fs_session", v, 4), -1); /* too long */
}

static void origin_must_name_the_host(void **state)
{
    (void)state;
    assert_true(ds_auth_origin_ok("http://127.0.0.1:8080", "127.0.0.1:8080"));
    assert_true(ds_auth_origin_ok("https://Fleet.Example.com", "fleet.example.com"));
    assert_false(ds_auth_origin_ok("http://evil.example", "127.0.0.1:8080"));
    assert_false(ds_auth_origin_ok("http://127.0.0.1:9999", "127.0.0.1:8080"));
    assert_false(ds_auth_origin_ok("http://127.0.0.1:8080.evil", "127.0.0.1:8080"));
    assert_false(ds_auth_origin_ok("null", "127.0.0.1:8080"));
    assert_false(ds_auth_origin_ok("file://127.0.0.1:8080", "127.0.0.1:8080"));
    assert_false(ds_auth_origin_ok("http://127.0.0.1:8080", NULL));
}

static void loopback_hosts(void **state)
{
    (void)state;
    assert_true(ds_auth_host_loopback("127.0.0.1:8080"));
    assert_true(ds_auth_host_loopback("127.0.0.1"));
    assert_true(ds_auth_host_loopback("127.1.2.3:1"));
    assert_true(ds_auth_host_loopback("localhost:8080"));
    assert_true(ds_auth_host_loopback("[::1]:8080"));
    assert_true(ds_auth_host_loopback("[::1]"));
    assert_false(ds_auth_host_loopback("evil.example:8080"));
    assert_false(ds_auth_host_loopback("127.0.0.1.evil.example"));
    assert_false(ds_auth_host_loopback("127.0.0.1.5"));
    assert_false(ds_auth_host_loopback("127.0.0.1:80x"));
    assert_false(ds_auth_host_loopback("127.0.0.1:"));
    assert_false(ds_auth_host_loopback("10.0.0.1:8080"));
    assert_false(ds_auth_host_loopback("[::2]:8080"));
    assert_false(ds_auth_host_loopback(""));
}

static void host_allow_list_stops_rebinding(void **state)
{
    (void)state;
    const char *names[] = {"dash.example.org", "10.0.0.5"};
    /* loopback names always; listed names, case and port aside */
    assert_true(ds_auth_host_allowed("localhost:8080", names, 2, 0));
    assert_true(ds_auth_host_allowed("127.0.0.1", names, 2, 0));
    assert_true(ds_auth_host_allowed("[::1]:8080", names, 2, 0));
    assert_true(ds_auth_host_allowed("DASH.example.org:443", names, 2, 0));
    assert_true(ds_auth_host_allowed("dash.example.org.", names, 2, 0));
    assert_true(ds_auth_host_allowed("10.0.0.5:8080", names, 2, 0));
    /* a foreign name, even one ending like a listed one */
    assert_false(ds_auth_host_allowed("rebind.evil.example:8080", names, 2, 0));
    assert_false(ds_auth_host_allowed("evil-dash.example.org", names, 2, 0));
    assert_false(ds_auth_host_allowed("dash.example.org.evil.example", names, 2, 1));
    assert_false(ds_auth_host_allowed("10.0.0.6:8080", names, 2, 0)); /* an address not listed */
    const char *v6[] = {"2001:db8::5"};
    assert_true(ds_auth_host_allowed("[2001:DB8::5]:8443", v6, 1, 0));
    assert_false(ds_auth_host_allowed("[2001:db8::6]:8443", v6, 1, 0));
    /* a wildcard listen with a login: any address, still no foreign name */
    assert_true(ds_auth_host_allowed("10.0.0.6:8080", names, 2, 1));
    assert_true(ds_auth_host_allowed("[2001:db8::1]:8080", names, 2, 1));
    assert_false(ds_auth_host_allowed("evil.example", names, 2, 1));
    assert_false(ds_auth_host_allowed("10.0.0.6.evil.example", names, 2, 1));
    /* malformed */
    assert_false(ds_auth_host_allowed("", names, 2, 1));
    assert_false(ds_auth_host_allowed(":8080", names, 2, 1));
    assert_false(ds_auth_host_allowed("10.0.0.6:80x", names, 2, 1));
    assert_false(ds_auth_host_allowed("[2001:db8::1", names, 2, 1));
    assert_false(ds_auth_host_allowed(NULL, names, 2, 1));
}

static void rate_limit_refills_per_address(void **state)
{
    (void)state;
    static struct ds_rate r;
    ds_rate_init(&r, 1, 3); /* 1 per second, bursts of 3 */
    assert_true(ds_rate_take(&r, "10.0.0.1", NOW));
    assert_true(ds_rate_take(&r, "10.0.0.1", NOW));
    assert_true(ds_rate_take(&r, "10.0.0.1", NOW));
    assert_false(ds_rate_take(&r, "10.0.0.1", NOW));
    assert_false(ds_rate_peek(&r, "10.0.0.1", NOW + 500));
    assert_true(ds_rate_take(&r, "10.0.0.2", NOW)); /* another address has its own */
    assert_true(ds_rate_peek(&r, "10.0.0.1", NOW + 1000));
    assert_true(ds_rate_take(&r, "10.0.0.1", NOW + 1000));
    assert_false(ds_rate_take(&r, "10.0.0.1", NOW + 1000));
    assert_true(ds_rate_take(&r, "10.0.0.1", NOW + 100000)); /* refilled, to the burst at most */
    assert_true(ds_rate_take(&r, "10.0.0.1", NOW + 100000));
    assert_true(ds_rate_take(&r, "10.0.0.1", NOW + 100000));
    assert_false(ds_rate_take(&r, "10.0.0.1", NOW + 100000));
}

static void rate_refund_gives_back_up_to_the_burst(void **state)
{
    (void)state;
    static struct ds_rate r;
    ds_rate_init(&r, 1, 2);
    assert_true(ds_rate_take(&r, "10.0.0.1", NOW)); /* a good login: taken, then refunded */
    ds_rate_refund(&r, "10.0.0.1", NOW);
    ds_rate_refund(&r, "10.0.0.1", NOW); /* never past the burst */
    assert_true(ds_rate_take(&r, "10.0.0.1", NOW));
    assert_true(ds_rate_take(&r, "10.0.0.1", NOW));
    assert_false(ds_rate_take(&r, "10.0.0.1", NOW));
}

static void rate_table_stays_bounded(void **state)
{
    (void)state;
    static struct ds_rate r;
    ds_rate_init(&r, 1, 1);
    char addr[32];
    for (int i = 0; i < 100000; i++) {
        snprintf(addr, sizeof(addr), "10.%d.%d.%d", i >> 16 & 255, i >> 8 & 255, i & 255);
        assert_true(ds_rate_take(&r, addr, NOW + i)); /* each new address has its burst */
    }
    /* The latest address still has its slot: refused without a refill. */
    assert_false(ds_rate_take(&r, addr, NOW + 99999));
}

static void api_queries_are_parsed(void **state)
{
    (void)state;
    struct ds_bbox b;
    long long since;
    const char *q = "bbox=5,45,15,55";
    assert_int_equal(ds_query_bbox(q, strlen(q), &b), 0);
    assert_true(b.min_lon == 5 && b.min_lat == 45 && b.max_lon == 15 && b.max_lat == 55);
    q = "bbox=-200%2C-95%2C200%2C95"; /* URL-encoded, clamped */
    assert_int_equal(ds_query_bbox(q, strlen(q), &b), 0);
    assert_true(b.min_lon == -180 && b.max_lat == 90);
    assert_int_equal(ds_query_bbox("bbox=1,2,x", 10, &b), -1);
    assert_int_equal(ds_query_bbox("bbox=10,2,3,4", 13, &b), -1);
    assert_int_equal(ds_query_bbox("bbox=1,2,3,4,5", 14, &b), -1);
    assert_int_equal(ds_query_bbox(NULL, 0, &b), -1);
    assert_int_equal(ds_query_since(NULL, 0, &since), 0);
    assert_true(since == 0);
    assert_int_equal(ds_query_since("since=1764201600000", 19, &since), 0);
    assert_true(since == NOW);
    assert_int_equal(ds_query_since("since=12x", 9, &since), -1);
    assert_int_equal(ds_query_since("since=", 6, &since), -1);
    assert_int_equal(ds_query_since("other=1", 7, &since), 0);
}

static void login_form_is_parsed(void **state)
{
    (void)state;
    char user[64], pw[256];
    const char *f = "user=ops&password=p%40ss+word%26";
    assert_int_equal(ds_form_login(f, strlen(f), user, sizeof(user), pw, sizeof(pw)), 0);
    assert_string_equal(user, "ops");
    assert_string_equal(pw, "p@ss word&");
    assert_int_equal(ds_form_login("user=ops", 8, user, sizeof(user), pw, sizeof(pw)), -1);
    assert_int_equal(ds_form_login("user=ops&password=", 18, user, sizeof(user), pw, sizeof(pw)), -1);
    assert_int_equal(ds_form_login("user=ops&password=0123456789", 28, user, sizeof(user), pw, 4), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(hashed_password_verifies_and_wrong_ones_do_not),
        cmocka_unit_test(two_hashes_of_one_password_differ),
        cmocka_unit_test(token_verifies_by_its_hash),
        cmocka_unit_test(basic_header_checks_a_login),
        cmocka_unit_test(plain_text_lines_are_accepted_and_counted),
        cmocka_unit_test(bad_lines_are_refused_with_a_reason),
        cmocka_unit_test(session_cookie_verifies_until_it_expires),
        cmocka_unit_test(forged_session_cookies_are_refused),
        cmocka_unit_test(cookie_header_is_split),
        cmocka_unit_test(origin_must_name_the_host),
        cmocka_unit_test(loopback_hosts),
        cmocka_unit_test(host_allow_list_stops_rebinding),
        cmocka_unit_test(rate_limit_refills_per_address),
        cmocka_unit_test(rate_refund_gives_back_up_to_the_burst),
        cmocka_unit_test(rate_table_stays_bounded),
        cmocka_unit_test(api_queries_are_parsed),
        cmocka_unit_test(login_form_is_parsed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
