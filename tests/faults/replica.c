/*
 * replica.c - replicated database directory (docs/design/replication.md):
 * failover on I/O errors of the active folder, a failing passive marked
 * stale, reinstatement by fast-forward (at open, and online with writers
 * running), both folders failing, power loss under the mirror, and the
 * checks of the state at open (swapped paths, an emptied replica), and a
 * failover seen by another process that has the database open.
 *
 * One folder is failed with the prefix fault VFS (tests/support); each
 * folder is verified alone at the end by opening it as a plain database,
 * and the database files of the two folders are compared byte for byte.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sop/sop.h"
#include "fault_vfs.h"
#include "mirror.h"
#include "prefix_fault_vfs.h"
#include "testutil.h"

#define VAL_LEN 300

/* ---- helpers ---- */

static void make_val(uint64_t k, char *v)
{
    for (int i = 0; i < VAL_LEN; i++)
        v[i] = (char)('a' + (k * 7 + (uint64_t)i) % 26);
}

static int open_db(const char *dir, const char *replica, sop_vfs *vfs, sop_db **db)
{
    sop_db_options o;
    sop_db_options_init(&o);
    o.segment_bytes = 1u << 20;
    o.checkpoint_bytes = 2u << 20;
    o.vfs = vfs;
    o.replica_path = replica;
    int rc = sop_db_open(dir, &o, db);
    if (rc) {
        fprintf(stderr, "open %s: %s\n", dir, sop_db_errmsg(*db));
        sop_db_close(*db);
        *db = NULL;
    }
    return rc;
}

/* Commits keys [from, to) of store "s", @per keys a transaction; returns
 * the first failing commit's code (conflicts retried). */
static int put_range(sop_db *db, uint64_t from, uint64_t to, uint64_t per)
{
    char key[32], val[VAL_LEN];
    for (uint64_t k = from; k < to;) {
        uint64_t end = k + per < to ? k + per : to;
        sop_txn *t;
        int rc = sop_txn_begin(db, SOP_TXN_WRITE, 0, &t);
        if (rc)
            return rc;
        sop_store *s;
        rc = sop_store_open(t, "s", &s);
        if (rc == SOP_ENOTFOUND)
            rc = sop_store_create(t, "s", NULL, &s);
        for (uint64_t i = k; !rc && i < end; i++) {
            snprintf(key, sizeof key, "k%010llu", (unsigned long long)i);
            make_val(i, val);
            rc = sop_upsert(s, &(sop_val){key, strlen(key)}, &(sop_val){val, VAL_LEN});
        }
        if (rc) {
            sop_txn_rollback(t);
            return rc;
        }
        rc = sop_txn_commit(t);
        if (rc == SOP_ECONFLICT)
            continue;
        if (rc)
            return rc;
        k = end;
    }
    return 0;
}

/* Every key of [from, to) present with its value; returns the store's count. */
static uint64_t verify_range(sop_db *db, uint64_t from, uint64_t to)
{
    sop_txn *t;
    assert_int_equal(sop_txn_begin(db, SOP_TXN_READ, 0, &t), 0);
    sop_store *s;
    assert_int_equal(sop_store_open(t, "s", &s), 0);
    char key[32], want[VAL_LEN], got[VAL_LEN];
    for (uint64_t i = from; i < to; i++) {
        snprintf(key, sizeof key, "k%010llu", (unsigned long long)i);
        size_t len = 0;
        int rc = sop_get_copy(s, &(sop_val){key, strlen(key)}, got, sizeof got, &len);
        if (rc)
            fprintf(stderr, "key %s: %s\n", key, sop_strerror(rc));
        assert_int_equal(rc, 0);
        assert_int_equal(len, VAL_LEN);
        make_val(i, want);
        assert_memory_equal(got, want, VAL_LEN);
    }
    uint64_t n = 0;
    assert_int_equal(sop_store_count(s, &n), 0);
    sop_txn_rollback(t);
    return n;
}

static uint64_t count_items(sop_db *db)
{
    sop_txn *t;
    assert_int_equal(sop_txn_begin(db, SOP_TXN_READ, 0, &t), 0);
    sop_store *s;
    uint64_t n = 0;
    if (sop_store_open(t, "s", &s) == 0)
        assert_int_equal(sop_store_count(s, &n), 0);
    sop_txn_rollback(t);
    return n;
}

