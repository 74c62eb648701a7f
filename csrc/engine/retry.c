/* retry.c: the one retry policy of the engine, pure functions of numbers: what is retried, after how long, how often. */
#include <math.h>
#include <string.h>

#include <jansson.h>

#include "retry.h"

double pf_retry_delay(double base, double max, double after_max, int failures, double retry_after,
                      double rnd) {
  if (retry_after >= 0) return retry_after < after_max ? retry_after : after_max;
  if (failures < 1) failures = 1;
  double ceiling = base * pow(2.0, (double)(failures - 1));
  if (!(ceiling <= max)) ceiling = max;        /* also catches an overflow to inf */
  if (rnd < 0) rnd = 0;
  if (rnd >= 1) rnd = 0.999999;
  return ceiling * rnd;
}

double pf_retry_after_failure(const pf_opts *o, int failures, const pf_err *e, double rnd) {
  return pf_retry_delay(o->retry_base, o->retry_max, o->retry_after_max, failures,
                        e->retry_after, rnd);
}

int pf_retry_should(const pf_opts *o, pf_rkind kind, const pf_err *e, int failures,
                    int never_sent) {
  switch (kind) {
    case PF_R_SUBMIT:
      /* once the body may have been received, a second submit could be a second charge: only
       * a request that never arrived, or one the gateway turned away before accepting it
       * (429, 503), is sent again */
      if (!(never_sent || e->kind == PF_EK_RATE_LIMIT ||
            (e->kind == PF_EK_PROVIDER && e->status == 503)))
        return 0;
      return e->retryable && failures < o->submit_attempts;
    case PF_R_STATUS:
      /* a status read is free and idempotent: a garbled reply is worth another look too */
      return (e->retryable || e->kind == PF_EK_PROTOCOL) && failures < o->max_poll_failures;
    case PF_R_UPLOAD:
      return e->retryable && failures < o->upload_attempts;
    case PF_R_DOWNLOAD:
      return e->retryable && failures < o->download_attempts;
  }
  return 0;
}

static double number_at(json_t *o, const char *k1, const char *k2) {
  json_t *v = json_object_get(o, k1);
  if (!v && k2) v = json_object_get(o, k2);
  if (json_is_number(v)) return json_number_value(v);
  if (json_is_string(v)) {
    char *end;
    double d = strtod(json_string_value(v), &end);
    if (end != json_string_value(v) && *end == '\0') return d;
  }
  return -1;
}

double pf_body_retry_after(const char *body, size_t len) {
  if (!body || len == 0 || len > 65536 || body[0] != '{') return -1;
  json_t *root = json_loadb(body, len, 0, NULL);
  if (!json_is_object(root)) {
    json_decref(root);
    return -1;
  }
  double d = number_at(root, "retry_after", "retryAfter");
  json_t *err = json_object_get(root, "error");
  if (d < 0 && json_is_object(err)) d = number_at(err, "retry_after", "retryAfter");
  json_decref(root);
  return d >= 0 && d <= 1e15 ? d : -1;   /* the caller caps it (pf_retry_after_set) */
}

void pf_retry_after_set(const pf_opts *o, pf_err *e, double header, const char *body,
                        size_t len) {
  double asked = header >= 0 ? header : pf_body_retry_after(body, len);
  if (asked < 0) return;
  double after_max = o->retry_after_max;
  e->retry_after = asked < after_max ? asked : after_max;
  if (asked > after_max)
    pf_err_append(e, " (the server asked to wait %.0f s; pixflow waits at most retry.after_max, %g s)",
                  asked, after_max);
}
