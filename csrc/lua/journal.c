/* journal.c: the Lua binding of the journal (pixflow.Journal), paths and UUIDs for Lua. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "binding.h"
#include "hash.h"
#include "journal.h"
#include "reconcile.h"

#define PF_JOURNAL_MT "pixflow.Journal"

/* The userdata only points at the engine's journal (malloc'd, reference counted), so its life
 * never depends on the order in which Lua finalises it and the clients that write through it. */
typedef struct jbox { pf_journal *j; } jbox;

static int push_fail(lua_State *L, const pf_err *e) {
  lua_pushnil(L);
  pf_err_push(L, e, NULL);
  return 2;
}

/* A JSON value as a Lua value (integers stay integers; null is nil). */
static void push_json(lua_State *L, json_t *v) {
  luaL_checkstack(L, 4, "journal record too deep");
  switch (json_typeof(v)) {
    case JSON_OBJECT: {
      lua_createtable(L, 0, (int)json_object_size(v));
      const char *k;
      json_t *x;
      json_object_foreach(v, k, x) {
        if (json_is_null(x)) continue;
        push_json(L, x);
        lua_setfield(L, -2, k);
      }
      break;
    }
    case JSON_ARRAY: {
      lua_createtable(L, (int)json_array_size(v), 0);
      size_t i;
      json_t *x;
      json_array_foreach(v, i, x) {
        push_json(L, x);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
      }
      break;
    }
    case JSON_STRING: lua_pushlstring(L, json_string_value(v), json_string_length(v)); break;
    case JSON_INTEGER: lua_pushinteger(L, (lua_Integer)json_integer_value(v)); break;
    case JSON_REAL: lua_pushnumber(L, json_real_value(v)); break;
    case JSON_TRUE: lua_pushboolean(L, 1); break;
    case JSON_FALSE: lua_pushboolean(L, 0); break;
    default: lua_pushnil(L); break;
  }
}

static jbox *check_box(lua_State *L, int idx) {
  return (jbox *)luaL_checkudata(L, idx, PF_JOURNAL_MT);
}

static pf_journal *check_open(lua_State *L, int idx) {
  jbox *b = check_box(L, idx);
  if (!b->j) luaL_error(L, "attempt to use a closed journal");
  return b->j;
}

pf_journal *pf_journal_check(lua_State *L, int idx) {
  return check_open(L, idx);
}

/* A JSON object from a string argument (encoded by Lua), or raise: this is misuse. */
static json_t *arg_object(lua_State *L, int idx) {
  size_t n;
  const char *s = luaL_optlstring(L, idx, NULL, &n);
  if (!s) return NULL;
  json_error_t je;
  json_t *o = json_loadb(s, n, 0, &je);
  if (!json_is_object(o)) {
    json_decref(o);
    luaL_argerror(L, idx, "a JSON object expected");
  }
  return o;
}

/* core.open_journal(path [, legacy]) -> journal, warnings | nil, err */
static int journal_open(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  const char *legacy = luaL_optstring(L, 2, NULL);
  jbox *b = lua_newuserdatauv(L, sizeof *b, 0);
  b->j = NULL;
  luaL_setmetatable(L, PF_JOURNAL_MT);
  pf_err e;
  pf_err_clear(&e);
  char *warnings = NULL;
  if (pf_journal_open(path, legacy, &b->j, &warnings, &e) != 0) return push_fail(L, &e);
  lua_newtable(L);
  int n = 0;
  for (char *s = warnings, *nl; s && *s; s = nl + 1) {
    nl = strchr(s, '\n');
    if (!nl) break;
    lua_pushlstring(L, s, (size_t)(nl - s));
    lua_rawseti(L, -2, ++n);
  }
  free(warnings);
  return 2;
}

/* journal:intent(key, t, fields_json, stage) -> true | nil, err */
static int journal_intent(lua_State *L) {
  pf_journal *j = check_open(L, 1);
  const char *key = luaL_checkstring(L, 2);
  double t = luaL_checknumber(L, 3);
  const char *stage = luaL_optstring(L, 5, "sending");
  json_t *f = arg_object(L, 4);
  if (!f) return luaL_argerror(L, 4, "a JSON object expected");
  pf_err e;
  pf_err_clear(&e);
  int rc = pf_journal_intent(j, key, t, f, stage, &e);
  json_decref(f);
  if (rc != 0) return push_fail(L, &e);
  lua_pushboolean(L, 1);
  return 1;
}

