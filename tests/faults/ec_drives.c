/* ec_drives.c - an erasure-coded database (sop_db_options.drives) under
 * drive failures, through the engine:
 *   - a drive folder deleted in the middle of a workload: the workload
 *     goes on, sop_db_repair() (while the database is open, then closed)
 *     rebuilds it, and the redundancy is really back (two other drives
 *     deleted afterwards, everything still reads);
 *   - bit flips in shard files (headers and data) are corrected on read
 *     and rebuilt by repair;
 *   - m failing drives: commits go on (degraded); m + 1: the commit fails
 *     cleanly and, after reopening, is absent while every earlier one is
 *     there;
 *   - drive folders unusable at open, given in the wrong order: refused
 *     with a clear message;
 *   - a writer killed between the shard writes of a stripe (kill point
 *     "ec:shard"): recovery keeps a prefix of the commits;
 *   - two processes committing to one EC database at once;
 *   - a handle (in this process or another) following the log while the
 *     writer is creating the next segment's shard files, some drives
 *     done and others not: no stale read, its commits land on every
 *     drive; and a writer killed in the middle of that creation.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "prefix_fault_vfs.h"
#include "sop/sop.h"
#include "testutil.h"

typedef struct fx {
    char root[512], db[600];
    char drv[8][600];
    const char *drives[8];
    uint32_t n, m;
} fx;

static void fx_init(fx *x, const char *name, uint32_t n, uint32_t m)
{
    memset(x, 0, sizeof *x);
    snprintf(x->root, sizeof x->root, "%s", tu_tmpdir(name));
    snprintf(x->db, sizeof x->db, "%s/db", x->root);
    for (uint32_t d = 0; d < n; d++) {
        snprintf(x->drv[d], sizeof x->drv[d], "%s/drive%u", x->root, d);
        x->drives[d] = x->drv[d];
    }
    x->n = n;
    x->m = m;
}

static sop_db_options fx_opts(fx *x, sop_vfs *vfs)
{
    sop_db_options o;
    sop_db_options_init(&o);
    o.drives = x->drives;
    o.ndrives = x->n;
    o.parity = x->m;
    o.segment_bytes = 1u << 20; /* several segments in a small workload */
    o.vfs = vfs;
    return o;
}

static sop_db *fx_open(fx *x, sop_vfs *vfs)
{
    sop_db_options o = fx_opts(x, vfs);
    sop_db *db = NULL;
    int rc = sop_db_open(x->db, &o, &db);
    if (rc)
        fail_msg("open: %s: %s", sop_err_name(rc), sop_db_errmsg(db));
    return db;
}

/* Value of key @i: its length varies (small, a few KiB, some blobs). */
static size_t val_len(unsigned i) { return i % 17 == 0 ? 20000 + i : 100 + (i * 37) % 3000; }

static void mkval(uint8_t *b, size_t n, unsigned i)
{
    uint64_t s = i * 0x9E3779B97F4A7C15ull + 1;
    for (size_t j = 0; j < n; j++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        b[j] = (uint8_t)(s >> 56);
    }
}

/* Commits keys [from, to), @per keys per transaction. */
static int put_range(sop_db *db, unsigned from, unsigned to, unsigned per)
{
    static uint8_t buf[40000];
    for (unsigned i = from; i < to;) {
        sop_txn *t;
        int rc = sop_txn_begin(db, SOP_TXN_WRITE, 0, &t);
        if (rc)
            return rc;
        sop_store *s;
        rc = sop_store_open(t, "kv", &s);
        if (rc == SOP_ENOTFOUND) {
            sop_store_options so;
            sop_store_options_init(&so);
            rc = sop_store_create(t, "kv", &so, &s);
        }
        for (unsigned j = 0; j < per && i < to && !rc; j++, i++) {
            char k[32];
            snprintf(k, sizeof k, "key%08u", i);
            size_t n = val_len(i);
            mkval(buf, n, i);
            sop_val kv = {k, strlen(k)}, vv = {buf, n};
            rc = sop_upsert(s, &kv, &vv);
        }
        if (rc) {
            sop_txn_rollback(t);
            return rc;
        }
        rc = sop_txn_commit(t);
        if (rc)
            return rc;
    }
    return 0;
}

