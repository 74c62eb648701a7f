/* apimart.c: the sandbox's emulation of apimart (pixverse-v6), from ../shared/providers.md
 * section 7 and seed 003. Written from the spec alone: it shares no code with the adapter. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sandbox.h"

#define GW SBX_GW_APIMART

static enum MHD_Result err400(const sbx_req *r, const char *fmt, ...)
  __attribute__((format(printf, 2, 3)));
static enum MHD_Result err400(const sbx_req *r, const char *fmt, ...) {
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  /* the documented 400 example has no "code" member */
  return sbx_reply_json(r->conn, GW, 400,
                        json_pack("{s:{s:s,s:s}}", "error", "type", "invalid_request_error",
                                  "message", msg), NULL);
}

/* Returns 1 and replies when the key is refused; sets *key otherwise. Magic keys are listed in
 * docs/sandbox.md. */
static int refuse_key(const sbx_req *r, const char **key, enum MHD_Result *ret) {
  const char *k = sbx_bearer(r->conn);
  if (!k || strcmp(k, "invalid") == 0) {
    *ret = sbx_reply_json(r->conn, GW, 401,
                          json_pack("{s:{s:i,s:s,s:s}}", "error", "code", 401, "message",
                                    "身份验证失败，请检查您的 API 密钥", "type",
                                    "authentication_error"), NULL);
    return 1;
  }
  if (strcmp(k, "noquota") == 0) {
    *ret = sbx_reply_json(r->conn, GW, 403,
                          json_pack("{s:{s:i,s:s,s:s}}", "error", "code", 403, "message",
                                    "insufficient quota: balance=0, required=0.25", "type",
                                    "quota_not_enough"), NULL);
    return 1;
  }
  if (strcmp(k, "ratelimit") == 0) {
    /* Retry-After on apimart's 429 is NOT FOUND in its docs; the sandbox sends one anyway so
     * that clients which honour it can be tested [INFERENCE] */
    *ret = sbx_reply_json(r->conn, GW, 429,
                          json_pack("{s:{s:i,s:s,s:s}}", "error", "code", 429, "message",
                                    "请求过于频繁，请稍后再试", "type", "rate_limit_error"), "1");
    return 1;
  }
  *key = k;
  return 0;
}

static const char *const resolutions[] = { "360p", "540p", "720p", "1080p", NULL };
static const char *const ratios[] = { "16:9", "4:3", "1:1", "3:4", "9:16", "2:3", "3:2", "21:9", NULL };

static enum MHD_Result submit(const sbx_req *r) {
  enum MHD_Result ret;
  const char *key;
  SBX_COUNT(GW, submits);
  if (refuse_key(r, &key, &ret)) return ret;
  json_error_t je;
  json_t *b = json_loadb(r->body, r->body_len, 0, &je);
  if (!json_is_object(b)) {
    json_decref(b);
    return err400(r, "invalid JSON body: %s", je.text);
  }
  enum MHD_Result out;
  const char *model = json_string_value(json_object_get(b, "model"));
  const char *prompt = json_string_value(json_object_get(b, "prompt"));
  json_t *v;
  const char *mode = "text";
  int nmodes = 0;
  if (!model || strcmp(model, "pixverse-v6") != 0) {
    out = err400(r, "invalid model '%s', only pixverse-v6 is supported", model ? model : "");
    goto done;
  }
  if (!prompt || !prompt[0]) { out = err400(r, "prompt is required"); goto done; }
  if (sbx_utf8_len(prompt) > 5000) {
    out = err400(r, "prompt too long: %ld characters, at most 5000", (long)sbx_utf8_len(prompt));
    goto done;
  }
  if ((v = json_object_get(b, "negative_prompt")) &&
      (!json_is_string(v) || sbx_utf8_len(json_string_value(v)) > 2048)) {
    out = err400(r, "negative_prompt must be a string of at most 2048 characters");
    goto done;
  }
  if ((v = json_object_get(b, "resolution")) &&
      (!json_is_string(v) || !sbx_one_of(json_string_value(v), resolutions))) {
    out = err400(r, "invalid resolution '%s', allowed: 360p, 540p, 720p, 1080p",
                 json_is_string(v) ? json_string_value(v) : "?");
    goto done;
  }
  if ((v = json_object_get(b, "size")) &&
      (!json_is_string(v) || !sbx_one_of(json_string_value(v), ratios))) {
    out = err400(r, "invalid size '%s', allowed: 16:9, 4:3, 1:1, 3:4, 9:16, 2:3, 3:2, 21:9",
                 json_is_string(v) ? json_string_value(v) : "?");
    goto done;
  }
  if ((v = json_object_get(b, "seed")) &&
      (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > 2147483647)) {
    out = err400(r, "invalid seed, allowed range: 0-2147483647");
    goto done;
  }
  if ((v = json_object_get(b, "motion_mode")) &&
      (!json_is_string(v) || strcmp(json_string_value(v), "normal") != 0)) {
    out = err400(r, "motion_mode '%s' is not supported by pixverse-v6 (only normal)",
                 json_is_string(v) ? json_string_value(v) : "?");
    goto done;
  }
  for (const char *const *f = (const char *const[]){ "audio", "watermark", NULL }; *f; f++)
    if ((v = json_object_get(b, *f)) && !json_is_boolean(v)) {
      out = err400(r, "%s must be a boolean", *f);
      goto done;
    }

