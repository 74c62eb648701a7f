/* task.c: the task state machine (submit, status polls, download) and the pixflow.Task type. */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine.h"
#include "journal.h"
#include "reconcile.h"
#include "retry.h"

static void free_uploads(pf_task *t);

void pf_task_init(pf_task *t, pf_client *c) {
  memset(t, 0, sizeof *t);
  t->client = c;
  t->state = PF_ST_SUBMITTING;
  t->progress = -1;
  t->eta = -1;
  t->timer.idx = PF_NOT_QUEUED;
  pf_err_clear(&t->err);
  pf_err_clear(&t->dl_err);
  snprintf(t->provider, sizeof t->provider, "%s", c->provider);
  /* link into the client's list */
  t->next = c->tasks;
  if (c->tasks) c->tasks->prev = t;
  c->tasks = t;
}

int pf_task_in_flight(const pf_task *t) {
  /* a change not yet handed to Lua keeps the task anchored too (pf_client_changed) */
  return t->client && (t->timer.idx != PF_NOT_QUEUED || pf_task_busy(t) || t->changed);
}

int pf_task_schedule(pf_client *c, pf_task *t, double delay, pf_timer_action action) {
  t->timer_action = action;
  double due = pf_client_now(c) + (delay > 0 ? delay : 0);
  /* nothing waits past the task's deadline: the timer fires then, and says so */
  if (t->deadline > 0 && due > t->deadline && action != PF_AT_CANCEL) due = t->deadline;
  return pf_heap_set(&c->heap, &t->timer, due);
}

void pf_task_start_deadline(pf_client *c, pf_task *t) {
  t->deadline = t->task_timeout > 0 ? pf_client_now(c) + t->task_timeout : 0;
}

static int deadline_passed(const pf_client *c, const pf_task *t) {
  return t->deadline > 0 && pf_client_now(c) >= t->deadline - 1e-3;
}

static void free_videos(pf_task *t) {
  for (size_t i = 0; i < t->nvideos; i++) free(t->videos[i].url);
  free(t->videos);
  t->videos = NULL;
  t->nvideos = 0;
}

/* A failure that is being retried: kept for task.last_retry, so a slow task can say why. */
static void note_retry(pf_task *t, const pf_err *e) {
  t->retry_err = *e;
  t->retries++;
}

static void set_error(pf_task *t, const pf_err *e) {
  t->err = *e;
  t->has_err = 1;
}

static void halt(pf_client *c, pf_task *t, const pf_err *e) {
  set_error(t, e);
  t->halted = 1;
  pf_heap_remove(&c->heap, &t->timer);
  if (t->dl == PF_DL_RUNNING) {       /* a download waiting for a fresh URL cannot get one */
    t->dl = PF_DL_FAILED;
    t->dl_err = *e;
    t->dl_after_poll = 0;
  }
}

/* ---------------------------------------------------------------- the journal */

static json_t *error_fields(const pf_err *e) {
  json_t *o = json_pack("{s:s,s:s}", "kind", pf_errkind_name(e->kind), "message", e->message);
  if (o && e->code[0]) json_object_set_new(o, "code", json_string(e->code));
  if (o && e->status) json_object_set_new(o, "status", json_integer(e->status));
  return o;
}

/* A record the pump could not write: kept as owed, tried again (the next pump when another
 * process held the journal's lock, else a second later), and reported unless it was only busy. */
static void journal_owed(pf_client *c, pf_task *t, const pf_err *e, const char *what) {
  if (!t->jpending) {
    t->jpending = 1;
    c->jpending++;
  }
  int busy = strcmp(e->code, "busy") == 0;
  c->jretry_at = pf_client_now(c) + (busy ? 0 : 1);
  if (busy) return;
  pf_err_set(&t->jerr, PF_EK_IO, 0, "journal", "the journal could not record %s of task %s "
             "(pixflow keeps trying while this client is open): %s", what,
             t->id ? t->id : t->jkey, e->message);
  t->has_jerr = 1;
  c->jerr = t->jerr;
  c->jerr_new = 1;
}

static int journal_write(pf_client *c, pf_task *t, const char *ev, json_t *f, pf_err *e) {
  if (!f) {
    pf_err_set(e, PF_EK_NOMEM, 0, "nomem", "out of memory");
    return -1;
  }
  /* the pump never waits for another process's lock; closing (a call that may wait) does */
  int rc = pf_journal_record(c->journal, t->jkey, ev, pf_walltime(), f, 0,
                             c->closed_journal ? PF_J_WAIT : PF_J_NOWAIT, e);
  json_decref(f);
  return rc;
}

void pf_task_journal(pf_client *c, pf_task *t) {
  if (!c || !c->journal || !t->jkey[0]) return;
  pf_err e;
  pf_err_clear(&e);
  /* in order: the id before the end, the end before the file */
  if (t->id && !(t->jrec & PF_JR_ACCEPTED)) {
    json_t *f = json_pack("{s:s}", "id", t->id);
    if (f && t->found_by_list) json_object_set_new(f, "found", json_string("task list"));
    if (journal_write(c, t, "accepted", f, &e) != 0) { journal_owed(c, t, &e, "the id"); return; }
    t->jrec |= PF_JR_ACCEPTED;
  }
  if (pf_state_terminal(t->state) && t->jstate != (int)t->state + 1) {
    json_t *f = json_pack("{s:s}", "status", pf_state_name(t->state));
    if (f && t->has_err) json_object_set_new(f, "error", error_fields(&t->err));
    if (journal_write(c, t, "status", f, &e) != 0) { journal_owed(c, t, &e, "the end"); return; }
    t->jstate = (int)t->state + 1;
  }
  if (t->dl != PF_DL_NONE && t->dl_path && !(t->jrec & PF_JR_DOWNLOAD)) {
    if (journal_write(c, t, "download", json_pack("{s:s}", "path", t->dl_path), &e) != 0) {
      journal_owed(c, t, &e, "the download path");
      return;
    }
    t->jrec |= PF_JR_DOWNLOAD;
  }
  if (t->dl == PF_DL_DONE && t->dl_path && !(t->jrec & PF_JR_DOWNLOADED)) {
    if (journal_write(c, t, "downloaded", json_pack("{s:s}", "path", t->dl_path), &e) != 0) {
      journal_owed(c, t, &e, "the downloaded file");
      return;
    }
    t->jrec |= PF_JR_DOWNLOADED;
  }
  if (t->jpending) {
    t->jpending = 0;
    c->jpending--;
    t->has_jerr = 0;                  /* what was owed is written now */
  }
}

void pf_task_unclaim(pf_client *c, pf_task *t) {
  if (!c || !c->journal || !t->jkey[0]) return;
  if (t->jpending) pf_task_journal(c, t);
  pf_err e;
  pf_journal_release_task(c->journal, t->jkey, &e);   /* else it goes when the journal closes */
}

int pf_task_submit_start(pf_client *c, pf_task *t, pf_err *err) {
  /* the journal knows the submit may have left before it does (intent and sending are synced):
   * a process killed while uploading left "uploading", which means nothing was sent */
  if (c->journal && t->jkey[0] && !(t->jrec & PF_JR_SENDING)) {
    pf_err je;
    pf_err_clear(&je);
    if (pf_journal_record(c->journal, t->jkey, "sending", pf_walltime(), NULL, 1, PF_J_NOWAIT,
                          &je) != 0) {
      if (strcmp(je.code, "busy") == 0 && pf_task_schedule(c, t, 0.005, PF_AT_SUBMIT) == 0)
        return 0;                     /* another process is writing it: in a moment */
      pf_err_set(err, PF_EK_IO, 0, "journal", "%s; the submit was not sent, so nothing was "
                 "charged", je.message);
      return -1;
    }
    t->jrec |= PF_JR_SENDING;
  }
  char trace[37];
  pf_ctx ctx = pf_client_ctx(c, trace);
  pf_http_req req;
  memset(&req, 0, sizeof req);
  /* the request record stays until the gateway answers: a submit that provably never arrived
   * is built and sent again */
  int rc = c->adapter->build_submit(&ctx, &t->rq, &req, err);
  if (rc != 0) {
    pf_http_req_discard(&req);
    return -1;
  }
  t->submit_wall = pf_client_wall(c);
  return pf_xfer_start(c, t, PF_X_SUBMIT, &req, err);
}

typedef int (*build_by_id)(const pf_ctx *, const char *, pf_http_req *, pf_err *);

/* Start a request an adapter builds from the task id alone (status, result, cancel). */
static int start_by_id(pf_client *c, pf_task *t, build_by_id build, pf_xkind kind, pf_err *err) {
  char trace[37];
  pf_ctx ctx = pf_client_ctx(c, trace);
  pf_http_req req;
  memset(&req, 0, sizeof req);
  if (build(&ctx, t->id, &req, err) != 0) {
    pf_http_req_discard(&req);
    return -1;
  }
  return pf_xfer_start(c, t, kind, &req, err);
}

