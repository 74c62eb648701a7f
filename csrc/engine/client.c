/* client.c: the engine's client: its creation, the pump, submit and attach, the change list's reading end, the task list. */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "hash.h"
#include "internal.h"
#include "journal.h"
#include "reconcile.h"

#define TIMER_TASK(tm) ((pf_task *)(void *)((char *)(tm) - offsetof(pf_task, timer)))

static int nomem(pf_err *err) {
  pf_err_set(err, PF_EK_NOMEM, 0, "nomem", "out of memory");
  return -1;
}

/* ---------------------------------------------------------------- life */

int pf_init(pf_err *err) {
  static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
  static int ready = 0;
  pthread_mutex_lock(&mu);
  int rc = 0;
  if (!ready) {
    if (pf_crypto_init() != 0) {            /* before libcurl: see hash.h */
      pf_err_set(err, PF_EK_NOMEM, 0, "init", "OpenSSL could not be initialised");
      rc = -1;
    } else if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
      pf_err_set(err, PF_EK_NOMEM, 0, "init", "curl_global_init failed");
      rc = -1;
    } else {
      pf_worker_install_exit();             /* after libcurl's, so before OpenSSL's at exit */
      ready = 1;
    }
  }
  pthread_mutex_unlock(&mu);
  return rc;
}

void pf_client_free(pf_client *c) {
  if (!c) return;
  /* what the tasks still owe the journal is posted to the worker, which writes it after the
   * client is gone (pf_worker_release returns at once; pf_worker_drain waits for it) */
  while (c->tasks) pf_task_detach(c->tasks);
  pf_listpoll_free(c);
  /* the connections are closed on the worker (200 of them cost close() 0.6 ms) */
  void *conns = c->worker ? pf_net_detach_conns(&c->net) : NULL;
  if (conns) pf_client_close_conns_later(c, conns);
  for (pf_job *j = c->jsync, *n; j; j = n) { n = j->next; pf_job_free(j); }
  c->jsync = c->jsync_tail = NULL;
  pf_worker_release(c->worker);
  c->worker = NULL;
  if (c->journal) pf_journal_release(c->journal);
  c->journal = NULL;
  pf_net_free(&c->net);                     /* also the slabs of key-bearing header lines */
  pf_heap_free(&c->heap);
  pf_secret_unmap(c->api_key, c->api_key_cap);   /* wiped, then unmapped */
  free(c->provider);
  free(c->base_url);
  free(c->o.ca_file);
  free(c->auth);
  for (size_t i = 0; i < c->ncache; i++) free(c->cache[i].value);   /* claims are NULL */
  free(c->cache);
  free(c->o.user_agent);
  pf_trace_close(c);
  free(c);
}

/* A job finished (on the worker thread): a pump waiting in curl_multi_poll returns. */
static void wake_pump(void *ud) {
  curl_multi_wakeup(((pf_client *)ud)->net.multi);
}

int pf_drain(double timeout) {
  return pf_worker_drain(timeout);
}

static double clock_of(const void *c) {
  return pf_client_now(c);
}

static int invalid(pf_err *err, const char *msg) {
  pf_err_set(err, PF_EK_INVALID, 0, "bad_option", "%s", msg);
  return -1;
}

