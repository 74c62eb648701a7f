/* pixverse.c: the PixVerse platform openapi v2 wire protocol, for the `pixverse` preset
 * (API-KEY header) and the `quickrouter` relay (Bearer). Facts: ../shared/providers.md sections
 * 2, 3 and 10, seed 004. Ids (img_id, video_id) are JSON integers beyond 2^53: kept as digit
 * strings and written back as exact integers. Costs are PixVerse credits (Resp.credits). A relay
 * may answer with an OpenAI-style video object instead of the envelope: read too [INFERENCE]. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto.h"

static int headers(const pf_ctx *ctx, struct curl_slist **h, int json);
static const json_t *envelope(const pf_proto *p, long http, const json_t *root, pf_err *err);
static const pf_proto *shape(const pf_proto *p, long http, const json_t *root);
static void add_credits(const pf_ctx *ctx, const json_t *resp, pf_status *st);

/* ErrCode -> kind (providers.md 2.2, the platform's error-code page; 10001-10005 are auth
 * errors in the vendor's own MCP client). The first row that holds the code wins; any other code
 * is a provider error. */
static const struct { long long lo, hi; pf_errkind kind; int retry; } err_codes[] = {
  { 10001, 10005, PF_EK_AUTH, 0 },
  { 400012, 400012, PF_EK_AUTH, 0 }, { 500020, 500020, PF_EK_AUTH, 0 },
  { 500090, 500090, PF_EK_QUOTA, 0 }, { 500060, 500060, PF_EK_QUOTA, 0 },
  { 500044, 500044, PF_EK_RATE_LIMIT, 1 }, { 500069, 500069, PF_EK_RATE_LIMIT, 1 },
  { 500052, 500052, PF_EK_MODERATED, 0 }, { 500054, 500054, PF_EK_MODERATED, 0 },
  { 500063, 500063, PF_EK_MODERATED, 0 },
  { 500008, 500008, PF_EK_NOT_FOUND, 0 }, { 500064, 500064, PF_EK_NOT_FOUND, 0 },
  { 500031, 500031, PF_EK_PROVIDER, 1 }, { 500041, 500041, PF_EK_PROVIDER, 1 },
  { 500100, 500100, PF_EK_PROVIDER, 1 }, { 99999, 99999, PF_EK_PROVIDER, 1 },
  { 400000, 499999, PF_EK_INVALID, 0 },
  { 500030, 500042, PF_EK_INVALID, 0 },          /* image size/format/path */
  { 500070, 500071, PF_EK_INVALID, 0 },
};

/* The envelope {ErrCode, ErrMsg, Resp} (paths below are in Resp). */
static const pf_proto pixverse = {
  .name = "PixVerse",
  .status = "/openapi/v2/video/result/%s",
  /* multipart "image" (a file) or "image_url" (a URL the server fetches) -> Resp.img_id.
   * QuickRouter's upload path is inferred to be the same [INFERENCE]. An img_id's lifetime is
   * NOT FOUND in the docs. */
  .upload = "/openapi/v2/image/upload",
  .upload_result = "img_id", .upload_result_named = "Resp.img_id", .upload_ids = 1,
  .upload_missing = "no_img_id",
  .headers = headers, .envelope = envelope, .shape = shape,
  /* the fusion page documents only {}; the vendor's fusion guide says a video_id comes back,
   * and a relay passing PixVerse's reply through shows Resp{video_id, credits} ([PVg], [DMX],
   * [Comfy] in providers.md 10.1) */
  .task_id = "video_id", .task_id_named = "Resp.video_id",
  /* Resp.status. 5 covers queued and running. A url may already be filled at 5 and answers 404:
   * it is never read before status 1 (providers.md 2.6, "Trap"). The vendor's own client maps 2
   * to pending and 3 to in progress ([MCP] in providers.md 10.1, src/client/pixverse.py); the
   * public status list has neither. */
  .state = "status", .state_named = "Resp.status", .state_integer = 1,
  .words = { .succeeded = "1", .running = "5 3", .queued = "2", .canceled = "6", .moderated = "7",
             .failed = "8" },
  .on_canceled = { "6", "the video was deleted at PixVerse" },
  .on_moderated = { "7", "PixVerse's content moderation refused the video (its credits are refunded)" },
  .on_failed = { "8", "PixVerse reports the generation failed" },
  .extras = add_credits,
  .videos = { .url = { "url" } },
};

