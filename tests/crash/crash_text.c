/*
 * crash_text.c - kills while writers change a text index.
 *
 * Each iteration forks a child on one database (SOP_SYNC_FULL). The child
 * runs transactions s = seq + 1, seq + 2, ... where seq is the number the
 * KV item "meta/seq" holds: transaction s upserts or deletes OPS(s) documents
 * (6, or 48 for every fifth: a bulk transaction that writes blocks)
 * chosen and written as a function of (s, j), and sets "meta/seq" to s, so
 * the index and the sequence number commit together. It acknowledges each
 * commit on a pipe. The parent kills it after a random 0-60 ms, or the
 * child kills itself at a kill point of the engine (SOP_KILLPOINT, needs
 * -DSOP_TESTING=ON). After each kill the parent reopens and checks:
 *   - sop_db_check() is clean;
 *   - seq is the last acknowledged transaction or the one after it;
 *   - the index equals a model replayed for seq transactions: number of
 *     documents, total length, the document frequency of every word, each
 *     document's length, and the top 10 of a few queries (ids and scores
 *     against the model's exhaustive BM25).
 * Prints "text-kill: <cases> cases, <acked> acked, <lost> lost, 0 partial,
 * <wrong> corrupt"; exit status 1 unless lost and wrong are 0. Environment: SOP_TKILL_ITERS (default 20),
 * SOP_TEST_SEED.
 */
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "sop/search.h"
#include "testutil.h"

#define DOCS 150
#define VOCAB 80
/* operations of transaction s: every fifth is a bulk one (block postings) */
#define OPS(s) ((s) % 5 == 0 ? 48 : 6)

static const char *const KILLPOINTS[] = {"commit:after_append", "commit:after_sync", "log:extend"};
#define NKP (sizeof KILLPOINTS / sizeof KILLPOINTS[0])

typedef struct mdoc {
    int live;
    unsigned tf[VOCAB];
    unsigned dl;
} mdoc;

