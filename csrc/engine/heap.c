/* heap.c: binary min-heap of pf_timer, O(log n) insert, move and remove. */
#include <stdlib.h>

#include "heap.h"

void pf_heap_init(pf_heap *h) {
  h->items = NULL;
  h->n = h->cap = 0;
}

void pf_heap_free(pf_heap *h) {
  for (size_t i = 0; i < h->n; i++) h->items[i]->idx = PF_NOT_QUEUED;
  free(h->items);
  pf_heap_init(h);
}

static void place(pf_heap *h, size_t i, pf_timer *t) {
  h->items[i] = t;
  t->idx = i;
}

static void sift_up(pf_heap *h, size_t i) {
  pf_timer *t = h->items[i];
  while (i > 0) {
    size_t p = (i - 1) / 2;
    if (h->items[p]->due <= t->due) break;
    place(h, i, h->items[p]);
    i = p;
  }
  place(h, i, t);
}

static void sift_down(pf_heap *h, size_t i) {
  pf_timer *t = h->items[i];
  for (;;) {
    size_t l = 2 * i + 1, r = l + 1, m = i;
    double md = t->due;
    if (l < h->n && h->items[l]->due < md) { m = l; md = h->items[l]->due; }
    if (r < h->n && h->items[r]->due < md) m = r;
    if (m == i) break;
    place(h, i, h->items[m]);
    i = m;
  }
  place(h, i, t);
}

int pf_heap_set(pf_heap *h, pf_timer *t, double due) {
  if (t->idx != PF_NOT_QUEUED) {
    double old = t->due;
    t->due = due;
    if (due < old) sift_up(h, t->idx);
    else sift_down(h, t->idx);
    return 0;
  }
  if (h->n == h->cap) {
    size_t ncap = h->cap ? h->cap * 2 : 16;
    pf_timer **ni = realloc(h->items, ncap * sizeof *ni);
    if (!ni) return -1;
    h->items = ni;
    h->cap = ncap;
  }
  t->due = due;
  place(h, h->n++, t);
  sift_up(h, t->idx);
  return 0;
}

void pf_heap_remove(pf_heap *h, pf_timer *t) {
  size_t i = t->idx;
  if (i == PF_NOT_QUEUED || i >= h->n) return;
  t->idx = PF_NOT_QUEUED;
  h->n--;
  if (i == h->n) return;
  pf_timer *last = h->items[h->n];
  place(h, i, last);
  if (i > 0 && h->items[(i - 1) / 2]->due > last->due) sift_up(h, i);
  else sift_down(h, i);
}

pf_timer *pf_heap_top(const pf_heap *h) {
  return h->n ? h->items[0] : NULL;
}
