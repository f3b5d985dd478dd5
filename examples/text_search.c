/*
 * text_search.c - a text index, a vector store and a KV store written in
 * one transaction, then BM25 and hybrid (rank fusion) queries.
 *
 * A few clinical notes: each note's text goes to KV store "notes" (by id),
 * its words to text index "notes-text" (with its title as a named field),
 * and a 3-feature topic vector (cardiac, respiratory, digestive) to vector
 * store "notes-vec", under the same id. All three commit together. Then:
 * a BM25 query, a query on the title field, a hybrid query, and a replace
 * whose effect on the statistics is exact.
 *
 * Usage: example_text_search DB_DIR
 */
#include <stdio.h>
#include <string.h>

#include "sop/search.h"

static const struct {
    const char *id, *title, *text;
    float topic[3];
} notes[] = {
    {"n1", "Angina", "Chest pain on exertion that eases with rest; the heart muscle lacks oxygen.",
     {0.9f, 0.2f, 0.0f}},
    {"n2", "Myocardial infarction",
     "Crushing chest pain, sweating and breathlessness: a heart attack needs care at once.",
     {1.0f, 0.3f, 0.1f}},
    {"n3", "Asthma", "Wheezing and shortness of breath when the airways narrow; inhalers help.",
     {0.0f, 1.0f, 0.0f}},
    {"n4", "Pneumonia", "Fever, cough and pain in the chest when breathing: infection of the lung.",
     {0.1f, 0.9f, 0.1f}},
    {"n5", "Gastritis", "Burning pain in the upper belly, nausea after meals; the stomach lining is "
                        "inflamed.",
     {0.0f, 0.0f, 1.0f}},
    {"n6", "Reflux", "Heartburn: acid rises from the stomach and burns behind the breastbone.",
     {0.3f, 0.0f, 0.9f}},
    {"n7", "Migraine", "Throbbing headache with nausea and sensitivity to light.", {0.0f, 0.0f, 0.2f}},
    {"n8", "Diabetes", "Thirst, frequent urination and tiredness; blood sugar stays high.",
     {0.1f, 0.0f, 0.3f}},
    {"n9", "Anaemia", "Tiredness, pale skin and a fast heartbeat from too few red cells.",
     {0.4f, 0.1f, 0.0f}},
    {"n10", "Sprain", "Swelling and bruising of the ankle after a twist.", {0.1f, 0.1f, 0.1f}},
};
#define NNOTES (sizeof notes / sizeof notes[0])

static int fail(sop_db *db, const char *what, int rc)
{
    fprintf(stderr, "%s: %s: %s\n", what, sop_strerror(rc), db ? sop_db_errmsg(db) : "");
    return 1;
}

static int open_all(sop_txn *t, sop_store **kv, sop_text **tx, sop_vstore **vs)
{
    int rc = sop_store_open(t, "notes", kv);
    if (rc == SOP_ENOTFOUND)
        rc = sop_store_create(t, "notes", NULL, kv);
    if (!rc && (rc = sop_text_open(t, "notes-text", tx)) == SOP_ENOTFOUND)
        rc = sop_text_create(t, "notes-text", NULL, tx);
    if (!rc && (rc = sop_vstore_open(t, "notes-vec", vs)) == SOP_ENOTFOUND) {
        sop_vstore_options o;
        sop_vstore_options_init(&o);
        o.dims = 3;
        rc = sop_vstore_create(t, "notes-vec", &o, vs);
    }
    return rc;
}

static void print_text(sop_store *kv, const sop_val *id)
{
    sop_val v;
    if (sop_get(kv, id, &v) == 0)
        printf("      %.*s\n", (int)v.size, (const char *)v.data);
}

