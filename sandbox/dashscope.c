/* dashscope.c: the sandbox's emulation of DashScope's PixVerse reference-to-video API and its
 * temporary-file upload (a policy here, the object store under /dashscope-oss), from
 * ../shared/providers.md section 5 and seed 001. Shares no code with the adapter. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sandbox.h"

#define GW SBX_GW_DASHSCOPE

static enum MHD_Result fail(const sbx_req *r, unsigned http, const char *code, const char *msg) {
  char rid[40];
  sbx_id64(rid, sizeof rid);
  return sbx_reply_json(r->conn, GW, http, json_pack("{s:s,s:s,s:s}", "request_id", rid, "code", code,
                                                     "message", msg), http == 429 ? "1" : NULL);
}

static int refuse(const sbx_req *r, const char **key, enum MHD_Result *ret) {
  const char *k = sbx_bearer(r->conn);
  if (!k || strcmp(k, "invalid") == 0) { *ret = fail(r, 401, "InvalidApiKey", "Invalid API-key provided."); return 1; }
  if (strcmp(k, "noquota") == 0) { *ret = fail(r, 403, "Arrearage", "Access denied, please make sure your account is in good standing."); return 1; }
  if (strcmp(k, "ratelimit") == 0) { *ret = fail(r, 429, "Throttling.RateQuota", "Requests rate limit exceeded, please try again later."); return 1; }
  *key = k;
  return 0;
}

/* PixVerse's frames. 1280*720 is documented (seed 001); 640*360, 1024*576, 1280*720 and
 * 1920*1080 are what third-party catalogs of these models price, and 540P is 1024x576, not
 * 960x540 ([DMX]: providers.md 10.2 item 2). The portrait sizes and the other ratios (the tier's
 * short side, 576 at 540P) are unverified [INFERENCE]. */
static const char *const SIZES[] = {
  "640*360", "360*640", "480*360", "360*480", "360*360", "540*360", "360*540", "840*360",
  "1024*576", "576*1024", "768*576", "576*768", "576*576", "864*576", "576*864", "1344*576",
  "1280*720", "720*1280", "960*720", "720*960", "720*720", "1080*720", "720*1080", "1680*720",
  "1920*1080", "1080*1920", "1440*1080", "1080*1440", "1080*1080", "1620*1080", "1080*1620",
  "2520*1080", NULL,
};


