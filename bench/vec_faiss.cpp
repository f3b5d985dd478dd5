/*
 * vec_faiss.cpp - the FAISS engine of the vector suite: an extern "C" shim
 * over FAISS's C++ API (Debian's libfaiss.a has no C API symbols).
 *
 * Index: IndexIVFFlat with an IndexFlatIP quantizer, METRIC_INNER_PRODUCT
 * on the unit vectors (= cosine), nlist as given, FAISS's default
 * clustering (10 iterations, at most 256 x nlist training points sampled
 * from the base it is given: the whole base). Queries run on one thread
 * (omp_set_num_threads(1)), one query per search() call. The index size is
 * that of faiss::write_index() to a file in the work directory.
 *
 * Threads of training and adding: OpenBLAS's threads (its default: every
 * core) do the matrix products, as in sop's training, and OpenMP gets
 * SOP_BENCH_FAISS_OMP_THREADS threads (sop-bench vector --faiss-omp;
 * default 1; 0: OpenMP's default, every core). With OpenMP's default on a
 * 2-core machine, libgomp's spinning threads and OpenBLAS's threads fight
 * for the cores: training on the full GloVe base took 8-9 s instead of
 * 7 s on a quiet machine, 13-16 s instead of 6-7 s while other work ran, so
 * the default would understate FAISS.
 */
#include "vector.h"

#include <faiss/IndexFlat.h>
#include <faiss/IndexIVFFlat.h>
#include <faiss/index_io.h>
#include <cblas.h>
#include <omp.h>
#include <sys/stat.h>

#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>
#include <vector>

extern "C" {
#include "bench_util.h"
}

struct vec_index {
    faiss::IndexFlatIP *quantizer;
    faiss::IndexIVFFlat *ivf;
};

static void fx_close(vec_index *ix)
{
    if (!ix)
        return;
    delete ix->ivf;
    delete ix->quantizer;
    delete ix;
}

static int fx_build(const vec_data *d, uint32_t nlist, const char *dir, vec_index **out,
                    vec_build *b)
{
    vec_index *ix = new vec_index{nullptr, nullptr};
    try {
        const char *env = std::getenv("SOP_BENCH_FAISS_OMP_THREADS");
        int threads = env && *env ? std::atoi(env) : 1;
        if (threads > 0)
            omp_set_num_threads(threads);
        threads = omp_get_max_threads();
        ix->quantizer = new faiss::IndexFlatIP(d->dims);
        ix->ivf = new faiss::IndexIVFFlat(ix->quantizer, d->dims, nlist,
                                          faiss::METRIC_INNER_PRODUCT);
        double t0 = bench_now();
        ix->ivf->train((faiss::Index::idx_t)d->n, d->base);
        double t1 = bench_now();
        ix->ivf->add((faiss::Index::idx_t)d->n, d->base);
        double t2 = bench_now();
        b->train_s = t1 - t0;
        b->add_s = t2 - t1;
        std::string path = std::string(dir) + "/ivfflat.faissindex";
        faiss::write_index(ix->ivf, path.c_str());
        struct stat st;
        b->bytes = stat(path.c_str(), &st) == 0 ? (uint64_t)st.st_size : 0;
        std::snprintf(b->desc, sizeof b->desc,
                      "IVFFlat+FlatIP, IP on unit vectors, niter %d, sample <= %d x nlist, "
                      "train/add: %d OpenMP threads, OpenBLAS %d threads",
                      ix->ivf->cp.niter, ix->ivf->cp.max_points_per_centroid, threads,
                      openblas_get_num_threads());
    } catch (const std::exception &e) {
        vec_set_err("faiss: %s", e.what());
        fx_close(ix);
        return -1;
    }
    *out = ix;
    return 0;
}

static int fx_search(vec_index *ix, const vec_data *d, uint32_t p, size_t q0, size_t nq,
                     int32_t *out)
{
    try {
        omp_set_num_threads(1);
        ix->ivf->nprobe = p;
        float dist[VEC_K];
        faiss::Index::idx_t lab[VEC_K];
        for (size_t q = 0; q < nq; q++) {
            ix->ivf->search(1, d->queries + (q0 + q) * d->dims, VEC_K, dist, lab);
            for (int j = 0; j < VEC_K; j++)
                out[q * VEC_K + j] = (int32_t)lab[j];
        }
    } catch (const std::exception &e) {
        vec_set_err("faiss search: %s", e.what());
        return -1;
    }
    return 0;
}

extern "C" const vec_engine vec_engine_faiss = {"faiss", "nprobe", 1, fx_build, fx_search,
                                                fx_close};
