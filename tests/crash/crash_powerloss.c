/*
 * crash_powerloss.c - simulated power loss at every I/O operation of a
 * workload (reliability plan C2).
 *
 * The workload W opens a database through the fault VFS, runs TXNS
 * transactions (each moves money between two of ACCTS accounts, so the
 * total is conserved, and inserts RECS records "p/<t>/<i>" derived from t,
 * one of them large enough to live in its own blob), forces a checkpoint
 * halfway and closes. After each commit returns SOP_OK the child writes t
 * to a pipe: t is acknowledged.
 *
 * First W runs once to count S, its state-changing operations. Then for
 * n = 1..S and seed d = 1..D, a child runs W with power cut at operation n
 * (damage chosen by seed d: unsynced writes kept, dropped, torn or garbage;
 * directory entries not synced undone). The parent reopens with the real
 * VFS and checks: sop_db_check() is clean; the committed transactions are
 * exactly 1..m with acked <= m <= acked + 1 (nothing acknowledged lost, no
 * hole, at most the one in flight); every present transaction is complete
 * (all its records with the exact content) and the account total holds.
 *
 * Usage: crash_powerloss [--seeds D] [--mutant-nosync]
 * With --mutant-nosync the engine skips the commit sync (a test-only
 * switch, SOP_TEST_NO_COMMIT_SYNC) and this test must FAIL: that is the
 * harness self-test; the exit status is then inverted (0 when losses were
 * detected).
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fault_vfs.h"
#include "sop/sop.h"
#include "testutil.h"

#define TXNS 6
#define ACCTS 8
#define RECS 3
#define START_BALANCE 1000

static void die(const char *what, int rc, sop_db *db)
{
    fprintf(stderr, "powerloss: %s: %s (%s)\n", what, sop_strerror(rc), db ? sop_db_errmsg(db) : "");
    exit(2);
}

static size_t rec_value(int t, int i, char *buf, size_t cap)
{
    /* record 0 is large (a blob); the others small */
    size_t len = i == 0 ? 3000 + (size_t)t * 7 : 20 + (size_t)t;
    if (len > cap)
        len = cap;
    for (size_t j = 0; j < len; j++)
        buf[j] = (char)('a' + (t * 31 + i * 7 + (int)j) % 26);
    return len;
}

static int put_i64(sop_store *s, const char *key, int64_t v)
{
    sop_val k = {key, strlen(key)}, val = {&v, sizeof v};
    return sop_upsert(s, &k, &val);
}

static int get_i64(sop_store *s, const char *key, int64_t *v)
{
    sop_val k = {key, strlen(key)};
    size_t len;
    int rc = sop_get_copy(s, &k, v, sizeof *v, &len);
    return rc ? rc : (len == sizeof *v ? 0 : SOP_ECORRUPT);
}

static sop_db_options opts_for(sop_vfs *vfs)
{
    sop_db_options o;
    sop_db_options_init(&o);
    o.vfs = vfs;
    o.segment_bytes = 1u << 20;
    return o;
}

/* One transaction of the workload; returns the commit's result. */
static int run_txn(sop_db *db, int t)
{
    sop_txn *txn;
    sop_store *acct, *recs;
    int rc = sop_txn_begin(db, SOP_TXN_WRITE, 0, &txn);
    if (rc)
        return rc;
    if (t == 1) {
        rc = sop_store_create(txn, "acct", NULL, &acct);
        if (!rc)
            rc = sop_store_create(txn, "recs", NULL, &recs);
        for (int a = 0; !rc && a < ACCTS; a++) {
            char key[16];
            snprintf(key, sizeof key, "a%02d", a);
            rc = put_i64(acct, key, START_BALANCE);
        }
    } else {
        rc = sop_store_open(txn, "acct", &acct);
        if (!rc)
            rc = sop_store_open(txn, "recs", &recs);
        char from[16], to[16];
        snprintf(from, sizeof from, "a%02d", t % ACCTS);
        snprintf(to, sizeof to, "a%02d", (t * 3 + 1) % ACCTS);
        int64_t fb, tb;
        if (!rc)
            rc = get_i64(acct, from, &fb);
        if (!rc)
            rc = get_i64(acct, to, &tb);
        if (!rc && strcmp(from, to) != 0) {
            rc = put_i64(acct, from, fb - t);
            if (!rc)
                rc = put_i64(acct, to, tb + t);
        }
    }
    for (int i = 0; !rc && i < RECS; i++) {
        char key[32], val[4096];
        snprintf(key, sizeof key, "p/%03d/%d", t, i);
        sop_val k = {key, strlen(key)}, v = {val, rec_value(t, i, val, sizeof val)};
        rc = sop_add(recs, &k, &v);
    }
    if (rc) {
        sop_txn_rollback(txn);
        return rc;
    }
    return sop_txn_commit(txn);
}

