/*
 * cmd_db.c - `sop stats` and `sop check`: whole-database commands.
 */
#include <errno.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "sop/agent.h"
#include "sop/search.h"
#include "sop/vector.h"

/* Counting a big store may take a while. */
#define DB_READ_MAX_MS (24u * 3600u * 1000u)

/* ------------------------------------------------------------------ */
/* stats                                                              */
/* ------------------------------------------------------------------ */

static const struct {
    const char *name;
    size_t off;
} stat_fields[] = {
#define F(x) {#x, offsetof(sop_db_stat, x)}
    F(commits),    F(conflicts),  F(merges),      F(syncs),      F(checkpoints),
    F(file_bytes), F(live_bytes), F(segments),    F(nodes),      F(cache_bytes),
    F(cache_hits), F(cache_misses),
#undef F
};

typedef struct store_list {
    char **names;
    size_t n, cap;
    int oom;
} store_list;

static int collect_name(const char *name, void *arg)
{
    store_list *l = arg;
    if (l->n == l->cap) {
        size_t ncap = l->cap ? l->cap * 2 : 16;
        char **nn = realloc(l->names, ncap * sizeof *nn);
        if (!nn) {
            l->oom = 1;
            return 1;
        }
        l->names = nn;
        l->cap = ncap;
    }
    char *copy = strdup(name);
    if (!copy) {
        l->oom = 1;
        return 1;
    }
    l->names[l->n++] = copy;
    return 0;
}

static void store_list_free(store_list *l)
{
    for (size_t i = 0; i < l->n; i++) {
        free(l->names[i]);
    }
    free(l->names);
}

enum { ST_JSON, ST_NOPTS };

int cmd_stats(const cli_command *self, int argc, char **argv)
{
    cli_opt opts[] = {
        [ST_JSON] = {"json", 0, 0, NULL},
        [ST_NOPTS] = {NULL, 0, 0, NULL},
    };
    char **pos = calloc((size_t)argc + 1, sizeof *pos);
    int npos = 0;
    if (!pos) {
        return cli_fail(NULL, -ENOMEM, "out of memory");
    }
    int rc = cli_parse(self, argc, argv, opts, pos, &npos);
    if (rc == 0 && npos != 1) {
        rc = cli_usage(npos ? "too many arguments: expected DB" : "missing argument: DB");
    }
    if (rc != 0) {
        free(pos);
        return rc == CLI_PARSE_HELP ? CLI_EXIT_OK : rc;
    }
    int json = opts[ST_JSON].value != NULL;
    sop_db *db = NULL;
    sop_txn *txn = NULL;
    store_list list = {NULL, 0, 0, 0};
    uint64_t *counts = NULL;
    sop_db_stat st;
    memset(&st, 0, sizeof st);

    rc = cli_open_db(pos[0], CLI_OPEN_RDONLY, &db);
    if (rc == 0) {
        int r = sop_db_stats(db, &st);
        if (r != SOP_OK) {
            rc = cli_fail(db, r, "reading the statistics");
        }
    }
    if (rc == 0) {
        int r = sop_txn_begin(db, SOP_TXN_READ, DB_READ_MAX_MS, &txn);
        if (r != SOP_OK) {
            rc = cli_fail(db, r, "beginning a transaction");
        }
    }
    if (rc == 0) {
        int r = sop_store_list(txn, collect_name, &list);
        if (list.oom) {
            rc = cli_fail(NULL, -ENOMEM, "listing the stores");
        } else if (r != SOP_OK) {
            rc = cli_fail(db, r, "listing the stores");
        }
    }
    if (rc == 0 && list.n) {
        counts = calloc(list.n, sizeof *counts);
        if (!counts) {
            rc = cli_fail(NULL, -ENOMEM, "out of memory");
        }
    }
    for (size_t i = 0; rc == 0 && i < list.n; i++) {
        sop_store *s = NULL;
        int r = sop_store_open(txn, list.names[i], &s);
        if (r == SOP_OK) {
            r = sop_store_count(s, &counts[i]);
        }
        if (r != SOP_OK) {
            rc = cli_fail(db, r, "counting the items of store '%s'", list.names[i]);
        }
    }
    sop_txn_rollback(txn);
    if (rc == 0) {
        const size_t nf = sizeof stat_fields / sizeof stat_fields[0];
        if (json) {
            fputc('{', stdout);
            for (size_t i = 0; i < nf; i++) {
                uint64_t v;
                memcpy(&v, (const char *)&st + stat_fields[i].off, sizeof v);
                printf("%s\"%s\":%" PRIu64, i ? "," : "", stat_fields[i].name, v);
            }
            fputs(",\"stores\":[", stdout);
            for (size_t i = 0; i < list.n; i++) {
                printf("%s{\"name\":", i ? "," : "");
                cli_write_json_string(stdout, list.names[i], strlen(list.names[i]));
                printf(",\"count\":%" PRIu64 "}", counts[i]);
            }
            fputs("]}\n", stdout);
        } else {
            for (size_t i = 0; i < nf; i++) {
                uint64_t v;
                memcpy(&v, (const char *)&st + stat_fields[i].off, sizeof v);
                printf("%-14s %" PRIu64 "\n", stat_fields[i].name, v);
            }
            printf("%-14s %zu\n", "stores", list.n);
            for (size_t i = 0; i < list.n; i++) {
                fputs("store          ", stdout);
                cli_write_escaped(stdout, list.names[i], strlen(list.names[i]));
                printf("\t%" PRIu64 "\n", counts[i]);
            }
        }
        rc = cli_flush_stdout();
    }
    rc = cli_close_db(db, rc);
    free(counts);
    store_list_free(&list);
    free(pos);
    return rc;
}

