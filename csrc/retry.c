/* retry.c: the one retry policy of the engine: what is retried, after how long, how often. */
#include <math.h>
#include <string.h>

#include <jansson.h>

#include "engine.h"
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

double pf_retry_after_failure(pf_client *c, int failures, const pf_err *e) {
  return pf_retry_delay(c->o.retry_base, c->o.retry_max, c->o.retry_after_max, failures,
                        e->retry_after, pf_client_rand(c));
}

int pf_retry_should(const pf_client *c, pf_rkind kind, const pf_err *e, int failures,
                    int never_sent) {
  switch (kind) {
    case PF_R_SUBMIT:
      /* once the body may have been received, a second submit could be a second charge: only
       * a request that never arrived, or one the gateway turned away before accepting it
       * (429, 503), is sent again */
      if (!(never_sent || e->kind == PF_EK_RATE_LIMIT ||
            (e->kind == PF_EK_PROVIDER && e->status == 503)))
        return 0;
      return e->retryable && failures < c->o.submit_attempts;
    case PF_R_STATUS:
      /* a status read is free and idempotent: a garbled reply is worth another look too */
      return (e->retryable || e->kind == PF_EK_PROTOCOL) && failures < c->o.max_poll_failures;
    case PF_R_UPLOAD:
      return e->retryable && failures < c->o.upload_attempts;
    case PF_R_DOWNLOAD:
      return e->retryable && failures < c->o.download_attempts;
  }
  return 0;
}

int pf_never_sent(CURL *easy, CURLcode rc) {
  switch (rc) {
    case CURLE_COULDNT_RESOLVE_HOST: case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_CONNECT: case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION: case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_CERTPROBLEM: case CURLE_UNSUPPORTED_PROTOCOL: case CURLE_URL_MALFORMAT:
      return 1;
    case CURLE_OPERATION_TIMEDOUT: {
      curl_off_t pre = 0;
      curl_easy_getinfo(easy, CURLINFO_PRETRANSFER_TIME_T, &pre);
      return pre == 0;
    }
    default:
      return 0;
  }
}

void pf_timeout_error(const pf_client *c, CURL *easy, int download, const char *errbuf,
                      pf_err *e) {
  /* a reused connection has no connect time: "never got as far as sending" is the test */
  curl_off_t pre = 0;
  char *url = NULL;
  curl_easy_getinfo(easy, CURLINFO_PRETRANSFER_TIME_T, &pre);
  curl_easy_getinfo(easy, CURLINFO_EFFECTIVE_URL, &url);
  char host[256];
  pf_url_host(url ? url : "", host, sizeof host);
  if (errbuf && strstr(errbuf, "too slow")) {
    pf_err_set(e, PF_EK_TIMEOUT, 0, "low_speed",
               "the transfer from %s stayed below low_speed_bytes (%ld bytes/s) for "
               "low_speed_time (%ld s)", host, c->o.low_speed_bytes, c->o.low_speed_secs);
  } else if (pre == 0) {
    pf_err_set(e, PF_EK_TIMEOUT, 0, "connect_timeout",
               "no connection to %s within connect_timeout (%.3g s)", host,
               (double)c->o.connect_ms / 1000);
  } else if (download) {
    pf_err_set(e, PF_EK_TIMEOUT, 0, "download_timeout",
               "the download from %s did not finish within download_timeout (%.3g s)", host,
               (double)c->o.download_ms / 1000);
  } else {
    pf_err_set(e, PF_EK_TIMEOUT, 0, "request_timeout",
               "%s did not answer within request_timeout (%.3g s)", host,
               (double)c->o.request_ms / 1000);
  }
  e->retryable = 1;
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

void pf_retry_after_set(const pf_client *c, pf_err *e, double header, const char *body,
                        size_t len) {
  double asked = header >= 0 ? header : pf_body_retry_after(body, len);
  if (asked < 0) return;
  double after_max = c->o.retry_after_max;
  e->retry_after = asked < after_max ? asked : after_max;
  if (asked > after_max)
    pf_err_append(e, " (the server asked to wait %.0f s; pixflow waits at most retry.after_max, %g s)",
                  asked, after_max);
}
