/* cadence.c: the poll policy, pure functions of numbers: when to poll next, the first poll's jitter, the rate slots, learned durations. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cadence.h"

/* Delay before the next status poll (the poll economy: docs/benchmarks.md, W4).
 * With hints (poll_adaptive): the gateway's progress rate predicts the finish (progress p% after
 * e seconds leaves e(100-p)/p), or, before there is progress to go by, its own estimate (eta),
 * of which only half is waited, estimates being rough; the poll is aimed at that time, within
 * poll_min..poll_max. A task that outlives its prediction is polled poll_min apart, growing by
 * half each time up to poll_interval. Without hints: every poll_interval for the first ten
 * minutes, then backing off by poll_backoff every three polls up to poll_max. Jitter only spreads
 * the first poll (pf_poll_first): tasks submitted together then stay apart. */
double pf_poll_delay(const pf_opts *o, double elapsed, int progress, double eta, int npolls,
                     int *overdue, double q05) {
  double left = -1;
  if (o->poll_adaptive) {
    if (progress >= 10 && progress < 100 && elapsed > 0)
      left = elapsed * (100 - progress) / progress;
    else if (eta >= 0)
      left = eta / 2;
  }
  if (left >= 0) {
    double d;
    if (left >= o->poll_min) {
      *overdue = 0;
      d = left;
    } else {
      d = o->poll_min * pow(1.5, (double)(*overdue)++);
      if (d > o->poll_interval) d = o->poll_interval;
    }
    if (d < o->poll_min) d = o->poll_min;
    return d > o->poll_max ? o->poll_max : d;
  }
  double d = o->poll_interval;
  if (!o->poll_adaptive || elapsed > 600)
    d *= pow(o->poll_backoff, (double)(npolls / 3));
  /* no hints, but this client's earlier tasks: 95% of them ran at least duration_q05, so the
   * polls before that are skipped */
  if (o->poll_adaptive && q05 > elapsed + d) d = q05 - elapsed;
  return d > o->poll_max ? o->poll_max : d;
}

double pf_poll_first(const pf_opts *o, double rnd) {
  double d = o->poll_initial;
  return d - d * o->poll_jitter * rnd;
}

/* The slots follow GCRA with no burst: one request every 1/rate seconds, so that no second,
 * wherever it starts, holds more than rate requests (a gateway's per-second limit). */
double pf_rate_slot(double rate, double now, double *tat) {
  double step = 1 / rate;
  double slot = *tat > now ? *tat : now;
  *tat = slot + step;
  return slot - now;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

void pf_durations_add(pf_durations *d, double seconds) {
  d->d[d->n++ % PF_DURATIONS] = seconds;
  size_t n = d->n < PF_DURATIONS ? d->n : PF_DURATIONS;
  if (n < 16) return;
  double sorted[PF_DURATIONS];
  memcpy(sorted, d->d, n * sizeof sorted[0]);
  qsort(sorted, n, sizeof sorted[0], cmp_double);
  d->q05 = sorted[n / 20];
}
