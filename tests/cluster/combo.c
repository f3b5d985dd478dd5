/*
 * combo.c - clustered mode, erasure coding and a replica folder in one
 * database, against a real redis-server on a loopback port (started and
 * stopped here). What it proves:
 *
 *  - NPROC processes, each with its own handle (SOP_CLUSTERED, 4 drive
 *    folders with parity 2, a replica folder), move money between
 *    accounts and count their own acknowledged transfers;
 *  - while they commit, one drive folder is deleted (rm -rf) and, in one
 *    process only, every write, sync and truncate of the active metadata
 *    folder (the database directory) fails with EIO: that process fails
 *    over to the replica folder (its checkpoint succeeds there, its
 *    status says so) and keeps committing, and so do the others (through
 *    Redis), each for AFTER more transfers, without an error;
 *  - afterwards, from a fresh handle: the total is preserved, every
 *    process's counter equals the transfers it saw acknowledged, the
 *    database checks clean; the persisted replica state records the
 *    failover and the replica serves; sop_db_reinstate() brings the
 *    database directory back in sync (both folders then hold the same
 *    files, and each opens alone with the same contents);
 *  - sop_db_repair(), with no process inside, rebuilds the deleted drive
 *    (a second pass finds nothing to do); then two *other* drives are
 *    deleted and every record still reads and checks clean, so the
 *    rebuilt drive holds real shards.
 *
 * Segments are 1 MiB, so the processes rotate into new segments (shard
 * files created drive after drive while others follow the log: the
 * ec-race of combo_regress.c) and the run also waits for NEW_SEGS
 * segments created without the deleted drive. The fresh handle at the end
 * opens alone, so it reinstates the stale folder at open (asserted); its
 * sop_db_reinstate() then has nothing left to do (cluster_mirror_procs
 * tests both separately).
 *
 * Exit 0 when every invariant held, 1 otherwise, 77 when redis-server is
 * not installed. Environment: SOP_TEST_TMP.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "cluster_fixture.h"
#include "mirror.h"
#include "prefix_fault_vfs.h"
#include "redis_server.h"
#include "sop/sop.h"
#include "testutil.h"

#define NPROC 3
#define NACCT 32
#define INITIAL 1000
#define LEASE_MS 1000
#define NDRIVES 4
#define PARITY 2
#define GONE 1          /* the drive deleted during the run (a data drive) */
#define KEEP 2          /* the drive kept with it at the end (a parity drive) */
#define WARM 20         /* transfers each process commits before the faults */
#define AFTER 100       /* and after them, at least */
#define NEW_SEGS 2      /* segments created after the drive was deleted */
#define PAD 6000        /* bytes of each process's pad value (a blob) */
#define DEADLINE_S 120  /* a phase that takes longer has hung */

static tu_redis g_redis;
static char g_root[512], g_db[600], g_rep[600], g_drv[NDRIVES][600];
static const char *g_drives[NDRIVES];

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void opts_for(sop_db_options *o, sop_vfs *vfs)
{
    sop_db_options_init(o);
    o->mode = SOP_CLUSTERED;
    o->redis_url = g_redis.url;
    o->lease_ms = LEASE_MS;
    o->segment_bytes = 1u << 20;
    o->checkpoint_bytes = 256u << 10; /* checkpoints too: they write the mirrored files */
    o->drives = g_drives;
    o->ndrives = NDRIVES;
    o->parity = PARITY;
    o->replica_path = g_rep;
    o->vfs = vfs;
}

static int open_db(const sop_db_options *o, const char *path, sop_db **db)
{
    int rc = sop_db_open(path, o, db);
    if (rc) {
        fprintf(stderr, "open %s: %s (%s)\n", path, sop_strerror(rc), sop_db_errmsg(*db));
        sop_db_close(*db);
        *db = NULL;
    }
    return rc;
}

