/* listpoll.c: a client's list poller: one task-list round serves the status polls of all its in-flight tasks (DashScope). */
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "listpoll.h"
#include "reconcile.h"

/* The least time between two list requests: DashScope allows 20 queries a second per account
 * (providers.md 5.2); poll_rate, where set, spaces them further (it counts them with the status
 * requests). */
#define PF_LP_GAP 0.06
/* Every this many rounds that read the list a status at a time, one tries it whole again (it
 * stops after one page if it is still the dearer). */
#define PF_LP_REPROBE 32
/* Rounds in a row that showed none of the tasks whose polls waited for them (a list that does
 * not hold this client's tasks: another workspace's, say) before the client polls without the
 * list for PF_LP_REST seconds. */
#define PF_LP_MISSES 3
#define PF_LP_REST 600.0

struct pf_listpoll {
  pf_xfer x;                 /* the list request in flight (its owner: this poller) */
  pf_timer timer;            /* the round's next request; while a walk lasts, "now" */
  pf_task *head;             /* members */
  size_t members, waiting;
  /* the round being read */
  int running;
  int filtered;              /* a query per unfinished status word (else one for every status) */
  int win, nwin, word, page, cut;
  long count, total;         /* distinct tasks the current query read, and announced */
  int requests, probe;       /* requests sent, of them the first page of a whole list given up */
  int budget;                /* the most requests it may send: the polls it replaces */
  double from, to;           /* creation times it covers (our wall clock) */
  double began;              /* when its first request went (the client's clock) */
  char *model;               /* the one model every member has, NULL: every model */
  json_t *seen;              /* id -> the state (pf_state, -1 unknown) of every row read */
  json_t *qseen;             /* the ids of the current query, each counted once */
  double last_sent;
  /* the finished round's walk over the members, applying what it saw */
  int walking;
  pf_task *cursor, *last_saw;
  double next_round;         /* when the walk's tasks poll next (the next round), 0 unknown */
  int whole;                 /* it read every unfinished task of its windows: one it did not
                                show has ended (or is not listed yet) */
  size_t served, missed;     /* members it showed; waiting members it did not show */
  int misses;                /* rounds in a row that showed none that waited */
  double rest_until;         /* no rounds until then (the client's clock) */
  /* what rounds cost: requests of the last whole round, of the last complete one of each kind
   * (neither counts the first page of a whole list given up: a cost paid once, to learn) */
  int last, cost[2];
  unsigned rounds;
};

/* The k-th word of a list split by spaces, into out; 0 when there is none. */
static int word_at(const char *list, int k, char *out, size_t n) {
  for (const char *p = list; p && *p;) {
    while (*p == ' ') p++;
    size_t len = strcspn(p, " ");
    if (len > 0 && k-- == 0) {
      if (len >= n) return 0;
      memcpy(out, p, len);
      out[len] = '\0';
      return 1;
    }
    p += len;
  }
  return 0;
}

static int nwords(const pf_client *c) {
  char w[32];
  int k = 0;
  while (word_at(c->adapter->list_polls, k, w, sizeof w)) k++;
  return k;
}

/* May a round serve t's poll? Its id came from a submit of this client (so its creation time is
 * known: a task attached by id polls by itself), it is unfinished, and nothing else of it waits
 * for a status reply (a fresh result URL, a cancel's outcome). */
static int eligible(const pf_task *t) {
  return t->client && t->id && t->submit_wall > 0 && !t->halted && !t->held &&
         !t->dl_after_poll && (t->state == PF_ST_QUEUED || t->state == PF_ST_RUNNING) &&
         (t->cancel == PF_CANCEL_NONE || t->cancel == PF_CANCEL_REFUSED);
}

static void unwait(pf_listpoll *lp, pf_task *t) {
  if (!t->lp.waiting) return;
  t->lp.waiting = 0;
  lp->waiting--;
}

void pf_listpoll_leave(pf_client *c, pf_task *t) {
  pf_listpoll *lp = c ? c->lp : NULL;
  pf_lpslot *s = &t->lp;
  if (lp && s->member) {
    if (lp->cursor == t) lp->cursor = s->next;
    if (lp->last_saw == t) lp->last_saw = NULL;
    if (s->prev) s->prev->lp.next = s->next;
    else lp->head = s->next;
    if (s->next) s->next->lp.prev = s->prev;
    unwait(lp, t);
    lp->members--;
  }
  memset(s, 0, sizeof *s);
}

static pf_listpoll *poller(pf_client *c) {
  if (c->lp) return c->lp;
  pf_listpoll *lp = calloc(1, sizeof *lp);
  if (!lp) return NULL;
  lp->seen = json_object();
  lp->qseen = json_object();
  if (!lp->seen || !lp->qseen) {
    json_decref(lp->seen);
    json_decref(lp->qseen);
    free(lp);
    return NULL;
  }
  lp->timer.idx = PF_NOT_QUEUED;
  lp->last_sent = -1e300;
  c->lp = lp;
  return lp;
}

