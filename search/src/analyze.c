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
    return h ^ (h >> 29);
}

static int rehash(tx_bag *b, size_t nslots)
{
    uint32_t *s = sop__calloc(nslots, sizeof *s);
    if (!s)
        return -ENOMEM;
    for (size_t i = 0; i < b->n; i++) {
        size_t j = hash(b->mem + b->terms[i].off, b->terms[i].len) & (nslots - 1);
        while (s[j])
            j = (j + 1) & (nslots - 1);
        s[j] = (uint32_t)i + 1;
    }
    sop__free(b->slots);
    b->slots = s;
    b->nslots = nslots;
    return 0;
}

int tx_bag_put(tx_bag *b, const char *t, size_t len, int64_t count)
{
    if (2 * (b->n + 1) > b->nslots) {
        int rc = rehash(b, b->nslots ? 2 * b->nslots : 64);
        if (rc)
            return rc;
    }
    size_t j = hash(t, len) & (b->nslots - 1);
    for (; b->slots[j]; j = (j + 1) & (b->nslots - 1)) {
        tx_term *x = &b->terms[b->slots[j] - 1];
        if (x->len == len && memcmp(b->mem + x->off, t, len) == 0) {
            x->n += count;
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
    b->slots[j] = (uint32_t)++b->n;
    return 0;
}

int tx_bag_has(const tx_bag *b, const char *t, size_t len)
{
    if (!b->nslots)
        return 0;
    for (size_t j = hash(t, len) & (b->nslots - 1); b->slots[j]; j = (j + 1) & (b->nslots - 1)) {
        const tx_term *x = &b->terms[b->slots[j] - 1];
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

void tx_bag_sort(tx_bag *b)
{
    for (size_t i = 0; i < b->n; i++)
        b->terms[i].t = b->mem + b->terms[i].off;
    if (b->n > 1) /* terms is NULL before the first term */
        qsort(b->terms, b->n, sizeof *b->terms, term_cmp);
    if (b->slots) /* the table no longer matches the order: puts need a reset */
        memset(b->slots, 0, b->nslots * sizeof *b->slots);
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
        tx_bag_sort(&t->bag);
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
