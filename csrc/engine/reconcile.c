/* reconcile.c: settling an unconfirmed submit from a task list, and the list's query windows. */
#include <math.h>

#include "reconcile.h"

pf_match_result pf_match_unconfirmed(const pf_listed *items, size_t n, const pf_match_query *q,
                                     size_t *found, size_t *ncands) {
  size_t cands = 0, idx = 0;
  /* times in the list are the gateway's: the window moves by its clock's offset (and widens by
   * how well the offset is known) */
  double lo = q->clock_known ? q->clock_lo : 0, hi = q->clock_known ? q->clock_hi : 0;
  if (!(lo <= hi)) lo = hi = 0;
  double from = q->from + lo - q->skew, to = q->to + hi + q->skew;
  for (size_t i = 0; i < n; i++) {
    const pf_listed *x = &items[i];
    if (!x->id) continue;
    /* a task whose creation time the list does not give may be this submit's */
    int known_time = x->created >= 0;
    if (known_time && !(x->created >= from && x->created <= to)) continue;
    if (q->owned && q->owned(x->id, q->ud)) continue;
    if (cands == 0) idx = i;
    cands++;
  }
  if (ncands) *ncands = cands;
  /* a list cut short may hide the task: nothing is decided from it */
  if (!q->complete) return PF_MATCH_AMBIGUOUS;
  if (cands == 0) return q->closed && q->clock_known ? PF_MATCH_NONE : PF_MATCH_AMBIGUOUS;
  if (cands != 1) return PF_MATCH_AMBIGUOUS;
  double c = items[idx].created;
  for (size_t r = 0; r < q->nrivals; r++)
    if (c < 0 || (c >= q->rivals[r].from + lo - q->skew && c <= q->rivals[r].to + hi + q->skew))
      return PF_MATCH_AMBIGUOUS;
  if (found) *found = idx;
  return PF_MATCH_FOUND;
}

int pf_list_window(double from, double to, int k, double *start, double *end) {
  double a = from - PF_LIST_PAD, b = to + PF_LIST_PAD;
  if (!(b >= a)) b = a;
  int count = (int)ceil((b - a) / PF_LIST_SPAN);
  if (count < 1) count = 1;
  if (k < 0 || k >= count) return count;
  *start = a + k * PF_LIST_SPAN;
  *end = k == count - 1 ? b : *start + PF_LIST_SPAN;
  return count;
}
