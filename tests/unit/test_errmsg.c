/* core/errmsg: a failure's reason in the caller's buffer. */
#include "core/errmsg.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

static void formats_the_reason_and_returns_minus_one(void **state)
{
    (void)state;
    char err[64];
    assert_int_equal(errmsg_fail(err, sizeof(err), "'%s' is not %d hex digits", "xyz", 64), -1);
    assert_string_equal(err, "'xyz' is not 64 hex digits");
}

static void a_short_buffer_cuts_and_no_buffer_is_fine(void **state)
{
    (void)state;
    char err[6];
    assert_int_equal(errmsg_fail(err, sizeof(err), "cannot read %s", "/etc"), -1);
    assert_string_equal(err, "canno");
    assert_int_equal(errmsg_fail(NULL, 0, "nobody reads %s", "this"), -1);
    err[0] = 'x';
    assert_int_equal(errmsg_fail(err, 0, "not %s", "written"), -1);
    assert_int_equal(err[0], 'x');
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(formats_the_reason_and_returns_minus_one),
        cmocka_unit_test(a_short_buffer_cuts_and_no_buffer_is_fine),
    };
    return cmocka_run_group_tests_name("errmsg", tests, NULL, NULL);
}
