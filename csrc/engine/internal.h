/* internal.h: the engine's records (client, task, transfer) and the functions its files share.
 *
 * Ownership (who frees what):
 * - A pf_client is malloc'd by pf_client_new and freed by pf_client_free. It owns the curl multi
 *   handle, the heap of due times, the per-host slot table and copies of provider, base URL and
 *   API key, and it links every task attached to it.
 * - A pf_task is malloc'd by submit or attach and freed by pf_task_free (the host decides when).
 *   It owns its request record, its id, its videos, and its current transfer (easy handle,
 *   buffers, open file). A task is linked into its client's task list until it is freed or the
 *   client is freed; detaching stops its transfer and its timer, and leaves it readable.
 * - libcurl callbacks (http.c) only write into pf_xfer fields, which live in the task: malloc'd
 *   memory whose life the host's garbage collector cannot shorten.
 * - Tasks that changed in a pump are linked on the client's change list (no allocation inside
 *   the pump): the host reads and drops them (pf_client_next_change). A task is "pending" while
 *   it has a transfer, a timer or a listed change; pf_task_settle keeps the client's count of
 *   pending tasks, and a task that stops being pending inside a pump is listed (quietly) so
 *   that the host hears of it.
 */
#ifndef PF_INTERNAL_H
#define PF_INTERNAL_H

#include <stdint.h>
#include <stdio.h>

#include <curl/curl.h>

#include "../adapters/adapter.h"
#include "buf.h"
#include "cadence.h"
#include "engine.h"
#include "error.h"
#include "listpoll.h"
#include "heap.h"  /* not "sched.h": <pthread.h> includes <sched.h>, and -Icsrc/engine would give it ours */
#include "util.h"
#include "worker.h"

/* Easy handles kept for reuse: enough for the transfers of a few hosts at the default slots. */
#define PF_EASY_POOL 32
#define PF_CHUNK_POOL 32           /* download and upload chunk buffers kept for reuse (4 MiB) */
/* Below this many in the pool, the worker makes more (PF_JOB_CHUNKS), their pages already
 * touched: a fresh 128 KiB buffer costs the pump an mmap and 32 page faults as it fills. */
#define PF_CHUNK_LOW 16
/* A download's bytes are gathered in chunks of this size, each written by the worker in one
 * write (an upload's are read in chunks of it too). */
#define PF_DL_CHUNK (128 * 1024)
#define PF_READ_AHEAD 4            /* an upload's chunks asked of the worker ahead of libcurl */
/* Header lines that carry the API key live in slots of this size (pf_header_add's line cap)
 * in the client's secret slabs, PF_SECRET_SLOTS to a slab (http.c). */
#define PF_SECRET_SLOT 1024
#define PF_SECRET_SLOTS 64
/* The most a status, result or cancel reply may hold, decoded (max_body_bytes if lower).
 * [INFERENCE] the largest documented status reply (providers.md: a task with four signed video
 * URLs) is a few KB; 64 KiB leaves room ten times over, and inflating it (a compressed bomb) or
 * reading it costs a pump well under a millisecond (W5 in docs/benchmarks.md). */
#define PF_STATUS_BODY_MAX ((size_t)64 * 1024)


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


typedef enum pf_xkind {
  PF_X_NONE = 0, PF_X_UPLOAD, PF_X_SUBMIT, PF_X_STATUS, PF_X_RESULT, PF_X_CANCEL, PF_X_DOWNLOAD,
  PF_X_LIST
} pf_xkind;
/* What a task does when its timer is due. Follow-up requests (the next upload step, the result
 * call, a cancel) are scheduled for "now" rather than started inside a completion handler. */
typedef enum pf_timer_action {
  PF_AT_POLL = 0, PF_AT_DOWNLOAD, PF_AT_UPLOAD, PF_AT_RESULT, PF_AT_CANCEL, PF_AT_SUBMIT,
  PF_AT_LOOKUP
} pf_timer_action;

/* A reference image that must be uploaded before the submit, and where its result goes. */
typedef struct pf_upsrc {
  char key[160];             /* cache key */
  char *path, *url;          /* source: a local file, or a URL to import */
  char *filename;
  char *label;               /* the request's field that named it first ("references[1].image") */
  const char *mime;
  int claimed;               /* this task holds the cache claim for key */
  int hashing;               /* a local file whose content key the worker is computing */
  long long size;            /* a local file's size when it was hashed (-1: not yet) */
  pf_upload up;
} pf_upsrc;

