/*
 * cmd_vector.c - `sop vector load|query|optimize|stats`: vector stores from
 * the shell. Vectors come in .fvecs files (per vector: an int32 dimension
 * d, then d float32, little-endian; read by fvecs.c).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "cli.h"
#include "fvecs.h"
#include "sop/vector.h"

#define VEC_TXN_MS (24u * 3600u * 1000u)
#define LOAD_BATCH 10000u
#define QUERY_BATCH 1000u

static int optimize_progress(uint64_t done, uint64_t total, void *ctx)
{
    (void)ctx;
    cli_progress("indexing", done < total ? done : total, total, NULL);
    return 0;
}

/* ------------------------------------------------------------------ */
/* load                                                               */
/* ------------------------------------------------------------------ */

static int parse_metric(const char *s, sop_metric *m)
{
    if (!s || strcmp(s, "cosine") == 0)
        *m = SOP_METRIC_COSINE;
    else if (strcmp(s, "ip") == 0)
        *m = SOP_METRIC_IP;
    else if (strcmp(s, "l2") == 0)
        *m = SOP_METRIC_L2;
    else
        return cli_usage("--metric must be cosine, ip or l2, not '%s'", s);
    return 0;
}

enum { LD_IDS, LD_METRIC, LD_NLIST, LD_NOTRAIN, LD_NOPTS };