/* How many of keys [0, upto) are present and correct; fails on a wrong
 * value. *prefix: the length of the present prefix. */
static unsigned count_keys(sop_db *db, unsigned upto, unsigned *prefix)
{
    static uint8_t want[40000], got[40000];
    sop_txn *t;
    assert_int_equal(sop_txn_begin(db, SOP_TXN_READ, 0, &t), 0);
    sop_store *s;
    unsigned cnt = 0;
    if (prefix)
        *prefix = 0;
    int rc = sop_store_open(t, "kv", &s);
    if (rc == SOP_ENOTFOUND) {
        sop_txn_rollback(t);
        return 0;
    }
    assert_int_equal(rc, 0);
    int gap = 0;
    for (unsigned i = 0; i < upto; i++) {
        char k[32];
        snprintf(k, sizeof k, "key%08u", i);
        sop_val kv = {k, strlen(k)};
        size_t len = 0;
        rc = sop_get_copy(s, &kv, got, sizeof got, &len);
        if (rc == SOP_ENOTFOUND) {
            gap = 1;
            continue;
        }
        if (rc)
            fail_msg("get %s: %s: %s", k, sop_err_name(rc), sop_db_errmsg(db));
        size_t n = val_len(i);
        mkval(want, n, i);
        assert_int_equal(len, n);
        assert_memory_equal(got, want, n);
        cnt++;
        if (!gap && prefix)
            *prefix = i + 1;
    }
    sop_txn_rollback(t);
    return cnt;
}

static void check_clean(sop_db *db)
{
    uint64_t problems = 99;
    int rc = sop_db_check(db, NULL, NULL, &problems);
    if (rc)
        fail_msg("check: %s: %s", sop_err_name(rc), sop_db_errmsg(db));
    assert_int_equal(problems, 0);
}

static sop_repair_report repair(fx *x)
{
    sop_db_options o = fx_opts(x, NULL);
    sop_repair_report r;
    int rc = sop_db_repair(x->db, &o, &r);
    if (rc)
        fail_msg("repair: %s: %s", sop_err_name(rc), r.message);
    return r;
}

/* A drive folder deleted mid-workload; repair while open, then closed;
 * afterwards any m other drives can go. */
static void test_drive_deleted_then_repair(void **st)
{
    (void)st;
    fx x;
    fx_init(&x, "deleted", 6, 2);
    sop_db *db = fx_open(&x, NULL);
    assert_int_equal(put_range(db, 0, 300, 5), 0);
    tu_rmtree(x.drv[2]);
    assert_int_equal(put_range(db, 300, 700, 5), 0); /* rotates into new segments */
    assert_int_equal(count_keys(db, 700, NULL), 700);
    sop_ec_stat es;
    assert_int_equal(sop_db_ec_stats(db, &es), 0);
    assert_true(es.degraded_stripes > 0); /* segments created after the deletion */
    /* repair while the database is open */
    sop_repair_report r = repair(&x);
    assert_true(r.segments >= 3);
    assert_true(r.files_rebuilt >= r.segments - 1);
    assert_true(r.bad_shards > 0);
    assert_int_equal(r.unrecoverable, 0);
    assert_int_equal(put_range(db, 700, 800, 5), 0);
    assert_int_equal(sop_db_close(db), 0);
    /* closed: the pass finishes what the open process kept writing */
    r = repair(&x);
    assert_int_equal(r.unrecoverable, 0);
    assert_int_equal(r.deferred, 0);
    r = repair(&x);
    assert_int_equal(r.bad_shards, 0); /* nothing left to rebuild */
    assert_true(r.stripes > 0);
    /* redundancy is back: two other drives gone, everything reads */
    tu_rmtree(x.drv[0]);
    tu_rmtree(x.drv[4]);
    db = fx_open(&x, NULL);
    assert_int_equal(count_keys(db, 800, NULL), 800);
    check_clean(db);
    assert_int_equal(sop_db_ec_stats(db, &es), 0);
    assert_true(es.reconstructed > 0);
    assert_int_equal(sop_db_close(db), 0);
}