typedef struct pf_slot {
  char **field;              /* an image field of the task's request */
  size_t src;                /* index into the task's upload sources */
} pf_slot;

/* A file part of an upload, its bytes read on the worker (never on the caller's thread: a read
 * can wait on the disk) a chunk at a time, PF_READ_AHEAD chunks ahead of libcurl, which pauses
 * the transfer when it has sent all that came back and continues when the next chunk does. */
typedef struct pf_upread {
  struct pf_xfer *x;
  struct pf_source *src;     /* the file on the worker (worker.h) */
  const char *path;          /* the part's file name (x->req's), for errors */
  long long size;            /* the bytes sent (the Content-Length counts them) */
  long long next;            /* the next offset to ask the worker for */
  long long given;           /* bytes handed to libcurl */
  unsigned id;               /* this pass over the file; a rewind starts another, and what the
                                worker returns for an earlier one is dropped */
  int asked;                 /* reads of this pass posted and not back */
  char *buf[PF_READ_AHEAD];  /* chunks back from the worker, in order, as a ring ... */
  size_t len[PF_READ_AHEAD];
  size_t head, n, pos;       /* ... its first, how many, and how far into the first */
  int paused;                /* libcurl waits for the next chunk */
  pf_err err;                /* why it could not be read (kind NONE: it could) */
} pf_upread;

/* One HTTP exchange. Only the callbacks in http.c and the functions there write it. */
/* How a transfer ended, as the state machine needs to know it (the transport reads libcurl). */
typedef enum pf_xend {
  PF_XE_OK = 0,
  PF_XE_FAILED,              /* any other failure: pf_xfer_error says what */
  PF_XE_TOO_BIG,             /* a download past max_download_bytes */
  PF_XE_HTTP,                /* a download the server answered with an HTTP error (x->http) */
  PF_XE_WRITE,               /* the file could not be written */
  PF_XE_RANGE,               /* the server would not continue from an offset */
} pf_xend;

typedef struct pf_xfer {
  CURL *easy;
  pf_xkind kind;
  int active;                /* added to the multi handle */
  int waiting;               /* queued for a host slot */
  int failed;                /* a queued one that could not start: the pump reports it as done */
  CURLcode start_rc;         /* ... with this code */
  pf_err start_err;          /* ... and this error */
  size_t host;               /* index into the transport's hosts */
  struct pf_xfer *qnext;     /* in a host's queue, or the list of failed starts */
  void *owner;               /* whose transfer it is (the transport never looks inside) */
  double deadline;           /* the owner's deadline on the transport's clock; 0: none */
  pf_http_req req;           /* owns url, body, headers, parts for the transfer's lifetime */
  curl_mime *mime;           /* the multipart body built from req.parts */
  pf_buf resp;               /* API response body */
  /* a download's file (worker.h's pf_sink): its bytes are gathered here in chunks and written
   * on the worker, never on the caller's thread (a write can wait on the disk: the kernel's
   * dirty-page throttling held a pump 4 ms in W5's 400 MB row) */
  struct pf_sink *sink;
  char *chunk;               /* bytes not yet handed to the worker ... */
  size_t chunklen;           /* ... how many */
  size_t inflight;           /* bytes handed over and not yet written */
  int disk_paused;           /* paused until the worker has written enough of them ... */
  int disk_listed;           /* ... and on the transport's list of such transfers (dnext) */
  struct pf_xfer *dnext;
  pf_upread *up;             /* an upload's file parts read on the worker (nup of them) ... */
  size_t nup;
  int read_failed;           /* ... one could not be read: the transfer ends with its err (kept
                                there, not here: every task has a pf_xfer, few upload) */
  int write_failed;          /* the worker could not write a chunk: the transfer ends ... */
  int werr;                  /* ... with this errno */
  unsigned char head[8];
  size_t headlen;
  int not_mp4, too_big;
  curl_off_t max_bytes;      /* a download's limit (max_download_bytes), 0: none */
  curl_off_t written;
  curl_off_t resume_from;    /* a download continued with a Range request from this byte */
  double retry_after;        /* from a Retry-After header, < 0 if none */
  char date[40];             /* the reply's Date header as it came ("": none; parsed only where
                                it is used, pf_xfer_server_date: curl_getdate's sscanf was 15%
                                of a W2 pump's CPU, for every reply) ... */
  double server_date_at;     /* ... and our wall clock when it came */
  int sends;                 /* times libcurl was about to send the request (a submit: once) */
  pf_xend end;               /* set when it ended (pf_net_next_done, pf_xfer_take_failed) ... */
  CURLcode rc;               /* ... with libcurl's code ... */
  long http;                 /* ... and the HTTP status (0: none) */
  char errbuf[CURL_ERROR_SIZE];
  /* the pump's budget reaches into libcurl: a write callback called once the pump's time is
   * spent pauses the transfer and queues it, and a later pump continues it in its turn
   * (pf_net_budget) */
  struct pf_net *net;        /* the transport it runs on (NULL: a blocking pf_http_perform) */
  unsigned grant;            /* the pump in which it is its turn (one chunk past the budget) */
  int paused;
  struct pf_xfer *pnext;     /* in the transport's list of paused transfers */
  int dlslot;                /* a download holding one of the transport's download slots */
  int dlwait;                /* a download waiting for one (in the transport's dlq, by qnext) */
} pf_xfer;