  /* which mode the fields select; the gateway's own priority order is not documented, so the
   * sandbox refuses a body that names two modes [INFERENCE: stricter than the gateway] */
  json_t *imgs = json_object_get(b, "image_urls");
  json_t *first = json_object_get(b, "first_frame_image"), *last = json_object_get(b, "last_frame_image");
  json_t *refs = json_object_get(b, "img_references");
  json_t *ext = json_object_get(b, "extend_from_task_id");
  if (imgs) { nmodes++; mode = "image"; }
  if (first || last) { nmodes++; mode = "transition"; }
  if (refs) { nmodes++; mode = "fusion"; }
  if (ext) { nmodes++; mode = "extend"; }
  if (nmodes > 1) {
    out = err400(r, "conflicting generation modes: send only one of image_urls, first/last frame, "
                 "img_references, extend_from_task_id");
    goto done;
  }
  if (imgs) {
    if (!json_is_array(imgs) || json_array_size(imgs) < 1 ||
        !sbx_is_http_url(json_string_value(json_array_get(imgs, 0)))) {
      out = err400(r, "image_urls must hold a public http(s) URL");
      goto done;
    }
  }
  if (first || last) {
    if (!sbx_is_http_url(json_string_value(first)) || !sbx_is_http_url(json_string_value(last))) {
      out = err400(r, "first_frame_image and last_frame_image must be given together as public "
                   "http(s) URLs");
      goto done;
    }
  }
  if (refs) {
    size_t n = json_is_array(refs) ? json_array_size(refs) : 0;
    if (n < 1 || n > 7) {
      out = err400(r, "img_references must hold 1-7 images, got %ld", (long)n);
      goto done;
    }
    for (size_t i = 0; i < n; i++)
      if (!sbx_is_http_url(json_string_value(json_array_get(refs, i)))) {
        out = err400(r, "img_references[%ld] is not a public http(s) URL (base64 and data URIs "
                     "are not accepted)", (long)i);
        goto done;
      }
  }
  if (ext) {
    sbx_task src;
    const char *sid = json_string_value(ext);
    if (!sid || !sbx_task_get(GW, sid, &src) || strcmp(src.key, key) != 0) {
      out = err400(r, "extend_from_task_id '%s' is not a task of this account", sid ? sid : "");
      goto done;
    }
    if (sbx_task_phase(&src, sbx_now()).phase < 2 || src.outcome != SBX_OK) {
      out = err400(r, "extend_from_task_id '%s' is not completed", sid);
      goto done;
    }
  }
  if ((v = json_object_get(b, "duration"))) {
    json_int_t d = json_is_integer(v) ? json_integer_value(v) : -1;
    if (strcmp(mode, "transition") == 0 && d != 5 && d != 8) {
      out = err400(r, "invalid duration %ld, transition mode allows only 5 or 8 seconds", (long)d);
      goto done;
    }
    if (d < 1 || d > 15) {
      out = err400(r, "invalid duration %ld, allowed range: 1-15 seconds", (long)d);
      goto done;
    }
  }

  sbx_task *t = sbx_task_new(GW, key, prompt, mode, "task_01", "0123456789ABCDEFGHJKMNPQRSTVWXYZ", 24);
  if (!t) { out = sbx_reply(r->conn, GW, 500, "text/plain", "out of memory", 13, NULL); goto done; }
  out = sbx_reply_json(r->conn, GW, 200,
                       json_pack("{s:i,s:[{s:s,s:s}]}", "code", 200, "data", "status", "submitted",
                                 "task_id", t->id), NULL);
done:
  json_decref(b);
  return out;
}

