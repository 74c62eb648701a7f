/* journal.c: the durable append-only file under pixflow's journal: each line is written whole
 * with O_APPEND and fsync'd before append() returns. */
#include <errno.h>
#include <stdlib.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine.h"
#include "hash.h"

#define PF_JOURNAL_MT "pixflow.Journal"

typedef struct pf_journal {
  int fd;                    /* -1 once closed */
} pf_journal;

static int push_io_error(lua_State *L, const char *what, const char *path) {
  pf_err e;
  pf_err_set(&e, PF_EK_IO, 0, "journal", "%s %s: %s", what, path, strerror(errno));
  lua_pushnil(L);
  pf_err_push(L, &e, NULL);
  return 2;
}

/* Make every missing directory of path's parent (mode 0700: the journal is private). */
static int make_parents(char *path) {
  for (char *p = path + 1; *p; p++) {
    if (*p != '/') continue;
    *p = '\0';
    int rc = mkdir(path, 0700);
    *p = '/';
    if (rc != 0 && errno != EEXIST) return -1;
  }
  return 0;
}

/* core.open_journal(path) -> journal | nil, err */
static int journal_open(lua_State *L) {
  size_t n;
  const char *path = luaL_checklstring(L, 1, &n);
  pf_journal *j = lua_newuserdatauv(L, sizeof *j, 0);
  j->fd = -1;
  luaL_setmetatable(L, PF_JOURNAL_MT);
  char *copy = pf_strdup(path);
  if (!copy) return luaL_error(L, "out of memory");
  int rc = make_parents(copy);
  free(copy);
  if (rc != 0) return push_io_error(L, "cannot create the directory of", path);
  j->fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
  if (j->fd < 0) return push_io_error(L, "cannot open the journal", path);
  return 1;
}

/* journal:append(line) -> true | nil, err. The line gets its newline here; it is on disk when
 * this returns. */
static int journal_append(lua_State *L) {
  pf_journal *j = luaL_checkudata(L, 1, PF_JOURNAL_MT);
  size_t n;
  const char *line = luaL_checklstring(L, 2, &n);
  luaL_argcheck(L, memchr(line, '\n', n) == NULL, 2, "a journal line cannot hold a newline");
  if (j->fd < 0) return luaL_error(L, "attempt to use a closed journal");
  char *buf = malloc(n + 1);
  if (!buf) return luaL_error(L, "out of memory");
  memcpy(buf, line, n);
  buf[n] = '\n';
  size_t off = 0;
  while (off < n + 1) {
    ssize_t w = write(j->fd, buf + off, n + 1 - off);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) { free(buf); return push_io_error(L, "cannot write the journal", ""); }
    off += (size_t)w;
  }
  free(buf);
  if (fsync(j->fd) != 0) return push_io_error(L, "cannot sync the journal", "");
  lua_pushboolean(L, 1);
  return 1;
}

static int journal_close(lua_State *L) {
  pf_journal *j = luaL_checkudata(L, 1, PF_JOURNAL_MT);
  if (j->fd >= 0) close(j->fd);
  j->fd = -1;
  return 0;
}

/* core.make_parents(path) -> true | nil, err: create the missing directories above a file. */
static int core_make_parents(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  char *copy = pf_strdup(path);
  if (!copy) return luaL_error(L, "out of memory");
  int rc = make_parents(copy);
  free(copy);
  if (rc != 0) return push_io_error(L, "cannot create the directory of", path);
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

void pf_journal_open(lua_State *L) {
  static const luaL_Reg methods[] = {
    { "append", journal_append }, { "close", journal_close }, { NULL, NULL },
  };
  luaL_newmetatable(L, PF_JOURNAL_MT);
  luaL_newlib(L, methods);
  lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, journal_close);
  lua_setfield(L, -2, "__gc");
  lua_pushcfunction(L, journal_close);
  lua_setfield(L, -2, "__close");
  lua_pop(L, 1);
  lua_pushcfunction(L, journal_open);
  lua_setfield(L, -2, "open_journal");
  lua_pushcfunction(L, core_uuid);
  lua_setfield(L, -2, "uuid");
  lua_pushcfunction(L, core_make_parents);
  lua_setfield(L, -2, "make_parents");
}
