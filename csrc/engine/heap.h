/* heap.h: a binary min-heap of due times, so a pump only looks at what is due. */
#ifndef PF_HEAP_H
#define PF_HEAP_H

#include <stddef.h>

#define PF_NOT_QUEUED ((size_t)-1)

/* Embedded in whatever is scheduled; idx is PF_NOT_QUEUED when not in the heap. */
typedef struct pf_timer {
  double due;
  size_t idx;
} pf_timer;

typedef struct pf_heap {
  pf_timer **items;
  size_t n, cap;
} pf_heap;

void pf_heap_init(pf_heap *h);
void pf_heap_free(pf_heap *h);
/* Insert or move t to due. Returns 0, or -1 on allocation failure (t unchanged). */
int pf_heap_set(pf_heap *h, pf_timer *t, double due);
void pf_heap_remove(pf_heap *h, pf_timer *t);
/* The earliest timer, or NULL. */
pf_timer *pf_heap_top(const pf_heap *h);

#endif
