/*
 * ec_repair.c - sop_db_repair() on a clustered, erasure-coded database
 * (4 drive folders, parity 2) against a real redis-server on loopback.
 *
 * A writer process commits without pause through Redis. A drive folder is
 * deleted under it, and a repair runs while it commits: the repair must
 * succeed, rebuild shards, and must NOT mark the new folder as one of the
 * database's drives (its identity file), because the writer may still
 * append to a shard file it held in the deleted folder: in clustered mode
 * the processes hold no lock in the LOCK file, so only Redis can tell that
 * the writer is alive. Once the writer has closed, a second repair finds no
 * live process (under the Redis lease), repairs the segment that was
 * being appended to whole, and marks the drive. Then two OTHER drives are
 * deleted and every acknowledged record must still read back: the
 * repaired drive holds real shards of every segment.
 *
 * Exit 0 when every check held, 1 otherwise, 77 without redis-server.
 */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "redis_server.h"
#include "sop/sop.h"
#include "testutil.h"

#define NDRV 4
#define PARITY 2
#define NBASE 1200
#define VBYTES 3000
#define ID_FILE "sop-ec.id" /* a drive's identity file (ec_vfs.h) */

static char g_drv[NDRV][600];
static const char *g_drives[NDRV];

static void opts_for(sop_db_options *o, const char *url)
{
    sop_db_options_init(o);
    o->mode = SOP_CLUSTERED;
    o->redis_url = url;
    o->redis_timeout_ms = 1000;
    o->lease_ms = 2000;
    o->segment_bytes = 1u << 20; /* several segments, sealed and active */
    o->drives = g_drives;
    o->ndrives = NDRV;
    o->parity = PARITY;
}

/* The value of key @key: VBYTES bytes that depend on the key. */
static void fill(char *buf, const char *key)
{
    unsigned h = 2166136261u;
    for (const char *p = key; *p; p++)
        h = (h ^ (unsigned char)*p) * 16777619u;
    for (int i = 0; i < VBYTES; i++) {
        h = h * 1103515245u + 12345u;
        buf[i] = (char)(h >> 16);
    }
}

static int put_key(sop_db *db, const char *key)
{
    static char buf[VBYTES];
    fill(buf, key);
    sop_txn *t;
    sop_store *s;
    int rc = sop_txn_begin(db, SOP_TXN_WRITE, 0, &t);
    if (rc)
        return rc;
    rc = sop_store_open(t, "data", &s);
    if (rc == SOP_ENOTFOUND)
        rc = sop_store_create(t, "data", NULL, &s);
    sop_val k = {key, strlen(key)}, v = {buf, VBYTES};
    if (!rc)
        rc = sop_upsert(s, &k, &v);
    if (rc) {
        sop_txn_rollback(t);
        return rc;
    }
    return sop_txn_commit(t);
}

static int file_exists(const char *dir, const char *name)
{
    char p[700];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    struct stat st;
    return stat(p, &st) == 0;
}

/* The writer: commits "w<n>" until the parent closes @stop_fd (read
 * without blocking); says "g" on @go_fd after its first 20 commits, and
 * writes the number acknowledged to @out_fd at the end. */
static void writer(const char *path, const char *url, int go_fd, int stop_fd, int out_fd)
{
    sop_db_options o;
    opts_for(&o, url);
    sop_db *db;
    if (sop_db_open(path, &o, &db)) {
        fprintf(stderr, "writer open: %s\n", sop_db_errmsg(db));
        _exit(2);
    }
    long acked = 0;
    for (long i = 0;; i++) {
        char key[32];
        snprintf(key, sizeof key, "w%06ld", i);
        int rc = put_key(db, key);
        if (rc) {
            fprintf(stderr, "writer commit %ld: %s (%s)\n", i, sop_strerror(rc), sop_db_errmsg(db));
            _exit(3);
        }
        acked++;
        if (acked == 20 && write(go_fd, "g", 1) != 1)
            _exit(4);
        char c;
        if (acked > 20 && read(stop_fd, &c, 1) == 0)
            break; /* the parent closed the pipe (non-blocking read) */
    }
    int rc = sop_db_close(db);
    if (write(out_fd, &acked, sizeof acked) != sizeof acked || rc)
        _exit(5);
    _exit(0);
}

