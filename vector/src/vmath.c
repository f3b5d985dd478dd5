/* vmath.c - float kernels of the vector layer (see vmath.h).
 *
 * The per-vector kernels (dot, squared L2, norms, finiteness) are written
 * once with GCC/Clang vector extensions over vectors of W floats (the
 * VM_KERNELS macro) and instantiated for three instruction sets: AVX-512F
 * (W = 16), AVX2 (W = 8) and the baseline (W = 4: SSE2 on x86-64, NEON on
 * arm64). Each instance uses its ISA's native vector width: GCC lowers
 * wider vectors through the stack, and at -O2 it does not vectorise plain
 * loops with a runtime trip count, so neither target_clones over one
 * source nor scalar loops give SIMD code in a RelWithDebInfo build. The
 * sums keep four independent vector accumulators (no -ffast-math needed)
 * and add them in a fixed order, so a result depends only on the inputs
 * and the instance. The instance is chosen once per process from the CPU
 * (__builtin_cpu_supports: CPU and OS support) and kept in an atomic
 * pointer; a call costs one indirect call. Instances differ in the last
 * bits of a sum (different association), never run to run.
 *
 * The many-against-many products go to OpenBLAS (cblas_sgemm), split
 * into calls of at most INT_MAX rows; k and d must fit an int. */
#include <cblas.h>
#include <limits.h>
#include <math.h>
#include <stdatomic.h>
#include <string.h>

#include "vmath.h"

#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
#define VM_X86 1
#endif

typedef float vf16 __attribute__((vector_size(64)));
typedef float vf8 __attribute__((vector_size(32)));
typedef float vf4 __attribute__((vector_size(16)));
typedef int32_t vi16 __attribute__((vector_size(64)));
typedef int32_t vi8 __attribute__((vector_size(32)));
typedef int32_t vi4 __attribute__((vector_size(16)));

typedef struct vm_impl {
    float (*dot)(const float *a, const float *b, uint32_t d);
    float (*l2sq)(const float *a, const float *b, uint32_t d);
    void (*dots)(const float *q, const float *m, size_t n, uint32_t d, float *out);
    void (*dots_rows)(const float *q, const float *const *r, size_t n, uint32_t d, float *out);
    void (*l2sqs)(const float *q, const float *m, size_t n, uint32_t d, float *out);
    void (*norms_sq)(const float *m, size_t n, uint32_t d, float *out);
    int (*finite)(const float *v, uint32_t d);
} vm_impl;

/* Sum of the lanes of a vector @s into @out: halves added as vectors down
 * to four lanes, then those pairwise. (memcpy of a half compiles to a lane
 * extract.) */
#define VM_RED4(s, out) ((out) = ((s)[0] + (s)[2]) + ((s)[1] + (s)[3]))
#define VM_RED8(s, out)                                                                            \
    do {                                                                                           \
        vf4 lo4_, hi4_;                                                                            \
        memcpy(&lo4_, &(s), sizeof lo4_);                                                          \
        memcpy(&hi4_, (const char *)&(s) + sizeof lo4_, sizeof hi4_);                              \
        lo4_ += hi4_;                                                                              \
        VM_RED4(lo4_, out);                                                                        \
    } while (0)
#define VM_RED16(s, out)                                                                           \
    do {                                                                                           \
        vf8 lo8_, hi8_;                                                                            \
        memcpy(&lo8_, &(s), sizeof lo8_);                                                          \
        memcpy(&hi8_, (const char *)&(s) + sizeof lo8_, sizeof hi8_);                              \
        lo8_ += hi8_;                                                                              \
        VM_RED8(lo8_, out);                                                                        \
    } while (0)

/* The kernels for vectors VF of W floats (VI: W int32), named *_SFX and
 * compiled with ATTR; RED sums the lanes of a VF. Loads are memcpy (one unaligned vector load). The
 * main loop takes 4 W floats into 4 accumulators, then W at a time, then
 * the rest one by one; the accumulators are added as (s0 + s1) + (s2 +
 * s3), then the lanes pairwise, then the scalar rest. */