typedef struct pf_host {
  char name[256];
  int active;
  struct pf_xfer *qhead, *qtail;   /* transfers that wait for a slot */
} pf_host;

/* The transport (http.c): the multi handle, the per-host slots and queues, the handle pool, the
 * key's header lines. It knows transfers and their opaque owners, never tasks or clients. */
typedef struct pf_net {
  CURLM *multi;
  double pump_end;           /* monotonic time the current pump's budget ends (0: no limit) */
  unsigned pump_seq;         /* bumped by every pump */
  pf_xfer *paused, *paused_tail;   /* transfers paused at a budget's end, in order, to go on */
  unsigned fresh;            /* transfers added since the last curl_multi_perform ... */
  int throttled;             /* ... and whether one waits for a later pump because of them */
  pf_host *hosts;
  size_t nhosts;
  CURL *pool[PF_EASY_POOL];  /* reset easy handles for the next transfers */
  size_t npool;
  size_t disk_bytes;         /* downloads' bytes handed to the worker and not yet written, of
                                every transfer (ended ones' last chunks too): past PF_DISK_CAP
                                the downloads pause, so a network faster than the disk (2000
                                small downloads, each synced) cannot fill the memory */
  pf_xfer *dwait;            /* the transfers paused for the disk */
  char *chunks[PF_CHUNK_POOL];   /* downloads' chunk buffers the worker gave back, for reuse */
  size_t nchunks;
  /* the pool is low: ask the worker for n chunks, their pages touched (0, or -1: not asked);
   * until they are back (pf_net_chunks_back) it is not asked again */
  int (*chunks_low)(void *ud, size_t n);
  int refilling;
  pf_secret_slab *slabs;     /* the header lines of requests in flight that carry the key */
  size_t nslabs;
  pf_xfer *fhead, *ftail;    /* queued transfers that failed to start, to be reported */
  /* downloads running (or queued for their host) at once, dl_in, at most http.c's dl_max():
   * every one of them receives in each curl_multi_perform, so their number bounds the work of
   * one; the rest wait here, in order */
  pf_xfer *dlq, *dlq_tail;
  size_t dl_in;
  /* where libcurl's sockets are closed (http.c's close_sock): handed to the worker while the
   * transport runs, closed where they are once its connections are being closed */
  struct pf_sockctl *sockctl;
  unsigned long started;     /* transfers handed to libcurl */
  const pf_opts *o;          /* the owner's limits (timeouts, sizes, slots, TLS) */
  /* where downloads' bytes go (the client's worker, jobs.c): a full chunk (buf, len: taken, also
   * on failure), 0 or -1 (no memory) ... */
  int (*sink_write)(void *ud, pf_xfer *x, char *buf, size_t len);
  /* ... and a download's file when its transfer is released without its owner taking it */
  void (*sink_close)(void *ud, struct pf_sink *s);
  void *sink_ud;
  /* where uploads' bytes come from (the client's worker, jobs.c; with sink_ud): an upload's file
   * (NULL: no memory), a read of len bytes at off into buf (taken, also on failure; 0 or -1),
   * and the file closed after its reads. Unset: libcurl reads the file itself. */
  struct pf_source *(*src_open)(void *ud, const char *path, long long size);
  int (*src_read)(void *ud, void *owner, struct pf_source *s, unsigned id, char *buf, size_t len,
                  long long off);
  void (*src_close)(void *ud, struct pf_source *s);
  unsigned read_ids;         /* the last pf_upread.id given */
  const char *api_key;       /* the key to keep out of ordinary heap memory, or NULL */
  double (*now)(const void *ud);   /* the clock deadlines are read on ... */
  const void *now_ud;        /* ... and its argument */
} pf_net;