static long verify(const char *path, const char *url, long nw)
{
    sop_db_options o;
    opts_for(&o, url);
    sop_db *db;
    int rc = sop_db_open(path, &o, &db);
    CHECK(rc == 0, "open with two drives gone: %s (%s)", sop_strerror(rc), sop_db_errmsg(db));
    if (rc) {
        sop_db_close(db);
        return -1;
    }
    sop_txn *t;
    sop_store *s;
    long ok = 0;
    rc = sop_txn_begin(db, SOP_TXN_READ, 0, &t);
    if (!rc)
        rc = sop_store_open(t, "data", &s);
    CHECK(rc == 0, "read txn: %s", sop_db_errmsg(db));
    static char want[VBYTES];
    for (long i = 0; !rc && i < NBASE + nw; i++) {
        char key[32];
        if (i < NBASE)
            snprintf(key, sizeof key, "b%06ld", i);
        else
            snprintf(key, sizeof key, "w%06ld", i - NBASE);
        fill(want, key);
        sop_val k = {key, strlen(key)}, v;
        int g = sop_get(s, &k, &v);
        if (g == 0 && v.size == VBYTES && memcmp(v.data, want, VBYTES) == 0)
            ok++;
        else
            CHECK(0, "%s: %s (%s)", key, sop_strerror(g), sop_db_errmsg(db));
    }
    if (!rc)
        sop_txn_rollback(t);
    sop_db_close(db);
    return ok;
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    tu_redis r;
    int rc = tu_redis_start(&r, "redis-ec");
    if (rc == 77) {
        fprintf(stderr, "redis-server not installed: skipped\n");
        return 77;
    }
    if (rc)
        return 1;
    const char *path = tu_tmpdir("ec_repair/db");
    for (int d = 0; d < NDRV; d++) {
        char name[32];
        snprintf(name, sizeof name, "ec_repair/d%d", d);
        snprintf(g_drv[d], sizeof g_drv[d], "%s", tu_tmpdir(name));
        g_drives[d] = g_drv[d];
    }
    sop_db_options o;
    opts_for(&o, r.url);

    /* a base spanning several segments */
    sop_db *db;
    rc = sop_db_open(path, &o, &db);
    CHECK(rc == 0, "create: %s (%s)", sop_strerror(rc), sop_db_errmsg(db));
    for (long i = 0; !rc && i < NBASE; i++) {
        char key[32];
        snprintf(key, sizeof key, "b%06ld", i);
        rc = put_key(db, key);
        CHECK(rc == 0, "base put %ld: %s", i, sop_db_errmsg(db));
    }
    sop_db_close(db);
    if (rc)
        goto out;

    int go[2], stop[2], res[2];
    if (pipe(go) || pipe(stop) || pipe(res))
        return 1;
    pid_t pid = fork();
    if (pid == 0) {
        close(go[0]);
        close(stop[1]);
        close(res[0]);
        fcntl(stop[0], F_SETFL, O_NONBLOCK);
        writer(path, r.url, go[1], stop[0], res[1]);
    }
    close(go[1]);
    close(stop[0]);
    close(res[1]);
    char c;
    CHECK(read(go[0], &c, 1) == 1, "the writer did not start");

    /* a drive lost under the writer, repaired while it commits */
    tu_rmtree(g_drv[1]);
    sop_repair_report rep;
    rc = sop_db_repair(path, &o, &rep);
    CHECK(rc == 0, "repair while the writer commits: %s (%s)", sop_strerror(rc), rep.message);
    CHECK(rep.shards_rebuilt > 0, "the first repair rebuilt nothing");
    CHECK(rep.unrecoverable == 0, "unrecoverable stripes: %llu",
          (unsigned long long)rep.unrecoverable);
    CHECK(!file_exists(g_drv[1], ID_FILE),
          "the drive was marked as the database's while a clustered process had it open");
    fprintf(stderr, "repair 1: %llu segments, %llu shards rebuilt, %llu deferred\n",
            (unsigned long long)rep.segments, (unsigned long long)rep.shards_rebuilt,
            (unsigned long long)rep.deferred);

    close(stop[1]); /* the writer stops */
    long acked = 0;
    CHECK(read(res[0], &acked, sizeof acked) == (ssize_t)sizeof acked, "no count from the writer");
    int st;
    waitpid(pid, &st, 0);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "writer status %d", st);

    /* nobody else has it open: this pass finishes the drive */
    rc = sop_db_repair(path, &o, &rep);
    CHECK(rc == 0, "second repair: %s (%s)", sop_strerror(rc), rep.message);
    CHECK(rep.deferred == 0, "deferred shards with no other process: %llu",
          (unsigned long long)rep.deferred);
    CHECK(file_exists(g_drv[1], ID_FILE), "the repaired drive was not marked as the database's");
    fprintf(stderr, "repair 2: %llu segments, %llu shards rebuilt; writer acked %ld\n",
            (unsigned long long)rep.segments, (unsigned long long)rep.shards_rebuilt, acked);

    /* the repaired drive carries its share: two others gone, all reads */
    tu_rmtree(g_drv[0]);
    tu_rmtree(g_drv[3]);
    long ok = verify(path, r.url, acked);
    CHECK(ok == NBASE + acked, "%ld of %ld records read back", ok, NBASE + acked);
out:
    tu_redis_kill(&r);
    if (tu_failed)
        fprintf(stderr, "%d checks failed\n", tu_failed);
    else
        printf("ec_repair: ok\n");
    return tu_failed ? 1 : 0;
}
