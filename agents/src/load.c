/* load.c - sop_kb_load(): a fallback file into a knowledge base, a batch
 * of records per transaction, streaming the file (fallback.c). */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "fallback.h"
#include "kb.h"
#include "mem.h"

void sop_kb_load_options_init(sop_kb_load_options *o)
{
    if (!o)
        return;
    memset(o, 0, sizeof *o);
    o->struct_size = sizeof *o;
    o->batch = SOP_KB_LOAD_BATCH;
}

/* Texts per embedding request. */
#define LOAD_EMBED_CHUNK 256

/* A batch of records copied out of the reader. */
typedef struct batch {
    char *bytes; /* ids, texts and metadata, NUL-terminated */
    size_t nbytes, capbytes;
    float *vecs;
    size_t nvecs, capvecs; /* in floats */
    struct {
        size_t id, text, meta, vec; /* offsets; SIZE_MAX: none */
    } *at;
    sop_kb_record *recs;
    size_t n, cap;
} batch;

static size_t put_str(batch *b, const char *s)
{
    if (!s)
        return SIZE_MAX;
    size_t len = strlen(s) + 1;
    if (b->nbytes + len > b->capbytes) {
        size_t c = b->capbytes ? b->capbytes : 65536;
        while (c < b->nbytes + len)
            c *= 2;
        char *p = sop__realloc(b->bytes, c);
        if (!p)
            return SIZE_MAX - 1;
        b->bytes = p, b->capbytes = c;
    }
    memcpy(b->bytes + b->nbytes, s, len);
    b->nbytes += len;
    return b->nbytes - len;
}

static int batch_add(batch *b, const fb_record *r, uint32_t dim)
{
    if (b->n == b->cap) {
        size_t c = b->cap ? 2 * b->cap : 256;
        void *a = sop__realloc(b->at, c * sizeof *b->at);
        if (!a)
            return -ENOMEM;
        b->at = a;
        void *rr = sop__realloc(b->recs, c * sizeof *b->recs);
        if (!rr)
            return -ENOMEM;
        b->recs = rr;
        b->cap = c;
    }
    size_t id = put_str(b, r->id), text = put_str(b, r->text), meta = put_str(b, r->metadata);
    if (id == SIZE_MAX - 1 || text == SIZE_MAX - 1 || meta == SIZE_MAX - 1)
        return -ENOMEM;
    size_t vec = SIZE_MAX;
    if (r->embedding) {
        if (b->nvecs + dim > b->capvecs) {
            size_t c = b->capvecs ? b->capvecs : 65536;
            while (c < b->nvecs + dim)
                c *= 2;
            float *p = sop__realloc(b->vecs, c * sizeof *p);
            if (!p)
                return -ENOMEM;
            b->vecs = p, b->capvecs = c;
        }
        memcpy(b->vecs + b->nvecs, r->embedding, dim * sizeof(float));
        vec = b->nvecs;
        b->nvecs += dim;
    }
    b->at[b->n].id = id, b->at[b->n].text = text, b->at[b->n].meta = meta, b->at[b->n].vec = vec;
    b->n++;
    return 0;
}

/* Embeds the texts of the records without a vector, outside any
 * transaction (an LLM server may take seconds). */
static int batch_embed(batch *b, sop_embedder *e, uint32_t dim)
{
    size_t need = 0;
    for (size_t i = 0; i < b->n; i++)
        need += b->at[i].vec == SIZE_MAX;
    if (!need)
        return 0;
    if (b->nvecs + need * dim > b->capvecs) {
        size_t c = b->capvecs ? b->capvecs : 65536;
        while (c < b->nvecs + need * dim)
            c *= 2;
        float *p = sop__realloc(b->vecs, c * sizeof *p);
        if (!p)
            return -ENOMEM;
        b->vecs = p, b->capvecs = c;
    }
    const char **texts = sop__malloc(need * sizeof *texts);
    if (!texts)
        return -ENOMEM;
    size_t j = 0;
    for (size_t i = 0; i < b->n; i++)
        if (b->at[i].vec == SIZE_MAX) {
            texts[j++] = b->bytes + b->at[i].text;
            b->at[i].vec = b->nvecs;
            b->nvecs += dim;
        }
    /* requests of at most LOAD_EMBED_CHUNK texts: a server embeds a batch
     * of 20,000 in one request far slower than its timeout allows */
    float *out = b->vecs + b->nvecs - need * dim;
    int rc = 0;
    for (size_t i = 0; !rc && i < need; i += LOAD_EMBED_CHUNK) {
        size_t n = need - i < LOAD_EMBED_CHUNK ? need - i : LOAD_EMBED_CHUNK;
        rc = sop_embedder_embed(e, texts + i, n, out + i * dim);
    }
    sop__free(texts);
    return rc;
}

