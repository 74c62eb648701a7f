/* jiekou.c: jiekou.ai's novita-style async API: /v3/async/<model> submit and the task-result
 * query (novita's shape, which jiekou's own client reads: [jk]). Facts: ../shared/providers.md
 * sections 4 and 10, seed 000. jiekou has no upload call. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto.h"

static const pf_proto jiekou = {
  .name = "jiekou",
  .submit = "/v3/async/%s",          /* the preset's gateway model is the last segment */
  .status = "/v3/async/task-result?task_id=%s",
  /* errors: jiekou's own client handles 401, 402 and 429 and reads message and code; the novita
   * envelope {"code","reason","message"} is assumed [INFERENCE]: reason decides the kind */
  .errors = { .message = { "error.message", "error", "message" }, .code = "reason", .code_fields = 1,
              .codes = { .auth = "FAILED_TO_AUTH", .quota = "NOT_ENOUGH_BALANCE",
                         .rate_limit = "RATE_LIMIT_EXCEEDED", .invalid = "INVALID_REQUEST_BODY" },
              .http = 402, .http_kind = PF_EK_QUOTA, .moderation_text = 1 },
  .task_id = "task_id",
  /* numbers may arrive as strings (novita's debug_info and TTLs do) [INFERENCE] */
  /* moderation has no status of its own; the reason text says it [INFERENCE] */
  .state = "task.status",
  .words = { .queued = "TASK_STATUS_QUEUED", .running = "TASK_STATUS_PROCESSING",
             .succeeded = "TASK_STATUS_SUCCEED", .failed = "TASK_STATUS_FAILED",
             .canceled = "TASK_STATUS_CANCELED" },
  .on_failed = { "TASK_STATUS_FAILED", "jiekou reports the task failed without a reason" },
  .on_canceled = { "TASK_STATUS_CANCELED", "the task was canceled at jiekou" },
  .progress = "task.progress_percent", .eta = "task.eta",
  .videos = { .list = "videos", .url = { "video_url" }, .ttl = "video_url_ttl" },
  /* the reason is task.reason, else task.error, else task.message: what jiekou's own client
   * reads ([jk] in providers.md 10.1, utils/api_client.py); an empty one counts as none */
  .reason = { "task.reason", "task.reason.message", "task.error", "task.error.message",
              "task.message", "task.message.message" },
  .reason_nonempty = 1,
};

PF_PROTO_CALLS(jiekou)

/* POST /v3/async/<model>: the preset's gateway model is the path's last segment
 * ("pixverse-pixverse-c1-reference-to-video"). */
static int build_submit(const pf_ctx *ctx, const pf_request *rq, pf_http_req *out, pf_err *err) {
  json_t *o = json_object(), *images = json_array();
  if (!o || !images) { json_decref(o); json_decref(images); return pf_proto_nomem(&jiekou, err); }
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
  if (bad) { json_decref(o); return pf_proto_nomem(&jiekou, err); }
  size_t n = strlen(rq->model) + 16;
  char *path = malloc(n);
  if (!path) { json_decref(o); return pf_proto_nomem(&jiekou, err); }
  snprintf(path, n, jiekou.submit, rq->model);
  int rc = pf_json_post(ctx, path, o, out, err);
  free(path);
  return rc;
}

const pf_adapter pf_adapter_jiekou = {
  .name = "jiekou", PF_PROTO_MEMBERS(jiekou), .build_submit = build_submit,
};
