/* pixverse.c: the PixVerse platform openapi v2 wire protocol, for the `pixverse` preset
 * (API-KEY header) and the `quickrouter` relay (Bearer). Facts: ../shared/providers.md sections
 * 2, 3 and 10, seed 004. Ids (img_id, video_id) are JSON integers beyond 2^53: kept as digit
 * strings and written back as exact integers. Costs are PixVerse credits (Resp.credits). A relay
 * may answer with an OpenAI-style video object instead of the envelope: read too [INFERENCE]. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adapter.h"

static int nomem(pf_err *err) {
  pf_err_set(err, PF_EK_NOMEM, 0, "nomem", "out of memory building the PixVerse request");
  return -1;
}

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
  if (!j) nomem(err);
  return j;
}

static int set_id(json_t *o, const char *key, const char *value, const char *field, pf_err *err) {
  json_t *j = id_integer(value, field, err);
  if (!j) return -1;
  return json_object_set_new(o, key, j) ? nomem(err) : 0;
}

static const char *mode_path(pf_mode m) {
  switch (m) {
    case PF_MODE_FUSION: return "/openapi/v2/video/fusion/generate";
    case PF_MODE_IMAGE: return "/openapi/v2/video/img/generate";
    case PF_MODE_TRANSITION: return "/openapi/v2/video/transition/generate";
    case PF_MODE_EXTEND: return "/openapi/v2/video/extend/generate";
    default: return "/openapi/v2/video/text/generate";
  }
}

static int build_submit(const pf_ctx *ctx, const pf_request *rq, pf_http_req *out, pf_err *err) {
  json_t *o = json_object();
  if (!o) return nomem(err);
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
  if (bad) { json_decref(o); return nomem(err); }
  int rc = 0;
  switch (rq->mode) {
    case PF_MODE_FUSION: {
      json_t *a = json_array();
      if (!a || json_object_set_new(o, "image_references", a)) { rc = nomem(err); break; }
      for (size_t i = 0; rc == 0 && i < rq->nrefs; i++) {
        json_t *r = json_object();
        if (!r || json_array_append_new(a, r)) { rc = nomem(err); break; }
        if (json_object_set_new(r, "type", json_string(rq->refs[i].type ? rq->refs[i].type : "subject")) ||
            json_object_set_new(r, "ref_name", json_string(rq->refs[i].name)))
          rc = nomem(err);
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
  out->method = "POST";
  out->url = pf_url_join(ctx->base_url, mode_path(rq->mode));
  if (!out->url) { json_decref(o); return nomem(err); }
  if (pf_json_body(o, out, err) != 0) return -1;
  return headers(ctx, &out->headers, 1) ? nomem(err) : 0;
}

/* ErrCode -> kind (providers.md 2.2, the platform's error-code page; 10001-10005 are auth
 * errors in the vendor's own MCP client). */
static pf_errkind code_kind(long long code, int *retryable) {
  *retryable = 0;
  if (code >= 10001 && code <= 10005) return PF_EK_AUTH;
  switch (code) {
    case 400012: case 500020: return PF_EK_AUTH;
    case 500090: case 500060: return PF_EK_QUOTA;
    case 500044: case 500069: *retryable = 1; return PF_EK_RATE_LIMIT;
    case 500052: case 500054: case 500063: return PF_EK_MODERATED;
    case 500008: case 500064: return PF_EK_NOT_FOUND;
    case 500031: case 500041: case 500100: case 99999: *retryable = 1; return PF_EK_PROVIDER;
    default: break;
  }
  if (code >= 400000 && code < 500000) return PF_EK_INVALID;
  if (code >= 500030 && code <= 500042) return PF_EK_INVALID;   /* image size/format/path */
  if (code == 500070 || code == 500071) return PF_EK_INVALID;
  return PF_EK_PROVIDER;
}

/* A relay's own error codes, OpenAI-style (error.code / error.type) or new-api's task errors
 * (a top-level string code): what each says [INFERENCE: new-api relays and OpenAI's video API,
 * providers.md 3.2 and 10.2 item 4]. */
static pf_errkind relay_code_kind(const char *c, pf_errkind k, int *retryable) {
  static const struct { const char *code; pf_errkind kind; } codes[] = {
    { "invalid_api_key", PF_EK_AUTH }, { "authentication_error", PF_EK_AUTH },
    { "insufficient_quota", PF_EK_QUOTA }, { "insufficient_user_quota", PF_EK_QUOTA },
    { "rate_limit_exceeded", PF_EK_RATE_LIMIT }, { "rate_limit_error", PF_EK_RATE_LIMIT },
    { "moderation_blocked", PF_EK_MODERATED }, { "content_policy_violation", PF_EK_MODERATED },
    { "sensitive_words_detected", PF_EK_MODERATED },
    { "task_not_exist", PF_EK_NOT_FOUND }, { "video_not_found", PF_EK_NOT_FOUND },
    { "not_found", PF_EK_NOT_FOUND },
  };
  for (size_t i = 0; c && i < sizeof codes / sizeof codes[0]; i++)
    if (strcmp(c, codes[i].code) == 0) {
      if (codes[i].kind == PF_EK_RATE_LIMIT) *retryable = 1;
      return codes[i].kind;
    }
  return k;
}

