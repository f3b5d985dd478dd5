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

#include "check.h"
#include "cluster_fixture.h"
#include "mirror.h"
#include "prefix_fault_vfs.h"
#include "redis_server.h"
#include "sop/sop.h"
#include "testutil.h"

static tu_redis g_redis;

/* A promise that did not hold: "REGRESSION file:line: ...", counted. */
#define GAP(cond, ...) TU_CHECK_AS("REGRESSION", cond, __VA_ARGS__)

static int g_standalone; /* split-view-standalone: the same without Redis */

/* Clustered (standalone for split-view-standalone), as @x says. */
static sop_db *xopen(const cl_fx *x, sop_vfs *vfs)
{
    sop_db_options o;
    cl_options(x, g_redis.url, vfs, &o);
    if (g_standalone)
        o.mode = SOP_STANDALONE;
    return cl_open(x, &o);
}

#define VLEN 2048 /* the values' size */

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
        cl_seen(b, 1, VLEN);
    }
    return sop_vfs_posix()->open(sop_vfs_posix(), path, flags, mode, out);
}

static void probe_ec_race(void)
{
    cl_fx x;
    cl_fx_init(&x, "ec-race", 1, 0);
    g_hook_vfs = *sop_vfs_posix();
    g_hook_vfs.open = hook_open;
    sop_db *a = xopen(&x, &g_hook_vfs), *b = a ? xopen(&x, NULL) : NULL;
    if (!a || !b) {
        tu_failed++;
        sop_db_close(a);
        return;
    }
    int rc = cl_put(a, 0, 10, 10, VLEN);
    GAP(rc == 0 && cl_seen(b, 10, VLEN) == 10, "setup");
    /* the writer fills segment 1 and rotates into segment 2, the other
     * process following meanwhile (in hook_open) */
    g_follower = b;
    int n = 10;
    while (!rc && !cl_exists(x.drv[3], "seg-00000002") && n < 4000) {
        rc = cl_put(a, n, n + 50, 50, VLEN);
        n += 50;
    }
    rc = rc ? rc : cl_put(a, n, n + 50, 10, VLEN); /* commits in segment 2 */
    n += 50;
    GAP(rc == 0 && !g_follower, "writer: %s (the hook %s)", sop_strerror(rc),
        g_follower ? "did not run" : "ran");
    int sb = cl_seen(b, n, VLEN);
    GAP(sb == n, "ec-race: the other process sees %d of the %d keys acknowledged (a stale read)",
        sb, n);
    rc = cl_put(b, n, n + 1, 1, VLEN);
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
static int failover(sop_db *db, sop_vfs *pf, const cl_fx *x)
{
    pfx_vfs_arm(pf, 0, x->prefix, PF_WRITE | PF_SYNC | PF_TRUNC, 0, -EIO);
    int rc = sop_db_checkpoint(db);
    sop_replica_status st;
    sop_db_replica_status(db, &st);
    return rc || st.active != 1 || st.in_sync ? -1 : 0;
}

static void probe_reinstate_busy(void)
{
    cl_fx x;
    cl_fx_init(&x, "reinstate-busy", 1, 1);
    sop_db *p = xopen(&x, NULL);
    if (!p || cl_put(p, 0, 10, 10, VLEN) || sop_db_close(p)) {
        tu_failed++;
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
        sop_db *c = xopen(&x, pf);
        char b = c && failover(c, pf, &x) == 0 ? 0 : 1;
        if (write(up[1], &b, 1) != 1 || read(down[0], &b, 1) != 1)
            _exit(2);
        int rc = cl_put(c, 1000, 1300, 10, VLEN);
        rc = rc ? rc : sop_db_checkpoint(c);
        _exit(rc || sop_db_close(c) ? 3 : 0);
    }
    char b = 1;
    GAP(read(up[0], &b, 1) == 1 && b == 0, "the other process did not fail over");
    p = xopen(&x, NULL); /* sees the replica active, the directory stale */
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
    cl_fx x;
    cl_fx_init(&x, "split-view", 0, 1);
    sop_vfs *pf = pfx_vfs_new(NULL);
    sop_db *a = xopen(&x, pf), *b = a ? xopen(&x, NULL) : NULL;
    if (!a || !b || cl_put(a, 0, 10, 10, VLEN) || failover(a, pf, &x)) {
        tu_failed++;
        sop_db_close(b);
        sop_db_close(a);
        pfx_vfs_free(pf);
        return;
    }
    int rc = cl_put(a, 10, 20, 5, VLEN);
    GAP(rc == 0, "split-view: the process that failed over: %s", sop_strerror(rc));
    int sb = cl_seen(b, 20, VLEN);
    GAP(sb == 20, "split-view: the other process sees %d of the 20 keys acknowledged", sb);
    rc = cl_put(b, 20, 30, 5, VLEN);
    GAP(rc == 0, "split-view: the other process's commits: %s (%s)", sop_strerror(rc),
        sop_db_errmsg(b));
    sop_db_close(b);
    sop_db_close(a);
    pfx_vfs_free(pf);
    sop_db *c = xopen(&x, NULL);
    int n = c ? cl_seen(c, 30, VLEN) : -1;
    uint64_t problems = 0;
    rc = c ? sop_db_check(c, NULL, NULL, &problems) : -1;
    GAP(n == 30 && rc == 0, "split-view: reopened: %d of the 30 keys acknowledged, check %s "
        "(%" PRIu64 " problems)", n, sop_strerror(rc), problems);
    sop_db_close(c);
}

/* The same with two standalone processes (shared memory, LOCK). */
static void probe_split_view_standalone(void)
{
    cl_fx x;
    cl_fx_init(&x, "split-view-standalone", 0, 1);
    g_standalone = 1;
    sop_vfs *pf = pfx_vfs_new(NULL);
    sop_db *a = xopen(&x, pf);
    int up[2], down[2];
    if (!a || cl_put(a, 0, 10, 10, VLEN) || pipe(up) || pipe(down))
        abort();
    pid_t pid = fork();
    if (pid == 0) {
        sop_db *b = xopen(&x, NULL);
        char c = b ? 0 : 1;
        if (write(up[1], &c, 1) != 1 || read(down[0], &c, 1) != 1)
            _exit(9);
        int code = cl_seen(b, 20, VLEN) == 20 ? 0 : 1;
        code |= cl_put(b, 20, 30, 5, VLEN) ? 2 : 0;
        sop_db_close(b);
        _exit(code);
    }
    char c = 1;
    GAP(read(up[0], &c, 1) == 1 && c == 0, "the other process did not open");
    GAP(failover(a, pf, &x) == 0, "no failover");
    GAP(cl_put(a, 10, 20, 5, VLEN) == 0, "split-view-standalone: the process that failed over");
    GAP(write(down[1], "x", 1) == 1, "pipe");
    int ws;
    waitpid(pid, &ws, 0);
    GAP(WIFEXITED(ws) && !(WEXITSTATUS(ws) & 1), "split-view-standalone: the other process does "
        "not see the keys acknowledged after the failover");
    GAP(WIFEXITED(ws) && !(WEXITSTATUS(ws) & ~1), "split-view-standalone: the other process's "
        "commits failed (%#x)", ws);
    sop_db_close(a);
    pfx_vfs_free(pf);
    sop_db *r = xopen(&x, NULL);
    int n = r ? cl_seen(r, 30, VLEN) : -1;
    uint64_t problems = 0;
    int rc = r ? sop_db_check(r, NULL, NULL, &problems) : -1;
    GAP(n == 30 && rc == 0, "split-view-standalone: reopened: %d of the 30 keys acknowledged, "
        "check %s (%" PRIu64 " problems)", n, sop_strerror(rc), problems);
    sop_db_close(r);
    g_standalone = 0;
}

static void probe_open_reinstate(void)
{
    cl_fx x;
    cl_fx_init(&x, "open-reinstate", 0, 1);
    sop_vfs *pf = pfx_vfs_new(NULL);
    sop_db *db = xopen(&x, pf);
    if (!db || cl_put(db, 0, 10, 10, VLEN) || failover(db, pf, &x) ||
        cl_put(db, 10, 20, 10, VLEN)) {
        tu_failed++;
        sop_db_close(db);
        pfx_vfs_free(pf);
        return;
    }
    sop_db_close(db);
    pfx_vfs_free(pf);
    db = xopen(&x, NULL); /* alone, the folder healthy again */
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
    fprintf(stderr, "combo_regress: %s\n", tu_failed ? "FAILED" : "ok");
    return tu_failed ? 1 : 0;
}
