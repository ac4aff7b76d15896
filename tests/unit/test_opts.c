/* Option tables (core/opts): parsing, range checks, shared options, help. */
#include "core/opts.h"

#include "core/clock.h"
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
        snprintf(err, err_size, "needs an odd number up to 1000, not '%s'", arg);
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
    OPT_DUR("wait", "DURATION", &v.dur, FS_DAY_MS, "a duration"),
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
    assert_int_equal(
        run(&cfg, &rest, "--flag", "--n", "7", "--s=hello", "--wait", "5m", "--odd", "9", "--x", "1.25", "pos", NULL),
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
        {"--n", "11", NULL},      {"--n", "x", NULL},
        {"--wait", "300", NULL},  {"--wait", "2d", NULL},
        {"--odd", "4", NULL},     {"--bogus", NULL, NULL},
        {"--n", NULL, NULL},      {"-q", NULL, NULL},
        {"--flag=1", NULL, NULL}, {"--metrics-port", "x", NULL},
        {"-X", "novalue", NULL},  {"--x", "0.4", NULL},
        {"--x", "2.01", NULL},    {"--x", "1e", NULL},
        {"--x", "nan", NULL},     {"--x", "", NULL},
        {"--More:", NULL, NULL},
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

/* ---- a second table: the kinds a report, an invoice and status need ---- */

enum { FMT_TABLE, FMT_CSV, FMT_JSON };
static const char *const formats[] = {"table", "csv", "json", NULL};
static struct {
    int out, watch;
    double rate;
    const char *id;
    const char *groups[3];
    size_t group_count;
} w;
static uint64_t given;
enum { W_FORMAT, W_CSV, W_JSON, W_WATCH, W_RATE, W_ID, W_GROUP };
static const struct opt wopts[] = {
    [W_FORMAT] = OPT_WORDS("format", "F", &w.out, formats, "table, csv or json"),
    [W_CSV] = OPT_SET("csv", &w.out, FMT_CSV, "--format csv"),
    [W_JSON] = OPT_SET("json", &w.out, FMT_JSON, "--format json"),
    [W_WATCH] = OPT_INTEGER_OPTARG("watch", "S", &w.watch, 1, 3600, "2", "every S seconds (default 2)"),
    [W_RATE] = OPT_DBL("rate", "X", &w.rate, 0, 1000, "a rate"),
    [W_ID] = OPT_STR_LEN("id", "ID", &w.id, 1, 8, "an id"),
    [W_GROUP] = OPT_STR_LIST("group", "G", w.groups, &w.group_count, 3, "a group (repeatable)"),
    OPT_END_MARK,
};
static const struct opt_command wcmd = {
    .name = "kinds", .usage = "fleetsync kinds", .opts = wopts, .shared = 1, .given = &given};

static int wrun(int *rest, ...)
{
    static char *argv[32];
    int argc = 0;
    va_list ap;
    va_start(ap, rest);
    argv[argc++] = (char *)"kinds";
    for (char *a; (a = va_arg(ap, char *)) != NULL;)
        argv[argc++] = a;
    va_end(ap);
    argv[argc] = NULL;
    memset(&w, 0, sizeof(w));
    struct fs_config cfg;
    cfg_init(&cfg);
    int rc = opt_parse(&wcmd, &cfg, argc, argv, rest);
    cfg_release(&cfg);
    return rc;
}

static void words_and_set_options_share_a_variable_and_the_last_wins(void **state)
{
    (void)state;
    int rest;
    assert_int_equal(wrun(&rest, "--format", "json", NULL), OPT_PARSED);
    assert_int_equal(w.out, FMT_JSON);
    assert_int_equal(wrun(&rest, "--format=csv", "--json", NULL), OPT_PARSED);
    assert_int_equal(w.out, FMT_JSON);
    assert_int_equal(wrun(&rest, "--json", "--format", "table", NULL), OPT_PARSED);
    assert_int_equal(w.out, FMT_TABLE);
    assert_int_equal(wrun(&rest, "--csv", NULL), OPT_PARSED);
    assert_int_equal(w.out, FMT_CSV);
    assert_int_equal(wrun(&rest, "--format", "xml", NULL), OPT_USAGE_ERROR);
    assert_int_equal(wrun(&rest, "--format", "", NULL), OPT_USAGE_ERROR);
}

static void an_optional_argument_takes_a_following_number_or_its_default(void **state)
{
    (void)state;
    int rest;
    assert_int_equal(wrun(&rest, "--watch", NULL), OPT_PARSED);
    assert_int_equal(w.watch, 2);
    assert_int_equal(wrun(&rest, "--watch", "5", NULL), OPT_PARSED);
    assert_int_equal(w.watch, 5);
    assert_int_equal(rest, 3);
    assert_int_equal(wrun(&rest, "--watch=7", "--json", NULL), OPT_PARSED);
    assert_int_equal(w.watch, 7);
    assert_int_equal(wrun(&rest, "--watch", "extra", NULL), OPT_PARSED);
    assert_int_equal(w.watch, 2); /* a word is not its value: it is left as an argument */
    assert_int_equal(rest, 2);
    assert_int_equal(wrun(&rest, "--watch", "0", NULL), OPT_USAGE_ERROR);
    assert_int_equal(wrun(&rest, "--watch=x", NULL), OPT_USAGE_ERROR);
}

static void a_repeatable_option_collects_every_value_up_to_its_bound(void **state)
{
    (void)state;
    int rest;
    assert_int_equal(wrun(&rest, "--group", "a", "--group=b", NULL), OPT_PARSED);
    assert_int_equal(w.group_count, 2);
    assert_string_equal(w.groups[0], "a");
    assert_string_equal(w.groups[1], "b");
    assert_int_equal(wrun(&rest, "--group", "a", "--group", "b", "--group", "c", "--group", "d", NULL),
                     OPT_USAGE_ERROR);
    assert_int_equal(w.group_count, 3); /* never past the array */
}

static void a_table_option_hides_the_shared_option_of_its_name(void **state)
{
    (void)state;
    struct fs_config cfg;
    int rest;
    char *argv[] = {(char *)"kinds", (char *)"--group", (char *)"g1", NULL};
    memset(&w, 0, sizeof(w));
    cfg_init(&cfg);
    assert_int_equal(opt_parse(&wcmd, &cfg, 3, argv, &rest), OPT_PARSED);
    assert_int_equal(w.group_count, 1);
    assert_null(cfg.group);
    cfg_release(&cfg);
}

static void doubles_are_finite_and_in_range(void **state)
{
    (void)state;
    int rest;
    assert_int_equal(wrun(&rest, "--rate", "0.35", NULL), OPT_PARSED);
    assert_true(w.rate == 0.35);
    assert_int_equal(wrun(&rest, "--rate", "1000", NULL), OPT_PARSED);
    const char *bad[] = {"-0.5", "1000.01", "x", "", "1e400", "nan", "inf", "0.5x"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(wrun(&rest, "--rate", bad[i], NULL), OPT_USAGE_ERROR);
}

static void a_string_can_have_a_length_bound(void **state)
{
    (void)state;
    int rest;
    assert_int_equal(wrun(&rest, "--id", "TRK-1", NULL), OPT_PARSED);
    assert_string_equal(w.id, "TRK-1");
    assert_int_equal(wrun(&rest, "--id", "", NULL), OPT_USAGE_ERROR);
    assert_int_equal(wrun(&rest, "--id", "123456789", NULL), OPT_USAGE_ERROR);
}

static void given_tells_which_options_were_on_the_command_line(void **state)
{
    (void)state;
    int rest;
    assert_int_equal(wrun(&rest, "--json", "--group", "a", "--brokers", "h:1", NULL), OPT_PARSED);
    assert_true(given == ((1u << W_JSON) | (1u << W_GROUP)));
    assert_int_equal(wrun(&rest, NULL), OPT_PARSED);
    assert_true(given == 0);
}

static void help_shows_optional_arguments_and_only_the_shown_options(void **state)
{
    (void)state;
    struct opt_command c = wcmd;
    c.shown = (1u << W_WATCH) | (1u << W_RATE);
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    assert_non_null(f);
    opt_usage(f, &c);
    fclose(f);
    assert_non_null(strstr(text, "  --watch [S]         every S seconds (default 2)\n"));
    assert_non_null(strstr(text, "  --rate X            a rate\n"));
    assert_null(strstr(text, "--format"));
    assert_null(strstr(text, "--id"));
    free(text);
}

static int top_flag;
static const struct opt top_opts[] = {
    OPT_BOOLEAN("verbose", &top_flag, "say more"),
    OPT_END_MARK,
};
static const struct opt_command top = {
    .name = "top", .usage = "fleetsync top [--verbose] SUB [options]", .opts = top_opts, .stop_at_arg = 1};

static void stop_at_arg_leaves_the_subcommand_its_options(void **state)
{
    (void)state;
    struct fs_config cfg;
    char *argv[] = {"top", "--verbose", "demo", "pos", "--n", "3", NULL};
    int rest = -1;
    top_flag = 0;
    assert_int_equal(opt_parse(&top, NULL, 6, argv, &rest), OPT_PARSED);
    assert_int_equal(top_flag, 1);
    assert_int_equal(rest, 2); /* "demo": its --n is not the parent's unknown option */
    assert_string_equal(argv[3], "pos");

    /* The subcommand's own parse permutes again: --n after a positional argument counts. */
    memset(&v, 0, sizeof(v));
    cfg_init(&cfg);
    assert_int_equal(opt_parse(&cmd, &cfg, 4, argv + rest, &rest), OPT_PARSED);
    assert_int_equal(v.n, 3);
    assert_int_equal(rest, 3);
    cfg_release(&cfg);
}

static void range_error_names_the_option_and_its_range(void **state)
{
    (void)state;
    struct fs_config cfg;
    int rest;
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    assert_non_null(f);
    FILE *saved = stderr;
    stderr = f;
    int rc = run(&cfg, &rest, "--n", "0", NULL);
    stderr = saved;
    fclose(f);
    cfg_release(&cfg);
    assert_int_equal(rc, OPT_USAGE_ERROR);
    assert_non_null(strstr(text, "fleetsync demo: --n is a whole number from 1 to 10, not '0'\n"));
    free(text);
}

static void no_args_refuses_a_leftover_argument(void **state)
{
    (void)state;
    static int flag;
    static const struct opt o[] = {OPT_BOOLEAN("flag", &flag, "a flag"), OPT_END_MARK};
    const struct opt_command c = {.name = "plain", .usage = "fleetsync plain", .opts = o, .no_args = 1};
    char *ok[] = {"plain", "--flag", NULL}, *extra[] = {"plain", "--flag", "stray", NULL};
    int rest = -1;
    assert_int_equal(opt_parse(&c, NULL, 2, ok, &rest), OPT_PARSED);
    assert_int_equal(rest, 2);
    assert_int_equal(opt_parse(&c, NULL, 3, extra, &rest), OPT_USAGE_ERROR);
}

static void leaving_gives_the_exit_status_of_help_and_usage_errors(void **state)
{
    (void)state;
    int rc = 7;
    assert_int_equal(opt_leave(OPT_PARSED, &rc), 0);
    assert_int_equal(rc, 7);
    assert_int_equal(opt_leave(OPT_HELP, &rc), 1);
    assert_int_equal(rc, 0);
    rc = 7;
    assert_int_equal(opt_leave(OPT_USAGE_ERROR, &rc), 1);
    assert_int_equal(rc, 2);

    static int flag;
    static const struct opt o[] = {OPT_BOOLEAN("flag", &flag, "a flag"), OPT_END_MARK};
    const struct opt_command c = {.name = "plain", .usage = "fleetsync plain", .opts = o, .no_args = 1};
    char *ok[] = {"plain", "--flag", NULL}, *bad[] = {"plain", "--nope", NULL};
    int rest = -1;
    rc = 7;
    assert_int_equal(opt_parse_or_leave(&c, NULL, 2, ok, &rest, &rc), 0);
    assert_int_equal(rc, 7);
    assert_int_equal(rest, 2);
    assert_int_equal(opt_parse_or_leave(&c, NULL, 2, bad, &rest, &rc), 1);
    assert_int_equal(rc, 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(every_kind_is_stored),
        cmocka_unit_test(shared_options_reach_the_config),
        cmocka_unit_test(bad_input_is_a_usage_error),
        cmocka_unit_test(help_is_made_from_the_table),
        cmocka_unit_test(words_and_set_options_share_a_variable_and_the_last_wins),
        cmocka_unit_test(an_optional_argument_takes_a_following_number_or_its_default),
        cmocka_unit_test(a_repeatable_option_collects_every_value_up_to_its_bound),
        cmocka_unit_test(a_table_option_hides_the_shared_option_of_its_name),
        cmocka_unit_test(doubles_are_finite_and_in_range),
        cmocka_unit_test(a_string_can_have_a_length_bound),
        cmocka_unit_test(given_tells_which_options_were_on_the_command_line),
        cmocka_unit_test(help_shows_optional_arguments_and_only_the_shown_options),
        cmocka_unit_test(stop_at_arg_leaves_the_subcommand_its_options),
        cmocka_unit_test(range_error_names_the_option_and_its_range),
        cmocka_unit_test(no_args_refuses_a_leftover_argument),
        cmocka_unit_test(leaving_gives_the_exit_status_of_help_and_usage_errors),
    };
    return cmocka_run_group_tests_name("opts", tests, NULL, NULL);
}
