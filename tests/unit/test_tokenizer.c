/*
 * test_tokenizer.c - the text layer's tokenizer: the Porter stemmer on the
 * examples of Porter's paper (and the two departures SQLite's porter
 * tokenizer shares), UTF-8 handling (invalid bytes are separators), case
 * folding of ASCII and Latin-1, stop words, numbers, long tokens, options
 * off.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "porter.h"
#include "tokenizer.h"

static void stem_is(const char *in, const char *out)
{
    char w[64];
    size_t n = strlen(in);
    memcpy(w, in, n);
    size_t m = sop__porter(w, n);
    if (m != strlen(out) || memcmp(w, out, m) != 0)
        fail_msg("stem(%s) = %.*s, expected %s", in, (int)m, w, out);
}

static void test_porter_paper(void **state)
{
    (void)state;
    /* step 1a, 1b, 1c */
    static const char *const pairs[][2] = {
        {"caresses", "caress"},   {"ponies", "poni"},         {"ties", "ti"},
        {"caress", "caress"},     {"cats", "cat"},            {"feed", "feed"},
        {"agreed", "agre"},       {"plastered", "plaster"},   {"bled", "bled"},
        {"motoring", "motor"},    {"sing", "sing"},           {"conflated", "conflat"},
        {"troubled", "troubl"},   {"sized", "size"},          {"hopping", "hop"},
        {"tanned", "tan"},        {"falling", "fall"},        {"hissing", "hiss"},
        {"fizzed", "fizz"},       {"failing", "fail"},        {"filing", "file"},
        {"happy", "happi"},       {"sky", "sky"},
        /* step 2 */
        {"relational", "relat"},  {"conditional", "condit"},  {"rational", "ration"},
        {"valenci", "valenc"},    {"hesitanci", "hesit"},     {"digitizer", "digit"},
        {"conformabli", "conform"}, {"radicalli", "radic"},   {"differentli", "differ"},
        {"vileli", "vile"},       {"analogousli", "analog"},  {"vietnamization", "vietnam"},
        {"predication", "predic"}, {"operator", "oper"},      {"feudalism", "feudal"},
        {"decisiveness", "decis"}, {"hopefulness", "hope"},   {"callousness", "callous"},
        {"formaliti", "formal"},  {"sensitiviti", "sensit"},  {"sensibiliti", "sensibl"},
        /* step 3 */
        {"triplicate", "triplic"}, {"formative", "form"},     {"formalize", "formal"},
        {"electriciti", "electr"}, {"electrical", "electr"},  {"hopeful", "hope"},
        {"goodness", "good"},
        /* step 4 */
        {"revival", "reviv"},     {"allowance", "allow"},     {"inference", "infer"},
        {"airliner", "airlin"},   {"gyroscopic", "gyroscop"}, {"adjustable", "adjust"},
        {"defensible", "defens"}, {"irritant", "irrit"},      {"replacement", "replac"},
        {"adjustment", "adjust"}, {"dependent", "depend"},    {"adoption", "adopt"},
        {"homologou", "homolog"}, {"communism", "commun"},    {"activate", "activ"},
        {"angulariti", "angular"}, {"homologous", "homolog"}, {"effective", "effect"},
        {"bowdlerize", "bowdler"},
        /* step 5 */
        {"probate", "probat"},    {"rate", "rate"},           {"cease", "ceas"},
        {"controll", "control"},  {"roll", "roll"},
        /* the reference implementation's departures (also SQLite's) */
        {"archaeology", "archaeolog"}, {"possibly", "possibl"},
        /* words of one or two letters are kept */
        {"is", "is"},             {"a", "a"},
        /* common words */
        {"generalizations", "gener"}, {"oscillators", "oscil"}, {"aerodynamic", "aerodynam"},
        {"boundary", "boundari"}, {"layers", "layer"},        {"flows", "flow"},
    };
    for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++)
        stem_is(pairs[i][0], pairs[i][1]);
    /* not a..z: unchanged */
    char w[] = "x86";
    assert_int_equal(sop__porter(w, 3), 3);
}

/* Every a..z word of the Cranfield documents, stemmed as SQLite FTS5's
 * porter tokenizer does (tests/data/porter_cranfield.tsv): the stems must
 * be the same for BM25 scores to compare with FTS5's. */
static void test_porter_matches_sqlite(void **state)
{
    (void)state;
    const char *dir = getenv("SOP_TEST_DATA");
    char path[4096];
    snprintf(path, sizeof path, "%s/porter_cranfield.tsv", dir ? dir : "tests/data");
    FILE *f = fopen(path, "r");
    if (!f)
        fail_msg("cannot open %s (set SOP_TEST_DATA)", path);
    char line[256];
    int n = 0;
    while (fgets(line, sizeof line, f)) {
        if (line[0] == '#')
            continue;
        char *tab = strchr(line, '\t');
        assert_non_null(tab);
        *tab = '\0';
        char *want = tab + 1;
        want[strcspn(want, "\n")] = '\0';
        stem_is(line, want);
        n++;
    }
    fclose(f);
    assert_true(n > 8000);
}

typedef struct got {
    char terms[64][80];
    uint32_t pos[64];
    int n;
} got;

