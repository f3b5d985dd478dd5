/*
 * ioerr_layers.c - the I/O fault sweep of the upper layers (reliability
 * plan C3, issue 7 part 3): the vector store, the BM25 text index and the
 * knowledge-base bulk load, under the fault VFS of tests/support.
 *
 * Operations X (each on a fresh copy of one template database):
 *   vector  vadd     one transaction: sop_vstore_upsert_batch() of 16 new
 *                    items and 2 replaced ones (a trained store, 4 clusters)
 *           vopt     sop_vstore_optimize() (k-means retraining and the
 *                    migration of the 200 items to the new index version,
 *                    in batches of 64: several transactions, then the flip)
 *           vdel     one transaction deleting 5 items (of 200)
 *           vsearch  a READ transaction: 3 queries at the default nprobe
 *                    and 3 exhaustive ones
 *   text    tadd     one transaction adding 3 documents (single records)
 *           tbulk    one transaction adding 40 documents (>= 32: the bulk
 *                    path, postings and records merged into the deflated
 *                    blocks of the template's 160 bulk-loaded documents)
 *           trepl    one transaction replacing 3 documents (2 in blocks)
 *           tdel     one transaction deleting 3 documents (2 in blocks)
 *           tsearch  a READ transaction: 3 BM25 queries
 *   agents  kbload   sop_kb_load() of a 10-record fallback JSON file with
 *                    the built-in embedder, in batches of 4 (a transaction
 *                    that creates the base, then 3 batches)
 *
 * X runs on a handle opened (unarmed) with checkpoint_bytes 1, so every
 * commit is followed by a checkpoint: X's I/O includes the node images
 * its commits append and the registry writes of the checkpoints, as a
 * long bulk load's would. (A checkpoint that fails after a commit leaves
 * the commit standing and returning SOP_OK, and panics the handle.)
 * Syncs are counted and injected but not performed (no power is cut here;
 * crash_powerloss covers that).
 *
 * For each X the I/O calls it makes are counted first (a clean run, per
 * fault mask), then for each fault kind F, transient (only the Nth call
 * fails) and persistent (every call from the Nth on fails), and for
 * N = 1, 1 + S, 1 + 2S, ... up to that count, the Nth call matching F
 * fails. Fault kinds:
 *   EIO     -EIO on any call except close
 *   ENOSPC  -ENOSPC on write, sync, create, truncate, mkdir
 *   SHORT   short read (half the bytes, as if at end of file) or short
 *           write (half written, then -EIO)
 * Stride S: 1 (every N) while the count is at most STRIDE_FULL (64); above
 * it, S = ceil(count / 64), so no (X, F, mode) runs more than 64 cases.
 * Today that samples vopt's EIO (143 calls, S = 3) and SHORT (69, S = 2),
 * tbulk's EIO (77, S = 2) and kbload's EIO (100, S = 2); every other N is
 * injected: about 1,640 cases, about 25 s of CPU under ASan.
 * SOP_IOERRL_STRIDE=1 forces every N (about 1,930 cases), any other value
 * that stride for every count.
 *
 * After each injection:
 *   1. X returned (an alarm catches hangs) SOP_OK or a documented code:
 *      -EIO, SOP_EFULL, SOP_EPANIC (not for the read-only searches), and
 *      SOP_ECORRUPT for a short read; every fault must be reached (X's
 *      I/O is deterministic), and an ENOSPC that was reached must make X
 *      fail or leave the handle in the panic state (a failed write or sync
 *      is never ignored). An EIO or a short read may be tolerated; the
 *      cases seen are all in taking the commit lock for the checkpoint
 *      that follows a commit (the lock itself, or the size and the read of
 *      the log's tail that follow it): that checkpoint is then skipped, and
 *      the commit stands; and a failed unlock, which the engine ignores,
 *      as the core sweep (ioerr.c) allows;
 *   2. a search X that returned SOP_OK returned exactly the reference
 *      results (those of a run without faults);
 *   3. on the same handle, fault disarmed: a failed write in a commit has
 *      put it in the panic state, and then every call returns SOP_EPANIC;
 *      otherwise the layer checks are clean and the state is "before" or
 *      "after" (a read error leaves the database usable);
 *   4. closed, then reopened with the real VFS (recovery): sop_db_check(),
 *      sop_vstore_check(), sop_text_check() and sop_kb_check() find no
 *      problem; the state of the vector store and the text index (every
 *      id of the universe present or absent, vectors, payloads, document
 *      lengths, counts, statistics) is exactly the state before X or after
 *      X - the "after" one when X returned SOP_OK, the "before" one when X
 *      failed before committing; the searches return the reference results
 *      of that state, and an exhaustive vector query returns the true
 *      nearest items of what the store holds (brute force over the stored
 *      vectors); the knowledge base holds a prefix of the file's records
 *      made of whole batches, at least the batches acknowledged (by the
 *      progress callback) and at most one more, each record with its text
 *      and metadata, found by a word search iff present, and is marked
 *      complete iff it holds all 10;
 *   5. after a failed vopt or kbload, running it again without faults
 *      completes it (the optimize resumes the migration; the load upserts
 *      the missing batches) and every check is clean again.
 * A case (one injection) is "bad" when any of this fails.
 *
 * Prints per operation its injection points per fault kind (t =
 * transient, p = persistent), per layer the totals, a tally of the failed
 * checks, and last "ioerr-layers: <points> injection points, <bad> bad".
 * Exits 1 when any case was bad (2 on a setup error, 3 on a hang).
 * Options: --only <X>, --verbose. Environment: SOP_TEST_TMP,
 * SOP_IOERRL_STRIDE.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fault_sweep.h"
#include "fault_vfs.h"
#include "sop/agent.h"
#include "sop/search.h"
#include "sop/sop.h"
#include "sop/vector.h"
#include "testutil.h"

#define ITER_ALARM_S 60 /* one case longer than this is a hang */
#define STRIDE_FULL 64  /* at most this many cases per (X, F, mode) */

/* The vector layer's process-wide cache of centroid sets: emptied before
 * each case so that every case does the same I/O. Internal. */
void vc_clear(void);

static int g_verbose;

/* ------------------------------------------------------------------ */
/* Data                                                               */
/* ------------------------------------------------------------------ */

