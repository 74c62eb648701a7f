/* client.c: the pixflow.Client type: a userdata pointing at an engine client, its anchors and its changed list. */
#include <stdlib.h>
#include <string.h>

#include "binding.h"

/* The userdata only points at the engine's client (luv's pattern): memory that libcurl
 * callbacks write is the engine's, never Lua's. User value 1 is the anchor table
 * {lightuserdata(task) = Task userdata}: a task is anchored while it is pending, so a task in
 * flight is never collected while its client lives. User value 2 is the list of tasks that
 * changed since Lua last read it (client:_changed()). */
typedef struct lclient { pf_client *c; } lclient;

static lclient *check_box(lua_State *L, int idx) {
  return (lclient *)luaL_checkudata(L, idx, PF_CLIENT_MT);
}

static pf_client *check_open(lua_State *L, int idx) {
  lclient *b = check_box(L, idx);
  if (!b->c) luaL_error(L, "attempt to use a closed client");
  return b->c;
}

static int push_fail(lua_State *L, const pf_err *e, const char *provider) {
  lua_pushnil(L);
  pf_err_push(L, e, provider);
  return 2;
}

/* ---------------------------------------------------------------- options */

/* The core has no option defaults and no policy ranges: lua/pixflow/defaults.lua holds both,
 * pixflow.new checks the user's values there by the user's names and passes every one. What is
 * checked here is only what the engine can hold (pf_opt_limit); a value missing or outside that
 * is a misuse of the core and raises. */
static void read_numbers(lua_State *L, int idx, pf_opts *o) {
  const pf_opt_limit *lim;
  for (size_t i = 0; (lim = pf_opt_limit_at(i)); i++) {
    lua_getfield(L, idx, lim->name);
    double v;
    if (lim->is_bool) {
      if (!lua_isboolean(L, -1))
        luaL_error(L, "core.new_client: option '%s' must be a boolean, got %s", lim->name,
                   luaL_typename(L, -1));
      v = lua_toboolean(L, -1);
    } else {
      if (!lua_isnumber(L, -1))
        luaL_error(L, "core.new_client: option '%s' must be a number, got %s (pixflow.new passes "
                   "every option, checked)", lim->name, luaL_typename(L, -1));
      v = lua_tonumber(L, -1);
    }
    pf_err e;
    if (pf_opts_set(o, lim->name, v, &e) != 0) luaL_error(L, "core.new_client: %s", e.message);
    lua_pop(L, 1);
  }
}

/* A string option (its string stays alive in the table at idx), or NULL when absent. */
static const char *opt_str(lua_State *L, int idx, const char *k, int required) {
  lua_getfield(L, idx, k);
  const char *v = NULL;
  if (lua_type(L, -1) == LUA_TSTRING) v = lua_tostring(L, -1);
  else if (!lua_isnil(L, -1) || required)
    luaL_error(L, "core.new_client: option '%s' must be a string, got %s", k, luaL_typename(L, -1));
  lua_pop(L, 1);
  return v;
}

/* core.new_client{provider=, adapter=, base_url=, api_key=, ...numbers} -> client | nil, err.
 * Lua (lua/pixflow/client.lua) validates the user's options; this checks types again. */