static void check_clean(sop_db *db)
{
    uint64_t problems = 99;
    assert_int_equal(sop_db_check(db, NULL, NULL, &problems), 0);
    assert_int_equal(problems, 0);
}

/* Opens @dir alone (no replica) and checks @n items, all of [0, n). */
static void verify_alone(const char *dir, uint64_t n)
{
    sop_db *db;
    assert_int_equal(open_db(dir, NULL, NULL, &db), 0);
    check_clean(db);
    if (n)
        assert_int_equal(verify_range(db, 0, n), n);
    else
        assert_int_equal(count_items(db), 0);
    assert_int_equal(sop_db_close(db), 0);
}

static int is_db_file(const char *n)
{
    return !strncmp(n, "seg-", 4) || !strcmp(n, "registry") || !strcmp(n, "registry.dw") ||
           !strcmp(n, "ckpt.0") || !strcmp(n, "ckpt.1");
}

static long read_file(const char *path, char **out)
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

/* The database files of the two folders are the same names and bytes. */
static void assert_identical(const char *a, const char *b)
{
    for (int pass = 0; pass < 2; pass++) {
        const char *x = pass ? b : a, *y = pass ? a : b;
        DIR *d = opendir(x);
        assert_non_null(d);
        struct dirent *e;
        while ((e = readdir(d))) {
            if (!is_db_file(e->d_name))
                continue;
            char px[2048], py[2048];
            snprintf(px, sizeof px, "%s/%s", x, e->d_name);
            snprintf(py, sizeof py, "%s/%s", y, e->d_name);
            char *bx = NULL, *by = NULL;
            long nx = read_file(px, &bx), ny = read_file(py, &by);
            if (nx != ny || nx < 0 || memcmp(bx, by, (size_t)nx))
                fprintf(stderr, "%s differs from %s (%ld, %ld bytes)\n", px, py, nx, ny);
            assert_true(nx >= 0 && nx == ny && !memcmp(bx, by, (size_t)nx));
            free(bx);
            free(by);
        }
        closedir(d);
    }
}

static uint64_t seg_bytes(const char *dir)
{
    uint64_t n = 0;
    DIR *d = opendir(dir);
    assert_non_null(d);
    struct dirent *e;
    while ((e = readdir(d))) {
        if (strncmp(e->d_name, "seg-", 4))
            continue;
        char p[2048];
        struct stat st;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        assert_int_equal(stat(p, &st), 0);
        n += (uint64_t)st.st_size;
    }
    closedir(d);
    return n;
}

static sop_replica_status status(sop_db *db)
{
    sop_replica_status st;
    assert_int_equal(sop_db_replica_status(db, &st), 0);
    assert_int_equal(st.configured, 1);
    return st;
}

static void dirs(const char *name, char *d0, char *d1, char *prefix0, char *prefix1)
{
    char n[256];
    snprintf(n, sizeof n, "%s/db", name);
    strcpy(d0, tu_tmpdir(n));
    snprintf(n, sizeof n, "%s/replica", name);
    strcpy(d1, tu_tmpdir(n));
    rmdir(d0); /* the database creates them */
    rmdir(d1);
    if (prefix0)
        snprintf(prefix0, 1100, "%s/", d0);
    if (prefix1)
        snprintf(prefix1, 1100, "%s/", d1);
}

/* ---- tests ---- */

/* I/O errors on the active folder's writes, syncs and truncates in the
 * middle of a workload: commits keep succeeding on the replica, the state
 * file says so; reopened with the folder healthy, it is reinstated by
 * fast-forward (only the segments' missing tails copied). */
