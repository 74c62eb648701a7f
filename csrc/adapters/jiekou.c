/* jiekou.c: jiekou.ai's novita-style async API: /v3/async/<model> submit and the task-result
 * query (novita's shape, which jiekou's own client reads: [jk]). Facts: ../shared/providers.md
 * sections 4 and 10, seed 000. jiekou has no upload call. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adapter.h"

static int nomem(pf_err *err) {
  pf_err_set(err, PF_EK_NOMEM, 0, "nomem", "out of memory building the jiekou request");
  return -1;
}

/* POST /v3/async/<model>: the preset's gateway model is the path's last segment
 * ("pixverse-pixverse-c1-reference-to-video"). */
static int build_submit(const pf_ctx *ctx, const pf_request *rq, pf_http_req *out, pf_err *err) {
  json_t *o = json_object(), *images = json_array();
  if (!o || !images) { json_decref(o); json_decref(images); return nomem(err); }
  int bad = json_object_set_new(o, "images", images);
  for (size_t i = 0; i < rq->nrefs; i++) {
    /* type and ref_name are both required per image */
    json_t *im = json_pack("{s:s,s:s,s:s}", "type", rq->refs[i].type ? rq->refs[i].type : "subject",
                           "ref_name", rq->refs[i].name, "image_url", rq->refs[i].images[0]);
    bad |= !im || json_array_append_new(images, im);
  }
  bad |= json_object_set_new(o, "prompt", json_string(rq->prompt));
  if (rq->duration > 0) bad |= json_object_set_new(o, "duration", json_integer(rq->duration));
  if (rq->resolution) bad |= json_object_set_new(o, "resolution", json_string(rq->resolution));
  if (rq->aspect_ratio) bad |= json_object_set_new(o, "aspect_ratio", json_string(rq->aspect_ratio));
  if (rq->audio >= 0) bad |= json_object_set_new(o, "generate_audio_switch", json_boolean(rq->audio));
  if (bad) { json_decref(o); return nomem(err); }
  size_t n = strlen(rq->model) + 16;
  char *path = malloc(n);
  if (!path) { json_decref(o); return nomem(err); }
  snprintf(path, n, "/v3/async/%s", rq->model);
  int rc = pf_json_post(ctx, path, o, out, err);
  free(path);
  return rc;
}

/* Errors: jiekou's own client handles 401, 402 and 429 and reads message and code; the
 * novita envelope {"code","reason","message"} is assumed [INFERENCE]. */
static json_t *success_reply(long http, const char *body, size_t len, pf_err *err) {
  json_t *root = pf_json_parse_object(body, len, http, err);
  if (root && (http < 200 || http >= 300)) {
    const char *msg, *code;
    char cbuf[32];
    pf_error_fields(root, &msg, &code, cbuf, sizeof cbuf);
    const char *reason = pf_json_string(root, "reason");
    pf_errkind k = pf_kind_for_http(http);
    if (reason) {
      if (strcmp(reason, "FAILED_TO_AUTH") == 0) k = PF_EK_AUTH;
      else if (strcmp(reason, "NOT_ENOUGH_BALANCE") == 0) k = PF_EK_QUOTA;
      else if (strcmp(reason, "RATE_LIMIT_EXCEEDED") == 0) k = PF_EK_RATE_LIMIT;
      else if (strcmp(reason, "INVALID_REQUEST_BODY") == 0) k = PF_EK_INVALID;
    }
    if (http == 402) k = PF_EK_QUOTA;
    if (pf_text_says_moderated(msg)) k = PF_EK_MODERATED;
    pf_err_set(err, k, http, reason ? reason : (code ? code : "http_error"), "%s",
               msg ? msg : "jiekou returned an error without a message");
    err->retryable = k == PF_EK_RATE_LIMIT || pf_http_retryable(http);
    json_decref(root);
    root = NULL;
  }
  return root;
}

static int parse_submit(const pf_ctx *ctx, long http, const char *body, size_t len,
                        char **task_id, pf_err *err) {
  json_t *root = success_reply(http, body, len, err);
  if (!root) return -1;
  return pf_reply_id(root, json_object_get(root, "task_id"), http, ctx->provider, "task_id", task_id, err);
}

static int build_status(const pf_ctx *ctx, const char *task_id, pf_http_req *out, pf_err *err) {
  return pf_get_by_id(ctx, "/v3/async/task-result?task_id=%s", task_id, out, err);
}

static int parse_status(const pf_ctx *ctx, long http, const char *body, size_t len,
                        pf_status *st, pf_err *err) {
  json_t *root = success_reply(http, body, len, err);
  if (!root) return -1;
  const json_t *task = json_object_get(root, "task");
  const char *s = pf_json_string(task, "status");
  if (!s) {
    json_decref(root);
    return pf_missing(err, http, ctx->provider, "task.status");
  }
  /* numbers may arrive as strings (novita's debug_info and TTLs do) [INFERENCE] */
  double d;
  if (pf_json_number(task, "progress_percent", &d) == 0 && d >= 0 && d <= 100) st->progress = (int)d;
  if (pf_json_number(task, "eta", &d) == 0 && d > 0) st->eta = d;
  if (strcmp(s, "TASK_STATUS_SUCCEED") == 0) {
    st->state = PF_ST_SUCCEEDED;
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(root, "videos"), i, v) {
      const char *url = pf_json_string(v, "video_url");
      double ttl = 0;
      pf_json_number(v, "video_url_ttl", &ttl);
      if (url && url[0] && pf_status_add_video(st, url, ttl > 0 && ctx->wall_now > 0 ? ctx->wall_now + ttl : 0)) {
        json_decref(root);
        return nomem(err);
      }
    }
    if (st->nvideos == 0) pf_status_no_video(st, ctx->provider);
  } else if (strcmp(s, "TASK_STATUS_FAILED") == 0) {
    /* the reason is task.reason, else task.error, else task.message: what jiekou's own client
     * reads ([jk] in providers.md 10.1, utils/api_client.py); an empty one counts as none */
    const char *reason = NULL;
    static const char *const fields[] = { "reason", "error", "message" };
    for (size_t i = 0; i < 3 && !(reason && reason[0]); i++) {
      const json_t *v = json_object_get(task, fields[i]);
      reason = json_is_string(v) ? json_string_value(v) : pf_json_string(v, "message");
    }
    /* moderation has no status of its own; the reason text says it [INFERENCE] */
    int mod = pf_text_says_moderated(reason);
    st->state = mod ? PF_ST_MODERATED : PF_ST_FAILED;
    pf_err_set(&st->err, mod ? PF_EK_MODERATED : PF_EK_FAILED, 0, "TASK_STATUS_FAILED", "%s",
               reason && reason[0] ? reason : "jiekou reports the task failed without a reason");
  } else if (strcmp(s, "TASK_STATUS_CANCELED") == 0) {
    st->state = PF_ST_CANCELED;
    pf_err_set(&st->err, PF_EK_CANCELED, 0, "TASK_STATUS_CANCELED", "the task was canceled at jiekou");
  } else if (strcmp(s, "TASK_STATUS_QUEUED") == 0) {
    st->state = PF_ST_QUEUED;
  } else {
    st->state = PF_ST_RUNNING;
  }
  json_decref(root);
  return 0;
}

const pf_adapter pf_adapter_jiekou = {
  .name = "jiekou",
  .build_submit = build_submit, .parse_submit = parse_submit,
  .build_status = build_status, .parse_status = parse_status,
};
