/*
 * load.c - `sop-bench load`: a bulk load of GloVe words with their 100-d
 * vectors (the word is the text) into sop and into its peers, in the same
 * program, with the same data:
 *  - sop: sop_kb_load() of a fallback JSON file (docs/fallback-format.md)
 *    into a knowledge base: records, vectors and a BM25 index (load_sop.c);
 *  - the peers, who do the same job in two systems: FAISS IndexIVFFlat gets
 *    the vectors (load_faiss.c) and SQLite FTS5 the words (load_sqlite.c).
 * Items/s = items / seconds of the timed part (empty directory to closed
 * files); the peers' combined rate is n / (t_faiss + t_sqlite), one after
 * the other. Bytes on disk are counted after the close; the peak RSS is the
 * engine's child's (getrusage ru_maxrss at the end of the timed part: the
 * check that follows is not counted); base RSS is the child's at the start
 * of the timed part (its data and libraries).
 *
 * Setup (untimed, load_data.c): the first --n words of the base and their
 * vectors are read and written once as the fallback file, cached in the
 * data folder. Each engine then runs in its own forked child (so its peak
 * RSS is its own) in its own directory: the child reads what it needs
 * (words; the vectors for FAISS, which takes them from memory, not from
 * JSON), starts the clock, loads, stops it, then checks what it wrote.
 * sop parses the JSON inside its timed part.
 */
#include "load.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_util.h"
#include "child.h"
#include "options.h"
#include "vector.h"

#ifndef SOP_BENCH_DEFAULT_GLOVE_DIR
#define SOP_BENCH_DEFAULT_GLOVE_DIR ".cache/glove"
#endif

#define QUICK_N 50000
/* sop_kb_load's records per transaction here (the library's default is
 * 1,000). Each commit rewrites the 64 KiB leaves of the vector index that
 * its records touch, so the bytes written fall about as 1 / batch; on
 * GloVe (2 cores, n = 200,000) 5,000 wrote 1.9 GB in 15 s, 10,000 1.0 GB in
 * 7.3 s, 20,000 0.56 GB in 4.7 s, 40,000 0.33 GB in 5.3 s with 110 MB more
 * peak RSS: 20,000 is where the time stops falling (docs/bench-load.md). */
#define DEFAULT_BATCH 20000
#define TARGET_RATIO 0.5
#define RSS_LIMIT_KB 976562 /* 1 GB = 10^9 bytes, in KiB */

/* ------------------------------------------------------------------ */
/* Errors                                                             */
/* ------------------------------------------------------------------ */

static char load_errbuf[320];

void load_set_err(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(load_errbuf, sizeof load_errbuf, fmt, ap);
    va_end(ap);
}

const char *load_err(void)
{
    return load_errbuf[0] ? load_errbuf : "unknown error";
}

/* ------------------------------------------------------------------ */
/* Engines, options                                                   */
/* ------------------------------------------------------------------ */

static const load_engine *const all_engines[] = {
#ifndef SOP_BENCH_NO_SOP
    &load_engine_sop,
#endif
#ifdef SOP_BENCH_HAVE_FAISS
    &load_engine_faiss,
#endif
    &load_engine_sqlite,
    NULL,
};
#define N_ALL_ENGINES (sizeof all_engines / sizeof all_engines[0] - 1)

typedef struct load_opts {
    uint64_t n, batch, nlist;
    bench_run_opts run;
    const char *data;
    const load_engine *engines[N_ALL_ENGINES + 1];
    size_t nengines;
} load_opts;

/* ------------------------------------------------------------------ */
/* Child -> parent messages                                           */
/* ------------------------------------------------------------------ */

enum { MSG_RESULT = BENCH_MSG_USER };
enum { STAGE_READ = 1, STAGE_RUN, STAGE_VERIFY };

typedef struct load_msg {
    bench_msg h; /* text: why the check failed */
    int checked; /* RESULT: verify() passed (or there is none) */
    uint64_t base_rss_kb, peak_rss_kb;
    load_result r;
} load_msg;

/* Bytes this process passed to write calls so far ("wchar" of
 * /proc/self/io), or 0 where there is no such file. */