static void test_failover_active(void **state)
{
    (void)state;
    char d0[1024], d1[1024], p0[1100];
    dirs("failover", d0, d1, p0, NULL);
    sop_vfs *pf = pfx_vfs_new(NULL);
    sop_db *db;
    assert_int_equal(open_db(d0, d1, pf, &db), 0);
    sop_replica_status st = status(db);
    assert_int_equal(st.active, 0);
    assert_int_equal(st.in_sync, 1);
    assert_int_equal(put_range(db, 0, 6000, 20), 0); /* several segments */
    pfx_vfs_arm(pf, 0, p0, PF_WRITE | PF_SYNC | PF_TRUNC, 7, -EIO);
    assert_int_equal(put_range(db, 6000, 9000, 20), 0);
    assert_true(pfx_vfs_failed(pf, 0) > 0);
    st = status(db);
    assert_int_equal(st.active, 1);
    assert_int_equal(st.in_sync, 0);
    assert_true(st.failovers >= 1);
    /* the state file of the replica records it */
    sop__mstate ms;
    assert_int_equal(sop__mstate_read(sop_vfs_posix(), d1, 1, &ms), 0);
    assert_int_equal(ms.active, 1);
    assert_int_equal(ms.insync, 0);
    assert_int_equal(ms.gen, st.generation);
    assert_int_equal(verify_range(db, 0, 9000), 9000);
    check_clean(db);
    assert_int_equal(sop_db_checkpoint(db), 0);
    assert_int_equal(sop_db_close(db), 0);
    pfx_vfs_disarm(pf);

    /* healthy again: reinstated at open, by fast-forward */
    uint64_t total = seg_bytes(d1);
    assert_int_equal(open_db(d0, d1, pf, &db), 0);
    st = status(db);
    assert_int_equal(st.active, 1);
    assert_int_equal(st.in_sync, 1);
    assert_true(st.reinstated_bytes > 0);
    assert_true(st.skipped_bytes > 0);
    /* the segments' common prefix was not copied: less than all of them
     * plus the whole small files */
    assert_true(st.skipped_bytes + st.reinstated_bytes >= total / 2);
    assert_true(st.reinstated_bytes < total);
    fprintf(stderr, "reinstated %llu bytes, skipped %llu of %llu segment bytes\n",
            (unsigned long long)st.reinstated_bytes, (unsigned long long)st.skipped_bytes,
            (unsigned long long)total);
    assert_int_equal(verify_range(db, 0, 9000), 9000);
    assert_int_equal(put_range(db, 9000, 9500, 50), 0); /* to both again */
    assert_int_equal(sop_db_close(db), 0);
    assert_int_equal(sop__mstate_read(sop_vfs_posix(), d0, 0, &ms), 0);
    assert_int_equal(ms.insync, 1);
    assert_identical(d0, d1);
    verify_alone(d0, 9500);
    verify_alone(d1, 9500);
    pfx_vfs_free(pf);
}

typedef struct writer {
    sop_db *db;
    uint64_t base, n;
    int rc;
} writer;

static void *write_thread(void *arg)
{
    writer *w = arg;
    w->rc = put_range(w->db, w->base, w->base + w->n, 5);
    return NULL;
}

/* An error on the passive folder marks it stale and the calls succeed;
 * sop_db_reinstate() brings it back while writers run. */
static void test_passive_stale_online_reinstate(void **state)
{
    (void)state;
    char d0[1024], d1[1024], p1[1100];
    dirs("online", d0, d1, NULL, p1);
    sop_vfs *pf = pfx_vfs_new(NULL);
    sop_db *db;
    assert_int_equal(open_db(d0, d1, pf, &db), 0);
    assert_int_equal(put_range(db, 0, 3000, 20), 0);
    pfx_vfs_arm(pf, 0, p1, PF_WRITE | PF_SYNC, 3, -ENOSPC);
    assert_int_equal(put_range(db, 3000, 6000, 20), 0);
    assert_true(pfx_vfs_failed(pf, 0) > 0);
    sop_replica_status st = status(db);
    assert_int_equal(st.active, 0);
    assert_int_equal(st.in_sync, 0);
    /* the replica is not written any more */
    uint64_t failed = pfx_vfs_failed(pf, 0);
    assert_int_equal(put_range(db, 6000, 6100, 20), 0);
    assert_int_equal(pfx_vfs_failed(pf, 0), failed);
    pfx_vfs_disarm(pf);

    writer w[2] = {{db, 100000, 1500, 0}, {db, 200000, 1500, 0}};
    pthread_t th[2];
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&th[i], NULL, write_thread, &w[i]), 0);
    usleep(20000);
    int rc = sop_db_reinstate(db);
    if (rc)
        fprintf(stderr, "reinstate: %s\n", sop_db_errmsg(db));
    assert_int_equal(rc, 0);
    st = status(db);
    assert_int_equal(st.in_sync, 1);
    assert_int_equal(st.active, 0);
    assert_true(st.skipped_bytes > 0); /* fast-forward, not a full copy */
    for (int i = 0; i < 2; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(w[i].rc, 0);
    }
    assert_int_equal(sop_db_reinstate(db), 0); /* in sync: nothing to do */
    assert_int_equal(put_range(db, 6100, 6500, 20), 0);
    assert_int_equal(verify_range(db, 0, 6500), 6500 + 3000);
    assert_int_equal(verify_range(db, 100000, 101500), 9500);
    assert_int_equal(sop_db_close(db), 0);
    assert_identical(d0, d1);
    sop_db *alone;
    assert_int_equal(open_db(d1, NULL, NULL, &alone), 0);
    check_clean(alone);
    assert_int_equal(verify_range(alone, 200000, 201500), 9500);
    assert_int_equal(verify_range(alone, 0, 6500), 9500);
    assert_int_equal(sop_db_close(alone), 0);
    pfx_vfs_free(pf);
}

