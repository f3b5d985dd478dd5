/* ec.h - the erasure-coding suite of sop-bench (bench/ec.c). */
#ifndef SOP_BENCH_EC_H
#define SOP_BENCH_EC_H

/** `sop-bench ec [options]`: EC over drive folders against no EC. */
int bench_ec_main(int argc, char **argv);

#endif
