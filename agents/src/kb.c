/* kb.c - knowledge bases (agent.h): a record store, a vector store and a
 * text index under one name, written in the caller's transaction.
 *
 * "<name>.kb" maps an id to its record, a little-endian u32 text length,
 * the text, then the metadata JSON (absent when nothing follows). The key
 * "\0config" (no record id starts with a NUL byte) holds the base's
 * configuration, {"embedder": name, "dim": n, "complete": bool}. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "internal.h"
#include "kb.h"
#include "mem.h"
#include "sop/search.h"
#include "sop/vector.h"

static const char KB_CONFIG_KEY[] = "\0config";
#define KB_CONFIG_KEY_LEN (sizeof KB_CONFIG_KEY - 1)

struct sop_kb {
    sop__txn_ext ext; /* first: freed with the transaction */
    sop_txn *txn;
    sop_store *recs;
    sop_vstore *vs;
    sop_text *tx;
    char name[SOP_KB_NAME_MAX + 1];
    char embedder[256];
    uint32_t dim;
    char *buf; /* strings handed out (get, search) */
    size_t cap;
    float *vec; /* dim floats: a query's or a record's vector */
    float *tmp; /* dim floats */
};

static void kb_free(sop__txn_ext *e)
{
    sop_kb *kb = (sop_kb *)e;
    sop__free(kb->buf);
    sop__free(kb->vec);
    sop__free(kb->tmp);
    sop__free(kb);
}

static int kb_names(const char *name, char recs[], char vec[], char txt[])
{
    if (!name || !*name)
        return -EINVAL;
    size_t n = strlen(name);
    if (n > SOP_KB_NAME_MAX)
        return SOP_ENAME;
    snprintf(recs, SOP_KB_NAME_MAX + 8, "%s.kb", name);
    snprintf(vec, SOP_KB_NAME_MAX + 8, "%s.kb.vec", name);
    snprintf(txt, SOP_KB_NAME_MAX + 8, "%s.kb.txt", name);
    return 0;
}

static int grow(char **buf, size_t *cap, size_t need)
{
    if (need <= *cap)
        return 0;
    size_t c = *cap ? *cap : 4096;
    while (c < need)
        c *= 2;
    char *p = sop__realloc(*buf, c);
    if (!p)
        return -ENOMEM;
    *buf = p;
    *cap = c;
    return 0;
}

/* ---- configuration ---- */

int kb_config_write(sop_kb *kb, int complete)
{
    char v[400];
    cJSON *o = cJSON_CreateObject();
    if (!o || !cJSON_AddStringToObject(o, "embedder", kb->embedder) ||
        !cJSON_AddNumberToObject(o, "dim", kb->dim) ||
        !cJSON_AddBoolToObject(o, "complete", complete) ||
        !cJSON_PrintPreallocated(o, v, sizeof v, 0)) {
        cJSON_Delete(o);
        return -ENOMEM;
    }
    cJSON_Delete(o);
    sop_val key = {KB_CONFIG_KEY, KB_CONFIG_KEY_LEN}, val = {v, strlen(v)};
    return sop_upsert(kb->recs, &key, &val);
}

/* Reads the configuration: 0, or SOP_ECORRUPT. *complete may be NULL. */
static int kb_config_read(sop_kb *kb, int *complete)
{
    sop_val key = {KB_CONFIG_KEY, KB_CONFIG_KEY_LEN}, val;
    int rc = sop_get(kb->recs, &key, &val);
    if (rc)
        return rc == SOP_ENOTFOUND ? SOP_ECORRUPT : rc;
    cJSON *o = cJSON_ParseWithLength(val.data, val.size);
    cJSON *e = cJSON_GetObjectItemCaseSensitive(o, "embedder");
    cJSON *d = cJSON_GetObjectItemCaseSensitive(o, "dim");
    cJSON *c = cJSON_GetObjectItemCaseSensitive(o, "complete");
    rc = SOP_ECORRUPT;
    if (cJSON_IsString(e) && strlen(e->valuestring) < sizeof kb->embedder && cJSON_IsNumber(d) &&
        d->valuedouble >= 1 && d->valuedouble <= SOP_VECTOR_DIMS_MAX && cJSON_IsBool(c)) {
        snprintf(kb->embedder, sizeof kb->embedder, "%s", e->valuestring);
        kb->dim = (uint32_t)d->valuedouble;
        if (complete)
            *complete = cJSON_IsTrue(c);
        rc = 0;
    }
    cJSON_Delete(o);
    return rc;
}

