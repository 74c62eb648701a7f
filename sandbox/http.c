/* http.c: the sandbox's HTTP side: request bodies, routing, replies, result files, /_sandbox. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <strings.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include "clip.h"
#include "sandbox.h"

#define MAX_BODY (4u << 20)

typedef struct conn_state {
  char *body;
  size_t len, cap;
  int too_big;
  struct MHD_PostProcessor *pp;   /* multipart/form-data bodies */
  sbx_field fields[SBX_MAX_FIELDS];
  size_t nfields;
} conn_state;

const sbx_field *sbx_form(const sbx_req *r, const char *name) {
  for (size_t i = 0; i < r->nfields; i++)
    if (strcmp(r->fields[i].name, name) == 0) return &r->fields[i];
  return NULL;
}

/* The post processor hands each field over in pieces: files keep a size and their first
 * bytes, values their text (capped). */
static enum MHD_Result on_field(void *cls, enum MHD_ValueKind kind, const char *key,
                                const char *filename, const char *ctype, const char *enc,
                                const char *data, uint64_t off, size_t size) {
  (void)kind; (void)ctype; (void)enc;
  conn_state *st = cls;
  sbx_field *f = NULL;
  if (off == 0 || st->nfields == 0 || strcmp(st->fields[st->nfields - 1].name, key) != 0) {
    if (st->nfields == SBX_MAX_FIELDS) return MHD_YES;
    f = &st->fields[st->nfields++];
    memset(f, 0, sizeof *f);
    snprintf(f->name, sizeof f->name, "%s", key);
    f->sum = 14695981039346656037UL;         /* FNV-1a 64's offset basis */
    if (filename) {
      f->is_file = 1;
      snprintf(f->filename, sizeof f->filename, "%s", filename);
    }
  } else {
    f = &st->fields[st->nfields - 1];
  }
  for (size_t i = 0; i < size && f->size + i < sizeof f->head; i++) f->head[f->size + i] = (unsigned char)data[i];
  if (!f->is_file) {
    size_t have = strlen(f->value);
    size_t n = size < sizeof f->value - 1 - have ? size : sizeof f->value - 1 - have;
    memcpy(f->value + have, data, n);
    f->value[have + n] = '\0';
  }
  if (f->is_file)
    for (size_t i = 0; i < size; i++) f->sum = (f->sum ^ (unsigned char)data[i]) * 1099511628211UL;
  f->size += size;
  return MHD_YES;
}

const char *sbx_header(struct MHD_Connection *c, const char *name) {
  return MHD_lookup_connection_value(c, MHD_HEADER_KIND, name);
}

const char *sbx_bearer(struct MHD_Connection *c) {
  const char *a = sbx_header(c, "Authorization");
  if (!a || strncasecmp(a, "Bearer ", 7) != 0) return NULL;
  a += 7;
  while (*a == ' ') a++;
  return *a ? a : NULL;
}

enum MHD_Result sbx_reply(struct MHD_Connection *c, int gw, unsigned status, const char *ctype,
                          const char *body, size_t len, const char *retry_after) {
  sbx_fault *f = sbx_fault_current();
  if (f) {
    switch (f->action) {
      case SBX_F_RESET_AFTER:
        return MHD_NO;                      /* done, but the answer is lost on the way */
      case SBX_F_REPLY_AFTER:
        return sbx_reply_plain(c, gw, f->status, f->ctype, f->body ? f->body : "",
                               f->body ? f->body_len : 0, f->retry_after[0] ? f->retry_after : NULL);
      case SBX_F_TRUNCATE: case SBX_F_STALL: {
        struct MHD_Response *r = sbx_partial_response(body, len, f->fraction,
                                                      f->action == SBX_F_STALL ? f->seconds : 0);
        if (!r) return MHD_NO;
        MHD_add_response_header(r, "Content-Type", ctype);
        enum MHD_Result ret = MHD_queue_response(c, status, r);
        MHD_destroy_response(r);
        return ret;
      }
      default:
        break;
    }
  }
  return sbx_reply_plain(c, gw, status, ctype, body, len, retry_after);
}

