/* engine.h: the client and task records, and the functions the engine's files share.
 *
 * Ownership (who frees what, who anchors whom):
 * - A pf_client lives in a "pixflow.Client" userdata. It owns the curl multi handle, the heap of
 *   due times, the per-host slot table and copies of provider, base URL and API key. Its first
 *   user value is the anchor table {lightuserdata(task) = task userdata}: a task is anchored
 *   while it is in the heap or has a transfer queued or running, so a task in flight is never
 *   collected while its client lives. Its second user value is the list of tasks that changed
 *   since Lua last drained it (client:_changed()).
 * - A pf_task lives in a "pixflow.Task" userdata. User value 1 is its client userdata (so the
 *   client outlives the task's references to it), user value 2 is the Lua-level owner object.
 *   The task owns its request record, its id, its videos, and its current transfer (easy
 *   handle, buffers, open file). A task is linked into its client's task list until it is
 *   closed or the client closes; detaching stops its transfer and its timer.
 * - libcurl callbacks (http.c) only write into pf_xfer fields. Lua is only touched from the
 *   Lua-called functions poll, submit, attach, close and __gc.
 */
#ifndef PF_ENGINE_H
#define PF_ENGINE_H

#include <stdint.h>
#include <stdio.h>

#include <curl/curl.h>

#include "adapters/adapter.h"
#include "buf.h"
#include "error.h"
#include "pixflow.h"
#include "sched.h"

#define PF_CLIENT_MT "pixflow.Client"
#define PF_TASK_MT "pixflow.Task"

/* Easy handles kept for reuse: enough for the transfers of a few hosts at the default slots. */
#define PF_EASY_POOL 32
/* Task durations a client remembers, for polling gateways that give no hints. */
#define PF_DURATIONS 64
/* Header lines that carry the API key live in slots of this size (pf_header_add's line cap)
 * in the client's secret slabs, PF_SECRET_SLOTS to a slab (http.c). */
#define PF_SECRET_SLOT 1024
#define PF_SECRET_SLOTS 64

typedef struct pf_opts {
  long connect_ms;          /* connect phase of every request */
  long request_ms;          /* whole API request */
  long download_ms;         /* whole download */
  long low_speed_bytes;     /* abort a transfer slower than this ... */
  long low_speed_secs;      /* ... for this many seconds */
  size_t max_body;          /* cap on an API response body */
  curl_off_t max_download;  /* cap on a downloaded file */
  int max_per_host;         /* concurrent requests per host */
  double poll_initial;      /* first status poll after the gateway accepted */
  double poll_interval;     /* base interval, and the floor of hint-driven waits */
  double poll_max;          /* back-off cap */
  double poll_backoff;      /* interval multiplier every 3 polls */
  double poll_jitter;       /* 0..1: fraction of the first poll's delay taken off at random */
  double poll_min;          /* the shortest wait between two polls of a task (hinted polls) */
  double poll_rate;         /* status requests per second for the whole client, 0 = no limit */
  int poll_adaptive;        /* aim polls at the finish the gateway's hints predict */
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
  char *ca_file;            /* extra CA bundle; verification itself is always on */
  char *user_agent;
} pf_opts;

struct pf_task;

/* Memory for secrets (util.c): its own pages, page-aligned, left out of core dumps
 * (MADV_DONTDUMP), zeroed in a fork()ed child, locked against swapping where allowed. */
typedef struct pf_secret_slab {
  char *mem;
  size_t cap;
  uint64_t used;                          /* a bit per slot */
} pf_secret_slab;

/* An upload result kept for reuse: key is the source's SHA-256 (and the model, where the
 * gateway binds uploads to one), value what the gateway gave back. */
typedef struct pf_cache_entry {
  char key[160];
  char *value;               /* NULL while a task uploads it (a claim) */
  double expires;            /* wall clock */
} pf_cache_entry;

typedef struct pf_host {
  char name[256];
  int active;
  struct pf_task *qhead, *qtail;   /* tasks whose transfer waits for a slot */
} pf_host;