/* ---- open, create, remove ---- */

static int kb_new(sop_txn *txn, const char *name, sop_kb **out)
{
    sop_kb *kb = sop__calloc(1, sizeof *kb);
    if (!kb)
        return -ENOMEM;
    kb->ext.free = kb_free;
    kb->txn = txn;
    snprintf(kb->name, sizeof kb->name, "%s", name);
    sop__txn_attach(txn, &kb->ext);
    *out = kb;
    return 0;
}

static int kb_alloc_vectors(sop_kb *kb)
{
    kb->vec = sop__calloc(kb->dim, sizeof(float));
    kb->tmp = sop__calloc(kb->dim, sizeof(float));
    return kb->vec && kb->tmp ? 0 : -ENOMEM;
}

int sop_kb_create(sop_txn *txn, const char *name, const char *embedder, uint32_t dim,
                  sop_kb **out)
{
    char rn[SOP_KB_NAME_MAX + 8], vn[SOP_KB_NAME_MAX + 8], tn[SOP_KB_NAME_MAX + 8];
    if (!txn || !out || !embedder || !*embedder || strlen(embedder) > 255 || dim == 0 ||
        dim > SOP_VECTOR_DIMS_MAX)
        return -EINVAL;
    *out = NULL;
    int rc = kb_names(name, rn, vn, tn);
    if (rc)
        return rc;
    sop_kb *kb;
    if ((rc = kb_new(txn, name, &kb)))
        return rc;
    snprintf(kb->embedder, sizeof kb->embedder, "%s", embedder);
    kb->dim = dim;
    sop_vstore_options vo;
    sop_vstore_options_init(&vo);
    vo.dims = dim;
    vo.embedder = embedder;
    if ((rc = kb_alloc_vectors(kb)) || (rc = sop_store_create(txn, rn, NULL, &kb->recs)) ||
        (rc = sop_vstore_create(txn, vn, &vo, &kb->vs)) ||
        (rc = sop_text_create(txn, tn, NULL, &kb->tx)) || (rc = kb_config_write(kb, 0)))
        return rc;
    *out = kb;
    return 0;
}

int sop_kb_open(sop_txn *txn, const char *name, sop_kb **out)
{
    char rn[SOP_KB_NAME_MAX + 8], vn[SOP_KB_NAME_MAX + 8], tn[SOP_KB_NAME_MAX + 8];
    if (!txn || !out)
        return -EINVAL;
    *out = NULL;
    int rc = kb_names(name, rn, vn, tn);
    if (rc)
        return rc;
    sop_kb *kb;
    if ((rc = kb_new(txn, name, &kb)) || (rc = sop_store_open(txn, rn, &kb->recs)) ||
        (rc = sop_vstore_open(txn, vn, &kb->vs)) || (rc = sop_text_open(txn, tn, &kb->tx)) ||
        (rc = kb_config_read(kb, NULL)) || (rc = kb_alloc_vectors(kb)))
        return rc;
    /* the vector store keeps its own record of the identity: they agree */
    if ((rc = sop_vstore_bind_embedder(kb->vs, kb->embedder, kb->dim)))
        return rc == SOP_EMISMATCH ? SOP_ECORRUPT : rc;
    *out = kb;
    return 0;
}

int sop_kb_remove(sop_txn *txn, const char *name)
{
    char rn[SOP_KB_NAME_MAX + 8], vn[SOP_KB_NAME_MAX + 8], tn[SOP_KB_NAME_MAX + 8];
    if (!txn)
        return -EINVAL;
    int rc = kb_names(name, rn, vn, tn);
    if (rc)
        return rc;
    int found = 0;
    if (!(rc = sop_store_remove(txn, rn)))
        found = 1;
    else if (rc != SOP_ENOTFOUND)
        return rc;
    if (!(rc = sop_vstore_remove(txn, vn)))
        found = 1;
    else if (rc != SOP_ENOTFOUND)
        return rc;
    if (!(rc = sop_text_remove(txn, tn)))
        found = 1;
    else if (rc != SOP_ENOTFOUND)
        return rc;
    return found ? 0 : SOP_ENOTFOUND;
}

