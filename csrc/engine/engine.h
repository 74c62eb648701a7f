/* engine.h: the pixflow engine's C interface (no Lua): clients, tasks, submit, pump, events, downloads.
 *
 * Everything a host needs to make a video: create a client for one gateway, submit a request
 * (a task), pump the client from the host's own loop (pf_client_pump never blocks longer than
 * the timeout it is given; 0 returns at once), read which tasks changed, start a task's
 * download, cancel, close. The Lua binding (csrc/lua/) is one user of this interface;
 * examples/c/generate.c is another.
 *
 * Memory: the engine mallocs and frees its clients and tasks; a host holds pointers. A task
 * stays readable after its client is freed (it is detached: every accessor still works, every
 * action fails), and is freed only by pf_task_free. Strings returned by accessors belong to the
 * task and live until the task changes or is freed. Nothing here calls back into the host: what
 * happened is read after a pump (pf_client_next_change).
 *
 * Threads: one client and its tasks belong to one thread at a time.
 */
#ifndef PF_ENGINE_H
#define PF_ENGINE_H

#include <stddef.h>

#include "../adapters/adapter.h"
#include "error.h"

struct pf_journal;
typedef struct pf_client pf_client;
typedef struct pf_task pf_task;

/* Every number the engine runs with. The engine has no defaults of its own: the host passes
 * every field (the Lua binding passes lua/pixflow/defaults.lua's), and pf_client_new refuses a
 * value outside what the engine's arithmetic can hold (pf_opts_check). */
typedef struct pf_opts {
  long connect_ms;          /* connect phase of every request */
  long request_ms;          /* whole API request */
  long download_ms;         /* whole download */
  long low_speed_bytes;     /* abort a transfer slower than this ... */
  long low_speed_secs;      /* ... for this many seconds */
  size_t max_body;          /* cap on an API response body */
  long long max_download;   /* cap on a downloaded file */
  int max_per_host;         /* concurrent requests per host */
  double poll_initial;      /* first status poll after the gateway accepted */
  double poll_interval;     /* base interval, and the floor of hint-driven waits */
  double poll_max;          /* back-off cap */
  double poll_backoff;      /* interval multiplier every 3 polls */
  double poll_jitter;       /* 0..1: fraction of the first poll's delay taken off at random */
  double poll_min;          /* the shortest wait between two polls of a task (hinted polls) */
  double poll_rate;         /* status requests per second for the whole client, 0 = no limit */
  int poll_adaptive;        /* aim polls at the finish the gateway's hints predict */
  int poll_list;            /* one task-list query a round polls every in-flight task (DashScope) */
  int max_poll_failures;    /* consecutive failed status polls before a task halts */
  int download_attempts;
  int upload_attempts;
  int submit_attempts;      /* for a submit that provably never reached the gateway */
  double retry_base;        /* back-off after failures: full jitter over base * 2^(n-1) ... */
  double retry_max;         /* ... capped here */
  double retry_after_max;   /* the longest Retry-After pixflow honours */
  double task_timeout;      /* default per-task deadline: queue + generation + download */
  double lookup_delay;      /* first look for an unconfirmed submit in the task list ... */
  int lookup_attempts;      /* ... and how many looks in all */
  double budget;            /* seconds of work a pump may do before it leaves the rest (timers,
                               ended transfers, owed journal records) to the next, in order */
  char *ca_file;            /* extra CA bundle (NULL: the system's); verification is always on */
  char *user_agent;
} pf_opts;

/* The limits of each number of pf_opts that the engine can hold safely (not policy: the
 * policy ranges are the host's). One row per field, by the name the Lua layer uses. */
typedef struct pf_opt_limit {
  const char *name;
  double lo, hi;
  int is_bool;
  int is_int;               /* a count: an integer */
} pf_opt_limit;
/* The i-th row (from 0), NULL past the last; the row of name, or NULL. */
const pf_opt_limit *pf_opt_limit_at(size_t i);
const pf_opt_limit *pf_opt_limit_find(const char *name);
/* Set a number of o by its name (seconds for the *_timeout fields); -1 with err when the name is
 * unknown or the value outside its limits. */
int pf_opts_set(pf_opts *o, const char *name, double v, pf_err *err);
double pf_opts_get(const pf_opts *o, const char *name);
/* Is every number of o within its limits? (pf_client_new asks.) */
int pf_opts_check(const pf_opts *o, pf_err *err);

typedef struct pf_client_config {
  const char *provider;     /* preset name, for messages ("apimart") */
  const char *adapter;      /* wire protocol (pf_adapter_find) */
  const char *base_url;
  const char *api_key;      /* copied into pages of its own, out of core dumps; may be NULL */
  size_t api_key_len;
  const char *auth;         /* "bearer" or "api-key" */
  int ref_names;            /* send reference names (off: rewrite @name by position) */
  int manual_clock;         /* the clock moves only with pf_client_advance_clock (tests) */
  const char *trace;        /* a debug trace file (one redacted JSON line a request), or NULL */
  struct pf_journal *journal;   /* or NULL: the client takes a reference */
  pf_opts o;                /* copied (its strings too) */
} pf_client_config;

