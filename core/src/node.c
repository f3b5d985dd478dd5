/*
 * node.c - B+tree nodes in memory (slot array + heap of key/value bytes)
 * and their binary image (see node.h for the format).
 *
 * Memory layout: slot[i] locates key i (and, in a leaf, value i) inside
 * heap[0, heap_len). Edits append new bytes to the heap and leave the old
 * ones dead (heap_dead counts them); the heap is compacted when more than
 * half of it is dead, or as a side effect of growing it. A decoded node
 * is one allocation (node, child ids, search prefixes, slots, and a copy
 * of the whole image as its heap: one memcpy, no per-key copies; headers
 * and child ids count as dead bytes; or, read through a segment map, the
 * image in the map itself) and is frozen: the cache shares it between
 * transactions, and a writer edits a clone.
 *
 * Failure atomicity: every edit that can fail (-ENOMEM) allocates first
 * and changes nothing when the allocation fails. Compaction triggered by a
 * removal is best-effort (skipped when memory is short) and never shrinks
 * the free room of the heap, so sop__node_reserve() holds across it.
 *
 * Any edit may move the heap: pointers from sop__node_key/val into a node
 * are invalid after the next edit of that node.
 */
#include <assert.h>
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "sop/sop.h"
#include "mem.h"
#include "node.h"

#define NODE_MIN_SLOTS 8u
#define NODE_MIN_HEAP 64u
#define NODE_COMPACT_MIN 64u /* don't bother compacting fewer dead bytes */

static inline uint16_t get16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static inline uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
           ((uint32_t)p[3] << 24);
}
static inline uint64_t get64(const uint8_t *p)
{
    return (uint64_t)get32(p) | ((uint64_t)get32(p + 4) << 32);
}
static inline void put16(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}
static inline void put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}
static inline void put64(uint8_t *p, uint64_t v)
{
    put32(p, (uint32_t)v);
    put32(p + 4, (uint32_t)(v >> 32));
}

static void update_mem(sop__node *n)
{
    n->mem = sizeof(*n) + (size_t)n->cap * sizeof(sop__slot) + n->heap_cap;
    if (!n->leaf)
        n->mem += ((size_t)n->cap + 1) * sizeof(uint64_t);
}

static inline uint32_t live_bytes(const sop__node *n) { return n->heap_len - n->heap_dead; }

int sop__node_new(int leaf, uint64_t id, sop__node **out)
{
    sop__node *n = sop__calloc(1, sizeof(*n));
    if (!n)
        return -ENOMEM;
    n->id = id;
    n->leaf = leaf ? 1 : 0;
    n->bytes = SOP__NODE_HDR;
    if (!leaf) {
        n->child = sop__calloc(1, sizeof(uint64_t));
        if (!n->child) {
            sop__free(n);
            return -ENOMEM;
        }
        n->bytes += 8;
    }
    update_mem(n);
    *out = n;
    return 0;
}

void sop__node_free(sop__node *n)
{
    if (!n)
        return;
    if (n->frozen) { /* one block */
        sop__free(n);
        return;
    }
    sop__free(n->slot);
    sop__free(n->child);
    sop__free(n->heap);
    sop__free(n);
}

/* Copies the live bytes of @n into @dst (of at least live_bytes(n)),
 * rewriting the slot offsets. Cannot fail. */
static uint32_t copy_live(sop__node *n, uint8_t *dst)
{
    uint32_t pos = 0;
    for (uint32_t i = 0; i < n->n; i++) {
        sop__slot *s = &n->slot[i];
        if (s->klen)
            memcpy(dst + pos, n->heap + s->koff, s->klen);
        s->koff = pos;
        pos += s->klen;
        if (n->leaf) {
            if (s->vlen)
                memcpy(dst + pos, n->heap + s->voff, s->vlen);
            s->voff = pos;
            pos += s->vlen;
        }
    }
    return pos;
}

