/*
 * node.h - B+tree nodes in memory and their binary image.
 *
 * A node is identified by a logical id; the registry maps the id to the
 * location of its current image. Nodes carry no parent pointers and no
 * sibling links: cursors keep the root-to-leaf path.
 *
 * Keys inside the tree are unique byte strings ("internal keys"). Stores
 * with duplicate keys append an 8-byte big-endian sequence to the user key
 * (see store.c), so the tree itself never holds two equal keys.
 *
 * Image format (the payload of a segment IMAGE record of kind NODE; all
 * integers little-endian):
 *
 *   off size  field
 *   0   1     type: 1 = leaf, 2 = internal
 *   1   1     reserved, 0
 *   2   2     n: number of keys
 *   4   4     reserved, 0
 *   8   ...   leaf:     n x { u16 klen, u8 vflags, u32 vlen, key[klen], val[vlen] }
 *             internal: u64 child[0], then n x { u16 klen, key[klen], u64 child }
 *
 * In an internal node, every key of child[i] is < key[i] <= every key of
 * child[i+1]. The record framing (length, CRC32C) is the segment's job.
 */
#ifndef SOP_NODE_H
#define SOP_NODE_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define SOP__NODE_LEAF 1
#define SOP__NODE_INTERNAL 2
#define SOP__NODE_HDR 8
#define SOP__LEAF_ITEM_OVERHEAD 7  /* u16 klen + u8 vflags + u32 vlen */
#define SOP__INT_ITEM_OVERHEAD 10  /* u16 klen + u64 child */
#define SOP__KEY_MAX 16384         /* hard format limit of a key (u16) */

/* vflags: how a leaf value is stored */
#define SOP__V_INLINE 0
#define SOP__V_BLOB 1 /* value bytes are a blob reference: u64 blob id, u64 size,
                        u32 CRC32C of the value, u32 zero */
#define SOP__BLOBREF_SIZE 24

/* A fingerprint of a stored value, for the merge (see txn.c): 1 << 32 |
 * CRC32C of the value bytes, or for a value in a blob of its size and
 * CRC (not of the blob id, which every write changes). 0 means absent. */
uint32_t sop__crc32c(const void *buf, size_t len, uint32_t crc);
static inline uint64_t sop__val_state(const uint8_t *v, uint32_t vlen, uint8_t vflags)
{
    if (vflags == SOP__V_BLOB && vlen == SOP__BLOBREF_SIZE)
        return (1ull << 32) | sop__crc32c(v + 8, 12, vflags);
    return (1ull << 32) | sop__crc32c(v, vlen, vflags);
}

typedef struct sop__slot {
    uint32_t koff, klen; /* key bytes: heap + koff */
    uint32_t voff, vlen; /* leaf value bytes: heap + voff */
    uint8_t vflags;
} sop__slot;

typedef struct sop__node {
    uint64_t id;      /* logical id */
    uint64_t version; /* version of the image it came from; 0 for a new node */
    uint8_t leaf;     /* 1 leaf, 0 internal */
    uint32_t n;       /* keys */
    uint32_t cap;     /* capacity of slot (and child: cap + 1) */
    sop__slot *slot;
    uint64_t *child; /* internal nodes: n + 1 children; NULL for leaves */
    uint8_t *heap;   /* key and value bytes */
    uint32_t heap_len, heap_cap, heap_dead;
    uint32_t bytes; /* size of the encoded image */
    size_t mem;     /* bytes of memory held (for the cache) */
    /* decoded nodes only (frozen: one block, immutable, edits go to a
     * clone): the search accelerator, see sop__key_prefix() */
    uint64_t *pfx;  /* pfx[i] = sop__key_prefix(key i, cpl); NULL if none */
    uint32_t cpl;   /* length of the prefix every key of the node shares */
    uint8_t cpre[16]; /* its first min(cpl, 16) bytes, beside the header */
    uint8_t frozen;
    uint32_t mapseg; /* frozen: its heap is the image inside the map of this
                      * segment (see segmap.c), not a copy; 0: a copy */
    /* owned by cache.c: pins while shared, and the cache's bookkeeping */
    uint32_t refs;
    uint8_t cached;
    void *centry;
} sop__node;

/* The 8 bytes of a key after its first @from, as a big-endian integer,
 * zero padded. For bytewise order, prefix(a) < prefix(b) implies a < b and
 * a < b implies prefix(a) <= prefix(b) (for keys sharing their first
 * @from bytes). */
static inline uint64_t sop__key_prefix(const uint8_t *k, uint32_t klen, uint32_t from)
{
    if (klen >= from + 8) {
        uint64_t v;
        memcpy(&v, k + from, 8);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
        v = __builtin_bswap64(v);
#endif
        return v;
    }
    uint64_t v = 0;
    for (uint32_t i = from; i < klen; i++)
        v |= (uint64_t)k[i] << (56 - 8 * (i - from));
    return v;
}

/* Creates an empty node. */
int sop__node_new(int leaf, uint64_t id, sop__node **out);
/* Deep copy (the copy's version is the source's). */
int sop__node_clone(const sop__node *src, sop__node **out);
void sop__node_free(sop__node *n);

/* Decodes an image into a frozen node (one allocation, with the search
 * accelerator; never edited: clone it). With @mapseg != 0 the image lies
 * in the map of that segment and becomes the node's heap without a copy:
 * the map must outlive the node (sop__cache_drop_seg()). Returns SOP_ECORRUPT for any inconsistency (lengths
 * that overrun, keys out of order are NOT checked here: see check.c). */
int sop__node_decode(const void *buf, size_t len, uint64_t id, uint64_t version, uint32_t mapseg,
                     sop__node **out);
/* Encodes into buf (of at least n->bytes bytes). */
void sop__node_encode(const sop__node *n, void *buf);

static inline const uint8_t *sop__node_key(const sop__node *n, uint32_t i, uint32_t *klen)
{
    *klen = n->slot[i].klen;
    return n->heap + n->slot[i].koff;
}
static inline const uint8_t *sop__node_val(const sop__node *n, uint32_t i, uint32_t *vlen)
{
    *vlen = n->slot[i].vlen;
    return n->heap + n->slot[i].voff;
}

/* In-place edits (the node must be private to the caller). Each keeps
 * n->bytes exact and returns 0 or -ENOMEM. */
int sop__node_insert_leaf(sop__node *n, uint32_t at, const void *k, uint32_t klen, const void *v,
                          uint32_t vlen, uint8_t vflags);
/* internal: inserts key at slot @at with child @right at child[at + 1] */
int sop__node_insert_internal(sop__node *n, uint32_t at, const void *k, uint32_t klen,
                              uint64_t right);
int sop__node_set_val(sop__node *n, uint32_t at, const void *v, uint32_t vlen, uint8_t vflags);
int sop__node_set_key(sop__node *n, uint32_t at, const void *k, uint32_t klen);
/* leaf: removes slot @at. internal: removes key @at and child[at + 1]. */
void sop__node_remove(sop__node *n, uint32_t at);
/* Moves slots [from, n) of @src (and their children) to the end of @dst.
 * For internal nodes see btree.c for how separators move. */
int sop__node_move_tail(sop__node *src, uint32_t from, sop__node *dst);
/* Compacts the heap when more than half of it is dead. */
int sop__node_compact(sop__node *n);
/* Makes room for @slots more slots and @heap more key/value bytes, so that
 * later edits needing no more than that cannot fail (removals and
 * compaction never take the room back). Returns 0 or -ENOMEM (then the
 * node is unchanged). */
int sop__node_reserve(sop__node *n, uint32_t slots, size_t heap);

#endif