enum MHD_Result sbx_reply_plain(struct MHD_Connection *c, int gw, unsigned status,
                                const char *ctype, const char *body, size_t len,
                                const char *retry_after) {
  struct MHD_Response *r = MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
  if (!r) return MHD_NO;
  MHD_add_response_header(r, "Content-Type", ctype);
  if (retry_after) MHD_add_response_header(r, "Retry-After", retry_after);
  /* the gateway's clock, as a real server sends it: the sandbox's own (which /_sandbox/clock
   * can set apart from the machine's), so that a client can be shown a gateway whose clock is
   * off */
  char date[64];
  time_t now = (time_t)sbx_now();
  struct tm tm;
  if (gmtime_r(&now, &tm) && strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S GMT", &tm))
    MHD_add_response_header(r, "Date", date);
  if (status >= 400 && gw >= 0) SBX_COUNT(gw, errors);
  enum MHD_Result ret = MHD_queue_response(c, status, r);
  MHD_destroy_response(r);
  return ret;
}

enum MHD_Result sbx_reply_json(struct MHD_Connection *c, int gw, unsigned status, json_t *obj,
                               const char *retry_after) {
  char *s = obj ? json_dumps(obj, JSON_COMPACT | JSON_REAL_PRECISION(10)) : NULL;
  json_decref(obj);
  if (!s) return sbx_reply(c, gw, 500, "text/plain", "sandbox out of memory", 21, NULL);
  enum MHD_Result ret = sbx_reply(c, gw, status, "application/json", s, strlen(s), retry_after);
  free(s);
  return ret;
}

void sbx_result_url(int gw, const sbx_task *t, char *out, size_t n) {
  snprintf(out, n, "%s://127.0.0.1:%u/%s/files/%s.mp4?expires=%.3f",
           g_sbx.tls_cert ? "https" : "http", g_sbx.port,
           sbx_gw_names[gw], t->id, sbx_now() + t->url_ttl);
}

/* A result of a requested size: the real clip followed by a top-level 'free' box of filler,
 * which MP4 readers skip. Sizes stay under 4 GiB so the box size fits in 32 bits. */
typedef struct blob { unsigned long long size, from; int gw; } blob;

/* A sized result's body: counted as being sent until libmicrohttpd frees it. */
static blob *blob_new(int gw, unsigned long long size, unsigned long long from) {
  blob *b = malloc(sizeof *b);
  if (!b) return NULL;
  b->size = size;
  b->from = from;
  b->gw = gw;
  sbx_sending(gw, 1);
  return b;
}

static void blob_free(void *cls) {
  blob *b = cls;
  sbx_sending(b->gw, -1);
  free(b);
}

static ssize_t blob_read(void *cls, uint64_t pos, char *buf, size_t max) {
  const blob *b = cls;
  if (pos >= b->size) return MHD_CONTENT_READER_END_OF_STREAM;
  size_t n = 0;
  while (n < max && pos < b->size) {
    if (pos < sandbox_clip_len) {
      buf[n++] = (char)sandbox_clip[pos++];
    } else if (pos < sandbox_clip_len + 8) {
      unsigned long long box = b->size - sandbox_clip_len;
      unsigned char hdr[8] = { (unsigned char)(box >> 24), (unsigned char)(box >> 16),
                               (unsigned char)(box >> 8), (unsigned char)box, 'f', 'r', 'e', 'e' };
      buf[n++] = (char)hdr[pos - sandbox_clip_len];
      pos++;
    } else {
      size_t chunk = max - n;
      if (chunk > b->size - pos) chunk = (size_t)(b->size - pos);
      memset(buf + n, 'x', chunk);
      n += chunk;
      pos += chunk;
    }
  }
  return (ssize_t)n;
}

static ssize_t blob_read_from(void *cls, uint64_t pos, char *buf, size_t max) {
  const blob *b = cls;
  return blob_read(cls, pos + b->from, buf, max);
}

static enum MHD_Result serve_file(struct MHD_Connection *c, int gw, const char *name) {
  char id[64];
  size_t l = strlen(name);
  if (l < 5 || l - 4 >= sizeof id || strcmp(name + l - 4, ".mp4") != 0)
    return sbx_reply(c, gw, 404, "text/plain", "no such file\n", 13, NULL);
  memcpy(id, name, l - 4);
  id[l - 4] = '\0';
  sbx_task t;
  if (!sbx_task_get(gw, id, &t)) {
    char *dash = strrchr(id, '-');            /* "<id>-<n>": the n-th of several videos */
    if (dash) *dash = '\0';
    if (!dash || !sbx_task_get(gw, id, &t))
      return sbx_reply(c, gw, 404, "text/plain", "no such file\n", 13, NULL);
  }
  if (sbx_task_phase(&t, sbx_now()).phase < 2 || t.canceled)
    return sbx_reply(c, gw, 404, "text/plain", "no such file\n", 13, NULL);
  /* a signed URL past its time, as an object store answers it */
  const char *exp = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "expires");
  if (exp && strtod(exp, NULL) < sbx_now()) {
    static const char expired[] = "<Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>";
    return sbx_reply(c, gw, 403, "application/xml", expired, sizeof expired - 1, NULL);
  }
  SBX_COUNT(gw, downloads);
  if (t.outcome == SBX_NOT_MP4) {
    static const char page[] = "<html><body>Access denied</body></html>\n";
    return sbx_reply(c, gw, 200, "text/html", page, sizeof page - 1, NULL);
  }
  unsigned long long size = t.result_size;
  if (size < sandbox_clip_len + 8 || size > 0xFFFFFFFFULL) size = sandbox_clip_len;
  /* "Range: bytes=N-" as object stores answer it: 206 with Content-Range, or 416 */
  unsigned long long from = 0;
  const char *range = sbx_header(c, "Range");
  if (range) {
    char *end = NULL;
    if (strncmp(range, "bytes=", 6) == 0) from = strtoull(range + 6, &end, 10);
    if (!end || end == range + 6 || *end != '-' || end[1] != '\0' || from >= size) {
      char cr[64];
      snprintf(cr, sizeof cr, "bytes */%llu", size);
      struct MHD_Response *r = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
      if (!r) return MHD_NO;
      MHD_add_response_header(r, "Content-Range", cr);
      enum MHD_Result ret = MHD_queue_response(c, 416, r);
      MHD_destroy_response(r);
      return ret;
    }
    if (from > 0) SBX_COUNT(gw, resumed);
  }
  sbx_fault *f = sbx_fault_current();
  struct MHD_Response *r;
  if (f && (f->action == SBX_F_CUT || f->action == SBX_F_STALL) && size == sandbox_clip_len) {
    /* the connection drops (or goes silent) part way through the file */
    r = sbx_partial_response((const char *)sandbox_clip + from, size - from, f->fraction,
                             f->action == SBX_F_STALL ? f->seconds : 0);
  } else if (from > 0 && size == sandbox_clip_len) {
    r = MHD_create_response_from_buffer(size - from, (void *)(sandbox_clip + from),
                                        MHD_RESPMEM_PERSISTENT);
  } else if (from > 0) {
    blob *b = blob_new(gw, size, from);
    if (!b) return MHD_NO;
    r = MHD_create_response_from_callback(size - from, 256 * 1024, blob_read_from, b, blob_free);
    if (!r) blob_free(b);
  } else if (size == sandbox_clip_len) {
    r = MHD_create_response_from_buffer(sandbox_clip_len, (void *)sandbox_clip,
                                        MHD_RESPMEM_PERSISTENT);
  } else {
    blob *b = blob_new(gw, size, 0);
    if (!b) return MHD_NO;
    r = MHD_create_response_from_callback(t.no_length ? MHD_SIZE_UNKNOWN : size, 256 * 1024,
                                          blob_read, b, blob_free);
    if (!r) blob_free(b);
  }
  if (!r) return MHD_NO;
  MHD_add_response_header(r, "Content-Type", "video/mp4");
  MHD_add_response_header(r, "Accept-Ranges", "bytes");
  if (from > 0) {
    char cr[96];
    snprintf(cr, sizeof cr, "bytes %llu-%llu/%llu", from, size - 1, size);
    MHD_add_response_header(r, "Content-Range", cr);
  }
  enum MHD_Result ret = MHD_queue_response(c, from > 0 ? 206 : 200, r);
  MHD_destroy_response(r);
  return ret;
}