#define DIMS 8
#define NLIST 4
#define VBASE 200 /* v0000..v0199 in the template */
#define VADD 16   /* vadd: v1000..v1015, and v0000, v0001 replaced */
#define VDEL 5    /* vdel: v010..v014 */
#define TBASE 160 /* d000..d159 in the template (bulk: records and postings in blocks) */
#define TBULK 40  /* d700..d739 by tbulk */
#define TSINGLE 6 /* d500..d505 in the template (singles) */
#define KBN 10    /* records of the fallback file */
#define KBBATCH 4

/* The vector of item @i, @variant 0 (original) or 1 (replaced). */
static void vvec(int i, int variant, float *v)
{
    uint64_t s = (uint64_t)i * 0x9e3779b97f4a7c15ull + (uint64_t)variant * 7919 + 1;
    for (int d = 0; d < DIMS; d++)
        v[d] = (float)(tu_rand(&s) % 2001) / 1000.0f - 1.0f;
}

static void vid(int i, char *id, size_t n) { snprintf(id, n, "v%04d", i); }

static void vpayload(int i, int variant, char *p, size_t n)
{
    snprintf(p, n, "{\"i\":%d,\"variant\":%d}", i, variant);
}

/* The universe of vector ids a state may hold. */
static int vuniverse(int k)
{
    return k < VBASE ? k : 1000 + (k - VBASE); /* VBASE + VADD ids */
}
#define VUNIVERSE (VBASE + VADD)

static const char *const g_words[] = {
    "fever",   "cough",   "rash",   "nausea",  "fatigue", "headache", "dizzy",
    "wheeze",  "chills",  "pain",   "swelling", "itching", "bleeding", "cramps",
    "anxiety", "insomnia", "sneeze", "vomiting", "stiffness", "numbness"};
#define NWORDS 20

/* The text of document @i, @variant 0 (original) or 1 (replaced): 3..9
 * words, the variant one longer. */
static void tdoc(int i, int variant, char *out, size_t n)
{
    size_t off = (size_t)snprintf(out, n, "note %d:", i);
    int len = 3 + i % 6 + variant;
    for (int j = 0; j < len && off < n; j++)
        off += (size_t)snprintf(out + off, n - off, " %s",
                                g_words[(i * 7 + j * (3 + variant * 2) + variant * 5) % NWORDS]);
}

static void tid(int i, char *id, size_t n) { snprintf(id, n, "d%03d", i); }

/* The universe of document ids. */
#define TUNIVERSE (TBASE + TSINGLE + 3 + TBULK)
static int tuniverse(int k)
{
    if (k < TBASE)
        return k;
    k -= TBASE;
    if (k < TSINGLE)
        return 500 + k;
    k -= TSINGLE;
    if (k < 3)
        return 600 + k;
    return 700 + (k - 3);
}

static const char *const g_kbwords[KBN] = {"alpha", "bravo",   "charlie", "delta", "echo",
                                           "foxtrot", "golf", "hotel",   "india", "juliet"};

static void kbtext(int i, char *out, size_t n)
{
    snprintf(out, n, "record %s about %s and %s", g_kbwords[i], g_words[i % NWORDS],
             g_words[(i * 3 + 1) % NWORDS]);
}

static void kbmeta(int i, char *out, size_t n) { snprintf(out, n, "{\"n\":%d}", i); }

static sop_embedder *g_emb;
static char g_fallback[600];
static const char *g_tmpl, *g_work;

/* The base VFS of every handle: POSIX files whose sync and sync_dir do
 * nothing. No power is cut in this test, so a real fdatasync would add
 * nothing but time (minutes on a shared disk); the fault VFS above it
 * still counts every sync call and fails the ones it is told to. */
static sop_vfs g_base;

static int nosync(sop_vfs *vfs, sop_file *f)
{
    (void)vfs;
    (void)f;
    return 0;
}

static int nosync_dir(sop_vfs *vfs, const char *path)
{
    (void)vfs;
    (void)path;
    return 0;
}

/* The handle X runs on (@ckpt: every commit is followed by a checkpoint,
 * so X's I/O includes writing the registry), or any other. @vfs NULL:
 * g_base. */
static sop_db_options db_opts(sop_vfs *vfs, int ckpt)
{
    sop_db_options o;
    sop_db_options_init(&o);
    o.vfs = vfs ? vfs : &g_base;
    o.segment_bytes = 1u << 20;
    o.cache_bytes = 1u << 20;
    if (ckpt)
        o.checkpoint_bytes = 1;
    return o;
}

/* ------------------------------------------------------------------ */
/* Operations                                                         */
/* ------------------------------------------------------------------ */

enum {
    X_VADD,
    X_VOPT,
    X_VDEL,
    X_VSEARCH,
    X_TADD,
    X_TBULK,
    X_TREPL,
    X_TDEL,
    X_TSEARCH,
    X_KBLOAD,
    NX
};
static const char *const x_name[NX] = {"vadd",  "vopt",  "vdel", "vsearch", "tadd",
                                       "tbulk", "trepl", "tdel", "tsearch", "kbload"};
enum { L_VECTOR, L_TEXT, L_AGENTS, NL };
static const char *const l_name[NL] = {"vector", "text", "agents"};
static int x_layer(int x) { return x <= X_VSEARCH ? L_VECTOR : x <= X_TSEARCH ? L_TEXT : L_AGENTS; }
static int x_readonly(int x) { return x == X_VSEARCH || x == X_TSEARCH; }

typedef struct xctx {
    sop_vfs *fv;
    sop_db *db;
    int stage;           /* a commit was called (single-transaction X) */
    uint64_t hit_before; /* faults injected before that commit was called */
    uint64_t acked;      /* kbload: records of the committed batches */
    uint64_t result;     /* search X: a hash of the results */
    int retrained;       /* vopt run again: the index may be a later version, whose
                            approximate (default nprobe) results may differ */
} xctx;

static int end_txn(xctx *c, sop_txn *t, int rc)
{
    if (rc) {
        sop_txn_rollback(t);
        return rc;
    }
    c->stage = 1;
    c->hit_before = c->fv ? fault_vfs_triggered(c->fv) : 0;
    return sop_txn_commit(t);
}

