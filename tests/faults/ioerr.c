/*
 * ioerr.c - I/O error sweep (reliability plan C3).
 *
 * For each operation X and each fault class F, for transient and
 * persistent faults, for n = 1, 2, ...: the database directory is restored
 * from a snapshot (plain stdio copy), opened through the fault VFS, the
 * n-th I/O call of X matching F's mask is made to fail, and then:
 *   1. X must return (an alarm catches hangs) with SOP_OK or one of the
 *      codes its documentation in sop.h lists (table "allowed" below);
 *   2. on the same handle, with the fault disarmed: if it is in the panic
 *      state, every later call (begin READ/WRITE, checkpoint, check)
 *      returns SOP_EPANIC; otherwise sop_db_check() is clean and the
 *      content is the state before or after X (a read error must leave the
 *      database usable);
 *   3. sop_db_close() returns SOP_OK (the fault is disarmed; after a panic
 *      it only releases the handle);
 *   4. reopened with the real VFS, sop_db_check() is clean and the content
 *      (a signature of every store: names, keys, values, counts) is exactly
 *      the state before X or after X, never a mix.
 * The sweep of (X, F, mode) stops at the first n whose fault was not
 * reached (fault_vfs_triggered() == 0); n - 1 is its number of injection
 * points.
 *
 * Operations X (the snapshot has commits after its last checkpoint):
 *   open     open + recovery (replays the un-checkpointed commits and
 *            checkpoints)
 *   repair   the same, with one registry block torn (its second half
 *            garbage) and a valid registry.dw that repairs it at open
 *   compact  the same, on a snapshot with several MiB of dead images over
 *            several segments: the checkpoint at open compacts (relocates
 *            live images, deletes emptied segments)
 *   small    a small write transaction (begin .. commit), cold cache
 *   large    a transaction of values > inline_max (own blobs), over 4 MiB
 *            in all (the commit writes in chunks)
 *   ckpt     sop_db_checkpoint() after an unsynced commit (SYNC_NONE)
 *   close    sop_db_close() after an unsynced commit (SYNC_NONE)
 *   check    sop_db_check(), cold cache
 * (compact and repair run persistent faults only for ENOSPC and SYNC, to
 * bound the run time: compact copies several MiB per iteration, and repair
 * repeats open but for the registry.dw path.)
 * Fault classes F:
 *   EIO      -EIO on any call except close
 *   ENOSPC   -ENOSPC on write, sync, create, truncate, mkdir
 *   SHORT    short read (half the bytes, as if at end of file) or short
 *            write (half written, then -EIO), on read and write
 *   SYNC     -EIO on sync and sync_dir
 * For ENOSPC and SYNC (calls that change durable state) a fault that was
 * reached must make X fail: a failed write or sync is never ignored, and a
 * failed fsync is never retried into a success. When it happens inside
 * sop_txn_commit() or sop_db_checkpoint(), the handle must then be in the
 * panic state (sop.h says so of any failed checkpoint; a failure before it
 * wrote anything, such as taking the commit lock, is not held to that).
 *
 * Allowed return codes (from sop.h; SOP_ECORRUPT also for SHORT, where a
 * read returned fewer bytes than the file has, except from ckpt and close,
 * which read nothing):
 *   open, repair, compact  OK, -EIO, SOP_EFULL
 *   small, large, ckpt     OK, -EIO, SOP_EPANIC, SOP_EFULL
 *   close                  OK, -EIO, SOP_EFULL
 *   check                  OK, -EIO
 * Content after reopen: open/repair/compact/check: the snapshot's;
 * ckpt/close: the snapshot's plus the commit made before X (nothing
 * committed is lost);
 * small/large: before or after, and exactly "after" when X returned SOP_OK,
 * exactly "before" when X failed before sop_txn_commit() was called.
 *
 * Then explicit panic tests: a commit whose fsync (or append) fails must
 * return -EIO or SOP_EPANIC (SOP_EFULL or SOP_EPANIC for ENOSPC) and every
 * later call - on new and on already open transactions, stores and cursors
 * - returns SOP_EPANIC until the handle is closed; the reopened database
 * holds the transaction all or nothing. And the same with power cut right
 * after the failed fsync (fault VFS power-loss model, in a child process):
 * the unsynced commit may be lost, but never half of it.
 *
 * Prints per X the number of injection points (per fault class, t =
 * transient, p = persistent), a tally of the failed checks (each kind once,
 * with its count and the first occurrence), and last
 * "ioerr: <points> injection points, <bad> bad", where <bad> counts the
 * injection points and panic cases in which at least one check failed;
 * exits 1 when any check failed (2 on a setup error, 3 on a hang).
 * Options: --only <X> (one operation, or "panic"), --verbose.
 */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fault_sweep.h"
#include "fault_vfs.h"
#include "sop/sop.h"
#include "testutil.h"

#define ITER_ALARM_S 60 /* one iteration longer than this is a hang */
static int g_verbose;

/* ------------------------------------------------------------------ */
/* Files                                                              */
/* ------------------------------------------------------------------ */

