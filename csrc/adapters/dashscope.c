/* dashscope.c: Alibaba DashScope (Model Studio) PixVerse reference-to-video: async submit,
 * task query, the task list, cancel, and the temporary-file upload. Facts: ../shared/providers.md section 5,
 * seed 001. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto.h"

static const pf_proto dashscope = {
  .name = "DashScope",
  .submit = "/api/v1/services/aigc/video-generation/video-synthesis",
  .status = "/api/v1/tasks/%s",
  /* errors: {"request_id","code","message"} with an HTTP error status (providers.md 5.4); the
   * code decides the kind, else the status */
  .errors = { .message = { "message" }, .code = "code",
              .codes = { .invalid = "InvalidParameter ModelNotFound", .moderated = "DataInspectionFailed",
                         .auth = "InvalidApiKey AccessDenied", .quota = "Arrearage",
                         .rate_limit = "Throttling*", .provider = "InternalServerError" } },
  .task_id = "output.task_id",
  /* output.task_status ([DSa]); moderation: FAILED with code DataInspectionFailed ([DSa] in
   * providers.md 10.1); UNKNOWN: the task does not exist or has expired (ids live about 24 h),
   * nothing more will come */
  .state = "output.task_status",
  .words = { .queued = "PENDING SUSPENDED", .running = "RUNNING", .succeeded = "SUCCEEDED",
             .failed = "FAILED", .canceled = "CANCELED", .gone = "UNKNOWN" },
  .on_failed = { "FAILED", "DashScope reports the task failed without a reason" },
  .on_canceled = { "CANCELED", "the task was canceled at DashScope" },
  .on_gone = { "UNKNOWN", "DashScope does not know this task (it never existed, or it expired: "
                          "task ids are kept about 24 hours)" },
  /* result URLs expire after 24 h (providers.md 5.2) */
  .videos = { .url = { "output.video_url" }, .lifetime = 86400 },
  .reason = { "output.message" }, .reason_code = "output.code",
  /* GET /api/v1/tasks?start_time=&end_time=&model_name=&status=&page_no=&page_size= ([DSa],
   * [DSj]: ../shared/providers.md 10.1; the parameters as the SDK's list() sends them [DSp]).
   * The times are YYYYMMDDhhmmss, start to end at most 24 hours; their time zone is NOT FOUND, so
   * the caller pads the window (reconcile.h, each query within 24 h) and decides on each task's
   * own timestamp (gmt_create, milliseconds). status takes one word (the SDK: one of PENDING,
   * RUNNING, SUCCEEDED, FAILED, CANCELED). page_size defaults to 10; its largest value is NOT
   * FOUND: 100 is asked for [INFERENCE]. The reply: {total, total_page, page_no, page_size,
   * request_id, data: [{task_id, status, gmt_create, start_time, end_time, model_name, ...}]}. */
  .list = { .path = "/api/v1/tasks", .from = "start_time", .to = "end_time",
            .stamp = "%Y%m%d%H%M%S", .model = "model_name", .status = "status",
            .page = "page_no", .size = "page_size", .rows = 100, .items = "data",
            .id = "task_id", .state = { "status", "task_status" }, .created = "gmt_create",
            .created_unit = 0.001, .total = "total", .pages = "total_page", .page_no = "page_no",
            .page_size = "page_size" },
};

PF_PROTO_CALLS(dashscope)

/* parameters.size from resolution and aspect ratio, as PixVerse's own frames: width*height with
 * the tier's short side. 1280*720 is documented (seed 001); 640*360, 1024*576, 1280*720 and
 * 1920*1080 are the sizes third-party catalogs of these models price, and PixVerse's own 540p
 * output is 1024x576 ([DMX], providers.md 10.2 item 2): so 540p's short side is 576, not 540.
 * 9:16 is 16:9 turned; the other ratios keep the tier's short side (at 540p: 576) [INFERENCE,
 * unverified: docs/gateways.md]. */
static int size_for(const char *res, const char *ratio, char *out, size_t n) {
  static const struct { const char *tier; int s; } tiers[] = {
    { "360p", 360 }, { "540p", 576 }, { "720p", 720 }, { "1080p", 1080 },
  };
  static const struct { const char *r; int w, h; } ratios[] = {
    { "16:9", 16, 9 }, { "9:16", 9, 16 }, { "4:3", 4, 3 }, { "3:4", 3, 4 }, { "1:1", 1, 1 },
    { "3:2", 3, 2 }, { "2:3", 2, 3 }, { "21:9", 21, 9 },
  };
  int s = 0;
  for (size_t i = 0; i < sizeof tiers / sizeof tiers[0]; i++)
    if (strcmp(tiers[i].tier, res) == 0) s = tiers[i].s;
  for (size_t i = 0; s && i < sizeof ratios / sizeof ratios[0]; i++) {
    if (strcmp(ratios[i].r, ratio) != 0) continue;
    int w = ratios[i].w, h = ratios[i].h;
    long W = w >= h ? (long)s * w / h : s, H = w >= h ? s : (long)s * h / w;
    W -= W % 2;   /* even dimensions, as video encoders want */
    H -= H % 2;
    snprintf(out, n, "%d*%d", (int)W, (int)H);       /* W, H are at most 2520 */
    return 0;
  }
  return -1;
}