static int x_vadd(xctx *c)
{
    sop_txn *t;
    sop_vstore *vs;
    int rc = sop_txn_begin(c->db, SOP_TXN_WRITE, 0, &t);
    if (rc)
        return rc;
    static float vecs[VADD + 2][DIMS];
    static char ids[VADD + 2][16], pl[VADD + 2][64];
    sop_vitem items[VADD + 2];
    for (int k = 0; k < VADD + 2; k++) {
        int i = k < VADD ? 1000 + k : k - VADD; /* v1000.., then v000, v001 */
        vvec(i, 1, vecs[k]);
        vid(i, ids[k], sizeof ids[k]);
        vpayload(i, 1, pl[k], sizeof pl[k]);
        items[k] = (sop_vitem){ids[k], strlen(ids[k]), vecs[k], DIMS, pl[k], strlen(pl[k])};
    }
    rc = sop_vstore_open(t, "vec", &vs);
    if (!rc)
        rc = sop_vstore_upsert_batch(vs, items, VADD + 2);
    return end_txn(c, t, rc);
}

static int x_vopt(xctx *c)
{
    sop_voptimize_options o;
    sop_voptimize_options_init(&o);
    o.nlist = NLIST;
    o.batch = 64;
    return sop_vstore_optimize(c->db, "vec", &o);
}

static int x_vdel(xctx *c)
{
    sop_txn *t;
    sop_vstore *vs;
    int rc = sop_txn_begin(c->db, SOP_TXN_WRITE, 0, &t);
    if (rc)
        return rc;
    rc = sop_vstore_open(t, "vec", &vs);
    for (int i = 10; !rc && i < 10 + VDEL; i++) {
        char id[16];
        vid(i, id, sizeof id);
        rc = sop_vstore_delete(vs, id, strlen(id));
    }
    return end_txn(c, t, rc);
}

/* The queries of vsearch: 3 query vectors, at the default nprobe (one
 * cluster of 4) and exhaustive. Hash of ids and scores (to 1e-4). */
static int vqueries(sop_vstore *vs, uint64_t *h)
{
    for (int q = 0; q < 6; q++) {
        float qv[DIMS];
        vvec(5000 + q % 3, 0, qv);
        sop_vquery vq;
        sop_vquery_init(&vq);
        vq.vec = qv;
        vq.dims = DIMS;
        vq.k = 6;
        vq.with_payload = 1;
        if (q >= 3)
            vq.nprobe = NLIST;
        sop_vhit hits[6];
        uint32_t nh = 6;
        int rc = sop_vstore_query(vs, &vq, hits, &nh);
        if (rc)
            return rc;
        fs_fnv_u64(h, nh);
        for (uint32_t i = 0; i < nh; i++) {
            fs_fnv_u64(h, hits[i].id.size);
            fs_fnv(h, hits[i].id.data, hits[i].id.size);
            fs_fnv_u64(h, hits[i].payload.size);
            fs_fnv(h, hits[i].payload.data, hits[i].payload.size);
            fs_fnv_u64(h, (uint64_t)llround((double)hits[i].score * 1e4));
        }
    }
    return 0;
}

static const char *const g_tq[3] = {"fever cough", "rash chills headache", "numbness and pain"};

static int tqueries(sop_text *tx, uint64_t *h)
{
    for (int q = 0; q < 3; q++) {
        sop_text_query tq;
        sop_text_query_init(&tq);
        tq.text = g_tq[q];
        tq.len = strlen(g_tq[q]);
        tq.k = 8;
        sop_text_hit hits[8];
        uint32_t nh = 8;
        int rc = sop_text_search(tx, &tq, hits, &nh);
        if (rc)
            return rc;
        fs_fnv_u64(h, nh);
        for (uint32_t i = 0; i < nh; i++) {
            fs_fnv_u64(h, hits[i].id.size);
            fs_fnv(h, hits[i].id.data, hits[i].id.size);
            fs_fnv_u64(h, (uint64_t)llround(hits[i].score * 1e6));
        }
    }
    return 0;
}

static int x_vsearch(xctx *c)
{
    sop_txn *t;
    sop_vstore *vs;
    int rc = sop_txn_begin(c->db, SOP_TXN_READ, 0, &t);
    if (rc)
        return rc;
    uint64_t h = FS_FNV_INIT;
    rc = sop_vstore_open(t, "vec", &vs);
    if (!rc)
        rc = vqueries(vs, &h);
    sop_txn_rollback(t);
    c->result = h;
    return rc;
}

static int x_tsearch(xctx *c)
{
    sop_txn *t;
    sop_text *tx;
    int rc = sop_txn_begin(c->db, SOP_TXN_READ, 0, &t);
    if (rc)
        return rc;
    uint64_t h = FS_FNV_INIT;
    rc = sop_text_open(t, "txt", &tx);
    if (!rc)
        rc = tqueries(tx, &h);
    sop_txn_rollback(t);
    c->result = h;
    return rc;
}

static int tput(sop_text *tx, int i, int variant, int replace)
{
    char id[16], text[256];
    tid(i, id, sizeof id);
    tdoc(i, variant, text, sizeof text);
    sop_text_doc d = {id, strlen(id), text, strlen(text), NULL, 0};
    return replace ? sop_text_replace(tx, &d) : sop_text_add(tx, &d);
}

/* Adds documents @from..@to-1 (one transaction) */
static int t_addrange(xctx *c, int from, int to)
{
    sop_txn *t;
    sop_text *tx;
    int rc = sop_txn_begin(c->db, SOP_TXN_WRITE, 0, &t);
    if (rc)
        return rc;
    rc = sop_text_open(t, "txt", &tx);
    for (int i = from; !rc && i < to; i++)
        rc = tput(tx, i, 0, 0);
    return end_txn(c, t, rc);
}

static int x_trepl(xctx *c)
{
    static const int which[3] = {5, 120, 501};
    sop_txn *t;
    sop_text *tx;
    int rc = sop_txn_begin(c->db, SOP_TXN_WRITE, 0, &t);
    if (rc)
        return rc;
    rc = sop_text_open(t, "txt", &tx);
    for (int k = 0; !rc && k < 3; k++)
        rc = tput(tx, which[k], 1, 1);
    return end_txn(c, t, rc);
}

static int x_tdel(xctx *c)
{
    static const int which[3] = {7, 130, 502};
    sop_txn *t;
    sop_text *tx;
    int rc = sop_txn_begin(c->db, SOP_TXN_WRITE, 0, &t);
    if (rc)
        return rc;
    rc = sop_text_open(t, "txt", &tx);
    for (int k = 0; !rc && k < 3; k++) {
        char id[16];
        tid(which[k], id, sizeof id);
        rc = sop_text_delete(tx, id, strlen(id));
    }
    return end_txn(c, t, rc);
}

