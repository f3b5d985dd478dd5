/*
 * combo_regress.c - regression probes of the engine gaps found while
 * combining clustered mode, erasure coding and a replica folder
 * (tests/cluster/combo.c). Each probe checks what the documentation
 * promises; each failed on the engine before its fix (EC: "Files being
 * created" in erasure-coding.md; the others: "Several processes" in
 * replication.md). Run one: cluster_combo_regress [probe]. What each
 * probe found then:
 *
 *  ec-race         erasure coding, two handles: one follows the log while
 *                  the other is creating the next segment's shard files
 *                  (drive 0's exists, drive 1's not yet: hooked in the
 *                  writer's VFS). The follower keeps a handle on that
 *                  segment with drive 0's shard only: it does not see the
 *                  commits appended there (a stale read), and its own
 *                  commit writes over drive 0's first shard there and
 *                  fails with EIO (the database panics); repair then finds
 *                  the bad shard. Seen in combo.c with 1 MiB segments.
 *  reinstate-busy  clustered mode with EC: sop_db_reinstate() must return
 *                  SOP_EBUSY while another process has the database open
 *                  (sop.h; replication.md "Several processes"). It
 *                  reinstates, while the other process, which failed over,
 *                  goes on writing the replica alone: both state files then
 *                  say "in sync" and the folders differ.
 *  open-reinstate  clustered mode: a database opened with a stale but
 *                  reachable replica must be reinstated at open (sop.h,
 *                  sop_db_reinstate); it stays stale.
 *  split-view      clustered mode, replica without EC (segments mirrored):
 *                  one process's writes to the database directory fail and
 *                  it fails over; another process, whose I/O works, still
 *                  reads the database directory: it does not see the
 *                  commits acknowledged since, commits on top of its stale
 *                  view, and after reopening acknowledged commits are
 *                  missing and sop_db_check finds the database corrupt.
 *  split-view-standalone   the same with two standalone processes.
 *
 * Exit 0 when every promise held, 1 otherwise, 77 without redis-server.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mirror.h"
#include "prefix_fault_vfs.h"
#include "redis_server.h"
#include "sop/sop.h"
#include "testutil.h"

static tu_redis g_redis;
static int g_fail;

#define GAP(cond, ...)                                                                             \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "REGRESSION %s:%d: ", __FILE__, __LINE__);                             \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
            g_fail++;                                                                              \
        }                                                                                          \
    } while (0)

typedef struct fx {
    char db[600], rep[600], drv[4][600];
    const char *drives[4];
} fx;

static void fx_init(fx *x, const char *name)
{
    const char *root = tu_tmpdir(name);
    snprintf(x->db, sizeof x->db, "%s/db", root);
    snprintf(x->rep, sizeof x->rep, "%s/replica", root);
    for (int d = 0; d < 4; d++) {
        snprintf(x->drv[d], sizeof x->drv[d], "%s/drive%d", root, d);
        x->drives[d] = x->drv[d];
    }
}

static int g_standalone; /* split-view-standalone: the same without Redis */

/* Clustered; with @ec 4 drives (parity 2); with @rep the replica folder. */
static sop_db *xopen(fx *x, int ec, int rep, sop_vfs *vfs)
{
    sop_db_options o;
    sop_db_options_init(&o);
    o.mode = g_standalone ? SOP_STANDALONE : SOP_CLUSTERED;
    o.redis_url = g_redis.url;
    o.lease_ms = 1000;
    o.segment_bytes = 1u << 20;
    o.vfs = vfs;
    if (ec) {
        o.drives = x->drives;
        o.ndrives = 4;
        o.parity = 2;
    }
    if (rep)
        o.replica_path = x->rep;
    sop_db *db;
    int rc = sop_db_open(x->db, &o, &db);
    if (rc) {
        fprintf(stderr, "open %s: %s (%s)\n", x->db, sop_strerror(rc), sop_db_errmsg(db));
        sop_db_close(db);
        return NULL;
    }
    return db;
}

