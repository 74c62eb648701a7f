/* outpath.c: can a video be written at an output path? Checked on the worker, never in a pump. */
#define _GNU_SOURCE                   /* O_TMPFILE */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hash.h"
#include "internal.h"

#define PART 5                        /* strlen(".part"): the download's temporary name */

/* A path for a message: control bytes escaped, cut in the middle past 72 bytes (guard.lua's
 * shown() does the same for the messages made in Lua). */
static void shown(char *out, size_t cap, const char *s) {
  size_t n = strlen(s), o = 0;
  out[o++] = '"';
  for (size_t i = 0; i < n && o + 8 < cap; i++) {
    if (n > 72 && i == 40) {
      o += (size_t)snprintf(out + o, cap - o, "...");
      i = n - 20;                     /* the last 19 bytes follow */
      continue;
    }
    unsigned char ch = (unsigned char)s[i];
    if (ch < 0x20 || ch == 0x7f) o += (size_t)snprintf(out + o, cap - o, "\\x%02x", ch);
    else out[o++] = (char)ch;
  }
  out[o++] = '"';
  out[o] = '\0';
}

static char *parent_of(const char *p) {
  const char *slash = strrchr(p, '/');
  if (!slash || slash == p) return pf_strdup("/");
  return pf_strndup(p, (size_t)(slash - p));
}

/* mkdir -p dir: 0, or -1 with why (a message) */
static int make_dirs(const char *dir, char *why, size_t cap) {
  struct stat st;
  if (stat(dir, &st) == 0) {
    if (S_ISDIR(st.st_mode)) return 0;
    snprintf(why, cap, "%s is %s, not a directory", dir, pf_file_kind(st.st_mode));
    return -1;
  }
  if (strcmp(dir, "/") != 0) {
    char *up = parent_of(dir);
    if (!up) { snprintf(why, cap, "out of memory"); return -1; }
    int rc = make_dirs(up, why, cap);
    free(up);
    if (rc != 0) return -1;
  }
  if (mkdir(dir, 0777) == 0) return 0;
  int e = errno;
  if (e == EEXIST && stat(dir, &st) == 0 && S_ISDIR(st.st_mode)) return 0;   /* made meanwhile */
  snprintf(why, cap, "cannot create the directory %s: %s", dir, strerror(e));
  return -1;
}

/* Can a file be created in dir? An unnamed O_TMPFILE file is made there and closed (nothing is
 * left behind); where the file system has none, faccessat(W_OK, AT_EACCESS) answers (it sees a
 * read-only mount, even for root). 0, or the errno. */
static int probe_dir(const char *dir) {
#ifdef O_TMPFILE
  int fd = open(dir, O_TMPFILE | O_WRONLY | O_CLOEXEC, 0600);
  if (fd >= 0) {
    close(fd);
    return 0;
  }
  int e = errno;
  if (e != EOPNOTSUPP && e != EISDIR && e != EINVAL) return e;
#endif
  return faccessat(AT_FDCWD, dir, W_OK | X_OK, AT_EACCESS) == 0 ? 0 : errno;
}

int pf_output_check(const char *path, int probe, char **abs_out, pf_err *err) {
  *abs_out = NULL;
  char sp[160], sp2[176];
  shown(sp, sizeof sp, path);
  char *abs = pf_abspath(path, err);
  if (!abs) return -1;
  char *dir = parent_of(abs), *near = dir ? pf_strdup(dir) : NULL;
  const char *name = strrchr(abs, '/') ? strrchr(abs, '/') + 1 : abs;
  char why[PATH_MAX + 256];
  int rc = -1;
  struct stat st;
  if (!dir || !near) { pf_err_set(err, PF_EK_NOMEM, 0, "nomem", "out of memory"); goto done; }
  /* the limits of the file system the file goes to (the nearest directory that exists) */
  while (strcmp(near, "/") != 0 && stat(near, &st) != 0) {
    char *up = parent_of(near);
    if (!up) { pf_err_set(err, PF_EK_NOMEM, 0, "nomem", "out of memory"); goto done; }
    free(near);
    near = up;
  }
  long name_max = pathconf(near, _PC_NAME_MAX), path_max = pathconf(near, _PC_PATH_MAX);
  if (name_max <= 0) name_max = 255;
  if (path_max <= 0) path_max = PATH_MAX;
  if ((long)strlen(name) + PART > name_max) {
    pf_err_set(err, PF_EK_INVALID, 0, "bad_output", "output: %s has a file name of %zu bytes; at "
               "most %ld are allowed there (the file system takes %ld, less %d for the download's "
               "temporary \".part\" name)", sp, strlen(name), name_max - PART, name_max, PART);
    goto done;
  }
  size_t nl = strcmp(near, "/") == 0 ? 0 : strlen(near);
  for (const char *c = dir + nl; *c;) {
    while (*c == '/') c++;
    size_t len = strcspn(c, "/");
    if ((long)len > name_max) {
      pf_err_set(err, PF_EK_INVALID, 0, "bad_output", "output: %s has a directory name of %zu "
                 "bytes; the file system takes at most %ld", sp, len, name_max);
      goto done;
    }
    c += len;
  }
  if ((long)strlen(abs) + PART >= path_max) {
    pf_err_set(err, PF_EK_INVALID, 0, "bad_output", "output: %s is %zu bytes as an absolute path; "
               "at most %ld are allowed (PATH_MAX %ld, less the final NUL and the download's "
               "temporary \".part\" name)", sp, strlen(abs), path_max - 1 - PART, path_max);
    goto done;
  }
  if (stat(abs, &st) == 0) {
    if (S_ISDIR(st.st_mode)) {
      char *inside = malloc(strlen(path) + 9);
      if (!inside) { pf_err_set(err, PF_EK_NOMEM, 0, "nomem", "out of memory"); goto done; }
      sprintf(inside, "%s%sout.mp4", path, path[strlen(path) - 1] == '/' ? "" : "/");
      shown(sp2, sizeof sp2, inside);
      free(inside);
      pf_err_set(err, PF_EK_INVALID, 0, "bad_output", "output: %s is a directory: give a file "
                 "path inside it, such as %s", sp, sp2);
      goto done;
    }
    if (!S_ISREG(st.st_mode)) {
      pf_err_set(err, PF_EK_INVALID, 0, "bad_output", "output: %s is %s, not a regular file (the "
                 "download would replace it)", sp, pf_file_kind(st.st_mode));
      goto done;
    }
  }
  if (make_dirs(dir, why, sizeof why) != 0) {
    pf_err_set(err, PF_EK_INVALID, 0, "bad_output", "output: %s cannot be written: %s", sp, why);
    goto done;
  }
  int e = probe ? probe_dir(dir) : 0;
  if (e == EROFS) {
    pf_err_set(err, PF_EK_INVALID, 0, "bad_output", "output: %s is in %s, which is on a read-only "
               "file system", sp, dir);
    goto done;
  } else if (e == EACCES || e == EPERM) {
    pf_err_set(err, PF_EK_INVALID, 0, "bad_output", "output: %s is in %s, where this user cannot "
               "create files (%s)", sp, dir, strerror(e));
    goto done;
  } else if (e != 0) {
    pf_err_set(err, PF_EK_INVALID, 0, "bad_output", "output: %s is in %s, where no file can be "
               "created (%s)", sp, dir, strerror(e));
    goto done;
  }
  *abs_out = abs;
  abs = NULL;
  rc = 0;
done:
  free(abs);
  free(dir);
  free(near);
  return rc;
}
