/*
 * test_kmeans.c - the vector layer's float kernels (vmath.c) against naive
 * double-precision references, and k-means training (kmeans.c): recovery
 * of separated blobs, determinism under a seed, the edge cases (k == n,
 * k > n, identical points, empty clusters) and out-of-memory handling.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kmeans.h"
#include "rng.h"
#include "sop/sop.h"
#include "testutil.h"
#include "vmath.h"

#define MAXD 1100

static uint64_t g_rng;

static float unif(void) { return (float)(sop__rng_unit(&g_rng) * 2.0 - 1.0); }

static float gauss(uint64_t *s)
{
    double u = sop__rng_unit(s) + 1e-300, v = sop__rng_unit(s);
    return (float)(sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v));
}

static float *fvec(size_t n)
{
    float *p = malloc((n ? n : 1) * sizeof *p);
    assert_non_null(p);
    return p;
}

/* Test hook of vmath.c (in a SOP_TESTING build): force the kernels of one
 * instruction set in vmath.c and kmeans.c, so every instance is tested on
 * a CPU that has it. Without it the tests run once, on the CPU's choice. */
int sop__v_force_isa(int isa) __attribute__((weak));

static int g_isa = -1; /* forced instruction set: 0 base, 1 AVX2, 2 AVX-512F */

static int use_isa(int isa)
{
    g_isa = isa;
    if (!sop__v_force_isa)
        return isa <= 0;
    return sop__v_force_isa(isa) == 0;
}

/* Runs @body with each instruction set this CPU has. */
static void for_each_isa(void (*body)(void))
{
    int ran = 0;
    for (int isa = 0; isa < 3; isa++) {
        if (use_isa(isa)) {
            body();
            ran++;
        }
    }
    use_isa(-1);
    assert_true(ran > 0);
}

static int setup(void **state)
{
    (void)state;
    g_rng = tu_seed();
    return 0;
}

/* ---- kernels --------------------------------------------------------- */

static double ref_dot(const float *a, const float *b, uint32_t d, double *mag)
{
    double s = 0, m = 0;
    for (uint32_t i = 0; i < d; i++) {
        s += (double)a[i] * b[i];
        m += fabs((double)a[i] * b[i]);
    }
    if (mag)
        *mag = m;
    return s;
}

static double ref_l2sq(const float *a, const float *b, uint32_t d)
{
    double s = 0;
    for (uint32_t i = 0; i < d; i++) {
        double t = (double)a[i] - b[i];
        s += t * t;
    }
    return s;
}

/* float rounding bound for a sum of d terms of total magnitude @mag */
static double tol_for(uint32_t d, double mag)
{
    return 4.0 * FLT_EPSILON * (d / 8.0 + 8) * mag + 1e-30;
}

static void dot_l2_random_body(void)
{
    /* +1 and +3: unaligned starts */
    float *a = fvec(MAXD + 4), *b = fvec(MAXD + 4);
    for (uint32_t d = 0; d <= MAXD; d++) {
        const float *x = a + (d % 2), *y = b + 3;
        for (uint32_t i = 0; i < MAXD + 4; i++) {
            a[i] = unif();
            b[i] = unif();
        }
        double mag, r = ref_dot(x, y, d, &mag);
        float got = sop__v_dot(x, y, d);
        if (fabs(got - r) > tol_for(d, mag))
            fail_msg("isa %d dot d=%u: %.9g vs %.9g", g_isa, d, got, r);
        r = ref_l2sq(x, y, d);
        got = sop__v_l2sq(x, y, d);
        if (fabs(got - r) > tol_for(d, r))
            fail_msg("isa %d l2sq d=%u: %.9g vs %.9g", g_isa, d, got, r);
        assert_true(got >= 0);
        assert_true(sop__v_l2sq(x, x, d) == 0.0f);
    }
    free(a);
    free(b);
}

static void test_dot_l2_random(void **state)
{
    (void)state;
    for_each_isa(dot_l2_random_body);
}

/* Small integers: every partial sum is exact in float, so any lost,
 * repeated or misplaced component shows as an exact mismatch. */
