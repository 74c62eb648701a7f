/* adapter.h: the interface every gateway wire protocol implements, and the request/status records. */
#ifndef PF_ADAPTER_H
#define PF_ADAPTER_H

#include <curl/curl.h>
#include <jansson.h>

#include "../engine/error.h"

typedef enum pf_mode {
  PF_MODE_TEXT = 0, PF_MODE_IMAGE, PF_MODE_TRANSITION, PF_MODE_FUSION, PF_MODE_EXTEND,
  PF_MODE__COUNT
} pf_mode;

typedef enum pf_state {
  PF_ST_SUBMITTING = 0,  /* the submit request is queued or in flight */
  PF_ST_QUEUED,
  PF_ST_RUNNING,
  PF_ST_SUCCEEDED,
  PF_ST_FAILED,
  PF_ST_MODERATED,
  PF_ST_CANCELED,
  PF_ST_UNCONFIRMED,     /* submit sent, outcome unknown: never resubmitted automatically */
  PF_ST__COUNT
} pf_state;

const char *pf_mode_name(pf_mode m);
int pf_mode_from_name(const char *s);   /* -1 if unknown */
const char *pf_state_name(pf_state s);
int pf_state_terminal(pf_state s);

/* One reference: a name, 1..PF_MAX_REF_IMAGES images, and a type ("subject" or "background",
 * NULL = the gateway's default). */
#define PF_MAX_REF_IMAGES 3
typedef struct pf_ref {
  char *name;
  char *images[PF_MAX_REF_IMAGES];
  size_t nimages;
  char *type;
} pf_ref;

/* The unified request, already validated by lua/pixflow/validate.lua.
 * model is the gateway's own model name. Unset strings are NULL; unset ints are noted.
 * Image fields hold URLs; local paths are replaced by upload results before build_submit. */
typedef struct pf_request {
  pf_mode mode;
  char *model;
  char *prompt;
  char *negative_prompt;
  pf_ref *refs;
  size_t nrefs;
  char *image, *first_frame, *last_frame, *extend_from;
  int duration;             /* 0 = not set */
  char *resolution, *aspect_ratio;
  int has_seed;
  long long seed;
  int audio, watermark;     /* -1 = not set, else 0/1 */
  int count;                /* videos per task, 0 = not set */
  int expand_prompt;        /* -1 = not set, else 0/1 */
} pf_request;

void pf_request_free(pf_request *rq);

/* What an adapter needs to know of its client. Adapters keep no state of their own. */
typedef struct pf_ctx {
  const char *provider;     /* preset name, for error messages */
  const char *base_url;     /* no trailing slash */
  const char *api_key;      /* goes into headers only */
  double wall_now;          /* Unix seconds, for turning absolute times into ETAs */
  const char *auth;         /* how the key is sent, for adapters that serve several presets:
                               "bearer" or "api-key" */
  const char *trace_id;     /* a fresh UUID for this request where the adapter has trace_ids
                               (PixVerse's Ai-trace-id), else "" */
  int ref_names;            /* send reference names (off: rewrite @name by position) */
} pf_ctx;

/* One part of a multipart/form-data body: a value, or a file streamed from disk. */
typedef struct pf_part {
  char *name;
  char *value;              /* or NULL when file is set */
  char *file;               /* local path */
  char *filename;           /* as sent; NULL: the file's base name */
  char *type;               /* MIME type, or NULL */
  long long size;           /* file: its size in bytes when the engine knows it (it hashed the
                               file), and the bytes are then read on its worker; -1: unknown */
} pf_part;

/* An HTTP request built by an adapter; the transport takes ownership of every field. */
typedef struct pf_http_req {
  const char *method;       /* static string: "GET", "POST" */
  char *url;
  char *body;               /* NULL for GET and for multipart */
  size_t body_len;
  struct curl_slist *headers;
  pf_part *parts;           /* multipart/form-data, when nparts > 0 */
  size_t nparts;
  int no_auth;              /* informational: the request carries no API key (other hosts) */
} pf_http_req;

void pf_http_req_free(pf_http_req *r);
/* Append a form part; value or file (the other NULL). -1 on allocation failure. */
int pf_http_add_part(pf_http_req *r, const char *name, const char *value, const char *file,
                     const char *filename, const char *type);

/* One upload of a reference image: a local file, or (for gateways that take URLs only through
 * their upload) a public URL. Adapters may need several steps (DashScope: a policy, then the
 * object store); state carries what one step learnt for the next. */
typedef struct pf_upload {
  const char *path;         /* local file, or NULL */
  const char *url;          /* public URL to import, or NULL */
  const char *filename;     /* base name to send */
  const char *mime;         /* image/png, image/jpeg, image/webp, image/gif */
  const char *model;        /* gateway model (DashScope binds uploads to a model) */
  int step;
  json_t *state;            /* owned by the upload record */
  char *result;             /* out: the URL, id or oss:// URL that goes into the request */
  double ttl;               /* out: seconds the result stays usable, 0 unknown */
} pf_upload;

