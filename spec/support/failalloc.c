/* failalloc.c: the allocation counter of the allocation-failure build: PF_FAIL_AT=N makes the
 * N-th allocation of the C core (its own and jansson's) return NULL, once. At exit it prints how
 * many allocations the run made, so the driver knows when N has passed the last one. */
#include <stdio.h>
#include <stdlib.h>

#include <jansson.h>

/* this file is compiled with failalloc.h forced in too: here the names mean the real ones */
#undef malloc
#undef calloc
#undef realloc

static unsigned long count, fail_at;
static int ready;

static void report(void) {
  const char *out = getenv("PF_FAIL_REPORT");
  FILE *f = out ? fopen(out, "w") : NULL;
  if (f) {
    fprintf(f, "%lu\n", count);
    fclose(f);
  }
}

static int fail_now(void) {
  if (!ready) {
    ready = 1;
    const char *s = getenv("PF_FAIL_AT");
    fail_at = s ? strtoul(s, NULL, 10) : 0;
    atexit(report);
  }
  return ++count == fail_at;
}

void *pf_test_malloc(size_t n) { return fail_now() ? NULL : malloc(n); }
void *pf_test_calloc(size_t n, size_t size) { return fail_now() ? NULL : calloc(n, size); }
void *pf_test_realloc(void *p, size_t n) { return fail_now() ? NULL : realloc(p, n); }

void pf_test_alloc_init(void);
void pf_test_alloc_init(void) { json_set_alloc_funcs(pf_test_malloc, free); }
