/*
 * redis_url.c - the parts of redis_url beyond host and port, against a
 * real redis-server on loopback: the database number (the keys land in
 * that Redis database and no other), the password (right: opens; wrong or
 * missing: SOP_EREDIS with a message that says so and never contains the
 * password), and malformed addresses (-EINVAL, password masked).
 *
 * Exit 0 when every check held, 1 otherwise, 77 without redis-server.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "redis_server.h"
#include "sop/sop.h"
#include "testutil.h"

#define SECRET "s3cret-pw"

static int open_url(const char *path, const char *url, char *msg, size_t msglen)
{
    sop_db_options o;
    sop_db_options_init(&o);
    o.mode = SOP_CLUSTERED;
    o.redis_url = url;
    o.redis_timeout_ms = 1000;
    o.lease_ms = 300; /* a fresh Redis state costs one lease of waiting */
    sop_db *db;
    int rc = sop_db_open(path, &o, &db);
    snprintf(msg, msglen, "%s", sop_db_errmsg(db));
    if (!rc) {
        sop_txn *t;
        sop_store *s;
        rc = sop_txn_begin(db, SOP_TXN_WRITE, 0, &t);
        if (!rc) {
            rc = sop_store_open(t, "s", &s);
            if (rc == SOP_ENOTFOUND)
                rc = sop_store_create(t, "s", NULL, &s);
            sop_val k = {"k", 1}, v = {"v", 1};
            rc = rc ? rc : sop_upsert(s, &k, &v);
            rc = rc ? (sop_txn_rollback(t), rc) : sop_txn_commit(t);
        }
        if (rc)
            snprintf(msg, msglen, "%s", sop_db_errmsg(db));
    }
    sop_db_close(db);
    return rc;
}

/* How many keys Redis database @n holds (-1 when redis-cli fails). */
static long dbsize(const tu_redis *r, int n, const char *auth)
{
    char cmd[256];
    snprintf(cmd, sizeof cmd, "redis-cli -p %d %s%s -n %d DBSIZE 2>/dev/null", r->port,
             auth ? "-a " : "", auth ? auth : "", n);
    FILE *f = popen(cmd, "r");
    if (!f)
        return -1;
    long v = -1;
    if (fscanf(f, "%ld", &v) != 1)
        v = -1;
    pclose(f);
    return v;
}

int main(void)
{
    tu_redis r;
    int rc = tu_redis_start(&r, "redis-url");
    if (rc == 77) {
        fprintf(stderr, "redis-server not installed: skipped\n");
        return 77;
    }
    if (rc)
        return 1;
    const char *path = tu_tmpdir("redis_url/db");
    char url[256], msg[512];

    /* the database number */
    snprintf(url, sizeof url, "redis://127.0.0.1:%d/3", r.port);
    rc = open_url(path, url, msg, sizeof msg);
    CHECK(rc == 0, "open with /3: %s (%s)", sop_strerror(rc), msg);
    CHECK(dbsize(&r, 3, NULL) > 0, "no keys in Redis database 3");
    CHECK(dbsize(&r, 0, NULL) == 0, "keys in Redis database 0 (%ld)", dbsize(&r, 0, NULL));

    /* a password */
    CHECK(tu_redis_cli(&r, "CONFIG SET requirepass " SECRET) == 0, "CONFIG SET requirepass");
    snprintf(url, sizeof url, "redis://127.0.0.1:%d/3", r.port);
    rc = open_url(path, url, msg, sizeof msg);
    CHECK(rc == SOP_EREDIS, "no password: %s (%s)", sop_strerror(rc), msg);
    CHECK(strstr(msg, "127.0.0.1") != NULL, "no address in \"%s\"", msg);
    snprintf(url, sizeof url, "redis://:wrong-pw@127.0.0.1:%d/3", r.port);
    rc = open_url(path, url, msg, sizeof msg);
    CHECK(rc == SOP_EREDIS, "wrong password: %s (%s)", sop_strerror(rc), msg);
    CHECK(strstr(msg, "password") != NULL, "message does not name the password: \"%s\"", msg);
    CHECK(strstr(msg, "wrong-pw") == NULL, "message shows the password: \"%s\"", msg);
    snprintf(url, sizeof url, "redis://:" SECRET "@127.0.0.1:%d/3", r.port);
    rc = open_url(path, url, msg, sizeof msg);
    CHECK(rc == 0, "right password: %s (%s)", sop_strerror(rc), msg);
    snprintf(url, sizeof url, "redis://user:" SECRET "@127.0.0.1:%d/3", r.port);
    rc = open_url(path, url, msg, sizeof msg);
    CHECK(rc == 0, "user:password form: %s (%s)", sop_strerror(rc), msg);
    CHECK(dbsize(&r, 0, SECRET) == 0, "keys in Redis database 0 after the password");

    /* malformed addresses: -EINVAL, and the password never echoed */
    static const char *bad[] = {"redis://:" SECRET "@127.0.0.1:99999/3",
                                "redis://:" SECRET "@127.0.0.1:1/x", "redis://:6379", ""};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        rc = open_url(path, bad[i], msg, sizeof msg);
        CHECK(rc == -EINVAL, "\"%s\": %s (%s)", bad[i], sop_strerror(rc), msg);
        CHECK(strstr(msg, SECRET) == NULL, "message shows the password: \"%s\"", msg);
        CHECK(*msg, "no message for \"%s\"", bad[i]);
    }

    tu_redis_kill(&r);
    if (tu_failed)
        fprintf(stderr, "%d checks failed\n", tu_failed);
    else
        printf("redis_url: ok\n");
    return tu_failed ? 1 : 0;
}