static uint64_t io_wchar(void)
{
    FILE *f = fopen("/proc/self/io", "r");
    if (!f)
        return 0;
    char line[128];
    unsigned long long v = 0;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "wchar: %llu", &v) == 1)
            break;
    fclose(f);
    return v;
}

/* ------------------------------------------------------------------ */
/* The child: one engine                                              */
/* ------------------------------------------------------------------ */

static void child_main(const load_opts *o, const load_engine *e, const char *json)
{
    char root[4200];
    snprintf(root, sizeof root, "%s/load-%s", o->run.dir, e->name);
    if (bench_child_workdir(root) != 0)
        return;
    bench_child_stage(STAGE_READ);
    load_set s;
    load_set_read(&s, o->data, (size_t)o->n, (e->need & LOAD_NEED_VECS) != 0);
    load_ctx ctx = {.set = &s, .json = json, .batch = (uint32_t)o->batch,
                    .nlist = (uint32_t)(o->nlist ? o->nlist : vec_nlist_for(s.n))};
    load_msg m = {.h.kind = MSG_RESULT, .base_rss_kb = bench_maxrss_kb()};
    bench_child_stage(STAGE_RUN);
    uint64_t w0 = io_wchar();
    if (e->run(&ctx, root, &m.r) != 0) {
        bench_child_error("load", load_err());
        goto done;
    }
    m.r.written = io_wchar() - w0;
    m.peak_rss_kb = bench_maxrss_kb();
    m.checked = 1;
    if (e->verify) {
        bench_child_stage(STAGE_VERIFY);
        if (e->verify(&ctx, root, &m.r) != 0) {
            m.checked = 0;
            snprintf(m.h.text, sizeof m.h.text, "%s", load_err());
        }
    }
    if (m.r.items != s.n) {
        m.checked = 0;
        snprintf(m.h.text, sizeof m.h.text, "loaded %" PRIu64 " items, expected %zu", m.r.items,
                 s.n);
    }
    bench_child_send(&m);
done:
    if (!o->run.keep)
        bench_rmtree(root);
    load_set_free(&s);
}

/* ------------------------------------------------------------------ */
/* The parent: fork per engine, collect                               */
/* ------------------------------------------------------------------ */

typedef struct engine_out {
    int have, checked;
    load_result best;             /* the fastest run */
    uint64_t base_rss_kb, peak_rss_kb, child_maxrss_kb;
    char errors[1024];
} engine_out;

static const char *stage_name(int stage)
{
    return stage == STAGE_READ     ? "reading the data"
           : stage == STAGE_RUN    ? "the load"
           : stage == STAGE_VERIFY ? "the check"
                                   : "startup";
}

static void take_result(const load_engine *e, engine_out *eo, const load_msg *m)
{
    char num[32], num2[32], num3[32];
    double rate = m->r.secs > 0 ? (double)m->r.items / m->r.secs : 0;
    fprintf(stderr,
            "  [%s] %.2f s, %s items/s, %s bytes on disk, %.1f MB written, peak RSS %s kB (%s)\n",
            e->name, m->r.secs, bench_fmt_int(num, sizeof num, rate),
            bench_fmt_int(num2, sizeof num2, (double)m->r.bytes), (double)m->r.written / 1e6,
            bench_fmt_int(num3, sizeof num3, (double)m->peak_rss_kb), m->r.parts);
    if (m->r.check[0])
        fprintf(stderr, "  [%s] check: %s\n", e->name, m->r.check);
    if (!m->checked) {
        fprintf(stderr, "  [%s] CHECK FAILED: %s\n", e->name, m->h.text);
        bench_append_err(eo->errors, sizeof eo->errors, "check failed: %s", m->h.text);
    }
    if (m->peak_rss_kb > eo->peak_rss_kb)
        eo->peak_rss_kb = m->peak_rss_kb;
    /* over repeats keep the fastest run (least disturbed by noise) */
    if (!eo->have || (m->checked && (!eo->checked || m->r.secs < eo->best.secs))) {
        eo->have = 1;
        eo->checked = m->checked;
        eo->best = m->r;
        eo->base_rss_kb = m->base_rss_kb;
    }
}

