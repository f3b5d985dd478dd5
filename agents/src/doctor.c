/* doctor.c - the doctor: hybrid retrieval of conditions over its knowledge
 * base, the evidence that matched, and an answer.
 *
 * The query is the complaint followed by the nurse's clinical terms. The
 * knowledge base's hybrid search (BM25 + cosine, reciprocal rank fusion)
 * gives candidates; each candidate's evidence is the symptoms of its
 * metadata whose words (stemmed, stop words dropped) all occur in the
 * terms or the complaint (with the colloquial synonyms of the built-in
 * embedder). Candidates are ranked by
 *     score = 0.45 explained + 0.25 fusion + 0.15 coverage + 0.15 prior
 * where explained is the share of the terms that the evidence accounts for
 * (a symptom late in the condition's list counts less, see explained()),
 * fusion the candidate's fusion score over the best one's, coverage
 * min(1, evidence / 3), and prior the condition's "prevalence" (common 1,
 * uncommon 0.5, rare 0): among conditions that fit equally, the common one
 * is the likelier, as a clinician's pretest probability says. The answer is the model's (streamed), or offline a
 * fixed-form text listing the conditions with their evidence. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "agent_int.h"
#include "embed.h"
#include "mem.h"
#include "tokenizer.h"
#include "porter.h"

#define STEMS_MAX 512
/* The weights of the ranking (they sum to 1). */
#define W_EXPLAINED 0.5
#define W_FUSION 0.28
#define W_COVER 0.15
#define W_PRIOR 0.07
#define CANDIDATES 30

/* A set of stems (small: a linear scan is enough). */
typedef struct stems {
    char w[STEMS_MAX][SOP__TERM_MAX + 1];
    size_t n;
} stems;

static int has(const stems *s, const char *w)
{
    for (size_t i = 0; i < s->n; i++)
        if (!strcmp(s->w[i], w))
            return 1;
    return 0;
}

static void stem_into(char *out, const char *t, size_t len)
{
    memcpy(out, t, len);
    out[sop__porter(out, len)] = 0;
}

static int on_stem(const char *t, size_t len, uint32_t pos, void *arg)
{
    (void)pos;
    stems *s = arg;
    char w[SOP__TERM_MAX + 1];
    stem_into(w, t, len);
    if (s->n < STEMS_MAX && !has(s, w))
        snprintf(s->w[s->n++], sizeof s->w[0], "%s", w);
    return 0;
}

/* Folded words, with their synonyms added, stemmed. */
static int on_word(const char *t, size_t len, uint32_t pos, void *arg)
{
    on_stem(t, len, pos, arg);
    const char *syn = eb_synonym(t, len);
    sop__tok_opts o = {1, 1, 0};
    if (syn)
        sop__tokenize(syn, strlen(syn), &o, on_stem, arg);
    return 0;
}

static void add_text(stems *s, const char *text)
{
    sop__tok_opts o = {1, 1, 0};
    sop__tokenize(text, strlen(text), &o, on_word, s);
}

typedef struct match_ctx {
    const stems *s;
    int words, missing;
} match_ctx;

static int on_symptom_word(const char *t, size_t len, uint32_t pos, void *arg)
{
    (void)pos;
    match_ctx *m = arg;
    char w[SOP__TERM_MAX + 1];
    stem_into(w, t, len);
    m->words++;
    m->missing += !has(m->s, w);
    return m->missing; /* the first missing word settles it */
}

/* 1 when every word of @symptom is in @s (and it has one). */
static int matches(const stems *s, const char *symptom)
{
    match_ctx m = {s, 0, 0};
    sop__tok_opts o = {1, 1, 0};
    sop__tokenize(symptom, strlen(symptom), &o, on_symptom_word, &m);
    return m.words > 0 && !m.missing;
}

typedef struct cand {
    const sop_kb_hit *hit;
    cJSON *meta;
    double score;
    size_t nev;
} cand;

static int by_score(const void *x, const void *y)
{
    const cand *a = x, *b = y;
    if (a->score != b->score)
        return a->score > b->score ? -1 : 1;
    return strcmp(a->hit->id, b->hit->id);
}

static const char *str_of(const cJSON *m, const char *key, const char *dflt)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(m, key);
    return cJSON_IsString(v) ? v->valuestring : dflt;
}

/* How well the condition's symptoms explain the terms: each term that
 * one of them matches counts 1 - 0.7 j / n, where j is the position of the
 * first matching symptom in the condition's list of n (lists start with
 * the hallmark symptoms); the sum is divided by the number of terms. @t is
 * scratch space. */
