/*
 * text.c - `sop-bench text`: BM25 text search run side by side on sop's
 * text index (sop/search.h), SQLite FTS5 (tokenize='porter unicode61',
 * ORDER BY bm25(t)) and Xapian (BM25Weight(1.2, 0, 1, 0.75, 0.5), English
 * stemmer, STEM_SOME), with the same data, in the same program. Every
 * query is an OR of its words.
 *
 * Two workloads (text_data.c has the data):
 *  - quality, on Cranfield (1,400 aeronautics abstracts, 225 queries, human
 *    judgments): each engine indexes the collection and answers every
 *    judged query (one with at least one relevant document) with its top
 *    1,000; nDCG@10 (binary gains, log2(1 + rank) discount), MAP (over the
 *    top 1,000), P@10 and R@100 are averaged over the judged queries. The
 *    mean Jaccard overlap of the engines' top 10s is printed too (how far
 *    the engines agree, whatever the judgments say).
 *  - speed, on the GCIDE dictionary (the first --n definition blocks):
 *    bulk indexing, every document in ONE write transaction with a durable
 *    commit (documents/s over create .. commit returned); the index's bytes
 *    on disk after it is closed; then --queries queries of 1-3 words sampled
 *    from random documents (fixed seed), k = 10, one query per call on one
 *    thread, TEXT_QUERIES_PER_TXN queries per read transaction: one pass
 *    untimed (warm-up), then passes over the whole set until --min-time
 *    seconds have passed.
 *
 * Each engine runs each workload in its own forked child (so its peak RSS
 * is its own) in its own directory; the child streams its build and timing
 * to the parent over a pipe and writes its result rows into memory shared
 * with the parent, which scores them.
 */
#include "text.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "bench_util.h"
#include "child.h"
#include "options.h"

#ifndef SOP_BENCH_DEFAULT_CRANFIELD_DIR
#define SOP_BENCH_DEFAULT_CRANFIELD_DIR "../shared/ir-collections/cranfield"
#endif
#define GCIDE_INDEX "/usr/share/dictd/gcide.index"
#define GCIDE_DICT "/usr/share/dictd/gcide.dict.dz"

/* ------------------------------------------------------------------ */
/* Errors, cache                                                      */
/* ------------------------------------------------------------------ */

static char text_errbuf[256];

void text_set_err(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text_errbuf, sizeof text_errbuf, fmt, ap);
    va_end(ap);
}

const char *text_err(void)
{
    return text_errbuf[0] ? text_errbuf : "unknown error";
}

size_t text_cache_mb(void)
{
    const char *e = getenv("SOP_BENCH_CACHE_MB");
    return e && atol(e) > 0 ? (size_t)atol(e) : 64;
}

/* ------------------------------------------------------------------ */
/* Engines, options                                                   */
/* ------------------------------------------------------------------ */

static const text_engine *const all_engines[] = {
#if defined(SOP_BENCH_TEXT_SOP) && !defined(SOP_BENCH_NO_SOP)
    &text_engine_sop,
#endif
    &text_engine_sqlite,
#ifdef SOP_BENCH_HAVE_XAPIAN
    &text_engine_xapian,
#endif
    NULL,
};
#define N_ALL_ENGINES (sizeof all_engines / sizeof all_engines[0] - 1)

#define QUICK_N 20000
#define QUALITY_K 1000 /* MAP over the top 1,000 */
#define SPEED_K 10
#define EVAL_K 10      /* nDCG@10, P@10, agreement */
#define RECALL_AT 100

enum { WL_QUALITY = 1, WL_SPEED = 2 };

typedef struct text_opts {
    uint64_t n, queries, seed;
    double min_time;
    int workloads, cran_fields;
    bench_run_opts run;
    const char *cranfield, *gcide_index, *gcide_dict, *corpus;
    const text_engine *engines[N_ALL_ENGINES + 1];
    size_t nengines;
} text_opts;

/* ------------------------------------------------------------------ */
/* Child -> parent messages                                           */
/* ------------------------------------------------------------------ */

enum { MSG_BUILD = BENCH_MSG_USER, MSG_SEARCHED, MSG_FOOT };
enum { ST_BUILD = 1, ST_OPEN, ST_WARMUP, ST_SEARCH };

typedef struct text_msg {
    bench_msg h;
    uint32_t passes; /* SEARCHED: timed passes over the query set */
    uint64_t nq, base_rss_kb;
    double qps, secs;
    text_build build;
} text_msg;

static const char *stage_name(int s)
{
    switch (s) {
    case ST_BUILD: return "build";
    case ST_OPEN: return "open";
    case ST_WARMUP: return "warm-up";
    case ST_SEARCH: return "search";
    default: return "startup";
    }
}

/* ------------------------------------------------------------------ */
/* The child: one engine, one workload                                */
/* ------------------------------------------------------------------ */

typedef struct job {
    const text_corpus *c;
    const text_queries *q;
    uint32_t k;
    int timed;     /* 1: warm-up + timed passes; 0: one pass */
    int32_t *out;  /* shared: q->n x k rows */
    const char *tag;
} job;

