/*
 * cluster.c - clustered mode against a real redis-server on a loopback
 * port (started and stopped here). Scenarios, each its own database:
 *
 *  bank      4 processes move money between 32 accounts through one
 *            Redis; every transfer also bumps its process's counter, and
 *            at the end each process bumps one shared key 50 times. The
 *            total must be preserved, every process's counter must equal
 *            the transfers it saw acknowledged (no lost, no phantom
 *            commit), the shared key 4 x 50 (no lost update).
 *  chaos     the same while Redis is flushed (FLUSHALL), then SIGKILLed
 *            and restarted: errors while it is down are SOP_EREDIS or
 *            SOP_EBUSY, nothing half-committed, work resumes after.
 *  down      Redis unreachable at open: SOP_EREDIS with a message, within
 *            the timeout; once it is up the database opens.
 *  l2        the L2 cache: images read by one process are served from
 *            Redis to the next (stats count the hits), and entries garbled
 *            in Redis are refused by their CRC (reads stay correct).
 *  killed    a writer killed (SIGKILL, kill point commit:after_append)
 *            while it holds the commit lock: another process commits
 *            within the lease (plus slack), and the database checks clean.
 *
 * Exit 0 when every invariant held, 1 otherwise, 77 when redis-server is
 * not installed. Environment: SOP_CLUSTER_SECONDS (default 3 per phase),
 * SOP_TEST_TMP.
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "cluster_fixture.h"
#include "redis_server.h"
#include "sop/sop.h"
#include "testutil.h"

#define NACCT 32
#define INITIAL 1000
#define NPROC 4
#define HOT_INCR 50
#define LEASE_MS 1000

static tu_redis g_redis;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void opts_for(sop_db_options *o, const char *url)
{
    sop_db_options_init(o);
    o->mode = SOP_CLUSTERED;
    o->redis_url = url;
    o->redis_timeout_ms = 300;
    o->lease_ms = LEASE_MS;
    o->segment_bytes = 1u << 20; /* rotations and checkpoints during the run */
    o->checkpoint_bytes = 256u << 10;
}

static int setup(const char *path, const char *url)
{
    sop_db_options o;
    opts_for(&o, url);
    sop_db *db;
    int rc = sop_db_open(path, &o, &db);
    if (rc) {
        fprintf(stderr, "open %s: %s (%s)\n", path, sop_strerror(rc), sop_db_errmsg(db));
        sop_db_close(db);
        return rc;
    }
    rc = cl_create_accounts(db, NACCT, INITIAL);
    sop_db_close(db);
    return rc;
}

/* ---- a worker process ---- */

typedef struct wstats {
    long acked, redis_errs, busy, conflicts, reopens, hot;
} wstats;

/* One transfer (or, with @hot, one increment of "hot"). 0: committed. */
static int transfer(sop_db *db, int me, unsigned *seed, int hot)
{
    sop_txn *t;
    sop_store *s;
    int rc = sop_txn_begin(db, SOP_TXN_WRITE, 0, &t);
    if (rc)
        return rc;
    rc = sop_store_open(t, "acct", &s);
    if (!rc && hot) {
        rc = cl_put_i64(s, "hot", cl_get_i64(s, "hot") + 1);
    } else if (!rc) {
        int a = (int)(rand_r(seed) % NACCT), b = (int)(rand_r(seed) % NACCT);
        char ka[16], kb[16], kn[16];
        snprintf(ka, sizeof ka, "a%02d", a);
        snprintf(kb, sizeof kb, "a%02d", b);
        snprintf(kn, sizeof kn, "n%d", me);
        int64_t va = cl_get_i64(s, ka), amt = va > 0 ? 1 + rand_r(seed) % (va < 50 ? va : 50) : 0;
        if (a != b && amt) {
            rc = cl_put_i64(s, ka, va - amt);
            if (!rc)
                rc = cl_put_i64(s, kb, cl_get_i64(s, kb) + amt);
        }
        if (!rc)
            rc = cl_put_i64(s, kn, cl_get_i64(s, kn) + 1);
    }
    if (rc) {
        sop_txn_rollback(t);
        return rc;
    }
    return sop_txn_commit(t);
}

/* What counter "n<me>" (or "hot") holds now: resolves a commit whose
 * outcome a panic left unknown. */
static int64_t read_counter(sop_db *db, const char *key)
{
    sop_txn *t;
    sop_store *s;
    int64_t x = -1;
    if (sop_txn_begin(db, SOP_TXN_READ, 0, &t) == 0) {
        if (sop_store_open(t, "acct", &s) == 0)
            x = cl_get_i64(s, key);
        sop_txn_rollback(t);
    }
    return x;
}

