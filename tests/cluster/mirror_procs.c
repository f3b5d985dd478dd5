/*
 * mirror_procs.c - a replica folder in clustered mode with several
 * processes (docs/design/replication.md "Several processes"), against a
 * real redis-server on a loopback port. Each case forks the processes it
 * needs; one of them fails over when the prefix fault VFS fails its writes
 * to the database directory.
 *
 *  split-view      the other process, whose I/O works, learns the failover
 *                  through Redis before it reads: it sees every commit
 *                  acknowledged since, commits and checkpoints on the new
 *                  active folder; reopened alone, every commit is there,
 *                  the database checks clean and the folders are level.
 *  split-view-ec   the same with erasure coding (the mirror carries the
 *                  registry and the checkpoints only): the other process's
 *                  checkpoint reads and writes the replica folder.
 *  reinstate-busy  sop_db_reinstate() is SOP_EBUSY while another process
 *                  has the database open, and works once it left.
 *  open-reinstate  an open with the commit lease and no other live process
 *                  reinstates a stale but reachable replica.
 *  open-reconcile  a process killed between the two writes of one call
 *                  (its write reached the database directory only): the
 *                  next open alone reconciles the folders.
 *  dead-writer     the same while another process stays open: the next
 *                  process that takes the commit lock after the dead
 *                  writer reconciles the folders.
 *  redis-down      a failover (on a read) while Redis is down cannot be
 *                  told to the others: the read fails, and so does every
 *                  read after it until Redis is back; then they are served
 *                  by the replica. (Restarts Redis: runs last.)
 *
 * Usage: cluster_mirror_procs [case]. Exit 0 when every case passed, 1
 * otherwise, 77 when redis-server is not installed.
 */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
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

#define VLEN 1500 /* the values' size */

static tu_redis g_redis;

static sop_db *xopen(const cl_fx *x, sop_vfs *vfs)
{
    sop_db_options o;
    cl_options(x, g_redis.url, vfs, &o);
    return cl_open(x, &o);
}

static sop_replica_status status(sop_db *db)
{
    sop_replica_status st;
    memset(&st, 0, sizeof st);
    sop_db_replica_status(db, &st);
    return st;
}

/* Fails the database directory for @db (EIO on writes, syncs, truncates)
 * and checkpoints: a failover to the replica. */
static int failover(sop_db *db, sop_vfs *pf, const cl_fx *x)
{
    pfx_vfs_arm(pf, 0, x->prefix, PF_WRITE | PF_SYNC | PF_TRUNC, 0, -EIO);
    int rc = sop_db_checkpoint(db);
    sop_replica_status st = status(db);
    return rc || st.active != 1 || st.in_sync ? -1 : 0;
}

static int is_db_file(const char *n)
{
    return !strncmp(n, "seg-", 4) || !strcmp(n, "registry") || !strcmp(n, "registry.dw") ||
           !strcmp(n, "ckpt.0") || !strcmp(n, "ckpt.1");
}

/* The database files of the two folders: same names, same bytes. */
static void check_level(const cl_fx *x, const char *what)
{
    for (int pass = 0; pass < 2; pass++) {
        const char *a = pass ? x->rep : x->db, *b = pass ? x->db : x->rep;
        DIR *d = opendir(a);
        CHECK(d, "%s: cannot list %s", what, a);
        if (!d)
            return;
        struct dirent *e;
        while ((e = readdir(d))) {
            if (!is_db_file(e->d_name))
                continue;
            char cmd[2000];
            snprintf(cmd, sizeof cmd, "cmp -s '%s/%s' '%s/%s'", a, e->d_name, b, e->d_name);
            CHECK(system(cmd) == 0, "%s: %s differs between the folders", what, e->d_name);
        }
        closedir(d);
    }
}

/* Reopened alone: in sync, @n keys, clean; closed; the folders level; each
 * folder alone (standalone, no replica) holds the same @n keys. */
