/* journal.c: the journal in SQLite (WAL): task records, their history, claims and owner liveness. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <sqlite3.h>

#include "hash.h"
#include "journal.h"

/* Ownership: a pf_journal is malloc'd and reference counted (the Lua handle holds one, every
 * client that writes through it one more), so that its life never depends on the order in which
 * Lua's collector finalises objects. It owns the database connection, its lock file and its fd. */
struct pf_journal {
  sqlite3 *db;
  char *path;                /* the database file, as given */
  char *lockdir;             /* <path>.owners: one locked file per live handle (NULL: :memory:) */
  char token[37];            /* this handle's owner token, the name of its lock file */
  int lockfd;
  int locks_work;            /* flock is enforced here; else liveness falls back to the pid */
  atomic_int refs;           /* the worker thread releases its references too */
  struct pf_journal *parent; /* a peer (pf_journal_peer): the handle whose owner it acts for */
  int sync;                  /* the synchronous level set on the connection: 1 FULL, 0 NORMAL */
  long pid;
  int wal_pages;             /* frames in the WAL after the last commit (sqlite3_wal_hook) */
};

/* SQLite's own checkpoints run inside whichever commit crosses the threshold, and a checkpoint
 * syncs: the pump's commits must never be that one. So automatic checkpoints are off, and the
 * calls that already wait on the disk (an intent, a claim, a user's record, closing) move the
 * WAL into the database when it has grown past this many frames. */
#define PF_WAL_CHECKPOINT_PAGES 1000

static int on_wal(void *ud, sqlite3 *db, const char *name, int pages) {
  (void)db; (void)name;
  ((struct pf_journal *)ud)->wal_pages = pages;
  return SQLITE_OK;
}

static int set_sync(struct pf_journal *j, int level, pf_err *err);

static void maybe_checkpoint(struct pf_journal *j) {
  pf_err e;
  if (j->db && j->wal_pages >= PF_WAL_CHECKPOINT_PAGES && set_sync(j, 1, &e) == 0) {
    /* passive: it never waits for another process's readers or writer */
    if (sqlite3_wal_checkpoint_v2(j->db, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL) == SQLITE_OK)
      j->wal_pages = 0;
  }
}

#define SCHEMA \
  "CREATE TABLE IF NOT EXISTS meta(k TEXT PRIMARY KEY, v TEXT);" \
  "CREATE TABLE IF NOT EXISTS tasks(seq INTEGER PRIMARY KEY AUTOINCREMENT, key TEXT UNIQUE NOT NULL," \
  " t REAL, provider TEXT, base_url TEXT, model TEXT, request TEXT, output TEXT, label TEXT," \
  " stage TEXT, id TEXT, status TEXT, error TEXT, downloaded TEXT, updated REAL);" \
  "CREATE INDEX IF NOT EXISTS tasks_output ON tasks(output);" \
  "CREATE INDEX IF NOT EXISTS tasks_id ON tasks(id);" \
  "CREATE TABLE IF NOT EXISTS events(seq INTEGER PRIMARY KEY AUTOINCREMENT, key TEXT NOT NULL," \
  " t REAL, ev TEXT NOT NULL, data TEXT);" \
  "CREATE TABLE IF NOT EXISTS claims(what TEXT PRIMARY KEY, owner TEXT NOT NULL, t REAL);" \
  "CREATE INDEX IF NOT EXISTS claims_owner ON claims(owner);" \
  "CREATE TABLE IF NOT EXISTS owners(token TEXT PRIMARY KEY, pid INTEGER, host TEXT, t REAL);" \
  "PRAGMA user_version=1;"

/* ---------------------------------------------------------------- errors */

static int io_error(pf_journal *j, pf_err *err, const char *what) {
  int rc = j->db ? sqlite3_extended_errcode(j->db) : SQLITE_CANTOPEN;
  const char *why = j->db ? sqlite3_errmsg(j->db) : "cannot open";
  const char *hint = "";
  switch (rc & 0xff) {
    case SQLITE_FULL: hint = " (the disk is full)"; break;
    case SQLITE_READONLY: hint = " (it is read-only)"; break;
    case SQLITE_CANTOPEN: hint = " (check that the directory exists and is writable)"; break;
    case SQLITE_NOTADB: hint = " (the file is not a pixflow journal)"; break;
    case SQLITE_IOERR: {
      /* SQLite says "disk I/O error" for a write that found no room, too */
      struct statvfs vs;
      char *dir = pf_strdup(j->path);
      char *slash = dir ? strrchr(dir, '/') : NULL;
      if (slash) *slash = '\0';
      if (dir && statvfs(slash ? (dir[0] ? dir : "/") : ".", &vs) == 0 && vs.f_bavail == 0)
        hint = " (the disk is full)";
      free(dir);
      break;
    }
    default: break;
  }
  /* the extended code tells one I/O failure from another (SQLITE_IOERR_FSTAT is 1802, for
   * example): it is what a bug report needs and what the message alone does not say */
  char code[40] = "";
  if (rc != (rc & 0xff)) snprintf(code, sizeof code, " (SQLite code %d)", rc);
  pf_err_set(err, PF_EK_IO, 0, (rc & 0xff) == SQLITE_BUSY ? "busy" : "journal",
             "the journal %s: %s: %s%s%s", j->path, what, why, code, hint);
  return -1;
}

static int sys_error(pf_journal *j, pf_err *err, const char *what, const char *path) {
  pf_err_set(err, PF_EK_IO, 0, "journal", "the journal %s: %s %s: %s", j->path, what, path,
             strerror(errno));
  return -1;
}

static int nomem(pf_err *err) {
  pf_err_set(err, PF_EK_NOMEM, 0, "nomem", "out of memory");
  return -1;
}

/* ---------------------------------------------------------------- paths */

int pf_make_parents(const char *path, pf_err *err) {
  char *p = pf_strdup(path);
  if (!p) return nomem(err);
  for (char *s = p + 1; *s; s++) {
    if (*s != '/') continue;
    *s = '\0';
    int rc = mkdir(p, 0700);
    *s = '/';
    if (rc != 0 && errno != EEXIST) {
      pf_err_set(err, PF_EK_IO, 0, "mkdir", "cannot create the directory of %s: %s", path,
                 strerror(errno));
      free(p);
      return -1;
    }
  }
  free(p);
  return 0;
}

/* Append "/" name[0..len) to the growing string *buf (length *n). */
static int path_push(char **buf, size_t *n, const char *name, size_t len) {
  char *nb = realloc(*buf, *n + len + 2);
  if (!nb) return -1;
  *buf = nb;
  nb[(*n)++] = '/';
  memcpy(nb + *n, name, len);
  *n += len;
  nb[*n] = '\0';
  return 0;
}