static void child_main(const text_opts *o, const text_engine *e, const job *j)
{
    char root[4200];
    snprintf(root, sizeof root, "%s/%s-%s", o->run.dir, e->name, j->tag);
    if (bench_child_workdir(root) != 0)
        return;
    uint64_t base_rss = bench_maxrss_kb();

    bench_child_stage(ST_BUILD);
    text_build b;
    memset(&b, 0, sizeof b);
    text_index *ix = NULL;
    text_msg m;
    if (e->build(j->c, root, &b) != 0) {
        bench_child_error("build", text_err());
        goto done;
    }
    b.bytes = bench_du(root);
    m = (text_msg){.h.kind = MSG_BUILD, .build = b};
    bench_child_send(&m);

    bench_child_stage(ST_OPEN);
    if (e->open(root, j->c->n, &ix) != 0) {
        bench_child_error("open", text_err());
        goto done;
    }
    double t0, secs = 0;
    uint32_t passes = 0;
    if (j->timed) {
        bench_child_stage(ST_WARMUP);
        if (e->search(ix, j->q, 0, j->q->n, j->k, j->out) != 0) {
            bench_child_error("warm-up search", text_err());
            goto close;
        }
    }
    bench_child_stage(ST_SEARCH);
    t0 = bench_now();
    int rc;
    do {
        rc = e->search(ix, j->q, 0, j->q->n, j->k, j->out);
        passes++;
        secs = bench_now() - t0;
    } while (rc == 0 && j->timed && secs < o->min_time);
    if (rc != 0) {
        bench_child_error("search", text_err());
        goto close;
    }
    m = (text_msg){.h.kind = MSG_SEARCHED,
                   .passes = passes,
                   .nq = j->q->n,
                   .secs = secs,
                   .qps = secs > 0 ? (double)j->q->n * passes / secs : 0};
    bench_child_send(&m);
close:
    e->close(ix);
done:
    m = (text_msg){.h.kind = MSG_FOOT, .base_rss_kb = base_rss};
    bench_child_send(&m);
    if (!o->run.keep)
        bench_rmtree(root);
}

/* ------------------------------------------------------------------ */
/* The parent: fork per engine and workload, collect                  */
/* ------------------------------------------------------------------ */

typedef struct run_out {
    int have_build, have_search;
    text_build build;
    uint32_t passes;
    double qps, secs;
    uint64_t base_rss_kb, peak_rss_kb;
} run_out;

typedef struct engine_out {
    run_out quality, speed;
    int32_t *qrows, *srows; /* result rows (shared with the children) */
    uint64_t qbad, sbad;    /* rows out of range or repeated */
    double ndcg, map, p10, r100;
    char errors[1024];
} engine_out;

static int32_t *shared_rows(size_t n)
{
    void *p = mmap(NULL, n * sizeof(int32_t), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
                   -1, 0);
    if (p == MAP_FAILED)
        bench_die("mmap %zu rows: %s", n, strerror(errno));
    return p;
}

/* What the child and the parent of one job share. */
typedef struct run_ctx {
    const text_opts *o;
    const text_engine *e;
    const job *j;
    run_out *ro;
    engine_out *eo;
    int searched;
} run_ctx;

static void child_entry(void *arg)
{
    const run_ctx *r = arg;
    child_main(r->o, r->e, r->j);
}

static void on_msg(const void *msg, void *arg)
{
    const text_msg *m = msg;
    run_ctx *r = arg;
    const char *name = r->e->name, *tag = r->j->tag;
    run_out *ro = r->ro;
    char num[32], num2[32];
    switch (m->h.kind) {
    case BENCH_MSG_ERROR:
        fprintf(stderr, "  [%s %s] FAILED: %s\n", name, tag, m->h.text);
        bench_append_err(r->eo->errors, sizeof r->eo->errors, "%s: %s", tag, m->h.text);
        break;
    case MSG_BUILD:
        fprintf(stderr,
                "  [%s %s] indexed %zu docs in %.2f s (%s docs/s; commit %.2f s), "
                "close %.2f s, %s bytes  (%s)\n",
                name, tag, r->j->c->n, m->build.index_s,
                bench_fmt_int(num, sizeof num,
                              m->build.index_s > 0 ? (double)r->j->c->n / m->build.index_s : 0),
                m->build.commit_s, m->build.close_s,
                bench_fmt_int(num2, sizeof num2, (double)m->build.bytes), m->build.desc);
        /* over repeats keep the fastest build */
        if (!ro->have_build || m->build.index_s < ro->build.index_s)
            ro->build = m->build;
        ro->have_build = 1;
        break;
    case MSG_SEARCHED:
        if (r->j->timed)
            fprintf(stderr, "  [%s %s] %zu queries x %u passes: %s q/s\n", name, tag, r->j->q->n,
                    m->passes, bench_fmt_int(num, sizeof num, m->qps));
        if (!ro->have_search || m->qps > ro->qps) {
            ro->qps = m->qps;
            ro->passes = m->passes;
            ro->secs = m->secs;
        }
        ro->have_search = 1;
        r->searched = 1;
        break;
    case MSG_FOOT:
        ro->base_rss_kb = m->base_rss_kb;
        break;
    default:
        break;
    }
}