static void dot_l2_exact_body(void)
{
    float *a = fvec(MAXD + 1), *b = fvec(MAXD + 1);
    for (uint32_t d = 0; d <= MAXD; d++) {
        for (uint32_t i = 0; i < d; i++) {
            a[i] = (float)(i % 7) - 3.0f;
            b[i] = (float)((i * 5 + d) % 11) - 5.0f;
        }
        int64_t dot = 0, l2 = 0;
        for (uint32_t i = 0; i < d; i++) {
            int64_t x = (int64_t)a[i], y = (int64_t)b[i];
            dot += x * y;
            l2 += (x - y) * (x - y);
        }
        assert_true(sop__v_dot(a, b, d) == (float)dot);
        assert_true(sop__v_l2sq(a, b, d) == (float)l2);
        /* the position matters: one changed component changes the result */
        if (d) {
            uint32_t p = (d * 7919u) % d;
            a[p] += 1.0f;
            assert_true(sop__v_dot(a, b, d) == (float)(dot + (int64_t)b[p]));
            a[p] -= 1.0f;
        }
    }
    free(a);
    free(b);
}

static void test_dot_l2_exact(void **state)
{
    (void)state;
    for_each_isa(dot_l2_exact_body);
}

static void rows_kernels_body(void)
{
    static const uint32_t ds[] = {1, 2, 3, 7, 15, 16, 17, 31, 32, 33, 63, 64, 65, 100, 127, 128,
                                  129, 384, 768, 1023, 1100};
    const size_t n = 13;
    for (size_t t = 0; t < sizeof ds / sizeof ds[0]; t++) {
        uint32_t d = ds[t];
        float *m = fvec(n * d + 1), *q = fvec(d), *out = fvec(n);
        for (size_t i = 0; i < n * d + 1; i++)
            m[i] = unif();
        for (uint32_t i = 0; i < d; i++)
            q[i] = unif();
        const float *mm = m + 1; /* rows not aligned */
        double mag;
        sop__v_dots(q, mm, n, d, out);
        for (size_t i = 0; i < n; i++) {
            double r = ref_dot(q, mm + i * d, d, &mag);
            assert_true(fabs(out[i] - r) <= tol_for(d, mag));
        }
        sop__v_l2sqs(q, mm, n, d, out);
        for (size_t i = 0; i < n; i++) {
            double r = ref_l2sq(q, mm + i * d, d);
            assert_true(fabs(out[i] - r) <= tol_for(d, r));
        }
        sop__v_norms_sq(mm, n, d, out);
        for (size_t i = 0; i < n; i++) {
            double r = ref_dot(mm + i * d, mm + i * d, d, NULL);
            assert_true(fabs(out[i] - r) <= tol_for(d, r));
        }
        /* the query's block kernel: rows anywhere (here unaligned), n not a
         * multiple of four */
        const float *rows[13];
        for (size_t i = 0; i < n; i++)
            rows[i] = mm + ((i * 5) % n) * d;
        sop__v_dots_rows(q, rows, n, d, out);
        for (size_t i = 0; i < n; i++) {
            double r = ref_dot(q, rows[i], d, &mag);
            assert_true(fabs(out[i] - r) <= tol_for(d, mag));
        }
        /* n == 0 writes nothing */
        out[0] = 42.0f;
        sop__v_dots(q, mm, 0, d, out);
        sop__v_l2sqs(q, mm, 0, d, out);
        sop__v_norms_sq(mm, 0, d, out);
        assert_true(out[0] == 42.0f);
        free(m);
        free(q);
        free(out);
    }
}

static void test_rows_kernels(void **state)
{
    (void)state;
    for_each_isa(rows_kernels_body);
}

static void test_gemm_nt(void **state)
{
    (void)state;
    static const uint32_t ds[] = {1, 3, 16, 17, 100, 129};
    static const size_t ns[] = {1, 5, 37};
    static const size_t ks[] = {1, 2, 19, 64};
    for (size_t t = 0; t < sizeof ds / sizeof ds[0]; t++)
        for (size_t u = 0; u < sizeof ns / sizeof ns[0]; u++)
            for (size_t w = 0; w < sizeof ks / sizeof ks[0]; w++) {
                uint32_t d = ds[t];
                size_t n = ns[u], k = ks[w];
                float *a = fvec(n * d), *b = fvec(k * d), *c = fvec(n * k);
                for (size_t i = 0; i < n * d; i++)
                    a[i] = unif();
                for (size_t i = 0; i < k * d; i++)
                    b[i] = unif();
                sop__v_gemm_nt(a, n, b, k, d, c);
                for (size_t i = 0; i < n; i++)
                    for (size_t j = 0; j < k; j++) {
                        double mag, r = ref_dot(a + i * d, b + j * d, d, &mag);
                        if (fabs(c[i * k + j] - r) > tol_for(d, mag))
                            fail_msg("gemm n=%zu k=%zu d=%u [%zu,%zu]: %g vs %g", n, k, d, i,
                                     j, c[i * k + j], r);
                    }
                free(a);
                free(b);
                free(c);
            }
    /* exact small integers, and an asymmetric case: a[i] . b[j] != a[j] . b[i] */
    float a[6] = {1, 2, 3, 4, 5, 6}, b[6] = {1, 0, 0, 0, 1, 0}, c[4];
    sop__v_gemm_nt(a, 2, b, 2, 3, c);
    assert_true(c[0] == 1 && c[1] == 2 && c[2] == 4 && c[3] == 5);
    float v[3] = {1, 10, 100}, g[5];
    const float *r5[5] = {a, a + 3, a, a + 3, a + 3};
    sop__v_dots_rows(v, r5, 5, 3, g);
    assert_true(g[0] == 321 && g[1] == 654 && g[2] == 321 && g[3] == 654 && g[4] == 654);
}

