/* failalloc.h: forced into every C core file of the allocation-failure build (make test-allocfail). */
#ifndef PF_FAILALLOC_H
#define PF_FAILALLOC_H
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

void *pf_test_malloc(size_t n);
void *pf_test_calloc(size_t n, size_t size);
void *pf_test_realloc(void *p, size_t n);
/* Route jansson's allocations through the same counter (called from luaopen_pixflow_core). */
void pf_test_alloc_init(void);

#define malloc(n) pf_test_malloc(n)
#define calloc(n, s) pf_test_calloc((n), (s))
#define realloc(p, n) pf_test_realloc((p), (n))
#endif
