/* arena.c - see arena.h. */
#include <stdint.h>

#include "arena.h"
#include "mem.h"

#define ARENA_BLOCK (64u << 10)

struct sop__arena_blk {
    struct sop__arena_blk *next;
    size_t used, cap;
    _Alignas(8) unsigned char data[];
};

void *sop__arena_alloc(sop__arena *a, size_t n)
{
    n = (n + 7) & ~(size_t)7;
    struct sop__arena_blk *b = a->head;
    if (!b || b->cap - b->used < n) {
        size_t cap = n > ARENA_BLOCK ? n : ARENA_BLOCK;
        if (cap > SIZE_MAX - sizeof *b)
            return NULL;
        b = sop__malloc(sizeof *b + cap);
        if (!b)
            return NULL;
        b->used = 0;
        b->cap = cap;
        if (a->head && n > ARENA_BLOCK) { /* a big one: keep filling the current block */
            b->next = a->head->next;
            a->head->next = b;
        } else {
            b->next = a->head;
            a->head = b;
        }
    }
    void *p = b->data + b->used;
    b->used += n;
    return p;
}

void sop__arena_free(sop__arena *a)
{
    for (struct sop__arena_blk *b = a->head, *nx; b; b = nx) {
        nx = b->next;
        sop__free(b);
    }
    a->head = NULL;
}