/* While a walk lasts the poller's timer is due at once (a microsecond on: a pump's timers are
 * those due when it began), so that a host pumping to the next due time comes back for the rest
 * of it (failing, the pumps still walk it). */
static void keep_walking(pf_client *c, pf_listpoll *lp) {
  pf_heap_set(&c->heap, &lp->timer, pf_client_now(c) + 1e-6);
}

/* The round ends (complete: every query was read, maybe cut short): the walk over the members
 * begins, in the pump's budget, and the poller's timer keeps the pump coming back until it is
 * over. */
static void finish(pf_client *c, pf_listpoll *lp, int complete) {
  lp->running = 0;
  if (complete) {
    lp->last = lp->requests - lp->probe;
    if (!lp->cut) lp->cost[lp->filtered] = lp->requests - lp->probe;
  }
  lp->whole = complete && !lp->cut && lp->filtered;
  lp->rounds++;
  free(lp->model);
  lp->model = NULL;
  json_object_clear(lp->qseen);
  lp->walking = 1;
  lp->served = lp->missed = 0;
  lp->cursor = lp->head;
  lp->last_saw = NULL;
  lp->next_round = 0;
  keep_walking(c, lp);
}

/* The round's next request goes after the gap since the last one, in its poll_rate slot. */
static void schedule_next(pf_client *c, pf_listpoll *lp) {
  double now = pf_client_now(c), wait = 0;
  if (lp->last_sent + PF_LP_GAP > now) wait = lp->last_sent + PF_LP_GAP - now;
  if (c->o.poll_rate > 0) wait += pf_rate_slot(c->o.poll_rate, now + wait, &c->rate_tat);
  if (pf_heap_set(&c->heap, &lp->timer, now + wait) != 0) finish(c, lp, 0);
}

/* A new round: the creation times and the model of the members it may serve, and whether it
 * reads the list whole or a status at a time (whichever the last rounds found cheaper; whole
 * first, and again now and then). */
static int kick(pf_client *c, pf_listpoll *lp) {
  double from = 0;
  const char *model = NULL;
  int mixed = 0, n = 0;
  for (pf_task *t = lp->head; t; t = t->lp.next) {
    if (!eligible(t)) continue;
    n++;
    if (from == 0 || t->submit_wall < from) from = t->submit_wall;
    if (!t->model || !t->model[0]) mixed = 1;
    else if (!model) model = t->model;
    else if (strcmp(model, t->model) != 0) mixed = 1;
  }
  if (n == 0) return -1;
  free(lp->model);
  lp->model = !mixed && model ? pf_strdup(model) : NULL;   /* no memory: every model */
  /* the list's skew allowance, as the lookup's (the task is stamped before the reply came) */
  lp->from = from - 2;
  lp->to = pf_client_wall(c);
  double a, b;
  lp->nwin = pf_list_window(lp->from, lp->to, 0, &a, &b);
  int words = nwords(c);
  if (words == 0 || !lp->cost[0]) lp->filtered = 0;
  else if (!lp->cost[1]) lp->filtered = lp->cost[0] > words * lp->nwin;
  else lp->filtered = lp->cost[1] < lp->cost[0];
  if (lp->filtered && lp->rounds % PF_LP_REPROBE == PF_LP_REPROBE - 1) lp->filtered = 0;
  lp->budget = n;
  lp->win = lp->word = 0;
  lp->page = 1;
  lp->cut = 0;
  lp->count = lp->total = 0;
  lp->requests = lp->probe = 0;
  json_object_clear(lp->seen);
  json_object_clear(lp->qseen);
  lp->running = 1;
  schedule_next(c, lp);
  return 0;
}

double pf_listpoll_take(pf_client *c, pf_task *t) {
  if (!c->o.poll_list || !c->adapter->build_list_poll || !c->adapter->parse_list) return -1;
  pf_lpslot *s = &t->lp;
  if (s->own) {                       /* the list showed it changed, or did not show it */
    s->own = 0;
    return -1;
  }
  if (!eligible(t) || t->rate_slot) return -1;
  pf_listpoll *lp = poller(c);
  if (!lp) return -1;                 /* no memory: its own poll */
  if (s->waiting) {                   /* its fallback fired: the round did not come back */
    unwait(lp, t);
    return -1;
  }
  if (!s->member) {
    s->member = 1;
    s->prev = NULL;
    s->next = lp->head;
    if (lp->head) lp->head->lp.prev = t;
    lp->head = t;
    lp->members++;
  }
  double now = pf_client_now(c);
  if (lp->members < 2 || (lp->last > 0 && (size_t)lp->last >= lp->members) || now < lp->rest_until)
    return -1;
  /* the members poll together at the next round: one that near waits for it */
  if (!lp->running && !lp->walking && lp->next_round - now > 1e-3 &&
      lp->next_round - now <= c->o.poll_interval)
    return lp->next_round - now;
  s->waiting = 1;
  lp->waiting++;
  if (!lp->running && !lp->walking && kick(c, lp) != 0) {
    unwait(lp, t);
    return -1;
  }
  /* the fallback: long enough for a round of several pages, each within request_timeout */
  return (double)c->o.request_ms / 1000 + c->o.poll_interval;
}

