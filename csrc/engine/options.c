/* options.c: the engine's numbers by name: the limits the engine can hold, set and read by name. */
#include <limits.h>
#include <stddef.h>
#include <string.h>

#include "engine.h"

/* Not policy (lua/pixflow/defaults.lua holds the defaults and the ranges users may set): what
 * this C code can hold safely, a number within what its C type and the arithmetic on it can
 * take. Seconds kept as long milliseconds, counts as int. spec/options_spec.lua checks that
 * every range of defaults.lua lies inside these. */
enum { K_MS, K_LONG, K_SIZE, K_LLONG, K_INT, K_DBL, K_BOOL };
#define MS_SECS ((double)(LONG_MAX / 2000))
#define LONGS ((double)(LONG_MAX / 2))
#define YEARS 1e9
#define INTS 1e6

typedef struct opt_row {
  pf_opt_limit limit;
  int kind;
  size_t offset;
} opt_row;

#define ROW(name, lo, hi, kind, field) \
  { { name, lo, hi, kind == K_BOOL, kind == K_LONG || kind == K_SIZE || kind == K_LLONG || kind == K_INT }, \
    kind, offsetof(pf_opts, field) }
static const opt_row rows[] = {
  ROW("connect_timeout", 0.001, MS_SECS, K_MS, connect_ms),
  ROW("request_timeout", 0.001, MS_SECS, K_MS, request_ms),
  ROW("download_timeout", 0.001, MS_SECS, K_MS, download_ms),
  ROW("low_speed_bytes", 0, LONGS, K_LONG, low_speed_bytes),
  ROW("low_speed_time", 0, LONGS, K_LONG, low_speed_secs),
  ROW("max_body_bytes", 1, 1e15, K_SIZE, max_body),
  ROW("max_download_bytes", 1, 1e18, K_LLONG, max_download),
  ROW("max_per_host", 1, INTS, K_INT, max_per_host),
  ROW("poll_initial", 0, YEARS, K_DBL, poll_initial),
  ROW("poll_interval", 1e-6, YEARS, K_DBL, poll_interval),
  ROW("poll_max", 1e-6, YEARS, K_DBL, poll_max),
  ROW("poll_backoff", 1, 1e3, K_DBL, poll_backoff),          /* < 1 would shrink polls to 0 */
  ROW("poll_jitter", 0, 1, K_DBL, poll_jitter),
  ROW("poll_min", 1e-6, YEARS, K_DBL, poll_min),
  ROW("poll_rate", 0, 1e9, K_DBL, poll_rate),
  ROW("poll_adaptive", 0, 1, K_BOOL, poll_adaptive),
  ROW("poll_list", 0, 1, K_BOOL, poll_list),
  ROW("max_poll_failures", 1, INTS, K_INT, max_poll_failures),
  ROW("download_attempts", 1, INTS, K_INT, download_attempts),
  ROW("upload_attempts", 1, INTS, K_INT, upload_attempts),
  ROW("submit_attempts", 1, INTS, K_INT, submit_attempts),
  ROW("retry_base", 0, YEARS, K_DBL, retry_base),
  ROW("retry_max", 0, YEARS, K_DBL, retry_max),
  ROW("retry_after_max", 0, YEARS, K_DBL, retry_after_max),
  ROW("task_timeout", 0, YEARS, K_DBL, task_timeout),
  ROW("lookup_delay", 0, YEARS, K_DBL, lookup_delay),
  ROW("lookup_attempts", 1, INTS, K_INT, lookup_attempts),
  ROW("budget", 1e-6, 1e3, K_DBL, budget),
};
#undef ROW
#define NROWS (sizeof rows / sizeof rows[0])

static const opt_row *find(const char *name) {
  for (size_t i = 0; i < NROWS; i++)
    if (strcmp(rows[i].limit.name, name) == 0) return &rows[i];
  return NULL;
}

const pf_opt_limit *pf_opt_limit_at(size_t i) {
  return i < NROWS ? &rows[i].limit : NULL;
}

const pf_opt_limit *pf_opt_limit_find(const char *name) {
  const opt_row *r = find(name);
  return r ? &r->limit : NULL;
}

int pf_opts_set(pf_opts *o, const char *name, double v, pf_err *err) {
  const opt_row *r = find(name);
  if (!r) {
    pf_err_set(err, PF_EK_INVALID, 0, "bad_option", "no engine option '%s'", name);
    return -1;
  }
  if (!(v >= r->limit.lo && v <= r->limit.hi)) {       /* also refuses NaN */
    pf_err_set(err, PF_EK_INVALID, 0, "bad_option",
               "option '%s' is %g, which this core cannot take (%g to %g)", name, v, r->limit.lo,
               r->limit.hi);
    return -1;
  }
  char *p = (char *)o + r->offset;
  switch (r->kind) {
    case K_MS: *(long *)(void *)p = (long)(v * 1000); break;
    case K_LONG: *(long *)(void *)p = (long)v; break;
    case K_SIZE: *(size_t *)(void *)p = (size_t)v; break;
    case K_LLONG: *(long long *)(void *)p = (long long)v; break;
    case K_INT: case K_BOOL: *(int *)(void *)p = (int)v; break;
    default: *(double *)(void *)p = v; break;
  }
  return 0;
}

double pf_opts_get(const pf_opts *o, const char *name) {
  const opt_row *r = find(name);
  if (!r) return 0;
  const char *p = (const char *)o + r->offset;
  switch (r->kind) {
    case K_MS: return (double)*(const long *)(const void *)p / 1000.0;
    case K_LONG: return (double)*(const long *)(const void *)p;
    case K_SIZE: return (double)*(const size_t *)(const void *)p;
    case K_LLONG: return (double)*(const long long *)(const void *)p;
    case K_INT: case K_BOOL: return (double)*(const int *)(const void *)p;
    default: return *(const double *)(const void *)p;
  }
}

int pf_opts_check(const pf_opts *o, pf_err *err) {
  for (size_t i = 0; i < NROWS; i++) {
    double v = pf_opts_get(o, rows[i].limit.name);
    if (!(v >= rows[i].limit.lo && v <= rows[i].limit.hi)) {
      pf_err_set(err, PF_EK_INVALID, 0, "bad_option",
                 "option '%s' is %g, which this core cannot take (%g to %g)", rows[i].limit.name,
                 v, rows[i].limit.lo, rows[i].limit.hi);
      return -1;
    }
  }
  return 0;
}