/* What the child and the parent of one engine's run share. */
typedef struct run_ctx {
    const load_opts *o;
    const load_engine *e;
    const char *json;
    engine_out *eo;
} run_ctx;

static void child_entry(void *arg)
{
    const run_ctx *r = arg;
    child_main(r->o, r->e, r->json);
}

static void on_msg(const void *msg, void *arg)
{
    const load_msg *m = msg;
    const run_ctx *r = arg;
    if (m->h.kind == BENCH_MSG_ERROR) {
        fprintf(stderr, "  [%s] FAILED: %s\n", r->e->name, m->h.text);
        bench_append_err(r->eo->errors, sizeof r->eo->errors, "%s", m->h.text);
    } else if (m->h.kind == MSG_RESULT) {
        take_result(r->e, r->eo, m);
    }
}

static void run_engine(const load_opts *o, const load_engine *e, const char *json,
                       engine_out *eo, int pass)
{
    run_ctx r = {.o = o, .e = e, .json = json, .eo = eo};
    bench_child c = {.main = child_entry,
                     .on_msg = on_msg,
                     .arg = &r,
                     .msg_size = sizeof(load_msg),
                     .timeout = o->run.timeout};
    bench_child_end end;
    bench_child_run(&c, &end);
    if (end.maxrss_kb > eo->child_maxrss_kb)
        eo->child_maxrss_kb = end.maxrss_kb;
    bench_child_verdict(&end, e->name, NULL, stage_name(end.stage), pass, eo->errors,
                        sizeof eo->errors);
}

/* ------------------------------------------------------------------ */
/* Report                                                             */
/* ------------------------------------------------------------------ */

static int find_engine_idx(const load_opts *o, const char *name)
{
    for (size_t i = 0; i < o->nengines; i++)
        if (strcmp(o->engines[i]->name, name) == 0)
            return (int)i;
    return -1;
}

static double rate_of(const engine_out *eo)
{
    return eo->have && eo->best.secs > 0 ? (double)eo->best.items / eo->best.secs : 0;
}

/* The peers' combined figures: 0 when one of them is missing. */
typedef struct combined {
    int have;
    double secs, rate, ratio; /* ratio: sop's rate / the peers' (0: no sop) */
    int si;
} combined;

static combined combine(const load_opts *o, const engine_out *outs, size_t n)
{
    combined c = {0};
    int si = find_engine_idx(o, "sop"), fi = find_engine_idx(o, "faiss"),
        qi = find_engine_idx(o, "sqlite");
    c.si = si;
    if (fi < 0 || qi < 0 || !outs[fi].checked || !outs[qi].checked)
        return c;
    c.have = 1;
    c.secs = outs[fi].best.secs + outs[qi].best.secs;
    c.rate = (double)n / c.secs;
    if (si >= 0 && outs[si].checked)
        c.ratio = rate_of(&outs[si]) / c.rate;
    return c;
}

/* The IVF sizes differ: the index built is not the same work. */
static void report_nlists(const load_opts *o, const engine_out *outs, int si)
{
    int fi = find_engine_idx(o, "faiss");
    if (fi < 0 || !outs[fi].have || !outs[si].best.nlist ||
        outs[si].best.nlist == outs[fi].best.nlist)
        return;
    printf("note: sop's vector index has nlist %u (its store trains once, by itself, at its first "
           "10,000 vectors), faiss's %u: --nlist %u gives faiss the same index size\n",
           outs[si].best.nlist, outs[fi].best.nlist, outs[si].best.nlist);
}

static void report_targets(const load_opts *o, const engine_out *outs, const combined *c)
{
    char num[32];
    int si = c->si;
    if (si < 0 || !outs[si].checked)
        return;
    report_nlists(o, outs, si);
    if (c->have && c->ratio > 0)
        printf("ratio sop / peers combined: %.3f  (target >= %.1fx: %s)\n", c->ratio,
               TARGET_RATIO, c->ratio >= TARGET_RATIO ? "met" : "not met");
    for (size_t p = 0; p < o->nengines; p++)
        if ((int)p != si && outs[p].checked)
            printf("ratio sop / %-7s %.3f\n", o->engines[p]->name,
                   rate_of(&outs[si]) / rate_of(&outs[p]));
    printf("peak RSS of sop: %s kB = %.0f MB  (peak RSS < 1 GB: %s)\n",
           bench_fmt_int(num, sizeof num, (double)outs[si].peak_rss_kb),
           (double)outs[si].peak_rss_kb * 1024 / 1e6,
           outs[si].peak_rss_kb < RSS_LIMIT_KB ? "met" : "not met");
}