static int setup(void)
{
    sop_db_options o;
    opts_for(&o, NULL);
    sop_db *db;
    int rc = open_db(&o, g_db, &db);
    if (rc)
        return rc;
    rc = cl_create_accounts(db, NACCT, INITIAL);
    sop_db_close(db);
    return rc;
}

/* One transfer between two random accounts; it also bumps counter n<me>
 * and rewrites pad<me>. 0: committed. */
static int transfer(sop_db *db, int me, unsigned *seed)
{
    sop_txn *t;
    sop_store *s;
    int rc = sop_txn_begin(db, SOP_TXN_WRITE, 0, &t);
    if (rc)
        return rc;
    rc = sop_store_open(t, "acct", &s);
    if (!rc) {
        int a = (int)(rand_r(seed) % NACCT), b = (int)(rand_r(seed) % NACCT);
        char ka[16], kb[16], kn[16], kp[16];
        snprintf(ka, sizeof ka, "a%02d", a);
        snprintf(kb, sizeof kb, "a%02d", b);
        snprintf(kn, sizeof kn, "n%d", me);
        snprintf(kp, sizeof kp, "pad%d", me);
        int64_t va = cl_get_i64(s, ka), amt = va > 0 ? 1 + rand_r(seed) % (va < 50 ? va : 50) : 0;
        if (a != b && amt) {
            rc = cl_put_i64(s, ka, va - amt);
            if (!rc)
                rc = cl_put_i64(s, kb, cl_get_i64(s, kb) + amt);
        }
        int64_t n = cl_get_i64(s, kn) + 1;
        if (!rc)
            rc = cl_put_i64(s, kn, n);
        char pad[PAD];
        memset(pad, 'a' + (int)(n % 26), sizeof pad);
        if (!rc)
            rc = sop_upsert(s, &(sop_val){kp, strlen(kp)}, &(sop_val){pad, sizeof pad});
    }
    if (rc) {
        sop_txn_rollback(t);
        return rc;
    }
    return sop_txn_commit(t);
}

/* ---- the workers ---- */

enum { M_READY = 1, M_FAILOVER, M_AFTER, M_DONE };

/* Worker -> parent; smaller than PIPE_BUF, so each write is atomic. */
typedef struct msg {
    int who, what;
    int rc, active, in_sync;
    long acked, conflicts, retries;
    uint64_t failovers, injected;
} msg;

static int send_msg(int fd, msg *m) { return write(fd, m, sizeof *m) == (ssize_t)sizeof *m ? 0 : -1; }

/* The faulty process: the active folder (the database directory) starts
 * failing every write, sync and truncate; a checkpoint (which writes the
 * registry and a checkpoint record there) must fail over and succeed. */
static void inject(sop_db *db, sop_vfs *pf, msg *m)
{
    sop_replica_status st;
    if (sop_db_replica_status(db, &st) || !st.configured || st.active != 0 || !st.in_sync) {
        m->rc = -1; /* not the state to fail from */
        return;
    }
    char prefix[700];
    snprintf(prefix, sizeof prefix, "%s/", g_db);
    pfx_vfs_arm(pf, 0, prefix, PF_WRITE | PF_SYNC | PF_TRUNC, 0, -EIO);
    m->rc = sop_db_checkpoint(db);
    if (m->rc)
        fprintf(stderr, "worker 0: checkpoint: %s (%s)\n", sop_strerror(m->rc), sop_db_errmsg(db));
    memset(&st, 0, sizeof st);
    sop_db_replica_status(db, &st);
    m->active = st.active;
    m->in_sync = st.in_sync;
    m->failovers = st.failovers;
    m->injected = pfx_vfs_failed(pf, 0);
}

