/* fs.c: core._fs, the few file-system calls the Lua layer makes itself (validate.lua, guard.lua). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <lauxlib.h>

#include "fs.h"
#include "hash.h"

/* A stable short name for the errno values the Lua side tells apart. */
static const char *errno_code(int e) {
  switch (e) {
  case ENOENT: return "noent";
  case ENOTDIR: return "notdir";
  case EACCES: return "access";
  case EPERM: return "perm";
  case EROFS: return "rofs";
  case EEXIST: return "exist";
  case EISDIR: return "isdir";
  case ENAMETOOLONG: return "nametoolong";
  case ELOOP: return "loop";
  case ENOSPC: return "nospc";
#ifdef EDQUOT
  case EDQUOT: return "dquot";
#endif
  default: return "other";
  }
}

/* nil, strerror(e), code */
static int push_errno(lua_State *L, int e) {
  lua_pushnil(L);
  lua_pushstring(L, strerror(e));
  lua_pushstring(L, errno_code(e));
  return 3;
}

static const char *kind_word(mode_t m) {
  if (S_ISREG(m)) return "file";
  if (S_ISDIR(m)) return "directory";
  if (S_ISLNK(m)) return "symlink";
  if (S_ISFIFO(m)) return "fifo";
  if (S_ISCHR(m)) return "character device";
  if (S_ISBLK(m)) return "block device";
  if (S_ISSOCK(m)) return "socket";
  return "other";
}

/* _fs.stat(path [, nofollow]) -> kind, size, what | nil, message, code. Never opens path. kind is
 * "file", "directory", "symlink" (nofollow only), "fifo", "character device", "block device",
 * "socket" or "other"; what is the same for messages ("a FIFO (named pipe)"). */
static int fs_stat(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  struct stat st;
  int rc = lua_toboolean(L, 2) ? lstat(path, &st) : stat(path, &st);
  if (rc != 0) return push_errno(L, errno);
  lua_pushstring(L, kind_word(st.st_mode));
  lua_pushinteger(L, (lua_Integer)st.st_size);
  lua_pushstring(L, S_ISLNK(st.st_mode) ? "a symbolic link" : pf_file_kind(st.st_mode));
  return 3;
}

/* _fs.open_check(path) -> size | nil, message, code: path is a regular file that can be opened
 * for reading (pf_open_regular: never blocks, never opens a device). */
static int fs_open_check(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  pf_err e;
  pf_err_clear(&e);
  long long size = 0;
  int fd = pf_open_regular(path, &size, &e);
  if (fd < 0) {
    lua_pushnil(L);
    lua_pushstring(L, e.message);
    lua_pushstring(L, e.code);
    return 3;
  }
  close(fd);
  lua_pushinteger(L, (lua_Integer)size);
  return 1;
}

/* _fs.realpath(path) -> the canonical absolute path (symbolic links resolved) | nil, message, code */
static int fs_realpath(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  char *r = realpath(path, NULL);
  if (!r) return push_errno(L, errno);
  lua_pushstring(L, r);
  free(r);
  return 1;
}

/* _fs.cwd() -> the working directory | nil, message, code */
static int fs_cwd(lua_State *L) {
  char *r = getcwd(NULL, 0);
  if (!r) return push_errno(L, errno);
  lua_pushstring(L, r);
  free(r);
  return 1;
}

void pf_fs_open(lua_State *L) {
  static const luaL_Reg fns[] = {
    { "stat", fs_stat }, { "open_check", fs_open_check }, { "realpath", fs_realpath },
    { "cwd", fs_cwd },
    { NULL, NULL },
  };
  luaL_newlib(L, fns);
  lua_setfield(L, -2, "_fs");
}