/* The workload: never returns. */
static void workload(const char *dir, sop_vfs *vfs, int ackfd)
{
    sop_db_options o = opts_for(vfs);
    sop_db *db;
    int rc = sop_db_open(dir, &o, &db);
    if (rc)
        _exit(3);
    for (int t = 1; t <= TXNS; t++) {
        rc = run_txn(db, t);
        if (rc)
            _exit(4);
        if (write(ackfd, &t, sizeof t) != sizeof t)
            _exit(5);
        if (t == TXNS / 2 && sop_db_checkpoint(db))
            _exit(6);
    }
    if (sop_db_close(db))
        _exit(7);
    _exit(0);
}

typedef struct result {
    int lost, partial, corrupt;
} result;

/* Reopens with the real VFS and checks everything; @acked = highest ack. */
static result verify(const char *dir, int acked, uint64_t n, uint64_t seed)
{
    result r = {0, 0, 0};
    sop_db *db;
    int rc = sop_db_open(dir, NULL, &db);
    if (rc) {
        fprintf(stderr, "powerloss: op %" PRIu64 " seed %" PRIu64 ": reopen: %s (%s)\n", n, seed,
                sop_strerror(rc), sop_db_errmsg(db));
        sop_db_close(db);
        r.corrupt = 1;
        return r;
    }
    uint64_t problems = 0;
    rc = sop_db_check(db, NULL, NULL, &problems);
    if (rc) {
        fprintf(stderr, "powerloss: op %" PRIu64 " seed %" PRIu64 ": check: %s, %" PRIu64 " problems\n",
                n, seed, sop_strerror(rc), problems);
        r.corrupt = 1;
    }
    sop_txn *txn;
    rc = sop_txn_begin(db, SOP_TXN_READ, 0, &txn);
    if (rc)
        die("begin", rc, db);
    sop_store *acct = NULL, *recs = NULL;
    int have = sop_store_open(txn, "acct", &acct) == 0 && sop_store_open(txn, "recs", &recs) == 0;
    int present = 0;
    if (have) {
        for (int t = 1; t <= TXNS; t++) {
            int found = 0;
            for (int i = 0; i < RECS; i++) {
                char key[32], want[4096];
                snprintf(key, sizeof key, "p/%03d/%d", t, i);
                size_t wl = rec_value(t, i, want, sizeof want);
                sop_val k = {key, strlen(key)}, v;
                rc = sop_get(recs, &k, &v);
                if (rc == 0 && v.size == wl && memcmp(v.data, want, wl) == 0)
                    found++;
                else if (rc != SOP_ENOTFOUND) {
                    fprintf(stderr, "powerloss: op %" PRIu64 " seed %" PRIu64 ": %s: %s\n", n, seed,
                            key, rc ? sop_strerror(rc) : "wrong content");
                    r.corrupt = 1;
                }
            }
            if (found == RECS && present == t - 1)
                present = t;
            else if (found) {
                fprintf(stderr, "powerloss: op %" PRIu64 " seed %" PRIu64 ": txn %d partial or after a hole (%d/%d)\n",
                        n, seed, t, found, RECS);
                r.partial = 1;
            }
        }
        int64_t total = 0;
        for (int a = 0; a < ACCTS; a++) {
            char key[16];
            int64_t b;
            snprintf(key, sizeof key, "a%02d", a);
            if (get_i64(acct, key, &b) == 0)
                total += b;
        }
        if (total != (int64_t)ACCTS * START_BALANCE) {
            fprintf(stderr, "powerloss: op %" PRIu64 " seed %" PRIu64 ": total %" PRId64 "\n", n, seed, total);
            r.partial = 1;
        }
    } else if (acked > 0) {
        /* the stores were created by transaction 1 */
    }
    if (present < acked) {
        fprintf(stderr, "powerloss: op %" PRIu64 " seed %" PRIu64 ": %d acknowledged, %d present\n", n,
                seed, acked, present);
        r.lost = acked - present;
    }
    if (present > acked + 1)
        r.partial = 1;
    sop_txn_rollback(txn);
    sop_db_close(db);
    return r;
}