int sop__node_clone(const sop__node *src, sop__node **out)
{
    sop__node *n = sop__calloc(1, sizeof(*n));
    if (!n)
        return -ENOMEM;
    n->id = src->id;
    n->version = src->version;
    n->leaf = src->leaf;
    n->n = src->n;
    n->bytes = src->bytes;
    uint32_t cap = src->n + (src->n >> 2);
    if (cap < src->n + NODE_MIN_SLOTS)
        cap = src->n + NODE_MIN_SLOTS;
    uint32_t live = live_bytes(src);
    uint32_t hslack = live >> 2;
    if (hslack < 128)
        hslack = 128;
    uint64_t hcap64 = (uint64_t)live + hslack;
    uint32_t hcap = hcap64 > UINT32_MAX ? live : (uint32_t)hcap64;
    n->slot = sop__malloc((size_t)cap * sizeof(sop__slot));
    n->heap = sop__malloc(hcap ? hcap : 1);
    if (!src->leaf)
        n->child = sop__malloc(((size_t)cap + 1) * sizeof(uint64_t));
    if (!n->slot || !n->heap || (!src->leaf && !n->child)) {
        sop__node_free(n);
        return -ENOMEM;
    }
    n->cap = cap;
    n->heap_cap = hcap;
    if (src->n)
        memcpy(n->slot, src->slot, (size_t)src->n * sizeof(sop__slot));
    if (!src->leaf)
        memcpy(n->child, src->child, ((size_t)src->n + 1) * sizeof(uint64_t));
    /* copy_live reads through n->heap: point it at the source first */
    uint8_t *dst = n->heap;
    n->heap = src->heap;
    n->heap_len = copy_live(n, dst);
    n->heap = dst;
    n->heap_dead = 0;
    update_mem(n);
    *out = n;
    return 0;
}

/* Makes the slot (and child) arrays hold at least @want entries. */
static int grow_slots(sop__node *n, uint64_t want)
{
    if (want <= n->cap)
        return 0;
    if (want > UINT32_MAX / 2)
        return -ENOMEM;
    uint64_t cap = n->cap ? (uint64_t)n->cap * 2 : NODE_MIN_SLOTS;
    while (cap < want)
        cap *= 2;
    sop__slot *s = sop__realloc(n->slot, (size_t)cap * sizeof(sop__slot));
    if (!s)
        return -ENOMEM;
    n->slot = s;
    if (!n->leaf) {
        uint64_t *c = sop__realloc(n->child, ((size_t)cap + 1) * sizeof(uint64_t));
        if (!c)
            return -ENOMEM; /* cap unchanged: the larger slot array is harmless */
        n->child = c;
    }
    n->cap = (uint32_t)cap;
    update_mem(n);
    return 0;
}

/* Ensures heap_cap - heap_len >= need (and a heap exists). When the heap
 * must be replaced, the live bytes are compacted into the new one and the
 * old heap is returned in *old for the caller to free once it no longer
 * reads from it (the bytes being inserted may live there). */
static int heap_room(sop__node *n, uint64_t need, uint8_t **old)
{
    *old = NULL;
    if (n->heap && (uint64_t)n->heap_cap - n->heap_len >= need)
        return 0;
    uint64_t live = live_bytes(n);
    uint64_t want = live + need;
    uint64_t cap = n->heap_cap;
    if (want > cap) {
        cap = (uint64_t)n->heap_cap * 2;
        if (cap < want)
            cap = want + (want >> 2);
    }
    if (cap < NODE_MIN_HEAP)
        cap = NODE_MIN_HEAP;
    if (want > UINT32_MAX)
        return -ENOMEM;
    if (cap > UINT32_MAX)
        cap = UINT32_MAX;
    uint8_t *h = sop__malloc((size_t)cap);
    if (!h)
        return -ENOMEM;
    n->heap_len = copy_live(n, h);
    n->heap_dead = 0;
    *old = n->heap;
    n->heap = h;
    n->heap_cap = (uint32_t)cap;
    update_mem(n);
    return 0;
}

int sop__node_reserve(sop__node *n, uint32_t slots, size_t heap)
{
    assert(!n->frozen);
    int rc = grow_slots(n, (uint64_t)n->n + slots);
    if (rc)
        return rc;
    uint8_t *old;
    rc = heap_room(n, heap, &old);
    sop__free(old);
    return rc;
}

