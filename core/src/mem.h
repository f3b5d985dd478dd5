/* mem.h - every allocation of the library goes through these (see
 * sop_set_allocator()), so tests can fail the Nth one. */
#ifndef SOP_MEM_H
#define SOP_MEM_H
#include <stddef.h>

void *sop__malloc(size_t n);
void *sop__calloc(size_t count, size_t size);
void *sop__realloc(void *p, size_t n);
void sop__free(void *p);
char *sop__strdup(const char *s);
void *sop__memdup(const void *p, size_t n);

/* Room for @need elements of @size bytes in @arr (capacity *cap, doubled
 * from @min as needed). Returns the (maybe moved) array, or NULL with @arr
 * untouched when out of memory. */
void *sop__grow(void *arr, size_t *cap, size_t need, size_t size, size_t min);

#endif