static void normalize_body(void)
{
    float v[MAXD];
    for (uint32_t d = 1; d <= MAXD; d += (d < 40 ? 1 : 37)) {
        for (uint32_t i = 0; i < d; i++)
            v[i] = unif() * 3.0f;
        v[d - 1] = 0.5f; /* not the zero vector */
        double len = sqrt(ref_dot(v, v, d, NULL));
        float got = sop__v_normalize(v, d);
        assert_true(fabs(got - len) <= 1e-6 * len);
        double l2 = ref_dot(v, v, d, NULL);
        assert_true(fabs(l2 - 1.0) < 1e-5);
    }
    /* the zero vector: 0, left as is */
    memset(v, 0, sizeof v);
    assert_true(sop__v_normalize(v, 100) == 0.0f);
    for (int i = 0; i < 100; i++)
        assert_true(v[i] == 0.0f);
    /* squares that underflow or overflow in float */
    static const float scales[] = {1e-30f, 1e-40f, 1e25f, 1e37f, 3e38f};
    for (size_t s = 0; s < sizeof scales / sizeof scales[0]; s++) {
        for (int i = 0; i < 64; i++)
            v[i] = (i % 2 ? -1.0f : 1.0f) * scales[s];
        float len = sop__v_normalize(v, 64);
        if (8.0 * scales[s] <= FLT_MAX)
            assert_true(fabs(len / (8.0 * scales[s]) - 1.0) < 1e-5);
        else
            assert_true(isinf(len)); /* the length itself is beyond float */
        for (int i = 0; i < 64; i++)
            assert_true(fabs(fabs(v[i]) - 0.125) < 1e-6);
    }
    /* d == 1 */
    v[0] = -7.0f;
    assert_true(sop__v_normalize(v, 1) == 7.0f);
    assert_true(v[0] == -1.0f);
}

static void test_normalize(void **state)
{
    (void)state;
    for_each_isa(normalize_body);
}

static void finite_body(void)
{
    float v[1600];
    static const uint32_t ds[] = {1, 2, 15, 16, 17, 31, 33, 100, 129, 1536};
    const float bad[] = {NAN, -NAN, INFINITY, -INFINITY};
    for (size_t t = 0; t < sizeof ds / sizeof ds[0]; t++) {
        uint32_t d = ds[t];
        for (uint32_t i = 0; i < d; i++)
            v[i] = unif();
        v[0] = FLT_MAX;
        v[d - 1] = -FLT_MAX;
        if (d > 2)
            v[1] = 1e-45f; /* denormal */
        assert_int_equal(sop__v_finite(v, d), 1);
        for (uint32_t p = 0; p < d; p += (d > 40 ? 7 : 1)) {
            for (size_t b = 0; b < 4; b++) {
                float keep = v[p];
                v[p] = bad[b];
                if (sop__v_finite(v, d))
                    fail_msg("isa %d d=%u pos %u value %g seen finite", g_isa, d, p, bad[b]);
                v[p] = keep;
            }
        }
        v[d - 1] = NAN; /* the last one too */
        assert_int_equal(sop__v_finite(v, d), 0);
        assert_int_equal(sop__v_finite(v, d - 1), 1);
    }
    assert_int_equal(sop__v_finite(v, 0), 1);
}

static void test_finite(void **state)
{
    (void)state;
    for_each_isa(finite_body);
}

/* ---- k-means --------------------------------------------------------- */

