/*
 * test_fallback.c - the streaming reader of fallback files (fallback.c):
 *
 *  - the shipped datasets read whole, every record with id and text;
 *  - header fields, metadata, embeddings, keys after "records" ignored;
 *  - every bad input gives SOP_EFORMAT (or SOP_ETOOBIG, -ENOENT) and a
 *    message naming the record (number and id) or the byte offset:
 *    malformed JSON, wrong types, empty text, duplicate ids, dimension
 *    mismatch, embedding without embedder, non-numbers, a truncated file
 *    (cut at every byte of a small valid file), header problems;
 *  - a record larger than the reader's bound;
 *  - the reader's fast path (records without escapes, metadata or other
 *    keys, read without cJSON) gives the floats strtod() gives, the same
 *    records as the general path, and leaves every other record to it.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "fallback.h"
#include "sop/sop.h"
#include "testutil.h"

static char path[512];

static void write_file(const char *text, size_t len)
{
    snprintf(path, sizeof path, "%s/f.json", tu_tmpdir("fallback"));
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(text, 1, len, f), len);
    fclose(f);
}

/* Reads the whole file: 0 and *n records, or the first error (msg). */
static int read_all(const char *text, uint64_t *n, char *msg, size_t cap)
{
    write_file(text, strlen(text));
    fb_reader *r;
    int rc = fb_open(path, &r);
    fb_record rec;
    *n = 0;
    while (!rc && (rc = fb_next(r, &rec)) == 0) {
        assert_true(rec.id[0] && rec.text[0]);
        (*n)++;
    }
    if (rc == 1)
        rc = 0;
    snprintf(msg, cap, "%s", fb_error(r));
    fb_close(r);
    return rc;
}

#define HDR "{\"format\": \"sop-fallback\", \"version\": 1, "

static void test_fallback_datasets(void **state)
{
    (void)state;
    const char *files[] = {"doctor.json", "nurse.json"};
    uint64_t want[] = {60, 200};
    for (int i = 0; i < 2; i++) {
        char p[512];
        snprintf(p, sizeof p, "%s/../../datasets/%s", getenv("SOP_TEST_DATA"), files[i]);
        fb_reader *r;
        assert_int_equal(fb_open(p, &r), 0);
        fb_record rec;
        uint64_t n = 0;
        int rc;
        while ((rc = fb_next(r, &rec)) == 0) {
            assert_non_null(rec.metadata);
            n++;
        }
        assert_int_equal(rc, 1);
        assert_true(n >= want[i]);
        assert_int_equal(fb_offset(r), fb_size(r));
        fb_close(r);
    }
}

static void test_fallback_fields(void **state)
{
    (void)state;
    const char *t = HDR "\"name\": \"kb\", \"embedder\": {\"name\": \"e1\", \"dim\": 3},\n"
                        "\"records\": [ {\"id\": \"a\", \"text\": \"x \\\"quoted\\\" ]}\", "
                        "\"metadata\": {\"k\": [1, {\"z\": \"}\"}]}, \"embedding\": [1, 2.5, -3e-2]},"
                        "{\"text\": \"y\", \"id\": \"b\"} ], \"trailing\": {\"ignored\": [1]} }\n";
    write_file(t, strlen(t));
    fb_reader *r;
    assert_int_equal(fb_open(path, &r), 0);
    uint32_t dim;
    assert_string_equal(fb_name(r), "kb");
    assert_string_equal(fb_embedder(r, &dim), "e1");
    assert_int_equal(dim, 3);
    fb_record rec;
    assert_int_equal(fb_next(r, &rec), 0);
    assert_string_equal(rec.id, "a");
    assert_string_equal(rec.text, "x \"quoted\" ]}");
    assert_string_equal(rec.metadata, "{\"k\":[1,{\"z\":\"}\"}]}");
    assert_non_null(rec.embedding);
    assert_true(rec.embedding[1] == 2.5f);
    assert_int_equal(fb_next(r, &rec), 0);
    assert_int_equal(rec.no, 2);
    assert_null(rec.metadata);
    assert_null(rec.embedding);
    assert_int_equal(fb_next(r, &rec), 1);
    assert_int_equal(fb_next(r, &rec), 1);
    fb_close(r);
}