int sop_kb_complete(sop_txn *txn, const char *name)
{
    char rn[SOP_KB_NAME_MAX + 8], vn[SOP_KB_NAME_MAX + 8], tn[SOP_KB_NAME_MAX + 8];
    if (!txn)
        return -EINVAL;
    int rc = kb_names(name, rn, vn, tn);
    if (rc)
        return rc;
    sop_kb *kb;
    rc = sop_kb_open(txn, name, &kb);
    if (rc == SOP_ENOTFOUND || rc == SOP_ECORRUPT)
        return 0;
    int complete = 0;
    if (!rc)
        rc = kb_config_read(kb, &complete);
    return rc ? rc : complete;
}

void sop_kb_embedder(const sop_kb *kb, const char **name, uint32_t *dim)
{
    if (name)
        *name = kb ? kb->embedder : "";
    if (dim)
        *dim = kb ? kb->dim : 0;
}

const char *kb_name(const sop_kb *kb) { return kb->name; }

/* ---- records ---- */

static int check_embedder(const sop_kb *kb, const sop_embedder *e)
{
    if (strcmp(sop_embedder_name(e), kb->embedder) || sop_embedder_dim(e) != kb->dim)
        return SOP_EMISMATCH;
    return 0;
}

static int valid_id(const char *id)
{
    size_t n = id ? strlen(id) : 0;
    return n >= 1 && n <= SOP_KB_ID_MAX;
}

static int valid_metadata(const char *m)
{
    if (!m)
        return 1;
    cJSON *o = cJSON_Parse(m);
    int ok = cJSON_IsObject(o);
    cJSON_Delete(o);
    return ok;
}

static int is_zero(const float *v, uint32_t dim)
{
    for (uint32_t i = 0; i < dim; i++)
        if (v[i] != 0.0f)
            return 0;
    return 1;
}

/* Records sorted by id, then position: the last of each id wins. */
typedef struct kb_slot {
    const char *id;
    size_t pos;
    size_t vec; /* index of its computed vector */
} kb_slot;

static int by_id_pos(const void *a, const void *b)
{
    const kb_slot *x = a, *y = b;
    int c = strcmp(x->id, y->id);
    return c ? c : (x->pos < y->pos ? -1 : x->pos > y->pos);
}

static int put_one(sop_kb *kb, const sop_kb_record *r, char **buf, size_t *cap)
{
    size_t tl = strlen(r->text), ml = r->metadata ? strlen(r->metadata) : 0;
    if (tl > UINT32_MAX)
        return SOP_ETOOBIG;
    int rc = grow(buf, cap, 4 + tl + ml);
    if (rc)
        return rc;
    uint8_t *p = (uint8_t *)*buf;
    p[0] = (uint8_t)tl, p[1] = (uint8_t)(tl >> 8), p[2] = (uint8_t)(tl >> 16),
    p[3] = (uint8_t)(tl >> 24);
    memcpy(p + 4, r->text, tl);
    if (ml)
        memcpy(p + 4 + tl, r->metadata, ml);
    sop_val key = {r->id, strlen(r->id)}, val = {p, 4 + tl + ml};
    if ((rc = sop_upsert(kb->recs, &key, &val)))
        return rc;
    sop_text_doc d = {.id = r->id, .id_len = key.size, .text = r->text, .text_len = tl};
    return sop_text_upsert(kb->tx, &d);
}