static int worker(const char *path, const char *url, int me, double seconds, int out_fd)
{
    sop_db_options o;
    opts_for(&o, url);
    wstats st = {0};
    unsigned seed = (unsigned)getpid() * 7919u;
    sop_db *db = NULL;
    double end = now_s() + seconds;
    int phase_hot = 0;
    char kn[16];
    snprintf(kn, sizeof kn, "n%d", me);
    for (;;) {
        if (!db) {
            int rc = sop_db_open(path, &o, &db);
            if (rc) {
                sop_db_close(db);
                db = NULL;
                if (rc != SOP_EREDIS && rc != SOP_EBUSY) {
                    fprintf(stderr, "worker %d: open: %s\n", me, sop_strerror(rc));
                    return 1;
                }
                st.redis_errs++;
                usleep(50000);
                continue;
            }
        }
        if (!phase_hot && now_s() >= end)
            phase_hot = 1;
        if (phase_hot && st.hot >= HOT_INCR)
            break;
        int rc = transfer(db, me, &seed, phase_hot);
        if (rc == 0) {
            if (phase_hot)
                st.hot++;
            else
                st.acked++;
        } else if (rc == SOP_ECONFLICT) {
            st.conflicts++;
        } else if (rc == SOP_EREDIS || rc == SOP_EBUSY) {
            st.redis_errs++;
            usleep(20000);
        } else if (rc == SOP_EPANIC) {
            /* the outcome of that commit is unknown: reopen and look */
            sop_db_close(db);
            db = NULL;
            st.reopens++;
            while (!db) {
                if (sop_db_open(path, &o, &db)) {
                    sop_db_close(db);
                    db = NULL;
                    usleep(50000);
                }
            }
            if (!phase_hot && read_counter(db, kn) == st.acked + 1)
                st.acked++;
            /* "hot" is shared: its check allows one such commit per reopen */
        } else {
            fprintf(stderr, "worker %d: commit: %s (%s)\n", me, sop_strerror(rc),
                    sop_db_errmsg(db));
            return 1;
        }
    }
    int64_t mine = read_counter(db, kn);
    if (mine != st.acked) {
        fprintf(stderr, "worker %d: counter %" PRId64 " but %ld transfers acknowledged\n", me,
                mine, st.acked);
        return 1;
    }
    sop_db_close(db);
    if (write(out_fd, &st, sizeof st) != (ssize_t)sizeof st)
        return 1;
    return 0;
}

/* Runs NPROC workers; @chaos: flush, then kill and restart Redis meanwhile. */
static void run_bank(const char *name, double seconds, int chaos)
{
    const char *path = tu_tmpdir(name);
    if (setup(path, g_redis.url)) {
        tu_failed++;
        return;
    }
    int fds[2];
    if (pipe(fds)) {
        tu_failed++;
        return;
    }
    pid_t pids[NPROC];
    for (int i = 0; i < NPROC; i++) {
        pids[i] = fork();
        if (pids[i] == 0) {
            close(fds[0]);
            _exit(worker(path, g_redis.url, i, seconds, fds[1]));
        }
    }
    close(fds[1]);
    double t0 = now_s();
    if (chaos) {
        usleep((useconds_t)(seconds * 0.25e6));
        CHECK(tu_redis_cli(&g_redis, "FLUSHALL") == 0, "FLUSHALL failed");
        fprintf(stderr, "%s: FLUSHALL at %.1f s\n", name, now_s() - t0);
        usleep((useconds_t)(seconds * 0.35e6));
        tu_redis_kill(&g_redis);
        fprintf(stderr, "%s: redis killed at %.1f s\n", name, now_s() - t0);
        usleep((useconds_t)(seconds * 0.2e6));
        CHECK(tu_redis_restart(&g_redis) == 0, "cannot restart redis");
        fprintf(stderr, "%s: redis restarted at %.1f s\n", name, now_s() - t0);
    }
    wstats tot = {0};
    int bad = 0;
    for (int i = 0; i < NPROC; i++) {
        int st;
        waitpid(pids[i], &st, 0);
        if (!WIFEXITED(st) || WEXITSTATUS(st)) {
            bad++;
            continue;
        }
        wstats w;
        if (read(fds[0], &w, sizeof w) != (ssize_t)sizeof w) {
            bad++;
            continue;
        }
        tot.acked += w.acked;
        tot.conflicts += w.conflicts;
        tot.redis_errs += w.redis_errs;
        tot.reopens += w.reopens;
        tot.hot += w.hot;
    }
    close(fds[0]);
    CHECK(!bad, "%s: %d workers failed", name, bad);
    /* the final state, from a fresh process's view */
    sop_db_options o;
    opts_for(&o, g_redis.url);
    sop_db *db;
    int rc = sop_db_open(path, &o, &db);
    CHECK(rc == 0, "%s: reopen: %s (%s)", name, sop_strerror(rc), sop_db_errmsg(db));
    if (!rc) {
        sop_txn *t;
        sop_store *s;
        int64_t total = 0, hot = -1;
        if (sop_txn_begin(db, SOP_TXN_READ, 0, &t) == 0 && sop_store_open(t, "acct", &s) == 0) {
            for (int i = 0; i < NACCT; i++) {
                char key[16];
                snprintf(key, sizeof key, "a%02d", i);
                total += cl_get_i64(s, key);
            }
            hot = cl_get_i64(s, "hot");
            sop_txn_rollback(t);
        }
        CHECK(total == (int64_t)NACCT * INITIAL, "%s: total %" PRId64, name, total);
        CHECK(hot >= NPROC * HOT_INCR && hot <= NPROC * HOT_INCR + tot.reopens,
              "%s: hot %" PRId64 ", expected %d", name, hot, NPROC * HOT_INCR);
        CHECK(sop_db_check(db, NULL, NULL, NULL) == 0, "%s: check: %s", name, sop_db_errmsg(db));
    }
    sop_db_close(db);
    fprintf(stderr, "%s: %ld transfers acknowledged, %ld conflicts, %ld Redis errors, %ld reopens "
            "in %.1f s\n", name, tot.acked, tot.conflicts, tot.redis_errs, tot.reopens,
            now_s() - t0);
    CHECK(tot.acked > 0, "%s: no transfer committed", name);
}

