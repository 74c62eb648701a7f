/* error.c: pixflow.error objects: kinds, CURLcode mapping, UTF-8-safe messages. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "error.h"

static const char *const kind_names[PF_EK__COUNT] = {
  "none", "invalid", "auth", "quota", "rate_limit", "moderated", "not_found", "provider",
  "failed", "transport", "timeout", "protocol", "io", "nomem", "canceled", "unconfirmed",
};

const char *pf_errkind_name(pf_errkind k) {
  return (k >= 0 && k < PF_EK__COUNT) ? kind_names[k] : "provider";
}

void pf_err_clear(pf_err *e) {
  memset(e, 0, sizeof *e);
  e->retry_after = -1;
}

/* Length of the valid UTF-8 sequence at s (1..4), or 0 if it is invalid or cut off. */
static size_t utf8_seq(const unsigned char *s, size_t n) {
  unsigned c = s[0];
  size_t len;
  unsigned min;
  if (c < 0x80) return 1;
  if (c >= 0xC2 && c <= 0xDF) { len = 2; min = 0x80; }
  else if (c >= 0xE0 && c <= 0xEF) { len = 3; min = 0x800; }
  else if (c >= 0xF0 && c <= 0xF4) { len = 4; min = 0x10000; }
  else return 0;
  if (n < len) return 0;
  unsigned cp = c & (0x3F >> (len - 1));
  for (size_t i = 1; i < len; i++) {
    if ((s[i] & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (s[i] & 0x3F);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
  return len;
}

void pf_utf8_copy(char *dst, size_t cap, const char *src, size_t srclen) {
  size_t o = 0, i = 0;
  if (cap == 0) return;
  const unsigned char *s = (const unsigned char *)src;
  while (i < srclen && s[i]) {
    size_t n = utf8_seq(s + i, srclen - i);
    if (n == 0) {
      if (o + 1 >= cap) break;
      dst[o++] = '?';
      i++;
      continue;
    }
    if (o + n >= cap) break;
    /* control characters would garble a terminal: print them as spaces */
    if (n == 1 && (s[i] < 0x20 || s[i] == 0x7F)) dst[o++] = ' ';
    else memcpy(dst + o, s + i, n), o += n;
    i += n;
  }
  dst[o] = '\0';
}

void pf_err_set(pf_err *e, pf_errkind kind, long status, const char *code, const char *fmt, ...) {
  char tmp[sizeof e->message];
  va_list ap;
  e->kind = kind;
  e->status = status;
  e->retry_after = -1;
  e->not_charged = 0;
  e->retryable = (kind == PF_EK_TRANSPORT || kind == PF_EK_RATE_LIMIT ||
                  (kind == PF_EK_PROVIDER && (status == 0 || pf_http_retryable(status))));
  pf_utf8_copy(e->code, sizeof e->code, code ? code : "", code ? strlen(code) : 0);
  va_start(ap, fmt);
  int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
  va_end(ap);
  if (n < 0) tmp[0] = '\0';
  pf_utf8_copy(e->message, sizeof e->message, tmp, strlen(tmp));
}

void pf_err_append(pf_err *e, const char *fmt, ...) {
  char tmp[2 * sizeof e->message];
  size_t have = strlen(e->message);
  memcpy(tmp, e->message, have + 1);
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(tmp + have, sizeof tmp - have, fmt, ap);
  va_end(ap);
  pf_utf8_copy(e->message, sizeof e->message, tmp, strlen(tmp));
}

/* Length of the key text at s, or 0: the whole key; or its start or its end, of at least
 * PF_REDACT_MIN bytes (what is left of it where a message was cut). Cheap when there is none:
 * most positions fail on their first byte. */
static size_t secret_run(const char *s, const char *key, size_t klen, const unsigned char *starts) {
  unsigned char ch = (unsigned char)s[0];
  if (!(starts[ch >> 3] & (1u << (ch & 7)))) return 0;
  size_t n = 0;
  while (n < klen && s[n] == key[n]) n++;   /* the key, or its start */
  size_t best = n >= PF_REDACT_MIN ? n : 0;
  for (size_t k = 1; k + PF_REDACT_MIN <= klen && best < klen; k++) {   /* its end */
    if (s[0] != key[k] || klen - k <= best) continue;
    if (strncmp(s, key + k, klen - k) == 0) best = klen - k;
  }
  return best;
}

int pf_redact_secret(char *buf, size_t cap, const char *secret) {
  size_t klen = secret ? strlen(secret) : 0;
  if (klen < PF_REDACT_MIN || cap == 0) return 0;
  unsigned char starts[32] = { 0 };         /* the bytes a run can start with */
  for (size_t k = 0; k + PF_REDACT_MIN <= klen; k++) {   /* the key's start, or an end's */
    starts[(unsigned char)secret[k] >> 3] |= (unsigned char)(1u << ((unsigned char)secret[k] & 7));
  }
  size_t len = strlen(buf), i = 0, run = 0;
  while (i < len && !(run = secret_run(buf + i, secret, klen, starts))) i++;
  if (!run) return 0;
  char tmp[2048];
  size_t o = 0;
  static const char mark[] = "<redacted>";
  for (i = 0; i < len && o < sizeof tmp - 1;) {
    run = secret_run(buf + i, secret, klen, starts);
    if (run) {
      size_t m = sizeof mark - 1;
      if (o + m >= sizeof tmp) break;
      memcpy(tmp + o, mark, m);
      o += m;
      i += run;
    } else {
      tmp[o++] = buf[i++];
    }
  }
  tmp[o] = '\0';
  memset(buf, 0, cap);                      /* nothing of the key stays past the new end */
  pf_utf8_copy(buf, cap, tmp, o);
  return 1;
}

void pf_err_redact(pf_err *e, const char *secret) {
  pf_redact_secret(e->message, sizeof e->message, secret);
  pf_redact_secret(e->code, sizeof e->code, secret);
}

/* Stable names for the CURLcodes a user can meet; the rest print as CURLE_<n>. */
#define PF_CURLCODES(X) \
  X(UNSUPPORTED_PROTOCOL) X(URL_MALFORMAT) X(COULDNT_RESOLVE_PROXY) X(COULDNT_RESOLVE_HOST) \
  X(COULDNT_CONNECT) X(WEIRD_SERVER_REPLY) X(REMOTE_ACCESS_DENIED) X(HTTP2) X(PARTIAL_FILE) \
  X(WRITE_ERROR) X(READ_ERROR) X(OUT_OF_MEMORY) X(OPERATION_TIMEDOUT) X(RANGE_ERROR) \
  X(HTTP_POST_ERROR) X(SSL_CONNECT_ERROR) X(ABORTED_BY_CALLBACK) X(TOO_MANY_REDIRECTS) \
  X(GOT_NOTHING) X(SEND_ERROR) X(RECV_ERROR) X(SSL_CERTPROBLEM) X(SSL_CIPHER) \
  X(PEER_FAILED_VERIFICATION) X(BAD_CONTENT_ENCODING) X(FILESIZE_EXCEEDED) X(SSL_CACERT_BADFILE) \
  X(HTTP2_STREAM) X(HTTP3) X(QUIC_CONNECT_ERROR) X(PROXY) X(SSL_SHUTDOWN_FAILED) X(AGAIN)

static const char *curlcode_name(CURLcode rc, char *tmp, size_t n) {
  switch (rc) {
#define PF_CASE(name) case CURLE_##name: return #name;
    PF_CURLCODES(PF_CASE)
#undef PF_CASE
    default: snprintf(tmp, n, "CURLE_%d", (int)rc); return tmp;
  }
}

void pf_err_from_curl(pf_err *e, CURLcode rc, const char *errbuf) {
  char tmp[32];
  const char *name = curlcode_name(rc, tmp, sizeof tmp);
  const char *text = (errbuf && errbuf[0]) ? errbuf : curl_easy_strerror(rc);
  pf_errkind kind = PF_EK_TRANSPORT;
  if (rc == CURLE_OPERATION_TIMEDOUT) kind = PF_EK_TIMEOUT;
  else if (rc == CURLE_OUT_OF_MEMORY) kind = PF_EK_NOMEM;
  pf_err_set(e, kind, 0, name, "%s", text);
  /* a timed-out request is worth another try; a certificate problem is not */
  e->retryable = !(rc == CURLE_PEER_FAILED_VERIFICATION || rc == CURLE_SSL_CACERT_BADFILE ||
                   rc == CURLE_SSL_CERTPROBLEM || rc == CURLE_UNSUPPORTED_PROTOCOL ||
                   rc == CURLE_URL_MALFORMAT || rc == CURLE_OUT_OF_MEMORY ||
                   rc == CURLE_TOO_MANY_REDIRECTS);
}

int pf_http_retryable(long status) {
  return status == 408 || status == 429 || status == 500 || status == 502 || status == 503 ||
         status == 504;
}

pf_errkind pf_kind_for_http(long status) {
  switch (status) {
    case 400: case 413: case 422: return PF_EK_INVALID;
    case 401: return PF_EK_AUTH;
    case 402: return PF_EK_QUOTA;
    case 403: return PF_EK_AUTH;
    case 404: case 410: return PF_EK_NOT_FOUND;
    case 408: return PF_EK_TIMEOUT;
    case 429: return PF_EK_RATE_LIMIT;
    default: return status >= 400 && status < 500 ? PF_EK_INVALID : PF_EK_PROVIDER;
  }
}