int sop__node_compact(sop__node *n)
{
    assert(!n->frozen);
    if (!n->heap || n->heap_dead == 0 || (uint64_t)n->heap_dead * 2 <= n->heap_len)
        return 0;
    /* keep the free room (heap_cap - heap_len): reservations survive */
    uint32_t cap = n->heap_cap - n->heap_dead;
    if (cap < NODE_MIN_HEAP)
        cap = NODE_MIN_HEAP;
    uint8_t *h = sop__malloc(cap);
    if (!h)
        return -ENOMEM;
    n->heap_len = copy_live(n, h);
    n->heap_dead = 0;
    sop__free(n->heap);
    n->heap = h;
    n->heap_cap = cap;
    update_mem(n);
    return 0;
}

/* After edits that created dead bytes: best-effort compaction. */
static void maybe_compact(sop__node *n)
{
    if (n->n == 0) {
        n->heap_len = 0;
        n->heap_dead = 0;
        return;
    }
    if (n->heap_dead >= NODE_COMPACT_MIN && (uint64_t)n->heap_dead * 2 > n->heap_len)
        (void)sop__node_compact(n);
}

int sop__node_insert_leaf(sop__node *n, uint32_t at, const void *k, uint32_t klen, const void *v,
                          uint32_t vlen, uint8_t vflags)
{
    assert(!n->frozen);
    if (!n->leaf || at > n->n)
        return -EINVAL;
    uint64_t add = (uint64_t)SOP__LEAF_ITEM_OVERHEAD + klen + vlen;
    if (klen > SOP__KEY_MAX || (uint64_t)n->bytes + add > UINT32_MAX)
        return -EOVERFLOW;
    int rc = grow_slots(n, (uint64_t)n->n + 1);
    if (rc)
        return rc;
    uint8_t *old;
    rc = heap_room(n, (uint64_t)klen + vlen, &old);
    if (rc)
        return rc;
    uint32_t pos = n->heap_len;
    if (klen)
        memcpy(n->heap + pos, k, klen);
    if (vlen)
        memcpy(n->heap + pos + klen, v, vlen);
    sop__free(old);
    n->heap_len = pos + klen + vlen;
    if (at < n->n)
        memmove(&n->slot[at + 1], &n->slot[at], (size_t)(n->n - at) * sizeof(sop__slot));
    n->slot[at] = (sop__slot){.koff = pos, .klen = klen, .voff = pos + klen, .vlen = vlen,
                              .vflags = vflags};
    n->n++;
    n->bytes += (uint32_t)add;
    return 0;
}

int sop__node_insert_internal(sop__node *n, uint32_t at, const void *k, uint32_t klen,
                              uint64_t right)
{
    assert(!n->frozen);
    if (n->leaf || at > n->n)
        return -EINVAL;
    uint64_t add = (uint64_t)SOP__INT_ITEM_OVERHEAD + klen;
    if (klen > SOP__KEY_MAX || (uint64_t)n->bytes + add > UINT32_MAX)
        return -EOVERFLOW;
    int rc = grow_slots(n, (uint64_t)n->n + 1);
    if (rc)
        return rc;
    uint8_t *old;
    rc = heap_room(n, klen, &old);
    if (rc)
        return rc;
    uint32_t pos = n->heap_len;
    if (klen)
        memcpy(n->heap + pos, k, klen);
    sop__free(old);
    n->heap_len = pos + klen;
    if (at < n->n) {
        memmove(&n->slot[at + 1], &n->slot[at], (size_t)(n->n - at) * sizeof(sop__slot));
        memmove(&n->child[at + 2], &n->child[at + 1], (size_t)(n->n - at) * sizeof(uint64_t));
    }
    n->slot[at] = (sop__slot){.koff = pos, .klen = klen};
    n->child[at + 1] = right;
    n->n++;
    n->bytes += (uint32_t)add;
    return 0;
}