/* ------------------------------------------------------------------ */
/* check                                                              */
/* ------------------------------------------------------------------ */

static void print_problem(const char *problem, void *arg)
{
    (void)arg;
    if (problem) {
        cli_write_escaped(stdout, problem, strlen(problem));
    }
    fputc('\n', stdout);
}

int cmd_repair(const cli_command *self, int argc, char **argv)
{
    cli_opt opts[] = {{NULL, 0, 0, NULL}};
    char **pos = calloc((size_t)argc + 1, sizeof *pos);
    int npos = 0;
    if (!pos) {
        return cli_fail(NULL, -ENOMEM, "out of memory");
    }
    int rc = cli_parse(self, argc, argv, opts, pos, &npos);
    if (rc == 0 && npos != 1) {
        rc = cli_usage(npos ? "too many arguments: expected DB" : "missing argument: DB");
    }
    if (rc == 0 && !cli_g.ndrives) {
        rc = cli_usage("repair needs the database's --drives and --parity");
    }
    if (rc != 0) {
        free(pos);
        return rc == CLI_PARSE_HELP ? CLI_EXIT_OK : rc;
    }
    sop_db_options o;
    cli_db_options(&o);
    sop_repair_report r;
    memset(&r, 0, sizeof r);
    int e = sop_db_repair(pos[0], &o, &r);
    free(pos);
    if (e != SOP_OK) {
        fprintf(stderr, "%s: %s: %s: %s\n", cli_g.prog, cli_g.cmd, sop_strerror(e),
                r.message[0] ? r.message : "repair failed");
        return CLI_EXIT_ERR;
    }
    printf("segments %" PRIu64 "\nstripes %" PRIu64 "\nbad_shards %" PRIu64
           "\nshards_rebuilt %" PRIu64 "\nfiles_rebuilt %" PRIu64 "\nunrecoverable %" PRIu64
           "\ndeferred %" PRIu64 "\ndrives_unusable %u\n",
           r.segments, r.stripes, r.bad_shards, r.shards_rebuilt, r.files_rebuilt, r.unrecoverable,
           r.deferred, r.drives_unusable);
    rc = cli_flush_stdout();
    return rc ? rc : (r.unrecoverable ? CLI_EXIT_ERR : CLI_EXIT_OK);
}

/* Whether @name ends with @suffix; *base gets the part before it. */
static int ends_with(const char *name, const char *suffix, size_t *base)
{
    size_t n = strlen(name), m = strlen(suffix);
    if (n <= m || strcmp(name + n - m, suffix) != 0)
        return 0;
    *base = n - m;
    return 1;
}

/* Whether the store @base[0..blen) @suffix is in @l. */
static int listed(const store_list *l, const char *base, size_t blen, const char *suffix)
{
    char want[SOP_STORE_NAME_MAX + 64];
    snprintf(want, sizeof want, "%.*s%s", (int)blen, base, suffix);
    for (size_t i = 0; i < l->n; i++)
        if (!strcmp(l->names[i], want))
            return 1;
    return 0;
}

enum { IX_KB, IX_VEC, IX_TEXT };
static const char *const ix_kind[] = {"knowledge base", "vector store", "text index"};

/* Checks every knowledge base, vector store and text index of @db (found
 * by the names of their stores: "<kb>.kb" with "<kb>.kb.vec.vec.cfg" or
 * "<kb>.kb.txt.txt.cfg"; "<v>.vec.cfg"; "<t>.txt.cfg"; the indexes of a
 * knowledge base are checked by its check). Adds to *problems; returns 0
 * or the exit status of an error. */
