/*
 * vec_data.c - the data of the vector suite: reads the .fvecs files made by
 * glove2fvecs, normalises the vectors (cosine = inner product on unit
 * vectors), and provides the exact top-10 neighbours of every query: read
 * from an .ivecs cache next to the data, or computed by brute force with
 * OpenBLAS sgemm in blocks and then cached. The cache file's name carries
 * n, the number of queries and a hash of the bytes it was computed from, so
 * other data (or a subset) never reads a stale file.
 */
#include "vector.h"

#include <cblas.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench_util.h"

/* Reads up to @p max records (0: all) of an .fvecs file; returns the
 * vectors packed (count x dims), dims and count; hashes the bytes read. */
static float *read_fvecs(const char *path, size_t max, uint32_t *dims, size_t *count,
                         uint64_t *hash)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        bench_die("cannot open %s: %s (run scripts/fetch_glove.sh, or give --data DIR)", path,
                  strerror(errno));
    int32_t d = 0;
    if (fread(&d, sizeof d, 1, f) != 1 || d < 1 || d > 65536)
        bench_die("%s: not an .fvecs file (first dimension %d)", path, (int)d);
    if (fseek(f, 0, SEEK_END) != 0)
        bench_die("%s: %s", path, strerror(errno));
    long size = ftell(f);
    rewind(f);
    size_t rec = 4 + 4 * (size_t)d;
    if (size <= 0 || (size_t)size % rec != 0)
        bench_die("%s: size %ld is not a multiple of the record size %zu", path, size, rec);
    size_t total = (size_t)size / rec, n = max && max < total ? max : total;
    unsigned char *raw = malloc(n * rec);
    float *out = malloc(n * (size_t)d * sizeof *out);
    if (!raw || !out)
        bench_die("out of memory reading %s", path);
    if (fread(raw, rec, n, f) != n)
        bench_die("%s: short read", path);
    fclose(f);
    /* FNV-1a over 8-byte words (the tail bytewise) */
    uint64_t h = *hash;
    size_t len = n * rec, i = 0;
    for (; i + 8 <= len; i += 8) {
        uint64_t w;
        memcpy(&w, raw + i, 8);
        h = (h ^ w) * 0x100000001b3ull;
    }
    for (; i < len; i++)
        h = (h ^ raw[i]) * 0x100000001b3ull;
    *hash = h;
    for (size_t r = 0; r < n; r++) {
        int32_t dr;
        memcpy(&dr, raw + r * rec, 4);
        if (dr != d)
            bench_die("%s: record %zu has dimension %d, expected %d", path, r, (int)dr, (int)d);
        memcpy(out + r * (size_t)d, raw + r * rec + 4, 4 * (size_t)d);
    }
    free(raw);
    *dims = (uint32_t)d;
    *count = n;
    return out;
}

static void normalise(float *v, size_t n, uint32_t dims, const char *what)
{
    for (size_t r = 0; r < n; r++) {
        float *x = v + r * dims;
        double s = 0;
        for (uint32_t j = 0; j < dims; j++)
            s += (double)x[j] * x[j];
        if (!(s > 0) || !isfinite(s))
            bench_die("%s vector %zu has norm %g: cannot normalise", what, r, sqrt(s));
        float inv = (float)(1.0 / sqrt(s));
        for (uint32_t j = 0; j < dims; j++)
            x[j] *= inv;
    }
}

/* Exact top-VEC_K by inner product: sgemm over blocks of the base, then a
 * sorted insertion per query (a strict > keeps the lower row on ties). */
