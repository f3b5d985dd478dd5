/* check.c - sop_vstore_check(): a vector store's index against its content
 * records (docs/design/vector.md, "Checking a store"). It only reads, in
 * the caller's transaction, and reports every problem it finds:
 *   - the store's own B-trees: none left over from a dead index version,
 *     the config and progress records decode, no unknown config key;
 *   - the centroids of each live version: nlist of them, finite, and the
 *     ones in use (the process cache) are the stored ones;
 *   - every index entry (cluster, distance, id) of each live version: its
 *     vector is dims finite floats (unit length under cosine), the
 *     cluster is the nearest centroid and the distance the distance to
 *     it, both recomputed from the stored vector and centroids, and its id
 *     has a live content record that places it there;
 *   - every content record: it decodes, places the item in the active
 *     version (and, during a migration, in the next one once the progress
 *     record has passed it), has its index entry there when live, and its
 *     lookup entry names it;
 *   - the counts: sop_vstore_count() and the next version's index agree
 *     with the live records, the lookup trees hold an entry per item, the
 *     progress record's count of moved items is not above its lookup tree. */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "kmeans.h"
#include "mem.h"
#include "problem.h"
#include "vmath.h"
#include "vstore.h"

#define CHUNK 512 /* index entries whose assignment is recomputed at once */
/* tolerances on squared distances, relative to |x|^2 + |c|^2: the
 * distance in a key is sqrtf of the same float kernel, but the kernel
 * may differ between CPUs; the nearest centroid comes from a BLAS
 * expansion that may pick either of two nearly equidistant ones */
#define TOL_DIST 1e-4f
#define TOL_NEAREST 1e-3f

typedef struct vck_ver {
    float *c, *norms; /* the stored centroids (NULL for version 0) */
    int usable;       /* the centroids are sound: recompute assignments */
    uint64_t expected; /* live records placed in this version */
    uint64_t slots;    /* records (live or deleted) placed in it */
} vck_ver;

typedef struct vck {
    sop_vstore *vs;
    const char *name;
    sop_check_fn fn;
    void *ctx;
    uint64_t problems;
    vck_ver v[2];
    vl_progress prog;
    int has_prog;
    uint64_t live;
    /* a chunk of index entries */
    uint8_t *keys; /* CHUNK x VS_KEY_MAX */
    size_t *klen;
    float *x, *dist;
    uint32_t *cid;
    size_t m;
} vck;

