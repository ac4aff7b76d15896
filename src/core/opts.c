/*
 * opts.c - option tables: parsing with getopt_long, checks, help (see
 * opts.h).
 */
#include "core/opts.h"

#include "core/timeparse.h"

#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

/* getopt_long codes of a table's entries: OPT_CODE_BASE + index, above the
 * shared options' codes of core/config.h. */
#define OPT_CODE_BASE 2000
#define OPT_MAX       64
#define HELP_COLUMN   22 /* where an option's help starts */

static const struct option shared_longopts[] = {CFG_LONG_OPTIONS};
#define SHARED_COUNT (sizeof(shared_longopts) / sizeof(shared_longopts[0]))

static size_t count(const struct opt *o)
{
    size_t n = 0;
    while (o && o[n].type != OPT_END)
        n++;
    return n;
}

int opt_error(const struct opt_command *c, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "fleetsync %s: ", c->name);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n(fleetsync %s --help for the options)\n", c->name);
    return OPT_USAGE_ERROR;
}

/* Stores arg into o's value.  Returns 0, or -1 with the reason in err. */
static int store(const struct opt *o, const char *arg, char *err, size_t err_size)
{
    switch (o->type) {
    case OPT_BOOL:
        *(int *)o->value = 1;
        return 0;
    case OPT_STRING:
        *(const char **)o->value = arg;
        return 0;
    case OPT_INT: {
        long v;
        if (cfg_parse_long(arg, (long)o->min, (long)o->max, &v) != 0) {
            snprintf(err, err_size, "--%s: '%s' is not a whole number from %lld to %lld", o->name, arg, o->min,
                     o->max);
            return -1;
        }
        *(int *)o->value = (int)v;
        return 0;
    }
    case OPT_DURATION: {
        char why[160];
        if (time_parse_duration(arg, o->max, (int64_t *)o->value, why, sizeof(why)) != 0) {
            snprintf(err, err_size, "--%s: %s", o->name, why);
            return -1;
        }
        return 0;
    }
    case OPT_DOUBLE: {
        char *end;
        errno = 0;
        double d = strtod(arg, &end);
        if (errno || end == arg || *end || !(d >= o->lo && d <= o->hi)) {
            snprintf(err, err_size, "--%s: '%s' is not a number from %g to %g", o->name, arg, o->lo, o->hi);
            return -1;
        }
        *(double *)o->value = d;
        return 0;
    }
    case OPT_CALLBACK: {
        char why[256] = "";
        if (o->cb(o->value, arg, why, sizeof(why)) != 0) {
            snprintf(err, err_size, "--%s: %s", o->name, why[0] ? why : "invalid value");
            return -1;
        }
        return 0;
    }
    case OPT_END:
    case OPT_GROUP:
        break;
    }
    snprintf(err, err_size, "--%s: unknown option type", o->name);
    return -1;
}

int opt_parse(const struct opt_command *c, struct fs_config *cfg, int argc, char **argv, int *rest)
{
    struct option longopts[OPT_MAX + SHARED_COUNT + 2];
    size_t n = count(c->opts), k = 0;
    if (n > OPT_MAX)
        return opt_error(c, "more than %d options in the command's table", OPT_MAX);
    for (size_t i = 0; i < n; i++)
        if (c->opts[i].type != OPT_GROUP)
            longopts[k++] = (struct option){c->opts[i].name, c->opts[i].argh ? required_argument : no_argument,
                                            NULL, OPT_CODE_BASE + (int)i};
    longopts[k++] = (struct option){"help", no_argument, NULL, 'h'};
    if (c->shared)
        for (size_t i = 0; i < SHARED_COUNT; i++)
            longopts[k++] = shared_longopts[i];
    longopts[k] = (struct option){NULL, 0, NULL, 0};

    char err[512];
    int code;
    optind = 1;
    opterr = 0; /* our own messages */
    while ((code = getopt_long(argc, argv, c->shared ? ":h" CFG_SHORT_OPTIONS : ":h", longopts, NULL)) != -1) {
        if (code == 'h') {
            opt_usage(stdout, c);
            return OPT_HELP;
        }
        if (code == '?') {
            if (optopt)
                return opt_error(c, "unknown option -%c", optopt);
            return opt_error(c, "unknown option %s", argv[optind - 1]);
        }
        if (code == ':')
            return opt_error(c, "%s needs a value", argv[optind - 1]);
        if (code >= OPT_CODE_BASE && code < OPT_CODE_BASE + (int)n) {
            if (store(&c->opts[code - OPT_CODE_BASE], optarg, err, sizeof(err)) != 0)
                return opt_error(c, "%s", err);
            continue;
        }
        int r = c->shared && cfg ? cfg_option(cfg, code, optarg, err, sizeof(err)) : 0;
        if (r < 0)
            return opt_error(c, "%s", err);
        if (r == 0)
            return opt_error(c, "unknown option %s", argv[optind - 1]);
    }
    *rest = optind;
    return OPT_PARSED;
}

/* Prints text with every line after the first indented by indent. */
static void print_indented(FILE *out, const char *text, int indent)
{
    for (const char *p = text; *p;) {
        size_t len = strcspn(p, "\n");
        fprintf(out, "%.*s\n", (int)len, p);
        p += len;
        if (*p == '\n' && *++p)
            fprintf(out, "%*s", indent, "");
    }
}

void opt_usage(FILE *out, const struct opt_command *c)
{
    const char *u = c->usage;
    for (int first = 1; u && *u; first = 0) {
        size_t len = strcspn(u, "\n");
        fprintf(out, "%s%.*s\n", first ? "usage: " : "   or: ", (int)len, u);
        u += len + (u[len] == '\n');
    }
    if (c->about)
        fprintf(out, "\n%s\n", c->about);
    fprintf(out, "\nOptions:\n");
    for (const struct opt *o = c->opts; o && o->type != OPT_END; o++) {
        if (o->type == OPT_GROUP) {
            fprintf(out, "%s\n", o->help);
            continue;
        }
        int w = fprintf(out, "  --%s%s%s", o->name, o->argh ? " " : "", o->argh ? o->argh : "");
        if (w >= HELP_COLUMN - 1)
            fprintf(out, "\n%*s", HELP_COLUMN, "");
        else
            fprintf(out, "%*s", HELP_COLUMN - w, "");
        print_indented(out, o->help ? o->help : "", HELP_COLUMN);
    }
    fprintf(out, "  -h, --help%*s%s\n", HELP_COLUMN - 12, "", "this text");
    if (c->after)
        fprintf(out, "\n%s\n", c->after);
    if (c->shared)
        fprintf(out, "\n%s", cfg_options_help);
}
