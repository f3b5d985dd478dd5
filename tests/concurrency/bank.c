/*
 * bank.c - concurrent transactions: the bank invariant (reliability plan
 * C6.1), across threads and across two processes (plan C6.4).
 *
 * One database, shared by the threads of two processes (each process has
 * one sop_db, its threads share it):
 *  - store "acct": 64 accounts x 1000 (node_bytes 1024 and 64-byte values,
 *    so the accounts spread over several leaves and transfers between
 *    accounts of different leaves really commit in parallel);
 *  - store "ledger": one record per transfer, key (ledger id, seq), value
 *    (from, to, amount), so every transfer changes two stores atomically;
 *    every transfer thread has its own ledger id: 0..T-1 in this process,
 *    T..2T-1 in the second one;
 *  - store "churn": during phases A and B one churn thread (this process)
 *    adds, updates and removes items of 40..400 bytes (inline_max 128:
 *    many are value blobs) under 2000 keys, and keeps their number in item
 *    "!meta". The removals merge nodes, so node ids are freed and reused
 *    while older snapshots still read them.
 *
 * Phases (A and B each SOP_BANK_SECONDS, default 5), run by both processes
 * at the same time (this one moves the second one from phase to phase
 * through shared memory):
 *  A. T worker threads per process (SOP_BANK_THREADS, default 4) run WRITE
 *     transactions: read two balances, move min(random 1..100, balance),
 *     append the ledger record, commit; retry on SOP_ECONFLICT.
 *  B. the same with every odd thread using NOCHECK transactions (each
 *     transfer writes both accounts it read, and NOCHECK validates its
 *     writes, so the invariant must still hold).
 *  C. lost update: T threads per process increment one counter key
 *     SOP_BANK_INCR (default 250) times each with retries, first in WRITE
 *     then in NOCHECK transactions; each final value must be exactly
 *     T x N x (number of processes).
 * During A-C an auditor thread in each process keeps taking snapshots
 * (READ transactions, every 4th a read-only WRITE transaction), and now and
 * then calls sop_db_stats(), sop_db_checkpoint() and sop_db_check() (which
 * must be clean while the workers of both processes commit). In each
 * snapshot it checks:
 *  - the 64 balances read by key, in random order with yields, total
 *    exactly 64,000, and no balance is negative or torn;
 *  - a cursor scan (forwards or backwards) yields the same 64 keys and
 *    balances, and sop_store_count("acct") == 64;
 *  - the ledger scan count equals sop_store_count("ledger"), and every
 *    balance equals 1000 + its net flow in the ledger (cross-store
 *    atomicity), and no ledger id has a gap in its sequence;
 *  - the snapshot contains every transfer acknowledged (by either process)
 *    before it began, and at most T (2T with a second process) more than
 *    were acknowledged once it had begun;
 *  - ledger counts never decrease from one snapshot to the next;
 *  - "churn": every value intact, and scan count == sop_store_count ==
 *    1 + the count in "!meta".
 * Afterwards: the total, the ledger of every ledger id against the commits
 * its thread counted (those of the second process come through shared
 * memory), sop_db_check() clean, the stats' conflict count (in each
 * process); then reopen and verify again; finally a second process opens
 * the closed database and verifies.
 *
 * Two processes (SOP_BANK_PROCS, see "The second process" below): by
 * default a forked process opens the database while this one holds it and
 * runs the workload above concurrently with this one; all the checks span
 * both processes (acknowledgements are counted in shared memory). A second
 * process also opens and checks the database at rest before and after the
 * workload, a second handle in this process does the same, and after close
 * another process must open and verify the database.
 *
 * Output: one line per phase and process, then "bank: <commits> commits,
 * <conflicts> conflicts, <snapshots> snapshots, <bad> bad totals" (both
 * processes) and the same figures per process; exit status 1 when bad > 0
 * or any other invariant failed (in either process).
 *
 * Environment: SOP_BANK_THREADS, SOP_BANK_SECONDS, SOP_BANK_INCR,
 * SOP_BANK_SYNC=none (SOP_SYNC_NONE instead of SOP_SYNC_FULL),
 * SOP_BANK_VERBOSE=1 (print the reason of every conflict),
 * SOP_BANK_PROCS=shared|busy|auto|none (what a second process must get),
 * SOP_BANK_NOCHECK=0 (WRITE transactions only, to tell NOCHECK failures
 * from others), SOP_BANK_SMALL=0 (default segment, checkpoint and cache sizes and no
 * explicit checkpoints; by default they are small so that checkpoints,
 * compaction and evictions run during the workload),
 * SOP_TEST_SEED, SOP_TEST_TMP.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "sop/sop.h"
#include "testutil.h"

#define NACCT 64
#define INITIAL 1000
#define TOTAL ((int64_t)NACCT * INITIAL)
#define ACCT_VAL 64  /* bytes of an account's value */
#define LEDGER_VAL 16
#define MAX_THREADS 64
#define MAX_ATTEMPTS 100000 /* conflicts in a row that count as a livelock */

/* ------------------------------------------------------------------ */
/* Failure accounting                                                 */
/* ------------------------------------------------------------------ */

static atomic_uint_fast64_t g_fail;  /* invariant failures of any kind */
static atomic_uint_fast64_t g_bad;   /* snapshots whose total was wrong */
static sop_db *g_db;
static const char *g_path;
static sop_db_options g_opts;
static int g_verbose; /* SOP_BANK_VERBOSE=1: print why transactions conflicted */
static int g_small = 1; /* SOP_BANK_SMALL=0: default sizes, no explicit checkpoints */
static int g_nocheck = 1; /* SOP_BANK_NOCHECK=0: WRITE transactions only */

#define MAX_PRINTED 100 /* failures printed; the rest are only counted */
#define FAIL(...)                                                                                  \
    do {                                                                                           \
        uint64_t nfail_ = atomic_fetch_add(&g_fail, 1);                                            \
        if (nfail_ < MAX_PRINTED) {                                                                \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);                                   \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
        } else if (nfail_ == MAX_PRINTED) {                                                        \
            fprintf(stderr, "FAIL: more failures are not printed\n");                              \
        }                                                                                          \
    } while (0)

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond))                                                                               \
            FAIL(__VA_ARGS__);                                                                     \
    } while (0)

/* An unexpected error code from the engine. */
#define FAIL_RC(db, what, rc)                                                                      \
    FAIL("%s: %s (%s) [%s]", what, sop_err_name(rc), sop_strerror(rc),                             \
         (db) ? sop_db_errmsg(db) : "")