enum MHD_Result sbx_serve_upload(struct MHD_Connection *c, int gw, const char *key) {
  char v[16];
  if (!sbx_object_get(gw, key, v, sizeof v))
    return sbx_reply(c, gw, 404, "text/plain", "no such file\n", 13, NULL);
  /* the bytes are not kept: a 1x1 PNG stands in for any uploaded image */
  static const unsigned char png[] = {
    0x89, 'P', 'N', 'G', 0x0D, 0x0A, 0x1A, 0x0A, 0, 0, 0, 0x0D, 'I', 'H', 'D', 'R', 0, 0, 0, 1, 0, 0,
    0, 1, 8, 6, 0, 0, 0, 0x1F, 0x15, 0xC4, 0x89, 0, 0, 0, 0x0D, 'I', 'D', 'A', 'T', 0x78, 0x9C, 0x63,
    0, 1, 0, 0, 5, 0, 1, 0x0D, 0x0A, 0x2D, 0xB4, 0, 0, 0, 0, 'I', 'E', 'N', 'D', 0xAE, 0x42, 0x60, 0x82,
  };
  return sbx_reply(c, gw, 200, "image/png", (const char *)png, sizeof png, NULL);
}

static enum MHD_Result control(struct MHD_Connection *c, const char *method, const char *what,
                               const char *body, size_t len) {
  if (strcmp(what, "faults") == 0) {
    if (strcmp(method, "POST") == 0) {
      const char *bad = sbx_faults_set(body, len);
      if (bad) return sbx_reply_json(c, -1, 400, json_pack("{s:s}", "error", bad), NULL);
    } else if (strcmp(method, "DELETE") == 0) {
      sbx_faults_clear();
    }
    return sbx_reply_json(c, -1, 200, sbx_faults_json(), NULL);
  }
  if (strcmp(what, "stats") == 0 && strcmp(method, "GET") == 0)
    return sbx_reply_json(c, -1, 200, sbx_stats_json(), NULL);
  if (strcmp(what, "reset") == 0 && strcmp(method, "POST") == 0) {
    sbx_reset();
    sbx_faults_clear();
    sbx_clock_set(0);
    return sbx_reply_json(c, -1, 200, json_pack("{s:b}", "ok", 1), NULL);
  }
  if (strcmp(what, "clock") == 0 && strcmp(method, "POST") == 0) {
    /* {"now": unix seconds}: freeze the sandbox's clock there (benchmarks on virtual time);
     * {"now": 0} goes back to the real clock */
    json_t *o = json_loadb(body, len, 0, NULL);
    json_t *v = o ? json_object_get(o, "now") : NULL;
    int ok = v && json_is_number(v) && json_number_value(v) >= 0;
    if (ok) sbx_clock_set(json_number_value(v));
    json_decref(o);
    if (!ok) return sbx_reply_json(c, -1, 400, json_pack("{s:s}", "error", "expected {\"now\": seconds >= 0}"), NULL);
    return sbx_reply_json(c, -1, 200, json_pack("{s:f}", "now", sbx_now()), NULL);
  }
  if (strcmp(what, "tasks") == 0 && strcmp(method, "POST") == 0) {
    json_t *o = json_loadb(body, len, 0, NULL);
    const char *why = "expected a JSON object";
    long n = -1;
    if (json_is_object(o)) {
      const char *gw = json_string_value(json_object_get(o, "gateway"));
      if (!gw || strcmp(gw, "dashscope") != 0) why = "only the dashscope task list can be seeded";
      else n = sbx_dashscope_seed(json_string_value(json_object_get(o, "key")),
                                  json_string_value(json_object_get(o, "model")),
                                  (long)json_integer_value(json_object_get(o, "count")),
                                  json_number_value(json_object_get(o, "created")),
                                  json_number_value(json_object_get(o, "spacing")), &why);
    }
    json_decref(o);
    if (n < 0) return sbx_reply_json(c, -1, 400, json_pack("{s:s}", "error", why), NULL);
    return sbx_reply_json(c, -1, 200, json_pack("{s:I}", "made", (json_int_t)n), NULL);
  }
  if (strcmp(what, "health") == 0)
    return sbx_reply_json(c, -1, 200, json_pack("{s:b}", "ok", 1), NULL);
  if (strcmp(what, "shutdown") == 0 && strcmp(method, "POST") == 0) {
    enum MHD_Result r = sbx_reply_json(c, -1, 200, json_pack("{s:b}", "ok", 1), NULL);
    if (write(g_sbx.wake_fd, "q", 1) < 0) { /* main() also stops on signals */ }
    return r;
  }
  return sbx_reply_json(c, -1, 404, json_pack("{s:s}", "error", "no such sandbox control"), NULL);
}