char *pf_abspath(const char *path, pf_err *err) {
  if (!path || !path[0]) {
    pf_err_set(err, PF_EK_INVALID, 0, "path", "an empty path has no absolute form");
    return NULL;
  }
  /* the resolved prefix ("" is the root), walked one component at a time as the kernel does:
   * a directory that exists is replaced by its real path (so "link/.." means what it means to
   * the kernel, and one file has one name whichever symbolic link reached it); the last
   * component is kept as written (a rename replaces a link there, it does not follow it) */
  char *cur = NULL;
  size_t n = 0;
  if (path[0] != '/') {
    char cwd[PATH_MAX];
    if (!getcwd(cwd, sizeof cwd)) {
      pf_err_set(err, PF_EK_IO, 0, "cwd", "cannot resolve %s: the working directory is unknown (%s)",
                 path, strerror(errno));
      return NULL;
    }
    n = strcmp(cwd, "/") == 0 ? 0 : strlen(cwd);
    cur = pf_strndup(cwd, n);
  } else {
    cur = pf_strdup("");
  }
  if (!cur) { nomem(err); return NULL; }
  int physical = 1;
  const char *s = path;
  while (*s) {
    while (*s == '/') s++;
    if (!*s) break;
    const char *e = strchr(s, '/');
    size_t len = e ? (size_t)(e - s) : strlen(s);
    const char *next = s + len;
    while (*next == '/') next++;
    int last = *next == '\0';
    if (len == 2 && s[0] == '.' && s[1] == '.') {
      while (n > 0 && cur[n - 1] != '/') n--;
      if (n > 0) n--;
      cur[n] = '\0';
    } else if (!(len == 1 && s[0] == '.')) {
      if (path_push(&cur, &n, s, len) != 0) { free(cur); nomem(err); return NULL; }
      if (physical && !last) {
        char *r = realpath(cur, NULL);
        if (r) {
          size_t rl = strcmp(r, "/") == 0 ? 0 : strlen(r);
          char *nc = realloc(cur, rl + 1);
          if (!nc) { free(r); free(cur); nomem(err); return NULL; }
          cur = nc;
          memcpy(cur, r, rl);
          cur[rl] = '\0';
          n = rl;
          free(r);
        } else {
          physical = 0;              /* below a directory that does not exist yet: as written */
        }
      }
    }
    s += len;
  }
  if (n == 0) {
    char *root = realloc(cur, 2);
    if (!root) { free(cur); nomem(err); return NULL; }
    strcpy(root, "/");
    return root;
  }
  return cur;
}

/* ---------------------------------------------------------------- statements */

static int exec(pf_journal *j, const char *sql, pf_err *err, const char *what) {
  if (sqlite3_exec(j->db, sql, NULL, NULL, NULL) != SQLITE_OK) return io_error(j, err, what);
  return 0;
}

static sqlite3_stmt *prep(pf_journal *j, const char *sql, pf_err *err) {
  sqlite3_stmt *st = NULL;
  if (sqlite3_prepare_v2(j->db, sql, -1, &st, NULL) != SQLITE_OK) {
    io_error(j, err, "cannot prepare a statement");
    return NULL;
  }
  return st;
}

static void bind_text(sqlite3_stmt *st, int i, const char *s) {
  if (s) sqlite3_bind_text(st, i, s, -1, SQLITE_TRANSIENT);
  else sqlite3_bind_null(st, i);
}

/* Run a statement that returns no rows; finalises it. */
static int run(pf_journal *j, sqlite3_stmt *st, pf_err *err, const char *what) {
  if (!st) return -1;
  int rc = sqlite3_step(st);
  sqlite3_finalize(st);
  if (rc != SQLITE_DONE && rc != SQLITE_ROW) return io_error(j, err, what);
  return 0;
}

/* The sync level of the connection (PRAGMA synchronous) for the next commit. */
static int set_sync(pf_journal *j, int level, pf_err *err) {
  static const char *const sql[] = { "PRAGMA synchronous=OFF", "PRAGMA synchronous=NORMAL",
                                     "PRAGMA synchronous=FULL" };
  if (level == j->sync) return 0;
  if (exec(j, sql[level], err, "cannot set the sync level") != 0) return -1;
  j->sync = level;
  return 0;
}

/* A write transaction: the write lock is taken at BEGIN (IMMEDIATE), so nothing inside can fail
 * for a lock later. sync: commit with fsync (FULL). wait: may wait for another process's lock.
 * The pump's commits (no sync, no wait) run with synchronous=OFF: in WAL mode a commit is an
 * append either way, but NORMAL still syncs the WAL's header when a commit starts the WAL over
 * after a checkpoint (anyone's), and that sync must not happen inside a frame. What OFF gives up
 * is only that header sync: the checkpoints themselves run on calls that wait, at NORMAL, which
 * syncs the WAL before and the database after, so a power loss can lose the last records (as
 * with NORMAL), never the database. */
