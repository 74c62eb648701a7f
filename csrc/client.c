/* client.c: the pixflow.Client type: the curl multi handle, the pump, submit and re-attach. */
#include <ctype.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine.h"
#include "hash.h"
#include "journal.h"
#include "reconcile.h"

#define TIMER_TASK(tm) ((pf_task *)(void *)((char *)(tm) - offsetof(pf_task, timer)))

/* The engine's clock: every due time, back-off and deadline is read from it. Tests inject a
 * manual one (option clock = "manual") that only _advance_clock moves. */
double pf_client_now(const pf_client *c) {
  return (c->manual_clock ? c->clock_origin : pf_monotonic()) + c->clock_offset;
}

double pf_client_rand(pf_client *c) {
  /* xorshift64*: jitter only, not for anything secret */
  uint64_t x = c->rng;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  c->rng = x;
  return (double)((x * 2685821657736338717ULL) >> 11) / 9007199254740992.0;
}

/* Unix time as the client sees it: a manual clock moves it too, so that the gateways' absolute
 * times (apimart's created + estimated_time) agree with the engine's clock in tests and benchmarks. */
double pf_client_wall(const pf_client *c) {
  return c->manual_clock ? c->wall_origin + (pf_client_now(c) - c->clock_origin) : pf_walltime();
}

pf_ctx pf_client_ctx(const pf_client *c, char trace[37]) {
  /* a UUID costs a getrandom() call: only for gateways that want one per request */
  if (c->adapter->trace_ids) pf_uuid4(trace);
  else trace[0] = '\0';
  pf_ctx ctx = { c->provider, c->base_url, c->api_key, pf_client_wall(c), c->auth, trace,
                 c->ref_names };
  return ctx;
}

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

static pf_client *check_client(lua_State *L, int idx) {
  return (pf_client *)luaL_checkudata(L, idx, PF_CLIENT_MT);
}

static pf_client *check_open_client(lua_State *L, int idx) {
  pf_client *c = check_client(L, idx);
  if (c->closed) luaL_error(L, "attempt to use a closed client");
  return c;
}

void pf_task_sync_anchor(lua_State *L, int cidx, int tidx, pf_client *c, pf_task *t) {
  int want = pf_task_in_flight(t);
  if (want == t->anchored) return;
  if (want && tidx == 0) return;            /* cannot happen: only Lua-called methods re-arm */
  lua_getiuservalue(L, cidx, 1);            /* anchors */
  if (want) lua_pushvalue(L, tidx);
  else lua_pushnil(L);
  lua_rawsetp(L, -2, t);                    /* anchors[t] = task or nil */
  c->nanchored += want ? 1 : -1;
  t->anchored = want;
  lua_pop(L, 1);
}

void pf_client_changed(lua_State *L, int cidx, pf_client *c, pf_task *t) {
  (void)L; (void)cidx;
  c->changes++;
  if (t->changed || !t->anchored) return;  /* listed already; or nobody can be told */
  t->changed = 1;
  t->cnext = NULL;
  if (c->ctail) c->ctail->cnext = t;
  else c->chead = t;
  c->ctail = t;
}

void pf_client_unlist(pf_client *c, pf_task *t) {
  if (!t->changed) return;
  pf_task *prev = NULL;
  for (pf_task *q = c->chead; q; prev = q, q = q->cnext) {
    if (q != t) continue;
    if (prev) prev->cnext = q->cnext;
    else c->chead = q->cnext;
    if (c->ctail == t) c->ctail = prev;
    break;
  }
  t->changed = 0;
  t->cnext = NULL;
}

/* Hand the tasks that changed to Lua's changed list (client:_changed()), then unanchor those
 * no longer in flight. Only this allocates (the list grows), after the pump handled every
 * transfer and timer: out of memory here raises with the engine's state whole, and the tasks not
 * yet handed over stay listed and anchored for the next pump. */
static void deliver_changes(lua_State *L, int cidx, pf_client *c) {
  if (!c->chead) return;
  lua_getiuservalue(L, cidx, 1);            /* anchors */
  lua_getiuservalue(L, cidx, 2);            /* changed list */
  int anchors = lua_gettop(L) - 1, list = anchors + 1;
  while (c->chead) {
    pf_task *t = c->chead;
    lua_rawgetp(L, anchors, t);             /* its userdata: anchored while listed */
    lua_rawseti(L, list, (lua_Integer)lua_rawlen(L, list) + 1);   /* may raise: t stays listed */
    c->chead = t->cnext;
    if (!c->chead) c->ctail = NULL;
    t->cnext = NULL;
    t->changed = 0;
    pf_task_sync_anchor(L, cidx, 0, c, t);
  }
  lua_pop(L, 2);
}

/* ---------------------------------------------------------------- options */

/* The core has no option defaults and no policy ranges: lua/pixflow/defaults.lua holds both,
 * pixflow.new checks the user's values there by the user's names and passes every one. What is
 * checked here is only what this C code needs to hold a value safely (a number, finite, within
 * what its C type and the arithmetic on it can take); a value missing or outside that is a
 * misuse of the core and raises. spec/options_spec.lua checks that every range of defaults.lua
 * lies inside these. */
static double need_num(lua_State *L, int idx, const char *k, double lo, double hi) {
  lua_getfield(L, idx, k);
  if (!lua_isnumber(L, -1))
    luaL_error(L, "core.new_client: option '%s' must be a number, got %s (pixflow.new passes "
               "every option, checked)", k, luaL_typename(L, -1));
  double v = lua_tonumber(L, -1);
  if (!(v >= lo && v <= hi))
    luaL_error(L, "core.new_client: option '%s' is %g, which this core cannot take (%g to %g)",
               k, v, lo, hi);
  lua_pop(L, 1);
  return v;
}

static int need_bool(lua_State *L, int idx, const char *k) {
  lua_getfield(L, idx, k);
  if (!lua_isboolean(L, -1))
    luaL_error(L, "core.new_client: option '%s' must be a boolean, got %s", k, luaL_typename(L, -1));
  int v = lua_toboolean(L, -1);
  lua_pop(L, 1);
  return v;
}

