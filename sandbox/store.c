/* store.c: the sandbox's task table, its ids, its timing and its per-gateway counters. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sandbox.h"

const char *const sbx_gw_names[SBX_GW__COUNT] = {
  "apimart", "pixverse", "quickrouter", "dashscope", "jiekou", "baicai",
};

typedef struct sbx_object {
  struct sbx_object *next;
  int gw;
  char *key, *value;
} sbx_object;

double sbx_now(void) {
  double v;
  /* the virtual clock: a benchmark or test moves it with POST /_sandbox/clock */
  __atomic_load(&g_sbx.clock, &v, __ATOMIC_ACQUIRE);
  if (v > 0) return v;
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void sbx_clock_set(double now) {
  __atomic_store(&g_sbx.clock, &now, __ATOMIC_RELEASE);
}

static uint64_t next_rand(void) {
  uint64_t x = g_sbx.rng;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  g_sbx.rng = x;
  return x * 2685821657736338717ULL;
}

const char *sbx_scheme(void) { return g_sbx.tls_cert ? "https" : "http"; }

double sbx_rand01(void) {
  return (double)(next_rand() >> 11) / 9007199254740992.0;
}

static size_t hash(int gw, const char *s) {
  size_t h = 1469598103934665603ULL ^ (size_t)gw;
  for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ULL;
  return h;
}

int sbx_store_init(size_t nbuckets) {
  g_sbx.buckets = calloc(nbuckets, sizeof *g_sbx.buckets);
  g_sbx.objects = calloc(nbuckets, sizeof *g_sbx.objects);
  if (!g_sbx.buckets || !g_sbx.objects) return -1;
  g_sbx.nbuckets = nbuckets;
  /* the first id is the one third-party kits show, 629000000000000001: above 2^53 */
  g_sbx.next_id64 = 629000000000000001ULL;
  return 0;
}

void sbx_id64(char *out, size_t n) {
  pthread_mutex_lock(&g_sbx.lock);
  unsigned long long v = g_sbx.next_id64;
  g_sbx.next_id64 += 1 + (next_rand() % 97);
  pthread_mutex_unlock(&g_sbx.lock);
  snprintf(out, n, "%llu", v);
}

void sbx_object_put(int gw, const char *key, const char *value) {
  sbx_object *o = calloc(1, sizeof *o);
  if (!o) return;
  o->gw = gw;
  o->key = strdup(key);
  o->value = strdup(value);
  if (!o->key || !o->value) { free(o->key); free(o->value); free(o); return; }
  pthread_mutex_lock(&g_sbx.lock);
  size_t b = hash(gw, key) % g_sbx.nbuckets;
  o->next = g_sbx.objects[b];
  g_sbx.objects[b] = o;
  pthread_mutex_unlock(&g_sbx.lock);
}

int sbx_object_get(int gw, const char *key, char *out, size_t n) {
  int found = 0;
  pthread_mutex_lock(&g_sbx.lock);
  for (sbx_object *o = g_sbx.objects[hash(gw, key) % g_sbx.nbuckets]; o; o = o->next) {
    if (o->gw == gw && strcmp(o->key, key) == 0) {
      snprintf(out, n, "%s", o->value);
      found = 1;
      break;
    }
  }
  pthread_mutex_unlock(&g_sbx.lock);
  return found;
}

static sbx_task *find(int gw, const char *id) {
  for (sbx_task *t = g_sbx.buckets[hash(gw, id) % g_sbx.nbuckets]; t; t = t->next)
    if (t->gw == gw && strcmp(t->id, id) == 0) return t;
  return NULL;
}

static void outcome_from_prompt(sbx_task *t, const char *prompt) {
  if (strstr(prompt, "#moderate")) t->outcome = SBX_MODERATE;
  else if (strstr(prompt, "#fail")) t->outcome = SBX_FAIL;
  else if (strstr(prompt, "#never")) t->outcome = SBX_NEVER;
  else if (strstr(prompt, "#novideo")) t->outcome = SBX_NO_VIDEO;
  else if (strstr(prompt, "#notmp4")) t->outcome = SBX_NOT_MP4;
  const char *sz = strstr(prompt, "#size=");
  if (sz) t->result_size = strtoull(sz + 6, NULL, 10);
  t->no_length = strstr(prompt, "#nolength") != NULL;
  const char *ttl = strstr(prompt, "#urlttl=");
  t->url_ttl = ttl ? strtod(ttl + 8, NULL) : 86400;
  const char *pad = strstr(prompt, "#bigreply=");
  if (pad) t->pad = (size_t)strtoull(pad + 10, NULL, 10);
  const char *secs = strstr(prompt, "#seconds=");
  if (secs) t->seconds = strtod(secs + 9, NULL);
  const char *polls = strstr(prompt, "#polls=");
  if (polls) t->finish_polls = atoi(polls + 7);
  const char *est = strstr(prompt, "#estimate=");
  t->estimate = est ? strtod(est + 10, NULL) : t->seconds;
  const char *fat = strstr(prompt, "#failat=");
  if (fat) t->fail_at = strtod(fat + 8, NULL);
  const char *shape = strstr(prompt, "#reply=");
  if (shape) snprintf(t->reply, sizeof t->reply, "%.*s", (int)strcspn(shape, " \t\n"), shape);
}

