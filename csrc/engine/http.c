/* http.c: the transport: easy-handle setup, write/header callbacks, per-host slots and queues.
 * It knows transfers and their opaque owners, never tasks or clients; callbacks only write C
 * fields of pf_xfer. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "internal.h"

/* Has the pump's budget run out for x? Past the budget's end a transfer is paused (libcurl keeps
 * the chunk in hand and gives it again when it is continued) and queued, in order, on the
 * transport's paused transfers; it stays paused, its socket unread, until its turn comes at the
 * start of a later pump (pf_net_budget). The one whose turn it is (grant) may write one chunk
 * even past the budget, so that every pump moves at least one and none starves. */
static int out_of_budget(pf_xfer *x) {
  pf_net *n = x->net;
  if (!n || !(n->pump_end > 0)) return 0;
  if (pf_monotonic() < n->pump_end) return 0;
  if (x->grant == n->pump_seq) {
    x->grant = 0;
    return 0;
  }
  if (!x->paused) {
    x->paused = 1;
    x->pnext = NULL;
    if (n->paused_tail) n->paused_tail->pnext = x;
    else n->paused = x;
    n->paused_tail = x;
  }
  return 1;
}

static size_t write_api(char *ptr, size_t size, size_t nmemb, void *ud) {
  pf_xfer *x = ud;
  size_t n = size * nmemb;
  if (pf_buf_append(&x->resp, ptr, n) != 0) {
    if (x->resp.overflow) x->too_big = 1;
    return 0;   /* CURLE_WRITE_ERROR ends the transfer */
  }
  return n;
}

/* A download's bytes are gathered in chunks (PF_DL_CHUNK), each written by the worker in one
 * write; a transfer with PF_DL_INFLIGHT bytes handed over and not yet written pauses until the
 * worker catches up (memory per download stays bounded when the disk is slower than the network). */
#define PF_DL_INFLIGHT (16 * PF_DL_CHUNK)
#define PF_DISK_CAP (64 * PF_DL_CHUNK)     /* 8 MiB handed to the worker, all downloads together */

/* A chunk buffer: one the worker gave back, else a new one. Reusing them keeps a pump from
 * paying the page faults of fresh memory (200 downloads ending together faulted ~300 pages in
 * one pump of W5's complete200 row). */
static char *chunk_get(pf_net *n) {
  if (!n) return malloc(PF_DL_CHUNK);
  if (n->nchunks < PF_CHUNK_LOW + 1 && !n->refilling && n->chunks_low &&
      n->chunks_low(n->sink_ud, PF_CHUNK_POOL - n->nchunks + 1) == 0)
    n->refilling = 1;
  if (n->nchunks > 0) return n->chunks[--n->nchunks];
  return malloc(PF_DL_CHUNK);               /* the worker's are not back yet */
}

void pf_net_chunks_back(pf_net *n, char **bufs, size_t nbufs) {
  for (size_t i = 0; i < nbufs; i++) pf_net_chunk_put(n, bufs[i]);
  n->refilling = 0;
}

void pf_net_chunk_put(pf_net *n, char *buf) {
  if (!buf) return;
  if (n->nchunks < PF_CHUNK_POOL) n->chunks[n->nchunks++] = buf;
  else free(buf);
}

/* Hand x's gathered bytes to the worker (n->sink_write takes the chunk). 0, or -1 (no memory). */
static int hand_chunk(pf_net *n, pf_xfer *x) {
  if (!x->chunklen) return 0;
  char *buf = x->chunk;
  size_t len = x->chunklen;
  x->chunk = NULL;
  x->chunklen = 0;
  if (!n->sink_write || n->sink_write(n->sink_ud, x, buf, len) != 0) return -1;
  x->inflight += len;
  n->disk_bytes += len;
  return 0;
}

/* Gather len bytes of x's body (its head already checked): a full chunk goes to the worker. */
static int gather(pf_xfer *x, const char *p, size_t len) {
  while (len > 0) {
    if (!x->chunk) {
      x->chunk = chunk_get(x->net);
      if (!x->chunk) return -1;
    }
    size_t room = PF_DL_CHUNK - x->chunklen, k = len < room ? len : room;
    memcpy(x->chunk + x->chunklen, p, k);
    x->chunklen += k;
    x->written += (curl_off_t)k;
    p += k;
    len -= k;
    if (x->chunklen == PF_DL_CHUNK && hand_chunk(x->net, x) != 0) return -1;
  }
  return 0;
}

static size_t write_file(char *ptr, size_t size, size_t nmemb, void *ud) {
  pf_xfer *x = ud;
  size_t n = size * nmemb, i = 0;
  if (x->write_failed) return 0;            /* the worker could not write: CURLE_WRITE_ERROR */
  if (out_of_budget(x)) return CURL_WRITEFUNC_PAUSE;
  if (x->inflight >= PF_DL_INFLIGHT || x->net->disk_bytes >= PF_DISK_CAP) {
    x->disk_paused = 1;                     /* the disk is behind: wait for the worker */
    if (!x->disk_listed) {
      x->disk_listed = 1;
      x->dnext = x->net->dwait;
      x->net->dwait = x;
    }
    return CURL_WRITEFUNC_PAUSE;
  }
  /* libcurl checks max_download_bytes only against a length announced in advance: a body
   * without one (or longer than it said) is counted here */
  if (x->max_bytes > 0 && x->written + (curl_off_t)n > x->max_bytes) {
    x->too_big = 1;
    return 0;
  }
  while (x->headlen < sizeof x->head && i < n) x->head[x->headlen++] = (unsigned char)ptr[i++];
  /* an MP4 starts with a box whose type, at byte 4, is "ftyp" */
  if (x->resume_from == 0 && x->headlen == sizeof x->head && memcmp(x->head + 4, "ftyp", 4) != 0) {
    x->not_mp4 = 1;
    return 0;
  }
  /* the head bytes were held back until verified: they go first */
  if (x->headlen == sizeof x->head && i > 0 && gather(x, (const char *)x->head, sizeof x->head) != 0)
    return 0;
  if (x->headlen < sizeof x->head) return n;
  if (i < n && gather(x, ptr + i, n - i) != 0) return 0;
  return n;
}

/* ---------------------------------------------------------------- uploads' bytes, from the worker */

/* Ask the worker for u's next chunks, up to PF_READ_AHEAD in flight or in hand. A chunk that
 * cannot be asked for (no memory) ends the transfer with that error. */
static void ask_reads(pf_upread *u) {
  pf_xfer *x = u->x;
  pf_net *n = x->net;
  while (!x->read_failed && u->asked + (int)u->n < PF_READ_AHEAD && u->next < u->size) {
    long long left = u->size - u->next;
    size_t len = left < PF_DL_CHUNK ? (size_t)left : PF_DL_CHUNK;
    char *buf = chunk_get(n);
    if (!buf || n->src_read(n->sink_ud, x->owner, u->src, u->id, buf, len, u->next) != 0) {
      x->read_failed = 1;
      pf_err_set(&u->err, PF_EK_NOMEM, 0, "nomem", "out of memory reading %s for its upload",
                 u->path);
      return;
    }
    u->next += (long long)len;
    u->asked++;
  }
}

