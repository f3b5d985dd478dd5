/*
 * vector_basic.c - a vector store next to a KV store, in one transaction.
 *
 * Fruits are described by four features (sweetness, acidity, size,
 * redness, each 0..1). One transaction stores each fruit's vector with a
 * JSON payload in vector store "fruit-vec" and its price in KV store
 * "price"; both commit together. A READ transaction then asks for the
 * three fruits most like "small, sweet and red" and prints them with
 * their prices.
 *
 * Usage: example_vector_basic DB_DIR
 */
#include <stdio.h>
#include <string.h>

#include "sop/sop.h"
#include "sop/vector.h"

#define DIMS 4

static const struct {
    const char *name;
    float f[DIMS];
    const char *price;
} fruits[] = {
    {"cherry", {0.8f, 0.3f, 0.05f, 0.9f}, "12.00"},    {"strawberry", {0.7f, 0.4f, 0.1f, 1.0f}, "8.50"},
    {"lemon", {0.1f, 1.0f, 0.3f, 0.0f}, "3.20"},       {"watermelon", {0.7f, 0.1f, 1.0f, 0.6f}, "6.00"},
    {"banana", {0.8f, 0.1f, 0.4f, 0.0f}, "2.10"},      {"raspberry", {0.6f, 0.6f, 0.05f, 0.9f}, "14.00"},
    {"apple", {0.6f, 0.4f, 0.35f, 0.7f}, "3.00"},      {"grapefruit", {0.3f, 0.8f, 0.5f, 0.4f}, "4.40"},
};
#define NFRUITS (sizeof fruits / sizeof fruits[0])

static int fail(sop_db *db, const char *what, int rc)
{
    fprintf(stderr, "%s: %s: %s\n", what, sop_strerror(rc), db ? sop_db_errmsg(db) : "");
    return 1;
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
    sop_vstore *vs;
    sop_store *price;
    if ((rc = sop_txn_begin(db, SOP_TXN_WRITE, 0, &t)))
        return fail(db, "begin", rc);
    sop_vstore_options o;
    sop_vstore_options_init(&o);
    o.dims = DIMS;
    o.metric = SOP_METRIC_L2;
    rc = sop_vstore_open(t, "fruit-vec", &vs);
    if (rc == SOP_ENOTFOUND)
        rc = sop_vstore_create(t, "fruit-vec", &o, &vs);
    if (!rc && (rc = sop_store_open(t, "price", &price)) == SOP_ENOTFOUND)
        rc = sop_store_create(t, "price", NULL, &price);
    for (size_t i = 0; i < NFRUITS && !rc; i++) {
        char payload[64];
        int n = snprintf(payload, sizeof payload, "{\"name\":\"%s\"}", fruits[i].name);
        sop_vitem it = {fruits[i].name, strlen(fruits[i].name), fruits[i].f, DIMS, payload,
                        (size_t)n};
        sop_val k = {fruits[i].name, strlen(fruits[i].name)};
        sop_val v = {fruits[i].price, strlen(fruits[i].price)};
        if (!(rc = sop_vstore_upsert(vs, &it)))
            rc = sop_upsert(price, &k, &v);
    }
    if (rc) {
        sop_txn_rollback(t);
        fail(db, "write", rc);
        sop_db_close(db);
        return 1;
    }
    if ((rc = sop_txn_commit(t))) /* the vectors and the prices, or neither */
        return fail(db, "commit", rc);

    float want[DIMS] = {0.8f, 0.3f, 0.05f, 0.95f}; /* small, sweet, red */
    if ((rc = sop_txn_begin(db, SOP_TXN_READ, 0, &t)) || (rc = sop_vstore_open(t, "fruit-vec", &vs)) ||
        (rc = sop_store_open(t, "price", &price)))
        return fail(db, "read", rc);
    sop_vquery q;
    sop_vquery_init(&q);
    q.vec = want;
    q.dims = DIMS;
    q.k = 3;
    q.with_payload = 1;
    sop_vhit hits[3];
    uint32_t nh = 0;
    if ((rc = sop_vstore_query(vs, &q, hits, &nh)))
        return fail(db, "query", rc);
    printf("small, sweet and red:\n");
    for (uint32_t i = 0; i < nh; i++) {
        char id[32];
        snprintf(id, sizeof id, "%.*s", (int)hits[i].id.size, (const char *)hits[i].id.data);
        sop_val k = {id, strlen(id)}, p;
        int prc = sop_get(price, &k, &p);
        printf("  %-11s distance %.3f  %.*s  price %.*s\n", id, (double)hits[i].score,
               (int)hits[i].payload.size, (const char *)hits[i].payload.data,
               prc ? 1 : (int)p.size, prc ? "?" : (const char *)p.data);
    }
    sop_txn_rollback(t);
    return sop_db_close(db) ? 1 : 0;
}