int sbx_reply_is(const char *text, const char *name) {
  const char *p = text ? strstr(text, "#reply=") : NULL;
  if (!p) return 0;
  p += 7;
  size_t n = strlen(name), end = strcspn(p, " \t\n");
  for (size_t i = 0; i < end;) {
    size_t w = strcspn(p + i, ", \t\n");
    if (w == n && strncmp(p + i, name, n) == 0) return 1;
    i += w + 1;
  }
  return 0;
}

sbx_task *sbx_task_new(int gw, const char *key, const char *prompt, const char *mode,
                       const char *prefix, const char *alphabet, size_t nrand) {
  sbx_task *t = calloc(1, sizeof *t);
  if (!t) return NULL;
  t->gw = gw;
  snprintf(t->key, sizeof t->key, "%s", key ? key : "");
  snprintf(t->mode, sizeof t->mode, "%s", mode ? mode : "");
  snprintf(t->prompt_head, sizeof t->prompt_head, "%s", prompt ? prompt : "");
  t->created = sbx_now();
  t->seconds = g_sbx.task_seconds;
  t->nvideos = 1;
  outcome_from_prompt(t, prompt ? prompt : "");
  size_t alen = alphabet ? strlen(alphabet) : 0;
  if (!alphabet) sbx_id64(t->id, sizeof t->id);   /* numeric 64-bit ids */
  pthread_mutex_lock(&g_sbx.lock);
  if (alphabet) do {
    size_t o = (size_t)snprintf(t->id, sizeof t->id, "%s", prefix);
    for (size_t i = 0; i < nrand && o + 1 < sizeof t->id; i++)
      t->id[o++] = alphabet[next_rand() % alen];
    t->id[o] = '\0';
  } while (find(gw, t->id));
  size_t b = hash(gw, t->id) % g_sbx.nbuckets;
  t->next = g_sbx.buckets[b];
  g_sbx.buckets[b] = t;
  g_sbx.ntasks++;
  g_sbx.stats[gw].tasks++;
  pthread_mutex_unlock(&g_sbx.lock);
  return t;
}

int sbx_task_cancel(int gw, const char *id) {
  int r = -1;
  pthread_mutex_lock(&g_sbx.lock);
  sbx_task *t = find(gw, id);
  if (t) {
    r = sbx_task_phase(t, sbx_now()).phase == 0 && !t->canceled;
    if (r) t->canceled = 1;
  }
  pthread_mutex_unlock(&g_sbx.lock);
  return r;
}

size_t sbx_task_list(int gw, const char *key, double from, double to, sbx_task *out, size_t max) {
  size_t n = 0;
  pthread_mutex_lock(&g_sbx.lock);
  for (size_t b = 0; b < g_sbx.nbuckets && n < max; b++)
    for (sbx_task *t = g_sbx.buckets[b]; t && n < max; t = t->next)
      if (t->gw == gw && strcmp(t->key, key) == 0 && t->created >= from && t->created <= to)
        out[n++] = *t;
  pthread_mutex_unlock(&g_sbx.lock);
  return n;
}

static int by_created(const void *a, const void *b) {
  double x = ((const sbx_task *)a)->created, y = ((const sbx_task *)b)->created;
  return (x > y) - (x < y);
}