/* Upserts keys [from, to) with 2 KiB values, @per a transaction. */
static int put(sop_db *db, int from, int to, int per)
{
    char val[2048];
    for (int k = from; k < to; k += per) {
        sop_txn *t;
        sop_store *s;
        int rc = sop_txn_begin(db, SOP_TXN_WRITE, 0, &t);
        if (rc)
            return rc;
        rc = sop_store_open(t, "s", &s);
        if (rc == SOP_ENOTFOUND)
            rc = sop_store_create(t, "s", NULL, &s);
        for (int i = k; !rc && i < k + per && i < to; i++) {
            char key[16];
            snprintf(key, sizeof key, "k%06d", i);
            memset(val, 'a' + i % 26, sizeof val);
            rc = sop_upsert(s, &(sop_val){key, strlen(key)}, &(sop_val){val, sizeof val});
        }
        rc = rc ? (sop_txn_rollback(t), rc) : sop_txn_commit(t);
        if (rc)
            return rc;
    }
    return 0;
}

/* How many of keys [0, n) a READ transaction of @db sees. */
static int seen(sop_db *db, int n)
{
    sop_txn *t;
    sop_store *s;
    int got = 0;
    if (sop_txn_begin(db, SOP_TXN_READ, 0, &t))
        return -1;
    if (sop_store_open(t, "s", &s) == 0)
        for (int i = 0; i < n; i++) {
            char key[16];
            snprintf(key, sizeof key, "k%06d", i);
            sop_val v;
            got += sop_get(s, &(sop_val){key, strlen(key)}, &v) == 0;
        }
    sop_txn_rollback(t);
    return got;
}

static int exists(const char *dir, const char *name)
{
    char p[700];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    return access(p, F_OK) == 0;
}

/* The writer's VFS: posix, but its creation of segment 2's shard on drive
 * 1 (after drive 0's, before drives 1..3: the order of vfs_ec.c) first
 * lets the other process follow the log: the moment any follower may hit. */
static sop_vfs g_hook_vfs;
static sop_db *g_follower;

static int hook_open(sop_vfs *v, const char *path, int flags, unsigned mode, sop_file **out)
{
    (void)v;
    if ((flags & SOP_O_CREATE) && g_follower && strstr(path, "/drive1/seg-00000002")) {
        sop_db *b = g_follower;
        g_follower = NULL;
        seen(b, 1);
    }
    return sop_vfs_posix()->open(sop_vfs_posix(), path, flags, mode, out);
}

static void probe_ec_race(void)
{
    fx x;
    fx_init(&x, "ec-race");
    g_hook_vfs = *sop_vfs_posix();
    g_hook_vfs.open = hook_open;
    sop_db *a = xopen(&x, 1, 0, &g_hook_vfs), *b = a ? xopen(&x, 1, 0, NULL) : NULL;
    if (!a || !b) {
        g_fail++;
        sop_db_close(a);
        return;
    }
    int rc = put(a, 0, 10, 10);
    GAP(rc == 0 && seen(b, 10) == 10, "setup");
    /* the writer fills segment 1 and rotates into segment 2, the other
     * process following meanwhile (in hook_open) */
    g_follower = b;
    int n = 10;
    while (!rc && !exists(x.drv[3], "seg-00000002") && n < 4000) {
        rc = put(a, n, n + 50, 50);
        n += 50;
    }
    rc = rc ? rc : put(a, n, n + 50, 10); /* commits in segment 2 */
    n += 50;
    GAP(rc == 0 && !g_follower, "writer: %s (the hook %s)", sop_strerror(rc),
        g_follower ? "did not run" : "ran");
    int sb = seen(b, n);
    GAP(sb == n, "ec-race: the other process sees %d of the %d keys acknowledged (a stale read)",
        sb, n);
    rc = put(b, n, n + 1, 1);
    GAP(rc == 0, "ec-race: its commit: %s (%s)", sop_strerror(rc), sop_db_errmsg(b));
    sop_db_close(b);
    sop_db_close(a);
    sop_db_options o;
    sop_db_options_init(&o);
    o.drives = x.drives;
    o.ndrives = 4;
    o.parity = 2;
    sop_repair_report r;
    memset(&r, 0, sizeof r);
    sop_db_repair(x.db, &o, &r);
    GAP(r.bad_shards == 0, "ec-race: afterwards %" PRIu64 " bad shards (written over)",
        r.bad_shards);
}

/* Fails the database directory of @db's process (EIO on writes) and
 * checkpoints: a failover to the replica. */
static int failover(sop_db *db, sop_vfs *pf, const fx *x)
{
    char prefix[700];
    snprintf(prefix, sizeof prefix, "%s/", x->db);
    pfx_vfs_arm(pf, 0, prefix, PF_WRITE | PF_SYNC | PF_TRUNC, 0, -EIO);
    int rc = sop_db_checkpoint(db);
    sop_replica_status st;
    sop_db_replica_status(db, &st);
    return rc || st.active != 1 || st.in_sync ? -1 : 0;
}

