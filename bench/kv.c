/*
 * kv.c - `sop-bench kv`: db_bench-shaped key-value workloads run side by
 * side on sop, LMDB and SQLite, with the same data, in the same program.
 *
 * Each engine runs in its own forked child (so its peak RSS is its own) in
 * its own directory; the child streams results to the parent over a pipe,
 * so a crash of one engine costs only that engine's remaining rows.
 *
 * Workloads (N = --n, B = --batch, default 1,000):
 *   fillseq     N puts in key order into a new database, B puts per txn
 *   fillrandom  N puts in a seeded random order into a new database, B/txn
 *               (this database is kept for the read workloads; its size on
 *               disk, closed, is the bytes_on_disk figure)
 *   readrandom  N point reads of random existing keys, B reads per read txn
 *   readseq     every item in key order, one read txn
 *   scan100     N/10 seeks to a random existing key, each reading 100 items
 *               in order, B seeks per read txn
 *   readwrite   --threads threads, N ops in all, 90% reads / 10% writes:
 *               each thread repeats rounds of 90 point reads (one read txn)
 *               then 10 upserts of random existing keys (one durable write
 *               txn, retried on conflict)
 *   fillsync    min(N/100, 5000) puts (--sync-n) into a new database, one
 *               put per durable txn (skipped by the -nosync variants)
 */
#include "kv.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench_util.h"
#include "child.h"
#include "options.h"

/* ------------------------------------------------------------------ */
/* Shared data and errors                                             */
/* ------------------------------------------------------------------ */

unsigned char kv_valbuf[KV_VALBUF_LEN + KV_VAL_LEN];

void kv_data_init(uint64_t seed)
{
    bench_rng r;
    bench_rng_seed(&r, seed ^ 0x76616c7565ull);
    for (size_t i = 0; i < sizeof kv_valbuf; i += 8) {
        uint64_t x = bench_rng_next(&r);
        size_t m = sizeof kv_valbuf - i < 8 ? sizeof kv_valbuf - i : 8;
        memcpy(kv_valbuf + i, &x, m);
    }
}

int64_t kv_key_id(const void *k, size_t len)
{
    if (len != KV_KEY_LEN)
        return -1;
    const unsigned char *p = k;
    int64_t id = 0;
    for (size_t i = 0; i < KV_KEY_LEN; i++) {
        if (p[i] < '0' || p[i] > '9')
            return -1;
        id = id * 10 + (p[i] - '0');
    }
    return id;
}

static _Thread_local char kv_errbuf[256];

void kv_set_err(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(kv_errbuf, sizeof kv_errbuf, fmt, ap);
    va_end(ap);
}

const char *kv_err(void)
{
    return kv_errbuf[0] ? kv_errbuf : "unknown error";
}

/* ------------------------------------------------------------------ */
/* Workloads, engines, options                                        */
/* ------------------------------------------------------------------ */

enum { W_FILLSEQ, W_FILLRANDOM, W_READRANDOM, W_READSEQ, W_SCAN, W_READWRITE, W_FILLSYNC, W_COUNT };

static const char *const wl_names[W_COUNT] = {"fillseq",  "fillrandom", "readrandom", "readseq",
                                              "scan100",  "readwrite",  "fillsync"};

#define SCAN_LEN 100
#define MIX_READS 90
#define MIX_WRITES 10

static const kv_engine *const all_engines[] = {
#ifndef SOP_BENCH_NO_SOP
    &kv_engine_sop,    &kv_engine_sop_nosync,
#endif
    &kv_engine_lmdb,   &kv_engine_lmdb_nosync, &kv_engine_sqlite, &kv_engine_sqlite_nosync,
};
#define N_ALL_ENGINES (sizeof all_engines / sizeof all_engines[0])

#ifndef SOP_BENCH_NO_SOP
#define DEFAULT_ENGINES "sop,lmdb,sqlite"
#else
#define DEFAULT_ENGINES "lmdb,sqlite"
#endif

typedef struct kv_opts {
    uint64_t n, seed, threads, batch, sync_n;
    bench_run_opts run;
    const kv_engine *engines[N_ALL_ENGINES];
    size_t nengines;
    unsigned workloads; /* bit per W_* */
} kv_opts;

static int is_sop(const kv_engine *e)
{
    return strncmp(e->name, "sop", 3) == 0;
}

/* ------------------------------------------------------------------ */
/* Child -> parent messages                                           */
/* ------------------------------------------------------------------ */

/* The stages are the workloads (W_*); an error names the workload in
 * progress (fillseq, 0, before any). */
enum { MSG_RESULT = BENCH_MSG_USER, MSG_FOOT };