int pf_client_new(const pf_client_config *cfg, pf_client **out, pf_err *err) {
  *out = NULL;
  const pf_adapter *ad = cfg->adapter ? pf_adapter_find(cfg->adapter) : NULL;
  if (!ad) return invalid(err, "bad option 'adapter' (no such wire protocol)");
  if (!cfg->provider || !cfg->base_url) return invalid(err, "options 'provider' and 'base_url' are required");
  if (!cfg->auth || (strcmp(cfg->auth, "bearer") != 0 && strcmp(cfg->auth, "api-key") != 0))
    return invalid(err, "core.new_client: option 'auth' must be \"bearer\" or \"api-key\"");
  if (!cfg->o.user_agent) return invalid(err, "option 'user_agent' is required");
  if (pf_opts_check(&cfg->o, err) != 0) return -1;
  pf_client *c = calloc(1, sizeof *c);
  if (!c) return nomem(err);
  pf_heap_init(&c->heap);
  c->adapter = ad;
  c->o = cfg->o;
  c->o.ca_file = c->o.user_agent = NULL;
  c->provider = pf_strdup(cfg->provider);
  c->base_url = pf_strdup(cfg->base_url);
  c->auth = pf_strdup(cfg->auth);
  c->o.user_agent = pf_strdup(cfg->o.user_agent);
  if (cfg->o.ca_file) c->o.ca_file = pf_strdup(cfg->o.ca_file);
  if (!c->provider || !c->base_url || !c->auth || !c->o.user_agent ||
      (cfg->o.ca_file && !c->o.ca_file)) {
    pf_client_free(c);
    return nomem(err);
  }
  if (cfg->api_key) {
    /* the key's one copy in the engine: its own pages, out of core dumps, wiped on close */
    c->api_key = pf_secret_map(cfg->api_key_len + 1, &c->api_key_cap);
    if (!c->api_key) {
      pf_client_free(c);
      pf_err_set(err, PF_EK_NOMEM, 0, "nomem", "out of memory (no pages for the API key)");
      return -1;
    }
    memcpy(c->api_key, cfg->api_key, cfg->api_key_len);
    c->api_key[cfg->api_key_len] = '\0';
    pf_scrub_secrets();                     /* what copying it left in registers */
  }
  c->ref_names = cfg->ref_names;
  size_t bl = strlen(c->base_url);
  while (bl > 0 && c->base_url[bl - 1] == '/') c->base_url[--bl] = '\0';
  c->manual_clock = cfg->manual_clock;
  c->clock_origin = pf_monotonic();
  c->wall_origin = pf_walltime();
  c->rng = (uint64_t)time(NULL) ^ ((uint64_t)(uintptr_t)c << 16) ^ 0x9E3779B97F4A7C15ULL;
  if (!c->rng) c->rng = 1;
  if (cfg->trace && pf_trace_open(c, cfg->trace, err) != 0) {
    pf_client_free(c);
    return -1;
  }
  if (pf_net_init(&c->net, &c->o, clock_of, c, err) != 0) {
    pf_client_free(c);
    return -1;
  }
  c->net.api_key = c->api_key;
  c->net.sink_write = pf_client_sink_write;   /* downloads' bytes are written on the worker */
  c->net.chunks_low = pf_client_chunks_low;   /* and the chunks they are gathered in made there */
  c->net.sink_close = pf_client_sink_close;
  c->net.src_open = pf_client_src_open;       /* and uploads' bytes read there */
  c->net.src_read = pf_client_src_read;
  c->net.src_close = pf_client_src_close;
  c->net.sink_ud = c;
  pf_net_set_sock_close(&c->net, pf_client_sock_close, c);   /* and its sockets closed there */
  if (cfg->journal) {
    c->journal = cfg->journal;
    pf_journal_retain(c->journal);
  }
  c->worker = pf_worker_new(c->journal);    /* its thread starts with its first job */
  if (!c->worker) {
    pf_client_free(c);
    return nomem(err);
  }
  pf_worker_set_notify(c->worker, wake_pump, c);
  *out = c;
  return 0;
}

/* ---------------------------------------------------------------- submit, attach */

static pf_task *new_task(pf_client *c, double timeout, pf_err *err) {
  pf_task *t = malloc(sizeof *t);
  if (!t) { nomem(err); return NULL; }
  pf_task_init(t, c);
  t->task_timeout = timeout < 0 ? c->o.task_timeout : timeout;
  return t;
}