struct pf_client {
  pf_net net;                /* the transport */
  int closed;
  const pf_adapter *adapter;
  char *provider, *base_url;
  char *api_key;             /* in its own secret mapping (pf_secret_map), wiped on close */
  size_t api_key_cap;
  pf_opts o;
  pf_heap heap;
  struct pf_task *tasks;     /* every attached task */
  size_t npending;           /* tasks pending (pf_task_settle) */
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
  struct pf_task *chead, *ctail;   /* tasks that changed, not yet read by the host */
  unsigned long finished;    /* transfers that ended (benchmarks tell pumps apart with it) */
  pf_durations durations;    /* how long this client's tasks took (cadence.h) */
  /* the journal the client's tasks are recorded in (journal.c), or NULL; the client holds a
   * reference. Records the pump could not write (disk full, another process writing) are kept
   * as owed by their tasks and tried again (jpending of them, next at jretry_at). */
  struct pf_journal *journal;
  size_t jpending;
  double jretry_at;
  pf_err jerr;               /* the last journal failure not yet reported by poll */
  int jerr_new;
  struct pf_worker *worker;  /* the blocking work: journal commits, download syncs (jobs.c) */
  struct pf_job *jsync, *jsync_tail;   /* jobs run here because the worker could not take them */
  size_t jobs_out;           /* jobs posted whose results the pump has not taken back */
  int left_work;             /* the last pump stopped at its budget with work left */
  pf_listpoll *lp;           /* the list poller (listpoll.c), made when first needed, or NULL */
};


struct pf_task {
  pf_client *client;         /* NULL once detached */
  struct pf_task *prev, *next;
  int counted;               /* counted in client->npending (pf_task_settle) */
  int listed;                /* on the client's list of changes not yet read by the host ... */
  int visible;               /* ... as a change (not only as no longer pending) */
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
  size_t nhashing;           /* upload sources still being hashed on the worker */
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
  char jkey[PF_JOURNAL_KEY_MAX];
  unsigned jrec;
  int jstate;                /* pf_state + 1 of the last status record, 0 none */
  int jpending;              /* a record is owed: the client tries again */
  int found_by_list;         /* the id came from the gateway's task list, not the submit reply */
  int jbusy;                 /* a job writing this task's records is on the worker ... */
  int jagain;                /* ... and more became owed meanwhile */
  int sending_job;           /* the "sending" record is being synced: the submit waits for it */
  int intent_job;            /* the intent is being written and synced: nothing leaves before */
  int output_job;            /* the output path is being checked (pf_output_check): nor before */
  int lookup_job;            /* a finished task list's journal questions are on the worker */
  int claim_job;             /* an attached task's claim is being taken: no poll before */
  int dl_finishing;          /* the download's file is being synced and renamed on the worker */
  int dl_opening;            /* the .part is being opened (and the path claimed) on the worker */
  int dl_removing;           /* given up: the worker removes the .part, then it reads failed */
  int dl_rec_owed;           /* its "download" record could not be written (a full disk): owed */
  unsigned dl_gen;           /* bumped by each download and abort: an older open is stale */
  pf_err jerr;
  int has_jerr;
  pf_lpslot lp;              /* its part in the client's list poller (listpoll.c) */
};

/* Records of a task the journal has (pf_task.jrec). */
enum { PF_JR_INTENT = 1, PF_JR_SENDING = 2, PF_JR_ACCEPTED = 4, PF_JR_DOWNLOAD = 8,
       PF_JR_DOWNLOADED = 16 };