static void flip(const char *path, uint64_t off, int bit)
{
    FILE *fp = fopen(path, "r+b");
    assert_non_null(fp);
    fseek(fp, (long)off, SEEK_SET);
    int c = fgetc(fp);
    fseek(fp, (long)off, SEEK_SET);
    fputc(c ^ (1 << bit), fp);
    fclose(fp);
}

static uint64_t fsize(const char *p)
{
    struct stat sb;
    return stat(p, &sb) == 0 ? (uint64_t)sb.st_size : 0;
}

/* Bit flips in the shard files: corrected on read, rebuilt by repair. */
static void test_bitflips(void **st)
{
    (void)st;
    fx x;
    fx_init(&x, "bitflips", 6, 2);
    uint64_t rs = tu_seed();
    sop_db *db = fx_open(&x, NULL);
    assert_int_equal(put_range(db, 0, 800, 4), 0);
    assert_int_equal(sop_db_close(db), 0);
    char p0[700], p1[700];
    snprintf(p0, sizeof p0, "%s/seg-00000001", x.drv[1]);
    snprintf(p1, sizeof p1, "%s/seg-00000001", x.drv[4]);
    uint64_t sz = fsize(p0);
    flip(p0, 5, 0);                              /* header: shard index */
    flip(p0, 36, 3);                             /* header: its CRC */
    flip(p1, 20, 1);                             /* header: stripe CRC */
    for (int i = 0; i < 20; i++) {               /* data, both drives */
        flip(p0, 100 + tu_rand_below(&rs, sz - 100), (int)tu_rand_below(&rs, 8));
        flip(p1, 100 + tu_rand_below(&rs, sz - 100), (int)tu_rand_below(&rs, 8));
    }
    db = fx_open(&x, NULL);
    assert_int_equal(count_keys(db, 800, NULL), 800);
    check_clean(db);
    sop_ec_stat es;
    assert_int_equal(sop_db_ec_stats(db, &es), 0);
    assert_true(es.bad_shards > 0);
    assert_true(es.reconstructed > 0);
    assert_int_equal(es.unreadable, 0);
    /* repair while open: sealed segments rebuilt; the last one has no
     * flips (they are all in seg-1) */
    sop_repair_report r = repair(&x);
    assert_true(r.shards_rebuilt >= 2);
    assert_true(r.files_rebuilt == 2);
    assert_int_equal(r.unrecoverable, 0);
    assert_int_equal(sop_db_close(db), 0);
    r = repair(&x);
    assert_int_equal(r.bad_shards, 0);
    /* and now two whole drives can go */
    tu_rmtree(x.drv[0]);
    tu_rmtree(x.drv[3]);
    db = fx_open(&x, NULL);
    assert_int_equal(count_keys(db, 800, NULL), 800);
    assert_int_equal(sop_db_close(db), 0);
}

/* m drives failing writes: commits succeed, degraded; m + 1: the commit
 * fails, and after reopening it is absent and everything before it is
 * there; the database then takes commits again. */