static int cmd_vector_load(const cli_command *self, int argc, char **argv)
{
    cli_opt opts[] = {
        [LD_IDS] = {"ids", 0, 1, NULL},         [LD_METRIC] = {"metric", 0, 1, NULL},
        [LD_NLIST] = {"nlist", 0, 1, NULL},     [LD_NOTRAIN] = {"no-index", 0, 0, NULL},
        [LD_NOPTS] = {NULL, 0, 0, NULL},
    };
    char *pos[CLI_POS_MAX];
    int npos, rc = cli_args(self, argc, argv, opts, pos, &npos, 3, 3, "DB STORE FILE.fvecs");
    if (rc != CLI_CONTINUE)
        return rc;
    rc = 0;
    sop_metric metric = SOP_METRIC_COSINE;
    uint64_t nlist = 0;
    if ((rc = parse_metric(opts[LD_METRIC].value, &metric)))
        return rc;
    if ((rc = cli_opt_u64(&opts[LD_NLIST], 1, SOP_VECTOR_NLIST_MAX, &nlist)))
        return rc;
    fvecs in;
    if ((rc = fvecs_open(pos[2], &in)))
        return rc;
    FILE *ids = NULL;
    if (opts[LD_IDS].value && !(ids = fopen(opts[LD_IDS].value, "r"))) {
        fclose(in.f);
        return cli_error("%s: %s", opts[LD_IDS].value, strerror(errno));
    }
    sop_db *db = NULL;
    float *x = malloc((size_t)LOAD_BATCH * in.d * sizeof *x);
    sop_vitem *items = calloc(LOAD_BATCH, sizeof *items);
    char **idbuf = calloc(LOAD_BATCH, sizeof *idbuf);
    if (!x || !items || !idbuf)
        rc = cli_fail(NULL, -ENOMEM, "out of memory");
    if (!rc)
        rc = cli_open_db(pos[0], CLI_OPEN_CREATE, &db);

    /* the store: created, or checked against the file */
    int trained = 0;
    if (!rc) {
        sop_txn *t;
        sop_vstore *vs;
        int r = sop_txn_begin(db, SOP_TXN_WRITE, VEC_TXN_MS, &t);
        if (!r) {
            r = sop_vstore_open(t, pos[1], &vs);
            if (r == SOP_ENOTFOUND) {
                sop_vstore_options o;
                sop_vstore_options_init(&o);
                o.dims = in.d;
                o.metric = metric;
                o.nlist = (uint32_t)nlist;
                o.train_at = UINT32_MAX; /* indexed once, at the end */
                r = sop_vstore_create(t, pos[1], &o, &vs);
            } else if (!r) {
                sop_vstore_stat st;
                r = sop_vstore_stats(vs, &st, NULL, 0);
                if (!r && st.dims != in.d)
                    r = SOP_EDIM;
                else if (!r && opts[LD_METRIC].value && st.metric != metric)
                    r = SOP_EMISMATCH;
                trained = !r && st.trained;
            }
            if (r)
                sop_txn_rollback(t);
            else
                r = sop_txn_commit(t);
        }
        if (r == SOP_EDIM)
            rc = cli_error("%s has %u dimensions, store %s does not", pos[2], in.d, pos[1]);
        else if (r == SOP_EMISMATCH)
            rc = cli_error("store %s has another metric", pos[1]);
        else if (r)
            rc = cli_fail(db, r, "opening vector store %s", pos[1]);
    }

    uint64_t row = 0;
    while (!rc && row < in.n) {
        size_t got = 0;
        if ((rc = fvecs_read(&in, x, LOAD_BATCH, &got)) || got == 0)
            break;
        for (size_t i = 0; i < got && !rc; i++) {
            size_t len = 0;
            free(idbuf[i]);
            if (ids) {
                idbuf[i] = cli_read_line(ids, &len);
                if (!idbuf[i])
                    rc = cli_error("%s: fewer ids than vectors", opts[LD_IDS].value);
                else if (len == 0 || len > SOP_VECTOR_ID_MAX)
                    rc = cli_error("%s: line %" PRIu64 ": an id is 1..%u bytes",
                                   opts[LD_IDS].value, row + i + 1, SOP_VECTOR_ID_MAX);
            } else if ((idbuf[i] = malloc(24))) {
                len = (size_t)snprintf(idbuf[i], 24, "%" PRIu64, row + i);
            } else {
                rc = cli_fail(NULL, -ENOMEM, "out of memory");
            }
            items[i] = (sop_vitem){idbuf[i], len, x + i * in.d, in.d, NULL, 0};
        }
        sop_txn *t = NULL;
        sop_vstore *vs;
        int r = rc ? 0 : sop_txn_begin(db, SOP_TXN_WRITE, VEC_TXN_MS, &t);
        if (!rc && !r)
            r = sop_vstore_open(t, pos[1], &vs);
        if (!rc && !r)
            r = sop_vstore_upsert_batch(vs, items, got);
        if (!rc && !r)
            r = sop_txn_commit(t);
        else if (t)
            sop_txn_rollback(t);
        if (!rc && r)
            rc = cli_fail(db, r, "loading rows %" PRIu64 "..%" PRIu64, row, row + got - 1);
        row += got;
        if (!rc)
            cli_progress("loading", row, in.n, NULL);
    }
    if (!rc && !trained && !opts[LD_NOTRAIN].value && row > 0) {
        sop_voptimize_options oo;
        sop_voptimize_options_init(&oo);
        oo.nlist = (uint32_t)nlist;
        oo.batch = 100000; /* a bulk load: few, large transactions */
        oo.progress = optimize_progress;
        int r = sop_vstore_optimize(db, pos[1], &oo);
        if (r)
            rc = cli_fail(db, r, "indexing %s", pos[1]);
    }
    if (!rc)
        printf("loaded %" PRIu64 " vectors of %u dimensions into %s\n", row, in.d, pos[1]);
    for (size_t i = 0; i < LOAD_BATCH && idbuf; i++)
        free(idbuf[i]);
    free(idbuf);
    free(items);
    free(x);
    fclose(in.f);
    if (ids)
        fclose(ids);
    if (db)
        rc = cli_close_db(db, rc);
    return rc ? rc : cli_flush_stdout();
}

/* ------------------------------------------------------------------ */
/* query                                                              */
/* ------------------------------------------------------------------ */

enum { QY_K, QY_NPROBE, QY_PAYLOAD, QY_NOPTS };

