/*
 * opts.h - a command's options as one table: parsing, checking and the
 * --help text come from the same entries (the model is git's
 * parse-options).
 *
 *     static int json;
 *     static int64_t since_ms;
 *     static const struct opt opts[] = {
 *         OPT_DUR("since", "DURATION", &since_ms, 30 * TIME_DAY_MS, "rewind this far back: 90s, 30m, 2h, 7d"),
 *         OPT_BOOLEAN("json", &json, "print JSON"),
 *         OPT_END_MARK,
 *     };
 *     static const struct opt_command cmd = {.name = "replay", .usage = "...", .opts = opts, .shared = 1};
 *     int rest, rc = opt_parse(&cmd, &cfg, argc, argv, &rest);
 *     if (rc != OPT_PARSED)
 *         return rc == OPT_HELP ? 0 : 2;
 *
 * Errors follow one convention for every command: "fleetsync NAME: what is
 * wrong" and a pointer to --help on stderr, exit status 2.  An option seen
 * twice keeps its last value, as getopt does.
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
    OPT_STRING,   /* const char **: points into argv */
    OPT_INT,      /* int *: whole number in [min, max] */
    OPT_DURATION, /* int64_t *: ms, core/timeparse's durations, at most max ms */
    OPT_CALLBACK, /* cb(value, arg): 0, or -1 with the reason in err */
    OPT_DOUBLE,   /* double *: a number in [lo, hi] */
    OPT_GROUP,    /* no option: a heading in the help ("MQTT:") */
};

struct opt {
    enum opt_type type;
    const char *name; /* long name, without "--" */
    const char *argh; /* the argument in the help ("N", "DURATION"); NULL: none */
    void *value;
    const char *help; /* "\n" starts a continuation line */
    long long min, max;
    int (*cb)(void *value, const char *arg, char *err, size_t err_size);
    double lo, hi; /* OPT_DOUBLE's range */
};

#define OPT_BOOLEAN(n, v, h)            {OPT_BOOL, (n), NULL, (v), (h), 0, 0, NULL, 0, 0}
#define OPT_STR(n, a, v, h)             {OPT_STRING, (n), (a), (v), (h), 0, 0, NULL, 0, 0}
#define OPT_INTEGER(n, a, v, lo, hi, h) {OPT_INT, (n), (a), (v), (h), (lo), (hi), NULL, 0, 0}
#define OPT_DUR(n, a, v, max, h)        {OPT_DURATION, (n), (a), (v), (h), 0, (max), NULL, 0, 0}
#define OPT_CB(n, a, v, cb, h)          {OPT_CALLBACK, (n), (a), (v), (h), 0, 0, (cb), 0, 0}
#define OPT_DBL(n, a, v, lo, hi, h)     {OPT_DOUBLE, (n), (a), (v), (h), 0, 0, NULL, (lo), (hi)}
#define OPT_HEADING(title)              {OPT_GROUP, NULL, NULL, NULL, (title), 0, 0, NULL, 0, 0}
#define OPT_END_MARK                    {OPT_END, NULL, NULL, NULL, NULL, 0, 0, NULL, 0, 0}

struct opt_command {
    const char *name;  /* "replay", "report avg-speed" */
    const char *usage; /* after "usage: "; "\n" separates forms */
    const char *about; /* what the command does, before the options; may be NULL */
    const char *after; /* examples, exit codes, after the options; may be NULL */
    const struct opt *opts;
    int shared; /* 1: the shared options of core/config.h too (cfg must then be given) */
};

enum { OPT_PARSED = 0, OPT_HELP = 1, OPT_USAGE_ERROR = 2 };

/* Parses argv[1..] (argv[0] is the command's name).  Returns OPT_PARSED with
 * *rest the index of the first argument that is not an option, OPT_HELP
 * after printing the help to stdout (-h, --help), or OPT_USAGE_ERROR after
 * saying what is wrong on stderr. */
int opt_parse(const struct opt_command *c, struct fs_config *cfg, int argc, char **argv, int *rest);

/* The --help text. */
void opt_usage(FILE *out, const struct opt_command *c);

/* Says "fleetsync NAME: <message>" and where the help is on stderr; returns
 * OPT_USAGE_ERROR, for the checks a command makes after opt_parse. */
int opt_error(const struct opt_command *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
