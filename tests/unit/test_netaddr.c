/* core/netaddr: localhost, ::1 and 127.0.0.0/8 (also IPv4-mapped) are
 * loopback; other addresses, look-alikes and malformed quads are not. */
#include "core/netaddr.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

static void loopback_names_and_addresses(void **state)
{
    (void)state;
    static const char *const yes[] = {"localhost",       "LocalHost",  "::1",
                                      "[::1]",           "127.0.0.1",  "127.1.2.3",
                                      "127.255.255.255", "127.0.0.01", "::ffff:127.0.0.1",
                                      "::FFFF:127.9.9.9"};
    for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++)
        assert_true(netaddr_loopback(yes[i]));
}

static void everything_else_is_not(void **state)
{
    (void)state;
    static const char *const no[] = {"",
                                     "0.0.0.0",
                                     "::",
                                     "[::]",
                                     "10.0.0.1",
                                     "128.0.0.1",
                                     "127.0.0.256",
                                     "127.0.0",
                                     "127.0.0.1.5",
                                     "127.0.0.1x",
                                     "127.0.0.1:8080",
                                     "127.0.0.-1",
                                     "127..0.1",
                                     "1127.0.0.1",
                                     "127.0.0.1000",
                                     "localhost.evil.example",
                                     "localhost:80",
                                     "::ffff:10.0.0.1",
                                     "[::1]:80",
                                     "::2",
                                     "127.0.0.1 ",
                                     " 127.0.0.1"};
    for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++)
        assert_false(netaddr_loopback(no[i]));
    assert_false(netaddr_loopback(NULL));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(loopback_names_and_addresses),
        cmocka_unit_test(everything_else_is_not),
    };
    return cmocka_run_group_tests_name("netaddr", tests, NULL, NULL);
}