/* An OpenAI-style video object {id, object: "video", status, progress, ...}, as new-api relays
 * answer their own clients (providers.md 10.2 item 4) [INFERENCE for QuickRouter]. Only a 2xx
 * reply is read this way, so the table's envelope passes it through. */
static const pf_proto video_object = {
  .name = "PixVerse",
  /* a relay's own error codes, OpenAI-style (error.code / error.type) or new-api's task errors
   * (a top-level string code): what each says [INFERENCE: new-api relays and OpenAI's video API,
   * providers.md 3.2 and 10.2 item 4] */
  .errors = { .codes = { .auth = "invalid_api_key authentication_error",
                         .quota = "insufficient_quota insufficient_user_quota",
                         .rate_limit = "rate_limit_exceeded rate_limit_error",
                         .moderated = "moderation_blocked content_policy_violation sensitive_words_detected",
                         .not_found = "task_not_exist video_not_found not_found" } },
  .task_id = "id",
  /* the status: queued, in_progress, completed, failed (OpenAI's video API and new-api's); the
   * URL in metadata.url (new-api), url or video_url [INFERENCE] */
  .state = "status", .state_named = "status (of the video object)",
  .words = { .queued = "queued", .running = "in_progress", .succeeded = "completed",
             .failed = "failed", .canceled = "cancelled canceled" },
  .on_failed = { "failed", "the relay reports the generation failed without a reason" },
  .on_canceled = { "cancelled", "the video was cancelled at the relay" },
  .progress = "progress",
  .videos = { .url = { "metadata.url", "url", "metadata.video_url", "video_url" },
              .expires_at = "expires_at" },
  .reason = { "error", "error.message" }, .reason_code = "error.code", .reason_nonempty = 1,
};

PF_PROTO_CALLS(pixverse)

/* Every call: the key, and a fresh Ai-trace-id (the docs require a unique UUID per request;
 * reusing one is their FAQ's first cause of a video stuck "generating"). QuickRouter's page shows
 * no trace id; it is sent anyway, harmless to a relay that forwards it [INFERENCE]. */
static int headers(const pf_ctx *ctx, struct curl_slist **h, int json) {
  if (pf_auth_header(ctx, h) || pf_header_add(h, "Ai-trace-id: %s", ctx->trace_id ? ctx->trace_id : ""))
    return -1;
  if (json && (pf_header_add(h, "Content-Type: application/json") ||
               pf_header_add(h, "Accept: application/json")))
    return -1;
  return 0;
}

/* An id kept as a digit string, as the JSON integer the API wants. */
static json_t *id_integer(const char *s, const char *field, pf_err *err) {
  char *end;
  errno = 0;
  long long v = s ? strtoll(s, &end, 10) : 0;
  if (!s || !*s || *end || errno || v < 0) {
    pf_err_set(err, PF_EK_INVALID, 0, "bad_id", "%s must be a PixVerse id (digits), got '%s'",
               field, s ? s : "");
    return NULL;
  }
  json_t *j = json_integer(v);
  if (!j) pf_proto_nomem(&pixverse, err);
  return j;
}

static int set_id(json_t *o, const char *key, const char *value, const char *field, pf_err *err) {
  json_t *j = id_integer(value, field, err);
  if (!j) return -1;
  return json_object_set_new(o, key, j) ? pf_proto_nomem(&pixverse, err) : 0;
}

static const char *mode_path(pf_mode m) {
  static const char *const paths[PF_MODE__COUNT] = {
    [PF_MODE_TEXT] = "/openapi/v2/video/text/generate",
    [PF_MODE_IMAGE] = "/openapi/v2/video/img/generate",
    [PF_MODE_TRANSITION] = "/openapi/v2/video/transition/generate",
    [PF_MODE_FUSION] = "/openapi/v2/video/fusion/generate",
    [PF_MODE_EXTEND] = "/openapi/v2/video/extend/generate",
  };
  return m >= 0 && m < PF_MODE__COUNT ? paths[m] : paths[PF_MODE_TEXT];
}

