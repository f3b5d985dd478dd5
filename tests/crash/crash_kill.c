/*
 * crash_kill.c - crash consistency I: process kill (reliability plan C1).
 *
 * The parent loops N times (SOP_KILL_ITERS, default 60). Each iteration
 * forks a child that opens the database (SOP_SYNC_FULL) and runs
 * transactions t = next, next + 1, ...: each moves an amount between two of
 * 16 accounts in store "acct" (the sum is conserved) and inserts the four
 * records "ins/<t>/<i>" in store "ins" with values derived from t (some
 * large enough to live in blobs), commits, and only after SOP_OK writes t to
 * a pipe (the acknowledgement). The child is killed:
 *   mode A: by the parent with SIGKILL after a random 0-50 ms (measured
 *           from the fork or from the end of sop_db_open);
 *   mode B: by the engine itself at a named kill point
 *           (SOP_KILLPOINT=<name>:<nth>, needs -DSOP_TESTING=ON); a child
 *           that finishes its bounded workload counts as "point not
 *           reached" (and a point that no child reached is listed as
 *           "never reached").
 * Children checkpoint explicitly every few transactions; half of them run
 * with small segments (1 MiB) and a small checkpoint_bytes, so kills also
 * land in segment rotations and in automatic checkpoints.
 * After each kill the parent reopens the database and checks:
 *   - sop_db_check() is clean;
 *   - every acknowledged t (of every iteration so far) is present in full,
 *     all 4 records with exact content (durability);
 *   - no t is partially present (atomicity);
 *   - the accounts hold exactly the balances implied by the present t's,
 *     so the total is conserved (consistency, and atomicity across stores);
 *   - this iteration's recovered t's form a prefix next..next+m-1 with
 *     acked <= m <= acked + 1 (one in flight).
 * Summary: "kill: <cases> cases, <acked> acked, <lost> lost, <partial>
 * partial, <corrupt> corrupt"; exit status 1 when lost, partial or corrupt
 * is not 0.
 *
 * Environment: SOP_KILL_ITERS, SOP_KILL_MODE (A, B, or mixed by default),
 * SOP_TEST_SEED, SOP_KILL_MUTANT=1 (harness self-test: the child
 * acknowledges before committing, so the test must report losses).
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

#include "sop/sop.h"
#include "testutil.h"

#define NACCT 16
#define INITIAL 1000
#define K 4

static const char *const KILLPOINTS[] = {
    "commit:before_append",  "commit:after_append",    "commit:after_sync",
    "commit:after_apply",    "checkpoint:after_dw",    "checkpoint:mid_registry",
    "checkpoint:before_ckpt", "open:after_replay",     "log:extend",
};
#define NKILLPOINTS (sizeof KILLPOINTS / sizeof KILLPOINTS[0])

/* Mode B children run at most this many transactions, with a checkpoint
 * every CKPT_EVERY, then close the database and exit 0. */
#define B_MAX_TXNS 40
#define CKPT_EVERY 4