#define VM_KERNELS(SFX, VF, VI, W, RED, ATTR)                                                      \
    ATTR static inline float dot_##SFX(const float *a, const float *b, uint32_t d)                 \
    {                                                                                              \
        VF s0 = {0}, s1 = {0}, s2 = {0}, s3 = {0}, x, y;                                           \
        uint32_t i = 0;                                                                            \
        for (; i + 4 * (W) <= d; i += 4 * (W)) {                                                   \
            memcpy(&x, a + i, sizeof x);                                                           \
            memcpy(&y, b + i, sizeof y);                                                           \
            s0 += x * y;                                                                           \
            memcpy(&x, a + i + (W), sizeof x);                                                     \
            memcpy(&y, b + i + (W), sizeof y);                                                     \
            s1 += x * y;                                                                           \
            memcpy(&x, a + i + 2 * (W), sizeof x);                                                 \
            memcpy(&y, b + i + 2 * (W), sizeof y);                                                 \
            s2 += x * y;                                                                           \
            memcpy(&x, a + i + 3 * (W), sizeof x);                                                 \
            memcpy(&y, b + i + 3 * (W), sizeof y);                                                 \
            s3 += x * y;                                                                           \
        }                                                                                          \
        for (; i + (W) <= d; i += (W)) {                                                           \
            memcpy(&x, a + i, sizeof x);                                                           \
            memcpy(&y, b + i, sizeof y);                                                           \
            s1 += x * y;                                                                           \
        }                                                                                          \
        s0 = (s0 + s1) + (s2 + s3);                                                                \
        float r, t = 0, ea, eb;                                                                    \
        for (; i < d; i++) {                                                                       \
            memcpy(&ea, a + i, 4);                                                                 \
            memcpy(&eb, b + i, 4);                                                                 \
            t += ea * eb;                                                                          \
        }                                                                                          \
        RED(s0, r);                                                                                \
        return r + t;                                                                              \
    }                                                                                              \
    ATTR static inline float l2sq_##SFX(const float *a, const float *b, uint32_t d)                \
    {                                                                                              \
        VF s0 = {0}, s1 = {0}, s2 = {0}, s3 = {0}, x, y;                                           \
        uint32_t i = 0;                                                                            \
        for (; i + 4 * (W) <= d; i += 4 * (W)) {                                                   \
            memcpy(&x, a + i, sizeof x);                                                           \
            memcpy(&y, b + i, sizeof y);                                                           \
            x -= y;                                                                                \
            s0 += x * x;                                                                           \
            memcpy(&x, a + i + (W), sizeof x);                                                     \
            memcpy(&y, b + i + (W), sizeof y);                                                     \
            x -= y;                                                                                \
            s1 += x * x;                                                                           \
            memcpy(&x, a + i + 2 * (W), sizeof x);                                                 \
            memcpy(&y, b + i + 2 * (W), sizeof y);                                                 \
            x -= y;                                                                                \
            s2 += x * x;                                                                           \
            memcpy(&x, a + i + 3 * (W), sizeof x);                                                 \
            memcpy(&y, b + i + 3 * (W), sizeof y);                                                 \
            x -= y;                                                                                \
            s3 += x * x;                                                                           \
        }                                                                                          \
        for (; i + (W) <= d; i += (W)) {                                                           \
            memcpy(&x, a + i, sizeof x);                                                           \
            memcpy(&y, b + i, sizeof y);                                                           \
            x -= y;                                                                                \
            s1 += x * x;                                                                           \
        }                                                                                          \
        s0 = (s0 + s1) + (s2 + s3);                                                                \
        float r, t = 0, ea, eb;                                                                    \
        for (; i < d; i++) {                                                                       \
            memcpy(&ea, a + i, 4);                                                                 \
            memcpy(&eb, b + i, 4);                                                                 \
            float e = ea - eb;                                                                     \
            t += e * e;                                                                            \
        }                                                                                          \
        RED(s0, r);                                                                                \
        return r + t;                                                                              \
    }                                                                                              \
    ATTR static float dot1_##SFX(const float *a, const float *b, uint32_t d)                       \
    {                                                                                              \
        return dot_##SFX(a, b, d);                                                                 \
    }                                                                                              \
    ATTR static float l2sq1_##SFX(const float *a, const float *b, uint32_t d)                      \
    {                                                                                              \
        return l2sq_##SFX(a, b, d);                                                                \
    }                                                                                              \
    ATTR static void dots_##SFX(const float *q, const float *m, size_t n, uint32_t d, float *out)  \
    {                                                                                              \
        for (size_t i = 0; i < n; i++)                                                             \
            out[i] = dot_##SFX(q, m + i * d, d);                                                   \
    }                                                                                              \
    /* four rows at a time: each chunk of q is loaded once for four rows,     \
     * and four rows' loads are in flight together */                          \
    ATTR static void dots_rows_##SFX(const float *q, const float *const *r, size_t n, uint32_t d,  \
                                     float *out)                                                   \
    {                                                                                              \
        size_t i = 0;                                                                              \
        for (; i + 4 <= n; i += 4) {                                                               \
            VF s0 = {0}, s1 = {0}, s2 = {0}, s3 = {0}, x, y;                                       \
            uint32_t j = 0;                                                                        \
            for (; j + (W) <= d; j += (W)) {                                                       \
                memcpy(&x, q + j, sizeof x);                                                       \
                memcpy(&y, r[i] + j, sizeof y);                                                    \
                s0 += x * y;                                                                       \
                memcpy(&y, r[i + 1] + j, sizeof y);                                                \
                s1 += x * y;                                                                       \
                memcpy(&y, r[i + 2] + j, sizeof y);                                                \
                s2 += x * y;                                                                       \
                memcpy(&y, r[i + 3] + j, sizeof y);                                                \
                s3 += x * y;                                                                       \
            }                                                                                      \
            float t[4];                                                                            \
            RED(s0, t[0]);                                                                         \
            RED(s1, t[1]);                                                                         \
            RED(s2, t[2]);                                                                         \
            RED(s3, t[3]);                                                                         \
            for (; j < d; j++) {                                                                   \
                float qa, e;                                                                       \
                memcpy(&qa, q + j, 4);                                                             \
                for (int l = 0; l < 4; l++) {                                                      \
                    memcpy(&e, r[i + (size_t)l] + j, 4);                                           \
                    t[l] += qa * e;                                                                \
                }                                                                                  \
            }                                                                                      \
            memcpy(out + i, t, sizeof t);                                                          \
        }                                                                                          \
        for (; i < n; i++)                                                                         \
            out[i] = dot_##SFX(q, r[i], d);                                                        \
    }                                                                                              \
    ATTR static void l2sqs_##SFX(const float *q, const float *m, size_t n, uint32_t d,             \
                                 float *out)                                                       \
    {                                                                                              \
        for (size_t i = 0; i < n; i++)                                                             \
            out[i] = l2sq_##SFX(q, m + i * d, d);                                                  \
    }                                                                                              \
    ATTR static void norms_sq_##SFX(const float *m, size_t n, uint32_t d, float *out)              \
    {                                                                                              \
        for (size_t i = 0; i < n; i++)                                                             \
            out[i] = dot_##SFX(m + i * d, m + i * d, d);                                           \
    }                                                                                              \
    /* finite: the exponent bits are not all ones */                                               \
    ATTR static int finite_##SFX(const float *v, uint32_t d)                                       \
    {                                                                                              \
        const int32_t ex = 0x7f800000;                                                             \
        VI bad = {0}, x;                                                                           \
        uint32_t i = 0;                                                                            \
        for (; i + (W) <= d; i += (W)) {                                                           \
            memcpy(&x, v + i, sizeof x);                                                           \
            bad |= (x & ex) == ex;                                                                 \
        }                                                                                          \
        int32_t any = 0;                                                                           \
        for (int l = 0; l < (W); l++)                                                              \
            any |= bad[l];                                                                         \
        for (; i < d; i++) {                                                                       \
            int32_t u;                                                                             \
            memcpy(&u, v + i, sizeof u);                                                           \
            any |= (u & ex) == ex;                                                                 \
        }                                                                                          \
        return !any;                                                                               \
    }                                                                                              \
    static const vm_impl impl_##SFX = {dot1_##SFX,     l2sq1_##SFX,    dots_##SFX,                 \
                                       dots_rows_##SFX, l2sqs_##SFX,    norms_sq_##SFX,             \
                                       finite_##SFX};

