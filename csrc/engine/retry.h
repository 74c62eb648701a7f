/* retry.h: the one retry policy of the engine: what is retried, after how long, how often. */
#ifndef PF_RETRY_H
#define PF_RETRY_H

#include <curl/curl.h>

#include "engine.h"
#include "error.h"


/* What a request was for: each has its own attempt limit and its own rule for what may be
 * retried (a submit only when it provably never reached the gateway). */
typedef enum pf_rkind { PF_R_SUBMIT = 0, PF_R_STATUS, PF_R_UPLOAD, PF_R_DOWNLOAD } pf_rkind;

/* Delay before attempt number `failures` + 1, after `failures` consecutive failures (>= 1):
 * full jitter over an exponential ceiling, min(max, base * 2^(failures-1)) * rnd, with rnd in
 * [0, 1); a Retry-After (>= 0) replaces it, capped at after_max. */
double pf_retry_delay(double base, double max, double after_max, int failures, double retry_after,
                      double rnd);

/* Should the request that failed with e be sent again, this being its `failures`-th failure?
 * For a submit, the caller says whether the request provably never reached the gateway. */
int pf_retry_should(const pf_opts *o, pf_rkind kind, const pf_err *e, int failures,
                    int never_sent);

/* The delay for these options and error (rnd in [0,1): the jitter). */
double pf_retry_after_failure(const pf_opts *o, int failures, const pf_err *e, double rnd);

/* Set e->retry_after from a reply's Retry-After (header, a number of seconds or < 0 for none;
 * else a JSON body's) as the wait pixflow applies: capped at retry.after_max, the message saying
 * so when the server asked for longer. */
void pf_retry_after_set(const pf_opts *o, pf_err *e, double header, const char *body,
                        size_t len);

/* Retry-After given in a JSON error body ({"retry_after": s} at the top or under "error"),
 * or < 0. [INFERENCE] none of the six gateways documents one; OpenAI-style services send it. */
double pf_body_retry_after(const char *body, size_t len);

#endif
