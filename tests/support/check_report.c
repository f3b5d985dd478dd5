/* check_report.c - collecting and asserting the problem lines of the
 * integrity checks (check_report.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "check_report.h"

/* The lines reported by one check: the first MAX_LINES kept whole (a line
 * is at most 1023 characters), all of them counted. */
#define MAX_LINES 64

typedef struct lines {
    int n;
    char text[MAX_LINES][1024];
} lines;

static void collect(const char *problem, void *ctx)
{
    lines *l = ctx;
    if (l->n < MAX_LINES)
        snprintf(l->text[l->n], sizeof l->text[0], "%s", problem);
    l->n++;
}

/* Runs @check on @name in a READ transaction: its code, lines in @l. */
static int run(sop_db *db, tu_check_call check, const char *name, lines *l, uint64_t *problems)
{
    sop_txn *t;
    memset(l, 0, sizeof *l);
    assert_int_equal(sop_txn_begin(db, SOP_TXN_READ, 0, &t), 0);
    int rc = check(t, name, collect, l, problems);
    sop_txn_rollback(t);
    return rc;
}

static void print(const lines *l, const char *label)
{
    for (int i = 0; i < l->n && i < MAX_LINES; i++)
        fprintf(stderr, "%s%s\n", label, l->text[i]);
}

void tu_assert_clean(sop_db *db, tu_check_call check, const char *name)
{
    lines l;
    uint64_t p = 99;
    int rc = run(db, check, name, &l, &p);
    print(&l, "unexpected: ");
    assert_int_equal(rc, SOP_OK);
    assert_int_equal(p, 0);
    assert_int_equal(l.n, 0);
}

void tu_assert_reports(sop_db *db, tu_check_call check, const char *kind, const char *name,
                       const char *what)
{
    lines l;
    uint64_t p = 0;
    char prefix[256] = "";
    if (kind)
        snprintf(prefix, sizeof prefix, "%s %s: ", kind, name);
    int rc = run(db, check, name, &l, &p);
    assert_int_equal(rc, SOP_ECORRUPT);
    assert_true(p > 0);
    assert_int_equal((int)p, l.n);
    if (getenv("SOP_TEST_SHOW")) /* the lines, to read them */
        print(&l, "  ");
    for (int i = 0; i < l.n && i < MAX_LINES; i++)
        if (!strncmp(l.text[i], prefix, strlen(prefix)) && strstr(l.text[i], what))
            return;
    print(&l, "reported: ");
    fail_msg("no problem mentions \"%s\"", what);
}
