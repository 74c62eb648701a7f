/* module.c: luaopen_pixflow_core: the module table, clocks, and the test-only adapter bindings. */
#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "binding.h"
#include "fs.h"
#include "retry.h"

/* core._retry_delay(base, max, after_max, failures, retry_after, rnd): the back-off policy as
 * a pure function, for specs. */
static int core_retry_delay(lua_State *L) {
  lua_pushnumber(L, pf_retry_delay(luaL_checknumber(L, 1), luaL_checknumber(L, 2),
                                   luaL_checknumber(L, 3), (int)luaL_checkinteger(L, 4),
                                   luaL_optnumber(L, 5, -1), luaL_checknumber(L, 6)));
  return 1;
}

static int core_now(lua_State *L) {
  lua_pushnumber(L, pf_monotonic());
  return 1;
}

static int core_time(lua_State *L) {
  lua_pushnumber(L, pf_walltime());
  return 1;
}

/* core._name_bytes(): every byte a prompt's @name may hold (pf_name_byte), as one string, so
 * that lua/pixflow/validate.lua takes its rule from here instead of writing it again. */
static int core_name_bytes(lua_State *L) {
  char bytes[256];
  size_t n = 0;
  for (int c = 1; c < 256; c++)
    if (pf_name_byte((unsigned char)c)) bytes[n++] = (char)c;
  lua_pushlstring(L, bytes, n);
  return 1;
}

/* ------------------------------------------------ test-only adapter bindings (private API) */

static const pf_adapter *upvalue_adapter(lua_State *L) {
  return lua_touserdata(L, lua_upvalueindex(1));
}

/* The ctx table of a test call: { provider, base_url, api_key, wall_now, auth, trace_id,
 * ref_names }; its strings stay alive in the table, which the caller keeps on the stack. */
static pf_ctx read_ctx(lua_State *L, int idx) {
  pf_ctx ctx = { "test", "https://gateway.invalid", "test-key", 0, NULL,
                 "00000000-0000-4000-8000-000000000000", 1 };
  if (!lua_istable(L, idx)) return ctx;
  const char **strs[] = { &ctx.provider, &ctx.base_url, &ctx.api_key, &ctx.auth, &ctx.trace_id };
  const char *names[] = { "provider", "base_url", "api_key", "auth", "trace_id" };
  for (int i = 0; i < 5; i++) {
    lua_getfield(L, idx, names[i]);
    if (lua_isstring(L, -1)) *strs[i] = lua_tostring(L, -1);
    lua_pop(L, 1);
  }
  lua_getfield(L, idx, "wall_now");
  if (lua_isnumber(L, -1)) ctx.wall_now = lua_tonumber(L, -1);
  lua_getfield(L, idx, "ref_names");
  if (!lua_isnil(L, -1)) ctx.ref_names = lua_toboolean(L, -1);
  lua_pop(L, 2);
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
  if (r->nparts) {
    lua_createtable(L, (int)r->nparts, 0);
    for (size_t k = 0; k < r->nparts; k++) {
      const pf_part *p = &r->parts[k];
      lua_createtable(L, 0, 5);
      lua_pushstring(L, p->name);
      lua_setfield(L, -2, "name");
      const char *f[] = { p->value, p->file, p->filename, p->type };
      const char *n[] = { "value", "file", "filename", "type" };
      for (int j = 0; j < 4; j++) {
        if (!f[j]) continue;
        lua_pushstring(L, f[j]);
        lua_setfield(L, -2, n[j]);
      }
      lua_rawseti(L, -2, (lua_Integer)k + 1);
    }
    lua_setfield(L, -2, "parts");
  }
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
  /* the second result: the costs the reply names (a list, or nil) */
  pf_status cs;
  pf_status_init(&cs);
  if (a->submit_costs) a->submit_costs(&ctx, http, body, len, &cs);
  pf_push_costs(L, cs.costs, cs.ncosts, 1);
  return 2;
}