/* Replaces the key (val = 0) or the value (val = 1) of slot @at with
 * @p/@plen: in place when not longer, else appended. */
static int set_bytes(sop__node *n, uint32_t at, int val, const void *p, uint32_t plen)
{
    assert(!n->frozen);
    sop__slot *s = &n->slot[at];
    uint32_t cur = val ? s->vlen : s->klen;
    if (plen <= cur) {
        uint32_t off = val ? s->voff : s->koff;
        if (plen)
            memmove(n->heap + off, p, plen);
        n->heap_dead += cur - plen;
    } else {
        uint8_t *old;
        int rc = heap_room(n, plen, &old);
        if (rc)
            return rc;
        s = &n->slot[at];
        cur = val ? s->vlen : s->klen;
        uint32_t pos = n->heap_len;
        memcpy(n->heap + pos, p, plen);
        sop__free(old);
        n->heap_len = pos + plen;
        n->heap_dead += cur;
        if (val)
            s->voff = pos;
        else
            s->koff = pos;
    }
    if (val)
        s->vlen = plen;
    else
        s->klen = plen;
    n->bytes = n->bytes - cur + plen;
    return 0;
}

int sop__node_set_val(sop__node *n, uint32_t at, const void *v, uint32_t vlen, uint8_t vflags)
{
    if (!n->leaf || at >= n->n)
        return -EINVAL;
    if ((uint64_t)n->bytes - n->slot[at].vlen + vlen > UINT32_MAX)
        return -EOVERFLOW;
    int rc = set_bytes(n, at, 1, v, vlen);
    if (rc)
        return rc;
    n->slot[at].vflags = vflags;
    maybe_compact(n);
    return 0;
}

int sop__node_set_key(sop__node *n, uint32_t at, const void *k, uint32_t klen)
{
    if (at >= n->n)
        return -EINVAL;
    if (klen > SOP__KEY_MAX || (uint64_t)n->bytes - n->slot[at].klen + klen > UINT32_MAX)
        return -EOVERFLOW;
    int rc = set_bytes(n, at, 0, k, klen);
    if (rc)
        return rc;
    maybe_compact(n);
    return 0;
}

void sop__node_remove(sop__node *n, uint32_t at)
{
    assert(!n->frozen);
    if (at >= n->n)
        return;
    sop__slot *s = &n->slot[at];
    if (n->leaf) {
        n->heap_dead += s->klen + s->vlen;
        n->bytes -= SOP__LEAF_ITEM_OVERHEAD + s->klen + s->vlen;
    } else {
        n->heap_dead += s->klen;
        n->bytes -= SOP__INT_ITEM_OVERHEAD + s->klen;
        if (at + 1 < n->n)
            memmove(&n->child[at + 1], &n->child[at + 2],
                    (size_t)(n->n - at - 1) * sizeof(uint64_t));
    }
    if (at + 1 < n->n)
        memmove(&n->slot[at], &n->slot[at + 1], (size_t)(n->n - at - 1) * sizeof(sop__slot));
    n->n--;
    maybe_compact(n);
}

