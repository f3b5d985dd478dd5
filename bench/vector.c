/*
 * vector.c - `sop-bench vector`: nearest-neighbour search on GloVe 100-d
 * word vectors, run side by side on sop (IVF), FAISS IndexIVFFlat (same
 * nlist, same nprobe) and hnswlib (a reference line), with the same data,
 * in the same program.
 *
 * Data (vec_data.c): the .fvecs files made by scripts/fetch_glove.sh
 * (340,479 base vectors, 1,000 held-out queries), the first --n base
 * vectors and --queries queries, normalised, so that cosine similarity is
 * the inner product; exact top-10 neighbours by brute force (sgemm),
 * cached next to the data.
 *
 * Each engine runs in its own forked child (so its peak RSS is its own) in
 * its own directory, and streams results to the parent over a pipe: first
 * the build (training and adding timed separately where the engine has
 * both, index bytes), then one row per sweep point (nprobe, or ef for
 * hnswlib): the --queries queries run once untimed at the first point
 * (warm-up), then per point, timed, in passes over the whole query set
 * until --min-time seconds have passed (at least one pass), one query per
 * call on one thread (OpenBLAS and OpenMP limited to one thread for the
 * queries); recall is that of the last pass. Builds use every core (see
 * each engine's file for how). recall@10 = |returned top 10 ∩ exact top
 * 10| / 10, averaged over the queries.
 */
#include "vector.h"

#include <cblas.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "bench_util.h"
#include "child.h"
#include "options.h"

#ifndef SOP_BENCH_DEFAULT_GLOVE_DIR
#define SOP_BENCH_DEFAULT_GLOVE_DIR ".cache/glove"
#endif

/* ------------------------------------------------------------------ */
/* Errors                                                             */
/* ------------------------------------------------------------------ */

static char vec_errbuf[256];

void vec_set_err(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(vec_errbuf, sizeof vec_errbuf, fmt, ap);
    va_end(ap);
}

const char *vec_err(void)
{
    return vec_errbuf[0] ? vec_errbuf : "unknown error";
}

/* ------------------------------------------------------------------ */
/* Engines, options                                                   */
/* ------------------------------------------------------------------ */

static const vec_engine *const all_engines[] = {
#if defined(SOP_BENCH_VECTOR_SOP) && !defined(SOP_BENCH_NO_SOP)
    &vec_engine_sop,
#endif
#ifdef SOP_BENCH_HAVE_FAISS
    &vec_engine_faiss,
#endif
#ifdef SOP_BENCH_HAVE_HNSWLIB
    &vec_engine_hnswlib,
#endif
    NULL, /* keeps the array non-empty when no engine is compiled in */
};
#define N_ALL_ENGINES (sizeof all_engines / sizeof all_engines[0] - 1)

#define MAX_POINTS 32
#define TARGET_RECALL 0.90
#define QUICK_N 50000

typedef struct vec_opts {
    uint64_t n, queries, nlist;
    double min_time;
    bench_run_opts run;
    const char *data;
    const vec_engine *engines[N_ALL_ENGINES + 1];
    size_t nengines;
    uint32_t nprobe[MAX_POINTS], ef[MAX_POINTS];
    size_t nnprobe, nef;
} vec_opts;

/* The sweep of an engine: nprobe (clipped to nlist) or ef. */
static size_t sweep_of(const vec_opts *o, const vec_engine *e, const uint32_t **pts)
{
    *pts = e->ivf ? o->nprobe : o->ef;
    return e->ivf ? o->nnprobe : o->nef;
}

uint32_t vec_nlist_for(uint64_t n)
{
    if (n < 2)
        return 1;
    int p = (int)floor(log2(2.0 * sqrt((double)n)) + 0.5);
    p = p < 0 ? 0 : p > 16 ? 16 : p;
    return 1u << p;
}

const char *vec_glove_dir(void)
{
    const char *d = getenv("SOP_BENCH_GLOVE_DIR");
    return d && *d ? d : SOP_BENCH_DEFAULT_GLOVE_DIR;
}

void vec_set_faiss_omp(const char *opt, const char *val)
{
    uint64_t t = bench_parse_count(opt, val);
    char buf[24];
    snprintf(buf, sizeof buf, "%" PRIu64, t);
    setenv("SOP_BENCH_FAISS_OMP_THREADS", buf, 1);
}

