/*
 * btree.h - B+tree algorithms over logical node ids.
 *
 * The tree does not know where nodes live: it asks its sop__tree for them.
 * The transaction layer implements those callbacks (snapshot reads through
 * the cache, copy-on-write of nodes into the transaction, new logical ids).
 *
 * Properties:
 *  - keys are unique byte strings compared by tree->cmp;
 *  - the root's logical id never changes: when the root splits, its
 *    contents move to two new children ("split down"); when an internal
 *    root is left with one child, the child's contents move up;
 *  - a node splits when its image grows past node_bytes, and after a
 *    delete a node whose image falls under node_bytes / 4 borrows from or
 *    merges with a sibling (the root is exempt);
 *  - no parent pointers: cursors keep the path from the root.
 */
#ifndef SOP_BTREE_H
#define SOP_BTREE_H

#include "node.h"

#define SOP__BT_MAX_DEPTH 32

typedef struct sop__tree sop__tree;

struct sop__tree {
    void *ctx;
    /* The node @id as this transaction sees it. The pointer stays valid
     * until the transaction ends or get_mut() is called on it. Must not be
     * modified. */
    int (*get)(void *ctx, uint64_t id, sop__node **out);
    /* A private, writable node for @id (copying it into the transaction on
     * the first call). After this call, pointers returned earlier by get()
     * for @id must not be used. */
    int (*get_mut)(void *ctx, uint64_t id, sop__node **out);
    /* A new empty node with a fresh logical id, private and writable. */
    int (*alloc)(void *ctx, int leaf, sop__node **out);
    /* Node @id is no longer part of the tree. */
    int (*drop)(void *ctx, uint64_t id);
    /* Key order; NULL for bytewise (memcmp, then the shorter first),
     * which lets searches use the prefixes of decoded nodes. */
    int (*cmp)(void *cmp_ctx, const void *a, size_t alen, const void *b, size_t blen);
    void *cmp_ctx;
    uint64_t root;       /* logical id of the root */
    uint32_t node_bytes; /* split threshold for images */
};

/* A position in the tree: the path from the root to a leaf slot. */
typedef struct sop__bcur {
    sop__tree *t;
    int depth; /* number of valid path entries; 0: unpositioned */
    struct {
        sop__node *node;
        uint32_t idx; /* internal: index of the child taken; leaf: slot */
    } path[SOP__BT_MAX_DEPTH];
} sop__bcur;

/* Seek modes (same meaning as sop_find_mode). */
#define SOP__SEEK_EQ 0
#define SOP__SEEK_GE 1
#define SOP__SEEK_GT 2
#define SOP__SEEK_LE 3
#define SOP__SEEK_LT 4

/* Compares two keys in the tree's order. */
int sop__bt_cmp(const sop__tree *t, const void *a, size_t alen, const void *b, size_t blen);
/* Creates the (empty leaf) root of a new tree; returns its id. */
int sop__bt_create(sop__tree *t, uint64_t *root);

/* Positions @c on the item chosen by @mode. SOP_ENOTFOUND if none (the
 * cursor is then unpositioned). */
int sop__bt_seek(sop__bcur *c, const void *key, size_t klen, int mode);
int sop__bt_first(sop__bcur *c);
int sop__bt_last(sop__bcur *c);
/* Asks the CPU to load the item @ahead slots away in the same leaf (its
 * key, and its value up to 1 KiB), if there is one: scans hide the memory
 * latency of the next items behind the work on this one. */
void sop__bt_prefetch(const sop__bcur *c, int ahead);
/* SOP_ENOTFOUND past either end (cursor unpositioned). */
int sop__bt_next(sop__bcur *c);
int sop__bt_prev(sop__bcur *c);

/* The item at the cursor (the cursor must be positioned). Pointers are
 * valid until the next modification through this tree. */
void sop__bt_item(const sop__bcur *c, const uint8_t **key, uint32_t *klen, const uint8_t **val,
                  uint32_t *vlen, uint8_t *vflags);

/* What a replaced or removed item held (so the caller can free a blob). */
typedef struct sop__oldval {
    uint64_t state; /* sop__val_state() of the old value */
    uint8_t vflags;
    uint8_t ref[SOP__BLOBREF_SIZE]; /* the value when vflags == SOP__V_BLOB */
} sop__oldval;

/* Inserts a new item. SOP_EEXISTS if the key is present (nothing changes).
 * Leaves no cursor. */
int sop__bt_insert(sop__tree *t, const void *key, size_t klen, const void *val, size_t vlen,
                   uint8_t vflags);
/* Replaces the value of @key. SOP_ENOTFOUND if absent. */
int sop__bt_update(sop__tree *t, const void *key, size_t klen, const void *val, size_t vlen,
                   uint8_t vflags, sop__oldval *old);
/* Replaces the key bytes of @key with @nkey (which must compare equal). */
int sop__bt_update_key(sop__tree *t, const void *key, size_t klen, const void *nkey,
                       size_t nklen);
/* Removes @key, rebalancing. SOP_ENOTFOUND if absent. */
int sop__bt_delete(sop__tree *t, const void *key, size_t klen, sop__oldval *old);

/* Calls @fn for every node id of the tree (pre-order), e.g. to free a
 * dropped store or to check it. @level is 0 at the root. */
int sop__bt_walk(sop__tree *t, int (*fn)(void *arg, const sop__node *n, int level), void *arg);

#endif
