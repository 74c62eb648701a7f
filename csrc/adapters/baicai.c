/* baicai.c: baicaiinfer cloud's multi-reference video API (PixVerse-v4.5-MR2V): submit, the
 * ComfyUI-style status and result calls, and its upload. Facts: ../shared/providers.md sections 6
 * and 10, seed 002. Only the submit is documented by baicai itself; the query and upload calls
 * come from a third-party client ([baoyu]: unverified, docs/gateways.md). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto.h"

static const json_t *envelope(const pf_proto *p, long http, const json_t *root, pf_err *err);

static const pf_proto baicai = {
  .name = "baicai",
  .submit = "/v1/videos/generations",
  .status = "/v1/comfyui/tasks/%s/status",
  .result = "/v1/comfyui/tasks/%s/result",
  /* multipart "file" -> data.fullPath (3P) [INFERENCE]; its lifetime is NOT FOUND */
  .upload = "/v1/resources/upload", .upload_field = "file",
  .upload_result = "data.fullPath", .upload_missing = "no_path",
  .envelope = envelope, .errors = { .moderation_text = 1 },
  /* data.taskId (seed 002), or data[0].taskId: baicai's image API answers a submit with
   * data:[{taskId, status}] ([baoyu] in providers.md 10.2 item 1) */
  .task_id = "data[0].taskId", .task_id_named = "data.taskId",
  /* data[0].status ([baoyu] in providers.md 10.1); on COMPLETED the URLs come from /result; a
   * failure reason field is NOT FOUND; a message is read if there is one */
  .state = "data[0].status",
  .words = { .queued = "PENDING", .running = "RUNNING", .result = "COMPLETED", .failed = "FAILED",
             .canceled = "CANCELED" },
  .on_failed = { "FAILED", "baicai reports the task failed (it gives no reason)" },
  .on_canceled = { "CANCELED", "the task was canceled at baicai" },
  .progress = "data[0].progress",
  .reason = { "data[0].message" },
};

PF_PROTO_CALLS(baicai)

static int build_submit(const pf_ctx *ctx, const pf_request *rq, pf_http_req *out, pf_err *err) {
  json_t *o = json_object(), *input = json_object(), *refs = json_array();
  if (!o || !input || !refs) { json_decref(o); json_decref(input); json_decref(refs); return pf_proto_nomem(&baicai, err); }
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
  if (bad) { json_decref(o); return pf_proto_nomem(&baicai, err); }
  return pf_json_post(ctx, baicai.submit, o, out, err);
}

/* {code (0 = success), message, data, ts}; errors may also come as a bare {"message"} with a
 * 400 (seen for moderation, 3P). A code that looks like an HTTP status stands for one. */
static const json_t *envelope(const pf_proto *p, long http, const json_t *root, pf_err *err) {
  const json_t *code = json_object_get(root, "code");
  long long c = json_is_integer(code) ? json_integer_value(code) : (http >= 300 ? -1 : 0);
  if (c == 0 && http >= 200 && http < 300) return root;
  long status = http >= 300 ? http : (c >= 400 && c < 600 ? (long)c : http);
  char cs[32];
  snprintf(cs, sizeof cs, "%lld", c);
  return pf_proto_fail(p, status >= 400 ? pf_kind_for_http(status) : PF_EK_PROVIDER, http, status,
                       cs, pf_json_string(root, "message"), err);
}

static int build_result(const pf_ctx *ctx, const char *task_id, pf_http_req *out, pf_err *err) {
  return pf_proto_get(&baicai, ctx, baicai.result, task_id, out, err);
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
  json_t *root;
  if (!pf_proto_reply(&baicai, http, body, len, &root, err)) return -1;
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
  if (rc) return pf_proto_nomem(&baicai, err);
  st->state = PF_ST_SUCCEEDED;
  if (st->nvideos == 0) pf_status_no_video(st, ctx->provider);
  return 0;
}

const pf_adapter pf_adapter_baicai = {
  .name = "baicai", PF_PROTO_MEMBERS(baicai), .build_submit = build_submit,
  .build_result = build_result, .parse_result = parse_result,
  .build_upload = baicai_build_upload, .parse_upload = baicai_parse_upload,
};