static int start_upload(pf_client *c, pf_task *t, pf_err *err) {
  char trace[37];
  pf_ctx ctx = pf_client_ctx(c, trace);
  pf_http_req req;
  memset(&req, 0, sizeof req);
  if (c->adapter->build_upload(&ctx, &t->ups[t->upi].up, &req, err) != 0) {
    pf_http_req_discard(&req);
    return -1;
  }
  return pf_xfer_start(c, t, PF_X_UPLOAD, &req, err);
}

static int start_download_attempt(pf_client *c, pf_task *t, pf_err *err) {
  pf_http_req req;
  memset(&req, 0, sizeof req);
  req.method = "GET";
  req.url = pf_strdup(t->videos[0].url);
  if (!req.url) {
    pf_err_set(err, PF_EK_NOMEM, 0, "nomem", "out of memory");
    return -1;
  }
  /* the API key is never sent to the result host: signed URLs carry their own authority */
  if (pf_task_busy(t)) {              /* never opens (and truncates) the .part of a live one */
    pf_err_set(err, PF_EK_INVALID, 0, "busy", "a request of this task is still in flight");
    pf_http_req_free(&req);
    return -1;
  }
  FILE *fp = NULL;
  curl_off_t resume_from = 0;
  if (t->dl_resume) {                 /* continue what an interrupted attempt left */
    fp = fopen(t->dl_part, "ab");
    long have = fp && fseek(fp, 0, SEEK_END) == 0 ? ftell(fp) : -1;
    if (have >= 8) {
      resume_from = (curl_off_t)have;
    } else if (fp) {
      fclose(fp);
      fp = NULL;
    }
  }
  if (!fp) fp = fopen(t->dl_part, "wb");
  if (!fp) {
    pf_err_set(err, PF_EK_IO, 0, "open", "cannot write %s: %s", t->dl_part, strerror(errno));
    pf_http_req_free(&req);
    return -1;
  }
  /* libcurl hands over large chunks (CURLOPT_BUFFERSIZE): each goes to the file in one write */
  setvbuf(fp, NULL, _IONBF, 0);
  if (pf_xfer_start_download(c, t, &req, fp, resume_from, err) != 0) {
    fclose(fp);
    remove(t->dl_part);
    return -1;
  }
  t->dl_attempts++;
  return 0;
}

/* Delay before the next status poll (the poll economy: docs/benchmarks.md, W4).
 * With hints (poll_adaptive): the gateway's progress rate predicts the finish (progress p% after
 * e seconds leaves e(100-p)/p), or, before there is progress to go by, its own estimate (eta),
 * of which only half is waited, estimates being rough; the poll is aimed at that time, within
 * poll_min..poll_max. A task that outlives its prediction is polled poll_min apart, growing by
 * half each time up to poll_interval. Without hints: every poll_interval for the first ten
 * minutes, then backing off by poll_backoff every three polls up to poll_max. Jitter only spreads
 * the first poll (first_poll): tasks submitted together then stay apart. */
