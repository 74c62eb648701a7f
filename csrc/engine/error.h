/* error.h: the error record the engine fills: a kind from a fixed taxonomy, a code, a message. */
#ifndef PF_ERROR_H
#define PF_ERROR_H

#include <curl/curl.h>

#include "util.h"

/* The kinds are the stable, documented taxonomy; pf_errkind_name() gives their Lua spelling. */
typedef enum pf_errkind {
  PF_EK_NONE = 0,
  PF_EK_INVALID,      /* the gateway (or pixflow) refused the request as malformed */
  PF_EK_AUTH,         /* missing, wrong or unauthorised API key */
  PF_EK_QUOTA,        /* balance or quota exhausted */
  PF_EK_RATE_LIMIT,   /* too many requests or concurrent tasks */
  PF_EK_MODERATED,    /* content refused by moderation */
  PF_EK_NOT_FOUND,    /* unknown task id or resource */
  PF_EK_PROVIDER,     /* the gateway failed (5xx, unexpected error) */
  PF_EK_FAILED,       /* the generation itself failed */
  PF_EK_TRANSPORT,    /* network: resolve, connect, TLS, reset */
  PF_EK_TIMEOUT,      /* a deadline fired */
  PF_EK_PROTOCOL,     /* the response was not what the gateway documents */
  PF_EK_IO,           /* local disk */
  PF_EK_NOMEM,        /* allocation failed */
  PF_EK_CANCELED,     /* canceled by the user or the gateway */
  PF_EK_UNCONFIRMED,  /* a submit whose outcome is unknown: maybe accepted, maybe billed */
  PF_EK__COUNT
} pf_errkind;

typedef struct pf_err {
  pf_errkind kind;
  long status;          /* HTTP status, 0 if none */
  int retryable;        /* the same request may succeed later */
  double retry_after;   /* seconds pixflow waits before retrying, as the server asked (capped at
                         * retry.after_max), < 0 if none */
  int not_charged;      /* nothing was charged (pushed as charged = false) */
  char code[64];        /* stable token: gateway code/type, or a CURLcode name */
  char message[512];    /* readable, valid UTF-8, never contains the API key */
} pf_err;

const char *pf_errkind_name(pf_errkind k);

void pf_err_clear(pf_err *e);
/* Fill e; fmt is printf-style. Invalid UTF-8 in the result is replaced with '?'. */
void pf_err_set(pf_err *e, pf_errkind kind, long status, const char *code, const char *fmt, ...)
#if defined(__GNUC__)
  __attribute__((format(printf, 5, 6)))
#endif
  ;
/* Append printf-style text to e->message (cut at a character boundary if it is too long). */
void pf_err_append(pf_err *e, const char *fmt, ...)
#if defined(__GNUC__)
  __attribute__((format(printf, 2, 3)))
#endif
  ;
/* Map a finished transfer's CURLcode to a transport or timeout error. */
void pf_err_from_curl(pf_err *e, CURLcode rc, const char *errbuf);
/* Map a bare HTTP status (no usable body) to a kind, for when a gateway body says nothing. */
pf_errkind pf_kind_for_http(long status);
int pf_http_retryable(long status);

/* Copy at most cap-1 bytes of src into dst, cutting at a character boundary and replacing
 * invalid UTF-8 with '?'. */
void pf_utf8_copy(char *dst, size_t cap, const char *src, size_t srclen);

/* Keys are redacted from text that a gateway (or libcurl) wrote: the whole key, and its start or
 * its end of at least PF_REDACT_MIN bytes (what is left where a message was cut), become
 * "<redacted>". Secrets shorter than that are left alone (no real key is). */
#define PF_REDACT_MIN 8
/* Redact secret from the NUL-terminated text in buf (cap bytes); returns 1 if it found any. */
int pf_redact_secret(char *buf, size_t cap, const char *secret);
/* The same for e's message and code. */
void pf_err_redact(pf_err *e, const char *secret);

#endif
