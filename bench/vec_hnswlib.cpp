/*
 * vec_hnswlib.cpp - the hnswlib engine of the vector suite (a reference
 * line: a graph index, not IVF): an extern "C" shim over the header-only
 * hnswlib, compiled with -O3 -march=native so that its SIMD distance
 * kernels are those of the machine.
 *
 * Index: HierarchicalNSW over InnerProductSpace on the unit vectors
 * (= cosine), M = 16, ef_construction = 200, seed 100 (hnswlib's default).
 * Insertion runs on every core (addPoint is thread-safe; the graph then
 * depends on the interleaving); queries on one thread, one searchKnn() per
 * query, ef swept. The index size is that of saveIndex() to a file in the
 * work directory.
 */
#include "vector.h"

#include <hnswlib/hnswlib.h>
#include <sys/stat.h>

#include <atomic>
#include <cstdio>
#include <exception>
#include <string>
#include <thread>
#include <vector>

extern "C" {
#include "bench_util.h"
}

#define HNSW_M 16
#define HNSW_EF_CONSTRUCTION 200

struct vec_index {
    hnswlib::InnerProductSpace *space;
    hnswlib::HierarchicalNSW<float> *g;
};

static void hn_close(vec_index *ix)
{
    if (!ix)
        return;
    delete ix->g;
    delete ix->space;
    delete ix;
}

static int hn_build(const vec_data *d, uint32_t nlist, const char *dir, vec_index **out,
                    vec_build *b)
{
    (void)nlist;
    vec_index *ix = new vec_index{nullptr, nullptr};
    try {
        ix->space = new hnswlib::InnerProductSpace(d->dims);
        ix->g = new hnswlib::HierarchicalNSW<float>(ix->space, d->n, HNSW_M,
                                                    HNSW_EF_CONSTRUCTION);
        unsigned nt = std::thread::hardware_concurrency();
        if (nt < 1)
            nt = 1;
        std::atomic<size_t> next(0);
        std::string failure;
        std::atomic<bool> failed(false);
        double t0 = bench_now();
        auto work = [&]() {
            try {
                while (!failed) {
                    size_t i = next.fetch_add(1);
                    if (i >= d->n)
                        break;
                    ix->g->addPoint(d->base + i * d->dims, (hnswlib::labeltype)i);
                }
            } catch (const std::exception &e) {
                if (!failed.exchange(true))
                    failure = e.what();
            }
        };
        std::vector<std::thread> th;
        for (unsigned t = 1; t < nt; t++)
            th.emplace_back(work);
        work();
        for (auto &t : th)
            t.join();
        if (failed) {
            vec_set_err("hnswlib addPoint: %s", failure.c_str());
            hn_close(ix);
            return -1;
        }
        b->train_s = 0;
        b->add_s = bench_now() - t0;
        std::string path = std::string(dir) + "/hnsw.bin";
        ix->g->saveIndex(path);
        struct stat st;
        b->bytes = stat(path.c_str(), &st) == 0 ? (uint64_t)st.st_size : 0;
        std::snprintf(b->desc, sizeof b->desc,
                      "HNSW, IP on unit vectors, M %d, ef_construction %d, insert %u threads%s",
                      HNSW_M, HNSW_EF_CONSTRUCTION, nt,
#if defined(USE_AVX512)
                      ", AVX-512"
#elif defined(USE_AVX)
                      ", AVX"
#elif defined(USE_SSE)
                      ", SSE"
#else
                      ", scalar"
#endif
        );
    } catch (const std::exception &e) {
        vec_set_err("hnswlib: %s", e.what());
        hn_close(ix);
        return -1;
    }
    *out = ix;
    return 0;
}

static int hn_search(vec_index *ix, const vec_data *d, uint32_t p, size_t q0, size_t nq,
                     int32_t *out)
{
    try {
        ix->g->setEf(p);
        for (size_t q = 0; q < nq; q++) {
            auto res = ix->g->searchKnn(d->queries + (q0 + q) * d->dims, VEC_K);
            int32_t *o = out + q * VEC_K;
            for (int j = 0; j < VEC_K; j++)
                o[j] = -1;
            /* the queue pops the farthest first */
            for (int j = (int)res.size() - 1; j >= 0; j--) {
                if (j < VEC_K)
                    o[j] = (int32_t)res.top().second;
                res.pop();
            }
        }
    } catch (const std::exception &e) {
        vec_set_err("hnswlib search: %s", e.what());
        return -1;
    }
    return 0;
}

extern "C" const vec_engine vec_engine_hnswlib = {"hnswlib", "ef", 0, hn_build, hn_search,
                                                  hn_close};