/* libcurl's read callback for a file part: what the worker has read, in order; a pause when it
 * has not read the next chunk yet. */
static size_t read_part(char *dst, size_t size, size_t nitems, void *arg) {
  pf_upread *u = arg;
  pf_xfer *x = u->x;
  size_t want = size * nitems, got = 0;
  if (x->read_failed) return CURL_READFUNC_ABORT;
  while (got < want && u->n > 0) {
    size_t k = u->len[u->head] - u->pos;
    if (k > want - got) k = want - got;
    memcpy(dst + got, u->buf[u->head] + u->pos, k);
    got += k;
    u->pos += k;
    if (u->pos == u->len[u->head]) {
      pf_net_chunk_put(x->net, u->buf[u->head]);
      u->buf[u->head] = NULL;
      u->head = (u->head + 1) % PF_READ_AHEAD;
      u->n--;
      u->pos = 0;
    }
  }
  u->given += (long long)got;
  ask_reads(u);
  if (got > 0 || u->given >= u->size) return got;    /* 0 at the end: the part is whole */
  if (x->read_failed) return CURL_READFUNC_ABORT;
  u->paused = 1;
  return CURL_READFUNC_PAUSE;
}

/* Drop what u holds of its pass, for a new one. */
static void drop_reads(pf_upread *u, pf_net *n) {
  for (; u->n > 0; u->n--) {
    if (n) pf_net_chunk_put(n, u->buf[u->head]);
    else free(u->buf[u->head]);
    u->buf[u->head] = NULL;
    u->head = (u->head + 1) % PF_READ_AHEAD;
  }
  u->head = u->pos = 0;
}

/* libcurl rewinds a body it must send again (a connection that died under a reused request, a
 * redirect that keeps the method): a new pass from the start; the old one's reads are dropped. */
static int seek_part(void *arg, curl_off_t offset, int origin) {
  pf_upread *u = arg;
  if (origin != SEEK_SET || offset != 0) return CURL_SEEKFUNC_CANTSEEK;
  if (u->given == 0 && u->pos == 0) return CURL_SEEKFUNC_OK;   /* nothing taken yet */
  drop_reads(u, u->x->net);
  u->id = ++u->x->net->read_ids;
  u->asked = 0;
  u->next = u->given = 0;
  ask_reads(u);
  return CURL_SEEKFUNC_OK;
}

/* File part p of x's body, its bytes from the worker. */
static CURLcode part_from_worker(pf_net *n, pf_xfer *x, curl_mimepart *mp, const pf_part *p) {
  if (!x->up) {
    x->up = calloc(x->req.nparts, sizeof *x->up);
    if (!x->up) return CURLE_OUT_OF_MEMORY;
  }
  pf_upread *u = &x->up[x->nup];
  x->net = n;                               /* the read callback's way to the worker */
  u->x = x;
  u->path = p->file;
  u->size = p->size;
  u->src = n->src_open(n->sink_ud, p->file, p->size);
  if (!u->src) return CURLE_OUT_OF_MEMORY;
  x->nup++;                                 /* counted now: pf_xfer_release closes it */
  u->id = ++n->read_ids;
  CURLcode rc = curl_mime_data_cb(mp, (curl_off_t)p->size, read_part, seek_part, NULL, u);
  if (rc == CURLE_OK) ask_reads(u);
  return rc;
}

void pf_xfer_read_done(pf_net *n, pf_xfer *x, const struct pf_source *s, unsigned id, char *buf,
                       size_t len, int rc, const pf_err *e) {
  pf_upread *u = NULL;
  for (size_t i = 0; i < x->nup && !u; i++)
    if (x->up[i].src == s && x->up[i].id == id) u = &x->up[i];
  if (!u || u->asked == 0) {                /* an earlier pass's, or an earlier transfer's */
    pf_net_chunk_put(n, buf);
    return;
  }
  u->asked--;
  if (rc != 0) {
    pf_net_chunk_put(n, buf);
    if (!x->read_failed) {
      x->read_failed = 1;
      u->err = *e;
    }
  } else {
    size_t at = (u->head + u->n) % PF_READ_AHEAD;
    u->buf[at] = buf;
    u->len[at] = len;
    u->n++;
  }
  if (u->paused && x->active && x->easy) {
    /* paused first, then continued: libcurl's mime reader keeps a pause it has not passed on
     * yet (it returned the part's header bytes with it), and a continue that finds the transfer
     * not paused does nothing, leaving that pause for ever (the upload hung at its first
     * read); pausing first makes the continue take effect. libcurl may call read_part inside. */
    u->paused = 0;
    curl_easy_pause(x->easy, CURLPAUSE_SEND);
    curl_easy_pause(x->easy, CURLPAUSE_CONT);
  }
}

/* ---------------------------------------------------------------- downloads' bytes, to the worker */

struct pf_sink *pf_xfer_take_sink(pf_net *n, pf_xfer *x, int *ok) {
  *ok = 1;
  struct pf_sink *s = x->sink;
  if (!s) return NULL;
  if (hand_chunk(n, x) != 0) *ok = 0;
  pf_net_chunk_put(n, x->chunk);
  x->chunk = NULL;
  x->chunklen = 0;
  x->sink = NULL;
  return s;
}

static void unlist_disk(pf_net *n, pf_xfer *x) {
  if (!x->disk_listed) return;
  for (pf_xfer **p = &n->dwait; *p; p = &(*p)->dnext)
    if (*p == x) {
      *p = x->dnext;
      break;
    }
  x->disk_listed = 0;
  x->dnext = NULL;
}

void pf_net_chunk_written(pf_net *n, size_t len) {
  n->disk_bytes = n->disk_bytes > len ? n->disk_bytes - len : 0;
  if (n->disk_bytes > PF_DISK_CAP / 2) return;
  /* caught up: the transfers paused for it go on (a transfer whose own chunks are still
   * behind waits for them: pf_xfer_chunk_done) */
  pf_xfer *x = n->dwait;
  n->dwait = NULL;
  while (x) {
    pf_xfer *next = x->dnext;
    x->disk_listed = 0;
    x->dnext = NULL;
    if (x->disk_paused && x->active && x->easy && x->inflight <= PF_DL_INFLIGHT / 2) {
      x->disk_paused = 0;
      curl_easy_pause(x->easy, CURLPAUSE_CONT);   /* may pause it again, and list it */
    } else if (x->disk_paused && !x->disk_listed) {
      x->disk_listed = 1;
      x->dnext = n->dwait;
      n->dwait = x;
    }
    x = next;
  }
}

