/* A program outside the tree that uses the installed libsop. */
#include <sop/sop.h>
#include <stdio.h>

static int put(sop_db *db)
{
    sop_txn *txn;
    sop_store *s;
    sop_val k = {"hello", 5}, v = {"world", 5};
    int rc = sop_txn_begin(db, SOP_TXN_WRITE, 0, &txn);
    if (rc)
        return rc;
    rc = sop_store_open(txn, "greetings", &s);
    if (rc == SOP_ENOTFOUND)
        rc = sop_store_create(txn, "greetings", NULL, &s);
    if (!rc)
        rc = sop_upsert(s, &k, &v);
    if (rc) {
        sop_txn_rollback(txn);
        return rc;
    }
    return sop_txn_commit(txn);
}

static int get(sop_db *db)
{
    sop_txn *txn;
    sop_store *s;
    sop_val k = {"hello", 5}, out;
    int rc = sop_txn_begin(db, SOP_TXN_READ, 0, &txn);
    if (rc)
        return rc;
    if (!(rc = sop_store_open(txn, "greetings", &s)) && !(rc = sop_get(s, &k, &out)))
        printf("consumer: hello -> %.*s (libsop %s)\n", (int)out.size, (const char *)out.data,
               sop_version(NULL, NULL, NULL));
    sop_txn_rollback(txn);
    return rc;
}

int main(int argc, char **argv)
{
    sop_db *db;
    int rc = sop_db_open(argc > 1 ? argv[1] : "consumer-db", NULL, &db);
    if (!rc && !(rc = put(db)))
        rc = get(db);
    if (rc)
        fprintf(stderr, "consumer: %s: %s\n", sop_strerror(rc), sop_db_errmsg(db));
    int crc = sop_db_close(db);
    return rc || crc ? 1 : 0;
}