static void test_write_failures(void **st)
{
    (void)st;
    fx x;
    fx_init(&x, "wfail", 5, 2);
    sop_vfs *pf = pfx_vfs_new(NULL);
    sop_db *db = fx_open(&x, pf);
    assert_int_equal(put_range(db, 0, 50, 5), 0);
    pfx_vfs_arm(pf, 0, x.drv[1], PF_WRITE | PF_TRUNC | PF_SYNC, 0, -EIO);
    pfx_vfs_arm(pf, 1, x.drv[3], PF_WRITE | PF_TRUNC | PF_SYNC, 0, -EIO);
    assert_int_equal(put_range(db, 50, 100, 5), 0); /* m failed: degraded */
    sop_ec_stat es;
    assert_int_equal(sop_db_ec_stats(db, &es), 0);
    assert_true(es.degraded_stripes > 0);
    assert_true(es.shard_write_errors >= 2);
    pfx_vfs_arm(pf, 2, x.drv[0], PF_WRITE | PF_TRUNC | PF_SYNC, 0, -EIO);
    int rc = put_range(db, 100, 105, 5); /* m + 1: the commit fails */
    assert_true(rc == -EIO || rc == SOP_EPANIC);
    assert_true(pfx_vfs_failed_all(pf) > 0);
    sop_txn *t;
    assert_int_equal(sop_txn_begin(db, SOP_TXN_WRITE, 0, &t), SOP_EPANIC);
    sop_db_close(db);
    pfx_vfs_disarm(pf);
    db = fx_open(&x, NULL);
    unsigned prefix;
    assert_int_equal(count_keys(db, 105, &prefix), 100);
    assert_int_equal(prefix, 100);
    check_clean(db);
    assert_int_equal(put_range(db, 100, 150, 5), 0);
    assert_int_equal(sop_db_close(db), 0);
    db = fx_open(&x, NULL);
    assert_int_equal(count_keys(db, 150, NULL), 150);
    assert_int_equal(sop_db_close(db), 0);
    sop_repair_report r = repair(&x);
    assert_int_equal(r.unrecoverable, 0);
    assert_true(r.shards_rebuilt > 0);
    pfx_vfs_free(pf);
}

/* Unusable drive folders at open, drives in the wrong order, more than m
 * drives without this database's shards. */
static void test_open_refusals(void **st)
{
    (void)st;
    fx x;
    fx_init(&x, "refuse", 5, 2);
    sop_db *db = fx_open(&x, NULL);
    assert_int_equal(put_range(db, 0, 20, 5), 0);
    assert_int_equal(sop_db_close(db), 0);
    /* wrong order */
    fx y = x;
    for (int d = 0; d < 5; d++)
        y.drives[d] = x.drv[d];
    y.drives[1] = x.drv[2];
    y.drives[2] = x.drv[1];
    sop_db_options o = fx_opts(&y, NULL);
    int rc = sop_db_open(x.db, &o, &db);
    assert_int_equal(rc, SOP_EMISMATCH);
    assert_non_null(strstr(sop_db_errmsg(db), "wrong order"));
    sop_db_close(db);
    /* three of five unusable (a file where the folder should be) */
    char away[3][700];
    for (int d = 0; d < 3; d++) {
        snprintf(away[d], sizeof away[d], "%s.away", x.drv[d]);
        assert_int_equal(rename(x.drv[d], away[d]), 0);
        FILE *fp = fopen(x.drv[d], "w");
        assert_non_null(fp);
        fclose(fp);
    }
    o = fx_opts(&x, NULL);
    rc = sop_db_open(x.db, &o, &db);
    assert_int_equal(rc, -EIO);
    assert_non_null(strstr(sop_db_errmsg(db), "drive folders are usable"));
    sop_db_close(db);
    /* two unusable and one empty (replaced): three without shards */
    unlink(x.drv[2]);
    rc = sop_db_open(x.db, &o, &db);
    assert_int_equal(rc, -EIO);
    assert_non_null(strstr(sop_db_errmsg(db), "new or replaced"));
    sop_db_close(db);
    /* two unusable: it opens, reads, and commits */
    tu_rmtree(x.drv[2]);
    assert_int_equal(rename(away[2], x.drv[2]), 0);
    db = fx_open(&x, NULL);
    assert_int_equal(count_keys(db, 20, NULL), 20);
    assert_int_equal(put_range(db, 20, 30, 5), 0);
    assert_int_equal(sop_db_close(db), 0);
    /* the drives back: everything reads, and repair fills them */
    for (int d = 0; d < 2; d++) {
        unlink(x.drv[d]);
        assert_int_equal(rename(away[d], x.drv[d]), 0);
    }
    db = fx_open(&x, NULL);
    assert_int_equal(count_keys(db, 30, NULL), 30);
    assert_int_equal(sop_db_close(db), 0);
    sop_repair_report r = repair(&x);
    assert_true(r.shards_rebuilt > 0);
    r = repair(&x);
    assert_int_equal(r.bad_shards, 0);
}