/* journal:record(key, ev, t [, fields_json [, sync]]) -> true | nil, err */
static int journal_record(lua_State *L) {
  pf_journal *j = check_open(L, 1);
  const char *key = luaL_checkstring(L, 2);
  const char *ev = luaL_checkstring(L, 3);
  double t = luaL_checknumber(L, 4);
  int sync = lua_toboolean(L, 6);
  json_t *f = arg_object(L, 5);
  pf_err e;
  pf_err_clear(&e);
  int rc = pf_journal_record(j, key, ev, t, f, sync, PF_J_WAIT, &e);
  json_decref(f);
  if (rc != 0) return push_fail(L, &e);
  lua_pushboolean(L, 1);
  return 1;
}

/* journal:claim(what) -> "taken" | "mine" | "held", pid | nil, err */
static int journal_claim(lua_State *L) {
  pf_journal *j = check_open(L, 1);
  const char *what = luaL_checkstring(L, 2);
  pf_err e;
  pf_err_clear(&e);
  long pid = 0;
  int rc = pf_journal_claim(j, what, &pid, &e);
  if (rc < 0) return push_fail(L, &e);
  static const char *const names[] = { "taken", "mine", "held" };
  lua_pushstring(L, names[rc]);
  if (rc == PF_CLAIM_HELD) {
    lua_pushinteger(L, pid);
    return 2;
  }
  return 1;
}

