/* write.c - upserts, deletes and reads of single items. An item lives in
 * the content store (payload, and its place in each live index version)
 * and, per live version, under its index key and its lookup entry. While a
 * migration runs, writes go to both versions. */
#include <errno.h>
#include <string.h>

#include "err.h"
#include "mem.h"
#include "vstore.h"

/* Removes the index key of @slot in version @ver (it must be there). */
static int remove_ivf(sop_vstore *vs, const vs_ver *ver, const vl_slot *slot, const void *id,
                      size_t id_len)
{
    uint8_t key[VS_KEY_MAX];
    sop_val k = {key, vl_ivf_key(key, slot->cid, slot->dist, id, id_len)};
    int rc = sop_remove(ver->ivf, &k);
    if (rc == SOP_ENOTFOUND)
        return vs_err(vs, SOP_ECORRUPT, "index key of id '%.*s' missing in version %u",
                      (int)id_len, (const char *)id, ver->v);
    return rc;
}

static int put_lookup(const vs_ver *ver, uint64_t seq, const void *id, size_t id_len)
{
    uint8_t key[8];
    vl_lku_key(key, seq);
    sop_val k = {key, 8}, v = {id, id_len};
    return sop_upsert(ver->lku, &k, &v);
}

/* Writes @x (checked, normalised) as the vector of @id in every live
 * version, given where it was (@old, NULL when new). Fills @rec's slots;
 * *@fresh_seq is the sequence number the active version gave a new id
 * (UINT64_MAX when it had one). @assigned: per version, the cluster and
 * distance computed already (batch path), or NULL. @seqs: per version, the
 * next free sequence number (batch path: advanced here), or NULL. */
static int place(sop_vstore *vs, const void *id, size_t id_len, const float *x, vl_rec *old,
                 vl_rec *rec, const vl_slot *assigned, uint64_t *seqs, uint64_t *fresh_seq)
{
    int rc = 0;
    *fresh_seq = UINT64_MAX;
    rec->nslots = vs->nver;
    for (int i = 0; i < vs->nver && !rc; i++) {
        const vs_ver *ver = &vs->ver[i];
        vl_slot *os = old ? vl_rec_slot(old, ver->v) : NULL;
        if (os && !old->deleted && (rc = remove_ivf(vs, ver, os, id, id_len)))
            break;
        vl_slot *s = &rec->slot[i];
        s->ver = ver->v;
        if (assigned) {
            s->cid = assigned[i].cid;
            s->dist = assigned[i].dist;
        } else {
            vs_assign(vs, ver, x, &s->cid, &s->dist);
        }
        if (os) {
            s->seq = os->seq;
        } else {
            if (seqs)
                s->seq = seqs[i]++;
            else if ((rc = vs_next_seq(vs, ver, &s->seq)))
                break;
            if ((rc = put_lookup(ver, s->seq, id, id_len)))
                break;
            if (i == 0)
                *fresh_seq = s->seq;
        }
        uint8_t key[VS_KEY_MAX];
        sop_val k = {key, vl_ivf_key(key, s->cid, s->dist, id, id_len)};
        sop_val v = {x, (size_t)vs->cfg.dims * sizeof(float)};
        rc = sop_upsert(ver->ivf, &k, &v);
    }
    return rc;
}

/* Vector writes depend on what they read (the config names the versions
 * to write): a NOCHECK transaction, whose reads are not validated, could
 * miss a migration and leave an item out of the next version. */
static int check_writable(sop_vstore *vs)
{
    sop_txn_mode m = sop_txn_get_mode(vs->txn);
    if (m == SOP_TXN_READ)
        return vs_err(vs, SOP_EREADONLY, "write in a READ transaction");
    if (m == SOP_TXN_NOCHECK)
        return vs_err(vs, -EINVAL, "vector writes need a WRITE transaction, not NOCHECK");
    return 0;
}

static int check_item(sop_vstore *vs, const sop_vitem *it, float *x)
{
    if (!it)
        return vs_err(vs, -EINVAL, "no item");
    int rc = vs_check_id(vs, it->id, it->id_len);
    if (!rc && it->payload_len > SOP_VECTOR_PAYLOAD_MAX)
        rc = vs_err(vs, SOP_ETOOBIG, "payload of %zu bytes (at most %u)", it->payload_len,
                    SOP_VECTOR_PAYLOAD_MAX);
    if (!rc && it->payload_len && !it->payload)
        rc = vs_err(vs, -EINVAL, "payload_len without payload");
    if (!rc)
        rc = vs_check_vec(vs, it->vec, it->dims, x, "the item's vector");
    return rc;
}

/* Upserts one checked item; @assigned as for place(). */
static int upsert_checked(sop_vstore *vs, const sop_vitem *it, const float *x,
                          const vl_slot *assigned, uint64_t *seqs, int *train)
{
    vl_rec old, rec;
    memset(&rec, 0, sizeof rec);
    int rc = vs_get_rec(vs, it->id, it->id_len, &old);
    if (rc && rc != SOP_ENOTFOUND)
        return rc;
    /* the old payload points into engine memory that the writes below may
     * invalidate: nothing reads it */
    uint64_t fresh;
    rc = place(vs, it->id, it->id_len, x, rc ? NULL : &old, &rec, assigned, seqs, &fresh);
    if (rc)
        return rc;
    rec.payload = it->payload;
    rec.payload_len = it->payload_len;
    if ((rc = vs_put_rec(vs, it->id, it->id_len, &rec)))
        return rc;
    if (fresh != UINT64_MAX && vs->cfg.active == 0 && !vs->cfg.next &&
        vs->cfg.train_at != UINT32_MAX && fresh + 1 >= vs_train_at(&vs->cfg))
        *train = 1;
    return 0;
}

