/*
 * kv_basic.c - the smallest complete program: open a database, create a
 * store, write in one transaction, read back with a cursor in another.
 *
 *   example_kv_basic DIR
 */
#include <sop/sop.h>
#include <stdio.h>
#include <string.h>

#define CHECK(call)                                                                                \
    do {                                                                                           \
        int rc_ = (call);                                                                          \
        if (rc_) {                                                                                 \
            fprintf(stderr, "%s: %s (%s)\n", #call, sop_strerror(rc_), sop_db_errmsg(db));         \
            return 1;                                                                              \
        }                                                                                          \
    } while (0)

int main(int argc, char **argv)
{
    const char *dir = argc > 1 ? argv[1] : "kv-basic-db";
    sop_db *db = NULL;
    sop_txn *txn;
    sop_store *fruit;

    CHECK(sop_db_open(dir, NULL, &db)); /* creates the directory if needed */

    /* 1. write: a store and three items, committed atomically */
    CHECK(sop_txn_begin(db, SOP_TXN_WRITE, 0, &txn));
    int rc = sop_store_open(txn, "fruit", &fruit);
    if (rc == SOP_ENOTFOUND)
        rc = sop_store_create(txn, "fruit", NULL, &fruit); /* default: unique keys, bytewise */
    CHECK(rc);
    const char *names[] = {"cherry", "apple", "banana"};
    const char *colors[] = {"red", "green", "yellow"};
    for (int i = 0; i < 3; i++) {
        sop_val k = {names[i], strlen(names[i])}, v = {colors[i], strlen(colors[i])};
        CHECK(sop_upsert(fruit, &k, &v));
    }
    CHECK(sop_txn_commit(txn)); /* durable when it returns (SOP_SYNC_FULL) */

    /* 2. read: a snapshot, items in key order */
    CHECK(sop_txn_begin(db, SOP_TXN_READ, 0, &txn));
    CHECK(sop_store_open(txn, "fruit", &fruit));
    uint64_t n;
    CHECK(sop_store_count(fruit, &n));
    printf("%llu fruits:\n", (unsigned long long)n);
    sop_cursor *c;
    CHECK(sop_cursor_open(fruit, &c));
    for (rc = sop_cursor_first(c); rc == 0; rc = sop_cursor_next(c)) {
        sop_val k, v;
        CHECK(sop_cursor_get(c, &k, &v));
        printf("  %.*s is %.*s\n", (int)k.size, (const char *)k.data, (int)v.size,
               (const char *)v.data);
    }
    if (rc != SOP_ENOTFOUND) /* ENOTFOUND: moved past the last item */
        CHECK(rc);
    sop_cursor_close(c);
    sop_txn_rollback(txn); /* ends a read transaction */
    CHECK(sop_db_close(db));
    return 0;
}