int sop__node_move_tail(sop__node *src, uint32_t from, sop__node *dst)
{
    assert(!src->frozen && !dst->frozen);
    if (src == dst || src->leaf != dst->leaf || from > src->n)
        return -EINVAL;
    uint32_t cnt = src->n - from;
    if (cnt == 0)
        return 0;
    uint64_t heap = 0, enc = 0;
    for (uint32_t i = from; i < src->n; i++) {
        heap += src->slot[i].klen + (src->leaf ? (uint64_t)src->slot[i].vlen : 0);
        enc += src->leaf ? SOP__LEAF_ITEM_OVERHEAD : SOP__INT_ITEM_OVERHEAD;
    }
    enc += heap;
    if ((uint64_t)dst->bytes + enc > UINT32_MAX)
        return -EOVERFLOW;
    int rc = grow_slots(dst, (uint64_t)dst->n + cnt);
    if (rc)
        return rc;
    uint8_t *old;
    rc = heap_room(dst, heap, &old);
    if (rc)
        return rc;
    sop__free(old); /* dst's old heap: we read from src */
    uint32_t pos = dst->heap_len;
    for (uint32_t i = 0; i < cnt; i++) {
        const sop__slot *s = &src->slot[from + i];
        sop__slot *d = &dst->slot[dst->n + i];
        *d = *s;
        if (s->klen)
            memcpy(dst->heap + pos, src->heap + s->koff, s->klen);
        d->koff = pos;
        pos += s->klen;
        if (src->leaf) {
            if (s->vlen)
                memcpy(dst->heap + pos, src->heap + s->voff, s->vlen);
            d->voff = pos;
            pos += s->vlen;
        }
    }
    if (!src->leaf)
        memcpy(&dst->child[dst->n + 1], &src->child[from + 1], (size_t)cnt * sizeof(uint64_t));
    dst->heap_len = pos;
    dst->n += cnt;
    dst->bytes += (uint32_t)enc;
    src->n = from;
    src->bytes -= (uint32_t)enc;
    src->heap_dead += (uint32_t)heap;
    maybe_compact(src);
    return 0;
}

/* ---------------------------------------------------------------- */
/* Image                                                            */
/* ---------------------------------------------------------------- */

/* The search accelerator of a decoded node: cpl = the length of the
 * prefix common to all keys (that of the first and the last, the keys
 * being sorted), pfx[i] = the 8 key bytes after it, big-endian, zero
 * padded. pfx is monotone in the bytewise key order, so a search compares
 * u64s in one small array and touches key bytes only where they tie. */
static void build_prefixes(sop__node *n)
{
    n->cpl = 0;
    if (n->n == 0)
        return;
    const uint8_t *a = n->heap + n->slot[0].koff, *b = n->heap + n->slot[n->n - 1].koff;
    uint32_t al = n->slot[0].klen, bl = n->slot[n->n - 1].klen, m = al < bl ? al : bl, c = 0;
    while (c < m && a[c] == b[c])
        c++;
    n->cpl = c;
    memcpy(n->cpre, a, c < sizeof n->cpre ? c : sizeof n->cpre);
    for (uint32_t i = 0; i < n->n; i++)
        n->pfx[i] = sop__key_prefix(n->heap + n->slot[i].koff, n->slot[i].klen, c);
}