static void report(const load_opts *o, const load_set *s, uint64_t json_bytes,
                   const engine_out *outs)
{
    char a[32], b[32], c[32], d[32];
    printf("\nsop-bench load: GloVe %u-d, n=%zu words (the word is the text, with its vector), "
           "fallback file %.1f MB, best of %" PRIu64 "\n",
           s->dims, s->n, (double)json_bytes / 1e6, o->run.repeat);
    printf("%-8s %9s %11s %15s %11s %13s %13s  %s\n", "engine", "seconds", "items/s",
           "bytes_on_disk", "written_MB", "peak_rss_kb", "base_rss_kb", "where the time went");
    for (size_t i = 0; i < o->nengines; i++) {
        const engine_out *eo = &outs[i];
        if (!eo->have) {
            printf("%-8s (no result)\n", o->engines[i]->name);
            continue;
        }
        printf("%-8s %9.2f %11s %15s %11.1f %13s %13s  %s%s\n", o->engines[i]->name,
               eo->best.secs, bench_fmt_int(a, sizeof a, rate_of(eo)),
               bench_fmt_int(b, sizeof b, (double)eo->best.bytes), (double)eo->best.written / 1e6,
               bench_fmt_int(c, sizeof c, (double)eo->peak_rss_kb),
               bench_fmt_int(d, sizeof d, (double)eo->base_rss_kb), eo->best.parts,
               eo->checked ? "" : "  CHECK FAILED");
    }
    combined cb = combine(o, outs, s->n);
    if (cb.have)
        printf("%-8s %9.2f %11s  (faiss + sqlite, one after the other)\n", "peers", cb.secs,
               bench_fmt_int(a, sizeof a, cb.rate));
    for (size_t i = 0; i < o->nengines; i++)
        if (outs[i].have)
            printf("  %-7s %s\n", o->engines[i]->name, outs[i].best.desc);
    printf("(timed: empty directory to closed files; sop parses the JSON inside it, the peers "
           "get words and vectors read into memory before it; written: bytes passed to write "
           "calls while timed; peak RSS: the engine's child at the end of the load, base: at "
           "its start)\n\n");
    report_targets(o, outs, &cb);
    for (size_t i = 0; i < o->nengines; i++)
        if (outs[i].errors[0])
            printf("ERRORS %s: %s\n", o->engines[i]->name, outs[i].errors);
    fflush(stdout);
}

static void json_head(FILE *f, const char *engine, size_t n)
{
    fprintf(f, "{\"suite\":\"load\",\"workload\":\"glove\",\"engine\":\"%s\",\"n\":%zu", engine,
            n);
}