static int g_argc;
static char **g_argv;

/* The killed writer, run as "ec_drives kill-child <root>" with
 * SOP_KILLPOINT set (kill points are read once per process). */
static int kill_child(const char *root)
{
    fx x;
    memset(&x, 0, sizeof x);
    snprintf(x.db, sizeof x.db, "%s/db", root);
    for (uint32_t d = 0; d < 6; d++) {
        snprintf(x.drv[d], sizeof x.drv[d], "%s/drive%u", root, d);
        x.drives[d] = x.drv[d];
    }
    x.n = 6;
    x.m = 2;
    sop_db_options o = fx_opts(&x, NULL);
    sop_db *db;
    if (sop_db_open(x.db, &o, &db))
        return 3;
    put_range(db, 10, 200, 1);
    return 4; /* not killed */
}

/* A writer killed between the shard writes of a stripe. */
static void test_killed_writer(void **st)
{
    (void)st;
    static const int points[] = {3, 4, 5, 9, 10, 11, 13, 16, 23, 40};
    for (size_t p = 0; p < sizeof points / sizeof *points; p++) {
        fx x;
        char name[32];
        snprintf(name, sizeof name, "kill%zu", p);
        fx_init(&x, name, 6, 2);
        /* the database first, without kill points */
        sop_db *db = fx_open(&x, NULL);
        assert_int_equal(put_range(db, 0, 10, 5), 0);
        assert_int_equal(sop_db_close(db), 0);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            char kp[64];
            snprintf(kp, sizeof kp, "ec:shard:%d", points[p]);
            setenv("SOP_KILLPOINT", kp, 1);
            execl("/proc/self/exe", g_argv[0], "kill-child", x.root, (char *)NULL);
            _exit(2);
        }
        int status;
        waitpid(pid, &status, 0);
        assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
        db = fx_open(&x, NULL);
        unsigned prefix, cnt = count_keys(db, 200, &prefix);
        assert_int_equal(cnt, prefix); /* a prefix of the commits */
        assert_true(prefix >= 10);
        check_clean(db);
        assert_int_equal(put_range(db, prefix, prefix + 20, 2), 0);
        assert_int_equal(sop_db_close(db), 0);
        db = fx_open(&x, NULL);
        assert_int_equal(count_keys(db, prefix + 20, NULL), prefix + 20);
        assert_int_equal(sop_db_close(db), 0);
    }
}

/* Two processes committing to one EC database at once. */
static void test_two_processes(void **st)
{
    (void)st;
    fx x;
    fx_init(&x, "twoproc", 5, 2);
    sop_db *db = fx_open(&x, NULL);
    assert_int_equal(put_range(db, 0, 1, 1), 0); /* the store */
    pid_t pids[2];
    for (int c = 0; c < 2; c++) {
        pids[c] = fork();
        assert_true(pids[c] >= 0);
        if (pids[c] == 0) {
            sop_db_options o = fx_opts(&x, NULL);
            sop_db *cdb;
            if (sop_db_open(x.db, &o, &cdb))
                _exit(3);
            for (unsigned i = 1 + (unsigned)c; i < 400; i += 2) {
                int rc;
                do
                    rc = put_range(cdb, i, i + 1, 1);
                while (rc == SOP_ECONFLICT);
                if (rc)
                    _exit(5);
            }
            _exit(sop_db_close(cdb) ? 6 : 0);
        }
    }
    /* this handle reads meanwhile, following the others' appends */
    unsigned seen = 0;
    for (int i = 0; i < 20; i++)
        seen = count_keys(db, 400, NULL);
    (void)seen;
    for (int c = 0; c < 2; c++) {
        int status;
        waitpid(pids[c], &status, 0);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
    }
    assert_int_equal(count_keys(db, 400, NULL), 400);
    check_clean(db);
    assert_int_equal(sop_db_close(db), 0);
    db = fx_open(&x, NULL);
    assert_int_equal(count_keys(db, 400, NULL), 400);
    assert_int_equal(sop_db_close(db), 0);
}