VM_KERNELS(base, vf4, vi4, 4, VM_RED4, )
#ifdef VM_X86
VM_KERNELS(avx2, vf8, vi8, 8, VM_RED8, __attribute__((target("avx2"))))
VM_KERNELS(avx512, vf16, vi16, 16, VM_RED16, __attribute__((target("avx512f"))))
#endif

static const vm_impl *const impls[] = {
    [SOP_V_ISA_BASE] = &impl_base,
#ifdef VM_X86
    [SOP_V_ISA_AVX2] = &impl_avx2,
    [SOP_V_ISA_AVX512] = &impl_avx512,
#endif
};

static _Atomic int g_isa = -1; /* SOP_V_ISA_*; -1 until the first call */

static int has_isa(int isa)
{
#ifdef VM_X86
    __builtin_cpu_init();
    if (isa == SOP_V_ISA_AVX512)
        return __builtin_cpu_supports("avx512f");
    if (isa == SOP_V_ISA_AVX2)
        return __builtin_cpu_supports("avx2");
#endif
    return isa == SOP_V_ISA_BASE;
}

static int cpu_isa(void)
{
    int isa = SOP_V_ISA_AVX512;
    while (!has_isa(isa))
        isa--;
    return isa;
}

int sop__v_isa(void)
{
    int isa = atomic_load_explicit(&g_isa, memory_order_relaxed);
    if (isa < 0) {
        /* racing first calls store the same value */
        isa = cpu_isa();
        atomic_store_explicit(&g_isa, isa, memory_order_relaxed);
    }
    return isa;
}