static int check_indexes(sop_db *db, uint64_t *problems)
{
    sop_txn *txn = NULL;
    store_list list = {NULL, 0, 0, 0};
    int rc = 0, r = sop_txn_begin(db, SOP_TXN_READ, DB_READ_MAX_MS, &txn);
    if (r != SOP_OK)
        return cli_fail(db, r, "beginning a transaction");
    r = sop_store_list(txn, collect_name, &list);
    if (list.oom)
        rc = cli_fail(NULL, -ENOMEM, "listing the stores");
    else if (r != SOP_OK && r != SOP_ECORRUPT)
        rc = cli_fail(db, r, "listing the stores");
    for (int kind = IX_KB; kind <= IX_TEXT && rc == 0; kind++) {
        for (size_t i = 0; i < list.n && rc == 0; i++) {
            const char *name = list.names[i];
            size_t bl;
            char base[SOP_STORE_NAME_MAX + 1];
            if (kind == IX_KB) {
                if (!ends_with(name, ".kb", &bl) ||
                    !(listed(&list, name, bl, ".kb.vec.vec.cfg") ||
                      listed(&list, name, bl, ".kb.txt.txt.cfg")))
                    continue;
            } else if (!ends_with(name, kind == IX_VEC ? ".vec.cfg" : ".txt.cfg", &bl)) {
                continue;
            } else {
                size_t kb;
                memcpy(base, name, bl);
                base[bl] = '\0';
                /* an index of a knowledge base: checked with it */
                if (ends_with(base, kind == IX_VEC ? ".kb.vec" : ".kb.txt", &kb) &&
                    listed(&list, base, kb, ".kb"))
                    continue;
            }
            memcpy(base, name, bl);
            base[bl] = '\0';
            uint64_t p = 0;
            r = kind == IX_KB    ? sop_kb_check(txn, base, print_problem, NULL, &p)
                : kind == IX_VEC ? sop_vstore_check(txn, base, print_problem, NULL, &p)
                                 : sop_text_check(txn, base, print_problem, NULL, &p);
            if (r == SOP_ETXNDONE && p) { /* damage failed the transaction: go on */
                sop_txn_rollback(txn);
                r = sop_txn_begin(db, SOP_TXN_READ, DB_READ_MAX_MS, &txn);
                if (r != SOP_OK) {
                    txn = NULL;
                    rc = cli_fail(db, r, "beginning a transaction");
                }
                r = SOP_ECORRUPT;
            }
            *problems += p;
            if (r == SOP_OK || (r == SOP_ECORRUPT && p) || rc)
                continue;
            if (r == SOP_ECORRUPT || r == SOP_EVERSION || r == SOP_ENOTFOUND) {
                /* a store of its name that does not open as one */
                printf("%s %s: %s\n", ix_kind[kind], base, sop_db_errmsg(db));
                ++*problems;
            } else {
                rc = cli_fail(db, r, "checking %s %s", ix_kind[kind], base);
            }
        }
    }
    sop_txn_rollback(txn);
    store_list_free(&list);
    return rc;
}

enum { CK_NOPTS };

int cmd_check(const cli_command *self, int argc, char **argv)
{
    cli_opt opts[] = {
        [CK_NOPTS] = {NULL, 0, 0, NULL},
    };
    char **pos = calloc((size_t)argc + 1, sizeof *pos);
    int npos = 0;
    if (!pos) {
        return cli_fail(NULL, -ENOMEM, "out of memory");
    }
    int rc = cli_parse(self, argc, argv, opts, pos, &npos);
    if (rc == 0 && npos != 1) {
        rc = cli_usage(npos ? "too many arguments: expected DB" : "missing argument: DB");
    }
    if (rc != 0) {
        free(pos);
        return rc == CLI_PARSE_HELP ? CLI_EXIT_OK : rc;
    }
    sop_db *db = NULL;
    rc = cli_open_db(pos[0], CLI_OPEN_RDONLY, &db);
    if (rc == 0) {
        uint64_t problems = 0;
        int r = sop_db_check(db, print_problem, NULL, &problems);
        if (r == SOP_ECORRUPT && problems == 0) {
            problems = 1; /* corrupt but nothing counted: still not clean */
        }
        if (r == SOP_OK || r == SOP_ECORRUPT) {
            /* the indexes against their stores (also on a damaged
             * database: what can be read is checked) */
            rc = check_indexes(db, &problems);
        } else {
            cli_flush_stdout();
            rc = cli_fail(db, r, "checking the database");
        }
        if (rc == 0 && problems == 0) {
            puts("ok");
            rc = cli_flush_stdout();
        } else if (rc == 0) {
            printf("%" PRIu64 " problem%s\n", problems, problems == 1 ? "" : "s");
            cli_flush_stdout();
            rc = CLI_EXIT_ERR;
        }
    }
    rc = cli_close_db(db, rc);
    free(pos);
    return rc;
}
