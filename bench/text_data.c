/*
 * text_data.c - the data of the text suite (see text.h).
 *
 * Cranfield (../shared/ir-collections/cranfield, SMART format): a record
 * starts with a line ".I <n>", its fields with a line ".T", ".A", ".B" or
 * ".W" alone. Documents are indexed with their title and text (.T, then
 * .W) by default, which reproduces the FTS5 reference figures of the
 * collection's README; --cranfield-fields w indexes .W alone (it repeats
 * the title in most documents). Queries are the .W of cran.qry in file
 * order; cranqrel's first column is that order (1-based), not the
 * query's .I; codes 1-4 are relevant, -1 marks a query without any.
 *
 * GCIDE (apt dict-gcide): gcide.index has one line per headword,
 * "headword<TAB>offset<TAB>length" with offset and length in dictd's
 * base64 (A-Z a-z 0-9 + /, most significant digit first); gcide.dict.dz
 * is dictzip, i.e. gzip, read through `gzip -dc`. The 203,645 headwords
 * point into 126,240 distinct, non-overlapping definition blocks (39.8 MB:
 * one block holds an entry with its sub-entries, "Law" and "Law Latin");
 * a document is one block (the "00-database-*" header blocks excepted:
 * 126,236 documents),
 * in dictionary order, so that no text is indexed twice.
 */
#include "text.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench_util.h"
#include "child.h"

/* ------------------------------------------------------------------ */
/* Small helpers                                                      */
/* ------------------------------------------------------------------ */

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        bench_die("out of memory (%zu bytes)", n);
    return p;
}

static void *xrealloc(void *p, size_t n)
{
    p = realloc(p, n ? n : 1);
    if (!p)
        bench_die("out of memory (%zu bytes)", n);
    return p;
}

/* Reads a whole file into a NUL-terminated buffer. */
static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        bench_die("cannot open %s: %s", path, strerror(errno));
    size_t cap = 1 << 16, n = 0;
    char *buf = xmalloc(cap);
    for (;;) {
        if (cap - n < 4096)
            buf = xrealloc(buf, cap *= 2);
        size_t r = fread(buf + n, 1, cap - n - 1, f);
        n += r;
        if (r == 0)
            break;
    }
    if (ferror(f))
        bench_die("reading %s: %s", path, strerror(errno));
    fclose(f);
    buf[n] = '\0';
    *len = n;
    return buf;
}

