/* task.c: the pixflow.Task type: a userdata pointing at an engine task, its fields read through a table of getters. */
#include <string.h>

#include "binding.h"

/* The userdata only points at the engine's task (NULL once closed). User value 1 is its client
 * userdata (so the client outlives the task's references to it), user value 2 is the Lua-level
 * owner object. */
typedef struct ltask { pf_task *t; } ltask;

static ltask *check_box(lua_State *L, int idx) {
  return (ltask *)luaL_checkudata(L, idx, PF_TASK_MT);
}

static pf_task *check_open(lua_State *L, int idx) {
  ltask *b = check_box(L, idx);
  if (!b->t) luaL_error(L, "attempt to use a closed task");
  return b->t;
}

/* t, attached to its client (whose userdata is pushed), or raise. */
static pf_task *check_attached(lua_State *L, int idx) {
  pf_task *t = check_open(L, idx);
  if (!pf_task_attached(t)) luaL_error(L, "attempt to use a task whose client is closed");
  lua_getiuservalue(L, idx, 1);
  return t;
}

pf_task **pf_task_push_new(lua_State *L, int cidx, int owner_idx) {
  ltask *b = lua_newuserdatauv(L, sizeof *b, 2);
  b->t = NULL;
  luaL_setmetatable(L, PF_TASK_MT);
  lua_pushvalue(L, cidx);
  lua_setiuservalue(L, -2, 1);
  lua_pushvalue(L, owner_idx);
  lua_setiuservalue(L, -2, 2);
  return &b->t;
}

void pf_task_anchor(lua_State *L, int cidx, int tidx, const pf_task *t) {
  lua_getiuservalue(L, cidx, 1);            /* anchors */
  if (pf_task_pending(t)) lua_pushvalue(L, tidx);
  else lua_pushnil(L);
  lua_rawsetp(L, -2, t);                    /* anchors[t] = task or nil */
  lua_pop(L, 1);
}

/* After an action on the task at 1 whose client userdata is on top: anchored as it is now. */
static void reanchor(lua_State *L, pf_task *t) {
  pf_task_anchor(L, lua_gettop(L), 1, t);
}

static int task_close(lua_State *L) {
  ltask *b = check_box(L, 1);
  if (!b->t) return 0;
  pf_task *t = b->t;
  b->t = NULL;
  if (pf_task_attached(t)) {
    lua_getiuservalue(L, 1, 1);
    lua_getiuservalue(L, -1, 1);            /* the client's anchors */
    if (lua_istable(L, -1)) {
      lua_pushnil(L);
      lua_rawsetp(L, -2, t);
    }
    lua_pop(L, 2);
  }
  pf_task_free(t);
  return 0;
}

static void push_err(lua_State *L, const pf_task *t, const pf_err *e) {
  pf_err_push(L, e, pf_task_provider(t));
  if (pf_task_id(t)) {
    lua_pushstring(L, pf_task_id(t));
    lua_setfield(L, -2, "task_id");
  }
}

/* One of t's errors (pf_task_error), or nil. */
static void push_task_err(lua_State *L, const pf_task *t, pf_task_errwhich which) {
  pf_err e;
  if (pf_task_error(t, which, &e)) push_err(L, t, &e);
  else lua_pushnil(L);
}

static int push_fail(lua_State *L, const pf_task *t, const pf_err *e) {
  lua_pushnil(L);
  push_err(L, t, e);
  return 2;
}

/* ---------------------------------------------------------------- costs */

static int cost_tostring(lua_State *L) {
  lua_getfield(L, 1, "unit");
  const char *unit = lua_tostring(L, -1);
  lua_getfield(L, 1, "amount");
  const char *amount = luaL_tolstring(L, -1, NULL);
  lua_pushfstring(L, "%s %s", amount, unit ? unit : "");
  return 1;
}