/* Runs @p j for engine @p e in a child; fills @p ro (keeping the best of
 * repeats) and the rows. Returns 1 if the child searched. */
static int run_job(const text_opts *o, const text_engine *e, const job *j, run_out *ro,
                   engine_out *eo, int pass)
{
    for (size_t i = 0; i < j->q->n * j->k; i++)
        j->out[i] = -1;
    run_ctx r = {.o = o, .e = e, .j = j, .ro = ro, .eo = eo};
    bench_child c = {.main = child_entry,
                     .on_msg = on_msg,
                     .arg = &r,
                     .msg_size = sizeof(text_msg),
                     .timeout = o->run.timeout};
    bench_child_end end;
    bench_child_run(&c, &end);
    if (end.maxrss_kb > ro->peak_rss_kb)
        ro->peak_rss_kb = end.maxrss_kb;
    char who[128];
    snprintf(who, sizeof who, "%s %s", e->name, j->tag);
    if (!bench_child_verdict(&end, who, j->tag, stage_name(end.stage), pass, eo->errors,
                             sizeof eo->errors))
        r.searched = 0;
    return r.searched;
}

/* ------------------------------------------------------------------ */
/* Scoring                                                            */
/* ------------------------------------------------------------------ */

/* Counts rows out of range or repeated within a query's list, and
 * replaces them with -1 so that they score nothing. */
static uint64_t check_rows(int32_t *rows, size_t nq, uint32_t k, size_t ndocs)
{
    uint64_t bad = 0;
    for (size_t q = 0; q < nq; q++) {
        int32_t *r = rows + q * k;
        for (uint32_t i = 0; i < k; i++) {
            if (r[i] == -1)
                continue;
            int b = r[i] < 0 || (size_t)r[i] >= ndocs;
            for (uint32_t p = 0; p < i && !b; p++)
                b = r[p] == r[i];
            if (b) {
                bad++;
                r[i] = -1;
            }
        }
    }
    return bad;
}

static int is_rel(const uint32_t *rel, uint32_t nrel, uint32_t ext)
{
    size_t lo = 0, hi = nrel;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (rel[mid] < ext)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < nrel && rel[lo] == ext;
}

/* The four metrics of one engine's rows over the judged queries. */
static void score_quality(const text_corpus *c, const int32_t *rows, size_t nq, uint32_t **rel,
                          const uint32_t *nrel, engine_out *eo)
{
    double ndcg = 0, map = 0, p10 = 0, r100 = 0;
    for (size_t q = 0; q < nq; q++) {
        const int32_t *r = rows + q * QUALITY_K;
        double dcg = 0, idcg = 0, ap = 0;
        uint32_t hits = 0, hits10 = 0, hits100 = 0;
        for (uint32_t i = 0; i < QUALITY_K; i++) {
            if (r[i] < 0 || !is_rel(rel[q], nrel[q], c->docs[r[i]].ext))
                continue;
            hits++;
            ap += (double)hits / (i + 1);
            if (i < EVAL_K) {
                dcg += 1.0 / log2(i + 2.0);
                hits10++;
            }
            if (i < RECALL_AT)
                hits100++;
        }
        for (uint32_t i = 0; i < EVAL_K && i < nrel[q]; i++)
            idcg += 1.0 / log2(i + 2.0);
        ndcg += dcg / idcg;
        map += ap / nrel[q];
        p10 += (double)hits10 / EVAL_K;
        r100 += (double)hits100 / nrel[q];
    }
    eo->ndcg = ndcg / (double)nq;
    eo->map = map / (double)nq;
    eo->p10 = p10 / (double)nq;
    eo->r100 = r100 / (double)nq;
}

/* Mean Jaccard overlap of the top EVAL_K of two engines (queries where
 * both returned nothing count as 1). */
static double jaccard(const int32_t *a, const int32_t *b, size_t nq, uint32_t k)
{
    double sum = 0;
    for (size_t q = 0; q < nq; q++) {
        const int32_t *x = a + q * k, *y = b + q * k;
        int nx = 0, ny = 0, both = 0;
        for (uint32_t i = 0; i < EVAL_K; i++) {
            nx += x[i] >= 0;
            ny += y[i] >= 0;
            if (x[i] < 0)
                continue;
            for (uint32_t p = 0; p < EVAL_K; p++)
                if (y[p] == x[i]) {
                    both++;
                    break;
                }
        }
        int uni = nx + ny - both;
        sum += uni ? (double)both / uni : 1.0;
    }
    return nq ? sum / (double)nq : 0;
}

/* ------------------------------------------------------------------ */
/* Report                                                             */
/* ------------------------------------------------------------------ */

