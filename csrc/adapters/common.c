/* common.c: helpers every adapter uses: URLs, headers, JSON access, prompt references, records. */
#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../engine/buf.h"
#include "adapter.h"

static const char *const mode_names[PF_MODE__COUNT] = {
  "text", "image", "transition", "fusion", "extend",
};
static const char *const state_names[PF_ST__COUNT] = {
  "submitting", "queued", "running", "succeeded", "failed", "moderated", "canceled", "unconfirmed",
};

const char *pf_mode_name(pf_mode m) {
  return (m >= 0 && m < PF_MODE__COUNT) ? mode_names[m] : "text";
}

int pf_mode_from_name(const char *s) {
  for (int i = 0; i < PF_MODE__COUNT; i++)
    if (strcmp(s, mode_names[i]) == 0) return i;
  return -1;
}

const char *pf_state_name(pf_state s) {
  return (s >= 0 && s < PF_ST__COUNT) ? state_names[s] : "running";
}

int pf_state_terminal(pf_state s) {
  return s == PF_ST_SUCCEEDED || s == PF_ST_FAILED || s == PF_ST_MODERATED ||
         s == PF_ST_CANCELED || s == PF_ST_UNCONFIRMED;
}

void pf_request_free(pf_request *rq) {
  free(rq->model); free(rq->prompt); free(rq->negative_prompt);
  for (size_t i = 0; i < rq->nrefs; i++) {
    free(rq->refs[i].name);
    free(rq->refs[i].type);
    for (size_t j = 0; j < rq->refs[i].nimages; j++) free(rq->refs[i].images[j]);
  }
  free(rq->refs);
  free(rq->image); free(rq->first_frame); free(rq->last_frame); free(rq->extend_from);
  free(rq->resolution); free(rq->aspect_ratio);
  memset(rq, 0, sizeof *rq);
}

void pf_http_req_free(pf_http_req *r) {
  free(r->url);
  free(r->body);
  curl_slist_free_all(r->headers);
  for (size_t i = 0; i < r->nparts; i++) {
    pf_part *p = &r->parts[i];
    free(p->name); free(p->value); free(p->file); free(p->filename); free(p->type);
  }
  free(r->parts);
  memset(r, 0, sizeof *r);
}

int pf_http_add_part(pf_http_req *r, const char *name, const char *value, const char *file,
                     const char *filename, const char *type) {
  pf_part *np = realloc(r->parts, (r->nparts + 1) * sizeof *np);
  if (!np) return -1;
  r->parts = np;
  pf_part *p = &np[r->nparts];
  memset(p, 0, sizeof *p);
  p->size = -1;
  r->nparts++;                               /* counted now, so free() releases what was made */
  p->name = pf_strdup(name);
  if (value) p->value = pf_strdup(value);
  if (file) p->file = pf_strdup(file);
  if (filename) p->filename = pf_strdup(filename);
  if (type) p->type = pf_strdup(type);
  if (!p->name || (value && !p->value) || (file && !p->file) || (filename && !p->filename) ||
      (type && !p->type))
    return -1;
  return 0;
}

int pf_auth_header(const pf_ctx *ctx, struct curl_slist **h) {
  const char *key = ctx->api_key ? ctx->api_key : "";
  if (ctx->auth && strcmp(ctx->auth, "api-key") == 0) return pf_header_add(h, "API-KEY: %s", key);
  return pf_header_add(h, "Authorization: Bearer %s", key);
}

char *pf_url_with_id(const char *base, const char *fmt, const char *id) {
  char *esc = curl_easy_escape(NULL, id, 0);
  if (!esc) return NULL;
  size_t n = strlen(fmt) + strlen(esc) + 1;
  char *path = malloc(n);
  char *url = NULL;
  if (path) {
    snprintf(path, n, fmt, esc);
    url = pf_url_join(base, path);
  }
  free(path);
  curl_free(esc);
  return url;
}

