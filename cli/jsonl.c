/* jsonl.c - lines and JSON Lines documents for `sop search` (jsonl.h). */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "jsonl.h"

/* Opens @path ("-": stdin) for reading lines. */
int input_open(const char *path, input *in)
{
    memset(in, 0, sizeof *in);
    if (strcmp(path, "-") == 0) {
        in->f = stdin;
        in->name = "stdin";
    } else if (!(in->f = fopen(path, "r"))) {
        return cli_error("%s: %s", path, strerror(errno));
    } else {
        in->name = path;
    }
    struct stat st;
    if (fstat(fileno(in->f), &st) == 0 && S_ISREG(st.st_mode))
        in->size = (uint64_t)st.st_size;
    return 0;
}

void input_close(input *in)
{
    if (in->f && in->f != stdin)
        fclose(in->f);
    free(in->buf);
    in->f = NULL;
    in->buf = NULL;
}

/* Next non-blank line (blank: empty or only spaces, tabs and CRs) in
 * *line, without its line end and, on line 1, without a UTF-8 byte order
 * mark. @return its length, or -1 at the end of the input (*err: 0, or 1
 * after printing a read error). */
ssize_t input_next(input *in, char **line, int *err)
{
    *err = 0;
    for (;;) {
        errno = 0;
        ssize_t n = cli_getline(in->f, &in->buf, &in->cap);
        if (n < 0) {
            if (ferror(in->f))
                *err = cli_error("%s: %s", in->name, strerror(errno ? errno : EIO));
            return -1;
        }
        in->line++;
        char *p = in->buf;
        if (in->line == 1 && n >= 3 && memcmp(p, "\xEF\xBB\xBF", 3) == 0)
            p += 3, n -= 3;
        ssize_t i = 0;
        while (i < n && (p[i] == ' ' || p[i] == '\t' || p[i] == '\r'))
            i++;
        if (i < n) {
            *line = p;
            return n;
        }
    }
}

/* Position in the input for the progress bar (0 when unknown). */
uint64_t input_pos(const input *in)
{
    if (!in->size)
        return 0;
    off_t at = ftello(in->f);
    return at > 0 ? (uint64_t)at : 0;
}

/* Prints "sop: <cmd>: <input>: line N: <message>"; returns 1. */
int line_error(const input *in, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return cli_error("%s: line %" PRIu64 ": %s", in->name, in->line, msg);
}

static const char *json_type(const cJSON *j)
{
    if (cJSON_IsString(j))
        return "a string";
    if (cJSON_IsNumber(j))
        return "a number";
    if (cJSON_IsBool(j))
        return "a boolean";
    if (cJSON_IsNull(j))
        return "null";
    if (cJSON_IsArray(j))
        return "an array";
    return "an object";
}

static int field_name_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > SOP_TEXT_FIELD_NAME_MAX)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
            return 0;
    return 1;
}

/* Parses the current line of @in into @d (its strings point into d->root:
 * free it with cJSON_Delete). @return 0, or 1 after an error naming the
 * line. */
int parse_doc(const input *in, const char *line, size_t len, const char *id_key,
              const char *text_key, jdoc *d)
{
    memset(&d->doc, 0, sizeof d->doc);
    d->root = NULL;
    size_t nul = strlen(line);
    if (nul != len)
        return line_error(in, "a NUL byte at column %zu", nul + 1);
    const char *end = NULL;
    cJSON *root = d->root = cJSON_ParseWithLengthOpts(line, len + 1, &end, 1);
    if (!root) {
        size_t col = end && end >= line ? (size_t)(end - line) : len;
        if (col >= len)
            return line_error(in, "invalid JSON: the line ends before the value does");
        return line_error(in, "invalid JSON at column %zu", col + 1);
    }
    if (!cJSON_IsObject(root))
        return line_error(in, "expected a JSON object, found %s", json_type(root));
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(root, id_key);
    const cJSON *text = cJSON_GetObjectItemCaseSensitive(root, text_key);
    const cJSON *fields = cJSON_GetObjectItemCaseSensitive(root, "fields");
    if (!id)
        return line_error(in, "no \"%s\" member", id_key);
    if (!cJSON_IsString(id))
        return line_error(in, "\"%s\" is %s, not a string", id_key, json_type(id));
    size_t id_len = strlen(id->valuestring);
    if (id_len == 0 || id_len > SOP_TEXT_ID_MAX)
        return line_error(in, "\"%s\" has %zu bytes (an id has 1..%u)", id_key, id_len,
                          SOP_TEXT_ID_MAX);
    if (!text && !fields)
        return line_error(in, "no \"%s\" member (nor \"fields\")", text_key);
    if (text && !cJSON_IsString(text))
        return line_error(in, "\"%s\" is %s, not a string", text_key, json_type(text));
    d->doc.id = id->valuestring;
    d->doc.id_len = id_len;
    if (text) {
        d->doc.text = text->valuestring;
        d->doc.text_len = strlen(text->valuestring);
    }
    uint64_t total = d->doc.text_len;
    if (fields) {
        if (!cJSON_IsObject(fields))
            return line_error(in, "\"fields\" is %s, not an object", json_type(fields));
        size_t n = 0;
        for (const cJSON *f = fields->child; f; f = f->next) {
            if (n == SOP_TEXT_FIELDS_MAX)
                return line_error(in, "more than %u fields", SOP_TEXT_FIELDS_MAX);
            if (!field_name_ok(f->string))
                return line_error(in, "field name \"%s\": a name has 1..%u characters of [a-z0-9_]",
                                  f->string, SOP_TEXT_FIELD_NAME_MAX);
            if (!cJSON_IsString(f))
                return line_error(in, "field \"%s\" is %s, not a string", f->string,
                                  json_type(f));
            for (size_t i = 0; i < n; i++)
                if (strcmp(d->fields[i].name, f->string) == 0)
                    return line_error(in, "field \"%s\" appears twice", f->string);
            d->fields[n].name = f->string;
            d->fields[n].text = f->valuestring;
            d->fields[n].len = strlen(f->valuestring);
            total += d->fields[n].len;
            n++;
        }
        d->doc.fields = n ? d->fields : NULL;
        d->doc.nfields = n;
    }
    if (total > SOP_TEXT_DOC_MAX)
        return line_error(in, "a document of %" PRIu64 " bytes of text (the limit is %u)", total,
                          SOP_TEXT_DOC_MAX);
    return 0;
}

int doc_empty(const sop_text_doc *doc)
{
    if (doc->text_len)
        return 0;
    for (size_t i = 0; i < doc->nfields; i++)
        if (doc->fields[i].len)
            return 0;
    return 1;
}