pf_timer *pf_listpoll_timer(const pf_client *c) {
  return c->lp ? &c->lp->timer : NULL;
}

int pf_listpoll_owns(const pf_client *c, const pf_xfer *x) {
  return c->lp && x == &c->lp->x;
}

void pf_listpoll_on_timer(pf_client *c) {
  pf_listpoll *lp = c->lp;
  if (lp->walking) {
    keep_walking(c, lp);
    return;
  }
  if (!lp->running) return;
  double a = 0, b = 0;
  pf_list_window(lp->from, lp->to, lp->win, &a, &b);
  char word[32];
  const char *status = NULL;
  if (lp->filtered && word_at(c->adapter->list_polls, lp->word, word, sizeof word)) status = word;
  char trace[37];
  pf_ctx ctx = pf_client_ctx(c, trace);
  pf_http_req req;
  memset(&req, 0, sizeof req);
  pf_err e;
  pf_err_clear(&e);
  if (c->adapter->build_list_poll(&ctx, lp->model, status, a, b, lp->page, &req, &e) != 0) {
    pf_http_req_discard(&req);
    finish(c, lp, 0);
    return;
  }
  if (pf_xfer_start(&c->net, &lp->x, lp, PF_X_LIST, &req, 0, &e) != 0) {   /* req is freed */
    finish(c, lp, 0);
    return;
  }
  if (lp->requests++ == 0) lp->began = pf_client_now(c);
  lp->last_sent = pf_client_now(c);
}

/* The next query of the round (the next status word, else the next window), or its end. */
static int next_query(pf_client *c, pf_listpoll *lp) {
  lp->page = 1;
  lp->count = lp->total = 0;
  json_object_clear(lp->qseen);
  if (lp->filtered && ++lp->word < nwords(c)) return 1;
  lp->word = 0;
  return ++lp->win < lp->nwin;
}

/* A page of the round: every row's state is kept by id (a later query's word for a task is the
 * newer), then the next page, the next query, or the end. A page that cannot be read ends the
 * round: what it read so far still serves. */
void pf_listpoll_on_done(pf_client *c) {
  pf_listpoll *lp = c->lp;
  pf_xfer *x = &lp->x;
  pf_trace_xfer(c, x, NULL, 0);
  json_t *items = NULL;
  int more = -1;
  long total = -1;
  pf_err e;
  pf_err_clear(&e);
  char trace[37];
  pf_ctx ctx = pf_client_ctx(c, trace);
  int ok = x->end == PF_XE_OK &&
           c->adapter->parse_list(&ctx, x->http, x->resp.data, x->resp.len, &items, &more, &total, &e) == 0;
  pf_xfer_release(&c->net, x);
  if (!ok) {
    json_decref(items);
    finish(c, lp, 0);
    return;
  }
  size_t i, n = json_array_size(items);
  json_t *it;
  json_array_foreach(items, i, it) {
    const char *id = json_string_value(json_object_get(it, "id"));
    if (!id) continue;
    if (!json_object_get(lp->qseen, id)) {
      lp->count++;
      if (json_object_set_new(lp->qseen, id, json_true()) != 0) lp->cut = 1;
    }
    if (json_object_set_new(lp->seen, id, json_integer(json_integer_value(json_object_get(it, "state")))) != 0)
      lp->cut = 1;                    /* no memory: that task is not shown, and polls itself */
  }
  json_decref(items);
  if (total > lp->total) lp->total = total;
  int words = nwords(c);
  if (!lp->filtered && lp->requests == 1 && more > 0 && words > 0) {
    /* the first page tells what the whole list costs: dearer than a query per unfinished word,
     * the round reads those instead (this page's rows still serve) */
    long per = n > 0 ? (long)n : 1, pages = total > 0 ? (total + per - 1) / per : 2;
    long whole = pages * lp->nwin, byword = lp->cost[1] ? lp->cost[1] : (long)words * lp->nwin;
    if (whole > byword) {
      lp->cost[0] = whole > 1000000 ? 1000000 : (int)whole;
      lp->filtered = 1;
      lp->probe = 1;
      lp->win = lp->word = 0;
      lp->page = 1;
      lp->count = lp->total = 0;
      json_object_clear(lp->qseen);
      json_object_clear(lp->seen);    /* the queries by status say it anew, and later */
      schedule_next(c, lp);
      return;
    }
  }
  if (more > 0 && lp->page < PF_LIST_MAX_PAGES) {
    lp->page++;
  } else {
    /* a page that did not say whether more follow, too many pages, or fewer distinct tasks
     * than announced (the list shifted while it was read): some task may not have been shown,
     * and a task the round does not show polls by itself */
    if (more != 0 || (lp->total >= 0 && lp->count < lp->total)) lp->cut = 1;
    if (!next_query(c, lp)) {
      finish(c, lp, 1);
      return;
    }
  }
  /* no dearer than the polls it replaces; the first page of a whole list given up is what
   * learning the list is dear cost, not what reading it does (cost[] leaves it out too): counted,
   * it cut a round of two tasks after its first status word, and a task that had just moved on to
   * the next word, not shown, polled by itself */
  if (lp->requests - lp->probe >= lp->budget) {
    lp->cut = 1;
    finish(c, lp, 1);
    return;
  }
  schedule_next(c, lp);
}

