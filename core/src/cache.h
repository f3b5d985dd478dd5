/*
 * cache.h - the L1 cache: decoded nodes shared by the transactions of a
 * process, keyed by (logical id, version), bounded in bytes.
 *
 * Cached nodes are immutable. A node handed out by get/put is pinned: it is
 * not freed until unpinned, even when evicted or dropped meanwhile. The
 * cache never decides a version check: a hit only means "this is the image
 * of (id, version)", which never changes once written.
 *
 * Thread-safe: sharded, one mutex per shard. Eviction is CLOCK (second
 * chance) per shard, of unpinned entries, when the shard's bytes exceed its
 * share of the bound.
 */
#ifndef SOP_CACHE_H
#define SOP_CACHE_H
#include <stddef.h>
#include <stdint.h>

#include "node.h"

typedef struct sop__cache sop__cache;

typedef struct sop__cache_stat {
    uint64_t bytes, entries, hits, misses, evictions;
} sop__cache_stat;

/* max_bytes: bound on the sum of node->mem of cached entries (pinned
 * entries may push it over temporarily). */
int sop__cache_new(size_t max_bytes, sop__cache **out);
/* All nodes must be unpinned. */
void sop__cache_free(sop__cache *c);
/* The cached node (id, version), pinned, or NULL. */
sop__node *sop__cache_get(sop__cache *c, uint64_t id, uint64_t version);
/* Inserts @n (ownership passes to the cache) and returns it pinned; if
 * (n->id, n->version) is already cached, frees @n and returns the cached
 * one pinned. Never fails (on allocation failure the node is returned
 * pinned but uncached, and freed at its last unpin). */
sop__node *sop__cache_put(sop__cache *c, sop__node *n);
/* Adds a pin to a node returned by get/put. */
void sop__cache_pin(sop__cache *c, sop__node *n);
void sop__cache_unpin(sop__cache *c, sop__node *n);
/* Forgets every version of @id (pinned ones are freed at their last unpin). */
void sop__cache_drop(sop__cache *c, uint64_t id);
/* Forgets every node whose heap lies in the map of segment @seg (before the
 * map goes away; none of them may be pinned then). */
void sop__cache_drop_seg(sop__cache *c, uint32_t seg);
void sop__cache_stats(sop__cache *c, sop__cache_stat *st);

#endif
