/* cluster_fixture.c - the clustered tests' folders and workload
 * (cluster_fixture.h). */
#include "cluster_fixture.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "testutil.h"

void cl_fx_init(cl_fx *x, const char *name, int ec, int replica)
{
    const char *root = tu_tmpdir(name);
    snprintf(x->db, sizeof x->db, "%s/db", root);
    snprintf(x->rep, sizeof x->rep, "%s/replica", root);
    snprintf(x->prefix, sizeof x->prefix, "%s/", x->db);
    for (int d = 0; d < CL_NDRIVES; d++) {
        snprintf(x->drv[d], sizeof x->drv[d], "%s/drive%d", root, d);
        x->drives[d] = x->drv[d];
    }
    x->ec = ec;
    x->replica = replica;
}

void cl_options(const cl_fx *x, const char *redis_url, sop_vfs *vfs, sop_db_options *o)
{
    sop_db_options_init(o);
    o->mode = SOP_CLUSTERED;
    o->redis_url = redis_url;
    o->lease_ms = CL_LEASE_MS;
    o->segment_bytes = 1u << 20;
    o->vfs = vfs;
    if (x->ec) {
        o->drives = x->drives;
        o->ndrives = CL_NDRIVES;
        o->parity = CL_PARITY;
    }
    if (x->replica)
        o->replica_path = x->rep;
}

sop_db *cl_open(const cl_fx *x, const sop_db_options *o)
{
    sop_db *db;
    int rc = sop_db_open(x->db, o, &db);
    if (rc) {
        fprintf(stderr, "open %s: %s (%s)\n", x->db, sop_strerror(rc), sop_db_errmsg(db));
        sop_db_close(db);
        return NULL;
    }
    return db;
}

void cl_value(int i, char *buf, size_t n) { memset(buf, 'a' + i % 26, n); }

static int put(sop_db *db, int from, int to, int per, size_t vlen, int retry)
{
    char val[4096];
    if (vlen > sizeof val)
        return -1;
    for (int k = from; k < to;) {
        sop_txn *t;
        sop_store *s;
        int rc = sop_txn_begin(db, SOP_TXN_WRITE, 0, &t);
        if (rc)
            return rc;
        rc = sop_store_open(t, "s", &s);
        if (rc == SOP_ENOTFOUND)
            rc = sop_store_create(t, "s", NULL, &s);
        for (int i = k; !rc && i < k + per && i < to; i++) {
            char key[16];
            snprintf(key, sizeof key, "k%06d", i);
            cl_value(i, val, vlen);
            rc = sop_upsert(s, &(sop_val){key, strlen(key)}, &(sop_val){val, vlen});
        }
        rc = rc ? (sop_txn_rollback(t), rc) : sop_txn_commit(t);
        if (rc == SOP_ECONFLICT && retry)
            continue;
        if (rc)
            return rc;
        k += per;
    }
    return 0;
}

int cl_put(sop_db *db, int from, int to, int per, size_t vlen)
{
    return put(db, from, to, per, vlen, 0);
}

int cl_put_retrying(sop_db *db, int from, int to, int per, size_t vlen)
{
    return put(db, from, to, per, vlen, 1);
}

int cl_seen(sop_db *db, int n, size_t vlen)
{
    sop_txn *t;
    sop_store *s;
    int got = 0, bad = 0;
    char want[4096];
    if (vlen > sizeof want || sop_txn_begin(db, SOP_TXN_READ, 0, &t))
        return -1;
    if (sop_store_open(t, "s", &s) == 0)
        for (int i = 0; i < n; i++) {
            char key[16];
            snprintf(key, sizeof key, "k%06d", i);
            sop_val v;
            int rc = sop_get(s, &(sop_val){key, strlen(key)}, &v);
            cl_value(i, want, vlen);
            if (rc == 0 && v.size == vlen && memcmp(v.data, want, vlen) == 0)
                got++;
            else if (rc != SOP_ENOTFOUND)
                bad++;
        }
    sop_txn_rollback(t);
    return bad ? -1 : got;
}

int cl_exists(const char *dir, const char *name)
{
    char p[700];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    return access(p, F_OK) == 0;
}

int64_t cl_get_i64(sop_store *s, const char *key)
{
    sop_val k = {key, strlen(key)}, v;
    int64_t x = 0;
    if (sop_get(s, &k, &v) == 0 && v.size == sizeof x)
        memcpy(&x, v.data, sizeof x);
    return x;
}

int cl_put_i64(sop_store *s, const char *key, int64_t v)
{
    sop_val k = {key, strlen(key)}, val = {&v, sizeof v};
    return sop_upsert(s, &k, &val);
}

int cl_create_accounts(sop_db *db, int nacct, int64_t initial)
{
    sop_txn *t;
    sop_store *s;
    int rc = sop_txn_begin(db, SOP_TXN_WRITE, 0, &t);
    if (rc) {
        fprintf(stderr, "setup: %s (%s)\n", sop_strerror(rc), sop_db_errmsg(db));
        return rc;
    }
    rc = sop_store_create(t, "acct", NULL, &s);
    for (int i = 0; !rc && i < nacct; i++) {
        char key[16];
        snprintf(key, sizeof key, "a%02d", i);
        rc = cl_put_i64(s, key, initial);
    }
    rc = rc ? (sop_txn_rollback(t), rc) : sop_txn_commit(t);
    if (rc)
        fprintf(stderr, "setup: %s (%s)\n", sop_strerror(rc), sop_db_errmsg(db));
    return rc;
}