/* jobs.c: a task's blocking work on the client's worker thread (worker.h), and its results */
enum { PF_JOB_RECORDS = 1, PF_JOB_SENDING, PF_JOB_FINISH, PF_JOB_RELEASE, PF_JOB_OPEN,
       PF_JOB_REMOVE, PF_JOB_HASH, PF_JOB_INTENT, PF_JOB_WRITE, PF_JOB_CLOSE, PF_JOB_READ,
       PF_JOB_OUTPUT, PF_JOB_LOOKUP, PF_JOB_CLAIM, PF_JOB_CHUNKS, PF_JOB_CLOSEFD };
/* t's intent (key, fields: a JSON object) written and synced on the worker, claiming its task
 * and output; t sends nothing until it is back (pf_task_first_step). 0, or -1 (e). */
int pf_task_post_intent(pf_client *c, pf_task *t, const char *key, json_t *fields, const char *stage,
                        pf_err *e);
/* What a new (or released) task does first once its intent is in the journal: its uploads (the
 * pump starts them), else the submit. 0 while the intent is still being written. */
int pf_task_first_step(pf_client *c, pf_task *t, pf_err *err);
/* Hash t's local files (its upload sources still hashing) on the worker; the uploads wait for
 * them (next_upload). 0, or -1 (err) when a job cannot be posted. */
int pf_task_post_hashes(pf_client *c, pf_task *t, pf_err *err);
/* Check on the worker that the video can be written at output (a submit's: the directory made,
 * a file created there once; posted before any other job of t, so that it is back first). */
int pf_task_post_output(pf_client *c, pf_task *t, const char *output, pf_err *err);
/* What the journal says about a finished task list of t's unconfirmed submit, asked on the
 * worker (two reads, which can wait on the disk): ids is a copy of the list's ids (an object,
 * taken), now_wall the end of the window. Back as j->f[1]: { r = pf_journal_rivals' answer,
 * since, until, owned = { id = true } } (j->rc -1: the journal could not tell). */
int pf_task_post_lookup(pf_client *c, pf_task *t, json_t *ids, double now_wall, pf_err *err);
/* Take the claim "task:<t->jkey>" of a task attached by id (t->id) on the worker: back with
 * j->rc 0 (this client follows it) or -1 and j->err (claimed by a live process, or the journal
 * failed). 0, or -1 (err). */
int pf_task_post_claim(pf_client *c, pf_task *t, pf_err *err);
/* outpath.c: whether a file can be written at path (absolute or relative to the working
 * directory): the file system's name and path limits (with ".part"), not a directory or a
 * device, its directory made when missing and, with probe, a file created there (and gone).
 * 0 with *abs (malloc'd, pf_abspath's form), or -1 with err (kind invalid, code bad_output,
 * a message that begins "output: PATH"; nomem; io when the working directory is gone). */
int pf_output_check(const char *path, int probe, char **abs, pf_err *err);
/* The "sending" record, synced, before t's submit may leave: 1 when it is written already, 0
 * when the worker is writing it (the submit starts when it is done), -1 (err) when it cannot be. */
int pf_task_sending_durable(pf_client *c, pf_task *t, pf_err *err);
/* A whole download: its file (s) synced and closed after every chunk before it was written,
 * the part renamed to the task's path, the directory synced, on the worker; the task hears of it
 * in a later pump. 0 (s is the job's), or -1 when it cannot be posted (s is still the caller's). */
int pf_task_finish_download(pf_client *c, pf_task *t, struct pf_sink *s);
/* A download's file closed on the worker once every chunk before it is written (no sync: what
 * a failed attempt keeps is synced when the download ends whole). Never fails: the job was made
 * with the file. s is the job's from now on. */
void pf_client_close_sink(pf_client *c, struct pf_sink *s);
/* The transport's connections (pf_net_detach_conns) closed on the worker, after its other jobs;
 * here when no job can be made. */
void pf_client_close_conns_later(pf_client *c, void *conns);
/* The transport's hooks (pf_net.sink_write, sink_close) for client c (ud). */
int pf_client_sink_write(void *ud, pf_xfer *x, char *buf, size_t len);
/* pf_net.chunks_low for client c (ud): n chunk buffers made and touched on the worker. */
int pf_client_chunks_low(void *ud, size_t n);
void pf_client_sink_close(void *ud, struct pf_sink *s);
struct pf_source *pf_client_src_open(void *ud, const char *path, long long size);
int pf_client_src_read(void *ud, void *owner, struct pf_source *s, unsigned id, char *buf, size_t len,
                       long long off);