/* The passive goes stale on a registry write at a checkpoint, when no
 * segment has unsynced bytes: the commits that follow append into space
 * the stale folder already has (preallocated zeros, same file size), so
 * only the write-ahead stale table tells the reinstatement to copy them. */
static void test_stale_at_checkpoint(void **state)
{
    (void)state;
    char d0[1024], d1[1024], reg[1100];
    dirs("ckptstale", d0, d1, NULL, NULL);
    snprintf(reg, sizeof reg, "%s/registry", d1);
    sop_vfs *pf = pfx_vfs_new(NULL);
    sop_db *db;
    assert_int_equal(open_db(d0, d1, pf, &db), 0);
    assert_int_equal(put_range(db, 0, 300, 10), 0);
    pfx_vfs_arm(pf, 0, reg, PF_WRITE, 0, -EIO);
    assert_int_equal(sop_db_checkpoint(db), 0);
    assert_true(pfx_vfs_failed(pf, 0) > 0);
    assert_int_equal(status(db).in_sync, 0);
    assert_int_equal(put_range(db, 300, 400, 10), 0);
    assert_int_equal(sop_db_close(db), 0);
    pfx_vfs_disarm(pf);
    assert_int_equal(open_db(d0, d1, pf, &db), 0);
    assert_int_equal(status(db).in_sync, 1);
    assert_int_equal(sop_db_close(db), 0);
    assert_identical(d0, d1);
    verify_alone(d1, 400);
    pfx_vfs_free(pf);
}

/* Several processes: a process that joins learns that the replica is
 * stale (it writes the active folder alone, and its writes are noted in the
 * stale table); reinstatement is refused while it has the database open
 * and works once it left. */
static void test_multiprocess(void **state)
{
    (void)state;
    char d0[1024], d1[1024], p1[1100];
    dirs("multi", d0, d1, NULL, p1);
    sop_vfs *pf = pfx_vfs_new(NULL);
    sop_db *db;
    assert_int_equal(open_db(d0, d1, pf, &db), 0);
    assert_int_equal(put_range(db, 0, 500, 10), 0);
    pfx_vfs_arm(pf, 0, p1, PF_WRITE, 0, -EIO);
    assert_int_equal(put_range(db, 500, 600, 10), 0);
    assert_int_equal(status(db).in_sync, 0);
    pfx_vfs_disarm(pf);
    int up[2], down[2];
    assert_int_equal(pipe(up), 0);
    assert_int_equal(pipe(down), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(up[0]);
        close(down[1]);
        sop_db *c;
        int code = 0;
        if (open_db(d0, d1, NULL, &c))
            _exit(2);
        sop_replica_status cs;
        if (sop_db_replica_status(c, &cs) || cs.in_sync || cs.active != 0)
            code = 3;
        else if (put_range(c, 10000, 10300, 10))
            code = 4;
        char b = (char)code;
        if (write(up[1], &b, 1) != 1 || read(down[0], &b, 1) != 1)
            code = 5;
        if (sop_db_close(c))
            code = 6;
        _exit(code);
    }
    close(up[1]);
    close(down[0]);
    char b;
    assert_int_equal(read(up[0], &b, 1), 1);
    assert_int_equal(b, 0);
    assert_int_equal(sop_db_reinstate(db), SOP_EBUSY);
    assert_int_equal(write(down[1], "x", 1), 1);
    int ws;
    assert_int_equal(waitpid(pid, &ws, 0), pid);
    assert_true(WIFEXITED(ws));
    assert_int_equal(WEXITSTATUS(ws), 0);
    close(up[0]);
    close(down[1]);
    assert_int_equal(sop_db_reinstate(db), 0);
    assert_int_equal(status(db).in_sync, 1);
    assert_int_equal(put_range(db, 600, 700, 10), 0);
    assert_int_equal(sop_db_close(db), 0);
    assert_identical(d0, d1);
    sop_db *alone;
    assert_int_equal(open_db(d1, NULL, NULL, &alone), 0);
    assert_int_equal(verify_range(alone, 10000, 10300), 1000);
    assert_int_equal(verify_range(alone, 0, 700), 1000);
    assert_int_equal(sop_db_close(alone), 0);
    pfx_vfs_free(pf);
}

