/* proto.h: a wire protocol as a table (endpoints, status words, error codes, JSON paths) and the
 * generic engine that reads replies and builds the usual requests from it. */
#ifndef PF_PROTO_H
#define PF_PROTO_H

#include "adapter.h"

/* JSON paths: keys joined by '.', from the object the envelope leaves (the whole reply, or
 * PixVerse's Resp). "data[0]" is data's first element when data is an array, else data itself.
 * "" is that object itself. */
const json_t *pf_json_at(const json_t *v, const char *path);

/* Gateway error codes by the kind they mean: each a list of codes split by spaces; a code ending
 * in '*' stands for every code that starts with the rest. */
typedef struct pf_kinds {
  const char *invalid, *auth, *quota, *rate_limit, *moderated, *not_found, *provider;
} pf_kinds;

/* The kind kinds gives to code, else dflt (also for a NULL code). */
pf_errkind pf_kinds_find(const pf_kinds *kinds, const char *code, pf_errkind dflt);

/* Status words by what they mean, each a list split by spaces (an integer status: its digits).
 * Any other word: running (keep polling). */
typedef struct pf_words {
  const char *queued, *running, *succeeded;
  const char *failed;       /* failed; moderated when the reason or its code says so */
  const char *moderated, *canceled;
  const char *result;       /* done, but the videos come from the separate result call */
  const char *gone;         /* the gateway does not know the task: a not_found error */
} pf_words;

/* The error a word stands for: failed: when the reply gives none. */
typedef struct pf_outcome {
  const char *code, *message;
} pf_outcome;

/* Where a success's videos are. */
typedef struct pf_videos {
  const char *list;       /* path of an array of video objects; NULL: the object itself is one */
  const char *url[4];     /* paths in a video object, the first non-empty string wins */
  int url_lists;          /* a URL may also be an array of URLs (each non-empty one taken) */
  const char *expires_at; /* path of the absolute expiry (Unix seconds) */
  const char *ttl;        /* path of the seconds the URL lives from now */
  double lifetime;        /* seconds a URL lives as the gateway documents it, 0 unknown */
} pf_videos;

typedef struct pf_proto pf_proto;

/* A task list read a page at a time (DashScope's): the query's names, a row's paths, the reply's
 * paging fields. */
typedef struct pf_listing {
  const char *path;           /* GET, below ctx->base_url */
  const char *from, *to;      /* the window's start and end ... */
  const char *stamp;          /* ... as strftime writes them (UTC) */
  const char *model, *status; /* the filters (one not asked for is left out of the query) */
  const char *page, *size;    /* the page asked for (from 1) and its rows ... */
  int rows;                   /* ... this many */
  const char *items;          /* the rows' array */
  const char *id, *state[2];  /* in a row: the task id, its status word (the first string) */
  const char *created;        /* when the gateway made it ... */
  double created_unit;        /* ... in units of this many seconds (0.001: milliseconds) */
  const char *total, *pages, *page_no, *page_size;   /* the reply's paging */
} pf_listing;

/* The error envelope, for gateways whose errors a table can say. A reply is an error when its
 * HTTP status is not 2xx, or when it has the member `when`. */
typedef struct pf_errors {
  const char *when;
  const char *message[3];     /* paths of the message, the first string wins */
  const char *code;           /* path of the gateway's code: codes maps it to a kind */
  int code_fields;            /* without one, the code is the usual envelope's (pf_error_fields) */
  pf_kinds codes;
  long http;                  /* an HTTP status that decides the kind by itself (0: none)... */
  pf_errkind http_kind;       /* ...and that kind */
  int moderation_text;        /* a message that mentions moderation makes the error moderated */
  int protocol_below_400;     /* below 400, an error without a code is a protocol error */
  int retry_by_kind;          /* retryable: rate limits and retryable provider errors only (else:
                                 rate limits and every retryable HTTP status) */
} pf_errors;