/* n points around nb centres (spread apart by @sep), noise sigma */
static float *blobs(size_t n, uint32_t d, uint32_t nb, float sep, float sigma, uint64_t seed,
                    float **centres)
{
    uint64_t s = seed;
    float *c = fvec((size_t)nb * d), *x = fvec(n * d);
    for (size_t i = 0; i < (size_t)nb * d; i++)
        c[i] = (float)(sop__rng_unit(&s) * 2 - 1) * sep;
    for (size_t i = 0; i < n; i++) {
        uint32_t b = (uint32_t)(i % nb);
        for (uint32_t j = 0; j < d; j++)
            x[i * d + j] = c[(size_t)b * d + j] + sigma * gauss(&s);
    }
    *centres = c;
    return x;
}

static double nearest_sq(const float *p, const float *cent, uint32_t k, uint32_t d)
{
    double best = INFINITY;
    for (uint32_t j = 0; j < k; j++) {
        double t = ref_l2sq(p, cent + (size_t)j * d, d);
        if (t < best)
            best = t;
    }
    return best;
}

static void check_recovers(size_t n, uint32_t d, uint32_t nb, uint64_t seed)
{
    float *truth, *x = blobs(n, d, nb, 10.0f, 0.1f, 1234 + seed, &truth);
    float *cent = fvec((size_t)nb * d);
    sop__kmeans_opts o = {.k = nb, .seed = seed};
    assert_int_equal(sop__kmeans(x, n, d, &o, cent), 0);
    for (uint32_t b = 0; b < nb; b++) {
        double e = sqrt(nearest_sq(truth + (size_t)b * d, cent, nb, d));
        if (e > 0.1)
            fail_msg("n=%zu seed %llu: blob %u has no centroid near (%.3f)", n,
                     (unsigned long long)seed, b, e);
    }
    free(truth);
    free(x);
    free(cent);
}

static void blobs_body(void)
{
    for (uint64_t seed = 1; seed <= 5; seed++)
        check_recovers(8 * 200, 16, 8, seed);
    /* more points than the seeding sample: seeding on a subsample */
    check_recovers(20000, 8, 10, 99);
}

static void test_blobs(void **state)
{
    (void)state;
    for_each_isa(blobs_body);
}

static void determinism_body(void)
{
    const size_t n = 3000;
    const uint32_t d = 24, k = 17;
    float *x = fvec(n * d), *c1 = fvec(k * d), *c2 = fvec(k * d), *c3 = fvec(k * d);
    uint64_t s = 77;
    for (size_t i = 0; i < n * d; i++)
        x[i] = gauss(&s);
    sop__kmeans_opts o = {.k = k, .max_iter = 10, .seed = 5};
    assert_int_equal(sop__kmeans(x, n, d, &o, c1), 0);
    assert_int_equal(sop__kmeans(x, n, d, &o, c2), 0);
    assert_memory_equal(c1, c2, k * d * sizeof *c1);
    o.seed = 6; /* another seed starts elsewhere (structureless data) */
    assert_int_equal(sop__kmeans(x, n, d, &o, c3), 0);
    assert_memory_not_equal(c1, c3, k * d * sizeof *c1);
    for (size_t i = 0; i < k * d; i++)
        assert_true(isfinite(c1[i]));
    free(x);
    free(c1);
    free(c2);
    free(c3);
}

static void test_determinism(void **state)
{
    (void)state;
    for_each_isa(determinism_body);
}

/* Largest squared move of a centroid to the mean of the points nearest to
 * it (one more Lloyd step done naively), relative to the mean squared
 * norm of the data. */
static double lloyd_step_shift(const float *x, size_t n, uint32_t d, const float *cent, uint32_t k)
{
    double *sum = calloc((size_t)k * d, sizeof *sum), meansq = 0, worst = 0;
    size_t *cnt = calloc(k, sizeof *cnt);
    assert_true(sum && cnt);
    for (size_t i = 0; i < n; i++) {
        uint32_t bj = 0;
        double best = INFINITY;
        for (uint32_t j = 0; j < k; j++) {
            double e = ref_l2sq(x + i * d, cent + (size_t)j * d, d);
            if (e < best) {
                best = e;
                bj = j;
            }
        }
        for (uint32_t t = 0; t < d; t++)
            sum[(size_t)bj * d + t] += x[i * d + t];
        cnt[bj]++;
        meansq += ref_dot(x + i * d, x + i * d, d, NULL);
    }
    for (uint32_t j = 0; j < k; j++) {
        double m = 0;
        for (uint32_t t = 0; cnt[j] && t < d; t++) {
            double e = sum[(size_t)j * d + t] / (double)cnt[j] - cent[(size_t)j * d + t];
            m += e * e;
        }
        if (m > worst)
            worst = m;
    }
    free(sum);
    free(cnt);
    return worst / (meansq / (double)n);
}