typedef struct text_run {
    text_corpus cran, gcide;
    text_queries cq, gq; /* judged Cranfield queries; sampled GCIDE queries */
    size_t cq_all;       /* Cranfield queries in cran.qry */
    engine_out *outs;
} text_run;

static int find_engine_idx(const text_opts *o, const char *name)
{
    for (size_t i = 0; i < o->nengines; i++)
        if (strcmp(o->engines[i]->name, name) == 0)
            return (int)i;
    return -1;
}

static double docs_per_s(const run_out *r, size_t n)
{
    return r->have_build && r->build.index_s > 0 ? (double)n / r->build.index_s : 0;
}

static const char *fields_name(int f)
{
    return f == TEXT_CRAN_W ? "text (.W)" : "title + text (.T .W)";
}

static void report(const text_opts *o, const text_run *t)
{
    const engine_out *outs = t->outs;
    char num[32], num2[32], num3[32], num4[32];
    if (o->workloads & WL_QUALITY) {
        printf("\nsop-bench text, quality: Cranfield, %zu docs indexed as %s, %zu judged queries "
               "(of %zu), OR of the query's words, binary relevance, top %d\n",
               t->cran.n, fields_name(o->cran_fields), t->cq.n, t->cq_all, QUALITY_K);
        printf("%-9s %9s %9s %9s %9s  %s\n", "engine", "nDCG@10", "MAP", "P@10", "R@100", "note");
        for (size_t i = 0; i < o->nengines; i++) {
            const engine_out *eo = &outs[i];
            if (!eo->quality.have_search) {
                printf("%-9s (no result)\n", o->engines[i]->name);
                continue;
            }
            char note[64] = "";
            if (eo->qbad)
                snprintf(note, sizeof note, "VERIFY FAILED: %" PRIu64 " bad rows", eo->qbad);
            printf("%-9s %9.4f %9.4f %9.4f %9.4f  %s\n", o->engines[i]->name, eo->ndcg, eo->map,
                   eo->p10, eo->r100, note);
        }
        printf("(README of the collection: FTS5 porter 0.3791 0.3013 0.2316 0.7313; Xapian "
               "0.3795 0.3005 0.2324 0.7362)\n");
        if (o->nengines > 1) {
            printf("top-%d agreement (mean Jaccard of the top %d over the judged queries):\n",
                   EVAL_K, EVAL_K);
            for (size_t a = 0; a < o->nengines; a++)
                for (size_t b = a + 1; b < o->nengines; b++)
                    if (outs[a].quality.have_search && outs[b].quality.have_search)
                        printf("  %-8s / %-8s %.4f\n", o->engines[a]->name,
                               o->engines[b]->name,
                               jaccard(outs[a].qrows, outs[b].qrows, t->cq.n, QUALITY_K));
        }
    }
    if (o->workloads & WL_SPEED) {
        size_t n = t->gcide.n;
        printf("\nsop-bench text, speed: %s, n=%zu docs (%.1f MB of text), all in one write "
               "transaction with a durable commit; %zu queries of 1-3 words (OR, seed %" PRIu64
               "), k=%d, one thread, one query per call, %d queries per read transaction, best "
               "of %" PRIu64 "\n",
               o->corpus ? o->corpus : "GCIDE", n, (double)t->gcide.bytes / 1048576.0, t->gq.n,
               o->seed, SPEED_K, TEXT_QUERIES_PER_TXN, o->run.repeat);
        printf("%-9s %9s %11s %9s %9s %10s %10s %12s %7s %13s %13s\n", "engine", "index_s",
               "docs/s", "commit_s", "close_s", "index_MB", "bytes/doc", "queries/s", "passes",
               "peak_rss_kb", "base_rss_kb");
        for (size_t i = 0; i < o->nengines; i++) {
            const run_out *r = &outs[i].speed;
            if (!r->have_build) {
                printf("%-9s (no build)\n", o->engines[i]->name);
                continue;
            }
            printf("%-9s %9.2f %11s %9.2f %9.2f %10.1f %10.1f %12s %7u %13s %13s",
                   o->engines[i]->name, r->build.index_s,
                   bench_fmt_int(num, sizeof num, docs_per_s(r, n)), r->build.commit_s,
                   r->build.close_s, (double)r->build.bytes / 1048576.0,
                   (double)r->build.bytes / (double)n,
                   r->have_search ? bench_fmt_int(num2, sizeof num2, r->qps) : "-", r->passes,
                   bench_fmt_int(num3, sizeof num3, (double)r->peak_rss_kb),
                   bench_fmt_int(num4, sizeof num4, (double)r->base_rss_kb));
            if (outs[i].sbad)
                printf("  VERIFY FAILED: %" PRIu64 " bad rows", outs[i].sbad);
            printf("\n");
        }
        for (size_t i = 0; i < o->nengines; i++)
            if (outs[i].speed.have_build)
                printf("  %-8s %s\n", o->engines[i]->name, outs[i].speed.build.desc);
        printf("(index_s: create .. durable commit returned, commit_s of it the commit; index_MB: the closed index on disk "
               "(du); peak RSS of the engine's child, base = at its start, incl. the shared "
               "corpus)\n");
        if (o->nengines > 1) {
            printf("top-%d agreement on the speed queries (mean Jaccard):\n", EVAL_K);
            for (size_t a = 0; a < o->nengines; a++)
                for (size_t b = a + 1; b < o->nengines; b++)
                    if (outs[a].speed.have_search && outs[b].speed.have_search)
                        printf("  %-8s / %-8s %.4f\n", o->engines[a]->name,
                               o->engines[b]->name,
                               jaccard(outs[a].srows, outs[b].srows, t->gq.n, SPEED_K));
        }
    }
    int si = find_engine_idx(o, "sop");
    if (si >= 0 && o->nengines > 1) {
        printf("\nratios (sop / peer; > 1: sop is faster or larger; quality: sop - peer)\n");
        printf("%-9s %10s %10s %10s %10s\n", "vs", "nDCG diff", "docs/s", "queries/s",
               "bytes");
        for (size_t p = 0; p < o->nengines; p++) {
            if ((int)p == si)
                continue;
            const engine_out *a = &outs[si], *b = &outs[p];
            char c1[16] = "-", c2[16] = "-", c3[16] = "-", c4[16] = "-";
            if (a->quality.have_search && b->quality.have_search)
                snprintf(c1, sizeof c1, "%+.4f", a->ndcg - b->ndcg);
            if (docs_per_s(&a->speed, t->gcide.n) > 0 && docs_per_s(&b->speed, t->gcide.n) > 0)
                snprintf(c2, sizeof c2, "%.3f",
                         docs_per_s(&a->speed, t->gcide.n) / docs_per_s(&b->speed, t->gcide.n));
            if (a->speed.have_search && b->speed.have_search && b->speed.qps > 0)
                snprintf(c3, sizeof c3, "%.3f", a->speed.qps / b->speed.qps);
            if (a->speed.have_build && b->speed.have_build && b->speed.build.bytes > 0)
                snprintf(c4, sizeof c4, "%.3f",
                         (double)a->speed.build.bytes / (double)b->speed.build.bytes);
            printf("%-9s %10s %10s %10s %10s\n", o->engines[p]->name, c1, c2, c3, c4);
        }
    }
    for (size_t i = 0; i < o->nengines; i++)
        if (outs[i].errors[0])
            printf("ERRORS %s: %s\n", o->engines[i]->name, outs[i].errors);
    fflush(stdout);
}