static void check_after(const cl_fx *x, int n, const char *what)
{
    sop_db *db = xopen(x, NULL);
    CHECK(db, "%s: reopen", what);
    if (!db)
        return;
    sop_replica_status st = status(db);
    CHECK(st.in_sync, "%s: reopened alone, the replica is not reinstated (active %d)", what,
          st.active);
    int got = cl_seen(db, n, VLEN);
    uint64_t problems = 0;
    int rc = sop_db_check(db, NULL, NULL, &problems);
    CHECK(got == n && rc == 0 && problems == 0, "%s: reopened: %d of the %d keys acknowledged, "
          "check %s (%" PRIu64 " problems)", what, got, n, sop_strerror(rc), problems);
    CHECK(sop_db_close(db) == 0, "%s: close", what);
    check_level(x, what);
    for (int i = 0; i < 2; i++) {
        sop_db_options o;
        sop_db_options_init(&o);
        o.segment_bytes = 1u << 20;
        if (x->ec) {
            if (i)
                continue; /* the drives know the database directory's path only */
            o.drives = x->drives;
            o.ndrives = 4;
            o.parity = 2;
        }
        sop_db *a;
        rc = sop_db_open(i ? x->rep : x->db, &o, &a);
        got = rc ? -1 : cl_seen(a, n, VLEN);
        CHECK(got == n, "%s: folder %d alone: %s, %d of %d keys", what, i, sop_strerror(rc), got,
              n);
        sop_db_close(a);
    }
}

/* ---- split view ---- */

static void split_view(int ec)
{
    const char *what = ec ? "split-view-ec" : "split-view";
    cl_fx x;
    cl_fx_init(&x, what, ec, 1);
    int up[2], down[2];
    if (pipe(up) || pipe(down))
        abort();
    /* forked before this process has threads (the heartbeat) */
    pid_t pid = fork();
    if (pid == 0) {
        /* the other process: its I/O works; it opens before the failover */
        char c;
        if (read(down[0], &c, 1) != 1)
            _exit(9);
        sop_db *b = xopen(&x, NULL);
        c = b && cl_seen(b, 100, VLEN) == 100 ? 0 : 1;
        if (write(up[1], &c, 1) != 1 || read(down[0], &c, 1) != 1)
            _exit(9);
        int code = 0, n = cl_seen(b, 200, VLEN);
        sop_replica_status st = status(b);
        if (n != 200) {
            fprintf(stderr, "%s: the other process sees %d of the 200 keys acknowledged\n", what,
                    n);
            code = 2;
        } else if (st.active != 1 || st.in_sync) {
            fprintf(stderr, "%s: the other process: active %d, in sync %d\n", what, st.active,
                    st.in_sync);
            code = 3;
        } else if (cl_put_retrying(b, 200, 300, 10, VLEN) || sop_db_checkpoint(b)) {
            fprintf(stderr, "%s: the other process's commits: %s\n", what, sop_db_errmsg(b));
            code = 4;
        } else if (status(b).active != 1) {
            code = 5;
        }
        if (sop_db_close(b) && !code)
            code = 6;
        _exit(code);
    }
    sop_vfs *pf = pfx_vfs_new(NULL);
    sop_db *a = xopen(&x, pf);
    CHECK(a && cl_put_retrying(a, 0, 100, 10, VLEN) == 0, "%s: setup", what);
    CHECK(write(down[1], "x", 1) == 1, "pipe");
    char c = 1;
    CHECK(read(up[0], &c, 1) == 1 && c == 0, "%s: the other process did not open", what);
    CHECK(failover(a, pf, &x) == 0, "%s: no failover", what);
    int rc = cl_put_retrying(a, 100, 200, 10, VLEN);
    CHECK(rc == 0, "%s: the process that failed over: %s", what, sop_strerror(rc));
    CHECK(write(down[1], "x", 1) == 1, "pipe");
    int ws;
    waitpid(pid, &ws, 0);
    CHECK(WIFEXITED(ws) && WEXITSTATUS(ws) == 0, "%s: the other process failed (%#x)", what, ws);
    int n = cl_seen(a, 300, VLEN);
    CHECK(n == 300, "%s: the process that failed over sees %d of 300 keys", what, n);
    sop_db_close(a);
    pfx_vfs_free(pf);
    close(up[0]);
    close(up[1]);
    close(down[0]);
    close(down[1]);
    check_after(&x, 300, what);
}

/* ---- reinstatement ---- */

