/*
 * cluster.c - `sop-bench cluster`: commit throughput of clustered mode
 * (coordination through Redis) against standalone mode (lock file and
 * shared memory) with 1, 2 and 4 processes on one database, and the Redis
 * round trips each commit costs.
 *
 * Each process runs WRITE transactions that upsert one random key of
 * --keys (100-byte values) for --seconds; every commit is durable
 * (SOP_SYNC_FULL). The suite starts its own redis-server on a loopback
 * port (no persistence) unless --redis URL is given.
 *
 * Then, unless --no-ec, the storage side of a cluster: the erasure-coding
 * suite (bench/ec.c: write and read throughput over 4+2 drive folders
 * against no EC, and reads with one drive missing), with --ec-n values.
 *
 *   sop-bench cluster [--seconds S] [--keys N] [--procs 1,2,4] [--redis URL]
 *                     [--dir DIR] [--json FILE] [--ec-n N | --no-ec]
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench_util.h"
#include "cluster.h"
#include "ec.h"

#ifdef SOP_BENCH_NO_SOP
int bench_cluster_main(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "sop-bench cluster: built without the sop engine\n");
    return 2;
}
#else
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "sop/sop.h"

typedef struct result {
    uint64_t commits, conflicts, redis_calls;
} result;

static int ping(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return 0;
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int ok = 0;
    if (connect(fd, (struct sockaddr *)&a, sizeof a) == 0 && write(fd, "PING\r\n", 6) == 6) {
        char buf[16] = {0};
        ok = read(fd, buf, sizeof buf - 1) > 0 && !strncmp(buf, "+PONG", 5);
    }
    close(fd);
    return ok;
}

static pid_t start_redis(const char *dir, int *port)
{
    for (int tries = 0; tries < 20; tries++) {
        *port = 20000 + (int)((uint64_t)(bench_now() * 1e6) % 30000u);
        if (ping(*port))
            continue;
        char p[16];
        snprintf(p, sizeof p, "%d", *port);
        pid_t pid = fork();
        if (pid == 0) {
            execlp("redis-server", "redis-server", "--port", p, "--bind", "127.0.0.1", "--save",
                   "", "--appendonly", "no", "--dir", dir, "--logfile", "", "--daemonize", "no",
                   "--loglevel", "warning", (char *)NULL);
            _exit(127);
        }
        for (int i = 0; i < 300; i++) {
            if (ping(*port))
                return pid;
            if (waitpid(pid, NULL, WNOHANG) == pid)
                break;
            usleep(10000);
        }
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
    }
    bench_die("cannot start redis-server (apt-get install redis-server)");
    return -1;
}

static void opts_for(sop_db_options *o, const char *url)
{
    sop_db_options_init(o);
    if (url) {
        o->mode = SOP_CLUSTERED;
        o->redis_url = url;
    }
}

static void run_proc(const char *path, const char *url, uint64_t keys, double seconds, int seed,
                     int fd)
{
    sop_db_options o;
    opts_for(&o, url);
    sop_db *db;
    if (sop_db_open(path, &o, &db))
        bench_die("open %s: %s", path, sop_db_errmsg(db));
    bench_rng rng;
    bench_rng_seed(&rng, (uint64_t)seed * 7919 + 1);
    result r = {0};
    char val[100];
    memset(val, 'v', sizeof val);
    double end = bench_now() + seconds;
    while (bench_now() < end) {
        sop_txn *t;
        sop_store *s;
        char key[24];
        snprintf(key, sizeof key, "%016" PRIu64, bench_rng_below(&rng, keys));
        sop_val k = {key, 16}, v = {val, sizeof val};
        int rc = sop_txn_begin(db, SOP_TXN_WRITE, 0, &t);
        if (!rc)
            rc = sop_store_open(t, "kv", &s);
        if (!rc)
            rc = sop_upsert(s, &k, &v);
        rc = rc ? (sop_txn_rollback(t), rc) : sop_txn_commit(t);
        if (rc == 0)
            r.commits++;
        else if (rc == SOP_ECONFLICT)
            r.conflicts++;
        else
            bench_die("commit: %s (%s)", sop_strerror(rc), sop_db_errmsg(db));
    }
    sop_db_stat st;
    sop_db_stats(db, &st);
    r.redis_calls = st.redis_calls;
    sop_db_close(db);
    bench_write_all(fd, &r, sizeof r);
}

/* Fills the store, then runs @procs processes; commits per second. */
static double run(const char *root, const char *mode, const char *url, int procs, uint64_t keys,
                  double seconds, double *rtt)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s-%d", root, mode, procs);
    bench_rmtree(path);
    sop_db_options o;
    opts_for(&o, url);
    sop_db *db;
    if (sop_db_open(path, &o, &db))
        bench_die("open %s: %s", path, sop_db_errmsg(db));
    sop_txn *t;
    sop_store *s;
    char val[100];
    memset(val, 'v', sizeof val);
    if (sop_txn_begin(db, SOP_TXN_WRITE, 0, &t) || sop_store_create(t, "kv", NULL, &s))
        bench_die("create: %s", sop_db_errmsg(db));
    for (uint64_t i = 0; i < keys; i++) {
        char key[24];
        snprintf(key, sizeof key, "%016" PRIu64, i);
        sop_val k = {key, 16}, v = {val, sizeof val};
        if (sop_upsert(s, &k, &v))
            bench_die("fill: %s", sop_db_errmsg(db));
    }
    if (sop_txn_commit(t))
        bench_die("fill commit: %s", sop_db_errmsg(db));
    sop_db_close(db);
    int fds[2];
    if (pipe(fds))
        bench_die("pipe: %s", strerror(errno));
    pid_t pid[16];
    double t0 = bench_now();
    for (int i = 0; i < procs; i++) {
        pid[i] = fork();
        if (pid[i] == 0) {
            close(fds[0]);
            run_proc(path, url, keys, seconds, i + 1, fds[1]);
            _exit(0);
        }
    }
    close(fds[1]);
    result tot = {0};
    for (int i = 0; i < procs; i++) {
        result r;
        if (bench_read_all(fds[0], &r, sizeof r))
            bench_die("a worker process failed");
        tot.commits += r.commits;
        tot.conflicts += r.conflicts;
        tot.redis_calls += r.redis_calls;
    }
    for (int i = 0; i < procs; i++)
        waitpid(pid[i], NULL, 0);
    close(fds[0]);
    double took = bench_now() - t0;
    (void)took;
    *rtt = tot.commits ? (double)tot.redis_calls / (double)tot.commits : 0;
    bench_rmtree(path);
    return (double)tot.commits / seconds;
}

