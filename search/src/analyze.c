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
    b->tokens = 0;
    if (b->nslots > 65536) { /* a big document or bulk load was here: start small */
        sop__free(b->slots);
        b->slots = NULL;
        b->nslots = 0;
    } else if (b->slots && b->sealed) { /* sorted: the slots no longer match */
        memset(b->slots, 0, b->nslots * sizeof *b->slots);
    } else {
        for (size_t i = 0; i < b->n; i++) /* a small bag in a big table: its slots only */
            b->slots[b->terms[i].slot].idx1 = 0;
    }
    b->n = 0;
    b->sealed = 0;
}

void tx_bag_free(tx_bag *b)
{
    sop__free(b->mem);
    sop__free(b->terms);
    sop__free(b->slots);
    memset(b, 0, sizeof *b);
}

/* 8 bytes at a time, then a full mix: the low bits pick the slot, the
 * high ones make the tag. */
static uint64_t hash(const char *t, size_t len)
{
    uint64_t h = (uint64_t)len * 0x9e3779b97f4a7c15ull, w;
    size_t i = 0;
    for (; i + 8 <= len; i += 8) {
        memcpy(&w, t + i, 8);
        h = (h ^ w) * 0xbf58476d1ce4e5b9ull;
        h ^= h >> 31;
    }
    if (i < len) {
        w = 0;
        memcpy(&w, t + i, len - i);
        h = (h ^ w) * 0x94d049bb133111ebull;
    }
    h = (h ^ (h >> 30)) * 0xbf58476d1ce4e5b9ull;
    h = (h ^ (h >> 27)) * 0x94d049bb133111ebull;
    return h ^ (h >> 31);
}

/* A slot holds what most probes need without reading the term itself:
 * 1 + the term's index (0: empty), 24 bits of its hash and its length, and
 * its first 8 bytes. A term of up to 8 bytes is recognised from the slot
 * alone (one cache line instead of three). */
static inline uint32_t slot_tag(uint64_t h, size_t len)
{
    return (uint32_t)(h >> 40) << 8 | (uint32_t)(len < 255 ? len : 255);
}

static inline uint64_t slot_head(const char *t, size_t len)
{
    uint64_t k = 0;
    memcpy(&k, t, len < 8 ? len : 8);
    return k;
}

static void slot_set(tx_slot *s, uint32_t idx, uint64_t h, const char *t, size_t len)
{
    s->idx1 = idx + 1;
    s->tag = slot_tag(h, len);
    s->head = slot_head(t, len);
}

static int rehash(tx_bag *b, size_t nslots)
{
    tx_slot *s = sop__calloc(nslots, sizeof *s);
    if (!s)
        return -ENOMEM;
    for (size_t i = 0; i < b->n; i++) {
        const char *t = b->mem + b->terms[i].off;
        uint64_t h = hash(t, b->terms[i].len);
        size_t j = h & (nslots - 1);
        while (s[j].idx1)
            j = (j + 1) & (nslots - 1);
        slot_set(&s[j], (uint32_t)i, h, t, b->terms[i].len);
        b->terms[i].slot = (uint32_t)j;
    }
    sop__free(b->slots);
    b->slots = s;
    b->nslots = nslots;
    return 0;
}

