/* killpoint.c - see killpoint.h. */
#include "killpoint.h"
#ifdef SOP_TESTING
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

static pthread_once_t kp_once = PTHREAD_ONCE_INIT;
static char kp_name[128];
static long kp_nth;
static atomic_long kp_hits;

static void kp_init(void)
{
    const char *e = getenv("SOP_KILLPOINT");
    if (!e || !*e)
        return;
    strncpy(kp_name, e, sizeof kp_name - 1);
    char *colon = strrchr(kp_name, ':');
    kp_nth = 1;
    /* names contain ':' themselves ("commit:after_sync"): a suffix counts
     * as nth only when it is all digits */
    if (colon && colon[1] && strspn(colon + 1, "0123456789") == strlen(colon + 1)) {
        kp_nth = atol(colon + 1);
        *colon = 0;
    }
}

void sop__killpoint(const char *name)
{
    pthread_once(&kp_once, kp_init);
    if (!kp_name[0] || strcmp(kp_name, name) != 0)
        return;
    if (atomic_fetch_add(&kp_hits, 1) + 1 == kp_nth)
        raise(SIGKILL);
}
#else
typedef int sop__killpoint_unused;
#endif
