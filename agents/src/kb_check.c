/* kb_check.c - sop_kb_check(): a knowledge base's three stores agree, and
 * its two indexes are sound (agent.h, docs/design/agents.md).
 *
 * The record store "<name>.kb" is the source: every record must be a
 * document of the text index "<name>.kb.txt" whose length, terms and term
 * frequencies are those of the record's text (re-analysed with the
 * index's tokenizer), and an item of the vector store "<name>.kb.vec"
 * unless its vector was all zeros (a text without a word); the indexes
 * must hold nothing else. sop_vstore_check() and sop_text_check() run on
 * the two indexes first. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "mem.h"
#include "problem.h"
#include "sop/agent.h"
#include "sop/search.h"
#include "sop/vector.h"
#include "textidx.h"

typedef struct kck {
    const char *name;
    sop_check_fn fn;
    void *ctx;
    uint64_t problems;
    sop_txn *txn;
    sop_store *recs;
    sop_vstore *vs;
    sop_text *tx;
    int text_clean;      /* sop_text_check() found nothing: compare texts */
    sop_embedder *emb;   /* the built-in embedder, when the base uses it */
    float *vec;
    uint32_t dim;
    char embedder[256];
    uint64_t nrec;
} kck;

static void bad(kck *k, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void bad(kck *k, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    sop__problem(k->fn, k->ctx, "knowledge base", k->name, fmt, ap);
    va_end(ap);
    k->problems++;
}

/* A problem of tx_check_doc(), counted there. */
static void text_problem_f(kck *k, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void text_problem_f(kck *k, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    sop__problem(k->fn, k->ctx, "knowledge base", k->name, fmt, ap);
    va_end(ap);
}

static void text_problem(const char *msg, void *ctx) { text_problem_f(ctx, "%s", msg); }

/* Damage met by a read is a problem; anything else ends the check. */
static int soft(kck *k, int rc, const char *what)
{
    if (rc != SOP_ECORRUPT)
        return rc;
    bad(k, "%s: %s", what, sop_db_errmsg(sop_txn_db(k->txn)));
    return 0;
}

static const char CONFIG_KEY[] = "\0config";
#define CONFIG_KEY_LEN (sizeof CONFIG_KEY - 1)

static int check_config(kck *k)
{
    sop_val key = {CONFIG_KEY, CONFIG_KEY_LEN}, val;
    int rc = sop_get(k->recs, &key, &val);
    if (rc == SOP_ENOTFOUND) {
        bad(k, "its configuration record is missing");
        return 0;
    }
    if (rc)
        return soft(k, rc, "reading its configuration");
    cJSON *o = cJSON_ParseWithLength(val.data, val.size);
    cJSON *e = cJSON_GetObjectItemCaseSensitive(o, "embedder");
    cJSON *d = cJSON_GetObjectItemCaseSensitive(o, "dim");
    cJSON *c = cJSON_GetObjectItemCaseSensitive(o, "complete");
    if (cJSON_IsString(e) && strlen(e->valuestring) < sizeof k->embedder && cJSON_IsNumber(d) &&
        d->valuedouble >= 1 && d->valuedouble <= SOP_VECTOR_DIMS_MAX && cJSON_IsBool(c)) {
        snprintf(k->embedder, sizeof k->embedder, "%s", e->valuestring);
        k->dim = (uint32_t)d->valuedouble;
    } else {
        bad(k, "its configuration record does not decode");
    }
    cJSON_Delete(o);
    return 0;
}

/* The record @key -> @val against the two indexes. */
static int check_record(kck *k, const sop_val *key, const sop_val *val)
{
    char s[SOP__PRINTABLE_MAX];
    const uint8_t *p = val->data;
    if (key->size == 0 || key->size > SOP_KB_ID_MAX) {
        bad(k, "a record with an id of %zu bytes", key->size);
        return 0;
    }
    sop__printable(s, key->data, key->size);
    if (((const char *)key->data)[0] == '\0') {
        bad(k, "unknown key '%s' in its record store", s);
        return 0;
    }
    size_t tl = val->size < 4 ? 0 : (size_t)p[0] | (size_t)p[1] << 8 | (size_t)p[2] << 16 |
                                         (size_t)p[3] << 24;
    if (val->size < 4 || tl > val->size - 4 || tl == 0) {
        bad(k, "record '%s' does not decode", s);
        return 0;
    }
    k->nrec++;
    size_t ml = val->size - 4 - tl;
    if (ml) {
        cJSON *m = cJSON_ParseWithLength((const char *)p + 4 + tl, ml);
        if (!cJSON_IsObject(m))
            bad(k, "the metadata of record '%s' is not a JSON object", s);
        cJSON_Delete(m);
    }
    /* the text (NUL-terminated for the embedder) */
    char *text = sop__malloc(tl + 1);
    if (!text)
        return -ENOMEM;
    memcpy(text, p + 4, tl);
    text[tl] = '\0';
    int rc = 0;
    if (k->tx) {
        sop_text_doc d = {key->data, key->size, text, tl, NULL, 0};
        if (k->text_clean) {
            rc = tx_check_doc(k->tx, &d, text_problem, k, &k->problems);
        } else {
            uint32_t len;
            rc = sop_text_doc_len(k->tx, key->data, key->size, &len);
        }
        if (rc == SOP_ENOTFOUND) {
            bad(k, "record '%s' is not a document of its text index", s);
            rc = 0;
        } else {
            rc = soft(k, rc, "reading the text index");
        }
    }
    if (!rc && k->vs) {
        rc = sop_vstore_get(k->vs, key->data, key->size, NULL, NULL);
        if (rc == SOP_ENOTFOUND && k->emb) {
            const char *t = text;
            rc = sop_embedder_embed(k->emb, &t, 1, k->vec);
            int zero = 1;
            for (uint32_t i = 0; !rc && i < k->dim; i++)
                zero &= k->vec[i] == 0.0f;
            if (!rc && !zero)
                bad(k, "record '%s' has no vector, though its text embeds to a non-zero one", s);
        } else if (rc == SOP_ENOTFOUND) {
            rc = 0; /* another embedder: its vector may have been zero */
        } else {
            rc = soft(k, rc, "reading the vector store");
        }
    }
    sop__free(text);
    return rc;
}

static int scan_records(kck *k)
{
    sop_cursor *c;
    int rc = sop_cursor_open(k->recs, &c);
    if (rc)
        return rc;
    for (rc = sop_cursor_first(c); rc == 0; rc = sop_cursor_next(c)) {
        sop_val key, val;
        if ((rc = sop_cursor_get(c, &key, &val)))
            break;
        if (key.size == CONFIG_KEY_LEN && !memcmp(key.data, CONFIG_KEY, CONFIG_KEY_LEN))
            continue;
        if ((rc = check_record(k, &key, &val)))
            break;
    }
    sop_cursor_close(c);
    if (rc == SOP_ENOTFOUND)
        rc = 0;
    return soft(k, rc, "reading the records");
}

/* A document of the text index must be a record. */
static int text_doc(const uint8_t *id, size_t len, void *ctx)
{
    kck *k = ctx;
    char s[SOP__PRINTABLE_MAX];
    sop_val key = {id, len}, val;
    int rc = sop_get(k->recs, &key, &val);
    if (rc == SOP_ENOTFOUND)
        bad(k, "its text index holds document '%s', which is not a record", sop__printable(s, id, len));
    return rc == SOP_ENOTFOUND ? 0 : soft(k, rc, "reading a record");
}

/* Every live item of the vector store must be a record. */
static int scan_vectors(kck *k, const char *vn)
{
    char sn[SOP_STORE_NAME_MAX + 1], s[SOP__PRINTABLE_MAX];
    snprintf(sn, sizeof sn, "%s.vec.content", vn);
    sop_store *content;
    sop_cursor *c = NULL;
    int rc = sop_store_open(k->txn, sn, &content);
    if (!rc)
        rc = sop_cursor_open(content, &c);
    for (rc = rc ? rc : sop_cursor_first(c); rc == 0; rc = sop_cursor_next(c)) {
        sop_val key;
        uint8_t id[SOP_VECTOR_ID_MAX];
        if ((rc = sop_cursor_key(c, &key)))
            break;
        if (key.size == 0 || key.size > sizeof id)
            continue; /* sop_vstore_check() reports it */
        size_t idl = key.size;
        memcpy(id, key.data, idl);
        rc = sop_vstore_get(k->vs, id, idl, NULL, NULL);
        if (rc == SOP_ENOTFOUND) { /* deleted */
            rc = 0;
            continue;
        }
        sop_val rk = {id, idl}, rv;
        if (!rc && (rc = sop_get(k->recs, &rk, &rv)) == SOP_ENOTFOUND) {
            bad(k, "its vector store holds '%s', which is not a record", sop__printable(s, id, idl));
            rc = 0;
        }
        if (rc && (rc = soft(k, rc, "reading the vector store")))
            break;
    }
    sop_cursor_close(c);
    if (rc == SOP_ENOTFOUND)
        rc = 0;
    return soft(k, rc, "reading the vector store");
}

static int check_identity(kck *k)
{
    sop_vstore_stat st;
    int rc = sop_vstore_stats(k->vs, &st, NULL, 0);
    if (rc)
        return soft(k, rc, "reading the vector store");
    if (k->dim && (st.dims != k->dim || strcmp(st.embedder, k->embedder)))
        bad(k, "its configuration names embedder %s (%u dimensions), its vector store %s (%u)",
            k->embedder, k->dim, st.embedder[0] ? st.embedder : "none", st.dims);
    return 0;
}

static int run(kck *k, const char *vn, const char *tn)
{
    uint64_t p = 0;
    /* the two indexes on their own */
    int rc = sop_vstore_check(k->txn, vn, k->fn, k->ctx, &p);
    k->problems += p;
    int vfound = rc != SOP_ENOTFOUND;
    if (rc == SOP_ENOTFOUND || rc == SOP_ECORRUPT)
        rc = 0;
    if (rc)
        return rc;
    p = 0;
    rc = sop_text_check(k->txn, tn, k->fn, k->ctx, &p);
    k->problems += p;
    int tfound = rc != SOP_ENOTFOUND;
    k->text_clean = rc == 0;
    if (rc == SOP_ENOTFOUND || rc == SOP_ECORRUPT)
        rc = 0;
    if (rc)
        return rc;
    if (!k->recs && !vfound && !tfound)
        return SOP_ENOTFOUND;
    if (!k->recs)
        bad(k, "its record store %s.kb is missing", k->name);
    if (!vfound)
        bad(k, "its vector store %s is missing", vn);
    if (!tfound)
        bad(k, "its text index %s is missing", tn);
    if (!k->recs)
        return 0;
    if ((rc = check_config(k)))
        return rc;
    /* handles (those that do not open were reported by their check) */
    if (vfound && (rc = sop_vstore_open(k->txn, vn, &k->vs))) {
        k->vs = NULL;
        if (rc != SOP_ECORRUPT)
            return rc;
    }
    if (tfound && (rc = sop_text_open(k->txn, tn, &k->tx))) {
        k->tx = NULL;
        if (rc != SOP_ECORRUPT)
            return rc;
    }
    if (k->vs && (rc = check_identity(k)))
        return rc;
    if (!strcmp(k->embedder, SOP_EMBEDDER_BUILTIN) && k->dim >= 16 && k->dim <= 4096) {
        if ((rc = sop_embedder_builtin(k->dim, &k->emb)))
            return rc;
        if (!(k->vec = sop__malloc((size_t)k->dim * sizeof(float))))
            return -ENOMEM;
    }
    if ((rc = scan_records(k)))
        return rc;
    if (k->tx && (rc = soft(k, tx_doc_ids(k->tx, text_doc, k), "reading the text index")))
        return rc;
    if (k->vs && (rc = scan_vectors(k, vn)))
        return rc;
    sop_text_stat ts;
    if (k->tx && k->text_clean && !(rc = sop_text_stats(k->tx, &ts)) && ts.docs != k->nrec)
        bad(k, "%llu records, its text index %llu documents", (unsigned long long)k->nrec,
            (unsigned long long)ts.docs);
    return soft(k, rc, "reading the text index");
}

int sop_kb_check(sop_txn *txn, const char *name, sop_check_fn fn, void *ctx, uint64_t *problems)
{
    if (problems)
        *problems = 0;
    if (!txn || !name || !*name)
        return -EINVAL;
    if (strlen(name) > SOP_KB_NAME_MAX)
        return SOP_ENAME;
    char rn[SOP_KB_NAME_MAX + 8], vn[SOP_KB_NAME_MAX + 8], tn[SOP_KB_NAME_MAX + 8];
    snprintf(rn, sizeof rn, "%s.kb", name);
    snprintf(vn, sizeof vn, "%s.kb.vec", name);
    snprintf(tn, sizeof tn, "%s.kb.txt", name);
    kck k = {.name = name, .fn = fn, .ctx = ctx, .txn = txn};
    int rc = sop_store_open(txn, rn, &k.recs);
    if (rc == SOP_ENOTFOUND)
        k.recs = NULL;
    else if (rc)
        return rc;
    rc = run(&k, vn, tn);
    sop_embedder_free(k.emb);
    sop__free(k.vec);
    if (problems)
        *problems = k.problems;
    if (rc && !(k.problems && (rc == SOP_ECORRUPT || rc == SOP_ETXNDONE)))
        return rc;
    return k.problems ? SOP_ECORRUPT : SOP_OK;
}
