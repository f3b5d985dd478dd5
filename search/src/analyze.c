/* analyze.c - documents and queries to bags of terms.
 *
 * A document's terms: those of its text and of each named field (plain),
 * and for a field also "name:term" (qualified), so that a query can
 * address the field alone. Its length is the number of plain terms.
 * A query's terms: its words, where a whitespace-separated chunk written
 * "name:words" (name: 1..32 of [a-z0-9_]) yields qualified terms; each
 * term with the number of times it appears. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "mem.h"
#include "textidx.h"

void tx_bag_reset(tx_bag *b)
{
    b->used = 0;
    b->n = 0;
    b->tokens = 0;
    if (b->nslots > 65536) { /* a big document or bulk load was here: start small */
        sop__free(b->slots);
        b->slots = NULL;
        b->nslots = 0;
    } else if (b->slots) {
        memset(b->slots, 0, b->nslots * sizeof *b->slots);
    }
}

void tx_bag_free(tx_bag *b)
{
    sop__free(b->mem);
    sop__free(b->terms);
    sop__free(b->slots);
    memset(b, 0, sizeof *b);
}

static uint64_t hash(const char *t, size_t len)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < len; i++)
        h = (h ^ (uint8_t)t[i]) * 1099511628211ull;
    return (h ^ (h >> 29)) * 0xbf58476d1ce4e5b9ull; /* mixed: low bits index, high bits tag */
}

/* A slot: 1 + the term's index in the low 32 bits (0: empty), the high
 * 32 bits of its hash above, so that a probe rarely reads a term that is
 * not the one sought. */
#define SLOT(idx, h) ((uint64_t)((h) >> 32) << 32 | ((uint64_t)(idx) + 1))
#define SLOT_IDX(s) ((uint32_t)(s) - 1)
#define SLOT_TAG(s) ((uint32_t)((s) >> 32))

static int rehash(tx_bag *b, size_t nslots)
{
    uint64_t *s = sop__calloc(nslots, sizeof *s);
    if (!s)
        return -ENOMEM;
    for (size_t i = 0; i < b->n; i++) {
        uint64_t h = hash(b->mem + b->terms[i].off, b->terms[i].len);
        size_t j = h & (nslots - 1);
        while (s[j])
            j = (j + 1) & (nslots - 1);
        s[j] = SLOT(i, h);
    }
    sop__free(b->slots);
    b->slots = s;
    b->nslots = nslots;
    return 0;
}

int tx_bag_put(tx_bag *b, const char *t, size_t len, int64_t count)
{
    uint32_t idx;
    return tx_bag_put_idx(b, t, len, count, &idx);
}

int tx_bag_put_idx(tx_bag *b, const char *t, size_t len, int64_t count, uint32_t *idx)
{
    if (2 * (b->n + 1) > b->nslots) {
        int rc = rehash(b, b->nslots ? 2 * b->nslots : 64);
        if (rc)
            return rc;
    }
    uint64_t h = hash(t, len);
    size_t j = h & (b->nslots - 1);
    for (; b->slots[j]; j = (j + 1) & (b->nslots - 1)) {
        if (SLOT_TAG(b->slots[j]) != (uint32_t)(h >> 32))
            continue;
        tx_term *x = &b->terms[SLOT_IDX(b->slots[j])];
        if (x->len == len && memcmp(b->mem + x->off, t, len) == 0) {
            x->n += count;
            *idx = SLOT_IDX(b->slots[j]);
            return 0;
        }
    }
    if (b->n == UINT32_MAX - 1)
        return -ENOMEM;
    if (b->used + len > b->cap) {
        size_t cap = b->cap ? 2 * b->cap : 4096;
        while (cap < b->used + len)
            cap *= 2;
        char *m = sop__realloc(b->mem, cap);
        if (!m)
            return -ENOMEM;
        b->mem = m;
        b->cap = cap;
    }
    tx_term *a = sop__grow(b->terms, &b->capterms, b->n + 1, sizeof *a, 64);
    if (!a)
        return -ENOMEM;
    b->terms = a;
    memcpy(b->mem + b->used, t, len);
    b->terms[b->n] = (tx_term){NULL, b->used, (uint32_t)len, count};
    b->used += len;
    *idx = (uint32_t)b->n;
    b->slots[j] = SLOT(b->n, h);
    b->n++;
    return 0;
}

int tx_bag_has(const tx_bag *b, const char *t, size_t len)
{
    if (!b->nslots)
        return 0;
    uint64_t h = hash(t, len);
    for (size_t j = h & (b->nslots - 1); b->slots[j]; j = (j + 1) & (b->nslots - 1)) {
        if (SLOT_TAG(b->slots[j]) != (uint32_t)(h >> 32))
            continue;
        const tx_term *x = &b->terms[SLOT_IDX(b->slots[j])];
        if (x->len == len && memcmp(b->mem + x->off, t, len) == 0)
            return 1;
    }
    return 0;
}

