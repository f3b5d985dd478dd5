/*
 * cmd_search.c - `sop search index|query|stats|del|drop`: BM25 text
 * indexes from the shell. Corpora come as JSON Lines (one object with an
 * "id", a "text" and optional "fields" per line, read by jsonl.c);
 * queries as TSV lines "qid<TAB>text", or one query given with -q.
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "jsonl.h"
#include "sop/search.h"

#define SEARCH_TXN_MS (24u * 3600u * 1000u)
#define QUERY_BATCH 1000u

/* ------------------------------------------------------------------ */
/* progress                                                           */
/* ------------------------------------------------------------------ */

/* The progress bar of a pass over @in: redrawn when its per-mille
 * changes. bar_close() ends the line before a message or the summary. */
typedef struct bar {
    int on;
    unsigned permille; /* last drawn + 1; 0: nothing drawn */
} bar;

static void bar_init(bar *b, const input *in, int stdout_too)
{
    b->on = cli_progress_on() && in->size > 0 && (!stdout_too || !isatty(STDOUT_FILENO));
    b->permille = 0;
}

static void bar_step(bar *b, const input *in, const char *what, uint64_t count,
                     const char *unit)
{
    if (!b->on)
        return;
    uint64_t at = input_pos(in);
    unsigned pm = (unsigned)(at * 1000 / in->size);
    if (at >= in->size || pm + 1 == b->permille)
        return; /* the end is drawn by bar_close() */
    b->permille = pm + 1;
    char detail[96];
    snprintf(detail, sizeof detail, "%" PRIu64 " %s, %.1f/%.1f MiB", count, unit,
             (double)at / 1048576.0, (double)in->size / 1048576.0);
    cli_progress(what, at, in->size, detail);
}

/* Draws the bar full when @done, else ends its line where it is. */
static void bar_close(bar *b, const input *in, const char *what, uint64_t count,
                      const char *unit, int done)
{
    if (b->on && b->permille && done) {
        char detail[96];
        snprintf(detail, sizeof detail, "%" PRIu64 " %s, %.1f MiB", count, unit,
                 (double)in->size / 1048576.0);
        cli_progress(what, in->size, in->size, detail);
    }
    cli_progress_end();
    b->on = 0;
}

/* Opens text index @name in @t, with a clear message when it is missing. */
static int open_index(sop_db *db, sop_txn *t, const char *path, const char *name, sop_text **tp)
{
    int r = sop_text_open(t, name, tp);
    if (r == SOP_ENOTFOUND)
        return cli_error("no text index '%s' in %s", name, path);
    if (r)
        return cli_fail_at(db, r, "opening text index '%s'", name);
    return 0;
}

/* ------------------------------------------------------------------ */
/* index                                                              */
/* ------------------------------------------------------------------ */

/* A load of a corpus into one index, in transactions of `batch`
 * documents (0: one transaction). */
typedef struct loader {
    sop_db *db;
    const char *index;
    const sop_text_options *create; /* options of a new index */
    const char *create_flags;       /* the --no-* options given, for a warning */
    int opened;                     /* the index was opened or created once */
    sop_txn *txn;                   /* open transaction, or NULL */
    sop_text *t;
    uint64_t first_line;     /* first line written in txn */
    uint64_t in_txn;         /* documents written in txn */
    uint64_t docs, replaced; /* documents written (committed or in txn) */
    uint64_t committed, committed_line;
} loader;

static int loader_begin(loader *l, uint64_t line)
{
    sop_txn *t = NULL;
    int created = 0;
    int r = sop_txn_begin(l->db, SOP_TXN_WRITE, SEARCH_TXN_MS, &t);
    if (r)
        return cli_fail_at(l->db, r, "beginning a transaction");
    r = sop_text_open(t, l->index, &l->t);
    if (r == SOP_ENOTFOUND) {
        r = sop_text_create(t, l->index, l->create, &l->t);
        created = 1;
    }
    if (r) {
        int rc = created ? cli_fail_at(l->db, r, "creating text index '%s'", l->index)
                         : cli_fail_at(l->db, r, "opening text index '%s'", l->index);
        sop_txn_rollback(t);
        return rc;
    }
    if (!l->opened && !created && l->create_flags[0]) {
        cli_progress_end();
        fprintf(stderr,
                "sop: %s: warning: text index '%s' exists: %s ignored (options are fixed when "
                "an index is created)\n",
                cli_g.cmd, l->index, l->create_flags);
    }
    l->opened = 1;
    l->txn = t;
    l->first_line = line;
    l->in_txn = 0;
    return 0;
}

