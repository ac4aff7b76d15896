/* Option tables (core/opts): parsing, range checks, shared options, help. */
#include "core/opts.h"
#include "core/timeparse.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

struct vals {
    int flag, n;
    const char *s;
    int64_t dur;
    int odd;
    double x;
};

static int odd_number(void *value, const char *arg, char *err, size_t err_size)
{
    long v;
    if (cfg_parse_long(arg, 0, 1000, &v) != 0 || v % 2 == 0) {
        snprintf(err, err_size, "'%s' is not an odd number up to 1000", arg);
        return -1;
    }
    *(int *)value = (int)v;
    return 0;
}

static struct vals v;
static const struct opt opts[] = {
    OPT_BOOLEAN("flag", &v.flag, "a flag"),
    OPT_INTEGER("n", "N", &v.n, 1, 10, "a number\nfrom 1 to 10"),
    OPT_STR("s", "TEXT", &v.s, "a string"),
    OPT_DUR("wait", "DURATION", &v.dur, TIME_DAY_MS, "a duration"),
    OPT_CB("odd", "N", &v.odd, odd_number, "an odd number"),
    OPT_HEADING("More:"),
    OPT_DBL("x", "X", &v.x, 0.5, 2, "a number from 0.5 to 2"),
    OPT_END_MARK,
};
static const struct opt_command cmd = {
    .name = "demo", .usage = "fleetsync demo [--flag] [--n N]\nfleetsync demo --s TEXT", .opts = opts, .shared = 1};

/* Runs opt_parse on a NULL-terminated list of arguments after the name. */
static int run(struct fs_config *cfg, int *rest, ...)
{
    static char *argv[32];
    int argc = 0;
    va_list ap;
    va_start(ap, rest);
    argv[argc++] = (char *)"demo";
    for (char *a; (a = va_arg(ap, char *)) != NULL;)
        argv[argc++] = a;
    va_end(ap);
    argv[argc] = NULL;
    memset(&v, 0, sizeof(v));
    cfg_init(cfg);
    return opt_parse(&cmd, cfg, argc, argv, rest);
}

static void every_kind_is_stored(void **state)
{
    (void)state;
    struct fs_config cfg;
    int rest = -1;
    assert_int_equal(run(&cfg, &rest, "--flag", "--n", "7", "--s=hello", "--wait", "5m", "--odd", "9", "--x", "1.25",
                         "pos", NULL),
                     OPT_PARSED);
    assert_true(v.x == 1.25);
    assert_int_equal(v.flag, 1);
    assert_int_equal(v.n, 7);
    assert_string_equal(v.s, "hello");
    assert_true(v.dur == 300000);
    assert_int_equal(v.odd, 9);
    assert_int_equal(rest, 11); /* the positional argument, moved after the options */
    cfg_release(&cfg);
}

static void shared_options_reach_the_config(void **state)
{
    (void)state;
    struct fs_config cfg;
    int rest;
    assert_int_equal(run(&cfg, &rest, "--brokers", "h:1", "--group", "g", "-X", "a=b", "--metrics-port", "-1", NULL),
                     OPT_PARSED);
    assert_string_equal(cfg.brokers, "h:1");
    assert_string_equal(cfg.group, "g");
    assert_int_equal(cfg.kafka_prop_count, 1);
    assert_int_equal(cfg.metrics_port, -1);
    cfg_release(&cfg);
}

static void bad_input_is_a_usage_error(void **state)
{
    (void)state;
    struct fs_config cfg;
    int rest;
    const char *bad[][3] = {
        {"--n", "11", NULL},     {"--n", "x", NULL},        {"--wait", "300", NULL}, {"--wait", "2d", NULL},
        {"--odd", "4", NULL},    {"--bogus", NULL, NULL},   {"--n", NULL, NULL},     {"-q", NULL, NULL},
        {"--flag=1", NULL, NULL}, {"--metrics-port", "x", NULL}, {"-X", "novalue", NULL},
        {"--x", "0.4", NULL},    {"--x", "2.01", NULL},     {"--x", "1e", NULL},     {"--x", "nan", NULL},
        {"--x", "", NULL},       {"--More:", NULL, NULL},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(run(&cfg, &rest, bad[i][0], bad[i][1], bad[i][2], NULL), OPT_USAGE_ERROR);
        cfg_release(&cfg);
    }
}

static void help_is_made_from_the_table(void **state)
{
    (void)state;
    struct fs_config cfg;
    int rest;
    assert_int_equal(run(&cfg, &rest, "--help", NULL), OPT_HELP);
    cfg_release(&cfg);
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    assert_non_null(f);
    opt_usage(f, &cmd);
    fclose(f);
    assert_non_null(strstr(text, "usage: fleetsync demo [--flag] [--n N]\n   or: fleetsync demo --s TEXT\n"));
    assert_non_null(strstr(text, "  --n N               a number\n                      from 1 to 10\n"));
    assert_non_null(strstr(text, "  --wait DURATION     a duration\n"));
    /* a heading stands on its own line among the options */
    assert_non_null(strstr(text, "an odd number\nMore:\n  --x X               a number from 0.5 to 2\n"));
    assert_non_null(strstr(text, "  -h, --help          this text\n"));
    assert_non_null(strstr(text, "--brokers LIST")); /* the shared options follow */
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(every_kind_is_stored),
        cmocka_unit_test(shared_options_reach_the_config),
        cmocka_unit_test(bad_input_is_a_usage_error),
        cmocka_unit_test(help_is_made_from_the_table),
    };
    return cmocka_run_group_tests_name("opts", tests, NULL, NULL);
}
