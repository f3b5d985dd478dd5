/*
 * fuzz_jsonl.c - the JSON Lines reader of `sop search index` (cli/jsonl.c:
 * lines, then one document per line with cJSON).
 *
 * Feeds: the input as a corpus file, every line parsed as a document
 * (with the default "id" and "text" keys), past errors too.
 * Checks: nothing crashes or leaks; each call returns 0 or 1 (an error
 * message); a document parsed has an id of 1..SOP_TEXT_ID_MAX bytes
 * without NUL, a text and fields of the lengths given, at most
 * SOP_TEXT_FIELDS_MAX fields of distinct names, and no more text than
 * SOP_TEXT_DOC_MAX.
 */
#include <stdio.h>
#include <string.h>

#include "fuzz_util.h"
#include "jsonl.h"

static void check_doc(const jdoc *d)
{
    const sop_text_doc *doc = &d->doc;
    if (!doc->id || doc->id_len == 0 || doc->id_len > SOP_TEXT_ID_MAX ||
        strlen((const char *)doc->id) != doc->id_len)
        fz_fail("a document id of %zu bytes", doc->id_len);
    uint64_t total = doc->text_len;
    if (doc->text && strlen(doc->text) != doc->text_len)
        fz_fail("a text length of %zu for %zu bytes", doc->text_len, strlen(doc->text));
    if (doc->nfields > SOP_TEXT_FIELDS_MAX)
        fz_fail("%zu fields", doc->nfields);
    for (size_t i = 0; i < doc->nfields; i++) {
        const sop_text_field *f = &doc->fields[i];
        if (strlen(f->text) != f->len)
            fz_fail("field %zu: a length of %zu for %zu bytes", i, f->len, strlen(f->text));
        for (size_t j = 0; j < i; j++)
            if (strcmp(doc->fields[j].name, f->name) == 0)
                fz_fail("field %s twice", f->name);
        total += f->len;
    }
    if (total > SOP_TEXT_DOC_MAX)
        fz_fail("a document of %llu bytes of text", (unsigned long long)total);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[600];
    fz_path(path, sizeof path, "in.jsonl");
    fz_write(path, data, size);
    input in;
    if (input_open(path, &in) != 0)
        fz_fail("cannot open %s", path);
    for (;;) {
        char *line;
        int err;
        ssize_t n = input_next(&in, &line, &err);
        if (err != 0 && err != 1)
            fz_fail("input_next: error %d", err);
        if (n < 0)
            break;
        if ((size_t)n > size || line[n] != 0)
            fz_fail("a line of %zd bytes from an input of %zu", n, size);
        jdoc d;
        int rc = parse_doc(&in, line, (size_t)n, "id", "text", &d);
        if (rc != 0 && rc != 1)
            fz_fail("parse_doc returned %d", rc);
        if (rc == 0)
            check_doc(&d);
        cJSON_Delete(d.root);
    }
    input_close(&in);
    return 0;
}