static int loader_commit(loader *l, uint64_t last_line)
{
    int r = sop_txn_commit(l->txn);
    l->txn = NULL;
    if (r)
        return cli_fail_at(l->db, r, "committing lines %" PRIu64 "..%" PRIu64, l->first_line,
                           last_line);
    l->committed += l->in_txn;
    l->committed_line = last_line;
    l->in_txn = 0;
    return 0;
}

/* Writes @doc, read from the current line of @in (an upsert: counts a
 * replacement when its id is indexed already). */
static int loader_put(loader *l, const input *in, const sop_text_doc *doc)
{
    uint32_t old_len;
    int r = sop_text_doc_len(l->t, doc->id, doc->id_len, &old_len);
    int exists = r == SOP_OK;
    if (r == SOP_ENOTFOUND)
        r = SOP_OK;
    if (!r)
        r = sop_text_upsert(l->t, doc);
    if (r)
        return cli_fail_at(l->db, r, "%s: line %" PRIu64 ": indexing document '%.*s'", in->name,
                           in->line, (int)doc->id_len, (const char *)doc->id);
    l->docs++;
    l->replaced += exists;
    l->in_txn++;
    return 0;
}

enum { IX_BATCH, IX_NOSTEM, IX_NOSTOP, IX_NOFOLD, IX_IDKEY, IX_TEXTKEY, IX_SKIPEMPTY, IX_NOPTS };

static int cmd_search_index(const cli_command *self, int argc, char **argv)
{
    cli_opt opts[] = {
        [IX_BATCH] = {"batch", 0, 1, NULL},         [IX_NOSTEM] = {"no-stem", 0, 0, NULL},
        [IX_NOSTOP] = {"no-stopwords", 0, 0, NULL}, [IX_NOFOLD] = {"no-fold", 0, 0, NULL},
        [IX_IDKEY] = {"id-key", 0, 1, NULL},        [IX_TEXTKEY] = {"text-key", 0, 1, NULL},
        [IX_SKIPEMPTY] = {"skip-empty", 0, 0, NULL}, [IX_NOPTS] = {NULL, 0, 0, NULL},
    };
    char *pos[CLI_POS_MAX];
    int npos, rc = cli_args(self, argc, argv, opts, pos, &npos, 3, 3, "DB INDEX CORPUS.jsonl");
    if (rc != CLI_CONTINUE)
        return rc;
    rc = 0;
    uint64_t batch = 0;
    if ((rc = cli_opt_u64(&opts[IX_BATCH], 0, UINT32_MAX, &batch)))
        return rc;
    const char *id_key = opts[IX_IDKEY].value ? opts[IX_IDKEY].value : "id";
    const char *text_key = opts[IX_TEXTKEY].value ? opts[IX_TEXTKEY].value : "text";
    if (!*id_key || !*text_key || strcmp(id_key, text_key) == 0 ||
        strcmp(id_key, "fields") == 0 || strcmp(text_key, "fields") == 0)
        return cli_usage("--id-key and --text-key must be two distinct names other than "
                         "\"fields\"");
    sop_text_options to;
    sop_text_options_init(&to);
    char flags[64] = "";
    if (opts[IX_NOSTEM].value) {
        to.stem = 0;
        strcat(flags, " --no-stem");
    }
    if (opts[IX_NOSTOP].value) {
        to.stopwords = 0;
        strcat(flags, " --no-stopwords");
    }
    if (opts[IX_NOFOLD].value) {
        to.fold = 0;
        strcat(flags, " --no-fold");
    }
    int skip_empty = opts[IX_SKIPEMPTY].value != NULL;
    input in;
    if ((rc = input_open(pos[2], &in)))
        return rc;
    loader l;
    memset(&l, 0, sizeof l);
    l.index = pos[1];
    l.create = &to;
    l.create_flags = flags[0] ? flags + 1 : flags;
    uint64_t skipped = 0;
    rc = cli_open_db(pos[0], CLI_OPEN_CREATE, &l.db);
    /* The first transaction opens (or creates) the index before any line,
     * so an empty corpus still leaves an (empty) index. */
    if (!rc)
        rc = loader_begin(&l, 1);
    bar b;
    bar_init(&b, &in, 0);
    while (!rc) {
        char *line;
        ssize_t n = input_next(&in, &line, &rc);
        if (n < 0)
            break;
        jdoc d;
        if ((rc = parse_doc(&in, line, (size_t)n, id_key, text_key, &d)) == 0) {
            if (doc_empty(&d.doc)) {
                if (skip_empty)
                    skipped++;
                else
                    rc = line_error(&in, "an empty document (no byte of text; --skip-empty "
                                         "skips such lines)");
            } else {
                if (!l.txn)
                    rc = loader_begin(&l, in.line);
                if (!rc)
                    rc = loader_put(&l, &in, &d.doc);
            }
        }
        cJSON_Delete(d.root);
        if (!rc && batch && l.in_txn == batch)
            rc = loader_commit(&l, in.line);
        if (!rc)
            bar_step(&b, &in, "indexing", l.docs, "docs");
    }
    if (!rc && l.txn)
        rc = loader_commit(&l, in.line);
    bar_close(&b, &in, "indexing", l.docs, "docs", !rc);
    if (l.txn)
        sop_txn_rollback(l.txn);
    if (!rc) {
        printf("indexed %" PRIu64 " documents into %s: %" PRIu64 " new, %" PRIu64 " replaced",
               l.docs, l.index, l.docs - l.replaced, l.replaced);
        if (skipped)
            printf(", %" PRIu64 " empty skipped", skipped);
        fputc('\n', stdout);
    } else if (l.committed) {
        fprintf(stderr,
                "sop: %s: lines 1..%" PRIu64 " (%" PRIu64 " documents) were committed before the "
                "error; documents are upserted, so running the command again once the input is "
                "fixed is safe\n",
                cli_g.cmd, l.committed_line, l.committed);
    } else if (l.db) {
        fprintf(stderr, "sop: %s: nothing was indexed\n", cli_g.cmd);
    }
    input_close(&in);
    if (l.db)
        rc = cli_close_db(l.db, rc);
    return rc ? rc : cli_flush_stdout();
}

