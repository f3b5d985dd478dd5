/* kmeans.c - k-means training for the IVF index (see kmeans.h).
 *
 * Seeding: k-means++ on a uniform sample of s = min(n, max(32 k, 16384))
 * points (selection sampling, Knuth's algorithm S: exactly s rows, kept in
 * data order, copied to one array so that each pass streams). Each sample
 * point keeps its squared distance to the nearest centre so far; after a
 * centre is chosen, one pass updates that minimum against the new centre
 * only (O(s k d) in all) and the next centre is drawn with probability
 * proportional to it: a point at distance 0 is never drawn while another
 * is not; when all are at 0 (fewer distinct points than k), the rest are
 * drawn uniformly. Why a sample: seeding is one sequential pass per centre,
 * single-threaded and bound by memory; on all of n = 262144, k = 1024,
 * d = 100 it took 4.3 s, about as long as the sgemm of the 20 Lloyd passes,
 * while 32 points per cluster take 0.25 s and end with the same error
 * (within the spread between seeds).
 *
 * Lloyd iterations run on every point. Assignment: blocks of rows (about
 * 2^20 scores per block) times all centroids in one sgemm (x . c), then per
 * row the first index of the least |c|^2 - 2 x . c (ties: the lowest
 * centroid), then the exact squared distance to that centroid (the
 * expansion cancels near the centroid). New centroids are the means, summed
 * in double. Empty clusters (in index order) each take the point farthest
 * from its centroid (ties: the lowest index) among the points whose
 * cluster keeps at least one other point; the point moves there. With no
 * such point (every point on its centroid: fewer distinct points than k)
 * an empty centroid stays where it was. Training stops after max_iter
 * passes, or when the largest squared move of a centroid in a pass is at
 * most tol times the mean squared norm of the data (tol = 1e-4: moves of
 * at most 1% of the typical norm).
 *
 * Determinism: the random numbers come from the seed only (splitmix64);
 * every sum runs in a fixed order; OpenBLAS's sgemm splits rows and
 * columns among its threads, never a dot product, so its thread count does
 * not change a bit. The same data, k, seed and options give the same
 * centroids on a machine; other CPUs may round differently (another SIMD
 * instance here or in vmath.c, another BLAS kernel).
 *
 * Vector code: the argmin and the double sums are written with vector
 * extensions and instantiated per instruction set like vmath.c's kernels
 * (AVX-512F, AVX2, baseline); the instance is vmath.c's (sop__v_isa). */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kmeans.h"
#include "mem.h"
#include "rng.h"
#include "vmath.h"

#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
#define KM_X86 1
#endif

#define KM_DEF_ITER 20
#define KM_DEF_TOL 1e-4f
#define KM_SAMPLE_MIN 16384u /* seeding sample: at least this many points */
#define KM_SAMPLE_PER_K 32u  /* ... and at least this many per cluster */
#define KM_BLOCK_SCORES (1u << 20) /* scores per assignment block (4 MiB) */
#define KM_BLOCK_ROWS 4096u        /* rows per assignment block at most */

typedef float vf16 __attribute__((vector_size(64)));
typedef float vf8 __attribute__((vector_size(32)));
typedef float vf4 __attribute__((vector_size(16)));
typedef float vf2 __attribute__((vector_size(8)));
typedef int32_t vi16 __attribute__((vector_size(64)));
typedef int32_t vi8 __attribute__((vector_size(32)));
typedef int32_t vi4 __attribute__((vector_size(16)));
typedef double vd8 __attribute__((vector_size(64)));
typedef double vd4 __attribute__((vector_size(32)));
typedef double vd2 __attribute__((vector_size(16)));

/* ---- kernels --------------------------------------------------------- */

typedef struct km_impl {
    /* For each of @rows rows of @ip (k scores x . c_j each): the first j
     * with the least cn[j] - 2 ip[j] into cid[], that value into best[]. */
    void (*argmin_rows)(const float *ip, size_t rows, const float *cn, uint32_t k, uint32_t *cid,
                        float *best);
    /* s[0..d) += x[0..d) in double precision */
    void (*add_double)(double *s, const float *x, uint32_t d);
} km_impl;