/* The slot of @t, or of the empty slot where it would go. */
static size_t probe(const tx_bag *b, const char *t, size_t len, uint64_t h, int *found)
{
    uint32_t tag = slot_tag(h, len);
    uint64_t head = slot_head(t, len);
    size_t j = h & (b->nslots - 1);
    for (; b->slots[j].idx1; j = (j + 1) & (b->nslots - 1)) {
        const tx_slot *s = &b->slots[j];
        if (s->tag != tag || s->head != head)
            continue;
        if (len <= 8) {
            *found = 1;
            return j;
        }
        const tx_term *x = &b->terms[s->idx1 - 1];
        if (x->len == len && memcmp(b->mem + x->off + 8, t + 8, len - 8) == 0) {
            *found = 1;
            return j;
        }
    }
    *found = 0;
    return j;
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
    int found;
    size_t j = probe(b, t, len, h, &found);
    if (found) {
        *idx = b->slots[j].idx1 - 1;
        if (count) /* a count of 0 leaves the term's record untouched */
            b->terms[*idx].n += count;
        return 0;
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
    b->terms[b->n] = (tx_term){NULL, b->used, (uint32_t)len, (uint32_t)j, count};
    b->used += len;
    *idx = (uint32_t)b->n;
    slot_set(&b->slots[j], (uint32_t)b->n, h, t, len);
    b->n++;
    return 0;
}

int tx_bag_has(const tx_bag *b, const char *t, size_t len)
{
    if (!b->nslots)
        return 0;
    int found;
    probe(b, t, len, hash(t, len), &found);
    return found;
}

int tx_bag_find(const tx_bag *b, const char *t, size_t len, uint32_t *idx)
{
    if (!b->nslots)
        return 0;
    int found;
    size_t j = probe(b, t, len, hash(t, len), &found);
    if (found)
        *idx = b->slots[j].idx1 - 1;
    return found;
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
    b->sealed = 1; /* the table no longer matches the order: puts need a reset */
}

static int bag_idx_cmp(const void *pa, const void *pb, void *ctx)
{
    const tx_bag *b = ctx;
    const tx_term *x = &b->terms[*(const uint32_t *)pa], *y = &b->terms[*(const uint32_t *)pb];
    int c = memcmp(b->mem + x->off, b->mem + y->off, x->len < y->len ? x->len : y->len);
    return c ? c : (x->len > y->len) - (x->len < y->len);
}

int tx_radix_sort64(uint64_t *a, size_t n, unsigned lo, unsigned hi)
{
    enum { D = 12, B = 1 << D }; /* 4,096 counters stay in L1 */
    uint64_t *tmp = sop__malloc((n ? n : 1) * sizeof *tmp);
    size_t *cnt = sop__malloc(B * sizeof *cnt);
    if (!tmp || !cnt) {
        sop__free(tmp);
        sop__free(cnt);
        return -ENOMEM;
    }
    uint64_t *src = a, *dst = tmp;
    for (unsigned shift = lo; shift < hi; shift += D) {
        memset(cnt, 0, B * sizeof *cnt);
        for (size_t i = 0; i < n; i++)
            cnt[(src[i] >> shift) & (B - 1)]++;
        if (n && cnt[(src[0] >> shift) & (B - 1)] == n)
            continue;
        size_t sum = 0;
        for (size_t d = 0; d < B; d++) {
            size_t c = cnt[d];
            cnt[d] = sum;
            sum += c;
        }
        for (size_t i = 0; i < n; i++)
            dst[cnt[(src[i] >> shift) & (B - 1)]++] = src[i];
        uint64_t *x = src;
        src = dst;
        dst = x;
    }
    if (src != a)
        memcpy(a, src, n * sizeof *a);
    sop__free(tmp);
    sop__free(cnt);
    return 0;
}

/* ord: the bag's indices in key order (bytes, shorter first); rank: the
 * inverse (may be NULL). A radix sort of (the key's first 44 bits, index)
 * pairs packed in 64 bits, then a comparison sort of the runs that share
 * those bits: linear for the usual bags of short terms and ids. The bag
 * holds fewer than 2^20 keys (TX_BAG_ORDER_MAX). */
int tx_bag_order(const tx_bag *b, uint32_t **ord, uint32_t **rank)
{
    size_t n = b->n;
    *ord = sop__malloc((n ? n : 1) * sizeof **ord);
    if (rank)
        *rank = sop__malloc((n ? n : 1) * sizeof **rank);
    uint64_t *e = sop__malloc((n ? n : 1) * sizeof *e);
    int rc = !*ord || (rank && !*rank) || !e ? -ENOMEM : 0;
    if (n >= TX_BAG_ORDER_MAX)
        rc = -EINVAL;
    for (size_t i = 0; i < n && !rc; i++) {
        const tx_term *x = &b->terms[i];
        uint8_t p[8] = {0};
        memcpy(p, b->mem + x->off, x->len < 8 ? x->len : 8);
        uint64_t k = 0;
        for (int j = 0; j < 8; j++)
            k = k << 8 | p[j];
        e[i] = (k >> 20) << 20 | i;
    }
    if (!rc)
        rc = tx_radix_sort64(e, n, 20, 64);
    for (size_t i = 0; i < n && !rc; i++)
        (*ord)[i] = (uint32_t)(e[i] & (TX_BAG_ORDER_MAX - 1));
    for (size_t i = 0; i < n && !rc;) {
        size_t j = i + 1;
        while (j < n && e[j] >> 20 == e[i] >> 20)
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