typedef struct kv_msg {
    bench_msg h; /* stage: the workload; text: the note */
    int ok;
    uint32_t ops_per_txn, threads;
    uint64_t n, retries, bytes, base_rss_kb;
    double ops_per_s, secs;
    char sync[64];
} kv_msg;

static void send_result(int wl, uint64_t n, double secs, uint32_t per_txn, uint32_t threads,
                        const char *sync, const kv_stat *st, int ok, const char *note)
{
    kv_msg m = {.h = {.kind = MSG_RESULT, .stage = wl},
                .ok = ok,
                .ops_per_txn = per_txn,
                .threads = threads,
                .n = n,
                .retries = st ? st->retries : 0,
                .secs = secs};
    m.ops_per_s = secs > 0 ? (double)n / secs : 0;
    snprintf(m.sync, sizeof m.sync, "%s", sync);
    snprintf(m.h.text, sizeof m.h.text, "%s", note ? note : "");
    bench_child_send(&m);
}

/* ------------------------------------------------------------------ */
/* The child: one engine, every workload                              */
/* ------------------------------------------------------------------ */

typedef struct child_ctx {
    const kv_opts *o;
    const kv_engine *e;
    char root[4096];
    uint32_t *perm;  /* random permutation of 0..n-1 */
    uint32_t *rids;  /* n uniform random ids (readrandom) */
    uint32_t *sids;  /* n/10 uniform random ids (scan100) */
    uint32_t *seq;   /* batch-sized buffer for fillseq */
} child_ctx;

static void path_of(const child_ctx *c, const char *leaf, char *out, size_t cap)
{
    snprintf(out, cap, "%s/%s", c->root, leaf);
}

static int open_db(const child_ctx *c, const char *leaf, kv_sync sync, kv_db **d, kv_sess **s,
                   char *desc, size_t desclen)
{
    char path[4200];
    path_of(c, leaf, path, sizeof path);
    if (c->e->open(c->e, path, sync, c->o->n, d, desc, desclen) != 0) {
        bench_child_error("open", kv_err());
        return -1;
    }
    if (s && c->e->sess_open(*d, s) != 0) {
        bench_child_error("session", kv_err());
        c->e->close(*d);
        return -1;
    }
    return 0;
}

static void fail_op(const char *op) { bench_child_error(op, kv_err()); }

/* Fills a new database at @p leaf with ids (or 0..n-1 when ids is NULL). */
/* The dirty pages of earlier phases (and engines) are written back before
 * a measurement, not inside it: on ext4 a sync that commits the journal also
 * flushes other files' pending data. */
static void flush_dirty(void) { sync(); }

static int run_fill(child_ctx *c, int wl, const char *leaf, const uint32_t *ids, uint64_t n,
                    uint64_t per_txn, kv_sync sync, int report, uint64_t *bytes)
{
    const kv_engine *e = c->e;
    kv_db *d;
    kv_sess *s;
    char desc[64];
    char path[4200];
    path_of(c, leaf, path, sizeof path);
    bench_rmtree(path);
    if (open_db(c, leaf, sync, &d, &s, desc, sizeof desc) != 0)
        return -1;
    kv_stat st = {0};
    int rc = 0;
    flush_dirty();
    double t0 = bench_now();
    for (uint64_t i = 0; i < n && rc == 0; i += per_txn) {
        size_t cnt = (size_t)(n - i < per_txn ? n - i : per_txn);
        const uint32_t *batch = ids ? ids + i : c->seq;
        if (!ids)
            for (size_t j = 0; j < cnt; j++)
                c->seq[j] = (uint32_t)(i + j);
        rc = e->put(s, batch, cnt, 0, &st);
    }
    double secs = bench_now() - t0;
    if (rc != 0)
        fail_op("put");
    e->sess_close(s);
    e->close(d);
    if (rc == 0 && report)
        send_result(wl, n, secs, (uint32_t)per_txn, 1, desc, &st, 1, NULL);
    if (bytes)
        *bytes = bench_du(path);
    return rc;
}

typedef struct rw_thread {
    const child_ctx *c;
    kv_db *d;
    pthread_barrier_t *start;
    uint64_t rounds;
    uint64_t seed;
    kv_stat st;
    const char *failed; /* what failed, or NULL */
    char err[256];
} rw_thread;