static void probe_reinstate_busy(void)
{
    fx x;
    fx_init(&x, "reinstate-busy");
    sop_db *p = xopen(&x, 1, 1, NULL);
    if (!p || put(p, 0, 10, 10) || sop_db_close(p)) {
        g_fail++;
        return;
    }
    int up[2], down[2];
    if (pipe(up) || pipe(down))
        abort();
    pid_t pid = fork();
    if (pid == 0) {
        /* the other process: fails over, then writes on while the parent
         * reinstates */
        sop_vfs *pf = pfx_vfs_new(NULL);
        sop_db *c = xopen(&x, 1, 1, pf);
        char b = c && failover(c, pf, &x) == 0 ? 0 : 1;
        if (write(up[1], &b, 1) != 1 || read(down[0], &b, 1) != 1)
            _exit(2);
        int rc = put(c, 1000, 1300, 10);
        rc = rc ? rc : sop_db_checkpoint(c);
        _exit(rc || sop_db_close(c) ? 3 : 0);
    }
    char b = 1;
    GAP(read(up[0], &b, 1) == 1 && b == 0, "the other process did not fail over");
    p = xopen(&x, 1, 1, NULL); /* sees the replica active, the directory stale */
    sop_replica_status st = {0};
    if (p)
        sop_db_replica_status(p, &st);
    int rc = p ? sop_db_reinstate(p) : -1;
    GAP(rc == SOP_EBUSY, "reinstate-busy: sop_db_reinstate (active %d, in sync %d) with another "
        "process inside gave %s, not SOP_EBUSY", st.active, st.in_sync, sop_strerror(rc));
    GAP(write(down[1], "x", 1) == 1, "pipe");
    int ws;
    waitpid(pid, &ws, 0);
    GAP(WIFEXITED(ws) && WEXITSTATUS(ws) == 0, "the other process failed (%#x)", ws);
    sop_db_close(p);
    sop__mstate s0, s1;
    int r0 = sop__mstate_read(sop_vfs_posix(), x.db, 0, &s0);
    int r1 = sop__mstate_read(sop_vfs_posix(), x.rep, 1, &s1);
    if (r0 || r1 || !s0.insync || !s1.insync)
        return; /* stale on record: the next open reinstates */
    /* both say "in sync": then every database file must be the same */
    static const char *const names[] = {"registry", "ckpt.0", "ckpt.1"};
    for (int i = 0; i < 3; i++) {
        char f0[700], f1[700], cmd[1500];
        snprintf(f0, sizeof f0, "%s/%s", x.db, names[i]);
        snprintf(f1, sizeof f1, "%s/%s", x.rep, names[i]);
        snprintf(cmd, sizeof cmd, "cmp -s '%s' '%s'", f0, f1);
        GAP(system(cmd) == 0, "reinstate-busy: both folders say \"in sync\" (generation %" PRIu64
            ") but %s differs", s0.gen, names[i]);
    }
}

/* Clustered, replica, no EC: the segments are mirrored too. One process
 * fails over (its writes to the database directory fail); another, whose
 * storage works, reads the database directory, which lacks the first
 * one's commits since. */
static void probe_split_view(void)
{
    fx x;
    fx_init(&x, "split-view");
    sop_vfs *pf = pfx_vfs_new(NULL);
    sop_db *a = xopen(&x, 0, 1, pf), *b = a ? xopen(&x, 0, 1, NULL) : NULL;
    if (!a || !b || put(a, 0, 10, 10) || failover(a, pf, &x)) {
        g_fail++;
        sop_db_close(b);
        sop_db_close(a);
        pfx_vfs_free(pf);
        return;
    }
    int rc = put(a, 10, 20, 5);
    GAP(rc == 0, "split-view: the process that failed over: %s", sop_strerror(rc));
    int sb = seen(b, 20);
    GAP(sb == 20, "split-view: the other process sees %d of the 20 keys acknowledged", sb);
    rc = put(b, 20, 30, 5);
    GAP(rc == 0, "split-view: the other process's commits: %s (%s)", sop_strerror(rc),
        sop_db_errmsg(b));
    sop_db_close(b);
    sop_db_close(a);
    pfx_vfs_free(pf);
    sop_db *c = xopen(&x, 0, 1, NULL);
    int n = c ? seen(c, 30) : -1;
    uint64_t problems = 0;
    rc = c ? sop_db_check(c, NULL, NULL, &problems) : -1;
    GAP(n == 30 && rc == 0, "split-view: reopened: %d of the 30 keys acknowledged, check %s "
        "(%" PRIu64 " problems)", n, sop_strerror(rc), problems);
    sop_db_close(c);
}