typedef int (*build_by_id)(const pf_ctx *, const char *, pf_http_req *, pf_err *);

/* encode_status / encode_result / encode_cancel (upvalue 2: which) */
static int ad_encode_by_id(lua_State *L) {
  const pf_adapter *a = upvalue_adapter(L);
  int which = (int)lua_tointeger(L, lua_upvalueindex(2));
  build_by_id build = which == 0 ? a->build_status : which == 1 ? a->build_result : a->build_cancel;
  const char *id = luaL_checkstring(L, 1);
  pf_ctx ctx = read_ctx(L, 2);
  if (!build) return luaL_error(L, "%s has no such call", a->name);
  pf_http_req out;
  memset(&out, 0, sizeof out);
  pf_err e;
  pf_err_clear(&e);
  if (build(&ctx, id, &out, &e) != 0) { pf_http_req_free(&out); return push_fail(L, &e, &ctx); }
  push_http_req(L, &out);
  pf_http_req_free(&out);
  return 1;
}

static void push_status(lua_State *L, const pf_status *st, const pf_ctx *ctx) {
  lua_createtable(L, 0, 6);
  lua_pushstring(L, pf_state_name(st->state));
  lua_setfield(L, -2, "status");
  if (st->progress >= 0) { lua_pushinteger(L, st->progress); lua_setfield(L, -2, "progress"); }
  if (st->eta >= 0) { lua_pushnumber(L, st->eta); lua_setfield(L, -2, "eta"); }
  if (st->ncosts) {
    pf_push_costs(L, st->costs, st->ncosts, 0);
    lua_setfield(L, -2, "cost");
    pf_push_costs(L, st->costs, st->ncosts, 1);
    lua_setfield(L, -2, "costs");
  }
  if (st->need_result) { lua_pushboolean(L, 1); lua_setfield(L, -2, "need_result"); }
  lua_createtable(L, (int)st->nvideos, 0);
  for (size_t i = 0; i < st->nvideos; i++) {
    lua_createtable(L, 0, 2);
    lua_pushstring(L, st->videos[i].url);
    lua_setfield(L, -2, "url");
    if (st->videos[i].expires_at > 0) {
      lua_pushnumber(L, st->videos[i].expires_at);
      lua_setfield(L, -2, "expires_at");
    }
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
  lua_setfield(L, -2, "videos");
  if (st->err.kind != PF_EK_NONE) {
    pf_err_push(L, &st->err, ctx->provider);
    lua_setfield(L, -2, "error");
  }
}

/* decode_status / decode_result (upvalue 2: which) */
static int ad_decode_status(lua_State *L) {
  const pf_adapter *a = upvalue_adapter(L);
  int which = (int)lua_tointeger(L, lua_upvalueindex(2));
  int (*parse)(const pf_ctx *, long, const char *, size_t, pf_status *, pf_err *) =
    which == 0 ? a->parse_status : a->parse_result;
  long http = (long)luaL_checkinteger(L, 1);
  size_t len;
  const char *body = luaL_checklstring(L, 2, &len);
  pf_ctx ctx = read_ctx(L, 3);
  if (!parse) return luaL_error(L, "%s has no such call", a->name);
  pf_err e;
  pf_err_clear(&e);
  pf_status st;
  pf_status_init(&st);
  if (parse(&ctx, http, body, len, &st, &e) != 0) {
    pf_status_free(&st);
    return push_fail(L, &e, &ctx);
  }
  push_status(L, &st, &ctx);
  pf_status_free(&st);
  return 1;
}

static int ad_decode_cancel(lua_State *L) {
  const pf_adapter *a = upvalue_adapter(L);
  long http = (long)luaL_checkinteger(L, 1);
  size_t len;
  const char *body = luaL_checklstring(L, 2, &len);
  pf_ctx ctx = read_ctx(L, 3);
  if (!a->parse_cancel) return luaL_error(L, "%s has no cancel", a->name);
  pf_err e;
  pf_err_clear(&e);
  if (a->parse_cancel(&ctx, http, body, len, &e) != 0) return push_fail(L, &e, &ctx);
  lua_pushboolean(L, 1);
  return 1;
}

/* upload(step-by-step): encode_upload{path=, url=, filename=, mime=, model=, step=, state=json}
 * and decode_upload(up, http, body) -> result, ttl | "next", step, state_json | nil, err */
static void read_upload(lua_State *L, int idx, pf_upload *up) {
  memset(up, 0, sizeof *up);
  luaL_checktype(L, idx, LUA_TTABLE);
  const char **f[] = { &up->path, &up->url, &up->filename, &up->mime, &up->model };
  const char *n[] = { "path", "url", "filename", "mime", "model" };
  for (int i = 0; i < 5; i++) {
    lua_getfield(L, idx, n[i]);
    *f[i] = lua_tostring(L, -1);
    lua_pop(L, 1);
  }
  lua_getfield(L, idx, "step");
  up->step = (int)lua_tointeger(L, -1);
  lua_getfield(L, idx, "state");
  if (lua_isstring(L, -1)) up->state = json_loads(lua_tostring(L, -1), 0, NULL);
  lua_pop(L, 2);
}

static int ad_encode_upload(lua_State *L) {
  const pf_adapter *a = upvalue_adapter(L);
  pf_ctx ctx = read_ctx(L, 2);
  if (!a->build_upload) return luaL_error(L, "%s has no upload", a->name);
  pf_upload up;
  read_upload(L, 1, &up);
  pf_http_req out;
  memset(&out, 0, sizeof out);
  pf_err e;
  pf_err_clear(&e);
  int rc = a->build_upload(&ctx, &up, &out, &e);
  json_decref(up.state);
  if (rc != 0) { pf_http_req_free(&out); return push_fail(L, &e, &ctx); }
  push_http_req(L, &out);
  pf_http_req_free(&out);
  return 1;
}

static int ad_decode_upload(lua_State *L) {
  const pf_adapter *a = upvalue_adapter(L);
  long http = (long)luaL_checkinteger(L, 2);
  size_t len;
  const char *body = luaL_checklstring(L, 3, &len);
  pf_ctx ctx = read_ctx(L, 4);
  if (!a->parse_upload) return luaL_error(L, "%s has no upload", a->name);
  pf_upload up;
  read_upload(L, 1, &up);
  pf_err e;
  pf_err_clear(&e);
  int rc = a->parse_upload(&ctx, &up, http, body, len, &e);
  int nret;
  if (rc < 0) {
    nret = push_fail(L, &e, &ctx);
  } else if (rc == 0) {
    lua_pushstring(L, up.result);
    lua_pushnumber(L, up.ttl);
    nret = 2;
  } else {
    lua_pushliteral(L, "next");
    lua_pushinteger(L, up.step);
    char *st = up.state ? json_dumps(up.state, JSON_COMPACT) : NULL;
    if (st) lua_pushstring(L, st); else lua_pushnil(L);
    free(st);
    nret = 3;
  }
  free(up.result);
  json_decref(up.state);
  return nret;
}

static void push_adapters(lua_State *L) {
  lua_newtable(L);
  for (int i = 0; pf_adapters[i]; i++) {
    const pf_adapter *a = pf_adapters[i];
    lua_newtable(L);
    struct { const char *name; lua_CFunction fn; int which; } fns[] = {
      { "encode_submit", ad_encode_submit, 0 }, { "decode_submit", ad_decode_submit, 0 },
      { "encode_status", ad_encode_by_id, 0 }, { "decode_status", ad_decode_status, 0 },
      { "encode_result", ad_encode_by_id, 1 }, { "decode_result", ad_decode_status, 1 },
      { "encode_cancel", ad_encode_by_id, 2 }, { "decode_cancel", ad_decode_cancel, 0 },
      { "encode_upload", ad_encode_upload, 0 }, { "decode_upload", ad_decode_upload, 0 },
    };
    for (size_t k = 0; k < sizeof fns / sizeof fns[0]; k++) {
      lua_pushlightuserdata(L, (void *)a);
      lua_pushinteger(L, fns[k].which);
      lua_pushcclosure(L, fns[k].fn, 2);
      lua_setfield(L, -2, fns[k].name);
    }
    lua_pushboolean(L, a->build_upload != NULL);
    lua_setfield(L, -2, "has_upload");
    lua_pushboolean(L, a->build_cancel != NULL);
    lua_setfield(L, -2, "has_cancel");
    lua_setfield(L, -2, a->name);
  }
}

/* core.drain([timeout]): wait (10 s at most by default) for the engine's worker threads of closed
 * clients; true when they have finished. Also run when the Lua state closes (the sentinel). */
static int core_drain(lua_State *L) {
  double t = luaL_optnumber(L, 1, 10);
  lua_pushboolean(L, pf_drain(t) == 0);
  return 1;
}

/* The sentinel's __gc: the Lua state is closing (the script ended, os.exit(code, true), a host
 * shutting down): the journal records closed clients left to their workers are written first.
 * It was made before any client, so it is finalised after them. */
static int sentinel_gc(lua_State *L) {
  (void)L;
  pf_drain(10);
  return 0;
}

/* The engine's worker threads outlive the clients that released them by a moment (and the
 * resolver threads libcurl leaves behind, by longer): when the Lua state closes, Lua unloads
 * this module (dlclose) after the finalisers, and a thread still returning through its code
 * would crash. So the module stays loaded for the life of the process: require gives the open
 * function the file it was loaded from (Lua 5.4's second argument), which is opened once more
 * with RTLD_NODELETE. (Linked in statically, or loaded another way, there is nothing to pin.) */
static void pin_module(lua_State *L) {
  const char *path = lua_type(L, 2) == LUA_TSTRING ? lua_tostring(L, 2) : NULL;
  if (path) dlopen(path, RTLD_NOW | RTLD_NOLOAD | RTLD_NODELETE);   /* a reference never dropped */
}

PF_API int luaopen_pixflow_core(lua_State *L);
PF_API int luaopen_pixflow_core(lua_State *L) {
  luaL_checkversion(L);
  pin_module(L);
#ifdef PF_TEST_FAILALLOC
  static int alloc_ready = 0;
  if (!alloc_ready) pf_test_alloc_init();   /* spec/support/failalloc.c: the test build only */
  alloc_ready = 1;
#endif
  pf_err e;
  if (pf_init(&e) != 0) return luaL_error(L, "pixflow.core: %s", e.message);
  pf_error_open(L);
  if (lua_getfield(L, LUA_REGISTRYINDEX, "pixflow.drain_sentinel") == LUA_TNIL) {
    lua_newuserdatauv(L, 0, 0);
    lua_newtable(L);
    lua_pushcfunction(L, sentinel_gc);
    lua_setfield(L, -2, "__gc");
    lua_setmetatable(L, -2);
    lua_setfield(L, LUA_REGISTRYINDEX, "pixflow.drain_sentinel");
  }
  lua_pop(L, 1);
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
  lua_pushcfunction(L, core_drain);
  lua_setfield(L, -2, "drain");
  lua_pushcfunction(L, core_time);
  lua_setfield(L, -2, "time");
  push_adapters(L);
  lua_setfield(L, -2, "_adapters");
  lua_pushcfunction(L, core_retry_delay);
  lua_setfield(L, -2, "_retry_delay");
  lua_pushcfunction(L, core_name_bytes);
  lua_setfield(L, -2, "_name_bytes");
  pf_journal_open_lua(L);
  pf_fs_open(L);
  return 1;
}