int sop_kb_put(sop_kb *kb, sop_embedder *e, const sop_kb_record *recs, size_t n)
{
    if (!kb || (n && !recs))
        return -EINVAL;
    size_t need = 0;
    for (size_t i = 0; i < n; i++) {
        if (!valid_id(recs[i].id) || !recs[i].text || !*recs[i].text ||
            !valid_metadata(recs[i].metadata))
            return -EINVAL;
        need += !recs[i].embedding;
    }
    if (need && !e)
        return SOP_EMISMATCH;
    if (e && check_embedder(kb, e))
        return SOP_EMISMATCH;
    if (!n)
        return 0;
    int rc = -ENOMEM;
    float *vecs = NULL;
    const char **texts = NULL;
    kb_slot *order = sop__malloc(n * sizeof *order);
    sop_vitem *items = sop__calloc(n, sizeof *items);
    char *buf = NULL;
    size_t cap = 0;
    if (!order || !items)
        goto out;
    if (need) {
        texts = sop__malloc(need * sizeof *texts);
        vecs = sop__malloc(need * kb->dim * sizeof *vecs);
        if (!texts || !vecs)
            goto out;
    }
    for (size_t i = 0, j = 0; i < n; i++) {
        order[i] = (kb_slot){recs[i].id, i, j};
        if (!recs[i].embedding)
            texts[j++] = recs[i].text;
    }
    if (need && (rc = sop_embedder_embed(e, texts, need, vecs)))
        goto out;
    qsort(order, n, sizeof *order, by_id_pos);
    size_t nitems = 0;
    for (size_t oi = 0; oi < n; oi++) {
        if (oi + 1 < n && !strcmp(order[oi].id, order[oi + 1].id))
            continue; /* a later record has this id */
        const sop_kb_record *r = &recs[order[oi].pos];
        const float *v = r->embedding ? r->embedding : vecs + order[oi].vec * kb->dim;
        if ((rc = put_one(kb, r, &buf, &cap)))
            goto out;
        if (is_zero(v, kb->dim)) {
            rc = sop_vstore_delete(kb->vs, r->id, strlen(r->id));
            if (rc && rc != SOP_ENOTFOUND)
                goto out;
            continue;
        }
        items[nitems++] = (sop_vitem){.id = r->id, .id_len = strlen(r->id), .vec = v,
                                      .dims = kb->dim};
    }
    rc = sop_vstore_upsert_batch(kb->vs, items, nitems);
out:
    sop__free(order);
    sop__free(items);
    sop__free(texts);
    sop__free(vecs);
    sop__free(buf);
    return rc;
}

/* Decodes a record value into kb->buf at @off: "text\0metadata\0". */
static int decode(sop_kb *kb, const sop_val *v, size_t off, size_t *text, size_t *meta, size_t *end)
{
    const uint8_t *p = v->data;
    if (v->size < 4)
        return SOP_ECORRUPT;
    size_t tl = (size_t)p[0] | (size_t)p[1] << 8 | (size_t)p[2] << 16 | (size_t)p[3] << 24;
    if (tl > v->size - 4)
        return SOP_ECORRUPT;
    size_t ml = v->size - 4 - tl;
    int rc = grow(&kb->buf, &kb->cap, off + tl + ml + 2);
    if (rc)
        return rc;
    memcpy(kb->buf + off, p + 4, tl);
    kb->buf[off + tl] = 0;
    *text = off;
    *meta = ml ? off + tl + 1 : SIZE_MAX;
    memcpy(kb->buf + off + tl + 1, p + 4 + tl, ml);
    kb->buf[off + tl + 1 + ml] = 0;
    *end = off + tl + ml + 2;
    return 0;
}

int sop_kb_get(sop_kb *kb, const char *id, sop_kb_record *out)
{
    if (!kb || !out || !valid_id(id))
        return -EINVAL;
    sop_val key = {id, strlen(id)}, v;
    int rc = sop_get(kb->recs, &key, &v);
    if (rc)
        return rc;
    size_t t, m, end, idoff;
    if ((rc = decode(kb, &v, 0, &t, &m, &end)))
        return rc;
    idoff = end;
    if ((rc = grow(&kb->buf, &kb->cap, end + key.size + 1)))
        return rc;
    memcpy(kb->buf + idoff, id, key.size + 1);
    *out = (sop_kb_record){.id = kb->buf + idoff, .text = kb->buf + t,
                           .metadata = m == SIZE_MAX ? NULL : kb->buf + m};
    return 0;
}