/* Iterations run until the centroids stop moving (by tol), not fewer; and
 * max_iter bounds them. */
static void test_convergence(void **state)
{
    (void)state;
    const size_t n = 2000;
    const uint32_t d = 4, k = 8;
    float *x = fvec(n * d), *c1 = fvec(k * d), *c2 = fvec(k * d);
    uint64_t s = 5;
    for (size_t i = 0; i < n * d; i++)
        x[i] = gauss(&s) + 3.0f;
    sop__kmeans_opts o = {.k = k, .max_iter = 200, .seed = 1, .tol = 1e-9f};
    assert_int_equal(sop__kmeans(x, n, d, &o, c1), 0);
    double conv = lloyd_step_shift(x, n, d, c1, k);
    if (conv > 1e-7)
        fail_msg("not converged: a further step moves a centroid by %g", conv);
    o.max_iter = 1;
    assert_int_equal(sop__kmeans(x, n, d, &o, c2), 0);
    double one = lloyd_step_shift(x, n, d, c2, k);
    if (one < 1e-5)
        fail_msg("one iteration already converged (%g): the test shows nothing", one);
    free(x);
    free(c1);
    free(c2);
}

/* every row of @x is (bitwise) one of the k rows of @cent, and no two
 * centroids are the same row */
static void assert_centroids_are_points(const float *x, const float *cent, size_t n, uint32_t d)
{
    char *used = calloc(n, 1);
    assert_non_null(used);
    for (size_t i = 0; i < n; i++) {
        size_t j = 0;
        while (j < n && (used[j] || memcmp(x + i * d, cent + j * d, d * sizeof *x)))
            j++;
        if (j == n)
            fail_msg("point %zu is no centroid", i);
        used[j] = 1;
    }
    free(used);
}

static void k_equals_n_body(void)
{
    const size_t n = 50;
    const uint32_t d = 3;
    float *x = fvec(n * d), *cent = fvec(n * d);
    for (size_t i = 0; i < n * d; i++)
        x[i] = unif();
    sop__kmeans_opts o = {.k = (uint32_t)n, .seed = 3};
    assert_int_equal(sop__kmeans(x, n, d, &o, cent), 0);
    assert_centroids_are_points(x, cent, n, d);
    /* k == n == 1 */
    o.k = 1;
    assert_int_equal(sop__kmeans(x, 1, d, &o, cent), 0);
    assert_memory_equal(cent, x, d * sizeof *x);
    free(x);
    free(cent);
}

static void test_k_equals_n(void **state)
{
    (void)state;
    for_each_isa(k_equals_n_body);
}

static void test_einval(void **state)
{
    (void)state;
    float x[8] = {0}, c[8];
    sop__kmeans_opts o = {.k = 5};
    assert_int_equal(sop__kmeans(x, 4, 2, &o, c), -EINVAL); /* k > n */
    o.k = 0;
    assert_int_equal(sop__kmeans(x, 4, 2, &o, c), -EINVAL);
    o.k = 2;
    assert_int_equal(sop__kmeans(x, 0, 2, &o, c), -EINVAL);
    assert_int_equal(sop__kmeans(x, 4, 0, &o, c), -EINVAL);
    assert_int_equal(sop__kmeans(NULL, 4, 2, &o, c), -EINVAL);
    assert_int_equal(sop__kmeans(x, 4, 2, NULL, c), -EINVAL);
    assert_int_equal(sop__kmeans(x, 4, 2, &o, NULL), -EINVAL);
    o.tol = -1.0f;
    assert_int_equal(sop__kmeans(x, 4, 2, &o, c), -EINVAL);
    o.tol = NAN;
    assert_int_equal(sop__kmeans(x, 4, 2, &o, c), -EINVAL);
    o.tol = 0;
    assert_int_equal(sop__kmeans(x, 4, 2, &o, c), 0);
    float cn[2] = {0, 0};
    uint32_t cid[4];
    float dist[4];
    assert_int_equal(sop__kmeans_assign(x, 4, 2, c, cn, 0, cid, dist), -EINVAL);
    assert_int_equal(sop__kmeans_assign(x, 4, 0, c, cn, 2, cid, dist), -EINVAL);
    assert_int_equal(sop__kmeans_assign(x, 0, 2, c, cn, 2, cid, dist), 0);
}

