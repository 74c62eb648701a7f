/* task_api.c: what a host may ask of a task: its fields, download, cancel, resume, release, free. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "journal.h"

static int nomem(pf_err *err) {
  pf_err_set(err, PF_EK_NOMEM, 0, "nomem", "out of memory");
  return -1;
}

void pf_task_free(pf_task *t) {
  if (!t) return;
  if (t->client) {
    pf_client *c = t->client;
    pf_heap_remove(&c->heap, &t->timer);
    pf_xfer_abort(&c->net, &t->x);
  }
  pf_task_detach(t);
  pf_task_free_parts(t);
  free(t);
}

/* ---------------------------------------------------------------- fields */

/* A journaled task's id is what its video is found by later (resume, another process): the host
 * learns it, and that the gateway took the task, only once the worker has written it to the
 * journal. Until then the task reads as still submitting. (When the record cannot be written, a
 * full disk, the id shows, with the journal error: it is owed, and tried again.) */
static int id_unrecorded(const pf_task *t) {
  return t->client && t->id && t->jkey[0] && !(t->jrec & PF_JR_ACCEPTED) && t->jbusy;
}

const char *pf_task_id(const pf_task *t) { return id_unrecorded(t) ? NULL : t->id; }
pf_state pf_task_state(const pf_task *t) { return id_unrecorded(t) ? PF_ST_SUBMITTING : t->state; }
const char *pf_task_provider(const pf_task *t) { return t->provider; }
pf_mode pf_task_mode(const pf_task *t) { return t->mode; }
const char *pf_task_model(const pf_task *t) { return t->model; }
int pf_task_progress(const pf_task *t) { return t->progress; }
double pf_task_eta(const pf_task *t) { return t->eta; }
int pf_task_halted(const pf_task *t) { return t->halted; }
int pf_task_journaling(const pf_task *t) { return t->client && (t->jbusy || t->sending_job); }
int pf_task_held(const pf_task *t) { return t->held; }
int pf_task_retries(const pf_task *t) { return t->retries; }
const char *pf_task_journal_key(const pf_task *t) { return t->jkey[0] ? t->jkey : NULL; }
pf_dlstate pf_task_download_state(const pf_task *t) { return t->dl; }
pf_cancel_state pf_task_cancel_state(const pf_task *t) { return t->cancel; }

const pf_video *pf_task_videos(const pf_task *t, size_t *n) {
  *n = t->nvideos;
  return t->videos;
}

const pf_cost *pf_task_costs(const pf_task *t, size_t *n) {
  *n = t->ncosts;
  return t->costs;
}

long long pf_task_bytes(const pf_task *t) {
  return t->x.kind == PF_X_DOWNLOAD ? (long long)t->x.written : 0;
}

const char *pf_task_phase(const pf_task *t) {
  if (t->dl == PF_DL_RUNNING) return "downloading";
  if (t->held) return "held";
  if (t->state == PF_ST_SUBMITTING) return t->upi < t->nups ? "uploading" : "submitting";
  if (pf_state_terminal(t->state)) return "done";
  return "waiting";
}

const char *pf_task_path(const pf_task *t) {
  return t->dl == PF_DL_DONE ? t->dl_path : NULL;
}

int pf_task_error(const pf_task *t, pf_task_errwhich which, pf_err *out) {
  const pf_err *e = NULL;
  switch (which) {
    case PF_TE_TASK: e = t->has_err ? &t->err : NULL; break;
    case PF_TE_RETRY: e = t->retries ? &t->retry_err : NULL; break;
    case PF_TE_JOURNAL: e = t->has_jerr ? &t->jerr : NULL; break;
    case PF_TE_DOWNLOAD: e = t->dl == PF_DL_FAILED ? &t->dl_err : NULL; break;
    case PF_TE_CANCEL: e = t->cancel == PF_CANCEL_REFUSED ? &t->cancel_err : NULL; break;
  }
  if (!e) return 0;
  *out = *e;
  if (t->client && t->client->api_key) pf_err_redact(out, t->client->api_key);
  return 1;
}

/* ---------------------------------------------------------------- actions */

static int detached(pf_err *err) {
  pf_err_set(err, PF_EK_INVALID, 0, "detached", "the task's client is closed");
  return -1;
}

int pf_task_resume(pf_task *t) {
  pf_client *c = t->client;
  if (!c) return 0;
  if (t->halted && t->id && !pf_state_terminal(t->state)) {
    t->halted = 0;
    t->has_err = 0;
    t->poll_failures = 0;
    if (pf_task_deadline_passed(c, t)) pf_task_start_deadline(c, t);   /* waiting again: a new window */
    if (pf_task_schedule(c, t, 0, PF_AT_POLL) != 0) return -1;
    pf_task_settle(c, t);
  }
  return 0;
}

