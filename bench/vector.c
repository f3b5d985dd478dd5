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
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench_util.h"

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
    uint64_t n, queries, nlist, repeat, timeout;
    double min_time;
    const char *json, *dir, *data;
    const vec_engine *engines[N_ALL_ENGINES + 1];
    size_t nengines;
    uint32_t nprobe[MAX_POINTS], ef[MAX_POINTS];
    size_t nnprobe, nef;
    int keep;
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

/* ------------------------------------------------------------------ */
/* Child -> parent messages                                           */
/* ------------------------------------------------------------------ */

enum { MSG_STAGE = 1, MSG_BUILD, MSG_POINT, MSG_FOOT, MSG_ERROR };

typedef struct vec_msg {
    int kind;
    int ok;
    uint32_t param;      /* POINT: nprobe or ef; STAGE: 0 build, else the point */
    uint32_t passes;     /* POINT: passes over the query set timed */
    uint64_t nq, bad, base_rss_kb;
    double recall, qps, secs;
    vec_build build;
    char text[320];
} vec_msg; /* < PIPE_BUF: written atomically */

static int msg_fd = -1;

static void send_msg(const vec_msg *m) { bench_write_all(msg_fd, m, sizeof *m); }

static void send_error(const char *what, const char *detail)
{
    vec_msg m = {.kind = MSG_ERROR};
    snprintf(m.text, sizeof m.text, "%.40s: %.260s", what, detail);
    send_msg(&m);
}

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
    snprintf(root, sizeof root, "%s/%s", o->dir, e->name);
    bench_rmtree(root);
    if (bench_mkdirs(root) != 0) {
        send_error("mkdir", strerror(errno));
        return;
    }
    int32_t *out = malloc(d->nq * VEC_K * sizeof *out);
    if (!out) {
        send_error("malloc", "out of memory");
        return;
    }
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    uint64_t base_rss = (uint64_t)ru.ru_maxrss;

    vec_msg m = {.kind = MSG_STAGE};
    send_msg(&m);
    vec_index *ix = NULL;
    vec_build b;
    memset(&b, 0, sizeof b);
    if (e->build(d, (uint32_t)o->nlist, root, &ix, &b) != 0) {
        send_error("build", vec_err());
        goto done;
    }
    m = (vec_msg){.kind = MSG_BUILD, .ok = 1, .build = b};
    send_msg(&m);

    /* queries: one thread (OpenMP is limited by the FAISS shim itself) */
    openblas_set_num_threads(1);
    const uint32_t *pts;
    size_t npts = sweep_of(o, e, &pts);
    if (npts > 0 && e->search(ix, d, pts[0], 0, d->nq, out) != 0) {
        send_error("warm-up search", vec_err());
        goto close;
    }
    for (size_t i = 0; i < npts; i++) {
        m = (vec_msg){.kind = MSG_STAGE, .param = pts[i]};
        send_msg(&m);
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
            send_error(what, vec_err());
            break;
        }
        uint64_t bad = 0;
        double rec = recall_of(d, out, &bad);
        m = (vec_msg){.kind = MSG_POINT, .ok = bad == 0, .param = pts[i], .passes = passes,
                      .nq = d->nq, .bad = bad, .recall = rec, .secs = secs,
                      .qps = secs > 0 ? (double)d->nq * passes / secs : 0};
        if (bad)
            snprintf(m.text, sizeof m.text, "VERIFY FAILED: %" PRIu64 " bad ids", bad);
        send_msg(&m);
    }
close:
    e->close(ix);
done:
    m = (vec_msg){.kind = MSG_FOOT, .base_rss_kb = base_rss};
    send_msg(&m);
    if (!o->keep)
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

static void append_err(engine_out *eo, const char *fmt, ...) BENCH_PRINTF(2, 3);

static void append_err(engine_out *eo, const char *fmt, ...)
{
    size_t len = strlen(eo->errors);
    if (len + 4 >= sizeof eo->errors)
        return;
    va_list ap;
    va_start(ap, fmt);
    if (len)
        eo->errors[len++] = ';', eo->errors[len++] = ' ', eo->errors[len] = '\0';
    vsnprintf(eo->errors + len, sizeof eo->errors - len, fmt, ap);
    va_end(ap);
}

static double build_total(const vec_build *b)
{
    return b->train_s + b->add_s;
}

