/* tokenizer.h - text to index terms: UTF-8 decoding, case folding (ASCII
 * and Latin-1, diacritics of Latin-1 letters removed), English stop words,
 * the Porter stemmer. The rules are in tokenizer.c's header comment. */
#ifndef SOP_SEARCH_TOKENIZER_H
#define SOP_SEARCH_TOKENIZER_H
#include <stddef.h>
#include <stdint.h>

/* Longest term, in bytes: longer tokens are cut to this length (at a
 * code point boundary). */
#define SOP__TERM_MAX 64

typedef struct sop__tok_opts {
    int fold;      /* case folding and diacritics removal */
    int stopwords; /* drop English stop words (after folding) */
    int stem;      /* Porter stemming of a..z terms */
} sop__tok_opts;

/* Called per term: @term (not NUL-terminated) and its position, the index
 * of the token in the text (stop words count). A non-zero return stops
 * the tokenizer and is returned. */
typedef int (*sop__tok_fn)(const char *term, size_t len, uint32_t pos, void *ctx);

/* Splits @text into terms. Returns 0 or what @fn returned. */
int sop__tokenize(const char *text, size_t len, const sop__tok_opts *o, sop__tok_fn fn, void *ctx);

/* 1 when the folded term @t is one of the English stop words. */
int sop__is_stopword(const char *t, size_t len);

#endif