static void reinstate_busy(void)
{
    const char *what = "reinstate-busy";
    cl_fx x;
    cl_fx_init(&x, what, 0, 1);
    int up[2], down[2];
    if (pipe(up) || pipe(down))
        abort();
    pid_t pid = fork();
    if (pid == 0) {
        /* opens with the replica active and the directory stale, commits
         * (to the replica alone), waits, commits again, leaves */
        char c;
        if (read(down[0], &c, 1) != 1)
            _exit(9);
        sop_db *b = xopen(&x, NULL);
        c = b && cl_put_retrying(b, 100, 150, 10, VLEN) == 0 ? 0 : 1;
        if (write(up[1], &c, 1) != 1 || read(down[0], &c, 1) != 1)
            _exit(9);
        int code = cl_put_retrying(b, 150, 200, 10, VLEN) ? 2 : 0;
        if (sop_db_close(b) && !code)
            code = 3;
        _exit(code);
    }
    sop_vfs *pf = pfx_vfs_new(NULL);
    sop_db *a = xopen(&x, pf);
    CHECK(a && cl_put_retrying(a, 0, 100, 10, VLEN) == 0 && failover(a, pf, &x) == 0, "%s: setup",
          what);
    pfx_vfs_disarm(pf); /* the database directory is healthy again */
    CHECK(write(down[1], "x", 1) == 1, "pipe");
    char c = 1;
    CHECK(read(up[0], &c, 1) == 1 && c == 0, "%s: the other process did not open", what);
    int rc = sop_db_reinstate(a);
    CHECK(rc == SOP_EBUSY, "%s: sop_db_reinstate with another process inside gave %s, not "
          "SOP_EBUSY", what, sop_strerror(rc));
    CHECK(status(a).in_sync == 0, "%s: in sync while another process writes one folder", what);
    CHECK(write(down[1], "x", 1) == 1, "pipe");
    int ws;
    waitpid(pid, &ws, 0);
    CHECK(WIFEXITED(ws) && WEXITSTATUS(ws) == 0, "%s: the other process failed (%#x)", what, ws);
    rc = sop_db_reinstate(a); /* alone now */
    CHECK(rc == 0, "%s: alone, sop_db_reinstate gave %s (%s)", what, sop_strerror(rc),
          sop_db_errmsg(a));
    sop_replica_status st = status(a);
    CHECK(st.in_sync && st.active == 1, "%s: after reinstate: active %d, in sync %d", what,
          st.active, st.in_sync);
    CHECK(cl_put_retrying(a, 200, 250, 10, VLEN) == 0, "%s: commits after reinstate", what);
    sop_db_close(a);
    pfx_vfs_free(pf);
    close(up[0]);
    close(up[1]);
    close(down[0]);
    close(down[1]);
    check_level(&x, what);
    check_after(&x, 250, what);
}

static void open_reinstate(void)
{
    const char *what = "open-reinstate";
    cl_fx x;
    cl_fx_init(&x, what, 0, 1);
    sop_vfs *pf = pfx_vfs_new(NULL);
    sop_db *a = xopen(&x, pf);
    if (!a || cl_put_retrying(a, 0, 100, 10, VLEN) || failover(a, pf, &x) ||
        cl_put_retrying(a, 100, 200, 10, VLEN)) {
        tu_failed++;
        sop_db_close(a);
        pfx_vfs_free(pf);
        return;
    }
    sop_db_close(a);
    pfx_vfs_free(pf);
    sop__mstate s1;
    CHECK(sop__mstate_read(sop_vfs_posix(), x.rep, 1, &s1) == 0 && s1.active == 1 && !s1.insync,
          "%s: the failover is not on record", what);
    check_after(&x, 200, what); /* reinstated by the open */
}

/* ---- a writer killed between the two writes of one call ---- */

/* The killed process's VFS: posix, but once armed, its first write to a
 * segment of the replica folder ends the process before it is made (the
 * mirror writes the active folder, the database directory, first). */
static sop_vfs g_kill_vfs;
static const char *g_kill_prefix;
static int g_kill_armed;
static sop_file *g_rep_files[64];
static pthread_mutex_t g_kill_mu = PTHREAD_MUTEX_INITIALIZER;