typedef struct pf_client {
  CURLM *multi;
  int closed;
  const pf_adapter *adapter;
  char *provider, *base_url;
  char *api_key;             /* in its own secret mapping (pf_secret_map), wiped on close */
  size_t api_key_cap;
  pf_secret_slab *slabs;     /* the header lines of requests in flight that carry the key */
  size_t nslabs;
  pf_opts o;
  pf_heap heap;
  pf_host *hosts;
  size_t nhosts;
  struct pf_task *tasks;     /* every attached task */
  size_t nanchored;          /* tasks in flight */
  unsigned long changes;     /* bumped on every task change */
  double clock_offset;       /* virtual clock for tests: added to the monotonic clock */
  int manual_clock;          /* the clock moves only with _advance_clock (tests) */
  double clock_origin;
  double wall_origin;        /* Unix time at clock_origin: a manual clock moves both */
  uint64_t rng;
  char *auth;                /* "bearer" or "api-key" (preset) */
  int ref_names;             /* send reference names (preset) */
  pf_cache_entry *cache;     /* upload results */
  size_t ncache;
  unsigned long uploads;     /* uploads performed (tests read it) */
  FILE *trace;               /* the debug trace (trace.c), or NULL */
  double rate_tat;           /* poll_rate: when the next status request may go (GCRA) */
  struct pf_task *fhead, *ftail;   /* queued transfers that failed to start, to be reported */
  struct pf_task *chead, *ctail;   /* tasks that changed in this pump, not yet handed to Lua */
  CURL *pool[PF_EASY_POOL];  /* reset easy handles for the next transfers (http.c) */
  size_t npool;
  unsigned long finished;    /* transfers that ended (benchmarks tell pumps apart with it) */
  unsigned long started;     /* transfers handed to libcurl */
  /* how long this client's tasks took (lower bounds: accepted to the last poll that saw them
   * running), the last PF_DURATIONS of them, and their 5th percentile once there are 16 */
  double durations[PF_DURATIONS];
  size_t ndurations;
  double duration_q05;
  /* the journal the client's tasks are recorded in (journal.c), or NULL; the client holds a
   * reference. Records the pump could not write (disk full, another process writing) are kept
   * as owed by their tasks and tried again (jpending of them, next at jretry_at). */
  struct pf_journal *journal;
  size_t jpending;
  double jretry_at;
  pf_err jerr;               /* the last journal failure not yet reported by poll */
  int jerr_new;
  int closed_journal;        /* closing: owed records may wait for the journal's lock */
} pf_client;

typedef enum pf_xkind {
  PF_X_NONE = 0, PF_X_UPLOAD, PF_X_SUBMIT, PF_X_STATUS, PF_X_RESULT, PF_X_CANCEL, PF_X_DOWNLOAD,
  PF_X_LIST
} pf_xkind;
typedef enum pf_dlstate { PF_DL_NONE = 0, PF_DL_RUNNING, PF_DL_DONE, PF_DL_FAILED } pf_dlstate;
/* What a task does when its timer is due. Follow-up requests (the next upload step, the result
 * call, a cancel) are scheduled for "now" rather than started inside a completion handler. */
typedef enum pf_timer_action {
  PF_AT_POLL = 0, PF_AT_DOWNLOAD, PF_AT_UPLOAD, PF_AT_RESULT, PF_AT_CANCEL, PF_AT_SUBMIT,
  PF_AT_LOOKUP
} pf_timer_action;
typedef enum pf_cancel_state { PF_CANCEL_NONE = 0, PF_CANCEL_WANTED, PF_CANCEL_SENT,
                               PF_CANCEL_ACCEPTED, PF_CANCEL_REFUSED } pf_cancel_state;

/* A reference image that must be uploaded before the submit, and where its result goes. */
typedef struct pf_upsrc {
  char key[160];             /* cache key */
  char *path, *url;          /* source: a local file, or a URL to import */
  char *filename;
  const char *mime;
  int claimed;               /* this task holds the cache claim for key */
  pf_upload up;
} pf_upsrc;