int bench_cluster_main(int argc, char **argv)
{
    double seconds = 5;
    uint64_t keys = 100000;
    const char *url = NULL, *dir = NULL, *json = NULL, *procs_s = "1,2,4", *ec_n = "2000";
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            printf("usage: sop-bench cluster [--seconds S] [--keys N] [--procs 1,2,4] "
                   "[--redis URL] [--dir DIR] [--json FILE] [--ec-n N | --no-ec]\n"
                   "  then the ec suite (4+2 drive folders, N values of 64 KiB; "
                   "sop-bench ec --help)\n");
            return 0;
        } else if (!strcmp(a, "--seconds") && v) {
            seconds = atof(v), i++;
        } else if (!strcmp(a, "--keys") && v) {
            keys = bench_parse_count(a, v), i++;
        } else if (!strcmp(a, "--procs") && v) {
            procs_s = v, i++;
        } else if (!strcmp(a, "--redis") && v) {
            url = v, i++;
        } else if (!strcmp(a, "--dir") && v) {
            dir = v, i++;
        } else if (!strcmp(a, "--json") && v) {
            json = v, i++;
        } else if (!strcmp(a, "--ec-n") && v) {
            ec_n = v, i++;
        } else if (!strcmp(a, "--no-ec")) {
            ec_n = NULL;
        } else {
            bench_die("cluster: unknown option %s (see --help)", a);
        }
    }
    if (seconds <= 0)
        bench_die("--seconds must be positive");
    char root[1024];
    snprintf(root, sizeof root, "%s", dir ? dir : "/tmp/sop-bench-cluster");
    bench_mkdirs(root);
    pid_t redis = 0;
    char urlbuf[64];
    if (!url) {
        int port;
        redis = start_redis(root, &port);
        snprintf(urlbuf, sizeof urlbuf, "redis://127.0.0.1:%d", port);
        url = urlbuf;
    }
    FILE *jf = json ? fopen(json, "a") : NULL;
    if (json && !jf)
        bench_die("cannot open %s", json);
    printf("cluster: upsert of 1 random key (of %" PRIu64 ") per durable commit, %.0f s per run, "
           "Redis %s\n\n", keys, seconds, url);
    printf("%-6s %14s %14s %8s %14s\n", "procs", "standalone/s", "clustered/s", "ratio",
           "redis calls/commit");
    char list[64];
    snprintf(list, sizeof list, "%s", procs_s);
    for (char *p = strtok(list, ","); p; p = strtok(NULL, ",")) {
        int n = atoi(p);
        if (n < 1 || n > 16)
            bench_die("--procs: 1 to 16 processes");
        double rtt0, rtt;
        double sa = run(root, "standalone", NULL, n, keys, seconds, &rtt0);
        double cl = run(root, "clustered", url, n, keys, seconds, &rtt);
        printf("%-6d %14.0f %14.0f %7.2fx %14.1f\n", n, sa, cl, sa > 0 ? cl / sa : 0, rtt);
        fflush(stdout);
        if (jf)
            fprintf(jf, "{\"suite\":\"cluster\",\"procs\":%d,\"standalone_cps\":%.1f,"
                        "\"clustered_cps\":%.1f,\"ratio\":%.3f,\"redis_calls_per_commit\":%.2f}\n",
                    n, sa, cl, sa > 0 ? cl / sa : 0, rtt);
    }
    if (jf)
        fclose(jf);
    if (redis) {
        kill(redis, SIGKILL);
        waitpid(redis, NULL, 0);
    }
    if (!ec_n)
        return 0;
    char ecdir[1100];
    snprintf(ecdir, sizeof ecdir, "%s/ec", root);
    printf("\n");
    fflush(stdout);
    char *ec_argv[] = {"ec", "--n", (char *)ec_n, "--drives", "6", "--parity", "2",
                       "--dir", ecdir, NULL};
    return bench_ec_main(9, ec_argv);
}
#endif
