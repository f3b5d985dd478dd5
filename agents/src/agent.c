/* agent.c - sop_agent_ask(): the stages of an agent in one transaction,
 * with the turn kept in the agent's memory.
 *
 * Memory is the store "<id>.memory": key the 8-byte big-endian time of the
 * turn in nanoseconds (bumped past a taken key), value the answer's JSON
 * (sop_answer_json()). It is written in the same transaction as the
 * retrieval, so a turn is remembered exactly when its transaction
 * commits. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "agent_int.h"
#include "mem.h"

#define QUESTION_MAX (64u << 10)
#define CONFLICT_RETRIES 5

static int run(sop_agent *a, const agent_cfg *c, sop_txn *txn, answer_b *b, sop_token_fn fn,
               void *arg)
{
    int rc = 0;
    switch (c->kind) {
    case AGENT_PIPELINE:
        for (size_t i = 0; !rc && i < c->nstages; i++)
            rc = run(a, c->stages[i], txn, b, fn, arg);
        return rc;
    case AGENT_NURSE: {
        if ((rc = nurse_run(a, c, txn, b)))
            return rc;
        /* a nurse alone answers with the terms */
        const sop_answer *ans = ans_pub(b);
        sbuf o = {0};
        for (size_t i = 0; i < ans->nterms; i++)
            sb_printf(&o, "%s%s", i ? ", " : "", ans->terms[i]);
        sb_puts(&o, "");
        if (o.oom)
            return -ENOMEM;
        rc = ans_set_answer(b, o.s, 0);
        sb_free(&o);
        return rc;
    }
    default:
        return doctor_run(a, c, txn, b, fn, arg);
    }
}

static int remember(sop_agent *a, sop_txn *txn, const sop_answer *ans)
{
    char name[96];
    snprintf(name, sizeof name, "%s.memory", a->cfg->id);
    sop_store *s;
    int rc = sop_store_open(txn, name, &s);
    if (rc == SOP_ENOTFOUND)
        rc = sop_store_create(txn, name, NULL, &s);
    if (rc)
        return agent_fail(a, rc, "memory store %s: %s", name, sop_strerror(rc));
    char *json = sop_answer_json(ans);
    if (!json)
        return -ENOMEM;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t t = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
    uint8_t k[8];
    sop_val key = {k, 8}, val = {json, strlen(json)};
    for (int tries = 0; tries < 64; tries++, t++) {
        for (int i = 0; i < 8; i++)
            k[i] = (uint8_t)(t >> (56 - 8 * i));
        if ((rc = sop_add_if_absent(s, &key, &val)) != SOP_EEXISTS)
            break;
    }
    sop_free(json);
    if (rc)
        agent_fail(a, rc, "memory store %s: %s", name, sop_strerror(rc));
    return rc;
}

int sop_agent_ask(sop_agent *a, sop_txn *txn, const char *question, sop_token_fn fn, void *arg,
                  sop_answer **out)
{
    if (out)
        *out = NULL;
    if (!a || !question || !out)
        return -EINVAL;
    size_t ql = strlen(question);
    if (ql == 0 || ql > QUESTION_MAX)
        return agent_fail(a, -EINVAL, "the question must be 1..%u bytes", QUESTION_MAX);
    if (txn && sop_txn_db(txn) != a->db)
        return agent_fail(a, -EINVAL, "the transaction is not of the agent's database");
    a->err[0] = 0;
    for (int attempt = 0;; attempt++) {
        answer_b *b = ans_new(question);
        if (!b)
            return -ENOMEM;
        sop_txn *t = txn;
        int rc = 0;
        if (!t && (rc = sop_txn_begin(a->db, SOP_TXN_WRITE, a->online ? 600000 : 0, &t)))
            agent_fail(a, rc, "cannot begin a transaction: %s", sop_strerror(rc));
        /* a retry does not stream a second time */
        if (!rc && !(rc = run(a, a->cfg, t, b, attempt ? NULL : fn, arg)))
            rc = remember(a, t, ans_pub(b));
        if (!txn && t) {
            if (!rc)
                rc = sop_txn_commit(t);
            else
                sop_txn_rollback(t);
        }
        if (!rc) {
            *out = ans_pub(b);
            return 0;
        }
        sop_answer_free(ans_pub(b));
        if (rc != SOP_ECONFLICT || txn || attempt >= CONFLICT_RETRIES) {
            if (!a->err[0])
                agent_fail(a, rc, "%s", sop_strerror(rc));
            return rc;
        }
    }
}