/* The same with two standalone processes (shared memory, LOCK). */
static void probe_split_view_standalone(void)
{
    fx x;
    fx_init(&x, "split-view-standalone");
    g_standalone = 1;
    sop_vfs *pf = pfx_vfs_new(NULL);
    sop_db *a = xopen(&x, 0, 1, pf);
    int up[2], down[2];
    if (!a || put(a, 0, 10, 10) || pipe(up) || pipe(down))
        abort();
    pid_t pid = fork();
    if (pid == 0) {
        sop_db *b = xopen(&x, 0, 1, NULL);
        char c = b ? 0 : 1;
        if (write(up[1], &c, 1) != 1 || read(down[0], &c, 1) != 1)
            _exit(9);
        int code = seen(b, 20) == 20 ? 0 : 1;
        code |= put(b, 20, 30, 5) ? 2 : 0;
        sop_db_close(b);
        _exit(code);
    }
    char c = 1;
    GAP(read(up[0], &c, 1) == 1 && c == 0, "the other process did not open");
    GAP(failover(a, pf, &x) == 0, "no failover");
    GAP(put(a, 10, 20, 5) == 0, "split-view-standalone: the process that failed over");
    GAP(write(down[1], "x", 1) == 1, "pipe");
    int ws;
    waitpid(pid, &ws, 0);
    GAP(WIFEXITED(ws) && !(WEXITSTATUS(ws) & 1), "split-view-standalone: the other process does "
        "not see the keys acknowledged after the failover");
    GAP(WIFEXITED(ws) && !(WEXITSTATUS(ws) & ~1), "split-view-standalone: the other process's "
        "commits failed (%#x)", ws);
    sop_db_close(a);
    pfx_vfs_free(pf);
    sop_db *r = xopen(&x, 0, 1, NULL);
    int n = r ? seen(r, 30) : -1;
    uint64_t problems = 0;
    int rc = r ? sop_db_check(r, NULL, NULL, &problems) : -1;
    GAP(n == 30 && rc == 0, "split-view-standalone: reopened: %d of the 30 keys acknowledged, "
        "check %s (%" PRIu64 " problems)", n, sop_strerror(rc), problems);
    sop_db_close(r);
    g_standalone = 0;
}

static void probe_open_reinstate(void)
{
    fx x;
    fx_init(&x, "open-reinstate");
    sop_vfs *pf = pfx_vfs_new(NULL);
    sop_db *db = xopen(&x, 0, 1, pf);
    if (!db || put(db, 0, 10, 10) || failover(db, pf, &x) || put(db, 10, 20, 10)) {
        g_fail++;
        sop_db_close(db);
        pfx_vfs_free(pf);
        return;
    }
    sop_db_close(db);
    pfx_vfs_free(pf);
    db = xopen(&x, 0, 1, NULL); /* alone, the folder healthy again */
    sop_replica_status st = {0};
    if (db)
        sop_db_replica_status(db, &st);
    GAP(db && st.in_sync, "open-reinstate: opened alone with the stale replica reachable: "
        "active %d, in sync %d", st.active, st.in_sync);
    sop_db_close(db);
}

int main(int argc, char **argv)
{
    int rc = tu_redis_start(&g_redis, "redis");
    if (rc == 77)
        return 77;
    if (rc)
        return 1;
    const char *only = argc > 1 ? argv[1] : NULL;
    if (!only || !strcmp(only, "ec-race"))
        probe_ec_race();
    if (!only || !strcmp(only, "reinstate-busy"))
        probe_reinstate_busy();
    if (!only || !strcmp(only, "open-reinstate"))
        probe_open_reinstate();
    if (!only || !strcmp(only, "split-view"))
        probe_split_view();
    if (!only || !strcmp(only, "split-view-standalone"))
        probe_split_view_standalone();
    tu_redis_kill(&g_redis);
    fprintf(stderr, "combo_regress: %s\n", g_fail ? "FAILED" : "ok");
    return g_fail ? 1 : 0;
}