void pf_client_src_close(void *ud, struct pf_source *s);
/* Open t's .part on the worker (continuing it when t->dl_resume), first recording where the file
 * goes when the journal does not know yet (which refuses another task's path); the download's
 * transfer starts when it is back. 0, or -1 when it cannot be posted. */
int pf_task_open_part(pf_client *c, pf_task *t);
/* A download given up: its .part removed on the worker, and then (pf_task_on_job) it reads
 * failed. 0, or -1 when the job cannot be posted. */
int pf_task_remove_part(pf_client *c, pf_task *t);
/* Remove a file on the worker, after the jobs posted before (a .part given up). */
void pf_client_remove_later(pf_client *c, const char *path);
/* Give up t's claims in the journal, after its records, on the worker. */
void pf_task_release_claims_later(pf_client *c, pf_task *t);
/* A finished job, oldest first (the caller frees it), or NULL. */
pf_job *pf_client_take_job(pf_client *c);
/* A finished job for its task (task.c; nothing when the task was detached). */
void pf_task_on_job(pf_client *c, pf_job *j);
/* t is being detached: what it still owes is posted (with its claims' release after it), and
 * no result of its jobs will come back to it. */
void pf_task_jobs_detach(pf_client *c, pf_task *t, int unclaim);

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

/* clock.c */
/* The engine's clock: every due time, back-off and deadline is read from it. */
double pf_client_now(const pf_client *c);
double pf_client_rand(pf_client *c);   /* uniform [0,1) */
/* The adapter context for one request of c (a fresh trace id in trace). */
pf_ctx pf_client_ctx(const pf_client *c, char trace[37]);

/* upload.c */
/* Look up and store upload results. */
const char *pf_cache_get(pf_client *c, const char *key);
void pf_cache_put(pf_client *c, const char *key, const char *value, double ttl);
/* Single flight: claim key for an upload (0), or learn that another task holds it (1). */
int pf_cache_claim(pf_client *c, const char *key);
void pf_cache_release(pf_client *c, const char *key);
/* The upload cache's key for a source: "url:<hex>|..." or "file:<hex>|...", hex the SHA-256 of
 * the URL or of the file's bytes, with the model where uploads are bound to it (DashScope). */
void pf_upload_key(const pf_client *c, const pf_task *t, int url, const char *hex, char *key,
                   size_t n);
/* Decide what each image field of t's request needs: nothing (a URL the gateway takes), a
 * cached upload result, or an upload before the submit (a local file is checked now, so that a
 * missing one fails before anything is sent, and hashed on the worker). */
int pf_plan_uploads(pf_client *c, pf_task *t, pf_err *err);

/* http.c: the transport */
/* Set n up (a multi handle) for an owner whose limits are o and whose clock is now(ud). */
int pf_net_init(pf_net *n, const pf_opts *o, double (*now)(const void *), const void *ud, pf_err *err);
/* Free n's multi handle, handle pool and secret slabs (every transfer has been released). */
void pf_net_free(pf_net *n);
/* n's multi handle (its cached connections) and pooled handles, taken from n for another thread
 * to close: closing 200 connections cost close() 0.6 ms (W5 complete200j). NULL when out of
 * memory (pf_net_free closes them). Every transfer has been released. */
void *pf_net_detach_conns(pf_net *n);
void pf_net_close_detached(void *conns);
/* Take ownership of req and start (or queue) it as x, for owner. On failure req is freed. This
 * is the one place a transfer begins: an x that already has one (pf_xfer_busy) is refused
 * ("busy"). deadline: the owner's, on n's clock (0: none); it clips the request's timeout. */
int pf_xfer_start(pf_net *n, pf_xfer *x, void *owner, pf_xkind kind, pf_http_req *req,
                  double deadline, pf_err *err);
/* The same for a download into the file s (the transfer's from now on; still the caller's on
 * failure), continuing at resume_from (0: from the start). Its bytes go to n->sink_write in
 * chunks; the owner takes s back when the transfer ends (pf_xfer_take_sink). */
int pf_xfer_start_download(pf_net *n, pf_xfer *x, void *owner, pf_http_req *req, struct pf_sink *s,
                           long long resume_from, double deadline, pf_err *err);
/* A download's transfer is over: the chunk not yet handed over goes to the worker, and its file
 * is the caller's. NULL when it has none. *ok is 0 when that last chunk could not be posted. */
