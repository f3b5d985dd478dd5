/*
 * sop_bench.c - `sop-bench SUITE [options]`: side-by-side benchmarks of SOP
 * and its peers (see ../../shared/BENCHMARKS.md for the contract: a human
 * table on stdout, JSON lines with --json FILE, ratios last).
 *
 * Adding a suite: write `int bench_<name>_main(int argc, char **argv)` in
 * bench/<name>.c (argv[0] is the suite name) and add a row to `suites`.
 */
#include <stdio.h>
#include <string.h>

#include "cluster.h"
#include "ec.h"
#include "kv.h"
#include "load.h"
#include "text.h"
#include "vector.h"

int bench_replica_main(int argc, char **argv); /* replica.c */

typedef struct suite {
    const char *name;
    int (*main)(int argc, char **argv);
    const char *help;
} suite;

static const suite suites[] = {
    {"kv", bench_kv_main,
     "key-value workloads (db_bench shape) on sop, LMDB, SQLite"},
    {"vector", bench_vector_main,
     "nearest neighbours on GloVe 100-d: sop IVF, FAISS IVFFlat, hnswlib"},
    {"text", bench_text_main,
     "BM25 text search: quality on Cranfield, speed on GCIDE: sop, SQLite FTS5, Xapian"},
    {"ec", bench_ec_main,
     "erasure coding over drive folders vs none: write, read, degraded read (64 KiB values)"},
    {"load", bench_load_main,
     "bulk load of GloVe words + vectors: sop_kb_load vs FAISS add + SQLite FTS5 insert"},
    {"cluster", bench_cluster_main,
     "commits through Redis (clustered) against standalone, 1/2/4 processes"},
#ifndef SOP_BENCH_NO_SOP
    {"replica", bench_replica_main,
     "time to reinstate a replica folder that missed N MiB (fast-forward)"},
#endif
};
#define N_SUITES (sizeof suites / sizeof suites[0])

static void usage(FILE *f)
{
    fprintf(f, "usage: sop-bench SUITE [options]   (sop-bench SUITE --help for its options)\n"
               "suites:\n");
    for (size_t i = 0; i < N_SUITES; i++)
        fprintf(f, "  %-8s %s\n", suites[i].name, suites[i].help);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0 ||
        strcmp(argv[1], "help") == 0) {
        usage(stdout);
        return 0;
    }
    for (size_t i = 0; i < N_SUITES; i++)
        if (strcmp(argv[1], suites[i].name) == 0)
            return suites[i].main(argc - 1, argv + 1);
    fprintf(stderr, "sop-bench: unknown suite '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
