/* sandbox.h: shared state of pixflow-sandbox, the local emulator of the Pixverse gateways. */
#ifndef SBX_SANDBOX_H
#define SBX_SANDBOX_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <microhttpd.h>

enum { SBX_GW_APIMART = 0, SBX_GW__COUNT };

typedef struct sbx_stats {
  unsigned long submits;     /* submit requests received (valid or not) */
  unsigned long tasks;       /* tasks created */
  unsigned long polls;       /* status requests */
  unsigned long downloads;   /* result downloads started */
  unsigned long uploads;
  unsigned long errors;      /* 4xx/5xx replies sent */
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
  char mode[16];
  char prompt_head[64];
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
  int wake_fd;               /* write end of the pipe main() waits on */
} sbx;

extern sbx g_sbx;
extern const char *const sbx_gw_names[SBX_GW__COUNT];

double sbx_now(void);

/* store.c (every function takes the lock itself) */
int sbx_store_init(size_t nbuckets);
/* Create a task; the id is made from prefix and random characters of alphabet. */
sbx_task *sbx_task_new(int gw, const char *key, const char *prompt, const char *mode,
                       const char *prefix, const char *alphabet, size_t nrand);
/* Copy of the task with that id on gateway gw, or 0 if there is none. */
int sbx_task_get(int gw, const char *id, sbx_task *out);
void sbx_count(int gw, size_t offset);
#define SBX_COUNT(gw, field) sbx_count((gw), offsetof(sbx_stats, field))
json_t *sbx_stats_json(void);
void sbx_reset(void);

/* Progress of a task at time now: phase 0 queued, 1 running, 2 done; pct 0-100. */
typedef struct sbx_phase { int phase; int pct; double left; } sbx_phase;
sbx_phase sbx_task_phase(const sbx_task *t, double now);

/* http.c: replies */
enum MHD_Result sbx_reply(struct MHD_Connection *c, int gw, unsigned status, const char *ctype,
                          const char *body, size_t len, const char *retry_after);
/* Reply with obj (stolen) as JSON. */
enum MHD_Result sbx_reply_json(struct MHD_Connection *c, int gw, unsigned status, json_t *obj,
                               const char *retry_after);
/* The result file URL of a task (base URL of this server + gateway files path). */
void sbx_result_url(int gw, const char *id, char *out, size_t n);
const char *sbx_header(struct MHD_Connection *c, const char *name);
/* The bearer token, or NULL. */
const char *sbx_bearer(struct MHD_Connection *c);

/* One request to a gateway, after its prefix was stripped. */
typedef struct sbx_req {
  struct MHD_Connection *conn;
  const char *method;
  const char *path;          /* e.g. "/v1/tasks/task_01..." */
  const char *body;
  size_t body_len;
} sbx_req;

enum MHD_Result sbx_apimart(const sbx_req *r);

/* Helpers shared by the gateway emulations. */
int sbx_is_http_url(const char *s);
size_t sbx_utf8_len(const char *s);

#endif