static enum MHD_Result query(const sbx_req *r, const char *id) {
  enum MHD_Result ret;
  const char *key;
  SBX_COUNT(GW, polls);
  if (refuse_key(r, &key, &ret)) return ret;
  sbx_task t;
  if (!sbx_task_poll(GW, id, &t) || strcmp(t.key, key) != 0) {
    /* the reply for an unknown id is NOT FOUND in apimart's docs: a 404 in the documented
     * error envelope is assumed [INFERENCE] */
    return sbx_reply_json(r->conn, GW, 404,
                          json_pack("{s:{s:i,s:s,s:s}}", "error", "code", 404, "message",
                                    "task not found", "type", "invalid_request_error"), NULL);
  }
  double now = sbx_now();
  sbx_phase p = sbx_task_phase(&t, now);
  json_int_t created = (json_int_t)t.created;
  json_int_t est = (json_int_t)(t.estimate + 0.999);   /* the gateway's estimate, not the truth */
  json_t *data;
  if (p.phase == 0) {
    data = json_pack("{s:s,s:s,s:i,s:I,s:I}", "id", t.id, "status", "pending", "progress", 0,
                     "created", created, "estimated_time", est);
  } else if (p.phase == 1) {
    data = json_pack("{s:s,s:s,s:i,s:I,s:I}", "id", t.id, "status", "processing", "progress",
                     p.pct, "created", created, "estimated_time", est);
  } else if (t.outcome == SBX_FAIL || t.outcome == SBX_MODERATE) {
    const char *msg = t.outcome == SBX_MODERATE ? "pixverse error 400063: moderation failed"
                                                : "pixverse error 500100: generation failed";
    data = json_pack("{s:s,s:s,s:i,s:f,s:i,s:I,s:I,s:{s:s,s:s,s:s}}", "id", t.id, "status",
                     "failed", "progress", 100, "cost", 0.0, "credits_cost", 0, "created", created,
                     "completed", (json_int_t)(t.created + (t.fail_at > 0 && t.fail_at < t.seconds
                                                           ? t.fail_at : t.seconds)), "error", "code",
                     "task_failed", "message", msg, "type", "task_failed");
  } else {
    char url[256];
    sbx_result_url(GW, &t, url, sizeof url);
    json_int_t done_at = (json_int_t)(t.created + t.seconds);
    json_t *urls = t.outcome == SBX_NO_VIDEO ? json_array() : json_pack("[s]", url);
    data = json_pack("{s:s,s:s,s:i,s:f,s:i,s:I,s:I,s:I,s:I,s:{s:[{s:o,s:I}]}}", "id", t.id,
                     "status", "completed", "progress", 100, "cost", 0.2, "credits_cost", 2,
                     "created", created, "completed", done_at, "estimated_time", est,
                     "actual_time", (json_int_t)(t.seconds + 0.5), "result", "videos", "url",
                     urls, "expires_at", done_at + 86400);
  }
  if (t.pad && t.pad <= 256u << 20) {
    /* an oversized reply, for the client's body cap (an extra member is harmless JSON) */
    char *pad = malloc(t.pad + 1);
    if (pad) {
      memset(pad, 'x', t.pad);
      pad[t.pad] = '\0';
      json_object_set_new(data, "padding", json_string(pad));
      free(pad);
    }
  }
  return sbx_reply_json(r->conn, GW, 200, json_pack("{s:i,s:o}", "code", 200, "data", data), NULL);
}

/* POST /v1/uploads/images: multipart "file" -> {url, filename, content_type, bytes, created_at},
 * the URL valid 72 h (providers.md 7.3). */
static enum MHD_Result upload(const sbx_req *r) {
  enum MHD_Result ret;
  const char *key;
  if (refuse_key(r, &key, &ret)) return ret;
  const sbx_field *f = sbx_form(r, "file");
  if (!f || !f->is_file) return err400(r, "multipart field 'file' is required");
  if (f->size > 20u * 1024 * 1024) return err400(r, "file too large: %zu bytes, at most 20 MB", f->size);
  if (!sbx_is_image(f)) return err400(r, "unsupported image type: jpeg, png, webp and gif are accepted");
  sbx_upload_seen(GW, f);
  char id[64], url[256];
  sbx_id64(id, sizeof id);
  snprintf(url, sizeof url, "%s://127.0.0.1:%u/apimart/uploads/%s", sbx_scheme(), g_sbx.port, id);
  sbx_object_put(GW, url, f->filename);
  return sbx_reply_json(r->conn, GW, 200,
                        json_pack("{s:s,s:s,s:s,s:I,s:I}", "url", url, "filename", f->filename,
                                  "content_type", "image/png", "bytes", (json_int_t)f->size,
                                  "created_at", (json_int_t)sbx_now()), NULL);
}

enum MHD_Result sbx_apimart(const sbx_req *r) {
  if (strcmp(r->method, "POST") == 0 && strcmp(r->path, "/v1/uploads/images") == 0)
    return upload(r);
  if (strcmp(r->method, "POST") == 0 && strcmp(r->path, "/v1/videos/generations") == 0)
    return submit(r);
  if (strcmp(r->method, "GET") == 0 && strncmp(r->path, "/v1/tasks/", 10) == 0 && r->path[10])
    return query(r, r->path + 10);
  return sbx_reply_json(r->conn, GW, 404,
                        json_pack("{s:{s:i,s:s,s:s}}", "error", "code", 404, "message",
                                  "no such endpoint", "type", "invalid_request_error"), NULL);
}