/* ------------------------------------------------------------------ */
/* A follower while the next segment's shard files are being created   */
/* ------------------------------------------------------------------ */

/* How many of keys [0, upto) are present with their values; -1 on an
 * error. No cmocka assertion: it also runs in forked followers and in the
 * writer's VFS hook. */
static long seen_keys(sop_db *db, unsigned upto)
{
    static uint8_t want[40000], got[40000];
    sop_txn *t;
    if (sop_txn_begin(db, SOP_TXN_READ, 0, &t))
        return -1;
    sop_store *s;
    long cnt = 0;
    int rc = sop_store_open(t, "kv", &s);
    for (unsigned i = 0; !rc && i < upto; i++) {
        char k[32];
        snprintf(k, sizeof k, "key%08u", i);
        size_t len = 0;
        int g = sop_get_copy(s, &(sop_val){k, strlen(k)}, got, sizeof got, &len);
        if (g == SOP_ENOTFOUND)
            continue;
        size_t n = val_len(i);
        mkval(want, n, i);
        if (g || len != n || memcmp(got, want, n) != 0)
            rc = g ? g : -1;
        else
            cnt++;
    }
    sop_txn_rollback(t);
    return rc ? -1 : cnt;
}

/* The other handle: in this process (db), or a forked process (pid) that
 * runs the commands it is sent. */
typedef struct follower {
    sop_db *db;
    pid_t pid;
    int cmd, res; /* pipes to and from the process */
} follower;

typedef struct fl_msg {
    char op; /* 'S' seen_keys(n), 'P' put_range(n, to, 1), 'Q' quit */
    unsigned n, to;
} fl_msg;

static long fl_call(follower *f, char op, unsigned n, unsigned to)
{
    if (f->db)
        return op == 'S' ? seen_keys(f->db, n) : put_range(f->db, n, to, 1);
    fl_msg m = {op, n, to};
    long r = -99;
    if (write(f->cmd, &m, sizeof m) != (ssize_t)sizeof m ||
        read(f->res, &r, sizeof r) != (ssize_t)sizeof r)
        return -99;
    return r;
}

static void fl_child(fx *x, int cmd, int res)
{
    sop_db_options o = fx_opts(x, NULL);
    sop_db *db;
    if (sop_db_open(x->db, &o, &db))
        _exit(3);
    fl_msg m;
    while (read(cmd, &m, sizeof m) == (ssize_t)sizeof m && m.op != 'Q') {
        long r = m.op == 'S' ? seen_keys(db, m.n) : put_range(db, m.n, m.to, 1);
        if (write(res, &r, sizeof r) != (ssize_t)sizeof r)
            _exit(4);
    }
    _exit(sop_db_close(db) ? 5 : 0);
}

static void fl_start(follower *f, fx *x, int forked)
{
    memset(f, 0, sizeof *f);
    if (!forked) {
        f->db = fx_open(x, NULL);
        return;
    }
    int c[2], r[2];
    assert_int_equal(pipe(c), 0);
    assert_int_equal(pipe(r), 0);
    f->pid = fork();
    assert_true(f->pid >= 0);
    if (f->pid == 0) {
        close(c[1]);
        close(r[0]);
        fl_child(x, c[0], r[1]);
    }
    close(c[0]);
    close(r[1]);
    f->cmd = c[1];
    f->res = r[0];
}