static uint64_t file_size(const char *path)
{
    struct stat st;
    if (stat(path, &st))
        fs_fatal("stat %s: %s", path, strerror(errno));
    return (uint64_t)st.st_size;
}

static int count_segments(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        fs_fatal("opendir %s", dir);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        n += strncmp(e->d_name, "seg-", 4) == 0;
    closedir(d);
    return n;
}

/* ------------------------------------------------------------------ */
/* Content signature                                                  */
/* ------------------------------------------------------------------ */

#define MAX_STORES 16
typedef struct names {
    int n;
    char name[MAX_STORES][SOP_STORE_NAME_MAX + 1];
} names;

static int collect_name(const char *name, void *ctx)
{
    names *ns = ctx;
    if (ns->n >= MAX_STORES)
        return SOP_EFULL;
    snprintf(ns->name[ns->n++], sizeof ns->name[0], "%s", name);
    return 0;
}

/* A signature of every store: its name, its items in order (key, value),
 * and its count (which must equal the items scanned). */
static int db_sig(sop_db *db, uint64_t *out)
{
    sop_txn *txn;
    int rc = sop_txn_begin(db, SOP_TXN_READ, 0, &txn);
    if (rc)
        return rc;
    names ns = {0};
    uint64_t h = FS_FNV_INIT;
    rc = sop_store_list(txn, collect_name, &ns);
    for (int i = 0; !rc && i < ns.n; i++) {
        sop_store *s;
        rc = sop_store_open(txn, ns.name[i], &s);
        if (rc)
            break;
        fs_fnv_u64(&h, strlen(ns.name[i]));
        fs_fnv(&h, ns.name[i], strlen(ns.name[i]));
        uint64_t count = 0, items = 0;
        rc = sop_store_count(s, &count);
        sop_cursor *c = NULL;
        if (!rc)
            rc = sop_cursor_open(s, &c);
        if (!rc)
            rc = sop_cursor_first(c);
        while (!rc) {
            sop_val k, v;
            rc = sop_cursor_get(c, &k, &v);
            if (rc)
                break;
            fs_fnv_u64(&h, k.size);
            fs_fnv(&h, k.data, k.size);
            fs_fnv_u64(&h, v.size);
            fs_fnv(&h, v.data, v.size);
            items++;
            rc = sop_cursor_next(c);
        }
        if (rc == SOP_ENOTFOUND)
            rc = 0;
        sop_cursor_close(c);
        if (!rc && items != count) {
            fprintf(stderr, "ioerr: store %s: count %" PRIu64 " but %" PRIu64 " items\n", ns.name[i],
                    count, items);
            rc = SOP_ECORRUPT;
        }
        fs_fnv_u64(&h, items);
    }
    sop_txn_rollback(txn);
    *out = h;
    return rc;
}

/* ------------------------------------------------------------------ */
/* Workloads                                                          */
/* ------------------------------------------------------------------ */

static void mkval(char *buf, size_t len, unsigned tag)
{
    uint64_t s = tag * 0x9e3779b97f4a7c15ull + 1;
    for (size_t i = 0; i < len; i++)
        buf[i] = (char)('A' + tu_rand(&s) % 58);
}

static int put(sop_store *s, const char *key, size_t vlen, unsigned tag)
{
    static char buf[3u << 20];
    if (vlen > sizeof buf)
        vlen = sizeof buf;
    mkval(buf, vlen, tag);
    sop_val k = {key, strlen(key)}, v = {buf, vlen};
    return sop_upsert(s, &k, &v);
}

static int put_num(sop_store *s, int64_t key, size_t vlen, unsigned tag)
{
    char buf[64];
    mkval(buf, vlen, tag);
    sop_val k = {&key, sizeof key}, v = {buf, vlen};
    return sop_upsert(s, &k, &v);
}

static int del(sop_store *s, const char *key)
{
    sop_val k = {key, strlen(key)};
    return sop_remove(s, &k);
}

static sop_db_options db_opts(sop_vfs *vfs, int sync_none)
{
    sop_db_options o;
    sop_db_options_init(&o);
    o.vfs = vfs;
    o.segment_bytes = 1u << 20;
    o.cache_bytes = 4u << 20;
    if (sync_none)
        o.sync = SOP_SYNC_NONE;
    return o;
}

/* The stores: "acct" (small values, 2 levels at node_bytes 1024), "docs"
 * (some values in blobs), "nums" (int64 keys). */
