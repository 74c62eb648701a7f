/* sandbox.h: shared state of pixflow-sandbox, the local emulator of the Pixverse gateways. */
#ifndef SBX_SANDBOX_H
#define SBX_SANDBOX_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <microhttpd.h>

enum {
  SBX_GW_APIMART = 0, SBX_GW_PIXVERSE, SBX_GW_QUICKROUTER, SBX_GW_DASHSCOPE, SBX_GW_JIEKOU,
  SBX_GW_BAICAI, SBX_GW__COUNT
};

typedef struct sbx_stats {
  unsigned long submits;     /* submit requests received (valid or not) */
  unsigned long tasks;       /* tasks created */
  unsigned long polls;       /* status requests */
  unsigned long downloads;   /* result downloads started */
  unsigned long uploads;
  unsigned long errors;      /* 4xx/5xx replies sent */
  unsigned long faults;      /* requests a fault plan spoiled */
  unsigned long resumed;     /* downloads served from an offset (Range requests) */
  unsigned long lists;       /* task-list pages served (DashScope) */
  unsigned long list_rejected;  /* task-list queries refused (a window over 24 hours) */
  unsigned long list_status; /* of the pages served, those of one status (status=) */
  unsigned long upload_sum;  /* the last accepted upload's bytes, FNV-1a 64 (specs compare it) */
  unsigned long sending;     /* results of a requested size (#size=) being sent now ... */
  unsigned long most_sending;   /* ... and the most at once (specs bound a client's downloads) */
} sbx_stats;

/* How a task ends; chosen from magic words in the prompt (docs/sandbox.md). */
typedef enum sbx_outcome {
  SBX_OK = 0, SBX_FAIL, SBX_MODERATE, SBX_NEVER, SBX_NO_VIDEO, SBX_NOT_MP4
} sbx_outcome;

typedef struct sbx_task {
  struct sbx_task *next;     /* hash chain */
  int gw;
  char id[64];
  char key[128];             /* the API key that created it (extend must come from the same) */
  double created;            /* wall clock */
  double seconds;            /* how long it takes */
  sbx_outcome outcome;
  unsigned long long result_size;  /* 0 = the small clip */
  int no_length;             /* #nolength: the result is sent without a Content-Length (chunked) */
  char mode[16];
  char model[64];
  char prompt_head[64];
  int nvideos;               /* results (baicai's number_of_videos) */
  int canceled;
  int stuck;                 /* never finishes (PixVerse: a reused Ai-trace-id) */
  size_t pad;                /* #bigreply=N: status replies carry N bytes of padding */
  double url_ttl;            /* #urlttl=S: result URLs expire S seconds after they are issued */
  char pub_id[64];           /* the id the gateway shows, where it differs from id (DashScope) */
  int finish_polls;          /* #polls=N: the task ends at its Nth status request (benchmarks) */
  int polled;                /* status requests answered so far */
  double estimate;           /* #estimate=S: the duration the gateway reports; default seconds */
  double fail_at;            /* #failat=S: a #fail or #moderate task ends so at S seconds (0: at its end) */
  char reply[64];            /* #reply=NAME[,NAME]: other reply shapes the gateway is seen to send */
  int credits;               /* what the task costs, in the gateway's credits (PixVerse) */
} sbx_task;

typedef struct sbx {
  struct MHD_Daemon *daemon;
  unsigned port;
  double task_seconds;
  uint64_t rng;
  pthread_mutex_t lock;      /* guards everything below */
  sbx_stats stats[SBX_GW__COUNT];
  sbx_task **buckets;
  size_t nbuckets, ntasks;
  struct sbx_object **objects;   /* uploads, policies: key -> value, per gateway */
  unsigned long long next_id64;  /* PixVerse ids: beyond 2^53, as the platform's are */
  int wake_fd;               /* write end of the pipe main() waits on */
  char *tls_cert, *tls_key;  /* PEM: serve HTTPS (tests of certificate checks) */
  double clock;              /* the virtual clock (POST /_sandbox/clock), 0 = the real one */
} sbx;

extern sbx g_sbx;
extern const char *const sbx_gw_names[SBX_GW__COUNT];

double sbx_now(void);
/* "https" when the sandbox serves TLS, else "http": for the URLs it hands out. */
const char *sbx_scheme(void);
/* A uniform number in [0, 1) from the seeded generator; the caller holds g_sbx.lock. */
double sbx_rand01(void);