struct pf_sink *pf_xfer_take_sink(pf_net *n, pf_xfer *x, int *ok);
/* The server's clock when x's reply came (its Date header, Unix seconds), 0 if it had none. */
double pf_xfer_server_date(const pf_xfer *x);
/* Sockets libcurl closes go to fn(ud, fd) (0: it took the fd; -1: closed at once) from now on,
 * until the transport's connections are detached or freed. A close can cost: one whose reply
 * was cut short (a status reply over its cap) sends a reset and frees the unread data, 0.1-0.2
 * ms of a pump in W5's bigurl row. */
void pf_net_set_sock_close(pf_net *n, int (*fn)(void *ud, int fd), void *ud);
/* jobs.c: fd closed on c's worker (pf_net_set_sock_close's fn, ud = c); 0, or -1 (no memory). */
int pf_client_sock_close(void *ud, int fd);
/* The chunks the worker made for the pool (pf_net.chunks_low): kept, or freed past PF_CHUNK_POOL. */
void pf_net_chunks_back(pf_net *n, char **bufs, size_t nbufs);
/* A chunk buffer the worker is done with, kept for the next chunks (freed past PF_CHUNK_POOL). */
void pf_net_chunk_put(pf_net *n, char *buf);
/* The worker is done with a chunk of len bytes (written or not), whoever's it was: downloads
 * paused while the worker was behind go on once it has caught up. */
void pf_net_chunk_written(pf_net *n, size_t len);
/* The worker wrote (rc 0) or could not write (rc -1, errno err_no) len bytes of sink s: when s is
 * still x's, x may go on (a transfer paused for the disk continues), or ends with a write error. */
void pf_xfer_chunk_done(pf_xfer *x, const struct pf_sink *s, size_t len, int rc, int err_no);
/* The worker read (rc 0: len bytes into buf, taken) or could not read (rc -1, e says why) the
 * chunk asked for pass id of source s: when that pass is still one of x's, libcurl gets the
 * bytes (a transfer waiting for them continues) or the transfer ends with the read error. */
void pf_xfer_read_done(pf_net *n, pf_xfer *x, const struct pf_source *s, unsigned id, char *buf,
                       size_t len, int rc, const pf_err *e);
/* Does x hold a transfer (running, queued, or failed to start and not yet reported)? */
int pf_xfer_busy(const pf_xfer *x);
/* Move the transfers (curl_multi_perform); wait at most ms for one to need it. */
void pf_net_perform(pf_net *n);
/* A pump begins: its budget ends at end (monotonic seconds); what the last one paused goes on. */
void pf_net_budget(pf_net *n, double end);
/* Did this pump pause a transfer at its budget's end, or leave a transfer queued that could have
 * started (so it must not wait)? */
int pf_net_paused(const pf_net *n);
void pf_net_wait(pf_net *n, int ms);
/* The next transfer that ended (detached from the multi handle and its slot; x->end, x->http
 * say how), or NULL; then the next queued one that could not start, or NULL. The owner hands
 * each to whatever handles its completion, which releases it. */
pf_xfer *pf_net_next_done(pf_net *n);
pf_xfer *pf_xfer_take_failed(pf_net *n);
/* Stop x wherever it is (running or queued) and free it. */
void pf_xfer_abort(pf_net *n, pf_xfer *x);
/* Run one request to its end, blocking (not a task's: resume's lookups). *offset (may be NULL)
 * gets the server's clock minus ours from its Date header (NAN without one). */
int pf_http_perform(pf_net *n, pf_http_req *req, long *http, pf_buf *resp, double *offset,
                    pf_err *err);
/* Free what a finished transfer holds (after its handler read it); its handle goes back to n's
 * pool (n NULL: freed). */
void pf_xfer_release(pf_net *n, pf_xfer *x);
/* Free a request that was built but never handed to pf_xfer_start, wiping its header lines (they
 * may carry the key) first. */
void pf_http_req_discard(pf_http_req *req);
/* Start queued transfers whose host has a free slot. */
void pf_xfer_pump_queues(pf_net *n);
/* Requests on the wire and waiting for a slot. */
void pf_net_counts(const pf_net *n, size_t *running, size_t *queued);
/* The host part of url, for per-host slots. */
void pf_url_host(const char *url, char *out, size_t n);
/* Did x's request provably never reach the gateway? (it never started; resolve, connect or TLS
 * handshake failed, or a timeout fired before the request was sent.) */