/* ------------------------------------------------------------------ */
/* Child -> parent messages                                           */
/* ------------------------------------------------------------------ */

/* The stages: 0 the build, else the sweep point being searched. */
enum { MSG_BUILD = BENCH_MSG_USER, MSG_POINT, MSG_FOOT };

typedef struct vec_msg {
    bench_msg h; /* text: POINT's note */
    int ok;
    uint32_t param;  /* POINT: nprobe or ef */
    uint32_t passes; /* POINT: passes over the query set timed */
    uint64_t nq, bad, base_rss_kb;
    double recall, qps, secs;
    vec_build build;
} vec_msg;

/* ------------------------------------------------------------------ */
/* The child: one engine, build then the sweep                        */
/* ------------------------------------------------------------------ */

/* recall@10 of @p out against the exact neighbours; counts ids that are
 * out of range or repeated in @p bad. */
static double recall_of(const vec_data *d, const int32_t *out, uint64_t *bad)
{
    uint64_t hit = 0;
    for (size_t q = 0; q < d->nq; q++) {
        const int32_t *o = out + q * VEC_K, *g = d->gt + q * VEC_K;
        for (int j = 0; j < VEC_K; j++) {
            if (o[j] == -1)
                continue;
            if (o[j] < 0 || (size_t)o[j] >= d->n) {
                (*bad)++;
                continue;
            }
            int dup = 0;
            for (int i = 0; i < j; i++)
                dup |= o[i] == o[j];
            if (dup) {
                (*bad)++;
                continue;
            }
            for (int i = 0; i < VEC_K; i++)
                if (g[i] == o[j]) {
                    hit++;
                    break;
                }
        }
    }
    return (double)hit / ((double)d->nq * VEC_K);
}

static void child_main(const vec_opts *o, const vec_engine *e, const vec_data *d)
{
    char root[4200];
    snprintf(root, sizeof root, "%s/%s", o->run.dir, e->name);
    if (bench_child_workdir(root) != 0)
        return;
    int32_t *out = malloc(d->nq * VEC_K * sizeof *out);
    if (!out) {
        bench_child_error("malloc", "out of memory");
        return;
    }
    uint64_t base_rss = bench_maxrss_kb();

    bench_child_stage(0);
    vec_msg m;
    vec_index *ix = NULL;
    vec_build b;
    memset(&b, 0, sizeof b);
    if (e->build(d, (uint32_t)o->nlist, root, &ix, &b) != 0) {
        bench_child_error("build", vec_err());
        goto done;
    }
    m = (vec_msg){.h.kind = MSG_BUILD, .ok = 1, .build = b};
    bench_child_send(&m);

    /* queries: one thread (OpenMP is limited by the FAISS shim itself) */
    openblas_set_num_threads(1);
    const uint32_t *pts;
    size_t npts = sweep_of(o, e, &pts);
    if (npts > 0 && e->search(ix, d, pts[0], 0, d->nq, out) != 0) {
        bench_child_error("warm-up search", vec_err());
        goto close;
    }
    for (size_t i = 0; i < npts; i++) {
        bench_child_stage((int)pts[i]);
        double t0 = bench_now(), secs;
        uint32_t passes = 0;
        int rc;
        do {
            rc = e->search(ix, d, pts[i], 0, d->nq, out);
            passes++;
            secs = bench_now() - t0;
        } while (rc == 0 && secs < o->min_time);
        if (rc != 0) {
            char what[64];
            snprintf(what, sizeof what, "search %s=%u", e->param, pts[i]);
            bench_child_error(what, vec_err());
            break;
        }
        uint64_t bad = 0;
        double rec = recall_of(d, out, &bad);
        m = (vec_msg){.h.kind = MSG_POINT,
                      .ok = bad == 0,
                      .param = pts[i],
                      .passes = passes,
                      .nq = d->nq,
                      .bad = bad,
                      .recall = rec,
                      .secs = secs,
                      .qps = secs > 0 ? (double)d->nq * passes / secs : 0};
        if (bad)
            snprintf(m.h.text, sizeof m.h.text, "VERIFY FAILED: %" PRIu64 " bad ids", bad);
        bench_child_send(&m);
    }
close:
    e->close(ix);
done:
    m = (vec_msg){.h.kind = MSG_FOOT, .base_rss_kb = base_rss};
    bench_child_send(&m);
    if (!o->run.keep)
        bench_rmtree(root);
    free(out);
}