pf_task *pf_client_submit(pf_client *c, pf_request *rq, const pf_submit_opts *o, pf_err *err) {
  pf_err_clear(err);
  const char *jkey = o ? o->journal_key : NULL;
  if (jkey && strlen(jkey) >= sizeof ((pf_task *)0)->jkey) {
    pf_request_free(rq);
    pf_err_set(err, PF_EK_INVALID, 0, "bad_key", "a journal key is at most %zu bytes",
               sizeof ((pf_task *)0)->jkey - 1);
    return NULL;
  }
  pf_task *t = new_task(c, o ? o->task_timeout : -1, err);
  if (!t) {
    pf_request_free(rq);
    return NULL;
  }
  t->rq = *rq;                              /* the task's now: its free frees what was copied */
  memset(rq, 0, sizeof *rq);
  int hold = o && o->hold;
  if (!hold) pf_task_start_deadline(c, t);
  t->mode = t->rq.mode;
  t->model = pf_strdup(t->rq.model ? t->rq.model : "");
  /* the output's check goes first: the worker answers it before the hashes and the intent */
  int rc = !t->model ? nomem(err) : 0;
  if (rc == 0 && o && o->output) rc = pf_task_post_output(c, t, o->output, err);
  if (rc == 0) rc = pf_plan_uploads(c, t, err);
  if (rc == 0 && hold) {
    t->held = 1;                            /* kept by the host's chain that will release it */
    return t;
  }
  /* recorded before anything is sent (uploads included); refused if it cannot be */
  if (rc == 0) rc = pf_task_write_intent(c, t, jkey, o ? o->journal_intent : NULL, err);
  if (rc == 0) {
    rc = pf_task_first_step(c, t, err);
    if (rc != 0 && err->kind == PF_EK_NONE) nomem(err);
  }
  if (rc != 0) {
    pf_err_redact(err, c->api_key);
    t->state = PF_ST_FAILED;                /* never sent: nothing of it is given up or owed */
    pf_task_free(t);
    return NULL;
  }
  pf_task_settle(c, t);
  pf_scrub_secrets();                       /* the submit's header lines were built */
  return t;
}

pf_task *pf_client_attach(pf_client *c, const char *id, double task_timeout,
                          const char *key, pf_err *err) {
  pf_err_clear(err);
  if (!id || !id[0]) {
    pf_err_set(err, PF_EK_INVALID, 0, "bad_id", "task id is empty");
    return NULL;
  }
  if (key && strlen(key) >= sizeof ((pf_task *)0)->jkey) {
    pf_err_set(err, PF_EK_INVALID, 0, "bad_key", "a journal key expected");
    return NULL;
  }
  pf_task *t = new_task(c, task_timeout, err);
  if (!t) return NULL;
  pf_task_start_deadline(c, t);
  t->id = pf_strdup(id);
  t->state = PF_ST_QUEUED;
  t->accepted_at = pf_client_now(c);
  int claim = key && c->journal;
  if (claim) {
    snprintf(t->jkey, sizeof t->jkey, "%s", key);
    t->jrec = PF_JR_INTENT | PF_JR_SENDING | PF_JR_ACCEPTED;
  }
  /* one live follower per task across every process: the claim is taken on the worker (a write
   * that can wait for another process's lock), and the first poll waits for it; a task another
   * process follows halts with "claimed" and is left to that one */
  if (!t->id || (claim ? pf_task_post_claim(c, t, err) : pf_task_schedule(c, t, 0, PF_AT_POLL)) != 0) {
    pf_task_free(t);
    nomem(err);
    return NULL;
  }
  pf_task_settle(c, t);
  return t;
}

/* ---------------------------------------------------------------- the pump */

/* The pump's budget: once `end` (monotonic seconds) has passed, each kind of work stops after the
 * item in hand, at least one item of each kind having been handled, and what is left waits for
 * the next pump (c->left_work): timers stay on the heap, ended transfers in libcurl's queue,
 * failed starts in theirs, owed journal records with their tasks, each in its order. */
static int spent(pf_client *c, size_t handled, double end) {
  if (handled == 0 || pf_monotonic() < end) return 0;
  c->left_work = 1;
  return 1;
}