/* The kernels for vectors VF of W floats (VI: W int32; VH, VD: W / 2
 * floats and doubles) compiled with ATTR, like vmath.c's: one instance per
 * instruction set, each in its native vector width.
 *
 * The argmin keeps, per lane, the least value seen and its index, in four
 * independent (value, index) pairs so that the compare-and-blend chains
 * overlap: a strictly smaller value replaces the pair's, so each keeps the
 * first index of a tie. The pairs are merged and the lanes reduced by
 * (value, index) order, then the scalar rest of the row (later indices)
 * replaces the result only when strictly smaller: the overall result is
 * the first index of the least value. */
#define KM_STEP(VF, VI, p, off)                                                                    \
    do {                                                                                           \
        memcpy(&x, ip + j + (off), sizeof x);                                                      \
        memcpy(&c, cn + j + (off), sizeof c);                                                      \
        t = c - (x + x);                                                                           \
        lt = t < bv##p;                                                                            \
        bv##p = (VF)(((VI)bv##p & ~lt) | ((VI)t & lt));                                            \
        bi##p = (bi##p & ~lt) | ((idx + (off)) & lt);                                              \
    } while (0)
/* pair q into pair 0: smaller value, or equal value and lower index */
#define KM_MERGE(VF, VI, q)                                                                        \
    do {                                                                                           \
        lt = (bv##q < bv0) | ((bv##q == bv0) & (bi##q < bi0));                                     \
        bv0 = (VF)(((VI)bv0 & ~lt) | ((VI)bv##q & lt));                                            \
        bi0 = (bi0 & ~lt) | (bi##q & lt);                                                          \
    } while (0)
#define KM_KERNELS(SFX, VF, VI, W, VH, VD, ATTR)                                                   \
    ATTR static void argmin_rows_##SFX(const float *ip, size_t rows, const float *cn, uint32_t k,  \
                                       uint32_t *cid, float *best)                                 \
    {                                                                                              \
        VF inf0, x, c, t;                                                                          \
        VI idx0, lt;                                                                               \
        for (int l = 0; l < (W); l++) {                                                            \
            inf0[l] = INFINITY;                                                                    \
            idx0[l] = l;                                                                           \
        }                                                                                          \
        for (size_t r = 0; r < rows; r++, ip += k) {                                               \
            VF bv0 = inf0, bv1 = inf0, bv2 = inf0, bv3 = inf0;                                     \
            VI bi0 = idx0 & 0, bi1 = bi0, bi2 = bi0, bi3 = bi0, idx = idx0;                        \
            uint32_t j = 0;                                                                        \
            for (; j + 4 * (W) <= k; j += 4 * (W), idx += 4 * (W)) {                               \
                KM_STEP(VF, VI, 0, 0);                                                             \
                KM_STEP(VF, VI, 1, (W));                                                           \
                KM_STEP(VF, VI, 2, 2 * (W));                                                       \
                KM_STEP(VF, VI, 3, 3 * (W));                                                       \
            }                                                                                      \
            for (; j + (W) <= k; j += (W), idx += (W))                                             \
                KM_STEP(VF, VI, 0, 0);                                                             \
            KM_MERGE(VF, VI, 1);                                                                   \
            KM_MERGE(VF, VI, 2);                                                                   \
            KM_MERGE(VF, VI, 3);                                                                   \
            float b = INFINITY;                                                                    \
            uint32_t bj = 0;                                                                       \
            for (int l = 0; l < (W); l++) {                                                        \
                if (bv0[l] < b || (bv0[l] == b && (uint32_t)bi0[l] < bj)) {                        \
                    b = bv0[l];                                                                    \
                    bj = (uint32_t)bi0[l];                                                         \
                }                                                                                  \
            }                                                                                      \
            for (; j < k; j++) {                                                                   \
                float e = cn[j] - 2.0f * ip[j];                                                    \
                if (e < b) {                                                                       \
                    b = e;                                                                         \
                    bj = j;                                                                        \
                }                                                                                  \
            }                                                                                      \
            cid[r] = bj;                                                                           \
            best[r] = b;                                                                           \
        }                                                                                          \
    }                                                                                              \
    ATTR static void add_double_##SFX(double *s, const float *x, uint32_t d)                       \
    {                                                                                              \
        uint32_t i = 0;                                                                            \
        for (; i + (W) / 2 <= d; i += (W) / 2) {                                                   \
            VH xf;                                                                                 \
            VD sd;                                                                                 \
            memcpy(&xf, x + i, sizeof xf);                                                         \
            memcpy(&sd, s + i, sizeof sd);                                                         \
            sd += __builtin_convertvector(xf, VD);                                                 \
            memcpy(s + i, &sd, sizeof sd);                                                         \
        }                                                                                          \
        for (; i < d; i++)                                                                         \
            s[i] += x[i];                                                                          \
    }                                                                                              \
    static const km_impl impl_##SFX = {argmin_rows_##SFX, add_double_##SFX};

KM_KERNELS(base, vf4, vi4, 4, vf2, vd2, )
#ifdef KM_X86
KM_KERNELS(avx2, vf8, vi8, 8, vf4, vd4, __attribute__((target("avx2"))))
KM_KERNELS(avx512, vf16, vi16, 16, vf8, vd8, __attribute__((target("avx512f"))))
#endif

static const km_impl *const impls[] = {
    [SOP_V_ISA_BASE] = &impl_base,
#ifdef KM_X86
    [SOP_V_ISA_AVX2] = &impl_avx2,
    [SOP_V_ISA_AVX512] = &impl_avx512,
#endif
};

/* the instruction set vmath.c chose (or a test forced) */
static const km_impl *impl(void) { return impls[sop__v_isa()]; }

static void sub_double(double *s, const float *x, uint32_t d)
{
    for (uint32_t i = 0; i < d; i++)
        s[i] -= x[i];
}

/* ---- assignment ------------------------------------------------------ */

/* rows per assignment block: about KM_BLOCK_SCORES scores */
static size_t block_rows(size_t n, uint32_t k)
{
    size_t b = KM_BLOCK_SCORES / k;
    if (b > KM_BLOCK_ROWS)
        b = KM_BLOCK_ROWS;
    if (b < 1)
        b = 1;
    return b < n ? b : n;
}

/* Nearest centroid of each row (cid) and the exact squared distance to it
 * (d2), with @scores room for block_rows(n, k) * k floats. */
static void assign(const float *data, size_t n, uint32_t d, const float *cent, const float *cnorm,
                   uint32_t k, float *scores, size_t brows, uint32_t *cid, float *d2)
{
    for (size_t r0 = 0; r0 < n; r0 += brows) {
        size_t rows = n - r0 < brows ? n - r0 : brows;
        const float *x = data + r0 * d;
        sop__v_gemm_nt(x, rows, cent, k, d, scores);
        impl()->argmin_rows(scores, rows, cnorm, k, cid + r0, d2 + r0);
        /* the expansion |x|^2 - 2 x.c + |c|^2 cancels badly near the
         * centroid: the distance itself is computed directly */
        for (size_t i = 0; i < rows; i++)
            d2[r0 + i] = sop__v_l2sq(x + i * d, cent + (size_t)cid[r0 + i] * d, d);
    }
}

int sop__kmeans_assign(const float *data, size_t n, uint32_t d, const float *cent,
                       const float *cnorm, uint32_t k, uint32_t *cid, float *dist)
{
    if (n == 0)
        return 0;
    if (!data || !cent || !cnorm || !cid || !dist || d == 0 || k == 0)
        return -EINVAL;
    size_t brows = block_rows(n, k);
    float *scores = sop__malloc(brows * k * sizeof *scores);
    if (!scores)
        return -ENOMEM;
    assign(data, n, d, cent, cnorm, k, scores, brows, cid, dist);
    for (size_t i = 0; i < n; i++)
        dist[i] = sqrtf(dist[i]);
    sop__free(scores);
    return 0;
}

/* ---- seeding --------------------------------------------------------- */

/* Index of the point drawn with probability mind[i] / total (mind[i] > 0),
 * scanning the prefix sums in the order that made @total. */
static size_t draw(const float *mind, size_t s, double total, uint64_t *rng)
{
    double u = sop__rng_unit(rng) * total, c = 0;
    size_t last = 0;
    for (size_t i = 0; i < s; i++) {
        if (mind[i] > 0) {
            c += mind[i];
            last = i;
            if (c > u)
                return i;
        }
    }
    return last; /* u rounded up to the total */
}

/* k-means++ on the s rows of @smp, writing the k centres to @cent.
 * mind[j]: squared distance of row j to its nearest centre so far; t: s
 * floats of scratch. (Skipping rows by the triangle inequality between
 * centres was tried: in 100 dimensions it skipped too few rows to pay for
 * breaking the streaming pass.) */
static void seed_pp(const float *smp, size_t s, uint32_t d, uint32_t k, uint64_t *rng,
                    float *mind, float *t, float *cent)
{
    size_t first = (size_t)sop__rng_below(rng, s);
    memcpy(cent, smp + first * d, d * sizeof *cent);
    sop__v_l2sqs(cent, smp, s, d, mind);
    for (uint32_t c = 1; c < k; c++) {
        double total = 0;
        for (size_t j = 0; j < s; j++)
            total += mind[j];
        size_t p = total > 0 ? draw(mind, s, total, rng) : (size_t)sop__rng_below(rng, s);
        float *nc = cent + (size_t)c * d;
        memcpy(nc, smp + p * d, d * sizeof *cent);
        if (c + 1 == k)
            break;
        sop__v_l2sqs(nc, smp, s, d, t);
        for (size_t j = 0; j < s; j++)
            mind[j] = t[j] < mind[j] ? t[j] : mind[j];
    }
}

/* ---- Lloyd ----------------------------------------------------------- */

typedef struct cand {
    float d2;
    size_t i;
} cand;

static int cand_cmp(const void *a, const void *b)
{
    const cand *x = a, *y = b;
    if (x->d2 != y->d2)
        return x->d2 > y->d2 ? -1 : 1; /* farthest first */
    return x->i < y->i ? -1 : x->i > y->i;
}

/* Gives each empty cluster the farthest point whose cluster keeps another
 * point, moving the point's contribution to the sums. Returns 0 or
 * -ENOMEM. */
static int reseed_empty(const float *data, size_t n, uint32_t d, uint32_t k, uint32_t *cid,
                        float *d2, double *sums, uint64_t *counts)
{
    size_t nc = 0;
    for (size_t i = 0; i < n; i++)
        nc += d2[i] > 0;
    if (nc == 0)
        return 0; /* every point on its centroid: nothing to move */
    cand *cs = sop__malloc(nc * sizeof *cs);
    if (!cs)
        return -ENOMEM;
    nc = 0;
    for (size_t i = 0; i < n; i++)
        if (d2[i] > 0)
            cs[nc++] = (cand){d2[i], i};
    qsort(cs, nc, sizeof *cs, cand_cmp);
    size_t next = 0;
    for (uint32_t e = 0; e < k && next < nc; e++) {
        if (counts[e])
            continue;
        while (next < nc && counts[cid[cs[next].i]] < 2)
            next++;
        if (next == nc)
            break;
        size_t i = cs[next++].i;
        const float *x = data + i * d;
        uint32_t from = cid[i];
        sub_double(sums + (size_t)from * d, x, d);
        counts[from]--;
        impl()->add_double(sums + (size_t)e * d, x, d);
        counts[e] = 1;
        cid[i] = e;
        d2[i] = 0;
    }
    sop__free(cs);
    return 0;
}

/* Seeds the k centres from a sample of the data (see the top of the
 * file). Returns 0 or -ENOMEM. */
static int seed(const float *data, size_t n, uint32_t d, uint32_t k, uint64_t *rng, float *cent)
{
    size_t s = (size_t)k * KM_SAMPLE_PER_K;
    if (s < KM_SAMPLE_MIN)
        s = KM_SAMPLE_MIN;
    if (s > n)
        s = n;
    float *sample = NULL, *mind = sop__malloc(s * sizeof *mind), *t = sop__malloc(s * sizeof *t);
    if (s < n)
        sample = sop__malloc(s * d * sizeof *sample);
    if (!mind || !t || (s < n && !sample)) {
        sop__free(mind);
        sop__free(t);
        sop__free(sample);
        return -ENOMEM;
    }
    const float *smp = data;
    if (s < n) {
        /* selection sampling: row i is taken with probability
         * (rows still needed) / (rows left), which takes exactly s rows,
         * uniformly, in data order */
        size_t need = s;
        for (size_t i = 0; i < n && need; i++) {
            if (sop__rng_below(rng, n - i) < need) {
                memcpy(sample + (s - need) * d, data + i * d, d * sizeof *sample);
                need--;
            }
        }
        smp = sample;
    }
    seed_pp(smp, s, d, k, rng, mind, t, cent);
    sop__free(mind);
    sop__free(t);
    sop__free(sample);
    return 0;
}

int sop__kmeans(const float *data, size_t n, uint32_t d, const sop__kmeans_opts *o, float *cent)
{
    if (!data || !o || !cent || n == 0 || d == 0 || o->k == 0 || o->k > n || !(o->tol >= 0))
        return -EINVAL;
    if (n > SIZE_MAX / sizeof(float) / d)
        return -EINVAL;
    uint32_t k = o->k;
    uint32_t max_iter = o->max_iter ? o->max_iter : KM_DEF_ITER;
    double tol = o->tol > 0 ? o->tol : KM_DEF_TOL;
    uint64_t rng = o->seed;
    size_t brows = block_rows(n, k);

    int rc = seed(data, n, d, k, &rng, cent);
    if (rc < 0)
        return rc;
    if (o->spherical) /* seeds are data points: already unit vectors */
        for (uint32_t c = 0; c < k; c++)
            sop__v_normalize(cent + (size_t)c * d, d);

    rc = -ENOMEM;
    float *scores = sop__malloc(brows * k * sizeof *scores);
    float *cnorm = sop__malloc((size_t)k * sizeof *cnorm);
    float *d2 = sop__malloc(n * sizeof *d2);
    uint32_t *cid = sop__malloc(n * sizeof *cid);
    double *sums = sop__malloc((size_t)k * d * sizeof *sums);
    uint64_t *counts = sop__malloc((size_t)k * sizeof *counts);
    if (!scores || !cnorm || !d2 || !cid || !sums || !counts)
        goto out;

    double meansq = 0;
    for (size_t i = 0; i < n; i++)
        meansq += sop__v_dot(data + i * d, data + i * d, d);
    meansq /= (double)n;
    double limit = tol * meansq;
    void (*add)(double *, const float *, uint32_t) = impl()->add_double;

    for (uint32_t it = 0; it < max_iter; it++) {
        sop__v_norms_sq(cent, k, d, cnorm);
        assign(data, n, d, cent, cnorm, k, scores, brows, cid, d2);
        memset(sums, 0, (size_t)k * d * sizeof *sums);
        memset(counts, 0, (size_t)k * sizeof *counts);
        for (size_t i = 0; i < n; i++) {
            add(sums + (size_t)cid[i] * d, data + i * d, d);
            counts[cid[i]]++;
        }
        uint32_t empty = 0;
        for (uint32_t c = 0; c < k; c++)
            empty += counts[c] == 0;
        if (empty && reseed_empty(data, n, d, k, cid, d2, sums, counts) < 0)
            goto out;
        /* the means, and the largest squared move */
        double shift = 0;
        for (uint32_t c = 0; c < k; c++) {
            if (!counts[c])
                continue; /* nothing to give it: stays where it is */
            float *ce = cent + (size_t)c * d;
            const double *su = sums + (size_t)c * d;
            double inv = 1.0 / (double)counts[c], m = 0;
            if (o->spherical) { /* the mean's direction, at unit length */
                double len = 0;
                for (uint32_t j = 0; j < d; j++)
                    len += su[j] * su[j];
                inv = len > 0 ? 1.0 / sqrt(len) : 0;
            }
            for (uint32_t j = 0; j < d; j++) {
                float v = (float)(su[j] * inv);
                double t = (double)v - ce[j];
                m += t * t;
                ce[j] = v;
            }
            if (m > shift)
                shift = m;
        }
        if (shift <= limit)
            break;
    }
    rc = 0;
out:
    sop__free(scores);
    sop__free(cnorm);
    sop__free(d2);
    sop__free(cid);
    sop__free(sums);
    sop__free(counts);
    return rc;
}
