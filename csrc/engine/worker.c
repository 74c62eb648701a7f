/* worker.c: the engine's worker thread: a queue of jobs in, a queue of finished jobs out (worker.h). */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <time.h>

#include "hash.h"
#include "worker.h"

#ifdef SCHED_BATCH
#define PF_SCHED_BATCH SCHED_BATCH
#else
#define PF_SCHED_BATCH 3                    /* Linux's; <sched.h> shows it only to _GNU_SOURCE */
#endif

struct pf_worker {
  pthread_mutex_t mu;
  pthread_cond_t wake;       /* the thread: a job was posted, or the worker was released */
  pf_job *todo, *todo_tail;
  pf_job *done, *done_tail;
  pf_job *running;
  int started;
  int released;
  pthread_t thread;
  pf_wlocal local;
  void (*notify)(void *);
  void *notify_ud;
};

/* The threads of released workers still running their last jobs (pf_worker_drain). */
static pthread_mutex_t live_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t live_cv = PTHREAD_COND_INITIALIZER;
static size_t live_threads;
/* The process is exiting (pf_worker_quiesce): no worker starts another job. running counts the
 * jobs running now, on every worker; both under live_mu. */
static int exiting;
static size_t running;

pf_job *pf_job_new(int kind, void *owner, int (*run)(pf_job *, pf_wlocal *)) {
  pf_job *j = calloc(1, sizeof *j);
  if (!j) return NULL;
  j->kind = kind;
  j->owner = owner;
  j->run = run;
  pf_err_clear(&j->err);
  return j;
}

void pf_job_free(pf_job *j) {
  if (!j) return;
  if (j->owns_sink && j->sink) {
    pf_sink *s = j->sink;
    if (s->close_job && s->close_job != j) pf_job_free(s->close_job);   /* never posted */
    if (s->fp) fclose(s->fp);               /* a job that never ran: nothing is written to it */
    free(s);
  }
  if (j->owns_src && j->src) {
    pf_source *s = j->src;
    if (s->close_job && s->close_job != j) pf_job_free(s->close_job);   /* never posted */
    if (s->fd >= 0) close(s->fd);
    free(s->path);
    free(s);
  }
  free(j->buf);
  for (size_t i = 0; i < j->nbufs; i++) free(j->bufs[i]);
  free(j->bufs);
  free(j->path);
  free(j->path2);
  for (int i = 0; i < 4; i++) json_decref(j->f[i]);
  free(j);
}

pf_worker *pf_worker_new(pf_journal *journal) {
  pf_worker *w = calloc(1, sizeof *w);
  if (!w) return NULL;
  if (pthread_mutex_init(&w->mu, NULL) != 0) { free(w); return NULL; }
  if (pthread_cond_init(&w->wake, NULL) != 0) {
    pthread_mutex_destroy(&w->mu);
    free(w);
    return NULL;
  }
  if (journal) pf_journal_retain(journal);
  w->local.journal = journal;
  return w;
}

static void destroy(pf_worker *w) {
  for (pf_job *j = w->todo, *n; j; j = n) { n = j->next; pf_job_free(j); }
  for (pf_job *j = w->done, *n; j; j = n) { n = j->next; pf_job_free(j); }
  if (w->local.peer) pf_journal_release(w->local.peer);
  if (w->local.journal) pf_journal_release(w->local.journal);
  pthread_cond_destroy(&w->wake);
  pthread_mutex_destroy(&w->mu);
  free(w);
}

/* Around anything a worker does with the libraries (a job, OpenSSL's warm-up): once the process
 * is exiting it is not started, ever (the process ends in a moment, with everything it holds: a
 * journal record not written then is what a kill -9 would leave, and resume handles that). */
static void work_begin(void) {
  pthread_mutex_lock(&live_mu);
  while (exiting) pthread_cond_wait(&live_cv, &live_mu);
  running++;
  pthread_mutex_unlock(&live_mu);
}

static void work_end(void) {
  pthread_mutex_lock(&live_mu);
  running--;
  if (exiting) pthread_cond_broadcast(&live_cv);
  pthread_mutex_unlock(&live_mu);
}