static void fire_timers(pf_client *c, double end) {
  double now = pf_client_now(c);
  /* only what was due on entry: a timer set again for "now" waits for the next pump */
  size_t budget = c->heap.n, handled = 0;
  pf_timer *tm;
  while (budget-- > 0 && (tm = pf_heap_top(&c->heap)) && tm->due <= now && !spent(c, handled, end)) {
    pf_heap_remove(&c->heap, tm);
    if (tm == pf_listpoll_timer(c)) pf_listpoll_on_timer(c);   /* the task list's round */
    else pf_task_on_timer(c, TIMER_TASK(tm));
    handled++;
  }
}

/* Apply the jobs the worker finished, oldest first; how many of them are news (a closed socket
 * is not: it does not end a waiting pump). */
static size_t take_jobs(pf_client *c, double end) {
  size_t handled = 0, news = 0;
  pf_job *j;
  while (!spent(c, handled, end) && (j = pf_client_take_job(c))) {
    if (j->kind != PF_JOB_CLOSEFD) news++;
    if (j->kind == PF_JOB_WRITE) pf_net_chunk_written(&c->net, j->len);   /* whoever's it was */
    if (j->kind == PF_JOB_CHUNKS) {
      pf_net_chunks_back(&c->net, j->bufs, j->nbufs);
      j->nbufs = 0;
    }
    pf_task_on_job(c, j);
    pf_job_free(j);
    handled++;
  }
  return news;
}

/* Hand ended transfers to their tasks, from one of the transport's two queues: transfers that
 * ended (pf_net_next_done) or queued ones that could not start (pf_xfer_take_failed: their task
 * hears of it like any other end, e.g. an upload whose file was deleted while it waited). */
static void hand_over(pf_client *c, double end, pf_xfer *(*next)(pf_net *)) {
  pf_xfer *x;
  size_t handled = 0;
  while (!spent(c, handled, end) && (x = next(&c->net))) {
    c->finished++;
    if (pf_listpoll_owns(c, x)) pf_listpoll_on_done(c);   /* a page of the task list's round */
    else pf_task_on_done(c, x->owner);
    handled++;
  }
}

/* What a finished round of the task list saw of each task it served, a task at a time. */
static void apply_list(pf_client *c, double end) {
  size_t handled = 0;
  pf_task *t;
  pf_state seen;
  double at;
  while (!spent(c, handled, end) && (t = pf_listpoll_next(c, &seen, &at))) {
    pf_task_on_list(c, t, seen, at);
    handled++;
  }
}

/* The longest single wait of the pump in curl_multi_poll. A longer timeout (any size, even
 * math.huge) is waited in slices of this, so converting what is left to int milliseconds can
 * never overflow (past about 24.8 days it did, and the pump spun at 100% CPU). */
#define PF_POLL_SLICE_MS 60000

