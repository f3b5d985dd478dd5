/* embed.h - the built-in embedder (embed_builtin.c) and its synonym table
 * (synonyms.c). */
#ifndef SOP_AGENTS_EMBED_H
#define SOP_AGENTS_EMBED_H
#include <stddef.h>
#include <stdint.h>

/* Embeds @text (UTF-8, @len bytes) into out[0..dim): unit length, or all
 * zeros when the text has no word. 0 or -ENOMEM. */
int eb_embed(const char *text, size_t len, uint32_t dim, float *out);

/* The clinical words (space-separated) a folded colloquial word stands for,
 * or NULL. */
const char *eb_synonym(const char *w, size_t len);
size_t eb_synonym_count(void);
const char *eb_synonym_at(size_t i, const char **means);

#endif