void pf_xfer_chunk_done(pf_xfer *x, const struct pf_sink *s, size_t len, int rc, int err_no) {
  if (!s || x->sink != s) return;           /* an earlier attempt's file */
  x->inflight = x->inflight > len ? x->inflight - len : 0;
  if (rc != 0 && !x->write_failed) {
    x->write_failed = 1;
    x->werr = err_no;
  }
  /* a transfer paused for the disk goes on once half of what it handed over is written (or to
   * end with the write error); libcurl may give it its next chunk inside curl_easy_pause */
  if (x->disk_paused && x->active && x->easy && (x->write_failed || x->inflight <= PF_DL_INFLIGHT / 2) &&
      (x->write_failed || x->net->disk_bytes <= PF_DISK_CAP / 2)) {
    unlist_disk(x->net, x);
    x->disk_paused = 0;
    curl_easy_pause(x->easy, CURLPAUSE_CONT);
  }
}

double pf_xfer_server_date(const pf_xfer *x) {
  if (!x->date[0]) return 0;
  time_t when = curl_getdate(x->date, NULL);
  return when > 0 ? (double)when : 0;
}

static size_t on_header(char *buf, size_t size, size_t nitems, void *ud) {
  pf_xfer *x = ud;
  size_t n = size * nitems;
  static const char date[] = "date:";
  if (n > sizeof date - 1 && n < 128 && strncasecmp(buf, date, sizeof date - 1) == 0) {
    /* the server's clock (an HTTP date, whole seconds): reconciliation corrects for it; kept
     * as it came, parsed where it is used */
    size_t vl = n - (sizeof date - 1);
    if (vl < sizeof x->date) {
      memcpy(x->date, buf + sizeof date - 1, vl);
      x->date[vl] = '\0';
      x->server_date_at = pf_walltime();
    }
  }
  static const char name[] = "retry-after:";
  if (n > sizeof name - 1 && strncasecmp(buf, name, sizeof name - 1) == 0) {
    char val[128];
    size_t vl = n - (sizeof name - 1);
    if (vl >= sizeof val) vl = sizeof val - 1;
    memcpy(val, buf + sizeof name - 1, vl);
    val[vl] = '\0';
    char *s = val, *end;
    while (*s == ' ' || *s == '\t') s++;
    for (char *e = s + strlen(s); e > s && (e[-1] == '\r' || e[-1] == '\n' || e[-1] == ' '); )
      *--e = '\0';
    long secs = strtol(s, &end, 10);
    if (end != s && *end == '\0' && secs >= 0) {
      x->retry_after = (double)secs;
    } else {
      time_t when = curl_getdate(s, NULL);   /* an HTTP date */
      if (when > 0) {
        double d = (double)when - pf_walltime();
        x->retry_after = d > 0 ? d : 0;
      }
    }
  }
  return n;
}

/* The "host:port" of url (lower case, the scheme's port when none is given): the key of a
 * per-host slot. A plain scan, as this runs for every request. */
void pf_url_host(const char *url, char *out, size_t n) {
  out[0] = '\0';
  const char *p = strstr(url, "://");
  if (!p || n < 8) return;
  int https = (size_t)(p - url) == 5 && strncasecmp(url, "https", 5) == 0;
  p += 3;
  size_t len = strcspn(p, "/?#");
  const char *at = memchr(p, '@', len);   /* user info is not part of the host */
  if (at) { len -= (size_t)(at + 1 - p); p = at + 1; }
  const char *port = NULL;
  size_t hlen = len;
  if (*p == '[') {                          /* [IPv6]:port */
    const char *rb = memchr(p, ']', len);
    if (rb) { hlen = (size_t)(rb + 1 - p); if (hlen < len && p[hlen] == ':') port = p + hlen + 1; }
  } else {
    const char *colon = memchr(p, ':', len);
    if (colon) { hlen = (size_t)(colon - p); port = colon + 1; }
  }
  size_t plen = port ? len - (size_t)(port - p) : 0;
  if (hlen + plen + 2 > n) return;
  size_t o = 0;
  for (size_t i = 0; i < hlen; i++) {
    char ch = p[i];
    out[o++] = (ch >= 'A' && ch <= 'Z') ? (char)(ch - 'A' + 'a') : ch;
  }
  out[o++] = ':';
  if (plen) { memcpy(out + o, port, plen); o += plen; }
  else { const char *d = https ? "443" : "80"; memcpy(out + o, d, strlen(d)); o += strlen(d); }
  out[o] = '\0';
}

static size_t host_slot(pf_net *c, const char *url, pf_err *err) {
  char name[sizeof c->hosts[0].name];
  pf_url_host(url, name, sizeof name);
  for (size_t i = 0; i < c->nhosts; i++)
    if (strcmp(c->hosts[i].name, name) == 0) return i;
  pf_host *nh = realloc(c->hosts, (c->nhosts + 1) * sizeof *nh);
  if (!nh) {
    pf_err_set(err, PF_EK_NOMEM, 0, "nomem", "out of memory");
    return (size_t)-1;
  }
  c->hosts = nh;
  memset(&nh[c->nhosts], 0, sizeof nh[0]);
  memcpy(nh[c->nhosts].name, name, sizeof name);
  return c->nhosts++;
}

/* An easy handle for a transfer that starts now: a reset one from the client's pool, or a new
 * one. Handles are only held while a transfer runs, so a queued request costs no handle. */
static CURL *easy_get(pf_net *c) {
  if (c->npool > 0) return c->pool[--c->npool];
  return curl_easy_init();
}

static void easy_put(pf_net *c, CURL *e) {
  if (c && c->npool < PF_EASY_POOL) {
    curl_easy_reset(e);
    c->pool[c->npool++] = e;
  } else {
    curl_easy_cleanup(e);
  }
}

/* Where the transport's sockets are closed: fn, once set (pf_net_set_sock_close), else at once.
 * libcurl keeps the pointer in every connection it makes, so it lives as long as they do: it
 * goes with them when they are detached, and fn is cleared first (they are closed where they
 * are then: on the worker, or by a client that is going away). */
typedef struct pf_sockctl {
  int (*fn)(void *ud, int fd);
  void *ud;
} pf_sockctl;

static int close_sock(void *clientp, curl_socket_t fd) {
  pf_sockctl *k = clientp;
  if (k && k->fn && k->fn(k->ud, (int)fd) == 0) return 0;
  return close(fd);
}

void pf_net_set_sock_close(pf_net *n, int (*fn)(void *ud, int fd), void *ud) {
  if (!n->sockctl) return;                  /* none (no memory): closed at once */
  n->sockctl->fn = fn;
  n->sockctl->ud = ud;
}

int pf_net_init(pf_net *n, const pf_opts *o, double (*now)(const void *), const void *ud, pf_err *err) {
  memset(n, 0, sizeof *n);
  n->o = o;
  n->now = now;
  n->now_ud = ud;
  n->multi = curl_multi_init();
  if (!n->multi) {
    pf_err_set(err, PF_EK_NOMEM, 0, "nomem", "could not create a curl multi handle");
    return -1;
  }
  n->sockctl = calloc(1, sizeof *n->sockctl);   /* NULL: sockets are closed where libcurl is */
  return 0;
}

