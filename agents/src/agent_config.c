/* agent_config.c - reading an agent's JSON configuration (docs/agents.md).
 * Every mistake is SOP_EFORMAT with a message naming the file and the key. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "agent_int.h"
#include "mem.h"

#define CFG_FILE_MAX (16u << 20)

static int bad(char *err, size_t cap, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int bad(char *err, size_t cap, const char *path, const char *fmt, ...)
{
    char what[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    snprintf(err, cap, "%s: %s", path, what);
    return SOP_EFORMAT;
}

static char *dup_or_empty(const char *s) { return sop__strdup(s ? s : ""); }

/* The file, read whole (configurations are small). */
static int slurp(const char *path, char **out, char *err, size_t cap)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        int rc = errno ? -errno : -EIO;
        snprintf(err, cap, "%s: %s", path, strerror(-rc));
        return rc;
    }
    size_t n = 0, c = 4096;
    char *b = sop__malloc(c);
    while (b) {
        n += fread(b + n, 1, c - n - 1, f);
        if (n < c - 1)
            break;
        if (c >= CFG_FILE_MAX) {
            fclose(f);
            sop__free(b);
            snprintf(err, cap, "%s: over %u bytes: not a configuration", path, CFG_FILE_MAX);
            return SOP_ETOOBIG;
        }
        char *nb = sop__realloc(b, c * 2);
        if (!nb)
            sop__free(b);
        b = nb, c *= 2;
    }
    int io = ferror(f);
    fclose(f);
    if (!b)
        return -ENOMEM;
    if (io) {
        sop__free(b);
        snprintf(err, cap, "%s: read error", path);
        return -EIO;
    }
    b[n] = 0;
    *out = b;
    return 0;
}

/* @rel resolved against the folder of @base. */
static char *resolve(const char *base, const char *rel)
{
    if (rel[0] == '/')
        return sop__strdup(rel);
    const char *slash = strrchr(base, '/');
    size_t dl = slash ? (size_t)(slash - base) + 1 : 0;
    char *p = sop__malloc(dl + strlen(rel) + 1);
    if (p) {
        memcpy(p, base, dl);
        strcpy(p + dl, rel);
    }
    return p;
}

void agent_cfg_free(agent_cfg *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->nstages; i++)
        agent_cfg_free(c->stages[i]);
    sop__free(c->path);
    sop__free(c->id);
    sop__free(c->system_prompt);
    sop__free(c->model);
    sop__free(c->kb);
    sop__free(c->data);
    sop__free(c->ollama_url);
    cJSON_Delete(c->inline_data);
    sop__free(c);
}

static int read_depth(const char *path, agent_cfg **out, char *err, size_t cap, int depth);

