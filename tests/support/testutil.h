/* testutil.h - small helpers shared by every test (test support only). */
#ifndef SOP_TEST_TESTUTIL_H
#define SOP_TEST_TESTUTIL_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/** @brief A fresh, empty directory for a test: <base>/<name>, where <base>
 *  is $SOP_TEST_TMP/<program name> when SOP_TEST_TMP is set (kept after the
 *  run for post-mortems; cleared on the next run), else /tmp/soptest-<pid>
 *  (removed at exit unless SOP_TEST_KEEP is set). Old contents of the
 *  directory are removed recursively; missing parents are created. @p name
 *  may contain '/'. Aborts the test on failure.
 *  @return the absolute path, valid until the process exits. Thread-safe. */
const char *tu_tmpdir(const char *name);

/** @brief The test's seed: $SOP_TEST_SEED if set, else one made from the
 *  time and the pid. Prints "SEED=<n>" to stderr the first time.
 *  Thread-safe; the same value for the whole process. */
unsigned tu_seed(void);

/** @brief A fast PRNG (splitmix64): advances @p state, returns 64 bits. */
uint64_t tu_rand(uint64_t *state);

/** @brief A uniform value in [0, @p n) (0 when n == 0). */
uint64_t tu_rand_below(uint64_t *state, uint64_t n);

/** @brief Removes @p path recursively (files, directories, symlinks
 *  themselves, never their targets). A missing path is not an error;
 *  failures are ignored. */
void tu_rmtree(const char *path);
/* Replaces directory @dst by a byte copy of the regular files of @src.
 * Returns 0, or -1 after printing why to stderr. */
int tu_copydir(const char *src, const char *dst);

#ifdef __cplusplus
}
#endif
#endif