/* store.c (every function takes the lock itself) */
int sbx_store_init(size_t nbuckets);
/* Create a task; the id is made from prefix and random characters of alphabet. */
sbx_task *sbx_task_new(int gw, const char *key, const char *prompt, const char *mode,
                       const char *prefix, const char *alphabet, size_t nrand);
/* A fresh 64-bit id (PixVerse img_id / video_id), as digits. */
void sbx_id64(char *out, size_t n);
/* Mark a task canceled if it is still queued; returns 1 if it was, 0 if too late, -1 unknown. */
int sbx_task_cancel(int gw, const char *id);
/* Copies of up to max tasks of gw made with key, created in [from, to]; returns how many. */
size_t sbx_task_list(int gw, const char *key, double from, double to, sbx_task *out, size_t max);
/* Copies of every task of gw and key created in [from, to], oldest first (malloc'd; *n of them),
 * or NULL when there are none or memory ran out (*n = 0). */
sbx_task *sbx_task_list_all(int gw, const char *key, double from, double to, size_t *n);
/* Set when a task was created (seeded task lists). */
void sbx_task_set_created(int gw, const char *id, double created);
/* POST /_sandbox/tasks {"gateway": "dashscope", "key", "model", "count", "created", "spacing"}:
 * count finished tasks made at created, created + spacing, ... (a long task list). Returns how
 * many were made, or -1 with *why set. */
long sbx_dashscope_seed(const char *key, const char *model, long count, double created,
                        double spacing, const char **why);
void sbx_task_set_pub(int gw, const char *id, const char *pub_id);
/* Set a field of a stored task (after creation). */
void sbx_task_set(int gw, const char *id, const char *model, int nvideos, int stuck);
void sbx_task_set_credits(int gw, const char *id, int credits);
/* Does text (a prompt, or a task's reply field) ask for the reply shape name with
 * #reply=NAME[,NAME...] (docs/sandbox.md)? */
int sbx_reply_is(const char *text, const char *name);
/* Objects: uploads and policies, key -> value, per gateway. */
void sbx_object_put(int gw, const char *key, const char *value);
/* Copies the value into out (n bytes); returns 1 when found. */
int sbx_object_get(int gw, const char *key, char *out, size_t n);
/* Copy of the task with that id on gateway gw, or 0 if there is none. */
int sbx_task_get(int gw, const char *id, sbx_task *out);
/* The same for a status request: counts the poll first (#polls=N tasks end by count). */
int sbx_task_poll(int gw, const char *id, sbx_task *out);
/* Set (now > 0) or clear (now == 0) the virtual clock that sbx_now() reads. */
void sbx_clock_set(double now);
void sbx_count(int gw, size_t offset);
#define SBX_COUNT(gw, field) sbx_count((gw), offsetof(sbx_stats, field))
/* A sized result's sending began (+1) or ended (-1): stats' sending and most_sending. */
void sbx_sending(int gw, int delta);
json_t *sbx_stats_json(void);
void sbx_reset(void);

/* Progress of a task at time now: phase 0 queued, 1 running, 2 done; pct 0-100. */
typedef struct sbx_phase { int phase; int pct; double left; } sbx_phase;
sbx_phase sbx_task_phase(const sbx_task *t, double now);

/* faults.c: fault plans. Routes classify a request; actions say what goes wrong with it. */
enum { SBX_R_SUBMIT = 0, SBX_R_STATUS, SBX_R_RESULT, SBX_R_UPLOAD, SBX_R_CANCEL, SBX_R_LIST,
       SBX_R_DOWNLOAD, SBX_R__COUNT };
enum { SBX_F_NONE = 0,
       SBX_F_RESET,          /* close the connection before any response: nothing is done */
       SBX_F_RESET_AFTER,    /* do the request (a submit creates its task), then close */
       SBX_F_REPLY,          /* answer status/body/retry_after instead: nothing is done */
       SBX_F_REPLY_AFTER,    /* do the request, then answer status/body instead */
       SBX_F_TRUNCATE,       /* do the request, send the first fraction of the body, end early */
       SBX_F_STALL,          /* do the request, send a fraction, stay silent seconds, drop */
       SBX_F_HUGE,           /* answer size bytes of never-ending JSON: nothing is done */
       SBX_F_CUT,            /* download: send a fraction of the file, then drop */
       SBX_F_REDIRECT,       /* answer a redirect to location: nothing is done */
       SBX_F__COUNT };
