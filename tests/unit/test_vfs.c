/* test_vfs.c - the POSIX VFS and the fault-injection VFS. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sop/sop.h"
#include "fault_vfs.h"
#include "testutil.h"

/* ------------------------------------------------------------------ */
/* Helpers                                                            */
/* ------------------------------------------------------------------ */

typedef struct path_buf {
    char s[1024];
} path_buf;

static path_buf pj(const char *dir, const char *name)
{
    path_buf p;
    snprintf(p.s, sizeof p.s, "%s/%s", dir, name);
    return p;
}

/* In a forked child cmocka must not be used: report and exit instead. */
#define CHILD_CHECK(cond)                                                                      \
    do {                                                                                       \
        if (!(cond)) {                                                                         \
            fprintf(stderr, "child check failed at %s:%d: %s\n", __FILE__, __LINE__, #cond);  \
            _exit(3);                                                                          \
        }                                                                                      \
    } while (0)

/* Runs @fn in a forked child; returns its exit status (128 + signal when
 * killed). */
static int run_child(void (*fn)(void *arg), void *arg)
{
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        fn(arg);
        _exit(0);
    }
    int st = 0;
    while (waitpid(pid, &st, 0) < 0)
        assert_int_equal(errno, EINTR);
    if (WIFEXITED(st))
        return WEXITSTATUS(st);
    return 128 + WTERMSIG(st);
}

/* Writes @n bytes to @path through @vfs (creating or truncating it); with
 * @durable, syncs the file and its directory. */
static int put_file(sop_vfs *vfs, const char *path, const void *data, size_t n, int durable)
{
    sop_file *f;
    int rc = vfs->open(vfs, path, SOP_O_RDWR | SOP_O_CREATE | SOP_O_TRUNC, 0600, &f);
    if (rc)
        return rc;
    rc = vfs->write(vfs, f, data, n, 0);
    if (rc == 0 && durable)
        rc = vfs->sync(vfs, f);
    int rc2 = vfs->close(vfs, f);
    if (rc == 0)
        rc = rc2;
    if (rc == 0 && durable) {
        char dir[1024];
        snprintf(dir, sizeof dir, "%s", path);
        char *slash = strrchr(dir, '/');
        if (slash)
            *slash = 0;
        rc = vfs->sync_dir(vfs, dir);
    }
    return rc;
}

/* Reads a whole file with libc; returns its size, or -1 if missing. */
static long slurp(const char *path, unsigned char *buf, size_t cap)
{
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return -1;
    size_t n = fread(buf, 1, cap, fp);
    fclose(fp);
    return (long)n;
}

static int exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

static void fill_old(unsigned char *b, size_t off, size_t n)
{
    for (size_t i = 0; i < n; i++)
        b[i] = (unsigned char)(0xA5 ^ ((off + i) * 7));
}

static void fill_new(unsigned char *b, size_t off, size_t n)
{
    for (size_t i = 0; i < n; i++)
        b[i] = (unsigned char)(0xA5 ^ ((off + i) * 7) ^ 0x5A); /* differs everywhere */
}

/* ------------------------------------------------------------------ */
/* POSIX VFS                                                          */
/* ------------------------------------------------------------------ */

