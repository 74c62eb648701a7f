/* journal_fuzz.c: libFuzzer target for the journal reader (lua/pixflow/journal.lua, run in an embedded Lua 5.4). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

/* A journal is whatever a crash, a full disk or a hand edit left in the file: read() must turn
 * every byte sequence into tasks and warnings, never raise. The harness aborts on a raised
 * error, so libFuzzer reports it as a crash with the input that caused it. */
static lua_State *L;
static char path[64];

static const char script[] =
  "local journal = require 'pixflow.journal'\n"
  "local path = ...\n"
  "local tasks, warnings = journal.read(path)\n"
  "assert(type(tasks) == 'table' and type(warnings) == 'table', 'read returned no lists')\n"
  "for _, t in ipairs(tasks) do\n"
  "  assert(type(t.key) == 'string' and type(t.state) == 'string', 'a task without key or state')\n"
  "end\n"
  "local n = journal.reconcile(path, tasks, function() return nil end, { grace = 0 })\n"
  "assert(math.type(n) == 'integer')\n"
  "local mask = 0\n"
  "local bits = { open = 1, done = 2, unconfirmed = 4, not_created = 8, damaged = 16 }\n"
  "for _, t in ipairs(tasks) do\n"
  "  mask = mask | (bits[t.state] or 32)\n"
  "  if t.id then mask = mask | 64 end\n"
  "  if t.provider then mask = mask | 128 end\n"
  "  if t.downloaded then mask = mask | 256 end\n"
  "  if t.error then mask = mask | 512 end\n"
  "end\n"
  "return #tasks, #warnings, mask\n";

/* The reader is Lua, which libFuzzer cannot see into; the outcome is fed back as C branches
 * (one edge per state bit and per count bucket) so that inputs reaching new outcomes are kept. */
static void feedback(lua_Integer ntasks, lua_Integer nwarn, lua_Integer mask) {
  static volatile int sink;
  for (int b = 0; b < 10; b++) {
    if (!(mask & (1 << b))) continue;
    switch (b) {
      case 0: sink = 0; break; case 1: sink = 1; break; case 2: sink = 2; break;
      case 3: sink = 3; break; case 4: sink = 4; break; case 5: sink = 5; break;
      case 6: sink = 6; break; case 7: sink = 7; break; case 8: sink = 8; break;
      default: sink = 9; break;
    }
  }
  if (ntasks == 0) sink = 10; else if (ntasks == 1) sink = 11; else if (ntasks < 4) sink = 12; else sink = 13;
  if (nwarn == 0) sink = 14; else if (nwarn == 1) sink = 15; else if (nwarn < 4) sink = 16; else sink = 17;
}

static int setup(void) {
  L = luaL_newstate();
  if (!L) return -1;
  luaL_openlibs(L);
  const char *root = getenv("PIXFLOW_ROOT");
  if (!root) root = ".";
  lua_pushfstring(L, "package.path = '%s/lua/?.lua;%s/lua/?/init.lua;' .. package.path\n"
                     "package.cpath = '%s/build/?.so;' .. package.cpath", root, root, root);
  if (luaL_dostring(L, lua_tostring(L, -1)) != LUA_OK) return -1;
  lua_settop(L, 0);
  snprintf(path, sizeof path, "/tmp/pixflow-journal-fuzz-%ld.jsonl", (long)getpid());
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (!L && setup() != 0) abort();
  FILE *f = fopen(path, "wb");
  if (!f) abort();
  if (size && fwrite(data, 1, size, f) != size) abort();
  fclose(f);
  if (luaL_loadbuffer(L, script, sizeof script - 1, "journal_fuzz") != LUA_OK) abort();
  lua_pushstring(L, path);
  if (lua_pcall(L, 1, 3, 0) != LUA_OK) {
    fprintf(stderr, "journal.read raised: %s\n", lua_tostring(L, -1));
    abort();
  }
  feedback(lua_tointeger(L, -3), lua_tointeger(L, -2), lua_tointeger(L, -1));
  lua_settop(L, 0);
  lua_gc(L, LUA_GCCOLLECT);
  return 0;
}