static int parse(agent_cfg *c, cJSON *o, char *err, size_t cap, int depth)
{
    const char *p = c->path;
    if (!cJSON_IsObject(o))
        return bad(err, cap, p, "%snot a JSON object", "");
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(o, "id");
    const cJSON *kind = cJSON_GetObjectItemCaseSensitive(o, "kind");
    if (!cJSON_IsString(id) || !*id->valuestring || strlen(id->valuestring) > 64 ||
        id->valuestring[0] == '.' ||
        strspn(id->valuestring, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-") !=
            strlen(id->valuestring))
        return bad(err, cap, p, "\"%s\" must be 1..64 of [A-Za-z0-9_.-], not starting with '.'",
                   "id");
    if (!cJSON_IsString(kind))
        return bad(err, cap, p, "\"%s\" must be \"nurse\", \"doctor\" or \"pipeline\"", "kind");
    const char *k = kind->valuestring;
    c->kind = !strcmp(k, "nurse") ? AGENT_NURSE : !strcmp(k, "doctor") ? AGENT_DOCTOR
              : !strcmp(k, "pipeline") ? AGENT_PIPELINE : 0;
    if (!c->kind)
        return bad(err, cap, p, "\"%s\" must be \"nurse\", \"doctor\" or \"pipeline\"", "kind");
    if (!(c->id = sop__strdup(id->valuestring)))
        return -ENOMEM;
    c->temperature = -1;
    const cJSON *url = cJSON_GetObjectItemCaseSensitive(o, "ollama_url");
    if (url && !cJSON_IsString(url))
        return bad(err, cap, p, "\"%s\" must be a string", "ollama_url");
    if (url && !(c->ollama_url = sop__strdup(url->valuestring)))
        return -ENOMEM;

    if (c->kind == AGENT_PIPELINE) {
        const cJSON *st = cJSON_GetObjectItemCaseSensitive(o, "stages"), *s;
        if (!cJSON_IsArray(st) || cJSON_GetArraySize(st) < 1 ||
            cJSON_GetArraySize(st) > AGENT_STAGES_MAX)
            return bad(err, cap, p, "\"%s\" must be an array of 1..4 configuration files", "stages");
        if (depth >= 4)
            return bad(err, cap, p, "%spipelines nest too deep", "");
        cJSON_ArrayForEach(s, st)
        {
            if (!cJSON_IsString(s))
                return bad(err, cap, p, "\"%s\" must hold file names", "stages");
            char *sp = resolve(p, s->valuestring);
            if (!sp)
                return -ENOMEM;
            int rc = read_depth(sp, &c->stages[c->nstages], err, cap, depth + 1);
            sop__free(sp);
            if (rc)
                return rc;
            c->nstages++;
        }
        int nurse = 0, doctor = 0;
        for (size_t i = 0; i < c->nstages; i++) {
            if (c->stages[i]->kind == AGENT_PIPELINE)
                return bad(err, cap, p, "\"%s\" cannot hold a pipeline", "stages");
            nurse += c->stages[i]->kind == AGENT_NURSE;
            doctor += c->stages[i]->kind == AGENT_DOCTOR;
            if (doctor && c->stages[i]->kind == AGENT_NURSE)
                return bad(err, cap, p, "\"%s\": a nurse must come before the doctor", "stages");
        }
        if (nurse > 1 || doctor > 1)
            return bad(err, cap, p, "\"%s\": at most one nurse and one doctor", "stages");
        if (c->nstages > 1 && c->stages[0]->embed_llm != c->stages[1]->embed_llm)
            return bad(err, cap, p, "\"%s\": the stages must use the same embedder", "stages");
        return 0;
    }

    const cJSON *sp = cJSON_GetObjectItemCaseSensitive(o, "system_prompt");
    if (sp && !cJSON_IsString(sp))
        return bad(err, cap, p, "\"%s\" must be a string", "system_prompt");
    if (!(c->system_prompt = dup_or_empty(sp ? sp->valuestring : NULL)))
        return -ENOMEM;

    const cJSON *em = cJSON_GetObjectItemCaseSensitive(o, "embedder");
    const char *es = cJSON_IsString(em) ? em->valuestring : em ? NULL : "builtin";
    if (es && !strcmp(es, "ollama"))
        c->embed_llm = 1;
    else if (es && !strncmp(es, "builtin", 7) && (!es[7] || es[7] == ':')) {
        if (es[7]) {
            char *end;
            unsigned long d = strtoul(es + 8, &end, 10);
            if (*end || d < 16 || d > 4096)
                return bad(err, cap, p, "\"%s\": builtin:<16..4096>", "embedder");
            c->dim = (uint32_t)d;
        }
    } else
        return bad(err, cap, p, "\"%s\" must be \"builtin\", \"builtin:<dim>\" or \"ollama\"",
                   "embedder");

    const cJSON *g = cJSON_GetObjectItemCaseSensitive(o, "generator");
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(g, "model");
    const cJSON *temp = cJSON_GetObjectItemCaseSensitive(g, "temperature");
    const cJSON *mt = cJSON_GetObjectItemCaseSensitive(g, "max_tokens");
    if (g && !cJSON_IsObject(g))
        return bad(err, cap, p, "\"%s\" must be an object", "generator");
    if ((model && !cJSON_IsString(model)) || (temp && !cJSON_IsNumber(temp)) ||
        (mt && !cJSON_IsNumber(mt)))
        return bad(err, cap, p, "\"%s\": model (string), temperature, max_tokens (numbers)",
                   "generator");
    if (!(c->model = dup_or_empty(model ? model->valuestring : NULL)))
        return -ENOMEM;
    if (temp)
        c->temperature = temp->valuedouble;
    if (mt)
        c->max_tokens = (int)mt->valuedouble;

    const cJSON *stores = cJSON_GetObjectItemCaseSensitive(o, "stores");
    const cJSON *kb = cJSON_GetObjectItemCaseSensitive(stores, "kb");
    if (!cJSON_IsString(kb) || !*kb->valuestring || strlen(kb->valuestring) > SOP_KB_NAME_MAX)
        return bad(err, cap, p, "\"%s\" must name the knowledge base: {\"kb\": \"name\"}",
                   "stores");
    if (!(c->kb = sop__strdup(kb->valuestring)))
        return -ENOMEM;

    const cJSON *data = cJSON_GetObjectItemCaseSensitive(o, "data");
    if (cJSON_IsString(data)) {
        if (!(c->data = resolve(p, data->valuestring)))
            return -ENOMEM;
    } else if (cJSON_IsArray(data)) {
        if (!(c->inline_data = cJSON_Duplicate(data, 1)))
            return -ENOMEM;
    } else if (data) {
        return bad(err, cap, p, "\"%s\" must be a fallback file name or an array of records",
                   "data");
    }

    const cJSON *r = cJSON_GetObjectItemCaseSensitive(o, "retrieval");
    const cJSON *rk = cJSON_GetObjectItemCaseSensitive(r, "k");
    const cJSON *ms = cJSON_GetObjectItemCaseSensitive(r, "min_similarity");
    c->k = c->kind == AGENT_NURSE ? 3 : 5;
    c->min_similarity = 0.5;
    if (rk && (!cJSON_IsNumber(rk) || rk->valuedouble < 1 || rk->valuedouble > 100))
        return bad(err, cap, p, "\"%s\": k must be 1..100", "retrieval");
    if (ms && (!cJSON_IsNumber(ms) || ms->valuedouble < 0 || ms->valuedouble > 1))
        return bad(err, cap, p, "\"%s\": min_similarity must be 0..1", "retrieval");
    if (rk)
        c->k = (uint32_t)rk->valuedouble;
    if (ms)
        c->min_similarity = ms->valuedouble;
    return 0;
}

static int read_depth(const char *path, agent_cfg **out, char *err, size_t cap, int depth)
{
    *out = NULL;
    char *text = NULL;
    int rc = slurp(path, &text, err, cap);
    if (rc)
        return rc;
    agent_cfg *c = sop__calloc(1, sizeof *c);
    if (!c || !(c->path = sop__strdup(path))) {
        sop__free(c);
        sop__free(text);
        return -ENOMEM;
    }
    const char *at = NULL;
    cJSON *o = cJSON_ParseWithOpts(text, &at, 0);
    if (!o) {
        snprintf(err, cap, "%s: malformed JSON at byte %ld", path,
                 at && at >= text ? (long)(at - text) : -1L);
        rc = SOP_EFORMAT;
    } else {
        rc = parse(c, o, err, cap, depth);
        if (rc == -ENOMEM)
            snprintf(err, cap, "%s: out of memory", path);
    }
    cJSON_Delete(o);
    sop__free(text);
    if (rc) {
        agent_cfg_free(c);
        return rc;
    }
    *out = c;
    return 0;
}

int agent_cfg_read(const char *path, agent_cfg **out, char *err, size_t cap)
{
    return read_depth(path, out, err, cap, 0);
}