static void *rw_main(void *arg)
{
    rw_thread *t = arg;
    const kv_engine *e = t->c->e;
    uint32_t n = (uint32_t)t->c->o->n;
    kv_sess *s = NULL;
    if (e->sess_open(t->d, &s) != 0) {
        snprintf(t->err, sizeof t->err, "%s", kv_err());
        t->failed = "session";
    }
    pthread_barrier_wait(t->start);
    if (t->failed)
        return NULL;
    bench_rng r;
    bench_rng_seed(&r, t->seed);
    uint32_t rd[MIX_READS], wr[MIX_WRITES];
    for (uint64_t round = 0; round < t->rounds; round++) {
        for (int i = 0; i < MIX_READS; i++)
            rd[i] = (uint32_t)bench_rng_below(&r, n);
        for (int i = 0; i < MIX_WRITES; i++)
            wr[i] = (uint32_t)bench_rng_below(&r, n);
        if (e->get(s, rd, MIX_READS, 0, &t->st) != 0) {
            snprintf(t->err, sizeof t->err, "%s", kv_err());
            t->failed = "get";
            break;
        }
        if (e->put(s, wr, MIX_WRITES, (uint32_t)(1 + round % 1000), &t->st) != 0) {
            snprintf(t->err, sizeof t->err, "%s", kv_err());
            t->failed = "put";
            break;
        }
    }
    e->sess_close(s);
    return NULL;
}

static void run_readwrite(child_ctx *c)
{
    const kv_opts *o = c->o;
    const kv_engine *e = c->e;
    const int wl = W_READWRITE;
    kv_db *d;
    char desc[64];
    if (open_db(c, "main", KV_SYNC_EACH, &d, NULL, desc, sizeof desc) != 0)
        return;
    uint64_t nt = o->threads;
    uint64_t rounds = o->n / nt / (MIX_READS + MIX_WRITES);
    if (rounds == 0)
        rounds = 1;
    rw_thread *th = calloc(nt, sizeof *th);
    pthread_t *tid = calloc(nt, sizeof *tid);
    pthread_barrier_t start;
    if (!th || !tid)
        bench_die("out of memory");
    pthread_barrier_init(&start, NULL, (unsigned)nt + 1);
    for (uint64_t i = 0; i < nt; i++) {
        th[i] = (rw_thread){.c = c, .d = d, .start = &start, .rounds = rounds,
                            .seed = o->seed * 1000003u + 17u + i};
        if (pthread_create(&tid[i], NULL, rw_main, &th[i]) != 0)
            bench_die("pthread_create failed");
    }
    pthread_barrier_wait(&start);
    double t0 = bench_now();
    for (uint64_t i = 0; i < nt; i++)
        pthread_join(tid[i], NULL);
    double secs = bench_now() - t0;
    pthread_barrier_destroy(&start);
    e->close(d);
    kv_stat sum = {0};
    int failed = 0;
    for (uint64_t i = 0; i < nt; i++) {
        if (th[i].failed) {
            if (!failed)
                bench_child_error(th[i].failed, th[i].err);
            failed = 1;
        }
        sum.found += th[i].st.found;
        sum.missing += th[i].st.missing;
        sum.bad += th[i].st.bad;
        sum.retries += th[i].st.retries;
    }
    if (!failed) {
        uint64_t ops = rounds * nt * (MIX_READS + MIX_WRITES);
        int ok = sum.missing == 0 && sum.bad == 0 && sum.found == rounds * nt * MIX_READS;
        char note[200];
        snprintf(note, sizeof note, "%s%" PRIu64 " retries", ok ? "" : "VERIFY FAILED; ",
                 sum.retries);
        send_result(wl, ops, secs, MIX_WRITES, (uint32_t)nt, desc, &sum, ok, note);
    }
    free(th);
    free(tid);
}

