/*
 * ec.c - `sop-bench ec`: the cost of erasure coding (sop_db_options.drives)
 * against the same database without it, through the public API.
 *
 * For each layout ("plain": segments in the database directory; "ec":
 * striped over --drives folders with --parity parity shards), on a fresh
 * database under --dir:
 *   fillsync   --n values of --value-bytes, one per commit (SOP_SYNC_FULL)
 *   fillbatch  the same values again (new keys), --batch per commit
 *   readrand   every key once in random order, after reopening with a
 *              small node cache (values come from the segments)
 * and for "ec" also
 *   degraded   readrand with drive folder 0 (a data shard) renamed away:
 *              every stripe is reconstructed from parity.
 * Prints MB/s (of values) and operations/s, then the ratios ec / plain and
 * degraded / ec. --json FILE writes one JSON line per measurement.
 * All drive folders sit on the file system of --dir: the figures measure
 * the layer's CPU and I/O amplification, not parallel disks.
 */
#include "ec.h"

#ifndef SOP_BENCH_NO_SOP
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_util.h"
#include "sop/sop.h"

typedef struct ec_opts {
    uint64_t n, value_bytes, batch;
    uint32_t drives, parity;
    const char *dir, *json;
    uint64_t seed;
} ec_opts;

typedef struct meas {
    const char *layout, *workload;
    double secs, mbps, ops;
} meas;

static meas g_m[16];
static int g_nm;

static void die_rc(sop_db *db, const char *what, int rc)
{
    bench_die("sop-bench ec: %s: %s (%s) %s", what, sop_strerror(rc), sop_err_name(rc),
              db ? sop_db_errmsg(db) : "");
}

typedef struct ec_layout {
    const char *name;
    char db[1024];
    char drv[16][1100];
    const char *drives[16];
    uint32_t n, m;
} ec_layout;

static sop_db *open_db(const ec_layout *l, size_t cache)
{
    sop_db_options o;
    sop_db_options_init(&o);
    o.cache_bytes = cache;
    if (l->n) {
        o.drives = l->drives;
        o.ndrives = l->n;
        o.parity = l->m;
    }
    sop_db *db;
    int rc = sop_db_open(l->db, &o, &db);
    if (rc)
        die_rc(db, "open", rc);
    return db;
}

static void key_of(char *k, uint64_t i)
{
    snprintf(k, 24, "%016llu", (unsigned long long)(i % 10000000000000000ull));
}

static void record(const char *layout, const char *wl, double secs, uint64_t ops,
                   uint64_t bytes)
{
    meas *m = &g_m[g_nm++];
    m->layout = layout;
    m->workload = wl;
    m->secs = secs;
    m->ops = ops / secs;
    m->mbps = bytes / secs / 1e6;
    char b1[32];
    printf("  %-6s %-10s %10.1f MB/s %12s ops/s  (%.2f s)\n", layout, wl, m->mbps,
           bench_fmt_int(b1, sizeof b1, m->ops), secs);
    fflush(stdout);
}

static void fill(const ec_layout *l, const ec_opts *o, const uint8_t *vals, uint64_t first,
                 uint64_t per, const char *wl)
{
    sop_db *db = open_db(l, 64u << 20);
    double t0 = bench_now();
    uint64_t commits = 0;
    for (uint64_t i = 0; i < o->n;) {
        sop_txn *t;
        int rc = sop_txn_begin(db, SOP_TXN_WRITE, 0, &t);
        sop_store *s = NULL;
        if (!rc)
            rc = sop_store_open(t, "ec", &s);
        if (rc == SOP_ENOTFOUND) {
            sop_store_options so;
            sop_store_options_init(&so);
            rc = sop_store_create(t, "ec", &so, &s);
        }
        for (uint64_t j = 0; j < per && i < o->n && !rc; j++, i++) {
            char k[24];
            key_of(k, first + i);
            sop_val kv = {k, 16}, vv = {vals + (i % 64) * 64, o->value_bytes};
            rc = sop_upsert(s, &kv, &vv);
        }
        if (!rc)
            rc = sop_txn_commit(t);
        else
            sop_txn_rollback(t);
        if (rc)
            die_rc(db, wl, rc);
        commits++;
    }
    double secs = bench_now() - t0;
    int rc = sop_db_close(db);
    if (rc)
        die_rc(NULL, "close", rc);
    record(l->name, wl, secs, commits, o->n * o->value_bytes);
}