int pf_task_download(pf_task *t, const char *path, pf_err *err) {
  pf_client *c = t->client;
  pf_err_clear(err);
  if (!c) return detached(err);
  if (t->dl == PF_DL_RUNNING) {
    pf_err_set(err, PF_EK_INVALID, 0, "busy", "a download of this task is already running");
    return -1;
  }
  /* asked for after the deadline: the download's own limits govern it */
  if (pf_task_deadline_passed(c, t)) t->deadline = 0;
  if (t->state != PF_ST_SUCCEEDED || t->nvideos == 0) {
    pf_err_set(err, PF_EK_INVALID, 0, "not_ready",
               "task %s has no result to download (status %s)", t->id ? t->id : "-",
               pf_state_name(t->state));
    return -1;
  }
  /* the journal learns where the file goes before a byte of it is written, and refuses a path
   * another task may still write: on the worker, with the .part's opening (pf_task_open_part);
   * such a refusal fails the download (download_state "failed", code output_taken) */
  t->jrec &= ~(unsigned)PF_JR_DOWNLOAD;    /* each download's path is recorded (and claimed) */
  t->dl_rec_owed = 0;
  free(t->dl_path);
  free(t->dl_part);
  t->dl_path = pf_strdup(path);
  size_t n = strlen(path) + 6;
  t->dl_part = malloc(n);
  if (!t->dl_path || !t->dl_part) return nomem(err);
  snprintf(t->dl_part, n, "%s.part", path);
  t->dl_attempts = 0;
  t->dl_gen++;
  t->dl_refreshed = t->dl_after_poll = 0;
  pf_err_clear(&t->dl_err);
  if (pf_task_start_download(c, t, err) != 0) {
    t->dl = PF_DL_FAILED;
    t->dl_err = *err;
    return -1;
  }
  t->dl = PF_DL_RUNNING;
  pf_task_settle(c, t);
  return 0;
}

/* The transfer, a retry waiting on the heap, or the status read for a fresh URL that the
 * download waits for: each stops, and the .part file goes. */
void pf_task_download_abort(pf_task *t) {
  pf_client *c = t->client;
  if (t->dl != PF_DL_RUNNING || !c) return;
  int refresh = t->dl_after_poll;
  t->dl_after_poll = 0;
  if (t->timer_action == PF_AT_DOWNLOAD || (refresh && t->timer_action == PF_AT_POLL))
    pf_heap_remove(&c->heap, &t->timer);
  if (t->x.kind == PF_X_DOWNLOAD || (refresh && (t->x.kind == PF_X_STATUS || t->x.kind == PF_X_RESULT)))
    pf_xfer_abort(&c->net, &t->x);
  if (t->dl_finishing) return;             /* every byte is in: it is being synced and renamed */
  if (t->dl_part) pf_client_remove_later(c, t->dl_part);   /* after an open still queued */
  t->dl_gen++;
  t->dl_opening = t->dl_removing = 0;
  t->dl = PF_DL_FAILED;
  pf_err_set(&t->dl_err, PF_EK_CANCELED, 0, "aborted", "the download was stopped");
  pf_task_settle(c, t);
}

int pf_task_release(pf_task *t, const char *id, const char *jkey, const char *jintent,
                    pf_err *err) {
  pf_client *c = t->client;
  pf_err_clear(err);
  if (!c) return detached(err);
  if (!t->held) {
    pf_err_set(err, PF_EK_INVALID, 0, "not_held", "the task is not held");
    return -1;
  }
  t->held = 0;
  free(t->rq.extend_from);
  t->rq.extend_from = pf_strdup(id);
  pf_task_start_deadline(c, t);             /* a chained task's time starts when it is sent */
  int rc = !t->rq.extend_from ? -1 : pf_task_write_intent(c, t, jkey, jintent, err);
  if (rc == 0) rc = pf_task_first_step(c, t, err);
  if (rc != 0) {
    if (err->kind == PF_EK_NONE) nomem(err);
    t->state = PF_ST_FAILED;
    pf_task_set_error(t, err);
    return -1;
  }
  pf_task_settle(c, t);
  pf_scrub_secrets();                       /* the submit's header lines were built */
  return 0;
}

void pf_task_abandon(pf_task *t, const char *msg) {
  if (!t->held) return;
  t->held = 0;
  t->state = PF_ST_CANCELED;
  pf_err e;
  pf_err_set(&e, PF_EK_CANCELED, 0, "source_failed", "%s; this task was never sent, so nothing was "
             "charged", msg);
  e.not_charged = 1;
  pf_task_set_error(t, &e);
}

int pf_task_cancel(pf_task *t, pf_err *err) {
  pf_client *c = t->client;
  pf_err_clear(err);
  if (!c) return detached(err);
  if (!c->adapter->build_cancel) {
    pf_err_set(err, PF_EK_INVALID, 0, "unsupported",
               "%s has no cancel call (none is documented); the task keeps running and may be "
               "billed", c->provider);
    return -1;
  }
  if (pf_state_terminal(t->state)) {
    pf_err_set(err, PF_EK_INVALID, 0, "finished", "the task already ended (%s)",
               pf_state_name(t->state));
    return -1;
  }
  if (t->cancel == PF_CANCEL_NONE || t->cancel == PF_CANCEL_REFUSED) {
    t->cancel = PF_CANCEL_WANTED;
    pf_err_clear(&t->cancel_err);
    if (t->id && !pf_xfer_busy(&t->x)) {
      if (pf_task_schedule(c, t, 0, PF_AT_CANCEL) != 0) return nomem(err);
      pf_task_settle(c, t);
    }
  }
  return 0;
}