static double next_poll_delay(pf_client *c, pf_task *t) {
  const pf_opts *o = &c->o;
  double elapsed = pf_client_now(c) - t->accepted_at;
  double left = -1;
  if (o->poll_adaptive) {
    if (t->progress >= 10 && t->progress < 100 && elapsed > 0)
      left = elapsed * (100 - t->progress) / t->progress;
    else if (t->eta >= 0)
      left = t->eta / 2;
  }
  if (left >= 0) {
    double d;
    if (left >= o->poll_min) {
      t->overdue = 0;
      d = left;
    } else {
      d = o->poll_min * pow(1.5, (double)t->overdue++);
      if (d > o->poll_interval) d = o->poll_interval;
    }
    if (d < o->poll_min) d = o->poll_min;
    return d > o->poll_max ? o->poll_max : d;
  }
  double d = o->poll_interval;
  if (!o->poll_adaptive || elapsed > 600)
    d *= pow(o->poll_backoff, (double)(t->npolls / 3));
  /* no hints, but this client's earlier tasks: 95% of them ran at least duration_q05, so the
   * polls before that are skipped */
  if (o->poll_adaptive && c->duration_q05 > elapsed + d) d = c->duration_q05 - elapsed;
  return d > o->poll_max ? o->poll_max : d;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* t ended well: remember how long it ran at least (from acceptance to the last poll that still
 * saw it running), and update the client's 5th percentile. */
static void record_duration(pf_client *c, pf_task *t) {
  if (t->last_poll_at <= t->accepted_at) return;
  c->durations[c->ndurations++ % PF_DURATIONS] = t->last_poll_at - t->accepted_at;
  size_t n = c->ndurations < PF_DURATIONS ? c->ndurations : PF_DURATIONS;
  if (n < 16) return;
  double sorted[PF_DURATIONS];
  memcpy(sorted, c->durations, n * sizeof sorted[0]);
  qsort(sorted, n, sizeof sorted[0], cmp_double);
  c->duration_q05 = sorted[n / 20];
}

static double first_poll(pf_client *c) {
  double d = c->o.poll_initial;
  return d - d * c->o.poll_jitter * pf_client_rand(c);
}

/* poll_rate: may a status request of t go now? If not, t's poll is moved to its slot. The slots
 * follow GCRA with no burst: one request every 1/rate seconds, so that no second, wherever it
 * starts, holds more than rate requests (a gateway's per-second limit). */
static int rate_admit(pf_client *c, pf_task *t) {
  if (c->o.poll_rate <= 0 || t->rate_slot) {
    t->rate_slot = 0;
    return 1;
  }
  double now = pf_client_now(c), step = 1 / c->o.poll_rate;
  double tat = c->rate_tat > now ? c->rate_tat : now;
  c->rate_tat = tat + step;
  if (tat <= now) return 1;
  t->rate_slot = 1;                         /* the slot is taken: it goes then, unchecked */
  pf_task_schedule(c, t, tat - now, t->timer_action);
  return 0;
}

/* The error for a transfer that ended with rc: a fired deadline by its name, else libcurl's. */
static void transfer_error(pf_client *c, pf_task *t, CURLcode rc, int download, pf_err *e) {
  if (t->x.failed && t->x.start_err.kind != PF_EK_NONE) *e = t->x.start_err;   /* never started */
  else if (rc == CURLE_OPERATION_TIMEDOUT) pf_timeout_error(c, t->x.easy, download, t->x.errbuf, e);
  else if (rc == CURLE_ABORTED_BY_CALLBACK && t->x.kind == PF_X_SUBMIT && t->x.sends > 1)
    pf_err_set(e, PF_EK_TRANSPORT, 0, "GOT_NOTHING", "the connection closed after the request "
               "was sent and before any reply (libcurl's own resend of it was stopped)");
  else pf_err_from_curl(e, rc, t->x.errbuf);
}

/* Why the task stops at its deadline, and what it may still cost. */
static void deadline_error(pf_client *c, pf_task *t, pf_err *e) {
  const char *doing = pf_state_name(t->state);
  if (t->dl == PF_DL_RUNNING) doing = "downloading its result";
  else if (t->state == PF_ST_SUBMITTING) doing = t->upi < t->nups ? "uploading its images" : "submitting";
  pf_err_set(e, PF_EK_TIMEOUT, 0, "task_timeout",
             "the task's deadline passed: task_timeout (%g s) ran out while %s", t->task_timeout,
             doing);
  if (t->id)
    pf_err_append(e, "; the task may still finish at %s and be billed. It stays in the journal "
                  "(pixflow resume), and wait() again keeps waiting", c->provider);
  else {
    pf_err_append(e, "; nothing was accepted by %s, so nothing was charged", c->provider);
    e->not_charged = 1;
  }
}

static void release_claims(pf_client *c, pf_task *t);

/* Gateway text (and libcurl's) enters the engine's errors in the completion handlers: every
 * error a task can carry loses the client's key there, before anything above can read it (a
 * gateway that echoes the Authorization header in its error message). push_err does it again
 * for what Lua reads; a task whose client closed was redacted while it could be. */
static void redact_errors(const pf_client *c, pf_task *t) {
  const char *k = c->api_key;
  if (!k) return;
  pf_err *all[] = { &t->err, &t->retry_err, &t->dl_err, &t->cancel_err, &t->unconfirmed_err };
  for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
    if (all[i]->message[0] || all[i]->code[0]) pf_err_redact(all[i], k);
}

static void deadline_fired(pf_client *c, pf_task *t) {
  pf_err e;
  deadline_error(c, t, &e);
  pf_heap_remove(&c->heap, &t->timer);
  if (t->dl == PF_DL_RUNNING) {
    t->dl = PF_DL_FAILED;
    t->dl_err = e;
    t->dl_after_poll = 0;
  }
  if (t->state == PF_ST_SUBMITTING && !t->id) {
    /* only reached between requests: uploads, or a submit that never arrived, wait their turn */
    if (t->lookups > 0) {             /* a lookup of an unconfirmed submit was due */
      t->state = PF_ST_UNCONFIRMED;
      set_error(t, &t->unconfirmed_err);
      return;
    }
    release_claims(c, t);
    t->state = PF_ST_FAILED;
    set_error(t, &e);
  } else if (!pf_state_terminal(t->state)) {
    halt(c, t, &e);
  }
}

/* A submit that never reached the gateway, or that it turned away before accepting it, is sent
 * again after a back-off; returns 1 when it was scheduled. */
static int retry_submit(pf_client *c, pf_task *t, const pf_err *e, int never_sent) {
  t->submit_failures++;
  if (!pf_retry_should(c, PF_R_SUBMIT, e, t->submit_failures, never_sent)) return 0;
  double d = pf_retry_after_failure(c, t->submit_failures, e);
  if (t->deadline > 0 && pf_client_now(c) + d >= t->deadline) return 0;
  if (pf_task_schedule(c, t, d, PF_AT_SUBMIT) != 0) return 0;
  note_retry(t, e);
  return 1;
}

/* The submit's outcome is unknown. Where the gateway lists its tasks, look there first. */
static void submit_unconfirmed(pf_client *c, pf_task *t, const pf_err *u) {
  if (c->adapter->build_list && t->model) {
    t->unconfirmed_err = *u;
    t->lookups = 1;
    if (pf_task_schedule(c, t, c->o.lookup_delay, PF_AT_LOOKUP) == 0) return;
  }
  t->state = PF_ST_UNCONFIRMED;
  set_error(t, u);
}

static void on_submit_done(pf_client *c, pf_task *t, CURLcode rc, long http) {
  pf_xfer *x = &t->x;
  pf_err e;
  pf_err_clear(&e);
  if (rc != CURLE_OK && !x->too_big) {
    transfer_error(c, t, rc, 0, &e);
    if (x->failed || pf_never_sent(x->easy, rc)) {
      if (retry_submit(c, t, &e, 1)) return;
      t->state = PF_ST_FAILED;
      if (t->submit_failures > 1)
        pf_err_append(&e, "; the request never reached %s (%d attempts), so nothing was charged",
                      c->provider, t->submit_failures);
      else
        pf_err_append(&e, "; the request never reached %s, so nothing was charged", c->provider);
      e.not_charged = 1;
      pf_request_free(&t->rq);
      set_error(t, &e);
      return;
    }
  } else if (rc == CURLE_OK) {
    char trace[37];
    pf_ctx ctx = pf_client_ctx(c, trace);
    char *id = NULL;
    if (c->adapter->parse_submit(&ctx, http, x->resp.data, x->resp.len, &id, &e) == 0) {
      t->id = id;
      if (c->adapter->submit_costs) {         /* the price the submit's reply names */
        pf_status cs;
        pf_status_init(&cs);
        c->adapter->submit_costs(&ctx, http, x->resp.data, x->resp.len, &cs);
        pf_costs_merge(t->costs, &t->ncosts, cs.costs, cs.ncosts);
      }
      pf_request_free(&t->rq);
      free_uploads(t);
      t->state = PF_ST_QUEUED;
      t->accepted_at = pf_client_now(c);
      if (pf_task_schedule(c, t, first_poll(c), PF_AT_POLL) != 0) {
        pf_err_set(&e, PF_EK_NOMEM, 0, "nomem", "out of memory scheduling the first poll");
        halt(c, t, &e);
      }
      return;
    }
    pf_retry_after_set(c, &e, x->retry_after, x->resp.data, x->resp.len);
    /* A definite refusal (the gateway said no: invalid, auth, quota, rate limit, moderation,
     * or a 503 before acceptance) created nothing. A garbled reply, a reply without an id, or
     * a 500/502/504 may hide an accepted task. */
    int ambiguous = e.kind == PF_EK_PROTOCOL || e.kind == PF_EK_NOMEM ||
                    (e.kind == PF_EK_PROVIDER && http != 503);
    if (!ambiguous) {
      if (retry_submit(c, t, &e, 0)) return;     /* 429 and 503: turned away, sent again */
      if (t->submit_failures > 1)
        pf_err_append(&e, " (%d attempts; nothing was accepted, so nothing was charged)",
                      t->submit_failures);
      e.not_charged = 1;                          /* a definite refusal created nothing */
      t->state = PF_ST_FAILED;
      pf_request_free(&t->rq);
      set_error(t, &e);
      return;
    }
  }
  /* The body may have reached the gateway and the task may exist and be billed. It is never
   * sent again automatically: the user decides, with the gateway's task list in hand. */
  pf_err u;
  char code[sizeof e.code];
  memcpy(code, e.code, sizeof code);
  pf_err_set(&u, PF_EK_UNCONFIRMED, http, code[0] ? code : "unconfirmed",
             "the submit may have been accepted by %s, and may be billed; pixflow did not send "
             "it again. Check the gateway's task list before submitting again, to avoid paying "
             "twice. Cause: ", c->provider);
  if (x->too_big) pf_err_append(&u, "the reply was larger than %zu bytes", c->o.max_body);
  else pf_err_append(&u, "%s", e.message[0] ? e.message : "no usable reply");
  pf_request_free(&t->rq);
  submit_unconfirmed(c, t, &u);
}

/* Start the next request of a lookup in the task list (the first: a new lookup). */
static int start_lookup(pf_client *c, pf_task *t, pf_err *e) {
  if (!t->list) {
    t->list = json_object();
    t->list_wseen = json_object();
    if (!t->list || !t->list_wseen) {
      pf_err_set(e, PF_EK_NOMEM, 0, "nomem", "out of memory");
      return -1;
    }
    t->list_page = 1;
    t->list_win = 0;
    t->list_cut = 0;
    t->list_count = t->list_total = 0;
    t->list_clock = 0;
    t->list_to = pf_client_wall(c);
  }
  double a, b;
  t->list_nwin = pf_list_window(t->submit_wall, t->list_to, t->list_win, &a, &b);
  char trace[37];
  pf_ctx ctx = pf_client_ctx(c, trace);
  pf_http_req req;
  memset(&req, 0, sizeof req);
  if (c->adapter->build_list(&ctx, t->model, a, b, t->list_page, &req, e) != 0) {
    pf_http_req_discard(&req);
    return -1;
  }
  return pf_xfer_start(c, t, PF_X_LIST, &req, e);
}

static void end_lookup(pf_task *t) {
  json_decref(t->list);
  json_decref(t->list_wseen);
  t->list = t->list_wseen = NULL;
}

/* Is id already a known task's: this client's, or (with a journal) any recorded one? */
static int id_owned(const char *id, void *ud) {
  pf_client *c = ud;
  for (pf_task *o = c->tasks; o; o = o->next)
    if (o->id && strcmp(o->id, id) == 0) return 1;
  return c->journal && pf_journal_has_id(c->journal, id) != 0;
}

/* A lookup that could not finish: look again later, or give up (unconfirmed, saying why). */
static void lookup_failed(pf_client *c, pf_task *t, const char *why) {
  end_lookup(t);
  if (t->lookups < c->o.lookup_attempts &&
      pf_task_schedule(c, t, c->o.lookup_delay * t->lookups, PF_AT_LOOKUP) == 0) {
    t->lookups++;
    return;
  }
  t->state = PF_ST_UNCONFIRMED;
  pf_err_append(&t->unconfirmed_err, " (its task list could not be read: %s)", why);
  set_error(t, &t->unconfirmed_err);
}

/* A page of the task list for an unconfirmed submit. When every page of every window is in,
 * the one matcher (reconcile.c) decides: adopt the one task that can only be this submit's,
 * look again (the list may lag), or say what was found. */
static void on_list_done(pf_client *c, pf_task *t, CURLcode rc, long http) {
  pf_xfer *x = &t->x;
  pf_err e;
  pf_err_clear(&e);
  json_t *items = NULL;
  int more = 0;
  char trace[37];
  pf_ctx ctx = pf_client_ctx(c, trace);
  if (rc != CURLE_OK) transfer_error(c, t, rc, 0, &e);
  long total = -1;
  if (rc != CURLE_OK ||
      c->adapter->parse_list(&ctx, http, x->resp.data, x->resp.len, &items, &more, &total, &e) != 0) {
    json_decref(items);
    lookup_failed(c, t, e.message);
    return;
  }
  size_t i;
  json_t *it;
  json_array_foreach(items, i, it) {
    const char *id = json_string_value(json_object_get(it, "id"));
    json_t *created = json_object_get(it, "created");
    if (!id) continue;
    /* distinct tasks of this window: a list that shifted while it was read lists one twice */
    if (!json_object_get(t->list_wseen, id)) {
      t->list_count++;
      json_object_set_new(t->list_wseen, id, json_true());
    }
    json_object_set_new(t->list, id, created ? json_incref(created) : json_real(-1));
  }
  json_decref(items);
  if (total > t->list_total) t->list_total = total;
  if (x->server_date > 0) {                   /* the gateway's clock, from this page's Date */
    double off = x->server_date - x->server_date_at;
    if (!t->list_clock || off - 0.5 < t->list_clock_lo) t->list_clock_lo = off - 0.5;
    if (!t->list_clock || off + 1 > t->list_clock_hi) t->list_clock_hi = off + 1;
    t->list_clock = 1;
  }
  if (more < 0 || (more > 0 && t->list_page >= PF_LIST_MAX_PAGES)) t->list_cut = 1;
  if (more > 0 && !t->list_cut) {
    t->list_page++;                           /* the next page; a little apart (20 QPS) */
    if (pf_task_schedule(c, t, 0.06, PF_AT_LOOKUP) != 0) lookup_failed(c, t, "out of memory");
    return;
  }
  /* a list that shifted while it was read (fewer distinct tasks than it announced) may have
   * skipped one: it is not complete */
  if (t->list_total >= 0 && t->list_count < t->list_total) t->list_cut = 1;
  if (t->list_win + 1 < t->list_nwin) {
    t->list_win++;
    t->list_page = 1;
    t->list_count = t->list_total = 0;
    json_object_clear(t->list_wseen);
    if (pf_task_schedule(c, t, 0.06, PF_AT_LOOKUP) != 0) lookup_failed(c, t, "out of memory");
    return;
  }
  size_t n = json_object_size(t->list), k = 0;
  pf_listed *arr = calloc(n ? n : 1, sizeof *arr);
  if (!arr) { lookup_failed(c, t, "out of memory"); return; }
  const char *id;
  json_t *v;
  json_object_foreach(t->list, id, v) {
    arr[k].id = id;
    arr[k].created = json_number_value(v);
    k++;
  }
  /* another submit whose answer is unknown (of this client, or of another process that shares
   * the journal) makes a candidate created after it was sent ambiguous */
  double now_wall = pf_client_wall(c), since = 0, until = 0;
  pf_rival rv[2];
  size_t nrv = 0;
  double own = -1;
  for (pf_task *o = c->tasks; o; o = o->next)
    if (o != t && !o->id && o->submit_wall > 0 && o->submit_wall >= t->submit_wall - 2 &&
        (o->state == PF_ST_SUBMITTING || o->state == PF_ST_UNCONFIRMED) &&
        (own < 0 || o->submit_wall < own))
      own = o->submit_wall;
  if (own >= 0) rv[nrv++] = (pf_rival){ own, now_wall };
  if (c->journal && t->jkey[0]) {
    int r = pf_journal_rivals(c->journal, t->jkey, c->provider, c->base_url, t->submit_wall,
                              now_wall, &since, &until);
    if (r != 0) rv[nrv++] = r > 0 ? (pf_rival){ since, until } : (pf_rival){ t->submit_wall, now_wall };
  }
  int rivals = nrv > 0;
  pf_match_query q = { .from = t->submit_wall, .to = now_wall, .skew = 2, .complete = !t->list_cut,
                       .closed = 0, .clock_known = t->list_clock, .clock_lo = t->list_clock_lo,
                       .clock_hi = t->list_clock_hi, .rivals = rv, .nrivals = nrv, .owned = id_owned,
                       .ud = c };
  size_t found = 0, ncands = 0;
  pf_match_result m = pf_match_unconfirmed(arr, k, &q, &found, &ncands);
  char *adopt = m == PF_MATCH_FOUND ? pf_strdup(arr[found].id) : NULL;
  free(arr);
  int cut = t->list_cut;
  end_lookup(t);
  if (m == PF_MATCH_FOUND) {
    if (!adopt) {
      t->state = PF_ST_UNCONFIRMED;
      set_error(t, &t->unconfirmed_err);
      return;
    }
    t->id = adopt;
    t->lookups = 0;
    t->found_by_list = 1;
    t->state = PF_ST_QUEUED;
    t->accepted_at = pf_client_now(c);
    if (pf_task_schedule(c, t, 0, PF_AT_POLL) != 0) {
      pf_err_set(&e, PF_EK_NOMEM, 0, "nomem", "out of memory scheduling the first poll");
      halt(c, t, &e);
    }
    return;
  }
  if (!cut && ncands == 0 && !rivals && t->lookups < c->o.lookup_attempts &&
      pf_task_schedule(c, t, c->o.lookup_delay * t->lookups, PF_AT_LOOKUP) == 0) {
    t->lookups++;                             /* the list may lag: look again a little later */
    return;
  }
  t->state = PF_ST_UNCONFIRMED;
  if (cut)
    pf_err_append(&t->unconfirmed_err, " (%s's task list could not be read to its end, so "
                  "pixflow cannot tell whether this submit made a task)", c->provider);
  else if (ncands == 0 && !rivals)
    pf_err_append(&t->unconfirmed_err, " (%s's task list showed no task from this submit "
                  "after %d looks: it was most likely never created; check before submitting "
                  "again)", c->provider, t->lookups);
  else
    pf_err_append(&t->unconfirmed_err, " (%s's task list has %zu tasks that could be this one; "
                  "pixflow does not guess)", c->provider, ncands);
  set_error(t, &t->unconfirmed_err);
}

static void apply_status(pf_client *c, pf_task *t, pf_status *st) {
  pf_state before = t->state;
  t->poll_failures = 0;
  t->npolls++;
  if (st->progress >= 0) t->progress = st->progress;
  t->eta = st->eta;
  pf_costs_merge(t->costs, &t->ncosts, st->costs, st->ncosts);
  if (st->nvideos > 0) {
    free_videos(t);
    t->videos = st->videos;
    t->nvideos = st->nvideos;
    st->videos = NULL;
    st->nvideos = 0;
  }
  t->state = st->state;
  if (t->dl_after_poll && st->state != PF_ST_SUCCEEDED) {
    /* the status read for a fresh result URL says the task has not succeeded (any more): the
     * download ends now, saying so, rather than waiting with it for the task's deadline */
    t->dl_after_poll = 0;
    t->dl = PF_DL_FAILED;
    pf_err_set(&t->dl_err, PF_EK_PROVIDER, 0, "result_unavailable",
               "the result URL had expired, and the status read for a fresh one says the task is "
               "%s at %s, not succeeded; nothing was saved. Download again once it has succeeded",
               pf_state_name(st->state), c->provider);
  }
  if (st->state == PF_ST_SUCCEEDED) {
    if (before != PF_ST_SUCCEEDED) record_duration(c, t);
    t->progress = 100;
    t->eta = 0;
    if (t->dl_after_poll) {                 /* the fresh URL is in: download again */
      t->dl_after_poll = 0;
      pf_err e;
      if (pf_task_schedule(c, t, 0, PF_AT_DOWNLOAD) != 0) {
        pf_err_set(&e, PF_EK_NOMEM, 0, "nomem", "out of memory");
        halt(c, t, &e);
      }
    }
  } else if (pf_state_terminal(st->state)) {
    set_error(t, &st->err);
  } else {
    pf_err e;
    t->last_poll_at = pf_client_now(c);
    if (pf_task_schedule(c, t, next_poll_delay(c, t), PF_AT_POLL) != 0) {
      pf_err_set(&e, PF_EK_NOMEM, 0, "nomem", "out of memory scheduling the next poll");
      halt(c, t, &e);
    }
  }
}

static void poll_failed(pf_client *c, pf_task *t, pf_err *e) {
  t->poll_failures++;
  if (!pf_retry_should(c, PF_R_STATUS, e, t->poll_failures, 0)) {
    if (e->retryable || e->kind == PF_EK_PROTOCOL)
      pf_err_append(e, " (%d status polls in a row failed; the task may still be running at "
                    "%s: wait again to resume polling)", t->poll_failures, c->provider);
    halt(c, t, e);
    return;
  }
  if (pf_task_schedule(c, t, pf_retry_after_failure(c, t->poll_failures, e), PF_AT_POLL) != 0)
    halt(c, t, e);
  else
    note_retry(t, e);
}

static void on_status_done(pf_client *c, pf_task *t, CURLcode rc, long http) {
  pf_xfer *x = &t->x;
  pf_err e;
  pf_err_clear(&e);
  if (rc != CURLE_OK) {
    if (x->too_big)
      pf_err_set(&e, PF_EK_PROTOCOL, http, "too_large",
                 "the status reply was larger than %zu bytes", c->o.max_body);
    else
      transfer_error(c, t, rc, 0, &e);
    if (deadline_passed(c, t)) {
      deadline_fired(c, t);
      return;
    }
    poll_failed(c, t, &e);
    return;
  }
  char trace[37];
  pf_ctx ctx = pf_client_ctx(c, trace);
  pf_status st;
  pf_status_init(&st);
  int (*parse)(const pf_ctx *, long, const char *, size_t, pf_status *, pf_err *) =
    x->kind == PF_X_RESULT ? c->adapter->parse_result : c->adapter->parse_status;
  if (parse(&ctx, http, x->resp.data, x->resp.len, &st, &e) != 0) {
    pf_retry_after_set(c, &e, x->retry_after, x->resp.data, x->resp.len);
    pf_status_free(&st);
    poll_failed(c, t, &e);
    return;
  }
  if (st.need_result && c->adapter->build_result) {
    /* finished: the videos come from the result call, scheduled for now */
    t->poll_failures = 0;
    if (st.progress >= 0) t->progress = st.progress;
    pf_status_free(&st);
    if (pf_task_schedule(c, t, 0, PF_AT_RESULT) != 0) {
      pf_err_set(&e, PF_EK_NOMEM, 0, "nomem", "out of memory");
      halt(c, t, &e);
    }
    return;
  }
  apply_status(c, t, &st);
  pf_status_free(&st);
}

static void on_cancel_done(pf_client *c, pf_task *t, CURLcode rc, long http) {
  pf_xfer *x = &t->x;
  pf_err e;
  pf_err_clear(&e);
  char trace[37];
  pf_ctx ctx = pf_client_ctx(c, trace);
  if (rc != CURLE_OK) pf_err_from_curl(&e, rc, x->errbuf);
  if (rc != CURLE_OK || c->adapter->parse_cancel(&ctx, http, x->resp.data, x->resp.len, &e) != 0) {
    t->cancel = PF_CANCEL_REFUSED;
    t->cancel_err = e;
  } else {
    t->cancel = PF_CANCEL_ACCEPTED;
  }
  /* either way, read the status again now: it says what the cancel did */
  if (!pf_state_terminal(t->state) && pf_task_schedule(c, t, 0, PF_AT_POLL) != 0) {
    pf_err_set(&e, PF_EK_NOMEM, 0, "nomem", "out of memory");
    halt(c, t, &e);
  }
}

/* Replace every request field that waited for upload src with its result. */
static int fill_slots(pf_task *t, size_t src, const char *value) {
  for (size_t i = 0; i < t->nslots; i++) {
    if (t->slots[i].src != src) continue;
    char *v = pf_strdup(value);
    if (!v) return -1;
    free(*t->slots[i].field);
    *t->slots[i].field = v;
  }
  return 0;
}

static void release_claims(pf_client *c, pf_task *t) {
  for (size_t i = 0; i < t->nups; i++) {
    if (t->ups[i].claimed) pf_cache_release(c, t->ups[i].key);
    t->ups[i].claimed = 0;
  }
}

static void upload_failed(pf_client *c, pf_task *t, pf_err *e) {
  pf_upsrc *u = &t->ups[t->upi];
  if (pf_retry_should(c, PF_R_UPLOAD, e, ++t->up_attempts, 0) && !deadline_passed(c, t)) {
    u->up.step = 0;
    if (pf_task_schedule(c, t, pf_retry_after_failure(c, t->up_attempts, e), PF_AT_UPLOAD) == 0) {
      note_retry(t, e);
      return;
    }
  }
  if (deadline_passed(c, t)) deadline_error(c, t, e);
  release_claims(c, t);
  pf_err_append(e, " (uploading %s; nothing was submitted, so nothing was charged)",
                u->path ? u->path : u->url);
  e->not_charged = 1;
  t->state = PF_ST_FAILED;
  set_error(t, e);
}

static void on_upload_done(pf_client *c, pf_task *t, CURLcode rc, long http) {
  pf_xfer *x = &t->x;
  pf_err e;
  pf_err_clear(&e);
  pf_upsrc *u = &t->ups[t->upi];
  if (rc != CURLE_OK) {
    if (x->too_big) pf_err_set(&e, PF_EK_PROTOCOL, http, "too_large", "the upload reply is too large");
    else transfer_error(c, t, rc, 0, &e);
    upload_failed(c, t, &e);
    return;
  }
  char trace[37];
  pf_ctx ctx = pf_client_ctx(c, trace);
  int r = c->adapter->parse_upload(&ctx, &u->up, http, x->resp.data, x->resp.len, &e);
  if (r < 0) {
    pf_retry_after_set(c, &e, x->retry_after, x->resp.data, x->resp.len);
    upload_failed(c, t, &e);
    return;
  }
  if (r > 0) {                              /* another step: the adapter advanced up->step */
    if (pf_task_schedule(c, t, 0, PF_AT_UPLOAD) != 0) {
      pf_err_set(&e, PF_EK_NOMEM, 0, "nomem", "out of memory");
      upload_failed(c, t, &e);
    }
    return;
  }
  c->uploads++;
  pf_cache_put(c, u->key, u->up.result, u->up.ttl);
  u->claimed = 0;                           /* the claim became the cached value */
  if (fill_slots(t, t->upi, u->up.result) != 0) {
    pf_err_set(&e, PF_EK_NOMEM, 0, "nomem", "out of memory");
    upload_failed(c, t, &e);
    return;
  }
  t->upi++;
  t->up_attempts = 0;
  if (pf_task_schedule(c, t, 0, PF_AT_UPLOAD) != 0) {
    pf_err_set(&e, PF_EK_NOMEM, 0, "nomem", "out of memory");
    upload_failed(c, t, &e);
  }
}

/* resumable: the .part keeps what arrived, and the next attempt asks for the rest */
static void download_failed(pf_client *c, pf_task *t, pf_err *e, int resumable) {
  t->dl_resume = resumable;
  if (!resumable) remove(t->dl_part);
  if (deadline_passed(c, t)) {
    deadline_error(c, t, e);
  } else if (pf_retry_should(c, PF_R_DOWNLOAD, e, t->dl_attempts, 0)) {
    double d = pf_retry_after_failure(c, t->dl_attempts, e);
    if (pf_task_schedule(c, t, d, PF_AT_DOWNLOAD) == 0) {
      note_retry(t, e);
      return;
    }
  }
  if (resumable) remove(t->dl_part);
  t->dl_resume = 0;
  t->dl = PF_DL_FAILED;
  t->dl_err = *e;
}

static int sync_dir_of(const char *path) {
  char dir[4096];
  snprintf(dir, sizeof dir, "%s", path);
  char *slash = strrchr(dir, '/');
  if (slash == dir) slash[1] = '\0';
  else if (slash) *slash = '\0';
  else snprintf(dir, sizeof dir, ".");
  int fd = open(dir, O_RDONLY);
  if (fd < 0) return -1;
  int rc = fsync(fd);
  close(fd);
  return rc;
}

static void on_download_done(pf_client *c, pf_task *t, CURLcode rc, long http) {
  pf_xfer *x = &t->x;
  pf_err e;
  pf_err_clear(&e);
  int io_ok = 1;
  if (x->fp) {
    io_ok = fflush(x->fp) == 0 && fsync(fileno(x->fp)) == 0;
    int saved = errno;
    io_ok = (fclose(x->fp) == 0) && io_ok;
    x->fp = NULL;
    if (!io_ok) errno = saved;
  }
  if (x->not_mp4 || (rc == CURLE_OK && x->headlen < sizeof x->head)) {
    pf_err_set(&e, PF_EK_PROTOCOL, http, "not_mp4",
               "the result from %s is not an MP4 file (no 'ftyp' box at byte 4); nothing was "
               "saved", c->provider);
  } else if (x->too_big || rc == CURLE_FILESIZE_EXCEEDED) {
    pf_err_set(&e, PF_EK_PROTOCOL, http, "too_large",
               "the result is larger than max_download_bytes (%lld bytes)",
               (long long)c->o.max_download);
  } else if (rc == CURLE_HTTP_RETURNED_ERROR) {
    curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &http);
    /* signed result URLs expire (about 24 h on apimart and DashScope): read the task's status
     * once more for a fresh URL before giving up */
    if ((http == 403 || http == 410) && t->id && !t->dl_refreshed) {
      t->dl_refreshed = 1;
      remove(t->dl_part);
      if (pf_task_schedule(c, t, 0, PF_AT_POLL) == 0) {
        t->dl_after_poll = 1;
        return;
      }
    }
    pf_errkind k = pf_kind_for_http(http);
    pf_err_set(&e, k, http, "http_error", "downloading the result failed with HTTP %ld%s", http,
               (http == 403 || http == 410) ? " (signed result URLs expire, often after 24 h)" : "");
    e.retryable = pf_http_retryable(http);
    pf_retry_after_set(c, &e, x->retry_after, NULL, 0);
  } else if (rc == CURLE_WRITE_ERROR || !io_ok) {
    pf_err_set(&e, PF_EK_IO, 0, "write", "writing %s failed: %s", t->dl_part, strerror(errno));
  } else if (rc == CURLE_RANGE_ERROR) {
    /* the server would not continue from an offset: start again from byte 0, at once */
    pf_err_set(&e, PF_EK_TRANSPORT, http, "RANGE_ERROR",
               "the result host did not continue the download from byte %lld",
               (long long)x->resume_from);
    e.retry_after = 0;
    download_failed(c, t, &e, 0);
    return;
  } else if (rc != CURLE_OK) {
    transfer_error(c, t, rc, 1, &e);
    /* what arrived before the cut is kept (its head was checked): the next attempt continues */
    download_failed(c, t, &e, x->written > x->resume_from || x->resume_from > 0);
    return;
  } else if (rename(t->dl_part, t->dl_path) != 0) {
    pf_err_set(&e, PF_EK_IO, 0, "rename", "cannot rename %s to %s: %s", t->dl_part, t->dl_path,
               strerror(errno));
  } else {
    sync_dir_of(t->dl_path);
    t->dl = PF_DL_DONE;
    t->dl_resume = 0;
    return;
  }
  download_failed(c, t, &e, 0);
}