static long env_long(const char *name, long def, long lo, long hi)
{
    const char *s = getenv(name);
    if (!s || !*s)
        return def;
    char *end;
    long v = strtol(s, &end, 10);
    if (*end || v < lo || v > hi) {
        fprintf(stderr, "bank: %s=%s is not in [%ld, %ld]\n", name, s, lo, hi);
        exit(2);
    }
    return v;
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* ------------------------------------------------------------------ */
/* Encodings                                                          */
/* ------------------------------------------------------------------ */

static void acct_key(int i, char k[9]) { snprintf(k, 9, "acct/%03d", i); }

static void put_u32(uint8_t *p, uint32_t v) { memcpy(p, &v, 4); }
static uint32_t get_u32(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}
static void put_i64(uint8_t *p, int64_t v) { memcpy(p, &v, 8); }
static int64_t get_i64(const uint8_t *p)
{
    int64_t v;
    memcpy(&v, p, 8);
    return v;
}

static uint8_t filler(int acct, int64_t bal, int i)
{
    return (uint8_t)((uint64_t)bal * 31u + (uint64_t)acct * 7u + (uint64_t)i * 13u);
}

/* Account value: i64 balance, u32 account, filler derived from both (a
 * torn or misplaced value does not decode). */
static void acct_encode(int acct, int64_t bal, uint8_t v[ACCT_VAL])
{
    put_i64(v, bal);
    put_u32(v + 8, (uint32_t)acct);
    for (int i = 12; i < ACCT_VAL; i++)
        v[i] = filler(acct, bal, i);
}

static int acct_decode(int acct, const sop_val *v, int64_t *bal)
{
    if (v->size != ACCT_VAL)
        return -1;
    const uint8_t *p = v->data;
    int64_t b = get_i64(p);
    if (get_u32(p + 8) != (uint32_t)acct)
        return -1;
    for (int i = 12; i < ACCT_VAL; i++)
        if (p[i] != filler(acct, b, i))
            return -1;
    *bal = b;
    return 0;
}

static void ledger_key(unsigned thread, uint64_t seq, uint8_t k[8])
{
    uint64_t x = (uint64_t)thread << 48 | seq;
    for (int i = 0; i < 8; i++)
        k[i] = (uint8_t)(x >> (56 - 8 * i));
}

static uint64_t ledger_key_decode(const uint8_t k[8])
{
    uint64_t x = 0;
    for (int i = 0; i < 8; i++)
        x = x << 8 | k[i];
    return x;
}

/* ------------------------------------------------------------------ */
/* Workers                                                            */
/* ------------------------------------------------------------------ */

typedef struct worker {
    pthread_t th;
    unsigned id;
    uint64_t rng;
    sop_txn_mode mode;
    int counter_phase;           /* 0: transfers; 1: increments of ctr_key */
    const char *ctr_key;
    long incr;                   /* increments to do in a counter phase */
    atomic_int *stop;            /* transfers run until it is set */
    /* results (read by main after join) */
    uint64_t commits, conflicts, retried, max_attempts;
    uint64_t next_seq;           /* ledger records written by this thread, all phases */
} worker;

static atomic_int g_stop_workers;
static atomic_int g_stop_auditor;
static unsigned g_threads;  /* worker threads per process; ledger ids 0..T-1 here, T..2T-1 in
                               the second process */
static long g_incr;         /* increments per thread in a counter phase */
static atomic_uint g_inflight; /* transfers that may be committed but not yet acked */

/* Phases: this process sets g_sh->phase, the second process follows. */
enum { PH_IDLE, PH_WRITE, PH_NOCHECK, PH_INCR_WRITE, PH_INCR_NOCHECK, PH_DONE };
#define NPHASES (PH_DONE - PH_WRITE)
static const char *const phase_names[NPHASES] = {"write", "write+nocheck", "incr-write",
                                                 "incr-nocheck"};
static const char *const ctr_keys[2] = {"counter", "counter_nc"};

/* Shared between this process and the second one (MAP_SHARED). */
enum { CHILD_STARTING, CHILD_REFUSED, CHILD_RUNNING, CHILD_FAILED };
typedef struct xphase {
    atomic_uint_fast64_t commits, conflicts, retried, max_attempts, ns;
} xphase;
typedef struct xshared {
    atomic_uint_fast64_t acked; /* transfers whose commit returned SOP_OK, both processes */
    atomic_int phase;           /* PH_*: set by this process, followed by the second one */
    atomic_int state;           /* CHILD_* */
    atomic_int counted;         /* counter phases the second process has finished */
    /* results of the second process, written before it exits */
    xphase ph[NPHASES];
    atomic_uint_fast64_t snapshots, checks, audit_conflicts, bad;
    atomic_uint_fast64_t next_seq[MAX_THREADS]; /* ledger records of ledger id T + i */
} xshared;
static xshared *g_sh;

static void jitter(uint64_t *rng)
{
    if (tu_rand_below(rng, 4) == 0)
        sched_yield();
}

/* Reads account @i into @bal; returns rc (a torn value is a failure). */
static int read_acct(sop_store *s, int i, int64_t *bal)
{
    char k[9];
    acct_key(i, k);
    sop_val key = {k, 8}, v;
    int rc = sop_get(s, &key, &v);
    if (rc)
        return rc;
    if (acct_decode(i, &v, bal)) {
        FAIL("account %d: torn or misplaced value (size %zu)", i, v.size);
        return -EIO;
    }
    return 0;
}

static int write_acct(sop_store *s, int i, int64_t bal)
{
    char k[9];
    uint8_t v[ACCT_VAL];
    acct_key(i, k);
    acct_encode(i, bal, v);
    sop_val key = {k, 8}, val = {v, ACCT_VAL};
    return sop_update(s, &key, &val);
}

/* One attempt of a transfer; the transaction is ended either way. */
static int transfer_once(worker *w, int from, int to, int64_t want)
{
    sop_txn *t;
    int rc = sop_txn_begin(g_db, w->mode, 0, &t);
    if (rc)
        return rc;
    sop_store *acct, *led;
    int64_t bf = 0, bt = 0;
    if ((rc = sop_store_open(t, "acct", &acct)) || (rc = sop_store_open(t, "ledger", &led)))
        goto fail;
    if ((rc = read_acct(acct, from, &bf)))
        goto fail;
    jitter(&w->rng);
    if ((rc = read_acct(acct, to, &bt)))
        goto fail;
    if (bf < 0 || bt < 0) {
        FAIL("thread %u read a negative balance: %d=%" PRId64 " %d=%" PRId64, w->id, from, bf,
             to, bt);
        rc = -EIO;
        goto fail;
    }
    int64_t amount = want < bf ? want : bf;
    if ((rc = write_acct(acct, from, bf - amount)))
        goto fail;
    jitter(&w->rng);
    if ((rc = write_acct(acct, to, bt + amount)))
        goto fail;
    uint8_t k[8], v[LEDGER_VAL];
    ledger_key(w->id, w->next_seq, k);
    put_u32(v, (uint32_t)from);
    put_u32(v + 4, (uint32_t)to);
    put_i64(v + 8, amount);
    sop_val key = {k, 8}, val = {v, LEDGER_VAL};
    if ((rc = sop_add(led, &key, &val))) {
        if (rc == SOP_EEXISTS)
            FAIL("thread %u: ledger record %" PRIu64 " already exists", w->id, w->next_seq);
        goto fail;
    }
    jitter(&w->rng);
    return sop_txn_commit(t);
fail:
    sop_txn_rollback(t);
    return rc;
}

static int increment_once(worker *w)
{
    sop_txn *t;
    int rc = sop_txn_begin(g_db, w->mode, 0, &t);
    if (rc)
        return rc;
    sop_store *s;
    sop_val key = {w->ctr_key, strlen(w->ctr_key)}, v, v2;
    if ((rc = sop_store_open(t, "ctr", &s)) || (rc = sop_get(s, &key, &v)))
        goto fail;
    uint64_t x;
    if (v.size != 8) {
        FAIL("counter %s has size %zu", w->ctr_key, v.size);
        rc = -EIO;
        goto fail;
    }
    memcpy(&x, v.data, 8);
    jitter(&w->rng);
    /* repeatable read inside the transaction */
    if ((rc = sop_get(s, &key, &v2)))
        goto fail;
    if (v2.size != 8 || memcmp(v2.data, &x, 8) != 0) {
        FAIL("counter %s changed between two reads of one transaction", w->ctr_key);
        rc = -EIO;
        goto fail;
    }
    x++;
    sop_val val = {&x, 8};
    if ((rc = sop_update(s, &key, &val)))
        goto fail;
    jitter(&w->rng);
    return sop_txn_commit(t);
fail:
    sop_txn_rollback(t);
    return rc;
}

static void *worker_main(void *arg)
{
    worker *w = arg;
    long done = 0;
    while (w->counter_phase ? done < w->incr : !atomic_load(w->stop)) {
        int from = (int)tu_rand_below(&w->rng, NACCT);
        int to = (int)((uint64_t)from + 1 + tu_rand_below(&w->rng, NACCT - 1)) % NACCT;
        int64_t want = 1 + (int64_t)tu_rand_below(&w->rng, 100);
        uint64_t attempts = 0;
        int rc;
        for (;;) {
            attempts++;
            rc = w->counter_phase ? increment_once(w) : transfer_once(w, from, to, want);
            if (rc != SOP_ECONFLICT)
                break;
            w->conflicts++;
            if (g_verbose)
                fprintf(stderr, "thread %u conflict: %s\n", w->id, sop_db_errmsg(g_db));
            if (attempts >= MAX_ATTEMPTS)
                break;
        }
        if (rc == SOP_ECONFLICT) {
            FAIL("thread %u: a transaction conflicted %" PRIu64 " times in a row (livelock?)",
                 w->id, attempts);
            break;
        }
        if (rc) {
            FAIL_RC(g_db, w->counter_phase ? "increment" : "transfer", rc);
            break;
        }
        w->commits++;
        done++;
        if (!w->counter_phase) {
            w->next_seq++;
            atomic_fetch_add(&g_sh->acked, 1);
        }
        if (attempts > 1)
            w->retried++;
        if (attempts > w->max_attempts)
            w->max_attempts = attempts;
    }
    return NULL;
}

/* ------------------------------------------------------------------ */
/* Churn: inserts, updates, removals, blobs                           */
/* ------------------------------------------------------------------ */

#define CHURN_KEYS 2000
#define CHURN_OPS 8 /* item operations per churn transaction */
#define CHURN_META "!meta"

static void churn_key(unsigned k, char out[16]) { snprintf(out, 16, "c/%05u", k % 100000u); }

static uint8_t churn_byte(unsigned k, uint32_t gen, size_t i)
{
    return (uint8_t)(k * 131u + gen * 17u + (uint32_t)i * 7u + (uint32_t)(i >> 8));
}

/* value: u32 key number, u32 generation, payload derived from both */
static size_t churn_encode(unsigned k, uint32_t gen, size_t len, uint8_t *v)
{
    put_u32(v, k);
    put_u32(v + 4, gen);
    for (size_t i = 8; i < len; i++)
        v[i] = churn_byte(k, gen, i);
    return len;
}

static int churn_valid(const sop_val *key, const sop_val *val)
{
    unsigned k;
    char expect[16];
    if (key->size != 7 || val->size < 8 || val->size > 400)
        return 0;
    const uint8_t *p = val->data;
    k = get_u32(p);
    uint32_t gen = get_u32(p + 4);
    if (k >= CHURN_KEYS)
        return 0;
    churn_key(k, expect);
    if (memcmp(key->data, expect, 7) != 0)
        return 0;
    for (size_t i = 8; i < val->size; i++)
        if (p[i] != churn_byte(k, gen, i))
            return 0;
    return 1;
}

typedef struct churner {
    pthread_t th;
    uint64_t rng;
    uint32_t gen;
    uint64_t commits, conflicts;
    atomic_int *stop;
} churner;

static int churn_once(churner *c)
{
    sop_txn *t;
    int rc = sop_txn_begin(g_db, g_nocheck && (c->gen & 3) == 3 ? SOP_TXN_NOCHECK : SOP_TXN_WRITE,
                           0, &t);
    if (rc)
        return rc;
    sop_store *s;
    uint64_t meta = 0;
    size_t len = 0;
    sop_val mk = {CHURN_META, strlen(CHURN_META)};
    if ((rc = sop_store_open(t, "churn", &s)) || (rc = sop_get_copy(s, &mk, &meta, 8, &len)))
        goto fail;
    if (len != 8) {
        FAIL("churn: meta has %zu bytes", len);
        rc = -EIO;
        goto fail;
    }
    c->gen++;
    for (int op = 0; op < CHURN_OPS; op++) {
        unsigned k = (unsigned)tu_rand_below(&c->rng, CHURN_KEYS);
        char kb[16];
        uint8_t vb[400];
        churn_key(k, kb);
        sop_val key = {kb, 7}, old;
        size_t vlen = 40 + (size_t)tu_rand_below(&c->rng, 361);
        sop_val val = {vb, churn_encode(k, c->gen, vlen, vb)};
        rc = sop_get(s, &key, &old);
        if (rc == 0) {
            if (!churn_valid(&key, &old)) {
                FAIL("churn: item %u is damaged", k);
                rc = -EIO;
                goto fail;
            }
            if (tu_rand_below(&c->rng, 2)) {
                rc = sop_remove(s, &key);
                meta--;
            } else {
                rc = sop_update(s, &key, &val);
            }
        } else if (rc == SOP_ENOTFOUND) {
            rc = sop_add(s, &key, &val);
            meta++;
        }
        if (rc)
            goto fail;
        jitter(&c->rng);
    }
    sop_val mv = {&meta, 8};
    if ((rc = sop_update(s, &mk, &mv)))
        goto fail;
    return sop_txn_commit(t);
fail:
    sop_txn_rollback(t);
    return rc;
}

static void *churn_main(void *arg)
{
    churner *c = arg;
    while (!atomic_load(c->stop)) {
        int rc;
        uint64_t attempts = 0;
        while ((rc = churn_once(c)) == SOP_ECONFLICT && ++attempts < MAX_ATTEMPTS) {
            c->conflicts++;
            if (g_verbose)
                fprintf(stderr, "churn conflict: %s\n", sop_db_errmsg(g_db));
        }
        if (rc) {
            FAIL_RC(g_db, "churn", rc);
            break;
        }
        c->commits++;
    }
    return NULL;
}

typedef struct churn_sum {
    uint64_t n, bad;
    uint64_t meta;
    int have_meta;
} churn_sum;

static int churn_fn(const sop_val *key, const sop_val *val, void *ctx)
{
    churn_sum *cs = ctx;
    cs->n++;
    if (key->size == strlen(CHURN_META) && !memcmp(key->data, CHURN_META, key->size)) {
        if (val->size == 8) {
            memcpy(&cs->meta, val->data, 8);
            cs->have_meta = 1;
        } else {
            cs->bad++;
        }
    } else if (!churn_valid(key, val)) {
        cs->bad++;
    }
    return 0;
}

/* ------------------------------------------------------------------ */
/* Auditing a snapshot                                                */
/* ------------------------------------------------------------------ */

typedef struct ledger_sum {
    int64_t net[NACCT];
    uint64_t n;
    uint64_t per_thread[2 * MAX_THREADS]; /* records per ledger id (T..2T-1: second process) */
    uint64_t max_seq1[2 * MAX_THREADS];   /* 1 + highest seq per ledger id */
    int bad;
} ledger_sum;

static int ledger_fn(const sop_val *key, const sop_val *val, void *ctx)
{
    ledger_sum *ls = ctx;
    ls->n++;
    if (key->size != 8 || val->size != LEDGER_VAL) {
        ls->bad++;
        return 0;
    }
    uint64_t x = ledger_key_decode(key->data);
    unsigned th = (unsigned)(x >> 48);
    uint64_t seq = x & ((1ull << 48) - 1);
    const uint8_t *p = val->data;
    uint32_t from = get_u32(p), to = get_u32(p + 4);
    int64_t amount = get_i64(p + 8);
    if (th >= 2 * g_threads || from >= NACCT || to >= NACCT || from == to || amount < 0 ||
        amount > 100) {
        ls->bad++;
        return 0;
    }
    ls->net[from] -= amount;
    ls->net[to] += amount;
    ls->per_thread[th]++;
    if (seq + 1 > ls->max_seq1[th])
        ls->max_seq1[th] = seq + 1;
    return 0;
}

typedef struct auditor {
    pthread_t th;
    uint64_t rng;
    uint64_t snapshots, last_read_n, last_write_n;
    uint64_t checks;    /* sop_db_check runs during the workload */
    uint64_t conflicts; /* read-only WRITE audits that failed validation */
    atomic_int *stop;
} auditor;

/* Audits one snapshot of @mode. Returns 0 when it ran (whatever it found),
 * else the engine error. @ls receives the ledger summary. */
static int audit_once(auditor *a, sop_txn_mode mode, int check_acks, ledger_sum *ls)
{
    uint64_t acked_before = atomic_load(&g_sh->acked);
    sop_txn *t;
    int rc = sop_txn_begin(g_db, mode, 0, &t);
    if (rc)
        return rc;
    uint64_t acked_after = atomic_load(&g_sh->acked);
    sop_store *acct, *led;
    sop_cursor *c = NULL;
    int64_t bal[NACCT];
    int order[NACCT];
    if ((rc = sop_store_open(t, "acct", &acct)) || (rc = sop_store_open(t, "ledger", &led)))
        goto out;

    /* 1. by key, in random order, with yields to stretch the snapshot */
    for (int i = 0; i < NACCT; i++)
        order[i] = i;
    for (int i = NACCT - 1; i > 0; i--) {
        int j = (int)tu_rand_below(&a->rng, (uint64_t)i + 1), x = order[i];
        order[i] = order[j];
        order[j] = x;
    }
    int64_t total = 0;
    for (int i = 0; i < NACCT; i++) {
        if ((rc = read_acct(acct, order[i], &bal[order[i]])))
            goto out;
        CHECK(bal[order[i]] >= 0, "snapshot: account %d is negative (%" PRId64 ")", order[i],
              bal[order[i]]);
        total += bal[order[i]];
        if (tu_rand_below(&a->rng, 8) == 0)
            sched_yield();
    }
    if (total != TOTAL) {
        atomic_fetch_add(&g_bad, 1);
        FAIL("snapshot %" PRIu64 " (mode %d): total %" PRId64 " != %" PRId64, a->snapshots,
             (int)mode, total, TOTAL);
    }

    /* 2. a cursor scan, forwards or backwards, agrees with the reads */
    int reverse = (int)(a->snapshots & 1);
    if ((rc = sop_cursor_open(acct, &c)))
        goto out;
    int n = 0;
    int64_t stotal = 0;
    rc = reverse ? sop_cursor_last(c) : sop_cursor_first(c);
    while (rc == 0) {
        sop_val k, v;
        if ((rc = sop_cursor_get(c, &k, &v)))
            goto out;
        int expect = reverse ? NACCT - 1 - n : n;
        char ek[9];
        int64_t b = 0;
        if (expect < 0 || expect >= NACCT)
            FAIL("cursor scan: more than %d accounts", NACCT);
        else if (k.size != 8 || memcmp(k.data, (acct_key(expect, ek), ek), 8) != 0)
            FAIL("cursor scan: item %d has key %.*s, expected %s", n, (int)k.size,
                 (const char *)k.data, ek);
        else if (acct_decode(expect, &v, &b))
            FAIL("cursor scan: account %d torn", expect);
        else if (b != bal[expect])
            FAIL("cursor scan: account %d = %" PRId64 " but get gave %" PRId64
                 " in the same snapshot",
                 expect, b, bal[expect]);
        stotal += b;
        n++;
        if (n > NACCT + 1)
            break;
        rc = reverse ? sop_cursor_prev(c) : sop_cursor_next(c);
    }
    if (rc != SOP_ENOTFOUND && rc != 0)
        goto out;
    rc = 0;
    CHECK(n == NACCT && stotal == TOTAL,
          "cursor scan (%s): %d accounts, total %" PRId64, reverse ? "reverse" : "forward", n,
          stotal);
    uint64_t cnt = 0;
    if ((rc = sop_store_count(acct, &cnt)))
        goto out;
    CHECK(cnt == NACCT, "sop_store_count(acct) = %" PRIu64, cnt);

    /* 3. the ledger explains every balance (cross-store atomicity) */
    memset(ls, 0, sizeof *ls);
    sop_range all = {0};
    all.reverse = reverse;
    if ((rc = sop_scan(led, &all, ledger_fn, ls)))
        goto out;
    if ((rc = sop_store_count(led, &cnt)))
        goto out;
    CHECK(!ls->bad, "ledger: %d malformed records", ls->bad);
    CHECK(cnt == ls->n, "ledger: sop_store_count %" PRIu64 " != scan %" PRIu64, cnt, ls->n);
    for (int i = 0; i < NACCT; i++)
        CHECK(bal[i] == INITIAL + ls->net[i],
              "account %d = %" PRId64 " but the ledger in the same snapshot says %" PRId64, i,
              bal[i], INITIAL + ls->net[i]);
    for (unsigned th = 0; th < 2 * g_threads; th++)
        CHECK(ls->per_thread[th] == ls->max_seq1[th],
              "ledger: ledger id %u has %" PRIu64 " records but seq up to %" PRIu64
              " (a gap: a commit missing from the snapshot)",
              th, ls->per_thread[th], ls->max_seq1[th]);

    /* 4. the churn store is intact and its counts agree */
    sop_store *ch;
    churn_sum cs = {0};
    if ((rc = sop_store_open(t, "churn", &ch)) || (rc = sop_scan(ch, &all, churn_fn, &cs)) ||
        (rc = sop_store_count(ch, &cnt)))
        goto out;
    CHECK(!cs.bad && cs.have_meta, "churn: %" PRIu64 " damaged items, meta %s", cs.bad,
          cs.have_meta ? "present" : "missing");
    CHECK(cnt == cs.n && cs.meta + 1 == cs.n,
          "churn: sop_store_count %" PRIu64 ", scan %" PRIu64 ", meta says %" PRIu64 " + 1", cnt,
          cs.n, cs.meta);

    /* 5. real time: acknowledged transfers are in, at most T in flight */
    if (check_acks) {
        CHECK(ls->n >= acked_before,
              "snapshot misses acknowledged commits: %" PRIu64 " records, %" PRIu64
              " acknowledged before it began",
              ls->n, acked_before);
        unsigned inflight = atomic_load(&g_inflight);
        CHECK(ls->n <= acked_after + inflight,
              "snapshot has %" PRIu64 " records, only %" PRIu64 " acknowledged + %u in flight",
              ls->n, acked_after, inflight);
    }
    /* READ snapshots see what is durable, WRITE ones what is applied (a
     * superset, storage.md): each kind moves forward, and a WRITE snapshot
     * is never behind an earlier READ one */
    if (mode == SOP_TXN_READ) {
        CHECK(ls->n >= a->last_read_n,
              "READ snapshots went back in time: %" PRIu64 " then %" PRIu64 " records",
              a->last_read_n, ls->n);
        a->last_read_n = ls->n;
    } else {
        CHECK(ls->n >= a->last_read_n && ls->n >= a->last_write_n,
              "a %s snapshot went back in time: %" PRIu64 " records after %" PRIu64
              " (READ) and %" PRIu64 " (WRITE)",
              mode == SOP_TXN_WRITE ? "WRITE" : "NOCHECK", ls->n, a->last_read_n,
              a->last_write_n);
        a->last_write_n = ls->n;
    }
    a->snapshots++;
out:
    if (c)
        sop_cursor_close(c);
    if (rc) {
        sop_txn_rollback(t);
        return rc;
    }
    /* a read-only WRITE transaction is validated too: SOP_ECONFLICT when a
     * commit changed what it read (its reads were consistent anyway) */
    rc = sop_txn_commit(t);
    if (rc == SOP_ECONFLICT && mode == SOP_TXN_WRITE) {
        a->conflicts++;
        rc = 0;
    }
    if (rc)
        FAIL_RC(g_db, "commit of a read-only audit", rc);
    return rc;
}

static void check_problem(const char *problem, void *ctx)
{
    (void)ctx;
    fprintf(stderr, "  check: %s\n", problem);
}

static void *auditor_main(void *arg)
{
    auditor *a = arg;
    ledger_sum *ls = malloc(sizeof *ls);
    if (!ls)
        abort();
    while (!atomic_load(a->stop)) {
        sop_txn_mode mode = (a->snapshots % 4 == 3) ? SOP_TXN_WRITE : SOP_TXN_READ;
        int rc = audit_once(a, mode, 1, ls);
        if (rc) {
            FAIL_RC(g_db, "audit", rc);
            break;
        }
        /* the other thread-safe calls, while the workers commit */
        if (a->snapshots % 8 == 0) {
            sop_db_stat st;
            rc = sop_db_stats(g_db, &st);
            CHECK(rc == 0, "sop_db_stats: %s", sop_err_name(rc));
        }
        if (a->snapshots % 32 == 16) {
            uint64_t problems = 0;
            rc = sop_db_check(g_db, check_problem, NULL, &problems);
            a->checks++;
            CHECK(rc == 0 && problems == 0,
                  "sop_db_check during the workload: %s, %" PRIu64 " problems", sop_err_name(rc),
                  problems);
        }
        if (g_small && a->snapshots % 32 == 0) {
            rc = sop_db_checkpoint(g_db);
            CHECK(rc == 0, "sop_db_checkpoint during the workload: %s [%s]", sop_err_name(rc),
                  sop_db_errmsg(g_db));
        }
    }
    free(ls);
    return NULL;
}

/* ------------------------------------------------------------------ */
/* Setup and verification                                             */
/* ------------------------------------------------------------------ */

static int open_db(sop_db **db)
{
    int rc = sop_db_open(g_path, &g_opts, db);
    if (rc) {
        FAIL_RC(*db, "sop_db_open", rc);
        sop_db_close(*db);
        *db = NULL;
    }
    return rc;
}

static int setup(void)
{
    sop_txn *t;
    int rc = sop_txn_begin(g_db, SOP_TXN_WRITE, 0, &t);
    if (rc)
        return rc;
    sop_store_options o;
    sop_store_options_init(&o);
    o.node_bytes = 1024; /* several leaves for 64 accounts */
    sop_store *acct, *led, *ctr, *ch;
    if ((rc = sop_store_create(t, "acct", &o, &acct)) ||
        (rc = sop_store_create(t, "ledger", NULL, &led)) ||
        (rc = sop_store_create(t, "ctr", NULL, &ctr)))
        goto fail;
    o.inline_max = 128; /* larger values go to blobs */
    uint64_t zero8 = 0;
    sop_val mk = {CHURN_META, strlen(CHURN_META)}, mv = {&zero8, 8};
    if ((rc = sop_store_create(t, "churn", &o, &ch)) || (rc = sop_add(ch, &mk, &mv)))
        goto fail;
    for (int i = 0; i < NACCT; i++) {
        char k[9];
        uint8_t v[ACCT_VAL];
        acct_key(i, k);
        acct_encode(i, INITIAL, v);
        sop_val key = {k, 8}, val = {v, ACCT_VAL};
        if ((rc = sop_add(acct, &key, &val)))
            goto fail;
    }
    uint64_t zero = 0;
    sop_val z = {&zero, 8}, k1 = {"counter", 7}, k2 = {"counter_nc", 10};
    if ((rc = sop_add(ctr, &k1, &z)) || (rc = sop_add(ctr, &k2, &z)))
        goto fail;
    return sop_txn_commit(t);
fail:
    sop_txn_rollback(t);
    return rc;
}

static void db_check(const char *when)
{
    uint64_t problems = 0;
    int rc = sop_db_check(g_db, check_problem, NULL, &problems);
    CHECK(rc == 0 && problems == 0, "sop_db_check %s: %s, %" PRIu64 " problems", when,
          sop_err_name(rc), problems);
}

static uint64_t read_counter(const char *name)
{
    sop_txn *t;
    sop_store *s;
    uint64_t x = 0;
    size_t len = 0;
    sop_val key = {name, strlen(name)};
    int rc = sop_txn_begin(g_db, SOP_TXN_READ, 0, &t);
    if (rc) {
        FAIL_RC(g_db, "begin", rc);
        return UINT64_MAX;
    }
    if ((rc = sop_store_open(t, "ctr", &s)) || (rc = sop_get_copy(s, &key, &x, 8, &len)))
        FAIL_RC(g_db, "reading a counter", rc);
    else
        CHECK(len == 8, "counter %s has %zu bytes", name, len);
    sop_txn_rollback(t);
    return rc ? UINT64_MAX : x;
}

/* Full verification of the database at rest. */
static void verify_at_rest(const char *when, const worker *ws, uint64_t expect_ctr,
                           uint64_t expect_ctr_nc)
{
    auditor a = {.rng = tu_seed() ^ 0x5eed};
    ledger_sum *ls = malloc(sizeof *ls);
    if (!ls)
        abort();
    uint64_t bad_before = atomic_load(&g_bad);
    for (int m = 0; m < 3; m++) {
        sop_txn_mode mode = m == 0 ? SOP_TXN_READ : m == 1 ? SOP_TXN_WRITE : SOP_TXN_NOCHECK;
        int rc = audit_once(&a, mode, 0, ls);
        if (rc) {
            FAIL_RC(g_db, when, rc);
            continue;
        }
        for (unsigned th = 0; th < 2 * g_threads; th++) {
            uint64_t want = th < g_threads ? ws[th].next_seq
                                           : atomic_load(&g_sh->next_seq[th - g_threads]);
            CHECK(ls->per_thread[th] == want,
                  "%s: ledger has %" PRIu64 " records of ledger id %u, which committed %" PRIu64,
                  when, ls->per_thread[th], th, want);
        }
    }
    CHECK(atomic_load(&g_bad) == bad_before, "%s: wrong total", when);
    free(ls);
    uint64_t c1 = read_counter("counter"), c2 = read_counter("counter_nc");
    CHECK(c1 == expect_ctr, "%s: counter = %" PRIu64 ", expected %" PRIu64, when, c1, expect_ctr);
    CHECK(c2 == expect_ctr_nc, "%s: counter_nc = %" PRIu64 ", expected %" PRIu64, when, c2,
          expect_ctr_nc);
    db_check(when);
}

/* ------------------------------------------------------------------ */
/* Phases                                                             */
/* ------------------------------------------------------------------ */

typedef struct totals {
    uint64_t commits, conflicts, retried, max_attempts;
} totals;

static void start_workers(worker *ws, int counter_phase, const char *key, long incr,
                          int mixed_nocheck, sop_txn_mode base)
{
    atomic_store(&g_stop_workers, 0);
    for (unsigned i = 0; i < g_threads; i++) {
        worker *w = &ws[i];
        w->commits = w->conflicts = w->retried = w->max_attempts = 0;
        w->counter_phase = counter_phase;
        w->ctr_key = key;
        w->incr = incr;
        w->mode = (mixed_nocheck && (i & 1)) ? SOP_TXN_NOCHECK : base;
        w->stop = &g_stop_workers;
        int e = pthread_create(&w->th, NULL, worker_main, w);
        if (e) {
            fprintf(stderr, "bank: pthread_create: %s\n", strerror(e));
            exit(2);
        }
    }
}

/* Worker i gets ledger id @first + i; its seed depends on the ledger id. */
static void init_workers(worker *ws, unsigned first, unsigned seed)
{
    memset(ws, 0, MAX_THREADS * sizeof *ws);
    for (unsigned i = 0; i < g_threads; i++) {
        ws[i].id = first + i;
        ws[i].rng = (uint64_t)seed * 0x100000001b3ull + first + i + 1;
    }
}

static totals join_workers(worker *ws)
{
    totals t = {0};
    for (unsigned i = 0; i < g_threads; i++) {
        pthread_join(ws[i].th, NULL);
        t.commits += ws[i].commits;
        t.conflicts += ws[i].conflicts;
        t.retried += ws[i].retried;
        if (ws[i].max_attempts > t.max_attempts)
            t.max_attempts = ws[i].max_attempts;
    }
    return t;
}

static void sleep_s(long s)
{
    struct timespec ts = {s, 0};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

static void report_phase(const char *name, const totals *t, double secs)
{
    printf("bank[%s]: %" PRIu64 " commits (%.0f/s), %" PRIu64 " conflicts, %" PRIu64
           " retried txns, max %" PRIu64 " attempts, %.1fs\n",
           name, t->commits, secs > 0 ? (double)t->commits / secs : 0.0, t->conflicts,
           t->retried, t->max_attempts, secs);
    fflush(stdout);
}

/* ------------------------------------------------------------------ */
/* The second process                                                 */
/* ------------------------------------------------------------------ */

/* What a second process opening the database must get (SOP_BANK_PROCS):
 *   shared - (default) SOP_OK: several processes commit to one database
 *            (the shared area of LOCK, core/src/shared.h). The second
 *            process then runs phases A-C (T transfer threads with ledger
 *            ids T..2T-1, then T incrementers) and an auditor concurrently
 *            with this process, and every invariant must hold across both;
 *   busy   - SOP_EBUSY: one process at a time (a VFS without shm_map);
 *   auto   - either, checked as above;
 *   none   - no second process while this one has the database open (to
 *            tell single-process failures from multi-process ones). */
enum { PROCS_AUTO, PROCS_BUSY, PROCS_SHARED, PROCS_NONE };
static int g_procs = PROCS_SHARED;

static int child_verdict_ok(int opened, const char *when)
{
    printf("bank: second process %s: %s\n", when,
           opened ? "opened the database" : "refused with SOP_EBUSY");
    if (opened && g_procs == PROCS_BUSY) {
        FAIL("second process %s: sop_db_open gave SOP_OK, expected SOP_EBUSY (SOP_BANK_PROCS=busy)",
             when);
        return 0;
    }
    if (!opened && g_procs == PROCS_SHARED) {
        FAIL("second process %s: refused with SOP_EBUSY (SOP_BANK_PROCS=shared)", when);
        return 0;
    }
    return 1;
}

/* fork(); the child starts with clean failure counters (its exit status
 * reports its own failures only). */
static pid_t fork_flushed(void)
{
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0)
        FAIL("fork: %s", strerror(errno));
    if (pid == 0) {
        atomic_store(&g_fail, 0);
        atomic_store(&g_bad, 0);
    }
    return pid;
}

static int wait_child(pid_t pid)
{
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + (WIFSIGNALED(st) ? WTERMSIG(st) : 0);
}

/* Waits until this process has moved g_sh->phase to @ph or further;
 * returns the phase. */
static int wait_phase(int ph)
{
    int cur;
    while ((cur = atomic_load(&g_sh->phase)) < ph) {
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    return cur;
}

/* In the child: an auditor until PH_DONE, and phases A-C with T worker
 * threads (ledger ids T..2T-1) as this process moves g_sh->phase. Exit
 * status: 0 ok, 1 failures. */
static void child_workload(void)
{
    sop_db *db = NULL;
    g_opts.map_reads = 1; /* the parent reads with read(), this process through maps */
    int rc = sop_db_open(g_path, &g_opts, &db);
    if (rc == SOP_EBUSY) {
        sop_db_close(db);
        atomic_store(&g_sh->state, CHILD_REFUSED);
        _exit(0);
    }
    if (rc) {
        fprintf(stderr, "FAIL second process: sop_db_open: %s [%s]\n", sop_err_name(rc),
                db ? sop_db_errmsg(db) : "");
        sop_db_close(db);
        atomic_store(&g_sh->state, CHILD_FAILED);
        _exit(1);
    }
    g_db = db;
    sop_db_stat st0;
    rc = sop_db_stats(db, &st0);
    CHECK(rc == 0, "second process: sop_db_stats: %s", sop_err_name(rc));
    atomic_store(&g_inflight, 2 * g_threads);
    worker ws[MAX_THREADS];
    init_workers(ws, g_threads, tu_seed());
    auditor a = {.rng = (uint64_t)tu_seed() * 37 + 11, .stop = &g_stop_auditor};
    pthread_t at;
    if (pthread_create(&at, NULL, auditor_main, &a)) {
        fprintf(stderr, "FAIL second process: pthread_create\n");
        atomic_store(&g_sh->state, CHILD_FAILED);
        _exit(1);
    }
    atomic_store(&g_sh->state, CHILD_RUNNING);

    uint64_t conflicts = 0;
    for (int ph = PH_WRITE; ph < PH_DONE; ph++) {
        int cur = wait_phase(ph);
        if (cur == PH_DONE)
            break; /* this process gave up */
        if (cur > ph)
            continue; /* a transfer phase of 0 seconds */
        uint64_t t0 = now_ns();
        if (ph == PH_WRITE || ph == PH_NOCHECK) {
            start_workers(ws, 0, NULL, 0, ph == PH_NOCHECK && g_nocheck, SOP_TXN_WRITE);
            wait_phase(ph + 1);
            atomic_store(&g_stop_workers, 1);
        } else {
            start_workers(ws, 1, ctr_keys[ph - PH_INCR_WRITE], g_incr, 0,
                          ph == PH_INCR_NOCHECK && g_nocheck ? SOP_TXN_NOCHECK : SOP_TXN_WRITE);
        }
        totals t = join_workers(ws);
        xphase *x = &g_sh->ph[ph - PH_WRITE];
        atomic_store(&x->commits, t.commits);
        atomic_store(&x->conflicts, t.conflicts);
        atomic_store(&x->retried, t.retried);
        atomic_store(&x->max_attempts, t.max_attempts);
        atomic_store(&x->ns, now_ns() - t0);
        conflicts += t.conflicts;
        if (ph >= PH_INCR_WRITE)
            atomic_store(&g_sh->counted, ph - PH_INCR_WRITE + 1);
    }
    wait_phase(PH_DONE);
    atomic_store(&g_stop_auditor, 1);
    pthread_join(at, NULL);
    conflicts += a.conflicts;
    for (unsigned i = 0; i < g_threads; i++)
        atomic_store(&g_sh->next_seq[i], ws[i].next_seq);
    atomic_store(&g_sh->snapshots, a.snapshots);
    atomic_store(&g_sh->checks, a.checks);
    atomic_store(&g_sh->audit_conflicts, a.conflicts);

    /* the engine of this process counted the conflicts its threads saw */
    sop_db_stat st;
    rc = sop_db_stats(db, &st);
    CHECK(rc == 0 && st.conflicts - st0.conflicts == conflicts,
          "second process: sop_db_stats: %" PRIu64 " conflicts, the threads saw %" PRIu64,
          st.conflicts - st0.conflicts, conflicts);
    db_check("in the second process");
    rc = sop_db_close(db);
    CHECK(rc == 0, "second process: sop_db_close: %s", sop_err_name(rc));
    atomic_store(&g_sh->bad, atomic_load(&g_bad));
    _exit(atomic_load(&g_fail) || atomic_load(&g_bad) ? 1 : 0);
}

/* Starts the second process before any thread exists here; returns its pid
 * once it has opened the database (CHILD_RUNNING) or has been refused. */
static pid_t start_second_process(int *running)
{
    *running = 0;
    atomic_store(&g_sh->state, CHILD_STARTING);
    atomic_store(&g_sh->phase, PH_IDLE);
    atomic_store(&g_sh->counted, 0);
    pid_t pid = fork_flushed();
    if (pid == 0)
        child_workload();
    if (pid < 0)
        return pid;
    uint64_t t0 = now_ns();
    while (atomic_load(&g_sh->state) == CHILD_STARTING && now_ns() - t0 < 60000000000ull) {
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    int state = atomic_load(&g_sh->state);
    if (state == CHILD_REFUSED) {
        int code = wait_child(pid);
        CHECK(code == 0, "second process exited with %d", code);
        child_verdict_ok(0, "during the workload");
        return -1;
    }
    if (state != CHILD_RUNNING) {
        FAIL("second process could not open the database (state %d)", state);
        atomic_store(&g_sh->phase, PH_DONE);
        wait_child(pid);
        return -1;
    }
    child_verdict_ok(1, "during the workload");
    *running = 1;
    return pid;
}

/* This process: waits until the second one has finished @n counter phases.
 * Returns 0, or -1 (and reaps it, *code = its exit status) if it exited. */
static int wait_counted(pid_t pid, int n, int *code)
{
    while (atomic_load(&g_sh->counted) < n) {
        int st = 0;
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid || (r < 0 && errno != EINTR)) {
            *code = r < 0                 ? 255
                    : WIFEXITED(st)       ? WEXITSTATUS(st)
                                          : 128 + (WIFSIGNALED(st) ? WTERMSIG(st) : 0);
            return -1;
        }
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    return 0;
}

/* While this process holds the database and no thread runs here: a second
 * process either is refused, or opens it and sees a consistent, clean
 * database. */
static void second_process_at_rest(const char *when)
{
    pid_t pid = fork_flushed();
    if (pid < 0)
        return;
    if (pid == 0) {
        sop_db *db2 = NULL;
        int rc = sop_db_open(g_path, &g_opts, &db2);
        if (rc == SOP_EBUSY) {
            sop_db_close(db2);
            _exit(10);
        }
        if (rc) {
            fprintf(stderr, "FAIL second process %s: sop_db_open: %s [%s]\n", when,
                    sop_err_name(rc), db2 ? sop_db_errmsg(db2) : "");
            _exit(1);
        }
        g_db = db2;
        auditor a = {.rng = 99};
        ledger_sum *ls = malloc(sizeof *ls);
        if (!ls)
            _exit(1);
        rc = audit_once(&a, SOP_TXN_READ, 0, ls);
        CHECK(rc == 0, "second process %s: audit: %s", when, sop_err_name(rc));
        free(ls);
        db_check(when);
        rc = sop_db_close(db2);
        CHECK(rc == 0, "second process %s: sop_db_close: %s", when, sop_err_name(rc));
        _exit(atomic_load(&g_fail) || atomic_load(&g_bad) ? 1 : 0);
    }
    int code = wait_child(pid);
    if (code == 10)
        child_verdict_ok(0, when);
    else if (code == 0)
        child_verdict_ok(1, when);
    else
        FAIL("second process %s failed (exit %d)", when, code);
}

/* After close, another process must be able to open and verify it. */
static void second_process_after_close(void)
{
    pid_t pid = fork_flushed();
    if (pid < 0)
        return;
    if (pid == 0) {
        sop_db *db2 = NULL;
        int rc = sop_db_open(g_path, &g_opts, &db2);
        if (rc) {
            fprintf(stderr, "FAIL second process after close: sop_db_open: %s [%s]\n",
                    sop_err_name(rc), db2 ? sop_db_errmsg(db2) : "");
            _exit(1);
        }
        g_db = db2;
        auditor a = {.rng = 98};
        ledger_sum *ls = malloc(sizeof *ls);
        if (!ls)
            _exit(1);
        rc = audit_once(&a, SOP_TXN_READ, 0, ls);
        CHECK(rc == 0, "second process after close: audit: %s", sop_err_name(rc));
        free(ls);
        db_check("in a second process after close");
        rc = sop_db_close(db2);
        CHECK(rc == 0, "second process after close: sop_db_close: %s", sop_err_name(rc));
        _exit(atomic_load(&g_fail) || atomic_load(&g_bad) ? 1 : 0);
    }
    int code = wait_child(pid);
    CHECK(code == 0, "a second process could not use the database after close (exit %d)", code);
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0); /* keep the order with stderr */
    g_threads = (unsigned)env_long("SOP_BANK_THREADS", 4, 1, MAX_THREADS);
    long seconds = env_long("SOP_BANK_SECONDS", 5, 0, 86400);
    long incr = env_long("SOP_BANK_INCR", 250, 0, 10000000);
    g_incr = incr;
    const char *sync = getenv("SOP_BANK_SYNC");
    const char *procs = getenv("SOP_BANK_PROCS");
    g_verbose = (int)env_long("SOP_BANK_VERBOSE", 0, 0, 1);
    g_small = (int)env_long("SOP_BANK_SMALL", 1, 0, 1);
    g_nocheck = (int)env_long("SOP_BANK_NOCHECK", 1, 0, 1);
    if (procs && !strcmp(procs, "busy"))
        g_procs = PROCS_BUSY;
    else if (procs && !strcmp(procs, "shared"))
        g_procs = PROCS_SHARED;
    else if (procs && !strcmp(procs, "none"))
        g_procs = PROCS_NONE;
    else if (procs && !strcmp(procs, "auto"))
        g_procs = PROCS_AUTO;
    else if (procs && *procs) {
        fprintf(stderr, "bank: SOP_BANK_PROCS must be auto, busy, shared or none\n");
        return 2;
    }
    atomic_store(&g_inflight, g_threads);
    unsigned seed = tu_seed();
    g_path = tu_tmpdir("bank");
    printf("bank: %u threads per process, %lds per phase, %ld increments, seed %u, %s\n",
           g_threads, seconds, incr, seed, g_path);

    g_sh = mmap(NULL, sizeof *g_sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (g_sh == MAP_FAILED) {
        perror("bank: mmap");
        return 2;
    }
    memset(g_sh, 0, sizeof *g_sh);

    sop_db_options_init(&g_opts);
    g_opts.sync = (sync && !strcmp(sync, "none")) ? SOP_SYNC_NONE : SOP_SYNC_FULL;
    /* small figures so checkpoints, segment switches, compaction and cache
     * evictions happen while transactions run */
    if (g_small) {
        g_opts.segment_bytes = 1u << 20;
        g_opts.checkpoint_bytes = 2u << 20;
        g_opts.cache_bytes = 256u << 10;
    }
    if (open_db(&g_db))
        return 1;
    int rc = setup();
    if (rc) {
        FAIL_RC(g_db, "setup", rc);
        return 1;
    }
    sop_db_stat st0;
    sop_db_stats(g_db, &st0);

    /* two processes: forked before any thread exists here */
    int child_running = 0;
    pid_t child = -1;
    if (g_procs != PROCS_NONE) {
        second_process_at_rest("before the workload");
        child = start_second_process(&child_running);
    }
    if (child_running)
        atomic_store(&g_inflight, 2 * g_threads);
    unsigned nprocs = child_running ? 2 : 1; /* processes running phases A-C */
    int child_code = -1;                      /* its exit status once reaped */

    worker ws[MAX_THREADS];
    init_workers(ws, 0, seed);
    auditor au = {.rng = (uint64_t)seed ^ 0xa0d17ull, .stop = &g_stop_auditor};
    pthread_t ath;
    if (pthread_create(&ath, NULL, auditor_main, &au) != 0) {
        fprintf(stderr, "bank: pthread_create failed\n");
        atomic_store(&g_sh->phase, PH_DONE);
        return 2;
    }

    totals all = {0};
    churner ch = {.rng = (uint64_t)seed ^ 0xc4054ull, .stop = &g_stop_workers};
    for (int phase = 0; phase < 2; phase++) {
        uint64_t t0 = now_ns();
        atomic_store(&g_sh->phase, PH_WRITE + phase);
        start_workers(ws, 0, NULL, 0, phase == 1 && g_nocheck, SOP_TXN_WRITE);
        if (pthread_create(&ch.th, NULL, churn_main, &ch) != 0) {
            fprintf(stderr, "bank: pthread_create failed\n");
            atomic_store(&g_sh->phase, PH_DONE);
            return 2;
        }
        sleep_s(seconds);
        atomic_store(&g_stop_workers, 1);
        totals t = join_workers(ws);
        pthread_join(ch.th, NULL);
        report_phase(phase_names[phase], &t, (double)(now_ns() - t0) / 1e9);
        all.commits += t.commits;
        all.conflicts += t.conflicts;
    }
    printf("bank[churn]: %" PRIu64 " commits, %" PRIu64 " conflicts\n", ch.commits,
           ch.conflicts);
    all.commits += ch.commits;
    all.conflicts += ch.conflicts;

    /* lost update: every increment of both processes must count */
    uint64_t expect = (uint64_t)nprocs * (uint64_t)g_threads * (uint64_t)incr;
    for (int v = 0; v < 2; v++) {
        uint64_t t0 = now_ns();
        atomic_store(&g_sh->phase, PH_INCR_WRITE + v);
        start_workers(ws, 1, ctr_keys[v], incr, 0,
                      v && g_nocheck ? SOP_TXN_NOCHECK : SOP_TXN_WRITE);
        totals t = join_workers(ws);
        report_phase(phase_names[2 + v], &t, (double)(now_ns() - t0) / 1e9);
        all.commits += t.commits;
        all.conflicts += t.conflicts;
        CHECK(t.commits == (uint64_t)g_threads * (uint64_t)incr, "%s: %" PRIu64 " commits",
              phase_names[2 + v], t.commits);
        if (child_running && child_code < 0 && wait_counted(child, v + 1, &child_code))
            FAIL("second process exited during %s (exit %d)", phase_names[2 + v], child_code);
        uint64_t got = read_counter(ctr_keys[v]);
        CHECK(got == expect,
              "lost update (%s): counter = %" PRIu64 ", expected %u x %u x %ld = %" PRIu64,
              phase_names[2 + v], got, nprocs, g_threads, incr, expect);
    }

    uint64_t child_commits = 0, child_conflicts = 0, child_snapshots = 0, child_bad = 0;
    if (child_running) {
        atomic_store(&g_sh->phase, PH_DONE);
        if (child_code < 0)
            child_code = wait_child(child);
        CHECK(child_code == 0, "second process failed (exit %d)", child_code);
        uint64_t transfers = 0;
        for (int ph = 0; ph < NPHASES; ph++) {
            xphase *x = &g_sh->ph[ph];
            totals t = {atomic_load(&x->commits), atomic_load(&x->conflicts),
                        atomic_load(&x->retried), atomic_load(&x->max_attempts)};
            char name[64];
            snprintf(name, sizeof name, "process 2 %s", phase_names[ph]);
            report_phase(name, &t, (double)atomic_load(&x->ns) / 1e9);
            child_commits += t.commits;
            child_conflicts += t.conflicts;
            if (ph < 2)
                transfers += t.commits;
            else
                CHECK(t.commits == (uint64_t)g_threads * (uint64_t)incr,
                      "process 2 %s: %" PRIu64 " commits", phase_names[ph], t.commits);
        }
        child_conflicts += atomic_load(&g_sh->audit_conflicts);
        child_snapshots = atomic_load(&g_sh->snapshots);
        child_bad = atomic_load(&g_sh->bad);
        uint64_t child_ledger = 0;
        for (unsigned i = 0; i < g_threads; i++)
            child_ledger += atomic_load(&g_sh->next_seq[i]);
        CHECK(child_ledger == transfers,
              "second process: %" PRIu64 " ledger records for %" PRIu64 " transfers",
              child_ledger, transfers);
        CHECK(seconds == 0 || transfers > 0, "second process transferred nothing");
        atomic_store(&g_inflight, g_threads);
    }

    atomic_store(&g_stop_auditor, 1);
    pthread_join(ath, NULL);
    all.conflicts += au.conflicts;

    /* the engine counted the same conflicts this process saw */
    sop_db_stat st;
    sop_db_stats(g_db, &st);
    CHECK(st.conflicts - st0.conflicts == all.conflicts,
          "sop_db_stats: %" PRIu64 " conflicts, the workers saw %" PRIu64,
          st.conflicts - st0.conflicts, all.conflicts);
    CHECK(st.commits - st0.commits >= all.commits,
          "sop_db_stats: %" PRIu64 " commits, the workers saw %" PRIu64, st.commits - st0.commits,
          all.commits);
    printf("bank: engine stats: %" PRIu64 " syncs, %" PRIu64 " checkpoints, %" PRIu64
           " segments, cache %" PRIu64 " hits / %" PRIu64 " misses\n",
           st.syncs, st.checkpoints, st.segments, st.cache_hits, st.cache_misses);

    verify_at_rest("after the workload", ws, expect, expect);
    if (g_procs != PROCS_NONE)
        second_process_at_rest("after the workload");

    /* a second open in this process: refused, or a working second handle */
    sop_db *db2 = NULL;
    rc = g_procs != PROCS_NONE ? sop_db_open(g_path, &g_opts, &db2) : SOP_EBUSY;
    if (rc == 0) {
        child_verdict_ok(1, "(a second handle in this process)");
        sop_db *keep = g_db;
        g_db = db2;
        verify_at_rest("through a second handle", ws, expect, expect);
        g_db = keep;
        rc = sop_db_close(db2);
        CHECK(rc == 0, "sop_db_close of the second handle: %s", sop_err_name(rc));
        verify_at_rest("after closing the second handle", ws, expect, expect);
    } else {
        CHECK(rc == SOP_EBUSY, "second sop_db_open in this process: %s", sop_err_name(rc));
        if (rc == SOP_EBUSY && g_procs != PROCS_NONE)
            child_verdict_ok(0, "(a second handle in this process)");
        sop_db_close(db2);
    }

    rc = sop_db_close(g_db);
    CHECK(rc == 0, "sop_db_close: %s", sop_err_name(rc));
    g_db = NULL;
    if (open_db(&g_db) == 0) {
        verify_at_rest("after reopen", ws, expect, expect);
        rc = sop_db_close(g_db);
        CHECK(rc == 0, "sop_db_close after reopen: %s", sop_err_name(rc));
        g_db = NULL;
    }
    second_process_after_close();

    uint64_t fails = atomic_load(&g_fail), bad = atomic_load(&g_bad);
    printf("bank: %" PRIu64 " commits, %" PRIu64 " conflicts, %" PRIu64 " snapshots, %" PRIu64
           " bad totals\n",
           all.commits + child_commits, all.conflicts + child_conflicts,
           au.snapshots + child_snapshots, bad + child_bad);
    printf("bank: process 1: %" PRIu64 " commits, %" PRIu64 " conflicts, %" PRIu64
           " snapshots, %" PRIu64 " integrity checks during the workload, %" PRIu64
           " read-only WRITE audits conflicted\n",
           all.commits, all.conflicts, au.snapshots, au.checks, au.conflicts);
    if (child_running)
        printf("bank: process 2: %" PRIu64 " commits, %" PRIu64 " conflicts, %" PRIu64
               " snapshots, %" PRIu64 " integrity checks during the workload, %" PRIu64
               " read-only WRITE audits conflicted\n",
               child_commits, child_conflicts, child_snapshots,
               (uint64_t)atomic_load(&g_sh->checks), (uint64_t)atomic_load(&g_sh->audit_conflicts));
    if (fails)
        printf("bank: %" PRIu64 " invariant failures (see stderr)\n", fails);
    munmap(g_sh, sizeof *g_sh);
    return (bad || child_bad || fails) ? 1 : 0;
}
