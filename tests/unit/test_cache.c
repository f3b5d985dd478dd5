/* test_cache.c - the L1 node cache (core/src/cache.c). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sop/sop.h"
#include "cache.h"
#include "mem.h"
#include "node.h"

static sop__node *mk(uint64_t id, uint64_t version, size_t mem)
{
    sop__node *n = NULL;
    assert_int_equal(sop__node_new(1, id, &n), 0);
    assert_non_null(n);
    n->version = version;
    n->mem = mem;
    return n;
}

static sop__cache_stat stats(sop__cache *c)
{
    sop__cache_stat st;
    sop__cache_stats(c, &st);
    return st;
}

static void test_hit_miss(void **state)
{
    (void)state;
    sop__cache *c = NULL;
    assert_int_equal(sop__cache_new(1 << 20, &c), 0);
    assert_null(sop__cache_get(c, 1, 1));

    sop__node *n = mk(1, 1, 1000);
    assert_ptr_equal(sop__cache_put(c, n), n);
    assert_ptr_equal(sop__cache_get(c, 1, 1), n);
    assert_int_equal(n->id, 1);
    sop__cache_pin(c, n);
    sop__cache_unpin(c, n);
    sop__cache_unpin(c, n);
    sop__cache_unpin(c, n);
    assert_null(sop__cache_get(c, 2, 1));

    sop__cache_stat st = stats(c);
    assert_int_equal(st.hits, 1);
    assert_int_equal(st.misses, 2);
    assert_int_equal(st.entries, 1);
    assert_int_equal(st.bytes, 1000);
    assert_int_equal(st.evictions, 0);

    /* still there after all unpins */
    n = sop__cache_get(c, 1, 1);
    assert_non_null(n);
    sop__cache_unpin(c, n);
    sop__cache_free(c);
}

static void test_versions(void **state)
{
    (void)state;
    sop__cache *c = NULL;
    assert_int_equal(sop__cache_new(64 << 20, &c), 0);
    sop__node *a = mk(5, 1, 100), *b = mk(5, 2, 100), *o = mk(6, 1, 100);
    assert_ptr_equal(sop__cache_put(c, a), a);
    assert_ptr_equal(sop__cache_put(c, b), b);
    assert_ptr_equal(sop__cache_put(c, o), o);
    sop__cache_unpin(c, a);
    sop__cache_unpin(c, b);
    sop__cache_unpin(c, o);

    sop__node *g = sop__cache_get(c, 5, 1);
    assert_ptr_equal(g, a);
    sop__cache_unpin(c, g);
    g = sop__cache_get(c, 5, 2);
    assert_ptr_equal(g, b);
    sop__cache_unpin(c, g);
    assert_null(sop__cache_get(c, 5, 3));
    assert_int_equal(stats(c).entries, 3);

    sop__cache_drop(c, 5);
    assert_null(sop__cache_get(c, 5, 1));
    assert_null(sop__cache_get(c, 5, 2));
    g = sop__cache_get(c, 6, 1);
    assert_ptr_equal(g, o);
    sop__cache_unpin(c, g);
    assert_int_equal(stats(c).entries, 1);
    assert_int_equal(stats(c).bytes, 100);
    sop__cache_drop(c, 12345); /* absent: no-op */
    sop__cache_free(c);
}

/* Many versions of one id plus colliding ids: exercises probe runs and
 * backward-shift deletion. */
static void test_many_versions(void **state)
{
    (void)state;
    sop__cache *c = NULL;
    assert_int_equal(sop__cache_new(1 << 20, &c), 0);
    for (uint64_t id = 0; id < 40; id++)
        for (uint64_t v = 1; v <= 10; v++)
            sop__cache_unpin(c, sop__cache_put(c, mk(id, v, 10)));
    assert_int_equal(stats(c).entries, 400);
    for (uint64_t id = 0; id < 40; id += 2)
        sop__cache_drop(c, id);
    assert_int_equal(stats(c).entries, 200);
    for (uint64_t id = 0; id < 40; id++)
        for (uint64_t v = 1; v <= 10; v++) {
            sop__node *n = sop__cache_get(c, id, v);
            if (id % 2 == 0) {
                assert_null(n);
            } else {
                assert_non_null(n);
                assert_int_equal(n->id, id);
                assert_int_equal(n->version, v);
                sop__cache_unpin(c, n);
            }
        }
    sop__cache_free(c);
}

