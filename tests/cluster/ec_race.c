/*
 * ec_race.c - clustered mode with erasure coding (4 drive folders, parity
 * 2): a handle follows the log while another is creating the next
 * segment's shard files, some drives done and others not (the writer's VFS
 * runs the follower at that moment). The follower must then see every
 * commit appended to that segment (no stale read), its own commits must
 * succeed and land on every drive (no shard written over, no degraded
 * stripe), and a repair afterwards must find nothing bad. The follower is
 * a second handle in this process, or another process (forked, driven
 * over pipes). Before the fix (docs/design/erasure-coding.md, "Files being
 * created") the follower kept the shard files it found for good: with
 * drive 0's only it saw nothing appended there and its commit wrote over
 * drive 0's first stripe and failed with EIO; with drives 0 and 1 (k) it
 * wrote degraded stripes.
 *
 * Exit 0 when every check held, 1 otherwise, 77 without redis-server.
 */
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "cluster_fixture.h"
#include "redis_server.h"
#include "sop/sop.h"
#include "testutil.h"

static tu_redis g_redis;

/* Clustered, erasure coded (cl_fx_init(.., 1, 0)), with a lease of 2 s. */
static void opts(const cl_fx *x, sop_db_options *o, sop_vfs *vfs)
{
    cl_options(x, g_redis.url, vfs, o);
    o->lease_ms = 2000;
}

static sop_db *xopen(const cl_fx *x, sop_vfs *vfs)
{
    sop_db_options o;
    opts(x, &o, vfs);
    return cl_open(x, &o);
}

#define VLEN 2048 /* the values' size */

/* The follower: a handle here (db), or a process running commands. */
typedef struct follower {
    sop_db *db;
    pid_t pid;
    int cmd, res;
} follower;

typedef struct msg {
    char op; /* 'S' cl_seen(n), 'P' cl_put(n, to, 1), 'Q' quit */
    int n, to;
} msg;

static int fl_call(follower *f, char op, int n, int to)
{
    if (f->db)
        return op == 'S' ? cl_seen(f->db, n, VLEN) : cl_put(f->db, n, to, 1, VLEN);
    msg m = {op, n, to};
    int r = -99;
    if (write(f->cmd, &m, sizeof m) != (ssize_t)sizeof m ||
        read(f->res, &r, sizeof r) != (ssize_t)sizeof r)
        return -99;
    return r;
}

static int fl_start(follower *f, const cl_fx *x, int forked)
{
    memset(f, 0, sizeof *f);
    if (!forked)
        return (f->db = xopen(x, NULL)) ? 0 : -1;
    int c[2], r[2];
    if (pipe(c) || pipe(r))
        return -1;
    f->pid = fork();
    if (f->pid < 0)
        return -1;
    if (f->pid == 0) {
        close(c[1]);
        close(r[0]);
        sop_db *db = NULL;
        msg m;
        while (read(c[0], &m, sizeof m) == (ssize_t)sizeof m && m.op != 'Q') {
            if (!db && !(db = xopen(x, NULL))) /* at the first command */
                _exit(3);
            int v = m.op == 'S' ? cl_seen(db, m.n, VLEN) : cl_put(db, m.n, m.to, 1, VLEN);
            if (write(r[1], &v, sizeof v) != (ssize_t)sizeof v)
                _exit(4);
        }
        _exit(sop_db_close(db) ? 5 : 0);
    }
    close(c[0]);
    close(r[1]);
    f->cmd = c[1];
    f->res = r[0];
    return 0;
}