static void *thread_main(void *arg) {
  pf_worker *w = arg;
  /* named, so that top -H, gdb and perf tell it from the caller's thread */
  prctl(PR_SET_NAME, "pixflow-worker", 0, 0, 0);
  /* ten steps nicer than the thread that started it (on Linux a nice value is a thread's): woken
   * by a job, it does not take the core from the caller's frame; on a machine whose every core
   * is busy it still gets about a tenth of one. Failing leaves it as it was. */
  pid_t tid = (pid_t)syscall(SYS_gettid);
  errno = 0;
  int nice_now = getpriority(PRIO_PROCESS, (id_t)tid);
  if (errno == 0 && nice_now < 10) setpriority(PRIO_PROCESS, (id_t)tid, nice_now + 10 > 19 ? 19 : nice_now + 10);
#ifdef __linux__
  /* and a batch thread: a nice value alone does not stop a woken thread from preempting the one
   * that woke it (EEVDF, Linux 6.6 on, places a thread that slept ahead of the running one: W5's
   * complete200j rows, under perf sched, showed the caller's thread preempted 21 times by its
   * worker, each inside a pump). SCHED_BATCH keeps the same share of the CPU (its nice value)
   * but never preempts on waking, so it runs on an idle core or at the next tick. Any thread may
   * choose it; failing leaves it as it was. */
  struct sched_param sp = { 0 };
  sched_setscheduler(tid, PF_SCHED_BATCH, &sp);
#endif
  work_begin();
  pf_crypto_warm();                         /* once, here rather than in a pump */
  work_end();
  pthread_mutex_lock(&w->mu);
  for (;;) {
    while (!w->todo && !w->released) pthread_cond_wait(&w->wake, &w->mu);
    pf_job *j = w->todo;
    if (!j) break;                          /* released and nothing left to do */
    w->todo = j->next;
    if (!w->todo) w->todo_tail = NULL;
    j->next = NULL;
    w->running = j;
    pthread_mutex_unlock(&w->mu);
    work_begin();
    j->rc = j->run(j, &w->local);
    work_end();
    /* the core goes back to whoever waits for it after every job. Nicer or not, a worker the
     * scheduler picked (after softirq work preempted the caller's thread, say) otherwise keeps
     * the core until the next tick, up to 4 ms at HZ=250, while the caller's frame waits:
     * W5's endless download showed 2.2-4.6 ms pumps; with this, 0.9-3.0 ms, the caller waiting
     * at most one job (a 128 KiB write, about 0.45 ms there). */
    sched_yield();
    pthread_mutex_lock(&w->mu);
    w->running = NULL;
    if (w->released) {
      pf_job_free(j);                       /* nobody takes it back */
    } else {
      /* the pump is woken for the first result only: it takes every one there is (or, its
       * budget spent, leaves the rest for the next pump, which does not wait), so a wake-up
       * for each would only cost system calls and pumps */
      int first = w->done == NULL;
      if (w->done_tail) w->done_tail->next = j;
      else w->done = j;
      w->done_tail = j;
      if (first && w->notify) w->notify(w->notify_ud);   /* under the lock: release cannot pass it */
    }
  }
  pthread_mutex_unlock(&w->mu);
  work_begin();
  destroy(w);                               /* its journal connections close: SQLite */
  pf_crypto_thread_end();                   /* before it counts as finished: see hash.h */
  work_end();
  pthread_mutex_lock(&live_mu);
  live_threads--;
  pthread_cond_broadcast(&live_cv);
  pthread_mutex_unlock(&live_mu);
  return NULL;
}

void pf_worker_set_notify(pf_worker *w, void (*fn)(void *), void *ud) {
  pthread_mutex_lock(&w->mu);
  w->notify = fn;
  w->notify_ud = ud;
  pthread_mutex_unlock(&w->mu);
}