static int kb_progress(const sop_kb_progress *p, void *ctx)
{
    ((xctx *)ctx)->acked = p->records;
    return 0;
}

static int kb_load(sop_db *db, xctx *c)
{
    sop_kb_load_options o;
    sop_kb_load_options_init(&o);
    o.name = "kb";
    o.batch = KBBATCH;
    o.embedder = g_emb;
    if (c) {
        o.progress = kb_progress;
        o.progress_ctx = c;
    }
    sop_kb_load_report rep;
    int rc = sop_kb_load(db, g_fallback, &o, &rep);
    if (rc && g_verbose)
        fprintf(stderr, "ioerr-layers: kbload: %s\n", rep.error);
    return rc;
}

static int x_run(int x, xctx *c)
{
    switch (x) {
    case X_VADD:
        return x_vadd(c);
    case X_VOPT:
        return x_vopt(c);
    case X_VDEL:
        return x_vdel(c);
    case X_VSEARCH:
        return x_vsearch(c);
    case X_TADD:
        return t_addrange(c, 600, 603);
    case X_TBULK:
        return t_addrange(c, 700, 700 + TBULK);
    case X_TREPL:
        return x_trepl(c);
    case X_TDEL:
        return x_tdel(c);
    case X_TSEARCH:
        return x_tsearch(c);
    case X_KBLOAD:
        return kb_load(c->db, c);
    }
    return -EINVAL;
}

/* ------------------------------------------------------------------ */
/* State                                                              */
/* ------------------------------------------------------------------ */

/* The logical state of the vector store and the text index, and the
 * results of their searches. */
typedef struct state {
    uint64_t vsig, tsig; /* content */
    uint64_t vq, tq;     /* search results */
} state;

static void problem_line(const char *problem, void *ctx)
{
    (void)ctx;
    if (fs_bad_checks() < FS_MAX_REPORTS)
        fprintf(stderr, "ioerr-layers:   [%s] check: %s\n", fs_where_now(), problem);
}

/* The vector store's content, and an exhaustive query checked against a
 * brute force over what the store holds. */
static int vstate(sop_vstore *vs, state *st, const char *when)
{
    static float have[VUNIVERSE][DIMS];
    static int present[VUNIVERSE];
    uint64_t h = FS_FNV_INIT, n = 0, count = 0;
    for (int k = 0; k < VUNIVERSE; k++) {
        char id[16];
        vid(vuniverse(k), id, sizeof id);
        sop_val pl;
        int rc = sop_vstore_get(vs, id, strlen(id), have[k], &pl);
        present[k] = rc == 0;
        if (rc == SOP_ENOTFOUND) {
            fs_fnv_u64(&h, 0);
            continue;
        }
        if (rc)
            return rc;
        n++;
        fs_fnv_u64(&h, 1);
        fs_fnv(&h, have[k], sizeof have[k]);
        fs_fnv_u64(&h, pl.size);
        fs_fnv(&h, pl.data, pl.size);
    }
    int rc = sop_vstore_count(vs, &count);
    if (rc)
        return rc;
    if (count != n)
        fs_bad("%s: sop_vstore_count() says %" PRIu64 " items, %" PRIu64 " ids are present", when,
               count, n);
    fs_fnv_u64(&h, count);
    st->vsig = h;
    /* exhaustive queries against the brute force */
    for (int q = 0; q < 3; q++) {
        float qv[DIMS];
        vvec(5000 + q, 0, qv);
        sop_vquery vq;
        sop_vquery_init(&vq);
        vq.vec = qv;
        vq.dims = DIMS;
        vq.k = 6;
        vq.nprobe = NLIST;
        sop_vhit hits[6];
        uint32_t nh = 6;
        rc = sop_vstore_query(vs, &vq, hits, &nh);
        if (rc)
            return rc;
        /* the true distances, ascending */
        double dist[VUNIVERSE];
        int m = 0;
        for (int k = 0; k < VUNIVERSE; k++) {
            if (!present[k])
                continue;
            double s = 0;
            for (int d = 0; d < DIMS; d++)
                s += ((double)have[k][d] - qv[d]) * ((double)have[k][d] - qv[d]);
            double v = sqrt(s);
            int j = m++;
            while (j > 0 && dist[j - 1] > v) {
                dist[j] = dist[j - 1];
                j--;
            }
            dist[j] = v;
        }
        uint32_t want = m < 6 ? (uint32_t)m : 6;
        if (nh != want) {
            fs_bad("%s: an exhaustive query returned %u hits, the store holds %d items", when, nh,
                   m);
            continue;
        }
        for (uint32_t i = 0; i < nh; i++) {
            /* the hit is a present item at the distance it says, and the
             * i-th distance is the i-th smallest */
            int k = -1;
            for (int j = 0; j < VUNIVERSE; j++) {
                char id[16];
                vid(vuniverse(j), id, sizeof id);
                if (hits[i].id.size == strlen(id) && !memcmp(hits[i].id.data, id, hits[i].id.size))
                    k = j;
            }
            if (k < 0 || !present[k]) {
                fs_bad("%s: an exhaustive query returned '%.*s', which the store does not hold",
                       when, (int)hits[i].id.size, (const char *)hits[i].id.data);
                break;
            }
            double s = 0;
            for (int d = 0; d < DIMS; d++)
                s += ((double)have[k][d] - qv[d]) * ((double)have[k][d] - qv[d]);
            if (fabs(sqrt(s) - hits[i].score) > 1e-3 || fabs(dist[i] - hits[i].score) > 1e-3) {
                fs_bad("%s: exhaustive query %d, hit %u ('%.*s'): score %g, its distance %g, the "
                       "%u-th nearest is at %g",
                       when, q, i, (int)hits[i].id.size, (const char *)hits[i].id.data,
                       (double)hits[i].score, sqrt(s), i + 1, dist[i]);
                break;
            }
        }
    }
    uint64_t qh = FS_FNV_INIT;
    rc = vqueries(vs, &qh);
    st->vq = qh;
    return rc;
}