/* What the finished round says of member t: 0 nothing (t is busy with something else, or its
 * poll was not due and the list did not show it), 1 its own poll now (the list shows it ended;
 * or it did not show t, and t's poll waited, or the round read every unfinished task), 2 +
 * state: the list shows it unfinished in that state (an earlier state than t's is an older
 * view: t's stays). */
static int judge(pf_client *c, pf_listpoll *lp, pf_task *t) {
  int waited = t->lp.waiting;
  unwait(lp, t);
  if (!eligible(t)) {                 /* finished, or waiting for something else: it leaves */
    pf_listpoll_leave(c, t);
    return 0;
  }
  if (t->timer.idx == PF_NOT_QUEUED || t->timer_action != PF_AT_POLL || pf_xfer_busy(&t->x) ||
      t->rate_slot)
    return 0;
  json_t *v = json_object_get(lp->seen, t->id);
  if (!v) {
    lp->missed += waited;
    return waited || lp->whole ? 1 : 0;
  }
  lp->served++;
  int st = (int)json_integer_value(v);
  if (st == PF_ST_QUEUED || st == PF_ST_RUNNING) return 2 + (st > (int)t->state ? st : (int)t->state);
  return 1;                           /* finished, or a word the gateway uses for "unknown" */
}

pf_task *pf_listpoll_next(pf_client *c, pf_state *seen, double *at) {
  pf_listpoll *lp = c->lp;
  if (!lp || !lp->walking) return NULL;
  *at = lp->requests > 0 ? lp->began : pf_client_now(c);
  /* the last task seen unfinished polls next at its new due time: so do the others */
  pf_task *ls = lp->last_saw;
  if (ls && ls->timer.idx != PF_NOT_QUEUED && (lp->next_round == 0 || ls->timer.due < lp->next_round))
    lp->next_round = ls->timer.due;
  lp->last_saw = NULL;
  while (lp->cursor) {
    pf_task *t = lp->cursor;
    lp->cursor = t->lp.next;
    int v = judge(c, lp, t);
    if (v == 1) {
      t->lp.own = 1;
      *seen = PF_ST__COUNT;
      return t;
    }
    if (v >= 2) {
      lp->last_saw = t;
      *seen = (pf_state)(v - 2);
      return t;
    }
  }
  lp->walking = 0;
  json_object_clear(lp->seen);
  pf_heap_remove(&c->heap, &lp->timer);
  if (lp->served > 0) lp->misses = 0;
  else if (lp->missed > 0 && ++lp->misses >= PF_LP_MISSES) {
    lp->misses = 0;
    lp->rest_until = pf_client_now(c) + PF_LP_REST;
  }
  /* polls that came due while the round was read or walked: the next round, now */
  if (lp->waiting > 0 && kick(c, lp) != 0) {
    for (pf_task *t = lp->head; t; t = t->lp.next) unwait(lp, t);   /* their fallbacks poll them */
  }
  return NULL;
}

void pf_listpoll_free(pf_client *c) {
  pf_listpoll *lp = c->lp;
  if (!lp) return;
  pf_xfer_abort(&c->net, &lp->x);
  pf_heap_remove(&c->heap, &lp->timer);
  while (lp->head) pf_listpoll_leave(c, lp->head);
  json_decref(lp->seen);
  json_decref(lp->qseen);
  free(lp->model);
  free(lp);
  c->lp = NULL;
}
