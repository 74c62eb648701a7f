/* binding.h: what the files of the Lua binding share: Lua's headers, the types' names, the pushers. */
#ifndef PF_BINDING_H
#define PF_BINDING_H

#include <lua.h>
#include <lauxlib.h>

#include "engine.h"

#if LUA_VERSION_NUM < 504
#error "pixflow needs Lua 5.4"
#endif

#define PF_CLIENT_MT "pixflow.Client"
#define PF_TASK_MT "pixflow.Task"

struct pf_journal;

/* error.c: push a pixflow.error table for e (provider may be NULL); register its metatable
 * (fields only: Lua's pixflow.errors adds __tostring). */
void pf_err_push(lua_State *L, const pf_err *e, const char *provider);
void pf_error_open(lua_State *L);

/* client.c: register pixflow.Client and push core.new_client. */
void pf_client_open(lua_State *L);

/* task.c: register pixflow.Task and leave its methods table on the stack (Lua adds wait,
 * download and friends to it). */
void pf_task_open(lua_State *L);
/* A new, empty Task userdata (its task is set once the engine made one) whose user values are
 * the client userdata at cidx and the owner at owner_idx; returns where its task goes. */
pf_task **pf_task_push_new(lua_State *L, int cidx, int owner_idx);
/* Keep the Task userdata at tidx anchored in the client's (at cidx) table while its task is
 * pending, so that a task in flight is never collected while its client lives. */
void pf_task_anchor(lua_State *L, int cidx, int tidx, const pf_task *t);
/* costs[0] as {amount=, unit=} (tostring gives "0.2 USD"), or (all) the list of every cost;
 * nil when there is none. */
void pf_push_costs(lua_State *L, const pf_cost *costs, size_t n, int all);

/* request.c: read a normalised request table (lua/pixflow/validate.lua's) at idx into rq;
 * raises on a malformed table, leaving what it copied in rq for the caller to free. As a
 * lua_CFunction for lua_pcall: (table, lightuserdata pf_request*). */
int pf_read_request_p(lua_State *L);
/* The journal arguments of submit and release: a table { key =, intent = JSON text } at idx
 * (none: both NULL; raises on a bad one); the strings stay alive in that table. */
void pf_lua_journal_args(lua_State *L, int idx, const char **key, const char **intent);

/* journal.c: register pixflow.Journal and set its functions in the module table on top of the
 * stack; the engine journal of a pixflow.Journal at idx (raises if it is not one, or closed). */
void pf_journal_open_lua(lua_State *L);
struct pf_journal *pf_journal_check(lua_State *L, int idx);

#endif