static void identical_points_body(void)
{
    const size_t n = 300;
    const uint32_t d = 5, k = 7;
    float *x = fvec(n * d), *cent = fvec(k * d);
    for (size_t i = 0; i < n * d; i++)
        x[i] = (float)(i % d) - 1.5f;
    sop__kmeans_opts o = {.k = k, .seed = 11};
    assert_int_equal(sop__kmeans(x, n, d, &o, cent), 0);
    for (uint32_t j = 0; j < k; j++)
        assert_memory_equal(cent + (size_t)j * d, x, d * sizeof *x);
    /* all zero too (mean squared norm 0: the tolerance is 0) */
    memset(x, 0, n * d * sizeof *x);
    assert_int_equal(sop__kmeans(x, n, d, &o, cent), 0);
    for (size_t i = 0; i < k * d; i++)
        assert_true(cent[i] == 0.0f);
    free(x);
    free(cent);
}

static void test_identical_points(void **state)
{
    (void)state;
    for_each_isa(identical_points_body);
}

/* Three distinct points repeated, five clusters: seeding runs out of
 * distinct points and duplicates centres, the duplicates get no point and
 * nothing can be moved to them; every distinct point remains a centroid. */
static void test_fewer_distinct_than_k(void **state)
{
    (void)state;
    const float p[3][2] = {{0, 0}, {5, 1}, {-3, 4}};
    const size_t n = 90;
    float *x = fvec(n * 2), cent[5 * 2];
    for (size_t i = 0; i < n; i++)
        memcpy(x + i * 2, p[i % 3], sizeof p[0]);
    for (uint64_t seed = 0; seed < 10; seed++) {
        sop__kmeans_opts o = {.k = 5, .seed = seed};
        assert_int_equal(sop__kmeans(x, n, 2, &o, cent), 0);
        for (int q = 0; q < 3; q++) {
            int found = 0;
            for (int j = 0; j < 5; j++)
                found |= cent[j * 2] == p[q][0] && cent[j * 2 + 1] == p[q][1];
            assert_true(found);
        }
        for (int j = 0; j < 5; j++) /* each centroid is one of the points */
            assert_true(nearest_sq(cent + j * 2, &p[0][0], 3, 2) == 0);
    }
    free(x);
}

/* Points so close together, far from the origin, that the sgemm scores
 * |c|^2 - 2 x.c cannot tell their centroids apart: the assignment puts
 * several points in one cluster and leaves others empty. Re-seeding moves
 * the points off their centroid into the empty clusters, so with k == n
 * every point ends as its own centroid (without it, some centroids would
 * be means of several points and others stale). */
static void empty_reseed_body(void)
{
    const size_t n = 12;
    const uint32_t d = 2;
    float x[12 * 2], cent[12 * 2];
    for (size_t i = 0; i < n; i++) {
        x[i * 2] = 1048576.0f + 0.125f * (float)i;      /* 2^20 + i / 8 */
        x[i * 2 + 1] = 1048576.0f - 0.125f * (float)(i * i % 5);
    }
    for (uint64_t seed = 0; seed < 8; seed++) {
        sop__kmeans_opts o = {.k = (uint32_t)n, .seed = seed};
        assert_int_equal(sop__kmeans(x, n, d, &o, cent), 0);
        assert_centroids_are_points(x, cent, n, d);
    }
}

static void test_empty_reseed(void **state)
{
    (void)state;
    for_each_isa(empty_reseed_body);
}

static void assign_brute_force_body(void)
{
    static const uint32_t ds[] = {1, 7, 64, 100};
    static const uint32_t ks[] = {1, 3, 16, 33, 300};
    const size_t n = 500;
    for (size_t t = 0; t < sizeof ds / sizeof ds[0]; t++)
        for (size_t u = 0; u < sizeof ks / sizeof ks[0]; u++) {
            uint32_t d = ds[t], k = ks[u];
            float *x = fvec(n * d), *c = fvec((size_t)k * d), *cn = fvec(k), *dist = fvec(n);
            uint32_t *cid = malloc(n * sizeof *cid);
            assert_non_null(cid);
            for (size_t i = 0; i < n * d; i++)
                x[i] = unif() + 2.0f; /* off the origin */
            for (size_t i = 0; i < (size_t)k * d; i++)
                c[i] = unif() + 2.0f;
            sop__v_norms_sq(c, k, d, cn);
            assert_int_equal(sop__kmeans_assign(x, n, d, c, cn, k, cid, dist), 0);
            for (size_t i = 0; i < n; i++) {
                double best = INFINITY, second = INFINITY;
                uint32_t bj = 0;
                for (uint32_t j = 0; j < k; j++) {
                    double e = ref_l2sq(x + i * d, c + (size_t)j * d, d);
                    if (e < best) {
                        second = best;
                        best = e;
                        bj = j;
                    } else if (e < second) {
                        second = e;
                    }
                }
                assert_true(cid[i] < k);
                double got = ref_l2sq(x + i * d, c + (size_t)cid[i] * d, d);
                /* a different centroid only on a near tie */
                if (cid[i] != bj && got - best > 1e-4 * (best + 1))
                    fail_msg("d=%u k=%u row %zu: centroid %u (%g), nearest %u (%g)", d, k, i,
                             cid[i], got, bj, best);
                if (cid[i] == bj && second - best > 1e-3 * (best + 1))
                    assert_int_equal(cid[i], bj);
                if (fabs(dist[i] - sqrt(got)) > 1e-5 * (sqrt(got) + 1))
                    fail_msg("d=%u k=%u row %zu: distance %g, want %g", d, k, i, dist[i],
                             sqrt(got));
            }
            free(x);
            free(c);
            free(cn);
            free(dist);
            free(cid);
        }
}

