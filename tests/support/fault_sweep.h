/* fault_sweep.h - the bookkeeping of an I/O fault sweep (test support
 * only): the sweeps (tests/faults/ioerr.c, ioerr_layers.c) run one case
 * per (operation, fault kind, mode, n) with the fault VFS failing the n-th
 * matching call, and check what follows. This module holds what every
 * sweep does around its cases: the fault kinds, the failure reports and
 * their tally, the time limit of a case, the summary lines, and a
 * signature hash. Not thread-safe: one sweep per process. */
#ifndef SOP_TEST_FAULT_SWEEP_H
#define SOP_TEST_FAULT_SWEEP_H

#include <stddef.h>
#include <stdint.h>

#include "fault_vfs.h"
#include "sop/sop.h"

/* The fault kinds. A sweep runs the first FS_NKINDS_DATA (every call) or
 * all FS_NKINDS (also the syncs alone). */
enum { FS_EIO, FS_ENOSPC, FS_SHORT, FS_SYNC, FS_NKINDS };
#define FS_NKINDS_DATA FS_SYNC

typedef struct fs_kind {
    const char *name;
    int err;       /* fault_vfs_fail_nth()'s @err */
    unsigned mask; /* the calls it fails */
    int mutating;  /* only calls that change durable state: a hit must fail X */
} fs_kind;

/** @brief The fault kinds: EIO (-EIO on any call except close), ENOSPC
 *  (-ENOSPC on write, sync, create, truncate, mkdir), SHORT (short read or
 *  short write, on read and write), SYNC (-EIO on sync and sync_dir). */
extern const fs_kind fs_kinds[FS_NKINDS];

/** @brief Starts the sweep named @p prog (the prefix of every line it
 *  prints): clock for the summary, SIGALRM catches a hung case
 *  (fs_case_begin()), SIGPIPE ignored. */
void fs_init(const char *prog);

/** @brief Reads a sweep's options: "--only <X>" into @p only (else NULL),
 *  "--verbose" sets @p verbose. Returns 0, or -1 on anything else (the
 *  caller prints its usage). */
int fs_args(int argc, char **argv, const char **only, int *verbose);

/** @brief Sets what is running (printed with every failure and a hang),
 *  printf-style. */
void fs_where(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/** @brief What fs_where() last set. */
const char *fs_where_now(void);

/** @brief Starts a case: @p cls (operation and fault class) groups its
 *  failures in the tally, @p where (printf-style) names it; arms a time
 *  limit of @p alarm_s seconds, after which the process prints the case
 *  and exits 3. */
void fs_case_begin(unsigned alarm_s, const char *cls, const char *where, ...)
    __attribute__((format(printf, 3, 4)));

/** @brief fs_case_begin() for operation @p xname with the @p n-th call of
 *  fault kind @p kind failing (@p persistent: and every later one): class
 *  "X=<xname> fault=<kind>", where "... <transient|persistent> n=<n>". */
void fs_case_begin_nth(unsigned alarm_s, const char *xname, int kind, int persistent, uint64_t n);

/** @brief Ends a case: disarms the time limit, counts the case as bad when
 *  any fs_bad() was called since fs_case_begin(). Returns whether it was
 *  bad. */
int fs_case_end(void);

/** @brief A setup error: prints it with the case and exits 2. */
void fs_fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

#define FS_MAX_REPORTS 30 /* failed checks printed in full; then only the tally */

/** @brief A failed check: prints it (the first FS_MAX_REPORTS of them), marks
 * the case bad, and tallies it by (class, format). */
void fs_bad(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/** @brief Failed checks so far. */
uint64_t fs_bad_checks(void);

/** @brief Bad cases so far. */
uint64_t fs_bad_cases(void);

/** @brief Replaces directory @p dst by a byte copy of @p src; fatal when it
 *  cannot. */
void fs_copy_dir(const char *src, const char *dst);

/** @brief Appends printf-style text to @p buf (of @p size bytes, @p *len
 *  used), cut at its end: a per-operation detail line. */
void fs_detail_add(char *buf, size_t size, size_t *len, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/** @brief Prints, for @p xname, the calls of each kind @p fv has counted
 *  (to stderr: the --verbose output of a reference run). */
void fs_print_ops(sop_vfs *fv, const char *xname);

/** @brief Whether @p db is in the panic state: a READ transaction begins
 *  (no), or fails with SOP_EPANIC (yes); any other failure is fs_bad(). */
int fs_panicked(sop_db *db);

/** @brief Checks what every panicked handle must do: begin WRITE and
 *  sop_db_check() return SOP_EPANIC, sop_db_errmsg() is not empty. */
void fs_panic_sticks(sop_db *db);

/** @brief Prints the tally of failed checks, their count and time, and
 *  last "<prog>: <points> injection points, <bad> bad". Returns the exit
 *  code: 1 when any check failed, else 0. */
int fs_finish(uint64_t points);

/** @brief FNV-1a: folds @p n bytes at @p p into @p h (start from
 *  FS_FNV_INIT). */
void fs_fnv(uint64_t *h, const void *p, size_t n);

/** @brief Folds the 8 bytes of @p v into @p h. */
void fs_fnv_u64(uint64_t *h, uint64_t v);

#define FS_FNV_INIT 0xcbf29ce484222325ull

#endif