static int fixture_txn(sop_db *db, int step)
{
    sop_txn *txn;
    int rc = sop_txn_begin(db, SOP_TXN_WRITE, 0, &txn);
    if (rc)
        return rc;
    sop_store *acct = NULL, *docs = NULL, *nums = NULL;
    if (step == 0) {
        sop_store_options so;
        sop_store_options_init(&so);
        so.node_bytes = 1024;
        rc = sop_store_create(txn, "acct", &so, &acct);
        if (!rc)
            rc = sop_store_create(txn, "docs", &so, &docs);
        so.order = SOP_ORDER_INT64;
        if (!rc)
            rc = sop_store_create(txn, "nums", &so, &nums);
    } else {
        rc = sop_store_open(txn, "acct", &acct);
        if (!rc)
            rc = sop_store_open(txn, "docs", &docs);
        if (!rc)
            rc = sop_store_open(txn, "nums", &nums);
    }
    char key[32];
    switch (step) {
    case 0:
        for (int i = 0; !rc && i < 60; i++) {
            snprintf(key, sizeof key, "a%03d", i);
            rc = put(acct, key, 16 + (size_t)(i % 13), (unsigned)i);
        }
        for (int i = 0; !rc && i < 12; i++) {
            snprintf(key, sizeof key, "doc%02d", i);
            rc = put(docs, key, i % 3 == 0 ? 600 + (size_t)i * 100 : 40, 1000u + (unsigned)i);
        }
        for (int i = 0; !rc && i < 40; i++)
            rc = put_num(nums, (int64_t)i * 7 - 100, 12, 2000u + (unsigned)i);
        break;
    case 1: /* after the checkpoint of a close: replayed at the next open */
        for (int i = 0; !rc && i < 5; i++) {
            snprintf(key, sizeof key, "a%03d", i * 11);
            rc = put(acct, key, 20, 3000u + (unsigned)i);
        }
        if (!rc)
            rc = put(docs, "doc99", 1500, 3100);
        break;
    case 2:
        if (!rc)
            rc = del(acct, "a007");
        if (!rc)
            rc = del(acct, "a008");
        for (int i = 0; !rc && i < 2; i++)
            rc = put_num(nums, 1000 + i, 12, 3200u + (unsigned)i);
        break;
    default:
        rc = -EINVAL;
    }
    if (rc) {
        sop_txn_rollback(txn);
        return rc;
    }
    return sop_txn_commit(txn);
}

/* X = small: a few updates, a new key, a removal, in two stores. @stage is
 * set to 1 when sop_txn_commit() is called. */
static int txn_small(sop_db *db, int *stage)
{
    sop_txn *txn;
    int rc = sop_txn_begin(db, SOP_TXN_WRITE, 0, &txn);
    if (rc)
        return rc;
    sop_store *acct = NULL, *nums = NULL;
    rc = sop_store_open(txn, "acct", &acct);
    if (!rc)
        rc = put(acct, "a010", 24, 4000);
    if (!rc)
        rc = put(acct, "a041", 24, 4001);
    if (!rc)
        rc = put(acct, "a500", 24, 4002);
    if (!rc)
        rc = del(acct, "a033");
    if (!rc)
        rc = sop_store_open(txn, "nums", &nums);
    if (!rc)
        rc = put_num(nums, -100, 30, 4003);
    if (rc) {
        sop_txn_rollback(txn);
        return rc;
    }
    *stage = 1;
    return sop_txn_commit(txn);
}

/* X = large: values far above inline_max (256 at node_bytes 1024). */
static int txn_large(sop_db *db, int *stage)
{
    sop_txn *txn;
    int rc = sop_txn_begin(db, SOP_TXN_WRITE, 0, &txn);
    if (rc)
        return rc;
    sop_store *docs = NULL;
    rc = sop_store_open(txn, "docs", &docs);
    if (!rc)
        rc = put(docs, "big-a", 3000, 5000);
    if (!rc)
        rc = put(docs, "big-b", 9000, 5001);
    if (!rc)
        rc = put(docs, "big-c", 20000, 5002);
    if (!rc)
        rc = put(docs, "doc03", 4000, 5003); /* replaces a blob by a blob */
    if (!rc)
        rc = put(docs, "doc06", 10, 5004);   /* replaces a blob by an inline value */
    /* over 4 MiB in all: the commit writes its records in several chunks */
    if (!rc)
        rc = put(docs, "big-d", 3u << 20, 5005);
    if (!rc)
        rc = put(docs, "big-e", 3u << 20, 5006);
    if (rc) {
        sop_txn_rollback(txn);
        return rc;
    }
    *stage = 1;
    return sop_txn_commit(txn);
}

/* The commit made before X = ckpt and X = close. */
static int txn_prep(sop_db *db)
{
    sop_txn *txn;
    int rc = sop_txn_begin(db, SOP_TXN_WRITE, 0, &txn);
    if (rc)
        return rc;
    sop_store *acct = NULL, *docs = NULL;
    rc = sop_store_open(txn, "acct", &acct);
    if (!rc)
        rc = sop_store_open(txn, "docs", &docs);
    for (int i = 0; !rc && i < 6; i++) {
        char key[32];
        snprintf(key, sizeof key, "p%03d", i);
        rc = put(acct, key, 30, 6000u + (unsigned)i);
    }
    if (!rc)
        rc = put(docs, "doc01", 2500, 6100);
    if (rc) {
        sop_txn_rollback(txn);
        return rc;
    }
    return sop_txn_commit(txn);
}

/* ------------------------------------------------------------------ */
/* Operations under test                                              */
/* ------------------------------------------------------------------ */