struct pf_proto {
  const char *name;           /* as messages name the gateway */
  /* endpoints: paths below ctx->base_url, %s = the escaped task id */
  const char *submit;         /* POST */
  const char *status;         /* GET */
  const char *result;         /* GET, the separate result call */
  const char *upload;         /* POST, multipart */
  const char *upload_field;   /* its file part */
  /* every call's headers, when they are more than the key (json: the request has a JSON body);
   * -1 on allocation failure */
  int (*headers)(const pf_ctx *ctx, struct curl_slist **h, int json);
  /* errors: a table, or code (returns the object the answer is in, or NULL with err filled) */
  pf_errors errors;
  const json_t *(*envelope)(const pf_proto *p, long http, const json_t *root, pf_err *err);
  /* a reply in another shape (a relay's): the table that reads it, else p */
  const pf_proto *(*shape)(const pf_proto *p, long http, const json_t *root);
  /* the submit's reply */
  const char *task_id, *task_id_named;   /* named: as messages say it, NULL = the path */
  /* the status reply */
  const char *state, *state_named;
  int state_integer;          /* the status is a JSON integer */
  pf_words words;
  pf_outcome on_failed, on_moderated, on_canceled, on_gone;
  const char *progress;       /* 0-100 */
  const char *eta;            /* seconds left */
  void (*extras)(const pf_ctx *ctx, const json_t *obj, pf_status *st);   /* costs, computed ETAs */
  pf_videos videos;
  const char *reason[6];      /* paths of a failure's reason, the first string wins */
  const char *reason_code;    /* path of a failure's code */
  int reason_nonempty;        /* an empty reason or code counts as none */
  /* the upload's reply */
  const char *upload_result, *upload_result_named;
  int upload_ids;             /* the result may be a JSON integer (kept as its digits) */
  const char *upload_missing; /* the error code when the reply has no result */
  double upload_ttl;          /* seconds the result stays usable, 0 unknown */
  /* the task list, when the gateway has one (list.path) */
  pf_listing list;
};

/* "out of memory building the <name> request"; returns -1. */
int pf_proto_nomem(const pf_proto *p, pf_err *err);
/* Parse the reply and open its envelope: the object the answer is in (borrowed from *root, which
 * the caller frees), or NULL with err filled and *root NULL. */
const json_t *pf_proto_reply(const pf_proto *p, long http, const char *body, size_t len,
                             json_t **root, pf_err *err);
/* The table-driven envelope (p->errors). */
const json_t *pf_proto_errors(const pf_proto *p, long http, const json_t *root, pf_err *err);
/* Fill err for an error reply, the rules of p->errors after the kind is known: moderation text,
 * the default message, retryable (retry_status: the status that decides it); returns NULL. */
const json_t *pf_proto_fail(const pf_proto *p, pf_errkind kind, long http, long retry_status,
                            const char *code, const char *msg, pf_err *err);

/* A GET of base + fmt (%s: the id) with the table's headers. */
int pf_proto_get(const pf_proto *p, const pf_ctx *ctx, const char *fmt, const char *id,
                 pf_http_req *out, pf_err *err);
/* POST obj (consumed) as JSON to base + path with the table's headers. */
int pf_proto_post_json(const pf_proto *p, const pf_ctx *ctx, const char *path, json_t *obj,
                       pf_http_req *out, pf_err *err);

/* The pf_adapter members a table answers. */
int pf_proto_parse_submit(const pf_proto *p, const pf_ctx *ctx, long http, const char *body,
                          size_t len, char **task_id, pf_err *err);
int pf_proto_parse_status(const pf_proto *p, const pf_ctx *ctx, long http, const char *body,
                          size_t len, pf_status *st, pf_err *err);
int pf_proto_build_upload(const pf_proto *p, const pf_ctx *ctx, pf_upload *up, pf_http_req *out,
                          pf_err *err);
