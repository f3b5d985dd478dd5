/* answer.c - building, printing and freeing sop_answer, and the growable
 * string of the agents. An answer owns every string it points to. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <cjson/cJSON.h>

#include "agent_int.h"
#include "mem.h"

typedef struct cond_b {
    sop_condition pub;
    const char **ev;
    size_t nev, capev;
} cond_b;

struct answer_b {
    sop_answer pub; /* first: sop_answer * is an answer_b * */
    char **strs;    /* everything to free */
    size_t nstrs, capstrs;
    const char **terms;
    size_t capterms;
    cond_b *conds;
    sop_condition *pubconds;
    size_t nconds, capconds;
};

const char *ans_strdup(answer_b *b, const char *s)
{
    char **a = sop__grow(b->strs, &b->capstrs, b->nstrs + 1, sizeof *a, 16);
    if (!a)
        return NULL;
    b->strs = a;
    char *d = sop__strdup(s ? s : "");
    if (d)
        b->strs[b->nstrs++] = d;
    return d;
}

answer_b *ans_new(const char *query)
{
    answer_b *b = sop__calloc(1, sizeof *b);
    if (!b)
        return NULL;
    if (!(b->pub.query = ans_strdup(b, query)) || !(b->pub.answer = ans_strdup(b, ""))) {
        sop_answer_free(&b->pub);
        return NULL;
    }
    return b;
}

sop_answer *ans_pub(answer_b *b)
{
    /* the public arrays point at the final ones */
    b->pub.terms = b->terms;
    for (size_t i = 0; i < b->nconds; i++) {
        b->conds[i].pub.evidence = b->conds[i].ev;
        b->conds[i].pub.nevidence = b->conds[i].nev;
        b->pubconds[i] = b->conds[i].pub;
    }
    b->pub.conditions = b->pubconds;
    b->pub.nconditions = b->nconds;
    return &b->pub;
}

int ans_term(answer_b *b, const char *term, size_t len)
{
    while (len && (term[0] == ' ' || term[0] == '\t'))
        term++, len--;
    while (len && strchr(" \t\r\n.,;", term[len - 1]))
        len--;
    if (!len || len > 200)
        return 0;
    char t[201];
    memcpy(t, term, len);
    t[len] = 0;
    for (size_t i = 0; i < b->pub.nterms; i++)
        if (!strcasecmp(b->terms[i], t))
            return 0;
    const char **a = sop__grow(b->terms, &b->capterms, b->pub.nterms + 1, sizeof *a, 8);
    if (!a)
        return -ENOMEM;
    b->terms = a;
    const char *d = ans_strdup(b, t);
    if (!d)
        return -ENOMEM;
    b->terms[b->pub.nterms++] = d;
    b->pub.terms = b->terms;
    return 0;
}

int ans_condition(answer_b *b, const char *id, const char *name, const char *category,
                  double score, const char *seek_care)
{
    if (b->nconds == b->capconds) {
        size_t c = b->capconds ? 2 * b->capconds : 8;
        cond_b *nc = sop__realloc(b->conds, c * sizeof *nc);
        if (!nc)
            return -ENOMEM;
        b->conds = nc;
        sop_condition *np = sop__realloc(b->pubconds, c * sizeof *np);
        if (!np)
            return -ENOMEM;
        b->pubconds = np;
        b->capconds = c;
    }
    cond_b *c = &b->conds[b->nconds];
    memset(c, 0, sizeof *c);
    c->pub.id = ans_strdup(b, id);
    c->pub.name = ans_strdup(b, name);
    c->pub.category = ans_strdup(b, category);
    c->pub.seek_care = ans_strdup(b, seek_care);
    c->pub.score = score;
    if (!c->pub.id || !c->pub.name || !c->pub.category || !c->pub.seek_care)
        return -ENOMEM;
    return (int)b->nconds++;
}

