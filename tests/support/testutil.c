/* testutil.c - temp directories, seeds and a PRNG for tests.
 * Test support: calls libc directly (malloc, mkdir, nftw). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "testutil.h"

static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static char *g_base;       /* base directory, NULL until first use */
static int g_base_is_temp; /* /tmp/soptest-<pid>: removed at exit */
static pid_t g_base_owner;
typedef struct tu_str {
    struct tu_str *next;
    char s[];
} tu_str;
static tu_str *g_strs; /* paths returned by tu_tmpdir, freed at exit */

static void tu_die(const char *what, const char *path)
{
    fprintf(stderr, "testutil: %s %s: %s\n", what, path, strerror(errno));
    abort();
}

static int rm_one(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    if (type == FTW_DP || type == FTW_D || type == FTW_DNR)
        rmdir(path);
    else
        unlink(path);
    return 0;
}

void tu_rmtree(const char *path)
{
    struct stat st;
    if (!path || lstat(path, &st) != 0)
        return;
    if (!S_ISDIR(st.st_mode)) {
        unlink(path);
        return;
    }
    nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* mkdir -p */
static void mkdirs(const char *path)
{
    size_t n = strlen(path);
    char *p = malloc(n + 1);
    if (!p)
        abort();
    memcpy(p, path, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (p[i] == '/' || p[i] == 0) {
            char c = p[i];
            p[i] = 0;
            if (mkdir(p, 0700) != 0 && errno != EEXIST)
                tu_die("mkdir", p);
            p[i] = c;
        }
    }
    free(p);
}

static void tu_atexit(void)
{
    pthread_mutex_lock(&g_mu);
    if (g_base && g_base_is_temp && getpid() == g_base_owner && !getenv("SOP_TEST_KEEP"))
        tu_rmtree(g_base);
    free(g_base);
    g_base = NULL;
    while (g_strs) {
        tu_str *nx = g_strs->next;
        free(g_strs);
        g_strs = nx;
    }
    pthread_mutex_unlock(&g_mu);
}

static char *tu_join(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    char *s = malloc(la + lb + 2);
    if (!s)
        abort();
    memcpy(s, a, la);
    s[la] = '/';
    memcpy(s + la + 1, b, lb + 1);
    return s;
}

const char *tu_tmpdir(const char *name)
{
    if (!name || !*name || name[0] == '/' || strstr(name, ".."))
        abort(); /* a test bug: must stay under the base directory */
    pthread_mutex_lock(&g_mu);
    if (!g_base) {
        const char *env = getenv("SOP_TEST_TMP");
        char buf[4096];
        if (env && *env) {
            snprintf(buf, sizeof buf, "%s/%s", env, program_invocation_short_name);
            g_base_is_temp = 0;
        } else {
            snprintf(buf, sizeof buf, "/tmp/soptest-%ld", (long)getpid());
            g_base_is_temp = 1;
        }
        mkdirs(buf);
        char *abs = realpath(buf, NULL);
        if (!abs)
            tu_die("realpath", buf);
        g_base = abs;
        g_base_owner = getpid();
        atexit(tu_atexit);
    }
    char *path = tu_join(g_base, name);
    tu_rmtree(path);
    mkdirs(path);
    size_t n = strlen(path) + 1;
    tu_str *e = malloc(sizeof *e + n);
    if (!e)
        abort();
    memcpy(e->s, path, n);
    free(path);
    e->next = g_strs;
    g_strs = e;
    pthread_mutex_unlock(&g_mu);
    return e->s;
}

uint64_t tu_rand(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

uint64_t tu_rand_below(uint64_t *state, uint64_t n)
{
    if (n == 0)
        return 0;
    /* rejection sampling: no modulo bias */
    uint64_t limit = UINT64_MAX - UINT64_MAX % n;
    uint64_t x;
    do
        x = tu_rand(state);
    while (x >= limit);
    return x % n;
}

static pthread_once_t g_seed_once = PTHREAD_ONCE_INIT;
static unsigned g_seed;

static void seed_init(void)
{
    const char *env = getenv("SOP_TEST_SEED");
    if (env && *env) {
        g_seed = (unsigned)strtoul(env, NULL, 0);
    } else {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        uint64_t s = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
        s ^= (uint64_t)getpid() << 32;
        g_seed = (unsigned)tu_rand(&s);
    }
    fprintf(stderr, "SEED=%u\n", g_seed);
}

unsigned tu_seed(void)
{
    pthread_once(&g_seed_once, seed_init);
    return g_seed;
}

static int copy_file(const char *from, const char *to)
{
    FILE *in = fopen(from, "rb");
    FILE *out = in ? fopen(to, "wb") : NULL;
    int rc = in && out ? 0 : -1;
    char buf[1 << 16];
    size_t n;
    while (!rc && (n = fread(buf, 1, sizeof buf, in)) > 0)
        if (fwrite(buf, 1, n, out) != n)
            rc = -1;
    if (in && ferror(in))
        rc = -1;
    if (in)
        fclose(in);
    if (out && fclose(out))
        rc = -1;
    if (rc)
        fprintf(stderr, "tu_copydir: cannot copy %s to %s: %s\n", from, to, strerror(errno));
    return rc;
}

int tu_copydir(const char *src, const char *dst)
{
    tu_rmtree(dst);
    if (mkdir(dst, 0700)) {
        fprintf(stderr, "tu_copydir: mkdir %s: %s\n", dst, strerror(errno));
        return -1;
    }
    DIR *d = opendir(src);
    if (!d) {
        fprintf(stderr, "tu_copydir: opendir %s: %s\n", src, strerror(errno));
        return -1;
    }
    int rc = 0;
    struct dirent *e;
    while (!rc && (e = readdir(d)) != NULL) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        char a[4096], b[4096];
        snprintf(a, sizeof a, "%s/%s", src, e->d_name);
        snprintf(b, sizeof b, "%s/%s", dst, e->d_name);
        struct stat st;
        if (lstat(a, &st) == 0 && S_ISREG(st.st_mode))
            rc = copy_file(a, b);
    }
    closedir(d);
    return rc;
}