size_t pf_client_pump(pf_client *c, double timeout, pf_err *journal_err) {
  if (journal_err) pf_err_clear(journal_err);
  if (!(timeout >= 0)) timeout = 0;
  double start = pf_monotonic();
  unsigned long changes = c->changes, started0 = c->net.started, finished0 = c->finished;
  double end = start + c->o.budget;
  c->left_work = 0;
  pf_net_budget(&c->net, end);
  if (c->jpending && pf_client_now(c) >= c->jretry_at) {
    c->jretry_at = pf_client_now(c) + 1;
    size_t handled = 0;
    for (pf_task *t = c->tasks; t; t = t->next) {
      if (!t->jpending) continue;
      if (spent(c, handled, end)) {
        c->jretry_at = pf_client_now(c);    /* the rest in the next pump */
        break;
      }
      pf_task_journal(c, t);
      handled++;
    }
  }
  for (;;) {
    /* a job back is news for a waiter too (a task's records are in the journal now) */
    size_t jobs = take_jobs(c, end);
    fire_timers(c, end);
    pf_xfer_pump_queues(&c->net);
    hand_over(c, end, pf_xfer_take_failed);
    pf_net_perform(&c->net);
    unsigned long started = c->net.started;
    hand_over(c, end, pf_net_next_done);
    apply_list(c, end);
    pf_xfer_pump_queues(&c->net);
    hand_over(c, end, pf_xfer_take_failed);
    /* what the finished transfers started (the next poll, a download, a queued request) is sent
     * now, in the pump that caused it, not a frame later, unless the budget is spent: then the
     * next pump sends it (a second curl_multi_perform cost up to 0.6 ms with 200 in flight) */
    if (c->net.started != started) {
      if (pf_monotonic() < end) pf_net_perform(&c->net);
      else c->left_work = 1;
    }
    /* work left at the budget is not waited on: the caller's next pump does it */
    /* a transfer paused at the budget's end goes on in the next pump: no waiting */
    if (pf_net_paused(&c->net)) c->left_work = 1;
    if (c->changes != changes || c->left_work || jobs > 0) break;
    double left = timeout - (pf_monotonic() - start);
    if (left <= 0) break;
    pf_timer *tm = pf_heap_top(&c->heap);
    if (tm) {
      double due = tm->due - pf_client_now(c);
      if (due < left) left = due > 0 ? due : 0;
    }
    /* curl_multi_poll also returns when libcurl's own timers need service */
    double ms = ceil(left * 1000);
    if (!(ms <= PF_POLL_SLICE_MS)) ms = PF_POLL_SLICE_MS;   /* also inf */
    pf_net_wait(&c->net, (int)ms);
  }
  /* requests built and sent, replies read: fragments of them (the key's header line) are left
   * in the vector registers; a core dump would show them (docs/ARCHITECTURE.md, Secrets) */
  if (c->net.started != started0 || c->finished != finished0) pf_scrub_secrets();
  if (c->jerr_new) {                        /* a journal record this pump could not write */
    c->jerr_new = 0;
    if (journal_err) *journal_err = c->jerr;
  }
  return c->npending;
}

size_t pf_client_inflight(const pf_client *c) {
  return c->npending;
}

pf_task *pf_client_next_change(pf_client *c, int *visible) {
  pf_task *t = c->chead;
  if (t && visible) *visible = t->visible;
  return t;
}

void pf_client_drop_change(pf_client *c) {
  pf_task *t = c->chead;
  if (!t) return;
  c->chead = t->cnext;
  if (!c->chead) c->ctail = NULL;
  t->cnext = NULL;
  t->listed = t->visible = 0;
  pf_task_settle(c, t);
}

unsigned long pf_client_changes(const pf_client *c) {
  return c->changes;
}

/* ---------------------------------------------------------------- the task list */

void pf_list_free(pf_list *l) {
  for (size_t i = 0; i < l->n; i++) {
    free(l->rows[i].id);
    free(l->rows[i].status);
  }
  free(l->rows);
  memset(l, 0, sizeof *l);
}

static int list_add(pf_list *l, size_t *cap, const char *id, const char *status, double created) {
  if (l->n == *cap) {
    size_t ncap = *cap ? *cap * 2 : 64;
    pf_list_row *nr = realloc(l->rows, ncap * sizeof *nr);
    if (!nr) return -1;
    l->rows = nr;
    *cap = ncap;
  }
  pf_list_row *r = &l->rows[l->n];
  r->id = pf_strdup(id);
  r->status = status ? pf_strdup(status) : NULL;
  r->created = created;
  if (!r->id || (status && !r->status)) {
    free(r->id);
    free(r->status);
    return -1;
  }
  l->n++;
  return 0;
}

/* Every page of every query window (reconcile.h: each window at most 24 h, padded for the
 * undocumented time zone), each task once; complete is 0 when the list could not be read to
 * its end (more pages than PF_LIST_MAX_PAGES, a reply that does not say whether more follow, or
 * a list that shifted while it was read). Paced under DashScope's 20 requests per second. */
