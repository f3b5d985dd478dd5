/* embedder.c - the embedders of agent.h: the built-in one (embed_builtin.c)
 * or an LLM server's model (llm.c). */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "embed.h"
#include "llm.h"
#include "mem.h"

struct sop_embedder {
    char name[160];
    uint32_t dim;
    sop_llm *llm; /* NULL: the built-in embedder */
};

int sop_embedder_builtin(uint32_t dim, sop_embedder **out)
{
    if (!out)
        return -EINVAL;
    *out = NULL;
    if (dim == 0)
        dim = SOP_EMBEDDER_BUILTIN_DIM;
    if (dim < 16 || dim > 4096)
        return -EINVAL;
    sop_embedder *e = sop__calloc(1, sizeof *e);
    if (!e)
        return -ENOMEM;
    snprintf(e->name, sizeof e->name, "%s", SOP_EMBEDDER_BUILTIN);
    e->dim = dim;
    *out = e;
    return 0;
}

int sop_embedder_llm(sop_llm *l, sop_embedder **out)
{
    if (!l || !out)
        return -EINVAL;
    *out = NULL;
    const char *probe = "dimension probe";
    uint32_t dim = 0;
    float *v = NULL;
    int rc = sop_llm_embed(l, &probe, 1, &dim, &v);
    sop_free(v);
    if (rc)
        return rc;
    sop_embedder *e = sop__calloc(1, sizeof *e);
    if (!e)
        return -ENOMEM;
    snprintf(e->name, sizeof e->name, "ollama:%.140s", llm_embed_model(l));
    e->dim = dim;
    e->llm = l;
    *out = e;
    return 0;
}

void sop_embedder_free(sop_embedder *e) { sop__free(e); }
const char *sop_embedder_name(const sop_embedder *e) { return e ? e->name : ""; }
uint32_t sop_embedder_dim(const sop_embedder *e) { return e ? e->dim : 0; }

int sop_embedder_embed(sop_embedder *e, const char *const *texts, size_t n, float *out)
{
    if (!e || (n && (!texts || !out)))
        return -EINVAL;
    for (size_t i = 0; i < n; i++)
        if (!texts[i])
            return -EINVAL;
    if (!e->llm) {
        for (size_t i = 0; i < n; i++)
            eb_embed(texts[i], strlen(texts[i]), e->dim, out + i * e->dim);
        return 0;
    }
    uint32_t dim = e->dim;
    float *v = NULL;
    int rc = n ? sop_llm_embed(e->llm, texts, n, &dim, &v) : 0;
    if (!rc && n)
        memcpy(out, v, n * dim * sizeof *out);
    sop_free(v);
    return rc;
}