static void json_head(FILE *f, const char *workload, const char *engine, size_t n)
{
    fprintf(f, "{\"suite\":\"text\",\"workload\":\"%s\",\"engine\":\"%s\",\"n\":%zu", workload,
            engine, n);
}

static void write_json(const text_opts *o, const text_run *t)
{
    const engine_out *outs = t->outs;
    FILE *f = bench_json_open(o->run.json);
    size_t n = t->gcide.n;
    for (size_t i = 0; i < o->nengines; i++) {
        const engine_out *eo = &outs[i];
        const char *name = o->engines[i]->name;
        if ((o->workloads & WL_QUALITY) && eo->quality.have_search) {
            json_head(f, "cranfield", name, t->cran.n);
            fprintf(f, ",\"queries\":%zu,\"fields\":\"%s\",\"ndcg_at_10\":%.4f,\"map\":%.4f,"
                       "\"p_at_10\":%.4f,\"r_at_100\":%.4f,\"depth\":%d,\"ok\":%s}\n",
                    t->cq.n, o->cran_fields == TEXT_CRAN_W ? "W" : "T+W", eo->ndcg, eo->map,
                    eo->p10, eo->r100, QUALITY_K, eo->qbad ? "false" : "true");
        }
        if (!(o->workloads & WL_SPEED))
            continue;
        const run_out *r = &eo->speed;
        if (r->have_build) {
            json_head(f, "index", name, n);
            fprintf(f, ",\"corpus\":");
            bench_json_str(f, o->corpus ? o->corpus : "gcide");
            fprintf(f, ",\"docs_per_s\":%.1f,\"index_s\":%.3f,\"commit_s\":%.3f,\"close_s\":%.3f,"
                       "\"text_bytes\":%" PRIu64 ",\"bytes_on_disk\":%" PRIu64
                       ",\"transactions\":1,\"peak_rss_kb\":%" PRIu64 ",\"base_rss_kb\":%" PRIu64
                       ",\"desc\":",
                    docs_per_s(r, n), r->build.index_s, r->build.commit_s, r->build.close_s,
                    t->gcide.bytes,
                    r->build.bytes, r->peak_rss_kb, r->base_rss_kb);
            bench_json_str(f, r->build.desc);
            fprintf(f, "}\n");
        }
        if (r->have_search) {
            json_head(f, "query", name, n);
            fprintf(f, ",\"corpus\":");
            bench_json_str(f, o->corpus ? o->corpus : "gcide");
            fprintf(f, ",\"qps\":%.1f,\"queries\":%zu,\"passes\":%u,\"k\":%d,\"seconds\":%.4f,"
                       "\"threads\":1,\"queries_per_txn\":%d,\"ok\":%s}\n",
                    r->qps, t->gq.n, r->passes, SPEED_K, r->secs, TEXT_QUERIES_PER_TXN,
                    eo->sbad ? "false" : "true");
        }
    }
    for (size_t i = 0; i < o->nengines; i++)
        if (outs[i].errors[0]) {
            json_head(f, "errors", o->engines[i]->name, n);
            fprintf(f, ",\"errors\":");
            bench_json_str(f, outs[i].errors);
            fprintf(f, "}\n");
        }
    for (size_t a = 0; a < o->nengines; a++)
        for (size_t b = a + 1; b < o->nengines; b++) {
            if ((o->workloads & WL_QUALITY) && outs[a].quality.have_search &&
                outs[b].quality.have_search) {
                json_head(f, "cranfield_agreement", o->engines[a]->name, t->cran.n);
                fprintf(f, ",\"vs\":\"%s\",\"jaccard_at_10\":%.4f}\n", o->engines[b]->name,
                        jaccard(outs[a].qrows, outs[b].qrows, t->cq.n, QUALITY_K));
            }
            if ((o->workloads & WL_SPEED) && outs[a].speed.have_search &&
                outs[b].speed.have_search) {
                json_head(f, "query_agreement", o->engines[a]->name, n);
                fprintf(f, ",\"vs\":\"%s\",\"jaccard_at_10\":%.4f}\n", o->engines[b]->name,
                        jaccard(outs[a].srows, outs[b].srows, t->gq.n, SPEED_K));
            }
        }
    int si = find_engine_idx(o, "sop");
    for (size_t p = 0; si >= 0 && p < o->nengines; p++) {
        if ((int)p == si)
            continue;
        const engine_out *a = &outs[si], *b = &outs[p];
        const char *pn = o->engines[p]->name;
        if (a->quality.have_search && b->quality.have_search) {
            json_head(f, "cranfield", "ratio", t->cran.n);
            fprintf(f, ",\"vs\":\"%s\",\"of\":\"sop\",\"ndcg_at_10_diff\":%.4f,\"map_diff\":%.4f}\n",
                    pn, a->ndcg - b->ndcg, a->map - b->map);
        }
        if (docs_per_s(&a->speed, n) > 0 && docs_per_s(&b->speed, n) > 0) {
            json_head(f, "index", "ratio", n);
            fprintf(f, ",\"vs\":\"%s\",\"of\":\"sop\",\"value\":%.4f,\"bytes_ratio\":%.4f}\n", pn,
                    docs_per_s(&a->speed, n) / docs_per_s(&b->speed, n),
                    b->speed.build.bytes ? (double)a->speed.build.bytes /
                                               (double)b->speed.build.bytes
                                         : 0.0);
        }
        if (a->speed.have_search && b->speed.have_search && b->speed.qps > 0) {
            json_head(f, "query", "ratio", n);
            fprintf(f, ",\"vs\":\"%s\",\"of\":\"sop\",\"value\":%.4f}\n", pn,
                    a->speed.qps / b->speed.qps);
        }
    }
    bench_json_close(f, o->run.json);
}

