/* cadence.h: the poll policy (when a task is polled), as pure functions of numbers. */
#ifndef PF_CADENCE_H
#define PF_CADENCE_H

#include <stddef.h>

#include "engine.h"

/* Task durations a client remembers, for polling gateways that give no hints. */
#define PF_DURATIONS 64

/* How long a client's tasks took (lower bounds: accepted to the last poll that saw them
 * running), the last PF_DURATIONS of them, and their 5th percentile once there are 16. */
typedef struct pf_durations {
  double d[PF_DURATIONS];
  size_t n;
  double q05;
} pf_durations;

/* Seconds until the next status poll of a task accepted elapsed seconds ago, at progress
 * (-1 unknown) with the gateway's eta (< 0 unknown), after npolls polls; *overdue counts the
 * polls since the hints said it should have ended; q05 is the client's learned floor. */
double pf_poll_delay(const pf_opts *o, double elapsed, int progress, double eta, int npolls,
                     int *overdue, double q05);
/* The first poll after acceptance: poll_initial less up to poll_jitter of it (rnd in [0,1)). */
double pf_poll_first(const pf_opts *o, double rnd);
/* poll_rate as slots (GCRA, no burst): how long a request asked for at now waits for its slot
 * (0: it goes now); *tat is the client's next free slot, moved on. */
double pf_rate_slot(double rate, double now, double *tat);
/* Learn one more duration (seconds). */
void pf_durations_add(pf_durations *d, double seconds);

#endif