static int kill_open(sop_vfs *v, const char *path, int flags, unsigned mode, sop_file **out)
{
    (void)v;
    int rc = sop_vfs_posix()->open(sop_vfs_posix(), path, flags, mode, out);
    const char *leaf = strrchr(path, '/');
    if (!rc && g_kill_prefix && !strncmp(path, g_kill_prefix, strlen(g_kill_prefix)) && leaf &&
        !strncmp(leaf, "/seg-", 5)) {
        pthread_mutex_lock(&g_kill_mu);
        for (int i = 0; i < 64; i++)
            if (!g_rep_files[i]) {
                g_rep_files[i] = *out;
                break;
            }
        pthread_mutex_unlock(&g_kill_mu);
    }
    return rc;
}

static int kill_close(sop_vfs *v, sop_file *f)
{
    (void)v;
    pthread_mutex_lock(&g_kill_mu);
    for (int i = 0; i < 64; i++)
        if (g_rep_files[i] == f)
            g_rep_files[i] = NULL;
    pthread_mutex_unlock(&g_kill_mu);
    return sop_vfs_posix()->close(sop_vfs_posix(), f);
}

static int kill_write(sop_vfs *v, sop_file *f, const void *buf, size_t n, uint64_t off)
{
    (void)v;
    if (g_kill_armed) {
        pthread_mutex_lock(&g_kill_mu);
        int hit = 0;
        for (int i = 0; i < 64; i++)
            hit |= g_rep_files[i] == f;
        pthread_mutex_unlock(&g_kill_mu);
        if (hit)
            _exit(0); /* as a kill -9 between the mirror's two writes */
    }
    return sop_vfs_posix()->write(sop_vfs_posix(), f, buf, n, off);
}

/* Forks a writer that commits [0, 100), then (after @between, if any,
 * ran in this process) dies in the middle of the next commit: its bytes
 * reach the database directory only. Forked before this process has
 * threads. */
static int killed_writer(const cl_fx *x, sop_db **b)
{
    char rp[620];
    snprintf(rp, sizeof rp, "%s/", x->rep);
    int up[2], down[2];
    if (pipe(up) || pipe(down))
        abort();
    pid_t pid = fork();
    if (pid == 0) {
        g_kill_vfs = *sop_vfs_posix();
        g_kill_vfs.open = kill_open;
        g_kill_vfs.close = kill_close;
        g_kill_vfs.write = kill_write;
        g_kill_prefix = rp;
        sop_db *w = xopen(x, &g_kill_vfs);
        char c = w && cl_put_retrying(w, 0, 100, 10, VLEN) == 0 ? 0 : 1;
        if (write(up[1], &c, 1) != 1 || read(down[0], &c, 1) != 1)
            _exit(2);
        g_kill_armed = 1;
        cl_put_retrying(w, 100, 110, 10, VLEN);
        _exit(3); /* not killed */
    }
    char c = 1;
    int ok = read(up[0], &c, 1) == 1 && c == 0;
    if (ok && b) {
        *b = xopen(x, NULL); /* stays open throughout */
        ok = *b && cl_seen(*b, 100, VLEN) == 100;
    }
    ok &= write(down[1], "x", 1) == 1;
    int ws;
    waitpid(pid, &ws, 0);
    close(up[0]);
    close(up[1]);
    close(down[0]);
    close(down[1]);
    return ok && WIFEXITED(ws) && WEXITSTATUS(ws) == 0 ? 0 : -1;
}

static void open_reconcile(void)
{
    const char *what = "open-reconcile";
    cl_fx x;
    cl_fx_init(&x, what, 0, 1);
    CHECK(killed_writer(&x, NULL) == 0, "%s: the writer was not killed mid-commit", what);
    usleep(2 * CL_LEASE_MS * 1000); /* its lock and its entry in procs expire */
    /* the commit in flight may or may not be recovered: 100 or 110 keys */
    sop_db *db = xopen(&x, NULL);
    CHECK(db, "%s: reopen", what);
    if (!db)
        return;
    int n = cl_seen(db, 110, VLEN);
    CHECK(n == 100 || n == 110, "%s: %d keys", what, n);
    sop_db_close(db);
    check_level(&x, what);
    check_after(&x, n, what);
}