static void check_bound(size_t max, size_t mem, unsigned nput)
{
    sop__cache *c = NULL;
    assert_int_equal(sop__cache_new(max, &c), 0);
    for (unsigned i = 0; i < nput; i++) {
        sop__node *n = sop__cache_put(c, mk(i, 1, mem));
        sop__cache_unpin(c, n);
        sop__cache_stat st = stats(c);
        assert_true(st.bytes <= max);
        assert_int_equal(st.bytes, st.entries * mem);
    }
    sop__cache_stat st = stats(c);
    assert_true(st.evictions > 0);
    assert_int_equal(st.entries + st.evictions, nput);
    sop__cache_free(c);
}

static void test_eviction_bound(void **state)
{
    (void)state;
    check_bound(64 * 1024, 1000, 2000);        /* one shard */
    check_bound(32u << 20, 64 * 1024, 4000);   /* 64 shards */
    check_bound(0, 100, 50);                   /* nothing stays */
    check_bound(1000, 5000, 50);               /* node larger than the bound */
}

/* CLOCK second chance: a referenced entry outlives an unreferenced one. */
static void test_clock_second_chance(void **state)
{
    (void)state;
    sop__cache *c = NULL;
    assert_int_equal(sop__cache_new(3000, &c), 0);
    sop__cache_unpin(c, sop__cache_put(c, mk(1, 1, 1000)));
    sop__cache_unpin(c, sop__cache_put(c, mk(2, 1, 1000)));
    sop__cache_unpin(c, sop__cache_put(c, mk(3, 1, 1000)));
    sop__node *a = sop__cache_get(c, 1, 1);
    assert_non_null(a);
    sop__cache_unpin(c, a);
    sop__cache_unpin(c, sop__cache_put(c, mk(4, 1, 1000)));
    assert_int_equal(stats(c).evictions, 1);
    a = sop__cache_get(c, 1, 1);
    assert_non_null(a);
    sop__cache_unpin(c, a);
    sop__cache_free(c);
}

static void test_pinned_survive(void **state)
{
    (void)state;
    sop__cache *c = NULL;
    assert_int_equal(sop__cache_new(4096, &c), 0);
    sop__node *a = sop__cache_put(c, mk(1000, 7, 1000));
    sop__node *b = sop__cache_put(c, mk(1001, 7, 1000));
    for (unsigned i = 0; i < 200; i++)
        sop__cache_unpin(c, sop__cache_put(c, mk(i, 1, 1000)));
    assert_true(stats(c).evictions >= 190);

    /* pinned entries were not evicted */
    sop__node *g = sop__cache_get(c, 1000, 7);
    assert_ptr_equal(g, a);
    sop__cache_unpin(c, g);
    g = sop__cache_get(c, 1001, 7);
    assert_ptr_equal(g, b);
    sop__cache_unpin(c, g);

    /* dropped while pinned: gone from the cache, still readable */
    sop__cache_drop(c, 1000);
    assert_null(sop__cache_get(c, 1000, 7));
    assert_int_equal(a->id, 1000);
    assert_int_equal(a->version, 7);
    sop__cache_pin(c, a);
    sop__cache_unpin(c, a);
    assert_int_equal(a->id, 1000);
    sop__cache_unpin(c, a); /* freed here (ASan: no leak, no use after) */

    /* a new image of the dropped id can be cached again */
    sop__node *a2 = sop__cache_put(c, mk(1000, 7, 1000));
    assert_ptr_not_equal(a2, NULL);
    sop__cache_unpin(c, a2);

    /* once unpinned, b goes the way of the others and the bound holds */
    sop__cache_unpin(c, b);
    for (unsigned i = 200; i < 210; i++)
        sop__cache_unpin(c, sop__cache_put(c, mk(i, 1, 1000)));
    assert_true(stats(c).bytes <= 4096);
    sop__cache_free(c);
}

/* Over the bound because of pins: the last unpin brings it back. */
static void test_unpin_restores_bound(void **state)
{
    (void)state;
    sop__cache *c = NULL;
    assert_int_equal(sop__cache_new(2000, &c), 0);
    sop__node *p[5];
    for (unsigned i = 0; i < 5; i++)
        p[i] = sop__cache_put(c, mk(i, 1, 1000));
    assert_int_equal(stats(c).bytes, 5000);
    for (unsigned i = 0; i < 5; i++)
        sop__cache_unpin(c, p[i]);
    assert_true(stats(c).bytes <= 2000);
    sop__cache_free(c);
}