void pf_task_on_done(lua_State *L, int cidx, pf_client *c, pf_task *t, CURLcode rc) {
  long http = 0;
  pf_state before = t->state;
  int progress = t->progress, halted = t->halted;
  pf_dlstate dl = t->dl;
  if (t->x.easy) curl_easy_getinfo(t->x.easy, CURLINFO_RESPONSE_CODE, &http);
  pf_trace_request(c, t, rc, http);
  switch (t->x.kind) {
    case PF_X_UPLOAD: on_upload_done(c, t, rc, http); break;
    case PF_X_SUBMIT: on_submit_done(c, t, rc, http); break;
    case PF_X_STATUS: case PF_X_RESULT: on_status_done(c, t, rc, http); break;
    case PF_X_CANCEL: on_cancel_done(c, t, rc, http); break;
    case PF_X_DOWNLOAD: on_download_done(c, t, rc, http); break;
    case PF_X_LIST: on_list_done(c, t, rc, http); break;
    default: break;
  }
  redact_errors(c, t);
  pf_xfer_release(c, &t->x);
  /* a cancel asked for while this request ran goes out next, ahead of the next poll */
  if (t->cancel == PF_CANCEL_WANTED && t->id && !pf_state_terminal(t->state))
    pf_task_schedule(c, t, 0, PF_AT_CANCEL);
  if (t->state != before || t->progress != progress || t->halted != halted || t->dl != dl) {
    pf_task_journal(c, t);
    pf_client_changed(L, cidx, c, t);
  }
  pf_task_sync_anchor(L, cidx, 0, c, t);
}

