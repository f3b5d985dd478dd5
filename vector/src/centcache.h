/* centcache.h - the process's cache of centroid sets. The centroids of an
 * index version never change once written, and each set carries a unique
 * id (vl_cfg.uid_*), so every transaction of the process can share one
 * decoded copy instead of reading nlist x dims floats per transaction. */
#ifndef SOP_VEC_CENTCACHE_H
#define SOP_VEC_CENTCACHE_H
#include <stdint.h>

typedef struct vc_cents {
    uint64_t uid;
    uint32_t n, dims;
    float *c;     /* n x dims */
    float *norms; /* n squared norms */
    int refs;     /* under the cache lock */
    struct vc_cents *next;
} vc_cents;

/* A new set of @n x @dims zeroed floats, not in the cache (refs 1). NULL:
 * out of memory. */
vc_cents *vc_new(uint64_t uid, uint32_t n, uint32_t dims);
/* The cached set @uid with that shape, with a reference taken, or NULL. */
vc_cents *vc_get(uint64_t uid, uint32_t n, uint32_t dims);
/* Puts @c (complete, its norms computed) into the cache and returns the
 * cached set with a reference: @c itself, or the one another thread put
 * first (then @c is freed). */
vc_cents *vc_put(vc_cents *c);
/* Frees a set made by vc_new() that was never put. */
void vc_discard(vc_cents *c);
/* Drops a reference to a cached set (NULL is ignored). */
void vc_release(vc_cents *c);
/* Frees every cached set no handle uses (tests that count allocations). */
void vc_clear(void);
/* A process-unique, unpredictable-enough 64-bit id for a new set. */
uint64_t vc_new_uid(void);

#endif