static void test_dup_put(void **state)
{
    (void)state;
    sop__cache *c = NULL;
    assert_int_equal(sop__cache_new(1 << 20, &c), 0);
    sop__node *n1 = mk(7, 1, 100), *n2 = mk(7, 1, 100);
    assert_ptr_equal(sop__cache_put(c, n1), n1);
    assert_ptr_equal(sop__cache_put(c, n2), n1); /* n2 freed (ASan: no leak) */
    sop__cache_stat st = stats(c);
    assert_int_equal(st.entries, 1);
    assert_int_equal(st.bytes, 100);
    sop__cache_unpin(c, n1);
    sop__cache_unpin(c, n1);
    sop__node *g = sop__cache_get(c, 7, 1);
    assert_ptr_equal(g, n1);
    sop__cache_unpin(c, g);
    sop__cache_free(c);
}

/* ---- allocation failures ---- */

static long g_fail_after = -1; /* allocations left before failing; -1: never */

static void *fail_malloc(size_t n, void *ctx)
{
    (void)ctx;
    if (g_fail_after == 0)
        return NULL;
    if (g_fail_after > 0)
        g_fail_after--;
    return malloc(n);
}
static void *fail_realloc(void *p, size_t n, void *ctx)
{
    (void)ctx;
    if (g_fail_after == 0)
        return NULL;
    if (g_fail_after > 0)
        g_fail_after--;
    return realloc(p, n);
}
static void fail_free(void *p, void *ctx)
{
    (void)ctx;
    free(p);
}

static void use_failing_allocator(long after)
{
    static const sop_allocator a = {fail_malloc, fail_realloc, fail_free, NULL};
    g_fail_after = after;
    assert_int_equal(sop_set_allocator(&a), 0);
}

static void test_new_enomem(void **state)
{
    (void)state;
    size_t sizes[] = {1 << 20, 64u << 20};
    for (unsigned k = 0; k < 2; k++) {
        int ok = 0;
        for (long after = 0; after < 1000 && !ok; after++) {
            sop__cache *c = (sop__cache *)1;
            use_failing_allocator(after);
            int rc = sop__cache_new(sizes[k], &c);
            g_fail_after = -1;
            if (rc == 0) {
                ok = 1;
                assert_non_null(c);
                sop__cache_free(c);
            } else {
                assert_int_equal(rc, -ENOMEM);
                assert_null(c);
            }
        }
        assert_true(ok);
    }
    sop_set_allocator(NULL);
}

static void test_put_enomem(void **state)
{
    (void)state;
    sop__cache *c = NULL;
    assert_int_equal(sop__cache_new(1 << 20, &c), 0); /* 4 shards */
    sop__node *n[64];
    for (unsigned i = 0; i < 64; i++)
        n[i] = mk(i, 1, 10);
    use_failing_allocator(0);
    unsigned cached = 0, uncached = 0;
    for (unsigned i = 0; i < 64; i++) {
        sop__node *r = sop__cache_put(c, n[i]);
        assert_ptr_equal(r, n[i]); /* never fails */
        if (r->cached)
            cached++;
        else
            uncached++;
    }
    assert_true(cached > 0);
    assert_true(uncached > 0);
    assert_int_equal(stats(c).entries, cached);
    /* an uncached node is still pinnable, and freed at its last unpin */
    for (unsigned i = 0; i < 64; i++) {
        sop__cache_pin(c, n[i]);
        sop__cache_unpin(c, n[i]);
    }
    for (unsigned i = 0; i < 64; i++) {
        int was_cached = n[i]->cached != 0;
        uint64_t id = n[i]->id;
        sop__cache_unpin(c, n[i]);
        sop__node *g = sop__cache_get(c, id, 1);
        if (was_cached) {
            assert_non_null(g);
            sop__cache_unpin(c, g);
        } else {
            assert_null(g);
        }
    }
    g_fail_after = -1;
    sop_set_allocator(NULL);
    sop__cache_free(c);
}

/* ---- concurrency ---- */

#define ST_THREADS 4
#define ST_IDS 1024
#define ST_VERSIONS 4
#define ST_PINS 8

typedef struct stress_arg {
    sop__cache *c;
    unsigned seed;
    volatile int *stop;
    unsigned long ops, bad; /* cmocka asserts are not thread-safe: count here */
} stress_arg;

