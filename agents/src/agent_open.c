/* agent_open.c - opening an agent: its configuration, its database (moved
 * aside and rebuilt when damaged), its knowledge bases (loaded from their
 * fallback data when missing, incomplete, or of another embedder), its LLM
 * client and embedder. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "agent_int.h"
#include "kb.h"
#include "mem.h"

void sop_agent_options_init(sop_agent_options *o)
{
    if (!o)
        return;
    memset(o, 0, sizeof *o);
    o->struct_size = sizeof *o;
    o->check = 1;
}

int agent_fail(sop_agent *a, int rc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(a->err, sizeof a->err, fmt, ap);
    va_end(ap);
    return rc;
}

void agent_notice(sop_agent *a, const char *fmt, ...)
{
    if (!a->opts.notice)
        return;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    a->opts.notice(msg, a->opts.notice_ctx);
}

const char *sop_agent_errmsg(const sop_agent *a) { return a ? a->err : ""; }
const char *sop_agent_id(const sop_agent *a) { return a ? a->cfg->id : ""; }
int sop_agent_online(const sop_agent *a) { return a ? a->online : 0; }
sop_db *sop_agent_db(sop_agent *a) { return a ? a->db : NULL; }

void sop_agent_close(sop_agent *a)
{
    if (!a)
        return;
    if (a->db)
        sop_db_close(a->db);
    sop_embedder_free(a->embedder);
    sop_llm_close(a->llm);
    agent_cfg_free(a->cfg);
    sop__free(a);
}

/* ---- the database ---- */

static int set_aside(sop_agent *a, const char *path, const char *why)
{
    char dst[4096];
    long long now = (long long)time(NULL);
    int rc = -EEXIST;
    /* a name not taken (two rebuilds may fall in one second) */
    for (int i = 0; i < 100 && rc == -EEXIST; i++) {
        snprintf(dst, sizeof dst, i ? "%s.damaged-%lld-%d" : "%s.damaged-%lld", path, now, i);
        if (access(dst, F_OK) == 0)
            continue;
        rc = rename(path, dst) ? -errno : 0;
    }
    if (rc)
        return agent_fail(a, rc, "%s is damaged (%s) and cannot be moved aside: %s", path, why,
                          strerror(-rc));
    agent_notice(a, "database %s is damaged (%s): moved it to %s; rebuilding it from the "
                    "fallback files", path, why, dst);
    return 0;
}

/* sop_db_open(), the failed handle closed (its message kept in @why). */
static int db_open(sop_agent *a, const char *path, char *why, size_t cap)
{
    int rc = sop_db_open(path, NULL, &a->db);
    if (rc) {
        snprintf(why, cap, "%s", a->db ? sop_db_errmsg(a->db) : sop_strerror(rc));
        sop_db_close(a->db);
        a->db = NULL;
    }
    return rc;
}

static int open_db(sop_agent *a, const char *path)
{
    char why[400];
    int rc = db_open(a, path, why, sizeof why);
    if (rc == SOP_ECORRUPT) {
        if ((rc = set_aside(a, path, why)))
            return rc;
        rc = db_open(a, path, why, sizeof why);
    }
    if (rc)
        return agent_fail(a, rc, "cannot open database %s: %s", path, why);
    if (!a->opts.check)
        return 0;
    uint64_t problems = 0;
    rc = sop_db_check(a->db, NULL, NULL, &problems);
    if (rc == 0 && problems == 0)
        return 0;
    if (rc && rc != SOP_ECORRUPT)
        return agent_fail(a, rc, "cannot check database %s: %s", path, sop_strerror(rc));
    sop_db_close(a->db);
    a->db = NULL;
    snprintf(why, sizeof why, "its integrity check found %llu problem%s",
             (unsigned long long)problems, problems == 1 ? "" : "s");
    if ((rc = set_aside(a, path, problems ? why : "its integrity check failed")))
        return rc;
    if ((rc = db_open(a, path, why, sizeof why)))
        return agent_fail(a, rc, "cannot create database %s: %s", path, why);
    return 0;
}

/* ---- knowledge bases ---- */

