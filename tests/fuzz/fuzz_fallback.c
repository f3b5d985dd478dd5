/*
 * fuzz_fallback.c - the fallback JSON reader of knowledge bases
 * (agents/src/fallback.c: a streaming scanner, a fast path for the usual
 * record and a cJSON path for the rest; docs/fallback-format.md).
 *
 * Feeds: the input as a fallback file, read record by record to the end or
 * the first error.
 * Checks: only the documented codes; a record read has an id of 1..256
 * bytes, a non-empty text and finite numbers; and when cJSON parses the
 * whole file, every record read is exactly that file's record (id, text,
 * metadata, embedding): the fast path must give what cJSON gives, and a
 * file read to its end has as many records as its array.
 */
#include <errno.h>
#include <stdio.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "fallback.h"
#include "fuzz_util.h"
#include "sop/sop.h"

static void compare(const fb_record *rec, const cJSON *ref, uint32_t dim)
{
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(ref, "id");
    const cJSON *text = cJSON_GetObjectItemCaseSensitive(ref, "text");
    const cJSON *meta = cJSON_GetObjectItemCaseSensitive(ref, "metadata");
    const cJSON *emb = cJSON_GetObjectItemCaseSensitive(ref, "embedding");
    if (!cJSON_IsString(id) || strcmp(id->valuestring, rec->id) != 0)
        fz_fail("record %llu: id \"%s\", cJSON reads another", (unsigned long long)rec->no,
                rec->id);
    if (!cJSON_IsString(text) || strcmp(text->valuestring, rec->text) != 0)
        fz_fail("record %llu: its text differs from cJSON's", (unsigned long long)rec->no);
    char *m = meta ? cJSON_PrintUnformatted(meta) : NULL;
    if ((m == NULL) != (rec->metadata == NULL) || (m && strcmp(m, rec->metadata) != 0))
        fz_fail("record %llu: metadata %s, cJSON's %s", (unsigned long long)rec->no,
                rec->metadata ? rec->metadata : "(none)", m ? m : "(none)");
    cJSON_free(m);
    if ((emb == NULL) != (rec->embedding == NULL))
        fz_fail("record %llu: an embedding only on one side", (unsigned long long)rec->no);
    uint32_t i = 0;
    const cJSON *x;
    cJSON_ArrayForEach(x, emb)
    {
        if (i == dim || (float)x->valuedouble != rec->embedding[i])
            fz_fail("record %llu: embedding[%u] is %.9g, cJSON's %.17g",
                    (unsigned long long)rec->no, i, i < dim ? rec->embedding[i] : 0.0,
                    x->valuedouble);
        i++;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[600];
    fz_path(path, sizeof path, "fallback.json");
    fz_write(path, data, size);
    fb_reader *r;
    int rc = fb_open(path, &r);
    FZ_EXPECT("fb_open", rc, SOP_OK, SOP_EFORMAT, SOP_ETOOBIG, -EIO, -ENOMEM);
    if (!fb_error(r))
        fz_fail("fb_error gave NULL");
    if (rc) {
        fb_close(r);
        return 0;
    }
    uint32_t dim;
    const char *emb_name = fb_embedder(r, &dim);
    if (!emb_name || !fb_name(r) || dim > FB_DIM_MAX)
        fz_fail("a bad header: dim %u", dim);
    cJSON *doc = cJSON_ParseWithLength((const char *)data, size);
    const cJSON *recs = cJSON_GetObjectItemCaseSensitive(doc, "records");
    const cJSON *ref = cJSON_IsArray(recs) ? recs->child : NULL;
    uint64_t n = 0;
    for (;;) {
        fb_record rec;
        rc = fb_next(r, &rec);
        FZ_EXPECT("fb_next", rc, 0, 1, SOP_EFORMAT, SOP_ETOOBIG, -EIO, -ENOMEM);
        if (rc)
            break;
        n++;
        size_t idl = strlen(rec.id);
        if (rec.no != n || idl == 0 || idl > FB_ID_MAX || !rec.text[0])
            fz_fail("record %llu: number %llu, id of %zu bytes", (unsigned long long)n,
                    (unsigned long long)rec.no, idl);
        for (uint32_t i = 0; rec.embedding && i < dim; i++)
            if (!isfinite(rec.embedding[i]))
                fz_fail("record %llu: embedding[%u] is not finite", (unsigned long long)n, i);
        if (cJSON_IsArray(recs)) {
            if (!ref)
                fz_fail("record %llu: cJSON's array has fewer", (unsigned long long)n);
            compare(&rec, ref, dim);
            ref = ref->next;
        }
    }
    if (rc == 1 && cJSON_IsArray(recs) && ref)
        fz_fail("%llu records read to the end, cJSON's array has more", (unsigned long long)n);
    cJSON_Delete(doc);
    fb_close(r);
    return 0;
}
