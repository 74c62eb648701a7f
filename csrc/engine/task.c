/* task.c: the task state machine: uploads, submit, lookups, status polls, cancel, download. */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"
#include "journal.h"
#include "reconcile.h"
#include "retry.h"

/* Start t's request of this kind: the transport clips it to t's deadline (a cancel has none). */
static int xfer_start(pf_client *c, pf_task *t, pf_xkind kind, pf_http_req *req, pf_err *err) {
  return pf_xfer_start(&c->net, &t->x, t, kind, req, kind == PF_X_CANCEL ? 0 : t->deadline, err);
}

static void free_uploads(pf_task *t) {
  for (size_t i = 0; i < t->nups; i++) {
    pf_upsrc *u = &t->ups[i];
    free(u->path); free(u->url); free(u->filename); free(u->label);
    free(u->up.result);
    json_decref(u->up.state);
  }
  free(t->ups);
  free(t->slots);
  t->ups = NULL;
  t->slots = NULL;
  t->nups = t->nslots = t->upi = 0;
}

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

int pf_task_pending(const pf_task *t) {
  /* a change the host has not read keeps the task pending too (pf_task_changed) */
  return t->client && (t->timer.idx != PF_NOT_QUEUED || pf_xfer_busy(&t->x) || t->listed ||
                       t->sending_job || t->dl_finishing || t->dl_opening || t->dl_removing ||
                       t->nhashing > 0 || t->intent_job || t->output_job ||
                       t->lookup_job || t->claim_job);
}

int pf_task_attached(const pf_task *t) {
  return t->client != NULL;
}

void pf_task_settle(pf_client *c, pf_task *t) {
  int p = pf_task_pending(t);
  if (p == t->counted) return;
  c->npending += p ? 1 : -1;
  t->counted = p;
}

static void list_task(pf_client *c, pf_task *t) {
  t->listed = 1;
  t->cnext = NULL;
  if (c->ctail) c->ctail->cnext = t;
  else c->chead = t;
  c->ctail = t;
}

/* Record that t changed: bump the counter and list t for the host (only a task the host counts
 * as pending can be told: a task another call changed is read by that call's caller). It
 * allocates nothing: the host reads the list once every transfer and timer of the pump was
 * handled, and t stays pending until then. */
void pf_task_changed(pf_client *c, pf_task *t) {
  c->changes++;
  if (!t->counted) return;
  t->visible = 1;
  if (!t->listed) list_task(c, t);
}

/* The end of a pump's handling of t: a task that stopped being pending is listed (quietly) so
 * that the host hears it is no longer in flight; then the count follows. */
static void settle_after_pump(pf_client *c, pf_task *t) {
  if (t->counted && !pf_task_pending(t)) list_task(c, t);
  pf_task_settle(c, t);
}