/* The next upload, or the submit once every image has its gateway reference. An image another
 * task of this client is uploading right now is waited for, not uploaded twice. */
static int next_upload(pf_client *c, pf_task *t, pf_err *e) {
  while (t->upi < t->nups) {
    pf_upsrc *u = &t->ups[t->upi];
    const char *hit = u->claimed ? NULL : pf_cache_get(c, u->key);
    if (hit) {
      if (fill_slots(t, t->upi, hit) != 0) {
        pf_err_set(e, PF_EK_NOMEM, 0, "nomem", "out of memory");
        return -1;
      }
      t->upi++;
      continue;
    }
    if (!u->claimed && pf_cache_claim(c, u->key)) {
      double d = c->o.poll_interval / 10;
      if (pf_task_schedule(c, t, d < 0.05 ? d : 0.05, PF_AT_UPLOAD) != 0) {
        pf_err_set(e, PF_EK_NOMEM, 0, "nomem", "out of memory");
        return -1;
      }
      return 0;
    }
    u->claimed = 1;
    return start_upload(c, t, e);
  }
  return pf_task_submit_start(c, t, e);
}

void pf_task_on_timer(lua_State *L, int cidx, pf_client *c, pf_task *t) {
  pf_err e;
  pf_err_clear(&e);
  if (t->timer_action != PF_AT_CANCEL && deadline_passed(c, t)) {
    deadline_fired(c, t);
    redact_errors(c, t);
    pf_task_journal(c, t);
    pf_client_changed(L, cidx, c, t);
    pf_task_sync_anchor(L, cidx, 0, c, t);
    return;
  }
  switch (t->timer_action) {
    case PF_AT_SUBMIT:
      if (pf_task_submit_start(c, t, &e) != 0) {
        t->state = PF_ST_FAILED;
        pf_request_free(&t->rq);
        set_error(t, &e);
        pf_client_changed(L, cidx, c, t);
      }
      break;
    case PF_AT_LOOKUP:
      if (start_lookup(c, t, &e) != 0) {
        end_lookup(t);
        t->state = PF_ST_UNCONFIRMED;
        pf_err_append(&t->unconfirmed_err, " (its task list could not be read: %s)", e.message);
        set_error(t, &t->unconfirmed_err);
        pf_client_changed(L, cidx, c, t);
      }
      break;
    case PF_AT_DOWNLOAD:
      if (start_download_attempt(c, t, &e) != 0) {
        t->dl = PF_DL_FAILED;
        t->dl_err = e;
        pf_client_changed(L, cidx, c, t);
      }
      break;
    case PF_AT_UPLOAD:
      if (next_upload(c, t, &e) != 0) {
        release_claims(c, t);
        t->state = PF_ST_FAILED;
        set_error(t, &e);
        pf_client_changed(L, cidx, c, t);
      }
      break;
    case PF_AT_CANCEL:
      t->cancel = PF_CANCEL_SENT;
      if (start_by_id(c, t, c->adapter->build_cancel, PF_X_CANCEL, &e) != 0) {
        t->cancel = PF_CANCEL_REFUSED;
        t->cancel_err = e;
        pf_task_schedule(c, t, 0, PF_AT_POLL);
        pf_client_changed(L, cidx, c, t);
      }
      break;
    case PF_AT_RESULT:
    case PF_AT_POLL:
      if (!rate_admit(c, t)) break;
      if (start_by_id(c, t, t->timer_action == PF_AT_RESULT ? c->adapter->build_result
                                                            : c->adapter->build_status,
                      t->timer_action == PF_AT_RESULT ? PF_X_RESULT : PF_X_STATUS, &e) != 0) {
        halt(c, t, &e);
        pf_client_changed(L, cidx, c, t);
      }
      break;
  }
  redact_errors(c, t);
  pf_task_journal(c, t);
  pf_task_sync_anchor(L, cidx, 0, c, t);
}