static void write_json(const load_opts *o, const load_set *s, uint64_t json_bytes,
                       const engine_out *outs)
{
    FILE *f = bench_json_open(o->run.json);
    for (size_t i = 0; i < o->nengines; i++) {
        const engine_out *eo = &outs[i];
        json_head(f, o->engines[i]->name, s->n);
        if (eo->have) {
            fprintf(f, ",\"items_per_s\":%.1f,\"seconds\":%.3f,\"bytes_on_disk\":%" PRIu64
                       ",\"bytes_written\":%" PRIu64,
                    rate_of(eo), eo->best.secs, eo->best.bytes, eo->best.written);
            if (strcmp(o->engines[i]->name, "sop") == 0)
                fprintf(f, ",\"batch\":%" PRIu64 ",\"input_bytes\":%" PRIu64, o->batch,
                        json_bytes);
            if (eo->best.nlist)
                fprintf(f, ",\"nlist\":%u", eo->best.nlist);
            fprintf(f, ",\"parts\":");
            bench_json_str(f, eo->best.parts);
            fprintf(f, ",\"desc\":");
            bench_json_str(f, eo->best.desc);
        }
        fprintf(f, ",\"peak_rss_kb\":%" PRIu64 ",\"base_rss_kb\":%" PRIu64 ",\"ok\":%s",
                eo->peak_rss_kb, eo->base_rss_kb, eo->checked ? "true" : "false");
        if (eo->errors[0]) {
            fprintf(f, ",\"errors\":");
            bench_json_str(f, eo->errors);
        }
        fprintf(f, "}\n");
    }
    combined cb = combine(o, outs, s->n);
    if (cb.have) {
        json_head(f, "faiss+sqlite", s->n);
        fprintf(f, ",\"items_per_s\":%.1f,\"seconds\":%.3f}\n", cb.rate, cb.secs);
    }
    if (cb.si >= 0 && outs[cb.si].checked) {
        for (size_t p = 0; p < o->nengines; p++)
            if ((int)p != cb.si && outs[p].checked) {
                json_head(f, "ratio", s->n);
                fprintf(f, ",\"vs\":\"%s\",\"of\":\"sop\",\"items_per_s_ratio\":%.4f}\n",
                        o->engines[p]->name, rate_of(&outs[cb.si]) / rate_of(&outs[p]));
            }
        if (cb.have) {
            json_head(f, "ratio", s->n);
            fprintf(f, ",\"vs\":\"faiss+sqlite\",\"of\":\"sop\",\"items_per_s_ratio\":%.4f,"
                       "\"target\":%.1f,\"met\":%s,\"peak_rss_kb\":%" PRIu64
                       ",\"rss_limit_kb\":%d,\"rss_met\":%s}\n",
                    cb.ratio, TARGET_RATIO, cb.ratio >= TARGET_RATIO ? "true" : "false",
                    outs[cb.si].peak_rss_kb, RSS_LIMIT_KB,
                    outs[cb.si].peak_rss_kb < RSS_LIMIT_KB ? "true" : "false");
        }
    }
    bench_json_close(f, o->run.json);
}

/* ------------------------------------------------------------------ */
/* Options                                                            */
/* ------------------------------------------------------------------ */

static void load_usage(FILE *f)
{
    fprintf(f, "usage: sop-bench load [options]\n"
               "  --n N            words: the first N of the base, by frequency (default %d;\n"
               "                   0 or --full: all 340,479)\n"
               "  --full           the full size (the README figures)\n"
               "  --batch B        sop: records per transaction of sop_kb_load (default %d;\n"
               "                   the library's own default is 1,000)\n"
               "  --nlist L        faiss: IVF lists (default: the power of two nearest to\n"
               "                   2 sqrt(n), as the vector suite: 512 at 50,000, 1024 full)\n"
               "  --faiss-omp T    OpenMP threads of FAISS's training and adding (default 1:\n"
               "                   OpenBLAS's threads do the products; 0: OpenMP's default)\n"
               "  --engines LIST   comma list of:",
            QUICK_N, DEFAULT_BATCH);
    for (size_t i = 0; all_engines[i]; i++)
        fprintf(f, " %s", all_engines[i]->name);
    fprintf(f, "\n"
               "                   (default: all of them)\n"
               "  --data DIR       glove-100-base.{fvecs,words} and the cached fallback files\n"
               "                   (default $SOP_BENCH_GLOVE_DIR, else %s);\n"
               "                   scripts/fetch_glove.sh makes them\n"
               "  --repeat R       run every engine R times, interleaved; report the fastest\n"
               "  --dir DIR        work directory (default /tmp/sop-bench); DIR/load-<engine> is\n"
               "                   deleted before and after each engine\n"
               "  --keep           keep what the engines wrote\n"
               "  --json FILE      write JSON lines to FILE (truncated)\n"
               "  --timeout SEC    kill an engine's run after SEC seconds (default 3600, 0: none)\n"
               "Environment: SOP_BENCH_CACHE_MB (sop's node cache, default the library's 64 MiB;\n"
               "SQLite's page cache, default 64 MiB).\n",
            SOP_BENCH_DEFAULT_GLOVE_DIR);
}

static const char *engine_name(size_t i) { return all_engines[i]->name; }

