/* The PostgreSQL sink's options (core/pgsink.h PGSINK_OPTS) as entries of a
 * command's option table: history and billing both splice them in. */
#include "core/opts.h"
#include "core/pgsink.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

static struct pgsink_options so;
static const struct opt opts[] = {
    PGSINK_OPTS(&so),
    OPT_END_MARK,
};
static const struct opt_command cmd = {.name = "sink", .usage = "fleetsync sink [options]", .opts = opts};

/* Runs opt_parse on a NULL-terminated list of arguments after the name,
 * from the defaults history and billing start with; what it says on stderr
 * goes to *said (freed by the caller). */
static int run(char **said, ...)
{
    static char *argv[16];
    int argc = 0, rest;
    size_t len = 0;
    va_list ap;
    va_start(ap, said);
    argv[argc++] = (char *)"sink";
    for (char *a; (a = va_arg(ap, char *)) != NULL;)
        argv[argc++] = a;
    va_end(ap);
    argv[argc] = NULL;
    so = (struct pgsink_options){.max_batch = 20000, .flush_ms = 500, .start = PGSINK_START_EARLIEST};
    FILE *f = open_memstream(said, &len);
    assert_non_null(f);
    FILE *saved = stderr;
    stderr = f;
    int rc = opt_parse(&cmd, NULL, argc, argv, &rest);
    stderr = saved;
    fclose(f);
    return rc;
}

static void the_defaults_stay_without_options(void **state)
{
    (void)state;
    char *said = NULL;
    assert_int_equal(run(&said, NULL), OPT_PARSED);
    assert_int_equal(so.max_batch, 20000);
    assert_int_equal(so.flush_ms, 500);
    assert_int_equal(so.start, PGSINK_START_EARLIEST);
    free(said);
}

static void each_option_fills_its_field(void **state)
{
    (void)state;
    char *said = NULL;
    assert_int_equal(run(&said, "--max-batch", "1000000", "--flush-ms=1", "--start", "latest", NULL), OPT_PARSED);
    assert_int_equal(so.max_batch, 1000000);
    assert_int_equal(so.flush_ms, 1);
    assert_int_equal(so.start, PGSINK_START_LATEST);
    assert_string_equal(pgsink_start_words[so.start], "latest");
    free(said);
}

static void out_of_range_values_are_usage_errors_that_name_the_range(void **state)
{
    (void)state;
    char *said = NULL;
    assert_int_equal(run(&said, "--max-batch", "0", NULL), OPT_USAGE_ERROR);
    assert_non_null(strstr(said, "fleetsync sink: --max-batch is a whole number from 1 to 1000000, not '0'"));
    free(said);
    said = NULL;
    assert_int_equal(run(&said, "--flush-ms", "600001", NULL), OPT_USAGE_ERROR);
    assert_non_null(strstr(said, "--flush-ms is a whole number from 1 to 600000"));
    free(said);
}

static void start_is_earliest_or_latest(void **state)
{
    (void)state;
    char *said = NULL;
    assert_int_equal(run(&said, "--start", "middle", NULL), OPT_USAGE_ERROR);
    assert_non_null(strstr(said, "--start: 'middle' is not one of earliest, latest"));
    assert_int_equal(so.start, PGSINK_START_EARLIEST);
    free(said);
}

static void help_lists_the_sink_options(void **state)
{
    (void)state;
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    assert_non_null(f);
    opt_usage(f, &cmd);
    fclose(f);
    assert_non_null(strstr(text, "  --max-batch N       messages per transaction at most (default 20000)\n"));
    assert_non_null(strstr(text, "  --flush-ms MS       the oldest message waits at most this long (default 500)\n"));
    assert_non_null(strstr(text, "  --start earliest|latest\n"));
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(the_defaults_stay_without_options),
        cmocka_unit_test(each_option_fills_its_field),
        cmocka_unit_test(out_of_range_values_are_usage_errors_that_name_the_range),
        cmocka_unit_test(start_is_earliest_or_latest),
        cmocka_unit_test(help_lists_the_sink_options),
    };
    return cmocka_run_group_tests_name("pgsink options", tests, NULL, NULL);
}