static int client_new(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  lclient *b = lua_newuserdatauv(L, sizeof *b, 2);
  b->c = NULL;                              /* until made: __gc and close are no-ops */
  luaL_setmetatable(L, PF_CLIENT_MT);
  lua_newtable(L);
  lua_setiuservalue(L, -2, 1);              /* anchors */
  lua_newtable(L);
  lua_setiuservalue(L, -2, 2);              /* changed */
  pf_client_config cfg;
  memset(&cfg, 0, sizeof cfg);
  cfg.adapter = opt_str(L, 1, "adapter", 1);
  cfg.provider = opt_str(L, 1, "provider", 1);
  cfg.base_url = opt_str(L, 1, "base_url", 1);
  lua_getfield(L, 1, "api_key");
  if (lua_type(L, -1) == LUA_TSTRING) cfg.api_key = lua_tolstring(L, -1, &cfg.api_key_len);
  else if (!lua_isnil(L, -1)) return luaL_error(L, "core.new_client: option 'api_key' must be a string");
  lua_pop(L, 1);                            /* the string stays alive in the table */
  cfg.o.ca_file = (char *)opt_str(L, 1, "ca_file", 0);
  cfg.auth = opt_str(L, 1, "auth", 1);
  lua_getfield(L, 1, "ref_names");
  if (!lua_isboolean(L, -1))
    return luaL_error(L, "core.new_client: option 'ref_names' must be a boolean, got %s",
                      luaL_typename(L, -1));
  cfg.ref_names = lua_toboolean(L, -1);
  lua_pop(L, 1);
  cfg.o.user_agent = (char *)opt_str(L, 1, "user_agent", 1);
  read_numbers(L, 1, &cfg.o);
  lua_getfield(L, 1, "clock");
  if (!lua_isnil(L, -1)) {
    const char *clk = lua_tostring(L, -1);
    if (!clk || (strcmp(clk, "manual") != 0 && strcmp(clk, "monotonic") != 0))
      return luaL_error(L, "option clock must be \"monotonic\" or \"manual\"");
    cfg.manual_clock = strcmp(clk, "manual") == 0;
  }
  lua_pop(L, 1);
  lua_getfield(L, 1, "journal");
  if (!lua_isnil(L, -1)) cfg.journal = pf_journal_check(L, -1);
  lua_pop(L, 1);
  lua_getfield(L, 1, "trace");
  if (!lua_isnil(L, -1) && !lua_isstring(L, -1)) return luaL_error(L, "bad option 'trace' (a path expected)");
  cfg.trace = lua_tostring(L, -1);
  lua_pop(L, 1);
  pf_err e;
  pf_err_clear(&e);
  if (pf_client_new(&cfg, &b->c, &e) != 0) {
    if (e.kind == PF_EK_INVALID) return luaL_error(L, "%s", e.message);   /* misuse */
    return push_fail(L, &e, NULL);
  }
  return 1;
}

static int client_close(lua_State *L) {
  lclient *b = check_box(L, 1);
  if (!b->c) return 0;
  pf_client_free(b->c);                     /* its tasks are detached and stay readable */
  b->c = NULL;
  lua_newtable(L);
  lua_setiuservalue(L, 1, 1);               /* drop every anchor */
  return 0;
}

static int client_tostring(lua_State *L) {
  lclient *b = check_box(L, 1);
  if (!b->c) lua_pushfstring(L, "pixflow.Client (%p) [closed]", (void *)b);
  else lua_pushfstring(L, "pixflow.Client (%s %s) [%d in flight]", pf_client_provider(b->c),
                       pf_client_base_url(b->c), (int)pf_client_inflight(b->c));
  return 1;
}

/* ---------------------------------------------------------------- submit, attach */


/* client:submit(request, owner [, hold [, task_timeout [, journal [, output]]]]) -> task | nil,
 * err. Never blocks: the request is queued and the pump sends it; with hold, it waits for
 * task:_release(extend_from_id). output (a path) is checked on the worker first. The request's
 * strings are copied, so later changes to it do not count. */
static int client_submit(lua_State *L) {
  pf_client *c = check_open(L, 1);
  luaL_checktype(L, 2, LUA_TTABLE);
  pf_submit_opts o;
  memset(&o, 0, sizeof o);
  o.hold = lua_toboolean(L, 4);
  /* everything that can raise comes before the engine makes the task */
  o.task_timeout = luaL_optnumber(L, 5, pf_client_options(c)->task_timeout);
  luaL_argcheck(L, o.task_timeout >= 0, 5, "task_timeout must be >= 0");
  lua_settop(L, 7);
  pf_lua_journal_args(L, 6, &o.journal_key, &o.journal_intent);
  o.output = luaL_optstring(L, 7, NULL);
  pf_task **slot = pf_task_push_new(L, 1, 3);
  int tidx = lua_gettop(L);
  /* a protected reader turns any error while copying (bad fields, memory) into a Lua error
   * without leaking the half-read record */
  pf_request rq;
  memset(&rq, 0, sizeof rq);
  lua_pushcfunction(L, pf_read_request_p);
  lua_pushvalue(L, 2);
  lua_pushlightuserdata(L, &rq);
  if (lua_pcall(L, 2, 0, 0) != LUA_OK) {
    pf_request_free(&rq);
    return lua_error(L);
  }
  pf_err e;
  pf_task *t = pf_client_submit(c, &rq, &o, &e);
  if (!t) return push_fail(L, &e, pf_client_provider(c));
  *slot = t;
  pf_task_anchor(L, 1, tidx, t);
  return 1;
}

