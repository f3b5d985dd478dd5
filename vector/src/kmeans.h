/* kmeans.h - k-means clustering for IVF training: k-means++ seeding with a
 * per-point minimum-distance array (O(n k d)), Lloyd iterations whose
 * assignment step is a BLAS sgemm over blocks of points, empty clusters
 * re-seeded from the points farthest from their centroid. Deterministic:
 * the same data, k and seed give the same centroids. Squared Euclidean
 * distance throughout (callers normalise first for cosine). Allocations
 * go through sop__malloc (core/src/mem.h). */
#ifndef SOP_VEC_KMEANS_H
#define SOP_VEC_KMEANS_H
#include <stddef.h>
#include <stdint.h>

typedef struct sop__kmeans_opts {
    uint32_t k;        /* clusters, 1..n (k > n: -EINVAL) */
    uint32_t max_iter; /* Lloyd iterations, 0: 20 */
    uint64_t seed;
    /* stop when no centroid moved by more than tol (relative to the mean
     * squared norm of the data); 0: 1e-4. Precisely: when the largest
     * squared move of a centroid in a pass is <= tol * mean |x|^2.
     * Negative or NaN: -EINVAL. */
    float tol;
    /* 1: spherical k-means, for unit vectors under cosine: each centroid
     * is the direction of its cluster's mean, at unit length, so that the
     * nearest centroid is also the one of the largest inner product */
    int spherical;
} sop__kmeans_opts;

/* Clusters the n rows (d floats each) of @data into o->k centroids written
 * to @cent (k x d floats). Returns 0, -EINVAL (n == 0, d == 0, k == 0 or
 * k > n) or -ENOMEM. The data must be finite (sop__v_finite); seeding and
 * re-seeding rules, the sample used for seeding and the cost are described
 * at the top of kmeans.c. */
int sop__kmeans(const float *data, size_t n, uint32_t d, const sop__kmeans_opts *o, float *cent);

/* Nearest centroid of each of the n rows of @data among the k rows of
 * @cent: cid[i] and dist[i] = the Euclidean (not squared) distance to it.
 * @cnorm: the k squared norms of the centroids (sop__v_norms_sq). Uses
 * sgemm over blocks of rows; the distance itself is computed directly
 * (not from the expansion). Equal scores go to the lowest centroid. Returns 0,
 * -EINVAL (d == 0, k == 0 or a NULL array with n > 0) or -ENOMEM. */
int sop__kmeans_assign(const float *data, size_t n, uint32_t d, const float *cent,
                       const float *cnorm, uint32_t k, uint32_t *cid, float *dist);

#endif