static void test_fallback_bad_records(void **state)
{
    (void)state;
    static const struct {
        const char *text, *msg;
    } cases[] = {
        {HDR "\"records\": [{\"id\": \"a\", \"text\": \"t\"}, {\"id\": 5, \"text\": \"t\"}]}",
         "record 2: \"id\" is not a string"},
        {HDR "\"records\": [{\"id\": \"a\"}]}", "record 1 (id \"a\"): no \"text\""},
        {HDR "\"records\": [{\"id\": \"a\", \"text\": \"\"}]}", "\"text\" is empty"},
        {HDR "\"records\": [{\"id\": \"a\", \"text\": \"t\", \"metadata\": [1]}]}",
         "\"metadata\" is not an object"},
        {HDR "\"records\": [{\"id\": \"a\", \"text\": \"t\"}, {\"id\": \"b\", \"text\": \"t\"}, "
             "{\"id\": \"a\", \"text\": \"u\"}]}",
         "record 3 (id \"a\"): duplicate id"},
        {HDR "\"embedder\": {\"name\": \"e\", \"dim\": 2}, \"records\": [{\"id\": \"a\", "
             "\"text\": \"t\", \"embedding\": [1, 2, 3]}]}",
         "has 3 numbers, the embedder's dimension is 2"},
        {HDR "\"embedder\": {\"name\": \"e\", \"dim\": 2}, \"records\": [{\"id\": \"a\", "
             "\"text\": \"t\", \"embedding\": [1, \"2\"]}]}",
         "other than a finite number"},
        /* finite as a double, infinite as a float */
        {HDR "\"embedder\": {\"name\": \"e\", \"dim\": 2}, \"records\": [{\"id\": \"a\", "
             "\"text\": \"t\", \"embedding\": [1, 1e39]}]}",
         "record 1 (id \"a\"): \"embedding\" holds something other than a finite number in the "
         "range of a float"},
        {HDR "\"records\": [{\"id\": \"a\", \"text\": \"t\", \"embedding\": [1]}]}",
         "no \"embedder\" in the header"},
        {HDR "\"records\": [{\"id\": \"a\", \"text\": \"t\",}]}", "record 1: malformed JSON"},
        {HDR "\"records\": [{\"id\": \"a\", \"text\": \"t\"} {\"id\": \"b\"}]}",
         "expected ',' or ']' between records"},
        {HDR "\"records\": [7]}", "record 1: not a JSON object"},
        {HDR "\"records\": {}}", "\"records\" is not an array"},
        {"{\"version\": 1, \"records\": []}", "must come before \"records\""},
        {"{\"format\": \"other\", \"version\": 1, \"records\": []}", "is not \"sop-fallback\""},
        {"{\"format\": \"sop-fallback\", \"version\": 2, \"records\": []}", "version 2"},
        {HDR "\"embedder\": {\"name\": \"e\", \"dim\": 0}, \"records\": []}", "\"embedder\" must be"},
        {"[1, 2]", "one JSON object"},
        {"", "empty"},
        {HDR "\"records\": []} extra", "data after the top-level object"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        uint64_t n;
        char msg[512];
        int rc = read_all(cases[i].text, &n, msg, sizeof msg);
        if (rc != SOP_EFORMAT || !strstr(msg, cases[i].msg))
            fail_msg("case %zu: rc %d, message \"%s\", expected \"%s\"", i, rc, msg, cases[i].msg);
    }
    uint64_t n;
    char msg[512];
    assert_int_equal(read_all(HDR "\"records\": []}", &n, msg, sizeof msg), 0);
    assert_int_equal(n, 0);
    fb_reader *r;
    assert_int_equal(fb_open("/nonexistent/x.json", &r), -ENOENT);
    assert_non_null(strstr(fb_error(r), "cannot open"));
    fb_close(r);
}

static void test_fallback_truncated(void **state)
{
    (void)state;
    const char *t = HDR "\"embedder\": {\"name\": \"e\", \"dim\": 2}, \"records\": [{\"id\": \"a\", "
                        "\"text\": \"t\", \"embedding\": [1, 2]}, {\"id\": \"b\", \"text\": "
                        "\"u\"}]}";
    size_t len = strlen(t);
    for (size_t cut = 0; cut < len; cut++) { /* every prefix is an error, never a crash */
        write_file(t, cut);
        fb_reader *r;
        int rc = fb_open(path, &r);
        fb_record rec;
        while (!rc && (rc = fb_next(r, &rec)) == 0) {
        }
        if (rc != SOP_EFORMAT)
            fail_msg("cut at %zu: rc %d (%s)", cut, rc, fb_error(r));
        fb_close(r);
    }
}

static void test_fallback_record_bound(void **state)
{
    (void)state;
    size_t big = FB_RECORD_MAX + 100;
    char *t = malloc(big + 200);
    assert_non_null(t);
    int n = sprintf(t, HDR "\"records\": [{\"id\": \"a\", \"text\": \"");
    memset(t + n, 'x', big);
    strcpy(t + n + big, "\"}]}");
    write_file(t, strlen(t));
    free(t);
    fb_reader *r;
    assert_int_equal(fb_open(path, &r), 0);
    fb_record rec;
    assert_int_equal(fb_next(r, &rec), SOP_ETOOBIG);
    assert_non_null(strstr(fb_error(r), "record 1 is over"));
    fb_close(r);
}

/* Numbers in and out of the fast path's exact range, and forms that only
 * cJSON accepts ("01", "1."): each must read as (float)strtod(), whichever
 * path reads the record. */
static const char *const numbers[] = {
    "0", "-0", "1", "-1.5", "0.038194", "-0.24487", "0.72812", "1e5", "1E-5", "2.5e+3",
    "-7.25E-2", "0.1", "0.3", "123456.789", "9007199254740992", "9007199254740993",
    "123456789012345678901", "0.000000000000000000000001", "1e22", "1e23", "1e-22",
    "3.4028235e38", "1e-40", "0.12345678901234567890", "-0.0000001", "5e-324", "17",
    "01", "1.", "-0.5e0",
};
#define NNUM (sizeof numbers / sizeof numbers[0])

/* Two records per number, of dimension 1: "f<i>" (the fast path's kind)
 * and "s<i>!" (an escape in the id sends it to the general path). */
static void write_numbers(void)
{
    char t[8192];
    size_t o = (size_t)snprintf(t, sizeof t, HDR "\"embedder\": {\"name\": \"e\", \"dim\": 1},"
                                             " \"records\": [");
    for (size_t i = 0; i < NNUM; i++)
        o += (size_t)snprintf(t + o, sizeof t - o,
                              "%s{\"text\" : \"t\",\n \"embedding\":[ %s\t] , \"id\": \"f%zu\"},"
                              "{\"id\": \"s%zu\\u0021\", \"text\": \"t\", \"embedding\": [%s]}",
                              i ? "," : "", numbers[i], i, i, numbers[i]);
    snprintf(t + o, sizeof t - o, "]}");
    write_file(t, strlen(t));
}

static void test_fallback_fast_path(void **state)
{
    (void)state;
    write_numbers();
    fb_reader *r;
    assert_int_equal(fb_open(path, &r), 0);
    fb_record rec;
    for (size_t i = 0; i < NNUM; i++) {
        char id[32];
        float want = (float)strtod(numbers[i], NULL), got[2];
        for (int k = 0; k < 2; k++) {
            assert_int_equal(fb_next(r, &rec), 0);
            snprintf(id, sizeof id, k ? "s%zu!" : "f%zu", i);
            assert_string_equal(rec.id, id);
            assert_string_equal(rec.text, "t");
            assert_non_null(rec.embedding);
            got[k] = rec.embedding[0];
        }
        if (memcmp(&got[0], &want, sizeof want) || memcmp(&got[1], &want, sizeof want))
            fail_msg("%s: fast %a, general %a, strtod %a", numbers[i], (double)got[0],
                     (double)got[1], (double)want);
    }
    assert_int_equal(fb_next(r, &rec), 1);
    fb_close(r);

    /* what the fast path leaves to the general one: read as before */
    static const struct {
        const char *text, *id, *txt;
    } cases[] = {
        {"{\"id\": \"a\", \"id\": \"b\", \"text\": \"t\"}", "a", "t"}, /* cJSON: the first */
        {"{\"id\": \"a\", \"text\": \"t\", \"other\": [1, {\"x\": 2}]}", "a", "t"},
        {"{\"text\": \"x\\ty\", \"id\": \"\\u00e9\"}", "\xc3\xa9", "x\ty"},
        {"{ \"id\" :\"a\" , \"text\":\"t\" }", "a", "t"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char t[512];
        snprintf(t, sizeof t, HDR "\"records\": [%s]}", cases[i].text);
        write_file(t, strlen(t));
        assert_int_equal(fb_open(path, &r), 0);
        assert_int_equal(fb_next(r, &rec), 0);
        assert_string_equal(rec.id, cases[i].id);
        assert_string_equal(rec.text, cases[i].txt);
        assert_null(rec.embedding);
        assert_int_equal(fb_next(r, &rec), 1);
        fb_close(r);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fallback_datasets),    cmocka_unit_test(test_fallback_fields),
        cmocka_unit_test(test_fallback_bad_records), cmocka_unit_test(test_fallback_truncated),
        cmocka_unit_test(test_fallback_record_bound), cmocka_unit_test(test_fallback_fast_path),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