static int build_submit(const pf_ctx *ctx, const pf_request *rq, pf_http_req *out, pf_err *err) {
  json_t *o = json_object();
  if (!o) return pf_proto_nomem(&pixverse, err);
  int bad = 0;
  /* duration, quality and (for text and fusion) aspect_ratio are required by the API: the
   * unified request leaves them optional, so pixflow fills the defaults it documents */
  bad |= json_object_set_new(o, "prompt", json_string(rq->prompt));
  bad |= json_object_set_new(o, "model", json_string(rq->model));
  bad |= json_object_set_new(o, "duration", json_integer(rq->duration > 0 ? rq->duration : 5));
  bad |= json_object_set_new(o, "quality", json_string(rq->resolution ? rq->resolution : "540p"));
  if (rq->mode == PF_MODE_TEXT || rq->mode == PF_MODE_FUSION)
    bad |= json_object_set_new(o, "aspect_ratio", json_string(rq->aspect_ratio ? rq->aspect_ratio : "16:9"));
  if (rq->negative_prompt)
    bad |= json_object_set_new(o, "negative_prompt", json_string(rq->negative_prompt));
  if (rq->has_seed) bad |= json_object_set_new(o, "seed", json_integer(rq->seed));
  if (rq->audio >= 0) bad |= json_object_set_new(o, "generate_audio_switch", json_boolean(rq->audio));
  if (bad) { json_decref(o); return pf_proto_nomem(&pixverse, err); }
  int rc = 0;
  switch (rq->mode) {
    case PF_MODE_FUSION: {
      json_t *a = json_array();
      if (!a || json_object_set_new(o, "image_references", a)) { rc = pf_proto_nomem(&pixverse, err); break; }
      for (size_t i = 0; rc == 0 && i < rq->nrefs; i++) {
        json_t *r = json_object();
        if (!r || json_array_append_new(a, r)) { rc = pf_proto_nomem(&pixverse, err); break; }
        if (json_object_set_new(r, "type", json_string(rq->refs[i].type ? rq->refs[i].type : "subject")) ||
            json_object_set_new(r, "ref_name", json_string(rq->refs[i].name)))
          rc = pf_proto_nomem(&pixverse, err);
        else
          rc = set_id(r, "img_id", rq->refs[i].images[0], "references[].image (an img_id)", err);
      }
      break;
    }
    case PF_MODE_IMAGE:
      rc = set_id(o, "img_id", rq->image, "image (an img_id)", err);
      break;
    case PF_MODE_TRANSITION:
      rc = set_id(o, "first_frame_img", rq->first_frame, "first_frame (an img_id)", err);
      if (rc == 0) rc = set_id(o, "last_frame_img", rq->last_frame, "last_frame (an img_id)", err);
      break;
    case PF_MODE_EXTEND:
      /* a video generated on this account: its video_id */
      rc = set_id(o, "source_video_id", rq->extend_from, "extend_from (a video_id)", err);
      break;
    default:
      break;
  }
  if (rc != 0) { json_decref(o); return -1; }
  return pf_proto_post_json(&pixverse, ctx, mode_path(rq->mode), o, out, err);
}

/* The envelope {ErrCode, ErrMsg, Resp}, its lower-case variant, or (from a relay) an
 * OpenAI-style {"error": {message, type, code}} or new-api's {"code", "message"}. Returns Resp
 * on success (borrowed from root), else NULL with err filled. */