int pf_get_by_id(const pf_ctx *ctx, const char *fmt, const char *id, pf_http_req *out, pf_err *err) {
  out->method = "GET";
  out->url = pf_url_with_id(ctx->base_url, fmt, id);
  if (!out->url || pf_auth_header(ctx, &out->headers)) {
    pf_err_set(err, PF_EK_NOMEM, 0, "nomem", "out of memory building the %s request", ctx->provider);
    return -1;
  }
  return 0;
}

int pf_multipart_upload(const pf_ctx *ctx, const char *path, const char *field, const pf_upload *up,
                        pf_http_req *out, pf_err *err) {
  out->method = "POST";
  out->url = pf_url_join(ctx->base_url, path);
  if (!out->url || pf_auth_header(ctx, &out->headers) ||
      pf_http_add_part(out, field, NULL, up->path, up->filename, up->mime)) {
    pf_err_set(err, PF_EK_NOMEM, 0, "nomem", "out of memory building the %s request", ctx->provider);
    return -1;
  }
  return 0;
}

int pf_json_post(const pf_ctx *ctx, const char *path, json_t *obj, pf_http_req *out, pf_err *err) {
  out->method = "POST";
  out->url = pf_url_join(ctx->base_url, path);
  if (!out->url) {
    json_decref(obj);
    pf_err_set(err, PF_EK_NOMEM, 0, "nomem", "out of memory building the %s request", ctx->provider);
    return -1;
  }
  if (pf_json_body(obj, out, err) != 0) return -1;
  if (pf_auth_header(ctx, &out->headers) || pf_header_add(&out->headers, "Content-Type: application/json")) {
    pf_err_set(err, PF_EK_NOMEM, 0, "nomem", "out of memory building the %s request", ctx->provider);
    return -1;
  }
  return 0;
}

int pf_missing(pf_err *err, long http, const char *provider, const char *what) {
  pf_err_set(err, PF_EK_PROTOCOL, http, "bad_shape", "%s's reply has no %s", provider, what);
  err->retryable = 1;
  return -1;
}

int pf_reply_id(json_t *root, const json_t *v, long http, const char *provider, const char *where,
                char **id, pf_err *err) {
  *id = pf_json_id(v);
  json_decref(root);
  if (*id) return 0;
  pf_err_set(err, PF_EK_PROTOCOL, http, "no_task_id",
             "%s accepted the request but its reply has no %s", provider, where);
  return -1;
}

void pf_error_fields(const json_t *root, const char **message, const char **code_str,
                     char *code_buf, size_t code_cap) {
  const json_t *e = json_object_get(root, "error");
  *message = pf_json_string(e, "message");
  if (!*message) *message = json_is_string(e) ? json_string_value(e) : NULL;
  if (!*message) *message = pf_json_string(root, "message");
  *code_str = pf_json_string(e, "type");
  if (!*code_str) *code_str = pf_json_string(e, "code");
  if (!*code_str) *code_str = pf_json_string(root, "code");
  if (!*code_str) *code_str = pf_json_string(root, "reason");
  if (!*code_str && code_buf) {
    const json_t *c = json_object_get(e, "code");
    if (!json_is_integer(c)) c = json_object_get(root, "code");
    if (json_is_integer(c)) {
      snprintf(code_buf, code_cap, "%" JSON_INTEGER_FORMAT, json_integer_value(c));
      *code_str = code_buf;
    }
  }
}