/* ------------------------------------------------------------------ */
/* The parent: fork per engine, collect, report                       */
/* ------------------------------------------------------------------ */

typedef struct point {
    int have, ok;
    vec_msg m;
} point;

typedef struct engine_out {
    point pts[MAX_POINTS];
    int have_build;
    vec_build build;
    uint64_t base_rss_kb, peak_rss_kb;
    char errors[1024];
} engine_out;

static double build_total(const vec_build *b) { return b->train_s + b->add_s; }

/* What the child and the parent of one engine's run share. */
typedef struct run_ctx {
    const vec_opts *o;
    const vec_engine *e;
    const vec_data *d;
    engine_out *eo;
} run_ctx;

static void child_entry(void *arg)
{
    const run_ctx *r = arg;
    child_main(r->o, r->e, r->d);
}

/* A sweep point's result: printed, kept if the best of the repeats. */
static void take_point(const run_ctx *r, const vec_msg *m)
{
    const vec_engine *e = r->e;
    const uint32_t *pts;
    size_t npts = sweep_of(r->o, e, &pts), i = 0;
    while (i < npts && pts[i] != m->param)
        i++;
    if (i == npts)
        return;
    point *pt = &r->eo->pts[i];
    char num[32];
    fprintf(stderr, "  [%s] %s=%-4u recall@10 %.4f  %10s q/s%s%s\n", e->name, e->param, m->param,
            m->recall, bench_fmt_int(num, sizeof num, m->qps), m->h.text[0] ? "  " : "", m->h.text);
    /* over repeats keep the best run (least disturbed by noise) */
    if (!pt->have || (m->ok && (!pt->ok || m->qps > pt->m.qps))) {
        pt->have = 1;
        pt->ok = m->ok;
        pt->m = *m;
    }
}

static void on_msg(const void *msg, void *arg)
{
    const vec_msg *m = msg;
    const run_ctx *r = arg;
    engine_out *eo = r->eo;
    char num[32];
    switch (m->h.kind) {
    case BENCH_MSG_ERROR:
        fprintf(stderr, "  [%s] FAILED: %s\n", r->e->name, m->h.text);
        bench_append_err(eo->errors, sizeof eo->errors, "%s", m->h.text);
        break;
    case MSG_BUILD:
        fprintf(stderr, "  [%s] build: train %.2f s, add %.2f s, %s bytes  (%s)\n", r->e->name,
                m->build.train_s, m->build.add_s,
                bench_fmt_int(num, sizeof num, (double)m->build.bytes), m->build.desc);
        /* over repeats keep the fastest build */
        if (!eo->have_build || build_total(&m->build) < build_total(&eo->build))
            eo->build = m->build;
        eo->have_build = 1;
        break;
    case MSG_POINT:
        take_point(r, m);
        break;
    case MSG_FOOT:
        eo->base_rss_kb = m->base_rss_kb;
        break;
    default:
        break;
    }
}

static void run_engine(const vec_opts *o, const vec_engine *e, const vec_data *d,
                       engine_out *eo, int pass)
{
    run_ctx r = {.o = o, .e = e, .d = d, .eo = eo};
    bench_child c = {.main = child_entry,
                     .on_msg = on_msg,
                     .arg = &r,
                     .msg_size = sizeof(vec_msg),
                     .timeout = o->run.timeout};
    bench_child_end end;
    bench_child_run(&c, &end);
    if (end.maxrss_kb > eo->peak_rss_kb)
        eo->peak_rss_kb = end.maxrss_kb;
    char stage[64] = "startup";
    if (end.stage > 0)
        snprintf(stage, sizeof stage, "search %s=%d", e->param, end.stage);
    else if (end.stage == 0)
        snprintf(stage, sizeof stage, "build");
    bench_child_verdict(&end, e->name, NULL, stage, pass, eo->errors, sizeof eo->errors);
}

/* Queries/s at recall@10 = @p target: linear in recall on log(qps) between
 * the first two consecutive sweep points (in sweep order) that bracket it.
 * Returns 0 and sets *lo, *hi (indices) on success; -1 if the sweep never
 * reaches the target, -2 if its first point is already above it. */
