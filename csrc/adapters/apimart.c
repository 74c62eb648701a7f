/* apimart.c: the apimart wire protocol (pixverse-v6: text, image, transition, fusion, extend).
 * Source of every fact: ../shared/providers.md section 7 and seed 003. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto.h"

static void extras(const pf_ctx *ctx, const json_t *in, pf_status *st);

static void extras(const pf_ctx *ctx, const json_t *in, pf_status *st);

static const pf_proto apimart = {
  .name = "apimart",
  .submit = "/v1/videos/generations",
  .status = "/v1/tasks/%s",
  /* multipart "file" (jpeg/png/webp/gif, at most 20 MB) -> {"url": ...}, valid 72 h
   * (providers.md 7.3) */
  .upload = "/v1/uploads/images", .upload_field = "file",
  .upload_result = "url", .upload_missing = "no_url", .upload_ttl = 72 * 3600,
  /* a reply is an error when its status is not 2xx or it has an error member. The body of an
   * unknown-task reply is not documented: the status decides [INFERENCE] (an unknown task id's
   * reply is NOT FOUND in the docs; a 404 is assumed) */
  /* the error envelope {"error":{"code","message","type"}} (the 400 example omits code): its type
   * decides the kind */
  .errors = { .when = "error", .message = { "error.message", "message" }, .code = "error.type",
              .codes = { .invalid = "invalid_request_error", .auth = "authentication_error",
                         .quota = "quota_not_enough", .rate_limit = "rate_limit_error" },
              .http = 404, .http_kind = PF_EK_NOT_FOUND,
              .moderation_text = 1, .protocol_below_400 = 1, .retry_by_kind = 1 },
  /* {"code":200,"data":[{"status":"submitted","task_id":"task_01..."}]} (seed 003, verbatim);
   * an object in place of the one-element array is accepted too */
  .task_id = "data[0].task_id",
  /* moderation has no status of its own: "failed" with "pixverse error 400063: moderation
   * failed" as its error.message; pending, submitted, and anything undocumented: keep polling */
  .state = "data.status",
  .words = { .queued = "pending submitted", .running = "processing", .succeeded = "completed",
             .failed = "failed", .canceled = "cancelled canceled" },
  .on_failed = { "task_failed", "apimart reports the generation failed without a reason" },
  .on_canceled = { "cancelled", "the task was cancelled at apimart" },
  .progress = "data.progress", .extras = extras,
  /* url is documented as an array of strings; a bare string is accepted too */
  .videos = { .list = "data.result.videos", .url = { "url" }, .url_lists = 1,
              .expires_at = "expires_at" },
  .reason = { "data.error.message" }, .reason_code = "data.error.code",
};

/* POST /v1/videos/generations. apimart picks the mode from the fields present ("first match
 * by priority"), and the priority is not documented, so exactly one mode field is ever sent
 * [INFERENCE, providers.md 7.1]. */
static int build_submit(const pf_ctx *ctx, const pf_request *rq, pf_http_req *out, pf_err *err) {
  json_t *o = json_object();
  if (!o) return pf_proto_nomem(&apimart, err);
  int bad = 0;
  bad |= json_object_set_new(o, "model", json_string(rq->model));
  /* apimart has no reference names: "@hero" becomes "image 1" by position, as its own
   * example ("the outfit from image 2") refers to images */
  if (rq->mode == PF_MODE_FUSION) {
    char *p = pf_prompt_by_position(rq->prompt, rq->refs, rq->nrefs, "image %zu");
    if (!p) { json_decref(o); return pf_proto_nomem(&apimart, err); }
    bad |= json_object_set_new(o, "prompt", json_string(p));
    free(p);
  } else {
    bad |= json_object_set_new(o, "prompt", json_string(rq->prompt));
  }
  if (rq->negative_prompt)
    bad |= json_object_set_new(o, "negative_prompt", json_string(rq->negative_prompt));
  if (rq->resolution) bad |= json_object_set_new(o, "resolution", json_string(rq->resolution));
  if (rq->duration > 0) bad |= json_object_set_new(o, "duration", json_integer(rq->duration));
  /* size is the aspect ratio, and only applies to text and fusion (validated in Lua) */
  if (rq->aspect_ratio) bad |= json_object_set_new(o, "size", json_string(rq->aspect_ratio));
  if (rq->has_seed) bad |= json_object_set_new(o, "seed", json_integer(rq->seed));
  if (rq->audio >= 0) bad |= json_object_set_new(o, "audio", json_boolean(rq->audio));
  if (rq->watermark >= 0) bad |= json_object_set_new(o, "watermark", json_boolean(rq->watermark));
  switch (rq->mode) {
    case PF_MODE_IMAGE: {
      json_t *a = json_array();
      bad |= !a || json_array_append_new(a, json_string(rq->image));
      bad |= json_object_set_new(o, "image_urls", a);
      break;
    }
    case PF_MODE_TRANSITION:
      bad |= json_object_set_new(o, "first_frame_image", json_string(rq->first_frame));
      bad |= json_object_set_new(o, "last_frame_image", json_string(rq->last_frame));
      break;
    case PF_MODE_FUSION: {
      json_t *a = json_array();
      bad |= !a;
      for (size_t i = 0; a && i < rq->nrefs; i++)
        bad |= json_array_append_new(a, json_string(rq->refs[i].images[0]));
      bad |= json_object_set_new(o, "img_references", a);
      break;
    }
    case PF_MODE_EXTEND:
      bad |= json_object_set_new(o, "extend_from_task_id", json_string(rq->extend_from));
      break;
    default:
      break;
  }
  if (bad) { json_decref(o); return pf_proto_nomem(&apimart, err); }
  return pf_json_post(ctx, apimart.submit, o, out, err);
}

/* cost is a currency amount, credits_cost the same price in apimart's credits (seed 003: 0.2 and
 * 2); both are kept. The status page names no currency: USD is assumed [INFERENCE]. The ETA is
 * the estimated_time counted from created. */
static void extras(const pf_ctx *ctx, const json_t *in, pf_status *st) {
  const json_t *data = json_object_get(in, "data");
  double d;
  if (pf_json_number(data, "cost", &d) == 0) pf_status_add_cost(st, d, "USD");
  if (pf_json_number(data, "credits_cost", &d) == 0) pf_status_add_cost(st, d, "credits");
  double est, created;
  if (pf_json_number(data, "estimated_time", &est) == 0 &&
      pf_json_number(data, "created", &created) == 0 && ctx->wall_now > 0) {
    double left = created + est - ctx->wall_now;
    st->eta = left > 0 ? left : 0;
  }
}

PF_PROTO_CALLS(apimart)

const pf_adapter pf_adapter_apimart = {
  .name = "apimart", PF_PROTO_MEMBERS(apimart), .build_submit = build_submit,
  .build_upload = apimart_build_upload, .parse_upload = apimart_parse_upload,
};