static void run_reads(child_ctx *c)
{
    const kv_opts *o = c->o;
    const kv_engine *e = c->e;
    kv_db *d;
    kv_sess *s;
    char desc[64], note[200];
    int first = (o->workloads & (1u << W_READRANDOM)) ? W_READRANDOM
                : (o->workloads & (1u << W_READSEQ)) ? W_READSEQ
                                                      : W_SCAN;
    bench_child_stage(first);
    if (open_db(c, "main", KV_SYNC_BATCH, &d, &s, desc, sizeof desc) != 0)
        return;
    uint64_t n = o->n, b = o->batch;

    if (o->workloads & (1u << W_READRANDOM)) {
        bench_child_stage(W_READRANDOM);
        kv_stat st = {0};
        int rc = 0;
        double t0 = bench_now();
        for (uint64_t i = 0; i < n && rc == 0; i += b)
            rc = e->get(s, c->rids + i, (size_t)(n - i < b ? n - i : b), 1, &st);
        double secs = bench_now() - t0;
        if (rc != 0) {
            fail_op("get");
        } else {
            int ok = st.found == n && st.missing == 0 && st.bad == 0;
            snprintf(note, sizeof note, "%s", ok ? "" : "VERIFY FAILED");
            if (!ok)
                snprintf(note, sizeof note,
                         "VERIFY FAILED: found %" PRIu64 " missing %" PRIu64 " bad %" PRIu64,
                         st.found, st.missing, st.bad);
            send_result(W_READRANDOM, n, secs, (uint32_t)b, 1, desc, &st, ok, note);
        }
    }
    if (o->workloads & (1u << W_READSEQ)) {
        bench_child_stage(W_READSEQ);
        kv_stat st = {0};
        double t0 = bench_now();
        int rc = e->read_all(s, &st);
        double secs = bench_now() - t0;
        if (rc != 0) {
            fail_op("read_all");
        } else {
            int ok = st.items == n && st.bad == 0;
            note[0] = '\0';
            if (!ok)
                snprintf(note, sizeof note, "VERIFY FAILED: %" PRIu64 " items, %" PRIu64 " bad",
                         st.items, st.bad);
            send_result(W_READSEQ, st.items, secs, 0, 1, desc, &st, ok, note);
        }
    }
    if (o->workloads & (1u << W_SCAN)) {
        bench_child_stage(W_SCAN);
        uint64_t ns = n / 10 ? n / 10 : 1, expect = 0;
        for (uint64_t i = 0; i < ns; i++)
            expect += n - c->sids[i] < SCAN_LEN ? n - c->sids[i] : SCAN_LEN;
        kv_stat st = {0};
        int rc = 0;
        double t0 = bench_now();
        for (uint64_t i = 0; i < ns && rc == 0; i += b)
            rc = e->scan(s, c->sids + i, (size_t)(ns - i < b ? ns - i : b), SCAN_LEN, &st);
        double secs = bench_now() - t0;
        if (rc != 0) {
            fail_op("scan");
        } else {
            int ok = st.items == expect && st.bad == 0;
            note[0] = '\0';
            if (!ok)
                snprintf(note, sizeof note,
                         "VERIFY FAILED: %" PRIu64 " items (expected %" PRIu64 "), %" PRIu64
                         " bad",
                         st.items, expect, st.bad);
            send_result(W_SCAN, ns, secs, (uint32_t)b, 1, desc, &st, ok, note);
        }
    }
    e->sess_close(s);
    e->close(d);
}

static uint32_t *alloc_ids(uint64_t n)
{
    uint32_t *p = malloc((n ? n : 1) * sizeof *p);
    if (!p)
        bench_die("out of memory for %" PRIu64 " ids", n);
    return p;
}

static uint64_t sync_count(const kv_opts *o)
{
    if (o->sync_n)
        return o->sync_n < o->n ? o->sync_n : o->n;
    uint64_t m = o->n / 100;
    if (m > 5000)
        m = 5000;
    return m ? m : 1;
}

static void child_main(const kv_opts *o, const kv_engine *e)
{
    child_ctx c = {.o = o, .e = e};
    snprintf(c.root, sizeof c.root, "%s/%s", o->run.dir, e->name);
    if (bench_child_workdir(c.root) != 0)
        return;
    uint64_t n = o->n;
    kv_data_init(o->seed);
    bench_rng r;
    c.perm = alloc_ids(n);
    c.rids = alloc_ids(n);
    c.sids = alloc_ids(n / 10 ? n / 10 : 1);
    c.seq = alloc_ids(o->batch);
    for (uint64_t i = 0; i < n; i++)
        c.perm[i] = (uint32_t)i;
    bench_rng_seed(&r, o->seed);
    for (uint64_t i = n; i > 1; i--) {
        uint64_t j = bench_rng_below(&r, i);
        uint32_t t = c.perm[i - 1];
        c.perm[i - 1] = c.perm[j];
        c.perm[j] = t;
    }
    bench_rng_seed(&r, o->seed + 1);
    for (uint64_t i = 0; i < n; i++)
        c.rids[i] = (uint32_t)bench_rng_below(&r, n);
    bench_rng_seed(&r, o->seed + 2);
    for (uint64_t i = 0; i < (n / 10 ? n / 10 : 1); i++)
        c.sids[i] = (uint32_t)bench_rng_below(&r, n);

    uint64_t base_rss = bench_maxrss_kb();

    if (o->workloads & (1u << W_FILLSEQ)) {
        bench_child_stage(W_FILLSEQ);
        run_fill(&c, W_FILLSEQ, "seq", NULL, n, o->batch, KV_SYNC_BATCH, 1, NULL);
        char p[4200];
        path_of(&c, "seq", p, sizeof p);
        if (!o->run.keep)
            bench_rmtree(p);
    }
    /* fillrandom builds the database the reads use: always run it. */
    bench_child_stage(W_FILLRANDOM);
    uint64_t bytes = 0;
    int filled = run_fill(&c, W_FILLRANDOM, "main", c.perm, n, o->batch, KV_SYNC_BATCH,
                          (o->workloads >> W_FILLRANDOM) & 1u, &bytes) == 0;
    if (filled && (o->workloads & ((1u << W_READRANDOM) | (1u << W_READSEQ) | (1u << W_SCAN))))
        run_reads(&c);
    if (filled && (o->workloads & (1u << W_READWRITE))) {
        bench_child_stage(W_READWRITE);
        run_readwrite(&c);
    }
    if ((o->workloads & (1u << W_FILLSYNC)) && !e->nosync) {
        bench_child_stage(W_FILLSYNC);
        run_fill(&c, W_FILLSYNC, "sync", c.perm, sync_count(o), 1, KV_SYNC_EACH, 1, NULL);
    }
    kv_msg m = {.h.kind = MSG_FOOT, .n = n, .bytes = filled ? bytes : 0, .base_rss_kb = base_rss};
    bench_child_send(&m);
    if (!o->run.keep)
        bench_rmtree(c.root);
    free(c.perm);
    free(c.rids);
    free(c.sids);
    free(c.seq);
}

