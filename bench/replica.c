/*
 * replica.c - `sop-bench replica`: the cost of bringing a replica folder
 * back (docs/design/replication.md). Commit throughput with and without a
 * replica is measured by `sop-bench kv --replica DIR`.
 *
 * For each size N (MiB): a database with a replica folder is filled with
 * --base MiB, then the replica is made to fail (a wrapper VFS returns -EIO
 * for every write under it, so the first one marks it stale) while N MiB
 * more are committed to the active folder alone; the wrapper is disarmed
 * and sop_db_reinstate() brings the replica back while the database is
 * open. Reported: the time of the reinstatement, the bytes it copied, and
 * the segment bytes it knew identical and skipped (the fast-forward).
 * Then the same database is made stale again by N MiB and closed, and the
 * open that reinstates it is timed (recovery included).
 * Values are 1000 bytes, 100 per commit, SOP_SYNC_FULL.
 */
#ifndef SOP_BENCH_NO_SOP
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_util.h"
#include "sop/sop.h"

int bench_replica_main(int argc, char **argv);

/* ---- a VFS that fails writes under one folder while armed ---- */

typedef struct failing {
    sop_vfs vfs;
    sop_vfs *base;
    char prefix[4200];
    atomic_int armed;
} failing;

typedef struct ffile {
    sop_file *f;
    int under;
} ffile;

static failing *FV(sop_vfs *v) { return v->ctx; }
static sop_file *B(sop_file *f) { return ((ffile *)f)->f; }

static int f_open(sop_vfs *v, const char *p, int fl, unsigned mode, sop_file **out)
{
    ffile *f = calloc(1, sizeof *f);
    if (!f)
        return -ENOMEM;
    f->under = !strncmp(p, FV(v)->prefix, strlen(FV(v)->prefix));
    int rc = FV(v)->base->open(FV(v)->base, p, fl, mode, &f->f);
    if (rc)
        free(f);
    else
        *out = (sop_file *)f;
    return rc;
}
static int f_close(sop_vfs *v, sop_file *f)
{
    int rc = FV(v)->base->close(FV(v)->base, B(f));
    free(f);
    return rc;
}
static int f_read(sop_vfs *v, sop_file *f, void *b, size_t n, uint64_t o, size_t *g)
{
    return FV(v)->base->read(FV(v)->base, B(f), b, n, o, g);
}
static int f_write(sop_vfs *v, sop_file *f, const void *b, size_t n, uint64_t o)
{
    if (((ffile *)f)->under && atomic_load(&FV(v)->armed))
        return -EIO;
    return FV(v)->base->write(FV(v)->base, B(f), b, n, o);
}
static int f_sync(sop_vfs *v, sop_file *f) { return FV(v)->base->sync(FV(v)->base, B(f)); }
static int f_size(sop_vfs *v, sop_file *f, uint64_t *s) { return FV(v)->base->size(FV(v)->base, B(f), s); }
static int f_truncate(sop_vfs *v, sop_file *f, uint64_t s)
{
    return FV(v)->base->truncate(FV(v)->base, B(f), s);
}
static int f_lock(sop_vfs *v, sop_file *f, uint64_t o, uint64_t l, int m, int w)
{
    return FV(v)->base->lock(FV(v)->base, B(f), o, l, m, w);
}
static int f_remove(sop_vfs *v, const char *p) { return FV(v)->base->remove(FV(v)->base, p); }
static int f_rename(sop_vfs *v, const char *a, const char *b) { return FV(v)->base->rename(FV(v)->base, a, b); }
static int f_mkdir(sop_vfs *v, const char *p, unsigned m) { return FV(v)->base->mkdir(FV(v)->base, p, m); }
static int f_sync_dir(sop_vfs *v, const char *p) { return FV(v)->base->sync_dir(FV(v)->base, p); }
static int f_list(sop_vfs *v, const char *d, int (*fn)(const char *, void *), void *a)
{
    return FV(v)->base->list(FV(v)->base, d, fn, a);
}

/* ---- the workload ---- */

static void fill(sop_db *db, uint64_t *next, uint64_t mib)
{
    char key[32], val[1000];
    uint64_t n = mib * 1024 * 1024 / sizeof val;
    for (uint64_t done = 0; done < n; done += 100) {
        sop_txn *t;
        sop_store *s;
        int rc = sop_txn_begin(db, SOP_TXN_WRITE, 0, &t);
        if (!rc && (rc = sop_store_open(t, "r", &s)) == SOP_ENOTFOUND)
            rc = sop_store_create(t, "r", NULL, &s);
        for (int i = 0; !rc && i < 100; i++, (*next)++) {
            snprintf(key, sizeof key, "k%012llu", (unsigned long long)*next);
            memset(val, 'a' + (int)(*next % 26), sizeof val);
            rc = sop_upsert(s, &(sop_val){key, strlen(key)}, &(sop_val){val, sizeof val});
        }
        if (!rc)
            rc = sop_txn_commit(t);
        else
            sop_txn_rollback(t);
        if (rc)
            bench_die("replica: commit: %s: %s", sop_strerror(rc), sop_db_errmsg(db));
    }
}

