/* agent_int.h - the agents behind sop_agent (agent.h): their configuration
 * (agent_config.c), opening and rebuilding (agent_open.c), the nurse
 * (nurse.c), the doctor (doctor.c), answers (answer.c) and asking with
 * memory (agent.c). */
#ifndef SOP_AGENTS_AGENT_INT_H
#define SOP_AGENTS_AGENT_INT_H
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "sop/agent.h"

enum { AGENT_NURSE = 1, AGENT_DOCTOR, AGENT_PIPELINE };

#define AGENT_STAGES_MAX 4

/* A configuration (docs/agents.md). Strings are owned. */
typedef struct agent_cfg {
    char *path;          /* the file */
    char *id;
    int kind;
    char *system_prompt; /* "" when absent */
    int embed_llm;       /* 0: the built-in embedder, 1: the LLM's */
    uint32_t dim;        /* of the built-in embedder (0: its default) */
    char *model;         /* chat model ("" : the client's default) */
    double temperature;  /* < 0: the model's */
    int max_tokens;      /* <= 0: the model's */
    char *kb;            /* the knowledge base ("" for a pipeline) */
    char *data;          /* the fallback file, resolved against the config's folder, or NULL */
    void *inline_data;   /* a cJSON array of records, or NULL */
    uint32_t k;          /* results (doctor: conditions; nurse: phrases per clause) */
    double min_similarity; /* nurse: a phrase counts at this cosine or above */
    char *ollama_url;    /* NULL: not given */
    struct agent_cfg *stages[AGENT_STAGES_MAX];
    size_t nstages;
} agent_cfg;

/* Reads @path: 0, or SOP_EFORMAT / -errno / -ENOMEM with @err filled. */
int agent_cfg_read(const char *path, agent_cfg **out, char *err, size_t errcap);
void agent_cfg_free(agent_cfg *c);

/* An open agent. */
struct sop_agent {
    agent_cfg *cfg;
    sop_db *db;
    sop_llm *llm;        /* NULL: offline */
    sop_embedder *embedder; /* shared by the stages (one identity per agent tree) */
    int online;
    sop_agent_options opts;
    char err[512];
};

int agent_fail(sop_agent *a, int rc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void agent_notice(sop_agent *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- answers (answer.c) ---- */

typedef struct answer_b answer_b;
answer_b *ans_new(const char *query);
sop_answer *ans_pub(answer_b *b);
/* Adds a term (deduplicated, case-insensitive): 0 or -ENOMEM. */
int ans_term(answer_b *b, const char *term, size_t len);
/* Adds a condition and returns its index, or -ENOMEM. */
int ans_condition(answer_b *b, const char *id, const char *name, const char *category,
                  double score, const char *seek_care);
int ans_evidence(answer_b *b, size_t cond, const char *symptom);
int ans_set_answer(answer_b *b, const char *text, int online);
/* A copy of @s owned by the answer, or NULL. */
const char *ans_strdup(answer_b *b, const char *s);

/* ---- stages ---- */

/* Fills the answer's terms from the question. */
int nurse_run(sop_agent *a, const agent_cfg *c, sop_txn *txn, answer_b *b);
/* Fills the conditions from the question and the terms, and the answer. */
int doctor_run(sop_agent *a, const agent_cfg *c, sop_txn *txn, answer_b *b, sop_token_fn fn,
               void *arg);

/* A growable string. */
typedef struct sbuf {
    char *s;
    size_t n, cap;
    int oom;
} sbuf;
void sb_add(sbuf *b, const char *s, size_t n);
void sb_puts(sbuf *b, const char *s);
void sb_printf(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void sb_free(sbuf *b);

#endif