static void readrand(const ec_layout *l, const ec_opts *o, const char *wl)
{
    sop_db *db = open_db(l, 4u << 20); /* values come from the segments */
    uint64_t total = 2 * o->n;
    uint64_t *perm = malloc(total * sizeof *perm);
    uint8_t *buf = malloc(o->value_bytes);
    if (!perm || !buf)
        bench_die("out of memory");
    bench_rng r;
    bench_rng_seed(&r, o->seed);
    for (uint64_t i = 0; i < total; i++)
        perm[i] = i;
    for (uint64_t i = total - 1; i > 0; i--) {
        uint64_t j = bench_rng_below(&r, i + 1), x = perm[i];
        perm[i] = perm[j];
        perm[j] = x;
    }
    double t0 = bench_now();
    sop_txn *t;
    int rc = sop_txn_begin(db, SOP_TXN_READ, 3600u * 1000u, &t);
    sop_store *s = NULL;
    if (!rc)
        rc = sop_store_open(t, "ec", &s);
    for (uint64_t i = 0; i < total && !rc; i++) {
        char k[24];
        key_of(k, perm[i]);
        sop_val kv = {k, 16};
        size_t len;
        rc = sop_get_copy(s, &kv, buf, o->value_bytes, &len);
        if (!rc && len != o->value_bytes)
            rc = SOP_ECORRUPT;
    }
    if (rc)
        die_rc(db, wl, rc);
    sop_txn_rollback(t);
    double secs = bench_now() - t0;
    sop_db_close(db);
    record(l->name, wl, secs, total, total * o->value_bytes);
    free(perm);
    free(buf);
}

static double find(const char *layout, const char *wl, int mb)
{
    for (int i = 0; i < g_nm; i++)
        if (!strcmp(g_m[i].layout, layout) && !strcmp(g_m[i].workload, wl))
            return mb ? g_m[i].mbps : g_m[i].ops;
    return 0;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: sop-bench ec [options]\n"
               "  --n N            values per fill (default 2000)\n"
               "  --value-bytes B  value size (default 65536)\n"
               "  --batch B        values per commit in fillbatch (default 64)\n"
               "  --drives D       drive folders (default 6)\n"
               "  --parity P       parity shards (default 2)\n"
               "  --dir DIR        where the databases go (default ./sop-bench-ec; removed first)\n"
               "  --seed S         read order (default 1)\n"
               "  --json FILE      write JSON lines to FILE\n");
}