/* client:attach(id, owner [, task_timeout [, journal_key]]) -> task | nil, err: follow a task
 * the gateway already accepted. */
static int client_attach(lua_State *L) {
  pf_client *c = check_open(L, 1);
  const char *id = luaL_checkstring(L, 2);
  luaL_argcheck(L, id[0] != '\0', 2, "task id is empty");
  double timeout = luaL_optnumber(L, 4, pf_client_options(c)->task_timeout);
  luaL_argcheck(L, timeout >= 0, 4, "task_timeout must be >= 0");
  const char *key = luaL_optstring(L, 5, NULL);
  luaL_argcheck(L, !key || strlen(key) < PF_JOURNAL_KEY_MAX, 5, "a journal key expected");
  lua_settop(L, 5);
  pf_task **slot = pf_task_push_new(L, 1, 3);
  int tidx = lua_gettop(L);
  pf_err e;
  pf_task *t = pf_client_attach(c, id, timeout, key, &e);
  if (!t) return push_fail(L, &e, pf_client_provider(c));
  *slot = t;
  pf_task_anchor(L, 1, tidx, t);
  return 1;
}

/* ---------------------------------------------------------------- the pump */

/* Hand the tasks that changed to Lua's changed list (client:_changed()), then unanchor those
 * no longer pending. Only this allocates (the list grows), after the pump handled every
 * transfer and timer: out of memory here raises with the engine's state whole, and the tasks not
 * yet handed over stay listed and anchored for the next pump. */
static void deliver_changes(lua_State *L, int cidx, pf_client *c) {
  if (!pf_client_next_change(c, NULL)) return;
  lua_getiuservalue(L, cidx, 1);            /* anchors */
  lua_getiuservalue(L, cidx, 2);            /* changed list */
  int anchors = lua_gettop(L) - 1, list = anchors + 1;
  pf_task *t;
  int visible;
  while ((t = pf_client_next_change(c, &visible))) {
    lua_rawgetp(L, anchors, t);             /* its userdata: anchored while listed */
    if (visible) {
      lua_pushvalue(L, -1);
      lua_rawseti(L, list, (lua_Integer)lua_rawlen(L, list) + 1);   /* may raise: t stays listed */
    }
    pf_client_drop_change(c);
    if (!pf_task_pending(t)) {
      lua_pushnil(L);
      lua_rawsetp(L, anchors, t);           /* setting nil never allocates */
    }
    lua_pop(L, 1);
  }
  lua_pop(L, 2);
}

/* client:poll([timeout]) -> tasks in flight [, journal error]. Never blocks longer than timeout
 * seconds (default 0: return at once; math.huge: until a task changes); returns early once any
 * task changed. */
static int client_poll(lua_State *L) {
  pf_client *c = check_open(L, 1);
  double timeout = luaL_optnumber(L, 2, 0);
  luaL_argcheck(L, timeout >= 0, 2, "timeout must be a number >= 0");   /* also refuses NaN */
  pf_err jerr;
  pf_client_pump(c, timeout, &jerr);
  deliver_changes(L, 1, c);
  lua_pushinteger(L, (lua_Integer)pf_client_inflight(c));
  if (jerr.kind != PF_EK_NONE) {            /* a journal record this pump could not write */
    pf_err_push(L, &jerr, pf_client_provider(c));
    return 2;
  }
  return 1;
}

/* client:_changed() -> list of tasks that changed since the last call. A pump in which nothing
 * changed hands back the same empty list: a frame loop makes no garbage. */
static int client_changed(lua_State *L) {
  check_box(L, 1);
  lua_getiuservalue(L, 1, 2);
  if (lua_rawlen(L, -1) == 0) return 1;
  lua_newtable(L);
  lua_setiuservalue(L, 1, 2);
  return 1;
}

/* client:_list(model, from, to) -> { {id=, status=, created=}, ... }, complete [, clock] | nil,
 * err: the account's tasks created in [from, to] (pf_client_list). Blocks. */