static void run_engine(const vec_opts *o, const vec_engine *e, const vec_data *d,
                       engine_out *eo, int pass)
{
    int fds[2];
    if (pipe(fds) != 0)
        bench_die("pipe: %s", strerror(errno));
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0)
        bench_die("fork: %s", strerror(errno));
    if (pid == 0) {
        close(fds[0]);
        msg_fd = fds[1];
        if (o->timeout)
            alarm((unsigned)o->timeout);
        child_main(o, e, d);
        close(msg_fd);
        _exit(0);
    }
    close(fds[1]);
    const uint32_t *pts;
    size_t npts = sweep_of(o, e, &pts);
    char stage[64] = "startup", num[32];
    vec_msg m;
    for (;;) {
        if (bench_read_all(fds[0], &m, sizeof m) != 0)
            break;
        switch (m.kind) {
        case MSG_STAGE:
            if (m.param)
                snprintf(stage, sizeof stage, "search %s=%u", e->param, m.param);
            else
                snprintf(stage, sizeof stage, "build");
            break;
        case MSG_ERROR:
            fprintf(stderr, "  [%s] FAILED: %s\n", e->name, m.text);
            append_err(eo, "%s", m.text);
            break;
        case MSG_BUILD:
            fprintf(stderr, "  [%s] build: train %.2f s, add %.2f s, %s bytes  (%s)\n", e->name,
                    m.build.train_s, m.build.add_s,
                    bench_fmt_int(num, sizeof num, (double)m.build.bytes), m.build.desc);
            /* over repeats keep the fastest build */
            if (!eo->have_build || build_total(&m.build) < build_total(&eo->build))
                eo->build = m.build;
            eo->have_build = 1;
            break;
        case MSG_POINT: {
            size_t i = 0;
            while (i < npts && pts[i] != m.param)
                i++;
            if (i == npts)
                break;
            point *pt = &eo->pts[i];
            fprintf(stderr, "  [%s] %s=%-4u recall@10 %.4f  %10s q/s%s%s\n", e->name, e->param,
                    m.param, m.recall, bench_fmt_int(num, sizeof num, m.qps),
                    m.text[0] ? "  " : "", m.text);
            /* over repeats keep the best run (least disturbed by noise) */
            if (!pt->have || (m.ok && (!pt->ok || m.qps > pt->m.qps))) {
                pt->have = 1;
                pt->ok = m.ok;
                pt->m = m;
            }
            break;
        }
        case MSG_FOOT:
            eo->base_rss_kb = m.base_rss_kb;
            break;
        default:
            break;
        }
    }
    close(fds[0]);
    int status;
    struct rusage ru;
    memset(&ru, 0, sizeof ru);
    while (wait4(pid, &status, 0, &ru) < 0) {
        if (errno != EINTR)
            bench_die("wait4: %s", strerror(errno));
    }
    if ((uint64_t)ru.ru_maxrss > eo->peak_rss_kb)
        eo->peak_rss_kb = (uint64_t)ru.ru_maxrss;
    if (WIFSIGNALED(status)) {
        int sig = WTERMSIG(status);
        fprintf(stderr, "  [%s] CRASHED with signal %d (%s) during %s (pass %d)\n", e->name, sig,
                sig == SIGALRM ? "timeout" : strsignal(sig), stage, pass + 1);
        append_err(eo, "crashed with signal %d (%s) during %s", sig,
                   sig == SIGALRM ? "timeout" : strsignal(sig), stage);
    } else if (WEXITSTATUS(status) != 0) {
        fprintf(stderr, "  [%s] exited with status %d during %s\n", e->name,
                WEXITSTATUS(status), stage);
        append_err(eo, "exited with status %d during %s", WEXITSTATUS(status), stage);
    }
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
           d->dims, d->n, d->nq, VEC_K, o->nlist, o->repeat);
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
                   bench_fmt_int(num, sizeof num, p->m.qps), p->m.passes, p->m.text);
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
    FILE *f = fopen(o->json, "w");
    if (!f)
        bench_die("cannot write %s: %s", o->json, strerror(errno));
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
    if (fclose(f) != 0)
        bench_die("writing %s: %s", o->json, strerror(errno));
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

