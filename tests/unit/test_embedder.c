/*
 * test_embedder.c - the built-in embedder (sop_embedder_builtin()).
 *
 *  - deterministic (bit for bit, across calls and handles) and pinned: a
 *    fixed sentence has recorded components, so a change of the algorithm
 *    fails here and must come with a new embedder name (stores refuse
 *    vectors of another embedder, so old vectors would silently mismatch);
 *  - unit length; zeros for a text without a word; any UTF-8 or garbage;
 *  - colloquial words land near the clinical words (the synonym table),
 *    misspellings near the right word (character trigrams);
 *  - the synonym table is sorted (it is searched by bisection);
 *  - bad arguments.
 */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "embed.h"
#include "sop/agent.h"

#define D SOP_EMBEDDER_BUILTIN_DIM

static float vec[8][D];

static void embed(sop_embedder *e, const char *t, float *out)
{
    assert_int_equal(sop_embedder_embed(e, &t, 1, out), 0);
}

static double dot(const float *a, const float *b)
{
    double s = 0;
    for (unsigned i = 0; i < D; i++)
        s += (double)a[i] * b[i];
    return s;
}

static void test_embedder_deterministic(void **state)
{
    (void)state;
    sop_embedder *a, *b;
    assert_int_equal(sop_embedder_builtin(0, &a), 0);
    assert_int_equal(sop_embedder_builtin(D, &b), 0);
    assert_string_equal(sop_embedder_name(a), SOP_EMBEDDER_BUILTIN);
    assert_int_equal(sop_embedder_dim(a), D);
    const char *t[2] = {"My tummy hurts and I feel hot", "sharp chest pain when breathing"};
    assert_int_equal(sop_embedder_embed(a, t, 2, vec[0]), 0); /* rows 0 and 1 */
    embed(b, t[0], vec[2]);
    embed(a, t[1], vec[3]);
    assert_memory_equal(vec[0], vec[2], sizeof vec[0]);
    assert_memory_equal(vec[1], vec[3], sizeof vec[0]);
    assert_true(fabs(dot(vec[0], vec[0]) - 1) < 1e-5);
    /* pinned: the sum of |x| and two components of the first sentence */
    double l1 = 0;
    int nz = 0;
    for (unsigned i = 0; i < D; i++) {
        l1 += fabs(vec[0][i]);
        nz += vec[0][i] != 0;
    }
    unsigned first = 0;
    while (vec[0][first] == 0)
        first++;
    assert_int_equal(nz, 51);
    assert_true(fabs(l1 - 6.269195) < 1e-5);
    assert_int_equal(first, 19);
    assert_true(fabs(vec[0][19] - 0.177332) < 1e-6);
    sop_embedder_free(a);
    sop_embedder_free(b);
}

static void test_embedder_empty_and_garbage(void **state)
{
    (void)state;
    sop_embedder *e;
    assert_int_equal(sop_embedder_builtin(64, &e), 0);
    float v[64];
    const char *none[] = {"", "   ", "the and of", "!!! ???"};
    for (unsigned i = 0; i < 4; i++) {
        assert_int_equal(sop_embedder_embed(e, &none[i], 1, v), 0);
        for (unsigned j = 0; j < 64; j++)
            assert_true(v[j] == 0);
    }
    const char *bad = "\xff\xfe caf\xc3\xa9 \xe2\x82 na\xefve \xf0\x9f\x98\x80 fi\xe2\x80\x8bne";
    assert_int_equal(sop_embedder_embed(e, &bad, 1, v), 0);
    double s = 0;
    for (unsigned j = 0; j < 64; j++)
        s += (double)v[j] * v[j];
    assert_true(fabs(s - 1) < 1e-5);
    static char big[1 << 20];
    memset(big, 'a', sizeof big - 1); /* one 1 MiB word: cut at the term limit */
    const char *bp = big;
    assert_int_equal(sop_embedder_embed(e, &bp, 1, v), 0);
    sop_embedder_free(e);
}

static void test_embedder_neighbours(void **state)
{
    (void)state;
    sop_embedder *e;
    assert_int_equal(sop_embedder_builtin(0, &e), 0);
    embed(e, "my tummy hurts", vec[0]);
    embed(e, "abdominal pain", vec[1]);
    embed(e, "sore throat", vec[2]);
    embed(e, "I feel hot and shivery", vec[3]);
    embed(e, "fever and chills", vec[4]);
    embed(e, "skin rash", vec[5]);
    embed(e, "diarhea", vec[6]); /* misspelt */
    embed(e, "diarrhoea", vec[7]);
    assert_true(dot(vec[0], vec[1]) > dot(vec[0], vec[2]) + 0.1);
    assert_true(dot(vec[3], vec[4]) > dot(vec[3], vec[5]) + 0.1);
    assert_true(dot(vec[6], vec[7]) > dot(vec[6], vec[4]) + 0.1);
    sop_embedder_free(e);
}

static void test_embedder_synonyms_sorted(void **state)
{
    (void)state;
    size_t n = eb_synonym_count();
    assert_true(n > 50);
    const char *prev = NULL, *means;
    for (size_t i = 0; i < n; i++) {
        const char *w = eb_synonym_at(i, &means);
        if (prev)
            assert_true(strcmp(prev, w) < 0);
        assert_non_null(eb_synonym(w, strlen(w)));
        assert_true(means[0] && means[strlen(means) - 1] != ' ');
        prev = w;
    }
    assert_null(eb_synonym("tumm", 4));
    assert_null(eb_synonym("tummyx", 6));
    assert_string_equal(eb_synonym("tummy", 5), "abdomen abdominal");
}

static void test_embedder_bad_args(void **state)
{
    (void)state;
    sop_embedder *e = NULL;
    assert_int_equal(sop_embedder_builtin(15, &e), -EINVAL);
    assert_int_equal(sop_embedder_builtin(4097, &e), -EINVAL);
    assert_int_equal(sop_embedder_builtin(16, NULL), -EINVAL);
    assert_int_equal(sop_embedder_builtin(16, &e), 0);
    float v[16];
    const char *t[] = {"x", NULL};
    assert_int_equal(sop_embedder_embed(e, t, 2, v), -EINVAL);
    assert_int_equal(sop_embedder_embed(e, NULL, 1, v), -EINVAL);
    assert_int_equal(sop_embedder_embed(NULL, t, 1, v), -EINVAL);
    assert_int_equal(sop_embedder_embed(e, t, 0, NULL), 0);
    assert_int_equal(sop_embedder_llm(NULL, &e), -EINVAL);
    sop_embedder_free(e);
    sop_embedder_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_embedder_deterministic),
        cmocka_unit_test(test_embedder_empty_and_garbage),
        cmocka_unit_test(test_embedder_neighbours),
        cmocka_unit_test(test_embedder_synonyms_sorted),
        cmocka_unit_test(test_embedder_bad_args),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