/* How many keys of [from, to) @db sees with their values (no assertion:
 * for child processes). */
static uint64_t keys_ok(sop_db *db, uint64_t from, uint64_t to)
{
    sop_txn *t;
    sop_store *s;
    uint64_t n = 0;
    if (sop_txn_begin(db, SOP_TXN_READ, 0, &t))
        return 0;
    if (sop_store_open(t, "s", &s) == 0) {
        char key[32], want[VAL_LEN], got[VAL_LEN];
        for (uint64_t i = from; i < to; i++) {
            snprintf(key, sizeof key, "k%010llu", (unsigned long long)i);
            size_t len = 0;
            make_val(i, want);
            n += sop_get_copy(s, &(sop_val){key, strlen(key)}, got, sizeof got, &len) == 0 &&
                 len == VAL_LEN && !memcmp(got, want, VAL_LEN);
        }
    }
    sop_txn_rollback(t);
    return n;
}

/* Several processes, and one fails over (replication.md "Several
 * processes"): the other, whose own I/O works, follows it before its next
 * call. It reads the commits acknowledged since from the new active folder,
 * commits and checkpoints there (writing the old one too would be
 * harmless, reading it is not), and after reopening every acknowledged
 * commit is there, the folders are brought level and each is sound. Before
 * the shared generation, the other process went on reading the database
 * directory: it missed those commits and committed on a stale view. */
static void test_multiprocess_failover(void **state)
{
    (void)state;
    char d0[1024], d1[1024], p0[1100];
    dirs("multifail", d0, d1, p0, NULL);
    sop_vfs *pf = pfx_vfs_new(NULL);
    sop_db *db;
    assert_int_equal(open_db(d0, d1, pf, &db), 0);
    assert_int_equal(put_range(db, 0, 500, 10), 0);
    int up[2], down[2];
    assert_int_equal(pipe(up), 0);
    assert_int_equal(pipe(down), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(up[0]);
        close(down[1]);
        sop_db *c;
        int code = 0;
        if (open_db(d0, d1, NULL, &c))
            _exit(2);
        char b = keys_ok(c, 0, 500) == 500 ? 0 : 3;
        if (write(up[1], &b, 1) != 1 || read(down[0], &b, 1) != 1)
            _exit(4);
        /* the parent failed over and committed [500, 700) meanwhile */
        uint64_t n = keys_ok(c, 0, 700);
        sop_replica_status cs;
        if (n != 700) {
            fprintf(stderr, "child: sees %llu of the 700 keys acknowledged\n",
                    (unsigned long long)n);
            code = 5;
        } else if (sop_db_replica_status(c, &cs) || cs.active != 1 || cs.in_sync) {
            code = 6;
        } else if (put_range(c, 700, 1000, 10) || sop_db_checkpoint(c)) {
            code = 7;
        } else if (keys_ok(c, 0, 1000) != 1000) {
            code = 8;
        }
        if (sop_db_close(c) && !code)
            code = 9;
        _exit(code);
    }
    close(up[1]);
    close(down[0]);
    char b = 1;
    assert_int_equal(read(up[0], &b, 1), 1);
    assert_int_equal(b, 0);
    pfx_vfs_arm(pf, 0, p0, PF_WRITE | PF_SYNC | PF_TRUNC, 0, -EIO);
    assert_int_equal(put_range(db, 500, 700, 10), 0);
    sop_replica_status st = status(db);
    assert_int_equal(st.active, 1);
    assert_int_equal(st.in_sync, 0);
    assert_int_equal(write(down[1], "x", 1), 1);
    int ws;
    assert_int_equal(waitpid(pid, &ws, 0), pid);
    assert_true(WIFEXITED(ws));
    assert_int_equal(WEXITSTATUS(ws), 0);
    close(up[0]);
    close(down[1]);
    assert_int_equal(verify_range(db, 0, 1000), 1000); /* and the child's commits */
    assert_int_equal(sop_db_close(db), 0);
    pfx_vfs_disarm(pf);
    /* alone, the database directory healthy again: reinstated at open */
    assert_int_equal(open_db(d0, d1, NULL, &db), 0);
    st = status(db);
    assert_int_equal(st.active, 1);
    assert_int_equal(st.in_sync, 1);
    check_clean(db);
    assert_int_equal(verify_range(db, 0, 1000), 1000);
    assert_int_equal(sop_db_close(db), 0);
    assert_identical(d0, d1);
    verify_alone(d0, 1000);
    verify_alone(d1, 1000);
    pfx_vfs_free(pf);
}

