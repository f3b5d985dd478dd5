/*
 * arena.h - a bump allocator for memory that lives as long as its owner
 * (a transaction's operation log): no per-allocation header or free, one
 * release of everything at the end.
 */
#ifndef SOP_ARENA_H
#define SOP_ARENA_H
#include <stddef.h>

typedef struct sop__arena {
    struct sop__arena_blk *head; /* newest block first */
} sop__arena;

/* @n bytes (8-byte aligned), valid until sop__arena_free(); NULL when out
 * of memory. */
void *sop__arena_alloc(sop__arena *a, size_t n);
/* Releases every allocation; the arena is then empty and reusable. */
void sop__arena_free(sop__arena *a);

#endif
