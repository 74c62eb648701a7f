/* baicai.c: baicaiinfer cloud's multi-reference video API (PixVerse-v4.5-MR2V): submit, the
 * ComfyUI-style status and result calls, and its upload. Facts: ../shared/providers.md sections 6
 * and 10, seed 002. Only the submit is documented by baicai itself; the query and upload calls
 * come from a third-party client ([baoyu]: unverified, docs/gateways.md). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adapter.h"

static int nomem(pf_err *err) {
  pf_err_set(err, PF_EK_NOMEM, 0, "nomem", "out of memory building the baicai request");
  return -1;
}

static int build_submit(const pf_ctx *ctx, const pf_request *rq, pf_http_req *out, pf_err *err) {
  json_t *o = json_object(), *input = json_object(), *refs = json_array();
  if (!o || !input || !refs) { json_decref(o); json_decref(input); json_decref(refs); return nomem(err); }
  int bad = 0;
  bad |= json_object_set_new(o, "selected_model", json_string(rq->model));
  bad |= json_object_set_new(o, "task_type", json_string("multi_ref_img2video"));
  bad |= json_object_set_new(o, "input", input);
  bad |= json_object_set_new(input, "prompt", json_string(rq->prompt));
  if (rq->negative_prompt)
    bad |= json_object_set_new(input, "negative_prompt", json_string(rq->negative_prompt));
  /* resolution and duration are required: the unified request's defaults are filled in */
  bad |= json_object_set_new(input, "resolution", json_string(rq->resolution ? rq->resolution : "540p"));
  bad |= json_object_set_new(input, "duration", json_integer(rq->duration > 0 ? rq->duration : 5));
  /* the gateway's own spelling */
  bad |= json_object_set_new(input, "mutil_reference", refs);
  for (size_t i = 0; i < rq->nrefs; i++) {
    json_t *urls = json_array();
    for (size_t j = 0; urls && j < rq->refs[i].nimages; j++)
      bad |= json_array_append_new(urls, json_string(rq->refs[i].images[j]));
    json_t *r = urls ? json_pack("{s:s,s:s,s:o}", "type", rq->refs[i].type ? rq->refs[i].type : "subject",
                                 "name", rq->refs[i].name, "urls", urls) : NULL;
    bad |= !r || json_array_append_new(refs, r);
  }
  if (rq->count > 0) bad |= json_object_set_new(input, "number_of_videos", json_integer(rq->count));
  if (rq->expand_prompt >= 0)
    bad |= json_object_set_new(o, "need_expand_prompt", json_boolean(rq->expand_prompt));
  if (bad) { json_decref(o); return nomem(err); }
  return pf_json_post(ctx, "/v1/videos/generations", o, out, err);
}

/* {code (0 = success), message, data, ts}; errors may also come as a bare {"message"} with a
 * 400 (seen for moderation, 3P). */
static json_t *success_reply(long http, const char *body, size_t len, pf_err *err) {
  json_t *root = pf_json_parse_object(body, len, http, err);
  if (!root) return NULL;
  const json_t *code = json_object_get(root, "code");
  long long c = json_is_integer(code) ? json_integer_value(code) : (http >= 300 ? -1 : 0);
  if (c == 0 && http >= 200 && http < 300) return root;
  const char *msg = pf_json_string(root, "message");
  long status = http >= 300 ? http : (c >= 400 && c < 600 ? (long)c : http);
  pf_errkind k = status >= 400 ? pf_kind_for_http(status) : PF_EK_PROVIDER;
  if (pf_text_says_moderated(msg)) k = PF_EK_MODERATED;
  char cs[32];
  snprintf(cs, sizeof cs, "%lld", c);
  pf_err_set(err, k, http, cs, "%s", msg ? msg : "baicai returned an error without a message");
  err->retryable = k == PF_EK_RATE_LIMIT || pf_http_retryable(status);
  json_decref(root);
  return NULL;
}

static int parse_submit(const pf_ctx *ctx, long http, const char *body, size_t len,
                        char **task_id, pf_err *err) {
  json_t *root = success_reply(http, body, len, err);
  if (!root) return -1;
  /* data.taskId (seed 002), or data[0].taskId: baicai's image API answers a submit with
   * data:[{taskId, status}] ([baoyu] in providers.md 10.2 item 1) */
  const json_t *data = json_object_get(root, "data");
  if (json_is_array(data)) data = json_array_get(data, 0);
  return pf_reply_id(root, json_object_get(data, "taskId"), http, ctx->provider, "data.taskId",
                     task_id, err);
}

static int build_status(const pf_ctx *ctx, const char *task_id, pf_http_req *out, pf_err *err) {
  return pf_get_by_id(ctx, "/v1/comfyui/tasks/%s/status", task_id, out, err);
}

