/* error.c: pixflow.error objects for Lua: a table of the engine error record's fields. */
#include "binding.h"

#include <string.h>

void pf_err_push(lua_State *L, const pf_err *e, const char *provider) {
  lua_createtable(L, 0, 8);
  lua_pushstring(L, pf_errkind_name(e->kind));
  lua_setfield(L, -2, "kind");
  lua_pushstring(L, e->message);
  lua_setfield(L, -2, "message");
  if (e->code[0]) {
    lua_pushstring(L, e->code);
    lua_setfield(L, -2, "code");
  }
  if (strcmp(e->code, "bad_output") == 0) {
    /* the worker's output check: one problem, on the field the user named, like validate's */
    lua_createtable(L, 1, 0);
    lua_createtable(L, 0, 2);
    lua_pushliteral(L, "output");
    lua_setfield(L, -2, "field");
    lua_pushstring(L, e->message);
    lua_setfield(L, -2, "message");
    lua_rawseti(L, -2, 1);
    lua_setfield(L, -2, "problems");
  }
  if (e->status) {
    lua_pushinteger(L, e->status);
    lua_setfield(L, -2, "status");
  }
  if (provider) {
    lua_pushstring(L, provider);
    lua_setfield(L, -2, "provider");
  }
  lua_pushboolean(L, e->retryable);
  lua_setfield(L, -2, "retryable");
  if (e->retry_after >= 0) {
    lua_pushnumber(L, e->retry_after);
    lua_setfield(L, -2, "retry_after");
  }
  if (e->not_charged) {
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "charged");
    /* a timeout's usual advice says the task may still be billed: not when nothing reached the
     * gateway (a connect or DNS timeout, a deadline before the submit went out) */
    if (e->kind == PF_EK_TIMEOUT) {
      lua_pushliteral(L, "the gateway accepted nothing, so nothing was charged: check the "
                      "network, base_url and the timeouts, then submit again");
      lua_setfield(L, -2, "hint");
    }
  }
  luaL_setmetatable(L, "pixflow.error");
}

void pf_error_open(lua_State *L) {
  if (luaL_newmetatable(L, "pixflow.error")) {
    /* __tostring and methods come from lua/pixflow/errors.lua, which owns the wording */
  }
  lua_pop(L, 1);
}