static int tstate(sop_text *tx, state *st, const char *when)
{
    uint64_t h = FS_FNV_INIT, n = 0, total = 0;
    for (int k = 0; k < TUNIVERSE; k++) {
        char id[16];
        tid(tuniverse(k), id, sizeof id);
        uint32_t len = 0;
        int rc = sop_text_doc_len(tx, id, strlen(id), &len);
        if (rc == SOP_ENOTFOUND) {
            fs_fnv_u64(&h, 0);
            continue;
        }
        if (rc)
            return rc;
        n++;
        total += len;
        fs_fnv_u64(&h, 1 + (uint64_t)len);
    }
    sop_text_stat ts;
    int rc = sop_text_stats(tx, &ts);
    if (rc)
        return rc;
    if (ts.docs != n || ts.total_len != total)
        fs_bad("%s: text statistics say %" PRIu64 " documents of %" PRIu64
               " terms, the records %" PRIu64 " of %" PRIu64,
               when, ts.docs, ts.total_len, n, total);
    fs_fnv_u64(&h, ts.docs);
    fs_fnv_u64(&h, ts.total_len);
    fs_fnv_u64(&h, ts.terms);
    st->tsig = h;
    uint64_t qh = FS_FNV_INIT;
    rc = tqueries(tx, &qh);
    st->tq = qh;
    return rc;
}

/* The knowledge base: a prefix of whole batches, >= @acked records, at
 * most one batch more (unless @acked is unknown: UINT64_MAX), all 10 when
 * @complete_wanted; its records, word searches and the complete mark. */
static void kbstate(sop_txn *t, uint64_t acked, int complete_wanted, const char *when)
{
    sop_kb *kb;
    int rc = sop_kb_open(t, "kb", &kb);
    uint64_t count = 0;
    if (rc == SOP_ENOTFOUND) {
        if (acked && acked != UINT64_MAX)
            fs_bad("%s: the knowledge base is missing, %" PRIu64 " records were acknowledged", when,
                   acked);
        if (complete_wanted)
            fs_bad("%s: the knowledge base is missing after a load that succeeded", when);
        return;
    }
    if (rc) {
        fs_bad("%s: sop_kb_open: %s", when, sop_err_name(rc));
        return;
    }
    uint64_t problems = 0;
    rc = sop_kb_check(t, "kb", problem_line, NULL, &problems);
    if (rc || problems)
        fs_bad("%s: sop_kb_check: %s, %" PRIu64 " problems", when, sop_err_name(rc), problems);
    if ((rc = sop_kb_count(kb, &count))) {
        fs_bad("%s: sop_kb_count: %s", when, sop_err_name(rc));
        return;
    }
    if (count != KBN && count % KBBATCH)
        fs_bad("%s: the knowledge base holds %" PRIu64 " records, not whole batches of %d", when,
               count, KBBATCH);
    if (acked != UINT64_MAX && (count < acked || count > acked + KBBATCH))
        fs_bad("%s: the knowledge base holds %" PRIu64 " records, %" PRIu64
               " were acknowledged (at most one batch may be in flight)",
               when, count, acked);
    if (complete_wanted && count != KBN)
        fs_bad("%s: the load succeeded but the knowledge base holds %" PRIu64 " records", when,
               count);
    for (int i = 0; i < KBN; i++) {
        char id[16], text[256], meta[64];
        snprintf(id, sizeof id, "k%03d", i);
        kbtext(i, text, sizeof text);
        kbmeta(i, meta, sizeof meta);
        int want = (uint64_t)i < count;
        sop_kb_record r;
        rc = sop_kb_get(kb, id, &r);
        if (want && rc)
            fs_bad("%s: record %s of the first %" PRIu64 ": %s", when, id, count, sop_err_name(rc));
        else if (!want && rc != SOP_ENOTFOUND)
            fs_bad("%s: record %s beyond the first %" PRIu64 ": %s", when, id, count,
                   sop_err_name(rc));
        else if (want && (strcmp(r.text, text) || !r.metadata || strcmp(r.metadata, meta)))
            fs_bad("%s: record %s holds other text or metadata", when, id);
        sop_kb_hit hits[3];
        uint32_t nh = 3;
        rc = sop_kb_search(kb, NULL, g_kbwords[i], 3, hits, &nh);
        if (rc) {
            fs_bad("%s: sop_kb_search: %s", when, sop_err_name(rc));
            continue;
        }
        int found = 0;
        for (uint32_t j = 0; j < nh; j++)
            found |= !strcmp(hits[j].id, id);
        if (found != want)
            fs_bad("%s: a search for '%s' %s record %s, which is %s", when, g_kbwords[i],
                   found ? "finds" : "misses", id, want ? "present" : "absent");
    }
    int complete = sop_kb_complete(t, "kb");
    if (complete != (count == KBN))
        fs_bad("%s: complete mark %d with %" PRIu64 " records", when, complete, count);
}

/* Runs every check on @db in one READ transaction: the layer checks, the
 * state of vector store and text index into @st, the knowledge base
 * (when @x is kbload). Returns 0, or -1 when the state is unreadable. */
static int check_all(sop_db *db, int x, state *st, uint64_t acked, int complete_wanted,
                     const char *when)
{
    sop_txn *t;
    int rc = sop_txn_begin(db, SOP_TXN_READ, 0, &t);
    if (rc) {
        fs_bad("%s: begin READ: %s (%s)", when, sop_err_name(rc), sop_db_errmsg(db));
        return -1;
    }
    uint64_t problems = 0;
    rc = sop_vstore_check(t, "vec", problem_line, NULL, &problems);
    if (rc || problems)
        fs_bad("%s: sop_vstore_check: %s, %" PRIu64 " problems", when, sop_err_name(rc), problems);
    problems = 0;
    rc = sop_text_check(t, "txt", problem_line, NULL, &problems);
    if (rc || problems)
        fs_bad("%s: sop_text_check: %s, %" PRIu64 " problems", when, sop_err_name(rc), problems);
    int out = 0;
    sop_vstore *vs;
    sop_text *tx;
    if ((rc = sop_vstore_open(t, "vec", &vs)) || (rc = vstate(vs, st, when))) {
        fs_bad("%s: reading the vector store: %s (%s)", when, sop_err_name(rc), sop_db_errmsg(db));
        out = -1;
    }
    if ((rc = sop_text_open(t, "txt", &tx)) || (rc = tstate(tx, st, when))) {
        fs_bad("%s: reading the text index: %s (%s)", when, sop_err_name(rc), sop_db_errmsg(db));
        out = -1;
    }
    if (x == X_KBLOAD)
        kbstate(t, acked, complete_wanted, when);
    sop_txn_rollback(t);
    return out;
}