static int worker(int me, int cmd_fd, int out_fd)
{
    sop_vfs *pf = me == 0 ? pfx_vfs_new(NULL) : NULL;
    sop_db_options o;
    opts_for(&o, pf);
    sop_db *db;
    if (open_db(&o, g_db, &db))
        return 1;
    unsigned seed = (unsigned)getpid() * 7919u;
    msg m = {.who = me};
    long mark = -1;
    int stop = 0, code = 0;
    fcntl(cmd_fd, F_SETFL, O_NONBLOCK);
    while (!stop && !code) {
        char c;
        ssize_t got;
        while ((got = read(cmd_fd, &c, 1)) == 1) {
            if (c == 'F' && pf) {
                msg f = {.who = me, .what = M_FAILOVER};
                inject(db, pf, &f);
                if (send_msg(out_fd, &f))
                    code = 1;
            } else if (c == 'M') {
                mark = m.acked;
            } else if (c == 'S') {
                stop = 1;
            }
        }
        if (got == 0)
            stop = 1; /* the parent is gone */
        if (stop)
            break;
        int rc = transfer(db, me, &seed);
        if (rc == 0) {
            m.acked++;
            if (m.acked == WARM) {
                m.what = M_READY;
                code = send_msg(out_fd, &m) ? 1 : 0;
            }
            if (mark >= 0 && m.acked == mark + AFTER) {
                m.what = M_AFTER;
                code = send_msg(out_fd, &m) ? 1 : 0;
            }
        } else if (rc == SOP_ECONFLICT) {
            m.conflicts++;
        } else if (rc == SOP_EREDIS || rc == SOP_EBUSY) {
            m.retries++; /* nothing was written: the lock is taken first */
        } else {
            /* a panic included: the failover must keep the commits going */
            fprintf(stderr, "worker %d: commit: %s (%s)\n", me, sop_strerror(rc),
                    sop_db_errmsg(db));
            code = 1;
        }
    }
    sop_replica_status st;
    sop_db_replica_status(db, &st);
    m.active = st.active;
    m.in_sync = st.in_sync;
    m.failovers = st.failovers;
    m.injected = pf ? pfx_vfs_failed(pf, 0) : 0;
    int rc = sop_db_close(db);
    if (rc) {
        fprintf(stderr, "worker %d: close: %s\n", me, sop_strerror(rc));
        code = 1;
    }
    pfx_vfs_free(pf);
    m.what = M_DONE;
    if (!code && send_msg(out_fd, &m))
        code = 1;
    return code;
}

/* ---- the parent's side ---- */

typedef struct crew {
    pid_t pid[NPROC];
    int status[NPROC], reaped[NPROC];
    int out; /* the workers' messages */
} crew;

/* The next message of a worker; what = 0 when none came by @deadline, -1
 * when a worker failed (or all are gone) meanwhile. */
static msg recv_msg(crew *c, double deadline)
{
    msg m = {0};
    struct pollfd p = {.fd = c->out, .events = POLLIN};
    for (;;) {
        int left = (int)((deadline - now_s()) * 1000);
        if (left <= 0)
            return m;
        if (poll(&p, 1, left < 100 ? left : 100) == 1) {
            if (read(c->out, &m, sizeof m) == (ssize_t)sizeof m)
                return m;
            m.what = -1; /* end of file: no worker is left */
            return m;
        }
        /* a worker that died cannot send what is waited for */
        for (int i = 0; i < NPROC; i++)
            if (!c->reaped[i] && waitpid(c->pid[i], &c->status[i], WNOHANG) == c->pid[i]) {
                c->reaped[i] = 1;
                if (!WIFEXITED(c->status[i]) || WEXITSTATUS(c->status[i])) {
                    m.what = -1;
                    return m;
                }
            }
    }
}

static void tell_all(int *cmd, char c)
{
    for (int i = 0; i < NPROC; i++)
        if (write(cmd[i], &c, 1) != 1)
            tu_failed++;
}

/* The highest segment number among the shard files of drive @d (0: none). */
static unsigned last_seg(int d)
{
    unsigned hi = 0;
    DIR *dir = opendir(g_drv[d]);
    if (!dir)
        return 0;
    struct dirent *e;
    while ((e = readdir(dir)))
        if (!strncmp(e->d_name, "seg-", 4)) {
            unsigned n = (unsigned)strtoul(e->d_name + 4, NULL, 10);
            hi = n > hi ? n : hi;
        }
    closedir(dir);
    return hi;
}