static enum MHD_Result route(const sbx_req *r) {
  if (strncmp(r->path, "/files/", 7) == 0 && strcmp(r->method, "GET") == 0)
    return serve_file(r->conn, r->gw, r->path + 7);
  if (strcmp(r->path, "/") == 0 && r->gw == SBX_GW_DASHSCOPE) return sbx_dashscope_oss(r);
  switch (r->gw) {
    case SBX_GW_APIMART: return sbx_apimart(r);
    case SBX_GW_PIXVERSE: case SBX_GW_QUICKROUTER: return sbx_pixverse(r);
    case SBX_GW_DASHSCOPE: return sbx_dashscope(r);
    case SBX_GW_JIEKOU: return sbx_jiekou(r);
    case SBX_GW_BAICAI: return sbx_baicai(r);
    default: return MHD_NO;
  }
}

/* A gateway request, through the fault plan: a fault that acts before the request is handled
 * answers it (or drops it) here; one that spoils the handler's own reply is set for the thread
 * while the handler runs, and sbx_reply or serve_file applies it. */
static enum MHD_Result dispatch(const sbx_req *r) {
  sbx_fault f;
  int kind = sbx_route_kind(r->gw, r->method, r->path);
  if (!sbx_fault_take(r->gw, kind, &f)) return route(r);
  enum MHD_Result ret;
  if (f.action == SBX_F_RESET || f.action == SBX_F_REPLY || f.action == SBX_F_HUGE ||
      f.action == SBX_F_REDIRECT) {
    /* the request arrived, though the handler never sees it: count it as the handler would */
    if (kind == SBX_R_SUBMIT) SBX_COUNT(r->gw, submits);
    else if (kind == SBX_R_STATUS) SBX_COUNT(r->gw, polls);
    ret = sbx_fault_reply_now(r->conn, r->gw, &f);
  } else {
    sbx_fault_begin(&f);
    ret = route(r);
    sbx_fault_end();
  }
  free(f.body);
  return ret;
}