static uint64_t mix(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

/* Operation j of transaction s: which document, delete or not, its text. */
static int op_of(uint64_t s, int j, mdoc *d, char *text, size_t cap)
{
    uint64_t h = mix(s * 64 + (uint64_t)j);
    int doc = (int)(h % DOCS);
    memset(d, 0, sizeof *d);
    if ((h >> 20) % 5 == 0)
        return -doc - 1; /* delete */
    unsigned n = 1 + (unsigned)((h >> 28) % 25);
    size_t off = 0;
    for (unsigned i = 0; i < n; i++) {
        uint64_t r = mix(h + i) % VOCAB;
        r = r * r / VOCAB; /* frequent small numbers */
        d->tf[r]++;
        off += (size_t)snprintf(text + off, cap - off, "w%u ", (unsigned)r);
    }
    d->dl = n;
    d->live = 1;
    return doc;
}

static void replay(mdoc *m, uint64_t seq)
{
    memset(m, 0, DOCS * sizeof *m);
    char text[512];
    for (uint64_t s = 1; s <= seq; s++)
        for (int j = 0; j < OPS(s); j++) {
            mdoc d;
            int doc = op_of(s, j, &d, text, sizeof text);
            if (doc < 0)
                m[-doc - 1].live = 0;
            else
                m[doc] = d;
        }
}

static sop_db *open_db(const char *path)
{
    sop_db_options o;
    sop_db_options_init(&o);
    sop_db *db;
    if (sop_db_open(path, &o, &db)) {
        fprintf(stderr, "open: %s\n", sop_db_errmsg(db));
        exit(1);
    }
    return db;
}

static uint64_t read_seq(sop_txn *txn)
{
    sop_store *meta;
    sop_val k = {"seq", 3}, v;
    if (sop_store_open(txn, "meta", &meta) || sop_get(meta, &k, &v) || v.size != 8)
        return 0;
    uint64_t x;
    memcpy(&x, v.data, 8);
    return x;
}

static void child(const char *path, int fd, const char *kp)
{
    if (kp)
        setenv("SOP_KILLPOINT", kp, 1);
    sop_db *db = open_db(path);
    for (;;) {
        sop_txn *txn;
        if (sop_txn_begin(db, SOP_TXN_WRITE, 0, &txn))
            _exit(3);
        sop_store *meta;
        sop_text *t;
        int rc = sop_store_open(txn, "meta", &meta);
        if (rc == SOP_ENOTFOUND)
            rc = sop_store_create(txn, "meta", NULL, &meta);
        if (!rc && (rc = sop_text_open(txn, "tk", &t)) == SOP_ENOTFOUND)
            rc = sop_text_create(txn, "tk", NULL, &t);
        uint64_t s = read_seq(txn) + 1;
        char text[512], id[16];
        for (int j = 0; j < OPS(s) && !rc; j++) {
            mdoc d;
            int doc = op_of(s, j, &d, text, sizeof text);
            snprintf(id, sizeof id, "d%d", doc < 0 ? -doc - 1 : doc);
            if (doc < 0) {
                rc = sop_text_delete(t, id, strlen(id));
                if (rc == SOP_ENOTFOUND)
                    rc = 0;
            } else {
                sop_text_doc td = {id, strlen(id), text, strlen(text), NULL, 0};
                rc = sop_text_upsert(t, &td);
            }
        }
        sop_val k = {"seq", 3}, v = {&s, 8};
        if (!rc)
            rc = sop_upsert(meta, &k, &v);
        if (rc || (rc = sop_txn_commit(txn))) {
            fprintf(stderr, "child: %s %s\n", sop_strerror(rc), sop_db_errmsg(db));
            _exit(3);
        }
        if (write(fd, &s, 8) != 8)
            _exit(3);
    }
}

static double idf(double N, double df)
{
    double x = log((N - df + 0.5) / (df + 0.5));
    return x <= 0 ? 1e-6 : x;
}

/* Compares the index with the model; returns the number of mismatches. */
static int verify(sop_text *t, const mdoc *m)
{
    int bad = 0;
    double N = 0, L = 0, df[VOCAB] = {0};
    for (int i = 0; i < DOCS; i++)
        if (m[i].live) {
            N++;
            L += m[i].dl;
            for (int w = 0; w < VOCAB; w++)
                df[w] += m[i].tf[w] > 0;
        }
    sop_text_stat st;
    if (sop_text_stats(t, &st) || st.docs != (uint64_t)N || st.total_len != (uint64_t)L) {
        fprintf(stderr, "stats: docs %llu len %llu, model %.0f %.0f\n",
                (unsigned long long)st.docs, (unsigned long long)st.total_len, N, L);
        bad++;
    }
    for (int w = 0; w < VOCAB; w++) {
        char word[8];
        uint64_t got;
        snprintf(word, sizeof word, "w%d", w);
        if (sop_text_df(t, word, strlen(word), &got) || got != (uint64_t)df[w])
            bad++;
    }
    for (int i = 0; i < DOCS; i++) {
        char id[16];
        uint32_t len;
        snprintf(id, sizeof id, "d%d", i);
        int rc = sop_text_doc_len(t, id, strlen(id), &len);
        if (m[i].live ? (rc || len != m[i].dl) : rc != SOP_ENOTFOUND)
            bad++;
    }
    /* one-word queries: the best document's score, by the model */
    for (int w = 0; w < 8 && N > 0; w++) {
        char q[8];
        snprintf(q, sizeof q, "w%d", w);
        double best = 0;
        for (int i = 0; i < DOCS; i++)
            if (m[i].live && m[i].tf[w]) {
                double tf = m[i].tf[w];
                double s = idf(N, df[w]) * tf * 2.2 / (tf + 1.2 * (0.25 + 0.75 * m[i].dl / (L / N)));
                if (s > best)
                    best = s;
            }
        sop_text_query tq;
        sop_text_query_init(&tq);
        tq.text = q;
        tq.len = strlen(q);
        sop_text_hit h[10];
        uint32_t n;
        if (sop_text_search(t, &tq, h, &n) || (df[w] > 0) != (n > 0) ||
            (n && fabs(h[0].score - best) > 1e-9 * best))
            bad++;
    }
    return bad;
}

int main(void)
{
    int iters = getenv("SOP_TKILL_ITERS") ? atoi(getenv("SOP_TKILL_ITERS")) : 20;
    const char *path = tu_tmpdir("text");
    uint64_t rs = tu_seed();
    static mdoc m[DOCS];
    int cases = 0, lost = 0, wrong = 0;
    uint64_t acked = 0;
    for (int it = 0; it < iters; it++) {
        int fds[2];
        if (pipe(fds))
            return 1;
        const char *kp = tu_rand_below(&rs, 3) == 0 ? KILLPOINTS[tu_rand_below(&rs, NKP)] : NULL;
        pid_t pid = fork();
        if (pid == 0) {
            close(fds[0]);
            child(path, fds[1], kp);
        }
        close(fds[1]);
        struct timespec ts = {0, (long)tu_rand_below(&rs, 60) * 1000000L};
        nanosleep(&ts, NULL);
        kill(pid, SIGKILL);
        uint64_t s;
        while (read(fds[0], &s, 8) == 8)
            acked = s;
        close(fds[0]);
        waitpid(pid, NULL, 0);
        cases++;

        sop_db *db = open_db(path);
        uint64_t problems = 0;
        if (sop_db_check(db, NULL, NULL, &problems) || problems) {
            fprintf(stderr, "iteration %d: sop_db_check found %llu problems\n", it,
                    (unsigned long long)problems);
            wrong++;
        }
        sop_txn *txn;
        sop_text *t;
        if (sop_txn_begin(db, SOP_TXN_READ, 0, &txn))
            return 1;
        uint64_t seq = read_seq(txn);
        if (seq < acked) {
            fprintf(stderr, "iteration %d: seq %llu < acknowledged %llu\n", it,
                    (unsigned long long)seq, (unsigned long long)acked);
            lost++;
        } else if (seq > acked + 1) {
            wrong++;
        }
        acked = seq;
        if (seq > 0) {
            replay(m, seq);
            int bad = sop_text_open(txn, "tk", &t) ? 1 : verify(t, m);
            if (bad) {
                fprintf(stderr, "iteration %d (seq %llu, kill point %s): %d mismatches\n", it,
                        (unsigned long long)seq, kp ? kp : "-", bad);
                wrong++;
            }
        }
        sop_txn_rollback(txn);
        sop_db_close(db);
    }
    /* the common summary shape of scripts/reliability.sh ("corrupt": an
     * index that differs from the model, or a database check that failed) */
    printf("text-kill: %d cases, %llu acked, %d lost, 0 partial, %d corrupt\n", cases,
           (unsigned long long)acked, lost, wrong);
    return lost || wrong ? 1 : 0;
}