sbx_task *sbx_task_list_all(int gw, const char *key, double from, double to, size_t *n) {
  *n = 0;
  pthread_mutex_lock(&g_sbx.lock);
  size_t cap = 0;
  for (size_t b = 0; b < g_sbx.nbuckets; b++)
    for (sbx_task *t = g_sbx.buckets[b]; t; t = t->next)
      if (t->gw == gw && strcmp(t->key, key) == 0 && t->created >= from && t->created <= to) cap++;
  sbx_task *out = cap ? malloc(cap * sizeof *out) : NULL;
  for (size_t b = 0; out && b < g_sbx.nbuckets; b++)
    for (sbx_task *t = g_sbx.buckets[b]; t; t = t->next)
      if (t->gw == gw && strcmp(t->key, key) == 0 && t->created >= from && t->created <= to)
        out[(*n)++] = *t;
  pthread_mutex_unlock(&g_sbx.lock);
  /* oldest first: the order the real list uses is NOT FOUND, and this one puts the newest task
   * (an unconfirmed submit's) on the last page, where a reader that stops early misses it */
  if (out) qsort(out, *n, sizeof *out, by_created);
  return out;
}

void sbx_task_set_created(int gw, const char *id, double created) {
  pthread_mutex_lock(&g_sbx.lock);
  sbx_task *t = find(gw, id);
  if (t) t->created = created;
  pthread_mutex_unlock(&g_sbx.lock);
}

void sbx_task_set_pub(int gw, const char *id, const char *pub_id) {
  pthread_mutex_lock(&g_sbx.lock);
  sbx_task *t = find(gw, id);
  if (t) snprintf(t->pub_id, sizeof t->pub_id, "%s", pub_id);
  pthread_mutex_unlock(&g_sbx.lock);
}

void sbx_task_set(int gw, const char *id, const char *model, int nvideos, int stuck) {
  pthread_mutex_lock(&g_sbx.lock);
  sbx_task *t = find(gw, id);
  if (t) {
    if (model) snprintf(t->model, sizeof t->model, "%s", model);
    if (nvideos > 0) t->nvideos = nvideos;
    if (stuck) t->stuck = 1;
  }
  pthread_mutex_unlock(&g_sbx.lock);
}

void sbx_task_set_credits(int gw, const char *id, int credits) {
  pthread_mutex_lock(&g_sbx.lock);
  sbx_task *t = find(gw, id);
  if (t) t->credits = credits;
  pthread_mutex_unlock(&g_sbx.lock);
}

int sbx_task_get(int gw, const char *id, sbx_task *out) {
  pthread_mutex_lock(&g_sbx.lock);
  sbx_task *t = find(gw, id);
  if (t) *out = *t;
  pthread_mutex_unlock(&g_sbx.lock);
  return t != NULL;
}

int sbx_task_poll(int gw, const char *id, sbx_task *out) {
  pthread_mutex_lock(&g_sbx.lock);
  sbx_task *t = find(gw, id);
  if (t) {
    t->polled++;
    *out = *t;
  }
  pthread_mutex_unlock(&g_sbx.lock);
  return t != NULL;
}

void sbx_upload_seen(int gw, const sbx_field *f) {
  pthread_mutex_lock(&g_sbx.lock);
  g_sbx.stats[gw].uploads++;
  g_sbx.stats[gw].upload_sum = f->sum;
  pthread_mutex_unlock(&g_sbx.lock);
}

void sbx_count(int gw, size_t offset) {
  pthread_mutex_lock(&g_sbx.lock);
  (*(unsigned long *)(void *)((char *)&g_sbx.stats[gw] + offset))++;
  pthread_mutex_unlock(&g_sbx.lock);
}

void sbx_sending(int gw, int delta) {
  pthread_mutex_lock(&g_sbx.lock);
  sbx_stats *s = &g_sbx.stats[gw];
  if (delta > 0) s->sending++;
  else if (s->sending > 0) s->sending--;
  if (s->sending > s->most_sending) s->most_sending = s->sending;
  pthread_mutex_unlock(&g_sbx.lock);
}

json_t *sbx_stats_json(void) {
  json_t *o = json_object();
  pthread_mutex_lock(&g_sbx.lock);
  for (int i = 0; o && i < SBX_GW__COUNT; i++) {
    const sbx_stats *s = &g_sbx.stats[i];
    char sum[17];
    snprintf(sum, sizeof sum, "%016lx", s->upload_sum);
    json_object_set_new(o, sbx_gw_names[i],
                        json_pack("{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:s,s:I}", "submits", (json_int_t)s->submits,
                                  "tasks", (json_int_t)s->tasks, "polls", (json_int_t)s->polls,
                                  "downloads", (json_int_t)s->downloads,
                                  "uploads", (json_int_t)s->uploads,
                                  "errors", (json_int_t)s->errors,
                                  "faults", (json_int_t)s->faults,
                                  "resumed", (json_int_t)s->resumed,
                                  "lists", (json_int_t)s->lists,
                                  "list_rejected", (json_int_t)s->list_rejected,
                                  "list_status", (json_int_t)s->list_status,
                                  "upload_sum", sum, "most_sending", (json_int_t)s->most_sending));
  }
  pthread_mutex_unlock(&g_sbx.lock);
  return o;
}