typedef struct pf_slot {
  char **field;              /* an image field of the task's request */
  size_t src;                /* index into the task's upload sources */
} pf_slot;

/* One HTTP exchange. Only the callbacks in http.c and the functions there write it. */
typedef struct pf_xfer {
  CURL *easy;
  pf_xkind kind;
  int active;                /* added to the multi handle */
  int waiting;               /* queued for a host slot */
  int failed;                /* a queued one that could not start: the pump reports it as done */
  CURLcode start_rc;         /* ... with this code */
  pf_err start_err;          /* ... and this error */
  size_t host;               /* index into client->hosts */
  struct pf_task *qnext;
  pf_http_req req;           /* owns url, body, headers, parts for the transfer's lifetime */
  curl_mime *mime;           /* the multipart body built from req.parts */
  pf_buf resp;               /* API response body */
  FILE *fp;                  /* download target (.part) */
  unsigned char head[8];
  size_t headlen;
  int not_mp4, too_big;
  curl_off_t written;
  curl_off_t resume_from;    /* a download continued with a Range request from this byte */
  double retry_after;        /* from a Retry-After header, < 0 if none */
  double server_date;        /* the reply's Date header (Unix seconds), 0 if none ... */
  double server_date_at;     /* ... and our wall clock when it came */
  int sends;                 /* times libcurl was about to send the request (a submit: once) */
  char errbuf[CURL_ERROR_SIZE];
} pf_xfer;

typedef struct pf_task {
  pf_client *client;         /* NULL once detached */
  struct pf_task *prev, *next;
  int closed;
  int anchored;
  int changed;               /* on the client's list of changes not yet handed to Lua */
  struct pf_task *cnext;
  char provider[32];
  char *id;
  pf_request rq;             /* freed once the gateway accepted (or definitely refused) it */
  pf_mode mode;
  char *model;
  pf_state state;
  int progress;
  double eta;
  pf_cost costs[PF_MAX_COSTS];  /* what the gateway says it costs, each with its unit */
  size_t ncosts;
  pf_video *videos;
  size_t nvideos;
  pf_err err;                /* why it failed, or why polling halted */
  pf_err retry_err;          /* the last failure that was retried (task.last_retry) */
  int retries;               /* requests of this task sent again after a failure */
  int has_err;
  int halted;                /* polling stopped on an error; task:_resume() restarts it */
  int held;                  /* waits for the task it extends: task:_release(id) sends it */
  pf_timer timer;
  pf_timer_action timer_action;
  int npolls, poll_failures;
  int overdue;               /* polls since the hints said the task should have ended */
  double last_poll_at;       /* when the last status reply that saw it unfinished came */
  int rate_slot;             /* this poll already holds a slot of the client's poll_rate */
  int submit_failures;       /* submits that provably never arrived or were turned away */
  double accepted_at;
  double task_timeout;       /* seconds, 0 = none */
  double deadline;           /* client clock; 0 = none */
  /* an unconfirmed submit looked for in the gateway's task list: every page of every query
   * window (reconcile.h) is read into list (an object id -> created) before anything is decided */
  int lookups;
  json_t *list, *list_wseen;
  int list_page, list_win, list_nwin, list_cut;
  long list_count, list_total;  /* tasks read and tasks announced in the current window */
  int list_clock;            /* the gateway's clock minus ours is known to lie in ... */
  double list_clock_lo, list_clock_hi;   /* ... [lo, hi] (its replies' Date headers) */
  double list_to;
  double submit_wall;        /* wall clock when the (last) submit was sent */
  pf_err unconfirmed_err;
  pf_xfer x;
  /* uploads before the submit */
  pf_upsrc *ups;
  size_t nups, upi;
  pf_slot *slots;
  size_t nslots;
  int up_attempts;
  /* cancel */
  pf_cancel_state cancel;
  pf_err cancel_err;
  pf_dlstate dl;
  char *dl_path, *dl_part;
  int dl_attempts;
  int dl_resume;             /* the .part holds verified bytes: continue with a Range request */
  int dl_refreshed;          /* the result URL was read again once after a 403/410 */
  int dl_after_poll;         /* a status poll for a fresh URL runs; the download follows it */
  pf_err dl_err;
  /* the journal: this task's key, which of its records are written (PF_JR_*), the terminal
   * state last recorded, and the last failure to write one (task.journal_error) */
  char jkey[40];
  unsigned jrec;
  int jstate;                /* pf_state + 1 of the last status record, 0 none */
  int jpending;              /* a record is owed: the client tries again */
  int found_by_list;         /* the id came from the gateway's task list, not the submit reply */
  pf_err jerr;
  int has_jerr;
} pf_task;