/* ------------------------------------------------------------------ */
/* The parent: fork per engine, collect, report                       */
/* ------------------------------------------------------------------ */

typedef struct row {
    int have, ok;
    kv_msg m;
} row;

typedef struct engine_out {
    row rows[W_COUNT];
    uint64_t bytes, base_rss_kb, peak_rss_kb;
    int have_foot;
    char errors[1024];
} engine_out;

/* What the child and the parent of one engine's run share. */
typedef struct run_ctx {
    const kv_opts *o;
    const kv_engine *e;
    engine_out *eo;
} run_ctx;

static void child_entry(void *arg)
{
    const run_ctx *r = arg;
    child_main(r->o, r->e);
}

static void on_msg(const void *msg, void *arg)
{
    const kv_msg *m = msg;
    const run_ctx *r = arg;
    engine_out *eo = r->eo;
    char num[32];
    switch (m->h.kind) {
    case BENCH_MSG_ERROR:
        fprintf(stderr, "  [%s] %s FAILED: %s\n", r->e->name, wl_names[m->h.stage], m->h.text);
        bench_append_err(eo->errors, sizeof eo->errors, "%s: %s", wl_names[m->h.stage], m->h.text);
        break;
    case MSG_RESULT: {
        row *rw = &eo->rows[m->h.stage];
        fprintf(stderr, "  [%s] %-10s %12s ops/s  (%.2f s)%s%s\n", r->e->name, wl_names[m->h.stage],
                bench_fmt_int(num, sizeof num, m->ops_per_s), m->secs, m->h.text[0] ? "  " : "",
                m->h.text);
        /* Over repeats keep the best run (least disturbed by noise). */
        if (!rw->have || (m->ok && (!rw->ok || m->ops_per_s > rw->m.ops_per_s))) {
            rw->have = 1;
            rw->ok = m->ok;
            rw->m = *m;
        }
        break;
    }
    case MSG_FOOT:
        eo->have_foot = 1;
        eo->bytes = m->bytes;
        eo->base_rss_kb = m->base_rss_kb;
        break;
    default:
        break;
    }
}

static void run_engine(const kv_opts *o, const kv_engine *e, engine_out *eo, int pass)
{
    run_ctx r = {.o = o, .e = e, .eo = eo};
    bench_child c = {.main = child_entry,
                     .on_msg = on_msg,
                     .arg = &r,
                     .msg_size = sizeof(kv_msg),
                     .timeout = o->run.timeout};
    bench_child_end end;
    bench_child_run(&c, &end);
    if (end.maxrss_kb > eo->peak_rss_kb)
        eo->peak_rss_kb = end.maxrss_kb;
    bench_child_verdict(&end, e->name, NULL, end.stage >= 0 ? wl_names[end.stage] : "startup", pass,
                        eo->errors, sizeof eo->errors);
}

/* The sop variant a peer is compared with: same durability class if
 * present, else the other one; NULL when no sop engine ran. */
static int sop_for(const kv_opts *o, const kv_engine *peer)
{
    int any = -1;
    for (size_t i = 0; i < o->nengines; i++) {
        if (!is_sop(o->engines[i]))
            continue;
        if (o->engines[i]->nosync == peer->nosync)
            return (int)i;
        if (any < 0)
            any = (int)i;
    }
    return any;
}

