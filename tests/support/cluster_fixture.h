/* cluster_fixture.h - the database folders and the workload of the
 * clustered tests (tests/cluster; test support only): a database
 * directory with its replica folder and four drive folders, the options
 * that open it in clustered mode, and a store "s" of keys k000000.. whose
 * values tell which key they belong to. */
#ifndef SOP_TEST_CLUSTER_FIXTURE_H
#define SOP_TEST_CLUSTER_FIXTURE_H

#include <stddef.h>
#include <stdint.h>

#include "sop/sop.h"

#define CL_NDRIVES 4
#define CL_PARITY 2
#define CL_LEASE_MS 1000 /* the lease of cl_options() */

typedef struct cl_fx {
    char db[600];     /* the database directory */
    char rep[600];    /* its replica folder */
    char prefix[610]; /* db + "/": the prefix fault VFS's path prefix */
    char drv[CL_NDRIVES][600];
    const char *drives[CL_NDRIVES];
    int ec;      /* erasure coded over the drives (parity CL_PARITY) */
    int replica; /* with the replica folder */
} cl_fx;

/** @brief The folders under tu_tmpdir(@p name): db, replica, drive0..3
 *  (none created); @p ec and @p replica say which ones the database
 *  uses. */
void cl_fx_init(cl_fx *x, const char *name, int ec, int replica);

/** @brief Options for @p x in clustered mode on @p redis_url: lease
 *  CL_LEASE_MS, 1 MiB segments, @p vfs (NULL: POSIX), the drives and the
 *  replica folder as @p x says. */
void cl_options(const cl_fx *x, const char *redis_url, sop_vfs *vfs, sop_db_options *o);

/** @brief Opens @p x's database with @p o; NULL (after printing why) when
 *  it cannot. */
sop_db *cl_open(const cl_fx *x, const sop_db_options *o);

/** @brief The value of key @p i: @p n bytes of one letter. */
void cl_value(int i, char *buf, size_t n);

/** @brief Upserts keys [@p from, @p to) of store "s" (created when
 *  missing) with @p vlen-byte values (at most 4096), @p per a transaction.
 *  0, or the first error. */
int cl_put(sop_db *db, int from, int to, int per, size_t vlen);

/** @brief cl_put(), but a transaction that fails with SOP_ECONFLICT is run
 *  again. */
int cl_put_retrying(sop_db *db, int from, int to, int per, size_t vlen);

/** @brief How many of keys [0, @p n) a READ transaction of @p db sees with
 *  their @p vlen-byte value; -1 when the transaction cannot begin, or a key
 *  is there with another value or cannot be read. */
int cl_seen(sop_db *db, int n, size_t vlen);

/** @brief Whether file @p name exists in folder @p dir. */
int cl_exists(const char *dir, const char *name);

/** @brief An int64 value of store @p s (0 when missing). */
int64_t cl_get_i64(sop_store *s, const char *key);

/** @brief Upserts an int64 value into store @p s. */
int cl_put_i64(sop_store *s, const char *key, int64_t v);

/** @brief The bank's start: store "acct" created with accounts a00..
 *  (@p nacct of them) holding @p initial each, committed. Prints why when
 *  it fails. */
int cl_create_accounts(sop_db *db, int nacct, int64_t initial);

#endif
