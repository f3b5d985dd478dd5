/*
 * main.c - `sop` command-line tool: global options, dispatch and help.
 *
 * To add a command, add a row to cli_top below (and declare its handler or
 * subcommand table in cli.h).
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"

static int cmd_help(const cli_command *self, int argc, char **argv);

/* kv, vector, search and stream are groups: their subcommands live in
 * cmd_kv.c, cmd_vector.c, cmd_search.c and cmd_stream.c. load, ask and chat live in cmd_agent.c. */
static const cli_command cli_top[] = {
    {"kv", NULL, "put, get, delete and scan the items of a store",
     "Usage: sop kv <subcommand> [options] DB STORE ...\n"
     "\n"
     "Reads and writes the items of a store. DB is the database directory,\n"
     "STORE a store name ([A-Za-z0-9_.-], up to 200 bytes).\n",
     cli_kv_commands},
    {"vector", NULL, "load, query and index vector stores",
     "Usage: sop vector <subcommand> [options] DB STORE ...\n"
     "\n"
     "Vector stores (IVF indexes on the database's B-trees). Vectors are read\n"
     "from .fvecs files (per vector: int32 d, then d float32, little-endian).\n",
     cli_vector_commands},
    {"search", NULL, "index and query BM25 text indexes",
     "Usage: sop search <subcommand> [options] DB INDEX ...\n"
     "\n"
     "Text indexes (BM25 on the database's B-trees). Documents are read from\n"
     "JSON Lines files, queries from TSV files or the command line.\n",
     cli_search_commands},
    {"stream", NULL, "store and read files of any size as streamed values",
     "Usage: sop stream <subcommand> [options] DB STORE KEY ...\n"
     "\n"
     "Streaming stores hold values of any size, written and read in chunks\n"
     "(one chunk in memory at a time), each put or get in one transaction.\n",
     cli_stream_commands},
    {"load", cmd_load, "load a fallback JSON file into a knowledge base", cli_load_usage, NULL},
    {"ask", cmd_ask, "ask an agent a question (the answer streamed, or --json)", cli_ask_usage,
     NULL},
    {"chat", cmd_chat, "ask an agent questions, one a line of stdin", cli_chat_usage, NULL},
    {"stats", cmd_stats, "print database figures and the item count of every store",
     "Usage: sop stats DB [--json]\n"
     "\n"
     "Prints the figures of sop_db_stats() and, for every store, its name and\n"
     "number of items.\n"
     "\n"
     "Options:\n"
     "  --json        one JSON object instead of text lines\n",
     NULL},
    {"repair", cmd_repair, "rebuild the shards of missing or damaged drives (erasure coding)",
     "Usage: sop --drives D1,D2,... --parity M repair DB\n"
     "\n"
     "Verifies every stripe of every segment and rebuilds the shard files of\n"
     "missing, corrupt or replaced drive folders from the others, while other\n"
     "processes keep using the database. Prints what it checked and rebuilt.\n"
     "Exit status 0 when every stripe is readable, 1 otherwise.\n",
     NULL},
    {"check", cmd_check, "run a full integrity check of a database",
     "Usage: sop check DB\n"
     "\n"
     "Checks every node image's CRC, key order, child links, item counts,\n"
     "registry entries and space accounting; then every vector store, text\n"
     "index and knowledge base against its own records (sop_vstore_check,\n"
     "sop_text_check, sop_kb_check). Prints each problem found, then \"ok\"\n"
     "or the number of problems. Exit status 0 only when the database is\n"
     "clean, 1 otherwise.\n",
     NULL},
    {"help", cmd_help, "show the help of a command",
     "Usage: sop help [COMMAND [SUBCOMMAND]]\n", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static const cli_command cli_root = {
    "sop", NULL, "SOP for C command-line tool",
    "Usage: sop [global options] <command> [options] [arguments]\n"
    "       sop <command> --help\n"
    "       sop --version\n"
    "\n"
    "Global options (accepted before the command or among its options):\n"
    "  --sync full|none  durability of commits: full (default) syncs each\n"
    "                    commit; none does not (bulk loads)\n"
    "  --busy-wait MS    when another process has the database open, retry\n"
    "                    for up to MS milliseconds (default 5000; 0: fail)\n"
    "  --redis URL       clustered mode: processes on any host coordinate\n"
    "                    through Redis (redis://[:password@]host[:port][/db])\n"
    "  --drives D1,D2,.. erasure coding: segments striped over these folders\n"
    "  --parity M        with --drives: M of them hold parity (default 1)\n"
    "  --replica DIR     replicated metadata: DIR mirrors the database folder\n"
    "  -h, --help        show help\n"
    "  -V, --version     show the version\n"
    "\n"
    "Exit status: 0 success, 1 error, 2 usage error.\n",
    cli_top,
};

static int print_version(void)
{
    printf("sop %d.%d.%d (libsop %s)\n", SOP_VERSION_MAJOR, SOP_VERSION_MINOR, SOP_VERSION_PATCH,
           sop_version(NULL, NULL, NULL));
    return cli_flush_stdout();
}

static const cli_command *find_row(const cli_command *table, const char *name)
{
    for (const cli_command *c = table; c && c->name; c++) {
        if (strcmp(c->name, name) == 0) {
            return c;
        }
    }
    return NULL;
}

static void cmd_append(const char *name)
{
    size_t len = strlen(cli_g.cmd);
    snprintf(cli_g.cmd + len, sizeof cli_g.cmd - len, "%s%s", len ? " " : "", name);
}

/* Options before a (sub)command name: help, version (top level only) and
 * global options. Advances *ip past them. @return -1 to go on, or an exit
 * status. */
static int leading_options(const cli_command *cmd, int argc, char **argv, int *ip)
{
    int i = *ip;
    while (i < argc && argv[i][0] == '-' && argv[i][1] != '\0') {
        const char *a = argv[i];
        if (strcmp(a, "--") == 0) {
            i++;
            break;
        }
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            cli_print_help(stdout, cmd);
            return cli_flush_stdout();
        }
        if (cmd == &cli_root && (strcmp(a, "-V") == 0 || strcmp(a, "--version") == 0)) {
            return print_version();
        }
        if (strncmp(a, "--", 2) == 0) {
            char name_buf[64];
            const char *eq = strchr(a + 2, '=');
            size_t nlen = eq ? (size_t)(eq - (a + 2)) : strlen(a + 2);
            if (nlen < sizeof name_buf) {
                memcpy(name_buf, a + 2, nlen);
                name_buf[nlen] = '\0';
                const char *val = eq ? eq + 1 : (i + 1 < argc ? argv[i + 1] : NULL);
                int g = cli_global_option(name_buf, val);
                if (g < 0) {
                    return CLI_EXIT_USAGE;
                }
                if (g > 0) {
                    i += eq ? 1 : 2;
                    continue;
                }
            }
        }
        return cli_usage("unknown option '%s'", a);
    }
    *ip = i;
    return -1;
}

static int cmd_help(const cli_command *self, int argc, char **argv)
{
    (void)self;
    const cli_command *cmd = &cli_root;
    for (int i = 1; i < argc; i++) {
        const cli_command *next = find_row(cmd->sub, argv[i]);
        if (!next) {
            return cli_usage("unknown command '%s'", argv[i]);
        }
        cmd = next;
    }
    cli_print_help(stdout, cmd);
    return cli_flush_stdout();
}

int cli_dispatch(const cli_command *table, int argc, char **argv)
{
    const char *name = argv[0];
    const cli_command *cmd = find_row(table, name);
    if (!cmd) {
        fprintf(stderr, "%s: %s%sunknown command '%s'\n", cli_g.prog, cli_g.cmd,
                cli_g.cmd[0] ? ": " : "", name);
        fprintf(stderr, "Try '%s%s%s --help'.\n", cli_g.prog, cli_g.cmd[0] ? " " : "",
                cli_g.cmd);
        return CLI_EXIT_USAGE;
    }
    cmd_append(cmd->name);
    if (cmd->run) {
        return cmd->run(cmd, argc, argv);
    }
    /* A group: global options may come before the subcommand. */
    int i = 1;
    int rc = leading_options(cmd, argc, argv, &i);
    if (rc >= 0) {
        return rc;
    }
    if (i >= argc) {
        fprintf(stderr, "%s: %s: missing subcommand\n\n", cli_g.prog, cli_g.cmd);
        cli_print_help(stderr, cmd);
        return CLI_EXIT_USAGE;
    }
    return cli_dispatch(cmd->sub, argc - i, argv + i);
}

int main(int argc, char **argv)
{
    cli_g.prog = "sop";
    cli_g.sync = SOP_SYNC_FULL;
    cli_g.busy_wait_ms = 5000;
    cli_g.cmd[0] = '\0';
    /* A closed pipe (sop kv scan ... | head) shows up as a write error that
     * ends the command quietly, with the database closed properly. */
    signal(SIGPIPE, SIG_IGN);

    int i = 1;
    int rc = leading_options(&cli_root, argc, argv, &i);
    if (rc >= 0) {
        return rc;
    }
    if (i >= argc) {
        cli_print_help(stderr, &cli_root);
        return CLI_EXIT_USAGE;
    }
    return cli_dispatch(cli_top, argc - i, argv + i);
}