/* A transport's connections, detached for another thread to close (pf_net_close_detached). */
struct pf_net_conns {
  CURLM *multi;
  size_t n;
  CURL *easy[PF_EASY_POOL];
  size_t nchunks;            /* the chunk pool too: freeing 32 mapped buffers is 32 munmaps */
  char *chunks[PF_CHUNK_POOL];
  pf_sockctl *sockctl;       /* their connections' (its fn cleared: closed where they are) */
};

void *pf_net_detach_conns(pf_net *c) {
  struct pf_net_conns *d = malloc(sizeof *d);
  if (!d) return NULL;
  d->multi = c->multi;
  c->multi = NULL;
  d->n = c->npool;
  memcpy(d->easy, c->pool, c->npool * sizeof c->pool[0]);
  c->npool = 0;
  d->nchunks = c->nchunks;
  memcpy(d->chunks, c->chunks, c->nchunks * sizeof c->chunks[0]);
  c->nchunks = 0;
  d->sockctl = c->sockctl;
  c->sockctl = NULL;
  if (d->sockctl) d->sockctl->fn = NULL;
  return d;
}

void pf_net_close_detached(void *conns) {
  struct pf_net_conns *d = conns;
  if (!d) return;
  if (d->multi) curl_multi_cleanup(d->multi);
  while (d->n > 0) curl_easy_cleanup(d->easy[--d->n]);
  while (d->nchunks > 0) free(d->chunks[--d->nchunks]);
  free(d->sockctl);
  free(d);
}

void pf_net_free(pf_net *c) {
  if (c->sockctl) c->sockctl->fn = NULL;    /* the client is going: closed here */
  if (c->multi) curl_multi_cleanup(c->multi);
  c->multi = NULL;
  free(c->hosts);
  c->hosts = NULL;
  c->nhosts = 0;
  while (c->npool > 0) curl_easy_cleanup(c->pool[--c->npool]);
  while (c->nchunks > 0) free(c->chunks[--c->nchunks]);
  free(c->sockctl);
  c->sockctl = NULL;
  for (size_t i = 0; i < c->nslabs; i++) pf_secret_unmap(c->slabs[i].mem, c->slabs[i].cap);
  free(c->slabs);
  c->slabs = NULL;
  c->nslabs = 0;
}

/* ---------------------------------------------------------------- the key in header lines */

/* A free slot of c's secret slabs (a new slab when all are full), or NULL. */
static char *secret_slot_get(pf_net *c) {
  for (size_t i = 0; i < c->nslabs; i++) {
    pf_secret_slab *s = &c->slabs[i];
    for (unsigned b = 0; b < PF_SECRET_SLOTS; b++) {
      if (s->used & ((uint64_t)1 << b)) continue;
      s->used |= (uint64_t)1 << b;
      return s->mem + (size_t)b * PF_SECRET_SLOT;
    }
  }
  pf_secret_slab *ns = realloc(c->slabs, (c->nslabs + 1) * sizeof *ns);
  if (!ns) return NULL;
  c->slabs = ns;
  pf_secret_slab *s = &ns[c->nslabs];
  s->mem = pf_secret_map((size_t)PF_SECRET_SLOT * PF_SECRET_SLOTS, &s->cap);
  if (!s->mem) return NULL;
  s->used = 1;
  c->nslabs++;
  return s->mem;
}

/* Give p back if it is a slot of c's slabs (wiped); 0 if it is not one. */
static int secret_slot_put(pf_net *c, char *p) {
  for (size_t i = 0; c && i < c->nslabs; i++) {
    pf_secret_slab *s = &c->slabs[i];
    if (p < s->mem || p >= s->mem + (size_t)PF_SECRET_SLOT * PF_SECRET_SLOTS) continue;
    size_t b = (size_t)(p - s->mem) / PF_SECRET_SLOT;
    pf_wipe(s->mem + b * PF_SECRET_SLOT, PF_SECRET_SLOT);
    s->used &= ~((uint64_t)1 << b);
    return 1;
  }
  return 0;
}

/* Move the header lines of r that carry the key (curl_slist_append copied them into the heap)
 * into secret slots, wiping the heap copies. A line that gets no slot stays where it is, and is
 * wiped when freed. */
static void secure_headers(pf_net *c, pf_http_req *r) {
  if (!c->api_key || !c->api_key[0]) return;
  for (struct curl_slist *h = r->headers; h; h = h->next) {
    if (!h->data || !strstr(h->data, c->api_key)) continue;
    size_t n = strlen(h->data) + 1;
    if (n > PF_SECRET_SLOT) continue;
    char *slot = secret_slot_get(c);
    if (!slot) continue;
    memcpy(slot, h->data, n);
    pf_wipe(h->data, n);
    free(h->data);                          /* libcurl's default allocator is malloc */
    h->data = slot;
  }
}

/* Wipe every header line of r and give back its slots, before r is freed. */
static void release_headers(pf_net *c, pf_http_req *r) {
  for (struct curl_slist *h = r->headers; h; h = h->next) {
    if (!h->data) continue;
    pf_wipe(h->data, strlen(h->data));
    if (secret_slot_put(c, h->data)) h->data = NULL;   /* curl_slist_free_all skips it */
  }
}

void pf_http_req_discard(pf_http_req *req) {
  release_headers(NULL, req);
  pf_http_req_free(req);
}

/* libcurl's pre-request callback: it runs before each time the request goes out on a
 * connection. A submit may go out once per transfer; a second time would be libcurl's own
 * resend after a reused connection closed, which is refused (CURLE_ABORTED_BY_CALLBACK). */
static int submit_once(void *ud, char *conn_primary_ip, char *conn_local_ip, int conn_primary_port,
                       int conn_local_port) {
  (void)conn_primary_ip; (void)conn_local_ip; (void)conn_primary_port; (void)conn_local_port;
  pf_xfer *x = ud;
  return x->sends++ == 0 ? CURL_PREREQFUNC_OK : CURL_PREREQFUNC_ABORT;
}

/* Set every option of transfer x on e (a fresh or reset handle). A local file of a multipart
 * body that cannot be read (deleted while the request waited for a slot) fills err. */