int main(int argc, char **argv)
{
    int seeds = 4, mutant = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--seeds") && i + 1 < argc)
            seeds = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--mutant-nosync"))
            mutant = 1;
    }
    if (getenv("SOP_POWERLOSS_SEEDS"))
        seeds = atoi(getenv("SOP_POWERLOSS_SEEDS"));
    if (mutant)
        setenv("SOP_TEST_NO_COMMIT_SYNC", "1", 1);
    unsigned base = tu_seed();
    const char *dir = tu_tmpdir(mutant ? "powerloss-mutant" : "powerloss");

    /* count the operations of one full, fault-free run */
    int p[2], st;
    pid_t pid;
    sop_vfs *count_vfs = fault_vfs_new(NULL);
    if (pipe(p))
        return 2;
    pid = fork();
    if (pid == 0) {
        close(p[0]);
        sop_db_options o = opts_for(count_vfs);
        sop_db *db;
        if (sop_db_open(dir, &o, &db))
            _exit(3);
        for (int t = 1; t <= TXNS; t++) {
            if (run_txn(db, t))
                _exit(4);
            if (t == TXNS / 2 && sop_db_checkpoint(db))
                _exit(6);
        }
        if (sop_db_close(db))
            _exit(7);
        uint64_t ops = fault_vfs_powerloss_ops(count_vfs);
        if (write(p[1], &ops, sizeof ops) != sizeof ops)
            _exit(8);
        _exit(0);
    }
    close(p[1]);
    uint64_t S = 0;
    if (read(p[0], &S, sizeof S) != sizeof S)
        S = 0;
    close(p[0]);
    waitpid(pid, &st, 0);
    fault_vfs_free(count_vfs);
    if (!S || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        fprintf(stderr, "powerloss: the workload fails without faults (status %d)\n", st);
        return 2;
    }
    fprintf(stderr, "powerloss: %" PRIu64 " operations x %d seeds\n", S, seeds);

    uint64_t cases = 0, acked_total = 0;
    int lost = 0, partial = 0, corrupt = 0;
    for (uint64_t n = 1; n <= S; n++) {
        for (int d = 1; d <= seeds; d++) {
            uint64_t seed = (uint64_t)base * 1000003u + n * 131 + (uint64_t)d;
            tu_rmtree(dir);
            int ack[2];
            if (pipe(ack))
                return 2;
            pid = fork();
            if (pid == 0) {
                close(ack[0]);
                sop_vfs *vfs = fault_vfs_new(NULL);
                fault_vfs_powerloss_arm(vfs, n, seed);
                workload(dir, vfs, ack[1]);
            }
            close(ack[1]);
            int t, acked = 0;
            while (read(ack[0], &t, sizeof t) == sizeof t)
                acked = t;
            close(ack[0]);
            waitpid(pid, &st, 0);
            int code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
            if (code != FAULT_VFS_CRASH_EXIT && code != 0) {
                fprintf(stderr, "powerloss: op %" PRIu64 ": workload failed with status %d\n", n, st);
                corrupt++;
                continue;
            }
            result r = verify(dir, acked, n, seed);
            cases++;
            acked_total += (uint64_t)acked;
            lost += r.lost;
            partial += r.partial;
            corrupt += r.corrupt;
        }
    }
    printf("powerloss: %" PRIu64 " cases, %" PRIu64 " acked, %d lost, %d partial, %d corrupt\n", cases,
           acked_total, lost, partial, corrupt);
    int bad = lost || partial || corrupt;
    if (mutant) {
        printf("powerloss: mutant (commit sync removed) %s\n", lost ? "caught" : "NOT caught");
        return lost ? 0 : 1;
    }
    return bad ? 1 : 0;
}
