/* check.h - CHECK(): a check that counts its failures and goes on (test
 * support only), for the tests that are plain programs rather than cmocka
 * suites (the clustered tests, the out-of-memory sweep). */
#ifndef SOP_TEST_CHECK_H
#define SOP_TEST_CHECK_H

/* Checks failed so far in this process; main returns tu_failed ? 1 : 0. */
extern int tu_failed;

/** @brief Reports a failed check: prints "<label> <file>:<line>: " and the
 *  printf-style message to stderr, and counts it in tu_failed. */
void tu_check_failed(const char *label, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* When @cond is false: prints "<label> file:line: message" and counts it. */
#define TU_CHECK_AS(label, cond, ...)                                                              \
    do {                                                                                           \
        if (!(cond))                                                                               \
            tu_check_failed(label, __FILE__, __LINE__, __VA_ARGS__);                               \
    } while (0)

/* When @cond is false: prints "FAIL file:line: message" and counts it. */
#define CHECK(cond, ...) TU_CHECK_AS("FAIL", cond, __VA_ARGS__)

#endif