/* ------------------------------------------------------------------ */
/* Fault kinds                                                        */
/* ------------------------------------------------------------------ */

/* fs_kinds[] (fault_sweep.h) but SYNC: no sync is performed here */
#define NF FS_NKINDS_DATA

static int allowed(int x, int f, int rc)
{
    if (rc == SOP_OK || rc == -EIO)
        return 1;
    if (rc == SOP_ECORRUPT && f == FS_SHORT)
        return 1;
    if (x_readonly(x))
        return 0;
    return rc == SOP_EPANIC || rc == SOP_EFULL;
}

/* ------------------------------------------------------------------ */
/* The sweep                                                          */
/* ------------------------------------------------------------------ */

static int doc_single(const char *dir, const char *id);
static state g_before, g_after[NX];
static uint64_t g_count[NX][NF]; /* I/O calls of X matching each kind */
static uint64_t g_result[NX];    /* search X: the hash of its results without faults */

static void open_db(xctx *c)
{
    sop_db_options o = db_opts(c->fv, 1);
    int rc = sop_db_open(g_work, &o, &c->db);
    if (rc)
        fs_fatal("unarmed open: %s (%s)", sop_err_name(rc), sop_db_errmsg(c->db));
}

/* The state must be the one before X or the one after it (exactly the
 * "after" one when X succeeded, the "before" one when X failed before
 * committing), with the search results of that state. */
static void compare_state(int x, const state *s, int rc, const xctx *c, const char *when)
{
    const state *b = &g_before, *a = &g_after[x];
    int is_b = s->vsig == b->vsig && s->tsig == b->tsig;
    int is_a = s->vsig == a->vsig && s->tsig == a->tsig;
    if (!is_b && !is_a) {
        fs_bad("%s: the content is neither the state before nor the one after X (X returned %s, "
               "commit %s; vector %s, text %s)",
               when, sop_err_name(rc), c->stage ? "called" : "not called",
               s->vsig == b->vsig   ? "before"
               : s->vsig == a->vsig ? "after"
                                    : "other",
               s->tsig == b->tsig   ? "before"
               : s->tsig == a->tsig ? "after"
                                    : "other");
        return;
    }
    if (rc == SOP_OK && !is_a)
        fs_bad("%s: X returned SOP_OK but the content is the state before it", when);
    if (rc && !c->stage && x != X_VOPT && x != X_KBLOAD && !is_b)
        fs_bad("%s: X failed (%s) before its commit but the content is the state after it", when,
               sop_err_name(rc));
    /* searches: those of the state found (vopt: before == after in content,
     * but the index may be the old or the new one) */
    int vq_ok = (is_b && s->vq == b->vq) || (is_a && s->vq == a->vq) || c->retrained;
    int tq_ok = (is_b && s->tq == b->tq) || (is_a && s->tq == a->tq);
    if (!vq_ok)
        fs_bad("%s: vector queries return other results than the reference run of this state",
               when);
    if (!tq_ok)
        fs_bad("%s: text searches return other results than the reference run of this state", when);
}

/* Reopens with the real VFS, checks everything; then completes a failed
 * vopt or kbload and checks again. */
static void verify_reopen(int x, int rc, const xctx *c)
{
    sop_db_options o = db_opts(NULL, 0);
    sop_db *db;
    /* the centroid cache is not emptied: the reopen is in the same
     * process, as an application's would be */
    int orc = sop_db_open(g_work, &o, &db);
    if (orc) {
        fs_bad("reopen with the real VFS: %s (%s)", sop_err_name(orc), sop_db_errmsg(db));
        sop_db_close(db);
        return;
    }
    uint64_t problems = 0;
    int crc = sop_db_check(db, problem_line, NULL, &problems);
    if (crc || problems)
        fs_bad("sop_db_check after reopen: %s, %" PRIu64 " problems", sop_err_name(crc), problems);
    state s;
    if (!check_all(db, x, &s, x == X_KBLOAD ? c->acked : 0, x == X_KBLOAD && rc == SOP_OK,
                   "after reopen"))
        compare_state(x, &s, rc, c, "after reopen");
    if (rc && (x == X_VOPT || x == X_KBLOAD)) {
        int r2 = x == X_VOPT ? x_vopt(&(xctx){.db = db}) : kb_load(db, NULL);
        if (r2)
            fs_bad("%s again without faults: %s (%s)", x_name[x], sop_err_name(r2),
                   sop_db_errmsg(db));
        else if (!check_all(db, x, &s, UINT64_MAX, 1, "after completing it")) {
            xctx c2 = *c;
            c2.retrained = x == X_VOPT;
            compare_state(x, &s, SOP_OK, &c2, "after completing it");
        }
        if (x == X_VOPT && !r2) {
            sop_txn *t;
            sop_vstore *vs;
            sop_vstore_stat st;
            if (!sop_txn_begin(db, SOP_TXN_READ, 0, &t)) {
                if (!sop_vstore_open(t, "vec", &vs) && !sop_vstore_stats(vs, &st, NULL, 0) &&
                    (st.optimizing || st.version < 2 || st.nlist != NLIST))
                    fs_bad("after completing vopt: version %u, nlist %u, optimizing %d", st.version,
                           st.nlist, st.optimizing);
                sop_txn_rollback(t);
            }
        }
    }
    int clrc = sop_db_close(db);
    if (clrc)
        fs_bad("close after reopen: %s", sop_err_name(clrc));
}

/* One case: X with the nth call of kind @f failing. Returns whether the
 * fault was reached. */