/* Both folders failing: the commit fails (the database panics), and after
 * reopening the transaction is there entirely or not at all. */
static void test_both_fail(void **state)
{
    (void)state;
    char d0[1024], d1[1024], p0[1100], p1[1100];
    dirs("bothfail", d0, d1, p0, p1);
    sop_vfs *pf = pfx_vfs_new(NULL);
    sop_db *db;
    assert_int_equal(open_db(d0, d1, pf, &db), 0);
    assert_int_equal(put_range(db, 0, 500, 50), 0);
    pfx_vfs_arm(pf, 0, p0, PF_WRITE | PF_SYNC, 0, -EIO);
    pfx_vfs_arm(pf, 1, p1, PF_WRITE | PF_SYNC, 0, -EIO);
    int rc = put_range(db, 500, 600, 100);
    assert_true(rc == SOP_EPANIC || rc == -EIO);
    sop_txn *t;
    assert_int_equal(sop_txn_begin(db, SOP_TXN_WRITE, 0, &t), SOP_EPANIC);
    sop_db_close(db);
    pfx_vfs_disarm(pf);
    assert_int_equal(open_db(d0, d1, NULL, &db), 0);
    check_clean(db);
    uint64_t n = count_items(db);
    assert_true(n == 500 || n == 600);
    assert_int_equal(verify_range(db, 0, n), n);
    sop_replica_status st = status(db);
    assert_int_equal(st.in_sync, 1);
    assert_int_equal(sop_db_close(db), 0);
    assert_identical(d0, d1);
    verify_alone(d1, n);
    pfx_vfs_free(pf);
}

/* Power cut at many points of a workload under the mirror (the fault VFS
 * below it): reopening recovers every acknowledged commit, brings the two
 * folders level, and each folder alone is a sound database. */
static void test_powerloss(void **state)
{
    (void)state;
    uint64_t seed = tu_seed();
    static const uint64_t points[] = {3, 17, 60, 150, 333, 700, 1200};
    for (size_t pi = 0; pi < sizeof points / sizeof *points; pi++) {
        char name[64], d0[1024], d1[1024];
        snprintf(name, sizeof name, "power%zu", pi);
        dirs(name, d0, d1, NULL, NULL);
        int fds[2];
        assert_int_equal(pipe(fds), 0);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            close(fds[0]);
            sop_vfs *fv = fault_vfs_new(NULL);
            sop_db *db;
            if (open_db(d0, d1, fv, &db))
                _exit(2);
            fault_vfs_powerloss_arm(fv, points[pi], seed + pi);
            for (uint64_t k = 0; k < 100000; k += 25) {
                if (put_range(db, k, k + 25, 25))
                    _exit(3);
                uint64_t acked = k + 25;
                if (write(fds[1], &acked, sizeof acked) != sizeof acked)
                    _exit(4);
            }
            _exit(5);
        }
        close(fds[1]);
        uint64_t acked = 0, v;
        while (read(fds[0], &v, sizeof v) == sizeof v)
            acked = v;
        close(fds[0]);
        int ws;
        assert_int_equal(waitpid(pid, &ws, 0), pid);
        assert_true(WIFEXITED(ws));
        assert_int_equal(WEXITSTATUS(ws), FAULT_VFS_CRASH_EXIT);
        sop_db *db;
        assert_int_equal(open_db(d0, d1, NULL, &db), 0);
        check_clean(db);
        sop_replica_status st = status(db);
        assert_int_equal(st.in_sync, 1);
        uint64_t n = count_items(db);
        assert_true(n >= acked);
        if (n)
            assert_int_equal(verify_range(db, 0, n), n);
        assert_int_equal(sop_db_close(db), 0);
        assert_identical(d0, d1);
        verify_alone(d1, n);
    }
}