static void test_assign_brute_force(void **state)
{
    (void)state;
    for_each_isa(assign_brute_force_body);
}

/* The distance returned is the exact one even when the expansion
 * |x|^2 - 2 x.c + |c|^2 would cancel: points near large centroids. */
static void test_assign_small_distances(void **state)
{
    (void)state;
    float c[2 * 3] = {1000, 2000, 3000, -1000, 5, 7};
    float x[2 * 3] = {1000, 2000, 3000.001f, -1000.0005f, 5, 7}, cn[2], dist[2];
    uint32_t cid[2];
    sop__v_norms_sq(c, 2, 3, cn);
    assert_int_equal(sop__kmeans_assign(x, 2, 3, c, cn, 2, cid, dist), 0);
    assert_int_equal(cid[0], 0);
    assert_int_equal(cid[1], 1);
    assert_true(fabs(dist[0] - 0.001) < 1e-4);
    assert_true(fabs(dist[1] - 0.0005) < 1e-4);
}

/* Duplicate centroids: the nearest is the lowest of the equal ones, in
 * every lane of the vector argmin and in its scalar tail. */
static void assign_ties_body(void)
{
    const uint32_t d = 5, k = 50;
    const size_t n = 400;
    float *x = fvec(n * d), *c = fvec((size_t)k * d), cn[50], *dist = fvec(n);
    uint32_t cid[400];
    for (size_t i = 0; i < n * d; i++)
        x[i] = unif();
    for (uint32_t j = 0; j < 16 * d; j++)
        c[j] = unif();
    for (uint32_t j = 16; j < k; j++) /* j, j + 16, j + 32 and 48, 49 repeat 0..15 */
        memcpy(c + (size_t)j * d, c + (size_t)(j % 16) * d, d * sizeof *c);
    sop__v_norms_sq(c, k, d, cn);
    assert_int_equal(sop__kmeans_assign(x, n, d, c, cn, k, cid, dist), 0);
    unsigned low[2] = {0, 0};
    for (size_t i = 0; i < n; i++) {
        assert_true(cid[i] < 16);
        low[cid[i] < 2]++;
    }
    assert_true(low[1] > 0); /* some land on the centroids repeated in the tail */
    free(x);
    free(c);
    free(dist);
}

static void test_assign_ties(void **state)
{
    (void)state;
    for_each_isa(assign_ties_body);
}

/* k-means++ draws the second centre with probability proportional to the
 * squared distance. Points 0, 1, 3 on a line, k = 2, one Lloyd pass: the
 * centres {0, 1} (probability 1/3 (1/10 + 1/5) = 0.1; 1/3 if drawn
 * uniformly) end as {0, 2}, every other pair as {0.5, 3}. Over 2000 seeds
 * the count is 200 +- 13 (one sigma). */
static void test_seeding_distribution(void **state)
{
    (void)state;
    const float x[3] = {0, 1, 3};
    unsigned ab = 0;
    for (uint64_t seed = 0; seed < 2000; seed++) {
        float c[2];
        sop__kmeans_opts o = {.k = 2, .max_iter = 1, .seed = seed};
        assert_int_equal(sop__kmeans(x, 3, 1, &o, c), 0);
        float lo = c[0] < c[1] ? c[0] : c[1], hi = c[0] < c[1] ? c[1] : c[0];
        if (lo == 0.0f && hi == 2.0f)
            ab++;
        else
            assert_true(lo == 0.5f && hi == 3.0f);
    }
    if (ab < 150 || ab > 250)
        fail_msg("{0, 1} seeded %u times in 2000, expected about 200", ab);
}