static char *opt_str(lua_State *L, int idx, const char *k, int required) {
  lua_getfield(L, idx, k);
  char *v = NULL;
  if (lua_type(L, -1) == LUA_TSTRING) {
    v = pf_strdup(lua_tostring(L, -1));
    if (!v) luaL_error(L, "out of memory");
  } else if (!lua_isnil(L, -1) || required) {
    luaL_error(L, "core.new_client: option '%s' must be a string, got %s", k, luaL_typename(L, -1));
  }
  lua_pop(L, 1);
  return v;
}

static void free_client(pf_client *c) {
  c->closed_journal = 1;                    /* what is still owed is written now, waiting if need be */
  while (c->tasks) pf_task_detach(c->tasks);
  if (c->journal) pf_journal_release(c->journal);
  c->journal = NULL;
  if (c->multi) curl_multi_cleanup(c->multi);
  c->multi = NULL;
  pf_easy_pool_free(c);                     /* also the slabs of key-bearing header lines */
  pf_heap_free(&c->heap);
  free(c->hosts);
  c->hosts = NULL;
  c->nhosts = 0;
  pf_secret_unmap(c->api_key, c->api_key_cap);   /* wiped, then unmapped */
  c->api_key = NULL;
  c->api_key_cap = 0;
  free(c->provider); c->provider = NULL;
  free(c->base_url); c->base_url = NULL;
  free(c->o.ca_file); c->o.ca_file = NULL;
  free(c->auth); c->auth = NULL;
  for (size_t i = 0; i < c->ncache; i++) free(c->cache[i].value);   /* claims are NULL */
  free(c->cache);
  c->cache = NULL;
  c->ncache = 0;
  free(c->o.user_agent); c->o.user_agent = NULL;
  pf_trace_close(c);
  c->closed = 1;
}

/* core.new_client{provider=, adapter=, base_url=, api_key=, ...numbers} -> client | nil, err.
 * Lua (lua/pixflow/init.lua) validates the user's options; this checks types again. */
static int client_new(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  pf_client *c = lua_newuserdatauv(L, sizeof *c, 2);
  memset(c, 0, sizeof *c);
  c->closed = 1;                            /* until fully set up: __gc then frees safely */
  luaL_setmetatable(L, PF_CLIENT_MT);
  lua_newtable(L);
  lua_setiuservalue(L, -2, 1);              /* anchors */
  lua_newtable(L);
  lua_setiuservalue(L, -2, 2);              /* changed */
  pf_heap_init(&c->heap);

  char *adapter = opt_str(L, 1, "adapter", 1);
  c->adapter = pf_adapter_find(adapter);
  free(adapter);
  if (!c->adapter) return luaL_error(L, "bad option 'adapter' (no such wire protocol)");
  c->provider = opt_str(L, 1, "provider", 1);
  c->base_url = opt_str(L, 1, "base_url", 1);
  lua_getfield(L, 1, "api_key");
  if (lua_type(L, -1) == LUA_TSTRING) {
    /* the key's one copy in C: its own pages, out of core dumps, wiped on close */
    size_t klen;
    const char *k = lua_tolstring(L, -1, &klen);
    c->api_key = pf_secret_map(klen + 1, &c->api_key_cap);
    if (!c->api_key) return luaL_error(L, "out of memory (no pages for the API key)");
    memcpy(c->api_key, k, klen + 1);
    pf_scrub_secrets();
  } else if (!lua_isnil(L, -1)) {
    return luaL_error(L, "core.new_client: option 'api_key' must be a string");
  }
  lua_pop(L, 1);
  c->o.ca_file = opt_str(L, 1, "ca_file", 0);
  c->auth = opt_str(L, 1, "auth", 1);
  if (strcmp(c->auth, "bearer") != 0 && strcmp(c->auth, "api-key") != 0)
    return luaL_error(L, "core.new_client: option 'auth' must be \"bearer\" or \"api-key\"");
  c->ref_names = need_bool(L, 1, "ref_names");
  c->o.user_agent = opt_str(L, 1, "user_agent", 1);
  c->closed = 0;
  size_t bl = strlen(c->base_url);
  while (bl > 0 && c->base_url[bl - 1] == '/') c->base_url[--bl] = '\0';

  /* seconds kept as long milliseconds, counts as int: bounds that keep the conversions exact */
  const double MS_SECS = (double)(LONG_MAX / 2000), LONGS = (double)(LONG_MAX / 2), YEARS = 1e9,
               INTS = 1e6;
  c->o.connect_ms = (long)(need_num(L, 1, "connect_timeout", 0.001, MS_SECS) * 1000);
  c->o.request_ms = (long)(need_num(L, 1, "request_timeout", 0.001, MS_SECS) * 1000);
  c->o.download_ms = (long)(need_num(L, 1, "download_timeout", 0.001, MS_SECS) * 1000);
  c->o.low_speed_bytes = (long)need_num(L, 1, "low_speed_bytes", 0, LONGS);
  c->o.low_speed_secs = (long)need_num(L, 1, "low_speed_time", 0, LONGS);
  c->o.max_body = (size_t)need_num(L, 1, "max_body_bytes", 1, 1e15);
  c->o.max_download = (curl_off_t)need_num(L, 1, "max_download_bytes", 1, 1e18);
  c->o.max_per_host = (int)need_num(L, 1, "max_per_host", 1, INTS);
  c->o.poll_initial = need_num(L, 1, "poll_initial", 0, YEARS);
  c->o.poll_interval = need_num(L, 1, "poll_interval", 1e-6, YEARS);
  c->o.poll_max = need_num(L, 1, "poll_max", 1e-6, YEARS);
  c->o.poll_backoff = need_num(L, 1, "poll_backoff", 1, 1e3);          /* < 1 would shrink polls to 0 */
  c->o.poll_jitter = need_num(L, 1, "poll_jitter", 0, 1);
  c->o.poll_min = need_num(L, 1, "poll_min", 1e-6, YEARS);
  c->o.poll_rate = need_num(L, 1, "poll_rate", 0, 1e9);
  c->o.poll_adaptive = need_bool(L, 1, "poll_adaptive");
  c->o.max_poll_failures = (int)need_num(L, 1, "max_poll_failures", 1, INTS);
  c->o.download_attempts = (int)need_num(L, 1, "download_attempts", 1, INTS);
  c->o.upload_attempts = (int)need_num(L, 1, "upload_attempts", 1, INTS);
  c->o.submit_attempts = (int)need_num(L, 1, "submit_attempts", 1, INTS);
  c->o.retry_base = need_num(L, 1, "retry_base", 0, YEARS);
  c->o.retry_max = need_num(L, 1, "retry_max", 0, YEARS);
  c->o.retry_after_max = need_num(L, 1, "retry_after_max", 0, YEARS);
  c->o.task_timeout = need_num(L, 1, "task_timeout", 0, YEARS);
  c->o.lookup_delay = need_num(L, 1, "lookup_delay", 0, YEARS);
  c->o.lookup_attempts = (int)need_num(L, 1, "lookup_attempts", 1, INTS);
  lua_getfield(L, 1, "clock");
  if (!lua_isnil(L, -1)) {
    const char *clk = lua_tostring(L, -1);
    if (!clk || (strcmp(clk, "manual") != 0 && strcmp(clk, "monotonic") != 0))
      return luaL_error(L, "option clock must be \"monotonic\" or \"manual\"");
    c->manual_clock = strcmp(clk, "manual") == 0;
  }
  lua_pop(L, 1);
  c->clock_origin = pf_monotonic();
  c->wall_origin = pf_walltime();
  c->rng = (uint64_t)time(NULL) ^ ((uint64_t)(uintptr_t)c << 16) ^ 0x9E3779B97F4A7C15ULL;
  if (!c->rng) c->rng = 1;

  lua_getfield(L, 1, "journal");
  if (!lua_isnil(L, -1)) {
    c->journal = pf_journal_check(L, -1);
    pf_journal_retain(c->journal);
  }
  lua_pop(L, 1);
  lua_getfield(L, 1, "trace");
  if (!lua_isnil(L, -1)) {
    pf_err e;
    if (!lua_isstring(L, -1)) return luaL_error(L, "bad option 'trace' (a path expected)");
    if (pf_trace_open(c, lua_tostring(L, -1), &e) != 0) {
      lua_pushnil(L);
      pf_err_push(L, &e, NULL);
      return 2;
    }
  }
  lua_pop(L, 1);
  c->multi = curl_multi_init();
  if (!c->multi) {
    pf_err e;
    pf_err_set(&e, PF_EK_NOMEM, 0, "nomem", "could not create a curl multi handle");
    lua_pushnil(L);
    pf_err_push(L, &e, NULL);
    return 2;
  }
  return 1;
}

