/*
 * store.c - the catalog of stores and the item API.
 *
 * The catalog is a B-tree (root id 1) mapping store name -> entry:
 *   0 u8 format (1)  1 u8 unique  2 u8 order  3 u8 zero
 *   4 u32 node_bytes  8 u32 inline_max  12 u32 chunk_bytes (streaming
 *   stores, docs/design/streaming.md; 0: an ordinary store)
 *   16 u64 root id  24 u64 counter id  32 u16 comparator name length, name
 *
 * Internal keys: user keys of INT64 / UINT64 / DOUBLE stores are encoded
 * big-endian so that bytes compare in numeric order; stores with duplicate
 * keys append an 8-byte big-endian sequence number, so every item of the
 * tree has a unique key and duplicates keep their insertion order.
 */
#include <errno.h>
#include <string.h>

#include "bytes.h"
#include "crc32c.h"
#include "internal.h"
#include "mem.h"

#define ENTRY_FIXED 34
#define DUP_SUFFIX 8
#define IKEY_MAX (SOP__KEY_MAX + DUP_SUFFIX)

void sop_store_options_init(sop_store_options *o)
{
    memset(o, 0, sizeof *o);
    o->struct_size = sizeof *o;
    o->unique = 1;
    o->order = SOP_ORDER_BYTES;
    o->node_bytes = 4096;
    o->inline_max = 0; /* node_bytes / 4 */
}

int sop__bytes_cmp(void *ctx, const void *a, size_t alen, const void *b, size_t blen)
{
    (void)ctx;
    size_t n = alen < blen ? alen : blen;
    int c = n ? memcmp(a, b, n) : 0;
    if (c)
        return c;
    return alen < blen ? -1 : alen > blen;
}

/* Compares user keys (encoded, without the duplicate suffix). */
int sop__ukey_cmp(const sop_store *s, const void *a, size_t alen, const void *b, size_t blen)
{
    if (s->ucmp) {
        sop_val va = {a, alen}, vb = {b, blen};
        return s->ucmp(&va, &vb, s->uctx);
    }
    return sop__bytes_cmp(NULL, a, alen, b, blen);
}

/* Comparator of trees with duplicates or a user order. */
int sop__store_cmp(void *ctx, const void *a, size_t alen, const void *b, size_t blen)
{
    sop_store *s = ctx;
    size_t sa = s->unique ? 0 : DUP_SUFFIX, sb = sa;
    if (alen < sa || blen < sb) /* bounds used by seeks are always >= suffix */
        sa = sb = 0;
    int c;
    if (s->ucmp) {
        sop_val va = {a, alen - sa}, vb = {b, blen - sb};
        c = s->ucmp(&va, &vb, s->uctx);
    } else {
        c = sop__bytes_cmp(NULL, a, alen - sa, b, blen - sb);
    }
    if (c || !sa)
        return c;
    return memcmp((const uint8_t *)a + alen - sa, (const uint8_t *)b + blen - sb, DUP_SUFFIX);
}

int sop__valid_name(const char *name, size_t max)
{
    if (!name)
        return 0;
    size_t n = strnlen(name, max + 1);
    if (n == 0 || n > max || name[0] == '.')
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '.' || c == '-'))
            return 0;
    }
    return 1;
}

int sop__catalog_tree(sop_txn *txn, sop__tree *t)
{
    sop__txn_tree_init(txn, t, SOP__CATALOG_ROOT, SOP__CATALOG_NODE_BYTES);
    return 0;
}

static uint32_t key_max(const sop_store *s)
{
    /* the same for duplicate stores: their 8-byte suffix fits in the 16 */
    uint32_t m = s->node_bytes / 4 - 16;
    return m > SOP__KEY_MAX ? SOP__KEY_MAX : m;
}