static int parse_status(const pf_ctx *ctx, long http, const char *body, size_t len,
                        pf_status *st, pf_err *err) {
  json_t *root = success_reply(http, body, len, err);
  if (!root) return -1;
  const json_t *data = json_object_get(root, "data");
  const json_t *item = json_is_array(data) ? json_array_get(data, 0) : data;
  const char *s = pf_json_string(item, "status");
  if (!s) {
    json_decref(root);
    return pf_missing(err, http, ctx->provider, "data[0].status");
  }
  double d;
  if (pf_json_number(item, "progress", &d) == 0 && d >= 0 && d <= 100) st->progress = (int)d;
  if (strcmp(s, "COMPLETED") == 0) {
    st->state = PF_ST_RUNNING;
    st->need_result = 1;                    /* the URLs come from /result */
  } else if (strcmp(s, "FAILED") == 0) {
    /* a failure reason field is NOT FOUND; a message is read if there is one */
    const char *msg = pf_json_string(item, "message");
    int mod = pf_text_says_moderated(msg);
    st->state = mod ? PF_ST_MODERATED : PF_ST_FAILED;
    pf_err_set(&st->err, mod ? PF_EK_MODERATED : PF_EK_FAILED, 0, "FAILED", "%s",
               msg ? msg : "baicai reports the task failed (it gives no reason)");
  } else if (strcmp(s, "CANCELED") == 0) {
    st->state = PF_ST_CANCELED;
    pf_err_set(&st->err, PF_EK_CANCELED, 0, "CANCELED", "the task was canceled at baicai");
  } else if (strcmp(s, "PENDING") == 0) {
    st->state = PF_ST_QUEUED;
  } else {
    st->state = PF_ST_RUNNING;
  }
  json_decref(root);
  return 0;
}

static int build_result(const pf_ctx *ctx, const char *task_id, pf_http_req *out, pf_err *err) {
  return pf_get_by_id(ctx, "/v1/comfyui/tasks/%s/result", task_id, out, err);
}

static int add_urls(const json_t *urls, pf_status *st);

/* One result object: its urls[], else its result.urls[] (the same videos are never taken twice). */
static int add_item(const json_t *item, pf_status *st) {
  size_t before = st->nvideos;
  if (add_urls(json_object_get(item, "urls"), st)) return -1;
  if (st->nvideos > before) return 0;
  return add_urls(json_object_get(json_object_get(item, "result"), "urls"), st);
}

static int add_urls(const json_t *urls, pf_status *st) {
  size_t i;
  json_t *u;
  json_array_foreach(urls, i, u) {
    const char *s = json_is_string(u) ? json_string_value(u) : pf_json_string(u, "url");
    if (s && s[0] && pf_status_add_video(st, s, 0)) return -1;
  }
  return 0;
}

/* data.urls[], data.result.urls[], data[] of URL strings, data[].urls[] or data[].result.urls[]
 * ([baoyu] reads each: providers.md 6.2 and 10.2 item 1). */
static int parse_result(const pf_ctx *ctx, long http, const char *body, size_t len,
                        pf_status *st, pf_err *err) {
  json_t *root = success_reply(http, body, len, err);
  if (!root) return -1;
  const json_t *data = json_object_get(root, "data");
  int rc = 0;
  if (json_is_array(data)) {
    size_t i;
    json_t *item;
    json_array_foreach(data, i, item) {
      if (json_is_string(item)) {
        if (json_string_length(item) > 0) rc |= pf_status_add_video(st, json_string_value(item), 0);
      } else {
        rc |= add_item(item, st);
      }
    }
  } else {
    rc |= add_item(data, st);
  }
  json_decref(root);
  if (rc) return nomem(err);
  st->state = PF_ST_SUCCEEDED;
  if (st->nvideos == 0) pf_status_no_video(st, ctx->provider);
  return 0;
}

/* POST /v1/resources/upload, multipart "file" -> data.fullPath (3P) [INFERENCE]. */
static int build_upload(const pf_ctx *ctx, pf_upload *up, pf_http_req *out, pf_err *err) {
  return pf_multipart_upload(ctx, "/v1/resources/upload", "file", up, out, err);
}

static int parse_upload(const pf_ctx *ctx, pf_upload *up, long http, const char *body, size_t len,
                        pf_err *err) {
  (void)ctx;
  json_t *root = success_reply(http, body, len, err);
  if (!root) return -1;
  const char *p = pf_json_string(json_object_get(root, "data"), "fullPath");
  up->result = p && p[0] ? pf_strdup(p) : NULL;
  up->ttl = 0;                              /* lifetime NOT FOUND */
  json_decref(root);
  if (!up->result) {
    pf_err_set(err, PF_EK_PROTOCOL, http, "no_path", "baicai's upload reply has no data.fullPath");
    err->retryable = 1;
    return -1;
  }
  return 0;
}

const pf_adapter pf_adapter_baicai = {
  .name = "baicai",
  .build_submit = build_submit, .parse_submit = parse_submit,
  .build_status = build_status, .parse_status = parse_status,
  .build_result = build_result, .parse_result = parse_result,
  .build_upload = build_upload, .parse_upload = parse_upload,
};
