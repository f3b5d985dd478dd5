/* cluster.h - the cluster suite of sop-bench (bench/cluster.c). */
#ifndef SOP_BENCH_CLUSTER_H
#define SOP_BENCH_CLUSTER_H
int bench_cluster_main(int argc, char **argv);
#endif