/* The state at open: the paths given the other way round are refused; an
 * emptied replica folder is refilled whole; a stale replica alone (the
 * database directory gone) is refused. */
static void test_open_states(void **state)
{
    (void)state;
    char d0[1024], d1[1024];
    dirs("states", d0, d1, NULL, NULL);
    sop_db *db;
    assert_int_equal(open_db(d0, d1, NULL, &db), 0);
    assert_int_equal(put_range(db, 0, 2000, 100), 0);
    assert_int_equal(sop_db_close(db), 0);
    assert_identical(d0, d1);

    assert_int_equal(open_db(d1, d0, NULL, &db), SOP_EMISMATCH);

    /* the replica's disk replaced by an empty one */
    tu_rmtree(d1);
    assert_int_equal(open_db(d0, d1, NULL, &db), 0);
    sop_replica_status st = status(db);
    assert_int_equal(st.in_sync, 1);
    assert_int_equal(st.active, 0);
    assert_int_equal(st.skipped_bytes, 0); /* nothing known: a whole copy */
    assert_true(st.reinstated_bytes > 0);
    assert_int_equal(sop_db_close(db), 0);
    assert_identical(d0, d1);
    verify_alone(d1, 2000);

    /* the database directory lost: the replica (in sync) takes over */
    char moved[1100];
    snprintf(moved, sizeof moved, "%s.away", d0);
    tu_rmtree(moved);
    assert_int_equal(rename(d0, moved), 0);
    assert_int_equal(open_db(d0, d1, NULL, &db), 0);
    st = status(db);
    assert_int_equal(st.active, 1);
    assert_int_equal(verify_range(db, 0, 2000), 2000);
    assert_int_equal(put_range(db, 2000, 2100, 100), 0);
    assert_int_equal(sop_db_close(db), 0);
    verify_alone(d1, 2100);
}

/* A new database whose replica folder cannot be created is not created
 * (a wrong replica path must not go unnoticed). */
static void test_replica_path_missing(void **state)
{
    (void)state;
    char d0[1024], d1[1024], bad[1100];
    dirs("missing", d0, d1, NULL, NULL);
    snprintf(bad, sizeof bad, "%s/no/such/parent", d1);
    sop_db *db;
    assert_int_equal(open_db(d0, bad, NULL, &db), -ENOENT);
    struct stat st;
    assert_int_equal(stat(d0, &st), -1); /* nothing left behind */
}

/* An existing plain database gets a replica folder: copied whole at open. */
static void test_add_replica(void **state)
{
    (void)state;
    char d0[1024], d1[1024];
    dirs("add", d0, d1, NULL, NULL);
    sop_db *db;
    assert_int_equal(open_db(d0, NULL, NULL, &db), 0);
    assert_int_equal(put_range(db, 0, 1000, 100), 0);
    assert_int_equal(sop_db_close(db), 0);
    assert_int_equal(open_db(d0, d1, NULL, &db), 0);
    sop_replica_status st = status(db);
    assert_int_equal(st.active, 0);
    assert_int_equal(st.in_sync, 1);
    assert_int_equal(sop_db_close(db), 0);
    assert_identical(d0, d1);
    verify_alone(d1, 1000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_failover_active),
        cmocka_unit_test(test_passive_stale_online_reinstate),
        cmocka_unit_test(test_stale_at_checkpoint),
        cmocka_unit_test(test_multiprocess),
        cmocka_unit_test(test_multiprocess_failover),
        cmocka_unit_test(test_both_fail),
        cmocka_unit_test(test_powerloss),
        cmocka_unit_test(test_open_states),
        cmocka_unit_test(test_add_replica),
        cmocka_unit_test(test_replica_path_missing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