static int term_cmp(const void *pa, const void *pb)
{
    const tx_term *a = pa, *b = pb;
    int c = memcmp(a->t, b->t, a->len < b->len ? a->len : b->len);
    return c ? c : (a->len > b->len) - (a->len < b->len);
}

void tx_bag_seal(tx_bag *b)
{
    for (size_t i = 0; i < b->n; i++)
        b->terms[i].t = b->mem + b->terms[i].off;
}

void tx_bag_sort(tx_bag *b)
{
    for (size_t i = 0; i < b->n; i++)
        b->terms[i].t = b->mem + b->terms[i].off;
    if (b->n > 1) /* terms is NULL before the first term */
        qsort(b->terms, b->n, sizeof *b->terms, term_cmp);
    if (b->slots) /* the table no longer matches the order: puts need a reset */
        memset(b->slots, 0, b->nslots * sizeof *b->slots);
}

static int bag_idx_cmp(const void *pa, const void *pb, void *ctx)
{
    const tx_bag *b = ctx;
    const tx_term *x = &b->terms[*(const uint32_t *)pa], *y = &b->terms[*(const uint32_t *)pb];
    int c = memcmp(b->mem + x->off, b->mem + y->off, x->len < y->len ? x->len : y->len);
    return c ? c : (x->len > y->len) - (x->len < y->len);
}

/* LSD radix sort of e[0..n) by key, 16 bits a pass (a pass where every
 * key has the same digit is skipped). */
int tx_radix_sort(tx_pent *e, size_t n, unsigned bits)
{
    enum { D = 11, B = 1 << D }; /* 2,048 counters stay in L1 */
    tx_pent *tmp = sop__malloc((n ? n : 1) * sizeof *tmp);
    size_t *cnt = sop__malloc(B * sizeof *cnt);
    if (!tmp || !cnt) {
        sop__free(tmp);
        sop__free(cnt);
        return -ENOMEM;
    }
    tx_pent *src = e, *dst = tmp;
    for (unsigned shift = 0; shift < bits; shift += D) {
        memset(cnt, 0, B * sizeof *cnt);
        for (size_t i = 0; i < n; i++)
            cnt[(src[i].key >> shift) & (B - 1)]++;
        if (n && cnt[(src[0].key >> shift) & (B - 1)] == n)
            continue;
        size_t sum = 0;
        for (size_t d = 0; d < B; d++) {
            size_t c = cnt[d];
            cnt[d] = sum;
            sum += c;
        }
        for (size_t i = 0; i < n; i++)
            dst[cnt[(src[i].key >> shift) & (B - 1)]++] = src[i];
        tx_pent *x = src;
        src = dst;
        dst = x;
    }
    if (src != e)
        memcpy(e, src, n * sizeof *e);
    sop__free(tmp);
    sop__free(cnt);
    return 0;
}

/* ord: the bag's indices in key order (bytes, shorter first); rank: the
 * inverse (may be NULL). A radix sort on each key's first 8 bytes, then a
 * comparison sort of the runs that share them: linear for the usual
 * bags of short terms and ids. */
int tx_bag_order(const tx_bag *b, uint32_t **ord, uint32_t **rank)
{
    size_t n = b->n;
    *ord = sop__malloc((n ? n : 1) * sizeof **ord);
    if (rank)
        *rank = sop__malloc((n ? n : 1) * sizeof **rank);
    tx_pent *e = sop__malloc((n ? n : 1) * sizeof *e);
    int rc = !*ord || (rank && !*rank) || !e ? -ENOMEM : 0;
    for (size_t i = 0; i < n && !rc; i++) {
        const tx_term *x = &b->terms[i];
        uint8_t p[8] = {0};
        memcpy(p, b->mem + x->off, x->len < 8 ? x->len : 8);
        uint64_t k = 0;
        for (int j = 0; j < 8; j++)
            k = k << 8 | p[j];
        e[i] = (tx_pent){k, (uint32_t)i, 0};
    }
    if (!rc)
        rc = tx_radix_sort(e, n, 64);
    for (size_t i = 0; i < n && !rc; i++)
        (*ord)[i] = e[i].tf;
    for (size_t i = 0; i < n && !rc;) {
        size_t j = i + 1;
        while (j < n && e[j].key == e[i].key)
            j++;
        if (j - i > 1)
            qsort_r(*ord + i, j - i, sizeof **ord, bag_idx_cmp, (void *)b);
        i = j;
    }
    for (size_t r = 0; r < n && !rc && rank; r++)
        (*rank)[(*ord)[r]] = (uint32_t)r;
    sop__free(e);
    return rc;
}

