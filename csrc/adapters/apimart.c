/* apimart.c: the apimart wire protocol (pixverse-v6: text, image, transition, fusion, extend).
 * Source of every fact: ../shared/providers.md section 7 and seed 003. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adapter.h"

static int nomem(pf_err *err) {
  pf_err_set(err, PF_EK_NOMEM, 0, "nomem", "out of memory building the apimart request");
  return -1;
}

/* POST /v1/videos/generations. apimart picks the mode from the fields present ("first match
 * by priority"), and the priority is not documented, so exactly one mode field is ever sent
 * [INFERENCE, providers.md 7.1]. */
static int build_submit(const pf_ctx *ctx, const pf_request *rq, pf_http_req *out, pf_err *err) {
  json_t *o = json_object();
  if (!o) return nomem(err);
  int bad = 0;
  bad |= json_object_set_new(o, "model", json_string(rq->model));
  /* apimart has no reference names: "@hero" becomes "image 1" by position, as its own
   * example ("the outfit from image 2") refers to images */
  if (rq->mode == PF_MODE_FUSION) {
    char *p = pf_prompt_by_position(rq->prompt, rq->refs, rq->nrefs, "image %zu");
    if (!p) { json_decref(o); return nomem(err); }
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
  if (bad) { json_decref(o); return nomem(err); }
  return pf_json_post(ctx, "/v1/videos/generations", o, out, err);
}

/* The error envelope {"error":{"code","message","type"}} (the 400 example omits code). */
static void parse_error(const pf_ctx *ctx, long http, const json_t *root, pf_err *err) {
  const json_t *e = json_object_get(root, "error");
  const char *type = pf_json_string(e, "type");
  const char *msg = pf_json_string(e, "message");
  if (!msg) msg = pf_json_string(root, "message");
  pf_errkind kind = pf_kind_for_http(http);
  if (type) {
    if (strcmp(type, "invalid_request_error") == 0) kind = PF_EK_INVALID;
    else if (strcmp(type, "authentication_error") == 0) kind = PF_EK_AUTH;
    else if (strcmp(type, "quota_not_enough") == 0) kind = PF_EK_QUOTA;
    else if (strcmp(type, "rate_limit_error") == 0) kind = PF_EK_RATE_LIMIT;
  }
  /* the body of an unknown-task reply is not documented: the status decides [INFERENCE] */
  if (http == 404) kind = PF_EK_NOT_FOUND;
  if (pf_text_says_moderated(msg)) kind = PF_EK_MODERATED;
  if (http < 400 && kind == PF_EK_PROVIDER && !type) kind = PF_EK_PROTOCOL;
  pf_err_set(err, kind, http, type ? type : "http_error", "%s",
             msg ? msg : "apimart returned an error without a message");
  if (kind == PF_EK_PROVIDER && http == 0) err->retryable = 0;
  (void)ctx;
}

/* The reply's JSON object when it is a success, else NULL with err filled from the error
 * envelope. An unknown task id's reply is NOT FOUND in the docs; a 404 is assumed. */
static json_t *success_reply(const pf_ctx *ctx, long http, const char *body, size_t len,
                             pf_err *err) {
  json_t *root = pf_json_parse_object(body, len, http, err);
  if (root && (http < 200 || http >= 300 || json_object_get(root, "error"))) {
    parse_error(ctx, http, root, err);
    json_decref(root);
    root = NULL;
  }
  return root;
}

static int parse_submit(const pf_ctx *ctx, long http, const char *body, size_t len,
                        char **task_id, pf_err *err) {
  json_t *root = success_reply(ctx, http, body, len, err);
  if (!root) return -1;
  /* {"code":200,"data":[{"status":"submitted","task_id":"task_01..."}]} (seed 003, verbatim);
   * an object in place of the one-element array is accepted too */
  const json_t *data = json_object_get(root, "data");
  const json_t *item = json_is_array(data) ? json_array_get(data, 0) : data;
  return pf_reply_id(root, json_object_get(item, "task_id"), http, ctx->provider,
                     "data[0].task_id", task_id, err);
}

static int build_status(const pf_ctx *ctx, const char *task_id, pf_http_req *out, pf_err *err) {
  return pf_get_by_id(ctx, "/v1/tasks/%s", task_id, out, err);
}

/* url is documented as an array of strings; a bare string is accepted too. */
static int add_videos(const json_t *videos, pf_status *st) {
  size_t i;
  json_t *v;
  json_array_foreach(videos, i, v) {
    double exp = 0;
    pf_json_number(v, "expires_at", &exp);
    json_t *url = json_object_get(v, "url");
    if (json_is_string(url) && json_string_length(url) > 0) {
      if (pf_status_add_video(st, json_string_value(url), exp)) return -1;
    } else if (json_is_array(url)) {
      size_t j;
      json_t *u;
      json_array_foreach(url, j, u)
        if (json_is_string(u) && json_string_length(u) > 0)
          if (pf_status_add_video(st, json_string_value(u), exp)) return -1;
    }
  }
  return 0;
}

static int parse_status(const pf_ctx *ctx, long http, const char *body, size_t len,
                        pf_status *st, pf_err *err) {
  json_t *root = success_reply(ctx, http, body, len, err);
  if (!root) return -1;
  const json_t *data = json_object_get(root, "data");
  const char *status = pf_json_string(data, "status");
  if (!status) {
    json_decref(root);
    return pf_missing(err, http, ctx->provider, "data.status");
  }
  double d;
  if (pf_json_number(data, "progress", &d) == 0 && d >= 0 && d <= 100) st->progress = (int)d;
  /* cost is a currency amount, credits_cost the same price in apimart's credits (seed 003:
   * 0.2 and 2); both are kept. The status page names no currency: USD is assumed [INFERENCE] */
  if (pf_json_number(data, "cost", &d) == 0) pf_status_add_cost(st, d, "USD");
  if (pf_json_number(data, "credits_cost", &d) == 0) pf_status_add_cost(st, d, "credits");
  double est, created;
  if (pf_json_number(data, "estimated_time", &est) == 0 &&
      pf_json_number(data, "created", &created) == 0 && ctx->wall_now > 0) {
    double left = created + est - ctx->wall_now;
    st->eta = left > 0 ? left : 0;
  }

  if (strcmp(status, "completed") == 0) {
    st->state = PF_ST_SUCCEEDED;
    const json_t *res = json_object_get(data, "result");
    if (add_videos(json_object_get(res, "videos"), st)) {
      json_decref(root);
      pf_err_set(err, PF_EK_NOMEM, 0, "nomem", "out of memory");
      return -1;
    }
    if (st->nvideos == 0) pf_status_no_video(st, ctx->provider);
  } else if (strcmp(status, "failed") == 0) {
    const json_t *e = json_object_get(data, "error");
    const char *msg = pf_json_string(e, "message");
    const char *code = pf_json_string(e, "code");
    /* moderation has no status of its own: "pixverse error 400063: moderation failed" */
    int mod = pf_text_says_moderated(msg);
    st->state = mod ? PF_ST_MODERATED : PF_ST_FAILED;
    pf_err_set(&st->err, mod ? PF_EK_MODERATED : PF_EK_FAILED, 0, code ? code : "task_failed",
               "%s", msg ? msg : "apimart reports the generation failed without a reason");
  } else if (strcmp(status, "cancelled") == 0 || strcmp(status, "canceled") == 0) {
    st->state = PF_ST_CANCELED;
    pf_err_set(&st->err, PF_EK_CANCELED, 0, "cancelled", "the task was cancelled at apimart");
  } else if (strcmp(status, "processing") == 0) {
    st->state = PF_ST_RUNNING;
  } else {
    /* pending, submitted, and anything undocumented: keep polling */
    st->state = strcmp(status, "pending") == 0 || strcmp(status, "submitted") == 0
                ? PF_ST_QUEUED : PF_ST_RUNNING;
  }
  json_decref(root);
  return 0;
}

/* POST /v1/uploads/images, multipart "file" (jpeg/png/webp/gif, at most 20 MB) -> {"url": ...},
 * valid 72 h (providers.md 7.3). */
static int build_upload(const pf_ctx *ctx, pf_upload *up, pf_http_req *out, pf_err *err) {
  return pf_multipart_upload(ctx, "/v1/uploads/images", "file", up, out, err);
}

static int parse_upload(const pf_ctx *ctx, pf_upload *up, long http, const char *body, size_t len,
                        pf_err *err) {
  json_t *root = success_reply(ctx, http, body, len, err);
  if (!root) return -1;
  const char *url = pf_json_string(root, "url");
  if (!url || !url[0]) {
    pf_err_set(err, PF_EK_PROTOCOL, http, "no_url", "apimart's upload reply has no url");
    err->retryable = 1;
    json_decref(root);
    return -1;
  }
  up->result = pf_strdup(url);
  up->ttl = 72 * 3600;
  json_decref(root);
  return up->result ? 0 : nomem(err);
}

const pf_adapter pf_adapter_apimart = {
  .name = "apimart",
  .build_submit = build_submit, .parse_submit = parse_submit,
  .build_status = build_status, .parse_status = parse_status,
  .build_upload = build_upload, .parse_upload = parse_upload,
};