static enum MHD_Result submit(const sbx_req *r) {
  enum MHD_Result ret;
  const char *key;
  SBX_COUNT(GW, submits);
  if (refuse(r, &key, &ret)) return ret;
  const char *async = sbx_header(r->conn, "X-DashScope-Async");
  /* the status of this refusal is not documented, only its text [INFERENCE: 403] */
  if (!async || strcmp(async, "enable") != 0)
    return fail(r, 403, "AccessDenied", "current user api does not support synchronous calls");
  json_t *b = json_loadb(r->body, r->body_len, 0, NULL);
  enum MHD_Result out;
#define FAIL(msg) do { out = fail(r, 400, "InvalidParameter", msg); goto done; } while (0)
  if (!json_is_object(b)) FAIL("the body is not JSON");
  const char *model = json_string_value(json_object_get(b, "model"));
  json_t *input = json_object_get(b, "input"), *params = json_object_get(b, "parameters");
  const char *prompt = json_string_value(json_object_get(input, "prompt"));
  json_t *media = json_object_get(input, "media");
  int c1 = model && strcmp(model, "pixverse/pixverse-c1-r2v") == 0;
  if (!model || (!c1 && strcmp(model, "pixverse/pixverse-v5.6-r2v") != 0)) {
    out = fail(r, 404, "ModelNotFound", "Model not exist.");
    goto done;
  }
  if (!prompt || !prompt[0]) FAIL("input.prompt is required");
  size_t n = json_is_array(media) ? json_array_size(media) : 0;
  if (n < 1 || n > 7) FAIL("input.media must hold 1 to 7 items");
  const char *resolve = sbx_header(r->conn, "X-DashScope-OssResourceResolve");
  size_t i;
  json_t *m;
  json_array_foreach(media, i, m) {
    const char *type = json_string_value(json_object_get(m, "type"));
    const char *url = json_string_value(json_object_get(m, "url"));
    if (!type || strcmp(type, "image_url") != 0) FAIL("input.media[].type must be image_url");
    if (url && strncmp(url, "oss://", 6) == 0) {
      char bound[128];
      if (!resolve || strcmp(resolve, "enable") != 0)
        FAIL("an oss:// url needs the header X-DashScope-OssResourceResolve: enable");
      if (!sbx_object_get(GW, url + 6, bound, sizeof bound) || strcmp(bound, model) != 0)
        FAIL("the oss:// file was not uploaded for this model");
      /* the object's type is what the form's x-oss-content-type said (the SDK sends the file's
       * MIME type, [DSp]); one stored without it is not taken as an image [INFERENCE] */
      char tkey[2100], ctype[64];
      snprintf(tkey, sizeof tkey, "type:%s", url + 6);
      if (!sbx_object_get(GW, tkey, ctype, sizeof ctype) || strncmp(ctype, "image/", 6) != 0)
        FAIL("the oss:// file is not an image: its Content-Type is not image/* (set x-oss-content-type in the upload form)");
    } else if (!sbx_is_http_url(url)) {
      FAIL("input.media[].url must be a public URL or an oss:// temporary file");
    }
  }
  const char *size = json_string_value(json_object_get(params, "size"));
  json_t *dur = json_object_get(params, "duration");
  if (json_object_get(params, "size") && !sbx_one_of(size, SIZES)) {
    char why[160];
    snprintf(why, sizeof why, "parameters.size '%s' is not supported%s", size ? size : "",
             size && (strcmp(size, "960*540") == 0 || strcmp(size, "540*960") == 0)
             ? " (540P is 1024*576 or 576*1024)" : "");
    FAIL(why);
  }
  if (dur) {
    json_int_t d = json_is_integer(dur) ? json_integer_value(dur) : -1;
    if (c1 ? (d < 1 || d > 15) : (d != 5 && d != 8 && d != 10)) FAIL("parameters.duration is not supported");
  }
  sbx_task *t = sbx_task_new(GW, key, prompt, "fusion", "", "0123456789abcdef", 32);
  if (!t) FAIL("out of memory");
  /* a UUID-shaped task id, as DashScope's */
  char id[64];
  snprintf(id, sizeof id, "%.8s-%.4s-%.4s-%.4s-%.12s", t->id, t->id + 8, t->id + 12, t->id + 16, t->id + 20);
  char rid[40];
  sbx_id64(rid, sizeof rid);
  sbx_object_put(GW, id, t->id);            /* the public id -> the stored task */
  sbx_task_set_pub(GW, t->id, id);
  sbx_task_set(GW, t->id, model, 0, 0);
  out = sbx_reply_json(r->conn, GW, 200, json_pack("{s:s,s:{s:s,s:s}}", "request_id", rid, "output",
                                                   "task_id", id, "task_status", "PENDING"), NULL);
done:
#undef FAIL
  json_decref(b);
  return out;
}

static int lookup(const char *id, const char *key, sbx_task *t, int poll) {
  char inner[64];
  return sbx_object_get(GW, id, inner, sizeof inner) &&
         (poll ? sbx_task_poll(GW, inner, t) : sbx_task_get(GW, inner, t)) &&
         strcmp(t->key, key) == 0;
}

