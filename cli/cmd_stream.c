/*
 * cmd_stream.c - `sop stream put|get|stat|rm`: whole files as streamed
 * values of a streaming store (sop_stream_*), one chunk in memory at a
 * time, each put or get in one transaction.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"

/* A stream of gigabytes takes long: the transactions get a day. */
#define STREAM_TXN_MAX_MS (24u * 3600u * 1000u)
/* Retries of a put (from a file that can be read again) or rm that lost a
 * race with another process. */

static int st_put(const cli_command *self, int argc, char **argv);
static int st_get(const cli_command *self, int argc, char **argv);
static int st_stat(const cli_command *self, int argc, char **argv);
static int st_rm(const cli_command *self, int argc, char **argv);

#define STREAM_KEY_HELP                                                                     \
    "KEY is text (with -e, \\\\, \\t, \\n, \\r, \\0 and \\xNN escapes are decoded), at\n"   \
    "most 1000 bytes.\n"

const cli_command cli_stream_commands[] = {
    {"put", st_put, "store a file as a streamed value (creates the database and store)",
     "Usage: sop stream put [options] DB STORE KEY FILE\n"
     "\n"
     "Reads FILE (- for standard input) in chunks and stores it as the value of\n"
     "KEY in streaming store STORE, replacing any value it had, in one\n"
     "transaction: memory holds one chunk, whatever the size of FILE. Creates the\n"
     "database and the store when missing. Prints the bytes, the chunks and the\n"
     "CRC32C of the value: \"BYTES bytes, CHUNKS chunks, crc32c XXXXXXXX\".\n"
     "\n" STREAM_KEY_HELP "\n"
     "Options:\n"
     "  --chunk BYTES      chunk size of a store created by this command\n"
     "                     (4096..67108864, default 1048576); with an existing\n"
     "                     store, the size it must have\n"
     "  -e, --escapes      decode escapes in KEY\n",
     NULL},
    {"get", st_get, "write a streamed value to a file",
     "Usage: sop stream get [options] DB STORE KEY FILE\n"
     "\n"
     "Writes the value of KEY to FILE (created or replaced; - for standard\n"
     "output), a chunk at a time. Unless FILE is -, prints \"BYTES bytes, CHUNKS\n"
     "chunks, crc32c XXXXXXXX\". Exit status 1 when the key (or the store, or\n"
     "the database) does not exist; FILE is then left alone.\n"
     "\n" STREAM_KEY_HELP "\n"
     "Options:\n"
     "  -e, --escapes      decode escapes in KEY\n",
     NULL},
    {"stat", st_stat, "print the size and chunks of a streamed value",
     "Usage: sop stream stat [options] DB STORE KEY\n"
     "\n"
     "Prints the value's size in bytes, its number of chunks and the store's\n"
     "chunk size as \"size BYTES\", \"chunks N\" and \"chunk_bytes N\" lines. Exit\n"
     "status 1 when the key does not exist.\n"
     "\n" STREAM_KEY_HELP "\n"
     "Options:\n"
     "  --crc              also read the value and print \"crc32c XXXXXXXX\"\n"
     "  --json             one JSON object instead of lines\n"
     "  -e, --escapes      decode escapes in KEY\n",
     NULL},
    {"rm", st_rm, "delete a streamed value",
     "Usage: sop stream rm [options] DB STORE KEY\n"
     "\n"
     "Deletes the value of KEY (all its chunks). Exit status 1 when it does not\n"
     "exist.\n"
     "\n" STREAM_KEY_HELP "\n"
     "Options:\n"
     "  -e, --escapes      decode escapes in KEY\n",
     NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

/* ------------------------------------------------------------------ */
/* CRC32C                                                             */
/* ------------------------------------------------------------------ */

static uint32_t crc_table[8][256];

static void crc_init(void)
{
    if (crc_table[0][1])
        return;
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = (c >> 1) ^ (0x82F63B78u & (0u - (c & 1)));
        crc_table[0][i] = c;
    }
    for (uint32_t i = 0; i < 256; i++)
        for (int t = 1; t < 8; t++)
            crc_table[t][i] = (crc_table[t - 1][i] >> 8) ^ crc_table[0][crc_table[t - 1][i] & 0xFF];
}

#if defined(__x86_64__) && defined(__GNUC__)
#include <nmmintrin.h>
__attribute__((target("sse4.2"))) static uint32_t crc_hw(uint32_t c, const uint8_t *p, size_t n)
{
    uint64_t c64 = c;
    for (; n >= 8; n -= 8, p += 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        c64 = _mm_crc32_u64(c64, w);
    }
    c = (uint32_t)c64;
    for (; n; n--)
        c = _mm_crc32_u8(c, *p++);
    return c;
}
#define CRC_HW 1
#else
#define CRC_HW 0
#endif

/* CRC32C of @p n bytes, continuing from @p crc (0 to start). */
static uint32_t crc32c(uint32_t crc, const void *buf, size_t n)
{
    const uint8_t *p = buf;
    uint32_t c = ~crc;
#if CRC_HW
    if (__builtin_cpu_supports("sse4.2"))
        return ~crc_hw(c, p, n);
#endif
    crc_init();
    for (; n >= 8; n -= 8, p += 8) {
        uint32_t lo = c ^ ((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
                           (uint32_t)p[3] << 24);
        c = crc_table[7][lo & 0xFF] ^ crc_table[6][(lo >> 8) & 0xFF] ^
            crc_table[5][(lo >> 16) & 0xFF] ^ crc_table[4][lo >> 24] ^ crc_table[3][p[4]] ^
            crc_table[2][p[5]] ^ crc_table[1][p[6]] ^ crc_table[0][p[7]];
    }
    for (; n; n--)
        c = (c >> 8) ^ crc_table[0][(c ^ *p++) & 0xFF];
    return ~c;
}

/* ------------------------------------------------------------------ */
/* Helpers                                                            */
/* ------------------------------------------------------------------ */

/* Parses the arguments: exactly @n positional ones named by @names. */
static int parse(const cli_command *self, int argc, char **argv, cli_opt *opts, char **pos,
                 int n, const char *names)
{
    int npos = 0;
    return cli_args(self, argc, argv, opts, pos, &npos, n, n, names);
}

/* Opens streaming store @name (with @cb, or any chunk size when 0).
 * Prints errors. */
static int open_stream_store(sop_db *db, sop_txn *txn, const char *name, uint32_t cb,
                             sop_store **sp)
{
    int r = sop_stream_store_open(txn, name, cb, sp);
    if (r == SOP_ENOTFOUND)
        return cli_fail(NULL, r, "no store '%s'", name);
    if (r != SOP_OK)
        return cli_fail(db, r, "opening the streaming store '%s'", name);
    return 0;
}

/* Opens the value of @key_arg for reading. Prints errors. */
static int open_value(sop_db *db, sop_store *st, const char *name, const char *key_arg,
                      const cli_bytes *key, unsigned flags, sop_stream **hp)
{
    int r = sop_stream_open(st, &key->v, flags, hp);
    if (r == SOP_ENOTFOUND)
        return cli_fail(NULL, r, "key '%s' not found in store '%s'", key_arg, name);
    if (r != SOP_OK)
        return cli_fail(db, r, "opening the value of key '%s'", key_arg);
    return 0;
}

static void print_summary(FILE *f, uint64_t bytes, uint64_t chunks, uint32_t crc)
{
    fprintf(f, "%" PRIu64 " bytes, %" PRIu64 " chunks, crc32c %08" PRIx32 "\n", bytes, chunks,
            crc);
}

/* ------------------------------------------------------------------ */
/* put                                                                */
/* ------------------------------------------------------------------ */

enum { PUT_CHUNK, PUT_ESC, PUT_NOPTS };

/* One attempt of a put: the whole input into one transaction. Returns 0,
 * an exit status after printing an error, or -1 for a conflict worth a
 * retry (nothing printed). */
static int put_once(sop_db *db, FILE *in, const char *name, const char *key_arg,
                    const cli_bytes *key, uint32_t want_cb, uint8_t **buf, int retry_ok)
{
    sop_txn *txn = NULL;
    sop_store *st = NULL;
    sop_stream *h = NULL;
    int r = sop_txn_begin(db, SOP_TXN_WRITE, STREAM_TXN_MAX_MS, &txn);
    if (r != SOP_OK)
        return cli_fail(db, r, "beginning a transaction");
    r = sop_stream_store_open(txn, name, want_cb, &st);
    if (r == SOP_ENOTFOUND) {
        r = sop_stream_store_create(txn, name, want_cb, &st);
        if (r != SOP_OK) {
            sop_txn_rollback(txn);
            return cli_fail(db, r, "creating the streaming store '%s'", name);
        }
    } else if (r != SOP_OK) {
        sop_txn_rollback(txn);
        return cli_fail(db, r, "opening the streaming store '%s'", name);
    }
    int rc = open_value(db, st, name, key_arg, key, SOP_STREAM_CREATE | SOP_STREAM_TRUNC, &h);
    if (rc != 0) {
        sop_txn_rollback(txn);
        return rc;
    }
    uint32_t cb = sop_stream_chunk_bytes(h);
    if (!*buf && !(*buf = malloc(cb))) {
        sop_txn_rollback(txn);
        return cli_fail(NULL, -ENOMEM, "a buffer of %u bytes", cb);
    }
    uint64_t total = 0;
    uint32_t crc = 0;
    for (;;) {
        size_t got = fread(*buf, 1, cb, in);
        if (got) {
            crc = crc32c(crc, *buf, got);
            r = sop_stream_append(h, *buf, got);
            if (r != SOP_OK) {
                sop_txn_rollback(txn);
                return cli_fail(db, r, "writing the value");
            }
            total += got;
        }
        if (got < cb) {
            if (ferror(in)) {
                int e = errno ? errno : EIO;
                sop_txn_rollback(txn);
                return cli_fail(NULL, -e, "reading the input");
            }
            if (feof(in))
                break;
        }
    }
    uint64_t chunks = 0;
    r = sop_stream_stat(h, NULL, &chunks);
    if (r == SOP_OK)
        r = sop_stream_close(h);
    if (r != SOP_OK) {
        sop_txn_rollback(txn);
        return cli_fail(db, r, "writing the value");
    }
    r = sop_txn_commit(txn);
    if (r == SOP_ECONFLICT && retry_ok)
        return -1;
    if (r != SOP_OK)
        return cli_fail(db, r, "committing");
    print_summary(stdout, total, chunks, crc);
    return cli_flush_stdout();
}

static int st_put(const cli_command *self, int argc, char **argv)
{
    cli_opt opts[] = {
        [PUT_CHUNK] = {"chunk", 0, 1, NULL},
        [PUT_ESC] = {"escapes", 'e', 0, NULL},
        [PUT_NOPTS] = {NULL, 0, 0, NULL},
    };
    char *pos[CLI_POS_MAX];
    int rc = parse(self, argc, argv, opts, pos, 4, "DB STORE KEY FILE");
    if (rc != CLI_CONTINUE)
        return rc;
    uint64_t cb = 0;
    if (cli_opt_u64(&opts[PUT_CHUNK], SOP_STREAM_CHUNK_MIN, SOP_VALUE_MAX, &cb) != 0)
        return CLI_EXIT_USAGE;
    const char *path = pos[0], *name = pos[1], *key_arg = pos[2], *file = pos[3];
    cli_bytes key = {0};
    rc = cli_bytes_from_arg(key_arg, opts[PUT_ESC].value != NULL, "KEY", &key);
    if (rc != 0)
        return rc;
    int from_stdin = strcmp(file, "-") == 0;
    FILE *in = from_stdin ? stdin : fopen(file, "rb");
    if (!in) {
        int e = errno;
        cli_bytes_free(&key);
        return cli_fail(NULL, -e, "cannot open '%s'", file);
    }
    /* a regular file can be read again when a commit conflicts */
    struct stat sb;
    int seekable = !from_stdin && fstat(fileno(in), &sb) == 0 && S_ISREG(sb.st_mode);
    sop_db *db = NULL;
    uint8_t *buf = NULL;
    rc = cli_open_db(path, CLI_OPEN_CREATE, &db);
    for (int attempt = 0; rc == 0; attempt++) {
        rc = put_once(db, in, name, key_arg, &key, (uint32_t)cb, &buf,
                      seekable && attempt + 1 < CLI_WRITE_ATTEMPTS);
        if (rc != -1)
            break;
        rc = fseek(in, 0, SEEK_SET) == 0 ? 0 : cli_fail(NULL, -errno, "rewinding '%s'", file);
    }
    rc = cli_close_db(db, rc);
    free(buf);
    if (!from_stdin)
        fclose(in);
    cli_bytes_free(&key);
    return rc;
}

/* ------------------------------------------------------------------ */
/* get, stat                                                          */
/* ------------------------------------------------------------------ */

enum { GET_ESC, GET_NOPTS };

/* Reads the value of @h to @out (may be NULL: only the CRC); *crc and
 * *total get what was read. Prints errors. */
/* get and stat: opens the database at @path read-only, a read transaction
 * and the value of @key in store @name. On failure (message printed) the
 * handles opened so far are left in *db and *txn for the caller to close. */
static int open_read(const char *path, const char *name, const char *key_arg,
                     const cli_bytes *key, sop_db **db, sop_txn **txn, sop_stream **h)
{
    sop_store *st = NULL;
    int rc = cli_open_db(path, CLI_OPEN_RDONLY, db);
    if (rc == 0) {
        int r = sop_txn_begin(*db, SOP_TXN_READ, STREAM_TXN_MAX_MS, txn);
        if (r != SOP_OK)
            rc = cli_fail(*db, r, "beginning a transaction");
    }
    if (rc == 0)
        rc = open_stream_store(*db, *txn, name, 0, &st);
    if (rc == 0)
        rc = open_value(*db, st, name, key_arg, key, 0, h);
    return rc;
}

static int copy_out(sop_db *db, sop_stream *h, FILE *out, const char *file, uint32_t *crc,
                    uint64_t *total)
{
    size_t cap = sop_stream_chunk_bytes(h);
    uint8_t *buf = malloc(cap);
    if (!buf)
        return cli_fail(NULL, -ENOMEM, "a buffer of %zu bytes", cap);
    *crc = 0;
    *total = 0;
    int rc = 0;
    for (;;) {
        size_t got = 0;
        int r = sop_stream_read(h, buf, cap, &got);
        if (r != SOP_OK) {
            rc = cli_fail(db, r, "reading the value");
            break;
        }
        if (!got)
            break;
        *crc = crc32c(*crc, buf, got);
        *total += got;
        if (out && fwrite(buf, 1, got, out) != got) {
            rc = cli_fail(NULL, -(errno ? errno : EIO), "writing '%s'", file);
            break;
        }
    }
    free(buf);
    return rc;
}

static int st_get(const cli_command *self, int argc, char **argv)
{
    cli_opt opts[] = {
        [GET_ESC] = {"escapes", 'e', 0, NULL},
        [GET_NOPTS] = {NULL, 0, 0, NULL},
    };
    char *pos[CLI_POS_MAX];
    int rc = parse(self, argc, argv, opts, pos, 4, "DB STORE KEY FILE");
    if (rc != CLI_CONTINUE)
        return rc;
    const char *path = pos[0], *name = pos[1], *key_arg = pos[2], *file = pos[3];
    int to_stdout = strcmp(file, "-") == 0;
    cli_bytes key = {0};
    rc = cli_bytes_from_arg(key_arg, opts[GET_ESC].value != NULL, "KEY", &key);
    if (rc != 0)
        return rc;
    sop_db *db = NULL;
    sop_txn *txn = NULL;
    sop_stream *h = NULL;
    rc = open_read(path, name, key_arg, &key, &db, &txn, &h);
    FILE *out = NULL;
    if (rc == 0) { /* the value exists: only now is FILE touched */
        out = to_stdout ? stdout : fopen(file, "wb");
        if (!out)
            rc = cli_fail(NULL, -errno, "cannot create '%s'", file);
    }
    uint32_t crc = 0;
    uint64_t total = 0, chunks = 0;
    if (rc == 0)
        rc = copy_out(db, h, out, file, &crc, &total);
    if (rc == 0) {
        int r = sop_stream_stat(h, NULL, &chunks);
        if (r != SOP_OK)
            rc = cli_fail(db, r, "reading the value");
    }
    if (out && !to_stdout && fclose(out) != 0 && rc == 0)
        rc = cli_fail(NULL, -errno, "writing '%s'", file);
    if (rc == 0 && to_stdout)
        rc = cli_flush_stdout();
    if (rc == 0 && !to_stdout) {
        print_summary(stdout, total, chunks, crc);
        rc = cli_flush_stdout();
    }
    sop_txn_rollback(txn); /* frees the handle */
    rc = cli_close_db(db, rc);
    cli_bytes_free(&key);
    return rc;
}

enum { STAT_CRC, STAT_JSON, STAT_ESC, STAT_NOPTS };

static int st_stat(const cli_command *self, int argc, char **argv)
{
    cli_opt opts[] = {
        [STAT_CRC] = {"crc", 0, 0, NULL},
        [STAT_JSON] = {"json", 0, 0, NULL},
        [STAT_ESC] = {"escapes", 'e', 0, NULL},
        [STAT_NOPTS] = {NULL, 0, 0, NULL},
    };
    char *pos[CLI_POS_MAX];
    int rc = parse(self, argc, argv, opts, pos, 3, "DB STORE KEY");
    if (rc != CLI_CONTINUE)
        return rc;
    const char *path = pos[0], *name = pos[1], *key_arg = pos[2];
    cli_bytes key = {0};
    rc = cli_bytes_from_arg(key_arg, opts[STAT_ESC].value != NULL, "KEY", &key);
    if (rc != 0)
        return rc;
    sop_db *db = NULL;
    sop_txn *txn = NULL;
    sop_stream *h = NULL;
    rc = open_read(path, name, key_arg, &key, &db, &txn, &h);
    uint64_t size = 0, chunks = 0, read = 0;
    uint32_t crc = 0;
    if (rc == 0) {
        int r = sop_stream_stat(h, &size, &chunks);
        if (r != SOP_OK)
            rc = cli_fail(db, r, "reading the value");
    }
    if (rc == 0 && opts[STAT_CRC].value)
        rc = copy_out(db, h, NULL, NULL, &crc, &read);
    if (rc == 0) {
        uint32_t cb = sop_stream_chunk_bytes(h);
        if (opts[STAT_JSON].value) {
            printf("{\"size\":%" PRIu64 ",\"chunks\":%" PRIu64 ",\"chunk_bytes\":%" PRIu32, size,
                   chunks, cb);
            if (opts[STAT_CRC].value)
                printf(",\"crc32c\":\"%08" PRIx32 "\"", crc);
            printf("}\n");
        } else {
            printf("size %" PRIu64 "\nchunks %" PRIu64 "\nchunk_bytes %" PRIu32 "\n", size, chunks,
                   cb);
            if (opts[STAT_CRC].value)
                printf("crc32c %08" PRIx32 "\n", crc);
        }
        rc = cli_flush_stdout();
    }
    sop_txn_rollback(txn);
    rc = cli_close_db(db, rc);
    cli_bytes_free(&key);
    return rc;
}

/* ------------------------------------------------------------------ */
/* rm                                                                 */
/* ------------------------------------------------------------------ */

typedef struct rm_args {
    const char *name, *key_arg;
    const cli_bytes *key;
} rm_args;

static int rm_step(sop_db *db, sop_txn *txn, void *arg)
{
    const rm_args *a = arg;
    sop_store *st = NULL;
    sop_stream *h = NULL;
    int rc = open_stream_store(db, txn, a->name, 0, &st);
    if (rc == 0)
        rc = open_value(db, st, a->name, a->key_arg, a->key, 0, &h);
    int r;
    if (rc == 0 && (r = sop_stream_delete(h)) != SOP_OK)
        rc = cli_fail(db, r, "deleting the value");
    return rc;
}

static int st_rm(const cli_command *self, int argc, char **argv)
{
    cli_opt opts[] = {
        [GET_ESC] = {"escapes", 'e', 0, NULL},
        [GET_NOPTS] = {NULL, 0, 0, NULL},
    };
    char *pos[CLI_POS_MAX];
    int rc = parse(self, argc, argv, opts, pos, 3, "DB STORE KEY");
    if (rc != CLI_CONTINUE)
        return rc;
    const char *path = pos[0], *name = pos[1], *key_arg = pos[2];
    cli_bytes key = {0};
    rc = cli_bytes_from_arg(key_arg, opts[GET_ESC].value != NULL, "KEY", &key);
    if (rc != 0)
        return rc;
    sop_db *db = NULL;
    rc = cli_open_db(path, 0, &db);
    if (rc == 0)
        rc = cli_write_txn(db, STREAM_TXN_MAX_MS, rm_step, &(rm_args){name, key_arg, &key});
    rc = cli_close_db(db, rc);
    cli_bytes_free(&key);
    return rc;
}
