/* pixverse.c: the sandbox's emulation of the PixVerse platform openapi v2 (under /pixverse) and
 * of the QuickRouter relay of it (under /quickrouter), from ../shared/providers.md sections 2-3
 * and seed 004. Written from the spec alone: it shares no code with the adapter. */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sandbox.h"

static int relay(const sbx_req *r) { return r->gw == SBX_GW_QUICKROUTER; }

/* {ErrCode, ErrMsg, Resp}: application errors arrive with HTTP 200 [INFERENCE, providers 2.2] */
static enum MHD_Result envelope(const sbx_req *r, unsigned http, long long code, json_t *resp,
                                const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static enum MHD_Result envelope(const sbx_req *r, unsigned http, long long code, json_t *resp,
                                const char *fmt, ...) {
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  if (code != 0) SBX_COUNT(r->gw, errors);
  return sbx_reply_json(r->conn, r->gw, http,
                        json_pack("{s:I,s:s,s:o}", "ErrCode", (json_int_t)code, "ErrMsg", msg,
                                  "Resp", resp ? resp : json_null()), NULL);
}

/* The key: PixVerse wants API-KEY and an Ai-trace-id UUID; the relay wants Bearer and answers
 * its own errors in the OpenAI style [INFERENCE: a new-api relay]. Magic keys: docs/sandbox.md. */
static int refuse(const sbx_req *r, const char **key, enum MHD_Result *ret) {
  const char *k = relay(r) ? sbx_bearer(r->conn) : sbx_header(r->conn, "API-KEY");
  if (relay(r)) {
    const char *msg = NULL, *type = NULL;
    unsigned http = 0;
    if (!k || strcmp(k, "invalid") == 0) { http = 401; msg = "invalid token"; type = "new_api_error"; }
    else if (strcmp(k, "noquota") == 0) { http = 403; msg = "user quota is not enough"; type = "insufficient_user_quota"; }
    else if (strcmp(k, "ratelimit") == 0) { http = 429; msg = "rate limit exceeded"; type = "rate_limit_error"; }
    if (http) {
      *ret = sbx_reply_json(r->conn, r->gw, http,
                            json_pack("{s:{s:s,s:s,s:s}}", "error", "message", msg, "type", type,
                                      "code", type), http == 429 ? "1" : NULL);
      return 1;
    }
  } else {
    if (!k || strcmp(k, "invalid") == 0) {
      /* 10001-10005 are the auth codes the vendor's own client knows */
      *ret = envelope(r, 200, 10002, NULL, "invalid api key");
      return 1;
    }
    if (strcmp(k, "noquota") == 0) { *ret = envelope(r, 200, 500090, NULL, "insufficient balance"); return 1; }
    if (strcmp(k, "ratelimit") == 0) {
      *ret = envelope(r, 200, 500044, NULL, "concurrent generation limit reached");
      return 1;
    }
    const char *trace = sbx_header(r->conn, "Ai-trace-id");
    if (!trace || strlen(trace) != 36 || trace[8] != '-' || trace[14] != '4') {
      *ret = envelope(r, 200, 400011, NULL, "empty parameter: Ai-trace-id must be a UUID");
      return 1;
    }
  }
  *key = k;
  return 0;
}

static const char *const RATIOS5[] = { "16:9", "4:3", "1:1", "3:4", "9:16", NULL };
static const char *const RATIOS8[] = { "16:9", "4:3", "1:1", "3:4", "9:16", "2:3", "3:2", "21:9", NULL };
static const char *const QUALITIES[] = { "360p", "540p", "720p", "1080p", NULL };
static const char *const MODELS[] = { "v4.5", "v5", "v5.5", "v5.6", "v6", "c1", NULL };

/* What a generation costs, in credits ("$1 = 100 credits"; v5 5 s: 45 at 540p, 120 at 1080p:
 * the platform's pricing pages, providers.md 10.3). 360p and 720p, other models and longer
 * durations are priced here by the same per-second rate [INFERENCE, illustrative]. */
static int credits_for(const char *quality, json_int_t seconds) {
  int per5 = strcmp(quality, "1080p") == 0 ? 120 : strcmp(quality, "720p") == 0 ? 60 : 45;
  return (int)((per5 * seconds + 4) / 5);
}

/* ref_name: the vendor's own client takes [a-zA-Z0-9_ ], 1-30 characters ([MCP] in providers.md
 * 10.1); that the server refuses other names is assumed [INFERENCE]. */
static int ref_name_ok(const char *s) {
  size_t n = 0;
  for (; s[n]; n++)
    if (!(isalnum((unsigned char)s[n]) && (unsigned char)s[n] < 0x80) && s[n] != '_' && s[n] != ' ') return 0;
  return n >= 1 && n <= 30;
}

/* A relay's own view of a task, OpenAI-style ({id, object: "video", status, ...}): what new-api
 * relays answer their clients (providers.md 10.2 item 4); QuickRouter does so for a prompt with
 * #reply=openai [INFERENCE]. The relay's id is "video_" and the platform's. */
static json_t *video_object(const sbx_task *t, const char *status, int pct) {
  char id[80];
  snprintf(id, sizeof id, "video_%s", t->id);
  return json_pack("{s:s,s:s,s:s,s:s,s:i,s:I}", "id", id, "object", "video", "model", t->model,
                   "status", status, "progress", pct, "created_at", (json_int_t)t->created);
}

/* An id the platform issued: a JSON integer whose digits this gateway handed out. */
static int known_id(const sbx_req *r, const json_t *v, const char *kind) {
  if (!json_is_integer(v)) return 0;
  char key[64], val[8];
  snprintf(key, sizeof key, "%s:%" JSON_INTEGER_FORMAT, kind, json_integer_value(v));
  return sbx_object_get(r->gw, key, val, sizeof val);
}

static enum MHD_Result generate(const sbx_req *r, const char *mode) {
  enum MHD_Result ret;
  const char *key;
  SBX_COUNT(r->gw, submits);
  if (refuse(r, &key, &ret)) return ret;
  json_t *b = json_loadb(r->body, r->body_len, 0, NULL);
  if (!json_is_object(b)) { json_decref(b); return envelope(r, 200, 400017, NULL, "invalid parameter: body is not JSON"); }
  enum MHD_Result out;
#define FAIL(code, ...) do { out = envelope(r, 200, code, NULL, __VA_ARGS__); goto done; } while (0)
  const char *model = json_string_value(json_object_get(b, "model"));
  const char *prompt = json_string_value(json_object_get(b, "prompt"));
  const char *quality = json_string_value(json_object_get(b, "quality"));
  const char *ratio = json_string_value(json_object_get(b, "aspect_ratio"));
  json_t *dur = json_object_get(b, "duration"), *seed = json_object_get(b, "seed");
  json_t *audio = json_object_get(b, "generate_audio_switch");
  if (!sbx_one_of(model, MODELS)) FAIL(400017, "invalid parameter: model '%s'", model ? model : "");
  if (!prompt || !prompt[0]) FAIL(400011, "empty parameter: prompt");
  if (sbx_utf8_len(prompt) > 2048) FAIL(400018, "prompt longer than 2048 characters");
  if (!sbx_one_of(quality, QUALITIES)) FAIL(400017, "invalid parameter: quality");
  int wide = strcmp(model, "v6") == 0 || strcmp(model, "c1") == 0;
  int older = strcmp(model, "v4.5") == 0 || strcmp(model, "v5") == 0;
  if (!json_is_integer(dur)) FAIL(400011, "empty parameter: duration");
  json_int_t d = json_integer_value(dur);
  if (wide ? (d < 1 || d > 15) : older ? (d != 5 && d != 8) : (d != 5 && d != 8 && d != 10))
    FAIL(400017, "invalid parameter: duration %" JSON_INTEGER_FORMAT " for %s", d, model);
  if (!older && !wide && d == 10 && strcmp(quality, "1080p") == 0)
    FAIL(400017, "invalid parameter: 10 s is not available at 1080p");
  if ((strcmp(mode, "fusion") == 0 || strcmp(mode, "text") == 0) && !sbx_one_of(ratio, wide ? RATIOS8 : RATIOS5))
    FAIL(400017, "invalid parameter: aspect_ratio '%s' for %s", ratio ? ratio : "", model);
  if (seed && (!json_is_integer(seed) || json_integer_value(seed) < 0 || json_integer_value(seed) > 2147483647))
    FAIL(400017, "invalid parameter: seed");
  if (audio && (!json_is_boolean(audio) || older || strcmp(model, "v5.5") == 0))
    FAIL(400017, "invalid parameter: generate_audio_switch is for v5.6, v6 and c1");

  if (strcmp(mode, "fusion") == 0) {
    json_t *refs = json_object_get(b, "image_references");
    size_t n = json_is_array(refs) ? json_array_size(refs) : 0;
    if (n < 1 || n > (older ? 3u : 7u))
      FAIL(400017, "invalid parameter: image_references must hold 1-%d items for %s", older ? 3 : 7, model);
    size_t i;
    json_t *ref;
    json_array_foreach(refs, i, ref) {
      const char *type = json_string_value(json_object_get(ref, "type"));
      const char *name = json_string_value(json_object_get(ref, "ref_name"));
      if (!type || (strcmp(type, "subject") != 0 && strcmp(type, "background") != 0))
        FAIL(400017, "invalid parameter: image_references[%zu].type", i);
      if (!name || !name[0]) FAIL(400011, "empty parameter: image_references[%zu].ref_name", i);
      if (!ref_name_ok(name))
        FAIL(400017, "invalid parameter: image_references[%zu].ref_name must be 1-30 letters, digits, '_' or spaces", i);
      if (!known_id(r, json_object_get(ref, "img_id"), "img"))
        FAIL(400032, "invalid image ID in image_references[%zu]", i);
    }
    const char *names[8] = { 0 };
    char bad[64];
    json_array_foreach(refs, i, ref) names[i] = json_string_value(json_object_get(ref, "ref_name"));
    const char *why = sbx_check_names(prompt, names, n, bad, sizeof bad);
    if (why) FAIL(400017, "invalid parameter: @%s in the prompt %s", bad, why);
  } else if (strcmp(mode, "img") == 0) {
    if (!known_id(r, json_object_get(b, "img_id"), "img")) FAIL(400032, "invalid image ID");
  } else if (strcmp(mode, "transition") == 0) {
    if (!known_id(r, json_object_get(b, "first_frame_img"), "img") ||
        !known_id(r, json_object_get(b, "last_frame_img"), "img"))
      FAIL(400032, "invalid image ID in first_frame_img or last_frame_img");
  } else if (strcmp(mode, "extend") == 0) {
    json_t *src = json_object_get(b, "source_video_id");
    char sid[32];
    sbx_task st;
    if (!json_is_integer(src)) FAIL(400011, "empty parameter: source_video_id");
    snprintf(sid, sizeof sid, "%" JSON_INTEGER_FORMAT, json_integer_value(src));
    if (!sbx_task_get(r->gw, sid, &st) || strcmp(st.key, key) != 0) FAIL(500008, "data not found");
    if (sbx_task_phase(&st, sbx_now()).phase < 2 || st.outcome != SBX_OK)
      FAIL(400017, "invalid parameter: the source video is not finished");
  }
  sbx_task *t = sbx_task_new(r->gw, key, prompt, mode, NULL, NULL, 0);
  if (!t) { out = sbx_reply(r->conn, r->gw, 500, "text/plain", "out of memory", 13, NULL); goto done; }
  /* reusing an Ai-trace-id is the FAQ's first cause of a video stuck "generating" */
  const char *trace = sbx_header(r->conn, "Ai-trace-id");
  char seen[8];
  int stuck = 0;
  if (trace) {
    char tkey[80];
    snprintf(tkey, sizeof tkey, "trace:%s", trace);
    stuck = sbx_object_get(r->gw, tkey, seen, sizeof seen);
    if (!stuck) sbx_object_put(r->gw, tkey, "1");
  }
  sbx_task_set(r->gw, t->id, model, 0, stuck);
  int credits = credits_for(quality, d);
  sbx_task_set_credits(r->gw, t->id, credits);
  if (relay(r) && sbx_reply_is(prompt, "openai")) {
    sbx_task ct;
    char pub[80];
    snprintf(pub, sizeof pub, "video_%s", t->id);
    sbx_object_put(r->gw, pub, t->id);          /* the relay's id -> the platform's */
    sbx_task_get(r->gw, t->id, &ct);
    out = sbx_reply_json(r->conn, r->gw, 200, video_object(&ct, "queued", 0), NULL);
    goto done;
  }
  /* Resp{video_id, credits}: the reply a relay passes through from PixVerse ([DMX], providers.md
   * 10.1) */
  out = envelope(r, 200, 0, json_pack("{s:I,s:i}", "video_id", (json_int_t)strtoll(t->id, NULL, 10),
                                      "credits", credits), "success");
done:
#undef FAIL
  json_decref(b);
  return out;
}

static enum MHD_Result result(const sbx_req *r, const char *id) {
  enum MHD_Result ret;
  const char *key;
  SBX_COUNT(r->gw, polls);
  if (refuse(r, &key, &ret)) return ret;
  sbx_task t;
  if (relay(r) && strncmp(id, "video_", 6) == 0) {
    /* the relay's own id: new-api answers an unknown one with its task error [INFERENCE] */
    char inner[64];
    if (!sbx_object_get(r->gw, id, inner, sizeof inner) || !sbx_task_poll(r->gw, inner, &t) ||
        strcmp(t.key, key) != 0) {
      SBX_COUNT(r->gw, errors);
      return sbx_reply_json(r->conn, r->gw, 400, json_pack("{s:s,s:s,s:n}", "code", "task_not_exist",
                                                           "message", "task_not_exist", "data"), NULL);
    }
    sbx_phase p = sbx_task_phase(&t, sbx_now());
    const char *st = p.phase == 0 ? "queued" : p.phase == 1 ? "in_progress"
                   : t.outcome == SBX_FAIL || t.outcome == SBX_MODERATE ? "failed" : "completed";
    json_t *v = video_object(&t, st, p.pct);
    if (strcmp(st, "completed") == 0) {
      char url[256] = "";
      if (t.outcome != SBX_NO_VIDEO) sbx_result_url(r->gw, &t, url, sizeof url);
      json_object_set_new(v, "completed_at", json_integer((json_int_t)sbx_now()));
      json_object_set_new(v, "metadata", json_pack("{s:s}", "url", url));
    } else if (strcmp(st, "failed") == 0) {
      json_object_set_new(v, "error", json_pack("{s:s,s:s}", "code", "task_failed", "message",
        t.outcome == SBX_MODERATE ? "upstream status 7: content moderation failed"
                                  : "upstream status 8: generation failed"));
    }
    return sbx_reply_json(r->conn, r->gw, 200, v, NULL);
  }
  for (const char *p = id; *p; p++)
    if (!isdigit((unsigned char)*p)) return envelope(r, 200, 400017, NULL, "invalid parameter: id");
  if (!sbx_task_poll(r->gw, id, &t) || strcmp(t.key, key) != 0)
    return envelope(r, 200, 500008, NULL, "data not found");
  sbx_phase p = sbx_task_phase(&t, sbx_now());
  /* 5 covers queued and running; with #reply=staged the task shows 2 (pending) while queued and
   * 3 (in progress) while running, the codes the vendor's own client knows ([MCP]) */
  int staged = sbx_reply_is(t.reply, "staged");
  int status = staged ? (p.phase == 0 ? 2 : 3) : 5;
  char url[256] = "";
  if (p.phase == 1 && !staged) {
    /* the trap: a URL appears while the status is still 5, and answers 404 */
    snprintf(url, sizeof url, "%s://127.0.0.1:%u/%s/files/%s-pending.mp4", sbx_scheme(), g_sbx.port,
             sbx_gw_names[r->gw], t.id);
  } else if (p.phase == 2) {
    if (t.canceled) status = 6;
    else if (t.outcome == SBX_MODERATE) status = 7;
    else if (t.outcome == SBX_FAIL) status = 8;
    else {
      status = 1;
      if (t.outcome != SBX_NO_VIDEO) sbx_result_url(r->gw, &t, url, sizeof url);
    }
  }
  /* the result carries credits too ([DMX], [Comfy]); moderated videos are refunded (the FAQ) */
  json_t *resp = json_pack("{s:I,s:i,s:s,s:s,s:s,s:s,s:s,s:i,s:i,s:i,s:I,s:s,s:i}",
    "id", (json_int_t)strtoll(t.id, NULL, 10), "status", status, "url", url,
    "prompt", t.prompt_head, "negative_prompt", "", "create_time", "2026-01-01T00:00:00Z",
    "modify_time", "2026-01-01T00:00:05Z", "outputWidth", status == 1 ? 1024 : 0,
    "outputHeight", status == 1 ? 576 : 0, "resolution_ratio", 540, "size", (json_int_t)0,
    "style", "", "credits", status == 7 ? 0 : t.credits);
  return envelope(r, 200, 0, resp, "success");
}

static enum MHD_Result upload(const sbx_req *r) {
  enum MHD_Result ret;
  const char *key;
  if (refuse(r, &key, &ret)) return ret;
  const sbx_field *img = sbx_form(r, "image"), *iu = sbx_form(r, "image_url");
  if (img && img->is_file) {
    if (img->size > 20u * 1024 * 1024) return envelope(r, 200, 500030, NULL, "image too large");
    if (!sbx_is_image(img)) return envelope(r, 200, 500032, NULL, "invalid image format");
  } else if (!iu || !sbx_is_http_url(iu->value)) {
    return envelope(r, 200, 400011, NULL, "empty parameter: image or image_url");
  }
  if (img && img->is_file) sbx_upload_seen(r->gw, img);
  else SBX_COUNT(r->gw, uploads);
  char id[32], k[64], url[256];
  sbx_id64(id, sizeof id);
  snprintf(k, sizeof k, "img:%s", id);
  sbx_object_put(r->gw, k, "1");
  snprintf(url, sizeof url, "https://media.pixverse.invalid/openapi/%s.png", id);
  return envelope(r, 200, 0, json_pack("{s:I,s:s}", "img_id", (json_int_t)strtoll(id, NULL, 10),
                                       "img_url", url), "success");
}

enum MHD_Result sbx_pixverse(const sbx_req *r) {
  static const char gen[] = "/openapi/v2/video/";
  if (strcmp(r->method, "POST") == 0 && strcmp(r->path, "/openapi/v2/image/upload") == 0)
    return upload(r);
  if (strcmp(r->method, "GET") == 0 && strncmp(r->path, "/openapi/v2/video/result/", 25) == 0)
    return result(r, r->path + 25);
  if (strcmp(r->method, "POST") == 0 && strncmp(r->path, gen, sizeof gen - 1) == 0) {
    static const char *const modes[] = { "fusion", "text", "img", "transition", "extend", NULL };
    for (int i = 0; modes[i]; i++) {
      char path[64];
      snprintf(path, sizeof path, "%s%s/generate", gen, modes[i]);
      if (strcmp(r->path, path) == 0) {
        /* QuickRouter documents only fusion: its other generate calls are unknown */
        if (relay(r) && i > 0) break;
        return generate(r, modes[i]);
      }
    }
  }
  return sbx_reply_json(r->conn, r->gw, 404, json_pack("{s:s}", "error", "no such endpoint"), NULL);
}