static void report(const kv_opts *o, engine_out *outs)
{
    char num[32], num2[32];
    printf("\nsop-bench kv: n=%" PRIu64 ", %d-byte keys, %d-byte values, seed=%" PRIu64
           ", batch=%" PRIu64 ", readwrite threads=%" PRIu64 ", best of %" PRIu64 "\n",
           o->n, KV_KEY_LEN, KV_VAL_LEN, o->seed, o->batch, o->threads, o->run.repeat);
    printf("%-11s %-14s %14s %9s %7s %3s  %s\n", "workload", "engine", "ops/s", "n", "ops/txn",
           "thr", "sync mode");
    for (int w = 0; w < W_COUNT; w++) {
        for (size_t i = 0; i < o->nengines; i++) {
            const row *rw = &outs[i].rows[w];
            if (!rw->have)
                continue;
            char per[16];
            if (rw->m.ops_per_txn)
                snprintf(per, sizeof per, "%u", rw->m.ops_per_txn);
            else
                snprintf(per, sizeof per, "all");
            printf("%-11s %-14s %14s %9" PRIu64 " %7s %3u  %s%s%s\n", wl_names[w],
                   o->engines[i]->name, bench_fmt_int(num, sizeof num, rw->m.ops_per_s), rw->m.n,
                   per, rw->m.threads, rw->m.sync, rw->m.h.text[0] ? "; " : "", rw->m.h.text);
        }
    }
    printf("\n%-14s %16s %10s %13s %13s\n", "engine", "bytes_on_disk", "x raw", "peak_rss_kb",
           "base_rss_kb");
    double raw = (double)o->n * (KV_KEY_LEN + KV_VAL_LEN);
    for (size_t i = 0; i < o->nengines; i++) {
        const engine_out *eo = &outs[i];
        printf("%-14s %16s %10.2f %13s %13" PRIu64 "\n", o->engines[i]->name,
               bench_fmt_int(num, sizeof num, (double)eo->bytes),
               raw > 0 ? (double)eo->bytes / raw : 0,
               bench_fmt_int(num2, sizeof num2, (double)eo->peak_rss_kb), eo->base_rss_kb);
    }
    printf("(bytes_on_disk: the fillrandom database, closed, allocated blocks; raw = n x %d B;"
           " peak RSS of the engine's child process, base = before opening the engine, incl."
           " the id arrays; LMDB's RSS includes the mapped file pages it touched)\n",
           KV_KEY_LEN + KV_VAL_LEN);

    int any_ratio = 0, mixed = 0;
    for (size_t p = 0; p < o->nengines; p++)
        if (!is_sop(o->engines[p]) && sop_for(o, o->engines[p]) >= 0)
            any_ratio = 1;
    if (any_ratio) {
        printf("\nratios (sop / peer, ops/s; >1 means sop is faster)\n%-11s", "workload");
        for (size_t p = 0; p < o->nengines; p++)
            if (!is_sop(o->engines[p]))
                printf(" %16s", o->engines[p]->name);
        printf("\n");
        for (int w = 0; w < W_COUNT; w++) {
            int any = 0;
            char line[512];
            int len = snprintf(line, sizeof line, "%-11s", wl_names[w]);
            for (size_t p = 0; p < o->nengines; p++) {
                if (is_sop(o->engines[p]))
                    continue;
                int si = sop_for(o, o->engines[p]);
                const row *a = si >= 0 ? &outs[si].rows[w] : NULL, *b = &outs[p].rows[w];
                char cell[40] = "-";
                if (a && a->have && a->ok && b->have && b->ok && b->m.ops_per_s > 0) {
                    int differ = o->engines[si]->nosync != o->engines[p]->nosync;
                    snprintf(cell, sizeof cell, "%.3f%s", a->m.ops_per_s / b->m.ops_per_s,
                             differ ? "*" : "");
                    mixed |= differ;
                    any = 1;
                }
                len += snprintf(line + len, sizeof line - (size_t)len, " %16s", cell);
            }
            if (any)
                printf("%s\n", line);
        }
        if (mixed)
            printf("(* = durability classes differ: select sop-nosync for the -nosync peers)\n");
    }
    for (size_t i = 0; i < o->nengines; i++)
        if (outs[i].errors[0])
            printf("ERRORS %s: %s\n", o->engines[i]->name, outs[i].errors);
    fflush(stdout);
}