/* Why @c's base must be (re)loaded: NULL when it is fine. */
static const char *kb_state(sop_agent *a, const agent_cfg *c, int *replace, int *rc)
{
    sop_txn *txn;
    *replace = 0;
    if ((*rc = sop_txn_begin(a->db, SOP_TXN_READ, 0, &txn)))
        return NULL;
    sop_kb *kb;
    const char *why = NULL;
    int r = sop_kb_open(txn, c->kb, &kb);
    if (r == SOP_ENOTFOUND) {
        why = "it is missing";
    } else if (r == SOP_ECORRUPT) {
        why = "its configuration is damaged", *replace = 1;
    } else if (r) {
        *rc = r;
    } else {
        const char *name;
        uint32_t dim;
        sop_kb_embedder(kb, &name, &dim);
        if (strcmp(name, sop_embedder_name(a->embedder)) || dim != sop_embedder_dim(a->embedder))
            why = "it holds vectors of another embedder", *replace = 1;
        else if ((r = sop_kb_complete(txn, c->kb)) == 0)
            why = "its last load did not finish";
        else if (r < 0)
            *rc = r;
    }
    sop_txn_rollback(txn);
    return why;
}

/* Loads the configuration's inline records in one transaction. */
static int load_inline(sop_agent *a, const agent_cfg *c, int replace)
{
    cJSON *arr = c->inline_data, *r;
    size_t n = (size_t)cJSON_GetArraySize(arr), i = 0;
    sop_kb_record *recs = sop__calloc(n ? n : 1, sizeof *recs);
    char **meta = sop__calloc(n ? n : 1, sizeof *meta);
    int rc = recs && meta ? 0 : -ENOMEM;
    cJSON_ArrayForEach(r, arr)
    {
        if (rc)
            break;
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(r, "id");
        const cJSON *text = cJSON_GetObjectItemCaseSensitive(r, "text");
        const cJSON *m = cJSON_GetObjectItemCaseSensitive(r, "metadata");
        if (!cJSON_IsString(id) || !cJSON_IsString(text) || (m && !cJSON_IsObject(m))) {
            rc = agent_fail(a, SOP_EFORMAT,
                            "%s: \"data\" record %zu: needs \"id\" and \"text\" strings and "
                            "an optional \"metadata\" object",
                            c->path, i + 1);
            break;
        }
        if (m && !(meta[i] = cJSON_PrintUnformatted(m)))
            rc = -ENOMEM;
        recs[i] = (sop_kb_record){id->valuestring, text->valuestring, meta[i], NULL};
        i++;
    }
    sop_txn *txn = NULL;
    sop_kb *kb;
    if (!rc && !(rc = sop_txn_begin(a->db, SOP_TXN_WRITE, 0, &txn))) {
        if (replace && (rc = sop_kb_remove(txn, c->kb)) == SOP_ENOTFOUND)
            rc = 0;
        if (!rc && (rc = sop_kb_open(txn, c->kb, &kb)) == SOP_ENOTFOUND)
            rc = sop_kb_create(txn, c->kb, sop_embedder_name(a->embedder),
                               sop_embedder_dim(a->embedder), &kb);
        if (!rc && !(rc = sop_kb_put(kb, a->embedder, recs, i)) && !(rc = kb_config_write(kb, 1)))
            rc = sop_txn_commit(txn);
        else
            sop_txn_rollback(txn);
    }
    for (size_t j = 0; meta && j < n; j++)
        cJSON_free(meta[j]);
    sop__free(meta);
    sop__free(recs);
    if (rc && !a->err[0])
        agent_fail(a, rc, "%s: cannot load its \"data\" records: %s", c->path, sop_strerror(rc));
    return rc;
}

static int ensure_kb(sop_agent *a, const agent_cfg *c)
{
    int replace, rc;
    const char *why = kb_state(a, c, &replace, &rc);
    if (rc)
        return agent_fail(a, rc, "cannot open knowledge base %s: %s", c->kb, sop_strerror(rc));
    if (!why)
        return 0;
    if (!c->data && !c->inline_data)
        return agent_fail(a, SOP_ENOTFOUND,
                          "knowledge base %s cannot be used (%s) and %s has no \"data\" to "
                          "rebuild it from",
                          c->kb, why, c->path);
    agent_notice(a, "loading knowledge base %s from %s: %s", c->kb,
                 c->data ? c->data : "its configuration's records", why);
    if (!c->data)
        return load_inline(a, c, replace);
    sop_kb_load_options lo;
    sop_kb_load_options_init(&lo);
    lo.name = c->kb;
    lo.embedder = a->embedder;
    lo.replace = replace;
    lo.progress = a->opts.progress;
    lo.progress_ctx = a->opts.progress_ctx;
    sop_kb_load_report rep;
    if ((rc = sop_kb_load(a->db, c->data, &lo, &rep)))
        return agent_fail(a, rc, "cannot load knowledge base %s from %s: %s", c->kb, c->data,
                          rep.error[0] ? rep.error : sop_strerror(rc));
    agent_notice(a, "loaded %llu records into knowledge base %s", (unsigned long long)rep.records,
                 c->kb);
    return 0;
}

