/* err.h - detailed error messages, kept per calling thread and database. */
#ifndef SOP_ERR_H
#define SOP_ERR_H
#include "sop/sop.h"

/* Records a message for the calling thread on @db (may be NULL) and
 * returns @rc, so that call sites read: return sop__err(db, rc, "...", ...).
 * -ENOSPC, -EFBIG and -EDQUOT come back as SOP_EFULL. */
int sop__err(const sop_db *db, int rc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Clears the calling thread's message for @db. */
void sop__err_clear(const sop_db *db);

#endif
