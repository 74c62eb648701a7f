/* host.c: a C program that embeds Lua 5.4, loads pixflow, and drives a generation from its own
 * frame loop (an engine's update tick), never blocking a frame.
 *
 *   build/examples/host BASE_URL [out.mp4]
 *
 * BASE_URL is apimart's: https://api.apimart.ai (it bills your account), or a sandbox's apimart,
 * http://127.0.0.1:PORT/apimart. The key comes from APIMART_API_KEY. The directory of out.mp4
 * (default out/host.mp4) is created if missing. Run from a pixflow checkout (it loads lua/ and
 * build/). */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

/* The game side of the bridge: a few lines of Lua the host loads once. frame() is called every
 * tick and returns "running", "done" or "failed" and a message. */
static const char *const GLUE =
  "local pixflow = require 'pixflow'\n"
  "local base, out = ...\n"
  "local dir = out:match('^(.*)/[^/]*$')\n"
  "if dir then assert(os.execute(\"mkdir -p '\" .. dir:gsub(\"'\", \"'\\\\''\") .. \"'\"), 'cannot create ' .. dir) end\n"
  "local client = assert(pixflow.new{ provider = 'apimart', base_url = base,\n"
  "                                   poll = { initial = 0.3, interval = 0.3 } })\n"
  "local task = assert(client:submit{ prompt = 'a lighthouse in a storm', duration = 5 })\n"
  "return function()\n"
  "  client:poll(0)\n"
  "  if task.status == 'succeeded' and task:download_state() == 'none' then\n"
  "    assert(task:start_download(out))\n"
  "  end\n"
  "  if task.path then return 'done', task.path end\n"
  "  if task.done and task.status ~= 'succeeded' then return 'failed', tostring(task.error) end\n"
  "  local st, err = task:download_state()\n"
  "  if st == 'failed' then return 'failed', tostring(err) end\n"
  "  return 'running', task.status\n"
  "end\n";

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: %s BASE_URL [out.mp4]\n"
                    "  BASE_URL: apimart's, https://api.apimart.ai (billed), or a sandbox's "
                    "http://127.0.0.1:PORT/apimart\n", argv[0]);
    return 2;
  }
  lua_State *L = luaL_newstate();
  if (!L) return 1;
  luaL_openlibs(L);
  /* find pixflow in the checkout */
  if (luaL_dostring(L, "package.path = 'lua/?.lua;lua/?/init.lua;' .. package.path\n"
                       "package.cpath = 'build/?.so;' .. package.cpath") != LUA_OK ||
      luaL_loadstring(L, GLUE) != LUA_OK) {
    fprintf(stderr, "host: %s\n", lua_tostring(L, -1));
    lua_close(L);
    return 1;
  }
  lua_pushstring(L, argv[1]);
  lua_pushstring(L, argc > 2 ? argv[2] : "out/host.mp4");
  if (lua_pcall(L, 2, 1, 0) != LUA_OK) {
    fprintf(stderr, "host: %s\n", lua_tostring(L, -1));
    lua_close(L);
    return 1;
  }
  int frame_fn = luaL_ref(L, LUA_REGISTRYINDEX);
  const double tick = 1.0 / 60;
  double worst = 0;
  long frames = 0;
  int rc = 1;
  for (;;) {
    double start = now();
    lua_rawgeti(L, LUA_REGISTRYINDEX, frame_fn);
    if (lua_pcall(L, 0, 2, 0) != LUA_OK) {
      fprintf(stderr, "host: frame error: %s\n", lua_tostring(L, -1));
      break;
    }
    double spent = now() - start;
    if (spent > worst) worst = spent;
    frames++;
    const char *state = lua_tostring(L, -2), *info = lua_tostring(L, -1);
    if (state && state[0] == 'd') {
      printf("host: %s after %ld frames; worst frame in pixflow: %.3f ms\n", info, frames, worst * 1000);
      rc = 0;
      break;
    }
    if (state && state[0] == 'f') {
      fprintf(stderr, "host: the generation failed: %s\n", info ? info : "?");
      break;
    }
    lua_pop(L, 2);
    while (now() - start < tick) { /* the engine renders here */ }
  }
  luaL_unref(L, LUA_REGISTRYINDEX, frame_fn);
  lua_close(L);
  return rc;
}
