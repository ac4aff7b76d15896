/* core/randbytes: filling a buffer from getrandom. */
#include "core/randbytes.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

static void fills_the_whole_buffer(void **state)
{
    (void)state;
    /* More than one getrandom call may return at once (256 bytes). */
    static unsigned char a[4096], b[4096];
    char err[128] = "";
    memset(a, 0, sizeof(a));
    memset(b, 0, sizeof(b));
    assert_int_equal(randbytes_fill(a, sizeof(a), err, sizeof(err)), 0);
    assert_int_equal(randbytes_fill(b, sizeof(b), err, sizeof(err)), 0);
    assert_string_equal(err, "");
    assert_memory_not_equal(a, b, sizeof(a));
    /* The last bytes are filled too: 64 zero bytes at the end would be a
     * 2^-512 chance. */
    static const unsigned char zero[64];
    assert_memory_not_equal(a + sizeof(a) - sizeof(zero), zero, sizeof(zero));
}

static void nothing_to_fill_is_fine(void **state)
{
    (void)state;
    char err[128] = "";
    unsigned char one = 7;
    assert_int_equal(randbytes_fill(&one, 0, err, sizeof(err)), 0);
    assert_int_equal(one, 7);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(fills_the_whole_buffer),
        cmocka_unit_test(nothing_to_fill_is_fine),
    };
    return cmocka_run_group_tests_name("randbytes", tests, NULL, NULL);
}