void sbx_reset(void) {
  pthread_mutex_lock(&g_sbx.lock);
  memset(g_sbx.stats, 0, sizeof g_sbx.stats);
  for (size_t b = 0; b < g_sbx.nbuckets; b++) {
    while (g_sbx.buckets[b]) {
      sbx_task *t = g_sbx.buckets[b];
      g_sbx.buckets[b] = t->next;
      free(t);
    }
    while (g_sbx.objects[b]) {
      sbx_object *o = g_sbx.objects[b];
      g_sbx.objects[b] = o->next;
      free(o->key);
      free(o->value);
      free(o);
    }
  }
  g_sbx.ntasks = 0;
  pthread_mutex_unlock(&g_sbx.lock);
}

sbx_phase sbx_task_phase(const sbx_task *t, double now) {
  sbx_phase p = { 0, 0, 0 };
  double el = now - t->created;
  double total = t->seconds > 0 ? t->seconds : 0;
  if (t->outcome == SBX_NEVER || t->stuck) total = 1e12;
  if (t->canceled) { p.phase = 2; p.pct = 0; return p; }
  if (t->finish_polls > 0 && t->outcome != SBX_NEVER && !t->stuck) {
    /* ends by count: running from the first poll, done at the Nth */
    if (t->polled >= t->finish_polls) { p.phase = 2; p.pct = 100; return p; }
    p.phase = 1;
    p.pct = 100 * t->polled / t->finish_polls;
    if (p.pct < 1) p.pct = 1;
    return p;
  }
  p.left = total - el > 0 ? total - el : 0;
  if (el >= total) { p.phase = 2; p.pct = 100; return p; }
  /* #failat: a failure or moderation part-way, while progress and estimates follow #seconds */
  if (t->fail_at > 0 && el >= t->fail_at && (t->outcome == SBX_FAIL || t->outcome == SBX_MODERATE)) {
    p.phase = 2;
    p.pct = (int)(100.0 * t->fail_at / total);
    p.left = 0;
    return p;
  }
  /* the first 15% of the time is spent queued */
  if (el < 0.15 * total) return p;
  p.phase = 1;
  p.pct = (int)(100.0 * el / total);
  if (p.pct > 99) p.pct = 99;
  if (p.pct < 1) p.pct = 1;
  return p;
}

int sbx_is_http_url(const char *s) {
  return s && (strncmp(s, "http://", 7) == 0 || strncmp(s, "https://", 8) == 0) &&
         strlen(s) > 8;
}

int sbx_is_image(const sbx_field *f) {
  const unsigned char *h = f->head;
  if (!f->is_file || f->size < 12) return 0;
  return (h[0] == 0x89 && h[1] == 'P' && h[2] == 'N' && h[3] == 'G') ||
         (h[0] == 0xFF && h[1] == 0xD8) || memcmp(h, "GIF8", 4) == 0 ||
         (memcmp(h, "RIFF", 4) == 0 && memcmp(h + 8, "WEBP", 4) == 0);
}

int sbx_one_of(const char *s, const char *const *list) {
  for (int i = 0; s && list[i]; i++)
    if (strcmp(s, list[i]) == 0) return 1;
  return 0;
}

static int name_char(unsigned char c) { return isalnum(c) || c == '_' || c == '-' || c >= 0x80; }

const char *sbx_check_names(const char *prompt, const char *const *names, size_t n, char *bad, size_t badn) {
  for (const char *p = prompt; (p = strchr(p, '@')); p++) {
    if (p > prompt && name_char((unsigned char)p[-1])) continue;
    const char *e = p + 1;
    while (*e && name_char((unsigned char)*e)) e++;
    if (e == p + 1) continue;
    size_t len = (size_t)(e - p - 1);
    snprintf(bad, badn, "%.*s", (int)len, p + 1);
    int found = 0;
    for (size_t i = 0; i < n; i++)
      if (names[i] && strlen(names[i]) == len && strncmp(names[i], p + 1, len) == 0) found = 1;
    if (!found) return "does not match any reference name";
    if (*e && *e != ' ') return "must be followed by a space";
  }
  return NULL;
}

size_t sbx_utf8_len(const char *s) {
  size_t n = 0;
  for (; *s; s++)
    if (((unsigned char)*s & 0xC0) != 0x80) n++;
  return n;
}