static void test_posix_read_write(void **state)
{
    (void)state;
    sop_vfs *v = sop_vfs_posix();
    assert_non_null(v);
    assert_ptr_equal(v, sop_vfs_posix());
    assert_int_equal(v->version, 3);
    assert_int_equal(v->flags, 0); /* not append-only: segments are preallocated */
    const char *d = tu_tmpdir("posix_rw");
    path_buf p = pj(d, "f");
    sop_file *f;
    assert_int_equal(v->open(v, p.s, SOP_O_RDWR | SOP_O_CREATE, 0600, &f), 0);
    struct stat st;
    assert_int_equal(stat(p.s, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);

    uint64_t sz = 99;
    assert_int_equal(v->size(v, f, &sz), 0);
    assert_int_equal(sz, 0);
    const char msg[] = "hello, world";
    assert_int_equal(v->write(v, f, msg, sizeof msg, 0), 0);
    assert_int_equal(v->write(v, f, "XY", 2, 100), 0); /* leaves a hole */
    assert_int_equal(v->size(v, f, &sz), 0);
    assert_int_equal(sz, 102);
    char buf[256];
    size_t got = 0;
    assert_int_equal(v->read(v, f, buf, sizeof msg, 0, &got), 0);
    assert_int_equal(got, sizeof msg);
    assert_memory_equal(buf, msg, sizeof msg);
    /* a hole reads as zeros */
    assert_int_equal(v->read(v, f, buf, 10, 50, &got), 0);
    assert_int_equal(got, 10);
    for (int i = 0; i < 10; i++)
        assert_int_equal(buf[i], 0);
    /* a short read only at end of file */
    assert_int_equal(v->read(v, f, buf, sizeof buf, 90, &got), 0);
    assert_int_equal(got, 12);
    assert_memory_equal(buf + 10, "XY", 2);
    assert_int_equal(v->read(v, f, buf, 10, 102, &got), 0);
    assert_int_equal(got, 0);
    assert_int_equal(v->read(v, f, buf, 10, 5000, &got), 0);
    assert_int_equal(got, 0);
    assert_int_equal(v->read(v, f, buf, 0, 0, &got), 0);
    assert_int_equal(got, 0);
    assert_int_equal(v->sync(v, f), 0);

    /* truncate down and up */
    assert_int_equal(v->truncate(v, f, 5), 0);
    assert_int_equal(v->size(v, f, &sz), 0);
    assert_int_equal(sz, 5);
    assert_int_equal(v->truncate(v, f, 4096), 0);
    assert_int_equal(v->size(v, f, &sz), 0);
    assert_int_equal(sz, 4096);
    assert_int_equal(v->read(v, f, buf, 10, 0, &got), 0);
    assert_int_equal(got, 10);
    assert_memory_equal(buf, "hello\0\0\0\0\0", 10);
    assert_int_equal(v->close(v, f), 0);
    assert_int_equal(v->close(v, NULL), 0);

    /* reopen read-only; writing through it fails */
    assert_int_equal(v->open(v, p.s, SOP_O_READ, 0, &f), 0);
    assert_int_equal(v->write(v, f, "z", 1, 0), -EBADF);
    assert_int_equal(v->read(v, f, buf, 5, 0, &got), 0);
    assert_memory_equal(buf, "hello", 5);
    assert_int_equal(v->close(v, f), 0);

    /* SOP_O_TRUNC empties it */
    assert_int_equal(v->open(v, p.s, SOP_O_RDWR | SOP_O_TRUNC, 0, &f), 0);
    assert_int_equal(v->size(v, f, &sz), 0);
    assert_int_equal(sz, 0);
    assert_int_equal(v->close(v, f), 0);
}

static void test_posix_large_io(void **state)
{
    (void)state;
    sop_vfs *v = sop_vfs_posix();
    const char *d = tu_tmpdir("posix_large");
    path_buf p = pj(d, "big");
    size_t n = 3u << 20;
    unsigned char *a = malloc(n), *b = malloc(n);
    assert_non_null(a);
    assert_non_null(b);
    uint64_t s = 42;
    for (size_t i = 0; i < n; i++)
        a[i] = (unsigned char)tu_rand(&s);
    sop_file *f;
    assert_int_equal(v->open(v, p.s, SOP_O_RDWR | SOP_O_CREATE | SOP_O_EXCL, 0600, &f), 0);
    assert_int_equal(v->write(v, f, a, n, 4096), 0);
    size_t got = 0;
    assert_int_equal(v->read(v, f, b, n, 4096, &got), 0);
    assert_int_equal(got, n);
    assert_memory_equal(a, b, n);
    assert_int_equal(v->sync(v, f), 0);
    assert_int_equal(v->close(v, f), 0);
    free(a);
    free(b);
}

static int collect(const char *name, void *arg)
{
    char *acc = arg;
    strcat(acc, name);
    strcat(acc, ",");
    return 0;
}

static int stop_at_two(const char *name, void *arg)
{
    (void)name;
    int *n = arg;
    return ++*n == 2 ? 12345 : 0;
}

static void test_posix_errors(void **state)
{
    (void)state;
    sop_vfs *v = sop_vfs_posix();
    const char *d = tu_tmpdir("posix_err");
    path_buf missing = pj(d, "missing"), p = pj(d, "f"), sub = pj(d, "sub");
    path_buf deep = pj(d, "nodir/f");
    sop_file *f = (sop_file *)&f;
    assert_int_equal(v->open(v, missing.s, SOP_O_READ, 0, &f), -ENOENT);
    assert_null(f);
    assert_int_equal(v->open(v, missing.s, SOP_O_RDWR, 0, &f), -ENOENT);
    assert_int_equal(v->open(v, deep.s, SOP_O_RDWR | SOP_O_CREATE, 0600, &f), -ENOENT);
    assert_int_equal(put_file(v, p.s, "x", 1, 1), 0);
    assert_int_equal(v->open(v, p.s, SOP_O_RDWR | SOP_O_CREATE | SOP_O_EXCL, 0600, &f),
                     -EEXIST);
    assert_int_equal(v->open(v, p.s, SOP_O_READ | SOP_O_TRUNC, 0, &f), -EINVAL);
    assert_int_equal(v->remove(v, missing.s), -ENOENT);
    assert_int_equal(v->rename(v, missing.s, p.s), -ENOENT);
    assert_int_equal(v->sync_dir(v, missing.s), -ENOENT);
    assert_int_equal(v->sync_dir(v, p.s), -ENOTDIR);
    assert_int_equal(v->mkdir(v, sub.s, 0700), 0);
    assert_int_equal(v->mkdir(v, sub.s, 0700), -EEXIST);
    assert_int_equal(v->mkdir(v, deep.s, 0700), -ENOENT);
    assert_int_equal(v->open(v, sub.s, SOP_O_RDWR, 0, &f), -EISDIR);
    assert_int_equal(v->list(v, missing.s, NULL, NULL), -EINVAL);
    char acc[8] = "";
    assert_int_equal(v->list(v, missing.s, collect, acc), -ENOENT);
    assert_int_equal(v->list(v, p.s, collect, acc), -ENOTDIR);
    /* lock mode out of range */
    assert_int_equal(v->open(v, p.s, SOP_O_RDWR, 0, &f), 0);
    assert_int_equal(v->lock(v, f, 0, 1, 7, 0), -EINVAL);
    assert_int_equal(v->close(v, f), 0);
}

static int remove_each(const char *name, void *arg)
{
    const char *dir = arg;
    path_buf p = pj(dir, name);
    return sop_vfs_posix()->remove(sop_vfs_posix(), p.s);
}

static void test_posix_dirs(void **state)
{
    (void)state;
    sop_vfs *v = sop_vfs_posix();
    const char *d = tu_tmpdir("posix_dirs");
    path_buf a = pj(d, "a"), b = pj(d, "b"), c = pj(d, "c"), sub = pj(d, "sub");
    assert_int_equal(put_file(v, a.s, "AAAA", 4, 1), 0);
    assert_int_equal(put_file(v, b.s, "BB", 2, 1), 0);
    assert_int_equal(v->mkdir(v, sub.s, 0700), 0);
    struct stat st;
    assert_int_equal(stat(sub.s, &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    assert_int_equal(st.st_mode & 0777, 0700);
    assert_int_equal(v->sync_dir(v, d), 0);
    assert_int_equal(v->sync_dir(v, sub.s), 0);

    /* list: every name once, no "." or ".." */
    char acc[256] = "";
    assert_int_equal(v->list(v, d, collect, acc), 0);
    assert_int_equal(strlen(acc), strlen("a,b,sub,"));
    assert_non_null(strstr(acc, "a,"));
    assert_non_null(strstr(acc, "b,"));
    assert_non_null(strstr(acc, "sub,"));
    int count = 0;
    assert_int_equal(v->list(v, d, stop_at_two, &count), 12345);
    assert_int_equal(count, 2);
    acc[0] = 0;
    assert_int_equal(v->list(v, sub.s, collect, acc), 0);
    assert_string_equal(acc, "");

    /* rename, also over an existing file */
    assert_int_equal(v->rename(v, a.s, c.s), 0);
    assert_false(exists(a.s));
    unsigned char buf[16];
    assert_int_equal(slurp(c.s, buf, sizeof buf), 4);
    assert_int_equal(v->rename(v, c.s, b.s), 0);
    assert_int_equal(slurp(b.s, buf, sizeof buf), 4);
    assert_memory_equal(buf, "AAAA", 4);

    /* remove: a file, then an empty directory */
    assert_int_equal(v->remove(v, b.s), 0);
    assert_false(exists(b.s));
    assert_int_equal(v->remove(v, sub.s), 0);
    assert_false(exists(sub.s));

    /* the callback may change the directory */
    for (int i = 0; i < 20; i++) {
        char name[16];
        snprintf(name, sizeof name, "x%d", i);
        path_buf p = pj(d, name);
        assert_int_equal(put_file(v, p.s, "x", 1, 0), 0);
    }
    assert_int_equal(v->list(v, d, remove_each, (void *)d), 0);
    acc[0] = 0;
    assert_int_equal(v->list(v, d, collect, acc), 0);
    assert_string_equal(acc, "");
}

/* every descriptor the VFS opens has FD_CLOEXEC */
static void test_posix_cloexec(void **state)
{
    (void)state;
    sop_vfs *v = sop_vfs_posix();
    const char *d = tu_tmpdir("posix_cloexec");
    path_buf p = pj(d, "f");
    sop_file *f;
    assert_int_equal(v->open(v, p.s, SOP_O_RDWR | SOP_O_CREATE, 0600, &f), 0);
    int found = 0;
    DIR *dir = opendir("/proc/self/fd");
    assert_non_null(dir);
    struct dirent *e;
    while ((e = readdir(dir)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char link[300], target[1024];
        snprintf(link, sizeof link, "/proc/self/fd/%s", e->d_name);
        ssize_t n = readlink(link, target, sizeof target - 1);
        if (n <= 0)
            continue;
        target[n] = 0;
        if (strcmp(target, p.s) == 0) {
            int fl = fcntl(atoi(e->d_name), F_GETFD);
            assert_true(fl >= 0 && (fl & FD_CLOEXEC));
            found++;
        }
    }
    closedir(dir);
    assert_int_equal(found, 1);
    assert_int_equal(v->close(v, f), 0);
}

typedef struct lock_arg {
    sop_vfs *v;
    sop_file *f;
    int rc;
    atomic_int done;
} lock_arg;

static atomic_int g_sigusr1;

static void on_sigusr1(int sig)
{
    (void)sig;
    atomic_fetch_add(&g_sigusr1, 1);
}

static void *lock_waiter(void *p)
{
    lock_arg *a = p;
    a->rc = a->v->lock(a->v, a->f, 0, 0, SOP_LOCK_EX, 1);
    atomic_store(&a->done, 1);
    return NULL;
}

static void test_posix_locks(void **state)
{
    (void)state;
    sop_vfs *v = sop_vfs_posix();
    const char *d = tu_tmpdir("posix_locks");
    path_buf p = pj(d, "lock");
    sop_file *f1, *f2, *f3;
    assert_int_equal(v->open(v, p.s, SOP_O_RDWR | SOP_O_CREATE, 0600, &f1), 0);
    assert_int_equal(v->open(v, p.s, SOP_O_RDWR, 0, &f2), 0);

    /* exclusive vs everything, between two opens of one process */
    assert_int_equal(v->lock(v, f1, 0, 0, SOP_LOCK_EX, 0), 0);
    assert_int_equal(v->lock(v, f2, 0, 0, SOP_LOCK_EX, 0), SOP_EBUSY);
    assert_int_equal(v->lock(v, f2, 0, 0, SOP_LOCK_SH, 0), SOP_EBUSY);
    assert_int_equal(v->lock(v, f2, 100, 1, SOP_LOCK_SH, 0), SOP_EBUSY);
    /* re-locking through the same open is fine */
    assert_int_equal(v->lock(v, f1, 0, 0, SOP_LOCK_EX, 0), 0);

    /* closing another descriptor of the file does not drop f1's lock
     * (the classic POSIX lock trap) */
    assert_int_equal(v->open(v, p.s, SOP_O_READ, 0, &f3), 0);
    assert_int_equal(v->close(v, f3), 0);
    assert_int_equal(v->lock(v, f2, 0, 0, SOP_LOCK_EX, 0), SOP_EBUSY);

    assert_int_equal(v->lock(v, f1, 0, 0, SOP_LOCK_UN, 0), 0);
    /* shared + shared */
    assert_int_equal(v->lock(v, f1, 0, 0, SOP_LOCK_SH, 0), 0);
    assert_int_equal(v->lock(v, f2, 0, 0, SOP_LOCK_SH, 0), 0);
    assert_int_equal(v->lock(v, f2, 0, 0, SOP_LOCK_EX, 0), SOP_EBUSY);
    assert_int_equal(v->lock(v, f1, 0, 0, SOP_LOCK_UN, 0), 0);
    assert_int_equal(v->lock(v, f2, 0, 0, SOP_LOCK_UN, 0), 0);

    /* byte ranges: disjoint ranges do not conflict */
    assert_int_equal(v->lock(v, f1, 0, 10, SOP_LOCK_EX, 0), 0);
    assert_int_equal(v->lock(v, f2, 10, 10, SOP_LOCK_EX, 0), 0);
    assert_int_equal(v->lock(v, f2, 9, 1, SOP_LOCK_EX, 0), SOP_EBUSY);
    assert_int_equal(v->lock(v, f1, 1000, 1, SOP_LOCK_EX, 0), 0); /* beyond EOF */
    assert_int_equal(v->lock(v, f2, 1000, 1, SOP_LOCK_SH, 0), SOP_EBUSY);
    assert_int_equal(v->lock(v, f1, 0, 0, SOP_LOCK_UN, 0), 0);
    assert_int_equal(v->lock(v, f2, 0, 0, SOP_LOCK_UN, 0), 0);

    /* a blocking lock in another thread waits for the unlock (skipped under
     * valgrind 3.19: it does not treat F_OFD_SETLKW as a blocking call and
     * the process deadlocks) */
    const char *pre = getenv("LD_PRELOAD");
    if (pre && strstr(pre, "vgpreload")) {
        assert_int_equal(v->close(v, f2), 0);
        assert_int_equal(v->close(v, f1), 0);
        return;
    }
    assert_int_equal(v->lock(v, f1, 0, 0, SOP_LOCK_EX, 0), 0);
    lock_arg a = {.v = v, .f = f2, .rc = -1};
    atomic_init(&a.done, 0);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, lock_waiter, &a), 0);
    usleep(50000);
    assert_int_equal(atomic_load(&a.done), 0);
    /* signals without SA_RESTART interrupt the wait: EINTR is retried */
    struct sigaction sa, old_sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigusr1;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0;
    assert_int_equal(sigaction(SIGUSR1, &sa, &old_sa), 0);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(pthread_kill(th, SIGUSR1), 0);
        usleep(20000);
    }
    assert_int_equal(atomic_load(&a.done), 0);
    /* (not asserted that the handler ran: ThreadSanitizer defers it) */
    assert_int_equal(v->lock(v, f1, 0, 0, SOP_LOCK_UN, 0), 0);
    assert_int_equal(pthread_join(th, NULL), 0);
    assert_int_equal(sigaction(SIGUSR1, &old_sa, NULL), 0);
    assert_int_equal(a.rc, 0);
    assert_int_equal(v->lock(v, f1, 0, 0, SOP_LOCK_SH, 0), SOP_EBUSY);

    /* closing f2 releases its locks */
    assert_int_equal(v->close(v, f2), 0);
    assert_int_equal(v->lock(v, f1, 0, 0, SOP_LOCK_EX, 0), 0);
    assert_int_equal(v->close(v, f1), 0);
}

/* shm_map: two mappings of one file region share memory; through the
 * fault VFS too. */
static void test_shm_map(void **state)
{
    (void)state;
    sop_vfs *pv = sop_vfs_posix();
    assert_non_null(pv->shm_map);
    assert_non_null(pv->shm_unmap);
    sop_vfs *fv = fault_vfs_new(NULL);
    assert_non_null(fv->shm_map);
    const char *d = tu_tmpdir("shm");
    path_buf p = pj(d, "lock");
    sop_file *f1, *f2;
    assert_int_equal(pv->open(pv, p.s, SOP_O_RDWR | SOP_O_CREATE, 0600, &f1), 0);
    assert_int_equal(fv->open(fv, p.s, SOP_O_RDWR, 0, &f2), 0);
    void *m1 = NULL, *m2 = NULL;
    assert_int_equal(pv->shm_map(pv, f1, 4096, 8192, &m1), 0);
    assert_int_equal(fv->shm_map(fv, f2, 4096, 8192, &m2), 0);
    assert_true(m1 != m2);
    memcpy(m1, "shared", 7);
    assert_string_equal((char *)m2, "shared");
    uint64_t sz = 0;
    assert_int_equal(pv->size(pv, f1, &sz), 0);
    assert_int_equal(sz, 4096 + 8192);
    assert_int_equal(pv->shm_unmap(pv, m1, 8192), 0);
    assert_int_equal(fv->shm_unmap(fv, m2, 8192), 0);
    assert_int_equal(fv->close(fv, f2), 0);
    assert_int_equal(pv->close(pv, f1), 0);
    fault_vfs_free(fv);
}

/* Read-only maps (sop_db_options.map_reads): they see the file's bytes,
 * later writes too, and a length past the end of the file is accepted. */
static void test_map(void **state)
{
    (void)state;
    sop_vfs *pv = sop_vfs_posix();
    assert_non_null(pv->map);
    assert_non_null(pv->unmap);
    const char *d = tu_tmpdir("map");
    path_buf p = pj(d, "seg");
    sop_file *f;
    assert_int_equal(pv->open(pv, p.s, SOP_O_RDWR | SOP_O_CREATE, 0600, &f), 0);
    assert_int_equal(pv->write(pv, f, "hello", 5, 0), 0);
    const void *m = NULL;
    assert_int_equal(pv->map(pv, f, 1u << 20, &m), 0);
    assert_memory_equal(m, "hello", 5);
    assert_int_equal(pv->write(pv, f, "world", 5, 5), 0);
    assert_memory_equal((const char *)m + 5, "world", 5);
    assert_int_equal(pv->unmap(pv, m, 1u << 20), 0);
    assert_int_equal(pv->map(pv, f, 0, &m), -EINVAL);
    assert_int_equal(pv->close(pv, f), 0);
    /* the fault VFS has none: the engine then reads with read() */
    sop_vfs *fv = fault_vfs_new(NULL);
    assert_null(fv->map);
    fault_vfs_free(fv);
}

/* ------------------------------------------------------------------ */
/* Fault VFS: counting and error injection                            */
/* ------------------------------------------------------------------ */

static void test_fault_counts(void **state)
{
    (void)state;
    sop_vfs *v = fault_vfs_new(NULL);
    assert_non_null(v);
    const char *d = tu_tmpdir("fault_counts");
    path_buf p = pj(d, "f"), q = pj(d, "g"), sub = pj(d, "sub");
    sop_file *f;
    assert_int_equal(v->open(v, p.s, SOP_O_RDWR | SOP_O_CREATE, 0600, &f), 0);
    assert_int_equal(v->write(v, f, "abc", 3, 0), 0);
    assert_int_equal(v->write(v, f, "def", 3, 3), 0);
    char buf[8];
    size_t got;
    assert_int_equal(v->read(v, f, buf, 8, 0, &got), 0);
    assert_int_equal(got, 6);
    assert_memory_equal(buf, "abcdef", 6);
    assert_int_equal(v->sync(v, f), 0);
    uint64_t sz;
    assert_int_equal(v->size(v, f, &sz), 0);
    assert_int_equal(sz, 6);
    assert_int_equal(v->truncate(v, f, 4), 0);
    assert_int_equal(v->lock(v, f, 0, 0, SOP_LOCK_EX, 0), 0);
    assert_int_equal(v->close(v, f), 0);
    assert_int_equal(v->open(v, p.s, SOP_O_READ, 0, &f), 0);
    assert_int_equal(v->close(v, f), 0);
    assert_int_equal(v->rename(v, p.s, q.s), 0);
    assert_int_equal(v->mkdir(v, sub.s, 0700), 0);
    assert_int_equal(v->sync_dir(v, d), 0);
    char acc[64] = "";
    assert_int_equal(v->list(v, d, collect, acc), 0);
    assert_int_equal(v->remove(v, q.s), 0);

    assert_int_equal(fault_vfs_ops(v, FAULT_OP_OPEN_CREATE), 1);
    assert_int_equal(fault_vfs_ops(v, FAULT_OP_OPEN), 1);
    assert_int_equal(fault_vfs_ops(v, FAULT_OP_WRITE), 2);
    assert_int_equal(fault_vfs_ops(v, FAULT_OP_READ), 1);
    assert_int_equal(fault_vfs_ops(v, FAULT_OP_SYNC), 1);
    assert_int_equal(fault_vfs_ops(v, FAULT_OP_SIZE), 1);
    assert_int_equal(fault_vfs_ops(v, FAULT_OP_TRUNCATE), 1);
    assert_int_equal(fault_vfs_ops(v, FAULT_OP_LOCK), 1);
    assert_int_equal(fault_vfs_ops(v, FAULT_OP_CLOSE), 2);
    assert_int_equal(fault_vfs_ops(v, FAULT_OP_RENAME), 1);
    assert_int_equal(fault_vfs_ops(v, FAULT_OP_MKDIR), 1);
    assert_int_equal(fault_vfs_ops(v, FAULT_OP_SYNCDIR), 1);
    assert_int_equal(fault_vfs_ops(v, FAULT_OP_LIST), 1);
    assert_int_equal(fault_vfs_ops(v, FAULT_OP_REMOVE), 1);
    assert_int_equal(fault_vfs_ops(v, FAULT_OP_ALL), 16);
    assert_int_equal(fault_vfs_ops(v, FAULT_OP_POWERLOSS), 7);
    assert_int_equal(fault_vfs_ops(v, FAULT_OP_WRITE | FAULT_OP_SYNC), 3);
    fault_vfs_reset_ops(v);
    assert_int_equal(fault_vfs_ops(v, FAULT_OP_ALL), 0);
    /* errors pass through */
    assert_int_equal(v->open(v, p.s, SOP_O_READ, 0, &f), -ENOENT);
    assert_int_equal(fault_vfs_ops(v, FAULT_OP_OPEN), 1);
    fault_vfs_free(v);
}

static void test_fault_fail_transient(void **state)
{
    (void)state;
    sop_vfs *v = fault_vfs_new(sop_vfs_posix());
    const char *d = tu_tmpdir("fault_transient");
    path_buf p = pj(d, "f");
    sop_file *f;
    assert_int_equal(v->open(v, p.s, SOP_O_RDWR | SOP_O_CREATE, 0600, &f), 0);
    assert_int_equal(v->write(v, f, "0", 1, 0), 0); /* before arming: not counted */
    fault_vfs_fail_nth(v, FAULT_OP_WRITE, 2, -EIO, 0);
    assert_int_equal(fault_vfs_triggered(v), 0);
    assert_int_equal(v->sync(v, f), 0); /* other kinds do not count */
    assert_int_equal(v->write(v, f, "1", 1, 1), 0);
    assert_int_equal(v->write(v, f, "2", 1, 2), -EIO);
    assert_int_equal(fault_vfs_triggered(v), 1);
    assert_int_equal(v->write(v, f, "3", 1, 3), 0);
    assert_int_equal(v->write(v, f, "4", 1, 4), 0);
    assert_int_equal(fault_vfs_triggered(v), 1);
    char buf[8];
    size_t got;
    assert_int_equal(v->read(v, f, buf, 8, 0, &got), 0);
    assert_int_equal(got, 5);
    assert_memory_equal(buf, "01\0" "34", 5); /* the failed write did nothing */

    /* a mask of several kinds; fault on sync */
    fault_vfs_fail_nth(v, FAULT_OP_WRITE | FAULT_OP_SYNC, 3, -ENOSPC, 0);
    assert_int_equal(v->write(v, f, "a", 1, 0), 0);
    assert_int_equal(v->sync(v, f), 0);
    assert_int_equal(v->sync(v, f), -ENOSPC);
    assert_int_equal(v->sync(v, f), 0);
    assert_int_equal(fault_vfs_triggered(v), 1);

    /* a fault that is never reached */
    fault_vfs_fail_nth(v, FAULT_OP_RENAME, 1, -EIO, 1);
    assert_int_equal(v->write(v, f, "b", 1, 0), 0);
    assert_int_equal(fault_vfs_triggered(v), 0);
    fault_vfs_disarm(v);

    /* open fails without creating anything; close fails but releases */
    path_buf q = pj(d, "g");
    fault_vfs_fail_nth(v, FAULT_OP_OPEN_CREATE, 1, -EACCES, 0);
    sop_file *g;
    assert_int_equal(v->open(v, q.s, SOP_O_RDWR | SOP_O_CREATE, 0600, &g), -EACCES);
    assert_false(exists(q.s));
    fault_vfs_fail_nth(v, FAULT_OP_CLOSE, 1, -EIO, 0);
    assert_int_equal(v->close(v, f), -EIO);
    fault_vfs_disarm(v);
    fault_vfs_free(v);
}

static void test_fault_fail_persistent(void **state)
{
    (void)state;
    sop_vfs *v = fault_vfs_new(NULL);
    const char *d = tu_tmpdir("fault_persistent");
    path_buf p = pj(d, "f"), q = pj(d, "g");
    sop_file *f;
    assert_int_equal(v->open(v, p.s, SOP_O_RDWR | SOP_O_CREATE, 0600, &f), 0);
    fault_vfs_fail_nth(v, FAULT_OP_WRITE | FAULT_OP_RENAME, 2, -EIO, 1);
    assert_int_equal(v->write(v, f, "x", 1, 0), 0);
    for (int i = 0; i < 5; i++)
        assert_int_equal(v->write(v, f, "y", 1, 1), -EIO);
    assert_int_equal(v->rename(v, p.s, q.s), -EIO);
    assert_true(exists(p.s));
    assert_int_equal(fault_vfs_triggered(v), 6);
    /* unaffected kinds work */
    size_t got;
    char buf[4];
    assert_int_equal(v->read(v, f, buf, 4, 0, &got), 0);
    assert_int_equal(got, 1);
    fault_vfs_disarm(v);
    assert_int_equal(v->write(v, f, "y", 1, 1), 0);
    assert_int_equal(v->rename(v, p.s, q.s), 0);
    assert_int_equal(fault_vfs_triggered(v), 6);
    /* re-arming clears the count */
    fault_vfs_fail_nth(v, FAULT_OP_ALL, 1, -EIO, 1);
    assert_int_equal(fault_vfs_triggered(v), 0);
    assert_int_equal(v->sync(v, f), -EIO);
    assert_int_equal(v->size(v, f, &(uint64_t){0}), -EIO);
    assert_int_equal(v->lock(v, f, 0, 0, SOP_LOCK_EX, 0), -EIO);
    int cnt = 0;
    assert_int_equal(v->list(v, d, stop_at_two, &cnt), -EIO);
    assert_int_equal(cnt, 0);
    assert_int_equal(fault_vfs_triggered(v), 4);
    fault_vfs_disarm(v);
    assert_int_equal(v->close(v, f), 0);
    fault_vfs_free(v);
}

static void test_fault_short_io(void **state)
{
    (void)state;
    sop_vfs *v = fault_vfs_new(NULL);
    const char *d = tu_tmpdir("fault_short");
    path_buf p = pj(d, "f");
    unsigned char data[1000], buf[1000];
    fill_new(data, 0, sizeof data);
    sop_file *f;
    assert_int_equal(v->open(v, p.s, SOP_O_RDWR | SOP_O_CREATE, 0600, &f), 0);
    fault_vfs_fail_nth(v, FAULT_OP_WRITE, 1, FAULT_ERR_SHORT, 0);
    assert_int_equal(v->write(v, f, data, sizeof data, 0), -EIO);
    assert_int_equal(fault_vfs_triggered(v), 1);
    uint64_t sz;
    assert_int_equal(v->size(v, f, &sz), 0);
    assert_int_equal(sz, 500);
    assert_int_equal(slurp(p.s, buf, sizeof buf), 500);
    assert_memory_equal(buf, data, 500);
    assert_int_equal(v->write(v, f, data, sizeof data, 0), 0);

    fault_vfs_fail_nth(v, FAULT_OP_READ, 1, FAULT_ERR_SHORT, 0);
    size_t got = 0;
    assert_int_equal(v->read(v, f, buf, 800, 0, &got), 0);
    assert_int_equal(got, 400);
    assert_int_equal(v->read(v, f, buf, 800, 0, &got), 0);
    assert_int_equal(got, 800);
    /* FAULT_ERR_SHORT on another kind is -EIO */
    fault_vfs_fail_nth(v, FAULT_OP_SYNC, 1, FAULT_ERR_SHORT, 0);
    assert_int_equal(v->sync(v, f), -EIO);
    fault_vfs_disarm(v);
    assert_int_equal(v->close(v, f), 0);
    fault_vfs_free(v);
}

/* ------------------------------------------------------------------ */
/* Fault VFS: power loss                                              */
/* ------------------------------------------------------------------ */

typedef struct pl_arg {
    const char *dir;
    uint64_t seed;
    int variant;
} pl_arg;

/* A synced file survives; an unsynced file next to it does not matter. */
static void child_synced(void *p)
{
    pl_arg *a = p;
    sop_vfs *v = fault_vfs_new(NULL);
    CHILD_CHECK(v != NULL);
    path_buf f1 = pj(a->dir, "synced");
    unsigned char data[20000];
    fill_new(data, 0, sizeof data);
    CHILD_CHECK(put_file(v, f1.s, data, sizeof data, 1) == 0);
    /* more files, never synced */
    path_buf f2 = pj(a->dir, "unsynced");
    CHILD_CHECK(put_file(v, f2.s, data, sizeof data, 0) == 0);
    fault_vfs_crash_now(v, a->seed);
}

static void test_pl_synced_survives(void **state)
{
    (void)state;
    unsigned char want[20000], got[30000];
    fill_new(want, 0, sizeof want);
    for (uint64_t seed = 1; seed <= 16; seed++) {
        const char *d = tu_tmpdir("pl_synced");
        pl_arg a = {d, seed, 0};
        assert_int_equal(run_child(child_synced, &a), FAULT_VFS_CRASH_EXIT);
        path_buf f1 = pj(d, "synced"), f2 = pj(d, "unsynced");
        assert_int_equal(slurp(f1.s, got, sizeof got), (long)sizeof want);
        assert_memory_equal(got, want, sizeof want);
        assert_false(exists(f2.s)); /* created without a directory sync */
    }
}

enum { OUT_KEPT, OUT_DROPPED, OUT_TORN, OUT_GARBAGE };

/* @act: what the range holds after the crash (len bytes, or less when the
 * file is shorter: @avail). */
static int classify(const unsigned char *act, size_t avail, const unsigned char *nw,
                    const unsigned char *old, size_t oldavail, uint64_t off, size_t len)
{
    if (avail == len && memcmp(act, nw, len) == 0)
        return OUT_KEPT;
    if (avail == oldavail && (avail == 0 || (old && memcmp(act, old, avail) == 0)))
        return OUT_DROPPED;
    size_t i = 0;
    while (i < avail && act[i] == nw[i])
        i++;
    if (i > 0 && i < len && (off + i) % 512 == 0) {
        /* the rest is old: old bytes, or nothing where the file was shorter */
        size_t rest_old = oldavail > i ? oldavail - i : 0;
        size_t rest_act = avail - i;
        if (rest_act == rest_old && (rest_act == 0 || memcmp(act + i, old + i, rest_act) == 0))
            return OUT_TORN;
    }
    return OUT_GARBAGE;
}

#define OW_OFF 1000u  /* overwrite in the middle of a synced file */
#define OW_LEN 4000u
#define OLD_SIZE 8192u
#define EX_OFF 8192u /* extending write */
#define EX_LEN 4096u

static void child_unsynced(void *p)
{
    pl_arg *a = p;
    sop_vfs *v = fault_vfs_new(NULL);
    CHILD_CHECK(v != NULL);
    path_buf f1 = pj(a->dir, "over"), f2 = pj(a->dir, "ext");
    unsigned char nw[OW_LEN > EX_LEN ? OW_LEN : EX_LEN];
    sop_file *f;
    CHILD_CHECK(v->open(v, f1.s, SOP_O_RDWR, 0, &f) == 0);
    fill_new(nw, OW_OFF, OW_LEN);
    CHILD_CHECK(v->write(v, f, nw, OW_LEN, OW_OFF) == 0);
    CHILD_CHECK(v->close(v, f) == 0); /* closing does not sync */
    CHILD_CHECK(v->open(v, f2.s, SOP_O_RDWR, 0, &f) == 0);
    fill_new(nw, EX_OFF, EX_LEN);
    CHILD_CHECK(v->write(v, f, nw, EX_LEN, EX_OFF) == 0);
    if (a->variant == 1) {
        /* a sync that fails leaves the data unsynced */
        fault_vfs_fail_nth(v, FAULT_OP_SYNC, 1, -EIO, 0);
        CHILD_CHECK(v->sync(v, f) == -EIO);
    }
    fault_vfs_crash_now(v, a->seed);
}

static void check_unsynced_outcomes(int variant)
{
    int seen_over[4] = {0}, seen_ext[4] = {0};
    unsigned char old[OLD_SIZE + EX_LEN], nw[OLD_SIZE + EX_LEN], got[OLD_SIZE + EX_LEN + 1];
    for (uint64_t seed = 1; seed <= 64; seed++) {
        const char *d = tu_tmpdir("pl_unsynced");
        path_buf f1 = pj(d, "over"), f2 = pj(d, "ext");
        fill_old(old, 0, OLD_SIZE);
        assert_int_equal(put_file(sop_vfs_posix(), f1.s, old, OLD_SIZE, 1), 0);
        assert_int_equal(put_file(sop_vfs_posix(), f2.s, old, OLD_SIZE, 1), 0);
        pl_arg a = {d, seed, variant};
        assert_int_equal(run_child(child_unsynced, &a), FAULT_VFS_CRASH_EXIT);

        /* overwrite inside the file: the size never changes; bytes outside
         * the written range are never touched */
        long n = slurp(f1.s, got, sizeof got);
        assert_int_equal(n, OLD_SIZE);
        assert_memory_equal(got, old, OW_OFF);
        assert_memory_equal(got + OW_OFF + OW_LEN, old + OW_OFF + OW_LEN,
                            OLD_SIZE - OW_OFF - OW_LEN);
        fill_new(nw, OW_OFF, OW_LEN);
        int o1 = classify(got + OW_OFF, OW_LEN, nw, old + OW_OFF, OW_LEN, OW_OFF, OW_LEN);
        seen_over[o1]++;

        /* extending write: the synced part is intact; the size follows */
        n = slurp(f2.s, got, sizeof got);
        assert_true(n >= (long)OLD_SIZE && n <= (long)(OLD_SIZE + EX_LEN));
        assert_memory_equal(got, old, OLD_SIZE);
        fill_new(nw, EX_OFF, EX_LEN);
        int o2 = classify(got + EX_OFF, (size_t)n - OLD_SIZE, nw, NULL, 0, EX_OFF, EX_LEN);
        if (o2 == OUT_DROPPED)
            assert_int_equal(n, OLD_SIZE);
        if (o2 == OUT_KEPT || o2 == OUT_GARBAGE)
            assert_int_equal(n, OLD_SIZE + EX_LEN);
        seen_ext[o2]++;
    }
    for (int i = 0; i < 4; i++) {
        assert_true(seen_over[i] > 0);
        assert_true(seen_ext[i] > 0);
    }
}

static void test_pl_unsynced_outcomes(void **state)
{
    (void)state;
    check_unsynced_outcomes(0);
}

static void test_pl_failed_sync_is_unsynced(void **state)
{
    (void)state;
    check_unsynced_outcomes(1);
}

/* A file created, written and synced, but whose directory was not synced,
 * disappears; with the directory sync it stays. */
static void child_create(void *p)
{
    pl_arg *a = p;
    sop_vfs *v = fault_vfs_new(NULL);
    CHILD_CHECK(v != NULL);
    path_buf f1 = pj(a->dir, "new"), sub = pj(a->dir, "sub"), f2 = pj(a->dir, "sub/inner");
    CHILD_CHECK(put_file(v, f1.s, "data", 4, 0) == 0);
    sop_file *f;
    CHILD_CHECK(v->open(v, f1.s, SOP_O_RDWR, 0, &f) == 0);
    CHILD_CHECK(v->sync(v, f) == 0);
    CHILD_CHECK(v->close(v, f) == 0);
    /* a directory made durable inside, but not in its parent */
    CHILD_CHECK(v->mkdir(v, sub.s, 0700) == 0);
    CHILD_CHECK(put_file(v, f2.s, "in", 2, 1) == 0); /* syncs sub */
    if (a->variant == 1)
        CHILD_CHECK(v->sync_dir(v, a->dir) == 0);
    fault_vfs_crash_now(v, a->seed);
}

static void test_pl_create_needs_syncdir(void **state)
{
    (void)state;
    for (int variant = 0; variant < 2; variant++) {
        const char *d = tu_tmpdir("pl_create");
        pl_arg a = {d, 7, variant};
        assert_int_equal(run_child(child_create, &a), FAULT_VFS_CRASH_EXIT);
        path_buf f1 = pj(d, "new"), sub = pj(d, "sub"), f2 = pj(d, "sub/inner");
        unsigned char buf[8];
        if (variant == 0) {
            assert_false(exists(f1.s));
            assert_false(exists(sub.s));
        } else {
            assert_int_equal(slurp(f1.s, buf, sizeof buf), 4);
            assert_memory_equal(buf, "data", 4);
            assert_int_equal(slurp(f2.s, buf, sizeof buf), 2);
            assert_memory_equal(buf, "in", 2);
        }
    }
}

/* Renaming over a file, and removing one, without a directory sync is
 * undone by a power loss. */
static void child_rename(void *p)
{
    pl_arg *a = p;
    sop_vfs *v = fault_vfs_new(NULL);
    CHILD_CHECK(v != NULL);
    path_buf tmp = pj(a->dir, "tmp"), cur = pj(a->dir, "current"), old = pj(a->dir, "old");
    path_buf moved = pj(a->dir, "moved");
    /* the write-temp, sync, rename pattern */
    CHILD_CHECK(put_file(v, tmp.s, "NEW-CONTENT", 11, 0) == 0);
    sop_file *f;
    CHILD_CHECK(v->open(v, tmp.s, SOP_O_RDWR, 0, &f) == 0);
    CHILD_CHECK(v->sync(v, f) == 0);
    CHILD_CHECK(v->close(v, f) == 0);
    CHILD_CHECK(v->rename(v, tmp.s, cur.s) == 0);
    CHILD_CHECK(v->remove(v, old.s) == 0);
    /* plain rename of a synced file */
    path_buf keep = pj(a->dir, "keep");
    CHILD_CHECK(v->rename(v, keep.s, moved.s) == 0);
    if (a->variant == 1)
        CHILD_CHECK(v->sync_dir(v, a->dir) == 0);
    fault_vfs_crash_now(v, a->seed);
}

static void test_pl_rename_needs_syncdir(void **state)
{
    (void)state;
    for (int variant = 0; variant < 2; variant++) {
        const char *d = tu_tmpdir("pl_rename");
        path_buf tmp = pj(d, "tmp"), cur = pj(d, "current"), old = pj(d, "old");
        path_buf keep = pj(d, "keep"), moved = pj(d, "moved");
        assert_int_equal(put_file(sop_vfs_posix(), cur.s, "OLD", 3, 1), 0);
        assert_int_equal(put_file(sop_vfs_posix(), old.s, "REMOVED", 7, 1), 0);
        assert_int_equal(put_file(sop_vfs_posix(), keep.s, "KEEP", 4, 1), 0);
        pl_arg a = {d, 3, variant};
        assert_int_equal(run_child(child_rename, &a), FAULT_VFS_CRASH_EXIT);
        unsigned char buf[32];
        if (variant == 0) {
            assert_int_equal(slurp(cur.s, buf, sizeof buf), 3);
            assert_memory_equal(buf, "OLD", 3);
            assert_false(exists(tmp.s)); /* created without a dir sync */
            assert_int_equal(slurp(old.s, buf, sizeof buf), 7);
            assert_memory_equal(buf, "REMOVED", 7);
            assert_int_equal(slurp(keep.s, buf, sizeof buf), 4);
            assert_false(exists(moved.s));
        } else {
            assert_int_equal(slurp(cur.s, buf, sizeof buf), 11);
            assert_memory_equal(buf, "NEW-CONTENT", 11);
            assert_false(exists(tmp.s));
            assert_false(exists(old.s));
            assert_false(exists(keep.s));
            assert_int_equal(slurp(moved.s, buf, sizeof buf), 4);
        }
    }
}

/* Power loss at the n-th operation: operation n is not performed. */
static void child_nth(void *p)
{
    pl_arg *a = p;
    sop_vfs *v = fault_vfs_new(NULL);
    CHILD_CHECK(v != NULL);
    path_buf fp = pj(a->dir, "log");
    sop_file *f;
    CHILD_CHECK(v->open(v, fp.s, SOP_O_RDWR | SOP_O_CREATE, 0600, &f) == 0);
    CHILD_CHECK(v->sync_dir(v, a->dir) == 0);
    fault_vfs_powerloss_arm(v, a->seed, 1);
    /* each record: write (op), sync (op) */
    for (int i = 0; i < 8; i++) {
        char rec[512];
        memset(rec, 'a' + i, sizeof rec);
        CHILD_CHECK(v->write(v, f, rec, sizeof rec, (uint64_t)i * 512) == 0);
        CHILD_CHECK(v->sync(v, f) == 0);
        CHILD_CHECK(fault_vfs_powerloss_ops(v) == (uint64_t)(2 * i + 2));
    }
    _exit(0); /* power-loss point not reached */
}

static void test_pl_nth_op(void **state)
{
    (void)state;
    for (uint64_t n = 1; n <= 17; n++) {
        const char *d = tu_tmpdir("pl_nth");
        pl_arg a = {d, n, 0};
        int st = run_child(child_nth, &a);
        path_buf fp = pj(d, "log");
        unsigned char buf[8 * 512 + 1];
        long sz = slurp(fp.s, buf, sizeof buf);
        if (n > 16) {
            assert_int_equal(st, 0);
            assert_int_equal(sz, 8 * 512);
            continue;
        }
        assert_int_equal(st, FAULT_VFS_CRASH_EXIT);
        /* records 0 .. (n-1)/2 - 1 were synced; a record whose write happened
         * but not its sync (n even) may have a 1-sector write: kept or not */
        long synced = (long)((n - 1) / 2);
        assert_true(sz == synced * 512 || (n % 2 == 0 && sz == (synced + 1) * 512));
        for (long i = 0; i < synced; i++)
            for (int j = 0; j < 512; j++)
                assert_int_equal(buf[i * 512 + j], 'a' + i);
    }
}

/* Random writes, truncates and syncs against a model: after power loss no
 * byte that was synced and not written since is changed. */
#define RW_MAX 65536

typedef struct rw_model {
    unsigned char cur[RW_MAX];
    unsigned char synced[RW_MAX];
    unsigned char touched[RW_MAX];
    size_t cur_size, synced_size;
} rw_model;

static void rw_workload(uint64_t seed, sop_vfs *v, sop_file *f, rw_model *m)
{
    uint64_t s = seed;
    int nops = 20 + (int)tu_rand_below(&s, 40);
    for (int i = 0; i < nops; i++) {
        uint64_t kind = tu_rand_below(&s, 10);
        if (kind < 7) {
            size_t off = (size_t)tu_rand_below(&s, RW_MAX / 2);
            size_t len = 1 + (size_t)tu_rand_below(&s, 5000);
            unsigned char buf[5000];
            for (size_t j = 0; j < len; j++)
                buf[j] = (unsigned char)tu_rand(&s);
            if (v)
                CHILD_CHECK(v->write(v, f, buf, len, off) == 0);
            if (off > m->cur_size)
                memset(m->cur + m->cur_size, 0, off - m->cur_size);
            memcpy(m->cur + off, buf, len);
            memset(m->touched + off, 1, len);
            if (off + len > m->cur_size)
                m->cur_size = off + len;
        } else if (kind < 8) {
            size_t ns = (size_t)tu_rand_below(&s, RW_MAX / 2);
            if (v)
                CHILD_CHECK(v->truncate(v, f, ns) == 0);
            if (ns > m->cur_size)
                memset(m->cur + m->cur_size, 0, ns - m->cur_size);
            size_t lo = ns < m->cur_size ? ns : m->cur_size;
            size_t hi = ns > m->cur_size ? ns : m->cur_size;
            memset(m->touched + lo, 1, hi - lo);
            m->cur_size = ns;
        } else {
            if (v)
                CHILD_CHECK(v->sync(v, f) == 0);
            memcpy(m->synced, m->cur, m->cur_size);
            m->synced_size = m->cur_size;
            memset(m->touched, 0, sizeof m->touched);
        }
    }
}

static void child_random(void *p)
{
    pl_arg *a = p;
    sop_vfs *v = fault_vfs_new(NULL);
    CHILD_CHECK(v != NULL);
    path_buf fp = pj(a->dir, "r");
    sop_file *f;
    CHILD_CHECK(v->open(v, fp.s, SOP_O_RDWR, 0, &f) == 0);
    rw_model *m = calloc(1, sizeof *m);
    CHILD_CHECK(m != NULL);
    m->cur_size = m->synced_size = 0;
    rw_workload(a->seed, v, f, m);
    free(m);
    fault_vfs_crash_now(v, a->seed * 31 + 1);
}

static void test_pl_random_synced_never_damaged(void **state)
{
    (void)state;
    unsigned base = tu_seed();
    rw_model *m = calloc(1, sizeof *m);
    unsigned char *got = malloc(RW_MAX + 1);
    assert_non_null(m);
    assert_non_null(got);
    /* 40 cases per run; SOP_TEST_SEED varies them */
    for (unsigned i = 0; i < 40; i++) {
        uint64_t seed = (uint64_t)base * 1000 + i;
        const char *d = tu_tmpdir("pl_random");
        path_buf fp = pj(d, "r");
        assert_int_equal(put_file(sop_vfs_posix(), fp.s, "", 0, 1), 0);
        pl_arg a = {d, seed, 0};
        assert_int_equal(run_child(child_random, &a), FAULT_VFS_CRASH_EXIT);
        memset(m, 0, sizeof *m);
        rw_workload(seed, NULL, NULL, m);
        long n = slurp(fp.s, got, RW_MAX + 1);
        assert_true(n >= 0);
        for (size_t j = 0; j < m->synced_size; j++) {
            if (m->touched[j])
                continue;
            if ((size_t)n <= j || got[j] != m->synced[j]) {
                fprintf(stderr, "seed %llu: byte %zu damaged (size %ld, synced %zu)\n",
                        (unsigned long long)seed, j, n, m->synced_size);
                fail();
            }
        }
        /* and nothing beyond what was ever written */
        size_t maxsz = m->synced_size;
        for (size_t j = 0; j < RW_MAX; j++)
            if (m->touched[j] && j + 1 > maxsz)
                maxsz = j + 1;
        if ((size_t)n > maxsz)
            fail_msg("seed %llu: size %ld > %zu (synced %zu, cur %zu)", (unsigned long long)seed, n, maxsz, m->synced_size, m->cur_size);
    }
    free(m);
    free(got);
}

/* An unsynced truncate is kept or dropped; the rest is intact. */
static void child_truncate(void *p)
{
    pl_arg *a = p;
    sop_vfs *v = fault_vfs_new(NULL);
    CHILD_CHECK(v != NULL);
    path_buf fp = pj(a->dir, "t");
    sop_file *f;
    CHILD_CHECK(v->open(v, fp.s, SOP_O_RDWR, 0, &f) == 0);
    CHILD_CHECK(v->truncate(v, f, 1000) == 0);
    fault_vfs_crash_now(v, a->seed);
}

static void test_pl_truncate(void **state)
{
    (void)state;
    int kept = 0, dropped = 0;
    unsigned char old[OLD_SIZE], got[OLD_SIZE + 1];
    fill_old(old, 0, OLD_SIZE);
    for (uint64_t seed = 1; seed <= 32; seed++) {
        const char *d = tu_tmpdir("pl_trunc");
        path_buf fp = pj(d, "t");
        assert_int_equal(put_file(sop_vfs_posix(), fp.s, old, OLD_SIZE, 1), 0);
        pl_arg a = {d, seed, 0};
        assert_int_equal(run_child(child_truncate, &a), FAULT_VFS_CRASH_EXIT);
        long n = slurp(fp.s, got, sizeof got);
        if (n == 1000)
            kept++;
        else if (n == OLD_SIZE)
            dropped++;
        else
            fail_msg("size %ld", n);
        assert_memory_equal(got, old, (size_t)n);
    }
    assert_true(kept > 0 && dropped > 0);
}

/* The fault VFS from several threads at once. */
typedef struct thr_arg {
    sop_vfs *v;
    const char *dir;
    int id;
    int rc;
} thr_arg;

static void *thr_main(void *p)
{
    thr_arg *a = p;
    char name[32];
    snprintf(name, sizeof name, "t%d", a->id);
    path_buf fp = pj(a->dir, name);
    sop_file *f;
    a->rc = a->v->open(a->v, fp.s, SOP_O_RDWR | SOP_O_CREATE, 0600, &f);
    if (a->rc)
        return NULL;
    for (int i = 0; i < 200 && a->rc == 0; i++) {
        unsigned char buf[300];
        memset(buf, a->id + i, sizeof buf);
        a->rc = a->v->write(a->v, f, buf, sizeof buf, (uint64_t)i * 100);
        if (a->rc == 0 && i % 10 == 9)
            a->rc = a->v->sync(a->v, f);
    }
    if (a->rc == 0)
        a->rc = a->v->close(a->v, f);
    return NULL;
}

static void test_fault_threads(void **state)
{
    (void)state;
    sop_vfs *v = fault_vfs_new(NULL);
    const char *d = tu_tmpdir("fault_threads");
    pthread_t th[4];
    thr_arg args[4];
    for (int i = 0; i < 4; i++) {
        args[i] = (thr_arg){v, d, i, -1};
        assert_int_equal(pthread_create(&th[i], NULL, thr_main, &args[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        assert_int_equal(pthread_join(th[i], NULL), 0);
        assert_int_equal(args[i].rc, 0);
    }
    assert_int_equal(fault_vfs_ops(v, FAULT_OP_WRITE), 800);
    assert_int_equal(fault_vfs_ops(v, FAULT_OP_SYNC), 80);
    fault_vfs_free(v);
}

/* ------------------------------------------------------------------ */
/* testutil                                                           */
/* ------------------------------------------------------------------ */

static void test_testutil(void **state)
{
    (void)state;
    const char *d = tu_tmpdir("tu/nested");
    assert_true(d[0] == '/');
    path_buf f = pj(d, "x"), sub = pj(d, "s"), g = pj(d, "s/y");
    assert_int_equal(put_file(sop_vfs_posix(), f.s, "1", 1, 0), 0);
    assert_int_equal(mkdir(sub.s, 0700), 0);
    assert_int_equal(put_file(sop_vfs_posix(), g.s, "2", 1, 0), 0);
    const char *d2 = tu_tmpdir("tu/nested");
    assert_string_equal(d, d2);
    assert_false(exists(f.s)); /* emptied */
    assert_true(exists(d2));
    tu_rmtree(d2);
    assert_false(exists(d2));
    tu_rmtree(d2); /* missing: fine */
    assert_int_equal(tu_seed(), tu_seed());
    uint64_t s1 = 5, s2 = 5;
    assert_int_equal(tu_rand(&s1), tu_rand(&s2));
    assert_true(tu_rand(&s1) != tu_rand(&s1));
    for (int i = 0; i < 1000; i++)
        assert_true(tu_rand_below(&s1, 7) < 7);
    assert_int_equal(tu_rand_below(&s1, 0), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_posix_read_write),
        cmocka_unit_test(test_posix_large_io),
        cmocka_unit_test(test_posix_errors),
        cmocka_unit_test(test_posix_dirs),
        cmocka_unit_test(test_posix_cloexec),
        cmocka_unit_test(test_posix_locks),
        cmocka_unit_test(test_shm_map),
        cmocka_unit_test(test_map),
        cmocka_unit_test(test_fault_counts),
        cmocka_unit_test(test_fault_fail_transient),
        cmocka_unit_test(test_fault_fail_persistent),
        cmocka_unit_test(test_fault_short_io),
        cmocka_unit_test(test_fault_threads),
        cmocka_unit_test(test_pl_synced_survives),
        cmocka_unit_test(test_pl_unsynced_outcomes),
        cmocka_unit_test(test_pl_failed_sync_is_unsynced),
        cmocka_unit_test(test_pl_create_needs_syncdir),
        cmocka_unit_test(test_pl_rename_needs_syncdir),
        cmocka_unit_test(test_pl_nth_op),
        cmocka_unit_test(test_pl_truncate),
        cmocka_unit_test(test_pl_random_synced_never_damaged),
        cmocka_unit_test(test_testutil),
    };
    tu_seed();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