/* ------------------------------------------------------------------ */
/* query                                                              */
/* ------------------------------------------------------------------ */

static int parse_double(const cli_opt *o, double lo, double hi, double *v)
{
    if (!o->value)
        return 0;
    char *end = NULL;
    errno = 0;
    double x = strtod(o->value, &end);
    if (!*o->value || *end || errno || !(x >= lo && x <= hi))
        return cli_usage("--%s must be a number in [%g, %g], not '%s'", o->name, lo, hi,
                         o->value);
    *v = x;
    return 0;
}

typedef struct qrun {
    sop_text_query q;
    sop_text_hit *hits;
    int trec;
    const char *tag;
} qrun;

/* Runs the query @text for @qid (NULL: a -q query) and prints its hits. */
static int run_query(sop_text *t, qrun *qr, const char *qid, size_t qid_len, const char *text,
                     size_t len, uint32_t *nh)
{
    qr->q.text = text;
    qr->q.len = len;
    int r = sop_text_search(t, &qr->q, qr->hits, nh);
    if (r)
        return r;
    for (uint32_t h = 0; h < *nh; h++) {
        const sop_text_hit *x = &qr->hits[h];
        if (qr->trec) {
            cli_write_escaped(stdout, qid, qid_len);
            fputs(" Q0 ", stdout);
            cli_write_escaped(stdout, x->id.data, x->id.size);
            printf(" %u %.6f %s\n", h + 1, x->score, qr->tag);
            continue;
        }
        if (qid) {
            cli_write_escaped(stdout, qid, qid_len);
            fputc(' ', stdout);
        }
        printf("%u %.6f ", h + 1, x->score);
        cli_write_escaped(stdout, x->id.data, x->id.size);
        fputc('\n', stdout);
    }
    return 0;
}

enum { QY_K, QY_Q, QY_TREC, QY_TAG, QY_K1, QY_B, QY_NOPTS };