static int qps_at(const vec_opts *o, const vec_engine *e, const engine_out *eo, double target,
                  double *qps, size_t *lo, size_t *hi)
{
    const uint32_t *pts;
    size_t npts = sweep_of(o, e, &pts);
    ssize_t prev = -1;
    int any = 0;
    for (size_t i = 0; i < npts; i++) {
        const point *p = &eo->pts[i];
        if (!p->have || !p->ok || p->m.qps <= 0)
            continue;
        if (p->m.recall >= target) {
            if (prev < 0) {
                if (p->m.recall == target) {
                    *qps = p->m.qps;
                    *lo = *hi = i;
                    return 0;
                }
                return any ? -1 : -2;
            }
            const vec_msg *a = &eo->pts[prev].m, *b = &p->m;
            double f = (target - a->recall) / (b->recall - a->recall);
            *qps = exp(log(a->qps) + f * (log(b->qps) - log(a->qps)));
            *lo = (size_t)prev;
            *hi = i;
            return 0;
        }
        prev = (ssize_t)i;
        any = 1;
    }
    return -1;
}

static int find_engine_idx(const vec_opts *o, const char *name)
{
    for (size_t i = 0; i < o->nengines; i++)
        if (strcmp(o->engines[i]->name, name) == 0)
            return (int)i;
    return -1;
}

/* The point of engine @p ei whose parameter is @p p, or NULL. */
static const point *point_at(const vec_opts *o, const engine_out *outs, int ei, uint32_t p)
{
    const uint32_t *pts;
    size_t npts = sweep_of(o, o->engines[ei], &pts);
    for (size_t i = 0; i < npts; i++)
        if (pts[i] == p && outs[ei].pts[i].have && outs[ei].pts[i].ok)
            return &outs[ei].pts[i];
    return NULL;
}