static enum MHD_Result query(const sbx_req *r, const char *id) {
  enum MHD_Result ret;
  const char *key;
  SBX_COUNT(GW, polls);
  if (refuse(r, &key, &ret)) return ret;
  char rid[40];
  sbx_id64(rid, sizeof rid);
  sbx_task t;
  if (!lookup(id, key, &t, 1))
    return sbx_reply_json(r->conn, GW, 200, json_pack("{s:s,s:{s:s,s:s}}", "request_id", rid, "output",
                                                      "task_id", id, "task_status", "UNKNOWN"), NULL);
  sbx_phase p = sbx_task_phase(&t, sbx_now());
  json_t *o = json_pack("{s:s,s:s}", "task_id", id, "submit_time", "2026-01-01 10:00:00.123");
  json_t *usage = NULL;
  if (p.phase == 0) json_object_set_new(o, "task_status", json_string(t.canceled ? "CANCELED" : "PENDING"));
  else if (p.phase == 1) json_object_set_new(o, "task_status", json_string("RUNNING"));
  else if (t.canceled) json_object_set_new(o, "task_status", json_string("CANCELED"));
  else if (t.outcome == SBX_FAIL || t.outcome == SBX_MODERATE) {
    json_object_set_new(o, "task_status", json_string("FAILED"));
    json_object_set_new(o, "code", json_string(t.outcome == SBX_MODERATE ? "DataInspectionFailed" : "InternalError"));
    json_object_set_new(o, "message", json_string(t.outcome == SBX_MODERATE
      ? "Output data may contain inappropriate content." : "The task failed."));
  } else {
    char url[256];
    sbx_result_url(GW, &t, url, sizeof url);
    json_object_set_new(o, "task_status", json_string("SUCCEEDED"));
    if (t.outcome != SBX_NO_VIDEO) json_object_set_new(o, "video_url", json_string(url));
    /* the PixVerse models' usage fields (a third-party transcription, providers.md 10.1;
     * values illustrative) */
    usage = json_pack("{s:i,s:i,s:s,s:i,s:s,s:b}", "video_count", 1, "duration", 5, "size", "1280*720",
                      "fps", 24, "SR", "720", "audio", 0);
  }
  json_t *reply = json_pack("{s:s,s:o}", "request_id", rid, "output", o);
  if (usage) json_object_set_new(reply, "usage", usage);
  return sbx_reply_json(r->conn, GW, 200, reply, NULL);
}

static enum MHD_Result cancel(const sbx_req *r, const char *id) {
  enum MHD_Result ret;
  const char *key;
  if (refuse(r, &key, &ret)) return ret;
  sbx_task t;
  if (!lookup(id, key, &t, 0)) return fail(r, 404, "NotFound", "the task does not exist");
  /* only a PENDING task can be canceled; the refusal as documented ([DSa], providers.md 10.1) */
  if (sbx_task_cancel(GW, t.id) != 1)
    return fail(r, 400, "UnsupportedOperation", "Failed to cancel the task, please confirm if the task is in PENDING status.");
  char rid[40];
  sbx_id64(rid, sizeof rid);
  return sbx_reply_json(r->conn, GW, 200, json_pack("{s:s}", "request_id", rid), NULL);
}

static enum MHD_Result policy(const sbx_req *r) {
  enum MHD_Result ret;
  const char *key;
  if (refuse(r, &key, &ret)) return ret;
  const char *action = MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, "action");
  const char *model = MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, "model");
  if (!action || strcmp(action, "getPolicy") != 0 || !model || !model[0])
    return fail(r, 400, "InvalidParameter", "action=getPolicy and model are required");
  char dir[128], host[128], rid[40], id[32];
  sbx_id64(id, sizeof id);
  snprintf(dir, sizeof dir, "dashscope-instant/%s/2026-01-01/%s", "sandbox", id);
  snprintf(host, sizeof host, "%s://127.0.0.1:%u/dashscope-oss", sbx_scheme(), g_sbx.port);
  sbx_object_put(GW, dir, model);           /* the policy: its directory, bound to the model */
  sbx_id64(rid, sizeof rid);
  return sbx_reply_json(r->conn, GW, 200, json_pack(
    "{s:s,s:{s:s,s:s,s:s,s:s,s:i,s:i,s:s,s:s,s:s}}", "request_id", rid, "data",
    "policy", "eyJzYW5kYm94Ijp0cnVlfQ==", "signature", "c2FuZGJveA==", "upload_dir", dir,
    "upload_host", host, "expire_in_seconds", 300, "max_file_size_mb", 100,
    "oss_access_key_id", "LTAIsandbox", "x_oss_object_acl", "private",
    "x_oss_forbid_overwrite", "true"), NULL);
}