static uint64_t xs(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

static void *stress_main(void *p)
{
    stress_arg *a = p;
    uint64_t rs = 0x9e3779b97f4a7c15ull * (a->seed + 1);
    sop__node *pins[ST_PINS] = {0};
    while (!__atomic_load_n(a->stop, __ATOMIC_RELAXED)) {
        uint64_t r = xs(&rs);
        uint64_t id = (r >> 8) % ST_IDS, v = (r >> 20) % ST_VERSIONS;
        unsigned op = r % 100, pi = (r >> 32) % ST_PINS;
        sop__node *n = NULL;
        if (op < 60) {
            n = sop__cache_get(a->c, id, v);
        } else if (op < 90) {
            sop__node *m = NULL;
            if (sop__node_new(1, id, &m) != 0)
                continue;
            m->version = v;
            uint64_t key[2] = {id, v};
            if (sop__node_insert_leaf(m, 0, key, sizeof(key), "val", 3, SOP__V_INLINE) != 0) {
                sop__node_free(m);
                continue;
            }
            m->mem = 128 * 1024;
            n = sop__cache_put(a->c, m);
            if (!n)
                a->bad++;
        } else if (op < 95) {
            sop__cache_drop(a->c, id);
        } else if (pins[pi]) {
            sop__cache_pin(a->c, pins[pi]);
            sop__cache_unpin(a->c, pins[pi]);
        }
        if (n) {
            /* read the content another thread wrote before put */
            uint32_t klen = 0;
            const uint8_t *k = n->n == 1 ? sop__node_key(n, 0, &klen) : NULL;
            uint64_t kk[2] = {0, 0};
            if (k && klen == sizeof(kk))
                memcpy(kk, k, sizeof(kk));
            if (n->id != id || n->version != v || kk[0] != id || kk[1] != v)
                a->bad++;
            if (pins[pi])
                sop__cache_unpin(a->c, pins[pi]);
            pins[pi] = n; /* keep a few pinned for a while */
        }
        a->ops++;
    }
    for (unsigned i = 0; i < ST_PINS; i++)
        if (pins[i]) {
            if (pins[i]->id >= ST_IDS)
                a->bad++;
            sop__cache_unpin(a->c, pins[i]);
        }
    return NULL;
}

static void stress(size_t max)
{
    sop__cache *c = NULL;
    assert_int_equal(sop__cache_new(max, &c), 0);
    volatile int stop = 0;
    pthread_t th[ST_THREADS];
    stress_arg args[ST_THREADS];
    for (unsigned i = 0; i < ST_THREADS; i++) {
        args[i] = (stress_arg){c, i, &stop, 0, 0};
        assert_int_equal(pthread_create(&th[i], NULL, stress_main, &args[i]), 0);
    }
    struct timespec ts = {0, 350 * 1000 * 1000};
    nanosleep(&ts, NULL);
    __atomic_store_n(&stop, 1, __ATOMIC_RELAXED);
    unsigned long ops = 0;
    for (unsigned i = 0; i < ST_THREADS; i++) {
        pthread_join(th[i], NULL);
        ops += args[i].ops;
        assert_int_equal(args[i].bad, 0);
    }
    sop__cache_stat st = stats(c);
    print_message("stress max=%zu: %lu ops, %llu hits, %llu misses, %llu evictions\n", max, ops,
                  (unsigned long long)st.hits, (unsigned long long)st.misses,
                  (unsigned long long)st.evictions);
    assert_true(ops > 0);
    assert_true(st.hits + st.misses > 0);
    assert_int_equal(st.bytes, st.entries * 128 * 1024);
    assert_true(st.bytes <= max); /* nothing pinned any more */
    sop__cache_free(c);
}

static void test_stress(void **state)
{
    (void)state;
    stress(32u << 20); /* 64 shards of 512 KiB: 4 nodes each, heavy eviction */
    stress(1u << 20);  /* 4 shards */
    stress(1u << 30);  /* everything fits: mostly hits, drops of pinned nodes */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hit_miss),
        cmocka_unit_test(test_versions),
        cmocka_unit_test(test_many_versions),
        cmocka_unit_test(test_eviction_bound),
        cmocka_unit_test(test_clock_second_chance),
        cmocka_unit_test(test_pinned_survive),
        cmocka_unit_test(test_unpin_restores_bound),
        cmocka_unit_test(test_dup_put),
        cmocka_unit_test(test_new_enomem),
        cmocka_unit_test(test_put_enomem),
        cmocka_unit_test(test_stress),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
