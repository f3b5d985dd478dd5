/* jsonl.h - the input of `sop search index|query` (jsonl.c): lines of a
 * file or stdin, and JSON Lines documents (one object per line with an
 * id, a text and optional fields) parsed with cJSON. */
#ifndef SOP_CLI_JSONL_H
#define SOP_CLI_JSONL_H
#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "cli.h"
#include "sop/search.h"

typedef struct input {
    FILE *f;
    const char *name; /* for messages: the path, or "stdin" */
    uint64_t size;    /* bytes of a regular file; 0 when unknown */
    uint64_t line;    /* number of the last line read, 1-based */
    char *buf;        /* getline buffer */
    size_t cap;
} input;

/* Opens @path ("-": stdin) for reading lines: 0, or 1 after printing why. */
int input_open(const char *path, input *in);
void input_close(input *in);
/* Next non-blank line (blank: empty or only spaces, tabs and CRs) in
 * *line, without its line end and, on line 1, without a UTF-8 byte order
 * mark. @return its length, or -1 at the end of the input (*err: 0, or 1
 * after printing a read error). */
ssize_t input_next(input *in, char **line, int *err);
/* Position in the input for a progress bar (0 when unknown). */
uint64_t input_pos(const input *in);
/* Prints "sop: <cmd>: <input>: line N: <message>"; returns 1. */
int line_error(const input *in, const char *fmt, ...) CLI_PRINTF(2, 3);


typedef struct jdoc {
    cJSON *root;
    sop_text_doc doc;
    sop_text_field fields[SOP_TEXT_FIELDS_MAX];
} jdoc;

/* Parses the current line of @in into @d (its strings point into d->root:
 * free it with cJSON_Delete, also after an error). @return 0, or 1 after
 * an error naming the line. */
int parse_doc(const input *in, const char *line, size_t len, const char *id_key,
              const char *text_key, jdoc *d);
/* 1 when @doc has no byte of text in its text or its fields. */
int doc_empty(const sop_text_doc *doc);

#endif