typedef struct sbx_fault {
  int action;
  unsigned status;
  char retry_after[64];
  char ctype[64];
  char location[512];
  char *body;                /* owned */
  size_t body_len;
  double fraction, seconds;
  unsigned long long size;
} sbx_fault;
int sbx_route_kind(int gw, const char *method, const char *path);
/* Replace the plan with the JSON body; NULL, or what is wrong with it. */
const char *sbx_faults_set(const char *body, size_t len);
void sbx_faults_clear(void);
json_t *sbx_faults_json(void);
/* The fault for this request, if the plan has one (out->body is the caller's to free). */
int sbx_fault_take(int gw, int route, sbx_fault *out);
/* Faults that act before the request is handled: the reply (MHD_NO closes the connection). */
enum MHD_Result sbx_fault_reply_now(struct MHD_Connection *c, int gw, const sbx_fault *f);
/* Faults that act on the handler's own reply: set for the thread while it handles the request. */
void sbx_fault_begin(sbx_fault *f);
void sbx_fault_end(void);
sbx_fault *sbx_fault_current(void);
/* A response that promises len bytes and sends fraction of them (after which it may stall). */
struct MHD_Response *sbx_partial_response(const char *body, size_t len, double fraction,
                                          double seconds);

/* http.c: replies */
/* A reply exactly as given, whatever the fault plan says. */
enum MHD_Result sbx_reply_plain(struct MHD_Connection *c, int gw, unsigned status,
                                const char *ctype, const char *body, size_t len,
                                const char *retry_after);
enum MHD_Result sbx_reply(struct MHD_Connection *c, int gw, unsigned status, const char *ctype,
                          const char *body, size_t len, const char *retry_after);
/* Reply with obj (stolen) as JSON. */
enum MHD_Result sbx_reply_json(struct MHD_Connection *c, int gw, unsigned status, json_t *obj,
                               const char *retry_after);
/* The result file URL of a task, signed to expire like the gateways' (#urlttl=S; 24 h). */
void sbx_result_url(int gw, const sbx_task *t, char *out, size_t n);
const char *sbx_header(struct MHD_Connection *c, const char *name);
/* The bearer token, or NULL. */
const char *sbx_bearer(struct MHD_Connection *c);

/* One field of a multipart/form-data body. Files keep their size and first bytes only. */
typedef struct sbx_field {
  char name[64];
  char filename[128];
  char value[2048];
  size_t size;
  unsigned char head[12];
  int is_file;
  unsigned long sum;         /* a file's bytes, FNV-1a 64 */
} sbx_field;

#define SBX_MAX_FIELDS 16

/* An upload accepted: counted, and its bytes' sum kept (stats upload_sum). */
void sbx_upload_seen(int gw, const sbx_field *f);

/* One request to a gateway, after its prefix was stripped. */
typedef struct sbx_req {
  struct MHD_Connection *conn;
  const char *method;
  const char *path;          /* e.g. "/v1/tasks/task_01..." */
  const char *body;
  size_t body_len;
  const sbx_field *fields;   /* multipart bodies */
  size_t nfields;
  int gw;
} sbx_req;

const sbx_field *sbx_form(const sbx_req *r, const char *name);
/* Is this field a PNG, JPEG, WebP or GIF file (by its bytes)? */
int sbx_is_image(const sbx_field *f);

enum MHD_Result sbx_apimart(const sbx_req *r);
enum MHD_Result sbx_pixverse(const sbx_req *r);
enum MHD_Result sbx_dashscope(const sbx_req *r);
enum MHD_Result sbx_dashscope_oss(const sbx_req *r);
enum MHD_Result sbx_jiekou(const sbx_req *r);
enum MHD_Result sbx_baicai(const sbx_req *r);
/* Serve an uploaded image back (baicai's fullPath URLs). */
enum MHD_Result sbx_serve_upload(struct MHD_Connection *c, int gw, const char *key);

/* Helpers shared by the gateway emulations. */
int sbx_is_http_url(const char *s);
size_t sbx_utf8_len(const char *s);
/* Is s one of the NULL-terminated list? */
int sbx_one_of(const char *s, const char *const *list);
/* Check every @name of prompt against names[0..n): NULL if all match and are followed by a space
 * or the end, else why not (the name goes to bad). */
const char *sbx_check_names(const char *prompt, const char *const *names, size_t n, char *bad, size_t badn);

#endif
