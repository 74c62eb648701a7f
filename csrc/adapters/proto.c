/* proto.c: the generic wire-protocol engine: reads the replies and builds the usual requests of a
 * gateway described by a pf_proto table (proto.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "proto.h"

const json_t *pf_json_at(const json_t *v, const char *path) {
  const char *p = path;
  while (v && *p) {
    const char *dot = strchr(p, '.');
    size_t n = dot ? (size_t)(dot - p) : strlen(p);
    int first = n >= 3 && memcmp(p + n - 3, "[0]", 3) == 0;
    char key[64];
    size_t kn = first ? n - 3 : n;
    if (kn >= sizeof key) return NULL;
    memcpy(key, p, kn);
    key[kn] = '\0';
    v = json_is_object(v) ? json_object_get(v, key) : NULL;
    if (first && json_is_array(v)) v = json_array_get(v, 0);
    p += n;
    if (*p == '.') p++;
  }
  return v;
}

static const char *string_at(const json_t *v, const char *path) {
  const json_t *s = path ? pf_json_at(v, path) : NULL;
  return json_is_string(s) ? json_string_value(s) : NULL;
}

/* The first string among paths (NULL-terminated, at most n); with nonempty, the first non-empty
 * one, else the last string seen. */
static const char *first_string(const json_t *v, const char *const *paths, size_t n, int nonempty) {
  const char *s = NULL;
  for (size_t i = 0; i < n && paths[i]; i++) {
    const char *t = string_at(v, paths[i]);
    if (t) s = t;
    if (s && (!nonempty || s[0])) break;
  }
  return s;
}

static int number_at(const json_t *v, const char *path, double *out) {
  const char *dot = path ? strrchr(path, '.') : NULL;
  if (!path) return -1;
  if (!dot) return pf_json_number(v, path, out);
  char head[128];
  size_t n = (size_t)(dot - path);
  if (n >= sizeof head) return -1;
  memcpy(head, path, n);
  head[n] = '\0';
  return pf_json_number(pf_json_at(v, head), dot + 1, out);
}

/* Is code in the list (codes split by spaces, "x*": any code starting with x)? */
static int listed(const char *list, const char *code) {
  for (const char *p = list; code && p && *p;) {
    while (*p == ' ') p++;
    size_t n = strcspn(p, " ");
    if (n > 0 && (p[n - 1] == '*' ? strncmp(code, p, n - 1) == 0
                                  : strlen(code) == n && memcmp(code, p, n) == 0))
      return 1;
    p += n;
  }
  return 0;
}

pf_errkind pf_kinds_find(const pf_kinds *k, const char *code, pf_errkind dflt) {
  const struct { const char *list; pf_errkind kind; } by[] = {
    { k->invalid, PF_EK_INVALID }, { k->auth, PF_EK_AUTH }, { k->quota, PF_EK_QUOTA },
    { k->rate_limit, PF_EK_RATE_LIMIT }, { k->moderated, PF_EK_MODERATED },
    { k->not_found, PF_EK_NOT_FOUND }, { k->provider, PF_EK_PROVIDER },
  };
  for (size_t i = 0; i < sizeof by / sizeof by[0]; i++)
    if (listed(by[i].list, code)) return by[i].kind;
  return dflt;
}

int pf_proto_nomem(const pf_proto *p, pf_err *err) {
  pf_err_set(err, PF_EK_NOMEM, 0, "nomem", "out of memory building the %s request", p->name);
  return -1;
}

/* ------------------------------------------------------------------------------- replies */

const json_t *pf_proto_fail(const pf_proto *p, pf_errkind kind, long http, long retry_status,
                            const char *code, const char *msg, pf_err *err) {
  const pf_errors *e = &p->errors;
  if (e->moderation_text && pf_text_says_moderated(msg)) kind = PF_EK_MODERATED;
  if (e->protocol_below_400 && http < 400 && kind == PF_EK_PROVIDER && !code) kind = PF_EK_PROTOCOL;
  if (!code) code = "http_error";
  if (msg) pf_err_set(err, kind, http, code, "%s", msg);
  else pf_err_set(err, kind, http, code, "%s returned an error without a message", p->name);
  err->retryable = kind == PF_EK_RATE_LIMIT ||
                   ((!e->retry_by_kind || kind == PF_EK_PROVIDER) && pf_http_retryable(retry_status));
  return NULL;
}