enum { X_OPEN, X_REPAIR, X_COMPACT, X_SMALL, X_LARGE, X_CKPT, X_CLOSE, X_CHECK, NX };
static const char *const x_name[NX] = {"open",  "repair", "compact", "small",
                                       "large", "ckpt",   "close",   "check"};

typedef struct xctx {
    int x;
    sop_vfs *fv;
    sop_db *db;
    int opened; /* db is a usable (not failed-open) handle */
    int stage;  /* commit X: sop_txn_commit() was called */
    const char *dir;
} xctx;

static int x_sync_none(int x) { return x == X_CKPT || x == X_CLOSE; }

static void open_or_die(xctx *c)
{
    sop_db_options o = db_opts(c->fv, x_sync_none(c->x));
    int rc = sop_db_open(c->dir, &o, &c->db);
    if (rc)
        fs_fatal("unarmed open: %s (%s)", sop_err_name(rc), sop_db_errmsg(c->db));
    c->opened = 1;
}

/* Everything before X (nothing armed). */
static void x_prep(xctx *c)
{
    switch (c->x) {
    case X_OPEN:
    case X_REPAIR:
    case X_COMPACT:
        return;
    case X_CKPT:
    case X_CLOSE: {
        open_or_die(c);
        int rc = txn_prep(c->db);
        if (rc)
            fs_fatal("unarmed prep commit: %s (%s)", sop_err_name(rc), sop_db_errmsg(c->db));
        return;
    }
    default:
        open_or_die(c);
    }
}

/* X itself (armed). */
static int x_run(xctx *c)
{
    int rc;
    uint64_t problems = 0;
    switch (c->x) {
    case X_OPEN:
    case X_REPAIR:
    case X_COMPACT: {
        sop_db_options o = db_opts(c->fv, 0);
        rc = sop_db_open(c->dir, &o, &c->db);
        c->opened = rc == 0;
        if (rc && !*sop_db_errmsg(c->db))
            fs_bad("open failed with %s but sop_db_errmsg() is empty", sop_err_name(rc));
        return rc;
    }
    case X_SMALL:
        return txn_small(c->db, &c->stage);
    case X_LARGE:
        return txn_large(c->db, &c->stage);
    case X_CKPT:
        return sop_db_checkpoint(c->db);
    case X_CLOSE:
        rc = sop_db_close(c->db);
        if (rc == SOP_EBUSY)
            fs_fatal("close: SOP_EBUSY with no transaction open");
        c->db = NULL;
        c->opened = 0;
        return rc;
    case X_CHECK:
        rc = sop_db_check(c->db, NULL, NULL, &problems);
        if (rc == SOP_ECORRUPT && !problems)
            fs_bad("check returned SOP_ECORRUPT with 0 problems");
        return rc;
    }
    return -EINVAL;
}

/* ------------------------------------------------------------------ */
/* Fault classes: fs_kinds[] (fault_sweep.h), all four                */
/* ------------------------------------------------------------------ */

static int allowed(int x, int f, int rc)
{
    if (rc == SOP_OK || rc == -EIO)
        return 1;
    if (rc == SOP_ECORRUPT && f == FS_SHORT && x != X_CKPT && x != X_CLOSE)
        return 1;
    switch (x) {
    case X_OPEN:
    case X_REPAIR:
    case X_COMPACT:
    case X_CLOSE:
        return rc == SOP_EFULL;
    case X_SMALL:
    case X_LARGE:
    case X_CKPT:
        return rc == SOP_EPANIC || rc == SOP_EFULL;
    default:
        return 0;
    }
}

/* ------------------------------------------------------------------ */
/* The sweep                                                          */
/* ------------------------------------------------------------------ */

static const char *g_snap, *g_snap_torn, *g_snap_compact, *g_work;
static uint64_t g_sig_before[NX], g_sig_after[NX]; /* content signatures */
static uint64_t g_bad_rc[NX], g_bad_state[NX];

static const char *snap_for(int x)
{
    return x == X_REPAIR ? g_snap_torn : x == X_COMPACT ? g_snap_compact : g_snap;
}

static int sig_ok(int x, uint64_t s, int rc, int stage)
{
    uint64_t before = g_sig_before[x], after = g_sig_after[x];
    if (x == X_SMALL || x == X_LARGE) {
        if (rc == SOP_OK)
            return s == after;
        if (!stage)
            return s == before;
    }
    return s == before || s == after;
}

