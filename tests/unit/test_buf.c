/* core/buf: pieces appended in order, growth past the first block, long
 * formatted text kept whole, reset keeps the memory, release frees it; a
 * bounded buffer refuses a piece that would pass its max. */
#include "core/buf.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

static void pieces_in_order(void **state)
{
    (void)state;
    struct buf b = {0};
    buf_put(&b, "TRK-1", 5);
    buf_putc(&b, '\t');
    buf_printf(&b, "%d|%s", 42, "x");
    assert_int_equal(b.len, 10);
    assert_string_equal(b.p, "TRK-1\t42|x"); /* always '\0'-terminated */
    assert_int_equal(b.oom, 0);
    buf_release(&b);
    assert_null(b.p);
    assert_int_equal(b.len, 0);
}

static void grows_and_resets(void **state)
{
    (void)state;
    struct buf b = {0};
    char row[40];
    size_t want = 0;
    for (int i = 0; i < 20000; i++) { /* ~300 KiB: several doublings */
        int n = snprintf(row, sizeof(row), "TRK-%06d\t%d\n", i, i * 7);
        buf_put(&b, row, (size_t)n);
        want += (size_t)n;
    }
    assert_int_equal(b.len, want);
    assert_true(b.cap > want);
    assert_memory_equal(b.p + want - 18, "TRK-019999\t139993\n", 18);
    char *mem = b.p;
    size_t cap = b.cap;
    buf_reset(&b);
    assert_int_equal(b.len, 0);
    assert_ptr_equal(b.p, mem); /* the memory stays for the next batch */
    assert_int_equal(b.cap, cap);
    buf_put(&b, "", 0);
    assert_string_equal(b.p, "");
    buf_release(&b);
}

static void long_printf_is_whole(void **state)
{
    (void)state;
    struct buf b = {0};
    size_t n = 200000;
    char *s = malloc(n + 1);
    assert_non_null(s);
    memset(s, 'a', n);
    s[n] = '\0';
    buf_put(&b, "{", 1);
    buf_printf(&b, "%s}", s);
    assert_int_equal(b.len, n + 2);
    assert_int_equal(b.p[n], 'a');
    assert_int_equal(b.p[n + 1], '}');
    assert_int_equal(b.p[n + 2], '\0');
    free(s);
    buf_release(&b);
}

/* A bounded buffer: pieces that fit are kept, one that would pass max is
 * dropped whole and sets oom (printf too), the memory never exceeds max,
 * and release keeps the bound. */
static void bounded(void **state)
{
    (void)state;
    struct buf b = {.max = 3000};
    char row[1100];
    memset(row, 'x', sizeof(row));
    buf_put(&b, row, 999);
    buf_put(&b, row, 999);
    assert_false(b.oom);
    buf_put(&b, row, 1002); /* 1998 + 1002 + 1 > 3000 */
    assert_true(b.oom);
    assert_int_equal(b.len, 1998);
    assert_true(b.cap <= 3000);
    buf_puts(&b, "}");
    assert_int_equal(b.len, 1999); /* a piece that fits still goes in; oom stays */
    assert_true(b.oom);
    buf_reset(&b);
    assert_false(b.oom);
    buf_printf(&b, "%3000s", "");
    assert_true(b.oom);
    assert_int_equal(b.len, 0);
    assert_string_equal(b.p, "");
    buf_release(&b);
    assert_int_equal(b.max, 3000);
    assert_null(b.p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(pieces_in_order),
        cmocka_unit_test(grows_and_resets),
        cmocka_unit_test(long_printf_is_whole),
        cmocka_unit_test(bounded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