static CURLcode configure(pf_net *c, pf_xfer *x, CURL *e, pf_err *err) {
  int download = x->kind == PF_X_DOWNLOAD;
  CURLcode rc = CURLE_OK;
#define SET(opt, val) if (rc == CURLE_OK) rc = curl_easy_setopt(e, opt, val)
  SET(CURLOPT_URL, x->req.url);
  SET(CURLOPT_PRIVATE, (void *)x);
  SET(CURLOPT_NOSIGNAL, 1L);
  /* a transfer that times out, or is removed, while its name is still being resolved leaves the
   * resolver thread to finish on its own instead of joining it: a resolver that never answers
   * would otherwise hold the pump (or close) until getaddrinfo gives up, 5 s and more. The
   * thread frees its own state when getaddrinfo returns. */
  SET(CURLOPT_QUICK_EXIT, 1L);
  SET(CURLOPT_ERRORBUFFER, x->errbuf);
  if (c && c->sockctl) {
    SET(CURLOPT_CLOSESOCKETFUNCTION, close_sock);
    SET(CURLOPT_CLOSESOCKETDATA, (void *)c->sockctl);
  }
  if (x->kind == PF_X_SUBMIT) {
    /* When a reused connection closes before any reply, libcurl sends the request again on a
     * new one by itself, and a second submit can be a second charge. submit_once() stops that
     * second send (the submit ends "unconfirmed", never resent). A connection idle for a second
     * or more is not reused for a submit (libcurl counts the idle time in whole seconds, so
     * the limit is 0): a server closing an idle keep-alive connection (commonly after 5 s or
     * more) is the usual cause of that case. */
    x->sends = 0;
    SET(CURLOPT_PREREQFUNCTION, submit_once);
    SET(CURLOPT_PREREQDATA, (void *)x);
    SET(CURLOPT_MAXAGE_CONN, 0L);
  }
  SET(CURLOPT_PROTOCOLS_STR, "http,https");
  SET(CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
  /* TLS verification is on and nothing in pixflow turns it off; ca_file only adds trust */
  SET(CURLOPT_SSL_VERIFYPEER, 1L);
  SET(CURLOPT_SSL_VERIFYHOST, 2L);
  if (c->o->ca_file) SET(CURLOPT_CAINFO, c->o->ca_file);
  SET(CURLOPT_CONNECTTIMEOUT_MS, c->o->connect_ms);
  /* the request's own limit, or what is left of its owner's deadline if that is sooner */
  long total_ms = download ? c->o->download_ms : c->o->request_ms;
  if (x->deadline > 0) {
    double left = (x->deadline - c->now(c->now_ud)) * 1000;
    if (left < (double)total_ms) total_ms = left > 1 ? (long)left : 1;
  }
  SET(CURLOPT_TIMEOUT_MS, total_ms);
  SET(CURLOPT_LOW_SPEED_LIMIT, c->o->low_speed_bytes);
  SET(CURLOPT_LOW_SPEED_TIME, c->o->low_speed_secs);
  SET(CURLOPT_USERAGENT, c->o->user_agent);
  SET(CURLOPT_HEADERFUNCTION, on_header);
  SET(CURLOPT_HEADERDATA, (void *)x);
  if (x->req.headers) SET(CURLOPT_HTTPHEADER, x->req.headers);
  if (x->req.nparts) {
    x->mime = curl_mime_init(e);
    if (!x->mime) rc = CURLE_OUT_OF_MEMORY;
    for (size_t i = 0; rc == CURLE_OK && i < x->req.nparts; i++) {
      const pf_part *p = &x->req.parts[i];
      curl_mimepart *mp = curl_mime_addpart(x->mime);
      if (!mp) { rc = CURLE_OUT_OF_MEMORY; break; }
      rc = curl_mime_name(mp, p->name);
      if (rc == CURLE_OK && p->file && p->size >= 0 && c->src_open) {
        rc = part_from_worker(c, x, mp, p);
      } else if (rc == CURLE_OK && p->file) {
        rc = curl_mime_filedata(mp, p->file);
        if (rc == CURLE_READ_ERROR) {
          pf_err_set(err, PF_EK_IO, 0, "read", "cannot read %s: %s", p->file, strerror(errno));
          return rc;
        }
      } else if (rc == CURLE_OK) rc = curl_mime_data(mp, p->value ? p->value : "", CURL_ZERO_TERMINATED);
      if (rc == CURLE_OK && p->filename) rc = curl_mime_filename(mp, p->filename);
      if (rc == CURLE_OK && p->type) rc = curl_mime_type(mp, p->type);
    }
    SET(CURLOPT_MIMEPOST, x->mime);
  } else if (x->req.body) {
    SET(CURLOPT_POSTFIELDS, x->req.body);
    SET(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)x->req.body_len);
  } else {
    SET(CURLOPT_HTTPGET, 1L);
  }
  if (download) {
    /* signed result URLs often redirect to a CDN; only http(s) redirects are allowed above */
    SET(CURLOPT_FOLLOWLOCATION, 1L);
    SET(CURLOPT_MAXREDIRS, 5L);
    SET(CURLOPT_FAILONERROR, 1L);
    SET(CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)c->o->max_download);
    x->max_bytes = (curl_off_t)c->o->max_download;
    /* 64 KiB reads: a quarter of the system calls of the 16 KiB default on a large file, and a
     * chunk small enough that the one a pump writes past its budget costs little (W3 and W5 in
     * docs/benchmarks.md); the buffer lives only while the download runs */
    SET(CURLOPT_BUFFERSIZE, 64L * 1024);
    if (x->resume_from > 0) {
      /* the bytes before resume_from are on disk and their head was verified */
      SET(CURLOPT_RESUME_FROM_LARGE, x->resume_from);
      x->headlen = sizeof x->head;
      x->written = x->resume_from;
    }
    SET(CURLOPT_WRITEFUNCTION, write_file);
  } else {
    SET(CURLOPT_ACCEPT_ENCODING, "");
    SET(CURLOPT_WRITEFUNCTION, write_api);
  }
  SET(CURLOPT_WRITEDATA, (void *)x);
#undef SET
  return rc;
}

/* Give transfer x a handle and start it. */
static int activate(pf_net *c, pf_xfer *x, pf_err *err) {
  x->easy = easy_get(c);
  if (!x->easy) {
    pf_err_set(err, PF_EK_NOMEM, 0, "nomem", "could not create a transfer (out of memory)");
    x->start_rc = CURLE_OUT_OF_MEMORY;
    return -1;
  }
  pf_err_clear(err);
  CURLcode rc = configure(c, x, x->easy, err);
  CURLMcode mc = rc == CURLE_OK ? curl_multi_add_handle(c->multi, x->easy) : CURLM_OK;
  if (rc != CURLE_OK || mc != CURLM_OK) {
    x->start_rc = rc != CURLE_OK ? rc : mc == CURLM_OUT_OF_MEMORY ? CURLE_OUT_OF_MEMORY
                                                                   : CURLE_FAILED_INIT;
    if (err->kind != PF_EK_NONE) {
      /* configure said what */
    } else if (rc != CURLE_OK) {
      pf_err_set(err, rc == CURLE_OUT_OF_MEMORY ? PF_EK_NOMEM : PF_EK_TRANSPORT, 0, "setopt",
                 "could not configure the request: %s", curl_easy_strerror(rc));
    } else {
      pf_err_set(err, mc == CURLM_OUT_OF_MEMORY ? PF_EK_NOMEM : PF_EK_TRANSPORT, 0, "multi",
                 "could not start the request: %s", curl_multi_strerror(mc));
    }
    curl_mime_free(x->mime);
    x->mime = NULL;
    easy_put(c, x->easy);
    x->easy = NULL;
    return -1;
  }
  x->active = 1;
  c->fresh++;
  x->net = c;
  x->paused = 0;
  c->hosts[x->host].active++;
  c->started++;
  return 0;
}