/* Reopens with the real VFS: check clean, content allowed. */
static void verify_reopen(int x, int rc, int stage)
{
    sop_db_options o = db_opts(NULL, 0);
    sop_db *db;
    int orc = sop_db_open(g_work, &o, &db);
    if (orc) {
        fs_bad("reopen with the real VFS: %s (%s)", sop_err_name(orc), sop_db_errmsg(db));
        g_bad_state[x]++;
        sop_db_close(db);
        return;
    }
    uint64_t problems = 0;
    int crc = sop_db_check(db, NULL, NULL, &problems);
    if (crc) {
        fs_bad("check after reopen: %s, %" PRIu64 " problems (%s)", sop_err_name(crc), problems,
               sop_db_errmsg(db));
        g_bad_state[x]++;
    }
    uint64_t s = 0;
    int src = db_sig(db, &s);
    if (src) {
        fs_bad("content after reopen: %s (%s)", sop_err_name(src), sop_db_errmsg(db));
        g_bad_state[x]++;
    } else if (!sig_ok(x, s, rc, stage)) {
        fs_bad("content after reopen is neither the state before nor after X (X returned %s, "
               "commit %s)",
               sop_err_name(rc), stage ? "called" : "not called");
        g_bad_state[x]++;
    }
    int clrc = sop_db_close(db);
    if (clrc)
        fs_bad("close after reopen: %s", sop_err_name(clrc));
}

/* One iteration; returns whether the armed fault was reached. */
static int iteration(int x, int f, int persistent, uint64_t n)
{
    const fs_kind *fc = &fs_kinds[f];
    fs_case_begin_nth(ITER_ALARM_S, x_name[x], f, persistent, n);
    fs_copy_dir(snap_for(x), g_work);
    xctx c = {.x = x, .dir = g_work};
    c.fv = fault_vfs_new(NULL);
    if (!c.fv)
        fs_fatal("fault_vfs_new");
    x_prep(&c);
    fault_vfs_fail_nth(c.fv, fc->mask, n, fc->err, persistent);
    int rc = x_run(&c);
    uint64_t hit = fault_vfs_triggered(c.fv);
    fault_vfs_disarm(c.fv);
    if (g_verbose)
        fprintf(stderr, "ioerr: [%s] -> %s, hit %" PRIu64 "\n", fs_where_now(), sop_err_name(rc),
                hit);

    if (!allowed(x, f, rc)) {
        fs_bad("X returned %s, not a documented result for this operation (%s)", sop_err_name(rc),
               c.db ? sop_db_errmsg(c.db) : "");
        g_bad_rc[x]++;
    }
    if (!hit && rc)
        fs_bad("X failed with %s but no fault was injected", sop_err_name(rc));
    if (hit && fc->mutating && rc == SOP_OK)
        fs_bad("a failed %s was ignored: X returned SOP_OK", f == FS_SYNC ? "sync" : "write");

    /* the same handle, fault disarmed */
    if (c.db && c.opened) {
        /* a failed write or sync in commit or checkpoint panics (a failure
         * before either writes anything, e.g. taking the commit lock, need
         * not) */
        int must_panic = rc == SOP_EPANIC ||
                         ((x == X_SMALL || x == X_LARGE || x == X_CKPT) &&
                          (c.stage || x == X_CKPT) && hit && fc->mutating && rc);
        if (fs_panicked(c.db)) {
            fs_panic_sticks(c.db);
            int prc = sop_db_checkpoint(c.db);
            if (prc != SOP_EPANIC)
                fs_bad("panicked handle: checkpoint returned %s", sop_err_name(prc));
        } else {
            if (must_panic)
                fs_bad("X returned %s (after a failed write/sync in commit, or a failed "
                       "checkpoint), but the handle is not in the panic state",
                       sop_err_name(rc));
            uint64_t problems = 0;
            int crc = sop_db_check(c.db, NULL, NULL, &problems);
            if (crc)
                fs_bad("check on the same handle after X: %s, %" PRIu64 " problems (%s)",
                       sop_err_name(crc), problems, sop_db_errmsg(c.db));
            uint64_t s = 0;
            int src = db_sig(c.db, &s);
            if (src)
                fs_bad("content on the same handle after X: %s (%s)", sop_err_name(src),
                       sop_db_errmsg(c.db));
            else if (!sig_ok(x, s, rc, c.stage))
                fs_bad("content on the same handle after X (%s) is neither before nor after",
                       sop_err_name(rc));
        }
    }
    if (c.db) {
        int clrc = sop_db_close(c.db);
        if (clrc && c.opened)
            fs_bad("close after X (fault disarmed): %s", sop_err_name(clrc));
        else if (clrc && !c.opened)
            fs_bad("close of a failed-open handle: %s", sop_err_name(clrc));
    }
    fault_vfs_free(c.fv);
    verify_reopen(x, rc, c.stage);
    fs_case_end();
    return hit != 0;
}