static int build_submit(const pf_ctx *ctx, const pf_request *rq, pf_http_req *out, pf_err *err) {
  json_t *o = json_object(), *input = json_object(), *params = json_object(), *media = json_array();
  if (!o || !input || !params || !media) {
    json_decref(o); json_decref(input); json_decref(params); json_decref(media);
    return pf_proto_nomem(&dashscope, err);
  }
  int bad = 0, oss = 0;
  bad |= json_object_set_new(o, "model", json_string(rq->model));
  bad |= json_object_set_new(o, "input", input);
  bad |= json_object_set_new(o, "parameters", params);
  bad |= json_object_set_new(input, "media", media);
  for (size_t i = 0; i < rq->nrefs; i++) {
    const char *url = rq->refs[i].images[0];
    json_t *m = json_pack("{s:s,s:s}", "type", "image_url", "url", url);
    /* ref_name on media items: optional, @小猫 meaning ref_name "小猫", in a third-party
     * transcription of the official page (providers.md 10.1, idx #68976001936); DashScope's own
     * stored field list does not show it, so the preset can switch it off [unverified] */
    if (m && ctx->ref_names) bad |= json_object_set_new(m, "ref_name", json_string(rq->refs[i].name));
    bad |= !m || json_array_append_new(media, m);
    if (strncmp(url, "oss://", 6) == 0) oss = 1;
  }
  if (ctx->ref_names) {
    bad |= json_object_set_new(input, "prompt", json_string(rq->prompt));
  } else {
    /* without names the images can only be meant by their order [INFERENCE] */
    char *p = pf_prompt_by_position(rq->prompt, rq->refs, rq->nrefs, "image %zu");
    bad |= !p || json_object_set_new(input, "prompt", json_string(p));
    free(p);
  }
  if (rq->resolution || rq->aspect_ratio) {
    char size[32];
    if (size_for(rq->resolution ? rq->resolution : "720p",
                 rq->aspect_ratio ? rq->aspect_ratio : "16:9", size, sizeof size) != 0) {
      json_decref(o);
      pf_err_set(err, PF_EK_INVALID, 0, "size", "no DashScope size for %s at %s",
                 rq->resolution ? rq->resolution : "720p", rq->aspect_ratio ? rq->aspect_ratio : "16:9");
      return -1;
    }
    bad |= json_object_set_new(params, "size", json_string(size));
  }
  if (rq->duration > 0) bad |= json_object_set_new(params, "duration", json_integer(rq->duration));
  if (rq->audio >= 0) bad |= json_object_set_new(params, "audio", json_boolean(rq->audio));
  if (rq->watermark >= 0) bad |= json_object_set_new(params, "watermark", json_boolean(rq->watermark));
  if (rq->has_seed) bad |= json_object_set_new(params, "seed", json_integer(rq->seed));
  if (bad) { json_decref(o); return pf_proto_nomem(&dashscope, err); }
  out->method = "POST";
  out->url = pf_url_join(ctx->base_url, dashscope.submit);
  if (!out->url) { json_decref(o); return pf_proto_nomem(&dashscope, err); }
  if (pf_json_body(o, out, err) != 0) return -1;
  /* without the async header: "current user api does not support synchronous calls" */
  if (pf_auth_header(ctx, &out->headers) ||
      pf_header_add(&out->headers, "X-DashScope-Async: enable") ||
      pf_header_add(&out->headers, "Content-Type: application/json") ||
      (oss && pf_header_add(&out->headers, "X-DashScope-OssResourceResolve: enable")))
    return pf_proto_nomem(&dashscope, err);
  return 0;
}

/* POST /api/v1/tasks/{id}/cancel: only while the task is PENDING (SDK-documented). */
static int build_cancel(const pf_ctx *ctx, const char *task_id, pf_http_req *out, pf_err *err) {
  out->method = "POST";
  out->url = pf_url_with_id(ctx->base_url, "/api/v1/tasks/%s/cancel", task_id);
  if (!out->url || pf_auth_header(ctx, &out->headers)) return pf_proto_nomem(&dashscope, err);
  out->body = pf_strdup("");
  if (!out->body) return pf_proto_nomem(&dashscope, err);
  return 0;
}

static int parse_cancel(const pf_ctx *ctx, long http, const char *body, size_t len, pf_err *err) {
  (void)ctx;
  json_t *root;
  if (!pf_proto_reply(&dashscope, http, body, len, &root, err)) return -1;
  json_decref(root);
  return 0;
}

/* The temporary upload (providers.md 5.5): step 0 asks for a policy bound to the model; step 1
 * posts the file to the object store it names; the result is oss://<key>, valid 48 h, and the
 * submit then carries X-DashScope-OssResourceResolve. */