/* Once per process, before the first client (libcurl's global set-up; later calls do nothing).
 * -1 with err if it fails. */
int pf_init(pf_err *err);

/* A new client, or -1 with err filled (an unknown adapter, a number out of its limits, no
 * memory, a trace file that cannot be opened). */
int pf_client_new(const pf_client_config *cfg, pf_client **out, pf_err *err);
/* Stop every transfer, detach every task (they stay readable until pf_task_free) and free the
 * client. NULL is fine. It returns at once: what the journal is still owed, and the sync and
 * rename of a download whose bytes had all arrived, are finished by the client's worker thread
 * afterwards (pf_drain waits for that). */
void pf_client_free(pf_client *c);
/* Wait, at most timeout seconds, until the worker threads of every freed client have finished
 * their work (journal records, the last downloads' syncs): what a host calls before it exits
 * (the Lua binding calls it when its Lua state closes). 0 when all finished, -1 on timeout. */
int pf_drain(double timeout);

/* Run the client: fire due timers, move transfers, hand finished ones to their tasks. Waits at
 * most timeout seconds (0: never waits; math.huge is fine) and returns as soon as a task
 * changed, or once it did o.budget seconds of work (what is left, at least one of each kind
 * handled per pump so nothing starves, waits in order for the next pump). Returns the tasks in flight. journal_err (may be NULL) gets a journal record this
 * pump could not write (kind PF_EK_NONE when none). */
size_t pf_client_pump(pf_client *c, double timeout, pf_err *journal_err);
/* Tasks in flight: with a transfer, a timer, or a change not yet read. */
size_t pf_client_inflight(const pf_client *c);

/* The tasks a pump changed, oldest first: peek at the first (NULL: none) and, once the host
 * has taken note, drop it. *visible is 0 for a task that only stopped being in flight (the
 * host may release what it keeps for tasks in flight). Dropping can take a task out of flight:
 * read pf_task_pending afterwards. */
pf_task *pf_client_next_change(pf_client *c, int *visible);
void pf_client_drop_change(pf_client *c);
/* Bumped on every change of any task (a cheap "did anything happen"). */
unsigned long pf_client_changes(const pf_client *c);

/* A journal key is shorter than this (a UUID is 36 bytes). */
#define PF_JOURNAL_KEY_MAX 40

typedef struct pf_submit_opts {
  int hold;                 /* keep the task until pf_task_release (a chained extend) */
  double task_timeout;      /* < 0: the client's */
  const char *journal_key;  /* record the task in the client's journal under this key ... */
  const char *journal_intent;  /* ... with these fields (a JSON object), before it is sent */
  const char *output;       /* where the video will be written: checked on the worker before
                             * anything is sent (NULL: not said) */
} pf_submit_opts;

/* Submit rq (taken: *rq is zeroed, the task frees it). Never blocks, on the network or a disk:
 * the output's check, the local images' hashes and the journal's intent run on the worker, and
 * the uploads and the submit go out in the pumps after them. A problem found there (an output
 * that cannot be written, a missing image, an output another task writes) fails the task before
 * anything is sent (error.not_charged). NULL with err filled when it cannot even be queued. */
pf_task *pf_client_submit(pf_client *c, pf_request *rq, const pf_submit_opts *o, pf_err *err);
/* Follow a task the gateway already accepted (id), e.g. from a journal: it is polled at once.
 * With a journal key, the task is claimed in the journal first: a task another live process
 * follows gives NULL and an error with code "claimed". */
pf_task *pf_client_attach(pf_client *c, const char *id, double task_timeout,
                          const char *journal_key, pf_err *err);

/* The account's tasks created in [from, to] (Unix seconds), read from the gateway's task list:
 * every page of every query window (each at most 24 h), each task once. complete is 0 when the
 * list could not be read to its end: nothing may be concluded from what is missing then.
 * Blocks (resume uses it). -1 with err (code "unsupported" where the gateway has no list). */
typedef struct pf_list_row {
  char *id, *status;
  double created;           /* Unix seconds, -1 when the gateway does not say */
} pf_list_row;
typedef struct pf_list {
  pf_list_row *rows;
  size_t n;
  int complete;
  int clock;                /* the gateway's clock minus ours is known to lie in ... */
  double clock_lo, clock_hi;   /* ... [lo, hi] (from its replies' Date headers) */
} pf_list;
int pf_client_list(pf_client *c, const char *model, double from, double to, pf_list *out,
                   pf_err *err);
void pf_list_free(pf_list *l);