/* Runs X without faults: its result must be OK; returns the signature. */
static uint64_t reference_run(int x)
{
    fs_where("reference X=%s", x_name[x]);
    fs_copy_dir(snap_for(x), g_work);
    xctx c = {.x = x, .dir = g_work};
    c.fv = fault_vfs_new(NULL);
    x_prep(&c);
    fault_vfs_reset_ops(c.fv);
    int segs = count_segments(g_work);
    int rc = x_run(&c);
    if (rc)
        fs_fatal("X without fault: %s (%s)", sop_err_name(rc), c.db ? sop_db_errmsg(c.db) : "");
    if (g_verbose)
        fs_print_ops(c.fv, x_name[x]);
    if (x == X_COMPACT)
        printf("ioerr: X=compact: the open went from %d to %d segment files%s\n", segs,
               count_segments(g_work),
               count_segments(g_work) < segs ? "" : " (compaction did not delete any: not covered)");
    if (c.db && sop_db_close(c.db))
        fs_fatal("close");
    fault_vfs_free(c.fv);
    sop_db_options o = db_opts(NULL, 0);
    sop_db *db;
    rc = sop_db_open(g_work, &o, &db);
    if (rc)
        fs_fatal("reopen: %s", sop_err_name(rc));
    uint64_t problems;
    rc = sop_db_check(db, NULL, NULL, &problems);
    if (rc)
        fs_fatal("check: %s", sop_err_name(rc));
    uint64_t s;
    rc = db_sig(db, &s);
    if (rc)
        fs_fatal("sig: %s", sop_err_name(rc));
    sop_db_close(db);
    return s;
}

/* ------------------------------------------------------------------ */
/* Fixture                                                            */
/* ------------------------------------------------------------------ */

/* Builds the snapshot: stores with data, checkpointed at a close, then two
 * commits that only the log holds (copied while the database is open). */
static void build_fixture(const char *base, const char *snap)
{
    fs_where("fixture");
    sop_db_options o = db_opts(NULL, 0);
    sop_db *db;
    int rc = sop_db_open(base, &o, &db);
    if (!rc)
        rc = fixture_txn(db, 0);
    if (rc)
        fs_fatal("fixture: %s (%s)", sop_err_name(rc), sop_db_errmsg(db));
    if ((rc = sop_db_close(db)) != 0)
        fs_fatal("fixture close: %s", sop_err_name(rc));
    rc = sop_db_open(base, &o, &db);
    if (!rc)
        rc = fixture_txn(db, 1);
    if (!rc)
        rc = fixture_txn(db, 2);
    if (rc)
        fs_fatal("fixture: %s (%s)", sop_err_name(rc), sop_db_errmsg(db));
    fs_copy_dir(base, snap); /* every commit is synced (SYNC_FULL) */
    sop_db_close(db);
}

/* The torn-registry snapshot: the second half of registry block 0 (listed
 * in registry.dw, which the last checkpoint wrote) is garbage, as if the
 * checkpoint's in-place write was cut; open must repair it from the dw. */
static void build_torn(const char *snap, const char *torn)
{
    fs_copy_dir(snap, torn);
    char path[4096];
    snprintf(path, sizeof path, "%s/registry.dw", torn);
    if (file_size(path) < 32 + 4096)
        fs_fatal("registry.dw holds no block");
    snprintf(path, sizeof path, "%s/registry", torn);
    FILE *fp = fopen(path, "r+b");
    if (!fp)
        fs_fatal("open %s", path);
    unsigned char junk[2048];
    uint64_t s = 12345;
    for (size_t i = 0; i < sizeof junk; i++)
        junk[i] = (unsigned char)tu_rand(&s);
    if (fseek(fp, 2048, SEEK_SET) || fwrite(junk, 1, sizeof junk, fp) != sizeof junk)
        fs_fatal("write %s", path);
    fclose(fp);
}

/* The compaction snapshot: a small database (checkpointed), then six
 * overwrites of a 900 kB value (several MiB of dead images over several
 * segments), copied before any checkpoint: its open replays them and the
 * checkpoint at open compacts the segments (relocating the live images of
 * the old ones) and deletes the emptied ones. */
static void build_compact(const char *tmp, const char *out)
{
    fs_where("compaction fixture");
    sop_db_options o = db_opts(NULL, 1);
    sop_db *db;
    sop_txn *txn;
    sop_store *docs;
    int rc = sop_db_open(tmp, &o, &db);
    if (!rc)
        rc = sop_txn_begin(db, SOP_TXN_WRITE, 0, &txn);
    if (!rc) {
        sop_store_options so;
        sop_store_options_init(&so);
        so.node_bytes = 1024;
        rc = sop_store_create(txn, "docs", &so, &docs);
        if (!rc)
            rc = put(docs, "doc0", 30, 7000);
        if (!rc)
            rc = put(docs, "doc1", 3000, 7001);
        if (!rc)
            rc = put(docs, "huge", 10, 7002);
        rc = rc ? (sop_txn_rollback(txn), rc) : sop_txn_commit(txn);
    }
    if (!rc)
        rc = sop_db_close(db);
    if (!rc)
        rc = sop_db_open(tmp, &o, &db);
    size_t vlen = 900000;
    char *v = malloc(vlen);
    for (int i = 0; !rc && i < 6; i++) {
        rc = sop_txn_begin(db, SOP_TXN_WRITE, 0, &txn);
        if (rc)
            break;
        mkval(v, vlen, 7100u + (unsigned)i);
        sop_val k = {"huge", 4}, val = {v, vlen};
        rc = sop_store_open(txn, "docs", &docs);
        if (!rc)
            rc = sop_upsert(docs, &k, &val);
        rc = rc ? (sop_txn_rollback(txn), rc) : sop_txn_commit(txn);
    }
    free(v);
    if (rc)
        fs_fatal("compaction fixture: %s (%s)", sop_err_name(rc), sop_db_errmsg(db));
    fs_copy_dir(tmp, out);
    sop_db_close(db);
}