/* ------------------------------------------------------------------ */
/* Options                                                            */
/* ------------------------------------------------------------------ */

static void text_usage(FILE *f)
{
    fprintf(f, "usage: sop-bench text [options]\n"
               "  --n N            GCIDE documents: the first N definition blocks (default %d;\n"
               "                   0 or --full: all 126,235)\n"
               "  --full           the full size (the README figures)\n"
               "  --queries Q      GCIDE queries of 1-3 words (default 2000)\n"
               "  --seed S         seed of the query sample (default 42)\n"
               "  --min-time SEC   time the GCIDE queries over whole passes until SEC seconds\n"
               "                   have passed (default 1)\n"
               "  --workloads LIST quality (Cranfield), speed (GCIDE) (default: both)\n"
               "  --engines LIST   comma list of:",
            QUICK_N);
    for (size_t i = 0; all_engines[i]; i++)
        fprintf(f, " %s", all_engines[i]->name);
    fprintf(f, "\n"
               "                   (default: all of them)\n"
               "  --cranfield DIR  the Cranfield collection (default %s)\n"
               "  --cranfield-fields tw|w  index title + text (default) or the text alone\n"
               "  --gcide-index F  dictd index (default " GCIDE_INDEX ")\n"
               "  --gcide-dict F   dictd dictionary, dictzip or plain gzip (default\n"
               "                   " GCIDE_DICT ")\n"
               "  --corpus F.jsonl the speed workload on these documents instead of GCIDE: one\n"
               "                   JSON object per line, its \"text\" string the document\n"
               "                   (--n: the first N lines)\n"
               "  --repeat R       run the speed workload R times per engine, interleaved;\n"
               "                   report the best\n"
               "  --dir DIR        work directory (default /tmp/sop-bench); DIR/<engine>-<data>\n"
               "                   is deleted before and after each run\n"
               "  --keep           keep the indexes\n"
               "  --json FILE      write JSON lines to FILE (truncated)\n"
               "  --timeout SEC    kill an engine's run after SEC seconds (default 3600, 0: none)\n"
               "Environment: SOP_BENCH_CACHE_MB, the node / page cache of sop and SQLite\n"
               "(default 64). The sop engine is compiled only with -DSOP_BENCH_TEXT_SOP=ON;\n"
               "xapian with libxapian-dev and g++.\n",
            SOP_BENCH_DEFAULT_CRANFIELD_DIR);
}

