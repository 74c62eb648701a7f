/* reconcile.h: the one rule that settles an unconfirmed submit from a gateway's task list, and
 * the query windows that read such a list within its documented limits. Pure functions. */
#ifndef PF_RECONCILE_H
#define PF_RECONCILE_H

#include <stddef.h>

/* One task of the list: its gateway id and when the gateway created it (Unix seconds; < 0 when
 * the list does not say, and then it counts as a candidate in every window). */
typedef struct pf_listed {
  const char *id;
  double created;
} pf_listed;

typedef enum pf_match_result {
  PF_MATCH_FOUND = 0,        /* exactly one task can only be this submit's */
  PF_MATCH_NONE,             /* the complete list has no task from it: it was never created */
  PF_MATCH_AMBIGUOUS,        /* pixflow cannot tell: it does not guess */
} pf_match_result;

/* The question for one unconfirmed submit: it was sent at from; no other submit to the same
 * gateway account and model was sent until to (the next intent, or now); skew allows for the
 * list's rounding and the two clocks [INFERENCE]. complete: the list was read to its end.
 * closed: the window is over (a later submit exists, or long enough has passed for the list to
 * show the task). rivals: the windows [from, to] of other submits whose answer is unknown too
 * (unconfirmed, or still in flight in some process): a task inside one of them may be theirs.
 * owned(id) says an id already belongs to a known task. */
typedef struct pf_rival { double from, to; } pf_rival;
/* clock: the gateway's clock minus ours lies in [clock_lo, clock_hi] (from its replies' Date
 * headers); clock_known 0: not measured, and then no "none" is concluded (a gateway whose clock
 * is off by more than skew could hide the task outside the window). */
typedef struct pf_match_query {
  double from, to, skew;
  int complete, closed;
  int clock_known;
  double clock_lo, clock_hi;
  const pf_rival *rivals;
  size_t nrivals;
  int (*owned)(const char *id, void *ud);
  void *ud;
} pf_match_query;

/* Decide. *found (FOUND) is the index of the task in items; *ncands the number of candidates
 * (tasks in the window that nobody owns). One candidate that a rival's window holds too is
 * ambiguous; no candidate at all is "none" whatever the rivals (nothing was made in the window). */
pf_match_result pf_match_unconfirmed(const pf_listed *items, size_t n, const pf_match_query *q,
                                     size_t *found, size_t *ncands);

/* DashScope's task list takes start and end times at most 24 hours apart
 * (../shared/providers.md 10.1, [DSa]) in a time zone that is not documented [NOT FOUND]: a
 * query padded by PF_LIST_PAD on both sides covers every zone from UTC-9 to UTC+9 (Beijing is
 * UTC+8); the tasks' own creation times (absolute, in milliseconds) then decide. */
#define PF_LIST_SPAN (24.0 * 3600 - 60)
#define PF_LIST_PAD (9.0 * 3600 + 60)
/* The k-th query window (start, end) that covers [from, to] padded, each at most PF_LIST_SPAN
 * long; returns the number of windows (k beyond it: 0 and nothing set). */
int pf_list_window(double from, double to, int k, double *start, double *end);
/* Pages read per window before the list counts as incomplete. */
#define PF_LIST_MAX_PAGES 1000

#endif