static void dead_writer(void)
{
    const char *what = "dead-writer";
    cl_fx x;
    cl_fx_init(&x, what, 0, 1);
    sop_db *b = NULL;
    CHECK(killed_writer(&x, &b) == 0, "%s: the writer was not killed mid-commit", what);
    if (!b)
        return;
    /* the next commit (its lock waits for the dead writer's lease) */
    int rc = cl_put_retrying(b, 1000, 1010, 10, VLEN);
    CHECK(rc == 0, "%s: commit after the dead writer: %s", what, sop_strerror(rc));
    int n = cl_seen(b, 110, VLEN);
    CHECK(n == 100 || n == 110, "%s: %d keys", what, n);
    CHECK(status(b).in_sync, "%s: not in sync", what);
    rc = sop_db_checkpoint(b);
    CHECK(rc == 0, "%s: checkpoint: %s", what, sop_strerror(rc));
    /* still open: the folders already agree */
    check_level(&x, what);
    sop_db_close(b);
    check_after(&x, n, what);
}

static void redis_down(void)
{
    const char *what = "redis-down";
    cl_fx x;
    cl_fx_init(&x, what, 0, 1);
    sop_vfs *pf = pfx_vfs_new(NULL);
    sop_db_options o;
    cl_options(&x, g_redis.url, pf, &o);
    o.cache_bytes = 4096; /* reads go to the segments */
    sop_db *a = NULL;
    int rc = sop_db_open(x.db, &o, &a);
    if (rc || cl_put_retrying(a, 0, 100, 10, VLEN)) {
        fprintf(stderr, "%s: setup: %s\n", what, sop_db_errmsg(a));
        tu_failed++;
        sop_db_close(a);
        pfx_vfs_free(pf);
        return;
    }
    tu_redis_kill(&g_redis);
    pfx_vfs_arm(pf, 0, x.prefix, PF_READ, 0, -EIO);
    int n = cl_seen(a, 100, VLEN);
    CHECK(n < 100, "%s: %d keys read after a failover Redis was not told", what, n);
    sop__mstate s1;
    CHECK(sop__mstate_read(sop_vfs_posix(), x.rep, 1, &s1) == 0 && s1.active == 1,
          "%s: the failover is not persisted", what);
    n = cl_seen(a, 100, VLEN);
    CHECK(n < 100, "%s: %d keys read on a second try, Redis still down", what, n);
    CHECK(tu_redis_restart(&g_redis) == 0, "%s: cannot restart redis-server", what);
    n = cl_seen(a, 100, VLEN);
    CHECK(n == 100, "%s: Redis back: %d of 100 keys", what, n);
    sop_replica_status st = status(a);
    CHECK(st.active == 1 && !st.in_sync, "%s: active %d, in sync %d", what, st.active,
          st.in_sync);
    /* the first write transaction may span the new epoch: "retry it" */
    for (int tries = 0; (rc = cl_put_retrying(a, 100, 120, 10, VLEN)) == SOP_EREDIS && tries < 3;
         tries++)
        ;
    CHECK(rc == 0, "%s: commits: %s (%s)", what, sop_strerror(rc), sop_db_errmsg(a));
    sop_db_close(a);
    pfx_vfs_free(pf);
    check_after(&x, 120, what);
}

int main(int argc, char **argv)
{
    int rc = tu_redis_start(&g_redis, "redis");
    if (rc == 77) {
        fprintf(stderr, "redis-server is not installed: skipped\n");
        return 77;
    }
    if (rc)
        return 1;
    const char *only = argc > 1 ? argv[1] : NULL;
    if (!only || !strcmp(only, "split-view"))
        split_view(0);
    if (!only || !strcmp(only, "split-view-ec"))
        split_view(1);
    if (!only || !strcmp(only, "reinstate-busy"))
        reinstate_busy();
    if (!only || !strcmp(only, "open-reinstate"))
        open_reinstate();
    if (!only || !strcmp(only, "open-reconcile"))
        open_reconcile();
    if (!only || !strcmp(only, "dead-writer"))
        dead_writer();
    if (!only || !strcmp(only, "redis-down"))
        redis_down();
    tu_redis_kill(&g_redis);
    fprintf(stderr, "mirror_procs: %s\n", tu_failed ? "FAILED" : "ok");
    return tu_failed ? 1 : 0;
}