/* ---- out of memory --------------------------------------------------- */

static long g_fail_after = -1; /* allocations left before failing; -1: never */
static long g_live;            /* allocations not yet freed */

static void *fail_malloc(size_t n, void *ctx)
{
    (void)ctx;
    if (g_fail_after == 0)
        return NULL;
    if (g_fail_after > 0)
        g_fail_after--;
    void *p = malloc(n);
    if (p)
        g_live++;
    return p;
}

static void *fail_realloc(void *p, size_t n, void *ctx)
{
    (void)ctx;
    if (g_fail_after == 0)
        return NULL;
    if (g_fail_after > 0)
        g_fail_after--;
    void *q = realloc(p, n);
    if (q && !p)
        g_live++;
    return q;
}

static void fail_free(void *p, void *ctx)
{
    (void)ctx;
    if (p)
        g_live--;
    free(p);
}

/* Runs @fn with the allocator failing the Nth allocation, N = 0, 1, ...
 * until it succeeds: each failure must be -ENOMEM and leave nothing
 * allocated. Returns how many runs failed. */
static long enomem_loop(int (*fn)(void *), void *arg)
{
    static const sop_allocator a = {fail_malloc, fail_realloc, fail_free, NULL};
    long failures = 0;
    for (long after = 0; after < 1000; after++) {
        g_live = 0;
        g_fail_after = after;
        assert_int_equal(sop_set_allocator(&a), 0);
        int rc = fn(arg);
        g_fail_after = -1;
        sop_set_allocator(NULL);
        assert_int_equal(g_live, 0);
        if (rc == 0)
            return failures;
        assert_int_equal(rc, -ENOMEM);
        failures++;
    }
    fail_msg("never succeeded");
    return -1;
}

typedef struct km_case {
    const float *x;
    size_t n;
    uint32_t d, k;
    float *cent;
} km_case;

static int run_kmeans(void *arg)
{
    km_case *c = arg;
    sop__kmeans_opts o = {.k = c->k, .max_iter = 3, .seed = 9};
    return sop__kmeans(c->x, c->n, c->d, &o, c->cent);
}

static int run_assign(void *arg)
{
    km_case *c = arg;
    float cn[4], dist[64];
    uint32_t cid[64];
    sop__v_norms_sq(c->cent, c->k, c->d, cn);
    return sop__kmeans_assign(c->x, c->n < 64 ? c->n : 64, c->d, c->cent, cn, c->k, cid, dist);
}

static void test_enomem(void **state)
{
    (void)state;
    /* more points than the seeding sample: the sample copy is allocated */
    const size_t n = 20000;
    const uint32_t d = 2;
    float *x = fvec(n * d), cent[4 * 2];
    for (size_t i = 0; i < n * d; i++)
        x[i] = unif();
    km_case c = {x, n, d, 4, cent};
    assert_true(enomem_loop(run_kmeans, &c) >= 8);
    assert_true(enomem_loop(run_assign, &c) >= 1);
    /* a small one, and one that re-seeds empty clusters (see
     * test_empty_reseed): that allocates too */
    c.n = 10;
    assert_true(enomem_loop(run_kmeans, &c) >= 8);
    float y[12 * 2], cent12[12 * 2];
    for (size_t i = 0; i < 12; i++) {
        y[i * 2] = 1048576.0f + 0.125f * (float)i;
        y[i * 2 + 1] = 1048576.0f - 0.125f * (float)(i * i % 5);
    }
    km_case e = {y, 12, 2, 12, cent12};
    assert_true(enomem_loop(run_kmeans, &e) >= 9); /* 8 as above, + re-seeding */
    free(x);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dot_l2_random),
        cmocka_unit_test(test_dot_l2_exact),
        cmocka_unit_test(test_rows_kernels),
        cmocka_unit_test(test_gemm_nt),
        cmocka_unit_test(test_normalize),
        cmocka_unit_test(test_finite),
        cmocka_unit_test(test_blobs),
        cmocka_unit_test(test_determinism),
        cmocka_unit_test(test_convergence),
        cmocka_unit_test(test_k_equals_n),
        cmocka_unit_test(test_einval),
        cmocka_unit_test(test_identical_points),
        cmocka_unit_test(test_fewer_distinct_than_k),
        cmocka_unit_test(test_empty_reseed),
        cmocka_unit_test(test_assign_brute_force),
        cmocka_unit_test(test_assign_small_distances),
        cmocka_unit_test(test_assign_ties),
        cmocka_unit_test(test_seeding_distribution),
        cmocka_unit_test(test_enomem),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