char *pf_json_id(const json_t *v) {
  char buf[32];
  if (json_is_integer(v)) {
    snprintf(buf, sizeof buf, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
    return pf_strdup(buf);
  }
  if (json_is_string(v) && json_string_length(v) > 0) return pf_strdup(json_string_value(v));
  return NULL;
}

void pf_status_init(pf_status *st) {
  memset(st, 0, sizeof *st);
  st->progress = -1;
  st->eta = -1;
  pf_err_clear(&st->err);
}

void pf_status_free(pf_status *st) {
  for (size_t i = 0; i < st->nvideos; i++) free(st->videos[i].url);
  free(st->videos);
  st->videos = NULL;
  st->nvideos = 0;
}

void pf_costs_merge(pf_cost *dst, size_t *n, const pf_cost *src, size_t nsrc) {
  for (size_t i = 0; i < nsrc; i++) {
    if (!isfinite(src[i].amount) || !src[i].unit[0]) continue;
    size_t k = 0;
    while (k < *n && strcmp(dst[k].unit, src[i].unit) != 0) k++;
    if (k == *n) {
      if (*n == PF_MAX_COSTS) continue;
      (*n)++;
    }
    dst[k] = src[i];
  }
}

void pf_status_add_cost(pf_status *st, double amount, const char *unit) {
  pf_cost c;
  c.amount = amount;
  snprintf(c.unit, sizeof c.unit, "%s", unit);
  pf_costs_merge(st->costs, &st->ncosts, &c, 1);
}

int pf_status_add_video(pf_status *st, const char *url, double expires_at) {
  pf_video *nv = realloc(st->videos, (st->nvideos + 1) * sizeof *nv);
  if (!nv) return -1;
  st->videos = nv;
  nv[st->nvideos].url = pf_strdup(url);
  if (!nv[st->nvideos].url) return -1;
  nv[st->nvideos].expires_at = expires_at;
  st->nvideos++;
  return 0;
}

void pf_status_no_video(pf_status *st, const char *provider) {
  st->state = PF_ST_FAILED;
  pf_err_set(&st->err, PF_EK_PROTOCOL, 0, "no_video_url",
             "%s reported success but sent no video URL; treated as a failure", provider);
}

char *pf_url_join(const char *base, const char *path) {
  size_t bl = strlen(base), pl = strlen(path);
  while (bl > 0 && base[bl - 1] == '/') bl--;
  char *u = malloc(bl + pl + 1);
  if (!u) return NULL;
  memcpy(u, base, bl);
  memcpy(u + bl, path, pl + 1);
  return u;
}

int pf_header_add(struct curl_slist **list, const char *fmt, ...) {
  char line[1024];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  if (n < 0 || (size_t)n >= sizeof line) { explicit_bzero(line, sizeof line); return -1; }
  /* no CR, LF or other control byte (a tab aside) ever reaches a header: nothing a key or a
   * gateway's reply holds can add a header or end the request early */
  for (int i = 0; i < n; i++) {
    unsigned char ch = (unsigned char)line[i];
    if ((ch < 0x20 && ch != '\t') || ch == 0x7f) { explicit_bzero(line, sizeof line); return -1; }
  }
  struct curl_slist *nl = curl_slist_append(*list, line);
  /* the stack copy holds the key: wipe it (explicit_bzero: a memset here is a dead store the
   * compiler removes, and it did) */
  explicit_bzero(line, sizeof line);
  if (!nl) return -1;
  *list = nl;
  return 0;
}

int pf_json_body(json_t *obj, pf_http_req *out, pf_err *err) {
  if (!obj) {
    pf_err_set(err, PF_EK_NOMEM, 0, "nomem", "out of memory building the request body");
    return -1;
  }
  char *s = json_dumps(obj, JSON_COMPACT | JSON_ENSURE_ASCII);
  json_decref(obj);
  if (!s) {
    pf_err_set(err, PF_EK_NOMEM, 0, "nomem", "out of memory serialising the request body");
    return -1;
  }
  out->body = s;
  out->body_len = strlen(s);
  return 0;
}

json_t *pf_json_parse_object(const char *body, size_t len, long http, pf_err *err) {
  json_error_t je;
  json_t *root = json_loadb(body ? body : "", len, JSON_REJECT_DUPLICATES, &je);
  if (!root && json_error_code(&je) == json_error_numeric_overflow && strstr(je.text, "integer")) {
    /* valid JSON, but an integer (an id: PixVerse's are bare integers) past what pixflow keeps
     * exact; asking again gets the same number */
    const char *b = body ? body : "";
    size_t end = je.position > 0 && (size_t)je.position <= len ? (size_t)je.position : 0, start = end;
    while (start > 0 && (isdigit((unsigned char)b[start - 1]) || b[start - 1] == '-')) start--;
    char num[48];
    pf_utf8_copy(num, sizeof num, b + start, end - start);
    pf_err_set(err, http >= 400 ? pf_kind_for_http(http) : PF_EK_PROTOCOL, http, "big_integer",
               "the reply (HTTP %ld) holds the integer %s%s, beyond 64 bits (signed: pixflow keeps ids "
               "exact up to 9223372036854775807) and cannot use this reply", http, num,
               end - start >= sizeof num - 1 ? "..." : "");
    err->retryable = 0;
    return NULL;
  }
  if (!root || !json_is_object(root)) {
    char snippet[120];
    pf_utf8_copy(snippet, sizeof snippet, body ? body : "", len);
    const char *what = !root ? (strstr(je.text, "UTF-8") || strstr(je.text, "unable to decode byte")
                             ? "is not valid UTF-8 JSON" : "is not JSON")
                             : "is JSON but not an object";
    /* an error status says more than a garbled body: keep its kind */
    pf_errkind kind = http >= 400 ? pf_kind_for_http(http) : PF_EK_PROTOCOL;
    pf_err_set(err, kind, http, !root ? "bad_json" : "bad_shape",
               "the reply (HTTP %ld, %zu bytes) %s: %s%s", http, len, what, snippet,
               len >= sizeof snippet - 1 ? "..." : "");
    /* a garbled 2xx may be a passing fault: polling it again is safe */
    err->retryable = http >= 400 ? pf_http_retryable(http) : 1;
    json_decref(root);
    return NULL;
  }
  return root;
}

const char *pf_json_string(const json_t *obj, const char *key) {
  json_t *v = json_is_object(obj) ? json_object_get(obj, key) : NULL;
  return json_is_string(v) ? json_string_value(v) : NULL;
}

int pf_json_number(const json_t *obj, const char *key, double *out) {
  json_t *v = json_is_object(obj) ? json_object_get(obj, key) : NULL;
  if (json_is_number(v)) { *out = json_number_value(v); return 0; }
  if (json_is_string(v)) {
    const char *s = json_string_value(v);
    char *end;
    double d = strtod(s, &end);
    if (end != s && *end == '\0') { *out = d; return 0; }
  }
  return -1;
}

static int mentions(const char *s, const char *const *words) {
  if (!s) return 0;
  char low[512];
  size_t i;
  for (i = 0; s[i] && i < sizeof low - 1; i++) low[i] = (char)tolower((unsigned char)s[i]);
  low[i] = '\0';
  for (int w = 0; words[w]; w++)
    if (strstr(low, words[w])) return 1;
  return 0;
}

int pf_text_says_moderated(const char *s) {
  static const char *const words[] = { "moderat", "inappropriate", "sensitive", "审核", "敏感",
                                       "违规", "does not pass the review", NULL };
  return mentions(s, words);
}

int pf_text_says_quota(const char *s) {
  static const char *const words[] = { "quota", "balance", "余额", "额度", "arrear", NULL };
  return mentions(s, words);
}

int pf_name_byte(unsigned char c) {
  return isalnum(c) || c == '_' || c == '-' || c >= 0x80;
}

char *pf_prompt_by_position(const char *prompt, const pf_ref *refs, size_t nrefs, const char *fmt) {
  pf_buf out;
  pf_buf_init(&out, 0);
  const unsigned char *p = (const unsigned char *)prompt;
  size_t i = 0, n = strlen(prompt);
  while (i < n) {
    if (p[i] == '@' && (i == 0 || !pf_name_byte(p[i - 1]))) {
      size_t j = i + 1;
      while (j < n && pf_name_byte(p[j])) j++;
      size_t len = j - i - 1, k;
      for (k = 0; k < nrefs; k++)
        if (strlen(refs[k].name) == len && memcmp(refs[k].name, p + i + 1, len) == 0) break;
      if (len > 0 && k < nrefs) {
        char word[64];
        snprintf(word, sizeof word, fmt, k + 1);
        pf_buf_puts(&out, word);
        i = j;
        continue;
      }
    }
    pf_buf_append(&out, p + i, 1);
    i++;
  }
  if (out.nomem) { pf_buf_free(&out); return NULL; }
  if (!out.data) return pf_strdup("");
  return pf_buf_take(&out);
}