/* Records of a task the journal has (pf_task.jrec). */
enum { PF_JR_INTENT = 1, PF_JR_SENDING = 2, PF_JR_ACCEPTED = 4, PF_JR_DOWNLOAD = 8,
       PF_JR_DOWNLOADED = 16 };
/* util.c */
/* Zero n bytes at p (a wipe the compiler keeps). */
void pf_wipe(void *p, size_t n);
/* At least n bytes of secret memory (*cap: how many), or NULL. */
void *pf_secret_map(size_t n, size_t *cap);
/* Wipe and release what pf_secret_map gave. */
void pf_secret_unmap(void *p, size_t cap);
/* Zero the stack below the caller and the CPU's vector registers: what the functions it called
 * left there of the key (fragments of the last data copied through them). */
void pf_scrub_secrets(void);

/* client.c */
double pf_client_now(const pf_client *c);
double pf_client_rand(pf_client *c);   /* uniform [0,1) */
double pf_client_wall(const pf_client *c);
/* Record that t changed: bump the counter and link t (if anchored: call it before unanchoring)
 * on the client's list of changes. It allocates nothing and never raises: the pump hands the
 * list to Lua once every transfer and timer of the pump was handled, and t stays anchored until
 * then. */
void pf_client_changed(lua_State *L, int cidx, pf_client *c, pf_task *t);
/* Unlink t from c's list of changes (t is detached or closed). */
void pf_client_unlist(pf_client *c, pf_task *t);
/* Anchor or unanchor t to match whether it is in flight. cidx and tidx are the stack indices
 * of c's and t's userdata (tidx 0: not on the stack, only unanchoring is possible then, which
 * is all the pump ever needs). L's stack is left unchanged. */
void pf_task_sync_anchor(lua_State *L, int cidx, int tidx, pf_client *c, pf_task *t);

/* Read a normalised request table at idx into rq (raises on a malformed table). */
void pf_read_request(lua_State *L, int idx, pf_request *rq);
/* The same as a lua_CFunction for lua_pcall: (table, lightuserdata pf_request*). */
int pf_read_request_p(lua_State *L);
/* Write t's intent in c's journal from the journal arguments { key =, intent = JSON } at idx
 * (none: nothing to write). -1 with e filled when it cannot be recorded: nothing may be sent. */
int pf_client_write_intent(pf_client *c, pf_task *t, lua_State *L, int idx, pf_err *e);
/* Register pixflow.Client and push core.new_client. */
void pf_client_open(lua_State *L);
/* Register pixflow.Journal; set open_journal and uuid in the table on top of the stack. */
void pf_journal_open_lua(lua_State *L);
/* The engine journal of a pixflow.Journal userdata at idx (raises if it is not one, or closed). */
struct pf_journal *pf_journal_check(lua_State *L, int idx);

/* http.c: the transport */
/* Take ownership of req and start (or queue) it for t. On failure req is freed. This is the one
 * place a transfer begins: a task that already has one (pf_task_busy) is refused ("busy"). */
int pf_xfer_start(pf_client *c, pf_task *t, pf_xkind kind, pf_http_req *req, pf_err *err);
/* The same for a download into fp (the caller's, still the caller's on failure), continuing at
 * resume_from (0: from the start). */
int pf_xfer_start_download(pf_client *c, pf_task *t, pf_http_req *req, FILE *fp,
                           curl_off_t resume_from, pf_err *err);
