/* cadence.h: the poll policy (when a task is polled), as pure functions of numbers. */
#ifndef PF_CADENCE_H
#define PF_CADENCE_H

#include <stddef.h>

#include "engine.h"

/* How a client's tasks ended, the last PF_DURATIONS of them, for polling gateways that give no
 * hints (docs/benchmarks-method.md, "The poll policy"). */
#define PF_DURATIONS 128
/* Successes in the window before the learned schedule replaces fixed polling. */
#define PF_DURATIONS_READY 16

/* The window holds each end's log duration (a success) or PF_FAILED_END (a failure or a
 * moderation the gateway reported). From it, refreshed by every end: a log-normal fit of the
 * successes (mu, sigma of the log durations, outliers beyond 3 sigma left out), the share of
 * ends that failed (with a prior of one in ten, [INFERENCE]), and what follows. */
#define PF_FAILED_END (-1e300)
typedef struct pf_durations {
  double end[PF_DURATIONS];
  size_t n;                  /* ends recorded, ever */
  size_t nok;                /* successes in the window */
  int ready;                 /* nok >= PF_DURATIONS_READY: the fit below is used */
  double mu, sigma;          /* log-normal fit of the successes' durations (seconds) */
  double fail;               /* share of tasks that fail early, at a uniform point of their run */
  double mean_end;           /* E[end] under the model: the price of delay (cadence.c) */
  double tail;               /* the 99.9th percentile of durations: beyond, a task is an outlier */
} pf_durations;

/* Seconds until the next status poll of a task accepted elapsed seconds ago, at progress
 * (-1 unknown) with the gateway's eta (< 0 unknown), after npolls polls; *overdue counts the
 * polls since the hints said it should have ended; learned is the client's window (or NULL).
 * Always within poll_min..poll_max. */
double pf_poll_delay(const pf_opts *o, double elapsed, int progress, double eta, int npolls,
                     int *overdue, const pf_durations *learned);
/* The first poll after acceptance: poll_initial, or the learned schedule's first poll when that
 * is later (never past poll_max), less up to poll_jitter of it (rnd in [0,1)). */
double pf_poll_first(const pf_opts *o, const pf_durations *learned, double rnd);
/* poll_rate as slots (GCRA, no burst): how long a request asked for at now waits for its slot
 * (0: it goes now); *tat is the client's next free slot, moved on. */
double pf_rate_slot(double rate, double now, double *tat);
/* Learn one more success: last seen running lo seconds after acceptance, seen done at hi. */
void pf_durations_add(pf_durations *d, double lo, double hi);
/* Learn one more failure (or moderation) reported by the gateway. */
void pf_durations_fail(pf_durations *d);

#endif