void pf_task_detach(pf_task *t) {
  pf_client *c = t->client;
  if (!c) return;
  /* a task nobody follows any more gives its journal claims up, so that `pixflow resume` (or
   * another process) can take it; a finished one gave them up when it finished */
  if (t->jkey[0] && !(t->jrec & PF_JR_DOWNLOADED) &&
      !(pf_state_terminal(t->state) && t->state != PF_ST_SUCCEEDED))
    pf_task_unclaim(c, t);
  else if (t->jpending)
    pf_task_journal(c, t);
  release_claims(c, t);
  pf_heap_remove(&c->heap, &t->timer);
  pf_client_unlist(c, t);
  pf_xfer_abort(c, t);
  if (t->dl == PF_DL_RUNNING) {
    /* running, waiting to retry (a kept .part) or waiting for a fresh URL: nobody continues it */
    if (t->dl_part) remove(t->dl_part);
    t->dl_after_poll = 0;
    t->dl = PF_DL_FAILED;
    pf_err_set(&t->dl_err, PF_EK_CANCELED, 0, "closed", "the download was stopped by close()");
  }
  if (t->prev) t->prev->next = t->next;
  else c->tasks = t->next;
  if (t->next) t->next->prev = t->prev;
  t->prev = t->next = NULL;
  if (t->anchored) c->nanchored--;
  t->anchored = 0;
  t->client = NULL;
}

/* ---------------------------------------------------------------- Lua type */

static pf_task *check_task(lua_State *L, int idx) {
  return (pf_task *)luaL_checkudata(L, idx, PF_TASK_MT);
}

static pf_task *check_open_task(lua_State *L, int idx) {
  pf_task *t = check_task(L, idx);
  if (t->closed) luaL_error(L, "attempt to use a closed task");
  return t;
}

/* The client of t, with its userdata pushed, or an error if it was closed. */
static pf_client *task_client(lua_State *L, int idx, pf_task *t) {
  if (!t->client) luaL_error(L, "attempt to use a task whose client is closed");
  lua_getiuservalue(L, idx, 1);
  return t->client;
}

static void free_uploads(pf_task *t) {
  for (size_t i = 0; i < t->nups; i++) {
    pf_upsrc *u = &t->ups[i];
    free(u->path); free(u->url); free(u->filename);
    free(u->up.result);
    json_decref(u->up.state);
  }
  free(t->ups);
  free(t->slots);
  t->ups = NULL;
  t->slots = NULL;
  t->nups = t->nslots = t->upi = 0;
}

static void free_task(pf_task *t) {
  pf_task_detach(t);
  end_lookup(t);
  free_uploads(t);
  pf_request_free(&t->rq);
  free(t->id); t->id = NULL;
  free(t->model); t->model = NULL;
  free_videos(t);
  free(t->dl_path); t->dl_path = NULL;
  free(t->dl_part); t->dl_part = NULL;
  t->closed = 1;
}