static void report(const vec_opts *o, const vec_data *d, engine_out *outs)
{
    char num[32], num2[32], num3[32];
    printf("\nsop-bench vector: GloVe %u-d, n=%zu base vectors, %zu queries, k=%d, nlist=%" PRIu64
           ", cosine (inner product on unit vectors), best of %" PRIu64 "\n",
           d->dims, d->n, d->nq, VEC_K, o->nlist, o->run.repeat);
    printf("queries: one thread, one query per call; builds: the threads named in each "
           "engine's build line (%s)\n",
           openblas_get_config());
    printf("%-9s %-12s %10s %12s %7s  %s\n", "engine", "param", "recall@10", "queries/s",
           "passes", "note");
    for (size_t i = 0; i < o->nengines; i++) {
        const vec_engine *e = o->engines[i];
        const uint32_t *pts;
        size_t npts = sweep_of(o, e, &pts);
        for (size_t j = 0; j < npts; j++) {
            const point *p = &outs[i].pts[j];
            if (!p->have)
                continue;
            char param[32];
            snprintf(param, sizeof param, "%s=%u", e->param, pts[j]);
            printf("%-9s %-12s %10.4f %12s %7u  %s\n", e->name, param, p->m.recall,
                   bench_fmt_int(num, sizeof num, p->m.qps), p->m.passes, p->m.h.text);
        }
    }

    printf("\n%-9s %9s %9s %9s %12s %11s %13s %13s\n", "engine", "train_s", "add_s", "build_s",
           "bytes/vec", "index_MB", "peak_rss_kb", "base_rss_kb");
    for (size_t i = 0; i < o->nengines; i++) {
        const engine_out *eo = &outs[i];
        if (!eo->have_build) {
            printf("%-9s (no build)\n", o->engines[i]->name);
            continue;
        }
        const vec_build *b = &eo->build;
        printf("%-9s %9.2f %9.2f %9.2f %12.1f %11.1f %13s %13s\n", o->engines[i]->name,
               b->train_s, b->add_s, build_total(b), (double)b->bytes / (double)d->n,
               (double)b->bytes / 1048576.0,
               bench_fmt_int(num2, sizeof num2, (double)eo->peak_rss_kb),
               bench_fmt_int(num3, sizeof num3, (double)eo->base_rss_kb));
    }
    for (size_t i = 0; i < o->nengines; i++)
        if (outs[i].have_build)
            printf("  %-8s %s\n", o->engines[i]->name, outs[i].build.desc);
    printf("(raw vectors: %u bytes each; bytes/vec: sop = database on disk / n, faiss = "
           "write_index size / n, hnswlib = saveIndex size / n; peak RSS of the engine's child, "
           "base = at its start, incl. the shared data)\n",
           d->dims * 4);

    printf("\nqueries/s at recall@10 = %.2f (linear in recall on log(qps) between the two sweep "
           "points that bracket it):\n",
           TARGET_RECALL);
    double at[N_ALL_ENGINES + 1];
    int have_at[N_ALL_ENGINES + 1];
    for (size_t i = 0; i < o->nengines; i++) {
        const vec_engine *e = o->engines[i];
        const uint32_t *pts;
        sweep_of(o, e, &pts);
        size_t lo, hi;
        int rc = qps_at(o, e, &outs[i], TARGET_RECALL, &at[i], &lo, &hi);
        have_at[i] = rc == 0;
        if (rc == 0)
            printf("  %-9s %12s  (between %s=%u and %s=%u)\n", e->name,
                   bench_fmt_int(num, sizeof num, at[i]), e->param, pts[lo], e->param, pts[hi]);
        else
            printf("  %-9s %12s  (%s)\n", e->name, "-",
                   rc == -2 ? "already above at the first point" : "not reached by the sweep");
    }

    int si = find_engine_idx(o, "sop");
    if (si < 0)
        goto errors;
    printf("\nratios (sop vs peer; qps ratio > 1 means sop is faster, recall diff > 0 means sop "
           "finds more)\n");
    int fi = find_engine_idx(o, "faiss");
    if (fi >= 0) {
        printf("%-8s %10s %12s %11s %12s %12s %9s\n", "nprobe", "sop rec", "faiss rec",
               "rec diff", "sop q/s", "faiss q/s", "q/s ratio");
        for (size_t j = 0; j < o->nnprobe; j++) {
            const point *a = point_at(o, outs, si, o->nprobe[j]);
            const point *b = point_at(o, outs, fi, o->nprobe[j]);
            if (!a || !b || b->m.qps <= 0)
                continue;
            printf("%-8u %10.4f %12.4f %+11.4f %12s %12s %9.3f\n", o->nprobe[j], a->m.recall,
                   b->m.recall, a->m.recall - b->m.recall,
                   bench_fmt_int(num, sizeof num, a->m.qps),
                   bench_fmt_int(num2, sizeof num2, b->m.qps), a->m.qps / b->m.qps);
        }
    }
    for (size_t p = 0; p < o->nengines; p++) {
        if ((int)p == si)
            continue;
        const char *pn = o->engines[p]->name;
        if (have_at[si] && have_at[p])
            printf("q/s at recall %.2f, sop / %-8s %.3f\n", TARGET_RECALL, pn, at[si] / at[p]);
        if (outs[si].have_build && outs[p].have_build && build_total(&outs[p].build) > 0)
            printf("build time,       sop / %-8s %.3f  (%.2f s vs %.2f s)\n", pn,
                   build_total(&outs[si].build) / build_total(&outs[p].build),
                   build_total(&outs[si].build), build_total(&outs[p].build));
    }
errors:
    for (size_t i = 0; i < o->nengines; i++)
        if (outs[i].errors[0])
            printf("ERRORS %s: %s\n", o->engines[i]->name, outs[i].errors);
    fflush(stdout);
}

static void json_head(FILE *f, const char *workload, const char *engine, size_t n)
{
    fprintf(f, "{\"suite\":\"vector\",\"workload\":\"%s\",\"engine\":\"%s\",\"n\":%zu", workload,
            engine, n);
}