enum { J_SYNC_OFF = 0, J_SYNC_NORMAL = 1, J_SYNC_FULL = 2 };
static int begin(pf_journal *j, int sync, int wait, pf_err *err) {
  if (set_sync(j, sync ? J_SYNC_FULL : wait == PF_J_WAIT ? J_SYNC_NORMAL : J_SYNC_OFF, err) != 0) return -1;
  sqlite3_busy_timeout(j->db, wait == PF_J_WAIT ? 10000 : wait == PF_J_SHORT ? 5 : 0);
  int rc = sqlite3_exec(j->db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
  if (rc != SQLITE_OK) {
    io_error(j, err, (rc & 0xff) == SQLITE_BUSY ? "another process is writing it" : "cannot start a write");
    return -1;
  }
  return 0;
}

static int commit(pf_journal *j, pf_err *err) {
  if (sqlite3_exec(j->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
    io_error(j, err, "cannot write");
    sqlite3_exec(j->db, "ROLLBACK", NULL, NULL, NULL);
    return -1;
  }
  return 0;
}

static void rollback(pf_journal *j) {
  if (!sqlite3_get_autocommit(j->db)) sqlite3_exec(j->db, "ROLLBACK", NULL, NULL, NULL);
}

/* ---------------------------------------------------------------- owners */

static char *lockfile(const pf_journal *j, const char *token) {
  size_t n = strlen(j->lockdir) + strlen(token) + 2;
  char *p = malloc(n);
  if (p) snprintf(p, n, "%s/%s", j->lockdir, token);
  return p;
}

static long owner_pid(pf_journal *j, const char *token) {
  sqlite3_stmt *st = NULL;
  long pid = 0;
  if (sqlite3_prepare_v2(j->db, "SELECT pid FROM owners WHERE token=?1", -1, &st, NULL) == SQLITE_OK) {
    bind_text(st, 1, token);
    if (sqlite3_step(st) == SQLITE_ROW) pid = (long)sqlite3_column_int64(st, 0);
  }
  sqlite3_finalize(st);
  return pid;
}

/* Is the owner with this token alive? Its lock file is locked exactly while its handle is open
 * in a live process. A dead owner's file is removed here. When unsure, alive: pixflow never
 * takes over a claim it cannot prove abandoned. */
/* A token is a UUID pixflow made: anything else (a hand edit) is never used as a file name. */
static int token_ok(const char *t) {
  size_t n = strlen(t);
  if (n != 36) return 0;
  for (size_t i = 0; i < n; i++) {
    char ch = t[i];
    int dash = i == 8 || i == 13 || i == 18 || i == 23;
    if (dash ? ch != '-' : !((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f'))) return 0;
  }
  return 1;
}

/* The owner's process, by its recorded pid (and host): alive unless provably gone. */
static int pid_alive(pf_journal *j, const char *token) {
  long pid = owner_pid(j, token);
  if (pid <= 0) return 0;               /* no owner row: it was dropped as dead */
  return kill((pid_t)pid, 0) == 0 || errno == EPERM;
}

static int owner_alive(pf_journal *j, const char *token) {
  if (strcmp(token, j->token) == 0) return 1;
  if (!j->lockdir) return 0;
  if (!token_ok(token)) return 1;       /* not one of ours: never taken over, never a path */
  if (!j->locks_work) return pid_alive(j, token);
  char *f = lockfile(j, token);
  if (!f) return 1;
  int fd = open(f, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) {
    int gone = errno == ENOENT;
    free(f);
    /* no lock file: its owner removed it when it closed (then its claims went with it), or
     * someone removed it under a live owner: only the pid can tell those apart */
    return gone ? pid_alive(j, token) : 1;
  }
  int alive = 1;
  if (flock(fd, LOCK_EX | LOCK_NB) == 0) {
    alive = 0;                       /* nobody holds it: its process ended */
    unlink(f);
  } else if (errno != EWOULDBLOCK) {
    alive = 1;
  }
  close(fd);
  free(f);
  return alive;
}

/* Take this handle's lock file, then (only then) register the token. */
static int become_owner(pf_journal *j, pf_err *err) {
  j->pid = (long)getpid();
  pf_uuid4(j->token);
  if (!j->lockdir) return 0;
  if (mkdir(j->lockdir, 0700) != 0 && errno != EEXIST)
    return sys_error(j, err, "cannot create", j->lockdir);
  char *f = lockfile(j, j->token);
  if (!f) return nomem(err);
  j->lockfd = open(f, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (j->lockfd < 0) {
    sys_error(j, err, "cannot create", f);
    free(f);
    return -1;
  }
  if (flock(j->lockfd, LOCK_EX | LOCK_NB) != 0) {
    sys_error(j, err, "cannot lock", f);
    free(f);
    return -1;
  }
  /* does this filesystem enforce flock? a second open of the same file must be refused */
  int probe = open(f, O_RDONLY | O_CLOEXEC);
  j->locks_work = probe >= 0 && flock(probe, LOCK_EX | LOCK_NB) != 0 && errno == EWOULDBLOCK;
  if (probe >= 0) close(probe);
  char pidtext[32];
  int pl = snprintf(pidtext, sizeof pidtext, "%ld\n", j->pid);
  if (write(j->lockfd, pidtext, (size_t)pl) != pl) {
    /* only a note for people; the lock is what counts */
  }
  free(f);
  char host[256] = "";
  gethostname(host, sizeof host - 1);
  if (begin(j, 0, PF_J_WAIT, err) != 0) return -1;
  sqlite3_stmt *st = prep(j, "INSERT OR REPLACE INTO owners(token, pid, host, t) VALUES(?1, ?2, ?3, ?4)", err);
  if (st) {
    bind_text(st, 1, j->token);
    sqlite3_bind_int64(st, 2, j->pid);
    bind_text(st, 3, host);
    sqlite3_bind_double(st, 4, pf_walltime());
  }
  if (run(j, st, err, "cannot register this process") != 0) { rollback(j); return -1; }
  return commit(j, err);
}

/* Forget owners that died (their claims go with them), and lock files nobody holds. */
static int sweep_dead(pf_journal *j, pf_err *err) {
  if (!j->lockdir) return 0;
  DIR *d = opendir(j->lockdir);
  if (d) {
    struct dirent *de;
    while ((de = readdir(d))) {
      if (!token_ok(de->d_name) || strcmp(de->d_name, j->token) == 0) continue;
      owner_alive(j, de->d_name);        /* removes the file when nobody holds it */
    }
    closedir(d);
  }
  sqlite3_stmt *st = prep(j, "SELECT token FROM owners", err);
  if (!st) return -1;
  char **dead = NULL;
  size_t ndead = 0;
  while (sqlite3_step(st) == SQLITE_ROW) {
    const char *tok = (const char *)sqlite3_column_text(st, 0);
    if (!tok || owner_alive(j, tok)) continue;
    char **nd = realloc(dead, (ndead + 1) * sizeof *nd);
    if (!nd) break;                  /* what is not swept now is swept by the next open */
    dead = nd;
    if (!(dead[ndead] = pf_strdup(tok))) break;
    ndead++;
  }
  sqlite3_finalize(st);
  int rc = 0;
  if (ndead > 0 && begin(j, 0, PF_J_WAIT, err) == 0) {
    for (size_t i = 0; i < ndead && rc == 0; i++) {
      sqlite3_stmt *a = prep(j, "DELETE FROM claims WHERE owner=?1", err);
      if (a) bind_text(a, 1, dead[i]);
      rc = run(j, a, err, "cannot drop a dead process's claims");
      sqlite3_stmt *b = rc == 0 ? prep(j, "DELETE FROM owners WHERE token=?1", err) : NULL;
      if (b) bind_text(b, 1, dead[i]);
      if (rc == 0) rc = run(j, b, err, "cannot drop a dead process");
    }
    if (rc == 0) rc = commit(j, err);
    else rollback(j);
  }
  for (size_t i = 0; i < ndead; i++) free(dead[i]);
  free(dead);
  return rc;
}

/* ---------------------------------------------------------------- claims */

static int release_finished(pf_journal *j, const char *key, pf_err *err);

/* Inside a write transaction. */
static int claim_tx(pf_journal *j, const char *what, long *holder_pid, pf_err *err) {
  sqlite3_stmt *st = prep(j, "SELECT owner FROM claims WHERE what=?1", err);
  if (!st) return -1;
  bind_text(st, 1, what);
  int rc = sqlite3_step(st);
  char owner[64] = "";
  if (rc == SQLITE_ROW) {
    const char *o = (const char *)sqlite3_column_text(st, 0);
    snprintf(owner, sizeof owner, "%s", o ? o : "");
  }
  sqlite3_finalize(st);
  if (rc != SQLITE_ROW && rc != SQLITE_DONE) return io_error(j, err, "cannot read a claim");
  if (owner[0] && strcmp(owner, j->token) == 0) return PF_CLAIM_MINE;
  if (owner[0] && owner_alive(j, owner)) {
    if (holder_pid) *holder_pid = owner_pid(j, owner);
    return PF_CLAIM_HELD;
  }
  /* free, or its owner died: ours now (compare and swap on the owner we saw) */
  st = prep(j, owner[0] ? "UPDATE claims SET owner=?2, t=?3 WHERE what=?1 AND owner=?4"
                        : "INSERT INTO claims(what, owner, t) VALUES(?1, ?2, ?3)", err);
  if (!st) return -1;
  bind_text(st, 1, what);
  bind_text(st, 2, j->token);
  sqlite3_bind_double(st, 3, pf_walltime());
  if (owner[0]) bind_text(st, 4, owner);
  if (run(j, st, err, "cannot write a claim") != 0) return -1;
  if (sqlite3_changes(j->db) != 1) {
    pf_err_set(err, PF_EK_IO, 0, "journal", "the journal %s: a claim changed hands while it was "
               "taken", j->path);
    return -1;
  }
  return PF_CLAIM_TAKEN;
}

static int unclaim_tx(pf_journal *j, const char *what, pf_err *err) {
  sqlite3_stmt *st = prep(j, "DELETE FROM claims WHERE what=?1 AND owner=?2", err);
  if (!st) return -1;
  bind_text(st, 1, what);
  bind_text(st, 2, j->token);
  return run(j, st, err, "cannot release a claim");
}

static char *claim_name(const char *kind, const char *s) {
  size_t n = strlen(kind) + strlen(s) + 2;
  char *w = malloc(n);
  if (w) snprintf(w, n, "%s:%s", kind, s);
  return w;
}

int pf_journal_claim(pf_journal *j, const char *what, long *holder_pid, pf_err *err) {
  if (begin(j, 0, PF_J_WAIT, err) != 0) return -1;
  int rc = claim_tx(j, what, holder_pid, err);
  if (rc < 0 || rc == PF_CLAIM_HELD || rc == PF_CLAIM_MINE) {
    rollback(j);
    return rc;
  }
  if (commit(j, err) != 0) return -1;
  maybe_checkpoint(j);
  return rc;
}

int pf_journal_claim_all(pf_journal *j, const char *const *whats, size_t n, int *rcs, long *pids,
                         pf_err *err) {
  if (begin(j, 0, PF_J_WAIT, err) != 0) return -1;
  int taken = 0;
  for (size_t i = 0; i < n; i++) {
    pids[i] = 0;
    rcs[i] = claim_tx(j, whats[i], &pids[i], err);   /* held or mine: nothing written */
    if (rcs[i] < 0) { rollback(j); return -1; }
    if (rcs[i] == PF_CLAIM_TAKEN) taken = 1;
  }
  if (!taken) { rollback(j); return 0; }
  if (commit(j, err) != 0) return -1;
  maybe_checkpoint(j);
  return 0;
}

int pf_journal_unclaim(pf_journal *j, const char *what, pf_err *err) {
  if (begin(j, 0, PF_J_WAIT, err) != 0) return -1;
  if (unclaim_tx(j, what, err) != 0) { rollback(j); return -1; }
  return commit(j, err);
}

int pf_journal_release_task(pf_journal *j, const char *key, pf_err *err) {
  if (begin(j, 0, PF_J_NOWAIT, err) != 0) return -1;
  if (release_finished(j, key, err) != 0) { rollback(j); return -1; }
  return commit(j, err);
}

/* May another task (not key) still write path? One whose owner lives and holds the path, or a
 * task of the journal that is unfinished and can still be downloaded there: it has a gateway id
 * (pixflow resume would fetch it) or a live owner that is still submitting it. Fills err with
 * what holds it. Inside a write transaction. Returns 1 taken, 0 free, -1 error. */
/* Does another task of the journal still write path (one whose owner lives, or one that has a
 * gateway id and no download yet)? 1 (err says which), 0, -1. */
static int output_used(pf_journal *j, const char *key, const char *path, pf_err *err) {
  sqlite3_stmt *st = prep(j,
    "SELECT tasks.key, tasks.id, tasks.provider, tasks.t, claims.owner FROM tasks"
    " LEFT JOIN claims ON claims.what = 'task:' || tasks.key"
    " WHERE tasks.output=?1 AND tasks.key<>?2 AND tasks.downloaded IS NULL"
    " AND (tasks.status IS NULL OR tasks.status='succeeded')", err);
  if (!st) return -1;
  bind_text(st, 1, path);
  bind_text(st, 2, key);
  int taken = 0;
  while (!taken && sqlite3_step(st) == SQLITE_ROW) {
    const char *id = (const char *)sqlite3_column_text(st, 1);
    const char *prov = (const char *)sqlite3_column_text(st, 2);
    const char *owner = (const char *)sqlite3_column_text(st, 4);
    int live = owner && owner_alive(j, owner);
    if (!id && !live) continue;      /* never answered, and nobody is still sending it */
    taken = 1;
    long opid = live ? owner_pid(j, owner) : 0;
    pf_err_set(err, PF_EK_INVALID, 0, "output_taken", "output %s is already the output of "
               "task %s (%s), ", path, id ? id : (const char *)sqlite3_column_text(st, 0),
               prov ? prov : "?");
    if (live && owner && strcmp(owner, j->token) == 0)
      pf_err_append(err, "which this client is still running");
    else if (live)
      pf_err_append(err, "which a running pixflow process (pid %ld) is following", opid);
    else
      pf_err_append(err, "which is paid for and not downloaded yet: `pixflow resume` fetches "
                    "it (or `pixflow forget` drops it)");
    pf_err_append(err, "; choose another output path");
  }
  sqlite3_finalize(st);
  return taken;
}

static int output_taken(pf_journal *j, const char *key, const char *path, pf_err *err) {
  char *what = claim_name("output", path);
  if (!what) return nomem(err);
  long pid = 0;
  int c = claim_tx(j, what, &pid, err);
  free(what);
  if (c < 0) return -1;
  int taken = output_used(j, key, path, err);
  if (taken < 0) return -1;
  if (!taken && c == PF_CLAIM_HELD) {
    taken = 1;
    pf_err_set(err, PF_EK_INVALID, 0, "output_taken", "output %s is claimed by a running pixflow "
               "process (pid %ld); choose another output path", path, pid);
  }
  return taken;
}

/* ---------------------------------------------------------------- records */

static const char *jstr(json_t *o, const char *k) {
  return json_string_value(json_object_get(o, k));
}

static char *dump(json_t *v) {
  return v && !json_is_null(v) ? json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
}

static int add_event(pf_journal *j, const char *key, const char *ev, double t, json_t *fields,
                     pf_err *err) {
  char *data = fields ? json_dumps(fields, JSON_COMPACT) : NULL;
  if (fields && !data) return nomem(err);
  sqlite3_stmt *st = prep(j, "INSERT INTO events(key, t, ev, data) VALUES(?1, ?2, ?3, ?4)", err);
  if (st) {
    bind_text(st, 1, key);
    sqlite3_bind_double(st, 2, t);
    bind_text(st, 3, ev);
    bind_text(st, 4, data);
  }
  free(data);
  return run(j, st, err, "cannot write a record");
}

static int ensure_row(pf_journal *j, const char *key, double t, pf_err *err) {
  sqlite3_stmt *st = prep(j, "INSERT OR IGNORE INTO tasks(key, updated) VALUES(?1, ?2)", err);
  if (st) {
    bind_text(st, 1, key);
    sqlite3_bind_double(st, 2, t);
  }
  return run(j, st, err, "cannot write a record");
}

static int set_col(pf_journal *j, const char *key, const char *col, const char *val, double t,
                   pf_err *err) {
  char sql[128];
  snprintf(sql, sizeof sql, "UPDATE tasks SET %s=?2, updated=?3 WHERE key=?1", col);
  sqlite3_stmt *st = prep(j, sql, err);
  if (st) {
    bind_text(st, 1, key);
    bind_text(st, 2, val);
    sqlite3_bind_double(st, 3, t);
  }
  return run(j, st, err, "cannot write a record");
}

static const char *task_output(pf_journal *j, const char *key, char *buf, size_t n) {
  sqlite3_stmt *st = NULL;
  const char *out = NULL;
  if (sqlite3_prepare_v2(j->db, "SELECT output FROM tasks WHERE key=?1", -1, &st, NULL) == SQLITE_OK) {
    bind_text(st, 1, key);
    if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0)) {
      snprintf(buf, n, "%s", (const char *)sqlite3_column_text(st, 0));
      out = buf;
    }
  }
  sqlite3_finalize(st);
  return out;
}

/* A task that is finished gives up its claims: another run may write its output again. */
static int release_finished(pf_journal *j, const char *key, pf_err *err) {
  char buf[PATH_MAX + 16];
  const char *out = task_output(j, key, buf, sizeof buf);
  char *w = claim_name("task", key);
  if (!w) return nomem(err);
  int rc = unclaim_tx(j, w, err);
  free(w);
  if (rc == 0 && out) {
    w = claim_name("output", out);
    if (!w) return nomem(err);
    rc = unclaim_tx(j, w, err);
    free(w);
  }
  return rc;
}

/* Fold one record into its task's row (the same rules for live records and imported ones). */
static int apply(pf_journal *j, const char *key, const char *ev, double t, json_t *f,
                 int import, pf_err *err) {
  if (strcmp(ev, "intent") == 0) {
    char *req = dump(json_object_get(f, "request"));
    sqlite3_stmt *st = prep(j, "INSERT OR IGNORE INTO tasks(key, t, provider, base_url, model, "
                               "request, output, label, stage, updated) "
                               "VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?2)", err);
    if (st) {
      bind_text(st, 1, key);
      if (t > 0) sqlite3_bind_double(st, 2, t);
      else sqlite3_bind_null(st, 2);
      bind_text(st, 3, jstr(f, "provider"));
      bind_text(st, 4, jstr(f, "base_url"));
      bind_text(st, 5, jstr(f, "model"));
      bind_text(st, 6, req);
      bind_text(st, 7, jstr(f, "output"));
      bind_text(st, 8, jstr(f, "label"));
      bind_text(st, 9, jstr(f, "stage"));
    }
    free(req);
    if (run(j, st, err, "cannot write the intent") != 0) return -1;
    if (import && sqlite3_changes(j->db) == 0) {
      /* a record that came before its intent made the row: fill it in */
      st = prep(j, "UPDATE tasks SET t=?2, provider=?3, base_url=?4, model=?5, request=?6, "
                   "output=coalesce(output, ?7), label=?8 WHERE key=?1 AND provider IS NULL", err);
      req = dump(json_object_get(f, "request"));
      if (st) {
        bind_text(st, 1, key);
        sqlite3_bind_double(st, 2, t);
        bind_text(st, 3, jstr(f, "provider"));
        bind_text(st, 4, jstr(f, "base_url"));
        bind_text(st, 5, jstr(f, "model"));
        bind_text(st, 6, req);
        bind_text(st, 7, jstr(f, "output"));
        bind_text(st, 8, jstr(f, "label"));
      }
      free(req);
      if (run(j, st, err, "cannot write the intent") != 0) return -1;
    }
    return 0;
  }
  if (ensure_row(j, key, t, err) != 0) return -1;
  if (strcmp(ev, "sending") == 0) return set_col(j, key, "stage", "sending", t, err);
  if (strcmp(ev, "accepted") == 0) {
    if (set_col(j, key, "stage", "sending", t, err) != 0) return -1;
    return set_col(j, key, "id", jstr(f, "id"), t, err);
  }
  if (strcmp(ev, "status") == 0) {
    const char *s = jstr(f, "status");
    char *e = dump(json_object_get(f, "error"));
    int rc = set_col(j, key, "status", s, t, err);
    if (rc == 0) rc = set_col(j, key, "error", e, t, err);
    free(e);
    if (rc == 0 && s && (strcmp(s, "not_created") == 0 || strcmp(s, "not_sent") == 0))
      rc = set_col(j, key, "id", NULL, t, err);
    if (rc == 0 && !import && s && strcmp(s, "succeeded") != 0)
      rc = release_finished(j, key, err);
    return rc;
  }
  if (strcmp(ev, "download") == 0) return set_col(j, key, "output", jstr(f, "path"), t, err);
  if (strcmp(ev, "downloaded") == 0) {
    int rc = set_col(j, key, "downloaded", jstr(f, "path"), t, err);
    if (rc == 0 && !import) rc = release_finished(j, key, err);
    return rc;
  }
  if (strcmp(ev, "forgotten") == 0) {
    int rc = set_col(j, key, "status", "forgotten", t, err);
    if (rc == 0 && !import) rc = release_finished(j, key, err);
    return rc;
  }
  return 0;                          /* an event kept in the history only */
}

int pf_journal_intent(pf_journal *j, const char *key, double t, json_t *fields, const char *stage,
                      pf_err *err) {
  json_t *f = json_deep_copy(fields);
  if (!f) return nomem(err);
  const char *out = jstr(f, "output");
  if (out) {
    char *abs = pf_abspath(out, err);
    if (!abs || json_object_set_new(f, "output", json_string(abs)) != 0) {
      free(abs);
      json_decref(f);
      return abs ? nomem(err) : -1;
    }
    free(abs);
    out = jstr(f, "output");
  }
  if (stage && json_object_set_new(f, "stage", json_string(stage)) != 0) {
    json_decref(f);
    return nomem(err);
  }
  if (begin(j, 1, PF_J_WAIT, err) != 0) { json_decref(f); return -1; }
  int rc = 0;
  if (out) {
    int taken = output_taken(j, key, out, err);
    if (taken != 0) rc = -1;
  }
  if (rc == 0) rc = apply(j, key, "intent", t, f, 0, err);
  if (rc == 0) rc = add_event(j, key, "intent", t, f, err);
  char *w = rc == 0 ? claim_name("task", key) : NULL;
  if (rc == 0 && !w) rc = nomem(err);
  if (rc == 0) rc = claim_tx(j, w, NULL, err) < 0 ? -1 : 0;
  free(w);
  json_decref(f);
  if (rc != 0) { rollback(j); return -1; }
  if (commit(j, err) != 0) return -1;
  maybe_checkpoint(j);
  return 0;
}

int pf_journal_record(pf_journal *j, const char *key, const char *ev, double t, json_t *fields,
                      int sync, int wait, pf_err *err) {
  json_t *f = fields ? json_deep_copy(fields) : json_object();
  if (!f) return nomem(err);
  if (strcmp(ev, "download") == 0 || strcmp(ev, "downloaded") == 0) {
    const char *p = jstr(f, "path");
    char *abs = p ? pf_abspath(p, err) : NULL;
    if (p && (!abs || json_object_set_new(f, "path", json_string(abs)) != 0)) {
      free(abs);
      json_decref(f);
      return abs ? nomem(err) : -1;
    }
    free(abs);
  }
  if (begin(j, sync, wait, err) != 0) { json_decref(f); return -1; }
  int rc = 0;
  if (strcmp(ev, "download") == 0 && jstr(f, "path")) {
    rc = output_taken(j, key, jstr(f, "path"), err) != 0 ? -1 : 0;
    if (rc != 0 && strcmp(err->code, "output_taken") == 0)
      pf_err_append(err, "; this task's video is not lost: download it elsewhere, or run `pixflow "
                    "resume` once the other task is done");
  }
  if (rc == 0) rc = apply(j, key, ev, t, f, 0, err);
  if (rc == 0) rc = add_event(j, key, ev, t, f, err);
  json_decref(f);
  if (rc != 0) { rollback(j); return -1; }
  if (commit(j, err) != 0) return -1;
  if (wait == PF_J_WAIT) maybe_checkpoint(j);
  return 0;
}

/* ---------------------------------------------------------------- reading */

static void put_text(json_t *o, const char *k, sqlite3_stmt *st, int col) {
  const char *s = (const char *)sqlite3_column_text(st, col);
  if (s) json_object_set_new(o, k, json_string(s));
}

static void put_json(json_t *o, const char *k, sqlite3_stmt *st, int col) {
  const char *s = (const char *)sqlite3_column_text(st, col);
  if (!s) return;
  json_t *v = json_loads(s, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
  if (v) json_object_set_new(o, k, v);
}

static void put_real(json_t *o, const char *k, sqlite3_stmt *st, int col) {
  if (sqlite3_column_type(st, col) != SQLITE_NULL)
    json_object_set_new(o, k, json_real(sqlite3_column_double(st, col)));
}

int pf_journal_rivals(pf_journal *j, const char *key, const char *provider, const char *base_url,
                      double from, double to, double *since, double *until) {
  sqlite3_stmt *st = NULL;
  /* a rival's task, if it made one, was made between its intent and its end: now for one still
   * in flight, the moment it was given up (unconfirmed) for one that was */
  if (sqlite3_prepare_v2(j->db, "SELECT min(t), max(e) FROM (SELECT t, CASE WHEN status IS NULL"
                         " THEN ?6 ELSE updated END AS e FROM tasks WHERE key<>?1 AND provider=?2"
                         " AND base_url=?3 AND id IS NULL AND (status IS NULL OR status='unconfirmed')"
                         " AND coalesce(stage, 'sending')<>'uploading') WHERE e>=?4 AND t<=?5",
                         -1, &st, NULL) != SQLITE_OK)
    return -1;
  bind_text(st, 1, key);
  bind_text(st, 2, provider);
  bind_text(st, 3, base_url);
  sqlite3_bind_double(st, 4, from - 2);
  sqlite3_bind_double(st, 5, to + 2);
  sqlite3_bind_double(st, 6, to);
  int rc = sqlite3_step(st), found = 0;
  if (rc == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL) {
    *since = sqlite3_column_double(st, 0);
    *until = sqlite3_column_double(st, 1);
    found = 1;
  }
  sqlite3_finalize(st);
  return rc == SQLITE_ROW ? found : -1;
}

int pf_journal_has_id(pf_journal *j, const char *id) {
  sqlite3_stmt *st = NULL;
  if (sqlite3_prepare_v2(j->db, "SELECT 1 FROM tasks WHERE id=?1 LIMIT 1", -1, &st, NULL) != SQLITE_OK)
    return -1;
  bind_text(st, 1, id);
  int rc = sqlite3_step(st);
  sqlite3_finalize(st);
  return rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : -1;
}

int pf_journal_tasks(pf_journal *j, json_t **out, pf_err *err) {
  *out = NULL;
  sqlite3_busy_timeout(j->db, 10000);
  sqlite3_stmt *st = prep(j,
    "SELECT tasks.key, tasks.t, provider, base_url, model, request, output, label, stage, id,"
    " status, error, downloaded, updated, claims.owner, owners.pid FROM tasks"
    " LEFT JOIN claims ON claims.what = 'task:' || tasks.key"
    " LEFT JOIN owners ON owners.token = claims.owner ORDER BY tasks.seq", err);
  if (!st) return -1;
  json_t *list = json_array();
  int rc = SQLITE_DONE;
  static const char *const text[] = { "key", NULL, "provider", "base_url", "model", NULL,
                                      "output", "label", "stage", "id", "status", NULL,
                                      "downloaded" };
  while (list && (rc = sqlite3_step(st)) == SQLITE_ROW) {
    json_t *o = json_object();
    if (!o) break;
    for (int i = 0; i < 13; i++) if (text[i]) put_text(o, text[i], st, i);
    put_real(o, "t", st, 1);
    put_json(o, "request", st, 5);
    put_json(o, "error", st, 11);
    put_real(o, "updated", st, 13);
    const char *owner = (const char *)sqlite3_column_text(st, 14);
    if (owner) {
      int mine = strcmp(owner, j->token) == 0;
      json_object_set_new(o, "owner", json_pack("{s:I,s:b,s:b}", "pid",
                          (json_int_t)sqlite3_column_int64(st, 15), "alive", owner_alive(j, owner),
                          "mine", mine));
    }
    json_array_append_new(list, o);
  }
  sqlite3_finalize(st);
  if (!list) return nomem(err);
  if (rc != SQLITE_DONE) {
    json_decref(list);
    return io_error(j, err, "cannot read");
  }
  *out = list;
  return 0;
}

int pf_journal_events(pf_journal *j, json_t **out, pf_err *err) {
  *out = NULL;
  sqlite3_busy_timeout(j->db, 10000);
  sqlite3_stmt *st = prep(j, "SELECT seq, key, t, ev, data FROM events ORDER BY seq", err);
  if (!st) return -1;
  json_t *list = json_array();
  int rc = SQLITE_DONE;
  while (list && (rc = sqlite3_step(st)) == SQLITE_ROW) {
    const char *data = (const char *)sqlite3_column_text(st, 4);
    json_t *o = data ? json_loads(data, 0, NULL) : NULL;
    if (!json_is_object(o)) { json_decref(o); o = json_object(); }
    if (!o) break;
    json_object_set_new(o, "seq", json_integer(sqlite3_column_int64(st, 0)));
    put_text(o, "key", st, 1);
    put_real(o, "t", st, 2);
    put_text(o, "ev", st, 3);
    json_array_append_new(list, o);
  }
  sqlite3_finalize(st);
  if (!list) return nomem(err);
  if (rc != SQLITE_DONE) {
    json_decref(list);
    return io_error(j, err, "cannot read");
  }
  *out = list;
  return 0;
}

/* ---------------------------------------------------------------- the legacy JSONL import */

static void warn(char **w, const char *fmt, const char *label, size_t line, const char *a,
                 const char *b, const char *c) {
  if (!w) return;
  char msg[1024];
  int n = snprintf(msg, sizeof msg, fmt, label, line, a, b, c);
  if (n < 0) return;
  size_t old = *w ? strlen(*w) : 0, add = strlen(msg);
  char *nw = realloc(*w, old + add + 2);
  if (!nw) return;
  memcpy(nw + old, msg, add);
  nw[old + add] = '\n';
  nw[old + add + 1] = '\0';
  *w = nw;
}

static const char *lua_type_of(json_t *v) {
  switch (json_typeof(v)) {
    case JSON_OBJECT: case JSON_ARRAY: return "table";
    case JSON_STRING: return "string";
    case JSON_INTEGER: case JSON_REAL: return "number";
    case JSON_TRUE: case JSON_FALSE: return "boolean";
    default: return "null";
  }
}

/* Every field a record may carry, and its type: one of the wrong type is dropped, never
 * trusted (a hand edit or a foreign writer may put anything anywhere). */
static const struct { const char *name, *type; } FIELDS[] = {
  { "key", "string" }, { "ev", "string" }, { "t", "number" }, { "provider", "string" },
  { "base_url", "string" }, { "model", "string" }, { "request", "table" },
  { "output", "string" }, { "label", "string" }, { "id", "string" }, { "status", "string" },
  { "error", "table" }, { "path", "string" }, { "stage", "string" },
};

int pf_journal_import(pf_journal *j, const char *text, size_t len, const char *label,
                      size_t first_line, char **warnings, pf_err *err) {
  if (begin(j, 1, PF_J_WAIT, err) != 0) return -1;
  size_t line = first_line, off = 0;
  int rc = 0;
  while (off < len && rc == 0) {
    const char *nl = memchr(text + off, '\n', len - off);
    size_t n = nl ? (size_t)(nl - (text + off)) : len - off;
    const char *s = text + off;
    off += n + (nl ? 1 : 0);
    line++;
    if (n == 0) continue;
    json_t *rec = json_loadb(s, n, 0, NULL);
    if (json_is_object(rec)) {
      for (size_t i = 0; i < sizeof FIELDS / sizeof FIELDS[0]; i++) {
        json_t *v = json_object_get(rec, FIELDS[i].name);
        if (!v) continue;
        const char *have = lua_type_of(v);
        if (strcmp(have, FIELDS[i].type) != 0) {
          warn(warnings, "%s:%zu: field %s is a %s, not a %s; ignored", label, line,
               FIELDS[i].name, have, FIELDS[i].type);
          json_object_del(rec, FIELDS[i].name);
        }
      }
    }
    json_t *tv = json_is_object(rec) ? json_object_get(rec, "t") : NULL;
    if (tv && !(json_number_value(tv) >= 0 && json_number_value(tv) <= 32503680000.0)) {
      /* before 1970 or after the year 3000: no time a journal wrote */
      warn(warnings, "%s:%zu: field t is out of range; ignored%s%s%s", label, line, "", "", "");
      json_object_del(rec, "t");
    }
    const char *key = json_is_object(rec) ? jstr(rec, "key") : NULL;
    const char *ev = json_is_object(rec) ? jstr(rec, "ev") : NULL;
    if (!key || !ev) {
      warn(warnings, "%s:%zu is damaged (the process may have died while writing it); skipped%s%s%s",
           label, line, "", "", "");
      json_decref(rec);
      continue;
    }
    double t = json_number_value(json_object_get(rec, "t"));
    if (!isfinite(t)) t = 0;
    json_t *fields = json_deep_copy(rec);
    if (!fields) { json_decref(rec); rc = nomem(err); break; }
    json_object_del(fields, "v");
    json_object_del(fields, "ev");
    json_object_del(fields, "key");
    rc = apply(j, key, ev, t, fields, 1, err);
    if (rc == 0) rc = add_event(j, key, ev, t, fields, err);
    json_decref(fields);
    json_decref(rec);
  }
  if (rc != 0) { rollback(j); return -1; }
  return commit(j, err);
}

/* Import what an earlier pixflow wrote to its JSONL journal and this database has not seen. */
static int import_legacy(pf_journal *j, const char *legacy, char **warnings, pf_err *err) {
  int fd = open(legacy, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) return errno == ENOENT ? 0 : sys_error(j, err, "cannot read", legacy);
  struct stat sb;
  if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
    close(fd);
    return 0;
  }
  char *abs = pf_abspath(legacy, err);
  if (!abs) { close(fd); return -1; }
  char *mk = claim_name("legacy", abs);
  free(abs);
  if (!mk) { close(fd); return nomem(err); }
  long long done = 0, lines = 0;
  sqlite3_stmt *st = prep(j, "SELECT v FROM meta WHERE k=?1", err);
  if (st) {
    bind_text(st, 1, mk);
    if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0))
      sscanf((const char *)sqlite3_column_text(st, 0), "%lld %lld", &done, &lines);
    sqlite3_finalize(st);
  }
  int rc = 0;
  if ((long long)sb.st_size > done) {
    size_t len = (size_t)(sb.st_size - done);
    char *buf = malloc(len ? len : 1);
    size_t got = 0;
    if (!buf) rc = nomem(err);
    while (rc == 0 && got < len) {
      ssize_t r = pread(fd, buf + got, len - got, (off_t)(done + (long long)got));
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) break;
      got += (size_t)r;
    }
    /* only whole lines: a last line without its newline may be an earlier pixflow still
     * writing it (or one that died mid-write); it is left for a later open */
    size_t whole = got;
    while (whole > 0 && buf[whole - 1] != '\n') whole--;
    long long nlines = 0;
    for (size_t i = 0; i < whole; i++) nlines += buf[i] == '\n';
    if (rc == 0 && whole < got)
      warn(warnings, "%s:%zu is incomplete (no newline yet): it is imported once it is whole%s%s%s",
           legacy, (size_t)(lines + nlines + 1), "", "", "");
    if (rc == 0 && whole > 0) rc = pf_journal_import(j, buf, whole, legacy, (size_t)lines, warnings, err);
    free(buf);
    if (rc == 0 && whole > 0) {
      char v[64];
      snprintf(v, sizeof v, "%lld %lld", done + (long long)whole, lines + nlines);
      if (begin(j, 1, PF_J_WAIT, err) != 0) rc = -1;
      sqlite3_stmt *m = rc == 0 ? prep(j, "INSERT OR REPLACE INTO meta(k, v) VALUES(?1, ?2)", err) : NULL;
      if (m) { bind_text(m, 1, mk); bind_text(m, 2, v); }
      if (rc == 0) rc = run(j, m, err, "cannot note the import");
      if (rc == 0) rc = commit(j, err);
      else rollback(j);
    }
  }
  free(mk);
  close(fd);
  return rc;
}

/* ---------------------------------------------------------------- open, close */

static void free_journal(pf_journal *j) {
  if (j->db) sqlite3_close_v2(j->db);
  if (j->lockfd >= 0) close(j->lockfd);
  free(j->lockdir);
  free(j->path);
  if (j->parent) pf_journal_release(j->parent);
  free(j);
}

/* The connection's own settings, the same for a handle and its peers. */
static void configure(pf_journal *j) {
  sqlite3_extended_result_codes(j->db, 1);
  sqlite3_busy_timeout(j->db, 10000);
}

int pf_journal_peer(pf_journal *parent, pf_journal **out, pf_err *err) {
  *out = NULL;
  if (strcmp(parent->path, ":memory:") == 0) {
    pf_journal_retain(parent);              /* one database per connection: share this one */
    *out = parent;
    return 0;
  }
  pf_journal *j = calloc(1, sizeof *j);
  if (!j) return nomem(err);
  j->lockfd = -1;
  atomic_init(&j->refs, 1);
  j->sync = J_SYNC_NORMAL;
  j->path = pf_strdup(parent->path);
  j->lockdir = parent->lockdir ? pf_strdup(parent->lockdir) : NULL;
  if (!j->path || (parent->lockdir && !j->lockdir)) { free_journal(j); return nomem(err); }
  memcpy(j->token, parent->token, sizeof j->token);
  j->locks_work = parent->locks_work;
  j->pid = parent->pid;
  pf_journal_retain(parent);
  j->parent = parent;
  if (sqlite3_open_v2(j->path, &j->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_FULLMUTEX, NULL) != SQLITE_OK) {
    io_error(j, err, "cannot open");
    free_journal(j);
    return -1;
  }
  configure(j);
  /* WAL is the database's own mode already; checkpoints as the handle's (see above) */
  if (exec(j, "PRAGMA wal_autocheckpoint=0", err, "cannot set checkpoints") != 0 ||
      exec(j, "PRAGMA synchronous=NORMAL", err, "cannot set the sync level") != 0) {
    free_journal(j);
    return -1;
  }
  sqlite3_wal_hook(j->db, on_wal, j);
  *out = j;
  return 0;
}

int pf_journal_open(const char *path, const char *legacy, pf_journal **out, char **warnings,
                    pf_err *err) {
  *out = NULL;
  if (warnings) *warnings = NULL;
  pf_journal *j = calloc(1, sizeof *j);
  if (!j) return nomem(err);
  j->lockfd = -1;
  atomic_init(&j->refs, 1);
  j->sync = J_SYNC_NORMAL;
  j->path = pf_strdup(path);
  if (!j->path) { free_journal(j); return nomem(err); }
  int memory = strcmp(path, ":memory:") == 0;
  if (!memory) {
    struct stat sb;
    if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode)) {
      pf_err_set(err, PF_EK_IO, 0, "journal", "the journal %s is a directory; give the path of a "
                 "journal file (for example %s/journal.db)", path, path);
      free_journal(j);
      return -1;
    }
    if (pf_make_parents(path, err) != 0) {
      pf_err_append(err, " (the journal %s)", path);
      free_journal(j);
      return -1;
    }
  }
  if (!memory) {
    /* private: the requests and paths are the user's (SQLite would create it 0644) */
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NONBLOCK, 0600);
    if (fd < 0) {
      sys_error(j, err, "cannot open", path);
      free_journal(j);
      return -1;
    }
    struct stat fb;
    if (fstat(fd, &fb) != 0 || !S_ISREG(fb.st_mode)) {
      close(fd);
      pf_err_set(err, PF_EK_IO, 0, "journal", "the journal %s is not a regular file; give the path of "
                 "a journal file", path);
      free_journal(j);
      return -1;
    }
    close(fd);
    if (fb.st_nlink > 1) {
      /* SQLite keeps the WAL beside the name it was opened by: two names, two WALs */
      pf_err_set(err, PF_EK_IO, 0, "journal", "the journal %s has %ld hard links; a journal must "
                 "have one name (a symbolic link to it is fine)", path, (long)fb.st_nlink);
      free_journal(j);
      return -1;
    }
    /* the owners' lock files sit beside the database's real name: one journal reached through
     * a symbolic link has one set of owners */
    char *real = realpath(path, NULL);
    if (!real) { sys_error(j, err, "cannot resolve", path); free_journal(j); return -1; }
    size_t n = strlen(real) + sizeof ".owners";
    j->lockdir = malloc(n);
    if (!j->lockdir) { free(real); free_journal(j); return nomem(err); }
    snprintf(j->lockdir, n, "%s.owners", real);
    free(real);
  }
  int rc = sqlite3_open_v2(path, &j->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
                           SQLITE_OPEN_FULLMUTEX, NULL);
  if (rc != SQLITE_OK) {
    io_error(j, err, "cannot open");
    free_journal(j);
    return -1;
  }
  configure(j);
  /* WAL: readers never wait for the writer, and a commit is one append. Two processes
   * opening a new database at once both read it (a shared lock) and both want to convert it:
   * SQLite answers one of them SQLITE_BUSY at once, without its busy handler (waiting could
   * deadlock), so the conversion is tried again here for as long as a busy handler would wait */
  sqlite3_stmt *st = prep(j, "PRAGMA journal_mode=WAL", err);
  if (!st) { free_journal(j); return -1; }
  int waited = 0;
  for (int pause = 1;; pause = pause < 64 ? pause * 2 : 64) {
    rc = sqlite3_step(st);
    if ((rc & 0xff) != SQLITE_BUSY || waited >= 10000) break;
    sqlite3_reset(st);
    waited += sqlite3_sleep(pause);
  }
  const char *mode = rc == SQLITE_ROW ? (const char *)sqlite3_column_text(st, 0) : NULL;
  int wal = mode && (strcmp(mode, "wal") == 0 || (memory && strcmp(mode, "memory") == 0));
  sqlite3_finalize(st);
  if (!wal) {
    io_error(j, err, "cannot use write-ahead logging");
    free_journal(j);
    return -1;
  }
  /* wal_autocheckpoint installs a WAL hook of its own (replacing any other): ours goes after */
  if (exec(j, "PRAGMA wal_autocheckpoint=0", err, "cannot set checkpoints") != 0) {
    free_journal(j);
    return -1;
  }
  sqlite3_wal_hook(j->db, on_wal, j);
  if (exec(j, "PRAGMA synchronous=NORMAL", err, "cannot set the sync level") != 0 ||
      begin(j, 1, PF_J_WAIT, err) != 0) {
    free_journal(j);
    return -1;
  }
  j->sync = J_SYNC_FULL;
  if (exec(j, SCHEMA, err, "cannot create its tables") != 0 || commit(j, err) != 0) {
    rollback(j);
    free_journal(j);
    return -1;
  }
  if (become_owner(j, err) != 0 || sweep_dead(j, err) != 0 ||
      (legacy && !memory && import_legacy(j, legacy, warnings, err) != 0)) {
    pf_journal_release(j);
    return -1;
  }
  *out = j;
  return 0;
}

