/* llm.h - what the rest of the agents layer needs of llm.c beyond agent.h. */
#ifndef SOP_AGENTS_LLM_H
#define SOP_AGENTS_LLM_H
#include "sop/agent.h"

/* The embedding model's name. */
const char *llm_embed_model(const sop_llm *l);

#endif