typedef struct pf_video {
  char *url;
  double expires_at;        /* Unix seconds, 0 if unknown */
} pf_video;

/* One amount a gateway reports as the task's price, with its unit: "credits" (PixVerse's
 * Resp.credits, apimart's credits_cost) or a currency ("USD": apimart's cost). A reply may carry
 * several; the first one kept is the task's `cost`, all of them are its `costs`. */
#define PF_MAX_COSTS 4
typedef struct pf_cost {
  double amount;            /* always finite */
  char unit[16];
} pf_cost;

/* A parsed status response. */
typedef struct pf_status {
  pf_state state;
  int progress;             /* 0-100, -1 unknown */
  double eta;               /* seconds until done as the gateway estimates, < 0 unknown */
  pf_cost costs[PF_MAX_COSTS];
  size_t ncosts;
  pf_video *videos;
  size_t nvideos;
  pf_err err;               /* for failed / moderated / canceled */
  int need_result;          /* done, but the videos come from a separate result call */
} pf_status;

void pf_status_init(pf_status *st);
void pf_status_free(pf_status *st);

/* Each function returns 0 on success and -1 with err filled on failure.
 * parse_* receive the HTTP status and the raw body (NUL-terminated, len bytes).
 * A submit refusal must use a definite kind (invalid, auth, quota, rate_limit, moderated);
 * protocol errors and 5xx provider errors leave a submit unconfirmed (never resent).
 * Members after parse_status are optional (NULL: the gateway has no such call). */
typedef struct pf_adapter {
  const char *name;
  int (*build_submit)(const pf_ctx *ctx, const pf_request *rq, pf_http_req *out, pf_err *err);
  int (*parse_submit)(const pf_ctx *ctx, long http, const char *body, size_t len,
                      char **task_id, pf_err *err);
  int (*build_status)(const pf_ctx *ctx, const char *task_id, pf_http_req *out, pf_err *err);
  int (*parse_status)(const pf_ctx *ctx, long http, const char *body, size_t len,
                      pf_status *st, pf_err *err);
  /* uploads: build the current step's request; parse returns 0 when up->result is set, 1 when
   * another step follows (step was advanced), -1 on error */
  int (*build_upload)(const pf_ctx *ctx, pf_upload *up, pf_http_req *out, pf_err *err);
  int (*parse_upload)(const pf_ctx *ctx, pf_upload *up, long http, const char *body, size_t len,
                      pf_err *err);
  int upload_urls;          /* public URLs must go through the upload too (PixVerse img_id) */
  int trace_ids;            /* every request carries a fresh UUID (ctx->trace_id) */
  /* a separate result call, after parse_status set need_result */
  int (*build_result)(const pf_ctx *ctx, const char *task_id, pf_http_req *out, pf_err *err);
  int (*parse_result)(const pf_ctx *ctx, long http, const char *body, size_t len,
                      pf_status *st, pf_err *err);
  /* list the account's tasks created between two Unix times (page from 1): lets an unconfirmed
   * submit be found again */
  int (*build_list)(const pf_ctx *ctx, const char *model, double from, double to, int page,
                    pf_http_req *out, pf_err *err);
  /* *items gets a JSON array of {id, status, created (Unix seconds, -1 when the reply does not
   * say)}; *more: 1 another page follows, 0 this was the last, -1 the reply does not tell (the
   * caller must then treat the list as incomplete); *total the tasks the list announces for the
   * whole query, -1 if it does not say */
  int (*parse_list)(const pf_ctx *ctx, long http, const char *body, size_t len, json_t **items,
                    int *more, long *total, pf_err *err);
  /* the list as a status poll of every in-flight task (engine/listpoll.c): the same query, of
   * the tasks in one status word (NULL: every status); list_polls names the words of unfinished
   * tasks in the order a task passes them. Offered only where a row says all that an unfinished
   * task's status reply says, so that only a change needs the task's own status. Rows from
   * parse_list then carry state too (a pf_state; -1: the gateway does not know the task). */
  int (*build_list_poll)(const pf_ctx *ctx, const char *model, const char *status, double from,
                         double to, int page, pf_http_req *out, pf_err *err);
  const char *list_polls;
  /* cancel: 0 when the gateway accepted the cancel */
  int (*build_cancel)(const pf_ctx *ctx, const char *task_id, pf_http_req *out, pf_err *err);
  int (*parse_cancel)(const pf_ctx *ctx, long http, const char *body, size_t len, pf_err *err);
  /* what an accepted submit's reply says the task costs (PixVerse's Resp.credits): adds to
   * st's costs only, after parse_submit succeeded on the same reply */
  void (*submit_costs)(const pf_ctx *ctx, long http, const char *body, size_t len, pf_status *st);
} pf_adapter;