static enum MHD_Result handler(void *cls, struct MHD_Connection *c, const char *url,
                               const char *method, const char *version, const char *upload,
                               size_t *upload_size, void **con_cls) {
  (void)cls; (void)version;
  conn_state *st = *con_cls;
  if (!st) {
    st = calloc(1, sizeof *st);
    if (!st) return MHD_NO;
    *con_cls = st;
    const char *ct = sbx_header(c, "Content-Type");
    if (ct && strncasecmp(ct, "multipart/form-data", 19) == 0)
      st->pp = MHD_create_post_processor(c, 64 * 1024, on_field, st);
    return MHD_YES;
  }
  if (*upload_size && st->pp) {
    if (MHD_post_process(st->pp, upload, *upload_size) != MHD_YES) st->too_big = 1;
    *upload_size = 0;
    return MHD_YES;
  }
  if (*upload_size) {
    if (st->len + *upload_size > MAX_BODY) {
      st->too_big = 1;
    } else if (!st->too_big) {
      if (st->len + *upload_size + 1 > st->cap) {
        size_t ncap = (st->len + *upload_size + 1) * 2;
        char *nb = realloc(st->body, ncap);
        if (!nb) return MHD_NO;
        st->body = nb;
        st->cap = ncap;
      }
      memcpy(st->body + st->len, upload, *upload_size);
      st->len += *upload_size;
      st->body[st->len] = '\0';
    }
    *upload_size = 0;
    return MHD_YES;
  }
  if (st->too_big) return sbx_reply(c, -1, 413, "text/plain", "request body too large\n", 23, NULL);

  if (strncmp(url, "/_sandbox/", 10) == 0)
    return control(c, method, url + 10, st->body ? st->body : "", st->len);
  for (int gw = 0; gw < SBX_GW__COUNT; gw++) {
    size_t pl = strlen(sbx_gw_names[gw]);
    if (url[0] != '/' || strncmp(url + 1, sbx_gw_names[gw], pl) != 0 || url[pl + 1] != '/')
      continue;
    const char *rest = url + pl + 1;
    sbx_req r = { c, method, rest, st->body ? st->body : "", st->len, st->fields, st->nfields, gw };
    return dispatch(&r);
  }
  if (strcmp(url, "/dashscope-oss") == 0 || strcmp(url, "/dashscope-oss/") == 0) {
    sbx_req r = { c, method, "/", st->body ? st->body : "", st->len, st->fields, st->nfields,
                  SBX_GW_DASHSCOPE };
    return dispatch(&r);
  }
  return sbx_reply_json(c, -1, 404, json_pack("{s:s,s:s}", "error", "no such route", "path", url), NULL);
}

