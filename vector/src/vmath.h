/* vmath.h - float kernels of the vector layer: dot products and squared
 * Euclidean distances (SIMD, the instance for the CPU chosen once, at the
 * first call; see vmath.c), and the BLAS calls (OpenBLAS) that compare many
 * vectors at once. Vectors are row-major float arrays of d components; no
 * function allocates. The single-vector kernels (dot, l2sq, finite) accept
 * vectors at any byte address: vectors read from B-tree nodes are not
 * 4-byte aligned. */
#ifndef SOP_VEC_VMATH_H
#define SOP_VEC_VMATH_H
#include <stddef.h>
#include <stdint.h>

/* The instruction set of the kernels here and in kmeans.c: the widest the
 * CPU has, chosen at the first call. */
enum { SOP_V_ISA_BASE = 0, SOP_V_ISA_AVX2 = 1, SOP_V_ISA_AVX512 = 2 };
/* SOP_V_ISA_*: the instruction set in use (thread-safe) */
int sop__v_isa(void);

float sop__v_dot(const float *a, const float *b, uint32_t d);
/* squared Euclidean distance */
float sop__v_l2sq(const float *a, const float *b, uint32_t d);
/* out[i] = q . m[i] for the n rows of m */
void sop__v_dots(const float *q, const float *m, size_t n, uint32_t d, float *out);
/* out[i] = q . rows[i] for n vectors anywhere in memory (any alignment),
 * four at a time (a query's block of candidates) */
void sop__v_dots_rows(const float *q, const float *const *rows, size_t n, uint32_t d, float *out);
/* out[i] = |q - m[i]|^2 for the n rows of m */
void sop__v_l2sqs(const float *q, const float *m, size_t n, uint32_t d, float *out);
/* out[i] = |m[i]|^2 */
void sop__v_norms_sq(const float *m, size_t n, uint32_t d, float *out);
/* scales @v to unit length; returns its former length (0: left as is) */
float sop__v_normalize(float *v, uint32_t d);
/* 1 when every component is finite */
int sop__v_finite(const float *v, uint32_t d);
/* c[i * k + j] = a[i] . b[j] for n rows of a and k rows of b: one
 * cblas_sgemm (a times b transposed); k and d at most INT_MAX */
void sop__v_gemm_nt(const float *a, size_t n, const float *b, size_t k, uint32_t d, float *c);

#endif
