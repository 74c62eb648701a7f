/* jiekou.c: the sandbox's emulation of jiekou.ai's novita-style async API, from
 * ../shared/providers.md section 4 and seed 000. Shares no code with the adapter. */
#include <stdio.h>
#include <string.h>

#include "sandbox.h"

#define GW SBX_GW_JIEKOU

/* novita's error envelope {"code","reason","message","metadata"} [INFERENCE for jiekou] */
static enum MHD_Result fail(const sbx_req *r, unsigned http, const char *reason, const char *msg) {
  return sbx_reply_json(r->conn, GW, http, json_pack("{s:i,s:s,s:s,s:{}}", "code", (int)http,
                                                     "reason", reason, "message", msg, "metadata"),
                        http == 429 ? "1" : NULL);
}

static int refuse(const sbx_req *r, const char **key, enum MHD_Result *ret) {
  const char *k = sbx_bearer(r->conn);
  if (!k || strcmp(k, "invalid") == 0) { *ret = fail(r, 401, "FAILED_TO_AUTH", "invalid api key"); return 1; }
  if (strcmp(k, "noquota") == 0) { *ret = fail(r, 403, "NOT_ENOUGH_BALANCE", "not enough balance"); return 1; }
  if (strcmp(k, "ratelimit") == 0) { *ret = fail(r, 429, "RATE_LIMIT_EXCEEDED", "rate limit exceeded"); return 1; }
  *key = k;
  return 0;
}

static const char *const RES[] = { "360p", "540p", "720p", "1080p", NULL };
static const char *const RATIOS[] = { "16:9", "4:3", "1:1", "3:4", "9:16", "2:3", "3:2", "21:9", NULL };

static enum MHD_Result submit(const sbx_req *r) {
  enum MHD_Result ret;
  const char *key;
  SBX_COUNT(GW, submits);
  if (refuse(r, &key, &ret)) return ret;
  json_t *b = json_loadb(r->body, r->body_len, 0, NULL);
  enum MHD_Result out;
#define FAIL(msg) do { out = fail(r, 400, "INVALID_REQUEST_BODY", msg); goto done; } while (0)
  if (!json_is_object(b)) FAIL("the body is not JSON");
  json_t *images = json_object_get(b, "images");
  const char *prompt = json_string_value(json_object_get(b, "prompt"));
  size_t n = json_is_array(images) ? json_array_size(images) : 0;
  if (n < 1 || n > 7) FAIL("images must hold 1-7 items");
  size_t i;
  json_t *im;
  json_array_foreach(images, i, im) {
    const char *type = json_string_value(json_object_get(im, "type"));
    if (!type || (strcmp(type, "subject") != 0 && strcmp(type, "background") != 0)) FAIL("images[].type must be subject or background");
    if (!json_string_value(json_object_get(im, "ref_name"))) FAIL("images[].ref_name is required");
    if (!sbx_is_http_url(json_string_value(json_object_get(im, "image_url")))) FAIL("images[].image_url must be a URL");
  }
  if (!prompt || !prompt[0]) FAIL("prompt is required");
  const char *names[8] = { 0 };
  char bad[64];
  json_array_foreach(images, i, im) names[i] = json_string_value(json_object_get(im, "ref_name"));
  if (sbx_check_names(prompt, names, n, bad, sizeof bad)) FAIL("an @ref_name in the prompt matches no image, or is not followed by a space");
  json_t *v;
  if ((v = json_object_get(b, "duration")) && (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > 15))
    FAIL("duration must be 1-15");
  if ((v = json_object_get(b, "resolution")) && !sbx_one_of(json_string_value(v), RES)) FAIL("resolution is not supported");
  if ((v = json_object_get(b, "aspect_ratio")) && !sbx_one_of(json_string_value(v), RATIOS)) FAIL("aspect_ratio is not supported");
  if ((v = json_object_get(b, "generate_audio_switch")) && !json_is_boolean(v)) FAIL("generate_audio_switch must be a boolean");
  sbx_task *t = sbx_task_new(GW, key, prompt, "fusion", "", "0123456789abcdef", 32);
  if (!t) FAIL("out of memory");
  out = sbx_reply_json(r->conn, GW, 200, json_pack("{s:s}", "task_id", t->id), NULL);
done:
#undef FAIL
  json_decref(b);
  return out;
}

static enum MHD_Result result(const sbx_req *r) {
  enum MHD_Result ret;
  const char *key;
  SBX_COUNT(GW, polls);
  if (refuse(r, &key, &ret)) return ret;
  const char *id = MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, "task_id");
  sbx_task t;
  /* an unknown id's reply is NOT FOUND in the docs [INFERENCE: a 404 in the error envelope] */
  if (!id || !sbx_task_poll(GW, id, &t) || strcmp(t.key, key) != 0) return fail(r, 404, "TASK_NOT_FOUND", "task not found");
  double now = sbx_now();
  sbx_phase p = sbx_task_phase(&t, now);
  /* eta: the gateway's estimate of the time left (#estimate=S), not the truth */
  double eta = t.estimate - (now - t.created);
  if (eta < 0 || p.phase == 2) eta = 0;
  const char *status = p.phase == 0 ? "TASK_STATUS_QUEUED" : p.phase == 1 ? "TASK_STATUS_PROCESSING"
                     : t.outcome == SBX_FAIL || t.outcome == SBX_MODERATE ? "TASK_STATUS_FAILED"
                     : "TASK_STATUS_SUCCEED";
  const char *reason = t.outcome == SBX_MODERATE ? "content moderation: the output was flagged as inappropriate"
                     : t.outcome == SBX_FAIL ? "upstream error: generation failed" : "";
  json_t *videos = json_array();
  if (p.phase == 2 && strcmp(status, "TASK_STATUS_SUCCEED") == 0 && t.outcome != SBX_NO_VIDEO) {
    char url[256];
    sbx_result_url(GW, &t, url, sizeof url);
    /* numbers as strings, as novita sends its TTLs */
    json_array_append_new(videos, json_pack("{s:s,s:s,s:s}", "video_url", url, "video_url_ttl", "3600",
                                            "video_type", "mp4"));
  }
  /* the failure reason is in task.reason; jiekou's own client also reads task.error, then
   * task.message ([jk], providers.md 10.1): #reply=error or #reply=message puts it there, with
   * reason left empty */
  const char *where = sbx_reply_is(t.reply, "error") ? "error" : sbx_reply_is(t.reply, "message") ? "message" : "reason";
  int ended = p.phase == 2 && reason[0];
  json_t *task = json_pack("{s:s,s:s,s:s,s:s,s:i,s:i}", "task_id", t.id, "status", status,
                           "reason", ended && strcmp(where, "reason") == 0 ? reason : "",
                           "task_type", "pixverse-c1-r2v", "eta", (int)(eta + 0.5), "progress_percent", p.pct);
  if (ended && strcmp(where, "reason") != 0) json_object_set_new(task, where, json_string(reason));
  return sbx_reply_json(r->conn, GW, 200, json_pack("{s:o,s:o,s:{s:s}}", "task", task, "videos", videos,
                                                    "extra", "seed", "0"), NULL);
}

enum MHD_Result sbx_jiekou(const sbx_req *r) {
  if (strcmp(r->method, "POST") == 0 && strcmp(r->path, "/v3/async/pixverse-pixverse-c1-reference-to-video") == 0)
    return submit(r);
  if (strcmp(r->method, "GET") == 0 && strcmp(r->path, "/v3/async/task-result") == 0) return result(r);
  return fail(r, 404, "NOT_FOUND", "no such endpoint");
}