static void completed(void *cls, struct MHD_Connection *c, void **con_cls,
                      enum MHD_RequestTerminationCode toe) {
  (void)cls; (void)c; (void)toe;
  conn_state *st = *con_cls;
  if (st) {
    if (st->pp) MHD_destroy_post_processor(st->pp);
    free(st->body);
    free(st);
  }
  *con_cls = NULL;
}

struct MHD_Daemon *sbx_http_start(unsigned port);
struct MHD_Daemon *sbx_http_start(unsigned port) {
  struct sockaddr_in sa;
  memset(&sa, 0, sizeof sa);
  sa.sin_family = AF_INET;
  sa.sin_port = htons((uint16_t)port);
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);   /* loopback only, always */
  /* a thread per connection: a fault that stalls a reply blocks only its own connection */
  unsigned flags = MHD_USE_AUTO_INTERNAL_THREAD | MHD_USE_THREAD_PER_CONNECTION | MHD_USE_ERROR_LOG;
  /* HTTPS when a certificate was given: the same server, with the PEM pair (else two no-ops) */
  struct MHD_OptionItem tls[] = {
    { g_sbx.tls_cert ? MHD_OPTION_HTTPS_MEM_CERT : MHD_OPTION_END, 0, g_sbx.tls_cert },
    { MHD_OPTION_HTTPS_MEM_KEY, 0, g_sbx.tls_key },
    { MHD_OPTION_END, 0, NULL },
  };
  return MHD_start_daemon(flags | (g_sbx.tls_cert ? MHD_USE_TLS : 0), (uint16_t)port, NULL, NULL,
                          handler, NULL,
                          MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
                          MHD_OPTION_ARRAY, tls,
                          MHD_OPTION_CONNECTION_LIMIT, (unsigned)4000,
                          MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)120,
                          MHD_OPTION_NOTIFY_COMPLETED, completed, NULL,
                          MHD_OPTION_END);
}
