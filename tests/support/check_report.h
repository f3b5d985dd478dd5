/* check_report.h - runs an integrity check (sop_vstore_check(),
 * sop_text_check(), sop_kb_check()) in a READ transaction, collects the
 * problem lines it reports and asserts on them (test support only, for
 * cmocka suites: a failed assertion ends the test). */
#ifndef SOP_TEST_CHECK_REPORT_H
#define SOP_TEST_CHECK_REPORT_H

#include <stdint.h>

#include "sop/sop.h"

/* sop_vstore_check(), sop_text_check() or sop_kb_check(). */
typedef int (*tu_check_call)(sop_txn *txn, const char *name, sop_check_fn fn, void *ctx,
                             uint64_t *problems);

/** @brief Asserts that @p check finds @p name in @p db clean: SOP_OK, no
 *  problem counted, no line reported (the lines are printed when any). */
void tu_assert_clean(sop_db *db, tu_check_call check, const char *name);

/** @brief Asserts that @p check finds @p name in @p db damaged: SOP_ECORRUPT,
 *  as many problems counted as lines reported, and a line that contains
 *  @p what and, unless @p kind is NULL, starts with "<kind> <name>: " (a
 *  line of the check itself, not one it passes on from the check of an
 *  index it holds). With SOP_TEST_SHOW set, prints the lines. */
void tu_assert_reports(sop_db *db, tu_check_call check, const char *kind, const char *name,
                       const char *what);

#endif
