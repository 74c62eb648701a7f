/* faults.c: fault plans (POST /_sandbox/faults): which requests go wrong, how, and how often. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sandbox.h"

/* A plan is a list of rules; the first rule that matches a request (gateway, route, rate, and
 * the skip/times counters) decides its fault. docs/sandbox.md lists the actions. */
typedef struct rule {
  int gw;                    /* -1: any */
  int route;                 /* -1: any */
  sbx_fault f;
  int skip;                  /* matching requests let through before the fault starts */
  long times;                /* faults left; < 0 unlimited */
  double rate;               /* probability per matching request */
  unsigned long hits;
} rule;

static rule *rules;
static size_t nrules;
static _Thread_local sbx_fault *current;   /* the fault of the request this thread serves */

static const char *const route_names[SBX_R__COUNT] = {
  "submit", "status", "result", "upload", "cancel", "list", "download",
};
static const char *const action_names[SBX_F__COUNT] = {
  "none", "reset", "reset_after", "reply", "reply_after", "truncate", "stall", "huge", "cut",
  "redirect",
};

int sbx_route_kind(int gw, const char *method, const char *path) {
  size_t n = strlen(path);
  if (strstr(path, "/files/")) return SBX_R_DOWNLOAD;
  if (gw == SBX_GW_DASHSCOPE && strcmp(path, "/api/v1/tasks") == 0) return SBX_R_LIST;
  if (strstr(path, "upload") || strcmp(path, "/") == 0) return SBX_R_UPLOAD;
  if (n >= 7 && strcmp(path + n - 7, "/cancel") == 0) return SBX_R_CANCEL;
  if (n >= 7 && strcmp(path + n - 7, "/result") == 0) return SBX_R_RESULT;
  return strcmp(method, "POST") == 0 ? SBX_R_SUBMIT : SBX_R_STATUS;
}

static int lookup(const char *s, const char *const *names, int n) {
  for (int i = 0; i < n; i++)
    if (names[i] && strcmp(s, names[i]) == 0) return i;
  return -2;
}

static void free_rules(void) {
  for (size_t i = 0; i < nrules; i++) free(rules[i].f.body);
  free(rules);
  rules = NULL;
  nrules = 0;
}

