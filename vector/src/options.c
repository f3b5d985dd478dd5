/* options.c - defaults of the vector layer's option structs and the nlist
 * rule. */
#include <math.h>
#include <string.h>

#include "sop/vector.h"

void sop_vstore_options_init(sop_vstore_options *o)
{
    if (!o)
        return;
    memset(o, 0, sizeof *o);
    o->struct_size = sizeof *o;
    o->metric = SOP_METRIC_COSINE;
    o->seed = 42;
}

void sop_vquery_init(sop_vquery *q)
{
    if (!q)
        return;
    memset(q, 0, sizeof *q);
    q->struct_size = sizeof *q;
    q->k = 10;
}

void sop_voptimize_options_init(sop_voptimize_options *o)
{
    if (!o)
        return;
    memset(o, 0, sizeof *o);
    o->struct_size = sizeof *o;
    o->batch = 5000;
}

uint32_t sop_vector_nlist_for(uint64_t n)
{
    if (n < 2)
        return 1;
    /* the power of two nearest to 2 sqrt(n), compared in the log domain */
    double e = log2(2.0 * sqrt((double)n));
    int p = (int)floor(e + 0.5);
    if (p < 0)
        p = 0;
    if (p > 16)
        p = 16;
    return 1u << p;
}
