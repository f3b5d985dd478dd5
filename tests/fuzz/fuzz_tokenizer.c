/*
 * fuzz_tokenizer.c - the text layer's tokenizer (search/src/tokenizer.c:
 * UTF-8 decoding, folding, stop words, the Porter stemmer).
 *
 * Feeds: byte 0 = options (bit 0 fold, bit 1 stop words, bit 2 stem), the
 * rest as the text; also the Porter stemmer alone on the text when it is a
 * lowercase ASCII word.
 * Checks: every term is 1..SOP__TERM_MAX bytes of valid UTF-8, positions
 * increase, folded terms hold no ASCII capital, and without folding and
 * stemming each term is a piece of the text; a stem is no longer than its
 * word and
 * stays a..z.
 */
#include <stdio.h>
#include <string.h>

#include "fuzz_util.h"
#include "porter.h"
#include "tokenizer.h"

typedef struct seen {
    const uint8_t *text;
    size_t len;
    sop__tok_opts o;
    int64_t last_pos;
} seen;

static int utf8_ok(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n;) {
        uint8_t c = p[i];
        size_t l = c < 0x80 ? 1 : (c & 0xe0) == 0xc0 ? 2 : (c & 0xf0) == 0xe0 ? 3 : (c & 0xf8) == 0xf0 ? 4 : 0;
        if (!l || l > n - i || (l == 2 && c < 0xc2))
            return 0;
        for (size_t k = 1; k < l; k++)
            if ((p[i + k] & 0xc0) != 0x80)
                return 0;
        i += l;
    }
    return 1;
}

static int on_term(const char *term, size_t len, uint32_t pos, void *ctx)
{
    seen *s = ctx;
    const uint8_t *t = (const uint8_t *)term;
    if (len == 0 || len > SOP__TERM_MAX)
        fz_fail("a term of %zu bytes", len);
    if ((int64_t)pos <= s->last_pos)
        fz_fail("position %u after %lld", pos, (long long)s->last_pos);
    s->last_pos = pos;
    if (!utf8_ok(t, len))
        fz_fail("a term that is not UTF-8: %.*s", (int)len, term);
    for (size_t i = 0; s->o.fold && i < len; i++)
        if (t[i] >= 'A' && t[i] <= 'Z')
            fz_fail("a capital in folded term %.*s", (int)len, term);
    if (!s->o.fold && !s->o.stem && !memmem(s->text, s->len, term, len))
        fz_fail("term %.*s is not in the text", (int)len, term);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_in in = {data, size};
    uint8_t b = fz_u8(&in);
    seen s = {.text = in.p, .len = in.n, .last_pos = -1};
    s.o.fold = b & 1;
    s.o.stopwords = (b >> 1) & 1;
    s.o.stem = (b >> 2) & 1;
    int rc = sop__tokenize((const char *)in.p, in.n, &s.o, on_term, &s);
    if (rc)
        fz_fail("sop__tokenize returned %d", rc);

    if (in.n <= SOP__TERM_MAX) {
        char w[SOP__TERM_MAX];
        size_t i = 0;
        while (i < in.n && in.p[i] >= 'a' && in.p[i] <= 'z')
            i++;
        if (i == in.n) {
            memcpy(w, in.p, in.n);
            size_t m = sop__porter(w, in.n);
            if (m > in.n || (in.n <= 2 && (m != in.n || memcmp(w, in.p, m))))
                fz_fail("stem of %.*s: %.*s", (int)in.n, (const char *)in.p, (int)m, w);
            for (size_t k = 0; k < m; k++)
                if (w[k] < 'a' || w[k] > 'z')
                    fz_fail("stem of %.*s: %.*s", (int)in.n, (const char *)in.p, (int)m, w);
        }
    }
    return 0;
}