static void parse_engines(vec_opts *o, const char *list)
{
    char buf[512];
    snprintf(buf, sizeof buf, "%s", list);
    o->nengines = 0;
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok;
         tok = strtok_r(NULL, ",", &save)) {
        const vec_engine *e = NULL;
        for (size_t i = 0; all_engines[i]; i++)
            if (strcmp(all_engines[i]->name, tok) == 0)
                e = all_engines[i];
        if (!e) {
            if (strcmp(tok, "sop") == 0)
                bench_die("engine 'sop' is not compiled in (configure with "
                          "-DSOP_BENCH_VECTOR_SOP=ON)");
            if (strcmp(tok, "faiss") == 0 || strcmp(tok, "hnswlib") == 0)
                bench_die("engine '%s' is not compiled in (install lib%s-dev and g++, then "
                          "reconfigure)",
                          tok, tok);
            bench_die("unknown engine '%s' (see sop-bench vector --help)", tok);
        }
        for (size_t i = 0; i < o->nengines; i++)
            if (o->engines[i] == e)
                bench_die("engine '%s' listed twice", tok);
        o->engines[o->nengines++] = e;
    }
    if (o->nengines == 0)
        bench_die("--engines: empty list");
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
    vec_opts o = {.n = QUICK_N, .queries = 1000, .repeat = 1, .timeout = 3600,
                  .min_time = 0.5, .dir = "/tmp/sop-bench"};
    o.data = getenv("SOP_BENCH_GLOVE_DIR");
    if (!o.data || !*o.data)
        o.data = SOP_BENCH_DEFAULT_GLOVE_DIR;
    for (size_t i = 0; all_engines[i]; i++)
        o.engines[o.nengines++] = all_engines[i];
    o.nnprobe = parse_list("--nprobe", "1,2,4,8,16,32,64,128", o.nprobe);
    o.nef = parse_list("--ef", "10,20,40,80,160,320", o.ef);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *val = NULL;
        char name[64];
        const char *eq = strchr(a, '=');
        if (strncmp(a, "--", 2) == 0 && eq && (size_t)(eq - a) < sizeof name) {
            memcpy(name, a, (size_t)(eq - a));
            name[eq - a] = '\0';
            val = eq + 1;
            a = name;
        }
#define VALUE() (val ? val : (i + 1 < argc ? argv[++i] : (bench_die("%s needs a value", a), "")))
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            vec_usage(stdout);
            return 0;
        } else if (strcmp(a, "--n") == 0 || strcmp(a, "-n") == 0) {
            o.n = bench_parse_count(a, VALUE());
        } else if (strcmp(a, "--full") == 0) {
            o.n = 0;
        } else if (strcmp(a, "--queries") == 0) {
            o.queries = bench_parse_count(a, VALUE());
        } else if (strcmp(a, "--nlist") == 0) {
            o.nlist = bench_parse_count(a, VALUE());
        } else if (strcmp(a, "--nprobe") == 0) {
            o.nnprobe = parse_list(a, VALUE(), o.nprobe);
        } else if (strcmp(a, "--ef") == 0) {
            o.nef = parse_list(a, VALUE(), o.ef);
        } else if (strcmp(a, "--engines") == 0) {
            parse_engines(&o, VALUE());
        } else if (strcmp(a, "--faiss-omp") == 0) {
            uint64_t t = bench_parse_count(a, VALUE());
            char buf[24];
            snprintf(buf, sizeof buf, "%" PRIu64, t);
            setenv("SOP_BENCH_FAISS_OMP_THREADS", buf, 1);
        } else if (strcmp(a, "--min-time") == 0) {
            char *end;
            const char *v = VALUE();
            o.min_time = strtod(v, &end);
            if (end == v || *end || !(o.min_time >= 0) || o.min_time > 3600)
                bench_die("--min-time: expected seconds 0..3600, got '%s'", v);
        } else if (strcmp(a, "--data") == 0) {
            o.data = VALUE();
        } else if (strcmp(a, "--repeat") == 0) {
            o.repeat = bench_parse_count(a, VALUE());
        } else if (strcmp(a, "--timeout") == 0) {
            o.timeout = bench_parse_count(a, VALUE());
        } else if (strcmp(a, "--dir") == 0) {
            o.dir = VALUE();
        } else if (strcmp(a, "--json") == 0) {
            o.json = VALUE();
        } else if (strcmp(a, "--keep") == 0) {
            o.keep = 1;
        } else {
            vec_usage(stderr);
            bench_die("vector: unknown option '%s'", argv[i]);
        }
#undef VALUE
    }
    if (o.nengines == 0)
        bench_die("vector: no engine compiled in (install libfaiss-dev, libhnswlib-dev, g++ "
                  "and reconfigure, or -DSOP_BENCH_VECTOR_SOP=ON)");
    if (o.queries < 1)
        bench_die("--queries must be at least 1");
    if (o.repeat < 1)
        o.repeat = 1;
    if (bench_mkdirs(o.dir) != 0)
        bench_die("cannot create %s: %s", o.dir, strerror(errno));

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
    fprintf(stderr, ", dir=%s\n", o.dir);
    t0 = bench_now();
    for (uint64_t pass = 0; pass < o.repeat; pass++)
        for (size_t i = 0; i < o.nengines; i++)
            run_engine(&o, o.engines[i], &d, &outs[i], (int)pass);
    fprintf(stderr, "sop-bench vector: done in %.1f s\n", bench_now() - t0);
    report(&o, &d, outs);
    if (o.json)
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
