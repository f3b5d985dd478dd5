/*
 * txn_across_stores.c - one transaction spans every kind of store: a KV
 * store, a vector store, a text index and a knowledge base change together
 * or not at all.
 *
 * A clinic records a visit: its note in KV store "visits" (by id), a
 * 3-feature triage vector (pain, fever, breathing) in vector store
 * "visits-vec", the note's words in text index "visits-text", and a
 * searchable record in knowledge base "handbook" (embedded with the
 * built-in embedder). Transaction 1 writes visit v1 to all four and
 * commits. Transaction 2 writes visit v2 to all four, sees it there, and
 * rolls back. A read transaction then finds v1 everywhere and v2 nowhere.
 *
 * Usage: example_txn_across_stores DB_DIR
 */
#include <stdio.h>
#include <string.h>

#include "sop/agent.h"
#include "sop/search.h"
#include "sop/vector.h"

/* The four stores, opened in one transaction (valid until it ends). */
typedef struct stores {
    sop_store *kv;
    sop_vstore *vec;
    sop_text *text;
    sop_kb *kb;
} stores;

typedef struct visit {
    const char *id, *note;
    float triage[3];
} visit;

static const visit v1 = {"v1", "Cramping belly pain since last night, mild fever.", {0.8f, 0.4f, 0.0f}};
static const visit v2 = {"v2", "Wheezing and short of breath after a cold.", {0.1f, 0.2f, 0.9f}};

static int fail(sop_db *db, const char *what, int rc)
{
    fprintf(stderr, "%s: %s: %s\n", what, sop_strerror(rc), db ? sop_db_errmsg(db) : "");
    return 1;
}

/* Opens the four stores in @t, creating the missing ones (in a write
 * transaction). */
static int open_all(sop_txn *t, sop_embedder *e, stores *s)
{
    int rc = sop_store_open(t, "visits", &s->kv);
    if (rc == SOP_ENOTFOUND)
        rc = sop_store_create(t, "visits", NULL, &s->kv);
    if (!rc && (rc = sop_vstore_open(t, "visits-vec", &s->vec)) == SOP_ENOTFOUND) {
        sop_vstore_options o;
        sop_vstore_options_init(&o);
        o.dims = 3;
        rc = sop_vstore_create(t, "visits-vec", &o, &s->vec);
    }
    if (!rc && (rc = sop_text_open(t, "visits-text", &s->text)) == SOP_ENOTFOUND)
        rc = sop_text_create(t, "visits-text", NULL, &s->text);
    if (!rc && (rc = sop_kb_open(t, "handbook", &s->kb)) == SOP_ENOTFOUND)
        rc = sop_kb_create(t, "handbook", sop_embedder_name(e), sop_embedder_dim(e), &s->kb);
    return rc;
}

/* Writes @v to the four stores of one transaction. */
static int write_visit(const stores *s, sop_embedder *e, const visit *v)
{
    size_t idl = strlen(v->id), nl = strlen(v->note);
    sop_val k = {v->id, idl}, val = {v->note, nl};
    sop_vitem item = {v->id, idl, v->triage, 3, NULL, 0};
    sop_text_doc doc = {v->id, idl, v->note, nl, NULL, 0};
    sop_kb_record rec = {v->id, v->note, "{\"kind\":\"visit\"}", NULL}; /* e embeds the text */
    int rc = sop_upsert(s->kv, &k, &val);
    if (!rc)
        rc = sop_vstore_upsert(s->vec, &item);
    if (!rc)
        rc = sop_text_upsert(s->text, &doc);
    if (!rc)
        rc = sop_kb_put(s->kb, e, &rec, 1);
    return rc;
}

/* Counts the items of the four stores: "kv 1, vectors 1, ...". Sets
 * *all_eq when each of them holds @want items. */
static int count_all(const stores *s, uint64_t want, int *all_eq)
{
    uint64_t kv, vec, kb;
    sop_text_stat ts;
    int rc = sop_store_count(s->kv, &kv);
    if (!rc)
        rc = sop_vstore_count(s->vec, &vec);
    if (!rc)
        rc = sop_text_stats(s->text, &ts);
    if (!rc)
        rc = sop_kb_count(s->kb, &kb);
    if (rc)
        return rc;
    printf("    KV items %llu, vectors %llu, text documents %llu, knowledge base records %llu\n",
           (unsigned long long)kv, (unsigned long long)vec, (unsigned long long)ts.docs,
           (unsigned long long)kb);
    *all_eq = kv == want && vec == want && ts.docs == want && kb == want;
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s DB_DIR\n", argv[0]);
        return 2;
    }
    sop_embedder *e = NULL;
    sop_db *db = NULL;
    int rc = sop_embedder_builtin(0, &e); /* offline, deterministic */
    if (rc)
        return fail(NULL, "embedder", rc);
    if ((rc = sop_db_open(argv[1], NULL, &db)))
        return fail(db, "open", rc);
    sop_txn *t;
    stores s;
    int ok, ok_inside;

    /* 1. v1 into the four stores, one commit */
    if ((rc = sop_txn_begin(db, SOP_TXN_WRITE, 0, &t)) || (rc = open_all(t, e, &s)) ||
        (rc = write_visit(&s, e, &v1)) || (rc = sop_txn_commit(t)))
        return fail(db, "transaction 1", rc);
    printf("transaction 1 wrote visit v1 to the four stores and committed\n");

    /* 2. v2 into the four stores: visible inside its transaction, then
     *    rolled back */
    if ((rc = sop_txn_begin(db, SOP_TXN_WRITE, 0, &t)) || (rc = open_all(t, e, &s)) ||
        (rc = write_visit(&s, e, &v2)))
        return fail(db, "transaction 2", rc);
    printf("transaction 2 wrote visit v2; inside it:\n");
    if ((rc = count_all(&s, 2, &ok_inside)))
        return fail(db, "count", rc);
    sop_txn_rollback(t); /* all four writes are undone together */
    printf("transaction 2 rolled back\n");

    /* 3. a read transaction: v1 everywhere, v2 nowhere */
    if ((rc = sop_txn_begin(db, SOP_TXN_READ, 0, &t)) || (rc = open_all(t, e, &s)))
        return fail(db, "read", rc);
    printf("a read transaction sees the committed state:\n");
    if ((rc = count_all(&s, 1, &ok)))
        return fail(db, "count", rc);
    sop_val k2 = {"v2", 2}, got;
    int v2_kv = sop_get(s.kv, &k2, &got);
    sop_kb_hit hits[2];
    uint32_t nh = 0;
    if ((rc = sop_kb_search(s.kb, e, "tummy ache and a temperature", 2, hits, &nh)))
        return fail(db, "search", rc);
    printf("    knowledge base search \"tummy ache and a temperature\": %s\n",
           nh ? hits[0].text : "(nothing)");
    int found_v1 = nh == 1 && strcmp(hits[0].id, "v1") == 0; /* hits live until the txn ends */
    sop_txn_rollback(t);
    if (!ok_inside || !ok || v2_kv != SOP_ENOTFOUND || !found_v1) {
        fprintf(stderr, "unexpected: a transaction does not see its writes, the rolled-back "
                        "visit is visible, or v1 is missing\n");
        return 1;
    }
    printf("v1 is in every store, v2 in none\n");
    sop_embedder_free(e);
    return sop_db_close(db) ? 1 : 0;
}