/* The tokenizer's callback: one term, plain and (with a field) qualified. */
typedef struct sink {
    tx_bag *bag;
    const char *field; /* NULL, or the field name */
    size_t flen;
} sink;

static int on_term(const char *term, size_t len, uint32_t pos, void *ctx)
{
    (void)pos;
    sink *s = ctx;
    int rc = tx_bag_put(s->bag, term, len, 1);
    s->bag->tokens++;
    if (rc || !s->field)
        return rc;
    char q[TX_TERM_MAX];
    memcpy(q, s->field, s->flen);
    q[s->flen] = ':';
    memcpy(q + s->flen + 1, term, len);
    return tx_bag_put(s->bag, q, s->flen + 1 + len, 1);
}

/* On a query, a qualified chunk counts only its qualified terms. */
static int on_query_term(const char *term, size_t len, uint32_t pos, void *ctx)
{
    (void)pos;
    sink *s = ctx;
    if (!s->field)
        return tx_bag_put(s->bag, term, len, 1);
    char q[TX_TERM_MAX];
    memcpy(q, s->field, s->flen);
    q[s->flen] = ':';
    memcpy(q + s->flen + 1, term, len);
    return tx_bag_put(s->bag, q, s->flen + 1 + len, 1);
}

/* 1..32 bytes of [a-z0-9_]. */
static size_t field_name_len(const char *p, size_t n)
{
    size_t i = 0;
    while (i < n && i <= SOP_TEXT_FIELD_NAME_MAX &&
           ((p[i] >= 'a' && p[i] <= 'z') || (p[i] >= '0' && p[i] <= '9') || p[i] == '_'))
        i++;
    return i >= 1 && i <= SOP_TEXT_FIELD_NAME_MAX ? i : 0;
}

int tx_analyze_doc(sop_text *t, const sop_text_doc *d)
{
    if (!d || !d->id || d->id_len == 0 || d->id_len > SOP_TEXT_ID_MAX)
        return tx_err(t, -EINVAL, "document id must be 1..%u bytes", SOP_TEXT_ID_MAX);
    if ((!d->text && d->text_len) || (d->nfields && !d->fields))
        return tx_err(t, -EINVAL, "NULL text or fields");
    if (d->nfields > SOP_TEXT_FIELDS_MAX)
        return tx_err(t, -EINVAL, "%zu fields: at most %u", d->nfields, SOP_TEXT_FIELDS_MAX);
    uint64_t total = d->text_len;
    for (size_t i = 0; i < d->nfields; i++) {
        const sop_text_field *f = &d->fields[i];
        size_t nl = f->name ? strlen(f->name) : 0;
        if (!nl || field_name_len(f->name, nl) != nl || (!f->text && f->len))
            return tx_err(t, -EINVAL, "field %zu: a name is 1..%u of [a-z0-9_], text non-NULL",
                          i, SOP_TEXT_FIELD_NAME_MAX);
        for (size_t j = 0; j < i; j++)
            if (strcmp(d->fields[j].name, f->name) == 0)
                return tx_err(t, -EINVAL, "field %s appears twice", f->name);
        total += f->len;
    }
    if (total > SOP_TEXT_DOC_MAX)
        return tx_err(t, SOP_ETOOBIG, "document of %llu bytes: at most %u",
                      (unsigned long long)total, SOP_TEXT_DOC_MAX);
    if (total == 0)
        return tx_err(t, -EINVAL, "empty document (no text in the text or the fields)");
    tx_bag_reset(&t->bag);
    sink s = {&t->bag, NULL, 0};
    int rc = sop__tokenize(d->text, d->text_len, &t->tok, on_term, &s);
    for (size_t i = 0; i < d->nfields && !rc; i++) {
        s.field = d->fields[i].name;
        s.flen = strlen(s.field);
        rc = sop__tokenize(d->fields[i].text, d->fields[i].len, &t->tok, on_term, &s);
    }
    if (!rc)
        tx_bag_seal(&t->bag); /* order does not matter: the flush sorts */
    return rc;
}

static int is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

int tx_analyze_query(sop_text *t, const char *q, size_t len)
{
    tx_bag_reset(&t->bag);
    sink s = {&t->bag, NULL, 0};
    int rc = 0;
    for (size_t i = 0; i < len && !rc;) {
        while (i < len && is_space(q[i]))
            i++;
        size_t start = i;
        while (i < len && !is_space(q[i]))
            i++;
        const char *c = q + start;
        size_t n = i - start, fl = field_name_len(c, n);
        if (fl && fl + 1 < n && c[fl] == ':') {
            s.field = c;
            s.flen = fl;
            c += fl + 1;
            n -= fl + 1;
        } else {
            s.field = NULL;
        }
        if (n)
            rc = sop__tokenize(c, n, &t->tok, on_query_term, &s);
    }
    if (!rc)
        tx_bag_sort(&t->bag);
    return rc;
}