/* journal:claim_all({what, ...}) -> { {how, pid}, ... } | nil, err: one transaction for the lot */
static int journal_claim_all(lua_State *L) {
  pf_journal *j = check_open(L, 1);
  luaL_checktype(L, 2, LUA_TTABLE);
  size_t n = (size_t)lua_rawlen(L, 2);
  const char **whats = lua_newuserdata(L, (n ? n : 1) * sizeof *whats);   /* freed by the GC */
  int *rcs = lua_newuserdata(L, (n ? n : 1) * sizeof *rcs);
  long *pids = lua_newuserdata(L, (n ? n : 1) * sizeof *pids);
  for (size_t i = 0; i < n; i++) {
    lua_rawgeti(L, 2, (lua_Integer)i + 1);
    if (lua_type(L, -1) != LUA_TSTRING) return luaL_error(L, "claim_all: item %d is not a string", (int)i + 1);
    whats[i] = lua_tostring(L, -1);         /* kept alive by the table at 2 */
    lua_pop(L, 1);
  }
  pf_err e;
  pf_err_clear(&e);
  if (pf_journal_claim_all(j, whats, n, rcs, pids, &e) != 0) return push_fail(L, &e);
  static const char *const names[] = { "taken", "mine", "held" };
  lua_createtable(L, (int)n, 0);
  for (size_t i = 0; i < n; i++) {
    lua_createtable(L, 2, 0);
    lua_pushstring(L, names[rcs[i]]);
    lua_rawseti(L, -2, 1);
    if (rcs[i] == PF_CLAIM_HELD) {
      lua_pushinteger(L, pids[i]);
      lua_rawseti(L, -2, 2);
    }
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
  return 1;
}

static int journal_unclaim(lua_State *L) {
  pf_journal *j = check_open(L, 1);
  pf_err e;
  pf_err_clear(&e);
  if (pf_journal_unclaim(j, luaL_checkstring(L, 2), &e) != 0) return push_fail(L, &e);
  lua_pushboolean(L, 1);
  return 1;
}

static int push_list(lua_State *L, int (*get)(pf_journal *, json_t **, pf_err *)) {
  pf_journal *j = check_open(L, 1);
  pf_err e;
  pf_err_clear(&e);
  json_t *list = NULL;
  if (get(j, &list, &e) != 0) return push_fail(L, &e);
  push_json(L, list);
  json_decref(list);
  return 1;
}

/* journal:tasks() -> { {key=, t=, provider=, ..., owner = {pid, alive, mine}}, ... } | nil, err */
static int journal_tasks(lua_State *L) { return push_list(L, pf_journal_tasks); }
/* journal:events() -> { {seq=, key=, t=, ev=, ...}, ... } | nil, err */
static int journal_events(lua_State *L) { return push_list(L, pf_journal_events); }

static int journal_path(lua_State *L) {
  lua_pushstring(L, pf_journal_path(check_open(L, 1)));
  return 1;
}

static int journal_close(lua_State *L) {
  jbox *b = check_box(L, 1);
  if (b->j) pf_journal_release(b->j);
  b->j = NULL;
  return 0;
}

static int journal_tostring(lua_State *L) {
  jbox *b = check_box(L, 1);
  if (b->j) lua_pushfstring(L, "pixflow.Journal (%s)", pf_journal_path(b->j));
  else lua_pushliteral(L, "pixflow.Journal [closed]");
  return 1;
}

/* core.abspath(path) -> absolute path | nil, err */
static int core_abspath(lua_State *L) {
  pf_err e;
  pf_err_clear(&e);
  char *p = pf_abspath(luaL_checkstring(L, 1), &e);
  if (!p) return push_fail(L, &e);
  lua_pushstring(L, p);
  free(p);
  return 1;
}

/* core.stat(path) -> { type = "file" | "directory" | "fifo" | "device" | "socket" | "link" |
 * "other", size, mtime } | nil, err (lstat: a link is reported as one) */
static int core_stat(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  struct stat sb;
  if (lstat(path, &sb) != 0) {
    pf_err e;
    pf_err_set(&e, PF_EK_IO, 0, errno == ENOENT ? "not_found" : "stat", "cannot read %s: %s",
               path, strerror(errno));
    return push_fail(L, &e);
  }
  const char *type = S_ISREG(sb.st_mode) ? "file" : S_ISDIR(sb.st_mode) ? "directory"
                   : S_ISFIFO(sb.st_mode) ? "fifo" : (S_ISCHR(sb.st_mode) || S_ISBLK(sb.st_mode)) ? "device"
                   : S_ISSOCK(sb.st_mode) ? "socket" : S_ISLNK(sb.st_mode) ? "link" : "other";
  lua_createtable(L, 0, 3);
  lua_pushstring(L, type);
  lua_setfield(L, -2, "type");
  lua_pushinteger(L, (lua_Integer)sb.st_size);
  lua_setfield(L, -2, "size");
  lua_pushnumber(L, (double)sb.st_mtim.tv_sec + sb.st_mtim.tv_nsec / 1e9);
  lua_setfield(L, -2, "mtime");
  return 1;
}

/* core.make_parents(path) -> true | nil, err: create the missing directories above a file. */
static int core_make_parents(lua_State *L) {
  pf_err e;
  pf_err_clear(&e);
  if (pf_make_parents(luaL_checkstring(L, 1), &e) != 0) return push_fail(L, &e);
  lua_pushboolean(L, 1);
  return 1;
}

/* core.uuid() -> a random UUID (the journal's task keys) */
static int core_uuid(lua_State *L) {
  char u[37];
  pf_uuid4(u);
  lua_pushstring(L, u);
  return 1;
}

static int owned_in_table(const char *id, void *ud) {
  lua_State *L = ud;
  lua_getfield(L, 3, id);
  int owned = lua_toboolean(L, -1);
  lua_pop(L, 1);
  return owned;
}

static double opt_field(lua_State *L, int idx, const char *k, double def) {
  lua_getfield(L, idx, k);
  double v = luaL_optnumber(L, -1, def);
  lua_pop(L, 1);
  return v;
}

static int flag_field(lua_State *L, int idx, const char *k) {
  lua_getfield(L, idx, k);
  int v = lua_toboolean(L, -1);
  lua_pop(L, 1);
  return v;
}

/* core.match_unconfirmed(items, query, owned) -> "found", id, n | "none", 0 | "ambiguous", n:
 * the one matcher (reconcile.c) for Lua's reconciliation. items: { {id=, created=}, ... };
 * query: { from=, to=, skew=, complete=, closed=, rivals = { {from=, to=} }, clock = {lo=, hi=} };
 * owned: { [id] = true }. */
static int core_match(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  luaL_checktype(L, 2, LUA_TTABLE);
  luaL_checktype(L, 3, LUA_TTABLE);
  size_t n = (size_t)lua_rawlen(L, 1);
  pf_listed *arr = lua_newuserdatauv(L, (n ? n : 1) * sizeof *arr, 0);   /* freed by the GC */
  for (size_t i = 0; i < n; i++) {
    lua_rawgeti(L, 1, (lua_Integer)i + 1);
    luaL_checktype(L, -1, LUA_TTABLE);
    lua_getfield(L, -1, "id");
    arr[i].id = lua_tostring(L, -1);       /* alive: the string is in items */
    lua_pop(L, 1);
    arr[i].created = opt_field(L, -1, "created", -1);
    lua_pop(L, 1);
  }
  pf_match_query q = { .owned = owned_in_table, .ud = L };
  lua_getfield(L, 2, "from");
  q.from = luaL_checknumber(L, -1);         /* query.from is required */
  lua_pop(L, 1);
  q.to = opt_field(L, 2, "to", q.from);
  q.skew = opt_field(L, 2, "skew", 2);
  q.complete = flag_field(L, 2, "complete");
  q.closed = flag_field(L, 2, "closed");
  /* clock: { lo =, hi = }, the gateway's clock minus ours, as _list measured it */
  lua_getfield(L, 2, "clock");
  if (lua_istable(L, -1)) {
    q.clock_known = 1;
    q.clock_lo = opt_field(L, -1, "lo", 0);
    q.clock_hi = opt_field(L, -1, "hi", q.clock_lo);
  }
  lua_pop(L, 1);
  /* rivals: { {from=, to=}, ... } */
  lua_getfield(L, 2, "rivals");
  size_t nr = lua_istable(L, -1) ? (size_t)lua_rawlen(L, -1) : 0;
  pf_rival *rv = lua_newuserdatauv(L, (nr ? nr : 1) * sizeof *rv, 0);   /* freed by the GC */
  for (size_t i = 0; i < nr; i++) {
    lua_rawgeti(L, -2, (lua_Integer)i + 1);
    luaL_checktype(L, -1, LUA_TTABLE);
    rv[i].from = opt_field(L, -1, "from", 0);
    rv[i].to = opt_field(L, -1, "to", rv[i].from);
    lua_pop(L, 1);
  }
  q.rivals = rv;
  q.nrivals = nr;
  size_t found = 0, ncands = 0;
  pf_match_result m = pf_match_unconfirmed(arr, n, &q, &found, &ncands);
  if (m == PF_MATCH_FOUND) {
    lua_pushliteral(L, "found");
    lua_pushstring(L, arr[found].id);
    lua_pushinteger(L, (lua_Integer)ncands);
    return 3;
  }
  lua_pushstring(L, m == PF_MATCH_NONE ? "none" : "ambiguous");
  lua_pushinteger(L, (lua_Integer)ncands);
  return 2;
}

void pf_journal_open_lua(lua_State *L) {
  static const luaL_Reg methods[] = {
    { "intent", journal_intent }, { "record", journal_record }, { "claim", journal_claim },
    { "claim_all", journal_claim_all },
    { "unclaim", journal_unclaim }, { "tasks", journal_tasks }, { "events", journal_events },
    { "path", journal_path }, { "close", journal_close }, { NULL, NULL },
  };
  static const luaL_Reg meta[] = {
    { "__gc", journal_close }, { "__close", journal_close }, { "__tostring", journal_tostring },
    { NULL, NULL },
  };
  luaL_newmetatable(L, PF_JOURNAL_MT);
  luaL_setfuncs(L, meta, 0);
  luaL_newlib(L, methods);
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);
  static const luaL_Reg fns[] = {
    { "open_journal", journal_open }, { "uuid", core_uuid }, { "make_parents", core_make_parents },
    { "abspath", core_abspath }, { "match_unconfirmed", core_match }, { "stat", core_stat },
    { NULL, NULL },
  };
  luaL_setfuncs(L, fns, 0);
}