/* The envelope {ErrCode, ErrMsg, Resp}, its lower-case variant, or (from a relay) an
 * OpenAI-style {"error": {message, type, code}} or new-api's {"code", "message"}. Returns Resp
 * on success (borrowed from root), else NULL with err filled. */
static const json_t *envelope(long http, const json_t *root, pf_err *err) {
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
    int retry = 0;
    pf_errkind k = c == 0 ? pf_kind_for_http(http) : code_kind(c, &retry);
    char cs[32];
    snprintf(cs, sizeof cs, "%lld", c);
    pf_err_set(err, k, http, cs, "%s", msg && msg[0] ? msg : "PixVerse returned an error without a message");
    if (c != 0) err->retryable = retry;
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
  if (http >= 400) {
    k = relay_code_kind(pf_json_string(e, "type"), k, &retry);
    k = relay_code_kind(ecode, k, &retry);
  }
  pf_err_set(err, k, http, ecode ? ecode : cstr ? cstr : "bad_shape", "%s",
             m ? m : "the reply has neither ErrCode nor an error member");
  err->retryable = retry;
  return NULL;
}

/* An OpenAI-style video object {id, object: "video", status, progress, ...}, as new-api relays
 * answer their own clients (providers.md 10.2 item 4) [INFERENCE for QuickRouter]. */
static int video_object(long http, const json_t *root) {
  const char *o = pf_json_string(root, "object");
  return http >= 200 && http < 300 && o && strcmp(o, "video") == 0;
}

/* Resp.credits: what the task costs, in PixVerse credits ([DMX] in providers.md 10.1: the fusion
 * reply {"video_id":...,"credits":65}; the result's fields include credits). */
static void add_credits(const json_t *resp, pf_status *st) {
  double d;
  if (pf_json_number(resp, "credits", &d) == 0 && d >= 0) pf_status_add_cost(st, d, "credits");
}

static int parse_submit(const pf_ctx *ctx, long http, const char *body, size_t len,
                        char **task_id, pf_err *err) {
  json_t *root = pf_json_parse_object(body, len, http, err);
  if (!root) return -1;
  if (video_object(http, root))
    return pf_reply_id(root, json_object_get(root, "id"), http, ctx->provider, "id", task_id, err);
  const json_t *resp = envelope(http, root, err);
  if (!resp) { json_decref(root); return -1; }
  /* the fusion page documents only {}; the vendor's fusion guide says a video_id comes back,
   * and a relay passing PixVerse's reply through shows Resp{video_id, credits} ([PVg], [DMX],
   * [Comfy] in providers.md 10.1) */
  return pf_reply_id(root, json_object_get(resp, "video_id"), http, ctx->provider, "Resp.video_id",
                     task_id, err);
}

static void submit_costs(const pf_ctx *ctx, long http, const char *body, size_t len, pf_status *st) {
  (void)ctx;
  pf_err e;
  json_t *root = pf_json_parse_object(body, len, http, &e);
  if (!root) return;
  pf_err_clear(&e);
  const json_t *resp = video_object(http, root) ? NULL : envelope(http, root, &e);
  if (resp) add_credits(resp, st);
  json_decref(root);
}

/* The status of an OpenAI-style video object: queued, in_progress, completed, failed (OpenAI's
 * video API and new-api's); the URL in metadata.url (new-api), url or video_url [INFERENCE]. */
static int parse_video_object(const pf_ctx *ctx, long http, json_t *root, pf_status *st, pf_err *err) {
  const char *s = pf_json_string(root, "status");
  if (!s) {
    json_decref(root);
    return pf_missing(err, http, ctx->provider, "status (of the video object)");
  }
  double d;
  if (pf_json_number(root, "progress", &d) == 0 && d >= 0 && d <= 100) st->progress = (int)d;
  if (strcmp(s, "completed") == 0) {
    st->state = PF_ST_SUCCEEDED;
    const json_t *meta = json_object_get(root, "metadata");
    const char *url = pf_json_string(meta, "url");
    if (!url || !url[0]) url = pf_json_string(root, "url");
    if (!url || !url[0]) url = pf_json_string(meta, "video_url");
    if (!url || !url[0]) url = pf_json_string(root, "video_url");
    double exp = 0;
    pf_json_number(root, "expires_at", &exp);
    if (url && url[0]) {
      if (pf_status_add_video(st, url, exp > 0 ? exp : 0)) { json_decref(root); return nomem(err); }
    } else {
      pf_status_no_video(st, ctx->provider);
    }
  } else if (strcmp(s, "failed") == 0) {
    const json_t *e = json_object_get(root, "error");
    const char *msg = json_is_string(e) ? json_string_value(e) : pf_json_string(e, "message");
    const char *code = pf_json_string(e, "code");
    int retry = 0;
    int mod = pf_text_says_moderated(msg) ||
              relay_code_kind(code, PF_EK_FAILED, &retry) == PF_EK_MODERATED;
    st->state = mod ? PF_ST_MODERATED : PF_ST_FAILED;
    pf_err_set(&st->err, mod ? PF_EK_MODERATED : PF_EK_FAILED, 0, code && code[0] ? code : "failed",
               "%s", msg && msg[0] ? msg : "the relay reports the generation failed without a reason");
  } else if (strcmp(s, "cancelled") == 0 || strcmp(s, "canceled") == 0) {
    st->state = PF_ST_CANCELED;
    pf_err_set(&st->err, PF_EK_CANCELED, 0, "cancelled", "the video was cancelled at the relay");
  } else {
    st->state = strcmp(s, "queued") == 0 ? PF_ST_QUEUED : PF_ST_RUNNING;
  }
  json_decref(root);
  return 0;
}