static int one_case(int x, int f, int persistent, uint64_t n)
{
    const fs_kind *fk = &fs_kinds[f];
    fs_case_begin_nth(ITER_ALARM_S, x_name[x], f, persistent, n);
    fs_copy_dir(g_tmpl, g_work);
    vc_clear();
    xctx c = {0};
    c.fv = fault_vfs_new(&g_base);
    if (!c.fv)
        fs_fatal("fault_vfs_new");
    open_db(&c);
    fault_vfs_fail_nth(c.fv, fk->mask, n, fk->err, persistent);
    int rc = x_run(x, &c);
    uint64_t hit = fault_vfs_triggered(c.fv);
    fault_vfs_disarm(c.fv);
    if (!allowed(x, f, rc))
        fs_bad("X returned %s, not a documented result for this operation (%s)", sop_err_name(rc),
               sop_db_errmsg(c.db));
    if (!hit && rc)
        fs_bad("X failed with %s but no fault was injected", sop_err_name(rc));
    /* a failed write or sync is never ignored: X fails, or (the checkpoint
     * that follows a commit failed, and the commit stands) the handle is
     * in the panic state */
    int pan = fs_panicked(c.db);
    if (g_verbose)
        fprintf(stderr, "ioerr-layers: [%s] -> %s, hit %" PRIu64 "%s\n", fs_where_now(),
                sop_err_name(rc), hit, pan ? ", panicked" : "");
    if (hit && fk->mutating && rc == SOP_OK && !pan)
        fs_bad("a failed write was ignored: X returned SOP_OK and the handle is not in the panic "
               "state");
    if (!hit)
        fs_bad("the fault was not reached (X's I/O is not deterministic)");
    if (x_readonly(x) && rc == SOP_OK && c.result != g_result[x])
        fs_bad("the search succeeded but returned other results than without faults");

    /* the same handle, fault disarmed */
    int must_panic = rc == SOP_EPANIC ||
                     (fk->mutating && rc && c.stage && hit && !c.hit_before && x != X_VOPT &&
                      x != X_KBLOAD);
    if (pan) {
        fs_panic_sticks(c.db);
        sop_voptimize_options oo;
        sop_voptimize_options_init(&oo);
        int prc = sop_vstore_optimize(c.db, "vec", &oo);
        if (prc != SOP_EPANIC)
            fs_bad("panicked handle: optimize returned %s", sop_err_name(prc));
    } else {
        if (must_panic)
            fs_bad("X returned %s after a failed write in its commit, but the handle is not in the "
                   "panic state",
                   sop_err_name(rc));
        uint64_t problems = 0;
        int crc = sop_db_check(c.db, problem_line, NULL, &problems);
        if (crc || problems)
            fs_bad("sop_db_check on the same handle: %s, %" PRIu64 " problems", sop_err_name(crc),
                   problems);
        state s;
        if (!check_all(c.db, x, &s, x == X_KBLOAD ? c.acked : 0, x == X_KBLOAD && rc == SOP_OK,
                       "same handle"))
            compare_state(x, &s, rc, &c, "same handle");
    }
    int clrc = sop_db_close(c.db);
    if (clrc)
        fs_bad("close after X (fault disarmed): %s", sop_err_name(clrc));
    fault_vfs_free(c.fv);
    verify_reopen(x, rc, &c);
    fs_case_end();
    return hit != 0;
}

/* X without faults: counts its I/O calls per kind, and its state after. */
static void reference_run(int x)
{
    fs_case_begin(0, "reference", "reference X=%s", x_name[x]); /* no time limit */
    fs_copy_dir(g_tmpl, g_work);
    vc_clear();
    xctx c = {0};
    c.fv = fault_vfs_new(&g_base);
    open_db(&c);
    fault_vfs_reset_ops(c.fv);
    int rc = x_run(x, &c);
    if (rc)
        fs_fatal("X without faults: %s (%s)", sop_err_name(rc), sop_db_errmsg(c.db));
    for (int f = 0; f < NF; f++)
        g_count[x][f] = fault_vfs_ops(c.fv, fs_kinds[f].mask);
    if (g_verbose)
        fs_print_ops(c.fv, x_name[x]);
    if (sop_db_close(c.db))
        fs_fatal("close");
    fault_vfs_free(c.fv);
    sop_db_options o = db_opts(NULL, 0);
    sop_db *db;
    vc_clear();
    if ((rc = sop_db_open(g_work, &o, &db)))
        fs_fatal("reopen: %s", sop_err_name(rc));
    uint64_t before = fs_bad_checks();
    if (check_all(db, x, &g_after[x], x == X_KBLOAD ? KBN : 0, x == X_KBLOAD, "reference") ||
        fs_bad_checks() != before)
        fs_fatal("the reference state does not check clean");
    sop_db_close(db);
    g_result[x] = c.result; /* a search X's results, compared in one_case() */
    if (x == X_TBULK && (doc_single(g_work, "d700") || doc_single(g_work, "d739")))
        fs_fatal("tbulk wrote single records: the bulk path was not taken");
    if (x == X_TADD && !doc_single(g_work, "d600"))
        fs_fatal("tadd did not write a single record");
}

/* Whether document @id of the text index has a single record (key 0x00 .
 * id of its store txt.txt.doc, docs.h) rather than an entry in a block,
 * which only the bulk path writes. */
static int doc_single(const char *dir, const char *id)
{
    sop_db_options o = db_opts(NULL, 0);
    sop_db *db;
    sop_txn *t;
    sop_store *s;
    char key[32];
    key[0] = 0x00;
    size_t kl = 1 + (size_t)snprintf(key + 1, sizeof key - 1, "%s", id);
    sop_val k = {key, kl}, v;
    if (sop_db_open(dir, &o, &db))
        fs_fatal("open %s", dir);
    if (sop_txn_begin(db, SOP_TXN_READ, 0, &t) || sop_store_open(t, "txt.txt.doc", &s))
        fs_fatal("cannot read the text index's record store");
    int rc = sop_get(s, &k, &v);
    if (rc && rc != SOP_ENOTFOUND)
        fs_fatal("get: %s", sop_err_name(rc));
    sop_txn_rollback(t);
    sop_db_close(db);
    return rc == 0;
}

/* ------------------------------------------------------------------ */
/* Template                                                           */
/* ------------------------------------------------------------------ */