int ans_evidence(answer_b *b, size_t cond, const char *symptom)
{
    cond_b *c = &b->conds[cond];
    const char **a = sop__grow(c->ev, &c->capev, c->nev + 1, sizeof *a, 4);
    if (!a)
        return -ENOMEM;
    c->ev = a;
    if (!(c->ev[c->nev] = ans_strdup(b, symptom)))
        return -ENOMEM;
    c->nev++;
    return 0;
}

int ans_set_answer(answer_b *b, const char *text, int online)
{
    const char *d = ans_strdup(b, text);
    if (!d)
        return -ENOMEM;
    b->pub.answer = d;
    b->pub.online = online;
    return 0;
}

void sop_answer_free(sop_answer *ans)
{
    answer_b *b = (answer_b *)ans;
    if (!b)
        return;
    for (size_t i = 0; i < b->nstrs; i++)
        sop__free(b->strs[i]);
    for (size_t i = 0; i < b->nconds; i++)
        sop__free(b->conds[i].ev);
    sop__free(b->strs);
    sop__free(b->terms);
    sop__free(b->conds);
    sop__free(b->pubconds);
    sop__free(b);
}

static cJSON *strings(const char *const *s, size_t n)
{
    cJSON *a = cJSON_CreateArray();
    for (size_t i = 0; a && i < n; i++) {
        cJSON *x = cJSON_CreateString(s[i]);
        if (!x || !cJSON_AddItemToArray(a, x)) {
            cJSON_Delete(x);
            cJSON_Delete(a);
            return NULL;
        }
    }
    return a;
}

char *sop_answer_json(const sop_answer *ans)
{
    if (!ans)
        return NULL;
    cJSON *o = cJSON_CreateObject(), *conds = NULL;
    int ok = o && cJSON_AddStringToObject(o, "query", ans->query) &&
             cJSON_AddItemToObject(o, "clinical_terms", strings(ans->terms, ans->nterms)) &&
             (conds = cJSON_AddArrayToObject(o, "conditions")) != NULL;
    for (size_t i = 0; ok && i < ans->nconditions; i++) {
        const sop_condition *c = &ans->conditions[i];
        cJSON *x = cJSON_CreateObject();
        ok = x && cJSON_AddItemToArray(conds, x) && cJSON_AddStringToObject(x, "id", c->id) &&
             cJSON_AddStringToObject(x, "name", c->name) &&
             cJSON_AddStringToObject(x, "category", c->category) &&
             cJSON_AddNumberToObject(x, "score", (double)(long)(c->score * 10000 + 0.5) / 10000) &&
             cJSON_AddItemToObject(x, "evidence", strings(c->evidence, c->nevidence)) &&
             cJSON_AddStringToObject(x, "seek_care", c->seek_care);
    }
    ok = ok && cJSON_AddStringToObject(o, "answer", ans->answer) &&
         cJSON_AddBoolToObject(o, "online", ans->online);
    char *text = ok ? cJSON_PrintUnformatted(o) : NULL;
    cJSON_Delete(o);
    if (!text)
        return NULL;
    /* the caller frees with sop_free(): copy out of cJSON's allocator */
    char *out = sop__strdup(text);
    cJSON_free(text);
    return out;
}

/* ---- sbuf ---- */

void sb_add(sbuf *b, const char *s, size_t n)
{
    if (b->oom)
        return;
    char *p = sop__grow(b->s, &b->cap, b->n + n + 1, 1, 256);
    if (!p) {
        b->oom = 1;
        return;
    }
    b->s = p;
    memcpy(b->s + b->n, s, n);
    b->n += n;
    b->s[b->n] = 0;
}

void sb_puts(sbuf *b, const char *s) { sb_add(b, s, strlen(s)); }

void sb_printf(sbuf *b, const char *fmt, ...)
{
    char tmp[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n < sizeof tmp) {
        sb_add(b, tmp, (size_t)n);
        return;
    }
    char *big = sop__malloc((size_t)n + 1);
    if (!big) {
        b->oom = 1;
        return;
    }
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    sb_add(b, big, (size_t)n);
    sop__free(big);
}

void sb_free(sbuf *b)
{
    sop__free(b->s);
    memset(b, 0, sizeof *b);
}