static const char *engine_name(size_t i) { return all_engines[i]->name; }

static void not_built(const char *name)
{
    if (strcmp(name, "sop") == 0)
        bench_die("engine 'sop' is not compiled in (configure with -DSOP_BENCH_TEXT_SOP=ON)");
    if (strcmp(name, "xapian") == 0)
        bench_die("engine 'xapian' is not compiled in (install libxapian-dev and g++, "
                  "then reconfigure)");
}

static void parse_engines(text_opts *o, const char *list)
{
    size_t idx[N_ALL_ENGINES + 1];
    o->nengines = bench_parse_engines(list, N_ALL_ENGINES, engine_name, not_built, "text", idx);
    for (size_t i = 0; i < o->nengines; i++)
        o->engines[i] = all_engines[idx[i]];
}

static int parse_workloads(const char *list)
{
    char buf[128];
    int w = 0;
    snprintf(buf, sizeof buf, "%s", list);
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok;
         tok = strtok_r(NULL, ",", &save)) {
        if (strcmp(tok, "quality") == 0 || strcmp(tok, "cranfield") == 0)
            w |= WL_QUALITY;
        else if (strcmp(tok, "speed") == 0 || strcmp(tok, "gcide") == 0)
            w |= WL_SPEED;
        else
            bench_die("--workloads: unknown '%s' (quality, speed)", tok);
    }
    if (!w)
        bench_die("--workloads: empty list");
    return w;
}

static int parse_fields(const char *v)
{
    if (strcmp(v, "tw") == 0 || strcmp(v, "TW") == 0)
        return TEXT_CRAN_TW;
    if (strcmp(v, "w") == 0 || strcmp(v, "W") == 0)
        return TEXT_CRAN_W;
    bench_die("--cranfield-fields: tw or w, got '%s'", v);
}