const json_t *pf_proto_errors(const pf_proto *p, long http, const json_t *root, pf_err *err) {
  const pf_errors *e = &p->errors;
  if (http >= 200 && http < 300 && !(e->when && json_object_get(root, e->when))) return root;
  const char *msg = first_string(root, e->message, 3, 0), *code = string_at(root, e->code);
  pf_errkind kind = pf_kinds_find(&e->codes, code, pf_kind_for_http(http));
  if (e->http && http == e->http) kind = e->http_kind;
  char buf[32];
  if (!code && e->code_fields) {
    const char *m;
    pf_error_fields(root, &m, &code, buf, sizeof buf);
  }
  return pf_proto_fail(p, kind, http, http, code, msg, err);
}

static const json_t *open_reply(const pf_proto **pp, int shaped, long http, const char *body,
                                size_t len, json_t **root, pf_err *err) {
  *root = pf_json_parse_object(body, len, http, err);
  if (!*root) return NULL;
  if (shaped && (*pp)->shape) *pp = (*pp)->shape(*pp, http, *root);
  const pf_proto *p = *pp;
  const json_t *in = p->envelope ? p->envelope(p, http, *root, err) : pf_proto_errors(p, http, *root, err);
  if (!in) {
    json_decref(*root);
    *root = NULL;
  }
  return in;
}

const json_t *pf_proto_reply(const pf_proto *p, long http, const char *body, size_t len,
                             json_t **root, pf_err *err) {
  return open_reply(&p, 0, http, body, len, root, err);
}

int pf_proto_parse_submit(const pf_proto *p, const pf_ctx *ctx, long http, const char *body,
                          size_t len, char **task_id, pf_err *err) {
  json_t *root;
  const json_t *in = open_reply(&p, 1, http, body, len, &root, err);
  if (!in) return -1;
  return pf_reply_id(root, pf_json_at(in, p->task_id), http, ctx->provider,
                     p->task_id_named ? p->task_id_named : p->task_id, task_id, err);
}

/* One URL value: a string, or (url_lists) an array of strings. 1 when one was taken. */
static int add_url(const pf_videos *vs, const json_t *u, double exp, pf_status *st, int *rc) {
  if (json_is_string(u) && json_string_length(u) > 0) {
    *rc |= pf_status_add_video(st, json_string_value(u), exp);
    return 1;
  }
  if (!vs->url_lists || !json_is_array(u)) return 0;
  size_t j;
  json_t *s;
  json_array_foreach(u, j, s)
    if (json_is_string(s) && json_string_length(s) > 0)
      *rc |= pf_status_add_video(st, json_string_value(s), exp);
  return 1;
}

static int add_video(const pf_videos *vs, const pf_ctx *ctx, const json_t *v, pf_status *st) {
  double exp = 0, t = 0;
  if (vs->expires_at && number_at(v, vs->expires_at, &t) == 0 && t > 0) exp = t;
  if (vs->ttl && number_at(v, vs->ttl, &t) == 0 && t > 0 && ctx->wall_now > 0) exp = ctx->wall_now + t;
  if (vs->lifetime > 0 && ctx->wall_now > 0) exp = ctx->wall_now + vs->lifetime;
  int rc = 0;
  for (size_t i = 0; i < 4 && vs->url[i]; i++)
    if (add_url(vs, pf_json_at(v, vs->url[i]), exp, st, &rc)) break;
  return rc;
}

static int add_videos(const pf_proto *p, const pf_ctx *ctx, const json_t *in, pf_status *st) {
  const pf_videos *vs = &p->videos;
  if (!vs->list) return add_video(vs, ctx, in, st);
  size_t i;
  json_t *v;
  int rc = 0;
  json_array_foreach(pf_json_at(in, vs->list), i, v) rc |= add_video(vs, ctx, v, st);
  return rc;
}

/* The state a status word stands for; -1: the gateway does not know the task (words.gone). */
static int word_state(const pf_proto *p, const char *s) {
  const pf_words *w = &p->words;
  if (listed(w->gone, s)) return -1;
  return listed(w->queued, s) ? PF_ST_QUEUED : listed(w->succeeded, s) ? PF_ST_SUCCEEDED
       : listed(w->failed, s) ? PF_ST_FAILED : listed(w->moderated, s) ? PF_ST_MODERATED
       : listed(w->canceled, s) ? PF_ST_CANCELED : PF_ST_RUNNING;
}

