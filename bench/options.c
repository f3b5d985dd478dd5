/* options.c - see options.h */
#include "options.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "bench_util.h"

void bench_args_init(bench_args *a, int argc, char **argv)
{
    memset(a, 0, sizeof *a);
    a->argc = argc;
    a->argv = argv;
}

int bench_args_next(bench_args *a)
{
    if (++a->i >= a->argc)
        return 0;
    a->arg = a->name = a->argv[a->i];
    a->val = NULL;
    const char *eq = strchr(a->arg, '=');
    if (strncmp(a->arg, "--", 2) == 0 && eq && (size_t)(eq - a->arg) < sizeof a->buf) {
        memcpy(a->buf, a->arg, (size_t)(eq - a->arg));
        a->buf[eq - a->arg] = '\0';
        a->val = eq + 1;
        a->name = a->buf;
    }
    return 1;
}

int bench_args_is(const bench_args *a, const char *name) { return strcmp(a->name, name) == 0; }

int bench_args_help(const bench_args *a)
{
    return bench_args_is(a, "-h") || bench_args_is(a, "--help");
}

const char *bench_args_value(bench_args *a)
{
    if (a->val)
        return a->val;
    if (a->i + 1 >= a->argc)
        bench_die("%s needs a value", a->name);
    return a->argv[++a->i];
}

uint64_t bench_args_count(bench_args *a) { return bench_parse_count(a->name, bench_args_value(a)); }

double bench_args_seconds(bench_args *a)
{
    const char *v = bench_args_value(a);
    char *end;
    double s = strtod(v, &end);
    if (end == v || *end || !(s >= 0) || s > 3600)
        bench_die("%s: expected seconds 0..3600, got '%s'", a->name, v);
    return s;
}

void bench_args_unknown(const bench_args *a, const char *suite, void (*usage)(FILE *f))
{
    usage(stderr);
    bench_die("%s: unknown option '%s'", suite, a->arg);
}

int bench_args_run_opt(bench_args *a, bench_run_opts *r)
{
    if (bench_args_is(a, "--repeat"))
        r->repeat = bench_args_count(a);
    else if (bench_args_is(a, "--timeout"))
        r->timeout = bench_args_count(a);
    else if (bench_args_is(a, "--dir"))
        r->dir = bench_args_value(a);
    else if (bench_args_is(a, "--json"))
        r->json = bench_args_value(a);
    else if (bench_args_is(a, "--keep"))
        r->keep = 1;
    else
        return 0;
    return 1;
}

void bench_run_opts_ready(bench_run_opts *r)
{
    if (r->repeat < 1)
        r->repeat = 1;
    if (bench_mkdirs(r->dir) != 0)
        bench_die("cannot create %s: %s", r->dir, strerror(errno));
}

/* The index of engine @p name, or -1. */
static long engine_index(const char *name, size_t nall, const char *(*name_of)(size_t i))
{
    for (size_t i = 0; i < nall; i++)
        if (strcmp(name_of(i), name) == 0)
            return (long)i;
    return -1;
}

size_t bench_parse_engines(const char *list, size_t nall, const char *(*name_of)(size_t i),
                           void (*not_built)(const char *name), const char *suite, size_t *idx)
{
    char buf[512];
    size_t n = 0;
    snprintf(buf, sizeof buf, "%s", list);
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok;
         tok = strtok_r(NULL, ",", &save)) {
        long e = engine_index(tok, nall, name_of);
        if (e < 0) {
            not_built(tok);
            bench_die("unknown engine '%s' (see sop-bench %s --help)", tok, suite);
        }
        for (size_t i = 0; i < n; i++)
            if (idx[i] == (size_t)e)
                bench_die("engine '%s' listed twice", tok);
        idx[n++] = (size_t)e;
    }
    if (n == 0)
        bench_die("--engines: empty list");
    return n;
}