/* How many transfers one curl_multi_perform may take up fresh: each costs it a connection (or a
 * reused one's request) in that call, so two hundred started at once would make one pump do all
 * of their connects; the rest wait in their host's queue, in order, for the next pumps. */
#define PF_FRESH_PER_PERFORM 4

static int fresh_full(pf_net *c) {
  /* once the pump's budget is spent (jobs, timers and replies before it took it), its perform
   * takes up one fresh transfer, not four: 200 submits let out at once by their intents cost
   * the first pumps 1.0-1.5 ms in W5's complete200j row otherwise */
  unsigned most = c->pump_end > 0 && pf_monotonic() >= c->pump_end ? 1 : PF_FRESH_PER_PERFORM;
  if (c->fresh < most) return 0;
  c->throttled = 1;
  return 1;
}

/* How many downloads may run at once. Each running one receives in every curl_multi_perform
 * (a recv, libcurl's fresh 64 KiB receive buffer and its page faults, the write callback), so
 * their number, not the budget's checks between callbacks, bounds one perform's work: 200
 * downloads started together had 16 receiving in one perform, 1.6 ms of it (W5's complete200).
 * About 75 us each fit the budget; a larger budget runs more at once. */
#define PF_DL_COST 75e-6
#define PF_DL_MAX 64

static size_t dl_max(const pf_net *c) {
  double b = c->o ? c->o->budget : 0;
  if (!(b > 0)) return PF_DL_MAX;
  double k = b / PF_DL_COST;
  return k < 1 ? 1 : k > PF_DL_MAX ? PF_DL_MAX : (size_t)k;
}

static void dl_release(pf_net *c, pf_xfer *x) {
  if (!x->dlslot) return;
  x->dlslot = 0;
  if (c && c->dl_in > 0) c->dl_in--;
}

/* Take x out of a queue linked by qnext (a host's, the download queue, the failed starts). */
static void queue_unlink(pf_xfer **head, pf_xfer **tail, pf_xfer *x) {
  pf_xfer *prev = NULL;
  for (pf_xfer *q = *head; q; prev = q, q = q->qnext) {
    if (q != x) continue;
    if (prev) prev->qnext = q->qnext;
    else *head = q->qnext;
    if (*tail == x) *tail = prev;
    break;
  }
  x->qnext = NULL;
}

static void unlink_dlq(pf_net *c, pf_xfer *x) {
  queue_unlink(&c->dlq, &c->dlq_tail, x);
  x->dlwait = 0;
  x->waiting = 0;
}

static void unlink_paused(pf_net *c, pf_xfer *x) {
  pf_xfer *prev = NULL;
  for (pf_xfer *q = c->paused; q; prev = q, q = q->pnext) {
    if (q != x) continue;
    if (prev) prev->pnext = q->pnext;
    else c->paused = q->pnext;
    if (c->paused_tail == x) c->paused_tail = prev;
    break;
  }
  x->pnext = NULL;
  x->paused = 0;
}

void pf_net_budget(pf_net *c, double end) {
  c->pump_end = end;
  c->pump_seq++;
  c->throttled = 0;
  /* the paused transfers go on in the order they were paused, while half the budget lasts (the
   * first whatever it costs); the rest wait for the next pump with their sockets unread, so a pump
   * never pays for every transfer's chunk (libcurl may hand over the chunk it kept right here) */
  int first = 1;
  double now = pf_monotonic(), stop = now + (end - now) / 2;   /* half: the rest is the pump's */
  while (c->paused && (first || pf_monotonic() < stop)) {
    pf_xfer *x = c->paused;
    c->paused = x->pnext;
    if (!c->paused) c->paused_tail = NULL;
    x->pnext = NULL;
    x->paused = 0;
    x->grant = first ? c->pump_seq : 0;
    first = 0;
    /* one paused for the disk waits for the worker (pf_xfer_chunk_done) */
    if (x->active && x->easy && !x->disk_paused) curl_easy_pause(x->easy, CURLPAUSE_CONT);
  }
}

int pf_net_paused(const pf_net *c) {
  return c->paused != NULL || c->throttled;
}

int pf_xfer_busy(const pf_xfer *x) {
  return x->active || x->waiting || x->failed;
}

/* x goes to its host: started now if the host has a free slot and nobody waits for it, else
 * queued behind the host's waiting ones. 0, or -1 with err (it could not start). */
static int admit(pf_net *c, pf_xfer *x, pf_err *err) {
  pf_host *h = &c->hosts[x->host];
  if (x->kind == PF_X_DOWNLOAD) {
    x->dlslot = 1;
    c->dl_in++;
  }
  if (!h->qhead && h->active < c->o->max_per_host && !fresh_full(c)) return activate(c, x, err);
  x->waiting = 1;
  x->qnext = NULL;
  if (h->qtail) h->qtail->qnext = x;
  else h->qhead = x;
  h->qtail = x;
  return 0;
}

/* The one place a transfer begins. An owner's pf_xfer holds at most one: a second start while
 * one is running, queued or waiting to be reported is refused (it would overwrite the first,
 * losing its easy handle and its host slot). A request is queued behind the host's waiting ones
 * even when a slot is free, so that queued requests are served first and cannot starve. */
static int xfer_start(pf_net *c, pf_xfer *x, void *owner, pf_xkind kind, pf_http_req *req,
                      struct pf_sink *sink, curl_off_t resume_from, double deadline, pf_err *err) {
  if (pf_xfer_busy(x)) {
    pf_err_set(err, PF_EK_INVALID, 0, "busy", "a request of this task is still in flight");
    pf_http_req_discard(req);
    return -1;
  }
  secure_headers(c, req);
  memset(x, 0, sizeof *x);
  x->sink = sink;               /* a download's file, opened on the worker */
  x->resume_from = resume_from;
  x->kind = kind;
  x->owner = owner;
  x->deadline = deadline;
  x->req = *req;
  memset(req, 0, sizeof *req);
  x->retry_after = -1;
  size_t cap = c->o->max_body;
  /* a status, result or cancel reply is a few KB on every gateway: a far lower cap bounds what
   * a hostile or broken one (a compressed bomb: the cap counts bytes after decoding) can make
   * a pump decode and parse */
  if ((kind == PF_X_STATUS || kind == PF_X_RESULT || kind == PF_X_CANCEL) && cap > PF_STATUS_BODY_MAX)
    cap = PF_STATUS_BODY_MAX;
  pf_buf_init(&x->resp, cap);
  x->host = host_slot(c, x->req.url, err);
  if (x->host == (size_t)-1) goto fail;
  if (kind == PF_X_DOWNLOAD && (c->dlq || c->dl_in >= dl_max(c))) {
    x->waiting = x->dlwait = 1;             /* its turn comes when a download ends */
    x->qnext = NULL;
    if (c->dlq_tail) c->dlq_tail->qnext = x;
    else c->dlq = x;
    c->dlq_tail = x;
    return 0;
  }
  if (admit(c, x, err) != 0) goto fail;
  return 0;
fail:
  x->sink = NULL;               /* the caller still owns and closes the file */
  pf_xfer_release(c, x);
  return -1;
}