/* Points the records at the copies (after the last realloc). */
static void batch_seal(batch *b)
{
    for (size_t i = 0; i < b->n; i++)
        b->recs[i] = (sop_kb_record){
            .id = b->bytes + b->at[i].id,
            .text = b->bytes + b->at[i].text,
            .metadata = b->at[i].meta == SIZE_MAX ? NULL : b->bytes + b->at[i].meta,
            .embedding = b->at[i].vec == SIZE_MAX ? NULL : b->vecs + b->at[i].vec,
        };
}

static void batch_clear(batch *b) { b->nbytes = b->nvecs = b->n = 0; }

static void batch_free(batch *b)
{
    sop__free(b->bytes);
    sop__free(b->vecs);
    sop__free(b->at);
    sop__free(b->recs);
}

static int report(sop_kb_load_report *r, int rc, uint64_t record, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int report(sop_kb_load_report *r, int rc, uint64_t record, const char *fmt, ...)
{
    if (!r->error[0]) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(r->error, sizeof r->error, fmt, ap);
        va_end(ap);
        r->error_record = record;
    }
    return rc;
}

/* Opens or creates the base for identity (@ename, @dim); on a rebuild,
 * removes it first. Marks it incomplete. */
static int prepare(sop_db *db, const char *name, const char *ename, uint32_t dim, int replace,
                   sop_kb_load_report *rep)
{
    sop_txn *txn;
    int rc = sop_txn_begin(db, SOP_TXN_WRITE, 0, &txn);
    if (rc)
        return report(rep, rc, 0, "cannot begin a transaction: %s", sop_strerror(rc));
    sop_kb *kb = NULL;
    if (replace && (rc = sop_kb_remove(txn, name)) && rc != SOP_ENOTFOUND)
        goto fail;
    rc = sop_kb_open(txn, name, &kb);
    if (rc == SOP_ENOTFOUND)
        rc = sop_kb_create(txn, name, ename, dim, &kb);
    if (rc)
        goto fail;
    const char *have;
    uint32_t hdim;
    sop_kb_embedder(kb, &have, &hdim);
    if (strcmp(have, ename) || hdim != dim) {
        report(rep, SOP_EMISMATCH, 0,
               "knowledge base %s holds vectors of %s (dim %u), not of %s (dim %u); "
               "load it into another base or replace it",
               name, have, (unsigned)hdim, ename, (unsigned)dim);
        sop_txn_rollback(txn);
        return SOP_EMISMATCH;
    }
    if ((rc = kb_config_write(kb, 0)))
        goto fail;
    if ((rc = sop_txn_commit(txn)))
        return report(rep, rc, 0, "cannot create knowledge base %s: %s", name, sop_strerror(rc));
    return 0;
fail:
    sop_txn_rollback(txn);
    return report(rep, rc, 0, "cannot open knowledge base %s: %s", name, sop_strerror(rc));
}

/* One transaction: the batch, and the "complete" mark with the last. */
static int commit_batch(sop_db *db, const char *name, batch *b, int last)
{
    batch_seal(b);
    sop_txn *txn;
    int rc = sop_txn_begin(db, SOP_TXN_WRITE, 0, &txn);
    sop_kb *kb;
    if (rc)
        return rc;
    if (!(rc = sop_kb_open(txn, name, &kb)) && !(rc = sop_kb_put(kb, NULL, b->recs, b->n)) &&
        (!last || !(rc = kb_config_write(kb, 1))))
        return sop_txn_commit(txn);
    sop_txn_rollback(txn);
    return rc;
}