static void run_down(void)
{
    const char *path = tu_tmpdir("down");
    sop_db_options o;
    char url[64];
    snprintf(url, sizeof url, "redis://127.0.0.1:%d", g_redis.port);
    opts_for(&o, url);
    tu_redis_kill(&g_redis);
    sop_db *db;
    double t0 = now_s();
    int rc = sop_db_open(path, &o, &db);
    double took = now_s() - t0;
    CHECK(rc == SOP_EREDIS, "down: open gave %s", sop_strerror(rc));
    CHECK(strstr(sop_db_errmsg(db), "127.0.0.1") != NULL, "down: message \"%s\"", sop_db_errmsg(db));
    CHECK(took < 2.0, "down: open took %.2f s", took);
    fprintf(stderr, "down: %s (%.3f s)\n", sop_db_errmsg(db), took);
    sop_db_close(db);
    CHECK(tu_redis_restart(&g_redis) == 0, "cannot restart redis");
    rc = sop_db_open(path, &o, &db);
    CHECK(rc == 0, "down: open after restart: %s (%s)", sop_strerror(rc), sop_db_errmsg(db));
    sop_db_close(db);
}

/* Reads the 2000 items of "kv" with a tiny L1 cache; returns the L2 hits. */
static uint64_t l2_read_all(const char *path, int *bad)
{
    sop_db_options o;
    opts_for(&o, g_redis.url);
    o.redis_cache_ms = 60000;
    o.cache_bytes = 1;
    sop_db *db;
    int rc = sop_db_open(path, &o, &db);
    CHECK(rc == 0, "l2: open: %s (%s)", sop_strerror(rc), sop_db_errmsg(db));
    sop_txn *t;
    sop_store *s;
    if (!rc && sop_txn_begin(db, SOP_TXN_READ, 0, &t) == 0) {
        if (sop_store_open(t, "kv", &s) == 0) {
            for (int i = 0; i < 2000; i++) {
                char key[16], want[200];
                snprintf(key, sizeof key, "k%05d", i);
                memset(want, 'a' + i % 26, sizeof want);
                sop_val k = {key, strlen(key)}, v;
                if (sop_get(s, &k, &v) || v.size != sizeof want || memcmp(v.data, want, v.size))
                    (*bad)++;
            }
        }
        sop_txn_rollback(t);
    }
    sop_db_stat st = {0};
    sop_db_stats(db, &st);
    sop_db_close(db);
    return st.l2_hits;
}