int pf_xfer_start(pf_net *n, pf_xfer *x, void *owner, pf_xkind kind, pf_http_req *req,
                  double deadline, pf_err *err) {
  return xfer_start(n, x, owner, kind, req, NULL, 0, deadline, err);
}

int pf_xfer_start_download(pf_net *n, pf_xfer *x, void *owner, pf_http_req *req, struct pf_sink *s,
                           long long resume_from, double deadline, pf_err *err) {
  return xfer_start(n, x, owner, PF_X_DOWNLOAD, req, s, (curl_off_t)resume_from, deadline, err);
}

/* Run one request to its end, blocking, with the same limits as a task's (timeouts, TLS, size
 * cap). Only for calls that are not a task's and whose callers block anyway (resume's lookups).
 * req is consumed. Returns 0 with *http and the body in resp, or -1 with err filled. */
int pf_http_perform(pf_net *c, pf_http_req *req, long *http, pf_buf *resp, double *offset,
                    pf_err *err) {
  pf_xfer x;
  memset(&x, 0, sizeof x);
  secure_headers(c, req);
  x.req = *req;
  memset(req, 0, sizeof *req);
  x.retry_after = -1;
  pf_buf_init(&x.resp, c->o->max_body);
  int rc = -1;
  CURL *e = x.easy = curl_easy_init();
  CURLcode cc = e ? CURLE_OK : CURLE_OUT_OF_MEMORY;
#define SET(opt, val) if (cc == CURLE_OK) cc = curl_easy_setopt(e, opt, val)
  SET(CURLOPT_URL, x.req.url);
  SET(CURLOPT_NOSIGNAL, 1L);
  SET(CURLOPT_ERRORBUFFER, x.errbuf);
  SET(CURLOPT_PROTOCOLS_STR, "http,https");
  SET(CURLOPT_SSL_VERIFYPEER, 1L);
  SET(CURLOPT_SSL_VERIFYHOST, 2L);
  if (c->o->ca_file) SET(CURLOPT_CAINFO, c->o->ca_file);
  SET(CURLOPT_CONNECTTIMEOUT_MS, c->o->connect_ms);
  SET(CURLOPT_TIMEOUT_MS, c->o->request_ms);
  SET(CURLOPT_LOW_SPEED_LIMIT, c->o->low_speed_bytes);
  SET(CURLOPT_LOW_SPEED_TIME, c->o->low_speed_secs);
  SET(CURLOPT_USERAGENT, c->o->user_agent);
  if (x.req.headers) SET(CURLOPT_HTTPHEADER, x.req.headers);
  SET(CURLOPT_WRITEFUNCTION, write_api);
  SET(CURLOPT_WRITEDATA, (void *)&x);
  SET(CURLOPT_HEADERFUNCTION, on_header);
  SET(CURLOPT_HEADERDATA, (void *)&x);
#undef SET
  if (cc == CURLE_OK) cc = curl_easy_perform(e);
  double server_date = pf_xfer_server_date(&x);
  if (offset) *offset = server_date > 0 ? server_date - x.server_date_at : NAN;
  if (cc != CURLE_OK) {
    if (x.too_big) pf_err_set(err, PF_EK_PROTOCOL, 0, "too_large", "the reply was larger than %zu bytes", c->o->max_body);
    else pf_err_from_curl(err, cc, x.errbuf);
  } else {
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, http);
    *resp = x.resp;
    pf_buf_init(&x.resp, 0);
    rc = 0;
  }
  release_headers(c, &x.req);
  pf_xfer_release(NULL, &x);
  return rc;
}

void pf_xfer_release(pf_net *c, pf_xfer *x) {
  if (c) unlist_disk(c, x);
  dl_release(c, x);
  if (x->easy) easy_put(c, x->easy);
  x->easy = NULL;
  curl_mime_free(x->mime);
  x->mime = NULL;
  /* an upload's files: closed on the worker after their reads */
  for (size_t i = 0; i < x->nup; i++) {
    drop_reads(&x->up[i], c);
    if (c && c->src_close) c->src_close(c->sink_ud, x->up[i].src);
  }
  free(x->up);
  x->up = NULL;
  x->nup = 0;
  /* the transfer is over: its key-bearing header lines are wiped and gone now */
  release_headers(c, &x->req);
  pf_http_req_free(&x->req);
  pf_buf_free(&x->resp);
  if (c) pf_net_chunk_put(c, x->chunk);
  else free(x->chunk);
  x->chunk = NULL;
  x->chunklen = 0;
  /* a download stopped before its owner took its file: closed on the worker, after its chunks */
  if (x->sink && c && c->sink_close) c->sink_close(c->sink_ud, x->sink);
  x->sink = NULL;
  x->kind = PF_X_NONE;
  x->active = x->waiting = x->failed = 0;
}

static void xfer_finish(pf_net *c, pf_xfer *x) {
  if (x->paused) unlink_paused(c, x);
  unlist_disk(c, x);
  dl_release(c, x);
  if (x->active) {
    curl_multi_remove_handle(c->multi, x->easy);
    c->hosts[x->host].active--;
    x->active = 0;
  }
}

/* Unlink x from c's list of transfers that failed to start. */
static void unlink_failed(pf_net *c, pf_xfer *x) {
  queue_unlink(&c->fhead, &c->ftail, x);
  x->failed = 0;
}

void pf_xfer_abort(pf_net *c, pf_xfer *x) {
  if (x->failed) unlink_failed(c, x);
  if (x->dlwait) unlink_dlq(c, x);
  if (x->waiting) {
    pf_host *h = &c->hosts[x->host];
    queue_unlink(&h->qhead, &h->qtail, x);
    x->waiting = 0;
  }
  xfer_finish(c, x);
  pf_xfer_release(c, x);
}

/* Start queued transfers whose host has a free slot, oldest first. One that cannot start (its
 * file is gone, no memory) is not put back: it goes on the client's list of failed starts, which
 * the pump reports to its task as a finished transfer (pf_xfer_take_failed), and the queue goes
 * on to the next. */
