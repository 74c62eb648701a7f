/* fs.c: core._fs, the file-system checks guard.lua and validate.lua make before anything is sent. */
#define _GNU_SOURCE                   /* O_TMPFILE */
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

/* _fs.probe_dir(dir) -> true | nil, message, code: can a file be created in dir? Asked the honest
 * way: an unnamed O_TMPFILE file is created there and closed, so nothing is ever left behind.
 * Where the file system has no O_TMPFILE, faccessat(W_OK, AT_EACCESS) answers (it sees a
 * read-only mount, even for root). */
static int fs_probe_dir(lua_State *L) {
  const char *dir = luaL_checkstring(L, 1);
#ifdef O_TMPFILE
  int fd = open(dir, O_TMPFILE | O_WRONLY | O_CLOEXEC, 0600);
  if (fd >= 0) {
    close(fd);
    lua_pushboolean(L, 1);
    return 1;
  }
  int e = errno;
  if (e != EOPNOTSUPP && e != EISDIR && e != EINVAL) return push_errno(L, e);
#endif
  if (faccessat(AT_FDCWD, dir, W_OK | X_OK, AT_EACCESS) != 0) return push_errno(L, errno);
  lua_pushboolean(L, 1);
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

/* _fs.mkdir(path) -> true | nil, message, code (mode 0777 less the umask, like mkdir(1)) */
static int fs_mkdir(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  if (mkdir(path, 0777) != 0) return push_errno(L, errno);
  lua_pushboolean(L, 1);
  return 1;
}

/* _fs.limits(dir) -> the longest file name and the longest path (with its NUL) there */
static int fs_limits(lua_State *L) {
  const char *dir = luaL_checkstring(L, 1);
  long name_max = pathconf(dir, _PC_NAME_MAX);
  long path_max = pathconf(dir, _PC_PATH_MAX);
  lua_pushinteger(L, name_max > 0 ? name_max : 255);
  lua_pushinteger(L, path_max > 0 ? path_max : PATH_MAX);
  return 2;
}

void pf_fs_open(lua_State *L) {
  static const luaL_Reg fns[] = {
    { "stat", fs_stat }, { "open_check", fs_open_check }, { "probe_dir", fs_probe_dir },
    { "realpath", fs_realpath }, { "cwd", fs_cwd }, { "mkdir", fs_mkdir }, { "limits", fs_limits },
    { NULL, NULL },
  };
  luaL_newlib(L, fns);
  lua_setfield(L, -2, "_fs");
}
