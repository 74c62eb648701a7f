/* worker.h: the engine's worker thread: a client's blocking work (fsync, renames, removals, journal commits) off the caller's thread.
 *
 * A client posts jobs; the worker runs them one at a time, in the order posted; the client takes
 * the finished ones back in its pump and applies them (task.c). A job's run function touches
 * nothing but the job and the worker's own journal connection (pf_wlocal): never the client, a
 * task, libcurl or Lua. The only lock is held for queue operations, never while a job runs, so
 * posting and taking never wait on a disk.
 *
 * Lifetime: a worker belongs to one client. pf_worker_release (the client's free) returns at
 * once: jobs still queued run to their end on the worker, their results are dropped, and the
 * thread frees everything when it is done. pf_worker_drain waits (bounded) for every released
 * worker of the process, for a host that is about to exit (the Lua state's close). At the
 * process's exit pf_worker_quiesce stops them all between jobs (pf_worker_install_exit). */
#ifndef PF_WORKER_H
#define PF_WORKER_H

#include <stdio.h>

#include <jansson.h>

#include "error.h"
#include "journal.h"

/* What a job's run function may use besides the job: the worker's own connection to the
 * client's journal (opened on the worker the first time a job needs it). */
typedef struct pf_wlocal {
  pf_journal *journal;       /* the client's journal (a reference the worker holds) */
  pf_journal *peer;          /* the worker's own connection to it, or NULL until needed */
} pf_wlocal;

typedef struct pf_job pf_job;

/* A download attempt's file. Its fields are the worker's (the open, each chunk's write, the
 * close run there, in the order posted), except close_job, the caller's: the job that closes
 * it, made with it so that a file can always be closed, even out of memory. The job that owns
 * it (owns_sink: the open until its result is taken, then the close or the finish) frees it. */
typedef struct pf_sink {
  FILE *fp;                  /* the .part, unbuffered: each chunk is one write */
  int err_no;                /* the first write that failed (later chunks are not written) */
  pf_job *close_job;         /* the caller's, until it is posted */
} pf_sink;

/* An upload's local file, read on the worker a chunk at a time (PF_JOB_READ) while libcurl sends
 * what came back. fd and err are the worker's (the first read opens the file); path and size are
 * set when it is made and never change. close_job is the caller's, made with it so that a file
 * can always be closed, even out of memory: it closes the file and frees it all, after every
 * read posted before it. */
typedef struct pf_source {
  int fd;                    /* -1 until the first read opens it */
  int failed;                /* a read failed: the later ones fail too, without reading */
  char *path;
  long long size;            /* what the file had when it was hashed: what is sent */
  pf_job *close_job;
} pf_source;

/* One job. The poster fills kind, owner, run and the inputs; run fills rc, err and the outputs. */
struct pf_job {
  pf_job *next;
  int kind;                  /* what the pump does with the result (task.c's PF_JOB_*) */
  void *owner;               /* the task waiting for it; NULL once forgotten (pf_worker_forget) */
  int (*run)(pf_job *j, pf_wlocal *w);   /* on the worker thread; returns rc */
  int rc;
  int err_no;                /* errno of a failed system call */
  pf_err err;
  /* inputs and outputs (each kind uses some) */
  pf_sink *sink;             /* a download's file ... */
  int owns_sink;             /* ... which this job frees (else it only writes to it) */
  pf_source *src;            /* an upload's file ... */
  int owns_src;              /* ... which this job closes and frees (else it only reads it) */
  void *ctx;                 /* what a kind of its own needs (its run consumes it) */
  char *buf;                 /* a chunk to write (owned by the job) ... */
  size_t len;                /* ... its length */
  char **bufs;               /* chunks made for the pool (owned by the job until taken) ... */
  size_t nbufs;              /* ... how many, of len asked for */
  char *path, *path2;        /* owned by the job */
  char key[64];              /* a journal key */
  double t;                  /* a journal record's wall time */
  unsigned bits[4];          /* journal records: the task's PF_JR_* bit each one stands for */
  int state;                 /* a status record: the pf_state + 1 it records */
  json_t *f[4];              /* their fields, in order (owned by the job) */
  const char *ev[4];         /* their event names (static strings) */
  int sync[4];
  int nrec;
  int done_recs;             /* how many of them were written */
  int resume;                /* opening a .part: continue what it holds */
  long long off;             /* ... and the byte it continues from */
  unsigned gen;              /* the task's download generation when posted */
  pf_err rec_err;            /* a record of a file job that could not be written */
};

typedef struct pf_worker pf_worker;

/* A worker for one client; its thread starts with the first job. journal (may be NULL) is
 * retained for the jobs that write it. NULL when out of memory. */
pf_worker *pf_worker_new(pf_journal *journal);
/* fn(ud) is called (on the worker thread, quickly: it must not block or call back) when a job
 * has finished and no earlier one waits to be taken, until w is released: the client wakes its
 * pump with it (the pump takes every finished job, or leaves the rest to a pump that does not
 * wait). */
void pf_worker_set_notify(pf_worker *w, void (*fn)(void *), void *ud);
/* Queue j (malloc'd, owned by the worker from now on). -1 (err filled) when the thread cannot be
 * started: j is then not queued and still the caller's. */
int pf_worker_post(pf_worker *w, pf_job *j, pf_err *err);
/* A finished job, oldest first, or NULL. Never waits for a job. The caller frees it
 * (pf_job_free). */
pf_job *pf_worker_take(pf_worker *w);
/* The owner is going away: its jobs still run (a sync, a record), their results are dropped. */
void pf_worker_forget(pf_worker *w, void *owner);
/* The client is done with w: returns at once; see above. */
void pf_worker_release(pf_worker *w);
/* Wait, at most timeout seconds, until every released worker of this process has finished its
 * jobs. 0 when all have, -1 on timeout. */
int pf_worker_drain(double timeout);
/* The process is exiting: no worker starts another job (nor anything else with the libraries)
 * from now on, and this waits, at most timeout seconds, for the ones running to end. 0 when
 * none runs. */
int pf_worker_quiesce(double timeout);
/* Once, from pf_init after libcurl's initialisation: at exit, pf_worker_quiesce(5) runs before the
 * cleanups of the libraries initialised before it (atexit runs them in reverse; OpenSSL's, when
 * a host let it register one, freed its state under a worker's image hash: a crash). */
void pf_worker_install_exit(void);

pf_job *pf_job_new(int kind, void *owner, int (*run)(pf_job *, pf_wlocal *));
void pf_job_free(pf_job *j);

#endif