static int build_upload(const pf_ctx *ctx, pf_upload *up, pf_http_req *out, pf_err *err) {
  if (up->step == 0) {
    char *model = curl_easy_escape(NULL, up->model ? up->model : "", 0);
    if (!model) return pf_proto_nomem(&dashscope, err);
    size_t n = strlen(model) + 48;
    char *path = malloc(n);
    if (path) snprintf(path, n, "/api/v1/uploads?action=getPolicy&model=%s", model);
    curl_free(model);
    out->method = "GET";
    out->url = path ? pf_url_join(ctx->base_url, path) : NULL;
    free(path);
    if (!out->url || pf_auth_header(ctx, &out->headers)) return pf_proto_nomem(&dashscope, err);
    return 0;
  }
  const json_t *d = up->state;
  const char *host = pf_json_string(d, "upload_host"), *dir = pf_json_string(d, "upload_dir");
  if (!host || !dir) {
    pf_err_set(err, PF_EK_PROTOCOL, 0, "bad_policy", "DashScope's upload policy has no upload_host or upload_dir");
    return -1;
  }
  size_t kn = strlen(dir) + strlen(up->filename) + 2;
  char *key = malloc(kn);
  if (!key) return pf_proto_nomem(&dashscope, err);
  snprintf(key, kn, "%s/%s", dir, up->filename);
  out->method = "POST";
  out->url = pf_strdup(host);
  out->no_auth = 1;                          /* the object store gets the policy, never the key */
  /* the form fields the SDK sends, in its order ([DSp] in providers.md 10.1,
   * dashscope/utils/oss_utils.py): x-oss-content-type is the file's MIME type; the file goes last */
  static const char *const fields[][3] = {
    { "OSSAccessKeyId", "oss_access_key_id", "" }, { "Signature", "signature", "" },
    { "policy", "policy", "" }, { "key", NULL, NULL },
    { "x-oss-object-acl", "x_oss_object_acl", "private" },
    { "x-oss-forbid-overwrite", "x_oss_forbid_overwrite", "true" },
    { "success_action_status", NULL, "200" },
  };
  int bad = !out->url;
  for (size_t i = 0; !bad && i < sizeof fields / sizeof fields[0]; i++) {
    const char *v = fields[i][1] ? pf_json_string(d, fields[i][1]) : NULL;
    if (!v) v = fields[i][2] ? fields[i][2] : key;
    bad = pf_http_add_part(out, fields[i][0], v, NULL, NULL, NULL);
  }
  bad = bad || pf_http_add_part(out, "x-oss-content-type", up->mime && up->mime[0] ? up->mime
                                : "application/octet-stream", NULL, NULL, NULL);
  bad = bad || pf_http_add_part(out, "file", NULL, up->path, up->filename, up->mime);
  free(key);
  return bad ? pf_proto_nomem(&dashscope, err) : 0;
}

static int parse_upload(const pf_ctx *ctx, pf_upload *up, long http, const char *body, size_t len,
                        pf_err *err) {
  (void)ctx;
  if (up->step == 0) {
    json_t *root;
    if (!pf_proto_reply(&dashscope, http, body, len, &root, err)) return -1;
    json_t *d = json_object_get(root, "data");
    if (!json_is_object(d) || !pf_json_string(d, "upload_host")) {
      pf_err_set(err, PF_EK_PROTOCOL, http, "bad_policy", "DashScope's upload policy reply has no data.upload_host");
      err->retryable = 1;
      json_decref(root);
      return -1;
    }
    json_decref(up->state);
    up->state = json_incref(d);
    up->step = 1;
    json_decref(root);
    return 1;
  }
  if (http != 200 && http != 204) {
    pf_err_set(err, pf_kind_for_http(http), http, "oss_upload",
               "the object store refused the upload (HTTP %ld)", http);
    err->retryable = pf_http_retryable(http);
    return -1;
  }
  const char *dir = pf_json_string(up->state, "upload_dir");
  if (!dir) {
    pf_err_set(err, PF_EK_PROTOCOL, http, "bad_policy", "DashScope's upload policy has no upload_dir");
    return -1;
  }
  size_t n = strlen(dir) + strlen(up->filename) + 8;
  up->result = malloc(n);
  if (!up->result) return pf_proto_nomem(&dashscope, err);
  snprintf(up->result, n, "oss://%s/%s", dir, up->filename);
  up->ttl = 48 * 3600;
  return 0;
}

const pf_adapter pf_adapter_dashscope = {
  .name = "dashscope", PF_PROTO_MEMBERS(dashscope), .build_submit = build_submit,
  .build_upload = build_upload, .parse_upload = parse_upload,
  .build_cancel = build_cancel, .parse_cancel = parse_cancel,
  .build_list = dashscope_build_list, .parse_list = dashscope_parse_list,
  /* every unfinished task in one list query per round, each status read only when the list shows
   * it changed: a row says all an unfinished task's status reply says (its state: DashScope
   * gives no progress or ETA, providers.md 5.2); the in-flight words, in the order a task passes
   * them, for the queries that ask for one status each (the SDK's status values) */
  .build_list_poll = dashscope_build_list_poll, .list_polls = "PENDING RUNNING",
};