/* ------------------------------------------------------------------ */
/* Explicit panic tests                                               */
/* ------------------------------------------------------------------ */

static int scan_cb(const sop_val *k, const sop_val *v, void *ctx)
{
    (void)k;
    (void)v;
    (void)ctx;
    return 0;
}

/* A commit whose segment sync (or append) fails. */
static void panic_test(const char *label, unsigned mask, int err, uint64_t nth)
{
    fs_case_begin(ITER_ALARM_S, "panic", "panic %s", label);
    fs_copy_dir(g_snap, g_work);
    sop_vfs *fv = fault_vfs_new(NULL);
    sop_db_options o = db_opts(fv, 0);
    sop_db *db;
    int rc = sop_db_open(g_work, &o, &db);
    if (rc)
        fs_fatal("open: %s", sop_err_name(rc));
    /* handles that exist before the failure */
    sop_txn *r0, *w0;
    sop_store *s0, *sw;
    sop_cursor *c0;
    if (sop_txn_begin(db, SOP_TXN_READ, 0, &r0) || sop_store_open(r0, "acct", &s0) ||
        sop_cursor_open(s0, &c0) || sop_txn_begin(db, SOP_TXN_NOCHECK, 0, &w0) ||
        sop_store_open(w0, "nums", &sw) || put_num(sw, 77777, 10, 9000))
        fs_fatal("setup");
    int stage = 0;
    fault_vfs_fail_nth(fv, mask, nth, err, 0);
    rc = txn_small(db, &stage);
    uint64_t hit = fault_vfs_triggered(fv);
    fault_vfs_disarm(fv);
    if (!hit || !stage)
        fs_fatal("the fault was not reached in commit");
    /* sync: -EIO or SOP_EPANIC (SOP_EFULL for ENOSPC); append: SOP_EPANIC,
     * or SOP_EFULL for ENOSPC */
    int want_ok = rc == SOP_EPANIC || (err == -ENOSPC ? rc == SOP_EFULL : rc == -EIO);
    if (!want_ok)
        fs_bad("commit with a failed %s returned %s", mask == FAULT_OP_SYNC ? "sync" : "append",
               sop_err_name(rc));
    if (!*sop_db_errmsg(db))
        fs_bad("empty sop_db_errmsg() after the failed commit");
    /* every later call: SOP_EPANIC (no retry of the sync ever succeeds) */
    sop_val k = {"a010", 4}, v;
    if ((rc = sop_get(s0, &k, &v)) != SOP_EPANIC)
        fs_bad("get in an older READ txn: %s", sop_err_name(rc));
    if ((rc = sop_cursor_first(c0)) != SOP_EPANIC)
        fs_bad("cursor_first in an older READ txn: %s", sop_err_name(rc));
    if ((rc = sop_scan(s0, NULL, scan_cb, NULL)) != SOP_EPANIC)
        fs_bad("scan in an older READ txn: %s", sop_err_name(rc));
    if ((rc = put_num(sw, 77778, 10, 9001)) != SOP_EPANIC)
        fs_bad("upsert in an older WRITE txn: %s", sop_err_name(rc));
    if ((rc = sop_txn_commit(w0)) != SOP_EPANIC)
        fs_bad("commit of an older WRITE txn: %s (must never succeed after a failed sync)",
               sop_err_name(rc));
    sop_txn_rollback(r0);
    sop_txn *t = NULL;
    if ((rc = sop_txn_begin(db, SOP_TXN_WRITE, 0, &t)) != SOP_EPANIC) {
        fs_bad("begin WRITE: %s", sop_err_name(rc));
        if (!rc)
            sop_txn_rollback(t);
    }
    if ((rc = sop_txn_begin(db, SOP_TXN_READ, 0, &t)) != SOP_EPANIC) {
        fs_bad("begin READ: %s", sop_err_name(rc));
        if (!rc)
            sop_txn_rollback(t);
    }
    if ((rc = sop_db_checkpoint(db)) != SOP_EPANIC)
        fs_bad("checkpoint: %s", sop_err_name(rc));
    if ((rc = sop_db_check(db, NULL, NULL, NULL)) != SOP_EPANIC)
        fs_bad("check: %s", sop_err_name(rc));
    stage = 0;
    if ((rc = txn_small(db, &stage)) != SOP_EPANIC)
        fs_bad("a new commit: %s", sop_err_name(rc));
    if ((rc = sop_db_close(db)) != SOP_OK)
        fs_bad("close of a panicked handle: %s", sop_err_name(rc));
    fault_vfs_free(fv);
    verify_reopen(X_SMALL, -EIO, 1); /* all or nothing; w0 never present */
    fs_case_end();
}

/* A failed commit sync, then power is cut (child process): the unsynced
 * commit may be lost or kept, never in part. */