static sop_db *open_db(const char *dir, const char *replica, sop_vfs *vfs)
{
    sop_db_options o;
    sop_db_options_init(&o);
    o.vfs = vfs;
    o.replica_path = replica;
    sop_db *db;
    int rc = sop_db_open(dir, &o, &db);
    if (rc)
        bench_die("replica: open %s: %s", dir, sop_db_errmsg(db));
    return db;
}

int bench_replica_main(int argc, char **argv)
{
    const char *root = "/tmp/sop-bench-replica", *rroot = NULL;
    uint64_t base_mib = 64, sizes[8] = {4, 16, 64}, nsizes = 3;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            printf("usage: sop-bench replica [--base MIB] [--mb N[,N...]] [--dir DIR] "
                   "[--replica DIR]\n"
                   "  time to reinstate a replica folder that missed N MiB (default 4,16,64)\n"
                   "  of a database of --base MiB (default 64); DIR default "
                   "/tmp/sop-bench-replica, the replica DIR/replica unless given\n");
            return 0;
        }
        if (!v)
            bench_die("%s needs a value", a);
        i++;
        if (!strcmp(a, "--base")) {
            base_mib = bench_parse_count(a, v);
        } else if (!strcmp(a, "--dir")) {
            root = v;
        } else if (!strcmp(a, "--replica")) {
            rroot = v;
        } else if (!strcmp(a, "--mb")) {
            char buf[256];
            snprintf(buf, sizeof buf, "%s", v);
            nsizes = 0;
            for (char *s = NULL, *t = strtok_r(buf, ",", &s); t && nsizes < 8;
                 t = strtok_r(NULL, ",", &s))
                sizes[nsizes++] = bench_parse_count(a, t);
        } else {
            bench_die("replica: unknown option '%s'", a);
        }
    }
    char dir[4096], rep[4096];
    snprintf(dir, sizeof dir, "%s/db", root);
    snprintf(rep, sizeof rep, "%s", rroot ? rroot : root);
    snprintf(rep + strlen(rep), sizeof rep - strlen(rep), "/replica");
    failing fv = {.base = sop_vfs_posix()};
    fv.vfs = (sop_vfs){.version = 1, .ctx = &fv, .open = f_open, .close = f_close,
                       .read = f_read, .write = f_write, .sync = f_sync, .size = f_size,
                       .truncate = f_truncate, .lock = f_lock, .remove = f_remove,
                       .rename = f_rename, .mkdir = f_mkdir, .sync_dir = f_sync_dir,
                       .list = f_list};
    snprintf(fv.prefix, sizeof fv.prefix, "%s/", rep);
    printf("%-8s %-8s %12s %12s %12s %12s\n", "missed", "how", "seconds", "copied_MiB",
           "skipped_MiB", "MiB/s");
    for (uint64_t si = 0; si < nsizes; si++) {
        bench_rmtree(dir);
        bench_rmtree(rep);
        if (bench_mkdirs(root))
            bench_die("replica: cannot create %s", root);
        uint64_t next = 0;
        sop_db *db = open_db(dir, rep, &fv.vfs);
        fill(db, &next, base_mib);
        for (int how = 0; how < 2; how++) {
            atomic_store(&fv.armed, 1);
            fill(db, &next, sizes[si]);
            atomic_store(&fv.armed, 0);
            sop_replica_status st;
            sop_db_replica_status(db, &st);
            if (st.in_sync)
                bench_die("replica: the replica did not go stale");
            double t0 = bench_now();
            if (how == 0) {
                int rc = sop_db_reinstate(db);
                if (rc)
                    bench_die("replica: reinstate: %s", sop_db_errmsg(db));
            } else {
                sop_db_close(db);
                t0 = bench_now();
                db = open_db(dir, rep, &fv.vfs);
            }
            double dt = bench_now() - t0;
            sop_db_replica_status(db, &st);
            if (!st.in_sync)
                bench_die("replica: not in sync after reinstating");
            printf("%-8llu %-8s %12.3f %12.1f %12.1f %12.0f\n", (unsigned long long)sizes[si],
                   how ? "open" : "online", dt, st.reinstated_bytes / 1048576.0,
                   st.skipped_bytes / 1048576.0, st.reinstated_bytes / 1048576.0 / dt);
            fflush(stdout);
        }
        sop_db_close(db);
    }
    bench_rmtree(dir);
    bench_rmtree(rep);
    return 0;
}
#endif
