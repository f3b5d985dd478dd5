/* bench_util.c - see bench_util.h */
#include "bench_util.h"

#include <errno.h>
#include <ftw.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

double bench_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

void bench_rng_seed(bench_rng *r, uint64_t seed)
{
    /* mixed, so that nearby seeds do not give shifted copies of one
     * sequence (seed s + 1 used to be seed s one step later) */
    uint64_t z = seed + 0x2545F4914F6CDD1Dull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    r->s = z ^ (z >> 31);
}

uint64_t bench_rng_next(bench_rng *r)
{
    uint64_t z = (r->s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

uint64_t bench_rng_below(bench_rng *r, uint64_t bound)
{
    /* Lemire's multiply-shift; the tiny bias is irrelevant here. */
    return (uint64_t)(((unsigned __int128)bench_rng_next(r) * bound) >> 64);
}

int bench_mkdirs(const char *path)
{
    char tmp[4096];
    size_t len = strlen(path);
    if (len == 0 || len >= sizeof tmp) {
        errno = ENAMETOOLONG;
        return -1;
    }
    memcpy(tmp, path, len + 1);
    for (char *p = tmp + 1; *p; p++) {
        if (*p == '/') {
            *p = '\0';
            if (mkdir(tmp, 0755) != 0 && errno != EEXIST)
                return -1;
            *p = '/';
        }
    }
    if (mkdir(tmp, 0755) != 0 && errno != EEXIST)
        return -1;
    return 0;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    int rc = (flag == FTW_DP) ? rmdir(path) : unlink(path);
    if (rc != 0 && errno != ENOENT)
        return -1;
    return 0;
}

int bench_rmtree(const char *path)
{
    struct stat st;
    if (lstat(path, &st) != 0)
        return errno == ENOENT ? 0 : -1;
    return nftw(path, rm_one, 32, FTW_DEPTH | FTW_PHYS);
}

static uint64_t du_total;

static int du_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)path;
    (void)flag;
    (void)ftw;
    du_total += (uint64_t)st->st_blocks * 512u;
    return 0;
}

uint64_t bench_du(const char *path)
{
    du_total = 0;
    if (nftw(path, du_one, 32, FTW_PHYS) != 0)
        return 0;
    return du_total;
}

const char *bench_fmt_int(char *buf, size_t cap, double v)
{
    char raw[64];
    if (!(v >= 0) || v > 9e18) {
        snprintf(buf, cap, "%.3g", v);
        return buf;
    }
    snprintf(raw, sizeof raw, "%.0f", v);
    size_t len = strlen(raw), o = 0;
    for (size_t i = 0; i < len && o + 2 < cap; i++) {
        if (i > 0 && (len - i) % 3 == 0)
            buf[o++] = ',';
        buf[o++] = raw[i];
    }
    buf[o] = '\0';
    return buf;
}

void bench_die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("sop-bench: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(2);
}

uint64_t bench_parse_count(const char *opt, const char *s)
{
    if (!s || !*s)
        bench_die("%s needs a value", opt);
    char *end = NULL;
    errno = 0;
    double v = strtod(s, &end);
    if (errno != 0 || end == s)
        bench_die("%s: not a number: '%s'", opt, s);
    if (*end == 'k' || *end == 'K') {
        v *= 1e3;
        end++;
    } else if (*end == 'm' || *end == 'M') {
        v *= 1e6;
        end++;
    }
    if (*end != '\0' || !(v >= 0) || v > 4e9 || v != floor(v))
        bench_die("%s: expected a non-negative integer, got '%s'", opt, s);
    return (uint64_t)v;
}

void bench_json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            fprintf(f, "\\%c", *p);
        else if (*p < 0x20)
            fprintf(f, "\\u%04x", *p);
        else
            fputc(*p, f);
    }
    fputc('"', f);
}

FILE *bench_json_open(const char *path)
{
    FILE *f = fopen(path, "w");
    if (!f)
        bench_die("cannot write %s: %s", path, strerror(errno));
    return f;
}

void bench_json_close(FILE *f, const char *path)
{
    if (fclose(f) != 0)
        bench_die("writing %s: %s", path, strerror(errno));
}

void bench_append_err(char *errors, size_t cap, const char *fmt, ...)
{
    size_t len = strlen(errors);
    if (len + 4 >= cap)
        return;
    va_list ap;
    va_start(ap, fmt);
    if (len)
        errors[len++] = ';', errors[len++] = ' ', errors[len] = '\0';
    vsnprintf(errors + len, cap - len, fmt, ap);
    va_end(ap);
}

void bench_write_all(int fd, const void *p, size_t n)
{
    const char *c = p;
    while (n > 0) {
        ssize_t w = write(fd, c, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            _exit(3);
        }
        c += w;
        n -= (size_t)w;
    }
}

int bench_read_all(int fd, void *p, size_t n)
{
    char *c = p;
    while (n > 0) {
        ssize_t r = read(fd, c, n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        c += r;
        n -= (size_t)r;
    }
    return 0;
}