static const json_t *envelope(const pf_proto *p, long http, const json_t *root, pf_err *err) {
  (void)p;
  const json_t *code = json_object_get(root, "ErrCode");
  const char *msg = pf_json_string(root, "ErrMsg");
  const json_t *resp = json_object_get(root, "Resp");
  if (!code) {
    code = json_object_get(root, "err_code");
    msg = pf_json_string(root, "err_msg");
    resp = json_object_get(root, "resp");
  }
  if (json_is_integer(code)) {
    long long c = json_integer_value(code);
    if (c == 0 && http >= 200 && http < 300) return resp;
    size_t i = 0, n = sizeof err_codes / sizeof err_codes[0];
    while (i < n && !(c >= err_codes[i].lo && c <= err_codes[i].hi)) i++;
    pf_errkind k = c == 0 ? pf_kind_for_http(http) : i < n ? err_codes[i].kind : PF_EK_PROVIDER;
    char cs[32];
    snprintf(cs, sizeof cs, "%lld", c);
    pf_err_set(err, k, http, cs, "%s", msg && msg[0] ? msg : "PixVerse returned an error without a message");
    if (c != 0) err->retryable = i < n && err_codes[i].retry;
    return NULL;
  }
  const char *m, *cstr;
  char cbuf[32];
  pf_error_fields(root, &m, &cstr, cbuf, sizeof cbuf);
  pf_errkind k = http >= 400 ? pf_kind_for_http(http) : PF_EK_PROTOCOL;
  int retry = http >= 400 ? pf_http_retryable(http) : 1;
  if (pf_text_says_quota(cstr) || pf_text_says_quota(m)) k = PF_EK_QUOTA;
  if (pf_text_says_moderated(m)) k = PF_EK_MODERATED;
  /* the specific code of an OpenAI-style body is error.code; error.type is its class */
  const json_t *e = json_object_get(root, "error");
  const char *ecode = pf_json_string(e, "code");
  if (!ecode) ecode = pf_json_string(root, "code");
  const char *relay[2] = { pf_json_string(e, "type"), ecode };
  for (int i = 0; http >= 400 && i < 2; i++) {
    pf_errkind rk = pf_kinds_find(&video_object.errors.codes, relay[i], PF_EK_NONE);
    if (rk != PF_EK_NONE) k = rk;
    if (rk == PF_EK_RATE_LIMIT) retry = 1;
  }
  pf_err_set(err, k, http, ecode ? ecode : cstr ? cstr : "bad_shape", "%s",
             m ? m : "the reply has neither ErrCode nor an error member");
  err->retryable = retry;
  return NULL;
}

/* A 2xx OpenAI-style video object is read by its own table. */
static const pf_proto *shape(const pf_proto *p, long http, const json_t *root) {
  const char *o = pf_json_string(root, "object");
  return http >= 200 && http < 300 && o && strcmp(o, "video") == 0 ? &video_object : p;
}

/* Resp.credits: what the task costs, in PixVerse credits ([DMX] in providers.md 10.1: the fusion
 * reply {"video_id":...,"credits":65}; the result's fields include credits). */
static void add_credits(const pf_ctx *ctx, const json_t *resp, pf_status *st) {
  (void)ctx;
  double d;
  if (pf_json_number(resp, "credits", &d) == 0 && d >= 0) pf_status_add_cost(st, d, "credits");
}

static void submit_costs(const pf_ctx *ctx, long http, const char *body, size_t len, pf_status *st) {
  pf_err e;
  json_t *root = pf_json_parse_object(body, len, http, &e);
  if (!root) return;
  pf_err_clear(&e);
  const json_t *resp = shape(&pixverse, http, root) != &pixverse ? NULL : envelope(&pixverse, http, root, &e);
  if (resp) add_credits(ctx, resp, st);
  json_decref(root);
}

static int build_upload(const pf_ctx *ctx, pf_upload *up, pf_http_req *out, pf_err *err) {
  out->method = "POST";
  out->url = pf_url_join(ctx->base_url, pixverse.upload);
  if (!out->url || headers(ctx, &out->headers, 0)) return pf_proto_nomem(&pixverse, err);
  int rc = up->path ? pf_http_add_part(out, "image", NULL, up->path, up->filename, up->mime)
                    : pf_http_add_part(out, "image_url", up->url, NULL, NULL, NULL);
  return rc ? pf_proto_nomem(&pixverse, err) : 0;
}

const pf_adapter pf_adapter_pixverse = {
  .name = "pixverse", PF_PROTO_MEMBERS(pixverse), .build_submit = build_submit,
  .build_upload = build_upload, .parse_upload = pixverse_parse_upload,
  .upload_urls = 1,
  .trace_ids = 1,
  .submit_costs = submit_costs,
};