static int client_gc(lua_State *L) {
  pf_client *c = check_client(L, 1);
  free_client(c);       /* also a half-made client: whatever new_client got before it raised */
  return 0;
}

static int client_close(lua_State *L) {
  pf_client *c = check_client(L, 1);
  if (c->closed) return 0;
  free_client(c);
  lua_newtable(L);
  lua_setiuservalue(L, 1, 1);               /* drop every anchor */
  return 0;
}

static int client_tostring(lua_State *L) {
  pf_client *c = check_client(L, 1);
  if (c->closed) lua_pushfstring(L, "pixflow.Client (%p) [closed]", (void *)c);
  else lua_pushfstring(L, "pixflow.Client (%s %s) [%d in flight]", c->provider, c->base_url,
                       (int)c->nanchored);
  return 1;
}

/* ---------------------------------------------------------------- requests */

static char *req_str(lua_State *L, int idx, const char *k) {
  lua_getfield(L, idx, k);
  char *v = NULL;
  if (lua_type(L, -1) == LUA_TSTRING) {
    v = pf_strdup(lua_tostring(L, -1));
    if (!v) luaL_error(L, "out of memory");
  } else if (!lua_isnil(L, -1)) {
    luaL_error(L, "bad request field '%s' (string expected, got %s)", k, luaL_typename(L, -1));
  }
  lua_pop(L, 1);
  return v;
}

static int req_flag(lua_State *L, int idx, const char *k) {
  lua_getfield(L, idx, k);
  int v = lua_isnil(L, -1) ? -1 : lua_toboolean(L, -1);
  lua_pop(L, 1);
  return v;
}

