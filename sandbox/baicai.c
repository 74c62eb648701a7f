/* baicai.c: the sandbox's emulation of baicaiinfer cloud: the documented submit (seed 002) and
 * the status, result and upload calls a third-party client uses (../shared/providers.md
 * section 6, [INFERENCE]). Shares no code with the adapter. */
#include <stdio.h>
#include <string.h>

#include "sandbox.h"

#define GW SBX_GW_BAICAI
#define TS "2026-03-09T10:44:54.716004004+08:00[Asia/Shanghai]"

static enum MHD_Result reply(const sbx_req *r, unsigned http, int code, const char *msg, json_t *data) {
  return sbx_reply_json(r->conn, GW, http, json_pack("{s:i,s:s,s:o,s:s}", "code", code, "message", msg,
                                                     "data", data ? data : json_null(), "ts", TS), NULL);
}

static int refuse(const sbx_req *r, const char **key, enum MHD_Result *ret) {
  const char *k = sbx_bearer(r->conn);
  if (!k || strcmp(k, "invalid") == 0) { *ret = reply(r, 401, 401, "unauthorized: invalid api key", NULL); return 1; }
  if (strcmp(k, "noquota") == 0) { *ret = reply(r, 402, 402, "insufficient balance", NULL); return 1; }
  if (strcmp(k, "ratelimit") == 0) { *ret = reply(r, 429, 429, "too many requests", NULL); return 1; }
  *key = k;
  return 0;
}

static const char *const RES[] = { "360p", "540p", "720p", "1080p", NULL };

static enum MHD_Result submit(const sbx_req *r) {
  enum MHD_Result ret;
  const char *key;
  SBX_COUNT(GW, submits);
  if (refuse(r, &key, &ret)) return ret;
  json_t *b = json_loadb(r->body, r->body_len, 0, NULL);
  enum MHD_Result out;
#define FAIL(msg) do { out = reply(r, 400, 400, msg, NULL); goto done; } while (0)
  if (!json_is_object(b)) FAIL("the body is not JSON");
  const char *model = json_string_value(json_object_get(b, "selected_model"));
  const char *type = json_string_value(json_object_get(b, "task_type"));
  json_t *in = json_object_get(b, "input");
  const char *prompt = json_string_value(json_object_get(in, "prompt"));
  const char *res = json_string_value(json_object_get(in, "resolution"));
  json_t *dur = json_object_get(in, "duration"), *refs = json_object_get(in, "mutil_reference");
  json_t *nv = json_object_get(in, "number_of_videos");
  if (!model || strcmp(model, "PixVerse-v4.5-MR2V") != 0) FAIL("unsupported selected_model");
  if (!type || strcmp(type, "multi_ref_img2video") != 0) FAIL("unsupported task_type");
  if (!prompt || !prompt[0]) FAIL("input.prompt is required");
  if (!sbx_one_of(res, RES)) FAIL("input.resolution must be 360p, 540p, 720p or 1080p");
  json_int_t d = json_is_integer(dur) ? json_integer_value(dur) : -1;
  if (d != 5 && d != 8) FAIL("input.duration must be 5 or 8");
  if (d == 8 && strcmp(res, "1080p") == 0) FAIL("1080p supports only 5 s");
  if (nv && (!json_is_integer(nv) || json_integer_value(nv) < 1 || json_integer_value(nv) > 4))
    FAIL("input.number_of_videos must be 1-4");
  size_t n = json_is_array(refs) ? json_array_size(refs) : 0;
  if (n < 1 || n > 3) FAIL("input.mutil_reference must hold 1-3 items");
  size_t i, j;
  json_t *ref, *u;
  json_array_foreach(refs, i, ref) {
    const char *t = json_string_value(json_object_get(ref, "type"));
    const char *name = json_string_value(json_object_get(ref, "name"));
    json_t *urls = json_object_get(ref, "urls");
    if (!t || (strcmp(t, "subject") != 0 && strcmp(t, "background") != 0)) FAIL("mutil_reference[].type must be subject or background");
    if (!name || !name[0]) FAIL("mutil_reference[].name is required");
    size_t nu = json_is_array(urls) ? json_array_size(urls) : 0;
    if (nu < 1 || nu > 3) FAIL("mutil_reference[].urls must hold 1-3 URLs");
    json_array_foreach(urls, j, u)
      if (!sbx_is_http_url(json_string_value(u))) FAIL("mutil_reference[].urls must be URLs");
    for (size_t k = 0; k < i; k++) {
      const char *other = json_string_value(json_object_get(json_array_get(refs, k), "name"));
      if (other && strcmp(other, name) == 0) FAIL("mutil_reference[].name must be unique");
    }
  }
  const char *names[4] = { 0 };
  char bad[64];
  json_array_foreach(refs, i, ref) names[i] = json_string_value(json_object_get(ref, "name"));
  /* the seed's own example has "@grass" at the end and "@dog paly": only the names are checked */
  const char *why = sbx_check_names(prompt, names, n, bad, sizeof bad);
  if (why && strstr(why, "match")) FAIL("the prompt names a reference that mutil_reference does not have");
  /* moderation is refused at submit with a bare message (seen by a third party) */
  if (strstr(prompt, "#moderate")) {
    out = sbx_reply_json(r->conn, GW, 400, json_pack("{s:s}", "message",
      "The content contains inappropriate information and does not pass the review."), NULL);
    goto done;
  }
  sbx_task *t = sbx_task_new(GW, key, prompt, "fusion", "", "0123456789abcdef", 32);
  if (!t) FAIL("out of memory");
  sbx_task_set(GW, t->id, model, nv ? (int)json_integer_value(nv) : 1, 0);
  /* data:{taskId} (seed 002), or with #reply=submit_array the data:[{taskId, status}] that
   * baicai's image API answers ([baoyu], providers.md 10.2 item 1) */
  if (sbx_reply_is(prompt, "submit_array"))
    out = reply(r, 200, 0, "任务提交成功", json_pack("[{s:s,s:s}]", "taskId", t->id, "status", "PENDING"));
  else
    out = reply(r, 200, 0, "任务提交成功", json_pack("{s:s}", "taskId", t->id));
done:
#undef FAIL
  json_decref(b);
  return out;
}