static int task_close(lua_State *L) {
  pf_task *t = check_task(L, 1);
  if (t->closed) return 0;
  if (t->client) {
    lua_getiuservalue(L, 1, 1);
    pf_client *c = t->client;
    pf_heap_remove(&c->heap, &t->timer);
    pf_client_unlist(c, t);
    pf_xfer_abort(c, t);
    pf_task_sync_anchor(L, lua_gettop(L), 1, c, t);
    lua_pop(L, 1);
  }
  free_task(t);
  return 0;
}

static int task_gc(lua_State *L) {
  pf_task *t = check_task(L, 1);
  if (!t->closed) free_task(t);
  return 0;
}

static void push_err(lua_State *L, const pf_task *t, const pf_err *e) {
  pf_err r = *e;
  if (t->client && t->client->api_key) pf_err_redact(&r, t->client->api_key);
  pf_err_push(L, &r, t->provider);
  if (t->id) {
    lua_pushstring(L, t->id);
    lua_setfield(L, -2, "task_id");
  }
}

static void push_videos(lua_State *L, const pf_task *t) {
  lua_createtable(L, (int)t->nvideos, 0);
  for (size_t i = 0; i < t->nvideos; i++) {
    lua_createtable(L, 0, 2);
    lua_pushstring(L, t->videos[i].url);
    lua_setfield(L, -2, "url");
    if (t->videos[i].expires_at > 0) {
      lua_pushnumber(L, t->videos[i].expires_at);
      lua_setfield(L, -2, "expires_at");
    }
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
}

static int cost_tostring(lua_State *L) {
  lua_getfield(L, 1, "unit");
  const char *unit = lua_tostring(L, -1);
  lua_getfield(L, 1, "amount");
  const char *amount = luaL_tolstring(L, -1, NULL);
  lua_pushfstring(L, "%s %s", amount, unit ? unit : "");
  return 1;
}

static void push_cost(lua_State *L, const pf_cost *c) {
  lua_createtable(L, 0, 2);
  lua_Integer i;
  /* a whole amount (45 credits) stays an integer: 45, not 45.0 */
  if (lua_numbertointeger(c->amount, &i) && (double)i == c->amount) lua_pushinteger(L, i);
  else lua_pushnumber(L, c->amount);
  lua_setfield(L, -2, "amount");
  lua_pushstring(L, c->unit);
  lua_setfield(L, -2, "unit");
  if (luaL_newmetatable(L, "pixflow.cost")) {
    lua_pushcfunction(L, cost_tostring);
    lua_setfield(L, -2, "__tostring");
  }
  lua_setmetatable(L, -2);
}

void pf_push_costs(lua_State *L, const pf_cost *costs, size_t n, int all) {
  if (n == 0) { lua_pushnil(L); return; }
  if (!all) { push_cost(L, &costs[0]); return; }
  lua_createtable(L, (int)n, 0);
  for (size_t i = 0; i < n; i++) {
    push_cost(L, &costs[i]);
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
}

/* __index: the task's fields, then its methods (upvalue 1). */
static int task_index(lua_State *L) {
  pf_task *t = check_task(L, 1);
  const char *k = lua_tostring(L, 2);
  if (k && !t->closed) {
    if (strcmp(k, "id") == 0) { if (t->id) lua_pushstring(L, t->id); else lua_pushnil(L); return 1; }
    if (strcmp(k, "status") == 0) { lua_pushstring(L, pf_state_name(t->state)); return 1; }
    if (strcmp(k, "provider") == 0) { lua_pushstring(L, t->provider); return 1; }
    if (strcmp(k, "progress") == 0) {
      if (t->progress >= 0) lua_pushinteger(L, t->progress); else lua_pushnil(L);
      return 1;
    }
    if (strcmp(k, "eta") == 0) { if (t->eta >= 0) lua_pushnumber(L, t->eta); else lua_pushnil(L); return 1; }
    if (strcmp(k, "videos") == 0) { push_videos(L, t); return 1; }
    if (strcmp(k, "video_url") == 0) {
      if (t->nvideos) lua_pushstring(L, t->videos[0].url); else lua_pushnil(L);
      return 1;
    }
    if (strcmp(k, "cost") == 0) { pf_push_costs(L, t->costs, t->ncosts, 0); return 1; }
    if (strcmp(k, "costs") == 0) { pf_push_costs(L, t->costs, t->ncosts, 1); return 1; }
    if (strcmp(k, "error") == 0) { if (t->has_err) push_err(L, t, &t->err); else lua_pushnil(L); return 1; }
    if (strcmp(k, "mode") == 0) { lua_pushstring(L, pf_mode_name(t->mode)); return 1; }
    if (strcmp(k, "model") == 0) { if (t->model) lua_pushstring(L, t->model); else lua_pushnil(L); return 1; }
    if (strcmp(k, "done") == 0) { lua_pushboolean(L, pf_state_terminal(t->state)); return 1; }
    if (strcmp(k, "halted") == 0) { lua_pushboolean(L, t->halted); return 1; }
    if (strcmp(k, "last_retry") == 0) {     /* the last failure that was retried */
      if (t->retries) push_err(L, t, &t->retry_err); else lua_pushnil(L);
      return 1;
    }
    if (strcmp(k, "retries") == 0) { lua_pushinteger(L, t->retries); return 1; }
    if (strcmp(k, "journal_error") == 0) {  /* a record the journal could not write */
      if (t->has_jerr) push_err(L, t, &t->jerr); else lua_pushnil(L);
      return 1;
    }
    if (strcmp(k, "journal_key") == 0) {
      if (t->jkey[0]) lua_pushstring(L, t->jkey); else lua_pushnil(L);
      return 1;
    }
    if (strcmp(k, "bytes") == 0) {          /* of the download under way */
      lua_pushinteger(L, t->x.kind == PF_X_DOWNLOAD ? (lua_Integer)t->x.written : 0);
      return 1;
    }
    if (strcmp(k, "phase") == 0) {
      const char *ph = "waiting";
      if (t->dl == PF_DL_RUNNING) ph = "downloading";
      else if (t->held) ph = "held";
      else if (t->state == PF_ST_SUBMITTING) ph = t->upi < t->nups ? "uploading" : "submitting";
      else if (pf_state_terminal(t->state)) ph = "done";
      lua_pushstring(L, ph);
      return 1;
    }
    if (strcmp(k, "path") == 0) {
      if (t->dl == PF_DL_DONE) lua_pushstring(L, t->dl_path); else lua_pushnil(L);
      return 1;
    }
  }
  if (k && t->closed && strcmp(k, "status") == 0) { lua_pushstring(L, "closed"); return 1; }
  lua_pushvalue(L, 2);
  lua_rawget(L, lua_upvalueindex(1));
  return 1;
}

static int task_tostring(lua_State *L) {
  pf_task *t = check_task(L, 1);
  if (t->closed) lua_pushfstring(L, "pixflow.Task (%p) [closed]", (void *)t);
  else if (t->progress >= 0 && !pf_state_terminal(t->state))
    lua_pushfstring(L, "pixflow.Task (%s %s) [%s %d%%]", t->provider, t->id ? t->id : "-",
                    pf_state_name(t->state), t->progress);
  else
    lua_pushfstring(L, "pixflow.Task (%s %s) [%s]", t->provider, t->id ? t->id : "-",
                    pf_state_name(t->state));
  return 1;
}

/* task:_resume(): restart polling of a task that halted on an error. */
static int task_resume(lua_State *L) {
  pf_task *t = check_open_task(L, 1);
  pf_client *c = task_client(L, 1, t);
  if (t->halted && t->id && !pf_state_terminal(t->state)) {
    t->halted = 0;
    t->has_err = 0;
    t->poll_failures = 0;
    if (deadline_passed(c, t)) pf_task_start_deadline(c, t);   /* waiting again: a new window */
    if (pf_task_schedule(c, t, 0, PF_AT_POLL) != 0) return luaL_error(L, "out of memory");
    pf_task_sync_anchor(L, lua_gettop(L), 1, c, t);
  }
  lua_pushboolean(L, 1);
  return 1;
}

/* task:_download(path): start streaming the first video to path .. ".part". */
static int task_download_start(lua_State *L) {
  pf_task *t = check_open_task(L, 1);
  const char *path = luaL_checkstring(L, 2);
  pf_client *c = task_client(L, 1, t);
  pf_err e;
  pf_err_clear(&e);
  if (t->dl == PF_DL_RUNNING) return luaL_error(L, "a download of this task is already running");
  /* asked for after the deadline: the download's own limits govern it */
  if (deadline_passed(c, t)) t->deadline = 0;
  if (t->state != PF_ST_SUCCEEDED || t->nvideos == 0) {
    pf_err_set(&e, PF_EK_INVALID, 0, "not_ready",
               "task %s has no result to download (status %s)", t->id ? t->id : "-",
               pf_state_name(t->state));
    lua_pushnil(L);
    push_err(L, t, &e);
    return 2;
  }
  /* the journal learns where the file goes before a byte of it is written (and refuses a path
   * another task may still write) */
  if (t->client->journal && t->jkey[0]) {
    json_t *f = json_pack("{s:s}", "path", path);
    int rc = f ? pf_journal_record(t->client->journal, t->jkey, "download", pf_walltime(), f, 0,
                                   PF_J_SHORT, &e)
               : (pf_err_set(&e, PF_EK_NOMEM, 0, "nomem", "out of memory"), -1);
    json_decref(f);
    if (rc != 0 && e.kind != PF_EK_IO && e.kind != PF_EK_NOMEM) {   /* another task's path */
      lua_pushnil(L);
      push_err(L, t, &e);
      return 2;
    }
    /* a journal that cannot be written (a full disk) must not cost the video: the download goes
     * ahead, and the record is owed (written by pf_task_journal once it can be) */
    if (rc == 0) t->jrec |= PF_JR_DOWNLOAD;
    else journal_owed(t->client, t, &e, "the download path");
  }
  free(t->dl_path);
  free(t->dl_part);
  t->dl_path = pf_strdup(path);
  size_t n = strlen(path) + 6;
  t->dl_part = malloc(n);
  if (!t->dl_path || !t->dl_part) return luaL_error(L, "out of memory");
  snprintf(t->dl_part, n, "%s.part", path);
  t->dl_attempts = 0;
  t->dl_refreshed = t->dl_after_poll = 0;
  pf_err_clear(&t->dl_err);
  if (start_download_attempt(c, t, &e) != 0) {
    t->dl = PF_DL_FAILED;
    t->dl_err = e;
    lua_pushnil(L);
    push_err(L, t, &e);
    return 2;
  }
  t->dl = PF_DL_RUNNING;
  pf_task_sync_anchor(L, lua_gettop(L), 1, c, t);
  lua_pushboolean(L, 1);
  return 1;
}

/* task:_download_state() -> "none" | "running" | "done" | "failed" [, err] */
static int task_download_state(lua_State *L) {
  pf_task *t = check_open_task(L, 1);
  static const char *const names[] = { "none", "running", "done", "failed" };
  lua_pushstring(L, names[t->dl]);
  if (t->dl == PF_DL_FAILED) { push_err(L, t, &t->dl_err); return 2; }
  return 1;
}

/* task:_download_abort(): stop a running download and remove its .part file: the transfer, a
 * retry waiting on the heap, or the status read for a fresh URL that the download waits for. */
static int task_download_abort(lua_State *L) {
  pf_task *t = check_open_task(L, 1);
  if (t->dl != PF_DL_RUNNING || !t->client) return 0;
  pf_client *c = task_client(L, 1, t);
  int refresh = t->dl_after_poll;
  t->dl_after_poll = 0;
  if (t->timer_action == PF_AT_DOWNLOAD || (refresh && t->timer_action == PF_AT_POLL))
    pf_heap_remove(&c->heap, &t->timer);
  if (t->x.kind == PF_X_DOWNLOAD || (refresh && (t->x.kind == PF_X_STATUS || t->x.kind == PF_X_RESULT)))
    pf_xfer_abort(c, t);
  if (t->dl_part) remove(t->dl_part);
  t->dl = PF_DL_FAILED;
  pf_err_set(&t->dl_err, PF_EK_CANCELED, 0, "aborted", "the download was stopped");
  pf_task_sync_anchor(L, lua_gettop(L), 1, c, t);
  return 0;
}

/* task:_owner() -> the Lua client object that pumps this task (raises if closed). */
/* task:_release(extend_from_id): send a held task, now that the task it extends succeeded. */
static int task_release(lua_State *L) {
  pf_task *t = check_open_task(L, 1);
  const char *id = luaL_checkstring(L, 2);
  pf_client *c = task_client(L, 1, t);
  if (!t->held) return luaL_error(L, "the task is not held");
  t->held = 0;
  free(t->rq.extend_from);
  t->rq.extend_from = pf_strdup(id);
  pf_task_start_deadline(c, t);             /* a chained task's time starts when it is sent */
  pf_err e;
  pf_err_clear(&e);
  int rc = !t->rq.extend_from ? -1 : pf_client_write_intent(c, t, L, 3, &e);
  if (rc == 0)
    rc = t->nups > 0 ? pf_task_schedule(c, t, 0, PF_AT_UPLOAD) : pf_task_submit_start(c, t, &e);
  if (rc != 0) {
    if (e.kind == PF_EK_NONE) pf_err_set(&e, PF_EK_NOMEM, 0, "nomem", "out of memory");
    t->state = PF_ST_FAILED;
    set_error(t, &e);
    lua_pushnil(L);
    push_err(L, t, &e);
    return 2;
  }
  pf_task_sync_anchor(L, lua_gettop(L), 1, c, t);
  pf_scrub_secrets();                       /* the submit's header lines were built */
  lua_pushboolean(L, 1);
  return 1;
}

/* task:_abandon(message): a held task that will never be sent (the task it extends failed). */
static int task_abandon(lua_State *L) {
  pf_task *t = check_open_task(L, 1);
  const char *msg = luaL_checkstring(L, 2);
  if (!t->held) return luaL_error(L, "the task is not held");
  t->held = 0;
  t->state = PF_ST_CANCELED;
  pf_err e;
  pf_err_set(&e, PF_EK_CANCELED, 0, "source_failed", "%s; this task was never sent, so nothing was "
             "charged", msg);
  e.not_charged = 1;
  set_error(t, &e);
  return 0;
}

/* task:_cancel() -> true | nil, err: ask the gateway to cancel (sent as soon as the task's
 * current request ends). */
static int task_cancel(lua_State *L) {
  pf_task *t = check_open_task(L, 1);
  pf_client *c = task_client(L, 1, t);
  pf_err e;
  pf_err_clear(&e);
  if (!c->adapter->build_cancel) {
    pf_err_set(&e, PF_EK_INVALID, 0, "unsupported",
               "%s has no cancel call (none is documented); the task keeps running and may be "
               "billed", c->provider);
  } else if (pf_state_terminal(t->state)) {
    pf_err_set(&e, PF_EK_INVALID, 0, "finished", "the task already ended (%s)",
               pf_state_name(t->state));
  }
  if (e.kind != PF_EK_NONE) {
    lua_pushnil(L);
    push_err(L, t, &e);
    return 2;
  }
  if (t->cancel == PF_CANCEL_NONE || t->cancel == PF_CANCEL_REFUSED) {
    t->cancel = PF_CANCEL_WANTED;
    pf_err_clear(&t->cancel_err);
    if (t->id && !pf_task_busy(t)) {
      if (pf_task_schedule(c, t, 0, PF_AT_CANCEL) != 0) return luaL_error(L, "out of memory");
      pf_task_sync_anchor(L, lua_gettop(L), 1, c, t);
    }
  }
  lua_pushboolean(L, 1);
  return 1;
}

/* task:_cancel_state() -> "none" | "wanted" | "sent" | "accepted" | "refused" [, err] */
static int task_cancel_state(lua_State *L) {
  pf_task *t = check_open_task(L, 1);
  static const char *const names[] = { "none", "wanted", "sent", "accepted", "refused" };
  lua_pushstring(L, names[t->cancel]);
  if (t->cancel == PF_CANCEL_REFUSED) { push_err(L, t, &t->cancel_err); return 2; }
  return 1;
}

static int task_owner(lua_State *L) {
  pf_task *t = check_open_task(L, 1);
  if (!t->client) return luaL_error(L, "attempt to use a task whose client is closed");
  lua_getiuservalue(L, 1, 2);
  return 1;
}

static const luaL_Reg task_methods[] = {
  { "close", task_close },
  { "_resume", task_resume },
  { "_download", task_download_start },
  { "_download_state", task_download_state },
  { "_download_abort", task_download_abort },
  { "_cancel", task_cancel },
  { "_release", task_release },
  { "_abandon", task_abandon },
  { "_cancel_state", task_cancel_state },
  { "_owner", task_owner },
  { NULL, NULL },
};

static const luaL_Reg task_meta[] = {
  { "__gc", task_gc },
  { "__close", task_close },
  { "__tostring", task_tostring },
  { NULL, NULL },
};

/* Leaves the methods table on the stack: Lua adds wait, download and friends to it. */
void pf_task_open(lua_State *L) {
  luaL_newmetatable(L, PF_TASK_MT);
  luaL_setfuncs(L, task_meta, 0);
  luaL_newlib(L, task_methods);
  lua_pushvalue(L, -1);
  lua_pushcclosure(L, task_index, 1);
  lua_setfield(L, -3, "__index");          /* mt.__index = closure over methods */
  lua_remove(L, -2);                       /* methods */
}
