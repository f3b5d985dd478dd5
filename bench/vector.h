/*
 * vector.h - the vector suite of sop-bench: the data every engine is given
 * (GloVe 100-d as .fvecs, normalised, with exact neighbours) and the
 * interface every engine (sop, FAISS IVFFlat, hnswlib) implements.
 *
 * Included by the C++ shims (vec_faiss.cpp, vec_hnswlib.cpp): keep it C
 * that C++ also accepts.
 */
#ifndef SOP_BENCH_VECTOR_H
#define SOP_BENCH_VECTOR_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Neighbours per query (recall@10). */
#define VEC_K 10

/** The data, shared by the engines (loaded once, before the engines fork). */
typedef struct vec_data {
    uint32_t dims;
    size_t n;        /**< base vectors */
    size_t nq;       /**< queries */
    float *base;     /**< n x dims, unit length */
    float *queries;  /**< nq x dims, unit length */
    int32_t *gt;     /**< nq x VEC_K exact neighbours (rows of base), best first */
} vec_data;

/** Loads the first @p n base vectors and the first @p nq queries from
 *  @p dir (glove-100-base.fvecs, glove-100-query.fvecs), normalises them,
 *  and loads the exact neighbours from the cache file next to them, or
 *  computes them (OpenBLAS sgemm, in blocks) and writes the cache. @p n 0
 *  means every base vector, @p nq 0 every query. Dies on error. */
void vec_data_load(vec_data *d, const char *dir, size_t n, size_t nq);
void vec_data_free(vec_data *d);

/** The nlist rule of sop_vector_nlist_for() (sop/vector.h), restated so
 *  that the suites build without the vector layer: the power of two
 *  nearest to 2 sqrt(n) in the log domain, 1..65,536 (512 at n = 50,000,
 *  1,024 at 340,479). */
uint32_t vec_nlist_for(uint64_t n);

/** File names inside the data directory (written by glove2fvecs). */
#define VEC_BASE_FILE "glove-100-base.fvecs"
#define VEC_QUERY_FILE "glove-100-query.fvecs"
/** Their words, one a line, in the same order (sop-bench load). */
#define VEC_BASE_WORDS_FILE "glove-100-base.words"
#define VEC_QUERY_WORDS_FILE "glove-100-query.words"

/** What an engine reports about the index it built. */
typedef struct vec_build {
    double train_s;   /**< training (k-means), 0 when the engine has none */
    double add_s;     /**< adding / inserting / loading the vectors */
    uint64_t bytes;   /**< index size: serialised (peers) or on disk (sop) */
    char desc[200];   /**< what was built, with which threads */
} vec_build;

typedef struct vec_index vec_index; /* engine-specific */

/** One engine. Functions return 0 or -1; on -1 vec_err() says why. */
typedef struct vec_engine {
    const char *name;  /**< "sop", "faiss", "hnswlib" */
    const char *param; /**< the swept parameter: "nprobe" or "ef" */
    int ivf;           /**< 1: an IVF index of nlist clusters (nprobe sweep) */
    /** Builds the index over d->base in directory @p dir (created, empty). */
    int (*build)(const vec_data *d, uint32_t nlist, const char *dir, vec_index **out,
                 vec_build *b);
    /** Runs queries [q0, q0 + nq) of d->queries with parameter @p p (nprobe
     *  or ef), one query per call on one thread, and writes VEC_K rows of
     *  d->base per query into @p out (-1 where fewer were found). */
    int (*search)(vec_index *ix, const vec_data *d, uint32_t p, size_t q0, size_t nq,
                  int32_t *out);
    void (*close)(vec_index *ix);
} vec_engine;

/* ---- errors: a per-process message (the engines run in children) ---- */
void vec_set_err(const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 1, 2)))
#endif
    ;
const char *vec_err(void);

/* ---- the engines ---- */
#ifdef SOP_BENCH_HAVE_FAISS
extern const vec_engine vec_engine_faiss;
#endif
#ifdef SOP_BENCH_HAVE_HNSWLIB
extern const vec_engine vec_engine_hnswlib;
#endif
#if defined(SOP_BENCH_VECTOR_SOP) && !defined(SOP_BENCH_NO_SOP)
extern const vec_engine vec_engine_sop;
#endif

/** The GloVe data folder: $SOP_BENCH_GLOVE_DIR, else the build's default
 *  (also the load suite's). */
const char *vec_glove_dir(void);

/** --faiss-omp T (vector and load suites): FAISS's OpenMP threads for its
 *  training and adding, passed to the shim through the environment. */
void vec_set_faiss_omp(const char *opt, const char *val);

/** The vector subcommand. */
int bench_vector_main(int argc, char **argv);

#ifdef __cplusplus
}
#endif
#endif /* SOP_BENCH_VECTOR_H */