static void write_json(const vec_opts *o, const vec_data *d, engine_out *outs)
{
    FILE *f = bench_json_open(o->run.json);
    for (size_t i = 0; i < o->nengines; i++) {
        const vec_engine *e = o->engines[i];
        const uint32_t *pts;
        size_t npts = sweep_of(o, e, &pts);
        for (size_t j = 0; j < npts; j++) {
            const point *p = &outs[i].pts[j];
            if (!p->have)
                continue;
            json_head(f, "search", e->name, d->n);
            if (e->ivf)
                fprintf(f, ",\"nlist\":%" PRIu64 ",\"nprobe\":%u", o->nlist, pts[j]);
            else
                fprintf(f, ",\"nlist\":null,\"nprobe\":null,\"%s\":%u", e->param, pts[j]);
            fprintf(f, ",\"recall_at_10\":%.4f,\"qps\":%.1f,\"queries\":%zu,\"passes\":%u,"
                       "\"k\":%d,\"seconds\":%.4f,\"threads\":1,\"ok\":%s}\n",
                    p->m.recall, p->m.qps, d->nq, p->m.passes, VEC_K, p->m.secs,
                    p->ok ? "true" : "false");
        }
    }
    for (size_t i = 0; i < o->nengines; i++) {
        const engine_out *eo = &outs[i];
        json_head(f, "build", o->engines[i]->name, d->n);
        fprintf(f, ",\"nlist\":");
        if (o->engines[i]->ivf)
            fprintf(f, "%" PRIu64, o->nlist);
        else
            fprintf(f, "null");
        if (eo->have_build) {
            const vec_build *b = &eo->build;
            fprintf(f, ",\"train_s\":%.3f,\"add_s\":%.3f,\"build_s\":%.3f,\"index_bytes\":%" PRIu64
                       ",\"bytes_per_vector\":%.1f,\"desc\":",
                    b->train_s, b->add_s, build_total(b), b->bytes,
                    (double)b->bytes / (double)d->n);
            bench_json_str(f, b->desc);
        }
        fprintf(f, ",\"peak_rss_kb\":%" PRIu64 ",\"base_rss_kb\":%" PRIu64, eo->peak_rss_kb,
                eo->base_rss_kb);
        if (eo->errors[0]) {
            fprintf(f, ",\"errors\":");
            bench_json_str(f, eo->errors);
        }
        fprintf(f, "}\n");
    }
    double at[N_ALL_ENGINES + 1];
    int have_at[N_ALL_ENGINES + 1];
    for (size_t i = 0; i < o->nengines; i++) {
        size_t lo, hi;
        have_at[i] = qps_at(o, o->engines[i], &outs[i], TARGET_RECALL, &at[i], &lo, &hi) == 0;
        json_head(f, "qps_at_recall", o->engines[i]->name, d->n);
        fprintf(f, ",\"recall_at_10\":%.2f,\"qps\":", TARGET_RECALL);
        if (have_at[i])
            fprintf(f, "%.1f", at[i]);
        else
            fprintf(f, "null");
        fprintf(f, ",\"interpolation\":\"log_qps_linear_in_recall\"}\n");
    }
    int si = find_engine_idx(o, "sop");
    int fi = find_engine_idx(o, "faiss");
    if (si >= 0 && fi >= 0) {
        for (size_t j = 0; j < o->nnprobe; j++) {
            const point *a = point_at(o, outs, si, o->nprobe[j]);
            const point *b = point_at(o, outs, fi, o->nprobe[j]);
            if (!a || !b || b->m.qps <= 0)
                continue;
            json_head(f, "search", "ratio", d->n);
            fprintf(f, ",\"vs\":\"faiss\",\"of\":\"sop\",\"nlist\":%" PRIu64 ",\"nprobe\":%u,"
                       "\"recall_diff\":%.4f,\"qps_ratio\":%.4f}\n",
                    o->nlist, o->nprobe[j], a->m.recall - b->m.recall, a->m.qps / b->m.qps);
        }
    }
    if (si >= 0) {
        for (size_t p = 0; p < o->nengines; p++) {
            if ((int)p == si)
                continue;
            const char *pn = o->engines[p]->name;
            if (have_at[si] && have_at[p]) {
                json_head(f, "qps_at_recall", "ratio", d->n);
                fprintf(f, ",\"vs\":\"%s\",\"of\":\"sop\",\"recall_at_10\":%.2f,\"value\":%.4f}\n",
                        pn, TARGET_RECALL, at[si] / at[p]);
            }
            if (outs[si].have_build && outs[p].have_build && build_total(&outs[p].build) > 0) {
                json_head(f, "build", "ratio", d->n);
                fprintf(f, ",\"vs\":\"%s\",\"of\":\"sop\",\"value\":%.4f}\n", pn,
                        build_total(&outs[si].build) / build_total(&outs[p].build));
            }
        }
    }
    bench_json_close(f, o->run.json);
}

/* ------------------------------------------------------------------ */
/* Options                                                            */
/* ------------------------------------------------------------------ */