int pf_xfer_never_sent(const pf_xfer *x);
/* The error of a transfer that failed: why it never started, a fired deadline by its name, a
 * submit libcurl would have sent twice, else libcurl's own. */
void pf_xfer_error(const pf_net *n, const pf_xfer *x, pf_err *e);
/* libcurl's own error for x, and nothing more. */
void pf_xfer_curl_error(const pf_xfer *x, pf_err *e);
/* Name the deadline behind x's CURLE_OPERATION_TIMEDOUT: fills e with code connect_timeout,
 * low_speed, request_timeout or download_timeout and says which limit fired. */
void pf_xfer_timeout_error(const pf_net *n, const pf_xfer *x, pf_err *e);

/* download.c: a download's file */
/* The .part file of a download attempt, opened for writing: with resume, continuing the bytes
 * an earlier attempt left (*resume_from gets their count; fewer than 8, the verified head, and
 * it starts over). NULL with err (kind io) when it cannot be opened. */
FILE *pf_part_open(const char *part, int resume, long long *resume_from, pf_err *err);
/* Flush, fsync and close a finished .part; -1 (errno set) if any of it failed. */
int pf_part_close(FILE *fp);
/* Rename the whole .part to path and fsync its directory: the file is there, whole, after a
 * crash. -1 with err (kind io, code "rename"). */
int pf_part_commit(const char *part, const char *path, pf_err *err);

/* trace.c: the debug trace */
int pf_trace_open(pf_client *c, const char *path, pf_err *err);
void pf_trace_close(pf_client *c);
/* One line for t's finished transfer: what, where (the URL without its query), how it ended. */
void pf_trace_request(pf_client *c, const pf_task *t);
/* The same for any finished transfer (task_id may be NULL). */
void pf_trace_xfer(pf_client *c, const pf_xfer *x, const char *task_id, int retries);
/* url without user info and query ("?<redacted>"), into out. */
void pf_redact_url(const char *url, char *out, size_t n);

/* task.c: the state machine */
void pf_task_init(pf_task *t, pf_client *c);
/* Called by the pump when t's transfer ended (t->x says how). */
void pf_task_on_done(pf_client *c, pf_task *t);
/* Called by the pump when t's timer is due. */
void pf_task_on_timer(pf_client *c, pf_task *t);
/* Called by the pump with what a task-list round saw of t, and when (pf_listpoll_next). */
void pf_task_on_list(pf_client *c, pf_task *t, pf_state seen, double at);
/* Stop everything t has running at c and unlink it; leaves the state as it is. */
void pf_task_detach(pf_task *t);
/* Free what t holds (not t): it is detached. */
void pf_task_free_parts(pf_task *t);
/* Count t in (or out of) c->npending to match pf_task_pending: after every call that gave t
 * work or took it away. */
void pf_task_settle(pf_client *c, pf_task *t);
/* t changed: bump c's counter and list t for the host. Allocates nothing. */
void pf_task_changed(pf_client *c, pf_task *t);
int pf_task_submit_start(pf_client *c, pf_task *t, pf_err *err);
int pf_task_schedule(pf_client *c, pf_task *t, double delay, pf_timer_action action);
/* Start t's deadline (task_timeout seconds from now; 0 = none). */
void pf_task_start_deadline(pf_client *c, pf_task *t);
int pf_task_deadline_passed(const pf_client *c, const pf_task *t);
/* One attempt of t's download into its .part file (resuming verified bytes). */
int pf_task_start_download(pf_client *c, pf_task *t, pf_err *err);
void pf_task_set_error(pf_task *t, const pf_err *e);
/* Write t's intent in c's journal (key and fields, a JSON object) before anything of it is
 * sent; no key or no journal: nothing to write. -1 with e when it cannot be recorded. */
int pf_task_write_intent(pf_client *c, pf_task *t, const char *key, const char *fields, pf_err *e);
/* Write what the journal does not yet know of t (its id, its end, its file), on the worker
 * (jobs.c); a failure is kept on t (journal_error) and on c (reported by a later pump), and
 * tried again later. */
void pf_task_journal(pf_client *c, pf_task *t);
/* A record of t the journal could not take (e): kept as owed, tried again. */
void pf_task_journal_owed(pf_client *c, pf_task *t, const pf_err *e, const char *what);

#endif
