/*
 * cache.c - the L1 cache of decoded nodes (see cache.h).
 *
 * Layout: nshards (a power of two, at most 64) shards chosen by the high
 * bits of a hash of the logical id; each shard has one mutex and an
 * open-addressing table (linear probing, backward-shift deletion, no
 * tombstones) probed from the low bits of the same hash. Hashing on the id
 * alone keeps every version of an id in one shard and in one probe run, so
 * drop(id) walks a single cluster.
 *
 * Reference counting: node->refs counts the pins plus one reference held by
 * the cache while the node is in a table. Pins and unpins are atomic and take
 * no lock (unpin locks only when it must evict); whoever brings refs to zero
 * frees the node. An entry may be evicted only when refs == 1 under the
 * shard lock: nothing else can then add a pin (get needs the lock, pin needs
 * an existing pin). A node that put() could not insert has refs == pins and
 * is freed at its last unpin.
 *
 * node->cached: bit 0 = in a table, bit 1 = CLOCK reference bit (both
 * written under the shard lock only). node->centry links nodes on a local
 * to-free list, so that nodes are freed after the shard lock is released.
 */
#include <errno.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "cache.h"
#include "mem.h"
#include "node.h"

#define MAX_SHARDS 64
#define MIN_SHARD_BYTES ((size_t)256 * 1024) /* fewer shards for small caches */
#define INIT_SLOTS 16
#define CACHED_IN 1u
#define CACHED_REF 2u

typedef struct slot {
    uint64_t id, version;
    sop__node *node; /* NULL: empty */
} slot;

struct shard {
    pthread_mutex_t mu;
    slot *slots;
    size_t mask;  /* slots - 1 */
    size_t count; /* entries */
    size_t bytes; /* sum of node->mem; written under mu, read racily by unpin */
    size_t max;   /* this shard's share of the bound */
    size_t hand;  /* CLOCK hand */
    size_t backoff; /* calls to let pass after an eviction pass found too little */
    uint64_t hits, misses, evictions;
};

/* One shard per cache line pair, so that shard locks do not false-share. */
typedef union shard_pad {
    struct shard s;
    char pad[(sizeof(struct shard) + 63) & ~(size_t)63];
} shard_pad;

struct sop__cache {
    shard_pad *shards; /* 64-byte aligned inside raw */
    void *raw;
    unsigned nshards; /* power of two */
};

