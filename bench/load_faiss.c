/*
 * load_faiss.c - the FAISS engine of the load suite: the vector suite's
 * FAISS build (vec_faiss.cpp: IndexIVFFlat over IndexFlatIP, inner product
 * on unit vectors = cosine, FAISS's default k-means, the same threads) on
 * the load's vectors, then faiss::write_index() to a file.
 *
 * The vectors are read from the .fvecs into memory before the clock starts
 * (FAISS takes floats, not JSON). Timed: normalising them (sop's cosine
 * store normalises at ingest), training (k-means on up to 256 x nlist of
 * them), adding them, and writing the index file. Bytes on disk: the index
 * file. FAISS keeps no words: the words are the peers' other half, SQLite
 * FTS5.
 */
#ifdef SOP_BENCH_HAVE_FAISS

#include "load.h"

#include <math.h>
#include <stdio.h>

#include "bench_util.h"
#include "vector.h"

static int normalise(float *v, size_t n, uint32_t dims)
{
    for (size_t r = 0; r < n; r++) {
        float *x = v + r * dims;
        double s = 0;
        for (uint32_t j = 0; j < dims; j++)
            s += (double)x[j] * x[j];
        if (!(s > 0)) {
            load_set_err("vector %zu is zero: cannot normalise", r);
            return -1;
        }
        float inv = (float)(1.0 / sqrt(s));
        for (uint32_t j = 0; j < dims; j++)
            x[j] *= inv;
    }
    return 0;
}

static int fl_run(load_ctx *c, const char *dir, load_result *r)
{
    load_set *s = c->set;
    vec_data d = {.dims = s->dims, .n = s->n, .base = s->vecs};
    vec_build b = {0};
    vec_index *ix = NULL;
    double t0 = bench_now();
    if (normalise(s->vecs, s->n, s->dims) != 0)
        return -1;
    double t1 = bench_now();
    if (vec_engine_faiss.build(&d, c->nlist, dir, &ix, &b) != 0) {
        load_set_err("%s", vec_err());
        return -1;
    }
    double t2 = bench_now();
    vec_engine_faiss.close(ix);
    if (b.bytes == 0) {
        load_set_err("faiss: the index file in %s is missing or empty", dir);
        return -1;
    }
    r->secs = t2 - t0;
    r->items = s->n;
    r->nlist = c->nlist;
    r->bytes = bench_du(dir);
    snprintf(r->parts, sizeof r->parts,
             "normalise %.2f s, train %.2f s, add %.2f s, write_index %.2f s", t1 - t0,
             b.train_s, b.add_s, t2 - t1 - b.train_s - b.add_s);
    snprintf(r->desc, sizeof r->desc, "nlist %u, %s", c->nlist, b.desc);
    return 0;
}

const load_engine load_engine_faiss = {.name = "faiss", .need = LOAD_NEED_VECS, .run = fl_run,
                                       .verify = NULL};

#endif /* SOP_BENCH_HAVE_FAISS */