static int build_status(const pf_ctx *ctx, const char *task_id, pf_http_req *out, pf_err *err) {
  out->method = "GET";
  out->url = pf_url_with_id(ctx->base_url, "/openapi/v2/video/result/%s", task_id);
  if (!out->url || headers(ctx, &out->headers, 0)) return nomem(err);
  return 0;
}

static int parse_status(const pf_ctx *ctx, long http, const char *body, size_t len,
                        pf_status *st, pf_err *err) {
  json_t *root = pf_json_parse_object(body, len, http, err);
  if (!root) return -1;
  if (video_object(http, root)) return parse_video_object(ctx, http, root, st, err);
  const json_t *resp = envelope(http, root, err);
  const json_t *status = json_object_get(resp, "status");
  if (!resp || !json_is_integer(status)) {
    json_decref(root);
    return resp ? pf_missing(err, http, ctx->provider, "Resp.status") : -1;
  }
  add_credits(resp, st);
  switch (json_integer_value(status)) {
    case 1: {
      st->state = PF_ST_SUCCEEDED;
      const char *url = pf_json_string(resp, "url");
      if (url && url[0]) {
        if (pf_status_add_video(st, url, 0)) { json_decref(root); return nomem(err); }
      } else {
        pf_status_no_video(st, ctx->provider);
      }
      break;
    }
    /* 5 covers queued and running. A url may already be filled here and answers 404: it is
     * never read before status 1 (providers.md 2.6, "Trap") */
    case 5: st->state = PF_ST_RUNNING; break;
    /* the vendor's own client maps 2 to pending and 3 to in progress ([MCP] in providers.md
     * 10.1, src/client/pixverse.py); the public status list has neither */
    case 2: st->state = PF_ST_QUEUED; break;
    case 3: st->state = PF_ST_RUNNING; break;
    case 6:
      st->state = PF_ST_CANCELED;
      pf_err_set(&st->err, PF_EK_CANCELED, 0, "6", "the video was deleted at PixVerse");
      break;
    case 7:
      st->state = PF_ST_MODERATED;
      pf_err_set(&st->err, PF_EK_MODERATED, 0, "7",
                 "PixVerse's content moderation refused the video (its credits are refunded)");
      break;
    case 8:
      st->state = PF_ST_FAILED;
      pf_err_set(&st->err, PF_EK_FAILED, 0, "8", "PixVerse reports the generation failed");
      break;
    default: st->state = PF_ST_RUNNING; break;
  }
  json_decref(root);
  return 0;
}

/* POST /openapi/v2/image/upload: multipart "image" (a file) or "image_url" (a URL the server
 * fetches) -> Resp.img_id. QuickRouter's upload path is inferred to be the same [INFERENCE]. */
static int build_upload(const pf_ctx *ctx, pf_upload *up, pf_http_req *out, pf_err *err) {
  out->method = "POST";
  out->url = pf_url_join(ctx->base_url, "/openapi/v2/image/upload");
  if (!out->url || headers(ctx, &out->headers, 0)) return nomem(err);
  int rc = up->path ? pf_http_add_part(out, "image", NULL, up->path, up->filename, up->mime)
                    : pf_http_add_part(out, "image_url", up->url, NULL, NULL, NULL);
  return rc ? nomem(err) : 0;
}

static int parse_upload(const pf_ctx *ctx, pf_upload *up, long http, const char *body, size_t len,
                        pf_err *err) {
  (void)ctx;
  json_t *root = pf_json_parse_object(body, len, http, err);
  if (!root) return -1;
  const json_t *resp = envelope(http, root, err);
  if (!resp) { json_decref(root); return -1; }
  up->result = pf_json_id(json_object_get(resp, "img_id"));
  up->ttl = 0;          /* an img_id's lifetime is NOT FOUND in the docs */
  json_decref(root);
  if (!up->result) {
    pf_err_set(err, PF_EK_PROTOCOL, http, "no_img_id", "PixVerse's upload reply has no Resp.img_id");
    err->retryable = 1;
    return -1;
  }
  return 0;
}

const pf_adapter pf_adapter_pixverse = {
  .name = "pixverse",
  .build_submit = build_submit, .parse_submit = parse_submit,
  .build_status = build_status, .parse_status = parse_status,
  .build_upload = build_upload, .parse_upload = parse_upload,
  .upload_urls = 1,
  .trace_ids = 1,
  .submit_costs = submit_costs,
};
