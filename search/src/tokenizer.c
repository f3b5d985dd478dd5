/* tokenizer.c - text to index terms.
 *
 * Rules:
 *  - The text is UTF-8. A byte that does not start a valid sequence
 *    (a stray continuation byte, a truncated or overlong sequence, a
 *    surrogate, a value above U+10FFFF) is a separator, as is any code
 *    point that is not a token character: invalid UTF-8 never fails.
 *  - Token characters: ASCII letters and digits; the Latin-1 letters
 *    U+00C0..U+00FF except U+00D7 and U+00F7; every code point from U+0100
 *    on except general punctuation (U+2000..U+206F), CJK symbols and
 *    punctuation (U+3000..U+303F), the BOM (U+FEFF) and the fullwidth
 *    ASCII punctuation (U+FF00..U+FF0F, U+FF1A..U+FF20, U+FF3B..U+FF40,
 *    U+FF5B..U+FF65).
 *  - Folding (on by default): ASCII and Latin-1 letters to lower case,
 *    Latin-1 letters without their diacritics (é -> e, ß -> ss, æ -> ae,
 *    þ -> th); other code points are kept as they are.
 *  - A token longer than SOP__TERM_MAX bytes is cut there.
 *  - Stop words (on by default) are dropped after folding: the 33 English
 *    words of Lucene's default set.
 *  - Stemming (on by default): Porter, for terms made of a..z only;
 *    numbers and other scripts are kept as they are.
 */
#include "tokenizer.h"

#include <string.h>

#include "porter.h"

/* Decodes one code point at p[0..n); *len is its length. -1: invalid (the
 * caller skips one byte). */