static void build_template(const char *dir)
{
    fs_where("template");
    sop_db_options o = db_opts(NULL, 0);
    sop_db *db;
    sop_txn *t;
    int rc = sop_db_open(dir, &o, &db);
    if (rc)
        fs_fatal("open: %s", sop_err_name(rc));
    /* the vector store: 48 items, trained into 4 clusters */
    rc = sop_txn_begin(db, SOP_TXN_WRITE, 0, &t);
    if (!rc) {
        sop_vstore_options vo;
        sop_vstore_options_init(&vo);
        vo.dims = DIMS;
        vo.metric = SOP_METRIC_L2;
        vo.nlist = NLIST;
        vo.train_at = UINT32_MAX;
        vo.node_bytes = 4096;
        sop_vstore *vs;
        rc = sop_vstore_create(t, "vec", &vo, &vs);
        static float vecs[VBASE][DIMS];
        static char ids[VBASE][16], pl[VBASE][64];
        sop_vitem items[VBASE];
        for (int i = 0; i < VBASE; i++) {
            vvec(i, 0, vecs[i]);
            vid(i, ids[i], sizeof ids[i]);
            vpayload(i, 0, pl[i], sizeof pl[i]);
            items[i] = (sop_vitem){ids[i], strlen(ids[i]), vecs[i], DIMS, pl[i], strlen(pl[i])};
        }
        if (!rc)
            rc = sop_vstore_upsert_batch(vs, items, VBASE);
        /* the text index, with 40 documents in one transaction: blocks */
        sop_text_options to;
        sop_text_options_init(&to);
        to.node_bytes = 2048;
        sop_text *tx;
        if (!rc)
            rc = sop_text_create(t, "txt", &to, &tx);
        for (int i = 0; !rc && i < TBASE; i++)
            rc = tput(tx, i, 0, 0);
        rc = rc ? (sop_txn_rollback(t), rc) : sop_txn_commit(t);
    }
    if (rc)
        fs_fatal("template: %s (%s)", sop_err_name(rc), sop_db_errmsg(db));
    xctx c = {.db = db};
    if ((rc = x_vopt(&c)) || (rc = t_addrange(&c, 500, 500 + TSINGLE)))
        fs_fatal("template: %s (%s)", sop_err_name(rc), sop_db_errmsg(db));
    if ((rc = sop_db_close(db)))
        fs_fatal("template close: %s", sop_err_name(rc));
    /* the state before every X */
    vc_clear();
    if ((rc = sop_db_open(dir, &o, &db)))
        fs_fatal("template reopen: %s", sop_err_name(rc));
    uint64_t problems = 0;
    if (sop_db_check(db, problem_line, NULL, &problems) ||
        check_all(db, X_VADD, &g_before, 0, 0, "template") || fs_bad_checks())
        fs_fatal("the template does not check clean");
    sop_txn *rt;
    sop_vstore *vs;
    sop_vstore_stat st;
    if (sop_txn_begin(db, SOP_TXN_READ, 0, &rt) || sop_vstore_open(rt, "vec", &vs) ||
        sop_vstore_stats(vs, &st, NULL, 0) || !st.trained || st.nlist != NLIST)
        fs_fatal("the template's vector store is not trained");
    sop_txn_rollback(rt);
    sop_db_close(db);
    if (doc_single(dir, "d000") || doc_single(dir, "d120") || !doc_single(dir, "d501"))
        fs_fatal("the template's text index does not hold its documents in blocks and singles");
}

static void write_fallback(const char *path)
{
    FILE *f = fopen(path, "w");
    if (!f)
        fs_fatal("cannot write %s", path);
    fprintf(f, "{\"format\":\"sop-fallback\",\"version\":1,\"name\":\"kb\",\"records\":[");
    for (int i = 0; i < KBN; i++) {
        char text[256], meta[64];
        kbtext(i, text, sizeof text);
        kbmeta(i, meta, sizeof meta);
        fprintf(f, "%s{\"id\":\"k%03d\",\"text\":\"%s\",\"metadata\":%s}", i ? "," : "", i, text,
                meta);
    }
    fprintf(f, "]}\n");
    fclose(f);
}

/* ------------------------------------------------------------------ */

static uint64_t stride_for(uint64_t count)
{
    const char *e = getenv("SOP_IOERRL_STRIDE");
    if (e && atol(e) > 0)
        return (uint64_t)atol(e);
    return count <= STRIDE_FULL ? 1 : (count + STRIDE_FULL - 1) / STRIDE_FULL;
}

int main(int argc, char **argv)
{
    const char *only;
    if (fs_args(argc, argv, &only, &g_verbose)) {
        fprintf(stderr, "usage: ioerr_layers [--only vadd|vopt|vdel|vsearch|tadd|tbulk|trepl|"
                        "tdel|tsearch|kbload] [--verbose]\n");
        return 2;
    }
    g_base = *sop_vfs_posix();
    g_base.sync = nosync;
    g_base.sync_dir = nosync_dir;
    fs_init("ioerr-layers");
    if (sop_embedder_builtin(64, &g_emb))
        fs_fatal("built-in embedder");
    g_tmpl = tu_tmpdir("template");
    g_work = tu_tmpdir("work");
    snprintf(g_fallback, sizeof g_fallback, "%s/kb.json", tu_tmpdir("files"));
    write_fallback(g_fallback);
    build_template(g_tmpl);
    for (int x = 0; x < NX; x++)
        reference_run(x);

    uint64_t total = 0, lpoints[NL] = {0}, lcases[NL] = {0};
    for (int x = 0; x < NX; x++) {
        if (only && strcmp(only, x_name[x]))
            continue;
        uint64_t xpoints = 0, cases0 = fs_bad_cases();
        char detail[512];
        size_t dl = 0;
        detail[0] = 0;
        for (int f = 0; f < NF; f++) {
            uint64_t count = g_count[x][f], st = stride_for(count);
            for (int p = 0; p < 2; p++) {
                uint64_t pts = 0;
                for (uint64_t n = 1; n <= count; n += st) {
                    one_case(x, f, p, n);
                    pts++;
                }
                xpoints += pts;
                fs_detail_add(detail, sizeof detail, &dl, "%s%s/%c %" PRIu64, dl ? ", " : "",
                              fs_kinds[f].name, p ? 'p' : 't', pts);
            }
            fs_detail_add(detail, sizeof detail, &dl, " of %" PRIu64 " calls", count);
            if (st > 1)
                fs_detail_add(detail, sizeof detail, &dl, ", stride %" PRIu64, st);
        }
        printf("ioerr-layers: %-6s X=%-7s %4" PRIu64 " injection points (%s); %" PRIu64 " bad\n",
               l_name[x_layer(x)], x_name[x], xpoints, detail, fs_bad_cases() - cases0);
        fflush(stdout);
        lpoints[x_layer(x)] += xpoints;
        lcases[x_layer(x)] += fs_bad_cases() - cases0;
        total += xpoints;
    }
    for (int l = 0; l < NL; l++)
        printf("ioerr-layers: layer %-6s %5" PRIu64 " injection points, %" PRIu64 " bad\n",
               l_name[l], lpoints[l], lcases[l]);
    sop_embedder_free(g_emb);
    return fs_finish(total);
}
