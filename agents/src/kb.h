/* kb.h - what the loader and the agents need of kb.c beyond agent.h. */
#ifndef SOP_AGENTS_KB_H
#define SOP_AGENTS_KB_H
#include "sop/agent.h"

/* Writes the base's configuration with the "complete" mark. */
int kb_config_write(sop_kb *kb, int complete);
const char *kb_name(const sop_kb *kb);

#endif