static int cmd_vector_query(const cli_command *self, int argc, char **argv)
{
    cli_opt opts[] = {
        [QY_K] = {"k", 'k', 1, NULL},
        [QY_NPROBE] = {"nprobe", 0, 1, NULL},
        [QY_PAYLOAD] = {"scores", 0, 0, NULL},
        [QY_NOPTS] = {NULL, 0, 0, NULL},
    };
    char *pos[CLI_POS_MAX];
    int npos, rc = cli_args(self, argc, argv, opts, pos, &npos, 3, 3, "DB STORE QUERIES.fvecs");
    if (rc != CLI_CONTINUE)
        return rc;
    rc = 0;
    uint64_t k = 10, nprobe = 0;
    if ((rc = cli_opt_u64(&opts[QY_K], 1, SOP_VECTOR_K_MAX, &k)))
        return rc;
    if (opts[QY_NPROBE].value && (cli_parse_u64(opts[QY_NPROBE].value, &nprobe) ||
                                  nprobe > UINT32_MAX))
        return cli_usage("--nprobe must be a number (0: the default)");
    int scores = opts[QY_PAYLOAD].value != NULL;
    fvecs in;
    if ((rc = fvecs_open(pos[2], &in)))
        return rc;
    sop_db *db = NULL;
    float *q = malloc((size_t)QUERY_BATCH * in.d * sizeof *q);
    sop_vhit *hits = malloc(k * sizeof *hits);
    if (!q || !hits)
        rc = cli_fail(NULL, -ENOMEM, "out of memory");
    if (!rc)
        rc = cli_open_db(pos[0], CLI_OPEN_RDONLY, &db);
    while (!rc) {
        size_t got = 0;
        if ((rc = fvecs_read(&in, q, QUERY_BATCH, &got)) || got == 0)
            break;
        sop_txn *t = NULL;
        sop_vstore *vs;
        int r = sop_txn_begin(db, SOP_TXN_READ, VEC_TXN_MS, &t);
        if (!r)
            r = sop_vstore_open(t, pos[1], &vs);
        for (size_t i = 0; i < got && !r; i++) {
            sop_vquery vq;
            sop_vquery_init(&vq);
            vq.vec = q + i * in.d;
            vq.dims = in.d;
            vq.k = (uint32_t)k;
            vq.nprobe = (uint32_t)nprobe;
            uint32_t nh = 0;
            if ((r = sop_vstore_query(vs, &vq, hits, &nh)))
                break;
            for (uint32_t h = 0; h < nh; h++) {
                if (h)
                    fputc(' ', stdout);
                cli_write_escaped(stdout, hits[h].id.data, hits[h].id.size);
                if (scores)
                    printf(":%.6g", (double)hits[h].score);
            }
            fputc('\n', stdout);
        }
        sop_txn_rollback(t);
        if (r)
            rc = cli_fail(db, r, "querying %s", pos[1]);
    }
    free(q);
    free(hits);
    fclose(in.f);
    if (db)
        rc = cli_close_db(db, rc);
    return rc ? rc : cli_flush_stdout();
}

/* ------------------------------------------------------------------ */
/* optimize, stats                                                    */
/* ------------------------------------------------------------------ */

enum { OP_NLIST, OP_NOPTS };

static int cmd_vector_optimize(const cli_command *self, int argc, char **argv)
{
    cli_opt opts[] = {[OP_NLIST] = {"nlist", 0, 1, NULL}, [OP_NOPTS] = {NULL, 0, 0, NULL}};
    char *pos[CLI_POS_MAX];
    int npos, rc = cli_args(self, argc, argv, opts, pos, &npos, 2, 2, "DB STORE");
    if (rc != CLI_CONTINUE)
        return rc;
    rc = 0;
    uint64_t nlist = 0;
    if ((rc = cli_opt_u64(&opts[OP_NLIST], 1, SOP_VECTOR_NLIST_MAX, &nlist)))
        return rc;
    sop_db *db;
    if ((rc = cli_open_db(pos[0], 0, &db)))
        return rc;
    sop_voptimize_options oo;
    sop_voptimize_options_init(&oo);
    oo.nlist = (uint32_t)nlist;
    oo.progress = optimize_progress;
    int r = sop_vstore_optimize(db, pos[1], &oo);
    if (r)
        rc = cli_fail(db, r, "optimizing %s", pos[1]);
    return cli_close_db(db, rc);
}