int sop_vstore_upsert(sop_vstore *vs, const sop_vitem *item)
{
    if (!vs)
        return -EINVAL;
    int rc = check_writable(vs);
    if (!rc)
        rc = check_item(vs, item, vs->vbuf);
    int train = 0;
    if (!rc)
        rc = upsert_checked(vs, item, vs->vbuf, NULL, NULL, &train);
    if (!rc && train)
        rc = vs_train_inline(vs);
    return rc;
}

int sop_vstore_upsert_batch(sop_vstore *vs, const sop_vitem *items, size_t n)
{
    if (!vs || (n && !items))
        return -EINVAL;
    if (n == 0)
        return 0;
    uint32_t d = vs->cfg.dims;
    int rc = check_writable(vs), train = 0;
    if (rc)
        return rc;
    /* in chunks, so that the checked copies stay small */
    const size_t chunk = 4096;
    float *xs = sop__malloc(chunk * d * sizeof(float));
    float *dist = sop__malloc(chunk * sizeof(float));
    uint32_t *cid = sop__malloc(chunk * sizeof(uint32_t) * 2);
    vl_slot *as = sop__malloc(chunk * 2 * sizeof(vl_slot));
    if (!xs || !dist || !cid || !as)
        rc = -ENOMEM;
    uint64_t seqs[2];
    for (int i = 0; i < vs->nver && !rc; i++)
        rc = vs_next_seq(vs, &vs->ver[i], &seqs[i]);
    for (size_t at = 0; at < n && !rc; at += chunk) {
        size_t m = n - at < chunk ? n - at : chunk;
        for (size_t j = 0; j < m && !rc; j++)
            rc = check_item(vs, &items[at + j], xs + j * d);
        for (int i = 0; i < vs->nver && !rc; i++) {
            rc = vs_assign_batch(vs, &vs->ver[i], xs, m, cid, dist);
            for (size_t j = 0; j < m && !rc; j++)
                as[j * 2 + (size_t)i] = (vl_slot){.cid = cid[j], .dist = dist[j]};
        }
        for (size_t j = 0; j < m && !rc; j++)
            rc = upsert_checked(vs, &items[at + j], xs + j * d, &as[j * 2], seqs, &train);
    }
    sop__free(xs);
    sop__free(dist);
    sop__free(cid);
    sop__free(as);
    if (!rc && train)
        rc = vs_train_inline(vs);
    return rc;
}

/* The content record of a live (not deleted) item @id. */
static int live_rec(sop_vstore *vs, const void *id, size_t id_len, vl_rec *rec)
{
    int rc = vs_check_id(vs, id, id_len);
    if (!rc)
        rc = vs_get_rec(vs, id, id_len, rec);
    if (!rc && rec->deleted)
        rc = SOP_ENOTFOUND;
    if (rc == SOP_ENOTFOUND)
        return vs_err(vs, rc, "no item with id '%.*s'", (int)id_len, (const char *)id);
    return rc;
}

int sop_vstore_delete(sop_vstore *vs, const void *id, size_t id_len)
{
    if (!vs)
        return -EINVAL;
    vl_rec rec;
    int rc = check_writable(vs);
    if (!rc)
        rc = live_rec(vs, id, id_len, &rec);
    if (rc)
        return rc;
    /* a tombstone keeps the lookup entries of the live versions */
    vl_rec tomb = {.deleted = 1};
    for (int i = 0; i < vs->nver && !rc; i++) {
        vl_slot *s = vl_rec_slot(&rec, vs->ver[i].v);
        if (!s)
            continue;
        tomb.slot[tomb.nslots++] = *s;
        rc = remove_ivf(vs, &vs->ver[i], s, id, id_len);
    }
    if (!rc && tomb.nslots == 0)
        return vs_err(vs, SOP_ECORRUPT, "id '%.*s' has no place in the active version",
                      (int)id_len, (const char *)id);
    if (!rc)
        rc = vs_put_rec(vs, id, id_len, &tomb);
    return rc;
}

int sop_vstore_get(sop_vstore *vs, const void *id, size_t id_len, float *vec, sop_val *payload)
{
    if (!vs)
        return -EINVAL;
    vl_rec rec;
    int rc = live_rec(vs, id, id_len, &rec);
    if (rc)
        return rc;
    if (payload) {
        if ((rc = vs_out_room(vs, rec.payload_len)))
            return rc;
        memcpy(vs->out, rec.payload, rec.payload_len);
        payload->data = vs->out;
        payload->size = rec.payload_len;
    }
    if (vec) {
        vl_slot *s = vl_rec_slot(&rec, vs->ver[0].v);
        if (!s)
            return vs_err(vs, SOP_ECORRUPT, "id '%.*s' has no place in the active version",
                          (int)id_len, (const char *)id);
        uint8_t key[VS_KEY_MAX];
        sop_val k = {key, vl_ivf_key(key, s->cid, s->dist, id, id_len)}, v;
        rc = sop_get(vs->ver[0].ivf, &k, &v);
        if (rc == SOP_ENOTFOUND || (!rc && v.size != (size_t)vs->cfg.dims * sizeof(float)))
            return vs_err(vs, SOP_ECORRUPT, "vector of id '%.*s' missing", (int)id_len,
                          (const char *)id);
        if (rc)
            return rc;
        memcpy(vec, v.data, v.size);
    }
    return 0;
}
