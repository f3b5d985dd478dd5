/*
 * options.h - the command line of the kv, text, vector and load suites: a
 * walk over argv that takes "--name value" and "--name=value" alike, and
 * the options of the engine-per-child runs they share (--repeat,
 * --timeout, --dir, --json, --keep).
 */
#ifndef SOP_BENCH_OPTIONS_H
#define SOP_BENCH_OPTIONS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "bench_util.h"

/** The walk: the current argument, split at '=' for "--name=value". */
typedef struct bench_args {
    int argc, i;
    char **argv;
    const char *arg;  /**< the argument as given ("--n=5") */
    const char *name; /**< its name ("--n") */
    const char *val;  /**< the value after '=', or NULL */
    char buf[64];
} bench_args;

/** Starts a walk over argv[1..argc-1]. */
void bench_args_init(bench_args *a, int argc, char **argv);
/** Moves to the next argument; returns 0 when there is none. */
int bench_args_next(bench_args *a);
/** 1 if the current option is named @p name. */
int bench_args_is(const bench_args *a, const char *name);
/** 1 if the current option is -h or --help. */
int bench_args_help(const bench_args *a);
/** The current option's value: after '=', else the next argument (taken);
 *  dies "NAME needs a value" when there is none. */
const char *bench_args_value(bench_args *a);
/** The value as a count (bench_parse_count). */
uint64_t bench_args_count(bench_args *a);
/** The value as seconds, 0..3600; dies with a message on anything else. */
double bench_args_seconds(bench_args *a);
/** Prints @p usage to stderr and dies "SUITE: unknown option 'ARG'". */
void bench_args_unknown(const bench_args *a, const char *suite,
                        void (*usage)(FILE *f)) BENCH_NORETURN;

/** Parses an --engines list: comma-separated names of the suite's @p nall
 *  engines (@p name_of gives each one's name), into indices @p idx (room
 *  for nall); returns their count. An unknown name goes to @p not_built,
 *  which dies with its own message if the engine exists but is not
 *  compiled in, else dies "unknown engine 'X' (see sop-bench SUITE --help)";
 *  a name listed twice and an empty list die too. */
size_t bench_parse_engines(const char *list, size_t nall, const char *(*name_of)(size_t i),
                           void (*not_built)(const char *name), const char *suite, size_t *idx);

/** The options of the engine-per-child runs. */
typedef struct bench_run_opts {
    uint64_t repeat;  /**< runs per engine, interleaved; the best reported */
    uint64_t timeout; /**< seconds an engine's child may run (0: no limit) */
    const char *dir;  /**< work directory */
    const char *json; /**< JSON lines file, or NULL */
    int keep;         /**< keep what the engines wrote */
} bench_run_opts;

#define BENCH_RUN_OPTS_DEFAULT                                                                     \
    {                                                                                              \
        .repeat = 1, .timeout = 3600, .dir = "/tmp/sop-bench"                                      \
    }

/** Takes the current option if it is one of bench_run_opts; returns 1 if
 *  it was. */
int bench_args_run_opt(bench_args *a, bench_run_opts *r);
/** After the options: --repeat 0 counts as 1; makes the work directory
 *  (dies if it cannot). */
void bench_run_opts_ready(bench_run_opts *r);

#endif /* SOP_BENCH_OPTIONS_H */