static inline const vm_impl *impl(void) { return impls[sop__v_isa()]; }

#ifdef SOP_TESTING
/* Test hook (the tests declare it): use the kernels of @isa here and in
 * kmeans.c (a SOP_V_ISA_*; -1: back to the CPU's choice). Returns 0, or -1
 * when this CPU or build lacks them. Not thread-safe with other calls. */
int sop__v_force_isa(int isa);
int sop__v_force_isa(int isa)
{
    if (isa < 0)
        isa = cpu_isa();
    else if (isa > SOP_V_ISA_AVX512 || !has_isa(isa))
        return -1;
    atomic_store_explicit(&g_isa, isa, memory_order_relaxed);
    return 0;
}
#endif

float sop__v_dot(const float *a, const float *b, uint32_t d) { return impl()->dot(a, b, d); }

float sop__v_l2sq(const float *a, const float *b, uint32_t d) { return impl()->l2sq(a, b, d); }

void sop__v_dots(const float *q, const float *m, size_t n, uint32_t d, float *out)
{
    impl()->dots(q, m, n, d, out);
}

void sop__v_dots_rows(const float *q, const float *const *rows, size_t n, uint32_t d, float *out)
{
    impl()->dots_rows(q, rows, n, d, out);
}

void sop__v_l2sqs(const float *q, const float *m, size_t n, uint32_t d, float *out)
{
    impl()->l2sqs(q, m, n, d, out);
}

void sop__v_norms_sq(const float *m, size_t n, uint32_t d, float *out)
{
    impl()->norms_sq(m, n, d, out);
}

int sop__v_finite(const float *v, uint32_t d) { return impl()->finite(v, d); }

/* Squared norm in double: for vectors whose float sum of squares overflows
 * or underflows. */
static double norm_sq_double(const float *v, uint32_t d)
{
    double s = 0;
    for (uint32_t i = 0; i < d; i++)
        s += (double)v[i] * v[i];
    return s;
}

float sop__v_normalize(float *v, uint32_t d)
{
    float n2 = sop__v_dot(v, v, d);
    double len;
    if (n2 > 1e-30f && n2 < 1e30f)
        len = sqrt((double)n2);
    else /* the float sum may have overflowed or underflowed (or is 0) */
        len = sqrt(norm_sq_double(v, d));
    if (!(len > 0) || !isfinite(len))
        return len > 0 ? (float)len : 0.0f; /* zero, NaN or infinite: as is */
    double inv = 1.0 / len;
    for (uint32_t i = 0; i < d; i++)
        v[i] = (float)(v[i] * inv);
    return (float)len; /* +inf when the length is beyond float */
}

void sop__v_gemm_nt(const float *a, size_t n, const float *b, size_t k, uint32_t d, float *c)
{
    if (n == 0 || k == 0)
        return;
    if (d == 0) {
        memset(c, 0, n * k * sizeof *c);
        return;
    }
    while (n > 0) {
        size_t r = n < (size_t)INT_MAX ? n : (size_t)INT_MAX;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)r, (int)k, (int)d, 1.0f, a,
                    (int)d, b, (int)d, 0.0f, c, (int)k);
        a += r * d;
        c += r * k;
        n -= r;
    }
}
