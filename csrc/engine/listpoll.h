/* listpoll.h: a client's list poller: where the gateway lists its tasks (DashScope), one task-list
 * query per poll round reads every in-flight task of the client instead of a status request
 * each, and a task's own status is read only when the list shows it changed (or does not show
 * it). The task state machine hands it its due polls and applies what a round saw. */
#ifndef PF_LISTPOLL_H
#define PF_LISTPOLL_H

#include "engine.h"

struct pf_xfer;
struct pf_timer;
typedef struct pf_listpoll pf_listpoll;

/* A task's part in its client's list poller (a member of pf_task, written by listpoll.c only). */
typedef struct pf_lpslot {
  pf_task *prev, *next;      /* in the poller's members: tasks whose polls a round may serve */
  int member;
  int waiting;               /* its poll is due and waits for the round being read (or the next) */
  int own;                   /* its next poll is its own status request */
} pf_lpslot;

/* t's status poll is due (t's timer just fired, for a poll). Returns < 0: t polls by itself now
 * (no list poll for this client, fewer than two tasks in flight, a round would cost as much as
 * the polls it replaces, or the list showed t changed). Otherwise a round serves this poll, and
 * t's timer must be set that many seconds ahead (PF_AT_POLL): the round's fallback, should it not
 * come back in time (t then polls by itself), or the time of the next round, which is near. */
double pf_listpoll_take(pf_client *c, pf_task *t);
/* t leaves c's poller (it is detached). */
void pf_listpoll_leave(pf_client *c, pf_task *t);
/* The pump's side: the poller's timer and transfer, told apart from the tasks' own. */
struct pf_timer *pf_listpoll_timer(const pf_client *c);
int pf_listpoll_owns(const pf_client *c, const struct pf_xfer *x);
void pf_listpoll_on_timer(pf_client *c);
void pf_listpoll_on_done(pf_client *c);
/* The next task a finished round has word for, with what it saw (the pump hands each to
 * pf_task_on_list, a few per pump under its budget): the state the list shows it in, unfinished,
 * or PF_ST__COUNT: its own status poll now (the list shows it changed, or its poll waited and the
 * list did not show it); *at: when the round began to read the list (the client's clock). NULL
 * when there is none (left). */
pf_task *pf_listpoll_next(pf_client *c, pf_state *seen, double *at);
/* Stop c's poller and free it (c's tasks are detached). */
void pf_listpoll_free(pf_client *c);

#endif