void pf_xfer_pump_queues(pf_net *c) {
  /* downloads whose turn has come go to their host's queue (or start) first, in order */
  while (c->dlq && c->dl_in < dl_max(c)) {
    pf_xfer *x = c->dlq;
    unlink_dlq(c, x);
    if (admit(c, x, &x->start_err) != 0) {
      x->failed = 1;
      x->qnext = NULL;
      if (c->ftail) c->ftail->qnext = x;
      else c->fhead = x;
      c->ftail = x;
    }
  }
  for (size_t i = 0; i < c->nhosts; i++) {
    pf_host *h = &c->hosts[i];
    while (h->qhead && h->active < c->o->max_per_host && !fresh_full(c)) {
      pf_xfer *x = h->qhead;
      h->qhead = x->qnext;
      if (!h->qhead) h->qtail = NULL;
      x->waiting = 0;
      x->qnext = NULL;
      if (activate(c, x, &x->start_err) != 0) {
        x->failed = 1;
        if (c->ftail) c->ftail->qnext = x;
        else c->fhead = x;
        c->ftail = x;
      }
    }
  }
}

pf_xfer *pf_xfer_take_failed(pf_net *c) {
  pf_xfer *x = c->fhead;
  if (!x) return NULL;
  c->fhead = x->qnext;
  if (!c->fhead) c->ftail = NULL;
  x->qnext = NULL;
  x->rc = x->start_rc;
  x->end = PF_XE_FAILED;
  x->http = 0;
  return x;                                /* x->failed stays set until the transfer is released */
}

void pf_net_perform(pf_net *n) {
  int running = 0;
  curl_multi_perform(n->multi, &running);
  n->fresh = 0;
}

void pf_net_wait(pf_net *n, int ms) {
  if (ms > 0) curl_multi_poll(n->multi, NULL, 0, ms, NULL);
}

static pf_xend end_of(CURLcode rc) {
  switch (rc) {
    case CURLE_OK: return PF_XE_OK;
    case CURLE_FILESIZE_EXCEEDED: return PF_XE_TOO_BIG;
    case CURLE_HTTP_RETURNED_ERROR: return PF_XE_HTTP;
    case CURLE_WRITE_ERROR: return PF_XE_WRITE;
    case CURLE_RANGE_ERROR: return PF_XE_RANGE;
    default: return PF_XE_FAILED;
  }
}

pf_xfer *pf_net_next_done(pf_net *n) {
  CURLMsg *m;
  int left;
  while ((m = curl_multi_info_read(n->multi, &left))) {
    if (m->msg != CURLMSG_DONE) continue;
    CURL *easy = m->easy_handle;
    CURLcode rc = m->data.result;
    pf_xfer *x = NULL;
    curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&x);
    if (!x) continue;
    xfer_finish(n, x);                      /* invalidates m */
    x->rc = rc;
    x->end = end_of(rc);
    x->http = 0;
    curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &x->http);
    return x;
  }
  return NULL;
}

void pf_net_counts(const pf_net *n, size_t *running, size_t *queued) {
  *running = *queued = 0;
  for (size_t i = 0; i < n->nhosts; i++) {
    *running += (size_t)n->hosts[i].active;
    for (const pf_xfer *x = n->hosts[i].qhead; x; x = x->qnext) (*queued)++;
  }
  for (const pf_xfer *x = n->dlq; x; x = x->qnext) (*queued)++;
}

/* ---------------------------------------------------------------- how a transfer failed */

int pf_xfer_never_sent(const pf_xfer *x) {
  if (x->failed) return 1;                  /* it never started */
  CURL *easy = x->easy;
  CURLcode rc = x->rc;
  switch (rc) {
    case CURLE_COULDNT_RESOLVE_HOST: case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_CONNECT: case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION: case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_CERTPROBLEM: case CURLE_UNSUPPORTED_PROTOCOL: case CURLE_URL_MALFORMAT:
      return 1;
    case CURLE_OPERATION_TIMEDOUT: {
      curl_off_t pre = 0;
      curl_easy_getinfo(easy, CURLINFO_PRETRANSFER_TIME_T, &pre);
      return pre == 0;
    }
    default:
      return 0;
  }
}

void pf_xfer_timeout_error(const pf_net *n, const pf_xfer *x, pf_err *e) {
  CURL *easy = x->easy;
  int download = x->kind == PF_X_DOWNLOAD;
  const char *errbuf = x->errbuf;
  const pf_opts *o = n->o;
  /* a reused connection has no connect time: "never got as far as sending" is the test */
  curl_off_t pre = 0;
  char *url = NULL;
  curl_easy_getinfo(easy, CURLINFO_PRETRANSFER_TIME_T, &pre);
  curl_easy_getinfo(easy, CURLINFO_EFFECTIVE_URL, &url);
  char host[256];
  pf_url_host(url ? url : "", host, sizeof host);
  if (errbuf && strstr(errbuf, "too slow")) {
    pf_err_set(e, PF_EK_TIMEOUT, 0, "low_speed",
               "the transfer from %s stayed below low_speed_bytes (%ld bytes/s) for "
               "low_speed_time (%ld s)", host, o->low_speed_bytes, o->low_speed_secs);
  } else if (pre == 0) {
    pf_err_set(e, PF_EK_TIMEOUT, 0, "connect_timeout",
               "no connection to %s within connect_timeout (%.3g s)", host,
               (double)o->connect_ms / 1000);
  } else if (download) {
    pf_err_set(e, PF_EK_TIMEOUT, 0, "download_timeout",
               "the download from %s did not finish within download_timeout (%.3g s)", host,
               (double)o->download_ms / 1000);
  } else {
    pf_err_set(e, PF_EK_TIMEOUT, 0, "request_timeout",
               "%s did not answer within request_timeout (%.3g s)", host,
               (double)o->request_ms / 1000);
  }
  e->retryable = 1;
}

void pf_xfer_curl_error(const pf_xfer *x, pf_err *e) {
  pf_err_from_curl(e, x->rc, x->errbuf);
}

/* The error of the file part of x that could not be read, into e; 0 when none has one. */
static int read_error(const pf_xfer *x, pf_err *e) {
  for (size_t i = 0; i < x->nup; i++)
    if (x->up[i].err.kind != PF_EK_NONE) {
      *e = x->up[i].err;
      return 1;
    }
  return 0;
}

void pf_xfer_error(const pf_net *n, const pf_xfer *x, pf_err *e) {
  if (x->failed && x->start_err.kind != PF_EK_NONE) *e = x->start_err;   /* never started */
  else if (x->read_failed && x->rc == CURLE_ABORTED_BY_CALLBACK && read_error(x, e)) return;
  else if (x->rc == CURLE_OPERATION_TIMEDOUT) pf_xfer_timeout_error(n, x, e);
  else if (x->rc == CURLE_ABORTED_BY_CALLBACK && x->kind == PF_X_SUBMIT && x->sends > 1)
    pf_err_set(e, PF_EK_TRANSPORT, 0, "GOT_NOTHING", "the connection closed after the request "
               "was sent and before any reply (libcurl's own resend of it was stopped)");
  else pf_err_from_curl(e, x->rc, x->errbuf);
}