int sop__node_decode(const void *buf, size_t len, uint64_t id, uint64_t version, uint32_t mapseg,
                     sop__node **out)
{
    const uint8_t *p = buf;
    if (!p || len < SOP__NODE_HDR || len > UINT32_MAX)
        return SOP_ECORRUPT;
    uint8_t type = p[0];
    if ((type != SOP__NODE_LEAF && type != SOP__NODE_INTERNAL) || p[1] != 0 || get32(p + 4) != 0)
        return SOP_ECORRUPT;
    int leaf = type == SOP__NODE_LEAF;
    uint32_t nk = get16(p + 2);

    /* pass 1: validate every length without allocating */
    size_t pos = SOP__NODE_HDR, live = 0;
    if (!leaf) {
        if (len - pos < 8)
            return SOP_ECORRUPT;
        pos += 8;
    }
    for (uint32_t i = 0; i < nk; i++) {
        if (leaf) {
            if (len - pos < SOP__LEAF_ITEM_OVERHEAD)
                return SOP_ECORRUPT;
            uint32_t klen = get16(p + pos), vlen = get32(p + pos + 3);
            uint8_t vflags = p[pos + 2];
            pos += SOP__LEAF_ITEM_OVERHEAD;
            if (klen > SOP__KEY_MAX || vflags > SOP__V_BLOB ||
                (vflags == SOP__V_BLOB && vlen != SOP__BLOBREF_SIZE))
                return SOP_ECORRUPT;
            if (len - pos < klen)
                return SOP_ECORRUPT;
            pos += klen;
            if (len - pos < vlen)
                return SOP_ECORRUPT;
            pos += vlen;
            live += (size_t)klen + vlen;
        } else {
            if (len - pos < 2)
                return SOP_ECORRUPT;
            uint32_t klen = get16(p + pos);
            pos += 2;
            if (klen > SOP__KEY_MAX || len - pos < klen)
                return SOP_ECORRUPT;
            pos += klen;
            if (len - pos < 8)
                return SOP_ECORRUPT;
            pos += 8;
            live += klen;
        }
    }
    if (pos != len)
        return SOP_ECORRUPT;

    /* pass 2: build, in one block: the node, its child ids, its search
     * prefixes, its slots and a copy of the image as its heap */
    size_t nchild = leaf ? 0 : (size_t)nk + 1;
    size_t mem = sizeof(sop__node) + (nchild + nk) * sizeof(uint64_t) + (size_t)nk * sizeof(sop__slot) +
                 (mapseg ? 0 : len);
    uint8_t *blk = sop__malloc(mem);
    if (!blk)
        return -ENOMEM;
    sop__node *n = (sop__node *)blk;
    memset(n, 0, sizeof(*n));
    uint8_t *q = blk + sizeof(*n);
    n->child = leaf ? NULL : (uint64_t *)q;
    q += nchild * sizeof(uint64_t);
    n->pfx = (uint64_t *)q;
    q += (size_t)nk * sizeof(uint64_t);
    n->slot = (sop__slot *)q;
    q += (size_t)nk * sizeof(sop__slot);
    n->heap = mapseg ? (uint8_t *)(uintptr_t)buf : memcpy(q, buf, len);
    n->mapseg = mapseg;
    n->frozen = 1;
    n->id = id;
    n->version = version;
    n->leaf = (uint8_t)leaf;
    n->n = nk;
    n->cap = nk;
    n->heap_len = n->heap_cap = (uint32_t)len;
    n->heap_dead = (uint32_t)(len - live);
    n->bytes = (uint32_t)len;
    n->mem = mem;
    pos = SOP__NODE_HDR;
    if (!leaf) {
        n->child[0] = get64(p + pos);
        pos += 8;
    }
    for (uint32_t i = 0; i < nk; i++) {
        sop__slot *s = &n->slot[i];
        if (leaf) {
            s->klen = get16(p + pos);
            s->vflags = p[pos + 2];
            s->vlen = get32(p + pos + 3);
            pos += SOP__LEAF_ITEM_OVERHEAD;
            s->koff = (uint32_t)pos;
            pos += s->klen;
            s->voff = (uint32_t)pos;
            pos += s->vlen;
        } else {
            s->klen = get16(p + pos);
            pos += 2;
            s->koff = (uint32_t)pos;
            pos += s->klen;
            s->voff = 0;
            s->vlen = 0;
            s->vflags = 0;
            n->child[i + 1] = get64(p + pos);
            pos += 8;
        }
    }
    build_prefixes(n);
    *out = n;
    return 0;
}

void sop__node_encode(const sop__node *n, void *buf)
{
    uint8_t *p = buf;
    p[0] = n->leaf ? SOP__NODE_LEAF : SOP__NODE_INTERNAL;
    p[1] = 0;
    put16(p + 2, n->n);
    put32(p + 4, 0);
    size_t pos = SOP__NODE_HDR;
    if (!n->leaf) {
        put64(p + pos, n->child[0]);
        pos += 8;
    }
    for (uint32_t i = 0; i < n->n; i++) {
        const sop__slot *s = &n->slot[i];
        put16(p + pos, s->klen);
        if (n->leaf) {
            p[pos + 2] = s->vflags;
            put32(p + pos + 3, s->vlen);
            pos += SOP__LEAF_ITEM_OVERHEAD;
            if (s->klen)
                memcpy(p + pos, n->heap + s->koff, s->klen);
            pos += s->klen;
            if (s->vlen)
                memcpy(p + pos, n->heap + s->voff, s->vlen);
            pos += s->vlen;
        } else {
            pos += 2;
            if (s->klen)
                memcpy(p + pos, n->heap + s->koff, s->klen);
            pos += s->klen;
            put64(p + pos, n->child[i + 1]);
            pos += 8;
        }
    }
}
