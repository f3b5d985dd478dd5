/* nurse.c - the nurse: a colloquial complaint to clinical terms.
 *
 * Offline, the complaint is cut into clauses (at punctuation and at "and",
 * "but", "with", ...), and each clause is matched against the nurse's
 * knowledge base of colloquial phrases; the terms of the closest phrase
 * count when its cosine similarity reaches min_similarity, and so do those
 * of the phrases within 0.05 of it; a clause that starts with a negation
 * ("no cough", "without a rash") is skipped. With a language model, the model
 * rewrites the complaint (its comma-separated answer is split into terms);
 * when it fails in SOP_LLM_AUTO mode, the offline way answers instead. */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "agent_int.h"
#include "mem.h"

static const char *const SPLIT_WORDS[] = {"and", "but", "with", "also", "plus", "then", "or",
                                          "while", "because", NULL};

static int is_split_word(const char *w, size_t n)
{
    for (const char *const *s = SPLIT_WORDS; *s; s++)
        if (strlen(*s) == n && !strncmp(*s, w, n))
            return 1;
    return 0;
}

/* Calls @fn on each clause of @q (a lowercase copy, cut in place). */
static int clauses(char *q, int (*fn)(const char *clause, void *ctx), void *ctx)
{
    char *start = q;
    for (char *p = q;; p++) {
        int end = !*p || strchr(",.;:!?\n", *p);
        size_t wl = 0;
        if (!end && isalpha((unsigned char)*p) && (p == q || !isalnum((unsigned char)p[-1]))) {
            while (isalpha((unsigned char)p[wl]))
                wl++;
            end = is_split_word(p, wl) && !isalnum((unsigned char)p[wl]);
        }
        if (!end)
            continue;
        char c = *p;
        *p = 0;
        int any = 0;
        for (const char *s = start; *s && !any; s++)
            any = isalnum((unsigned char)*s);
        int rc = any ? fn(start, ctx) : 0;
        *p = c;
        if (rc)
            return rc;
        if (!c)
            return 0;
        p += wl ? wl - 1 : 0;
        start = p + 1;
    }
}

typedef struct nurse_ctx {
    sop_agent *a;
    const agent_cfg *c;
    sop_kb *kb;
    answer_b *b;
    sop_kb_hit hits[16];
} nurse_ctx;

static int add_terms(answer_b *b, const char *metadata)
{
    cJSON *m = cJSON_Parse(metadata ? metadata : "{}");
    const cJSON *terms = cJSON_GetObjectItemCaseSensitive(m, "terms"), *t;
    int rc = 0;
    cJSON_ArrayForEach(t, terms)
    {
        if (cJSON_IsString(t) && (rc = ans_term(b, t->valuestring, strlen(t->valuestring))))
            break;
    }
    cJSON_Delete(m);
    return rc;
}

/* "no cough", "not dizzy", "without a rash": a denied symptom. */
static int negated(const char *clause)
{
    static const char *const NEG[] = {"no", "not", "without", "never", "nor", NULL};
    while (*clause && !isalpha((unsigned char)*clause))
        clause++;
    size_t n = 0;
    while (isalpha((unsigned char)clause[n]))
        n++;
    for (const char *const *w = NEG; *w; w++)
        if (strlen(*w) == n && !strncmp(*w, clause, n))
            return 1;
    return 0;
}

static int on_clause(const char *clause, void *arg)
{
    nurse_ctx *x = arg;
    if (negated(clause))
        return 0;
    uint32_t n, k = x->c->k < 16 ? x->c->k : 16;
    int rc = sop_kb_search(x->kb, x->a->embedder, clause, k, x->hits, &n);
    if (rc)
        return agent_fail(x->a, rc, "nurse: searching knowledge base %s: %s", x->c->kb,
                          sop_strerror(rc));
    double best = 0;
    for (uint32_t i = 0; i < n; i++)
        if (x->hits[i].similarity > best)
            best = x->hits[i].similarity;
    if (best < x->c->min_similarity)
        return 0;
    for (uint32_t i = 0; i < n; i++)
        if (x->hits[i].similarity >= best - 0.05 && (rc = add_terms(x->b, x->hits[i].metadata)))
            return rc;
    return 0;
}

static int nurse_offline(sop_agent *a, const agent_cfg *c, sop_txn *txn, answer_b *b)
{
    nurse_ctx x = {.a = a, .c = c, .b = b};
    int rc = sop_kb_open(txn, c->kb, &x.kb);
    if (rc)
        return agent_fail(a, rc, "nurse: knowledge base %s: %s", c->kb, sop_strerror(rc));
    char *q = sop__strdup(ans_pub(b)->query);
    if (!q)
        return -ENOMEM;
    for (char *p = q; *p; p++)
        *p = (char)tolower((unsigned char)*p);
    rc = clauses(q, on_clause, &x);
    sop__free(q);
    return rc;
}

static int nurse_online(sop_agent *a, const agent_cfg *c, answer_b *b)
{
    sop_chat_options co;
    sop_chat_options_init(&co);
    co.system = c->system_prompt;
    co.temperature = c->temperature;
    co.max_tokens = c->max_tokens;
    sop_chat_msg m = {"user", ans_pub(b)->query};
    char *reply = NULL;
    int rc = sop_llm_chat(a->llm, &co, &m, 1, NULL, NULL, &reply);
    if (rc) {
        agent_fail(a, rc, "nurse: the language model failed: %s", sop_llm_errmsg(a->llm));
        return rc;
    }
    const char *s = reply;
    while (!rc && *s) {
        size_t n = strcspn(s, ",;\n");
        rc = ans_term(b, s, n);
        s += n + (s[n] != 0);
    }
    sop_free(reply);
    return rc;
}

int nurse_run(sop_agent *a, const agent_cfg *c, sop_txn *txn, answer_b *b)
{
    if (a->online) {
        int rc = nurse_online(a, c, b);
        if (rc != SOP_ELLM && rc != -ETIMEDOUT && rc != SOP_EFORMAT && rc != SOP_ETOOBIG)
            return rc;
        if (a->opts.llm == SOP_LLM_REQUIRED)
            return rc;
        agent_notice(a, "%s; the nurse answers offline", a->err);
        a->err[0] = 0;
    }
    return nurse_offline(a, c, txn, b);
}