void pf_journal_retain(pf_journal *j) {
  atomic_fetch_add(&j->refs, 1);
}

void pf_journal_release(pf_journal *j) {
  if (!j || atomic_fetch_sub(&j->refs, 1) > 1) return;
  if (j->parent) {                          /* a peer: the claims and the lock are its parent's */
    free_journal(j);
    return;
  }
  if (j->db) {
    pf_err e;
    /* this handle's claims end with it; best effort: a dead owner's are dropped by the next
     * process anyway */
    if (begin(j, 0, PF_J_WAIT, &e) == 0) {
      sqlite3_stmt *st = prep(j, "DELETE FROM claims WHERE owner=?1", &e);
      if (st) bind_text(st, 1, j->token);
      int ok = run(j, st, &e, "") == 0;
      st = ok ? prep(j, "DELETE FROM owners WHERE token=?1", &e) : NULL;
      if (st) bind_text(st, 1, j->token);
      if (ok && run(j, st, &e, "") == 0) commit(j, &e);
      else rollback(j);
    }
  }
  maybe_checkpoint(j);
  if (j->lockdir && j->lockfd >= 0) {
    char *f = lockfile(j, j->token);
    if (f) unlink(f);
    free(f);
  }
  free_journal(j);
}

const char *pf_journal_path(const pf_journal *j) {
  return j->path;
}
