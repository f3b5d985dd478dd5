/* fault_sweep.c - the bookkeeping of an I/O fault sweep (fault_sweep.h). */
#include "fault_sweep.h"

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "testutil.h"

#define MAX_TALLY 64

const fs_kind fs_kinds[FS_NKINDS] = {
    {"EIO", -EIO, FAULT_OP_ALL & ~FAULT_OP_CLOSE, 0},
    {"ENOSPC", -ENOSPC,
     FAULT_OP_WRITE | FAULT_OP_SYNC | FAULT_OP_OPEN_CREATE | FAULT_OP_TRUNCATE | FAULT_OP_MKDIR, 1},
    {"SHORT", FAULT_ERR_SHORT, FAULT_OP_READ | FAULT_OP_WRITE, 0},
    {"SYNC", -EIO, FAULT_OP_SYNC | FAULT_OP_SYNCDIR, 1},
};

static char g_prog[64] = "sweep";
static char g_where[256]; /* the case running, for failure reports */
static char g_class[64];  /* its operation and fault class, for the tally */
static uint64_t g_bad;    /* failed checks */
static int g_case_bad;    /* the running case failed */
static uint64_t g_bad_cases;
static struct timespec g_t0;

/* Failed checks by kind: (class, message format), with the first message
 * as an example. */
typedef struct tally {
    const char *fmt;
    char cls[64];
    uint64_t n;
    char example[1000];
} tally;
static tally g_tally[MAX_TALLY];
static int g_ntally;

static void on_alarm(int sig)
{
    (void)sig;
    static const char msg[] = ": HANG: a case exceeded its time limit: ";
    ssize_t w = write(2, g_prog, strlen(g_prog));
    w = write(2, msg, sizeof msg - 1);
    w = write(2, g_where, strlen(g_where));
    w = write(2, "\n", 1);
    (void)w;
    _exit(3);
}

void fs_init(const char *prog)
{
    snprintf(g_prog, sizeof g_prog, "%s", prog);
    signal(SIGALRM, on_alarm);
    signal(SIGPIPE, SIG_IGN);
    clock_gettime(CLOCK_MONOTONIC, &g_t0);
}

int fs_args(int argc, char **argv, const char **only, int *verbose)
{
    *only = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--only") && i + 1 < argc)
            *only = argv[++i];
        else if (!strcmp(argv[i], "--verbose"))
            *verbose = 1;
        else
            return -1;
    }
    return 0;
}

void fs_where(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g_where, sizeof g_where, fmt, ap);
    va_end(ap);
}

const char *fs_where_now(void) { return g_where; }

void fs_case_begin(unsigned alarm_s, const char *cls, const char *where, ...)
{
    va_list ap;
    va_start(ap, where);
    vsnprintf(g_where, sizeof g_where, where, ap);
    va_end(ap);
    snprintf(g_class, sizeof g_class, "%s", cls);
    g_case_bad = 0;
    alarm(alarm_s);
}

void fs_case_begin_nth(unsigned alarm_s, const char *xname, int kind, int persistent, uint64_t n)
{
    char cls[64];
    snprintf(cls, sizeof cls, "X=%s fault=%s", xname, fs_kinds[kind].name);
    fs_case_begin(alarm_s, cls, "%s %s n=%" PRIu64, cls, persistent ? "persistent" : "transient",
                  n);
}

int fs_case_end(void)
{
    alarm(0);
    g_bad_cases += (uint64_t)g_case_bad;
    return g_case_bad;
}

void fs_fatal(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s: FATAL [%s]: ", g_prog, g_where);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(2);
}

void fs_bad(const char *fmt, ...)
{
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    g_bad++;
    g_case_bad = 1;
    if (g_bad <= FS_MAX_REPORTS)
        fprintf(stderr, "%s: BAD [%s]: %s\n", g_prog, g_where, msg);
    int i = 0;
    while (i < g_ntally && !(g_tally[i].fmt == fmt && !strcmp(g_tally[i].cls, g_class)))
        i++;
    if (i == g_ntally && g_ntally < MAX_TALLY) {
        g_tally[i].fmt = fmt;
        snprintf(g_tally[i].cls, sizeof g_tally[i].cls, "%s", g_class);
        snprintf(g_tally[i].example, sizeof g_tally[i].example, "[%s]: %s", g_where, msg);
        g_ntally++;
    }
    if (i < g_ntally)
        g_tally[i].n++;
}

uint64_t fs_bad_checks(void) { return g_bad; }

uint64_t fs_bad_cases(void) { return g_bad_cases; }

void fs_copy_dir(const char *src, const char *dst)
{
    if (tu_copydir(src, dst))
        fs_fatal("cannot copy %s to %s", src, dst);
}

void fs_detail_add(char *buf, size_t size, size_t *len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf + *len, size - *len, fmt, ap);
    va_end(ap);
    if (n > 0)
        *len += (size_t)n;
    if (*len >= size)
        *len = size - 1;
}

void fs_print_ops(sop_vfs *fv, const char *xname)
{
    static const char *const kn[] = {"open",   "create", "close",    "read", "write",
                                     "sync",   "size",   "truncate", "lock", "remove",
                                     "rename", "mkdir",  "syncdir",  "list"};
    fprintf(stderr, "%s: X=%s calls:", g_prog, xname);
    for (int k = 0; k < 14; k++)
        fprintf(stderr, " %s %" PRIu64, kn[k], fault_vfs_ops(fv, 1u << k));
    fputc('\n', stderr);
}

int fs_panicked(sop_db *db)
{
    sop_txn *t;
    int rc = sop_txn_begin(db, SOP_TXN_READ, 0, &t);
    if (rc == 0) {
        sop_txn_rollback(t);
        return 0;
    }
    if (rc != SOP_EPANIC)
        fs_bad("begin READ after X: %s (%s)", sop_err_name(rc), sop_db_errmsg(db));
    return rc == SOP_EPANIC;
}

void fs_panic_sticks(sop_db *db)
{
    sop_txn *t = NULL;
    int rc = sop_txn_begin(db, SOP_TXN_WRITE, 0, &t);
    if (rc != SOP_EPANIC) {
        fs_bad("panicked handle: begin WRITE returned %s", sop_err_name(rc));
        if (!rc)
            sop_txn_rollback(t);
    }
    if ((rc = sop_db_check(db, NULL, NULL, NULL)) != SOP_EPANIC)
        fs_bad("panicked handle: check returned %s", sop_err_name(rc));
    if (!*sop_db_errmsg(db))
        fs_bad("panicked handle: empty sop_db_errmsg()");
}

int fs_finish(uint64_t points)
{
    for (int i = 0; i < g_ntally; i++)
        printf("%s: failed %5" PRIu64 "x, e.g. %s\n", g_prog, g_tally[i].n, g_tally[i].example);
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs = (double)(t1.tv_sec - g_t0.tv_sec) + (double)(t1.tv_nsec - g_t0.tv_nsec) / 1e9;
    printf("%s: %" PRIu64 " failed checks in %.1f s\n", g_prog, g_bad, secs);
    printf("%s: %" PRIu64 " injection points, %" PRIu64 " bad\n", g_prog, points, g_bad_cases);
    return g_bad ? 1 : 0;
}

void fs_fnv(uint64_t *h, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) {
        *h ^= b[i];
        *h *= 0x100000001b3ull;
    }
}

void fs_fnv_u64(uint64_t *h, uint64_t v) { fs_fnv(h, &v, sizeof v); }
