/* core/readfile: a file up to the limit is read whole and NUL-terminated; a
 * larger one, or an endless one, stops at the limit plus one byte; a read
 * error is an errno. */
#include "core/readfile.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

static FILE *file_of(size_t n)
{
    FILE *f = tmpfile();
    assert_non_null(f);
    for (size_t i = 0; i < n; i++)
        fputc('a' + (int)(i % 26), f);
    rewind(f);
    return f;
}

static void read_whole_and_terminated(void **state)
{
    (void)state;
    size_t sizes[] = {0, 1, 100, 65535, 65536, 65537, 300000};
    for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
        FILE *f = file_of(sizes[k]);
        char *text = NULL;
        size_t len = 99;
        assert_int_equal(readfile_bounded(f, 1 << 20, &text, &len), 0);
        assert_int_equal(len, sizes[k]);
        assert_non_null(text);
        assert_int_equal(text[len], '\0');
        if (len)
            assert_int_equal(text[len - 1], 'a' + (int)((len - 1) % 26));
        free(text);
        fclose(f);
    }
}

static void exactly_the_limit_fits_one_more_is_reported(void **state)
{
    (void)state;
    size_t max = 70000;
    char *text = NULL;
    size_t len = 0;
    FILE *f = file_of(max);
    assert_int_equal(readfile_bounded(f, max, &text, &len), 0);
    assert_int_equal(len, max);
    free(text);
    fclose(f);
    f = file_of(max + 1);
    assert_int_equal(readfile_bounded(f, max, &text, &len), 0);
    assert_int_equal(len, max + 1);
    free(text);
    fclose(f);
    f = file_of(5 * max);
    assert_int_equal(readfile_bounded(f, max, &text, &len), 0);
    assert_int_equal(len, max + 1); /* no more read than that */
    assert_int_equal(ftell(f), (long)(max + 1));
    free(text);
    fclose(f);
}

static void endless_input_stops_at_the_limit(void **state)
{
    (void)state;
    FILE *f = fopen("/dev/zero", "rb");
    assert_non_null(f);
    char *text = NULL;
    size_t len = 0;
    assert_int_equal(readfile_bounded(f, 1000, &text, &len), 0);
    assert_int_equal(len, 1001);
    free(text);
    fclose(f);
}

static void read_error_is_an_errno(void **state)
{
    (void)state;
    FILE *f = fopen("/", "rb"); /* opens, but reading a directory fails */
    assert_non_null(f);
    char *text = (char *)1;
    size_t len = 0;
    assert_int_equal(readfile_bounded(f, 1000, &text, &len), EISDIR);
    assert_null(text);
    fclose(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(read_whole_and_terminated),
        cmocka_unit_test(exactly_the_limit_fits_one_more_is_reported),
        cmocka_unit_test(endless_input_stops_at_the_limit),
        cmocka_unit_test(read_error_is_an_errno),
    };
    return cmocka_run_group_tests_name("readfile", tests, NULL, NULL);
}