static double explained(const sop_answer *ans, const cJSON *symptoms, stems *t)
{
    double sum = 0;
    int n = cJSON_GetArraySize(symptoms);
    if (!ans->nterms || n <= 0)
        return 0;
    for (size_t i = 0; i < ans->nterms; i++) {
        const cJSON *s;
        int j = 0;
        t->n = 0;
        sop__tok_opts o = {1, 1, 0};
        sop__tokenize(ans->terms[i], strlen(ans->terms[i]), &o, on_stem, t);
        cJSON_ArrayForEach(s, symptoms)
        {
            if (cJSON_IsString(s) && matches(t, s->valuestring)) {
                sum += 1.0 - 0.7 * j / n;
                break;
            }
            j++;
        }
    }
    return sum / (double)ans->nterms;
}

static int rank(sop_agent *a, const agent_cfg *c, sop_kb *kb, answer_b *b)
{
    const sop_answer *ans = ans_pub(b);
    sbuf q = {0};
    sb_puts(&q, ans->query);
    for (size_t i = 0; i < ans->nterms; i++) {
        sb_puts(&q, i ? ", " : ". ");
        sb_puts(&q, ans->terms[i]);
    }
    stems *s = sop__calloc(1, sizeof *s), *t = sop__calloc(1, sizeof *t);
    sop_kb_hit *hits = sop__calloc(CANDIDATES, sizeof *hits);
    cand *cs = sop__calloc(CANDIDATES, sizeof *cs);
    int rc = q.oom || !s || !t || !hits || !cs ? -ENOMEM : 0;
    uint32_t n = 0;
    if (!rc && (rc = sop_kb_search(kb, a->embedder, q.s, CANDIDATES, hits, &n)))
        agent_fail(a, rc, "doctor: searching knowledge base %s: %s", c->kb, sop_strerror(rc));
    if (!rc) {
        add_text(s, q.s);
        for (uint32_t i = 0; i < n; i++) {
            cs[i].hit = &hits[i];
            cs[i].meta = cJSON_Parse(hits[i].metadata ? hits[i].metadata : "{}");
            const cJSON *sym = cJSON_GetObjectItemCaseSensitive(cs[i].meta, "symptoms"), *x;
            cJSON_ArrayForEach(x, sym) cs[i].nev += cJSON_IsString(x) && matches(s, x->valuestring);
            double expl = explained(ans, sym, t);
            double fusion = hits[i].score / hits[0].score;
            double cover = cs[i].nev >= 3 ? 1.0 : (double)cs[i].nev / 3.0;
            const char *prev = str_of(cs[i].meta, "prevalence", "uncommon");
            double prior = !strcmp(prev, "common") ? 1 : !strcmp(prev, "rare") ? 0 : 0.5;
            cs[i].score = W_EXPLAINED * expl + W_FUSION * fusion + W_COVER * cover + W_PRIOR * prior;
        }
        qsort(cs, n, sizeof *cs, by_score);
    }
    for (uint32_t i = 0; !rc && i < n && i < c->k; i++) {
        const cJSON *m = cs[i].meta, *x;
        int ci = ans_condition(b, cs[i].hit->id, str_of(m, "name", cs[i].hit->id),
                               str_of(m, "category", ""), cs[i].score, str_of(m, "seek_care", ""));
        if (ci < 0) {
            rc = ci;
            break;
        }
        cJSON_ArrayForEach(x, cJSON_GetObjectItemCaseSensitive(m, "symptoms"))
        {
            if (cJSON_IsString(x) && matches(s, x->valuestring) &&
                (rc = ans_evidence(b, (size_t)ci, x->valuestring)))
                break;
        }
    }
    for (uint32_t i = 0; i < n; i++)
        cJSON_Delete(cs[i].meta);
    sop__free(cs);
    sop__free(hits);
    sop__free(s);
    sop__free(t);
    sb_free(&q);
    return rc;
}

static void list(sbuf *o, const char *const *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        sb_printf(o, "%s%s", i == 0 ? "" : i + 1 == n ? " and " : ", ", s[i]);
}