int pf_client_list(pf_client *c, const char *model, double from, double to, pf_list *out,
                   pf_err *err) {
  memset(out, 0, sizeof *out);
  pf_err_clear(err);
  if (!c->adapter->build_list) {
    pf_err_set(err, PF_EK_INVALID, 0, "unsupported", "%s has no task list", c->provider);
    return -1;
  }
  json_t *seen = json_object();             /* every id listed, once */
  if (!seen) return nomem(err);
  size_t cap = 0;
  int complete = 1, rc = 0;
  double a, b;
  int nwin = pf_list_window(from, to, 0, &a, &b);
  for (int w = 0; w < nwin && rc == 0; w++) {
    pf_list_window(from, to, w, &a, &b);
    json_t *wseen = json_object();          /* the ids this window listed: counted once each */
    if (!wseen) { rc = nomem(err); break; }
    long count = 0, total = -1;
    int more = 1;
    for (int page = 1; more > 0 && page <= PF_LIST_MAX_PAGES && rc == 0; page++) {
      if (page > 1 || w > 0) {
        struct timespec pause = { 0, 60 * 1000 * 1000 };   /* 20 QPS with room to spare */
        nanosleep(&pause, NULL);
      }
      char trace[37];
      pf_ctx ctx = pf_client_ctx(c, trace);
      pf_http_req req;
      memset(&req, 0, sizeof req);
      pf_buf body;
      pf_buf_init(&body, 0);
      long http = 0, ptotal = -1;
      double offset = NAN;
      json_t *items = NULL;
      if (c->adapter->build_list(&ctx, model, a, b, page, &req, err) != 0 ||
          pf_http_perform(&c->net, &req, &http, &body, &offset, err) != 0 ||
          c->adapter->parse_list(&ctx, http, body.data, body.len, &items, &more, &ptotal, err) != 0) {
        pf_http_req_discard(&req);
        pf_buf_free(&body);
        json_decref(items);
        pf_err_redact(err, c->api_key);
        rc = -1;
        break;
      }
      pf_buf_free(&body);
      if (ptotal > total) total = ptotal;
      if (offset == offset) {               /* the gateway's clock, from this page's Date */
        if (!out->clock || offset - 0.5 < out->clock_lo) out->clock_lo = offset - 0.5;
        if (!out->clock || offset + 1 > out->clock_hi) out->clock_hi = offset + 1;
        out->clock = 1;
      }
      size_t i;
      json_t *it;
      json_array_foreach(items, i, it) {
        const char *id = json_string_value(json_object_get(it, "id"));
        if (!id) continue;
        if (!json_object_get(wseen, id)) {
          count++;                          /* a list that shifted lists one task twice */
          if (json_object_set_new(wseen, id, json_true()) != 0) { rc = nomem(err); break; }
        }
        if (json_object_get(seen, id)) continue;
        if (json_object_set_new(seen, id, json_true()) != 0 ||
            list_add(out, &cap, id, json_string_value(json_object_get(it, "status")),
                     json_number_value(json_object_get(it, "created"))) != 0) {
          rc = nomem(err);
          break;
        }
      }
      json_decref(items);
    }
    if (more != 0 || (total >= 0 && count < total)) complete = 0;
    json_decref(wseen);
  }
  json_decref(seen);
  pf_scrub_secrets();
  if (rc != 0) {
    pf_list_free(out);
    return -1;
  }
  out->complete = complete;
  return 0;
}

/* ---------------------------------------------------------------- what a host may read */

const char *pf_client_provider(const pf_client *c) { return c->provider; }
const char *pf_client_base_url(const pf_client *c) { return c->base_url; }
const pf_opts *pf_client_options(const pf_client *c) { return &c->o; }

int pf_client_next_due(const pf_client *c, double *seconds) {
  pf_timer *tm = pf_heap_top(&c->heap);
  *seconds = tm ? tm->due - pf_client_now(c) : 0;
  return tm != NULL;
}

void pf_client_advance_clock(pf_client *c, double seconds) {
  if (seconds > 0) c->clock_offset += seconds;
}

void pf_client_stats_get(const pf_client *c, pf_client_stats *s) {
  memset(s, 0, sizeof *s);
  pf_net_counts(&c->net, &s->running, &s->queued);
  s->finished = c->finished;
  s->uploads = c->uploads;
  s->cached = c->ncache;
  s->jobs = c->jobs_out;
  s->left = c->left_work;
}