static void vec_usage(FILE *f)
{
    fprintf(f, "usage: sop-bench vector [options]\n"
               "  --n N            base vectors: the first N of the data (default %d; 0 or\n"
               "                   --full: all 340,479)\n"
               "  --full           the full size (the README figures)\n"
               "  --queries Q      queries (default 1000, all of the held-out ones)\n"
               "  --nlist L        IVF clusters of sop and faiss (default: the power of two\n"
               "                   nearest to 2 sqrt(n), as sop_vector_nlist_for(): 512 at\n"
               "                   n = 50,000, 1024 at the full size)\n"
               "  --nprobe LIST    nprobe sweep (default 1,2,4,8,16,32,64,128; values above\n"
               "                   nlist are dropped)\n"
               "  --ef LIST        hnswlib ef sweep (default 10,20,40,80,160,320)\n"
               "  --min-time SEC   time each sweep point over whole passes of the queries\n"
               "                   until SEC seconds have passed (default 0.5)\n"
               "  --faiss-omp T    OpenMP threads of FAISS's training and adding (default 1:\n"
               "                   OpenBLAS's threads do the products; 0: OpenMP's default)\n"
               "  --engines LIST   comma list of:",
            QUICK_N);
    for (size_t i = 0; all_engines[i]; i++)
        fprintf(f, " %s", all_engines[i]->name);
    fprintf(f, "%s\n"
               "                   (default: all of them)\n"
               "  --data DIR       the .fvecs files (default $SOP_BENCH_GLOVE_DIR, else\n"
               "                   %s); scripts/fetch_glove.sh makes them\n"
               "  --repeat R       run every engine R times, interleaved; report the best\n"
               "  --dir DIR        work directory (default /tmp/sop-bench); DIR/<engine> is\n"
               "                   deleted before and after each engine\n"
               "  --keep           keep the indexes\n"
               "  --json FILE      write JSON lines to FILE (truncated)\n"
               "  --timeout SEC    kill an engine's run after SEC seconds (default 3600, 0: none)\n"
               "The sop engine is compiled only with -DSOP_BENCH_VECTOR_SOP=ON.\n",
            N_ALL_ENGINES ? "" : " (none compiled in: install libfaiss-dev, libhnswlib-dev)",
            SOP_BENCH_DEFAULT_GLOVE_DIR);
}

static const char *engine_name(size_t i) { return all_engines[i]->name; }

static void not_built(const char *name)
{
    if (strcmp(name, "sop") == 0)
        bench_die("engine 'sop' is not compiled in (configure with -DSOP_BENCH_VECTOR_SOP=ON)");
    if (strcmp(name, "faiss") == 0 || strcmp(name, "hnswlib") == 0)
        bench_die("engine '%s' is not compiled in (install lib%s-dev and g++, then reconfigure)",
                  name, name);
}

static void parse_engines(vec_opts *o, const char *list)
{
    size_t idx[N_ALL_ENGINES + 1];
    o->nengines = bench_parse_engines(list, N_ALL_ENGINES, engine_name, not_built, "vector", idx);
    for (size_t i = 0; i < o->nengines; i++)
        o->engines[i] = all_engines[idx[i]];
}

static size_t parse_list(const char *opt, const char *list, uint32_t *out)
{
    char buf[512];
    size_t n = 0;
    snprintf(buf, sizeof buf, "%s", list);
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok;
         tok = strtok_r(NULL, ",", &save)) {
        uint64_t v = bench_parse_count(opt, tok);
        if (v < 1 || v > 65536)
            bench_die("%s: %s out of range 1..65536", opt, tok);
        if (n == MAX_POINTS)
            bench_die("%s: at most %d values", opt, MAX_POINTS);
        for (size_t i = 0; i < n; i++)
            if (out[i] == v)
                bench_die("%s: %s listed twice", opt, tok);
        out[n++] = (uint32_t)v;
    }
    if (n == 0)
        bench_die("%s: empty list", opt);
    return n;
}