static int cmd_search_query(const cli_command *self, int argc, char **argv)
{
    cli_opt opts[] = {
        [QY_K] = {"k", 'k', 1, NULL},         [QY_Q] = {"query", 'q', 1, NULL},
        [QY_TREC] = {"trec", 0, 0, NULL},     [QY_TAG] = {"tag", 0, 1, NULL},
        [QY_K1] = {"k1", 0, 1, NULL},         [QY_B] = {"b", 0, 1, NULL},
        [QY_NOPTS] = {NULL, 0, 0, NULL},
    };
    char *pos[CLI_POS_MAX];
    const char *expected = "DB INDEX QUERIES.tsv, or DB INDEX -q TEXT";
    int npos, rc = cli_args(self, argc, argv, opts, pos, &npos, 2, 3, expected);
    if (rc != CLI_CONTINUE)
        return rc;
    rc = 0;
    const char *single = opts[QY_Q].value;
    if (single && npos == 3)
        return cli_usage("-q and a QUERIES.tsv file exclude each other");
    if (!single && npos == 2)
        return cli_usage("missing arguments: expected %s", expected);
    if (single && opts[QY_TREC].value)
        return cli_usage("--trec needs a QUERIES.tsv file (its query ids)");
    if (opts[QY_TAG].value && !opts[QY_TREC].value)
        return cli_usage("--tag goes with --trec");
    qrun qr;
    memset(&qr, 0, sizeof qr);
    sop_text_query_init(&qr.q);
    uint64_t k = 10;
    if ((rc = cli_opt_u64(&opts[QY_K], 1, SOP_TEXT_K_MAX, &k)) ||
        (rc = parse_double(&opts[QY_K1], 0, 1e9, &qr.q.k1)) ||
        (rc = parse_double(&opts[QY_B], 0, 1, &qr.q.b)))
        return rc;
    qr.q.k = (uint32_t)k;
    qr.trec = opts[QY_TREC].value != NULL;
    qr.tag = opts[QY_TAG].value ? opts[QY_TAG].value : "sop";
    if (!*qr.tag || strpbrk(qr.tag, " \t\r\n"))
        return cli_usage("--tag must be a word (no spaces)");
    input in;
    memset(&in, 0, sizeof in);
    if (!single && (rc = input_open(pos[2], &in)))
        return rc;
    sop_db *db = NULL;
    if (!(qr.hits = malloc(k * sizeof *qr.hits)))
        rc = cli_fail(NULL, -ENOMEM, "out of memory");
    if (!rc)
        rc = cli_open_db(pos[0], CLI_OPEN_RDONLY, &db);
    bar b;
    bar_init(&b, &in, 1);
    uint64_t queries = 0;
    int done = 0;
    /* QUERY_BATCH queries per read transaction: a long file does not hold
     * one snapshot for its whole run. */
    while (!rc && !done) {
        sop_txn *t = NULL;
        sop_text *tx = NULL;
        int r = sop_txn_begin(db, SOP_TXN_READ, SEARCH_TXN_MS, &t);
        if (r) {
            rc = cli_fail_at(db, r, "beginning a transaction");
            break;
        }
        rc = open_index(db, t, pos[0], pos[1], &tx);
        uint32_t nh;
        if (!rc && single) {
            if ((r = run_query(tx, &qr, NULL, 0, single, strlen(single), &nh)))
                rc = cli_fail_at(db, r, "querying '%s'", pos[1]);
            done = 1;
        }
        for (unsigned i = 0; !rc && !single && i < QUERY_BATCH; i++) {
            char *line;
            ssize_t n = input_next(&in, &line, &rc);
            if (n < 0) {
                done = 1;
                break;
            }
            char *tab = memchr(line, '\t', (size_t)n);
            if (!tab) {
                rc = line_error(&in, "no tab: expected qid<TAB>query text");
            } else if (tab == line) {
                rc = line_error(&in, "an empty qid");
            } else if ((r = run_query(tx, &qr, line, (size_t)(tab - line), tab + 1,
                                      (size_t)(n - (tab + 1 - line)), &nh))) {
                rc = cli_fail_at(db, r, "%s: line %" PRIu64, in.name, in.line);
            } else {
                queries++;
                bar_step(&b, &in, "querying", queries, "queries");
            }
        }
        sop_txn_rollback(t);
        if (!rc && ferror(stdout))
            break; /* reported by cli_flush_stdout() */
    }
    bar_close(&b, &in, "querying", queries, "queries", !rc);
    input_close(&in);
    free(qr.hits);
    if (db)
        rc = cli_close_db(db, rc);
    return rc ? rc : cli_flush_stdout();
}

/* ------------------------------------------------------------------ */
/* stats, del, drop                                                   */
/* ------------------------------------------------------------------ */

/* The shortest "%g" text of @x that reads back as @x. */
static void fmt_double(char *buf, size_t cap, double x)
{
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(buf, cap, "%.*g", prec, x);
        if (strtod(buf, NULL) == x)
            return;
    }
}

enum { ST_JSON, ST_NOPTS };