static void not_built(const char *name)
{
    if (strcmp(name, "sop") == 0)
        bench_die("engine 'sop' is not compiled in (built with SOP_BENCH_NO_SOP)");
    if (strcmp(name, "faiss") == 0)
        bench_die("engine 'faiss' is not compiled in (install libfaiss-dev and g++, "
                  "then reconfigure)");
}

static void parse_engines(load_opts *o, const char *list)
{
    size_t idx[N_ALL_ENGINES + 1];
    o->nengines = bench_parse_engines(list, N_ALL_ENGINES, engine_name, not_built, "load", idx);
    for (size_t i = 0; i < o->nengines; i++)
        o->engines[i] = all_engines[idx[i]];
}

/* Returns 1 when the program should exit 0 (--help). */
static int parse_args(load_opts *o, int argc, char **argv)
{
    bench_args a;
    for (bench_args_init(&a, argc, argv); bench_args_next(&a);) {
        if (bench_args_help(&a)) {
            load_usage(stdout);
            return 1;
        } else if (bench_args_is(&a, "--n") || bench_args_is(&a, "-n")) {
            o->n = bench_args_count(&a);
        } else if (bench_args_is(&a, "--full")) {
            o->n = 0;
        } else if (bench_args_is(&a, "--batch")) {
            o->batch = bench_args_count(&a);
        } else if (bench_args_is(&a, "--nlist")) {
            o->nlist = bench_args_count(&a);
        } else if (bench_args_is(&a, "--faiss-omp")) {
            vec_set_faiss_omp(a.name, bench_args_value(&a));
        } else if (bench_args_is(&a, "--engines")) {
            parse_engines(o, bench_args_value(&a));
        } else if (bench_args_is(&a, "--data")) {
            o->data = bench_args_value(&a);
        } else if (!bench_args_run_opt(&a, &o->run)) {
            bench_args_unknown(&a, "load", load_usage);
        }
    }
    if (o->batch < 1 || o->batch > 10000000)
        bench_die("--batch must be 1..10,000,000");
    if (o->nlist > 65536)
        bench_die("--nlist must be 1..65,536");
    return 0;
}

int bench_load_main(int argc, char **argv)
{
    load_opts o = {.n = QUICK_N, .batch = DEFAULT_BATCH, .run = BENCH_RUN_OPTS_DEFAULT};
    o.data = vec_glove_dir();
    for (size_t i = 0; all_engines[i]; i++)
        o.engines[o.nengines++] = all_engines[i];
    if (parse_args(&o, argc, argv))
        return 0;
    bench_run_opts_ready(&o.run);

    /* setup, untimed: the fallback file (the parent keeps only the words) */
    load_set s;
    char json[4300];
    double t0 = bench_now();
    load_set_read(&s, o.data, (size_t)o.n, 1);
    if (s.n == 0)
        bench_die("no words to load");
    if (o.nlist > s.n)
        bench_die("--nlist %" PRIu64 " is above n = %zu", o.nlist, s.n);
    if (s.dups)
        fprintf(stderr, "sop-bench load: %zu repeated words skipped\n", s.dups);
    uint64_t json_bytes = load_fallback_ensure(&s, o.data, json, sizeof json);
    free(s.vecs); /* the children read what they need themselves */
    s.vecs = NULL;
    fprintf(stderr, "sop-bench load: n=%zu, batch=%" PRIu64 ", engines:", s.n, o.batch);
    for (size_t i = 0; i < o.nengines; i++)
        fprintf(stderr, " %s", o.engines[i]->name);
    fprintf(stderr, ", dir=%s, setup %.1f s\n", o.run.dir, bench_now() - t0);

    engine_out *outs = calloc(o.nengines, sizeof *outs);
    if (!outs)
        bench_die("out of memory");
    for (uint64_t pass = 0; pass < o.run.repeat; pass++)
        for (size_t i = 0; i < o.nengines; i++)
            run_engine(&o, o.engines[i], json, &outs[i], (int)pass);
    report(&o, &s, json_bytes, outs);
    if (o.run.json)
        write_json(&o, &s, json_bytes, outs);
    int failed = 0;
    for (size_t i = 0; i < o.nengines; i++)
        failed |= !outs[i].checked || outs[i].errors[0];
    free(outs);
    load_set_free(&s);
    return failed ? 1 : 0;
}
