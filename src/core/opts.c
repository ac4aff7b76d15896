/*
 * opts.c - option tables: parsing with getopt_long, checks, help (see
 * opts.h).
 */
#include "core/opts.h"

#include "core/timeparse.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

/* getopt_long codes of a table's entries: OPT_CODE_BASE + index, above the
 * shared options' codes of core/config.h. */
#define OPT_CODE_BASE 2000
#define OPT_MAX 64
#define HELP_COLUMN 22 /* where an option's help starts */

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
    case OPT_SET_INT:
        *(int *)o->value = (int)o->min;
        return 0;
    case OPT_STRING: {
        size_t len = strlen(arg);
        if (o->max > 0 && (len < (size_t)o->min || len > (size_t)o->max)) {
            snprintf(err, err_size, "--%s: needs %lld to %lld bytes, not %zu", o->name, o->min, o->max, len);
            return -1;
        }
        *(const char **)o->value = arg;
        return 0;
    }
    case OPT_STRINGS:
        if (*o->count >= (size_t)o->max) {
            snprintf(err, err_size, "--%s: at most %lld of them", o->name, o->max);
            return -1;
        }
        ((const char **)o->value)[(*o->count)++] = arg;
        return 0;
    case OPT_DOUBLE: {
        char *end;
        errno = 0;
        double v = strtod(arg, &end);
        if (errno || end == arg || *end || !isfinite(v) || v < o->lo || v > o->hi) {
            snprintf(err, err_size, "--%s: '%s' is not a number from %g to %g", o->name, arg, o->lo, o->hi);
            return -1;
        }
        *(double *)o->value = v;
        return 0;
    }
    case OPT_WORD: {
        size_t len = 0;
        for (int i = 0; o->words[i]; i++) {
            if (strcmp(arg, o->words[i]) == 0) {
                *(int *)o->value = i;
                return 0;
            }
        }
        len = (size_t)snprintf(err, err_size, "--%s: '%s' is not one of ", o->name, arg);
        for (int i = 0; o->words[i] && len < err_size; i++)
            len += (size_t)snprintf(err + len, err_size - len, "%s%s", i ? ", " : "", o->words[i]);
        return -1;
    }
    case OPT_INT: {
        long v;
        if (cfg_parse_long(arg, (long)o->min, (long)o->max, &v) != 0) {
            snprintf(err, err_size, "--%s is a whole number from %lld to %lld, not '%s'", o->name, o->min, o->max, arg);
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
    case OPT_CALLBACK: {
        char why[256] = "";
        if (o->cb(o->value, arg, why, sizeof(why)) != 0) {
            snprintf(err, err_size, "--%s %s", o->name, why[0] ? why : "has an invalid value");
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
    for (size_t i = 0; i < n; i++) {
        const struct opt *o = &c->opts[i];
        if (o->type == OPT_GROUP)
            continue;
        int has_arg = !o->argh ? no_argument : o->optional ? optional_argument : required_argument;
        longopts[k++] = (struct option){o->name, has_arg, NULL, OPT_CODE_BASE + (int)i};
    }
    if (c->given)
        *c->given = 0;
    longopts[k++] = (struct option){"help", no_argument, NULL, 'h'};
    if (c->shared)
        for (size_t i = 0; i < SHARED_COUNT; i++)
            longopts[k++] = shared_longopts[i];
    longopts[k] = (struct option){NULL, 0, NULL, 0};

    char err[512];
    int code;
    /* 0, not 1: glibc then reads the optstring's ordering again ('+' or
     * not), which a command parsing after its parent command needs. */
    optind = 0;
    opterr = 0; /* our own messages */
    const char *shortopts = c->shared ? (c->stop_at_arg ? "+:h" CFG_SHORT_OPTIONS : ":h" CFG_SHORT_OPTIONS)
                                      : (c->stop_at_arg ? "+:h" : ":h");
    while ((code = getopt_long(argc, argv, shortopts, longopts, NULL)) != -1) {
        if (code == 'h') {
            opt_usage(stdout, c);
            return OPT_HELP;
        }
        if (code == '?') {
            /* optopt is a short option's letter; for a long option given a
             * value it takes none of, it is the option's code */
            if (optopt > 0 && optopt < 128)
                return opt_error(c, "unknown option -%c", optopt);
            return opt_error(c, "unknown option %s", argv[optind - 1]);
        }
        if (code == ':')
            return opt_error(c, "%s needs a value", argv[optind - 1]);
        if (code >= OPT_CODE_BASE && code < OPT_CODE_BASE + (int)n) {
            const struct opt *o = &c->opts[code - OPT_CODE_BASE];
            const char *arg = optarg;
            if (o->optional && !arg) {
                /* "--watch 5" as well as "--watch=5": a number that follows is the value. */
                if ((o->type == OPT_INT || o->type == OPT_DOUBLE) && optind < argc && argv[optind][0] >= '0' &&
                    argv[optind][0] <= '9')
                    arg = argv[optind++];
                else
                    arg = o->optional;
            }
            if (store(o, arg, err, sizeof(err)) != 0)
                return opt_error(c, "%s", err);
            if (c->given)
                *c->given |= (uint64_t)1 << (code - OPT_CODE_BASE);
            continue;
        }
        int r = c->shared && cfg ? cfg_option(cfg, code, optarg, err, sizeof(err)) : 0;
        if (r < 0)
            return opt_error(c, "%s", err);
        if (r == 0)
            return opt_error(c, "unknown option %s", argv[optind - 1]);
    }
    if (c->no_args && optind < argc)
        return opt_error(c, "unexpected argument '%s'", argv[optind]);
    *rest = optind;
    return OPT_PARSED;
}

int opt_leave(int parsed, int *rc)
{
    switch (parsed) {
    case OPT_PARSED:
        return 0;
    case OPT_HELP:
        *rc = 0;
        return 1;
    default:
        *rc = 2;
        return 1;
    }
}

int opt_parse_or_leave(const struct opt_command *c, struct fs_config *cfg, int argc, char **argv, int *rest, int *rc)
{
    return opt_leave(opt_parse(c, cfg, argc, argv, rest), rc);
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
    for (size_t i = 0; c->opts && c->opts[i].type != OPT_END; i++) {
        const struct opt *o = &c->opts[i];
        if (c->shown && !(c->shown & ((uint64_t)1 << i)))
            continue;
        if (o->type == OPT_GROUP) {
            fprintf(out, "%s\n", o->help);
            continue;
        }
        int w = o->argh ? fprintf(out, o->optional ? "  --%s [%s]" : "  --%s %s", o->name, o->argh)
                        : fprintf(out, "  --%s", o->name);
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