static void write_json(const kv_opts *o, engine_out *outs)
{
    FILE *f = bench_json_open(o->run.json);
    for (int w = 0; w < W_COUNT; w++) {
        for (size_t i = 0; i < o->nengines; i++) {
            const row *rw = &outs[i].rows[w];
            if (!rw->have)
                continue;
            fprintf(f, "{\"suite\":\"kv\",\"workload\":\"%s\",\"engine\":\"%s\",\"n\":%" PRIu64
                       ",\"ops_per_s\":%.1f,\"sync\":",
                    wl_names[w], o->engines[i]->name, rw->m.n, rw->m.ops_per_s);
            bench_json_str(f, rw->m.sync);
            fprintf(f, ",\"ops_per_txn\":%u,\"threads\":%u,\"seconds\":%.4f,\"retries\":%" PRIu64
                       ",\"ok\":%s}\n",
                    rw->m.ops_per_txn, rw->m.threads, rw->m.secs, rw->m.retries,
                    rw->ok ? "true" : "false");
        }
    }
    for (size_t i = 0; i < o->nengines; i++) {
        const engine_out *eo = &outs[i];
        fprintf(f, "{\"suite\":\"kv\",\"workload\":\"footprint\",\"engine\":\"%s\",\"n\":%" PRIu64
                   ",\"bytes_on_disk\":%" PRIu64 ",\"peak_rss_kb\":%" PRIu64
                   ",\"base_rss_kb\":%" PRIu64,
                o->engines[i]->name, o->n, eo->bytes, eo->peak_rss_kb, eo->base_rss_kb);
        if (eo->errors[0]) {
            fprintf(f, ",\"errors\":");
            bench_json_str(f, eo->errors);
        }
        fprintf(f, "}\n");
    }
    for (int w = 0; w < W_COUNT; w++) {
        for (size_t p = 0; p < o->nengines; p++) {
            if (is_sop(o->engines[p]))
                continue;
            int si = sop_for(o, o->engines[p]);
            if (si < 0)
                continue;
            const row *a = &outs[si].rows[w], *b = &outs[p].rows[w];
            if (!a->have || !a->ok || !b->have || !b->ok || b->m.ops_per_s <= 0)
                continue;
            fprintf(f,
                    "{\"suite\":\"kv\",\"workload\":\"%s\",\"engine\":\"ratio\",\"vs\":\"%s\","
                    "\"value\":%.4f,\"of\":\"%s\"}\n",
                    wl_names[w], o->engines[p]->name, a->m.ops_per_s / b->m.ops_per_s,
                    o->engines[si]->name);
        }
    }
    bench_json_close(f, o->run.json);
}

/* ------------------------------------------------------------------ */
/* Options                                                            */
/* ------------------------------------------------------------------ */

static void kv_usage(FILE *f)
{
    fprintf(f,
            "usage: sop-bench kv [options]\n"
            "  --n N            keys (default 200000; the README uses 1000000)\n"
            "  --engines LIST   comma list of: "
#ifndef SOP_BENCH_NO_SOP
            "sop, sop-nosync, "
#endif
            "lmdb, lmdb-nosync, sqlite, sqlite-nosync\n"
            "                   (default " DEFAULT_ENGINES ")\n"
            "  --workloads LIST comma list of: fillseq, fillrandom, readrandom, readseq,\n"
            "                   scan100, readwrite, fillsync (default all)\n"
            "  --threads T      threads of readwrite (default 2)\n"
            "  --batch B        puts per write txn for fills, reads/seeks per read txn\n"
            "                   (default 1000)\n"
            "  --sync-n M       puts of fillsync (default min(n/100, 5000))\n"
            "  --seed S         data and order seed (default 42)\n"
            "  --repeat R       run every engine R times, interleaved; report the best\n"
            "  --dir DIR        work directory (default /tmp/sop-bench); DIR/<engine> is\n"
            "                   deleted before and after each engine\n"
            "  --keep           keep the databases\n"
            "  --json FILE      write JSON lines to FILE (truncated)\n"
#ifndef SOP_BENCH_NO_SOP
            "  --replica DIR    sop engines: mirror each database to DIR/<engine>-<db>\n"
            "                   (sop_db_options.replica_path; DIR on another disk to measure\n"
            "                   real replication)\n"
#endif
            "  --timeout SEC    kill an engine's run after SEC seconds (default 3600, 0: none)\n"
            "Durability: sop = SOP_SYNC_FULL; lmdb = default (synced commits); sqlite = WAL with\n"
            "synchronous=NORMAL for batched fills and reads, FULL for fillsync and readwrite.\n"
            "-nosync variants: SOP_SYNC_NONE, MDB_NOSYNC, synchronous=OFF (no fillsync row).\n");
}

