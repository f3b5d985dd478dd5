/*
 * bench_util.h - helpers shared by the sop-bench suites: clocks, a seeded
 * PRNG, file-system helpers, number formatting, option parsing.
 */
#ifndef SOP_BENCH_UTIL_H
#define SOP_BENCH_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#if defined(__GNUC__)
#define BENCH_PRINTF(f, a) __attribute__((format(printf, f, a)))
#define BENCH_NORETURN __attribute__((noreturn))
#else
#define BENCH_PRINTF(f, a)
#define BENCH_NORETURN
#endif

/** Monotonic clock in seconds. */
double bench_now(void);

/* Writes all @n bytes of @p to @fd (retrying on EINTR and short writes);
 * a child's message to its parent. On failure the process exits (3). */
void bench_write_all(int fd, const void *p, size_t n);
/* Reads exactly @n bytes; returns 0, or -1 at end of file or on error
 * (the child is gone). */
int bench_read_all(int fd, void *p, size_t n);

/** splitmix64: a small, fast, seedable generator (same sequence everywhere). */
typedef struct bench_rng {
    uint64_t s;
} bench_rng;

void bench_rng_seed(bench_rng *r, uint64_t seed);
uint64_t bench_rng_next(bench_rng *r);
/** Uniform in [0, bound) (bound > 0). */
uint64_t bench_rng_below(bench_rng *r, uint64_t bound);

/** mkdir -p; returns 0 or -1 with errno set. */
int bench_mkdirs(const char *path);
/** rm -rf (does not follow symlinks); a missing path is not an error. */
int bench_rmtree(const char *path);
/** Bytes allocated on disk under @p path (st_blocks * 512, like du). */
uint64_t bench_du(const char *path);

/** Formats @p v with thousands separators into @p buf ("1,234,567"). */
const char *bench_fmt_int(char *buf, size_t cap, double v);

/** Prints to stderr and exits with status 2. */
void bench_die(const char *fmt, ...) BENCH_PRINTF(1, 2) BENCH_NORETURN;

/** Parses a non-negative integer option value ("200000", "1e6", "200k",
 *  "1M" accepted); dies with a message naming @p opt on error. */
uint64_t bench_parse_count(const char *opt, const char *s);

/** Writes @p s as a JSON string literal (with quotes) to @p f. */
void bench_json_str(FILE *f, const char *s);

/** Opens the --json file @p path for writing (truncated); dies on error. */
FILE *bench_json_open(const char *path);
/** Closes the --json file @p f opened from @p path; dies on a write error. */
void bench_json_close(FILE *f, const char *path);

/** Appends an entry to an engine's error list @p errors (@p cap bytes),
 *  "; " between entries; a full list drops it. */
void bench_append_err(char *errors, size_t cap, const char *fmt, ...) BENCH_PRINTF(3, 4);

#endif /* SOP_BENCH_UTIL_H */
