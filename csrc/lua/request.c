/* request.c: what Lua passes with a submit: the normalised request, read into a pf_request, and the journal arguments. */
#include <stdlib.h>
#include <string.h>

#include "binding.h"

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
static void read_request(lua_State *L, int idx, pf_request *rq) {
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

int pf_read_request_p(lua_State *L) {
  read_request(L, 1, lua_touserdata(L, 2));
  return 0;
}

/* The journal arguments of submit and release: a table { key =, intent = JSON text } at idx. */
void pf_lua_journal_args(lua_State *L, int idx, const char **key, const char **intent) {
  *key = *intent = NULL;
  if (lua_isnoneornil(L, idx)) return;
  luaL_checktype(L, idx, LUA_TTABLE);
  lua_getfield(L, idx, "key");
  lua_getfield(L, idx, "intent");
  *key = lua_tostring(L, -2);
  *intent = lua_tostring(L, -1);
  lua_pop(L, 2);                  /* the strings stay alive in the table at idx */
  if (!*key || strlen(*key) >= PF_JOURNAL_KEY_MAX) luaL_argerror(L, idx, "a journal key expected");
}