static int cmd_search_stats(const cli_command *self, int argc, char **argv)
{
    cli_opt opts[] = {[ST_JSON] = {"json", 0, 0, NULL}, [ST_NOPTS] = {NULL, 0, 0, NULL}};
    char *pos[CLI_POS_MAX];
    int npos, rc = cli_args(self, argc, argv, opts, pos, &npos, 2, 2, "DB INDEX");
    if (rc != CLI_CONTINUE)
        return rc;
    sop_db *db;
    if ((rc = cli_open_db(pos[0], CLI_OPEN_RDONLY, &db)))
        return rc;
    sop_txn *t = NULL;
    sop_text *tx;
    sop_text_stat st = {0, 0, 0, 0.0};
    int r = sop_txn_begin(db, SOP_TXN_READ, SEARCH_TXN_MS, &t);
    if (r) {
        rc = cli_fail_at(db, r, "beginning a transaction");
    } else {
        rc = open_index(db, t, pos[0], pos[1], &tx);
        if (!rc && (r = sop_text_stats(tx, &st)))
            rc = cli_fail_at(db, r, "reading the statistics of '%s'", pos[1]);
        sop_txn_rollback(t);
    }
    char avgdl[32];
    fmt_double(avgdl, sizeof avgdl, st.avgdl);
    if (!rc && opts[ST_JSON].value)
        printf("{\"docs\":%" PRIu64 ",\"total_len\":%" PRIu64 ",\"terms\":%" PRIu64
               ",\"avgdl\":%s}\n",
               st.docs, st.total_len, st.terms, avgdl);
    else if (!rc)
        printf("docs %" PRIu64 "\ntotal_len %" PRIu64 "\nterms %" PRIu64 "\navgdl %.6g\n",
               st.docs, st.total_len, st.terms, st.avgdl);
    rc = cli_close_db(db, rc);
    return rc ? rc : cli_flush_stdout();
}

/* the positional arguments of del and drop */
typedef struct write_args {
    char **pos;
    int npos;
} write_args;

static int del_step(sop_db *db, sop_txn *t, void *arg)
{
    char **pos = ((write_args *)arg)->pos;
    int npos = ((write_args *)arg)->npos;
    sop_text *tx;
    int rc = open_index(db, t, pos[0], pos[1], &tx);
    for (int i = 2; i < npos && !rc; i++) {
        size_t len = strlen(pos[i]);
        int r = len && len <= SOP_TEXT_ID_MAX ? sop_text_delete(tx, pos[i], len) : -EINVAL;
        if (r == SOP_ENOTFOUND)
            rc = cli_error("no document '%s' in text index '%s' (nothing deleted)", pos[i],
                           pos[1]);
        else if (r)
            rc = cli_fail_at(db, r, "deleting document '%s'", pos[i]);
    }
    return rc;
}

static int drop_step(sop_db *db, sop_txn *t, void *arg)
{
    char **pos = ((write_args *)arg)->pos;
    int r = sop_text_remove(t, pos[1]);
    if (r == SOP_ENOTFOUND)
        return cli_error("no text index '%s' in %s", pos[1], pos[0]);
    return r ? cli_fail_at(db, r, "removing text index '%s'", pos[1]) : 0;
}

static int write_command(const cli_command *self, int argc, char **argv, int min, int max,
                         const char *expected, cli_write_step step)
{
    cli_opt opts[] = {{NULL, 0, 0, NULL}};
    char *pos[CLI_POS_MAX];
    int npos, rc = cli_args(self, argc, argv, opts, pos, &npos, min, max, expected);
    if (rc != CLI_CONTINUE)
        return rc;
    sop_db *db;
    if ((rc = cli_open_db(pos[0], 0, &db)))
        return rc;
    rc = cli_write_txn(db, SEARCH_TXN_MS, step, &(write_args){pos, npos});
    return cli_close_db(db, rc);
}

static int cmd_search_del(const cli_command *self, int argc, char **argv)
{
    return write_command(self, argc, argv, 3, CLI_POS_MAX, "DB INDEX ID...", del_step);
}

static int cmd_search_drop(const cli_command *self, int argc, char **argv)
{
    return write_command(self, argc, argv, 2, 2, "DB INDEX", drop_step);
}