const pf_adapter *pf_adapter_find(const char *name);
/* NULL-terminated list of every adapter. */
extern const pf_adapter *const pf_adapters[];
extern const pf_adapter pf_adapter_apimart;
extern const pf_adapter pf_adapter_pixverse;
extern const pf_adapter pf_adapter_dashscope;
extern const pf_adapter pf_adapter_jiekou;
extern const pf_adapter pf_adapter_baicai;

/* ---- helpers shared by the adapters (adapters/common.c) ---- */

/* base + path (path starts with '/'); NULL on allocation failure. */
char *pf_url_join(const char *base, const char *path);
/* Append "Name: value" built from fmt; returns 0, or -1 on allocation failure (list kept). */
int pf_header_add(struct curl_slist **list, const char *fmt, ...)
#if defined(__GNUC__)
  __attribute__((format(printf, 2, 3)))
#endif
  ;
/* Serialise obj (stolen) into out->body; -1 with a nomem error on failure. */
int pf_json_body(json_t *obj, pf_http_req *out, pf_err *err);
/* Parse a response body that must be a JSON object; NULL with a protocol error otherwise. */
json_t *pf_json_parse_object(const char *body, size_t len, long http, pf_err *err);
/* obj[key] if it is a string, else NULL. */
const char *pf_json_string(const json_t *obj, const char *key);
/* obj[key] as a number (integer, real, or a numeric string); returns 0 and sets *out if found. */
int pf_json_number(const json_t *obj, const char *key, double *out);
/* Set a status's error to "the gateway said success but sent no video" (a failure). */
void pf_status_no_video(pf_status *st, const char *provider);
/* Record a cost in st: a unit already there gets the new amount; a non-finite amount or one past
 * PF_MAX_COSTS is dropped. */
void pf_status_add_cost(pf_status *st, double amount, const char *unit);
/* Merge the costs of src into dst[*n] (PF_MAX_COSTS room) the same way: by unit, in order. */
void pf_costs_merge(pf_cost *dst, size_t *n, const pf_cost *src, size_t nsrc);
/* Add one video (url copied); -1 on allocation failure. */
int pf_status_add_video(pf_status *st, const char *url, double expires_at);
/* Does the text mention moderation (any language the gateways use)? */
int pf_text_says_moderated(const char *s);
/* Does the text say the balance or quota ran out? */
int pf_text_says_quota(const char *s);

/* Prompt references: '@' at the start or after a character that is not a name character,
 * followed by a name of [A-Za-z0-9_-] or UTF-8 bytes. lua/pixflow/validate.lua uses the same rule. */
int pf_name_byte(unsigned char c);
/* Add the auth header ctx->auth asks for ("api-key": API-KEY; otherwise Bearer). */
int pf_auth_header(const pf_ctx *ctx, struct curl_slist **h);
/* The path with the task id escaped into it at the one %s (fmt). NULL on failure. */
char *pf_url_with_id(const char *base, const char *fmt, const char *id);
/* A GET of base + fmt (one %s: the escaped id) with the auth header: the usual status call.
 * Returns 0, or -1 with a nomem error. */
int pf_get_by_id(const pf_ctx *ctx, const char *fmt, const char *id, pf_http_req *out, pf_err *err);
/* A POST of base + path with the auth header and the local file of up as multipart field
 * `field`: the usual upload call. Returns 0, or -1 with a nomem error. */
int pf_multipart_upload(const pf_ctx *ctx, const char *path, const char *field, const pf_upload *up,
                        pf_http_req *out, pf_err *err);
/* *id = the id in v (a JSON string or integer); consumes root. Without one: -1 and a protocol
 * error saying the gateway accepted but its reply lacks `where` (the outcome is then unknown). */
int pf_reply_id(json_t *root, const json_t *v, long http, const char *provider, const char *where,
                char **id, pf_err *err);
/* POST obj (consumed) as JSON to base + path with the auth and Content-Type headers. */
int pf_json_post(const pf_ctx *ctx, const char *path, json_t *obj, pf_http_req *out, pf_err *err);
/* A reply lacking the field `what`: a retryable protocol error (the next poll may do better). */
int pf_missing(pf_err *err, long http, const char *provider, const char *what);
/* A JSON error envelope's fields in the usual places: error.{message,type,code}, message, code. */
void pf_error_fields(const json_t *root, const char **message, const char **code_str,
                     char *code_buf, size_t code_cap);
/* A copy of the JSON integer or string value as a decimal string (exact for 64-bit ids). */
char *pf_json_id(const json_t *v);
/* Rewrite every @name that names a reference into the text fmt gives for its 1-based position
 * (fmt has one %zu). Returns a new string or NULL on allocation failure. */
char *pf_prompt_by_position(const char *prompt, const pf_ref *refs, size_t nrefs, const char *fmt);

#endif