/* Sum of the accounts and the counters n0..n(NPROC-1); 0 or an error. */
static int read_all(sop_db *db, int64_t *total, int64_t *count)
{
    sop_txn *t;
    sop_store *s;
    int rc = sop_txn_begin(db, SOP_TXN_READ, 0, &t);
    if (rc)
        return rc;
    rc = sop_store_open(t, "acct", &s);
    *total = 0;
    for (int i = 0; !rc && i < NACCT; i++) {
        char key[16];
        snprintf(key, sizeof key, "a%02d", i);
        *total += cl_get_i64(s, key);
    }
    for (int i = 0; !rc && i < NPROC; i++) {
        char key[16];
        snprintf(key, sizeof key, "n%d", i);
        count[i] = cl_get_i64(s, key);
        /* and the pad value, which lives in its own blob */
        snprintf(key, sizeof key, "pad%d", i);
        sop_val v;
        rc = sop_get(s, &(sop_val){key, strlen(key)}, &v);
        if (!rc && (v.size != PAD || ((const char *)v.data)[PAD - 1] != 'a' + count[i] % 26))
            rc = SOP_ECORRUPT;
    }
    sop_txn_rollback(t);
    return rc;
}

/* Everything the workers acknowledged, and a clean check, through @db. */
static void verify(sop_db *db, const char *what, const long *acked)
{
    int64_t total = -1, count[NPROC] = {0};
    int rc = read_all(db, &total, count);
    CHECK(rc == 0, "%s: read: %s (%s)", what, sop_strerror(rc), sop_db_errmsg(db));
    CHECK(total == (int64_t)NACCT * INITIAL, "%s: total %" PRId64, what, total);
    for (int i = 0; i < NPROC; i++)
        CHECK(count[i] == acked[i] + (i == 0 ? acked[NPROC] : 0),
              "%s: counter n%d is %" PRId64 ", %ld transfers acknowledged", what, i, count[i],
              acked[i] + (i == 0 ? acked[NPROC] : 0));
    uint64_t problems = 0;
    rc = sop_db_check(db, NULL, NULL, &problems);
    CHECK(rc == 0 && problems == 0, "%s: check: %s, %" PRIu64 " problems (%s)", what,
          sop_strerror(rc), problems, sop_db_errmsg(db));
}

static long file_bytes(const char *path, char **out)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return -1;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    *out = malloc((size_t)n + 1);
    if (n && fread(*out, 1, (size_t)n, f) != (size_t)n)
        n = -1;
    fclose(f);
    return n;
}

/* The mirrored database files (with EC: no segments) are the same in both
 * folders; returns how many were compared. */
static int compare_folders(void)
{
    static const char *const names[] = {"registry", "registry.dw", "ckpt.0", "ckpt.1",
                                        "cluster.id", "ec.id"};
    int n = 0;
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        char a[700], b[700], *x = NULL, *y = NULL;
        snprintf(a, sizeof a, "%s/%s", g_db, names[i]);
        snprintf(b, sizeof b, "%s/%s", g_rep, names[i]);
        long nx = file_bytes(a, &x), ny = file_bytes(b, &y);
        CHECK(nx >= 0 && nx == ny && !memcmp(x, y, (size_t)nx), "%s and %s differ (%ld, %ld bytes)",
              a, b, nx, ny);
        n += nx >= 0;
        free(x);
        free(y);
    }
    DIR *d = opendir(g_db);
    struct dirent *e;
    while (d && (e = readdir(d)))
        CHECK(strncmp(e->d_name, "seg-", 4) != 0, "%s/%s: a segment outside the drives", g_db,
              e->d_name);
    if (d)
        closedir(d);
    return n;
}