static int32_t decode(const unsigned char *p, size_t n, size_t *len)
{
    unsigned char c = p[0];
    if (c < 0x80) {
        *len = 1;
        return c;
    }
    size_t l;
    int32_t cp, min;
    if ((c & 0xe0) == 0xc0) {
        l = 2;
        cp = c & 0x1f;
        min = 0x80;
    } else if ((c & 0xf0) == 0xe0) {
        l = 3;
        cp = c & 0x0f;
        min = 0x800;
    } else if ((c & 0xf8) == 0xf0) {
        l = 4;
        cp = c & 0x07;
        min = 0x10000;
    } else {
        return -1;
    }
    if (l > n)
        return -1;
    for (size_t i = 1; i < l; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return -1;
        cp = (cp << 6) | (p[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return -1;
    *len = l;
    return cp;
}

static int is_token_char(int32_t cp)
{
    if (cp < 0x80)
        return (cp >= '0' && cp <= '9') || (cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z');
    if (cp < 0x100)
        return cp >= 0xc0 && cp != 0xd7 && cp != 0xf7;
    if ((cp >= 0x2000 && cp <= 0x206f) || (cp >= 0x3000 && cp <= 0x303f) || cp == 0xfeff)
        return 0;
    if ((cp >= 0xff00 && cp <= 0xff0f) || (cp >= 0xff1a && cp <= 0xff20) ||
        (cp >= 0xff3b && cp <= 0xff40) || (cp >= 0xff5b && cp <= 0xff65))
        return 0;
    return 1;
}

/* Folded ASCII of the Latin-1 letters U+00C0..U+00FF ("" for the two
 * signs, which are not token characters). */
static const char *const latin1[64] = {
    "a", "a", "a", "a", "a", "a", "ae", "c", "e", "e", "e", "e", "i", "i", "i", "i",
    "d", "n", "o", "o", "o", "o", "o", "",  "o", "u", "u", "u", "u", "y", "th", "ss",
    "a", "a", "a", "a", "a", "a", "ae", "c", "e", "e", "e", "e", "i", "i", "i", "i",
    "d", "n", "o", "o", "o", "o", "o", "",  "o", "u", "u", "u", "u", "y", "th", "y",
};

#define SW(w) {w, sizeof(w) - 1}
static const struct {
    const char *w;
    size_t len;
} stopwords[] = {
    SW("a"),    SW("an"),    SW("and"),  SW("are"),   SW("as"),   SW("at"),    SW("be"),
    SW("but"),  SW("by"),    SW("for"),  SW("if"),    SW("in"),   SW("into"),  SW("is"),
    SW("it"),   SW("no"),    SW("not"),  SW("of"),    SW("on"),   SW("or"),    SW("such"),
    SW("that"), SW("the"),   SW("their"), SW("then"), SW("there"), SW("these"), SW("they"),
    SW("this"), SW("to"),    SW("was"),  SW("will"),  SW("with"),
};

int sop__is_stopword(const char *t, size_t len)
{
    if (len > 5)
        return 0;
    for (size_t i = 0; i < sizeof stopwords / sizeof stopwords[0]; i++)
        if (stopwords[i].len == len && stopwords[i].w[0] == t[0] &&
            memcmp(stopwords[i].w, t, len) == 0)
            return 1;
    return 0;
}

/* An ASCII letter or digit. */
static inline int ascii_tok(unsigned char c)
{
    return (c >= '0' && c <= '9') || ((c | 32) >= 'a' && (c | 32) <= 'z');
}

/* Appends up to @n bytes of @s to the term; returns 0 when it is full. */
static int put(char *term, size_t *tl, const char *s, size_t n)
{
    if (*tl + n > SOP__TERM_MAX)
        return 0;
    memcpy(term + *tl, s, n);
    *tl += n;
    return 1;
}

int sop__tokenize(const char *text, size_t len, const sop__tok_opts *o, sop__tok_fn fn, void *ctx)
{
    const unsigned char *p = (const unsigned char *)text;
    char term[SOP__TERM_MAX];
    size_t i = 0;
    uint32_t pos = 0;
    const int fold = o->fold;
    while (i < len) {
        /* skip separators (ASCII ones without decoding) */
        if (p[i] < 0x80 && !ascii_tok(p[i])) {
            i++;
            continue;
        }
        size_t l = 1;
        int32_t cp = decode(p + i, len - i, &l);
        if (cp < 0 || !is_token_char(cp)) {
            i += cp < 0 ? 1 : l;
            continue;
        }
        /* one token: its (folded) bytes, cut at SOP__TERM_MAX */
        size_t tl = 0;
        int full = 0, ascii_az = 1;
        while (i < len) {
            unsigned char c = p[i];
            if (c < 0x80) { /* the common case, without decoding */
                if (!ascii_tok(c))
                    break;
                char c1 = (char)(fold && c >= 'A' && c <= 'Z' ? c + 32 : c);
                if (!full && tl < SOP__TERM_MAX) {
                    term[tl++] = c1;
                    if (c1 < 'a' || c1 > 'z')
                        ascii_az = 0;
                } else {
                    full = 1; /* cut: nothing after it counts, even a byte that fits */
                }
                i++;
                continue;
            }
            cp = decode(p + i, len - i, &l);
            if (cp < 0 || !is_token_char(cp))
                break;
            if (!full) {
                char c1;
                if (cp < 0x80) {
                    c1 = (char)(o->fold && cp >= 'A' && cp <= 'Z' ? cp + 32 : cp);
                    full = !put(term, &tl, &c1, 1);
                    if (c1 < 'a' || c1 > 'z')
                        ascii_az = 0;
                } else if (cp < 0x100 && o->fold) {
                    const char *f = latin1[cp - 0xc0];
                    full = !put(term, &tl, f, strlen(f));
                } else {
                    full = !put(term, &tl, (const char *)p + i, l);
                    ascii_az = 0;
                }
            }
            i += l;
        }
        uint32_t at = pos++;
        if (tl == 0)
            continue;
        if (o->stopwords && sop__is_stopword(term, tl))
            continue;
        if (o->stem && ascii_az)
            tl = sop__porter(term, tl);
        int rc = fn(term, tl, at, ctx);
        if (rc)
            return rc;
    }
    return 0;
}
