/* porter.h - the Porter stemmer (M. F. Porter, "An algorithm for suffix
 * stripping", 1980), with the two departures of Porter's own reference
 * implementation that SQLite's porter tokenizer also makes (BLI -> BLE for
 * ABLI -> ABLE, and LOGI -> LOG), so that stems match FTS5's. */
#ifndef SOP_SEARCH_PORTER_H
#define SOP_SEARCH_PORTER_H
#include <stddef.h>

/* Stems the lowercase ASCII word w[0..n) in place; returns the new length
 * (<= n). Words of one or two letters, and words with a byte outside
 * a..z, are returned unchanged. */
size_t sop__porter(char *w, size_t n);

#endif