/* ---- the model ---- */

/* The stage whose model and embedder the agent uses: the last (the
 * stages share one embedder, checked when the configuration is read). */
static const agent_cfg *last_stage(const agent_cfg *c)
{
    return c->kind == AGENT_PIPELINE ? c->stages[c->nstages - 1] : c;
}

static int open_llm(sop_agent *a, const agent_cfg *c)
{
    const agent_cfg *leaf = last_stage(c);
    int need = a->opts.llm == SOP_LLM_REQUIRED || leaf->embed_llm;
    if (a->opts.llm == SOP_LLM_OFF && !leaf->embed_llm)
        return 0;
    sop_llm_options lo;
    sop_llm_options_init(&lo);
    lo.base_url = a->opts.ollama_url ? a->opts.ollama_url : c->ollama_url;
    if (leaf->model && *leaf->model)
        lo.chat_model = leaf->model;
    if (a->opts.timeout_ms)
        lo.timeout_ms = a->opts.timeout_ms;
    /* one quick health check, without retries: an absent server must not
     * stall an offline run */
    sop_llm_options once = lo;
    once.retries = 0;
    int rc = sop_llm_open(&once, &a->llm);
    if (rc)
        return agent_fail(a, rc, "cannot make an LLM client: %s", sop_strerror(rc));
    rc = sop_llm_health(a->llm);
    char msg[512], url[256];
    snprintf(msg, sizeof msg, "%s", sop_llm_errmsg(a->llm));
    snprintf(url, sizeof url, "%s", sop_llm_url(a->llm));
    sop_llm_close(a->llm);
    a->llm = NULL;
    if (rc) {
        if (need)
            return agent_fail(a, rc, "no language model at %s: %s", url, msg);
        agent_notice(a, "no language model at %s (%s): answering offline", url, msg);
        return 0;
    }
    if ((rc = sop_llm_open(&lo, &a->llm)))
        return agent_fail(a, rc, "cannot make an LLM client: %s", sop_strerror(rc));
    a->online = a->opts.llm != SOP_LLM_OFF;
    return 0;
}

static int open_embedder(sop_agent *a, const agent_cfg *c)
{
    const agent_cfg *leaf = last_stage(c);
    int rc = leaf->embed_llm ? sop_embedder_llm(a->llm, &a->embedder)
                             : sop_embedder_builtin(leaf->dim, &a->embedder);
    if (rc)
        return agent_fail(a, rc, "cannot make the embedder: %s",
                          leaf->embed_llm ? sop_llm_errmsg(a->llm) : sop_strerror(rc));
    return 0;
}

int sop_agent_open(const char *db_path, const char *config, const sop_agent_options *o,
                   sop_agent **out)
{
    if (!out)
        return -EINVAL;
    *out = NULL;
    if (!db_path || !config || (o && o->struct_size != sizeof *o))
        return -EINVAL;
    sop_agent *a = sop__calloc(1, sizeof *a);
    if (!a)
        return -ENOMEM;
    *out = a;
    if (o)
        a->opts = *o;
    else
        sop_agent_options_init(&a->opts);
    int rc = agent_cfg_read(config, &a->cfg, a->err, sizeof a->err);
    if (rc)
        return rc;
    if ((rc = open_llm(a, a->cfg)) || (rc = open_embedder(a, a->cfg)) ||
        (rc = open_db(a, db_path)))
        return rc;
    if (a->cfg->kind == AGENT_PIPELINE) {
        for (size_t i = 0; i < a->cfg->nstages; i++)
            if ((rc = ensure_kb(a, a->cfg->stages[i])))
                return rc;
    } else if ((rc = ensure_kb(a, a->cfg))) {
        return rc;
    }
    a->err[0] = 0;
    return 0;
}