/* Opens folder @dir alone (no replica), read-only, and verifies it. */
static void verify_alone(const char *dir, const long *acked)
{
    sop_db_options o;
    opts_for(&o, NULL);
    o.replica_path = NULL;
    o.flags = SOP_DB_RDONLY;
    sop_db *db;
    int rc = open_db(&o, dir, &db);
    CHECK(rc == 0, "%s alone: open: %s", dir, sop_strerror(rc));
    if (!rc) {
        char what[700];
        snprintf(what, sizeof what, "%s alone", dir);
        verify(db, what, acked);
        sop_db_close(db);
    }
}

static sop_repair_report repair(const char *what)
{
    sop_db_options o;
    opts_for(&o, NULL);
    sop_repair_report r;
    memset(&r, 0, sizeof r);
    int rc = sop_db_repair(g_db, &o, &r);
    CHECK(rc == 0, "%s: repair: %s (%s)", what, sop_strerror(rc), r.message);
    fprintf(stderr, "combo: %s: %" PRIu64 " segments, %" PRIu64 " stripes, %" PRIu64
            " bad shards, %" PRIu64 " rebuilt in %" PRIu64 " files, %" PRIu64
            " unrecoverable, %" PRIu64 " deferred\n", what, r.segments, r.stripes, r.bad_shards,
            r.shards_rebuilt, r.files_rebuilt, r.unrecoverable, r.deferred);
    CHECK(r.unrecoverable == 0 && r.deferred == 0 && r.drives_unusable == 0,
          "%s: %" PRIu64 " unrecoverable, %" PRIu64 " deferred, %u drives unusable", what,
          r.unrecoverable, r.deferred, r.drives_unusable);
    return r;
}

/* Runs the workers through the faults; fills @acked (per worker, plus the
 * parent's own extra transfers at [NPROC]). 0 when they all ended well. */