static void compute_gt(vec_data *d)
{
    size_t nq = d->nq, n = d->n, dims = d->dims;
    size_t blk = ((size_t)1 << 23) / (nq ? nq : 1);
    if (blk < 256)
        blk = 256;
    if (blk > 65536)
        blk = 65536;
    float *c = malloc(nq * blk * sizeof *c);
    float *best = malloc(nq * VEC_K * sizeof *best);
    if (!c || !best)
        bench_die("out of memory computing the exact neighbours");
    for (size_t i = 0; i < nq * VEC_K; i++) {
        best[i] = -INFINITY;
        d->gt[i] = -1;
    }
    for (size_t b0 = 0; b0 < n; b0 += blk) {
        size_t nb = n - b0 < blk ? n - b0 : blk;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)nq, (int)nb, (int)dims, 1.0f,
                    d->queries, (int)dims, d->base + b0 * dims, (int)dims, 0.0f, c, (int)nb);
        for (size_t q = 0; q < nq; q++) {
            const float *row = c + q * nb;
            float *bs = best + q * VEC_K;
            int32_t *bi = d->gt + q * VEC_K;
            for (size_t j = 0; j < nb; j++) {
                float s = row[j];
                if (!(s > bs[VEC_K - 1]))
                    continue;
                int p = VEC_K - 1;
                while (p > 0 && s > bs[p - 1]) {
                    bs[p] = bs[p - 1];
                    bi[p] = bi[p - 1];
                    p--;
                }
                bs[p] = s;
                bi[p] = (int32_t)(b0 + j);
            }
        }
    }
    free(c);
    free(best);
}

static int read_ivecs(const char *path, int32_t *gt, size_t nq)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return -1;
    int ok = 1;
    for (size_t q = 0; q < nq && ok; q++) {
        int32_t k;
        ok = fread(&k, 4, 1, f) == 1 && k == VEC_K &&
             fread(gt + q * VEC_K, 4, VEC_K, f) == VEC_K;
    }
    int32_t extra;
    ok = ok && fread(&extra, 4, 1, f) == 0;
    fclose(f);
    return ok ? 0 : -1;
}

static void write_ivecs(const char *path, const int32_t *gt, size_t nq)
{
    char tmp[4300];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        fprintf(stderr, "sop-bench vector: cannot cache the exact neighbours in %s: %s\n", tmp,
                strerror(errno));
        return;
    }
    int ok = 1;
    for (size_t q = 0; q < nq && ok; q++) {
        int32_t k = VEC_K;
        ok = fwrite(&k, 4, 1, f) == 1 && fwrite(gt + q * VEC_K, 4, VEC_K, f) == VEC_K;
    }
    if (fclose(f) != 0)
        ok = 0;
    if (!ok || rename(tmp, path) != 0) {
        fprintf(stderr, "sop-bench vector: writing %s failed: %s\n", path, strerror(errno));
        unlink(tmp);
    }
}

void vec_data_load(vec_data *d, const char *dir, size_t n, size_t nq)
{
    char path[4200];
    uint64_t hash = 0xcbf29ce484222325ull;
    uint32_t dq = 0;
    memset(d, 0, sizeof *d);
    snprintf(path, sizeof path, "%s/%s", dir, VEC_BASE_FILE);
    d->base = read_fvecs(path, n, &d->dims, &d->n, &hash);
    if (n && d->n < n)
        bench_die("--n %zu: %s holds only %zu vectors", n, path, d->n);
    snprintf(path, sizeof path, "%s/%s", dir, VEC_QUERY_FILE);
    d->queries = read_fvecs(path, nq, &dq, &d->nq, &hash);
    if (nq && d->nq < nq)
        bench_die("--queries %zu: %s holds only %zu queries", nq, path, d->nq);
    if (dq != d->dims)
        bench_die("queries have %u dimensions, the base %u", dq, d->dims);
    normalise(d->base, d->n, d->dims, "base");
    normalise(d->queries, d->nq, d->dims, "query");

    d->gt = malloc(d->nq * VEC_K * sizeof *d->gt);
    if (!d->gt)
        bench_die("out of memory");
    snprintf(path, sizeof path, "%s/glove-100-gt-n%zu-q%zu-k%d-%016" PRIx64 ".ivecs", dir, d->n,
             d->nq, VEC_K, hash);
    if (read_ivecs(path, d->gt, d->nq) == 0) {
        fprintf(stderr, "sop-bench vector: exact neighbours from %s\n", path);
        return;
    }
    double t0 = bench_now();
    compute_gt(d);
    fprintf(stderr, "sop-bench vector: exact neighbours computed in %.2f s (sgemm, %s)\n",
            bench_now() - t0, openblas_get_config());
    write_ivecs(path, d->gt, d->nq);
}

void vec_data_free(vec_data *d)
{
    free(d->base);
    free(d->queries);
    free(d->gt);
    memset(d, 0, sizeof *d);
}
