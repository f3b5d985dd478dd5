/* u64map.h - open-addressing hash map from non-zero uint64 keys to
 * pointers (linear probing, backward-shift deletion). */
#ifndef SOP_U64MAP_H
#define SOP_U64MAP_H
#include <errno.h>
#include <stdint.h>

#include "mem.h"

typedef struct sop__u64map {
    uint64_t *keys; /* 0 = empty */
    void **vals;
    size_t cap, n; /* cap is a power of two */
} sop__u64map;

static inline size_t sop__u64hash(uint64_t k, size_t cap)
{
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdULL;
    k ^= k >> 33;
    return (size_t)k & (cap - 1);
}

static inline void *sop__u64map_get(const sop__u64map *m, uint64_t k)
{
    if (!m->n)
        return NULL;
    for (size_t i = sop__u64hash(k, m->cap);; i = (i + 1) & (m->cap - 1)) {
        if (m->keys[i] == k)
            return m->vals[i];
        if (!m->keys[i])
            return NULL;
    }
}

static inline int sop__u64map_put(sop__u64map *m, uint64_t k, void *v);

static inline int sop__u64map_grow(sop__u64map *m)
{
    size_t cap = m->cap ? m->cap * 2 : 64;
    uint64_t *keys = sop__calloc(cap, sizeof *keys);
    void **vals = sop__calloc(cap, sizeof *vals);
    if (!keys || !vals) {
        sop__free(keys);
        sop__free(vals);
        return -ENOMEM;
    }
    sop__u64map old = *m;
    m->keys = keys;
    m->vals = vals;
    m->cap = cap;
    m->n = 0;
    for (size_t i = 0; i < old.cap; i++)
        if (old.keys[i])
            sop__u64map_put(m, old.keys[i], old.vals[i]);
    sop__free(old.keys);
    sop__free(old.vals);
    return 0;
}

/* Inserts or replaces. */
static inline int sop__u64map_put(sop__u64map *m, uint64_t k, void *v)
{
    if ((m->n + 1) * 4 > m->cap * 3) {
        int rc = sop__u64map_grow(m);
        if (rc)
            return rc;
    }
    size_t i = sop__u64hash(k, m->cap);
    while (m->keys[i] && m->keys[i] != k)
        i = (i + 1) & (m->cap - 1);
    if (!m->keys[i])
        m->n++;
    m->keys[i] = k;
    m->vals[i] = v;
    return 0;
}

static inline void sop__u64map_del(sop__u64map *m, uint64_t k)
{
    if (!m->n)
        return;
    size_t i = sop__u64hash(k, m->cap);
    while (m->keys[i] != k) {
        if (!m->keys[i])
            return;
        i = (i + 1) & (m->cap - 1);
    }
    m->keys[i] = 0;
    m->n--;
    /* backward shift */
    size_t j = i;
    for (;;) {
        j = (j + 1) & (m->cap - 1);
        if (!m->keys[j])
            return;
        size_t h = sop__u64hash(m->keys[j], m->cap);
        if ((j > i && (h <= i || h > j)) || (j < i && (h <= i && h > j))) {
            m->keys[i] = m->keys[j];
            m->vals[i] = m->vals[j];
            m->keys[j] = 0;
            i = j;
        }
    }
}

static inline void sop__u64map_free(sop__u64map *m)
{
    sop__free(m->keys);
    sop__free(m->vals);
    m->keys = NULL;
    m->vals = NULL;
    m->cap = m->n = 0;
}

#define SOP__U64MAP_FOREACH(m, i) for (size_t i = 0; i < (m)->cap; i++) if ((m)->keys[i])

#endif