static void bad(vck *k, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void bad(vck *k, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    sop__problem(k->fn, k->ctx, "vector store", k->name, fmt, ap);
    va_end(ap);
    k->problems++;
}

static int id_cmp(const uint8_t *a, size_t al, const uint8_t *b, size_t bl)
{
    int c = memcmp(a, b, al < bl ? al : bl);
    return c ? c : (al > bl) - (al < bl);
}

/* A read of the store failed: engine-level damage is a problem (and the
 * check goes on where it can), anything else ends the check. */
static int soft(vck *k, int rc, const char *what)
{
    if (rc != SOP_ECORRUPT)
        return rc;
    bad(k, "%s: %s", what, sop_db_errmsg(k->vs->db));
    return 0;
}

/* ---- stores, config, progress ----------------------------------------- */

typedef struct list_ctx {
    vck *k;
    size_t plen;
    char prefix[VL_STORE_MAX + 1];
} list_ctx;

/* "<digits>" (as vl_store_name writes a version) -> 1 and *v */
static int parse_ver(const char *s, uint32_t *v)
{
    uint64_t x = 0;
    if (!*s || (s[0] == '0' && s[1]))
        return 0;
    for (; *s; s++) {
        if (*s < '0' || *s > '9' || (x = x * 10 + (uint64_t)(*s - '0')) > UINT32_MAX)
            return 0;
    }
    *v = (uint32_t)x;
    return 1;
}

static int on_store(const char *sn, void *ctx)
{
    list_ctx *l = ctx;
    vck *k = l->k;
    if (strncmp(sn, l->prefix, l->plen) != 0)
        return 0;
    const char *rest = sn + l->plen;
    static const char *const kinds[] = {"ivf.", "lku.", "cent."};
    for (int i = 0; i < 3; i++) {
        size_t kl = strlen(kinds[i]);
        uint32_t v;
        if (strncmp(rest, kinds[i], kl) != 0 || !parse_ver(rest + kl, &v))
            continue;
        const vl_cfg *c = &k->vs->cfg;
        int live = v == c->active || (c->next && v == c->next);
        if (!live || (i == 2 && v == 0))
            bad(k, "store %s belongs to no live index version (active %u, next %u)", sn,
                c->active, c->next);
    }
    return 0;
}

static int check_cfg_store(vck *k)
{
    sop_vstore *vs = k->vs;
    sop_cursor *c;
    int rc = sop_cursor_open(vs->s_cfg, &c);
    if (rc)
        return rc;
    for (rc = sop_cursor_first(c); rc == 0; rc = sop_cursor_next(c)) {
        sop_val key, val;
        if ((rc = sop_cursor_get(c, &key, &val)))
            break;
        if (key.size == 1 && ((const char *)key.data)[0] == VL_KEY_CFG[0])
            continue; /* decoded by sop_vstore_open() */
        if (key.size == 1 && ((const char *)key.data)[0] == VL_KEY_PROGRESS[0]) {
            k->has_prog = 1;
            if (vl_progress_decode(val.data, val.size, &k->prog)) {
                bad(k, "the progress record does not decode");
                k->has_prog = -1;
            }
            continue;
        }
        char s[SOP__PRINTABLE_MAX];
        bad(k, "unknown key '%s' in its config store", sop__printable(s, key.data, key.size));
    }
    sop_cursor_close(c);
    if (rc == SOP_ENOTFOUND)
        rc = 0;
    if ((rc = soft(k, rc, "reading its config store")))
        return rc;
    const vl_cfg *cf = &vs->cfg;
    if (!cf->next && k->has_prog)
        bad(k, "a progress record, but no migration is running");
    if (cf->next && !k->has_prog)
        bad(k, "the migration to version %u has no progress record", cf->next);
    if (cf->next && k->has_prog == 1 && k->prog.version != cf->next)
        bad(k, "the progress record is of version %u, the migration builds %u", k->prog.version,
            cf->next);
    if (k->has_prog != 1)
        memset(&k->prog, 0, sizeof k->prog);
    if (cf->active == 0 && cf->nlist_a != 1)
        bad(k, "the flat version 0 has nlist %u", cf->nlist_a);
    return 0;
}

/* Reads the centroids of live version @i from their store. */
static int load_centroids(vck *k, int i)
{
    sop_vstore *vs = k->vs;
    const vs_ver *ver = &vs->ver[i];
    vck_ver *kv = &k->v[i];
    uint32_t d = vs->cfg.dims;
    kv->usable = 1;
    if (ver->v == 0)
        return 0;
    kv->usable = 0;
    if (!(kv->c = sop__calloc((size_t)ver->nlist * d, sizeof(float))) ||
        !(kv->norms = sop__calloc(ver->nlist, sizeof(float))))
        return -ENOMEM;
    char sn[VL_STORE_MAX + 1];
    vl_store_name(sn, vs->name, VL_CENT, ver->v);
    sop_store *s;
    int rc = sop_store_open(vs->txn, sn, &s);
    if (rc == SOP_ENOTFOUND) {
        bad(k, "the centroid store of version %u is missing", ver->v);
        return 0;
    }
    sop_cursor *c = NULL;
    if (!rc)
        rc = sop_cursor_open(s, &c);
    uint32_t n = 0;
    int sound = 1;
    for (rc = rc ? rc : sop_cursor_first(c); rc == 0; rc = sop_cursor_next(c), n++) {
        sop_val key, val;
        if ((rc = sop_cursor_get(c, &key, &val)))
            break;
        uint8_t want[4];
        vl_cent_key(want, n);
        if (key.size != 4 || memcmp(key.data, want, 4) != 0 || n >= ver->nlist) {
            bad(k, "centroids of version %u: item %u is not cluster %u of %u", ver->v, n, n,
                ver->nlist);
            sound = 0;
            break;
        }
        if (val.size != (size_t)d * sizeof(float)) {
            bad(k, "centroids of version %u: cluster %u has %zu bytes, not %u dimensions",
                ver->v, n, val.size, d);
            sound = 0;
            continue;
        }
        memcpy(kv->c + (size_t)n * d, val.data, val.size);
        if (!sop__v_finite(kv->c + (size_t)n * d, d)) {
            bad(k, "centroids of version %u: cluster %u is not finite", ver->v, n);
            sound = 0;
        }
    }
    sop_cursor_close(c);
    if (rc == SOP_ENOTFOUND)
        rc = 0;
    if ((rc = soft(k, rc, "reading the centroids")))
        return rc;
    if (sound && n != ver->nlist) {
        bad(k, "version %u has %u centroids, its config says %u", ver->v, n, ver->nlist);
        sound = 0;
    }
    if (!sound)
        return 0;
    if (ver->cents && memcmp(ver->cents->c, kv->c, (size_t)ver->nlist * d * sizeof(float)) != 0)
        bad(k, "the centroids of version %u in use (cached) differ from the stored ones", ver->v);
    sop__v_norms_sq(kv->c, ver->nlist, d, kv->norms);
    kv->usable = 1;
    return 0;
}

/* ---- index entries ------------------------------------------------------ */

/* Checks the chunk of entries of live version @i against the centroids
 * and the content records. */
static int flush_chunk(vck *k, int i)
{
    sop_vstore *vs = k->vs;
    const vs_ver *ver = &vs->ver[i];
    vck_ver *kv = &k->v[i];
    uint32_t d = vs->cfg.dims;
    size_t m = k->m;
    int rc = 0;
    k->m = 0;
    if (!m)
        return 0;
    if (kv->usable && kv->c)
        rc = sop__kmeans_assign(k->x, m, d, kv->c, kv->norms, ver->nlist, k->cid, k->dist);
    if (rc)
        return rc;
    for (size_t j = 0; j < m && !rc; j++) {
        const uint8_t *key = k->keys + j * VS_KEY_MAX;
        const uint8_t *id = key + VL_IVF_HDR;
        size_t idl = k->klen[j] - VL_IVF_HDR;
        const float *x = k->x + j * d;
        uint32_t kc = vl_ivf_cid(key);
        float kd = vl_ivf_dist(key);
        char s[SOP__PRINTABLE_MAX];
        if (kv->usable) {
            float xn = sop__v_dot(x, x, d);
            float cn = kv->c ? kv->norms[kc] : 0;
            float ex = kv->c ? sop__v_l2sq(x, kv->c + (size_t)kc * d, d) : xn;
            if (fabsf(kd * kd - ex) > TOL_DIST * (xn + cn) + 1e-30f)
                bad(k, "id '%s' in version %u: the distance in its key is %g, its vector is at "
                    "%g from centroid %u",
                    sop__printable(s, id, idl), ver->v, (double)kd, sqrt((double)ex), kc);
            if (kv->c && k->cid[j] != kc) {
                uint32_t b = k->cid[j];
                float bx = sop__v_l2sq(x, kv->c + (size_t)b * d, d);
                if (ex > bx + TOL_NEAREST * (xn + (cn > kv->norms[b] ? cn : kv->norms[b])))
                    bad(k, "id '%s' in version %u is in cluster %u (distance %g), but cluster %u "
                        "is nearer (%g)",
                        sop__printable(s, id, idl), ver->v, kc, sqrt((double)ex), b, sqrt((double)bx));
            }
        }
        sop_val rk = {id, idl}, rv;
        rc = sop_get(vs->s_content, &rk, &rv);
        if (rc == SOP_ENOTFOUND) {
            bad(k, "index entry of id '%s' in version %u has no content record", sop__printable(s, id, idl),
                ver->v);
            rc = 0;
            continue;
        }
        if ((rc = soft(k, rc, "reading a content record")))
            return rc;
        vl_rec r;
        if (vl_rec_decode(rv.data, rv.size, &r))
            continue; /* the content scan reports it */
        const vl_slot *sl = vl_rec_slot(&r, ver->v);
        if (r.deleted) {
            bad(k, "index entry of deleted id '%s' in version %u", sop__printable(s, id, idl), ver->v);
        } else if (!sl) {
            bad(k, "index entry of id '%s' in version %u, where its record does not place it",
                sop__printable(s, id, idl), ver->v);
        } else {
            uint8_t want[VS_KEY_MAX];
            size_t wl = vl_ivf_key(want, sl->cid, sl->dist, id, idl);
            if (wl != k->klen[j] || memcmp(want, key, wl) != 0)
                bad(k, "index entry of id '%s' in version %u is at (cluster %u, distance %g), "
                    "its record says (cluster %u, distance %g)",
                    sop__printable(s, id, idl), ver->v, kc, (double)kd, sl->cid, (double)sl->dist);
        }
    }
    return rc;
}

static int scan_index(vck *k, int i)
{
    sop_vstore *vs = k->vs;
    const vs_ver *ver = &vs->ver[i];
    uint32_t d = vs->cfg.dims;
    sop_cursor *c;
    int rc = sop_cursor_open(ver->ivf, &c);
    if (rc)
        return rc;
    for (rc = sop_cursor_first(c); rc == 0; rc = sop_cursor_next(c)) {
        sop_val key, val;
        if ((rc = sop_cursor_get(c, &key, &val)))
            break;
        const uint8_t *kb = key.data;
        char s[SOP__PRINTABLE_MAX];
        if (key.size <= VL_IVF_HDR || key.size > VS_KEY_MAX) {
            bad(k, "version %u: an index key of %zu bytes", ver->v, key.size);
            continue;
        }
        const uint8_t *id = kb + VL_IVF_HDR;
        size_t idl = key.size - VL_IVF_HDR;
        float kd = vl_ivf_dist(kb);
        if (vl_ivf_cid(kb) >= ver->nlist || !(kd >= 0) || !isfinite(kd) || signbit(kd)) {
            bad(k, "id '%s' in version %u: bad index key (cluster %u of %u, distance %g)",
                sop__printable(s, id, idl), ver->v, vl_ivf_cid(kb), ver->nlist, (double)kd);
            continue;
        }
        if (val.size != (size_t)d * sizeof(float)) {
            bad(k, "id '%s' in version %u: a vector of %zu bytes, not %u dimensions",
                sop__printable(s, id, idl), ver->v, val.size, d);
            continue;
        }
        float *x = k->x + k->m * d;
        memcpy(x, val.data, val.size);
        if (!sop__v_finite(x, d)) {
            bad(k, "id '%s' in version %u: its vector is not finite", sop__printable(s, id, idl), ver->v);
            continue;
        }
        if (vs->cfg.metric == SOP_METRIC_COSINE && fabsf(sop__v_dot(x, x, d) - 1.0f) > 1e-3f) {
            bad(k, "id '%s' in version %u: its vector is not of unit length (cosine)",
                sop__printable(s, id, idl), ver->v);
            continue;
        }
        memcpy(k->keys + k->m * VS_KEY_MAX, kb, key.size);
        k->klen[k->m++] = key.size;
        if (k->m == CHUNK && (rc = flush_chunk(k, i)))
            break;
    }
    sop_cursor_close(c);
    if (rc == SOP_ENOTFOUND)
        rc = flush_chunk(k, i);
    return soft(k, rc, "reading an index");
}

/* ---- content records ---------------------------------------------------- */

/* The lookup entry of @sl must name @id. */
static int check_lookup(vck *k, const vs_ver *ver, const vl_slot *sl, const uint8_t *id,
                        size_t idl)
{
    uint8_t lk[8];
    vl_lku_key(lk, sl->seq);
    sop_val key = {lk, 8}, val;
    char s[SOP__PRINTABLE_MAX], s2[SOP__PRINTABLE_MAX];
    int rc = sop_get(ver->lku, &key, &val);
    if (rc == SOP_ENOTFOUND) {
        bad(k, "id '%s': its lookup entry %llu in version %u is missing", sop__printable(s, id, idl),
            (unsigned long long)sl->seq, ver->v);
        return 0;
    }
    if (rc)
        return soft(k, rc, "reading a lookup entry");
    if (id_cmp(val.data, val.size, id, idl) != 0)
        bad(k, "id '%s': its lookup entry %llu in version %u names '%s'", sop__printable(s, id, idl),
            (unsigned long long)sl->seq, ver->v, sop__printable(s2, val.data, val.size));
    return 0;
}

static int check_record(vck *k, const sop_val *key, const sop_val *val)
{
    sop_vstore *vs = k->vs;
    const vl_cfg *cf = &vs->cfg;
    const uint8_t *id = key->data;
    size_t idl = key->size;
    char s[SOP__PRINTABLE_MAX];
    vl_rec r;
    if (idl == 0 || idl > SOP_VECTOR_ID_MAX) {
        bad(k, "a content record with an id of %zu bytes", idl);
        return 0;
    }
    if (vl_rec_decode(val->data, val->size, &r)) {
        bad(k, "the content record of id '%s' does not decode", sop__printable(s, id, idl));
        return 0;
    }
    for (int a = 0; a < r.nslots; a++) {
        for (int b = 0; b < a; b++)
            if (r.slot[a].ver == r.slot[b].ver)
                bad(k, "the record of id '%s' places it twice in version %u", sop__printable(s, id, idl),
                    r.slot[a].ver);
        if (r.slot[a].ver > cf->active && r.slot[a].ver != cf->next)
            bad(k, "the record of id '%s' places it in version %u, which is not live",
                sop__printable(s, id, idl), r.slot[a].ver);
    }
    if (!vl_rec_slot(&r, cf->active))
        bad(k, "the record of id '%s' has no place in the active version %u", sop__printable(s, id, idl),
            cf->active);
    if (cf->next && k->has_prog == 1 && !vl_rec_slot(&r, cf->next) &&
        (k->prog.done || id_cmp(id, idl, k->prog.last, k->prog.last_len) <= 0))
        bad(k, "id '%s' is not in version %u although the migration has passed it",
            sop__printable(s, id, idl), cf->next);
    if (!r.deleted)
        k->live++;
    int rc = 0;
    for (int i = 0; i < vs->nver && !rc; i++) {
        const vs_ver *ver = &vs->ver[i];
        const vl_slot *sl = vl_rec_slot(&r, ver->v);
        if (!sl)
            continue;
        if (sl->cid >= ver->nlist) {
            bad(k, "the record of id '%s' places it in cluster %u of version %u (of %u)",
                sop__printable(s, id, idl), sl->cid, ver->v, ver->nlist);
            continue;
        }
        k->v[i].slots++;
        if ((rc = check_lookup(k, ver, sl, id, idl)) || r.deleted)
            continue;
        k->v[i].expected++;
        uint8_t ik[VS_KEY_MAX];
        sop_val ikey = {ik, vl_ivf_key(ik, sl->cid, sl->dist, id, idl)}, iv;
        rc = sop_get(ver->ivf, &ikey, &iv);
        if (rc == SOP_ENOTFOUND) {
            bad(k, "id '%s' has no index entry in version %u (cluster %u, distance %g)",
                sop__printable(s, id, idl), ver->v, sl->cid, (double)sl->dist);
            rc = 0;
        }
        rc = soft(k, rc, "reading an index entry");
    }
    return rc;
}

static int scan_content(vck *k)
{
    sop_cursor *c;
    int rc = sop_cursor_open(k->vs->s_content, &c);
    if (rc)
        return rc;
    for (rc = sop_cursor_first(c); rc == 0; rc = sop_cursor_next(c)) {
        sop_val key, val;
        if ((rc = sop_cursor_get(c, &key, &val)) || (rc = check_record(k, &key, &val)))
            break;
    }
    sop_cursor_close(c);
    if (rc == SOP_ENOTFOUND)
        rc = 0;
    return soft(k, rc, "reading the content store");
}

/* ---- counts --------------------------------------------------------------- */

static int count_lookups(const sop_val *key, const sop_val *val, void *ctx)
{
    uint64_t *n = ctx;
    if (key->size != 8 || val->size == 0 || val->size > SOP_VECTOR_ID_MAX)
        n[1]++;
    n[0]++;
    return 0;
}

static int check_counts(vck *k)
{
    sop_vstore *vs = k->vs;
    uint64_t n;
    int rc = sop_vstore_count(vs, &n);
    if (rc)
        return soft(k, rc, "counting the items");
    if (n != k->live)
        bad(k, "sop_vstore_count() says %llu items, the content store holds %llu live ones",
            (unsigned long long)n, (unsigned long long)k->live);
    for (int i = 0; i < vs->nver; i++) {
        const vs_ver *ver = &vs->ver[i];
        if ((rc = sop_store_count(ver->ivf, &n)))
            return soft(k, rc, "counting an index");
        if (n != k->v[i].expected)
            bad(k, "the index of version %u holds %llu entries for %llu live items placed there",
                ver->v, (unsigned long long)n, (unsigned long long)k->v[i].expected);
        uint64_t lk[2] = {0, 0};
        sop_range all = {0};
        if ((rc = sop_scan(ver->lku, &all, count_lookups, lk)))
            return soft(k, rc, "reading a lookup tree");
        if (lk[1])
            bad(k, "the lookup tree of version %u has %llu malformed entries", ver->v,
                (unsigned long long)lk[1]);
        if (lk[0] < k->v[i].slots)
            bad(k, "the lookup tree of version %u has %llu entries for %llu items", ver->v,
                (unsigned long long)lk[0], (unsigned long long)k->v[i].slots);
        if (i == 1 && k->has_prog == 1 && k->prog.moved > lk[0])
            bad(k, "the progress record says %llu items moved, the lookup tree of version %u "
                "holds %llu entries",
                (unsigned long long)k->prog.moved, ver->v, (unsigned long long)lk[0]);
    }
    return 0;
}

/* ---- the check -------------------------------------------------------------- */

static int run(vck *k, sop_txn *txn)
{
    sop_vstore *vs = k->vs;
    list_ctx l = {.k = k};
    snprintf(l.prefix, sizeof l.prefix, "%s.vec.", vs->name);
    l.plen = strlen(l.prefix);
    int rc = soft(k, sop_store_list(txn, on_store, &l), "listing the stores");
    if (!rc)
        rc = check_cfg_store(k);
    for (int i = 0; i < vs->nver && !rc; i++)
        rc = load_centroids(k, i);
    size_t d = vs->cfg.dims;
    if (!rc && (!(k->keys = sop__malloc((size_t)CHUNK * VS_KEY_MAX)) ||
                !(k->klen = sop__malloc(CHUNK * sizeof *k->klen)) ||
                !(k->x = sop__malloc(CHUNK * d * sizeof(float))) ||
                !(k->dist = sop__malloc(CHUNK * sizeof(float))) ||
                !(k->cid = sop__malloc(CHUNK * sizeof(uint32_t)))))
        rc = -ENOMEM;
    for (int i = 0; i < vs->nver && !rc; i++)
        rc = scan_index(k, i);
    if (!rc)
        rc = scan_content(k);
    if (!rc)
        rc = check_counts(k);
    return rc;
}

int sop_vstore_check(sop_txn *txn, const char *name, sop_check_fn fn, void *ctx,
                     uint64_t *problems)
{
    if (problems)
        *problems = 0;
    if (!txn || !name)
        return -EINVAL;
    vck k = {.name = name, .fn = fn, .ctx = ctx};
    int rc = sop_vstore_open(txn, name, &k.vs);
    if (rc == SOP_ECORRUPT) {
        bad(&k, "%s", sop_db_errmsg(sop_txn_db(txn)));
    } else if (!rc) {
        rc = run(&k, txn);
        for (int i = 0; i < 2; i++) {
            sop__free(k.v[i].c);
            sop__free(k.v[i].norms);
        }
        sop__free(k.keys);
        sop__free(k.klen);
        sop__free(k.x);
        sop__free(k.dist);
        sop__free(k.cid);
    }
    if (problems)
        *problems = k.problems;
    /* a read that found damage may have failed the transaction */
    if (rc && !(k.problems && (rc == SOP_ECORRUPT || rc == SOP_ETXNDONE)))
        return rc;
    if (k.problems)
        return sop__err(sop_txn_db(txn), SOP_ECORRUPT, "vector store %s: %llu problems", name,
                        (unsigned long long)k.problems);
    return SOP_OK;
}
