/*
 * cmd_kv.c - `sop kv put|get|del|scan`: items of a store.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

/* Transactions of a scan may take long on a big store. */
#define KV_SCAN_MAX_MS (24u * 3600u * 1000u)
/* Retries of a write transaction that lost a race with another process. */

static int kv_put(const cli_command *self, int argc, char **argv);
static int kv_get(const cli_command *self, int argc, char **argv);
static int kv_del(const cli_command *self, int argc, char **argv);
static int kv_scan(const cli_command *self, int argc, char **argv);

#define KV_KEY_HELP                                                                         \
    "KEY is text; in a store ordered by int64, uint64 or double it is a decimal\n"          \
    "number. With -e, \\\\, \\t, \\n, \\r, \\0 and \\xNN escapes (as printed by scan) are\n" \
    "decoded.\n"

const cli_command cli_kv_commands[] = {
    {"put", kv_put, "set the value of a key (creates the database and store if missing)",
     "Usage: sop kv put [options] DB STORE KEY VALUE\n"
     "       sop kv put [options] --stdin DB STORE KEY < VALUE\n"
     "\n"
     "Sets the value of KEY (adds the item or replaces its value). Creates the\n"
     "database and the store when missing.\n"
     "\n" KV_KEY_HELP "\n"
     "Options:\n"
     "  --stdin            read VALUE from standard input (binary-safe)\n"
     "  --order ORDER      key order of a store created by this command: bytes\n"
     "                     (default), int64, uint64, double or string\n"
     "  --int              same as --order int64\n"
     "  -e, --escapes      decode escapes in KEY and VALUE\n",
     NULL},
    {"get", kv_get, "print the value of a key",
     "Usage: sop kv get [options] DB STORE KEY\n"
     "\n"
     "Prints the value of KEY followed by a newline. Exit status 1 when the key\n"
     "(or the store, or the database) does not exist.\n"
     "\n" KV_KEY_HELP "\n"
     "Options:\n"
     "  --raw              print the value's bytes exactly, without a newline\n"
     "  --json             print {\"key\":...,\"value\":...}\n"
     "  -e, --escapes      decode escapes in KEY\n",
     NULL},
    {"del", kv_del, "delete a key",
     "Usage: sop kv del [options] DB STORE KEY\n"
     "\n"
     "Removes the item with KEY. Exit status 1 when it does not exist.\n"
     "\n" KV_KEY_HELP "\n"
     "Options:\n"
     "  -e, --escapes      decode escapes in KEY\n",
     NULL},
    {"scan", kv_scan, "list items in key order",
     "Usage: sop kv scan [options] DB STORE\n"
     "\n"
     "Prints items in key order, one per line: KEY<TAB>VALUE. Backslash, tab,\n"
     "newline, CR and bytes that are not printable (or not valid UTF-8) are\n"
     "escaped as \\\\, \\t, \\n, \\r and \\xNN. With --json, one JSON object per line:\n"
     "{\"key\":...,\"value\":...}; keys of numeric stores are JSON numbers; a key\n"
     "or value that is not valid UTF-8 is given as \"key_hex\"/\"value_hex\".\n"
     "\n"
     "Options:\n"
     "  --from K           start at K (inclusive)\n"
     "  --after K          start after K (exclusive)\n"
     "  --to K             stop at K (inclusive)\n"
     "  --before K         stop before K (exclusive)\n"
     "  --prefix P         only keys starting with P (bytes and string stores)\n"
     "  -r, --reverse      descending order (from the upper bound down)\n"
     "  --offset N         skip the first N items of the range\n"
     "  -n, --limit N      print at most N items (0: no limit)\n"
     "  -k, --keys-only    print keys only\n"
     "  --json             JSON lines\n"
     "  -e, --escapes      decode escapes in K and P\n",
     NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

/* ------------------------------------------------------------------ */
/* Helpers                                                            */
/* ------------------------------------------------------------------ */

/* Checks the number of positional arguments. */
static int want_args(int npos, int min, int max, const char *names)
{
    if (npos < min) {
        return cli_usage("missing arguments: expected %s", names);
    }
    if (npos > max) {
        return cli_usage("too many arguments: expected %s", names);
    }
    return 0;
}

/* Opens store @p name in @p txn and reads its key order. Prints errors. */
static int open_store(sop_db *db, sop_txn *txn, const char *name, sop_store **sp,
                      sop_key_order *order)
{
    int rc = sop_store_open(txn, name, sp);
    if (rc != SOP_OK) {
        if (rc == SOP_ENOTFOUND) {
            return cli_fail(NULL, rc, "no store '%s'", name);
        }
        return cli_fail(db, rc, "opening the store '%s'", name);
    }
    sop_store_options so;
    sop_store_options_init(&so);
    rc = sop_store_get_options(*sp, &so);
    if (rc != SOP_OK) {
        return cli_fail(db, rc, "reading the options of store '%s'", name);
    }
    *order = so.order;
    return 0;
}

/* Reads all of stdin into a malloc'ed buffer. */
static int read_stdin(char **out, size_t *n)
{
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    if (!buf) {
        return cli_fail(NULL, -ENOMEM, "reading standard input");
    }
    for (;;) {
        if (len == cap) {
            if (cap > SOP_VALUE_MAX) {
                free(buf);
                return cli_fail(NULL, SOP_ETOOBIG, "standard input is larger than %u bytes",
                                (unsigned)SOP_VALUE_MAX);
            }
            size_t ncap = cap * 2;
            char *nb = realloc(buf, ncap);
            if (!nb) {
                free(buf);
                return cli_fail(NULL, -ENOMEM, "reading standard input");
            }
            buf = nb;
            cap = ncap;
        }
        size_t got = fread(buf + len, 1, cap - len, stdin);
        len += got;
        if (got == 0) {
            if (ferror(stdin)) {
                int e = errno ? errno : EIO;
                free(buf);
                return cli_fail(NULL, -e, "reading standard input");
            }
            break;
        }
    }
    if (len > SOP_VALUE_MAX) {
        free(buf);
        return cli_fail(NULL, SOP_ETOOBIG, "standard input is larger than %u bytes",
                        (unsigned)SOP_VALUE_MAX);
    }
    *out = buf;
    *n = len;
    return 0;
}

/* ------------------------------------------------------------------ */
/* put                                                                */
/* ------------------------------------------------------------------ */

typedef struct put_args {
    const char *name, *key_arg;
    int escapes, explicit_order;
    sop_key_order new_order;
    const cli_bytes *val;
    cli_bytes *key; /* parsed in the store's key order */
} put_args;

/* put's write: the store (created with new_order when missing), then the
 * key in its order, then the upsert */
static int put_step(sop_db *db, sop_txn *txn, void *arg)
{
    put_args *a = arg;
    sop_store *st = NULL;
    sop_key_order order = a->new_order;
    int r = sop_store_open(txn, a->name, &st);
    if (r == SOP_ENOTFOUND) {
        sop_store_options so;
        sop_store_options_init(&so);
        so.order = a->new_order;
        r = sop_store_create(txn, a->name, &so, &st);
        if (r != SOP_OK)
            return cli_fail(db, r, "creating the store '%s'", a->name);
    } else if (r != SOP_OK) {
        return cli_fail(db, r, "opening the store '%s'", a->name);
    } else {
        sop_store_options so;
        sop_store_options_init(&so);
        r = sop_store_get_options(st, &so);
        if (r != SOP_OK)
            return cli_fail(db, r, "reading the options of store '%s'", a->name);
        order = so.order;
        if (a->explicit_order && order != a->new_order)
            return cli_fail(NULL, SOP_EMISMATCH, "store '%s' has key order %s, not %s", a->name,
                            cli_order_name(order), cli_order_name(a->new_order));
    }
    cli_bytes_free(a->key);
    int rc = cli_key_from_arg(order, a->key_arg, a->escapes, "KEY", a->key);
    if (rc != 0)
        return rc;
    r = sop_upsert(st, &a->key->v, &a->val->v);
    return r != SOP_OK ? cli_fail(db, r, "writing the key") : 0;
}

enum { PUT_STDIN, PUT_ORDER, PUT_INT, PUT_ESC, PUT_NOPTS };

static int kv_put(const cli_command *self, int argc, char **argv)
{
    cli_opt opts[] = {
        [PUT_STDIN] = {"stdin", 0, 0, NULL},  [PUT_ORDER] = {"order", 0, 1, NULL},
        [PUT_INT] = {"int", 0, 0, NULL},      [PUT_ESC] = {"escapes", 'e', 0, NULL},
        [PUT_NOPTS] = {NULL, 0, 0, NULL},
    };
    char **pos = calloc((size_t)argc + 1, sizeof *pos);
    int npos = 0;
    if (!pos) {
        return cli_fail(NULL, -ENOMEM, "out of memory");
    }
    int rc = cli_parse(self, argc, argv, opts, pos, &npos);
    if (rc != 0) {
        free(pos);
        return rc == CLI_PARSE_HELP ? CLI_EXIT_OK : rc;
    }
    int from_stdin = opts[PUT_STDIN].value != NULL;
    int escapes = opts[PUT_ESC].value != NULL;
    rc = from_stdin ? want_args(npos, 3, 3, "DB STORE KEY (VALUE comes from --stdin)")
                    : want_args(npos, 4, 4, "DB STORE KEY VALUE");
    int explicit_order = 0;
    sop_key_order new_order = SOP_ORDER_BYTES;
    if (rc == 0 && opts[PUT_ORDER].value) {
        explicit_order = 1;
        if (cli_order_parse(opts[PUT_ORDER].value, &new_order) != 0) {
            rc = cli_usage("bad key order '%s' (bytes, int64, uint64, double or string)",
                           opts[PUT_ORDER].value);
        }
    }
    if (rc == 0 && opts[PUT_INT].value) {
        if (explicit_order && new_order != SOP_ORDER_INT64) {
            rc = cli_usage("--int contradicts --order %s", opts[PUT_ORDER].value);
        }
        explicit_order = 1;
        new_order = SOP_ORDER_INT64;
    }
    if (rc != 0) {
        free(pos);
        return rc;
    }
    const char *path = pos[0], *name = pos[1], *key_arg = pos[2];

    cli_bytes val = {0};
    char *stdin_buf = NULL;
    if (from_stdin) {
        size_t n = 0;
        rc = read_stdin(&stdin_buf, &n);
        if (rc != 0) {
            free(pos);
            return rc;
        }
        val.v.data = stdin_buf;
        val.v.size = n;
    } else {
        rc = cli_bytes_from_arg(pos[3], escapes, "VALUE", &val);
        if (rc != 0) {
            free(pos);
            return rc;
        }
    }

    sop_db *db = NULL;
    cli_bytes key = {0};
    put_args a = {name, key_arg, escapes, explicit_order, new_order, &val, &key};
    rc = cli_open_db(path, CLI_OPEN_CREATE, &db);
    if (rc == 0)
        rc = cli_write_txn(db, 0, put_step, &a);
    rc = cli_close_db(db, rc);
    cli_bytes_free(&key);
    cli_bytes_free(&val);
    free(stdin_buf);
    free(pos);
    return rc;
}

/* ------------------------------------------------------------------ */
/* get, del                                                           */
/* ------------------------------------------------------------------ */

enum { GET_RAW, GET_JSON, GET_ESC, GET_NOPTS };

static int kv_get(const cli_command *self, int argc, char **argv)
{
    cli_opt opts[] = {
        [GET_RAW] = {"raw", 0, 0, NULL},
        [GET_JSON] = {"json", 0, 0, NULL},
        [GET_ESC] = {"escapes", 'e', 0, NULL},
        [GET_NOPTS] = {NULL, 0, 0, NULL},
    };
    char **pos = calloc((size_t)argc + 1, sizeof *pos);
    int npos = 0;
    if (!pos) {
        return cli_fail(NULL, -ENOMEM, "out of memory");
    }
    int rc = cli_parse(self, argc, argv, opts, pos, &npos);
    if (rc == 0) {
        rc = want_args(npos, 3, 3, "DB STORE KEY");
    }
    if (rc == 0 && opts[GET_RAW].value && opts[GET_JSON].value) {
        rc = cli_usage("--raw and --json exclude each other");
    }
    if (rc != 0) {
        free(pos);
        return rc == CLI_PARSE_HELP ? CLI_EXIT_OK : rc;
    }
    const char *path = pos[0], *name = pos[1], *key_arg = pos[2];
    sop_db *db = NULL;
    sop_txn *txn = NULL;
    sop_store *st = NULL;
    sop_key_order order = SOP_ORDER_BYTES;
    cli_bytes key = {0};
    rc = cli_open_db(path, CLI_OPEN_RDONLY, &db);
    if (rc == 0) {
        int r = sop_txn_begin(db, SOP_TXN_READ, 0, &txn);
        if (r != SOP_OK) {
            rc = cli_fail(db, r, "beginning a transaction");
        }
    }
    if (rc == 0) {
        rc = open_store(db, txn, name, &st, &order);
    }
    if (rc == 0) {
        rc = cli_key_from_arg(order, key_arg, opts[GET_ESC].value != NULL, "KEY", &key);
    }
    if (rc == 0) {
        sop_val v = {NULL, 0};
        int r = sop_get(st, &key.v, &v);
        if (r == SOP_ENOTFOUND) {
            rc = cli_fail(NULL, r, "key '%s' not found in store '%s'", key_arg, name);
        } else if (r != SOP_OK) {
            rc = cli_fail(db, r, "reading the key");
        } else if (opts[GET_JSON].value) {
            fputc('{', stdout);
            cli_write_key_json(stdout, order, &key.v);
            fputc(',', stdout);
            cli_write_json_bytes(stdout, "value", v.data, v.size);
            fputs("}\n", stdout);
            rc = cli_flush_stdout();
        } else {
            if (v.size) {
                fwrite(v.data, 1, v.size, stdout);
            }
            if (!opts[GET_RAW].value) {
                fputc('\n', stdout);
            }
            rc = cli_flush_stdout();
        }
    }
    sop_txn_rollback(txn);
    rc = cli_close_db(db, rc);
    cli_bytes_free(&key);
    free(pos);
    return rc;
}

typedef struct del_args {
    const char *name, *key_arg;
    int escapes;
    cli_bytes *key; /* parsed in the store's key order */
} del_args;

static int del_step(sop_db *db, sop_txn *txn, void *arg)
{
    del_args *a = arg;
    sop_store *st = NULL;
    sop_key_order order = SOP_ORDER_BYTES;
    int rc = open_store(db, txn, a->name, &st, &order);
    if (rc == 0) {
        cli_bytes_free(a->key);
        rc = cli_key_from_arg(order, a->key_arg, a->escapes, "KEY", a->key);
    }
    if (rc != 0)
        return rc;
    int r = sop_remove(st, &a->key->v);
    if (r == SOP_ENOTFOUND)
        return cli_fail(NULL, r, "key '%s' not found in store '%s'", a->key_arg, a->name);
    return r != SOP_OK ? cli_fail(db, r, "removing the key") : 0;
}

enum { DEL_ESC, DEL_NOPTS };

static int kv_del(const cli_command *self, int argc, char **argv)
{
    cli_opt opts[] = {
        [DEL_ESC] = {"escapes", 'e', 0, NULL},
        [DEL_NOPTS] = {NULL, 0, 0, NULL},
    };
    char **pos = calloc((size_t)argc + 1, sizeof *pos);
    int npos = 0;
    if (!pos) {
        return cli_fail(NULL, -ENOMEM, "out of memory");
    }
    int rc = cli_parse(self, argc, argv, opts, pos, &npos);
    if (rc == 0) {
        rc = want_args(npos, 3, 3, "DB STORE KEY");
    }
    if (rc != 0) {
        free(pos);
        return rc == CLI_PARSE_HELP ? CLI_EXIT_OK : rc;
    }
    const char *path = pos[0], *name = pos[1], *key_arg = pos[2];
    sop_db *db = NULL;
    cli_bytes key = {0};
    del_args a = {name, key_arg, opts[DEL_ESC].value != NULL, &key};
    rc = cli_open_db(path, 0, &db);
    if (rc == 0)
        rc = cli_write_txn(db, 0, del_step, &a);
    rc = cli_close_db(db, rc);
    cli_bytes_free(&key);
    free(pos);
    return rc;
}

/* ------------------------------------------------------------------ */
/* scan                                                               */
/* ------------------------------------------------------------------ */

typedef struct scan_ctx {
    sop_key_order order;
    int json;
    int keys_only;
} scan_ctx;

#define SCAN_STOPPED 1 /* returned by the callback on an output error */

static int scan_item(const sop_val *k, const sop_val *v, void *arg)
{
    const scan_ctx *sc = arg;
    if (sc->json) {
        fputc('{', stdout);
        cli_write_key_json(stdout, sc->order, k);
        if (!sc->keys_only) {
            fputc(',', stdout);
            cli_write_json_bytes(stdout, "value", v ? v->data : NULL, v ? v->size : 0);
        }
        fputs("}\n", stdout);
    } else {
        cli_write_key_text(stdout, sc->order, k);
        if (!sc->keys_only) {
            fputc('\t', stdout);
            if (v) {
                cli_write_escaped(stdout, v->data, v->size);
            }
        }
        fputc('\n', stdout);
    }
    return ferror(stdout) ? SCAN_STOPPED : 0;
}

/* The smallest key above every key starting with @p p (bytes order):
 * increments the last byte below 0xff. @return 0 when there is none. */
static int prefix_upper_bytes(const unsigned char *p, size_t n, unsigned char *out, size_t *outn)
{
    while (n > 0 && p[n - 1] == 0xFF) {
        n--;
    }
    if (n == 0) {
        return 0;
    }
    memcpy(out, p, n);
    out[n - 1]++;
    *outn = n;
    return 1;
}

/* Same for string order (code points): increments the last code point,
 * skipping surrogates; the result is valid UTF-8 when @p p is. */
static int prefix_upper_string(const unsigned char *p, size_t n, unsigned char *out, size_t *outn)
{
    while (n > 0) {
        size_t start = n - 1;
        while (start > 0 && (p[start] & 0xC0) == 0x80) {
            start--;
        }
        uint32_t cp;
        unsigned char c = p[start];
        if (c < 0x80) {
            cp = c;
        } else if ((c & 0xE0) == 0xC0) {
            cp = c & 0x1F;
        } else if ((c & 0xF0) == 0xE0) {
            cp = c & 0x0F;
        } else {
            cp = c & 0x07;
        }
        for (size_t i = start + 1; i < n; i++) {
            cp = (cp << 6) | (p[i] & 0x3F);
        }
        if (cp >= 0x10FFFF) {
            n = start;
            continue;
        }
        cp = cp + 1 == 0xD800 ? 0xE000 : cp + 1;
        memcpy(out, p, start);
        size_t k = start;
        if (cp < 0x80) {
            out[k++] = (unsigned char)cp;
        } else if (cp < 0x800) {
            out[k++] = (unsigned char)(0xC0 | (cp >> 6));
            out[k++] = (unsigned char)(0x80 | (cp & 0x3F));
        } else if (cp < 0x10000) {
            out[k++] = (unsigned char)(0xE0 | (cp >> 12));
            out[k++] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
            out[k++] = (unsigned char)(0x80 | (cp & 0x3F));
        } else {
            out[k++] = (unsigned char)(0xF0 | (cp >> 18));
            out[k++] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
            out[k++] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
            out[k++] = (unsigned char)(0x80 | (cp & 0x3F));
        }
        *outn = k;
        return 1;
    }
    return 0;
}

enum {
    SC_FROM, SC_AFTER, SC_TO, SC_BEFORE, SC_PREFIX, SC_REVERSE, SC_OFFSET, SC_LIMIT,
    SC_KEYS, SC_JSON, SC_ESC, SC_NOPTS
};

static int kv_scan(const cli_command *self, int argc, char **argv)
{
    cli_opt opts[] = {
        [SC_FROM] = {"from", 0, 1, NULL},         [SC_AFTER] = {"after", 0, 1, NULL},
        [SC_TO] = {"to", 0, 1, NULL},             [SC_BEFORE] = {"before", 0, 1, NULL},
        [SC_PREFIX] = {"prefix", 0, 1, NULL},     [SC_REVERSE] = {"reverse", 'r', 0, NULL},
        [SC_OFFSET] = {"offset", 0, 1, NULL},     [SC_LIMIT] = {"limit", 'n', 1, NULL},
        [SC_KEYS] = {"keys-only", 'k', 0, NULL},  [SC_JSON] = {"json", 0, 0, NULL},
        [SC_ESC] = {"escapes", 'e', 0, NULL},     [SC_NOPTS] = {NULL, 0, 0, NULL},
    };
    char **pos = calloc((size_t)argc + 1, sizeof *pos);
    int npos = 0;
    if (!pos) {
        return cli_fail(NULL, -ENOMEM, "out of memory");
    }
    int rc = cli_parse(self, argc, argv, opts, pos, &npos);
    if (rc == 0) {
        rc = want_args(npos, 2, 2, "DB STORE");
    }
    sop_range range;
    memset(&range, 0, sizeof range);
    if (rc == 0 && opts[SC_FROM].value && opts[SC_AFTER].value) {
        rc = cli_usage("--from and --after exclude each other");
    }
    if (rc == 0 && opts[SC_TO].value && opts[SC_BEFORE].value) {
        rc = cli_usage("--to and --before exclude each other");
    }
    if (rc == 0 && opts[SC_PREFIX].value &&
        (opts[SC_FROM].value || opts[SC_AFTER].value || opts[SC_TO].value ||
         opts[SC_BEFORE].value)) {
        rc = cli_usage("--prefix excludes --from, --after, --to and --before");
    }
    if (rc == 0 && opts[SC_OFFSET].value &&
        cli_parse_u64(opts[SC_OFFSET].value, &range.offset) != 0) {
        rc = cli_usage("bad --offset '%s' (a non-negative integer)", opts[SC_OFFSET].value);
    }
    if (rc == 0 && opts[SC_LIMIT].value &&
        cli_parse_u64(opts[SC_LIMIT].value, &range.limit) != 0) {
        rc = cli_usage("bad --limit '%s' (a non-negative integer)", opts[SC_LIMIT].value);
    }
    if (rc != 0) {
        free(pos);
        return rc == CLI_PARSE_HELP ? CLI_EXIT_OK : rc;
    }
    const char *path = pos[0], *name = pos[1];
    int escapes = opts[SC_ESC].value != NULL;
    scan_ctx sc = {SOP_ORDER_BYTES, opts[SC_JSON].value != NULL, opts[SC_KEYS].value != NULL};
    range.reverse = opts[SC_REVERSE].value != NULL;
    range.keys_only = sc.keys_only;

    sop_db *db = NULL;
    sop_txn *txn = NULL;
    sop_store *st = NULL;
    cli_bytes lo = {0}, hi = {0};
    unsigned char *upper = NULL;
    sop_val upper_val = {NULL, 0};
    rc = cli_open_db(path, CLI_OPEN_RDONLY, &db);
    if (rc == 0) {
        int r = sop_txn_begin(db, SOP_TXN_READ, KV_SCAN_MAX_MS, &txn);
        if (r != SOP_OK) {
            rc = cli_fail(db, r, "beginning a transaction");
        }
    }
    if (rc == 0) {
        rc = open_store(db, txn, name, &st, &sc.order);
    }
    const char *lo_arg = opts[SC_FROM].value ? opts[SC_FROM].value : opts[SC_AFTER].value;
    const char *hi_arg = opts[SC_TO].value ? opts[SC_TO].value : opts[SC_BEFORE].value;
    if (rc == 0 && lo_arg) {
        rc = cli_key_from_arg(sc.order, lo_arg, escapes, opts[SC_FROM].value ? "--from" : "--after",
                              &lo);
        range.from = &lo.v;
        range.from_exclusive = opts[SC_AFTER].value != NULL;
    }
    if (rc == 0 && hi_arg) {
        rc = cli_key_from_arg(sc.order, hi_arg, escapes, opts[SC_TO].value ? "--to" : "--before",
                              &hi);
        range.to = &hi.v;
        range.to_exclusive = opts[SC_BEFORE].value != NULL;
    }
    if (rc == 0 && opts[SC_PREFIX].value) {
        if (sc.order != SOP_ORDER_BYTES && sc.order != SOP_ORDER_STRING) {
            rc = cli_usage("--prefix needs a store ordered by bytes or string, not %s",
                           cli_order_name(sc.order));
        } else {
            rc = cli_bytes_from_arg(opts[SC_PREFIX].value, escapes, "--prefix", &lo);
        }
        if (rc == 0 && lo.v.size > 0) {
            range.from = &lo.v;
            upper = malloc(lo.v.size);
            if (!upper) {
                rc = cli_fail(NULL, -ENOMEM, "out of memory");
            } else {
                int has = sc.order == SOP_ORDER_STRING
                              ? prefix_upper_string(lo.v.data, lo.v.size, upper, &upper_val.size)
                              : prefix_upper_bytes(lo.v.data, lo.v.size, upper, &upper_val.size);
                if (has) {
                    upper_val.data = upper;
                    range.to = &upper_val;
                    range.to_exclusive = 1;
                }
            }
        }
    }
    if (rc == 0) {
        int r = sop_scan(st, &range, scan_item, &sc);
        if (r == SCAN_STOPPED) {
            rc = cli_flush_stdout();
            if (rc == 0) {
                rc = CLI_EXIT_ERR;
            }
        } else if (r != SOP_OK) {
            cli_flush_stdout();
            rc = cli_fail(db, r, "scanning the store '%s'", name);
        } else {
            rc = cli_flush_stdout();
        }
    }
    sop_txn_rollback(txn);
    rc = cli_close_db(db, rc);
    cli_bytes_free(&lo);
    cli_bytes_free(&hi);
    free(upper);
    free(pos);
    return rc;
}