int pf_proto_parse_upload(const pf_proto *p, const pf_ctx *ctx, pf_upload *up, long http,
                          const char *body, size_t len, pf_err *err);
/* The task list (p->list): the tasks made in [from, to] (Unix seconds), of model and in status
 * (each NULL: any), page from 1; and a page's rows as pf_adapter.parse_list gives them, each
 * also with its state (pf_state, -1 for a word saying the gateway does not know the task). */
int pf_proto_build_list(const pf_proto *p, const pf_ctx *ctx, const char *model, const char *status,
                        double from, double to, int page, pf_http_req *out, pf_err *err);
int pf_proto_parse_list(const pf_proto *p, const pf_ctx *ctx, long http, const char *body,
                        size_t len, json_t **items, int *more, long *total, pf_err *err);

/* PF_PROTO_CALLS(P) defines P_parse_submit, P_build_status, P_parse_status, P_build_upload,
 * P_parse_upload, P_build_list, P_build_list_poll and P_parse_list: the members above with the
 * table P bound, for a pf_adapter initialiser (those a gateway does not use are left unused).
 * PF_PROTO_MEMBERS(P) names the three every table answers. */
#if defined(__GNUC__)
#define PF_PROTO_UNUSED __attribute__((unused))
#else
#define PF_PROTO_UNUSED
#endif
#define PF_PROTO_CALLS(P)                                                                        \
  PF_PROTO_UNUSED static int P##_parse_submit(const pf_ctx *c, long h, const char *b, size_t n,  \
                                              char **id, pf_err *e) {                            \
    return pf_proto_parse_submit(&P, c, h, b, n, id, e);                                         \
  }                                                                                              \
  PF_PROTO_UNUSED static int P##_build_status(const pf_ctx *c, const char *id, pf_http_req *o,   \
                                              pf_err *e) {                                       \
    return pf_proto_get(&P, c, P.status, id, o, e);                                              \
  }                                                                                              \
  PF_PROTO_UNUSED static int P##_parse_status(const pf_ctx *c, long h, const char *b, size_t n,  \
                                              pf_status *st, pf_err *e) {                        \
    return pf_proto_parse_status(&P, c, h, b, n, st, e);                                         \
  }                                                                                              \
  PF_PROTO_UNUSED static int P##_build_upload(const pf_ctx *c, pf_upload *up, pf_http_req *o,    \
                                              pf_err *e) {                                       \
    return pf_proto_build_upload(&P, c, up, o, e);                                               \
  }                                                                                              \
  PF_PROTO_UNUSED static int P##_parse_upload(const pf_ctx *c, pf_upload *up, long h,            \
                                              const char *b, size_t n, pf_err *e) {              \
    return pf_proto_parse_upload(&P, c, up, h, b, n, e);                                         \
  }                                                                                              \
  PF_PROTO_UNUSED static int P##_build_list_poll(const pf_ctx *c, const char *m, const char *s,  \
                                                 double f, double t, int pg, pf_http_req *o,     \
                                                 pf_err *e) {                                    \
    return pf_proto_build_list(&P, c, m, s, f, t, pg, o, e);                                     \
  }                                                                                              \
  PF_PROTO_UNUSED static int P##_build_list(const pf_ctx *c, const char *m, double f, double t,  \
                                            int pg, pf_http_req *o, pf_err *e) {                 \
    return pf_proto_build_list(&P, c, m, NULL, f, t, pg, o, e);                                  \
  }                                                                                              \
  PF_PROTO_UNUSED static int P##_parse_list(const pf_ctx *c, long h, const char *b, size_t n,    \
                                            json_t **it, int *more, long *tot, pf_err *e) {      \
    return pf_proto_parse_list(&P, c, h, b, n, it, more, tot, e);                                \
  }

#define PF_PROTO_MEMBERS(P)                                                                      \
  .parse_submit = P##_parse_submit, .build_status = P##_build_status, .parse_status = P##_parse_status

#endif
