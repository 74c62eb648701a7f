/* trace.c: the debug trace: one redacted JSON line per finished request (option trace = path). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "internal.h"

static const char *const kind_names[] = {
  "none", "upload", "submit", "status", "result", "cancel", "download", "list",
};

void pf_redact_url(const char *url, char *out, size_t n) {
  /* keep scheme, host and path; drop user info and the query (signed URLs carry their
   * authority there) */
  const char *p = url ? url : "";
  const char *scheme_end = strstr(p, "://");
  size_t o = 0;
  if (scheme_end) {
    size_t sl = (size_t)(scheme_end - p) + 3;
    const char *host = p + sl;
    const char *slash = strchr(host, '/');
    const char *at = strchr(host, '@');
    if (at && (!slash || at < slash)) host = at + 1;
    o = (size_t)snprintf(out, n, "%.*s", (int)sl, p);
    if (o >= n) o = n - 1;
    p = host;
  }
  size_t q = strcspn(p, "?#");
  int w = snprintf(out + o, n - o, "%.*s%s", (int)q, p, p[q] == '?' ? "?<redacted>" : "");
  (void)w;
}

int pf_trace_open(pf_client *c, const char *path, pf_err *err) {
  int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
  c->trace = fd >= 0 ? fdopen(fd, "a") : NULL;
  if (!c->trace) {
    pf_err_set(err, PF_EK_IO, 0, "trace", "cannot open the trace file %s: %s", path, strerror(errno));
    if (fd >= 0) close(fd);
    return -1;
  }
  return 0;
}

void pf_trace_close(pf_client *c) {
  if (c->trace) fclose(c->trace);
  c->trace = NULL;
}

void pf_trace_request(pf_client *c, const pf_task *t) {
  pf_trace_xfer(c, &t->x, t->id, t->retries);
}

void pf_trace_xfer(pf_client *c, const pf_xfer *x, const char *task_id, int retries) {
  if (!c->trace) return;
  CURLcode rc = x->rc;
  long http = x->http;
  char url[1024];
  pf_redact_url(x->req.url, url, sizeof url);
  curl_off_t us = 0;
  if (x->easy) curl_easy_getinfo(x->easy, CURLINFO_TOTAL_TIME_T, &us);
  char why[sizeof x->start_err.message];
  const char *text = x->failed ? x->start_err.message   /* a queued one that never started */
                   : x->errbuf[0] ? x->errbuf : curl_easy_strerror(rc);
  pf_utf8_copy(why, sizeof why, text, strlen(text));
  pf_redact_secret(why, sizeof why, c->api_key);
  pf_redact_secret(url, sizeof url, c->api_key);
  json_t *o = json_pack("{s:f,s:s,s:s,s:s,s:s,s:i,s:f,s:I,s:i}",
    "t", pf_walltime(), "provider", c->provider,
    "request", kind_names[x->kind < sizeof kind_names / sizeof kind_names[0] ? x->kind : 0],
    "method", x->req.method ? x->req.method : (x->kind == PF_X_DOWNLOAD ? "GET" : "POST"),
    "url", url, "http", (int)http, "ms", (double)us / 1000.0,
    "bytes", (json_int_t)(x->kind == PF_X_DOWNLOAD ? x->written : (curl_off_t)x->resp.len),
    "retries", retries);
  if (!o) return;
  if (task_id) json_object_set_new(o, "task_id", json_string(task_id));
  if (rc != CURLE_OK) json_object_set_new(o, "error", json_string(why));
  char *line = json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(12));
  json_decref(o);
  if (!line) return;
  fputs(line, c->trace);
  fputc('\n', c->trace);
  fflush(c->trace);
  free(line);
}