static void panic_powerloss(uint64_t seed)
{
    /* no time limit until the child is done */
    fs_case_begin(0, "panic+powerloss", "panic+powerloss seed %" PRIu64, seed);
    fs_copy_dir(g_snap, g_work);
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0)
        fs_fatal("fork");
    if (pid == 0) {
        sop_vfs *fv = fault_vfs_new(NULL);
        sop_db_options o = db_opts(fv, 0);
        sop_db *db;
        if (sop_db_open(g_work, &o, &db))
            _exit(10);
        int stage = 0;
        fault_vfs_fail_nth(fv, FAULT_OP_SYNC, 1, -EIO, 0);
        int rc = txn_small(db, &stage);
        if (rc == SOP_OK || !fault_vfs_triggered(fv))
            _exit(11);
        fault_vfs_crash_now(fv, seed);
    }
    int st;
    if (waitpid(pid, &st, 0) != pid)
        fs_fatal("waitpid");
    if (!WIFEXITED(st) || WEXITSTATUS(st) != FAULT_VFS_CRASH_EXIT) {
        fs_bad("child did not reach the power cut (status %d)", st);
    } else {
        alarm(ITER_ALARM_S);
        verify_reopen(X_SMALL, -EIO, 1);
    }
    fs_case_end();
}

/* ------------------------------------------------------------------ */

int main(int argc, char **argv)
{
    const char *only;
    if (fs_args(argc, argv, &only, &g_verbose)) {
        fprintf(stderr, "usage: ioerr [--only open|repair|compact|small|large|ckpt|close|"
                        "check|panic] [--verbose]\n");
        return 2;
    }
    fs_init("ioerr");
    const char *base = tu_tmpdir("base");
    g_snap = tu_tmpdir("snap");
    g_snap_torn = tu_tmpdir("snap-torn");
    g_snap_compact = tu_tmpdir("snap-compact");
    g_work = tu_tmpdir("work");
    build_fixture(base, g_snap);
    build_torn(g_snap, g_snap_torn);
    build_compact(tu_tmpdir("compact-src"), g_snap_compact);

    /* reference runs (no fault): the state after each X; before X it is
     * the snapshot's, except for ckpt/close (their commit precedes X) and
     * compact (its own snapshot) */
    for (int x = 0; x < NX; x++)
        g_sig_after[x] = reference_run(x);
    for (int x = 0; x < NX; x++)
        g_sig_before[x] = (x == X_SMALL || x == X_LARGE) ? g_sig_after[X_OPEN] : g_sig_after[x];
    uint64_t s0 = g_sig_after[X_OPEN];
    if (g_sig_after[X_REPAIR] != s0 || g_sig_after[X_CHECK] != s0 || g_sig_after[X_SMALL] == s0 ||
        g_sig_after[X_LARGE] == s0 || g_sig_after[X_CKPT] == s0 || g_sig_after[X_COMPACT] == s0 ||
        g_sig_after[X_CKPT] != g_sig_after[X_CLOSE])
        fs_fatal("reference states are not as designed");

    uint64_t total = 0;
    for (int x = 0; x < NX; x++) {
        if (only && strcmp(only, x_name[x]))
            continue;
        uint64_t xpoints = 0;
        char detail[512];
        size_t dl = 0;
        detail[0] = 0;
        for (int f = 0; f < FS_NKINDS; f++)
            for (int p = 0; p < 2; p++) {
                /* compact (several MiB copied per iteration) and repair
                 * (open again, plus the registry.dw path): persistent
                 * faults only for the classes that fail writes and syncs */
                if ((x == X_COMPACT || x == X_REPAIR) && p && !fs_kinds[f].mutating)
                    continue;
                uint64_t n = 1;
                while (iteration(x, f, p, n))
                    n++;
                xpoints += n - 1;
                fs_detail_add(detail, sizeof detail, &dl, "%s%s/%c %" PRIu64, dl ? ", " : "",
                              fs_kinds[f].name, p ? 'p' : 't', n - 1);
            }
        printf("ioerr: X=%-6s %4" PRIu64 " injection points (%s); bad rc %" PRIu64
               ", bad state %" PRIu64 "\n",
               x_name[x], xpoints, detail, g_bad_rc[x], g_bad_state[x]);
        fflush(stdout);
        total += xpoints;
    }

    if (!only || !strcmp(only, "panic")) {
        panic_test("sync EIO", FAULT_OP_SYNC, -EIO, 1);
        panic_test("sync ENOSPC", FAULT_OP_SYNC, -ENOSPC, 1);
        panic_test("append EIO", FAULT_OP_WRITE, -EIO, 1);
        panic_test("append ENOSPC", FAULT_OP_WRITE, -ENOSPC, 1);
        panic_test("append short", FAULT_OP_WRITE, FAULT_ERR_SHORT, 1);
        for (uint64_t s = 1; s <= 8; s++)
            panic_powerloss(s);
        printf("ioerr: panic tests: 5 failed commits, 8 power cuts after a failed fsync\n");
    }

    return fs_finish(total);
}