const cli_command cli_search_commands[] = {
    {"index", cmd_search_index, "index the documents of a JSON Lines file",
     "Usage: sop search index DB INDEX CORPUS.jsonl [--batch N] [--no-stem]\n"
     "                        [--no-stopwords] [--no-fold] [--skip-empty]\n"
     "                        [--id-key NAME] [--text-key NAME]\n"
     "\n"
     "Adds every document of CORPUS.jsonl (\"-\": stdin) to text index INDEX,\n"
     "created when missing (in DB, created when missing). One JSON object a line:\n"
     "\n"
     "  {\"id\": \"doc-1\", \"text\": \"...\", \"fields\": {\"title\": \"...\"}}\n"
     "\n"
     "\"id\" is a string of 1..256 bytes; \"text\" a string; \"fields\" (optional)\n"
     "an object of up to 64 strings named with [a-z0-9_], indexed as named\n"
     "fields (a query word \"title:word\" matches in that field only); \"text\"\n"
     "may be left out when \"fields\" is there. Other members are ignored.\n"
     "Texts are UTF-8; invalid bytes separate words. Blank lines are skipped.\n"
     "A document whose id is indexed already replaces it (the later of two\n"
     "lines with one id wins).\n"
     "\n"
     "Transactions: by default the whole file is one transaction, so a bad\n"
     "line (its number and the fault are printed; exit status 1) leaves the\n"
     "index as it was: nothing is indexed. With --batch N every N documents\n"
     "are committed: the batches before a bad line stay indexed; running the\n"
     "command again once the file is fixed replaces them with themselves.\n"
     "A large corpus in one transaction is held in memory until it commits:\n"
     "use --batch (and --sync none) for bulk loads.\n"
     "\n"
     "Prints \"indexed N documents into INDEX: A new, R replaced\". A progress\n"
     "bar goes to stderr when it is a terminal.\n"
     "\n"
     "Options:\n"
     "  --batch N       documents per transaction (0, the default: the whole\n"
     "                  file in one)\n"
     "  --no-stem       a new index: no Porter stemming\n"
     "  --no-stopwords  a new index: keep English stop words\n"
     "  --no-fold       a new index: no case and diacritics folding\n"
     "                  (the three are fixed when the index is created;\n"
     "                  given for an existing index, they are ignored with a\n"
     "                  warning)\n"
     "  --skip-empty    skip documents without a byte of text (default: an\n"
     "                  error)\n"
     "  --id-key NAME   the member holding the id (default \"id\"; \"_id\" for\n"
     "                  BEIR corpora)\n"
     "  --text-key NAME the member holding the text (default \"text\")\n",
     NULL},
    {"query", cmd_search_query, "BM25 queries, from a TSV file or -q",
     "Usage: sop search query DB INDEX QUERIES.tsv [-k K] [--trec [--tag TAG]]\n"
     "                        [--k1 X] [--b X]\n"
     "       sop search query DB INDEX -q TEXT [-k K] [--k1 X] [--b X]\n"
     "\n"
     "Runs BM25 OR queries on text index INDEX. A query word \"name:word\"\n"
     "matches in field name only.\n"
     "\n"
     "With -q, prints the K best documents, one a line: \"rank score id\"\n"
     "(rank from 1, best first). With QUERIES.tsv (\"-\": stdin; one query a\n"
     "line, \"qid<TAB>query text\"; blank lines skipped), prints\n"
     "\"qid rank score id\" lines, or with --trec TREC run lines\n"
     "\"qid Q0 id rank score TAG\" (for trec_eval). Scores have 6 decimals;\n"
     "equal scores come in id order.\n"
     "\n"
     "Options:\n"
     "  -k, --k K       results per query, 1..10000 (default 10)\n"
     "  -q, --query T   run the one query T\n"
     "  --trec          TREC run format\n"
     "  --tag TAG       the run tag of --trec (default \"sop\")\n"
     "  --k1 X          BM25 k1 >= 0 (default 1.2)\n"
     "  --b X           BM25 b in [0, 1] (default 0.75)\n",
     NULL},
    {"stats", cmd_search_stats, "print the statistics of a text index",
     "Usage: sop search stats DB INDEX [--json]\n"
     "\n"
     "Prints the documents (docs), the sum of their lengths in terms\n"
     "(total_len), the distinct terms, field-qualified ones included (terms),\n"
     "and the mean document length (avgdl).\n"
     "\n"
     "Options:\n"
     "  --json        one JSON object instead of text lines\n",
     NULL},
    {"del", cmd_search_del, "delete documents by id",
     "Usage: sop search del DB INDEX ID...\n"
     "\n"
     "Deletes the documents with the given ids in one transaction: when one\n"
     "of them is missing, nothing is deleted and the exit status is 1.\n",
     NULL},
    {"drop", cmd_search_drop, "remove a text index and all its documents",
     "Usage: sop search drop DB INDEX\n", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};