static void fl_stop(follower *f)
{
    if (f->db) {
        assert_int_equal(sop_db_close(f->db), 0);
        return;
    }
    fl_msg m = {'Q', 0, 0};
    assert_int_equal(write(f->cmd, &m, sizeof m), (ssize_t)sizeof m);
    int status;
    waitpid(f->pid, &status, 0);
    close(f->cmd);
    close(f->res);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

/* The writer's VFS: posix, but its creation of segment 2's shard file on
 * drive g_hook_drive (after those of drives 0 .. g_hook_drive - 1: the
 * order of vfs_ec.c) first runs g_hook: the moment another handle that
 * follows the log finds some shard files of the new segment and not
 * others. */
static sop_vfs g_hook_vfs;
static int g_hook_drive;
static void (*g_hook)(void);
static follower *g_hook_fl;

static int hook_open(sop_vfs *v, const char *path, int flags, unsigned mode, sop_file **out)
{
    (void)v;
    char pat[32];
    snprintf(pat, sizeof pat, "/drive%d/seg-00000002", g_hook_drive);
    size_t pl = strlen(path), ql = strlen(pat);
    if ((flags & SOP_O_CREATE) && g_hook && pl >= ql && strcmp(path + pl - ql, pat) == 0) {
        void (*h)(void) = g_hook;
        g_hook = NULL;
        h();
    }
    return sop_vfs_posix()->open(sop_vfs_posix(), path, flags, mode, out);
}

static void hook_follow(void) { fl_call(g_hook_fl, 'S', 1, 0); } /* follows the log */

static int shard_exists(const fx *x, uint32_t d, const char *name)
{
    char p[700];
    snprintf(p, sizeof p, "%s/%s", x->drv[d], name);
    return access(p, F_OK) == 0;
}

/* Writer and follower on one database (4 drives, parity 2). The writer
 * rotates into segment 2; while it has created that segment's shard files
 * on drives 0 .. @drive - 1 only, the follower follows the log. Then the
 * follower must see every commit made in segment 2 afterwards (with fewer
 * than k shard files open it saw none: a stale read), its own commits must
 * succeed (it wrote over drive 0's first stripe and failed with EIO) and
 * land on every drive (with k it wrote degraded stripes, skipping the
 * drives it had not opened), and a repair afterwards finds nothing bad. */
static void race_scenario(const char *name, int drive, int forked)
{
    fx x;
    fx_init(&x, name, 4, 2);
    g_hook_vfs = *sop_vfs_posix();
    g_hook_vfs.open = hook_open;
    g_hook_drive = drive;
    follower fl;
    fl_start(&fl, &x, forked); /* a forked one opens the database first */
    sop_db *a = fx_open(&x, &g_hook_vfs);
    assert_int_equal(put_range(a, 0, 10, 5), 0);
    assert_int_equal(fl_call(&fl, 'S', 10, 0), 10);
    g_hook_fl = &fl;
    g_hook = hook_follow;
    unsigned n = 10;
    while (!shard_exists(&x, 3, "seg-00000002") && n < 5000) {
        assert_int_equal(put_range(a, n, n + 25, 5), 0);
        n += 25;
    }
    assert_int_equal(put_range(a, n, n + 25, 5), 0); /* commits in segment 2 */
    n += 25;
    assert_null(g_hook); /* it ran */
    assert_int_equal(fl_call(&fl, 'S', n, 0), n); /* no stale read */
    assert_int_equal(fl_call(&fl, 'P', n, n + 5), 0); /* its commits, in segment 2 */
    n += 5;
    assert_int_equal(seen_keys(a, n), n);
    assert_int_equal(put_range(a, n, n + 25, 5), 0);
    n += 25;
    assert_int_equal(fl_call(&fl, 'S', n, 0), n);
    fl_stop(&fl);
    assert_int_equal(sop_db_close(a), 0);
    sop_repair_report r = repair(&x);
    assert_int_equal(r.bad_shards, 0); /* nothing written over, no degraded stripe */
    assert_int_equal(r.unrecoverable, 0);
    assert_true(r.segments >= 2);
    sop_db *db = fx_open(&x, NULL);
    assert_int_equal(count_keys(db, n, NULL), n);
    check_clean(db);
    assert_int_equal(sop_db_close(db), 0);
}

/* Standalone, two handles in this process: the follower got drive 0's
 * shard file only (fewer than k = 2), or drives 0 and 1 (k, not n). */
static void test_follow_during_creation(void **st)
{
    (void)st;
    race_scenario("race1", 1, 0);
    race_scenario("race2", 2, 0);
    race_scenario("race3", 3, 0);
}

/* The same with the follower in another process. */
static void test_follow_during_creation_2proc(void **st)
{
    (void)st;
    race_scenario("race1p", 1, 1);
    race_scenario("race2p", 2, 1);
}

static void hook_kill(void) { raise(SIGKILL); }

/* A writer killed while it creates segment 2's shard files (after
 * drive @drive - 1's): the next writer appends to that segment, which
 * then has fewer than n shard files (fewer than k with @drive = 1). Its
 * commits must work, and land on every drive. */
static void killed_creator(const char *name, int drive)
{
    fx x;
    fx_init(&x, name, 4, 2);
    sop_db *db = fx_open(&x, NULL);
    assert_int_equal(put_range(db, 0, 10, 5), 0);
    assert_int_equal(sop_db_close(db), 0);
    g_hook_vfs = *sop_vfs_posix();
    g_hook_vfs.open = hook_open;
    g_hook_drive = drive;
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        g_hook = hook_kill;
        sop_db_options o = fx_opts(&x, &g_hook_vfs);
        sop_db *cdb;
        if (sop_db_open(x.db, &o, &cdb))
            _exit(3);
        put_range(cdb, 10, 5000, 5);
        _exit(4); /* not killed */
    }
    int status;
    waitpid(pid, &status, 0);
    assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    assert_true(shard_exists(&x, (uint32_t)drive - 1, "seg-00000002"));
    assert_false(shard_exists(&x, (uint32_t)drive, "seg-00000002"));
    db = fx_open(&x, NULL);
    unsigned prefix, cnt = count_keys(db, 5000, &prefix);
    assert_int_equal(cnt, prefix);
    assert_true(prefix >= 10);
    assert_int_equal(put_range(db, prefix, prefix + 50, 5), 0);
    assert_int_equal(sop_db_close(db), 0);
    db = fx_open(&x, NULL);
    assert_int_equal(count_keys(db, prefix + 50, NULL), prefix + 50);
    check_clean(db);
    assert_int_equal(sop_db_close(db), 0);
    for (uint32_t d = 0; d < 4; d++)
        assert_true(shard_exists(&x, d, "seg-00000002"));
    sop_repair_report r = repair(&x);
    assert_int_equal(r.bad_shards, 0);
    assert_int_equal(r.unrecoverable, 0);
}

static void test_killed_creator(void **st)
{
    (void)st;
    killed_creator("kcreate1", 1);
    killed_creator("kcreate3", 3);
}

int main(int argc, char **argv)
{
    g_argc = argc;
    g_argv = argv;
    if (argc == 3 && strcmp(argv[1], "kill-child") == 0)
        return kill_child(argv[2]);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_drive_deleted_then_repair),
        cmocka_unit_test(test_bitflips),
        cmocka_unit_test(test_write_failures),
        cmocka_unit_test(test_open_refusals),
        cmocka_unit_test(test_killed_writer),
        cmocka_unit_test(test_two_processes),
        cmocka_unit_test(test_follow_during_creation),
        cmocka_unit_test(test_follow_during_creation_2proc),
        cmocka_unit_test(test_killed_creator),
    };
    tu_seed();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