/* Does t have a transfer (running, queued, or failed to start and not yet reported)? */
int pf_task_busy(const pf_task *t);
/* The next task whose queued transfer failed to start, or NULL: the pump hands it to
 * pf_task_on_done with x.start_rc, as a transfer that ended. */
pf_task *pf_xfer_take_failed(pf_client *c);
/* Stop t's transfer wherever it is (running or queued) and free it. */
void pf_xfer_abort(pf_client *c, pf_task *t);
/* Run one request to its end, blocking (not a task's: resume's lookups). *offset (may be NULL)
 * gets the server's clock minus ours from its Date header (NAN without one). */
int pf_http_perform(pf_client *c, pf_http_req *req, long *http, pf_buf *resp, double *offset,
                    pf_err *err);
/* Free what a finished transfer holds (after its handler read it); its handle goes back to c's
 * pool (c NULL: freed). */
void pf_xfer_release(pf_client *c, pf_xfer *x);
/* Free the handles of c's pool, and its secret slabs (every transfer has been released). */
void pf_easy_pool_free(pf_client *c);
/* Free a request that was built but never handed to pf_xfer_start, wiping its header lines (they
 * may carry the key) first. */
void pf_http_req_discard(pf_http_req *req);
/* Detach a finished transfer from the multi handle and its host slot. */
void pf_xfer_finish(pf_client *c, pf_task *t);
/* Start queued transfers whose host has a free slot. */
void pf_xfer_pump_queues(pf_client *c);
/* The host part of url, for per-host slots. */
void pf_url_host(const char *url, char *out, size_t n);

/* trace.c: the debug trace */
int pf_trace_open(pf_client *c, const char *path, pf_err *err);
void pf_trace_close(pf_client *c);
/* One line for t's finished transfer: what, where (the URL without its query), how it ended. */
void pf_trace_request(pf_client *c, const pf_task *t, CURLcode rc, long http);
/* url without user info and query ("?<redacted>"), into out. */
void pf_redact_url(const char *url, char *out, size_t n);

/* task.c: the state machine */
void pf_task_init(pf_task *t, pf_client *c);
/* Called by the pump when t's transfer finished. */
void pf_task_on_done(lua_State *L, int cidx, pf_client *c, pf_task *t, CURLcode rc);
/* Called by the pump when t's timer is due. */
void pf_task_on_timer(lua_State *L, int cidx, pf_client *c, pf_task *t);
/* Stop everything t has running at c and unlink it; leaves the state as it is. */
void pf_task_detach(pf_task *t);
int pf_task_in_flight(const pf_task *t);
void pf_task_open(lua_State *L);
/* Lua: costs[0] as {amount=, unit=} (tostring gives "0.2 USD"), or (all) the list of every
 * cost; nil when there is none. */
void pf_push_costs(lua_State *L, const pf_cost *costs, size_t n, int all);
int pf_task_submit_start(pf_client *c, pf_task *t, pf_err *err);
/* Look up and store upload results (client.c). */
const char *pf_cache_get(pf_client *c, const char *key);
void pf_cache_put(pf_client *c, const char *key, const char *value, double ttl);
/* Single flight: claim key for an upload (0), or learn that another task holds it (1). */
int pf_cache_claim(pf_client *c, const char *key);
void pf_cache_release(pf_client *c, const char *key);
/* The adapter context for one request of c (a fresh trace id in trace). */
pf_ctx pf_client_ctx(const pf_client *c, char trace[37]);
int pf_task_schedule(pf_client *c, pf_task *t, double delay, pf_timer_action action);
/* Start t's deadline (task_timeout seconds from now; 0 = none). */
void pf_task_start_deadline(pf_client *c, pf_task *t);
/* Write what the journal does not yet know of t (its id, its end, its file); a failure is kept
 * on t (journal_error) and on c (reported by the next poll), and tried again later. */
void pf_task_journal(pf_client *c, pf_task *t);
/* Give up t's claims in the journal (it is closed: another run may follow it). */
void pf_task_unclaim(pf_client *c, pf_task *t);

#endif