/* What the word says, into st (or err for a gone task: returns -1). */
static int apply_word(const pf_proto *p, const pf_ctx *ctx, long http, const json_t *in,
                      const char *s, pf_status *st, pf_err *err) {
  const pf_words *w = &p->words;
  int state = word_state(p, s);
  if (state < 0) {
    pf_err_set(err, PF_EK_NOT_FOUND, http, p->on_gone.code, "%s", p->on_gone.message);
    return -1;
  }
  st->state = (pf_state)state;
  if (listed(w->result, s)) st->need_result = 1;
  if (st->state == PF_ST_SUCCEEDED) {
    if (add_videos(p, ctx, in, st)) return pf_proto_nomem(p, err);
    if (st->nvideos == 0) pf_status_no_video(st, ctx->provider);
  } else if (st->state == PF_ST_FAILED) {
    const char *msg = first_string(in, p->reason, 6, p->reason_nonempty);
    const char *code = string_at(in, p->reason_code);
    if (p->reason_nonempty && code && !code[0]) code = NULL;
    if (p->reason_nonempty && msg && !msg[0]) msg = NULL;
    int mod = pf_text_says_moderated(msg) ||
              pf_kinds_find(&p->errors.codes, code, PF_EK_FAILED) == PF_EK_MODERATED;
    st->state = mod ? PF_ST_MODERATED : PF_ST_FAILED;
    pf_err_set(&st->err, mod ? PF_EK_MODERATED : PF_EK_FAILED, 0, code ? code : p->on_failed.code,
               "%s", msg ? msg : p->on_failed.message);
  } else if (st->state == PF_ST_MODERATED) {
    pf_err_set(&st->err, PF_EK_MODERATED, 0, p->on_moderated.code, "%s", p->on_moderated.message);
  } else if (st->state == PF_ST_CANCELED) {
    pf_err_set(&st->err, PF_EK_CANCELED, 0, p->on_canceled.code, "%s", p->on_canceled.message);
  }
  return 0;
}

