/* mem.c - the allocator indirection. The only file that calls malloc. */
#include <stdlib.h>
#include <string.h>

#include "sop/sop.h"
#include "mem.h"

static void *std_malloc(size_t n, void *ctx) { (void)ctx; return malloc(n); }
static void *std_realloc(void *p, size_t n, void *ctx) { (void)ctx; return realloc(p, n); }
static void std_free(void *p, void *ctx) { (void)ctx; free(p); }

static sop_allocator g_alloc = {std_malloc, std_realloc, std_free, NULL};

int sop_set_allocator(const sop_allocator *a)
{
    if (!a) {
        g_alloc = (sop_allocator){std_malloc, std_realloc, std_free, NULL};
        return SOP_OK;
    }
    if (!a->malloc_fn || !a->realloc_fn || !a->free_fn)
        return -22; /* -EINVAL */
    g_alloc = *a;
    return SOP_OK;
}

void *sop__malloc(size_t n) { return g_alloc.malloc_fn(n ? n : 1, g_alloc.ctx); }

void *sop__calloc(size_t count, size_t size)
{
    if (size && count > (size_t)-1 / size)
        return NULL;
    void *p = sop__malloc(count * size);
    if (p)
        memset(p, 0, count * size);
    return p;
}

void *sop__realloc(void *p, size_t n) { return g_alloc.realloc_fn(p, n ? n : 1, g_alloc.ctx); }

void sop__free(void *p)
{
    if (p)
        g_alloc.free_fn(p, g_alloc.ctx);
}

void sop_free(void *p) { sop__free(p); }

void *sop__memdup(const void *p, size_t n)
{
    void *q = sop__malloc(n);
    if (q && n)
        memcpy(q, p, n);
    return q;
}

char *sop__strdup(const char *s) { return sop__memdup(s, strlen(s) + 1); }

void *sop__grow(void *arr, size_t *cap, size_t need, size_t size, size_t min)
{
    if (need <= *cap)
        return arr;
    size_t c = *cap ? *cap : min;
    while (c < need)
        c *= 2;
    if (size && c > (size_t)-1 / size)
        return NULL;
    void *a = sop__realloc(arr, c * size);
    if (a)
        *cap = c;
    return a;
}