static int collect(const char *t, size_t n, uint32_t pos, void *ctx)
{
    got *g = ctx;
    if (g->n == 64)
        return -1;
    snprintf(g->terms[g->n], sizeof g->terms[g->n], "%.*s", (int)n, t);
    g->pos[g->n++] = pos;
    return 0;
}

static void tok(const char *text, size_t len, int fold, int stop, int stem, got *g)
{
    memset(g, 0, sizeof *g);
    sop__tok_opts o = {fold, stop, stem};
    assert_int_equal(sop__tokenize(text, len, &o, collect, g), 0);
}

static void expect(const got *g, const char *joined)
{
    char buf[4096] = "";
    for (int i = 0; i < g->n; i++) {
        if (i)
            strcat(buf, " ");
        strcat(buf, g->terms[i]);
    }
    assert_string_equal(buf, joined);
}

static void test_tokenize(void **state)
{
    (void)state;
    got g;
    const char *t = "The Flows of Boundary-Layers, at Mach 2.5 (1950)!";
    tok(t, strlen(t), 1, 1, 1, &g);
    expect(&g, "flow boundari layer mach 2 5 1950");
    /* positions count the stop words */
    assert_int_equal(g.pos[0], 1);
    assert_int_equal(g.pos[3], 6); /* The Flows of Boundary Layers at Mach */
    /* options off */
    tok(t, strlen(t), 0, 0, 0, &g);
    expect(&g, "The Flows of Boundary Layers at Mach 2 5 1950");
    tok(t, strlen(t), 1, 0, 0, &g);
    expect(&g, "the flows of boundary layers at mach 2 5 1950");
    /* Latin-1 folded and stemmed: café, naïve, Straße, Æther, ÉTÉ */
    const char *l1 = "Caf\xc3\xa9s na\xc3\xafve Stra\xc3\x9f" "e \xc3\x86ther \xc3\x89T\xc3\x89";
    tok(l1, strlen(l1), 1, 1, 1, &g);
    expect(&g, "cafe naiv strass aether et");
    /* other scripts kept as they are; punctuation separates */
    const char *gr = "\xce\xb1\xce\xb2\xce\xb3\xe2\x80\x94\xce\x94\xce\xb4 x";
    tok(gr, strlen(gr), 1, 1, 1, &g);
    expect(&g, "\xce\xb1\xce\xb2\xce\xb3 \xce\x94\xce\xb4 x");
    /* invalid UTF-8: stray continuation, truncated, overlong, surrogate */
    const char bad[] = "ab\x80" "cd \xc3" " ef\xc0\xaf" "gh\xed\xa0\x80" "ij \xf8z";
    tok(bad, sizeof bad - 1, 1, 0, 0, &g);
    expect(&g, "ab cd ef gh ij z");
    /* a truncated sequence at the very end */
    tok("ok\xe2\x82", 5, 1, 0, 0, &g);
    expect(&g, "ok");
    /* long tokens are cut at SOP__TERM_MAX bytes */
    char lng[200];
    memset(lng, 'q', sizeof lng);
    tok(lng, sizeof lng, 1, 0, 0, &g);
    assert_int_equal(g.n, 1);
    assert_int_equal(strlen(g.terms[0]), SOP__TERM_MAX);
    /* ... at a code point boundary, and nothing after the cut comes back:
     * 63 bytes, a 2-byte letter that does not fit, then ASCII */
    memset(lng, 'q', 63);
    memcpy(lng + 63, "\xc3\x9f" "cd", 4);
    tok(lng, 67, 0, 0, 0, &g);
    assert_int_equal(g.n, 1);
    assert_int_equal(strlen(g.terms[0]), 63);
    assert_int_equal(strspn(g.terms[0], "q"), 63);
    /* the term is what gets stemmed: digits after the cut do not stop it */
    for (int i = 0; i < 60; i++)
        lng[i] = "ab"[i % 2];
    memcpy(lng + 60, "ings42", 6);
    tok(lng, 66, 1, 0, 1, &g);
    assert_int_equal(g.n, 1);
    assert_int_equal(strlen(g.terms[0]), 60); /* "...abings" stemmed to "...ab" */
    /* empty and separator-only text */
    tok("", 0, 1, 1, 1, &g);
    assert_int_equal(g.n, 0);
    tok(" .,;- ", 6, 1, 1, 1, &g);
    assert_int_equal(g.n, 0);
    /* NUL bytes are separators, not ends */
    tok("ab\0cd", 5, 1, 0, 0, &g);
    expect(&g, "ab cd");
    /* a callback's non-zero stops it */
    got full = {.n = 64};
    sop__tok_opts o = {1, 1, 1};
    assert_int_equal(sop__tokenize("a b c", 5, &o, collect, &full), -1);
}

static void test_stopwords(void **state)
{
    (void)state;
    assert_true(sop__is_stopword("the", 3));
    assert_true(sop__is_stopword("with", 4));
    assert_false(sop__is_stopword("there", 4)); /* a prefix of a stop word */
    assert_false(sop__is_stopword("flow", 4));
    assert_false(sop__is_stopword("The", 3)); /* folded words only */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_porter_paper),
        cmocka_unit_test(test_porter_matches_sqlite),
        cmocka_unit_test(test_tokenize),
        cmocka_unit_test(test_stopwords),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