int pf_proto_parse_status(const pf_proto *p, const pf_ctx *ctx, long http, const char *body,
                          size_t len, pf_status *st, pf_err *err) {
  json_t *root;
  const json_t *in = open_reply(&p, 1, http, body, len, &root, err);
  if (!in) return -1;
  const json_t *v = pf_json_at(in, p->state);
  char num[32];
  const char *s = NULL;
  if (p->state_integer && json_is_integer(v)) {
    snprintf(num, sizeof num, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
    s = num;
  } else if (!p->state_integer && json_is_string(v)) {
    s = json_string_value(v);
  }
  if (!s) {
    json_decref(root);
    return pf_missing(err, http, ctx->provider, p->state_named ? p->state_named : p->state);
  }
  double d;
  if (number_at(in, p->progress, &d) == 0 && d >= 0 && d <= 100) st->progress = (int)d;
  if (number_at(in, p->eta, &d) == 0 && d > 0) st->eta = d;
  if (p->extras) p->extras(ctx, in, st);
  int rc = apply_word(p, ctx, http, in, s, st, err);
  json_decref(root);
  return rc;
}

/* ------------------------------------------------------------------------------ requests */

int pf_proto_get(const pf_proto *p, const pf_ctx *ctx, const char *fmt, const char *id,
                 pf_http_req *out, pf_err *err) {
  if (!p->headers) return pf_get_by_id(ctx, fmt, id, out, err);
  out->method = "GET";
  out->url = pf_url_with_id(ctx->base_url, fmt, id);
  if (!out->url || p->headers(ctx, &out->headers, 0)) return pf_proto_nomem(p, err);
  return 0;
}

int pf_proto_post_json(const pf_proto *p, const pf_ctx *ctx, const char *path, json_t *obj,
                       pf_http_req *out, pf_err *err) {
  if (!p->headers) return pf_json_post(ctx, path, obj, out, err);
  out->method = "POST";
  out->url = pf_url_join(ctx->base_url, path);
  if (!out->url) { json_decref(obj); return pf_proto_nomem(p, err); }
  if (pf_json_body(obj, out, err) != 0) return -1;
  return p->headers(ctx, &out->headers, 1) ? pf_proto_nomem(p, err) : 0;
}

int pf_proto_build_upload(const pf_proto *p, const pf_ctx *ctx, pf_upload *up, pf_http_req *out,
                          pf_err *err) {
  return pf_multipart_upload(ctx, p->upload, p->upload_field, up, out, err);
}

int pf_proto_parse_upload(const pf_proto *p, const pf_ctx *ctx, pf_upload *up, long http,
                          const char *body, size_t len, pf_err *err) {
  json_t *root;
  const json_t *in = pf_proto_reply(p, http, body, len, &root, err);
  if (!in) return -1;
  const json_t *v = pf_json_at(in, p->upload_result);
  int found = (json_is_string(v) && json_string_length(v) > 0) || (p->upload_ids && json_is_integer(v));
  if (found) up->result = pf_json_id(v);
  up->ttl = p->upload_ttl;
  json_decref(root);
  if (!found) {
    pf_err_set(err, PF_EK_PROTOCOL, http, p->upload_missing, "%s's upload reply has no %s", p->name,
               p->upload_result_named ? p->upload_result_named : p->upload_result);
    err->retryable = 1;
    return -1;
  }
  return up->result ? 0 : pf_proto_nomem(p, err);
}

/* ------------------------------------------------------------------------------ the task list */

int pf_proto_build_list(const pf_proto *p, const pf_ctx *ctx, const char *model, const char *status,
                        double from, double to, int page, pf_http_req *out, pf_err *err) {
  const pf_listing *l = &p->list;
  char a[32], b[32];
  time_t f = (time_t)from, t = (time_t)to;
  struct tm tf, tt;
  if (!gmtime_r(&f, &tf) || !gmtime_r(&t, &tt) || !strftime(a, sizeof a, l->stamp, &tf) ||
      !strftime(b, sizeof b, l->stamp, &tt)) {
    pf_err_set(err, PF_EK_INVALID, 0, "bad_time", "no %s task-list time for %.0f..%.0f", p->name,
               from, to);
    return -1;
  }
  char *m = model && model[0] ? curl_easy_escape(NULL, model, 0) : NULL;
  char *s = status && status[0] ? curl_easy_escape(NULL, status, 0) : NULL;
  size_t n = strlen(l->path) + 256 + (m ? strlen(m) : 0) + (s ? strlen(s) : 0);
  char *path = (!model || !model[0] || m) && (!status || !status[0] || s) ? malloc(n) : NULL;
  if (path) {
    int k = snprintf(path, n, "%s?%s=%s&%s=%s", l->path, l->from, a, l->to, b);
    if (m) k += snprintf(path + k, n - (size_t)k, "&%s=%s", l->model, m);
    if (s) k += snprintf(path + k, n - (size_t)k, "&%s=%s", l->status, s);
    snprintf(path + k, n - (size_t)k, "&%s=%d&%s=%d", l->page, page, l->size, l->rows);
  }
  curl_free(m);
  curl_free(s);
  out->method = "GET";
  out->url = path ? pf_url_join(ctx->base_url, path) : NULL;
  free(path);
  if (!out->url) return pf_proto_nomem(p, err);
  if (p->headers ? p->headers(ctx, &out->headers, 0) : pf_auth_header(ctx, &out->headers))
    return pf_proto_nomem(p, err);
  return 0;
}

/* Whether another page follows comes from the page count, else from the total and the page
 * size; a reply that says neither is "cannot tell" (-1), never "last page". */
int pf_proto_parse_list(const pf_proto *p, const pf_ctx *ctx, long http, const char *body,
                        size_t len, json_t **items, int *more, long *total, pf_err *err) {
  const pf_listing *l = &p->list;
  *items = NULL;
  *more = -1;
  *total = -1;
  json_t *root;
  const json_t *in = pf_proto_reply(p, http, body, len, &root, err);
  if (!in) return -1;
  const json_t *data = pf_json_at(in, l->items);
  if (data && !json_is_array(data)) {
    json_decref(root);
    pf_err_set(err, PF_EK_PROTOCOL, http, "bad_reply", "the %s task list's %s is not an array",
               p->name, l->items);
    return -1;
  }
  json_t *out = json_array();
  if (!out) { json_decref(root); return pf_proto_nomem(p, err); }
  size_t i;
  json_t *it;
  json_array_foreach(data, i, it) {
    char *id = pf_json_id(pf_json_at(it, l->id));
    double created = -1;
    if (number_at(it, l->created, &created) == 0 && created > 0) created *= l->created_unit;
    else created = -1;                  /* unknown: it may be anyone's, so it counts everywhere */
    const char *st = first_string(it, l->state, 2, 0);
    json_t *row = id ? json_pack("{s:s,s:s,s:f,s:i}", "id", id, "status", st ? st : "",
                                 "created", created, "state", st ? word_state(p, st) : -1)
                     : NULL;
    free(id);
    if (!row || json_array_append_new(out, row) != 0) {
      json_decref(out);
      json_decref(root);
      return pf_proto_nomem(p, err);
    }
  }
  double tot = -1, size = 0, page = 0, pages = -1;
  int has_total = number_at(in, l->total, &tot) == 0 && tot >= 0;
  int has_pages = number_at(in, l->pages, &pages) == 0 && pages >= 0;
  number_at(in, l->page_size, &size);
  number_at(in, l->page_no, &page);
  if (has_total) *total = tot > 1e12 ? (long)1e12 : (long)tot;
  if (has_pages && page >= 1) *more = page < pages;
  else if (has_total && size > 0 && page >= 1) *more = page * size < tot;
  *items = out;
  json_decref(root);
  return 0;
}