/* The object store's form upload: HTTP 200 with an empty body is success. */
enum MHD_Result sbx_dashscope_oss(const sbx_req *r) {
  const sbx_field *k = sbx_form(r, "key"), *f = sbx_form(r, "file"), *p = sbx_form(r, "policy");
  const sbx_field *sig = sbx_form(r, "Signature"), *ak = sbx_form(r, "OSSAccessKeyId");
  static const char denied[] = "<Error><Code>AccessDenied</Code></Error>";
  if (strcmp(r->method, "POST") != 0 || !k || !f || !f->is_file || !p || !sig || !ak)
    return sbx_reply(r->conn, GW, 400, "application/xml", denied, sizeof denied - 1, NULL);
  /* the key must sit in a directory a policy handed out, and the file must be last */
  char dir[sizeof k->value], model[128];
  memcpy(dir, k->value, sizeof dir);
  char *slash = strrchr(dir, '/');
  if (slash) *slash = '\0';
  if (!slash || !sbx_object_get(GW, dir, model, sizeof model) || &r->fields[r->nfields - 1] != f ||
      !sbx_is_image(f))
    return sbx_reply(r->conn, GW, 403, "application/xml", denied, sizeof denied - 1, NULL);
  sbx_upload_seen(GW, f);
  sbx_object_put(GW, k->value, model);
  /* x-oss-content-type sets the object's type; without it the object store keeps
   * application/octet-stream [INFERENCE] */
  const sbx_field *ct = sbx_form(r, "x-oss-content-type");
  char tkey[sizeof k->value + 8];
  snprintf(tkey, sizeof tkey, "type:%s", k->value);
  sbx_object_put(GW, tkey, ct && ct->value[0] ? ct->value : "application/octet-stream");
  return sbx_reply(r->conn, GW, 200, "text/plain", "", 0, NULL);
}

/* YYYYMMDDhhmmss, read as UTC [INFERENCE: the zone is not documented]; -1 if malformed. */
static double parse_stamp(const char *s) {
  struct tm tm;
  memset(&tm, 0, sizeof tm);
  if (!s || strlen(s) != 14 || sscanf(s, "%4d%2d%2d%2d%2d%2d", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
                                      &tm.tm_hour, &tm.tm_min, &tm.tm_sec) != 6)
    return -1;
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  return (double)timegm(&tm);
}

/* A task's status word as the status query gives it. */
static const char *status_word(const sbx_task *t) {
  sbx_phase p = sbx_task_phase(t, sbx_now());
  return p.phase == 0 ? (t->canceled ? "CANCELED" : "PENDING") : p.phase == 1 ? "RUNNING"
       : t->canceled ? "CANCELED"
       : (t->outcome == SBX_FAIL || t->outcome == SBX_MODERATE) ? "FAILED" : "SUCCEEDED";
}

/* GET /api/v1/tasks: the account's tasks in a time window, by model and status, a page at a
 * time, as Model Studio's "manage asynchronous tasks" page documents it [DSa]
 * (../shared/providers.md 10.1): {"request_id", "data": [{"task_id", "status", "gmt_create" (ms),
 * "model_name", "request_id", "region"}], "total", "total_page", "page_no", "page_size"}; start
 * to end at most 24 hours; page_size 10 unless asked. status takes one of PENDING, RUNNING,
 * SUCCEEDED, FAILED, CANCELED (the SDK's list()). The rows' start_time and end_time are left out
 * (their format is NOT FOUND). The largest page_size (100 here), the error texts, the times'
 * zone (read as UTC here) and the order of the list (oldest first here: it puts the newest task
 * on the last page, where a reader that stops early misses it) are NOT FOUND [INFERENCE]. */