static void push_cost(lua_State *L, const pf_cost *c) {
  lua_createtable(L, 0, 2);
  lua_Integer i;
  /* a whole amount (45 credits) stays an integer: 45, not 45.0 */
  if (lua_numbertointeger(c->amount, &i) && (double)i == c->amount) lua_pushinteger(L, i);
  else lua_pushnumber(L, c->amount);
  lua_setfield(L, -2, "amount");
  lua_pushstring(L, c->unit);
  lua_setfield(L, -2, "unit");
  if (luaL_newmetatable(L, "pixflow.cost")) {
    lua_pushcfunction(L, cost_tostring);
    lua_setfield(L, -2, "__tostring");
  }
  lua_setmetatable(L, -2);
}

void pf_push_costs(lua_State *L, const pf_cost *costs, size_t n, int all) {
  if (n == 0) { lua_pushnil(L); return; }
  if (!all) { push_cost(L, &costs[0]); return; }
  lua_createtable(L, (int)n, 0);
  for (size_t i = 0; i < n; i++) {
    push_cost(L, &costs[i]);
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
}

/* ---------------------------------------------------------------- fields */

static void push_str(lua_State *L, const char *s) {
  if (s) lua_pushstring(L, s);
  else lua_pushnil(L);
}

static void get_id(lua_State *L, const pf_task *t) { push_str(L, pf_task_id(t)); }
static void get_status(lua_State *L, const pf_task *t) { lua_pushstring(L, pf_state_name(pf_task_state(t))); }
static void get_provider(lua_State *L, const pf_task *t) { lua_pushstring(L, pf_task_provider(t)); }
static void get_mode(lua_State *L, const pf_task *t) { lua_pushstring(L, pf_mode_name(pf_task_mode(t))); }
static void get_model(lua_State *L, const pf_task *t) { push_str(L, pf_task_model(t)); }
static void get_done(lua_State *L, const pf_task *t) { lua_pushboolean(L, pf_state_terminal(pf_task_state(t))); }
static void get_halted(lua_State *L, const pf_task *t) { lua_pushboolean(L, pf_task_halted(t)); }
static void get_journaling(lua_State *L, const pf_task *t) { lua_pushboolean(L, pf_task_journaling(t)); }
static void get_retries(lua_State *L, const pf_task *t) { lua_pushinteger(L, pf_task_retries(t)); }
static void get_journal_key(lua_State *L, const pf_task *t) { push_str(L, pf_task_journal_key(t)); }
static void get_bytes(lua_State *L, const pf_task *t) { lua_pushinteger(L, (lua_Integer)pf_task_bytes(t)); }
static void get_phase(lua_State *L, const pf_task *t) { lua_pushstring(L, pf_task_phase(t)); }
static void get_path(lua_State *L, const pf_task *t) { push_str(L, pf_task_path(t)); }
static void get_error(lua_State *L, const pf_task *t) { push_task_err(L, t, PF_TE_TASK); }
/* the last failure that was retried; a record the journal could not write */
static void get_last_retry(lua_State *L, const pf_task *t) { push_task_err(L, t, PF_TE_RETRY); }
static void get_journal_error(lua_State *L, const pf_task *t) { push_task_err(L, t, PF_TE_JOURNAL); }

static void get_progress(lua_State *L, const pf_task *t) {
  if (pf_task_progress(t) >= 0) lua_pushinteger(L, pf_task_progress(t));
  else lua_pushnil(L);
}

static void get_eta(lua_State *L, const pf_task *t) {
  if (pf_task_eta(t) >= 0) lua_pushnumber(L, pf_task_eta(t));
  else lua_pushnil(L);
}

static void get_videos(lua_State *L, const pf_task *t) {
  size_t n;
  const pf_video *v = pf_task_videos(t, &n);
  lua_createtable(L, (int)n, 0);
  for (size_t i = 0; i < n; i++) {
    lua_createtable(L, 0, 2);
    lua_pushstring(L, v[i].url);
    lua_setfield(L, -2, "url");
    if (v[i].expires_at > 0) {
      lua_pushnumber(L, v[i].expires_at);
      lua_setfield(L, -2, "expires_at");
    }
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
}

static void get_video_url(lua_State *L, const pf_task *t) {
  size_t n;
  const pf_video *v = pf_task_videos(t, &n);
  push_str(L, n ? v[0].url : NULL);
}

static void get_cost(lua_State *L, const pf_task *t) {
  size_t n;
  const pf_cost *c = pf_task_costs(t, &n);
  pf_push_costs(L, c, n, 0);
}

static void get_costs(lua_State *L, const pf_task *t) {
  size_t n;
  const pf_cost *c = pf_task_costs(t, &n);
  pf_push_costs(L, c, n, 1);
}

typedef void (*getter)(lua_State *L, const pf_task *t);
static const struct { const char *name; getter get; } getters[] = {
  { "id", get_id }, { "status", get_status }, { "provider", get_provider },
  { "progress", get_progress }, { "eta", get_eta }, { "videos", get_videos },
  { "video_url", get_video_url }, { "cost", get_cost }, { "costs", get_costs },
  { "error", get_error }, { "mode", get_mode }, { "model", get_model }, { "done", get_done },
  { "halted", get_halted }, { "_journaling", get_journaling }, { "last_retry", get_last_retry }, { "retries", get_retries },
  { "journal_error", get_journal_error }, { "journal_key", get_journal_key },
  { "bytes", get_bytes }, { "phase", get_phase }, { "path", get_path },
};

/* __index: a field by its getter (upvalue 2 maps a name to its index in getters), then the
 * methods (upvalue 1). */
static int task_index(lua_State *L) {
  ltask *b = check_box(L, 1);
  lua_pushvalue(L, 2);
  if (lua_rawget(L, lua_upvalueindex(2)) == LUA_TNUMBER) {
    lua_Integer i = lua_tointeger(L, -1);
    if (b->t) {
      getters[i].get(L, b->t);
      return 1;
    }
    if (getters[i].get == get_status) {
      lua_pushliteral(L, "closed");
      return 1;
    }
  }
  lua_pushvalue(L, 2);
  lua_rawget(L, lua_upvalueindex(1));
  return 1;
}

static int task_tostring(lua_State *L) {
  ltask *b = check_box(L, 1);
  pf_task *t = b->t;
  if (!t) {
    lua_pushfstring(L, "pixflow.Task (%p) [closed]", (void *)b);
    return 1;
  }
  const char *id = pf_task_id(t) ? pf_task_id(t) : "-";
  pf_state st = pf_task_state(t);
  if (pf_task_progress(t) >= 0 && !pf_state_terminal(st))
    lua_pushfstring(L, "pixflow.Task (%s %s) [%s %d%%]", pf_task_provider(t), id,
                    pf_state_name(st), pf_task_progress(t));
  else
    lua_pushfstring(L, "pixflow.Task (%s %s) [%s]", pf_task_provider(t), id, pf_state_name(st));
  return 1;
}

/* ---------------------------------------------------------------- methods */

/* task:_resume(): restart polling of a task that halted on an error. */
static int task_resume(lua_State *L) {
  pf_task *t = check_attached(L, 1);
  if (pf_task_resume(t) != 0) return luaL_error(L, "out of memory");
  reanchor(L, t);
  lua_pushboolean(L, 1);
  return 1;
}

/* task:_download(path) -> true | nil, err: start streaming the first video to path .. ".part". */
static int task_download_start(lua_State *L) {
  pf_task *t = check_open(L, 1);
  const char *path = luaL_checkstring(L, 2);
  check_attached(L, 1);
  if (pf_task_download_state(t) == PF_DL_RUNNING)
    return luaL_error(L, "a download of this task is already running");
  pf_err e;
  if (pf_task_download(t, path, &e) != 0) return push_fail(L, t, &e);
  reanchor(L, t);
  lua_pushboolean(L, 1);
  return 1;
}

/* task:_download_state() -> "none" | "running" | "done" | "failed" [, err] */
static int task_download_state(lua_State *L) {
  pf_task *t = check_open(L, 1);
  static const char *const names[] = { "none", "running", "done", "failed" };
  pf_dlstate st = pf_task_download_state(t);
  lua_pushstring(L, names[st]);
  if (st == PF_DL_FAILED) { push_task_err(L, t, PF_TE_DOWNLOAD); return 2; }
  return 1;
}

/* task:_download_abort(): stop a running download and remove its .part file. */
static int task_download_abort(lua_State *L) {
  pf_task *t = check_open(L, 1);
  if (pf_task_download_state(t) != PF_DL_RUNNING || !pf_task_attached(t)) return 0;
  check_attached(L, 1);
  pf_task_download_abort(t);
  reanchor(L, t);
  return 0;
}

/* task:_release(extend_from_id [, journal]) -> true | nil, err: send a held task, now that the
 * task it extends succeeded. */
static int task_release(lua_State *L) {
  pf_task *t = check_open(L, 1);
  const char *id = luaL_checkstring(L, 2);
  if (!pf_task_attached(t)) return luaL_error(L, "attempt to use a task whose client is closed");
  if (!pf_task_held(t)) return luaL_error(L, "the task is not held");
  const char *jkey, *jintent;
  pf_lua_journal_args(L, 3, &jkey, &jintent);
  check_attached(L, 1);
  pf_err e;
  if (pf_task_release(t, id, jkey, jintent, &e) != 0) return push_fail(L, t, &e);
  reanchor(L, t);
  lua_pushboolean(L, 1);
  return 1;
}

/* task:_abandon(message): a held task that will never be sent (the task it extends failed). */
static int task_abandon(lua_State *L) {
  pf_task *t = check_open(L, 1);
  const char *msg = luaL_checkstring(L, 2);
  if (!pf_task_held(t)) return luaL_error(L, "the task is not held");
  pf_task_abandon(t, msg);
  return 0;
}

/* task:_cancel() -> true | nil, err: ask the gateway to cancel (sent as soon as the task's
 * current request ends). */
static int task_cancel(lua_State *L) {
  pf_task *t = check_attached(L, 1);
  pf_err e;
  if (pf_task_cancel(t, &e) != 0) {
    if (e.kind == PF_EK_NOMEM) return luaL_error(L, "out of memory");
    return push_fail(L, t, &e);
  }
  reanchor(L, t);
  lua_pushboolean(L, 1);
  return 1;
}

/* task:_cancel_state() -> "none" | "wanted" | "sent" | "accepted" | "refused" [, err] */
static int task_cancel_state(lua_State *L) {
  pf_task *t = check_open(L, 1);
  static const char *const names[] = { "none", "wanted", "sent", "accepted", "refused" };
  pf_cancel_state st = pf_task_cancel_state(t);
  lua_pushstring(L, names[st]);
  if (st == PF_CANCEL_REFUSED) { push_task_err(L, t, PF_TE_CANCEL); return 2; }
  return 1;
}

/* task:_owner() -> the Lua client object that pumps this task (raises if closed). */
static int task_owner(lua_State *L) {
  pf_task *t = check_open(L, 1);
  if (!pf_task_attached(t)) return luaL_error(L, "attempt to use a task whose client is closed");
  lua_getiuservalue(L, 1, 2);
  return 1;
}

static const luaL_Reg task_methods[] = {
  { "close", task_close },
  { "_resume", task_resume },
  { "_download", task_download_start },
  { "_download_state", task_download_state },
  { "_download_abort", task_download_abort },
  { "_cancel", task_cancel },
  { "_release", task_release },
  { "_abandon", task_abandon },
  { "_cancel_state", task_cancel_state },
  { "_owner", task_owner },
  { NULL, NULL },
};

static const luaL_Reg task_meta[] = {
  { "__gc", task_close },
  { "__close", task_close },
  { "__tostring", task_tostring },
  { NULL, NULL },
};

/* Leaves the methods table on the stack: Lua adds wait, download and friends to it. */
void pf_task_open(lua_State *L) {
  luaL_newmetatable(L, PF_TASK_MT);
  luaL_setfuncs(L, task_meta, 0);
  luaL_newlib(L, task_methods);
  lua_pushvalue(L, -1);
  lua_createtable(L, 0, (int)(sizeof getters / sizeof getters[0]));
  for (size_t i = 0; i < sizeof getters / sizeof getters[0]; i++) {
    lua_pushinteger(L, (lua_Integer)i);
    lua_setfield(L, -2, getters[i].name);
  }
  lua_pushcclosure(L, task_index, 2);
  lua_setfield(L, -3, "__index");          /* mt.__index = closure over methods, getters */
  lua_remove(L, -2);                       /* methods */
}
