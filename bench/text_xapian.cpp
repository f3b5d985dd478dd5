/*
 * text_xapian.cpp - the Xapian engine of the text suite: an extern "C"
 * shim over Xapian's C++ API (libxapian-dev, Xapian 1.4, glass backend).
 *
 * Build: a WritableDatabase in the work directory; begin_transaction(),
 * one add_document() per document (docid = row + 1), terms from a
 * TermGenerator with the English stemmer and STEM_SOME (stemmed "Z" terms
 * and the unstemmed words), without positions and without document data:
 * like sop's index and the contentless FTS5 table, only what BM25 needs.
 * commit_transaction() syncs (Xapian syncs its commits unless opened with
 * DB_NO_SYNC), so it is durable when it returns, as sop's SOP_SYNC_FULL
 * commit is. Xapian has no cache setting: it reads through the OS's page
 * cache.
 *
 * Queries: a QueryParser with the same stemmer and strategy, default
 * operator OR, no flags (the query is words separated by spaces: no
 * boolean operators, phrases or wildcards), weighted with
 * BM25Weight(1.2, 0, 1, 0.75, 0.5); one Enquire on one Database, reopened
 * (a fresh snapshot) every TEXT_QUERIES_PER_TXN queries.
 */
#include "text.h"

#include <xapian.h>

#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>

extern "C" {
#include "bench_util.h"
}

struct text_index {
    Xapian::Database db;
    Xapian::Enquire enq;
    Xapian::QueryParser qp;
    explicit text_index(const std::string &path) : db(path), enq(db) {}
};

static std::string db_path(const char *dir)
{
    return std::string(dir) + "/xapian";
}

static int xp_build(const text_corpus *c, const char *dir, text_build *b)
{
    try {
        double t0 = bench_now();
        Xapian::WritableDatabase db(db_path(dir), Xapian::DB_CREATE_OR_OVERWRITE);
        Xapian::TermGenerator tg;
        tg.set_stemmer(Xapian::Stem("english"));
        tg.set_stemming_strategy(Xapian::TermGenerator::STEM_SOME);
        db.begin_transaction(true);
        for (size_t i = 0; i < c->n; i++) {
            Xapian::Document doc;
            tg.set_document(doc);
            tg.index_text_without_positions(std::string(c->docs[i].text, c->docs[i].len));
            Xapian::docid id = db.add_document(doc);
            if (id != (Xapian::docid)(i + 1)) {
                text_set_err("xapian build: docid %u for row %zu", id, i);
                return -1;
            }
        }
        double tc = bench_now();
        db.commit_transaction();
        double t1 = bench_now();
        db.close();
        double t2 = bench_now();
        b->index_s = t1 - t0;
        b->commit_s = t1 - tc;
        b->close_s = t2 - t1;
        std::snprintf(b->desc, sizeof b->desc,
                      "Xapian %s glass, English stemmer STEM_SOME, no positions, no data; one "
                      "transaction, commit synced (durable); OS page cache",
                      Xapian::version_string());
    } catch (const Xapian::Error &e) {
        text_set_err("xapian build: %s", e.get_description().c_str());
        return -1;
    } catch (const std::exception &e) {
        text_set_err("xapian build: %s", e.what());
        return -1;
    }
    return 0;
}

static int xp_open(const char *dir, size_t ndocs, text_index **out)
{
    (void)ndocs;
    try {
        text_index *ix = new text_index(db_path(dir));
        ix->enq.set_weighting_scheme(Xapian::BM25Weight(1.2, 0, 1, 0.75, 0.5));
        ix->qp.set_stemmer(Xapian::Stem("english"));
        ix->qp.set_stemming_strategy(Xapian::QueryParser::STEM_SOME);
        ix->qp.set_default_op(Xapian::Query::OP_OR);
        ix->qp.set_database(ix->db);
        *out = ix;
    } catch (const Xapian::Error &e) {
        text_set_err("xapian open: %s", e.get_description().c_str());
        return -1;
    } catch (const std::exception &e) {
        text_set_err("xapian open: %s", e.what());
        return -1;
    }
    return 0;
}

static int xp_search(text_index *ix, const text_queries *qs, size_t q0, size_t nq, uint32_t k,
                     int32_t *out)
{
    try {
        for (size_t q = 0; q < nq; q++) {
            if (q % TEXT_QUERIES_PER_TXN == 0)
                ix->db.reopen();
            Xapian::Query query = ix->qp.parse_query(qs->q[q0 + q], 0);
            ix->enq.set_query(query);
            Xapian::MSet m = ix->enq.get_mset(0, k);
            int32_t *o = out + q * k;
            uint32_t n = 0;
            for (Xapian::MSetIterator it = m.begin(); it != m.end() && n < k; ++it)
                o[n++] = (int32_t)(*it) - 1;
            for (; n < k; n++)
                o[n] = -1;
        }
    } catch (const Xapian::Error &e) {
        text_set_err("xapian search: %s", e.get_description().c_str());
        return -1;
    } catch (const std::exception &e) {
        text_set_err("xapian search: %s", e.what());
        return -1;
    }
    return 0;
}

static void xp_close(text_index *ix)
{
    delete ix;
}

extern "C" const text_engine text_engine_xapian = {"xapian", xp_build, xp_open, xp_search,
                                                   xp_close};