static enum MHD_Result task_call(const sbx_req *r, const char *id, int want_result) {
  enum MHD_Result ret;
  const char *key;
  SBX_COUNT(GW, polls);
  if (refuse(r, &key, &ret)) return ret;
  sbx_task t;
  if (!sbx_task_poll(GW, id, &t) || strcmp(t.key, key) != 0) return reply(r, 404, 404, "task not found", NULL);
  sbx_phase p = sbx_task_phase(&t, sbx_now());
  const char *status = p.phase == 0 ? "PENDING" : p.phase == 1 ? "RUNNING" : t.outcome == SBX_FAIL ? "FAILED" : "COMPLETED";
  if (!want_result)
    return reply(r, 200, 0, "success", json_pack("[{s:s,s:i}]", "status", status, "progress", p.pct));
  if (strcmp(status, "COMPLETED") != 0) return reply(r, 400, 400, "the task has not completed", NULL);
  json_t *urls = json_array();
  for (int k = 0; t.outcome != SBX_NO_VIDEO && k < t.nvideos; k++) {
    char url[256];
    snprintf(url, sizeof url, "%s://127.0.0.1:%u/baicai/files/%s-%d.mp4?expires=%.3f", sbx_scheme(), g_sbx.port,
             t.id, k, sbx_now() + t.url_ttl);
    json_array_append_new(urls, json_string(url));
  }
  /* the result's shapes a third-party client reads ([baoyu], providers.md 6.2 and 10.2 item 1):
   * data.urls (the default), or with #reply=NAME: result (data.result.urls), strings (data[] of
   * URLs), items (data[].urls, one item per video), items_result (data[].result.urls) */
  json_t *data;
  if (sbx_reply_is(t.reply, "result")) {
    data = json_pack("{s:{s:o}}", "result", "urls", urls);
  } else if (sbx_reply_is(t.reply, "strings")) {
    data = urls;
  } else if (sbx_reply_is(t.reply, "items") || sbx_reply_is(t.reply, "items_result")) {
    int nested = sbx_reply_is(t.reply, "items_result");
    data = json_array();
    size_t i;
    json_t *u;
    json_array_foreach(urls, i, u) {
      json_t *one = json_pack("[O]", u);
      json_array_append_new(data, nested ? json_pack("{s:{s:o}}", "result", "urls", one)
                                         : json_pack("{s:o}", "urls", one));
    }
    json_decref(urls);
  } else {
    data = json_pack("{s:o}", "urls", urls);
  }
  return reply(r, 200, 0, "success", data);
}

static enum MHD_Result upload(const sbx_req *r) {
  enum MHD_Result ret;
  const char *key;
  if (refuse(r, &key, &ret)) return ret;
  const sbx_field *f = sbx_form(r, "file");
  if (!f || !f->is_file) return reply(r, 400, 400, "multipart field 'file' is required", NULL);
  if (!sbx_is_image(f)) return reply(r, 400, 400, "only images can be uploaded", NULL);
  sbx_upload_seen(GW, f);
  char id[32], path[256];
  sbx_id64(id, sizeof id);
  snprintf(path, sizeof path, "users/sandbox/%s.png", id);
  sbx_object_put(GW, path, "1");
  char url[320];
  snprintf(url, sizeof url, "%s://127.0.0.1:%u/baicai/resources/%s", sbx_scheme(), g_sbx.port, path);
  return reply(r, 200, 0, "上传成功", json_pack("{s:s}", "fullPath", url));
}

enum MHD_Result sbx_baicai(const sbx_req *r) {
  static const char tasks[] = "/v1/comfyui/tasks/";
  if (strcmp(r->method, "POST") == 0 && strcmp(r->path, "/v1/videos/generations") == 0) return submit(r);
  if (strcmp(r->method, "POST") == 0 && strcmp(r->path, "/v1/resources/upload") == 0) return upload(r);
  if (strcmp(r->method, "GET") == 0 && strncmp(r->path, "/resources/", 11) == 0)
    return sbx_serve_upload(r->conn, GW, r->path + 11);
  if (strcmp(r->method, "GET") == 0 && strncmp(r->path, tasks, sizeof tasks - 1) == 0) {
    char id[64];
    snprintf(id, sizeof id, "%s", r->path + sizeof tasks - 1);
    char *slash = strchr(id, '/');
    if (slash) {
      *slash = '\0';
      if (strcmp(slash + 1, "status") == 0) return task_call(r, id, 0);
      if (strcmp(slash + 1, "result") == 0) return task_call(r, id, 1);
    }
  }
  return reply(r, 404, 404, "no such endpoint", NULL);
}