static enum MHD_Result list(const sbx_req *r) {
  enum MHD_Result ret;
  const char *key;
  if (refuse(r, &key, &ret)) return ret;
  const char *qs = MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, "start_time");
  const char *qe = MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, "end_time");
  const char *model = MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, "model_name");
  const char *pn = MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, "page_no");
  const char *ps = MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, "page_size");
  const char *status = MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, "status");
  static const char *const WORDS[] = { "PENDING", "RUNNING", "SUCCEEDED", "FAILED", "CANCELED", NULL };
  double from = parse_stamp(qs), to = parse_stamp(qe);
  long page = pn ? strtol(pn, NULL, 10) : 1, size = ps ? strtol(ps, NULL, 10) : 10;
  if (from < 0 || to < 0 || page < 1 || size < 1 || size > 100)
    return fail(r, 400, "InvalidParameter", "start_time and end_time (YYYYMMDDhhmmss), page_no >= 1, page_size 1-100");
  if (status && !sbx_one_of(status, WORDS))
    return fail(r, 400, "InvalidParameter", "status must be one of PENDING, RUNNING, SUCCEEDED, FAILED, CANCELED");
  /* start to end at most 24 hours [DSa] (../shared/providers.md 10.1); the reply's wording is
   * [INFERENCE] */
  if (to - from > 24 * 3600 || to < from) {
    SBX_COUNT(GW, list_rejected);
    return fail(r, 400, "InvalidParameter", "the time range between start_time and end_time must be at most 24 hours");
  }
  SBX_COUNT(GW, lists);
  if (status) SBX_COUNT(GW, list_status);
  size_t n = 0;
  sbx_task *found = sbx_task_list_all(GW, key, from, to + 1, &n);
  json_t *data = json_array();
  long total = 0;
  for (size_t i = 0; i < n; i++) {
    if (model && model[0] && strcmp(found[i].model, model) != 0) continue;
    const char *st = status_word(&found[i]);
    if (status && strcmp(st, status) != 0) continue;
    total++;
    if (total <= (page - 1) * size || total > page * size) continue;
    char trid[40];
    sbx_id64(trid, sizeof trid);
    json_array_append_new(data, json_pack("{s:s,s:s,s:I,s:s,s:s,s:s}", "task_id", found[i].pub_id, "status", st,
                                          "gmt_create", (json_int_t)(found[i].created * 1000),
                                          "model_name", found[i].model, "request_id", trid,
                                          "region", "cn-beijing"));
  }
  free(found);
  char rid[40];
  sbx_id64(rid, sizeof rid);
  return sbx_reply_json(r->conn, GW, 200, json_pack("{s:s,s:o,s:I,s:I,s:I,s:I}", "request_id", rid, "data", data,
                                                    "total", (json_int_t)total,
                                                    "total_page", (json_int_t)((total + size - 1) / size),
                                                    "page_no", (json_int_t)page,
                                                    "page_size", (json_int_t)size), NULL);
}

long sbx_dashscope_seed(const char *key, const char *model, long count, double created,
                        double spacing, const char **why) {
  if (!key || !model || count < 0 || count > 100000) {
    *why = "expected {\"key\", \"model\", \"count\" (0-100000), \"created\", \"spacing\"}";
    return -1;
  }
  for (long i = 0; i < count; i++) {
    sbx_task *t = sbx_task_new(GW, key, "seeded", "fusion", "", "0123456789abcdef", 32);
    if (!t) { *why = "out of memory"; return -1; }
    char id[64];
    snprintf(id, sizeof id, "%.8s-%.4s-%.4s-%.4s-%.12s", t->id, t->id + 8, t->id + 12, t->id + 16, t->id + 20);
    sbx_object_put(GW, id, t->id);
    sbx_task_set_pub(GW, t->id, id);
    sbx_task_set(GW, t->id, model, 0, 0);
    sbx_task_set_created(GW, t->id, created + (double)i * spacing);
  }
  return count;
}

enum MHD_Result sbx_dashscope(const sbx_req *r) {
  if (strcmp(r->method, "GET") == 0 && strcmp(r->path, "/api/v1/tasks") == 0) return list(r);
  static const char tasks[] = "/api/v1/tasks/";
  if (strcmp(r->method, "POST") == 0 &&
      strcmp(r->path, "/api/v1/services/aigc/video-generation/video-synthesis") == 0)
    return submit(r);
  if (strcmp(r->method, "GET") == 0 && strcmp(r->path, "/api/v1/uploads") == 0) return policy(r);
  if (strncmp(r->path, tasks, sizeof tasks - 1) == 0) {
    char id[64];
    snprintf(id, sizeof id, "%s", r->path + sizeof tasks - 1);
    char *slash = strchr(id, '/');
    if (slash && strcmp(slash, "/cancel") == 0 && strcmp(r->method, "POST") == 0) {
      *slash = '\0';
      return cancel(r, id);
    }
    if (!slash && strcmp(r->method, "GET") == 0) return query(r, id);
  }
  return fail(r, 404, "NotFound", "no such endpoint");
}
