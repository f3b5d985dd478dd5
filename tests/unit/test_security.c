/*
 * test_security.c - what a database leaves on disk and what names it
 * accepts:
 *   - with umask 0, every file the engine creates is 0600 and every folder
 *     0700 (database, replica folder, erasure-coding drives), whatever the
 *     layers written (KV, vector, text, knowledge base, stream);
 *   - names of stores, vector stores, text indexes and knowledge bases
 *     that could name a path ("../x", "a/b", ".hidden", "") are refused
 *     with SOP_ENAME (or -EINVAL) and create nothing.
 * (No secret in messages: tests/cluster/redis_url.c.)
 */
#include <dirent.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "sop/agent.h"
#include "sop/search.h"
#include "sop/vector.h"
#include "testutil.h"

static int g_bad;

/* Every entry under @dir: files 0600, folders 0700 (symlinks: none). */
static void walk(const char *dir)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        char p[1024];
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        struct stat st;
        assert_int_equal(lstat(p, &st), 0);
        unsigned mode = st.st_mode & 07777;
        if (S_ISDIR(st.st_mode)) {
            if (mode != 0700) {
                print_error("folder %s has mode %o\n", p, mode);
                g_bad++;
            }
            walk(p);
        } else if (S_ISREG(st.st_mode)) {
            if (mode != 0600) {
                print_error("file %s has mode %o\n", p, mode);
                g_bad++;
            }
        } else {
            print_error("%s is neither a file nor a folder\n", p);
            g_bad++;
        }
    }
    closedir(d);
}

static void test_modes(void **state)
{
    (void)state;
    mode_t old = umask(0);
    const char *root = tu_tmpdir("security/modes");
    char db_path[600], replica[600], drv[4][600];
    const char *drives[4];
    snprintf(db_path, sizeof db_path, "%s/db", root);
    snprintf(replica, sizeof replica, "%s/replica", root);
    for (int i = 0; i < 4; i++) {
        snprintf(drv[i], sizeof drv[i], "%s/drive%d", root, i);
        drives[i] = drv[i];
    }
    sop_db_options o;
    sop_db_options_init(&o);
    o.replica_path = replica;
    o.drives = drives;
    o.ndrives = 4;
    o.parity = 1;
    sop_db *db;
    assert_int_equal(sop_db_open(db_path, &o, &db), 0);
    sop_embedder *e;
    assert_int_equal(sop_embedder_builtin(32, &e), 0);
    sop_txn *t;
    assert_int_equal(sop_txn_begin(db, SOP_TXN_WRITE, 0, &t), 0);
    sop_store *s;
    sop_vstore *vs;
    sop_text *tx;
    sop_kb *kb;
    assert_int_equal(sop_store_create(t, "kv", NULL, &s), 0);
    sop_vstore_options vo;
    sop_vstore_options_init(&vo);
    vo.dims = 4;
    assert_int_equal(sop_vstore_create(t, "vec", &vo, &vs), 0);
    assert_int_equal(sop_text_create(t, "text", NULL, &tx), 0);
    assert_int_equal(sop_kb_create(t, "kb", sop_embedder_name(e), sop_embedder_dim(e), &kb), 0);
    for (int i = 0; i < 50; i++) {
        char id[16], body[64];
        snprintf(id, sizeof id, "id%d", i);
        snprintf(body, sizeof body, "note %d about a fever and a cough", i);
        float v[4] = {(float)i, 1, 2, 3};
        sop_val k = {id, strlen(id)}, val = {body, strlen(body)};
        sop_vitem it = {id, strlen(id), v, 4, NULL, 0};
        sop_text_doc doc = {id, strlen(id), body, strlen(body), NULL, 0};
        sop_kb_record rec = {id, body, NULL, NULL};
        assert_int_equal(sop_upsert(s, &k, &val), 0);
        assert_int_equal(sop_vstore_upsert(vs, &it), 0);
        assert_int_equal(sop_text_upsert(tx, &doc), 0);
        assert_int_equal(sop_kb_put(kb, e, &rec, 1), 0);
    }
    assert_int_equal(sop_txn_commit(t), 0);
    assert_int_equal(sop_db_checkpoint(db), 0);
    assert_int_equal(sop_db_close(db), 0);
    sop_embedder_free(e);
    umask(old);
    walk(root);
    assert_int_equal(g_bad, 0);
}

static void test_names(void **state)
{
    (void)state;
    const char *root = tu_tmpdir("security/names");
    sop_db *db;
    assert_int_equal(sop_db_open(root, NULL, &db), 0);
    sop_embedder *e;
    assert_int_equal(sop_embedder_builtin(32, &e), 0);
    static const char *bad[] = {"../x", "a/b", "/abs", ".hidden", "", "..", "a\\b", "a b"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        sop_txn *t;
        assert_int_equal(sop_txn_begin(db, SOP_TXN_WRITE, 0, &t), 0);
        sop_store *s;
        sop_vstore *vs;
        sop_text *tx;
        sop_kb *kb;
        sop_vstore_options vo;
        sop_vstore_options_init(&vo);
        vo.dims = 4;
        int r1 = sop_store_create(t, bad[i], NULL, &s);
        int r2 = sop_vstore_create(t, bad[i], &vo, &vs);
        int r3 = sop_text_create(t, bad[i], NULL, &tx);
        int r4 = sop_kb_create(t, bad[i], sop_embedder_name(e), sop_embedder_dim(e), &kb);
        if (r1 != SOP_ENAME || r2 != SOP_ENAME || r3 != SOP_ENAME ||
            (r4 != SOP_ENAME && r4 != -EINVAL))
            print_error("name \"%s\": store %d, vstore %d, text %d, kb %d\n", bad[i], r1, r2, r3,
                        r4);
        assert_int_equal(r1, SOP_ENAME);
        assert_int_equal(r2, SOP_ENAME);
        assert_int_equal(r3, SOP_ENAME);
        assert_true(r4 == SOP_ENAME || r4 == -EINVAL);
        sop_txn_rollback(t);
    }
    sop_embedder_free(e);
    assert_int_equal(sop_db_close(db), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_modes),
        cmocka_unit_test(test_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