int bench_ec_main(int argc, char **argv)
{
    ec_opts o = {2000, 65536, 64, 6, 2, "sop-bench-ec", NULL, 1};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        }
        if (i + 1 >= argc)
            bench_die("sop-bench ec: %s needs a value", a);
        const char *v = argv[++i];
        if (!strcmp(a, "--n"))
            o.n = bench_parse_count(a, v);
        else if (!strcmp(a, "--value-bytes"))
            o.value_bytes = bench_parse_count(a, v);
        else if (!strcmp(a, "--batch"))
            o.batch = bench_parse_count(a, v);
        else if (!strcmp(a, "--drives"))
            o.drives = (uint32_t)bench_parse_count(a, v);
        else if (!strcmp(a, "--parity"))
            o.parity = (uint32_t)bench_parse_count(a, v);
        else if (!strcmp(a, "--dir"))
            o.dir = v;
        else if (!strcmp(a, "--seed"))
            o.seed = bench_parse_count(a, v);
        else if (!strcmp(a, "--json"))
            o.json = v;
        else {
            usage(stderr);
            return 2;
        }
    }
    if (!o.n || !o.value_bytes || !o.batch || o.drives < 2 || o.drives > 16 || !o.parity ||
        o.parity >= o.drives)
        bench_die("sop-bench ec: bad options (drives 2..16, 1 <= parity < drives)");
    /* 64 distinct values, overlapping windows of one random buffer */
    uint8_t *vals = malloc(63 * 64 + o.value_bytes);
    if (!vals)
        bench_die("out of memory");
    bench_rng r;
    bench_rng_seed(&r, 7);
    for (uint64_t i = 0; i < 63 * 64 + o.value_bytes; i++)
        vals[i] = (uint8_t)bench_rng_next(&r);
    bench_rmtree(o.dir);
    if (bench_mkdirs(o.dir) != 0)
        bench_die("cannot create %s: %s", o.dir, strerror(errno));
    ec_layout plain = {.name = "plain"}, ec = {.name = "ec", .n = o.drives, .m = o.parity};
    snprintf(plain.db, sizeof plain.db, "%s/plain", o.dir);
    snprintf(ec.db, sizeof ec.db, "%s/ec/db", o.dir);
    for (uint32_t d = 0; d < o.drives; d++) {
        snprintf(ec.drv[d], sizeof ec.drv[d], "%s/ec/drive%u", o.dir, d);
        ec.drives[d] = ec.drv[d];
    }
    char ecroot[1100];
    snprintf(ecroot, sizeof ecroot, "%s/ec", o.dir);
    if (bench_mkdirs(ecroot) != 0) /* drive folders are made, not their parents */
        bench_die("cannot create %s: %s", ecroot, strerror(errno));
    char b1[32];
    printf("sop-bench ec: %s values of %llu bytes; ec = %u+%u drive folders under %s\n",
           bench_fmt_int(b1, sizeof b1, (double)o.n), (unsigned long long)o.value_bytes,
           o.drives - o.parity, o.parity, o.dir);
    ec_layout *ls[2] = {&plain, &ec};
    for (int i = 0; i < 2; i++) {
        fill(ls[i], &o, vals, 0, 1, "fillsync");
        fill(ls[i], &o, vals, o.n, o.batch, "fillbatch");
        readrand(ls[i], &o, "readrand");
    }
    /* degraded: a data drive gone */
    char away[1200];
    snprintf(away, sizeof away, "%s.away", ec.drv[0]);
    if (rename(ec.drv[0], away) != 0)
        bench_die("rename %s: %s", ec.drv[0], strerror(errno));
    readrand(&ec, &o, "degraded");
    bench_rmtree(ec.drv[0]); /* the open made an empty folder */
    if (rename(away, ec.drv[0]) != 0)
        bench_die("rename %s: %s", away, strerror(errno));
    printf("ratios (ec / plain):\n");
    static const char *wls[] = {"fillsync", "fillbatch", "readrand"};
    for (int i = 0; i < 3; i++)
        printf("  %-10s MB/s %.2f   ops/s %.2f\n", wls[i], find("ec", wls[i], 1) / find("plain", wls[i], 1),
               find("ec", wls[i], 0) / find("plain", wls[i], 0));
    double dp = (double)bench_du(plain.db), de = (double)bench_du(ecroot);
    printf("  degraded / ec readrand MB/s: %.2f\n",
           find("ec", "degraded", 1) / find("ec", "readrand", 1));
    printf("  disk: plain %.1f MiB, ec %.1f MiB (%.2fx; (k+m)/k = %.2f)\n", dp / 1048576.0,
           de / 1048576.0, de / dp, (double)o.drives / (o.drives - o.parity));
    if (o.json) {
        FILE *f = fopen(o.json, "w");
        if (!f)
            bench_die("cannot write %s: %s", o.json, strerror(errno));
        for (int i = 0; i < g_nm; i++)
            fprintf(f,
                    "{\"suite\":\"ec\",\"layout\":\"%s\",\"workload\":\"%s\",\"n\":%llu,"
                    "\"value_bytes\":%llu,\"drives\":%u,\"parity\":%u,\"secs\":%.4f,"
                    "\"mb_per_s\":%.2f,\"ops_per_s\":%.1f}\n",
                    g_m[i].layout, g_m[i].workload, (unsigned long long)o.n,
                    (unsigned long long)o.value_bytes, o.drives, o.parity, g_m[i].secs,
                    g_m[i].mbps, g_m[i].ops);
        fclose(f);
    }
    free(vals);
    bench_rmtree(o.dir);
    return 0;
}

#else
#include <stdio.h>
int bench_ec_main(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "sop-bench ec: built without the sop engine\n");
    return 2;
}
#endif