static int hexval(int c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/* One rule from its JSON; NULL on success, else what is wrong. */
static const char *parse_rule(json_t *o, rule *r) {
  memset(r, 0, sizeof *r);
  r->gw = -1;
  r->route = -1;
  r->times = -1;
  r->rate = 1;
  r->f.fraction = 0.5;
  r->f.seconds = 30;
  r->f.size = 100ull << 20;
  if (!json_is_object(o)) return "each fault must be an object";
  const char *s;
  if ((s = json_string_value(json_object_get(o, "gateway"))) && strcmp(s, "any") != 0) {
    r->gw = lookup(s, sbx_gw_names, SBX_GW__COUNT);
    if (r->gw < 0) return "gateway must be apimart, pixverse, quickrouter, dashscope, jiekou, baicai or any";
  }
  if ((s = json_string_value(json_object_get(o, "route"))) && strcmp(s, "any") != 0) {
    r->route = lookup(s, route_names, SBX_R__COUNT);
    if (r->route < 0) return "route must be submit, status, result, upload, cancel, list, download or any";
  }
  s = json_string_value(json_object_get(o, "action"));
  r->f.action = s ? lookup(s, action_names, SBX_F__COUNT) : -2;
  if (r->f.action <= 0)
    return "action must be reset, reset_after, reply, reply_after, truncate, stall, huge, cut or redirect";
  json_t *v;
  if ((v = json_object_get(o, "status"))) r->f.status = (unsigned)json_integer_value(v);
  if ((r->f.action == SBX_F_REPLY || r->f.action == SBX_F_REPLY_AFTER) &&
      (r->f.status < 100 || r->f.status > 599))
    return "reply and reply_after need a status from 100 to 599";
  if ((v = json_object_get(o, "retry_after"))) {
    if (json_is_string(v)) snprintf(r->f.retry_after, sizeof r->f.retry_after, "%s", json_string_value(v));
    else snprintf(r->f.retry_after, sizeof r->f.retry_after, "%lld", (long long)json_number_value(v));
  }
  snprintf(r->f.ctype, sizeof r->f.ctype, "%s",
           (s = json_string_value(json_object_get(o, "content_type"))) ? s : "application/json");
  if ((s = json_string_value(json_object_get(o, "location"))))
    snprintf(r->f.location, sizeof r->f.location, "%s", s);
  if (r->f.action == SBX_F_REDIRECT && !r->f.location[0]) return "redirect needs a location";
  if ((s = json_string_value(json_object_get(o, "body")))) {
    r->f.body_len = json_string_length(json_object_get(o, "body"));
    r->f.body = malloc(r->f.body_len + 1);
    if (!r->f.body) return "out of memory";
    memcpy(r->f.body, s, r->f.body_len + 1);
  } else if ((s = json_string_value(json_object_get(o, "body_hex")))) {
    /* bytes JSON cannot carry (invalid UTF-8) */
    size_t n = strlen(s);
    if (n % 2) return "body_hex must have an even number of digits";
    r->f.body = malloc(n / 2 + 1);
    if (!r->f.body) return "out of memory";
    for (size_t i = 0; i < n; i += 2) {
      int hi = hexval(s[i]), lo = hexval(s[i + 1]);
      if (hi < 0 || lo < 0) return "body_hex must be hex digits";
      r->f.body[i / 2] = (char)(hi * 16 + lo);
    }
    r->f.body_len = n / 2;
    r->f.body[r->f.body_len] = '\0';
  }
  if ((v = json_object_get(o, "fraction"))) r->f.fraction = json_number_value(v);
  if (r->f.fraction < 0 || r->f.fraction > 1) return "fraction must be from 0 to 1";
  if ((v = json_object_get(o, "seconds"))) r->f.seconds = json_number_value(v);
  if ((v = json_object_get(o, "size"))) r->f.size = (unsigned long long)json_number_value(v);
  if ((v = json_object_get(o, "times"))) r->times = (long)json_integer_value(v);
  if ((v = json_object_get(o, "skip"))) r->skip = (int)json_integer_value(v);
  if ((v = json_object_get(o, "rate"))) r->rate = json_number_value(v);
  if (r->rate < 0 || r->rate > 1) return "rate must be from 0 to 1";
  return NULL;
}

const char *sbx_faults_set(const char *body, size_t len) {
  json_error_t je;
  json_t *root = json_loadb(body, len, 0, &je);
  if (!root) return "the body must be JSON: {\"faults\": [...]}";
  json_t *list = json_is_object(root) && json_object_get(root, "faults") ?
                 json_object_get(root, "faults") : root;
  if (json_is_object(list)) list = json_pack("[O]", list);
  else json_incref(list);
  json_decref(root);
  if (!json_is_array(list)) {
    json_decref(list);
    return "faults must be a list";
  }
  size_t n = json_array_size(list);
  rule *nr = n ? calloc(n, sizeof *nr) : NULL;
  if (n && !nr) {
    json_decref(list);
    return "out of memory";
  }
  for (size_t i = 0; i < n; i++) {
    const char *bad = parse_rule(json_array_get(list, i), &nr[i]);
    if (bad) {
      for (size_t k = 0; k <= i; k++) free(nr[k].f.body);
      free(nr);
      json_decref(list);
      return bad;
    }
  }
  json_decref(list);
  pthread_mutex_lock(&g_sbx.lock);
  free_rules();
  rules = nr;
  nrules = n;
  pthread_mutex_unlock(&g_sbx.lock);
  return NULL;
}

void sbx_faults_clear(void) {
  pthread_mutex_lock(&g_sbx.lock);
  free_rules();
  pthread_mutex_unlock(&g_sbx.lock);
}

json_t *sbx_faults_json(void) {
  json_t *a = json_array();
  pthread_mutex_lock(&g_sbx.lock);
  for (size_t i = 0; a && i < nrules; i++) {
    const rule *r = &rules[i];
    json_array_append_new(a, json_pack("{s:s,s:s,s:s,s:I,s:I}",
      "gateway", r->gw < 0 ? "any" : sbx_gw_names[r->gw],
      "route", r->route < 0 ? "any" : route_names[r->route],
      "action", action_names[r->f.action], "hits", (json_int_t)r->hits,
      "times_left", (json_int_t)r->times));
  }
  pthread_mutex_unlock(&g_sbx.lock);
  return json_pack("{s:o}", "faults", a);
}

int sbx_fault_take(int gw, int route, sbx_fault *out) {
  int found = 0;
  pthread_mutex_lock(&g_sbx.lock);
  for (size_t i = 0; i < nrules && !found; i++) {
    rule *r = &rules[i];
    if ((r->gw >= 0 && r->gw != gw) || (r->route >= 0 && r->route != route) || r->times == 0)
      continue;
    if (r->skip > 0) { r->skip--; continue; }
    if (r->rate < 1 && sbx_rand01() >= r->rate) continue;
    if (r->times > 0) r->times--;
    r->hits++;
    *out = r->f;
    out->body = NULL;
    if (r->f.body) {
      out->body = malloc(r->f.body_len + 1);
      if (out->body) memcpy(out->body, r->f.body, r->f.body_len + 1);
      else out->body_len = 0;
    }
    found = 1;
  }
  pthread_mutex_unlock(&g_sbx.lock);
  if (found && gw >= 0) SBX_COUNT(gw, faults);
  return found;
}

void sbx_fault_begin(sbx_fault *f) { current = f; }
void sbx_fault_end(void) { current = NULL; }
sbx_fault *sbx_fault_current(void) { return current; }

/* A body sent slowly or not whole: the first `stop` bytes, then (stall) a silence of `seconds`,
 * then the connection is dropped; the Content-Length promised all of it. */
typedef struct partial {
  char *body;
  size_t len, stop;
  double seconds;
} partial;

static ssize_t partial_read(void *cls, uint64_t pos, char *buf, size_t max) {
  partial *p = cls;
  if (pos < p->stop) {
    size_t n = p->stop - (size_t)pos;
    if (n > max) n = max;
    memcpy(buf, p->body + pos, n);
    return (ssize_t)n;
  }
  if (p->seconds > 0) {                     /* thread per connection: sleeping here is allowed */
    struct timespec ts = { (time_t)p->seconds, (long)(fmod(p->seconds, 1.0) * 1e9) };
    nanosleep(&ts, NULL);
    p->seconds = 0;
  }
  return MHD_CONTENT_READER_END_WITH_ERROR;
}

static void partial_free(void *cls) {
  partial *p = cls;
  free(p->body);
  free(p);
}

struct MHD_Response *sbx_partial_response(const char *body, size_t len, double fraction,
                                          double seconds) {
  partial *p = malloc(sizeof *p);
  if (!p) return NULL;
  p->body = malloc(len ? len : 1);
  if (!p->body) { free(p); return NULL; }
  memcpy(p->body, body, len);
  p->len = len;
  p->stop = (size_t)((double)len * fraction);
  if (p->stop >= len && len) p->stop = len - 1;     /* always short of the promise */
  p->seconds = seconds;
  struct MHD_Response *r = MHD_create_response_from_callback(len, 64 * 1024, partial_read, p,
                                                             partial_free);
  if (!r) partial_free(p);
  return r;
}

/* A body of `size` bytes that starts like JSON and never ends like it. */
static ssize_t huge_read(void *cls, uint64_t pos, char *buf, size_t max) {
  const unsigned long long *size = cls;
  if (pos >= *size) return MHD_CONTENT_READER_END_OF_STREAM;
  size_t n = max;
  if (n > *size - pos) n = (size_t)(*size - pos);
  memset(buf, 'a', n);
  static const char head[] = "{\"data\":\"";
  for (size_t i = 0; pos + i < sizeof head - 1 && i < n; i++) buf[i] = head[pos + i];
  return (ssize_t)n;
}

enum MHD_Result sbx_fault_reply_now(struct MHD_Connection *c, int gw, const sbx_fault *f) {
  switch (f->action) {
    case SBX_F_RESET:
      return MHD_NO;                        /* MHD closes the connection without a response */
    case SBX_F_REPLY:
      return sbx_reply_plain(c, gw, f->status, f->ctype, f->body ? f->body : "",
                             f->body ? f->body_len : 0, f->retry_after[0] ? f->retry_after : NULL);
    case SBX_F_REDIRECT: {
      struct MHD_Response *r = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
      if (!r) return MHD_NO;
      MHD_add_response_header(r, "Location", f->location);
      enum MHD_Result ret = MHD_queue_response(c, f->status >= 300 && f->status < 400 ? f->status : 302, r);
      MHD_destroy_response(r);
      return ret;
    }
    case SBX_F_HUGE: {
      unsigned long long *size = malloc(sizeof *size);
      if (!size) return MHD_NO;
      *size = f->size;
      struct MHD_Response *r = MHD_create_response_from_callback(f->size, 256 * 1024, huge_read,
                                                                 size, free);
      if (!r) { free(size); return MHD_NO; }
      MHD_add_response_header(r, "Content-Type", "application/json");
      enum MHD_Result ret = MHD_queue_response(c, 200, r);
      MHD_destroy_response(r);
      return ret;
    }
    default:
      return MHD_NO;
  }
}