/* The whole output of `gzip -dc path` (no shell involved). */
static char *read_gunzip(const char *path, size_t *len)
{
    int fds[2];
    pid_t pid = bench_fork_piped(fds);
    if (pid == 0) {
        close(fds[0]);
        if (dup2(fds[1], 1) < 0)
            _exit(127);
        close(fds[1]);
        execlp("gzip", "gzip", "-dc", "--", path, (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    size_t cap = 64u << 20, n = 0;
    char *buf = xmalloc(cap);
    for (;;) {
        if (cap - n < (1u << 20))
            buf = xrealloc(buf, cap *= 2);
        ssize_t r = read(fds[0], buf + n, cap - n - 1);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            bench_die("reading gzip -dc %s: %s", path, strerror(errno));
        if (r == 0)
            break;
        n += (size_t)r;
    }
    close(fds[0]);
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            bench_die("waitpid: %s", strerror(errno));
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        bench_die("gzip -dc %s failed (status %d; is gzip installed?)", path, status);
    buf[n] = '\0';
    *len = n;
    return buf;
}

static const char *const stopwords[] = {
    "a",    "an",    "and",   "are",  "as",   "at",    "be",    "but",  "by",
    "for",  "if",    "in",    "into", "is",   "it",    "no",    "not",  "of",
    "on",   "or",    "such",  "that", "the",  "their", "then",  "there", "these",
    "they", "this",  "to",    "was",  "will", "with",
};

int text_is_stopword(const char *w, size_t len)
{
    for (size_t i = 0; i < sizeof stopwords / sizeof stopwords[0]; i++)
        if (strlen(stopwords[i]) == len && memcmp(stopwords[i], w, len) == 0)
            return 1;
    return 0;
}

static int is_word_byte(unsigned char c)
{
    return isalnum(c) || c >= 0x80;
}

/* Appends the words of s[0..len) to @p out (at *o), separated by single
 * spaces, lower-cased (ASCII); NUL-terminates. @p out has room for len + 1. */
static void words_of(const char *s, size_t len, char *out, size_t *o)
{
    size_t start = *o;
    for (size_t i = 0; i < len;) {
        if (!is_word_byte((unsigned char)s[i])) {
            i++;
            continue;
        }
        if (*o > start)
            out[(*o)++] = ' ';
        while (i < len && is_word_byte((unsigned char)s[i]))
            out[(*o)++] = (char)tolower((unsigned char)s[i++]);
    }
    out[(*o)++] = '\0';
}

void text_corpus_free(text_corpus *c)
{
    free(c->docs);
    free(c->buf);
    memset(c, 0, sizeof *c);
}

void text_queries_free(text_queries *q)
{
    free(q->q);
    free(q->buf);
    memset(q, 0, sizeof *q);
}

/* ------------------------------------------------------------------ */
/* Cranfield                                                          */
/* ------------------------------------------------------------------ */

typedef struct smart_rec {
    uint32_t id;
    const char *f[4]; /* T, A, B, W: start in the file buffer */
    size_t len[4];
} smart_rec;

static int field_of(char c)
{
    switch (c) {
    case 'T': return 0;
    case 'A': return 1;
    case 'B': return 2;
    case 'W': return 3;
    default: return -1;
    }
}

/* Splits a SMART file into records. A marker line is ".I <n>" or ".X"
 * alone (X one of T A B W). */
static smart_rec *smart_parse(const char *path, char *buf, size_t len, size_t *nrec)
{
    size_t cap = 256, n = 0;
    smart_rec *r = xmalloc(cap * sizeof *r);
    int cur = -1;
    for (size_t i = 0; i < len;) {
        size_t e = i;
        while (e < len && buf[e] != '\n')
            e++;
        const char *line = buf + i;
        size_t ll = e - i;
        while (ll > 0 && (line[ll - 1] == '\r' || line[ll - 1] == ' '))
            ll--;
        if (ll >= 2 && line[0] == '.' && line[1] == 'I' && (ll == 2 || line[2] == ' ')) {
            if (n == cap)
                r = xrealloc(r, (cap *= 2) * sizeof *r);
            memset(&r[n], 0, sizeof r[n]);
            r[n].id = (uint32_t)strtoul(line + 2, NULL, 10);
            n++;
            cur = -1;
        } else if (ll == 2 && line[0] == '.' && field_of(line[1]) >= 0) {
            if (n == 0)
                bench_die("%s: field before the first .I", path);
            cur = field_of(line[1]);
            r[n - 1].f[cur] = buf + e + (e < len);
            r[n - 1].len[cur] = 0;
        } else if (cur >= 0) {
            /* the field runs to the end of this line */
            r[n - 1].len[cur] = (size_t)(buf + e - r[n - 1].f[cur]);
        }
        i = e + 1;
    }
    *nrec = n;
    return r;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

void text_cranfield_load(const char *dir, int fields, text_corpus *c, text_queries *q,
                         uint32_t ***relp, uint32_t **nrelp)
{
    char path[4200];
    size_t len, nd, nq;

    /* documents */
    snprintf(path, sizeof path, "%s/cran.all.1400", dir);
    char *raw = read_file(path, &len);
    smart_rec *d = smart_parse(path, raw, len, &nd);
    if (nd == 0)
        bench_die("%s: no documents", path);
    memset(c, 0, sizeof *c);
    c->name = "cranfield";
    c->n = nd;
    c->docs = xmalloc(nd * sizeof *c->docs);
    c->buf = xmalloc(len + 2 * nd + 1);
    size_t o = 0;
    for (size_t i = 0; i < nd; i++) {
        char *start = c->buf + o;
        if (fields == TEXT_CRAN_TW && d[i].f[0]) {
            memcpy(c->buf + o, d[i].f[0], d[i].len[0]);
            o += d[i].len[0];
            c->buf[o++] = '\n';
        }
        if (d[i].f[3]) {
            memcpy(c->buf + o, d[i].f[3], d[i].len[3]);
            o += d[i].len[3];
        }
        c->docs[i] = (text_doc){.text = start, .len = (size_t)(c->buf + o - start), .ext = d[i].id};
        c->bytes += c->docs[i].len;
        c->buf[o++] = '\0';
    }
    free(d);
    free(raw);

    /* queries: their words */
    snprintf(path, sizeof path, "%s/cran.qry", dir);
    raw = read_file(path, &len);
    smart_rec *qr = smart_parse(path, raw, len, &nq);
    if (nq == 0)
        bench_die("%s: no queries", path);
    memset(q, 0, sizeof *q);
    q->n = nq;
    q->q = xmalloc(nq * sizeof *q->q);
    q->buf = xmalloc(len + nq + 1);
    o = 0;
    size_t *starts = xmalloc(nq * sizeof *starts);
    for (size_t i = 0; i < nq; i++) {
        starts[i] = o;
        words_of(qr[i].f[3] ? qr[i].f[3] : "", qr[i].len[3], q->buf, &o);
    }
    for (size_t i = 0; i < nq; i++)
        q->q[i] = q->buf + starts[i];
    free(starts);
    free(qr);
    free(raw);

    /* judgments: "qnum docid code" with qnum the 1-based order of the query */
    snprintf(path, sizeof path, "%s/cranqrel", dir);
    raw = read_file(path, &len);
    uint32_t **rel = calloc(nq, sizeof *rel);
    uint32_t *nrel = calloc(nq, sizeof *nrel), *cap = calloc(nq, sizeof *cap);
    if (!rel || !nrel || !cap)
        bench_die("out of memory");
    char *save = NULL;
    for (char *line = strtok_r(raw, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        long qn, docid, code;
        if (sscanf(line, "%ld %ld %ld", &qn, &docid, &code) != 3)
            continue;
        if (qn < 1 || (size_t)qn > nq)
            bench_die("%s: query %ld out of 1..%zu", path, qn, nq);
        if (code < 1 || code > 4)
            continue;
        size_t qi = (size_t)qn - 1;
        int dup = 0;
        for (uint32_t j = 0; j < nrel[qi]; j++)
            dup |= rel[qi][j] == (uint32_t)docid;
        if (dup)
            continue;
        if (nrel[qi] == cap[qi]) {
            cap[qi] = cap[qi] ? cap[qi] * 2 : 8;
            rel[qi] = xrealloc(rel[qi], cap[qi] * sizeof **rel);
        }
        rel[qi][nrel[qi]++] = (uint32_t)docid;
    }
    for (size_t i = 0; i < nq; i++)
        if (nrel[i])
            qsort(rel[i], nrel[i], sizeof **rel, cmp_u32);
    free(cap);
    free(raw);
    *relp = rel;
    *nrelp = nrel;
}

/* ------------------------------------------------------------------ */
/* GCIDE                                                              */
/* ------------------------------------------------------------------ */

static int b64_digit(char ch)
{
    if (ch >= 'A' && ch <= 'Z')
        return ch - 'A';
    if (ch >= 'a' && ch <= 'z')
        return ch - 'a' + 26;
    if (ch >= '0' && ch <= '9')
        return ch - '0' + 52;
    if (ch == '+')
        return 62;
    if (ch == '/')
        return 63;
    return -1;
}

static int b64_num(const char *s, size_t len, uint64_t *v)
{
    *v = 0;
    if (len == 0 || len > 10)
        return -1;
    for (size_t i = 0; i < len; i++) {
        int d = b64_digit(s[i]);
        if (d < 0)
            return -1;
        *v = *v * 64 + (uint64_t)d;
    }
    return 0;
}

typedef struct span {
    uint64_t off, len;
} span;

static int cmp_span(const void *a, const void *b)
{
    const span *x = a, *y = b;
    if (x->off != y->off)
        return x->off < y->off ? -1 : 1;
    return x->len < y->len ? -1 : x->len > y->len;
}

void text_gcide_load(const char *index_path, const char *dict_path, size_t n, text_corpus *c)
{
    size_t ilen, dlen;
    char *idx = read_file(index_path, &ilen);
    size_t cap = 1 << 16, ns = 0;
    span *sp = xmalloc(cap * sizeof *sp);
    size_t lineno = 0;
    for (char *p = idx; *p;) {
        char *e = strchr(p, '\n');
        if (!e)
            e = p + strlen(p);
        lineno++;
        char *t1 = memchr(p, '\t', (size_t)(e - p));
        char *t2 = t1 ? memchr(t1 + 1, '\t', (size_t)(e - t1 - 1)) : NULL;
        if (!t2)
            bench_die("%s:%zu: not headword<TAB>offset<TAB>length", index_path, lineno);
        span s;
        size_t l3 = (size_t)(e - t2 - 1);
        if (l3 > 0 && t2[l3] == '\r')
            l3--;
        if (b64_num(t1 + 1, (size_t)(t2 - t1 - 1), &s.off) != 0 ||
            b64_num(t2 + 1, l3, &s.len) != 0)
            bench_die("%s:%zu: bad base64 offset or length", index_path, lineno);
        /* the dictionary's own header blocks: 00-database-*, 00-gcide-*, ... */
        if (strncmp(p, "00-", 3) != 0 && strncmp(p, "00database", 10) != 0) {
            if (ns == cap)
                sp = xrealloc(sp, (cap *= 2) * sizeof *sp);
            sp[ns++] = s;
        }
        p = *e ? e + 1 : e;
    }
    free(idx);
    qsort(sp, ns, sizeof *sp, cmp_span);
    size_t nu = 0;
    for (size_t i = 0; i < ns; i++)
        if (nu == 0 || sp[i].off != sp[nu - 1].off || sp[i].len != sp[nu - 1].len)
            sp[nu++] = sp[i];
    if (n == 0 || n > nu)
        n = nu;

    char *dict = read_gunzip(dict_path, &dlen);
    memset(c, 0, sizeof *c);
    c->name = "gcide";
    c->n = n;
    c->docs = xmalloc(n * sizeof *c->docs);
    for (size_t i = 0; i < n; i++) {
        if (sp[i].off > dlen || sp[i].len > dlen - sp[i].off)
            bench_die("%s: block at %llu (+%llu) beyond the dictionary's %zu bytes", index_path,
                      (unsigned long long)sp[i].off, (unsigned long long)sp[i].len, dlen);
        c->docs[i] = (text_doc){.text = dict + sp[i].off, .len = (size_t)sp[i].len,
                                .ext = (uint32_t)i};
        c->bytes += sp[i].len;
    }
    c->buf = dict;
    free(sp);
}

/* ------------------------------------------------------------------ */
/* JSON lines                                                         */
/* ------------------------------------------------------------------ */

static void put_utf8(char *out, size_t *o, uint32_t cp)
{
    if (cp < 0x80) {
        out[(*o)++] = (char)cp;
    } else if (cp < 0x800) {
        out[(*o)++] = (char)(0xC0 | (cp >> 6));
        out[(*o)++] = (char)(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        out[(*o)++] = (char)(0xE0 | (cp >> 12));
        out[(*o)++] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[(*o)++] = (char)(0x80 | (cp & 0x3F));
    } else {
        out[(*o)++] = (char)(0xF0 | (cp >> 18));
        out[(*o)++] = (char)(0x80 | ((cp >> 12) & 0x3F));
        out[(*o)++] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[(*o)++] = (char)(0x80 | (cp & 0x3F));
    }
}

static int hex4(const char *p, uint32_t *v)
{
    *v = 0;
    for (int i = 0; i < 4; i++) {
        int c = (unsigned char)p[i], d;
        if (c >= '0' && c <= '9')
            d = c - '0';
        else if (c >= 'a' && c <= 'f')
            d = c - 'a' + 10;
        else if (c >= 'A' && c <= 'F')
            d = c - 'A' + 10;
        else
            return -1;
        *v = *v * 16 + (uint32_t)d;
    }
    return 0;
}

/* Decodes the JSON string at *pp (at its opening quote) into @p out (NULL:
 * only count its bytes into *o, if @p o) at *o; the decoded text is never
 * longer than the source.
 * Returns 0 and advances *pp past the closing quote, or -1. */
static int json_string(const char **pp, char *out, size_t *o)
{
    const char *p = *pp + 1;
    size_t dummy = 0;
    if (!o)
        o = &dummy;
    for (;;) {
        unsigned char c = (unsigned char)*p;
        if (c == '\0' || c == '\n')
            return -1;
        if (c == '"') {
            *pp = p + 1;
            return 0;
        }
        if (c != '\\') {
            if (out)
                out[*o] = (char)c;
            (*o)++;
            p++;
            continue;
        }
        p++;
        char e = *p++, ch;
        switch (e) {
        case '"': ch = '"'; break;
        case '\\': ch = '\\'; break;
        case '/': ch = '/'; break;
        case 'b': ch = '\b'; break;
        case 'f': ch = '\f'; break;
        case 'n': ch = '\n'; break;
        case 'r': ch = '\r'; break;
        case 't': ch = '\t'; break;
        case 'u': {
            uint32_t cp, lo;
            if (hex4(p, &cp) != 0)
                return -1;
            p += 4;
            if (cp >= 0xD800 && cp < 0xDC00 && p[0] == '\\' && p[1] == 'u' &&
                hex4(p + 2, &lo) == 0 && lo >= 0xDC00 && lo < 0xE000) {
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                p += 6;
            } else if (cp >= 0xD800 && cp < 0xE000) {
                cp = 0xFFFD;
            }
            if (out)
                put_utf8(out, o, cp);
            else
                (*o)++;
            continue;
        }
        default: return -1;
        }
        if (out)
            out[*o] = ch;
        (*o)++;
    }
}

static const char *skip_ws(const char *p)
{
    while (*p == ' ' || *p == '\t' || *p == '\r')
        p++;
    return p;
}

/* Skips one JSON value (not a string: those go through json_string). */
static int json_skip(const char **pp)
{
    const char *p = *pp;
    int depth = 0;
    do {
        p = skip_ws(p);
        if (*p == '"') {
            if (json_string(&p, NULL, NULL) != 0)
                return -1;
        } else if (*p == '{' || *p == '[') {
            depth++;
            p++;
        } else if (*p == '}' || *p == ']') {
            if (--depth < 0)
                return -1;
            p++;
        } else if (*p == ',' || *p == ':') {
            if (depth == 0)
                return -1;
            p++;
        } else if (*p && *p != '\n') {
            while (*p && !strchr(" \t\r\n,:]}", *p))
                p++;
        } else {
            return -1;
        }
    } while (depth > 0);
    *pp = p;
    return 0;
}

void text_jsonl_load(const char *path, size_t n, text_corpus *c)
{
    size_t len;
    char *raw = read_file(path, &len);
    memset(c, 0, sizeof *c);
    c->name = "corpus";
    c->buf = xmalloc(len + 1);
    size_t cap = 4096, o = 0, lineno = 0;
    c->docs = xmalloc(cap * sizeof *c->docs);
    size_t *starts = xmalloc(cap * sizeof *starts);
    for (const char *p = raw; *p && (n == 0 || c->n < n);) {
        lineno++;
        const char *q = skip_ws(p);
        if (*q == '\n' || !*q) {
            p = *q ? q + 1 : q;
            continue;
        }
        if (*q != '{')
            bench_die("%s:%zu: not a JSON object", path, lineno);
        q++;
        int have = 0;
        size_t start = o;
        for (;;) {
            q = skip_ws(q);
            if (*q == '}')
                break;
            size_t kl = 0;
            const char *k0 = q;
            if (*q != '"' || json_string(&q, NULL, &kl) != 0)
                bench_die("%s:%zu: bad key", path, lineno);
            int is_text = kl == 4 && strncmp(k0, "\"text\"", 6) == 0;
            q = skip_ws(q);
            if (*q != ':')
                bench_die("%s:%zu: ':' expected", path, lineno);
            q = skip_ws(q + 1);
            if (is_text && *q == '"' && !have) {
                if (json_string(&q, c->buf, &o) != 0)
                    bench_die("%s:%zu: bad \"text\" string", path, lineno);
                have = 1;
            } else if (*q == '"' ? json_string(&q, NULL, NULL) != 0 : json_skip(&q) != 0) {
                bench_die("%s:%zu: bad JSON value", path, lineno);
            }
            q = skip_ws(q);
            if (*q == ',')
                q++;
            else if (*q != '}')
                bench_die("%s:%zu: ',' or '}' expected", path, lineno);
        }
        if (!have)
            bench_die("%s:%zu: no \"text\" string", path, lineno);
        if (c->n == cap) {
            cap *= 2;
            c->docs = xrealloc(c->docs, cap * sizeof *c->docs);
            starts = xrealloc(starts, cap * sizeof *starts);
        }
        starts[c->n] = start;
        c->docs[c->n] = (text_doc){.len = o - start, .ext = (uint32_t)c->n};
        c->bytes += o - start;
        c->n++;
        q = skip_ws(q + 1);
        if (*q != '\n' && *q)
            bench_die("%s:%zu: one JSON object per line expected", path, lineno);
        p = *q ? q + 1 : q;
    }
    if (c->n == 0)
        bench_die("%s: no documents", path);
    for (size_t i = 0; i < c->n; i++)
        c->docs[i].text = c->buf + starts[i];
    free(starts);
    free(raw);
}

/* ------------------------------------------------------------------ */
/* Query sampling                                                     */
/* ------------------------------------------------------------------ */

#define MAX_CAND 4096

void text_sample_queries(const text_corpus *c, size_t nq, uint64_t seed, text_queries *q)
{
    bench_rng r;
    bench_rng_seed(&r, seed);
    memset(q, 0, sizeof *q);
    q->n = nq;
    q->q = xmalloc(nq * sizeof *q->q);
    size_t cap = nq * 40 + 64, o = 0;
    q->buf = xmalloc(cap);
    size_t *starts = xmalloc(nq * sizeof *starts);
    /* candidate words of one document: offsets into its text */
    size_t *co = xmalloc(MAX_CAND * sizeof *co), *cl = xmalloc(MAX_CAND * sizeof *cl);
    size_t tries = 0;
    for (size_t i = 0; i < nq;) {
        if (++tries > nq * 1000 + 1000)
            bench_die("text: cannot sample queries from %s (too few words)", c->name);
        const text_doc *d = &c->docs[bench_rng_below(&r, c->n)];
        size_t nc = 0;
        for (size_t j = 0; j < d->len && nc < MAX_CAND;) {
            if (!isalpha((unsigned char)d->text[j])) {
                j++;
                continue;
            }
            size_t s = j;
            while (j < d->len && isalpha((unsigned char)d->text[j]))
                j++;
            /* a word is a whole run of letters: skip runs glued to digits or
             * non-ASCII bytes, which the engines would split differently */
            if ((s > 0 && is_word_byte((unsigned char)d->text[s - 1])) ||
                (j < d->len && is_word_byte((unsigned char)d->text[j])))
                continue;
            size_t len = j - s;
            if (len < 3 || len > 20)
                continue;
            char w[24];
            for (size_t k = 0; k < len; k++)
                w[k] = (char)tolower((unsigned char)d->text[s + k]);
            if (text_is_stopword(w, len))
                continue;
            co[nc] = s;
            cl[nc++] = len;
        }
        if (nc == 0)
            continue;
        size_t want = 1 + (size_t)bench_rng_below(&r, 3);
        size_t pick[3], np = 0;
        for (size_t t = 0; t < 20 && np < want; t++) {
            size_t k = (size_t)bench_rng_below(&r, nc);
            int dup = 0;
            for (size_t m = 0; m < np; m++)
                dup |= cl[pick[m]] == cl[k] &&
                       strncasecmp(d->text + co[pick[m]], d->text + co[k], cl[k]) == 0;
            if (!dup)
                pick[np++] = k;
        }
        if (o + 3 * 22 + 1 > cap)
            q->buf = xrealloc(q->buf, cap *= 2);
        starts[i] = o;
        for (size_t m = 0; m < np; m++) {
            if (m)
                q->buf[o++] = ' ';
            for (size_t k = 0; k < cl[pick[m]]; k++)
                q->buf[o++] = (char)tolower((unsigned char)d->text[co[pick[m]] + k]);
        }
        q->buf[o++] = '\0';
        i++;
    }
    for (size_t i = 0; i < nq; i++)
        q->q[i] = q->buf + starts[i];
    free(starts);
    free(co);
    free(cl);
}