static int fl_stop(follower *f)
{
    if (f->db)
        return sop_db_close(f->db);
    msg m = {'Q', 0, 0};
    int status = -1;
    if (write(f->cmd, &m, sizeof m) == (ssize_t)sizeof m)
        waitpid(f->pid, &status, 0);
    close(f->cmd);
    close(f->res);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* The writer's VFS: posix, but its creation of segment 2's shard file on
 * drive g_drive (after drives 0 .. g_drive - 1: the order of vfs_ec.c)
 * first lets the follower follow the log. */
static sop_vfs g_hook_vfs;
static int g_drive;
static follower *g_fl;

static int hook_open(sop_vfs *v, const char *path, int flags, unsigned mode, sop_file **out)
{
    (void)v;
    char pat[32];
    snprintf(pat, sizeof pat, "/drive%d/seg-00000002", g_drive);
    size_t pl = strlen(path), ql = strlen(pat);
    if ((flags & SOP_O_CREATE) && g_fl && pl >= ql && strcmp(path + pl - ql, pat) == 0) {
        follower *f = g_fl;
        g_fl = NULL;
        fl_call(f, 'S', 1, 0);
    }
    return sop_vfs_posix()->open(sop_vfs_posix(), path, flags, mode, out);
}

static void scenario(const char *name, int drive, int forked)
{
    cl_fx x;
    cl_fx_init(&x, name, 1, 0);
    g_hook_vfs = *sop_vfs_posix();
    g_hook_vfs.open = hook_open;
    g_drive = drive;
    follower fl;
    if (fl_start(&fl, &x, forked)) { /* forked before this process opens */
        CHECK(0, "%s: setup", name);
        return;
    }
    sop_db *a = xopen(&x, &g_hook_vfs);
    if (!a) {
        CHECK(0, "%s: setup", name);
        fl_stop(&fl);
        return;
    }
    int rc = cl_put(a, 0, 10, 10, VLEN);
    CHECK(rc == 0 && fl_call(&fl, 'S', 10, 0) == 10, "%s: setup", name);
    g_fl = &fl;
    int n = 10;
    while (!rc && !cl_exists(x.drv[3], "seg-00000002") && n < 4000) {
        rc = cl_put(a, n, n + 50, 50, VLEN);
        n += 50;
    }
    rc = rc ? rc : cl_put(a, n, n + 50, 10, VLEN); /* commits in segment 2 */
    n += 50;
    CHECK(rc == 0 && !g_fl, "%s: writer: %s (the hook %s)", name, sop_strerror(rc),
          g_fl ? "did not run" : "ran");
    int got = fl_call(&fl, 'S', n, 0);
    CHECK(got == n, "%s: the follower sees %d of the %d keys acknowledged (a stale read)", name, got,
          n);
    rc = fl_call(&fl, 'P', n, n + 5);
    CHECK(rc == 0, "%s: the follower's commits: %s", name, sop_strerror(rc));
    n += 5;
    got = cl_seen(a, n, VLEN);
    CHECK(got == n, "%s: the writer sees %d of %d keys", name, got, n);
    rc = cl_put(a, n, n + 50, 10, VLEN);
    n += 50;
    CHECK(rc == 0, "%s: the writer's commits after: %s", name, sop_strerror(rc));
    got = fl_call(&fl, 'S', n, 0);
    CHECK(got == n, "%s: the follower sees %d of %d keys", name, got, n);
    CHECK(fl_stop(&fl) == 0, "%s: the follower's close", name);
    CHECK(sop_db_close(a) == 0, "%s: the writer's close", name);

    sop_db_options o;
    opts(&x, &o, NULL);
    sop_repair_report r;
    memset(&r, 0, sizeof r);
    rc = sop_db_repair(x.db, &o, &r);
    CHECK(rc == 0, "%s: repair: %s (%s)", name, sop_strerror(rc), r.message);
    CHECK(r.bad_shards == 0 && r.unrecoverable == 0,
          "%s: repair found %" PRIu64 " bad shards, %" PRIu64 " unrecoverable stripes", name,
          r.bad_shards, r.unrecoverable);
    sop_db *db = xopen(&x, NULL);
    got = db ? cl_seen(db, n, VLEN) : -1;
    CHECK(got == n, "%s: after reopening, %d of %d keys", name, got, n);
    uint64_t problems = 99;
    CHECK(db && sop_db_check(db, NULL, NULL, &problems) == 0 && problems == 0,
          "%s: check: %" PRIu64 " problems", name, problems);
    sop_db_close(db);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    int rc = tu_redis_start(&g_redis, "redis-ec-race");
    if (rc == 77) {
        fprintf(stderr, "redis-server not installed: skipped\n");
        return 77;
    }
    if (rc)
        return 1;
    scenario("ec_race/d1", 1, 0); /* the follower finds drive 0's shard file only (< k) */
    scenario("ec_race/d2", 2, 0); /* drives 0 and 1 (k, not n) */
    scenario("ec_race/d1p", 1, 1);
    scenario("ec_race/d2p", 2, 1);
    tu_redis_kill(&g_redis);
    if (tu_failed)
        fprintf(stderr, "%d checks failed\n", tu_failed);
    else
        printf("ec_race: ok\n");
    return tu_failed ? 1 : 0;
}