int pf_worker_post(pf_worker *w, pf_job *j, pf_err *err) {
  pthread_mutex_lock(&w->mu);
  if (!w->started) {
    pthread_attr_t attr;
    int rc = pthread_attr_init(&attr);
    if (rc == 0) {
      pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
      pthread_attr_setstacksize(&attr, 256 * 1024);   /* SQLite and fsync need little */
      rc = pthread_create(&w->thread, &attr, thread_main, w);
      pthread_attr_destroy(&attr);
    }
    if (rc != 0) {
      pthread_mutex_unlock(&w->mu);
      pf_err_set(err, PF_EK_NOMEM, 0, "nomem", "cannot start the engine's worker thread: %s",
                 strerror(rc));
      return -1;
    }
    w->started = 1;
  }
  j->next = NULL;
  if (w->todo_tail) w->todo_tail->next = j;
  else w->todo = j;
  w->todo_tail = j;
  pthread_cond_signal(&w->wake);
  pthread_mutex_unlock(&w->mu);
  return 0;
}

pf_job *pf_worker_take(pf_worker *w) {
  pthread_mutex_lock(&w->mu);
  pf_job *j = w->done;
  if (j) {
    w->done = j->next;
    if (!w->done) w->done_tail = NULL;
    j->next = NULL;
  }
  pthread_mutex_unlock(&w->mu);
  return j;
}

void pf_worker_forget(pf_worker *w, void *owner) {
  pthread_mutex_lock(&w->mu);
  for (pf_job *j = w->todo; j; j = j->next) if (j->owner == owner) j->owner = NULL;
  for (pf_job *j = w->done; j; j = j->next) if (j->owner == owner) j->owner = NULL;
  if (w->running && w->running->owner == owner) w->running->owner = NULL;
  pthread_mutex_unlock(&w->mu);
}

static struct timespec deadline_after(double seconds) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  double whole = (double)(long)seconds;
  ts.tv_sec += (time_t)whole;
  ts.tv_nsec += (long)((seconds - whole) * 1e9);
  if (ts.tv_nsec >= 1000000000L) {
    ts.tv_sec++;
    ts.tv_nsec -= 1000000000L;
  }
  return ts;
}

void pf_worker_release(pf_worker *w) {
  if (!w) return;
  pthread_mutex_lock(&w->mu);
  if (!w->started) {
    pthread_mutex_unlock(&w->mu);
    destroy(w);
    return;
  }
  pthread_mutex_lock(&live_mu);             /* counted before its thread can see it is released */
  live_threads++;
  pthread_mutex_unlock(&live_mu);
  w->released = 1;
  w->notify = NULL;
  /* results nobody will take: freed now (the thread frees the ones still to come) */
  for (pf_job *j = w->done, *n; j; j = n) { n = j->next; pf_job_free(j); }
  w->done = w->done_tail = NULL;
  pthread_cond_signal(&w->wake);
  pthread_mutex_unlock(&w->mu);
}

int pf_worker_drain(double timeout) {
  struct timespec until = deadline_after(timeout);
  pthread_mutex_lock(&live_mu);
  int rc = 0;
  while (live_threads > 0 && rc == 0) rc = pthread_cond_timedwait(&live_cv, &live_mu, &until);
  int left = live_threads > 0;
  pthread_mutex_unlock(&live_mu);
  return left ? -1 : 0;
}

int pf_worker_quiesce(double timeout) {
  struct timespec until = deadline_after(timeout);
  pthread_mutex_lock(&live_mu);
  exiting = 1;
  int rc = 0;
  while (running > 0 && rc == 0) rc = pthread_cond_timedwait(&live_cv, &live_mu, &until);
  int left = running > 0;
  pthread_mutex_unlock(&live_mu);
  return left ? -1 : 0;
}

static void at_exit(void) {
  pf_worker_quiesce(5);
}

/* A forked child has none of the workers' threads: what they were running is not its to wait
 * for at its exit, and live_mu, which one of them may have held, is taken across the fork. */
static void fork_prepare(void) { pthread_mutex_lock(&live_mu); }
static void fork_parent(void) { pthread_mutex_unlock(&live_mu); }
static void fork_child(void) {
  running = 0;
  live_threads = 0;
  pthread_mutex_unlock(&live_mu);
}

void pf_worker_install_exit(void) {
  /* failing (no memory) leaves exit, or fork, as it was */
  atexit(at_exit);
  pthread_atfork(fork_prepare, fork_parent, fork_child);
}