static int client_list(lua_State *L) {
  pf_client *c = check_open(L, 1);
  const char *model = luaL_checkstring(L, 2);
  double from = luaL_checknumber(L, 3), to = luaL_checknumber(L, 4);
  pf_list l;
  pf_err e;
  if (pf_client_list(c, model, from, to, &l, &e) != 0) return push_fail(L, &e, pf_client_provider(c));
  lua_createtable(L, (int)l.n, 0);
  for (size_t i = 0; i < l.n; i++) {
    lua_createtable(L, 0, 3);
    lua_pushstring(L, l.rows[i].id);
    lua_setfield(L, -2, "id");
    lua_pushstring(L, l.rows[i].status);
    lua_setfield(L, -2, "status");
    lua_pushnumber(L, l.rows[i].created);
    lua_setfield(L, -2, "created");
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
  lua_pushboolean(L, l.complete);
  int clock = l.clock;
  double lo = l.clock_lo, hi = l.clock_hi;
  pf_list_free(&l);
  if (!clock) return 2;
  lua_createtable(L, 0, 2);                 /* the gateway's clock minus ours, within [lo, hi] */
  lua_pushnumber(L, lo);
  lua_setfield(L, -2, "lo");
  lua_pushnumber(L, hi);
  lua_setfield(L, -2, "hi");
  return 3;
}

/* ---------------------------------------------------------------- for specs */

/* client:_uploads() -> uploads performed, results cached */
static int client_uploads(lua_State *L) {
  pf_client_stats s;
  pf_client_stats_get(check_open(L, 1), &s);
  lua_pushinteger(L, (lua_Integer)s.uploads);
  lua_pushinteger(L, (lua_Integer)s.cached);
  return 2;
}

static int client_inflight(lua_State *L) {
  lclient *b = check_box(L, 1);
  lua_pushinteger(L, b->c ? (lua_Integer)pf_client_inflight(b->c) : 0);
  return 1;
}

/* client:_transfers() -> running, queued, finished, jobs, left: requests on the wire, waiting
 * for a host slot, ended since the client was made, worker jobs whose results are not applied,
 * and whether the last pump left work at its budget (a harness on the manual clock moves it only
 * once these say the engine is idle). */
static int client_transfers(lua_State *L) {
  pf_client_stats s;
  pf_client_stats_get(check_open(L, 1), &s);
  lua_pushinteger(L, (lua_Integer)s.running);
  lua_pushinteger(L, (lua_Integer)s.queued);
  lua_pushinteger(L, (lua_Integer)s.finished);
  lua_pushinteger(L, (lua_Integer)s.jobs);
  lua_pushboolean(L, s.left);
  return 5;
}

/* client:_advance_clock(seconds): move the virtual clock (tests drive back-off with it). */
static int client_advance_clock(lua_State *L) {
  pf_client *c = check_open(L, 1);
  double s = luaL_checknumber(L, 2);
  luaL_argcheck(L, s >= 0, 2, "cannot move the clock backwards");
  pf_client_advance_clock(c, s);
  return 0;
}

/* client:_wall_now() -> the Unix time the client's adapters see (moves with a manual clock) */
static int client_wall_now(lua_State *L) {
  lua_pushnumber(L, pf_client_wall(check_open(L, 1)));
  return 1;
}

/* client:_next_due() -> seconds until the next timer, or nil */
static int client_next_due(lua_State *L) {
  double s;
  if (pf_client_next_due(check_open(L, 1), &s)) lua_pushnumber(L, s);
  else lua_pushnil(L);
  return 1;
}

/* Tests: the pump with Lua's allocator refusing every allocation that needs memory, to show
 * that running out of it cannot tear the engine's state (the engine allocates nothing from Lua;
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
  check_open(L, 1);
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
  const pf_opts *o = pf_client_options(check_open(L, 1));
  lua_createtable(L, 0, 32);
  const pf_opt_limit *lim;
  for (size_t i = 0; (lim = pf_opt_limit_at(i)); i++) {
    double v = pf_opts_get(o, lim->name);
    if (lim->is_bool) lua_pushboolean(L, v != 0);
    else if (lim->is_int) lua_pushinteger(L, (lua_Integer)v);
    else lua_pushnumber(L, v);
    lua_setfield(L, -2, lim->name);
  }
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
  { "__gc", client_close },
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
