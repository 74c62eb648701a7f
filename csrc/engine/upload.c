/* upload.c: the upload cache (results by content hash, single flight) and planning a request's uploads. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hash.h"
#include "internal.h"

static pf_cache_entry *cache_find(pf_client *c, const char *key) {
  for (size_t i = 0; i < c->ncache; i++)
    if (strcmp(c->cache[i].key, key) == 0) return &c->cache[i];
  return NULL;
}

const char *pf_cache_get(pf_client *c, const char *key) {
  pf_cache_entry *e = cache_find(c, key);
  return e && e->value && e->expires > pf_walltime() ? e->value : NULL;
}

/* Set key's value (NULL: a claim) and expiry; a failed allocation only costs a later miss. */
static void cache_set(pf_client *c, const char *key, char *value, double expires) {
  pf_cache_entry *e = cache_find(c, key);
  if (!e) {
    pf_cache_entry *nc = realloc(c->cache, (c->ncache + 1) * sizeof *nc);
    if (!nc) { free(value); return; }
    c->cache = nc;
    e = &nc[c->ncache++];
    snprintf(e->key, sizeof e->key, "%s", key);
    e->value = NULL;
  }
  free(e->value);
  e->value = value;
  e->expires = expires;
}

void pf_cache_put(pf_client *c, const char *key, const char *value, double ttl) {
  /* unknown lifetimes are taken as 12 h [INFERENCE]; a tenth is kept in hand so a reference
   * never expires between the submit and the gateway reading it */
  char *v = pf_strdup(value);
  if (v) cache_set(c, key, v, pf_walltime() + 0.9 * (ttl > 0 ? ttl : 12 * 3600));
}

int pf_cache_claim(pf_client *c, const char *key) {
  pf_cache_entry *e = cache_find(c, key);
  double now = pf_walltime();
  /* a claim older than ten minutes belongs to an upload that can no longer be running */
  if (e && !e->value && e->expires > now) return 1;
  cache_set(c, key, NULL, now + 600);
  return 0;
}

void pf_cache_release(pf_client *c, const char *key) {
  pf_cache_entry *e = cache_find(c, key);
  if (e && !e->value) e->expires = 0;
}

static const char *mime_for(const char *path) {
  const char *dot = strrchr(path, '.');
  if (!dot) return "application/octet-stream";
  char ext[8];
  size_t i;
  for (i = 0; dot[i + 1] && i < sizeof ext - 1; i++) ext[i] = (char)tolower((unsigned char)dot[i + 1]);
  ext[i] = '\0';
  if (strcmp(ext, "png") == 0) return "image/png";
  if (strcmp(ext, "jpg") == 0 || strcmp(ext, "jpeg") == 0) return "image/jpeg";
  if (strcmp(ext, "webp") == 0) return "image/webp";
  if (strcmp(ext, "gif") == 0) return "image/gif";
  return "application/octet-stream";
}

static int is_http_url(const char *s) {
  return strncmp(s, "http://", 7) == 0 || strncmp(s, "https://", 8) == 0;
}

/* Decide what one image field of t's request needs: nothing (a URL the gateway takes), a
 * cached upload result, or an upload before the submit. A local file is not looked at here (a
 * stat can wait on the disk): the worker checks it and computes its content key
 * (pf_task_post_hashes), the cache is asked then, and a file that is missing or is no image
 * file fails the task there, before anything is sent. label: the field's name, for that error. */
static int plan_image(pf_client *c, pf_task *t, char **field, const char *label, pf_err *err) {
  const char *v = *field;
  if (!v || strncmp(v, "oss://", 6) == 0) return 0;
  int url = is_http_url(v);
  if (url && !c->adapter->upload_urls) return 0;
  if (!url && !c->adapter->build_upload) {
    pf_err_set(err, PF_EK_INVALID, 0, "no_upload", "%s has no upload call, so it cannot take the "
               "local file %s: give a public URL, or configure an uploader", c->provider, v);
    return -1;
  }
  char hex[65], key[sizeof t->ups[0].key] = "";
  if (url) {
    if (pf_sha256_hex(v, strlen(v), hex) != 0) goto nomem;
    pf_upload_key(c, t, 1, hex, key, sizeof key);
    const char *hit = pf_cache_get(c, key);
    if (hit) {
      char *nv = pf_strdup(hit);
      if (!nv) goto nomem;
      free(*field);
      *field = nv;
      return 0;
    }
  }
  size_t src;
  for (src = 0; src < t->nups; src++)
    if (url ? strcmp(t->ups[src].key, key) == 0
            : (t->ups[src].path && strcmp(t->ups[src].path, v) == 0)) break;
  if (src == t->nups) {
    pf_upsrc *nu = realloc(t->ups, (t->nups + 1) * sizeof *nu);
    if (!nu) goto nomem;
    t->ups = nu;
    pf_upsrc *u = &nu[t->nups];
    memset(u, 0, sizeof *u);
    t->nups++;
    memcpy(u->key, key, sizeof key);
    u->hashing = !url;
    u->size = -1;
    const char *base = strrchr(v, '/');
    u->filename = pf_strdup(url ? "image" : (base ? base + 1 : v));
    if (url) u->url = pf_strdup(v);
    else u->path = pf_strdup(v);
    u->label = pf_strdup(label);
    if (!u->filename || (!u->url && !u->path) || !u->label) goto nomem;
    u->mime = mime_for(v);
    u->up.path = u->path;
    u->up.url = u->url;
    u->up.filename = u->filename;
    u->up.mime = u->mime;
    u->up.model = t->rq.model;
  }
  pf_slot *ns = realloc(t->slots, (t->nslots + 1) * sizeof *ns);
  if (!ns) goto nomem;
  t->slots = ns;
  ns[t->nslots].field = field;
  ns[t->nslots].src = src;
  t->nslots++;
  return 0;
nomem:
  pf_err_set(err, PF_EK_NOMEM, 0, "nomem", "out of memory");
  return -1;
}

void pf_upload_key(const pf_client *c, const pf_task *t, int url, const char *hex, char *key,
                   size_t n) {
  /* DashScope binds an upload to the model it was made for [providers.md 5.5] */
  snprintf(key, n, "%s:%s|%s", url ? "url" : "file", hex,
           strcmp(c->adapter->name, "dashscope") == 0 && t->rq.model ? t->rq.model : "");
}

int pf_plan_uploads(pf_client *c, pf_task *t, pf_err *err) {
  pf_request *rq = &t->rq;
  char label[64];
  for (size_t i = 0; i < rq->nrefs; i++)
    for (size_t j = 0; j < rq->refs[i].nimages; j++) {
      /* the names the validation gives (references[1].image, or .images[2] of several) */
      if (rq->refs[i].nimages == 1) snprintf(label, sizeof label, "references[%zu].image", i + 1);
      else snprintf(label, sizeof label, "references[%zu].images[%zu]", i + 1, j + 1);
      if (plan_image(c, t, &rq->refs[i].images[j], label, err)) return -1;
    }
  if (plan_image(c, t, &rq->image, "image", err) ||
      plan_image(c, t, &rq->first_frame, "first_frame", err) ||
      plan_image(c, t, &rq->last_frame, "last_frame", err))
    return -1;
  return pf_task_post_hashes(c, t, err);
}
