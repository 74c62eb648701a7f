/* core.c: luaopen_pixflow_core: the module table, clocks, and the test-only adapter bindings. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine.h"

double pf_monotonic(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

double pf_walltime(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

char *pf_strndup(const char *s, size_t n) {
  char *d = malloc(n + 1);
  if (!d) return NULL;
  memcpy(d, s, n);
  d[n] = '\0';
  return d;
}

char *pf_strdup(const char *s) {
  return pf_strndup(s, strlen(s));
}

static int core_now(lua_State *L) {
  lua_pushnumber(L, pf_monotonic());
  return 1;
}

static int core_time(lua_State *L) {
  lua_pushnumber(L, pf_walltime());
  return 1;
}

/* ------------------------------------------------ test-only adapter bindings (private API) */

static const pf_adapter *upvalue_adapter(lua_State *L) {
  return lua_touserdata(L, lua_upvalueindex(1));
}

static pf_ctx read_ctx(lua_State *L, int idx) {
  pf_ctx ctx = { "test", "https://gateway.invalid", "test-key", 0 };
  if (lua_istable(L, idx)) {
    lua_getfield(L, idx, "provider");
    if (lua_isstring(L, -1)) ctx.provider = lua_tostring(L, -1);
    lua_getfield(L, idx, "base_url");
    if (lua_isstring(L, -1)) ctx.base_url = lua_tostring(L, -1);
    lua_getfield(L, idx, "api_key");
    if (lua_isstring(L, -1)) ctx.api_key = lua_tostring(L, -1);
    lua_getfield(L, idx, "wall_now");
    if (lua_isnumber(L, -1)) ctx.wall_now = lua_tonumber(L, -1);
    lua_pop(L, 4);                          /* the strings stay alive in the ctx table */
  }
  return ctx;
}

static void push_http_req(lua_State *L, const pf_http_req *r) {
  lua_createtable(L, 0, 4);
  lua_pushstring(L, r->method);
  lua_setfield(L, -2, "method");
  lua_pushstring(L, r->url);
  lua_setfield(L, -2, "url");
  if (r->body) {
    lua_pushlstring(L, r->body, r->body_len);
    lua_setfield(L, -2, "body");
  }
  lua_newtable(L);
  int i = 1;
  for (struct curl_slist *h = r->headers; h; h = h->next) {
    lua_pushstring(L, h->data);
    lua_rawseti(L, -2, i++);
  }
  lua_setfield(L, -2, "headers");
}

static int push_fail(lua_State *L, const pf_err *e, const pf_ctx *ctx) {
  lua_pushnil(L);
  pf_err_push(L, e, ctx->provider);
  return 2;
}

typedef struct encode_args { pf_request rq; pf_http_req out; } encode_args;

static int ad_encode_submit(lua_State *L) {
  const pf_adapter *a = upvalue_adapter(L);
  luaL_checktype(L, 1, LUA_TTABLE);
  pf_ctx ctx = read_ctx(L, 2);
  encode_args *ea = lua_newuserdatauv(L, sizeof *ea, 0);
  memset(ea, 0, sizeof *ea);
  lua_pushcfunction(L, pf_read_request_p);
  lua_pushvalue(L, 1);
  lua_pushlightuserdata(L, &ea->rq);
  if (lua_pcall(L, 2, 0, 0) != LUA_OK) {
    pf_request_free(&ea->rq);
    return lua_error(L);
  }
  pf_err e;
  pf_err_clear(&e);
  int rc = a->build_submit(&ctx, &ea->rq, &ea->out, &e);
  pf_request_free(&ea->rq);
  if (rc != 0) { pf_http_req_free(&ea->out); return push_fail(L, &e, &ctx); }
  push_http_req(L, &ea->out);
  pf_http_req_free(&ea->out);
  return 1;
}

static int ad_decode_submit(lua_State *L) {
  const pf_adapter *a = upvalue_adapter(L);
  long http = (long)luaL_checkinteger(L, 1);
  size_t len;
  const char *body = luaL_checklstring(L, 2, &len);
  pf_ctx ctx = read_ctx(L, 3);
  pf_err e;
  pf_err_clear(&e);
  char *id = NULL;
  if (a->parse_submit(&ctx, http, body, len, &id, &e) != 0) return push_fail(L, &e, &ctx);
  lua_pushstring(L, id);
  free(id);
  return 1;
}