int bench_vector_main(int argc, char **argv)
{
    vec_opts o = {.n = QUICK_N, .queries = 1000, .min_time = 0.5, .run = BENCH_RUN_OPTS_DEFAULT};
    o.data = vec_glove_dir();
    for (size_t i = 0; all_engines[i]; i++)
        o.engines[o.nengines++] = all_engines[i];
    o.nnprobe = parse_list("--nprobe", "1,2,4,8,16,32,64,128", o.nprobe);
    o.nef = parse_list("--ef", "10,20,40,80,160,320", o.ef);
    bench_args a;
    for (bench_args_init(&a, argc, argv); bench_args_next(&a);) {
        if (bench_args_help(&a)) {
            vec_usage(stdout);
            return 0;
        } else if (bench_args_is(&a, "--n") || bench_args_is(&a, "-n")) {
            o.n = bench_args_count(&a);
        } else if (bench_args_is(&a, "--full")) {
            o.n = 0;
        } else if (bench_args_is(&a, "--queries")) {
            o.queries = bench_args_count(&a);
        } else if (bench_args_is(&a, "--nlist")) {
            o.nlist = bench_args_count(&a);
        } else if (bench_args_is(&a, "--nprobe")) {
            o.nnprobe = parse_list(a.name, bench_args_value(&a), o.nprobe);
        } else if (bench_args_is(&a, "--ef")) {
            o.nef = parse_list(a.name, bench_args_value(&a), o.ef);
        } else if (bench_args_is(&a, "--engines")) {
            parse_engines(&o, bench_args_value(&a));
        } else if (bench_args_is(&a, "--faiss-omp")) {
            vec_set_faiss_omp(a.name, bench_args_value(&a));
        } else if (bench_args_is(&a, "--min-time")) {
            o.min_time = bench_args_seconds(&a);
        } else if (bench_args_is(&a, "--data")) {
            o.data = bench_args_value(&a);
        } else if (!bench_args_run_opt(&a, &o.run)) {
            bench_args_unknown(&a, "vector", vec_usage);
        }
    }
    if (o.nengines == 0)
        bench_die("vector: no engine compiled in (install libfaiss-dev, libhnswlib-dev, g++ "
                  "and reconfigure, or -DSOP_BENCH_VECTOR_SOP=ON)");
    if (o.queries < 1)
        bench_die("--queries must be at least 1");
    bench_run_opts_ready(&o.run);

    vec_data d;
    double t0 = bench_now();
    vec_data_load(&d, o.data, (size_t)o.n, (size_t)o.queries);
    if (d.n < VEC_K)
        bench_die("--n must be at least %d", VEC_K);
    fprintf(stderr, "sop-bench vector: data ready in %.1f s\n", bench_now() - t0);
    if (o.nlist == 0)
        o.nlist = vec_nlist_for(d.n);
    if (o.nlist > 65536 || o.nlist > d.n)
        bench_die("--nlist %" PRIu64 ": must be 1..min(65536, n)", o.nlist);
    size_t kept = 0;
    for (size_t i = 0; i < o.nnprobe; i++)
        if (o.nprobe[i] <= o.nlist)
            o.nprobe[kept++] = o.nprobe[i];
    if (kept < o.nnprobe)
        fprintf(stderr, "sop-bench vector: nprobe values above nlist=%" PRIu64 " dropped\n",
                o.nlist);
    o.nnprobe = kept;

    engine_out *outs = calloc(o.nengines, sizeof *outs);
    if (!outs)
        bench_die("out of memory");
    fprintf(stderr, "sop-bench vector: n=%zu, queries=%zu, nlist=%" PRIu64 ", engines:", d.n,
            d.nq, o.nlist);
    for (size_t i = 0; i < o.nengines; i++)
        fprintf(stderr, " %s", o.engines[i]->name);
    fprintf(stderr, ", dir=%s\n", o.run.dir);
    t0 = bench_now();
    for (uint64_t pass = 0; pass < o.run.repeat; pass++)
        for (size_t i = 0; i < o.nengines; i++)
            run_engine(&o, o.engines[i], &d, &outs[i], (int)pass);
    fprintf(stderr, "sop-bench vector: done in %.1f s\n", bench_now() - t0);
    report(&o, &d, outs);
    if (o.run.json)
        write_json(&o, &d, outs);
    int failed = 0;
    for (size_t i = 0; i < o.nengines; i++) {
        if (outs[i].errors[0] || !outs[i].have_build)
            failed = 1;
        for (size_t j = 0; j < MAX_POINTS; j++)
            if (outs[i].pts[j].have && !outs[i].pts[j].ok)
                failed = 1;
    }
    free(outs);
    vec_data_free(&d);
    return failed ? 1 : 0;
}