int bench_text_main(int argc, char **argv)
{
    text_opts o = {.n = QUICK_N,
                   .queries = 2000,
                   .seed = 42,
                   .min_time = 1.0,
                   .workloads = WL_QUALITY | WL_SPEED,
                   .cran_fields = TEXT_CRAN_TW,
                   .run = BENCH_RUN_OPTS_DEFAULT,
                   .cranfield = SOP_BENCH_DEFAULT_CRANFIELD_DIR,
                   .gcide_index = GCIDE_INDEX,
                   .gcide_dict = GCIDE_DICT};
    for (size_t i = 0; all_engines[i]; i++)
        o.engines[o.nengines++] = all_engines[i];
    bench_args a;
    for (bench_args_init(&a, argc, argv); bench_args_next(&a);) {
        if (bench_args_help(&a)) {
            text_usage(stdout);
            return 0;
        } else if (bench_args_is(&a, "--n") || bench_args_is(&a, "-n")) {
            o.n = bench_args_count(&a);
        } else if (bench_args_is(&a, "--full")) {
            o.n = 0;
        } else if (bench_args_is(&a, "--queries")) {
            o.queries = bench_args_count(&a);
        } else if (bench_args_is(&a, "--seed")) {
            o.seed = bench_args_count(&a);
        } else if (bench_args_is(&a, "--min-time")) {
            o.min_time = bench_args_seconds(&a);
        } else if (bench_args_is(&a, "--workloads")) {
            o.workloads = parse_workloads(bench_args_value(&a));
        } else if (bench_args_is(&a, "--engines")) {
            parse_engines(&o, bench_args_value(&a));
        } else if (bench_args_is(&a, "--cranfield")) {
            o.cranfield = bench_args_value(&a);
        } else if (bench_args_is(&a, "--cranfield-fields")) {
            o.cran_fields = parse_fields(bench_args_value(&a));
        } else if (bench_args_is(&a, "--gcide-index")) {
            o.gcide_index = bench_args_value(&a);
        } else if (bench_args_is(&a, "--gcide-dict")) {
            o.gcide_dict = bench_args_value(&a);
        } else if (bench_args_is(&a, "--corpus")) {
            o.corpus = bench_args_value(&a);
        } else if (!bench_args_run_opt(&a, &o.run)) {
            bench_args_unknown(&a, "text", text_usage);
        }
    }
    if (o.queries < 1)
        bench_die("--queries must be at least 1");
    bench_run_opts_ready(&o.run);

    text_run t;
    memset(&t, 0, sizeof t);
    double t0 = bench_now();
    uint32_t **rel = NULL, *nrel = NULL;
    if (o.workloads & WL_QUALITY) {
        text_queries all;
        text_cranfield_load(o.cranfield, o.cran_fields, &t.cran, &all, &rel, &nrel);
        /* keep the judged queries (and their judgments) */
        t.cq_all = all.n;
        t.cq = all;
        size_t kept = 0;
        for (size_t i = 0; i < all.n; i++) {
            if (nrel[i] == 0) {
                free(rel[i]);
                continue;
            }
            t.cq.q[kept] = all.q[i];
            rel[kept] = rel[i];
            nrel[kept] = nrel[i];
            kept++;
        }
        t.cq.n = kept;
    }
    if (o.workloads & WL_SPEED) {
        if (o.corpus)
            text_jsonl_load(o.corpus, (size_t)o.n, &t.gcide);
        else
            text_gcide_load(o.gcide_index, o.gcide_dict, (size_t)o.n, &t.gcide);
        text_sample_queries(&t.gcide, (size_t)o.queries, o.seed, &t.gq);
    }
    fprintf(stderr, "sop-bench text: data ready in %.1f s\n", bench_now() - t0);

    t.outs = calloc(o.nengines, sizeof *t.outs);
    if (!t.outs)
        bench_die("out of memory");
    fprintf(stderr, "sop-bench text:");
    if (o.workloads & WL_QUALITY)
        fprintf(stderr, " cranfield %zu docs, %zu judged queries;", t.cran.n, t.cq.n);
    if (o.workloads & WL_SPEED)
        fprintf(stderr, " gcide n=%zu (%.1f MB), %zu queries;", t.gcide.n,
                (double)t.gcide.bytes / 1048576.0, t.gq.n);
    fprintf(stderr, " engines:");
    for (size_t i = 0; i < o.nengines; i++)
        fprintf(stderr, " %s", o.engines[i]->name);
    fprintf(stderr, ", dir=%s\n", o.run.dir);

    t0 = bench_now();
    for (size_t i = 0; i < o.nengines; i++) {
        engine_out *eo = &t.outs[i];
        if (o.workloads & WL_QUALITY)
            eo->qrows = shared_rows(t.cq.n * QUALITY_K);
        if (o.workloads & WL_SPEED)
            eo->srows = shared_rows(t.gq.n * SPEED_K);
    }
    if (o.workloads & WL_QUALITY)
        for (size_t i = 0; i < o.nengines; i++) {
            engine_out *eo = &t.outs[i];
            job j = {.c = &t.cran, .q = &t.cq, .k = QUALITY_K, .timed = 0, .out = eo->qrows,
                     .tag = "cranfield"};
            if (run_job(&o, o.engines[i], &j, &eo->quality, eo, 0)) {
                eo->qbad = check_rows(eo->qrows, t.cq.n, QUALITY_K, t.cran.n);
                score_quality(&t.cran, eo->qrows, t.cq.n, rel, nrel, eo);
            }
        }
    if (o.workloads & WL_SPEED)
        for (uint64_t pass = 0; pass < o.run.repeat; pass++)
            for (size_t i = 0; i < o.nengines; i++) {
                engine_out *eo = &t.outs[i];
                job j = {.c = &t.gcide, .q = &t.gq, .k = SPEED_K, .timed = 1, .out = eo->srows,
                         .tag = "gcide"};
                if (run_job(&o, o.engines[i], &j, &eo->speed, eo, (int)pass))
                    eo->sbad = check_rows(eo->srows, t.gq.n, SPEED_K, t.gcide.n);
            }
    fprintf(stderr, "sop-bench text: done in %.1f s\n", bench_now() - t0);
    report(&o, &t);
    if (o.run.json)
        write_json(&o, &t);
    int failed = 0;
    for (size_t i = 0; i < o.nengines; i++) {
        const engine_out *eo = &t.outs[i];
        if (eo->errors[0] || eo->qbad || eo->sbad)
            failed = 1;
        if ((o.workloads & WL_QUALITY) && !eo->quality.have_search)
            failed = 1;
        if ((o.workloads & WL_SPEED) && !eo->speed.have_search)
            failed = 1;
        if (eo->qrows)
            munmap(eo->qrows, t.cq.n * QUALITY_K * sizeof(int32_t));
        if (eo->srows)
            munmap(eo->srows, t.gq.n * SPEED_K * sizeof(int32_t));
    }
    if (rel) {
        for (size_t i = 0; i < t.cq.n; i++)
            free(rel[i]);
        free(rel);
        free(nrel);
    }
    free(t.outs);
    text_corpus_free(&t.cran);
    text_corpus_free(&t.gcide);
    text_queries_free(&t.cq);
    text_queries_free(&t.gq);
    return failed ? 1 : 0;
}