static int ad_encode_status(lua_State *L) {
  const pf_adapter *a = upvalue_adapter(L);
  const char *id = luaL_checkstring(L, 1);
  pf_ctx ctx = read_ctx(L, 2);
  pf_http_req out;
  memset(&out, 0, sizeof out);
  pf_err e;
  pf_err_clear(&e);
  if (a->build_status(&ctx, id, &out, &e) != 0) { pf_http_req_free(&out); return push_fail(L, &e, &ctx); }
  push_http_req(L, &out);
  pf_http_req_free(&out);
  return 1;
}

static int ad_decode_status(lua_State *L) {
  const pf_adapter *a = upvalue_adapter(L);
  long http = (long)luaL_checkinteger(L, 1);
  size_t len;
  const char *body = luaL_checklstring(L, 2, &len);
  pf_ctx ctx = read_ctx(L, 3);
  pf_err e;
  pf_err_clear(&e);
  pf_status st;
  pf_status_init(&st);
  if (a->parse_status(&ctx, http, body, len, &st, &e) != 0) {
    pf_status_free(&st);
    return push_fail(L, &e, &ctx);
  }
  lua_createtable(L, 0, 6);
  lua_pushstring(L, pf_state_name(st.state));
  lua_setfield(L, -2, "status");
  if (st.progress >= 0) { lua_pushinteger(L, st.progress); lua_setfield(L, -2, "progress"); }
  if (st.eta >= 0) { lua_pushnumber(L, st.eta); lua_setfield(L, -2, "eta"); }
  if (st.has_cost) { lua_pushnumber(L, st.cost); lua_setfield(L, -2, "cost"); }
  lua_createtable(L, (int)st.nvideos, 0);
  for (size_t i = 0; i < st.nvideos; i++) {
    lua_createtable(L, 0, 2);
    lua_pushstring(L, st.videos[i].url);
    lua_setfield(L, -2, "url");
    if (st.videos[i].expires_at > 0) {
      lua_pushnumber(L, st.videos[i].expires_at);
      lua_setfield(L, -2, "expires_at");
    }
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
  lua_setfield(L, -2, "videos");
  if (st.err.kind != PF_EK_NONE) {
    pf_err_push(L, &st.err, ctx.provider);
    lua_setfield(L, -2, "error");
  }
  pf_status_free(&st);
  return 1;
}

static void push_adapters(lua_State *L) {
  static const char *const names[] = { "apimart", NULL };
  static const luaL_Reg fns[] = {
    { "encode_submit", ad_encode_submit }, { "decode_submit", ad_decode_submit },
    { "encode_status", ad_encode_status }, { "decode_status", ad_decode_status },
    { NULL, NULL },
  };
  lua_newtable(L);
  for (int i = 0; names[i]; i++) {
    const pf_adapter *a = pf_adapter_find(names[i]);
    lua_newtable(L);
    lua_pushlightuserdata(L, (void *)a);
    luaL_setfuncs(L, fns, 1);
    lua_setfield(L, -2, names[i]);
  }
}

PF_API int luaopen_pixflow_core(lua_State *L);
PF_API int luaopen_pixflow_core(lua_State *L) {
  luaL_checkversion(L);
  static int curl_ready = 0;
  if (!curl_ready) {
    /* once per process; libcurl 7.84+ makes this thread-safe */
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
      return luaL_error(L, "pixflow.core: curl_global_init failed");
    curl_ready = 1;
  }
  pf_error_open(L);
  lua_newtable(L);                          /* module */
  lua_pushliteral(L, PF_VERSION);
  lua_setfield(L, -2, "_VERSION");
  /* curl_version_info, not curl_version: the latter initialises libldap, which leaks */
  lua_pushstring(L, curl_version_info(CURLVERSION_NOW)->version);
  lua_setfield(L, -2, "curl_version");
  pf_client_open(L);
  lua_setfield(L, -2, "new_client");
  pf_task_open(L);
  lua_setfield(L, -2, "task_methods");
  luaL_getmetatable(L, "pixflow.error");
  lua_setfield(L, -2, "error_mt");
  lua_pushcfunction(L, core_now);
  lua_setfield(L, -2, "now");
  lua_pushcfunction(L, core_time);
  lua_setfield(L, -2, "time");
  push_adapters(L);
  lua_setfield(L, -2, "_adapters");
  return 1;
}