int sop_kb_load(sop_db *db, const char *path, const sop_kb_load_options *o,
                sop_kb_load_report *rep)
{
    sop_kb_load_options defaults;
    if (!o) {
        sop_kb_load_options_init(&defaults);
        o = &defaults;
    }
    sop_kb_load_report local;
    if (!rep)
        rep = &local;
    memset(rep, 0, sizeof *rep);
    if (!db || !path || o->struct_size != sizeof *o)
        return report(rep, -EINVAL, 0, "bad arguments");
    uint32_t per = o->batch ? o->batch : SOP_KB_LOAD_BATCH;
    fb_reader *r = NULL;
    int rc = fb_open(path, &r);
    if (rc) {
        report(rep, rc, 0, "%s", r ? fb_error(r) : sop_strerror(rc));
        fb_close(r);
        return rc;
    }
    batch b = {0};
    sop_embedder *own = NULL, *e = o->embedder;
    const char *name = o->name && *o->name ? o->name : fb_name(r);
    uint32_t fdim;
    const char *fname = fb_embedder(r, &fdim);
    if (!*name) {
        rc = report(rep, -EINVAL, 0, "%s names no knowledge base: give a name", path);
        goto out;
    }
    snprintf(rep->name, sizeof rep->name, "%s", name);
    /* the identity of the vectors: the file's and the embedder's agree */
    if (e && *fname && (strcmp(fname, sop_embedder_name(e)) || fdim != sop_embedder_dim(e))) {
        rc = report(rep, SOP_EMISMATCH, 0, "%s holds vectors of %s (dim %u), the embedder is %s (dim %u)",
                    path, fname, (unsigned)fdim, sop_embedder_name(e),
                    (unsigned)sop_embedder_dim(e));
        goto out;
    }
    if (!e && (!*fname || !strcmp(fname, SOP_EMBEDDER_BUILTIN))) {
        if ((rc = sop_embedder_builtin(*fname ? fdim : 0, &own))) {
            rc = report(rep, SOP_EMISMATCH, 0, "%s: the built-in embedder has no dimension %u", path,
                        (unsigned)fdim);
            goto out;
        }
        e = own;
    }
    const char *ename = e ? sop_embedder_name(e) : fname;
    uint32_t dim = e ? sop_embedder_dim(e) : fdim;
    if ((rc = prepare(db, name, ename, dim, o->replace, rep)))
        goto out;
    for (;;) {
        fb_record rec;
        int more = fb_next(r, &rec);
        if (more < 0) {
            rc = report(rep, more, 0, "%s", fb_error(r));
            rep->error_record = rep->records + b.n + 1;
            goto out;
        }
        if (more == 0) {
            if (!rec.embedding && !e) {
                rc = report(rep, SOP_EMISMATCH, rec.no,
                            "record %llu (id \"%s\") has no embedding and there is no embedder "
                            "%s to compute it",
                            (unsigned long long)rec.no, rec.id, fname);
                goto out;
            }
            if ((rc = batch_add(&b, &rec, dim))) {
                report(rep, rc, rec.no, "out of memory");
                goto out;
            }
        }
        if (b.n == per || more == 1 ||
            b.nbytes + b.nvecs * sizeof(float) >= SOP_KB_LOAD_BATCH_BYTES) {
            size_t embedded = 0;
            for (size_t i = 0; i < b.n; i++)
                embedded += b.at[i].vec == SIZE_MAX;
            if ((rc = batch_embed(&b, e, dim))) {
                report(rep, rc, rep->records + 1, "embedding records %llu..%llu: %s",
                       (unsigned long long)rep->records + 1,
                       (unsigned long long)(rep->records + b.n), sop_strerror(rc));
                goto out;
            }
            if ((rc = commit_batch(db, name, &b, more == 1))) {
                uint64_t first = rep->records + 1;
                report(rep, rc, first, "records %llu..%llu: %s", (unsigned long long)first,
                       (unsigned long long)(first + b.n - 1), sop_strerror(rc));
                goto out;
            }
            rep->records += b.n;
            rep->batches++;
            rep->bytes = fb_offset(r);
            rep->embedded += embedded;
            batch_clear(&b);
            if (o->progress) {
                sop_kb_progress p = {rep->records, fb_offset(r), fb_size(r)};
                if ((rc = o->progress(&p, o->progress_ctx))) {
                    report(rep, rc, 0, "stopped by the progress callback");
                    goto out;
                }
            }
        }
        if (more == 1)
            break;
    }
out:
    batch_free(&b);
    sop_embedder_free(own);
    fb_close(r);
    return rc;
}
