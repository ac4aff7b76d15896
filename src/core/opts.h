/*
 * opts.h - a command's options as one table: parsing, checking and the
 * --help text come from the same entries (the model is git's
 * parse-options).
 *
 *     static int json;
 *     static int64_t since_ms;
 *     static const struct opt opts[] = {
 *         OPT_DUR("since", "DURATION", &since_ms, 30 * FS_DAY_MS, "rewind this far back: 90s, 30m, 2h, 7d"),
 *         OPT_BOOLEAN("json", &json, "print JSON"),
 *         OPT_END_MARK,
 *     };
 *     static const struct opt_command cmd = {.name = "replay", .usage = "...", .opts = opts, .shared = 1};
 *     int rest, rc;
 *     if (opt_parse_or_leave(&cmd, &cfg, argc, argv, &rest, &rc))
 *         return rc;
 *
 * Errors follow one convention for every command: "fleetsync NAME: what is
 * wrong" and a pointer to --help on stderr, exit status 2.  An option seen
 * twice keeps its last value, as getopt does; an OPT_STRINGS option
 * collects every value.  A table's option may take the name of a shared
 * option (status's repeatable --group): the table's entry wins.
 */
#ifndef FS_OPTS_H
#define FS_OPTS_H

#include "core/config.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

enum opt_type {
    OPT_END = 0,
    OPT_BOOL,     /* int *: set to 1 */
    OPT_SET_INT,  /* int *: set to min (several options setting one variable: the last wins) */
    OPT_STRING,   /* const char **: points into argv; when max > 0, min to max bytes long */
    OPT_STRINGS,  /* const char **: an array of max, *count of them: repeatable, each appends */
    OPT_INT,      /* int *: whole number in [min, max] */
    OPT_DOUBLE,   /* double *: finite number in [lo, hi] */
    OPT_WORD,     /* int *: the index of the argument in words (NULL-terminated) */
    OPT_DURATION, /* int64_t *: ms, core/timeparse's durations, at most max ms */
    OPT_CALLBACK, /* cb(value, arg): 0, or -1 with the reason in err */
    OPT_GROUP,    /* no option: a heading in the help ("MQTT:") */
};

struct opt {
    enum opt_type type;
    const char *name; /* long name, without "--" */
    const char *argh; /* the argument in the help ("N", "DURATION"); NULL: none */
    void *value;
    const char *help; /* "\n" starts a continuation line */
    long long min, max;
    /* OPT_CALLBACK: err gets what follows "--NAME " in the message
     * ("needs a duration such as 90s"). */
    int (*cb)(void *value, const char *arg, char *err, size_t err_size);
    const char *const *words; /* OPT_WORD */
    size_t *count;            /* OPT_STRINGS */
    /* Not NULL: the argument may be left out, and this one is used then
     * (help: "--watch [S]").  A value comes as "--name=value", or for
     * OPT_INT and OPT_DOUBLE as the next argument when that starts with a
     * digit. */
    const char *optional;
    double lo, hi; /* OPT_DOUBLE's range */
};

#define OPT_BOOLEAN(n, v, h)                                                                                           \
    {                                                                                                                  \
        .type = OPT_BOOL, .name = (n), .value = (v), .help = (h)                                                       \
    }
#define OPT_SET(n, v, k, h)                                                                                            \
    {                                                                                                                  \
        .type = OPT_SET_INT, .name = (n), .value = (v), .help = (h), .min = (k)                                        \
    }
#define OPT_STR(n, a, v, h)                                                                                            \
    {                                                                                                                  \
        .type = OPT_STRING, .name = (n), .argh = (a), .value = (v), .help = (h)                                        \
    }
#define OPT_STR_LEN(n, a, v, lo, hi, h)                                                                                \
    {                                                                                                                  \
        .type = OPT_STRING, .name = (n), .argh = (a), .value = (v), .help = (h), .min = (lo), .max = (hi)              \
    }
#define OPT_STR_LIST(n, a, v, cnt, cap, h)                                                                             \
    {                                                                                                                  \
        .type = OPT_STRINGS, .name = (n), .argh = (a), .value = (v), .help = (h), .max = (cap), .count = (cnt)         \
    }