static inline uint64_t hash_id(uint64_t id)
{
    uint64_t z = id + 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static inline struct shard *shard_of(const sop__cache *c, uint64_t h)
{
    return &c->shards[(h >> 40) & (c->nshards - 1)].s;
}

static inline size_t bytes_load(const struct shard *s)
{
    return __atomic_load_n(&s->bytes, __ATOMIC_RELAXED);
}

static inline void bytes_store(struct shard *s, size_t v)
{
    __atomic_store_n(&s->bytes, v, __ATOMIC_RELAXED);
}

int sop__cache_new(size_t max_bytes, sop__cache **out)
{
    *out = NULL;
    unsigned ns = 1;
    while (ns < MAX_SHARDS && max_bytes / (ns * 2) >= MIN_SHARD_BYTES)
        ns *= 2;

    sop__cache *c = sop__calloc(1, sizeof(*c));
    if (!c)
        return -ENOMEM;
    c->raw = sop__malloc(ns * sizeof(shard_pad) + 63);
    if (!c->raw) {
        sop__free(c);
        return -ENOMEM;
    }
    c->shards = (shard_pad *)(((uintptr_t)c->raw + 63) & ~(uintptr_t)63);
    memset(c->shards, 0, ns * sizeof(shard_pad));
    c->nshards = ns;

    unsigned i;
    int rc = 0;
    for (i = 0; i < ns; i++) {
        struct shard *s = &c->shards[i].s;
        s->max = max_bytes / ns;
        s->mask = INIT_SLOTS - 1;
        s->slots = sop__calloc(INIT_SLOTS, sizeof(slot));
        if (!s->slots) {
            rc = -ENOMEM;
            break;
        }
        int e = pthread_mutex_init(&s->mu, NULL);
        if (e) {
            sop__free(s->slots);
            rc = -e;
            break;
        }
    }
    if (rc) {
        while (i-- > 0) {
            pthread_mutex_destroy(&c->shards[i].s.mu);
            sop__free(c->shards[i].s.slots);
        }
        sop__free(c->raw);
        sop__free(c);
        return rc;
    }
    *out = c;
    return 0;
}

void sop__cache_free(sop__cache *c)
{
    if (!c)
        return;
    for (unsigned i = 0; i < c->nshards; i++) {
        struct shard *s = &c->shards[i].s;
        for (size_t j = 0; j <= s->mask; j++) {
            sop__node *n = s->slots[j].node;
            if (n) {
                /* contract: unpinned (refs == 1). A node still pinned is
                 * left to its last unpin rather than freed under it. */
                n->cached = 0;
                if (__atomic_sub_fetch(&n->refs, 1, __ATOMIC_ACQ_REL) == 0)
                    sop__node_free(n);
            }
        }
        sop__free(s->slots);
        pthread_mutex_destroy(&s->mu);
    }
    sop__free(c->raw);
    sop__free(c);
}

/* Removes slot @i (linear probing backward shift: no tombstones). */
static void remove_at(struct shard *s, size_t i)
{
    size_t mask = s->mask, j = i;
    for (;;) {
        s->slots[i].node = NULL;
        for (;;) {
            j = (j + 1) & mask;
            if (!s->slots[j].node)
                return;
            size_t k = (size_t)hash_id(s->slots[j].id) & mask;
            /* the entry at j may fill the hole at i unless its home k lies
             * cyclically in (i, j] */
            if (i <= j ? (k <= i || k > j) : (k <= i && k > j))
                break;
        }
        s->slots[i] = s->slots[j];
        i = j;
    }
}

/* Takes entry @i out of the table and drops the cache's reference; the node
 * goes on *fl if that was the last one. */
static void unlink_at(struct shard *s, size_t i, sop__node **fl)
{
    sop__node *n = s->slots[i].node;
    remove_at(s, i);
    s->count--;
    bytes_store(s, s->bytes - n->mem);
    n->cached = 0;
    if (__atomic_sub_fetch(&n->refs, 1, __ATOMIC_ACQ_REL) == 0) {
        n->centry = *fl;
        *fl = n;
    }
}

/* CLOCK: evicts unpinned entries until the shard is within its bound, or
 * every entry has been looked at twice. When that does not bring the shard
 * within its bound (most entries are pinned), the next count / 4 calls skip
 * eviction, so that a large pinned set costs O(1) per call, not a scan. */
static void evict(struct shard *s, sop__node **fl, int after_unpin)
{
    size_t steps = 0, limit = 2 * (s->mask + 1);
    if (after_unpin) {
        /* one entry just became evictable: a short look, whatever the backoff */
        if (limit > 256)
            limit = 256;
    } else if (s->backoff) {
        s->backoff--;
        return;
    }
    while (s->bytes > s->max && s->count && steps++ < limit) {
        size_t i = s->hand & s->mask;
        sop__node *n = s->slots[i].node;
        if (!n) {
            s->hand = i + 1;
        } else if (n->cached & CACHED_REF) {
            n->cached &= (uint8_t)~CACHED_REF;
            s->hand = i + 1;
        } else if (__atomic_load_n(&n->refs, __ATOMIC_ACQUIRE) != 1) {
            s->hand = i + 1; /* pinned */
        } else {
            /* the hand stays: remove_at may shift an entry into slot i */
            unlink_at(s, i, fl);
            s->evictions++;
        }
    }
    if (s->bytes > s->max && !after_unpin)
        s->backoff = s->count / 4 + 1;
}

static void free_list(sop__node *fl)
{
    while (fl) {
        sop__node *next = fl->centry;
        sop__node_free(fl);
        fl = next;
    }
}

static void insert_slot(slot *slots, size_t mask, uint64_t id, uint64_t version, sop__node *n)
{
    size_t i = (size_t)hash_id(id) & mask;
    while (slots[i].node)
        i = (i + 1) & mask;
    slots[i] = (slot){id, version, n};
}

/* Doubles the table; 0 or -ENOMEM. */
static int grow(struct shard *s)
{
    size_t ncap = (s->mask + 1) * 2;
    slot *ns = sop__calloc(ncap, sizeof(slot));
    if (!ns)
        return -ENOMEM;
    for (size_t j = 0; j <= s->mask; j++)
        if (s->slots[j].node)
            insert_slot(ns, ncap - 1, s->slots[j].id, s->slots[j].version, s->slots[j].node);
    sop__free(s->slots);
    s->slots = ns;
    s->mask = ncap - 1;
    s->hand = 0;
    return 0;
}

sop__node *sop__cache_get(sop__cache *c, uint64_t id, uint64_t version)
{
    uint64_t h = hash_id(id);
    struct shard *s = shard_of(c, h);
    pthread_mutex_lock(&s->mu);
    size_t mask = s->mask, i = (size_t)h & mask;
    for (;;) {
        slot *e = &s->slots[i];
        sop__node *n = e->node;
        if (!n)
            break;
        if (e->id == id && e->version == version) {
            __atomic_add_fetch(&n->refs, 1, __ATOMIC_RELAXED);
            if (!(n->cached & CACHED_REF))
                n->cached |= CACHED_REF;
            s->hits++;
            pthread_mutex_unlock(&s->mu);
            return n;
        }
        i = (i + 1) & mask;
    }
    s->misses++;
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

sop__node *sop__cache_put(sop__cache *c, sop__node *n)
{
    uint64_t id = n->id, version = n->version, h = hash_id(id);
    struct shard *s = shard_of(c, h);
    sop__node *fl = NULL;

    pthread_mutex_lock(&s->mu);
    size_t mask = s->mask, i = (size_t)h & mask;
    for (;;) {
        slot *e = &s->slots[i];
        sop__node *o = e->node;
        if (!o)
            break;
        if (e->id == id && e->version == version) {
            __atomic_add_fetch(&o->refs, 1, __ATOMIC_RELAXED);
            if (!(o->cached & CACHED_REF))
                o->cached |= CACHED_REF;
            pthread_mutex_unlock(&s->mu);
            if (o != n)
                sop__node_free(n);
            return o;
        }
        i = (i + 1) & mask;
    }

    /* keep the load at most 1/2; if the table cannot grow, tolerate up to
     * 7/8 before giving up and handing the node out uncached */
    size_t cap = s->mask + 1;
    if ((s->count + 1) * 2 > cap && grow(s) != 0 && (s->count + 1) * 8 > cap * 7) {
        pthread_mutex_unlock(&s->mu);
        n->cached = 0;
        n->centry = NULL;
        n->refs = 1;
        return n;
    }
    n->cached = CACHED_IN;
    n->centry = NULL;
    n->refs = 2; /* the cache's reference + the caller's pin */
    insert_slot(s->slots, s->mask, id, version, n);
    s->count++;
    bytes_store(s, s->bytes + n->mem);
    if (s->bytes > s->max)
        evict(s, &fl, 0);
    pthread_mutex_unlock(&s->mu);
    free_list(fl);
    return n;
}

void sop__cache_pin(sop__cache *c, sop__node *n)
{
    (void)c;
    __atomic_add_fetch(&n->refs, 1, __ATOMIC_RELAXED);
}

void sop__cache_unpin(sop__cache *c, sop__node *n)
{
    /* the shard must be found before the pin is released: once it is, the
     * node may be evicted and freed by another thread */
    struct shard *s = shard_of(c, hash_id(n->id));
    uint32_t r = __atomic_sub_fetch(&n->refs, 1, __ATOMIC_ACQ_REL);
    if (r == 0) {
        sop__node_free(n); /* uncached (dropped, evicted while pinned, or never inserted) */
        return;
    }
    /* pinned entries may have pushed the shard over its bound: now that one
     * is unpinned, bring the shard back within it */
    if (r == 1 && bytes_load(s) > s->max) {
        sop__node *fl = NULL;
        pthread_mutex_lock(&s->mu);
        evict(s, &fl, 1);
        pthread_mutex_unlock(&s->mu);
        free_list(fl);
    }
}

void sop__cache_drop(sop__cache *c, uint64_t id)
{
    uint64_t h = hash_id(id);
    struct shard *s = shard_of(c, h);
    sop__node *fl = NULL;
    pthread_mutex_lock(&s->mu);
    size_t i = (size_t)h & s->mask;
    while (s->slots[i].node) {
        if (s->slots[i].id == id)
            unlink_at(s, i, &fl); /* slot i now holds a later entry, or is empty */
        else
            i = (i + 1) & s->mask;
    }
    pthread_mutex_unlock(&s->mu);
    free_list(fl);
}

void sop__cache_drop_seg(sop__cache *c, uint32_t seg)
{
    for (unsigned k = 0; k < c->nshards; k++) {
        struct shard *s = &c->shards[k].s;
        sop__node *fl = NULL;
        pthread_mutex_lock(&s->mu);
        for (size_t i = 0; i <= s->mask;) {
            sop__node *n = s->slots[i].node;
            if (n && n->mapseg == seg)
                unlink_at(s, i, &fl); /* slot i now holds a later entry, or is empty */
            else
                i++;
        }
        pthread_mutex_unlock(&s->mu);
        free_list(fl);
    }
}

void sop__cache_stats(sop__cache *c, sop__cache_stat *st)
{
    memset(st, 0, sizeof(*st));
    for (unsigned i = 0; i < c->nshards; i++) {
        struct shard *s = &c->shards[i].s;
        pthread_mutex_lock(&s->mu);
        st->bytes += s->bytes;
        st->entries += s->count;
        st->hits += s->hits;
        st->misses += s->misses;
        st->evictions += s->evictions;
        pthread_mutex_unlock(&s->mu);
    }
}
