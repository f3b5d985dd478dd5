/*
 * rag_agents.c - retrieval-augmented agents on the shipped configurations:
 * the pipeline agent (a nurse that rewrites a complaint into clinical
 * terms, then a doctor that retrieves conditions from its knowledge base)
 * answers one question, offline.
 *
 * sop_agent_open() loads the agents' knowledge bases from their fallback
 * files (datasets/nurse.json, datasets/doctor.json) when the database
 * lacks them, so the first run builds the database and later runs reuse
 * it. SOP_LLM_OFF: no language-model server is needed; the answer is made
 * from the retrieved records. An illustration, not medical advice.
 *
 * Usage: example_rag_agents DB_DIR [CONFIG.json]
 *        (default CONFIG: datasets/agents/pipeline.json of the source tree)
 */
#include <stdio.h>
#include <string.h>

#include "sop/agent.h"

#ifndef SOP_DATASETS_DIR
#define SOP_DATASETS_DIR "datasets"
#endif

/* Rebuilds and the like: one line each. */
static void notice(const char *msg, void *ctx)
{
    (void)ctx;
    fprintf(stderr, "notice: %s\n", msg);
}

static void print_answer(const sop_answer *ans)
{
    printf("question: %s\n", ans->query);
    printf("clinical terms (nurse):");
    for (size_t i = 0; i < ans->nterms; i++)
        printf("%s %s", i ? "," : "", ans->terms[i]);
    printf("\nconditions (doctor):\n");
    for (size_t i = 0; i < ans->nconditions; i++) {
        const sop_condition *c = &ans->conditions[i];
        printf("  %zu. %s (%s) score %.2f, evidence:", i + 1, c->name, c->category, c->score);
        for (size_t j = 0; j < c->nevidence; j++)
            printf("%s %s", j ? "," : "", c->evidence[j]);
        printf("\n");
    }
    size_t n = strlen(ans->answer);
    printf("answer:\n%s%s", ans->answer, n && ans->answer[n - 1] == '\n' ? "" : "\n");
}

int main(int argc, char **argv)
{
    if (argc < 2 || argc > 3) {
        fprintf(stderr, "usage: %s DB_DIR [CONFIG.json]\n", argv[0]);
        return 2;
    }
    const char *config = argc == 3 ? argv[2] : SOP_DATASETS_DIR "/agents/pipeline.json";
    sop_agent_options o;
    sop_agent_options_init(&o);
    o.llm = SOP_LLM_OFF; /* offline: no server needed */
    o.notice = notice;

    sop_agent *a = NULL;
    int rc = sop_agent_open(argv[1], config, &o, &a);
    if (rc) {
        fprintf(stderr, "open %s: %s: %s\n", config, sop_strerror(rc),
                a ? sop_agent_errmsg(a) : "");
        sop_agent_close(a);
        return 1;
    }
    /* NULL transaction: the agent runs its own (retrieval and the turn it
     * keeps in memory commit together); NULL callback: no streaming */
    sop_answer *ans = NULL;
    rc = sop_agent_ask(a, NULL, "my tummy hurts and I feel hot", NULL, NULL, &ans);
    if (rc) {
        fprintf(stderr, "ask: %s: %s\n", sop_strerror(rc), sop_agent_errmsg(a));
        sop_agent_close(a);
        return 1;
    }
    print_answer(ans);
    int found = ans->nconditions > 0;
    sop_answer_free(ans);
    sop_agent_close(a);
    if (!found) {
        fprintf(stderr, "no condition was retrieved\n");
        return 1;
    }
    return 0;
}