static int query(sop_db *db, sop_text *tx, sop_store *kv, const char *q)
{
    sop_text_query tq;
    sop_text_query_init(&tq);
    tq.text = q;
    tq.len = strlen(q);
    tq.k = 3;
    sop_text_hit h[3];
    uint32_t n;
    int rc = sop_text_search(tx, &tq, h, &n);
    if (rc)
        return fail(db, "search", rc);
    printf("BM25 \"%s\":\n", q);
    for (uint32_t i = 0; i < n; i++) {
        printf("  %u. %.*s  %.3f\n", i + 1, (int)h[i].id.size, (const char *)h[i].id.data,
               h[i].score);
        print_text(kv, &h[i].id);
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s DB_DIR\n", argv[0]);
        return 2;
    }
    sop_db *db = NULL;
    int rc = sop_db_open(argv[1], NULL, &db);
    if (rc) {
        fail(db, "open", rc);
        sop_db_close(db);
        return 1;
    }
    sop_txn *t;
    sop_store *kv;
    sop_text *tx;
    sop_vstore *vs;
    if ((rc = sop_txn_begin(db, SOP_TXN_WRITE, 0, &t)) || (rc = open_all(t, &kv, &tx, &vs)))
        return fail(db, "open stores", rc);
    for (size_t i = 0; i < NNOTES && !rc; i++) {
        size_t idl = strlen(notes[i].id);
        sop_text_field title = {"title", notes[i].title, strlen(notes[i].title)};
        sop_text_doc d = {notes[i].id, idl, notes[i].text, strlen(notes[i].text), &title, 1};
        sop_vitem it = {notes[i].id, idl, notes[i].topic, 3, NULL, 0};
        sop_val k = {notes[i].id, idl}, v = {notes[i].text, strlen(notes[i].text)};
        if (!(rc = sop_upsert(kv, &k, &v)) && !(rc = sop_text_upsert(tx, &d)))
            rc = sop_vstore_upsert(vs, &it);
    }
    if (rc) {
        sop_txn_rollback(t);
        return fail(db, "write", rc);
    }
    if ((rc = sop_txn_commit(t))) /* notes, words and vectors, or none of them */
        return fail(db, "commit", rc);

    if ((rc = sop_txn_begin(db, SOP_TXN_READ, 0, &t)) || (rc = open_all(t, &kv, &tx, &vs)))
        return fail(db, "read", rc);
    if (query(db, tx, kv, "pain in the chest") || query(db, tx, kv, "title:pneumonia wheezing"))
        return 1;

    /* hybrid: the words of a vague complaint, and a "cardiac" direction */
    float cardiac[3] = {1, 0.2f, 0};
    sop_hybrid_query hq;
    sop_hybrid_query_init(&hq);
    hq.text = "burning behind the breastbone";
    hq.len = strlen(hq.text);
    hq.vec = cardiac;
    hq.dims = 3;
    hq.k = 3;
    sop_hybrid_hit hh[3];
    uint32_t nh;
    if ((rc = sop_text_hybrid(tx, vs, &hq, hh, &nh)))
        return fail(db, "hybrid", rc);
    printf("hybrid \"%s\" + cardiac vector:\n", hq.text);
    for (uint32_t i = 0; i < nh; i++)
        printf("  %u. %.*s  rrf %.4f (text rank %u, vector rank %u)\n", i + 1,
               (int)hh[i].id.size, (const char *)hh[i].id.data, hh[i].score, hh[i].text_rank,
               hh[i].vec_rank);
    sop_text_stat before;
    if ((rc = sop_text_stats(tx, &before)))
        return fail(db, "stats", rc);
    sop_txn_rollback(t);

    /* replace a note: the statistics change by exactly the difference */
    const char *shorter = "Heartburn after meals.";
    if ((rc = sop_txn_begin(db, SOP_TXN_WRITE, 0, &t)) || (rc = open_all(t, &kv, &tx, &vs)))
        return fail(db, "begin", rc);
    sop_text_doc d = {"n6", 2, shorter, strlen(shorter), NULL, 0};
    sop_text_stat after;
    if ((rc = sop_text_replace(tx, &d)) || (rc = sop_text_stats(tx, &after)) ||
        (rc = sop_txn_commit(t)))
        return fail(db, "replace", rc);
    printf("replace n6: documents %llu -> %llu, total length %llu -> %llu, terms %llu -> %llu\n",
           (unsigned long long)before.docs, (unsigned long long)after.docs,
           (unsigned long long)before.total_len, (unsigned long long)after.total_len,
           (unsigned long long)before.terms, (unsigned long long)after.terms);
    return sop_db_close(db) ? 1 : 0;
}
