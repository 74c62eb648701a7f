/* cadence.c: the poll policy, pure functions of numbers: when to poll next, the first poll's jitter, the rate slots, learned durations. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cadence.h"

/* The poll economy (docs/benchmarks-method.md, "The poll policy", and W4).
 *
 * Every schedule trades status requests against the delay between a task's end and pixflow
 * noticing it. A user who polls every poll_interval makes that trade at a price: fixed polling
 * every I costs about E[T]/I requests for a mean delay of I/2, and I is the best fixed interval
 * when a second of mean delay is worth lambda = 2 E[T] / I^2 requests (T: when a task ends).
 * At that price the best schedule for a known distribution of T polls at the density
 * sqrt(lambda h(t) / 2), h the hazard rate of T (Keller's approximation of the optimal
 * inspection schedule), so the gap at elapsed t is I / sqrt(E[T] h(t)): the same trade as the
 * user's interval, at fewer requests, and exactly fixed polling when T has no memory.
 *
 * Without hints, pixflow learns T from this client's own tasks: successes' durations as a
 * log-normal, and the share of tasks that fail early, taken to fail at a uniform point of what
 * would have been their run [INFERENCE: a model, checked by W4, not a gateway's statement].
 * Early failures put a floor under h, so the gaps stay bounded before the likely end.
 *
 * With hints, the poll is aimed at the end the hints predict, and the failures alone set how long
 * a gap may be: their hazard is about share / E[T], so the gap is at most I / sqrt(share). */

#define PRIOR_FAILS 1.0      /* the share of failures before there is any: 1 in 10 [INFERENCE] */
#define PRIOR_ENDS 10.0
#define Z_TAIL 3.09          /* the 99.9th percentile of a normal */

static double clampd(double v, double lo, double hi) {
  if (v > hi) v = hi;
  return v < lo ? lo : v;
}

/* The learned model's hazard of a task's end at elapsed t (per second). */
static double hazard(const pf_durations *d, double t) {
  if (t <= 0) t = 1e-9;
  double s = d->sigma, p = d->fail;
  double z = (log(t) - d->mu) / s;
  double Sd = 0.5 * erfc(z / M_SQRT2);                 /* P(D > t), D the duration */
  double fd = exp(-0.5 * z * z) / (t * s * sqrt(2 * M_PI));
  /* E[1/D; D > t]: a failure's end (at U*D, U uniform) has this density, and
   * P(U*D > t) = P(D > t) - t E[1/D; D > t] */
  double inv_above = exp(-d->mu + 0.5 * s * s) * 0.5 * erfc((z + s) / M_SQRT2);
  double f = (1 - p) * fd + p * inv_above;
  double S = (1 - p) * Sd + p * (Sd - t * inv_above);
  if (S < 1e-12) S = 1e-12;
  return f / S;
}

/* I / sqrt(E[T] h(t)), or hi where h is 0. */
static double gap_at(const pf_opts *o, const pf_durations *d, double t, double hi) {
  double h = hazard(d, t);
  return h > 0 ? o->poll_interval / sqrt(d->mean_end * h) : hi;
}
/* The gap after a poll at elapsed t under the learned model, within lo..hi: g = gap_at(t + g/2),
 * h taken at the middle of the gap (it rises steeply before the usual durations), solved by a
 * damped fixed-point iteration to well under a millisecond. */
static double learned_gap(const pf_opts *o, const pf_durations *d, double t, double lo, double hi) {
  double g = clampd(gap_at(o, d, t, hi), lo, hi);
  for (int i = 0; i < 8; i++) g = clampd(0.5 * (g + gap_at(o, d, t + g / 2, hi)), lo, hi);
  return g;
}

static int learned(const pf_opts *o, const pf_durations *d) {
  return o->poll_adaptive && d && d->ready;
}

/* The longest gap while the hints say the task runs: failures come unannounced. */
static double failure_gap(const pf_opts *o, const pf_durations *d) {
  double share = d && d->n ? d->fail : PRIOR_FAILS / PRIOR_ENDS;
  return share > 0 ? o->poll_interval / sqrt(share) : o->poll_max;
}