int sop_kb_delete(sop_kb *kb, const char *id)
{
    if (!kb || !valid_id(id))
        return -EINVAL;
    sop_val key = {id, strlen(id)};
    int rc = sop_remove(kb->recs, &key);
    if (rc)
        return rc;
    if ((rc = sop_text_delete(kb->tx, id, key.size)) && rc != SOP_ENOTFOUND)
        return rc;
    if ((rc = sop_vstore_delete(kb->vs, id, key.size)) && rc != SOP_ENOTFOUND)
        return rc;
    return 0;
}

int sop_kb_count(sop_kb *kb, uint64_t *count)
{
    if (!kb || !count)
        return -EINVAL;
    uint64_t n;
    int rc = sop_store_count(kb->recs, &n);
    if (rc)
        return rc;
    *count = n ? n - 1 : 0; /* the configuration */
    return 0;
}

/* ---- search ---- */

int sop_kb_search(sop_kb *kb, sop_embedder *e, const char *query, uint32_t k, sop_kb_hit *hits,
                  uint32_t *nhits)
{
    if (!kb || !query || !hits || !nhits || k == 0 || k > 1000)
        return -EINVAL;
    *nhits = 0;
    int rc;
    int with_vec = 0;
    if (e) {
        if ((rc = check_embedder(kb, e)))
            return rc;
        if ((rc = sop_embedder_embed(e, &query, 1, kb->vec)))
            return rc;
        with_vec = !is_zero(kb->vec, kb->dim);
    }
    sop_hybrid_hit *hh = sop__malloc(k * sizeof *hh);
    size_t *offs = sop__malloc(k * 3 * sizeof *offs); /* id, text, metadata */
    if (!hh || !offs) {
        rc = -ENOMEM;
        goto out;
    }
    sop_hybrid_query q;
    sop_hybrid_query_init(&q);
    q.text = query;
    q.len = strlen(query);
    q.k = k;
    if (with_vec) {
        q.vec = kb->vec;
        q.dims = kb->dim;
    }
    uint32_t n = 0;
    if ((rc = sop_text_hybrid(kb->tx, with_vec ? kb->vs : NULL, &q, hh, &n)))
        goto out;
    size_t off = 0;
    for (uint32_t i = 0; i < n; i++) {
        sop_val v;
        sop_val key = hh[i].id;
        if ((rc = sop_get(kb->recs, &key, &v))) {
            if (rc == SOP_ENOTFOUND)
                rc = SOP_ECORRUPT; /* indexed but not stored */
            goto out;
        }
        size_t t, m, end;
        if ((rc = decode(kb, &v, off, &t, &m, &end)) ||
            (rc = grow(&kb->buf, &kb->cap, end + key.size + 1)))
            goto out;
        memcpy(kb->buf + end, key.data, key.size);
        kb->buf[end + key.size] = 0;
        offs[i * 3] = end, offs[i * 3 + 1] = t, offs[i * 3 + 2] = m;
        off = end + key.size + 1;
        double sim = 0;
        if (with_vec) {
            rc = sop_vstore_get(kb->vs, key.data, key.size, kb->tmp, NULL);
            if (!rc) {
                double aa = 0, bb = 0;
                for (uint32_t d = 0; d < kb->dim; d++) {
                    sim += (double)kb->vec[d] * kb->tmp[d];
                    aa += (double)kb->vec[d] * kb->vec[d];
                    bb += (double)kb->tmp[d] * kb->tmp[d];
                }
                sim = aa > 0 && bb > 0 ? sim / sqrt(aa * bb) : 0;
            } else if (rc != SOP_ENOTFOUND) {
                goto out;
            }
            rc = 0;
        }
        hits[i] = (sop_kb_hit){.score = hh[i].score, .similarity = sim,
                               .text_rank = hh[i].text_rank, .vec_rank = hh[i].vec_rank};
    }
    for (uint32_t i = 0; i < n; i++) {
        hits[i].id = kb->buf + offs[i * 3];
        hits[i].text = kb->buf + offs[i * 3 + 1];
        hits[i].metadata = offs[i * 3 + 2] == SIZE_MAX ? NULL : kb->buf + offs[i * 3 + 2];
    }
    *nhits = n;
out:
    sop__free(hh);
    sop__free(offs);
    return rc;
}