static void task_unlist(pf_client *c, pf_task *t) {
  if (!t->listed) return;
  pf_task *prev = NULL;
  for (pf_task *q = c->chead; q; prev = q, q = q->cnext) {
    if (q != t) continue;
    if (prev) prev->cnext = q->cnext;
    else c->chead = q->cnext;
    if (c->ctail == t) c->ctail = prev;
    break;
  }
  t->listed = t->visible = 0;
  t->cnext = NULL;
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

int pf_task_deadline_passed(const pf_client *c, const pf_task *t) {
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

void pf_task_set_error(pf_task *t, const pf_err *e) {
  t->err = *e;
  t->has_err = 1;
}

static void halt(pf_client *c, pf_task *t, const pf_err *e) {
  pf_task_set_error(t, e);
  t->halted = 1;
  pf_heap_remove(&c->heap, &t->timer);
  if (t->dl == PF_DL_RUNNING) {       /* a download waiting for a fresh URL cannot get one */
    t->dl = PF_DL_FAILED;
    t->dl_err = *e;
    t->dl_after_poll = 0;
  }
}

int pf_task_submit_start(pf_client *c, pf_task *t, pf_err *err) {
  /* the journal knows the submit may have left before it does (intent and sending are synced):
   * a process killed while uploading left "uploading", which means nothing was sent */
  if (c->journal && t->jkey[0] && !(t->jrec & PF_JR_SENDING)) {
    int r = pf_task_sending_durable(c, t, err);
    if (r <= 0) return r;             /* 0: the worker syncs it, and the submit follows */
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
  return xfer_start(c, t, PF_X_SUBMIT, &req, err);
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
  return xfer_start(c, t, kind, &req, err);
}

static int start_upload(pf_client *c, pf_task *t, pf_err *err) {
  char trace[37];
  pf_ctx ctx = pf_client_ctx(c, trace);
  pf_http_req req;
  memset(&req, 0, sizeof req);
  pf_upsrc *u = &t->ups[t->upi];
  if (c->adapter->build_upload(&ctx, &u->up, &req, err) != 0) {
    pf_http_req_discard(&req);
    return -1;
  }
  /* the file was hashed: its size is known, and the worker reads its bytes (http.c) */
  for (size_t i = 0; i < req.nparts; i++)
    if (req.parts[i].file && u->path && u->size >= 0 && strcmp(req.parts[i].file, u->path) == 0)
      req.parts[i].size = u->size;
  return xfer_start(c, t, PF_X_UPLOAD, &req, err);
}

/* One attempt: the .part is opened on the worker (pf_task_open_part), and the transfer starts
 * when it is back (download_opened). */
int pf_task_start_download(pf_client *c, pf_task *t, pf_err *err) {
  if (pf_xfer_busy(&t->x) || t->dl_opening) {   /* never opens (and truncates) a live one's .part */
    pf_err_set(err, PF_EK_INVALID, 0, "busy", "a request of this task is still in flight");
    return -1;
  }
  if (pf_task_open_part(c, t) != 0) {
    pf_err_set(err, PF_EK_NOMEM, 0, "nomem", "out of memory");
    return -1;
  }
  return 0;
}

/* The .part is open (s, continuing from resume_from): the transfer starts. */
static int download_opened(pf_client *c, pf_task *t, pf_sink *s, long long resume_from, pf_err *err) {
  pf_http_req req;
  memset(&req, 0, sizeof req);
  req.method = "GET";
  /* the API key is never sent to the result host: signed URLs carry their own authority */
  req.url = pf_strdup(t->videos[0].url);
  if (!req.url) {
    pf_client_close_sink(c, s);
    pf_client_remove_later(c, t->dl_part);
    pf_err_set(err, PF_EK_NOMEM, 0, "nomem", "out of memory");
    return -1;
  }
  if (pf_xfer_start_download(&c->net, &t->x, t, &req, s, resume_from, t->deadline, err) != 0) {
    pf_client_close_sink(c, s);
    pf_client_remove_later(c, t->dl_part);
    return -1;
  }
  t->dl_attempts++;
  return 0;
}

static double next_poll_delay(pf_client *c, pf_task *t) {
  return pf_poll_delay(&c->o, pf_client_now(c) - t->accepted_at, t->progress, t->eta, t->npolls,
                       &t->overdue, &c->durations);
}

/* t ended well: remember how long it ran (between the last poll that still saw it running, or
 * its acceptance, and now). */
static void record_duration(pf_client *c, pf_task *t) {
  double lo = t->last_poll_at > t->accepted_at ? t->last_poll_at - t->accepted_at : 0;
  pf_durations_add(&c->durations, lo, pf_client_now(c) - t->accepted_at);
}

static double first_poll(pf_client *c) {
  return pf_poll_first(&c->o, &c->durations, pf_client_rand(c));
}

/* poll_rate: may a status request of t go now? If not, t's poll is moved to its slot (which it
 * then holds: it goes at that time unchecked). */
static int rate_admit(pf_client *c, pf_task *t) {
  if (c->o.poll_rate <= 0 || t->rate_slot) {
    t->rate_slot = 0;
    return 1;
  }
  double wait = pf_rate_slot(c->o.poll_rate, pf_client_now(c), &c->rate_tat);
  if (wait <= 0) return 1;
  t->rate_slot = 1;
  pf_task_schedule(c, t, wait, t->timer_action);
  return 0;
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
      pf_task_set_error(t, &t->unconfirmed_err);
      return;
    }
    release_claims(c, t);
    t->state = PF_ST_FAILED;
    pf_task_set_error(t, &e);
  } else if (!pf_state_terminal(t->state)) {
    halt(c, t, &e);
  }
}

/* A submit that never reached the gateway, or that it turned away before accepting it, is sent
 * again after a back-off; returns 1 when it was scheduled. */
static int retry_submit(pf_client *c, pf_task *t, const pf_err *e, int never_sent) {
  t->submit_failures++;
  if (!pf_retry_should(&c->o, PF_R_SUBMIT, e, t->submit_failures, never_sent)) return 0;
  double d = pf_retry_after_failure(&c->o, t->submit_failures, e, pf_client_rand(c));
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
  pf_task_set_error(t, u);
}

static void on_submit_done(pf_client *c, pf_task *t, long http) {
  pf_xfer *x = &t->x;
  pf_err e;
  pf_err_clear(&e);
  if (t->x.end != PF_XE_OK && !x->too_big) {
    pf_xfer_error(&c->net, &t->x, &e);
    if (x->failed || pf_xfer_never_sent(x)) {
      if (retry_submit(c, t, &e, 1)) return;
      t->state = PF_ST_FAILED;
      if (t->submit_failures > 1)
        pf_err_append(&e, "; the request never reached %s (%d attempts), so nothing was charged",
                      c->provider, t->submit_failures);
      else
        pf_err_append(&e, "; the request never reached %s, so nothing was charged", c->provider);
      e.not_charged = 1;
      pf_request_free(&t->rq);
      pf_task_set_error(t, &e);
      return;
    }
  } else if (t->x.end == PF_XE_OK) {
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
    pf_retry_after_set(&c->o, &e, x->retry_after, x->resp.data, x->resp.len);
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
      pf_task_set_error(t, &e);
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
  return xfer_start(c, t, PF_X_LIST, &req, e);
}

static void end_lookup(pf_task *t) {
  json_decref(t->list);
  json_decref(t->list_wseen);
  t->list = t->list_wseen = NULL;
}

/* Is id already a known task's: this client's, or (with a journal) any recorded one (what the
 * worker found: pf_task_post_lookup)? */
typedef struct { pf_client *c; json_t *owned; } owned_ctx;
static int id_owned(const char *id, void *ud) {
  owned_ctx *o = ud;
  for (pf_task *k = o->c->tasks; k; k = k->next)
    if (k->id && strcmp(k->id, id) == 0) return 1;
  return o->owned && json_object_get(o->owned, id) != NULL;
}

static void finish_lookup(pf_client *c, pf_task *t, json_t *known);

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
  pf_task_set_error(t, &t->unconfirmed_err);
}

/* A page of the task list for an unconfirmed submit. When every page of every window is in,
 * the one matcher (reconcile.c) decides: adopt the one task that can only be this submit's,
 * look again (the list may lag), or say what was found. */
static void on_list_done(pf_client *c, pf_task *t, long http) {
  pf_xfer *x = &t->x;
  pf_err e;
  pf_err_clear(&e);
  json_t *items = NULL;
  int more = 0;
  char trace[37];
  pf_ctx ctx = pf_client_ctx(c, trace);
  if (t->x.end != PF_XE_OK) pf_xfer_error(&c->net, &t->x, &e);
  long total = -1;
  if (t->x.end != PF_XE_OK ||
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
  double server_date = pf_xfer_server_date(x);
  if (server_date > 0) {                      /* the gateway's clock, from this page's Date */
    double off = server_date - x->server_date_at;
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
  if (c->journal && t->jkey[0]) {
    /* what the journal knows (the ids it has, another process's unanswered submits) is read on
     * the worker: the matcher runs when it is back (a copy: jansson's counts are not atomic) */
    json_t *ids = json_deep_copy(t->list);
    if (!ids || pf_task_post_lookup(c, t, ids, pf_client_wall(c), &e) != 0)
      lookup_failed(c, t, "out of memory");
    return;
  }
  finish_lookup(c, t, NULL);
}

/* Every page of every window is in (and, with a journal, known is what it says: NULL when it
 * could not tell): the matcher decides. */
static void finish_lookup(pf_client *c, pf_task *t, json_t *known) {
  pf_err e;
  pf_err_clear(&e);
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
  owned_ctx oc = { c, NULL };
  if (c->journal && t->jkey[0]) {
    /* a journal that could not tell: a rival over the whole window, and every id known */
    int r = known ? (int)json_integer_value(json_object_get(known, "r")) : -1;
    since = json_number_value(json_object_get(known, "since"));
    until = json_number_value(json_object_get(known, "until"));
    if (r != 0) rv[nrv++] = r > 0 ? (pf_rival){ since, until } : (pf_rival){ t->submit_wall, now_wall };
    oc.owned = json_object_get(known, "owned");
    if (!oc.owned) oc.owned = t->list;
  }
  int rivals = nrv > 0;
  pf_match_query q = { .from = t->submit_wall, .to = now_wall, .skew = 2, .complete = !t->list_cut,
                       .closed = 0, .clock_known = t->list_clock, .clock_lo = t->list_clock_lo,
                       .clock_hi = t->list_clock_hi, .rivals = rv, .nrivals = nrv, .owned = id_owned,
                       .ud = &oc };
  size_t found = 0, ncands = 0;
  pf_match_result m = pf_match_unconfirmed(arr, k, &q, &found, &ncands);
  char *adopt = m == PF_MATCH_FOUND ? pf_strdup(arr[found].id) : NULL;
  free(arr);
  int cut = t->list_cut;
  end_lookup(t);
  if (m == PF_MATCH_FOUND) {
    if (!adopt) {
      t->state = PF_ST_UNCONFIRMED;
      pf_task_set_error(t, &t->unconfirmed_err);
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
  pf_task_set_error(t, &t->unconfirmed_err);
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
    pf_err_set(&t->dl_err, PF_EK_PROVIDER, 0, "result_unavailable",
               "the result URL had expired, and the status read for a fresh one says the task is "
               "%s at %s, not succeeded; nothing was saved. Download again once it has succeeded",
               pf_state_name(st->state), c->provider);
    /* the expired attempt's .part is removed on the worker (pf_client_remove_later): the
     * download reads failed only after that, as every given-up download does, so that "failed"
     * never shows while the .part is still there (CI saw it once) */
    if (!t->dl_part || pf_task_remove_part(c, t) != 0) {
      if (t->dl_part) remove(t->dl_part);   /* no memory for the job: here */
      t->dl = PF_DL_FAILED;
    }
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
    if (before != st->state && (st->state == PF_ST_FAILED || st->state == PF_ST_MODERATED))
      pf_durations_fail(&c->durations);
    pf_task_set_error(t, &st->err);
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
  if (!pf_retry_should(&c->o, PF_R_STATUS, e, t->poll_failures, 0)) {
    if (e->retryable || e->kind == PF_EK_PROTOCOL)
      pf_err_append(e, " (%d status polls in a row failed; the task may still be running at "
                    "%s: wait again to resume polling)", t->poll_failures, c->provider);
    halt(c, t, e);
    return;
  }
  if (pf_task_schedule(c, t, pf_retry_after_failure(&c->o, t->poll_failures, e, pf_client_rand(c)), PF_AT_POLL) != 0)
    halt(c, t, e);
  else
    note_retry(t, e);
}

static void on_status_done(pf_client *c, pf_task *t, long http) {
  pf_xfer *x = &t->x;
  pf_err e;
  pf_err_clear(&e);
  if (t->x.end != PF_XE_OK) {
    if (x->too_big)
      pf_err_set(&e, PF_EK_PROTOCOL, http, "too_large",
                 "the status reply was larger than %zu bytes", x->resp.limit);
    else
      pf_xfer_error(&c->net, &t->x, &e);
    if (pf_task_deadline_passed(c, t)) {
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
    pf_retry_after_set(&c->o, &e, x->retry_after, x->resp.data, x->resp.len);
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

static void on_cancel_done(pf_client *c, pf_task *t, long http) {
  pf_xfer *x = &t->x;
  pf_err e;
  pf_err_clear(&e);
  char trace[37];
  pf_ctx ctx = pf_client_ctx(c, trace);
  if (t->x.end != PF_XE_OK) pf_xfer_curl_error(&t->x, &e);
  if (t->x.end != PF_XE_OK || c->adapter->parse_cancel(&ctx, http, x->resp.data, x->resp.len, &e) != 0) {
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
  if (pf_retry_should(&c->o, PF_R_UPLOAD, e, ++t->up_attempts, 0) && !pf_task_deadline_passed(c, t)) {
    u->up.step = 0;
    if (pf_task_schedule(c, t, pf_retry_after_failure(&c->o, t->up_attempts, e, pf_client_rand(c)), PF_AT_UPLOAD) == 0) {
      note_retry(t, e);
      return;
    }
  }
  if (pf_task_deadline_passed(c, t)) deadline_error(c, t, e);
  release_claims(c, t);
  pf_err_append(e, " (uploading %s; nothing was submitted, so nothing was charged)",
                u->path ? u->path : u->url);
  e->not_charged = 1;
  t->state = PF_ST_FAILED;
  pf_task_set_error(t, e);
}

static void on_upload_done(pf_client *c, pf_task *t, long http) {
  pf_xfer *x = &t->x;
  pf_err e;
  pf_err_clear(&e);
  pf_upsrc *u = &t->ups[t->upi];
  if (t->x.end != PF_XE_OK) {
    if (x->too_big) pf_err_set(&e, PF_EK_PROTOCOL, http, "too_large", "the upload reply is too large");
    else pf_xfer_error(&c->net, &t->x, &e);
    upload_failed(c, t, &e);
    return;
  }
  char trace[37];
  pf_ctx ctx = pf_client_ctx(c, trace);
  int r = c->adapter->parse_upload(&ctx, &u->up, http, x->resp.data, x->resp.len, &e);
  if (r < 0) {
    pf_retry_after_set(&c->o, &e, x->retry_after, x->resp.data, x->resp.len);
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
  if (pf_task_deadline_passed(c, t)) {
    deadline_error(c, t, e);
  } else if (pf_retry_should(&c->o, PF_R_DOWNLOAD, e, t->dl_attempts, 0)) {
    double d = pf_retry_after_failure(&c->o, t->dl_attempts, e, pf_client_rand(c));
    if (pf_task_schedule(c, t, d, PF_AT_DOWNLOAD) == 0) {
      /* the worker removes it before the next attempt opens it again (one queue, in order) */
      if (!resumable) pf_client_remove_later(c, t->dl_part);
      note_retry(t, e);
      return;
    }
  }
  /* given up: the download reads failed once the worker has removed the .part */
  t->dl_resume = 0;
  t->dl_err = *e;
  if (pf_task_remove_part(c, t) == 0) return;
  remove(t->dl_part);                       /* no memory for the job: here */
  t->dl = PF_DL_FAILED;
}

static void on_download_done(pf_client *c, pf_task *t, long http) {
  pf_xfer *x = &t->x;
  pf_err e;
  pf_err_clear(&e);
  int whole = x->end == PF_XE_OK && !x->not_mp4 && x->headlen >= sizeof x->head && !x->too_big &&
              !x->write_failed;
  /* the last chunk goes to the worker; the file is synced and renamed there after every chunk
   * is written (or closed, for an attempt that did not end whole) */
  int handed = 1;
  pf_sink *s = pf_xfer_take_sink(&c->net, x, &handed);
  if (!handed) {
    whole = 0;
    if (!x->write_failed) {
      x->write_failed = 1;
      x->werr = ENOMEM;
    }
  }
  if (s && whole && pf_task_finish_download(c, t, s) == 0) return;
  if (s) pf_client_close_sink(c, s);
  if (s && whole) {
    /* no memory for the finish job: the bytes are kept, and the next attempt continues them */
    pf_err_set(&e, PF_EK_NOMEM, 0, "nomem", "out of memory");
    download_failed(c, t, &e, 1);
    return;
  }
  if (x->not_mp4 || (t->x.end == PF_XE_OK && x->headlen < sizeof x->head)) {
    pf_err_set(&e, PF_EK_PROTOCOL, http, "not_mp4",
               "the result from %s is not an MP4 file (no 'ftyp' box at byte 4); nothing was "
               "saved", c->provider);
  } else if (x->too_big || x->end == PF_XE_TOO_BIG) {
    pf_err_set(&e, PF_EK_PROTOCOL, http, "too_large",
               "the result is larger than max_download_bytes (%lld bytes)",
               (long long)c->o.max_download);
  } else if (x->end == PF_XE_HTTP) {
    /* signed result URLs expire (about 24 h on apimart and DashScope): read the task's status
     * once more for a fresh URL before giving up */
    if ((http == 403 || http == 410) && t->id && !t->dl_refreshed) {
      t->dl_refreshed = 1;
      pf_client_remove_later(c, t->dl_part);
      if (pf_task_schedule(c, t, 0, PF_AT_POLL) == 0) {
        t->dl_after_poll = 1;
        return;
      }
    }
    pf_errkind k = pf_kind_for_http(http);
    pf_err_set(&e, k, http, "http_error", "downloading the result failed with HTTP %ld%s", http,
               (http == 403 || http == 410) ? " (signed result URLs expire, often after 24 h)" : "");
    e.retryable = pf_http_retryable(http);
    pf_retry_after_set(&c->o, &e, x->retry_after, NULL, 0);
  } else if (x->end == PF_XE_WRITE || x->write_failed) {
    pf_err_set(&e, PF_EK_IO, 0, "write", "writing %s failed: %s", t->dl_part,
               strerror(x->werr ? x->werr : EIO));
  } else if (x->end == PF_XE_RANGE) {
    /* the server would not continue from an offset: start again from byte 0, at once */
    pf_err_set(&e, PF_EK_TRANSPORT, http, "RANGE_ERROR",
               "the result host did not continue the download from byte %lld",
               (long long)x->resume_from);
    e.retry_after = 0;
    download_failed(c, t, &e, 0);
    return;
  } else if (t->x.end != PF_XE_OK) {
    pf_xfer_error(&c->net, &t->x, &e);
    /* what arrived before the cut is kept (its head was checked): the next attempt continues */
    download_failed(c, t, &e, x->written > x->resume_from || x->resume_from > 0);
    return;
  } else {
    pf_err_set(&e, PF_EK_IO, 0, "write", "the download into %s ended without its file",
               t->dl_part);
  }
  download_failed(c, t, &e, 0);
}

/* A records job came back: what it wrote is marked, what failed is owed; an id the host could
 * not see until now (pf_task_id) is a change. */
static void records_done(pf_client *c, pf_task *t, pf_job *j) {
  unsigned had = t->jrec;
  t->jbusy = 0;
  for (int i = 0; i < j->done_recs; i++) {
    t->jrec |= j->bits[i];
    if (strcmp(j->ev[i], "status") == 0) t->jstate = j->state;
  }
  if (j->rc != 0) {
    const char *ev = j->done_recs < j->nrec ? j->ev[j->done_recs] : "a record";
    const char *what = strcmp(ev, "accepted") == 0 ? "the id"
                     : strcmp(ev, "status") == 0 ? "the end"
                     : strcmp(ev, "download") == 0 ? "the download path"
                     : strcmp(ev, "downloaded") == 0 ? "the downloaded file" : "the task";
    pf_task_journal_owed(c, t, &j->err, what);
  } else if (t->jpending) {
    t->jpending = 0;                        /* what was owed is written now */
    c->jpending--;
    t->has_jerr = 0;
  }
  if (t->jagain) {
    t->jagain = 0;
    pf_task_journal(c, t);
  }
  if (t->id && !(had & PF_JR_ACCEPTED) && (!t->jbusy || (t->jrec & PF_JR_ACCEPTED))) {
    pf_task_changed(c, t);
    settle_after_pump(c, t);
  }
}

void pf_task_on_job(pf_client *c, pf_job *j) {
  pf_task *t = j->owner;
  if (!t) return;
  if (j->kind == PF_JOB_RECORDS) {
    records_done(c, t, j);
    return;
  }
  pf_state before = t->state;
  pf_dlstate dl = t->dl;
  pf_err e;
  pf_err_clear(&e);
  if (j->kind == PF_JOB_SENDING) {
    t->sending_job = 0;
    if (t->state != PF_ST_SUBMITTING) {
      if (j->rc == 0) t->jrec |= PF_JR_SENDING;   /* it ended meanwhile: nothing is sent */
    } else if (j->rc == 0) {
      t->jrec |= PF_JR_SENDING;
      if (pf_task_submit_start(c, t, &e) != 0) {
        t->state = PF_ST_FAILED;
        pf_request_free(&t->rq);
        pf_task_set_error(t, &e);
      }
    } else {
      pf_err_set(&e, PF_EK_IO, 0, "journal", "%s; the submit was not sent, so nothing was "
                 "charged", j->err.message);
      t->state = PF_ST_FAILED;
      pf_request_free(&t->rq);
      pf_task_set_error(t, &e);
    }
  } else if (j->kind == PF_JOB_OPEN) {
    if (j->done_recs > 0) t->jrec |= PF_JR_DOWNLOAD;
    else if (j->rec_err.kind != PF_EK_NONE) {
      t->dl_rec_owed = 1;                   /* the download goes ahead; the record is owed */
      pf_task_journal_owed(c, t, &j->rec_err, "the download path");
    }
    pf_sink *s = j->sink;
    if (j->gen != t->dl_gen || !t->dl_opening || t->dl != PF_DL_RUNNING) {
      /* stopped while it opened: the file goes (after this open, on the worker) */
      if (j->rc == 0) {
        j->sink = NULL;
        pf_client_close_sink(c, s);
        pf_client_remove_later(c, j->path);
      }
    } else {
      t->dl_opening = 0;
      if (j->rc == 0) j->sink = NULL;       /* the transfer's now, or closed on the worker */
      if (j->rc != 0 || download_opened(c, t, s, j->off, &e) != 0) {
        if (j->rc != 0) e = j->err;
        t->dl = PF_DL_FAILED;
        t->dl_err = e;
      }
    }
  } else if (j->kind == PF_JOB_INTENT) {
    t->intent_job = 0;
    if (j->rc == 0) {
      t->jrec = PF_JR_INTENT | (t->nups > 0 ? 0 : PF_JR_SENDING);
      /* a task that failed meanwhile (a file that could not be hashed) has nothing to send:
       * its request is gone (the allocation-failure sweep found the upload that read it) */
      if (!t->held && t->state == PF_ST_SUBMITTING && pf_task_first_step(c, t, &e) != 0) {
        if (e.kind == PF_EK_NONE) pf_err_set(&e, PF_EK_NOMEM, 0, "nomem", "out of memory");
        release_claims(c, t);
        t->state = PF_ST_FAILED;
        pf_request_free(&t->rq);
        pf_task_set_error(t, &e);
      }
    } else {
      /* refused (another live task's output, a claim of another process) or not written (a
       * full disk): nothing was sent */
      e = j->err;
      pf_err_append(&e, "; nothing was sent, so nothing was charged");
      e.not_charged = 1;
      t->jkey[0] = '\0';
      release_claims(c, t);
      t->state = PF_ST_FAILED;
      pf_request_free(&t->rq);
      pf_task_set_error(t, &e);
    }
  } else if (j->kind == PF_JOB_CLAIM) {
    t->claim_job = 0;
    if (j->rc != 0) {
      /* not this client's to follow: nothing of it is recorded or released by this one */
      t->jkey[0] = '\0';
      t->jrec = 0;
      if (!pf_state_terminal(t->state) && !t->halted) {
        halt(c, t, &j->err);
        pf_task_changed(c, t);
      }
    } else if (!pf_state_terminal(t->state) && !t->halted && t->timer.idx == PF_NOT_QUEUED &&
               !pf_xfer_busy(&t->x) && pf_task_schedule(c, t, 0, PF_AT_POLL) != 0) {
      pf_err_set(&e, PF_EK_NOMEM, 0, "nomem", "out of memory");
      halt(c, t, &e);
      pf_task_changed(c, t);
    }
  } else if (j->kind == PF_JOB_LOOKUP) {
    t->lookup_job = 0;
    if (t->list && !pf_state_terminal(t->state)) finish_lookup(c, t, j->rc == 0 ? j->f[1] : NULL);
  } else if (j->kind == PF_JOB_OUTPUT) {
    t->output_job = 0;
    if (t->state != PF_ST_SUBMITTING) {
      /* it ended meanwhile (closed, a deadline): nothing to start */
    } else if (j->rc != 0) {
      /* the video could not be written where it was asked to go: nothing was sent */
      e = j->err;
      pf_err_append(&e, "; nothing was sent, so nothing was charged");
      e.not_charged = 1;
      release_claims(c, t);
      pf_heap_remove(&c->heap, &t->timer);
      t->state = PF_ST_FAILED;
      pf_request_free(&t->rq);
      pf_task_set_error(t, &e);
    } else if (!t->held && !t->intent_job && pf_task_first_step(c, t, &e) != 0) {
      if (e.kind == PF_EK_NONE) pf_err_set(&e, PF_EK_NOMEM, 0, "nomem", "out of memory");
      release_claims(c, t);
      t->state = PF_ST_FAILED;
      pf_request_free(&t->rq);
      pf_task_set_error(t, &e);
    }
  } else if (j->kind == PF_JOB_HASH) {
    pf_upsrc *u = j->gen < t->nups ? &t->ups[j->gen] : NULL;
    if (u && u->hashing && t->state == PF_ST_SUBMITTING) {
      u->hashing = 0;
      t->nhashing--;
      if (j->rc != 0) {
        /* the file is missing, not an image file, or cannot be read: nothing was sent */
        release_claims(c, t);
        pf_heap_remove(&c->heap, &t->timer);
        pf_err_set(&e, j->err.kind, 0, j->err.code, "%s: %s; nothing was sent, so nothing was "
                   "charged", u->label ? u->label : "image", j->err.message);
        e.not_charged = 1;
        t->state = PF_ST_FAILED;
        pf_request_free(&t->rq);
        pf_task_set_error(t, &e);
      } else {
        u->size = j->off;                     /* what the upload sends */
        pf_upload_key(c, t, 0, j->path2, u->key, sizeof u->key);
        /* nothing leaves before the intent is in the journal: its job starts the uploads then */
        if (t->nhashing == 0 && !t->held && !t->intent_job && !t->output_job &&
            t->timer.idx == PF_NOT_QUEUED &&
            !pf_xfer_busy(&t->x) &&
            pf_task_schedule(c, t, 0, PF_AT_UPLOAD) != 0) {
          pf_err_set(&e, PF_EK_NOMEM, 0, "nomem", "out of memory");
          t->state = PF_ST_FAILED;
          pf_task_set_error(t, &e);
        }
      }
    }
  } else if (j->kind == PF_JOB_READ) {
    pf_xfer_read_done(&c->net, &t->x, j->src, j->gen, j->buf, j->len, j->rc, &j->err);
    j->buf = NULL;                          /* the transfer's, or back in the pool */
    return;                                 /* no change the host can see */
  } else if (j->kind == PF_JOB_WRITE) {
    pf_xfer_chunk_done(&t->x, j->sink, j->len, j->rc, j->err_no);
    pf_net_chunk_put(&c->net, j->buf);      /* for the next chunks */
    j->buf = NULL;
    return;                                 /* no change the host can see yet */
  } else if (j->kind == PF_JOB_REMOVE) {
    if (j->gen == t->dl_gen && t->dl_removing) {
      t->dl_removing = 0;
      t->dl = PF_DL_FAILED;                 /* dl_err was kept when it was given up */
    }
  } else if (j->kind == PF_JOB_FINISH) {
    t->dl_finishing = 0;
    if (j->done_recs > 0) t->jrec |= PF_JR_DOWNLOADED;
    if (j->rc == 0) {
      t->dl = PF_DL_DONE;
      t->dl_resume = 0;
    } else {
      e = j->err;
      download_failed(c, t, &e, 0);
    }
  }
  redact_errors(c, t);
  if (t->state != before || t->dl != dl) {
    pf_task_journal(c, t);
    pf_task_changed(c, t);
  }
  settle_after_pump(c, t);
}

void pf_task_on_done(pf_client *c, pf_task *t) {
  long http = t->x.http;
  pf_state before = t->state;
  int progress = t->progress, halted = t->halted;
  pf_dlstate dl = t->dl;
  pf_trace_request(c, t);
  switch (t->x.kind) {
    case PF_X_UPLOAD: on_upload_done(c, t, http); break;
    case PF_X_SUBMIT: on_submit_done(c, t, http); break;
    case PF_X_STATUS: case PF_X_RESULT: on_status_done(c, t, http); break;
    case PF_X_CANCEL: on_cancel_done(c, t, http); break;
    case PF_X_DOWNLOAD: on_download_done(c, t, http); break;
    case PF_X_LIST: on_list_done(c, t, http); break;
    default: break;
  }
  redact_errors(c, t);
  pf_xfer_release(&c->net, &t->x);
  /* a cancel asked for while this request ran goes out next, ahead of the next poll */
  if (t->cancel == PF_CANCEL_WANTED && t->id && !pf_state_terminal(t->state))
    pf_task_schedule(c, t, 0, PF_AT_CANCEL);
  if (t->state != before || t->progress != progress || t->halted != halted || t->dl != dl) {
    pf_task_journal(c, t);
    pf_task_changed(c, t);
  }
  settle_after_pump(c, t);
}

/* The next upload, or the submit once every image has its gateway reference. An image another
 * task of this client is uploading right now is waited for, not uploaded twice. */
static int next_upload(pf_client *c, pf_task *t, pf_err *e) {
  if (t->nhashing > 0) return 0;           /* the last hash back schedules this again */
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

void pf_task_on_timer(pf_client *c, pf_task *t) {
  pf_err e;
  pf_err_clear(&e);
  if (t->timer_action != PF_AT_CANCEL && pf_task_deadline_passed(c, t)) {
    deadline_fired(c, t);
    redact_errors(c, t);
    pf_task_journal(c, t);
    pf_task_changed(c, t);
    settle_after_pump(c, t);
    return;
  }
  switch (t->timer_action) {
    case PF_AT_SUBMIT:
      if (pf_task_submit_start(c, t, &e) != 0) {
        t->state = PF_ST_FAILED;
        pf_request_free(&t->rq);
        pf_task_set_error(t, &e);
        pf_task_changed(c, t);
      }
      break;
    case PF_AT_LOOKUP:
      if (start_lookup(c, t, &e) != 0) {
        end_lookup(t);
        t->state = PF_ST_UNCONFIRMED;
        pf_err_append(&t->unconfirmed_err, " (its task list could not be read: %s)", e.message);
        pf_task_set_error(t, &t->unconfirmed_err);
        pf_task_changed(c, t);
      }
      break;
    case PF_AT_DOWNLOAD:
      if (pf_task_start_download(c, t, &e) != 0) {
        t->dl = PF_DL_FAILED;
        t->dl_err = e;
        pf_task_changed(c, t);
      }
      break;
    case PF_AT_UPLOAD:
      if (next_upload(c, t, &e) != 0) {
        release_claims(c, t);
        t->state = PF_ST_FAILED;
        pf_task_set_error(t, &e);
        pf_task_changed(c, t);
      }
      break;
    case PF_AT_CANCEL:
      t->cancel = PF_CANCEL_SENT;
      if (start_by_id(c, t, c->adapter->build_cancel, PF_X_CANCEL, &e) != 0) {
        t->cancel = PF_CANCEL_REFUSED;
        t->cancel_err = e;
        pf_task_schedule(c, t, 0, PF_AT_POLL);
        pf_task_changed(c, t);
      }
      break;
    case PF_AT_RESULT:
    case PF_AT_POLL: {
      /* a round of the client's task list may serve this poll (listpoll.c): t then waits */
      double wait = t->timer_action == PF_AT_POLL ? pf_listpoll_take(c, t) : -1;
      if (wait >= 0 && pf_task_schedule(c, t, wait, PF_AT_POLL) == 0) break;
      if (!rate_admit(c, t)) break;
      if (start_by_id(c, t, t->timer_action == PF_AT_RESULT ? c->adapter->build_result
                                                            : c->adapter->build_status,
                      t->timer_action == PF_AT_RESULT ? PF_X_RESULT : PF_X_STATUS, &e) != 0) {
        halt(c, t, &e);
        pf_task_changed(c, t);
      }
      break;
    }
  }
  redact_errors(c, t);
  pf_task_journal(c, t);
  settle_after_pump(c, t);
}

/* What a round of the task list saw of t at time at (listpoll.c): an unfinished state, applied
 * as a status reply that says only that (the gateway's rows say all its status reply says of an
 * unfinished task), the next poll counted from when the list was read; or PF_ST__COUNT: t's own
 * status poll, now. */
void pf_task_on_list(pf_client *c, pf_task *t, pf_state seen, double at) {
  pf_state before = t->state;
  pf_err e;
  if (seen == PF_ST__COUNT) {
    if (pf_task_schedule(c, t, 0, PF_AT_POLL) != 0) {
      pf_err_set(&e, PF_EK_NOMEM, 0, "nomem", "out of memory scheduling the next poll");
      halt(c, t, &e);
    }
  } else {
    pf_status st;
    pf_status_init(&st);
    st.state = seen;
    apply_status(c, t, &st);
    pf_status_free(&st);
    double ago = pf_client_now(c) - at;
    if (ago > 0 && t->timer.idx != PF_NOT_QUEUED && t->timer_action == PF_AT_POLL) {
      t->last_poll_at = at;
      pf_heap_set(&c->heap, &t->timer, t->timer.due - ago);
    }
  }
  if (t->state != before || t->halted) {
    pf_task_journal(c, t);
    pf_task_changed(c, t);
  }
  settle_after_pump(c, t);
}

void pf_task_detach(pf_task *t) {
  pf_client *c = t->client;
  if (!c) return;
  /* a task nobody follows any more gives its journal claims up, so that `pixflow resume` (or
   * another process) can take it; a finished one gave them up when it finished */
  if (t->intent_job || (t->output_job && t->state == PF_ST_SUBMITTING)) {
    /* closed before its intent (or its output's check) was back: nothing was sent, and the
     * journal is told so after the intent (so that resume never takes it for a submit that may
     * have left) */
    t->state = PF_ST_FAILED;
    pf_err e;
    pf_err_set(&e, PF_EK_CANCELED, 0, "closed", "the task was closed before it was sent; nothing "
               "was charged");
    e.not_charged = 1;
    pf_task_set_error(t, &e);
    if (t->intent_job) t->jrec |= PF_JR_INTENT;
  }
  pf_task_jobs_detach(c, t, t->jkey[0] && !(t->jrec & PF_JR_DOWNLOADED) &&
                      !(pf_state_terminal(t->state) && t->state != PF_ST_SUCCEEDED));
  release_claims(c, t);
  pf_listpoll_leave(c, t);
  pf_heap_remove(&c->heap, &t->timer);
  task_unlist(c, t);
  pf_xfer_abort(&c->net, &t->x);
  if (t->dl_finishing) {
    /* every byte arrived and was checked: the worker syncs and renames the file, and records it
     * in the journal, after this task is gone (the download still reads as running) */
    t->dl_finishing = 0;
  } else if (t->dl == PF_DL_RUNNING) {
    t->dl_removing = 0;
    /* running, opening, waiting to retry (a kept .part) or waiting for a fresh URL: nobody
     * continues it (the worker removes the file after any open still queued) */
    if (t->dl_part) pf_client_remove_later(c, t->dl_part);
    t->dl_opening = 0;
    t->dl_after_poll = 0;
    t->dl = PF_DL_FAILED;
    pf_err_set(&t->dl_err, PF_EK_CANCELED, 0, "closed", "the download was stopped by close()");
  }
  if (t->prev) t->prev->next = t->next;
  else c->tasks = t->next;
  if (t->next) t->next->prev = t->prev;
  t->prev = t->next = NULL;
  if (t->counted) c->npending--;
  t->counted = 0;
  t->client = NULL;
}

/* The intent of t in c's journal, before anything of it is sent: key and fields (a JSON object
 * encoded by Lua: provider, base_url, model, request, output, label). */
int pf_task_write_intent(pf_client *c, pf_task *t, const char *key, const char *fields, pf_err *e) {
  if (!c->journal || !key) return 0;
  json_t *f = json_loads(fields ? fields : "{}", 0, NULL);
  if (!json_is_object(f)) {
    json_decref(f);
    pf_err_set(e, PF_EK_NOMEM, 0, "nomem", "out of memory (the journal intent)");
    return -1;
  }
  /* an output another task may still write (of this client, of another in this process or of
   * another process) is refused by the intent's own transaction, on the worker: the client's
   * intents are written there one after another, so each sees the ones before it */
  snprintf(t->jkey, sizeof t->jkey, "%s", key);
  const char *stage = t->nups > 0 ? "uploading" : "sending";
  int rc = pf_task_post_intent(c, t, key, f, stage, e);
  json_decref(f);
  if (rc != 0) {
    t->jkey[0] = '\0';
    return -1;
  }
  return 0;
}

int pf_task_first_step(pf_client *c, pf_task *t, pf_err *err) {
  /* the intent's job, or the output's check, starts it (pf_task_on_job) */
  if (t->intent_job || t->output_job) return 0;
  return t->nups > 0 ? pf_task_schedule(c, t, 0, PF_AT_UPLOAD) : pf_task_submit_start(c, t, err);
}

/* Free everything t holds but the record itself (it is detached). */
void pf_task_free_parts(pf_task *t) {
  end_lookup(t);
  free_uploads(t);
  pf_request_free(&t->rq);
  free(t->id); t->id = NULL;
  free(t->model); t->model = NULL;
  free_videos(t);
  free(t->dl_path); t->dl_path = NULL;
  free(t->dl_part); t->dl_part = NULL;
}