static int valid_utf8(const uint8_t *p, size_t n)
{
    size_t i = 0;
    while (i < n) {
        uint8_t c = p[i];
        if (c == 0)
            return 0;
        if (c < 0x80) {
            i++;
            continue;
        }
        int len = (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 0;
        if (!len || i + (size_t)len > n)
            return 0;
        uint32_t cp = c & (0xFF >> (len + 1));
        for (int k = 1; k < len; k++) {
            if ((p[i + (size_t)k] & 0xC0) != 0x80)
                return 0;
            cp = (cp << 6) | (p[i + (size_t)k] & 0x3F);
        }
        if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
            cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return 0;
        i += (size_t)len;
    }
    return 1;
}

int sop__key_encode(const sop_store *s, const sop_val *key, uint8_t *out, size_t *olen)
{
    sop_db *db = s->txn->db;
    if (!key || (!key->data && key->size))
        return sop__err(db, -EINVAL, "NULL key");
    switch (s->order) {
    case SOP_ORDER_INT64:
    case SOP_ORDER_UINT64:
    case SOP_ORDER_DOUBLE: {
        if (key->size != 8)
            return sop__err(db, -EINVAL, "keys of store %s are 8 bytes, got %zu", s->name, key->size);
        uint64_t v;
        memcpy(&v, key->data, 8);
        if (s->order == SOP_ORDER_INT64) {
            v ^= 1ull << 63;
        } else if (s->order == SOP_ORDER_DOUBLE) {
            double d;
            memcpy(&d, key->data, 8);
            if (d != d)
                return sop__err(db, -EINVAL, "NaN key in store %s", s->name);
            if (d == 0)
                v = 0; /* -0.0 == 0.0 */
            v = (v >> 63) ? ~v : v ^ (1ull << 63);
        }
        sop__put64be(out, v);
        *olen = 8;
        return 0;
    }
    case SOP_ORDER_STRING:
        if (!valid_utf8(key->data, key->size))
            return sop__err(db, -EINVAL, "key is not valid UTF-8 without NUL (store %s)", s->name);
        /* fall through */
    default:
        if (key->size > key_max(s))
            return sop__err(db, SOP_ETOOBIG, "key of %zu bytes exceeds the maximum %u of store %s",
                            key->size, key_max(s), s->name);
        if (key->size)
            memcpy(out, key->data, key->size);
        *olen = key->size;
        return 0;
    }
}

void sop__key_decode(sop_store *s, const uint8_t *ik, uint32_t iklen, uint8_t *buf, sop_val *out)
{
    uint32_t ulen = iklen - (s->unique ? 0 : DUP_SUFFIX);
    if (s->order == SOP_ORDER_INT64 || s->order == SOP_ORDER_UINT64 || s->order == SOP_ORDER_DOUBLE) {
        uint64_t v = sop__get64be(ik);
        if (s->order == SOP_ORDER_INT64)
            v ^= 1ull << 63;
        else if (s->order == SOP_ORDER_DOUBLE)
            v = (v >> 63) ? v ^ (1ull << 63) : ~v;
        memcpy(buf, &v, 8);
        out->data = buf;
        out->size = 8;
        return;
    }
    out->data = ik;
    out->size = ulen;
}

int sop__blobref_crc_ok(const uint8_t *ref, const uint8_t *data)
{
    return sop__crc32c(data, sop__get64(ref + 8), 0) == sop__get32(ref + 16);
}

int sop__value_get(sop_store *s, const uint8_t *v, uint32_t vlen, uint8_t vflags, sop_val *out)
{
    if (vflags == SOP__V_INLINE) {
        out->data = v;
        out->size = vlen;
        return 0;
    }
    if (vflags != SOP__V_BLOB || vlen != SOP__BLOBREF_SIZE)
        return sop__err(s->txn->db, SOP_ECORRUPT, "store %s: bad value reference", s->name);
    uint64_t id = sop__get64(v), size = sop__get64(v + 8);
    const uint8_t *data;
    int rc = sop__txn_get_blob(s->txn, id, size, &data);
    if (rc)
        return rc;
    if (!sop__blobref_crc_ok(v, data))
        return sop__err(s->txn->db, SOP_ECORRUPT, "store %s: blob %llu: checksum mismatch", s->name,
                        (unsigned long long)id);
    out->data = data;
    out->size = size;
    return 0;
}

/* ---- catalog entries ---- */

static int entry_encode(const sop_store *s, uint8_t *out, size_t *len)
{
    size_t cl = s->cmpname ? strlen(s->cmpname) : 0;
    memset(out, 0, ENTRY_FIXED);
    out[0] = 1;
    out[1] = (uint8_t)s->unique;
    out[2] = (uint8_t)s->order;
    sop__put32(out + 4, s->node_bytes);
    sop__put32(out + 8, s->inline_max);
    sop__put32(out + 12, s->chunk_bytes);
    sop__put64(out + 16, s->root);
    sop__put64(out + 24, s->counter_id);
    sop__put16(out + 32, (uint16_t)cl);
    if (cl)
        memcpy(out + ENTRY_FIXED, s->cmpname, cl);
    *len = ENTRY_FIXED + cl;
    return 0;
}

int sop__store_decode_entry(const uint8_t *v, uint32_t vlen, sop_store *s)
{
    if (vlen < ENTRY_FIXED || v[0] != 1 || v[2] > SOP_ORDER_CUSTOM)
        return SOP_ECORRUPT;
    size_t cl = sop__get16(v + 32);
    if (ENTRY_FIXED + cl != vlen)
        return SOP_ECORRUPT;
    s->unique = v[1] != 0;
    s->order = (sop_key_order)v[2];
    s->node_bytes = sop__get32(v + 4);
    s->inline_max = sop__get32(v + 8);
    s->chunk_bytes = sop__get32(v + 12);
    s->root = sop__get64(v + 16);
    s->counter_id = sop__get64(v + 24);
    if (s->node_bytes < 1024 || s->node_bytes > 65536 || !s->root || !s->counter_id)
        return SOP_ECORRUPT;
    if (s->chunk_bytes && (s->chunk_bytes < SOP_STREAM_CHUNK_MIN || s->chunk_bytes > SOP_VALUE_MAX ||
                           !s->unique || s->order != SOP_ORDER_BYTES))
        return SOP_ECORRUPT;
    if (cl) {
        s->cmpname = sop__malloc(cl + 1);
        if (!s->cmpname)
            return -ENOMEM;
        memcpy(s->cmpname, v + ENTRY_FIXED, cl);
        s->cmpname[cl] = 0;
    }
    return 0;
}

static int bind_comparator(sop_store *s)
{
    sop_db *db = s->txn->db;
    if (s->order != SOP_ORDER_CUSTOM)
        return 0;
    pthread_mutex_lock(&db->mu);
    for (sop__cmpreg *c = db->cmps; c; c = c->next)
        if (s->cmpname && !strcmp(c->name, s->cmpname)) {
            s->ucmp = c->fn;
            s->uctx = c->ctx;
        }
    pthread_mutex_unlock(&db->mu);
    if (!s->ucmp)
        return sop__err(db, SOP_ENOCMP, "store %s needs comparator \"%s\"; register it with "
                        "sop_db_set_comparator()", s->name, s->cmpname ? s->cmpname : "");
    return 0;
}

static void store_tree_init(sop_store *s)
{
    sop__txn_tree_init(s->txn, &s->tree, s->root, s->node_bytes);
    if (!s->unique || s->ucmp) {
        s->tree.cmp = sop__store_cmp;
        s->tree.cmp_ctx = s;
    }
}

static sop_store *find_open(sop_txn *txn, const char *name)
{
    for (sop_store *s = txn->stores; s; s = s->next)
        if (!s->dropped && !strcmp(s->name, name))
            return s;
    return NULL;
}

static sop_store *store_alloc(sop_txn *txn, const char *name)
{
    sop_store *s = sop__calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->name = sop__strdup(name);
    if (!s->name) {
        sop__free(s);
        return NULL;
    }
    s->txn = txn;
    return s;
}

static void store_discard(sop_store *s)
{
    sop__free(s->name);
    sop__free(s->cmpname);
    sop__free(s);
}

int sop_store_create(sop_txn *txn, const char *name, const sop_store_options *opts,
                     sop_store **storep)
{
    if (storep)
        *storep = NULL;
    int rc = sop__txn_check(txn, 1);
    if (rc)
        return rc;
    sop_db *db = txn->db;
    txn->no_merge = 1; /* a merge replays item operations only */
    if (!sop__valid_name(name, SOP_STORE_NAME_MAX))
        return sop__err(db, SOP_ENAME, "invalid store name (1..%d of A-Z a-z 0-9 _ . -, not starting with '.')",
                        SOP_STORE_NAME_MAX);
    sop_store_options o;
    if (opts) {
        if (opts->struct_size < sizeof o)
            return sop__err(db, -EINVAL, "sop_store_options.struct_size is wrong");
        o = *opts;
    } else {
        sop_store_options_init(&o);
    }
    if (!o.node_bytes)
        o.node_bytes = 4096;
    if (o.node_bytes < 1024 || o.node_bytes > 65536 || o.order > SOP_ORDER_CUSTOM ||
        (o.order == SOP_ORDER_CUSTOM && (!o.comparator || !*o.comparator || strlen(o.comparator) > 255)))
        return sop__err(db, -EINVAL, "invalid store options");
    if (!o.inline_max || o.inline_max > o.node_bytes / 4)
        o.inline_max = o.node_bytes / 4;
    if (o.chunk_bytes && (o.chunk_bytes < SOP_STREAM_CHUNK_MIN || o.chunk_bytes > SOP_VALUE_MAX ||
                          !o.unique || o.order != SOP_ORDER_BYTES))
        return sop__err(db, -EINVAL, "a streaming store has unique keys in bytes order and "
                        "chunks of %u..%u bytes", SOP_STREAM_CHUNK_MIN, SOP_VALUE_MAX);
    sop_store *s = store_alloc(txn, name);
    if (!s)
        return -ENOMEM;
    s->unique = o.unique != 0;
    s->order = o.order;
    s->node_bytes = o.node_bytes;
    s->inline_max = o.inline_max;
    s->chunk_bytes = o.chunk_bytes;
    if (o.order == SOP_ORDER_CUSTOM && !(s->cmpname = sop__strdup(o.comparator))) {
        store_discard(s);
        return -ENOMEM;
    }
    rc = bind_comparator(s);
    if (rc) {
        store_discard(s);
        return rc;
    }
    sop__tree cat;
    sop__catalog_tree(txn, &cat);
    sop__bcur c = {.t = &cat};
    rc = sop__bt_seek(&c, name, strlen(name), SOP__SEEK_EQ);
    if (rc == 0)
        rc = sop__err(db, SOP_EEXISTS, "store %s already exists", name);
    else if (rc == SOP_ENOTFOUND)
        rc = 0;
    if (!rc) {
        store_tree_init(s);
        rc = sop__bt_create(&s->tree, &s->root);
    }
    if (!rc)
        rc = sop__txn_new_id(txn, &s->counter_id);
    if (!rc && !sop__txn_counter(txn, s->counter_id, 1))
        rc = -ENOMEM;
    if (!rc) {
        uint8_t ent[ENTRY_FIXED + 256];
        size_t elen;
        entry_encode(s, ent, &elen);
        rc = sop__bt_insert(&cat, name, strlen(name), ent, elen, SOP__V_INLINE);
    }
    if (rc) {
        store_discard(s);
        return sop__txn_fail(txn, rc);
    }
    store_tree_init(s);
    s->next = txn->stores;
    txn->stores = s;
    txn->gen++;
    if (storep)
        *storep = s;
    return 0;
}

int sop_store_open(sop_txn *txn, const char *name, sop_store **storep)
{
    if (!storep)
        return -EINVAL;
    *storep = NULL;
    int rc = sop__txn_check(txn, 0);
    if (rc)
        return rc;
    sop_db *db = txn->db;
    if (!sop__valid_name(name, SOP_STORE_NAME_MAX))
        return sop__err(db, SOP_ENAME, "invalid store name");
    sop_store *s = find_open(txn, name);
    if (s) {
        *storep = s;
        return 0;
    }
    sop__tree cat;
    sop__catalog_tree(txn, &cat);
    sop__bcur c = {.t = &cat};
    rc = sop__bt_seek(&c, name, strlen(name), SOP__SEEK_EQ);
    if (rc == SOP_ENOTFOUND)
        return sop__err(db, rc, "store %s does not exist", name);
    if (rc)
        return sop__txn_fail(txn, rc);
    const uint8_t *k, *v;
    uint32_t klen, vlen;
    uint8_t vf;
    sop__bt_item(&c, &k, &klen, &v, &vlen, &vf);
    s = store_alloc(txn, name);
    if (!s)
        return -ENOMEM;
    rc = sop__store_decode_entry(v, vlen, s);
    if (rc == SOP_ECORRUPT)
        rc = sop__err(db, rc, "catalog entry of store %s is corrupt", name);
    if (!rc)
        rc = bind_comparator(s);
    if (rc) {
        store_discard(s);
        return rc;
    }
    store_tree_init(s);
    s->next = txn->stores;
    txn->stores = s;
    *storep = s;
    return 0;
}

struct drop_ctx {
    sop_txn *txn;
    uint64_t *ids;
    size_t n, cap;
    int rc;
};

static int collect(void *arg, const sop__node *n, int level)
{
    (void)level;
    struct drop_ctx *d = arg;
    uint64_t *a = sop__grow(d->ids, &d->cap, d->n + 1 + (n->leaf ? n->n : 0), sizeof *a, 64);
    if (!a)
        return -ENOMEM;
    d->ids = a;
    d->ids[d->n++] = n->id << 1;
    if (n->leaf)
        for (uint32_t i = 0; i < n->n; i++)
            if (n->slot[i].vflags == SOP__V_BLOB && n->slot[i].vlen == SOP__BLOBREF_SIZE)
                d->ids[d->n++] = (sop__get64(n->heap + n->slot[i].voff) << 1) | 1;
    return 0;
}

int sop_store_remove(sop_txn *txn, const char *name)
{
    int rc = sop__txn_check(txn, 1);
    if (rc)
        return rc;
    sop_store *s;
    rc = sop_store_open(txn, name, &s);
    if (rc)
        return rc;
    txn->no_merge = 1;
    struct drop_ctx d = {txn, NULL, 0, 0, 0};
    rc = sop__bt_walk(&s->tree, collect, &d);
    for (size_t i = 0; !rc && i < d.n; i++)
        rc = (d.ids[i] & 1) ? sop__txn_drop_blob(txn, d.ids[i] >> 1)
                            : s->tree.drop(txn, d.ids[i] >> 1);
    sop__free(d.ids);
    if (!rc) {
        sop__counter *c = sop__txn_counter(txn, s->counter_id, 0);
        uint64_t v;
        if (!c)
            rc = -ENOMEM;
        else if ((rc = sop__txn_counter_value(txn, c, &v)) == 0 && c->base_version)
            rc = sop__txn_drop_id(txn, s->counter_id);
        if (c)
            c->dropped = 1;
    }
    if (!rc) {
        sop__tree cat;
        sop__catalog_tree(txn, &cat);
        rc = sop__bt_delete(&cat, name, strlen(name), NULL);
    }
    if (rc)
        return sop__txn_fail(txn, rc);
    s->dropped = 1;
    txn->gen++;
    return 0;
}

/* The catalog's entries in order. An entry whose key is not a valid store
 * name (a damaged catalog: no store is created so) is SOP_ECORRUPT, or
 * with @lenient reaches @fn as "" (the integrity check reports it). */
static int list(sop_txn *txn, int (*fn)(const char *name, void *ctx), void *ctx, int lenient)
{
    int rc = sop__txn_check(txn, 0);
    if (rc)
        return rc;
    if (!fn)
        return -EINVAL;
    txn->no_merge = 1;
    sop__tree cat;
    sop__catalog_tree(txn, &cat);
    sop__bcur c = {.t = &cat};
    char name[SOP_STORE_NAME_MAX + 1];
    for (rc = sop__bt_first(&c); rc == 0; rc = sop__bt_next(&c)) {
        const uint8_t *k, *v;
        uint32_t klen, vlen;
        uint8_t vf;
        sop__bt_item(&c, &k, &klen, &v, &vlen, &vf);
        int ok = klen <= SOP_STORE_NAME_MAX;
        if (ok) {
            memcpy(name, k, klen);
            name[klen] = 0;
            ok = strlen(name) == klen && sop__valid_name(name, SOP_STORE_NAME_MAX);
        }
        if (!ok && !lenient)
            return sop__txn_fail(txn, sop__err(txn->db, SOP_ECORRUPT,
                                               "catalog: an entry whose key is not a store name"));
        int r = fn(ok ? name : "", ctx);
        if (r)
            return r;
    }
    return rc == SOP_ENOTFOUND ? 0 : sop__txn_fail(txn, rc);
}

int sop_store_list(sop_txn *txn, int (*fn)(const char *name, void *ctx), void *ctx)
{
    return list(txn, fn, ctx, 0);
}

int sop__store_list_all(sop_txn *txn, int (*fn)(const char *name, void *ctx), void *ctx)
{
    return list(txn, fn, ctx, 1);
}

static int store_check(sop_store *s, int write)
{
    if (!s)
        return -EINVAL;
    int rc = sop__txn_check(s->txn, write);
    if (rc)
        return rc;
    if (s->dropped)
        return sop__err(s->txn->db, SOP_ENOTFOUND, "store %s was removed", s->name);
    return 0;
}

int sop_store_count(sop_store *s, uint64_t *count)
{
    int rc = store_check(s, 0);
    if (rc)
        return rc;
    if (!count)
        return -EINVAL;
    s->txn->no_merge = 1;
    sop__counter *c = sop__txn_counter(s->txn, s->counter_id, 0);
    if (!c)
        return -ENOMEM;
    rc = sop__txn_counter_value(s->txn, c, count);
    if (rc)
        return sop__txn_fail(s->txn, rc);
    c->read = 1;
    return 0;
}

int sop_store_get_options(sop_store *s, sop_store_options *o)
{
    if (!s || !o)
        return -EINVAL;
    sop_store_options_init(o);
    o->unique = s->unique;
    o->order = s->order;
    o->comparator = s->cmpname;
    o->node_bytes = s->node_bytes;
    o->inline_max = s->inline_max;
    o->chunk_bytes = s->chunk_bytes;
    return 0;
}

/* ------------------------------------------------------------------ */
/* Items                                                              */
/* ------------------------------------------------------------------ */

static int count_add(sop_store *s, int64_t d)
{
    sop__counter *c = sop__txn_counter(s->txn, s->counter_id, 0);
    if (!c)
        return -ENOMEM;
    if (!c->loaded) {
        uint64_t v;
        int rc = sop__txn_counter_value(s->txn, c, &v);
        if (rc)
            return rc;
    }
    c->delta += d;
    return 0;
}

int sop__value_prepare(sop_store *s, const sop_val *val, uint8_t ref[SOP__BLOBREF_SIZE],
                       const void **data, size_t *len, uint8_t *vflags)
{
    if (!val || (!val->data && val->size))
        return sop__err(s->txn->db, -EINVAL, "NULL value");
    if (val->size > SOP_VALUE_MAX)
        return sop__err(s->txn->db, SOP_ETOOBIG, "value of %zu bytes exceeds %u", val->size,
                        SOP_VALUE_MAX);
    if (val->size <= s->inline_max) {
        *data = val->data;
        *len = val->size;
        *vflags = SOP__V_INLINE;
        return 0;
    }
    uint64_t id;
    /* the chunks of a streaming value go to the log at once: a transaction
     * never holds a whole streamed value in memory */
    int rc = s->chunk_bytes ? sop__txn_put_blob_early(s->txn, val->data, val->size, &id)
                            : sop__txn_put_blob(s->txn, val->data, val->size, &id);
    if (rc)
        return rc;
    sop__put64(ref, id);
    sop__put64(ref + 8, val->size);
    sop__put32(ref + 16, sop__crc32c(val->data, val->size, 0));
    sop__put32(ref + 20, 0);
    *data = ref;
    *len = SOP__BLOBREF_SIZE;
    *vflags = SOP__V_BLOB;
    return 0;
}

static int drop_old(sop_store *s, const sop__oldval *old)
{
    if (old->vflags != SOP__V_BLOB)
        return 0;
    return sop__txn_drop_blob(s->txn, sop__get64(old->ref));
}

/* Positions @c on the first item whose user key equals @key (dup stores)
 * or on the key (unique). Fills the internal key of that item. */
static int find_first(sop_store *s, const sop_val *key, sop__bcur *c, uint8_t *ik, size_t *iklen)
{
    size_t n;
    int rc = sop__key_encode(s, key, ik, &n);
    if (rc)
        return rc;
    c->t = &s->tree;
    if (s->unique) {
        *iklen = n;
        return sop__bt_seek(c, ik, n, SOP__SEEK_EQ);
    }
    memset(ik + n, 0, DUP_SUFFIX);
    rc = sop__bt_seek(c, ik, n + DUP_SUFFIX, SOP__SEEK_GE);
    if (rc)
        return rc;
    const uint8_t *k, *v;
    uint32_t klen, vlen;
    uint8_t vf;
    sop__bt_item(c, &k, &klen, &v, &vlen, &vf);
    if (klen < DUP_SUFFIX || sop__ukey_cmp(s, k, klen - DUP_SUFFIX, ik, n) != 0) {
        c->depth = 0;
        return SOP_ENOTFOUND;
    }
    memcpy(ik, k, klen);
    *iklen = klen;
    return 0;
}

static int insert(sop_store *s, const sop_val *key, const sop_val *val, int if_absent)
{
    uint8_t ik[IKEY_MAX];
    size_t n;
    int rc = sop__key_encode(s, key, ik, &n);
    if (rc)
        return rc;
    if (!s->unique && if_absent) {
        sop__bcur c;
        uint8_t tmp[IKEY_MAX];
        size_t tl;
        rc = find_first(s, key, &c, tmp, &tl);
        if (rc == 0)
            return SOP_EEXISTS;
        if (rc != SOP_ENOTFOUND)
            return rc;
    }
    uint8_t ref[SOP__BLOBREF_SIZE];
    const void *vd = NULL;
    size_t vl = 0;
    uint8_t vf = SOP__V_INLINE;
    rc = sop__value_prepare(s, val, ref, &vd, &vl, &vf);
    if (rc)
        return rc;
    if (s->unique) {
        rc = sop__bt_insert(&s->tree, ik, n, vd, vl, vf);
    } else {
        for (int tries = 0; tries < 64; tries++) {
            uint64_t seq;
            rc = sop__next_seq(s->txn->db, &seq);
            if (rc)
                break;
            sop__put64be(ik + n, seq);
            rc = sop__bt_insert(&s->tree, ik, n + DUP_SUFFIX, vd, vl, vf);
            if (rc != SOP_EEXISTS)
                break;
        }
    }
    if (rc == 0)
        rc = count_add(s, 1);
    if (rc && vf == SOP__V_BLOB)
        sop__txn_drop_blob(s->txn, sop__get64(ref));
    return rc;
}

/* The state of the item under @c for a merge (sop__val_state). */
static uint64_t item_state(const sop__bcur *c)
{
    const uint8_t *k, *v;
    uint32_t klen, vlen;
    uint8_t vf;
    sop__bt_item(c, &k, &klen, &v, &vlen, &vf);
    return sop__val_state(v, vlen, vf);
}

int sop__store_replace(sop_store *s, const uint8_t *ik, size_t n, const sop_val *val,
                       uint64_t *state)
{
    uint8_t ref[SOP__BLOBREF_SIZE];
    const void *vd = NULL;
    size_t vl = 0;
    uint8_t vf = SOP__V_INLINE;
    int rc = sop__value_prepare(s, val, ref, &vd, &vl, &vf);
    if (rc)
        return rc;
    sop__oldval old = {0};
    rc = sop__bt_update(&s->tree, ik, n, vd, vl, vf, &old);
    if (!rc) {
        if (state)
            *state = old.state;
        rc = drop_old(s, &old);
    } else if (vf == SOP__V_BLOB) {
        sop__txn_drop_blob(s->txn, sop__get64(ref));
    }
    return rc;
}

static int update(sop_store *s, const sop_val *key, const sop_val *val, uint64_t *state)
{
    uint8_t ik[IKEY_MAX];
    size_t n;
    int rc;
    if (s->unique) { /* one descent: the key is the item */
        rc = sop__key_encode(s, key, ik, &n);
    } else {          /* the first item with the key */
        sop__bcur c;
        rc = find_first(s, key, &c, ik, &n);
    }
    return rc ? rc : sop__store_replace(s, ik, n, val, state);
}

static int do_remove(sop_store *s, const sop_val *key, uint64_t *state)
{
    uint8_t ik[IKEY_MAX];
    size_t n;
    int rc;
    if (s->unique) {
        rc = sop__key_encode(s, key, ik, &n);
    } else {
        sop__bcur c;
        rc = find_first(s, key, &c, ik, &n);
    }
    sop__oldval old = {0};
    if (!rc)
        rc = sop__bt_delete(&s->tree, ik, n, &old);
    if (!rc) {
        *state = old.state;
        rc = drop_old(s, &old);
    }
    if (!rc)
        rc = count_add(s, -1);
    return rc;
}

static int do_get(sop_store *s, const sop_val *key, sop_val *val, uint64_t *state)
{
    sop__bcur c;
    uint8_t ik[IKEY_MAX];
    size_t n;
    int rc = find_first(s, key, &c, ik, &n);
    if (rc == 0) {
        *state = item_state(&c);
        const uint8_t *k, *v;
        uint32_t klen, vlen;
        uint8_t vf;
        sop__bt_item(&c, &k, &klen, &v, &vlen, &vf);
        rc = sop__value_get(s, v, vlen, vf, val);
    }
    return rc;
}

/* Adds @delta to the counter at @key (absent = 0; removed at 0). */
static int incr(sop_store *s, const sop_val *key, int64_t delta, int64_t *result)
{
    sop__bcur c;
    uint8_t ik[IKEY_MAX];
    size_t n = 0;
    int64_t cur = 0, sum;
    int rc = find_first(s, key, &c, ik, &n);
    if (rc && rc != SOP_ENOTFOUND)
        return rc;
    int found = rc == 0;
    if (found) {
        const uint8_t *k, *v;
        uint32_t klen, vlen;
        uint8_t vf;
        sop_val val;
        sop__bt_item(&c, &k, &klen, &v, &vlen, &vf);
        if ((rc = sop__value_get(s, v, vlen, vf, &val)) != 0)
            return rc;
        if (val.size != 8)
            return sop__err(s->txn->db, SOP_EFORMAT,
                            "the value at this key of store %s is %zu bytes, not a counter",
                            s->name, val.size);
        memcpy(&cur, val.data, 8);
    }
    if (__builtin_add_overflow(cur, delta, &sum))
        return sop__err(s->txn->db, -EOVERFLOW, "counter of store %s would overflow", s->name);
    if (result)
        *result = sum;
    sop_val nv = {&sum, 8};
    uint64_t st;
    if (sum == 0)
        return found ? do_remove(s, key, &st) : 0;
    return found ? sop__store_replace(s, ik, n, &nv, NULL) : insert(s, key, &nv, 0);
}

int sop__item_op(sop_store *s, int kind, const sop_val *key, const sop_val *val, sop_val *out,
                 uint64_t *state)
{
    int rc;
    *state = 0;
    switch (kind) {
    case SOP__OP_ADD:
        return insert(s, key, val, 0);
    case SOP__OP_ADD_IF_ABSENT:
        return insert(s, key, val, 1);
    case SOP__OP_UPDATE:
        return update(s, key, val, state);
    case SOP__OP_UPSERT:
        if (s->unique) { /* new keys need one descent, existing ones two */
            rc = insert(s, key, val, 0);
            return rc == SOP_EEXISTS ? update(s, key, val, state) : rc;
        }
        rc = update(s, key, val, state);
        return rc == SOP_ENOTFOUND ? insert(s, key, val, 0) : rc;
    case SOP__OP_REMOVE:
        return do_remove(s, key, state);
    case SOP__OP_GET:
        return do_get(s, key, out, state);
    case SOP__OP_INCR: {
        int64_t d;
        if (!val || val->size != 8)
            return -EINVAL;
        memcpy(&d, val->data, 8);
        return incr(s, key, d, NULL);
    }
    default:
        return -EINVAL;
    }
}

/* The items of a streaming store are written through sop_stream only: the
 * chunks of a value must stay whole, and a merge, which replays logged item
 * operations under the commit lock, must never meet one (an early write
 * takes that lock). */
static int stream_item_write(sop_store *s)
{
    return sop__err(s->txn->db, -EINVAL, "store %s is a streaming store: write its values "
                    "with sop_stream_*", s->name);
}

/* Runs an item operation for the caller: checks, runs, records it for a
 * merge at commit, reports. */
static int item(sop_store *s, int kind, const sop_val *key, const sop_val *val, sop_val *out)
{
    int write = kind != SOP__OP_GET;
    int rc = store_check(s, write);
    if (rc)
        return rc;
    if (!write && !out)
        return -EINVAL;
    if (write && s->chunk_bytes)
        return stream_item_write(s);
    uint64_t state;
    rc = sop__item_op(s, kind, key, val, out, &state);
    if (rc == 0 || rc == SOP_EEXISTS || rc == SOP_ENOTFOUND)
        sop__txn_log_op(s->txn, s, kind, key, val, rc, state);
    if (rc == 0) {
        if (write)
            s->txn->gen++;
        return 0;
    }
    if (rc == SOP_EEXISTS && kind == SOP__OP_ADD)
        return sop__err(s->txn->db, rc, "key exists in store %s", s->name);
    if (rc == SOP_ENOTFOUND && write)
        return sop__err(s->txn->db, rc, "key not found in store %s", s->name);
    if (rc == SOP_EEXISTS || rc == SOP_ENOTFOUND)
        return rc;
    return sop__txn_fail(s->txn, rc);
}

int sop_add(sop_store *s, const sop_val *key, const sop_val *val)
{
    return item(s, SOP__OP_ADD, key, val, NULL);
}

int sop_add_if_absent(sop_store *s, const sop_val *key, const sop_val *val)
{
    return item(s, SOP__OP_ADD_IF_ABSENT, key, val, NULL);
}

int sop_update(sop_store *s, const sop_val *key, const sop_val *val)
{
    return item(s, SOP__OP_UPDATE, key, val, NULL);
}

int sop_upsert(sop_store *s, const sop_val *key, const sop_val *val)
{
    return item(s, SOP__OP_UPSERT, key, val, NULL);
}

int sop_remove(sop_store *s, const sop_val *key)
{
    return item(s, SOP__OP_REMOVE, key, NULL, NULL);
}

int sop_incr(sop_store *s, const sop_val *key, int64_t delta, int64_t *result)
{
    int rc = store_check(s, 1);
    if (rc)
        return rc;
    if (!key)
        return -EINVAL;
    if (!s->unique)
        return sop__err(s->txn->db, -EINVAL, "store %s has duplicates: no counters", s->name);
    if (s->chunk_bytes)
        return stream_item_write(s);
    int64_t sum;
    rc = incr(s, key, delta, &sum);
    if (rc == 0) {
        sop_val d = {&delta, 8};
        sop__txn_log_op(s->txn, s, SOP__OP_INCR, key, &d, 0, 0);
        s->txn->gen++;
        if (result)
            *result = sum;
        return 0;
    }
    if (rc == SOP_EFORMAT || rc == -EOVERFLOW || rc == -EINVAL || rc == SOP_ETOOBIG)
        return rc; /* nothing changed: the transaction goes on */
    return sop__txn_fail(s->txn, rc);
}

int sop_get(sop_store *s, const sop_val *key, sop_val *val)
{
    return item(s, SOP__OP_GET, key, NULL, val);
}

int sop_get_copy(sop_store *s, const sop_val *key, void *buf, size_t cap, size_t *len)
{
    sop_val v;
    int rc = sop_get(s, key, &v);
    if (rc)
        return rc;
    if (len)
        *len = v.size;
    if (buf && cap)
        memcpy(buf, v.data, v.size < cap ? v.size : cap);
    return 0;
}
