/* embed_builtin.c - the built-in embedder: deterministic, offline.
 *
 * A text becomes words with the text index's tokenizer (UTF-8, folding,
 * English stop words, no stemming yet). A word that the synonym table
 * knows adds the clinical words it stands for. Each word is stemmed
 * (Porter) and contributes features, hashed (FNV-1a, 64 bits) into @dim
 * buckets with a sign taken from the hash (signed feature hashing keeps
 * collisions unbiased):
 *   the word itself,                 weight 1.0
 *   the bigram with the next word,   weight 0.5 (word order, "chest pain")
 *   its character trigrams with      total weight 0.5, shared equally (so
 *   boundary marks ("^pa" "ain$"),   misspellings and inflections the
 *                                    stemmer misses still overlap)
 * Synonym words get the word weight times 0.8 and no bigrams. Counts are
 * damped (sqrt) so a repeated word does not swamp the rest, and the
 * vector is L2-normalised: the dot product of two embeddings is their
 * cosine. */
#include <errno.h>
#include <math.h>
#include <string.h>

#include "embed.h"
#include "mem.h"
#include "porter.h"
#include "tokenizer.h"

#define W_WORD 1.0f
#define W_BIGRAM 0.5f
#define W_TRIGRAMS 0.5f
#define W_SYNONYM 0.8f
#define MAX_WORD SOP__TERM_MAX

static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
    const unsigned char *s = p;
    for (size_t i = 0; i < n; i++) {
        h ^= s[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

#define FNV0 0xcbf29ce484222325ull

static void add(float *v, uint32_t dim, uint64_t h, float w)
{
    h ^= h >> 29; /* the low bits pick the bucket, the top one the sign */
    h *= 0xbf58476d1ce4e5b9ull;
    h ^= h >> 32;
    v[h % dim] += (h >> 63) ? -w : w;
}

typedef struct ctx {
    float *v;
    uint32_t dim;
    char prev[MAX_WORD];
    size_t prevlen; /* 0: no previous word (start, or after a synonym) */
} ctx;

static void word(ctx *c, const char *w, size_t n, float weight, int bigram)
{
    char s[MAX_WORD + 1];
    size_t wl = n;
    memcpy(s, w, n);
    n = sop__porter(s, n);
    add(c->v, c->dim, fnv(fnv(FNV0, "w", 1), s, n), weight);
    if (bigram && c->prevlen) {
        uint64_t h = fnv(fnv(FNV0, "b", 1), c->prev, c->prevlen);
        add(c->v, c->dim, fnv(fnv(h, " ", 1), s, n), W_BIGRAM * weight);
    }
    if (bigram) {
        memcpy(c->prev, s, n);
        c->prevlen = n;
    }
    /* trigrams of ^word$ */
    char g[MAX_WORD + 2];
    g[0] = '^';
    memcpy(g + 1, w, wl);
    g[wl + 1] = '$';
    size_t m = wl + 2, k = m - 2;
    float tw = W_TRIGRAMS * weight / (float)k;
    for (size_t i = 0; i + 3 <= m; i++)
        add(c->v, c->dim, fnv(fnv(FNV0, "t", 1), g + i, 3), tw);
}

static int on_term(const char *t, size_t len, uint32_t pos, void *arg)
{
    ctx *c = arg;
    (void)pos;
    if (len > MAX_WORD)
        len = MAX_WORD;
    word(c, t, len, W_WORD, 1);
    const char *syn = eb_synonym(t, len);
    while (syn && *syn) { /* each word of the synonym */
        const char *e = strchr(syn, ' ');
        size_t n = e ? (size_t)(e - syn) : strlen(syn);
        word(c, syn, n, W_SYNONYM, 0);
        syn += n + (e != NULL);
    }
    return 0;
}

int eb_embed(const char *text, size_t len, uint32_t dim, float *out)
{
    memset(out, 0, dim * sizeof *out);
    ctx c = {out, dim, {0}, 0};
    sop__tok_opts o = {1, 1, 0}; /* fold, stop words; stemming in word() */
    sop__tokenize(text, len, &o, on_term, &c);
    double ss = 0;
    for (uint32_t i = 0; i < dim; i++) {
        float x = out[i];
        out[i] = x < 0 ? -sqrtf(-x) : sqrtf(x); /* damped counts */
        ss += (double)out[i] * out[i];
    }
    if (ss > 0) {
        float inv = (float)(1.0 / sqrt(ss));
        for (uint32_t i = 0; i < dim; i++)
            out[i] *= inv;
    }
    return 0;
}