const char *pf_client_provider(const pf_client *c);
const char *pf_client_base_url(const pf_client *c);
const pf_opts *pf_client_options(const pf_client *c);
/* The Unix time the client's adapters see (it moves with a manual clock). */
double pf_client_wall(const pf_client *c);
/* Seconds until the next timer; 0 when there is none. */
int pf_client_next_due(const pf_client *c, double *seconds);
/* Move a manual (or any) clock forward (tests drive back-off with it). */
void pf_client_advance_clock(pf_client *c, double seconds);
typedef struct pf_client_stats {
  size_t running, queued;   /* requests on the wire, and waiting for a host slot */
  unsigned long finished;   /* transfers ended since the client was made */
  unsigned long uploads;    /* uploads performed */
  size_t cached;            /* upload results kept */
  size_t jobs;              /* worker jobs (file, hash, journal) whose results are not applied */
  int left;                 /* the last pump left work at its budget for the next one */
} pf_client_stats;
void pf_client_stats_get(const pf_client *c, pf_client_stats *s);

/* ---- tasks ---- */

/* Stop what t has running, give up its journal claims, and free it. NULL is fine. */
void pf_task_free(pf_task *t);
/* Does the task have a transfer, a timer or an unread change? (A host that keeps something for
 * tasks in flight keeps it while this holds.) */
int pf_task_pending(const pf_task *t);
/* Is it still attached to a client (not detached by pf_client_free)? */
int pf_task_attached(const pf_task *t);

const char *pf_task_id(const pf_task *t);          /* NULL until the gateway accepted it */
pf_state pf_task_state(const pf_task *t);
const char *pf_task_provider(const pf_task *t);
pf_mode pf_task_mode(const pf_task *t);
const char *pf_task_model(const pf_task *t);
int pf_task_progress(const pf_task *t);            /* 0-100, -1 unknown */
double pf_task_eta(const pf_task *t);              /* seconds, < 0 unknown */
const pf_video *pf_task_videos(const pf_task *t, size_t *n);
const pf_cost *pf_task_costs(const pf_task *t, size_t *n);
int pf_task_halted(const pf_task *t);              /* polling stopped on an error */
/* Records of it are being written by the client's worker (the journal will have them shortly). */
int pf_task_journaling(const pf_task *t);
int pf_task_held(const pf_task *t);
int pf_task_retries(const pf_task *t);
const char *pf_task_journal_key(const pf_task *t); /* NULL without one */
long long pf_task_bytes(const pf_task *t);         /* of the download under way */
/* "waiting", "uploading", "submitting", "held", "downloading" or "done" */
const char *pf_task_phase(const pf_task *t);
const char *pf_task_path(const pf_task *t);        /* the downloaded file, once done */

typedef enum pf_task_errwhich {
  PF_TE_TASK = 0,           /* why it failed, or why polling halted */
  PF_TE_RETRY,              /* the last failure that was retried */
  PF_TE_JOURNAL,            /* the last journal record that could not be written */
  PF_TE_DOWNLOAD,           /* why the download failed */
  PF_TE_CANCEL,             /* why the cancel was refused */
} pf_task_errwhich;
/* Copy one of t's errors into out (the key redacted); 0 when t has none of that kind. */
int pf_task_error(const pf_task *t, pf_task_errwhich which, pf_err *out);

typedef enum pf_dlstate { PF_DL_NONE = 0, PF_DL_RUNNING, PF_DL_DONE, PF_DL_FAILED } pf_dlstate;
typedef enum pf_cancel_state { PF_CANCEL_NONE = 0, PF_CANCEL_WANTED, PF_CANCEL_SENT,
                               PF_CANCEL_ACCEPTED, PF_CANCEL_REFUSED } pf_cancel_state;
pf_dlstate pf_task_download_state(const pf_task *t);
pf_cancel_state pf_task_cancel_state(const pf_task *t);

/* Start streaming the first video to path (through path.part, synced and renamed when
 * whole). -1 with err: not ready (code "not_ready"), another task's path in the journal, no
 * memory. A download already running is a misuse (code "busy"). */
int pf_task_download(pf_task *t, const char *path, pf_err *err);
/* Stop a running download and remove its .part file. */
void pf_task_download_abort(pf_task *t);
/* Ask the gateway to cancel (sent once the task's current request ended). -1 with err. */
int pf_task_cancel(pf_task *t, pf_err *err);
/* Restart polling of a task that halted on an error. -1 when out of memory. */
int pf_task_resume(pf_task *t);
/* Send a held task, extending the video extend_from_id (recorded in the journal with the key
 * and intent, as pf_client_submit does). -1 with err. */
int pf_task_release(pf_task *t, const char *extend_from_id, const char *journal_key,
                    const char *journal_intent, pf_err *err);
/* A held task that will never be sent: it ends canceled, with message, charged nothing. */
void pf_task_abandon(pf_task *t, const char *message);

#endif