#define OPT_INTEGER(n, a, v, lo, hi, h)                                                                                \
    {                                                                                                                  \
        .type = OPT_INT, .name = (n), .argh = (a), .value = (v), .help = (h), .min = (lo), .max = (hi)                 \
    }
#define OPT_INTEGER_OPTARG(n, a, v, lo, hi, dflt, h)                                                                   \
    {                                                                                                                  \
        .type = OPT_INT, .name = (n), .argh = (a), .value = (v), .help = (h), .min = (lo), .max = (hi),                \
        .optional = (dflt)                                                                                             \
    }
#define OPT_DBL(n, a, v, l, u, h)                                                                                      \
    {                                                                                                                  \
        .type = OPT_DOUBLE, .name = (n), .argh = (a), .value = (v), .help = (h), .lo = (l), .hi = (u)                  \
    }
#define OPT_WORDS(n, a, v, w, h)                                                                                       \
    {                                                                                                                  \
        .type = OPT_WORD, .name = (n), .argh = (a), .value = (v), .help = (h), .words = (w)                            \
    }
#define OPT_DUR(n, a, v, mx, h)                                                                                        \
    {                                                                                                                  \
        .type = OPT_DURATION, .name = (n), .argh = (a), .value = (v), .help = (h), .max = (mx)                         \
    }
#define OPT_CB(n, a, v, f, h)                                                                                          \
    {                                                                                                                  \
        .type = OPT_CALLBACK, .name = (n), .argh = (a), .value = (v), .help = (h), .cb = (f)                           \
    }
#define OPT_HEADING(title)                                                                                             \
    {                                                                                                                  \
        .type = OPT_GROUP, .help = (title)                                                                             \
    }
#define OPT_END_MARK                                                                                                   \
    {                                                                                                                  \
        .type = OPT_END                                                                                                \
    }

struct opt_command {
    const char *name;  /* "replay", "report avg-speed" */
    const char *usage; /* after "usage: "; "\n" separates forms */
    const char *about; /* what the command does, before the options; may be NULL */
    const char *after; /* examples, exit codes, after the options; may be NULL */
    const struct opt *opts;
    int shared; /* 1: the shared options of core/config.h too (cfg must then be given) */
    /* Not NULL: opt_parse sets bit i for each opts[i] on the command line
     * (after clearing it), so a command can tell which were given. */
    uint64_t *given;
    /* Not 0: --help lists only opts[i] with bit i set. */
    uint64_t shown;
    int no_args;     /* 1: an argument that is not an option is a usage error ("unexpected argument") */
    int stop_at_arg; /* 1: options end at the first argument that is not one (a command whose
                      * arguments name a subcommand with options of its own) */
};

enum { OPT_PARSED = 0, OPT_HELP = 1, OPT_USAGE_ERROR = 2 };

/* Parses argv[1..] (argv[0] is the command's name).  Returns OPT_PARSED with
 * *rest the index of the first argument that is not an option, OPT_HELP
 * after printing the help to stdout (-h, --help), or OPT_USAGE_ERROR after
 * saying what is wrong on stderr. */
int opt_parse(const struct opt_command *c, struct fs_config *cfg, int argc, char **argv, int *rest);

/* What a command does with opt_parse's answer (or that of a parse function
 * of its own that answers the same way): returns 0 for OPT_PARSED, the
 * command goes on (*rc untouched); or 1, the command is done with exit
 * status *rc: 0 after the help, 2 after a usage error. */
int opt_leave(int parsed, int *rc);

/* opt_parse, then opt_leave: one way for every command to say "parse, or
 * leave with the right exit status".
 *
 *     if (opt_parse_or_leave(&cmd, &cfg, argc, argv, &rest, &rc))
 *         goto out;
 */
int opt_parse_or_leave(const struct opt_command *c, struct fs_config *cfg, int argc, char **argv, int *rest, int *rc);

/* The --help text. */
void opt_usage(FILE *out, const struct opt_command *c);

/* Says "fleetsync NAME: <message>" and where the help is on stderr; returns
 * OPT_USAGE_ERROR, for the checks a command makes after opt_parse. */
int opt_error(const struct opt_command *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