static void run_l2(void)
{
    const char *path = tu_tmpdir("l2");
    sop_db_options o;
    opts_for(&o, g_redis.url);
    sop_db *db;
    int rc = sop_db_open(path, &o, &db);
    sop_txn *t;
    sop_store *s;
    if (!rc)
        rc = sop_txn_begin(db, SOP_TXN_WRITE, 0, &t);
    if (!rc)
        rc = sop_store_create(t, "kv", NULL, &s);
    for (int i = 0; !rc && i < 2000; i++) {
        char key[16], val[200];
        snprintf(key, sizeof key, "k%05d", i);
        memset(val, 'a' + i % 26, sizeof val);
        sop_val k = {key, strlen(key)}, v = {val, sizeof val};
        rc = sop_upsert(s, &k, &v);
    }
    rc = rc ? rc : sop_txn_commit(t);
    CHECK(rc == 0, "l2: load: %s", sop_strerror(rc));
    sop_db_close(db);
    int bad = 0;
    uint64_t first = l2_read_all(path, &bad);
    uint64_t second = l2_read_all(path, &bad);
    CHECK(second > 100, "l2: %" PRIu64 " hits on the second pass (first %" PRIu64 ")", second,
          first);
    /* garble every cached image: each must be refused, and read from disk */
    char cmd[256];
    snprintf(cmd, sizeof cmd, "redis-cli -p %d --scan --pattern 'sop:*:n:*' | "
             "xargs -r -I{} redis-cli -p %d SETRANGE {} 30 garbled >/dev/null", g_redis.port,
             g_redis.port);
    CHECK(system(cmd) == 0, "l2: cannot garble the cache");
    uint64_t third = l2_read_all(path, &bad);
    CHECK(bad == 0, "l2: %d wrong values", bad);
    fprintf(stderr, "l2: hits %" PRIu64 " then %" PRIu64 ", %" PRIu64 " after garbling\n", first,
            second, third);
}

static void run_killed(const char *self)
{
    const char *path = tu_tmpdir("killed");
    if (setup(path, g_redis.url)) {
        tu_failed++;
        return;
    }
    /* the victim: its first commit dies after appending, lock held */
    pid_t pid = fork();
    if (pid == 0) {
        setenv("SOP_KILLPOINT", "commit:after_append", 1);
        execl(self, self, "victim", path, g_redis.url, (char *)NULL);
        _exit(127);
    }
    int st;
    waitpid(pid, &st, 0);
    if (!WIFSIGNALED(st)) {
        fprintf(stderr, "killed: the victim was not killed (a build without SOP_TESTING?)\n");
        return;
    }
    double t0 = now_s();
    sop_db_options o;
    opts_for(&o, g_redis.url);
    sop_db *db;
    int rc = sop_db_open(path, &o, &db);
    CHECK(rc == 0, "killed: open: %s (%s)", sop_strerror(rc), sop_db_errmsg(db));
    unsigned seed = 1;
    if (!rc)
        rc = transfer(db, 0, &seed, 0);
    double took = now_s() - t0;
    CHECK(rc == 0, "killed: commit: %s (%s)", sop_strerror(rc), sop_db_errmsg(db));
    CHECK(took < LEASE_MS / 1000.0 * 3 + 1, "killed: took %.2f s", took);
    CHECK(sop_db_check(db, NULL, NULL, NULL) == 0, "killed: check: %s", sop_db_errmsg(db));
    fprintf(stderr, "killed: next commit %.2f s after the writer died holding the lock "
            "(lease %d ms)\n", took, LEASE_MS);
    sop_db_close(db);
}

int main(int argc, char **argv)
{
    if (argc == 4 && !strcmp(argv[1], "victim")) {
        sop_db_options o;
        opts_for(&o, argv[3]);
        sop_db *db;
        if (sop_db_open(argv[2], &o, &db))
            return 2;
        unsigned seed = 2;
        transfer(db, 1, &seed, 0);
        return 3; /* not reached when the kill point fires */
    }
    int rc = tu_redis_start(&g_redis, "redis");
    if (rc == 77) {
        fprintf(stderr, "redis-server is not installed: skipped\n");
        return 77;
    }
    if (rc) {
        fprintf(stderr, "cannot start redis-server\n");
        return 1;
    }
    double secs = getenv("SOP_CLUSTER_SECONDS") ? atof(getenv("SOP_CLUSTER_SECONDS")) : 3;
    const char *only = argc > 1 ? argv[1] : NULL;
    if (!only || !strcmp(only, "bank"))
        run_bank("bank", secs, 0);
    if (!only || !strcmp(only, "down"))
        run_down();
    if (!only || !strcmp(only, "l2"))
        run_l2();
    if (!only || !strcmp(only, "killed"))
        run_killed(argv[0]);
    if (!only || !strcmp(only, "chaos"))
        run_bank("chaos", secs * 2, 1);
    tu_redis_kill(&g_redis);
    fprintf(stderr, "cluster: %s\n", tu_failed ? "FAILED" : "ok");
    return tu_failed ? 1 : 0;
}