/* With hints (poll_adaptive): the gateway's progress rate predicts the finish (progress p% after
 * e seconds leaves e(100-p)/p), or, before there is progress to go by, its own estimate (eta), of
 * which only half is waited, estimates being rough; the poll is aimed at that time, but no
 * further than failure_gap. A task that outlives its prediction is polled poll_min apart,
 * growing by half each time up to poll_interval. Without hints: the learned schedule once there
 * is one; otherwise every poll_interval. Past the learned 99.9th percentile (an outlier the model
 * says nothing about), or past ten minutes while nothing is learned, and always with
 * poll_adaptive off, poll_interval is multiplied by poll_backoff for every three polls so far.
 * Every gap lies within poll_min..poll_max (poll_max wins). Jitter only spreads the first poll. */
double pf_poll_delay(const pf_opts *o, double elapsed, int progress, double eta, int npolls,
                     int *overdue, const pf_durations *d) {
  double lo = o->poll_min < o->poll_max ? o->poll_min : o->poll_max, hi = o->poll_max;
  double left = -1;
  if (o->poll_adaptive) {
    if (progress >= 10 && progress < 100 && elapsed > 0)
      left = elapsed * (100 - progress) / progress;
    else if (eta >= 0)
      left = eta / 2;
  }
  if (left >= 0) {
    double g;
    if (left >= o->poll_min) {
      *overdue = 0;
      g = left;
      double f = failure_gap(o, d);
      if (g > f) g = f;
    } else {
      g = o->poll_min * pow(1.5, (double)(*overdue)++);
      if (g > o->poll_interval) g = o->poll_interval;
    }
    return clampd(g, lo, hi);
  }
  if (learned(o, d) && elapsed <= d->tail) return learned_gap(o, d, elapsed, lo, hi);
  double g = o->poll_interval;
  if (!o->poll_adaptive || elapsed > (learned(o, d) ? d->tail : 600))
    g *= pow(o->poll_backoff, (double)(npolls / 3));
  return clampd(g, lo, hi);
}

double pf_poll_first(const pf_opts *o, const pf_durations *d, double rnd) {
  double g = o->poll_initial;
  if (learned(o, d)) {
    double lo = o->poll_min < o->poll_max ? o->poll_min : o->poll_max;
    double first = learned_gap(o, d, 0, lo, o->poll_max);
    if (first > g) g = first;
  }
  return g - g * o->poll_jitter * rnd;
}

/* The slots follow GCRA with no burst: one request every 1/rate seconds, so that no second,
 * wherever it starts, holds more than rate requests (a gateway's per-second limit). */
double pf_rate_slot(double rate, double now, double *tat) {
  double step = 1 / rate;
  double slot = *tat > now ? *tat : now;
  *tat = slot + step;
  return slot - now;
}

/* Refit the model from the window: the mean and spread of the successes' log durations, again
 * without those beyond 3 sigma of the first fit (a task stuck in a queue for an hour is not the
 * distribution); the failures' share, with the prior. */
static void refit(pf_durations *d) {
  size_t n = d->n < PF_DURATIONS ? d->n : PF_DURATIONS;
  double mu = 0, sd = 0, fails = 0;
  for (int pass = 0; pass < 2; pass++) {
    double s = 0, s2 = 0, k = 0;
    fails = 0;
    for (size_t i = 0; i < n; i++) {
      double x = d->end[i];
      if (x == PF_FAILED_END) {
        fails++;
        continue;
      }
      if (pass == 1 && fabs(x - mu) > 3 * sd) continue;
      s += x;
      s2 += x * x;
      k++;
    }
    if (pass == 0) d->nok = (size_t)k;
    if (k < 2) break;
    mu = s / k;
    double var = (s2 - s * s / k) / (k - 1);
    sd = var > 0 ? sqrt(var) : 0;
  }
  d->fail = (fails + PRIOR_FAILS) / ((double)n + PRIOR_ENDS);
  d->ready = d->nok >= PF_DURATIONS_READY;
  if (!d->ready) return;
  if (sd < 0.05) sd = 0.05;   /* every task alike: keep the hazard finite */
  d->mu = mu;
  d->sigma = sd;
  double mean = exp(mu + 0.5 * sd * sd);
  d->mean_end = (1 - d->fail) * mean + d->fail * mean / 2;
  d->tail = exp(mu + Z_TAIL * sd);
}

void pf_durations_add(pf_durations *d, double lo, double hi) {
  if (lo < 0) lo = 0;
  double seconds = (lo + hi) / 2;   /* the end fell somewhere in (lo, hi] */
  if (!(seconds > 0)) return;
  d->end[d->n++ % PF_DURATIONS] = log(seconds);
  refit(d);
}

void pf_durations_fail(pf_durations *d) {
  d->end[d->n++ % PF_DURATIONS] = PF_FAILED_END;
  refit(d);
}