/* Read a normalised request table (made by lua/pixflow/validate.lua) into rq. */
void pf_read_request(lua_State *L, int idx, pf_request *rq) {
  memset(rq, 0, sizeof *rq);
  char *mode = req_str(L, idx, "mode");
  int m = mode ? pf_mode_from_name(mode) : PF_MODE_TEXT;
  free(mode);
  if (m < 0) luaL_error(L, "bad request field 'mode'");
  rq->mode = (pf_mode)m;
  rq->model = req_str(L, idx, "model");
  rq->prompt = req_str(L, idx, "prompt");
  if (!rq->model || !rq->prompt) luaL_error(L, "bad request: model and prompt are required");
  rq->negative_prompt = req_str(L, idx, "negative_prompt");
  rq->image = req_str(L, idx, "image");
  rq->first_frame = req_str(L, idx, "first_frame");
  rq->last_frame = req_str(L, idx, "last_frame");
  rq->extend_from = req_str(L, idx, "extend_from");
  rq->resolution = req_str(L, idx, "resolution");
  rq->aspect_ratio = req_str(L, idx, "aspect_ratio");
  lua_getfield(L, idx, "duration");
  rq->duration = lua_isinteger(L, -1) ? (int)lua_tointeger(L, -1) : 0;
  lua_pop(L, 1);
  lua_getfield(L, idx, "seed");
  if (lua_isinteger(L, -1)) { rq->has_seed = 1; rq->seed = lua_tointeger(L, -1); }
  lua_pop(L, 1);
  rq->audio = req_flag(L, idx, "audio");
  rq->watermark = req_flag(L, idx, "watermark");
  rq->expand_prompt = req_flag(L, idx, "expand_prompt");
  lua_getfield(L, idx, "count");
  rq->count = lua_isinteger(L, -1) ? (int)lua_tointeger(L, -1) : 0;
  lua_pop(L, 1);
  lua_getfield(L, idx, "references");
  if (lua_istable(L, -1)) {
    size_t n = (size_t)luaL_len(L, -1);
    if (n) {
      rq->refs = calloc(n, sizeof *rq->refs);
      if (!rq->refs) luaL_error(L, "out of memory");
      rq->nrefs = n;
      for (size_t i = 0; i < n; i++) {
        lua_rawgeti(L, -1, (lua_Integer)i + 1);
        int r = lua_gettop(L);
        pf_ref *ref = &rq->refs[i];
        ref->name = req_str(L, r, "name");
        ref->type = req_str(L, r, "type");
        if (!ref->name && !(ref->name = pf_strdup(""))) luaL_error(L, "out of memory");
        lua_getfield(L, r, "images");
        size_t ni = lua_istable(L, -1) ? (size_t)luaL_len(L, -1) : 0;
        if (ni < 1 || ni > PF_MAX_REF_IMAGES)
          luaL_error(L, "bad request field 'references[%d].images' (1 to %d images)", (int)i + 1,
                     PF_MAX_REF_IMAGES);
        for (size_t j = 0; j < ni; j++) {
          lua_rawgeti(L, -1, (lua_Integer)j + 1);
          const char *img = lua_tostring(L, -1);
          if (!img) luaL_error(L, "bad request field 'references[%d].images'", (int)i + 1);
          if (!(ref->images[j] = pf_strdup(img))) luaL_error(L, "out of memory");
          ref->nimages = j + 1;
          lua_pop(L, 1);
        }
        lua_pop(L, 2);
      }
    }
  }
  lua_pop(L, 1);
}