static int run_workers(long *acked)
{
    int cmd[NPROC][2], out[2];
    if (pipe(out)) {
        CHECK(0, "pipe: %s", strerror(errno));
        return -1;
    }
    crew c = {.out = out[0]};
    pid_t *pids = c.pid;
    for (int i = 0; i < NPROC; i++) {
        if (pipe(cmd[i]) || (pids[i] = fork()) < 0) {
            CHECK(0, "pipe or fork: %s", strerror(errno));
            abort(); /* the workers started so far would wait forever */
        }
        if (pids[i] == 0) {
            close(out[0]);
            for (int j = 0; j <= i; j++)
                close(cmd[j][1]);
            _exit(worker(i, cmd[i][0], out[1]));
        }
        close(cmd[i][0]);
    }
    close(out[1]);
    int w[NPROC];
    for (int i = 0; i < NPROC; i++)
        w[i] = cmd[i][1];
    double t0 = now_s(), deadline = t0 + DEADLINE_S;
    int bad = 0, ready = 0, after = 0, failover = 0, done = 0;
    while (ready < NPROC && !bad) {
        msg m = recv_msg(&c, deadline);
        ready += m.what == M_READY;
        bad += m.what <= 0;
    }
    CHECK(!bad, "the workers did not all commit %d transfers", WARM);
    unsigned seg0 = 0;
    if (!bad) {
        /* the faults, while every process commits */
        seg0 = last_seg(0);
        tu_rmtree(g_drv[GONE]);
        fprintf(stderr, "combo: drive %d deleted at segment %u, %.1f s\n", GONE, seg0,
                now_s() - t0);
        if (write(w[0], "F", 1) != 1)
            bad++;
        while (!failover && !bad) {
            msg m = recv_msg(&c, deadline);
            if (m.what != M_FAILOVER) {
                bad++;
                break;
            }
            failover = 1;
            CHECK(m.rc == 0, "worker 0: the checkpoint on the failing folder gave %s",
                  m.rc == -1 ? "(not active=0, in sync before)" : sop_strerror(m.rc));
            CHECK(m.injected > 0, "worker 0: no I/O error was injected");
            CHECK(m.active == 1 && m.in_sync == 0 && m.failovers >= 1,
                  "worker 0 after the errors: active %d, in sync %d, %" PRIu64 " failovers",
                  m.active, m.in_sync, m.failovers);
            fprintf(stderr, "combo: worker 0 failed over (%" PRIu64 " calls failed), %.1f s\n",
                    m.injected, now_s() - t0);
        }
        tell_all(w, 'M');
        /* every process commits AFTER more, and segments are created
         * without the deleted drive */
        while (!bad && (after < NPROC || last_seg(0) < seg0 + NEW_SEGS)) {
            /* the drive folder is looked at every 20 ms meanwhile */
            msg m = recv_msg(&c, after < NPROC ? deadline : now_s() + 0.02);
            after += m.what == M_AFTER;
            bad += m.what < 0 || (m.what == 0 && now_s() >= deadline);
        }
        CHECK(!bad, "after the faults: %d of %d workers committed %d transfers, segment %u "
              "(want %u)", after, NPROC, AFTER, last_seg(0), seg0 + NEW_SEGS);
    }
    tell_all(w, 'S');
    for (int i = 0; i < NPROC; i++)
        close(w[i]);
    while (done < NPROC) {
        msg m = recv_msg(&c, now_s() + DEADLINE_S);
        if (m.what <= 0)
            break;
        if (m.what != M_DONE || m.who < 0 || m.who >= NPROC)
            continue;
        done++;
        acked[m.who] = m.acked;
        fprintf(stderr, "combo: worker %d: %ld transfers, %ld conflicts, %ld retries; sees "
                "folder %d active, in sync %d, %" PRIu64 " failovers\n", m.who, m.acked,
                m.conflicts, m.retries, m.active, m.in_sync, m.failovers);
        if (m.who == 0)
            CHECK(m.active == 1 && m.failovers >= 1, "worker 0 at the end: active %d", m.active);
    }
    close(out[0]);
    for (int i = 0; i < NPROC; i++) {
        int st = c.status[i];
        if (!c.reaped[i])
            waitpid(pids[i], &st, 0);
        CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "worker %d failed (status %#x)", i, st);
        bad += !WIFEXITED(st) || WEXITSTATUS(st) != 0;
    }
    CHECK(done == NPROC, "%d of %d workers reported", done, NPROC);
    fprintf(stderr, "combo: workers done in %.1f s\n", now_s() - t0);
    return bad || done < NPROC ? -1 : 0;
}