/* The offline answer: fixed form, from the ranked conditions. */
static void offline_text(const sop_answer *ans, sbuf *o)
{
    if (!ans->nconditions) {
        sb_puts(o, "I could not match what you describe to any condition I know. Please "
                   "describe your symptoms in other words, or contact a doctor.\n");
        return;
    }
    if (ans->nterms) {
        sb_puts(o, "You describe ");
        list(o, ans->terms, ans->nterms);
        sb_puts(o, ".\n");
    }
    size_t n = ans->nconditions < 3 ? ans->nconditions : 3;
    sb_printf(o, "The condition%s that match%s best:\n", n == 1 ? "" : "s", n == 1 ? "es" : "");
    for (size_t i = 0; i < n; i++) {
        const sop_condition *c = &ans->conditions[i];
        sb_printf(o, "%zu. %s", i + 1, c->name);
        if (c->nevidence) {
            sb_puts(o, ", which fits ");
            list(o, c->evidence, c->nevidence);
        }
        sb_puts(o, ".\n");
        if (*c->seek_care)
            sb_printf(o, "   %s\n", c->seek_care);
    }
    sb_puts(o, "This is general information from a small knowledge base, not a diagnosis. If "
               "you are worried, or your symptoms are severe or getting worse, contact a doctor; "
               "in an emergency call your local emergency number.\n");
}

/* Passes the model's pieces on, counting them. */
typedef struct relay {
    sop_token_fn fn;
    void *arg;
    size_t bytes;
} relay;

static int on_piece(void *arg, const char *piece, size_t len)
{
    relay *r = arg;
    r->bytes += len;
    return r->fn ? r->fn(r->arg, piece, len) : 0;
}

static int online_text(sop_agent *a, const agent_cfg *c, const sop_answer *ans, relay *r,
                       char **reply)
{
    sbuf p = {0};
    sb_printf(&p, "The patient says: \"%s\"\n", ans->query);
    if (ans->nterms) {
        sb_puts(&p, "Clinical terms: ");
        list(&p, ans->terms, ans->nterms);
        sb_puts(&p, "\n");
    }
    sb_puts(&p, "Candidate conditions from the knowledge base, best match first:\n");
    for (size_t i = 0; i < ans->nconditions; i++) {
        const sop_condition *x = &ans->conditions[i];
        sb_printf(&p, "%zu. %s (%s). Matching symptoms: ", i + 1, x->name, x->category);
        list(&p, x->evidence, x->nevidence);
        sb_printf(&p, ". When to seek care: %s\n", x->seek_care);
    }
    if (p.oom)
        return -ENOMEM;
    sop_chat_options co;
    sop_chat_options_init(&co);
    co.system = c->system_prompt;
    co.temperature = c->temperature;
    co.max_tokens = c->max_tokens;
    sop_chat_msg m = {"user", p.s};
    int rc = sop_llm_chat(a->llm, &co, &m, 1, on_piece, r, reply);
    if (rc && !a->err[0])
        agent_fail(a, rc, "doctor: the language model failed: %s", sop_llm_errmsg(a->llm));
    sb_free(&p);
    return rc;
}

int doctor_run(sop_agent *a, const agent_cfg *c, sop_txn *txn, answer_b *b, sop_token_fn fn,
               void *arg)
{
    sop_kb *kb;
    int rc = sop_kb_open(txn, c->kb, &kb);
    if (rc)
        return agent_fail(a, rc, "doctor: knowledge base %s: %s", c->kb, sop_strerror(rc));
    if ((rc = rank(a, c, kb, b)))
        return rc;
    const sop_answer *ans = ans_pub(b);
    if (a->online) {
        char *reply = NULL;
        relay r = {fn, arg, 0};
        a->err[0] = 0;
        rc = online_text(a, c, ans, &r, &reply);
        if (!rc) {
            rc = ans_set_answer(b, reply, 1);
            sop_free(reply);
            return rc;
        }
        sop_free(reply);
        /* a model that failed before saying anything: answer offline */
        int transient = rc == SOP_ELLM || rc == -ETIMEDOUT || rc == SOP_EFORMAT || rc == SOP_ETOOBIG;
        if (a->opts.llm == SOP_LLM_REQUIRED || r.bytes || !transient)
            return rc;
        agent_notice(a, "%s; the doctor answers offline", a->err);
        a->err[0] = 0;
    }
    sbuf o = {0};
    offline_text(ans, &o);
    if (o.oom)
        return -ENOMEM;
    rc = fn ? fn(arg, o.s, o.n) : 0;
    if (!rc)
        rc = ans_set_answer(b, o.s, 0);
    sb_free(&o);
    return rc;
}