static uint64_t mix64(uint64_t x)
{
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

/* ------------------------------------------------------------------ */
/* The workload, a pure function of t                                 */
/* ------------------------------------------------------------------ */

static void move_of(uint64_t t, int *from, int *to, int64_t *amount)
{
    uint64_t h = mix64(t * 3 + 17);
    *from = (int)(h % NACCT);
    *to = (int)((uint64_t)(*from + 1) + (h >> 8) % (NACCT - 1)) % NACCT;
    *amount = 1 + (int64_t)((h >> 20) % 100);
}

static size_t ins_key(uint64_t t, int i, char *buf, size_t cap)
{
    return (size_t)snprintf(buf, cap, "ins/%08" PRIu64 "/%d", t, i);
}

static size_t val_len(uint64_t t, int i)
{
    uint64_t h = mix64(t * 8 + (uint64_t)i);
    if (i == 3 && t % 2 == 0)
        return 1100 + h % 5000; /* larger than the default inline_max: a blob */
    return 1 + h % 200;
}

/* Fills buf with the value of record (t, i); returns its length. */
static size_t val_of(uint64_t t, int i, uint8_t *buf)
{
    size_t n = val_len(t, i);
    uint64_t s = t * 1000003u + (uint64_t)i * 7919u + 1;
    for (size_t j = 0; j < n; j += 8) {
        uint64_t x = mix64(s + j);
        memcpy(buf + j, &x, n - j < 8 ? n - j : 8);
    }
    if (n >= 8)
        memcpy(buf, &t, 8); /* makes a misplaced record easy to recognise */
    return n;
}

#define VAL_MAX 6200

static void acct_key(int a, char *buf)
{
    snprintf(buf, 16, "acct/%02d", a);
}

/* ------------------------------------------------------------------ */
/* Child                                                              */
/* ------------------------------------------------------------------ */

static void write_all(int fd, const void *p, size_t n)
{
    const char *c = p;
    while (n) {
        ssize_t w = write(fd, c, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            _exit(20);
        }
        c += w;
        n -= (size_t)w;
    }
}

static int run_txn(sop_db *db, uint64_t t, int mutant, int wfd)
{
    sop_txn *txn = NULL;
    sop_store *acct = NULL, *ins = NULL;
    int rc = sop_txn_begin(db, SOP_TXN_WRITE, 0, &txn);
    if (rc != SOP_OK)
        return rc;
    if ((rc = sop_store_open(txn, "acct", &acct)) != SOP_OK ||
        (rc = sop_store_open(txn, "ins", &ins)) != SOP_OK)
        goto fail;
    int from, to;
    int64_t amount;
    move_of(t, &from, &to, &amount);
    int acc[2] = {from, to};
    int64_t delta[2] = {-amount, amount};
    for (int j = 0; j < 2; j++) {
        char kb[16];
        acct_key(acc[j], kb);
        sop_val k = {kb, strlen(kb)}, v;
        int64_t bal;
        if ((rc = sop_get(acct, &k, &v)) != SOP_OK)
            goto fail;
        if (v.size != 8) {
            rc = SOP_ECORRUPT;
            goto fail;
        }
        memcpy(&bal, v.data, 8);
        bal += delta[j];
        sop_val nv = {&bal, 8};
        if ((rc = sop_update(acct, &k, &nv)) != SOP_OK)
            goto fail;
    }
    for (int i = 0; i < K; i++) {
        char kb[40];
        uint8_t vb[VAL_MAX];
        sop_val k = {kb, ins_key(t, i, kb, sizeof kb)};
        sop_val v = {vb, val_of(t, i, vb)};
        if ((rc = sop_add(ins, &k, &v)) != SOP_OK)
            goto fail;
    }
    if (mutant)
        write_all(wfd, &t, sizeof t); /* wrong on purpose: ack before commit */
    return sop_txn_commit(txn);
fail:
    sop_txn_rollback(txn);
    return rc;
}

static void child_error(sop_db *db, const char *what, uint64_t t, int rc)
{
    fprintf(stderr, "crash_kill child: %s (t=%" PRIu64 "): %s: %s\n", what, t, sop_err_name(rc),
            db ? sop_db_errmsg(db) : "");
}

/* Never returns. Runs in a freshly exec'd process, so that the library's
 * kill point reads SOP_KILLPOINT (it latches the variable at first use). */
static void run_child(const char *dir, int wfd, uint64_t first, const char *killpoint,
                      int mutant, int small)
{
    sop_db_options o;
    sop_db_options_init(&o);
    o.sync = SOP_SYNC_FULL;
    if (small) {
        /* segment rotations and automatic checkpoints inside commits */
        o.segment_bytes = 1u << 20;
        o.checkpoint_bytes = 128u << 10;
    }
    o.flags = 0; /* the database exists */
    o.map_reads = (int)(first & 1); /* half the children read through segment maps */
    sop_db *db = NULL;
    int rc = sop_db_open(dir, &o, &db);
    if (rc != SOP_OK) {
        child_error(db, "sop_db_open", first, rc);
        _exit(10);
    }
    uint64_t ready = 0;
    write_all(wfd, &ready, sizeof ready);
    for (uint64_t t = first;; t++) {
        uint64_t n = t - first;
        if (killpoint && n >= B_MAX_TXNS)
            break;
        rc = run_txn(db, t, mutant, wfd);
        if (rc != SOP_OK) {
            child_error(db, "commit", t, rc);
            _exit(11);
        }
        if (!mutant)
            write_all(wfd, &t, sizeof t);
        if (n % CKPT_EVERY == CKPT_EVERY - 1 && (killpoint || (n / CKPT_EVERY) % 4 == 3)) {
            rc = sop_db_checkpoint(db);
            if (rc != SOP_OK) {
                child_error(db, "sop_db_checkpoint", t, rc);
                _exit(12);
            }
        }
    }
    rc = sop_db_close(db);
    if (rc != SOP_OK) {
        child_error(NULL, "sop_db_close", 0, rc);
        _exit(13);
    }
    _exit(0);
}

/* ------------------------------------------------------------------ */
/* Parent: the oracle and the checks                                  */
/* ------------------------------------------------------------------ */

typedef struct oracle {
    uint8_t *known; /* known[t]: t is committed (acknowledged or recovered) */
    uint64_t cap;
    uint64_t next; /* first t of the next child */
} oracle;

static void known_set(oracle *o, uint64_t t)
{
    if (t >= o->cap) {
        uint64_t nc = o->cap ? o->cap : 1024;
        while (nc <= t)
            nc *= 2;
        o->known = realloc(o->known, nc);
        if (!o->known)
            abort();
        memset(o->known + o->cap, 0, nc - o->cap);
        o->cap = nc;
    }
    o->known[t] = 1;
}

static int known_get(const oracle *o, uint64_t t)
{
    return t < o->cap && o->known[t];
}

typedef struct counts {
    unsigned long cases, acked, lost, partial, corrupt;
    unsigned long mode_a, mode_b, not_reached, in_flight_recovered;
} counts;

/* What one scan of store "ins" found. */
typedef struct found {
    uint8_t *mask; /* per t: bit i set when record i is present with the right content */
    uint8_t *bad;  /* per t: a record with wrong content */
    uint64_t cap;
    unsigned long malformed;
    uint64_t max_t;
    int any;
    uint8_t vb[VAL_MAX];
} found;

static void found_grow(found *f, uint64_t t)
{
    if (t < f->cap)
        return;
    uint64_t nc = f->cap ? f->cap : 1024;
    while (nc <= t)
        nc *= 2;
    f->mask = realloc(f->mask, nc);
    f->bad = realloc(f->bad, nc);
    if (!f->mask || !f->bad)
        abort();
    memset(f->mask + f->cap, 0, nc - f->cap);
    memset(f->bad + f->cap, 0, nc - f->cap);
    f->cap = nc;
}

static int ins_cb(const sop_val *key, const sop_val *val, void *ctx)
{
    found *f = ctx;
    char kb[40];
    uint64_t t;
    int i, n = 0;
    if (key->size >= sizeof kb) {
        f->malformed++;
        return 0;
    }
    memcpy(kb, key->data, key->size);
    kb[key->size] = 0;
    if (sscanf(kb, "ins/%" SCNu64 "/%d%n", &t, &i, &n) != 2 || (size_t)n != key->size || i < 0 ||
        i >= K || t == 0 || t > (1u << 30)) {
        fprintf(stderr, "crash_kill: malformed key in ins: %s\n", kb);
        f->malformed++;
        return 0;
    }
    found_grow(f, t);
    size_t len = val_of(t, i, f->vb);
    if (val->size != len || memcmp(val->data, f->vb, len) != 0) {
        fprintf(stderr, "crash_kill: ins/%" PRIu64 "/%d has wrong content (%zu bytes, expected %zu)\n",
                t, i, val->size, len);
        f->bad[t] = 1;
    } else {
        f->mask[t] |= (uint8_t)(1u << i);
    }
    if (!f->any || t > f->max_t)
        f->max_t = t;
    f->any = 1;
    return 0;
}

static void check_cb(const char *problem, void *ctx)
{
    (void)ctx;
    fprintf(stderr, "crash_kill: sop_db_check: %s\n", problem);
}

/* Reopens and checks the database after an iteration whose child started
 * at @first and acknowledged @acks. Returns 0, or -1 when the database
 * cannot be opened (the loop stops). */
static int recover_and_verify(const char *dir, oracle *o, uint64_t first, const uint64_t *acks,
                              size_t nacks, counts *c)
{
    sop_db *db = NULL;
    sop_db_options opts;
    sop_db_options_init(&opts);
    opts.map_reads = (int)(c->cases & 1); /* verify through maps every other case */
    int rc = sop_db_open(dir, &opts, &db);
    if (rc != SOP_OK) {
        fprintf(stderr, "crash_kill: case %lu: reopen failed: %s: %s\n", c->cases,
                sop_err_name(rc), db ? sop_db_errmsg(db) : "");
        c->corrupt++;
        sop_db_close(db);
        return -1;
    }
    uint64_t problems = 0;
    rc = sop_db_check(db, check_cb, NULL, &problems);
    if (rc != SOP_OK || problems) {
        fprintf(stderr, "crash_kill: case %lu: sop_db_check = %s, %" PRIu64 " problems\n",
                c->cases, sop_err_name(rc), problems);
        c->corrupt++;
    }

    sop_txn *txn = NULL;
    sop_store *acct = NULL, *ins = NULL;
    found f;
    memset(&f, 0, sizeof f);
    int ok = 1;
    rc = sop_txn_begin(db, SOP_TXN_READ, 0, &txn);
    if (rc == SOP_OK)
        rc = sop_store_open(txn, "acct", &acct);
    if (rc == SOP_OK)
        rc = sop_store_open(txn, "ins", &ins);
    if (rc == SOP_OK)
        rc = sop_scan(ins, NULL, ins_cb, &f);
    if (rc != SOP_OK) {
        fprintf(stderr, "crash_kill: case %lu: reading ins: %s: %s\n", c->cases, sop_err_name(rc),
                sop_db_errmsg(db));
        c->corrupt++;
        ok = 0;
    }
    if (f.malformed) {
        c->corrupt++;
        ok = 0;
    }

    if (ok) {
        /* per t: complete or absent, right content */
        uint64_t top = f.any ? f.max_t : 0;
        for (uint64_t t = 1; t <= top; t++) {
            if (f.bad[t]) {
                c->corrupt++;
                continue;
            }
            if (f.mask[t] && f.mask[t] != (1u << K) - 1) {
                fprintf(stderr, "crash_kill: case %lu: t=%" PRIu64 " partial (mask %x)\n", c->cases,
                        t, f.mask[t]);
                c->partial++;
            }
        }
        /* everything committed before this iteration is still there */
        for (uint64_t t = 1; t < first; t++) {
            int present = t <= top && f.mask[t] == (1u << K) - 1;
            if (known_get(o, t) && !present) {
                fprintf(stderr, "crash_kill: case %lu: t=%" PRIu64 " (committed earlier) lost\n",
                        c->cases, t);
                c->lost++;
            } else if (!known_get(o, t) && t <= top && f.mask[t]) {
                fprintf(stderr, "crash_kill: case %lu: t=%" PRIu64 " reappeared\n", c->cases, t);
                c->corrupt++;
            }
        }
        /* this iteration's acknowledgements */
        for (size_t j = 0; j < nacks; j++) {
            uint64_t t = acks[j];
            if (t != first + j) {
                fprintf(stderr, "crash_kill: case %lu: ack %" PRIu64 " out of sequence\n",
                        c->cases, t);
                c->corrupt++;
            }
            if (!(t <= top && f.mask[t] == (1u << K) - 1)) {
                fprintf(stderr, "crash_kill: case %lu: acknowledged t=%" PRIu64 " lost\n",
                        c->cases, t);
                c->lost++;
            }
        }
        /* recovered: a prefix first..first+m-1, acked <= m <= acked + 1 */
        uint64_t m = 0;
        while (first + m <= top && f.mask[first + m])
            m++;
        for (uint64_t t = first + m; t <= top; t++) {
            if (f.mask[t]) {
                fprintf(stderr,
                        "crash_kill: case %lu: t=%" PRIu64 " present after a hole at %" PRIu64 "\n",
                        c->cases, t, first + m);
                c->corrupt++;
            }
        }
        if (m > nacks + 1) {
            fprintf(stderr,
                    "crash_kill: case %lu: %" PRIu64 " transactions recovered, %zu acknowledged\n",
                    c->cases, m, nacks);
            c->corrupt++;
        }
        if (m == nacks + 1)
            c->in_flight_recovered++;

        /* accounts: exactly the balances implied by the present t's */
        int64_t want[NACCT];
        for (int a = 0; a < NACCT; a++)
            want[a] = INITIAL;
        for (uint64_t t = 1; t <= top; t++) {
            if (f.mask[t] != (1u << K) - 1)
                continue;
            int from, to;
            int64_t amount;
            move_of(t, &from, &to, &amount);
            want[from] -= amount;
            want[to] += amount;
        }
        int64_t sum = 0;
        int acct_bad = 0;
        for (int a = 0; a < NACCT; a++) {
            char kb[16];
            acct_key(a, kb);
            sop_val k = {kb, strlen(kb)}, v;
            int64_t bal = 0;
            rc = sop_get(acct, &k, &v);
            if (rc != SOP_OK || v.size != 8) {
                fprintf(stderr, "crash_kill: case %lu: %s: %s (%zu bytes)\n", c->cases, kb,
                        sop_err_name(rc), rc == SOP_OK ? v.size : 0);
                acct_bad = 2;
                continue;
            }
            memcpy(&bal, v.data, 8);
            sum += bal;
            if (bal != want[a]) {
                fprintf(stderr,
                        "crash_kill: case %lu: %s = %" PRId64 ", expected %" PRId64 "\n",
                        c->cases, kb, bal, want[a]);
                if (!acct_bad)
                    acct_bad = 1;
            }
        }
        uint64_t n = 0;
        rc = sop_store_count(acct, &n);
        if (rc != SOP_OK || n != NACCT) {
            fprintf(stderr, "crash_kill: case %lu: acct holds %" PRIu64 " items (%s)\n", c->cases,
                    n, sop_err_name(rc));
            acct_bad = 2;
        }
        if (acct_bad == 2 || sum != (int64_t)NACCT * INITIAL) {
            fprintf(stderr, "crash_kill: case %lu: account total %" PRId64 ", expected %d\n",
                    c->cases, sum, NACCT * INITIAL);
            c->corrupt++;
        } else if (acct_bad) {
            c->partial++; /* the moves and the inserts disagree: not atomic */
        }

        /* what is committed now must stay */
        for (uint64_t t = first; t < first + m; t++)
            known_set(o, t);
        o->next = first + m;
    }
    if (txn)
        sop_txn_rollback(txn);
    rc = sop_db_close(db);
    if (rc != SOP_OK) {
        fprintf(stderr, "crash_kill: case %lu: close after recovery: %s\n", c->cases,
                sop_err_name(rc));
        c->corrupt++;
    }
    free(f.mask);
    free(f.bad);
    return 0;
}

static int create_db(const char *dir)
{
    sop_db *db = NULL;
    sop_txn *txn = NULL;
    sop_store *acct = NULL, *ins = NULL;
    int rc = sop_db_open(dir, NULL, &db);
    if (rc != SOP_OK) {
        fprintf(stderr, "crash_kill: create: %s: %s\n", sop_err_name(rc),
                db ? sop_db_errmsg(db) : "");
        sop_db_close(db);
        return rc;
    }
    rc = sop_txn_begin(db, SOP_TXN_WRITE, 0, &txn);
    if (rc == SOP_OK)
        rc = sop_store_create(txn, "acct", NULL, &acct);
    if (rc == SOP_OK)
        rc = sop_store_create(txn, "ins", NULL, &ins);
    for (int a = 0; a < NACCT && rc == SOP_OK; a++) {
        char kb[16];
        int64_t bal = INITIAL;
        acct_key(a, kb);
        sop_val k = {kb, strlen(kb)}, v = {&bal, 8};
        rc = sop_add(acct, &k, &v);
    }
    if (rc == SOP_OK)
        rc = sop_txn_commit(txn);
    else if (txn)
        sop_txn_rollback(txn);
    if (rc != SOP_OK)
        fprintf(stderr, "crash_kill: create: %s: %s\n", sop_err_name(rc), sop_db_errmsg(db));
    int rc2 = sop_db_close(db);
    return rc ? rc : rc2;
}

static long env_long(const char *name, long dflt)
{
    const char *e = getenv(name);
    if (!e || !*e)
        return dflt;
    long v = strtol(e, NULL, 10);
    return v > 0 ? v : dflt;
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static void sleep_us(unsigned us)
{
    struct timespec ts = {us / 1000000, (long)(us % 1000000) * 1000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* Child side: crash_kill --child <dir> <fd> <first> <killpoint|-> <mutant> <small> */
static int child_main(int argc, char **argv)
{
    if (argc != 8)
        return 40;
    const char *kp = strcmp(argv[5], "-") ? argv[5] : NULL;
    run_child(argv[2], atoi(argv[3]), strtoull(argv[4], NULL, 10), kp, atoi(argv[6]),
              atoi(argv[7]));
    return 41;
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--child") == 0)
        return child_main(argc, argv);
    unsetenv("SOP_KILLPOINT"); /* only children get one */
    setvbuf(stdout, NULL, _IOLBF, 0);
    uint64_t rng = tu_seed();
    long iters = env_long("SOP_KILL_ITERS", 60);
    const char *mode_env = getenv("SOP_KILL_MODE");
    int only_a = mode_env && (mode_env[0] == 'A' || mode_env[0] == 'a');
    int only_b = mode_env && (mode_env[0] == 'B' || mode_env[0] == 'b');
    int mutant = getenv("SOP_KILL_MUTANT") && atoi(getenv("SOP_KILL_MUTANT")) > 0;
    const char *dir = tu_tmpdir("crash_kill");

    if (create_db(dir) != SOP_OK) {
        fprintf(stderr, "crash_kill: cannot create the database in %s\n", dir);
        return 2;
    }
    oracle o;
    memset(&o, 0, sizeof o);
    o.next = 1;
    counts c;
    memset(&c, 0, sizeof c);
    size_t acap = 1024;
    uint64_t *acks = malloc(acap * sizeof *acks);
    if (!acks)
        abort();
    unsigned long child_errors = 0;
    unsigned long kp_tried[NKILLPOINTS] = {0}, kp_hit[NKILLPOINTS] = {0};

    for (long it = 0; it < iters; it++) {
        int mode_b = only_b || (!only_a && it % 3 == 2);
        char kp[64];
        const char *killpoint = NULL;
        size_t kpi = 0;
        if (mode_b) {
            /* round robin over the points; the nth pass is random */
            kpi = (size_t)(only_b ? it : it / 3) % NKILLPOINTS;
            const char *name = KILLPOINTS[kpi];
            kp_tried[kpi]++;
            unsigned nth;
            if (strncmp(name, "commit:", 7) == 0)
                nth = 1 + (unsigned)tu_rand_below(&rng, 30);
            else if (strncmp(name, "checkpoint:", 11) == 0)
                nth = 1 + (unsigned)tu_rand_below(&rng, 8);
            else
                /* open:after_replay; log:extend, passed after each piece of
                 * zeros written: recovery at open cuts the preallocation,
                 * so the child's first commit extends the last segment (by
                 * one or more pieces, as far as its records end from the
                 * next chunk boundary), and the first pass is always reached
                 * and leaves a partial or a whole extension */
                nth = 1;
            snprintf(kp, sizeof kp, "%s:%u", name, nth);
            killpoint = kp;
        }
        int p[2];
        if (pipe(p) != 0) {
            perror("pipe");
            return 2;
        }
        fflush(stdout);
        fflush(stderr);
        uint64_t first = o.next;
        int small = (int)tu_rand_below(&rng, 2);
        pid_t pid = fork();
        if (pid < 0) {
            perror("fork");
            return 2;
        }
        if (pid == 0) {
            char fds[16], firsts[32], muts[8], smalls[8];
            close(p[0]);
            snprintf(fds, sizeof fds, "%d", p[1]);
            snprintf(firsts, sizeof firsts, "%" PRIu64, first);
            snprintf(muts, sizeof muts, "%d", mutant);
            snprintf(smalls, sizeof smalls, "%d", small);
            if (killpoint)
                setenv("SOP_KILLPOINT", killpoint, 1);
            char *args[] = {argv[0], "--child", (char *)dir, fds, firsts,
                            killpoint ? (char *)killpoint : "-", muts, smalls, NULL};
            execv("/proc/self/exe", args);
            perror("crash_kill: execv");
            _exit(30);
        }
        close(p[1]);
        c.cases++;
        int st = 0;
        int from_ready = 0;
        size_t nacks = 0;
        if (!mode_b) {
            c.mode_a++;
            from_ready = (int)tu_rand_below(&rng, 2);
            if (from_ready) {
                uint64_t r;
                ssize_t got = read(p[0], &r, sizeof r);
                if (got == (ssize_t)sizeof r && r != 0) {
                    acks[nacks++] = r; /* cannot happen: 0 comes first */
                }
            }
            sleep_us((unsigned)tu_rand_below(&rng, 50000));
            kill(pid, SIGKILL);
            waitpid(pid, &st, 0);
        } else {
            c.mode_b++;
            int waited = 0;
            pid_t w;
            while ((w = waitpid(pid, &st, WNOHANG)) == 0 && waited < 120000) {
                sleep_ms(5);
                waited += 5;
            }
            if (w == 0) {
                fprintf(stderr, "crash_kill: case %lu: child hung at %s; killed\n", c.cases, kp);
                kill(pid, SIGKILL);
                waitpid(pid, &st, 0);
                child_errors++;
            }
        }
        /* collect the acknowledgements */
        for (;;) {
            uint64_t r;
            ssize_t got = read(p[0], &r, sizeof r);
            if (got == 0)
                break;
            if (got < 0) {
                if (errno == EINTR)
                    continue;
                break;
            }
            if (got != (ssize_t)sizeof r) {
                fprintf(stderr, "crash_kill: torn acknowledgement\n");
                c.corrupt++;
                break;
            }
            if (r == 0)
                continue; /* the ready marker */
            if (nacks == acap) {
                acap *= 2;
                acks = realloc(acks, acap * sizeof *acks);
                if (!acks)
                    abort();
            }
            acks[nacks++] = r;
        }
        close(p[0]);
        c.acked += nacks;

        if (WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL) {
            /* killed: by us (mode A) or at the kill point (mode B) */
            if (mode_b)
                kp_hit[kpi]++;
        } else if (WIFEXITED(st) && WEXITSTATUS(st) == 0 && mode_b) {
            c.not_reached++;
        } else {
            fprintf(stderr, "crash_kill: case %lu: child ended with %s %d%s%s\n", c.cases,
                    WIFEXITED(st) ? "status" : "signal",
                    WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st), killpoint ? " at " : "",
                    killpoint ? killpoint : "");
            child_errors++;
        }
        if (recover_and_verify(dir, &o, first, acks, nacks, &c) != 0)
            break;
    }
    c.corrupt += child_errors;

    if (c.mode_b) {
        printf("kill: points reached/tried:");
        for (size_t i = 0; i < NKILLPOINTS; i++)
            printf(" %s %lu/%lu", KILLPOINTS[i], kp_hit[i], kp_tried[i]);
        printf("\n");
        /* a point tried but never reached covers nothing (renamed, moved
         * out of the workload's path, or a library built without
         * SOP_TESTING): say so, for scripts/reliability.sh */
        size_t never = 0;
        for (size_t i = 0; i < NKILLPOINTS; i++)
            never += kp_tried[i] && !kp_hit[i];
        if (never) {
            printf("kill: points never reached:");
            for (size_t i = 0; i < NKILLPOINTS; i++)
                if (kp_tried[i] && !kp_hit[i])
                    printf(" %s", KILLPOINTS[i]);
            printf("\n");
        }
    }
    printf("kill: mode A %lu, mode B %lu (point not reached %lu), in-flight recovered %lu, "
           "child errors %lu%s\n",
           c.mode_a, c.mode_b, c.not_reached, c.in_flight_recovered, child_errors,
           mutant ? " [MUTANT]" : "");
    printf("kill: %lu cases, %lu acked, %lu lost, %lu partial, %lu corrupt\n", c.cases, c.acked,
           c.lost, c.partial, c.corrupt);
    free(acks);
    free(o.known);
    int bad = c.lost || c.partial || c.corrupt;
    if (!bad && !getenv("SOP_TEST_KEEP"))
        tu_rmtree(dir);
    return bad ? 1 : 0;
}