static void run_combo(void)
{
    double t0 = now_s();
    snprintf(g_root, sizeof g_root, "%s", tu_tmpdir("combo"));
    snprintf(g_db, sizeof g_db, "%s/db", g_root);
    snprintf(g_rep, sizeof g_rep, "%s/replica", g_root);
    for (int d = 0; d < NDRIVES; d++) {
        snprintf(g_drv[d], sizeof g_drv[d], "%s/drive%d", g_root, d);
        g_drives[d] = g_drv[d];
    }
    if (setup()) {
        tu_failed++;
        return;
    }
    long acked[NPROC + 1] = {0};
    if (run_workers(acked))
        return; /* what failed is said */

    /* the failover is on record: the replica's state is the newer one */
    sop__mstate s0, s1;
    memset(&s0, 0, sizeof s0);
    int r1 = sop__mstate_read(sop_vfs_posix(), g_rep, 1, &s1);
    int r0 = sop__mstate_read(sop_vfs_posix(), g_db, 0, &s0);
    CHECK(r1 == 0 && s1.active == 1 && !s1.insync && (r0 || s1.gen > s0.gen),
          "replica.state: %s, active %d, in sync %d, generation %" PRIu64 " (database "
          "directory's: %s, %" PRIu64 ")", sop_strerror(r1), s1.active, s1.insync, s1.gen,
          sop_strerror(r0), s0.gen);

    /* a fresh handle: everything acknowledged is there, served by the replica */
    sop_db_options o;
    opts_for(&o, NULL);
    sop_db *db;
    int rc = open_db(&o, g_db, &db);
    CHECK(rc == 0, "reopen: %s", sop_strerror(rc));
    if (rc)
        return;
    verify(db, "after the run", acked);
    sop_replica_status st;
    CHECK(sop_db_replica_status(db, &st) == 0 && st.configured && st.active == 1 && st.in_sync,
          "reopened alone: active %d, in sync %d (the open reinstates)", st.active, st.in_sync);
    fprintf(stderr, "combo: reopened: folder %d active, in sync %d\n", st.active, st.in_sync);
    rc = sop_db_reinstate(db);
    CHECK(rc == 0, "reinstate: %s (%s)", sop_strerror(rc), sop_db_errmsg(db));
    CHECK(sop_db_replica_status(db, &st) == 0 && st.active == 1 && st.in_sync,
          "after reinstate: active %d, in sync %d", st.active, st.in_sync);
    fprintf(stderr, "combo: reinstated: %" PRIu64 " bytes copied, %" PRIu64 " files\n",
            st.reinstated_bytes, st.reinstated_files);
    /* one more transfer, written to both folders */
    unsigned seed = 5;
    rc = transfer(db, 0, &seed);
    CHECK(rc == 0, "transfer after reinstate: %s (%s)", sop_strerror(rc), sop_db_errmsg(db));
    acked[NPROC] += rc == 0;
    CHECK(sop_db_close(db) == 0, "close after reinstate");
    CHECK(compare_folders() >= 4, "the folders lack database files");
    r0 = sop__mstate_read(sop_vfs_posix(), g_db, 0, &s0);
    r1 = sop__mstate_read(sop_vfs_posix(), g_rep, 1, &s1);
    CHECK(!r0 && !r1 && s0.insync && s1.insync && s0.gen == s1.gen && s1.active == 1,
          "replica.state after reinstate: in sync %d/%d, generations %" PRIu64 "/%" PRIu64,
          s0.insync, s1.insync, s0.gen, s1.gen);
    verify_alone(g_db, acked);
    verify_alone(g_rep, acked);

    /* the deleted drive, rebuilt while no process has the database open */
    sop_repair_report r = repair("repair");
    CHECK(r.files_rebuilt > 0 && r.shards_rebuilt > 0, "repair rebuilt nothing");
    r = repair("second repair");
    CHECK(r.bad_shards == 0, "second repair: %" PRIu64 " bad shards", r.bad_shards);

    /* two other drives gone: the rebuilt one must serve its shards */
    for (int d = 0, n = 0; d < NDRIVES && n < 2; d++)
        if (d != GONE && d != KEEP) {
            tu_rmtree(g_drv[d]);
            n++;
        }
    rc = open_db(&o, g_db, &db);
    CHECK(rc == 0, "open without two drives: %s", sop_strerror(rc));
    if (!rc) {
        verify(db, "without two drives", acked);
        sop_ec_stat es;
        CHECK(sop_db_ec_stats(db, &es) == 0 && es.reconstructed > 0 && es.unreadable == 0,
              "without two drives: %" PRIu64 " stripes reconstructed, %" PRIu64 " unreadable",
              es.reconstructed, es.unreadable);
        CHECK(sop_db_replica_status(db, &st) == 0 && st.in_sync, "the replica went stale");
        CHECK(sop_db_close(db) == 0, "close");
    }
    fprintf(stderr, "combo: %ld + %ld + %ld transfers, %.1f s\n", acked[0], acked[1], acked[2],
            now_s() - t0);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN); /* a worker that died closes its command pipe */
    int rc = tu_redis_start(&g_redis, "redis");
    if (rc == 77) {
        fprintf(stderr, "redis-server is not installed: skipped\n");
        return 77;
    }
    if (rc) {
        fprintf(stderr, "cannot start redis-server\n");
        return 1;
    }
    run_combo();
    tu_redis_kill(&g_redis);
    fprintf(stderr, "combo: %s\n", tu_failed ? "FAILED" : "ok");
    return tu_failed ? 1 : 0;
}