static const char *metric_name(sop_metric m)
{
    return m == SOP_METRIC_COSINE ? "cosine" : m == SOP_METRIC_IP ? "ip" : "l2";
}

static int cmd_vector_stats(const cli_command *self, int argc, char **argv)
{
    cli_opt opts[] = {{NULL, 0, 0, NULL}};
    char *pos[CLI_POS_MAX];
    int npos, rc = cli_args(self, argc, argv, opts, pos, &npos, 2, 2, "DB STORE");
    if (rc != CLI_CONTINUE)
        return rc;
    rc = 0;
    sop_db *db;
    if ((rc = cli_open_db(pos[0], CLI_OPEN_RDONLY, &db)))
        return rc;
    sop_txn *t = NULL;
    sop_vstore *vs;
    sop_vstore_stat st;
    int r = sop_txn_begin(db, SOP_TXN_READ, VEC_TXN_MS, &t);
    if (!r)
        r = sop_vstore_open(t, pos[1], &vs);
    if (!r)
        r = sop_vstore_stats(vs, &st, NULL, 0);
    sop_txn_rollback(t);
    if (r) {
        rc = cli_fail(db, r, "reading vector store %s", pos[1]);
    } else {
        printf("dims %u\nmetric %s\nembedder %s\nversion %u\ntrained %d\noptimizing %d\n"
               "nlist %u\ncount %" PRIu64 "\nmin_cluster %" PRIu64 "\nmax_cluster %" PRIu64 "\n",
               st.dims, metric_name(st.metric), st.embedder[0] ? st.embedder : "-", st.version,
               st.trained, st.optimizing, st.nlist, st.count, st.min_cluster, st.max_cluster);
    }
    return cli_close_db(db, rc);
}

const cli_command cli_vector_commands[] = {
    {"load", cmd_vector_load, "load vectors from an .fvecs file",
     "Usage: sop vector load DB STORE FILE.fvecs [--ids FILE] [--metric cosine|ip|l2]\n"
     "                       [--nlist N] [--no-index]\n"
     "\n"
     "Upserts every vector of FILE.fvecs into vector store STORE (created with\n"
     "the file's dimension when missing), 10,000 per transaction, then builds\n"
     "the index (sop_vstore_optimize) unless the store was indexed already.\n"
     "A progress bar goes to stderr when it is a terminal.\n"
     "\n"
     "Options:\n"
     "  --ids FILE     one id per line (default: the 0-based row number)\n"
     "  --metric M     cosine (default), ip or l2 (a new store only; an existing\n"
     "                 store with another metric is an error)\n"
     "  --nlist N      clusters of the index (default: the nearest power of two\n"
     "                 to 2 x sqrt(number of vectors))\n"
     "  --no-index     leave the store flat (no training)\n",
     NULL},
    {"query", cmd_vector_query, "k nearest neighbours of each vector of an .fvecs file",
     "Usage: sop vector query DB STORE QUERIES.fvecs [-k K] [--nprobe N] [--scores]\n"
     "\n"
     "Prints, for each query vector, one line: the ids of its K nearest\n"
     "items, best first, separated by spaces.\n"
     "\n"
     "Options:\n"
     "  -k, --k K      results per query (default 10)\n"
     "  --nprobe N     clusters scanned (default nlist / 32; more than nlist is\n"
     "                 clamped to nlist)\n"
     "  --scores       print id:score\n",
     NULL},
    {"optimize", cmd_vector_optimize, "rebuild the index of a vector store",
     "Usage: sop vector optimize DB STORE [--nlist N]\n"
     "\n"
     "Trains new centroids on a uniform sample and moves every item to them,\n"
     "while other processes keep reading and writing; resumes an interrupted\n"
     "run.\n",
     NULL},
    {"stats", cmd_vector_stats, "print the state of a vector store",
     "Usage: sop vector stats DB STORE\n", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};