static const char *engine_name(size_t i) { return all_engines[i]->name; }

static void not_built(const char *name)
{
#ifdef SOP_BENCH_NO_SOP
    if (strncmp(name, "sop", 3) == 0)
        bench_die("engine '%s' is compiled out (SOP_BENCH_NO_SOP)", name);
#else
    (void)name;
#endif
}

static void parse_engines(kv_opts *o, const char *list)
{
    size_t idx[N_ALL_ENGINES];
    o->nengines = bench_parse_engines(list, N_ALL_ENGINES, engine_name, not_built, "kv", idx);
    for (size_t i = 0; i < o->nengines; i++)
        o->engines[i] = all_engines[idx[i]];
}

static void parse_workloads(kv_opts *o, const char *list)
{
    char buf[512];
    snprintf(buf, sizeof buf, "%s", list);
    o->workloads = 0;
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok;
         tok = strtok_r(NULL, ",", &save)) {
        int w;
        for (w = 0; w < W_COUNT; w++)
            if (strcmp(wl_names[w], tok) == 0 || (strcmp(tok, "scan") == 0 && w == W_SCAN))
                break;
        if (w == W_COUNT)
            bench_die("unknown workload '%s' (see sop-bench kv --help)", tok);
        o->workloads |= 1u << w;
    }
    if (!o->workloads)
        bench_die("--workloads: empty list");
}

int bench_kv_main(int argc, char **argv)
{
    kv_opts o = {.n = 200000,
                 .seed = 42,
                 .threads = 2,
                 .batch = 1000,
                 .run = BENCH_RUN_OPTS_DEFAULT,
                 .workloads = (1u << W_COUNT) - 1};
    parse_engines(&o, DEFAULT_ENGINES);
    bench_args a;
    for (bench_args_init(&a, argc, argv); bench_args_next(&a);) {
        if (bench_args_help(&a)) {
            kv_usage(stdout);
            return 0;
        } else if (bench_args_is(&a, "--n") || bench_args_is(&a, "-n")) {
            o.n = bench_args_count(&a);
        } else if (bench_args_is(&a, "--engines")) {
            parse_engines(&o, bench_args_value(&a));
        } else if (bench_args_is(&a, "--workloads")) {
            parse_workloads(&o, bench_args_value(&a));
        } else if (bench_args_is(&a, "--threads")) {
            o.threads = bench_args_count(&a);
        } else if (bench_args_is(&a, "--batch")) {
            o.batch = bench_args_count(&a);
        } else if (bench_args_is(&a, "--sync-n")) {
            o.sync_n = bench_args_count(&a);
        } else if (bench_args_is(&a, "--seed")) {
            o.seed = bench_args_count(&a);
#ifndef SOP_BENCH_NO_SOP
        } else if (bench_args_is(&a, "--replica")) {
            kv_sop_replica = bench_args_value(&a);
#endif
        } else if (!bench_args_run_opt(&a, &o.run)) {
            bench_args_unknown(&a, "kv", kv_usage);
        }
    }
    if (o.n < 1)
        bench_die("--n must be at least 1");
    if (o.n > UINT32_MAX / 2)
        bench_die("--n too large");
    if (o.threads < 1 || o.threads > 256)
        bench_die("--threads must be 1..256");
    if (o.batch < 1)
        bench_die("--batch must be at least 1");
    bench_run_opts_ready(&o.run);

    engine_out *outs = calloc(o.nengines, sizeof *outs);
    if (!outs)
        bench_die("out of memory");
    fprintf(stderr, "sop-bench kv: n=%" PRIu64 ", engines:", o.n);
    for (size_t i = 0; i < o.nengines; i++)
        fprintf(stderr, " %s", o.engines[i]->name);
    fprintf(stderr, ", dir=%s\n", o.run.dir);
    double t0 = bench_now();
    for (uint64_t pass = 0; pass < o.run.repeat; pass++)
        for (size_t i = 0; i < o.nengines; i++)
            run_engine(&o, o.engines[i], &outs[i], (int)pass);
    fprintf(stderr, "sop-bench kv: done in %.1f s\n", bench_now() - t0);
    report(&o, outs);
    if (o.run.json)
        write_json(&o, outs);
    int failed = 0;
    for (size_t i = 0; i < o.nengines; i++) {
        if (outs[i].errors[0])
            failed = 1;
        for (int w = 0; w < W_COUNT; w++)
            if (outs[i].rows[w].have && !outs[i].rows[w].ok)
                failed = 1;
    }
    free(outs);
    return failed ? 1 : 0;
}