static pf_task *new_task(lua_State *L, int cidx, pf_client *c, int owner_idx) {
  pf_task *t = lua_newuserdatauv(L, sizeof *t, 2);
  memset(t, 0, sizeof *t);
  t->closed = 1;                            /* a half-made task must be safe to collect */
  t->timer.idx = PF_NOT_QUEUED;
  luaL_setmetatable(L, PF_TASK_MT);
  lua_pushvalue(L, cidx);
  lua_setiuservalue(L, -2, 1);
  lua_pushvalue(L, owner_idx);
  lua_setiuservalue(L, -2, 2);
  pf_task_init(t, c);
  return t;
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
 * cached upload result, or an upload before the submit (hashing a local file now, so that a
 * missing file fails before anything is sent). */
static int plan_image(pf_client *c, pf_task *t, char **field, pf_err *err) {
  const char *v = *field;
  if (!v || strncmp(v, "oss://", 6) == 0) return 0;
  int url = is_http_url(v);
  if (url && !c->adapter->upload_urls) return 0;
  if (!url && !c->adapter->build_upload) {
    pf_err_set(err, PF_EK_INVALID, 0, "no_upload", "%s has no upload call, so it cannot take the "
               "local file %s: give a public URL, or configure an uploader", c->provider, v);
    return -1;
  }
  char hex[65], key[sizeof t->ups[0].key];
  if (url) {
    if (pf_sha256_hex(v, strlen(v), hex) != 0) goto nomem;
  } else {
    long long size;
    if (pf_sha256_file(v, hex, &size, err) != 0) return -1;
  }
  /* DashScope binds an upload to the model it was made for [providers.md 5.5] */
  snprintf(key, sizeof key, "%s:%s|%s", url ? "url" : "file", hex,
           strcmp(c->adapter->name, "dashscope") == 0 ? t->rq.model : "");
  const char *hit = pf_cache_get(c, key);
  if (hit) {
    char *nv = pf_strdup(hit);
    if (!nv) goto nomem;
    free(*field);
    *field = nv;
    return 0;
  }
  size_t src;
  for (src = 0; src < t->nups; src++)
    if (strcmp(t->ups[src].key, key) == 0) break;
  if (src == t->nups) {
    pf_upsrc *nu = realloc(t->ups, (t->nups + 1) * sizeof *nu);
    if (!nu) goto nomem;
    t->ups = nu;
    pf_upsrc *u = &nu[t->nups];
    memset(u, 0, sizeof *u);
    t->nups++;
    memcpy(u->key, key, sizeof key);
    const char *base = strrchr(v, '/');
    u->filename = pf_strdup(url ? "image" : (base ? base + 1 : v));
    if (url) u->url = pf_strdup(v);
    else u->path = pf_strdup(v);
    if (!u->filename || (!u->url && !u->path)) goto nomem;
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

static int plan_uploads(pf_client *c, pf_task *t, pf_err *err) {
  pf_request *rq = &t->rq;
  for (size_t i = 0; i < rq->nrefs; i++)
    for (size_t j = 0; j < rq->refs[i].nimages; j++)
      if (plan_image(c, t, &rq->refs[i].images[j], err)) return -1;
  if (plan_image(c, t, &rq->image, err) || plan_image(c, t, &rq->first_frame, err) ||
      plan_image(c, t, &rq->last_frame, err))
    return -1;
  return 0;
}

/* client:submit(request, owner [, hold]) -> task | nil, err. Never blocks: the request is queued
 * and the pump sends it; with hold, it waits for task:_release(extend_from_id). The request's strings are copied, so later changes to it do not count.
 * A protected reader turns any error while copying (bad fields, memory) into a Lua error
 * without leaking the half-read record. */
int pf_read_request_p(lua_State *L) {
  pf_read_request(L, 1, lua_touserdata(L, 2));
  return 0;
}

/* The intent of t in c's journal, before anything of it is sent: key and fields (a JSON object
 * encoded by Lua: provider, base_url, model, request, output, label). */
static int write_intent(pf_client *c, pf_task *t, const char *key, const char *fields, pf_err *e) {
  if (!c->journal || !key) return 0;
  json_t *f = json_loads(fields ? fields : "{}", 0, NULL);
  if (!json_is_object(f)) {
    json_decref(f);
    pf_err_set(e, PF_EK_NOMEM, 0, "nomem", "out of memory (the journal intent)");
    return -1;
  }
  snprintf(t->jkey, sizeof t->jkey, "%s", key);
  const char *stage = t->nups > 0 ? "uploading" : "sending";
  int rc = pf_journal_intent(c->journal, key, pf_walltime(), f, stage, e);
  json_decref(f);
  if (rc != 0) {
    t->jkey[0] = '\0';
    if (e->kind == PF_EK_IO)
      pf_err_append(e, "; nothing was sent, so nothing was charged");
    return -1;
  }
  t->jrec = PF_JR_INTENT | (t->nups > 0 ? 0 : PF_JR_SENDING);
  return 0;
}

/* The journal arguments of submit and release: a table { key =, intent = JSON text } at idx. */
static void journal_args(lua_State *L, int idx, const char **key, const char **intent) {
  *key = *intent = NULL;
  if (lua_isnoneornil(L, idx)) return;
  luaL_checktype(L, idx, LUA_TTABLE);
  lua_getfield(L, idx, "key");
  lua_getfield(L, idx, "intent");
  *key = lua_tostring(L, -2);
  *intent = lua_tostring(L, -1);
  lua_pop(L, 2);                  /* the strings stay alive in the table at idx */
  if (!*key || strlen(*key) >= sizeof ((pf_task *)0)->jkey) luaL_argerror(L, idx, "a journal key expected");
}

int pf_client_write_intent(pf_client *c, pf_task *t, lua_State *L, int idx, pf_err *e) {
  const char *key, *intent;
  journal_args(L, idx, &key, &intent);
  return write_intent(c, t, key, intent, e);
}

static int client_submit(lua_State *L) {
  pf_client *c = check_open_client(L, 1);
  luaL_checktype(L, 2, LUA_TTABLE);
  int hold = lua_toboolean(L, 4);
  /* everything that can raise comes before the request is copied, or frees the copy */
  double timeout = luaL_optnumber(L, 5, c->o.task_timeout);
  luaL_argcheck(L, timeout >= 0, 5, "task_timeout must be >= 0");
  lua_settop(L, 6);
  const char *jkey, *jintent;               /* the journal's key and intent (they stay in arg 6) */
  journal_args(L, 6, &jkey, &jintent);
  pf_task *t = new_task(L, 1, c, 3);        /* may raise (memory): nothing is copied yet */
  int tidx = lua_gettop(L);
  t->closed = 0;
  /* the request is read into the task, whose close frees whatever was copied */
  lua_pushcfunction(L, pf_read_request_p);
  lua_pushvalue(L, 2);
  lua_pushlightuserdata(L, &t->rq);
  if (lua_pcall(L, 2, 0, 0) != LUA_OK) {
    pf_task_detach(t);
    pf_request_free(&t->rq);
    t->closed = 1;
    return lua_error(L);
  }
  lua_settop(L, tidx);
  t->task_timeout = timeout;
  if (!hold) pf_task_start_deadline(c, t);
  pf_request *rqp = &t->rq;
  t->mode = rqp->mode;
  t->model = pf_strdup(rqp->model);
  pf_err e;
  pf_err_clear(&e);
  int rc = !t->model ? -1 : plan_uploads(c, t, &e);
  if (rc == 0 && hold) {
    t->held = 1;                            /* kept alive by the Lua chain that will release it */
    return 1;
  }
  /* recorded before anything is sent (uploads included); refused if it cannot be */
  if (rc == 0) rc = write_intent(c, t, jkey, jintent, &e);
  if (rc == 0) {
    /* uploads first (the pump starts them), else the submit at once */
    rc = t->nups > 0 ? pf_task_schedule(c, t, 0, PF_AT_UPLOAD) : pf_task_submit_start(c, t, &e);
    if (rc != 0 && e.kind == PF_EK_NONE) pf_err_set(&e, PF_EK_NOMEM, 0, "nomem", "out of memory");
  }
  if (rc != 0) {
    if (!t->model) pf_err_set(&e, PF_EK_NOMEM, 0, "nomem", "out of memory");
    t->state = PF_ST_FAILED;
    pf_err_redact(&e, c->api_key);
    t->err = e;
    t->has_err = 1;
    lua_pushnil(L);
    pf_err_push(L, &e, c->provider);
    return 2;
  }
  pf_task_sync_anchor(L, 1, lua_gettop(L), c, t);
  pf_scrub_secrets();                     /* the submit's header lines were built */
  return 1;
}

/* client:attach(id, owner) -> task: re-attach to a task the gateway already accepted. */
static int client_attach(lua_State *L) {
  pf_client *c = check_open_client(L, 1);
  const char *id = luaL_checkstring(L, 2);
  luaL_argcheck(L, id[0] != '\0', 2, "task id is empty");
  double timeout = luaL_optnumber(L, 4, c->o.task_timeout);
  luaL_argcheck(L, timeout >= 0, 4, "task_timeout must be >= 0");
  const char *key = luaL_optstring(L, 5, NULL);
  luaL_argcheck(L, !key || strlen(key) < sizeof ((pf_task *)0)->jkey, 5, "a journal key expected");
  if (key && c->journal) {
    /* one live follower per task across every process: a task another one follows is left
     * to it */
    char what[64];
    snprintf(what, sizeof what, "task:%s", key);
    long pid = 0;
    pf_err e;
    pf_err_clear(&e);
    int r = pf_journal_claim(c->journal, what, &pid, &e);
    if (r == PF_CLAIM_HELD)
      pf_err_set(&e, PF_EK_INVALID, 0, "claimed", "task %s is being followed by another "
                 "running pixflow process (pid %ld); it is left to that one", id, pid);
    if (r < 0 || r == PF_CLAIM_HELD) {
      lua_pushnil(L);
      pf_err_push(L, &e, c->provider);
      return 2;
    }
  }
  lua_settop(L, 3);
  pf_task *t = new_task(L, 1, c, 3);
  t->closed = 0;
  t->task_timeout = timeout;
  pf_task_start_deadline(c, t);
  t->id = pf_strdup(id);
  if (!t->id) return luaL_error(L, "out of memory");
  t->state = PF_ST_QUEUED;
  t->accepted_at = pf_client_now(c);
  if (key && c->journal) {
    snprintf(t->jkey, sizeof t->jkey, "%s", key);
    t->jrec = PF_JR_INTENT | PF_JR_SENDING | PF_JR_ACCEPTED;
  }
  if (pf_task_schedule(c, t, 0, PF_AT_POLL) != 0) return luaL_error(L, "out of memory");
  pf_task_sync_anchor(L, 1, lua_gettop(L), c, t);
  return 1;
}

/* ---------------------------------------------------------------- the pump */

static void fire_timers(lua_State *L, pf_client *c) {
  double now = pf_client_now(c);
  /* only what was due on entry: a timer set again for "now" waits for the next pump */
  size_t budget = c->heap.n;
  pf_timer *tm;
  while (budget-- > 0 && (tm = pf_heap_top(&c->heap)) && tm->due <= now) {
    pf_task *t = TIMER_TASK(tm);
    pf_heap_remove(&c->heap, tm);
    pf_task_on_timer(L, 1, c, t);
  }
}

static void drain(lua_State *L, pf_client *c) {
  CURLMsg *m;
  int left;
  while ((m = curl_multi_info_read(c->multi, &left))) {
    if (m->msg != CURLMSG_DONE) continue;
    CURL *easy = m->easy_handle;
    CURLcode rc = m->data.result;
    pf_task *t = NULL;
    curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&t);
    if (!t) continue;
    pf_xfer_finish(c, t);                   /* invalidates m */
    c->finished++;
    pf_task_on_done(L, 1, c, t, rc);
  }
}

/* Queued transfers that could not start end like any other transfer: their task hears of it
 * (an upload whose file was deleted while it waited fails, naming the file), and the host's
 * queue goes on. */
static void report_failed_starts(lua_State *L, pf_client *c) {
  pf_task *t;
  while ((t = pf_xfer_take_failed(c))) {
    c->finished++;
    pf_task_on_done(L, 1, c, t, t->x.start_rc);
  }
}

/* The longest single wait of the pump in curl_multi_poll. A longer timeout (any size, even
 * math.huge) is waited in slices of this, so converting what is left to int milliseconds can
 * never overflow (past about 24.8 days it did, and the pump spun at 100% CPU). */
#define PF_POLL_SLICE_MS 60000

/* client:poll([timeout]) -> tasks in flight. Never blocks longer than timeout seconds
 * (default 0: return at once; math.huge: until a task changes); returns early once any task
 * changed. */
static int client_poll(lua_State *L) {
  pf_client *c = check_open_client(L, 1);
  double timeout = luaL_optnumber(L, 2, 0);
  luaL_argcheck(L, timeout >= 0, 2, "timeout must be a number >= 0");   /* also refuses NaN */
  double start = pf_monotonic();
  unsigned long changes = c->changes, started0 = c->started, finished0 = c->finished;
  if (c->jpending && pf_client_now(c) >= c->jretry_at) {
    c->jretry_at = pf_client_now(c) + 1;
    for (pf_task *t = c->tasks; t; t = t->next)
      if (t->jpending) pf_task_journal(c, t);
  }
  for (;;) {
    int running = 0;
    fire_timers(L, c);
    pf_xfer_pump_queues(c);
    report_failed_starts(L, c);
    curl_multi_perform(c->multi, &running);
    unsigned long started = c->started;
    drain(L, c);
    pf_xfer_pump_queues(c);
    report_failed_starts(L, c);
    /* what the finished transfers started (the next poll, a download, a queued request) is sent
     * now, in the pump that caused it, not a frame later */
    if (c->started != started) curl_multi_perform(c->multi, &running);
    if (c->changes != changes || c->closed) break;
    double left = timeout - (pf_monotonic() - start);
    if (left <= 0) break;
    pf_timer *tm = pf_heap_top(&c->heap);
    if (tm) {
      double due = tm->due - pf_client_now(c);
      if (due < left) left = due > 0 ? due : 0;
    }
    /* curl_multi_poll also returns when libcurl's own timers need service */
    double ms = ceil(left * 1000);
    if (!(ms <= PF_POLL_SLICE_MS)) ms = PF_POLL_SLICE_MS;   /* also inf */
    if (ms > 0) curl_multi_poll(c->multi, NULL, 0, (int)ms, NULL);
  }
  /* requests built and sent, replies read: fragments of them (the key's header line) are left
   * in the vector registers; a core dump would show them (docs/ARCHITECTURE.md, Secrets) */
  if (c->started != started0 || c->finished != finished0) pf_scrub_secrets();
  if (!c->closed) deliver_changes(L, 1, c);
  lua_pushinteger(L, (lua_Integer)c->nanchored);
  if (c->jerr_new) {                        /* a journal record this pump could not write */
    c->jerr_new = 0;
    pf_err_push(L, &c->jerr, c->provider);
    return 2;
  }
  return 1;
}

/* client:_changed() -> list of tasks that changed since the last call. A pump in which nothing
 * changed hands back the same empty list: a frame loop makes no garbage. */
static int client_changed(lua_State *L) {
  check_client(L, 1);
  lua_getiuservalue(L, 1, 2);
  if (lua_rawlen(L, -1) == 0) return 1;
  lua_newtable(L);
  lua_setiuservalue(L, 1, 2);
  return 1;
}

/* client:_list(model, from, to) -> { {id=, status=, created=}, ... }, complete [, clock] | nil, err: the
 * account's tasks created in [from, to] (Unix seconds), every page of every query window
 * (reconcile.h: each window at most 24 h, padded for the undocumented time zone), each task
 * once. complete is false when the list could not be read to its end (more pages than
 * PF_LIST_MAX_PAGES, a reply that does not say whether more follow, or a list that shifted while
 * it was read): then nothing may be concluded from what is missing. Blocks (resume and batch use
 * it to find an unconfirmed submit), pacing its requests under DashScope's 20 per second.
 * nil, err with code "unsupported" where the gateway has no list. */
static int client_list(lua_State *L) {
  pf_client *c = check_open_client(L, 1);
  const char *model = luaL_checkstring(L, 2);
  double from = luaL_checknumber(L, 3), to = luaL_checknumber(L, 4);
  pf_err e;
  pf_err_clear(&e);
  if (!c->adapter->build_list) {
    pf_err_set(&e, PF_EK_INVALID, 0, "unsupported", "%s has no task list", c->provider);
    lua_pushnil(L);
    pf_err_push(L, &e, c->provider);
    return 2;
  }
  lua_newtable(L);                          /* id -> row: each task once */
  int seen = lua_gettop(L);
  lua_newtable(L);
  int out = lua_gettop(L), n = 0, complete = 1, clock = 0;
  double clock_lo = 0, clock_hi = 0;
  double a, b;
  int nwin = pf_list_window(from, to, 0, &a, &b);
  for (int w = 0; w < nwin; w++) {
    pf_list_window(from, to, w, &a, &b);
    lua_newtable(L);                        /* the ids this window listed: counted once each */
    int wseen = lua_gettop(L);
    long count = 0, total = -1;
    int page, more = 1;
    for (page = 1; more > 0 && page <= PF_LIST_MAX_PAGES; page++) {
      if (page > 1 || w > 0) {
        struct timespec pause = { 0, 60 * 1000 * 1000 };   /* 20 QPS with room to spare */
        nanosleep(&pause, NULL);
      }
      char trace[37];
      pf_ctx ctx = pf_client_ctx(c, trace);
      pf_http_req req;
      memset(&req, 0, sizeof req);
      pf_buf body;
      pf_buf_init(&body, 0);
      long http = 0, ptotal = -1;
      double offset = NAN;
      json_t *items = NULL;
      if (c->adapter->build_list(&ctx, model, a, b, page, &req, &e) != 0 ||
          pf_http_perform(c, &req, &http, &body, &offset, &e) != 0 ||
          c->adapter->parse_list(&ctx, http, body.data, body.len, &items, &more, &ptotal, &e) != 0) {
        pf_http_req_discard(&req);
        pf_buf_free(&body);
        json_decref(items);
        pf_err_redact(&e, c->api_key);
        lua_pushnil(L);
        pf_err_push(L, &e, c->provider);
        return 2;
      }
      pf_buf_free(&body);
      if (ptotal > total) total = ptotal;
      if (offset == offset) {               /* the gateway's clock, from this page's Date */
        if (!clock || offset - 0.5 < clock_lo) clock_lo = offset - 0.5;
        if (!clock || offset + 1 > clock_hi) clock_hi = offset + 1;
        clock = 1;
      }
      size_t i;
      json_t *it;
      json_array_foreach(items, i, it) {
        const char *id = json_string_value(json_object_get(it, "id"));
        if (!id) continue;
        lua_getfield(L, wseen, id);
        if (lua_isnil(L, -1)) {
          count++;                          /* a list that shifted lists one task twice */
          lua_pushboolean(L, 1);
          lua_setfield(L, wseen, id);
        }
        lua_pop(L, 1);
        lua_getfield(L, seen, id);
        int dup = !lua_isnil(L, -1);
        lua_pop(L, 1);
        if (dup) continue;
        lua_createtable(L, 0, 3);
        lua_pushstring(L, id);
        lua_setfield(L, -2, "id");
        lua_pushstring(L, json_string_value(json_object_get(it, "status")));
        lua_setfield(L, -2, "status");
        lua_pushnumber(L, json_number_value(json_object_get(it, "created")));
        lua_setfield(L, -2, "created");
        lua_pushvalue(L, -1);
        lua_setfield(L, seen, id);
        lua_rawseti(L, out, ++n);
      }
      json_decref(items);
    }
    if (more != 0 || (total >= 0 && count < total)) complete = 0;
    lua_pop(L, 1);                          /* wseen */
  }
  lua_pushboolean(L, complete);
  pf_scrub_secrets();
  if (!clock) return 2;
  lua_createtable(L, 0, 2);                 /* the gateway's clock minus ours, within [lo, hi] */
  lua_pushnumber(L, clock_lo);
  lua_setfield(L, -2, "lo");
  lua_pushnumber(L, clock_hi);
  lua_setfield(L, -2, "hi");
  return 3;
}

/* client:_uploads() -> uploads performed, results cached */
static int client_uploads(lua_State *L) {
  pf_client *c = check_client(L, 1);
  lua_pushinteger(L, (lua_Integer)c->uploads);
  lua_pushinteger(L, (lua_Integer)c->ncache);
  return 2;
}

static int client_inflight(lua_State *L) {
  pf_client *c = check_client(L, 1);
  lua_pushinteger(L, c->closed ? 0 : (lua_Integer)c->nanchored);
  return 1;
}

/* client:_transfers() -> running, queued, finished: requests on the wire, waiting for a host
 * slot, and ended since the client was made. */
static int client_transfers(lua_State *L) {
  pf_client *c = check_open_client(L, 1);
  lua_Integer running = 0, queued = 0;
  for (size_t i = 0; i < c->nhosts; i++) {
    running += c->hosts[i].active;
    for (pf_task *t = c->hosts[i].qhead; t; t = t->x.qnext) queued++;
  }
  lua_pushinteger(L, running);
  lua_pushinteger(L, queued);
  lua_pushinteger(L, (lua_Integer)c->finished);
  return 3;
}

/* client:_advance_clock(seconds): move the virtual clock (tests drive back-off with it). */
static int client_advance_clock(lua_State *L) {
  pf_client *c = check_open_client(L, 1);
  double s = luaL_checknumber(L, 2);
  luaL_argcheck(L, s >= 0, 2, "cannot move the clock backwards");
  c->clock_offset += s;
  return 0;
}

/* client:_wall_now() -> the Unix time the client's adapters see (moves with a manual clock) */
static int client_wall_now(lua_State *L) {
  lua_pushnumber(L, pf_client_wall(check_client(L, 1)));
  return 1;
}

/* client:_next_due() -> seconds until the next timer, or nil */
static int client_next_due(lua_State *L) {
  pf_client *c = check_open_client(L, 1);
  pf_timer *tm = pf_heap_top(&c->heap);
  if (!tm) lua_pushnil(L);
  else lua_pushnumber(L, tm->due - pf_client_now(c));
  return 1;
}

/* Tests: the pump with Lua's allocator refusing every allocation that needs memory, to show
 * that running out of it cannot tear the engine's state (pf_client_changed allocates nothing;
 * only handing the changes over can fail, and then loses none of them). */
typedef struct oom_alloc_state {
  lua_Alloc f;
  void *ud;
  int armed;
} oom_alloc_state;

static void *oom_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
  oom_alloc_state *s = ud;
  if (s->armed && nsize > 0 && (ptr == NULL || nsize > osize)) return NULL;
  return s->f(s->ud, ptr, osize, nsize);
}

static int poll_armed(lua_State *L) {
  oom_alloc_state *s = lua_touserdata(L, lua_upvalueindex(1));
  s->armed = 1;                             /* the allocator is set: client, timeout on the stack */
  client_poll(L);
  s->armed = 0;
  return 0;
}

/* client:_poll_without_memory(timeout) -> true | false, message */
static int client_poll_without_memory(lua_State *L) {
  check_open_client(L, 1);
  double timeout = luaL_optnumber(L, 2, 0);
  lua_settop(L, 1);
  oom_alloc_state s;
  s.f = lua_getallocf(L, &s.ud);
  s.armed = 0;
  lua_pushlightuserdata(L, &s);
  lua_pushcclosure(L, poll_armed, 1);       /* made before the allocator refuses anything */
  lua_pushvalue(L, 1);
  lua_pushnumber(L, timeout);
  lua_setallocf(L, oom_alloc, &s);
  int rc = lua_pcall(L, 2, 0, 0);
  s.armed = 0;
  lua_setallocf(L, s.f, s.ud);
  if (rc == LUA_OK) { lua_pushboolean(L, 1); return 1; }
  lua_pushboolean(L, 0);
  lua_insert(L, -2);
  return 2;
}

/* client:_options() -> the options the core runs with, by the core's names (specs compare
 * them with lua/pixflow/defaults.lua) */
static int client_options(lua_State *L) {
  pf_client *c = check_open_client(L, 1);
  const pf_opts *o = &c->o;
  lua_createtable(L, 0, 32);
#define NUM(k, v) (lua_pushnumber(L, (lua_Number)(v)), lua_setfield(L, -2, k))
#define INT(k, v) (lua_pushinteger(L, (lua_Integer)(v)), lua_setfield(L, -2, k))
  NUM("connect_timeout", o->connect_ms / 1000.0);
  NUM("request_timeout", o->request_ms / 1000.0);
  NUM("download_timeout", o->download_ms / 1000.0);
  INT("low_speed_bytes", o->low_speed_bytes);
  INT("low_speed_time", o->low_speed_secs);
  INT("max_body_bytes", o->max_body);
  INT("max_download_bytes", o->max_download);
  INT("max_per_host", o->max_per_host);
  NUM("poll_initial", o->poll_initial);
  NUM("poll_interval", o->poll_interval);
  NUM("poll_max", o->poll_max);
  NUM("poll_backoff", o->poll_backoff);
  NUM("poll_jitter", o->poll_jitter);
  NUM("poll_min", o->poll_min);
  NUM("poll_rate", o->poll_rate);
  lua_pushboolean(L, o->poll_adaptive);
  lua_setfield(L, -2, "poll_adaptive");
  INT("max_poll_failures", o->max_poll_failures);
  INT("download_attempts", o->download_attempts);
  INT("upload_attempts", o->upload_attempts);
  INT("submit_attempts", o->submit_attempts);
  NUM("retry_base", o->retry_base);
  NUM("retry_max", o->retry_max);
  NUM("retry_after_max", o->retry_after_max);
  NUM("task_timeout", o->task_timeout);
  NUM("lookup_delay", o->lookup_delay);
  INT("lookup_attempts", o->lookup_attempts);
#undef NUM
#undef INT
  lua_pushstring(L, o->user_agent);
  lua_setfield(L, -2, "user_agent");
  return 1;
}

static const luaL_Reg client_methods[] = {
  { "submit", client_submit },
  { "attach", client_attach },
  { "poll", client_poll },
  { "close", client_close },
  { "inflight", client_inflight },
  { "_changed", client_changed },
  { "_transfers", client_transfers },
  { "_uploads", client_uploads },
  { "_list", client_list },
  { "_advance_clock", client_advance_clock },
  { "_next_due", client_next_due },
  { "_wall_now", client_wall_now },
  { "_poll_without_memory", client_poll_without_memory },
  { "_options", client_options },
  { NULL, NULL },
};

static const luaL_Reg client_meta[] = {
  { "__gc", client_gc },
  { "__close", client_close },
  { "__tostring", client_tostring },
  { NULL, NULL },
};

void pf_client_open(lua_State *L) {
  luaL_newmetatable(L, PF_CLIENT_MT);
  luaL_setfuncs(L, client_meta, 0);
  luaL_newlib(L, client_methods);
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);
  lua_pushcfunction(L, client_new);
}
